"""Norms of finite tensors whose squares overflow (modsweep42 #4: a 100-layer ReLU MLP with N(0, 1)
weights read "NaN/Inf first appears in the backward pass at layers.99" in float64, where every
element is finite and only the squares of weight gradients of about 1e208 overflow).

A norm that comes out Inf is taken again scaled by the largest element, m ||x / m||; a NaN/Inf
flag comes only from elements that are really non-finite. Checked against theory: n elements of
1e200 have norm 1e200 sqrt(n), and a deep ReLU MLP's gradient grows by sqrt(fan_in / 2) a layer.
"""

from __future__ import annotations

import math

import pytest
import torch

from gradhealth import check_architecture
from gradhealth.analysis.figures import Readout, rescaled_norm, tensor_norm
from gradhealth.analysis.simulate import first_step_norm
from gradhealth.analysis.spec import OptimizerSpec


def test_norm_of_finite_huge_elements_is_m_sqrt_n() -> None:
    x = torch.full((300,), 1e200, dtype=torch.float64)
    assert tensor_norm(x) == pytest.approx(1e200 * math.sqrt(300), rel=1e-12)
    # float32 squares overflow at 1.8e19: the norm is still 1e20 sqrt(n)
    assert tensor_norm(torch.full((50,), 1e20, dtype=torch.float32)) == pytest.approx(1e20 * math.sqrt(50), rel=1e-6)
    # a really infinite element stays Inf, and is said to be non-finite
    y = x.clone()
    y[7] = math.inf
    assert tensor_norm(y) == math.inf
    assert rescaled_norm(y, math.inf) == (math.inf, False)
    # elements finite, norm past float64's range: Inf as a number, but the elements are finite
    z = torch.full((4,), 1.5e308, dtype=torch.float64)
    assert rescaled_norm(z, math.inf) == (math.inf, True)


def test_readout_reads_no_nonfinite_from_finite_huge_tensors() -> None:
    gen = torch.Generator().manual_seed(0)
    n_out, n_in = 12, 8
    scale = 1e200
    out = torch.rand(16, n_out, generator=gen, dtype=torch.float64) * scale
    grad = torch.randn(16, n_out, generator=gen, dtype=torch.float64) * scale
    w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
    wg = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64) * 1e190
    bg = torch.randn(n_out, generator=gen, dtype=torch.float64) * 1e190
    inp = torch.randn(16, n_in, generator=gen, dtype=torch.float64) * 1e100
    readout = Readout()
    readout.add_unit("fc", out=out, grad=grad, activation=None, inp=inp, weight=w, weight_grads=[wg, bg])
    f = readout.read(torch.tensor(1.0, dtype=torch.float64)).units["fc"]

    # independent: the norms of the values divided by their scale, times the scale
    def norm(t: torch.Tensor, s: float) -> float:
        return s * float(torch.linalg.vector_norm(t / s))

    assert f["nonfinite_forward"] == 0.0
    assert f["nonfinite_backward"] == 0.0
    assert f["nonfinite_weight_grad"] == 0.0
    assert f["output_grad_norm"] == pytest.approx(norm(grad, scale), rel=1e-12)
    assert f["grad_norm"] == pytest.approx(1e190 * math.hypot(norm(wg, 1e190) / 1e190, norm(bg, 1e190) / 1e190),
                                           rel=1e-12)
    o = out / scale
    assert f["activation_std"] == pytest.approx(scale * float(o.std()), rel=1e-9)
    assert f["input_mean_square"] == pytest.approx(1e200 * float((inp / 1e100).square().mean()), rel=1e-12)

    # a really infinite gradient element is still flagged
    grad[3, 4] = math.inf
    readout = Readout()
    readout.add_unit("fc", out=out, grad=grad, activation=None, weight=w, weight_grads=[wg, bg])
    f = readout.read(torch.tensor(1.0, dtype=torch.float64)).units["fc"]
    assert f["nonfinite_backward"] == 1.0
    assert f["nonfinite_forward"] == 0.0


def test_first_step_of_a_huge_finite_gradient_is_finite() -> None:
    w = torch.ones(10, 10, dtype=torch.float64)
    g = torch.full((10, 10), 1e200, dtype=torch.float64)
    step = first_step_norm(OptimizerSpec(type="sgd", lr=1e-3), w, g)
    assert step == pytest.approx(1e-3 * 1e200 * 10, rel=1e-12)


def test_deep_std1_relu_mlp_reports_its_growth_not_nonfinite() -> None:
    # 100 ReLU layers of width 100 with N(0, 1) weights under mse: the output grows to about
    # 7.07^101 (1e86) and the gradients to 1e170 (7.07^201), finite in float64, whose squares overflow
    width = 100
    spec = {"name": "deep std-1 relu", "input": {"shape": [width]}, "batch_size": 32, "loss": "mse",
            "layers": [{"type": "linear", "out_features": width, "activation": "relu",
                        "init": {"scheme": "normal", "std": 1.0}, "bias_init": "zeros", "repeat": 100},
                       {"type": "linear", "out_features": 4}]}
    doc = check_architecture(spec, verify=False)
    codes = {f.code for f in doc.findings}
    assert "nonfinite" not in codes
    exploding = next(f for f in doc.findings if f.code == "exploding_gradient")
    ev = exploding.evidence.model_dump()
    assert ev["depth"] == 100
    # mean field: each ReLU layer with Var(W) = 1 multiplies the gradient by sqrt(fan_in / 2)
    assert ev["per_layer_factor"] == pytest.approx(math.sqrt(width / 2), rel=0.05)
    assert math.isfinite(ev["first_output_grad_norm"])
