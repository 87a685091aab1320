"""``.keras`` archives written by tf.keras 2.13 / keras 2.14 (kerassweep18 u03).

Their ``model.weights.h5`` keeps the layers under ``_layer_checkpoint_dependencies``, not Keras 3's
``layers``: saving_lib walked ``model._layer_checkpoint_dependencies``, a dict listing a layer with
weights twice (``layer_with_weights-i``, ``layer-j``) and a weightless one once, and named every
listing by its class, so a second Dense is ``dense_2`` (``dense_1`` was the first Dense's second
listing, saved as nothing) while a Dropout takes one name. An RNN's arrays are under its ``cell``, a
Bidirectional's under ``forward_layer`` / ``backward_layer`` (and an unbuilt ``layer``, empty).

The archives are built here as that saving_lib writes them (zipfile + h5py), and the model's output
with the weights the importer loaded is compared with a numpy forward pass of the same arrays.

``weights: reinitialise`` neither matches nor reads the stored weights: a weights file whose layout
matches no layer is refused under ``as_given`` with that advice, and the advice works."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import (
    check_keras,
    gru_reset_after,
    modern_config,
    read_keras_training,
    read_keras_weights,
)
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from gradhealth.analysis.importers.keras_torch import KerasNet, load_stored
from gradhealth.cli import main
from gradhealth.errors import InputFormatError

TOP = "_layer_checkpoint_dependencies"


def _layer(cls: str, **cfg: Any) -> dict[str, Any]:
    """A layer entry as tf.keras 2.13's serialize_keras_object writes it."""
    return {"module": "keras.layers", "class_name": cls, "config": {"trainable": True, "dtype": "float32", **cfg},
            "registered_name": None}


def _init(cls: str) -> dict[str, Any]:
    return {"module": "keras.initializers", "class_name": cls, "config": {}, "registered_name": None}


def _sequential(name: str, layers: list[dict[str, Any]], loss: str) -> dict[str, Any]:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": name, "layers": layers},
            "registered_name": None,
            "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                             "config": {"name": "Adam", "learning_rate": 0.001}},
                               "loss": loss, "metrics": ["accuracy"]}}


def _archive(config: dict[str, Any], groups: dict[str, list[np.ndarray]], version: str = "2.13.1",
             windows: bool = False) -> bytes:
    """A ``.keras`` zip as tf.keras 2.13's saving_lib writes it: metadata.json, config.json and
    model.weights.h5 with the model's own (empty) ``vars``, every layer's group (``<path>/vars/i``;
    an empty list: an empty ``vars``, as a weightless layer saves) and the compiled metrics'.

    ``windows``: as it writes them on Windows, where the object's path is joined with ``\\``
    (``os.path.join``) and H5IOStore.make creates ``<path>/vars`` from it, so HDF5 gets top-level
    groups named ``_layer_checkpoint_dependencies\\lstm\\cell`` (kerassweep23 h03's file)."""
    def where(path: str) -> str:
        return path.replace("/", "\\") if windows else path

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for path, arrays in groups.items():
            group = f.create_group(f"{where(path)}/vars")
            for i, a in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(a, "f4"))
        for metric in ("mean", "mean_metric_wrapper"):
            group = f.create_group(f"{where(f'metrics/{metric}')}/vars")
            group.create_dataset("0", data=np.float32(3.0))
            group.create_dataset("1", data=np.float32(7.0))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": version, "date_saved": "2023-09-26@21:49:53"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buf.getvalue())
    return out.getvalue()


def _keras_forward(data: bytes, x: np.ndarray) -> np.ndarray:
    """The model's output on ``x`` with the weights the importer read from ``data`` (inference mode)."""
    training = read_keras_training(data)
    stored = read_keras_weights(data, training.config)
    assert stored is not None
    net = KerasNet(plan_keras_graph(gru_reset_after(modern_config(training.config), stored)), None).double()
    load_stored(net, stored)
    net.eval()
    with torch.no_grad():
        return net(torch.tensor(x)).numpy()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


V, E, T, U, H, K = 20, 4, 7, 5, 6, 3  # vocabulary, embedding width, steps, LSTM units, hidden, classes


def _text_model(rng: np.random.Generator, second: str = "dense_2",
                version: str = "2.13.1", windows: bool = False) -> tuple[bytes, dict[str, np.ndarray]]:
    """kerassweep18 u03's kind (Embedding -> LSTM -> Dense softmax), with a Dropout and a second
    Dense: the two Dense layers are saved as ``dense`` and ``dense_2`` by 2.13 (``dense_1`` by 2.14,
    whose saver no longer named a layer's second listing)."""
    w = {"emb": rng.normal(0, 1, (V, E)), "k": rng.normal(0, 0.5, (E, 4 * U)),
         "r": rng.normal(0, 0.5, (U, 4 * U)), "b": rng.normal(0, 0.5, 4 * U),
         "d1k": rng.normal(0, 0.5, (U, H)), "d1b": rng.normal(0, 0.5, H),
         "d2k": rng.normal(0, 0.5, (H, K)), "d2b": rng.normal(0, 0.5, K)}
    w = {k: v.astype("f4").astype("f8") for k, v in w.items()}  # what float32 storage keeps
    layers = [
        _layer("InputLayer", batch_input_shape=[None, T], name="embedding_11_input"),
        _layer("Embedding", name="embedding_11", input_dim=V, output_dim=E, input_length=T,
               batch_input_shape=[None, T], embeddings_initializer=_init("RandomUniform")),
        _layer("LSTM", name="lstm_11", units=U, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
               kernel_initializer=_init("GlorotUniform"), recurrent_initializer=_init("Orthogonal"),
               bias_initializer=_init("Zeros"), unit_forget_bias=True, return_sequences=False),
        _layer("Dropout", name="dropout_3", rate=0.5),
        _layer("Dense", name="dense_10", units=H, activation="relu", use_bias=True,
               kernel_initializer=_init("GlorotUniform"), bias_initializer=_init("Zeros")),
        _layer("Dense", name="dense_11", units=K, activation="softmax", use_bias=True,
               kernel_initializer=_init("GlorotUniform"), bias_initializer=_init("Zeros")),
    ]
    groups = {f"{TOP}/embedding": [w["emb"]], f"{TOP}/lstm": [],
              f"{TOP}/lstm/cell": [w["k"], w["r"], w["b"]], f"{TOP}/dropout": [],
              f"{TOP}/dense": [w["d1k"], w["d1b"]], f"{TOP}/{second}": [w["d2k"], w["d2b"]]}
    return _archive(_sequential("sequential_11", layers, "categorical_crossentropy"), groups, version, windows), w


def _text_numpy(w: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    x = w["emb"][ids]
    h = np.zeros((ids.shape[0], U))
    c = np.zeros((ids.shape[0], U))
    for t in range(T):  # Keras' gate order: input, forget, cell, output
        z = x[:, t] @ w["k"] + h @ w["r"] + w["b"]
        i, f, g, o = _sigmoid(z[:, :U]), _sigmoid(z[:, U:2 * U]), np.tanh(z[:, 2 * U:3 * U]), _sigmoid(z[:, 3 * U:])
        c = f * c + i * g
        h = o * np.tanh(c)
    hidden = np.maximum(h @ w["d1k"] + w["d1b"], 0.0)
    return _softmax(hidden @ w["d2k"] + w["d2b"])


F_IN, C, G = 3, 4, 2  # input features, Conv1D filters, GRU units


def _conv_model(rng: np.random.Generator, windows: bool = False) -> tuple[bytes, dict[str, np.ndarray]]:
    """Conv1D -> BatchNormalization -> Bidirectional(GRU) -> Dense: the Bidirectional's arrays under
    ``backward_layer``/``forward_layer`` (``dir()`` order, backward first) and its unbuilt copy."""
    w = {"ck": rng.normal(0, 0.5, (2, F_IN, C)), "cb": rng.normal(0, 0.5, C),
         "gamma": rng.uniform(0.5, 1.5, C), "beta": rng.normal(0, 0.5, C),
         "mean": rng.normal(0, 0.5, C), "var": rng.uniform(0.5, 2.0, C),
         "fk": rng.normal(0, 0.5, (C, 3 * G)), "fr": rng.normal(0, 0.5, (G, 3 * G)), "fb": rng.normal(0, 0.5, (2, 3 * G)),
         "bk": rng.normal(0, 0.5, (C, 3 * G)), "br": rng.normal(0, 0.5, (G, 3 * G)), "bb": rng.normal(0, 0.5, (2, 3 * G)),
         "dk": rng.normal(0, 0.5, (2 * G, 1)), "db": rng.normal(0, 0.5, 1)}
    w = {k: v.astype("f4").astype("f8") for k, v in w.items()}
    gru = _layer("GRU", name="gru", units=G, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 reset_after=True, return_sequences=False, kernel_initializer=_init("GlorotUniform"),
                 recurrent_initializer=_init("Orthogonal"), bias_initializer=_init("Zeros"))
    layers = [
        _layer("InputLayer", batch_input_shape=[None, T, F_IN], name="conv1d_input"),
        _layer("Conv1D", name="conv1d_4", filters=C, kernel_size=[2], strides=[1], padding="valid",
               activation="relu", use_bias=True, batch_input_shape=[None, T, F_IN],
               kernel_initializer=_init("GlorotUniform"), bias_initializer=_init("Zeros")),
        _layer("BatchNormalization", name="batch_normalization_4", axis=-1, momentum=0.99, epsilon=0.001,
               center=True, scale=True),
        _layer("Bidirectional", name="bidirectional_4", merge_mode="concat", layer=gru),
        _layer("Dense", name="dense_7", units=1, activation="linear", use_bias=True,
               kernel_initializer=_init("GlorotUniform"), bias_initializer=_init("Zeros")),
    ]
    groups = {f"{TOP}/conv1d": [w["ck"], w["cb"]],
              f"{TOP}/batch_normalization": [w["gamma"], w["beta"], w["mean"], w["var"]],
              f"{TOP}/bidirectional": [], f"{TOP}/bidirectional/backward_layer": [],
              f"{TOP}/bidirectional/backward_layer/cell": [w["bk"], w["br"], w["bb"]],
              f"{TOP}/bidirectional/forward_layer": [],
              f"{TOP}/bidirectional/forward_layer/cell": [w["fk"], w["fr"], w["fb"]],
              f"{TOP}/bidirectional/layer": [], f"{TOP}/bidirectional/layer/cell": [],
              f"{TOP}/dense": [w["dk"], w["db"]]}
    return _archive(_sequential("sequential_4", layers, "mse"), groups, "2.14.0", windows), w


def _gru(x: np.ndarray, k: np.ndarray, r: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keras' GRU with reset_after: gates z, r, h; the reset applied after the recurrent product."""
    h = np.zeros((x.shape[0], G))
    for t in range(x.shape[1]):
        xs, hs = x[:, t] @ k + b[0], h @ r + b[1]
        z = _sigmoid(xs[:, :G] + hs[:, :G])
        rr = _sigmoid(xs[:, G:2 * G] + hs[:, G:2 * G])
        hh = np.tanh(xs[:, 2 * G:] + rr * hs[:, 2 * G:])
        h = z * h + (1 - z) * hh
    return h


def _conv_numpy(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    y = np.stack([x[:, t] @ w["ck"][0] + x[:, t + 1] @ w["ck"][1] for t in range(T - 1)], axis=1) + w["cb"]
    y = np.maximum(y, 0.0)
    y = (y - w["mean"]) / np.sqrt(w["var"] + 0.001) * w["gamma"] + w["beta"]
    forward = _gru(y, w["fk"], w["fr"], w["fb"])
    backward = _gru(y[:, ::-1], w["bk"], w["br"], w["bb"])
    return np.concatenate([forward, backward], axis=1) @ w["dk"] + w["db"]


@pytest.mark.parametrize(("second", "version"), [("dense_2", "2.13.1"), ("dense_1", "2.14.0")])
def test_a_tf213_text_model_loads_each_layers_arrays_into_it(second: str, version: str) -> None:
    rng = np.random.default_rng(3)
    data, w = _text_model(rng, second, version)
    stored = read_keras_weights(data, read_keras_training(data).config)
    assert stored is not None and sorted(stored) == ["dense_10", "dense_11", "embedding_11", "lstm_11"]
    assert [a.shape for a in stored["dense_11"]] == [(H, K), (K,)]  # the second Dense group's
    ids = rng.integers(0, V, (5, T))
    np.testing.assert_allclose(_keras_forward(data, ids), _text_numpy(w, ids), rtol=1e-9, atol=1e-12)


def test_a_tf213_conv_bn_bidirectional_model_loads_each_layers_arrays_into_it() -> None:
    rng = np.random.default_rng(4)
    data, w = _conv_model(rng)
    x = rng.normal(0, 1, (5, T, F_IN))
    np.testing.assert_allclose(_keras_forward(data, x), _conv_numpy(w, x), rtol=1e-9, atol=1e-12)


def test_a_windows_saved_tf213_lstm_archive_loads_its_cells_arrays() -> None:
    """kerassweep23 h03: on Windows the LSTM's cell is the top-level group
    ``_layer_checkpoint_dependencies\\lstm\\cell``; the model computes what numpy does with
    the arrays written, as the same model saved on Linux does."""
    rng = np.random.default_rng(3)
    data, w = _text_model(rng, windows=True)
    with h5py.File(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("model.weights.h5"))) as f:
        assert f"{TOP}\\lstm\\cell" in f and TOP not in f  # the test's own file: Windows' layout
    stored = read_keras_weights(data, read_keras_training(data).config)
    assert stored is not None and sorted(stored) == ["dense_10", "dense_11", "embedding_11", "lstm_11"]
    assert [a.shape for a in stored["lstm_11"]] == [(E, 4 * U), (U, 4 * U), (4 * U,)]
    ids = rng.integers(0, V, (5, T))
    np.testing.assert_allclose(_keras_forward(data, ids), _text_numpy(w, ids), rtol=1e-9, atol=1e-12)
    doc = check_keras(data, seeds=1, verify=False)
    assert "[weights: as stored in the file]" in doc.summary


def test_a_windows_saved_keras3_lstm_archive_loads_its_cells_arrays() -> None:
    """Keras 2.15 / 3 on Windows: ``layers\\lstm\\cell/vars`` beside ``layers\\lstm/vars``."""
    rng = np.random.default_rng(7)
    data, w = _text_model(rng)
    groups = {"layers/embedding": [w["emb"]], "layers/lstm": [], "layers/lstm/cell": [w["k"], w["r"], w["b"]],
              "layers/dropout": [], "layers/dense": [w["d1k"], w["d1b"]], "layers/dense_1": [w["d2k"], w["d2b"]]}
    data = _archive(read_keras_training(data).config, groups, "2.15.0", windows=True)
    ids = rng.integers(0, V, (5, T))
    np.testing.assert_allclose(_keras_forward(data, ids), _text_numpy(w, ids), rtol=1e-9, atol=1e-12)


def test_a_windows_saved_tf214_bidirectional_gru_archive_loads_both_directions() -> None:
    rng = np.random.default_rng(4)
    data, w = _conv_model(rng, windows=True)
    x = rng.normal(0, 1, (5, T, F_IN))
    np.testing.assert_allclose(_keras_forward(data, x), _conv_numpy(w, x), rtol=1e-9, atol=1e-12)


def test_a_windows_saved_nested_model_finds_the_inner_models_layers() -> None:
    """A Sequential inside a Sequential: its layers are under
    ``_layer_checkpoint_dependencies\\sequential\\_layer_checkpoint_dependencies\\dense``."""
    rng = np.random.default_rng(8)
    k1, b1 = rng.normal(0, 0.5, (3, 4)), rng.normal(0, 0.5, 4)
    k2, b2 = rng.normal(0, 0.5, (4, 2)), rng.normal(0, 0.5, 2)
    dense = dict(use_bias=True, kernel_initializer=_init("GlorotUniform"), bias_initializer=_init("Zeros"))
    inner = {"module": "keras", "class_name": "Sequential", "registered_name": None,
             "config": {"name": "inner", "layers": [
                 _layer("InputLayer", batch_input_shape=[None, 3], name="inner_input"),
                 _layer("Dense", name="hidden", units=4, activation="tanh", batch_input_shape=[None, 3], **dense)]}}
    layers = [_layer("InputLayer", batch_input_shape=[None, 3], name="outer_input"), inner,
              _layer("Dense", name="head", units=2, activation="linear", **dense)]
    groups = {f"{TOP}/sequential": [], f"{TOP}/sequential/{TOP}/dense": [k1, b1], f"{TOP}/dense": [k2, b2]}
    for windows in (False, True):
        data = _archive(_sequential("outer", layers, "mse"), groups, windows=windows)
        stored = read_keras_weights(data, read_keras_training(data).config)
        assert stored is not None and sorted(stored) == ["head", "hidden"], windows
        np.testing.assert_allclose(stored["hidden"][0], k1.astype("f4"))
        np.testing.assert_allclose(stored["head"][1], b2.astype("f4"))


def test_a_tf213_archive_is_checked_with_its_weights() -> None:
    data, _ = _text_model(np.random.default_rng(5))
    doc = check_keras(data, seeds=1, verify=False)
    assert "[weights: as stored in the file]" in doc.summary


def _unmapped(tmp_path: Path) -> Path:
    """The text model with its layer groups renamed to names no Keras writes."""
    data, w = _text_model(np.random.default_rng(6))
    groups = {"weights_of/embedding": [w["emb"]], "weights_of/lstm/cell": [w["k"], w["r"], w["b"]]}
    path = tmp_path / "model.keras"
    path.write_bytes(_archive(read_keras_training(data).config, groups))
    return path


def test_reinitialise_reads_no_stored_weights_so_its_advice_works(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _unmapped(tmp_path)
    # the 4 layer arrays named (the compiled metrics' 4 are no layer's), and what to do
    with pytest.raises(InputFormatError, match=r"stores 4 arrays \(weights_of/.*match no layer.*weights: reinitialise"):
        check_keras(path.read_bytes(), seeds=1, verify=False)
    doc = check_keras(path.read_bytes(), seeds=1, verify=False, weights="reinitialise")
    assert "[weights: Keras' initialisers, drawn per seed]" in doc.summary
    capsys.readouterr()
    assert main(["check", str(path), "--seeds", "1", "--no-verify"]) == 2
    assert "weights: reinitialise" in capsys.readouterr().err
    assert main(["check", str(path), "--seeds", "1", "--no-verify", "--weights", "reinitialise"]) in (0, 1)


def test_weights_under_other_names_are_named_in_the_refusal() -> None:
    """kerassweep23 h03 was refused with "the file stores no weights for this layer" while they were
    in the file under another path: where the arrays Keras keeps in ``vars/i`` are not found, the
    refusal names the group looked in and what it holds."""
    data, w = _text_model(np.random.default_rng(9))
    config = read_keras_training(data).config
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for path, arrays in {f"{TOP}/embedding": [w["emb"]], f"{TOP}/dropout": [],
                             f"{TOP}/dense": [w["d1k"], w["d1b"]], f"{TOP}/dense_2": [w["d2k"], w["d2b"]]}.items():
            group = f.create_group(f"{path}/vars")
            for i, a in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(a, "f4"))
        f.create_group(f"{TOP}/lstm/vars")
        f.create_dataset(f"{TOP}/lstm/kernel", data=np.asarray(w["k"], "f4"))  # not where Keras keeps it
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "2.13.1"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buf.getvalue())
    with pytest.raises(ModelError) as err:
        check_keras(out.getvalue(), seeds=1, verify=False)
    message = str(err.value)
    assert "lstm_11: no weights found for this layer where Keras keeps them" in message
    assert f"model.weights.h5:/{TOP}/lstm; it holds kernel" in message and "stores no weights" not in message
