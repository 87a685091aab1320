"""modsweep49 mamba_positive_A: a NaN/Inf that a growing recurrence makes is put down to the recurrence.

A selective scan whose decay exp(delta * A) is over 1 a step overflows float32 after enough steps; the
nonfinite finding said "the weights or activations before it are far too large (an initialisation or
learning rate too large, no normalisation)" while the exploding_through_time beside it measured the
scan's growth a step. Where such a through-time finding stands beside it, the explanation now names the
recurrence. The module is built here; the growth a step is checked against the decays themselves."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module


class _GrowingScan(nn.Module):
    """h_t = exp(delta_t * A) * h_(t-1) + delta_t * B x_t with A = +exp(A_log) in [1, 2] and
    delta_t = softplus(.) > 0: every step multiplies the state by e^(delta A), about 2-5, so over 96
    steps it passes float32's 3.4e38 but stays far inside float64's 1.8e308."""

    def __init__(self, width: int = 8, state: int = 4, steps: int = 96) -> None:
        super().__init__()
        self.steps = steps
        self.inp = nn.Linear(6, width)
        self.dt = nn.Linear(width, width)
        self.b = nn.Linear(width, state, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 2.0, state)).repeat(width, 1))
        self.out = nn.Linear(width, 5)

    def decays(self, x: torch.Tensor) -> torch.Tensor:
        u = self.inp(x)
        return torch.exp(F.softplus(self.dt(u)).unsqueeze(-1) * torch.exp(self.A_log))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.inp(x)
        delta = F.softplus(self.dt(u))
        da = torch.exp(delta.unsqueeze(-1) * torch.exp(self.A_log))
        bx = delta.unsqueeze(-1) * self.b(u).unsqueeze(2) * u.unsqueeze(-1)
        h = torch.zeros(x.shape[0], u.shape[-1], self.A_log.shape[1], dtype=x.dtype)
        for t in range(self.steps):
            h = da[:, t] * h + bx[:, t]
        return self.out(h.sum(-1))


def test_an_overflow_beside_a_growing_recurrence_is_put_down_to_the_recurrence() -> None:
    torch.manual_seed(0)
    model, x = _GrowingScan(), torch.randn(8, 96, 6)
    with torch.no_grad():
        a = model.decays(x)
        out = model(x)
    # independent of the tool: float32 overflows, and the decays are all over 1 a step
    assert not torch.isfinite(out).all() and float(a.min()) > 1
    doc = check_module(model, x, loss="cross_entropy", seeds=1, verify=False)
    by_code = {f.code: f for f in doc.findings}
    assert "nonfinite" in by_code and "exploding_through_time" in by_code
    nan, timed = by_code["nonfinite"], by_code["exploding_through_time"]
    assert "initialisation or learning rate too large" not in nan.explanation
    assert "The cause is a recurrence" in nan.explanation and "in A_log" in nan.explanation
    assert nan.evidence.model_dump()["through_time"] == "exploding_through_time"
    # the per-step factor the explanation quotes is the through-time finding's, within the decays' range
    factor = timed.evidence.model_dump()["per_step_factor"]
    assert float(a.min()) <= factor <= float(a.max()) and math.isfinite(factor)
    assert f"growing by {factor:.3g} per step" in nan.explanation
