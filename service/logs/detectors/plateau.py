"""A loss that stops improving or never starts (``loss_plateau``), told apart from convergence."""

from __future__ import annotations

import math

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.chance import (
    at_chance,
    auc_at_chance,
    classes_words,
    one_class_constant,
    one_class_validation,
    short_at_chance,
    stuck_validation_accuracy,
    uniform_guess,
    validation_at_chance,
    zero_accuracy,
)
from gradhealth.logs.detectors.common import (
    MAX_EXP,
    epoch_twin,
    finding,
    log_printed,
    positive_loss,
)
from gradhealth.logs.detectors.divergence import (
    LOST_RISE,
    divergence,
    steady_climb,
    validation_alone,
)
from gradhealth.logs.detectors.explosion import no_progress, spike_points
from gradhealth.logs.detectors.gan import discriminator_ahead, discriminator_won, frozen_gan
from gradhealth.logs.detectors.rl import on_rollouts
from gradhealth.logs.remedies import ADAPTIVE_USUAL_LR, lower_lr, raise_lr, usual_adaptive_rate
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import (
    FULL_DIGITS,
    finite,
    median,
    printed_digits,
    resolution,
    second_diff_noise,
    smooth,
    theil_sen,
)
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds

#: The largest fall over a run its trend's 99 % interval may allow for "the loss barely moved" (a
#: fall under plateau_early_fraction) to stand: four times that bar, so only data that rule out a
#: real fall make the claim
_NEVER_PLAUSIBLE = 0.2


#: A loss's last half is frozen when it spans less than this share of its level, over this many
#: points at least, printed with the digits to show a change that size: no healthy run's loss
#: in the sweeps' 540 logs comes within 6e-4, and a full-batch fit still moves in its 5th digit
_FROZEN_SPREAD = 1e-4
_FROZEN_POINTS = 20


#: Points of an excerpt (a log that starts mid-run) frozen within :data:`_FROZEN_SPREAD`: a minibatch
#: loss moves in its 3rd or 4th digit from one print to the next; six prints that do not are stuck
_FROZEN_EXCERPT_POINTS = 6


def _frozen_tail(v: np.ndarray, points: int = _FROZEN_POINTS) -> float:
    """The relative spread of ``v`` (a loss's last half) where it is frozen (:data:`_FROZEN_SPREAD`),
    over ``points`` at least, else 0.0: a stuck model's loss repeats itself to the last digit
    (logsweep44/50: an LSTM's MSE at 0.25000453 for 120 logged epochs, both outputs at 0.5)."""
    level = float(median(v)) if len(v) else 0.0
    if len(v) < points or level <= 0 or resolution(v) > _FROZEN_SPREAD * level:
        return 0.0
    spread = float(np.max(v) - np.min(v)) / level
    return max(spread, 1e-300) if spread < _FROZEN_SPREAD else 0.0


#: The share of a run's points at each end whose median is its level there (a tenth of 3 points at least): a
#: 5-point median of noisy batch losses moves by more than the 5 % "never learnt" bar (logsweep60
#: u06: 2.927 -> 2.781, a 5.008 % "fall", where the first and last tenths' medians, 54 points each,
#: read 2.481 -> 2.636, a 6 % rise)
_LEVEL_SHARE = 0.1
_LEVEL_POINTS = 3

#: A run of fewer points whose whole trend is a fall (99 % bound below 0) is too short to say it never learnt
_EARLY_POINTS = 30

#: The quantile of the last half's points a start must clear to be a fall the tenths' medians hide
_BAND = 0.9


def _robust_fall(v: np.ndarray, start_edge: float, edge_fall: float) -> float:
    """The relative fall of ``v`` from the median of its first tenth to that of its last.

    A fall inside the first tenth (a loss that drops from 10 to 1 in its first few points) pulls
    that tenth's median down with it; a start (``start_edge``, the smoothed first point) above the
    last half's 90th percentile is such a fall, not noise, and ``edge_fall`` (the smoothed first to
    last point) counts then where it is the larger. A run too short for a tenth to hold 3 points
    keeps ``edge_fall``: 3 of its 10 points are no longer its start (logsweep55: a fine-tune's
    1.36 -> 0.48 over its first two points, its first three's median 0.58)."""
    k = math.ceil(_LEVEL_SHARE * len(v))
    if k < _LEVEL_POINTS:
        return edge_fall
    start, end = float(median(v[:k])), float(median(v[-k:]))
    fell = (start - end) / max(abs(start), 1e-12)
    if start_edge > float(np.quantile(v[len(v) // 2:], _BAND)):
        fell = max(fell, edge_fall)
    return fell


#: A noisy run's span in steps, and points in each quarter, from which a last quarter no lower than
#: the first is evidence of no learning: logsweep60 u05's 50 losses over 2,500 steps (a single
#: epoch's fine-tune) bounce 1.24-3.15; their trend's 99 % interval still admits a 27 % fall, but
#: the last 12 points rank above the first 12 (a last point below a first one in 45 % of pairs)
_RANKED_STEPS = 1000
_RANKED_POINTS = 10


def _last_quarter_lower(steps: np.ndarray, v: np.ndarray) -> float | None:
    """The share of (first-quarter, last-quarter) pairs of points whose last-quarter point is the
    lower (ties count half: Mann-Whitney's U over the pairs, as a probability), where the run spans
    :data:`_RANKED_STEPS` steps and each quarter holds :data:`_RANKED_POINTS` points; else ``None``.
    0.5 is no difference; a falling loss gives more."""
    q = len(v) // 4
    if q < _RANKED_POINTS or float(steps[-1] - steps[0]) < _RANKED_STEPS:
        return None
    first, last = v[:q], v[-q:]
    lower = (last[:, None] < first[None, :]).sum() + 0.5 * (last[:, None] == first[None, :]).sum()
    return float(lower) / (q * q)


#: A loss that barely moved stalled where it had made this share of its whole fall
_STALL_SHARE = 0.9
#: ... a fall said only where it is this many of one point's noise (a noisy loss's first points
#: scatter more than a stalled run's whole fall)
_STALL_NOISES = 3.0


def _stall_point(v: np.ndarray, sm: np.ndarray) -> tuple[int, float, float] | None:
    """``(index, fall, after)`` where a loss that barely moved (its points ``v``, smoothed ``sm``)
    stalled: the first point by which its smoothed level had made :data:`_STALL_SHARE` of its fall
    from its first point ``v[0]`` to its last level, that fall as a share of ``v[0]``, and the change
    from there to the end (a share of that level, positive lower). None where it stalled from its first
    point: no fall, a fall made by the next point, or one within :data:`_STALL_NOISES` of one point's
    noise (:func:`.stats.second_diff_noise`)."""
    start = float(v[0])
    total = start - float(sm[-1])
    if len(v) < 3 or not start > 0 or not total > _STALL_NOISES * second_diff_noise(v):
        return None
    k = int(np.argmax(start - sm >= _STALL_SHARE * total))
    if k <= 1:
        return None
    return k, (start - float(sm[k])) / start, (float(sm[k]) - float(sm[-1])) / max(abs(float(sm[k])), 1e-12)


def _share(x: float) -> str:
    """A small relative change in words with two significant digits: "0.0044% lower", "1.8% higher"."""
    return f"{abs(x) * 100:.2g}% {'lower' if x >= 0 else 'higher'}"


def _change(improvement: float) -> str:
    """A relative improvement in words: "8.2% lower", or "8.2% higher" when it is negative."""
    return f"{improvement:.1%} lower" if improvement >= 0 else f"{-improvement:.1%} higher"


#: Identical last points that make a run too short for the trends a frozen one (:func:`_frozen_short`).
_FROZEN_REPEATS = 3


#: Steps from the run's start over which a loss repeated exactly has not moved (a short excerpt).
_FROZEN_SPAN = 100

#: A log whose first point is past this share of its last one starts mid-run (an excerpt).
_EXCERPT_START = 0.1


def _frozen_short(run: RunLog, t: LogThresholds) -> Finding | None:
    """A run too short for the trend checks whose training loss is the very same number at its last
    3 points, after at least one other, and never fell below half its first: printed to 4 digits,
    5.7257 three epochs running is weights that do not move (saturated units, a learning rate of 0
    or far too large, an optimizer stepping nothing), not noise. A loss near 0, or that fell and
    then settled, is not."""
    train = run.first("loss")
    if train is None or on_rollouts(run):
        return None
    steps, v = finite(train)
    if 2 <= len(v) <= _FROZEN_REPEATS and v[0] >= 1e-3 and bool(np.all(v == v[0])) \
            and float(steps[0]) <= 1 and float(steps[-1]) >= _FROZEN_SPAN:
        # litgpt #125: "iter 1: loss 11.0666" and "iter 400: loss 11.0666", the lines between elided:
        # the same number from the run's first step to hundreds later is a run that never moved
        return finding(
            "loss_plateau", "warning",
            f"{train.name} is exactly {float(v[0]):.6g} at {train.where(steps[0])} and still at "
            f"{train.where(steps[-1])}: it has not moved since the run began",
            "A loss that repeats to every printed digit from the first step to hundreds of steps later comes from "
            "weights that do not move: saturated or dead units passing no gradient, a learning rate of 0 or one so "
            "large the optimizer has thrown the weights into a flat region, or parameters the optimizer was not "
            "given.",
            {"metric": train.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0,
             "threshold": t.plateau_improvement, "repeats": int(len(v)), "first": float(v[0])},
            [])
    # a point before the repeats: three points alone show no run that stopped moving; and the log
    # from (near) the run's start: an excerpt of its last epochs at a settled loss (piaic's Keras
    # paste, epochs 95-100 all at 0.0266) has not shown where the run began
    if not _FROZEN_REPEATS < len(v) < t.min_points or not v[0] > 0 \
            or float(steps[0]) > max(1.0, _EXCERPT_START * float(steps[-1])):
        return None
    tail = v[-_FROZEN_REPEATS:]
    if np.any(tail != tail[0]) or tail[0] < 0.5 * v[0] or tail[0] < 1e-3:
        return None
    return finding(
        "loss_plateau", "warning",
        f"{train.name} is exactly {float(tail[0]):.6g} at each of its last {_FROZEN_REPEATS} points "
        f"({train.between(steps[-_FROZEN_REPEATS], steps[-1])}), having started at {float(v[0]):.6g}",
        "A loss that repeats to every printed digit from one epoch to the next comes from weights that do not "
        "move: saturated or dead units passing no gradient, a learning rate of 0 or one so large the optimizer "
        "has thrown the weights into a flat region, or parameters the optimizer was not given.",
        {"metric": train.name, "steps": [_num(steps[-_FROZEN_REPEATS]), _num(steps[-1])], "value": 0.0,
         "threshold": t.plateau_improvement, "repeats": _FROZEN_REPEATS, "first": float(v[0])},
        [])  # a rate too small or far too large freezes a loss alike: nothing says which way


def _exact_repeat(v: np.ndarray) -> int | None:
    """The index from which ``v`` (a training loss that never learnt) is one and the same number to
    the end, printed in full (:data:`~gradhealth.logs.stats.FULL_DIGITS` significant digits or more),
    over :data:`_FROZEN_EXCERPT_POINTS` points and half the series at least; else None. A loss
    computed afresh at each log (another batch, weights after more steps) changes in its 7th digit
    however flat its trend: the same 16 digits at every log is no plateau but a loss that depends on
    neither (logsweep82 pl_wsds_frozen: 16.74222755432129 at all 74 logs of a per-batch loss)."""
    if not len(v) or printed_digits(float(v[-1])) < FULL_DIGITS or not v[-1] > 0:
        return None
    differs = np.nonzero(v != v[-1])[0]
    start = int(differs[-1]) + 1 if len(differs) else 0
    repeats = len(v) - start
    return start if repeats >= max(_FROZEN_EXCERPT_POINTS, (len(v) + 1) // 2) else None


def _frozen_evaluation(run: RunLog, loss: Series) -> tuple[Series, np.ndarray, np.ndarray, int] | None:
    """A validation loss of the run (not ``loss``) that is one and the same full-precision number at
    every evaluation from one on (:func:`_exact_repeat`: ``Test loss=0.90144944190979`` at all 7
    epochs): (the series, its steps, its values, the index it froze from); else None. The same data
    through the same weights give the same loss: an evaluation loss repeated to every printed digit
    says no update changed the model's output at all (logsweep93 sentimentrnn_collapsed)."""
    for s in run.series:
        if s is loss or s.role != "val_loss":
            continue
        steps, v = finite(s)
        start = _exact_repeat(v)
        if start is not None:
            return s, steps, v, start
    return None


#: A loss ending this many times over its start blew up: no plateau to judge (see plateau)
_BLOWN_UP = 10.0


def planned_steps(run: RunLog, loss: Series) -> float | None:
    """The run's planned length where its log states it (:attr:`RunLog.planned_steps`: a Trainer's
    ``max_steps``, a console's "Iter 110/3000" or "Epoch 3/50"), on a loss counted in the same unit
    (:attr:`RunLog.planned_unit`); None where it does not."""
    n = run.planned_steps
    if n is None or loss.step_unit != run.planned_unit:
        return None
    return n if math.isfinite(n) and n > 0 else None


@detects("loss_plateau")
def plateau(run: RunLog, t: LogThresholds) -> list[Finding]:
    stuck = (stuck_validation_accuracy(run, t) or one_class_validation(run) or one_class_constant(run)
             or auc_at_chance(run)
             or zero_accuracy(run))
    found = positive_loss(run, t) if not on_rollouts(run) else None
    if found is not None and np.any(found[2][len(found[2]) // 2:] == 0):
        found = None  # a loss at exactly 0 in its last half has no level to stall at (zero_gradient's case)
    if found is None:
        frozen = (frozen_gan(run) or discriminator_won(run) or discriminator_ahead(run) or short_at_chance(run, t) or _frozen_short(run, t)
                  or validation_alone(run, t, "loss_plateau"))
        return [f for f in (stuck, frozen) if f is not None]
    loss, steps, v = found
    sm = smooth(v, max(3, min(9, len(v) // 4)))
    half = len(sm) // 2
    overall = (sm[0] - sm[-1]) / max(abs(sm[0]), 1e-12)
    # "never learnt" judges the run's level at both ends, not its 5-point edges (logsweep60 u06)
    fell = _robust_fall(v, float(sm[0]), overall)
    # Lightning's per-batch loss beside its epoch means: the epochs' level must show a fall too
    twin = epoch_twin(run, loss)
    twin_fell = (float(twin[2][0] - twin[2][-1]) / float(twin[2][0])) if twin is not None else None
    # Robust trend of the log-loss over the last half: its relative change over that window, with a
    # confidence interval, so that noise around a falling loss does not read as flat.
    x = steps[half:].astype(np.float64)
    slope, _, high = theil_sen(x, log_printed(v[half:]))
    width = float(x[-1] - x[0])
    late = 1 - math.exp(min(slope * width, MAX_EXP))  # (a step of 1e20 must not overflow a float)
    converged = overall >= t.plateau_converged_fraction
    level = float(median(v[half:]))
    chance = at_chance(run, level, t, float(v[0])) or uniform_guess(v[half:]) or validation_at_chance(run)
    # a start the loss's spikes lifted (an instability from step 1 on) is judged from its first point:
    # a loss thrown up from 1.106 at step 0 that settles at 1.18 fell from no start (newuser7)
    stalled = no_progress(run, t)
    if stalled is not None and stalled["spiked_start"]:
        fell = min(fell, (stalled["start"] - stalled["level"]) / stalled["start"])
    spiking = _spiking(run, loss, t)
    # (logsweep88 hf_kevin_lora_flat: a LoRA under AdamW at 2e-4 told to raise its rate 3x) an adaptive
    # optimizer at a rate already in its usual range moves each weight by about the rate a step, whatever
    # its gradient's size: a rate far too small is not why the loss stalls, and 3x is no remedy
    usual = usual_adaptive_rate(run) if spiking is None else None
    # at chance, only a fall its confidence interval bears out is learning: a short noisy loss's
    # estimate leans either way (logsweep31: 14 points at ln 11, "falling" 5.7% with a rise inside);
    # so too for a run that has shown no learning yet (under plateau_early_fraction overall): a
    # point estimate of 1% whose interval holds a rise is noise, not a slow descent (logsweep52: a
    # LoRA's loss 2.25 -> 2.28 over 1000 steps, "falling" 1.04% over its last half, upper bound > 0)
    unproven = chance is not None or fell < t.plateau_early_fraction
    falling = ((late >= t.plateau_improvement and (not unproven or high < 0))
               or (high < 0 and late >= t.plateau_improvement / 2))
    # (a loss that ends 15 % or more above where it began did not stall: it climbed, which
    # loss_divergence judges, from its first point on where it never fell; not one at chance)
    # The end's edge median above the start is a rise only where the whole run's trend bears it out
    # (its 99 % interval above 0) or it is past divergence_factor: 5 noisy points ending in one spike
    # read "up 16 %" on a flat loss (logsweep60 u04: a GRPO loss 0.178 -> 0.207, trend -10 % .. +23 %),
    # which then neither detector judged
    whole_trend = theil_sen(steps.astype(np.float64), log_printed(v))
    climbed = min(sm[0], v[0]) if chance is None and v[0] > 0 else sm[0]  # (smoothing can hide v[0])
    rising = (sm[-1] > sm[half] * t.divergence_factor
              or (sm[-1] >= LOST_RISE * climbed and (whole_trend[1] > 0 or sm[-1] >= t.divergence_factor * climbed))
              # (or climbing at every point to its end, out of its noise: loss_divergence's warning)
              or steady_climb(v) is not None)
    # a loss lower at every point than at the one before is learning, however slowly (ls21: SimCLR's
    # epoch averages 7.24 -> 6.89 over 10 epochs, each one down)
    descending = (len(v) >= 4 and bool(np.all(np.diff(v) < 0)) and chance is None
                  and overall >= t.plateau_improvement)  # (0.09% over 46 epochs is no learning)
    # ... and only where loss_divergence does judge it: a climb its own rule (running medians against
    # their lowest, a sustained onset) does not bear out left the run with neither finding, so a loss
    # stuck above chance went unreported at the end of a run whose prefix had raised both (newuser8:
    # a dead MLP's loss 1.106 -> ~1.6 over 300 steps, "rising" here, no divergence there)
    # A loss that went non-finite or ended an order of magnitude over its start blew up (nonfinite,
    # exploding_gradient and the spikes say so): no level to stall at (the scorecard's exponential lr:
    # 2,681x its start, then Inf, read "too little to tell whether it learns"); newuser8's 1.7x, stuck
    # above chance, is a level
    blew_up = not bool(np.all(np.isfinite(loss.values))) or sm[-1] > _BLOWN_UP * climbed
    if rising and not falling and not descending and not blew_up and not any(
            f.severity != "info" for f in divergence(run, t) if f.evidence.metric == loss.name):
        rising = False
    if rising or falling or descending or (converged and chance is None):
        return [stuck] if stuck else []
    # "Never learnt" is a claim about the run from its start: a log that opens at step 1631 and spans
    # ten steps of it (a pasted excerpt, a resumed run) shows a window, not the start.
    from_start = float(steps[0]) <= float(steps[-1] - steps[0])
    # with an epoch twin, both must show the fall: 536 batch losses whose ends fell 5 % by chance
    # said nothing of 7 epoch means 2.60 -> 2.66 (logsweep60 u06); a clear fall of the batches
    # (past _NEVER_PLAUSIBLE) stands, as epoch 0's mean already holds a fall inside that epoch
    twin_flat = twin_fell is not None and twin_fell < t.plateau_early_fraction and fell < _NEVER_PLAUSIBLE
    never = (fell < t.plateau_early_fraction or twin_flat) and from_start
    if chance is None and not never and fell < t.plateau_early_fraction and not from_start:
        if not (pinned := _frozen_tail(v, _FROZEN_EXCERPT_POINTS)) or _warming_up(run, float(steps[0]),
                                                                                  float(steps[-1])):
            return [stuck] if stuck else []  # flat over an excerpt: nothing to say about the run
        # ... unless frozen to its last digits, far above 0: stuck wherever the window starts
        # (logsweep54: a VSE++ loss at 25.60001-25.60002 over 8 prints of epoch 5)
        same = "all equal" if pinned <= 1e-300 else f"within {pinned:.1e} of it"
        return [finding(
            "loss_plateau", "warning",
            f"{loss.name} is frozen at {level:.7g} over the {len(v)} points logged "
            f"({loss.between(steps[0], steps[-1])}, {same}): no step changes it",
            "A minibatch loss moves in its third or fourth digit from one print to the next; one that repeats to "
            "its last digits, far above 0, comes from updates that no longer reach the output (dead or saturated "
            "units, a zero learning rate, a model that outputs one constant whatever its input, a loss clamped at "
            "its margin). The log starts mid-run, so it does not show when it froze.",
            {"metric": loss.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": pinned,
             "threshold": _FROZEN_SPREAD, "overall_improvement": fell, "excerpt": True},
            [])] + ([stuck] if stuck else [])
    # "barely moved" must be borne out: the whole run's trend, within its 99 % interval, rules out a
    # real fall (a fine-tune's 9 points at 0.15 +-12 % allow a 39 % fall; stalled runs allow <= 8 %)
    pinned = 0.0
    frozen_eval: tuple[Series, np.ndarray, np.ndarray, int] | None = None
    whole = float(steps[-1] - steps[0])
    most_fall = 1 - math.exp(min(whole_trend[1] * whole, MAX_EXP)) if never and chance is None else 0.0
    # (epoch means that did not fall are the level itself, whatever the batches' noise allows)
    noisy = most_fall >= _NEVER_PLAUSIBLE and not twin_flat
    # ... but a long noisy run whose last quarter ranks no lower than its first, and whose trend's
    # estimate is no fall, has shown no learning, whatever its interval admits (logsweep60 u05)
    ranked = _last_quarter_lower(steps, v) if noisy else None
    unmoved = (ranked is not None and ranked <= 0.5
               and 1 - math.exp(min(whole_trend[0] * whole, MAX_EXP)) < t.plateau_early_fraction)
    never = never and (not noisy or unmoved)
    # too few points to tell: a whole-run trend whose 99 % interval is all a fall, over fewer than
    # _EARLY_POINTS points, is a run still learning that the log stops early (newuser7: killed after 18
    # steps, 3.6 % down at 0.3 % a step, then trained to 0.10): a note, as a noisy early window is
    early = never and chance is None and not unmoved and whole_trend[2] < 0 and len(v) < _EARLY_POINTS
    never = never and not early
    if chance is not None:
        head, note = classes_words(chance)
        acc = f"accuracy {chance['accuracy']:.2f}" if chance["accuracy"] is not None else ""
        where = "no better than chance" if chance.get("above") else "at chance"
        # (a count read off the loss is an inference, said as one: :func:`classes_words`)
        inside = (", " if chance.get("source") == "params" else "; ").join(x for x in (note, acc) if x)
        summary = (f"{loss.name} is flat at {level:.3g} over the last half of the run, {where} for "
                   f"{head} ({inside}"
                   + (f"; {chance['source']}" if chance.get("validation") else "") + ")")
        explanation = ("The loss stopped where a uniform guess over the classes scores: the model predicts no better "
                       "than chance (a learning rate far too small or far too large, vanishing gradients, or labels "
                       "that do not follow from the inputs).")
    elif never and (frozen_from := _exact_repeat(v)) is not None:
        value = float(v[-1])
        since = (f"at every one of its {len(v)} logs ({loss.between(steps[0], steps[-1])})"
                 if frozen_from == 0 else
                 f"at each of its last {len(v) - frozen_from} of {len(v)} logs "
                 f"({loss.between(steps[frozen_from], steps[-1])})")
        began = "its first log" if frozen_from == 0 else loss.where(steps[frozen_from])
        summary = (f"{loss.name} is exactly {value!r} {since}, identical to all {printed_digits(value)} printed "
                   f"digits: it has not changed at all since {began} (not a slow plateau)")
        explanation = ("A loss computed afresh at each log, on another batch or after more updates, changes in its "
                       "last printed digits however flat its trend; one that repeats to every digit does not depend "
                       "on the inputs or on the weights, or nothing changes the weights: a loss detached from the "
                       "model's output (built from .item(), .detach() or a new tensor), a constant output or a loss "
                       "clamped or saturated at a bound (exactly zero gradients), parameters with requires_grad "
                       "False or not in the optimizer, or optimizer.step() not called. A larger learning rate "
                       "changes none of these.")
        return [finding(
            "loss_plateau", "warning", summary, explanation,
            {"metric": loss.name, "steps": [_num(steps[frozen_from]), _num(steps[-1])], "value": 0.0,
             "threshold": t.plateau_improvement, "overall_improvement": fell, "repeats": int(len(v) - frozen_from),
             "first": float(v[0]), "repeated_value": value, "digits": printed_digits(value), "exact_repeat": True},
            [R.check_loss_graph(f"{loss.name} is exactly {value:.7g} at every log from {loss.where(steps[frozen_from])}"),
             R.check_updates(f"{loss.name} repeats exactly")])] + ([stuck] if stuck else [])
    elif unmoved:
        summary = (f"{loss.name} shows no evidence of learning over {whole:.6g} steps: {_change(fell)} at the end "
                   f"than at the start, its last quarter no lower than its first ({len(v)} noisy points)")
        explanation = ("Over this many steps a model that learns brings its loss down: here the points of the run's "
                       "last quarter rank no lower than those of its first, and the trend's estimate is no fall, "
                       "though the noise leaves its interval wide. The model is not learning (a learning rate far too "
                       "small, frozen or detached parameters, or a data/label problem).")
    elif never and stalled is not None and stalled["spiked_start"] and fell < 0:
        summary = (f"{loss.name} never fell below its first point ({stalled['start']:.4g} at "
                   f"{loss.where(steps[0])}): its last tenth's median {stalled['level']:.4g} is {_change(fell)}, "
                   "the points between thrown up by spikes")
        explanation = ("The loss rose from its first step and never came back below where the untrained model began: "
                       "the model is not learning, and spikes from the start say the steps are too large.")
    elif never:
        summary = f"{loss.name} barely moved: {_change(fell)} at the end than at the start"
        if twin is not None:
            summary += (f" (its epoch means {twin[0].name} {float(twin[2][0]):.4g} -> {float(twin[2][-1]):.4g} "
                        f"over {len(twin[2])} epochs)")
        # when it stalled, said as the series shows it: a loss that fell a little first and then froze
        # did not stall "from the start" (logsweep94 pl_node_stuck85: 85.09 -> 85.03 over its first
        # epochs, then 85.029 for 1,000 epochs)
        stall = _stall_point(v, sm)
        if stall is None:
            when = "The loss stalled from the start"
        else:
            k, before, after = stall
            summary += (f"; it fell {_share(before).removesuffix(' lower')} from its first point {float(v[0]):.6g} "
                        f"to {float(sm[k]):.6g} by {loss.where(steps[k])}, then stalled ({_share(after)} since, "
                        f"over {len(v) - 1 - k:,} more points)")
            when = (f"The loss fell only {_share(before).removesuffix(' lower')}, by {loss.where(steps[k])}, and "
                    "then stalled")
        explanation = (f"{when}: the model is not learning (vanishing gradients, a learning "
                       "rate far too small, or a data/label problem)." if usual is None else
                       f"{when}: the model is not learning, or had little left to learn.")
        frozen_eval = _frozen_evaluation(run, loss)
        if frozen_eval is not None:
            # (logsweep93 sentimentrnn_collapsed: "Test loss=0.90144944190979" at every epoch went unquoted,
            # and the remedy offered was a larger learning rate, which changes no update that never happens)
            fs, fsteps, fv, fi = frozen_eval
            value = float(fv[-1])
            summary += (f"; {fs.name} is exactly {value!r} at "
                        + (f"every one of its {len(fv)} evaluations" if fi == 0 else
                           f"each of its last {len(fv) - fi} of {len(fv)} evaluations")
                        + f" ({fs.between(fsteps[fi], fsteps[-1])}), identical to all {printed_digits(value)} "
                        "printed digits: the model's output did not change at all")
            explanation = (f"{when}, and the evaluation loss repeats to every printed digit: the "
                           "same evaluation data through weights that changed, however little, give a loss that differs "
                           "in its last digits, so no update reached the model's output. A learning rate of 0 (or one so "
                           "small its steps round away), parameters with requires_grad False or not in the optimizer, "
                           "optimizer.step() not called, a loss detached from the model's output, or units dead or "
                           "saturated before the output: a larger learning rate changes none of these.")
    elif early:
        summary = (f"{loss.name} is {_change(fell)} at the end than at the start, falling steadily over its {len(v)} "
                   "points (its trend's 99% interval is a fall): too few steps to tell whether it learns")
        explanation = ("A run this short shows only its first steps: the loss is falling, slowly so far, and the log "
                       "stops before it shows whether it goes on to learn. Check again with more steps.")
    elif noisy:
        summary = (f"{loss.name} is {_change(fell)} at the end than at the start, but over {len(v)} noisy points "
                   f"its trend allows a fall of up to {most_fall:.0%}: too little to tell whether it learns")
        explanation = ("A run too short or too noisy for its trend to be known: whether the loss is flat or falling "
                       "slowly, the points cannot tell. Log more steps (or per-epoch averages) and check again.")
    elif pinned := _frozen_tail(v[half:]):
        same = "all equal" if pinned <= 1e-300 else f"within {pinned:.1e} of it"
        summary = (f"{loss.name} is frozen at {level:.6g} over the last half of the run ({len(v) - half} points "
                   f"{same}, after falling {fell:.0%} before): no step changes it any more")
        explanation = ("A loss that stops changing to its last printed digit, far above 0, while training goes on: the "
                       "updates no longer reach the output (dead or saturated units, a zero learning rate, a model "
                       "that outputs one constant whatever its input: an MSE of 0.25 on 0/1 targets is the mean's). "
                       "A loss that has converged still moves with every batch.")
    else:
        # (a rise is named a rise: the loss stopped improving by climbing back, short of what loss_divergence
        # needs; logsweep84 pl_km_deepracer read "train_loss rose 19.00% ..." under a plateau. The note is
        # loss_plateau's, the loss no longer improving, so its words never deny one: logsweep91 hf_lora_sft_floor)
        summary = (f"{loss.name} improved {late:.2%} over the last half of the run (after falling {fell:.0%} before)"
                   if late >= 0 else
                   f"{loss.name} rose {-late:.2%} over the last half of the run (after falling {fell:.0%} before): "
                   "it stopped improving and crept back up, a late rise short of a divergence")
        explanation = ("The loss has flattened out: convergence, a decayed learning rate, or capacity reached."
                       if late >= 0 else
                       "The loss rose over the last half of the run, by less than loss_divergence needs (or over too "
                       "few points to call it sustained): not a convergence. Noise can do it over a short stretch; "
                       "if it keeps climbing, lower the learning rate or clip the gradients.")
    alarm = never or chance is not None or bool(pinned)
    planned = planned_steps(run, loss)
    # (a counter from 0 ends at N - 1 of N: "Epoch 49/50" is the last of 50, no early part)
    early_part = planned is not None and float(steps[-1]) < planned - 1
    if early_part and not alarm:
        # a note over the first stretch of a run the log says goes on (logsweep98 mlx557: 110 of 3000
        # iterations): flat so far, not a run that stopped improving
        summary += (f"; flat so far: the log stops at {loss.where(float(steps[-1]))} of the {planned:,.0f} "
                    f"{'epochs' if run.planned_unit == 'epoch' else 'steps'} "
                    "the run plans, an early part of it")
        explanation += (" The log is an early part of a longer run (it states the run's planned length): the loss may "
                        "still fall later; check the whole run.")
    # (the rate must still be climbing over the stretch judged, the last half: a warm-up that ended
    # at step 700 of 3000, the rate constant since, excuses nothing there: logsweep38's llm.c at ln 50304)
    # (over that half a linear ramp rises by less than 2x: still climbing by a quarter is a warm-up)
    warm = _warming_up(run, float(steps[half]), float(steps[-1]), factor=1.25) if alarm else None
    if warm is not None:   # (quoted over the whole run where the rate rose all along)
        warm = _warming_up(run, float(steps[0]), float(steps[-1])) or warm
    if warm is not None:
        # a learning rate still climbing through its warm-up: the run has not trained at its rate yet
        alarm = False
        summary += f"; but the learning rate was still rising ({warm[0]:.3g} -> {warm[1]:.3g}, a warm-up)"
        explanation = ("The loss has hardly moved, but the learning rate was still climbing over the whole stretch: "
                       "a run still in its warm-up has not trained at its full rate yet, so a slow start is expected; "
                       "judge it past the warm-up.")
    usual = usual if alarm else None
    if usual is not None:
        explanation += (f" The learning rate is not the likely cause: {usual['optimizer']} at {usual['learning_rate']:.3g} "
                        "(the highest logged rate) is already in an adaptive optimizer's usual range ("
                        + f"{ADAPTIVE_USUAL_LR:.0e}".replace("e-0", "e-") + " to 1e-3), where each weight moves by about the rate on every step "
                        "however small its gradient, so no higher rate is advised. A model fine-tuned from pre-trained "
                        "weights starts at what it already knows of the data: a loss flat from its first log may be "
                        "the data's floor (compare the first logged loss with the base model's loss on the same data "
                        "before training, and watch an evaluation loss), or the data may not be what the model is "
                        "trained on (labels that do not match the inputs, the same batch repeated).")
    out = [finding(
        "loss_plateau", "warning" if alarm else "info", summary, explanation,
        {"metric": loss.name, "steps": [_num(steps[half]), _num(steps[-1])], "value": late,
         "threshold": t.plateau_improvement, "overall_improvement": fell, "at_chance": chance,
         "warmup": list(warm) if warm is not None else None,
         "largest_fall_allowed": most_fall if noisy else None,
         "epoch_metric": twin[0].name if twin is not None else None,
         "epoch_improvement": twin_fell,
         "last_quarter_lower": ranked,
         **({"planned_steps": planned} if early_part else {}),
         **({"withheld_remedies": ["raise_learning_rate"], "learning_rate": usual["learning_rate"],
             "optimizer": usual["optimizer"]} if usual is not None else {}),
         **({"frozen_series": frozen_eval[0].name, "repeated_value": float(frozen_eval[2][-1]),
             "repeats": int(len(frozen_eval[2]) - frozen_eval[3]),
             "digits": printed_digits(float(frozen_eval[2][-1])), "exact_repeat": True}
            if frozen_eval is not None else {})},
        [R.check_updates(f"{frozen_eval[0].name} repeats exactly"),
         R.check_loss_graph(f"{frozen_eval[0].name} is exactly {float(frozen_eval[2][-1]):.7g} at every evaluation "
                            f"from {frozen_eval[0].where(frozen_eval[1][frozen_eval[3]])}")]
        if frozen_eval is not None and alarm else
        [(lower_lr(run, at_step=spiking, why="the loss spikes and never falls below "
                   + ("chance" if chance is not None else "its start")) if spiking is not None
          else raise_lr(run, why="the loss is not moving") if usual is None else None) if alarm else None])]
    return out + ([stuck] if stuck else [])


def _spiking(run: RunLog, loss: Series, t: LogThresholds) -> float | None:
    """The step of the first spike of the training loss or the total gradient norm (as loss_spike and
    gradient_spike find them), or None: a loss that never learns while it spikes has a learning rate
    too large, not too small (newuser7: SGD at lr=5, loss 1.106 -> 1.22 through spikes to 8.1)."""
    first: list[float] = []
    for s in (loss, run.first("grad_norm")):
        if s is not None:
            steps, _, _, _, idx = spike_points(s, t)
            if len(idx):
                first.append(float(steps[idx[0]]))
    return min(first) if first else None


def _warming_up(run: RunLog, first: float, last: float, factor: float = 2.0) -> tuple[float, float] | None:
    """(first, last) learning rate where the log's rate rose over ``first``..``last`` all along
    (never falling, and by ``factor`` at least): a linear or exponential warm-up still under way."""
    lr = run.first("learning_rate")
    if lr is None:
        return None
    steps, v = finite(lr)
    keep = (steps >= first) & (steps <= last) & (v > 0)
    v = v[keep]
    if len(v) < 3 or not v[-1] >= factor * v[0] or bool(np.any(np.diff(v) < 0)):
        return None
    return float(v[0]), float(v[-1])
