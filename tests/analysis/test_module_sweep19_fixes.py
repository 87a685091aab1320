"""What the nineteenth module sweep (models labelled by peer tools and textbooks) found: a swap of
every sigmoid for a ReLU also swapped the output's own sigmoid, so the one verified fix for a deep
sigmoid net came with an output the loss cannot read and was not recommended."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


def test_the_relu_swap_keeps_the_outputs_own_sigmoid() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 1), nn.Sigmoid())
    doc = check_module(model, torch.randn(64, 32), loss="mse", seeds=1)
    [vanishing] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    [swap] = [r for r in vanishing.remedies if r.id == "relu_family_activation"]
    assert "the output's sigmoid after 24 (Linear) kept" in swap.change
    # verified on the network with its output squashing as it was: fixed, nothing new
    assert swap.verified is not None and swap.verified.fixed and swap.verified.side_effects == []
    assert swap.recommended and vanishing.remedies[0] is swap
