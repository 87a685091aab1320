"""A training loss that alternates up and down around its trend (``loss_oscillation``)."""

from __future__ import annotations

import math

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import MAX_EXP, finding, log_printed, positive_loss
from gradhealth.logs.detectors.rl import on_rollouts
from gradhealth.logs.remedies import clipping, lower_lr
from gradhealth.logs.series import RunLog
from gradhealth.logs.stats import median, smooth, theil_sen
from gradhealth.logs.stats import num as _num
from gradhealth.logs.stats import span as _span
from gradhealth.logs.thresholds import LogThresholds

#: Residuals this anticorrelated from one step to the next (up, down, up) are steps overshooting
#: the minimum, not minibatch noise (about -0.1 for independent batches around a running median).
_ALTERNATION = -0.3


def _alternation(v: np.ndarray, trend: np.ndarray) -> float | None:
    """Lag-1 autocorrelation of the log-loss around its trend, when it is clearly below what
    independent batches give; None otherwise.

    Independent minibatch losses scatter around a running median with an autocorrelation near
    -0.1 and a spread of about 1/sqrt(n): a short excerpt of pure noise reaches -0.3 one time in
    five. The bound is that null's mean less 1.64 standard errors (about 5 % of noise series pass),
    and never looser than ``_ALTERNATION``.
    """
    positive = v[v > 0]
    if not len(positive):
        return None
    floor = float(np.min(positive))  # (as log_printed reads a point printed as 0)
    resid = log_printed(v) - np.log(np.maximum(trend, floor))
    if len(resid) < 4 or float(np.std(resid)) == 0:
        return None
    ac = float(np.corrcoef(resid[:-1], resid[1:])[0, 1])
    bound = min(_ALTERNATION, -0.1 - 1.64 / math.sqrt(len(resid)))
    return ac if ac < bound else None


#: A swing over orders of magnitude: a leg of at least this factor, up or down, between turning points
#: of the loss's 3-point running median (:func:`swings`); two decades, beyond what the scatter of a
#: sound loss spans once single outlying batches are taken out
_SWING_FACTOR = 100.0
#: ... and this many up-legs, each followed by a down-leg: swings that recur, not one divergence and
#: recovery (that is loss_spike's or loss_divergence's)
_SWING_CYCLES = 3
#: Swings are waves of several points: the log-loss's residuals around a trend wider than a swing are
#: at least this correlated from one point to the next (and beyond what chance gives on the series'
#: length, :func:`_persistence`). Independent minibatch losses scatter around their trend with no such
#: correlation (about 0), whatever their spread: a per-batch loss converged near 0 spans two decades
#: and more between an easy batch and a hard one, and its 3-point medians zigzag over them.
_PERSISTENCE = 0.3
#: The trend the residuals are read around spans this many of the swings' median leg (11 points at least)
_TREND_LEGS = 3


def swings(v: np.ndarray, factor: float = _SWING_FACTOR) -> list[tuple[int, int]]:
    """The legs of a positive loss ``v`` that move it ``factor`` times or more, as (start, end)
    indices of turning points, read on its 3-point running median (a single outlying point is a
    spike, not a swing) on a log scale: a zigzag that turns wherever the median has moved back by
    ``factor`` from its extreme since the last turn."""
    return _legs(smooth(v, 3), factor)


def _legs(sm: np.ndarray, factor: float = _SWING_FACTOR) -> list[tuple[int, int]]:
    """:func:`swings` of the 3-point running median ``sm`` already taken."""
    s = np.log(sm)
    gap = math.log(factor)
    legs: list[tuple[int, int]] = []
    pivot, extreme, direction = 0, 0, 0
    for i in range(1, len(s)):
        if direction == 0:
            if abs(s[i] - s[pivot]) >= gap:
                direction, extreme = (1 if s[i] > s[pivot] else -1), i
            continue
        if direction * (s[i] - s[extreme]) > 0:
            extreme = i
        elif direction * (s[extreme] - s[i]) >= gap:
            legs.append((pivot, extreme))
            pivot, extreme, direction = extreme, i, -direction
    if direction != 0:
        legs.append((pivot, extreme))
    return legs


def _persistence(v: np.ndarray, legs: list[tuple[int, int]]) -> float | None:
    """Lag-1 autocorrelation of the log of a positive loss ``v`` around its running median over
    :data:`_TREND_LEGS` times the median length of its ``legs`` (so the trend does not follow the
    swings), when it says the swings are waves: at least :data:`_PERSISTENCE` and above what
    independent points reach one time in a hundred (2.33 / sqrt(n)); None otherwise (the swings are
    the scatter of independent batches)."""
    length = float(np.median([b - a for a, b in legs])) if legs else 0.0
    window = max(11, int(_TREND_LEGS * length)) | 1
    resid = np.log(v) - np.log(smooth(v, window))
    if len(resid) < 4 or float(np.std(resid)) == 0:
        return None
    ac = float(np.corrcoef(resid[:-1], resid[1:])[0, 1])
    return ac if ac >= max(_PERSISTENCE, 2.33 / math.sqrt(len(resid))) else None


def _wild_swings(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A loss that swings up and down by orders of magnitude again and again (a PINN's mean_loss
    over 57 epochs: 2.8e8, 1.9e10, 1.1e7, 2.5e11, 1.0e4, 2.2e10; logsweep84 pina_v21_osc): its swings
    are waves of several points, not the point-to-point alternation :func:`oscillation` reads, and
    far larger than any noise."""
    found = positive_loss(run, t)
    if found is None or float(np.min(found[2])) <= 0 or on_rollouts(run):
        return []
    loss, steps, v = found
    sm = smooth(v, 3)
    legs = _legs(sm)
    # up-legs each followed by a down-leg: complete swings
    done = [(a, b) for a, b in legs[:-1] if v[b] > v[a]]
    cycles = len(done)
    if cycles < _SWING_CYCLES:
        return []
    # (logsweep92 t5_batch_loss: a T5 fine-tune's 7,760 batch losses, converged near 0.02, read as
    # 28 swings "up by 100x": batches of 1e-4 and 0.3 side by side, independent, not waves)
    persistence = _persistence(v, legs)
    if persistence is None:
        return []
    widest = max(done, key=lambda ab: float(sm[ab[1]] / sm[ab[0]]))
    first, last = legs[0][0], legs[-1][1]
    low, high = float(np.min(sm[first:last + 1])), float(np.max(sm[first:last + 1]))
    return [finding(
        "loss_oscillation", "warning",
        f"{loss.name} swings over orders of magnitude: {cycles} times up by {_SWING_FACTOR:g}x or more and back "
        f"down, between {low:.3g} and {high:.3g} ({loss.between(steps[first], steps[last])}; the largest "
        f"{float(sm[widest[1]] / sm[widest[0]]):.3g}x, {float(sm[widest[0]]):.3g} -> {float(sm[widest[1]]):.3g} "
        f"over {loss.between(steps[widest[0]], steps[widest[1]])}; 3-point running medians)",
        "A loss that climbs by orders of magnitude and falls back again and again is not converging: each climb "
        "is a divergence the run recovers from only to diverge again (a learning rate far too large, exploding "
        "gradients with no clipping, or loss terms on scales orders of magnitude apart fighting each other).",
        {"metric": loss.name, "steps": [_num(steps[first]), _num(steps[last])], "value": float(cycles),
         "threshold": float(_SWING_CYCLES), "swing_factor": _SWING_FACTOR,
         "swings": [[_num(steps[a]), _num(steps[b]), float(sm[b] / sm[a])] for a, b in legs],
         "lowest": low, "highest": high, "lag1_autocorrelation": persistence},
        [lower_lr(run, at_step=float(steps[first]), why="the loss swings over orders of magnitude"),
         clipping(run, t)])]


@detects("loss_oscillation")
def oscillation(run: RunLog, t: LogThresholds) -> list[Finding]:
    wild = _wild_swings(run, t)
    if wild:
        return wild
    found = positive_loss(run, t)
    if found is None or len(found[2]) < 12 or on_rollouts(run):
        return []
    loss, steps, v = found
    trend = smooth(v, 11)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(v - trend) / np.abs(trend)
    rel = rel[np.isfinite(rel)]
    d = np.diff(v)
    flips = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1]))) if len(d) > 2 else 0.0
    level = float(median(rel)) if len(rel) else 0.0
    if level < t.oscillation_ratio or flips < 0.4:
        return []
    # Swings that do not alternate are not steps overshooting: independent batches scatter around
    # the trend (a small batch's losses, a hard detection set's), and a running mean reset at each
    # epoch or a cyclic schedule rises and falls smoothly (positively correlated).
    alternation = _alternation(v, trend)
    if alternation is None:
        return []
    # A loss whose robust trend still falls clearly over the last half is learning: its swings are
    # minibatch noise around progress (a nearly fitted classifier's batch losses are heavy-tailed),
    # not steps too large for the curvature.
    half = len(v) // 2
    x = steps[half:].astype(np.float64)
    slope, _, high = theil_sen(x, log_printed(v[half:]))
    if high < 0 and 1 - math.exp(min(slope * float(x[-1] - x[0]), MAX_EXP)) >= t.plateau_improvement:
        return []
    return [finding(
        "loss_oscillation", "warning",
        f"{loss.name} swings {level:.0%} around its trend (median), changing direction on {flips:.0%} of steps",
        "A loss that jumps up and down around its trend is taking steps too large for the curvature.",
        {"metric": loss.name, "steps": _span(steps), "value": level, "threshold": t.oscillation_ratio,
         "direction_changes": flips, "lag1_autocorrelation": alternation},
        [lower_lr(run, at_step=float(steps[0]), why="the loss oscillates"), clipping(run, t)])]
