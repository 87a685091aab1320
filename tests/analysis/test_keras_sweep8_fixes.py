"""The Keras importer's fixes for the kerassweep8 sweep's misses (h07, h11, u06, u07).

h07: ``go_backwards`` on a plain recurrent layer is simulated as Keras computes it (the input read
from its last step, the outputs returned in the order read); ``stateful`` is still refused.
h11: ActivityRegularization (and ``activity_regularizer``) with a penalty is the identity, and the
document says the penalty's gradient is left out. u06: an input Normalization whose statistics
describe no data (variance 0: inputs scaled by 1e7) is not skipped as preprocessing. u07: a
BatchNormalization's non-default initialisers are not dropped on the spec path.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import _snake, check_keras, translate_or_graph
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from gradhealth.analysis.importers.keras_torch import KerasNet
from tests.analysis.test_keras_import import _dense, _init, _layer, _seq


def _keras3(cfg: dict[str, Any], stored: dict[str, list[np.ndarray]], tmp_path: Path) -> Path:
    """A Keras 3 ``.keras`` archive of the Sequential ``cfg`` with ``stored`` (layer name -> its
    variables), each layer's under ``layers/<snake_case class>[_k]/vars/i`` as Keras 3 writes them."""
    import h5py

    h5 = io.BytesIO()
    with h5py.File(h5, "w") as f:
        used: dict[str, int] = {}
        for lay in cfg["config"]["layers"][1:]:  # Sequential.layers: no InputLayer
            snake = _snake(lay["class_name"])
            used[snake] = used.get(snake, -1) + 1
            group = f.create_group(f"layers/{snake}" + (f"_{used[snake]}" if used[snake] else "") + "/vars")
            for i, value in enumerate(stored.get(lay["config"]["name"], [])):
                group.create_dataset(str(i), data=value)
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("model.weights.h5", h5.getvalue())
    return path


def _loud(doc: Any) -> set[str]:
    return {f.code for f in doc.findings if f.severity in ("warning", "error")}


# --- h07: go_backwards ----------------------------------------------------------------------------

def _rnn(cls: str, sequences: bool, **cfg: Any) -> dict[str, Any]:
    return _layer(cls, cls.lower(), units=4, activation="tanh", return_sequences=sequences, **cfg)


@pytest.mark.parametrize("cls", ["SimpleRNN", "GRU", "LSTM"])
@pytest.mark.parametrize("sequences", [True, False])
def test_go_backwards_reads_the_sequence_reversed_and_returns_it_in_that_order(cls: str, sequences: bool) -> None:
    # Keras: "process the input sequence backwards and return the reversed sequence": the outputs
    # in the order read (only Bidirectional flips its backward half back), the last one after x[0]
    back = KerasNet(plan_keras_graph(_seq(_rnn(cls, sequences, go_backwards=True), shape=[6, 3])), None).double()
    fwd = KerasNet(plan_keras_graph(_seq(_rnn(cls, True), shape=[6, 3])), None).double()
    fwd.load_state_dict(back.state_dict())
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    read_backwards = fwd(x.flip(1))  # every output of a forward layer over the reversed input
    out = back(x)
    expected = read_backwards if sequences else read_backwards[:, -1]
    assert torch.allclose(out, expected)
    assert not torch.allclose(out, fwd(x) if sequences else fwd(x)[:, -1])


def test_go_backwards_is_checked_through_the_graph_door_and_stateful_as_its_window() -> None:
    cfg = _seq(_rnn("GRU", False, go_backwards=True), _dense("out", 1), shape=[20, 3])
    spec, _, graph = translate_or_graph(cfg)
    assert spec is None and graph is not None  # the spec's recurrent layers read forwards
    assert check_keras(cfg, seeds=1, verify=False).status in ("healthy", "warning", "unhealthy")
    # a stateful layer is checked as its stateless window, the summary saying so (it was refused)
    stateful = check_keras(_seq(_rnn("GRU", False, stateful=True), _dense("out", 1), shape=[20, 3]),
                           seeds=1, verify=False)
    assert "stateful" in stateful.summary
    bidirectional = _layer("Bidirectional", "bi", merge_mode="concat",
                           layer={"class_name": "GRU", "config": _rnn("GRU", False, go_backwards=True)["config"]})
    with pytest.raises(ModelError, match="go_backwards"):  # Keras then returns unaligned halves
        translate_or_graph(_seq(bidirectional, _dense("out", 1), shape=[20, 3]))


# --- h11: activity penalties ----------------------------------------------------------------------

def test_activity_regularization_is_the_identity_and_the_document_says_its_penalty_is_left_out() -> None:
    act_reg = _layer("ActivityRegularization", "act_reg", l1=1e-5, l2=0.0)
    cfg = _seq(_dense("hidden", 16, "relu", init=_init("HeNormal")), act_reg, _dense("out", 1), shape=[8])
    spec, _, _ = translate_or_graph(cfg)
    assert spec is not None and len(spec["layers"]) == 2  # the identity: no spec layer
    doc = check_keras(cfg, seeds=1, verify=False)
    assert doc.status == "healthy"
    assert "activity penalty not simulated: act_reg (l1=1e-05, l2=0)" in doc.summary
    # the graph door too (a Dense's own activity_regularizer: the same note)
    graph_cfg = _seq(_dense("hidden", 16, "relu", activity_regularizer={"class_name": "L2", "config": {"l2": 0.01}}),
                     _layer("ActivityRegularization", "act_reg", l1=0.0, l2=1e-4),
                     _layer("Reshape", "reshape", target_shape=[4, 4]), _layer("Flatten", "flat"),
                     _dense("out", 1), shape=[8])
    plan_keras_graph(graph_cfg)
    doc = check_keras(graph_cfg, seeds=1, verify=False)
    assert "hidden (l1=0, l2=0.01)" in doc.summary and "act_reg (l1=0, l2=0.0001)" in doc.summary


# --- u06: degenerate Normalization statistics -----------------------------------------------------

def _normalised(**norm: Any) -> dict[str, Any]:
    return _seq(_layer("Normalization", "normalization", axis=[-1], invert=False, **norm),
                _dense("dense", 16, "relu"), _dense("dense_1", 1), shape=[8])


@pytest.mark.parametrize("variance", [0.0, float("nan")])
def test_a_normalization_of_no_data_is_not_skipped_as_preprocessing(variance: float, tmp_path: Path) -> None:
    stored = {"normalization": [np.zeros(8), np.full(8, variance), np.array(5000, dtype=np.int64)],
              "dense": [np.random.default_rng(0).normal(0, 0.3, (8, 16)), np.zeros(16)],
              "dense_1": [np.random.default_rng(1).normal(0, 0.3, (16, 1)), np.zeros(1)]}
    doc = check_keras(_keras3(_normalised(mean=None, variance=None), stored, tmp_path), seeds=1, verify=False)
    code = "exploding_gradient" if variance == 0.0 else "nonfinite"
    assert doc.status == "unhealthy" and code in _loud(doc), doc.summary
    finding = next(f for f in doc.findings if f.code == code)
    assert finding.evidence.layers == ["normalization"]
    assert "input preprocessing skipped" not in doc.summary
    # statistics of real data are the input's own normalisation: skipped as before
    stored["normalization"][1] = np.full(8, 4.0)
    doc = check_keras(_keras3(_normalised(mean=None, variance=None), stored, tmp_path), seeds=1, verify=False)
    assert doc.status == "healthy" and "input preprocessing skipped: normalization" in doc.summary


def test_config_statistics_of_no_data_are_read_too() -> None:
    doc = check_keras(_normalised(mean=[0.0] * 8, variance=[0.0] * 8), seeds=1, verify=False)
    assert "exploding_gradient" in _loud(doc)
    graph = plan_keras_graph(_normalised(mean=[0.0] * 8, variance=[0.0] * 8))
    assert graph.preprocessing == [] and graph.degenerate_preprocessing[0][0] == "normalization"


# --- u07: BatchNormalization initialisers and stored weights --------------------------------------

def _bn_relu(**bn: Any) -> dict[str, Any]:
    return _seq(_dense("dense", 64, init=_init("HeNormal")), _layer("BatchNormalization", "bn", **bn),
                _layer("Activation", "relu", activation="relu"), _dense("out", 1), shape=[16])


def test_batchnorm_initialisers_are_not_dropped() -> None:
    # beta -3 before a ReLU: N(0, 1) - 3 is positive for 0.13% of inputs, so almost every unit is
    # dead over a batch; the spec's batchnorm starts at beta 0, so such a model goes to the graph door
    cfg = _bn_relu(beta_initializer=_init("Constant", value=-3.0))
    spec, _, graph = translate_or_graph(cfg)
    assert spec is None and graph is not None
    assert "dead_units" in _loud(check_keras(cfg, seeds=1, verify=False))
    # Keras' defaults (also written as Zeros/Ones/Constant of them) stay on the spec path
    default = _bn_relu(beta_initializer=_init("Zeros"), gamma_initializer=_init("Constant", value=1.0),
                       moving_mean_initializer=_init("Zeros"), moving_variance_initializer=_init("Ones"))
    assert translate_or_graph(default)[0] is not None
    assert "dead_units" not in _loud(check_keras(default, seeds=1, verify=False))


def test_stored_batchnorm_weights_are_used(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stored = {"dense": [rng.normal(0, np.sqrt(2 / 16), (16, 64)), np.zeros(64)],
              "bn": [np.ones(64), np.full(64, -3.0), np.zeros(64), np.ones(64)],
              "out": [rng.normal(0, 0.1, (64, 1)), np.zeros(1)]}
    doc = check_keras(_keras3(_bn_relu(), stored, tmp_path), seeds=1, verify=False)
    assert "dead_units" in _loud(doc), doc.summary
