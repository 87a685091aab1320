"""Keras history JSON whose lists differ in length (logsweep64 u04): two models' histories merged with
prefixes, or one run's lists of different lengths, are read each over its own epochs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gradhealth.errors import LogError
from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _two_models(tmp_path: Path) -> Path:
    reg = [1.2 * 0.9 ** i + 0.3 for i in range(30)]
    history = {
        "reg_loss": reg, "reg_val_loss": [v + 0.05 for v in reg],
        "cls_loss": [math.log(2) + 0.01 * (-1) ** i for i in range(19)],
        "cls_accuracy": [0.5 + 0.002 * (-1) ** i for i in range(19)],
        "cls_val_loss": [math.log(2)] * 19, "cls_val_accuracy": [0.5268] * 19,
    }
    path = tmp_path / "training_history.json"
    path.write_text(json.dumps(history, indent=2))
    return path


def test_two_models_histories_are_two_runs(tmp_path: Path) -> None:
    log = read_log(_two_models(tmp_path))
    assert log.runs == ["reg", "cls"]
    by = {s.name: s for s in log.series}
    assert len(by["reg/loss"]) == 30 and by["reg/loss"].role == "loss"
    assert len(by["cls/loss"]) == 19 and by["cls/val_loss"].role == "val_loss"
    assert by["cls/loss"].steps.tolist() == list(range(19))
    note = next(w for w in log.warnings if w.code == "several_runs")
    assert "30 in reg_loss" in note.message and "19 in cls_loss" in note.message


def test_two_models_history_judges_the_classifier_at_chance(tmp_path: Path) -> None:
    doc = check_logs(_two_models(tmp_path))
    plateau = [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"]
    assert plateau and "cls/loss" in plateau[0].summary


def test_one_runs_lists_of_different_lengths_are_read_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": [1.0 / (i + 1) for i in range(12)],
                                "val_loss": [1.1 / (i + 1) for i in range(9)]}))
    log = read_log(path)
    by = {s.name: s for s in log.series}
    assert len(by["loss"]) == 12 and len(by["val_loss"]) == 9
    assert not log.runs
    note = next(w for w in log.warnings if w.code == "uneven_lengths")
    assert "12 in loss" in note.message and "9 in val_loss" in note.message


def test_a_list_of_non_numbers_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": [1.0, 0.9, 0.8], "val_loss": [1.0, "oops"]}))
    with pytest.raises(LogError, match="'val_loss' value 1 .* not a number"):
        read_log(path)
