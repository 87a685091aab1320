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


@detects("loss_oscillation")
def oscillation(run: RunLog, t: LogThresholds) -> list[Finding]:
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
