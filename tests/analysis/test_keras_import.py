"""Keras configs (to_json, .keras, .h5) translated to specs and initialised by Keras' formulas.

The configs are written by hand in Keras 3's ``model.to_json()`` layout (module/class_name/config/
registered_name; Functional layers with ``inbound_nodes`` of ``__keras_tensor__`` args). The
statistics of the built weights are checked against Keras' documented formulas, not against the
code's own output.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras, keras_to_spec, read_keras
from gradhealth.analysis.model import build_network
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import InputFormatError


def _init(cls: str, **cfg: Any) -> dict[str, Any]:
    return {"module": "keras.initializers", "class_name": cls, "config": {"seed": None, **cfg},
            "registered_name": None}


def _layer(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": cls,
            "config": {"name": name, "trainable": True, "dtype": "float32", **cfg}, "registered_name": None}


def _input(shape: list[int | None]) -> dict[str, Any]:
    return _layer("InputLayer", "input_layer", batch_shape=[None, *shape], sparse=False)


def _dense(name: str, units: int, act: str = "linear", init: Any = None, **cfg: Any) -> dict[str, Any]:
    return _layer("Dense", name, units=units, activation=act, use_bias=True,
                  kernel_initializer=init or _init("GlorotUniform"), bias_initializer=_init("Zeros"), **cfg)


def _seq(*layers: dict[str, Any], shape: list[int | None]) -> dict[str, Any]:
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "sequential", "trainable": True, "layers": [_input(shape), *layers]},
            "registered_name": None}


def _weights(config: dict[str, Any], seed: int = 0) -> list[torch.Tensor]:
    """The built network's weight tensors (dim >= 2), in order."""
    plan = make_plan(parse_spec(keras_to_spec(config)))
    torch.manual_seed(seed)
    net = build_network(plan)
    return [p.detach().double() for n, p in net.named_parameters() if p.dim() >= 2]


def _var(w: torch.Tensor) -> float:
    return float(w.pow(2).mean())  # zero-mean by construction; the mean of squares is the variance


# --- initialisers against Keras' formulas ---------------------------------------------------------

@pytest.mark.parametrize(("init", "expected"), [
    (_init("GlorotUniform"), 2 / (400 + 300)),
    (_init("GlorotNormal"), 2 / (400 + 300)),
    (_init("HeNormal"), 2 / 400),
    (_init("HeUniform"), 2 / 400),
    (_init("LecunNormal"), 1 / 400),
    (_init("LecunUniform"), 1 / 400),
    (_init("RandomNormal", mean=0.0, stddev=0.07), 0.07**2),
    (_init("RandomUniform", minval=-0.05, maxval=0.05), 0.05**2 / 3),
    # a truncated normal cut at 2 std: Var = std^2 * (1 - 4 phi(2) / (2 Phi(2) - 1))
    (_init("TruncatedNormal", mean=0.0, stddev=0.1),
     0.01 * (1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))),
    (_init("VarianceScaling", scale=3.0, mode="fan_out", distribution="uniform"), 3 / 300),
])
def test_dense_initialisers_follow_keras_formulas(init: dict[str, Any], expected: float) -> None:
    w = _weights(_seq(_dense("d", 300, "relu", init), _dense("out", 10, "softmax"), shape=[400]))[0]
    assert w.shape == (300, 400)
    assert _var(w) == pytest.approx(expected, rel=0.02)


def test_he_normal_is_truncated_at_two_keras_stddevs() -> None:
    w = _weights(_seq(_dense("d", 300, "relu", _init("HeNormal")), shape=[400]))[0]
    std = math.sqrt(2 / 400) / 0.87962566103423978
    assert float(w.abs().max()) <= 2 * std + 1e-12
    assert float(w.abs().max()) > 1.9 * std  # cut there, not earlier


def test_conv2d_fans_are_keras_fans() -> None:
    conv = _layer("Conv2D", "conv", filters=16, kernel_size=[3, 3], strides=[1, 1], padding="same",
                  activation="relu", use_bias=True, kernel_initializer=_init("HeNormal"),
                  bias_initializer=_init("Zeros"), data_format="channels_last", dilation_rate=[1, 1], groups=1)
    cfg = _seq(conv, _layer("MaxPooling2D", "pool", pool_size=[2, 2], strides=None, padding="valid"),
               _layer("Flatten", "flat"), _dense("out", 10, "softmax"), shape=[12, 12, 8])
    spec = keras_to_spec(cfg)
    assert spec["input"] == {"shape": [8, 12, 12]}  # channels-last (H, W, C) -> [C, H, W]
    w = _weights(cfg)[0]
    assert w.shape == (16, 8, 3, 3)
    assert _var(w) == pytest.approx(2 / (8 * 9), rel=0.05)  # fan_in = kh * kw * in_channels


def test_conv1d_translated_channels_first() -> None:
    conv = _layer("Conv1D", "c", filters=6, kernel_size=[3], strides=[1], padding="valid",
                  activation="tanh", use_bias=True, kernel_initializer=_init("GlorotUniform"),
                  bias_initializer=_init("Zeros"), dilation_rate=[1], groups=1)
    spec = keras_to_spec(_seq(conv, _layer("Flatten", "f"), _dense("out", 1, "linear"), shape=[20, 4]))
    assert spec["input"] == {"shape": [4, 20]}
    assert spec["layers"][0]["type"] == "conv1d" and spec["loss"] == "mse"


@pytest.mark.parametrize(("cls", "gates"), [("LSTM", 4), ("GRU", 3), ("SimpleRNN", 1)])
def test_recurrent_kernels_follow_keras_stacked_matrices(cls: str, gates: int) -> None:
    extra: dict[str, Any] = {"recurrent_activation": "sigmoid", "unit_forget_bias": True} if cls == "LSTM" else {}
    if cls == "GRU":
        extra = {"recurrent_activation": "sigmoid", "reset_after": True}
    rnn = _layer(cls, "rnn", units=32, activation="tanh", use_bias=True, return_sequences=False,
                 kernel_initializer=_init("GlorotUniform"), recurrent_initializer=_init("Orthogonal", gain=1.0),
                 bias_initializer=_init("Zeros"), **extra)
    cfg = _seq(rnn, _dense("out", 5, "softmax"), shape=[7, 16])
    plan = make_plan(parse_spec(keras_to_spec(cfg)))
    torch.manual_seed(0)
    net = build_network(plan)
    mod = next(m for m in net.modules() if isinstance(m, torch.nn.RNNBase))
    w_ih, w_hh = mod.weight_ih_l0.detach().double(), mod.weight_hh_l0.detach().double()
    # Keras' kernel is one [input, gates * units] glorot_uniform matrix: Var = 2 / (16 + gates * 32)
    assert _var(w_ih) == pytest.approx(2 / (16 + gates * 32), rel=0.1)
    # ... and its recurrent kernel one orthogonal [units, gates * units] matrix (orthonormal rows):
    # in PyTorch's [gates * units, units] layout, W^T W = I over the whole stack, not per gate.
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(32, dtype=torch.float64), atol=1e-5)
    if cls == "LSTM":  # unit_forget_bias: the forget gate's bias is 1, the rest 0
        bias = (mod.bias_ih_l0 + mod.bias_hh_l0).detach()
        assert torch.equal(bias[32:64], torch.ones(32)) and float(bias[:32].abs().sum()) == 0


def test_embedding_norms_dropout_activation_translate() -> None:
    cfg = _seq(_layer("Embedding", "emb", input_dim=1000, output_dim=64,
                      embeddings_initializer=_init("RandomUniform", minval=-0.05, maxval=0.05)),
               _layer("LayerNormalization", "ln", axis=-1), _layer("GlobalAveragePooling1D", "gap"),
               _dense("d", 32), _layer("BatchNormalization", "bn", axis=-1),
               _layer("Activation", "act", activation="relu"), _layer("Dropout", "drop", rate=0.25),
               _dense("out", 3, "softmax"), shape=[12])
    spec = keras_to_spec(cfg)
    assert spec["input"] == {"tokens": {"vocab_size": 1000, "seq_len": 12}}
    assert [layer["type"] for layer in spec["layers"]] == [
        "embedding", "layernorm", "pool", "linear", "batchnorm", "activation", "dropout", "linear"]
    assert spec["layers"][6]["p"] == 0.25 and spec["loss"] == "cross_entropy"
    assert spec["layers"][-1]["activation"] == "identity"  # softmax folded into the loss
    emb = _weights(cfg)[0]
    assert _var(emb) == pytest.approx(0.05**2 / 3, rel=0.05)


# --- diagnoses ---------------------------------------------------------------------------------

def test_deep_sigmoid_dense_stack_is_vanishing() -> None:
    cfg = _seq(*[_dense(f"d{i}", 64, "sigmoid") for i in range(20)], _dense("out", 10, "softmax"), shape=[64])
    doc = check_keras(cfg, seeds=1, verify=False)
    assert "vanishing_gradient" in {f.code for f in doc.findings}


def test_sigmoid_unit_output_is_binary_cross_entropy() -> None:
    spec = keras_to_spec(_seq(_dense("d", 8, "relu"), _dense("out", 1, "sigmoid"), shape=[4]))
    assert spec["loss"] == "binary_cross_entropy" and spec["layers"][-1]["activation"] == "identity"
    doc = check_keras(_seq(_dense("d", 8, "relu"), _dense("out", 1, "sigmoid"), shape=[4]), seeds=1, verify=False)
    assert doc.status in ("healthy", "warning", "unhealthy")


def test_functional_residual_add_becomes_residual_block() -> None:
    def tensor(src: str) -> dict[str, Any]:
        return {"class_name": "__keras_tensor__", "config": {"shape": [None, 32], "dtype": "float32",
                                                             "keras_history": [src, 0, 0]}}

    def node(layer: dict[str, Any], *srcs: str) -> dict[str, Any]:
        args = [tensor(s) for s in srcs]
        layer["name"] = layer["config"]["name"]
        layer["inbound_nodes"] = [{"args": args if len(args) == 1 else [args], "kwargs": {}}] if srcs else []
        return layer

    layers = [node(_input([32])), node(_dense("a", 32, "relu"), "input_layer"),
              node(_dense("b", 32), "a"), node(_layer("Add", "add"), "input_layer", "b"),
              node(_dense("out", 4, "softmax"), "add")]
    cfg = {"module": "keras", "class_name": "Functional", "config": {
        "name": "res", "layers": layers, "input_layers": [["input_layer", 0, 0]],
        "output_layers": [["out", 0, 0]]}}
    spec = keras_to_spec(cfg)
    assert spec["layers"][0]["type"] == "residual"
    assert [layer["out_features"] for layer in spec["layers"][0]["layers"]] == [32, 32]
    # a projection shortcut (Dense on the skip path) is refused, clearly
    layers[3] = node(_layer("Add", "add"), "a", "b")
    layers[2] = node(_dense("b", 32), "input_layer")
    with pytest.raises(ModelError, match="identity skip"):
        keras_to_spec(cfg)


def test_unsupported_layers_are_named_in_one_error() -> None:
    cfg = _seq(_dense("d", 8), _layer("Lambda", "my_lambda"), _layer("Conv3D", "vol"), shape=[4])
    with pytest.raises(ModelError) as err:
        keras_to_spec(cfg)
    assert "Lambda (my_lambda)" in err.value.detail and "Conv3D (vol)" in err.value.detail


def test_dynamic_sequence_length_is_refused() -> None:
    rnn = _layer("LSTM", "l", units=4, kernel_initializer=_init("GlorotUniform"))
    with pytest.raises(ModelError, match="dynamic"):
        keras_to_spec(_seq(rnn, shape=[None, 3]))


# --- files: .keras zip, .h5, JSON and the CLI ---------------------------------------------------

def _sigmoid_stack() -> dict[str, Any]:
    return _seq(*[_dense(f"d{i}", 32, "sigmoid") for i in range(16)], _dense("out", 10, "softmax"), shape=[32])


def test_keras_zip_and_h5_read_the_config_and_the_loss(tmp_path: Path) -> None:
    import h5py

    cfg = _sigmoid_stack()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps({**cfg, "compile_config": {"loss": "mean_squared_error"}}))
        zf.writestr("model.weights.h5", b"")
    assert read_keras(buf.getvalue()) == ({**cfg, "compile_config": {"loss": "mean_squared_error"}}, "mse")
    h5 = tmp_path / "m.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
        f.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy"})
    assert read_keras(h5.read_bytes()) == (cfg, "cross_entropy")
    with pytest.raises(InputFormatError):
        read_keras(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)


def test_cli_checks_a_keras_json_with_no_options(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(_sigmoid_stack()))
    run = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(path), "--format", "json",
                          "--seeds", "1", "--no-verify"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # unhealthy: fails the build
    assert "vanishing_gradient" in {f["code"] for f in json.loads(run.stdout)["findings"]}
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", json.dumps(_seq(_layer("Lambda", "lam"), shape=[4])))
    run = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(bad)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Lambda (lam)" in run.stderr
