"""A validation loss NaN/Inf to its last evaluation beside a training loss finite at every point
(newuser14 #6: a Keras TensorBoard run whose validation epoch_loss is NaN from epoch 0 got an error
with "lower the learning rate to 0.3x"): a warning naming the evaluation, with remedies for the
evaluation's data and arithmetic, never the learning rate or clipping. A training loss that breaks
keeps its error and its learning-rate remedy."""

from __future__ import annotations

import math
from pathlib import Path

from gradhealth.library import check_logs


def _csv(path: Path, val: list[str], loss: list[str] | None = None) -> Path:
    n = len(val)
    loss = loss or [f"{1.5 * math.exp(-e / 6) + 0.2:.5f}" for e in range(n)]
    path.write_text("epoch,loss,val_loss\n" + "".join(f"{e},{loss[e]},{val[e]}\n" for e in range(n)))
    return path


def _nonfinite(doc):
    return [f for f in doc.findings if f.code == "nonfinite"]


def test_validation_nan_at_every_evaluation_is_the_evaluations_fault(tmp_path):
    doc = check_logs(_csv(tmp_path / "history.csv", ["nan"] * 20))
    (f,) = _nonfinite(doc)
    assert f.severity == "warning"
    assert "evaluation only" in f.summary and "every one of its 20 evaluations" in f.summary
    assert f.evidence.model_extra["recovered"] is False and f.evidence.model_extra["evaluation_only"] is True
    ids = [r.id for r in f.remedies]
    assert ids[0] == "check_data" and "lower_learning_rate" not in ids and "gradient_clipping" not in ids
    assert "val_loss" in f.remedies[0].change


def test_validation_nan_from_a_later_epoch_to_the_end(tmp_path):
    val = [f"{1.6 * math.exp(-e / 6) + 0.3:.5f}" for e in range(8)] + ["inf"] * 12
    doc = check_logs(_csv(tmp_path / "history.csv", val))
    (f,) = _nonfinite(doc)
    assert f.severity == "warning"
    assert "12 evaluations from epoch 8 to its last" in f.summary
    assert f.evidence.model_extra["nonfinite_steps"][0] == 8


def test_a_training_loss_that_breaks_keeps_its_error_and_rate_remedy(tmp_path):
    """The growth before it is what the rate remedy is for: the loss climbs, then NaN."""
    loss = [f"{0.5 * 2 ** e:.5f}" for e in range(14)] + ["nan"] * 6
    doc = check_logs(_csv(tmp_path / "history.csv", ["nan"] * 20, loss))
    (f,) = _nonfinite(doc)
    assert f.severity == "error"
    assert "evaluation only" not in f.summary
    assert "lower_learning_rate" in [r.id for r in f.remedies]
