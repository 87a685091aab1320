"""logsweep94 pl_node_*: test-tube's metrics.csv (``train_loss,epoch,created_at``, written by PyTorch Lightning's
TestTubeLogger before 1.5) was labelled ``keras``. It is read as the per-epoch table it is, labelled
``test_tube``; Lightning's CSVLogger metrics.csv (a ``step`` column) and a Keras CSVLogger file keep theirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.load import read_log
from gradhealth.logs.readers.registry import formats
from tests.logs.helpers import by_name, write

LOSSES = [17.66887855529785, 17.678895950317383, 17.6544, 17.6102, 17.5903, 17.5511, 17.5207, 17.5003, 17.4811]


def _test_tube() -> str:
    rows = [f"{v},{e},2020-02-14 21:{10 + e:02d}:05.788645" for e, v in enumerate(LOSSES)]
    return "train_loss,epoch,created_at\n" + "\n".join(rows) + "\n"


def test_a_test_tube_metrics_csv_is_labelled_test_tube_and_read_by_epoch(tmp_path: Path) -> None:
    run = read_log(write(tmp_path, "metrics.csv", _test_tube()))
    assert run.format == "test_tube" and "test_tube" in formats()
    loss = by_name(run)["train_loss"]
    assert loss.role == "loss" and loss.step_unit == "epoch"
    np.testing.assert_array_equal(loss.steps, np.arange(len(LOSSES)))
    np.testing.assert_allclose(loss.values, LOSSES)
    assert "created_at" not in by_name(run)


def test_lightning_and_keras_csvs_keep_their_labels(tmp_path: Path) -> None:
    lightning = "epoch,step,train_loss,val_loss\n" + "".join(f"{i // 3},{i},{1.0 / (i + 1)},\n" for i in range(9))
    keras = "epoch,loss,val_loss\n" + "".join(f"{i},{1.0 / (i + 1)},{1.2 / (i + 1)}\n" for i in range(9))
    assert read_log(write(tmp_path, "metrics.csv", lightning)).format == "lightning"
    assert read_log(write(tmp_path, "training.csv", keras)).format == "keras"
