"""Series -> findings over time, in the same vocabulary as the architecture check.

One detector per finding code, registered on its code's rule (``@detects(code)``). Every finding's
evidence carries ``metric`` (the series as the log names it), ``steps`` (``[first, last]`` in the
log's own step unit) and ``layers`` where layers are involved, plus the key numbers. Remedies take
their parameters from the data (:mod:`gradhealth.logs.remedies`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding, Remedy
from gradhealth.core.rules import Detector, detects, rule, rules
from gradhealth.logs.remedies import clipping, learning_rate_at, lower_lr, matching_init, raise_lr
from gradhealth.logs.series import RunLog, Series, gan_part
from gradhealth.logs.stats import (
    centred_median,
    early_baseline,
    finite,
    natural_key,
    resolution,
    rolling_median_mad,
    smooth,
    theil_sen,
)
from gradhealth.logs.stats import num as _num
from gradhealth.logs.stats import span as _span
from gradhealth.logs.thresholds import LogThresholds


def _finding(code: str, severity: str, summary: str, explanation: str, evidence: dict,
             remedies: list[Remedy | None]) -> Finding:
    return rule(code).finding(severity, summary, explanation, evidence, remedies)


# --- detectors ---------------------------------------------------------------------------------


@detects("nonfinite")
def nonfinite(run: RunLog, t: LogThresholds) -> list[Finding]:
    hits: list[tuple[float, Series, int]] = []
    notes: list[tuple[float, Series, int]] = []
    for s in run.series:
        if s.role == "update_ratio":
            continue  # ||dW|| / ||W|| over weights of norm 0 (a bias at init) is inf or NaN: no overflow
        bad = ~np.isfinite(s.values)
        if bad.any():
            i = int(np.argmax(bad))
            (hits if _trained_quantity(s) else notes).append((float(s.steps[i]), s, int(bad.sum())))
    stand_ins = [(h, other) for h in hits if (other := _finite_twin(run, h[1])) is not None]
    if stand_ins and len(stand_ins) == len(hits):
        (_, s, n), other = stand_ins[0]
        return [_finding(
            "nonfinite", "info",
            f"{s.name} is NaN/Inf at every one of its {n} point(s) while {other.name} is finite at the same "
            "steps: a progress bar's placeholder for a loss it was not given, not the loss being trained",
            "A loss that is never a number from its first point, beside another loss finite at every one of "
            "the same steps, is not a run that overflowed (its updates would make every loss NaN): Lightning's "
            "bar shows loss=nan when the step returns its loss under another name.",
            _where([h for h, _ in stand_ins]), [])]
    if not hits:
        return (_reported_nonfinite(run, t) or _clamped_loss(run, t) or _clamped_share(run, t)
                or _undefined_metrics(run, notes))
    hits.sort(key=lambda h: h[0])
    if _skipped_by_the_scaler(run, hits):
        return [_finding(
            "nonfinite", "info",
            f"{', '.join(dict.fromkeys(h[1].name for h in hits))}: NaN/Inf at {sum(h[2] for h in hits)} isolated "
            f"step(s) (first at {hits[0][1].where(hits[0][0])}) while the loss stays finite and the norm comes back: "
            "steps a mixed-precision loss scaler skipped",
            "fp16 training's loss scaler skips a step whose gradients overflowed and lowers its scale; the "
            "Trainer logs that step's norm as NaN or Inf. Occasional skips are how the scaler works.",
            _where(hits), [])]
    step, first, _ = hits[0]
    layers = sorted({h[1].layer for h in hits if h[1].layer})
    kind = "NaN" if np.isnan(first.values[np.argmax(~np.isfinite(first.values))]) else "Inf"
    note = ""
    loss = run.first("loss")
    if first.role == "grad_norm" and loss is not None and np.all(np.isfinite(loss.values)):
        note = " (the loss stayed finite: some trainers replace a NaN loss with a running average)"
    return [_finding(
        "nonfinite", "error",
        f"{kind} first appears in {first.name} at {first.where(step)}{note}",
        "Values overflowed or an operation was undefined; from here on updates are NaN/Inf.",
        {**_where(hits), "layers": layers or None},
        [clipping(run, t), lower_lr(run, at_step=step, why="NaN/Inf appeared")])]


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
#: value -> (what it is, what it means, whether only a loss read from a perplexity can hold it)
_CLAMPED_LOSSES = {87.3365: ("-ln(FLT_MIN), Caffe's floor for a probability", _UNDERFLOW, False),
                   16.1181: ("-ln(1e-7), Keras' epsilon", _UNDERFLOW, False),
                   # OpenNMT-py reports exp(min(loss, 100)) as its perplexity: its log at 100 is a loss of 100 or more
                   100.0: ("the log of OpenNMT's perplexity cap exp(100)",
                           "the loss is 100 nats a token or more, where chance is ln(vocabulary), about 10", True)}
_CLAMPED_RUN = 2  # points in a row at the clamp, to the end (a value no healthy loss lands on twice)


def _clamped_loss(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A loss pinned, to the end, at the value a probability clamp gives (:data:`_CLAMPED_LOSSES`)."""
    for s in run.series:
        if s.role not in ("loss", "val_loss") or len(s) < _CLAMPED_RUN:
            continue
        v = s.values
        for value, (what, meaning, perplexity_only) in _CLAMPED_LOSSES.items():
            if perplexity_only and not s.name.startswith("ln("):
                continue  # (derive.add_loss_from_perplexity names its loss ln(<perplexity>))
            at = np.isclose(v, value, rtol=0, atol=5e-4)
            k = len(v) if at.all() else int(np.argmax(~at[::-1]))  # the run of clamped values at the end
            if k < _CLAMPED_RUN:
                continue
            first = float(s.steps[len(v) - k])
            return [_finding(
                "nonfinite", "error",
                f"{s.name} is pinned at {value:g} = {what} from {s.where(first)}: {meaning}",
                "A cross-entropy on probabilities clamps them away from 0 before the log; a loss sitting exactly at "
                "that clamp on every batch means the softmax gives each sample's class a probability below it: the "
                "logits have blown up (to overflow, or past it), the clamp passes no gradient, and the run is as "
                "good as NaN. It usually follows a learning rate too high for the network or an unnormalised input.",
                {"metric": s.name, "steps": [_num(first), _num(s.steps[-1])], "value": value, "points": k},
                [clipping(run, t), lower_lr(run, at_step=first, why="the logits overflowed")])]
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
        a = _as_fraction(av[ia])
        keep = a < 0.99
        if int(keep.sum()) < _CLAMP_POINTS:
            continue
        ratio = lv[il][keep] / (1 - a[keep])
        if not bool(np.all(np.abs(ratio / _KERAS_CLAMP - 1) < _CLAMP_MATCH)):
            continue
        return [_finding(
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
    return [_finding(
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
        return [_finding(
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
    return [_finding(
        "nonfinite", "error",
        f"{scale.name} fell to {float(v[-1]):.3g} (step {_num(steps[-1])}): the mixed-precision loss scaler "
        "halved it at every step whose gradients overflowed, down to its floor",
        "A dynamic loss scale starts at 2^16 and halves each time the gradients overflow to Inf/NaN; one near 0 "
        "means they overflowed on step after step, even at a tiny scale: the loss or the gradients themselves "
        "are exploding, and the steps are being skipped.",
        {"metric": scale.name, "steps": [_num(steps[-1]), _num(steps[-1])], "value": float(v[-1]),
         "threshold": _SCALE_FLOOR},
        [clipping(run, t), lower_lr(run, why="every step overflowed")])]


def _where(hits: list[tuple[float, Series, int]]) -> dict:
    """The evidence of non-finite values: (first step, series, count) per series, first step first."""
    return {"metric": hits[0][1].name, "steps": [_num(hits[0][0]), _num(max(float(h[1].steps[-1]) for h in hits))],
            "metrics": [h[1].name for h in hits], "counts": {h[1].name: h[2] for h in hits}, "value": None}


#: At most this fraction of a gradient norm's points may be NaN/Inf for them to read as a loss
#: scaler's skipped steps (it halves its scale at each and is back within a few steps).
_SKIP_FRACTION = 0.05
#: ... or this many in all: the scaler starts at 2^16 and halves at each overflow, so a short run
#: can log several skips while it finds its scale.
_SKIPS_AT_START = 5


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


#: A metric named for a loss or a norm (YOLO's train/box_loss, detectron2's loss_cls) is part of
#: what training computes; accuracy, AP or a learning rate is not. A perplexity is exp of a loss: Inf
#: only where the loss per token passed 709 nats (OpenNMT-tf at a rate of 1.2: "perplexity = inf").
_TRAINED_NAME = re.compile(r"loss|norm|grad|perplexity|(?<![a-z])ppl", re.IGNORECASE)


def _trained_quantity(s: Series) -> bool:
    """Whether a NaN/Inf in ``s`` means the training computation broke (loss, gradients, weights);
    a best-so-far record (``best_train_loss``: inf until there is one) does not."""
    if s.name.lower().startswith(("best_", "best/")):
        return False
    return (s.role not in ("metric", "learning_rate") or bool(_TRAINED_NAME.search(s.name))
            or gan_part(s.name) is not None)


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
        return [_finding(
            "nonfinite", "warning",
            f"{names}: NaN/Inf from "
            f"{notes[0][1].where(notes[0][0])}, and no loss or gradient norm is logged to show training finite",
            "Metrics computed from the network's outputs (an IoU, an objectness, a class score) turn NaN when those "
            "outputs do; with no loss or gradient norm in the log there is nothing to tell that from a metric that "
            "is merely undefined (nothing to measure). Log the loss to know.",
            _where(notes), [])]
    return [_finding(
        "nonfinite", "info",
        f"{names}: NaN/Inf from step "
        f"{_num(notes[0][0])}, while the losses and gradients stay finite",
        "An evaluation metric that is undefined (nothing to measure, a division by zero in the metric) is "
        "not a training failure; the loss and the gradients, which training computes, are finite.",
        _where(notes), [])]


def _judged(run: RunLog, role: str, t: LogThresholds) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The run's main series of ``role`` with its finite points, when it has enough to judge."""
    s = run.first(role)  # type: ignore[arg-type]  # callers pass Role literals typed as str
    if s is None:
        return None
    steps, v = finite(s)
    return (s, steps, v) if len(v) >= t.min_points else None


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
    g = float(np.median(rate))
    if not g > 1e-6 or np.mean(np.abs(rate - g) <= 0.05 * g) < 0.8 or v[-1] / v[0] < 2:
        return None
    return {"gamma": math.exp(min(g, _MAX_EXP)), "first": float(v[0]), "last": float(v[-1]),
            "steps": [_num(steps[0]), _num(steps[-1])]}


#: A range test sweeps the rate over this many decades at least, from a rate this small or smaller
_SWEEP_DECADES = 4.0
_SWEEP_START = 1e-5


def _range_test(run: RunLog, loss: Series) -> dict | None:
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


def _schedule_remedy(run: RunLog, growth: dict, at_step: float) -> Remedy:
    """lower_learning_rate that names the schedule: the fix is the growing schedule, not one rate."""
    fix = lower_lr(run, at_step=at_step, why=(
        f"the schedule multiplies the learning rate by {growth['gamma']:.4g} every step (gamma > 1): "
        "use gamma <= 1, or a constant or decaying schedule"))
    fix.params.update({"schedule": "exponential", "gamma": growth["gamma"]})
    return fix


def _lr_note(growth: dict | None) -> str:
    return ("" if growth is None else
            f"; the learning rate grows by a constant x{growth['gamma']:.4g} per step ({growth['first']:.3g} "
            f"to {growth['last']:.3g}), a schedule with gamma > 1")


def _exploding_tail(s: Series, steps: np.ndarray, v: np.ndarray, base: float, t: LogThresholds
                    ) -> tuple[int, bool]:
    """How many last finite points of a norm grew far above its baseline and never came back (0 when
    none), and whether the series then turned non-finite: at least ``explode_min_points`` of them, or
    fewer that climb straight into Inf/NaN (a fast blow-up leaves only a few finite points)."""
    high = v > t.explode_warning * base
    tail = len(high) if high.all() else int(np.argmax(~high[::-1]))
    after = s.values[s.steps > steps[-1]] if len(steps) else s.values[:0]
    into_inf = bool(len(after)) and not np.all(np.isfinite(after))
    if tail >= t.explode_min_points or (into_inf and tail >= 2 and bool(np.all(np.diff(v[-tail:]) > 0))):
        return tail, into_inf
    return 0, into_inf


@detects("exploding_gradient")
def exploding(run: RunLog, t: LogThresholds) -> list[Finding]:
    return _exploding_total(run, t) or _exploding_layers(run, t)


def _exploding_total(run: RunLog, t: LogThresholds) -> list[Finding]:
    """The total gradient norm growing over training (or already astronomical, or jumping)."""
    found = _judged(run, "grad_norm", t)
    if found is None:
        return _astronomical(run, t) or _jump(run, t)
    s, steps, v = found
    base = early_baseline(v, t.baseline_fraction)
    if not base > 0:
        return []
    late = float(np.median(v[-max(3, len(v) // 4):]))
    ratio = late / base
    tail, into_inf = _exploding_tail(s, steps, v, base, t)
    sustained = tail > 0
    # Sustained growth the run never came back from: the last finite points all far above the
    # baseline (a long healthy run that explodes in its last few dozen steps, often into Inf,
    # has a healthy last-quarter median). Isolated spikes come back; these do not.
    if sustained:
        ratio = max(ratio, float(np.median(v[-tail:])) / base)
    severity = "error" if ratio >= t.explode_error else "warning" if ratio >= t.explode_warning else None
    if severity != "error":
        # a norm beyond any healthy network's is an error whatever its baseline: a run already
        # blown up at its first logged step (3.8e12 growing to 1.4e14) has a baseline that hides it
        astronomical = _astronomical(run, t)
        if astronomical or severity is None:
            return astronomical
    if sustained:
        onset = steps[len(v) - tail]
        peak = float(np.max(v[-tail:]))
        ends = " and then became non-finite" if into_inf else ""
        summary = (f"{s.name} grew steadily from {s.where(onset)}: {peak / base:.3g}x its early baseline "
                   f"{base:.3g} over {tail} logged points{ends}")
    else:
        above = np.nonzero(v > t.explode_warning * base)[0]
        onset = steps[above[0]] if len(above) else steps[-1]
        peak = float(np.max(v))
        summary = (f"{s.name} grew {ratio:.3g}x over its early baseline {base:.3g} (last quarter median "
                   f"{late:.3g}), from {s.where(onset)}")
    # the learning rate usually started growing before the norm crossed the line
    growth = lr_growth(run, since=float(steps[max(0, len(v) - tail - max(tail, 10))] if sustained else onset),
                       until=float(steps[-1]))
    remedies: list[Remedy | None] = [clipping(run, t), lower_lr(run, at_step=float(onset),
                                                                why="gradient norm exploding"),
                                     R.weight_decay()]
    if growth is not None:
        remedies = [_schedule_remedy(run, growth, float(onset)), clipping(run, t), R.weight_decay()]
    return [_finding(
        "exploding_gradient", severity, summary + _lr_note(growth),
        "The gradient norm keeps growing instead of settling: an unstable learning rate or a per-layer gain "
        "above 1 compounding through training.",
        {"metric": s.name, "steps": [_num(onset), _num(steps[-1])], "value": ratio, "threshold": t.explode_warning,
         "baseline": base, "late_median": late, "peak": peak, "sustained_points": int(tail),
         "learning_rate_growth": growth},
        remedies)]


#: A total gradient norm this many times the one logged before it, and at least this large
#: (:func:`_jump`): no healthy step does that, however short the log.
_NORM_JUMP = 1e5
_NORM_JUMP_AT_LEAST = 1e5


def _jump(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A total gradient norm that jumped by orders of magnitude from one logged step to the next,
    on a log too short for the baseline checks (an mmdet paste of two lines: 3.46, then 3.1e7
    with the loss 1.5 -> 63): an error when the loss jumped with it, else a warning."""
    s = run.first("grad_norm")
    if s is None:
        return []
    steps, v = finite(s)
    if len(v) < 2 or np.any(v[:-1] <= 0):
        return []
    ratios = v[1:] / v[:-1]
    hits = np.nonzero((ratios >= _NORM_JUMP) & (v[1:] >= _NORM_JUMP_AT_LEAST))[0]
    if not len(hits):
        return []
    i = int(hits[0]) + 1
    before, after, at = float(v[i - 1]), float(v[i]), float(steps[i])
    loss = run.first("loss")
    with_loss = ""
    if loss is not None:
        ls, lv = finite(loss)
        now, prev = lv[ls == at], lv[ls < at]
        if len(now) and len(prev) and prev[-1] > 0 and now[0] >= 10 * prev[-1]:
            with_loss = f"; {loss.name} jumped with it, {float(prev[-1]):.3g} -> {float(now[0]):.3g}"
    return [_finding(
        "exploding_gradient", "error" if with_loss else "warning",
        f"{s.name} jumped {after / before:.3g}x from one logged point to the next, {before:.3g} -> {after:.3g} at "
        f"{s.where(at)}{with_loss}",
        "A gradient norm that grows by orders of magnitude between two logged steps has blown up: one update "
        "at that size throws the weights far from where they were (a learning rate too large, an unnormalised "
        "input or target, a missing normalisation, or mixed precision overflowing).",
        {"metric": s.name, "steps": [_num(steps[i - 1]), _num(at)], "value": after / before,
         "threshold": _NORM_JUMP, "before": before, "peak": float(np.max(v)), "points": len(v)},
        [clipping(run, t), lower_lr(run, at_step=at, why="the gradient norm jumped by orders of magnitude")])]


def _astronomical(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A total gradient norm beyond any healthy network's at some step, on however few points: no
    baseline needed to call 3.8e12 exploded (an mmdet run pasted with two lines of log had it)."""
    s = run.first("grad_norm")
    if s is None:
        return []
    steps, v = finite(s)
    over = np.nonzero(v >= t.explode_absolute)[0]
    if not len(over):
        return []
    i = int(over[0])
    peak = float(np.max(v))
    return [_finding(
        "exploding_gradient", "error",
        f"{s.name} reached {v[i]:.3g} at {s.where(steps[i])} (largest {peak:.3g}); a healthy network's total "
        f"gradient norm is around 0.1-100",
        "A gradient norm this large means the weights, the activations or the loss have already blown up (a "
        "learning rate far too large, an unnormalised input or target, a missing normalisation): the next update "
        "throws the weights far from where they were.",
        {"metric": s.name, "steps": [_num(steps[i]), _num(steps[-1])], "value": peak, "threshold": t.explode_absolute,
         "peak": peak, "points": len(v)},
        [clipping(run, t), lower_lr(run, at_step=float(steps[i]), why="the gradient norm is astronomical")])]


def _level_spikes(steps: np.ndarray, v: np.ndarray, t: LogThresholds
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spikes of a loss: points far above both their neighbours (the run came back) and their recent
    past (not a fast early descent), in log units against the run's own noise.

    A fixed 'x times the median' misses an LLM's spikes (5.5 against 3.2 is only 1.7x, yet dozens of
    standard deviations of its per-step noise) and the same rule works on a per-epoch validation loss,
    with the window shrunk to what a short series has."""
    if len(v) == 0 or np.mean(v <= 0) > 0.05:
        # An objective that sits at 0 or changes sign (RL) has no scale for 'x times its level'.
        empty = np.array([], dtype=np.int64)
        return steps[:0], v[:0], v[:0], np.zeros(0, dtype=bool), empty
    keep = v > 0
    steps, v = steps[keep], v[keep]
    half = max(2, min(t.window // 2, len(v) // 6))
    lv = np.log(v)
    around = centred_median(lv, half)
    past, _ = rolling_median_mad(lv, max(3, half))
    # A value rounded when it was logged could be up to half a step lower, its level half a step
    # higher: only what stands out under that reading is a spike.
    q = resolution(v) / 2
    resid = np.log(np.maximum(v - q, 1e-300)) - np.log(np.exp(around) + q) if q else lv - around
    ok = np.isfinite(resid)
    sigma = 1.4826 * float(np.median(np.abs(resid[ok]))) if ok.any() else 0.0
    cut = max(math.log(t.loss_spike_min_ratio), t.loss_spike_sigmas * sigma)
    # The last points have no future to show the run came back: a rising end must clear twice the cut.
    need = np.full(len(v), cut)
    need[-max(1, half // 2):] = 2 * cut
    with np.errstate(invalid="ignore"):
        spike = (resid > need) & (lv - past > need)
    return steps, v, np.exp(around), spike, np.nonzero(spike)[0]


def _spikes(s: Series, t: LogThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    steps, v = finite(s)
    if s.role in ("loss", "val_loss"):
        return _level_spikes(steps, v, t)
    if s.role == "grad_norm" and len(v) >= t.min_points:
        base = early_baseline(v, t.baseline_fraction)
        tail = _exploding_tail(s, steps, v, base, t)[0] if base > 0 else 0
        if tail:  # the growth the run never came back from is exploding_gradient's, not spikes
            steps, v = steps[:-tail], v[:-tail]
    if s.role == "grad_norm":
        # A step with exactly zero gradient made no update (e.g. RL batches without reward variance):
        # it is not part of the baseline a spike stands out from.
        steps, v = steps[v != 0], v[v != 0]
    med, mad = rolling_median_mad(v, t.window)
    with np.errstate(invalid="ignore"):
        # Only against a positive baseline: next to a run of exact zeros a ratio means nothing.
        spike = (med > 0) & (v > t.spike_factor * med) & (v - med > 6 * 1.4826 * np.maximum(mad, 1e-12 * med))
    return steps, v, med, spike, np.nonzero(spike)[0]


#: On a grad norm too short for a rolling baseline, a point this many times the median of the
#: others is a spike on its face (an excerpt pasted into a bug report: 11140 among norms of 8).
_GLARING = 50.0


def _glaring_spikes(run: RunLog, s: Series, t: LogThresholds) -> list[Finding]:
    """Spikes of a short grad-norm series (at least 6 points), judged against the median of all of
    them: only points :data:`_GLARING` times above it."""
    steps, v = finite(s)
    if len(v) < 6:
        return []
    base = float(np.median(v))
    if not base > 0:
        return []
    idx = np.nonzero(v >= _GLARING * base)[0]
    if not len(idx):
        return []
    worst = int(idx[np.argmax(v[idx])])
    recovered = bool(idx[-1] < len(v) - 1 and np.median(v[idx[-1] + 1:]) < 2 * base)
    return [_finding(
        "gradient_spike", "warning",
        f"{len(idx)} gradient norm spike(s) in {s.name}, the largest {v[worst]:.3g} at {s.where(steps[worst])} "
        f"({v[worst] / base:.3g}x the median of its {len(v)} points); "
        + ("the run recovered after each" if recovered else "the run did not recover from every one"),
        "A gradient norm tens of times its usual size on one step: a bad batch or an instability. Clipping "
        "at a few times the usual norm keeps such a step from throwing the weights away.",
        {"metric": s.name, "steps": [_num(x) for x in steps[idx]], "value": float(v[worst]), "count": len(idx),
         "spike_steps": [_num(x) for x in steps[idx]], "max_ratio": float(v[worst] / base), "recovered": recovered,
         "points": len(v)},
        [clipping(run, t), lower_lr(run, at_step=float(steps[idx[0]]), why="gradient norm spikes")])]


def _new_level(run: RunLog, steps: np.ndarray, v: np.ndarray, med: np.ndarray, i: int, t: LogThresholds) -> bool:
    """Whether grad norm point ``i`` starts a level the rest of the run keeps while the training loss
    falls from there on: a norm that grows early in training and then holds (a detector's 20 -> 130 in
    its first 150 of 1,500 steps) is the landscape sharpening, not a spike that failed to recover.
    The level is kept when the median after ``i`` is within 2x of the point either way, or when it is
    at least twice the level before (``med``, the rolling median at ``i``) and the point would be no
    spike against it: an LSTM leaving its ln 2 plateau (livesweep: norms 0.2 -> 1.1 for good, with
    2.4-2.7 on the way) overshoots the level it moves to."""
    after = v[i + 1:]
    if len(after) < max(3, t.min_points // 2):
        return False
    level = float(np.median(after))
    if not (0.5 * v[i] <= level <= 2 * v[i] or (level >= 2 * med[i] and v[i] <= t.spike_factor * level)):
        return False
    loss = run.first("loss")
    if loss is None:
        return False
    ls, lv = finite(loss)
    at, later = lv[ls <= steps[i]], lv[ls > steps[i]]
    return len(at) > 0 and len(later) >= 3 and float(np.median(later[-3:])) < float(at[-1])


def _recovered(v: np.ndarray, med: np.ndarray, i: int, window: int) -> bool:
    after = v[i + 1:i + 1 + window]
    return len(after) > 0 and bool(np.median(after) < 2 * med[i])


#: The largest exponent math.exp takes (e^709 is near the largest float): a log-loss trend times a
#: span of steps past it is a rise beyond any float, not an OverflowError
_MAX_EXP = 700.0


#: A run whose last points are within this factor of its lowest ended at its floor
_FLOOR_END = 2.0


@detects("gradient_spike")
def spikes(run: RunLog, t: LogThresholds, role: str = "grad_norm") -> list[Finding]:
    s = run.first(role)  # type: ignore[arg-type]  # callers pass Role literals typed as str
    # A loss is judged against its neighbours, so a per-epoch series of a dozen points will do.
    needed = max(t.min_points, t.window) if role == "grad_norm" else max(t.min_points, 6)
    if s is None:
        return []
    if np.sum(np.isfinite(s.values)) < needed:
        return (_glaring_spikes(run, s, t) or _short_spike(s, "gradient_spike")) if role == "grad_norm" \
            else _short_spike(s, "loss_spike")
    steps, v, med, spike, idx = _spikes(s, t)
    if role == "grad_norm":
        idx = np.array([i for i in idx if not _new_level(run, steps, v, med, int(i), t)], dtype=np.int64)
    if len(idx) == 0:
        return []
    recovered = [_recovered(v, med, i, t.window) for i in idx]
    worst = idx[int(np.argmax(v[idx]))]  # the largest spike: the one the summary and `value` name
    fraction = len(idx) / len(v)
    all_recovered = all(recovered)
    # Frequent is a fraction of the run, but two recovered bumps of 1.5x in a short run are not
    # yet a pattern: a warning needs three, or one at least twice its level. Spikes on consecutive
    # points are one event (detectron2's 20-iteration medians carry one bad stretch over several).
    episodes = 1 + int(np.sum(np.diff(idx) > 1))
    frequent = episodes / len(v) > t.spike_warning_fraction and (
        episodes >= 3 or float(np.max(v[idx] / np.maximum(med[idx], 1e-300))) >= 2.0)
    severity = "warning" if (frequent or not all_recovered) else "info"
    if role == "grad_norm" and _severe_episodes(idx, v / np.maximum(med, 1e-300)) >= 3:
        # a pattern of steps whose gradient is more than an order of magnitude above the run's:
        # however rare among the logged points (a run logged at every step has many to be rare
        # among; the same run logged every 10th step would be "frequent"), the run keeps taking
        # steps that size. One such spike that recovered stays a note.
        severity = "warning"
    start = float(np.median(v[:3]))
    above_start = (role != "grad_norm" and start > 0 and float(np.max(v[idx])) >= _ABOVE_START * start
                   and float(np.max(v[idx] / np.maximum(med[idx], 1e-300))) >= _SEVERE_GRAD_SPIKE)
    if above_start:
        # one step that threw the loss an order of magnitude above where the untrained network began
        # (a PINN's 0.05 -> 126, logsweep39): the step undid the training, however fast it came back
        severity = "warning"
    if (role != "grad_norm" and all_recovered and float(np.max(v[idx])) < float(v[0])
            and float(np.median(v[-3:])) <= _FLOOR_END * float(np.min(v))):
        # bumps of a loss fitted near 0 (a validation loss at 1e-3 jumping to 0.2, ls22): huge against
        # its rolling median, yet below where the run started, each gone again, and the run ending at
        # its lowest: a note
        severity = "info"
    if role != "grad_norm" and _on_rollouts(run):
        # an agent's value loss regresses onto the returns its last rollout held: one with a rare large
        # episode reward (SB3 PPO, episodes of one step paying +-100) jumps and falls back with it. A
        # loss that blows up is loss_divergence's or nonfinite's; its spikes are a note
        severity = "info"
    code = "gradient_spike" if role == "grad_norm" else "loss_spike"
    what = {"grad_norm": "gradient norm", "val_loss": "validation loss"}.get(role, "loss")
    remedies: list[Remedy | None] = [clipping(run, t)] if role == "grad_norm" else [clipping(run, t)]
    first_step = float(steps[idx[0]])
    early = first_step <= steps[0] + 0.1 * (steps[-1] - steps[0])
    remedies.append(lower_lr(run, at_step=first_step,
                             warmup_steps=int(2 * (first_step - steps[0])) if early and first_step > steps[0] else 0,
                             why=f"{what} spikes"))
    return [_finding(
        code, severity,
        f"{len(idx)} {what} spike(s) in {s.name}, the largest {v[worst]:.3g} at {s.where(steps[worst])} "
        f"({v[worst] / med[worst]:.3g}x its rolling median); "
        + (f"{v[worst] / start:.3g}x where the run started; " if above_start else "")
        + ("the run recovered after each" if all_recovered else "the run did not recover from every one"),
        f"Isolated {what} values far above the recent median: a bad batch, a too-large step or an "
        "instability that " + ("settled again." if all_recovered else "did not settle."),
        # Separate events: the steps of each spike (not a span), the largest in `value`, their count.
        {"metric": s.name, "steps": [_num(x) for x in steps[idx][:50]], "value": float(v[worst]),
         "count": len(idx), "episodes": episodes, "spike_steps": [_num(x) for x in steps[idx][:50]],
         "max_ratio": float(np.max(v[idx] / med[idx])),
         "fraction_of_steps": fraction, "recovered": all_recovered},
        remedies)]


#: Gradient norm spikes this many times their rolling median, three or more of them, are a warning
#: however rare among the logged points.
_SEVERE_GRAD_SPIKE = 20.0
#: A loss spike this many times the run's starting level (and _SEVERE_GRAD_SPIKE times its rolling
#: median) is a warning even alone and recovered.
_ABOVE_START = 10.0


def _severe_episodes(idx: np.ndarray, ratio: np.ndarray) -> int:
    """How many spike episodes (runs of consecutive spike points ``idx``) peak at
    :data:`_SEVERE_GRAD_SPIKE` or more times their rolling median (``ratio`` per point)."""
    if len(idx) == 0:
        return 0
    episodes = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
    return sum(float(np.max(ratio[e])) >= _SEVERE_GRAD_SPIKE for e in episodes)

#: On a loss too short for the rolling statistics, a point this many times both its neighbours and
#: the median of the other points is a spike anyway (a note).
_SHORT_SPIKE = 4.0


def _short_spike(s: Series, code: str) -> list[Finding]:
    """A note for one value far above everything around it in an excerpt too short for the rolling
    statistics: a loss (LLaVA #918: 0.66, 0.80, 4.27, 0.77, 0.56, 0.82) at least ``_SHORT_SPIKE``
    times both its neighbours and the median of the others; a gradient norm (unsloth #5207: 14.98,
    9.78, 7.64, 92.10, 29.00, 5.21, 7.83, 7.79), whose step after a spike is often still raised
    (Adam's moments), ``_SHORT_SPIKE`` times the others' median and twice its neighbours; either
    back down after it."""
    steps, v = finite(s)
    if len(v) < 4 or np.any(v <= 0):
        return []
    beside = _SHORT_SPIKE if code == "loss_spike" else 2.0
    what = "loss" if code == "loss_spike" else "gradient norm"
    for i in range(1, len(v) - 1):
        rest = np.delete(v, i)
        if v[i] >= beside * max(v[i - 1], v[i + 1]) and v[i] >= _SHORT_SPIKE * float(np.median(rest)):
            ratio = float(v[i] / np.median(rest))
            return [_finding(
                code, "info",
                f"{s.name} spiked to {v[i]:.3g} at {s.where(steps[i])}, {ratio:.3g}x the median of the other "
                f"{len(rest)} points, and came back to {v[i + 1]:.3g}",
                f"One {what} value far above the others that the next step leaves again: a bad batch (mislabelled, "
                "extreme or corrupt examples), or a step too large for that batch. A single one in a short excerpt "
                "is a note: if it repeats, look at the batches at those steps, clip the gradient or lower the rate.",
                {"metric": s.name, "steps": [_num(steps[i])], "value": float(v[i]), "count": 1,
                 "spike_steps": [_num(steps[i])], "max_ratio": ratio, "recovered": True, "points": int(len(v))},
                [])]
    return []


@detects("loss_spike")
def loss_spikes(run: RunLog, t: LogThresholds) -> list[Finding]:
    return spikes(run, t, role="loss") + spikes(run, t, role="val_loss")


def _depth_order(layers: list[Series]) -> list[Series]:
    """Layers in depth order. A log that wrote them in plain alphabetical order (Lightning's CSVLogger
    sorts its columns: ``layers.10`` before ``layers.2``) kept no order of its own, so the numbers in
    the names decide; any other order is the log's, i.e. the model's, and is kept."""
    names = [s.layer or s.name for s in layers]
    if names == sorted(names) and sorted(names, key=natural_key) != names:
        return sorted(layers, key=lambda s: natural_key(s.layer or s.name))
    return layers


def _first_and_last_layer(run: RunLog) -> tuple[Series, Series, float, float] | None:
    """The first and the last layer in depth order (weights rather than biases, where the names say)
    with their median gradient norms over the run; None without two layers of 3 finite points."""
    layers = [s for s in run.by_role("layer_grad_norm") if np.sum(np.isfinite(s.values)) >= 3]
    weights = _depth_order([s for s in layers if "weight" in (s.layer or s.name)] or layers)
    if len(weights) < 2:
        return None
    first, last = weights[0], weights[-1]
    return first, last, float(np.median(finite(first)[1])), float(np.median(finite(last)[1]))


def _exploding_layers(run: RunLog, t: LogThresholds) -> list[Finding]:
    """The first layer's gradient many decades above the last one's throughout the run: the growth
    with depth that exploding gradients are, read from per-layer norms (the mirror of
    :func:`vanishing`'s test, at the same number of decades)."""
    pair = _first_and_last_layer(run)
    if pair is None:
        return []
    first, last, a, b = pair
    if not (b > 0 and a > 0 and b / a < t.vanishing_layer_ratio):
        return []
    ratio = a / b
    steps = np.concatenate([first.steps, last.steps])
    return [_finding(
        "exploding_gradient", "error" if b / a < t.vanishing_layer_ratio**2 else "warning",
        f"{first.layer or first.name} gets {ratio:.3g}x more gradient than {last.layer or last.name} "
        f"(median {a:.3g} vs {b:.3g})",
        "The gradient grows on its way back to the first layers (a per-layer gain above 1: weights too large "
        "for the activation, unnormalised residual sums), so the first layers take the largest steps and "
        "become unstable first.",
        {"metric": first.name, "steps": [_num(steps.min()), _num(steps.max())], "value": ratio,
         "threshold": 1 / t.vanishing_layer_ratio, "layers": [first.layer or first.name, last.layer or last.name],
         "first_layer_median": a, "last_layer_median": b},
        [clipping(run, t), matching_init(run, "the hidden layers"),
         R.normalisation("layernorm", "each hidden layer")])]


@detects("vanishing_gradient")
def vanishing(run: RunLog, t: LogThresholds) -> list[Finding]:
    found: list[Finding] = []
    pair = _first_and_last_layer(run)
    if pair is not None:
        first, last, a, b = pair
        if b > 0 and a >= 0 and a / b < t.vanishing_layer_ratio and a > 0:
            ratio = a / b
            steps = np.concatenate([first.steps, last.steps])
            found.append(_finding(
                "vanishing_gradient", "error" if ratio < t.vanishing_layer_ratio**2 else "warning",
                f"{first.layer or first.name} gets {1 / ratio:.3g}x less gradient than {last.layer or last.name} "
                f"(median {a:.3g} vs {b:.3g})",
                "The gradient shrinks on its way back to the first layers, so they barely learn (saturating "
                "activations, small init or depth without skips/normalisation).",
                {"metric": first.name, "steps": [_num(steps.min()), _num(steps.max())], "value": ratio,
                 "threshold": t.vanishing_layer_ratio, "layers": [first.layer or first.name, last.layer or last.name],
                 "first_layer_median": a, "last_layer_median": b},
                [R.relu_family_activation("the hidden layers"),
                 matching_init(run, "the hidden layers"),
                 R.normalisation("batchnorm", "each hidden layer"),
                 R.residual_connections("the deep part of the network")]))
    s = run.first("grad_norm")
    loss = run.first("loss")
    if s is not None and loss is not None and not found:
        steps, v = finite(s)
        _, lv = finite(loss)
        if len(v) >= t.min_points and len(lv) >= t.min_points:
            base = early_baseline(v, t.baseline_fraction)
            late = float(np.median(v[-max(3, len(v) // 4):]))
            sl = smooth(lv, 9)
            stalled = (sl[len(sl) // 2] - sl[-1]) / max(abs(sl[len(sl) // 2]), 1e-12) < t.plateau_improvement
            # (a late median of exactly 0 is steps without any gradient: zero_gradient's to report)
            if base > 0 and 0 < late / base < t.vanishing_decay and stalled:
                found.append(_finding(
                    "vanishing_gradient", "warning",
                    f"{s.name} decayed {base / late:.3g}x (to {late:.3g}) while the loss stalled",
                    "Gradients decaying towards zero while the loss no longer improves: the network stopped learning.",
                    {"metric": s.name, "steps": _span(steps), "value": late / base, "threshold": t.vanishing_decay,
                     "baseline": base, "late_median": late},
                    [R.relu_family_activation("the hidden layers"),
                     R.normalisation("batchnorm", "each hidden layer")]))
    return found


@detects("dead_layer")
def dead_layers(run: RunLog, t: LogThresholds) -> list[Finding]:
    dead = []
    for s in run.by_role("layer_grad_norm"):
        _, v = finite(s)
        if len(v) >= 3:
            zero = v == 0.0
            # dead from some point on, for at least half the run
            tail = len(zero) - int(np.argmax(~zero[::-1])) if not zero.all() else 0
            if zero.all() or (tail and zero[tail:].all() and len(zero) - tail >= len(zero) // 2):
                first_zero = int(np.argmax(zero)) if not zero.all() else 0
                dead.append((s, first_zero))
    if not dead:
        return []
    names = [s.layer or s.name for s, _ in dead]
    s0, i0 = dead[0]
    return [_finding(
        "dead_layer", "warning" if len(dead) < len(run.by_role("layer_grad_norm")) else "error",
        f"{len(dead)} layer(s) get exactly zero gradient: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""),
        "A layer whose gradient is exactly zero does not learn: dead ReLUs, a detached branch, frozen or "
        "unused parameters.",
        {"metric": s0.name, "steps": [_num(s0.steps[i0]), _num(s0.steps[-1])], "layers": names,
         "value": float(len(dead))},
        [R.relu_family_activation("the dead layers", "leaky_relu"),
         R.init("kaiming_normal", "the dead layers"),
         lower_lr(run, at_step=float(s0.steps[i0]), why="units died")])]


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
    found = _judged(run, "grad_norm", t)
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
        name, matched = spread
        most = fraction >= t.zero_gradient_rl_warning
        return [_finding(
            "zero_gradient", "warning" if most else "info",
            f"{s.name} is exactly 0 on {len(idx)} of {len(v)} logged points ({fraction:.0%}), each a step where "
            f"{name} was 0: every completion in the group scored the same",
            "Group-relative advantages (GRPO, RLOO) are each reward less its group's mean, so a group whose "
            "completions all got the same reward gives no gradient at all. "
            + (f"On {fraction:.0%} of the steps here nothing is learned: the prompts are too hard or too easy for "
               "the model, or the reward cannot tell completions apart. " if most else "")
            + "More completions per prompt, a reward with partial credit, or prompts of mixed difficulty give "
              "the groups a spread.",
            {**evidence, "explained_by": name, "explained_steps": matched}, [])]
    return [_finding(
        "zero_gradient", "warning",
        f"{s.name} is exactly 0 on {len(idx)} of {len(v)} logged points ({fraction:.0%}), first at "
        f"{s.where(steps[idx[0]])}",
        "A step with an exactly zero gradient makes no update: the loss did not depend on the parameters for "
        "that batch (e.g. RL batches without reward variance, fully masked batches, or a detached graph).",
        evidence,
        [])]


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
    return _finding(
        "small_updates", "warning",
        f"{lr.name} is 0 at all {len(v)} logged points ({lr.between(steps[0], steps[-1])}): the optimizer "
        "changes nothing",
        "With a learning rate of 0 (or one below the printed precision) no step changes the weights, so "
        "whatever the loss shows is the data's noise: a schedule that decayed to 0 or has not started, a "
        "rate read from the wrong setting, or an optimizer built before the rate was set.",
        {"metric": lr.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
         "points": int(len(v))},
        [R.positive_learning_rate(0.0)])


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
    return [_finding(
        "zero_gradient", "error" if len(v) >= t.min_points else "warning",
        f"{s.name} is exactly 0 at every one of its {len(v)} logged points ({s.between(steps[0], steps[-1])})"
        + why,
        "A total gradient norm of exactly 0 means no step changed the model: the loss does not depend on the "
        "trained parameters (labels all masked, parameters frozen or not handed to the optimizer, a detached "
        "graph), so the run trains nothing whatever its schedule.",
        {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 1.0, "threshold": 1.0,
         "zero_steps": [_num(x) for x in steps[:50]], "loss_zero": zero_loss},
        [])]


#: A training loss that reaches exactly 0 from at least this far above it in one logged interval
#: was not learnt down to 0: it stopped measuring anything.
_ZERO_LOSS_FROM = 0.01


def _loss_pinned_at_zero(run: RunLog, t: LogThresholds) -> list[Finding]:
    """A supervised training loss exactly 0 at every logged point from some point on (at least
    ``_EXACT_MIN_POINTS`` and half of them), having got there in one step from ``_ZERO_LOSS_FROM``
    or more, or being 0 from the start: a loss of exactly 0 gives no gradient, so nothing trains
    (every label masked, no targets in the batch, a loss not connected to the output). A loss
    that glides down to 0 (a memorised set) is left alone, as are RL runs (a GRPO loss is 0 at its
    start by construction) and runs whose gradient norm is logged and not 0."""
    loss = run.first("loss")
    if loss is None or _on_rollouts(run) or any("reward" in x.name.lower() for x in run.series):
        return []
    norm = run.first("grad_norm")
    if norm is not None and (bool(np.any(finite(norm)[1] != 0)) or not np.all(np.isfinite(norm.values))):
        # a moving norm is a gradient; a NaN one is the nonfinite finding's, and the Trainer's
        # NaN filter logs the loss of such steps as 0.0
        return []
    steps, v = finite(loss)
    nonzero = np.nonzero(v != 0)[0]
    start = int(nonzero[-1]) + 1 if len(nonzero) else 0
    zeros = len(v) - start
    if zeros < _EXACT_MIN_POINTS or zeros < len(v) / 2 or (start > 0 and abs(v[start - 1]) < _ZERO_LOSS_FROM):
        return []
    came = f", down from {float(v[start - 1]):.4g} at the point before" if start else ""
    why = "; the learning rate is exactly 0 there too" if _zero_rate(run, float(steps[start]),
                                                                   float(steps[-1])) else ""
    return [_finding(
        "zero_gradient", "error" if zeros >= t.min_points else "warning",
        f"{loss.name} is exactly 0 at all {zeros} logged points ({loss.between(steps[start], steps[-1])}){came}: "
        f"a loss of 0 gives no gradient{why}",
        "A training loss of exactly 0 is no learning signal: its gradient is 0, so no step changes the model. "
        "A real loss gets there gradually, if ever; one that is 0 from the start, or drops to 0 at once, "
        "measures nothing: every label masked (-100, a completion-only collator that finds no response "
        "template), batches without targets, or a loss not connected to the model's output.",
        {"metric": loss.name, "steps": [_num(steps[start]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
         "zero_points": zeros, "before": float(v[start - 1]) if start else None},
        [])]


_REWARD_STD = re.compile(r"^(?:train[/_])?(?:reward_std|rewards?/std|reward/std)$", re.I)


def _no_reward_spread(run: RunLog, at: np.ndarray) -> tuple[str, int] | None:
    """The run's within-group reward spread series when it was exactly 0 for (nearly) every one of
    the steps ``at``: (its name, how many of them). Each step is matched with the last spread logged
    at or before it: a trainer that reuses one batch of completions for several updates
    (``num_iterations``) logs the rewards only on the step that generated them. None when the run
    logs no spread or it does not match."""
    for r in run.series:
        if not _REWARD_STD.match(r.name):
            continue
        rs, rv = finite(r)
        i = np.searchsorted(rs, at, side="right") - 1
        known = rv[i[i >= 0]]
        matched = int(np.sum(known == 0))
        if matched >= 0.9 * len(at):
            return r.name, matched
    return None


CLIP_KEYS = ("max_grad_norm", "clip_grad_norm", "gradient_clip_val", "clipnorm", "opt_clipnorm", "clip", "grad_clip",
             "max_norm", "clip_norm", "grad_clip_norm", "gradient_clip_norm", "grad_norm_clip", "gradient_clipping")


def clip_threshold(run: RunLog) -> float | None:
    """The clipping max_norm the run's params record, under any of the names tools use, also nested
    (``optimizer/max_norm``, ``args.max_grad_norm``). Lightning's ``gradient_clip_val`` with
    ``gradient_clip_algorithm=value`` clips values, not the norm, and does not count."""
    leaves: dict[str, str] = {}
    for key, given in run.params.items():
        leaves.setdefault(re.split(r"[/.]", key.lower())[-1], given)
    value_clip = str(leaves.get("gradient_clip_algorithm", "")).strip().lower() == "value"
    for key in CLIP_KEYS:
        if key == "gradient_clip_val" and value_clip:
            continue
        raw = run.params.get(key, leaves.get(key))
        try:
            value = float(raw) if raw is not None else math.nan
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


def pinned_maximum(v: np.ndarray, fraction: float) -> float | None:
    """The maximum of a norm series that sits at it (within 0.1 %) on at least ``fraction`` of the
    points: a clipped norm, whose maximum is the threshold. A free norm never repeats its maximum."""
    if len(v) < 3:
        return None
    top = float(np.max(v))
    if not top > 0 or np.mean(v >= top * (1 - 1e-3)) < fraction:
        return None
    return top


@detects("clipping_saturated")
def clipping_saturated(run: RunLog, t: LogThresholds) -> list[Finding]:
    limit, source = clip_threshold(run), "the run's params"
    found = _judged(run, "grad_norm", t) or _judged(run, "clipped_grad_norm", t)
    if found is None:
        return []
    s, steps, v = found
    if limit is None:
        # No recorded threshold: a clipped norm series (or a grad_norm logged after clipping) that
        # sits at its maximum on most steps tells it.
        clipped = _judged(run, "clipped_grad_norm", t) or found
        limit = pinned_maximum(clipped[2], t.clip_saturated_fraction)
        source = f"{clipped[0].name}, constant at its maximum"
        if limit is None:
            return []
    # At or above: a norm logged after clipping sits exactly at max_norm while clipping acts.
    frac = float(np.mean(v >= limit * (1 - 1e-3)))
    if frac < t.clip_saturated_fraction:
        return []
    factor = limit / float(np.median(v))
    pre = "pre-clip " if s.role == "grad_norm" and float(np.max(v)) > limit * (1 + 1e-3) else ""
    return [_finding(
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
            out.append((float(np.median(v)), s, steps))
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
    return [_finding(
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


@detects("small_updates")
def small_updates(run: RunLog, t: LogThresholds) -> list[Finding]:
    """Every logged weight series (or the total) with a typical update-to-weight ratio far below
    ~1e-3 per step: the rate is too small for the whole network, not one layer starved.

    Typical is the median over the logged steps (a warm-up's first steps and a schedule's last
    ones are a minority); a series that is exactly 0 throughout is a frozen or dead layer and left
    to the other rules."""
    medians = _update_medians(run, t)
    if not medians:
        frozen = _frozen_policy(run, t) or _rate_zero_throughout(run)
        return [frozen] if frozen else []
    best, s0, steps0 = max(medians, key=lambda m: m[0])
    if not best < t.small_update_warning:
        return []
    # to the floor target, or to the run's own threshold where it set one above it (1e-3, the
    # healthy level): either way above the ratio measured, so the rate goes up
    target = max(R.UPDATE_RATIO_FLOOR_TARGET, t.small_update_warning)
    factor = target / best
    at = float(steps0[len(steps0) // 2])
    names = [s.layer or s.name for _, s, _ in medians]
    return [_finding(
        "small_updates", "warning",
        f"median update-to-weight ratio per step at most {best:.3g} in all {len(medians)} logged "
        f"series, fastest {s0.layer or s0.name} (healthy is about 1e-3)",
        "Each optimizer step changes even the fastest-moving weights by a tiny fraction of their "
        "norm: the learning rate is too small for this network and optimizer, and training crawls.",
        {"metric": s0.name, "steps": [_num(float(steps0[0])), _num(float(steps0[-1]))], "layers": names,
         "value": best, "threshold": t.small_update_warning,
         "medians": {s.name: m for m, s, _ in medians}},
        [raise_lr(
            run, at_step=at, factor=factor,
            why=f"the fastest median update-to-weight ratio {best:.3g} x {factor:.3g} = "
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
        return _finding(
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


def _positive_loss(run: RunLog, t: LogThresholds) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The training loss when relative changes of it mean something: enough points, and positive
    (an RL objective that sits at 0 or changes sign has no scale to be relative to)."""
    found = _judged(run, "loss", t)
    if found is None or np.min(found[2]) < 0 or np.median(found[2]) <= 0:
        return None
    return found


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
    return 1.4826 * float(np.median(np.abs(v - sm)))


def _divergence_window(n: int) -> int:
    """The running-median window loss_divergence judges a loss of ``n`` points by."""
    return min(max(9, min(n // 25, 51)), max(3, n // 3))


#: A training loss this large has blown up whatever its history: float32's largest number is 3.4e38,
#: and no mean or sum over a batch of a sound loss comes near this (ls20: a pose loss at 3e31)
_ASTRONOMICAL_LOSS = 1e15


def _astronomical_loss(run: RunLog, t: LogThresholds) -> list[Finding]:
    loss = run.first("loss")
    if loss is None:
        return []
    steps, v = finite(loss)
    big = np.nonzero(np.abs(v) >= _ASTRONOMICAL_LOSS)[0]
    if len(big) == 0:
        return []
    i = int(big[0])
    return [_finding(
        "loss_divergence", "error",
        f"{loss.name} reaches {float(v[i]):.3g} ({loss.where(steps[i])}), and {len(big)} of its {len(v)} points are "
        f"{_ASTRONOMICAL_LOSS:.0e} or more",
        "A loss this large is no training progress to judge: the weights or activations have blown up (a "
        "learning rate far too large, exploding gradients with no clipping, or an input or target far out of "
        "scale), and float32 overflows to Inf a few orders of magnitude further.",
        {"metric": loss.name, "steps": [_num(steps[i]), _num(steps[-1])], "value": float(v[i]),
         "threshold": _ASTRONOMICAL_LOSS, "points": int(len(big))},
        [lower_lr(run, at_step=float(steps[i]), why="the loss blew up"), clipping(run, t)])]


@detects("loss_divergence")
def divergence(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _divergence(run, t)
    if found:
        return found
    positive = _positive_loss(run, t)
    return _never_back_to_start(*positive, run) if positive is not None else []


def _divergence(run: RunLog, t: LogThresholds) -> list[Finding]:
    huge = _astronomical_loss(run, t)
    if huge:
        return huge
    found = _positive_loss(run, t)
    if found is None:
        return (_unbounded_below(run, t) or _blown_up_short(run, t) or _worse_than_start(run, t)
                or [f for f in [_validation_alone(run, t, "loss_divergence")] if f is not None])
    loss, steps, v = found
    # a window of 9 flattens a short log (8 points by epoch) into its own median: a third of it. On
    # a long noisy log (per-batch losses) the lowest of hundreds of 9-point medians is a lucky
    # stretch, well under the level: there the window grows with the log (1/25 of it, at most 51)
    sm = smooth(v, _divergence_window(len(v)))
    i_min = int(np.argmin(sm))
    low, end = float(sm[i_min]), float(sm[-1])
    if low <= 0 and end <= 0:
        return []
    rollouts = _on_rollouts(run)
    if i_min >= len(sm) - 3:
        return [] if rollouts else _rescued(run, loss, steps, v, sm, t)
    rise = end / low if low > 0 else math.inf
    if rise < t.divergence_factor:
        if rollouts:
            return []
        return (_excursion(run, loss, steps, sm, t) or _lost_progress(run, loss, steps, v, sm, i_min, t)
                or _rescued(run, loss, steps, v, sm, t))
    if rollouts and rise < _BLOWN_UP:
        # an agent's value or TD loss regresses onto returns that grow as the policy improves (DQN's
        # TD loss rose 5x while its episode reward went 1.6 -> 18.9): a rise short of a blow-up is
        # the targets' scale, not a divergence
        return []
    # A loss that fell by orders of magnitude and creeps back by a small multiple of a tiny minimum
    # (a fine-tune at 0.03 ending at 0.07 after starting at 2.1) has regained a sliver of its fall:
    # noise at the floor, not a climb back up
    top = float(np.max(sm[:i_min + 1]))
    # (at any multiple, a climb of under 1% of the fall: a per-batch loss fitted to ~0, 4.5e-6 at its
    # lowest, that wanders to 0.009 after falling from 1.79, ls19's EEG run)
    regained = (end - low) / (top - low) if top > low else math.inf
    if (rise < _CREEP_RISE and regained < _CREEP_REGAINED) or regained < _FLOOR_REGAINED:
        return []
    # The lowest of many running medians of a noisy per-batch loss is a lucky stretch, a few of the
    # medians' own standard errors under the level: a climb back within that many of them
    # (:func:`_noise_bias`) is that bias (ls19: a fitted classifier's train_loss_step around 0.05, lowest median 0.0275)
    window = _divergence_window(len(v))
    if end - low < _noise_bias(len(v), window) * _point_noise(v, sm) / math.sqrt(window):
        return []
    onset_i = _sustained_onset(v, sm, i_min, low * (1 + (t.divergence_factor - 1) / 2))
    if onset_i is None:
        return []
    onset = float(steps[onset_i])
    held = _data_term_held(run, loss, steps, v, onset, end - low)
    if held is not None:
        term, lo, hi = held
        return [_finding(
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
    sweep = _range_test(run, loss)
    if sweep is not None:
        # a learning-rate range test (Smith 2017; torch-lr-finder, fastai's lr_find): the rate swept
        # up by decades from a tiny one over the whole log, the loss blowing up at its end by design
        return [_finding(
            "loss_divergence", "info",
            f"{loss.name} diverged as the learning rate swept from {sweep['first']:.3g} to {sweep['last']:.3g} "
            f"(x{sweep['gamma']:.4g} per step over the whole log): a learning-rate range test; its lowest "
            f"loss was at rate {learning_rate_at(run, float(steps[i_min])) or math.nan:.3g}",
            "A learning-rate range test raises the rate by a constant factor from a tiny value until the loss "
            "blows up; the blow-up is how it finds the usable rate (about a tenth of the rate at the loss's "
            "minimum). Not a training run to fix.",
            {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": rise,
             "threshold": t.divergence_factor, "learning_rate_growth": sweep}, [])]
    fix = (_schedule_remedy(run, growth, onset) if growth is not None else
           lower_lr(run, at_step=onset, why=f"the loss diverged from {loss.where(onset)}"))
    # the figures judged are running medians; the summary gives the logged values beside them
    i_low = int(np.argmin(v[:onset_i]))
    return [_finding(
        "loss_divergence", "error",
        f"{loss.name} rose {rise:.3g}x from its minimum {low:.3g} ({loss.where(steps[i_min])}) to {end:.3g} "
        f"(running medians of {window} points; logged: lowest {float(v[i_low]):.3g} at "
        f"{loss.where(steps[i_low])}, last {float(v[-1]):.3g})" + _lr_note(growth),
        "The loss climbs back up for good: the learning rate is too large for this stage of training, or an "
        "explosion is surfacing in the loss.",
        {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": rise,
         "threshold": t.divergence_factor, "minimum": low, "minimum_step": _num(steps[i_min]), "final": end,
         "window": window, "logged_minimum": float(v[i_low]), "logged_minimum_step": _num(steps[i_low]),
         "logged_final": float(v[-1]), "learning_rate_growth": growth},
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
    found = _judged(run, "loss", t)
    if found is None or _on_rollouts(run) or gan_part(found[0].name) is not None:
        return []
    loss, steps, v = found
    sm = smooth(v, _divergence_window(len(v)))
    first, last = float(sm[0]), float(sm[-1])
    if not (first < 0 and last < 0 and np.all(sm < 0)) or last / first < _RUNAWAY_BELOW:
        return []
    return [_finding(
        "loss_divergence", "error",
        f"{loss.name} falls without a floor: from {float(v[0]):.3g} ({loss.where(steps[0])}) to {float(v[-1]):.3g} "
        f"({loss.where(steps[-1])}), {last / first:.3g}x its size below 0 (running medians of "
        f"{_divergence_window(len(v))} points)",
        "A loss bounded below (a cross-entropy, a squared error, the likelihood of discrete labels) cannot fall "
        "by orders of magnitude below 0; one that does minimises something with no lower bound: targets outside "
        "the loss's range (binary cross-entropy of labels other than 0 and 1), a sign error, negative sample "
        "weights, or a continuous likelihood whose variance collapses. Training on it moves the weights without "
        "limit and fits nothing.",
        {"metric": loss.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": last / first,
         "threshold": _RUNAWAY_BELOW, "first": first, "final": last},
        [])]


#: A loss whose every point after its first is this many times the first or more never came back
#: from a blow-up at its first update (:func:`_never_back_to_start`)
_NEVER_BACK = 3.0


def _never_back_to_start(loss: Series, steps: np.ndarray, v: np.ndarray, run: RunLog) -> list[Finding]:
    """A loss that jumped from its first logged point and never came within 3x of it again (7.12, then
    198, then 65-143 for 44 points): the first update blew the model up; the running medians, which
    judge the rest, smooth the one point before the jump away (logsweep31). Not an agent's objective."""
    if len(v) < 8 or not v[0] > 0 or _on_rollouts(run):
        return []
    later = float(np.min(v[1:]))
    if later < _NEVER_BACK * float(v[0]):
        return []
    i_top = 1 + int(np.argmax(v[1:4]))
    return [_finding(
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
                or _VALIDATION.search(s.name):
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
_LOST_RISE = 1.15
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
    if (not low > 0 or end < _LOST_RISE * low or (not never_fell and top - low < _LOST_NOISES * noise)
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
    return [_finding(
        "loss_divergence", "warning", summary,
        "The loss gave back a large part of what training had gained and did not come down again: the "
        "learning rate is too large for this stage of training (a loss on a log scale, as cross-entropy in "
        "nats, rises by a small factor for a large loss of progress).",
        {"metric": loss.name, "steps": [_num(onset), _num(steps[-1])], "value": end / low,
         "threshold": _LOST_RISE, "minimum": low, "minimum_step": _num(steps[i_min]), "final": end,
         "start": top, "share_undone": share, "steps_undone": undone, "window": _divergence_window(len(v))},
        [lower_lr(run, at_step=onset, why=f"the loss climbed back from {loss.where(onset)}"), clipping(run, t)])]


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
    if sm[p] < _LOST_RISE * floor[p]:
        return []
    back = np.nonzero(sm[p:] < _LOST_RISE * floor[p])[0]
    if not len(back) or p + int(back[0]) >= len(sm) - 3:
        return []  # held to the end: the run's end is judged as it is
    j = p + int(back[0]) - 1  # the last point before it came down
    i_min = int(np.argmin(sm[:j + 1]))
    held = int(np.sum(sm[i_min:j + 1] >= _LOST_RISE * sm[i_min]))
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
    first = i_min + int(np.nonzero(sm[i_min:j + 1] >= _LOST_RISE * low)[0][0])
    summary = (f"{loss.name} climbed from {low:.3g} ({loss.where(steps[i_min])}) to {top:.3g} ({top / low:.3g}x) and "
               f"stayed above {_LOST_RISE * low:.3g} on {held} of the {j + 1 - i_min} points to "
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
#: learnt nothing (:func:`_validation_alone`)
_NEVER_BETTER = 8
_FLAT_EVALUATIONS = 20
_FLAT_SHARE = 0.01


def _validation_alone(run: RunLog, t: LogThresholds, code: str) -> Finding | None:
    """A run that logs its validation loss and no training loss or gradient norm (a Lightning module
    logging in validation_step only), judged on it: ``loss_divergence`` where 8 or more evaluations
    after the first are all worse than it (ls19: 6.589 at epoch 0, then 46 evaluations at 6.60-6.84),
    ``loss_plateau`` where 20 or more stay within 1% of their start, end and lowest (6.464 -> 6.449
    over 50 epochs). A validation loss alone cannot say overfitting from a too-high rate; these two it
    can."""
    if run.first("loss") is not None or run.first("grad_norm") is not None or _on_rollouts(run):
        return None
    val = run.first("val_loss")
    if val is None:
        return None
    steps, v = finite(val)
    if len(v) < _NEVER_BETTER + 1 or not float(v[0]) > 0:
        return None
    first, best_later = float(v[0]), float(np.min(v[1:]))
    if code == "loss_divergence" and best_later > first:
        return _finding(
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
        return _finding(
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
    return [_finding(
        "loss_divergence", "error",
        f"{loss.name} rose from {low:.3g} ({loss.where(steps[i_low])}) to {float(v[-1]):.3g} "
        f"({loss.where(steps[-1])}): {rise:.2g}x in {len(v) - i_low - 1} logged point(s)",
        "The loss grew by orders of magnitude from one logged step to the next: training blew up (a learning "
        "rate too large, or exploding gradients with no clipping).",
        {"metric": loss.name, "steps": [_num(steps[i_low]), _num(steps[-1])], "value": rise,
         "threshold": _BLOWN_UP, "minimum": low, "minimum_step": _num(steps[i_low]), "final": float(v[-1])},
        [lower_lr(run, at_step=float(steps[i_low]), why="the loss blew up"), clipping(run, t)])]


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
    for val in run.by_role("val_loss"):
        vs, vv = finite(val)
        if len(vv) < t.min_points or vv[0] <= 0:
            continue
        first, best_later = float(vv[0]), float(np.min(vv[1:]))
        if best_later < first * (1 + t.validation_rise):
            continue
        return [_finding(
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
    if longest < max(5, _EXCURSION_FRACTION * len(sm)):
        return []
    a, b = best_start, best_start + longest - 1
    peak = a + int(np.argmax(sm[a:b + 1]))
    low = float(floor[a])
    return [_finding(
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


_ACCURACY = re.compile(r"(?:^|[/_. -])(?:acc|accuracy|categorical_accuracy|sparse_categorical_accuracy|"
                       r"binary_accuracy)(?:[/_. -](?:epoch|step))?$")
_VALIDATION = re.compile(r"(?:^|[/_. -])(?:val|vali|valid|validation|eval|test)(?:[/_. -]|$)")
#: Any accuracy, top-k ones included (YOLO's metrics/accuracy_top1, accuracy_top5)
_ANY_ACCURACY = re.compile(r"(?:^|[/_. -])(?:acc|accuracy)(?:[/_. -]?top-?\d+)?(?:[/_. -](?:epoch|step))?$|"
                           r"(?:^|[/_. -])top-?\d+[/_.-]?acc(?:uracy)?$")
NUM_CLASS_KEYS = ("num_classes", "n_classes", "nb_classes", "num_labels", "n_labels", "num_class", "n_class")


def accuracies(run: RunLog) -> tuple[Series | None, Series | None]:
    """The run's training and validation accuracy series (top-k accuracies left out), by name."""
    train: list[Series] = []
    val: list[Series] = []
    for s in run.by_role("metric"):
        name = s.name.lower()
        if not _ACCURACY.search(name) or "top" in name:
            continue
        # an "accuracy" above 100 counts something (ls19: correct samples per batch, 87-126), and
        # one below 0 is no share: neither is read as a fraction or a percent
        v = finite(s)[1]
        if not (len(v) and (v.max() > 100 or v.min() < 0)):
            (val if _VALIDATION.search(name) else train).append(s)
    return (max(train, key=len) if train else None), (max(val, key=len) if val else None)


def _as_fraction(v: np.ndarray) -> np.ndarray:
    return v / 100 if len(v) and float(np.max(v)) > 1.5 else v  # accuracy logged in percent


def num_classes(run: RunLog) -> int | None:
    """The number of classes when the run's params record it."""
    for key, raw in run.params.items():
        if re.split(r"[/.]", key.lower())[-1] in NUM_CLASS_KEYS:
            try:
                k = int(float(raw))
            except ValueError:
                continue
            if k >= 2:
                return k
    return None


#: Class counts a loss pinned at ln k names on its own, with no accuracy or params to confirm it:
#: small k, where ln k and ln (k + 1) are far apart, the round counts of the usual benchmarks, and
#: the vocabularies language models predict over (BERT's 30522, Llama 2's 32000, SmolLM's 49152,
#: GPT-2's 50257 and nanoGPT's 50304, Llama 3's 128256, Qwen's 151936, Gemma's 256000): an LM
#: whose loss sits at ln V predicts every token alike.
_UNIFORM_K = (*range(2, 21), 100, 200, 1000, 10_000, 30_522, 32_000, 32_768, 49_152, 50_257, 50_304,
              65_536, 128_256, 151_936, 256_000)


def uniform_guess(values: np.ndarray) -> dict | None:
    """A loss that does not move (its points within 0.2 % of their median) and sits within 0.3 % of
    ln k for one of :data:`_UNIFORM_K`: the cross-entropy of predicting every one of k classes
    equally, whatever the input (Keras' 0.6931, CIFAR-100's 4.605, ImageNet's 6.9078)."""
    if len(values) < 4:
        return None
    level = float(np.median(values))
    if not level > 0 or float(np.max(np.abs(values - level))) > 0.002 * level:
        return None
    near = [k for k in _UNIFORM_K if abs(level - math.log(k)) <= 0.003 * math.log(k)]
    if not near:
        return None
    k = min(near, key=lambda k: abs(level - math.log(k)))
    return {"num_classes": k, "accuracy": None, "source": f"the loss sits at ln {k} = {math.log(k):.4g} without moving"}


def _validation_at_chance(run: RunLog) -> dict | None:
    """:func:`uniform_guess` of a validation loss's last half: evaluations pinned at ln k (a 4-way
    multiple-choice fine-tune whose every eval_loss was 1.3863) while the noisier training loss
    wanders around it."""
    for val in run.by_role("val_loss"):
        vv = finite(val)[1]
        guess = uniform_guess(vv[len(vv) // 2:])
        if guess is not None:
            k = guess["num_classes"]
            return {**guess, "validation": True,
                    "source": f"{val.name} sits at ln {k} = {math.log(k):.4g} without moving"}
    return None


#: How close to ln k a cross-entropy sits at chance over k classes, where the log names k or the
#: accuracy alone suggests it
_CHANCE_LOSS_MARGIN = 0.1


def at_chance(run: RunLog, loss_level: float, t: LogThresholds) -> dict | None:
    """Evidence that a classifier sits at chance: accuracy near 1/k. k comes from the params, or from
    the accuracy itself only when the loss confirms it (a cross-entropy near ln k, what a uniform
    guess over k classes scores); with params but no accuracy, a loss within 10 % of ln k."""
    k_param = num_classes(run)
    train_acc, _ = accuracies(run)
    acc = None
    if train_acc is not None:
        a = _as_fraction(finite(train_acc)[1])
        if len(a) >= 3:
            acc = float(np.median(a[len(a) // 2:]))
    m = t.plateau_chance_margin

    def near(k: int) -> bool:
        return acc is not None and abs(acc - 1 / k) <= m / k

    def ce(k: int, margin: float) -> bool:
        return abs(loss_level - math.log(k)) <= margin * math.log(k)

    if k_param is not None and (near(k_param) if acc is not None else ce(k_param, _CHANCE_LOSS_MARGIN)):
        return {"num_classes": k_param, "accuracy": acc, "source": "params"}
    if k_param is None and acc is not None and acc > 0:
        # (k from the accuracy alone: a loss within the margin of ln k says it too. Left at the
        # accuracy's margin: a probe at chance over 11 classes sat 23% above ln 11 (logsweep31),
        # while a 3-class model scoring its majority class, 0.54 with a loss 19% above ln 2, reads
        # as chance over 2 (logsweep39 09): the two are not told apart by these figures)
        k = round(1 / acc)
        if k >= 2 and near(k) and ce(k, m):
            name = train_acc.name if train_acc is not None else "accuracy"
            return {"num_classes": k, "accuracy": acc, "source": f"{name} ~ 1/{k} and loss ~ ln {k}"}
    return None


def _stuck_validation_accuracy(run: RunLog, t: LogThresholds) -> Finding | None:
    """A validation accuracy that never moves while the training accuracy climbs far above it: the
    model fits its training set and learns nothing that carries over. Reported as loss_plateau with
    the accuracy as its metric (the quantity that should improve does not), so validation_divergence
    keeps meaning a validation loss rising from its best."""
    train, val = accuracies(run)
    if train is None or val is None:
        return None
    vs, va = finite(val)
    ts, ta = finite(train)
    if len(va) < 5 or len(ta) < 5:
        return None
    va, ta = _as_fraction(va), _as_fraction(ta)
    k = max(2, len(va) // 5)
    slope, _, _ = theil_sen(vs.astype(np.float64), va)
    gained = max(float(np.median(va[-k:]) - np.median(va[:k])), slope * float(vs[-1] - vs[0]))
    v_late = float(np.median(va[-k:]))
    # A climb in the first evaluations, then a plateau (Keras logs validation after each epoch, and
    # a small model learns what generalises in one or two) is a gain the early median hides; it
    # counts when it stands out of the series' point-to-point noise.
    sigma = 1.4826 * float(np.median(np.abs(np.diff(va)))) / math.sqrt(2)
    if v_late - float(va[0]) > max(t.accuracy_stuck, 3 * sigma):
        gained = max(gained, v_late - float(va[0]))
    t_late = float(np.median(ta[-max(3, len(ta) // 10):]))
    if gained >= t.accuracy_stuck or t_late - v_late < t.accuracy_gap:
        return None
    classes = num_classes(run)
    chance = f" (chance for {classes} classes is {1 / classes:.2f})" if classes else ""
    return _finding(
        "loss_plateau", "warning",
        f"{val.name} never left {float(np.min(va)):.2f}-{float(np.max(va)):.2f} over "
        f"{val.between(vs[0], vs[-1])}{chance} while {train.name} reached {t_late:.2f}",
        "A validation metric that never improves while the training one does: the model memorises the training "
        "set and learns nothing that generalises (too little data, leakage-free labels that carry no signal, or "
        "a train/validation mismatch).",
        {"metric": val.name, "steps": [_num(vs[0]), _num(vs[-1])], "value": gained,
         "threshold": t.accuracy_stuck, "band": [float(np.min(va)), float(np.max(va))],
         "train_metric": train.name, "train_final": t_late, "gap": t_late - v_late, "num_classes": classes},
        [R.weight_decay()])


#: A validation accuracy that moves less than this (as a fraction) over :data:`_ONE_CLASS_POINTS`
#: evaluations or more takes one value: the same predictions every time.
_ONE_CLASS_SPREAD = 0.002
_ONE_CLASS_POINTS = 8


#: An area under the ROC curve, by name (auc, roc_auc, val_auc, AUC-ROC).
_AUC = re.compile(r"(?:^|[/_. -])(?:roc[_ -]?)?auc(?:[_ -]?roc)?(?:[/_. -]|$)", re.IGNORECASE)
#: An AUC this close to 0.5 (the median of the last half of 20 points or more, none of them past
#: :data:`_AUC_BEST`) ranks positives above negatives no better than a coin.
_AUC_MARGIN, _AUC_BEST, _AUC_POINTS = 0.03, 0.56, 20


def _auc_at_chance(run: RunLog) -> Finding | None:
    """An ROC AUC at 0.5 over the last half of the run: whatever the loss does (on imbalanced data
    it falls by learning the base rate alone: a click-through model's log loss 5.4 -> 0.4 while its
    AUC stays at 0.50-0.54), the model does not tell the classes apart. AUC is immune to the class
    balance, so 0.5 is chance for any data; the validation AUC is judged where one is logged."""
    aucs = [s for s in run.series if _AUC.search(s.name)]
    aucs.sort(key=lambda s: not _VALIDATION.search(s.name.lower()))
    for s in aucs[:1]:
        steps, v = finite(s)
        if len(v) < _AUC_POINTS or v.min() < 0:
            continue
        v = v / 100 if v.max() > 1 else v
        if v.max() > 1:
            continue
        late = v[len(v) // 2:]
        level = float(np.median(late))
        # (a window of a run under way, opening after more steps than it spans, says nothing of its start)
        if abs(level - 0.5) > _AUC_MARGIN or float(np.max(late)) > _AUC_BEST or steps[0] > steps[-1] - steps[0]:
            continue
        return _finding(
            "loss_plateau", "warning",
            f"{s.name} stays at {level:.3f} over the last half ({s.between(steps[len(v) // 2], steps[-1])}; "
            f"at most {float(np.max(late)):.3f}): the model ranks the classes no better than chance (0.5)",
            "The area under the ROC curve is the chance that a positive sample scores above a negative one: 0.5 "
            "is a coin, whatever the class balance. A loss can still fall while it stays there (on imbalanced "
            "data the base rate alone lowers a log loss a long way), so the loss's trend does not show it. Check "
            "that the features reach the model (scaling, embedding sizes, an input pipeline feeding constants or "
            "shuffled labels), then the learning rate.",
            {"metric": s.name, "steps": [_num(steps[len(v) // 2]), _num(steps[-1])], "value": level,
             "threshold": 0.5 + _AUC_MARGIN, "best_late": float(np.max(late))},
            [])
    return None


def _binary_entropy(p: float) -> float:
    """H(p) in nats: the cross-entropy of always predicting the share p of one class."""
    return -sum(q * math.log(q) for q in (p, 1 - p) if 0 < q < 1)


def _one_class_validation(run: RunLog) -> Finding | None:
    """A validation accuracy that keeps one value at every evaluation while the training loss moves,
    with a validation loss never better than the class share alone scores: the model predicts the
    same class for every validation sample, and its accuracy is that class's share (Keras issue
    4662: val_acc 0.7188 for 15 epochs, val_loss 0.61 against H(0.719) = 0.594).

    The loss is the confirmation: a model that learned, on a validation set small enough to keep
    its accuracy at one count, scores a loss well under the entropy of the share it gets right;
    one that only learned the class prior scores about that entropy (over k classes the prior's
    entropy is at least this two-way one, so more is no better)."""
    _, val = accuracies(run)
    val_loss, loss = run.first("val_loss"), run.first("loss")
    if val is None or val_loss is None or loss is None:
        return None
    vs, va = finite(val)
    if len(va) < _ONE_CLASS_POINTS:
        return None
    va = _as_fraction(va)
    share = float(np.median(va))
    if float(np.ptp(va)) > _ONE_CLASS_SPREAD or not 0 < share < 1:
        return None
    lv, tv = finite(val_loss)[1], finite(loss)[1]
    if len(lv) < 3 or len(tv) < 3:
        return None
    late, best = float(np.median(lv[len(lv) // 2:])), float(np.min(lv))
    prior = _binary_entropy(share)
    # the training side moved: a run that changes nothing at all is the frozen checks' case
    moved = abs(float(np.median(tv[-3:])) - float(np.median(tv[:3]))) > 0.05 * abs(float(np.median(tv[:3])))
    # never better than the share alone at any evaluation (an overfitting model on a small set keeps
    # its answers while its loss climbs, but from a best well under the prior's)
    if not moved or best < 0.9 * prior:
        return None
    return _finding(
        "loss_plateau", "warning",
        (f"{val.name} is {share:.4g} at every one of {len(va)} evaluations" if not np.ptp(va) else
         f"{val.name} stays within {float(np.min(va)):.4g}-{float(np.max(va)):.4g} at all {len(va)} evaluations")
        + f" ({val.between(vs[0], vs[-1])}) and "
        f"{val_loss.name} never gets below {best:.3g} (ends at {late:.3g}), no better than the {prior:.3g} that "
        f"predicting the class share {share:.4g} alone scores: the model gives every validation sample the same class",
        "A validation accuracy that never changes by a single sample while the training loss moves, with a "
        "validation loss at the entropy of that share, is a model predicting one class (the majority) for "
        "everything: it learned the class balance and nothing else. Check the labels and the inputs reach the "
        "model (scaling, a frozen or dead layer, a sigmoid output with a softmax loss), balance the classes or "
        "weight the loss, and lower the learning rate if it collapsed after a few steps.",
        {"metric": val.name, "steps": [_num(vs[0]), _num(vs[-1])], "value": float(np.ptp(va)),
         "threshold": _ONE_CLASS_SPREAD, "accuracy": share, "val_loss": late, "best_val_loss": best,
         "prior_entropy": prior},
        [R.balance_classes(share)])


def _change(improvement: float) -> str:
    """A relative improvement in words: "8.2% lower", or "8.2% higher" when it is negative."""
    return f"{improvement:.1%} lower" if improvement >= 0 else f"{-improvement:.1%} higher"


#: A GAN's losses logged this many times, every one the same, are frozen, not a game going on.
_GAN_FROZEN_POINTS = 5


def _frozen_gan(run: RunLog) -> Finding | None:
    """A GAN whose generator and discriminator losses are each exactly the same number at every
    logged step (StudioGAN's ``Gen_loss: -0.0 Dis_loss: 13.82`` from step 100 on): the game is
    not being played. A discriminator that wins outright gives the generator no gradient
    (Goodfellow et al. 2014; Arjovsky and Bottou 2017), and the losses of two networks that learn
    move, however they balance."""
    if run.first("loss") is not None:
        return None
    parts: dict[str, list[tuple[Series, np.ndarray, np.ndarray]]] = {"G": [], "D": []}
    for s in run.series:
        part = gan_part(s.name) if s.role == "metric" else None
        if part is not None:
            steps, v = finite(s)
            parts[part].append((s, steps, v))
    if not parts["G"] or not parts["D"]:
        return None
    every = [x for p in parts.values() for x in p]
    exact = all(len(v) >= _GAN_FROZEN_POINTS and np.ptp(v) == 0 for _, _, v in every)
    if not exact and not all(_pinned(v) for _, _, v in every):
        return None
    g, d = parts["G"][0], parts["D"][0]
    first = min(float(steps[0]) for _, steps, _ in every)
    last = max(float(steps[-1]) for _, steps, _ in every)
    points = min(len(v) for _, _, v in every)
    where = (f"{g[0].name} is {float(g[2][0]) + 0.0:g} and {d[0].name} {float(d[2][0]) + 0.0:g} at every one of "
             f"{points} logged points" if exact else
             f"{g[0].name} stays at {float(np.median(g[2])):.4g} and {d[0].name} at {float(np.median(d[2])):.4g}, "
             f"8 in 10 of the {points} logged points within {_GAN_PINNED:.0%} of that")
    return _finding(
        "loss_plateau", "warning",
        f"the GAN's losses do not move: {where} ({g[0].between(first, last)})",
        "A generator and a discriminator that learn push each other's losses around; losses that stay the same "
        "at every step mean neither network's updates change anything: most often the discriminator has won "
        "outright and its saturated output gives the generator no gradient (a learning rate or a discriminator "
        "too strong, or a non-saturating loss needed), or it has stopped telling real from fake at all (an "
        "output of 0.5 everywhere: ln 2 per term of a cross-entropy, 2 ln 2 = 1.386 for the real and fake terms "
        "summed).",
        {"metric": g[0].name, "steps": [_num(first), _num(last)], "value": 0.0, "threshold": 0.0,
         "generator": [s.name for s, _, _ in parts["G"]][:20],
         "discriminator": [s.name for s, _, _ in parts["D"]][:20]},
        [lower_lr(run, at_step=first, why="the GAN's losses froze")])


#: A GAN player's per-step loss whose middle 80 % spans at most this share of its level, over at least
#: :data:`_GAN_PINNED_POINTS` points, does not move (:func:`_frozen_gan`): a learning player's loss
#: swings by tens of percent from batch to batch.
_GAN_PINNED = 0.02
_GAN_PINNED_POINTS = 20


def _pinned(v: np.ndarray) -> bool:
    """Whether a GAN player's losses ``v`` stay within :data:`_GAN_PINNED` of one level."""
    if len(v) < _GAN_PINNED_POINTS:
        return False
    level = float(np.median(v))
    lo, hi = np.percentile(v, [10, 90])
    return level != 0 and float(hi - lo) <= _GAN_PINNED * abs(level)


#: Share of a discriminator's logged losses at exactly 0 that says it has won (:func:`_discriminator_won`).
_D_ZERO_SHARE = 0.75


def _discriminator_won(run: RunLog) -> Finding | None:
    """A GAN whose discriminator loss is exactly 0 (as printed) at three quarters or more of its 5 or
    more points: it tells real from fake with certainty, its saturated output passes the generator no
    useful gradient, and the game has stopped (Goodfellow et al. 2014; Arjovsky and Bottou 2017). A
    cross-entropy or hinge loss reaches exactly 0 only there; a WGAN critic's loss crosses 0 now and
    then and is exactly 0 at no more than a point or two."""
    if run.first("loss") is not None:
        return None
    for s in run.series:
        if s.role != "metric" or gan_part(s.name) != "D":
            continue
        steps, v = finite(s)
        zeros = int(np.count_nonzero(v == 0))
        if len(v) < _GAN_FROZEN_POINTS or zeros < _D_ZERO_SHARE * len(v):
            continue
        return _finding(
            "loss_plateau", "warning",
            f"the discriminator has won: {s.name} is exactly 0 at {zeros} of its {len(v)} logged points "
            f"({s.between(steps[0], steps[-1])})",
            "A discriminator loss of exactly 0 means it separates real from generated samples with certainty: its "
            "output has saturated, the generator receives almost no gradient and stops improving (a discriminator "
            "too strong or learning too fast, or a saturating generator loss). Balance the two: a lower "
            "discriminator learning rate, label smoothing or instance noise, or a non-saturating/Wasserstein loss.",
            {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
             "points": zeros},
            [lower_lr(run, at_step=float(steps[0]), why="the discriminator overpowered the generator")])
    return None


def _short_at_chance(run: RunLog, t: LogThresholds) -> Finding | None:
    """A run too short for the trend checks (its training loss has under 8 points) whose training or
    validation loss sits, at every one of its 4 or more points, exactly where a uniform guess over k
    classes scores (:func:`uniform_guess`: within 0.3 % of ln k, moving under 0.2 %): four
    evaluations at 1.386 = ln 4 are a model that never learnt, however few points show it. A loss
    that starts there and then falls is not."""
    train = run.first("loss")
    if train is None or _on_rollouts(run) or len(finite(train)[1]) >= t.min_points:
        return None
    for loss in (train, run.first("val_loss")):
        if loss is None:
            continue
        steps, v = finite(loss)
        chance = uniform_guess(v) if len(v) >= 4 else None
        if chance is not None:
            summary = (f"{loss.name} stays at {float(np.median(v)):.4g} at every one of its {len(v)} points: "
                       f"chance for {chance['num_classes']} classes (ln {chance['num_classes']} = "
                       f"{math.log(chance['num_classes']):.4g})")
            break
    else:
        pinned = _pinned_at_chance(run, t)
        if pinned is None:
            return None
        loss, steps, v, chance, summary = pinned
    return _finding(
        "loss_plateau", "warning", summary,
        "The loss sits where a uniform guess over the classes scores and does not move: the model predicts no "
        "better than chance (a learning rate far too small or far too large, vanishing gradients, or labels "
        "that do not follow from the inputs).",
        {"metric": loss.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0,
         "threshold": t.plateau_improvement, "at_chance": chance},
        [raise_lr(run, why="the loss is not moving")])


#: Share of an accuracy's points at exactly one value that pins it there (:func:`_pinned_at_chance`).
_PINNED_SHARE = 0.75


def _pinned_at_chance(run: RunLog, t: LogThresholds
                      ) -> tuple[Series, np.ndarray, np.ndarray, dict, str] | None:
    """On a run too short for the trends: an accuracy at exactly 1/k (to 1 %) at three quarters or more
    of its 4 or more points, and a loss of the same split (else the other) whose median is within
    ``plateau_chance_margin`` of ln k: a classifier answering one class whatever the input (Keras'
    ``val_accuracy: 0.5000`` epoch after epoch beside a loss at 0.693). Two signs that agree, each
    weak alone: an accuracy stuck at 0.5 on a balanced set and a cross-entropy at ln 2."""
    train_acc, val_acc = accuracies(run)
    for acc, losses in ((val_acc, (run.first("val_loss"), run.first("loss"))),
                        (train_acc, (run.first("loss"), run.first("val_loss")))):
        if acc is None:
            continue
        a = _as_fraction(finite(acc)[1])
        if len(a) < 4:
            continue
        values, counts = np.unique(a, return_counts=True)
        top = float(values[int(np.argmax(counts))])
        if int(counts.max()) < _PINNED_SHARE * len(a) or not top > 0:
            continue
        k = round(1 / top)
        if k < 2 or abs(top * k - 1) > 0.01:
            continue
        for loss in losses:
            if loss is None:
                continue
            steps, v = finite(loss)
            level = float(np.median(v)) if len(v) else math.nan
            if abs(level - math.log(k)) <= t.plateau_chance_margin * math.log(k):
                chance = {"num_classes": k, "accuracy": top,
                          "source": f"{acc.name} ~ 1/{k} and loss ~ ln {k}"}
                return loss, steps, v, chance, (
                    f"{acc.name} is {top:g} at {int(counts.max())} of its {len(a)} points, chance for {k} "
                    f"classes, and {loss.name} stays near ln {k} = {math.log(k):.4g} (median {level:.4g})")
    return None


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
    if train is None or _on_rollouts(run):
        return None
    steps, v = finite(train)
    if 2 <= len(v) <= _FROZEN_REPEATS and v[0] >= 1e-3 and bool(np.all(v == v[0])) \
            and float(steps[0]) <= 1 and float(steps[-1]) >= _FROZEN_SPAN:
        # litgpt #125: "iter 1: loss 11.0666" and "iter 400: loss 11.0666", the lines between elided:
        # the same number from the run's first step to hundreds later is a run that never moved
        return _finding(
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
    return _finding(
        "loss_plateau", "warning",
        f"{train.name} is exactly {float(tail[0]):.6g} at each of its last {_FROZEN_REPEATS} points "
        f"({train.between(steps[-_FROZEN_REPEATS], steps[-1])}), having started at {float(v[0]):.6g}",
        "A loss that repeats to every printed digit from one epoch to the next comes from weights that do not "
        "move: saturated or dead units passing no gradient, a learning rate of 0 or one so large the optimizer "
        "has thrown the weights into a flat region, or parameters the optimizer was not given.",
        {"metric": train.name, "steps": [_num(steps[-_FROZEN_REPEATS]), _num(steps[-1])], "value": 0.0,
         "threshold": t.plateau_improvement, "repeats": _FROZEN_REPEATS, "first": float(v[0])},
        [])  # a rate too small or far too large freezes a loss alike: nothing says which way


def _zero_accuracy(run: RunLog) -> Finding | None:
    """An accuracy (top-k included) exactly 0 at every one of its 5 or more points while the training
    loss fell by half or more: what the model learns never once shows where it is measured (ls16, a
    YOLO classifier: accuracy_top1 and top5 0 for 22 epochs, train/loss 2.52 -> 0.05): classes mapped
    differently in the two sets, or a metric reading the wrong outputs."""
    loss = run.first("loss")
    if loss is None or _on_rollouts(run):
        return None
    ls, lv = finite(loss)
    if len(lv) < 5 or not lv[0] > 0 or not lv[-1] <= 0.5 * lv[0]:
        return None
    for s in run.by_role("metric"):
        steps, v = finite(s)
        if _ANY_ACCURACY.search(s.name.lower()) and len(v) >= 5 and bool(np.all(v == 0)):
            return _finding(
                "loss_plateau", "warning",
                f"{s.name} is exactly 0 at all {len(v)} points ({s.between(steps[0], steps[-1])}) while "
                f"{loss.name} fell from {float(lv[0]):.3g} to {float(lv[-1]):.3g}",
                "The training loss falls, so the model learns its training set, but not one sample is ever right "
                "where the accuracy is measured: the classes are numbered differently in the two sets (a folder "
                "order, a label map), the labels are not the targets the loss was given, or the metric reads the "
                "wrong outputs. Chance alone would score 1/classes.",
                {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
                 "train_metric": loss.name, "train_first": float(lv[0]), "train_last": float(lv[-1])}, [])
    return None


@detects("loss_plateau")
def plateau(run: RunLog, t: LogThresholds) -> list[Finding]:
    stuck = (_stuck_validation_accuracy(run, t) or _one_class_validation(run) or _auc_at_chance(run)
             or _zero_accuracy(run))
    found = _positive_loss(run, t) if not _on_rollouts(run) else None
    if found is not None and np.any(found[2][len(found[2]) // 2:] == 0):
        found = None  # a loss at exactly 0 in its last half has no level to stall at (zero_gradient's case)
    if found is None:
        frozen = (_frozen_gan(run) or _discriminator_won(run) or _short_at_chance(run, t) or _frozen_short(run, t)
                  or _validation_alone(run, t, "loss_plateau"))
        return [f for f in (stuck, frozen) if f is not None]
    loss, steps, v = found
    sm = smooth(v, max(3, min(9, len(v) // 4)))
    half = len(sm) // 2
    overall = (sm[0] - sm[-1]) / max(abs(sm[0]), 1e-12)
    # Robust trend of the log-loss over the last half: its relative change over that window, with a
    # confidence interval, so that noise around a falling loss does not read as flat.
    x = steps[half:].astype(np.float64)
    slope, _, high = theil_sen(x, _log_printed(v[half:]))
    width = float(x[-1] - x[0])
    late = 1 - math.exp(min(slope * width, _MAX_EXP))  # (a step of 1e20 must not overflow a float)
    converged = overall >= t.plateau_converged_fraction
    level = float(np.median(v[half:]))
    chance = at_chance(run, level, t) or uniform_guess(v[half:]) or _validation_at_chance(run)
    # at chance, only a fall its confidence interval bears out is learning: a short noisy loss's
    # estimate leans either way (logsweep31: 14 points at ln 11, "falling" 5.7% with a rise inside)
    falling = ((late >= t.plateau_improvement and (chance is None or high < 0))
               or (high < 0 and late >= t.plateau_improvement / 2))
    # (a loss that ends 15 % or more above where it began did not stall: it climbed, which
    # loss_divergence judges, from its first point on where it never fell; not one at chance)
    rising = (sm[-1] > sm[half] * t.divergence_factor or sm[-1] >= _LOST_RISE * sm[0]
              or (chance is None and v[0] > 0 and sm[-1] >= _LOST_RISE * v[0]))  # (smoothing can hide v[0])
    # a loss lower at every point than at the one before is learning, however slowly (ls21: SimCLR's
    # epoch averages 7.24 -> 6.89 over 10 epochs, each one down)
    descending = (len(v) >= 4 and bool(np.all(np.diff(v) < 0)) and chance is None
                  and overall >= t.plateau_improvement)  # (0.09% over 46 epochs is no learning)
    if rising or falling or descending or (converged and chance is None):
        return [stuck] if stuck else []
    # "Never learnt" is a claim about the run from its start: a log that opens at step 1631 and spans
    # ten steps of it (a pasted excerpt, a resumed run) shows a window, not the start.
    from_start = float(steps[0]) <= float(steps[-1] - steps[0])
    never = overall < t.plateau_early_fraction and from_start
    if chance is None and not never and overall < t.plateau_early_fraction and not from_start:
        return [stuck] if stuck else []  # flat over an excerpt: nothing to say about the run
    if chance is not None:
        acc = f", accuracy {chance['accuracy']:.2f}" if chance["accuracy"] is not None else ""
        summary = (f"{loss.name} is flat at {level:.3g} over the last half of the run, at chance for "
                   f"{chance['num_classes']} classes (ln {chance['num_classes']} = "
                   f"{math.log(chance['num_classes']):.3g}{acc}"
                   + (f"; {chance['source']}" if chance.get("validation") else "") + ")")
        explanation = ("The loss stopped where a uniform guess over the classes scores: the model predicts no better "
                       "than chance (a learning rate far too small or far too large, vanishing gradients, or labels "
                       "that do not follow from the inputs).")
    elif never:
        summary = f"{loss.name} barely moved: {_change(overall)} at the end than at the start"
        explanation = ("The loss stalled from the start: the model is not learning (vanishing gradients, a learning "
                       "rate far too small, or a data/label problem).")
    else:
        summary = (f"{loss.name} " + (f"improved {late:.2%}" if late >= 0 else f"rose {-late:.2%}")
                   + f" over the last half of the run (after falling {overall:.0%} before)")
        explanation = "The loss has flattened out: convergence, a decayed learning rate, or capacity reached."
    alarm = never or chance is not None
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
    out = [_finding(
        "loss_plateau", "warning" if alarm else "info", summary, explanation,
        {"metric": loss.name, "steps": [_num(steps[half]), _num(steps[-1])], "value": late,
         "threshold": t.plateau_improvement, "overall_improvement": overall, "at_chance": chance,
         "warmup": list(warm) if warm is not None else None},
        [raise_lr(run, why="the loss is not moving") if alarm else None])]
    return out + ([stuck] if stuck else [])


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


#: Residuals this anticorrelated from one step to the next (up, down, up) are steps overshooting
#: the minimum, not minibatch noise (about -0.1 for independent batches around a running median).
_ALTERNATION = -0.3


def _log_printed(v: np.ndarray) -> np.ndarray:
    """ln of a positive loss, a point printed as 0 (0.0000: rounded to the log's digits) read at the
    smallest value printed: ln 0 would make a trend's slopes NaN."""
    positive = v[v > 0]
    return np.log(np.maximum(v, float(np.min(positive)))) if len(positive) else np.full(len(v), np.nan)


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
    floor = float(np.min(positive))  # (as _log_printed reads a point printed as 0)
    resid = _log_printed(v) - np.log(np.maximum(trend, floor))
    if len(resid) < 4 or float(np.std(resid)) == 0:
        return None
    ac = float(np.corrcoef(resid[:-1], resid[1:])[0, 1])
    bound = min(_ALTERNATION, -0.1 - 1.64 / math.sqrt(len(resid)))
    return ac if ac < bound else None


#: An agent trained on its own rollouts (Stable-Baselines3, RLlib, baselines): its episode reward.
#: (names with spaces or hyphens too: "mean 100 episode reward", MXNet's "Train-Accuracy")
_ROLLOUT_REWARD = re.compile(r"ep[_ -]?rew|episode[_ -]?(?:reward|return)|episodic[_ -]?return|eprewmean|rollout/|"
                             r"averageepret|epret|success[_ -]?rate", re.IGNORECASE)


#: A series named a reward or return as a word (a TensorBoard CSV export named after its tag,
#: "run_ppo_reward"): an agent's outcome for what the log check says it holds, but not enough to
#: read the run as one on rollouts (TRL's DPO logs "rewards/chosen" beside its loss).
_A_REWARD = re.compile(r"(?:^|[/_. -])(?:reward|return)s?(?:[/_. -]|$)", re.IGNORECASE)


def _on_rollouts(run: RunLog) -> bool:
    """Whether the run trains an agent on its own rollouts: its loss (PPO's policy + value +
    entropy) is not an objective that falls; its data move with the policy, and the episode reward
    is what improves."""
    return any(_ROLLOUT_REWARD.search(s.name) for s in run.series)


#: An RL run's outcome series: the episode return (mean reward) or success rate it logs, by name.
_RETURN = re.compile(r"(?:^|[/_. -])(?:ep[_ -]?rew(?:ard)?[_ -]?mean|eprewmean|episode[_ -]?(?:reward|return)s?|"
                     r"episodic[_ -]?return|mean[_ -]?(?:reward|return)|(?:average)?ep[_ -]?ret|return|"
                     r"success[_ -]?rate)(?:$|[/_. -](?:mean|avg))?$", re.IGNORECASE)
#: A statistic of the episodes other than their mean (min/max/std of the returns).
_SPREAD = re.compile(r"(?:^|[/_. -])(?:min|max|std)(?:[/_. -]|$)", re.IGNORECASE)
#: Points an outcome series needs before a collapse is judged, and the share of the run at its end
#: that must stay down.
_RETURN_POINTS = 20
_RETURN_TAIL = 0.2


@detects("reward_collapse")
def reward_collapse(run: RunLog, t: LogThresholds) -> list[Finding]:
    """An agent's episode return (or success rate) that climbed well above where it started and
    then lost more than half of that gain for the last fifth of the run or more (DDPG on a
    continuous-control task: 2,143 at its best, -362 at the end). Judged on running medians, so a
    bad episode or two is not a collapse; the gain must stand out from the series' own
    episode-to-episode noise."""
    out: list[Finding] = []
    outcomes = [s for s in run.series if _RETURN.search(s.name) and "history" not in s.name.lower()]
    # the mean return where one is logged, not its min/max/std companions (baselines' and GAIL's
    # "min 100 episode reward" beside the mean)
    plain = [s for s in outcomes if not _SPREAD.search(s.name)]
    for s in plain or outcomes:
        steps, v = finite(s)
        n = len(v)
        if n < _RETURN_POINTS:
            continue
        sm = smooth(v, max(3, (n // 10) | 1))
        head = max(2, n // 10)
        start = float(np.median(v[:head]))
        i_peak = int(np.argmax(sm))
        peak = float(sm[i_peak])
        gain = peak - start
        noise = 1.4826 * float(np.median(np.abs(np.diff(v)))) / math.sqrt(2)
        tail = max(3, int(math.ceil(_RETURN_TAIL * n)))
        end = float(np.median(v[-tail:]))
        # a climb smaller than the ground lost below the start is no climb and fall: the series
        # fell (a 100-episode mean's first points, a handful of episodes, read as a "peak")
        if gain <= 0 or gain < 4 * noise or i_peak >= n - tail or gain < start - end:
            fell = _fell_below_start(s, steps, sm, start, end, noise, tail, run)
            if fell is not None:
                out.append(fell)
            continue
        kept = (end - start) / gain
        if kept >= 0.5 or not np.all(sm[-tail:] < start + 0.5 * gain):
            continue
        best = float(steps[i_peak])
        out.append(_finding(
            "reward_collapse", "warning",
            f"{s.name} climbed from {start:.4g} to {peak:.4g} ({s.where(best)}) and fell back to {end:.4g} over the "
            f"last {tail} of {n} points: {1 - kept:.0%} of its gain lost (running medians)",
            "The agent got better and then worse, and stayed worse: updates too large for the policy at that "
            "stage (an actor's or critic's learning rate, a target network updated too fast, Q overestimation). "
            "The best policy was the one at the peak.",
            {"metric": s.name, "steps": [_num(best), _num(float(steps[-1]))], "value": 1 - kept,
             "threshold": 0.5, "start": start, "peak": peak, "last": end, "best_step": _num(best)},
            [R.early_stopping(best, max(2, tail // 2)),
             lower_lr(run, at_step=best, why=f"{s.name} collapsed after {s.where(best)}")]))
    return out[:3]


def _fell_below_start(s: Series, steps: np.ndarray, sm: np.ndarray, start: float, end: float, noise: float,
                      tail: int, run: RunLog) -> Finding | None:
    """An outcome that never climbed clear of where it started and ends far below it: the median of
    its last fifth and its last running median under the start by half the start's size and by 4
    standard errors of a median of that many noisy episodes (LunarLander under DQN: -154 over its first episodes, -948
    over its last). An agent that ends worse than its untrained policy has been made worse by
    training; where the series is at 0 (a success rate) it cannot fall."""
    need = max(0.5 * abs(start), 4 * 1.2533 * noise / math.sqrt(tail))  # (1.2533: a median's standard error)
    # the last fifth's median and the last running median both that far down: a fall that stays
    if not need > 0 or not (end < start - need and sm[-1] < start - need):
        return None
    return _finding(
        "reward_collapse", "warning",
        f"{s.name} fell from {start:.4g} (its first tenth) to {end:.4g} over the last {tail} of {len(steps)} points "
        f"and stayed there: the agent ends worse than it started (running medians)",
        "The agent's return got worse with training and stayed worse: its updates push the policy away from what "
        "its first episodes did (a learning rate too large for the policy or the critic, a reward whose sign or "
        "scale is wrong, exploration that decays into a bad deterministic policy). The untrained policy scored "
        "better.",
        {"metric": s.name, "steps": [_num(float(steps[0])), _num(float(steps[-1]))],
         "value": (start - end) / abs(start) if start else math.inf, "threshold": 0.5, "start": start, "last": end},
        [lower_lr(run, at_step=float(steps[0]), why=f"{s.name} fell below where it started")])


@detects("loss_oscillation")
def oscillation(run: RunLog, t: LogThresholds) -> list[Finding]:
    found = _positive_loss(run, t)
    if found is None or len(found[2]) < 12 or _on_rollouts(run):
        return []
    loss, steps, v = found
    trend = smooth(v, 11)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(v - trend) / np.abs(trend)
    rel = rel[np.isfinite(rel)]
    d = np.diff(v)
    flips = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1]))) if len(d) > 2 else 0.0
    level = float(np.median(rel)) if len(rel) else 0.0
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
    slope, _, high = theil_sen(x, _log_printed(v[half:]))
    if high < 0 and 1 - math.exp(min(slope * float(x[-1] - x[0]), _MAX_EXP)) >= t.plateau_improvement:
        return []
    return [_finding(
        "loss_oscillation", "warning",
        f"{loss.name} swings {level:.0%} around its trend (median), changing direction on {flips:.0%} of steps",
        "A loss that jumps up and down around its trend is taking steps too large for the curvature.",
        {"metric": loss.name, "steps": _span(steps), "value": level, "threshold": t.oscillation_ratio,
         "direction_changes": flips, "lag1_autocorrelation": alternation},
        [lower_lr(run, at_step=float(steps[0]), why="the loss oscillates"), clipping(run, t)])]


@detects("validation_divergence")
def validation(run: RunLog, t: LogThresholds) -> list[Finding]:
    """Every validation loss (a Trainer evaluating several sets logs one per set) that rose clearly
    from its best while the training loss fell; the finding is the largest rise, naming the others."""
    loss = run.first("loss")
    if loss is None:
        return []
    gap = _evaluation_gap(run, loss)
    if gap is not None:
        return [gap]
    found = [d for val in run.by_role("val_loss") if (d := _diverged(val, loss, t)) is not None]
    if not found:
        short = [f for val in run.by_role("val_loss") if (f := _short_divergence(val, loss, t)) is not None][:1]
        return short or _generalisation_gap(run, loss)
    found.sort(key=lambda d: -d.rise)
    d, val = found[0], found[0].val
    others = [o.val.name for o in found[1:]]
    raw_rise = (d.last - d.best) / d.best
    evidence = {"metric": val.name, "steps": [_num(d.best_step), _num(d.last_step)], "value": d.rise,
                "threshold": t.validation_rise, "best": d.best, "best_step": _num(d.best_step), "last": d.last,
                "raw_rise": raw_rise, "train_metric": loss.name}
    better = _task_metric_improved(run, val, d.best_step)
    # over-confidence explains a rising loss beside a rising task metric, but not a training set
    # learnt while the validation accuracy trails it by 30 points (ls19's EEG runs: val_loss 3x its
    # best, training accuracy 1.0, validation 0.44 -> 0.53): that is overfitting still
    if better is not None and not _generalisation_gap(run, loss):
        name, then, now = better
        return [_finding(
            "validation_divergence", "info",
            f"{val.name} rose from its lowest {d.best:.3g} ({val.where(d.best_step)}) to {d.last:.3g} "
            f"({raw_rise:+.0%}), but {name} kept improving: {then:.4g} then, {now:.4g} at the end",
            "A validation loss that rises while the task metric of the same evaluation still improves is "
            "usually over-confidence on the examples it gets wrong (calibration), not overfitting; keep the "
            f"checkpoint with the best {name}.",
            {**evidence, "task_metric": name, "task_metric_then": then, "task_metric_last": now}, [])]
    return [_finding(
        "validation_divergence", "warning",
        f"{val.name} rose from its lowest {d.best:.3g} ({val.where(d.best_step)}) to {d.last:.3g} "
        f"({val.where(d.last_step)}, {raw_rise:+.0%}) while {loss.name} fell from {d.train_then:.3g} to "
        f"{d.train_now:.3g}" + (f"; also {', '.join(others[:4])}" + (" ..." if len(others) > 4 else "")
                                if others else ""),
        "Validation loss rising while training loss falls is overfitting: the model memorises the training set.",
        {**evidence, "also_diverged": others},
        [R.early_stopping(d.best_step, max(2, d.patience // 2)), R.weight_decay()])]


#: A validation loss this many times the training loss (medians over the last half), beside a
#: validation accuracy within :data:`_SAME_ACCURACY` of the training one, is no overfitting.
_EVAL_GAP = 20.0
_SAME_ACCURACY = 0.05
_MEMORISED = 0.995


def _split_levels(run: RunLog, loss: Series) -> Iterator[tuple[Series, np.ndarray, np.ndarray, Series, Series,
                                                                float, float, float, float]]:
    """Per validation loss of 4 or more points, beside a training loss and training and validation
    accuracies of 4 or more: (the validation loss, its finite steps and values, the training and
    validation accuracy series, then the medians over the last half of the training loss, the
    validation loss, the training and the validation accuracy as fractions)."""
    train_acc, val_acc = accuracies(run)
    if train_acc is None or val_acc is None:
        return
    lv = finite(loss)[1]
    ta, va = _as_fraction(finite(train_acc)[1]), _as_fraction(finite(val_acc)[1])
    for val in run.by_role("val_loss"):
        steps, vv = finite(val)
        if min(len(vv), len(lv), len(ta), len(va)) < 4:
            continue
        yield (val, steps, vv, train_acc, val_acc,
               float(np.median(lv[len(lv) // 2:])), float(np.median(vv[len(vv) // 2:])),
               float(np.median(ta[len(ta) // 2:])), float(np.median(va[len(va) // 2:])))


def _evaluation_gap(run: RunLog, loss: Series) -> Finding | None:
    """A validation loss far above the training loss while the validation accuracy matches the
    training accuracy (tensorflow #39831: val_loss 8-20 against 0.07, both accuracies 0.97): the
    model predicts the validation set as well as the training set, so the loss there is made
    differently, not by overfitting, which would lower the accuracy too."""
    for val, steps, vv, train_acc, val_acc, train_level, val_level, a_train, a_val in _split_levels(run, loss):
        # a training set learnt by heart (accuracy ~1, loss ~0) makes any ratio: that is overfitting;
        # a validation loss above a nat at ~the training accuracy is not
        if (not train_level > 0 or val_level < _EVAL_GAP * train_level or abs(a_train - a_val) > _SAME_ACCURACY
                or a_train >= _MEMORISED or val_level < 1.0):
            continue
        return _finding(
            "validation_divergence", "warning",
            f"{val.name} is {val_level / train_level:.3g}x {loss.name} (medians over the last half: "
            f"{val_level:.3g} against {train_level:.3g}, ranging {float(np.min(vv)):.3g}-{float(np.max(vv)):.3g}) "
            f"while {val_acc.name} stays at {a_val:.3g} beside {train_acc.name}'s {a_train:.3g}",
            "The model classifies the validation set as well as the training set, so a loss this much higher is "
            "not overfitting: it is computed differently in evaluation (BatchNorm or dropout left in training "
            "mode, or their running statistics not matching the data; a loss or metric applied to outputs in "
            "another form, such as probabilities where logits are expected), or a few validation samples are "
            "predicted wrongly with extreme confidence. Compare the loss of the same batches in training and "
            "evaluation mode.",
            {"metric": val.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": val_level / train_level,
             "threshold": _EVAL_GAP, "val_level": val_level, "train_level": train_level,
             "val_accuracy": a_val, "train_accuracy": a_train, "train_metric": loss.name}, [])
    return None


#: A training accuracy at least this, a validation accuracy this far below it and a validation loss
#: this many times the training loss (medians over the last half) are a model that learnt its
#: training set and not the task (:func:`_generalisation_gap`)
_FITTED = 0.9
_ACCURACY_GAP = 0.3
_LOSS_GAP = 10.0


def _generalisation_gap(run: RunLog, loss: Series) -> list[Finding]:
    """Overfitting from the first evaluation on: the validation loss never fell far enough to rise
    from, but the training set is learnt (accuracy ~1) while the validation accuracy stays 30+ points
    below it and its loss 10x the training one (LipNet, ls17: 0.996 against 0.35, val_loss 6 against
    0.015 over 6 epochs). A loss gap alone can be made by evaluation (:func:`_evaluation_gap`); the
    accuracies say the model is wrong on the validation set."""
    for val, steps, _, train_acc, val_acc, train_level, val_level, a_train, a_val in _split_levels(run, loss):
        if not train_level > 0 or a_train < _FITTED or a_train - a_val < _ACCURACY_GAP \
                or val_level < _LOSS_GAP * train_level:
            continue
        return [_finding(
            "validation_divergence", "warning",
            f"{train_acc.name} reaches {a_train:.3g} while {val_acc.name} stays at {a_val:.3g}, and {val.name} is "
            f"{val_level / train_level:.3g}x {loss.name} ({val_level:.3g} against {train_level:.3g}, medians over "
            "the last half)",
            "The model has learnt its training set but not the task: it is right on nearly every training sample "
            "and wrong on much of the validation set from the first evaluation on. That is overfitting (too little "
            "data or regularisation for the model's size), or validation data unlike the training data (another "
            "distribution, labels or preprocessing).",
            {"metric": val.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": val_level / train_level,
             "threshold": _LOSS_GAP, "val_level": val_level, "train_level": train_level, "val_accuracy": a_val,
             "train_accuracy": a_train, "train_metric": loss.name},
            [R.weight_decay()])]
    return []


# A task metric of an evaluation, and which way is better: error rates down, scores up. Perplexity
# is the loss itself (exp of it), so it says nothing the loss does not.
_LOWER_BETTER = re.compile(r"(?:^|[/_.])(?:wer|cer|error|err|mae|mse|rmse)(?:$|[/_.])", re.IGNORECASE)
_HIGHER_BETTER = re.compile(r"(?:^|[/_.])(?:acc|accuracy|f1|bleu|rouge\w*|exact_match|em|auc|auroc|map|"
                            r"iou|miou|dice|precision|recall|top1|top5|sacrebleu|chrf|score)(?:$|[/_.])",
                            re.IGNORECASE)
_TASK_GAIN = 0.02  # relative: a task metric 2% better than at the loss's best has kept improving
_SPLIT_PREFIX = re.compile(r"^(?P<split>val|valid|validation|eval|test|dev)(?P<sep>[/_.])", re.IGNORECASE)


#: A metric named for the whole evaluation set (``f1``, ``overall_f1``, ``macro_f1``, ``accuracy``),
#: not for one class or slice of it (``T005_f1``, ``person_precision``).
_OVERALL = re.compile(r"(?:(?:overall|macro|micro|weighted|mean|avg|average)[_/. -]?)?[a-z0-9@]+$", re.IGNORECASE)


def _task_metric_improved(run: RunLog, val: Series, best_step: float) -> tuple[str, float, float] | None:
    """A task metric logged by the same evaluation as ``val`` (``eval_loss`` -> ``eval_wer``,
    ``val_loss`` -> ``val_accuracy``) that is better at the end than when ``val`` was lowest:
    (its name, its value then, its last value); None when there is none."""
    if _SPLIT_PREFIX.match(val.name) is None:
        return None
    # the same evaluation's names: eval_g0_loss -> eval_g0_accuracy, validation/epoch_loss ->
    # validation/epoch_accuracy (another set's metric says nothing about this one)
    prefix = val.name[:val.name.lower().rfind("loss")]
    metrics = [s for s in run.series if s.role == "metric" and s.name.startswith(prefix) and "loss" not in s.name.lower()
               and (_LOWER_BETTER.search(s.name[len(prefix):]) or _HIGHER_BETTER.search(s.name[len(prefix):]))]
    # the set's overall figure where one is logged, not one class's among dozens (an NER
    # evaluation's eval_T005_f1 over 4 entities moves 0.27 with one of them; eval_overall_f1 is
    # what the loss's rise is weighed against)
    overall = [s for s in metrics if _OVERALL.match(s.name[len(prefix):])]
    for s in overall or metrics:
        lower = bool(_LOWER_BETTER.search(s.name[len(prefix):]))
        steps, v = finite(s)
        then = v[steps <= best_step]
        if len(then) == 0 or len(v) < 3 or steps[-1] <= best_step:
            continue
        at_best, last = float(then[-1]), float(v[-1])
        gain = (at_best - last) if lower else (last - at_best)
        # and out of the metric's own evaluation-to-evaluation noise, or its quantum on a small set
        # (an accuracy at chance on 228 samples "improved" 0.048 -> 0.057: two samples)
        steps_between = np.abs(np.diff(v))
        quantum = float(np.min(steps_between[steps_between > 0])) if np.any(steps_between > 0) else 0.0
        noise = max(1.4826 * float(np.median(steps_between)) / math.sqrt(2), quantum)
        # and ending near its own best: a metric that was better before the loss's best than it ends
        # (ls22: eval_accuracy 0.90 at the first evaluation, 0.49 at the loss's best, 0.78 at the end)
        # has not kept improving, it has partly recovered
        best_ever = float(np.min(v)) if lower else float(np.max(v))
        short = (last - best_ever) if lower else (best_ever - last)
        if gain > _TASK_GAIN * abs(at_best) and gain > 3 * noise and short <= 3 * noise:
            return s.name, at_best, last
    return None


@dataclass(frozen=True)
class _Divergence:
    val: Series
    rise: float  # the smoothed rise the rule judges (noise-robust)
    best: float  # the lowest logged value around the smoothed best, as the log writes it
    best_step: float
    last: float
    last_step: float
    train_then: float
    train_now: float
    patience: int


#: A validation loss's rise from its best that is less than this share of its fall from its first
#: value to that best is noise at its floor, not overfitting (overfitting gives back tens of %).
_FLOOR_SHARE = 0.02


#: A validation loss of two or three points (a fine-tune of a few epochs) that ends this far above
#: its best, while the training loss fell by at least as much, is noted (too few points to judge).
_SHORT_RISE = 0.3
_RISES_IN_A_ROW = 4


def _short_divergence(val: Series, loss: Series, t: LogThresholds) -> Finding | None:
    """A validation loss too short for :func:`_diverged` (fewer than ``t.min_points`` evaluations:
    BERT-style fine-tunes of a few epochs) that ends at its highest while the training loss fell:
    a note where it rose ``_SHORT_RISE`` or more above its best and the training loss fell by that
    share (ls13: 0.318, 0.320, 0.443 while the training loss went 0.386 -> 0.113); a warning where
    it rose ``t.validation_rise`` or more over ``_RISES_IN_A_ROW`` rises in a row after its best (or
    1.5 times that over one rise fewer)
    (ls15, a Keras LSTM: 0.6765, 0.6789, 0.6913, 0.7101, 0.7268, 0.7586 while the loss fell 0.67 ->
    0.55), which noise seldom makes. Fewer points cannot tell a trend from one noisy evaluation."""
    vs, vv = finite(val)
    if not 2 <= len(vv) < max(t.min_points, 4) or not np.all(vv > 0):
        return None
    i = int(np.argmin(vv[:-1]))
    best, last = float(vv[i]), float(vv[-1])
    if last < float(np.max(vv[i:])) or last - best <= 3 * resolution(vv):
        return None
    rises = len(vv) - 1 - i
    # four rises in a row, or three that add up to half as much again as a divergence needs
    # (lsw44 u08, a Keras run of 7 epochs: 0.457, 0.469, 0.498, 0.534 while the loss fell 0.37 ->
    # 0.16): noise of a few % seldom climbs that far that steadily
    steady = (rises >= _RISES_IN_A_ROW or (rises >= _RISES_IN_A_ROW - 1
                                           and (last - best) / best >= 1.5 * t.validation_rise)
              ) and bool(np.all(np.diff(vv[i:]) > 0))
    needed = t.validation_rise if steady else _SHORT_RISE
    if (last - best) / best < needed or (not steady and len(vv) > 3):
        return None
    ls, lv = finite(loss)
    then, now = lv[ls <= vs[i]], lv[ls <= vs[-1]]
    if not len(then) or not len(now) or not now[-1] <= (1 - needed) * then[-1]:
        return None
    evidence = {"metric": val.name, "steps": [_num(vs[i]), _num(vs[-1])], "value": (last - best) / best,
                "threshold": needed, "best": best, "best_step": _num(vs[i]), "last": last,
                "raw_rise": (last - best) / best, "train_metric": loss.name, "evaluations": int(len(vv))}
    if steady:
        return _finding(
            "validation_divergence", "warning",
            f"{val.name} rose at each of the {rises} evaluations after its lowest {best:.3g} ({val.where(vs[i])}), "
            f"to {last:.3g} ({val.where(vs[-1])}, {(last - best) / best:+.0%}), while {loss.name} fell from "
            f"{float(then[-1]):.3g} to {float(now[-1]):.3g}",
            "Validation loss rising while training loss falls is overfitting: the model memorises the training "
            f"set. {rises} rises in a row are a trend, not one noisy evaluation.",
            evidence, [R.early_stopping(float(vs[i]), max(2, rises // 2)), R.weight_decay()])
    return _finding(
        "validation_divergence", "info",
        f"{val.name} rose from {best:.3g} ({val.where(vs[i])}) to {last:.3g} ({val.where(vs[-1])}, "
        f"{(last - best) / best:+.0%}) while {loss.name} fell from {float(then[-1]):.3g} to {float(now[-1]):.3g}: "
        f"the start of overfitting, on {len(vv)} evaluations",
        "A validation loss that rises while the training loss falls is the model fitting its training set "
        f"beyond what generalises. {len(vv)} evaluations are too few to call it a trend (one noisy "
        f"evaluation can do it), so this is a note: keep the checkpoint of {val.where(vs[i])} (early stopping) "
        "and evaluate more often to see the trend.",
        evidence, [])


#: Evaluations after the best that a validation divergence needs (fewer: a dip and its noise)
_AFTER_BEST = 3
#: The Mann-Kendall statistic's z a rise after the best must reach: one-sided 5 %
_RISING_Z = 1.64


def _trend_z(x: np.ndarray) -> float:
    """Mann-Kendall's z of ``x``: how consistently later values exceed earlier ones (about 0 for
    noise, positive for a rise), with its continuity correction; ties count as neither."""
    n = len(x)
    if n < 3:
        return 0.0
    signs = np.sign(x[None, :] - x[:, None])[np.triu_indices(n, 1)]
    stat = float(np.sum(signs))
    var = n * (n - 1) * (2 * n + 5) / 18
    return (stat - math.copysign(1.0, stat)) / math.sqrt(var) if stat else 0.0


def _diverged(val: Series, loss: Series, t: LogThresholds) -> _Divergence | None:
    vs, vv = finite(val)
    if len(vv) < 4:
        return None
    # Validation losses are noisy: find the best by smoothed values, then compare levels, not single
    # points: the raw evaluations around the smoothed best against the median of the last three,
    # and ask the rise to stand out of the evaluations' own noise and to be a trend, not a blip (a
    # flat val_loss at 0.030 +- 13 % put its "best" on one low draw and "rose" +30 % in a third of
    # such runs: ls36)
    w = max(3, len(vv) // 10)
    sm = smooth(vv, w)
    i_min = int(np.argmin(sm))
    if i_min > len(vv) - 1 - _AFTER_BEST:
        return None
    best = float(np.median(vv[max(0, i_min - 1):i_min + 2]))
    last = float(np.median(vv[-3:]))
    # the noise of one evaluation: from the points around the running median, and from the steps
    # between successive evaluations after the best (a 3-point median follows each point closely)
    noise = max(1.4826 * float(np.median(np.abs(vv - sm))),
                1.4826 * float(np.median(np.abs(np.diff(vv[i_min:])))) / math.sqrt(2))
    if best <= 0 or (last - best) / best < t.validation_rise or last - best < 3 * noise * math.sqrt(2 / 3):
        return None
    # a trend after the best, or a shift that held: every one of the later half of the evaluations
    # after it (3 at least) above the best by 3 evaluations' noise (nanoGPT's val loss jumping from
    # 1.24 to 1.47 and staying there, drifting slightly down, is no trend but a lasting rise)
    tail = vv[-max(3, (len(vv) - 1 - i_min) // 2):]
    if _trend_z(vv[i_min:]) < _RISING_Z and not bool(np.all(tail > best + 3 * noise)):
        return None
    # A loss printed with few decimals (Keras' console: "val_loss: 0.0013") that rose by a few units
    # of its last place is rounding, not a rise: 0.0010 -> 0.0013 is "+30%".
    if last - best <= 3 * resolution(vv):
        return None
    # Nor is a rise that is a sliver of the run's own descent: a validation loss at 1e-3 after 3.4
    # (accuracy 1.0) is at its floor, where +30% is a few ten-thousandths.
    if last - best < _FLOOR_SHARE * (float(vv[0]) - best):
        return None
    ls, lv = finite(loss)
    after = lv[ls >= vs[i_min]]
    at_best = lv[ls <= vs[i_min]]
    if len(after) < 2 or len(at_best) == 0:
        return None
    train_then, train_now = float(np.median(at_best[-3:])), float(np.median(after[-3:]))
    if not train_now < train_then:
        return None
    # What the user reads in the file: the lowest raw value within the smoothing window of the
    # smoothed best (the weights early stopping would keep), and the last one.
    lo, hi = max(0, i_min - w), min(len(vv), i_min + w + 1)
    j = lo + int(np.argmin(vv[lo:hi]))
    # and the training loss the file shows then and at the end; where those two raw points say the
    # opposite of the medians that decided (a noisy loss's last point above the one at the best:
    # "fell from 0.0187 to 0.0222"), the medians
    then = lv[ls <= vs[j]]
    shown_then, shown_now = (float(then[-1]) if len(then) else train_then), float(lv[-1])
    if not shown_now < shown_then:
        shown_then, shown_now = train_then, train_now
    return _Divergence(val, (last - best) / best, float(vv[j]), float(vs[j]), float(vv[-1]), float(vs[-1]),
                       shown_then, shown_now, int(len(vv) - 1 - j))


#: Ctrl-C, as Python and torch's elastic launcher report it (SIGINT is signal 2)
_BY_HAND = re.compile(r"KeyboardInterrupt|got signal:? *(?:2|SIGINT)\b")


@detects("truncated_log")
def truncated(run: RunLog, t: LogThresholds) -> list[Finding]:
    notes = [w for w in run.warnings if w.code in ("truncated_log", "corrupt_record")]
    if not notes and not run.traceback:
        return []
    last_line = run.traceback.strip().splitlines()[-1] if run.traceback else None
    damage = [w for w in notes if w.code == "corrupt_record" or "traceback" not in w.message]
    if last_line and _BY_HAND.search(last_line) and not damage:
        # Ctrl-C: the user stopped the run; nothing was cut or damaged
        return [_finding(
            "truncated_log", "info", f"the run was stopped by hand: {last_line}",
            "The log ends in a KeyboardInterrupt: someone stopped the run; everything before it is analysed.",
            {"metric": None, "steps": None, "value": 0.0, "problems": [], "traceback_last_line": last_line}, [])]
    summary = (f"the log ends in a traceback: {last_line}" if last_line else
               "; ".join(w.message for w in notes[:3]))
    steps = [s.steps[-1] for s in run.series if len(s)]
    last_step = _num(max(steps)) if steps else None
    return [_finding(
        "truncated_log", "warning", summary,
        "The run stopped abnormally or the file was cut or damaged; everything read before the damage is "
        "still analysed.",
        {"metric": None, "steps": [last_step, last_step] if last_step is not None else None,
         "value": float(len(notes)), "problems": [w.message for w in notes][:20], "traceback_last_line": last_line},
        [])]


@detects("insufficient_data")
def insufficient(run: RunLog, t: LogThresholds) -> list[Finding]:
    main = [s for s in (run.first("loss"), run.first("grad_norm")) if s is not None]
    gan = [s for s in run.series if s.role == "metric" and gan_part(s.name) is not None]
    if not main and {gan_part(s.name) for s in gan} == {"G", "D"}:
        names = ", ".join(s.name for s in gan[:6]) + (" ..." if len(gan) > 6 else "")
        return [_finding(
            "insufficient_data", "info",
            f"a GAN's generator and discriminator losses ({names}): checked for NaN/Inf, for losses that do "
            "not move and for a discriminator at 0 only",
            "The generator and the discriminator play against each other: each one's loss rises when the other "
            "improves, so neither is a training loss whose trend says whether the run learns. Their NaN/Inf are "
            "checked, and losses frozen at one value; log a gradient norm per network (see the recorder) for "
            "the gradient checks.",
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in gan][:50],
             "generator": [s.name for s in gan if gan_part(s.name) == "G"][:20],
             "discriminator": [s.name for s in gan if gan_part(s.name) == "D"][:20]}, [])]
    val = run.first("val_loss")
    if not main and val is not None and int(np.sum(np.isfinite(val.values))) >= 5:
        # a Lightning CSVLogger with only validation_step logging: what it logs is still a loss
        return [_finding(
            "insufficient_data", "info",
            f"no training loss or gradient norm: only {val.name} ({int(np.sum(np.isfinite(val.values)))} points), "
            "checked for NaN/Inf and spikes",
            "The training-side checks (exploding or vanishing gradients, divergence, plateaus, overfitting) need the "
            "training loss or a gradient norm; the validation loss alone is checked for what it can show. Log the "
            "training loss too (self.log('train_loss', loss) in training_step).",
            {"metric": val.name, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50]}, [])]
    if not main and (_on_rollouts(run) or any(_A_REWARD.search(s.name) for s in run.series)):
        rewards = [s.name for s in run.series if _ROLLOUT_REWARD.search(s.name) or _A_REWARD.search(s.name)]
        return [_finding(
            "insufficient_data", "info",
            f"an agent's episode rewards ({', '.join(rewards[:4])}) and no loss or gradient norm: checked for "
            "NaN/Inf only",
            "A reinforcement-learning run's reward is what improves, but whether it does is the task's to say (a "
            "reward's scale and pace are the environment's), so it is not judged as a loss; its NaN/Inf are "
            "checked. Log the policy and value losses or a gradient norm (see the recorder) for the gradient checks.",
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50]}, [])]
    accuracy = [a for a in accuracies(run) if a is not None and int(np.sum(np.isfinite(a.values))) >= 5]
    if not main and accuracy:
        # MXNet's Speedometer and Module.fit log accuracy alone by default (ls18, ls20): a run the user
        # can read from its accuracy, not a log that says nothing
        names = ", ".join(a.name for a in accuracy)
        return [_finding(
            "insufficient_data", "info",
            f"no training loss or gradient norm: only {names}, checked for NaN/Inf",
            "The gradient and loss checks (exploding or vanishing gradients, divergence, plateaus, overfitting) "
            "need the training loss or a gradient norm; an accuracy alone says how well the model does, not why. "
            "Log the loss too (MXNet: eval_metric=['acc', 'ce']; Keras logs it by default).",
            {"metric": accuracy[0].name, "steps": None, "value": 0.0,
             "series": [s.name for s in run.series][:50]}, [])]
    named = [s for s in run.series if s.role == "metric" and "loss" in s.name.lower()
             and bool(np.any(np.isfinite(s.values)))]
    if not main and named:
        # an actor's and a critic's losses, two autoencoders' (faceswap's loss_A, loss_B), a value
        # loss alone (ls21): losses, but none the training loss whose trend the checks can judge
        names = ", ".join(s.name for s in named[:5]) + (" ..." if len(named) > 5 else "")
        return [_finding(
            "insufficient_data", "info",
            f"losses logged ({names}) but none is a training loss the trend checks judge: checked for NaN/Inf",
            "These are separate objectives (an actor's and a critic's, two models'), or one that is not minimised "
            "towards a floor, so no one of them says whether the run learns, and they do not add up to a loss; "
            "their NaN/Inf and blow-ups are checked. Log the total loss, or a gradient norm (see the recorder), "
            "for the gradient and trend checks.",
            {"metric": named[0].name, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50]},
            [])]
    if not main:
        return [_finding(
            "insufficient_data", "warning",
            "the log has no training loss and no gradient norm to judge"
            + (f" (series found: {', '.join(s.name for s in run.series[:8])})" if run.series else ""),
            "Without a loss or gradient-norm series none of the checks can run; log them (see the recorder).",
            {"metric": None, "steps": None, "value": 0.0, "series": [s.name for s in run.series][:50]}, [])]
    longest = max(main, key=lambda s: int(np.sum(np.isfinite(s.values))))
    n = int(np.sum(np.isfinite(longest.values)))
    if n >= t.min_points:
        return _within_one_epoch(longest)
    return [_finding(
        "insufficient_data", "info",
        f"only {n} point(s) in {longest.name}: too short to judge trends",
        "Trend checks need at least a few points; only the per-point checks (NaN/Inf) ran.",
        {"metric": longest.name, "steps": _span(longest.steps) if len(longest) else None, "value": float(n),
         "threshold": float(t.min_points)}, [])]


def _within_one_epoch(s: Series) -> list[Finding]:
    """A note for an excerpt that lies within one epoch of a run already under way (a progress bar
    pasted from epoch 476, 0-11 % of it): its points are enough for the checks, the span is not
    enough to say how the run trends."""
    steps = finite(s)[0]
    if s.step_unit != "epoch" or not len(steps):
        return []
    first, last = float(steps[0]), float(steps[-1])
    if last - first >= 1 or first < 2:
        return []
    return [_finding(
        "insufficient_data", "info",
        f"{s.name} covers only {last - first:.2g} of an epoch (epochs {first:.4g}-{last:.4g}) of a run already "
        "under way: too little of it to judge the run's trends",
        "An excerpt within one epoch shows the batch-to-batch noise around a level, not whether the run still "
        "learns; the per-point checks ran. Check the whole log, or its per-epoch values.",
        {"metric": s.name, "steps": [_num(first), _num(last)], "value": last - first, "threshold": 1.0}, [])]


#: The log check's detectors, in registry order (the order findings of equal severity are listed).
DETECTORS: tuple[Detector, ...] = tuple(r.detector for r in rules() if r.detector is not None)
