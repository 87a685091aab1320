"""kerassweep12: a Keras model saved with dynamic input dimensions (every variable-length text or
time-series model) was refused; a recurrent layer's ``initial_state`` was counted as a second
input and refused; a Conv2DTranspose's own activation was never part of its unit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import (
    DEFAULT_SPATIAL,
    DEFAULT_STEPS,
    check_keras,
    with_default_sizes,
)
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from gradhealth.analysis.importers.keras_torch import KerasNet, load_stored


def _tensor(name: str, index: int = 0) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, index]}}


def _input(name: str, shape: list[int | None]) -> dict[str, Any]:
    return {"class_name": "InputLayer", "name": name, "config": {"name": name, "batch_shape": [None, *shape]},
            "inbound_nodes": []}


def _call(cls: str, name: str, args: list[Any], kwargs: dict[str, Any] | None = None,
          **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg},
            "inbound_nodes": [{"args": args, "kwargs": kwargs or {}}]}


def _functional(layers: list[dict[str, Any]], ins: list[str], out: str) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"name": "m", "layers": layers,
                                                   "input_layers": [[n, 0, 0] for n in ins],
                                                   "output_layers": [[out, 0, 0]]}}


def _sequential(shape: list[int | None], *layers: dict[str, Any]) -> dict[str, Any]:
    first = {"class_name": "InputLayer", "config": {"name": "inp", "batch_shape": [None, *shape]}}
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [first, *layers]}}


def _layer(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "config": {"name": name, **cfg}}


# -- 1. dynamic dimensions --------------------------------------------------------------------

def test_a_variable_length_sequence_is_checked_at_the_default_length_and_says_so() -> None:
    # Input(shape=(None, 4)) -> LSTM -> Dense: a time axis Keras saves as None
    config = _sequential([None, 4], _layer("LSTM", "lstm", units=8), _layer("Dense", "out", units=1))
    doc = check_keras(config, seeds=1, batch_size=8, verify=False)
    assert f"inp [{DEFAULT_STEPS}, 4] for [None, 4]" in doc.summary
    assert "--input-shape input=<steps>x4" in doc.summary
    graph = plan_keras_graph(with_default_sizes(config)[0])
    assert graph.input_shape == (DEFAULT_STEPS, 4)


def test_sizes_given_replace_the_default_and_leave_no_note() -> None:
    config = _sequential([None, 4], _layer("LSTM", "lstm", units=8), _layer("Dense", "out", units=1))
    doc = check_keras(config, seeds=1, batch_size=8, verify=False, input_shapes={"input": [10, 4]})
    assert "assumed input sizes" not in doc.summary


@pytest.mark.parametrize("length,want", [(None, DEFAULT_STEPS), (20, 20)])
def test_an_embeddings_tokens_take_its_input_length_or_the_default(length: int | None, want: int) -> None:
    embedding = _layer("Embedding", "emb", input_dim=50, output_dim=6,
                       **({"input_length": length} if length else {}))
    config = _sequential([None], embedding, _layer("GRU", "gru", units=5), _layer("Dense", "out", units=1))
    filled, note = with_default_sizes(config)
    assert plan_keras_graph(filled).input_shape == (want,)
    assert note is not None and f"[{want}] for [None]" in note


def test_a_dynamic_image_takes_the_default_spatial_size() -> None:
    config = _sequential([None, None, 3], _layer("Conv2D", "conv", filters=4, kernel_size=3, activation="relu"),
                         _layer("GlobalAveragePooling2D", "gap"), _layer("Dense", "out", units=2))
    doc = check_keras(config, seeds=1, batch_size=8, verify=False)
    assert f"inp [{DEFAULT_SPATIAL}, {DEFAULT_SPATIAL}, 3] for [None, None, 3]" in doc.summary


def test_a_dynamic_feature_axis_is_still_refused_naming_its_reader() -> None:
    # the features size the LSTM's kernel: no size can be assumed
    config = _sequential([None, None], _layer("LSTM", "lstm", units=8), _layer("Dense", "out", units=1))
    with pytest.raises(ModelError, match=r"features lstm reads.*--input-shape input=<steps>x<features>"):
        check_keras(config, seeds=1, batch_size=8, verify=False)


def test_each_input_of_a_functional_model_is_filled() -> None:
    layers = [_input("a", [None, 3]), _input("b", [None, 3]),
              _call("Concatenate", "cat", [[_tensor("a"), _tensor("b")]], axis=-1),
              _call("GRU", "gru", [_tensor("cat")], units=4), _call("Dense", "out", [_tensor("gru")], units=1)]
    filled, note = with_default_sizes(_functional(layers, ["a", "b"], "out"))
    graph = plan_keras_graph(filled)
    assert [s for _, s, _ in graph.inputs] == [(DEFAULT_STEPS, 3), (DEFAULT_STEPS, 3)]
    assert note is not None and "--input-shape a=<steps>x3" in note and "--input-shape b=<steps>x3" in note


# -- 2. initial_state -------------------------------------------------------------------------

def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _gru(x: np.ndarray, h: np.ndarray, kernel: np.ndarray, rec: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras' GRU (reset_after, gates z, r, h), every step's h, from ``h``."""
    u, out = rec.shape[0], []
    for t in range(x.shape[1]):
        xz, hz = x[:, t] @ kernel + bias[0], h @ rec + bias[1]
        z = _sig(xz[:, :u] + hz[:, :u])
        r = _sig(xz[:, u:2 * u] + hz[:, u:2 * u])
        cand = np.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
        h = z * h + (1 - z) * cand
        out.append(h)
    return np.stack(out, 1)


def _lstm(x: np.ndarray, h: np.ndarray, c: np.ndarray, kernel: np.ndarray, rec: np.ndarray,
          bias: np.ndarray) -> np.ndarray:
    """Keras' LSTM (gates i, f, c, o), every step's h, from ``h`` and ``c``."""
    u, out = rec.shape[0], []
    for t in range(x.shape[1]):
        zz = x[:, t] @ kernel + h @ rec + bias
        i, f, o = _sig(zz[:, :u]), _sig(zz[:, u:2 * u]), _sig(zz[:, 3 * u:])
        c = f * c + i * np.tanh(zz[:, 2 * u:3 * u])
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def _encoder_decoder(keras2: bool = False) -> dict[str, Any]:
    """enc (6 x 3) -> GRU(5) = h; dec (4 x 2) -> GRU(5, return_sequences, initial_state=h) -> Dense(1)."""
    dec_args: list[Any]
    if keras2:  # Keras 2: the state as an inbound tensor after the sequence
        dec = {"class_name": "GRU", "name": "dec", "config": {"name": "dec", "units": 5, "return_sequences": True},
               "inbound_nodes": [[["dec_in", 0, 0, {}], ["enc", 0, 0, {}]]]}
        enc = {"class_name": "GRU", "name": "enc", "config": {"name": "enc", "units": 5},
               "inbound_nodes": [[["enc_in", 0, 0, {}]]]}
        out = {"class_name": "Dense", "name": "out", "config": {"name": "out", "units": 1},
               "inbound_nodes": [[["dec", 0, 0, {}]]]}
        ins = [{"class_name": "InputLayer", "name": n, "config": {"name": n, "batch_input_shape": [None, *s]},
                "inbound_nodes": []} for n, s in (("enc_in", [6, 3]), ("dec_in", [4, 2]))]
        return _functional([*ins, enc, dec, out], ["enc_in", "dec_in"], "out")
    dec_args = [_tensor("dec_in")]
    layers = [_input("enc_in", [6, 3]), _input("dec_in", [4, 2]),
              _call("GRU", "enc", [_tensor("enc_in")], units=5),
              _call("GRU", "dec", dec_args, {"initial_state": _tensor("enc")}, units=5, return_sequences=True),
              _call("Dense", "out", [_tensor("dec")], units=1)]
    return _functional(layers, ["enc_in", "dec_in"], "out")


@pytest.mark.parametrize("keras2", [False, True])
def test_a_decoder_starts_from_the_encoders_state(keras2: bool) -> None:
    graph = plan_keras_graph(_encoder_decoder(keras2))
    net = KerasNet(graph, None).double()
    rng = np.random.default_rng(0)
    w = {"enc": [rng.normal(0, 0.5, (3, 15)), rng.normal(0, 0.5, (5, 15)), rng.normal(0, 0.3, (2, 15))],
         "dec": [rng.normal(0, 0.5, (2, 15)), rng.normal(0, 0.5, (5, 15)), rng.normal(0, 0.3, (2, 15))],
         "out": [rng.normal(0, 0.5, (5, 1)), np.zeros(1)]}
    load_stored(net, w)
    xe, xd = rng.normal(size=(7, 6, 3)), rng.normal(size=(7, 4, 2))
    h = _gru(xe, np.zeros((7, 5)), *w["enc"])[:, -1]
    want = _gru(xd, h, *w["dec"]) @ w["out"][0]
    te = torch.tensor(xe, requires_grad=True)
    got = net(te, torch.tensor(xd))
    assert np.allclose(got.detach().numpy(), want, atol=1e-10)
    got.sum().backward()  # the encoder learns through the decoder's first state
    assert te.grad is not None and float(te.grad.abs().sum()) > 0


def test_an_lstm_reads_h0_and_c0_from_model_inputs() -> None:
    # the sampling-model idiom: LSTM(...)(x, initial_state=[h0, c0]) with h0, c0 as inputs
    layers = [_input("x", [5, 3]), _input("h0", [4]), _input("c0", [4]),
              _call("LSTM", "lstm", [_tensor("x")], {"initial_state": [_tensor("h0"), _tensor("c0")]},
                    units=4, return_sequences=True),
              _call("Dense", "out", [_tensor("lstm")], units=2)]
    graph = plan_keras_graph(_functional(layers, ["x", "h0", "c0"], "out"))
    net = KerasNet(graph, None).double()
    rng = np.random.default_rng(1)
    w = {"lstm": [rng.normal(0, 0.5, (3, 16)), rng.normal(0, 0.5, (4, 16)), rng.normal(0, 0.3, 16)],
         "out": [rng.normal(0, 0.5, (4, 2)), np.zeros(2)]}
    load_stored(net, w)
    x, h0, c0 = rng.normal(size=(6, 5, 3)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    got = net(*(torch.tensor(v) for v in (x, h0, c0))).detach().numpy()
    assert np.allclose(got, _lstm(x, h0, c0, *w["lstm"]) @ w["out"][0], atol=1e-10)


def test_a_states_wrong_count_or_another_tensor_argument_is_still_refused() -> None:
    # an LSTM given one state (it needs h and c); a GRU given a mask tensor: one input only
    lstm = [_input("x", [5, 3]), _input("h0", [4]),
            _call("LSTM", "lstm", [_tensor("x")], {"initial_state": [_tensor("h0")]}, units=4),
            _call("Dense", "out", [_tensor("lstm")], units=1)]
    with pytest.raises(ModelError, match=r"lstm \(LSTM\): LSTM's initial_state needs 2 tensor"):
        plan_keras_graph(_functional(lstm, ["x", "h0"], "out"))
    gru = [_input("x", [5, 3]), _input("m", [5]),
           _call("GRU", "gru", [_tensor("x")], {"mask": _tensor("m")}, units=4),
           _call("Dense", "out", [_tensor("gru")], units=1)]
    with pytest.raises(ModelError, match=r"gru \(GRU\): GRU with 2 inputs is not supported"):
        plan_keras_graph(_functional(gru, ["x", "m"], "out"))


def test_a_return_state_layers_cell_state_is_refused_not_read_as_its_output() -> None:
    # encoder LSTM(return_state=True): outputs [h_T, h_T, c_T]; c_T (output 2) is no tensor here
    layers = [_input("enc_in", [6, 3]), _input("dec_in", [4, 3]),
              _call("LSTM", "enc", [_tensor("enc_in")], units=4, return_state=True),
              _call("LSTM", "dec", [_tensor("dec_in")], {"initial_state": [_tensor("enc", 1), _tensor("enc", 2)]},
                    units=4),
              _call("Dense", "out", [_tensor("dec")], units=1)]
    with pytest.raises(ModelError, match="initial_state reads output 2 of enc"):
        plan_keras_graph(_functional(layers, ["enc_in", "dec_in"], "out"))


# -- 3. a transposed convolution's own activation ---------------------------------------------

def _generator(padding: str) -> dict[str, Any]:
    return _sequential([3, 3, 2], _layer("Conv2DTranspose", "up", filters=2, kernel_size=3, strides=2,
                                         padding=padding, activation="tanh"),
                       _layer("Flatten", "flat"), _layer("Dense", "out", units=1))


def test_a_transposed_convolutions_activation_is_its_units() -> None:
    doc = check_keras(_generator("same"), seeds=1, batch_size=8, verify=False)
    up = next(u for u in doc.layers if u.name == "up")
    assert up.activation == "tanh" and up.saturated_fraction is not None


def test_the_fused_transposed_convolution_computes_keras_maths() -> None:
    # an independent scatter: out[i*s + a, j*s + b, o] += x[i, j, c] * K[a, b, o, c] (valid: no cut)
    graph = plan_keras_graph(_generator("valid"))
    net = KerasNet(graph, None).double()
    rng = np.random.default_rng(2)
    kernel, bias = rng.normal(size=(3, 3, 2, 2)), rng.normal(size=2)  # Keras [k, k, out, in]
    dense = rng.normal(size=(7 * 7 * 2, 1))
    load_stored(net, {"up": [kernel, bias], "out": [dense, np.zeros(1)]})
    x = rng.normal(size=(2, 3, 3, 2))
    full = np.zeros((2, 7, 7, 2))
    for i in range(3):
        for j in range(3):
            full[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :] += np.einsum("nc,aboc->nabo", x[:, i, j], kernel)
    want = np.tanh(full + bias).reshape(2, -1) @ dense
    assert np.allclose(net(torch.tensor(x)).detach().numpy(), want, atol=1e-10)
