"""SELU's init advice is LeCun normal, Var(W) = 1/fan_in (Klambauer et al. 2017), not the chi1 = 1
variance 0.4768/fan_in, where the forward signal collapses (specsweep11 #4: a healthy LeCun SNN's
report advised 0.4768/fan_in)."""

from __future__ import annotations

import numpy as np
import pytest

from gradhealth import check_architecture
from gradhealth.analysis.check import critical_init

_ALPHA = 1.6732632423543772848170429916717
_SCALE = 1.0507009873554804934193349852946


def _selu(x: np.ndarray) -> np.ndarray:
    return _SCALE * np.where(x > 0, x, _ALPHA * np.expm1(np.minimum(x, 0)))


def test_lecun_is_selu_fixed_point_and_the_critical_one_is_not() -> None:
    # independent check by Gauss-Hermite quadrature: with Var(W) = v/fan_in and unit-variance inputs,
    # the next pre-activation's variance is v * E[selu(z)^2]; LeCun's v = 1 keeps it at 1 (the
    # self-normalising fixed point), v = 0.4768 shrinks it by half a layer at a time
    z, w = np.polynomial.hermite_e.hermegauss(200)
    second = float(np.sum(w * _selu(z) ** 2) / np.sum(w))
    assert second == pytest.approx(1.0, abs=1e-3)
    crit = critical_init("selu")
    assert crit.critical_sigma_w2 == pytest.approx(2 / (_SCALE ** 2 * (1 + _ALPHA ** 2)), rel=1e-5)
    assert crit.critical_sigma_w2 * second < 0.5
    assert crit.recommended_sigma_w2 == 1.0
    advice = crit.suggestion.split(";")[0]
    assert "LeCun" in advice and "Var(W) = 1/fan_in" in advice and "0.4768" not in advice


def test_selu_report_advises_lecun_and_other_activations_keep_the_critical_one() -> None:
    spec = {"input": {"shape": [128]}, "batch_size": 32, "layers": [
        {"type": "linear", "out_features": 128, "activation": "selu", "init": "lecun_normal",
         "bias_init": {"scheme": "zeros"}, "repeat": 8},
        {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec, seeds=1, verify=False)
    assert doc.theory is not None and doc.theory.critical
    crit = doc.theory.critical[0]
    assert crit.activation == "selu" and crit.recommended_sigma_w2 == 1.0
    assert crit.suggestion.startswith("for selu: LeCun normal")
    relu = critical_init("relu")
    assert relu.recommended_sigma_w2 == pytest.approx(2.0, rel=1e-9)  # He et al. 2015
    assert "Var(W) = 2/fan_in" in relu.suggestion
