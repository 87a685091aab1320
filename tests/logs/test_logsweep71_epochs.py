"""logsweep71 h06: a TensorBoard file whose step is the epoch (Ultralytics logs every scalar at
``epoch + 1``, Keras' TF2 callback its ``epoch_*`` tags at the epoch) says "epoch N" in its findings,
and a file on a real step counter (Lightning, a plain loop) keeps "step N"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _writer(folder: Path):  # noqa: ANN202 - torch's SummaryWriter, which Ultralytics and Lightning use
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder))


def _only_file(folder: Path) -> Path:
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def _ultralytics_run(folder: Path, epochs: int = 30, batches: int = 8, nan_epoch: int | None = None) -> Path:
    """What YOLOv8's TensorBoard callback writes: the running mean of the train losses after every
    batch and the validation metrics after every epoch, all at the step ``epoch + 1``, plus lr/pg*."""
    w = _writer(folder)
    for epoch in range(epochs):
        for b in range(batches):
            box = 1.4 - 0.02 * epoch - 0.001 * b
            if nan_epoch is not None and epoch + 1 == nan_epoch:
                box = math.nan
            w.add_scalar("train/box_loss", box, epoch + 1)
            w.add_scalar("train/cls_loss", 1.7 - 0.04 * epoch - 0.001 * b, epoch + 1)
            w.add_scalar("train/dfl_loss", 1.2 - 0.01 * epoch, epoch + 1)
        for k, v in {"metrics/precision(B)": 0.6 + 0.01 * epoch, "metrics/recall(B)": 0.5 + 0.01 * epoch,
                     "metrics/mAP50(B)": 0.6 + 0.01 * epoch, "metrics/mAP50-95(B)": 0.3 + 0.005 * epoch,
                     "val/box_loss": 1.5 - 0.01 * epoch, "val/cls_loss": 1.6 - 0.02 * epoch,
                     "val/dfl_loss": 1.3 - 0.005 * epoch, "lr/pg0": 0.01, "lr/pg1": 0.01, "lr/pg2": 0.01}.items():
            w.add_scalar(k, v, epoch + 1)
    w.close()
    return _only_file(folder)


def test_an_ultralytics_run_is_on_epochs_and_its_findings_say_so(tmp_path: Path) -> None:
    path = _ultralytics_run(tmp_path, nan_epoch=17)
    log = read_log(path)
    assert {s.step_unit for s in log.series} == {"epoch"}
    (box,) = [s for s in log.series if s.name == "train/box_loss"]
    assert len(box) == 30 * 8                       # one point per batch, each at its epoch
    (nan,) = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert "at epoch 17" in nan.summary              # the 17th epoch's batches are NaN
    assert "step" not in nan.summary


def test_an_epoch_scalar_equal_to_its_step_says_the_step_is_the_epoch(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    for epoch in range(12):
        w.add_scalar("epoch", epoch, epoch)
        w.add_scalar("loss", 2.0 / (epoch + 1), epoch)
        w.add_scalar("val_loss", 2.2 / (epoch + 1), epoch)
    w.close()
    log = read_log(_only_file(tmp_path))
    assert {s.step_unit for s in log.series} == {"epoch"}
    (loss,) = [s for s in log.series if s.name == "loss"]
    assert loss.where(7) == "epoch 7"


def test_a_step_counter_stays_steps(tmp_path: Path) -> None:
    """Lightning logs ``epoch`` at the global step (its value the epoch, not the step); a plain loop
    logs one point per step 0..N, which alone says nothing about epochs."""
    lightning, plain = tmp_path / "lightning", tmp_path / "plain"
    w = _writer(lightning)
    for step in range(0, 400, 10):
        w.add_scalar("epoch", step // 100, step)
        w.add_scalar("train_loss", 3.0 - step / 400, step)
    w.close()
    w = _writer(plain)
    for step in range(120):
        w.add_scalar("train/loss", 3.0 - step / 100, step)
        w.add_scalar("metrics/accuracy", step / 200, step)
    w.close()
    for folder in (lightning, plain):
        assert {s.step_unit for s in read_log(_only_file(folder)).series} == {"step"}


def test_keras_epoch_tags_are_on_epochs_and_its_iteration_tags_on_steps(tmp_path: Path) -> None:
    """Keras' TF2 callback logs ``epoch_loss`` at the epoch and ``evaluation_loss_vs_iterations`` at
    the optimizer's iteration, in the same validation file."""
    w = _writer(tmp_path)
    for epoch in range(10):
        w.add_scalar("evaluation_loss_vs_iterations", 1.0 / (epoch + 1), 1500 * (epoch + 1))
        w.add_scalar("epoch_loss", 1.0 / (epoch + 1), epoch)
    w.close()
    units = {s.name: s.step_unit for s in read_log(_only_file(tmp_path)).series}
    # (the file alone is the validation writer's, read as in its validation/ folder)
    assert units == {"validation/evaluation_loss_vs_iterations": "step", "validation/epoch_loss": "epoch"}
