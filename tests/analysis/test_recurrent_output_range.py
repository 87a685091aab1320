"""A recurrent layer's hidden state ending the network is bounded by its cell: under a regression
loss its range is checked against the targets (modsweep34 u04: nn.LSTM(3, 4, 3) under mse)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth import check_architecture, check_module


class Rnn(nn.Module):
    def __init__(self, cell: type[nn.RNNBase]) -> None:
        super().__init__()
        self.rnn = cell(3, 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


# standard-normal targets outside (-1, 1): erfc(1 / sqrt(2)) = 0.3173
OUTSIDE = math.erfc(1 / math.sqrt(2))


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_module_recurrent_output_under_mse(cell: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    doc = check_module(Rnn(cell), torch.randn(2, 16, 3), loss="mse", seeds=1, verify=False)
    found = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    ev = found.evidence.model_dump()
    assert ev["output_range"] == [-1.0, 1.0]
    assert ev["value"] == pytest.approx(OUTSIDE, rel=1e-6)


def test_spec_recurrent_output_under_mse() -> None:
    spec = {"input": {"shape": [5, 3]}, "batch_size": 16, "seeds": 1, "loss": "mse",
            "layers": [{"type": "lstm", "hidden_size": 4}]}
    doc = check_architecture(spec)
    found = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    assert found.evidence.model_dump()["value"] == pytest.approx(OUTSIDE, rel=1e-6)
