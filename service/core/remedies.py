"""One builder per remedy id: its wording, its defaults and its PyTorch snippet.

Both checks build remedies only through these functions, so a remedy id means the same change,
in the same words, with the same defaults, whether the architecture check proposed it (with a
JSON Patch to the spec) or the log check did (with parameters read from the run). Callers pass
what they know (which layers, a patch, a data-derived number); the words come from here.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gradhealth.core.catalog import REMEDIES
from gradhealth.core.document import Remedy
from gradhealth.core.words import first_few

#: The default learning-rate cut: about half a decade (1/sqrt(10)), the step of the usual
#: learning-rate grid (1e-3, 3e-4, 1e-4). Large enough to matter, small enough not to stall
#: training; a check that can derive a factor from the data passes its own.
LOWER_LR_FACTOR = 0.3
#: The update-to-weight ratio a ``lower_learning_rate`` for ``large_updates`` aims the worst layer
#: at, in both checks: the upper edge of the healthy range around 1e-3, so the rate is cut no
#: more than the finding calls for (the ratio is proportional to the rate for SGD and Adam alike).
UPDATE_RATIO_TARGET = 1e-2
#: The update-to-weight ratio a ``raise_learning_rate`` for ``small_updates`` aims the fastest
#: layer at, in both checks: the lower edge of the healthy range around 1e-3, so the rate is raised
#: no more than the finding calls for.
UPDATE_RATIO_FLOOR_TARGET = 1e-4
#: The default learning-rate raise when a loss never moved: the same grid step upwards.
RAISE_LR_FACTOR = 3.0
#: AdamW's usual weight decay.
WEIGHT_DECAY = 0.01
#: A warm-up shorter than this ramps the rate up within a handful of updates, i.e. does nothing a
#: lower rate would not (``min(1, (step + 1) / 1)`` is 1 from the first step): none is proposed.
MIN_WARMUP_STEPS = 10

#: Training-time snippets change the user's optimizer through its parameter groups, so whatever
#: optimizer they use (SGD, Adam, AdamW, ...) is kept; neither check knows which one it is.
_KEEP_OPTIMIZER = "for group in optimizer.param_groups:  # your optimizer, kept\n"

#: The layers the init and bias snippets loop over: every kind the module check's verification
#: re-initialises (its ``_WEIGHT_LAYERS``), transposed and 3-D convolutions too, so that the snippet
#: pasted as given changes the layer the verification changed (modsweep40 h02: a ConvTranspose2d)
INIT_LAYER_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
_INIT_LAYERS = ("(" + ", ".join(f"nn.{t}" for t in INIT_LAYER_TYPES[:4]) + ",\n" + " " * 22
                + ", ".join(f"nn.{t}" for t in INIT_LAYER_TYPES[4:]) + ")")
#: what a Kaiming snippet says of its fan: torch's (mode fan_in: weight[0].numel()), which for a
#: transposed convolution is its out_channels x kernel, as the verification's draw (the same call)
_TORCH_FAN = "  # torch's fan-in (ConvTranspose: out_channels x kernel)"

SNIPPETS: dict[str, str] = {
    "he_init": (
        "for m in model.modules():\n"
        f"    if isinstance(m, {_INIT_LAYERS}):\n"
        '        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")' + _TORCH_FAN + "\n"
        "        if m.bias is not None:\n            nn.init.zeros_(m.bias)"
    ),
    "zero_bias": (
        "for m in model.modules():\n"
        f"    if isinstance(m, {_INIT_LAYERS}) and m.bias is not None:\n"
        "        nn.init.zeros_(m.bias)"
    ),
    "normalise_inputs": (
        "# in the data pipeline, from the training set's own statistics (images: x = x / 255 first)\n"
        "mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-8)\n"
        "x = (x - mean) / std  # every split, with the training set's mean and std"
    ),
    "normalise_targets": (
        "# fit on standardised targets, from the training set's own statistics; invert at prediction\n"
        "y_mean, y_std = {mean}, {std}  # train_y.mean(), train_y.std()\n"
        "loss = loss_fn(model(x), (y - y_mean) / y_std)\n"
        "prediction = model(x) * y_std + y_mean  # back in the targets' units"
    ),
    "domain_guard": "{code}  # at {where}",
    "bounded_cell_activation": (
        "# Keras: the recurrent layer's own activation back to its default, tanh (GRU, SimpleRNN alike)\n"
        "layers.LSTM(units, activation=\"tanh\")  # not activation=\"relu\"\n"
        "# PyTorch: nn.LSTM and nn.GRU compute tanh; a plain RNN: nn.RNN(n_in, hidden, nonlinearity=\"tanh\")"
    ),
    "stable_decay": (
        "# |a| drawn in [r_min, r_max] (LRU: 0.9 to 0.999) and kept in (0, 1) by its parameterisation\n"
        "self.nu = nn.Parameter(torch.log(-torch.log(torch.empty(d).uniform_({r_min}, {r_max}))))\n"
        "a = torch.exp(-torch.exp(self.nu))  # in forward\n"
        "h = a * h + u_t"
    ),
    "xavier_init": (
        "for m in model.modules():\n"
        f"    if isinstance(m, {_INIT_LAYERS}):\n"
        "        nn.init.xavier_normal_(m.weight)\n"
        "        if m.bias is not None:\n            nn.init.zeros_(m.bias)"
    ),
    "lecun_init": (
        "for m in model.modules():\n"
        f"    if isinstance(m, {_INIT_LAYERS}):\n"
        "        # LeCun normal, for SELU: std 1/sqrt(fan-in), the fan-in torch's own inits use\n"
        "        # (weight[0].numel(): in_features; in_channels x kernel; a transposed conv's out_channels x kernel)\n"
        "        nn.init.normal_(m.weight, std=m.weight[0].numel() ** -0.5)\n"
        "        if m.bias is not None:\n            nn.init.zeros_(m.bias)"
    ),
    "orthogonal_init": (
        "for name, p in rnn.named_parameters():\n"
        '    if name.startswith("weight_hh"):\n'
        "        for block in p.data.chunk(n_gates, 0):  # 1 (rnn), 4 (lstm), 3 (gru)\n"
        "            nn.init.orthogonal_(block)"
    ),
    "relu_family_activation": (
        # runnable as pasted on the user's `model` (newuser13 #5: a template naming n_in and n_out
        # raised NameError, its Kaiming init a comment): swap the activation modules, then He init
        "last = list(model.modules())[-1]  # the output's own squashing (a sigmoid for 0/1 labels): kept\n"
        "for parent in list(model.modules()):  # one called in forward (torch.tanh(x)): swap it there\n"
        "    for name, child in list(parent.named_children()):\n"
        "        if isinstance(child, ({swapped})) and child is not last:\n"
        "            setattr(parent, name, nn.{act}())\n"
        "for m in model.modules():\n"
        "    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):\n"
        '        nn.init.kaiming_normal_(m.weight, nonlinearity="{nonlinearity}")\n'
        "        if m.bias is not None:\n            nn.init.zeros_(m.bias)"
    ),
    "residual_connections": (
        "class Residual(nn.Module):\n    def __init__(self, f, scale=1.0):\n"
        "        super().__init__(); self.f, self.scale = f, scale\n"
        "    def forward(self, x):\n        return x + self.scale * self.f(x)"
    ),
    "scaled_residual": (
        "return x + self.f(x) / math.sqrt(num_blocks)  # keeps Var(h) bounded with depth"
    ),
    "batch_norm": ("nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), activation)\n"
                   "# after a convolution: nn.Conv2d(c_in, c_out, k), nn.BatchNorm2d(c_out), activation"),
    "layer_norm": ("nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), activation)\n"
                   "# after a convolution, over its channels at each position (ConvNeXt's, Keras'):\n"
                   "# z = norm(conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2) with norm = nn.LayerNorm(c_out)"),
    "pre_layer_norm": (
        "nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, norm_first=True)\n"
        "# and a final nn.LayerNorm(d_model) after the stack"
    ),
    "gated_recurrent_cell": (
        "lstm = nn.LSTM(n_in, hidden, batch_first=True)\nH = hidden\n"
        'for name, b in lstm.named_parameters():\n    if name.startswith("bias_ih"):\n'
        '        {bias_code}\n    elif name.startswith("bias_hh"):\n'
        "        b.data[:2 * H] = 0.0"
    ),
    "gradient_clipping": (
        "loss.backward()\n"
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={max_norm})\n"
        "optimizer.step()"
    ),
    "lower_learning_rate": _KEEP_OPTIMIZER + '    group["lr"] = group["lr"] * {factor}{warmup}',
    "raise_learning_rate": _KEEP_OPTIMIZER + '    group["lr"] = group["lr"] * {factor}',
    "positive_learning_rate": (
        _KEEP_OPTIMIZER + '    group["lr"] = {rate}\n'
        "# Keras: model.compile(optimizer=keras.optimizers.{optimizer}(learning_rate={rate}), ...)"
    ),
    "check_updates": (
        "frozen = [n for n, p in model.named_parameters() if not p.requires_grad]\n"
        "stepped = set(id(p) for g in optimizer.param_groups for p in g[\"params\"])\n"
        "missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in stepped]\n"
        "print(\"frozen:\", frozen, \"not in the optimizer:\", missing,\n"
        "      \"lr:\", [g[\"lr\"] for g in optimizer.param_groups])  # each epoch: is it 0?\n"
        "# every batch: loss.backward(); optimizer.step(); optimizer.zero_grad(); then scheduler.step()"
    ),
    "check_loss_graph": (
        "loss = criterion(model(x), y)  # your forward and loss, on one batch\n"
        "print(\"requires_grad:\", loss.requires_grad, \"grad_fn:\", loss.grad_fn)  # False / None: detached\n"
        "loss.backward()\n"
        "print({n: None if p.grad is None else float(p.grad.abs().max())\n"
        "       for n, p in model.named_parameters()})  # None or 0.0 everywhere: no gradient reaches them\n"
        "# and two different batches must give two different losses"
    ),
    "check_data": (
        "for i, (x, y) in enumerate(loader):\n"
        "    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):\n"
        "        raise ValueError(\"batch %d: NaN/Inf in its inputs or targets\" % i)\n"
        "# the data finite? rerun up to step {step} with the operation named in the traceback:\n"
        "torch.autograd.set_detect_anomaly(True)"
    ),
    "logits_loss": (
        "loss = nn.{torch_loss}()(model(x), y)  # {torch_comment}\n"
        "# Keras: model.compile(loss=keras.losses.{keras_loss}(from_logits=True), ...)"
    ),
    "output_activation": (
        "nn.Sequential(nn.Linear({n_in}, {n_out}), nn.{activation}())  # not {was}"
    ),
    "weight_decay": _KEEP_OPTIMIZER + '    group["weight_decay"] = {weight_decay}',
    "balance_classes": (
        "counts = torch.bincount(train_labels, minlength=n_classes).float()\n"
        "weight = counts.sum() / (n_classes * counts.clamp(min=1))  # rarer classes weigh more\n"
        "criterion = nn.CrossEntropyLoss(weight=weight)\n"
        "# Keras: model.fit(..., class_weight=dict(enumerate(weight.tolist())))"
    ),
    "raise_kl_coefficient": (
        "# TRL: GRPOConfig / RLOOConfig / OnlineDPOConfig(beta=...), PPOConfig(kl_coef=...)\n"
        "config = GRPOConfig(..., beta=beta * {factor})  # beta > 0: with beta=0 no KL is penalised\n"
        "# verl: actor_rollout_ref.actor.use_kl_loss=True actor_rollout_ref.actor.kl_loss_coef=<x{factor}>\n"
        "# OpenRLHF: --init_kl_coef <x{factor}>"
    ),
    "keep_exploring": (
        "# policy gradient (PPO, A2C): an entropy bonus keeps the policy trying other actions\n"
        "loss = policy_loss + value_coef * value_loss - 0.01 * dist.entropy().mean()  # SB3: ent_coef=0.01\n"
        "# value-based (DQN): decay epsilon over half the run, never below a floor\n"
        "epsilon = max(0.05, 1.0 - step / (0.5 * total_steps))"
    ),
    "early_stopping": (
        "if val_loss < best - 1e-4:\n    best, bad_epochs = val_loss, 0\n"
        '    torch.save(model.state_dict(), "best.pt")\nelse:\n    bad_epochs += 1\n'
        "    if bad_epochs >= {patience}:\n        break  # restore best.pt"
    ),
}

#: The remedy id of each init scheme a check may propose.
INIT_REMEDY: dict[str, str] = {
    "kaiming_normal": "he_init",
    "xavier_normal": "xavier_init",
    "lecun_normal": "lecun_init",
}

Patch = Sequence[dict[str, Any]]


def snippet_number(value: Any) -> Any:
    """``value`` as a snippet shows it: a float (or NumPy float) as the shortest Python literal
    that gives it to 12 significant digits, so a product of two rates reads ``0.025``, not
    ``0.024999999999999998`` (newuser11 #6); anything else as it is."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        x = float(value)
        return repr(float(f"{x:.12g}")) if math.isfinite(x) else f'float("{x}")'
    return value


def make_remedy(rid: str, change: str, patch: Patch = (), **params: Any) -> Remedy:
    """The catalogue remedy ``rid`` with ``change`` in words, its snippet filled with ``params``.

    The builders below are the way in; this is the one place a :class:`Remedy` is made.
    """
    entry = REMEDIES[rid]
    shown = {k: snippet_number(v) for k, v in params.items()}
    snippet = SNIPPETS[rid].format(**shown) if params else SNIPPETS[rid]
    return Remedy(
        id=rid,
        title=entry.title,
        rationale=entry.description,
        change=change,
        snippet=snippet,
        patch=list(patch),
        params=params,
    )


# --- structural changes (the architecture check adds a JSON Patch; the log check cannot) ---------


def init(scheme: str, where: str | Sequence[str], patch: Patch = ()) -> Remedy:
    """Initialise ``where`` (words, or the layers' names: the first few are named, kerassweep28's
    he_init named all 39) with ``scheme`` (kaiming_normal, xavier_normal or lecun_normal)."""
    return make_remedy(INIT_REMEDY[scheme], f"initialise {_layers(where)} with {scheme}", patch)


#: The torch call that draws each init scheme, for a snippet that re-initialises named layers.
_TORCH_DRAW = {"kaiming_normal": 'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")',
               "xavier_normal": "nn.init.xavier_normal_(m.weight)",
               "lecun_normal": "nn.init.normal_(m.weight, 0.0, m.weight[0].numel() ** -0.5)"}


def reinit_collapsed(schemes: Sequence[tuple[str, str]]) -> Remedy:
    """Re-initialise only the layers whose stored weights collapsed to (near) zero in training,
    ``schemes`` (each layer's name and the init its activation takes, in forward order), their
    biases at 0 and every other trained weight kept; then train on with less of what drove them
    there (weight decay, an L1 or activity penalty, too high a learning rate). The remedy is the
    init id of the first layer's scheme, with ``params["collapsed_layers"]`` naming them all: a
    change to this checkpoint, not advice for training again from scratch."""
    names = [name for name, _ in schemes]
    by_scheme: dict[str, list[str]] = {}
    for name, scheme in schemes:
        by_scheme.setdefault(scheme, []).append(name)
    change = ("re-initialise " + " and ".join(f"{_layers(ns)} with {scheme}" for scheme, ns in by_scheme.items())
              + f", {'its' if len(names) == 1 else 'their'} biases at 0, keeping every other trained weight, and "
              "train on with a lower weight decay (or L1/activity penalty) and learning rate than drove "
              f"{'it' if len(names) == 1 else 'them'} to zero: a layer whose weights collapsed outputs its bias "
              "whatever its input, which no activation swap changes")
    remedy = make_remedy(INIT_REMEDY[schemes[0][1]], change, collapsed_layers=names,
                         schemes={name: scheme for name, scheme in schemes})
    lines = ["# re-initialise only the layers whose weights collapsed; every other trained weight is kept"]
    for scheme, ns in by_scheme.items():
        lines += [f"for name in {ns!r}:", "    m = model.get_submodule(name)", f"    {_TORCH_DRAW[scheme]}",
                  "    if m.bias is not None:", "        nn.init.zeros_(m.bias)"]
    lines.append("# then train on with a lower weight_decay (or L1/activity penalty) and learning rate")
    remedy.snippet = "\n".join(lines)
    return remedy


def zero_bias(where: str, patch: Patch = ()) -> Remedy:
    """Initialise the biases of ``where`` to zero."""
    return make_remedy("zero_bias", f"initialise the biases of {where} to zero", patch)


def normalise_inputs(where: str, rms: float, patch: Patch = ()) -> Remedy:
    """Standardise the inputs: ``where``, the first layer, reads inputs of root mean square ``rms``,
    far from the unit scale its init assumes."""
    return make_remedy("normalise_inputs", f"standardise the inputs to zero mean and unit variance (images: divide "
                       f"0-255 pixels by 255 first): {where} reads inputs of root mean square {rms:.3g}, and an init "
                       "that keeps a unit-variance signal's scale multiplies that one by the same", patch)


#: Remedies whose change re-draws or resets weights the network has: a new initialisation (the
#: Linear/Conv layers', the recurrent matrices'), an activation swap with its re-initialisation, a
#: gate's bias (chrono), biases set to 0. On a trained checkpoint (a model file's stored weights)
#: each is advice for training the architecture again from scratch: applied to the checkpoint it
#: would discard the training, and its re-simulation measured a network that was never trained
#: (kerassweep24: a trained char-RNN's orthogonal init "FIXED 1.91e+06 -> 6.03e-05").
REDRAWS_WEIGHTS = frozenset({"he_init", "xavier_init", "lecun_init", "orthogonal_init", "relu_family_activation",
                             "gated_recurrent_cell", "zero_bias"})

#: Remedies that change the training configuration (the optimizer, its learning rate and schedule, its
#: clipping or weight decay), not the model's code: where no re-simulation measures one, it is a
#: training-time change (``unverified="training_time"``), never "a change to the model's code"
#: (modsweep48: a Post-LN warning's lower rate + warm-up read as a model rewrite).
TRAINING_CONFIG = frozenset({"lower_learning_rate", "raise_learning_rate", "positive_learning_rate",
                             "gradient_clipping", "weight_decay"})


def unmeasured_reason(remedy_id: str) -> Literal["training_time", "not_simulable"]:
    """Why a remedy that no change on a copy measures carries no measurement, by its kind: a change
    to the training configuration (:data:`TRAINING_CONFIG`) is ``training_time``; any other (a new
    structure, a norm moved in hand-written code) ``not_simulable``."""
    return "training_time" if remedy_id in TRAINING_CONFIG else "not_simulable"


#: What the re-simulation of each of :data:`REDRAWS_WEIGHTS` measured, in words.
_FRESH_SUBJECT = {
    "orthogonal_init": "this architecture with its recurrent weights freshly drawn orthogonal",
    "relu_family_activation": "a freshly initialised network of this architecture with the activation swapped",
    "gated_recurrent_cell": "this architecture with its gates freshly initialised",
    "zero_bias": "this architecture with its biases reset to 0",
}


def for_retraining(remedy: Remedy) -> Remedy:
    """``remedy`` (one of :data:`REDRAWS_WEIGHTS`) as advice for training the architecture again
    from scratch, for a check of a trained checkpoint's weights: its change says so, and its
    verification, which measured weights the change drew afresh, is framed as that network's, not
    as a fix of this checkpoint (``verified.fresh_weights``)."""
    remedy.for_retraining = True
    remedy.change = (f"when you train this architecture again from scratch, {remedy.change} (re-initialising "
                     "these stored weights would discard whatever training they hold)")
    v = remedy.verified
    if v is not None:
        v.fresh_weights = True
        subject = _FRESH_SUBJECT.get(remedy.id, "a freshly initialised network of this architecture")
        after = "nothing the metric measures" if v.after is None else f"{v.metric} {v.after:.3g}"
        before = "not measured" if v.before is None else f"{v.before:.3g}"
        verdict = ("nothing left that the metric measures, so not judged healthy" if v.not_measured
                   else "healthy on it" if v.fixed else "not healthy on it either")
        framed = (f"{subject} measures {after} (this checkpoint: {before}), {verdict}: what training again from "
                  "scratch would start from, not a fix of this checkpoint")
        v.note = f"{framed}; {v.note}" if v.note else framed
    return remedy


def normalise_targets(mean: float, std: float) -> Remedy:
    """Fit the regression on standardised targets, (y - mean) / std, inverted at prediction: the
    targets given have mean ``mean`` and standard deviation ``std``, far from the unit scale."""
    return make_remedy("normalise_targets", f"standardise the regression targets, (y - {mean:.4g}) / {std:.4g}, and "
                       "invert at prediction (y = output * std + mean): targets of mean "
                       f"{mean:.3g} and standard deviation {std:.3g} scale the loss's gradient, and every "
                       "update, by as much", mean=float(f"{mean:.6g}"), std=float(f"{std:.6g}"))


#: ``normalise_inputs`` for a regression whose training loss says its targets are unscaled: the
#: targets first (the loss is their error), the inputs with them
_TARGETS_SNIPPET = (
    "# in the data pipeline, from the training set's own statistics\n"
    "y_mean, y_std = train_y.mean(dim=0), train_y.std(dim=0).clamp_min(1e-8)\n"
    "y = (y - y_mean) / y_std  # predictions * y_std + y_mean are back in the targets' units\n"
    "mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-8)\n"
    "x = (x - mean) / std  # the inputs too, every split with the training set's mean and std"
)


def standardise_targets_and_inputs(metric: str, level: float, where: str) -> Remedy:
    """``normalise_inputs`` for a training loss ``metric`` whose early level ``level`` (at ``where``)
    is a squared error of targets far from unit scale: its square root is the typical error, i.e.
    the targets' scale where the untrained model predicts about 0. The log sees neither the targets
    nor the inputs, so both are named, the targets first (:func:`normalise_targets` is the module
    check's, which sees the targets and verifies the change)."""
    rms = math.sqrt(level)
    remedy = make_remedy(
        "normalise_inputs",
        f"standardise the regression targets, and the inputs, to zero mean and unit variance (the training "
        f"set's mean and standard deviation; undo it on the predictions): {metric} starts at {level:.3g} ({where}), "
        f"which as a mean squared error is an error of about {rms:.3g} (its square root) per target: targets "
        f"(or inputs) on a scale of about {rms:.2g} rather than about 1, and a gradient about {rms:.2g} times "
        f"that of standardised targets (a lower learning rate only shrinks the steps with it)",
        loss_name=metric, loss_level=level, rms_error=rms)
    remedy.snippet = _TARGETS_SNIPPET
    return remedy


def bounded_cell_activation(where: str, activation: str, patch: Patch = ()) -> Remedy:
    """Make the recurrent layers ``where`` compute a bounded activation (tanh) where they compute
    the unbounded ``activation`` (relu, elu, linear...): their state no longer builds up over the steps."""
    return make_remedy("bounded_cell_activation",
                       f"use tanh as the cell activation of {where} instead of {activation} (Keras' LSTM and GRU "
                       "default, PyTorch's): it keeps each step's output within [-1, 1], so the state the layer "
                       "carries cannot build up over the sequence", patch, activation=activation)


#: Mamba's initial step sizes: delta = softplus(dt_proj(x)) starts log-uniform in [DT_MIN, DT_MAX]
#: (Gu and Dao 2023's dt_min and dt_max), through dt_proj's bias.
DT_MIN, DT_MAX = 0.001, 0.1

_SELECTIVE_SNIPPET = (
    "# Mamba's parameterisation: A = -exp(A_log) < 0, so the decay exp(delta * A) is in (0, 1) for any delta > 0\n"
    "A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)  # S4D-real init: A_n = -n\n"
    "self.A_log = nn.Parameter(torch.log(A))\n"
    "# delta starts log-uniform in [{dt_min}, {dt_max}]: dt_proj's bias is the inverse softplus of that draw\n"
    "dt = torch.exp(torch.rand(d_inner) * (math.log({dt_max}) - math.log({dt_min})) + math.log({dt_min}))\n"
    "with torch.no_grad():\n"
    "    self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))\n"
    "# in forward\n"
    "A = -torch.exp(self.A_log)\n"
    "delta = F.softplus(self.dt_proj(x))  # > 0\n"
    "dA = torch.exp(delta.unsqueeze(-1) * A)  # in (0, 1)\n"
    "h = dA[:, t] * h + dBx[:, t]"
)


def stable_decay(where: str, vanishing: bool, *, selective: bool = False) -> Remedy:
    """The per-channel decay ``where`` of an element-wise recurrence (h_t = a * h_{t-1} + u_t)
    drawn near 1 and kept below it: dL/dh_t changes by |a| a step, so |a| decides the memory.
    ``selective``: the decay is a selective scan's, a_t = exp(delta_t * A) with a step size delta_t
    computed from the input (Mamba's), said in Mamba's own parameterisation, A = -exp(A_log)."""
    if selective:
        change = (f"draw the selective scan's A ({where}) as Mamba does, A = -exp(A_log) with A_log = log(1 .. "
                  f"d_state) (S4D-real), and its step size delta = softplus(dt_proj(x)) starting in [{DT_MIN:g}, "
                  f"{DT_MAX:g}] through dt_proj's bias: the decay exp(delta * A) then starts near 1; it now forgets "
                  "by exp(delta * A) per step" if vanishing else
                  f"parameterise the selective scan's A ({where}) as Mamba does, A = -exp(A_log), so that A < 0 and "
                  "the decay a = exp(delta * A) stays in (0, 1), |a| < 1, for every step size delta = softplus(...) > 0: with "
                  "A > 0 the state and its gradient grow by exp(delta * A) per step")
        remedy = make_remedy("stable_decay", change)  # (the catalogue's snippet is LRU's: replaced)
        remedy.params = {"form": "selective", "dt_min": DT_MIN, "dt_max": DT_MAX}
        remedy.snippet = _SELECTIVE_SNIPPET.format(dt_min=DT_MIN, dt_max=DT_MAX)
        return remedy
    change = (f"draw the decay {where} with |a| near 1 (0.9 to 0.999, the LRU's ring init): it now forgets "
              "by |a| per step" if vanishing else
              f"parameterise the decay {where} as a = exp(-exp(nu)) (or a sigmoid) so that |a| < 1: above 1 the "
              "state and its gradient grow by |a| per step")
    return make_remedy("stable_decay", change, r_min=0.9, r_max=0.999)


def domain_guard(op: str, where: str | None, code: str, note: str = "") -> Remedy:
    """Guard the input of ``op`` (called at ``where``; None: wherever the graph calls it) with an eps,
    as ``code`` does (``note``: what that assumes): the operation is undefined or infinite at the
    edge of its domain."""
    at = f"at {where}" if where else "wherever the network calls it"
    change = f"keep the input of {op} in its domain {at}: {code}" + (f" ({note})" if note else "")
    return make_remedy("domain_guard", change, code=code, where=where or f"every {op}", op=op)


def relu_family_activation(where: str, activation: str = "relu", patch: Patch = (), *,
                           swapped: Sequence[str] | None = None) -> Remedy:
    """Use ``activation`` (relu, or leaky_relu where units die) with He init in ``where``.
    ``swapped``: the activations (canonical names) the change replaces, which the snippet's module
    swap names (a hidden softmax: ``("softmax",)``, which the default list of saturating modules
    would not touch, kerassweep26); by default the saturating ones for relu, relu for leaky_relu."""
    r = make_remedy(
        "relu_family_activation", f"use {activation} with kaiming_normal init in {where}", patch
    )
    relu = activation == "relu"
    names = list(swapped) if swapped is not None else (list(SATURATING_SWAPPED) if relu else ["relu"])
    modules = ", ".join(dict.fromkeys(OWN_ACTIVATION_MODULES.get(a, f"nn.{TORCH_ACTIVATION_MODULES.get(a, a)}")
                                      for a in names))
    r.snippet = (r.snippet.replace("{act}", "ReLU" if relu else "LeakyReLU")
                 .replace("{swapped}", modules + ("," if len(names) == 1 else ""))
                 .replace("{nonlinearity}", "relu" if relu else "leaky_relu"))
    return r


#: The torch module of each activation a ``relu_family_activation`` snippet may swap.
TORCH_ACTIVATION_MODULES = {"sigmoid": "Sigmoid", "tanh": "Tanh", "softsign": "Softsign", "hardtanh": "Hardtanh",
                            "hardsigmoid": "Hardsigmoid", "softplus": "Softplus", "softmax": "Softmax",
                            "log_softmax": "LogSoftmax", "relu": "ReLU",
                            # a spec's names of torch's Hardsigmoid (Keras 3's hard_sigmoid) and Mish
                            "hard_sigmoid": "Hardsigmoid", "mish": "Mish"}
#: The activations torch has no module of, by the class a model defines for them (a spec's exponential
#: is ``gradhealth.analysis.model.Exponential``, exp(x), Keras 2's hard sigmoid ``HardSigmoidKeras2``,
#: clip(0.2 x + 0.5, 0, 1); a torch transcription has its own of that name).
OWN_ACTIVATION_MODULES = {"exponential": "Exponential", "hard_sigmoid_keras2": "HardSigmoidKeras2"}
#: The saturating activations a ``relu_family_activation`` snippet swaps for ReLU by default.
SATURATING_SWAPPED = ("sigmoid", "tanh", "softsign", "hardtanh", "hardsigmoid", "softplus")


#: How many layers a remedy's change names before it counts the rest.
NAMED_LAYERS = 4


def _layers(where: str | Sequence[str]) -> str:
    """``where`` as a remedy names it: words as they are, a list of layers by its first
    :data:`NAMED_LAYERS` and how many more (onnxsweep24: a batch_norm change named all 100 layers
    of a deep MLP on one 1,475-character line)."""
    return where if isinstance(where, str) else first_few(list(where), NAMED_LAYERS)


def normalisation(kind: str, where: str | Sequence[str], patch: Patch = ()) -> Remedy:
    """Normalise the pre-activations of ``where`` (words, or the layers' names) with ``kind``
    (batchnorm or layernorm)."""
    rid = "batch_norm" if kind == "batchnorm" else "layer_norm"
    return make_remedy(rid, f"normalise the pre-activations of {_layers(where)} with {kind}", patch)


def residual_connections(where: str | Sequence[str], patch: Patch = (), *, resized: Sequence[str] = ()) -> Remedy:
    """Wrap ``where`` (words, or the layers' names) in skip connections. ``resized``: those of
    them whose output has another channel or feature count than their input, where an identity
    skip x + f(x) does not add up: x needs a projection to f(x)'s width."""
    change = f"wrap {_layers(where)} in skip connections x + f(x)"
    if resized:
        verb = "changes" if len(resized) == 1 else "change"
        change += (f"; {first_few(list(resized), NAMED_LAYERS)} {verb} the channel or feature count, where x and "
                   "f(x) differ in width and an identity skip does not add up: there the skip needs a projection "
                   "of x to f(x)'s width, proj(x) + f(x), with proj a 1x1 convolution (a Linear for features)")
    return make_remedy("residual_connections", change, patch)


def scaled_residual(where: str, patch: Patch = ()) -> Remedy:
    """Scale the residual branches of ``where`` by 1/sqrt(blocks)."""
    return make_remedy(
        "scaled_residual", f"scale the residual branches of {where} by 1/sqrt(blocks)", patch
    )


def logits_loss(loss: str, output: str, patch: Patch = (), *, squashed: str | None = None) -> Remedy:
    """Give ``loss`` the raw outputs of ``output`` as logits (from_logits=True). ``squashed``: the
    activation ``output`` ends in, which the loss on logits applies a second time: drop it there."""
    binary = loss == "binary_cross_entropy"
    keras = "BinaryCrossentropy" if binary else "CategoricalCrossentropy"
    # the torch loss of the same kind: a one-unit binary model's logit goes to BCEWithLogitsLoss, not
    # to the multi-class CrossEntropyLoss (peersweep20 dm57407973)
    torch_loss = "BCEWithLogitsLoss" if binary else "CrossEntropyLoss"
    comment = ("raw logits in (no sigmoid before it), y float 0/1 of the output's shape" if binary
               else "raw outputs in: no softmax before it")
    names = {"keras_loss": keras, "torch_loss": torch_loss, "torch_comment": comment}
    if squashed is not None:
        # a sigmoid's or softmax's outputs are probabilities a loss on them can take; a tanh's are not
        other = ("; or keep it and compile the loss with from_logits=False" if squashed in ("sigmoid", "softmax")
                 else "")
        return make_remedy(
            "logits_loss", f"drop the {squashed} from {output} (activation linear) so that {loss} on logits "
            f"(from_logits=True) gets unbounded logits and applies the only squash{other}", patch, **names)
    return make_remedy(
        "logits_loss", f"compute {loss} on logits (from_logits=True), keeping {output} linear; or end the "
        f"model with {'sigmoid' if binary else 'softmax'}", patch, **names)


def output_activation(where: str, activation: str = "sigmoid", patch: Patch = (), *,
                      on_logits: bool = False) -> Remedy:
    """Replace the softmax over a single unit at ``where`` with ``activation``. ``on_logits``: the
    binary cross-entropy takes logits and applies its own sigmoid (torch's ``nn.BCEWithLogitsLoss``,
    Keras' ``from_logits=True``): the softmax is dropped and the unit returns its logit, since a
    sigmoid in its place would be applied twice (peersweep19 d4ml086: the sigmoid, re-simulated
    under the loss on logits, read "not fixed")."""
    if on_logits:
        remedy = make_remedy(
            "output_activation", f"drop the softmax over one unit after {where} and return its logit: the binary "
            "cross-entropy here takes logits (nn.BCEWithLogitsLoss, Keras' from_logits=True) and applies the sigmoid "
            "itself, so a sigmoid in its place would be applied twice; or end with a sigmoid and train with a loss "
            "on probabilities (nn.BCELoss, from_logits=False)", patch,
            activation="Identity", was="nn.Softmax(dim=-1) over one unit", n_in="n_in", n_out="1")
        remedy.snippet += "; train with nn.BCEWithLogitsLoss on this logit"
        return remedy
    change = (f"remove the softmax over one unit after {where}: a regression's output takes no activation"
              if activation == "identity" else
              f"replace the softmax over one unit after {where} with {activation} (or no activation for a regression)")
    return make_remedy("output_activation", change, patch,
                       activation={"sigmoid": "Sigmoid", "identity": "Identity"}.get(activation, "Sigmoid"),
                       was="nn.Softmax(dim=-1) over one unit", n_in="n_in", n_out="1")


def sigmoid_multilabel_output(where: str, units: int, patch: Patch = (), *, n_in: int | None = None) -> Remedy:
    """A softmax over ``units`` outputs at ``where`` under binary cross-entropy: a sigmoid per unit
    for multi-label targets, or categorical cross-entropy over the softmax for one class a sample."""
    return make_remedy("output_activation", f"end {where} with a sigmoid per unit instead of the softmax over its "
                       f"{units} outputs, for multi-label targets (several 1s a row) under binary cross-entropy; or, "
                       "for one class a sample, keep the softmax and train with categorical cross-entropy",
                       patch, activation="Sigmoid", was="nn.Softmax(dim=-1) under binary cross-entropy",
                       n_in=str(n_in or "n_in"), n_out=str(units or "n_labels"))


def single_unit_binary_loss(where: str, patch: Patch = (), *, on_logits: bool = False) -> Remedy:
    """A classifier with one output unit under categorical cross-entropy (0 whatever the output):
    binary cross-entropy on it, through a sigmoid. ``on_logits``: the loss takes logits (a live
    module's, Keras' ``from_logits=True``): the snippet returns the logit for
    ``nn.BCEWithLogitsLoss``, which applies the sigmoid itself."""
    remedy = make_remedy("output_activation", f"train the single unit of {where} with binary cross-entropy (a sigmoid "
                         "on it, or binary_cross_entropy_with_logits on its logit): categorical cross-entropy over one "
                         "class is 0 whatever the output; or make the last layer one unit per class", patch,
                         activation="Identity" if on_logits else "Sigmoid",
                         was="categorical cross-entropy over one unit", n_in="n_in", n_out="1")
    if on_logits:
        remedy.snippet += "; train with nn.BCEWithLogitsLoss on this logit"
    return remedy


def linear_regression_output(where: str, patch: Patch = (), *, activation: str = "relu",
                             output_range: tuple[float, float] | None = None, logits: bool = False,
                             n_out: int | None = None, n_in: int | None = None) -> Remedy:
    """Drop the bounded ``activation`` (a ReLU by default) on the regression output ``where``: a
    ReLU's clipped outputs get no gradient; any bound (``output_range``) keeps targets beyond it out
    of reach. ``logits``: the output feeds a loss on logits (a classifier's ReLU on its scores)."""
    torch_name = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardtanh": "Hardtanh",
                  "softsign": "Softsign"}.get(activation, "Hardsigmoid")
    if logits:
        return make_remedy("output_activation", f"end {where} with no activation (raw logits) instead of the ReLU: "
                           "the loss applies its own softmax or sigmoid, and a logit must be free to go negative",
                           patch, activation="Identity", was="nn.ReLU() on the logits", n_in=str(n_in or "n_in"),
                           n_out=str(n_out or "n_classes"))
    if activation == "relu":
        why = ("a regression's outputs must move both ways; for targets that must stay positive, softplus keeps a "
               "gradient everywhere")
    else:
        low, high = output_range if output_range is not None else (math.nan, math.nan)
        why = (f"it holds every prediction in [{low:g}, {high:g}], out of reach of the targets outside it; or "
               "scale the targets into that range")
    label = "ReLU" if activation == "relu" else activation
    remedy = make_remedy("output_activation", f"end {where} with no activation (a linear output) instead of the "
                         f"{label}: {why}", patch, activation="Identity",
                         was=f"nn.{torch_name}() on a regression output", n_in=str(n_in or "n_in"),
                         n_out=str(n_out or "n_out"))
    # the catalogue's rationale is the single-unit softmax's: this finding is a regression's bound
    # (newuser10 #7: a sigmoid head under mse was told about "a softmax over a single unit")
    remedy.rationale = (
        "A regression's predictions must be free to reach the targets: a ReLU on the output clips every "
        "prediction below 0, and those get no gradient; a linear output (no activation) reaches any target"
        if activation == "relu" else
        f"A regression's predictions must be free to reach the targets: a {activation} on the output holds "
        "each one in its range, so targets outside it cannot be reached and the gradient fades near its "
        "bounds; a linear output (no activation) reaches any target, or scale the targets into the range")
    return remedy


def linear_distribution_output(where: str, patch: Patch = (), *, activation: str = "softmax",
                               n_out: int | None = None, n_in: int | None = None) -> Remedy:
    """Drop the softmax (or log_softmax) ``activation`` that makes the regression output ``where`` one
    distribution per row: its predictions reach only targets in that simplex (peersweep14: a softmax
    regression head, a softmax Q-value head)."""
    remedy = make_remedy("output_activation", f"end {where} with no activation (a linear output) instead of the "
                         f"{activation}: it makes each row one distribution, and regression targets (values, returns) lie "
                         "outside it; for Q-values a linear head, one unbounded value per action; for probability "
                         "targets, cross-entropy on the logits instead", patch, activation="Identity",
                         was=f"nn.{'LogSoftmax' if activation == 'log_softmax' else 'Softmax'}(dim=-1) on a "
                             "regression output", n_in=str(n_in or "n_in"), n_out=str(n_out or "n_out"))
    remedy.rationale = (
        f"A regression's predictions must be free to reach the targets: a {activation} on the output makes each "
        "row one probability distribution, so targets outside that simplex cannot be reached and the gradient "
        "fades as it saturates; a linear output (no activation) reaches any target")
    return remedy


def pre_layer_norm(where: str, patch: Patch = ()) -> Remedy:
    """Use Pre-LN Transformer layers in ``where``."""
    return make_remedy("pre_layer_norm", f"use Pre-LN (norm_first: true) in {where}", patch)


@dataclass(frozen=True)
class RecurrentModule:
    """A recurrent layer as the check knows it, to fill a recurrent remedy's snippet with (newuser17
    #1: templates naming ``n_in``, ``hidden``, ``T_max``, ``rnn`` and ``n_gates`` raised NameError
    when pasted, though the check knew every one of them).

    ``access``: Python that reaches the layer from the user's ``model`` (``model.rnn``), for a live
    module; None where the user's code has no such module (a spec's layer, an imported file's node):
    the snippet then builds the layer with its sizes, named in a comment by ``name``. ``cell``: rnn,
    lstm or gru; ``step``: a cell called once a step (``nn.RNNCell``), not a whole layer; ``square``:
    no torch recurrent module but a square weight multiplied each step (an ``nn.Linear`` called in a
    loop), whose ``access`` is that weight's."""

    name: str
    cell: str
    n_in: int
    hidden: int
    access: str | None = None
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = True
    step: bool = False
    square: bool = False

    @property
    def gates(self) -> int:
        """The gate blocks stacked in each ``weight_hh``: 1 (rnn), 4 (lstm), 3 (gru)."""
        return {"lstm": 4, "gru": 3}.get(self.cell, 1)

    def construct(self, cell: str | None = None) -> str:
        """The torch constructor of this layer (as ``cell``, when given), with its sizes."""
        kind = cell or self.cell
        cls = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind] + ("Cell" if self.step else "")
        args = [str(self.n_in), str(self.hidden)]
        if not self.step:
            if self.num_layers != 1:
                args.append(f"num_layers={self.num_layers}")
            if self.bidirectional:
                args.append("bidirectional=True")
            args.append(f"batch_first={self.batch_first}")
        return f"nn.{cls}({', '.join(args)})"


def _reach(layer: RecurrentModule, variable: str, cell: str | None = None) -> tuple[list[str], str]:
    """(lines that bring ``layer`` into reach, the name to use): the user's own module where the
    code has one; else the layer built with its sizes into ``variable``."""
    if layer.access is not None:
        return [], layer.access
    return [f"{variable} = {layer.construct(cell)}  # {layer.name}, as your code builds it"], variable


def orthogonal_init(where: str, patch: Patch = (), *, layers: Sequence[RecurrentModule] = ()) -> Remedy:
    """Initialise the recurrent weights of ``where`` orthogonally. ``layers``: those layers as the
    check knows them, whose names and sizes fill the snippet (else it is the generic template)."""
    remedy = make_remedy(
        "orthogonal_init", f"initialise the recurrent weights of {where} orthogonally", patch
    )
    if layers:
        lines: list[str] = []
        for layer in layers:
            if layer.square and layer.access is not None:
                lines.append(f"nn.init.orthogonal_({layer.access})  # {layer.name}: the square weight each step "
                             "multiplies by")
                continue
            built, rnn = _reach(layer, "rnn")
            kind = layer.construct().split("(")[0]
            lines += built + [
                f"for name, p in {rnn}.named_parameters():  # {layer.name}: {kind}, {layer.gates} gate "
                f"block{'s' if layer.gates > 1 else ''} in each weight_hh",
                '    if name.startswith("weight_hh"):',
                f"        for block in p.data.chunk({layer.gates}, 0):",
                "            nn.init.orthogonal_(block)"]
        remedy.snippet = "\n".join(lines)
    return remedy


def gated_recurrent_cell(
    where: str, forget_bias: float | str, steps: int, patch: Patch = (), *, already_lstm: bool = False,
    batch_first: bool = True, layers: Sequence[RecurrentModule] = (),
) -> Remedy:
    """Make ``where`` an LSTM with its forget gate open: a constant bias, or chrono init over
    ``steps``; ``already_lstm``: it is one, and only its forget gate changes; ``batch_first``: the
    layout the snippet's LSTM takes, the model's own (a sequence-first export's is False);
    ``layers``: those layers as the check knows them, whose names and sizes fill the snippet
    (:func:`gated_snippet`; else it is the generic template)."""
    if forget_bias == "chrono":
        bias_code = (
            "b_f = torch.log(torch.empty(H).uniform_(1, T_max - 1))  # chrono init\n"
            "        b.data[H:2 * H] = b_f; b.data[:H] = -b_f"
        )
        how = f"chrono gate initialisation (Tallec & Ollivier 2018, T_max = {steps})"
    else:
        bias_code = f"b.data[H:2 * H] = {forget_bias}  # forget-gate bias"
        how = f"forget-gate bias {forget_bias}"
    remedy = make_remedy(
        "gated_recurrent_cell",
        f"give the LSTM {where} {how}" if already_lstm else f"make {where} an LSTM with {how}",
        patch,
        forget_bias=forget_bias,
        bias_code=bias_code,
    )
    if not batch_first:
        # the model reads [time, batch, features] (onnxsweep23: a sequence-first export was shown
        # batch_first=True, which pasted would change its layout)
        remedy.snippet = remedy.snippet.replace(
            "batch_first=True)", "batch_first=False)  # sequence-first [time, batch, features], as the model")
    if layers:
        remedy.snippet = gated_snippet(layers, forget_bias, steps)
    return remedy


def _forget_gate_lines(forget_bias: float | str, cell: str) -> list[str]:
    """The body of the bias loop that opens ``cell``'s gate: an LSTM's forget gate (input gate the
    negative under chrono), a GRU's update gate z (gates r, z, n), as the check's own edit does."""
    if cell == "gru":
        value = ("torch.log(torch.empty(H).uniform_(1, T_max - 1))  # chrono init of the update gate z"
                 if forget_bias == "chrono" else f"{forget_bias}  # update-gate bias")
        return ['    if name.startswith("bias_ih"):  # gates r, z, n', f"        b.data[H:2 * H] = {value}",
                '    elif name.startswith("bias_hh"):', "        b.data[H:2 * H] = 0.0"]
    if forget_bias == "chrono":
        opened = ["        b_f = torch.log(torch.empty(H).uniform_(1, T_max - 1))  # chrono init",
                  "        b.data[H:2 * H] = b_f; b.data[:H] = -b_f"]
    else:
        opened = [f"        b.data[H:2 * H] = {forget_bias}  # forget-gate bias"]
    return ['    if name.startswith("bias_ih"):  # gates i, f, g, o', *opened,
            '    elif name.startswith("bias_hh"):', "        b.data[:2 * H] = 0.0"]


def gated_snippet(layers: Sequence[RecurrentModule], forget_bias: float | str, steps: int) -> str:
    """``gated_recurrent_cell``'s code for ``layers`` as the check knows them: a plain RNN replaced
    by an LSTM of its sizes (put into the user's model where it has the module), an LSTM's or a
    GRU's own gate opened; ``forget_bias`` a number or chrono over ``steps`` (T_max)."""
    lines: list[str] = []
    for layer in layers:
        gated = layer.cell if layer.cell in ("lstm", "gru") else "lstm"
        lines.append(f"H, T_max = {layer.hidden}, {steps}  # {layer.name}'s hidden size; the steps it runs over")
        if layer.cell == gated:
            built, rnn = _reach(layer, "rnn")
            lines += built
        elif layer.access is not None:
            rnn = layer.access
            state = "h, c = ... from (h, c)" if layer.step else "output, (h, c)"
            lines.append(f"{rnn} = {layer.construct(gated)}  # was {layer.construct()}; an LSTM returns "
                         f"{state}: where forward reads the state, take h from the pair")
        else:
            rnn = "lstm"
            lines.append(f"lstm = {layer.construct(gated)}  # {layer.name} as an LSTM")
        lines.append(f"for name, b in {rnn}.named_parameters():")
        lines += _forget_gate_lines(forget_bias, gated)
    return "\n".join(lines)


# --- training-time changes (both checks; nothing to re-simulate at init) -----------------------


def gradient_clipping(max_norm: float, basis: str, **evidence: Any) -> Remedy:
    """Clip the total gradient norm at ``max_norm``; ``basis`` says where that number came from.

    ``evidence`` (e.g. the percentile, or the reference norm) goes into ``params`` before the basis.
    """
    return make_remedy(
        "gradient_clipping",
        f"clip the total gradient norm at {max_norm:g} every step",
        max_norm=max_norm,
        **evidence,
        basis=basis,
    )


def gradient_clipping_in_place(max_norm: float, basis: str, existing: str, kept: float | None = None,
                               **evidence: Any) -> Remedy:
    """The clipping remedy where training already clips (``existing``, in words: the optimizer's
    clipnorm, global_clipnorm or clipvalue): it names that clipping instead of proposing a new one,
    and the threshold a healthy network's norms suggest (``max_norm``, from ``basis``) beside it.
    ``kept``: the total-norm threshold training clips at, where it is known. At or above the
    suggestion it stays, the remedy's threshold and code (modsweep44: a clip at 1 was to be replaced
    by max_norm=0.0032, 2x the norm at init, while the sentence said no clipping was to be added);
    under it, it cuts every ordinary step, and the suggestion replaces it."""
    if kept is not None and kept >= max_norm:
        return make_remedy(
            "gradient_clipping",
            f"training already clips the gradients ({existing}): no clipping to add, and its threshold {kept:g} "
            f"stays: over {max_norm:g} ({basis}), it clips spikes only",
            max_norm=kept,
            suggested_max_norm=max_norm,
            **evidence,
            basis=basis,
            already_clipping=existing,
        )
    if kept is not None:
        return make_remedy(
            "gradient_clipping",
            f"training already clips the gradients ({existing}), at {kept:g}, under {max_norm:g} ({basis}): "
            f"that cuts every ordinary step, not spikes only; clip the total gradient norm at {max_norm:g} instead",
            max_norm=max_norm,
            replaced_max_norm=kept,
            **evidence,
            basis=basis,
            already_clipping=existing,
        )
    return make_remedy(
        "gradient_clipping",
        f"training already clips the gradients ({existing}): no clipping to add; a total-norm threshold of "
        f"{max_norm:g} ({basis}) clips spikes only, so a clipping far below that also cuts every ordinary step",
        max_norm=max_norm,
        **evidence,
        basis=basis,
        already_clipping=existing,
    )


def _at(learning_rate: float | None, at_step: float | str | None) -> str:
    if at_step is None:
        return f"from {learning_rate:.3g}"
    if isinstance(at_step, str):  # the position in the log's own words ("epoch 3")
        return f"from {learning_rate:.3g} (in effect at {at_step})"
    step = int(at_step) if float(at_step).is_integer() else at_step
    return f"from {learning_rate:.3g} (in effect at step {step})"


def _scale_lr(
    rid: str,
    verb: str,
    factor: float,
    warmup_steps: int,
    learning_rate: float | None,
    at_step: float | str | None,
    why: str,
) -> Remedy:
    known = learning_rate is not None and learning_rate > 0 and learning_rate < float("inf")
    if known:
        assert learning_rate is not None
        to = learning_rate * factor
        change = f"{verb} the learning rate {_at(learning_rate, at_step)} to {to:.3g}"
    else:
        change = f"{verb} the learning rate to {factor:g}x"
    if warmup_steps < MIN_WARMUP_STEPS:
        warmup_steps = 0  # too short to do anything: no warm-up rather than a no-op one
    if warmup_steps:
        change += f", with a linear warm-up over the first {warmup_steps} steps"
    params: dict[str, Any] = {"factor": factor}
    if rid == "lower_learning_rate":
        params["warmup"] = _warmup_code(warmup_steps)
    remedy = make_remedy(rid, change + (f" ({why})" if why else ""), **params)
    remedy.params.pop("warmup", None)  # code, not a parameter
    if warmup_steps:
        remedy.params["warmup_steps"] = warmup_steps
    if learning_rate is not None:
        remedy.params.update(
            {
                "learning_rate_at_onset": learning_rate,
                "suggested_learning_rate": learning_rate * factor,
            }
        )
    return remedy


def _warmup_code(steps: int) -> str:
    """The warm-up lines of the lower_learning_rate snippet ('' without a warm-up)."""
    if not steps:
        return ""
    return ("\nscheduler = torch.optim.lr_scheduler.LambdaLR(  # call scheduler.step() after each step\n"
            f"    optimizer, lambda step: min(1.0, (step + 1) / {steps}))  # linear warm-up")


def lower_learning_rate(
    factor: float = LOWER_LR_FACTOR,
    *,
    warmup_steps: int = 0,
    learning_rate: float | None = None,
    at_step: float | str | None = None,
    why: str = "",
) -> Remedy:
    """Multiply the learning rate by ``factor`` (0 < factor < 1), optionally with a linear warm-up
    over ``warmup_steps`` (dropped below :data:`MIN_WARMUP_STEPS`, where it would do nothing).

    ``learning_rate`` is the rate in effect at ``at_step`` when the caller knows it (a log does);
    the change then names the rate to use. ``at_step`` is a step, or a position in words.
    """
    if not 0 < factor < 1:
        raise ValueError(f"lower_learning_rate needs a factor in (0, 1), not {factor:g}")
    return _scale_lr(
        "lower_learning_rate", "lower", factor, warmup_steps, learning_rate, at_step, why
    )


#: The networks of a GAN a learning-rate remedy can act on, and the optimizers its snippet names for
#: each (the usual ``optimizer_D``/``optimizer_G``; the PyTorch DCGAN tutorial's ``optimizerD``): a GAN
#: steps its two networks with two optimizers, and a rate cut aimed at "your optimizer" lands on
#: either, or on both, the side already losing included.
GanNetwork = Literal["discriminator", "generator", "both"]
GAN_OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "discriminator": ("optimizer_D",), "generator": ("optimizer_G",), "both": ("optimizer_G", "optimizer_D")}
_GAN_WHOSE = {"discriminator": "the discriminator's", "generator": "the generator's", "both": "both networks'"}
_GAN_KEPT = {"discriminator": "the generator's", "generator": "the discriminator's"}


def gan_change(change: str, verb: str, network: GanNetwork, judged: dict[str, str]) -> str:
    """A learning-rate change in words (``lower the learning rate ... (why)``) aimed at ``network``:
    whose rate it changes, whose it keeps, and the loss series ``judged`` (by role) it rests on."""
    whose = _GAN_WHOSE[network] + (" learning rates" if network == "both" else " learning rate")
    kept = f", keeping {_GAN_KEPT[network]}" if network in _GAN_KEPT else ""
    on = ("judged on " + " against ".join(f"{name} (the {role}'s loss)" for role, name in judged.items())
          if judged else "")
    head, why = change, ""
    if change.endswith(")") and " (" in change:
        # the why in parentheses last (:func:`_scale_lr`); "(in effect at ...)" inside the head stays
        depth, i = 0, len(change) - 1
        for i in range(len(change) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(change[i], 0)
            if depth == 0:
                break
        head, why = change[:i].rstrip(), change[i + 1:-1]
    head = re.sub(rf"^{verb} the learning rate", f"{verb} {whose}", head) + kept
    why = "; ".join(w for w in (why, on) if w)
    return head + (f" ({why})" if why else "")


def for_gan_network(remedy: Remedy, network: GanNetwork, *, series: dict[str, str] | None = None) -> Remedy:
    """``remedy`` (a ``lower_learning_rate`` or ``raise_learning_rate``) aimed at one network of a GAN,
    or at both: its title, its change and its snippet name that network's optimizer
    (:data:`GAN_OPTIMIZERS`), and a cut aimed at one says the other's rate is kept. ``series``: the
    loss series the judgement rests on, by role (``{"discriminator": "D_B", "generator": "G_B"}``),
    named in the change. Params ``target``, ``optimizers`` and ``judged_on``; the id is unchanged."""
    if network not in GAN_OPTIMIZERS:
        raise ValueError(f"a GAN remedy acts on the discriminator, the generator or both, not {network!r}")
    optimizers = GAN_OPTIMIZERS[network]
    whose = _GAN_WHOSE[network]
    p = remedy.params
    factor = snippet_number(p.get("factor"))
    steps = p.get("warmup_steps")
    # the generic snippet's loop, on the named optimizer(s); a warm-up's scheduler on each of them
    if len(optimizers) == 1:
        code = (f"for group in {optimizers[0]}.param_groups:  # {whose} optimizer only: "
                f"{_GAN_KEPT[network]} keeps its rate\n"
                f'    group["lr"] = group["lr"] * {factor}')
    else:
        code = (f"for opt in ({', '.join(optimizers)}):  # the generator's and the discriminator's optimizers\n"
                "    for group in opt.param_groups:\n"
                f'        group["lr"] = group["lr"] * {factor}')
    if steps:
        for opt in optimizers:
            code += (f"\nscheduler_{opt.rsplit('_', 1)[-1]} = torch.optim.lr_scheduler.LambdaLR(  # step() after "
                     f"each of its steps\n    {opt}, lambda step: min(1.0, (step + 1) / {steps}))  # linear warm-up")
    verb = "lower" if remedy.id == "lower_learning_rate" else "raise"
    judged = {k: v for k, v in (series or {}).items() if v}
    change = gan_change(remedy.change, verb, network, judged)
    title = (f"{verb.capitalize()} {whose} learning rate" + ("s" if network == "both" else "")
             + (" / warm-up" if steps else ""))
    out = remedy.model_copy(deep=True)
    out.title, out.change, out.snippet = title, change, code
    out.params.update({"target": network, "optimizers": list(optimizers)})
    if judged:
        out.params["judged_on"] = judged
    return out


def positive_learning_rate(rate: float, optimizer: str = "Adam") -> Remedy:
    """Replace a negative or zero learning rate ``rate`` with a positive one: its magnitude when it
    has one, else Keras' default 0.001."""
    new = abs(rate) if rate < 0 else 0.001
    return make_remedy("positive_learning_rate", f"set the learning rate to {new:g} instead of {rate:g}: "
                       "descent needs a positive rate", rate=f"{new:g}", optimizer=optimizer)


def check_updates(why: str) -> Remedy:
    """Check that the optimizer steps the trained weights (``why``: what showed that it does not)."""
    return make_remedy("check_updates", "make every step update the weights: optimizer.step() on each batch, "
                       "the trained parameters requiring gradients and in the optimizer, a learning rate "
                       f"above 0 ({why})")


def check_loss_graph(why: str) -> Remedy:
    """Check that the loss is computed from the model's output on each batch and that its gradient
    reaches the weights (``why``: what showed that it does not: a loss that never changes)."""
    return make_remedy("check_loss_graph", "make the loss depend on the batch and the weights: computed from the "
                       "model's output on each batch (not from .item(), .detach() or a new tensor), with a nonzero "
                       f"gradient on the trained parameters after backward ({why})")


def check_data(at: str, step: str, why: str) -> Remedy:
    """Look for what made a NaN/Inf that arrived at once (``at``, the log's position; ``step`` for
    the snippet), with nothing growing before it (``why``): a batch holding NaN/Inf, or an
    operation undefined on it. No learning rate or clipping changes either."""
    return make_remedy("check_data", f"check the inputs and targets of the batch at {at} for NaN/Inf, and with "
                       "them finite run that step under torch.autograd.set_detect_anomaly(True) to name the "
                       f"operation that made it ({why})", step=step)


def check_evaluation_data(series: str, step: str, *, training_seen: bool = True) -> Remedy:
    """Look for what makes an evaluation NaN/Inf (``series``, first at ``step``) while training stays
    finite: the evaluated data, an empty evaluation set, or evaluation in lower precision. Evaluation
    updates no weight, so no learning rate or clipping changes it. ``training_seen`` False: the log
    holds no training loss, so which of the two made it is not known (said so)."""
    why = ("while the training loss is finite: the evaluation made it, not the updates" if training_seen else
           "and the log holds no training loss to tell whether the updates or the evaluation made it")
    return make_remedy("check_data", f"check the evaluation's inputs and targets for NaN/Inf and that the evaluation "
                       f"set is not empty ({series} is NaN/Inf {why}), and evaluate in fp32", step=step)


def raise_learning_rate(
    factor: float = RAISE_LR_FACTOR,
    *,
    learning_rate: float | None = None,
    at_step: float | str | None = None,
    why: str = "",
) -> Remedy:
    """Multiply the learning rate by ``factor`` (> 1): for a loss that never moved."""
    if not factor > 1:
        raise ValueError(f"raise_learning_rate needs a factor above 1, not {factor:g}")
    return _scale_lr("raise_learning_rate", "raise", factor, 0, learning_rate, at_step, why)


def weight_decay(value: float = WEIGHT_DECAY) -> Remedy:
    """Add weight decay ``value`` to the user's optimizer (decoupled in AdamW, L2 in SGD/Adam)."""
    return make_remedy(
        "weight_decay",
        f"add weight decay {value:g} to the optimizer so weights cannot grow without bound",
        weight_decay=value,
    )


def lower_weight_decay(old: float, new: float, why: str) -> Remedy:
    """Lower the optimizer's weight decay from ``old`` to ``new``: its own shrinking of the weights
    is most of each step (``why`` says by how much)."""
    return make_remedy(
        "weight_decay",
        f"lower the weight decay from {old:g} to {new:g}: {why}",
        weight_decay=new,
        previous_weight_decay=old,
    )


def balance_classes(share: float) -> Remedy:
    """Weight the loss by inverse class frequency: a model that predicts the majority class (a
    ``share`` of the samples) for everything learned only the class balance."""
    return make_remedy(
        "balance_classes",
        f"weight the loss by inverse class frequency (or resample to balance the classes): predicting "
        f"the majority class for every sample already scores {share:.4g}, so the loss rewards nothing else "
        "first; then check that the labels match the inputs and the inputs are scaled",
    )


def early_stopping(best_step: float, patience: int, *, monitor: str | None = None,
                   lower_is_better: bool = True, where: str | None = None) -> Remedy:
    """Keep the weights of ``best_step``; stop after ``patience`` evaluations without gain. With
    ``monitor``, the step is that metric's best (a task metric's, not the validation loss's), and
    the snippet watches it (``lower_is_better``: an error rate or a loss; else a score). ``where``:
    that position in the log's own words (``epoch 3`` on a log counted by epoch), else ``step N``."""
    step = int(best_step) if float(best_step).is_integer() else best_step
    at = where or f"step {step}"
    if monitor is None:
        return make_remedy(
            "early_stopping",
            f"keep the weights from {at} and stop after {patience} "
            "evaluations without improvement",
            patience=patience,
        )
    remedy = make_remedy(
        "early_stopping",
        f"keep the weights from {at}, where {monitor} was best, and stop after {patience} "
        f"evaluations without improvement in {monitor}",
        patience=patience,
        monitor=monitor,
    )
    name = re.sub(r"\W", "_", monitor)
    better = f"{name} < best - 1e-4" if lower_is_better else f"{name} > best + 1e-4"
    snippet = (f"if {better}:\n    best, bad_epochs = {name}, 0\n"
               '    torch.save(model.state_dict(), "best.pt")\nelse:\n    bad_epochs += 1\n'
               f"    if bad_epochs >= {patience}:\n        break  # restore best.pt")
    return remedy.model_copy(update={"snippet": snippet})


def keep_exploring(why: str) -> Remedy:
    """Keep an agent exploring (an entropy bonus, a slower epsilon schedule with a floor): for a
    return that never rose or collapsed, ``why`` what the log shows of its exploration."""
    return make_remedy("keep_exploring", "keep the agent exploring: an entropy bonus (0.01) for a policy "
                       "gradient, or for epsilon-greedy a decay over half the run to a floor of 0.05 "
                       f"({why})")


def raise_kl_coefficient(why: str, factor: float = RAISE_LR_FACTOR) -> Remedy:
    """Multiply an RLHF run's KL coefficient (beta) by ``factor`` (``why``: what the KL did)."""
    return make_remedy("raise_kl_coefficient", f"raise the KL coefficient (beta) {factor:g}x, or turn the KL "
                       f"penalty on where it is 0 ({why})", factor=factor)
