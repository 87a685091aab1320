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

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras, keras_to_spec, read_keras
from gradhealth.analysis.model import build_network
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import InputFormatError
from tests.keras_files import keras2_h5


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
    # a large model names each unsupported class once, with a count, not its hundreds of layers
    # (each changes the shape: a one-input Lambda with no output_shape is assumed to keep its input's)
    many = _seq(*[_layer("Lambda", f"scale_{i}", output_shape=[5]) for i in range(40)], _dense("d", 8), shape=[4])
    with pytest.raises(ModelError) as err:
        keras_to_spec(many)
    listed = err.value.detail.split("; supported:")[0]
    assert listed.startswith("unsupported Keras layers: Lambda x40 (scale_0, scale_1, scale_2 and 37 more): ")
    assert "Rescaling(1/255, offset=-0.5)" in listed  # what to use instead, once for the group


def test_dynamic_sequence_length_is_refused() -> None:
    rnn = _layer("LSTM", "l", units=4, kernel_initializer=_init("GlorotUniform"))
    with pytest.raises(ModelError, match="dynamic"):
        keras_to_spec(_seq(rnn, shape=[None, 3]))


# --- files: .keras zip, .h5, JSON and the CLI ---------------------------------------------------

def _sigmoid_stack() -> dict[str, Any]:
    return _seq(*[_dense(f"d{i}", 32, "sigmoid") for i in range(16)], _dense("out", 10, "softmax"), shape=[32])


def test_reinitialised_models_are_named_by_their_keras_layers() -> None:
    # Both weights modes name layers as the user's model does; no spec-internal name leaks into
    # the layers, the evidence or the text (summaries and explanations mention layers too).
    cfg = _seq(_rec("LSTM", "encoder", 8, return_sequences=True), *[_dense(f"d{i}", 32, "sigmoid") for i in range(12)],
               _dense("out", 10, "softmax"), shape=[20, 4])
    doc = check_keras(cfg, seeds=1, verify=False)
    names = [layer.name for layer in doc.layers]
    assert names[-13:] == [f"d{i}" for i in range(12)] + ["out"]
    assert all(n == "encoder" or n.startswith("encoder") for n in names[:-13])
    assert doc.time_steps and {s.layer for s in doc.time_steps} <= {n for n in names if n.startswith("encoder")}
    vanishing = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert set(vanishing.evidence.layers or []) <= set(names) and "from d11 back to encoder" in vanishing.summary
    assert "layers[" not in json.dumps(doc.model_dump(mode="json", exclude={"findings": {"__all__": {"remedies"}}}))


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
    assert read_keras(h5.read_bytes()) == (cfg, {"type": "cross_entropy", "from_logits": False})  # Keras default
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
        zf.writestr("config.json", json.dumps(_seq(_layer("Lambda", "lam", output_shape=[3]), shape=[4])))
    run = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(bad)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Lambda (lam)" in run.stderr


# --- stored weights (weights: as_given) -------------------------------------------------------------
# Files are written with h5py in Keras' own layouts: Keras 2's .h5 (model_weights/<layer> with its
# ordered weight_names, datasets at model_weights/<layer>/<layer>/kernel:0) and Keras 3's .keras
# archive (model.weights.h5 with layers/<snake_case class>[_k]/vars/<i>, an RNN's under cell/).

def _h5_keras2(cfg: dict[str, Any], stored: dict[str, list[tuple[str, np.ndarray]]],
               split: bool = False) -> bytes:
    return keras2_h5(cfg, stored, attrs={"keras_version": "2.15.0", "backend": "tensorflow"}, split=split)


def _keras3_zip(cfg: dict[str, Any], stored: dict[str, list[tuple[str, np.ndarray]]]) -> bytes:
    import h5py

    h5 = io.BytesIO()
    with h5py.File(h5, "w") as f:
        used: dict[str, int] = {}
        for lay in cfg["config"]["layers"][1:]:  # Sequential.layers: no InputLayer
            snake = {"Dense": "dense", "LSTM": "lstm", "GRU": "gru", "Conv2D": "conv2d",
                     "Flatten": "flatten", "Bidirectional": "bidirectional"}[lay["class_name"]]
            used[snake] = used.get(snake, -1) + 1
            path = f"layers/{snake}" + (f"_{used[snake]}" if used[snake] else "")
            arrays = [value for _, value in stored.get(lay["config"]["name"], [])]
            parts = [(f"{path}/vars", arrays)]
            if lay["class_name"] in ("LSTM", "GRU"):
                parts = [(f"{path}/cell/vars", arrays)]
            if lay["class_name"] == "Bidirectional":
                parts = [(f"{path}/forward_layer/cell/vars", arrays[:3]),
                         (f"{path}/backward_layer/cell/vars", arrays[3:])]
            for where, values in parts:
                group = f.create_group(where)
                for i, value in enumerate(values):
                    group.create_dataset(str(i), data=value)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("model.weights.h5", h5.getvalue())
    return buf.getvalue()


def _linear_stack(depth: int, width: int) -> dict[str, Any]:
    return _seq(*[_dense(f"d{i}", width) for i in range(depth)], _dense("out", 10, "softmax"),
                shape=[width])


def _scaled(depth: int, width: int, gain: float, seed: int = 0) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Kernels N(0, gain^2 / width): through a linear stack the gradient grows by ~gain a layer."""
    rng = np.random.default_rng(seed)
    stored = {f"d{i}": [("kernel", (rng.standard_normal((width, width)) * gain / width**0.5).astype(np.float32)),
                        ("bias", np.zeros(width, np.float32))] for i in range(depth)}
    stored["out"] = [("kernel", (rng.standard_normal((width, 10)) / width**0.5).astype(np.float32)),
                     ("bias", np.zeros(10, np.float32))]
    return stored


@pytest.mark.parametrize(("gain", "code"), [(2.5, "exploding_gradient"), (0.4, "vanishing_gradient")])
def test_stored_weights_decide_the_diagnosis(gain: float, code: str) -> None:
    # one config, weights scaled so that 14 linear layers multiply the gradient by ~gain^14
    # (2.5^14 ~ 4e5 > 1e4, 0.4^14 ~ 3e-6 < 1e-4): the diagnosis follows the file's weights, and
    # Keras' own glorot_uniform (gain 1) is what `reinitialise` checks
    cfg = _linear_stack(14, 32)
    for data in (_h5_keras2(cfg, _scaled(14, 32, gain)), _h5_keras2(cfg, _scaled(14, 32, gain), split=True),
                 _keras3_zip(cfg, _scaled(14, 32, gain))):
        doc = check_keras(data, seeds=1, verify=False)
        assert code in {f.code for f in doc.findings}, doc.summary
        assert "as stored in the file" in doc.summary
        assert [layer.name for layer in doc.layers] == [f"d{i}" for i in range(14)] + ["out"]
        # dL/dh grows (shrinks) by ~gain a layer backwards: ||W^T g|| ~ gain ||g|| for W ~ N(0, gain^2 / n)
        ratio = doc.layers[0].output_grad_norm / doc.layers[13].output_grad_norm
        assert math.log(ratio) == pytest.approx(13 * math.log(gain), abs=2.0)
    fresh = check_keras(_h5_keras2(cfg, _scaled(14, 32, gain)), seeds=1, verify=False, weights="reinitialise")
    assert code not in {f.code for f in fresh.findings} and "initialisers" in fresh.summary


def _keras_batch(shape: tuple[int, ...]) -> torch.Tensor:
    # the documented synthetic batch of seed 0 (gradhealth.analysis.graph.make_inputs)
    return torch.randn(shape, generator=torch.Generator().manual_seed(10_000), dtype=torch.float64)


def _ce(logits: torch.Tensor) -> torch.Tensor:
    target = torch.randint(logits.shape[-1], logits.shape[:-1], generator=torch.Generator().manual_seed(20_000))
    return torch.nn.functional.cross_entropy(logits, target)


def test_conv_flatten_dense_weights_compute_what_keras_computes() -> None:
    # Keras is channels-last: Flatten orders (h, w, c), so the Dense kernel's rows must be read in
    # that order. The oracle computes the Keras model itself, channels-last, with einsum.
    rng = np.random.default_rng(1)
    k1 = rng.standard_normal((3, 3, 2, 4)).astype(np.float32) * 0.4
    b1 = rng.standard_normal(4).astype(np.float32) * 0.1
    k2 = rng.standard_normal((4 * 4 * 4, 5)).astype(np.float32) * 0.2
    b2 = rng.standard_normal(5).astype(np.float32) * 0.1
    conv = _layer("Conv2D", "conv", filters=4, kernel_size=[3, 3], strides=[1, 1], padding="valid",
                  activation="relu", use_bias=True, kernel_initializer=_init("HeNormal"),
                  bias_initializer=_init("Zeros"), data_format="channels_last", dilation_rate=[1, 1], groups=1)
    cfg = _seq(conv, _layer("Flatten", "flat"), _dense("out", 5, "softmax"), shape=[6, 6, 2])
    cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 6, 6, 2]
    stored = {"conv": [("kernel", k1), ("bias", b1)], "out": [("kernel", k2), ("bias", b2)]}
    doc = check_keras(_h5_keras2(cfg, stored), seeds=1, batch_size=8, verify=False)
    assert [layer.name for layer in doc.layers] == ["conv", "out"]

    x = _keras_batch((8, 2, 6, 6)).permute(0, 2, 3, 1)  # the spec's [C, H, W] input, as Keras sees it
    K1, B1, K2, B2 = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (k1, b1, k2, b2))
    patches = x.unfold(1, 3, 1).unfold(2, 3, 1)  # [n, 4, 4, c, 3, 3]
    h = torch.relu(torch.einsum("nijcab,abco->nijo", patches, K1) + B1)
    h.retain_grad()
    loss = _ce(h.reshape(8, -1) @ K2 + B2)
    loss.backward()
    assert doc.layers[0].grad_norm == pytest.approx(float(K1.grad.norm()), rel=1e-6)
    assert doc.layers[0].output_grad_norm == pytest.approx(float(h.grad.norm()), rel=1e-6)
    assert doc.layers[1].grad_norm == pytest.approx(float(K2.grad.norm()), rel=1e-6)


def _keras_gate(name: str, x: torch.Tensor, keras3: bool) -> torch.Tensor:
    """Keras' recurrent_activation: hard_sigmoid is 0.2x + 0.5 in Keras 2, relu6(x + 3) / 6 in Keras 3."""
    if name == "hard_sigmoid":
        return torch.clamp(x / 6 + 0.5 if keras3 else 0.2 * x + 0.5, 0, 1)
    return torch.sigmoid(x)


def _keras_cell(cls: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: list[torch.Tensor],
                gate: str = "sigmoid", reset_after: bool = True, keras3: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Keras' LSTM (gates i, f, c, o) or GRU (gates z, r, h): with ``reset_after`` the
    reset gate multiplies the recurrent product (a [2, 3u] bias), else h before it (a [3u] bias)."""
    kernel, recurrent, bias = w

    def act(v: torch.Tensor) -> torch.Tensor:
        return _keras_gate(gate, v, keras3)

    if cls == "LSTM":
        i, f, g, o = (x @ kernel + h @ recurrent + bias).chunk(4, -1)
        c = act(f) * c + act(i) * torch.tanh(g)
        return act(o) * torch.tanh(c), c
    units = h.shape[-1]
    if reset_after:
        xz, xr, xh = (x @ kernel + bias[0]).chunk(3, -1)
        hz, hr, hh = (h @ recurrent + bias[1]).chunk(3, -1)
        z, r = act(xz + hz), act(xr + hr)
        return z * h + (1 - z) * torch.tanh(xh + r * hh), c
    xz, xr, xh = (x @ kernel + bias).chunk(3, -1)
    z = act(xz + h @ recurrent[:, :units])
    r = act(xr + h @ recurrent[:, units:2 * units])
    return z * h + (1 - z) * torch.tanh(xh + (r * h) @ recurrent[:, 2 * units:]), c


@pytest.mark.parametrize(("cls", "gate", "reset_after"), [
    ("LSTM", "sigmoid", True), ("GRU", "sigmoid", True),
    # Keras 2.2's defaults: hard_sigmoid gates, and a GRU that resets before the recurrent product
    ("LSTM", "hard_sigmoid", True), ("GRU", "hard_sigmoid", False), ("GRU", "sigmoid", False)])
def test_recurrent_weights_follow_keras_gate_order(cls: str, gate: str, reset_after: bool) -> None:
    gates, units, steps, feats = (4 if cls == "LSTM" else 3), 6, 5, 3
    rng = np.random.default_rng(2)
    bias_shape = (2, gates * units) if cls == "GRU" and reset_after else (gates * units,)
    # weights large enough that hard_sigmoid's flat ends and its two Keras slopes all matter
    arrays = [rng.standard_normal((feats, gates * units)).astype(np.float32) * 1.5,
              rng.standard_normal((units, gates * units)).astype(np.float32) * 1.5,
              rng.standard_normal(bias_shape).astype(np.float32) * 1.5]
    head = [rng.standard_normal((units, 3)).astype(np.float32), np.zeros(3, np.float32)]
    extra = {"unit_forget_bias": True} if cls == "LSTM" else {"reset_after": reset_after}
    rnn = _layer(cls, "rec", units=units, activation="tanh", recurrent_activation=gate, use_bias=True,
                 return_sequences=False, kernel_initializer=_init("GlorotUniform"),
                 recurrent_initializer=_init("Orthogonal", gain=1.0), bias_initializer=_init("Zeros"), **extra)
    cfg = _seq(rnn, _dense("out", 3, "softmax"), shape=[steps, feats])
    stored = {"rec": list(zip(("cell/kernel", "cell/recurrent_kernel", "cell/bias"), arrays, strict=True)),
              "out": [("kernel", head[0]), ("bias", head[1])]}
    docs = {False: check_keras(_h5_keras2(cfg, stored), seeds=1, batch_size=4, verify=False),
            True: check_keras(_keras3_zip(cfg, stored), seeds=1, batch_size=4, verify=False)}

    for keras3, doc in docs.items():
        x = _keras_batch((4, steps, feats))
        w = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in arrays]
        h = c = torch.zeros(4, units, dtype=torch.float64)
        hs = []
        for t in range(steps):
            h, c = _keras_cell(cls, x[:, t], h, c, w, gate, reset_after, keras3)
            h.retain_grad()
            hs.append(h)
        _ce(h @ torch.tensor(head[0], dtype=torch.float64)).backward()
        assert [layer.name for layer in doc.layers] == ["rec", "out"]
        assert doc.layers[0].output_grad_norm == pytest.approx(float(hs[-1].grad.norm()), rel=1e-6)
        series = [s.output_grad_norm for s in doc.time_steps if s.layer == "rec"]
        assert series == pytest.approx([float(s.grad.norm()) for s in hs], rel=1e-6)


def test_as_given_without_weights_and_weights_that_do_not_fit_are_refused() -> None:
    cfg = _linear_stack(2, 8)
    with pytest.raises(ModelError, match="stores no weights"):
        check_keras(json.dumps(cfg).encode(), weights="as_given")
    stored = _scaled(2, 8, 1.0)
    stored["d1"][0] = ("kernel", np.zeros((8, 9), np.float32))
    with pytest.raises(ModelError, match=r"d1: stored weight of shape \[9, 8\]"):
        check_keras(_h5_keras2(cfg, stored), seeds=1, verify=False)
    del stored["d1"]
    with pytest.raises(ModelError, match="d1: the file stores no weights"):
        check_keras(_h5_keras2(cfg, stored), seeds=1, verify=False)


def test_a_layer_group_whose_weight_names_name_none_of_its_arrays_is_refused_naming_them() -> None:
    # kerassweep23 h03: "the file stores no weights for this layer" where they were there under
    # other names; a Keras 2 group holding arrays its weight_names do not list says which
    import h5py

    cfg = _linear_stack(2, 8)
    data = _h5_keras2(cfg, _scaled(2, 8, 1.0))
    with h5py.File(io.BytesIO(data), "r") as src:
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            for key, value in src.attrs.items():
                f.attrs[key] = value
            src.copy("model_weights", f)
            f["model_weights/d1"].attrs["weight_names"] = [b"d1/w:0", b"d1/b:0"]  # names of no array
    with pytest.raises(ModelError) as err:
        check_keras(buf.getvalue(), seeds=1, verify=False)
    message = str(err.value)
    assert "d1: no weights found for this layer: /model_weights/d1 holds d1/bias:0, d1/kernel:0" in message
    assert "weight_names lists d1/w:0, d1/b:0" in message


def test_cli_checks_an_h5_with_its_stored_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth.cli import main

    cfg = _linear_stack(14, 32)
    path = tmp_path / "checkpoint.h5"
    path.write_bytes(_h5_keras2(cfg, _scaled(14, 32, 2.5)))
    assert main(["check", str(path), "--format", "json", "--seeds", "1", "--no-verify"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert "exploding_gradient" in {f["code"] for f in doc["findings"]}
    assert doc["layers"][0]["name"] == "d0" and "as stored in the file" in doc["summary"]
    # --weights reinitialise: Keras' own (healthy) initialisers instead of the exploding checkpoint
    assert main(["check", str(path), "--format", "json", "--seeds", "1", "--no-verify",
                 "--weights", "reinitialise"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["findings"] == [] and "initialisers" in fresh["summary"]
    assert main(["check", str(path), "--input-shape", "x=1x14"]) == 2  # no input named x
    assert "--input-shape x: the model's inputs are" in capsys.readouterr().err


def test_cli_server_uploads_an_h5_with_stored_weights(tmp_path: Path) -> None:
    # With --server the file goes to the model route whole: sent as a translated spec, its weights
    # would be lost and the exploding checkpoint would read as Keras' healthy initialisation.
    from tests.e2e.helpers import GRADHEALTH, env_for, serve

    path = tmp_path / "checkpoint.h5"
    path.write_bytes(_h5_keras2(_linear_stack(14, 32), _scaled(14, 32, 2.5)))
    url = f"sqlite:///{tmp_path}/keras.db"
    settings = {"GRADHEALTH_UPLOAD_DIR": str(tmp_path / "uploads")}
    argv = [*GRADHEALTH, "check", str(path), "--format", "json", "--seeds", "1", "--no-verify"]
    config = tmp_path / "model.json"  # a config alone: Keras' initialisers, still Keras' names
    config.write_text(json.dumps(_sigmoid_stack()))
    with serve(url, tmp_path / "serve.log", **settings) as client:
        remote = subprocess.run([*argv, "--server", str(client.base_url)], env=env_for(url, **settings),
                                capture_output=True, text=True, timeout=300)
        plain = subprocess.run([*GRADHEALTH, "check", str(config), "--format", "json", "--seeds", "1",
                                "--no-verify", "--server", str(client.base_url)],
                               env=env_for(url, **settings), capture_output=True, text=True, timeout=300)
    assert remote.returncode == 1, remote.stderr
    doc = json.loads(remote.stdout)
    assert "exploding_gradient" in {f["code"] for f in doc["findings"]}
    assert doc["layers"][0]["name"] == "d0" and "as stored in the file" in doc["summary"]
    assert plain.returncode == 1, plain.stderr
    local = check_keras(_sigmoid_stack(), seeds=1, verify=False)
    assert [layer["name"] for layer in json.loads(plain.stdout)["layers"]] == [x.name for x in local.layers]


def _rec(cls: str, name: str, units: int, **cfg: Any) -> dict[str, Any]:
    extra = {"unit_forget_bias": True} if cls == "LSTM" else {"reset_after": True} if cls == "GRU" else {}
    return _layer(cls, name, units=units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                  kernel_initializer=_init("GlorotUniform"), recurrent_initializer=_init("Orthogonal", gain=1.0),
                  bias_initializer=_init("Zeros"), **{**extra, **cfg})


def test_bidirectional_translates_to_a_bidirectional_recurrent_layer() -> None:
    bi = _layer("Bidirectional", "bi", merge_mode="concat",
                layer={"module": "keras.layers", "class_name": "GRU", "config": _rec("GRU", "g", 8)["config"],
                       "registered_name": None})
    cfg = _seq(bi, _dense("out", 3, "softmax"), shape=[7, 4])
    spec = keras_to_spec(cfg)
    assert spec["layers"][0]["type"] == "gru" and spec["layers"][0]["bidirectional"] is True
    plan = make_plan(parse_spec(spec))
    torch.manual_seed(0)
    net = build_network(plan)
    # torch's own bidirectional GRU has the parameter count the plan computed; both directions
    # get Keras' initialisers (glorot_uniform over the stacked [4, 3 * 8] kernel)
    assert plan.parameters == sum(p.numel() for p in net.parameters())
    rnn = next(m for m in net.modules() if isinstance(m, torch.nn.GRU))
    assert rnn.bidirectional
    for w in (rnn.weight_ih_l0, rnn.weight_ih_l0_reverse):
        assert _var(w.detach().double()) == pytest.approx(2 / (4 + 3 * 8), rel=0.25)
    doc = check_keras(cfg, seeds=1, verify=False)
    assert {(s.layer, s.sublayer) for s in doc.time_steps} == {("bi", 0), ("bi", 1)}  # its Keras name
    with pytest.raises(ModelError, match="merge_mode 'sum'"):
        keras_to_spec(_seq({**bi, "config": {**bi["config"], "merge_mode": "sum"}}, shape=[7, 4]))


def test_keras3s_copy_of_the_backward_layer_is_the_forward_one_reading_backwards() -> None:
    # Keras 3 writes backward_layer into every Bidirectional config: the same layer under its own
    # name, go_backwards flipped, and its initialisers under new shared-object ids
    inner = {"module": "keras.layers", "class_name": "GRU", "config": _rec("GRU", "forward_g", 8)["config"]}
    inner["config"]["kernel_initializer"] = {**_init("GlorotUniform"), "shared_object_id": 1}
    backward = json.loads(json.dumps(inner))
    backward["config"].update(name="backward_g", go_backwards=True)
    backward["config"]["kernel_initializer"]["shared_object_id"] = 2
    bi = _layer("Bidirectional", "bi", merge_mode="concat", layer=inner, backward_layer=backward)
    spec = keras_to_spec(_seq(bi, _dense("out", 3, "softmax"), shape=[7, 4]))
    assert spec["layers"][0]["type"] == "gru" and spec["layers"][0]["bidirectional"] is True
    backward["config"]["units"] = 9  # a backward layer of its own is not a mirror
    with pytest.raises(ModelError, match="custom backward_layer"):
        keras_to_spec(_seq(bi, _dense("out", 3, "softmax"), shape=[7, 4]))


def test_bidirectional_lstm_weights_compute_what_keras_computes() -> None:
    units, steps, feats = 5, 6, 3
    rng = np.random.default_rng(3)

    def direction() -> list[np.ndarray]:
        return [rng.standard_normal((feats, 4 * units)).astype(np.float32) * 0.5,
                rng.standard_normal((units, 4 * units)).astype(np.float32) * 0.5,
                rng.standard_normal(4 * units).astype(np.float32) * 0.5]

    fwd, bwd = direction(), direction()
    head = rng.standard_normal((2 * units, 3)).astype(np.float32)
    bi = _layer("Bidirectional", "bi", merge_mode="concat",
                layer={"module": "keras.layers", "class_name": "LSTM",
                       "config": _rec("LSTM", "forward_lstm", units)["config"], "registered_name": None})
    cfg = _seq(bi, _dense("out", 3, "softmax"), shape=[steps, feats])
    names = [f"{d}_lstm/lstm_cell/{w}" for d in ("forward", "backward") for w in ("kernel", "recurrent_kernel", "bias")]
    stored = {"bi": list(zip(names, fwd + bwd, strict=True)),
              "out": [("kernel", head), ("bias", np.zeros(3, np.float32))]}
    docs = [check_keras(_h5_keras2(cfg, stored), seeds=1, batch_size=4, verify=False),
            check_keras(_keras3_zip(cfg, stored), seeds=1, batch_size=4, verify=False)]

    # Keras: the backward layer reads x_{T-1} ... x_0; the output is [forward's last h, backward's last h]
    x = _keras_batch((4, steps, feats))
    series: list[list[torch.Tensor]] = []
    finals = []
    for arrays, order in ((fwd, range(steps)), (bwd, range(steps - 1, -1, -1))):
        w = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in arrays]
        h = c = torch.zeros(4, units, dtype=torch.float64)
        hs = []
        for t in order:
            h, c = _keras_cell("LSTM", x[:, t], h, c, w)
            h.retain_grad()
            hs.append(h)
        series.append(hs)
        finals.append(h)
    out = torch.cat(finals, -1)
    out.retain_grad()
    _ce(out @ torch.tensor(head, dtype=torch.float64)).backward()
    for doc in docs:
        assert [layer.name for layer in doc.layers] == ["bi", "out"]
        assert doc.layers[0].output_grad_norm == pytest.approx(float(out.grad.norm()), rel=1e-6)
        for sub in (0, 1):
            got = [s.output_grad_norm for s in doc.time_steps if s.sublayer == sub]
            assert got == pytest.approx([float(h.grad.norm()) for h in series[sub]], rel=1e-6)


def test_batchnorm_weights_and_epsilon_are_keras() -> None:
    # Dense -> BatchNormalization (gamma, beta, moving stats; Keras' epsilon 1e-3) -> relu -> Dense,
    # computed by the oracle as Keras trains it: batch statistics, biased variance
    rng = np.random.default_rng(4)
    k1, k2 = rng.standard_normal((6, 8)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    gamma, beta = (rng.standard_normal(8).astype(np.float32) for _ in range(2))
    cfg = _seq(_dense("d", 8), _layer("BatchNormalization", "bn", axis=-1, epsilon=0.001, center=True, scale=True),
               _layer("Activation", "act", activation="relu"), _dense("out", 3, "softmax"), shape=[6])
    stored = {"d": [("kernel", k1), ("bias", np.zeros(8, np.float32))],
              "bn": [("gamma", gamma), ("beta", beta), ("moving_mean", np.zeros(8, np.float32)),
                     ("moving_variance", np.ones(8, np.float32))],
              "out": [("kernel", k2), ("bias", np.zeros(3, np.float32))]}
    doc = check_keras(_h5_keras2(cfg, stored), seeds=1, batch_size=16, verify=False)
    assert [layer.name for layer in doc.layers] == ["d", "out"]  # the norm and relu join d's unit
    x = _keras_batch((16, 6))
    K1, K2 = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (k1, k2))
    z = x @ K1
    z = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-3)
    h = torch.relu(z * torch.tensor(gamma, dtype=torch.float64) + torch.tensor(beta, dtype=torch.float64))
    h.retain_grad()
    _ce(h @ K2).backward()
    assert doc.layers[0].grad_norm == pytest.approx(float(K1.grad.norm()), rel=1e-6)
    assert doc.layers[0].output_grad_norm == pytest.approx(float(h.grad.norm()), rel=1e-6)
    assert doc.layers[1].grad_norm == pytest.approx(float(K2.grad.norm()), rel=1e-6)


@pytest.mark.parametrize("pool", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
def test_conv_global_pool_dense_weights_compute_what_keras_computes(pool: str) -> None:
    # the CIFAR classifier's head: Conv2D -> global pooling over space -> Dense, channels-last in
    # Keras, channels-first in the spec; the oracle computes the Keras model with einsum
    rng = np.random.default_rng(2)
    k1 = rng.standard_normal((3, 3, 2, 4)).astype(np.float32) * 0.4
    b1 = rng.standard_normal(4).astype(np.float32) * 0.1
    k2 = rng.standard_normal((4, 5)).astype(np.float32) * 0.5
    b2 = rng.standard_normal(5).astype(np.float32) * 0.1
    conv = _layer("Conv2D", "conv", filters=4, kernel_size=[3, 3], strides=[1, 1], padding="valid",
                  activation="relu", use_bias=True, kernel_initializer=_init("HeNormal"),
                  bias_initializer=_init("Zeros"), data_format="channels_last", dilation_rate=[1, 1], groups=1)
    cfg = _seq(conv, _layer(pool, "gap", data_format="channels_last", keepdims=False),
               _dense("out", 5, "softmax"), shape=[6, 6, 2])
    cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 6, 6, 2]
    spec = keras_to_spec(cfg)
    assert spec["layers"][1] == {"type": "pool", "mode": "max" if "Max" in pool else "mean"}
    stored = {"conv": [("kernel", k1), ("bias", b1)], "out": [("kernel", k2), ("bias", b2)]}
    doc = check_keras(_h5_keras2(cfg, stored), seeds=1, batch_size=8, verify=False)
    assert [layer.name for layer in doc.layers] == ["conv", "out"]  # the measured (weight) layers

    x = _keras_batch((8, 2, 6, 6)).permute(0, 2, 3, 1)
    K1, B1, K2, B2 = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (k1, b1, k2, b2))
    patches = x.unfold(1, 3, 1).unfold(2, 3, 1)
    h = torch.relu(torch.einsum("nijcab,abco->nijo", patches, K1) + B1)
    pooled = h.amax((1, 2)) if "Max" in pool else h.mean((1, 2))
    loss = _ce(pooled @ K2 + B2)
    loss.backward()
    assert doc.layers[0].grad_norm == pytest.approx(float(K1.grad.norm()), rel=1e-6)
    assert doc.layers[1].grad_norm == pytest.approx(float(K2.grad.norm()), rel=1e-6)


def test_a_global_pool_needs_the_output_it_pools() -> None:
    cfg = _seq(_dense("d", 4), _layer("GlobalAveragePooling2D", "gap", keepdims=False),
               _dense("out", 2, "softmax"), shape=[8])
    with pytest.raises(ModelError, match="gap.*GlobalAveragePooling2D needs a Conv2D"):
        keras_to_spec(cfg)


def test_a_config_saved_as_a_json_string_is_read(tmp_path: Any) -> None:
    # json.dump(model.to_json(), f) (DeepLocalize's model files) stores the config as one string
    from gradhealth.analysis.importers.keras import check_keras, is_keras_config, sniff_keras
    from gradhealth.cli import is_keras

    config = _sigmoid_stack()
    wrapped = json.dumps(json.dumps(config)).encode()
    assert sniff_keras(wrapped[:4096]) == "json" and is_keras_config(json.loads(wrapped))
    path = tmp_path / "model.json"
    path.write_bytes(wrapped)
    assert is_keras(str(path))
    doc = check_keras(wrapped, seeds=1, verify=False)
    assert doc.findings == check_keras(json.dumps(config).encode(), seeds=1, verify=False).findings
    assert "vanishing_gradient" in {f.code for f in doc.findings}


def test_conv1d_after_an_embedding_convolves_along_the_timesteps() -> None:
    # Keras reads (timesteps, features) with the features as channels; the spec's conv1d takes
    # [channels, length], so the sequence went in transposed: 12 timesteps read as the channels
    # (kerassweep6: refused when weights were stored, silently wrong where the two sizes match)
    conv = _layer("Conv1D", "conv", filters=8, kernel_size=[3], strides=[1], padding="valid",
                  activation="relu", use_bias=True, kernel_initializer=_init("GlorotUniform"),
                  bias_initializer=_init("Zeros"), dilation_rate=[1], groups=1)
    cfg = _seq(_layer("Embedding", "emb", input_dim=50, output_dim=16,
                      embeddings_initializer=_init("RandomUniform", minval=-0.05, maxval=0.05)),
               conv, _layer("GlobalMaxPooling1D", "gmp"), _dense("out", 3, "softmax"), shape=[12])
    doc = check_keras(cfg, seeds=1, verify=False)
    [layer] = [layer for layer in doc.layers if layer.name == "conv"]
    assert layer.fan_in == 3 * 16  # kernel x the embedding's features, not x the 12 timesteps
