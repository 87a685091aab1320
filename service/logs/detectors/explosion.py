"""Gradient norms that blow up or spike: a total norm growing exponentially or jumping by decades
(``exploding_gradient``), and isolated spikes above the rolling baseline (``gradient_spike``,
``loss_spike``).
"""

from __future__ import annotations

import math
import re

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding, Remedy
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding, judged, times
from gradhealth.logs.detectors.layers import converged_loss, exploding_layers
from gradhealth.logs.detectors.rl import on_rollouts
from gradhealth.logs.detectors.schedule import lr_growth, lr_note, schedule_remedy
from gradhealth.logs.remedies import (
    clip_in_force,
    clipping,
    default_clipping,
    learning_rate_jump,
    lower_lr,
    sized_lower_lr,
)
from gradhealth.logs.series import RunLog, Series, final_series
from gradhealth.logs.stats import (
    centred_median,
    early_baseline,
    fill_leading_baseline,
    finite,
    late_level,
    median,
    resolution,
    rolling_median_mad,
    second_diff_noise,
    smooth,
)
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds


def _exploding_tail(s: Series, steps: np.ndarray, v: np.ndarray, base: float, t: LogThresholds
                    ) -> tuple[int, bool]:
    """How many last finite points of a norm grew far above its baseline and never came back (0 when
    none), and whether the series then turned non-finite: at least ``explode_min_points`` of them, or
    fewer that climb straight into Inf/NaN (a fast blow-up leaves only a few finite points)."""
    high = v > t.explode_warning * base
    tail = len(high) if high.all() else int(np.argmax(~high[::-1]))
    after = s.values[s.steps > steps[-1]] if len(steps) else s.values[:0]
    into_inf = bool(len(after)) and not np.all(np.isfinite(after))
    if tail >= t.explode_min_points or (into_inf and tail >= 2 and bool(np.all(np.diff(v[-tail:]) > 0))):
        return tail, into_inf
    return 0, into_inf


def sustained_growth(s: Series, t: LogThresholds, until: float | None = None) -> dict | None:
    """The total gradient norm ``s``'s sustained growth over its early baseline, measured on its finite
    points (those before step ``until`` where given): the last points all above ``explode_warning`` x
    the baseline and never back (:func:`_exploding_tail`). ``{"base", "tail", "into_inf", "onset",
    "tail_median", "ratio", "peak", "peak_step", "first_step", "last_step"}``, or None where there
    are too few points, no positive baseline or no such tail. The one measure both
    ``exploding_gradient`` and ``nonfinite`` (what led up to a NaN) read, so they cannot disagree on
    whether the norm grew (newuser16 #1: a norm 2e4x its baseline called "flat" before the NaN)."""
    steps, v = finite(s)
    if until is not None:
        keep = steps < until
        steps, v = steps[keep], v[keep]
    if len(v) < t.min_points:
        return None
    base = early_baseline(v, t.baseline_fraction)
    if not base > 0:
        return None
    tail, into_inf = _exploding_tail(s, steps, v, base, t)
    if not tail:
        return None
    tail_median = float(median(v[-tail:]))
    top = len(v) - tail + int(np.argmax(v[-tail:]))
    return {"base": base, "tail": int(tail), "into_inf": into_inf, "onset": float(steps[len(v) - tail]),
            "tail_median": tail_median, "ratio": tail_median / base, "peak": float(v[top]),
            "peak_step": float(steps[top]), "first_step": float(steps[0]), "last_step": float(steps[-1]),
            "jump": _step_change(steps, v, tail, base, tail_median)}


#: The share of the rise (in log units) from the early baseline to the level a grown tail holds that
#: one logged step into it must carry for the growth to be a step change, not compounding growth
_STEP_SHARE = 0.75
#: How far the median of a step change's later half may differ from its first half's (either way)
#: while the norm still holds the level it jumped to
_STEP_HOLD = 3.0


def _step_change(steps: np.ndarray, v: np.ndarray, tail: int, base: float, level: float) -> dict | None:
    """A grown tail that a norm reached in one logged step and then held, a step change, not
    compounding growth (newuser19 #3: 1 for 150 steps, then 1e4 flat, was "grew steadily from step
    150 to 1e+04 (step 150)"): the one step into the tail carries ``_STEP_SHARE`` or more of the
    rise, in log units, from the baseline ``base`` to the tail's median ``level``, and the tail's later
    half keeps its first half's level within ``_STEP_HOLD``. ``{"step", "before_step", "before",
    "after", "factor"}``, or None where the tail grew (or fell) on its own or there is no point before it."""
    first = len(v) - tail
    if first < 1 or not v[first - 1] > 0 or not level > base:
        return None
    before, after = float(v[first - 1]), float(v[first])
    if not math.log(after / before) >= _STEP_SHARE * math.log(level / base):
        return None
    half = v[first:]
    early, late = float(median(half[: max(1, len(half) // 2)])), float(median(half[len(half) // 2:]))
    if not (early > 0 and 1 / _STEP_HOLD <= late / early <= _STEP_HOLD):
        return None
    return {"step": float(steps[first]), "before_step": float(steps[first - 1]), "before": before,
            "after": after, "factor": after / before}


@detects("exploding_gradient")
def exploding(run: RunLog, t: LogThresholds) -> list[Finding]:
    return _exploding_total(run, t) or exploding_layers(run, t)


def _exploding_total(run: RunLog, t: LogThresholds) -> list[Finding]:
    """The total gradient norm growing over training (or already astronomical, or jumping)."""
    found = judged(run, "grad_norm", t)
    if found is None:
        beyond = _astronomical(run, t) or _steep(run, t)
        return beyond if beyond and beyond[0].severity != "info" else (_jump(run, t) or beyond)
    s, steps, v = found
    base = early_baseline(v, t.baseline_fraction)
    if not base > 0:
        return []
    # the last quarter of the logged points, its finite ones only: NaN where all are NaN/Inf
    late, late_finite, late_nonfinite = late_level(s)
    ratio = late / base if late_finite else 0.0
    # Sustained growth the run never came back from: the last finite points all far above the
    # baseline (a long healthy run that explodes in its last few dozen steps, often into Inf,
    # has a healthy last-quarter median). Isolated spikes come back; these do not.
    grown = sustained_growth(s, t)
    tail, into_inf = (grown["tail"], grown["into_inf"]) if grown else (0, False)
    sustained = tail > 0
    tail_median = grown["tail_median"] if grown else math.nan
    if grown:
        ratio = max(ratio, grown["ratio"])
    severity = "error" if ratio >= t.explode_error else "warning" if ratio >= t.explode_warning else None
    if severity != "error":
        # a norm beyond any healthy network's is an error whatever its baseline: a run already
        # blown up at its first logged step (3.8e12 growing to 1.4e14) has a baseline that hides it
        astronomical = _astronomical(run, t) or _steep(run, t)
        # (a note that the ratio does not count, steady weights under Adam, hides no growth)
        if severity is None or (astronomical and astronomical[0].severity != "info"):
            return astronomical
    if sustained and grown is not None:
        # the figure the summary states is the evidence's value: the peak over the baseline, with the
        # median of the grown points beside it (newuser11: value 4.27e9, the median's, under a
        # summary of 5.36e17x, the peak's)
        onset = steps[len(v) - tail]
        top = len(v) - tail + int(np.argmax(v[-tail:]))
        peak = float(v[top])
        value = peak / base
        ends = " and then became non-finite" if into_inf else ""
        summary = (f"{grown_words(s, grown)}, {times(value)} its early baseline {base:.3g} (median "
                   f"{tail_median:.3g} over those {tail} logged points){ends}")
    else:
        above = np.nonzero(v > t.explode_warning * base)[0]
        onset = steps[above[0]] if len(above) else steps[-1]
        top = int(np.argmax(v))
        peak = float(v[top])
        value = ratio
        summary = (f"{s.name} grew {times(ratio)} over its early baseline {base:.3g} (last quarter median "
                   f"{late:.3g}" + (f" over its {late_finite} finite points, {late_nonfinite} NaN/Inf"
                                    if late_nonfinite else "") + f"), from {s.where(onset)}")
    # the learning rate usually started growing before the norm crossed the line
    growth = lr_growth(run, since=float(steps[max(0, len(v) - tail - max(tail, 10))] if sustained else onset),
                       until=float(steps[-1]))
    jump = grown["jump"] if grown else None
    # weight decay bounds weights that grow step after step; a norm that jumped once and held is not that
    decay = [] if jump else [R.weight_decay()]
    remedies: list[Remedy | None] = [clipping(run, t), lower_lr(run, at_step=float(onset),
                                                                why="gradient norm exploding"), *decay]
    if growth is not None:
        remedies = [schedule_remedy(run, growth, float(onset)), clipping(run, t), *decay]
    return [finding(
        "exploding_gradient", severity, summary + lr_note(growth),
        _JUMP_WHY if jump else
        "The gradient norm keeps growing instead of settling: an unstable learning rate or a per-layer gain "
        "above 1 compounding through training.",
        {"metric": s.name, "steps": [_num(onset), _num(steps[-1])], "value": value, "threshold": t.explode_warning,
         "baseline": base, "late_median": late if late_finite else None, "late_points": late_finite + late_nonfinite,
         "late_nonfinite": late_nonfinite, "peak": peak, "peak_step": _num(steps[top]),
         "sustained_points": int(tail), "sustained_median": tail_median if sustained else None,
         "learning_rate_growth": growth,
         "learning_rate_jump": None if growth is not None else learning_rate_jump(run, float(onset)),
         "step_change": _num_jump(jump)},
        remedies)]


_JUMP_WHY = ("The gradient norm jumped to a new level in one logged step and stayed there, not growing step "
             "after step: a sudden change at that step, not compounding growth. Look at what happened there: a "
             "bad batch (corrupt, mislabelled or outlier samples) that threw the weights, a learning-rate "
             "schedule step (a warm-up ending, a restart, a step the wrong way), or training resumed from a "
             "checkpoint whose weights, optimizer state or rate differ from the run's.")


def _num_jump(jump: dict | None) -> dict | None:
    """A step change's figures for the evidence (its steps as the log's numbers)."""
    if jump is None:
        return None
    return {"step": _num(jump["step"]), "before_step": _num(jump["before_step"]), "before": jump["before"],
            "after": jump["after"], "factor": jump["factor"]}


def grown_words(s: Series, grown: dict) -> str:
    """How :func:`sustained_growth`'s tail was reached, in words: a step change ("jumped 1e+04x at step
    150, 1 -> 1e+04, and stayed there"), growth from one step to a later peak ("grew steadily from step
    152 to 5.76e+18 (step 164)"), or a peak at the first grown point, never "from step X to ... (step X)"."""
    jump = grown.get("jump")
    if jump is not None:
        return (f"{s.name} jumped {times(jump['factor'])} at {s.where(jump['step'])}, {jump['before']:.3g} -> "
                f"{jump['after']:.3g}, and stayed there")
    if grown["peak_step"] == grown["onset"]:
        return f"{s.name} rose to {grown['peak']:.3g} at {s.where(grown['onset'])} and stayed high"
    return (f"{s.name} grew steadily from {s.where(grown['onset'])} to {grown['peak']:.3g} "
            f"({s.where(grown['peak_step'])})")


#: A total gradient norm this many times the one logged before it, and at least this large
#: (:func:`_jump`): no healthy step does that, however short the log.
_NORM_JUMP = 1e5
_NORM_JUMP_AT_LEAST = 1e5


def _jump(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A total gradient norm that jumped by orders of magnitude from one logged step to the next,
    on a log too short for the baseline checks (an mmdet paste of two lines: 3.46, then 3.1e7
    with the loss 1.5 -> 63): an error when the loss jumped with it, else a warning."""
    s = run.first("grad_norm")
    if s is None:
        return []
    steps, v = finite(s)
    if len(v) < 2 or np.any(v[:-1] <= 0):
        return []
    ratios = v[1:] / v[:-1]
    hits = np.nonzero((ratios >= _NORM_JUMP) & (v[1:] >= _NORM_JUMP_AT_LEAST))[0]
    if not len(hits):
        return []
    i = int(hits[0]) + 1
    before, after, at = float(v[i - 1]), float(v[i]), float(steps[i])
    loss = run.first("loss")
    with_loss = ""
    if loss is not None:
        ls, lv = finite(loss)
        now, prev = lv[ls == at], lv[ls < at]
        if len(now) and len(prev) and prev[-1] > 0 and now[0] >= 10 * prev[-1]:
            with_loss = f"; {loss.name} jumped with it, {float(prev[-1]):.3g} -> {float(now[0]):.3g}"
    return [finding(
        "exploding_gradient", "error" if with_loss else "warning",
        f"{s.name} jumped {times(after / before)} from one logged point to the next, {before:.3g} -> {after:.3g} at "
        f"{s.where(at)}{with_loss}",
        "A gradient norm that grows by orders of magnitude between two logged steps has blown up: one update "
        "at that size throws the weights far from where they were (a learning rate too large, an unnormalised "
        "input or target, a missing normalisation, or mixed precision overflowing).",
        {"metric": s.name, "steps": [_num(steps[i - 1]), _num(at)], "value": after / before,
         "threshold": _NORM_JUMP, "before": before, "peak": float(np.max(v)), "points": len(v)},
        [clipping(run, t), lower_lr(run, at_step=at, why="the gradient norm jumped by orders of magnitude")])]


def _astronomical(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A total gradient norm beyond any healthy network's at some step, on however few points: no
    baseline needed to call 3.8e12 exploded (an mmdet run pasted with two lines of log had it)."""
    s = run.first("grad_norm")
    if s is None:
        s = _final_norm(run)
        if s is None:
            return []
    steps, v = finite(s)
    over = np.nonzero(v >= t.explode_absolute)[0]
    if not len(over):
        return []
    scaled = amp_scaled(run, v) if s.role == "grad_norm" and len(v) > 1 else None
    if scaled is not None:
        return [_amp_note(run, s, steps, v, scaled, {})]
    i = int(over[0])
    top = int(np.argmax(v))
    peak = float(v[top])
    # the peak first and where it was, then where the norm first crossed the line (newuser11)
    crossed = f", first {t.explode_absolute:.3g} or more at {s.where(steps[i])} ({v[i]:.3g})" if top != i else ""
    return [finding(
        "exploding_gradient", "error",
        f"{s.name} reached {peak:.3g} at its largest ({s.where(steps[top])}){crossed}; a healthy network's total "
        f"gradient norm is around 0.1-100",
        "A gradient norm this large means the weights, the activations or the loss have already blown up (a "
        "learning rate far too large, an unnormalised input or target, a missing normalisation): the next update "
        "throws the weights far from where they were.",
        {"metric": s.name, "steps": [_num(steps[i]), _num(steps[-1])], "value": peak, "threshold": t.explode_absolute,
         "peak": peak, "peak_step": _num(steps[top]), "first_over": float(v[i]), "first_over_step": _num(steps[i]),
         "points": len(v)},
        [clipping(run, t), lower_lr(run, at_step=float(steps[i]), why="the gradient norm is astronomical")])]


def _final_norm(run: RunLog) -> Series | None:
    """The final total gradient norm of a run summary (final values only) as a one-point series."""
    return next((n for n in final_series(run) if n.role == "grad_norm" and np.isfinite(n.values[0])), None)


#: Shared points of a total grad norm and a total weight norm that make their ratio's median a level.
_STEEP_MIN_POINTS = 3


def _steep(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A total gradient norm far above the total weight norm logged with it, whatever its own trend:
    a run already blown up before its first logged step has no baseline to grow from (grad norm 7e5
    to 1.1e6 against a weight norm of 1,800), but the ratio is scale-free. A healthy network's
    ||g|| / ||w|| is well under 1 (an LLM's about 1e-3); at 100 one step of plain SGD at lr 0.01
    moves the weights by their own size."""
    s = run.first("grad_norm")
    totals = [w for w in run.by_role("weight_norm") if w.layer is None]
    if s is None or not totals:
        return []
    w = max(totals, key=len)
    gs, gv = finite(s)
    ws, wv = finite(w)
    at, gi, wi = np.intersect1d(gs, ws, assume_unique=False, return_indices=True)
    # a weight "norm" under 1 is likely a per-parameter mean, not the total L2 norm the ratio needs
    keep = wv[wi] >= 1.0
    at, g, ww = at[keep], gv[gi][keep], wv[wi][keep]
    if len(at) < _STEEP_MIN_POINTS:
        return []
    ratios = g / ww
    ratio = float(median(ratios))
    if ratio < t.grad_to_weight_warning:
        return []
    severity = "error" if ratio >= t.grad_to_weight_error else "warning"
    first = float(at[int(np.argmax(ratios >= t.grad_to_weight_warning))])
    learnt = _learnt_with_steady_weights(run, ww)
    scaled = amp_scaled(run, gv) if learnt is None else None
    if scaled is not None:
        # (a norm AMP's loss scale multiplied: its ratio to the weights says nothing, no clip from it)
        return [_amp_note(run, s, gs, gv, scaled, {"weight_metric": w.name, "grad_to_weight": ratio})]
    if learnt is not None:
        # the steps were not the gradient's size: the weights it would throw about held within
        # a few percent while the loss fell by a factor (logsweep77 h01, simple-nmt under Adam on a
        # loss summed over tokens: |g_param| 1.2e5 against |param| 658, loss 4.26 -> 0.295)
        severity = "info"
    return [finding(
        "exploding_gradient", severity,
        f"{s.name} is {ratio:.3g}x {w.name} (median over {len(at)} shared points; grad norm {float(median(g)):.3g}, "
        f"weight norm {float(median(ww)):.3g}); "
        + (f"yet {w.name} stayed within {learnt[0]:.3g}x of its lowest while the training loss fell "
           f"{learnt[1]:.3g}x: the steps were not the gradient's size (an adaptive optimizer such as Adam, "
           "or a loss summed over many tokens, scales it)" if learnt is not None else
           "a healthy network's gradient is well under its weights' norm"),
        "The gradient is orders of magnitude larger than the weights it updates: the loss surface is so steep "
        "that any step not clipped to a tiny size throws the weights far from where they were. The run blew up "
        "before its first logged step or the loss is on an unnormalised scale (a target or input in the "
        "thousands, a sum over a huge batch), so the gradient norm has no healthy baseline to compare with.",
        {"metric": s.name, "steps": [_num(at[0]), _num(at[-1])], "value": ratio, "threshold": t.grad_to_weight_warning,
         "weight_metric": w.name, "grad_norm_median": float(median(g)), "weight_norm_median": float(median(ww)),
         "points": len(at)}
        | ({"weights_steady": learnt[0], "loss_fell": learnt[1]} if learnt is not None else {}),
        [] if learnt is not None else
        [default_clipping(run, "every logged gradient norm dwarfs the weight norm, so none is a healthy one"),
         lower_lr(run, at_step=first, why="the gradient norm dwarfs the weight norm")])]


#: A loss scale logged beside the norm (fairseq's ``loss_scale``, DeepSpeed's ``loss scale``, a
#: GradScaler's ``scale``/``grad_scale``/``amp_scale``): the run is mixed precision.
_SCALE_SERIES = re.compile(r"(?:^|[/_.-])(?:loss|grad|amp)[_ -]?scale$|(?:^|[/.])scale$", re.IGNORECASE)
#: The powers of two a loss scaler uses: GradScaler starts at 2^16 and halves or doubles from there.
_SCALE_POWERS = range(8, 25)
#: A loss-scaled norm divided by some such power lands in a healthy norm's range.
_HEALTHY_NORM = (0.01, 100.0)
#: Flat relative to itself: its first and last tenth's medians within this factor of each other, and
#: its 90th percentile within this factor of its 10th (a real explosion grows by decades).
_FLAT_FACTOR = 4.0
#: The loss fell smoothly: its last tenth's median at most this share of its first tenth's, and no
#: point more than this many times the median of the points around it.
_LOSS_FELL = 0.97
_LOSS_JUMP = 2.0
#: ... and its fall (in log units, first tenth's median over last tenth's) at least this many times
#: its scatter (the median distance in log units of a point from the median of its 4 neighbours): a
#: loss swinging 2e8..6.6e8 around a level it barely left has not fallen smoothly
_FALL_OVER_SCATTER = 2.0


def amp_scaled(run: RunLog, g: np.ndarray) -> str | None:
    """Why the total gradient norm ``g`` (its finite points, in order) looks like one printed before
    mixed precision's loss scale was undone (``scaler.scale(loss).backward()``, then the norm taken
    before ``scaler.unscale_(optimizer)``), or None. A loss scale logged in the run says the run is
    mixed precision; without one, the signature alone: a norm flat relative to itself while the training loss falls smoothly, of a
    size some power of two a scaler uses (2^8 to 2^24) brings into a healthy norm's range. A norm that
    grows, or a loss that does not fall well beyond its own scatter, is not this: a genuine explosion
    grows, and one that has settled at a huge loss swings around it (logsweep93 openpi_loss_explosion)."""
    if len(g) < 8 or float(np.min(g)) <= 0:
        return None
    level = float(median(g))
    if not any(_HEALTHY_NORM[0] <= level / 2.0 ** k <= _HEALTHY_NORM[1] for k in _SCALE_POWERS):
        return None
    k = max(1, len(g) // 10)
    head, tail = float(median(g[:k])), float(median(g[-k:]))
    lo, hi = np.percentile(g, [10, 90])
    if not (tail <= _FLAT_FACTOR * head and head <= _FLAT_FACTOR * tail and hi <= _FLAT_FACTOR * lo):
        return None
    if any(_SCALE_SERIES.search(s.name) for s in run.series):
        return "a loss scale is logged beside it"
    loss = run.first("loss")
    if loss is None or len(loss) < 8:
        return None
    v = loss.values
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        return None
    n = max(1, len(v) // 10)
    if not float(median(v[-n:])) <= _LOSS_FELL * float(median(v[:n])):
        return None
    around = centred_median(v, 2)  # (nan at the ends: no jump there)
    if np.any(v > _LOSS_JUMP * around):
        return None
    fall = math.log(float(median(v[:n])) / float(median(v[-n:])))
    scatter = float(np.nanmedian(np.abs(np.log(v) - np.log(around))))
    if not fall >= _FALL_OVER_SCATTER * scatter:
        return None  # a noisy loss that barely moved: no smooth fall (an exploded run settled high)
    return (f"it stays flat (within {_FLAT_FACTOR:g}x of itself) while the training loss falls smoothly, at a "
            "size a loss scaler's power of two explains")


def _amp_note(run: RunLog, s: Series, steps: np.ndarray, g: np.ndarray, why: str, extra: dict) -> Finding:
    """The note in place of an ``exploding_gradient`` warning or error for a norm :func:`amp_scaled`
    explains: no clip is sized from it."""
    level = float(median(g))
    # GradScaler's starting 2^16 where it brings the norm into a healthy range, else the power nearest 1
    power = (16 if _HEALTHY_NORM[0] <= level / 2.0 ** 16 <= _HEALTHY_NORM[1]
             else min(_SCALE_POWERS, key=lambda p: abs(math.log10(level / 2.0 ** p))))
    return finding(
        "exploding_gradient", "info",
        f"{s.name} (median {level:.3g}) looks like a norm printed before mixed precision's loss scale was undone: "
        f"{why}; divided by 2^{power} ({2.0 ** power:.0f}, a scale GradScaler uses) it is {level / 2.0 ** power:.3g}. "
        "Log the norm after scaler.unscale_(optimizer) to judge it",
        "Under AMP, scaler.scale(loss).backward() multiplies every gradient by the loss scale (65536 = 2^16 at the "
        "start, halved or doubled as steps overflow or not); a norm taken before scaler.unscale_(optimizer) is that "
        "many times the real one, and a clip at max_norm set from it clips nothing. To log (and clip) the real "
        "norm: scaler.scale(loss).backward(); scaler.unscale_(optimizer); norm = "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm); scaler.step(optimizer); scaler.update().",
        {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": level, "loss_scaled": True,
         "scale_power": power, "why_scaled": why} | extra,
        [])


#: A weight norm within this factor of its lowest over the run held steady ...
_STEADY_WEIGHTS = 1.25
#: ... and a training loss whose last tenth's median is this many times under its first tenth's learnt
_LEARNT_FALL = 5.0


def _learnt_with_steady_weights(run: RunLog, weights: np.ndarray) -> tuple[float, float] | None:
    """``(weight spread, loss fall)`` where the total weight norm ``weights`` stayed within
    :data:`_STEADY_WEIGHTS` of its lowest while the training loss (8 points or more, all finite and
    positive) fell :data:`_LEARNT_FALL`-fold or more from its first tenth to its last: a gradient
    that dwarfs the weights and yet never moved them, in a run that learnt, did not set the step's
    size. None otherwise."""
    loss = run.first("loss")
    if loss is None or not len(weights) or float(np.min(weights)) <= 0:
        return None
    v = loss.values
    if len(v) < 8 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        return None
    k = max(1, len(v) // 10)
    spread = float(np.max(weights) / np.min(weights))
    fell = float(median(v[:k]) / median(v[-k:]))
    return (spread, fell) if spread <= _STEADY_WEIGHTS and fell >= _LEARNT_FALL else None


def _level_spikes(steps: np.ndarray, v: np.ndarray, t: LogThresholds
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spikes of a loss: points far above both their neighbours (the run came back) and their recent
    past (not a fast early descent), in log units against the run's own noise, as ``(steps, values,
    around, is_spike, spike_indices, before)``: ``around`` the centred median of each point's
    neighbours (what it stands out from), ``before`` the level before it (the median of the points
    before it, the second and third points' the larger of that and the window after's,
    :func:`fill_leading_baseline`), what a ratio "to the level before" or a fall "before the
    spike" is read against: on a loss falling fast, the centred median of the second point is
    mostly points long after it (logsweep99 pinn_early_spike: 1.48e14 after 1.37e13, "36.4x" a
    median 4.07e12 of the epochs after it).

    A fixed 'x times the median' misses an LLM's spikes (5.5 against 3.2 is only 1.7x, yet dozens of
    standard deviations of its per-step noise) and the same rule works on a per-epoch validation loss,
    with the window shrunk to what a short series has. The noise a point is measured in is that of
    its neighbours (:func:`_local_sigma`), never less than the whole run's: a series' far later
    points do not decide a spike's verdict."""
    if len(v) == 0 or np.mean(v <= 0) > 0.05:
        # An objective that sits at 0 or changes sign (RL) has no scale for 'x times its level'.
        empty = np.array([], dtype=np.int64)
        return steps[:0], v[:0], v[:0], np.zeros(0, dtype=bool), empty, v[:0]
    keep = v > 0
    steps, v = steps[keep], v[keep]
    half = max(2, min(t.window // 2, len(v) // 6))
    lv = np.log(v)
    around = centred_median(lv, half)
    past, past_mad = rolling_median_mad(lv, max(3, half))
    past = fill_leading_baseline(lv, past, past_mad, max(3, half))[0]
    # A value rounded when it was logged could be up to half a step lower, its level half a step
    # higher: only what stands out under that reading is a spike.
    q = resolution(v) / 2
    resid = _residuals(v, lv, around, q)
    ok = np.isfinite(resid)
    sigma = 1.4826 * float(median(np.abs(resid[ok]))) if ok.any() else 0.0
    sigma = min(sigma, _calm_sigma(v, lv, half, q, t))
    # (the points that stand out against that noise are left out of their neighbours', and of the
    # levels those are measured from, as :func:`_calm_sigma` does: spikes dense enough to be half a
    # calm point's neighbours would otherwise hide each other, logsweep87 deepfd_spikes)
    stands = max(math.log(t.loss_spike_min_ratio), t.loss_spike_sigmas * sigma)
    with np.errstate(invalid="ignore"):
        candidate = (resid > stands) & (lv - past > stands)
    calm = np.where(candidate, np.nan, lv)
    calm_resid = np.where(candidate, np.nan, _residuals(v, lv, centred_median(calm, half), q))
    local = _local_sigma(calm_resid, half, sigma)
    # The last points have no future to show the run came back: a rising end must clear twice the cut.
    need = np.maximum(math.log(t.loss_spike_min_ratio), t.loss_spike_sigmas * local)
    need[-max(1, half // 2):] *= 2
    with np.errstate(invalid="ignore"):
        spike = (resid > need) & (lv - past > need)
    # (the first point has no level before it: its neighbours' stands in)
    before = np.exp(np.where(np.isfinite(past), past, around))
    return steps, v, np.exp(around), spike, np.nonzero(spike)[0], before


def _local_sigma(resid: np.ndarray, half: int, floor: float) -> np.ndarray:
    """The noise each point of a loss is measured in: the robust standard deviation (1.4826 times
    the median absolute log-residual ``resid``, NaN for the points left out) of its up to ``half``
    neighbours on each side, the point itself left out, and never under ``floor`` (the whole
    series' noise; also where a point has too few neighbours).

    One figure for the whole series made a spike's verdict depend on how long the log went on: a
    PINN's mean_loss thrown from 1.37e13 to 1.48e14 at epoch 1 while it fell twelve decades was
    measured in the noise of a flat tail hundreds of epochs later, a spike in the log's first 500
    rows and none in its first 250 (logsweep99 pinn_early_spike). Its neighbours' scatter is the
    noise it had to stand out from."""
    local = 1.4826 * centred_median(np.abs(resid), half)
    return np.where(np.isfinite(local), np.maximum(local, floor), floor)


def _residuals(v: np.ndarray, lv: np.ndarray, around: np.ndarray, q: float) -> np.ndarray:
    """Each point's log-distance above its level ``around`` (centred medians, in values), at the worst
    reading of a log rounded to ``q`` (half its printed step): the point lower, its level higher."""
    return np.log(np.maximum(v - q, 1e-300)) - np.log(np.exp(around) + q) if q else lv - around


def _calm_sigma(v: np.ndarray, lv: np.ndarray, half: int, q: float, t: LogThresholds) -> float:
    """The noise (robust standard deviation of the log-residuals) of a loss's points that are no
    candidate spikes; ``inf`` where it has none to leave out.

    A centred median over a few neighbours is set by the spikes themselves where they are dense: in a
    10-epoch run with spikes at epochs 2, 3 and 6 (2.29, 5433, 63018, 2.13, 2.68, 33272, 2.07, ...) half
    the calm points have two spikes among their four neighbours, so their residuals are as large as the
    spikes' and the noise the spikes are measured in was theirs (logsweep87 deepfd_spikes: nothing
    found). The candidates are judged against a level the spikes cannot set, the median of the whole
    series (while they are fewer than half its points), in the spread of all its points about it (an
    upper bound of the noise: a trend widens it, so a falling loss leaves out nothing): points more than
    ``loss_spike_sigmas`` of that spread above it. The noise is then measured over the other points,
    against levels the candidates are left out of."""
    level = float(median(lv))
    spread = 1.4826 * float(median(np.abs(lv - level)))
    far = lv - level > max(math.log(t.loss_spike_min_ratio), t.loss_spike_sigmas * spread)
    if not far.any() or far.all():
        return math.inf
    calm = np.where(far, np.nan, lv)
    resid = _residuals(v, lv, centred_median(calm, half), q)
    ok = np.isfinite(resid) & ~far
    return 1.4826 * float(median(np.abs(resid[ok]))) if ok.any() else math.inf


def spike_points(s: Series, t: LogThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The spikes of one series, as ``(steps, values, baseline, is_spike, spike_indices)``: a loss's
    against its own noise in log units (:func:`_level_spikes`), a gradient norm's against its rolling
    median and spread, leaving out the growth it never came back from (exploding_gradient's) and
    steps of exactly zero gradient. Shared by the spike findings and the plateau's spiking check."""
    steps, v, base, spike, idx, _ = _spike_points(s, t)
    return steps, v, base, spike, idx


def _spike_points(s: Series, t: LogThresholds
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`spike_points` and, last, the level before each point (a loss's trailing median,
    :func:`_level_spikes`; a gradient norm's baseline is already its rolling median of the points
    before)."""
    steps, v = finite(s)
    if s.role in ("loss", "val_loss"):
        return _level_spikes(steps, v, t)
    if s.role == "grad_norm" and len(v) >= t.min_points:
        base = early_baseline(v, t.baseline_fraction)
        tail = _exploding_tail(s, steps, v, base, t)[0] if base > 0 else 0
        if tail:  # the growth the run never came back from is exploding_gradient's, not spikes
            steps, v = steps[:-tail], v[:-tail]
    if s.role == "grad_norm":
        # A step with exactly zero gradient made no update (e.g. RL batches without reward variance):
        # it is not part of the baseline a spike stands out from.
        steps, v = steps[v != 0], v[v != 0]
    med, mad = rolling_median_mad(v, t.window)
    # the second and third points are judged too, against the level on both sides (newuser13)
    med, mad = fill_leading_baseline(v, med, mad, t.window)
    with np.errstate(invalid="ignore"):
        # Only against a positive baseline: next to a run of exact zeros a ratio means nothing.
        spike = (med > 0) & (v > t.spike_factor * med) & (v - med > 6 * 1.4826 * np.maximum(mad, 1e-12 * med))
    return steps, v, med, spike, np.nonzero(spike)[0], med


#: A training loss judged for :func:`no_progress` holds this many points at least: a tenth of them
#: (its level at each end) 3 points or more
_PROGRESS_POINTS = 21


def _interior_levels(v: np.ndarray, k: int) -> np.ndarray:
    """The running level of ``v``: its centred running medians of a tenth (``k`` points, made odd),
    only where the whole window lies inside the series (a shrunken edge window is a point or two,
    not a level)."""
    w = max(3, k | 1)
    sm = smooth(v, w)
    half = w // 2
    return sm[half:len(v) - half] if len(v) > 2 * half else sm[:0]


def _learnt_once(run: RunLog, v: np.ndarray, k: int, reference: float, margin: float) -> bool:
    """Whether the run learnt at some time, whatever its end: the loss's running level (medians of a
    tenth, as its ends are measured) went more than ``margin`` below ``reference`` (its start, or
    chance), or its accuracy's running level rose so that the error (1 - accuracy) fell by more than
    ``margin`` from its first tenth's. A loss that learnt and then rose again is loss_divergence's."""
    levels = _interior_levels(v, k)
    if len(levels) and float(np.min(levels)) < (1 - margin) * reference:
        return True
    from gradhealth.logs.detectors.chance import accuracies, as_fraction

    train, val = accuracies(run)
    acc = train if train is not None else val
    if acc is None:
        return False
    av = as_fraction(finite(acc)[1])
    if len(av) < _PROGRESS_POINTS:
        return False
    ka = math.ceil(0.1 * len(av))
    error_start = 1 - float(median(av[:ka]))
    high = _interior_levels(av, ka)
    return error_start > 0 and len(high) > 0 and 1 - float(np.max(high)) < (1 - margin) * error_start


def no_progress(run: RunLog, t: LogThresholds) -> dict | None:
    """Where the training loss, over :data:`_PROGRESS_POINTS` points or more logged from the run's
    start, ends (the median of its last tenth) no lower than chance or than where it began: the level
    its spikes fall back to is no learning, so they are not "recovered" (newuser7: an MLP under SGD
    lr=5, loss 1.106 at step 0, median 1.22 over its last 50 of 200 steps, above ln 3 = 1.099).

    Chance is ln k with k from the run's params (``num_classes``), where the loss starts at ln k or
    below (within :data:`_CHANCE_START`: a k-class cross-entropy at initialisation); an end down to
    10 % under ln k is at chance (the chance check's cross-entropy margin). Else the start: the
    median of the first tenth, or the first point where loss spikes inside that tenth (an instability
    from step 1 on) lift the tenth's median above it.

    Not where the run learnt at some time and lost it again (:func:`_learnt_once`): its running
    level (medians of a tenth, the measure of both ends) went more than that same 10 % below the
    start (or chance), past what this rule would itself read as "no lower", or its accuracy's error
    fell by as much (logsweep73 u02: a Keras LSTM's loss 1.09 at epoch 0, its first tenth's median
    0.199, 0.13 over epochs 130-160, accuracy 0.34 -> 0.96, its last tenth's median 0.516 after a
    spike: it learnt, and the rise is loss_divergence's). ``{"level", "start", "num_classes",
    "chance", "spiked_start"}``, or None."""
    from gradhealth.logs.detectors.chance import _CHANCE_LOSS_MARGIN, _CHANCE_START, num_classes

    loss = run.first("loss")
    if loss is None or on_rollouts(run):
        return None
    steps, v = finite(loss)
    n = len(v)
    k = math.ceil(0.1 * n)
    if n < _PROGRESS_POINTS or not float(np.min(v)) > 0 or float(steps[0]) > float(steps[-1] - steps[0]):
        return None
    level = float(median(v[-k:]))
    start = float(median(v[:k]))
    # the spikes loss_spike reports: the rolling test's and the jumps', which alone see a spike on
    # the second or third point (the rolling median needs 3 points before it): a log written every
    # 10th step puts the lr=3.0 run's 1.112 -> 19.98 there (newuser9: trainer_state.json read
    # healthy where the same run's every-step CSV read a plateau)
    idx = np.union1d(_level_spikes(steps, v, t)[4], np.array(sorted(_smooth_jumps(run, steps, v, t)), dtype=np.int64))
    spiked_start = bool(np.any(idx < k)) and float(v[0]) < start
    if spiked_start:
        start = float(v[0])
    classes = num_classes(run)
    if classes is not None:
        chance = math.log(classes)
        if float(v[0]) <= (1 + _CHANCE_START) * chance:
            if level >= (1 - _CHANCE_LOSS_MARGIN) * chance and not _learnt_once(run, v, k, chance, _CHANCE_LOSS_MARGIN):
                return {"level": level, "start": start, "num_classes": classes, "chance": chance,
                        "spiked_start": spiked_start}
            return None
    if level >= start and not _learnt_once(run, v, k, start, _CHANCE_LOSS_MARGIN):
        return {"level": level, "start": start, "num_classes": None, "chance": None, "spiked_start": spiked_start}
    return None


def no_progress_words(found: dict, loss: str = "loss") -> str:
    """:func:`no_progress`'s finding in words, for the spikes' summaries: each figure named for what
    it is (a tenth's median, the first point, ln k)."""
    if found["num_classes"] is not None:
        return (f"the {loss}'s last tenth's median {found['level']:.4g} is no better than chance for "
                f"{found['num_classes']} classes (ln {found['num_classes']} = {found['chance']:.4g}): the run never learnt")
    began = (f"where it began ({found['start']:.4g}, its first point)" if found["spiked_start"] else
             f"its first tenth's median {found['start']:.4g}")
    return f"the {loss}'s last tenth's median {found['level']:.4g} is no lower than {began}: the run never learnt"


#: On a grad norm too short for a rolling baseline, a point this many times the median of the
#: others is a spike on its face (an excerpt pasted into a bug report: 11140 among norms of 8).
_GLARING = 50.0


#: Leading high points of a short grad-norm series that are a level, not a point (:func:`_startup`)
_STARTUP_LEVEL = 3


def _startup(run: RunLog, steps: np.ndarray, high: np.ndarray) -> int:
    """How many leading points of a short grad-norm series are the run's start-up, not spikes: the
    points ``high`` above the series' level from the first one on, with no point at that level before
    them, while the training loss at their steps is the run's highest and falls afterwards (a model's
    first logged norms 198 and 422 settling to 3.3 and 2.7 as the loss goes 285 -> 161 -> 9.9 -> 5.0).
    A spike stands above a lower level on both sides; these have none before them: the norm started
    high and settled. 0 when the loss is not logged or does not fall so."""
    lead = len(high) if high.all() else int(np.argmin(high))
    if lead == 0 or lead == len(high):
        return 0
    loss = run.first("loss")
    if loss is None:
        return 0
    ls, lv = finite(loss)
    at, later = lv[ls <= steps[lead - 1]], lv[ls > steps[lead - 1]]
    if not len(at) or len(later) < 2:
        return 0
    falls = float(np.max(at)) >= float(np.max(later)) and float(median(later[-3:])) < float(at[-1])
    # ... or a level of several points the norm fell from for good, the loss not falling with it: a
    # gradient that collapsed (a saturated output, vanishing_gradient's), not spikes the run "recovered"
    # from (newuser12: norms 1.9e3-3.7e3 over the first 7 of 20 points, then 723, 168, 22 ... ~1-3
    # with the MSE flat at 9.5e6, read as "7 spikes, the run recovered after each")
    collapsed = lead >= _STARTUP_LEVEL and not bool(high[lead:].any())
    return lead if falls or collapsed else 0


def _ends_at_spike(idx: np.ndarray, n: int) -> int:
    """Where the last spike episode starts when it runs to the last of ``n`` points (spike indices
    ``idx``, ascending), else ``n``: the log ends there, so whether the run recovered is unknown."""
    if not len(idx) or int(idx[-1]) != n - 1:
        return n
    k = len(idx) - 1
    while k > 0 and idx[k - 1] == idx[k] - 1:
        k -= 1
    return int(idx[k])


#: Spike points belong to one event where the series stays raised between them: every point between
#: two spikes at least this many times its baseline (a spike has recovered once the series is back
#: under twice its baseline, :func:`_recovered`)
_RAISED = 2.0


def spike_events(idx: np.ndarray, v: np.ndarray, base: np.ndarray) -> list[tuple[int, int]]:
    """The spike events of the spike indices ``idx`` (ascending) of a series ``v`` against its
    baseline ``base`` (per point), as ``(lo, hi)`` slices of ``idx``: spikes on consecutive points,
    or with only points at :data:`_RAISED` times their baseline or more between them, are one
    excursion the run went through once (logsweep79 u08: an epoch loss at 0.004 thrown to 3.48, then
    1.21, 0.31, 0.061, 0.012 on the way back: one spike over 5 raised epochs, not 5 spikes)."""
    events: list[tuple[int, int]] = []
    lo = 0
    for k in range(1, len(idx) + 1):
        if k < len(idx):
            a, b = int(idx[k - 1]), int(idx[k])
            with np.errstate(invalid="ignore"):
                raised = bool(np.all(v[a + 1:b] >= _RAISED * base[a + 1:b]))
            if b == a + 1 or raised:
                continue
        events.append((lo, k))
        lo = k
    return events


def _before_events(v: np.ndarray, med: np.ndarray, idx: np.ndarray, events: list[tuple[int, int]],
                   window: int) -> np.ndarray:
    """The baseline ``med`` (per point) of a series ``v``, lowered at each spike event's points (the
    events of ``idx``, :func:`spike_events`) to the level before the event began, the median of the
    (up to ``window``) points before its first raised point, where the baseline stands at
    :data:`_RAISED` times that level or more: a rolling median taken over the event's own raised
    points, or over a raised level the event left behind, is no longer the level the run was at, so
    a spike measured against it looks smaller than it was and a run that stayed raised "came back
    under twice" it. Unchanged elsewhere (a lone spike's rolling median, within the noise of the
    level before it; a loss falling fast, whose centred median is already below what came before)
    and for an event from the first point (no level before it)."""
    out = np.array(med, dtype=float, copy=True)
    for lo, hi in events:
        a = int(idx[lo])
        before = v[max(0, a - window):a]
        if not len(before):
            continue
        level = float(median(before))
        if level > 0:
            pts = idx[lo:hi]
            with np.errstate(invalid="ignore"):
                out[pts] = np.where(np.isfinite(out[pts]) & (out[pts] >= _RAISED * level), level, out[pts])
    return out


def _level_words(med: np.ndarray, stated: np.ndarray, i: int) -> str:
    """", 0.0224" after "the level before the spike" where point ``i``'s baseline ``med`` is that
    level and ``stated`` says the summary states it; "" otherwise."""
    return f", {float(med[i]):.3g}" if stated[i] else ""


def _level_before(v: np.ndarray, idx: np.ndarray, lo: int, window: int) -> float:
    """The level before the spike event whose first raised point is ``idx[lo]``: the median of the (up
    to ``window``) points before it, NaN for an event from the first point. Stated as such, not as the
    peak over its rise, which is 0 where the rise overflowed (1.8e308 over 5e-324, errsweep7)."""
    a = int(idx[lo])
    before = v[max(0, a - window):a]
    return float(median(before)) if len(before) else math.nan


def _event_rises(v: np.ndarray, idx: np.ndarray, events: list[tuple[int, int]], window: int) -> list[float | None]:
    """How far each spike event's peak rose over the level before the event began: the median of
    the (up to ``window``) points before its first raised point, which a spike raised over several
    points no longer holds in its later points' rolling medians (newuser13: 0.38, then 51, 52,169,
    2,283 raised: 52,169 is 2,030x its rolling median of 0.38 and 51, 1.4e5x the 0.38 before the
    event). None for an event from the first point (no level before it)."""
    out: list[float | None] = []
    for lo, hi in events:
        level = _level_before(v, idx, lo, window)
        out.append(float(np.max(v[idx[lo:hi]])) / level if level > 0 else None)
    return out


def blowup_before(run: RunLog, t: LogThresholds, until: float) -> dict | None:
    """The largest gradient-norm spike event that began at or before step ``until``, with how far
    its peak rose over the level before it (:func:`_event_rises`): ``{"rise", "peak", "peak_step",
    "level", "start"}``, or None where the total gradient norm shows none. What a dead network's
    remedies are sized and ordered by (:func:`gradhealth.logs.detectors.layers.dead_layers`)."""
    s = run.first("grad_norm")
    if s is None or int(np.sum(np.isfinite(s.values))) < max(t.min_points, t.window):
        return None
    steps, v, med, _, idx = spike_points(s, t)
    if not len(idx):
        return None
    events = spike_events(idx, v, med)
    best: dict | None = None
    for (lo, hi), rise in zip(events, _event_rises(v, idx, events, t.window), strict=True):
        a = int(idx[lo])
        if rise is None or float(steps[a]) > until:
            continue
        top = int(idx[lo:hi][int(np.argmax(v[idx[lo:hi]]))])
        if best is None or rise > best["rise"]:
            best = {"rise": rise, "peak": float(v[top]), "peak_step": _num(steps[top]),
                    "level": _level_before(v, idx, lo, t.window), "start": _num(steps[a])}
    return best


def _died_at(run: RunLog, t: LogThresholds) -> float | None:
    """The step from which every weight tensor of the network gets exactly zero gradient (the
    dead_layer error, the units dead, not a converged fit), or None: a run whose spikes "fell back"
    to a dead network did not recover from them (newuser13)."""
    from gradhealth.logs.detectors.layers import dead_layers

    for f in dead_layers(run, t):
        ev = f.evidence.model_dump()
        if f.severity == "error" and ev.get("all_weights_dead") and not ev.get("recurrent"):
            return float(ev["steps"][0])
    return None


def _event_evidence(steps: np.ndarray, v: np.ndarray, base: np.ndarray, idx: np.ndarray,
                    events: list[tuple[int, int]], recovered: list[bool | None]) -> list[dict]:
    """Each spike event in the evidence: its first and last raised step, its peak (value, step and
    times its baseline), how many points it spans and whether the run recovered after it."""
    out = []
    for (lo, hi), r in zip(events, recovered, strict=True):
        pts = idx[lo:hi]
        top = int(pts[int(np.argmax(v[pts]))])
        out.append({"start": _num(steps[pts[0]]), "end": _num(steps[pts[-1]]), "peak_step": _num(steps[top]),
                    "peak": float(v[top]), "peak_ratio": float(v[top] / max(float(base[top]), 1e-300)),
                    "points": int(hi - lo), "recovered": r})
    return out


def _events_words(points: int, events: int) -> str:
    """How many raised points several spike events span, where that is more than one a spike ("over 7
    raised points"), for the summary after the events' count; "" where each event is one point, or
    for one event (:func:`_worst_span` says where it was raised)."""
    return "" if points == events or events == 1 else f" over {points} raised points"


def _worst_span(s: Series, steps: np.ndarray, idx: np.ndarray, events: list[tuple[int, int]], worst: int) -> str:
    """Where the event of the largest spike (index ``worst``) was raised, when over several points."""
    for lo, hi in events:
        pts = idx[lo:hi]
        if int(pts[0]) <= worst <= int(pts[-1]) and hi - lo > 1:
            return f", raised from {s.where(steps[pts[0]])} to {s.where(steps[pts[-1]])} ({hi - lo} points)"
    return ""


def _last_logged(s: Series, steps: np.ndarray) -> bool:
    """Whether ``steps`` (a detector's points of ``s``) reach the last point ``s`` logged, NaN and Inf
    included: a spike on the last finite point that NaN or Inf points follow did not end the log."""
    return bool(len(steps)) and len(s.steps) > 0 and float(steps[-1]) >= float(s.steps[-1])


def _open_words(s: Series, steps: np.ndarray, open_from: int) -> str | None:
    """Where the log ends on a spike, in words ("at the spike at step 8", "in the spike from step
    2600" for several points), from :func:`_ends_at_spike`'s ``open_from``; None when it does not."""
    if open_from >= len(steps):
        return None
    where = s.where(steps[open_from])
    return f"at the spike at {where}" if open_from == len(steps) - 1 else f"in the spike from {where}"


def _recovery_words(recovered: bool, open_at: str | None, others: bool) -> str:
    """The summary's words on recovery: ``recovered`` of the spikes the log shows points after,
    ``open_at`` where the log ends on a spike (:func:`_open_words`; None when it does not), ``others``
    whether there are spikes before that one."""
    known = ("the run recovered after each" if recovered else "the run did not recover from every one")
    if open_at is None:
        return known
    unknown = f"the log ends {open_at}, so whether the run recovered from it is unknown"
    if not others:
        return unknown
    known = "the run recovered after the others" if recovered else "the run did not recover from every other one"
    return f"{known}; {unknown}"


def _glaring_spikes(run: RunLog, s: Series, t: LogThresholds) -> list[Finding]:
    """Spikes of a short grad-norm series (at least 6 points), judged against the median of all of
    them: only points :data:`_GLARING` times above it, after a lower point (not the start-up,
    :func:`_startup`)."""
    steps, v = finite(s)
    if len(v) < 6:
        return []
    base = float(median(v))
    if not base > 0:
        return []
    high = v >= _GLARING * base
    idx = np.nonzero(high)[0]
    idx = idx[idx >= _startup(run, steps, high)]
    if not len(idx):
        return []
    worst = int(idx[np.argmax(v[idx])])
    open_from = _ends_at_spike(idx, len(v)) if _last_logged(s, steps) else len(v)
    known = idx[idx < open_from]
    # the points between the last spike the log shows an end of and the next (or the end of the log)
    after = v[int(known[-1]) + 1:open_from] if len(known) else v[:0]
    recovered: bool | None = bool(median(after) < 2 * base) if len(after) else None
    flat = np.full(len(v), base)
    events = spike_events(idx, v, flat)
    if open_from < len(v):
        open_from = min(open_from, int(idx[events[-1][0]]))
    open_at = _open_words(s, steps, open_from)
    # each event recovered where the points after it, up to the next one, are back under twice the level
    bounds = [int(idx[lo]) for lo, _ in events[1:]] + [len(v)]
    event_recovered: list[bool | None] = [
        None if int(idx[lo]) >= open_from else
        bool(median(v[int(idx[hi - 1]) + 1:end]) < 2 * base) if end > int(idx[hi - 1]) + 1 else None
        for (lo, hi), end in zip(events, bounds, strict=True)]
    clipped = clip_in_force(run)
    why = ("A gradient norm tens of times its usual size on one step: a bad batch or an instability. "
           + (f"The run already clips at {clipped[0]:g} ({clipped[1]}), so that step's update was bounded; the "
              "logged norm still says a batch or an instability produced it." if clipped else
              "Clipping at a few times the usual norm keeps such a step from throwing the weights away."))
    return [finding(
        "gradient_spike", "warning",
        f"{len(events)} gradient norm spike(s) in {s.name}{_events_words(len(idx), len(events))}, the largest "
        f"{v[worst]:.3g} at {s.where(steps[worst])} ({times(v[worst] / base)} the median of its {len(v)} points)"
        f"{_worst_span(s, steps, idx, events, worst)}; "
        + _recovery_words(bool(recovered), open_at, bool(len(known))),
        why,
        {"metric": s.name, "steps": [_num(x) for x in steps[idx]], "value": float(v[worst]), "count": len(idx),
         "spike_steps": [_num(x) for x in steps[idx]], "max_ratio": float(v[worst] / base),
         "recovered": recovered if open_at is None or recovered is False else None,
         "ends_at_spike": open_at is not None, "points": len(v), "episodes": len(events),
         "events": _event_evidence(steps, v, flat, idx, events, event_recovered)[:50]},
        [clipping(run, t, below=float(v[worst])), lower_lr(run, at_step=float(steps[idx[0]]), why="gradient norm spikes")])]


def _new_level(run: RunLog, steps: np.ndarray, v: np.ndarray, med: np.ndarray, i: int, t: LogThresholds) -> bool:
    """Whether grad norm point ``i`` starts a level the rest of the run keeps while the training loss
    falls from there on: a norm that grows early in training and then holds (a detector's 20 -> 130 in
    its first 150 of 1,500 steps) is the landscape sharpening, not a spike that failed to recover.
    The level is kept when the median after ``i`` is within 2x of the point either way, or when it is
    at least twice the level before (``med``, the rolling median at ``i``) and the point would be no
    spike against it: an LSTM leaving its ln 2 plateau (livesweep: norms 0.2 -> 1.1 for good, with
    2.4-2.7 on the way) overshoots the level it moves to."""
    after = v[i + 1:]
    if len(after) < max(3, t.min_points // 2):
        return False
    level = float(median(after))
    if not (0.5 * v[i] <= level <= 2 * v[i] or (level >= 2 * med[i] and v[i] <= t.spike_factor * level)):
        return False
    loss = run.first("loss")
    if loss is None:
        return False
    ls, lv = finite(loss)
    at, later = lv[ls <= steps[i]], lv[ls > steps[i]]
    return len(at) > 0 and len(later) >= 3 and float(median(later[-3:])) < float(at[-1])


#: A grad norm that settles after a spike at a new level within this factor of the level before it,
#: steady (:data:`_LEVEL_SHIFT_SPREAD`) and with the loss falling, shifted level (:func:`_recovered`)
_LEVEL_SHIFT = 10.0
#: ... steady: the median absolute deviation of the points after the spike at most this share of their median
_LEVEL_SHIFT_SPREAD = 1 / 3
#: ... and the loss falling: its median over those points at most this share of its median over as many
#: points before the spike (newuser5: 0.75 against 2.0; a flat loss's noise is no fall)
_LEVEL_SHIFT_LOSS_FALL = 0.9


def _recovered(run: RunLog | None, steps: np.ndarray, v: np.ndarray, med: np.ndarray, i: int, window: int,
               open_from: int) -> bool | None:
    """Whether the points after spike ``i`` came back under twice its baseline, or settled at a new
    steady level; None for a spike of the episode the log ends on (from ``open_from``): nothing
    after it shows either way.

    A norm that steps up to a new level as the loss falls (a healthy ReLU MLP leaving its plateau:
    0.3 -> 5.8 at step 42, then 1.5-4.9 around a median of 2.7 against the 0.86 before, its loss
    1.3 -> 0.75, newuser5) did recover: from the spike, to a level within :data:`_LEVEL_SHIFT` of the
    old one, steady (spread at most :data:`_LEVEL_SHIFT_SPREAD` of it), with the loss over those
    points well below its level before the spike (:data:`_LEVEL_SHIFT_LOSS_FALL`). A norm that stays up erratically, or with a stalled or
    rising loss, did not."""
    if i >= open_from:
        return None
    after = v[i + 1:i + 1 + window]
    if not len(after):
        return False
    level = float(median(after))
    if level < 2 * med[i] or _back_later(v, med, i, window):
        return True
    steady = float(median(np.abs(after - level))) <= _LEVEL_SHIFT_SPREAD * level
    if not (steady and level < _LEVEL_SHIFT * med[i] and level < v[i] and len(after) >= 3):
        return False
    loss = run.first("loss") if run is not None else None
    if loss is None:
        return False
    ls, lv = finite(loss)
    last = float(steps[min(len(steps) - 1, i + len(after))])
    before = lv[(ls < steps[i])][-len(after):]
    during = lv[(ls > steps[i]) & (ls <= last)]
    return (len(before) >= 3 and len(during) >= 3
            and float(median(during)) <= _LEVEL_SHIFT_LOSS_FALL * float(median(before)))


#: A spike's recovery is looked for over this many of its windows after it (:func:`_back_later`)
_RECOVERY_WINDOWS = 4


def _back_later(v: np.ndarray, med: np.ndarray, i: int, window: int) -> bool:
    """Whether the series came back under twice spike ``i``'s baseline for a whole window (its median
    over ``window`` points) within :data:`_RECOVERY_WINDOWS` windows after it, where the window right
    after the spike has not: a bump that takes a few windows to fade (logsweep85 mbv2_liveness: a
    per-epoch running mean near 0, 0.0006 -> 0.0051 and 2-3x its level for 3 epochs of 10 prints
    each, then back, was "did not recover" as its next 25 points were judged alone)."""
    later = v[i + 1 + window:i + 1 + _RECOVERY_WINDOWS * window]
    if len(later) < window:
        return False
    medians = np.median(np.lib.stride_tricks.sliding_window_view(v[i + 1:i + 1 + _RECOVERY_WINDOWS * window], window),
                        axis=1)
    return bool(np.any(medians < 2 * med[i]))


#: A run whose last points are within this factor of its lowest ended at its floor
_FLOOR_END = 2.0
#: A spike's recovery is judged over 1/this of the series' points (at least the rolling window)
_RECOVERY_SHARE = 100
#: Validation-loss spikes no later than this share of the run's steps are its early settling
#: (:func:`spikes`), where the run ends within :data:`_VAL_FLOOR_END` of its lowest
_EARLY_EVALS = 0.2
_VAL_FLOOR_END = 1.1


@detects("gradient_spike")
def spikes(run: RunLog, t: LogThresholds, role: str = "grad_norm") -> list[Finding]:
    s = run.first(role)  # type: ignore[arg-type]  # callers pass Role literals typed as str
    # A loss is judged against its neighbours, so a per-epoch series of a dozen points will do.
    needed = max(t.min_points, t.window) if role == "grad_norm" else max(t.min_points, 6)
    if s is None:
        return []
    if np.sum(np.isfinite(s.values)) < needed:
        return (_glaring_spikes(run, s, t) or _short_spike(s, "gradient_spike", run)) if role == "grad_norm" \
            else _short_spike(s, "loss_spike")
    # med: the level around each point (what recovery comes back under); prior: the level before it
    # (what a ratio 'to the level before' and a fall 'before the spike' are read against)
    steps, v, med, spike, idx, prior = _spike_points(s, t)
    if role == "grad_norm":
        idx = np.array([i for i in idx if not _new_level(run, steps, v, med, int(i), t)], dtype=np.int64)
    # (the training loss only: an evaluation's loss on a fixed set bounces in its early epochs, and an
    # agent's value loss jumps with a rare large return; logsweep63 h02, logsweep68 h07)
    jumps = _smooth_jumps(run, steps, v, t) if role == "loss" and not on_rollouts(run) else {}
    jumps = {i: n for i, n in jumps.items() if i not in set(idx.tolist())}  # (new spikes only)
    if jumps:
        idx = np.union1d(idx, np.array(sorted(jumps), dtype=np.int64)).astype(np.int64)
    if len(idx) == 0:
        return []
    # Only a spike on the series' last logged point is open: one before the exploding tail cut off
    # above (or before exact zeros), or before NaN/Inf points, has points after it that show it did
    # not recover (newuser6: a loss spike from step 152 "ends the log", which went on in NaN to 298).
    open_from = _ends_at_spike(idx, len(v)) if _last_logged(s, steps) else len(v)
    # the events: an excursion over several raised points is one spike (logsweep79 u08)
    events = spike_events(idx, v, med)
    if open_from < len(v):
        open_from = min(open_from, int(idx[events[-1][0]]))
    # from here on each spike is measured against the level before its event where its rolling
    # median stands higher: the excursion's own raised points (and a raised level it left behind)
    # lift that median (logsweep82 pl_pinn_spike: a loss at 0.022 thrown to 16.8-17.9, then ~0.37
    # for good, "recovered" against a median of 0.39 that those points made)
    around = med
    med = _before_events(v, med, idx, events, t.window)
    # a loss's ratios are to the median of the points before it (the second and third points': the
    # larger of that and the window after's), not to its neighbours' on both sides: on a loss falling
    # by decades the second point's neighbours are mostly far lower points after it (logsweep99
    # pinn_early_spike: 1.48e14 after 1.37e13 was "36.4x" the 4.07e12 of the epochs after it)
    rolling = prior
    prior = _before_events(v, prior, idx, events, t.window)
    # the level is named where it is not what "its rolling median" reads as: lowered to the level
    # before the event, or 2x off the median of the points around it (a raised level after the
    # spike, a loss falling fast)
    with np.errstate(invalid="ignore"):
        stated = (prior < rolling) | (prior * _RAISED <= around) | (around * _RAISED <= prior)

    def against(i: int) -> str:
        """What spike ``i``'s ratio is to: its rolling median, or the level before its event."""
        return "the level before the spike" if stated[i] else "its rolling median"

    # recovery is judged over a window that grows with the log: on a per-batch series of 58,000
    # points, 25 points are a few seconds of training, and a spike whose next 25 batches sat at
    # 2.04x the baseline before coming back was graded "not recovered" (logsweep58)
    recovered = [_recovered(run, steps, v, med, int(i), max(t.window, len(v) // _RECOVERY_SHARE), open_from)
                 if role == "grad_norm" else
                 _recovered(None, steps, v, med, int(i), max(t.window, len(v) // _RECOVERY_SHARE), open_from)
                 for i in idx]
    # a spike after which an evaluated accuracy fell and never came back to its best is no recovery,
    # however the loss came back (logsweep68 u01: test_384_acc1 77.8 -> 54.1, 65.0 at the end)
    lasting = _accuracy_lost(run, steps, idx) if role != "grad_norm" else None
    # an event recovered where the run came back after its last raised point (a point inside it has
    # the rest of the excursion after it); not where an accuracy fell at one of its spikes for good
    lost_at = lasting["spike_step"] if lasting is not None else None
    event_recovered: list[bool | None] = [
        False if lost_at is not None and any(steps[i] == lost_at for i in idx[lo:hi]) else recovered[hi - 1]
        for lo, hi in events]
    # a spike after which every weight tensor got exactly zero gradient for good did not recover,
    # whatever the norm fell back to: it fell back to a dead network (newuser13: "the run recovered
    # after each" beside a dead_layer error); the event that rose most over its level before is the
    # one named as the cause
    rises = _event_rises(v, idx, events, t.window) if role == "grad_norm" else [None] * len(events)
    died = _died_at(run, t) if role == "grad_norm" else None
    killed: int | None = None
    if died is not None:
        before_death = [k for k, (lo, _) in enumerate(events) if float(steps[idx[lo]]) <= died]
        for k in before_death:
            event_recovered[k] = False
        if before_death:
            killed = max(before_death, key=lambda k: rises[k] or 0.0)
    # ... and one that rose 1e5-fold over its level before is a blow-up, as a one-interval jump that
    # size is (:func:`_jump`), not a bad batch
    blown = max(range(len(events)), key=lambda k: rises[k] or 0.0) if events else None
    if blown is not None and not (rises[blown] or 0.0) >= _NORM_JUMP:
        blown = None
    cause = killed if killed is not None else blown
    recovered = [r for (lo, hi), r in zip(events, event_recovered, strict=True) for _ in range(lo, hi)]
    # the largest spike, the one the summary and `value` name: by its ratio to its rolling median,
    # how far it stands out, not by raw value (a loss falling 4.2 -> 0.3 has its 2.4x bump of 9.84 early
    # and its 23x spike of 6.95 late: logsweep74 u08)
    ratios = v[idx] / np.maximum(prior[idx], 1e-300)
    worst = idx[int(np.argmax(np.where(np.isfinite(ratios), ratios, -np.inf)))]
    highest = idx[int(np.argmax(v[idx]))]
    fraction = len(idx) / len(v)
    # a spike on the last logged point has no recovery to judge: it is not graded as one that failed
    failed = any(r is False for r in recovered)
    all_recovered = all(r is True for r in recovered)
    # the level the spikes fall back to is chance or the run's start: no recovery to speak of
    stuck = no_progress(run, t) if any(r is True for r in recovered) and role != "val_loss" else None
    if stuck is not None:
        failed, all_recovered = True, False
    open_at = _open_words(s, steps, open_from)
    # Frequent is a fraction of the run, but two recovered bumps of 1.5x in a short run are not
    # yet a pattern: a warning needs three, or one at least twice its level. Spikes on consecutive
    # points are one event (detectron2's 20-iteration medians carry one bad stretch over several).
    episodes = len(events)
    frequent = episodes / len(v) > t.spike_warning_fraction and (
        episodes >= 3 or float(np.max(v[idx] / np.maximum(prior[idx], 1e-300))) >= 2.0)
    severity = "warning" if (frequent or failed) else "info"
    if role == "grad_norm" and _severe_episodes(idx, events, v / np.maximum(med, 1e-300)) >= 3:
        # a pattern of steps whose gradient is more than an order of magnitude above the run's:
        # however rare among the logged points (a run logged at every step has many to be rare
        # among; the same run logged every 10th step would be "frequent"), the run keeps taking
        # steps that size. One such spike that recovered stays a note.
        severity = "warning"
    # the run's start level: the median of its first 3 points that are no spikes (spikes on the first
    # points would set it themselves: 5433 is the median of 2.29, 5433, 63018, logsweep87 deepfd_spikes)
    calm_start = np.setdiff1d(np.arange(len(v)), idx)[:3]
    start = float(median(v[calm_start])) if len(calm_start) else float(median(v[:3]))
    start_words = ("the median of its first 3 points" if calm_start.tolist() == [0, 1, 2] else
                   "the median of its first 3 points that are no spikes")
    # one step that threw the loss an order of magnitude above where the untrained network began (and
    # 20x its level): on an evaluation, or on a training loss that is an average of many batches or
    # whose next logged point is still up at twice the level before, the step undid the training,
    # however fast it came back. Not a lone batch of a per-batch loss that the next batch leaves again
    # (logsweep82 pl_pend_v18: a PINN's train_loss_step at ~0.05, 126 at one log and 0.063 at the
    # next, the epoch means 0.054 -> 0.049): one bad batch, whose update did not damage the weights,
    # stays a note, as the same loss's 1.2 does (logsweep39)
    averaged = _averaged(s)
    above_start = (role != "grad_norm" and start > 0 and any(
        float(v[i]) >= _ABOVE_START * start and float(v[i] / max(float(prior[i]), 1e-300)) >= _SEVERE_GRAD_SPIKE
        and (role != "loss" or _lasted(averaged, v, prior, int(i))) for i in idx))
    if above_start:
        severity = "warning"
    # where the run started: its first 5 % of points (the early epochs' bounces are the start: ls49's
    # validation loss 0.0597 -> 0.0731 at epoch 4 of 300)
    started = float(np.max(v[:max(3, len(v) // 20)]))
    if (role != "grad_norm" and all_recovered and not above_start and float(np.max(v[idx])) <= started
            and float(median(v[-3:])) <= _FLOOR_END * float(np.min(v))):
        # bumps of a loss fitted near 0 (a validation loss at 1e-3 jumping to 0.2, ls22): huge against
        # its rolling median, yet no higher than where the run started, each gone again, and the run
        # ending at its lowest: a note
        severity = "info"
    if (role == "val_loss" and all_recovered and not above_start and len(v) >= 20
            and float(steps[idx[-1]]) <= steps[0] + _EARLY_EVALS * (steps[-1] - steps[0])
            and float(median(v[-3:])) <= _VAL_FLOOR_END * float(np.min(v))):
        # an evaluation's bumps in the first fifth of training, each gone again, the run ending at
        # its lowest (a detector's val/cls_loss at 65 and 113 against 4.3 in epochs 7 and 11 of
        # 60, logsweep56): an evaluation takes no step, so the model of those epochs was erratic
        # on held-out data while its heads settled, not damaged by them: a note
        severity = "info"
    undone = _undone_learning(s, v, prior, idx, recovered, start) if role == "loss" and not failed else None
    if undone is not None:
        # a recovered spike that wiped out the training (above where the run began, after it had at
        # least halved), or an order of magnitude on a loss that is already an average of many
        # batches (an epoch mean, a running mean), where one bad batch cannot make it: a warning
        severity = "warning"
    if role != "grad_norm" and on_rollouts(run):
        # an agent's value loss regresses onto the returns its last rollout held: one with a rare large
        # episode reward (SB3 PPO, episodes of one step paying +-100) jumps and falls back with it. A
        # loss that blows up is loss_divergence's or nonfinite's; its spikes are a note
        severity = "info"
    converged = _converged_spikes(run, s, steps, v, idx, t) if role == "grad_norm" else None
    if converged is not None:
        severity = "info"
    elif cause is not None:
        severity = "error"
    code = "gradient_spike" if role == "grad_norm" else "loss_spike"
    what = {"grad_norm": "gradient norm", "val_loss": "validation loss"}.get(role, "loss")
    # a clip must reach the largest spike in the grad norm it clips (a loss spike's norm is not known)
    remedies: list[Remedy | None] = ([clipping(run, t, below=float(np.max(v[idx])) if role == "grad_norm" else None)]
                                     if converged is None else [])
    first_step = float(steps[idx[0]])
    early = first_step <= steps[0] + 0.1 * (steps[-1] - steps[0])
    cause_words = ""
    rise = 0.0
    blowup: dict | None = None
    if cause is not None:
        lo, hi = events[cause]
        top = int(idx[lo:hi][int(np.argmax(v[idx[lo:hi]]))])
        rise = float(rises[cause] or 0.0)
        blowup = {"rise": rise, "peak": float(v[top]), "peak_step": _num(steps[top]), "level": _level_before(v, idx, lo, t.window),
                  "start": _num(steps[int(idx[lo])]),
                  "died_from": _num(died) if killed is not None and died is not None else None}
        cause_words = (f"{s.where(steps[top])}'s {v[top]:.3g}, {times(rise)} the level before the spike "
                       f"({_level_before(v, idx, lo, t.window):.3g}, before {s.where(steps[int(idx[lo])])})")
        # the rate is the cause: lowered first, by as much as the blow-up says (newuser13)
        remedies.insert(0, sized_lower_lr(
            run, at_step=float(steps[int(idx[lo])]), rise=rise, dead=killed is not None,
            why="the units died after the gradient norm spiked" if killed is not None else "the gradient norm blew up"))
    # a note on a loss's spikes, each recovered at the rate the run kept, later than a warm-up's reach: a
    # stretch of bad batches the run got over (logsweep94 d2_supervised_restarts: a detectron2 total_loss
    # at 0.30 +- 0.01 thrown to 0.43 for two 20-iteration medians, then back), no sign of a rate too large,
    # which shows as spikes that recur (a warning) or that the run does not get over: a 3x cut of every
    # later step for it was advice the run does not need
    calm = (role != "grad_norm" and severity == "info" and all_recovered and not early
            and undone is None and stuck is None and lasting is None)
    if converged is None and not calm:
        remedies.append(lower_lr(run, at_step=first_step,
                                 warmup_steps=int(2 * (first_step - steps[0])) if early and first_step > steps[0] else 0,
                                 why=f"{what} spikes"))
    if killed is not None and died is not None:
        recovery = (f"the run did not recover: every weight tensor gets exactly zero gradient from {s.where(died)} on "
                    f"(dead_layer), after {cause_words}" + (": a blow-up that killed the network"
                                                           if rise >= _NORM_JUMP else ""))
    elif stuck is None:
        recovery = _recovery_words(not failed, open_at, any(r is not None for r in event_recovered))
    else:
        recovery = (f"each fell back, but {no_progress_words(stuck)}"
                    + (f"; the log ends {open_at}" if open_at is not None else ""))
    if killed is None and cause is not None:
        recovery += f"; {cause_words}: a blow-up, not a bad batch"
    return [finding(
        code, severity,
        f"{len(events)} {what} spike(s) in {s.name}{_events_words(len(idx), len(events))}, the largest "
        f"{v[worst]:.3g} at {s.where(steps[worst])} ({times(v[worst] / max(float(prior[worst]), 1e-300))} "
        f"{against(int(worst))}{_level_words(prior, stated, int(worst))}){_worst_span(s, steps, idx, events, int(worst))}; "
        + (f"the highest, {v[highest]:.3g} at {s.where(steps[highest])}, is "
           f"{times(v[highest] / max(float(prior[highest]), 1e-300))} "
           + ("its own; " if against(int(highest)) == against(int(worst)) else f"{against(int(highest))}; ")
           if highest != worst and not above_start else "")
        + ((f"{times(v[worst] / start)} where the run started; " if highest == worst else
            f"the highest {v[highest]:.3g} at {s.where(steps[highest])} is {times(v[highest] / start)} where the run started; ")
           if above_start else "")
        + recovery
        + (f"; every one below the run's early level {converged[0]:.3g}, with the loss at {converged[2]:.3g} "
           f"({100 * converged[2] / converged[1]:.2g}% of its start): the noise of a converged run"
           if converged is not None else "")
        + (f"; at {s.where(steps[undone[0]])} it reached {v[undone[0]]:.4g}, above the run's start level "
           f"{start:.4g} ({start_words}) after falling to {prior[undone[0]]:.4g}: the spike undid "
           "what the run had learnt, which it had to learn again" if undone is not None and undone[1] == "start" else
           f"; at {s.where(steps[undone[0]])} the {'epoch mean' if s.step_unit == 'epoch' else 'running average'} "
           f"jumped {times(v[undone[0]] / max(float(prior[undone[0]]), 1e-300))} {against(undone[0])} "
           f"({prior[undone[0]]:.4g} -> {v[undone[0]]:.4g}): an average of many batches, not one noisy batch"
           if undone is not None else "")
        + (f"; at {s.where(steps[min(jumps)])} it jumped from {v[min(jumps) - 1]:.4g} to {v[min(jumps)]:.4g}, "
           f"{jumps[min(jumps)]:.3g} times the curve's point-to-point noise" if jumps else "")
        + (f"; {lasting['metric']} fell from its best {lasting['best']:.4g} to {lasting['after']:.4g} there and "
           f"ended at {lasting['last']:.4g} (at most {lasting['best_after']:.4g} since): the model did not get "
           "back what the spike cost" if lasting is not None else ""),
        f"Isolated {what} values far above the recent median: a bad batch, a too-large step or an "
        "instability that " + ("settled only back to a loss no better than chance or the run's start: the model "
                               "did not learn, and a step this large (a learning rate too high) keeps it there."
                               if stuck is not None else "did not settle." if failed else "settled again." if all_recovered
                               else "the log ends on, so whether it settled is unknown.")
        + (" Each came back at the learning rate the run kept, and they are rare: no sign of a rate too large, so "
           "nothing needs changing for them (should they recur, clip the gradients or lower the rate)." if calm else ""),
        # Separate events: the steps of each spike (not a span), the largest in `value`, their count.
        {"metric": s.name, "steps": [_num(x) for x in steps[idx][:50]], "value": float(v[worst]),
         "count": len(idx), "episodes": episodes, "spike_steps": [_num(x) for x in steps[idx][:50]],
         "events": _event_evidence(steps, v, prior, idx, events, event_recovered)[:50],
         "max_ratio": float(np.max(ratios)),
         "fraction_of_steps": fraction, "recovered": False if failed else True if all_recovered else None,
         "ends_at_spike": open_at is not None}
        | ({"highest": float(v[highest]), "highest_step": _num(steps[highest])} if highest != worst else {})
        | ({"blowup": blowup} if blowup is not None else {})
        | ({"undid_learning": {"step": _num(steps[undone[0]]), "value": float(v[undone[0]]), "start": start,
                               "baseline": float(prior[undone[0]]), "why": undone[1]}}
           if undone is not None else {})
        | ({"no_progress": stuck} if stuck is not None else {})
        | ({"jump_noises": {str(_num(steps[i])): n for i, n in sorted(jumps.items())}} if jumps else {})
        | ({"accuracy_lost": lasting} if lasting is not None else {})
        | ({"converged": True, "early_baseline": converged[0], "loss_start": converged[1], "loss_level": converged[2]}
           if converged is not None else {}),
        remedies)]


#: A recovered loss spike undid the training where it went above the run's start level after the
#: loss had fallen to this share of it or less; on a loss that is an average of many batches (an epoch
#: mean, a running mean) one this many times its rolling median did so too
_UNDONE_FALL = 0.5
_AVERAGE_SPIKE = 10.0
#: ... and either only after this many points of the run: one at its second or third point comes
#: before it had anything to learn with, its start (logsweep99 pinn_early_spike)
_UNDONE_MIN = 3
#: A loss named as an average of batches (``avg_loss``, ``running_loss``, ``loss_ema``)
_AVERAGED_NAME = re.compile(r"avg|mean|average|running|smooth|ema", re.IGNORECASE)


def _averaged(s: Series) -> bool:
    """Whether loss ``s`` is an average of many batches: one point per whole epoch, or a name saying so
    (:data:`_AVERAGED_NAME`)."""
    return bool(_AVERAGED_NAME.search(s.name)) or (
        s.step_unit == "epoch" and bool(np.all(np.mod(finite(s)[0], 1) == 0)))


def _lasted(averaged: bool, v: np.ndarray, med: np.ndarray, i: int) -> bool:
    """Whether loss spike ``i`` outlasted its own batch: on a loss that is an average of many batches
    (``averaged``) always; on a loss of single batches where the next logged point is still at twice
    the level before (``med``): one bad batch leaves the next batch's loss alone, weights its step
    damaged do not."""
    return averaged or (i + 1 < len(v) and bool(v[i + 1] >= 2 * med[i]))


def _undone_learning(s: Series, v: np.ndarray, med: np.ndarray, idx: np.ndarray, recovered: list[bool | None],
                     start: float) -> tuple[int, str] | None:
    """``(index, why)`` of the first recovered training-loss spike (of ``idx``) that undid the run's
    learning: its value at or above ``start`` (the run's start level, the median of its first points)
    where the level before it ``med`` (the median of the points before it) had fallen to
    :data:`_UNDONE_FALL` of that start or less, on a loss that is an average of many batches or
    where the next point is still at twice the level before (``"start"``), or, on a loss that is
    already an average of many batches (one point per whole epoch, or a name saying so),
    :data:`_AVERAGE_SPIKE` times the level before (``"average"``); either only with
    :data:`_UNDONE_MIN` points or more before it (a run cannot un-learn before it has learnt: a
    PINN's mean_loss 1.37e13, then 1.48e14 at its second epoch, falling twelve decades after,
    logsweep99). Logsweep77 u09: an epoch mean at ~1.15 jumping to 14.72 at epoch 150 of 400, 12.6x
    its median and above the 12.9 (median 3.97 of the first three) the run began at. An ordinary
    recovered spike of a per-batch loss (a bad batch) is neither, and stays a note. None where none
    did."""
    if not (start > 0):
        return None
    averaged = _averaged(s)
    for i, r in zip(idx, recovered, strict=True):
        if r is not True or i < _UNDONE_MIN:
            continue
        # (on a loss of single batches, only where the next logged point is still up at twice the
        # level before: one bad batch leaves the next batch's loss alone, weights it damaged do not;
        # a PINN's lone 1.2 among 0.05s, 8x its start of 0.15, stays a note: sweep39)
        lasted = _lasted(averaged, v, med, int(i))
        if v[i] >= start and med[i] <= _UNDONE_FALL * start and lasted:
            return int(i), "start"
        if averaged and v[i] >= _AVERAGE_SPIKE * med[i]:
            return int(i), "average"
    return None


#: A rise from one point to the next of a smooth series (an epoch mean) at least this many of its
#: point-to-point noises and :data:`_JUMP_SHARE` of its level is a spike, whatever the rolling
#: median says (a slow return keeps the median up around it)
_JUMP_NOISES = 20.0
_JUMP_SHARE = 0.05
#: ... and one whose run comes back by at least this share of the jump (in log units) by its end
_JUMP_BACK = 0.5
#: A learning rate this many times the one logged before it restarted its schedule (SGDR): the loss
#: jumps with it by design
_LR_RESTART = 1.5


def _smooth_jumps(run: RunLog, steps: np.ndarray, v: np.ndarray, t: LogThresholds) -> dict[int, float]:
    """``{index: noises}`` of the points of a loss ``v`` that rise from the point before by
    :data:`_JUMP_NOISES` or more of its point-to-point noise (1.4826 MAD of the second differences of
    its log over sqrt 6, the measure :func:`steady_climb` uses) and by :data:`_JUMP_SHARE` of its
    level, at the worst reading of a rounded log (as :func:`_level_spikes`); above every point before
    them in the rolling window and the highest of those after them within it; the run coming back by
    half the jump or more by its end (else a new level, a blow-up: divergence's). Logsweep68 u01: a
    DeiT train_loss moving ~0.005 an epoch around 4.50, 5.313 at epoch 201, back to 4.59 20 epochs
    later (~180 noises, +18 %), which a rolling median lifted by the slow return reads as 1.16x. A
    per-batch loss scatters by far more than 1/20 of 5 % of its level, so only smooth curves get
    here. A jump where the logged learning rate rose :data:`_LR_RESTART`-fold (a warm restart) is
    the schedule's."""
    if len(v) < max(t.min_points, 6) or np.any(v <= 0):
        return {}
    # in log units, as the rolling test reads a loss: a loss that falls by decades scatters by a share
    # of its level, so its quiet late points must not set the bar for its early ones
    logv = np.log(v)
    noise = second_diff_noise(logv)
    if not noise > 0:
        return {}
    half = max(2, min(t.window // 2, len(v) // 6))
    curv = np.abs(np.diff(logv, 2))  # (curv[k] is point k + 1's)
    q = resolution(v) / 2
    lr = run.first("learning_rate")
    ls, lv = finite(lr) if lr is not None else (np.array([]), np.array([]))
    found: dict[int, float] = {}
    for i in range(1, len(v) - 2):
        # at the worst reading of a rounded log: the point half a step lower, the one before higher
        rise = float(np.log(max(v[i] - q, 1e-300)) - np.log(v[i - 1] + q))
        if rise < _JUMP_NOISES * noise or rise < math.log1p(_JUMP_SHARE):
            continue
        # ... and against its neighbours' noise, never under the whole curve's: the quiet points far
        # after a jump do not make it one (a PINN's mean_loss falling twelve decades, 1.37e13 ->
        # 1.48e14 at its second epoch, a jump in its first 500 epochs and none in its first 250,
        # logsweep99). Its own second differences (at i - 1, i and i + 1) are the jump, left out.
        near = np.concatenate([curv[max(0, i - 2 - half):max(0, i - 2)], curv[i + 1:i + 1 + half]])
        near = near[np.isfinite(near)]
        local = 1.4826 * float(median(near)) / math.sqrt(6) if len(near) >= 2 else 0.0
        if rise < _JUMP_NOISES * max(noise, local):
            continue
        if v[i] <= float(np.max(v[max(0, i - half):i])) or v[i] < float(np.max(v[i + 1:i + 1 + half])):
            continue
        if float(np.min(logv[i + 1:])) > logv[i - 1] + _JUMP_BACK * rise:
            continue  # never came back even half way: a new level (a blow-up) is divergence's
        if len(lv):
            at = np.searchsorted(ls, [steps[i - 1], steps[i]], side="right") - 1
            if at[0] >= 0 and at[1] > at[0] and lv[at[0]] > 0 and lv[at[1]] >= _LR_RESTART * lv[at[0]]:
                continue
        found[i] = rise / max(noise, local)
    return found


#: An evaluated accuracy's top-1 series, by name (test_acc1, test_384_acc1, val_accuracy, eval/acc@1)
_TOP1 = re.compile(r"(?:^|[/_. -])(?:acc|accuracy)(?:[_@]?1|[_ -]?top-?1)?(?:[/_. -](?:epoch|step))?$")
#: An accuracy this many of its noises under its best at the first evaluation at or after a spike
#: fell with it; one that stays more than :data:`_ACC_BACK` noises under that best never came back
_ACC_DROP, _ACC_BACK = 10.0, 3.0


def _accuracy_lost(run: RunLog, steps: np.ndarray, idx: np.ndarray) -> dict | None:
    """The first loss spike (of ``idx``) after which an evaluated accuracy (a validation or test
    top-1 series) fell by :data:`_ACC_DROP` noises (and 1 % of its best) under its best before the
    spike and never came back within :data:`_ACC_BACK` noises of it by the end (its noise: 1.4826
    MAD of its second differences before the spike over sqrt 6, at least its printed resolution):
    the run did not recover from it, whatever its loss did. None when there is none."""
    from gradhealth.logs.detectors.chance import VALIDATION

    evaluated = [x for x in run.by_role("metric")
                 if VALIDATION.search(x.name.lower()) and _TOP1.search(x.name.lower())]
    for i in idx:
        at = float(steps[i])
        for acc in sorted(evaluated, key=lambda x: (-len(x.values), -float(np.nanmax(x.values)))):
            a_steps, a = finite(acc)
            before, after = a[a_steps < at], a[a_steps >= at]
            if len(before) < 5 or len(after) < 3:
                continue
            noise = max(second_diff_noise(before), resolution(a))
            best = float(np.max(before))
            if not (noise > 0 and best > 0):
                continue
            drop = best - float(after[0])
            if drop < max(_ACC_DROP * noise, 0.01 * best) or float(np.max(after)) >= best - _ACC_BACK * noise:
                continue
            return {"metric": acc.name, "spike_step": _num(at), "best": best, "after": float(after[0]),
                    "best_after": float(np.max(after)), "last": float(after[-1]), "noise": noise}
    return None


def _converged_spikes(run: RunLog, s: Series, steps: np.ndarray, v: np.ndarray, idx: np.ndarray,
                      t: LogThresholds) -> tuple[float, float, float] | None:
    """``(early level, loss start, loss level)`` when grad-norm spikes ``idx`` are the jitter of a run
    that converged: the training loss at its floor from the first spike on (:func:`converged_loss`)
    and every spike below the norm's early baseline, so no spike is a step larger than the ones the
    run took while it was learning. Against a norm that fell to 4e-9 with the loss at ~0, 3.3e-7 is
    79x, yet 5,000x under the starting 1.7; a clip taken from those norms (0.0023) would cut the
    healthy start 700x (newuser5). None otherwise."""
    if not len(idx):
        return None
    base = early_baseline(finite(s)[1], t.baseline_fraction)
    if not base > 0 or float(np.max(v[idx])) >= base:
        return None
    done = converged_loss(run, since=float(steps[idx[0]]))
    return None if done is None else (base, done[0], done[1])


#: Gradient norm spikes this many times their rolling median, three or more of them, are a warning
#: however rare among the logged points.
_SEVERE_GRAD_SPIKE = 20.0
#: A loss spike this many times the run's starting level (and _SEVERE_GRAD_SPIKE times its rolling
#: median) is a warning even alone and recovered.
_ABOVE_START = 10.0


def _severe_episodes(idx: np.ndarray, events: list[tuple[int, int]], ratio: np.ndarray) -> int:
    """How many spike episodes (the events of the spike points ``idx``, :func:`spike_events`) peak at
    :data:`_SEVERE_GRAD_SPIKE` or more times their rolling median (``ratio`` per point)."""
    return sum(float(np.max(ratio[idx[lo:hi]])) >= _SEVERE_GRAD_SPIKE for lo, hi in events)

#: On a loss too short for the rolling statistics, a point this many times both its neighbours and
#: the median of the other points is a spike anyway (a note).
_SHORT_SPIKE = 4.0


def _short_spike(s: Series, code: str, run: RunLog | None = None) -> list[Finding]:
    """A note for one value far above everything around it in an excerpt too short for the rolling
    statistics: a loss (LLaVA #918: 0.66, 0.80, 4.27, 0.77, 0.56, 0.82) at least ``_SHORT_SPIKE``
    times both its neighbours and the median of the others; a gradient norm (unsloth #5207: 14.98,
    9.78, 7.64, 92.10, 29.00, 5.21, 7.83, 7.79), whose step after a spike is often still raised
    (Adam's moments), ``_SHORT_SPIKE`` times the others' median and twice its neighbours; either
    back down after it. A gradient norm's leading points that are the run's start-up (``run``'s
    loss falling from its highest over them, :func:`_startup`) are not spikes: nothing lower came
    before them."""
    steps, v = finite(s)
    if len(v) < 4 or np.any(v <= 0):
        return []
    beside = _SHORT_SPIKE if code == "loss_spike" else 2.0
    what = "loss" if code == "loss_spike" else "gradient norm"
    lead = 0
    if run is not None and code == "gradient_spike":
        lead = _startup(run, steps, v >= _SHORT_SPIKE * float(median(v)))
    for i in range(max(1, lead), len(v) - 1):
        rest = np.delete(v, i)
        if v[i] >= beside * max(v[i - 1], v[i + 1]) and v[i] >= _SHORT_SPIKE * float(median(rest)):
            ratio = float(v[i] / median(rest))
            return [finding(
                code, "info",
                f"{s.name} spiked to {v[i]:.3g} at {s.where(steps[i])}, {times(ratio)} the median of the other "
                f"{len(rest)} points, and came back to {v[i + 1]:.3g}",
                f"One {what} value far above the others that the next step leaves again: a bad batch (mislabelled, "
                "extreme or corrupt examples), or a step too large for that batch. A single one in a short excerpt "
                "is a note: if it repeats, look at the batches at those steps, clip the gradient or lower the rate.",
                {"metric": s.name, "steps": [_num(steps[i])], "value": float(v[i]), "count": 1,
                 "spike_steps": [_num(steps[i])], "max_ratio": ratio, "recovered": True, "points": int(len(v))},
                [])]
    return []


@detects("loss_spike")
def loss_spikes(run: RunLog, t: LogThresholds) -> list[Finding]:
    return spikes(run, t, role="loss") + spikes(run, t, role="val_loss")
