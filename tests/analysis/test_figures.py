"""The figures a Readout computes from its batched reductions, against direct computations.

Each figure is recomputed here with plain torch / numpy on the same tensors (float64), so a
wrong index, a missing square or a mixed-up sum and norm in the batched read-back fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradhealth.analysis.figures import SATURATION_MARGIN, Readout


def _unit(readout: Readout, name: str, **kw: object) -> None:
    readout.add_unit(name, **kw)  # type: ignore[arg-type]


def test_figures_match_direct_computation() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, generator=gen, dtype=torch.float64)
    w = torch.randn(24, 16, generator=gen, dtype=torch.float64) * 0.3
    b = torch.randn(24, generator=gen, dtype=torch.float64) * 0.1
    pre = x @ w.T + b
    pre[:, 3] = -1.0 - pre[:, 3].abs()  # feature 3 never fires: dead
    out = torch.relu(pre)
    g = torch.randn(32, 24, generator=gen, dtype=torch.float64)
    wg = torch.randn(24, 16, generator=gen, dtype=torch.float64)
    bg = torch.randn(24, generator=gen, dtype=torch.float64)
    readout = Readout()
    _unit(readout, "fc", out=out, grad=g, activation="relu", pre=pre, inp=x, weight=w, bias=b,
          weight_grads=[wg, bg])
    loss = torch.tensor(2.5, dtype=torch.float64)
    fig = readout.read(loss)
    f = fig.units["fc"]
    o = out.numpy().ravel()
    assert fig.loss == 2.5
    assert f["activation_mean"] == pytest.approx(o.mean(), rel=1e-12)
    assert f["activation_std"] == pytest.approx(o.std(ddof=1), rel=1e-9)
    assert f["output_grad_norm"] == pytest.approx(np.linalg.norm(g.numpy()), rel=1e-12)
    assert f["grad_norm"] == pytest.approx(math.hypot(np.linalg.norm(wg.numpy()), np.linalg.norm(bg.numpy())),
                                           rel=1e-12)
    assert f["weight_std"] == pytest.approx(w.numpy().std(ddof=1), rel=1e-9)
    assert f["bias_mean_square"] == pytest.approx((b.numpy() ** 2).mean(), rel=1e-12)
    assert f["input_mean_square"] == pytest.approx((x.numpy() ** 2).mean(), rel=1e-12)
    alive = (pre.numpy() > 0).any(axis=0)
    assert f["dead_fraction"] == pytest.approx(1 - alive.mean())
    assert f["dead_fraction"] >= 1 / 24 - 1e-12  # the planted dead feature is counted
    assert f["nonfinite_forward"] == 0.0 and f["nonfinite_backward"] == 0.0
    assert "saturated_fraction" not in f


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "hardtanh"])
def test_saturation_fraction(activation: str) -> None:
    gen = torch.Generator().manual_seed(1)
    pre = torch.randn(64, 10, generator=gen, dtype=torch.float64) * 3
    out = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardtanh": torch.nn.functional.hardtanh}[activation](pre)
    readout = Readout()
    _unit(readout, "a", out=out, grad=None, activation=activation, pre=pre)
    f = readout.read(torch.tensor(0.0)).units["a"]
    m = SATURATION_MARGIN
    o, z = out.numpy(), pre.numpy()
    expected = {"sigmoid": ((o < m) | (o > 1 - m)).mean(), "tanh": (np.abs(o) > 1 - m).mean(),
                "hardtanh": (np.abs(z) >= 1).mean()}[activation]
    assert 0 < expected < 1
    assert f["saturated_fraction"] == pytest.approx(expected)
    assert math.isnan(f["output_grad_norm"]) and math.isnan(f["nonfinite_backward"])


def test_nonfinite_flags_and_missing_gradients() -> None:
    out = torch.ones(4, 3, dtype=torch.float64)
    out[1, 2] = math.nan
    g = torch.ones(4, 3, dtype=torch.float64)
    wg = torch.ones(3, 3, dtype=torch.float64)
    wg[0, 0] = math.inf
    readout = Readout()
    _unit(readout, "bad", out=out, grad=g, activation=None, weight=torch.eye(3, dtype=torch.float64),
          weight_grads=[wg])
    # a unit whose weight got no gradient has no grad_norm (one of two gradients missing)
    _unit(readout, "partial", out=torch.ones(2, 2), grad=None, activation=None, weight=torch.eye(2),
          weight_grads=[torch.ones(2, 2), None])
    fig = readout.read(torch.tensor(1.0))
    assert fig.units["bad"]["nonfinite_forward"] == 1.0
    assert fig.units["bad"]["nonfinite_backward"] == 1.0  # from the weight's gradient
    assert fig.units["bad"]["grad_norm"] == math.inf
    assert "grad_norm" not in fig.units["partial"]
    assert fig.units["partial"]["activation_std"] == 0.0


def test_time_steps_and_mixed_dtypes_keep_their_order() -> None:
    gen = torch.Generator().manual_seed(2)
    readout = Readout()
    grads = [torch.randn(8, 5, generator=gen) * (t + 1) for t in range(6)]
    # float32 and float64 tensors interleaved: the fused norms are grouped by dtype
    _unit(readout, "f32", out=torch.randn(8, 5, generator=gen), grad=grads[0], activation=None)
    _unit(readout, "f64", out=torch.randn(8, 5, generator=gen, dtype=torch.float64),
          grad=grads[1].double(), activation=None)
    for t, gr in enumerate(grads):
        readout.add_step(("rnn", 0), gr if t % 2 else gr.double())
    readout.add_step(("rnn", 0), None)
    fig = readout.read(torch.tensor(0.5, dtype=torch.float32))
    expected = [float(np.linalg.norm(gr.double().numpy())) for gr in grads] + [0.0]
    assert fig.steps[("rnn", 0)] == pytest.approx(expected, rel=1e-6)
    assert fig.units["f32"]["output_grad_norm"] == pytest.approx(expected[0], rel=1e-6)
    assert fig.units["f64"]["output_grad_norm"] == pytest.approx(expected[1], rel=1e-12)
    assert fig.loss == 0.5
