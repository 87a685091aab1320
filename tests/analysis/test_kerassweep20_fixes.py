"""kerassweep20 fixes.

u05: a Keras 3 LSTM with a non-default activation (relu) goes to the graph door, which did not map
Keras 3's initializer class names (``OrthogonalInitializer``) and refused the file (exit 2) though
its stored weights were used and no initialiser was needed. Every Keras 2/3 initializer name and
alias now maps to one class, and an initialiser neither door can draw is refused only where the
weights are drawn from it (``--weights reinitialise``), with a message naming the flag.

h06: a trained autoencoder's decoder grew its activations 2.63x per layer over a 3-layer stretch
at 1.01x of He's scale: a warning "no initialisation gives". A steep stretch that the weights'
scale does not explain (i.i.d. weights of it stay under the 2x per-layer bar) and whose gradient
stays under the through-depth bar is a note, as learned_forward_growth judges a whole trunk."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import torch

from gradhealth import check_onnx
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import _initializer, check_keras
from gradhealth.analysis.importers.keras_graph import INITIALIZERS
from gradhealth.analysis.importers.keras_torch import draw_initializer
from tests.analysis.onnx_models import aligned_relu_mlp

T, F, U = 5, 3, 4  # steps, features, LSTM units


def _init(name: str, **config: Any) -> dict[str, Any]:
    """An initializer as Keras 3 serialises it."""
    return {"module": "keras.initializers", "class_name": name, "config": {"seed": None, **config},
            "registered_name": None}


def _relu_lstm_h5(recurrent_init: dict[str, Any], stored: bool = True) -> bytes:
    """A Keras 3.3 ``model.save('m.h5')``: Input(5, 3) -> LSTM(4, activation='relu') -> Dense(1),
    every initializer by its Keras 3 class name, the weights as Keras 3 writes them
    (model_weights/<layer>/<layer>/lstm_cell/kernel)."""
    import h5py

    rng = np.random.default_rng(0)
    lstm = {"name": "lstm", "trainable": True, "dtype": "float32", "return_sequences": False,
            "return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
            "units": U, "activation": "relu", "recurrent_activation": "sigmoid", "use_bias": True,
            "kernel_initializer": _init("GlorotUniform"), "recurrent_initializer": recurrent_init,
            "bias_initializer": _init("Zeros"), "unit_forget_bias": True, "dropout": 0.0,
            "recurrent_dropout": 0.0, "seed": None}
    dense = {"name": "dense", "trainable": True, "dtype": "float32", "units": 1, "activation": "linear",
             "use_bias": True, "kernel_initializer": _init("GlorotUniform"), "bias_initializer": _init("Zeros")}
    config = {"class_name": "Sequential", "config": {"name": "sequential", "trainable": True, "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, T, F], "dtype": "float32", "name": "input_layer"}},
        {"class_name": "LSTM", "config": lstm}, {"class_name": "Dense", "config": dense}]}}
    weights = {"lstm": [("lstm_cell/kernel", rng.uniform(-0.5, 0.5, (F, 4 * U))),
                        ("lstm_cell/recurrent_kernel", np.linalg.qr(rng.standard_normal((4 * U, U)))[0].T),
                        ("lstm_cell/bias", np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])],
               "dense": [("kernel", rng.uniform(-0.5, 0.5, (U, 1))), ("bias", np.zeros(1))]}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["keras_version"] = "3.3.3"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["training_config"] = json.dumps({"loss": "mse", "optimizer_config": {
            "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.001}}})
        if stored:
            group = f.create_group("model_weights")
            group.attrs["layer_names"] = [b"lstm", b"dense"]
            for layer, arrays in weights.items():
                g = group.create_group(layer)
                g.attrs["weight_names"] = [f"{layer}/{w}".encode() for w, _ in arrays]
                for w, value in arrays:
                    g.create_dataset(f"{layer}/{w}", data=value.astype(np.float32))
    return buf.getvalue()


@pytest.mark.parametrize("given, expected", [
    # Keras 3 class names, with its compatibility aliases
    ("OrthogonalInitializer", "orthogonal"), ("Orthogonal", "orthogonal"), ("IdentityInitializer", "identity"),
    ("GlorotUniform", "glorotuniform"), ("GlorotNormal", "glorotnormal"), ("HeNormal", "henormal"),
    ("HeUniform", "heuniform"), ("LecunNormal", "lecunnormal"), ("LecunUniform", "lecununiform"),
    ("RandomNormal", "randomnormal"), ("RandomUniform", "randomuniform"), ("TruncatedNormal", "truncatednormal"),
    ("VarianceScaling", "variancescaling"), ("Zeros", "zeros"), ("Ones", "ones"), ("Constant", "constant"),
    ("Identity", "identity"),
    # snake_case names and Keras 2's aliases
    ("orthogonal", "orthogonal"), ("glorot_uniform", "glorotuniform"), ("he_normal", "henormal"),
    ("random_normal", "randomnormal"), ("normal", "randomnormal"), ("uniform", "randomuniform"),
    ("random_uniform", "randomuniform"), ("truncated_normal", "truncatednormal"), ("zero", "zeros"),
    ("one", "ones"), ("variance_scaling", "variancescaling"), ("lecun_uniform", "lecununiform"),
    # tf.keras 2's V2 classes
    ("GlorotUniformV2", "glorotuniform"), ("ZerosV2", "zeros"),
])
def test_every_keras_initializer_name_maps_to_the_class_both_doors_draw(given: str, expected: str) -> None:
    assert _initializer(given)[0] == expected
    assert _initializer({"class_name": given, "config": {}})[0] == expected
    assert expected in INITIALIZERS


def test_keras3_orthogonal_initializer_is_drawn_orthogonal() -> None:
    torch.manual_seed(0)
    w = draw_initializer(_init("OrthogonalInitializer", gain=1.0), (U, 4 * U), "orthogonal").numpy()
    assert np.allclose(w @ w.T, np.eye(U), atol=1e-9)  # rows orthonormal: not the zeros an unknown name gave


def test_keras3_relu_lstm_with_stored_weights_is_checked_not_refused() -> None:
    doc = check_keras(_relu_lstm_h5(_init("OrthogonalInitializer", gain=1.0)), seeds=1, verify=False)
    assert "as stored in the file" in doc.summary


def test_keras3_relu_lstm_reinitialised_draws_its_orthogonal_initializer() -> None:
    doc = check_keras(_relu_lstm_h5(_init("OrthogonalInitializer", gain=1.0)), weights="reinitialise",
                      seeds=1, verify=False)
    assert "initialisers" in doc.summary


def test_an_initializer_that_cannot_be_drawn_is_refused_only_for_reinitialise() -> None:
    custom = {"module": None, "class_name": "MyInit", "config": {}, "registered_name": "Custom>MyInit"}
    # the stored weights are used (the default): the initialiser is never needed
    doc = check_keras(_relu_lstm_h5(custom), seeds=1, verify=False)
    assert "as stored in the file" in doc.summary
    with pytest.raises(ModelError, match=r"recurrent_initializer 'MyInit'.*--weights reinitialise"):
        check_keras(_relu_lstm_h5(custom), weights="reinitialise", seeds=1, verify=False)


def test_a_sequential_spec_keeps_its_stored_weights_whatever_the_initializer() -> None:
    """A tanh LSTM (the spec door) whose recurrent initializer the spec cannot express (a
    RandomNormal of mean 1): checked with its stored weights, and reinitialised by the graph door,
    which draws that mean."""
    h5 = _relu_lstm_h5(_init("RandomNormal", mean=1.0, stddev=0.05)).replace(b'"activation": "relu"',
                                                                             b'"activation": "tanh"')
    assert "as stored in the file" in check_keras(h5, seeds=1, verify=False).summary
    assert "initialisers" in check_keras(h5, weights="reinitialise", seeds=1, verify=False).summary


# --- h06: a steep stretch the weights' scale does not explain ---------------------------------

_RNG = np.random.default_rng(0)


def _aligned_mlp(aligned: float, noise: float, width: int = 64, depth: int = 4) -> bytes:
    """x [N, width] -> depth x (width relu) -> 1 (:func:`.onnx_models.aligned_relu_mlp`)."""
    return aligned_relu_mlp(_RNG, aligned, noise=noise, width=width, depth=depth, outputs=1)


def test_a_steep_stretch_at_about_he_scale_is_a_note() -> None:
    # i.i.d. entries of std 0.2 over a fan-in of 64 give sqrt(64 * 0.04 / 2) = 1.13x per layer by
    # their scale (the rank-2 part adds ~2.5^2 * 2 / 64^2 to the variance: 1.2x in all), between
    # 1 and the 2x bar; the aligned directions grow the signal 2.5x per layer on top
    doc = check_onnx(_aligned_mlp(2.5, 0.2), seeds=2, verify=False, loss="mse")
    f = next((f for f in doc.findings if f.code == "exploding_gradient"), None)
    assert f is not None and f.severity == "info", doc.summary
    evidence = f.evidence.model_dump()
    assert evidence["stretch_gain"] >= 2
    rms = (2.5 ** 2 * 2 / 64 ** 2 + 0.2 ** 2) ** 0.5
    assert 1 <= evidence["weight_scale_gain"] < 2
    assert abs(evidence["weight_scale_gain"] / (64 * rms ** 2 / 2) ** 0.5 - 1) < 0.2
    assert "no initialisation gives" not in f.summary and "learned" in f.summary


def test_a_steep_stretch_the_weights_scale_gives_stays_a_warning() -> None:
    # i.i.d. entries of std 0.5: sqrt(64 * 0.25 / 2) = 2.8x per layer by their scale alone
    doc = check_onnx(_aligned_mlp(0.0, 0.5), seeds=2, verify=False, loss="mse")
    f = next((f for f in doc.findings if f.code == "exploding_gradient"), None)
    assert f is not None and f.severity == "warning", doc.summary
