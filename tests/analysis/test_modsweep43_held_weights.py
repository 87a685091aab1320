"""modsweep43 (7, 8): a weight tiled over the batch by copies (``torch.cat([W] * B)``,
``W.repeat``) is measured as the layer it is, as ``W.expand`` already was; an init remedy that is
not verified names the parameters the forward uses directly, not a stock example."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth


class _Capsules(nn.Module):
    """A 2017 capsule layer's votes u_hat = W u, its weight [1, N, out, d_out, d_in] tiled over the
    batch by ``tile``: "cat" (torch.cat([W] * B)), "repeat" or "expand" (a view, the control)."""

    def __init__(self, tile: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.primary = nn.Linear(16, 32 * 8)
        self.W = nn.Parameter(torch.randn(1, 32, 10, 16, 8, generator=g) * 0.1)
        self.tile = tile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        u = self.primary(x).view(b, 32, 1, 8, 1).expand(b, 32, 10, 8, 1)
        if self.tile == "cat":
            w = torch.cat([self.W] * b, dim=0)
        elif self.tile == "repeat":
            w = self.W.repeat(b, 1, 1, 1, 1)
        else:
            w = self.W.expand(b, -1, -1, -1, -1)
        return torch.matmul(w, u).sum(1).squeeze(-1).norm(dim=-1)  # capsule lengths as logits


def _layers(tile: str) -> dict[str, tuple[float, float]]:
    torch.manual_seed(0)
    doc = gradhealth.check_module(_Capsules(tile), torch.randn(8, 16), loss="cross_entropy", seeds=1, verify=False)
    return {layer.name: (layer.grad_norm, layer.output_grad_norm) for layer in doc.layers}


@pytest.mark.parametrize("tile", ["cat", "repeat"])
def test_a_weight_tiled_over_the_batch_by_copies_is_measured_as_its_expand_is(tile: str) -> None:
    # the same values and the same gradient as W.expand(B, ...): the same layer, the same figures
    # (the copies' gradient reaches W through a cat or repeat, which no layer hook saw: W was missing)
    expanded = _layers("expand")
    assert "W" in expanded
    copied = _layers(tile)
    assert "W" in copied
    assert copied["W"] == pytest.approx(expanded["W"], rel=1e-9)


class _RawProducts(nn.Module):
    """Six tanh layers x @ w over raw parameters (no nn.Linear), at a small gain: the gradient
    shrinks through them, so init remedies are offered."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.route_weights = nn.ParameterList(
            [nn.Parameter(torch.randn(64, 64, generator=g) * 0.3 / 8) for _ in range(6)])
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w in self.route_weights:
            x = torch.tanh(x @ w)
        return self.head(x)


def test_an_unverified_init_remedy_names_the_parameters_the_forward_uses_directly() -> None:
    torch.manual_seed(0)
    doc = gradhealth.check_module(_RawProducts(), torch.randn(32, 64), loss="cross_entropy", seeds=1)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    [init] = [r for r in f.remedies if r.id == "xavier_init"]
    assert init.verified is None and "not verified on this network" in init.change
    # what this model has (x @ w on its own parameters), not "F.linear", which it never calls
    assert "route_weights.0" in init.change and "F.linear" not in init.change
