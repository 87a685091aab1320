"""Measurements -> findings.

Every finding code has one metric, computed the same way on the original
simulation and on each remedy's re-simulation (:func:`measure`), so a remedy's
``verified.before``/``after`` compare like with like, and :func:`assess` turns a
metric into a severity with the configured :class:`Thresholds`.

Through depth, the metric is ``||dL/dh||`` at the first hidden layer over the
same at the last hidden layer (the readout is left out: its gradient is the
loss's own). Through time it is ``||dL/dh_0|| / ||dL/dh_{T-2}||``: the last
step is left out because dL/dh_{T-1} is the readout's direct gradient, not one
that went through the recurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradhealth.analysis import spec as S
from gradhealth.analysis.simulate import SimulationResult, UnitStats
from gradhealth.analysis.thresholds import Thresholds


@dataclass
class Detection:
    """A finding before remedies are attached."""

    code: str
    severity: str
    metric: str
    value: float
    summary: str
    explanation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    units: list[UnitStats] = field(default_factory=list)  # the units the finding is about


def _geo_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Geometric mean over seeds of a/b (0 when a is 0, nan when undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(a) - np.log(b)
    logs = logs[~np.isnan(logs)]
    return float(np.exp(np.mean(logs))) if len(logs) else math.nan


def trunk(result: SimulationResult) -> list[UnitStats]:
    """Top-level units with weights, without the final (readout) one."""
    units = [u for u in result.units if u.depth == 0 and u.has_weights and "grad_norm" in u.values]
    return units[:-1]


def depth_ratio(result: SimulationResult) -> tuple[float, list[UnitStats]]:
    """||dL/dh_first|| / ||dL/dh_last|| over the trunk, geometric mean over seeds."""
    units = trunk(result)
    if len(units) < 2:
        return math.nan, units
    return _geo_ratio(units[0].values["output_grad_norm"], units[-1].values["output_grad_norm"]), units


def activation_growth(result: SimulationResult) -> float:
    """std of the last hidden layer's output over the first's (forward explosion)."""
    units = trunk(result)
    if len(units) < 2:
        return math.nan
    return _geo_ratio(units[-1].values["activation_std"], units[0].values["activation_std"])


def time_ratios(result: SimulationResult) -> list[tuple[str, int, float, int]]:
    """(layer, sublayer, ||dL/dh_0|| / ||dL/dh_{T-2}||, T) for every recurrent (sub)layer."""
    out = []
    for ts in result.time_series:
        steps = ts.norms.shape[1]
        if steps < 3:
            continue
        out.append((ts.layer, ts.sublayer, _geo_ratio(ts.norms[:, 0], ts.norms[:, steps - 2]), steps))
    return out


def _post_ln_stacks(result: SimulationResult, thresholds: Thresholds) -> list[UnitStats]:
    units = [u for u in result.units if u.type == "transformer_encoder"]
    deep: list[UnitStats] = []
    for pointer in dict.fromkeys(u.pointer for u in units):
        stack = [u for u in units if u.pointer == pointer]
        layer = next(p.layer for p in result.plan.all_units() if p.pointer == pointer)
        if isinstance(layer, S.TransformerEncoderLayer) and not layer.norm_first and len(stack) >= thresholds.post_ln_depth:
            deep.extend(stack)
    return deep


def measure(code: str, result: SimulationResult, thresholds: Thresholds) -> float:
    """The metric of ``code`` on ``result`` (nan when it does not apply)."""
    if code == "vanishing_gradient":
        return depth_ratio(result)[0]
    if code == "exploding_gradient":
        values = [v for v in (depth_ratio(result)[0], activation_growth(result)) if not math.isnan(v)]
        return max(values) if values else math.nan
    if code == "saturation":
        return max((u.mean("saturated_fraction") for u in result.units if "saturated_fraction" in u.values),
                   default=math.nan)
    if code == "dead_units":
        return max((u.mean("dead_fraction") for u in result.units if "dead_fraction" in u.values),
                   default=math.nan)
    if code == "nonfinite":
        return float(any(u.mean("nonfinite_forward") > 0 or u.mean("nonfinite_backward") > 0 for u in result.units)
                     or not all(math.isfinite(x) for x in result.losses))
    if code == "vanishing_through_time":
        return min((r for _, _, r, _ in time_ratios(result)), default=math.nan)
    if code == "exploding_through_time":
        return max((r for _, _, r, _ in time_ratios(result)), default=math.nan)
    if code == "post_ln_depth_risk":
        # Measured on any stack, so a Pre-LN re-simulation reports its own figure.
        stack = [u for u in result.units if u.type == "transformer_encoder"]
        return stack[-1].geo("grad_norm") if stack else math.nan
    raise KeyError(code)


def assess(code: str, value: float, result: SimulationResult, thresholds: Thresholds) -> str | None:
    """The severity of ``code`` at metric ``value``; None when healthy or not applicable."""
    if math.isnan(value):
        return None
    t = thresholds
    if code in ("vanishing_gradient", "vanishing_through_time"):
        return t.vanishing(value)
    if code in ("exploding_gradient", "exploding_through_time"):
        return t.exploding(value)
    if code == "saturation":
        return t.fraction(value, t.saturation_warning, t.saturation_error)
    if code == "dead_units":
        return t.fraction(value, t.dead_warning, t.dead_error)
    if code == "nonfinite":
        return "error" if value > 0 else None
    if code == "post_ln_depth_risk":
        return "warning" if _post_ln_stacks(result, t) else None
    raise KeyError(code)


CODES: tuple[str, ...] = (
    "nonfinite", "exploding_gradient", "vanishing_gradient", "exploding_through_time",
    "vanishing_through_time", "saturation", "dead_units", "post_ln_depth_risk",
)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _layer_activations(units: list[UnitStats]) -> str:
    acts = sorted({u.activation or "identity" for u in units})
    return "/".join(acts)


def detect(result: SimulationResult, thresholds: Thresholds) -> list[Detection]:
    """All findings on ``result``, most severe first."""
    found: list[Detection] = []
    for code in CODES:
        value = measure(code, result, thresholds)
        severity = assess(code, value, result, thresholds)
        if severity is None:
            continue
        found.append(_describe(code, severity, value, result, thresholds))
    if any(d.code == "nonfinite" for d in found):
        # Once values are NaN/Inf every ratio is meaningless; keep the one finding that is true.
        found = [d for d in found if d.code in ("nonfinite", "exploding_gradient")]
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda d: (order[d.severity], CODES.index(d.code)))


def _describe(code: str, severity: str, value: float, result: SimulationResult, t: Thresholds) -> Detection:
    if code in ("vanishing_gradient", "exploding_gradient"):
        ratio, units = depth_ratio(result)
        growth = activation_growth(result)
        depth = len(units)
        per_layer = ratio ** (1 / (depth - 1)) if depth > 1 and ratio > 0 and math.isfinite(ratio) else math.nan
        evidence = {
            "metric": "output_grad_ratio_first_to_last",
            "value": value,
            "threshold": t.vanishing_warning if code == "vanishing_gradient" else t.exploding_warning,
            "layers": [units[0].name, units[-1].name],
            "grad_ratio": ratio,
            "log10_grad_ratio": math.log10(ratio) if ratio > 0 and math.isfinite(ratio) else None,
            "per_layer_factor": per_layer,
            "depth": depth,
            "activation_growth": growth,
            "first_output_grad_norm": units[0].geo("output_grad_norm"),
            "last_output_grad_norm": units[-1].geo("output_grad_norm"),
        }
        acts = _layer_activations(units)
        if code == "vanishing_gradient":
            summary = (f"gradient shrinks {_fmt(1 / ratio) if ratio > 0 else 'infinitely'}x from "
                       f"{units[-1].name} back to {units[0].name} ({depth} layers, {_fmt(per_layer)} per layer)")
            explanation = (f"Backpropagation multiplies one Jacobian per layer; through these {acts} layers the "
                           f"typical factor is {_fmt(per_layer)} < 1, so the early layers barely learn.")
        else:
            which = "gradient" if ratio >= growth or math.isnan(growth) else "activation"
            shown = ratio if which == "gradient" else growth
            summary = (f"{which} norm grows {_fmt(shown)}x across {depth} layers "
                       f"({units[0].name} .. {units[-1].name})")
            explanation = (f"The per-layer gain of these {acts} layers is above 1 (weights too large for the "
                           "activation, or residual branches adding up), so signals grow exponentially with depth.")
        return Detection(code, severity, evidence["metric"], value, summary, explanation, evidence, units)
    if code in ("vanishing_through_time", "exploding_through_time"):
        ratios = time_ratios(result)
        layer, sub, ratio, steps = (min if code == "vanishing_through_time" else max)(ratios, key=lambda r: r[2])
        per_step = ratio ** (1 / (steps - 2)) if ratio > 0 and math.isfinite(ratio) else math.nan
        unit = result.unit(layer)
        evidence = {
            "metric": "output_grad_ratio_first_to_last_step",
            "value": value,
            "threshold": t.vanishing_warning if code == "vanishing_through_time" else t.exploding_warning,
            "layers": [layer],
            "sublayer": sub,
            "time_steps": [0, steps - 2],
            "sequence_length": steps,
            "per_step_factor": per_step,
            "log10_ratio": math.log10(ratio) if ratio > 0 and math.isfinite(ratio) else None,
        }
        verb = "shrinks" if code == "vanishing_through_time" else "grows"
        shown = 1 / ratio if code == "vanishing_through_time" and ratio > 0 else ratio
        summary = f"{layer}: dL/dh_t {verb} {_fmt(shown)}x from step {steps - 2} back to step 0 ({_fmt(per_step)} per step)"
        explanation = ("An unrolled recurrent cell is a deep net of depth T with shared weights; its per-step "
                       f"Jacobian factor {_fmt(per_step)} compounds over {steps - 2} steps.")
        return Detection(code, severity, evidence["metric"], value, summary, explanation, evidence, [unit])
    if code in ("saturation", "dead_units"):
        key = "saturated_fraction" if code == "saturation" else "dead_fraction"
        warn = t.saturation_warning if code == "saturation" else t.dead_warning
        hit = [u for u in result.units if key in u.values and u.mean(key) >= warn]
        worst = max(hit, key=lambda u: u.mean(key))
        evidence = {"metric": f"max_{key}", "value": value, "threshold": warn,
                    "layers": [u.name for u in hit], "fractions": {u.name: u.mean(key) for u in hit}}
        if code == "saturation":
            summary = f"{value:.0%} of units in {worst.name} sit in the flat tails of {worst.activation}"
            explanation = ("Pre-activations too large for a saturating activation push it into its flat tails, "
                           "where its derivative is near zero and no gradient passes.")
        else:
            summary = f"{value:.0%} of units in {worst.name} are zero for the whole batch ({len(hit)} layers affected)"
            explanation = ("A ReLU unit whose pre-activation is negative for every input outputs 0 and gets "
                           "0 gradient, so it never recovers (a too-negative bias or a badly scaled init).")
        return Detection(code, severity, evidence["metric"], value, summary, explanation, evidence, hit)
    if code == "nonfinite":
        fwd = [u for u in result.units if u.mean("nonfinite_forward") > 0]
        bwd = [u for u in result.units if u.mean("nonfinite_backward") > 0]
        first = fwd[0] if fwd else (bwd[-1] if bwd else None)
        where = f"{'forward' if fwd else 'backward'} pass at {first.name}" if first else "the loss"
        evidence = {"metric": "nonfinite", "value": value, "layers": [first.name] if first else [],
                    "pass": "forward" if fwd else "backward", "losses": [_fmt(x) for x in result.losses]}
        return Detection(code, severity, "nonfinite", value, f"NaN/Inf first appears in the {where}",
                         "Values overflowed (or an operation was undefined), so every later number is NaN/Inf "
                         "and training cannot proceed.", evidence, [first] if first else [])
    if code == "post_ln_depth_risk":
        stack = _post_ln_stacks(result, t)
        g_first, g_last = stack[0].geo("grad_norm"), stack[-1].geo("grad_norm")
        evidence = {"metric": "last_layer_grad_norm", "value": value, "threshold": float(t.post_ln_depth),
                    "layers": [stack[0].name, stack[-1].name], "depth": len(stack),
                    "first_layer_grad_norm": g_first, "last_layer_grad_norm": g_last}
        summary = (f"Post-LN Transformer stack of {len(stack)} layers: last-layer gradient norm {_fmt(g_last)} "
                   "does not shrink with depth")
        explanation = ("In Post-LN Transformers the gradient at the last layers is large at initialisation "
                       "(Xiong et al. 2020), so deep stacks need learning-rate warm-up or diverge; Pre-LN does not.")
        return Detection(code, severity, "last_layer_grad_norm", value, summary, explanation, evidence, stack)
    raise KeyError(code)
