"""A module check's mean-field section (the spec check's `theory`, now for live modules too),
checked against the module's own weights and a plain torch backward, not against the report.

Only a chain the theory describes gets a stretch: fully-connected layers with one pointwise
activation, each feeding the next alone; a skip around a layer (x + f(x)) or a norm after it
breaks the mean-field recursion, and such a network gets no prediction rather than a wrong one.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module
from gradhealth.analysis import theory

WIDTH, DEPTH, BATCH = 128, 16, 64


class Chain(nn.Module):
    """DEPTH tanh layers at Var(W) = gain / fan_in, zero biases; ``skip`` adds x + f(x)."""

    def __init__(self, gain: float, skip: bool = False, norm: bool = False) -> None:
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH))
        self.norms = nn.ModuleList(nn.LayerNorm(WIDTH) for _ in range(DEPTH)) if norm else None
        for layer in self.fc:
            nn.init.normal_(layer.weight, std=math.sqrt(gain / WIDTH))
            nn.init.zeros_(layer.bias)
        self.out = nn.Linear(WIDTH, 10)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.fc):
            h = layer(x)
            if self.norms is not None:
                h = self.norms[i](h)
            h = torch.tanh(h)
            x = x + h if self.skip else h
        return self.out(x)


def _grad_ratio(model: Chain, x: torch.Tensor) -> float:
    """||dL/dh_first|| / ||dL/dh_last|| of the layers' outputs, by a plain backward."""
    outs: list[torch.Tensor] = []

    def keep(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        out.retain_grad()
        outs.append(out)

    hooks = [m.register_forward_hook(keep) for m in model.fc]
    loss = F.cross_entropy(model(x), torch.randint(0, 10, (x.shape[0],)))
    loss.backward()
    for h in hooks:
        h.remove()
    return float(outs[0].grad.norm() / outs[-1].grad.norm())


@pytest.mark.parametrize("gain", [0.5, 3.0])
def test_a_plain_tanh_chain_gets_the_theory_its_weights_give(gain: float) -> None:
    torch.manual_seed(0)
    model, x = Chain(gain), torch.randn(BATCH, WIDTH)
    doc = check_module(model, x, seeds=1, verify=False)
    [stretch] = doc.theory.stretches
    assert stretch.layers == ["fc.0", f"fc.{DEPTH - 1}"] and stretch.depth == DEPTH
    assert stretch.activation == "tanh"
    # sigma_w^2 read from the weights themselves (the first layer's is the input's, left out)
    drawn = sum(float(m.weight.detach().var(unbiased=False)) * WIDTH for m in model.fc[1:]) / (DEPTH - 1)
    assert stretch.sigma_w2 == pytest.approx(drawn, rel=1e-3)
    assert stretch.phase == ("ordered" if gain < 1 else "chaotic")
    q_star = theory.fixed_point("tanh", stretch.sigma_w2, stretch.sigma_b2)
    assert stretch.chi1 == pytest.approx(theory.chi1("tanh", q_star, stretch.sigma_w2), rel=1e-6)
    # the measured ratio is the network's own, and the prediction is near it (a 128-wide net)
    torch.manual_seed(1)
    independent = _grad_ratio(Chain(gain), x)
    assert math.log10(stretch.measured_ratio) == pytest.approx(math.log10(independent), abs=0.35)
    assert abs(stretch.log10_error) < 0.35
    assert doc.theory.critical and doc.theory.critical[0].critical_sigma_w2 == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("kind", ["skip", "norm"])
def test_a_chain_the_theory_does_not_describe_gets_no_stretch(kind: str) -> None:
    # a residual stack's gradient does not shrink chi1 per layer (a plain-chain prediction there
    # was 8 decades off); a norm after each layer resets the scale the recursion carries
    torch.manual_seed(0)
    model = Chain(0.5, skip=kind == "skip", norm=kind == "norm")
    doc = check_module(model, torch.randn(BATCH, WIDTH), seeds=1, verify=False)
    assert doc.theory.stretches == []
