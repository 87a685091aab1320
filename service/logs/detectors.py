"""Series -> findings over time, in the same vocabulary as the architecture check.

One detector per finding code, registered on its code's rule (``@detects(code)``). Every finding's
evidence carries ``metric`` (the series as the log names it), ``steps`` (``[first, last]`` in the
log's own step unit) and ``layers`` where layers are involved, plus the key numbers. Remedies take
their parameters from the data (:mod:`gradhealth.logs.remedies`).
"""

from __future__ import annotations

import math

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding, Remedy
from gradhealth.core.rules import Detector, detects, rule, rules
from gradhealth.logs.remedies import clipping, lower_lr, raise_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import early_baseline, finite, rolling_median_mad, smooth
from gradhealth.logs.stats import num as _num
from gradhealth.logs.stats import span as _span
from gradhealth.logs.thresholds import LogThresholds


def _finding(code: str, severity: str, summary: str, explanation: str, evidence: dict,
             remedies: list[Remedy | None]) -> Finding:
    return rule(code).finding(severity, summary, explanation, evidence, remedies)


# --- detectors ---------------------------------------------------------------------------------


@detects("nonfinite")
def nonfinite(run: RunLog, t: LogThresholds) -> list[Finding]:
    hits = []
    for s in run.series:
        bad = ~np.isfinite(s.values)
        if bad.any():
            i = int(np.argmax(bad))
            hits.append((float(s.steps[i]), s, int(bad.sum())))
    if not hits:
        return []
    hits.sort(key=lambda h: h[0])
    step, first, _ = hits[0]
    names = [h[1].name for h in hits]
    layers = sorted({h[1].layer for h in hits if h[1].layer})
    kind = "NaN" if np.isnan(first.values[np.argmax(~np.isfinite(first.values))]) else "Inf"
    last_step = max(float(h[1].steps[-1]) for h in hits)
    note = ""
    loss = run.first("loss")
    if first.role == "grad_norm" and loss is not None and np.all(np.isfinite(loss.values)):
        note = " (the loss stayed finite: some trainers replace a NaN loss with a running average)"
    return [_finding(
        "nonfinite", "error",
        f"{kind} first appears in {first.name} at step {_num(step)}{note}",
        "Values overflowed or an operation was undefined; from here on updates are NaN/Inf.",
        {"metric": first.name, "steps": [_num(step), _num(last_step)], "layers": layers or None,
         "metrics": names, "counts": {h[1].name: h[2] for h in hits}, "value": None},
        [clipping(run, t), lower_lr(run, at_step=step, why="NaN/Inf appeared")])]


def _judged(run: RunLog, role: str, t: LogThresholds) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The run's main series of ``role`` with its finite points, when it has enough to judge."""
    s = run.first(role)  # type: ignore[arg-type]  # callers pass Role literals typed as str
    if s is None:
        return None
    steps, v = finite(s)
    return (s, steps, v) if len(v) >= t.min_points else None


@detects("exploding_gradient")
def exploding(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _judged(run, "grad_norm", t)
    if found is None:
        return []
    s, steps, v = found
    base = early_baseline(v, t.baseline_fraction)
    if not base > 0:
        return []
    late = float(np.median(v[-max(3, len(v) // 4):]))
    ratio = late / base
    severity = "error" if ratio >= t.explode_error else "warning" if ratio >= t.explode_warning else None
    if severity is None:
        return []
    above = np.nonzero(v > t.explode_warning * base)[0]
    onset = steps[above[0]] if len(above) else steps[-1]
    return [_finding(
        "exploding_gradient", severity,
        f"{s.name} grew {ratio:.3g}x over its early baseline {base:.3g} (last quarter median {late:.3g}), "
        f"from step {_num(onset)}",
        "The gradient norm keeps growing instead of settling: an unstable learning rate or a per-layer gain "
        "above 1 compounding through training.",
        {"metric": s.name, "steps": [_num(onset), _num(steps[-1])], "value": ratio, "threshold": t.explode_warning,
         "baseline": base, "late_median": late},
        [clipping(run, t), lower_lr(run, at_step=float(onset), why="gradient norm exploding"),
         R.weight_decay()])]


def _spikes(s: Series, t: LogThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    steps, v = finite(s)
    if s.role == "grad_norm":
        # A step with exactly zero gradient made no update (e.g. RL batches without reward variance):
        # it is not part of the baseline a spike stands out from.
        steps, v = steps[v != 0], v[v != 0]
    med, mad = rolling_median_mad(v, t.window)
    with np.errstate(invalid="ignore"):
        # Only against a positive baseline: next to a run of exact zeros a ratio means nothing.
        spike = (med > 0) & (v > t.spike_factor * med) & (v - med > 6 * 1.4826 * np.maximum(mad, 1e-12 * med))
    return steps, v, med, spike, np.nonzero(spike)[0]


def _recovered(v: np.ndarray, med: np.ndarray, i: int, window: int) -> bool:
    after = v[i + 1:i + 1 + window]
    return len(after) > 0 and bool(np.median(after) < 2 * med[i])


@detects("gradient_spike")
def spikes(run: RunLog, t: LogThresholds, role: str = "grad_norm") -> list[Finding]:
    s = run.first(role)  # type: ignore[arg-type]  # callers pass Role literals typed as str
    if s is None or np.sum(np.isfinite(s.values)) < max(t.min_points, t.window):
        return []
    steps, v, med, spike, idx = _spikes(s, t)
    if len(idx) == 0:
        return []
    recovered = [_recovered(v, med, i, t.window) for i in idx]
    worst = idx[int(np.argmax(v[idx] / med[idx]))]
    fraction = len(idx) / len(v)
    all_recovered = all(recovered)
    severity = "warning" if (fraction > t.spike_warning_fraction or not all_recovered) else "info"
    code = "gradient_spike" if role == "grad_norm" else "loss_spike"
    what = "gradient norm" if role == "grad_norm" else "loss"
    remedies: list[Remedy | None] = [clipping(run, t)] if role == "grad_norm" else [clipping(run, t)]
    first_step = float(steps[idx[0]])
    early = first_step <= steps[0] + 0.1 * (steps[-1] - steps[0])
    remedies.append(lower_lr(run, at_step=first_step,
                             warmup_steps=int(2 * (first_step - steps[0])) if early and first_step > steps[0] else 0,
                             why=f"{what} spikes"))
    return [_finding(
        code, severity,
        f"{len(idx)} {what} spike(s) in {s.name}, the largest {v[worst]:.3g} at step {_num(steps[worst])} "
        f"({v[worst] / med[worst]:.3g}x its rolling median); "
        + ("the run recovered after each" if all_recovered else "the run did not recover from every one"),
        f"Isolated {what} values far above the recent median: a bad batch, a too-large step or an "
        "instability that " + ("settled again." if all_recovered else "did not settle."),
        {"metric": s.name, "steps": [_num(steps[idx[0]]), _num(steps[idx[-1]])], "value": float(len(idx)),
         "spike_steps": [_num(x) for x in steps[idx][:50]], "max_ratio": float(v[worst] / med[worst]),
         "fraction_of_steps": fraction, "recovered": all_recovered},
        remedies)]


@detects("loss_spike")
def loss_spikes(run: RunLog, t: LogThresholds) -> list[Finding]:
    return spikes(run, t, role="loss")


@detects("vanishing_gradient")
def vanishing(run: RunLog, t: LogThresholds) -> list[Finding]:
    found: list[Finding] = []
    layers = [s for s in run.by_role("layer_grad_norm") if np.sum(np.isfinite(s.values)) >= 3]
    weights = [s for s in layers if "weight" in (s.layer or s.name)] or layers
    if len(weights) >= 2:
        first, last = weights[0], weights[-1]
        a = float(np.median(finite(first)[1]))
        b = float(np.median(finite(last)[1]))
        if b > 0 and a >= 0 and a / b < t.vanishing_layer_ratio and a > 0:
            ratio = a / b
            steps = np.concatenate([first.steps, last.steps])
            found.append(_finding(
                "vanishing_gradient", "error" if ratio < t.vanishing_layer_ratio**2 else "warning",
                f"{first.layer or first.name} gets {1 / ratio:.3g}x less gradient than {last.layer or last.name} "
                f"(median {a:.3g} vs {b:.3g})",
                "The gradient shrinks on its way back to the first layers, so they barely learn (saturating "
                "activations, small init or depth without skips/normalisation).",
                {"metric": first.name, "steps": [_num(steps.min()), _num(steps.max())], "value": ratio,
                 "threshold": t.vanishing_layer_ratio, "layers": [first.layer or first.name, last.layer or last.name],
                 "first_layer_median": a, "last_layer_median": b},
                [R.relu_family_activation("the hidden layers"),
                 R.init("kaiming_normal", "the ReLU-family layers"),
                 R.normalisation("batchnorm", "each hidden layer"),
                 R.residual_connections("the deep part of the network")]))
    s = run.first("grad_norm")
    loss = run.first("loss")
    if s is not None and loss is not None and not found:
        steps, v = finite(s)
        _, lv = finite(loss)
        if len(v) >= t.min_points and len(lv) >= t.min_points:
            base = early_baseline(v, t.baseline_fraction)
            late = float(np.median(v[-max(3, len(v) // 4):]))
            sl = smooth(lv, 9)
            stalled = (sl[len(sl) // 2] - sl[-1]) / max(abs(sl[len(sl) // 2]), 1e-12) < t.plateau_improvement
            if base > 0 and late / base < t.vanishing_decay and stalled:
                found.append(_finding(
                    "vanishing_gradient", "warning",
                    f"{s.name} decayed {base / late:.3g}x (to {late:.3g}) while the loss stalled",
                    "Gradients decaying towards zero while the loss no longer improves: the network stopped learning.",
                    {"metric": s.name, "steps": _span(steps), "value": late / base, "threshold": t.vanishing_decay,
                     "baseline": base, "late_median": late},
                    [R.relu_family_activation("the hidden layers"),
                     R.normalisation("batchnorm", "each hidden layer")]))
    return found


@detects("dead_layer")
def dead_layers(run: RunLog, t: LogThresholds) -> list[Finding]:
    dead = []
    for s in run.by_role("layer_grad_norm"):
        _, v = finite(s)
        if len(v) >= 3:
            zero = v == 0.0
            # dead from some point on, for at least half the run
            tail = len(zero) - int(np.argmax(~zero[::-1])) if not zero.all() else 0
            if zero.all() or (tail and zero[tail:].all() and len(zero) - tail >= len(zero) // 2):
                first_zero = int(np.argmax(zero)) if not zero.all() else 0
                dead.append((s, first_zero))
    if not dead:
        return []
    names = [s.layer or s.name for s, _ in dead]
    s0, i0 = dead[0]
    return [_finding(
        "dead_layer", "warning" if len(dead) < len(run.by_role("layer_grad_norm")) else "error",
        f"{len(dead)} layer(s) get exactly zero gradient: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""),
        "A layer whose gradient is exactly zero does not learn: dead ReLUs, a detached branch, frozen or "
        "unused parameters.",
        {"metric": s0.name, "steps": [_num(s0.steps[i0]), _num(s0.steps[-1])], "layers": names,
         "value": float(len(dead))},
        [R.relu_family_activation("the dead layers", "leaky_relu"),
         R.init("kaiming_normal", "the dead layers"),
         lower_lr(run, at_step=float(s0.steps[i0]), why="units died")])]


@detects("zero_gradient")
def zero_gradient(run: RunLog, t: LogThresholds) -> list[Finding]:
    """Steps on which the total gradient norm is exactly zero: no update happened on them."""
    found = _judged(run, "grad_norm", t)
    if found is None:
        return []
    s, steps, v = found
    zero = v == 0.0
    fraction = float(np.mean(zero))
    if fraction < t.zero_gradient_fraction or zero.all():
        return []  # all zero is a dead run: dead_layer / vanishing speak to it
    idx = np.nonzero(zero)[0]
    return [_finding(
        "zero_gradient", "warning",
        f"{s.name} is exactly 0 on {len(idx)} of {len(v)} logged steps ({fraction:.0%}), first at step "
        f"{_num(steps[idx[0]])}",
        "A step with an exactly zero gradient makes no update: the loss did not depend on the parameters for "
        "that batch (e.g. RL batches without reward variance, fully masked batches, or a detached graph).",
        {"metric": s.name, "steps": [_num(steps[idx[0]]), _num(steps[idx[-1]])], "value": fraction,
         "threshold": t.zero_gradient_fraction, "zero_steps": [_num(x) for x in steps[idx][:50]]},
        [])]


CLIP_KEYS = ("max_grad_norm", "clip_grad_norm", "gradient_clip_val", "clipnorm", "opt_clipnorm", "clip", "grad_clip")


def clip_threshold(run: RunLog) -> float | None:
    for key in CLIP_KEYS:
        raw = run.params.get(key)
        try:
            value = float(raw) if raw is not None else math.nan
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


@detects("clipping_saturated")
def clipping_saturated(run: RunLog, t: LogThresholds) -> list[Finding]:
    limit = clip_threshold(run)
    found = _judged(run, "grad_norm", t)
    if limit is None or found is None:
        return []
    s, steps, v = found
    frac = float(np.mean(v > limit))
    if frac < t.clip_saturated_fraction:
        return []
    factor = limit / float(np.median(v))
    return [_finding(
        "clipping_saturated", "warning",
        f"pre-clip {s.name} is above max_norm {limit:g} on {frac:.0%} of steps (median {np.median(v):.3g})",
        "Clipping that acts on nearly every step is not catching spikes: it is hiding a gradient that is "
        "too large all the time, and effectively rescales the learning rate.",
        {"metric": s.name, "steps": _span(steps), "value": frac, "threshold": t.clip_saturated_fraction,
         "max_norm": limit, "median_norm": float(np.median(v))},
        # The one data-derived factor: what brings the typical step under the threshold.
        [lower_lr(run, at_step=float(steps[0]), factor=factor,
                  why="so that typical steps fall under the clipping threshold") if factor < 1 else None])]


def _positive_loss(run: RunLog, t: LogThresholds) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The training loss when relative changes of it mean something: enough points, and positive
    (an RL objective that sits at 0 or changes sign has no scale to be relative to)."""
    found = _judged(run, "loss", t)
    if found is None or np.min(found[2]) < 0 or np.median(found[2]) <= 0:
        return None
    return found


@detects("loss_divergence")
def divergence(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _positive_loss(run, t)
    if found is None:
        return []
    loss, steps, v = found
    sm = smooth(v, 9)
    i_min = int(np.argmin(sm))
    low, end = float(sm[i_min]), float(sm[-1])
    if i_min >= len(sm) - 3 or low <= 0 and end <= 0:
        return []
    rise = end / low if low > 0 else math.inf
    if rise < t.divergence_factor:
        return []
    # onset: where the smoothed loss leaves its minimum for good
    onset_i = i_min + int(np.argmax(sm[i_min:] > low * (1 + (t.divergence_factor - 1) / 2)))
    onset = float(steps[onset_i])
    return [_finding(
        "loss_divergence", "error",
        f"{loss.name} rose {rise:.3g}x from its minimum {low:.3g} (step {_num(steps[i_min])}) to {end:.3g}",
        "The loss climbs back up for good: the learning rate is too large for this stage of training, or an "
        "explosion is surfacing in the loss.",
        {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": rise,
         "threshold": t.divergence_factor, "minimum": low, "minimum_step": _num(steps[i_min]), "final": end},
        [lower_lr(run, at_step=onset, why=f"the loss diverged from step {_num(onset)}"),
         clipping(run, t)])]


@detects("loss_plateau")
def plateau(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _positive_loss(run, t)
    if found is None:
        return []
    loss, steps, v = found
    sm = smooth(v, max(3, min(9, len(v) // 4)))
    half = len(sm) // 2
    scale = max(abs(sm[0]), abs(sm[half]), 1e-12)
    late = (sm[half] - sm[-1]) / scale
    overall = (sm[0] - sm[-1]) / max(abs(sm[0]), 1e-12)
    if late >= t.plateau_improvement or sm[-1] > sm[half] * t.divergence_factor:
        return []
    never = overall < t.plateau_early_fraction
    return [_finding(
        "loss_plateau", "warning" if never else "info",
        (f"{loss.name} barely moved: {overall:.1%} lower at the end than at the start" if never else
         f"{loss.name} improved {late:.2%} over the last half of the run (after falling {overall:.0%} before)"),
        ("The loss stalled from the start: the model is not learning (vanishing gradients, a learning rate far "
         "too small, or a data/label problem)." if never else
         "The loss has flattened out: convergence, a decayed learning rate, or capacity reached."),
        {"metric": loss.name, "steps": [_num(steps[half]), _num(steps[-1])], "value": late,
         "threshold": t.plateau_improvement, "overall_improvement": overall},
        [raise_lr(run, why="the loss is not moving") if never else None])]


@detects("loss_oscillation")
def oscillation(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _positive_loss(run, t)
    if found is None or len(found[2]) < 12:
        return []
    loss, steps, v = found
    trend = smooth(v, 11)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(v - trend) / np.abs(trend)
    rel = rel[np.isfinite(rel)]
    d = np.diff(v)
    flips = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1]))) if len(d) > 2 else 0.0
    level = float(np.median(rel)) if len(rel) else 0.0
    if level < t.oscillation_ratio or flips < 0.4:
        return []
    return [_finding(
        "loss_oscillation", "warning",
        f"{loss.name} swings {level:.0%} around its trend (median), changing direction on {flips:.0%} of steps",
        "A loss that jumps up and down around its trend is taking steps too large for the curvature.",
        {"metric": loss.name, "steps": _span(steps), "value": level, "threshold": t.oscillation_ratio,
         "direction_changes": flips},
        [lower_lr(run, at_step=float(steps[0]), why="the loss oscillates"), clipping(run, t)])]


@detects("validation_divergence")
def validation(run: RunLog, t: LogThresholds) -> list[Finding]:
    val, loss = run.first("val_loss"), run.first("loss")
    if val is None or loss is None:
        return []
    vs, vv = finite(val)
    if len(vv) < 4:
        return []
    # Validation losses are noisy: compare smoothed values, and ask the rise to stand out of the noise.
    sm = smooth(vv, max(3, len(vv) // 10))
    i_min = int(np.argmin(sm))
    best, last = float(sm[i_min]), float(sm[-1])
    noise = 1.4826 * float(np.median(np.abs(vv - sm)))
    if i_min >= len(vv) - 2 or best <= 0 or (last - best) / best < t.validation_rise or last - best < 3 * noise:
        return []
    ls, lv = finite(loss)
    after = lv[ls >= vs[i_min]]
    at_best = lv[ls <= vs[i_min]]
    if len(after) < 2 or len(at_best) == 0:
        return []
    train_then, train_now = float(np.median(at_best[-3:])), float(np.median(after[-3:]))
    if not train_now < train_then:
        return []
    patience = int(len(vv) - 1 - i_min)
    return [_finding(
        "validation_divergence", "warning",
        f"{val.name} rose {(last - best) / best:.0%} from its best {best:.3g} (step {_num(vs[i_min])}) while "
        f"{loss.name} fell from {train_then:.3g} to {train_now:.3g}",
        "Validation loss rising while training loss falls is overfitting: the model memorises the training set.",
        {"metric": val.name, "steps": [_num(vs[i_min]), _num(vs[-1])], "value": (last - best) / best,
         "threshold": t.validation_rise, "best": best, "best_step": _num(vs[i_min]), "train_metric": loss.name},
        [R.early_stopping(float(vs[i_min]), max(2, patience // 2)), R.weight_decay()])]


@detects("truncated_log")
def truncated(run: RunLog, t: LogThresholds) -> list[Finding]:
    notes = [w for w in run.warnings if w.code in ("truncated_log", "corrupt_record")]
    if not notes and not run.traceback:
        return []
    last_line = run.traceback.strip().splitlines()[-1] if run.traceback else None
    summary = (f"the log ends in a traceback: {last_line}" if last_line else
               "; ".join(w.message for w in notes[:3]))
    steps = [s.steps[-1] for s in run.series if len(s)]
    last_step = _num(max(steps)) if steps else None
    return [_finding(
        "truncated_log", "warning", summary,
        "The run stopped abnormally or the file was cut or damaged; everything read before the damage is "
        "still analysed.",
        {"metric": None, "steps": [last_step, last_step] if last_step is not None else None,
         "value": float(len(notes)), "problems": [w.message for w in notes][:20], "traceback_last_line": last_line},
        [])]


@detects("insufficient_data")
def insufficient(run: RunLog, t: LogThresholds) -> list[Finding]:
    main = [s for s in (run.first("loss"), run.first("grad_norm")) if s is not None]
    if not main:
        return [_finding(
            "insufficient_data", "warning",
            "the log has no training loss and no gradient norm to judge"
            + (f" (series found: {', '.join(s.name for s in run.series[:8])})" if run.series else ""),
            "Without a loss or gradient-norm series none of the checks can run; log them (see the recorder).",
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50]}, [])]
    longest = max(main, key=lambda s: int(np.sum(np.isfinite(s.values))))
    n = int(np.sum(np.isfinite(longest.values)))
    if n >= t.min_points:
        return []
    return [_finding(
        "insufficient_data", "info",
        f"only {n} point(s) in {longest.name}: too short to judge trends",
        "Trend checks need at least a few points; only the per-point checks (NaN/Inf) ran.",
        {"metric": longest.name, "steps": _span(longest.steps) if len(longest) else None, "value": float(n),
         "threshold": float(t.min_points)}, [])]


#: The log check's detectors, in registry order (the order findings of equal severity are listed).
DETECTORS: tuple[Detector, ...] = tuple(r.detector for r in rules() if r.detector is not None)
