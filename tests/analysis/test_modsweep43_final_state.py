"""modsweep43 (6): an LSTM encoder read only at its final state (h_n, c_n), as a seq2seq model hands
it to its decoder, is not "read at every step": what its recurrence carries back is the final
state's gradient, cell included, which is exactly its dL/dh_t. Numbers from torch autograd on the
cell stepped by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth


class _Seq2Seq(nn.Module):
    """An encoder LSTM whose per-step outputs are never used: the decoder starts from its (h_n, c_n)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.LSTM(8, 32)
        self.dec = nn.LSTM(8, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, (h, c) = self.enc(x)
        out, _ = self.dec(y, (h, c))
        return self.head(out).reshape(-1, 5)


def _encoder_ratio(net: _Seq2Seq, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> float:
    """||dL/dh_0|| / ||dL/dh_{T-2}|| of the encoder, its cell stepped by hand with its own weights."""
    w = [p for p in (net.enc.weight_ih_l0, net.enc.weight_hh_l0, net.enc.bias_ih_l0, net.enc.bias_hh_l0)]
    h = torch.zeros(x.shape[1], 32, dtype=x.dtype)
    c = torch.zeros_like(h)
    hs = []
    for t in range(x.shape[0]):
        h, c = torch.lstm_cell(x[t], (h, c), *w)
        hs.append(h)
    out, _ = net.dec(y, (h.unsqueeze(0), c.unsqueeze(0)))
    loss = nn.functional.cross_entropy(net.head(out).reshape(-1, 5), target)
    g0, g = torch.autograd.grad(loss, [hs[0], hs[-2]])
    return float(g0.norm() / g.norm())


def test_an_encoder_read_only_at_its_final_state_is_judged_by_its_own_gradient() -> None:
    torch.manual_seed(0)
    net = _Seq2Seq().double()
    x = torch.randn(20, 4, 8, dtype=torch.float64)
    y = torch.randn(6, 4, 8, dtype=torch.float64)
    target = torch.randint(0, 5, (24,))
    expected = _encoder_ratio(net, x, y, target)
    assert expected < 1e-2  # independent: a default LSTM over 20 steps, read only at its end
    doc = gradhealth.check_module(net, (x, y), loss="cross_entropy", targets=target, seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time" and f.evidence.layers == ["enc"]]
    extra = f.evidence.model_dump()
    # dL/dh_t: the loss reads no step but the last (the cell's gradient was left out of the
    # "carried" figure, which then differed and read as "the loss reads more steps")
    assert extra["measured"] == "dL/dh_t"
    assert f.evidence.value == pytest.approx(expected, rel=0.05)
    assert "gradient of its own" not in f.explanation and "reads this layer at every step" not in f.explanation


class _Pooled(nn.Module):
    """The control: an LSTM whose every step's output the head reads (a mean over time)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.LSTM(8, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.enc(x)
        return self.head(out.mean(0))


def test_an_lstm_read_at_every_step_is_still_said_to_get_a_gradient_of_its_own() -> None:
    torch.manual_seed(0)
    net = _Pooled().double()
    x = torch.randn(20, 4, 8, dtype=torch.float64)
    doc = gradhealth.check_module(net, x, loss="cross_entropy", targets=torch.randint(0, 5, (4,)), seeds=1,
                                  verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    assert f.evidence.model_dump()["measured"] == "carried" and "gradient of its own" in f.explanation
