"""simulation.batch_size is the batch, not a sequence-first input's length (modsweep34 u04)."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


class Seq(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4, 2, batch_first=batch_first)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0])


def test_sequence_first_lstm_batch() -> None:
    torch.manual_seed(0)
    doc = check_module(Seq(False), torch.randn(5, 64, 3), loss="mse", seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.batch_size == 64


def test_batch_first_lstm_batch() -> None:
    torch.manual_seed(0)
    doc = check_module(Seq(True), torch.randn(64, 5, 3), loss="mse", seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.batch_size == 64
