"""A bounded output under a regression loss is judged on the targets' range where it is known
(``loss.target_range``; a Keras model compiled with an accuracy metric has 0/1 labels), on
standard-normal targets where it is not (peersweep4: XOR nets with a sigmoid under mse/mae)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import GradHealthError
from gradhealth.library import check_architecture
from tests.analysis.test_keras_import import _dense, _init, _seq


def _spec(loss: Any, act: str = "sigmoid") -> dict[str, Any]:
    return {"input": {"shape": [2]}, "batch_size": 64, "loss": loss,
            "layers": [{"type": "linear", "out_features": 8, "activation": "tanh", "init": "xavier_uniform"},
                       {"type": "linear", "out_features": 1, "activation": act}]}


def _mismatch(doc: Any) -> Any:
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    return found[0] if found else None


def test_labels_within_a_sigmoid_range_are_in_reach() -> None:
    f = _mismatch(check_architecture(_spec({"type": "mse", "target_range": [0, 1]})))
    assert f.severity == "info" and f.evidence.value == 0.0 and "every target is in reach" in f.summary
    assert f.evidence.model_extra["targets"] == "in [0, 1]"
    # the same net with the targets unknown: the standard-normal share outside [0, 1], Phi(0) + 1 - Phi(1)
    f = _mismatch(check_architecture(_spec("mse")))
    expected = 0.5 + 0.5 * math.erfc(1 / math.sqrt(2))
    assert f.severity == "warning" and f.evidence.value == pytest.approx(expected, rel=1e-12)
    assert "loss.target_range" in f.explanation


def test_a_range_partly_outside_the_output_is_the_share_it_cannot_reach() -> None:
    # targets spread over [0, 10] under a sigmoid's [0, 1]: 90% out of reach
    f = _mismatch(check_architecture(_spec({"type": "mse", "target_range": [0, 10]})))
    assert f.severity == "warning" and f.evidence.value == pytest.approx(0.9)
    assert "of targets in [0, 10] are out of reach" in f.summary
    # a tanh's [-1, 1] over targets in [-0.5, 3]: 2 of 3.5 out of reach
    f = _mismatch(check_architecture(_spec({"type": "mae", "target_range": [-0.5, 3]}, act="tanh")))
    assert f.evidence.value == pytest.approx(2 / 3.5)


@pytest.mark.parametrize("bad", [[1, 0], [0, 0], [0, 1e400]])
def test_a_range_that_is_not_low_then_high_is_refused(bad: list[float]) -> None:
    with pytest.raises((GradHealthError, ValueError), match="target_range"):
        parse_spec(_spec({"type": "mse", "target_range": bad}))


def _keras(tmp_path: Path, metrics: Any) -> Path:
    cfg = _seq(_dense("h", 8, "tanh", _init("GlorotUniform")), _dense("out", 1, "sigmoid"), shape=[2])
    path = tmp_path / "xor.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "mean_squared_error", "metrics": metrics}}))
    return path


@pytest.mark.parametrize("metrics", [["accuracy"], [["acc"]], {"out": ["binary_accuracy"]},
                                     [{"module": "keras.metrics", "class_name": "BinaryAccuracy",
                                       "config": {"name": "binary_accuracy"}, "registered_name": None}]])
def test_a_keras_accuracy_metric_says_the_targets_are_labels(tmp_path: Path, metrics: Any) -> None:
    f = _mismatch(check_keras(_keras(tmp_path, metrics)))
    assert f.severity == "info" and f.evidence.model_extra["targets"] == "in [0, 1]"


@pytest.mark.parametrize("metrics", [None, ["mae"], ["sparse_categorical_accuracy"]])
def test_without_a_label_metric_the_targets_are_unknown(tmp_path: Path, metrics: Any) -> None:
    f = _mismatch(check_keras(_keras(tmp_path, metrics)))
    assert f.severity == "warning" and f.evidence.model_extra["targets"] == "standard normal"
    assert f.evidence.value == pytest.approx(float(np.float64(0.5 + 0.5 * math.erfc(1 / math.sqrt(2)))))
