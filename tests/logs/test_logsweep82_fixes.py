"""logsweep82 "other problems" 2, 3 and 5.

- pl_wsds_frozen: a per-batch training loss that is the same 16-digit number at every log from its
  first was "barely moved ... 0.0% lower" with raise_learning_rate 3x and named the last half's steps.
- pl_pinn_frozen: a loss of 3.77e25 from step 0 that never rose was a loss_divergence whose summary and
  why said the weights had blown up.
- tb_keras_mnist_sgd: Keras' ``validation/evaluation_loss_vs_iterations`` got role ``metric``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from gradhealth.logs.series import classify


def _lightning_csv(path: Path, name: str, steps: list[int], values: list[float]) -> Path:
    path.write_text(f"{name},epoch,step\n" + "".join(f"{v!r},0,{s}\n" for s, v in zip(steps, values, strict=True)))
    return path


def _codes(doc) -> dict[str, object]:  # noqa: ANN001 - a Diagnosis
    return {f.code: f for f in doc.findings}


# --- 2: an exactly repeating per-batch loss -----------------------------------------------------------


def test_a_per_batch_loss_identical_at_every_log_is_named_frozen_from_its_first_log(tmp_path: Path) -> None:
    steps = list(range(1299, 4950, 50))  # 74 logs, not from step 0, each a different batch
    value = 16.74222755432129
    doc = check_logs(_lightning_csv(tmp_path / "metrics.csv", "train_loss_batch", steps, [value] * len(steps)))
    f = _codes(doc)["loss_plateau"]
    assert f.severity == "warning"
    assert repr(value) in f.summary and "every one of its 74 logs" in f.summary
    assert "16 printed digits" in f.summary and "first log" in f.summary
    assert "barely moved" not in f.summary
    ev = f.evidence.model_extra or {}
    assert f.evidence.steps == [1299, 4949]  # from the first log, not the last half's 3149
    assert ev["exact_repeat"] is True and ev["repeats"] == 74 and ev["digits"] == 16
    assert [r.id for r in f.remedies] == ["check_loss_graph", "check_updates"]
    assert all(r.id != "raise_learning_rate" for g in doc.findings for r in g.remedies)


def test_a_loss_frozen_after_its_first_point_names_where_it_froze(tmp_path: Path) -> None:
    steps = list(range(0, 2000, 50))  # 40 logs; the first differs in the 4th digit, then frozen
    values = [2.1734518432617188] + [2.1731807398796082] * 39
    doc = check_logs(_lightning_csv(tmp_path / "metrics.csv", "train_loss_step", steps, values))
    f = _codes(doc)["loss_plateau"]
    assert f.evidence.steps == [50, 1950] and "last 39 of 40 logs" in f.summary
    assert [r.id for r in f.remedies][0] == "check_loss_graph"


def test_a_flat_noisy_loss_still_reads_as_barely_moved_with_a_higher_rate(tmp_path: Path) -> None:
    # the control: a loss that moves in its digits from batch to batch, with no trend, is a plateau
    rng = np.random.default_rng(0)
    steps = list(range(0, 3700, 50))
    values = [float(np.float32(16.74 + 0.05 * x)) for x in rng.standard_normal(len(steps))]
    doc = check_logs(_lightning_csv(tmp_path / "metrics.csv", "train_loss_step", steps, values))
    f = _codes(doc)["loss_plateau"]
    assert "barely moved" in f.summary and not (f.evidence.model_extra or {}).get("exact_repeat")
    assert [r.id for r in f.remedies] == ["raise_learning_rate"]


def test_a_frozen_loss_printed_to_four_digits_is_not_called_an_exact_repeat(tmp_path: Path) -> None:
    # Keras-style 4 decimals repeat on a genuine plateau that moves less than a print's digits
    steps = list(range(0, 3700, 50))
    doc = check_logs(_lightning_csv(tmp_path / "metrics.csv", "train_loss_step", steps, [1.2345] * len(steps)))
    f = _codes(doc).get("loss_plateau")
    assert f is None or not (f.evidence.model_extra or {}).get("exact_repeat")


# --- 3: a loss enormous from its first point --------------------------------------------------------


def test_a_loss_enormous_from_its_first_point_is_not_said_to_have_blown_up(tmp_path: Path) -> None:
    steps = list(range(535))
    values = [3.7672258953664918e25 * (1 - 2e-4 * s / 534) for s in steps]  # never rises: 3.767e25 -> 3.766e25
    doc = check_logs(_lightning_csv(tmp_path / "metrics.csv", "mean_loss", steps, values))
    f = _codes(doc)["loss_divergence"]
    assert f.severity == "error"
    ev = f.evidence.model_extra or {}
    assert ev["from_start"] is True
    assert "from the start" in f.summary and "at its first point (step 0)" in f.summary
    assert "have blown up" not in f.explanation and "out of scale" in f.explanation
    first = f.remedies[0]
    assert first.id == "normalise_inputs"
    # the typical error the remedy quotes is the square root of the squared error at the start
    assert first.params["rms_error"] == pytest.approx(math.sqrt(float(np.median(values[:3]))), rel=1e-9)


def test_a_loss_that_climbs_to_an_enormous_size_still_says_it_blew_up(tmp_path: Path) -> None:
    steps = list(range(60))
    values = [1.0 if s < 40 else 10.0 ** (s - 39) for s in steps]  # 1 -> 1e20 from step 40
    doc = check_logs(_lightning_csv(tmp_path / "metrics.csv", "train_loss", steps, values))
    f = _codes(doc)["loss_divergence"]
    assert (f.evidence.model_extra or {})["from_start"] is False
    assert "reaches 1e+20 at its largest (step 59)" in f.summary and "have blown up" in f.explanation


# --- 5: Keras' per-iteration validation loss ---------------------------------------------------------


@pytest.mark.parametrize("name", ["evaluation_loss_vs_iterations", "validation/evaluation_loss_vs_iterations"])
def test_keras_evaluation_loss_vs_iterations_is_a_validation_loss(name: str) -> None:
    assert classify(name)[0] == "val_loss"
    assert classify(name.replace("loss", "accuracy"))[0] == "metric"


def test_a_keras_tensorboard_folder_reads_its_iteration_validation_loss_as_one(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    train, val = SummaryWriter(str(tmp_path / "train")), SummaryWriter(str(tmp_path / "validation"))
    for epoch in range(10):
        train.add_scalar("epoch_loss", 0.8 / (epoch + 1), epoch)
        val.add_scalar("epoch_loss", 0.4 / (epoch + 1), epoch)
        val.add_scalar("evaluation_loss_vs_iterations", 0.4 / (epoch + 1), 1500 * (epoch + 1))
        val.add_scalar("evaluation_accuracy_vs_iterations", 0.9, 1500 * (epoch + 1))
    train.close()
    val.close()
    roles = {s.name: s.role for s in read_log(tmp_path).series}
    assert roles == {"train/epoch_loss": "loss", "validation/epoch_loss": "val_loss",
                     "validation/evaluation_loss_vs_iterations": "val_loss",
                     "validation/evaluation_accuracy_vs_iterations": "metric"}
    assert check_logs(tmp_path).status == "healthy"
