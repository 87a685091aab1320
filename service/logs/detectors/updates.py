"""Steps that change nothing or too much: zero gradients or a zero learning rate (``zero_gradient``),
update-to-weight ratios (``large_updates``, ``small_updates``) and an RL policy that never moves.
"""

from __future__ import annotations

import math
import re

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.chance import accuracies, as_fraction
from gradhealth.logs.detectors.common import finding, judged
from gradhealth.logs.detectors.layers import converged_loss, converged_note, jumped_to_zero
from gradhealth.logs.detectors.rl import on_rollouts
from gradhealth.logs.remedies import lower_lr, raise_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import FULL_DIGITS, finite, median, printed_digits, resolution, theil_sen
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds


@detects("zero_gradient")
def zero_gradient(run: RunLog, t: LogThresholds) -> list[Finding]:
    """Steps on which the total gradient norm is exactly zero: no update happened on them."""
    norm = run.first("grad_norm")
    if norm is not None:
        # an exact value needs no trend: three points of exactly 0 say it as well as thirty
        steps, v = finite(norm)
        if len(v) >= _EXACT_MIN_POINTS and bool(np.all(v == 0.0)):
            return _never_updated(run, norm, steps, v, t)
    pinned = _loss_pinned_at_zero(run, t)
    if pinned:
        return pinned
    found = judged(run, "grad_norm", t)
    if found is None:
        return []
    s, steps, v = found
    zero = v == 0.0
    fraction = float(np.mean(zero))
    if fraction < t.zero_gradient_fraction:
        return []
    idx = np.nonzero(zero)[0]
    evidence = {"metric": s.name, "steps": [_num(steps[idx[0]]), _num(steps[idx[-1]])], "value": fraction,
                "threshold": t.zero_gradient_fraction, "zero_steps": [_num(x) for x in steps[idx][:50]]}
    spread = _no_reward_spread(run, steps[idx])
    if spread is not None:
        # GRPO-style advantages are rewards less their group's mean: a group whose completions all
        # scored the same teaches nothing, and its step's gradient is exactly 0 by construction.
        name, matched, logged = spread
        most = fraction >= t.zero_gradient_rl_warning
        # (newuser7 4: half of a remasking run's 164 zero steps log no reward_std at all, each the
        # second update on a batch whose spread was 0: the claim names both, not "each a step where")
        carried = matched - logged
        where = (f"each a step where {name} was 0" if not carried and matched == len(idx) else
                 f"{logged} of them at a step where {name} was 0"
                 + (f", {carried} with no {name} logged after a step where it was 0 (the same completions "
                    "reused for another update)" if carried else "")
                 + (f", {len(idx) - matched} at a step where it was not" if matched < len(idx) else ""))
        return [finding(
            "zero_gradient", "warning" if most else "info",
            f"{s.name} is exactly 0 on {len(idx)} of {len(v)} logged points ({fraction:.0%}), {where}: "
            "every completion in the group scored the same",
            "Group-relative advantages (GRPO, RLOO) are each reward less its group's mean, so a group whose "
            "completions all got the same reward gives no gradient at all. "
            + (f"On {fraction:.0%} of the steps here nothing is learned: the prompts are too hard or too easy for "
               "the model, or the reward cannot tell completions apart. " if most else "")
            + "More completions per prompt, a reward with partial credit, or prompts of mixed difficulty give "
              "the groups a spread.",
            {**evidence, "explained_by": name, "explained_steps": matched, "explained_logged_steps": logged,
             "explained_carried_steps": carried}, [])]
    converged = converged_loss(run, since=float(steps[idx[0]]))
    if converged is not None:
        # (newuser5 P1: a CNN whose cross-entropy reached exactly 0 in float32 got this warning on
        # 280 of its 300 steps) a loss at its floor has no gradient left to give: convergence
        return [converged_note(
            "zero_gradient", f"{s.name} is exactly 0 on {len(idx)} of {len(v)} logged points ({fraction:.0%}) from "
            f"{s.where(steps[idx[0]])}, where the loss had fallen to", converged,
            "A loss at its floor (every training example fitted, the float32 cross-entropy rounded to 0) has "
            "no gradient left: nothing is wrong with the gradients. If the run is meant to go on learning, the "
            "training set may be too easy or too small (validate on held-out data).",
            evidence)]
    jump = _loss_jump_at(run, float(steps[idx[0]]))
    if jump is not None:
        evidence = {**evidence, "loss_before": jump}
    return [finding(
        "zero_gradient", "warning",
        f"{s.name} is exactly 0 on {len(idx)} of {len(v)} logged points ({fraction:.0%}), first at "
        f"{s.where(steps[idx[0]])}"
        + (f", where the loss fell from {jump:.4g} to exactly 0 in one logged step (far above its floor: "
           "not a run that converged)" if jump is not None else ""),
        "A step with an exactly zero gradient makes no update: the loss did not depend on the parameters for "
        "that batch (e.g. RL batches without reward variance, fully masked batches, or a detached graph).",
        evidence,
        [])]


def _loss_jump_at(run: RunLog, step: float) -> float | None:
    """The training loss's value just before ``step`` when it is exactly 0 at ``step`` and got there
    in one logged step from far above its floor (:func:`jumped_to_zero`); None otherwise."""
    loss = run.first("loss")
    if loss is None:
        return None
    ls, lv = finite(loss)
    at = int(np.searchsorted(ls, step))
    if at >= len(ls) or ls[at] != step or np.any(lv < 0) or not jumped_to_zero(lv, at):
        return None
    return float(lv[at - 1])


#: Points of exactly 0 that make a series "exactly 0 throughout" on a log too short for trends.
_EXACT_MIN_POINTS = 3


def _rates_within(run: RunLog, first: float, last: float) -> np.ndarray:
    """The learning rates the log recorded from ``first`` to ``last`` (empty without any)."""
    lr = run.first("learning_rate")
    if lr is None:
        return np.array([])
    ls, lv = finite(lr)
    return lv[(ls >= first) & (ls <= last)]


#: Logged learning rates, all exactly 0, that make a run with no step: 5 or more
_ZERO_RATE_POINTS = 5
#: Where a logged rate of 0 (or below) comes from, for both findings that read one
_ZERO_RATE_CAUSES = ("Likely causes: a schedule that decayed to 0 or has not started, a rate read from the wrong "
                     "setting, or an optimizer built before the rate was set.")


def _rate_zero_throughout(run: RunLog) -> Finding | None:
    """A learning rate exactly 0 at every one of 5 or more logged points while a loss is logged
    (PaddleSpeech, ls20: "lr: 0.00000000" on every line): the optimizer steps by nothing, whatever
    the loss does. A rate printed to 8 decimals is at most 5e-9 there: no update a run could use
    either. A warm-up from 0 logs a rate above 0 after its first points and is not this."""
    lr, loss = run.first("learning_rate"), run.first("loss") or run.first("val_loss")
    if lr is None or loss is None:
        return None
    steps, v = finite(lr)
    if len(v) < _ZERO_RATE_POINTS or not _zero_rate(run, -math.inf, math.inf):
        return None
    return finding(
        "small_updates", "warning",
        f"{lr.name} is 0 at all {len(v)} logged points ({lr.between(steps[0], steps[-1])}): the optimizer "
        "changes nothing",
        "With a learning rate of 0 (or one below the printed precision) no step changes the weights, so "
        "whatever the loss shows is the data's noise. " + _ZERO_RATE_CAUSES,
        {"metric": lr.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
         "points": int(len(v))},
        [R.positive_learning_rate(0.0)])


#: A stretch of logged learning rates at or below 0 that runs to the end of the log makes
#: ``negative_learning_rate`` from this share of the logged points on (5 of them at least): a
#: schedule that decays to 0 reaches it at its last step only
_NONPOSITIVE_RATE_SHARE = 0.25
#: A rate falling to within this many rounding steps of its printed digits before printing 0s may
#: only have decayed under them (a rate printed to 4 decimals shows 4e-5 as 0.0000)
_RATE_PRINT_STEPS = 10


@detects("negative_learning_rate")
def negative_learning_rate(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A logged learning rate at or below 0 at every one of 5 or more points, or from some point to
    the end over a quarter of the log (5 points at least): a negative rate climbs the gradient, a rate
    of 0 changes nothing (logsweep69 u07: learning_rate 0.0 at all 186 logs of a trainer_state.json,
    a scheduler bug). The same code as a spec's optimizer with such a rate, and an error as there.
    Where the rate was positive before, its 0s must not continue a decay into the last printed
    digits (0.0002, 0.0001, then 0.0000 at 4 decimals may be 4e-5); where another parameter group's
    rate is positive over the stretch, the group at 0 is frozen by design."""
    del t
    lr = run.first("learning_rate")
    if lr is None:
        return []
    steps, v = finite(lr)
    if len(v) < _ZERO_RATE_POINTS:
        return []
    positive = np.nonzero(v > 0)[0]
    first = int(positive[-1]) + 1 if len(positive) else 0
    points = len(v) - first
    if points < max(_ZERO_RATE_POINTS, _NONPOSITIVE_RATE_SHARE * len(v)):
        return []
    tail = v[first:]
    negative = bool(np.any(tail < 0))
    res = resolution(v)
    if (first >= 2 and not negative and res > 0 and v[first - 1] <= _RATE_PRINT_STEPS * res
            and v[first - 1] < v[first - 2]):
        return []  # 0s that continue a decay the printed digits cut off (0.0002, 0.0001, 0.0000)
    for other in run.by_role("learning_rate"):
        # another parameter group training over that stretch: this one is frozen by design (a
        # backbone at lr 0 beside its head), not a run without updates
        os_, ov = finite(other)
        if other is not lr and bool(np.any(ov[os_ >= steps[first]] > 0)):
            return []
    rate = float(np.min(tail)) if negative else 0.0
    where = (f"at all {points} logged points ({lr.between(steps[0], steps[-1])})" if not first else
             f"at all {points} logged points from {lr.where(steps[first])} to the end "
             f"({lr.between(steps[first], steps[-1])}, {points / len(v):.0%} of the log), after "
             f"{float(v[first - 1]):.4g} at the point before")
    what = (f"negative (down to {rate:.4g})" if negative else "0")
    return [finding(
        "negative_learning_rate", "error",
        f"{lr.name} is {what} {where}: "
        + ("each step climbs the gradient" if negative else "the optimizer changes nothing"),
        "A learning rate at or below 0 does not descend: with 0 no step changes the weights, so whatever the "
        "loss shows is the data's noise; a negative rate steps up the gradient and the loss rises. "
        + _ZERO_RATE_CAUSES,
        {"metric": lr.name, "steps": [_num(steps[first]), _num(steps[-1])], "value": rate, "threshold": 0.0,
         "points": int(points), "logged_points": int(len(v)), "throughout": not first,
         "before": float(v[first - 1]) if first else None},
        [R.positive_learning_rate(rate)])]


def _zero_rate(run: RunLog, first: float, last: float) -> bool:
    """Whether the log's learning rate is exactly 0 at every point it logged from ``first`` to ``last``."""
    within = _rates_within(run, first, last)
    return len(within) > 0 and bool(np.all(within == 0))


def _never_updated(run: RunLog, s: Series, steps: np.ndarray, v: np.ndarray,
                   t: LogThresholds) -> list[Finding]:
    """A total gradient norm exactly 0 at every logged step, with no per-layer norms to say more
    (where those are logged, dead_layer speaks for each layer): no step changed the model. An
    error from ``min_points`` points on, a warning on fewer (a pasted excerpt)."""
    if run.by_role("layer_grad_norm"):
        return []
    loss = run.first("loss")
    zero_loss = loss is not None and len(finite(loss)[1]) > 0 and bool(np.all(finite(loss)[1] == 0))
    why = (f"; {loss.name} is exactly 0 at every step as well: the loss measures nothing (every label masked "
           "to -100, a completion-only collator that finds no response template, empty batches)"
           if zero_loss and loss is not None else "")
    if _zero_rate(run, float(steps[0]), float(steps[-1])):
        why += "; the learning rate is exactly 0 at every one of them too"
    elif not zero_loss and (moved := _loss_moved(run, float(steps[0]), float(steps[-1]), t)) is not None:
        # (logsweep92 encdec_gradnorm_zero: "Grad Norm: 0.0000" on every line while the loss fell
        # 10.26 -> 8.1, an error saying the run trains nothing) a loss that trends while every
        # logged norm is 0 was updated: the norm is measured where the gradients are already cleared
        assert loss is not None
        first, last = moved
        return [finding(
            "zero_gradient", "warning",
            f"{s.name} is exactly 0 at every one of its {len(v)} logged points ({s.between(steps[0], steps[-1])}), "
            f"while {loss.name} went from {first:.4g} to {last:.4g} with a clear trend over them: the logged "
            "norm is not the gradient the updates used",
            "A loss that trends up or down is being changed by the updates, so the gradients were not 0; a norm "
            "logged as exactly 0 at every step is measured where they are already cleared: after "
            "optimizer.zero_grad() (or set_to_none), after optimizer.step() in a loop that clears them there, "
            "or on tensors other than the parameters' .grad (an integer 0 before the first backward). Measure "
            "the norm after backward() and before the step clears it (the value clip_grad_norm_ returns).",
            {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 1.0, "threshold": 1.0,
             "zero_steps": [_num(x) for x in steps[:50]], "loss_zero": False, "loss_metric": loss.name,
             "loss_from": first, "loss_to": last},
            [])]
    return [finding(
        "zero_gradient", "error" if len(v) >= t.min_points else "warning",
        f"{s.name} is exactly 0 at every one of its {len(v)} logged points ({s.between(steps[0], steps[-1])})"
        + why,
        "A total gradient norm of exactly 0 means no step changed the model: the loss does not depend on the "
        "trained parameters (labels all masked, parameters frozen or not handed to the optimizer, a detached "
        "graph), so the run trains nothing whatever its schedule.",
        {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 1.0, "threshold": 1.0,
         "zero_steps": [_num(x) for x in steps[:50]], "loss_zero": zero_loss},
        [])]


#: A training loss whose trend moves this share of its level over the steps a gradient norm is logged
#: as exactly 0 was updated on them: the norm is measured where the gradients are already cleared
_LOSS_MOVED = 0.1


def _loss_moved(run: RunLog, first: float, last: float, t: LogThresholds) -> tuple[float, float] | None:
    """The training loss's first and last logged values from ``first`` to ``last`` where, over those
    steps, it moves clearly: the Theil-Sen slope's 99 % interval excludes 0 and the trend's change
    is at least :data:`_LOSS_MOVED` of its level (a loss that falls, or climbs, that far is being
    updated); None otherwise (flat, scatter without a trend, or a drift a fixed model's loss shows
    as the batches change)."""
    loss = run.first("loss")
    if loss is None:
        return None
    ls, lv = finite(loss)
    keep = (ls >= first) & (ls <= last)
    x, y = ls[keep].astype(np.float64), lv[keep].astype(np.float64)
    if len(y) < t.min_points or float(np.ptp(x)) == 0:
        return None
    slope, low, high = theil_sen(x, y)
    if low <= 0 <= high:
        return None
    mid = float(np.median(x))
    start = float(np.median(y)) + slope * (float(x[0]) - mid)
    end = float(np.median(y)) + slope * (float(x[-1]) - mid)
    level = max(abs(start), abs(end))
    if level == 0 or abs(end - start) < _LOSS_MOVED * level:
        return None
    return float(y[0]), float(y[-1])


#: A training loss that reaches exactly 0 from at least this far above it in one logged interval
#: was not learnt down to 0: it stopped measuring anything.
_ZERO_LOSS_FROM = 0.01
#: Points of exactly 0 after such a jump, beside a NaN gradient norm, that make a pinned loss
#: (half the log at least)
_ZERO_AFTER_JUMP = 2
#: A training accuracy at least this at every point of a zero loss's span: a converged run
_PERFECT_ACCURACY = 0.999


def _accuracy_perfect(run: RunLog, first: float, last: float) -> bool:
    """Whether the run's training accuracy (as a fraction) is at its ceiling at every point it
    logged from ``first`` to ``last`` (the last one at or before ``first`` where none is logged
    within): a loss of exactly 0 there is a converged run's (every example right, the float
    cross-entropy rounded to 0), not a broken loss."""
    train, _ = accuracies(run)
    if train is None:
        return False
    steps, v = finite(train)
    share = as_fraction(v)
    within = share[(steps >= first) & (steps <= last)]
    if not len(within):
        within = share[steps <= first][-1:]
    return len(within) > 0 and bool(np.all(within >= _PERFECT_ACCURACY))


def _loss_pinned_at_zero(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A supervised training loss exactly 0 at every logged point from some point on (at least
    ``_EXACT_MIN_POINTS`` and half of them), having got there in one step from ``_ZERO_LOSS_FROM``
    or more, or being 0 from the start: a loss of exactly 0 gives no gradient, so nothing trains
    (every label masked, no targets in the batch, a loss not connected to the output). A loss
    that glides down to 0 (a memorised set) or sits at 0 while the training accuracy is at 1 (a
    converged run) is left alone, as are RL runs (a GRPO loss is 0 at its start by construction)
    and runs whose gradient norm is logged and not 0, unless it is above 0 at every point of the
    zero loss and the loss did not glide there: that is a warning (the loss logged is not the one
    the gradient came from). Beside a NaN gradient norm it is a warning
    (from two points after a jump): the Trainer's NaN filter logs a NaN step's loss as 0.0."""
    loss = run.first("loss")
    if loss is None or on_rollouts(run) or any("reward" in x.name.lower() for x in run.series):
        return []
    steps, v = finite(loss)
    nonzero = np.nonzero(v != 0)[0]
    start = int(nonzero[-1]) + 1 if len(nonzero) else 0
    zeros = len(v) - start
    if not zeros or zeros < len(v) / 2 or (start > 0 and abs(v[start - 1]) < _ZERO_LOSS_FROM):
        return []
    norm = run.first("grad_norm")
    nan_norm = False
    norm_before: float | None = None
    gradient: np.ndarray | None = None  # a finite, non-zero norm at every point of the zero loss's span
    if norm is not None:
        # the norm over the zero loss's span where it is logged there, else over the whole log
        at = (norm.steps >= steps[start]) & (norm.steps <= steps[-1])
        span = norm.values[at] if np.any(at) else norm.values
        if bool(np.any(np.isfinite(span) & (span != 0))):
            # (logsweep88 P2: HF logs of loss 0.0 beside grad_norm 0.38-0.62) a gradient beside a loss
            # of exactly 0 contradicts it: a loss at 0, its minimum, has none. Unless the loss glided
            # there (a converged loss printed to its last digit, 0.0003 then 0.0: its gradient is a
            # real one, however small), the printed 0 is not the loss backward ran on
            if not np.any(at) or not bool(np.all(np.isfinite(span) & (span != 0))):
                return []  # a norm that is 0 or NaN at some of the points, or not logged there: its rules
            if start and not jumped_to_zero(v, start):
                return []
            gradient = span
        # a NaN one: the nonfinite finding names the NaN; the printed 0 is reported beside it, a
        # warning, since the Trainer's NaN filter (logging_nan_inf_filter) logs a step whose loss
        # was NaN as 0.0 (logsweep65 u05, u06: LLaMA-Factory runs with 'loss': 0.0, 'grad_norm': nan)
        nan_norm = not bool(np.all(np.isfinite(span)))
        if gradient is None and not nan_norm and (bool(np.any(finite(norm)[1] != 0))
                                                  or not np.all(np.isfinite(norm.values))):
            # a norm that moved (or went NaN) elsewhere only: the norm's own rules judge it, unless
            # it fell to exactly 0 at the very step the loss jumped to 0 from far above its floor
            # (logsweep69 u08: loss 0.851 and grad_norm 16.2, then both 0.0 for 200 logs): one
            # broken step, not a run that converged
            norm_before = _norm_before(norm, float(steps[start])) if start else None
            if norm_before is None or not jumped_to_zero(v, start):
                return []
    # three points of 0, or two after a jump from far above beside a NaN norm that says why
    # (logsweep65 u06: 344,093 then 0.0 twice, grad_norm nan at each); two alone can be a glitch. From
    # the first log, each point beside a non-zero gradient is the contradiction whole (logsweep88
    # hf_taubench_zero: one log, loss 0.0 and grad_norm 0.5695)
    fewest = (_ZERO_AFTER_JUMP if nan_norm and start > 0 else
              1 if gradient is not None and start == 0 else _EXACT_MIN_POINTS)
    if zeros < fewest:
        return []
    if _accuracy_perfect(run, float(steps[start]), float(steps[-1])):
        return []  # a converged run: every training example right, its loss at the float floor
    came = f", down from {float(v[start - 1]):.4g} at the point before" if start else ""
    if nan_norm and norm is not None:
        return [finding(
            "zero_gradient", "warning",
            f"{loss.name} is exactly 0 at all {zeros} logged points from {loss.where(steps[start])} "
            f"({loss.between(steps[start], steps[-1])}){came}, while {norm.name} is NaN there: the printed 0 is "
            "no loss",
            "A training loss of exactly 0 beside a NaN gradient norm is not a fitted model: the HF Trainer's "
            "NaN filter (logging_nan_inf_filter) logs a step whose loss was NaN as 0.0, and some losses return 0 "
            "on an overflow (fp16) or when every label is masked. No step of this stretch trained the model: "
            "fix the NaN (a lower learning rate, bf16 or fp32, gradient clipping) and check that the labels "
            "are not all masked (-100).",
            {"metric": loss.name, "steps": [_num(steps[start]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
             "zero_points": zeros, "before": float(v[start - 1]) if start else None, "started": _num(steps[start]),
             "grad_norm_nonfinite": True},
            [])]
    moving = _moving_while_zero(run, loss, steps, v, start)
    if moving is not None:
        name, first, last = moving
        return [finding(
            "zero_gradient", "info",
            f"{loss.name} is printed as exactly 0 at all {zeros} logged points ({loss.between(steps[start], steps[-1])})"
            f"{came}, while {name} went from {first:.4g} to {last:.4g} there: the model kept changing, so the "
            "printed loss is not the one being minimised",
            "A loss of exactly 0 gives no gradient, yet another figure of the same run kept moving over those "
            "steps, so something was minimised: the printed loss is a placeholder or another quantity (an "
            "optimizer that reports its own objective, a wrapper that logs 0). The run is judged by the series "
            "that moved.",
            {"metric": loss.name, "steps": [_num(steps[start]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
             "zero_points": zeros, "before": float(v[start - 1]) if start else None, "moving": name},
            [])]
    if gradient is not None and norm is not None:
        return [_zero_loss_with_gradient(loss, norm, steps, v, start, gradient)]
    why = "; the learning rate is exactly 0 there too" if _zero_rate(run, float(steps[start]),
                                                                   float(steps[-1])) else ""
    if norm_before is not None and norm is not None:
        came += f", and {norm.name} from {norm_before:.4g} to exactly 0 at the same step"
    return [finding(
        "zero_gradient", "error" if zeros >= t.min_points else "warning",
        f"{loss.name} is exactly 0 at all {zeros} logged points from {loss.where(steps[start])} "
        f"({loss.between(steps[start], steps[-1])}){came}: "
        f"a loss of 0 gives no gradient{why}",
        "A training loss of exactly 0 is no learning signal: its gradient is 0, so no step changes the model. "
        "A real loss gets there gradually, if ever; one that is 0 from the start, or drops to 0 at once, "
        "measures nothing: every label masked (-100, a completion-only collator that finds no response "
        "template), batches without targets, or a loss not connected to the model's output.",
        {"metric": loss.name, "steps": [_num(steps[start]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
         "zero_points": zeros, "before": float(v[start - 1]) if start else None, "started": _num(steps[start]),
         **({"grad_norm_before": norm_before} if norm_before is not None else {})},
        [])]


def _zero_loss_with_gradient(loss: Series, norm: Series, steps: np.ndarray, v: np.ndarray, start: int,
                             gradient: np.ndarray) -> Finding:
    """The warning for a training loss of exactly 0 from ``steps[start]`` on (from its first log, or
    after a jump from far above its floor) while the gradient norm is finite and not 0 at every
    point there (``gradient``): a loss at 0 is at its minimum and has no gradient, so the gradient
    the optimizer applied came from something else than the loss logged."""
    zeros = len(v) - start
    lo, hi = float(np.min(gradient)), float(np.max(gradient))
    norms = f"{lo:.3g}" if f"{lo:.3g}" == f"{hi:.3g}" else f"{lo:.3g}-{hi:.3g} (median {float(median(gradient)):.3g})"
    if start:
        where = (f"at all {zeros} logged points from {loss.where(steps[start])} "
                 f"({loss.between(steps[start], steps[-1])}), down from {float(v[start - 1]):.4g} at the point "
                 "before in one logged step")
    elif zeros > 1:
        where = f"at all {zeros} logged points from its first ({loss.between(steps[start], steps[-1])})"
    else:
        where = f"at its one logged point ({loss.where(steps[start])})"
    return finding(
        "zero_gradient", "warning",
        f"{loss.name} is exactly 0 {where}, while {norm.name} is {norms} there, not 0: a loss of exactly "
        "0 has no gradient, so the logged loss is not the one the updates came from",
        "A loss at exactly 0 is at its minimum, where its gradient is 0; a gradient norm above 0 beside it "
        "says the loss that was logged is not the loss backward ran on, or that it is computed over nothing. "
        "A real loss reaches 0 gradually, if ever. Usual causes: every label masked (-100: a completion-only "
        "collator that finds no response template, a prompt longer than the maximum length so that no answer "
        "token is left), a loss multiplied by 0 or replaced by a constant before it is logged, or a custom "
        "compute_loss or gradient accumulation that logs a value other than the one it returns. Count the "
        "label tokens that are not -100 in a batch, and check that the loss the step returns is the one logged "
        "(an evaluation loss tells whether the model is learning anything).",
        {"metric": loss.name, "steps": [_num(steps[start]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
         "zero_points": zeros, "before": float(v[start - 1]) if start else None, "started": _num(steps[start]),
         "grad_norm": norm.name, "grad_norm_min": lo, "grad_norm_max": hi,
         "grad_norm_median": float(median(gradient)),
         "grad_norm_values": [float(x) for x in gradient[:20]]},
        [R.check_loss_graph(f"{loss.name} is exactly 0 while {norm.name} is {norms}: the loss logged is not the one "
                            "the gradient came from")])


def _norm_before(norm: Series, first: float) -> float | None:
    """The gradient norm's last value before step ``first`` when it is finite and above 0, and the
    norm is exactly 0 at every point it logged from ``first`` on: a norm that dropped to 0 at once
    there. None otherwise."""
    ns, nv = norm.steps, norm.values
    after = nv[ns >= first]
    before = nv[ns < first]
    if not len(after) or not len(before) or not bool(np.all(after == 0)):
        return None
    last = float(before[-1])
    return last if math.isfinite(last) and last > 0 else None


#: A series that changes by this factor over a printed-zero loss's span moved (:func:`_moving_while_zero`)
_MOVED = 1.5


def _moving_while_zero(run: RunLog, loss: Series, steps: np.ndarray, v: np.ndarray,
                       start: int) -> tuple[str, float, float] | None:
    """(a series, its first and last value) of the run that kept moving while ``loss`` was printed
    as 0 from ``steps[start]`` on: a validation loss, or a metric equal to the loss at its last
    nonzero point (Keras' ``mean_squared_error`` beside an optimizer that prints ``loss:
    0.0000e+00``: both 0.4609 at epoch 1, then the metric falls to 7e-8; logsweep58). Such a run
    was minimising something, so its zero is no missing gradient. None when nothing moved."""
    lo, hi = float(steps[start]), float(steps[-1])
    before = float(v[start - 1]) if start else None
    for s in run.series:
        if s is loss:
            continue
        ss, sv = finite(s)
        if s.role != "val_loss":
            if before is None or before == 0 or len(ss) == 0:
                continue
            at = int(np.searchsorted(ss, float(steps[start - 1]), side="right")) - 1
            if at < 0 or ss[at] != steps[start - 1] or abs(float(sv[at]) - before) > 0.01 * abs(before):
                continue  # not the loss under another name at its last nonzero point
        span = sv[(ss >= lo) & (ss <= hi)]
        if len(span) < _EXACT_MIN_POINTS or np.any(span <= 0):
            continue
        if float(np.max(span)) >= _MOVED * float(np.min(span)):
            return s.name, float(span[0]), float(span[-1])
    return None


_REWARD_STD = re.compile(r"^(?:train[/_])?(?:reward_std|rewards?/std|reward/std)$", re.I)


def _no_reward_spread(run: RunLog, at: np.ndarray) -> tuple[str, int, int] | None:
    """The run's within-group reward spread series when it was exactly 0 for (nearly) every one of
    the steps ``at``: (its name, how many of them, how many of those log the spread at that very
    step). Each step is matched with the last spread logged at or before it: a trainer that reuses
    one batch of completions for several updates (``num_iterations``) logs the rewards only on the
    step that generated them. None when the run logs no spread or it does not match."""
    for r in run.series:
        if not _REWARD_STD.match(r.name):
            continue
        rs, rv = finite(r)
        i = np.searchsorted(rs, at, side="right") - 1
        found = i >= 0
        known = rv[i[found]]
        matched = int(np.sum(known == 0))
        if matched >= 0.9 * len(at):
            logged = int(np.sum((known == 0) & (rs[i[found]] == at[found])))
            return r.name, matched, logged
    return None


# A bias (also a LayerNorm's shift, torch's in_proj_bias, Keras' ``dense/bias:0``) starts at
# zero: its ratio is +inf on the first step and stays huge while its norm is still tiny, which
# says nothing about the learning rate. The weights next to it carry the signal.
_BIAS = re.compile(r"(?:^|[/._])bias(?::\d+)?$", re.IGNORECASE)


def _is_bias(s: Series) -> bool:
    return bool(_BIAS.search(s.layer or s.name))


def _update_medians(run: RunLog, t: LogThresholds) -> list[tuple[float, Series, np.ndarray]]:
    """(median, series, its steps) of each weight's ``update_ratio`` series with enough finite
    positive points (a bias is left out: it starts at zero, and its ratio says nothing)."""
    out: list[tuple[float, Series, np.ndarray]] = []
    for s in run.by_role("update_ratio"):
        if _is_bias(s):
            continue
        steps, v = finite(s)
        steps, v = steps[v > 0], v[v > 0]
        if len(v) >= t.min_points:
            out.append((float(median(v)), s, steps))
    return out


@detects("large_updates")
def large_updates(run: RunLog, t: LogThresholds) -> list[Finding]:
    """Layers (or the total) whose typical update-to-weight ratio is far above ~1e-3 per step.

    Typical is the median over the logged steps: spikes have their own rules and a median ignores
    them. Only finite positive ratios count (a zero weight gives +inf/NaN, a frozen step 0)."""
    over = [m for m in _update_medians(run, t) if m[0] > t.large_update_warning]
    if not over:
        return []
    over.sort(key=lambda o: -o[0])
    worst, s0, steps0 = over[0]
    severity = "error" if worst > t.large_update_error else "warning"
    names = [s.layer or s.name for _, s, _ in over]
    first = min(float(st[0]) for _, _, st in over)
    last = max(float(st[-1]) for _, _, st in over)
    shown = ", ".join(f"{n} ({m:.3g})" for n, (m, _, _) in zip(names[:5], over[:5], strict=False))
    # The update is lr x (the gradient, or Adam's normalised moment): the ratio scales with the
    # learning rate for SGD and Adam alike, so this factor takes the worst median to the target.
    # A user threshold below the target falls back to the default factor (it must lower).
    factor = R.UPDATE_RATIO_TARGET / worst
    why = (f"the worst median update-to-weight ratio {worst:.3g} x {factor:.3g} = "
           f"{R.UPDATE_RATIO_TARGET:g}: the ratio is proportional to the learning rate for SGD and "
           "Adam alike")
    if not 0 < factor < 1:
        factor, why = R.LOWER_LR_FACTOR, "updates too large for the weights"
    # The rate in effect mid-way through the worst series: its median is over the whole run, so a
    # warm-up's first small rates are not the ones it measured.
    at = float(steps0[len(steps0) // 2])
    # No gradient_clipping: clipping at a high percentile of the norms leaves the typical step,
    # which the median measures, as large as it was (and Adam's step hardly depends on the norm).
    return [finding(
        "large_updates", severity,
        f"median update-to-weight ratio per step above {t.large_update_warning:g} in {len(over)} "
        f"series: {shown}" + (" ..." if len(over) > 5 else "") + " (healthy is about 1e-3)",
        "Each optimizer step changes these weights by a large fraction of their norm: the learning "
        "rate is too large for this network and optimizer, and training oscillates, diverges or "
        "kills units.",
        {"metric": s0.name, "steps": [_num(first), _num(last)], "layers": names, "value": worst,
         "threshold": t.large_update_warning, "error_threshold": t.large_update_error,
         "medians": {s.name: m for m, s, _ in over}},
        [lower_lr(run, at_step=at, factor=factor, why=why)])]


#: An embedding's step touches only the rows its batch holds, so its ratio runs under the dense
#: layers' at any rate (the architecture check leaves it out the same way): token, word and
#: position tables by their usual names (``embed``, ``embedding``, GPT-2's ``wte``/``wpe``)
_EMBEDDING = re.compile(r"embed|(?:^|[/._])(?:wte|wpe|tok_emb|pos_emb)(?:[/._]|$)", re.IGNORECASE)


def median_layer(medians: list[tuple[float, Series, np.ndarray]]) -> tuple[float, Series, np.ndarray]:
    """The logged layer at the median of the network, as ``small_updates`` judges it: the per-layer
    series (a total beside them would count the network twice) sorted by their median ratio, the one
    where more than half of the layers are reached. A log gives no layer's number of weights, so each
    layer counts once; more than half, not half, so that of two layers the slower alone does not
    speak for both. An embedding is left out where other layers are logged (:data:`_EMBEDDING`)."""
    layers = [m for m in medians if m[1].layer is not None] or medians
    dense = [m for m in layers if not _EMBEDDING.search(m[1].layer or m[1].name)]
    ranked = sorted(dense or layers, key=lambda m: m[0])
    return ranked[len(ranked) // 2]


@detects("small_updates")
def small_updates(run: RunLog, t: LogThresholds) -> list[Finding]:
    """The network's typical update-to-weight ratio per step far below ~1e-3: the rate is too small
    for the network, not one layer starved.

    Typical is each series' median over the logged steps (a warm-up's first steps and a schedule's
    last ones are a minority), and over the layers the median layer's (:func:`median_layer`), so a
    small fast layer (a 1-unit head, whose few weights move the most) cannot speak for the rest; the
    evidence names the fastest too. A series that is exactly 0 throughout is a frozen or dead layer
    and left to the other rules."""
    medians = _update_medians(run, t)
    if not medians:
        frozen = _frozen_policy(run, t) or _rate_zero_throughout(run) or _frozen_weights(run)
        return [frozen] if frozen else []
    typical, s0, steps0 = median_layer(medians)
    if not typical < t.small_update_warning:
        return []
    best, fastest, _ = max(medians, key=lambda m: m[0])
    judged_layers = [m for m in medians if m[1].layer is not None] or medians
    under = sum(1 for m in judged_layers if m[0] < t.small_update_warning)
    share = under / len(judged_layers)
    # to the floor target, or to the run's own threshold where it set one above it (1e-3, the
    # healthy level): either way above the ratio measured, so the rate goes up
    target = max(R.UPDATE_RATIO_FLOOR_TARGET, t.small_update_warning)
    factor = target / typical
    at = float(steps0[len(steps0) // 2])
    names = [s.layer or s.name for _, s, _ in medians]
    middle, fast = s0.layer or s0.name, fastest.layer or fastest.name
    fastest_words = "" if fastest is s0 else f"; the fastest, {fast}, at {best:.3g}"
    return [finding(
        "small_updates", "warning",
        f"median update-to-weight ratio per step under {t.small_update_warning:g} in {under} of "
        f"{len(judged_layers)} logged series ({share:.0%}): the median layer, {middle}, at {typical:.3g}"
        f"{fastest_words} (healthy is about 1e-3)",
        "Each optimizer step changes most of the network's weights by a tiny fraction of their norm: the "
        "learning rate is too small for this network and optimizer, and training crawls. The median layer "
        "is judged, not the fastest: a small layer (a one-unit output, whose few weights move the most) "
        "cannot speak for the rest.",
        {"metric": s0.name, "steps": [_num(float(steps0[0])), _num(float(steps0[-1]))], "layers": names,
         "value": typical, "threshold": t.small_update_warning,
         "median_update_ratio": typical, "median_layer": middle,
         "fastest_layer": fast, "max_update_ratio": best,
         "layers_share_under_threshold": share,
         "medians": {s.name: m for m, s, _ in medians}},
        [raise_lr(
            run, at_step=at, factor=factor,
            why=f"the median layer's median update-to-weight ratio {typical:.3g} x {factor:.3g} = "
                f"{target:g}: the ratio is proportional to the learning rate "
                "for SGD and Adam alike")])]


#: Series that say how far an RL policy has moved from its reference model: the KL that TRL's GRPO
#: and PPO log (``kl``, ``objective/kl``; logged only when the KL is computed), PPO's approximate KL
#: between consecutive policies, and DPO's implicit rewards (beta x the log-ratio to the reference).
_REFERENCE_KL = re.compile(r"^(?:(?:train|rollout|objective|policy|ppo|ppo/policy|loss)[/_])?"
                           r"(?:kl|mean_kl|kl_mean|approx_?kl|ref_kl|kl_ref|kl_div|kl_divergence|"
                           r"approximate_kullback-leibler)$", re.I)  # (stable-baselines 2's tag: logsweep31)
_REFERENCE_RATIO = re.compile(r"^(?:train[/_])?rewards/(?:chosen|rejected|margins)$", re.I)
#: A KL this many logged steps long that never leaves 0 is a run, not a warm-up.
_FROZEN_MIN_POINTS = 20


def _frozen_policy(run: RunLog, t: LogThresholds) -> Finding | None:
    """An RL or preference run whose distance from its reference policy is exactly 0 at every
    logged step after the first: no update changed the model's outputs at the precision they are
    computed in (a learning rate of 0 or too small for bf16 weights, frozen or detached adapters).

    The first point is taken before any update (a LoRA adapter starts as the identity), so it does
    not count. Judged only where the run's norms are written at full precision: a log that rounds
    its numbers to a few decimals would print a small, moving KL as 0."""
    if not any("reward" in s.name.lower() for s in run.series):
        return None  # a VAE's KL term is another quantity
    grad = run.first("grad_norm")
    anchor = grad or run.first("loss")
    if anchor is None or resolution(finite(anchor)[1]) >= 1e-6:
        return None
    for s in run.series:
        if not (_REFERENCE_KL.match(s.name) or _REFERENCE_RATIO.match(s.name)):
            continue
        steps, v = finite(s)
        if len(v) <= _FROZEN_MIN_POINTS or np.any(v[1:] != 0):
            continue
        within = _rates_within(run, float(steps[0]), float(steps[-1]))
        rate = float(np.max(within)) if len(within) else None
        moving = grad is not None and bool(np.any(finite(grad)[1] > 0))
        cause = (" with a learning rate of 0" if rate == 0 else
                 f" while the learning rate reached {rate:.3g}" if rate is not None else "")
        return finding(
            "small_updates", "warning",
            f"{s.name} is exactly 0 at all {len(v)} logged points ({s.between(steps[0], steps[-1])}){cause}: "
            "the policy never moved from its reference model",
            "A distance to the reference that stays exactly 0 means no optimizer step changed the model's "
            "outputs: the learning rate is 0, or so small that every update rounds away (Adam moves each weight "
            "by about the learning rate, and a bf16 weight of 0.01 cannot change by less than about 4e-5), or "
            "the trained parameters (an adapter) are frozen or not in the graph. Whatever the rewards do, the "
            "model is not learning from them.",
            {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
             "points": len(v), "max_learning_rate": rate, "gradients_nonzero": moving},
            [raise_lr(run, at_step=float(steps[len(steps) // 2]),
                      why=f"{s.name} stayed exactly 0: no update reached the model's outputs") if rate else None])
    return None


#: Significant digits a logged loss must carry for an exact repeat of it to mean unchanged weights:
#: a float32 loss printed in full (7 digits or more; Lightning's CSV and the HF Trainer write 17).
#: Two evaluations of a model that moved at all differ in the 7th digit unless the change is below
#: float32's rounding (a relative 6e-8), i.e. no change a run could use; a value printed to 4 or 5
#: digits (Keras' 0.2297) repeats on a loss that moves less than that, a genuine plateau.
_FULL_DIGITS = FULL_DIGITS
#: Evaluations in a row at one value, printed in full, that make a frozen model: 3 (two exact
#: repeats of a 7-digit value by chance are ~1e-14 apart in odds, however a plateau drifts)
_FROZEN_EVALS = 3
#: A per-step training loss whose sequence repeats exactly, epoch after epoch: at least this many
#: steps per period (an epoch of batches) and this many identical periods in a row
_PERIOD_MIN = 10
_PERIODS = 3


def _longest_repeat(v: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of consecutive identical values of ``v`` printed in full
    (:data:`_FULL_DIGITS`); (0, 0) when there is none."""
    best = (0, 0)
    i = 0
    while i < len(v):
        j = i + 1
        while j < len(v) and v[j] == v[i]:
            j += 1
        if j - i > best[1] and printed_digits(float(v[i])) >= _FULL_DIGITS:
            best = (i, j - i)
        i = j
    return best


def _repeating_epochs(loss: Series) -> tuple[int, int, int] | None:
    """(period, first index, last index) of the longest stretch where the per-step training loss,
    printed in full, equals its value one period earlier at every step, for ``_PERIODS`` periods
    or more: the same batches through the same weights, epoch after epoch (an unshuffled loader
    feeding a model that no longer changes). None where it does not repeat so."""
    steps, v = finite(loss)
    if len(v) < _PERIOD_MIN * _PERIODS:
        return None
    last: dict[float, int] = {}
    lags: dict[int, int] = {}
    for i, x in enumerate(v.tolist()):
        j = last.get(x)
        if j is not None and i - j >= _PERIOD_MIN:
            lags[i - j] = lags.get(i - j, 0) + 1
        last[x] = i
    if not lags:
        return None
    period = max(lags, key=lambda k: lags[k])
    if lags[period] < period * (_PERIODS - 1):
        return None
    same = np.zeros(len(v), dtype=bool)
    same[period:] = v[period:] == v[:-period]
    full = np.array([printed_digits(x) >= _FULL_DIGITS for x in v.tolist()])
    same &= full
    best, run_start, length = (0, 0), 0, 0
    for i, ok in enumerate(same.tolist()):
        length = length + 1 if ok else 0
        if ok and length == 1:
            run_start = i
        if length > best[1]:
            best = (run_start, length)
    if best[1] < period * (_PERIODS - 1):
        return None
    return period, best[0] - period, best[0] + best[1] - 1


def _frozen_weights(run: RunLog) -> Finding | None:
    """A model whose weights stopped changing, read from its losses' exact repeats (logsweep67 u04,
    a Lightning LSTM: val_loss 0.22974897921085358 at each of its last 13 evaluations, its per-step
    train_loss the same 375 values every epoch): an evaluated loss printed in full (7 significant
    digits or more) identical at ``_FROZEN_EVALS`` evaluations in a row, or a per-step training loss
    whose sequence repeats exactly for ``_PERIODS`` periods. Neither happens by chance while the
    weights move: a float32 loss changes in its 7th digit under any update a run could use."""
    from gradhealth.logs.detectors.nonfinite import best_so_far

    evals = None
    loss = run.first("loss")
    for s in run.ranked("val_loss"):
        if best_so_far(s.name):
            continue  # a best-so-far record repeats by design
        if loss is not None and 2 * len(s) >= len(loss) > _FROZEN_EVALS:
            continue  # on (nearly) every training line: the last evaluation carried forward, not new ones
        steps, v = finite(s)
        start, length = _longest_repeat(v)
        if length >= _FROZEN_EVALS and (evals is None or length > evals[3]):
            evals = (s, steps, v, length, start)
    epochs = _repeating_epochs(loss) if loss is not None and loss.role == "loss" else None
    if evals is None and epochs is None:
        return None
    parts: list[str] = []
    evidence: dict = {}
    if evals is not None:
        s, steps, v, length, start = evals
        value, first, last = float(v[start]), float(steps[start]), float(steps[start + length - 1])
        parts.append(f"{s.name} is {value!r} at all {length} evaluations in a row from {s.where(first)} to "
                     f"{s.where(last)} ({length} of its {len(v)} evaluations), identical to all {printed_digits(value)} "
                     "printed digits")
        evidence = {"metric": s.name, "steps": [_num(first), _num(last)], "value": value,
                    "threshold": _FROZEN_EVALS, "repeats": length, "evaluations": int(len(v)),
                    "digits": printed_digits(value)}
    if epochs is not None and loss is not None:
        period, i0, i1 = epochs
        ls, lv = finite(loss)
        parts.append(f"{loss.name} repeats the same {period}-value sequence exactly over {i1 - i0 + 1:,} logged "
                     f"steps ({loss.between(float(ls[i0]), float(ls[i1]))}, {(i1 - i0 + 1) / period:.3g} periods)")
        tail = lv[i0:]
        more = {"train_metric": loss.name, "period": period, "repeat_steps": [_num(ls[i0]), _num(ls[i1])],
                "repeated_points": int(i1 - i0 + 1), "distinct_values": int(len(np.unique(tail))),
                "points_from_repeat": int(len(tail))}
        evidence = {**more, **evidence} if evidence else {
            "metric": loss.name, "steps": [_num(ls[i0]), _num(ls[i1])], "value": float(period),
            "threshold": float(_PERIODS), **more}
    rate_zero = _zero_rate(run, float(evidence["steps"][0]), float(evidence["steps"][-1]))
    return finding(
        "small_updates", "warning",
        "; ".join(parts) + ": the weights stopped changing" + ("; the learning rate is 0 there" if rate_zero else ""),
        "A loss printed in full (7 significant digits or more) changes in its last digits under any update a "
        "run could use: the same evaluated value at several evaluations in a row, or a training loss whose "
        "batches give the same values epoch after epoch, means the steps no longer change the model. The "
        "optimizer is not stepping (optimizer.step() skipped or on other parameters), the trained parameters "
        "are frozen (requires_grad False, not in the optimizer), or the learning-rate schedule has decayed to "
        "0 (or so near it that float32 weights round every update away). Every epoch from there on is "
        "computation that learns nothing.",
        {**evidence, "learning_rate_zero": rate_zero},
        [R.check_updates(parts[0].split(" is ")[0] + " repeats exactly"),
         R.positive_learning_rate(0.0) if rate_zero else None])
