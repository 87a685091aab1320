"""A lone events file of Keras' TensorBoard callback's validation writer (uploaded without its
``validation/`` folder) is read as in that folder: its ``epoch_loss`` is the validation loss, never
the training loss. The writer is told by its ``evaluation_loss_vs_iterations`` tag, which the
training writer never writes. Every file here is written by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.load import read_log


def _write(folder: Path, validation: bool) -> Path:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for epoch in range(12):
        writer.add_scalar("epoch_loss", 1.0 / (epoch + 1), epoch)
        if validation:
            writer.add_scalar("evaluation_loss_vs_iterations", 1.0 / (epoch + 1), 100 * (epoch + 1))
    writer.close()
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def test_the_validation_writers_file_alone_has_a_validation_loss_and_no_training_loss(tmp_path: Path) -> None:
    run = read_log(_write(tmp_path / "logs", validation=True))
    assert run.first("loss") is None
    val = run.first("val_loss")
    assert val is not None and val.name == "validation/epoch_loss"


def test_the_training_writers_file_alone_keeps_its_training_loss(tmp_path: Path) -> None:
    run = read_log(_write(tmp_path / "logs", validation=False))
    loss = run.first("loss")
    assert loss is not None and loss.name == "epoch_loss"
    assert run.first("val_loss") is None


def test_nan_in_the_validation_writers_file_alone_says_the_training_loss_is_missing(tmp_path: Path) -> None:
    """NaN from the first evaluation with no training loss logged: an error (the evaluation is void)
    that does not blame the updates, and says where Keras keeps the training loss."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    from gradhealth.library import check_logs

    writer = SummaryWriter(str(tmp_path / "logs"))
    for epoch in range(12):
        writer.add_scalar("epoch_loss", float("nan"), epoch)
        writer.add_scalar("evaluation_loss_vs_iterations", float("nan"), 100 * (epoch + 1))
    writer.close()
    (path,) = (tmp_path / "logs").glob("events.out.tfevents.*")
    (f,) = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error"
    assert "no training loss" in f.summary and "train/" in f.explanation
    assert [r.id for r in f.remedies][0] == "check_data"
    assert f.evidence.model_dump()["training_logged"] is False
