"""One step of a recurrent cell, as every door runs it when it reads dL/dh_t.

PyTorch's own cell kernels where PyTorch's cell is the layer's (the same arithmetic as the fused
``nn.LSTM``/``nn.GRU``/``nn.RNN``); else the cell written out here, in PyTorch's weight layout:
gates other than the sigmoid (Keras' ``hard_sigmoid``, whose slope Keras 3 changed) and the GRU
that applies its reset gate before the recurrent product (Cho et al. 2014; Keras 2.2's default).
A module says which cell it is by two attributes (:func:`mark`), so a recurrent module keeps its
type (``nn.LSTM``...) and every reader of torch modules still knows it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["cell_of", "gate", "gru_cell", "lstm_cell", "mark", "run_fused", "runs_itself", "step"]


def gate(name: str, x: torch.Tensor) -> torch.Tensor:
    """A recurrent gate's activation (spec ``recurrent_activation``)."""
    if name == "hard_sigmoid":
        return F.hardsigmoid(x)  # relu6(x + 3) / 6: PyTorch's, and Keras 3's
    if name == "hard_sigmoid_keras2":
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)
    return torch.sigmoid(x)


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weights: list[torch.Tensor | None],
              gate_activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step in PyTorch's layout (gates i, f, g, o) with ``gate_activation`` on i, f, o."""
    w_ih, w_hh, b_ih, b_hh = weights
    assert w_ih is not None and w_hh is not None
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, 1)
    c = gate(gate_activation, f) * c + gate(gate_activation, i) * torch.tanh(g)
    return gate(gate_activation, o) * torch.tanh(c), c


def gru_cell(x: torch.Tensor, h: torch.Tensor, weights: list[torch.Tensor | None], gate_activation: str,
             reset_after: bool) -> torch.Tensor:
    """One GRU step in PyTorch's layout (gates r, z, n). ``reset_after=False``: the reset gate
    multiplies h before the candidate's recurrent product, not the product."""
    w_ih, w_hh, b_ih, b_hh = weights
    assert w_ih is not None and w_hh is not None
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, 1)
    w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
    b_hr, b_hz, b_hn = b_hh.chunk(3, 0) if b_hh is not None else (None, None, None)
    r = gate(gate_activation, xr + F.linear(h, w_hr, b_hr))
    z = gate(gate_activation, xz + F.linear(h, w_hz, b_hz))
    n = torch.tanh(xn + (r * F.linear(h, w_hn, b_hn) if reset_after else F.linear(r * h, w_hn, b_hn)))
    return (1 - z) * n + z * h


def mark(rnn: nn.RNNBase, gate_activation: str = "sigmoid", reset_after: bool = True) -> None:
    """Make ``rnn`` an LSTM/GRU with these gates (PyTorch's own: sigmoid, reset after)."""
    setattr(rnn, "gate_activation", gate_activation)  # noqa: B010  # plain attributes of ours,
    setattr(rnn, "reset_after", reset_after)  # noqa: B010  # which torch's classes do not declare


def cell_of(rnn: nn.Module) -> tuple[str, bool]:
    """(gate activation, reset_after) of ``rnn``: what :func:`mark` set, else PyTorch's cell."""
    return str(getattr(rnn, "gate_activation", "sigmoid")), bool(getattr(rnn, "reset_after", True))


def run_fused(rnn: nn.Module) -> bool:
    """PyTorch's fused module computes ``rnn`` (its cell is PyTorch's)."""
    return cell_of(rnn) == ("sigmoid", True)


def runs_itself(rnn: nn.Module) -> bool:
    """``rnn(x)`` computes the layer: torch's fused module with torch's own cell, or a module that
    is not torch's recurrent one (the simulation's UnrolledRNN in its place) and steps itself."""
    return run_fused(rnn) or not isinstance(rnn, nn.RNNBase)


def step(rnn: nn.Module, kind: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
         weights: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) after one step of ``rnn`` (``kind`` lstm, gru or rnn; c is passed through but for an
    LSTM) from input ``x`` with one layer-direction's ``weights`` [w_ih, w_hh, b_ih, b_hh]."""
    gate_activation, reset_after = cell_of(rnn)
    if kind == "lstm":
        # torch's kernel takes h as wide as c; a projected LSTM's h is proj_size wide
        if gate_activation == "sigmoid" and h.shape[-1] == c.shape[-1]:
            return torch.lstm_cell(x, (h, c), *weights)  # type: ignore[arg-type]  # biases may be None, as torch allows
        return lstm_cell(x, h, c, weights, gate_activation)
    if kind == "gru":
        if (gate_activation, reset_after) == ("sigmoid", True):
            return torch.gru_cell(x, h, *weights), c  # type: ignore[arg-type]  # biases may be None, as torch allows
        return gru_cell(x, h, weights, gate_activation, reset_after), c
    if getattr(rnn, "nonlinearity", "tanh") == "relu":
        return torch.rnn_relu_cell(x, h, *weights), c  # type: ignore[arg-type]  # biases may be None, as torch allows
    return torch.rnn_tanh_cell(x, h, *weights), c  # type: ignore[arg-type]  # biases may be None, as torch allows
