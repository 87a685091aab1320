"""logsweep82 tb_keras_mnist_sgd: Keras' TensorBoard folder holds ``validation/epoch_loss`` and
``validation/evaluation_loss_vs_iterations`` (the same evaluations at the optimizer's iteration, as many
points); the one the log wrote first (the per-iteration one) was "the" validation loss, so findings could
name it and its iterations instead of the epochs. Every folder here is written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log

# --- Keras' TensorBoard folder: the epoch-level validation loss is "the" one ----------------------------


@pytest.mark.parametrize("iterations_first", [True, False])
def test_the_epoch_level_validation_loss_is_chosen_over_the_same_per_iteration(tmp_path: Path,
                                                                             iterations_first: bool) -> None:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    iters = 1500  # optimizer steps per epoch
    train, val = SummaryWriter(str(tmp_path / "train")), SummaryWriter(str(tmp_path / "validation"))
    # overfitting: the training loss falls all along, the validation loss is lowest at epoch 5, then rises
    val_losses = [0.6 - 0.05 * e if e <= 5 else 0.35 + 0.06 * (e - 5) for e in range(20)]
    for epoch in range(20):
        train.add_scalar("epoch_loss", 0.8 / (epoch + 1), epoch)
        writes = [("epoch_loss", epoch), ("evaluation_loss_vs_iterations", iters * (epoch + 1))]
        for tag, step in writes if not iterations_first else writes[::-1]:
            val.add_scalar(tag, val_losses[epoch], step)
        # the accuracies likewise, written in the same order (Keras: the per-iteration one first)
        writes = [("epoch_accuracy", epoch), ("evaluation_accuracy_vs_iterations", iters * (epoch + 1))]
        for tag, step in writes if not iterations_first else writes[::-1]:
            val.add_scalar(tag, 0.9 - 0.005 * epoch, step)
        train.add_scalar("epoch_accuracy", 0.8 + 0.01 * epoch, epoch)
    train.close()
    val.close()
    run = read_log(tmp_path)
    first = run.first("val_loss")
    assert first is not None and first.name == "validation/epoch_loss"
    assert [s.name for s in run.ranked("val_loss")][0] == "validation/epoch_loss"
    d = check_logs(tmp_path)
    (f,) = [f for f in d.findings if f.code == "validation_divergence"]
    # the best at epoch 5 and the last at epoch 19, not iterations 9000 and 30000
    ev = f.evidence.model_dump()
    assert ev["metric"] == "validation/epoch_loss"
    assert ev["best_step"] == 5 and ev["steps"][-1] == 19
    assert "epoch 5" in f.summary


def test_a_validation_loss_at_chance_is_named_by_its_epoch_level_series(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    train, val = SummaryWriter(str(tmp_path / "train")), SummaryWriter(str(tmp_path / "validation"))
    for epoch in range(12):
        train.add_scalar("epoch_loss", 0.8 / (epoch + 1), epoch)
        train.add_scalar("epoch_accuracy", 0.5 + 0.03 * epoch, epoch)
        # a 10-class validation pinned at ln 10 (chance) and 0.1; Keras writes the per-iteration ones first
        v = np.log(10) + 1e-4 * (-1) ** epoch
        val.add_scalar("evaluation_loss_vs_iterations", v, 1500 * (epoch + 1))
        val.add_scalar("epoch_loss", v, epoch)
        val.add_scalar("evaluation_accuracy_vs_iterations", 0.1, 1500 * (epoch + 1))
        val.add_scalar("epoch_accuracy", 0.1, epoch)
    train.close()
    val.close()
    summaries = " ".join(f.summary for f in check_logs(tmp_path).findings)
    assert "validation/epoch_loss sits at ln 10" in summaries
    assert "vs_iterations" not in summaries
