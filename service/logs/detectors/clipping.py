"""Gradient clipping that bounds nearly every step (``clipping_saturated``), with the threshold read
from the log's hyper-parameters.
"""

from __future__ import annotations

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding, judged
from gradhealth.logs.remedies import CLIP_KEYS, clip_in_force, clip_threshold, lower_lr
from gradhealth.logs.series import RunLog
from gradhealth.logs.stats import EARLY_BLOWUP, early_baseline, median
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


#: A Hugging Face Trainer run that records no max_grad_norm is judged against the Trainer's default
#: (1.0) only where its pre-clip norm is :attr:`LogThresholds.explode_error` times that (two decades,
#: the growth past which :func:`pinned_maximum` calls a constant norm blown up, not clipped) on this
#: share of steps or more: nearly every one. A norm a few times over 1.0 is ordinary clipping of a
#: healthy fine-tune (10-30 is common), and two decades over any max_grad_norm set in practice
#: (0.1-10) does not hang on the default being the one in force.
_ASSUMED_SHARE = 0.9


def _over_assumed_default(run: RunLog, t: LogThresholds) -> list[Finding]:
    """``clipping_saturated`` for a Hugging Face ``trainer_state.json`` with no recorded threshold:
    the Trainer logs ``grad_norm`` only when it clips (``max_grad_norm`` > 0, 1.0 unless changed),
    and logs it before clipping, so a norm two decades over that default on nearly every step says
    every update is the clip's unit step (logsweep73 u05: a TrOCR fine-tune's 4.2e4-4.3e6, median
    2.0e5, on all 700 logged steps)."""
    in_force = clip_in_force(run)
    found = judged(run, "grad_norm", t)
    if run.format != "hf_trainer" or in_force is None or found is None:
        return []
    limit, source = in_force
    s, steps, v = found
    ratio = t.explode_error
    frac = float(np.mean(v >= ratio * limit))
    if frac < _ASSUMED_SHARE:
        return []
    typical = float(median(v))
    return [finding(
        "clipping_saturated", "warning",
        f"pre-clip {s.name} is {ratio:g}x or more over max_norm {limit:g} on {frac:.0%} of steps (median {typical:.3g}, "
        f"{typical / limit:.3g}x it): every update is the clip's unit step. The threshold is assumed to be the "
        "Hugging Face Trainer's default 1.0: trainer_state.json does not record max_grad_norm",
        "The Trainer logs the total gradient norm before clipping, and only when it clips (max_grad_norm > 0, "
        "1.0 by default). A norm orders of magnitude over the threshold on every step means every update is "
        "rescaled to the threshold: the clip no longer catches spikes, it sets the step size, and how large the "
        "gradient is says nothing any more. A gradient this large all the time usually has a cause worth finding: "
        "a loss summed instead of averaged, padding tokens not masked out of the labels (-100), inputs far out of "
        "scale, or norms logged before the fp16 loss scale is taken out. If the run set its own max_grad_norm, "
        "pass it with the log's params to judge against it.",
        {"metric": s.name, "steps": _span(steps), "value": frac, "threshold": _ASSUMED_SHARE,
         "max_norm": limit, "max_norm_source": source, "max_norm_assumed": True,
         "median_norm": typical, "median_ratio": typical / limit, "ratio_threshold": ratio},
        [])]


@detects("clipping_saturated")
def clipping_saturated(run: RunLog, t: LogThresholds) -> list[Finding]:
    limit, source = clip_threshold(run), "the run's params"
    found = judged(run, "grad_norm", t) or judged(run, "clipped_grad_norm", t)
    if found is None:
        return []
    s, steps, v = found
    assumed = _over_assumed_default(run, t) if limit is None else []
    if assumed:
        return assumed
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
    factor = limit / float(median(v))
    pre = "pre-clip " if s.role == "grad_norm" and float(np.max(v)) > limit * (1 + 1e-3) else ""
    return [finding(
        "clipping_saturated", "warning",
        f"{pre}{s.name} is at or above max_norm {limit:g} (from {source}) on {frac:.0%} of steps "
        f"(median {median(v):.3g})",
        "Clipping that acts on nearly every step is not catching spikes: it is hiding a gradient that is "
        "too large all the time, and effectively rescales the learning rate.",
        {"metric": s.name, "steps": _span(steps), "value": frac, "threshold": t.clip_saturated_fraction,
         "max_norm": limit, "max_norm_source": source, "median_norm": float(median(v))},
        # The one data-derived factor: what brings the typical step under the threshold.
        [lower_lr(run, at_step=float(steps[0]), factor=factor,
                  why="so that typical steps fall under the clipping threshold") if 0 < factor < 1 else None])]
