"""A Keras output's softmax/sigmoid as the importer resolves it: recognised under any loss on
probabilities (a softmax under binary cross-entropy is probabilities, not an identity output), and
two squashes in a row (Dense(softmax) -> Activation(softmax), two Activation layers, a Softmax
layer over a softmax, a sigmoid over a sigmoid) reported with the loss floor the second one sets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gradhealth.analysis.importers.keras import check_keras
from tests.analysis.test_keras_import import _dense, _layer, _seq


def _check(tmp_path: Path, name: str, *layers: dict[str, Any], loss: Any) -> Any:
    hidden = _dense("hidden", 32, "relu")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**_seq(hidden, *layers, shape=[16]), "compile_config": {"loss": loss}}))
    return check_keras(path, seeds=2)


def _mismatch(doc: Any) -> list[Any]:
    return [f for f in doc.findings if f.code == "output_loss_mismatch"]


BCE = {"class_name": "BinaryCrossentropy", "config": {"from_logits": False}}


@pytest.mark.parametrize("width", [2, 5])
def test_a_softmax_under_binary_cross_entropy_is_probabilities(tmp_path: Path, width: int) -> None:
    # every output in (0, 1), nothing clipped: no double squash and no clip; over 2 units the one
    # mismatch is the softmax's tie of its units under a loss that scores each on its own
    # (test_output_loss_mismatch: multi-hot targets out of reach)
    def cases(doc: Any) -> list[str | None]:
        return [f.evidence.metric for f in _mismatch(doc)]

    tie = [] if width <= 2 else ["softmax_units_under_binary_loss"]
    doc = _check(tmp_path, f"sm{width}", _dense("out", width, "softmax"), loss="binary_crossentropy")
    assert cases(doc) == tie, doc.summary
    assert [u.activation for u in doc.layers if u.name == "out"] == ["softmax"]
    doc = _check(tmp_path, f"sm{width}_layer", _dense("out", width), _layer("Softmax", "soft", axis=-1), loss=BCE)
    assert cases(doc) == tie, doc.summary


def test_a_linear_output_under_binary_cross_entropy_is_still_found(tmp_path: Path) -> None:
    [f] = _mismatch(_check(tmp_path, "lin", _dense("out", 2), loss="binary_crossentropy"))
    assert f.evidence.output_activation == "identity"


def _floor(k: int) -> float:
    return math.log1p((k - 1) / math.e)


@pytest.mark.parametrize(("spelling", "tail"), [
    ("dense_then_activation", [_dense("out", 10, "softmax"), _layer("Activation", "act", activation="softmax")]),
    ("two_activations", [_dense("out", 10), _layer("Activation", "act0", activation="softmax"),
                         _layer("Activation", "act", activation="softmax")]),
    ("dense_then_softmax_layer", [_dense("out", 10, "softmax"), _layer("Softmax", "act", axis=-1)]),
])
def test_a_softmax_over_a_softmax_under_categorical_cross_entropy(
        tmp_path: Path, spelling: str, tail: list[dict[str, Any]]) -> None:
    [f] = _mismatch(_check(tmp_path, spelling, *tail, loss="categorical_crossentropy"))
    assert f.severity == "error"
    assert f.evidence.metric == "unreachable_loss_fraction"
    assert f.evidence.loss_floor == pytest.approx(_floor(10))
    assert f.evidence.value == pytest.approx(_floor(10) / math.log(10))
    assert f.evidence.from_logits is False and f.evidence.squash_layers[-1] == "act"
    assert "softmax" in f.summary and "act" in f.summary
    [remedy] = [r for r in f.remedies if r.id == "logits_loss"]
    # re-simulated with the first softmax dropped: the floor is gone
    assert remedy.verified is not None and remedy.verified.fixed and remedy.verified.after == 0
    assert "drop the softmax" in remedy.change


def test_a_sigmoid_over_a_sigmoid_under_binary_cross_entropy(tmp_path: Path) -> None:
    [f] = _mismatch(_check(tmp_path, "sig2", _dense("out", 1, "sigmoid"),
                           _layer("Activation", "act", activation="sigmoid"), loss="binary_crossentropy"))
    expected = (math.log1p(math.exp(-1)) + math.log(2)) / 2 / math.log(2)
    assert f.evidence.value == pytest.approx(expected)
    assert f.evidence.first_activation == "sigmoid" and f.evidence.output_activation == "sigmoid"
    [remedy] = [r for r in f.remedies if r.id == "logits_loss"]
    assert remedy.verified is not None and remedy.verified.fixed


def test_a_softmax_over_a_softmax_under_binary_cross_entropy(tmp_path: Path) -> None:
    # NeuraLint's redundant activation: reported for the two softmaxes, not as an identity output
    [f] = _mismatch(_check(tmp_path, "nl", _dense("out", 10, "softmax"),
                           _layer("Activation", "act", activation="softmax"), loss=BCE))
    assert f.evidence.metric == "unreachable_loss_fraction"
    assert f.evidence.output_activation == "softmax" and f.evidence.first_activation == "softmax"
    assert "identity" not in f.summary
    [remedy] = [r for r in f.remedies if r.id == "logits_loss"]
    # the first softmax stays in the simulated network: no re-simulation can show its removal
    assert remedy.verified is None and remedy.unverified == "not_simulable"


@pytest.mark.parametrize(("tail", "loss"), [
    ([_dense("out", 10, "softmax")], "categorical_crossentropy"),
    ([_dense("out", 10), _layer("Activation", "act", activation="softmax")], "categorical_crossentropy"),
    ([_dense("out", 1, "sigmoid")], "binary_crossentropy"),
    ([_dense("out", 1), _layer("Activation", "act", activation="sigmoid")], "binary_crossentropy"),
])
def test_one_squash_stays_healthy(tmp_path: Path, tail: list[dict[str, Any]], loss: str) -> None:
    assert not _mismatch(_check(tmp_path, "one", *tail, loss=loss))
