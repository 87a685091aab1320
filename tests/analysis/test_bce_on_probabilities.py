"""Binary cross-entropy on probabilities (a sigmoid output with ``from_logits: false``, Keras' default)."""
from __future__ import annotations

import math

import torch

from gradhealth import check_architecture
from gradhealth.analysis.losses import KERAS_EPSILON, loss_value


def test_value_and_gradient_are_the_formula_on_finite_probabilities():
    """-(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps] as Keras clips it: value and
    gradient (t - p) / (p (1 - p)) per element, over the mean's n, computed independently here."""
    p = torch.tensor([[0.2, 0.9], [1e-9, 0.5]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    loss, _ = loss_value("binary_cross_entropy", p, t, from_logits=False)
    loss.backward()
    clipped = [0.2, 0.9, KERAS_EPSILON, 0.5]
    want = -sum(ti * math.log(pi) + (1 - ti) * math.log(1 - pi) for pi, ti in zip(clipped, [1, 0, 1, 1], strict=True)) / 4
    assert math.isclose(loss.item(), want, rel_tol=1e-12)
    grads = p.grad.flatten().tolist()
    for g, pi, ti, inside in zip(grads, clipped, [1, 0, 1, 1], [True, True, False, True], strict=True):
        expected = (pi - ti) / (pi * (1 - pi)) / 4 if inside else 0.0  # the clip passes no gradient below eps
        assert math.isclose(g, expected, rel_tol=1e-9, abs_tol=1e-15)


def test_a_nan_probability_gives_a_nan_loss_not_an_error():
    """torch's own binary_cross_entropy raises on NaN input; the check needs the NaN to carry on."""
    p = torch.tensor([float("nan"), 0.5], dtype=torch.float64)
    loss, silent = loss_value("binary_cross_entropy", p, torch.tensor([1.0, 0.0], dtype=torch.float64),
                              from_logits=False)
    assert math.isnan(loss.item()) and silent.item() == 0.5


def test_an_overflowing_stack_under_bce_on_probabilities_is_a_nonfinite_finding():
    """exp(exp(exp(x))) with He-scaled weights overflows float64 on inputs in [-10, 10]: the check reports
    nonfinite instead of stopping with 'all elements of input should be between 0 and 1'."""
    init = {"scheme": "variance_scaling", "scale": 2.0, "mode": "fan_in", "distribution": "uniform"}
    spec = {"input": {"shape": [2], "range": [-10, 10]}, "seeds": 1,
            "loss": {"type": "binary_cross_entropy", "from_logits": False},
            "layers": [*({"type": "linear", "out_features": 5, "activation": "exponential", "init": init}
                         for _ in range(3)),
                       {"type": "linear", "out_features": 3, "activation": "sigmoid", "init": init}]}
    doc = check_architecture(spec, verify=False)
    assert "nonfinite" in {f.code for f in doc.findings}
