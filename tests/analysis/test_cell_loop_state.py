"""A recurrent cell stepped in a forward's own Python loop (``h, c = cell(x[:, t], (h, c))``) carries
its whole state: an LSTMCell's c as well as its h. A model reading the final (h, c) is read at its
last step alone; its carried gradient is its dL/dh_t, not a figure missing c_{T-1}'s gradient that
then read as "the loss reads more steps" (a note that each step gets "a gradient of its own").
Numbers from torch autograd on the same weights, stepped by hand with ``torch.lstm_cell``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth

HIDDEN, STEPS = 32, 20


class _CellLoop(nn.Module):
    """A cell looped over time; ``read``: what the head reads (the final h and c, or every step's h)."""

    def __init__(self, kind: str = "lstm", read: str = "final", tuple_state: bool = False) -> None:
        super().__init__()
        self.kind, self.read, self.tuple_state = kind, read, tuple_state
        self.cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}[kind](8, HIDDEN)
        both = kind == "lstm" and read == "final"
        self.fc = nn.Linear(2 * HIDDEN if both else HIDDEN, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], HIDDEN, dtype=x.dtype)
        c = torch.zeros_like(h)
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        hs = []
        for t in range(x.shape[1]):
            if self.kind != "lstm":
                h = self.cell(x[:, t], h)
            elif self.tuple_state:  # the state handed on as the tuple the cell returned
                state = self.cell(x[:, t], state)
                h, c = state
            else:
                h, c = self.cell(x[:, t], (h, c))
            hs.append(h)
        if self.read == "every":
            return self.fc(torch.stack(hs, 1).mean(1))
        return self.fc(torch.cat([h, c], -1) if self.kind == "lstm" else h)


def _by_hand(net: _CellLoop, x: torch.Tensor) -> float:
    """||dL/dh_0|| / ||dL/dh_{T-2}||, the cell stepped by hand with its own weights."""
    cell = net.cell
    w = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    h = torch.zeros(x.shape[0], HIDDEN, dtype=x.dtype)
    c = torch.zeros_like(h)
    hs = []
    for t in range(x.shape[1]):
        if net.kind == "lstm":
            h, c = torch.lstm_cell(x[:, t], (h, c), *w)
        elif net.kind == "gru":
            h = torch.gru_cell(x[:, t], h, *w)
        else:
            h = torch.rnn_tanh_cell(x[:, t], h, *w)
        hs.append(h)
    logits = net.fc(torch.cat([h, c], -1) if net.kind == "lstm" else h)
    g0, g = torch.autograd.grad(logits.sum(), [hs[0], hs[-2]])
    return float(g0.norm() / g.norm())


def _levels() -> torch.Tensor:
    """An input of a few levels, which the check uses as given (it draws a standard normal one in place
    of a continuous example): so the hand-stepped cell reads the very batch the check does."""
    return torch.randint(-2, 3, (4, STEPS, 8)).to(torch.float64)


def _through_time(net: nn.Module, x: torch.Tensor) -> gradhealth.Finding:
    # the loss: the output's sum (no targets the check would draw)
    doc = gradhealth.check_module(net, x, loss="sum", seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time" and f.evidence.layers == ["cell"]]
    return f


@pytest.mark.parametrize(("kind", "tuple_state"), [("lstm", False), ("lstm", True), ("gru", False),
                                                   ("rnn", False)])
def test_a_cell_loop_read_at_its_final_state_is_judged_by_its_own_gradient(kind: str, tuple_state: bool) -> None:
    torch.manual_seed(0)
    net = _CellLoop(kind, tuple_state=tuple_state).double()
    x = _levels()
    expected = _by_hand(net, x)
    assert expected < 1e-3  # independent: a default cell over 20 steps, read only at its end
    f = _through_time(net, x)
    extra = f.evidence.model_dump()
    # the loss reads no step but the last: c_{T-1}'s gradient is carried back with h_{T-1}'s
    assert extra["measured"] == "dL/dh_t"
    assert f.evidence.value == pytest.approx(expected, rel=0.05)
    assert "gradient of its own" not in f.explanation and "reads this layer at every step" not in f.explanation


def test_a_cell_loop_read_at_every_step_still_gets_a_gradient_of_its_own() -> None:
    """The control: a head over every step's h (a mean over time) reads more steps than the last."""
    torch.manual_seed(0)
    net = _CellLoop("lstm", read="every").double()
    x = _levels()
    f = _through_time(net, x)
    assert f.evidence.model_dump()["measured"] == "carried" and "gradient of its own" in f.explanation
