"""Validation against training: a validation loss that turns up while the training loss falls, gaps
between the splits (``validation_divergence``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.derive import component_pairs
from gradhealth.logs.detectors.chance import accuracies, as_fraction
from gradhealth.logs.detectors.common import finding
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import (
    diff_noise,
    finite,
    median,
    resolution,
    second_diff_noise,
    smooth,
    theil_sen,
)
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds


@detects("validation_divergence")
def validation(run: RunLog, t: LogThresholds) -> list[Finding]:
    """Every validation loss (a Trainer evaluating several sets logs one per set) that rose clearly
    from its best while the training loss fell, and every validation component loss (YOLO's
    ``val/cls_loss``) that rose while its own training counterpart (``train/cls_loss``) fell; the
    finding is the largest rise, naming the others."""
    loss = run.first("loss")
    if loss is None:
        return []
    gap = _evaluation_gap(run, loss)
    if gap is not None:
        return [gap]
    found = sorted((d for val in run.ranked("val_loss")
                    if (d := _diverged(val, loss, t) or _steady_divergence(run, val, loss, t)
                        or _corroborated_divergence(run, val, loss, t)) is not None),
                   key=lambda d: -d.rise)
    # a sum of component losses can hide one part's rise under the others' fall or flat level
    # (ls48: YOLOv8's val/cls_loss +24% after its best under flat box and dfl terms):
    # each part is judged against its own training part as well
    parts = sorted((d for val, train in component_pairs(run)
                    if (d := _diverged(val, train, t) or _slow_divergence(run, val, train, t)) is not None),
                   key=lambda d: -d.rise)
    if not found and not parts:
        short = [f for val in run.ranked("val_loss") if (f := _short_divergence(run, val, loss, t)) is not None][:1]
        return short or _generalisation_gap(run, loss) or _stalled_gap(run, loss) or _noisy_divergence(run, loss, t)
    # each judged with its excuse: the largest rise of the whole validation loss as ever (a task
    # metric of its own evaluation), a part also by the detector's metrics/ columns (mAP). The
    # finding names the first one no task metric excuses; a note where every one is excused. (The
    # whole loss keeps its own-prefix excuse only: YOLOv5's sum +38% beside an mAP creeping
    # 0.29 -> 0.32 over 130 epochs is overfitting of its objectness head, ls41.)
    judged = [(o, _task_metric_improved(run, o.val, o.best_step)) for o in found[:1]]
    judged += [(o, _task_metric_improved(run, o.val, o.best_step, evaluation=True)) for o in parts]
    d, better = next(((o, b) for o, b in judged if b is None), judged[0])
    val, train = d.val, d.train
    others = [o.val.name for o in found + parts if o is not d]
    raw_rise = (d.last - d.best) / d.best
    evidence = {"metric": val.name, "steps": [_num(d.best_step), _num(d.last_step)], "value": d.rise,
                "threshold": d.needed, "best": d.best, "best_step": _num(d.best_step), "last": d.last,
                "raw_rise": raw_rise, "train_metric": train.name, "train_then": d.train_then, "train_last": d.train_now}
    if parts:
        # the worst part, named even where the whole loss's rise is the finding
        evidence |= {"component": parts[0].val.name, "component_rise": parts[0].rise,
                     "component_train_metric": parts[0].train.name}
    # over-confidence explains a rising loss beside a rising task metric, but not a training set
    # learnt while the validation accuracy trails it by 30 points (ls19's EEG runs: val_loss 3x its
    # best, training accuracy 1.0, validation 0.44 -> 0.53): that is overfitting still
    fell = _task_metric_fell(run, val) if better is None else None
    # the task metric's train-validation gap growing from the loss's best on: overfitting's own
    # evidence, said beside the loss's rise (and the reason a small validation gain excuses nothing)
    widened = _widening(run, val, d.best_step) if better is None else None
    part = _part_of_a_holding_whole(run, d, found, parts) if better is None else None
    if part is not None:
        return [finding(
            "validation_divergence", "info",
            f"{val.name} rose from its lowest {d.best:.3g} ({val.where(d.best_step)}) to {d.last:.3g} "
            f"({val.where(d.last_step)}, {raw_rise:+.0%}) while {_fell_or_held(train.name, d.train_then, d.train_now)}"
            f"; but it is one part of the validation loss ({part['summary']})",
            "A detector's validation loss is a sum of parts (box, class, distribution focal); one part drifting up "
            "late in a long run while the others and the task metric hold is mild over-fitting of that head or "
            "over-confidence on hard boxes, not a model getting worse at its task: keep the checkpoint with the "
            "best task metric.",
            {**evidence, **{k: v for k, v in part.items() if k != "summary"}}, [])]
    if better is not None and not _generalisation_gap(run, loss):
        return [finding(
            "validation_divergence", "info",
            f"{val.name} rose from its lowest {d.best:.3g} ({val.where(d.best_step)}) to {d.last:.3g} "
            f"({raw_rise:+.0%}), but {better.words(val)}",
            "A validation loss that rises while the task metric of the same evaluation still improves is "
            "usually over-confidence on the examples it gets wrong (calibration), not overfitting; keep the "
            f"checkpoint with the best {better.name}.",
            {**evidence, **better.evidence()}, [])]
    return [finding(
        "validation_divergence", "warning",
        f"{val.name} rose from its lowest {d.best:.3g} ({val.where(d.best_step)}) to {d.last:.3g} "
        f"({val.where(d.last_step)}, {raw_rise:+.0%}) while {_fell_or_held(train.name, d.train_then, d.train_now)}"
        + (f"; also {', '.join(others[:4])}" + (" ..." if len(others) > 4 else "")
                                if others else "")
        # (an error rate's best is its least: it ends above it)
        + (f"; {fell[0]} ends at {fell[3]:.4g}, {'below' if fell[3] < fell[1] else 'above'} its best "
           f"{fell[1]:.4g} ({val.where(fell[2])})" if fell else "")
        + (f"; the gap between {widened[1]} and {widened[0]} grew from {widened[2]:.3g} to {widened[3]:.3g} "
           f"({widened[1]} {widened[4]:.4g} -> {widened[5]:.4g}): the training set gained more than twice what "
           "carried over to validation" if widened else ""),
        _why_rose(d.train_then, d.train_now),
        {**evidence, "also_diverged": others,
         **({"task_metric": fell[0], "task_metric_best": fell[1], "task_metric_best_step": _num(fell[2]),
            "task_metric_last": fell[3]} if fell else {}),
         **({"gap_metric": widened[0], "gap_train_metric": widened[1], "train_val_gap_then": widened[2],
             "train_val_gap_last": widened[3]} if widened else {})},
        # the weights to keep are those the finding reasons from: the task metric's best where it names
        # one that fell back (logsweep86: "eval_wer ends at 0.7, above its best 0.6 (step 2000)" kept
        # step 1000, the loss's best, where eval_wer was 0.80)
        [R.early_stopping(fell[2], _patience(d, fell[2]), monitor=fell[0],
                          lower_is_better=bool(_LOWER_BETTER.search(fell[0])), where=val.where(fell[2]))
         if fell else R.early_stopping(d.best_step, _patience(d), where=val.where(d.best_step)), R.weight_decay()])]


#: A part's task metric that ends within this share of its best holds (mAP50-95 moves a few % from
#: epoch to epoch late in a detector's run; 10 % under its best is a model clearly worse at its task)
_TASK_HOLDS = 0.10


def _part_of_a_holding_whole(run: RunLog, d: _Divergence, found: list[_Divergence],
                             parts: list[_Divergence]) -> dict[str, object] | None:
    """Where the finding ``d`` is one component of a multi-part validation loss that did not itself
    diverge (``found`` empty), and the task metric holds (its detector metric, or the evaluation's own,
    ends within :data:`_TASK_HOLDS` of its best), or, with no task metric logged, the parts' sum ends
    within the rise the rule asks for of where it was at the part's best: the evidence for a note,
    naming the components (logsweep71 h06: YOLOv8 val/box_loss +13% from epoch 28 while val/cls_loss
    fell 1.58 -> 0.70 and mAP50-95 ended 6% under its best). None where the warning stands."""
    if found or d not in parts:
        return None
    comps = [o.val for o in parts] + [v for v, _ in component_pairs(run) if v.name not in {o.val.name for o in parts}]
    changes: dict[str, float] = {}
    then_sum = now_sum = 0.0
    for c in comps:
        cs, cv = finite(c)
        before = cv[cs <= d.best_step]
        if not len(before) or len(cv) < 3:
            return None
        then, now = float(before[-1]), float(median(cv[-3:]))
        changes[c.name] = (now - then) / then if then else 0.0
        then_sum, now_sum = then_sum + then, now_sum + now
    sum_rise = (now_sum - then_sum) / then_sum if then_sum > 0 else math.inf
    metrics = _own_metrics(run, d.val) or [(s, False) for s in _evaluation_metrics(run)[:1]]
    task = _task_metric_fell(run, d.val, by=_TASK_HOLDS, sustained=True)
    if metrics:
        if task is not None:
            return None
        s, _lower = metrics[0]
        ms, mv = finite(s)
        if len(mv) < 3:
            return None
        best = float(np.max(mv)) if not _lower else float(np.min(mv))
        gap = abs(best - float(mv[-1])) / abs(best) if best else 0.0
        held = f"{s.name} ends at {float(mv[-1]):.4g}, within {gap:.0%} of its best {best:.4g}"
        extra: dict[str, object] = {"task_metric": s.name, "task_metric_best": best, "task_metric_last": float(mv[-1])}
    elif sum_rise < d.needed:
        held, extra = "no task metric logged", {}
    else:
        return None
    shown = ", ".join(f"{n} {v:+.0%}" for n, v in changes.items())
    return {"summary": f"from {d.val.where(d.best_step)} to the end the parts moved {shown}, their sum {sum_rise:+.0%}; "
                       f"{held}",
            "components": sorted(changes), "component_changes": changes, "components_sum_rise": sum_rise,
            "task_metric_holds": bool(metrics), **extra}


def _patience(d: _Divergence, best_step: float | None = None) -> int:
    """The early-stopping patience to suggest: a quarter of the evaluations it took to reach the best
    (a run that found its best after 28 evaluations has stalled after 7 more without gain), at least
    3 (one noisy evaluation must not stop it) and at most 20, and never more than half the evaluations
    that passed since the best (so the rule would have stopped this run). It was half the evaluations
    since the best: "46 evaluations" for a run that peaked at 28 of 120. With ``best_step``, counted
    from that best instead of the loss's (a task metric's, where the finding keeps its weights)."""
    vs, _ = finite(d.val)
    best = d.best_step if best_step is None else best_step
    before = int(np.sum(vs <= best))
    since = d.patience if best_step is None else int(np.sum(vs > best))
    return max(2, min(max(3, min(20, round(before / 4))), max(2, since // 2)))


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
    ta, va = as_fraction(finite(train_acc)[1]), as_fraction(finite(val_acc)[1])
    for val in run.ranked("val_loss"):
        steps, vv = finite(val)
        if min(len(vv), len(lv), len(ta), len(va)) < 4:
            continue
        yield (val, steps, vv, train_acc, val_acc,
               float(median(lv[len(lv) // 2:])), float(median(vv[len(vv) // 2:])),
               float(median(ta[len(ta) // 2:])), float(median(va[len(va) // 2:])))


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
        return finding(
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
        return [finding(
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


#: The training loss's fall, from its level at the validation loss's best to its level at the last
#: evaluation, that a validation loss which never improved again makes overfitting (beside a gap of
#: :data:`_LOSS_GAP`): the training loss halved and none of it carried over (:func:`_stalled_gap`)
_STALL_TRAIN_FALL = 2.0
_STALL_EVALUATIONS = 3


def _train_level(ls: np.ndarray, lv: np.ndarray, after: float, upto: float) -> float | None:
    """The median training loss of the points in (``after``, ``upto``]: the training that led up to
    an evaluation at ``upto`` (``after`` the evaluation before it); None where none was logged."""
    seg = lv[(ls > after) & (ls <= upto)]
    return float(median(seg)) if len(seg) else None


def _stalled_gap(run: RunLog, loss: Series) -> list[Finding]:
    """Overfitting with no rise to see and no accuracy to tell (an LLM fine-tune's trainer_state,
    loss only, 3 evaluations: logsweep91 hf_catrobot_overfit, eval_loss 1.01 -> 0.904 -> 0.927 while
    the training loss fell 0.21 -> 0.046): the validation loss has not improved since its best at an
    earlier evaluation, while the training loss fell :data:`_STALL_TRAIN_FALL` times or more over the
    same stretch (its median over the training that led up to the best evaluation, against its median
    since the evaluation before the last) and ends :data:`_LOSS_GAP` times or more under the last
    validation loss. What the model learnt since its best evaluation carried nothing over to held-out
    data: it memorised its training set. Where both splits log an accuracy and they agree (within
    :data:`_SAME_ACCURACY`), the loss gap is made by the evaluation, not overfitting: no finding."""
    train_acc, val_acc = accuracies(run)
    if train_acc is not None and val_acc is not None:
        ta, va = as_fraction(finite(train_acc)[1]), as_fraction(finite(val_acc)[1])
        if len(ta) and len(va) and abs(float(median(ta[len(ta) // 2:])) - float(median(va[len(va) // 2:]))) \
                <= _SAME_ACCURACY:
            return []
    ls, lv = finite(loss)
    for val in run.ranked("val_loss"):
        vs, vv = finite(val)
        if len(vv) < _STALL_EVALUATIONS or val.step_unit != loss.step_unit or float(np.min(vv)) <= 0:
            continue
        i_best = int(np.argmin(vv))
        if i_best == len(vv) - 1:
            continue  # (still improving at its last evaluation)
        then = _train_level(ls, lv, float(vs[i_best - 1]) if i_best else -math.inf, float(vs[i_best]))
        now = _train_level(ls, lv, float(vs[-2]), math.inf)
        last = float(vv[-1])
        if then is None or now is None or not now > 0 or then < _STALL_TRAIN_FALL * now or last < _LOSS_GAP * now:
            continue
        best, best_step = float(vv[i_best]), float(vs[i_best])
        since = len(vv) - 1 - i_best
        return [finding(
            "validation_divergence", "warning",
            f"{val.name} has not improved since its lowest {best:.3g} ({val.where(best_step)}; {last:.3g} at "
            f"{val.where(float(vs[-1]))}, {since} evaluation{'s' if since > 1 else ''} later) while {loss.name} "
            f"fell {then / now:.3g}x ({then:.3g} -> {now:.3g}, medians over the training before each "
            f"evaluation) to {last / now:.3g}x under it",
            "The training loss kept falling while the validation loss stopped improving: what the model learnt "
            "since its best evaluation did not carry over to held-out data, and a training loss this far under "
            "the validation loss says it memorised its training set (too many epochs or too high a rate for "
            "the data's size, too little regularisation). Keep the weights of the best evaluation.",
            {"metric": val.name, "steps": [_num(best_step), _num(float(vs[-1]))], "value": last / now,
             "threshold": _LOSS_GAP, "best": best, "best_step": _num(best_step), "last": last,
             "train_metric": loss.name, "train_then": then, "train_last": now, "train_fall": then / now,
             "train_fall_threshold": _STALL_TRAIN_FALL},
            [R.early_stopping(best_step, max(2, min(3, since)), where=val.where(best_step)), R.weight_decay()])]
    return []


# A task metric of an evaluation, and which way is better: error rates down, scores up. Perplexity
# is the loss itself (exp of it), so it says nothing the loss does not.
_LOWER_BETTER = re.compile(r"(?:^|[/_.])(?:wer|cer|error|err|mae|mse|rmse)(?:$|[/_.])", re.IGNORECASE)
_HIGHER_BETTER = re.compile(r"(?:^|[/_.])(?:acc|accuracy|f1|fscore|fmeasure|bleu|rouge\w*|exact_match|em|auc|auroc|map|"
                            r"iou|miou|dice|precision|recall|top1|top5|sacrebleu|chrf|score)(?:$|[/_.])",
                            re.IGNORECASE)
_TASK_GAIN = 0.02  # relative: a task metric 2% better than at the loss's best has kept improving
_SPLIT_PREFIX = re.compile(r"^(?P<split>val|valid|validation|eval|test|dev)(?P<sep>[/_.])", re.IGNORECASE)


#: A metric named for the whole evaluation set (``f1``, ``overall_f1``, ``macro_f1``, ``accuracy``),
#: not for one class or slice of it (``T005_f1``, ``person_precision``).
_OVERALL = re.compile(r"(?:(?:overall|macro|micro|weighted|mean|avg|average)[_/. -]?)?[a-z0-9@]+$", re.IGNORECASE)


def _own_metrics(run: RunLog, val: Series) -> list[tuple[Series, bool]]:
    """The task metrics logged by the same evaluation as ``val`` (a name with a split prefix), each
    with whether lower is better; the set's overall figures where any are logged."""
    # the same evaluation's names: eval_g0_loss -> eval_g0_accuracy, validation/epoch_loss ->
    # validation/epoch_accuracy (another set's metric says nothing about this one)
    prefix = val.name[:val.name.lower().rfind("loss")]
    metrics = [s for s in run.series if s.role == "metric" and s.name.startswith(prefix) and "loss" not in s.name.lower()
               and (_LOWER_BETTER.search(s.name[len(prefix):]) or _HIGHER_BETTER.search(s.name[len(prefix):]))]
    # the set's overall figure where one is logged, not one class's among dozens (an NER
    # evaluation's eval_T005_f1 over 4 entities moves 0.27 with one of them; eval_overall_f1 is
    # what the loss's rise is weighed against)
    overall = [s for s in metrics if _OVERALL.match(s.name[len(prefix):])]
    loss = run.first("loss")
    if not metrics and loss is not None:
        # none under the loss's prefix: a task metric logged at exactly the evaluations' steps is
        # the same evaluation's (Lightning's self.log("mAP") in validation_step beside val_loss),
        # where the evaluations are at most half the training loss's points (in a table of one row
        # per epoch every column shares the steps, and YOLO's mAP is no excuse for its summed loss)
        at = set(finite(val)[0].tolist())
        metrics = [s for s in run.series if s.role == "metric" and "loss" not in s.name.lower()
                   and (_LOWER_BETTER.search(s.name) or _HIGHER_BETTER.search(s.name))
                   and len(at) >= 3 and set(finite(s)[0].tolist()) == at] \
            if len(at) <= len(finite(loss)[0]) // 2 else []
        return [(s, bool(_LOWER_BETTER.search(s.name))) for s in metrics]
    return [(s, bool(_LOWER_BETTER.search(s.name[len(prefix):]))) for s in overall or metrics]


@dataclass(frozen=True)
class _Improved:
    """A task metric better at the end than at the validation loss's best (:func:`_task_metric_improved`):
    its name, its value then and at the end, its own best and where (the step it stopped improving)."""
    name: str
    then: float
    last: float
    best: float
    best_step: float
    lower: bool  # an error rate: lower is better
    noise: float = 0.0  # the noise of one of its evaluations from its best on

    @property
    def short(self) -> float:
        """How far its last value is worse than its own best, relative (0 where it ends at its best)."""
        gap = (self.last - self.best) if self.lower else (self.best - self.last)
        return max(gap, 0.0) / abs(self.best) if self.best else 0.0

    def words(self, val: Series) -> str:
        """The metric's course in words: improved from then to the end, and, where its best came
        before the end, when it stopped improving and how near its best it ends."""
        said = f"{self.name} improved: {self.then:.4g} then, {self.last:.4g} at the end"
        if self.last == self.best:
            return said
        if self.short * abs(self.best) <= 3 * self.noise:
            # a best before the end by less than the metric's own scatter: no sign it stopped
            return f"{said} (its best {self.best:.4g}, {val.where(self.best_step)}, is within its noise of that)"
        return (f"{said}; it stopped improving at {val.where(self.best_step)} (its best {self.best:.4g}) and ends "
                f"{self.short:.1%} {'above' if self.lower else 'below'} that")

    def evidence(self) -> dict[str, object]:
        return {"task_metric": self.name, "task_metric_then": self.then, "task_metric_last": self.last,
                "task_metric_best": self.best, "task_metric_best_step": _num(self.best_step)}


def _task_metric_improved(run: RunLog, val: Series, best_step: float,
                          evaluation: bool = False) -> _Improved | None:
    """A task metric logged by the same evaluation as ``val`` (``eval_loss`` -> ``eval_wer``,
    ``val_loss`` -> ``val_accuracy``) that is better at the end than when ``val`` was lowest and
    still at (or near) its own best: its course (:class:`_Improved`); None when there is none. With
    ``evaluation``, where none has ``val``'s prefix, the detector's ``metrics/`` columns
    (:func:`_evaluation_metrics`) are that evaluation's metrics.

    Near its best: no further below it at the end than 3 of its own noise from its best on (the
    residuals around the Theil-Sen line of the evaluations from its best, :func:`_noise_after`; of
    all its evaluations where fewer than 3 follow the best) or :data:`_TASK_GAIN` of it, the
    least change the module calls a metric moving. A metric that kept improving after the loss's
    best, then peaked and fell back while the loss went on rising, no longer excuses the rise
    (logsweep86: eval_wer 0.80, 0.60, 0.60, 0.60, 0.63 beside an eval_loss doubling was a note,
    its noise read from differences that included its own 0.2 improvement)."""
    if _SPLIT_PREFIX.match(val.name) is None:
        return None
    judged = _own_metrics(run, val)
    # no metric under the loss's own prefix: the evaluation's metrics/ columns (Ultralytics writes
    # val/box_loss beside metrics/mAP50-95(B)), all higher-better
    for s, lower in judged or [(s, False) for s in (_evaluation_metrics(run) if evaluation else [])]:
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
        noise = max(1.4826 * float(median(steps_between)) / math.sqrt(2), quantum)
        # and ending near its own best: a metric that was better before the loss's best than it ends
        # (ls22: eval_accuracy 0.90 at the first evaluation, 0.49 at the loss's best, 0.78 at the end)
        # has not kept improving, it has partly recovered; one that peaked after it and fell back
        # beyond its noise has stopped improving (its noise from its best on, without the climb to it)
        signed = -v if lower else v
        i = int(np.argmax(signed))
        best_ever = float(v[i])
        short = float(signed[i]) - float(signed[-1])
        spread = _noise_after(signed[i:] if len(signed) - i >= 3 else signed)
        near = max(3 * spread, _TASK_GAIN * abs(best_ever))
        if gain > _TASK_GAIN * abs(at_best) and gain > 3 * noise and short <= near \
                and _gap_widened(run, s, lower, best_step, gain) is None:
            return _Improved(s.name, at_best, last, best_ever, float(steps[i]), lower, spread)
    return None


def _training_counterpart(run: RunLog, s: Series) -> Series | None:
    """The training split's series of validation metric ``s`` (``val_accuracy`` -> ``accuracy``,
    ``train_accuracy``, ``train/accuracy``); None where the run logs none."""
    m = _SPLIT_PREFIX.match(s.name)
    if m is None:
        return None
    rest = s.name[m.end():]
    names = [rest, *(f"{p}{sep}{rest}" for p in ("train", "training") for sep in dict.fromkeys((m["sep"], "_", "/")))]
    by_name = {x.name: x for x in run.series if x is not s}
    return next((by_name[n] for n in names if n in by_name), None)


def _gap_widened(run: RunLog, val_metric: Series, lower: bool, best_step: float,
                 gain: float) -> tuple[str, float, float, float, float] | None:
    """Where the gap between a task metric's training and validation values grew from the
    validation loss's best (``best_step``) to the end by more than the validation metric itself
    gained (``gain``), and by more than three of the gap's own evaluation-to-evaluation noise:
    (the training metric's name, the gap then, the gap at the end, the training metric then and
    at the end). None where it did not, or no training counterpart is logged. The training set
    took more than twice what carried over to the validation set, which is overfitting, whatever
    the validation metric's own small gain (peersweep18: accuracy 0.705 -> 0.882 while
    val_accuracy crept 0.63 -> 0.65, the gap 0.08 -> 0.23); over-confidence on the examples it
    gets wrong leaves the two splits' metrics rising together."""
    train = _training_counterpart(run, val_metric)
    if train is None:
        return None
    ts, tv = finite(train)
    vs, vv = finite(val_metric)
    common, ti, vi = np.intersect1d(ts, vs, return_indices=True)
    if len(common) < 4 or common[-1] <= best_step:
        return None
    t_at, v_at = tv[ti], vv[vi]
    # the gap, signed so that it grows as the training split pulls ahead
    gap = (v_at - t_at) if lower else (t_at - v_at)
    before = np.flatnonzero(common <= best_step)
    if len(before) == 0:
        return None
    i = int(before[-1])
    # medians over three evaluations at either end: one noisy evaluation neither opens nor closes it
    then = float(median(gap[max(0, i - 1):i + 2]))
    now = float(median(gap[-3:]))
    diffs = np.abs(np.diff(gap))
    noise = 1.4826 * float(median(diffs)) / math.sqrt(2) if len(diffs) else 0.0
    if now - then > gain and now - then > 3 * noise:
        return train.name, then, now, float(t_at[i]), float(median(t_at[-3:]))
    return None


def _widening(run: RunLog, val: Series, best_step: float) -> tuple[str, str, float, float, float, float] | None:
    """The first task metric of ``val``'s evaluation whose train-validation gap widened
    (:func:`_gap_widened`) from ``best_step`` on: (the validation metric's name, the training
    one's, the gap then, at the end, the training metric then and at the end); None where none did."""
    if _SPLIT_PREFIX.match(val.name) is None:
        return None
    for s, lower in _own_metrics(run, val):
        steps, v = finite(s)
        then = v[steps <= best_step]
        if len(then) == 0 or len(v) < 3:
            continue
        gain = (float(then[-1]) - float(v[-1])) if lower else (float(v[-1]) - float(then[-1]))
        w = _gap_widened(run, s, lower, best_step, max(gain, 0.0))
        if w is not None:
            return s.name, *w
    return None


#: The metrics Ultralytics (v5 and v8+) writes for its validation set: ``metrics/mAP50-95(B)``,
#: ``metrics/mAP_0.5:0.95``, ``metrics/precision(M)``; all higher-better.
_EVALUATION_METRIC = re.compile(r"^metrics/(?P<what>map|precision|recall)(?P<iou>[_\d.:-]*)(?:\([A-Z]\))?$",
                                re.IGNORECASE)


def _evaluation_metrics(run: RunLog) -> list[Series]:
    """The validation metrics a detector logs under ``metrics/``, the one it selects its best
    weights by first: mAP over IoU 0.5-0.95 where logged (Ultralytics' fitness is 0.9 of it), else
    mAP at 0.5, else precision and recall (each alone can improve at the other's cost, as the
    dental run's precision 0.34 -> 0.41 while its mAP50-95 fell 0.35 -> 0.27)."""
    found = [(s, m) for s in run.series if s.role == "metric" and (m := _EVALUATION_METRIC.match(s.name.strip()))]
    maps = [(s, m) for s, m in found if m["what"].lower() == "map"]
    wide = [s for s, m in maps if "95" in m["iou"]]
    return wide or [s for s, _ in maps] or [s for s, _ in found]


def _task_metric_fell(run: RunLog, val: Series, by: float = _TASK_GAIN, since: float | None = None,
                      sustained: bool = False, evaluation: bool = True) -> tuple[str, float, float, float] | None:
    """A task metric of the same evaluation as ``val`` (:func:`_own_metrics`: ``val_accuracy``,
    ``validation_fscore``), else the detector's main validation metric (:func:`_evaluation_metrics`),
    where it ends clearly (``by``, relative) worse than its own best: (its name, its best, where,
    its last value), the task's side of an overfitting the losses show; None when there is none or
    it ends near its best. With ``since``, its best from that step on; with ``sustained``, the
    median of its last three evaluations must be that much worse too (not one bad last one), and
    the last one worse by 3 of the metric's own noise (:func:`_noise_after`). Without
    ``evaluation``, the metrics of ``val``'s own evaluation only."""
    if _SPLIT_PREFIX.match(val.name) is None:
        return None
    judged = _own_metrics(run, val) or [(s, False) for s in (_evaluation_metrics(run)[:1] if evaluation else [])]
    for s, lower in judged:
        steps, v = finite(s)
        if since is not None:
            steps, v = steps[steps >= since], v[steps >= since]
        if len(v) < 3:
            continue
        # a lower-better metric (an error rate) is judged on its negation: its best is its least
        signed = -v if lower else v
        i = int(np.argmax(signed))
        best = float(signed[i])
        ends = [float(signed[-1])] + ([float(median(signed[-3:]))] if sustained else [])
        # a metric on a small set moves by its noise (4 % of an accuracy of 0.8 made a "fall" of 5 %
        # beside a flat noisy loss in a twentieth of simulated runs)
        if sustained and best - float(signed[-1]) <= 3 * _noise_after(signed):
            continue
        if all(e < best - by * abs(best) for e in ends):
            return s.name, float(v[i]), float(steps[i]), float(v[-1])
    return None


@dataclass(frozen=True)
class _Divergence:
    val: Series
    train: Series  # the training loss it is judged against (a component's own, for a component)
    rise: float  # the smoothed rise the rule judges (noise-robust)
    best: float  # the lowest logged value around the smoothed best, as the log writes it
    best_step: float
    last: float
    last_step: float
    train_then: float
    train_now: float
    patience: int
    needed: float  # the least rise it was judged by (a slow, steady part's is lower)
    z: float = 0.0  # Mann-Kendall's z of the evaluations from the smoothed best on
    noise: float = 0.0  # the noise of one evaluation (:func:`_noise_after`)
    noisy: bool = False  # the rise is less than the noise gate asks (only with ``within_noise``)
    margin: float = math.inf  # the rise of the levels in noises of their difference (the gate's unit)


#: A validation loss's rise from its best that is less than this share of its fall from its first
#: value to that best is noise at its floor, not overfitting (overfitting gives back tens of %).
_FLOOR_SHARE = 0.02


#: A validation loss of two or three points (a fine-tune of a few epochs) that ends this far above
#: its best, while the training loss fell by at least as much, is noted (too few points to judge).
_SHORT_RISE = 0.3
_RISES_IN_A_ROW = 4
#: Rises in a row after the best, up to the last evaluation, that make a rise of ``_SLOW_RISE`` a
#: trend in a series of any length: noise puts five in a row once in 720 tries.
_LONG_RISES = 5
#: A sustained rise: ``_RISES_IN_A_ROW`` or more rises in a row from the lowest evaluation to the
#: last, adding up to ``_SUSTAINED_GATE`` evaluations' noise (of a difference of two) and
#: ``_SUSTAINED_RISE`` (relative) or more, while the training loss fell by that share too
#: (:func:`_short_divergence`). On white noise the rises in a row alone come once in 120 tries (four
#: after the lowest evaluation: 0.26 % of 17-point series); with the gate 0.07 %, 0.02 % at 30 points.
_SUSTAINED_RISE = 0.03
_SUSTAINED_GATE = 3.0
#: A short run's last evaluations that must all stand well above its best for a warning
_HELD = 2


def _short_divergence(run: RunLog, val: Series, loss: Series, t: LogThresholds) -> Finding | None:
    """A validation loss too short for :func:`_diverged` (fewer than ``t.min_points`` evaluations:
    BERT-style fine-tunes of a few epochs) that ends at its highest while the training loss fell:
    a note where it rose ``_SHORT_RISE`` or more above its best and the training loss fell by that
    share (ls13: 0.318, 0.320, 0.443 while the training loss went 0.386 -> 0.113); a warning where
    it rose ``t.validation_rise`` or more over ``_RISES_IN_A_ROW`` rises in a row after its best (or
    1.5 times that over one rise fewer)
    (ls15, a Keras LSTM: 0.6765, 0.6789, 0.6913, 0.7101, 0.7268, 0.7586 while the loss fell 0.67 ->
    0.55), which noise seldom makes. Fewer points cannot tell a trend from one noisy evaluation.
    In a series of any length, ``_LONG_RISES`` rises in a row from the lowest evaluation to the last
    are a warning from a rise of ``_SLOW_RISE`` (logsweep53: a tiny transformer's val_loss 1.4986,
    1.508, 1.509, 1.545, 1.585, 1.611, +7.5 %, while the loss fell 1.15 -> 0.84), unless a task
    metric of the same evaluation kept improving (:func:`_task_metric_improved`); ``_RISES_IN_A_ROW``
    rises in a row are a warning from ``_SUSTAINED_RISE`` where they add up to ``_SUSTAINED_GATE``
    of the whole series' evaluation noise (:func:`.stats.second_diff_noise`: the rising stretch is not
    judged by itself alone, as the residuals around a line through four rises of sorted noise are far
    smaller than the noise that drew them: :func:`_noise_after` would pass them), the evidence naming the rises,
    their trend and the gap between the splits at the best and at the end."""
    vs, vv = finite(val)
    if len(vv) < 2 or not np.all(vv > 0):
        return None
    short = len(vv) < max(t.min_points, 4)
    i = int(np.argmin(vv[:-1]))
    best, last = float(vv[i]), float(vv[-1])
    if last < float(np.max(vv[i:])) or last - best <= 3 * resolution(vv):
        return None
    rises = len(vv) - 1 - i
    rising = bool(np.all(np.diff(vv[i:]) > 0))
    # four rises in a row, or three that add up to half as much again as a divergence needs
    # (lsw44 u08, a Keras run of 7 epochs: 0.457, 0.469, 0.498, 0.534 while the loss fell 0.37 ->
    # 0.16): noise of a few % seldom climbs that far that steadily; five in a row, a twentieth
    steady = (rises >= _RISES_IN_A_ROW or (rises >= _RISES_IN_A_ROW - 1
                                           and (last - best) / best >= 1.5 * t.validation_rise)) and rising
    # five rises in a row (1 in 720 by noise) are a trend from a 5 % rise; four (1 in 120) are
    # where the same evaluation's task metric stood still beside them (logsweep55: a Keras LSTM's
    # val_loss 0.4651 -> 0.5049 over 4 rises, +8.6 %, val_accuracy 0.7999 at both ends)
    stalled = rises >= _RISES_IN_A_ROW and bool(_own_metrics(run, val)) \
        and _task_metric_improved(run, val, float(vs[i])) is None
    # four or more rises in a row that add up to 3 of the whole series' evaluation noise are a trend
    # from a rise of 3 % (logsweep65 u01, a char-level GPT: val loss 1.4769 at step 4500, then 1.4920,
    # 1.5083, 1.5319, 1.5529, +5.1 % against a noise of 0.0099, while the training loss fell 1.0886
    # -> 0.879 and the gap between them widened 0.39 -> 0.67); a flat noisy series seldom climbs 3
    # noises in four steps, and a rise that comes back down does not end at its highest
    noise = max(second_diff_noise(vv), _noise_after(vv[i:]))
    margin = (last - best) / (noise * math.sqrt(2)) if noise > 0 else math.inf
    sustained = rises >= _RISES_IN_A_ROW and margin >= _SUSTAINED_GATE
    # a short run's rise held at its last _HELD evaluations, each 1.5 times the rule's rise above the best
    # and the rise 3 of the series' noise (read from its second differences, which need 4 evaluations:
    # 3 give one, the rise's own; not from the few points after the best, whose jump-then-hold shape
    # the residuals around a line would count as noise): two evaluations up is no single noisy one (logsweep94 asked whether
    # a 3-epoch fine-tune could carry a warning; one rise at its last evaluation cannot)
    whole = second_diff_noise(vv)
    held_margin = (last - best) / (whole * math.sqrt(2)) if whole > 0 else math.inf
    held = (not steady and short and len(vv) >= 4 and rises >= _HELD and whole > 0
            and bool(np.all(vv[-_HELD:] >= (1 + 1.5 * t.validation_rise) * best)) and held_margin >= _SUSTAINED_GATE)
    if held:
        noise, margin = whole, held_margin
    steady = steady or held
    needed = (1.5 * t.validation_rise if held else
              min(_SUSTAINED_RISE if sustained else _SLOW_RISE, t.validation_rise)
              if rises >= _LONG_RISES or stalled or sustained else t.validation_rise) \
        if steady else _SHORT_RISE
    if (last - best) / best < needed or (not steady and len(vv) > 3):
        return None
    if not short and not steady:
        return None
    if steady and _task_metric_improved(run, val, float(vs[i])) is not None:
        return None  # over-confidence beside a task metric still improving, as in :func:`validation`
    ls, lv = finite(loss)
    then, now = lv[ls <= vs[i]], lv[ls <= vs[-1]]
    if not len(then) or not len(now) or not now[-1] <= (1 - needed) * then[-1]:
        return None
    evidence = {"metric": val.name, "steps": [_num(vs[i]), _num(vs[-1])], "value": (last - best) / best,
                "threshold": needed, "best": best, "best_step": _num(vs[i]), "last": last,
                "raw_rise": (last - best) / best, "train_metric": loss.name, "evaluations": int(len(vv))}
    if steady:
        gap_then, gap_now = best - float(then[-1]), last - float(now[-1])
        evidence |= {"rises_in_a_row": rises, "rises": [float(r) for r in np.diff(vv[i:])],
                     "trend_z": _trend_z(vv[i:]), "noise": noise, "noise_margin": margin,
                     "train_then": float(then[-1]), "train_last": float(now[-1]),
                     "gap_then": gap_then, "gap_last": gap_now}
        if held:
            return finding(
                "validation_divergence", "warning",
                f"{val.name} stood {float(np.min(vv[-_HELD:])) / best - 1:.0%} or more above its lowest {best:.3g} "
                f"({val.where(vs[i])}) at each of its last {_HELD} evaluations, ending at {last:.3g} "
                f"({val.where(vs[-1])}, {(last - best) / best:+.0%}, {margin:.2g} times the noise between two "
                f"evaluations), while {loss.name} fell from {float(then[-1]):.3g} to {float(now[-1]):.3g}",
                "Validation loss rising while training loss falls is overfitting: the model memorises the training "
                f"set. {len(vv)} evaluations are few, but the rise held at {_HELD} of them, each well above the "
                "best, and stands out of the evaluations' own noise: not one noisy evaluation.",
                evidence | {"held_evaluations": _HELD}, [R.early_stopping(float(vs[i]), max(2, rises // 2),
                                                                         where=val.where(vs[i])), R.weight_decay()])
        return finding(
            "validation_divergence", "warning",
            f"{val.name} rose at each of the {rises} evaluations after its lowest {best:.3g} ({val.where(vs[i])}), "
            f"to {last:.3g} ({val.where(vs[-1])}, {(last - best) / best:+.0%}), while {loss.name} fell from "
            f"{float(then[-1]):.3g} to {float(now[-1]):.3g}"
            + (f" (the gap between them widened from {gap_then:.3g} to {gap_now:.3g}; the rise is "
               f"{margin:.2g} times the noise between two evaluations)" if math.isfinite(margin) else ""),
            "Validation loss rising while training loss falls is overfitting: the model memorises the training "
            f"set. {rises} rises in a row are a trend, not one noisy evaluation.",
            evidence, [R.early_stopping(float(vs[i]), max(2, rises // 2), where=val.where(vs[i])), R.weight_decay()])
    return finding(
        "validation_divergence", "info",
        f"{val.name} rose from {best:.3g} ({val.where(vs[i])}) to {last:.3g} ({val.where(vs[-1])}, "
        f"{(last - best) / best:+.0%}) while {loss.name} fell from {float(then[-1]):.3g} to {float(now[-1]):.3g}: "
        f"the start of overfitting, on {len(vv)} evaluations",
        "A validation loss that rises while the training loss falls is the model fitting its training set "
        f"beyond what generalises. {len(vv)} evaluations are too few to call it a trend (one noisy "
        f"evaluation can do it), so this is a note: keep the checkpoint of {val.where(vs[i])} (early stopping) "
        "and evaluate more often to see the trend.",
        evidence, [])


#: A component loss of a long run (this many evaluations or more) that rose ``_SLOW_RISE`` from
#: its best as a strong trend (Mann-Kendall z ``_SLOW_Z``) while the detector's main metric gained
#: less than ``_SLOW_GAIN`` (absolute) since then has diverged, below ``t.validation_rise``.
_SLOW_EVALUATIONS = 30
_SLOW_RISE = 0.05
_SLOW_Z = 3.0
_SLOW_GAIN = 0.01


def _slow_divergence(run: RunLog, val: Series, train: Series, t: LogThresholds) -> _Divergence | None:
    """A component loss that rose slowly but steadily for many evaluations while its training part
    fell and the task metric stood still (ls48's wheat/weed fine-tune: val/box_loss +9.5 % and
    val/dfl_loss +8.2 % over 90 epochs, z 6-7, mAP50-95 0.52 -> 0.50). Healthy detectors' parts
    rise 2 % at most; a part whose rise comes with an mAP still gaining (ls41's 600-epoch YOLOv5,
    val/obj_loss +9 % beside mAP 0.53 -> 0.58) is left alone."""
    vs, vv = finite(val)
    metrics = _evaluation_metrics(run)
    if len(vv) < _SLOW_EVALUATIONS or not metrics:
        return None
    d = _diverged(val, train, t, rise=_SLOW_RISE)
    if d is None or _trend_z(vv[vs >= d.best_step]) < _SLOW_Z:
        return None
    for s in metrics:
        steps, v = finite(s)
        then = v[steps <= d.best_step]
        if len(then) == 0 or len(v) < 3 or float(median(v[-3:])) - float(then[-1]) >= _SLOW_GAIN:
            return None
    return d


def _steady_divergence(run: RunLog, val: Series, loss: Series, t: LogThresholds) -> _Divergence | None:
    """A validation loss that rose less than ``t.validation_rise`` but at least ``_SLOW_RISE`` from
    its best, as a strong trend (Mann-Kendall z ``_SLOW_Z``, which takes 7 evaluations or more
    after the best) while the training loss fell and the task metric of the same evaluation, logged
    beside it, did not improve (logsweep52: a Keras text classifier's val_loss 0.521 -> 0.586
    rising at 8 of the last 10 epochs, +8.4 % on the smoothed levels, val_accuracy flat at 0.76,
    the loss 0.42 -> 0.18). The rule's 10 % guards against a noisy loss's level shift; a rise that
    steady is no noise, and a metric that stands still beside it says the model learns nothing
    more that generalises. Without such a metric a small rise says too little (a detector's summed
    losses drift a few % over hundreds of converged epochs, ls41; its parts are judged by
    :func:`_slow_divergence`)."""
    if _SPLIT_PREFIX.match(val.name) is None or not _own_metrics(run, val):
        return None
    d = _diverged(val, loss, t, rise=_SLOW_RISE)
    if d is None or d.rise >= t.validation_rise:
        return None
    vs, vv = finite(val)
    if _trend_z(vv[vs >= d.best_step]) < _SLOW_Z or _task_metric_improved(run, val, d.best_step) is not None:
        return None
    return d


#: A task metric of the same evaluation this much (relative) worse than its best, at its last
#: evaluation and over its last three, corroborates a validation loss's rise (:func:`_corroborated_divergence`).
_TASK_FALL = 0.05
#: The noise gate of a corroborated rise, in evaluations' noise: one-sided 95 % where the 10 %
#: rule asks 3 (a second, independent signal stands beside it)
_CORROBORATED_GATE = 1.64


def _corroborated_divergence(run: RunLog, val: Series, loss: Series, t: LogThresholds) -> _Divergence | None:
    """A validation loss that rose ``_SLOW_RISE`` or more from its best and stayed up (each of its
    last three evaluations that far above its lowest), as a one-sided trend (Mann-Kendall z
    ``_RISING_Z``), while the training loss fell and a task metric of the same evaluation ended
    ``_TASK_FALL`` below its best: two independent signals of overfitting agreeing, where a run of
    ten or so epochs cannot reach the 10 % rise out of 3 noises or the z of 3 that one signal alone
    needs (logsweep60 u03, an AllenNLP classifier: validation_loss 0.518 at epoch 1, 0.607 at
    epoch 9, +8.5 % on the smoothed levels, z 1.79, validation_accuracy 0.790 -> 0.706 and fscore
    0.792 -> 0.704, training loss 0.41 -> 0.36)."""
    if _SPLIT_PREFIX.match(val.name) is None:
        return None
    d = _diverged(val, loss, t, rise=_SLOW_RISE, gate=_CORROBORATED_GATE)
    if d is None or d.z < _RISING_Z:
        return None
    vs, vv = finite(val)
    if not bool(np.all(vv[-3:] >= (1 + _SLOW_RISE) * d.best)):
        return None
    # the metric's best from the evaluation before the loss's best on (it may peak one early); a
    # metric that was better long before (ls22) has not fallen with this rise
    k = int(np.searchsorted(vs, d.best_step))
    # (a metric of its own evaluation: a detector's summed loss is not judged by its metrics/ columns,
    # its parts are, by :func:`_slow_divergence`)
    if _task_metric_fell(run, val, by=_TASK_FALL, since=float(vs[max(0, k - 1)]), sustained=True,
                         evaluation=False) is None:
        return None
    return d


def _noisy_divergence(run: RunLog, loss: Series, t: LogThresholds) -> list[Finding]:
    """A note for a validation loss that rose ``t.validation_rise`` or more from its best and held
    there (or rose as a one-sided trend) while the training loss fell, out of its evaluations'
    noise one-sidedly (``_RISING_Z``) but by less than the 3 noises a warning needs
    (logsweep60 u02, DNABERT-2: eval_loss 0.2317 at step 800, then 0.25-0.30, +15 % on the smoothed
    levels beside a noise of 0.016, while the loss fell 0.18 -> 0.028): too little to call
    overfitting, too much to say nothing."""
    for val in run.ranked("val_loss"):
        d = _diverged(val, loss, t, within_noise=True)
        if d is None or not d.noisy or d.margin < _RISING_Z:
            continue
        raw_rise = (d.last - d.best) / d.best
        better = _task_metric_improved(run, val, d.best_step)
        return [finding(
            "validation_divergence", "info",
            f"{val.name} rose from its lowest {d.best:.3g} ({val.where(d.best_step)}) to {d.last:.3g} "
            f"({val.where(d.last_step)}, {raw_rise:+.0%}) while {_fell_or_held(loss.name, d.train_then, d.train_now)}"
            f", but its evaluations scatter by about {d.noise:.2g}, so the rise may be noise"
            + (f"; {better.words(val)}" if better else ""),
            "A validation loss that rises while the training loss falls can be the start of overfitting; here the "
            "rise is within 3 of the evaluations' own noise, so this is a note: keep the checkpoint with the best "
            "validation score and watch whether the rise goes on.",
            {"metric": val.name, "steps": [_num(d.best_step), _num(d.last_step)], "value": d.rise,
             "threshold": d.needed, "best": d.best, "best_step": _num(d.best_step), "last": d.last,
             "raw_rise": raw_rise, "train_metric": loss.name, "noise": d.noise, "noise_margin": d.margin,
             "trend_z": d.z,
             **(better.evidence() if better else {})}, [])]
    return []


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


def _noise_after(x: np.ndarray) -> float:
    """The noise of one evaluation in ``x`` (the evaluations from the best on): the successive
    differences of its residuals around its Theil-Sen line, as 1.4826 MAD / sqrt(2). Raw successive
    differences count a steady rise's own steps as noise (a rise of 1 a step under a noise of 1
    reads as a noise of 1.26 over 10 points, of 2 as 2.1); the residuals' own spread is biased low on a few points (its median 0.62-0.88 of
    the true noise for 4-10 points of white noise, with the line's two parameters fitted), their
    differences are not (0.98-1.02 for 4-30 points, with or without a slope)."""
    n = len(x)
    if n < 3:
        return 0.0
    idx = np.arange(n, dtype=np.float64)
    res = x - theil_sen(idx, x)[0] * idx
    return diff_noise(res)


#: A training loss that rose over the stretch of a validation loss's rise by this share (relative) or
#: more, and by 3 of its own noise (:func:`_train_course`), rose with it: no overfitting. The least
#: rise the module calls a sustained trend (:data:`_SUSTAINED_RISE`); a flat training loss's level
#: moves less (a fitted model's per-batch loss wanders within its noise).
_TRAIN_ROSE = 0.03
#: A training loss whose level ends this many times its lowest over the stretch rose, whatever its noise
_TRAIN_MULTIPLIED = 1.5


def _train_course(ls: np.ndarray, lv: np.ndarray, vs: np.ndarray, i_min: int) -> tuple[float, float, bool]:
    """The training loss (steps ``ls``, values ``lv``) over the same stretch as a validation loss's
    rise from its smoothed best (evaluation ``i_min`` of the steps ``vs``) to its end: its level at
    the best, its level at the end, and whether it rose materially over the stretch, from its lowest
    level there to its end: by ``_TRAIN_ROSE`` of its level or more, by 3 of its own noise (of the difference of two
    such levels; the noise of one point from its residuals around its trend over the stretch,
    :func:`_noise_after`) and by 3 units of its printed rounding. A level at an evaluation is the
    median of the training points over the evaluations either side of it, as the validation loss's
    best is taken (one epoch mean each on an epoch log, all the batches between on a per-batch one);
    the end's, of those from the third-last evaluation on.

    Not the median of the points up to the best: on an epoch log those reach back into the descent
    (logsweep66 u04, Keras' cifar10: 1.2171, 1.1202, 1.0933 at epochs 2-4 made "1.22", so a training
    loss that then rose 1.0933 -> 1.2371 beside the validation loss's rise "fell from 1.22 to 1.21").
    And not its level at the best alone: one that fell further, then climbed back (1.18 at the best,
    1.15, then up to 1.21), did not keep falling."""
    order = np.argsort(ls, kind="stable")
    ls, lv = ls[order], lv[order]
    n = len(vs)

    def level(lo: float, hi: float) -> np.ndarray:
        return lv[int(np.searchsorted(ls, lo, "left")):int(np.searchsorted(ls, hi, "right"))]

    at_best = level(float(vs[max(0, i_min - 1)]), float(vs[min(n - 1, i_min + 1)]))
    if not len(at_best):  # training logged more sparsely than the evaluations: its last point at the best
        at_best = lv[ls <= vs[i_min]][-1:]
    end = level(float(vs[max(i_min, n - 3)]), math.inf)
    if not len(end):
        end = lv[-1:]
    # the levels between (each over three evaluations, as the end's; the end's is one of them)
    windows = [at_best, end] + [w for k in range(i_min + 1, n - 2)
                                if len(w := level(float(vs[k - 1]), float(vs[k + 1])))]
    lowest = min(windows, key=lambda w: float(median(w)))
    low, now = float(median(lowest)), float(median(end))
    noise = _noise_after(lv[ls >= vs[i_min]])
    level_noise = noise * math.sqrt(1 / len(lowest) + 1 / len(end))
    rose = (now - low > _TRAIN_ROSE * abs(low) and now - low > 3 * level_noise
            and now - low > 3 * resolution(lv))
    # a level that multiplied rose, however its own blow-up inflates the noise measured over it
    # (logsweep77 u07: 0.925 -> 6.84 in the epochs before NaN was "held")
    rose = rose or (low > 0 and now >= _TRAIN_MULTIPLIED * low and now - low > 3 * resolution(lv))
    return float(median(at_best)), now, rose


def _train_fell(then: float, now: float) -> bool:
    """Whether the training loss fell over a validation loss's rise: by :data:`_TRAIN_ROSE` of its level
    or more, the least a rise of it must be to count (0.329 -> 0.328 over a validation loss's 6x blow-up
    is a flat training loss, not a falling one: logsweep96 hml2_valloss_blowup)."""
    return now < then - _TRAIN_ROSE * abs(then)


def _why_rose(then: float, now: float) -> str:
    """Why a validation loss rose from its best, by the training loss's course over the rise: falling, the
    model memorises its training set; flat, it learns nothing more of it, so memorising is no explanation."""
    if _train_fell(then, now):
        return ("Validation loss rising while training loss falls is overfitting: the model memorises the "
                "training set.")
    return ("Validation loss rising while the training loss holds is not the model memorising its training set "
            "(it learns no more of it): its predictions on the validation examples grow over-confident or drift "
            "(a step too large for what the training set constrains, unstable updates), or the validation data "
            "differ from the training data. Keep the weights from the validation loss's best.")


def _fell_or_held(name: str, then: float, now: float) -> str:
    """The training loss's course beside a validation loss's rise, in words."""
    if _train_fell(then, now):
        return f"{name} fell from {then:.3g} to {now:.3g}"
    if now > then + _TRAIN_ROSE * abs(then):
        # (a rise within the training loss's own noise: not a fall, and not "held" either)
        return f"{name} rose within its noise ({then:.3g} -> {now:.3g})"
    return f"{name} held ({then:.3g} -> {now:.3g})"


def _diverged(val: Series, loss: Series, t: LogThresholds, rise: float | None = None, gate: float = 3.0,
              within_noise: bool = False) -> _Divergence | None:
    """``val``'s rise from its best by ``rise`` (default ``t.validation_rise``) or more, out of its
    noise (``gate`` times it) and as a trend, while ``loss`` fell; None when it did not diverge.
    With ``within_noise``, a rise that fails only the noise gate is returned too, marked ``noisy``."""
    needed = t.validation_rise if rise is None else rise
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
    # the best's level: the median of the 3 evaluations around the smoothed best, not the raw
    # minimum (on a noisy flat loss one low draw: ls36). At the first evaluation that is the mean of
    # two (logsweep60 u03: 0.530 from 0.5426 and 0.5176), already below the 3-point median around
    # the raw minimum (0.5426); a cap by that median changes nothing where the window is 3 points
    # and, with a tenth of a long run as the window, would let two adjacent low draws be the best.
    best = float(median(vv[max(0, i_min - 1):i_min + 2]))
    last = float(median(vv[-3:]))
    # the noise of one evaluation: from the points around the running median, and from the
    # residuals around the robust trend from the best on (a 3-point median follows each point
    # closely)
    noise = max(1.4826 * float(median(np.abs(vv - sm))), _noise_after(vv[i_min:]))
    if best <= 0 or (last - best) / best < needed:
        return None
    margin = (last - best) / (noise * math.sqrt(2 / 3)) if noise > 0 else math.inf
    noisy = margin < gate
    if noisy and not within_noise:
        return None
    # a trend after the best, or a shift that held: every one of the later half of the evaluations
    # after it (3 at least) above the best by 3 evaluations' noise (nanoGPT's val loss jumping from
    # 1.24 to 1.47 and staying there, drifting slightly down, is no trend but a lasting rise)
    tail = vv[-max(3, (len(vv) - 1 - i_min) // 2):]
    z = _trend_z(vv[i_min:])
    # (a rise within the noise, for a note, held where the later evaluations all stay above every
    # one around the best: logsweep60 u02's 0.283-0.294 after 0.2554, 0.2665, 0.2317)
    window = vv[max(0, i_min - 1):i_min + 2]
    held = bool(np.all(tail > best + 3 * noise)) or (noisy and bool(np.all(tail > np.max(window))))
    if z < _RISING_Z and not held:
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
    train_then, train_now, rose = _train_course(ls, lv, vs, i_min)
    if rose:
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
    if not shown_now < shown_then and train_now < train_then:
        shown_then, shown_now = train_then, train_now
    return _Divergence(val, loss, (last - best) / best, float(vv[j]), float(vs[j]), float(vv[-1]), float(vs[-1]),
                       shown_then, shown_now, int(len(vv) - 1 - j), needed, z, noise, noisy,
                       margin)
