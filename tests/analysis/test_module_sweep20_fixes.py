"""What the twentieth module sweep (models labelled by papers and mean-field theory) found."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


class _DeepAutoencoder(nn.Module):
    """Hinton & Salakhutdinov's deep autoencoder with small weights: logistic units called as
    functions in forward, the last one the reconstruction's own range."""

    def __init__(self) -> None:
        super().__init__()
        sizes = [64, 128, 64, 32, 8, 32, 64, 128, 64]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        for layer in self.layers:
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i != 3:  # the code layer is linear
                x = torch.sigmoid(x)
        return x


def test_the_relu_swap_keeps_an_output_sigmoid_called_as_a_function() -> None:
    torch.manual_seed(0)
    doc = check_module(_DeepAutoencoder(), torch.rand(64, 64), loss="mse", seeds=1)
    [vanishing] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    [swap] = [r for r in vanishing.remedies if r.id == "relu_family_activation"]
    assert "the output's sigmoid after layers.7 kept" in swap.change
    # verified with the reconstruction still squashed into (0, 1): fixed, and nothing new
    assert swap.verified is not None and swap.verified.fixed and swap.verified.side_effects == []
    assert swap.recommended
