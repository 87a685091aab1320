"""Findings -> remedies: concrete changes to the user's spec, each an RFC 6902 patch.

Each builder here works out, for the layers a finding is about, the patch to the
spec and, where the change is a number (a clipping threshold), the number derived
from the measurements; the words, defaults and snippet come from the one builder
per remedy id in :mod:`gradhealth.core.remedies`, which the log check uses too.
Whether it works is not assumed: :mod:`gradhealth.analysis.check` applies every
patch, simulates the patched spec again and reports what it measured.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from gradhealth.analysis import spec as S
from gradhealth.analysis.activations import BOUNDED
from gradhealth.analysis.findings import Detection, weighted_units
from gradhealth.analysis.losses import OUTPUT_RANGES
from gradhealth.analysis.plan import Plan, read_by_norms
from gradhealth.analysis.simulate import SimulationResult
from gradhealth.core import remedies as R
from gradhealth.core.document import Remedy

#: Sequences at least this long get chrono gate initialisation instead of a constant forget bias of 1.
CHRONO_MIN_STEPS = 50

_INIT_FOR = {
    "relu": "kaiming_normal", "leaky_relu": "kaiming_normal", "elu": "kaiming_normal",
    "gelu": "kaiming_normal", "silu": "kaiming_normal", "swish": "kaiming_normal", "softplus": "kaiming_normal",
    "selu": "lecun_normal", "sigmoid": "xavier_normal", "tanh": "xavier_normal", "hardtanh": "xavier_normal",
    "identity": "xavier_normal",
    # Keras' bounded ones take Glorot's init as a tanh does; mish, unbounded above like silu, He's
    "hard_sigmoid": "xavier_normal", "hard_sigmoid_keras2": "xavier_normal", "softsign": "xavier_normal",
    "mish": "kaiming_normal",
}

def init_scheme_for(activation: str | None) -> str:
    """The init scheme that matches ``activation`` (He's for the ReLU family, LeCun's for SELU,
    Glorot's for a squashing or linear one): what a re-initialised layer followed by it is drawn with."""
    return _INIT_FOR.get(activation or "identity", "xavier_normal")


_SAME_INIT = {"kaiming_normal": {"kaiming_normal", "kaiming_uniform", "he_normal", "he_uniform"},
              "xavier_normal": {"xavier_normal", "xavier_uniform"}, "lecun_normal": {"lecun_normal"}}

@dataclass
class Context:
    """What a remedy builder may look at."""

    raw: dict[str, Any]
    plan: Plan
    result: SimulationResult
    detection: Detection
    #: A healthy simulation of a fixed variant (the best verified remedy's), for numbers that must
    #: come from a healthy range (a clipping threshold); None before verification or without it.
    reference: SimulationResult | None = None

    def layer_at(self, pointer: str) -> S.Layer:
        return next(u.layer for u in self.plan.all_units() if u.pointer == pointer)

    def weight_pointers(self) -> list[str]:
        """Spec pointers of the weight layers the finding is about (nested ones included); for a
        separate activation layer (Keras' ``Activation('relu')``), the weight layer it follows."""
        pointers: list[str] = []
        units = self.plan.all_units()
        for unit in self.detection.units:
            for i, u in enumerate(units):
                if (u.pointer == unit.pointer or u.pointer.startswith(unit.pointer + "/layers/")) and isinstance(
                        u.layer, S.WEIGHT_LAYERS):
                    pointers.append(u.pointer)
                elif u.pointer == unit.pointer and isinstance(u.layer, S.ActivationLayer):
                    before = [v for v in units[:i] if isinstance(v.layer, S.WEIGHT_LAYERS)]
                    if before:
                        pointers.append(before[-1].pointer)
        return list(dict.fromkeys(pointers))

    def activation_pointers(self) -> list[str]:
        """Spec pointers of the separate activation layers the finding is about."""
        return list(dict.fromkeys(u.pointer for u in self.plan.all_units() if isinstance(u.layer, S.ActivationLayer)
                                  and any(u.pointer == d.pointer for d in self.detection.units)))

    def transformer_init_pointers(self) -> list[str]:
        """Spec pointers of the ``transformer_encoder`` layers the finding is about whose spec sets
        their ``init`` (PyTorch's default is not the spec's to replace)."""
        return list(dict.fromkeys(
            u.pointer for u in self.detection.units if u.type == "transformer_encoder"
            and isinstance(layer := self.layer_at(u.pointer), S.TransformerEncoderLayer)
            and layer.init.scheme != "default"))

    def recurrent_pointers(self) -> list[str]:
        return list(dict.fromkeys(u.pointer for u in self.detection.units if u.type in ("rnn", "lstm", "gru")))


def names_of(pointers: list[str]) -> str:
    """``/layers/3/layers/0`` -> ``layers[3].layers[0]``."""
    return ", ".join(re.sub(r"/layers/(\d+)", r".layers[\1]", p).lstrip(".") for p in pointers)


#: Keras' VarianceScaling (``variance_scaling``) settings that are each target init: He's Var = 2/fan
#: in either of He et al. 2015's forms (fan_in keeps the forward signal, fan_out the backward one:
#: torch's ``kaiming_normal_(mode='fan_out')``, torchvision's ResNets), LeCun's 1/fan_in, Glorot's 1/fan_avg
_SAME_SCALING = {"kaiming_normal": (2.0, ("fan_in", "fan_out")), "lecun_normal": (1.0, ("fan_in",)),
                 "xavier_normal": (1.0, ("fan_avg",))}


def already_init(init: S.InitSpec, target: str) -> bool:
    """Whether ``init`` is ``target`` already, by name or as the ``variance_scaling`` that is it
    (specsweep11: a ResNet-110 initialised with variance_scaling(2, fan_out), He's, was told to
    'initialise with kaiming_normal')."""
    if init.scheme in _SAME_INIT[target]:
        return True
    scale, modes = _SAME_SCALING[target]
    return init.scheme == "variance_scaling" and math.isclose(init.scale, scale, rel_tol=1e-6) and init.mode in modes


def _init_remedy(ctx: Context, target: str, pointers: list[str]) -> Remedy | None:
    todo = [p for p in pointers if not already_init(ctx.layer_at(p).init, target)]  # type: ignore[union-attr]  # pointers from weight/recurrent_pointers() name layers with this field
    if not todo:
        return None
    patch = [{"op": "add", "path": p + "/init", "value": {"scheme": target}} for p in todo]
    return R.init(target, [names_of([p]) for p in todo], patch)


def init_remedies(ctx: Context) -> list[Remedy]:
    """The init that matches each layer's activation (He, Xavier/Glorot or LeCun); where weights
    are all zero (a readout initialised to zero passes no gradient back), one remedy re-initialises
    every such layer together, since none of them alone lets a gradient through."""
    zero = ctx.detection.evidence.get("zero_weights")
    if zero:
        return _zero_init_remedy(ctx, list(zero))
    groups: dict[str, list[str]] = {}
    for p in ctx.weight_pointers():
        # a separate activation layer after it (Keras' Dense(128) then Activation('relu')) is its own
        # (an exponential: none of He's, Glorot's or LeCun's keeps it from overflowing, so no init remedy)
        if (scheme := _INIT_FOR.get(ctx.plan.activation_of(p))) is not None:
            groups.setdefault(scheme, []).append(p)
    # a transformer layer's init covers its attention projections (linear) and its feed-forward:
    # Glorot's, as PyTorch's own for the attention's projection
    for p in ctx.transformer_init_pointers():
        groups.setdefault("xavier_normal", []).append(p)
    return [r for target, ps in groups.items() if (r := _init_remedy(ctx, target, ps)) is not None]


def _zero_init_remedy(ctx: Context, names: list[str]) -> list[Remedy]:
    """One init remedy for every layer whose weights are all zero, each with the init that
    matches its activation; named after the first one's scheme."""
    pointers = list(dict.fromkeys(u.pointer for u in ctx.result.units if u.name in names))
    chosen = [(p, _INIT_FOR.get(ctx.plan.activation_of(p), "xavier_normal")) for p in pointers
              if isinstance(ctx.layer_at(p), S.WEIGHT_LAYERS)]
    if not chosen:
        return []
    patch = [{"op": "add", "path": p + "/init", "value": {"scheme": scheme}} for p, scheme in chosen]
    by_scheme: dict[str, list[str]] = {}
    for p, scheme in chosen:
        by_scheme.setdefault(scheme, []).append(p)
    remedy = R.init(chosen[0][1], names_of([p for p, _ in chosen]), patch)
    remedy.change = "initialise " + " and ".join(f"{names_of(ps)} with {scheme}" for scheme, ps in by_scheme.items()) \
        + " (all their weights are zero)"
    return [remedy]


def zero_biases(ctx: Context) -> list[Remedy]:
    """``zero_bias`` for the finding's weight layers whose spec sets a bias away from 0 (a
    nonzero constant, a normal): the bias alone may pin their units (saturated, dead), which a
    new weight init leaves as it is (``bias_init`` is its own field). Verified like the others."""
    todo = [p for p in ctx.weight_pointers()
            if (b := getattr(ctx.layer_at(p), "bias_init", None)) is not None
            and (b.scheme == "normal" or (b.scheme == "constant" and b.value != 0))]
    if not todo:
        return []
    return [R.zero_bias(names_of(todo), [{"op": "add", "path": p + "/bias_init", "value": {"scheme": "zeros"}}
                                       for p in todo])]


def xavier_for_saturating(ctx: Context) -> list[Remedy]:
    ps = [p for p in ctx.weight_pointers() if ctx.plan.activation_of(p) in S.SATURATING]
    r = _init_remedy(ctx, "xavier_normal", ps)
    return [r] if r else []


#: Inputs whose root mean square is this many times the unit scale (or more) are not normalised:
#: raw 0-255 pixels read about 147.
FAR_INPUT_RMS = 10.0


#: Regression targets whose mean's size or standard deviation is this or more are far from the unit
#: scale a network's init and usual learning rates assume (prices of 3000 +- 800): ``normalise_targets``.
FAR_TARGET_SCALE = 10.0


def far_input(result: SimulationResult, detection: Detection, *, anywhere: bool = False
              ) -> tuple[str, float] | None:
    """(the first weight layer's name, the root mean square of its inputs) where ``detection`` is
    about that layer (``anywhere``: about any layer, as a large first step is the inputs' scale
    carried through the network) and its inputs are :data:`FAR_INPUT_RMS` or more times the unit
    scale its init assumes; None otherwise."""
    first = next((u for u in result.units if u.has_weights and "input_mean_square" in u.values), None)
    if first is None or (not anywhere and first.name not in {u.name for u in detection.units}):
        return None
    rms = math.sqrt(max(first.mean("input_mean_square"), 0.0))
    return (first.name, rms) if math.isfinite(rms) and rms >= FAR_INPUT_RMS else None


def far_targets(values: Any) -> tuple[float, float] | None:
    """(mean, standard deviation) of the regression targets ``values`` (a tensor or array; None:
    none given) where the mean's size or the deviation is :data:`FAR_TARGET_SCALE` or more; None
    otherwise."""
    if values is None:
        return None
    flat = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).reshape(-1)
    if not flat.size:
        return None
    mean, std = float(flat.mean()), float(flat.std())
    return (mean, std) if max(abs(mean), std) >= FAR_TARGET_SCALE else None


def input_normalisation(ctx: Context) -> list[Remedy]:
    """``normalise_inputs`` where the finding's first layer reads inputs far from the unit scale
    (a spec's ``input.scale`` of 255): the patch sets the scale to 1, what standardised inputs
    have."""
    if ctx.plan.spec.input.tokens is not None:
        return []
    found = far_input(ctx.result, ctx.detection)
    if found is None:
        return []
    patch: list[dict[str, Any]] = [{"op": "add", "path": "/input/scale", "value": 1.0}]
    if ctx.plan.spec.input.range is not None:  # standardised inputs are centred, not in the data's range
        patch = [{"op": "remove", "path": "/input/range"}, *patch]
    return [R.normalise_inputs(found[0], found[1], patch)]


def relu_family(ctx: Context, activation: str = "relu", swap: frozenset[str] | None = None) -> list[Remedy]:
    """Swap saturating (or dead ReLU) layers to a ReLU-family activation with He init; not an output
    layer's squashing (a saturated sigmoid output: the model's range, kept). ``swap``: the activations
    swapped instead (a NaN's exponentials, :func:`exponential_swap`)."""
    if ctx.detection.evidence.get("output"):
        return []
    if ctx.detection.evidence.get("zero_weights") and not ctx.detection.evidence.get("zero_init"):
        # the cause is weights that are all 0, not the activation: the init remedy re-initialises every
        # zero layer together, while a swap re-initialises only the layers it touches and credits the
        # activation (specsweep13 P1: tanh -> relu with He init on the hidden layers, the zero readout
        # kept, read "verified, fixed: 0 -> 0", its He init doing the work the init remedy names)
        return []
    want = swap if swap is not None else S.SATURATING if activation == "relu" else {"relu"}
    ps = [p for p in ctx.weight_pointers() if ctx.layer_at(p).activation in want]  # type: ignore[union-attr]  # pointers from weight/recurrent_pointers() name layers with this field
    separate = [p for p in ctx.activation_pointers() if ctx.layer_at(p).activation in want]  # type: ignore[union-attr]  # activation layers have this field
    if not ps and not separate:
        return []
    patch: list[dict[str, Any]] = []
    for p in ps:
        patch += [{"op": "add", "path": p + "/activation", "value": activation},
                  {"op": "add", "path": p + "/init", "value": {"scheme": "kaiming_normal"}}]
    patch += [{"op": "replace", "path": p + "/activation", "value": activation} for p in separate]
    swapped = sorted({ctx.layer_at(p).activation for p in ps + separate})  # type: ignore[union-attr]  # as above
    return [R.relu_family_activation(names_of(ps + separate), activation, patch, swapped=swapped)]


def exponential_swap(ctx: Context) -> list[Remedy]:
    """``relu_family_activation`` for the exponential layers of a spec whose forward overflowed
    (peersweep23 #3: Keras' ``exponential`` stacked under He init): exp's output scale is exponential
    in its input's, so no init or rate keeps such a stack finite; a ReLU with He init does."""
    return relu_family(ctx, "relu", frozenset({"exponential"}))


def normalisation(ctx: Context, kind: str) -> list[Remedy]:
    if ctx.detection.evidence.get("output"):
        return []  # a norm on the output layer's pre-activations would fix its scale, not the model's
    # not a layer a norm already reads: its own on the pre-activation, or a norm layer after its
    # activation (Keras' Conv2D(activation='relu') then BatchNormalization(): peersweep17)
    followed = read_by_norms(ctx.plan)
    copies: dict[str, list[str]] = {}
    for u in ctx.plan.all_units():
        copies.setdefault(u.pointer, []).append(u.name)
    ps = [p for p in ctx.weight_pointers() if ctx.layer_at(p).norm is None  # type: ignore[union-attr]  # pointers from weight/recurrent_pointers() name layers with this field
          and not all(name in followed for name in copies[p])]
    if not ps:
        return []
    patch = [{"op": "add", "path": p + "/norm", "value": kind} for p in ps]
    remedy = R.normalisation(kind, [names_of([p]) for p in ps], patch)
    return [_sized_norm_snippet(ctx, remedy, ps)]


def _sized_norm_snippet(ctx: Context, remedy: Remedy, pointers: Sequence[str]) -> Remedy:
    """``remedy`` (a norm on the layers at ``pointers``) with its snippet's ``n_in``/``n_out`` the
    first linear layer's sizes, naming the others it applies to alike (specsweep13: the spec's own
    sizes were known and the snippet still read ``nn.Linear(n_in, n_out)``); as it is where none is a
    linear layer with both sizes simulated."""
    linear = [(p, u) for p in pointers for u in ctx.result.units
              if u.pointer == p and u.type == "linear" and u.fan_in and u.fan_out]
    if not linear:
        return remedy
    p, u = linear[0]
    norm = "nn.BatchNorm1d" if remedy.id == "batch_norm" else "nn.LayerNorm"
    sizes = list(dict.fromkeys((v.fan_in, v.fan_out) for _, v in linear))
    others = (f"; likewise after each of its {len(linear) - 1} other linear layers"
              + (f" ({', '.join(f'Linear({a}, {b})' for a, b in sizes[1:4])})" if len(sizes) > 1 else "")
              if len(linear) > 1 else "")
    head = (f"# {names_of([p])}: Linear({u.fan_in}, {u.fan_out}){others}\n"
            f"nn.Sequential(nn.Linear({u.fan_in}, {u.fan_out}), {norm}({u.fan_out}), activation)")
    lines = remedy.snippet.splitlines()
    return remedy.model_copy(update={"snippet": "\n".join([head, *lines[1:]])})


def residual(ctx: Context) -> list[Remedy]:
    """Wrap repeated shape-keeping layers in skip connections.

    When the first copy changes the width (784 -> 256), it stays as it is and the
    remaining copies become residual blocks.
    """
    patch: list[dict[str, Any]] = []
    done: list[str] = []
    stacks: list[str] = []  # a stacked recurrent layer's words
    about = {u.pointer for u in ctx.detection.units}
    targets = [u for u in ctx.plan.units if u.copy == 0 and (
        (isinstance(u.layer, S.WEIGHT_LAYERS) and u.layer.repeat > 1 and u.pointer in ctx.weight_pointers())
        or (isinstance(u.layer, S.RecurrentLayer) and u.layer.num_layers > 1 and u.layer.repeat == 1
            and u.pointer in about))]
    for unit in reversed(targets):  # from the back, so inserting shifts no pointer still to patch
        layer = unit.layer
        inner = copy.deepcopy(_resolve(ctx.raw, unit.pointer))
        inner.pop("repeat", None)
        if isinstance(layer, S.RecurrentLayer):
            stack = _stacked_residual(unit.pointer, inner, layer, unit.in_shape)
            if stack:
                patch += stack
                stacks.append(f"the {layer.num_layers} stacked {layer.type} layers of {names_of([unit.pointer])} "
                              f"(num_layers: {layer.num_layers} as {layer.num_layers} layers of one, as in GNMT)")
            continue
        if unit.in_shape == unit.out_shape:
            patch.append({"op": "replace", "path": unit.pointer,
                          "value": {"type": "residual", "layers": [inner], "repeat": layer.repeat}})
        elif layer.repeat >= 3:
            index = int(unit.pointer.rsplit("/", 1)[1])
            patch.append({"op": "replace", "path": unit.pointer, "value": inner})
            patch.append({"op": "add", "path": f"/layers/{index + 1}",
                          "value": {"type": "residual", "layers": [inner], "repeat": layer.repeat - 1}})
        else:
            continue
        done.append(unit.pointer)
    if not patch:
        return []
    where = ([f"the repeated copies of {names_of(done[::-1])}"] if done else []) + stacks[::-1]
    return [R.residual_connections(" and ".join(where), patch)]


def _stacked_residual(pointer: str, raw: dict[str, Any], layer: S.RecurrentLayer,
                      in_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """A recurrent layer of ``num_layers`` k > 1 as k layers of one, those that keep the sequence's
    width wrapped in a residual block x + f(x) (GNMT's residual LSTM stack, Wu et al. 2016 Sec. 3.1):
    the first stays plain where it changes the width, the last where it reads out the final state
    (``output: last``); the rest run on sequences. Empty where no layer would be wrapped."""
    one = {**raw, "num_layers": 1, "output": "sequence"}
    width = layer.hidden_size * (2 if layer.bidirectional else 1)
    first = [one] if in_shape[-1] != width else []
    last = [{**one, "output": layer.output}] if layer.output != "sequence" else []
    wrapped = layer.num_layers - len(first) - len(last)
    if wrapped < 1:
        return []
    values = [*first, {"type": "residual", "layers": [one], "repeat": wrapped}, *last]
    parent, index = pointer.rsplit("/", 1)
    return ([{"op": "replace", "path": pointer, "value": values[0]}]
            + [{"op": "add", "path": f"{parent}/{int(index) + k}", "value": v} for k, v in enumerate(values[1:], 1)])


def scaled_residual(ctx: Context) -> list[Remedy]:
    """Scale every residual branch by 1/sqrt(the number of residual copies in the network), counted
    through the repeats that enclose them (ResNet's ``block`` of a residual and a ReLU, repeated 9
    times, holds a residual of repeat 1 that runs 9 times): the Fixup / SkipInit rule, which keeps
    the sum of the branches' variances of order one."""
    residuals = [u for u in ctx.plan.all_units() if isinstance(u.layer, S.ResidualBlock)]
    copies: dict[str, int] = {}
    for unit in residuals:
        copies[unit.pointer] = copies.get(unit.pointer, 0) + 1
    total = sum(copies.values())
    patch, done = [], []
    for pointer in copies:
        layer = next(u.layer for u in residuals if u.pointer == pointer)
        assert isinstance(layer, S.ResidualBlock)  # residuals holds only those
        # (a residual running once in a network of one is no sum to scale)
        scale = round(1 / math.sqrt(total), 4)
        if total > 1 and layer.scale > scale:
            patch.append({"op": "add", "path": pointer + "/scale", "value": scale})
            done.append(pointer)
    if not patch:
        return []
    return [R.scaled_residual(names_of(done), patch)]


def logits_loss(ctx: Context) -> list[Remedy]:
    """``from_logits: true``: the loss takes the last layer's raw outputs as logits; where the last
    layer ends in a sigmoid the loss on logits applies again, drop that sigmoid."""
    loss = ctx.plan.spec.loss
    if loss.type == "cross_entropy" and ctx.plan.classes == 1:
        return []  # over one class no form of the loss gives a gradient: binary_loss's case
    last = [u for u in ctx.plan.units if u.copy == 0][-1]
    squashed = ctx.result.squashed
    if loss.from_logits and squashed is not None:
        path = last.pointer + "/activation"
        # (one remedy per id: its change names the other way, from_logits: false, in words)
        return [R.logits_loss(loss.type, names_of([last.pointer]),
                              [{"op": "replace", "path": path, "value": "identity"}], squashed=squashed)]
    if loss.from_logits or ctx.detection.evidence.get("metric") == "softmax_units_under_binary_loss":
        return []  # (a softmax under binary cross-entropy: sigmoid_multilabel_output's)
    patch = _loss_patch(ctx, from_logits=True)
    if getattr(last.layer, "activation", None) not in (None, "identity"):
        # logits are the last layer's raw outputs: sigmoids per class give way to the loss's own
        # softmax, and a ReLU (which no logit below 0 passes) to a linear output, as the change says
        patch.insert(0, {"op": "replace", "path": last.pointer + "/activation", "value": "identity"})
    return [R.logits_loss(loss.type, names_of([last.pointer]), patch)]


def sigmoid_multilabel_output(ctx: Context) -> list[Remedy]:
    """A softmax over k > 2 units under binary cross-entropy (output_loss_mismatch's
    ``softmax_units_under_binary_loss``): a sigmoid per unit, for multi-label targets (the patch);
    the words name the other way, categorical cross-entropy for one class a sample."""
    ev = ctx.detection.evidence
    if ev.get("metric") != "softmax_units_under_binary_loss":
        return []
    last = [u for u in ctx.plan.units if u.copy == 0][-1]
    if getattr(last.layer, "repeat", 1) != 1:
        return []  # the output's copy and hidden ones'
    return [R.sigmoid_multilabel_output(names_of([last.pointer]), int(ev.get("units") or 0),
                                        [{"op": "replace", "path": last.pointer + "/activation", "value": "sigmoid"}],
                                        n_in=next((u.fan_in for u in ctx.detection.units if u.fan_in), None))]


def binary_loss(ctx: Context) -> list[Remedy]:
    """Cross-entropy over a single output unit (0 whatever the output): binary cross-entropy on it."""
    loss = ctx.plan.spec.loss
    if loss.type != "cross_entropy" or ctx.plan.classes != 1:
        return []
    last = [u for u in ctx.plan.units if u.copy == 0][-1]
    patch = _loss_patch(ctx, type="binary_cross_entropy")
    if (not loss.from_logits and getattr(last.layer, "activation", None) != "sigmoid"
            and getattr(last.layer, "repeat", 1) == 1):
        # a loss on probabilities takes the unit through a sigmoid, as the words say: the loss alone
        # changed read the raw output as a probability, clipped (peersweep19: the simulated edit
        # must match the loss)
        patch.insert(0, {"op": "add", "path": last.pointer + "/activation", "value": "sigmoid"})
    return [R.single_unit_binary_loss(names_of([last.pointer]), patch, on_logits=loss.from_logits)]


def _loss_patch(ctx: Context, **fields: Any) -> list[dict[str, Any]]:
    """The patch that sets ``fields`` of the spec's loss, however the spec gives it: an object (each
    field replaced or added), a name alone (``"loss": "cross_entropy"``) or nothing (the default
    loss; both become an object)."""
    given = ctx.raw.get("loss")
    if isinstance(given, dict):
        return [{"op": "replace" if k in given else "add", "path": f"/loss/{k}", "value": v} for k, v in fields.items()]
    loss = {"type": given if isinstance(given, str) else ctx.plan.spec.loss.type}
    return [{"op": "add", "path": "/loss", "value": {**loss, **fields}}]


def linear_output(ctx: Context) -> list[Remedy]:
    """A bounded activation on a regression output (a ReLU's clipped outputs, a sigmoid's range):
    the output layer (or its activation layer) with no activation."""
    ev = ctx.detection.evidence
    if ev.get("metric") not in ("clipped_output_fraction", "unreachable_target_fraction"):
        return []
    # (a layer repeated N times is the output's and N - 1 hidden layers': no patch of it alone)
    ps = [d.pointer for d in ctx.detection.units if getattr(ctx.layer_at(d.pointer), "repeat", 1) == 1]
    if not ps:
        return []
    act = ev.get("output_activation")
    act = act if isinstance(act, str) and act in OUTPUT_RANGES else "relu"
    return [R.linear_regression_output(names_of(ps), [{"op": "replace", "path": p + "/activation", "value": "identity"}
                                                      for p in ps], activation=act, output_range=OUTPUT_RANGES[act],
                                       logits=ev.get("from_logits") is True,
                                       # a Linear's widths; a convolution's fans count its kernel too
                                       n_out=next((u.fan_out for u in ctx.detection.units
                                                   if u.fan_out and u.type == "linear"), None),
                                       n_in=next((u.fan_in for u in ctx.detection.units
                                                  if u.fan_in and u.type == "linear"), None))]


def pre_layer_norm(ctx: Context) -> list[Remedy]:
    ps = [u.pointer for u in ctx.plan.units if u.copy == 0 and isinstance(u.layer, S.TransformerEncoderLayer)
          and not u.layer.norm_first]
    if not ps:
        return []
    patch = [{"op": "add", "path": p + "/norm_first", "value": True} for p in ps]
    return [R.pre_layer_norm(names_of(ps), patch)]


def gated_cells(ctx: Context) -> list[Remedy]:
    """rnn -> lstm, or a default lstm/gru -> lstm, with the forget gate open at the start."""
    out: list[Remedy] = []
    for p in ctx.recurrent_pointers():
        layer = ctx.layer_at(p)
        assert isinstance(layer, S.RecurrentLayer)
        steps = next(u.in_shape[0] for u in ctx.plan.all_units() if u.pointer == p)
        options: list[float | str] = ["chrono", 1.0] if steps >= CHRONO_MIN_STEPS else [1.0, "chrono"]
        if layer.type == "lstm":
            # only a gate opened wider than it is: chrono where it is not, 1 where the bias is under
            # it (an LSTM at chrono offered a bias of 1 would be offered a downgrade)
            fb_now = layer.forget_bias  # None: torch's default draw around 0
            options = [o for o in options if (o == "chrono" and fb_now != "chrono")
                       or (o == 1.0 and (fb_now is None or (not isinstance(fb_now, str) and fb_now < 1.0)))]
        for fb in options:
            # (the fields only an RNN or a GRU takes go: the patched spec must be valid)
            value = {k: v for k, v in _resolve(ctx.raw, p).items() if k not in _NOT_LSTM}
            value.update({"type": "lstm", "forget_bias": fb})
            remedy = R.gated_recurrent_cell(names_of([p]), fb, steps, [{"op": "replace", "path": p, "value": value}],
                                            already_lstm=layer.type == "lstm", layers=[_recurrent_module(ctx, p)])
            if str(value.get("recurrent_activation", "sigmoid")).startswith("hard_sigmoid"):
                # a hard sigmoid is flat past |x| = 2.5 (Keras 2's 0.2x + 0.5) or 3: an opened forget
                # gate's bias pins it there and chrono's input gate at 0, passing no gradient
                value["recurrent_activation"] = "sigmoid"
                remedy.params["recurrent_activation"] = "sigmoid"  # the Keras snippet's too (kerassweep28)
                remedy.change += ", and sigmoid gates (a hard sigmoid's gates pinned by that bias pass no gradient)"
            out.append(remedy)
    return out


#: Spec fields of a recurrent layer that an LSTM does not take (an RNN's, a GRU's), or are replaced.
_NOT_LSTM = frozenset({"type", "nonlinearity", "reset_after"})


def bounded_cells(ctx: Context) -> list[Remedy]:
    """tanh for every ``rnn`` layer of the spec whose nonlinearity is unbounded (relu), where the
    finding's growth is theirs: an exploding_gradient whose evidence says most of it is made in
    such layers (``unbounded_recurrent_activation``), or an exploding_through_time in one of them.
    (An LSTM's and a GRU's own activation is tanh in a spec; a Keras file's other ones go through
    the graph door, whose check swaps them on a copy.)"""
    det = ctx.detection
    ps = [u.pointer for u in ctx.plan.all_units()
          if isinstance(u.layer, S.RecurrentLayer) and u.layer.type == "rnn" and u.layer.nonlinearity not in BOUNDED]
    wanted = (bool(det.evidence.get("unbounded_recurrent_activation")) if det.code == "exploding_gradient"
              else any(u.pointer in ps for u in det.units))
    if not ps or not wanted:
        return []
    return [R.bounded_cell_activation(names_of(ps), "relu",
                                      [{"op": "add", "path": p + "/nonlinearity", "value": "tanh"} for p in ps])]


def orthogonal(ctx: Context) -> list[Remedy]:
    ps = [p for p in ctx.recurrent_pointers() if ctx.layer_at(p).recurrent_init.scheme != "orthogonal"]  # type: ignore[union-attr]  # pointers from weight/recurrent_pointers() name layers with this field
    if not ps:
        return []
    patch = [{"op": "add", "path": p + "/recurrent_init", "value": {"scheme": "orthogonal", "gain": 1.0}}
             for p in ps]
    return [R.orthogonal_init(names_of(ps), patch, layers=[_recurrent_module(ctx, p) for p in ps])]


def _recurrent_module(ctx: Context, pointer: str) -> R.RecurrentModule:
    """The spec's recurrent layer at ``pointer`` as the snippets name it: its sizes, built in the
    snippet (a spec has no module of the user's to reach; newuser17 #1)."""
    layer = ctx.layer_at(pointer)
    assert isinstance(layer, S.RecurrentLayer)
    unit = next(u for u in ctx.plan.all_units() if u.pointer == pointer)
    return R.RecurrentModule(name=f"{names_of([pointer])} ({layer.type})", cell=layer.type,
                             n_in=int(unit.in_shape[-1]), hidden=layer.hidden_size, num_layers=layer.num_layers,
                             bidirectional=layer.bidirectional)


def total_grad_norm(result: SimulationResult) -> float:
    """||dL/dtheta|| over every top-level unit with weights (geometric mean over seeds)."""
    weighted = weighted_units(result)
    return math.sqrt(sum(u.geo("grad_norm") ** 2 for u in weighted)) if weighted else math.nan


#: max_norm is this many times the total gradient norm of a healthy simulation at init: early
#: training norms rise a little above their initial value, and clipping should catch spikes, not
#: every step.
CLIP_HEADROOM = 2.0


def clip_threshold(reference: SimulationResult, basis: str) -> Remedy | None:
    """Clipping at ``CLIP_HEADROOM`` x the total gradient norm of ``reference`` (a healthy simulation).

    None when ``reference`` has no finite gradient norm.
    """
    total = total_grad_norm(reference)
    if not math.isfinite(total) or total <= 0:
        return None
    max_norm, why = float(f"{CLIP_HEADROOM * total:.2g}"), f"{CLIP_HEADROOM:g} x the total gradient norm at init in {basis}"
    existing = clipping_in_place(reference.optimizer)
    if existing is not None:  # the optimizer clips already (Keras' clipnorm...): named, not added again
        kept = reference.optimizer.global_clip_norm if reference.optimizer is not None else None
        return R.gradient_clipping_in_place(max_norm, why, existing, kept=kept, reference_total_grad_norm=total)
    return R.gradient_clipping(max_norm, why, reference_total_grad_norm=total)


def clipping_in_place(optimizer: S.OptimizerSpec | None) -> str | None:
    """The gradient clipping ``optimizer`` applies in training, in words (its ``clip_norm``,
    ``global_clip_norm``, ``clip_value``: a Keras optimizer's clipnorm, global_clipnorm, clipvalue),
    or None where it clips nothing."""
    if optimizer is None:
        return None
    said = []
    if optimizer.clip_norm is not None:
        said.append(f"clipnorm {optimizer.clip_norm:g}: each weight's gradient norm at most {optimizer.clip_norm:g}")
    if optimizer.global_clip_norm is not None:
        said.append(f"global_clipnorm {optimizer.global_clip_norm:g}: the total gradient norm at most "
                    f"{optimizer.global_clip_norm:g}")
    if optimizer.clip_value is not None:
        said.append(f"clipvalue {optimizer.clip_value:g}: each gradient element in [-{optimizer.clip_value:g}, "
                    f"{optimizer.clip_value:g}]")
    return "; ".join(said) or None


def clipping(ctx: Context) -> list[Remedy]:
    """max_norm from a healthy range: the norms of ``ctx.reference``, the best verified fix's
    re-simulation. Without one (``--no-verify``, or no remedy fixed the case) nothing is proposed:
    a threshold from the broken network's own norm (3.6e13 on std1_mlp) clips nothing."""
    if ctx.reference is None:
        return []
    r = clip_threshold(ctx.reference, "the best verified remedy's re-simulation")
    return [r] if r is not None else []


def batch_norms_named(names: list[str]) -> str:
    """The batch norms ``names`` in words: the first four, then ``...``."""
    return ", ".join(names[:4]) + (" ..." if len(names) > 4 else "") if names else "the batch norms"


def per_sample_norm_remedy(names: list[str]) -> Remedy:
    """A norm that needs no batch in place of the batch norms ``names``, which normalise over too few
    values (small_batch_statistics); not simulable: the training batch is the user's."""
    remedy = R.normalisation("layernorm", batch_norms_named(names))
    remedy.change = ("replace the batch norms by GroupNorm (nn.GroupNorm(min(32, C), C)) or LayerNorm, which "
                     "normalise each sample on its own, or train (and check) with a batch of 16 or more")
    return remedy


def per_sample_norm(ctx: Context) -> list[Remedy]:
    """:func:`per_sample_norm_remedy` for the finding's batch norms."""
    return [per_sample_norm_remedy(list(ctx.detection.evidence.get("layers") or []))]


def _init_made(ctx: Context) -> bool:
    """Whether the finding is a growth measured at initialisation in a spec that trains with no
    stated optimizer: no learning rate or weight decay acts on it (it is there before any step),
    and there is no rate to cut (specsweep10/11: "add weight decay 0.01" offered for a 10^10
    growth of an N(0, 1) init)."""
    return ctx.detection.code == "exploding_gradient" and ctx.result.optimizer is None


def learning_rate(ctx: Context, warmup_steps: int = 0) -> list[Remedy]:
    """The default learning-rate cut (nothing at init says by how much), with an optional warm-up;
    none for a growth made by the initialisation alone (:func:`_init_made`)."""
    if not warmup_steps and _init_made(ctx):
        return []
    return [R.lower_learning_rate(warmup_steps=warmup_steps)]


def smaller_learning_rate(ctx: Context) -> list[Remedy]:
    """The spec's learning rate scaled so the worst layer's first-step update ratio becomes
    :data:`gradhealth.core.remedies.UPDATE_RATIO_TARGET` (:func:`lower_rate`), as a patch of
    ``/optimizer/lr``."""
    return _new_rate(ctx, lower_rate)


def _new_rate(ctx: Context, rate: Callable[[Detection, S.OptimizerSpec], tuple[Remedy, float] | None]
              ) -> list[Remedy]:
    """``rate``'s remedy for the spec's optimizer, as a patch of ``/optimizer/lr``."""
    found = None if ctx.result.optimizer is None else rate(ctx.detection, ctx.result.optimizer)
    if found is None:
        return []
    remedy, new_lr = found
    remedy.patch = [{"op": "replace", "path": "/optimizer/lr", "value": new_lr}]
    return [remedy]


def positive_rate(ctx: Context) -> list[Remedy]:
    """``positive_learning_rate``: the spec's rate made positive (its size; 0.001 for 0), as a patch
    of ``/optimizer/lr``."""
    opt = ctx.result.optimizer
    if opt is None or opt.lr > 0:
        return []
    remedy = R.positive_learning_rate(opt.lr, _KERAS_CLASS.get(opt.type, "Adam"))
    remedy.patch = [{"op": "replace", "path": "/optimizer/lr", "value": abs(opt.lr) if opt.lr < 0 else 0.001}]
    return [remedy]


_KERAS_CLASS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adadelta": "Adadelta",
                "nadam": "Nadam", "adagrad": "Adagrad"}


def lower_rate(detection: Detection, opt: S.OptimizerSpec) -> tuple[Remedy, float] | None:
    """``lower_learning_rate`` for a ``large_updates`` detection, and the new rate (3 significant
    digits): one step of SGD, Adam, AdamW or RMSprop moves the weights by an amount proportional to
    the rate, so the factor is the target ratio over the measured one; the re-simulation measures
    it. None when the measured ratio is not above the target."""
    if not opt.lr > 0:
        return None  # (a rate at or below 0 is negative_learning_rate's to fix)
    by_curvature = _stable_rate(detection, opt)
    if detection.metric == "lr_times_sharpness":
        return by_curvature  # the sharpness bound alone judged it (rules.curvature_decides)
    # the layers judged (a layer started near zero on purpose is not: rules._judged_steps), each
    # against the line the finding judges it by (rules.update_ratio_limits: the warning line, a fresh
    # output layer's higher one), brought to the same share of it, UPDATE_RATIO_TARGET of the warning
    # line: the layer that needs the largest cut sets the rate
    ev = detection.evidence
    judged = ev.get("update_ratios")
    ratios = ({str(k): float(v) for k, v in judged.items() if isinstance(v, int | float)}
              if isinstance(judged, dict) and judged else {"": detection.value})
    line = ev.get("threshold")
    warning = float(line) if isinstance(line, int | float) and line > 0 else R.UPDATE_RATIO_TARGET * 10
    given = ev.get("update_ratio_limits")
    limits = {n: float(given[n]) if isinstance(given, dict) and isinstance(given.get(n), int | float) else warning
              for n in ratios}
    worst = min(ratios, key=lambda n: R.UPDATE_RATIO_TARGET * limits[n] / warning / ratios[n]
                if ratios[n] > 0 else math.inf)
    measured, limit = ratios[worst], limits[worst]
    target = R.UPDATE_RATIO_TARGET * limit / warning
    if not measured > target or not math.isfinite(measured):
        return by_curvature
    if by_curvature is not None and all(r <= limits[n] for n, r in ratios.items()):
        return by_curvature  # fired on the sharpness alone, every layer's step under the line: the bound's rate
    if limit == warning:
        by_ratio = _rate_to(target, measured, "worst", opt, R.lower_learning_rate)
    else:
        factor = target / measured
        by_ratio = (R.lower_learning_rate(
            factor, learning_rate=opt.lr,
            why=f"the first step moves {worst or 'the worst layer'} by {measured:.3g} of its weights' norm, past the "
                f"{limit:.3g} large_updates lets it move as a freshly initialised output layer; x{factor:.3g} "
                f"brings it to {target:.3g}, the same {R.UPDATE_RATIO_TARGET / warning:g} of its line as every "
                f"other layer's {R.UPDATE_RATIO_TARGET:g} of the warning line {warning:g}"),
            float(f"{opt.lr * factor:.3g}"))
    # past SGD's stability bound too: the lower of the two rates
    return by_curvature if by_curvature is not None and by_curvature[1] < by_ratio[1] else by_ratio


def _stable_rate(detection: Detection, opt: S.OptimizerSpec) -> tuple[Remedy, float] | None:
    """``lower_learning_rate`` where the detection's lr x sharpness is over SGD's stability bound
    (2 (1 + momentum)); else None. Where the run diverges (evidence ``diverges``, the rate probe's
    verdict): to 1 / (sharpness + weight decay), lr x sharpness 1, where the sharpest direction
    settles in one step. Where it does not (the catapult or edge-of-stability regime): only to the
    largest rate under the bound (3 significant digits, rounded down), since every cut beyond that
    slows the run's other directions for nothing the probe showed (a sigmoid LeNet at d2l's 0.9
    trains, 6x lower it sits at chance for epochs)."""
    ev = detection.evidence
    figures = [ev.get(k) for k in ("lr_times_sharpness", "stability_bound", "sharpness")]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in figures):
        return None
    x, bound, sharp = (float(cast(float, v)) for v in figures)
    if not x > bound or not x > 0:
        return None
    if ev.get("diverges") is False and ev.get("clip_bounded_step") is not None:
        return None  # clipped steps oscillate within lr x clip, no runaway to cut the rate for (rules._clipped)
    # the evidence's stable_learning_rate: one computation (sharpness.stable_rate) for both
    stable = ev.get("stable_learning_rate")
    if not isinstance(stable, int | float) or not stable > 0:
        stable = opt.lr * (bound if ev.get("diverges") is False else 1.0) / x
    if ev.get("diverges") is False:
        new_lr = _round_down(float(stable))
        why = (f"lr x sharpness is {x:.3g} (sharpness {sharp:.3g}), over SGD's stability bound {bound:g}, though "
               f"the run does not diverge: lr {new_lr:g} is the largest rate under the bound, where the sharpest "
               "direction no longer overshoots")
    else:
        new_lr = float(f"{float(stable):.3g}")
        why = (f"lr x sharpness is {x:.3g} (sharpness {sharp:.3g}), over SGD's stability bound "
               f"{bound:g}: lr {new_lr:g} = 1/sharpness puts it at 1")
    if not 0 < new_lr < opt.lr:
        return None
    return R.lower_learning_rate(new_lr / opt.lr, learning_rate=opt.lr, why=why), new_lr


def _round_down(value: float) -> float:
    """``value`` (> 0) rounded down to 3 significant digits."""
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return float(f"{math.floor(value / step * (1 + 1e-12)) * step:.3g}")


def decay_step(opt: S.OptimizerSpec) -> float:
    """The share of each weight's norm the first step's weight decay alone removes: SGD's L2 term
    lr wd w (times 1 + momentum with Nesterov, as the whole step), AdamW's decoupled lr wd w; 0 for
    the optimizers that divide the decay by the gradient's scale (Adam's, RMSprop's L2)."""
    if opt.type == "sgd":
        return abs(opt.lr) * opt.weight_decay * (1 + opt.momentum if opt.nesterov and opt.momentum > 0 else 1)
    return abs(opt.lr) * opt.weight_decay if opt.type == "adamw" else 0.0


def smaller_weight_decay(ctx: Context) -> list[Remedy]:
    """For ``large_updates`` whose step is mostly the weight decay's (SGD at 0.1 with a decay of
    20 shrinks every weight by 2x its norm: a lower rate shrinks the step but the decay still
    outweighs the gradient): the decay lowered so that it alone takes a tenth of
    :data:`gradhealth.core.remedies.UPDATE_RATIO_TARGET` per step, as a patch of
    ``/optimizer/weight_decay``."""
    opt = ctx.result.optimizer
    if opt is None or not opt.lr > 0 or not opt.weight_decay > 0:
        return []
    share = decay_step(opt)
    if share < R.UPDATE_RATIO_TARGET or share < 0.5 * ctx.detection.value:
        return []
    new = float(f"{opt.weight_decay * 0.1 * R.UPDATE_RATIO_TARGET / share:.3g}")
    remedy = R.lower_weight_decay(opt.weight_decay, new, (
        f"the decay alone shrinks every weight by {share:.3g} of its norm each step (lr x weight_decay), "
        f"{share / ctx.detection.value:.0%} of the largest step measured"))
    remedy.patch = [{"op": "replace", "path": "/optimizer/weight_decay", "value": new}]
    return [remedy]


def larger_learning_rate(ctx: Context) -> list[Remedy]:
    """The spec's learning rate scaled so the fastest layer's first-step update ratio becomes
    :data:`gradhealth.core.remedies.UPDATE_RATIO_FLOOR_TARGET` (:func:`raise_rate`), as a patch
    of ``/optimizer/lr``."""
    return _new_rate(ctx, raise_rate)


def raise_rate(detection: Detection, opt: S.OptimizerSpec) -> tuple[Remedy, float] | None:
    """``raise_learning_rate`` for a ``small_updates`` detection, and the new rate (3 significant
    digits): the update is proportional to the rate (:func:`lower_rate`), so the factor is the
    target ratio over the judged layer's (the median weight's: :class:`.rules.SmallUpdates`). None
    when the measured ratio is not below the target, and none where that factor would move the
    fastest layer (evidence ``max_update_ratio``) past :data:`gradhealth.core.remedies.UPDATE_RATIO_TARGET`,
    the healthy range's top that ``lower_learning_rate`` cuts a rate down to: the layers' steps then
    spread wider than the healthy range, which no one rate serves (a rate that moves the slow layers
    blows the fast one up: Adam at 6.24e+04 for a median step of 1.6e-12 beside an output moving
    0.009, peersweep21), so the gap is the network's, not the rate's; the explanation says so."""
    best = detection.value
    if not 0 < best < R.UPDATE_RATIO_FLOOR_TARGET or not opt.lr > 0:
        return None
    if detection.evidence.get("gradient_under_eps"):
        # an adaptive optimizer's step is lr x g / eps under its eps: linear in the rate for this one
        # step, but the rate that scales it up moves every weight by itself once |g| passes eps
        # (peersweep23: Adam 0.001 -> 6.83e+03 for gradients vanished to 1e-11)
        note = (" No learning rate is proposed: the step is small because the gradients are below the "
                "optimizer's eps, and a rate raised to make up for them would step every weight by that rate "
                "once they grow past it.")
        if note not in detection.explanation:
            detection.explanation += note
        return None
    which = "median weight's" if detection.metric == "median_update_ratio" else "fastest"
    fastest = detection.evidence.get("max_update_ratio")
    if (isinstance(fastest, int | float) and math.isfinite(fastest) and fastest > 0
            and R.UPDATE_RATIO_FLOOR_TARGET / best * fastest > R.UPDATE_RATIO_TARGET):
        note = (f" No learning rate is proposed: x{R.UPDATE_RATIO_FLOOR_TARGET / best:.3g}, which would bring the "
                f"median weight's layer to {R.UPDATE_RATIO_FLOOR_TARGET:g}, would move the fastest layer by "
                f"{R.UPDATE_RATIO_FLOOR_TARGET / best * fastest:.3g} of its weights per step, past "
                f"{R.UPDATE_RATIO_TARGET:g}, the most a healthy step moves; the layers' steps spread "
                f"{fastest / best:.3g}x, wider than the healthy range, so the slow layers' small gradients are "
                "the network's to fix (their init, or what holds their gradient back), not the rate's.")
        if note not in detection.explanation:
            detection.explanation += note
        return None
    return _rate_to(R.UPDATE_RATIO_FLOOR_TARGET, best, which, opt, R.raise_learning_rate)


def _rate_to(target: float, measured: float, which: str, opt: S.OptimizerSpec,
             make: Callable[..., Remedy]) -> tuple[Remedy, float]:
    """``make``'s remedy scaling ``opt``'s rate by target / measured (the first step's ratio is
    proportional to the rate), and the new rate to 3 significant digits."""
    factor = target / measured
    remedy = make(factor, learning_rate=opt.lr,
                  why=f"the first step moves the {which} layer by {measured:.3g} of its weights' norm; "
                      f"x{factor:.3g} brings it to {target:g}")
    return remedy, float(f"{opt.lr * factor:.3g}")


def decay(ctx: Context) -> list[Remedy]:
    """``weight_decay`` at :data:`gradhealth.core.remedies.WEIGHT_DECAY` (a training-time remedy:
    not simulated at initialisation); none where the spec's optimizer already decays its weights
    as much or more (GPT-2's 0.1 was told to "add weight decay 0.01"), nor for a growth made by the
    initialisation alone (:func:`_init_made`)."""
    opt = ctx.result.optimizer
    if (opt is not None and opt.weight_decay >= R.WEIGHT_DECAY) or _init_made(ctx):
        return []
    return [R.weight_decay()]


def _resolve(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.strip("/").split("/"):
        if part:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
    return node


#: A remedy builder of the architecture check: what it proposes for a finding (unverified).
Builder = Callable[[Context], list[Remedy]]
