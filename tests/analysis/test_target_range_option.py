"""peersweep8 h07 (DeepFD's fixed XOR net: a sigmoid output under mse on 0/1 targets, no accuracy
metric): the targets were taken as standard normal (66% out of a sigmoid's reach: a warning) and no
option could say otherwise for a model file. ``--target-range LO,HI`` (CLI), ``target_range`` (the
model route's field, check_keras' argument) is the spec's ``loss.target_range``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gradhealth.cli import main
from gradhealth.library import check_keras
from tests.analysis.test_keras_import import _dense, _init, _seq


def _xor(tmp_path: Path, loss: str = "mean_squared_error") -> Path:
    cfg = _seq(_dense("hidden", 4, "sigmoid", _init("GlorotUniform")), _dense("out", 1, "sigmoid"), shape=[2])
    path = tmp_path / "xor.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": loss, "optimizer": "sgd"}}))
    return path


def _mismatch(doc: Any) -> Any:
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    return f


def test_a_target_range_given_for_a_keras_file_judges_the_sigmoid_on_it(tmp_path: Path) -> None:
    path = _xor(tmp_path)
    unknown = _mismatch(check_keras(path, verify=False))
    # standard-normal targets outside [0, 1]: Phi(0) + 1 - Phi(1) = 0.6587
    assert unknown.severity == "warning"
    assert unknown.evidence.value == pytest.approx(0.5 + 0.5 * math.erfc(1 / math.sqrt(2)), rel=1e-12)
    assert "--target-range 0,1" in unknown.explanation
    labels = _mismatch(check_keras(path, verify=False, target_range=(0.0, 1.0)))
    assert labels.severity == "info" and labels.evidence.value == 0.0
    assert labels.evidence.model_extra["targets"] == "in [0, 1]"
    # targets over [0, 4]: 3 of the 4 units of the range out of a sigmoid's reach
    wide = _mismatch(check_keras(path, verify=False, target_range=(0.0, 4.0)))
    assert wide.evidence.value == pytest.approx(0.75)


def test_the_cli_option_reaches_the_check_and_bad_values_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _xor(tmp_path)
    out = tmp_path / "doc.json"
    assert main(["check", str(path), "--no-verify", "--target-range", "0,1", "--format", "json",
                 "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "healthy"
    [f] = [f for f in doc["findings"] if f["code"] == "output_loss_mismatch"]
    assert f["severity"] == "info" and f["evidence"]["targets"] == "in [0, 1]"
    for bad in ("1,0", "0", "a,b", "0,inf"):
        assert main(["check", str(path), "--no-verify", "--target-range", bad]) == 2
        assert "--target-range" in capsys.readouterr().err


def test_a_range_for_a_loss_that_is_not_a_regression_is_refused(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = _xor(tmp_path, loss="binary_crossentropy")
    assert main(["check", str(path), "--no-verify", "--target-range", "0,1"]) == 2
    assert "regression loss" in capsys.readouterr().err
