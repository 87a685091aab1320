"""modsweep49 #2: a hypernetwork's convolutions (kernels computed in forward by another network and
applied with F.conv2d) are no layer of the live door's table, and its healthy summary counted "5 layers"
of a 40-layer network without saying so. The summary now counts the layer functions on computed
kernels that were not measured; a kernel the model holds, or computes from one parameter of its shape
(a scaled or standardised weight), is measured as a layer and not counted there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradhealth.library import check_module


class HyperConvNet(nn.Module):
    """``generated`` 3x3 convolutions whose kernels a small hypernetwork makes from a learned
    embedding per layer (Ha et al.'s scheme), then a readout; ``held`` more convs on Parameters."""

    def __init__(self, generated: int, held: int = 0, channels: int = 4) -> None:
        super().__init__()
        self.c = channels
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.z = nn.ParameterList(nn.Parameter(torch.randn(8)) for _ in range(generated))
        self.hyper = nn.Linear(8, channels * channels * 9)
        self.held = nn.ParameterList(nn.Parameter(torch.randn(channels, channels, 3, 3) * 0.2) for _ in range(held))
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(generated + held))
        self.head = nn.Linear(channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        k = 0
        for z in self.z:
            kernel = self.hyper(z).view(self.c, self.c, 3, 3)
            h = F.relu(self.norms[k](F.conv2d(h, kernel, padding=1)))
            k += 1
        for w in self.held:
            h = F.relu(self.norms[k](F.conv2d(h, w, padding=1)))
            k += 1
        return self.head(h.mean(dim=(2, 3)))


def _check(net: nn.Module) -> str:
    torch.manual_seed(0)
    return check_module(net, torch.randn(8, 3, 8, 8), loss="cross_entropy", seeds=1, verify=False).summary


def test_generated_convolutions_are_counted_as_not_measured() -> None:
    torch.manual_seed(0)
    summary = _check(HyperConvNet(generated=6))
    assert "6 convolutions whose kernels the forward computes" in summary
    assert "not measured" in summary


def test_convolutions_on_held_kernels_are_measured_and_not_counted_as_left_out() -> None:
    torch.manual_seed(0)
    summary = _check(HyperConvNet(generated=0, held=3))
    assert "the forward computes" not in summary
    torch.manual_seed(0)
    mixed = _check(HyperConvNet(generated=2, held=3))
    assert "2 convolutions whose kernels the forward computes" in mixed
