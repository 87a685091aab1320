"""kerassweep13: ``data_format="channels_first"`` layers were refused (the keras.io time-series
transformer's GlobalAveragePooling1D); LSTM/GRU cells with an activation other than tanh (the
forecasting tutorials' ``LSTM(activation="relu")``) were refused; MultiHeadAttention's scores and
projections were left out of the activation memory, so a 640-step transformer ran at batch 64 and
was killed at 22.6 GB instead of being run at a smaller batch."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.cells import cell_of, gru_cell, lstm_cell, mark, run_fused
from gradhealth.analysis.graph import StackedRNN
from gradhealth.analysis.importers.keras import _batch_within_budget, check_keras
from gradhealth.analysis.importers.keras_graph import plan_keras_graph, recurrent_gates, spec_gate
from gradhealth.analysis.importers.keras_torch import KerasNet, load_stored
from gradhealth.errors import LimitExceeded


def _tensor(name: str) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}


def _input(name: str, shape: list[int]) -> dict[str, Any]:
    return {"class_name": "InputLayer", "name": name, "config": {"name": name, "batch_shape": [None, *shape]},
            "inbound_nodes": []}


def _call(cls: str, name: str, args: list[Any], **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg},
            "inbound_nodes": [{"args": args, "kwargs": {}}]}


def _functional(layers: list[dict[str, Any]], out: str) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"name": "m", "layers": layers, "input_layers": [["x", 0, 0]],
                                                   "output_layers": [[out, 0, 0]]}}


def _sequential(shape: list[int], *layers: dict[str, Any]) -> dict[str, Any]:
    first = {"class_name": "InputLayer", "config": {"name": "inp", "batch_shape": [None, *shape]}}
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [first, *layers]}}


def _layer(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "config": {"name": name, **cfg}}


def _keras_file(tmp_path: Path, config: dict[str, Any]) -> Path:
    """A Keras 3 ``.keras`` zip of ``config`` without weights (Keras' initialisers are drawn)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
    path = tmp_path / "model.keras"
    path.write_bytes(buf.getvalue())
    return path


def _run(config: dict[str, Any], weights: dict[str, list[np.ndarray]], x: np.ndarray) -> np.ndarray:
    net = KerasNet(plan_keras_graph(config), None).double()
    load_stored(net, weights)
    return net(torch.tensor(x)).detach().numpy()


# -- 1. channels_first --------------------------------------------------------------------------

def test_a_channels_first_global_pool_averages_each_steps_features(tmp_path: Path) -> None:
    # keras.io's transformer recipe: GlobalAveragePooling1D(data_format="channels_first") of (steps,
    # features) is the mean over the features of each step: (steps,), not (features,)
    config = _sequential([6, 3], _layer("GlobalAveragePooling1D", "gap", data_format="channels_first"),
                         _layer("Dense", "out", units=2))
    graph = plan_keras_graph(config)
    assert graph.node("gap").shape == (6,)
    rng = np.random.default_rng(0)
    w = {"out": [rng.normal(size=(6, 2)), rng.normal(size=2)]}
    x = rng.normal(size=(4, 6, 3))
    assert np.allclose(_run(config, w, x), x.mean(axis=2) @ w["out"][0] + w["out"][1], atol=1e-12)
    doc = check_keras(_keras_file(tmp_path, config), seeds=1, batch_size=8, verify=False)
    assert [u.name for u in doc.layers if u.name == "out"] == ["out"]


def test_a_channels_first_global_max_pool_2d_takes_each_channels_max() -> None:
    config = _sequential([2, 3, 4], _layer("GlobalMaxPooling2D", "gmp", data_format="channels_first"),
                         _layer("Dense", "out", units=1))
    rng = np.random.default_rng(1)
    w = {"out": [rng.normal(size=(2, 1)), np.zeros(1)]}
    x = rng.normal(size=(5, 2, 3, 4))
    assert np.allclose(_run(config, w, x), x.max(axis=(2, 3)) @ w["out"][0], atol=1e-12)


def test_a_channels_first_conv1d_convolves_along_the_last_axis() -> None:
    # input (channels 3, length 10); Conv1D(4, 3, channels_first) -> (4, 8); Flatten; Dense
    config = _sequential([3, 10], _layer("Conv1D", "conv", filters=4, kernel_size=[3], data_format="channels_first",
                                         activation="tanh"),
                         _layer("Flatten", "flat"), _layer("Dense", "out", units=1))
    graph = plan_keras_graph(config)
    assert graph.node("conv").weights[0] == ("kernel", (3, 3, 4))  # Keras' kernel: one layout in both formats
    assert graph.node("flat").in_shapes == [(4, 8)]
    rng = np.random.default_rng(2)
    kernel, bias, dense = rng.normal(size=(3, 3, 4)), rng.normal(size=4), rng.normal(size=(32, 1))
    x = rng.normal(size=(2, 3, 10))
    y = np.zeros((2, 4, 8))  # y[n, o, l] = sum_{a, c} x[n, c, l + a] K[a, c, o] + b[o]
    for pos in range(8):
        y[:, :, pos] = np.einsum("nca,aco->no", x[:, :, pos:pos + 3], kernel) + bias
    want = np.tanh(y).reshape(2, -1) @ dense
    got = _run(config, {"conv": [kernel, bias], "out": [dense, np.zeros(1)]}, x)
    assert np.allclose(got, want, atol=1e-10)


def test_a_channels_first_pool_and_conv2d_keep_the_channels_first() -> None:
    config = _sequential([2, 4, 4],
                         _layer("Conv2D", "conv", filters=3, kernel_size=[1, 1], data_format="channels_first"),
                         _layer("MaxPooling2D", "pool", pool_size=[2, 2], data_format="channels_first"),
                         _layer("Flatten", "flat"), _layer("Dense", "out", units=1))
    graph = plan_keras_graph(config)
    assert graph.node("pool").shape == (2, 2, 3)  # run channels-last, between two transposes
    assert graph.node("flat").in_shapes == [(3, 2, 2)]
    rng = np.random.default_rng(3)
    kernel, dense = rng.normal(size=(1, 1, 2, 3)), rng.normal(size=(12, 1))
    x = rng.normal(size=(2, 2, 4, 4))
    y = np.einsum("nchw,co->nohw", x, kernel[0, 0])
    pooled = y.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5))
    got = _run(config, {"conv": [kernel, np.zeros(3)], "out": [dense, np.zeros(1)]}, x)
    assert np.allclose(got, pooled.reshape(2, -1) @ dense, atol=1e-10)


def test_a_channels_first_conv_as_the_models_output_is_transposed_back() -> None:
    layers = [_input("x", [2, 5]),
              _call("Conv1D", "conv", [_tensor("x")], filters=3, kernel_size=[1], data_format="channels_first")]
    graph = plan_keras_graph(_functional(layers, "conv"))
    assert graph.output_name == "conv#channels_first"
    assert graph.node(graph.output_name).shape == (3, 5)


# -- 2. recurrent cells with another activation ---------------------------------------------------

def _act(name: str, z: np.ndarray) -> np.ndarray:
    return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
            "linear": lambda v: v, "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v))}[name](z)


def _keras_lstm(x: np.ndarray, kernel: np.ndarray, rec: np.ndarray, bias: np.ndarray, act: str,
                gate: str = "sigmoid") -> np.ndarray:
    """Keras' LSTMCell (gates i, f, c, o): c = f c + i act(z_c), h = o act(c); every step's h."""
    u = rec.shape[0]
    h, c, out = np.zeros((x.shape[0], u)), np.zeros((x.shape[0], u)), []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ rec + bias
        i, f, o = (_act(gate, z[:, k * u:(k + 1) * u]) for k in (0, 1, 3))
        c = f * c + i * _act(act, z[:, 2 * u:3 * u])
        h = o * _act(act, c)
        out.append(h)
    return np.stack(out, 1)


def _keras_gru(x: np.ndarray, kernel: np.ndarray, rec: np.ndarray, bias: np.ndarray, act: str,
               gate: str = "sigmoid") -> np.ndarray:
    """Keras' GRUCell, reset_after (gates z, r, h): h = z h + (1 - z) act(x_h + r (h U_h + b_rh))."""
    u = rec.shape[0]
    h, out = np.zeros((x.shape[0], u)), []
    for t in range(x.shape[1]):
        xz, hz = x[:, t] @ kernel + bias[0], h @ rec + bias[1]
        z = _act(gate, xz[:, :u] + hz[:, :u])
        r = _act(gate, xz[:, u:2 * u] + hz[:, u:2 * u])
        h = z * h + (1 - z) * _act(act, xz[:, 2 * u:] + r * hz[:, 2 * u:])
        out.append(h)
    return np.stack(out, 1)


@pytest.mark.parametrize("act", ["relu", "elu", "linear"])
def test_an_lstm_with_another_activation_runs_keras_cell(act: str) -> None:
    config = _sequential([5, 3], _layer("LSTM", "lstm", units=4, activation=act, return_sequences=True),
                         _layer("Dense", "out", units=1))
    rng = np.random.default_rng(4)
    w = {"lstm": [rng.normal(0, 0.6, (3, 16)), rng.normal(0, 0.6, (4, 16)), rng.normal(0, 0.3, 16)],
         "out": [rng.normal(size=(4, 1)), np.zeros(1)]}
    x = rng.normal(size=(3, 5, 3))
    want = _keras_lstm(x, *w["lstm"], act) @ w["out"][0]
    assert np.allclose(_run(config, w, x), want, atol=1e-10)


def test_a_gru_with_elu_and_tanh_gates_runs_keras_cell() -> None:
    config = _sequential([5, 3], _layer("GRU", "gru", units=4, activation="elu", recurrent_activation="tanh"),
                         _layer("Dense", "out", units=1))
    rng = np.random.default_rng(5)
    w = {"gru": [rng.normal(0, 0.6, (3, 12)), rng.normal(0, 0.6, (4, 12)), rng.normal(0, 0.3, (2, 12))],
         "out": [rng.normal(size=(4, 1)), np.zeros(1)]}
    x = rng.normal(size=(3, 5, 3))
    want = _keras_gru(x, *w["gru"], "elu", gate="tanh")[:, -1] @ w["out"][0]
    assert np.allclose(_run(config, w, x), want, atol=1e-10)


def test_a_relu_lstm_stack_is_checked_not_refused(tmp_path: Path) -> None:
    # kerassweep13 h05: four LSTM(activation="relu") layers, refused until then
    layers = [_layer("LSTM", f"lstm_{k}", units=6, activation="relu", return_sequences=k < 2) for k in range(3)]
    path = _keras_file(tmp_path, _sequential([8, 2], *layers, _layer("Dense", "out", units=1)))
    doc = check_keras(path, seeds=1, batch_size=8, verify=False)
    assert {"lstm_0", "lstm_1", "lstm_2"} <= {u.name for u in doc.layers}
    # the layer table names the cell's activation, and no tanh saturation (|h| near 1) is read
    # from a relu cell's unbounded h_t
    cells = [u for u in doc.layers if u.name.startswith("lstm_")]
    assert [u.activation for u in cells] == ["relu"] * 3
    assert all(u.saturated_fraction is None for u in cells)


def test_the_cells_take_the_activation_and_torchs_own_cell_stays_fused() -> None:
    lstm = nn.LSTM(3, 4)
    assert run_fused(lstm)
    mark(lstm, "sigmoid/relu")
    assert cell_of(lstm) == ("sigmoid", True, "relu") and not run_fused(lstm)
    # a stacked LSTM's per-layer copies keep the activation
    stacked = StackedRNN(nn.LSTM(3, 4, num_layers=2))
    mark(stacked.layers[0].rnn, "sigmoid", True, "relu")
    assert cell_of(stacked.layers[0].rnn)[2] == "relu"
    with pytest.raises(ValueError, match="softmax"):
        mark(nn.GRU(3, 4), "sigmoid/softmax")
    # lstm_cell against the equations, in torch's layout (i, f, g, o)
    rng = np.random.default_rng(6)
    w_ih, w_hh, b = rng.normal(size=(16, 3)), rng.normal(size=(16, 4)), rng.normal(size=16)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    z = x @ w_ih.T + h @ w_hh.T + b
    i, f, g, o = (_act("sigmoid", z[:, k * 4:(k + 1) * 4]) if k != 2 else z[:, 8:12] for k in range(4))
    c_want = f * c + i * np.maximum(g, 0)
    got_h, got_c = lstm_cell(*(torch.tensor(v) for v in (x, h, c)),
                             [torch.tensor(w_ih), torch.tensor(w_hh), torch.tensor(b), None], "sigmoid", "relu")
    assert np.allclose(got_c.numpy(), c_want) and np.allclose(got_h.numpy(), o * np.maximum(c_want, 0))
    w_ih, w_hh = rng.normal(size=(12, 3)), rng.normal(size=(12, 4))
    got = gru_cell(torch.tensor(x), torch.tensor(h), [torch.tensor(w_ih), torch.tensor(w_hh), None, None],
                   "sigmoid", True, "linear")
    r = _act("sigmoid", x @ w_ih[:4].T + h @ w_hh[:4].T)
    zz = _act("sigmoid", x @ w_ih[4:8].T + h @ w_hh[4:8].T)
    n = x @ w_ih[8:].T + r * (h @ w_hh[8:].T)
    assert np.allclose(got.numpy(), (1 - zz) * n + zz * h)


def test_recurrent_gates_names_the_cell_the_torch_half_builds() -> None:
    assert recurrent_gates("LSTM", {"activation": "tanh"}) == ("tanh", "sigmoid", True)
    assert recurrent_gates("LSTM", {"activation": "relu"}) == ("relu", "sigmoid/relu", True)
    assert spec_gate("hard_sigmoid/relu", keras3=False) == "hard_sigmoid_keras2/relu"
    with pytest.raises(ValueError, match="SimpleRNN with activation elu"):
        recurrent_gates("SimpleRNN", {"activation": "elu"})  # torch's own cell: tanh or relu
    with pytest.raises(ValueError, match="LSTM with activation softmax"):
        recurrent_gates("LSTM", {"activation": "softmax"})


# -- 4. attention's inner tensors in the memory plan ----------------------------------------------

def _transformer(steps: int, blocks: int, heads: int = 4, key_dim: int = 8) -> dict[str, Any]:
    layers, prev = [_input("x", [steps, 2])], "x"
    for k in range(blocks):
        layers.append(_call("MultiHeadAttention", f"mha_{k}", [_tensor(prev), _tensor(prev)],
                            num_heads=heads, key_dim=key_dim))
        layers.append(_call("Add", f"res_{k}", [[_tensor(prev), _tensor(f"mha_{k}")]]))
        prev = f"res_{k}"
    layers.append(_call("GlobalAveragePooling1D", "gap", [_tensor(prev)]))
    layers.append(_call("Dense", "out", [_tensor("gap")], units=3))
    return _functional(layers, "out")


def test_attention_scores_and_projections_are_counted_in_activation_memory() -> None:
    t, blocks, heads, key_dim = 50, 2, 4, 8
    graph = plan_keras_graph(_transformer(t, blocks, heads, key_dim), batch_size=4)
    outputs = sum(int(np.prod(n.shape)) for n in graph.nodes)
    # per block and sample: scores and softmax (heads x T x T each), q, k, v and the attended values
    inner = blocks * heads * (2 * t * t + 4 * t * key_dim)
    assert graph.activation_bytes == 2 * 8 * 4 * (outputs + inner)


def test_a_long_transformer_is_run_at_a_smaller_batch_or_refused_before_it_runs() -> None:
    # kerassweep13 h02: 4 blocks of 4 heads over 640 steps: 13M values per sample for the scores
    # alone, 13 GB with their gradients at batch 64 (the process was killed at 22.6 GB)
    config = _transformer(640, 4)
    scores = 4 * 4 * 2 * 640 * 640 * 16 * 64  # bytes: scores and softmax, float64, with gradients
    with pytest.raises(LimitExceeded, match="at batch 64"):
        plan_keras_graph(config, batch_size=64)
    assert plan_keras_graph(config, batch_size=8).activation_bytes >= scores // 8
    # 2 blocks over 200 steps: 0.66 GB of scores at batch 64, over the 512 MiB default budget
    batch, note = _batch_within_budget(None, plan_keras_graph(_transformer(200, 2), batch_size=64), None)
    assert batch == 32 and "batch 32, chosen for this model" in note
