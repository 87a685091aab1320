"""What the fifteenth live-module sweep found: a LoRA adapter's zero-initialised B, scaled by alpha / r
before the add, was no branch end, so its design read as a vanishing error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_module


class _LoRA(nn.Module):
    """A frozen base layer plus B(A(x)) * scale, B zero-initialised (PEFT's)."""

    def __init__(self, width: int, scale: float | None, rank: int = 8) -> None:
        super().__init__()
        self.base, self.A = nn.Linear(width, width), nn.Linear(width, rank, bias=False)
        self.B = nn.Linear(rank, width, bias=False)
        nn.init.zeros_(self.B.weight)
        self.scale = scale
        for p in self.base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.B(self.A(x))
        return self.base(x) + (branch if self.scale is None else branch * self.scale)


class _Adapted(nn.Module):
    def __init__(self, scale: float | None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_LoRA(32, scale) for _ in range(4))
        self.head = nn.Linear(32, 5)
        for p in self.head.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x)


@pytest.mark.parametrize("scale", [None, 2.0, 1.0])
def test_a_zero_initialised_lora_b_scaled_before_the_add_is_the_design(scale: float | None) -> None:
    torch.manual_seed(0)
    doc = check_module(_Adapted(scale), torch.randn(16, 32), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "info" and f.evidence.model_dump().get("zero_branch_ends") is True
