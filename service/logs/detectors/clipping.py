"""Gradient clipping that bounds nearly every step (``clipping_saturated``), with the threshold read
from the log's hyper-parameters.
"""

from __future__ import annotations

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding, judged
from gradhealth.logs.remedies import CLIP_KEYS, clip_threshold, lower_lr
from gradhealth.logs.series import RunLog
from gradhealth.logs.stats import EARLY_BLOWUP, early_baseline
from gradhealth.logs.stats import span as _span
from gradhealth.logs.thresholds import LogThresholds

# CLIP_KEYS and clip_threshold live with the remedies (the clipping remedy must not suggest a threshold
# looser than the one in force) and are re-exported here, where the detector reads them.
__all__ = ["CLIP_KEYS", "clip_threshold", "clipping_saturated", "pinned_maximum"]


def pinned_maximum(v: np.ndarray, fraction: float, *, baseline: float | None = None,
                   max_growth: float = EARLY_BLOWUP) -> float | None:
    """The maximum of a norm series that sits at it (within 0.1 %) on at least ``fraction`` of the
    points: a clipped norm, whose maximum is the threshold. A free norm never repeats its maximum.

    Not when that maximum is ``max_growth`` times the run's healthy early level (``baseline``) or
    more: a norm that grew by orders of magnitude and then stopped moving has blown up, it is not
    clipped (a missing ``zero_grad()`` with the loss at 0 keeps the accumulated gradient, and its
    norm, constant: 1.83e7 on 85 % of the steps against 0.75-5.9 at the start, newuser5)."""
    if len(v) < 3:
        return None
    top = float(np.max(v))
    if not top > 0 or np.mean(v >= top * (1 - 1e-3)) < fraction:
        return None
    if baseline is not None and baseline > 0 and top >= max_growth * baseline:
        return None
    return top


@detects("clipping_saturated")
def clipping_saturated(run: RunLog, t: LogThresholds) -> list[Finding]:
    limit, source = clip_threshold(run), "the run's params"
    found = judged(run, "grad_norm", t) or judged(run, "clipped_grad_norm", t)
    if found is None:
        return []
    s, steps, v = found
    if limit is None:
        # No recorded threshold: a clipped norm series (or a grad_norm logged after clipping) that
        # sits at its maximum on most steps tells it.
        clipped = judged(run, "clipped_grad_norm", t) or found
        limit = pinned_maximum(clipped[2], t.clip_saturated_fraction,
                               baseline=early_baseline(clipped[2], t.baseline_fraction), max_growth=t.explode_error)
        source = f"{clipped[0].name}, constant at its maximum"
        if limit is None:
            return []
    # At or above: a norm logged after clipping sits exactly at max_norm while clipping acts.
    frac = float(np.mean(v >= limit * (1 - 1e-3)))
    if frac < t.clip_saturated_fraction:
        return []
    factor = limit / float(np.median(v))
    pre = "pre-clip " if s.role == "grad_norm" and float(np.max(v)) > limit * (1 + 1e-3) else ""
    return [finding(
        "clipping_saturated", "warning",
        f"{pre}{s.name} is at or above max_norm {limit:g} (from {source}) on {frac:.0%} of steps "
        f"(median {np.median(v):.3g})",
        "Clipping that acts on nearly every step is not catching spikes: it is hiding a gradient that is "
        "too large all the time, and effectively rescales the learning rate.",
        {"metric": s.name, "steps": _span(steps), "value": frac, "threshold": t.clip_saturated_fraction,
         "max_norm": limit, "max_norm_source": source, "median_norm": float(np.median(v))},
        # The one data-derived factor: what brings the typical step under the threshold.
        [lower_lr(run, at_step=float(steps[0]), factor=factor,
                  why="so that typical steps fall under the clipping threshold") if 0 < factor < 1 else None])]
