"""modsweep25: a hand-written gated cell over few steps, read at every step, is a note, as torch's
LSTM is; the read-every-step rule lowers a severity, never raises one."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.library import check_module


class _HandLSTM(nn.Module):
    """An LSTM cell written by hand (one Linear for the four gates, as ConvLSTMs do), its hidden
    state pooled over every step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps, self.hidden = steps, 16
        self.gates = nn.Linear(8 + 16, 4 * 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = x.new_zeros(x.shape[0], self.hidden)
        outs = []
        for t in range(self.steps):
            i, f, g, o = self.gates(torch.cat([x[:, t], h], -1)).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return self.head(torch.stack(outs, 1).mean(1))


def test_a_hand_written_gated_cell_read_at_every_step_over_few_steps_is_a_note() -> None:
    torch.manual_seed(0)
    doc = check_module(_HandLSTM(10), torch.randn(8, 10, 8), seeds=1, verify=False)
    found = [f for f in doc.findings if f.code == "vanishing_through_time"]
    assert all(f.severity == "info" for f in found), [(f.severity, f.summary) for f in found]
    assert doc.status == "healthy"
