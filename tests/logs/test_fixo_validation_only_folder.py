"""A TensorBoard folder holding only ``validation/`` (Keras' callback writes ``train/`` and
``validation/``; a user uploads the latter alone) keeps its loss's validation role, as when both
folders are there (closing35 notes, left by fixK/fixN: its ``epoch_loss`` was read as the training
loss, and a rising validation curve reported as the training loss diverging)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from tests.logs.readers.test_tensorboard import file_version_event, scalar_event, write_records

#: a validation loss that falls to epoch ~10 and then climbs far above it (overfitting): as a
#: training loss it reads as a divergence
_VAL = [2.0 * math.exp(-e / 4) + 0.02 * max(0, e - 10) ** 2 for e in range(40)]
_TRAINING_CHECKS = {"loss_divergence", "loss_plateau", "loss_spike"}


def _validation_folder(root: Path) -> Path:
    folder = root / "validation"
    folder.mkdir(parents=True)
    write_records(folder / "events.out.tfevents.1700000000.host.1.v2",
                  [file_version_event()]
                  + [scalar_event("epoch_loss", v, e) for e, v in enumerate(_VAL)]
                  + [scalar_event("epoch_accuracy", 0.5 + 0.01 * e, e) for e in range(40)])
    return folder


def test_validation_folder_alone_keeps_the_validation_role(tmp_path):
    pytest.importorskip("tensorboard")
    _validation_folder(tmp_path / "logs")
    run = read_log(tmp_path / "logs")
    roles = {s.name: s.role for s in run.series}
    assert roles == {"validation/epoch_loss": "val_loss", "validation/epoch_accuracy": "metric"}
    assert run.first("loss") is None
    loss = run.first("val_loss")
    assert loss is not None and loss.values.tolist() == pytest.approx(_VAL, rel=1e-6)  # float32 on disk


def test_validation_folder_alone_gets_no_training_findings(tmp_path):
    pytest.importorskip("tensorboard")
    _validation_folder(tmp_path / "logs")
    d = check_logs(tmp_path / "logs")
    codes = {f.code for f in d.findings}
    assert not codes & _TRAINING_CHECKS, codes
    (note,) = [f for f in d.findings if f.code == "insufficient_data"]
    assert "no training loss" in note.summary and "validation/epoch_loss" in note.summary


def test_the_validation_folder_read_itself_or_zipped_alone(tmp_path):
    pytest.importorskip("tensorboard")
    folder = _validation_folder(tmp_path / "logs")
    # the folder itself, and an archive holding only it (its one top folder is the folder read)
    archive = tmp_path / "validation.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in folder.iterdir():
            z.write(p, f"validation/{p.name}")
    for path in (folder, archive):
        run = read_log(path)
        assert run.first("loss") is None, path
        assert {s.role for s in run.series} == {"val_loss", "metric"}, path
        assert not {f.code for f in check_logs(path).findings} & _TRAINING_CHECKS, path


def test_a_train_folder_alone_is_still_the_training_loss(tmp_path):
    pytest.importorskip("tensorboard")
    folder = tmp_path / "logs" / "train"
    folder.mkdir(parents=True)
    write_records(folder / "events.out.tfevents.1700000000.host.1.v2",
                  [file_version_event()] + [scalar_event("epoch_loss", 1.0 / (e + 1), e) for e in range(20)])
    run = read_log(tmp_path / "logs")
    assert [(s.name, s.role) for s in run.series] == [("epoch_loss", "loss")]
