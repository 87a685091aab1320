"""The mean-field theory takes each activation's own parameter (a leaky_relu's slope, an elu's
alpha) from the layer, in specs and live modules (specsweep13 h02: slope 0.25 read as 0.01)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth import check_architecture, check_module
from gradhealth.analysis import theory


def test_elu_alpha_matches_torch_and_closed_form() -> None:
    x = np.linspace(-5, 5, 101)
    assert np.allclose(theory.phi("elu", x, alpha=0.5), nn.functional.elu(torch.tensor(x), alpha=0.5).numpy())
    # chi1 at q -> 0+: the mean of the one-sided slopes squared, (1 + alpha^2) / 2
    assert theory.chi1("elu", 1e-12, 1.0, alpha=0.5) == pytest.approx((1 + 0.25) / 2, rel=1e-6)


def test_spec_leaky_slope_reaches_theory() -> None:
    spec = {"input": {"shape": [256]}, "batch_size": 32, "layers": [
        {"type": "linear", "out_features": 256, "activation": "leaky_relu", "negative_slope": 0.25,
         "init": "kaiming_normal", "bias_init": {"scheme": "zeros"}, "repeat": 10},
        {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec, seeds=1)
    assert doc.theory is not None
    stretch = doc.theory.stretches[0]
    # He's variance for slope a is 2 / (1 + a^2): chi1 = sigma_w2 (1 + a^2) / 2 (closed form)
    # over 10 layers the gradient changes by chi1^(9/2) (sigma_w2 is shown to 6 places)
    chi = stretch.sigma_w2 * (1 + 0.25 ** 2) / 2
    assert stretch.predicted_ratio == pytest.approx(chi ** 4.5, rel=1e-4)
    assert stretch.predicted_ratio == pytest.approx(1.0, abs=0.1)
    crit = doc.theory.critical[0]
    assert crit.critical_sigma_w2 == pytest.approx(2 / (1 + 0.25 ** 2), rel=1e-6)
    assert "1.882/fan_in" in crit.suggestion


@pytest.mark.parametrize("act, closed", [
    (nn.LeakyReLU(0.25), (1 + 0.25 ** 2) / 2),
])
def test_module_activation_parameter_reaches_theory(act: nn.Module, closed: float) -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(6):
        lin = nn.Linear(128, 128, bias=False)
        nn.init.normal_(lin.weight, std=math.sqrt(1.0 / 128))
        layers += [lin, act]
    model = nn.Sequential(*layers, nn.Linear(128, 10))
    doc = check_module(model, torch.randn(32, 128), seeds=1, verify=False)
    assert doc.theory is not None and doc.theory.stretches
    stretch = doc.theory.stretches[0]
    assert stretch.chi1 is None or stretch.chi1 == pytest.approx(stretch.sigma_w2 * closed, rel=1e-5)
    assert doc.theory.critical[0].critical_sigma_w2 == pytest.approx(1 / closed, rel=1e-6)


def test_module_elu_alpha_reaches_critical_init() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(6):
        layers += [nn.Linear(128, 128, bias=False), nn.ELU(alpha=0.5)]
    doc = check_module(nn.Sequential(*layers, nn.Linear(128, 10)), torch.randn(32, 128), seeds=1, verify=False)
    assert doc.theory is not None and doc.theory.critical
    crit = doc.theory.critical[0]
    assert crit.critical_sigma_w2 == pytest.approx(theory.critical_sigma_w2("elu", crit.sigma_b2, alpha=0.5), rel=1e-6)
    assert crit.critical_sigma_w2 != pytest.approx(theory.critical_sigma_w2("elu", crit.sigma_b2), rel=1e-3)
