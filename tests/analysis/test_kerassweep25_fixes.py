"""kerassweep25: a stack of ``LSTM(activation="relu")`` layers (sign_lstm_dense) whose state built up
over the sequence read as ``exploding_gradient`` with the cause "weights too large ... or residual
branches" and no remedy bounding the cell; stored weights' findings said "at initialisation"; a custom
layer's refusal suggested an unrelated class (ClusteringLayer -> CustomScaleLayer); a subclassed
model's ``.keras`` file was refused without naming its class."""

from __future__ import annotations

import io
import json
import math
import zipfile
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.importers.keras_graph import unsupported_message
from gradhealth.analysis.module_check import check_module
from gradhealth.errors import InputFormatError
from tests.analysis.test_keras_tf213_archives import _archive as keras_archive

T, F_IN, H = 30, 12, 16


def _layer(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": cls, "config": {"name": name, **cfg}, "registered_name": None}


def _archive(config: dict[str, Any], groups: dict[str, list[np.ndarray]]) -> bytes:
    """A Keras 3 ``.keras`` zip: config.json and model.weights.h5 (``layers/<name>/vars``), as the
    TF 2.13 archive tests write theirs, under Keras 3's version."""
    return keras_archive(config, groups, version="3.4.1")


def _lstm_weights(rng: np.random.Generator, n_in: int) -> list[np.ndarray]:
    """Small kernels (std 0.1 and 0.05, as a trained sign-language LSTM's) and input and forget
    gates held open by their biases (Keras' gate order i, f, c, o), so the cell state adds up its
    input over the steps."""
    bias = np.concatenate([np.full(H, 3.0), np.full(H, 3.0), np.zeros(H), np.full(H, 3.0)])
    return [rng.normal(0, 0.3, (n_in, 4 * H)), rng.normal(0, 0.05, (H, 4 * H)), bias]


def _relu_lstm_stack(activation: str = "relu") -> bytes:
    rng = np.random.default_rng(25)
    layers = [_layer("InputLayer", "inp", batch_shape=[None, T, F_IN])]
    groups: dict[str, list[np.ndarray]] = {}
    n_in = F_IN
    for k, name in enumerate(("lstm", "lstm_1", "lstm_2")):
        layers.append(_layer("LSTM", name, units=H, activation=activation, return_sequences=k < 2))
        groups[f"layers/{name}"] = []
        groups[f"layers/{name}/cell"] = _lstm_weights(rng, n_in)
        n_in = H
    layers.append(_layer("Dense", "dense", units=5, activation="softmax"))
    groups["layers/dense"] = [rng.normal(0, 0.3, (H, 5)), np.zeros(5)]
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": layers},
              "registered_name": None, "compile_config": {"loss": "categorical_crossentropy"}}
    return _archive(config, groups)


def test_a_relu_lstm_stack_names_its_unbounded_cells_and_is_fixed_by_tanh(tmp_path: Any) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(_relu_lstm_stack())
    doc = check_keras(path, seeds=2, batch_size=16)
    [boom] = [f for f in doc.findings if f.code == "exploding_gradient"]
    cells = (boom.evidence.model_extra or {})["unbounded_recurrent_activation"]
    assert cells["activations"] == ["relu"] and set(cells["layers"]) <= {"lstm_1", "lstm_2"}
    # each cell's gain, from the layer table: its output's std over the layer before it's (a forward
    # growth), or the gradient before it over its own (a backward one)
    forward = cells["measured"] == "activation_std"
    value = {u.name: u.activation_std if forward else u.output_grad_norm for u in doc.layers}
    order = ["lstm", "lstm_1", "lstm_2"]
    for name, gain in cells["gains"].items():
        before, own = value[order[order.index(name) - 1]], value[name]
        assert math.isclose(gain, own / before if forward else before / own, rel_tol=0.05)
    assert "weights too large" not in boom.explanation and "residual" not in boom.explanation
    assert "relu" in boom.explanation and "builds up" in boom.explanation
    # the bounded cell activation is offered, and re-simulated with tanh cells it fixes the growth
    [tanh] = [r for r in boom.remedies if r.id == "bounded_cell_activation"]
    assert tanh.verified is not None and tanh.verified.fixed and "stored weights kept" in tanh.change
    # independent: the same weights with tanh cells (Keras' default) read no exploding_gradient
    path.write_bytes(_relu_lstm_stack("tanh"))
    assert "exploding_gradient" not in {f.code for f in check_keras(path, seeds=2, batch_size=16).findings}


class _ReluRNN(nn.Module):
    """One nn.RNN(nonlinearity="relu") whose recurrent matrix, orthogonal at gain 2, grows the
    state by up to 2 a step, read at the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.out = nn.RNN(4, 32, nonlinearity="relu", batch_first=True), nn.Linear(32, 3)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def test_a_relu_rnn_growing_through_time_is_offered_tanh_in_a_live_module() -> None:
    torch.manual_seed(0)
    doc = check_module(_ReluRNN(), torch.randn(16, 20, 4), seeds=2)
    grow = [f for f in doc.findings if f.code == "exploding_through_time"]
    assert grow, [f.code for f in doc.findings]
    [tanh] = [r for r in grow[0].remedies if r.id == "bounded_cell_activation"]
    assert tanh.verified is not None and tanh.verified.fixed


def _regressor() -> bytes:
    """A stored LSTM(16) over 30 steps -> Dense(1, relu) under MSE (amzn_rnn_keras's shape): a ReLU
    regression output (output_loss_mismatch) and an LSTM's memory horizon (vanishing_through_time)."""
    rng = np.random.default_rng(3)
    layers = [_layer("InputLayer", "inp", batch_shape=[None, T, F_IN]), _layer("LSTM", "lstm", units=H),
              _layer("Dense", "dense", units=1, activation="relu")]
    groups = {"layers/lstm": [], "layers/lstm/cell": [rng.normal(0, 0.3, (F_IN, 4 * H)),
                                                      rng.normal(0, 0.3, (H, 4 * H)), np.zeros(4 * H)],
              "layers/dense": [rng.normal(0, 0.3, (H, 1)), np.zeros(1)]}
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": layers},
              "registered_name": None, "compile_config": {"loss": "mse"}}
    return _archive(config, groups)


def _texts(doc: Any) -> list[str]:
    """Every sentence a finding says: its summary, its explanation and the strings of its evidence."""
    out = []
    for f in doc.findings:
        out += [f.summary, f.explanation]
        out += [v for v in (f.evidence.model_extra or {}).values() if isinstance(v, str)]
    return out


def test_stored_weights_findings_speak_of_the_weights_as_stored(tmp_path: Any) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(_regressor())
    stored = check_keras(path, seeds=2, batch_size=16)
    assert {"output_loss_mismatch", "vanishing_through_time"} <= {f.code for f in stored.findings}
    assert "as stored" in stored.summary
    texts = _texts(stored)
    assert not [t for t in texts if "at initialisation" in t], texts
    clipped = next(f for f in stored.findings if f.code == "output_loss_mismatch")
    assert f"{clipped.evidence.value:.0%} of them with the weights as stored" in clipped.summary
    gated = next(f for f in stored.findings if f.code == "vanishing_through_time")
    assert "with the weights as stored they keep it for" in gated.explanation
    # the same file's architecture with Keras' initialisers drawn is at initialisation, and says so
    fresh = check_keras(path, seeds=2, batch_size=16, weights="reinitialise")
    assert any("at initialisation" in t for t in _texts(fresh))


def _config_only(config: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("config.json", json.dumps(config))
    return out.getvalue()


def test_a_custom_layer_is_not_matched_to_a_class_by_its_layer_suffix(tmp_path: Any) -> None:
    # dec_clustering_json: ClusteringLayer was "closest" to CustomScaleLayer, the suffix alone
    layers = [_layer("InputLayer", "inp", batch_shape=[None, 10]), _layer("Dense", "enc", units=4),
              _layer("ClusteringLayer", "clustering", n_clusters=3)]
    path = tmp_path / "model.keras"
    path.write_bytes(_config_only({"class_name": "Sequential", "config": {"name": "s", "layers": layers}}))
    with pytest.raises(ModelError) as caught:
        check_keras(path, seeds=1, verify=False)
    said = str(caught.value)
    assert "ClusteringLayer (clustering)" in said and "CustomScaleLayer" not in said and "closest" not in said
    assert "custom layer" in said
    # a name that is close to a class read still gets it
    assert "the closest read are Conv2D" in unsupported_message([("ConvLSTM2D", "c")])
    assert "custom layer" not in unsupported_message([("ConvLSTM2D", "c")])


def test_a_subclassed_models_file_is_refused_naming_its_class_and_what_to_do(tmp_path: Any) -> None:
    # vae_fashion_keras: model.save() of a keras.Model subclass writes its class and get_config() alone
    path = tmp_path / "model.keras"
    path.write_bytes(_config_only({"module": None, "class_name": "VAE", "config": {}, "registered_name": "VAE"}))
    with pytest.raises(InputFormatError) as caught:
        check_keras(path, seeds=1, verify=False)
    said = str(caught.value)
    assert "class_name is VAE" in said and "config is empty" in said
    assert "subclassed keras.Model saves no layer graph" in said and "Functional" in said
    assert "check_module" in said
