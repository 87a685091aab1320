"""Gradient clipping that bounds nearly every step (``clipping_saturated``), with the threshold read
from the log's hyper-parameters.
"""

from __future__ import annotations

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding, judged
from gradhealth.logs.remedies import (
    CLIP_KEYS,
    clip_in_force,
    clip_threshold,
    clip_threshold_source,
    lower_lr,
    optimizer_in_use,
)
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


def _what_the_clip_does(run: RunLog, limit: float) -> tuple[str, str, dict[str, object]]:
    """What clipping every step to ``limit`` does to the updates, by the optimizer the log names
    (:func:`optimizer_in_use`): a clause for the summary, a passage for the why, and the evidence.

    Under SGD the update is lr times the gradient, so a gradient rescaled to ``limit`` on every step
    makes every update lr * limit long: the clip sets the step size. Adam-family optimizers divide
    each coordinate's first moment by the root of its second, both built from the clipped gradients:
    a factor common to the steps cancels, so the update stays about lr per weight, as it would be
    unclipped. Clipping every step then changes only how the steps weigh against each other (each
    enters the moments with norm ``limit``: normalised-gradient Adam), so it neither sets the step
    size nor catches a spike (logsweep86: a TrOCR fine-tune under the Trainer's AdamW, its pre-clip
    norm 2e5 on every step, trained to a good loss)."""
    found = optimizer_in_use(run)
    if found is None:
        name, adaptive, assumed = "", None, False
    else:
        name, adaptive, assumed = found
    evidence: dict[str, object] = {"optimizer": name or None, "optimizer_adaptive": adaptive,
                                   "optimizer_assumed": assumed}
    if adaptive:
        return (f"the clip rescales every gradient to norm {limit:g} before {name} takes it, and {name} divides "
                "that scale out again, so the steps stay about the learning rate per weight; the clip only "
                "makes every step weigh alike",
                f"{name} divides each weight's step by the running root-mean-square of its own gradients, so a "
                "rescaling applied to every step alike cancels: the update is about the learning rate per weight "
                "whether the gradient was clipped or not (as long as the clipped gradient's entries stay well "
                "above its eps), and the run can train well. What the clip changes is the weighting: every step "
                "enters the moments with the same norm, so steps with a larger raw gradient count for less (a spike "
                "no more than any other step), and the clip no longer tells a spike from an ordinary step. The "
                "learning rate, not the clip, is what sets the step size here.", evidence)
    if adaptive is False:
        return (f"every update is the learning rate times {limit:g} long: the clip sets the step size",
                f"Under {name} the update is the learning rate times the gradient, so a gradient rescaled to the "
                "threshold on every step gives every update the same length: the clip, not the gradient, sets "
                "the step size, and it no longer catches spikes.", evidence)
    return ("the clip sets the gradient's scale on every step: under SGD every update is then the learning "
            f"rate times {limit:g} long, while an Adam-family optimizer divides that scale out again",
            "What that does depends on the optimizer, which the log does not name: under SGD every update is "
            "rescaled to the learning rate times the threshold, so the clip sets the step size; Adam and its "
            "kin divide each weight's step by the running scale of its own gradients, so the rescaling "
            "cancels and the clip only makes every step weigh alike. Either way it no longer catches spikes.",
            evidence)


def _over_assumed_default(run: RunLog, t: LogThresholds) -> list[Finding]:
    """``clipping_saturated`` for a Hugging Face ``trainer_state.json`` with no recorded threshold:
    the Trainer logs ``grad_norm`` only when it clips (``max_grad_norm`` > 0, 1.0 unless changed),
    and logs it before clipping, so a norm two decades over that default on nearly every step says
    every gradient is rescaled to it (logsweep73 u05: a TrOCR fine-tune's 4.2e4-4.3e6, median
    2.0e5, on all 700 logged steps). What that does to the updates depends on the optimizer
    (:func:`_what_the_clip_does`): the Trainer's default AdamW divides the scale out again."""
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
    does, why, about = _what_the_clip_does(run, limit)
    default_optimizer = " and the optimizer its default AdamW" if about["optimizer_assumed"] else ""
    return [finding(
        "clipping_saturated", "warning",
        f"pre-clip {s.name} is {ratio:g}x or more over max_norm {limit:g} on {frac:.0%} of steps (median {typical:.3g}, "
        f"{typical / limit:.3g}x it): {does}. The threshold is assumed to be the "
        f"Hugging Face Trainer's default 1.0{default_optimizer}: trainer_state.json does not record "
        + ("max_grad_norm or optim" if default_optimizer else "max_grad_norm"),
        "The Trainer logs the total gradient norm before clipping, and only when it clips (max_grad_norm > 0, "
        "1.0 by default). A norm orders of magnitude over the threshold on every step means every gradient is "
        f"rescaled to the threshold, and how large the gradient is says nothing any more. {why} A gradient this "
        "large all the time usually has a cause worth finding: "
        "a loss summed instead of averaged, padding tokens not masked out of the labels (-100), inputs far out of "
        "scale, or norms logged before the fp16 loss scale is taken out. If the run set its own max_grad_norm, "
        "pass it with the log's params to judge against it.",
        {"metric": s.name, "steps": _span(steps), "value": frac, "threshold": _ASSUMED_SHARE,
         "max_norm": limit, "max_norm_source": source, "max_norm_assumed": True,
         "median_norm": typical, "median_ratio": typical / limit, "ratio_threshold": ratio, **about},
        [])]


@detects("clipping_saturated")
def clipping_saturated(run: RunLog, t: LogThresholds) -> list[Finding]:
    limit, source = clip_threshold(run), clip_threshold_source(run)
    said = f"from {source}"
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
        # (said so: a live run with no config read "from grad_norm, constant at its maximum" as if
        # clipping had been configured: newuser16 #10)
        source = f"inferred from {clipped[0].name} holding its maximum, as a clipped norm does"
        said = f"no threshold given: {source}"
        if limit is None:
            return []
    # At or above: a norm logged after clipping sits exactly at max_norm while clipping acts.
    frac = float(np.mean(v >= limit * (1 - 1e-3)))
    if frac < t.clip_saturated_fraction:
        return []
    factor = limit / float(median(v))
    pre = "pre-clip " if s.role == "grad_norm" and float(np.max(v)) > limit * (1 + 1e-3) else ""
    does, why, about = _what_the_clip_does(run, limit)
    return [finding(
        "clipping_saturated", "warning",
        f"{pre}{s.name} is at or above max_norm {limit:g} ({said}) on {frac:.0%} of steps "
        f"(median {median(v):.3g})" + (f": {does}" if about["optimizer_adaptive"] is not None else "")
        + (". The optimizer is assumed to be the Hugging Face Trainer's default AdamW: trainer_state.json does not "
           "record optim" if about["optimizer_assumed"] else ""),
        "Clipping that acts on nearly every step is not catching spikes: it is hiding a gradient that is "
        f"too large all the time. {why}",
        {"metric": s.name, "steps": _span(steps), "value": frac, "threshold": t.clip_saturated_fraction,
         "max_norm": limit, "max_norm_source": source, "median_norm": float(median(v)), **about},
        # The one data-derived factor: the learning rate the clipped SGD steps amount to (lr * limit /
        # the typical norm). Under an adaptive optimizer the clip does not scale the step, so there is no
        # such equivalent rate to offer.
        [lower_lr(run, at_step=float(steps[0]), factor=factor,
                  why="so that typical steps fall under the clipping threshold")
         if 0 < factor < 1 and not about["optimizer_adaptive"] else None])]
