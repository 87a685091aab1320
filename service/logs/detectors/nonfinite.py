"""NaN and Inf in a log: non-finite points of trained quantities, losses clamped at a framework's floor,
and a mixed-precision loss scaler that gave up (``nonfinite``).
"""

from __future__ import annotations

import re

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.core.words import first_few
from gradhealth.logs.detectors.chance import accuracies, as_fraction
from gradhealth.logs.detectors.common import finding, times
from gradhealth.logs.detectors.coverage import log_the_loss
from gradhealth.logs.detectors.gan import players
from gradhealth.logs.remedies import clipping, lower_lr
from gradhealth.logs.series import (
    TRAINED_NAME,
    RunLog,
    Series,
    final_series,
    gan_part,
    name_words,
    record_name,
)
from gradhealth.logs.stats import finite, median
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds

# --- detectors ---------------------------------------------------------------------------------


@detects("nonfinite")
def nonfinite(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _in_run(run, t)
    if any(f.severity in ("warning", "error") for f in found):
        return found  # the run judged broke: that is the finding
    return [*_in_skipped_runs(run, t), *found]


def _in_skipped_runs(run: RunLog, t: LogThresholds) -> list[Finding]:
    """NaN/Inf in runs of the same console that were appended before (or after) the one judged and
    are not read for trends (the text reader's ``skipped_nonfinite`` notes): the file records a
    training computation that broke, whatever the run judged shows (logsweep61 u08: two restarts of
    an MXNet SSD logged ``Train-SmoothL1=nan`` at every batch, then the user started again). A
    warning, not an error: the run judged is finite, and a later restart may be the fix."""
    notes = [w for w in run.warnings if w.code == "skipped_nonfinite"]
    if not notes:
        return []
    more = f" (and in {len(notes) - 1} other run(s) of the file)" if len(notes) > 1 else ""
    return [finding(
        "nonfinite", "warning",
        f"NaN/Inf in a run of this log that is not the one judged{more}: {notes[0].message}",
        "The file holds several runs appended one after another; only one is judged for trends, but another "
        "logged a NaN or Inf loss or gradient norm: its values overflowed or an operation was undefined. If the "
        "run judged is the fix, this is history; if the same settings run again, it will break again.",
        {"metric": None, "steps": None, "value": None, "where": notes[0].where, "message": notes[0].message,
         "earlier_run": True, "runs": len(notes), "messages": [w.message for w in notes[:20]]},
        [clipping(run, t), lower_lr(run, why="an earlier run of the log went NaN/Inf")])]


#: Which of several series that go NaN/Inf at one step is named first: the gradient, which the others
#: follow (the update made from it breaks the weights, and the next loss)
_CAUSE_ORDER = {"grad_norm": 0, "layer_grad_norm": 1, "clipped_grad_norm": 2, "update_ratio": 3, "weight_norm": 4,
                "loss": 5, "val_loss": 6}


def _in_run(run: RunLog, t: LogThresholds) -> list[Finding]:
    """NaN/Inf in the run judged (its values, a framework's report, a clamp or a loss scaler)."""
    hits: list[tuple[float, Series, int]] = []
    notes: list[tuple[float, Series, int]] = []
    for s in run.series:
        if s.role == "update_ratio":
            continue  # ||dW|| / ||W|| over weights of norm 0 (a bias at init) is inf or NaN: no overflow
        bad = ~np.isfinite(s.values)
        if bad.any():
            i = int(np.argmax(bad))
            if _initial_best(s, bad):
                continue  # a best-so-far's starting -inf/+inf: no value computed, nothing broke
            (hits if _trained_quantity(s) else notes).append((float(s.steps[i]), s, int(bad.sum())))
    stand_ins = [(h, other) for h in hits if (other := _finite_twin(run, h[1])) is not None]
    if stand_ins and len(stand_ins) == len(hits):
        (_, s, n), other = stand_ins[0]
        return [finding(
            "nonfinite", "info",
            f"{s.name} is NaN/Inf at every one of its {n} point(s) while {other.name} is finite at the same "
            "steps: a progress bar's placeholder for a loss it was not given, not the loss being trained",
            "A loss that is never a number from its first point, beside another loss finite at every one of "
            "the same steps, is not a run that overflowed (its updates would make every loss NaN): Lightning's "
            "bar shows loss=nan when the step returns its loss under another name.",
            _where([h for h, _ in stand_ins]), [])]
    if not hits:
        return (_reported_nonfinite(run, t) or _nonfinite_finals(run, t) or _clamped_loss(run, t)
                or _clamped_share(run, t) or _undefined_metrics(run, notes))
    # at one step, the gradient first: the loss, the weights and a perplexity made from them go
    # non-finite because the update did (u07: "|param|=inf |g_param|=inf loss=nan ppl=nan")
    hits.sort(key=lambda h: (h[0], _CAUSE_ORDER.get(h[1].role, len(_CAUSE_ORDER))))
    if _skipped_by_the_scaler(run, hits):
        return [finding(
            "nonfinite", "info",
            f"{', '.join(dict.fromkeys(h[1].name for h in hits))}: NaN/Inf at {sum(h[2] for h in hits)} isolated "
            f"step(s) (first at {hits[0][1].where(hits[0][0])}) while the loss stays finite and the norm comes back: "
            "steps a mixed-precision loss scaler skipped",
            "fp16 training's loss scaler skips a step whose gradients overflowed and lowers its scale; the "
            "Trainer logs that step's norm as NaN or Inf. Occasional skips are how the scaler works.",
            _where(hits, to_last_bad=True), [])]
    recovered = _evaluation_only(run, hits)
    if recovered is not None:
        return [recovered]
    step, first, _ = hits[0]
    if run.first("loss") is None and run.first("grad_norm") is None and all(_evaluated(h[1]) for h in hits):
        return [_evaluation_without_training(run, hits)]
    layers = sorted({h[1].layer for h in hits if h[1].layer})
    kind = _first_kind(first)
    beside = list(dict.fromkeys(h[1].name for h in hits[1:] if h[0] == step and h[1].name != first.name))
    note = (f" (and in {first_few(beside)} "
            f"at the same {first.unit})" if beside else "")
    loss = run.first("loss")
    if first.role == "grad_norm" and loss is not None and np.all(np.isfinite(loss.values)):
        note += " (the loss stayed finite: some trainers replace a NaN loss with a running average)"
    grown = _grown_before(run, step, t)
    flat = None if grown is not None else _flat_before(run, step, t)
    if grown is not None:
        # the norm climbed for many steps and then broke: an explosion the updates made, judged by the
        # one measure exploding_gradient reads (newuser16 #1: 2e4x over 150 steps, then NaN, was called
        # "flat" from the last 25 points alone and blamed on the data)
        norm = run.first("grad_norm")
        assert norm is not None
        if grown["jump"]:
            # a norm that jumped once to a new level and held it before the NaN (newuser19 #3): a
            # change at that step, not updates compounding step after step
            cause = ("the run changed at that step (a bad batch, a learning-rate schedule step, a resumed "
                     "checkpoint) and its updates at the new level ended in an overflow")
            why = ("A gradient norm that jumps to a new level in one step, holds it and then turns into NaN/Inf "
                   "was thrown there by something that changed at that step: a bad batch (corrupt or outlier "
                   "samples), a learning-rate schedule step, or training resumed from a checkpoint whose state "
                   "differs; its steps at that size then overflowed. Clipping the norm bounds such a step, and a "
                   "lower learning rate the ones after; from here on updates are NaN/Inf.")
            grew = f"{norm.name} jumped to a new level before the NaN/Inf"
        else:
            cause = ("the updates grew until a value overflowed (a learning rate too large for the loss surface, "
                     "or no clipping)")
            why = ("A gradient norm that climbs for many steps and then turns into NaN/Inf was grown by the "
                   "updates: each step, too large for the loss surface, made the next gradient larger until a "
                   "value overflowed. Clipping the norm and a lower learning rate stop the climb; from here on "
                   "updates are NaN/Inf.")
            grew = f"{norm.name} grew steadily before the NaN/Inf"
        return [finding(
            "nonfinite", "error",
            f"{kind} first appears in {first.name} at {first.where(step)}{note}, after {grown['words']}: {cause}",
            why,
            {**_where(hits), "layers": layers or None, "sudden": False, "grew_before": grown["before"]},
            [clipping(run, t), lower_lr(run, at_step=grown["before"]["onset"], why=grew)])]
    if grown is None and (idle := _no_rate_yet(run, step)) is not None:
        # every learning rate logged up to the NaN/Inf is 0 (a warm-up's first step, a LoRA run's
        # first log, logsweep93 minicpmv_lora_gradnan_loss0): no update had moved the weights, so no
        # rate made it; "lower the learning rate" there sends the user after the wrong cause
        return [finding(
            "nonfinite", "error",
            f"{kind} first appears in {first.name} at {first.where(step)}{note}, where {idle['words']}: no update "
            "had moved the weights yet, so the cause is an input, the initial weights or a numerical operation, "
            "not the learning rate",
            "A gradient or loss that is NaN/Inf before any update with a nonzero learning rate was made by the "
            "data, the model as loaded or an operation undefined on them (log 0, 0/0, fp16 overflow in the "
            "forward pass): a lower learning rate cannot change it, and clipping a NaN norm gives NaN "
            "gradients; from here on updates are NaN/Inf.",
            {**_where(hits), "layers": layers or None, "learning_rate_zero": idle["before"]},
            [R.check_data(first.where(step), f"{_num(step)}", idle["words"]),
             R.domain_guard("the loss's log, division or square root", None,
                            "torch.log(p.clamp(min=1e-12)), a / b.clamp(min=1e-12)",
                            "an eps keeps a 0 from the data finite")])]
    if flat is not None:
        # nothing grew before it: a bad batch or an undefined operation, not a step size (newuser10 #2:
        # one batch times NaN at step 250 of a healthy run, the norm flat at median 1.04, max 1.76)
        return [finding(
            "nonfinite", "error",
            f"{kind} first appears in {first.name} at {first.where(step)}{note}, with no growth before it: "
            f"{flat['words']}, so the cause is most likely an input or a numerical operation, not the learning rate",
            "A value that jumps from a flat or falling level straight to NaN/Inf was not grown by the updates: a "
            "batch holding NaN/Inf or an operation undefined on it (log 0, 0/0, sqrt at 0) made it. A lower learning "
            "rate cannot change that, and clipping a NaN norm gives NaN gradients; from here on updates are "
            "NaN/Inf.",
            {**_where(hits), "layers": layers or None, "sudden": True, "before": flat["before"]},
            [R.check_data(first.where(step), f"{_num(step)}", f"the values before it were {flat['state']}"),
             R.domain_guard("the loss's log, division or square root", None,
                            "torch.log(p.clamp(min=1e-12)), a / b.clamp(min=1e-12)",
                            "an eps keeps a 0 from the data finite")])]
    return [finding(
        "nonfinite", "error",
        f"{kind} first appears in {first.name} at {first.where(step)}{note}",
        "Values overflowed or an operation was undefined; from here on updates are NaN/Inf.",
        {**_where(hits), "layers": layers or None},
        [clipping(run, t), lower_lr(run, at_step=step, why="NaN/Inf appeared")])]


def _no_rate_yet(run: RunLog, step: float) -> dict | None:
    """``{"words", "before"}`` where the log's learning rate is logged at or before ``step`` and is
    exactly 0 at every such point (each finite): no update with a nonzero rate was made before it.
    None otherwise (no rate logged by then, or one above 0)."""
    lr = run.first("learning_rate")
    if lr is None:
        return None
    v = lr.values[lr.steps <= step]
    if not len(v) or not np.all(v == 0):
        return None
    words = (f"the logged {lr.name} is 0" if len(v) == 1
             else f"{lr.name} is 0 at all {len(v)} points logged up to it")
    return {"words": words, "before": {"metric": lr.name, "points": len(v)}}


def _grown_before(run: RunLog, step: float, t: LogThresholds) -> dict | None:
    """The total gradient norm's sustained growth over its early baseline among its finite points
    before ``step`` (:func:`gradhealth.logs.detectors.explosion.sustained_growth`, the measure of
    ``exploding_gradient``): ``{"words", "before"}``, or None where it did not grow so."""
    from gradhealth.logs.detectors.explosion import grown_words, sustained_growth

    s = run.first("grad_norm")
    if s is None:
        return None
    grown = sustained_growth(s, t, until=step)
    if grown is None or grown["ratio"] < t.explode_warning:
        return None
    ratio = grown["peak"] / grown["base"]
    words = (f"{grown_words(s, grown)}, {times(ratio)} its early baseline {grown['base']:.3g} "
             f"(median {grown['tail_median']:.3g} over the {grown['tail']} logged points before {s.where(step)})")
    return {"words": words, "jump": grown["jump"] is not None,
            "before": {"metric": s.name, "onset": _num(grown["onset"]), "baseline": grown["base"],
                       "peak": grown["peak"], "peak_step": _num(grown["peak_step"]), "ratio": ratio,
                       "points": grown["tail"], "median": grown["tail_median"]}}


#: Finite points before a NaN/Inf that show whether anything grew towards it, and how far the last
#: few of them may rise over the window's median (a healthy norm's batch-to-batch scatter: newuser10's
#: MLP, median 1.04, max 1.76) while the window's second half stays within the same factor of its first
_FLAT_POINTS = 8
_FLAT_LAST = 3
_FLAT_FACTOR = 2.0


def _flat_before(run: RunLog, step: float, t: LogThresholds) -> dict | None:
    """The words and figures for a NaN/Inf at ``step`` that nothing led up to: the training loss and
    the total gradient norm (each where logged, at least one) flat or falling over the
    ``t.window`` finite points before it, their last few within :data:`_FLAT_FACTOR` of the
    window's median and its second half's median within that factor of its first half's. None
    where either grew, or neither has :data:`_FLAT_POINTS` finite points before the step (too
    short to tell growth from a jump). Each series is worded from its numbers: falling, with the
    medians of the window's two halves (evidence ``first_level``, ``last_level``), where the second is
    under the first by more than :data:`_FLAT_FACTOR`, else flat (evidence ``trend``); ``state`` is
    the series' trends together."""
    before: dict[str, dict[str, float | str]] = {}
    words = []
    for role in ("grad_norm", "loss"):
        s = run.first(role)
        if s is None:
            continue
        fs, v = finite(s)
        v = v[fs < step][-t.window:]
        if len(v) < _FLAT_POINTS:
            continue
        if role == "loss" and np.min(v) < 0:
            return None  # a loss with no floor at 0: no scale to judge growth on
        med = float(median(v))
        half = len(v) // 2
        first_half, second_half = float(median(np.abs(v[:half]))), float(median(np.abs(v[half:])))
        last = float(np.max(np.abs(v[-_FLAT_LAST:])))
        if not (med > 0 and last <= _FLAT_FACTOR * med and second_half <= _FLAT_FACTOR * first_half):
            return None
        # worded from the numbers: a window whose second half sits under its first half's level by more
        # than the flat factor fell (logsweep99: a PINN's loss 22.4 -> 1.04 over the 25 points before its
        # NaN), and a fall is no growth either; "flat" only where neither half is that far from the other
        falling = second_half * _FLAT_FACTOR < first_half
        trend = "falling" if falling else "flat"
        before[s.name] = {"points": len(v), "median": med, "max": float(np.max(v)), "last": float(v[-1]),
                          "trend": trend, "first_level": first_half, "last_level": second_half}
        # the levels are the halves' medians: a noisy loss's first point need not be its level
        shape = (f"was falling over the {len(v)} points before it (median {first_half:.3g} over their first "
                 f"half, {second_half:.3g} over their second; at most {float(np.max(v)):.3g}, last "
                 f"{float(v[-1]):.3g})" if falling else
                 f"was flat over the {len(v)} points before it (median {med:.3g}, at most "
                 f"{float(np.max(v)):.3g}, last {float(v[-1]):.3g})")
        words.append(f"{s.name} {shape}")
    if not before:
        return None
    trends = {b["trend"] for b in before.values()}
    state = "flat" if trends == {"flat"} else "falling" if trends == {"falling"} else "flat or falling"
    return {"words": "; ".join(words), "before": before, "state": state}


_AVERAGED = re.compile(r"avg|mean|average|running|smooth|ema", re.IGNORECASE)


def _finite_twin(run: RunLog, s: Series) -> Series | None:
    """Another training loss finite at every step of ``s``, where ``s`` is the bar's plain ``loss``
    and never finite (NeMo's bar: ``loss=nan`` beside ``Loss=3.920`` and ``reduced_train_loss=3.910``).
    A loss named for what it is (``Mean Training loss : nan`` beside a bar's finite ``loss=1.95e+4``)
    may be NaN from one batch of the epoch it averages: that one stays the run's."""
    if s.role != "loss" or s.name != "loss" or len(s) == 0 or np.isfinite(s.values).any():
        return None
    steps = set(s.steps.tolist())
    for other in run.by_role("loss"):
        ok = np.isfinite(other.values)
        # (an average may skip the batches whose loss was NaN: no witness that the loss was finite)
        if (other is not s and ok.any() and steps <= set(other.steps[ok].tolist())
                and not _AVERAGED.search(other.name)):
            return other
    return None


#: A probability loss's value where the probability of every sample's class has underflowed and
#: the framework's clamp holds it: -ln(FLT_MIN) (Caffe's SoftmaxWithLoss) and -ln(1e-7) (Keras'
#: epsilon in its cross-entropies). The logits overflowed: as good as NaN, and no gradient.
_UNDERFLOW = "every sample's predicted probability of its class underflowed to 0"
#: PyTorch's ``nn.BCELoss`` clamps each log at -100: the mean over elements is exactly 100 only where
#: every element's sigmoid output has saturated at the wrong end (0 for a target of 1, 1 for 0)
_BCE_SATURATED = ("every element's sigmoid output saturated at the wrong end (0 where its target is 1, or 1 "
                  "where it is 0)")
_BCE_CLAMP = 100.0
#: (value, what it is, what it means, which losses can hold it: "any"; "perplexity", only a loss read
#: from a perplexity; "bce", a loss that never went above the clamp, a mean of clamped terms cannot)
_CLAMPED_LOSSES = ((87.3365, "-ln(FLT_MIN), Caffe's floor for a probability", _UNDERFLOW, "any"),
                   (16.1181, "-ln(1e-7), Keras' epsilon", _UNDERFLOW, "any"),
                   # OpenNMT-py reports exp(min(loss, 100)) as its perplexity: its log at 100 is a loss of 100 or more
                   (100.0, "the log of OpenNMT's perplexity cap exp(100)",
                    "the loss is 100 nats a token or more, where chance is ln(vocabulary), about 10", "perplexity"),
                   (_BCE_CLAMP, "PyTorch BCELoss's clamp of each log at -100", _BCE_SATURATED, "bce"))
_CLAMPED_RUN = 2  # points in a row at the clamp, to the end (a value no healthy loss lands on twice)
_CLAMP_ATOL = 5e-4  # a clamp's value as a log prints it (4 decimals)


def _pinned_at(s: Series, value: float) -> int:
    """How many of ``s``'s last points sit at ``value`` (as printed), one after another to its end."""
    at = np.isclose(s.values, value, rtol=0, atol=_CLAMP_ATOL)
    return len(at) if at.all() else int(np.argmax(~at[::-1]))


def _can_hold(s: Series, value: float, kind: str) -> bool:
    """Whether ``s`` is a loss that a clamp of ``kind`` (:data:`_CLAMPED_LOSSES`) can pin at ``value``."""
    from_perplexity = s.name.startswith("ln(")  # (derive.add_loss_from_perplexity names its loss ln(<perplexity>))
    if kind == "perplexity":
        return from_perplexity
    if kind != "bce":
        return True
    v = s.values[np.isfinite(s.values)]
    # a mean of terms each clamped at 100 is never above it (a sum-reduced or perplexity-like loss
    # falling through 100 is), and a loss printed in whole numbers is at 100 by its rounding
    return (not from_perplexity and float(np.max(v)) <= value + _CLAMP_ATOL
            and not (np.all(v == np.round(v)) and not np.all(v == value)))


def _clamped_loss(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A loss pinned, to the end, at the value a probability clamp gives (:data:`_CLAMPED_LOSSES`);
    a GAN's discriminator loss at BCELoss's clamp with its generator's at exactly 0 (or at the
    clamp too): :func:`_saturated_gan`."""
    if (gan := _saturated_gan(run, t)):
        return gan
    for s in run.series:
        if s.role not in ("loss", "val_loss") or len(s) < _CLAMPED_RUN:
            continue
        for value, what, meaning, kind in _CLAMPED_LOSSES:
            k = _pinned_at(s, value)
            if k < _CLAMPED_RUN or not _can_hold(s, value, kind):
                continue
            first = float(s.steps[len(s) - k])
            return [finding(
                "nonfinite", "error",
                f"{s.name} is pinned at {value:g} = {what} from {s.where(first)}: {meaning}",
                "A cross-entropy on probabilities clamps them away from 0 before the log; a loss sitting exactly at "
                "that clamp on every batch means the softmax (or sigmoid) gives each sample's class a probability "
                "below it: the logits have blown up (to overflow, or past it), the clamp passes no gradient, and the "
                "run is as good as NaN. It usually follows a learning rate too high for the network or an "
                "unnormalised input.",
                {"metric": s.name, "steps": [_num(first), _num(s.steps[-1])], "value": value, "points": k},
                [clipping(run, t), lower_lr(run, at_step=first, why="the logits overflowed")])]
    return []


def _saturated_gan(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A GAN whose discriminator loss is pinned at its last :data:`_CLAMPED_RUN` or more points at
    BCELoss's clamp, 100, while its generator's loss is exactly 0 there (or at the clamp too): one of
    D's terms is at the clamp, every one of its outputs saturated the wrong way; with the generator's
    loss at 0, D scores every generated sample real with certainty (the DCGAN tutorial's ``Loss_D:
    100.0000 Loss_G: 0.0000 D(x): 1.0000 D(G(z)): 1.0000``). The sigmoids are saturated, no gradient
    moves either network, and the game is over for good."""
    if run.first("loss") is not None:
        return []
    for d, g in players(run):
        k = _pinned_at(d, _BCE_CLAMP)
        if k < _CLAMPED_RUN:
            continue
        first, last = float(d.steps[len(d) - k]), float(d.steps[-1])
        at = (g.steps >= first) & (g.steps <= last)
        n = int(at.sum())
        if n < _CLAMPED_RUN or (_pinned_at(g, 0.0) < n and _pinned_at(g, _BCE_CLAMP) < n):
            continue
        g_at = float(g.values[-1])
        how = ("exactly 0: D scores every generated sample real with certainty (D(G(z)) = 1), so the generator "
               "has nothing left to learn from it" if abs(g_at) <= _CLAMP_ATOL else
               f"at {_BCE_CLAMP:g} too: D's outputs are saturated on both real and generated samples")
        return [finding(
            "nonfinite", "error",
            f"the GAN's discriminator is saturated: {d.name} is pinned at {_BCE_CLAMP:g} = PyTorch BCELoss's clamp of "
            f"each log at -100 from {d.where(first)} to its end, while {g.name} is {how}",
            "PyTorch's BCELoss clamps log(p) at -100, so its mean is exactly 100 only where every sigmoid output "
            "sits at the wrong end (1 for a target of 0, or 0 for 1). A discriminator loss held there is a "
            "discriminator whose outputs have saturated: the sigmoid passes no gradient back, neither network "
            "learns any more, and the run has failed as surely as one gone NaN. It follows a discriminator and "
            "generator out of balance (a learning rate too high, no normalisation in D): lower the learning "
            "rates, use BCEWithLogitsLoss on D's logits, label smoothing or instance noise, or restart from an "
            "earlier checkpoint.",
            {"metric": d.name, "steps": [_num(first), _num(last)], "value": _BCE_CLAMP, "points": k,
             "generator": g.name, "generator_final": g_at},
            # the rates, plural: which network overshot, the log does not tell once both are saturated
            [lower_lr(run, at_step=first, why="the GAN's discriminator saturated", network="both",
                      series={"discriminator": d.name, "generator": g.name})])]
    return []


#: The Keras clamp's cost of a wrong sample, and how close loss / (1 - accuracy) must stay to it
_KERAS_CLAMP = 16.1181
_CLAMP_MATCH = 0.003
_CLAMP_POINTS = 5


def _clamped_share(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A loss equal to the clamp's cost times the share of samples wrong, at every point: each
    prediction is 0 or 1 (its logits overflowed), the right ones cost 0 and each wrong one -ln(1e-7)
    (ls20, a Keras CNN: loss 8.9545 at accuracy 0.4444, 9.3127 at 0.4222, 16.118 x (1 - acc)).
    Saturated outputs pass no gradient: the accuracy wanders and nothing is learnt."""
    train_acc, val_acc = accuracies(run)
    for loss, acc in ((run.first("loss"), train_acc), (run.first("val_loss"), val_acc)):
        if loss is None or acc is None:
            continue
        ls, lv = finite(loss)
        as_, av = finite(acc)
        common, il, ia = np.intersect1d(ls, as_, return_indices=True)
        a = as_fraction(av[ia])
        keep = a < 0.99
        if int(keep.sum()) < _CLAMP_POINTS:
            continue
        ratio = lv[il][keep] / (1 - a[keep])
        if not bool(np.all(np.abs(ratio / _KERAS_CLAMP - 1) < _CLAMP_MATCH)):
            continue
        return [finding(
            "nonfinite", "error",
            f"{loss.name} is {_KERAS_CLAMP:g} x (1 - {acc.name}) at all {int(keep.sum())} points "
            f"({loss.between(common[0], common[-1])}): every prediction is 0 or 1, each wrong one costing "
            "-ln(1e-7), Keras' clamp",
            "A cross-entropy on probabilities clamps them at 1e-7; a loss that is exactly that clamp's cost times "
            "the share of samples wrong means every output is saturated at 0 or 1: the logits have blown up, the "
            "saturated outputs pass no gradient, and the accuracy only wanders. It follows a learning rate too "
            "high, unnormalised inputs, or a sigmoid/softmax output fed values far too large.",
            {"metric": loss.name, "steps": [_num(common[0]), _num(common[-1])], "value": _KERAS_CLAMP,
             "points": int(keep.sum()), "accuracy_metric": acc.name},
            [clipping(run, t), lower_lr(run, at_step=float(common[0]), why="the outputs saturated at the clamp")])]
    return []


def _reported_nonfinite(run: RunLog, t: LogThresholds) -> list[Finding]:
    """The framework's own report that the loss or a gradient went NaN/Inf (TerminateOnNaN,
    CheckNumerics, detectron2's FloatingPointError...) where no logged value shows it: training
    stops there, before the NaN reaches a line of values."""
    event = next((w for w in run.warnings if w.code == "nonfinite_event"), None)
    if event is None:
        return _scaler_gave_up(run, t)
    return [finding(
        "nonfinite", "error",
        f"the log reports a NaN/Inf: {event.message}",
        "The framework detected a NaN or Inf in the loss or the gradients and said so (often stopping the run) "
        "before any logged value showed it: values overflowed or an operation was undefined.",
        {"metric": None, "steps": None, "value": None, "where": event.where, "message": event.message},
        [clipping(run, t), lower_lr(run, why="the run reported NaN/Inf")])]


_LOSS_SCALE = re.compile(r"(?:^|[/_.-])(?:loss|grad|amp)[_-]?scale$", re.IGNORECASE)
#: A dynamic loss scale this small has halved at every step for a long time: fp16's scaler starts
#: at 2^16 and its floors are 1e-4 (fairseq, which then stops) or 1 (apex, torch.amp).
_SCALE_FLOOR = 1e-3
#: fairseq's default --min-loss-scale, where it stops ("Minimum loss scale reached")
_FAIRSEQ_MIN = 1e-4
#: DeepSpeed's and apex's floor (min_loss_scale 1)
_SCALE_MIN = 1.0
#: A scale halved at each of its last this many reports, down to _SCALE_LOW or less, is on its way
_HALVINGS = 4
_SCALE_LOW = 16.0


def _halving_run(v: np.ndarray) -> int:
    """How many of the last reports each halved (or more) the scale before them."""
    k = 0
    while k + 1 < len(v) and v[-1 - k] <= v[-2 - k] / 2:
        k += 1
    return k


def _scaler_gave_up(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A mixed-precision loss scale that has fallen to (about) 0: the scaler halves it at each step
    whose gradients overflow, so every step for a long while overflowed (fairseq's ``loss_scale
    0.000`` before its "Minimum loss scale reached")."""
    scale = next((s for s in run.series if _LOSS_SCALE.search(s.name)), None)
    if scale is None:
        return []
    steps, v = finite(scale)
    if not len(v):
        return []
    last = float(v[-1])
    k = _halving_run(v)
    if _SCALE_FLOOR < last <= _SCALE_LOW and k >= _HALVINGS:
        # halved at every report down to a few units: DeepSpeed and apex stop at 1 (DeepSpeed then
        # exits: "Current loss scale already at minimum"). A scale that merely sits at 1 is not
        # this: Megatron prints "loss scale: 1" for bf16 and fp32 runs, which need none.
        at_floor = last <= _SCALE_MIN
        return [finding(
            "nonfinite", "error" if at_floor else "warning",
            f"{scale.name} fell to {last:g} (step {_num(steps[-1])}): "
            + ("the mixed-precision loss scaler's floor: every step overflows" if at_floor else
               f"halved at each of the last {k} reports, each a step skipped for overflowing"),
            "A dynamic loss scale (fp16) starts at 2^16 and halves each time the gradients overflow to Inf/NaN, "
            "skipping that step; it only grows back after many clean steps. Halving report after report down to a "
            "few units means nearly every step overflows even at a tiny scale: the loss or the gradients themselves "
            "are exploding (bf16, which needs no scaler, or a lower learning rate and clipping avoid it).",
            {"metric": scale.name, "steps": [_num(steps[-1 - k] if k < len(steps) else steps[0]), _num(steps[-1])],
             "value": last, "threshold": _SCALE_MIN if at_floor else _SCALE_LOW},
            [clipping(run, t), lower_lr(run, why="the loss scale fell at every report")])]
    if not 0 <= last <= _SCALE_FLOOR:
        return []
    if last == 0:
        # a scaler only halves its scale, never to 0: a 0 is a scale below the log's printed digits
        # (fairseq prints 3 decimals: 0.000488 is "loss_scale 0"), not a scale of 0 (logsweep98 #2)
        fell = "printed as 0, below the log's printed precision (a scaler halves its scale, never to 0)"
    else:
        fell = f"fell to {last:.3g}"
    # fairseq stops at --min-loss-scale (1e-4) with "Minimum loss scale reached" (then the log's
    # report is the finding): a floor is only named where the scale is at or below it
    floor = ", at or below 1e-4, fairseq's floor (--min-loss-scale)" if 0 < last <= _FAIRSEQ_MIN else ""
    return [finding(
        "nonfinite", "error",
        f"{scale.name} {fell} (step {_num(steps[-1])}): the mixed-precision loss scaler "
        f"halved it at every step whose gradients overflowed{floor}",
        "A dynamic loss scale starts at 2^16 and halves each time the gradients overflow to Inf/NaN; one near 0 "
        "means they overflowed on step after step, even at a tiny scale: the loss or the gradients themselves "
        "are exploding, and the steps are being skipped.",
        {"metric": scale.name, "steps": [_num(steps[-1]), _num(steps[-1])], "value": last,
         "threshold": _SCALE_FLOOR, **({"below_printed_precision": True} if last == 0 else {})},
        [clipping(run, t), lower_lr(run, why="every step overflowed")])]


def _where(hits: list[tuple[float, Series, int]], *, to_last_bad: bool = False) -> dict:
    """The evidence of non-finite values: (first step, series, count) per series, first step first.
    Its ``steps`` run from the first NaN/Inf to the series' last point (from there on updates are
    NaN/Inf), or, ``to_last_bad``, to the last NaN/Inf (isolated steps a run came back from: the
    span of those steps, not of the run, logsweep93)."""
    if to_last_bad:
        end = max(float(h[1].steps[~np.isfinite(h[1].values)][-1]) for h in hits)
    else:
        end = max(float(h[1].steps[-1]) for h in hits)
    return {"metric": hits[0][1].name, "steps": [_num(hits[0][0]), _num(end)],
            "metrics": [h[1].name for h in hits], "counts": {h[1].name: h[2] for h in hits}, "value": None}


#: At most this fraction of a gradient norm's points may be NaN/Inf for them to read as a loss
#: scaler's skipped steps (it halves its scale at each and is back within a few steps).
_SKIP_FRACTION = 0.05
#: ... or this many in all: the scaler starts at 2^16 and halves at each overflow, so a short run
#: can log several skips while it finds its scale.
_SKIPS_AT_START = 5


#: The first word of an evaluated quantity's name (``val/box_loss``, ``eval_loss``, ``test-loss``)
_EVALUATION_WORDS = frozenset({"val", "vali", "valid", "validation", "eval", "evaluation", "test", "dev"})


def _evaluated(s: Series) -> bool:
    """Whether ``s`` is computed in evaluation (no update follows from it): a validation loss, or a
    series named for a validation, evaluation or test set."""
    words = name_words(s.name)
    return s.role == "val_loss" or bool(words and words[0].lower() in _EVALUATION_WORDS)


def _evaluation_only(run: RunLog, hits: list[tuple[float, Series, int]]) -> Finding | None:
    """A warning for NaN/Inf confined to evaluated series that later evaluations recovered from,
    while the training loss is finite at every logged point (logsweep67 u05, a YOLOv5 run: val
    box and objectness losses NaN at epoch 1 only, mAP@0.5 0.86 at the end). Evaluation does not
    update the weights, so the NaN did not spread into them: the training went on; but that
    evaluation's numbers are void (a best checkpoint chosen on them is not), and the model's
    outputs overflowed or a metric divided by zero on it. None where any hit is a trained
    quantity or the training loss is missing or not finite throughout. An evaluated series that
    ends non-finite (NaN from its first evaluation on, beside a training loss finite at every point:
    newuser14 #6) is a warning too, naming the evaluation, not the learning rate, where the training
    loss is logged after its first NaN evaluation: training went on finite with those weights, so the
    evaluation's data, an empty evaluation set or its precision made the NaN. A NaN only at or after
    the training loss's last point may be the last update's: None."""
    loss = run.first("loss")
    if loss is None or not len(loss) or not np.all(np.isfinite(loss.values)):
        return None
    if not all(_evaluated(s) for _, s, _ in hits):
        return None
    series = list(dict.fromkeys(h[1].name for h in hits))
    bad_steps = sorted({float(x) for _, s, _ in hits for x in s.steps[~np.isfinite(s.values)]})
    if not all(np.isfinite(s.values[-1]) for _, s, _ in hits):
        # the training loss finite at a later step shows the weights were finite at that evaluation;
        # an evaluation NaN only at the run's last step may be the weights' (its last update broke them)
        if bad_steps[0] >= float(loss.steps[-1]):
            return None
        if any(_PERPLEXITY.search(s.name) for _, s, _ in hits):
            return None  # exp(loss) past the float range: a loss over 709 nats a token, no evaluation fault
        return _evaluation_finding(loss, hits, series, bad_steps, recovered=False)
    return _evaluation_finding(loss, hits, series, bad_steps, recovered=True)


#: A perplexity's name: exp of a loss, Inf wherever the loss passes 709 nats a token (a finite loss).
_PERPLEXITY = re.compile(r"perplex|ppl", re.IGNORECASE)

#: Why an evaluation's NaN/Inf is not training's, and what made it: where later evaluations are finite
#: again, and where they are not (the training loss logged finite after it)
_EVALUATION_WHY = {
    True: ("Evaluation does not update the weights, so a NaN there did not spread into training, which went on "
           "finite; but that evaluation's numbers are void (a best checkpoint or an early stop chosen on them is "
           "not), and on those inputs the model's outputs or the loss were not finite: evaluation in half "
           "precision (autocast, .half()) overflowing where training ran in fp32 or with a loss scaler, an empty "
           "validation batch or a box/target count of 0 averaged over, or a metric dividing by zero. Evaluate in "
           "fp32 (or bf16) and guard the loss's and the metrics' denominators."),
    False: ("Evaluation does not update the weights, and the training loss computed with the same weights stayed "
            "finite, so the weights are finite: the NaN is made by the evaluation itself. The usual causes are "
            "NaN/Inf in the evaluation data (a missing value read as NaN, a feature scaled by a zero range), an "
            "empty evaluation set or a batch with no targets averaged over (0 / 0), or evaluation in half "
            "precision overflowing where training ran in fp32. A lower learning rate or clipping cannot change "
            "it; every choice made on the evaluation (a best checkpoint, an early stop, a schedule on plateau) is "
            "void."),
}


def _evaluation_finding(loss: Series, hits: list[tuple[float, Series, int]], series: list[str],
                        bad_steps: list[float], *, recovered: bool) -> Finding:
    """The warning of :func:`_evaluation_only`: evaluated series NaN/Inf at ``bad_steps`` beside a
    training loss finite at every point, ``recovered`` where every one is finite again at its end,
    else NaN/Inf to its last evaluation (then the evaluation's data is checked too)."""
    first = hits[0][1]
    if recovered:
        at = (first.where(bad_steps[0]) if len(bad_steps) == 1 else f"{len(bad_steps)} evaluations, first at "
              f"{first.where(bad_steps[0])}, last at {first.where(bad_steps[-1])}")
        verdict = " and every later evaluation is finite again"
    else:
        evaluations = len(first)
        at = (f"every one of its {evaluations} evaluations" if int(np.sum(~np.isfinite(first.values))) == evaluations
              else f"{len(bad_steps)} evaluations from {first.where(bad_steps[0])} to its last")
        verdict = ": the evaluation breaks, not the training"
    guard = R.domain_guard("the evaluation loss's average", "the evaluation loop",
                           "loss = loss_sum / max(n_targets, 1)  # and evaluate in fp32: model.float()",
                           "an empty batch or no targets gives 0 / 0")
    return finding(
        "nonfinite", "warning",
        f"NaN/Inf in evaluation only: {', '.join(series[:4])}{' ...' if len(series) > 4 else ''} at {at}, while "
        f"{loss.name} is finite at all {len(loss)} logged points{verdict}",
        _EVALUATION_WHY[recovered],
        {**_where(hits), "evaluation_only": True, "recovered": recovered,
         "nonfinite_steps": [_num(x) for x in bad_steps[:50]], "train_metric": loss.name},
        [guard] if recovered else [R.check_evaluation_data(first.name, str(_num(bad_steps[0]))), guard])


def _first_kind(s: Series) -> str:
    """``NaN`` or ``Inf``: what ``s``'s first non-finite point is."""
    return "NaN" if np.isnan(s.values[np.argmax(~np.isfinite(s.values))]) else "Inf"


def _evaluation_without_training(run: RunLog, hits: list[tuple[float, Series, int]]) -> Finding:
    """NaN/Inf in evaluated series of a log that holds no training loss and no gradient norm (a
    validation writer's file alone): an error, as a void evaluation is, but not said to be the
    updates': the training loss is what tells a diverged run from an evaluation that breaks alone,
    and the finding says where the format keeps it."""
    step, first, _ = hits[0]
    kind = _first_kind(first)
    series = list(dict.fromkeys(h[1].name for h in hits))
    return finding(
        "nonfinite", "error",
        f"{kind} first appears in {first_few(series, 4)} at {first.where(step)}, an evaluation; the log holds no "
        "training loss or gradient norm, so whether the training diverged or the evaluation alone breaks "
        "cannot be told",
        "An evaluation's NaN/Inf comes from weights the updates overflowed (the training loss is then NaN "
        "too) or from the evaluation alone (NaN/Inf in its data, an empty evaluation set averaged over, "
        f"evaluation in half precision). Only the training loss tells which. {log_the_loss(run)}",
        {**_where(hits), "evaluation_only": True, "training_logged": False},
        [R.check_evaluation_data(first.name, str(_num(step)), training_seen=False),
         lower_lr(run, at_step=step, why="NaN/Inf appeared, if in training too")])


def _skipped_by_the_scaler(run: RunLog, hits: list[tuple[float, Series, int]]) -> bool:
    """Whether the non-finite points are a mixed-precision loss scaler's skipped steps: only in
    gradient norms, a few of each series, none at its end, and the loss finite throughout."""
    loss = run.first("loss")
    if loss is None or not len(loss) or not np.all(np.isfinite(loss.values)):
        return False
    for _, s, count in hits:
        if s.role not in ("grad_norm", "clipped_grad_norm", "layer_grad_norm"):
            return False
        if not np.isfinite(s.values[-1]) or count > max(_SKIP_FRACTION * len(s), _SKIPS_AT_START):
            return False
    return True




def best_so_far(name: str) -> bool:
    """Whether ``name`` is a best-so-far record: ``best`` as one of its words, whatever the
    separator or case (``best_loss``, ``val/best_acc``, ``BestAvg``, ``best avg``, ``best-reward``)."""
    return "best" in name_words(name)


def _initial_best(s: Series, bad: np.ndarray) -> bool:
    """Whether the non-finite points of ``s`` (``bad``) are a best-so-far's starting value only:
    every one +-inf and before its first finite point (logsweep59: a DDPG console's ``BestAvg: -inf``
    before its first 100-episode window, then -102.4 on). NaN, or an inf after a finite value, is
    no initial value."""
    if not best_so_far(s.name) and not record_name(s.name):
        return False  # (also a min-so-far: ``min_val_loss``, ``lowest_loss``, inf until the first value)
    where = np.nonzero(bad)[0]
    good = np.nonzero(~bad)[0]
    return (bool(np.all(np.isinf(s.values[bad]))) and len(good) > 0
            and int(where[-1]) < int(good[0]))


def _trained_quantity(s: Series) -> bool:
    """Whether a NaN/Inf in ``s`` means the training computation broke (loss, gradients, weights);
    a best-so-far record (``best_train_loss``, ``BestAvg``: inf until there is one) does not."""
    if best_so_far(s.name):
        return False
    return (s.role not in ("metric", "learning_rate") or bool(TRAINED_NAME.search(s.name))
            or gan_part(s.name) is not None)


def _nonfinite_finals(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A run summary (final values only) whose loss or gradient norm ended NaN/Inf: no history says
    when it broke, but a run that ends non-finite learnt nothing from then on."""
    bad = [s for s in final_series(run) if not np.isfinite(s.values[0]) and _trained_quantity(s)]
    if not bad:
        return []
    at = float(bad[0].steps[0])
    names = ", ".join(f"{s.name} = {float(s.values[0])}" for s in bad[:6]) + (" ..." if len(bad) > 6 else "")
    return [finding(
        "nonfinite", "error",
        f"the run ended non-finite: its summary's final values {names}",
        "A loss or gradient norm that is NaN/Inf at the end of a run overflowed or hit an undefined operation "
        "somewhere before; every update after that is NaN/Inf. The summary cannot say when: check the run's "
        "history (export it as CSV or JSON Lines) for the first non-finite step.",
        {"metric": bad[0].name, "steps": [_num(at)], "metrics": [s.name for s in bad], "value": None,
         "final_values": {s.name: str(float(s.values[0])) for s in bad[:50]}},
        [clipping(run, t), lower_lr(run, why="the run ended NaN/Inf")])]


def _undefined_metrics(run: RunLog, notes: list[tuple[float, Series, int]]) -> list[Finding]:
    """A note for evaluation metrics that are NaN/Inf while the loss and gradients are finite: a
    metric with nothing to measure (COCO's AP for small objects on a set without any is NaN). With
    no loss or gradient norm logged to show training finite, a warning: the metrics may be NaN
    because the network's outputs are (darknet's region stats ``Avg IOU: nan, Obj: nan``)."""
    if not notes:
        return []
    notes.sort(key=lambda h: h[0])
    names = f"{', '.join(h[1].name for h in notes[:5])}{' ...' if len(notes) > 5 else ''}"
    if not any(s.role in ("loss", "val_loss", "grad_norm", "clipped_grad_norm", "layer_grad_norm")
               for s in run.series):
        return [finding(
            "nonfinite", "warning",
            f"{names}: NaN/Inf from "
            f"{notes[0][1].where(notes[0][0])}, and no loss or gradient norm is logged to show training finite",
            "Metrics computed from the network's outputs (an IoU, an objectness, a class score) turn NaN when those "
            "outputs do; with no loss or gradient norm in the log there is nothing to tell that from a metric that "
            "is merely undefined (nothing to measure). Log the loss to know.",
            _where(notes), [])]
    return [finding(
        "nonfinite", "info",
        f"{names}: NaN/Inf from step "
        f"{_num(notes[0][0])}, while the losses and gradients stay finite",
        "An evaluation metric that is undefined (nothing to measure, a division by zero in the metric) is "
        "not a training failure; the loss and the gradients, which training computes, are finite.",
        _where(notes), [])]
