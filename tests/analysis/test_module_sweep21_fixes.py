"""What the twenty-first module sweep (modules labelled by papers and mean-field theory) found."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


def test_a_norm_shifted_far_below_zero_is_fixed_by_zeroing_the_shift() -> None:
    # BatchNorm's beta at -3: its output is ~N(-3, 1), so the ReLUs after it are off for almost every
    # sample; the Linear biases were zeroed and nothing changed (0.973 -> 0.973)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 64
    for _ in range(5):
        bn = nn.BatchNorm1d(256)
        nn.init.constant_(bn.bias, -3.0)
        layers += [nn.Linear(width, 256), bn, nn.ReLU()]
        width = 256
    doc = check_module(nn.Sequential(*layers, nn.Linear(256, 10)), torch.randn(32, 64), loss="cross_entropy",
                       seeds=1)
    [f] = [f for f in doc.findings if f.code == "dead_units"]
    [zero] = [r for r in f.remedies if r.id == "zero_bias"]
    assert "shifts" in zero.change and zero.verified is not None and zero.verified.fixed
    assert zero.verified.after is not None and zero.verified.after < 0.5 * zero.verified.before
