"""onnxsweep13 u01: a gated cell (LSTM/GRU) as good as default gates was a ``vanishing_through_time``
note at any length, so a 2-layer LSTM over 4001 steps read at its last step alone (1e-58 of the
gradient at step 0) read as healthy. Past ``rules.GATED_PRACTICAL_STEPS`` (1,000) steps that learn
through the recurrence alone it is a warning: default-initialised LSTMs do not learn dependencies
that long in practice (the copy and adding tasks). 50-500-step gated classifiers stay notes
(tests/analysis/test_gated_horizon.py)."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.rules import GATED_PRACTICAL_STEPS
from gradhealth.library import check_module


class _LastStep(nn.Module):
    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def _finding(cell: type[nn.RNNBase], steps: int, forget_bias: float | None = None) -> tuple[str, dict]:
    torch.manual_seed(0)
    rnn = cell(4, 8, batch_first=True)
    if forget_bias is not None:  # an LSTM's forget gate opened: (i, f, g, o) blocks of its biases
        with torch.no_grad():
            rnn.bias_ih_l0[8:16] = forget_bias
            rnn.bias_hh_l0[8:16] = 0.0
    model = _LastStep(rnn)
    doc = check_module(model, torch.randn(8, steps, 4), seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    return f.severity, f.evidence.model_dump()


def test_an_lstm_with_good_gates_read_only_at_the_end_of_1100_steps_is_a_warning() -> None:
    # a forget bias of 3 (sigmoid 0.95, u01's 0.951 a step) keeps more than default gates, so the cell
    # was a note; but 1098 >= 1000 steps learn only through the recurrence, and even 0.95 a step
    # leaves 0.95^1098 = 4e-25 of the gradient at step 0, under the 1e-2 threshold
    severity, ev = _finding(nn.LSTM, 1100, forget_bias=3.0)
    assert ev["gates_shut"] is False and ev["per_step_factor"] > 0.6
    assert ev["value"] < 1e-2
    assert severity == "warning"
    assert ev["unread_stretch_steps"] == 1098 >= GATED_PRACTICAL_STEPS


def test_the_same_lstm_over_500_steps_stays_a_note() -> None:
    severity, ev = _finding(nn.LSTM, 500, forget_bias=3.0)
    assert severity == "info" and ev["value"] < 1e-2
    assert "unread_stretch_steps" not in ev


def test_a_default_gru_over_500_steps_stays_a_note() -> None:
    severity, ev = _finding(nn.GRU, 500)
    assert severity == "info"
    assert "unread_stretch_steps" not in ev
