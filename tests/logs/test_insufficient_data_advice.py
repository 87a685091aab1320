"""An ``insufficient_data`` finding's advice names the way to log the training loss in the log's own
format (a held-out sweep's item: the advice said ``self.log('train_loss', ...)``, Lightning's, for a
Keras TensorBoard folder of only ``validation/``, a Keras CSVLogger file, a Hugging Face
trainer_state.json, a W&B history, a console log). Code, severity and remedies are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.library import check_logs
from gradhealth.logs.detectors.coverage import _LOG_THE_LOSS, _LOG_THE_LOSS_DEFAULT, log_the_loss
from gradhealth.logs.series import RunLog

#: a validation loss of 12 epochs, enough points for the validation-only note
_VAL = [1.0 / (e + 1) + 0.1 for e in range(12)]
_LIGHTNING = "self.log("


def _note(path: Path) -> str:
    d = check_logs(path)
    (note,) = [f for f in d.findings if f.code == "insufficient_data"]
    assert note.severity == "info" and note.remedies == []
    return note.explanation


def test_keras_csvlogger_names_model_fit(tmp_path):
    p = tmp_path / "training.log"
    p.write_text("epoch,val_accuracy,val_loss\n" + "".join(f"{e},{0.5 + 0.01 * e},{v}\n" for e, v in enumerate(_VAL)))
    why = _note(p)
    assert "model.fit(..., validation_data=...)" in why and "CSVLogger" in why and "train/" in why
    assert _LIGHTNING not in why


def test_hf_trainer_state_names_logging_steps(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"global_step": 1200, "log_history": [
        {"epoch": e + 1, "step": (e + 1) * 100, "eval_loss": v} for e, v in enumerate(_VAL)]}))
    why = _note(p)
    assert "logging_steps" in why and "TrainingArguments" in why
    assert _LIGHTNING not in why


def test_hf_trainer_too_few_points_names_logging_steps(tmp_path):
    # 3 training-loss points, under the bar of 8: the "too short" note says how to log more of them
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"global_step": 300, "log_history": [
        {"epoch": e + 1, "step": (e + 1) * 100, "loss": v} for e, v in enumerate(_VAL[:3])]}))
    why = _note(p)
    assert "logging_steps" in why and _LIGHTNING not in why


def test_lightning_metrics_csv_keeps_self_log(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,val_loss\n" + "".join(f"{e},{(e + 1) * 100 - 1},{v}\n" for e, v in enumerate(_VAL)))
    why = _note(p)
    assert 'self.log("train_loss", loss)' in why and "training_step" in why


def test_wandb_history_names_wandb_log(tmp_path):
    p = tmp_path / "history.csv"
    p.write_text("_step,_runtime,_timestamp,val/loss\n"
                 + "".join(f"{e},{e},{1700000000 + e},{v}\n" for e, v in enumerate(_VAL)))
    why = _note(p)
    assert "wandb.log(" in why and _LIGHTNING not in why


def test_console_log_says_print_the_loss_on_each_line(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("".join(f"Epoch {e + 1}: val_loss {v:.4f}\n" for e, v in enumerate(_VAL)))
    why = _note(p)
    assert "print the loss on each step's line" in why and _LIGHTNING not in why


def test_keras_tensorboard_validation_folder_names_train_folder(tmp_path):
    pytest.importorskip("tensorboard")
    from tests.logs.readers.test_tensorboard import file_version_event, scalar_event, write_records

    folder = tmp_path / "logs" / "validation"
    folder.mkdir(parents=True)
    write_records(folder / "events.out.tfevents.1700000000.host.1.v2",
                  [file_version_event()] + [scalar_event("epoch_loss", v, e) for e, v in enumerate(_VAL)])
    why = _note(tmp_path / "logs")
    assert "Keras' TensorBoard callback" in why and "train/" in why and "model.fit" in why
    assert _LIGHTNING not in why and "add_scalar" not in why


def test_summarywriter_tensorboard_names_add_scalar(tmp_path):
    pytest.importorskip("tensorboard")
    from tests.logs.readers.test_tensorboard import file_version_event, scalar_event, write_records

    folder = tmp_path / "runs"
    folder.mkdir()
    write_records(folder / "events.out.tfevents.1700000000.host.1.v2",
                  [file_version_event()] + [scalar_event("val/loss", v, e * 100) for e, v in enumerate(_VAL)])
    why = _note(folder)
    assert 'writer.add_scalar("train/loss"' in why
    assert _LIGHTNING not in why and "Keras" not in why


def test_table_and_default():
    # every entry names its own framework's way; an unknown format (a merged folder) gets the default
    assert log_the_loss(RunLog(format="folder", source="x")) == _LOG_THE_LOSS_DEFAULT
    assert log_the_loss(RunLog(format="numbers", source="x")) == _LOG_THE_LOSS_DEFAULT
    assert _LIGHTNING not in _LOG_THE_LOSS_DEFAULT
    assert all(_LIGHTNING not in text for fmt, text in _LOG_THE_LOSS.items() if fmt != "lightning")
