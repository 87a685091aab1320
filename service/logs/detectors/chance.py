"""A model no better than chance: losses at the uniform guess's level, accuracies at 1/k, a validation
accuracy stuck at one class's share, an ROC AUC at 0.5.
"""

from __future__ import annotations

import math
import re

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.logs.detectors.common import finding
from gradhealth.logs.detectors.rl import on_rollouts
from gradhealth.logs.remedies import raise_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import diff_noise, finite, median, theil_sen
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds

_ACCURACY = re.compile(r"(?:^|[/_. -])(?:acc|accuracy|categorical_accuracy|sparse_categorical_accuracy|"
                       r"binary_accuracy)(?:[/_. -](?:epoch|step))?$")
VALIDATION = re.compile(r"(?:^|[/_. -])(?:val|vali|valid|validation|eval|test)(?:[/_. -]|$)")
#: Any accuracy, top-k ones included (YOLO's metrics/accuracy_top1, accuracy_top5)
_ANY_ACCURACY = re.compile(r"(?:^|[/_. -])(?:acc|accuracy)(?:[/_. -]?top-?\d+)?(?:[/_. -](?:epoch|step))?$|"
                           r"(?:^|[/_. -])top-?\d+[/_.-]?acc(?:uracy)?$")
NUM_CLASS_KEYS = ("num_classes", "n_classes", "nb_classes", "num_labels", "n_labels", "num_class", "n_class")


def accuracies(run: RunLog) -> tuple[Series | None, Series | None]:
    """The run's training and validation accuracy series (top-k accuracies left out), by name; of
    equally long ones, the epoch-level one (:meth:`RunLog.ranked`)."""
    train: list[Series] = []
    val: list[Series] = []
    for s in run.ranked("metric"):
        name = s.name.lower()
        if not _ACCURACY.search(name) or "top" in name:
            continue
        # an "accuracy" above 100 counts something (ls19: correct samples per batch, 87-126), and
        # one below 0 is no share: neither is read as a fraction or a percent
        v = finite(s)[1]
        if not (len(v) and (v.max() > 100 or v.min() < 0)):
            (val if VALIDATION.search(name) else train).append(s)
    return (max(train, key=len) if train else None), (max(val, key=len) if val else None)


def as_fraction(v: np.ndarray) -> np.ndarray:
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
#: whose loss sits at ln V predicts every token alike; and a byte's 256 values (WaveNet's 8-bit mu-law
#: samples, PixelCNN's pixel intensities, a byte-level model's tokens, a side-channel attack's key byte)
_UNIFORM_K = (*range(2, 21), 100, 200, 256, 1000, 10_000, 30_522, 32_000, 32_768, 49_152, 50_257, 50_304,
              65_536, 128_256, 151_936, 256_000)


#: How close a loss sits to ln k to name k by itself (0.3 %: 2.3026 is ln 10, not ln 9 = 2.197 nor ln 11 = 2.398)
_LN_K_TOLERANCE = 0.003


def loss_at_ln_k(level: float) -> int | None:
    """The k of :data:`_UNIFORM_K` whose ln k ``level`` sits within :data:`_LN_K_TOLERANCE` of (the
    nearest one), else None: the cross-entropy of a uniform guess over k classes."""
    if not level > 0:
        return None
    near = [k for k in _UNIFORM_K if abs(level - math.log(k)) <= _LN_K_TOLERANCE * math.log(k)]
    return min(near, key=lambda k: abs(level - math.log(k))) if near else None


def uniform_guess(values: np.ndarray) -> dict | None:
    """A loss that does not move (its points within 0.2 % of their median) and sits within 0.3 % of
    ln k for one of :data:`_UNIFORM_K`: the cross-entropy of predicting every one of k classes
    equally, whatever the input (Keras' 0.6931, CIFAR-100's 4.605, ImageNet's 6.9078)."""
    if len(values) < 4:
        return None
    level = float(median(values))
    if not level > 0 or float(np.max(np.abs(values - level))) > 0.002 * level:
        return None
    k = loss_at_ln_k(level)
    if k is None:
        return None
    return {"num_classes": k, "accuracy": None, "source": f"the loss sits at ln {k} = {math.log(k):.4g} without moving"}


def validation_at_chance(run: RunLog) -> dict | None:
    """:func:`uniform_guess` of a validation loss's last half: evaluations pinned at ln k (a 4-way
    multiple-choice fine-tune whose every eval_loss was 1.3863) while the noisier training loss
    wanders around it."""
    for val in run.ranked("val_loss"):
        vv = finite(val)[1]
        guess = uniform_guess(vv[len(vv) // 2:])
        if guess is not None:
            k = guess["num_classes"]
            return {**guess, "validation": True,
                    "source": f"{val.name} sits at ln {k} = {math.log(k):.4g} without moving"}
    return None


def classes_words(chance: dict, digits: int = 3) -> tuple[str, str]:
    """The class count of an at-chance finding (:func:`at_chance`, :func:`uniform_guess`) in words:
    (the count, a note for the parentheses after it). Stated as a fact only where the run's params
    record it; a count read off the loss's level (ln k) or the accuracy (1/k) is an inference, said
    as one: a loss at ln 19 = 2.94 is as near ln 17 = 2.83 as a probe's loss sits to its chance
    (logsweep86: a 17-class probe read "at chance for 19 classes")."""
    k = int(chance["num_classes"])
    ln = f"ln {k} = {math.log(k):.{digits}g}"
    if chance.get("source") == "params":
        return f"{k} classes", ln
    source = str(chance.get("source", ""))
    basis = "the loss" if source.startswith(("loss", "the loss")) or " sits at ln " in source else \
        "the accuracy and the loss"
    return f"about {k} classes, as {ln}", f"a count inferred from {basis}: the log does not state it"


#: How close to ln k a cross-entropy sits at chance over k classes, where the log names k or the
#: accuracy alone suggests it
_CHANCE_LOSS_MARGIN = 0.1


#: A loss naming k in its params that starts within this share of ln k or below is a k-class
#: cross-entropy (:func:`at_chance`): a level above ln k is then worse than chance, not another scale
_CHANCE_START = 0.1


def at_chance(run: RunLog, loss_level: float, t: LogThresholds, start: float | None = None) -> dict | None:
    """Evidence that a classifier sits at chance: accuracy near 1/k. k comes from the params, or from
    the accuracy itself only when the loss confirms it (a cross-entropy near ln k, what a uniform
    guess over k classes scores); with params but no accuracy, a loss within 10 % of ln k, or above
    it where the loss ``start``ed within 10 % of ln k or below (a k-class cross-entropy at
    initialisation that ends higher is no better than chance: newuser7's 3-class MLP under lr=5,
    1.106 at step 0 and 1.22 at the end; ``"above": True``)."""
    k_param = num_classes(run)
    train_acc, _ = accuracies(run)
    acc = None
    if train_acc is not None:
        a = as_fraction(finite(train_acc)[1])
        if len(a) >= 3:
            acc = float(median(a[len(a) // 2:]))
    m = t.plateau_chance_margin

    def near(k: int) -> bool:
        return acc is not None and abs(acc - 1 / k) <= m / k

    def ce(k: int, margin: float) -> bool:
        return abs(loss_level - math.log(k)) <= margin * math.log(k)

    if k_param is not None and (near(k_param) if acc is not None else ce(k_param, _CHANCE_LOSS_MARGIN)):
        return {"num_classes": k_param, "accuracy": acc, "source": "params"}
    if (k_param is not None and acc is None and start is not None and loss_level > math.log(k_param)
            and 0 < start <= (1 + _CHANCE_START) * math.log(k_param)):
        return {"num_classes": k_param, "accuracy": None, "source": "params", "above": True}
    k_loss = loss_at_ln_k(loss_level) if k_param is None and acc is not None else None
    if k_loss is not None and acc is not None and 1 / (2 * k_loss) <= acc < 2 / k_loss:
        # a loss at ln k to 0.3 % names k more exactly than the accuracy does: Keras' CIFAR-10 stuck
        # at 2.3026 = ln 10 with a training accuracy of 0.13 is chance over 10 classes, not over
        # round(1 / 0.13) = 8 (logsweep63 u03); the accuracy only must not contradict it (within a factor 2 of 1/k)
        name = train_acc.name if train_acc is not None else "accuracy"
        return {"num_classes": k_loss, "accuracy": acc, "source": f"loss ~ ln {k_loss} and {name} ~ 1/{k_loss}"}
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


def stuck_validation_accuracy(run: RunLog, t: LogThresholds) -> Finding | None:
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
    va, ta = as_fraction(va), as_fraction(ta)
    k = max(2, len(va) // 5)
    slope, _, _ = theil_sen(vs.astype(np.float64), va)
    gained = max(float(median(va[-k:]) - median(va[:k])), slope * float(vs[-1] - vs[0]))
    v_late = float(median(va[-k:]))
    # A climb in the first evaluations, then a plateau (Keras logs validation after each epoch, and
    # a small model learns what generalises in one or two) is a gain the early median hides; it
    # counts when it stands out of the series' point-to-point noise.
    sigma = diff_noise(va)
    if v_late - float(va[0]) > max(t.accuracy_stuck, 3 * sigma):
        gained = max(gained, v_late - float(va[0]))
    # the training accuracy's levels: the medians of its first and last quarters (3 points at least), not
    # its last few points: a noisy accuracy's two high draws (0.871 twice among 0.74-0.87) are no level
    # (logsweep96 pairnorm_maint)
    q = max(3, len(ta) // 4)
    t_early, t_late = float(median(ta[:q])), float(median(ta[-q:]))
    if gained >= t.accuracy_stuck or t_late - v_late < t.accuracy_gap:
        return None
    # An excerpt (a log that opens after more steps than it spans: the last epochs pasted into an issue)
    # shows the training accuracy climbing past a validation accuracy that stays only where it climbs
    # within the window, by the threshold and out of its own noise (of a difference of two quarter
    # levels); one already high where the excerpt opens says nothing of whether the validation accuracy
    # improved before it. A log from the run's start climbed from its initialisation.
    excerpt = float(ts[0]) > float(ts[-1] - ts[0])
    climb_noise = 3 * diff_noise(ta) * math.sqrt(2 / q)
    if excerpt and t_late - t_early < max(t.accuracy_stuck, climb_noise):
        return None
    classes = num_classes(run)
    chance = f" (chance for {classes} classes is {1 / classes:.2f})" if classes else ""
    top = int(np.argmax(va))
    course = (f"{float(va[0]):.2f} at first, {float(va[top]):.2f} at best ({val.where(vs[top])}), "
              f"{float(va[-1]):.2f} at the last")
    return finding(
        "loss_plateau", "warning",
        f"{val.name} stayed within {float(np.min(va)):.2f}-{float(np.max(va)):.2f} over "
        f"{val.between(vs[0], vs[-1])} ({course}; a gain of {gained:+.2f}){chance} while {train.name} "
        + (f"climbed from {t_early:.2f} to {t_late:.2f} (the medians of its first and last quarters)"
           if t_late > t_early else f"stood at {t_late:.2f} (the median of its last quarter)"),
        "A validation metric that never improves while the training one does: the model memorises the training "
        "set and learns nothing that generalises (too little data, leakage-free labels that carry no signal, or "
        "a train/validation mismatch).",
        {"metric": val.name, "steps": [_num(vs[0]), _num(vs[-1])], "value": gained,
         "threshold": t.accuracy_stuck, "band": [float(np.min(va)), float(np.max(va))],
         "train_metric": train.name, "train_final": t_late, "train_first": t_early, "gap": t_late - v_late,
         "num_classes": classes},
        [R.weight_decay()])


#: A validation accuracy that moves less than this (as a fraction) over :data:`_ONE_CLASS_POINTS`
#: evaluations or more takes one value: the same predictions every time.
_ONE_CLASS_SPREAD = 0.002
_ONE_CLASS_POINTS = 8
#: ... or less than this share of the room above its level (1 - share): a token accuracy over a
#: large vocabulary that drifts 0.066 -> 0.068 over 52 evaluations has gained 0.25 % of the 0.93 it
#: could, one class (the most frequent token) all the while (logsweep72 u01). An accuracy saturated
#: near 1 has little room, so its tolerance stays the 0.002 above.
_ONE_CLASS_HEADROOM = 0.01


#: An area under the ROC curve, by name (auc, roc_auc, val_auc, AUC-ROC).
_AUC = re.compile(r"(?:^|[/_. -])(?:roc[_ -]?)?auc(?:[_ -]?roc)?(?:[/_. -]|$)", re.IGNORECASE)
#: An AUC this close to 0.5 (the median of the last half of 20 points or more, none of them past
#: :data:`_AUC_BEST`) ranks positives above negatives no better than a coin.
_AUC_MARGIN, _AUC_BEST, _AUC_POINTS = 0.03, 0.56, 20


def auc_at_chance(run: RunLog) -> Finding | None:
    """An ROC AUC at 0.5 over the last half of the run: whatever the loss does (on imbalanced data
    it falls by learning the base rate alone: a click-through model's log loss 5.4 -> 0.4 while its
    AUC stays at 0.50-0.54), the model does not tell the classes apart. AUC is immune to the class
    balance, so 0.5 is chance for any data; the validation AUC is judged where one is logged."""
    aucs = [s for s in run.series if _AUC.search(s.name)]
    aucs.sort(key=lambda s: not VALIDATION.search(s.name.lower()))
    for s in aucs[:1]:
        steps, v = finite(s)
        if len(v) < _AUC_POINTS or v.min() < 0:
            continue
        v = v / 100 if v.max() > 1 else v
        if v.max() > 1:
            continue
        late = v[len(v) // 2:]
        level = float(median(late))
        # (a window of a run under way, opening after more steps than it spans, says nothing of its start)
        if abs(level - 0.5) > _AUC_MARGIN or float(np.max(late)) > _AUC_BEST or steps[0] > steps[-1] - steps[0]:
            continue
        return finding(
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


#: What both one-class rules' findings mean and what to check, after their own evidence
_ONE_CLASS_WHY = (
    "is a model predicting one class (the majority) for everything: it learned the class balance and nothing "
    "else. Check the labels and that the inputs reach the model scaled (an unscaled input or a huge first loss "
    "can push the output to saturate on one class; so can a frozen or dead layer, or a sigmoid output under a "
    "softmax loss), balance the classes or weight the loss, and lower the learning rate if it collapsed after "
    "a few steps.")


def one_class_validation(run: RunLog) -> Finding | None:
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
    va = as_fraction(va)
    share = float(median(va))
    if float(np.ptp(va)) > max(_ONE_CLASS_SPREAD, _ONE_CLASS_HEADROOM * (1 - share)) or not 0 < share < 1:
        return None
    lv, tv = finite(val_loss)[1], finite(loss)[1]
    if len(lv) < 3 or len(tv) < 3:
        return None
    late, best = float(median(lv[len(lv) // 2:])), float(np.min(lv))
    prior = _binary_entropy(share)
    # the training side moved: a run that changes nothing at all is the frozen checks' case
    moved = abs(float(median(tv[-3:])) - float(median(tv[:3]))) > 0.05 * abs(float(median(tv[:3])))
    # never better than the share alone at any evaluation (an overfitting model on a small set keeps
    # its answers while its loss climbs, but from a best well under the prior's)
    if not moved or best < 0.9 * prior:
        return None
    return finding(
        "loss_plateau", "warning",
        (f"{val.name} is {share:.4g} at every one of {len(va)} evaluations" if not np.ptp(va) else
         f"{val.name} stays within {float(np.min(va)):.4g}-{float(np.max(va)):.4g} at all {len(va)} evaluations")
        + f" ({val.between(vs[0], vs[-1])}) and "
        f"{val_loss.name} never gets below {best:.3g} (ends at {late:.3g}), "
        + (f"no better than the {prior:.3g} that predicting the class share {share:.4g} alone scores"
           if best < prior else f"above even the {prior:.3g} that predicting the class share {share:.4g} alone "
           "scores (two-way; over more classes the prior's entropy is higher)")
        + f", while {loss.name} moves {float(tv[0]):.4g} -> {float(tv[-1]):.4g}: the model gives "
        + ("every" if not np.ptp(va) else "almost every") + " validation sample the same class",
        "A validation accuracy that never changes by a single sample while the training loss moves, with a "
        "validation loss at the entropy of that share, " + _ONE_CLASS_WHY,
        {"metric": val.name, "steps": [_num(vs[0]), _num(vs[-1])], "value": float(np.ptp(va)),
         "threshold": _ONE_CLASS_SPREAD, "accuracy": share, "val_loss": late, "best_val_loss": best,
         "prior_entropy": prior},
        [R.balance_classes(share)])


#: Points at which an accuracy that never changes, beside a loss at the entropy of its share (or a
#: precision and recall exactly 0), shows one class predicted for everything in any log
_CONSTANT_POINTS = 4
#: A loss this close (relative) to H(p) at every point is the share's entropy: nothing else learnt
_PRIOR_LOSS_MARGIN = 0.01
_PRECISION_RECALL = re.compile(r"(?:^|[/_. -])(?:precision|recall)(?:[/_. -](?:epoch|step))?$")


def _zero_precision_recall(run: RunLog, validation: bool) -> list[Series]:
    """The precision and recall series of one side (validation or training) of the run, when every
    one of them is exactly 0 at every one of its :data:`_CONSTANT_POINTS` or more points."""
    found = [s for s in run.by_role("metric")
             if _PRECISION_RECALL.search(s.name.lower()) and bool(VALIDATION.search(s.name.lower())) == validation]
    ok = all(len(finite(s)[1]) >= _CONSTANT_POINTS and bool(np.all(finite(s)[1] == 0)) for s in found)
    return found if found and ok else []


def one_class_constant(run: RunLog) -> Finding | None:
    """An accuracy (training or validation) with exactly one printed value at every one of its 4 or
    more points (0 < share < 1), beside its side's loss within 1% of the entropy H(p) of that share at
    every point (what predicting the share alone scores), or its side's precision and recall exactly
    0 throughout: the model predicts one class for every sample, however short the log (logsweep68
    u05: Keras, 5 epochs, val_accuracy 0.6667 every epoch, val_loss 0.637-0.639 against H(0.6667) =
    0.6365, val_precision and val_recall 0.0000e+00). The long rule (:func:`one_class_validation`)
    judges a validation accuracy that keeps one value over 8 or more evaluations to 0.002."""
    train, val = accuracies(run)
    for acc, loss, validation in ((val, run.first("val_loss"), True), (train, run.first("loss"), False)):
        if acc is None or on_rollouts(run):
            continue
        steps, v = finite(acc)
        if len(v) < _CONSTANT_POINTS or float(np.ptp(v)) != 0:
            continue
        share = float(as_fraction(v)[0])
        if not 0 < share < 1 or abs(share - 0.5) <= 0.005:
            # (a share of one half: one class and a chance guess are the same on a balanced binary
            # task, where the chance rules' ln 2 finding says it; both was two findings for one
            # fault: logsweep70 u04)
            continue
        prior = _binary_entropy(share)
        lv = finite(loss)[1] if loss is not None else np.array([])
        at_prior = (len(lv) >= _CONSTANT_POINTS
                    and bool(np.all(np.abs(lv - prior) <= _PRIOR_LOSS_MARGIN * prior)))
        zero = _zero_precision_recall(run, validation)
        if not at_prior and not zero:
            continue
        why = []
        if at_prior and loss is not None:
            why.append(f"{loss.name} stays at {float(np.min(lv)):.4g}-{float(np.max(lv)):.4g}, within 1% of the "
                       f"{prior:.4g} that predicting the share {share:.4g} alone scores (H(p))")
        if zero:
            why.append(" and ".join(s.name for s in zero) + " exactly 0 at every point")
        # a first training loss far above the rest: a blow-up on the first steps that left the model
        # at the prior (ibid.: 2,363,402 at epoch 1, then 0.64)
        train_loss = run.first("loss")
        tl = finite(train_loss)[1] if train_loss is not None else np.array([])
        blown = (float(tl[0]) if len(tl) >= 3 and float(median(tl[1:])) > 0
                 and tl[0] >= _FIRST_BLOWUP * float(median(tl[1:])) else None)
        return finding(
            "loss_plateau", "warning",
            f"{acc.name} is {float(v[0]):.6g} at every one of its {len(v)} points ({acc.between(steps[0], steps[-1])}), "
            + "; ".join(why) + ": the model predicts one class for every sample"
            + (f" (after a first training loss of {blown:.4g})" if blown is not None else ""),
            "An accuracy that does not change by a single sample from point to point, with a loss at the entropy "
            "of that share or a precision and recall of 0 (no sample given the positive class), " + _ONE_CLASS_WHY,
            {"metric": acc.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
             "accuracy": share, "prior_entropy": prior, "points": int(len(v)),
             "loss_metric": loss.name if at_prior and loss is not None else None,
             "loss_range": [float(np.min(lv)), float(np.max(lv))] if at_prior else None,
             "zero_metrics": [s.name for s in zero], "first_loss": blown},
            [R.balance_classes(share)])
    return None


#: A first training loss at least this many times the median of the rest is a blow-up on the first steps
_FIRST_BLOWUP = 100.0


def short_at_chance(run: RunLog, t: LogThresholds) -> Finding | None:
    """A run too short for the trend checks (its training loss has under 8 points) whose training or
    validation loss sits, at every one of its 4 or more points, exactly where a uniform guess over k
    classes scores (:func:`uniform_guess`: within 0.3 % of ln k, moving under 0.2 %): four
    evaluations at 1.386 = ln 4 are a model that never learnt, however few points show it. A loss
    that starts there and then falls is not."""
    train = run.first("loss")
    if train is None or on_rollouts(run) or len(finite(train)[1]) >= t.min_points:
        return None
    for loss in (train, run.first("val_loss")):
        if loss is None:
            continue
        steps, v = finite(loss)
        chance = uniform_guess(v) if len(v) >= 4 else None
        if chance is not None:
            head, note = classes_words(chance, 4)
            summary = (f"{loss.name} stays at {float(median(v)):.4g} at every one of its {len(v)} points: "
                       f"chance for {head} ({note})")
            break
    else:
        pinned = _pinned_at_chance(run, t)
        if pinned is None:
            return None
        loss, steps, v, chance, summary = pinned
    return finding(
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
        a = as_fraction(finite(acc)[1])
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
            level = float(median(v)) if len(v) else math.nan
            if abs(level - math.log(k)) <= t.plateau_chance_margin * math.log(k):
                chance = {"num_classes": k, "accuracy": top,
                          "source": f"{acc.name} ~ 1/{k} and loss ~ ln {k}"}
                return loss, steps, v, chance, (
                    f"{acc.name} is {top:g} at {int(counts.max())} of its {len(a)} points, chance for about {k} "
                    f"classes, and {loss.name} stays near ln {k} = {math.log(k):.4g} (median {level:.4g}; the "
                    "class count is inferred from the two: the log does not state it)")
    return None


#: A training accuracy never above this share while the training loss halves learns nothing an
#: accuracy counts (a classifier fitting its training set climbs far past it)
_NO_ACCURACY = 0.05


def zero_accuracy(run: RunLog) -> Finding | None:
    """A task metric never once right: an accuracy at exactly 0 (:func:`_accuracy_at_zero`) or an error
    rate at 100 % (:func:`error_rate_at_ceiling`) at every one of its points."""
    return _accuracy_at_zero(run) or error_rate_at_ceiling(run)


#: An error rate by its name: a word or character error rate (wer, cer, eval_wer, val/cer), an
#: error_rate, or an error or err after a set or metric's name (val_err, top1_err, test_error)
_RATE_NAME = re.compile(r"(?:^|[/_. -])(?:wer|cer|error[/_. -]?rate|err[/_. -]?rate)(?:[/_. -](?:epoch|step))?$")
_ERROR_NAME = re.compile(r"[/_. -](?:err|error)(?:[/_. -](?:epoch|step))?$")
#: An error rate this many times or more at or above 100 %, at every one of them: nothing right, ever
_CEILING_POINTS = 5


def error_rate_at_ceiling(run: RunLog) -> Finding | None:
    """An error rate at 100 % or more (1.0 as a fraction, 100 in percent) at every one of its 5 or
    more points: not one sample, word or character right at any evaluation (logsweep62 u07, a data2vec
    CTC fine-tune: WER exactly 1.0 at all 69 evaluations while its training loss fell 36 % to the
    level of a blank-only output). A word error rate can pass 1.0 (insertions); a rate named only
    "err"/"error" (which a regression's error can be too) is judged only where it sits exactly at
    1.0 or 100. Values above 1.5 read as percent (as :func:`as_fraction` does for accuracies); below,
    half the points must be exactly 1.0, as a percent rate of 1.0-1.5 % is a good model's."""
    for s in run.by_role("metric"):
        name = s.name.lower()
        rate = bool(_RATE_NAME.search(name))
        if not rate and not _ERROR_NAME.search(name):
            continue
        steps, v = finite(s)
        if len(v) < _CEILING_POINTS or float(v.min()) < 0:
            continue
        percent = float(v.max()) > 1.5
        ceiling = 100.0 if percent else 1.0
        # (a rate of 1.0-1.5 may be a fine model's percent, a CER of 1.2 %: as a fraction it must sit at
        # exactly 1.0, the blank output's, at half its points or more)
        at = bool(float(v.min()) >= ceiling and (percent or float(median(v)) == ceiling)) if rate \
            else bool(np.all(v == ceiling))
        if not at:
            continue
        level = float(median(v))
        return finding(
            "loss_plateau", "warning",
            f"{s.name} is at {level:.4g}" + (" or more" if float(v.max()) > level else "")
            + f" ({level / ceiling:.0%} errors) at all {len(v)} points ({s.between(steps[0], steps[-1])}): "
            "the model never gets anything right",
            "An error rate of 100 % at every evaluation means not one prediction is right, whatever the loss "
            "does: a speech model trained with CTC that emits only blanks (empty transcripts: every word "
            "deleted) scores a WER of exactly 1.0 while its loss falls to the blank-only level and stalls there. "
            "Check the vocabulary and the labels against the tokenizer (an empty or mismatched vocabulary, "
            "targets that are all padding), the learning rate (too small to leave the blank-only output, or "
            "too large), and that the decoder reads the model's outputs.",
            {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": level, "threshold": ceiling,
             "points": int(len(v))}, [])
    return None


def _accuracy_at_zero(run: RunLog) -> Finding | None:
    """An accuracy (top-k included) exactly 0 at every one of its 5 or more points while the training
    loss fell by half or more: what the model learns never once shows where it is measured (ls16, a
    YOLO classifier: accuracy_top1 and top5 0 for 22 epochs, train/loss 2.52 -> 0.05): classes mapped
    differently in the two sets, or a metric reading the wrong outputs."""
    loss = run.first("loss")
    if loss is None or on_rollouts(run):
        return None
    ls, lv = finite(loss)
    if len(lv) < 5 or not lv[0] > 0 or not lv[-1] <= 0.5 * lv[0]:
        return None
    for s in run.by_role("metric"):
        steps, v = finite(s)
        if _ANY_ACCURACY.search(s.name.lower()) and len(v) >= 5 and bool(np.all(v == 0)):
            train = accuracies(run)[0]
            tv = as_fraction(finite(train)[1]) if train is not None and train is not s else np.array([])
            if train is not None and len(tv) >= 5 and float(tv.max()) <= _NO_ACCURACY:
                # the training set's accuracy is ~0 as well while its loss falls: the loss is not one an
                # accuracy measures (ls49: a Keras regression on mse logging "acc", 0.0056 at best)
                return finding(
                    "loss_plateau", "info",
                    f"{s.name} is exactly 0 at all {len(v)} points and {train.name} never above {float(tv.max()):.3g}, "
                    f"while {loss.name} fell from {float(lv[0]):.3g} to {float(lv[-1]):.3g}: the accuracy does not "
                    "measure what this loss trains",
                    "The loss falls, so the model learns, yet not even the training set's accuracy moves: a regression "
                    "loss (mse, mae) with an accuracy metric, which counts exact matches of continuous outputs. Log a "
                    "metric of the loss's kind (mean absolute error, R^2) instead.",
                    {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
                     "train_metric": loss.name, "train_first": float(lv[0]), "train_last": float(lv[-1]),
                     "train_accuracy": train.name, "train_accuracy_max": float(tv.max())}, [])
            return finding(
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
