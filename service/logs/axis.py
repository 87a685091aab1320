"""Whether a run logged with a bare step counter (a TensorBoard event file) counted epochs with it.

TensorBoard's ``add_scalar(tag, value, step)`` takes any integer as the step, and some tools pass
the epoch: Ultralytics (YOLOv5/YOLOv8) logs every scalar at ``epoch`` or ``epoch + 1``, Keras' TF2
callback logs its ``epoch_loss``/``epoch_accuracy`` at the epoch. A finding on such a run that says
"step 28" means epoch 28, so the series of such a file get ``step_unit="epoch"``. Only evidence in
the file itself counts, never a count of points alone (a 120-step run and a 120-epoch run look
alike), and never a step axis that runs past the epochs (a Lightning or HF run logs global steps,
with an ``epoch`` scalar whose value is not its step):

- an ``epoch`` scalar whose value is its step at every point (two or more): the file's step is the
  epoch, for every series whose steps lie within that one's span (one either side);
- Ultralytics' metric tags (``metrics/mAP50(B)``, ``metrics/mAP50-95(M)``, ``metrics/accuracy_top1``,
  YOLOv5's ``metrics/mAP_0.5``) at one point per step: the same, over their span;
- Keras' ``epoch_*`` tags at consecutive steps: that series alone;
- the TF1/Keras 1 callback's tags, a metric and its ``val_`` twin (``loss`` and ``val_loss``, ``acc``
  and ``val_acc``) at the same consecutive steps, one point each: a validation at every step of the
  training series is the evaluation Keras runs at each epoch's end; those series alone.

Either way the axis holds at most :data:`MAX_EPOCHS` positions; a file one of whose series runs
outside the span is left as it is, all of it.
"""

from __future__ import annotations

import re

import numpy as np

from gradhealth.logs.series import Series

#: the most epochs a run's axis is taken to hold; a longer axis is a step counter
MAX_EPOCHS = 10_000

#: Ultralytics' per-epoch metric tags: YOLOv8+ (box, mask, pose: ``(B)``, ``(M)``, ``(P)``; the
#: classifier's top-1/top-5) and YOLOv5's ``mAP_0.5``/``mAP_0.5:0.95``
_ULTRALYTICS = re.compile(r"^metrics/(?:(?:precision|recall|mAP50|mAP50-95)\([A-Z]\)|accuracy_top[15]"
                          r"|mAP_0\.5(?::0\.95)?)$")


def _last(name: str) -> str:
    return re.split(r"[/.]", name)[-1].lower()


def _integer_steps(s: Series) -> bool:
    return bool(len(s.steps)) and bool(np.all(np.asarray(s.steps, dtype=np.float64) % 1 == 0))


def _one_per_step(s: Series) -> bool:
    return _integer_steps(s) and len(np.unique(s.steps)) == len(s.steps)


def _epoch_counter(s: Series) -> bool:
    """An ``epoch`` scalar logged at its own value as the step."""
    return (_last(s.name) in ("epoch", "epochs") and len(s) >= 2 and _one_per_step(s)
            and bool(np.array_equal(np.asarray(s.values, dtype=np.float64), np.asarray(s.steps, dtype=np.float64))))


def _span(evidence: list[Series]) -> tuple[int, int] | None:
    """The span of the epoch axis the ``evidence`` series show, or None when it is no epoch axis."""
    if not evidence or not all(_one_per_step(s) for s in evidence):
        return None
    lo = min(int(np.min(s.steps)) for s in evidence)
    hi = max(int(np.max(s.steps)) for s in evidence)
    if lo < 0 or hi - lo + 1 > MAX_EPOCHS:
        return None
    return lo, hi


def mark_epochs(series: list[Series]) -> list[Series]:
    """``series`` (one file's, all on its one step counter), those whose step is the epoch given
    ``step_unit="epoch"`` (see the module docstring); the list, changed in place, is returned."""
    stepped = [s for s in series if s.step_unit == "step" and len(s)]
    counters = [s for s in stepped if _epoch_counter(s)]
    span = _span(counters) if counters else _span([s for s in stepped if _ULTRALYTICS.match(s.name)])
    if span is not None:
        lo, hi = span
        inside = all(_integer_steps(s) and int(np.min(s.steps)) >= lo - 1 and int(np.max(s.steps)) <= hi + 1
                     for s in stepped)
        if inside:
            for s in stepped:
                s.step_unit = "epoch"
            return series
    for s in stepped:
        if _last(s.name).startswith("epoch_") and _consecutive(s):
            s.step_unit = "epoch"
    # (logsweep88 tb_keras_tf1_irfanet: a 2017 Keras callback's loss/val_loss at steps 0-108 said
    # "step 0", "keep the weights from step 0") a metric and its val_ twin at the same consecutive steps
    by_name = {s.name: s for s in stepped}
    for s in stepped:
        head, _, last = s.name.rpartition("/")
        twin = by_name.get(f"{head}/{last[4:]}" if head else last[4:]) if last.lower().startswith("val_") else None
        if (twin is not None and _consecutive(s) and _consecutive(twin)
                and np.array_equal(np.asarray(s.steps), np.asarray(twin.steps))):
            s.step_unit = twin.step_unit = "epoch"
    return series


def _consecutive(s: Series) -> bool:
    """Whether ``s`` has one point at each of two or more consecutive whole steps from 0 or more,
    at most :data:`MAX_EPOCHS` of them."""
    if len(s) < 2 or not _one_per_step(s):
        return False
    steps = np.asarray(s.steps, dtype=np.int64)
    return bool(np.all(np.diff(steps) == 1)) and steps[0] >= 0 and steps[-1] - steps[0] < MAX_EPOCHS
