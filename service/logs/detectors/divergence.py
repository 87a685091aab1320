"""A training loss that runs away, never returns to its start or loses the progress it made
(``loss_divergence``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.chance import VALIDATION
from gradhealth.logs.detectors.common import finding, judged, positive_loss
from gradhealth.logs.detectors.gan import generator_losing
from gradhealth.logs.detectors.rl import on_rollouts
from gradhealth.logs.detectors.schedule import lr_growth, lr_note, range_test, schedule_remedy
from gradhealth.logs.remedies import (
    clipping,
    learning_rate_at,
    learning_rate_jump,
    lower_lr,
    raise_lr,
)
from gradhealth.logs.series import RunLog, Series, gan_part, name_words
from gradhealth.logs.stats import finite, median, resolution, second_diff_noise, smooth, theil_sen
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds

#: A rise to under this many times the minimum that regains less than this share of the fall before
#: it is not a divergence (:func:`divergence`).
_CREEP_RISE = 3.0
_CREEP_REGAINED = 0.05
_FLOOR_REGAINED = 0.01


def _noise_bias(n: int, window: int) -> float:
    """How many standard errors of its running medians (of ``window`` points) the lowest of a flat
    noisy loss of ``n`` points lies under its level, with a margin of 2: about sqrt(2 ln m) for m
    independent stretches (2.3 for 134 points by 9, 1.5 for 29)."""
    return 2.0 + math.sqrt(2.0 * math.log(max(n / window, 1.0)))


def _point_noise(v: np.ndarray, sm: np.ndarray) -> float:
    """A loss's point-to-point noise about its running median ``sm`` (1.4826 x the median absolute
    deviation: the standard deviation for Gaussian noise, robust to the spikes)."""
    return 1.4826 * float(median(np.abs(v - sm)))


def _divergence_window(n: int) -> int:
    """The running-median window loss_divergence judges a loss of ``n`` points by."""
    return min(max(9, min(n // 25, 51)), max(3, n // 3))


#: A training loss this large has blown up whatever its history: float32's largest number is 3.4e38,
#: and no mean or sum over a batch of a sound loss comes near this (ls20: a pose loss at 3e31)
_ASTRONOMICAL_LOSS = 1e15
#: A log whose first point is within this share of its last step (or at step 0 or 1) starts at the run's start
_RUN_START = 0.1


#: Words that make a series a term of the loss (:func:`loss_terms`): named a loss, or a term
#: losses are made of by its usual name (a VAE's KL and reconstruction, a likelihood)
_TERM_WORDS = frozenset({"loss", "kl", "kld", "recon", "reconstruction", "nll", "elbo", "xent"})
#: ... and words that make it something else: a scale, a weight or coefficient, a schedule, a
#: best-so-far, a statistic of the loss, a time
_NOT_TERM = frozenset({"scale", "scaler", "weight", "weights", "coef", "coeff", "lambda", "beta", "ratio", "lr",
                       "best", "min", "max", "std", "var", "target", "time", "timestamp", "count", "anneal",
                       "annealing"})


def loss_terms(run: RunLog) -> list[Series]:
    """The series logged as terms of the training loss besides the loss itself: a metric whose
    name's words say a loss or one of its usual terms (``gen_loss``, ``KL_loss``, ``loss_box``,
    ``kl``, ``recon``), not a validation figure, a scale or weight of one, a best-so-far, nor a GAN
    player's (which only the GAN checks judge)."""
    out = []
    for s in run.series:
        if s.role != "metric" or VALIDATION.search(s.name.lower()) or gan_part(s.name) is not None:
            continue
        words = set(name_words(s.name))
        if words & _TERM_WORDS and not words & _NOT_TERM:
            out.append(s)
    return out


#: The terms of the loss a divergence's evidence names (:func:`rising_terms`)
_TERMS_NAMED = 3


def rising_terms(run: RunLog, loss: Series) -> list[dict[str, Any]]:
    """The terms of the loss logged beside ``loss`` (:func:`loss_terms`) that rose most, each from its
    lowest point to its highest after it (positive terms, rising 1.5x or more): which part of a total
    climbed (logsweep84 pina_v61_stuck: data_loss 5.0e9 -> 7.5e17 inside a mean_loss on that scale
    from its first point). Largest rise first, at most ``_TERMS_NAMED``."""
    out: list[dict[str, Any]] = []
    for term in loss_terms(run):
        if term is loss or term.name == loss.name:
            continue
        steps, v = finite(term)
        if len(v) < 3 or not float(np.min(v)) > 0:
            continue
        lowest = np.minimum.accumulate(v)
        k = int(np.argmax(v / lowest))  # the highest point over the lowest before it
        i = int(np.argmin(v[:k + 1]))
        rise = float(v[k] / v[i])
        if rise >= 1.5:
            out.append({"metric": term.name, "lowest": float(v[i]), "lowest_step": _num(steps[i]),
                        "highest": float(v[k]), "highest_step": _num(steps[k]), "final": float(v[-1]),
                        "rise": rise})
    return sorted(out, key=lambda d: -float(d["rise"]))[:_TERMS_NAMED]


def _terms_clause(run: RunLog, rising: list[dict[str, Any]]) -> str:
    """A summary's words for the terms that rose most, "" where none did."""
    if not rising:
        return ""
    named = {s.name: s for s in run.series}
    return "; of its terms, " + ", ".join(
        f"{d['metric']} rose {d['rise']:.3g}x ({d['lowest']:.3g} at {named[d['metric']].where(d['lowest_step'])} -> "
        f"{d['highest']:.3g} at {named[d['metric']].where(d['highest_step'])})" for d in rising)


def _astronomical_loss(run: RunLog, t: LogThresholds) -> list[Finding]:
    loss = run.first("loss")
    found = _astronomical(run, t, loss, None) if loss is not None else []
    if found:
        return found
    # a term of the loss blown up while the total the log calls its loss is not (logsweep59: a
    # bayou run's KL_loss 13.2 -> 1.1e16 while its loss, the retrieval term, fell 8.24 -> 2.45)
    for term in loss_terms(run):
        found = _astronomical(run, t, term, loss)
        if found:
            return found
    return []


def _astronomical(run: RunLog, t: LogThresholds, loss: Series, total: Series | None) -> list[Finding]:
    """``loss_divergence`` for ``loss`` (the training loss, or a term of ``total``) where it
    reaches :data:`_ASTRONOMICAL_LOSS`."""
    steps, v = finite(loss)
    big = np.nonzero(np.abs(v) >= _ASTRONOMICAL_LOSS)[0]
    if len(big) == 0:
        return []
    i = int(big[0])
    # the figure the finding is about is the loss's largest size, not the first point over the line
    # (newuser11: "reaches 2.07e+16 (step 157)" while it rose on to 2.64e+35 at step 164)
    top = int(np.argmax(np.abs(v)))
    is_term = loss.role != "loss"
    beside = ""
    if is_term and total is not None:
        _, t_v = finite(total)
        beside = f", while {total.name} ends at {float(t_v[-1]):.3g}" if len(t_v) else ""
    crossed = (f"first {_ASTRONOMICAL_LOSS:.0e} or more at {loss.where(steps[i])} ({float(v[i]):.3g}); "
               if top != i else "")
    points = (f"{len(big)} of its {len(v)} {'finite ' if len(v) < len(loss) else ''}points"
              + (f" ({len(loss) - len(v)} NaN/Inf)" if len(v) < len(loss) else "")
              + f" {'is' if len(big) == 1 else 'are'} {_ASTRONOMICAL_LOSS:.0e} or more"
              # counted by size: a loss at -1e300 is as far out of scale as one at 1e300, and "1e+15 or more"
              # alone read as a count of the positive ones (errsweep7: +-1e300 alternately, "12 of its 12")
              + (f" in magnitude, {int(np.sum(v[big] < 0))} of them negative" if bool(np.any(v[big] < 0)) else "")
              + beside)
    # enormous at the run's very first point and never above divergence_factor times it: no update blew
    # anything up; the untrained model's loss is on that scale (logsweep82 pl_pinn_frozen: a PINN's
    # mean_loss 3.767e25 at step 0 and 3.766e25 at its end, read "the weights have blown up")
    rising = rising_terms(run, loss) if not is_term else []
    at_start = (i == 0 and float(steps[0]) <= max(1.0, _RUN_START * float(steps[-1]))
                and float(np.max(np.abs(v))) <= t.divergence_factor * abs(float(v[0])))
    if at_start:
        summary = (f"{loss.name}{', a term of the loss,' if is_term else ''} is {float(v[0]):.3g} at its first "
                   f"point ({loss.where(steps[0])}) and {float(v[-1]):.3g} at its last, never above "
                   f"{t.divergence_factor:g}x its start{' in magnitude' if bool(np.any(v < 0)) else ''} ({points}): "
                   "out of any trainable scale from the start, before any update (the untrained model's "
                   "loss)" + _terms_clause(run, rising))
        why = ("A loss this large at the run's first point, before any update could blow the weights up, is the "
               "untrained model's: the targets or the inputs are far out of scale (unscaled regression or physics "
               "targets, raw sensor values: as a mean squared error its square root is the typical error), or the "
               "loss sums what it should average. No training progress can be judged on that scale, the gradients "
               "are as outsize as the error, and float32 overflows to Inf a few orders of magnitude further.")
    else:
        summary = (f"{loss.name}{', a term of the loss,' if is_term else ''} reaches {float(v[top]):.3g} at its "
                   f"largest{' in magnitude' if float(v[top]) < 0 else ''} ({loss.where(steps[top])}), {crossed}{points}")
        why = ("A loss this large is no training progress to judge: the weights or activations have blown up (a "
               "learning rate far too large, exploding gradients with no clipping, or an input or target far out "
               "of scale), and float32 overflows to Inf a few orders of magnitude further.")
    return [finding(
        "loss_divergence", "error", summary, why,
        {"from_start": at_start, "metric": loss.name, "steps": [_num(steps[i]), _num(steps[-1])], "value": float(v[top]),
         "threshold": _ASTRONOMICAL_LOSS, "points": int(len(big)), "peak": float(v[top]),
         "peak_step": _num(steps[top]), "first_over": float(v[i]), "first_over_step": _num(steps[i]),
         "rising_terms": rising,
         **({"loss_term": True, "total": total.name if total is not None else None} if is_term else {})},
        [lower_lr(run, at_step=float(steps[i]),
                  why=("a loss this size gives gradients as outsize, until its scale is fixed" if at_start else
                       f"{loss.name} blew up" if is_term else "the loss blew up")),
         clipping(run, t)])]


@detects("loss_divergence")
def divergence(run: RunLog, t: LogThresholds) -> list[Finding]:
    main = run.first("loss")
    if main is None:
        # a GAN's players, with no training loss: a generator losing the game to its discriminator
        losing = generator_losing(run, t)
        if losing is not None:
            return [losing]
    if main is not None and gan_part(main.name) is not None:
        # a GAN player (a reader's own "loss" for a generator or a discriminator): each one's loss
        # rises as the other improves, and only the GAN checks judge it (logsweep59: a DCGAN's
        # gen/loss 1.46 -> 2.45 while dis/loss fell 1.69 -> 0.66 read as a divergence)
        return []
    found = _divergence(run, t)
    if found:
        return found
    positive = positive_loss(run, t)
    return _never_back_to_start(*positive, run) if positive is not None else []


def _divergence(run: RunLog, t: LogThresholds) -> list[Finding]:
    huge = _astronomical_loss(run, t)
    if huge:
        return huge
    found = positive_loss(run, t)
    if found is None:
        return (_unbounded_below(run, t) or _blown_up_short(run, t) or _rising_short(run, t)
                or _worse_than_start(run, t)
                or [f for f in [validation_alone(run, t, "loss_divergence")] if f is not None])
    loss, steps, v = found
    # a window of 9 flattens a short log (8 points by epoch) into its own median: a third of it. On
    # a long noisy log (per-batch losses) the lowest of hundreds of 9-point medians is a lucky
    # stretch, well under the level: there the window grows with the log (1/25 of it, at most 51)
    sm = smooth(v, _divergence_window(len(v)))
    i_min = int(np.argmin(sm))
    low, end = float(sm[i_min]), float(sm[-1])
    if low <= 0 and end <= 0:
        return []
    rollouts = on_rollouts(run)
    if i_min >= len(sm) - 3:
        return [] if rollouts else (_rescued(run, loss, steps, v, sm, t) or _climbing(run, loss, steps, v, t))
    rise = end / low if low > 0 else math.inf
    if rise < t.divergence_factor:
        if rollouts:
            return []
        return (_excursion(run, loss, steps, sm, t) or _lost_progress(run, loss, steps, v, sm, i_min, t)
                or _climbing(run, loss, steps, v, t) or _rescued(run, loss, steps, v, sm, t))
    if rollouts and rise < _BLOWN_UP:
        # an agent's value or TD loss regresses onto returns that grow as the policy improves (DQN's
        # TD loss rose 5x while its episode reward went 1.6 -> 18.9): a rise short of a blow-up is
        # the targets' scale, not a divergence
        return []
    # A loss that fell by orders of magnitude and creeps back by a small multiple of a tiny minimum
    # (a fine-tune at 0.03 ending at 0.07 after starting at 2.1) has regained a sliver of its fall:
    # noise at the floor, not a climb back up
    top = float(np.max(sm[:i_min + 1]))
    onset_i = _sustained_onset(v, sm, i_min, low * (1 + (t.divergence_factor - 1) / 2))
    if onset_i is None:
        return []
    # A loss still climbing at the log's end is judged against its own lowest level alone: how far
    # the run fell before it says nothing of the climb (logsweep84 pina_v21_osc: 0.105 -> 71.7 over
    # its last 7 points was dropped as "under 1% of the fall" from a start at 2.8e8, and the same tail
    # behind a start at 1 was an error)
    climbing = _still_climbing(steps[onset_i:], v[onset_i:])
    # (at any multiple, a climb of under 1% of the fall: a per-batch loss fitted to ~0, 4.5e-6 at its
    # lowest, that wanders to 0.009 after falling from 1.79, ls19's EEG run)
    regained = (end - low) / (top - low) if top > low else math.inf
    if not climbing and ((rise < _CREEP_RISE and regained < _CREEP_REGAINED) or regained < _FLOOR_REGAINED):
        return []
    # The lowest of many running medians of a noisy per-batch loss is a lucky stretch, a few of the
    # medians' own standard errors under the level: a climb back within that many of them
    # (:func:`_noise_bias`) is that bias (ls19: a fitted classifier's train_loss_step around 0.05, lowest
    # median 0.0275). The noise is the level's own, from the lowest on: swings of the run before it
    # (orders of magnitude wide in logsweep84's pina_v21_osc) are no noise of the level it climbs from
    window = _divergence_window(len(v))
    if end - low < _noise_bias(len(v), window) * _point_noise(v[i_min:], sm[i_min:]) / math.sqrt(window):
        return []
    onset = float(steps[onset_i])
    held = _data_term_held(run, loss, steps, v, onset, end - low)
    if held is not None:
        term, lo, hi = held
        return [finding(
            "loss_divergence", "info",
            f"{loss.name} rose {rise:.3g}x from its minimum {low:.3g} to {end:.3g} while its data term {term.name} "
            f"held at {lo:.3g}-{hi:.3g}: the rise is in the loss's other terms (a KL or regularisation weight "
            "warming up), not the fit",
            "A loss made of a data term (a negative log-likelihood, a reconstruction error) and a weighted penalty "
            "(a KL divergence, a regulariser) rises when the penalty's weight is ramped up on a schedule (KL "
            "annealing in VAEs and Bayesian networks) though the model fits as well as before; a learning rate "
            "that diverged would raise the data term too.",
            {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": rise,
             "threshold": t.divergence_factor, "data_term": term.name, "data_term_range": [lo, hi]}, [])]
    growth = lr_growth(run, since=onset, until=float(steps[-1]))
    sweep = range_test(run, loss)
    if sweep is not None:
        # a learning-rate range test (Smith 2017; torch-lr-finder, fastai's lr_find): the rate swept
        # up by decades from a tiny one over the whole log, the loss blowing up at its end by design
        return [finding(
            "loss_divergence", "info",
            f"{loss.name} diverged as the learning rate swept from {sweep['first']:.3g} to {sweep['last']:.3g} "
            f"(x{sweep['gamma']:.4g} per step over the whole log): a learning-rate range test; its lowest "
            f"loss was at rate {learning_rate_at(run, float(steps[i_min])) or math.nan:.3g}",
            "A learning-rate range test raises the rate by a constant factor from a tiny value until the loss "
            "blows up; the blow-up is how it finds the usable rate (about a tenth of the rate at the loss's "
            "minimum). Not a training run to fix.",
            {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": rise,
             "threshold": t.divergence_factor, "learning_rate_growth": sweep}, [])]
    fix = (schedule_remedy(run, growth, onset) if growth is not None else
           lower_lr(run, at_step=onset, why=f"the loss diverged from {loss.where(onset)}"))
    # the figures judged are running medians; the summary gives the logged values beside them
    i_low = int(np.argmin(v[:onset_i]))
    return [finding(
        "loss_divergence", "error",
        # (two minima in one sentence read as a contradiction unless each says what it is: logsweep75 u04)
        f"{loss.name}'s running median (of {window} points) rose {rise:.3g}x from its lowest, {low:.3g} at "
        f"{loss.where(steps[i_min])}, to {end:.3g} (the logged values: lowest {float(v[i_low]):.3g} at "
        f"{loss.where(steps[i_low])}, last {float(v[-1]):.3g})" + lr_note(growth),
        "The loss climbs back up for good: the learning rate is too large for this stage of training, or an "
        "explosion is surfacing in the loss.",
        {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": rise,
         "threshold": t.divergence_factor, "minimum": low, "minimum_step": _num(steps[i_min]), "final": end,
         "window": window, "logged_minimum": float(v[i_low]), "logged_minimum_step": _num(steps[i_low]),
         "logged_final": float(v[-1]), "learning_rate_growth": growth, "rising_terms": rising_terms(run, loss),
         "learning_rate_jump": None if growth is not None else learning_rate_jump(run, onset)},
        [fix, clipping(run, t)])]


#: A loss negative from its start whose size grows this many times over has no floor (:func:`_unbounded_below`)
_RUNAWAY_BELOW = 100.0


def _unbounded_below(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A training loss negative from its first running median on, whose size grows a hundredfold or
    more by its last (logsweep29: an ECG classifier's loss -3.4e4 -> -6.5e7 read healthy, as any loss
    with a negative value was taken for an objective with no scale). A loss bounded below (a
    cross-entropy, an error, a likelihood of discrete labels) cannot fall by orders of magnitude
    below 0; one that does is minimising something unbounded. An agent's objective (rollouts) or a
    GAN's players are not judged so."""
    if on_rollouts(run):
        return []
    found = judged(run, "loss", t)
    if found is None and run.first("loss") is None:
        # no training loss, only its terms (an adversarial autoencoder's "Loss Encoder", "Loss Decoder"
        # and "Loss Discriminator": logsweep85 iae_encoder_unbounded, an encoder's loss -0.0056 -> -103
        # read healthy): each term is judged so, as a blown-up term is (:func:`_astronomical_loss`)
        for term in loss_terms(run):
            steps, v = finite(term)
            if len(v) >= t.min_points and (hit := _runaway_below(run, term, steps, v)):
                return hit
        return []
    if found is None or gan_part(found[0].name) is not None:
        return []
    return _runaway_below(run, *found)


def _runaway_below(run: RunLog, loss: Series, steps: np.ndarray, v: np.ndarray) -> list[Finding]:
    """:func:`_unbounded_below`'s finding for ``loss`` (the training loss or a term of it), if it falls so."""
    sm = smooth(v, _divergence_window(len(v)))
    first, last = float(sm[0]), float(sm[-1])
    if not (first < 0 and last < 0 and np.all(sm < 0)) or last / first < _RUNAWAY_BELOW:
        return []
    term = loss.role != "loss"
    return [finding(
        "loss_divergence", "error",
        f"{loss.name}{', a term of the loss,' if term else ''} falls without a floor: from {float(v[0]):.3g} ({loss.where(steps[0])}) to {float(v[-1]):.3g} "
        f"({loss.where(steps[-1])}), {last / first:.3g}x its size below 0 (running medians of "
        f"{_divergence_window(len(v))} points)",
        "A loss bounded below (a cross-entropy, a squared error, the likelihood of discrete labels) cannot fall "
        "by orders of magnitude below 0; one that does minimises something with no lower bound: targets outside "
        "the loss's range (binary cross-entropy of labels other than 0 and 1), a sign error, negative sample "
        "weights, or a continuous likelihood whose variance collapses. Training on it moves the weights without "
        "limit and fits nothing.",
        {"metric": loss.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": last / first,
         "threshold": _RUNAWAY_BELOW, "first": first, "final": last, **({"loss_term": True} if term else {})},
        [])]


#: A loss whose every point after its first is this many times the first or more never came back
#: from a blow-up at its first update (:func:`_never_back_to_start`)
_NEVER_BACK = 3.0


def _never_back_to_start(loss: Series, steps: np.ndarray, v: np.ndarray, run: RunLog) -> list[Finding]:
    """A loss that jumped from its first logged point and never came within 3x of it again (7.12, then
    198, then 65-143 for 44 points): the first update blew the model up; the running medians, which
    judge the rest, smooth the one point before the jump away (logsweep31). Not an agent's objective."""
    if len(v) < 8 or not v[0] > 0 or on_rollouts(run):
        return []
    later = float(np.min(v[1:]))
    if later < _NEVER_BACK * float(v[0]):
        return []
    i_top = 1 + int(np.argmax(v[1:4]))
    return [finding(
        "loss_divergence", "error",
        f"{loss.name} jumped from {float(v[0]):.3g} ({loss.where(steps[0])}) to {float(v[i_top]):.3g} "
        f"({loss.where(steps[i_top])}) and never came back within {_NEVER_BACK:g}x of it: its lowest later point "
        f"is {later:.3g}, {later / float(v[0]):.3g}x the first, over {len(v) - 1} points",
        "The first updates threw the model far from where it started and training never recovered: a learning "
        "rate far too large from the first step (no warm-up), exploding gradients with no clipping, or a bug in "
        "the loss after the first step.",
        {"metric": loss.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": later / float(v[0]),
         "threshold": _NEVER_BACK, "first": float(v[0]), "lowest_later": later},
        [lower_lr(run, at_step=float(steps[0]), why="the loss blew up at the first updates")])]


#: Names of a loss's data term beside its penalties (a VAE's reconstruction, a Bayesian network's NLL)
#: (not "data": detectron2's data_time is no term of a loss)
_DATA_TERM = re.compile(r"(?<![a-z])(?:nll|recon|reconstruction|rec|likelihood|log_?lik|xent|ce)(?![a-z])",
                        re.IGNORECASE)
#: The most of the loss's climb its data term may make and still have held (the rest is the penalties')
_TERM_SHARE = 0.2


def _data_term_held(run: RunLog, loss: Series, steps: np.ndarray, v: np.ndarray,
                    onset: float, climb: float) -> tuple[Series, float, float] | None:
    """A series logged beside ``loss`` that is its data term (named so: ``train_nll_epoch`` beside
    ``train_loss_epoch``, ``recon_loss`` beside ``loss``; never above the loss at the steps both
    have) whose running median rose by under a fifth of the loss's ``climb`` (its running median's,
    lowest to last) while the loss diverged from ``onset``: the climb is in the loss's other terms.
    (term, its lowest and highest from the onset) or None."""
    at = {float(x): float(y) for x, y in zip(steps, v, strict=True)}
    for s in run.series:
        if s is loss or s.role not in ("metric", "loss") or not _DATA_TERM.search(s.name) \
                or VALIDATION.search(s.name):
            continue
        ts, tv = finite(s)
        both = [(float(y), at[float(x)]) for x, y in zip(ts, tv, strict=True) if float(x) in at]
        if len(both) < 3 or any(term > total * (1 + 1e-6) + 1e-12 for term, total in both):
            continue
        late = tv[ts >= onset]
        sm = smooth(tv, _divergence_window(len(tv)))  # (judged as the loss is: on running medians)
        if len(late) < 2 or not float(np.min(sm)) > 0 or float(sm[-1]) - float(np.min(sm)) > _TERM_SHARE * climb:
            continue
        return s, float(np.min(late)), float(np.max(late))
    return None


#: A climb short of divergence_factor that gives back this share of what the loss had gained, for
#: good, is a divergence still (:func:`_lost_progress`); and the least rise that counts.
_LOST_SHARE = 1 / 3
#: ... or back where it stood this share of the run's steps before its end (and the climb is many
#: noise units), however small a share of its fall that is
_UNDONE_STEPS = 0.5
LOST_RISE = 1.15
#: ... and the fall it gives back at least this many times the loss's point-to-point noise
_LOST_NOISES = 5.0


def _lost_progress(run: RunLog, loss: Series, steps: np.ndarray, v: np.ndarray, sm: np.ndarray,
                   i_min: int, t: LogThresholds) -> list[Finding]:
    """A loss that climbs back a third or more of the way it had fallen and stays there, though short
    of ``divergence_factor`` times its minimum: a cross-entropy in nats sits on its data's entropy, so
    a ratio understates it (a word-level LM at 5.2 nats that jumped to 6.5 and stayed, 1.26x: its
    perplexity 3.6x, the progress of its first epochs undone). A warning."""
    low, end = float(sm[i_min]), float(sm[-1])
    top = float(np.max(sm[:i_min + 1]))
    # the point-to-point noise about the running median: a fall and a climb back within a few of
    # it are the medians' own wander on a noisy per-batch loss, not progress made and lost
    noise = _point_noise(v, sm)
    # a loss whose lowest is where it began never fell: its whole climb is progress undone (a boosting
    # run whose training loss rises from its first round, a rate too large from the first step)
    never_fell = i_min == 0 or top <= low
    # ... or counted in training time: where the loss last stood at its final level on its way down.
    # An LM's fall from ln(vocab) is mostly its first few hundred steps, so a late climb of 0.65 nats
    # is a small share of the fall yet takes the run back to where it was at 18 % of 5000 steps
    # (logsweep38): the rest of training undone
    above = np.nonzero(sm[:i_min] >= end)[0]
    span = float(steps[-1] - steps[0])
    undone = (float(steps[-1] - steps[above[-1]]) / span) if len(above) and span > 0 else 0.0
    lost = never_fell or (end - low) / (top - low) >= _LOST_SHARE or (
        undone >= _UNDONE_STEPS and end - low >= _LOST_NOISES * noise)
    if (not low > 0 or end < LOST_RISE * low or (not never_fell and top - low < _LOST_NOISES * noise)
            or end - low < _LOST_NOISES / 2 * noise or not lost):
        return []
    onset_i = _sustained_onset(v, sm, i_min, low + 0.5 * (end - low))
    if onset_i is None:
        return []
    onset = float(steps[onset_i])
    share = 1.0 if never_fell else (end - low) / (top - low)
    back = "" if never_fell or share >= _LOST_SHARE else f", back where it stood {undone:.0%} of the run's steps before"
    window = _divergence_window(len(v))
    summary = (f"{loss.name} rose from {low:.3g} ({loss.where(steps[i_min])}) to {end:.3g} ({end / low:.3g}x) and "
               f"never went below where it began (running medians of {window} points)" if never_fell else
               f"{loss.name} climbed back from its minimum {low:.3g} ({loss.where(steps[i_min])}) to {end:.3g} "
               f"({end / low:.3g}x) and stayed there: {share:.0%} of its fall from {top:.3g} undone{back} "
               f"(running medians of {window} points)")
    return [finding(
        "loss_divergence", "warning", summary,
        "The loss gave back a large part of what training had gained and did not come down again: the "
        "learning rate is too large for this stage of training (a loss on a log scale, as cross-entropy in "
        "nats, rises by a small factor for a large loss of progress).",
        {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": end / low,
         "threshold": LOST_RISE, "minimum": low, "minimum_step": _num(steps[i_min]), "final": end,
         "start": top, "share_undone": share, "steps_undone": undone, "window": _divergence_window(len(v))},
        [lower_lr(run, at_step=onset, why=f"the loss climbed back from {loss.where(onset)}"), clipping(run, t)])]


#: A training loss that rose at each of its last ``_CLIMB_RISES`` points or more, from its lowest
#: point to its last, by ``_CLIMB_SHARE`` (relative) or more of that lowest and by ``_CLIMB_GATE``
#: of its own point-to-point noise (of a difference of two points), climbs for good
#: (:func:`steady_climb`): the count of rises in a row validation_divergence calls a trend (four,
#: once in 120 by noise alone, and only where the run's lowest point is the fifth from its end), the
#: rise it asks of a validation loss.
_CLIMB_RISES = 4
_CLIMB_SHARE = 0.1
_CLIMB_GATE = 3.0


def steady_climb(v: np.ndarray) -> tuple[int, float, float] | None:
    """Where a loss's values ``v`` climb steadily to the end (:data:`_CLIMB_RISES`): (the index of
    its lowest point, the rise in noises, the noise of one point), else None.

    Its noise is read from the second differences of the whole series (1.4826 MAD / sqrt 6), which a
    smooth descent or a steady climb hardly move: a per-batch loss scatters by a tenth of its level,
    so five rises of 13 % in all are within its noise there; an epoch's mean over 50,000 samples
    scatters by about 1 % (logsweep66 u04, Keras' cifar10 example: 1.0933 at epoch 4, then 1.1043,
    1.1402, 1.1855, 1.2136, 1.2371, +13 %, 6.7 noises, with val_loss rising beside it). A rise that is a
    sliver of the fall before it (under ``_CREEP_REGAINED`` of it) is the floor's wander, not a climb."""
    n = len(v)
    if n < _CLIMB_RISES + 2:
        return None
    i = int(np.argmin(v))
    low, last = float(v[i]), float(v[-1])
    if n - 1 - i < _CLIMB_RISES or not low > 0 or not bool(np.all(np.diff(v[i:]) > 0)):
        return None
    if (last - low) / low < _CLIMB_SHARE or last - low <= 3 * resolution(v):
        return None
    top = float(np.max(v[:i + 1]))
    if top > low and (last - low) / (top - low) < _CREEP_REGAINED:
        return None
    noise = second_diff_noise(v)
    margin = (last - low) / (noise * math.sqrt(2)) if noise > 0 else math.inf
    if margin < _CLIMB_GATE:
        return None
    return i, margin, noise


def _climbing(run: RunLog, loss: Series, steps: np.ndarray, v: np.ndarray, t: LogThresholds) -> list[Finding]:
    """A training loss that climbs steadily to the end of the run from its lowest point
    (:func:`steady_climb`), short of what the running-median rules need (an epoch log of 9 points:
    its medians of 3 rise 1.10 -> 1.23, 1.11x, short of ``LOST_RISE``): a warning. The optimisation
    is going backwards, whatever the validation loss does beside it: not overfitting, which needs
    the training loss to keep falling."""
    found = steady_climb(v)
    if found is None:
        return []
    i, margin, noise = found
    low, last = float(v[i]), float(v[-1])
    rises = len(v) - 1 - i
    onset = float(steps[i])
    growth = lr_growth(run, since=onset, until=float(steps[-1]))
    fix = (schedule_remedy(run, growth, onset) if growth is not None else
           lower_lr(run, at_step=onset, why=f"the loss climbed from {loss.where(onset)}"))
    return [finding(
        "loss_divergence", "warning",
        f"{loss.name} rose at each of its last {rises} points, from its lowest {low:.4g} ({loss.where(onset)}) to "
        f"{last:.4g} ({loss.where(steps[-1])}, {(last - low) / low:+.1%}): {margin:.2g} times its point-to-point "
        f"noise of {noise:.2g}" + lr_note(growth),
        "The training loss climbs back up at every point to the end of the run, far out of its own noise: the "
        "optimisation is going backwards (a learning rate too large for this stage of training, a schedule that "
        "raised it, or a problem in the data), not overfitting, which needs the training loss to keep falling.",
        {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": (last - low) / low,
         "threshold": _CLIMB_SHARE, "minimum": low, "minimum_step": _num(onset), "final": last,
         "rises_in_a_row": rises, "noise": noise, "noise_margin": margin, "learning_rate_growth": growth},
        [fix, clipping(run, t)])]


def _rescued(run: RunLog, loss: Series, steps: np.ndarray, v: np.ndarray, sm: np.ndarray,
             t: LogThresholds) -> list[Finding]:
    """A loss that climbed away from its lowest so far and held there, as :func:`_lost_progress`
    judges a run's end, for a fifth of the run or more, then came down again (a word-level RNN at
    lr 20 rising from 12.3 to 17.3 nats over two epochs, down to 8 only once the rate was cut to 5):
    a warning for that stretch, however the run ended. The progress was lost there, and the same
    rate diverges again."""
    floor = np.minimum.accumulate(sm)
    if not np.all(floor > 0):
        return []
    p = int(np.argmax(sm / floor))  # the highest climb over the lowest before it
    if sm[p] < LOST_RISE * floor[p]:
        return []
    back = np.nonzero(sm[p:] < LOST_RISE * floor[p])[0]
    if not len(back) or p + int(back[0]) >= len(sm) - 3:
        return []  # held to the end: the run's end is judged as it is
    j = p + int(back[0]) - 1  # the last point before it came down
    i_min = int(np.argmin(sm[:j + 1]))
    held = int(np.sum(sm[i_min:j + 1] >= LOST_RISE * sm[i_min]))
    if held < max(5, _EXCURSION_FRACTION * len(sm)):
        return []
    found = _lost_progress(run, loss, steps[:j + 1], v[:j + 1], sm[:j + 1], i_min, t)
    if not found:
        return []
    down = float(steps[j + 1])
    rates = learning_rate_at(run, float(steps[j])), learning_rate_at(run, down)
    cut = (f" when the learning rate went from {rates[0]:.3g} to {rates[1]:.3g}"
           if rates[0] is not None and rates[1] is not None and rates[1] < rates[0] else "")
    f = found[0]
    low, top = float(sm[i_min]), float(np.max(sm[i_min:j + 1]))
    first = i_min + int(np.nonzero(sm[i_min:j + 1] >= LOST_RISE * low)[0][0])
    summary = (f"{loss.name} climbed from {low:.3g} ({loss.where(steps[i_min])}) to {top:.3g} ({top / low:.3g}x) and "
               f"stayed above {LOST_RISE * low:.3g} on {held} of the {j + 1 - i_min} points to "
               f"{loss.where(steps[j])}; it came down only from {loss.where(down)}{cut}, ending at "
               f"{float(sm[-1]):.3g} (running medians of {_divergence_window(len(v))} points)")
    evidence = f.evidence.model_copy(update={
        "steps": [_num(steps[first]), _num(steps[j])], "value": top / low, "minimum": low,
        "minimum_step": _num(steps[i_min]), "recovered_at": _num(down), "final": float(sm[-1]),
        "points_above": held})
    why = ("The loss gave back what training had gained and held there for a long stretch before it came down "
           "again (often only after the learning rate was lowered): the rate was too large for that stage, the "
           "stretch was lost, and the same rate would diverge again.")
    return [f.model_copy(update={"summary": summary, "explanation": why, "evidence": evidence})]


#: Evaluations of a validation loss logged alone that say how its run went: this many all worse than
#: the first is a run that made the model worse; this many within _FLAT_SHARE of one level, one that
#: learnt nothing (:func:`validation_alone`)
_NEVER_BETTER = 8
_FLAT_EVALUATIONS = 20
_FLAT_SHARE = 0.01


#: Evaluations after the first that a validation loss logged alone must all be this many times its
#: first one for a lasting jump, with fewer than _NEVER_BETTER of them: no healthy run's
#: validation loss stays 30 % above where it began for four evaluations running.
_SHIFTED = 1.3
_SHIFTED_AFTER = 4


def validation_alone(run: RunLog, t: LogThresholds, code: str) -> Finding | None:
    """A run that logs its validation loss and no training loss or gradient norm (a Lightning module
    logging in validation_step only), judged on it: ``loss_divergence`` where 8 or more evaluations
    after the first are all worse than it (ls19: 6.589 at epoch 0, then 46 evaluations at 6.60-6.84),
    or 4 or more all ``_SHIFTED`` times it or more,
    ``loss_plateau`` where 20 or more stay within 1% of their start, end and lowest (6.464 -> 6.449
    over 50 epochs). A validation loss alone cannot say overfitting from a too-high rate; these two it
    can."""
    if run.first("loss") is not None or run.first("grad_norm") is not None or on_rollouts(run):
        return None
    val = run.first("val_loss")
    if val is None:
        return None
    steps, v = finite(val)
    if len(v) < _SHIFTED_AFTER + 1 or not float(v[0]) > 0:
        return None
    first, best_later = float(v[0]), float(np.min(v[1:]))
    # every later evaluation worse, over 8 of them; or, over fewer, every one far worse (a lasting
    # jump: logsweep55's fairseq 5.99, then 12.4, 11.7, 9.2 ... 11.8, none under 1.46x the first)
    worse = (len(v) >= _NEVER_BETTER + 1 and best_later > first) or best_later >= _SHIFTED * first
    if code == "loss_divergence" and worse:
        return finding(
            "loss_divergence", "warning",
            f"{val.name} never improved on its first evaluation {first:.4g} ({val.where(steps[0])}): all "
            f"{len(v) - 1} later ones were higher (lowest {best_later:.4g}, last {float(v[-1]):.4g})",
            "The model was best before training had done much, and every later evaluation is worse: training "
            "is undoing what the model knew (a learning rate too high for it, most often in a fine-tune) or the "
            "validation set measures something training does not improve.",
            {"metric": val.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": best_later / first,
             "threshold": 1.0, "first": first, "final": float(v[-1]), "evaluations": int(len(v))},
            [lower_lr(run, at_step=float(steps[0]), why="the validation loss never improved on its first value")])
    spread = (float(np.max(v)) - float(np.min(v))) / first
    if code == "loss_plateau" and len(v) >= _FLAT_EVALUATIONS and spread < _FLAT_SHARE:
        return finding(
            "loss_plateau", "warning",
            f"{val.name} stays within {spread:.2%} of {first:.4g} over {len(v)} evaluations "
            f"({val.between(steps[0], steps[-1])}): the model has learnt nothing it measures",
            "A validation loss that does not move over many evaluations comes from a model whose outputs do not "
            "change: a learning rate of 0 or far too small, frozen or detached parameters, saturated or dead "
            "units, or a loss that does not depend on the inputs.",
            {"metric": val.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": spread,
             "threshold": _FLAT_SHARE, "first": first, "final": float(v[-1]), "evaluations": int(len(v))},
            [raise_lr(run, why="the validation loss does not move")])
    return None


#: Points from a climb's onset to the log's end that :func:`_still_climbing` needs: with fewer,
#: Sen's 99% interval of a slope is unbounded below
_CLIMB_TREND_POINTS = 6


def _still_climbing(steps: np.ndarray, v: np.ndarray) -> bool:
    """Whether a loss's points from a climb's onset to the end of the log (``steps``, ``v``, all
    positive) still rise: a Theil-Sen trend of their log whose 99% interval lies above 0, over
    ``_CLIMB_TREND_POINTS`` or more. A loss wandering at a noisy floor, however far above its lucky
    lowest, has no such trend; one climbing steadily to its last point has."""
    if len(v) < _CLIMB_TREND_POINTS or not bool(np.all(v > 0)):
        return False
    return theil_sen(steps.astype(np.float64), np.log(v))[1] > 0


def _sustained_onset(v: np.ndarray, sm: np.ndarray, i_min: int, level: float) -> int | None:
    """Where the smoothed loss ``sm`` leaves its minimum (at ``i_min``) above ``level`` for good: the
    index after the last time it was at or below it (a noisy level's median can poke above it
    earlier); None where the raw loss ``v`` does not stay up on most points from there (it returns
    to its level after isolated corrupted steps: a spike, loss_spike's, not a climb)."""
    onset_i = i_min + int(np.nonzero(sm[i_min:] <= level)[0][-1]) + 1
    after = v[onset_i:]
    if len(after) < 3 or np.mean(after > level) < 0.8:
        return None
    return onset_i


#: A loss this many times its lowest, at its last point, has blown up however few points show it.
_BLOWN_UP = 1e3


def _blown_up_short(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A loss too short for the trend checks that still ends orders of magnitude above where it was,
    climbing to its last point (an mmdet excerpt: 0.85, 2.4, 6.3e4, 1.1e13) or staying up there
    (a TF Object Detection paste: 0.144, 2.5e4, 7.6e4, 2.9e4, 1.3e5, 4.4e5, 2.1e5, 1.2e6)."""
    loss = run.first("loss")
    if loss is None:
        return []
    steps, v = finite(loss)
    if not 3 <= len(v) < t.min_points or np.min(v) <= 0:
        return []
    low = float(np.min(v[:-1]))
    rise = float(v[-1]) / low
    i_low = int(np.argmin(v[:-1]))
    # climbing to its last point, or up by orders of magnitude and staying there (never back
    # under 10x its lowest) on at least two points: a spike at the last step alone could come back
    up = i_low + 1 + int(np.argmax(v[i_low + 1:] >= 10 * low))
    stays = v[up] >= 10 * low and up <= len(v) - 2 and bool(np.all(v[up:] >= 10 * low))
    if rise < _BLOWN_UP or not (v[-1] > v[-2] > v[-3] or stays):
        return []
    return [finding(
        "loss_divergence", "error",
        f"{loss.name} rose from {low:.3g} ({loss.where(steps[i_low])}) to {float(v[-1]):.3g} "
        f"({loss.where(steps[-1])}): {rise:.2g}x in {len(v) - i_low - 1} logged point(s)",
        "The loss grew by orders of magnitude from one logged step to the next: training blew up (a learning "
        "rate too large, or exploding gradients with no clipping).",
        {"metric": loss.name, "steps": [_num(steps[i_low]), _num(steps[-1])], "value": rise,
         "threshold": _BLOWN_UP, "minimum": low, "minimum_step": _num(steps[i_low]), "final": float(v[-1])},
        [lower_lr(run, at_step=float(steps[i_low]), why="the loss blew up"), clipping(run, t)])]


#: A loss too short for the trend checks that rose at every logged point from its first, ending at
#: least this many times where it started, did not learn: with 5 points or more (4 rises in a row, a
#: chance of 1 in 120, under 1%, for points that only scatter about a level; 4 points, 1 in 24, stay
#: too few) and a doubling, it is a divergence however few points show it (newuser15 #1: a 5-epoch
#: Keras log, 2.30 -> 25.3 with accuracy at chance).
_SHORT_RISE = 2.0
_SHORT_RISE_POINTS = 5


def _rising_short(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A loss too short for the trend checks (under ``t.min_points`` points) that rose at every
    logged point from its first and at least doubled (:data:`_SHORT_RISE`): a warning, where one
    that rose by orders of magnitude is an error (:func:`_blown_up_short`). It needs no rolling
    statistic: a short run whose every point is worse than the one before never learnt."""
    loss = run.first("loss")
    if loss is None:
        return []
    steps, v = finite(loss)
    if not _SHORT_RISE_POINTS <= len(v) < t.min_points or not float(np.min(v)) > 0:
        return []
    rise = float(v[-1]) / float(v[0])
    if rise < _SHORT_RISE or not bool(np.all(np.diff(v) > 0)):
        return []
    return [finding(
        "loss_divergence", "warning",
        f"{loss.name} rose at every one of its {len(v)} logged points, from {float(v[0]):.3g} "
        f"({loss.where(steps[0])}) to {float(v[-1]):.3g} ({loss.where(steps[-1])}): {rise:.3g}x",
        "The loss never fell: each logged point is higher than the one before, and it ended at least twice where "
        "it started. Training is diverging from its start (a learning rate too large, or exploding gradients "
        "with no clipping); the run is too short for the trend checks, but not to show this.",
        {"metric": loss.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": rise,
         "threshold": _SHORT_RISE, "minimum": float(v[0]), "minimum_step": _num(steps[0]), "final": float(v[-1])},
        [lower_lr(run, at_step=float(steps[0]), why="the loss rose from its first logged point"), clipping(run, t)])]


def _worse_than_start(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A validation loss that never came back to its first evaluation, while a training loss too
    short to judge on its own did not fall either: training made the model worse.

    The Trainer logs the training loss every 500 steps and evaluates every epoch, so a small
    fine-tune has a handful of training points beside many evaluations; at a learning rate too high
    for it, the first evaluation is the best the run ever sees. A falling training loss beside a
    rising validation loss is overfitting instead (validation_divergence).
    """
    loss = run.first("loss")
    if loss is None:
        return []
    ls, lv = finite(loss)
    if len(lv) < 2 or lv[-1] < lv[0]:
        return []
    for val in run.ranked("val_loss"):
        vs, vv = finite(val)
        if len(vv) < t.min_points or vv[0] <= 0:
            continue
        first, best_later = float(vv[0]), float(np.min(vv[1:]))
        if best_later < first * (1 + t.validation_rise):
            continue
        return [finding(
            "loss_divergence", "warning",
            f"{val.name} never came back to its first evaluation {first:.3g} (step {_num(vs[0])}): the "
            f"{len(vv) - 1} later ones were all {best_later / first - 1:.0%} or more higher, ending at "
            f"{float(vv[-1]):.3g}; {loss.name} did not fall either ({float(lv[0]):.3g} -> {float(lv[-1]):.3g})",
            "The model got worse on held-out data from its first evaluation on while its training loss did not "
            "improve: training is undoing what the model knew (a learning rate too high for this model, most "
            "often a fine-tune), not overfitting.",
            {"metric": val.name, "steps": [_num(vs[0]), _num(vs[-1])], "value": best_later / first,
             "threshold": 1 + t.validation_rise, "first": first, "final": float(vv[-1]),
             "train_metric": loss.name, "train_first": float(lv[0]), "train_last": float(lv[-1])},
            [lower_lr(run, at_step=float(vs[0]), why="the validation loss never recovered its first value"),
             clipping(run, t)])]
    return []


#: A stretch this long (a fraction of the points) above divergence_factor x the lowest smoothed loss
#: so far is a divergence the run partly came back from, not noise.
_EXCURSION_FRACTION = 0.2
#: ... or this share of them where the climb gave back at least _GIVEN_BACK of the fall before it
_SHORT_EXCURSION_FRACTION = 0.1
_GIVEN_BACK = 0.25


def _excursion(run: RunLog, loss: Series, steps: np.ndarray, sm: np.ndarray, t: LogThresholds) -> list[Finding]:
    """A loss that climbed well above its lowest point and stayed up for a long stretch before
    coming back part of the way (a fine-tune whose warm-up reached too high a rate): a warning,
    where a loss that ends up there is an error (:func:`divergence`)."""
    floor = np.minimum.accumulate(sm)
    up = sm > t.divergence_factor * floor
    longest, run_start, best_start = 0, 0, 0
    for i, flag in enumerate(up.tolist()):
        if not flag:
            run_start = i + 1
        elif i - run_start + 1 > longest:
            longest, best_start = i - run_start + 1, run_start
    if longest < 5:
        return []
    a, b = best_start, best_start + longest - 1
    peak = a + int(np.argmax(sm[a:b + 1]))
    low = float(floor[a])
    if longest < _EXCURSION_FRACTION * len(sm):
        # a shorter stretch counts where the climb gave back a large share of what training had
        # gained until then (a fine-tune's loss 883 -> 2,397 over 9 of 61 points, half its fall
        # from 3,550, before it came back: logsweep56); a bump that gives back little is noise
        # (only after a real fall, to half the start or less: a loss that wandered 59 -> 49 -> 82 had
        # nothing to give back, and its bump is noise around a level it never left)
        start = float(np.max(sm[:a + 1]))
        gained = start - low
        if (longest < _SHORT_EXCURSION_FRACTION * len(sm) or low > 0.5 * start
                or (float(sm[peak]) - low) / gained < _GIVEN_BACK):
            return []
    return [finding(
        "loss_divergence", "warning",
        f"{loss.name} climbed to {float(sm[peak]) / low:.3g}x its lowest {low:.3g} and stayed above "
        f"{t.divergence_factor:g}x from {loss.where(steps[a])} to {_num(steps[b])} ({longest} points), "
        f"ending at {float(sm[-1]):.3g}",
        "The loss left its minimum for a long stretch and came back only part of the way: training was "
        "unstable there (a learning rate too large for that stage, often the end of a warm-up), and the "
        "model may end worse than it was.",
        {"metric": loss.name, "steps": [_num(steps[a]), _num(steps[b])], "value": float(sm[peak]) / low,
         "threshold": t.divergence_factor, "minimum": low, "final": float(sm[-1]), "points_above": longest},
        [lower_lr(run, at_step=float(steps[a]), why=f"the loss climbed from {loss.where(steps[a])}"),
         clipping(run, t)])]
