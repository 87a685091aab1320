"""The learning-rate schedule as a log records it: growth over a range test or a warm-up, and the
schedule remedies and notes that follow from it.
"""

from __future__ import annotations

import math

import numpy as np

from gradhealth.core.document import Remedy
from gradhealth.logs.detectors.common import MAX_EXP
from gradhealth.logs.remedies import lower_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import finite, median
from gradhealth.logs.stats import num as _num


def lr_growth(run: RunLog, since: float | None = None, until: float | None = None) -> dict | None:
    """The log's learning rate when it grows by a constant factor per step (an exponential schedule
    with gamma > 1, e.g. ``ExponentialLR(gamma=1.3)``) between ``since`` and ``until`` (the stretch
    where the trouble grew): ``gamma`` per step, first and last rate.

    Judged on the last unbroken stretch of rising intervals in that window: constant means at least
    3 intervals, on 80 % of them the per-step log-growth within 5 % of its median, and the rate at
    least doubled. A linear warm-up (ratios 2, 1.5, 1.33...) or a step decay is not constant growth."""
    lr = run.first("learning_rate")
    if lr is None:
        return None
    steps, v = finite(lr)
    keep = (v > 0) & (steps >= (-math.inf if since is None else since)) & (
        steps <= (math.inf if until is None else until))
    steps, v = steps[keep].astype(np.float64), v[keep]
    if len(v) < 4:
        return None
    ds = np.diff(steps)
    ok = ds > 0
    steps, v = np.concatenate([steps[:1], steps[1:][ok]]), np.concatenate([v[:1], v[1:][ok]])
    rate = (np.log(v[1:]) - np.log(v[:-1])) / np.diff(steps)  # log growth per step
    if not len(rate) or not rate[-1] > 0:
        return None
    start = len(rate) - (int(np.argmax(rate[::-1] <= 0)) if np.any(rate <= 0) else len(rate))
    rate, steps, v = rate[start:], steps[start:], v[start:]
    if len(rate) < 3:
        return None
    g = float(median(rate))
    if not g > 1e-6 or np.mean(np.abs(rate - g) <= 0.05 * g) < 0.8 or v[-1] / v[0] < 2:
        return None
    return {"gamma": math.exp(min(g, MAX_EXP)), "first": float(v[0]), "last": float(v[-1]),
            "steps": [_num(steps[0]), _num(steps[-1])]}


#: A range test sweeps the rate over this many decades at least, from a rate this small or smaller
_SWEEP_DECADES = 4.0
_SWEEP_START = 1e-5


def range_test(run: RunLog, loss: Series) -> dict | None:
    """The learning rate's sweep when the log is a range test: constant growth per step from its first
    logged rate (at most :data:`_SWEEP_START`) to its last, over :data:`_SWEEP_DECADES` or more, across
    the whole of the loss's steps. A schedule with gamma > 1 in a training run starts at a working rate
    or partway through, and stays the error it is."""
    growth = lr_growth(run)
    if growth is None or not len(loss):
        return None
    first_step, last_step = growth["steps"]
    covers = first_step <= float(loss.steps[0]) + 1e-9 and last_step >= float(loss.steps[-1]) - 1e-9
    wide = math.log10(growth["last"] / growth["first"]) >= _SWEEP_DECADES
    return growth if covers and wide and growth["first"] <= _SWEEP_START else None


def schedule_remedy(run: RunLog, growth: dict, at_step: float) -> Remedy:
    """lower_learning_rate that names the schedule: the fix is the growing schedule, not one rate."""
    fix = lower_lr(run, at_step=at_step, why=(
        f"the schedule multiplies the learning rate by {growth['gamma']:.4g} every step (gamma > 1): "
        "use gamma <= 1, or a constant or decaying schedule"))
    fix.params.update({"schedule": "exponential", "gamma": growth["gamma"]})
    return fix


def lr_note(growth: dict | None) -> str:
    return ("" if growth is None else
            f"; the learning rate grows by a constant x{growth['gamma']:.4g} per step ({growth['first']:.3g} "
            f"to {growth['last']:.3g}), a schedule with gamma > 1")
