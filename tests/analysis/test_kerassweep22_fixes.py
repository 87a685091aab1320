"""kerassweep22: valid real Keras 2.2 files refused (exit 2).

h06: a ``CuDNNLSTM`` (Keras 2.1-2.3's GPU LSTM; ``CuDNNGRU`` likewise) was not read. It is the LSTM
(GRU with the reset gate after the recurrent product) that computes the same, its stored weights in
cuDNN's layout: each gate's input kernel block is cuDNN's row-major [units, in] matrix written into
Keras' [in, units] block, the recurrent blocks are transposed, and the input's and recurrent's biases
are stored side by side ([8u] for an LSTM, [6u] for a GRU).

h03: a VAE's ``Lambda(sampling)([z_mean, z_log_var])`` with no ``output_shape`` (the textbook Keras
2.2 VAE) was refused as "its output's shape is unknown", though its two inputs share one shape and
the Dense reading it stores a kernel of that width.

The refusal messages put the reason first and no longer list every supported layer."""

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

T, F, U = 5, 3, 4  # steps, features, units (F != U: a non-square kernel block shows the layout)


def _h5(config: dict[str, Any], stored: dict[str, list[tuple[str, np.ndarray]]] | None,
        version: str = "2.2.0", loss: str = "mse") -> bytes:
    """An .h5 as Keras 2.2's ``model.save()`` writes it: the config, the compiled loss and the
    weights at model_weights/<layer>/<layer>/<weight name>."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps({"loss": loss, "metrics": [], "optimizer_config": {
            "class_name": "Adam", "config": {"lr": 0.001}}}).encode()
        f.attrs["keras_version"] = version.encode()
        f.attrs["backend"] = b"tensorflow"
        group = f.create_group("model_weights")
        layers = config["config"] if isinstance(config["config"], list) else config["config"]["layers"]
        names = [lay["config"]["name"] for lay in layers]
        group.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            layer = group.create_group(name)
            arrays = (stored or {}).get(name, [])
            layer.attrs["weight_names"] = [f"{name}/{w}".encode() for w, _ in arrays]
            for w, value in arrays:
                layer.create_dataset(f"{name}/{w}", data=value.astype(np.float32))
    return buf.getvalue()


# --- h06: CuDNNLSTM / CuDNNGRU ------------------------------------------------------------------

def _cudnn_model(cls: str) -> dict[str, Any]:
    """Keras 2.2's Sequential: CuDNNLSTM(4) or CuDNNGRU(4) over 5 steps of 3 features, then Dense(2)."""
    rnn = {"name": "rnn", "trainable": True, "batch_input_shape": [None, T, F], "dtype": "float32",
           "return_sequences": False, "return_state": False, "go_backwards": False, "stateful": False,
           "units": U, "kernel_initializer": {"class_name": "VarianceScaling", "config": {
               "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}},
           "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
           "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
           "recurrent_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
           "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None}
    if cls == "CuDNNLSTM":
        rnn["unit_forget_bias"] = True
    dense = {"name": "dense_1", "trainable": True, "units": 2, "activation": "linear", "use_bias": True}
    return {"class_name": "Sequential", "config": [{"class_name": cls, "config": rnn},
                                                   {"class_name": "Dense", "config": dense}]}


def _cudnn_weights(gates: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    rng = np.random.default_rng(3)
    return {"rnn": [("kernel:0", rng.normal(0, 0.6, (F, gates * U))),
                    ("recurrent_kernel:0", rng.normal(0, 0.6, (U, gates * U))),
                    ("bias:0", rng.normal(0, 0.5, (2 * gates * U,)))],
            "dense_1": [("kernel:0", rng.normal(0, 0.5, (U, 2))), ("bias:0", rng.normal(0, 0.1, 2))]}


def _torch_reference(cls: str, w: dict[str, list[tuple[str, np.ndarray]]], x: np.ndarray) -> np.ndarray:
    """What the CuDNN layer computes, built by hand as torch's nn.LSTM/nn.GRU (cuDNN's own cell)
    from what Keras 2.2's CuDNN layer hands cuDNN (``_canonical_to_params``): each gate's Keras
    block flattened row-major and read by cuDNN as a row-major [units, in] matrix; the biases in
    cuDNN's order, the input's then the recurrent's. Keras' kernel columns are i, f, c, o (LSTM)
    and z, r, h (GRU); torch's rows are i, f, g, o and r, z, n."""
    kernel, recurrent, bias = (a.astype(np.float64) for _, a in w["rnn"])
    gates = 4 if cls == "CuDNNLSTM" else 3
    ks = [kernel[:, g * U:(g + 1) * U].reshape(-1).reshape(U, F) for g in range(gates)]
    rs = [recurrent[:, g * U:(g + 1) * U].reshape(-1).reshape(U, U) for g in range(gates)]
    bi, bh = bias[:gates * U].reshape(gates, U), bias[gates * U:].reshape(gates, U)
    order = [0, 1, 2, 3] if gates == 4 else [1, 0, 2]  # torch's gate order from Keras'
    rnn = (torch.nn.LSTM if gates == 4 else torch.nn.GRU)(F, U, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(np.concatenate([ks[g] for g in order])))
        rnn.weight_hh_l0.copy_(torch.tensor(np.concatenate([rs[g] for g in order])))
        rnn.bias_ih_l0.copy_(torch.tensor(np.concatenate([bi[g] for g in order])))
        rnn.bias_hh_l0.copy_(torch.tensor(np.concatenate([bh[g] for g in order])))
    out, _ = rnn(torch.tensor(x))
    kernel_d, bias_d = (a.astype(np.float64) for _, a in w["dense_1"])
    return out[:, -1].detach().numpy() @ kernel_d + bias_d


@pytest.mark.parametrize("cls", ["CuDNNLSTM", "CuDNNGRU"])
def test_cudnn_layer_reads_as_the_cell_cudnn_computes_in_both_doors(cls: str) -> None:
    w = _cudnn_weights(4 if cls == "CuDNNLSTM" else 3)
    data = _h5(_cudnn_model(cls), w)
    x = np.random.default_rng(0).normal(0, 1, (6, T, F))
    want = _torch_reference(cls, w, x)
    training = read_keras_training(data)
    stored = read_keras_weights(data, training.config)
    assert stored is not None
    config = gru_reset_after(modern_config(training.config), stored)
    net = KerasNet(plan_keras_graph(config), None).double()
    load_stored(net, stored)
    np.testing.assert_allclose(net(torch.tensor(x)).detach().numpy(), want, rtol=1e-5, atol=1e-6)
    spec, origins, graph = translate_or_graph(training.config, "mse", stored=stored)
    assert graph is None and spec is not None and origins is not None
    from gradhealth.analysis.model import build_network
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec

    snet = build_network(make_plan(parse_spec(spec))).double()
    assert _load_weights(snet, origins, stored) == []
    np.testing.assert_allclose(snet(torch.tensor(x)).detach().numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", ["CuDNNLSTM", "CuDNNGRU"])
def test_cudnn_layer_checks_stored_and_reinitialised(cls: str) -> None:
    data = _h5(_cudnn_model(cls), _cudnn_weights(4 if cls == "CuDNNLSTM" else 3))
    assert "as stored in the file" in check_keras(data, seeds=1).summary
    assert "Keras' initialisers" in check_keras(data, seeds=1, weights="reinitialise").summary


def test_cudnn_lstm_reinitialised_has_the_forget_bias_of_one() -> None:
    """unit_forget_bias: CuDNNLSTM fills its input bias's forget block with 0 and its recurrent's
    with 1, so the summed forget bias is 1, as an LSTM's unit_forget_bias draws it."""
    from gradhealth.analysis.importers.keras_torch import _drawn

    graph = plan_keras_graph(modern_config(_cudnn_model("CuDNNLSTM")))
    node = graph.node("rnn")
    assert node.cls == "LSTM"
    bias = _drawn(node)[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])


# --- h03: a VAE's sampling Lambda with no output_shape -------------------------------------------

def _vae(z: int, reads: int, z_log_var: int | None = None) -> dict[str, Any]:
    """Keras 2.2's functional VAE core: x(8) -> Dense(z) z_mean, Dense(z_log_var) z_log_var ->
    Lambda(sampling)([z_mean, z_log_var]) with no output_shape -> Dense(8) whose kernel reads ``reads``."""
    def layer(cls: str, name: str, ins: list[str], **cfg: Any) -> dict[str, Any]:
        return {"name": name, "class_name": cls, "config": {"name": name, **cfg},
                "inbound_nodes": [[[i, 0, 0, {}] for i in ins]] if ins else []}
    return {"class_name": "Model", "config": {"name": "vae", "layers": [
        layer("InputLayer", "x", [], batch_input_shape=[None, 8], dtype="float32"),
        layer("Dense", "z_mean", ["x"], units=z, activation="linear"),
        layer("Dense", "z_log_var", ["x"], units=z_log_var or z, activation="linear"),
        layer("Lambda", "z", ["z_mean", "z_log_var"], function=["4wIAAAAAAAAA", None, None],
              function_type="lambda", output_shape=None, output_shape_type="raw", arguments={}),
        layer("Dense", "out", ["z"], units=8, activation="sigmoid")],
        "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]]}}


def _vae_weights(z: int, reads: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    rng = np.random.default_rng(5)
    return {"z_mean": [("kernel:0", rng.normal(0, 0.3, (8, z))), ("bias:0", np.zeros(z))],
            "z_log_var": [("kernel:0", rng.normal(0, 0.3, (8, z))), ("bias:0", np.zeros(z))],
            "out": [("kernel:0", rng.normal(0, 0.3, (reads, 8))), ("bias:0", np.zeros(8))]}


@pytest.mark.parametrize("weights", ["as_given", "reinitialise"])
def test_a_sampling_lambda_without_output_shape_takes_its_inputs_shape(weights: str) -> None:
    data = _h5(_vae(3, 3), _vae_weights(3, 3), loss="binary_crossentropy")
    doc = check_keras(data, seeds=1, weights=weights)
    assert "z = the sum of its inputs (z_mean, z_log_var), ASSUMED" in doc.summary


def test_a_sampling_lambda_whose_reader_reads_another_width_is_refused_naming_both() -> None:
    data = _h5(_vae(3, 6), _vae_weights(3, 6), loss="binary_crossentropy")
    with pytest.raises(ModelError) as err:
        check_keras(data, seeds=1)
    assert "out reads Lambda z, which declares no output_shape" in err.value.detail


def test_a_lambda_of_inputs_of_different_shapes_and_no_output_shape_is_refused_shortly() -> None:
    with pytest.raises(ModelError) as err:
        translate_or_graph(_vae(3, 3, z_log_var=2))
    detail = err.value.detail
    assert detail.startswith("unsupported Keras layers: Lambda (z): it declares no output_shape and reads "
                             "2 tensors of different shapes ([3], [2])"), detail
    assert "InputLayer" not in detail and "listed under Keras models in docs/models.md" in detail


def test_an_unsupported_layer_names_the_closest_classes_read_not_all() -> None:
    cfg = _cudnn_model("CuDNNLSTM")
    cfg["config"][0]["class_name"] = "ConvLSTM2D"
    with pytest.raises(ModelError) as err:
        translate_or_graph(modern_config(cfg))
    detail = err.value.detail
    assert detail.startswith("unsupported Keras layers: ConvLSTM2D (rnn); supported: the closest read are ")
    assert "Conv2D" in detail.split("closest read are ")[1] and "Embedding" not in detail and len(detail) < 400
