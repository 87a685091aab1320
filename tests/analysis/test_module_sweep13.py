"""What the thirteenth live-module sweep found: an activation on a residual branch was folded into the
layer whose output the stream carries on, so that layer's gradient was read as the branch's share."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module


class _PreActivationResidual(nn.Module):
    """stem -> blocks h = h + W2 relu(W1 relu(h)) (a small branch, no norm) -> mid -> blocks -> head:
    the activation on each branch reads the stream, which also goes on past the block."""

    def __init__(self, blocks: int = 4, width: int = 64) -> None:
        super().__init__()
        self.stem, self.mid, self.head = nn.Linear(32, width), nn.Linear(width, width), nn.Linear(width, 10)
        self.w1 = nn.ModuleList(nn.Linear(width, width) for _ in range(2 * blocks))
        self.w2 = nn.ModuleList(nn.Linear(width, width) for _ in range(2 * blocks))
        with torch.no_grad():
            for w in self.w2:
                w.weight.mul_(0.01)
        self.blocks = blocks

    def run(self, h: torch.Tensor, ks: range) -> torch.Tensor:
        for k in ks:
            h = h + self.w2[k](F.relu(self.w1[k](F.relu(h))))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.run(self.stem(x), range(self.blocks))
        return self.head(self.run(self.mid(h), range(self.blocks, 2 * self.blocks)))


def test_a_layer_whose_output_a_branch_activation_reads_is_read_on_the_stream() -> None:
    torch.manual_seed(0)
    model = _PreActivationResidual()
    doc = check_module(model, torch.randn(64, 32), seeds=1, verify=False)
    layers = {layer.name: layer for layer in doc.layers}
    assert layers["stem"].activation is None and layers["mid"].activation is None
    assert not [f for f in doc.findings if f.code in ("vanishing_gradient", "exploding_gradient")]
    # the independent reading: autograd on the stream, float64, a batch of the same size
    m = model.double()
    x = torch.randn(64, 32, dtype=torch.float64)
    stem = m.stem(x)
    stem.retain_grad()
    mid = m.mid(m.run(stem, range(4)))
    mid.retain_grad()
    F.cross_entropy(m.head(m.run(mid, range(4, 8))), torch.randint(0, 10, (64,))).backward()
    truth = float(stem.grad.norm() / mid.grad.norm())
    assert layers["stem"].output_grad_norm / layers["mid"].output_grad_norm == pytest.approx(truth, rel=0.3)
    # an activation only its branch reads stays the layer's, as before
    assert layers["w1.0"].activation == "relu"
