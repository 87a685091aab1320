"""kerassweep17: two valid real Keras files refused (exit 2).

h02 (Keras 2.0.9): a GRU whose config has no ``reset_after`` (the option came with Keras 2.1) was
given tf.keras 2's default (True) and its stored [3u] bias refused. Standalone Keras computed the
original GRU (reset applied to the state before the recurrent product) and kept it as its default
to 2.3: a missing ``reset_after`` takes the default of the Keras that wrote the file, and the stored
bias decides where there is one ([3u]: False, [2, 3u]: True).

h07 (Keras 1.1.1): Keras 1's field names (``output_dim``, ``inner_activation``, ``nb_filter``...)
were not read. They are converted as Keras 2.0 converted them when loading a Keras 1 file, and so
are the stored weights (an LSTM's twelve gate arrays, a Convolution1D's [k, 1, in, out] kernel)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import (
    _load_weights,
    check_keras,
    gru_reset_after,
    modern_config,
    read_keras_training,
    read_keras_weights,
    translate_or_graph,
)
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from gradhealth.analysis.importers.keras_torch import KerasNet, load_stored

T, F, U = 6, 3, 4  # steps, features, GRU units


def _h5(config: dict[str, Any], stored: dict[str, list[tuple[str, np.ndarray]]] | None, version: str,
        backend: str | None = "tensorflow", loss: str = "mse") -> bytes:
    """An .h5 as ``model.save()`` of that Keras writes it: the config, the compiled loss and, unless
    ``stored`` is None, the weights at model_weights/<layer>/<weight name>."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["training_config"] = json.dumps({"loss": loss, "metrics": [], "optimizer_config": {
            "class_name": "Adam", "config": {"lr": 0.001}}})
        f.attrs["keras_version"] = version
        if backend:
            f.attrs["backend"] = backend
        if stored is not None:
            group = f.create_group("model_weights")
            layers = config["config"] if isinstance(config["config"], list) else config["config"]["layers"]
            names = [lay["config"]["name"] for lay in layers]
            group.attrs["layer_names"] = [n.encode() for n in names]
            for name in names:
                layer = group.create_group(name)
                layer.attrs["weight_names"] = [w.encode() for w, _ in stored.get(name, [])]
                for w, value in stored.get(name, []):
                    layer.create_dataset(w, data=value)
    return buf.getvalue()


# --- h02: a GRU without reset_after ------------------------------------------------------------

def _gru_model(reset_after: bool | None) -> dict[str, Any]:
    """Keras 2.0.9's Sequential (a bare layer list): GRU(4, tanh, hard_sigmoid) over 6 steps of 3
    features, then Dense(2). ``reset_after`` None: the key left out, as Keras < 2.1 writes it."""
    gru: dict[str, Any] = {"name": "gru_2", "trainable": True, "batch_input_shape": [None, T, F], "dtype": "float32",
                           "return_sequences": False, "units": U, "activation": "tanh",
                           "recurrent_activation": "hard_sigmoid", "use_bias": True, "implementation": 1}
    if reset_after is not None:
        gru["reset_after"] = reset_after
    dense = {"name": "dense_1", "trainable": True, "units": 2, "activation": "linear", "use_bias": True}
    return {"class_name": "Sequential", "config": [{"class_name": "GRU", "config": gru},
                                                   {"class_name": "Dense", "config": dense}]}


def _gru_weights(two_biases: bool) -> dict[str, list[tuple[str, np.ndarray]]]:
    rng = np.random.default_rng(7)
    bias = rng.normal(0, 0.5, (2, 3 * U) if two_biases else (3 * U,))
    return {"gru_2": [("gru_2/kernel:0", rng.normal(0, 0.8, (F, 3 * U))),
                      ("gru_2/recurrent_kernel:0", rng.normal(0, 0.8, (U, 3 * U))), ("gru_2/bias:0", bias)],
            "dense_1": [("dense_1/kernel:0", rng.normal(0, 0.5, (U, 2))), ("dense_1/bias:0", rng.normal(0, 0.1, 2))]}


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)  # Keras 2's


def _reference(x: np.ndarray, w: dict[str, list[tuple[str, np.ndarray]]], reset_after: bool) -> np.ndarray:
    """Keras' GRU then the Dense, in numpy from the stored arrays. Gates z, r, h in the kernel's
    column blocks; h_t = z * h_{t-1} + (1 - z) * hh. reset_after False (Cho et al. 2014): the reset
    gate scales the state before the recurrent product, hh = tanh(x Wh + (r * h) Uh + b_h);
    True: after it, hh = tanh(x Wh + b_h + r * (h Uh + b'_h))."""
    kernel, recurrent, bias = (a for _, a in w["gru_2"])
    b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, np.zeros(3 * U))
    h = np.zeros((x.shape[0], U))
    for t in range(x.shape[1]):
        xs = x[:, t] @ kernel + b_in
        hs = h @ recurrent + b_rec
        z = _hard_sigmoid(xs[:, :U] + hs[:, :U])
        r = _hard_sigmoid(xs[:, U:2 * U] + hs[:, U:2 * U])
        if reset_after:
            hh = np.tanh(xs[:, 2 * U:] + r * hs[:, 2 * U:])
        else:
            hh = np.tanh(xs[:, 2 * U:] + (r * h) @ recurrent[:, 2 * U:])
        h = z * h + (1 - z) * hh
    kernel_d, bias_d = (a for _, a in w["dense_1"])
    return h @ kernel_d + bias_d


def _forwards(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """The model's output on ``x`` as each door builds it with the file's stored weights."""
    from gradhealth.analysis.model import build_network
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec

    training = read_keras_training(data)
    stored = read_keras_weights(data, training.config)
    assert stored is not None
    out = {}
    config = gru_reset_after(modern_config(training.config), stored)
    net = KerasNet(plan_keras_graph(config), None).double()
    load_stored(net, stored)
    out["graph"] = net(torch.tensor(x)).detach().numpy()
    spec, origins, graph = translate_or_graph(training.config, "mse", stored=stored)
    assert graph is None and spec is not None and origins is not None
    torch.manual_seed(0)
    snet = build_network(make_plan(parse_spec(spec))).double()
    assert _load_weights(snet, origins, stored) == []
    out["spec"] = snet(torch.tensor(x)).detach().numpy()
    return out


@pytest.mark.parametrize(("version", "key", "two_biases"), [
    ("2.0.9", None, False),    # h02: no key, the stored [3u] bias
    ("2.0.9", None, True),     # no key, a stored [2, 3u] bias: the weights decide
    ("2.4.0", None, False),    # tf.keras's version, no key: the stored [3u] bias still decides
    ("2.4.0", True, True),     # tf.keras 2: reset_after written, [2, 3u]
    ("2.2.4", False, False),   # Keras 2.2: reset_after False written
])
def test_a_gru_with_stored_weights_computes_the_cell_its_bias_says(version: str, key: bool | None,
                                                                     two_biases: bool) -> None:
    w = _gru_weights(two_biases)
    data = _h5(_gru_model(key), w, version)
    x = np.random.default_rng(1).normal(0, 1, (5, T, F))
    want = _reference(x, w, reset_after=two_biases)
    for door, got in _forwards(data, x).items():
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=door)
    # the cell of the other layout computes something else: the comparison tells them apart
    bias = w["gru_2"][2][1]
    other = np.stack([bias, np.zeros(3 * U)]) if not two_biases else bias[0] + bias[1]
    assert not np.allclose(_reference(x, {**w, "gru_2": [*w["gru_2"][:2], ("bias", other)]},
                                      reset_after=not two_biases), want, atol=1e-3)


@pytest.mark.parametrize(("version", "reset_after"), [("2.0.9", False), ("1.2.2", False), ("2.3.1", False),
                                                      ("2.4.0", True), (None, True)])
def test_a_gru_config_without_reset_after_takes_the_default_of_the_keras_that_wrote_it(
        version: str | None, reset_after: bool) -> None:
    config = modern_config(_gru_model(None))
    if version is not None:
        config["keras_version"] = version
    spec, _, _ = translate_or_graph(config, "mse")
    assert spec is not None
    gru = next(layer for layer in spec["layers"] if layer["type"] == "gru")
    assert gru.get("reset_after", True) is reset_after
    graph = plan_keras_graph(gru_reset_after(config))
    node = next(n for n in graph.nodes if n.cls == "GRU")
    assert dict(node.weights)["bias"] == ((2, 3 * U) if reset_after else (3 * U,))


def test_the_h02_keras_2_0_9_gru_file_is_checked_with_and_without_its_weights() -> None:
    w = _gru_weights(False)
    for stored in (w, None):
        data = _h5(_gru_model(None), stored, "2.0.9")
        doc = check_keras(data, seeds=1, weights="reinitialise" if stored is None else None)
        assert doc.summary


# --- h07: a Keras 1 file -----------------------------------------------------------------------

def _keras1_model() -> dict[str, Any]:
    """h07's shape in Keras 1.1.1's own config: Convolution1D(8, 3, relu) over 20 steps of 5
    features, Dropout(p), Bidirectional(LSTM(output_dim=4)), Dense(output_dim=2), softmax."""
    return {"class_name": "Sequential", "config": [
        {"class_name": "Convolution1D", "config": {
            "batch_input_shape": [None, 20, 5], "W_constraint": None, "b_constraint": None, "name": "convolution1d_1",
            "activity_regularizer": None, "trainable": True, "filter_length": 3, "init": "uniform", "bias": True,
            "nb_filter": 8, "input_dtype": "float32", "subsample_length": 1, "border_mode": "valid",
            "input_dim": None, "b_regularizer": None, "W_regularizer": None, "activation": "relu",
            "input_length": None}},
        {"class_name": "Dropout", "config": {"p": 0.35, "trainable": True, "name": "dropout_1"}},
        {"class_name": "Bidirectional", "config": {"merge_mode": "concat", "trainable": True, "name": "bidirectional_1",
                                                   "layer": {"class_name": "LSTM", "config": {
            "U_regularizer": None, "name": "forward_lstm_1", "inner_activation": "hard_sigmoid", "go_backwards": False,
            "activation": "tanh", "trainable": True, "unroll": False, "consume_less": "cpu", "stateful": False,
            "init": "glorot_uniform", "inner_init": "orthogonal", "dropout_U": 0.0, "dropout_W": 0.0, "input_dim": 8,
            "return_sequences": False, "b_regularizer": None, "W_regularizer": None, "output_dim": 4,
            "forget_bias_init": "one", "input_length": None}}}},
        {"class_name": "Dense", "config": {
            "W_constraint": None, "b_constraint": None, "name": "dense_1", "activity_regularizer": None,
            "trainable": True, "init": "glorot_uniform", "bias": True, "input_dim": None, "b_regularizer": None,
            "W_regularizer": None, "activation": "linear", "output_dim": 2}},
        {"class_name": "Activation", "config": {"activation": "softmax", "trainable": True, "name": "activation_1"}}]}


def _keras1_weights() -> dict[str, list[tuple[str, np.ndarray]]]:
    """As Keras 1.1.1 (TensorFlow) stored them: a Convolution1D kernel [k, 1, in, out]; each LSTM
    direction's twelve arrays W_x, U_x, b_x for the gates i, c, f, o, in that order."""
    rng = np.random.default_rng(5)
    lstm = []
    for d in ("forward", "backward"):
        for g in "icfo":
            lstm += [(f"{d}_lstm_1_W_{g}:0", rng.normal(0, 0.3, (8, 4))), (f"{d}_lstm_1_U_{g}:0", rng.normal(0, 0.3, (4, 4))),
                     (f"{d}_lstm_1_b_{g}:0", rng.normal(0, 0.3, 4))]
    return {"convolution1d_1": [("convolution1d_1_W:0", rng.normal(0, 0.3, (3, 1, 5, 8))),
                                ("convolution1d_1_b:0", rng.normal(0, 0.1, 8))],
            "bidirectional_1": lstm,
            "dense_1": [("dense_1_W:0", rng.normal(0, 0.3, (8, 2))), ("dense_1_b:0", rng.normal(0, 0.1, 2))]}


def test_a_keras1_config_is_read_in_keras2_names() -> None:
    data = _h5(_keras1_model(), None, "1.1.1", backend=None, loss="binary_crossentropy")
    layers = read_keras_training(data).config["config"]["layers"]
    conv, drop, bi, dense = (layer for layer in layers[:4])
    assert conv["class_name"] == "Conv1D"
    assert {k: conv["config"][k] for k in ("filters", "kernel_size", "strides", "padding", "kernel_initializer",
                                           "use_bias")} == {"filters": 8, "kernel_size": [3], "strides": [1],
                                                            "padding": "valid", "kernel_initializer": "uniform",
                                                            "use_bias": True}
    assert drop["config"]["rate"] == 0.35
    lstm = bi["config"]["layer"]["config"]
    assert (lstm["units"], lstm["recurrent_activation"], lstm["recurrent_initializer"], lstm["unit_forget_bias"],
            lstm["dropout"], lstm["implementation"]) == (4, "hard_sigmoid", "orthogonal", True, 0.0, 0)
    assert dense["config"]["units"] == 2
    assert not any(k in lay["config"] for lay in layers for k in ("output_dim", "init", "p", "nb_filter"))


def test_keras1_weights_are_joined_as_keras2_loads_them() -> None:
    w = _keras1_weights()
    data = _h5(_keras1_model(), w, "1.1.1", backend=None, loss="binary_crossentropy")
    stored = read_keras_weights(data, read_keras_training(data).config)
    assert stored is not None
    np.testing.assert_array_equal(stored["convolution1d_1"][0], w["convolution1d_1"][0][1][:, 0])
    arrays = dict(w["bidirectional_1"])
    for k, d in enumerate(("forward", "backward")):
        for role, letter in enumerate("WUb"):  # Keras 2's gate order: i, f, c, o
            want = np.concatenate([arrays[f"{d}_lstm_1_{letter}_{g}:0"] for g in "ifco"], axis=-1)
            np.testing.assert_array_equal(stored["bidirectional_1"][3 * k + role], want)
    doc = check_keras(data, seeds=1)  # the whole file checked, with those weights
    assert "as stored in the file" in doc.summary


def test_keras1_gru_weights_are_joined_and_its_cell_is_reset_before() -> None:
    model = _gru_model(None)
    gru = model["config"][0]["config"]
    for new, old in (("units", "output_dim"), ("recurrent_activation", "inner_activation")):
        gru[old] = gru.pop(new)
    rng = np.random.default_rng(2)
    parts = {g: (rng.normal(0, 0.8, (F, U)), rng.normal(0, 0.8, (U, U)), rng.normal(0, 0.5, U)) for g in "zrh"}
    w2 = _gru_weights(False)
    keras1 = {"gru_2": [(f"gru_2_{m}_{g}:0", parts[g][i]) for g in "zrh" for i, m in enumerate("WUb")],
              "dense_1": w2["dense_1"]}
    data = _h5(model, keras1, "1.2.2", backend=None)
    joined = {"gru_2": [(m, np.concatenate([parts[g][i] for g in "zrh"], axis=-1)) for i, m in enumerate("WUb")],
              "dense_1": w2["dense_1"]}
    x = np.random.default_rng(3).normal(0, 1, (5, T, F))
    want = _reference(x, joined, reset_after=False)
    for door, got in _forwards(data, x).items():
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=door)


def test_a_keras1_config_without_a_version_is_known_by_its_field_names() -> None:
    model = _keras1_model()
    model["config"] = [model["config"][3], model["config"][4]]
    model["config"][0]["config"]["batch_input_shape"] = [None, 6]
    spec, _, _ = translate_or_graph(model)
    assert spec is not None and spec["layers"][0]["out_features"] == 2


@pytest.mark.parametrize(("layer", "said"), [
    ({"class_name": "TimeDistributedDense", "config": {"name": "tdd", "output_dim": 3}},
     r"tdd \(TimeDistributedDense\): a Keras 1 layer that cannot be converted"),
    ({"class_name": "BatchNormalization", "config": {"name": "bn", "mode": 2, "axis": -1}},
     r"bn \(BatchNormalization\): the Keras 1 field mode 2"),
    ({"class_name": "Merge", "config": {"name": "m", "mode": "concat", "layers": [{"class_name": "Sequential",
                                                                                  "config": []}]}},
     r"m \(Merge\): a Keras 1 Merge of whole models"),
    ({"class_name": "Convolution1D", "config": {"name": "c", "nb_filter": 4, "filter_length": 3,
                                                "border_mode": "full"}},
     r"c \(Convolution1D\): the Keras 1 field border_mode 'full'"),
])
def test_a_keras1_layer_that_cannot_be_converted_is_refused_naming_it(layer: dict[str, Any], said: str) -> None:
    model = _keras1_model()
    model["config"].insert(4, layer)
    data = _h5(model, None, "1.1.1", backend=None)
    with pytest.raises(ModelError, match=r"a Keras 1\.1\.1 file: .*" + said):
        read_keras_training(data)
