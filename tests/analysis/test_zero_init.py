"""Branches switched off at initialisation by design.

timm's and torchvision's ResNets start each residual branch's last norm scale at zero
(``zero_init_last``, Goyal et al. 2017): at init every block is the identity, and a
squeeze-excitation gate after that norm multiplies zeros, so its two layers get exactly no
gradient. That is not the end of the network's depth: the depth ratio ends at the last layer any
gradient reaches (read to the gate, 0 there was an infinite "explosion")."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module


class SEBlock(nn.Module):
    """conv-BN-ReLU, conv-BN (scale 0 at init), squeeze-excitation, plus the input, ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        nn.init.zeros_(self.bn2.weight)
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return torch.relu(x + y * gate)


def test_a_gate_that_multiplies_a_zero_initialised_branch_does_not_end_the_depth() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *[SEBlock(8) for _ in range(3)],
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    doc = check_module(net, torch.randn(8, 3, 8, 8), seeds=2, verify=False)
    units = {u.name: u for u in doc.layers}
    # the gates get exactly no gradient at init: their input is the zeroed branch
    assert units["3.fc2"].output_grad_norm == 0 and units["3.fc1"].output_grad_norm == 0
    assert doc.status == "healthy", doc.summary
    # the depth read ends at the last block's second convolution, which the gradient reaches
    stem, last = units["0"].output_grad_norm, units["3.conv2"].output_grad_norm
    assert stem and last and 0.1 < stem / last < 10


def test_units_switched_off_by_a_zero_initialised_layer_are_not_dead() -> None:
    # NF-Nets start a block's last convolution at zero, and a squeeze-excitation reads it: the
    # excitation's ReLU layer gets exactly 0 as input. Its units are off, not dead (dead units
    # get inputs that make them negative for every sample, and stay so); the layer before them
    # revives them as it learns. With a live input, the same negative bias kills them.
    class Gated(nn.Module):
        def __init__(self, bias: float) -> None:
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.last = nn.Conv2d(8, 8, 1)
            nn.init.zeros_(self.last.weight)
            nn.init.zeros_(self.last.bias)
            self.fc1, self.fc2 = nn.Linear(8, 4), nn.Linear(4, 8)
            nn.init.constant_(self.fc1.bias, bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.last(torch.relu(self.conv(x)))
            s = torch.relu(self.fc1(y.mean((2, 3))))
            return x + y * torch.sigmoid(self.fc2(s))[:, :, None, None]

    def fc1_dead(bias: float, zero: bool = True) -> float | None:
        torch.manual_seed(0)
        blocks = [Gated(bias), Gated(bias)]
        if not zero:
            for block in blocks:
                nn.init.normal_(block.last.weight)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *blocks,
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
        doc = check_module(net, torch.randn(8, 3, 8, 8), seeds=1, verify=False)
        if zero:
            assert "dead_units" not in {f.code for f in doc.findings}, doc.summary
        return {u.name: u for u in doc.layers}["1.fc1"].dead_fraction

    assert fc1_dead(0.0) == 0.0  # exactly 0 everywhere: off
    assert fc1_dead(-1.0) == 0.0  # its input is 0: still off, whatever its bias
    assert fc1_dead(-100.0, zero=False) == 1.0  # a live input and that bias: dead


class _Thresholded(nn.Module):
    """Linear layers, each followed by torch.where(h > 5, h, 0): at unit-variance
    pre-activations every unit is 0 in every sample, so no gradient passes any layer."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(4))
        self.head, self.threshold = nn.Linear(32, 5), threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(x)
            x = torch.where(h > self.threshold, h, torch.zeros_like(h))
        return self.head(x)


def test_a_trunk_no_gradient_reaches_through_a_weighted_head_vanishes() -> None:
    # msweep4: every hidden layer's output gradient exactly 0; read as 0/0 it said nothing
    torch.manual_seed(0)
    doc = check_module(_Thresholded(5.0), torch.randn(16, 32), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error" and f.evidence.value == 0.0
    assert all(u.output_grad_norm == 0 for u in doc.layers if u.name.startswith("layers."))
    # the same network thresholded at 0 (a ReLU written with where) passes its gradient
    torch.manual_seed(0)
    assert not check_module(_Thresholded(0.0), torch.randn(16, 32), seeds=2, verify=False).findings
