"""modsweep49 #6: (a) a KAN of k layers (each a SiLU base path beside a B-spline path, summed) read
"2k - 2 layers" and "no activation of their own": the depth now follows the feeds through the SiLU
unit between layers, counting each KAN layer once, and names the SiLU; (b) a Heaviside spike built by
index assignment (out[x > 0] = 1) read "remove the .detach()": a step's derivative is 0 almost
everywhere, so the finding now says to give it a surrogate or straight-through gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradhealth.library import check_module


class KANLayer(nn.Module):
    """efficient-kan's KANLinear in short: SiLU(x) @ base_weight + a degree-1 spline (hat functions on a
    grid) @ spline_weight * spline_scaler, the two paths summed."""

    def __init__(self, n_in: int, n_out: int, grid: int = 5) -> None:
        super().__init__()
        self.register_buffer("knots", torch.linspace(-1, 1, grid))
        self.base_weight = nn.Parameter(torch.randn(n_out, n_in) * 0.5 / n_in ** 0.5)
        self.spline_weight = nn.Parameter(torch.randn(n_out, n_in, grid) * 0.1)
        self.spline_scaler = nn.Parameter(torch.randn(n_out, n_in) * 0.5 / n_in ** 0.5)
        self.base_activation = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(self.base_activation(x), self.base_weight)
        hats = torch.relu(1 - (x[..., None] - self.knots).abs() * 2)  # [batch, in, grid]
        scaled = self.spline_weight * self.spline_scaler[..., None]
        return base + F.linear(hats.flatten(1), scaled.flatten(1))


def test_a_kan_counts_each_layer_once_and_names_its_silu() -> None:
    torch.manual_seed(0)
    depth = 9
    net = nn.Sequential(*[KANLayer(32, 32) for _ in range(depth - 1)], KANLayer(32, 4))
    doc = check_module(net, torch.rand(16, 32) * 2 - 1, loss="cross_entropy", seeds=1, verify=False)
    vanishing = next(f for f in doc.findings if f.code == "vanishing_gradient")
    # the chain runs from the first KAN layer to the last one's base path (its spline path is the
    # readout): `depth` layers, one Jacobian per KAN layer, whichever of its two parallel paths it takes
    assert vanishing.evidence.model_extra["depth"] == depth
    assert f"({depth} layers, {depth - 1} steps" in vanishing.summary
    assert "no activation of their own" not in vanishing.explanation
    assert "silu" in vanishing.explanation


def _heaviside(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(x)
    out[x > 0] = 1.0
    return out


class Spiking(nn.Module):
    def __init__(self, detach: bool = False) -> None:
        super().__init__()
        self.w1, self.w2 = nn.Linear(20, 16), nn.Linear(16, 2)
        self.detach = detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w1(x)
        return self.w2(h.detach() if self.detach else _heaviside(h))


def _cut_finding(net: nn.Module) -> str:
    torch.manual_seed(0)
    doc = check_module(net, torch.randn(32, 20), loss="cross_entropy", seeds=1, verify=False)
    finding = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert (finding.evidence.model_extra or {}).get("cut_off")
    return finding.explanation


def test_a_heaviside_step_is_told_to_take_a_surrogate_gradient() -> None:
    torch.manual_seed(0)
    text = _cut_finding(Spiking())
    assert "surrogate gradient" in text and "straight-through" in text
    assert "Remove the cut" not in text


def test_a_detach_keeps_remove_the_cut() -> None:
    torch.manual_seed(0)
    text = _cut_finding(Spiking(detach=True))
    assert "Remove the cut" in text and "surrogate" not in text


class _Surrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _heaviside(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad / (10 * x.abs() + 1) ** 2


class SurrogateThenDetach(nn.Module):
    """A surrogate spike (its step inside the Function's forward) and a genuine .detach() cut."""

    def __init__(self) -> None:
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(20, 16), nn.Linear(16, 16), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w1(x).detach()
        return self.w3(_Surrogate.apply(self.w2(h)))


def test_a_surrogate_spikes_own_step_is_not_taken_for_the_cut() -> None:
    text = _cut_finding(SurrogateThenDetach())
    assert "Remove the cut" in text and "surrogate" not in text
