"""logsweep55: four rises in a row beside a task metric that stood still are overfitting from 5 %;
a validation loss logged alone that jumped and stayed 30 % or more above its first evaluation is a
divergence over fewer than 8 evaluations; a best-so-far record is no validation loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.series import classify
from tests.logs.helpers import write

# a Keras history (logsweep55 03): val_loss lowest 0.4651 at epoch 5, then 4 rises to 0.5049
_LOSS = [0.517, 0.476, 0.455, 0.440, 0.421, 0.404, 0.380, 0.367, 0.339, 0.316]
_VAL = [0.505, 0.492, 0.480, 0.472, 0.468, 0.4651, 0.4702, 0.4788, 0.4901, 0.5049]


def _history(tmp_path: Path, val_accuracy: list[float] | None) -> Path:
    history = {"loss": _LOSS, "val_loss": _VAL}
    if val_accuracy is not None:
        history["val_accuracy"] = val_accuracy
    return write(tmp_path, "history.json", json.dumps(history))


def test_four_rises_beside_a_stalled_task_metric_are_overfitting(tmp_path: Path) -> None:
    doc = check_logs(_history(tmp_path, [0.781, 0.786, 0.795, 0.799, 0.798, 0.7999, 0.795, 0.797, 0.799, 0.7999]))
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.severity == "warning" and f.evidence.value == pytest.approx((0.5049 - 0.4651) / 0.4651)


def test_four_rises_of_under_10_percent_beside_an_improving_metric_are_no_overfitting(tmp_path: Path) -> None:
    # a task metric of the same evaluation still improving: over-confidence, not enough
    doc = check_logs(_history(tmp_path, [0.70 + 0.01 * i for i in range(10)]))
    assert not [f for f in doc.findings if f.code == "validation_divergence" and f.severity == "warning"]


def test_four_rises_of_under_10_percent_with_no_metric_need_to_clear_the_noise(tmp_path: Path) -> None:
    # no metric: four rises in a row (+8.6 %) far out of this smooth series' noise while the loss
    # fell 0.404 -> 0.316 are a sustained rise (logsweep65); the same four rises within a noisy
    # series' scatter are not
    [f] = [f for f in check_logs(_history(tmp_path, None)).findings if f.code == "validation_divergence"]
    assert f.severity == "warning" and f.evidence.rises_in_a_row == 4 and f.evidence.noise_margin >= 3
    noisy = [0.505, 0.560, 0.470, 0.545, 0.468, 0.4651, 0.4702, 0.4788, 0.4901, 0.5049]
    path = write(tmp_path, "noisy.json", json.dumps({"loss": _LOSS, "val_loss": noisy}))
    assert not [f for f in check_logs(path).findings if f.code == "validation_divergence" and f.severity == "warning"]


def _fairseq_valid(losses: list[float]) -> str:
    return "".join(f"| epoch {46 + i:03d} | valid on 'valid' subset | loss {x:.3f} | nll_loss {x - 1.5:.3f} | "
                   f"num_updates {12854 + 280 * i} | best_loss 5.95385\n" for i, x in enumerate(losses))


def test_a_validation_loss_alone_that_jumped_and_stayed_up_is_a_divergence(tmp_path: Path) -> None:
    doc = check_logs(write(tmp_path, "valid.log", _fairseq_valid([5.99, 12.41, 11.67, 9.24, 8.94, 8.83, 8.75, 11.79])))
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert f.severity == "warning" and f.evidence.value == pytest.approx(8.75 / 5.99, rel=1e-3)


@pytest.mark.parametrize("losses", [
    [5.99, 6.2, 6.1, 6.3, 6.15, 6.25],      # worse, but within 30 %: too few evaluations to say
    [5.99, 12.4, 5.5, 9.0, 8.9],            # one evaluation came back under the first
])
def test_a_short_validation_loss_alone_not_far_worse_throughout_is_not_judged(tmp_path: Path,
                                                                              losses: list[float]) -> None:
    doc = check_logs(write(tmp_path, "valid.log", _fairseq_valid(losses)))
    assert not [f for f in doc.findings if f.code == "loss_divergence"]


@pytest.mark.parametrize("name", ["best_loss", "eval_best_loss", "val/best_loss", "best_val_loss"])
def test_a_best_so_far_record_is_no_loss(name: str) -> None:
    assert classify(name)[0] == "metric"
