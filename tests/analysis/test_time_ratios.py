"""The through-time ratio of a recurrent (sub)layer's dL/dh_t, from its first step to its last."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.findings import time_ratios
from gradhealth.analysis.simulate import TimeSeries
from gradhealth.library import check_module


def _ratios(norms: np.ndarray) -> list:
    return time_ratios(SimpleNamespace(time_series=[TimeSeries("rnn", 1, norms)]))  # type: ignore[arg-type]


def test_steps_no_gradient_reaches_are_not_the_end_of_the_path() -> None:
    # the backward direction of a bidirectional layer read at its last position: only its first
    # processed step feeds the loss; dividing by the zeros after it was an infinite "explosion"
    norms = np.zeros((3, 30))
    norms[:, 0] = 0.138
    assert _ratios(norms) == []
    # a path that ends early is judged to its last step with a gradient
    norms[:, :10] = 0.5 ** np.arange(10)[::-1]
    [(_, _, ratio, steps)] = _ratios(norms)
    assert steps == 11 and ratio == pytest.approx(0.5 ** 9 / 1.0)
    # and a full path as before
    full = np.tile(2.0 ** -np.arange(30)[::-1], (3, 1))
    [(_, _, ratio, steps)] = _ratios(full)
    assert steps == 30 and ratio == pytest.approx(2.0 ** -28)


def test_a_bidirectional_gru_read_at_its_last_position_has_no_infinite_ratio() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(8, 16, 2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x)[0][:, -1])
    doc = check_module(Net(), torch.randn(8, 20, 8), verify=False)
    for f in doc.findings:
        assert f.evidence.value is None or math.isfinite(f.evidence.value), f.summary
