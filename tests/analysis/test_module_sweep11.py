"""What the eleventh live-module sweep found, each rebuilt here with plain torch: a first layer born
dead read as an infinite forward growth, and a residual block shared across depth scaled as if it
were summed once."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module


def test_a_first_layer_with_every_unit_dead_is_dead_units_not_an_infinite_growth() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # every pre-activation below 0 for unit-variance inputs
    doc = check_module(model, torch.randn(32, 16), seeds=1)
    codes = {f.code for f in doc.findings}
    assert "dead_units" in codes and "exploding_gradient" not in codes
    assert all(f.evidence.value is None or math.isfinite(f.evidence.value) for f in doc.findings)


class Shared(nn.Module):
    """ALBERT's one feed-forward block applied ``reps`` times, x + W2 gelu(W1 x), at twice He's scale."""

    def __init__(self, reps: int = 24, d: int = 32, hidden: int = 64, scale: float = 2.0) -> None:
        super().__init__()
        self.emb = nn.Linear(8, d)
        self.w1, self.w2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        nn.init.normal_(self.w1.weight, 0, scale * math.sqrt(2 / d))
        nn.init.normal_(self.w2.weight, 0, scale / math.sqrt(hidden))
        self.head = nn.Linear(d, 3)
        self.reps = reps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        for _ in range(self.reps):
            h = h + self.w2(nn.functional.gelu(self.w1(h)))
        return self.head(h)


def test_a_block_shared_across_depth_is_scaled_by_one_over_the_root_of_its_calls() -> None:
    torch.manual_seed(0)
    doc = check_module(Shared(), torch.randn(16, 8), seeds=1)
    [e] = [f for f in doc.findings if f.code == "exploding_gradient"]
    [scaled] = [r for r in e.remedies if r.id == "scaled_residual"]
    v = scaled.verified
    assert v is not None and v.before is not None and v.after is not None
    # 1/sqrt(24) on the shared branch: many decades off, where 1/sqrt(1) (one name) changed nothing
    assert math.log10(v.before) - math.log10(v.after) > 4
