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


class CutRecurrence(nn.Module):
    """An LSTM read at its last step whose recurrent weights are 0: h_{t-1} feeds nothing, so no
    dL/dh_t reaches any step before the last (Keras' recurrent_initializer='zeros')."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 2)
        with torch.no_grad():
            self.rnn.weight_hh_l0.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def test_a_recurrence_that_passes_nothing_back_is_vanishing_through_time() -> None:
    torch.manual_seed(0)
    model, x = CutRecurrence(), torch.randn(8, 60, 8)
    # independently: every dL/dh_t before the last is exactly 0
    rnn = model.rnn
    h, c = torch.zeros(1, 8, 16), torch.zeros(1, 8, 16)
    states = []
    for t in range(x.shape[1]):
        _, (h, c) = rnn(x[:, t:t + 1], (h, c))
        h.retain_grad()
        states.append(h)
    model.head(states[-1][0]).sum().backward()
    assert all(float(s.grad.abs().max()) == 0.0 for s in states[:-1]) and float(states[-1].grad.abs().max()) > 0
    doc = check_module(model, x, seeds=1)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    assert f.severity == "warning"  # a gated cell: its cell state may still carry memory
