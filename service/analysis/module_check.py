"""The check of a real network - a live ``torch.nn.Module`` or an ONNX file - end to end.

Same findings, thresholds and document as the spec check (:mod:`gradhealth.analysis.check`):
the graph simulation (:mod:`gradhealth.analysis.graph`) gives a :class:`SimulationResult`, the
spec check's rules (:func:`gradhealth.analysis.rules.detect`) judge it. Remedies cannot be JSON
patches here (there is no spec), so each one that is a change of weights or of activation modules
is applied to a deep copy of the network and simulated again with the same seeds and inputs -
re-initialisation (He / Xavier / LeCun), an activation swap (Sigmoid/Tanh -> ReLU, ReLU -> LeakyReLU),
orthogonal recurrent weights, the LSTM chrono forget-gate bias. Remedies that need a new structure
(normalisation layers, residual connections, a gated cell for a plain RNN) are proposed with their
PyTorch snippet and ``verified: null``, and their ``change`` says why they were not simulated.
The user's module itself is never modified: every simulation runs on a copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import numbers
import os
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.utils._pytree as pytree
from pydantic import ValidationError
from torch import nn

from gradhealth.analysis.activations import BOUNDED, canonical
from gradhealth.analysis.cells import cell_of, mark
from gradhealth.analysis.check import (
    MODULE_DOOR,
    Verdict,
    _layer_report,
    _rank,
    acted_on,
    clip_reference,
    decided,
    improved,
    init_after_structural,
    judge,
    judged_figure,
    layers_with_weights,
    not_judged,
    optimizer_shown,
    predicted_reinit_effect,
    same_metric_after,
    seed_margin,
    summary_line,
    theory_report,
    verdict_note,
    with_note,
    without_inflated_rate,
)
from gradhealth.analysis.figures import ACTIVATION_ABS_MAX, OUTPUT_GRAD_ABS_MAX, WEIGHT_GRAD_ABS_MAX
from gradhealth.analysis.findings import Detection, fmt, layer_words, merge_same_code, trunk
from gradhealth.analysis.graph import (
    BOUNDED_ENDINGS,
    SWAP_ATTRIBUTE,
    GraphRun,
    InputSpec,
    call,
    copy_module,
    first_nonfinite,
    first_nonfinite_backward,
    first_tensor,
    in_own_dtype,
    initial_sharpness,
    layer_weight,
    make_inputs,
    narrow_tensors,
    native_nonfinite,
    output_class_axis,
    output_op,
    own_dtype,
    own_parameters,
    parametrized_weight,
    precision_name,
    rate_probe,
    role_of,
    simulate_graph,
    softmax_over_last,
)
from gradhealth.analysis.guards import Guard, guard_note, guardable, guarded_code
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.limits import OverBudget, budget_note, over_budget
from gradhealth.analysis.losses import OUTPUT_RANGES, unreachable_fraction
from gradhealth.analysis.quiet import quiet_run_notes
from gradhealth.analysis.remedies import (
    FAR_INPUT_RMS,
    FAR_TARGET_SCALE,
    clip_threshold,
    far_input,
    far_targets,
    init_scheme_for,
    lower_rate,
    per_sample_norm_remedy,
    raise_rate,
)
from gradhealth.analysis.rules import (
    SIMPLEX_RANGES,
    bounded_range,
    bounded_softmax_input,
    clipped_output,
    curvature,
    curvature_skipped,
    detect,
    init_variance,
    judged_update_ratios,
    linear_fans,
    momentum_build_up,
    no_output_gradient,
    output_layer,
    output_width,
    probe_words,
    relu_logits_output,
    scale_invariant_layer,
    sigmoids_under_cross_entropy,
    simplex_regression_output,
    simulated_weights,
    softmax_under_binary_loss,
    unbounded_cells,
)
from gradhealth.analysis.sharpness import Sharpness, StepProbe
from gradhealth.analysis.simulate import PROBABILITY_LOSSES, SimulationResult, UnitStats, at_rate
from gradhealth.analysis.spec import InitSpec, OptimizerSpec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.analysis.timing import (  # noqa: F401  (re-exported: shared with the Keras and spec doors)
    DEFAULT_SEEDS,
    TIME_FLOOR_BATCH,
    TIME_FLOOR_SEEDS,
    Timing,
    fit_time,
)
from gradhealth.core import remedies as R
from gradhealth.core.document import (
    SEVERITY_RANK,
    Diagnosis,
    Finding,
    JudgedFigure,
    Remedy,
    SimulationInfo,
    TimeStep,
    Verified,
    finite_or_none,
    status_of,
)
from gradhealth.core.losses import LOSSES, TORCH_LOSS_MODULES, loss_hint, loss_problem
from gradhealth.core.numbers import range_problem
from gradhealth.core.rules import rule
from gradhealth.core.words import first_few
from gradhealth.devices import check_device
from gradhealth.errors import (
    ArgumentError,
    ArgumentTypeError,
    DeviceArgumentError,
    GradHealthError,
    Problem,
    SpecError,
)

Edit = Callable[[nn.Module, int], None]
#: The change that gives the loss logits (``GraphRun.from_logits``), the output left as it is.
LOGITS = "from_logits"
#: The change that drops the output's softmax/sigmoid a loss on logits applies again (``GraphRun.squashed``).
ONCE = "squash_once"
#: The change that takes a live module's final softmax out of the loss (``GraphRun.unsquash``).
UNSQUASH = "unsquash"
#: The change that puts a single output unit under binary cross-entropy, through a sigmoid.
BINARY = "binary_cross_entropy"
#: The change that standardises the regression targets the loss is taken against, (y - mean) / std
#: (``GraphRun.target_samples``): ``normalise_targets``.
STANDARDISED_TARGETS = "standardised_targets"
#: What a remedy changes to be verified: the network (an edit of each seed's copy), the
#: optimizer (a new learning rate for ``large_updates``) or the loss (:data:`LOGITS`, :data:`ONCE`).


@dataclasses.dataclass(frozen=True)
class DropSquash:
    """The change that drops a bounded output activation the loss on logits does not apply again
    (a sigmoid or tanh head under a cross-entropy whose own squash is a softmax; a tanh under binary
    cross-entropy): that activation taken out of each copy (``edit``) and the run's ``squashed``
    cleared, so the loss reads the raw logits. :data:`ONCE` alone left the activation in the network
    and read the floor gone (kerassweep29 cad_sigmoid_from_logits)."""

    edit: Edit


Change = Edit | OptimizerSpec | Guard | DropSquash | str
NOT_SIMULATED = ("not verified on this network: it needs a new structure, which the check does "
                 "not invent for a graph it did not write; make the change and check again")
_SATURATING = {"sigmoid", "tanh", "hardtanh", "hardsigmoid", "softplus", "glu"}
#: A bias whose root mean square is this far from 0 is offered zeroed beside a saturation finding:
#: PyTorch's default draws a layer's biases within 1/sqrt(fan_in), an RMS of 0.58 at fan-in 1
_SATURATING_BIAS = 1.0
def not_reinitialised(names: list[str]) -> str:
    """Why an init remedy is not verified where the forward computes layers with functions on
    parameters it holds, naming those parameters: what this model has (a capsule layer's
    ``x @ self.route_weights[...]``), not a stock example (modsweep43: "F.linear over a
    ParameterList" said of a model with neither)."""
    return ("not verified on this network: its forward computes layers with functions on parameters "
            f"it holds ({first_few(names, 3)}, used directly in the forward, not by an nn.Linear/Conv module), "
            "which the check does not re-initialise; make the change and check again")


#: The layers a re-initialisation or a bias edit touches: transposed convolutions too (a generator's,
#: a decoder's or a U-Net's up-path: msweep9's VAE kept its std-10 ConvTranspose2d under "he_init")
#: (the init and bias snippets loop over the same kinds: :data:`gradhealth.core.remedies.INIT_LAYER_TYPES`)
_WEIGHT_LAYERS: tuple[type[nn.Module], ...] = tuple(getattr(nn, t) for t in R.INIT_LAYER_TYPES)


def _elementwise_scan(u: Any) -> bool:
    """Whether ``u`` is an element-wise recurrence's unit (h = a * h + u; graph.elementwise_loops):
    its decay a is its only recurrent weight, a per-channel vector, not a layer's matrix."""
    return u.pointer.startswith("function:") and u.type == "rnn" and not u.has_weights


def _layers(net: nn.Module, types: tuple[type, ...]) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, types)
            or (getattr(m, "role", None) is not None and role_of(m).kind == "weight"
                and role_of(m).type in ("linear", "conv1d", "conv2d", "conv3d"))]


def _redraw(m: nn.Module, scheme: str) -> None:
    """``m``'s weight drawn afresh with ``scheme`` (kaiming_normal, xavier_normal or lecun_normal), in place."""
    parametrized = parametrized_weight(m)
    # a parametrized weight (weight_norm) is computed: draw a new one and assign it
    # (the parametrization's right_inverse sets its originals)
    # a wrapper's layer that computes its weight in forward (a SpectralNorm's
    # ``weight_bar``): the parameter it is computed from
    found = layer_weight(m)
    if found is None:
        return
    w = found
    if parametrized:
        w = torch.empty_like(w)
    if scheme == "kaiming_normal":
        nn.init.kaiming_normal_(w, nonlinearity="relu")
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(w)
    else:  # lecun_normal
        nn.init.normal_(w, 0.0, w[0].numel() ** -0.5)
    if parametrized:
        m.weight = w


def _init_edit(scheme: str) -> Edit:
    def edit(net: nn.Module, seed: int) -> None:
        with torch.no_grad():
            for m in _layers(net, _WEIGHT_LAYERS):
                _redraw(m, scheme)
        _zero_bias_edit(net, seed)  # the init remedies start every bias at 0 (their words say so)
    return edit


def _named_modules(net: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The modules of ``net`` that the units ``names`` are (an imported graph names its ops itself)."""
    named = getattr(net, "module_names", None)
    if callable(named):
        return [m for m, (name, _) in named().items() if name in names]
    modules = dict(net.named_modules())
    return [modules[name] for name in names if name in modules]


def _reinit_named_edit(schemes: Mapping[str, str]) -> Edit:
    """Only the layers ``schemes`` names (unit name -> init scheme) re-drawn, their biases at 0,
    every other stored weight kept: a collapsed layer's re-initialisation on the checkpoint itself."""
    def edit(net: nn.Module, seed: int) -> None:
        with torch.no_grad():
            for scheme in dict.fromkeys(schemes.values()):
                for m in _named_modules(net, [n for n, s in schemes.items() if s == scheme]):
                    _redraw(m, scheme)
                    bias = getattr(m, "bias", None)
                    if isinstance(bias, torch.Tensor):
                        bias.zero_()
    return edit


#: The init each init remedy's edit draws (:func:`_init_edit`): Kaiming's for ReLU (gain sqrt 2, whatever
#: the activation's slope), Xavier's, LeCun's (1/fan_in)
_EDIT_INITS = {R.INIT_REMEDY["kaiming_normal"]: InitSpec(scheme="kaiming_normal", gain=math.sqrt(2.0)),
               R.INIT_REMEDY["xavier_normal"]: InitSpec(scheme="xavier_normal"),
               R.INIT_REMEDY["lecun_normal"]: InitSpec(scheme="lecun_normal")}


#: How many standard errors of a variance measured on n weights (sqrt(2 / n) of it for normal
#: draws; a uniform draw's is smaller) a layer's measured variance may be from an init's and still be
#: read as drawn from it.
SAME_INIT_SIGMAS = 3.0


def already_drawn_as(result: SimulationResult, remedy_id: str) -> bool:
    """Whether the init remedy ``remedy_id``'s edit (:func:`_init_edit`: every Linear/Conv re-drawn
    with its init, biases at 0) would re-draw the model's weights from the distribution they already
    have: every layer it re-draws has that init's variance to the sampling spread of its weights
    (its measured variance within :data:`SAME_INIT_SIGMAS` standard errors, sqrt(2 / n) of it on n
    weights, and the network's weights pooled within as many of theirs), and every bias is 0
    already. Such a remedy is a new random draw, whose "fixed" on a narrow layer is seed noise
    (peersweep23: he_init "FIXED: max_dead_fraction 0.8 -> 0.4" on 5-wide ReLU layers already
    He-uniform; He-normal has the same variance). False where a layer's fans, weights or variance
    are not known (a transposed convolution's fans differ from torch's), or nothing is re-drawn. Not
    asked of a stored checkpoint (:attr:`.SimulationResult.checkpoint`): trained weights are no draw,
    however close their second moment comes to an init's, and its init remedies are advice for
    retraining from scratch (kerassweep24's regressor: |N(0, He)| kernels have He's second moment)."""
    init = _EDIT_INITS.get(remedy_id)
    if init is None:
        return False
    redrawn = [u for u in result.units if u.has_weights and not u.pointer.startswith("function:")
               and u.type in ("linear", "conv1d", "conv2d", "conv3d")]
    if not redrawn or any("transpose" in (u.type or "") for u in result.units if u.has_weights):
        return False
    ratios, counts = [], []
    for u in redrawn:
        key = "weight_rms" if "weight_rms" in u.values else "weight_std"
        if key not in u.values or not u.fan_in or not u.fan_out:
            return False
        var = init_variance(init, u.fan_in, u.fan_out, u.activation)
        std = u.mean(key)
        n = u.mean("weight_count") if "weight_count" in u.values else float(u.fan_in * u.fan_out)
        if var is None or not var > 0 or not math.isfinite(std) or not n >= 1:
            return False
        if "bias_mean_square" in u.values and u.mean("bias_mean_square") > 0:
            return False  # the edit zeroes the biases: a change of its own
        ratio = std ** 2 / var
        if abs(ratio - 1) > SAME_INIT_SIGMAS * math.sqrt(2 / n):
            return False
        ratios.append(ratio)
        counts.append(n)
    total = sum(counts)
    pooled = sum(r * n for r, n in zip(ratios, counts, strict=True)) / total
    return abs(pooled - 1) <= SAME_INIT_SIGMAS * math.sqrt(2 / total)


def _init_forecast(result: SimulationResult) -> Callable[[Remedy], float | None]:
    """The log10 change mean-field theory predicts of an init remedy here (:func:`.check.predicted_reinit_effect`):
    its edit re-draws every Linear/Conv module, a model file's included (not a layer the forward computes
    with a function on its own parameters) and zeroes their biases."""
    def predict(remedy: Remedy) -> float | None:
        init = _EDIT_INITS.get(remedy.id)
        if init is None:
            return None
        return predicted_reinit_effect(result, lambda u: init if not u.pointer.startswith("function:") and u.type in (
            "linear", "conv1d", "conv2d", "conv3d") else None, zero_bias=True)
    return predict


def _scale_branches_edit(ends: list[str], factor: float) -> Edit:
    """The weight and bias of each residual branch's last layer (``ends``, the units summed into
    another path) times ``factor`` on the copy: the branch's output scaled by it where the layer
    is linear, a norm's affine, or followed by a ReLU (f(cz) = c f(z))."""
    def edit(net: nn.Module, seed: int) -> None:
        named = getattr(net, "module_names", None)  # an imported graph names its ops itself
        if callable(named):
            found = [m for m, (name, _) in named().items() if name in ends]
        else:
            modules = dict(net.named_modules())
            found = [modules[name] for name in ends if name in modules]
        with torch.no_grad():
            for m in found:
                for p in (getattr(m, "weight", None), getattr(m, "bias", None)):
                    if isinstance(p, torch.Tensor) and not parametrized_weight(m):
                        p.mul_(factor)
    return edit


def _zero_bias_edit(net: nn.Module, seed: int) -> None:
    """Every Linear/Conv bias of the copy at 0, the weights kept (a bias far below the
    pre-activations' spread holds its units off: RetinaNet's prior -4.6 copied onto every conv)."""
    with torch.no_grad():
        for m in _layers(net, _WEIGHT_LAYERS):
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()


#: The norms whose affine shift (beta) can hold the units after them off as a layer's bias does.
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d,
                nn.InstanceNorm2d, nn.InstanceNorm3d)


def _zero_shift_edit(net: nn.Module, seed: int) -> None:
    """:func:`_zero_bias_edit`, and every norm's shift at 0 too (a BatchNorm whose beta is -3 kills
    the ReLUs after it whatever the Linear before it does: msweep21)."""
    _zero_bias_edit(net, seed)
    with torch.no_grad():
        for m in _layers(net, _NORM_LAYERS):
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()


#: What the re-initialising edits do to the biases, which the remedies' words must say (with the
#: weights kept, a dead layer's negative biases alone can be what kills it)
_BIASES_ZEROED = "and their biases at 0"


class _SwappedReLU(nn.ReLU):
    """nn.ReLU in the place of an activation that was given more inputs than the tensor (an ONNX
    ``Clip``'s bounds): those are the old activation's, not the new one's."""

    def forward(self, x: torch.Tensor, *_bounds: object) -> torch.Tensor:
        return super().forward(x)


class _SwappedLeakyReLU(nn.LeakyReLU):
    """nn.LeakyReLU in the place of an activation given more inputs than the tensor (as :class:`_SwappedReLU`)."""

    def forward(self, x: torch.Tensor, *_bounds: object) -> torch.Tensor:
        return super().forward(x)


def _swap_edit(old: set[str], new: str, keep: str | None = None, keep_call: str | None = None) -> Edit:
    """Every activation module of the kinds ``old`` swapped for ``new`` (He init after), but the one
    at ``keep`` (the output's own squashing: the model's range); ``keep_call``: the unit whose
    activation, called as a function (``torch.sigmoid(self.out(x))``), is kept so."""
    def make() -> nn.Module:
        return _SwappedReLU() if new == "relu" else _SwappedLeakyReLU(0.01)

    def edit(net: nn.Module, seed: int) -> None:
        for path, parent in list(net.named_modules()):
            for name, child in list(parent.named_children()):
                if (f"{path}.{name}" if path else name) == keep:
                    continue
                # a softmax is swapped only where it runs over a hidden layer's features (the
                # tracers decide, as it runs): an output's probabilities (keras_torch's
                # _OutputSoftmax) are the model's range
                if role_of(child).kind == "act" and role_of(child).activation in old - {"softmax"}:
                    setattr(parent, name, make())
        # the same activations called as functions (F.sigmoid(self.fc(x))) are swapped as they run
        object.__setattr__(net, SWAP_ATTRIBUTE, (frozenset(old), new, make(), keep_call))
        _init_edit("kaiming_normal")(net, seed)
    return edit


def _output_activation_module(model: nn.Module, path: str, *, after: bool) -> str | None:
    """The path of the activation module at ``path``; with ``after``, of the one right after the
    layer at ``path`` in its nn.Sequential (the measurement folds it into that layer's unit). None
    where there is none (an activation called in forward)."""
    parent, _, child = path.rpartition(".")
    try:
        container = model.get_submodule(parent) if parent else model
    except AttributeError:
        return None
    names = [n for n, _ in container.named_children()]
    if child not in names:
        return None
    if after:
        if not isinstance(container, nn.Sequential) or names[-1] == child:
            return None
        child = names[names.index(child) + 1]
    if role_of(getattr(container, child)).kind != "act":
        return None
    return f"{parent}.{child}" if parent else child


def _access(path: str) -> str:
    """Python that reaches the submodule at the qualified name ``path`` from ``model``:
    ``model.head[4]`` for "head.4" (an index into a Sequential or ModuleList), ``getattr`` for a
    name that is no identifier."""
    out = "model"
    for part in path.split(".") if path else []:
        out = (f"{out}[{part}]" if part.isdigit() else f"{out}.{part}" if part.isidentifier()
               else f"getattr({out}, {part!r})")
    return out


def _linear_output_snippet(last: UnitStats, path: str | None, activation: str) -> str:
    """The output_activation remedy's code for a live module's bounded output ``last`` (the layer
    whose activation is ``activation``): the activation module at ``path`` replaced by nn.Identity,
    or, where the forward calls it as a function, the layer's output returned as it is
    (newuser10 #7: the generic ``nn.Linear(n_in, 1)`` named neither the module nor its width)."""
    layer = last.pointer.removeprefix("module:")
    shape = (f"{last.module_class or 'Linear'}({last.fan_in}, {last.fan_out})" if last.type == "linear"
             and last.fan_in and last.fan_out else last.module_class or last.type)
    torch_name = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardtanh": "Hardtanh",
                  "softsign": "Softsign", "hardsigmoid": "Hardsigmoid"}.get(activation, activation)
    if path is not None:
        return (f"{_access(path)} = nn.Identity()  # was nn.{torch_name}() after {_access(layer)}, a {shape}: "
                "the output is now linear")
    return (f"return {_access(layer).replace('model', 'self', 1)}(x)  # in forward, not "
            f"torch.{activation}(...) of it: {_access(layer)} is a {shape}, its output now linear")


#: The batch norm that follows each kind of weight layer, over its output's channels.
_BATCH_NORMS = ((nn.Linear, "BatchNorm1d", "out_features"), (nn.Conv1d, "BatchNorm1d", "out_channels"),
                (nn.Conv2d, "BatchNorm2d", "out_channels"), (nn.Conv3d, "BatchNorm3d", "out_channels"))


#: Where a norm goes, by what a layer's output feeds (:func:`_norm_place`), as the snippet's comment
#: says it (modsweep47 #2: "then its norm, before its activation" on every conv of a BN-free ResNet,
#: its 1x1 shortcut convs and the convs whose output is added to the skip path too).
_NORM_PLACES = {
    "activation": "each layer below feeds an activation: its norm goes between the two",
    "branch_end": ("each layer below ends a residual branch, its output added to a skip path: its norm goes "
                   "before the add (the sum then passes through the activation, if any, as before)"),
    "shortcut": ("each layer below is a shortcut's projection, reading the block's input beside the branch: "
                 "its norm goes on the shortcut, before the add"),
    "plain": "each layer below: its norm on its output",
}


def _norm_place(unit: UnitStats, result: SimulationResult) -> str:
    """What ``unit``'s output feeds, for where a norm after it goes: an activation (folded into its
    unit), a sum with another path as a residual branch's last layer or as a shortcut's projection
    (summed, and reading the same units as a layer that is not summed: the branch's first layer beside
    it, as a ResNet's downsample conv beside the block's conv1), or neither."""
    if unit.activation is not None:
        return "activation"
    if unit.name not in result.summed:
        return "plain"
    return "shortcut" if unit.name in shortcut_projections(result) else "branch_end"


def shortcut_projections(result: SimulationResult) -> set[str]:
    """The summed units (:attr:`SimulationResult.summed`) that are a shortcut's projection, not a
    residual branch's last layer: each reads the same units as a layer that is not summed, the
    branch's first layer beside it (a ResNet's ``downsample`` conv beside the block's ``conv1``,
    both reading the block's input). Fixup/SkipInit scale the branch, never the shortcut, which
    carries the stream (modsweep47 ll_resnet56_nobn: the two downsample convs scaled with the
    branches shrank the whole stream, a 5.29e3x growth "fixed" into a 32x shrink)."""
    readers: dict[str, set[str]] = {}
    for src, targets in result.feeds.items():
        for target in targets:
            readers.setdefault(target, set()).add(src)
    summed = set(result.summed)
    # (a layer reading the network's input reads no unit: beside another that reads it too)
    firsts = [readers.get(u.name, set()) for u in result.units if u.name not in summed and u.fan_in]
    return {name for name in summed if readers.get(name, set()) in firsts}


def branch_ends(result: SimulationResult) -> list[str]:
    """:attr:`SimulationResult.summed` (one name per residual sum made) without the shortcuts'
    projections (:func:`shortcut_projections`): the layers a scaled residual scales, one name per
    branch summed."""
    shortcuts = shortcut_projections(result)
    return [name for name in result.summed if name not in shortcuts]


def _compact(paths: list[str], line: Callable[[str], str]) -> list[str]:
    """``line`` for each of ``paths`` (given the Python that reaches it, :func:`_access`), where paths
    that differ in one index only are written once in a loop over it: ``for i in range(9):`` then ``model.layer1[i].conv1 = ...`` (modsweep47 #2: 57 near-identical lines
    for a ResNet-56). Fewer than three such paths stay lines of their own."""
    left, out = list(paths), []
    while left:
        # the first path left, with the paths that differ from it in one index (the index that
        # groups the most): written in the order given
        parts = left[0].split(".")
        best: tuple[list[str], int] | None = None
        for k, part in enumerate(parts):
            if not part.isdigit():
                continue
            same = [q for q in left if len(q.split(".")) == len(parts) and q.split(".")[k].isdigit()
                    and q.split(".")[:k] + q.split(".")[k + 1:] == parts[:k] + parts[k + 1:]]
            if best is None or len(same) > len(best[0]):
                best = (same, k)
        if best is None or len(best[0]) < 3:
            out.append(line(_access(left.pop(0))))
            continue
        group, k = best
        numbers = [int(q.split(".")[k]) for q in group]
        steps = {b - a for a, b in zip(numbers, numbers[1:], strict=False)}
        step = next(iter(steps)) if len(steps) == 1 and min(steps) > 0 else None
        loop = (f"({', '.join(map(str, numbers))})" if step is None else f"range({numbers[-1] + 1})"
                if numbers[0] == 0 and step == 1 else f"range({numbers[0]}, {numbers[-1] + step}"
                f"{'' if step == 1 else f', {step}'})")
        parts = group[0].split(".")
        marker = "9" * 12  # a number no index has: written as [i] in the loop's line
        text = line(_access(".".join([*parts[:k], marker, *parts[k + 1:]])).replace(f"[{marker}]", "[i]"))
        out += [f"for i in {loop}:", f"    {text}"]
        left = [q for q in left if q not in group]
    return out


def _batch_norm_remedy(where: str | Sequence[str], det: Detection, result: SimulationResult, model: nn.Module) -> Remedy:
    """``batch_norm`` for the finding's layers, its snippet filled from the model where they are
    modules whose widths it knows (``model[2] = nn.Sequential(model[2], nn.BatchNorm1d(64))``: each
    layer followed by a norm of its outputs); the generic template otherwise (newuser12 #9:
    ``nn.Linear(n_in, n_out)`` raised NameError for a Sequential of known widths). The layers are
    grouped by where the norm goes (:func:`_norm_place`: before an activation, before a residual
    add, on a shortcut), each group's comment saying so once, and the same change at paths that
    differ in one index is one loop (:func:`_compact`)."""
    remedy = R.normalisation("batchnorm", where)
    last = output_layer(result)
    groups: dict[tuple[str, str, int], list[str]] = {}
    for unit in det.units:
        if not unit.pointer.startswith("module:") or unit is last or unit.name == last.name or unit.normalised:
            continue  # (a norm on the output layer would fix the model's output scale, not its gradients)
        path = unit.pointer.removeprefix("module:")
        try:
            module = model.get_submodule(path)
        except (AttributeError, TypeError):
            continue
        kind = next(((norm, int(getattr(module, width))) for cls, norm, width in _BATCH_NORMS
                     if type(module) is cls), None)
        if kind is not None:
            members = groups.setdefault((_norm_place(unit, result), *kind), [])
            if path not in members:
                members.append(path)
    if not groups:
        return remedy
    lines = ["# each layer's outputs normalised (a Linear's over [batch, features]; for [batch, time, features] "
             "use nn.LayerNorm)"]
    for place in _NORM_PLACES:
        kinds = [(norm, width) for (p, norm, width) in groups if p == place]
        if kinds:
            lines.append(f"# {_NORM_PLACES[place]}")
        for norm, width in kinds:
            def wrapped(at: str, norm: str = norm, width: int = width) -> str:
                return f"{at} = nn.Sequential({at}, nn.{norm}({width}))"
            lines += _compact(groups[(place, norm, width)], wrapped)
    remedy.snippet = "\n".join(lines)
    return remedy


class Residual(nn.Module):
    """x + f(x): what the ``residual_connections`` snippet wraps a block in (its own class, the same)."""

    def __init__(self, f: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.f, self.scale = f, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.f(x)


def _residual_blocks(det: Detection, result: SimulationResult, model: nn.Module) -> list[tuple[str, str | None]]:
    """The blocks a live module's ``residual_connections`` wraps (newuser17 #2: a snippet that only
    defined the class changed nothing when pasted): each layer of the finding that sits in an
    nn.Sequential (whose forward is its order) and keeps its width (an identity skip adds up),
    with the activation module right after it, as (layer path, activation path or None); the
    output layer is left as it is. Empty where none is such (a ModuleList, a forward of its own)."""
    last = output_layer(result)
    out: list[tuple[str, str | None]] = []
    for unit in det.units:
        if (not unit.pointer.startswith("module:") or unit is last or unit.name == last.name
                or not unit.fan_in or unit.fan_in != unit.fan_out or unit.name in result.score_projections):
            continue
        path = unit.pointer.removeprefix("module:")
        parent = path.rpartition(".")[0]
        try:
            container = model.get_submodule(parent) if parent else model
            module = model.get_submodule(path)
        except (AttributeError, TypeError):
            continue
        if not isinstance(container, nn.Sequential) or not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d,
                                                                                 nn.Conv3d)):
            continue
        out.append((path, _output_activation_module(model, path, after=True)))
    return list(dict.fromkeys(out))


def _residual_snippet(blocks: list[tuple[str, str | None]]) -> str:
    """The ``residual_connections`` code for ``blocks`` (:func:`_residual_blocks`): the class, then
    each layer (with its activation) wrapped in it in the user's model, the activation's own place
    made an identity so that it is applied once."""
    lines = [R.SNIPPETS["residual_connections"],
             "# each layer that keeps its width, with its activation, now x + f(x)"]
    for path, act in blocks:
        if act is None:
            lines.append(f"{_access(path)} = Residual({_access(path)})")
        else:
            lines.append(f"{_access(path)} = Residual(nn.Sequential({_access(path)}, {_access(act)}))")
            lines.append(f"{_access(act)} = nn.Identity()  # applied inside the block now")
    return "\n".join(lines)


def _residual_edit(blocks: list[tuple[str, str | None]]) -> Edit:
    """What :func:`_residual_snippet` does, on each copy: the change verified is the one pasted."""
    def edit(net: nn.Module, seed: int) -> None:
        for path, act in blocks:
            layer = net.get_submodule(path)
            inner = nn.Sequential(layer, net.get_submodule(act)) if act is not None else layer
            for target, value in ((path, Residual(inner)), *(((act, nn.Identity()),) if act else ())):
                parent, _, child = target.rpartition(".")
                setattr(net.get_submodule(parent) if parent else net, child, value)
    return edit


def _standardise_input_edit(path: str) -> Edit:
    """The module at ``path`` (the first layer) reading its input standardised, (x - mean) / std over
    the batch: what normalising the data gives that layer, whatever the example's dtype."""
    def standardise(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 1):
            return args
        return ((x - x.mean()) / x.std().clamp_min(1e-12), *args[1:])

    def edit(net: nn.Module, seed: int) -> None:
        net.get_submodule(path).register_forward_pre_hook(standardise)
    return edit


def _unit_activation(model: nn.Module, names: Callable[[nn.Module], dict[nn.Module, tuple[str, str]]] | None,
                     pointer: str) -> str | None:
    """The path of the activation module a spec-built unit applies itself (``.act``: a Keras
    file's stored weights run in the network its spec builds), for the unit ``names`` points at;
    None where there is none."""
    if names is None:
        return None
    named = names(model)
    for path, module in model.named_modules():  # parents first: the unit before its own modules
        act = getattr(module, "act", None)
        if named.get(module, ("", ""))[1] == pointer and isinstance(act, nn.Module) and role_of(act).kind == "act":
            return f"{path}.act" if path else "act"
    return None


#: The (squash, loss) pairs whose squash a loss on logits applies again over a folded output
#: (:func:`.losses.loss_value`): only those leave the network without it.
_REAPPLIED = frozenset({("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")})


def _output_squash_edit(names: Callable[[nn.Module], dict[nn.Module, tuple[str, str]]] | None,
                        pointer: str) -> Edit:
    """The final activation of the output unit at ``pointer`` replaced by nn.Identity in each copy:
    a spec-built unit's ``.act`` (:func:`_unit_activation`), else the last activation module of the
    outermost nn.Sequential ``names`` maps to ``pointer`` (a Keras graph's layer with its activation)."""

    def edit(net: nn.Module, seed: int) -> None:
        path = _unit_activation(net, names, pointer)
        if path is not None:
            _identity_edit(path)(net, seed)
            return
        named = names(net) if names is not None else {}
        for module in net.modules():  # parents first: the layer before its own modules
            if named.get(module, ("", ""))[1] == pointer and isinstance(module, nn.Sequential) and len(module) \
                    and role_of(module[-1]).kind == "act":
                module[-1] = nn.Identity()
                return
    return edit


def _identity_edit(path: str) -> Edit:
    """The module at ``path`` replaced by nn.Identity in each copy."""
    parent, _, child = path.rpartition(".")

    def edit(net: nn.Module, seed: int) -> None:
        setattr(net.get_submodule(parent) if parent else net, child, nn.Identity())
    return edit


def _imported_output_softmax(net: nn.Module) -> int | None:
    """The index in an imported graph's ``ops`` of the Softmax node its (first) output ends in
    (:func:`graph.output_op`); None where it ends otherwise or is no imported graph."""
    found = output_op(net)
    if found is None or found[1] != "softmax":
        return None
    return next((k for k, op in enumerate(getattr(net, "ops", ())) if op is found[0]), None)


def _softmax_modules(model: nn.Module) -> list[nn.Module]:
    """The softmax modules an output-activation edit (:func:`_softmax_swapped`) replaces: a live
    module's nn.Softmax modules, or the imported graph's output Softmax node."""
    k = _imported_output_softmax(model)
    if k is not None:
        return [cast(nn.Module, cast(Any, model).ops[k])]
    return [m for m in model.modules() if isinstance(m, nn.Softmax)]


def _softmax_swapped(make: Callable[[], nn.Module]) -> Edit:
    """Every softmax module of the copy replaced by ``make()`` (the fix of a softmax over a single
    unit: a sigmoid for one probability, an identity for a regression); in an imported graph, the
    Softmax node its output ends in (an ONNX node is an op of the interpreter, no nn.Softmax: the
    remedy's re-simulation ran the softmax unchanged and read it "not fixed", peersweep17
    tdc_regrNN_softmax_1unit), not an attention's softmax inside it."""
    def edit(net: nn.Module, seed: int) -> None:
        k = _imported_output_softmax(net)
        if k is not None:
            cast(Any, net).ops[k] = make()
            return
        for parent in list(net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Softmax):
                    setattr(parent, name, make())
    return edit


_softmax_to_sigmoid = _softmax_swapped(nn.Sigmoid)
_softmax_to_identity = _softmax_swapped(nn.Identity)

#: The regression losses, whose output takes no activation.
_REGRESSION = frozenset({"mse", "mae", "huber"})


def _recurrent(net: nn.Module) -> list[nn.RNNBase | nn.RNNCellBase]:
    """The copy's torch recurrent layers and cells (a cell: one step, called in a loop)."""
    return [m for m in net.modules() if isinstance(m, nn.RNNBase | nn.RNNCellBase)]


def _gate_biases(rnn: nn.RNNBase | nn.RNNCellBase) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(b_ih, b_hh) of every layer and direction of a recurrent layer (torch's ``_l{k}`` and
    ``_reverse`` names), or of a cell; none without biases."""
    if isinstance(rnn, nn.RNNCellBase):
        return [(rnn.bias_ih, rnn.bias_hh)] if rnn.bias else []
    if not rnn.bias:
        return []
    return [(getattr(rnn, f"bias_ih_l{layer}{sfx}"), getattr(rnn, f"bias_hh_l{layer}{sfx}"))
            for layer in range(rnn.num_layers) for sfx in ("", "_reverse")[:2 if rnn.bidirectional else 1]]


def _pre_ln(net: nn.Module, seed: int) -> None:
    """torch's Post-LN Transformer layers made Pre-LN (``norm_first=True``): the same weights."""
    for m in net.modules():
        if isinstance(m, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
            m.norm_first = True


def _orthogonal_loops(names: set[str]) -> Edit:
    """Orthogonal recurrent weights, and the same for a square layer called in a loop (``names``,
    :func:`gradhealth.analysis.graph.loops`)."""
    def edit(net: nn.Module, seed: int) -> None:
        _orthogonal_edit(net, seed)
        with torch.no_grad():
            # a looped layer's square weight: an nn.Linear's ("rec.weight" for the unit "rec"), or a
            # matrix the model holds and multiplies by (h @ self.U, the unit "U")
            for name, p in net.named_parameters():
                if name.removesuffix(".weight") in names and p.dim() == 2 and p.shape[0] == p.shape[1]:
                    nn.init.orthogonal_(p)
    return edit


#: How far W W^T may be from c I (relative to c, the largest entry's difference) for a square block
#: to read as orthogonal with gain sqrt(c): float32 round-off of a drawn orthogonal matrix is ~1e-6.
ORTHOGONAL_TOLERANCE = 1e-4


def orthogonal_gain(w: torch.Tensor, tolerance: float = ORTHOGONAL_TOLERANCE) -> float | None:
    """The gain g of a square matrix ``w`` orthogonal up to it: W W^T = c I, c = g^2 > 0, each entry
    within ``tolerance`` x c (what ``nn.init.orthogonal_`` and Keras' Orthogonal draw); None where
    it is not orthogonal."""
    if w.dim() != 2 or w.shape[0] != w.shape[1] or not bool(torch.isfinite(w).all()):
        return None
    w = w.detach().to(torch.float64)
    gram = w @ w.T
    c = float(gram.diagonal().mean())
    if c <= 0:
        return None
    eye = torch.eye(w.shape[0], dtype=torch.float64, device=w.device)
    return math.sqrt(c) if float((gram - c * eye).abs().max()) <= tolerance * c else None


def orthogonal_already(model: nn.Module, unit_names: Callable[[nn.Module], dict[nn.Module, tuple[str, str]]] | None,
                       units: Sequence[str]) -> set[str]:
    """Those of the recurrent ``units`` (by name) already initialised orthogonally, whose
    ``orthogonal_init`` would change nothing: as the model's own config says (a Keras file's
    ``recurrent_initializer``, orthogonal by default: ``model.recurrent_initializers()``), else as
    a spec's ``recurrent_init`` where the network was built from one, else as its recurrent weights
    read (every gate's square block of each ``weight_hh``: :func:`orthogonal_gain` 1)."""
    said = getattr(model, "recurrent_initializers", None)
    config: dict[str, str] = said() if callable(said) else {}
    named = unit_names(model) if unit_names is not None else {m: (n, "") for n, m in model.named_modules()}
    for m, (n, _) in named.items():
        # a network built from a spec (a Keras file's stored weights loaded into its translation):
        # the spec layer's recurrent_init, which the translation read from the file's config
        init = getattr(getattr(getattr(m, "plan", None), "layer", None), "recurrent_init", None)
        scheme = getattr(init, "scheme", None)
        if isinstance(scheme, str):
            gain = getattr(init, "gain", None)
            # orthogonal_init draws at gain 1: one at another gain is another init
            config.setdefault(n, scheme if gain is None or abs(gain - 1.0) < 1e-9 else f"{scheme} (gain {gain})")
    out: set[str] = set()
    for name in units:
        if name in config:
            if config[name] == "orthogonal":
                out.add(name)
            continue
        rnns = [m for m, (n, _) in named.items() if n == name and isinstance(m, nn.RNNBase | nn.RNNCellBase)]
        blocks = []
        for rnn in rnns:
            gates = {"LSTM": 4, "GRU": 3, "LSTMCell": 4, "GRUCell": 3}.get(type(rnn).__name__, 1)
            blocks += [b for p_name, p in rnn.named_parameters() if p_name.startswith("weight_hh")
                       for b in p.detach().chunk(gates, 0)]
        gains = [orthogonal_gain(b) for b in blocks]
        # orthogonal_init draws at gain 1: an orthogonal matrix at gain 3 (an exploding recurrence)
        # is not the init it proposes
        if gains and all(g is not None and abs(g - 1.0) <= ORTHOGONAL_TOLERANCE for g in gains):
            out.add(name)
    return out


#: The gate blocks of each torch recurrent layer's weight_ih and weight_hh (a plain RNN's: one).
_CELL_GATES = {"LSTM": 4, "GRU": 3, "LSTMCell": 4, "GRUCell": 3}


def _cell_input_init_edit(paths: Sequence[str]) -> Edit:
    """The input kernels (``weight_ih``) of the recurrent layers at ``paths`` (every recurrent layer
    of the copy where none of them is found) re-drawn with Xavier's normal init, gate block by gate
    block (fan in: the input's width; fan out: the hidden size); recurrent kernels and biases kept."""
    def edit(net: nn.Module, seed: int) -> None:
        found = []
        for path in paths:
            with contextlib.suppress(AttributeError, TypeError):
                m = net.get_submodule(path)
                if isinstance(m, nn.RNNBase | nn.RNNCellBase):
                    found.append(m)
        with torch.no_grad():
            for rnn in found or _recurrent(net):
                gates = _CELL_GATES.get(type(rnn).__name__, 1)
                for name, p in rnn.named_parameters():
                    if name.startswith("weight_ih"):
                        for block in p.data.chunk(gates, 0):
                            nn.init.xavier_normal_(block)
    return edit


def _orthogonal_edit(net: nn.Module, seed: int) -> None:
    with torch.no_grad():
        for rnn in _recurrent(net):
            gates = {"LSTM": 4, "GRU": 3, "LSTMCell": 4, "GRUCell": 3}.get(type(rnn).__name__, 1)
            for name, p in rnn.named_parameters():
                if name.startswith("weight_hh"):
                    for block in p.data.chunk(gates, 0):
                        nn.init.orthogonal_(block)
    for m in net.modules():  # a recurrence an imported graph unrolled (OnnxModule)
        fn = getattr(type(m), "orthogonal_recurrences", None)
        if callable(fn):
            fn(m)


def _bounded_cells_edit(net: nn.Module, seed: int) -> None:
    """Every recurrent layer or cell of the copy whose own activation is unbounded (relu, elu,
    linear...: a Keras ``LSTM(activation="relu")``, an ``nn.RNN(nonlinearity="relu")``) computing
    tanh instead, its weights kept."""
    for rnn in _recurrent(net):
        if isinstance(rnn, nn.RNN | nn.RNNCell):
            if getattr(rnn, "nonlinearity", "tanh") not in BOUNDED:
                rnn.nonlinearity = "tanh"
                if isinstance(rnn, nn.RNN):
                    rnn.mode = "RNN_TANH"  # what torch's fused kernel reads
        elif canonical(cell_of(rnn)[2]) not in BOUNDED:
            gates, reset_after, _ = cell_of(rnn)
            mark(cast(nn.RNNBase, rnn), gates, reset_after, "tanh")


def _bounded_cell_remedy(result: SimulationResult) -> Remedy | None:
    """``bounded_cell_activation`` for every recurrent layer of ``result`` with an unbounded
    activation (the edit swaps them all), or None where there is none."""
    cells = unbounded_cells(result.units)
    if not cells:
        return None
    acts = "/".join(sorted({canonical(u.activation or "") for u in cells}))
    remedy = R.bounded_cell_activation(_named_units(cells), acts)
    if result.checkpoint:
        remedy.change += (f" (re-simulated with the stored weights kept; they were trained with {acts}, so the "
                          "model must be trained again with tanh)")
    return remedy


_CELLS = ((nn.LSTM, "lstm", False), (nn.GRU, "gru", False), (nn.RNN, "rnn", False),
          (nn.LSTMCell, "lstm", True), (nn.GRUCell, "gru", True), (nn.RNNCell, "rnn", True))


def _recurrent_modules(units: Sequence[UnitStats], model: nn.Module,
                       unit_names: Callable[[nn.Module], dict[nn.Module, tuple[str, str]]] | None
                       ) -> dict[str, R.RecurrentModule]:
    """The recurrent ``units`` as the remedies' snippets name them (newuser17 #1), by unit name:
    each torch recurrent layer or cell with its sizes, reached from ``model`` by its path in a live
    module (``model.rnn``) or, in an imported graph (``unit_names`` given: the user's code has none
    of its modules), built with its sizes; a square nn.Linear called in a loop by its weight (a live
    module's only). A unit of neither kind is left out (its snippet stays the template)."""
    named = unit_names(model) if unit_names is not None else {}
    by_pointer = {pointer: m for m, (_, pointer) in named.items()}
    out: dict[str, R.RecurrentModule] = {}
    for u in units:
        path = u.pointer.removeprefix("module:") if u.pointer.startswith("module:") else None
        module: nn.Module | None = by_pointer.get(u.pointer)
        if module is None and path is not None:
            with contextlib.suppress(AttributeError, TypeError):
                module = model.get_submodule(path)
        access = _access(path) if path is not None and unit_names is None else None
        found = next(((cell, step) for cls, cell, step in _CELLS if isinstance(module, cls)), None)
        if found is not None:
            rnn = cast(Any, module)
            out[u.name] = R.RecurrentModule(
                name=u.name, cell=found[0], n_in=int(rnn.input_size), hidden=int(rnn.hidden_size), access=access,
                num_layers=int(getattr(rnn, "num_layers", 1)), bidirectional=bool(getattr(rnn, "bidirectional", False)),
                batch_first=bool(getattr(rnn, "batch_first", True)), step=found[1])
        elif isinstance(module, nn.Linear) and access is not None and module.in_features == module.out_features:
            out[u.name] = R.RecurrentModule(name=u.name, cell="rnn", n_in=module.in_features,
                                            hidden=module.out_features, access=f"{access}.weight", square=True)
    return out


def _named_units(units: list[UnitStats]) -> str:
    return first_few([u.name for u in units], R.NAMED_LAYERS)


def _chrono_edit(steps: int) -> Edit:
    """Chrono initialisation of every ``nn.LSTM`` and ``nn.GRU`` of the copy over ``steps``: an
    LSTM's forget-gate bias log(U(1, T_max - 1)) and its input gate's the negative (Tallec &
    Ollivier 2018); a GRU's update-gate bias the same log(U(1, T_max - 1)), so that
    z = sigmoid(b_z) keeps the state (torch's GRU: h' = (1 - z) * n + z * h) over about T_max steps."""
    def edit(net: nn.Module, seed: int) -> None:
        with torch.no_grad():
            for rnn in _recurrent(net):
                if not isinstance(rnn, nn.LSTM | nn.GRU | nn.LSTMCell | nn.GRUCell):
                    continue
                h = rnn.hidden_size
                # both directions of a bidirectional layer (torch's `_reverse` biases)
                for b_ih, b_hh in _gate_biases(rnn):
                    b = torch.log(torch.empty(h).uniform_(1.0, float(max(steps - 1, 2))))
                    if isinstance(rnn, nn.GRU | nn.GRUCell):  # gates r, z, n: the update gate z
                        b_hh[h:2 * h] = 0.0
                        b_ih[h:2 * h] = b
                        continue
                    b_hh[:2 * h] = 0.0  # gates i, f, g, o
                    b_ih[h:2 * h] = b
                    b_ih[:h] = -b
    return edit


def _sigmoid_gates(net: nn.Module, seed: int) -> None:
    """Every hard-sigmoid-gated ``nn.LSTM``/``nn.GRU`` of the copy with sigmoid gates instead
    (Keras' ``recurrent_activation="sigmoid"``), its other cell settings kept."""
    for rnn in _recurrent(net):
        if isinstance(rnn, nn.LSTM | nn.GRU) and str(getattr(rnn, "gate_activation", "")).startswith("hard_sigmoid"):
            _, reset_after, activation = cell_of(rnn)
            mark(rnn, "sigmoid", reset_after, activation)


def _combine(first: Edit | None, then: Edit) -> Edit:
    def edit(net: nn.Module, seed: int) -> None:
        if first is not None:
            first(net, seed)
        then(net, seed)
    return edit


#: The unit types of recurrent cells, whose tanh and sigmoid gates are the cell's own: no activation
#: swap names or replaces them (the swap's edit swaps activation modules, never a cell's).
RECURRENT_CELL_TYPES = frozenset({"lstm", "gru", "rnn"})
#: Weight layers a hand-written loop reuses step after step (typed "rnn" as looped): their activation is
#: the forward's own call, not a cell's gate, so an activation swap may replace it
_LOOPED_PLAIN = frozenset({"Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d"})


def recurrent_cell(u: UnitStats) -> bool:
    """Whether ``u`` is a recurrent cell whose tanh and sigmoids are its own (an LSTM, GRU or RNN layer
    or cell, imported or live), not a plain layer a hand-written loop reuses (a neural ODE's Euler
    steps of ``h + f2(tanh(f1(h)))``: its tanh is the forward's, which a swap can change)."""
    return u.type in RECURRENT_CELL_TYPES and u.module_class not in _LOOPED_PLAIN


def _every(result: SimulationResult, activations: set[str], but: UnitStats | None = None) -> str:
    """The layers an activation swap changes, as its words should name them: every one of those
    ``activations``, since the verified edit swaps them all (msweep13: "in ls.0" for a swap of
    every tanh of a PINN); ``but``: the output layer, whose squashing is kept."""
    units = [u for u in result.units if u.activation in activations and u is not but
             and not recurrent_cell(u)]
    names = [layer_words(u) for u in units]
    kinds = "/".join(sorted({u.activation or "" for u in units}))
    shown = first_few(names, R.NAMED_LAYERS)
    kept = f"; the output's {but.activation} after {layer_words(but)} kept" if but is not None else ""
    return (f"every {kinds} layer ({shown}{kept})" if len(names) > 1 else shown + kept) or "the network"


def _proposals(det: Detection, result: SimulationResult, model: nn.Module,
               unit_names: Callable[[nn.Module], dict[nn.Module, tuple[str, str]]] | None = None,
               targets: tuple[float, float] | None = None) -> list[tuple[Remedy, Change | None]]:
    """(remedy, change to verify it, or None when it needs a new structure) for one finding;
    ``targets``: the (mean, std) of regression targets given far from unit scale (:func:`far_targets`)."""
    where = first_few([layer_words(u) for u in det.units], R.NAMED_LAYERS) or "the network"  # (30 names made 600-character lines: kerassweep26)
    acts = {u.activation for u in result.units if u.activation}
    out: list[tuple[Remedy, Change | None]] = []
    code = det.code
    if code == "small_batch_statistics":  # the training batch is the user's to choose: not simulated
        return [(per_sample_norm_remedy(list(det.evidence.get("layers") or [])), None)]
    if code == "nonfinite" and det.evidence.get("dtype"):
        return []  # an overflow of the model's own dtype: its explanation names the fix (_native_overflow)
    if code == "saturation" and det.evidence.get("hidden_softmax"):
        # a softmax used as a hidden layer's activation (peersweep7 base_wrong_act): swap it for a ReLU,
        # verified on the copy (graph.FunctionalOps swaps a softmax over a layer's own features)
        swap = R.relu_family_activation(where, "relu", swapped=("softmax",))
        swap.change += f" ({_BIASES_ZEROED})"
        site = det.evidence.get("called_at")
        if site and not any(isinstance(m, nn.Softmax) for m in model.modules()):
            # called in forward (torch.softmax(self.conv(x), dim=1)): no nn.Softmax child for the
            # snippet's module swap to replace, which would change nothing (peersweep22
            # deepCNN_wrong_act's lambda); the call is named where it is, and the init kept
            init = swap.snippet[swap.snippet.index("for m in model.modules():"):]
            swap.snippet = (f"# the softmax is called in forward at {site}: replace that call there\n"
                            "h = torch.relu(h)  # was torch.softmax(h, dim=...) on the layer's output\n" + init)
        return [(swap, _swap_edit({"softmax"}, "relu"))]
    if code == "saturation" and det.evidence.get("log_of_softmax"):
        # torch.log(torch.softmax(x)) (peersweep22 ips01/ips14): log_softmax in one step, or the loss
        # on x; a call in forward, named at its line, not re-simulated (its values are the same)
        shown = det.evidence.get("called_at") or where
        remedy = R.logits_loss(result.loss or "cross_entropy", shown)
        remedy.change = (f"replace the log of the softmax at {shown} with torch.log_softmax(x, dim) (the same "
                         "values, computed without a probability that can round to 0), or return x and train "
                         "with nn.CrossEntropyLoss, which applies log_softmax itself")
        remedy.snippet = ("log_p = torch.log_softmax(x, dim=-1)  # was torch.log(torch.softmax(x, dim=-1))\n"
                          + remedy.snippet)
        return [(remedy, None)]
    if code == "saturation" and det.evidence.get("softmax"):
        # a softmax inside the forward fed scores far too large: the fix is their scale (1/sqrt(d_head),
        # a temperature) at the line named, which no init or activation change here makes
        return []
    op = det.evidence.get("operation") if code == "nonfinite" else None
    if isinstance(op, str) and guardable(op):
        # undefined at one call, not too large a network: its guard first, the usual changes after
        # (at a live module's line; at every call of the op in an imported graph, whose node it names)
        where_called = det.evidence.get("called_at")
        shown = where_called or det.evidence.get("node")
        out.append((R.domain_guard(op, shown, guarded_code(op), guard_note(op)), Guard(op.lower(), where_called)))
    if isinstance(op, str) and op in _EXPONENTIAL:
        # an exponential overflows whatever the init (its explanation says why): replaced, or its
        # input bounded where a positive value is the point; a call in forward, so not re-simulated
        shown = det.evidence.get("called_at") or det.evidence.get("node") or where
        fn = "exp" if op == "exponential" else op  # (Keras' activation name)
        swap = R.relu_family_activation(shown, "relu")
        swap.change = (f"replace {op} at {shown} with relu (kaiming_normal init) where it is a hidden "
                       f"activation; where a positive value is what it is for, bound its input first "
                       f"({fn}(x.clamp(max=20))) or use softplus")
        swap.snippet = (f"x = torch.relu(x)                    # a hidden activation, was {op}(x)\n"
                        f"y = torch.{fn}(x.clamp(max=20.0))  # a positive output: its input bounded\n"
                        "y = F.softplus(x)                    # or softplus, which grows linearly")
        out.append((swap, None))
    if code == "output_loss_mismatch" and simplex_regression_output(result) is not None \
            and det.evidence.get("metric") == "unreachable_target_fraction":
        # a softmax (log_softmax) head under a regression loss: a linear output, re-simulated where
        # the softmax is the model's one nn.Softmax module (one called in forward is named only)
        last = output_layer(result)
        simplex = simplex_regression_output(result)
        assert simplex is not None
        n_in, n_out = linear_fans(last)  # a convolution's fans are its init's, no Linear's widths
        remedy = R.linear_distribution_output(where, activation=simplex[0], n_out=n_out or output_width(result),
                                              n_in=n_in)
        softmaxes = _softmax_modules(model) + [m for m in model.modules() if isinstance(m, nn.LogSoftmax)]
        return [(remedy, _softmax_to_identity if simplex[0] == "softmax" and len(softmaxes) == 1
                 and not isinstance(softmaxes[0], nn.LogSoftmax) else None)]
    if code == "output_loss_mismatch":
        relu = clipped_output(result)
        if relu is not None:
            # a separate ReLU module can be taken out of a copy; one called in forward cannot
            path = (_output_activation_module(model, relu.pointer.removeprefix("module:"), after=relu.has_weights)
                    or _unit_activation(model, unit_names, relu.pointer))
            act = relu.activation if relu.activation in OUTPUT_RANGES else "relu"
            last = output_layer(result)
            n_in, n_out = linear_fans(last)  # a convolution's fans are its init's, no Linear's widths
            composed = bounded_range(relu) if relu.activation in OUTPUT_RANGES else OUTPUT_RANGES[act]
            remedy = R.linear_regression_output(where, activation=act, output_range=composed,
                                                logits=relu is relu_logits_output(result),
                                                n_out=n_out or output_width(result), n_in=n_in)
            if last.pointer.startswith("module:"):  # a live module's (a Keras file's keeps its words)
                remedy.snippet = _linear_output_snippet(last, path, act)
            offered: list[tuple[Remedy, Change | None]] = [
                (remedy, _identity_edit(path) if path is not None else None)]
            before = (_output_activation_module(model, last.pointer.removeprefix("module:"), after=True)
                      if relu is not last and last.activation is not None and composed != OUTPUT_RANGES[act]
                      and last.pointer.startswith("module:") else None)
            if before is not None and before != path:
                # a chain ends the output (a ReLU then a Sigmoid: [0.5, 1]): the activation before the
                # bounded one narrows its range; dropped, the bounded one reaches its whole range
                # (modsweep45 ovheur_ae_relu_sigmoid)
                low, high = OUTPUT_RANGES[act]
                chain = R.linear_regression_output(where, activation=act, output_range=(low, high),
                                                   n_out=n_out or output_width(result), n_in=n_in)
                chain.change = (f"drop the {last.activation} ({before}) between {last.pointer.removeprefix('module:')} "
                                f"and the {act}: the {act} "
                                f"then reaches its whole range [{low:g}, {high:g}], not only [{composed[0]:g}, "
                                f"{composed[1]:g}]")
                chain.snippet = (f"{_access(before)} = nn.Identity()  # was the {last.activation} before the "
                                 f"{act}: its outputs now span [{low:g}, {high:g}]")
                offered.insert(0, (chain, _identity_edit(before)))
            return offered
        if no_output_gradient(result):
            # a loss on logits (a live module's binary_cross_entropy is nn.BCEWithLogitsLoss; a Keras
            # file's from_logits=True) applies its own sigmoid: the softmax gives way to the logit, not
            # to a sigmoid the loss would apply again (peersweep19 d4ml086: the sigmoid, simulated so,
            # read "not fixed" for the fix a loss on probabilities takes)
            on_logits = not result.on_probabilities
            if output_width(result) not in (None, 1):
                # several outputs: neither a softmax over one unit nor one class made the zero, and no
                # change of the output's activation or loss gives it a gradient (modsweep49
                # spytorch_silent: a silent spiking net's constant readout was told to drop a softmax
                # it did not have)
                return []
            if (result.loss or "cross_entropy") == "cross_entropy" and output_width(result) == 1:
                # cross-entropy over one class is 0 whatever the output: the loss must change too
                return [(R.single_unit_binary_loss(where, on_logits=on_logits), BINARY)]
            if (result.loss or "") in _REGRESSION:
                # a regression's output takes no activation: a sigmoid would hold it in [0, 1]
                # (its re-simulation then read 66% of the targets out of reach, not fixed)
                return [(R.output_activation(where, "identity"), _softmax_to_identity)]
            if on_logits:
                return [(R.output_activation(where, on_logits=True), _softmax_to_identity)]
            return [(R.output_activation(where, "sigmoid"), _softmax_to_sigmoid)]
        before = bounded_softmax_input(result)
        if before is not None:
            # the forward's own sigmoid/tanh before its log_softmax: dropped where it is a module of
            # its own; one called in forward cannot be taken out of a copy (named, not simulated)
            last = output_layer(result)
            path = (_output_activation_module(model, last.pointer.removeprefix("module:"), after=True)
                    or _unit_activation(model, unit_names, last.pointer))
            remedy = R.logits_loss(result.loss or "cross_entropy", where, squashed=before)
            remedy.change = (f"drop the {before} between {where} and the forward's softmax (log_softmax): its "
                             "logits are then free, and the log_softmax (or cross_entropy's own) makes the "
                             "probabilities")
            return [(remedy, _identity_edit(path) if path is not None else None)]
        if result.squashed is not None and result.squashed_in_forward:
            remedy = R.logits_loss(result.loss or "cross_entropy", where, squashed=result.squashed)
            other = ("keep the softmax and train with nn.NLLLoss on its log" if result.squashed == "softmax"
                     else "keep the sigmoid and train with nn.BCELoss on it, checked with "
                     f"loss=\"{BCE_PROBS}\" (binary_cross_entropy is nn.BCEWithLogitsLoss's, on logits)"
                     if result.loss == BINARY
                     else "for independent labels, keep the sigmoid and train with nn.BCELoss, checked with "
                     f"loss=\"{BCE_PROBS}\"")
            own = "a sigmoid" if result.loss == BINARY else "log_softmax"
            remedy.change = (f"return the logits from forward (drop the final {result.squashed} after {where}) and "
                             f"keep {result.loss or 'cross_entropy'}, which applies {own} itself"
                             # (a tanh's or hardtanh's outputs are no probabilities a loss could take)
                             + (f"; or {other}" if result.squashed in ("softmax", "sigmoid") else ""))
            return [(remedy, UNSQUASH)]
        if result.squashed is not None:
            remedy = R.logits_loss(result.loss or "cross_entropy", where, squashed=result.squashed)
            if (result.squashed, result.loss or "cross_entropy") not in _REAPPLIED:
                # the loss does not apply this squash again: it is in the network, taken out there
                last = output_layer(result)
                return [(remedy, DropSquash(_output_squash_edit(unit_names, last.pointer)))]
            return [(remedy, ONCE)]
        k = softmax_under_binary_loss(result)
        if k is not None:
            # a sigmoid per unit for multi-label targets: re-simulated where the softmax is the
            # model's one nn.Softmax module (one called in forward, or among others, is named only)
            last = output_layer(result)
            softmaxes = _softmax_modules(model)
            return [(R.sigmoid_multilabel_output(where, k, n_in=last.fan_in),
                     _softmax_to_sigmoid if len(softmaxes) == 1 else None)]
        if sigmoids_under_cross_entropy(result):
            # the sigmoid modules would have to go as well as the loss change: named, not simulated
            return [(R.logits_loss(result.loss or "cross_entropy", where), None)]
        return [(R.logits_loss(result.loss or "cross_entropy", where), LOGITS)]
    if code == "negative_learning_rate" and result.optimizer is not None:
        opt = result.optimizer
        new_lr = abs(opt.lr) if opt.lr < 0 else 0.001
        return [(R.positive_learning_rate(opt.lr), opt.model_copy(update={"lr": new_lr}))]
    if code in ("large_updates", "nonfinite") and targets is not None:
        # regression targets far from unit scale scale every gradient by themselves (y = 3000 +- 800:
        # the loss's gradient 2(f(x) - y) is thousands): the fit on standardised targets, re-simulated
        out.append((R.normalise_targets(*targets), STANDARDISED_TARGETS))
    # inputs far from unit scale: the first layer reading them standardised (a large step anywhere
    # may be theirs: raw pixels through a CNN without norms move its head by 24x its norm)
    far = far_input(result, det, anywhere=code == "large_updates") if code in (
        "exploding_gradient", "nonfinite", "saturation", "large_updates") else None
    if far is not None:
        first = next(u for u in result.units if u.name == far[0])
        # simulated as the first layer reading its input standardised; a layer the forward computes
        # with a function of its own parameters has no module to hook
        out.append((R.normalise_inputs(*far), _standardise_input_edit(first.pointer.removeprefix("module:"))
                    if first.pointer.startswith("module:") else None))
    rate = {"large_updates": lower_rate, "small_updates": raise_rate}.get(code)
    if rate is not None and result.optimizer is not None:
        found = rate(det, result.optimizer)  # no spec to patch here: its change names the rate
        if found is not None:
            out.append((found[0], result.optimizer.model_copy(update={"lr": found[1]})))
        return out
    if code == "post_ln_depth_risk":
        layers = list(dict.fromkeys(u.name.rsplit(".", 1)[0] for u in det.units))  # forward order
        warmup = R.lower_learning_rate(warmup_steps=4000)
        warmup.change += " (not verified: a schedule over training steps, which a check at initialisation does not run)"
        # torch's layers switch to Pre-LN with norm_first, verified; blocks written by hand do not
        pre = R.pre_layer_norm(f"{layers[0]} .. {layers[-1]}" if len(layers) > 1 else where)
        if result.post_ln_by_hand:
            pre.change = (f"move each LayerNorm of {layers[0]} .. {layers[-1]} before its sublayer, "
                          "x = x + f(norm(x)) instead of x = norm(x + f(x)), with one norm after the last "
                          "layer (Pre-LN)")
        return [(pre, None if result.post_ln_by_hand else _pre_ln), (warmup, None)]
    if code == "vanishing_gradient" and (det.evidence.get("cut_off") or det.evidence.get("disconnected")):
        # a cut in the graph, or a layer the output does not depend on (wired away): no change of
        # init, activation or normalisation gives it a gradient
        return []
    recurrent = [u for u in result.units if u.type in ("lstm", "gru", "rnn")]
    if (code == "exploding_gradient" and det.evidence.get("unbounded_recurrent_activation")) or (
            code == "exploding_through_time" and unbounded_cells(det.units)):
        # a recurrent layer whose own activation has no bound (kerassweep25 sign_lstm_dense's
        # LSTM(activation="relu") x3): its state builds up over the steps; tanh bounds it
        bounded = _bounded_cell_remedy(result)
        if bounded is not None:
            out.append((bounded, _bounded_cells_edit))
    # layers the forward computes with functions on its own parameters (F.linear over a
    # ParameterList, a capsule layer's x @ self.route_weights): the init edit re-draws modules'
    # weights, so it is not simulated there; the remedy names those parameters
    functions = [u for u in result.units if u.pointer.startswith("function:")]
    held = [u.pointer.removeprefix("function:") for u in functions if u.has_weights] \
        or [u.pointer.removeprefix("function:") for u in functions]
    if code == "symmetric_weights":
        acts = {u.activation for u in det.units if u.activation} or acts
    # a recurrent cell's saturation (its h_t, or its gates, in the flat tails of tanh/sigmoid): its
    # tanh and sigmoids are the cell's own, which no activation swap may replace (a relu LSTM or GRU
    # is unbounded_recurrent_activation's fault) and whose weights are no "Linear/Conv layers"; a
    # per-sample norm of the cell's pre-activations (a layer-normalised LSTM/GRU) is the remedy
    # (kerassweep29 mb_hybrid_conv_gru_lstm: relu and He init were offered for a GRU, with Dense code)
    cell_units = [u for u in det.units if recurrent_cell(u)]
    if code == "saturation" and cell_units and len(cell_units) == len(det.units):
        norm = R.normalisation("layernorm", [layer_words(u) for u in cell_units])
        norm.change = (f"normalise the pre-activations of {norm.change.split(' of ', 1)[1].rsplit(' with ', 1)[0]} "
                       "inside the cell (a layer-normalised LSTM/GRU: LayerNorm on W x_t and on U h_(t-1) before "
                       "the gates and the candidate), or a LayerNormalization on the sequence the cell reads; "
                       "keep the cell's own tanh and sigmoid gates (a relu cell has no bound, "
                       "unbounded_recurrent_activation); a cell's h_t near +-1 also carries its state, so check it on "
                       "inputs like the training data's before changing it")
        cell = {"lstm": "LSTM", "gru": "GRU"}.get(cell_units[0].type or "", "SimpleRNN")
        torch_cell = {"lstm": "LSTM", "gru": "GRU"}.get(cell_units[0].type or "", "RNN")
        norm.snippet = ("# normalise what the cell reads (or use a layer-normalised cell)\n"
                        "x = nn.LayerNorm(n_features)(x)  # over the features of each step\n"
                        f"out, _ = rnn(x)  # the nn.{torch_cell}: its own tanh and sigmoid gates kept")
        norm.params = {**norm.params, "recurrent": True, "cell": cell}
        norm.unverified = "not_simulable"
        out.append((norm, None))  # after normalise_inputs, where the inputs are far from unit scale
        # the cell's own kernels re-drawn (kerassweep29 mb_hybrid_conv_gru_lstm: he_init and xavier_init
        # of "the Linear/Conv layers", with Dense/Conv2D code, were offered for a GRU): its input kernel
        # (weight_ih, Keras' kernel_initializer) Glorot's per gate block, which keeps W x_t at the
        # scale of x_t whatever the kernel was drawn or trained to; re-simulated
        named = [layer_words(u) for u in cell_units]
        paths = [u.pointer.removeprefix("module:") for u in cell_units if u.pointer.startswith("module:")]
        redraw = R.init("xavier_normal", named)
        redraw.change = (f"initialise the input kernels of {redraw.change.removeprefix('initialise ').rsplit(' with ', 1)[0]}"
                         " (the cell's weight_ih, Keras' kernel_initializer) with xavier_normal, gate block by gate "
                         "block, its recurrent kernels and biases kept")
        redraw.snippet = ("for name, p in rnn.named_parameters():  # the nn." + torch_cell + "\n"
                          '    if name.startswith("weight_ih"):\n'
                          f"        for block in p.data.chunk({_CELL_GATES.get(torch_cell, 1)}, 0):\n"
                          "            nn.init.xavier_normal_(block)")
        redraw.params = {**redraw.params, "recurrent": True, "cell": cell}
        out.append((redraw, _cell_input_init_edit(paths)))
        # its recurrent kernels orthogonal (weight_hh, recurrent_initializer), where they are not already
        fresh = [u for u in cell_units
                 if u.name not in orthogonal_already(model, unit_names, [u.name for u in cell_units])]
        if fresh:
            known = _recurrent_modules(fresh, model, unit_names)
            shown = [known[u.name] for u in fresh if u.name in known]
            out.append((R.orthogonal_init(", ".join(u.name for u in fresh),
                                          layers=shown if len(shown) == len(fresh) else ()), _orthogonal_edit))
        return out
    collapsed = det.evidence.get("collapsed_weights") if code == "dead_units" else None
    if collapsed:
        # stored weights that collapsed to (near) zero in training (rules._collapsed_weight_cause): the
        # layer outputs its bias whatever its input, so what fixes it is re-drawing those layers, together
        # (re-drawn one at a time, the next collapsed one still passes no gradient back), on this checkpoint,
        # and less of the decay that drove them there; not an activation swap, nor a bias or a re-draw of
        # every trained layer (which discards the training the others hold)
        units = [u for u in result.units if u.name in collapsed]
        if units:
            remedy = R.reinit_collapsed([(u.name, init_scheme_for(u.activation)) for u in units])
            functional = [u.pointer.removeprefix("function:") for u in units if u.pointer.startswith("function:")]
            if functional:
                remedy.change += f" ({not_reinitialised(functional)})"
            out.append((remedy, None if functional else _reinit_named_edit(remedy.params["schemes"])))
            return out
    if code in ("vanishing_gradient", "exploding_gradient", "nonfinite", "saturation", "dead_units", "symmetric_weights"):
        for scheme, wanted in (("kaiming_normal", bool(acts & {"relu", "leaky_relu", "elu", "gelu", "silu"})
                                or code == "dead_units"),
                               ("xavier_normal", bool(acts & _SATURATING or not acts)), ("lecun_normal", "selu" in acts)):
            if not wanted:
                continue
            remedy = R.init(scheme, "the Linear/Conv layers")
            if not functions and not result.checkpoint and already_drawn_as(result, remedy.id):
                # the layers already have this init's variance: a re-draw, not a fix (peersweep23)
                note = (f" The Linear/Conv layers already have {scheme}'s variance (measured, to the sampling "
                        "spread of their weights) and zero biases: re-initialising them with it is a new random "
                        f"draw of the same init, not a fix, so {remedy.id} is not offered.")
                if note not in det.explanation:
                    det.explanation += note
                continue
            remedy.change += f" {_BIASES_ZEROED}"
            if functions:
                remedy.change += f" ({not_reinitialised(held)})"
            out.append((remedy, None if functions else _init_edit(scheme)))
        squashing = [u for u in det.units if u.activation in _SATURATING]
        # (a GLU's sigmoid gates its other half: a gate whatever reads it)
        gates_only = bool(squashing) and all(u.name in result.gates or u.activation == "glu" for u in squashing)
        if acts & _SATURATING and code not in ("dead_units", "symmetric_weights") and not gates_only \
                and not det.evidence.get("output"):  # (an output's squashing is the model's range: kept)
            # (not where every saturating unit of the finding gates another tensor: a ReLU gate
            # gates nothing)
            # the output's own squashing (a sigmoid before BCELoss) stays: it is the model's range,
            # and swapping it makes an output the loss cannot read (modsweep19's deep sigmoid nets)
            last = output_layer(result)
            keep = (_output_activation_module(model, last.pointer.removeprefix("module:"), after=last.has_weights)
                    if last.activation in _SATURATING and last.pointer.startswith("module:")
                    else None)
            # no module computes that activation: the forward calls it as a function on the output
            # layer (torch.sigmoid(self.layers[-1](x))), which the swap passes over by the layer's name
            keep_call = (last.name if keep is None and last.activation in _SATURATING
                         and not any(role_of(m).kind == "act" and role_of(m).activation == last.activation
                                     for m in model.modules()) else None)
            kept = last if keep or keep_call else None
            # nothing to swap where the output's own squashing is the only one (an all-ReLU
            # autoencoder ending in tanh: the remedy would read "use relu ... in ;", modsweep23)
            if any(u.activation in _SATURATING - {"glu"} and u is not kept and not recurrent_cell(u)
                   for u in result.units):
                swap = R.relu_family_activation(_every(result, _SATURATING - {"glu"}, but=kept), "relu",
                                                  swapped=sorted(_SATURATING - {"glu"}))
                swap.change += f" ({_BIASES_ZEROED})"
                out.append((swap, _swap_edit(_SATURATING - {"glu"}, "relu", keep, keep_call)))
        # a dead or saturated unit's bias far from 0 may pin it alone (an SE gate's -10)
        if code == "dead_units" or (code == "saturation" and any(
                u.mean("bias_mean_square") >= _SATURATING_BIAS ** 2 for u in det.units if "bias_mean_square" in u.values)):
            out.append((R.zero_bias("the Linear/Conv layers and the norms' shifts (their weights kept)"),
                        _zero_shift_edit))
        if code == "dead_units":
            leaky = R.relu_family_activation(_every(result, {"relu"}), "leaky_relu", swapped=("relu",))
            leaky.change += f" ({_BIASES_ZEROED})"
            out.append((leaky, _swap_edit({"relu"}, "leaky_relu")))
        # an attention's query and key projections take no norm after them: their small gradient is the
        # softmax's, and a BatchNorm over q or k changes what the scores mean (onnxsweep28 qs_attention)
        unnormed = [u for u in det.units if not u.normalised and u.name not in result.score_projections]
        if code in ("vanishing_gradient", "exploding_gradient") and not all(u.normalised for u in trunk(result)) \
                and unnormed:
            # named for the finding's layers no norm reads yet (a Conv then ReLU then BatchNorm is read by one)
            out.append((_batch_norm_remedy([layer_words(u) for u in unnormed], det, result, model), None))
            # a skip path for a plain stack; the branches of one that has them scaled down
            if code == "vanishing_gradient" and not result.summed:
                # an identity skip adds up only where a layer keeps its width (a conv's fan-in and
                # fan-out share its kernel: equal exactly where its channel counts are)
                # nor are an attention's query and key projections wrapped one by one: a skip x + q(x)
                # around a score projection is no path around the block (its skip goes round the attention)
                wrapped = [u for u in det.units if u.name not in result.score_projections]
                resized = [layer_words(u) for u in wrapped if u.fan_in and u.fan_out and u.fan_in != u.fan_out]
                residual = R.residual_connections([layer_words(u) for u in wrapped] or "the network",
                                                  resized=resized)
                blocks = _residual_blocks(det, result, model) if unit_names is None else []
                if blocks:
                    residual.snippet = _residual_snippet(blocks)
                else:
                    residual.snippet += ("\n# then wrap each block of your model whose input and output widths "
                                         "match: block = Residual(block)")
                out.append((residual, _residual_edit(blocks) if blocks else None))
            elif code == "exploding_gradient" and branch_ends(result):
                # the branches' last layers only: a shortcut's projection carries the stream, and
                # scaled with them it shrinks everything before it (modsweep47 ll_resnet56_nobn)
                summed = branch_ends(result)
                ends = list(dict.fromkeys(summed))
                shown = first_few(ends, R.NAMED_LAYERS)
                shortcuts = sorted(shortcut_projections(result), key=result.summed.index)
                # 1/sqrt(N) over the N sums made: a block shared across depth (ALBERT's) is summed
                # once a call, under one name
                scaled = R.scaled_residual(f"the network (each ending at {shown})")
                if shortcuts:
                    scaled.change += (f"; the shortcuts' projections ({first_few(shortcuts, R.NAMED_LAYERS)}) kept as "
                                      "they are: they carry the stream, not a branch")
                out.append((scaled, None if functions else _scale_branches_edit(ends, 1 / math.sqrt(len(summed)))))
    if code in ("vanishing_through_time", "exploding_through_time"):
        # an element-wise recurrence (h = a * h + u; graph.elementwise_loops) has a decay vector,
        # no matrix to make orthogonal nor cell to gate: its remedy is the decay's own
        scans = [u for u in det.units if _elementwise_scan(u)]
        # a selective scan's decay exp(delta_t * A) (Mamba's) in its own terms, A = -exp(A_log)
        out += [(R.stable_decay(u.name, code == "vanishing_through_time", selective=u.name in result.selective_scans),
                 None) for u in scans]
        # nor is any other scan's decay (a vector: no orthogonal init, no LSTM in its place) named
        # by the remedies of the recurrent layers below (modsweep49 indrnn: the finding on
        # cells.0's decay was offered "make cells.1.weight_hh an LSTM", "orthogonal cells.1.weight_hh")
        recurrent = [u for u in recurrent if not _elementwise_scan(u)]
    if code == "exploding_through_time" and recurrent:
        # a loop whose steps add a branch to their own stream, x = x + f(x) (a cellular automaton's
        # update, an ODE solver's step, a block shared across depth): the branch scaled down by
        # 1/sqrt(its N sums), as for a deep residual stack, verified on the network (msweep11, 12)
        looped = {u.name for u in recurrent}
        ends = [n for n in dict.fromkeys(branch_ends(result)) if n in looped]
        if ends:
            sums = sum(result.summed.count(n) for n in ends)
            out.append((R.scaled_residual(f"the loop's update (ending at {', '.join(ends)}, added {sums} times)"),
                        None if functions else _scale_branches_edit(ends, 1 / math.sqrt(sums))))
    if code in ("vanishing_through_time", "exploding_through_time") and recurrent:
        names = ", ".join(u.name for u in recurrent)
        # never the init a layer already has: Keras' default recurrent_initializer is orthogonal
        # (kerassweep27 sent_simplernn_stack was offered it for three SimpleRNNs at that default)
        already = orthogonal_already(model, unit_names, [u.name for u in recurrent])
        known = _recurrent_modules(recurrent, model, unit_names)
        if any(u.name not in already for u in recurrent):
            fresh = [u for u in recurrent if u.name not in already]
            shown = [known[u.name] for u in fresh if u.name in known]
            out.append((R.orthogonal_init(", ".join(u.name for u in fresh),
                                          layers=shown if len(shown) == len(fresh) else ()),
                        _orthogonal_loops({u.name for u in recurrent})))
        steps = max((ts.norms.shape[1] for ts in result.time_series), default=2)
        # the snippet in the model's own layout: every recurrent module sequence-first, as an ONNX
        # LSTM of layout 0 and nn.LSTM's default are, shows batch_first=False
        layouts = {m.batch_first for m in model.modules() if isinstance(m, nn.RNNBase)}
        # filled from the layers where each is a torch recurrent module (a hand-written cell's
        # gates are its own code: the template)
        torch_cells = [known[u.name] for u in recurrent if u.name in known and not known[u.name].square]
        gated = R.gated_recurrent_cell(names, "chrono", steps, batch_first=layouts != {False},
                                       layers=torch_cells if len(torch_cells) == len(recurrent) else ())
        kinds = {u.type for u in recurrent}
        them = "it" if len(recurrent) == 1 else "each"
        # hard-sigmoid gates (Keras <= 2.3's default recurrent_activation) are flat past |x| = 2.5
        # (or 3): chrono's forget bias log U(1, T_max - 1) pins the forget gate at exactly 1 and the
        # input gate at 0, so no input enters the cell and no gradient passes (kerassweep28 hiv_lstm);
        # with sigmoid gates the same bias keeps memory and lets the input in
        hard = any(str(getattr(m, "gate_activation", "sigmoid")).startswith("hard_sigmoid")
                   for m in model.modules() if isinstance(m, nn.LSTM | nn.GRU))
        chrono = _combine(_sigmoid_gates, _chrono_edit(steps)) if hard else _chrono_edit(steps)
        gates_note = (", with sigmoid gates (recurrent_activation=\"sigmoid\"): a hard sigmoid is flat past "
                "|x| = 2.5, where chrono's forget bias pins the forget gate at 1 and the input gate at 0, "
                "so no input and no gradient would pass") if hard else ""
        if hard:
            gated.params["recurrent_activation"] = "sigmoid"
        if kinds == {"lstm"}:
            gated.change = f"keep {names} (LSTM) and give {them} chrono gate initialisation (T_max = {steps}){gates_note}"
            out.append((gated, chrono))
        elif kinds <= {"lstm", "gru"}:
            # already gated: the GRU's own gate opened, not a swap for an LSTM
            cells = "GRU" if kinds == {"gru"} else "GRU and LSTM"
            gated.change = (f"keep {names} ({cells}) and give {them} chrono gate initialisation (T_max = "
                            f"{steps}): a GRU's update-gate bias b_z = log(U(1, T_max - 1)), so that "
                            f"z = sigmoid(b_z) keeps the state over about T_max steps{gates_note}")
            gated.params["update_gate_bias"] = "chrono"
            gated.params["bias_code"] = (
                "b_z = torch.log(torch.empty(H).uniform_(1, T_max - 1))  # chrono init, GRU gates r, z, n\n"
                "        rnn.bias_ih_l0.data[H:2 * H] = b_z; rnn.bias_hh_l0.data[H:2 * H] = 0")
            out.append((gated, chrono))
        elif {u.name for u in recurrent} <= set(result.gate_drivers):
            # a cell written by hand whose recurrent layer drives sigmoid gates (a GRU's z and r, an
            # LSTM's f): already gated, so not "make it an LSTM" but its gates' own bias (msweep8)
            gated.change = (f"keep {names} (a gated cell written by hand) and open its forget/update gate at "
                            f"init: its bias b so that sigmoid(b) keeps the state over about T_max = {steps} "
                            "steps (b = log(U(1, T_max - 1)), chrono initialisation)")
            out.append((gated, None))
        else:
            out.append((gated, None))
    for remedy, edit in out:
        if edit is None and "not verified" not in remedy.change:
            remedy.change = f"{remedy.change} ({NOT_SIMULATED})"
    return out


#: A layer scale whose vector starts below this (CaiT's and DeiT III's 1e-5 and 1e-6, ConvNeXt's
#: 1e-6) gates everything before it on its path; it is a learned gate, so judge with it open.
_SMALL_SCALE = 0.1


def _open_scales(names: list[str]) -> Edit:
    """Every named layer-scale vector set to 1 on the copy: each gate open."""
    def edit(net: nn.Module, seed: int) -> None:
        tensors = {**dict(net.named_parameters()), **dict(net.named_buffers())}
        with torch.no_grad():
            for name in names:
                if name in tensors:
                    tensors[name].fill_(1.0)
    return edit


def _gated(det: Detection, result: SimulationResult, verifier: _Verifier) -> Detection | None:
    """``det`` as a note when layer scales that start small cause it: re-simulated with every
    scale at 1, the network is healthy. A vision transformer whose head reads the class token
    (DeiT III, CaiT) reaches its patch tokens only through attention branches scaled by 1e-6 at
    init, so their gradient is a millionth of the class token's; each scale's own gradient is
    full-sized, so the gates open within the first steps (Touvron et al. 2021). None: not so."""
    scales = result.layer_scales
    if (det.code not in ("vanishing_gradient", "exploding_gradient") or det.severity == "info"
            or not scales or max(scales.values()) >= _SMALL_SCALE):
        return None
    try:
        after = verifier.simulate(_open_scales(sorted(scales)), budgeted=False)  # (the finding's own: not a remedy's)
    except (RuntimeError, ValueError):
        return None
    value, severity = rule(det.code).architecture.severity(after, verifier.thresholds)
    if severity not in (None, "info"):
        return None
    evidence = {**det.evidence, "gated_by_layer_scales": True, "layer_scales": len(scales),
                "largest_layer_scale": max(scales.values()), "value_with_layer_scales_at_1": value}
    explanation = (
        f"{len(scales)} layer scale(s) start at most {max(scales.values()):.3g}: each multiplies a "
        "residual branch, so what reaches the loss only through those branches (the patch tokens, "
        "where the head reads a class token) gets that small a share of the gradient "
        f"{simulated_weights(result)}. Re-simulated with every layer scale at 1 the ratio is {value:.3g}: "
        "healthy. A layer scale's own gradient is full-sized, so training opens the gates within "
        "the first steps; nothing needs fixing.")
    return dataclasses.replace(det, severity="info", evidence=evidence, explanation=explanation)


class _Verifier:
    def __init__(self, run: GraphRun, result: SimulationResult, thresholds: Thresholds,
                 device: str | None, budget: float | None = None) -> None:
        self.run, self.result, self.thresholds, self.device = run, result, thresholds, device
        self.simulated = 0
        self.rescaled = 0  # remedies verified from the run's own result rescaled to another rate
        self.seconds = 0.0
        self.per_seed = result.duration_s / max(result.seeds, 1)
        if budget is None:
            from gradhealth.settings import get_settings

            budget = get_settings().limits.max_verify_seconds
        self.budget = budget
        self.over = 0  # remedies left unverified for the budget
        self.margin = seed_margin(result)

    def simulate(self, change: Change, seeds: int | None = None, budgeted: bool = True) -> SimulationResult:
        """The run with ``change`` (another optimizer, or an edit after the run's own
        preparation) simulated over its first ``seeds`` seeds (None: all); its time counted in
        the diagnosis'. ``budgeted``: :class:`OverBudget` where it would pass the remedies' budget."""
        if isinstance(change, OptimizerSpec):
            run = dataclasses.replace(self.run, optimizer=change)
        elif change == ONCE:
            run = dataclasses.replace(self.run, squashed=None)
        elif isinstance(change, DropSquash):
            run = dataclasses.replace(self.run, squashed=None, prepare=_combine(self.run.prepare, change.edit))
        elif change == UNSQUASH:
            run = dataclasses.replace(self.run, unsquash=True)
        elif change == BINARY:
            # one unit under binary cross-entropy: a sigmoid for a softmax over it where the loss takes
            # probabilities; its logit where the loss takes logits and applies the sigmoid itself
            # (a Keras softmax folded into a loss on logits, ``squashed``, is that softmax: dropped too)
            run = dataclasses.replace(self.run, loss="binary_cross_entropy", squashed=None, prepare=_combine(
                self.run.prepare, _softmax_to_identity if self.run.from_logits else _softmax_to_sigmoid))
        elif isinstance(change, Guard):
            run = dataclasses.replace(self.run, guards=(*self.run.guards, change))
        elif change == STANDARDISED_TARGETS and self.run.target_samples is not None:
            t = self.run.target_samples
            run = dataclasses.replace(self.run, target_samples=(t - t.mean()) / t.std(unbiased=False).clamp_min(1e-12))
        elif isinstance(change, str):  # LOGITS
            run = dataclasses.replace(self.run, from_logits=True)
        else:
            run = dataclasses.replace(self.run, prepare=_combine(self.run.prepare, change))
        if budgeted and over_budget(self.seconds, self.per_seed, seeds or self.run.seeds, self.budget):
            raise OverBudget
        after = simulate_graph(run, device=self.device, seeds=seeds)
        self.seconds += after.duration_s
        return after

    def verify(self, det: Detection, before: list[Detection], remedy: Remedy,
               change: Change) -> SimulationResult | None:
        """Simulates ``change`` and sets ``remedy.verified``; returns the simulation (None when
        the changed network could not be simulated)."""
        # another learning rate alone: the run's own result rescaled (:func:`at_rate`)
        rescaled = at_rate(self.result, change) if isinstance(change, OptimizerSpec) else None
        try:
            after = rescaled or self.simulate(change, seeds=1)
            self.simulated += rescaled is None
            self.rescaled += rescaled is not None
            if after.seeds < self.run.seeds and (not_judged(det.code, rule(det.code).architecture.measure(after),
                                                            after) is not None or not decided(
                    lambda t: acted_on(self.judge(det, before, after, t)), self.thresholds, self.margin)):
                # (one seed's samples too few to judge, a batch of 1: every seed's, pooled as the finding's)
                # past the budget, the one seed's verdict stands, its `seeds` saying so
                with contextlib.suppress(OverBudget):
                    after = self.simulate(change)  # close to a threshold on one seed: every seed decides
                    self.simulated += 1
        except (RuntimeError, ValueError) as exc:
            remedy.verified = Verified(metric=det.metric, before=finite_or_none(det.value), after=None,
                                       fixed=False, note=f"could not simulate the changed network: {exc}")
            remedy.recommended = False
            return None
        verdict = self.judge(det, before, after, self.thresholds)
        value, fixed, new, unmeasured = verdict.value, verdict.fixed, verdict.side_effects, verdict.not_measured
        unjudged = not_judged(det.code, value, after)
        judged = judged_figure(det, self.result, after, self.thresholds)
        note = unmeasured or verdict_note(value, fixed, det.code, after, self.thresholds, judged)
        probed = self.probe(det, change)
        diverged = False
        if probed is not None:
            # a new rate past which the run diverged, or trained in the catapult regime: judged on
            # what SGD does at it (the probe's loss), not on the bound the rate was chosen by alone
            judged, words, diverged = probed
            fixed = fixed and not diverged
            note = f"{note}; {words}" if note else words
        shown, other = same_metric_after(det, value, after, self.thresholds)
        if other:
            note = f"{note}; {other}" if note else other
        remedy.verified = Verified(metric=det.metric, before=finite_or_none(det.value),
                                   after=finite_or_none(shown),
                                   fixed=None if unmeasured else fixed, side_effects=new, not_judged=unjudged,
                                   not_measured=unmeasured, judged=judged, seeds=after.seeds, note=note)
        v = remedy.verified
        # (judged by the metric's own bar, where the verdict turned on it: not a `judged` figure's)
        v.improved = (not fixed and not new and not diverged and unjudged is None and unmeasured is None
                      and v.judged is None and improved(v.before, v.after, det.evidence.get("threshold")))
        # (a verdict not judged, or with nothing to measure, measured nothing against it: left
        # recommended, as an unverified one; one that improved the figure a decade, as a partial one)
        remedy.recommended = (fixed or v.improved or unjudged is not None or unmeasured is not None) and not new
        return after

    def probe(self, det: Detection, change: Change) -> tuple[JudgedFigure, str, bool] | None:
        """For a large_updates rate remedy where the run's rate was probed (past the bound): the
        same probe at the new rate (:func:`.graph.rate_probe`): (the loss after its steps at the old
        and the new rate, the words, whether the new rate's loss blew up); None otherwise."""
        old = self.result.rate_probe
        if det.code != "large_updates" or not isinstance(change, OptimizerSpec) or old is None:
            return None
        probe = _rate_probe(self.run, self.result, self.device, optimizer=change)
        if probe is None:
            return None
        verdict = "it diverges" if probe.diverged else "no divergence"
        was = "diverging" if old.diverged else "not diverging"
        words = (f"at lr {change.lr:g} {probe_words(probe)}: {verdict} (at lr {old.lr:g} it went "
                 f"{old.initial:.3g} -> {old.final:.3g}, {was})")
        figure = JudgedFigure(code=det.code, metric="probe_final_loss", before=finite_or_none(old.final),
                              after=finite_or_none(probe.final))
        return figure, words, probe.diverged

    def judge(self, det: Detection, before: list[Detection], after: SimulationResult,
              thresholds: Thresholds) -> Verdict:
        """What ``after`` says of ``det`` under ``thresholds``: the spec door's :func:`.check.judge`
        with this door's rules (:data:`.check.MODULE_DOOR`), the run's own simulation ``self.result``
        naming what the unchanged network already shows on ``after``'s seeds (no side effect)."""
        return judge(det, before, after, thresholds, self.result, MODULE_DOOR)


#: Codes whose fixes include changes to training, as the spec check proposes them: gradient
#: clipping at a threshold from the best verified remedy's healthy norms, and a lower rate.
_TRAINING_TIME = ("exploding_gradient", "exploding_through_time")


def _training_time(det: Detection, remedies: list[Remedy],
                   results: dict[int, SimulationResult]) -> list[Remedy]:
    """Clipping (its threshold from :func:`clip_reference`'s re-simulation, none without one) for
    an exploding finding, and a lower learning rate for one through depth."""
    if det.code not in _TRAINING_TIME:
        return []
    out: list[Remedy] = []
    if det.evidence.get("unscaled_targets"):
        out.append(_targets_for_output_scale(det))
    best = clip_reference(det.code, remedies, results)
    if best is not None:
        clip = clip_threshold(best, "the best verified remedy's re-simulation")
        if clip is not None:
            out.append(clip)
    if det.code == "exploding_gradient":  # (through time: the recurrence's own growth, see rules)
        out.append(R.lower_learning_rate())
    for remedy in out:
        remedy.unverified = "training_time"
    return out


def _targets_for_output_scale(det: Detection) -> Remedy:
    """``normalise_targets`` for a trained regressor whose output scale the finding names
    (:func:`.rules.learned_output_scale`), the targets' mean and std estimated by the checkpoint's
    own outputs on the simulated inputs. A change to the data and a new training: not re-simulated."""
    ev = det.evidence
    mean, std = float(ev.get("output_mean") or 0.0), float(ev.get("output_std") or 0.0)
    remedy = R.normalise_targets(mean, std)
    remedy.change = (f"standardise the regression targets with the training set's mean and std, (y - mean) / std, "
                     "train again, and invert at prediction (y = output * std + mean): the trained "
                     f"{ev.get('output_layer') or 'output'} outputs values of mean {mean:.3g} and std {std:.3g} "
                     "on the simulated inputs (an estimate of the targets' scale; use the training targets' own "
                     "statistics), a gain the weights learned, which scales every gradient and update by as much")
    if ev.get("target_rms") is None:
        # (judged against standard-normal targets: the targets' real range makes it a note if it matches)
        remedy.change += ("; if the targets really are at this scale, give their range (--target-range LO,HI, "
                          "target_range=) to have the output judged against them")
    return remedy


def _located(det: Detection, run: GraphRun, device: str | None) -> Detection:
    """A NaN/Inf with the operation that made it and where the forward calls it: the first layer
    whose output holds one may come after a function that made it (torch.log of a ReLU's zeros is
    -inf before the next layer); on the way back, the call whose derivative made it (sqrt's at 0)."""
    backward = det.evidence.get("pass") == "backward"
    if det.code != "nonfinite" or det.evidence.get("dtype") or det.evidence.get("pass") not in ("forward", "backward"):
        return det
    try:
        found = first_nonfinite_backward(run, device) if backward else first_nonfinite(run, device)
    except Exception:  # noqa: BLE001 - naming the op is a courtesy: the finding stands without it
        return det
    if found is None:
        return det
    op, where = found
    at = f" at {where}" if where else ""
    # a live module's line, or an imported graph's node (its calls are this package's)
    evidence = {**det.evidence, "operation": op, "called_at" if run.trace_functions else "node": where}
    made = f"the derivative of {op}" if backward else op
    summary = f"{det.summary} (made by {made}{at})"
    if det.severity == "info":
        return dataclasses.replace(det, summary=summary, evidence=evidence)
    if guardable(op):
        explanation = (f"The first NaN/Inf is made by {made}{at} from finite numbers: the operation "
                       f"{'has an infinite derivative' if backward else 'is undefined or infinite'} there "
                       "(a log or a division at 0, the root of 0 or of a negative). Keep its input in its domain "
                       f"with an eps guard ({guarded_code(op)}); every later number is then NaN/Inf and "
                       "training cannot proceed.")
    elif backward:
        explanation = (f"The first NaN/Inf on the way back is made by {made}{at} from finite gradients; "
                       "every gradient before it is then NaN/Inf and training cannot proceed.")
    elif op in _EXPONENTIAL:
        # peersweep18 (Keras activation="exponential"): He-scaled weights overflow too, since exp's
        # output scale is exponential in its input's; "weights far too large" sent users to the init
        explanation = (f"The first NaN/Inf is made by {op}{at} from finite inputs: its result overflowed "
                       "the float range, as an exponential does once its input passes a few dozen (exp: 88 in float32, 709 in "
                       "float64). An exponential raises the scale of what it feeds exponentially in its "
                       "input's (E[exp(2x)] = exp(2 var x) for a zero-mean Gaussian x), so exps in a stack "
                       "overflow whatever the initialisation. Use a ReLU-family or bounded activation in "
                       "hidden layers, and where a positive output is needed bound the input first "
                       "(torch.exp(x.clamp(max=20)), softplus) or stay in log space (log_softmax, "
                       "logsumexp); every later number is then NaN/Inf and training cannot proceed.")
    else:
        explanation = (f"The first NaN/Inf is made by {op}{at} from finite inputs: its result overflowed "
                       f"the float range, so {_TOO_LARGE}; every later "
                       "number is then NaN/Inf and training cannot proceed.")
    return dataclasses.replace(det, summary=summary, explanation=explanation, evidence=evidence)


#: The cause a NaN/Inf from an overflow is put down to where nothing else names one
_TOO_LARGE = ("the weights or activations before it are far too large (an initialisation or learning rate too "
              "large, no normalisation)")


def _overflow_through_time(detections: list[Detection]) -> list[Detection]:
    """A NaN/Inf from an overflow put down to the weights across depth, reworded where an
    ``exploding_through_time`` error or warning beside it measures a recurrence whose state grows at
    every step: the state compounds that per-step gain over the steps until it passes the float range,
    so the cause is the recurrence (its decay, its recurrent weight), not an initialisation or a
    learning rate (modsweep49 mamba_positive_A: a selective scan with exp(delta * A) > 1 a step read
    "weights or activations before it are far too large (an initialisation or learning rate ...)")."""
    timed = next((d for d in detections if d.code == "exploding_through_time" and d.severity != "info"), None)
    if timed is None:
        return detections
    layers = ", ".join(str(x) for x in timed.evidence.get("layers") or []) or "a recurrent layer"
    factor = timed.evidence.get("per_step_factor")
    gain = f", growing by {fmt(factor)} per step" if isinstance(factor, int | float) and math.isfinite(factor) else ""
    # (the through-time finding names its worst recurrence, which need not be the first to overflow)
    cause = (f"the cause is a recurrence whose state grows at every step, the steps compounding that gain until "
             f"it passes the float range: the exploding_through_time finding beside it measures one, in {layers}"
             f"{gain} (keep a recurrence's per-step gain under 1: a decay of magnitude under 1, a recurrent "
             "weight's spectral radius under 1; a new initialisation across depth or a lower learning rate does "
             "not change it)")
    out = []
    for d in detections:
        if d.code == "nonfinite" and d.severity != "info" and _TOO_LARGE in d.explanation.lower():
            at = d.explanation.lower().index(_TOO_LARGE)
            said = cause[0].upper() + cause[1:] if d.explanation[at].isupper() else cause
            explanation = d.explanation[:at] + said + d.explanation[at + len(_TOO_LARGE):]
            d = dataclasses.replace(d, explanation=explanation,
                                    evidence={**d.evidence, "through_time": "exploding_through_time"})
        out.append(d)
    return out


#: Operations whose result is exponential in their input: they overflow the float range from inputs
#: of a few dozen, whatever the weights' scale.
_EXPONENTIAL = frozenset({"exp", "exp2", "expm1", "sinh", "cosh", "exponential"})


def _own_dtype_overflow(det: Detection, run: GraphRun, result: SimulationResult, *,
                        simulation_finite: bool = False) -> Detection:
    """A NaN/Inf the simulation found, located where the model's own dtype would make it, where the
    simulation ran in a wider one (float64 for a float32 model), or, with ``simulation_finite``, that the
    model's own dtype alone makes (:func:`_native_overflow`: float64 stays finite): the first layer, in the forward's
    order, whose outputs pass that dtype's largest number (float32's 3.4e38), else the first on the way
    back whose output's or weights' gradient does, read off the float64 figures' largest magnitudes.
    modsweep42: 100 ReLU layers of N(0, 1) weights overflow float32 in the forward at layers.36, where
    training runs; float64, whose range holds those activations, first overflowed in the backward at
    layers.99, which the finding named. ``det`` as it was where no layer passes (the overflow is the
    simulation's own, or an operation's), the model is the simulation's dtype, or not a nonfinite error."""
    native = own_dtype(run.model)
    if (det.code != "nonfinite" or det.severity == "info" or (det.evidence.get("dtype") and not simulation_finite)
            or native is None
            or not native.is_floating_point or torch.finfo(native).max >= torch.finfo(run.dtype).max):
        return det
    top = float(torch.finfo(native).max)

    def largest(unit: UnitStats, metrics: tuple[str, ...]) -> float | None:
        """The largest finite figure past the dtype's top; inf where the simulation's own was not
        finite first (the simulation fails there too: its NaN/Inf is an operation's, a log of 0, and
        its location stands); None where neither."""
        values = [float(x) for m in metrics for x in unit.values.get(m, ()) if not math.isnan(x)]
        past = [x for x in values if x > top and math.isfinite(x)]
        return max(past) if past else math.inf if any(math.isinf(x) for x in values) else None

    found: tuple[UnitStats, str, float] | None = None
    walk = [(u, "forward", (ACTIVATION_ABS_MAX,)) for u in result.units] + [
        (u, "backward", (OUTPUT_GRAD_ABS_MAX, WEIGHT_GRAD_ABS_MAX)) for u in reversed(result.units)]
    for u, where, metrics in walk:
        v = largest(u, metrics)
        if v is not None:
            found = (u, where, v)
            break
    if found is None or math.isinf(found[2]):
        return det
    unit, where, value = found
    name, wide = precision_name(native), precision_name(run.dtype)
    what = "outputs" if where == "forward" else "gradients"
    shown = f"{value:.3g}"
    before, layers = det.evidence.get("pass"), list(det.evidence.get("layers") or [])
    simulated = (f"; the {wide} simulation, whose range holds it, stays finite" if simulation_finite else
                 f"; in the {wide} simulation, whose range holds more, it first appears "
                 + (f"in the {before} pass at {', '.join(layers)}" if layers and before in ("forward", "backward")
                    else "in the loss"))
    evidence = {**det.evidence, "pass": where, "layers": [unit.name], "dtype": name, "largest": value,
                "dtype_max": top, "simulated_dtype": wide, "simulated_pass": None if simulation_finite else before,
                "simulated_layers": [] if simulation_finite else det.evidence.get("layers")}
    return dataclasses.replace(
        det,
        summary=(f"NaN/Inf first appears in the {where} pass at {unit.name} in {name}, the model's own dtype: its "
                 f"{what} reach {shown}, past {name}'s largest number {top:.3g}{simulated}"),
        explanation=(f"Measured in {wide}, {unit.name}'s {what} reach {shown}; in {name}, the dtype the model is "
                     f"built and trains in, every value past {top:.3g} is Inf, so its {what} overflow there and "
                     f"every later number is NaN/Inf: training cannot proceed. {_TOO_LARGE[0].upper()}"
                     f"{_TOO_LARGE[1:]}."),
        evidence=evidence, units=[unit])


#: A packed slice's gradient norm at or under this share of its largest sibling's counts as none: the
#: round-off of float64 sums, far below any gradient that moves a weight (softmax over one key gives
#: exactly 0; a dot product's round-off is ~1e-16 of its terms).
_ZERO_SLICE_SHARE = 1e-12


def _zero_slices(result: SimulationResult, thresholds: Thresholds) -> Detection | None:
    """A packed q/k/v projection (``nn.MultiheadAttention``'s ``in_proj_weight``) one of whose slices
    gets no gradient in any seed while another does, judged as a layer with no gradient is: the one
    norm over the packed tensor hides it (modsweep48 ppmgcn_miltrans: a TransformerEncoder without
    batch_first fed ``x.unsqueeze(0)``, (1, N, C), attends over sequences of length 1; softmax over one
    key is constantly 1, so Q and K get exactly 0 and V 0.11, and the layer read healthy). Where every
    call attended over one position, the finding says so, with the axis and the remedy. A slice that
    is small but not zero is not judged: Q and K gradients sit well below V's at initialisation in a
    healthy Transformer (near-uniform attention), and the depth thresholds are not calibrated on that
    ratio. The slices' norms are the simulation's own (``result.packed_slices``), from each seed's
    one backward."""
    packed = result.packed_slices
    hit: list[tuple[Any, list[str]]] = []
    for p in packed:
        top = [max(vals) for vals in zip(*p.norms.values(), strict=True)]  # per seed
        if not top or not all(t > 0 and math.isfinite(t) for t in top):
            continue
        zero = [s for s, vals in p.norms.items()
                if all(v <= _ZERO_SLICE_SHARE * t for v, t in zip(vals, top, strict=True))]
        if zero:
            hit.append((p, zero))
    if not hit:
        return None
    names = [f"{p.module}.in_proj_weight[{s}]" for p, zero in hit for s in zero]
    shown = first_few(names, R.NAMED_LAYERS)
    single = [p for p, _ in hit if p.lengths and set(p.lengths) == {1}]
    evidence: dict[str, Any] = {
        "metric": "packed_slice_grad_norm", "value": 0.0, "threshold": thresholds.vanishing_warning,
        "layers": list(dict.fromkeys(p.module for p, _ in hit)), "zero_slices": names, "disconnected": True,
        "slice_grad_norms": {f"{p.module}.in_proj_weight[{s}]": float(np.exp(np.mean(np.log(v)))) if min(v) > 0 else 0.0
                             for p, _ in hit for s, v in p.norms.items()},
    }
    summary = f"no gradient reaches {shown}: a slice of a packed q/k/v projection gets exactly 0 in every seed"
    explanation = (
        f"nn.MultiheadAttention packs the query, key and value projections into one in_proj_weight (rows q, k, "
        f"v), and the layer table's one norm over it hides a slice with none: {shown} "
        f"{'gets' if len(names) == 1 else 'get'} exactly no gradient while the other slices do, so "
        f"{'it does' if len(names) == 1 else 'they do'} not learn.")
    if single:
        p = single[0]
        axis_words = ("1 (batch_first=True: (batch, seq, feature))" if p.batch_first
                      else "0 (batch_first=False: (seq, batch, feature))")
        evidence.update(attended_axis=p.axis, attended_length=1, batch_first=p.batch_first,
                        single_position=[q.module for q in single])
        summary += f"; it attends over sequences of length 1 (axis {p.axis} of its input)"
        explanation += (
            f" {first_few([q.module for q in single], R.NAMED_LAYERS)} attended over axis {axis_words} of its input, "
            "whose length is 1 in every call: softmax over a single key is constantly 1, so the attention "
            "weights do not depend on the queries or keys and Q and K get no gradient; each position attends "
            "only to itself and nothing is mixed. This is most often a layout mix-up: "
            + ("a (1, N, features) tensor (x.unsqueeze(0)) read with batch_first=False puts the N items in the "
               "batch axis. Build the layer with batch_first=True for (batch, seq, feature) inputs, or permute the "
               "input to (seq, batch, feature)."
               if not p.batch_first else
               "a (N, 1, features) tensor (x.unsqueeze(1)) read with batch_first=True puts the N items in the "
               "batch axis. Build the layer with batch_first=False for (seq, batch, feature) inputs, or permute the "
               "input to (batch, seq, feature).")
            + " If one position is meant, the attention is an identity on V and can be replaced by a linear layer.")
    else:
        explanation += (" The output does not depend on what that slice computes: check what the attention "
                        "reads (its masks, its sequence length, the data layout).")
    return Detection("vanishing_gradient", thresholds.vanishing(0.0) or "error", "packed_slice_grad_norm", 0.0,
                     summary, explanation, evidence)


def _native_overflow(run: GraphRun, device: str | None) -> Detection | None:
    """A nonfinite error when the forward overflows in the model's own dtype though the float64
    simulation stays finite (:func:`native_nonfinite`). No remedy is simulated for it: in float64
    every change "fixes" it; the fix is a formulation that does not overflow, which it names."""
    try:
        found = native_nonfinite(run, device)
    except Exception:  # noqa: BLE001 - an op the model's half type lacks on this device: not judged
        return None
    if found is None:
        return None
    dtype, (op, where) = found
    name = str(dtype).removeprefix("torch.")
    at = f" at {where}" if where else ""
    return Detection(
        "nonfinite", "error", "nonfinite", 1.0,
        f"NaN/Inf in the forward pass in the model's own {name} (made by {op}{at}); the float64 "
        "simulation stays finite",
        f"In {name}, the model's dtype, {op}{at} makes the first NaN/Inf from finite inputs: its result "
        f"passes {name}'s largest number (3.4e38 for float32, 65504 for float16), which float64's "
        "1.8e308 still holds, so the measurements (in float64) look fine while training in "
        f"{name} gets NaN at once. Compute it in a form that cannot overflow: torch.softmax, "
        "log_softmax or logsumexp instead of exp(x) / exp(x).sum(), softplus instead of log(1 + "
        "exp(x)), exp of a clamped input; or keep what feeds it small (its init, a norm before it).",
        {"metric": "nonfinite", "value": 1.0, "layers": [], "pass": "forward", "dtype": name,
         "operation": op, "called_at": where},
        [])


def _site_of(exc: BaseException) -> str | None:
    """``file:line (code)`` of the innermost frame of ``exc``'s traceback outside torch and this
    package: the user's line that raised (None where every frame is a library's)."""
    return _user_site(traceback.extract_tb(exc.__traceback__))


def _user_site(frames: traceback.StackSummary) -> str | None:
    """``file:line (code)`` of the innermost of ``frames`` (outermost first) outside torch and this
    package; None where every frame is a library's."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if path.startswith((here + os.sep, torch_dir + os.sep)) or frame.filename.startswith("<"):
            continue
        code = f" ({frame.line.strip()})" if frame.line else ""
        return f"{os.path.basename(frame.filename)}:{frame.lineno}{code}"
    return None


@dataclasses.dataclass
class Unregistered:
    """Modules or parameters a model holds in a plain Python container attribute (a list, tuple or
    dict, not ``nn.ModuleList``/``ModuleDict``/``ParameterList``): torch does not register them, so
    ``model.parameters()`` (what the optimizer is given), ``.to()``, ``.double()`` and ``state_dict()``
    never see them."""

    place: str  # the attribute's path from the model ("encoder.blocks")
    container: str  # "list", "tuple" or "dict"
    tensors: int  # parameter tensors
    numel: int  # their elements


class _ParameterUse(torch.overrides.TorchFunctionMode):
    """Records the ids of the ``nn.Parameter`` arguments of every torch function a forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.used: set[int] = set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        for leaf in pytree.tree_leaves((args, kwargs or {})):
            if isinstance(leaf, nn.Parameter):
                self.used.add(id(leaf))
        return func(*args, **(kwargs or {}))


def _held_outside(model: nn.Module) -> list[tuple[str, str, list[nn.Parameter]]]:
    """(place, container, parameters) for each plain list, tuple or dict attribute of ``model`` or
    its submodules that holds modules or parameters not among ``model.parameters()``."""
    own = {id(p) for p in model.parameters()}
    found: list[tuple[str, str, list[nn.Parameter]]] = []
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") and attr in ("_parameters", "_buffers", "_modules"):
                continue
            if isinstance(value, dict):
                items, kind = list(value.values()), "dict"
            elif isinstance(value, (list, tuple)):
                items, kind = list(value), type(value).__name__ if type(value) in (list, tuple) else "list"
            else:
                continue
            params: dict[int, nn.Parameter] = {}
            for item in items:
                held = [item] if isinstance(item, nn.Parameter) else \
                    list(item.parameters()) if isinstance(item, nn.Module) else []
                params.update({id(p): p for p in held if id(p) not in own})
            if params:
                found.append((f"{prefix}.{attr}" if prefix else attr, kind, list(params.values())))
    return found


def unregistered_parameters(model: nn.Module, example_inputs: Any) -> list[Unregistered]:
    """The :class:`Unregistered` containers of ``model`` whose parameters its forward uses on the
    example inputs (one forward of a copy, without gradients, only where a plain container holds
    modules or parameters at all; a container the forward never reads is no fault). Empty where none
    is, or the forward cannot run on the example (the check then says why)."""
    if not _held_outside(model):
        return []
    try:
        xs, _, layout = _flatten(example_inputs, model)
        net = copy_module(model)
        use = _ParameterUse()
        with torch.no_grad(), use:
            call(net, xs, _keywords(example_inputs), layout)
    except Exception:  # noqa: BLE001 - the simulation meets the same failure and words it
        return []
    return [Unregistered(place, kind, len(used), sum(p.numel() for p in used))
            for place, kind, params in _held_outside(net)
            if (used := [p for p in params if id(p) in use.used])]


def unregistered_note(found: Sequence[Unregistered], model: nn.Module) -> str:
    """``simulation.notes``' line for :func:`unregistered_parameters`: what they are, what it means
    for training, and the fix (modsweep43 ipsum_transformer_list: a transformer's blocks in a plain
    list, 455 parameter tensors no optimizer ever saw, read as healthy without a word)."""
    own = sum(p.numel() for p in model.parameters())
    total = sum(f.numel for f in found)
    places = first_few([f"{f.place} (a plain {f.container}, {f.tensors} parameter tensors)" for f in found])
    kinds = {f.container for f in found}
    fix = " and ".join(sorted({"nn.ModuleList (nn.ParameterList for bare parameters)" if k != "dict"
                               else "nn.ModuleDict (nn.ParameterDict)" for k in kinds}))
    return (f"parameters not registered: the forward uses {total:,} weights the model does not own, held in "
            f"{places}. torch registers modules and parameters only as attributes or in its containers, so "
            f"model.parameters() ({own:,} weights) leaves these out: an optimizer built from it never updates "
            "them (they keep their initial values however long training runs), and .to(device), .double() and "
            f"state_dict() miss them too. Hold them in {fix}. The figures here are of them as they are, "
            "untrained")


def precision_note(run: GraphRun, exc: BaseException) -> str:
    """``simulation.notes``' line where the float64 copy failed and the model's own dtype ran
    (:func:`_simulate_first`): the error, the line, and what it changes (modsweep41: two RNNs whose
    forward builds its initial state with ``torch.zeros(...)`` ran in float32 without a word)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    first = first if len(first) <= 200 else first[:197] + "..."
    site = _site_of(exc)
    name = precision_name(run.dtype)
    outside = _held_outside(run.model)
    if outside:
        # .double() converts only registered parameters: modules in a plain list stay float32
        # (modsweep43: blamed on "a tensor it makes or casts itself")
        places = first_few([f"{place} (a plain {kind})" for place, kind, _ in outside])
        return (f"simulated in {name}, the model's own dtype, not on a float64 copy: the forward failed in float64 "
                f"({type(exc).__name__}: {first}){f' at {site}' if site else ''}: the modules or parameters held in "
                f"{places} are not registered, so .double() leaves them {name} beside the float64 weights (see the "
                f"note on parameters not registered). Figures are {name}'s: a gradient under its smallest normal "
                f"number ({float(torch.finfo(run.dtype).tiny):.3g}) reads as 0")
    return (f"simulated in {name}, the model's own dtype, not on a float64 copy: the forward failed in float64 "
            f"({type(exc).__name__}: {first}){f' at {site}' if site else ''}, a tensor it makes or casts "
            f"itself (torch.zeros(...) without dtype=, x.float()) staying {name} beside the float64 weights. "
            f"Figures are {name}'s: a gradient under its smallest normal number "
            f"({float(torch.finfo(run.dtype).tiny):.3g}) reads as 0. To have it run in float64, make such tensors "
            "as their input is made (torch.zeros(..., dtype=x.dtype, device=x.device), x.new_zeros(...))")


def narrow_note(run: GraphRun, device: str | None = None) -> str | None:
    """``simulation.notes``' line where the float64 copy ran but the forward made a narrower tensor
    itself that gradients flow through (:func:`.graph.narrow_tensors`): that part of it ran in float32,
    with no error to say so (modsweep46 seanie_realnvp)."""
    found = narrow_tensors(run, device)
    if found is None:
        return None
    dtype, op, site, made = found
    name, wide = precision_name(dtype), precision_name(run.dtype)
    origin = (f", on a {name} tensor made by `{made[0]}`{f' at {made[1]}' if made[1] else ''} (made without dtype=, "
              "or cast with .float())" if made is not None and made[1] != site else "")
    return (f"simulated in {wide}, but part of the forward ran in {name}: `{op}`{f' at {site}' if site else ''} "
            f"computes in {name}{origin}; what is computed from it, or added into it in place (+=, which keeps "
            f"its {name}), stays {name}, so figures of that part are {name}'s. To have it run in {wide}, make "
            "such tensors as their input is made (torch.zeros(..., dtype=x.dtype, device=x.device), x.new_zeros(...))")


def _simulate_first(run: GraphRun, device: str | None, progress: Callable[[float, str], None]
                    ) -> tuple[GraphRun, SimulationResult, str | None]:
    """(the run that simulated, its result, a note where it fell back): ``run`` in its dtype
    (float64), or, where that fails, in the model's own dtype (float32), which then serves every
    later simulation too; the note (:func:`precision_note`) names the float64 pass's error.

    A forward that makes or casts tensors in its own precision (``torch.zeros(L, B, H)`` for an
    LSTM's initial state, ``t.float()`` in a timestep embedding, guided-diffusion's GroupNorm32 over
    ``x.float()``) meets the float64 copy's weights with float32 tensors and stops ("mat1 and mat2
    must have the same dtype"). It runs as written in the dtype it was built in, so any failure that
    the model's own dtype does not repeat was the cast's; one it repeats is the model's, and is
    raised as the float64 pass raised it. The document's ``simulation.precision`` says which ran."""
    try:
        return run, simulate_graph(run, device=device, progress=progress), None
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        own = in_own_dtype(run)
        if own is None:
            raise
        try:
            return own, simulate_graph(own, device=device, progress=progress), precision_note(own, exc)
        except RuntimeError:
            raise exc from None  # not the precision: the model's own error, as float64 met it


def diagnose(run: GraphRun, *, name: str | None = None, verify: bool = True, device: str | None = None,
             thresholds: Thresholds | None = None, parameters: int | None = None,
             activation_bytes: int = 0, progress: Callable[[float, str], None] | None = None,
             budget: float | None = None) -> Diagnosis:
    """Simulate ``run``, detect findings and (with ``verify``) verify remedies on copies, their
    re-simulations within ``budget`` seconds (None: the settings' ``max_verify_seconds``)."""
    thresholds = thresholds or Thresholds()
    report = progress or (lambda fraction, stage: None)
    # the simulation's share of the bar: the whole of it where no remedy is re-simulated (newuser15 #3)
    share = 0.4 if verify else 1.0
    run, result, fallback = _simulate_first(run, device, lambda f, s: report(share * f, s))
    if fallback is None:
        fallback = narrow_note(run, device)
    if not result.units and not any(True for _ in run.model.parameters()):
        raise ValueError("the check found no layer to measure in this network, and no parameter to train: "
                         "its forward calls no nn.Linear, Conv, RNN, Embedding or norm module, and no "
                         "F.linear or F.conv on a parameter of its own, no x @ W or torch.einsum of an input "
                         "with one; write its layers as modules, or as F.linear(x, w, b)")
    result = dataclasses.replace(result, sharpness=_sharpness(run, result, device))
    result = dataclasses.replace(result, rate_probe=_rate_probe(run, result, device))
    detections = [_located(_own_dtype_overflow(d, run, result), run, device) for d in detect(result, thresholds)]
    if not any(d.code == "nonfinite" for d in detections):
        overflow = _native_overflow(run, device)
        # located at the first layer past the dtype's top where the figures show one (a float32 MLP
        # whose float64 norms no longer overflow: modsweep42 #4)
        detections = ([_own_dtype_overflow(overflow, run, result, simulation_finite=True), *detections]
                      if overflow is not None else detections)
    detections = _overflow_through_time(detections)
    verifier = _Verifier(run, result, thresholds, device, budget)
    detections = [_gated(det, result, verifier) or det for det in detections]
    sliced = _zero_slices(result, thresholds)  # (no remedy on a copy: its explanation names the fix)
    if sliced is not None:
        detections.append(sliced)
    # one finding per code: a zero packed slice beside a depth ratio is one vanishing_gradient (modsweep48)
    detections = merge_same_code(detections)
    findings: list[Finding] = []
    far = far_targets(run.target_samples)  # the run's, whatever the finding
    for i, det in enumerate(detections):
        report(share + (1.0 - share) * i / max(len(detections), 1),
               f"verifying remedies for {det.code}" if verify else f"proposing remedies for {det.code}")
        remedies: list[Remedy] = []
        results: dict[int, SimulationResult] = {}  # id(remedy) -> its verifying simulation
        # a note (info) gets none: its explanation says what would remove it, nothing needs fixing
        proposed = _proposals(det, result, run.model, run.names, far) if det.severity != "info" else []
        # (the spec door's rules, one code path: no rate sized from steps a growth inflated)
        kept = {id(r) for r in without_inflated_rate(det, detections, [r for r, _ in proposed])}
        for remedy, edit in [(r, e) for r, e in proposed if id(r) in kept]:
            if verify and edit is not None:
                try:
                    after = verifier.verify(det, detections, remedy, edit)
                except OverBudget:
                    remedy.unverified, after = "over_budget", None
                    verifier.over += 1
                if after is not None:
                    results[id(remedy)] = after
            elif edit is None:
                # (its change says so in words too): by its kind, an optimizer or schedule change
                # a change to training, else one to the model's code (modsweep48 #wording 1)
                remedy.unverified = R.unmeasured_reason(remedy.id)
            else:
                remedy.unverified = "skipped"
            remedies.append(remedy)
        if det.severity != "info":
            remedies += _training_time(det, remedies, results)
        if not verify:
            # an init theory predicts leaves the finding standing comes after the structural remedies
            remedies = init_after_structural(remedies, det, result, thresholds, _init_forecast(result))
        if run.checkpoint:
            # a trained checkpoint: a new init (or a bias, a gate, an activation with its re-init) is
            # advice for training again from scratch, listed after what applies to the checkpoint
            # itself, its re-simulation framed as a fresh network's (kerassweep24, onnxsweep22)
            # (not a collapsed layer's re-initialisation: that re-draws those layers of this checkpoint alone)
            remedies = [R.for_retraining(r) if r.id in R.REDRAWS_WEIGHTS and not r.params.get("collapsed_layers")
                        else r for r in remedies]
        findings.append(det.finding(sorted(remedies, key=lambda r: _order(det, r))))
    _reconcile_rate(findings, result)
    report(1.0, "done")
    status = status_of(findings)
    judged = judged_update_ratios(result)  # the layer table's judged_update_ratio
    rows = [_layer_report(u, judged) for u in result.units]
    summary = with_note(with_note(with_note(summary_line(status, findings, layers_with_weights(rows)),
                                            _unreached_note(result)), _layerless_note(result, run)),
                        _computed_kernels_note(result))
    unstepped = _unstepped_note(result)
    n_params = parameters if parameters is not None else sum(p.numel() for p in run.model.parameters())
    return Diagnosis(
        name=name, status=status, summary=summary, findings=findings,
        layers=rows,
        theory=theory_report(result),
        time_steps=[TimeStep(layer=ts.layer, sublayer=ts.sublayer, t=t, output_grad_norm=finite_or_none(g),
                             log10_spread=finite_or_none(s))
                    for ts in result.time_series
                    for t, (g, s) in enumerate(zip(ts.geo(), ts.log10_std(), strict=True))],
        simulation=SimulationInfo(seeds=run.seeds, batch_size=result.batch_size or _batch(run.inputs), device=result.device,
                                  precision=result.dtype, parameters=int(n_params),
                                  activation_bytes=activation_bytes or result.activation_bytes,
                                  duration_s=round(result.duration_s + verifier.seconds, 4),
                                  remedies_simulated=verifier.simulated,
                                  remedies_rescaled=verifier.rescaled,
                                  # as the spec door shows it (check.py): the document's one form
                                  loss=run.loss + ("" if run.from_logits else " (on probabilities)"),
                                  optimizer=optimizer_shown(run.optimizer),
                                  notes=[n for n in (fallback, unstepped, _skipped_sharpness_note(result),
                                                     budget_note(verifier.over, verifier.simulated, verifier.per_seed,
                                                                 verifier.budget) if verifier.over else "") if n]),
    )


def _reconcile_rate(findings: list[Finding], result: SimulationResult) -> None:
    """A large_updates ``lower_learning_rate`` beside a vanishing_gradient finding, said together:
    the lower rate slows most the layers that finding says already get too little gradient (a sigmoid
    LeNet at d2l's SGD 0.9 trains; at 1/sharpness, 6x lower, it sits at chance for epochs). Its
    change names the slowest of those layers' first step at both rates (the step is proportional to
    the rate); where the run does not diverge at its own rate (a warning: the catapult regime) the
    remedy is not recommended, since fixing the gradient's passage comes first, and where it
    diverges (an error) it stays, with the gradient's passage to fix as well."""
    large = next((f for f in findings if f.code == "large_updates"), None)
    vanish = next((f for f in findings if f.code == "vanishing_gradient" and f.severity in ("warning", "error")), None)
    opt = result.optimizer
    if large is None or vanish is None or opt is None or not opt.lr > 0:
        return
    named = set(vanish.evidence.layers or ())
    steps = {u.name: u.geo("update_ratio") for u in result.units if u.name in named and "update_ratio" in u.values}
    slowest = min((n for n, v in steps.items() if math.isfinite(v)), key=lambda n: steps[n], default=None)
    for remedy in large.remedies:
        factor = remedy.params.get("factor")
        if remedy.id != "lower_learning_rate" or not isinstance(factor, int | float) or not 0 < factor < 1:
            continue
        new = opt.lr * factor
        words = f"vanishing_gradient in this check: {vanish.summary}"
        if slowest is not None:
            words += (f"; {slowest}'s first step moves it by {steps[slowest]:.3g} of its weights at lr {opt.lr:g} "
                      f"and would move it by {steps[slowest] * factor:.3g} at lr {new:.3g}")
        words += ": a lower rate slows most the layers that already learn slowest, and can stall training"
        if large.severity == "error":
            words += ("; the run diverges, so the rate must come down: fix the gradient's passage as well "
                      "(vanishing_gradient's remedies), then raise the rate again as far as it stays stable")
        else:
            words += ("; the run does not diverge at its rate, whose size is what moves those layers: fix the "
                      "gradient's passage first (vanishing_gradient's remedies) and check again; lower the rate "
                      "only if the loss oscillates")
            remedy.recommended = False
        remedy.change += f" ({words})"


def _order(det: Detection, r: Remedy) -> tuple[int, bool, tuple[int, int, float]]:
    """A remedy's place among its finding's: the targets' scale first where the finding is a trained
    regressor's output scale (:func:`.rules.learned_output_scale`), remedies for retraining after
    those that apply to the checkpoint itself, then :func:`_rank`."""
    lead = 0 if r.id == "normalise_targets" and det.evidence.get("unscaled_targets") else 1
    # (a verified fix leads every remedy it could not measure within each group (_rank); a fresh
    # export's init remedies are fixes, not for retraining (freshinit), so they lead its unmeasured
    # norms and skips: onnxsweep24's VGG16 listed batch_norm above he_init's measured 1.1e-6 -> 0.444)
    return lead, r.for_retraining, _rank(det.code, r)


def _sharpness(run: GraphRun, result: SimulationResult, device: str | None) -> Sharpness | None:
    """The loss's sharpness at the initial point (:func:`.graph.initial_sharpness`) under SGD (None
    under any other optimizer, or none), with whether its bound alone judges the step: a model that
    is one affine layer (a module of the tracer's) holding every trainable parameter, or has no
    layer the check measures; then also the trainable parameters no layer holds."""
    opt = run.optimizer
    if opt is None or opt.type != "sgd" or not opt.lr > 0:
        return None
    named = _trained(run.model)
    found = initial_sharpness(run, device, _scale_invariant_parameters(run.model, result))
    weighted = [u for u in result.units if u.has_weights]
    held: set[int] = set()
    for u in weighted:
        if u.pointer.startswith("module:"):
            with contextlib.suppress(AttributeError):
                held |= {id(p) for p in own_parameters(run.model.get_submodule(u.pointer.removeprefix("module:")))}
    unmeasured = tuple(n for n, p in named if id(p) not in held) if not result.units else ()
    one_affine = (len(weighted) == 1 and weighted[0].type in _AFFINE and weighted[0].pointer.startswith("module:")
                  and all(id(p) in held for _, p in named))
    return dataclasses.replace(found, decides=one_affine or not result.units, unmeasured=unmeasured)


def _scale_invariant_parameters(model: nn.Module, result: SimulationResult) -> frozenset[str]:
    """The names of ``model``'s parameters that the loss is scale-invariant in: those of each layer a
    batch/layer/group norm reads directly (:func:`.rules.scale_invariant_layer`, as large_updates judges
    their steps), which the stability bound's sharpness is not taken over
    (:func:`.graph.initial_sharpness`). A layer's weight and bias together: the norm divides out their
    joint scale (batch norm drops the bias whole). A unit the check cannot place among the module's
    parameters (an imported graph's node) keeps its parameters in."""
    names = {id(p): n for n, p in model.named_parameters()}
    found: set[str] = set()
    for u in result.units:
        if not (u.has_weights and scale_invariant_layer(u)):
            continue
        held: list[torch.Tensor] = []
        if u.pointer.startswith("module:"):
            with contextlib.suppress(AttributeError):
                held = own_parameters(model.get_submodule(u.pointer.removeprefix("module:")))
        found |= {names[id(p)] for p in held if id(p) in names}
    return frozenset(found)


def _rate_probe(run: GraphRun, result: SimulationResult, device: str | None,
                optimizer: OptimizerSpec | None = None) -> StepProbe | None:
    """Past SGD's quadratic stability bound (lr x sharpness over 2 (1 + momentum)): a few steps of
    the run's SGD (or ``optimizer``, a remedy's) on the simulated batch (:func:`.graph.rate_probe`),
    which large_updates judges divergence on; None under the bound, or where not estimated."""
    opt = optimizer or result.optimizer
    found = curvature(dataclasses.replace(result, optimizer=opt))
    if opt is None or found is None or (optimizer is None and not found[1] > found[2]):
        return None
    return rate_probe(run, opt, device)


def _trained(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``model``'s trainable parameters by name; every parameter where none is trainable (a model
    frozen as a whole is still judged on its own weights)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad] or list(model.named_parameters())


def _skipped_sharpness_note(result: SimulationResult) -> str | None:
    """The document's note where the sharpness, which alone would judge a one-affine-layer (or
    layerless) model's SGD step, was not estimated (:func:`.rules.curvature_skipped`): said, never
    left to the per-layer ratios silently."""
    why = curvature_skipped(result)
    if why is None:
        return _unestimated_sharpness_note(result)
    return (f"the loss's sharpness was not estimated ({why}); it alone judges the SGD step of a model that is "
            "one affine layer or has no layer to measure (lr x lambda_max against 2 (1 + momentum)), so the "
            "first step's update ratio was read instead, with a warning kept as a note (a step past a "
            "layer's whole usual norm is still an error)")


def _unestimated_sharpness_note(result: SimulationResult) -> str | None:
    """The note where an SGD run's sharpness, the stability bound checked beside a deeper model's
    per-layer update ratios, was not estimated (past :data:`.sharpness.MAX_PARAMETERS` trainable
    parameters, a double backward that failed): said, so that a healthy verdict does not read as
    having passed it (peersweep16 u05: 109,386 parameters at SGD 1.0 momentum 0.9, nothing said)."""
    sharp, opt = result.sharpness, result.optimizer
    if sharp is None or sharp.value is not None or opt is None or opt.type != "sgd":
        return None
    momentum = (f"; momentum {opt.momentum:g}'s build-up is counted in the ratios judged "
                f"({momentum_build_up(opt.momentum, opt.nesterov):.3g}x the first step"
                f"{', Nesterov' if opt.nesterov else ''})" if opt.momentum > 0 else "")
    return (f"the loss's sharpness (SGD's stability bound lr x lambda_max < 2 (1 + momentum)) was not estimated "
            f"({sharp.note or 'not estimated'}): the step is judged on the per-layer update ratios alone{momentum}")


#: The layer types a one-layer model is affine in its parameters with (linear or logistic regression).
_AFFINE = frozenset({"dense", "linear", "conv1d", "conv2d", "conv3d", "conv"})


def _layerless_note(result: SimulationResult, run: GraphRun) -> str:
    """The summary's note on a model with no layer the check measures (scalar parameters used
    elementwise, ``x * W + B``): checked on its loss (non-finite) and, under SGD, the sharpness
    bound; the per-layer figures (gradient ratios through depth, dead or saturated units, update
    ratios) need layers. Empty where there are layers."""
    if result.units:
        return ""
    names = [n for n, _ in _trained(run.model)]
    shown = first_few(names, 6)
    sharp = result.sharpness
    if sharp is not None and sharp.value is not None and result.optimizer is not None:
        how = f"SGD's stability bound on the loss's sharpness ({sharp.value:.3g})"
    elif sharp is not None:
        how = f"not the sharpness ({sharp.note})"
    else:
        how = ("not the sharpness, which is judged under SGD only (an adaptive optimizer's preconditioning "
               "changes the bound)" if result.optimizer is not None else "not the sharpness (no optimizer given)")
    return (f"no layer to measure: the forward uses its {len(names)} parameter"
            f"{'s' if len(names) != 1 else ''} ({shown}) elementwise, with no nn.Linear, Conv, RNN, Embedding "
            "or norm module and no F.linear, x @ W or einsum on them; checked on the loss's own figures "
            f"(non-finite) and {how}. Per-layer figures (gradient ratios through depth, dead or saturated "
            "units, update-to-weight ratios) need layers: write them as modules to have those measured")


def _unreached_note(result: SimulationResult) -> str:
    """The summary's note on the layers no sample reached in some seed (:data:`graph.NO_SAMPLES`: a
    sparse mixture of experts' expert that the router gave none of a small batch): their figures
    are the other seeds', and one that no seed reached is not judged at all. Empty where none."""
    some = [u for u in result.units if "no_samples" in u.values]
    if not some:
        return ""
    never = [u.name for u in some if bool((u.values["no_samples"] == 1.0).all())]
    names = first_few([layer_words(u) for u in some], R.NAMED_LAYERS)
    note = (f"{len(some)} layer{'s' if len(some) > 1 else ''} saw no sample in some of the "
            f"{result.seeds} seeds ({names}): not called, or called on an empty batch, as a sparse mixture "
            "of experts' expert the router gives none of the batch; their figures are the other seeds', "
            "neither dead nor alive where no sample reached them")
    if never:
        note += f"; {len(never)} saw none in any seed and {'is' if len(never) == 1 else 'are'} not judged"
    return note


#: How the note on computed kernels names a layer function's kind.
_KERNEL_WORDS = {"linear": ("F.linear call", "weight"), "conv1d": ("1-D convolution", "kernel"),
                 "conv2d": ("convolution", "kernel"), "conv3d": ("3-D convolution", "kernel")}


def _computed_kernels_note(result: SimulationResult) -> str:
    """The summary's note on the layer functions (``F.conv2d``, ``F.linear``) whose weight the forward
    computes from no parameter of its shape (a hypernetwork's generated kernels, a functional forward's
    ``w - lr * g``): they are no layer of the table, so neither the layers counted nor the findings
    cover their gradients, and the summary says so and how many (modsweep49 #2: a hypernetwork ResNet
    read "healthy: no gradient problem found in 5 layers" with 36 generated convolutions left out).
    Empty where there is none."""
    if not result.computed_kernels:
        return ""
    parts = []
    for kind, n in result.computed_kernels.items():
        word, weight = _KERNEL_WORDS.get(kind, (kind, "weight"))
        parts.append(f"{n} {word}{'s' if n > 1 else ''} whose {weight}{'s' if n > 1 else ''} the forward computes")
    return (f"{' and '.join(parts)} (a hypernetwork's, a functional forward's) not measured: no parameter holds "
            "those weights, so they are no layer of the table nor of the count, only the layers computing them are")


def _unstepped_note(result: SimulationResult) -> str:
    """The document's note (``simulation.notes``, not the summary) on the layers with a weight
    gradient whose optimizer step was not measured (no ``update_ratio``: weights the check could not
    find among the unit's parameters), so that ``large_updates`` is never left out silently. Empty
    where there is no optimizer or none."""
    if result.optimizer is None:
        return ""
    judged = judged_update_ratios(result)
    missed = [u.name for u in result.units if u.has_weights and "grad_norm" in u.values and u.geo("grad_norm") > 0
              and ("update_ratio" not in u.values or not math.isfinite(judged.get(u.name, math.nan)))]
    if not missed:
        return ""
    names = first_few(missed, R.NAMED_LAYERS)
    return (f"the optimizer's first step was not measured on {len(missed)} layer"
            f"{'s' if len(missed) > 1 else ''} with a gradient ({names}): the check did not find "
            "their weights among the layer's parameters, or could not size their step, so large_updates "
            "does not judge them")


def _batch(inputs: list[InputSpec]) -> int:
    return inputs[0].shape[0] if inputs and inputs[0].shape else 1


#: Where an example input's leaf is a tensor (:class:`ExampleLayout`): the simulation's own goes there.
_TENSOR = object()


@dataclasses.dataclass(frozen=True)
class ExampleLayout:
    """How the example inputs nest (pytorch/examples' word language model takes
    ``model(input, (h0, c0))``): each top-level argument's pytree structure and its leaves, the
    tensors' places marked; called with the simulation's tensors (one per :class:`InputSpec`, in
    order), it gives the arguments back, numbers and ``None`` as the example had them."""

    specs: tuple[pytree.TreeSpec, ...]
    leaves: tuple[tuple[Any, ...], ...]

    def __call__(self, xs: Sequence[torch.Tensor]) -> list[Any]:
        """The forward's arguments (positional, or a mapping's values in order) holding ``xs``."""
        it = iter(xs)
        return [pytree.tree_unflatten([next(it) if leaf is _TENSOR else leaf for leaf in leaves], spec)
                for spec, leaves in zip(self.specs, self.leaves, strict=True)]


def _argument_names(example_inputs: Any, model: nn.Module | None, count: int) -> list[str]:
    """What to call each top-level example input in a message: its keyword, else the forward's
    parameter it binds to (``hidden``), else ``example_inputs[i]``."""
    keywords = _keywords(example_inputs)
    if keywords is not None:
        return list(keywords)
    names: list[str] = []
    if model is not None:
        try:
            params = list(inspect.signature(model.forward).parameters.values())
        except (TypeError, ValueError):  # a forward whose signature cannot be read (a builtin)
            params = []
        for p in params:
            if p.kind == p.VAR_POSITIONAL or p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                break
            names.append(p.name)
    if not isinstance(example_inputs, tuple | list):  # one input, the forward's first argument
        return names[:1] or ["example_inputs"]
    names = names[:count]
    return names + [f"example_inputs[{i}]" for i in range(len(names), count)]


def _flatten(example_inputs: Any, model: nn.Module | None
             ) -> tuple[list[torch.Tensor], list[str], ExampleLayout | None]:
    """The example's tensors, where each sits (``hidden[0]``) and, where any argument is not one
    bare tensor, its :class:`ExampleLayout` (None: each tensor is one argument, as before).
    Tuples, lists and dicts of tensors nest to any depth (``torch.utils._pytree``); Python numbers
    and None are leaves passed as given. Raises :class:`ModelError` naming the position of
    anything else, and for example inputs without a tensor."""
    from gradhealth.analysis.importers import ModelError

    keywords = _keywords(example_inputs)
    args = (list(example_inputs.values()) if keywords is not None else list(example_inputs)
            if isinstance(example_inputs, tuple | list) else [example_inputs])
    names = _argument_names(example_inputs, model, len(args))
    xs: list[torch.Tensor] = []
    where: list[str] = []
    specs: list[pytree.TreeSpec] = []
    leaves: list[tuple[Any, ...]] = []
    for name, arg in zip(names, args, strict=True):
        paths, spec = pytree.tree_flatten_with_path(arg)
        marked: list[Any] = []
        for path, leaf in paths:
            at = name + pytree.keystr(path)
            if isinstance(leaf, torch.Tensor):
                xs.append(leaf)
                where.append(at)
                marked.append(_TENSOR)
            elif leaf is None or isinstance(leaf, int | float | complex):  # (bool is an int)
                marked.append(leaf)
            else:
                raise ModelError(f"example input {at} is a {type(leaf).__name__}: example inputs must be "
                                 "tensors, Python numbers or None, or tuples, lists and dicts of them")
        specs.append(spec)
        leaves.append(tuple(marked))
    if not xs:
        raise ModelError("example inputs hold no tensor: give the forward's inputs as a tensor, a tuple "
                         "of them or a mapping of keyword inputs (nested tuples, lists and dicts allowed)")
    flat = all(isinstance(a, torch.Tensor) for a in args)
    return xs, where, None if flat else ExampleLayout(tuple(specs), tuple(leaves))


def example_layout(example_inputs: Any) -> ExampleLayout | None:
    """How to put the simulation's tensors back into the example's nesting (:class:`ExampleLayout`);
    None where each example input is one tensor."""
    return _flatten(example_inputs, None)[2]


def far_from_unit(x: torch.Tensor) -> bool:
    """Whether float example values ``x`` are far from the unit scale N(0, 1) draws have: a root mean
    square of :data:`FAR_INPUT_RMS` or more (raw 0-255 pixels: about 147; sensor readings in the
    thousands), every value finite. Standard-normal or [0, 1] examples (``torch.randn``, ``torch.rand``),
    standardised data and all-zero placeholders are not."""
    if not x.numel() or x.dim() == 0:
        return False
    v = x.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(v).all()):
        return False
    return float(v.square().mean().sqrt()) >= FAR_INPUT_RMS


#: A float example input is structure, kept as given (:func:`structural_input`), where this share of
#: its values or more are exact zeros: an adjacency matrix (a graph's density is ~0.1%), a bag of
#: words, a one-hot encoding. Ordinary data has few exact zeros (MNIST's [0, 1] pixels, the most
#: zero-heavy common images, about 81%: still drawn, as before).
STRUCTURE_ZERO_SHARE = 0.9

#: ... or where it takes this many distinct values or fewer, each at least
#: :data:`STRUCTURE_REPEATS` times on average: a 0/1 mask, an additive attention mask (0 and -inf),
#: a one-hot or label-smoothed encoding, a degree-normalised adjacency of a regular graph. Data
#: (N(0, 1) draws, standardised features, images with 256 levels) takes far more.
STRUCTURE_VALUES = 8
STRUCTURE_REPEATS = 4


def _shown(v: float) -> str:
    return f"{v:.4g}"


def structural_input(x: torch.Tensor, first: bool = False) -> str | None:
    """Why float example input ``x`` is structure rather than data, in ``simulation.notes``' words;
    None where it is data, to be drawn. Structure is kept as given for every seed, since a draw in
    its place is no graph or mask at all (N(0, 1) noise for a row-normalised adjacency multiplies
    every layer's activations by about the root of the node count; noise in a 0/1 adjacency has
    negative degrees): a sparse tensor (any layout but strided: kept, never densified); an input
    :data:`STRUCTURE_ZERO_SHARE` of whose values or more are exact zeros; one that takes at most
    :data:`STRUCTURE_VALUES` distinct values, each repeated (:data:`STRUCTURE_REPEATS` times on
    average); after the first input, one all 0 or all 1 (an RNN's zero initial state, a float mask
    of ones). A constant first input (``torch.zeros`` or ``torch.ones``: a placeholder with the
    data's shape) is drawn, as is any input with a NaN."""
    if x.layout != torch.strided:
        layout = str(x.layout).removeprefix("torch.")
        stored = x._nnz() if x.layout in (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc,
                                         torch.sparse_bsr, torch.sparse_bsc) else None
        size = "×".join(str(d) for d in x.shape)
        held = f"{stored:,} stored values of {size}" if stored is not None else size
        return f"a sparse tensor ({layout}, {held})"
    if not x.is_floating_point() or not x.numel():
        return None
    v = x.detach().reshape(-1)
    n = v.numel()
    if bool(torch.isnan(v).any()):
        return None
    # the distinct values of a prefix first: data shows more than a few within it, at no sort of all
    head = torch.unique(v[:65_536])
    values = torch.unique(v) if head.numel() <= STRUCTURE_VALUES else head
    if values.numel() == 1:
        only = float(values[0])
        return f"it is all {_shown(only)}" if not first and only in (0.0, 1.0) else None
    zeros = int((v == 0).sum())
    if zeros >= STRUCTURE_ZERO_SHARE * n:
        return f"{100 * zeros / n:.3g}% of its {n:,} values are exact zeros"
    if values.numel() <= STRUCTURE_VALUES and n >= STRUCTURE_REPEATS * values.numel():
        return (f"its {n:,} values take only {values.numel()} distinct ones "
                f"({', '.join(_shown(float(u)) for u in values)})")
    return None


_RECURRENT = (nn.RNNBase, nn.RNNCellBase)


def initial_state_of(x: torch.Tensor, model: nn.Module) -> str | None:
    """The recurrent module of ``model`` whose initial state ``x`` is shaped as (``lstm``: an
    ``nn.LSTM``/``GRU``/``RNN``'s h0 or c0, ``(num_layers * directions, batch, hidden)`` or unbatched
    without the batch; a cell's ``(batch, hidden)`` or ``(hidden,)``), by its qualified name; None where
    no recurrent module has that shape of state."""
    shape = tuple(x.shape)
    for qualified, module in model.named_modules():
        if not isinstance(module, _RECURRENT):
            continue
        proj = int(getattr(module, "proj_size", 0) or 0)
        hidden = {int(getattr(module, "hidden_size", 0))} | ({proj} if proj else set())
        if not shape or shape[-1] not in hidden:
            continue
        if isinstance(module, nn.RNNBase):
            stacked = int(module.num_layers) * (2 if module.bidirectional else 1)
            if len(shape) in (2, 3) and shape[0] == stacked:
                return qualified or type(module).__name__
        elif len(shape) in (1, 2):
            return qualified or type(module).__name__
    return None


def _kept_note(spec: InputSpec) -> str:
    """``simulation.notes``' line for a float input kept as given (:func:`structural_input`); an
    all-zero input shaped as a recurrent layer's initial state is said to be one (modsweep41: an
    LSTM's (h0, c0) read "the mark of structure (an adjacency matrix, a mask, a one-hot encoding)")."""
    sparse = spec.value is not None and spec.value.layout != torch.strided
    kind = "" if spec.value is not None and not spec.value.is_floating_point() else "float "
    if spec.initial_state is not None:
        return (f"{kind}input {spec.name or 'example_inputs'} kept as given for every seed, not drawn: {spec.kept}, "
                f"shaped as {spec.initial_state}'s initial state: an RNN's zero initial state, which training "
                "starts each sequence from (N(0, 1) draws in its place would start it from noise)")
    return (f"{kind}input {spec.name or 'example_inputs'} kept as given for every seed"
            f"{' and simulated sparse, as it is' if sparse else ''}, not drawn: {spec.kept}, the mark of "
            "structure (an adjacency matrix, a mask, a one-hot encoding) rather than data to resample: "
            "N(0, 1) draws in its place would be no graph or mask at all")


def input_specs(example_inputs: Any, model: nn.Module | None = None,
                input_range: tuple[float, float] | None = None, data_scale: bool = False) -> list[InputSpec]:
    """Shapes and dtypes of the user's example inputs, one spec per tensor, named where it sits
    (``hidden[1]``) in tuples, lists or dicts nested to any depth (their numbers and None are
    passed to the forward as given; anything else is a :class:`ModelError` naming its position).
    Integer inputs that an ``nn.Embedding`` of ``model`` reads are token ids, drawn below the
    example's max + 1; other integer inputs (an attention mask) are used as given, since random
    values there would mask at random. So is a float input that is structure rather than data
    (:func:`structural_input`: a sparse tensor; 90% or more exact zeros; at most 8 distinct values;
    after the first input, all 0 or all 1: a float mask, a graph's adjacency matrix, normalised or
    not, a one-hot encoding, an RNN's zero initial state): noise there is no graph (a degree
    normalisation of it takes the root of a negative), and its ``kept`` says why, for
    ``simulation.notes``. Shapes are kept as given:
    the check never changes a batch size, so a state's batch dimension (dim 1 of an ``nn.LSTM``'s
    h0 and c0) stays the example's. ``input_range``: the float inputs drawn are uniform in it.
    ``data_scale`` (no ``input_range``): a float input whose example values are far from unit scale
    (:func:`far_from_unit`: raw pixels) is drawn from its own rows, resampled each seed, and not
    replaced by N(0, 1) draws that would hide that scale."""
    keywords = _keywords(example_inputs)
    xs, where, layout = _flatten(example_inputs, model)
    integers = any(not x.is_floating_point() for x in xs)
    ids = _ids_read_by_embeddings(model, xs, keywords, layout) if model is not None and integers else None
    specs: list[InputSpec] = []
    for i, (x, name) in enumerate(zip(xs, where, strict=True)):
        kept = structural_input(x, first=i == 0)
        if kept is not None:
            state = (initial_state_of(x, model) if model is not None and x.layout == torch.strided
                     and x.is_floating_point() and not bool(x.detach().any()) else None)
            specs.append(InputSpec(tuple(x.shape), x.dtype if not x.is_floating_point() else torch.float64,
                                   value=x.detach().cpu().clone(), name=name, kept=kept, initial_state=state))
        elif x.is_floating_point() and data_scale and input_range is None and far_from_unit(x):
            specs.append(InputSpec(tuple(x.shape), name=name, rows=x.detach().to("cpu", torch.float64).clone()))
        elif x.is_floating_point():
            specs.append(InputSpec(tuple(x.shape), name=name, uniform=input_range))
        elif ids is not None and i not in ids:
            specs.append(InputSpec(tuple(x.shape), x.dtype, value=x.detach().cpu().clone(), name=name))
        else:
            specs.append(InputSpec(tuple(x.shape), torch.int64, int(x.max().item()) + 1 if x.numel() else 2,
                                   name=name))
    return specs


def _keywords(example_inputs: Any) -> tuple[str, ...] | None:
    """The keyword names of example inputs given as a mapping (``{"input_ids": ...,
    "attention_mask": ...}``, a tokenizer's output); None for positional inputs."""
    if isinstance(example_inputs, Mapping):
        return tuple(str(k) for k in example_inputs)
    return None


def _ids_read_by_embeddings(model: nn.Module, xs: list[torch.Tensor],
                            keywords: tuple[str, ...] | None = None,
                            nest: ExampleLayout | None = None) -> set[int] | None:
    """Which integer inputs among ``xs`` an ``nn.Embedding`` reads (as they are, or cast or
    moved: the same values in the same shape), found by one forward pass of a copy (the user's
    module is never run: batch norm would update its statistics). None if that pass fails: then
    every integer input is treated as ids, as before."""
    probe = copy_module(model)  # (a module that cannot be copied is refused here, as by the simulation)
    seen: set[int] = set()

    def same(a: Any, x: torch.Tensor) -> bool:
        return a is x or (isinstance(a, torch.Tensor) and not a.is_floating_point()
                          and a.shape == x.shape and bool(torch.equal(a.cpu().long(), x.cpu().long())))

    handles = [m.register_forward_pre_hook(
        lambda _m, args: seen.update(i for i, x in enumerate(xs) if not x.is_floating_point()
                                     for a in args if same(a, x)))
        for m in probe.modules() if isinstance(m, nn.Embedding)]
    try:
        with torch.no_grad():
            call(probe, xs, keywords, nest)
    except Exception:  # noqa: BLE001 - the simulation reports a model that does not run
        return None
    finally:
        for h in handles:
            h.remove()
    return seen


def optimizer_spec(optimizer: Any) -> OptimizerSpec | None:
    """The spec ``optimizer`` of a ``torch.optim`` SGD, Adam, AdamW, RMSprop, Adadelta, NAdam or Adagrad (its first param
    group's settings), of a spec-style dict, or None. Raises ValueError for another optimizer."""
    if optimizer is None or isinstance(optimizer, OptimizerSpec):
        return optimizer
    if isinstance(optimizer, dict):
        try:
            return OptimizerSpec.model_validate(optimizer)
        except ValidationError as exc:  # a SpecError naming each field under /optimizer (newuser5 P6)
            from gradhealth.analysis.spec import _message, _spec_error

            raise _spec_error([Problem("/optimizer" + "".join(f"/{p}" for p in err["loc"]), _message(err))
                               for err in exc.errors(include_url=False)]) from None
    kinds = {torch.optim.SGD: "sgd", torch.optim.AdamW: "adamw", torch.optim.Adam: "adam",
             torch.optim.RMSprop: "rmsprop", torch.optim.Adadelta: "adadelta", torch.optim.NAdam: "nadam",
             torch.optim.Adagrad: "adagrad"}
    kind = kinds.get(type(optimizer))
    if kind is None or not isinstance(optimizer, torch.optim.Optimizer):
        raise ArgumentError(f"optimizer: {type(optimizer).__name__} is not one whose first step the check "
                         "knows (torch.optim.SGD, Adam, AdamW, RMSprop, Adadelta, NAdam, Adagrad, or a dict with type "
                         "and lr), so its update sizes cannot be judged; leave optimizer out to check the gradients "
                         "without them (large_updates and small_updates are then not checked, and simulation.notes "
                         "says so)")
    group = optimizer.param_groups[0]
    fields: dict[str, Any] = {k: float(group[k]) for k in ("lr", "momentum", "weight_decay", "alpha", "eps")
                              if k in group}
    peak = group.get("initial_lr")
    warming = isinstance(peak, (int, float)) and float(peak) > 0 and float(group["lr"]) < float(peak)
    if warming:
        # a scheduler built on it starts below its rate (LinearLR, a LambdaLR warm-up at 0): the step
        # judged is the rate it warms up to, not the warm-up's first (HF's starts at lr 0, which read
        # as a rate of 0: "negative_learning_rate"); the warm-up's length is the scheduler's, which the
        # optimizer does not show: it warms up, over no number of steps made up here (newuser10 #4)
        fields["lr"] = float(cast(float, peak))
    if kind == "adadelta":
        fields["alpha"] = float(group["rho"])
    if kind == "adagrad":
        fields["initial_accumulator"] = float(group.get("initial_accumulator_value", 0.0))
    if "nesterov" in group:
        fields["nesterov"] = bool(group["nesterov"])
    spec = OptimizerSpec.model_validate({"type": kind, **fields})
    spec._warmup_unknown = warming
    return spec


def warmup_unknown_note(spec: OptimizerSpec | None, optimizer: Any) -> str | None:
    """The document's note where ``spec`` warms up over a length no one gave (a torch optimizer
    whose ``lr`` a scheduler built on it set below its ``initial_lr``); None otherwise."""
    if spec is None or not spec.warms_up or spec.warmup_steps or not isinstance(optimizer, torch.optim.Optimizer):
        return None
    group = optimizer.param_groups[0]
    return (f"the optimizer's lr ({float(group['lr']):.3g}) is below its initial_lr ({float(group['initial_lr']):.3g}): "
            "a scheduler built on it warms it up, over a length the optimizer does not show; its step is judged "
            "at the rate it warms up to, as warming up; pass scheduler= (or warmup_steps=) to have the warm-up's "
            "length judged")


#: torch schedulers with no warm-up: their first step's rate is the optimizer's lr (a decay, a step
#: schedule, ReduceLROnPlateau, which changes nothing at the start)
_NO_WARMUP = ("ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "StepLR", "MultiStepLR",
              "PolynomialLR", "ReduceLROnPlateau")


def no_warmup_scheduler(scheduler: Any) -> str | None:
    """The class name of ``scheduler`` where it is a torch scheduler with no warm-up
    (:data:`_NO_WARMUP`), else None."""
    sched = torch.optim.lr_scheduler
    for name in _NO_WARMUP:
        kind = getattr(sched, name, None)
        if isinstance(kind, type) and isinstance(scheduler, kind):
            return name
    return None


#: The most rate-multiplier values :func:`scheduler_warmup` reads off a LambdaLR's function (a
#: warm-up longer than this reads as this long: far past the 10,000 steps BERT warms up over).
MAX_SCHEDULE_SCAN = 200_000


def scheduler_warmup(scheduler: Any) -> tuple[int, float | None]:
    """(warm-up steps, peak rate or None) of a torch LR scheduler, read without stepping it or its
    optimizer: a LambdaLR's multiplier is evaluated at steps 0, 1, ... until it stops rising; a
    LinearLR warms up over ``total_iters`` where ``start_factor < end_factor``; a OneCycleLR over its
    first phase (``pct_start * total_steps``) to ``max_lr``; a SequentialLR over its first
    scheduler's warm-up, cut at its first milestone; an ExponentialLR, CosineAnnealingLR, StepLR,
    MultiStepLR, PolynomialLR, CosineAnnealingWarmRestarts or ReduceLROnPlateau has none (0, None).
    Raises ArgumentError for another scheduler, or what is not one."""
    sched = torch.optim.lr_scheduler
    if no_warmup_scheduler(scheduler) is not None:
        return 0, None
    if isinstance(scheduler, sched.SequentialLR):
        inner = list(getattr(scheduler, "_schedulers", []))
        milestones = list(getattr(scheduler, "_milestones", []))
        if not inner:
            return 0, None
        warm, peak = scheduler_warmup(inner[0])
        if milestones and warm > int(milestones[0]):
            warm = int(milestones[0])
        return warm, peak
    if isinstance(scheduler, sched.OneCycleLR):
        phases = getattr(scheduler, "_schedule_phases", None) or [{"end_step": 0}]
        peak = scheduler.optimizer.param_groups[0].get("max_lr")
        return int(float(phases[0]["end_step"])) + 1, float(peak) if isinstance(peak, (int, float)) else None
    if isinstance(scheduler, sched.LinearLR):
        rising = float(scheduler.start_factor) < float(scheduler.end_factor)
        base = float(scheduler.base_lrs[0]) * float(scheduler.end_factor)
        return (int(scheduler.total_iters), base) if rising else (0, None)
    if isinstance(scheduler, sched.LambdaLR):
        f = scheduler.lr_lambdas[0]
        k = -1
        try:
            previous = float(f(0))
            k = 0
            while k < MAX_SCHEDULE_SCAN:
                now = float(f(k + 1))
                if not now > previous:
                    break
                previous, k = now, k + 1
        except Exception as exc:  # the user's function: named, never a traceback
            raise ArgumentError(f"scheduler: its lr_lambda failed at step {k + 1} "
                                f"({type(exc).__name__}: {exc})") from None
        return k, float(scheduler.base_lrs[0]) * previous if k else None
    if not isinstance(scheduler, sched.LRScheduler | sched.ReduceLROnPlateau):
        raise ArgumentError(f"scheduler: {type(scheduler).__name__} is not a torch.optim.lr_scheduler "
                            "scheduler; pass the one training steps, or warmup_steps=")
    raise ArgumentError(f"scheduler: {type(scheduler).__name__} is not one whose warm-up the check reads "
                        "(torch.optim.lr_scheduler.LambdaLR, LinearLR, OneCycleLR, SequentialLR; "
                        f"{', '.join(_NO_WARMUP)}: no warm-up); pass warmup_steps= instead")


def _with_schedule(spec: OptimizerSpec | None, scheduler: Any, warmup_steps: Any,
                   clip_norm: Any) -> OptimizerSpec | None:
    """``spec`` with the warm-up and clipping the caller states (or its scheduler says)."""
    fields: dict[str, Any] = {}
    if scheduler is not None:
        warm, peak = scheduler_warmup(scheduler)
        fields["warmup_steps"] = warm
        if warm and peak is not None and peak > 0:
            fields["lr"] = peak  # the rate it warms up to is the step judged
        elif not warm and isinstance(getattr(scheduler, "optimizer", None), torch.optim.Optimizer):
            # no warm-up: the first step's rate is the optimizer's own (not the initial_lr a decay
            # already stepped started from)
            now = scheduler.optimizer.param_groups[0].get("lr")
            if isinstance(now, (int, float)) and float(now) > 0:
                fields["lr"] = float(now)
    if warmup_steps is not None:
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ArgumentError(f"warmup_steps: expected a whole number >= 0, got {warmup_steps!r}")
        fields["warmup_steps"] = warmup_steps
    if clip_norm is not None:
        if isinstance(clip_norm, bool) or not isinstance(clip_norm, (int, float)) or not 0 < clip_norm < math.inf:
            raise ArgumentError(f"clip_norm: expected a number > 0 (torch's clip_grad_norm_ max_norm), got {clip_norm!r}")
        fields["global_clip_norm"] = float(clip_norm)
    if not fields:
        return spec
    if spec is None:
        named = " and ".join(k for k, v in (("scheduler", scheduler), ("warmup_steps", warmup_steps),
                                            ("clip_norm", clip_norm)) if v is not None)
        raise ArgumentError(f"{named}: describe the training optimizer, so give optimizer= too")
    out = OptimizerSpec.model_validate(spec.model_dump(exclude_unset=True) | {"type": spec.type} | fields)
    if "warmup_steps" not in fields:  # (clip_norm alone: the optimizer still warms up as it showed)
        out._warmup_unknown = spec._warmup_unknown
    return out


#: check_module's note where no optimizer was given: what was left unchecked and how to give one
#: (modsweep37 h03, a PINN trained with LBFGS: the update checks were skipped in silence).
NO_OPTIMIZER_NOTE = (
    "no optimizer given: the update sizes and the learning rate were not checked (large_updates, small_updates, "
    "negative_learning_rate); pass the training optimizer as optimizer= (a torch.optim SGD, Adam, AdamW, RMSprop, "
    "Adadelta, NAdam or Adagrad, or a dict such as {\"type\": \"adam\", \"lr\": 1e-3}) to check them")


@quiet_run_notes
def check_module(model: nn.Module, example_inputs: Any, *, loss: Any = "cross_entropy", seeds: int = 3,
                 verify: bool = True, device: str | None = None,
                 thresholds: Thresholds | None = None, optimizer: Any = None,
                 input_range: tuple[float, float] | None = None, scheduler: Any = None,
                 warmup_steps: int | None = None, clip_norm: float | None = None,
                 target_range: tuple[float, float] | None = None, targets: Any = None,
                 trained: bool = False) -> Diagnosis:
    """Check a live module with synthetic inputs shaped like ``example_inputs`` (standard normal
    floats; integer ids an nn.Embedding reads below the example's largest + 1, other integer inputs
    as given), with the module's own weights. ``example_inputs``: a tensor, a tuple of them, or a
    mapping of keyword inputs (a tokenizer's output: ``{"input_ids": ..., "attention_mask": ...}``);
    an argument may itself be a tuple, list or dict of tensors, nested (an LSTM's state ``(h0, c0)``
    beside the tokens: ``(tokens, (h0, c0))``), holding Python numbers or None too, which are passed
    as given. Anything else is a :class:`~gradhealth.analysis.importers.ModelError` naming its place.
    The loss is taken on the output: a tensor, the first of a tuple, or a mapping's ``logits``
    (a Hugging Face ``ModelOutput``).

    ``input_range``: ``(low, high)``, where the data's float inputs lie: they are drawn uniform in
    it instead of standard normal (pixels in [0, 1] that a VAE's binary cross-entropy also reads as
    its targets), as ``--input-range`` draws a model file's. A float input that is structure rather
    than data is kept as given, range or not, and ``simulation.notes`` says why: a sparse tensor
    (simulated sparse), one 90% or more of whose values are exact zeros (an adjacency matrix, a bag
    of words), one with at most 8 distinct values (a 0/1 or additive mask, a one-hot encoding).
    Without it, a float input whose example
    values are far from unit scale (root mean square 10 or more: raw 0-255 pixels) is drawn from its
    own rows, resampled each seed, and ``simulation.notes`` says so.

    ``optimizer``: the training optimizer (a ``torch.optim`` SGD, Adam, AdamW or RMSprop, or a
    spec-style dict such as ``{"type": "adam", "lr": 1e-3}``): ``large_updates`` checks each
    layer's ||delta W|| / ||W|| for its first step from each seed's gradients.

    ``scheduler``: the LR scheduler training steps (LambdaLR, LinearLR, OneCycleLR or SequentialLR;
    its optimizer is the one checked where ``optimizer`` is not given): its warm-up length and peak
    rate are read from it without stepping it. ``warmup_steps``: the warm-up's length in steps, stated
    directly (it overrides the scheduler's); ``clip_norm``: the total gradient norm training clips at
    (``torch.nn.utils.clip_grad_norm_``'s ``max_norm``; applied to the judged step, as a spec's ``global_clip_norm``).
    Both judge as a spec's ``optimizer`` fields do (a Post-LN stack that warms up is a note).

    ``targets`` (``loss="mse"``): example regression targets, a tensor or array of finite numbers
    (the batch's, or any sample of the data's): a bounded output (a sigmoid or tanh, each element at any
    width) is judged on the share of them out of its range, a softmax or log_softmax output on the
    share of the rows off its simplex; targets no rule judges are said unused in ``simulation.notes``.
    ``target_range``: ``(low, high)``, where they lie, where only that is known (the spec's ``loss.target_range``; the share of the range out of reach).
    With neither, a bounded output is judged against standard-normal targets, as a spec's is.
    ``trained``: the module's weights are trained (a checkpoint loaded into it), as a model file's
    stored weights are; by default a live module is the network about to be trained, at its
    initialisation, so a growth or a scale is never put down to what its weights learned.
    ``targets`` also set the simulated loss: each seed's targets are drawn from them, at their own
    scale (prices in the thousands make every gradient thousands of times larger); targets whose
    mean's size or standard deviation is 10 or more are offered ``normalise_targets``.

    The simulation runs in float64; a forward that makes or casts float32 tensors itself (an
    LSTM's ``torch.zeros`` initial state) runs in the module's own dtype, and the document's
    ``simulation.precision`` says which ran.

    The module is never modified: it is deep-copied for every simulation and every remedy (a
    module that cannot be copied is refused with a :class:`~.graph.ModelCopyError`, a ModelError and a
    ValueError naming the attribute; a Python module held as an attribute is shared, not copied).

    ``loss``: ``binary_cross_entropy`` is on logits (``nn.BCEWithLogitsLoss``);
    ``binary_cross_entropy_probs`` on probabilities (``nn.BCELoss`` on the forward's own sigmoid);
    a torch loss module of them (``nn.CrossEntropyLoss()``) is read as its name."""
    loss, loss_note = loss_name(loss)
    device = _check_module_arguments(model, loss, seeds, verify, device)
    loss, from_logits = _ON_PROBABILITIES.get(loss, (loss, True))
    drawn_in = _check_input_range(input_range)
    labels = _class_labels(loss, targets)
    if labels is not None:
        targets = None  # (judged below, against the output's width; the simulation draws its own)
    given_range, given_targets = _check_targets(loss, target_range, targets)
    if optimizer is None and scheduler is not None:
        optimizer = getattr(scheduler, "optimizer", None)
    stated = _with_schedule(optimizer_spec(optimizer), scheduler, warmup_steps, clip_norm)
    notes = [n for n in (warmup_unknown_note(stated, optimizer), _no_warmup_note(scheduler, warmup_steps),
                         NO_OPTIMIZER_NOTE if stated is None else None)
             if n is not None]
    if not from_logits:
        notes.append(f"loss {BCE_PROBS}: binary cross-entropy on the forward's own probabilities (nn.BCELoss, "
                     "F.binary_cross_entropy), against random 0/1 targets of the output's shape")
    specs = input_specs(example_inputs, model, drawn_in, data_scale=True)
    notes += [_data_scale_note(s) for s in specs if s.rows is not None]
    notes += [_kept_note(s) for s in specs if s.kept is not None]
    if loss_note is not None:
        notes.append(loss_note)
    target_samples = None
    if given_targets is not None:
        target_samples = torch.from_numpy(given_targets)
        notes.append(_targets_note(given_targets, _adam_steps_to_mean(model, example_inputs, given_targets, stated)))
    run = GraphRun(model, specs, loss, seeds, optimizer=stated, target_samples=target_samples,
                   trace_functions=True, keywords=_keywords(example_inputs), nest=example_layout(example_inputs),
                   from_logits=from_logits, bounded_regression=True, target_range=given_range, target_values=given_targets,
                   # a reconstruction judged on its inputs where their range is given, or drawn from
                   # the example's own values: otherwise the example is a shape, not the data
                   # (standard-normal placeholders, modsweep30 h09)
                   reconstruction=drawn_in is not None or any(s.rows is not None for s in specs),
                   checkpoint=trained)
    try:
        # the caller's grad mode is not the check's: called under torch.no_grad() or inference_mode
        # (an evaluation loop), the forward builds no graph and every gradient, the sharpness's
        # double backward too, would fail; the mode is thread-local and restored on the way out
        with torch.inference_mode(False), torch.enable_grad():
            doc = diagnose(run, name=type(model).__name__, verify=verify, device=device, thresholds=thresholds)
        if doc.simulation is not None:
            unused = _unused_targets_note(doc, "targets=" if given_targets is not None else "target_range=", model)
            outside = unregistered_parameters(model, example_inputs)
            if outside:
                notes.insert(0, unregistered_note(outside, model))
            doc.simulation.notes[:0] = notes + ([unused] if unused is not None and (
                given_targets is not None or given_range is not None) else [])
            if labels is not None:
                doc.simulation.notes.insert(0, _class_labels_note(doc, loss, labels))
        return doc
    except GradHealthError:
        raise
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:
        refused = _sparse_refusal(specs, exc)
        if refused is not None:
            raise refused from exc
        stage = _failed_stage(exc)
        if stage is not None:
            raise ModelRunError(stage, exc, example_inputs, drawn_in,
                                on_example=_forward_on_example(model, example_inputs) if stage == "forward"
                                else None,
                                cut=gradient_cut(model, example_inputs)
                                if stage == "backward" and "does not require grad" in str(exc) else None) from exc
        if isinstance(exc, ValueError):  # the check's refusals (a module it cannot copy), worded so
            raise
        # not the model's code: the check's own failure, named as such, never a bare traceback
        # (modsweep29 u01: an IndexError from a readout of an expert's empty batch)
        raise CheckFailed(type(model).__name__, exc) from exc


def _sparse_refusal(specs: Sequence[InputSpec], exc: BaseException) -> ModelError | None:
    """The :class:`ModelError` for a simulation that failed on a sparse example input (kept as
    given, :func:`structural_input`): an operation of the forward, the loss or the check's own that
    takes no sparse tensor (torch's "Could not run 'aten::rsqrt' with arguments from the 'SparseCPU'
    backend", quoted by its first line, never its dispatcher listing), naming the sparse inputs and
    how to pass them (``.to_dense()``); None where no input is sparse or the error is no sparse one."""
    sparse = [s.name or "example_inputs" for s in specs if s.value is not None and s.value.layout != torch.strided]
    text = str(exc)
    if not sparse or not any(w in text.lower() for w in ("sparse", "layout")):
        return None
    first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(exc).__name__
    stage = _failed_stage(exc)
    where = {"forward": "the model's forward", "loss": "the loss", "backward": "the backward pass"}.get(
        stage or "", "the check's simulation")
    return ModelError(f"example input{'s' if len(sparse) > 1 else ''} {', '.join(sparse)} "
                      f"{'are sparse tensors' if len(sparse) > 1 else 'is a sparse tensor'}, kept as given, and "
                      f"{where} failed on {'them' if len(sparse) > 1 else 'it'}: {type(exc).__name__}: {first:.300}; "
                      "an operation there does not take a sparse tensor: pass "
                      f"{' and '.join(n + '.to_dense()' for n in sparse)} instead")


def _module_named(model: nn.Module, name: str) -> str:
    """A live module's layer as the check's words name it elsewhere: ``8 (Linear 64→1)`` (a
    Sequential's index alone read as a width, newuser12 #8); the name alone where it is no module."""
    try:
        module = model.get_submodule(name)
    except (AttributeError, TypeError):
        return name
    if isinstance(module, nn.Linear):
        return f"{name} ({type(module).__name__} {module.in_features}\u2192{module.out_features})"
    return f"{name} ({type(module).__name__})"


def _unused_targets_note(doc: Diagnosis, named: str, model: nn.Module | None = None) -> str | None:
    """The document's note where ``check_module`` was given targets (``named``: ``targets=`` or
    ``target_range=``) that no finding judged (none carries evidence ``targets``): the output is of
    a kind no rule judges against its targets (no bounded or distribution output ends it), said
    instead of dropping them silently (peersweep14); None where a finding used them. Targets
    given as values (``targets=``) still set the simulated loss's (:func:`_targets_note`)."""
    if any((f.evidence.model_extra or {}).get("targets") is not None for f in doc.findings):
        return None
    last = doc.layers[-1] if doc.layers else None
    layer = (_module_named(model, last.pointer.removeprefix("module:"))
             if last is not None and model is not None and last.pointer.startswith("module:")
             else last.name if last is not None else None)
    output = (f"the output {layer}, {'with no activation' if not last.activation else 'its ' + last.activation},"
              if last is not None else "the output")
    if last is not None and (last.activation in OUTPUT_RANGES or last.activation in SIMPLEX_RANGES):
        # a bounded output is judged against the targets: none of them was out of reach enough for a
        # finding (a sigmoid's [0, 1] covers target_range=(0, 1)); never "not one the check judges"
        # of the very kinds it does judge
        why = (f"{output} was judged against them and leaves too few out of reach for a finding (a bounded "
               "output's range, composed through any activations chained before it, covers the targets or "
               "all but a small share of them)")
        if named == "targets=":
            return (f"targets= judged, no finding: {why}; the loss and gradients are simulated against "
                    "the targets given")
        return f"{named} judged, no finding: {why}; the gradients are simulated against standard-normal targets"
    why = (f"{output} is not one the check judges against targets (a linear or other unbounded output can reach "
           "any target; only an output held to a range, a sigmoid, tanh, ReLU or softmax ending the forward, is "
           "checked for targets it cannot reach)")
    if named == "targets=":
        return (f"targets= used for the loss only: {why}; the loss and gradients are simulated against "
                "the targets given")
    return f"{named} not used: {why}; the gradients are simulated against standard-normal targets"


def _data_scale_note(spec: InputSpec) -> str:
    """``simulation.notes``' line for a float input drawn from the example's own rows
    (:func:`far_from_unit`): where its values lie, and how to draw elsewhere."""
    assert spec.rows is not None
    v = spec.rows
    rms = float(v.square().mean().sqrt())
    return (f"float input {spec.name or 'example_inputs'} drawn from the example inputs' own rows (each seed "
            f"resamples its {v.shape[0]}): their values lie in [{float(v.min()):.4g}, {float(v.max()):.4g}], root "
            f"mean square {rms:.3g}, far from the unit scale of the N(0, 1) draws used for inputs near it "
            "(input_range=(low, high) draws uniform in a range instead)")


def _adam_steps_to_mean(model: nn.Module, inputs: Any, targets: np.ndarray,
                        optimizer: OptimizerSpec | None) -> tuple[float, float, str] | None:
    """(steps, the output mean's change per step, the optimizer) for an Adam or AdamW model to bring
    its batch's mean output to the mean of regression ``targets`` far from unit scale whose offset is
    most of their size (|mean| over the std): the distance over the first step's pace. Adam's first
    step moves every weight by lr x sign(g) (m / sqrt(v) = g / |g| after bias correction), whatever
    the gradient's size, so large targets give no large update (large_updates never fires) but the
    mean output moves by lr x |sum_i sign(g_i) d mean(f) / d theta_i| a step; a later step keeps about
    that pace while the offset dominates the loss. Taken on a copy (its norms' running statistics
    untouched) against the targets' mean; None where the model's input or output is not one tensor."""
    if optimizer is None or optimizer.type not in ("adam", "adamw") or not optimizer.lr > 0:
        return None
    mean, std = float(targets.mean()), float(targets.std())
    if far_targets(targets) is None or not abs(mean) > std or not isinstance(inputs, torch.Tensor):
        return None
    try:
        import copy
        net = copy.deepcopy(model)
        params = [p for p in net.parameters() if p.requires_grad]
        out = net(inputs)
        if not isinstance(out, torch.Tensor) or not params:
            return None
        f = out.double().mean()  # (f.item() below: no grad kept)
        g = torch.autograd.grad(((out.double() - mean) ** 2).mean(), params, retain_graph=True, allow_unused=True)
        d = torch.autograd.grad(f, params, allow_unused=True)
    except Exception:  # noqa: BLE001 - an estimate for a note: the check itself runs the model and says its errors
        return None
    pace = optimizer.lr * abs(sum(float((torch.sign(gi) * di).sum()) for gi, di in zip(g, d, strict=True)
                                  if gi is not None and di is not None))
    gap = abs(mean - f.detach().item())
    if not pace > 0 or not math.isfinite(gap / pace):
        return None
    return gap / pace, pace, optimizer.type


def _targets_note(values: np.ndarray, steps: tuple[float, float, str] | None = None) -> str:
    """``simulation.notes``' line for regression targets given as values: the loss is taken against
    them at their own scale; ``steps``: :func:`_adam_steps_to_mean`'s estimate, said where given."""
    far = far_targets(values)
    scale = (f"; mean {float(values.mean()):.4g}, std {float(values.std()):.4g}: "
             f"{'far from' if far is not None else 'near'} unit scale")
    if steps is not None:
        n, pace, opt = steps
        name = "Adam" if opt == "adam" else "AdamW"
        scale += (f"; {name} moves every weight by about its lr a step whatever the gradient's size, so the "
                  f"updates stay small, but the output's mean moves {pace:.3g} a step at the first step's pace: "
                  f"at least {n:.3g} steps to reach the targets' mean, a plateau the offset dominates "
                  "(Adam's memory of the early large gradients slows it near the end; standardised targets "
                  "start there)")
    return (f"the loss is taken against the {values.size} targets given (targets=), each seed's batch drawn "
            f"from them{scale}" + (f" (|mean| or std {FAR_TARGET_SCALE:g} or more: normalise_targets is offered "
                                   "where the updates or gradients are too large)" if far is not None else ""))


def _no_warmup_note(scheduler: Any, warmup_steps: Any) -> str | None:
    """The document's note where ``scheduler`` is one with no warm-up (and no length was stated)."""
    name = no_warmup_scheduler(scheduler) if scheduler is not None and warmup_steps is None else None
    if name is None:
        return None
    return (f"scheduler {name} has no warm-up: its first step's rate is the optimizer's lr"
            + (", which it changes only on a plateau" if name == "ReduceLROnPlateau" else "")
            + "; judged as no warm-up")


class CheckFailed(GradHealthError, RuntimeError):
    """The check itself failed while measuring a live module (not the module's own code, which is
    :class:`ModelRunError`): the error is named and chained (``__cause__``), and the module is
    left as it was. Also a RuntimeError."""

    def __init__(self, model: str, error: BaseException) -> None:
        where = ""
        tb = error.__traceback__
        while tb is not None:  # the check's innermost frame, to report
            path = tb.tb_frame.f_code.co_filename.replace("\\", "/")
            if path.rsplit("/", 3)[-3:-1] in (["gradhealth", "analysis"], ["service", "analysis"]):
                where = f" in {tb.tb_frame.f_code.co_name} ({path.rsplit('/', 1)[-1]}:{tb.tb_lineno})"
            tb = tb.tb_next
        super().__init__(f"the check failed while measuring {model}{where}: {type(error).__name__}: {error}. "
                         "This is the check's own error, not your model's: please report it with the model's "
                         "code and example inputs")


def _forward_on_example(model: nn.Module, example_inputs: Any) -> BaseException | None:
    """The control of a forward that failed on the check's inputs: the model's forward on the
    example inputs exactly as given (a copy of the model, so nothing of it changes: a batch norm's
    running statistics), nothing else. The exception it raises, or None where it runs (then the
    failure was the drawn inputs'). A model that cannot be copied or whose example cannot be laid out
    gives None (no control: worded as before)."""
    try:
        xs, _, layout = _flatten(example_inputs, model)
        net = copy_module(model)
    except Exception:  # noqa: BLE001 - no control to run; the refusal is worded without it
        return None
    try:
        with torch.inference_mode(False), torch.enable_grad():
            call(net, xs, _keywords(example_inputs), layout)
    except Exception as exc:  # noqa: BLE001 - the user's forward's own error, quoted in the refusal
        return exc
    return None


class ModelRunError(ModelError, RuntimeError):
    """The model's own code failed while ``check_module`` ran it: its ``forward`` on inputs shaped
    like the examples, the loss on its output, or the ``backward`` through it. ``stage`` names
    which; the original error is chained (``__cause__``) and quoted, with the line of the user's code
    that raised it (the innermost frame of its traceback outside torch and this package). Also a
    RuntimeError, as the raw torch error it wraps was before (newuser5 P6).

    ``on_example`` (a failed forward): what the forward did on the example inputs exactly as given,
    run as a control: the exception it raised there too (a bug in the forward, worded as one, with no
    hint about the drawn inputs' range; modsweep42: a GAT layer's ``.squeeze(1)`` for ``.squeeze(2)``
    was sent to ``input_range=``), or None where it ran (the failure is the drawn inputs')."""

    def __init__(self, stage: str, error: BaseException, example_inputs: Any = None,
                 input_range: tuple[float, float] | None = None, *,
                 on_example: BaseException | None | bool = False,
                 cut: tuple[str, str | None] | None = None) -> None:
        site = _site_of(error)
        at = f" at {site}" if site else ""
        if stage == "backward" and cut is not None:
            super().__init__(_cut_message(error, cut))
            self.stage = stage
            return
        own = isinstance(on_example, BaseException)
        shapes = f" ({_shapes(example_inputs)})" if example_inputs is not None else ""
        if stage == "forward" and own:
            assert isinstance(on_example, BaseException)
            same = type(on_example) is type(error) and str(on_example) == str(error)
            again = "" if same else f" (on the example: {type(on_example).__name__}: {_first_line(on_example)})"
            super().__init__(
                f"the model's forward fails on example_inputs{shapes} as given, not only on the check's "
                f"drawn inputs: {type(error).__name__}: {error}{at}{again}. The error is in the forward's own "
                "code (a shape or dtype one of its operations does not take), not in the inputs' values: "
                "a plain call of the model on example_inputs raises it too")
            self.stage = stage
            return
        what = {"forward": "the model's forward failed on inputs shaped like example_inputs" + shapes,
                "loss": "the loss could not be taken on the model's output",
                "backward": "the backward pass through the model failed"}[stage]
        # the inputs are the check's own draws, not the example's values: say so, and how to give
        # their range (modsweep33 h01: a VAE whose BCE reads its input pixels as targets)
        ran = "; the forward runs on example_inputs as given" if stage == "forward" and on_example is None else ""
        drawn = ("" if stage == "backward" or not _has_float(example_inputs) else
                 f" (its float inputs were drawn uniform in [{input_range[0]:g}, {input_range[1]:g}]"
                 if input_range is not None else
                 " (its float inputs were drawn standard normal, not the example's values; "
                 "input_range=(low, high) draws them in your data's range")
        super().__init__(f"{what}: {type(error).__name__}: {error}{at}" + (drawn + ran + ")" if drawn else ""))
        self.stage = stage


#: Names of the comparisons a cut is made by, as the forward writes them
_COMPARISONS = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "ne": "!=", "greater": ">", "less": "<"}


class _CutTracker(torch.overrides.TorchFunctionMode):
    """Over one forward: each tensor made without gradient by an operation that read one with a
    gradient (``x > 0.3``, ``argmax``, ``.long()``, ``.detach()``, any op under ``torch.no_grad()``),
    and every tensor computed from such tensors alone, -> (that operation's name, the user's line)."""

    def __init__(self) -> None:
        super().__init__()
        self.origin: dict[int, tuple[str, str | None]] = {}
        self.kept: list[torch.Tensor] = []  # the tensors' ids stay theirs while the forward runs

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in pytree.tree_leaves((args, kwargs or {})) if isinstance(t, torch.Tensor)]
        outputs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and not t.requires_grad]
        if not outputs:
            return out
        where: tuple[str, str | None] | None
        if any(t.requires_grad for t in inputs):
            where = (str(getattr(func, "__name__", func)).strip("_"), _user_line())
        else:
            where = next((self.origin[id(t)] for t in inputs if id(t) in self.origin), None)
        if where is None:
            return out
        for t in outputs:
            self.origin.setdefault(id(t), where)
            self.kept.append(t)
        return out


def _user_line() -> str | None:
    """``file:line (code)`` of the innermost frame of the current stack outside torch and this package."""
    return _user_site(traceback.extract_stack())


def gradient_cut(model: nn.Module, example_inputs: Any) -> tuple[str, str | None] | None:
    """(the operation, the user's line) where a forward whose output has no gradient cut it: the
    operation that made a tensor without gradient out of one with (:class:`_CutTracker`), that the
    output was computed from; ("", None) where the output has no gradient and no such operation was
    seen (no weight requires a gradient, or the forward rebuilt a tensor from Python numbers:
    ``.item()``, ``.tolist()``); None where the output has a gradient, or the forward cannot run."""
    try:
        xs, _, layout = _flatten(example_inputs, model)
        net = copy_module(model)
        tracker = _CutTracker()
        with torch.inference_mode(False), torch.enable_grad(), tracker:
            value = call(net, xs, _keywords(example_inputs), layout)
    except Exception:  # noqa: BLE001 - no control: the refusal is worded without a place
        return None
    out = first_tensor(value)
    if out is None or out.requires_grad:
        return None
    return tracker.origin.get(id(out), ("", None))


def _cut_message(error: BaseException, cut: tuple[str, str | None]) -> str:
    """:class:`ModelRunError`'s message for a backward through a loss with no gradient (:func:`gradient_cut`)."""
    op, site = cut
    shown = f"`{_COMPARISONS[op]}` (a comparison)" if op in _COMPARISONS else f"`{op}`" if op else ""
    where = (f"the forward cuts it at {site}{', where ' + shown if shown else ''} makes a tensor without gradient "
             "out of one with a gradient" if site or shown else
             "no operation of the forward was seen cutting it: no weight requires a gradient, or a tensor was "
             "rebuilt from Python numbers (.item(), .tolist(), torch.tensor(...))")
    return ("the loss does not depend on any weight: the model's output has no gradient (requires_grad is False), "
            f"so backward() has nothing to compute ({type(error).__name__}: {_first_line(error)}); {where}. "
            "A comparison (x > 0.3), argmax, a cast to integers (.long(), .int()), .detach() or torch.no_grad() "
            "ends the autograd graph: a loss taken through them gives no parameter a gradient and training never "
            "changes the weights. Take the loss on the values before the cut (binary cross-entropy on the "
            "probabilities, not on the thresholded mask; cross-entropy on the logits, not the argmax) and keep "
            "thresholds and argmax for metrics")


def _first_line(exc: BaseException) -> str:
    """``exc``'s message's first line, at most 200 characters."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return first if len(first) <= 200 else first[:197] + "..."


def _has_float(example_inputs: Any) -> bool:
    """Whether the example inputs hold a floating-point tensor (one the check draws afresh)."""
    return any(isinstance(t, torch.Tensor) and t.is_floating_point() for t in pytree.tree_leaves(example_inputs))


def _check_input_range(value: Any, name: str = "input_range") -> tuple[float, float] | None:
    """``check_module``'s ``input_range`` (or the range argument ``name``): None, or two finite
    numbers low < high."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, numbers.Real) for v in value):
        raise ArgumentTypeError(f"{name} must be a (low, high) pair of numbers, got {value!r:.80}")
    if (problem := range_problem(value[0], value[1])) is not None:
        raise ArgumentError(f"{name} {problem}")
    return float(value[0]), float(value[1])


def _check_targets(loss: str, target_range: Any, targets: Any
                   ) -> tuple[tuple[float, float] | None, np.ndarray | None]:
    """``check_module``'s ``target_range`` (two finite numbers low < high) and ``targets`` (finite
    numbers, as a float64 array): each for a regression loss only, and not both."""
    if target_range is None and targets is None:
        return None, None
    named = "target_range" if target_range is not None else "targets"
    if loss not in _REGRESSION:
        raise ArgumentError(f"{named} applies to a regression loss (mse), and the loss is {loss!r}")
    if target_range is not None and targets is not None:
        raise ArgumentError("give targets or target_range, not both: the targets' own values are judged")
    if target_range is not None:
        return _check_input_range(target_range, "target_range"), None
    values = _flat_targets(targets, "numbers", "the regression targets")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ArgumentError(f"targets must be finite numbers: element {int(bad[0])} (flattened) is {values[bad[0]]}")
    return None, values


def _flat_targets(targets: Any, kind: str, what: str) -> np.ndarray:
    """``targets`` (a tensor or an array-like) flattened as float64; an ArgumentTypeError naming
    ``kind`` where they are not numbers, an ArgumentError where there are none."""
    try:
        values = (targets.detach().to("cpu", torch.float64).numpy() if isinstance(targets, torch.Tensor)
                  else np.asarray(targets, dtype=np.float64)).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArgumentTypeError(f"targets must be a tensor or array of {kind}, got {type(targets).__name__}: "
                                f"{exc}") from None
    if values.size == 0:
        raise ArgumentError(f"targets is empty: give {what} of at least one sample")
    return values


def _class_labels(loss: str, targets: Any) -> np.ndarray | None:
    """``check_module``'s ``targets`` under a classification loss, the first thing a classifier's
    user passes (peersweep15: refused as "targets applies to a regression loss"): under
    ``cross_entropy`` class labels (integers from 0) or class probabilities (numbers in [0, 1], a
    one-hot or soft target), under ``binary_cross_entropy`` 0/1 targets or probabilities in [0, 1];
    flattened as float64. None for another loss or no targets (:func:`_check_targets` judges those).
    Anything else is an ArgumentError naming the first element that is not."""
    if targets is None or loss not in ("cross_entropy", "binary_cross_entropy"):
        return None
    values = _flat_targets(targets, "class labels", "the class labels")
    integer = np.isfinite(values) & (values >= 0) & (values == np.round(values))
    unit = np.isfinite(values) & (values >= 0) & (values <= 1)
    bad = np.flatnonzero(~integer) if loss == "cross_entropy" and not unit.all() else np.flatnonzero(~unit)
    if bad.size:
        wanted = ("class labels, integers from 0 (or class probabilities in [0, 1])" if loss == "cross_entropy"
                  else "0/1 labels (or probabilities in [0, 1])")
        raise ArgumentError(f"targets under {loss} must be {wanted}: element {int(bad[0])} (flattened) is "
                            f"{values[bad[0]]:g}")
    return values


def _class_labels_note(doc: Diagnosis, loss: str, labels: np.ndarray) -> str:
    """The note of :func:`_class_labels`' targets: what they hold, and that the gradients are
    simulated against labels drawn uniformly (a classifier's gradient health does not hang on which
    class each sample is). Class labels at or above the output's width (its last Linear's
    out_features) are refused: cross-entropy would index a class the output does not have."""
    last = doc.layers[-1] if doc.layers else None
    width = last.fan_out if last is not None and last.type == "linear" else None
    if loss == "cross_entropy" and bool(np.all(labels == np.round(labels))):
        top = int(labels.max())
        if last is not None and width is not None and top >= width:
            raise ArgumentError(f"targets holds class label {top}, but the output (layer {last.name}, a Linear with "
                                f"{width} outputs) scores classes 0-{width - 1} only: cross-entropy needs a label "
                                "below the output's width (a label of the wrong dataset, or a head one class short)")
        counts = np.bincount(labels.astype(np.int64))
        held = (f"{labels.size} class labels, {int(np.count_nonzero(counts))} distinct classes of "
                f"{width if width is not None else top + 1}{' scored' if width is not None else ''}, the most "
                f"common {counts.max() / labels.size:.0%} of them")
    else:
        held = (f"{labels.size} targets in [0, 1], {float(np.mean(labels)):.0%} of their mass on 1"
                if loss == "binary_cross_entropy" else f"{labels.size} values in [0, 1] (class probabilities)")
    drawn = ("labels drawn uniformly over the output's classes" if loss == "cross_entropy" else
             "0/1 targets drawn with equal odds")
    return (f"targets= ({held}) read, not needed: under {loss} the gradients are simulated against {drawn}, and "
            "a classifier's gradient health does not depend on which class each sample is")


def _shapes(example_inputs: Any) -> str:
    """The example inputs' shapes, as the message of a failed forward quotes them."""
    leaves = pytree.tree_leaves(example_inputs)
    return ", ".join(f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" if isinstance(t, torch.Tensor)
                     else type(t).__name__ for t in leaves[:6]) + (" ..." if len(leaves) > 6 else "")


#: graph.py's functions that run the model's forward, and the loss on its output
_STAGE_FRAMES = {"call": "forward", "_loss": "loss"}


def _failed_stage(error: BaseException) -> str | None:
    """Where in a simulation ``error`` was raised, read off its traceback: in the model's forward
    (under graph.py's :func:`call`), in the loss (graph.py's ``_loss``), or in ``backward``
    (torch's autograd); None when it came from none of them (the check's own code)."""
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        path = code.co_filename.replace("\\", "/")
        if path.endswith("gradhealth/analysis/graph.py") or path.endswith("service/analysis/graph.py"):
            if code.co_name in _STAGE_FRAMES:
                return _STAGE_FRAMES[code.co_name]
        elif code.co_name in ("backward", "_engine_run_backward") and "/torch/" in path:
            return "backward"
        tb = tb.tb_next
    return None


#: binary_cross_entropy is on logits, as nn.BCEWithLogitsLoss, against 0/1 targets of the output's shape;
#: binary_cross_entropy_probs is on probabilities, as nn.BCELoss (F.binary_cross_entropy) on a forward
#: that ends in its own sigmoid (a GAN's discriminator, a multi-label head): the same loss taken with
#: from_logits false, as a spec's ``loss.from_logits: false`` and a Keras file's from_logits=False take it
BCE_PROBS = "binary_cross_entropy_probs"
#: check_module's loss names: the shared ones and BCE on probabilities
_LOSSES = (*LOSSES, BCE_PROBS)
#: each loss name of check_module that is another's on probabilities: (that loss, from_logits)
_ON_PROBABILITIES = {BCE_PROBS: ("binary_cross_entropy", False)}
#: the torch loss modules check_module reads as a name: the shared ones and nn.BCELoss (probabilities)
_TORCH_LOSSES: dict[str, tuple[str, dict[str, object]]] = {
    **TORCH_LOSS_MODULES, "BCELoss": (BCE_PROBS, {"reduction": "mean", "weight": None})}


def loss_name(loss: Any) -> tuple[Any, str | None]:
    """``check_module``'s ``loss=`` as a name of ``_LOSSES`` (the shared :data:`LOSSES` plus the
    module door's BCE on probabilities), and a note where it was a torch loss module whose setting
    the check does not compute (newuser17 #4: ``nn.CrossEntropyLoss()`` was refused): an instance of
    a class of ``_TORCH_LOSSES`` (:data:`TORCH_LOSS_MODULES` plus ``nn.BCELoss``, or a subclass)
    gives its loss; anything else is returned as it is, for :func:`_check_module_arguments` to
    refuse."""
    if not isinstance(loss, nn.Module):
        return loss, None
    cls = next((c.__name__ for c in type(loss).__mro__ if c.__module__.startswith("torch.nn")
                and c.__name__ in _TORCH_LOSSES), None)
    if cls is None:
        raise ArgumentTypeError(f"loss: {type(loss).__name__} is no loss the check computes; pass one of "
                                f"{', '.join(_LOSSES)} by name, or a torch loss module of them: "
                                f"{', '.join(f'nn.{n}' for n in _TORCH_LOSSES)}")
    name, computed = _TORCH_LOSSES[cls]
    differ = []
    for attr, value in computed.items():
        given = getattr(loss, attr, value)
        if isinstance(given, torch.Tensor) or given != value:
            shown = "a tensor" if isinstance(given, torch.Tensor) else repr(given)
            differ.append(f"{attr}={shown}")
    if not differ:
        return name, None
    return name, (f"loss: nn.{cls} is checked as {name} with its defaults ({', '.join(f'{a}={v!r}' for a, v in computed.items())}); "
                  f"its {', '.join(differ)} is not simulated (a weighting, a smoothing or a sum scales the gradients "
                  "the check judges)")


def _check_module_arguments(model: Any, loss: Any, seeds: Any, verify: Any, device: Any) -> str | None:
    """``check_module``'s arguments checked before anything runs, each error naming the argument
    (newuser5 P6: a function as the model, ``seeds="2"`` or a module without parameters reached
    torch and came back as its raw errors). Returns the device, validated (:func:`check_device`)."""
    if not isinstance(model, nn.Module):
        hint = (" (check_architecture takes a spec; a torch module goes to check_module)"
                if isinstance(model, type) and issubclass(model, nn.Module) else "")
        raise ArgumentTypeError(f"model must be a torch.nn.Module instance, got {model!r:.80} "
                                f"({type(model).__name__}){hint}")
    if not isinstance(loss, str):
        raise ArgumentTypeError(f"loss must be one of {', '.join(_LOSSES)} (text) or a torch loss module of them "
                                f"(nn.CrossEntropyLoss(), nn.MSELoss(), ...), got {loss!r:.80} ({type(loss).__name__})")
    if loss not in _LOSSES:
        raise ArgumentError(f"loss must be one of {', '.join(_LOSSES)}, not {loss[:40]!r}{loss_hint(loss)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int):
        raise ArgumentTypeError(f"seeds must be an integer >= 1, got {seeds!r} ({type(seeds).__name__})")
    if seeds < 1:
        raise ArgumentError(f"seeds must be at least 1, got {seeds}")
    if not isinstance(verify, bool):
        raise ArgumentTypeError(f"verify must be True or False, got {verify!r} ({type(verify).__name__})")
    # (a model frozen whole is checked as if it were trained: graph.py unfreezes a copy)
    if next(iter(model.parameters()), None) is None:
        raise ArgumentError(f"model ({type(model).__name__}) has no parameters: there is no weight whose "
                            f"gradient could be diagnosed{_no_parameters_hint(model)}")
    try:
        return check_device(device)
    except SpecError as exc:
        words = "; ".join(p.message for p in exc.problems) or exc.detail
        raise DeviceArgumentError(f"device: {words}", exc.problems, parameter="device") from None


def _misspelled_init(cls: type) -> str | None:
    """The name of a method of ``cls`` (or a class it derives from, up to torch's) spelled like
    ``__init__`` but not it (``_init_``, ``__init``, ``__inti__``): Python never calls it, so the
    layers it builds are never made."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.") or klass is object:
            break
        if "__init__" in vars(klass):
            return None  # its own __init__ runs: a helper named _init is no typo
        for name, value in vars(klass).items():
            if callable(value) and name.startswith("_") and name.strip("_") in ("init", "inti"):
                return f"{klass.__name__}.{name}"
    return None


def _no_parameters_hint(model: nn.Module) -> str:
    """Why a model has no parameters, where that is visible (modsweep46 yaren_unet_no_init: a UNet
    whose ``_init_`` typo left it empty was refused without a word about the typo)."""
    parts = []
    typo = _misspelled_init(type(model))
    if typo is not None:
        parts.append(f"{type(model).__name__} defines {typo.split('.')[-1]}, not __init__ ({typo}), which Python "
                     "never calls, so no layers were created")
    else:
        plain = [f"self.{k}" for k, v in vars(model).items() if isinstance(v, torch.Tensor)
                 and not isinstance(v, nn.Parameter) and v.is_floating_point() and v.dim() >= 1]
        if plain:
            # a weight made with torch.randn(...) as a plain attribute: no parameter, no gradient
            parts.append(f"it holds {', '.join(plain[:3])}{' ...' if len(plain) > 3 else ''} as a plain tensor, "
                         "not an nn.Parameter, which is no parameter: wrap it in nn.Parameter(...)")
        elif not any(True for _ in model.children()):
            parts.append("its __init__ created no layers (no submodule, no nn.Parameter)")
    if type(model).forward is nn.Module.forward:
        parts.append(f"{type(model).__name__} defines no forward")
    return f"; {'; '.join(parts)}" if parts else ""


#: Findings about what units do on the inputs: a network's own (trained) weights meet the check's
#: synthetic inputs, which can be nothing like the data they were trained on.
_INPUT_DEPENDENT = ("dead_units", "saturation")


def on_synthetic_inputs(doc: Diagnosis, input_range: tuple[float, float] | None = None) -> Diagnosis:
    """``doc`` of a file's own weights, with each finding that depends on the inputs saying that
    the inputs were synthetic (a trained network can leave units off, or saturate them, on inputs
    unlike its data), and how to judge the architecture itself."""
    for f in doc.findings:
        if f.code in _INPUT_DEPENDENT and f.severity != "info" and input_range is not None:
            f.explanation += (
                f" These are the file's own weights, fed synthetic inputs drawn uniform in [{input_range[0]:g}, "
                f"{input_range[1]:g}] (the range given): a trained network can leave units off or saturated on "
                "inputs unlike its data. weights: reinitialise judges the architecture itself.")
        elif f.code in _INPUT_DEPENDENT and f.severity != "info":
            f.explanation += (
                " These are the file's own weights, fed synthetic inputs (standard normal values, or "
                "random token ids): a trained network can leave units off or saturated on inputs unlike "
                "its data (--input-range LO,HI draws them in the data's range, `0,1` for pixels). weights: "
                "reinitialise judges the architecture itself.")
    return doc


def _first_forward(module: nn.Module, inputs: list[InputSpec]) -> tuple[torch.Tensor | None, str | None]:
    """An imported graph's first output on the first seed's inputs, its autograd node kept (what
    made it is read), and None; or None and why the graph does not run on them."""
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    xs = [x.to(dtype) if x.is_floating_point() else x for x in make_inputs(inputs, 0)]
    try:
        with torch.enable_grad():
            return first_tensor(call(module, xs)), None
    except (RuntimeError, ValueError) as exc:
        return None, str(exc)


def _first_output(module: nn.Module, inputs: list[InputSpec]) -> torch.Tensor | None:
    """:func:`_first_forward`'s output; None where the graph does not run (the check then says why)."""
    return _first_forward(module, inputs)[0]


def implied_loss(module: nn.Module, inputs: list[InputSpec],
                 out: torch.Tensor | None = None) -> tuple[str, bool]:
    """(loss, from_logits) for a graph whose file says nothing about its loss: cross_entropy over
    its classes, unless it outputs one number per sample: binary cross-entropy on probabilities
    after a sigmoid (a binary classifier), mse otherwise (a regression). Several outputs that end in
    a sigmoid are a multi-label head, each a binary classifier: binary cross-entropy on each
    (a softmax over probabilities in (0, 1) was simulated, a loss no such model trains with:
    onnxsweep8). Cross-entropy over one unit is a softmax of one value, the constant 1: no gradient
    reaches the network at all. ``out``: the graph's output (:func:`_first_output`) where the caller
    has it."""
    out = _first_output(module, inputs) if out is None else out
    act = output_activation(module)
    if out is None or out.dim() == 0 or (out.dim() > 1 and out.shape[-1] > 1):
        return ("binary_cross_entropy", False) if act == "sigmoid" and out is not None and out.dim() > 0 \
            else ("cross_entropy", True)
    return ("binary_cross_entropy", False) if act == "sigmoid" else ("mse", True)


def _implied_map_loss(shape: list[int], class_axis: int) -> tuple[str, str]:
    """(loss, note) for an imported graph's output of ``shape``, more than [batch, k], with no loss
    given: cross-entropy over its classes on ``class_axis`` (:func:`graph.output_class_axis`), each
    position along the other axes a sample's; mse where that axis holds one value (a one-channel
    map, a decoder's image: cross-entropy over one class is identically 0, and over its width
    would make classes of pixel columns)."""
    axis = class_axis % len(shape)
    where = "channel axis" if class_axis == 1 else "last axis"
    if shape[axis] == 1:
        return "mse", (f"no loss was given: the output {shape} holds one value per position on its {where} "
                       f"(axis {axis}), an image or a forecast rather than classes, so it is checked under mse "
                       "(give --loss to choose another)")
    return "cross_entropy", (f"no loss was given: cross-entropy over the {shape[axis]} classes on the output's "
                             f"{where} (axis {axis} of {shape}), each position along its other axes one sample's "
                             "scores; give --loss mse if it is a regression (a forecast, an image)")


def output_activation(module: nn.Module) -> str | None:
    """The activation an imported graph's (first) output ends in (:func:`graph.output_op`); None
    where it ends in a layer or the graph says nothing."""
    found = output_op(module)
    return found[1] if found is not None else None


def keras_producer(producer: str) -> bool:
    """Whether an ONNX file's ``producer_name`` is a converter of Keras / TensorFlow models (tf2onnx,
    keras2onnx, OnnxMLTools): the model was written in Keras, and its advice is said in Keras' terms."""
    from gradhealth.analysis.importers.onnx_fold import TENSORFLOW_PRODUCERS

    return producer.lower().startswith(TENSORFLOW_PRODUCERS)


def _inference_softmax_note(run: GraphRun, classes: int, keras: bool = False) -> Finding:
    """The note for an imported graph ending in a softmax over ``classes`` under cross_entropy, which
    the check takes as its exporter's inference head (:func:`check_onnx`); the floor a second softmax
    would leave is that class count's, ln(1 + (k - 1)/e) over ln k (:func:`.losses.unreachable_fraction`).
    ``keras``: the file was converted from a Keras model (:func:`keras_producer`), told in Keras' terms."""
    floor = unreachable_fraction("softmax", "softmax", classes)
    twice = (f"that is a softmax applied twice: the loss cannot fall below about {floor:.0%} of chance for its "
             f"{classes} classes and the gradient shrinks; ")
    if keras:
        # (onnxsweep29 pointer_onnx: a tf2onnx MobileNetV2 was told of nn.CrossEntropyLoss and forward)
        advice = ("If training compiles its loss with from_logits=True on these outputs, " + twice
                  + "build the last layer without activation='softmax' and compile the loss with "
                  "from_logits=True (a softmax kept for inference), or keep the softmax with from_logits=False.")
    else:
        advice = ("If training applies nn.CrossEntropyLoss to these outputs, " + twice
                  + "return the logits from forward and keep the softmax for inference.")
    return rule("output_loss_mismatch").finding(
        "info", "the file ends in a softmax: taken as its inference head, the cross-entropy computed on the "
                "logits before it",
        "Files exported for inference end in a softmax, and the loss they were trained with took the logits "
        "before it, so the check computes the cross-entropy of those logits (the log-softmax the file's "
        "probabilities are the exponential of). " + advice,
        {"metric": "output_activation", "value": None, "activation": "softmax", "loss": run.loss}, [])


def _multi_label_note(run: GraphRun, width: int, sample: list[int] | None = None) -> Finding:
    """The note for an imported graph ending in a sigmoid over several outputs with no loss given,
    which the check takes as a multi-label head (:func:`implied_loss`). ``width``: each sample's
    outputs; ``sample``: their shape, said where it has more than one axis (an image)."""
    shape = f" per sample (each a {'x'.join(str(int(d)) for d in sample)} tensor)" if sample and len(sample) > 1 else ""
    return rule("output_loss_mismatch").finding(
        "info", f"the file ends in a sigmoid over {width} outputs{shape}: taken as a multi-label head, a binary "
                "cross-entropy on each (give --loss if it was trained otherwise)",
        "A sigmoid per output is a multi-label classifier's head (each output its own yes or no), trained with "
        "binary cross-entropy; the check simulates that. If these outputs are instead classes trained with a "
        "softmax cross-entropy (nn.CrossEntropyLoss on the sigmoid's outputs), every logit is squashed into "
        "(0, 1) first and the loss can barely move: return the logits and let the loss apply its softmax.",
        {"metric": "output_activation", "value": None, "activation": "sigmoid", "loss": run.loss}, [])


#: ONNX ops that move, join or reshape an output's values without computing on them: a ``Clip``
#: behind them still bounds what the loss reads (:func:`output_clips`)
_LAYOUT_OPS = frozenset({"Concat", "Slice", "Gather", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
                         "Transpose", "Split", "Expand", "Tile"})
#: An output Clip's share of values at its bounds from which it is a warning: a hardtanh's bar
#: (:attr:`.rules.Saturation._hardtanh_warning`), since unit-variance values already sit past
#: +-1 31.7% of the time; from :attr:`Thresholds.silent_loss_warning` up to it, a note
CLIPPED_OUTPUT_WARNING = 0.52


def output_clips(module: nn.Module) -> list[int]:
    """The indices of an imported graph's ``Clip`` ops on its output path: those whose values reach
    the loss's tensor (the module's first output) through layout ops alone (:data:`_LAYOUT_OPS`: a
    policy's ``Concat(Clip(a0, -1, 1), Clip(a1, 0, 1), logit)``). Each passes no gradient for a value
    it clips, whatever the loss."""
    wiring = getattr(module, "wiring", None)
    op_types = getattr(module, "op_types", None)
    names = getattr(module, "output_names", None)
    if not wiring or not op_types or not names:
        return []
    made = {o: k for k, (_, outs) in enumerate(wiring) for o in outs if o}
    found: list[int] = []
    todo, seen = [names[0]], set()
    while todo:
        name = todo.pop()
        k = made.get(name)
        if name in seen or k is None or k >= len(op_types):
            continue
        seen.add(name)
        ins = wiring[k][0]
        if op_types[k] == "Clip":
            found.append(k)
        elif op_types[k] == "Concat":
            todo.extend(i for i in ins if i)
        elif op_types[k] in _LAYOUT_OPS and ins and ins[0]:
            todo.append(ins[0])  # the data; the rest are indices and sizes
    return sorted(found)


def _bound(value: Any) -> float | None:
    """A Clip bound as a float (a one-element tensor or number), None where it is not given."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.reshape(()))
    return float(value) if isinstance(value, int | float) else None


def clipped_heads(module: nn.Module, inputs: list[InputSpec], seeds: int,
                  reinitialise: bool = False) -> list[dict[str, Any]]:
    """Each output ``Clip`` (:func:`output_clips`) with the share of its values it clips on the
    simulation's inputs (each seed's draw, :func:`make_inputs`), per seed: the values it changes lie
    beyond its bounds, where its gradient is 0. ``reinitialise``: each seed's draw of the layers'
    default initialisation instead of the stored weights. Dicts of ``node``, ``input`` (the tensor it
    clips), ``bounds`` and ``clipped_by_seed``."""
    clips = output_clips(module)
    if not clips:
        return []
    shares: dict[int, list[float]] = {k: [] for k in clips}
    bounds: dict[int, tuple[float | None, float | None]] = {}

    def recorder(k: int) -> Callable[..., None]:
        def record(_: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            x = args[0] if args else None
            if not (isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor) and x.is_floating_point()
                    and x.numel() and out.shape == x.shape):
                return
            # changed by the clamp: strictly beyond a bound (torch passes the gradient at the bound itself)
            changed = (out != x) & ~torch.isnan(x)
            shares[k].append(float(changed.double().mean()))
            if k not in bounds:
                bounds[k] = (_bound(args[1]) if len(args) > 1 else None, _bound(args[2]) if len(args) > 2 else None)
        return record

    ops = cast(nn.ModuleList, module.ops)
    handles = [ops[k].register_forward_hook(recorder(k)) for k in clips]
    try:
        dtype = next((p.dtype for p in module.parameters()), torch.float32)
        for seed in range(seeds):
            net = module
            if reinitialise and hasattr(module, "reinitialise"):
                import copy

                net = copy.deepcopy(module)
                torch.manual_seed(seed)
                net.reinitialise()  # type: ignore[operator]  # hasattr above; nn.Module types it as a Tensor or Module
            xs = [x.to(dtype) if x.is_floating_point() else x for x in make_inputs(inputs, seed)]
            with torch.no_grad():
                call(net, xs)
    except (RuntimeError, ValueError):
        return []  # the check itself says why the graph does not run
    finally:
        for h in handles:
            h.remove()
    wiring = cast(list[tuple[list[str], list[str]]], module.wiring)
    names = cast(list[tuple[str, str]], getattr(module, "unit_names", []))
    heads = []
    for k in clips:
        if not shares[k]:
            continue
        heads.append({"node": names[k][0] if k < len(names) else wiring[k][1][0], "input": wiring[k][0][0],
                      "output": wiring[k][1][0], "bounds": list(bounds.get(k, (None, None))),
                      "clipped_by_seed": [round(v, 6) for v in shares[k]]})
    return heads


def _clipped_output_finding(heads: list[dict[str, Any]], loss: str, thresholds: Thresholds) -> Finding | None:
    """``output_loss_mismatch`` (``clipped_output_fraction``) for the output Clips of
    :func:`clipped_heads`, judged as a ReLU regression output's clip is, on the largest head's mean
    share: a warning from :data:`CLIPPED_OUTPUT_WARNING`, a note from the silent-loss bar; None under it."""
    if not heads:
        return None
    for h in heads:
        h["clipped_fraction"] = float(np.mean(h["clipped_by_seed"]))
    worst = max(heads, key=lambda h: h["clipped_fraction"])
    value = worst["clipped_fraction"]
    if value < thresholds.silent_loss_warning:
        return None
    severity = "warning" if value >= CLIPPED_OUTPUT_WARNING else "info"

    def span(h: dict[str, Any]) -> str:
        lo, hi = h["bounds"]
        return f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"

    said = "; ".join(f"{h['node']} clips {h['input']} to {span(h)}: {h['clipped_fraction']:.0%} of its values "
                     "beyond the bounds" for h in heads)
    summary = (f"the output goes through {len(heads)} Clip{'s' if len(heads) > 1 else ''} and every value clipped "
               f"gets no gradient, under {loss} or any loss: {said}")
    if severity == "info":
        summary += (f"; a note: under the {CLIPPED_OUTPUT_WARNING:.0%} judged a warning (unit-scale values already "
                    "sit beyond +-1 32% of the time)")
    explanation = (
        "A Clip (torch.clamp) on the output passes the loss's gradient only for values strictly inside its "
        "bounds; a value beyond a bound is replaced by the bound and its gradient is exactly 0, so the layers "
        "before it learn nothing from that sample's output. A policy's clipped continuous actions, or a "
        "regression clamped to its targets' range, trained through the clip stall wherever the raw output has "
        "left the range. These shares are on standard-normal inputs (give --input-range for the data's), "
        "with the stored weights unless they were reinitialised. Keep the clip out of training (clip the action "
        "only when acting, as the environment does), or bound the raw output smoothly (a tanh, scaled to the "
        "range) so that every value keeps a gradient.")
    evidence = {"metric": "clipped_output_fraction", "value": value, "threshold": CLIPPED_OUTPUT_WARNING,
                "note_threshold": thresholds.silent_loss_warning, "layers": [h["node"] for h in heads],
                "loss": loss, "from_logits": None, "output_activation": "clip", "clipped_heads": heads,
                "clipped_by_seed": worst["clipped_by_seed"], "silent_by_seed": []}
    return rule("output_loss_mismatch").finding(severity, summary, explanation, evidence, [])


def _one_sample_norms(imported: Any) -> bool:
    """Whether the imported graph's batch is 1 and a batch norm in it (the file's, or one restored)
    fails for want of a second value per channel: run once, forward only, on the first seed's inputs."""
    from gradhealth.analysis.importers.onnx import BatchNorm, FoldedBatchNorm

    if not imported.inputs or any(len(i.shape) == 0 or i.shape[0] != 1 for i in imported.inputs):
        return False
    if not any(isinstance(m, BatchNorm | FoldedBatchNorm) for m in imported.module.modules()):
        return False
    dtype = next((p.dtype for p in imported.module.parameters()), torch.float32)
    xs = [x.to(dtype) if x.is_floating_point() else x for x in make_inputs(imported.inputs, 0)]
    try:
        with torch.no_grad():
            call(imported.module, xs)
    except (RuntimeError, ValueError) as exc:
        return "more than 1 value per channel" in str(exc)
    return False


def _runs_at_one(data: bytes, failure: str | None, input_shapes: dict[str, list[int]] | None, limits: Any,
                 output: str | None, input_range: tuple[float, float] | None) -> Any:
    """The graph imported at batch 1 where it failed at another batch (``failure``, not a batch norm's
    want of a second sample) and runs at 1; None otherwise."""
    from gradhealth.analysis.importers.onnx import import_onnx

    if failure is None or "more than 1 value per channel" in failure:
        return None
    try:
        single = import_onnx(data, input_shapes=input_shapes, batch_size=1, limits=limits, output=output,
                             input_range=input_range)
    except ModelError:
        return None
    return single if _first_forward(single.module, single.inputs)[1] is None else None


def _softmax_reads(graph: Any, name: str) -> bool:
    """Whether a Softmax or LogSoftmax node of the file reads tensor ``name``: its logits."""
    return any(n.op_type in ("Softmax", "LogSoftmax") and name in n.input for n in graph.node)


def _overridden(data: bytes, input_shapes: dict[str, list[int]] | None) -> str:
    """``input[1] 5000 -> 3198``: the sizes the file declares fixed that ``input_shapes`` replaced."""
    if not input_shapes:
        return ""
    from gradhealth.analysis.importers.onnx_static import parse

    changed = []
    for inp in parse(data).graph.input:
        given = input_shapes.get(inp.name) or []
        for k, (d, size) in enumerate(zip(inp.type.tensor_type.shape.dim, given, strict=False)):
            if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != size:
                changed.append(f"{inp.name}[{k}] {d.dim_value} -> {size}")
    return ", ".join(changed)




def _batch_of(imported: Any) -> int:
    """The batch an imported file is simulated at: its first input's first size (1 without inputs)."""
    return int(imported.inputs[0].shape[0]) if imported.inputs and len(imported.inputs[0].shape) else 1


@quiet_run_notes
def check_onnx(data: bytes, *, loss: str | None = None, seeds: int | None = None, weights: str = "as_given",
               batch_size: int | None = None, input_shapes: dict[str, list[int]] | None = None,
               verify: bool = True, device: str | None = None, limits: Any = None,
               thresholds: Thresholds | None = None, name: str | None = None,
               progress: Callable[[float, str], None] | None = None, optimizer: Any = None,
               output: str | None = None, input_range: tuple[float, float] | None = None) -> Diagnosis:
    """Check the ONNX model in ``data`` (see :func:`gradhealth.analysis.importers.onnx.import_onnx`).

    ``weights``: ``as_given`` (the file's) or ``reinitialise`` (PyTorch's default per layer,
    drawn from each seed, to judge the architecture itself). ``loss``: one of :data:`.core.losses.LOSSES`; None
    (an ONNX file does not say) reads it from the output (:func:`implied_loss`). ``output``: the
    tensor the loss is taken at (a graph output or an internal value; the first computed float output
    by default). ``input_range``: the float inputs are drawn uniform in ``(low, high)``, the data's
    range, instead of N(0, 1)."""
    from gradhealth.analysis.freshinit import fresh_init, fresh_note
    from gradhealth.analysis.importers import ModelError
    from gradhealth.analysis.importers.onnx import OnnxModule, import_onnx, require_weights
    from gradhealth.analysis.importers.onnx_static import DEFAULT_BATCH
    from gradhealth.analysis.limits import Limits

    if weights not in ("as_given", "reinitialise"):
        raise ModelError(f"weights must be as_given or reinitialise, not {weights!r}")
    if loss is not None and (problem := loss_problem(loss)) is not None:
        raise ModelError(f"loss: {problem}")
    if input_range is not None:
        if (problem := range_problem(*input_range)) is not None:
            raise ModelError(f"input_range {problem}")
        input_range = (float(input_range[0]), float(input_range[1]))
    imported = import_onnx(data, input_shapes=input_shapes, batch_size=batch_size, limits=limits,
                           output=output, input_range=input_range, file_name=name, weights=weights)
    if batch_size is None and _one_sample_norms(imported):
        # The file fixes its batch at 1 (an export example's) and a batch norm, simulated with batch
        # statistics as in training, has one value per channel to normalise: refused until the user
        # gave --batch-size (onnxsweep12's torch MLP with BatchNormalization ran at 16). The batch
        # the file bakes in is the example's, not the training's: simulate at the default batch.
        imported = import_onnx(data, input_shapes=input_shapes, batch_size=DEFAULT_BATCH, limits=limits,
                               output=output, input_range=input_range)
        imported.notes.append(f"the file fixes its batch at 1; simulated at {DEFAULT_BATCH} because its batch "
                              "norms need batch statistics (give --batch-size to choose another)")
    # no weight to take a gradient through: said in words, not torch's "does not require grad" (errsweep6)
    require_weights(imported)
    # the time the defaults would take, estimated from the model's cost: past the budget the batch and
    # seeds the user did not set are lowered (onnxsweep29 cloud_unet: a 537k-parameter U-Net at
    # 4x224x224 ran ~25 min at batch 16 x 3 seeds, silent in CI, killed as a hang)
    given_seeds = seeds is not None
    seeds = seeds if seeds is not None else DEFAULT_SEEDS
    timing = fit_time(imported.multiply_adds, _batch_of(imported), seeds,
                      batch_free=batch_size is None and imported.batch_chosen, seeds_free=not given_seeds,
                      device=device, budget=(limits or Limits()).simulation_seconds)
    if timing.batch != _batch_of(imported):
        imported = import_onnx(data, input_shapes=input_shapes, batch_size=timing.batch, limits=limits,
                               output=output, input_range=input_range, file_name=name, weights=weights)
    seeds = timing.seeds
    if timing.note is not None:
        imported.notes.append(timing.note)
    if progress is not None:
        progress(0.0, timing.start_line(name or imported.name or "the model"))
    first: tuple[torch.Tensor | None, str | None] | None = None  # (the one forward both questions read)
    if batch_size is None and any(len(i.shape) > 0 and i.shape[0] != 1 for i in imported.inputs):
        first = _first_forward(imported.module, imported.inputs)
        failure = first[1]
        single = _runs_at_one(data, failure, input_shapes, limits, output, input_range)
        if single is not None:
            first = None
            # the dynamic batch the check filled does not run, batch 1 does: the graph fixes its batch
            # at 1 inside (ML-Agents' memory LSTM passes `memories` [batch, 1, n] as the LSTM's initial
            # state [1, batch, n], onnxsweep17 h09): simulated at the batch it runs at, not refused
            imported = single
            imported.notes.append(f"the graph does not run at the default batch of {DEFAULT_BATCH} ({failure}) "
                                  "but does at 1, the batch it fixes inside: simulated at batch 1 "
                                  "(--batch-size 1 says so)")
    from_logits = True
    # one forward serves both questions (none for a loss given that is not the cross-entropy)
    out = ((first[0] if first is not None else _first_output(imported.module, imported.inputs))
           if loss in (None, "cross_entropy") else None)
    # a sigmoid per class under the cross-entropy the user gave (nn.CrossEntropyLoss on the sigmoid's
    # outputs, as the file was trained): the model's own pairing, judged as a live module's; without
    # --loss only a note explained it, and with it nothing was said (onnxsweep15 u01)
    # A tanh or hardtanh (any bounded ending, graph.BOUNDED_ENDINGS) is the same: its logits lie in
    # [-1, 1], a floor of ln(1 + (k - 1)/e^2), which only a spec's check said (onnxsweep26 audio_tanh_out)
    ending = output_activation(imported.module)
    file_squash = (ending if loss == "cross_entropy" and out is not None and out.dim() > 1 and out.shape[-1] > 1
                   and ending in BOUNDED_ENDINGS else None)
    multi_label = 0
    implied_sigmoid = False
    if loss is None and imported.sampled_means:
        # an action sampled around a mean, the loss taken at the mean: a Gaussian policy's
        # log-likelihood gradient there is (a - mu) / sigma^2, a squared error's (onnxsweep15)
        loss = "mse"
        imported.notes.append("the mean is checked under mse, the form of a Gaussian policy's log-likelihood "
                              "gradient at its mean ((a - mu) / sigma^2); give --loss to choose another")
    told = loss is not None
    if loss == BINARY and output_activation(imported.module) == "sigmoid":
        # binary cross-entropy given for a file ending in its sigmoid: taken on the logits before it,
        # as the implied one is (not a second sigmoid over its probabilities)
        from_logits, implied_sigmoid = False, True
    if loss is None:
        loss, from_logits = implied_loss(imported.module, imported.inputs, out)
        # the sigmoid head implied (a binary classifier, a multi-label head): the binary
        # cross-entropy of the logits before it, as it is trained (graph.head_logits), not of its
        # clipped probabilities, which blamed the user for the check's own choice (onnxsweep10)
        implied_sigmoid = loss == BINARY and not from_logits
        if loss == BINARY and out is not None and out.dim() > 1 and out.shape[-1] > 1:
            # each sample's outputs, every axis after the batch's (onnxsweep25: a decoder's 1x28x28
            # image was said as "a sigmoid over 28 outputs", one axis)
            multi_label = int(math.prod(out.shape[1:]))
    # an inference file's final softmax (over classes) is its exporter's: the cross-entropy it was
    # trained with took the logits before it, which the simulation takes too (graph.head_logits).
    # Through the softmax and a second one inside the loss every gradient shrank ~9x (onnxsweep2);
    # on its clipped probabilities trained logits left part of the batch no gradient, blamed on the
    # user as output_loss_mismatch for a loss the check chose (onnxsweep10)
    inference_softmax = (loss == "cross_entropy" and out is not None and softmax_over_last(out)
                         and out.shape[-1] > 1)
    class_axis = -1
    loss_note: str | None = None
    if loss == "cross_entropy" and out is not None and out.dim() > 2 and not inference_softmax:
        # an output of more than [batch, k]: the axis its classes lie on, and, where the loss was
        # not told, a note saying it was assumed (onnxsweep22: a [batch, 30, 5] forecaster and a
        # [N, 1, 28, 28] decoder read "loss cross_entropy", its axis the image's width, unsaid)
        class_axis = output_class_axis(imported.module)
        if not told:
            loss, loss_note = _implied_map_loss(list(out.shape), class_axis)
            if loss != "cross_entropy":
                class_axis = -1
    if (not told and loss == "cross_entropy" and loss_note is None and out is not None and out.dim() == 2
            and out.shape[-1] > 1 and not inference_softmax
            and not _softmax_reads(imported.graph, imported.module.output_names[0])):
        # the cross-entropy the rule implies for raw scores, said (onnxsweep23: an rl_games actor's 12
        # continuous action means, and a VAE's latent mean named by --loss-at, were scored as classes
        # unsaid): nothing in the graph makes them probabilities, so they may be values
        loss_note = (f"loss cross_entropy, implied: the output's {int(out.shape[-1])} values are read as class "
                     "scores (no softmax in the graph says so); give --loss mse if they are values (a "
                     "regression, continuous actions, a latent)")

    if (not told and loss == "mse" and loss_note is None and out is not None and out.dim() >= 1
            and int(math.prod(out.shape[1:])) == 1 and output_activation(imported.module) is None
            and "logit" in imported.module.output_names[0].lower()):
        # one unit named a logit implies mse by its shape, but the name says a binary classifier's
        # log-odds, trained with binary cross-entropy on logits (onnxsweep26 genomic: `logit`, unsaid)
        loss_note = (f"loss mse, implied for one linear output; it is named {imported.module.output_names[0]!r}, "
                     "the log-odds of a binary classifier, trained with binary cross-entropy on logits "
                     "(nn.BCEWithLogitsLoss): give --loss binary_cross_entropy to check it so")

    # stored weights that are an init's draw (an architecture exported before training, onnxsweep24's
    # VGG16 and deep sigmoid MLP) are an initialisation, not a trained checkpoint: its remedies are
    # fixes to apply now, not advice for training again that "would discard its training"
    fresh = fresh_init(imported.module) if weights == "as_given" else None
    if fresh is not None:
        imported.notes.append(fresh_note(fresh))

    def reinit(net: nn.Module, seed: int) -> None:
        assert isinstance(net, OnnxModule)
        net.reinitialise()

    def names(net: nn.Module) -> dict[nn.Module, tuple[str, str]]:
        assert isinstance(net, OnnxModule)
        return net.module_names()

    run = GraphRun(imported.module, imported.inputs, loss, seeds,
                   reinit if weights == "reinitialise" else None, names, optimizer=optimizer_spec(optimizer),
                   from_logits=from_logits, inference_head=inference_softmax or implied_sigmoid,
                   recurrences=imported.recurrences, cell_gates=imported.cell_gates,
                   file_squash=file_squash, class_axis=class_axis,
                   checkpoint=weights != "reinitialise" and fresh is None, loss_implied=not told,
                   # the loss's softmax guessed too: nothing in the graph makes these outputs
                   # probabilities (onnxsweep30 dogfight_ace: clipped actions and a shoot logit, their
                   # logits' size a warning under a cross-entropy nobody gave)
                   squash_implied=(not told and loss in PROBABILITY_LOSSES and not inference_softmax
                                   and not implied_sigmoid and not _softmax_reads(
                                       imported.graph, imported.module.output_names[0])))
    try:
        doc = diagnose(run, name=name or imported.name, verify=verify, device=device, thresholds=thresholds,
                       parameters=imported.parameters, activation_bytes=imported.activation_bytes,
                       progress=progress)
        # a Clip on the output path passes no gradient for what it clips, whatever the loss (onnxsweep30
        # dogfight_ace: 85% of two clipped actions beyond their bounds, unsaid): each clipped head's share
        clipped = _clipped_output_finding(
            clipped_heads(imported.module, imported.inputs, seeds, reinitialise=weights == "reinitialise"),
            loss, thresholds or Thresholds())
        judged = {"clipped_output_fraction", "unreachable_loss_fraction", "unreachable_target_fraction"}
        if clipped is not None and not any(f.code == "output_loss_mismatch" and f.evidence.metric in judged
                                           for f in doc.findings):
            # (where the output's bounded ending is judged already: a Clip to [-1, 1] read as a
            # hardtanh under cross-entropy, a ReLU6 under mse, that finding says it)
            doc.findings.append(clipped)
            # worst first, as the summary line reads them (stable: the others keep their order)
            doc.findings.sort(key=lambda f: -SEVERITY_RANK[f.severity])
            doc.status = status_of(doc.findings)
            doc.summary = summary_line(doc.status, doc.findings, layers_with_weights(doc.layers))
        if inference_softmax or multi_label:
            doc.findings.append(_inference_softmax_note(run, int(out.shape[-1]), keras_producer(imported.producer))
                                if inference_softmax and out is not None
                                else _multi_label_note(run, multi_label, list(out.shape[1:]) if out is not None else []))
            doc.summary = summary_line(doc.status, doc.findings, layers_with_weights(doc.layers))
        if loss_note is not None:
            imported.notes.append(loss_note)
            if doc.simulation is not None:
                doc.simulation.notes.append(loss_note)
        if imported.notes:
            doc.summary = with_note(doc.summary, "; ".join(imported.notes))
        if keras_producer(imported.producer):
            # a Keras model converted by tf2onnx, keras2onnx or OnnxMLTools: remedies' code in Keras,
            # as the Keras door writes it (onnxsweep29 dtln2_fp16 was given torch's nn.init loop)
            from gradhealth.core.keras_snippets import in_keras

            in_keras(doc)
        return doc if weights == "reinitialise" else on_synthetic_inputs(doc, input_range)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as exc:  # the file's own graph does not compute on these inputs: a 422
        if "more than 1 value per channel" in str(exc):
            # a BatchNorm in training mode (a training-mode export) needs 2 samples to normalise over
            hint = ("; a batch norm in training mode needs at least 2 samples: give a batch size of 2 or more "
                    "(--batch-size 16; batch_size over HTTP)")
        elif batch_size not in (None, 1) and _runs_at_one(data, str(exc), input_shapes, limits, output,
                                                           input_range) is not None:
            hint = "; the graph runs at batch 1 only (it fixes its batch inside): give --batch-size 1 (batch_size over HTTP)"
        elif _overridden(data, input_shapes):
            # a size the file fixes, replaced by --input-shape (onnxsweep23: 3198 tokens where a stored
            # positional table holds 5000): said as such, not left as torch's raw shape error
            hint = (f"; --input-shape replaced size(s) the file fixes ({_overridden(data, input_shapes)}), and the "
                    "graph computes with those sizes inside (a stored table of that length): keep the file's "
                    "sizes, or export the model at the size you want")
        elif batch_size is not None:
            hint = ("; the graph may fix its batch size (an exporter bakes the example's batch into "
                    "shapes): leave batch_size out, or export with a dynamic batch axis")
        else:
            hint = ""
        if re.search(r"size|shape", str(exc), re.IGNORECASE):
            # a size mismatch deep inside names a node, not the input: the inputs the file declares
            # as sums of other sizes (a KV-cache decoder's mask, past + sequence) said (onnxsweep28 cappgpt)
            from gradhealth.analysis.importers.onnx_static import (
                chosen_sizes_hint,
                parse,
                sum_dims_note,
            )

            graph = parse(data).graph
            hint += sum_dims_note(graph, input_shapes, batch_size)
            # an input whose dynamic first axis the check took as a batch, read by the failing node:
            # named, with the --input-shape that says its size (onnxsweep30 snake_1500)
            hint += chosen_sizes_hint(graph, str(exc), input_shapes, batch_size)
        raise ModelError(f"the model does not run on inputs of shapes "
                         f"{[list(i.shape) for i in imported.inputs]}: {exc}{hint}") from exc
