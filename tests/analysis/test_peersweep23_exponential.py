"""peersweep23 #3: the spec refused ``activation: exponential`` (Keras' exponential), which the live and
Keras doors simulate. The spec now takes it: its layer computes exp(x) (checked against the closed-form
Gaussian moments), a He-initialised stack of them overflows and is named as such with the swap for ReLU
offered, and the mean-field theory leaves it out (its variance map has no fixed point at He's init)."""

from __future__ import annotations

import math

import numpy as np

from gradhealth.analysis import theory
from gradhealth.analysis.importers.keras import check_keras
from gradhealth.library import check_architecture
from tests.analysis.test_keras_import import _dense, _init, _seq


def test_an_exponential_layer_computes_exp_of_its_gaussian_pre_activation() -> None:
    # input N(0, 1) of width 256, weights N(0, (1/32)^2): pre-activation variance q = 256 / 32^2 = 0.25, so
    # exp of it has mean exp(q/2) and variance exp(2q) - exp(q) (log-normal moments)
    spec = {"name": "exp", "input": {"shape": [256]}, "batch_size": 128, "loss": "mse",
            "layers": [{"type": "linear", "out_features": 2048, "activation": "exponential",
                        "init": {"scheme": "normal", "std": 1 / 32}, "bias_init": "zeros"},
                       {"type": "linear", "out_features": 1}]}
    doc = check_architecture(spec, seeds=2, verify=False)
    layer = doc.layers[0]
    q = 0.25
    assert layer.activation == "exponential"
    assert layer.activation_mean is not None and layer.activation_std is not None
    assert math.isclose(layer.activation_mean, math.exp(q / 2), rel_tol=0.02)
    assert math.isclose(layer.activation_std, math.sqrt(math.exp(2 * q) - math.exp(q)), rel_tol=0.03)
    assert doc.theory.stretches == [] and doc.theory.critical == []  # no mean-field map for it


def _he_exponential_stack() -> dict[str, object]:
    return {"name": "dd circle exp8", "input": {"shape": [2], "range": [-1, 1]}, "batch_size": 128,
            "loss": "binary_cross_entropy", "optimizer": {"type": "adam", "lr": 0.001},
            "layers": [{"type": "linear", "out_features": 5, "init": "he_uniform", "bias_init": "zeros",
                        "activation": "exponential", "repeat": 8},
                       {"type": "linear", "out_features": 1, "init": "he_uniform", "bias_init": "zeros"}]}


def test_a_he_initialised_exponential_stack_overflows_and_is_told_to_swap_the_exponentials() -> None:
    # independently: the variance map q' = sigma_w^2 exp(2q) at He's sigma_w^2 = 2 from the input's
    # q = 2 * E[x^2] = 2/3 passes float64's exp range (2q > 709) within a few layers
    q, layers = 2.0 / 3.0, 1
    while 2 * q < 709:
        q, layers = 2.0 * math.exp(2 * q), layers + 1
    assert layers <= 8
    doc = check_architecture(_he_exponential_stack(), seeds=2)
    nonfinite = next(f for f in doc.findings if f.code == "nonfinite")
    assert nonfinite.severity == "error"
    assert "exponential" in nonfinite.explanation and "1/(2e)" in nonfinite.explanation
    assert (nonfinite.evidence.model_extra or {}).get("exponential_layers")
    swap = next(r for r in nonfinite.remedies if r.id == "relu_family_activation")
    assert swap.verified is not None and swap.verified.fixed
    assert not any(r.id in ("he_init", "xavier_init") for r in nonfinite.remedies)
    # the mean-field theory has no closed map for it: 1/(2e) is the largest sigma_w^2 with a fixed point
    s = np.linspace(0.0, 3.0, 3001)
    assert math.isclose(float(np.max(s * np.exp(-2 * s))), 1 / (2 * math.e), rel_tol=1e-6)
    assert "exponential" not in theory.ACTIVATIONS


def test_the_keras_door_reads_an_exponential_activation() -> None:
    cfg = _seq(*[_dense(f"d{i}", 5, "exponential", _init("HeUniform")) for i in range(8)],
               _dense("out", 1, "sigmoid"), shape=[2])
    doc = check_keras(cfg, loss="binary_cross_entropy", seeds=2, verify=False)
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)
