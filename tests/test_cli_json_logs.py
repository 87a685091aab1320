"""`gradhealth check FILE.json`: JSON Lines logs go to the log check, specs (broken or not) to the
spec check."""

from __future__ import annotations

import json
from pathlib import Path

from gradhealth.cli import is_spec, main

DATA = Path(__file__).resolve().parent / "data" / "logs" / "sweep2"


def test_detectron2_metrics_json_is_a_log(capsys):
    path = DATA / "d2-medwaste-excerpt" / "metrics.json"
    assert not is_spec(str(path))
    assert main(["check", str(path), "--format", "json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["kind"] == "logs"


def test_json_lines_no_reader_knows_get_the_log_error_not_extra_data(tmp_path, capsys):
    path = tmp_path / "metrics.json"
    path.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    assert not is_spec(str(path))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Extra data" not in err and "not a log format gradhealth reads" in err


def test_keras_history_json_is_a_log(tmp_path, capsys):
    path = tmp_path / "training_history.json"
    path.write_text(json.dumps({"loss": [1.0, 0.8, 0.7, 0.6], "val_loss": [1.1, 0.9, 0.8, 0.75]}))
    assert not is_spec(str(path))
    assert main(["check", str(path), "--format", "json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["kind"] == "logs"


def test_a_spec_json_is_still_a_spec(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}]}))
    assert is_spec(str(path))


def test_a_broken_spec_json_still_gets_the_spec_error(tmp_path, capsys):
    path = tmp_path / "comma.json"
    path.write_text('{"input": {"shape": [4]},\n "layers": [{"type": "linear", "out_features": 2},]}')
    assert is_spec(str(path))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid JSON at line 2, column" in err and "log format" not in err


def test_two_spec_objects_on_two_lines_stay_a_spec(tmp_path, capsys):
    path = tmp_path / "split.json"
    path.write_text('{"input": {"shape": [4]}}\n{"layers": [{"type": "linear", "out_features": 2}]}\n')
    assert is_spec(str(path))
    assert main(["check", str(path)]) == 2
    assert "Extra data" in capsys.readouterr().err
