"""Findings -> remedies: concrete changes to the user's spec, each an RFC 6902 patch.

Each remedy here proposes one change for the layers a finding is about: the
patch to the spec, the change in words, a PyTorch snippet and, where the change
is a number (a clipping threshold), the number derived from the measurements.
Whether it works is not assumed: :mod:`gradhealth.analysis.check` applies every
patch, simulates the patched spec again and reports what it measured.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gradhealth.analysis import spec as S
from gradhealth.core.catalog import REMEDIES
from gradhealth.core.document import Remedy
from gradhealth.analysis.findings import Detection
from gradhealth.analysis.plan import Plan
from gradhealth.analysis.simulate import SimulationResult

#: Sequences at least this long get chrono gate initialisation instead of a constant forget bias of 1.
CHRONO_MIN_STEPS = 50

_INIT_FOR = {
    "relu": "kaiming_normal", "leaky_relu": "kaiming_normal", "elu": "kaiming_normal",
    "gelu": "kaiming_normal", "silu": "kaiming_normal", "swish": "kaiming_normal", "softplus": "kaiming_normal",
    "selu": "lecun_normal", "sigmoid": "xavier_normal", "tanh": "xavier_normal", "hardtanh": "xavier_normal",
    "identity": "xavier_normal",
}
_REMEDY_OF_INIT = {"kaiming_normal": "he_init", "xavier_normal": "xavier_init", "lecun_normal": "lecun_init"}
_SAME_INIT = {"kaiming_normal": {"kaiming_normal", "kaiming_uniform", "he_normal", "he_uniform"},
              "xavier_normal": {"xavier_normal", "xavier_uniform"}, "lecun_normal": {"lecun_normal"}}

_SNIPPETS = {
    "he_init": "for m in model.modules():\n    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):\n"
               "        nn.init.kaiming_normal_(m.weight, nonlinearity=\"relu\")\n        nn.init.zeros_(m.bias)",
    "xavier_init": "for m in model.modules():\n    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):\n"
                   "        nn.init.xavier_normal_(m.weight)\n        nn.init.zeros_(m.bias)",
    "lecun_init": "for m in model.modules():\n    if isinstance(m, nn.Linear):\n"
                  "        nn.init.normal_(m.weight, std=m.in_features ** -0.5)  # LeCun normal, for SELU",
    "orthogonal_init": "for name, p in rnn.named_parameters():\n    if name.startswith(\"weight_hh\"):\n"
                       "        for block in p.data.chunk(n_gates, 0):  # 1 (rnn), 4 (lstm), 3 (gru)\n"
                       "            nn.init.orthogonal_(block)",
    "relu_family_activation": "nn.Sequential(nn.Linear(n_in, n_out), nn.{act}())  # and Kaiming init for it",
    "residual_connections": "class Residual(nn.Module):\n    def __init__(self, f, scale=1.0):\n"
                            "        super().__init__(); self.f, self.scale = f, scale\n"
                            "    def forward(self, x):\n        return x + self.scale * self.f(x)",
    "scaled_residual": "return x + self.f(x) / math.sqrt(num_blocks)  # keeps Var(h) bounded with depth",
    "batch_norm": "nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), activation)",
    "layer_norm": "nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), activation)",
    "pre_layer_norm": "nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, norm_first=True)\n"
                      "# and a final nn.LayerNorm(d_model) after the stack",
    "gated_recurrent_cell": "lstm = nn.LSTM(n_in, hidden, batch_first=True)\nH = hidden\n"
                            "for name, b in lstm.named_parameters():\n    if name.startswith(\"bias_ih\"):\n"
                            "        {bias_code}\n    elif name.startswith(\"bias_hh\"):\n"
                            "        b.data[:2 * H] = 0.0",
    "gradient_clipping": "loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={max_norm})\n"
                         "optimizer.step()",
    "lower_learning_rate": "optimizer = torch.optim.AdamW(model.parameters(), lr=lr * {factor})\n"
                           "scheduler = torch.optim.lr_scheduler.LambdaLR(\n"
                           "    optimizer, lambda step: min(1.0, (step + 1) / {warmup_steps}))  # linear warm-up",
    "weight_decay": "optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay={weight_decay})",
    "early_stopping": "if val_loss < best - 1e-4:\n    best, bad_epochs = val_loss, 0\n"
                      "    torch.save(model.state_dict(), \"best.pt\")\nelse:\n    bad_epochs += 1\n"
                      "    if bad_epochs >= {patience}:\n        break  # restore best.pt",
}


@dataclass
class Context:
    """What a remedy builder may look at."""

    raw: dict[str, Any]
    plan: Plan
    result: SimulationResult
    detection: Detection

    def layer_at(self, pointer: str) -> S.Layer:
        return next(u.layer for u in self.plan.all_units() if u.pointer == pointer)

    def weight_pointers(self) -> list[str]:
        """Spec pointers of the weight layers the finding is about (nested ones included)."""
        pointers: list[str] = []
        for unit in self.detection.units:
            for u in self.plan.all_units():
                if (u.pointer == unit.pointer or u.pointer.startswith(unit.pointer + "/layers/")) and isinstance(
                        u.layer, S.WEIGHT_LAYERS):
                    pointers.append(u.pointer)
        return list(dict.fromkeys(pointers))

    def recurrent_pointers(self) -> list[str]:
        return list(dict.fromkeys(u.pointer for u in self.detection.units if u.type in ("rnn", "lstm", "gru")))


def _names(pointers: list[str]) -> str:
    """``/layers/3/layers/0`` -> ``layers[3].layers[0]``."""
    return ", ".join(re.sub(r"/layers/(\d+)", r".layers[\1]", p).lstrip(".") for p in pointers)


def make_remedy(rid: str, change: str, patch: list[dict[str, Any]], **params: Any) -> Remedy:
    """A catalogue remedy with its change in words, its snippet (filled with ``params``) and patch."""
    entry = REMEDIES[rid]
    snippet = _SNIPPETS[rid].format(**params) if params else _SNIPPETS[rid]
    return Remedy(id=rid, title=entry.title, rationale=entry.description, change=change,
                  snippet=snippet, patch=patch, params=params)


def _init_remedy(ctx: Context, target: str, pointers: list[str]) -> Remedy | None:
    todo = [p for p in pointers if ctx.layer_at(p).init.scheme not in _SAME_INIT[target]]  # type: ignore[union-attr]
    if not todo:
        return None
    patch = [{"op": "add", "path": p + "/init", "value": {"scheme": target}} for p in todo]
    return make_remedy(_REMEDY_OF_INIT[target], f"initialise {_names(todo)} with {target}", patch)


def init_remedies(ctx: Context) -> list[Remedy]:
    """The init that matches each layer's activation (He, Xavier/Glorot or LeCun)."""
    groups: dict[str, list[str]] = {}
    for p in ctx.weight_pointers():
        act = ctx.layer_at(p).activation  # type: ignore[union-attr]
        groups.setdefault(_INIT_FOR[act], []).append(p)
    return [r for target, ps in groups.items() if (r := _init_remedy(ctx, target, ps)) is not None]


def xavier_for_saturating(ctx: Context) -> list[Remedy]:
    ps = [p for p in ctx.weight_pointers() if ctx.layer_at(p).activation in S.SATURATING]  # type: ignore[union-attr]
    r = _init_remedy(ctx, "xavier_normal", ps)
    return [r] if r else []


def relu_family(ctx: Context, activation: str = "relu") -> list[Remedy]:
    """Swap saturating (or dead ReLU) layers to a ReLU-family activation with He init."""
    want = S.SATURATING if activation == "relu" else {"relu"}
    ps = [p for p in ctx.weight_pointers() if ctx.layer_at(p).activation in want]  # type: ignore[union-attr]
    if not ps:
        return []
    patch: list[dict[str, Any]] = []
    for p in ps:
        patch += [{"op": "add", "path": p + "/activation", "value": activation},
                  {"op": "add", "path": p + "/init", "value": {"scheme": "kaiming_normal"}}]
    r = make_remedy("relu_family_activation", f"use {activation} with kaiming_normal init in {_names(ps)}", patch)
    r.snippet = r.snippet.replace("{act}", "ReLU" if activation == "relu" else "LeakyReLU")
    return [r]


def normalisation(ctx: Context, kind: str) -> list[Remedy]:
    ps = [p for p in ctx.weight_pointers() if ctx.layer_at(p).norm is None]  # type: ignore[union-attr]
    if not ps:
        return []
    rid = "batch_norm" if kind == "batchnorm" else "layer_norm"
    patch = [{"op": "add", "path": p + "/norm", "value": kind} for p in ps]
    return [make_remedy(rid, f"normalise the pre-activations of {_names(ps)} with {kind}", patch)]


def residual(ctx: Context) -> list[Remedy]:
    """Wrap repeated shape-keeping layers in skip connections.

    When the first copy changes the width (784 -> 256), it stays as it is and the
    remaining copies become residual blocks.
    """
    patch: list[dict[str, Any]] = []
    done: list[str] = []
    targets = [u for u in ctx.plan.units if u.copy == 0 and isinstance(u.layer, S.WEIGHT_LAYERS)
               and u.layer.repeat > 1 and u.pointer in ctx.weight_pointers()]
    for unit in reversed(targets):  # from the back, so inserting shifts no pointer still to patch
        layer = unit.layer
        inner = copy.deepcopy(_resolve(ctx.raw, unit.pointer))
        inner.pop("repeat", None)
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
    return [make_remedy("residual_connections",
                  f"wrap the repeated copies of {_names(done[::-1])} in skip connections x + f(x)", patch)]


def scaled_residual(ctx: Context) -> list[Remedy]:
    patch, done = [], []
    for unit in ctx.plan.units:
        layer = unit.layer
        if unit.copy == 0 and isinstance(layer, S.ResidualBlock) and layer.repeat > 1:
            scale = round(1 / math.sqrt(layer.repeat), 4)
            if layer.scale > scale:
                patch.append({"op": "add", "path": unit.pointer + "/scale", "value": scale})
                done.append(unit.pointer)
    if not patch:
        return []
    return [make_remedy("scaled_residual", f"scale the residual branches of {_names(done)} by 1/sqrt(blocks)", patch)]


def pre_layer_norm(ctx: Context) -> list[Remedy]:
    ps = [u.pointer for u in ctx.plan.units if u.copy == 0 and isinstance(u.layer, S.TransformerEncoderLayer)
          and not u.layer.norm_first]
    if not ps:
        return []
    patch = [{"op": "add", "path": p + "/norm_first", "value": True} for p in ps]
    return [make_remedy("pre_layer_norm", f"use Pre-LN (norm_first: true) in {_names(ps)}", patch)]


def gated_cells(ctx: Context) -> list[Remedy]:
    """rnn -> lstm, or a default lstm/gru -> lstm, with the forget gate open at the start."""
    out: list[Remedy] = []
    for p in ctx.recurrent_pointers():
        layer = ctx.layer_at(p)
        assert isinstance(layer, S.RecurrentLayer)
        steps = next(u.in_shape[0] for u in ctx.plan.all_units() if u.pointer == p)
        options: list[float | str] = ["chrono", 1.0] if steps >= CHRONO_MIN_STEPS else [1.0, "chrono"]
        if layer.type == "lstm":
            options = [o for o in options if o != layer.forget_bias]
        for fb in options:
            value = {k: v for k, v in _resolve(ctx.raw, p).items() if k not in ("nonlinearity", "type")}
            value.update({"type": "lstm", "forget_bias": fb})
            if fb == "chrono":
                bias_code = ("b_f = torch.log(torch.empty(H).uniform_(1, T_max - 1))  # chrono init\n"
                             "        b.data[H:2 * H] = b_f; b.data[:H] = -b_f")
                how = f"chrono gate initialisation (Tallec & Ollivier 2018, T_max = {steps})"
            else:
                bias_code = f"b.data[H:2 * H] = {fb}  # forget-gate bias"
                how = f"forget-gate bias {fb}"
            r = make_remedy("gated_recurrent_cell", f"make {_names([p])} an LSTM with {how}",
                      [{"op": "replace", "path": p, "value": value}], forget_bias=fb, bias_code=bias_code)
            out.append(r)
    return out


def orthogonal(ctx: Context) -> list[Remedy]:
    ps = [p for p in ctx.recurrent_pointers() if ctx.layer_at(p).recurrent_init.scheme != "orthogonal"]  # type: ignore[union-attr]
    if not ps:
        return []
    patch = [{"op": "add", "path": p + "/recurrent_init", "value": {"scheme": "orthogonal", "gain": 1.0}}
             for p in ps]
    return [make_remedy("orthogonal_init", f"initialise the recurrent weights of {_names(ps)} orthogonally", patch)]


def total_grad_norm(result: SimulationResult) -> float:
    """||dL/dtheta|| over every top-level unit with weights (geometric mean over seeds)."""
    weighted = [u for u in result.units if u.depth == 0 and u.has_weights and "grad_norm" in u.values]
    return math.sqrt(sum(u.geo("grad_norm") ** 2 for u in weighted)) if weighted else math.nan


#: max_norm is this many times the total gradient norm of a healthy simulation at init: early
#: training norms rise a little above their initial value, and clipping should catch spikes, not
#: every step.
CLIP_HEADROOM = 2.0


def set_clip_threshold(remedy: Remedy, reference: SimulationResult, basis: str) -> None:
    """Set ``max_norm`` from the total gradient norm of ``reference`` (a healthy simulation)."""
    total = total_grad_norm(reference)
    if not math.isfinite(total) or total <= 0:
        return
    max_norm = float(f"{CLIP_HEADROOM * total:.2g}")
    remedy.params.update({"max_norm": max_norm, "reference_total_grad_norm": total,
                          "basis": f"{CLIP_HEADROOM:g} x the total gradient norm at init in {basis}"})
    remedy.change = f"clip the total gradient norm at {max_norm:g} every step"
    remedy.snippet = _SNIPPETS["gradient_clipping"].format(max_norm=max_norm)


def clipping(ctx: Context) -> list[Remedy]:
    """max_norm from the measured norms (refined from a verified fix's re-simulation when there is one)."""
    r = make_remedy("gradient_clipping", "", [], max_norm=1.0)
    set_clip_threshold(r, ctx.result, "this simulation")
    if "basis" not in r.params:
        r.change = "clip the total gradient norm at 1 every step"
        r.params["basis"] = "no finite gradient norm was measured; 1.0 is the common default"
    return [r]


def learning_rate(ctx: Context, warmup_steps: int = 0) -> list[Remedy]:
    factor = 0.1
    steps = warmup_steps or 1
    r = make_remedy("lower_learning_rate",
              f"lower the learning rate {1 / factor:g}x" + (f" with {warmup_steps} warm-up steps" if warmup_steps else ""),
              [], factor=factor, warmup_steps=steps)
    return [r]


def decay(ctx: Context) -> list[Remedy]:
    return [make_remedy("weight_decay", "add weight decay 0.01 (AdamW) so weights cannot grow without bound", [],
                  weight_decay=0.01)]


def _resolve(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.strip("/").split("/"):
        if part:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
    return node


Builder = Callable[[Context], list[Remedy]]

#: Which remedies are proposed for which finding, in the order tried.
CANDIDATES: dict[str, list[Builder]] = {
    "vanishing_gradient": [relu_family, init_remedies, lambda c: normalisation(c, "batchnorm"),
                           lambda c: normalisation(c, "layernorm"), residual],
    "exploding_gradient": [init_remedies, scaled_residual, lambda c: normalisation(c, "batchnorm"),
                           lambda c: normalisation(c, "layernorm"), clipping, learning_rate, decay],
    "saturation": [xavier_for_saturating, relu_family, lambda c: normalisation(c, "batchnorm")],
    "dead_units": [init_remedies, lambda c: relu_family(c, "leaky_relu"), lambda c: normalisation(c, "batchnorm")],
    "nonfinite": [init_remedies, clipping, learning_rate],
    "vanishing_through_time": [gated_cells, orthogonal],
    "exploding_through_time": [orthogonal, gated_cells, clipping, learning_rate],
    "post_ln_depth_risk": [pre_layer_norm, lambda c: learning_rate(c, warmup_steps=4000)],
}


def propose(ctx: Context) -> list[Remedy]:
    """Every remedy worth trying for ``ctx.detection`` (not yet verified)."""
    out: list[Remedy] = []
    for build in CANDIDATES[ctx.detection.code]:
        out.extend(build(ctx))
    return out
