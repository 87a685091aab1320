"""One step of a recurrent cell, as every door runs it when it reads dL/dh_t.

PyTorch's own cell kernels where PyTorch's cell is the layer's (the same arithmetic as the fused
``nn.LSTM``/``nn.GRU``/``nn.RNN``); else the cell written out here, in PyTorch's weight layout:
gates other than the sigmoid (Keras' ``hard_sigmoid``, whose slope Keras 3 changed) and the GRU
that applies its reset gate before the recurrent product (Cho et al. 2014; Keras 2.2's default).
A module says which cell it is by three attributes (:func:`mark`), so a recurrent module keeps its
type (``nn.LSTM``...) and every reader of torch modules still knows it. An LSTM/GRU's own activation
(the candidate's, and an LSTM's on its cell state; tanh in PyTorch) may be another of Keras' (an
``LSTM(activation="relu")`` of the forecasting tutorials: kerassweep13 h05/u06), as may its gates'.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATION_FUNCTIONS", "activate", "cell_of", "gate", "gru_cell", "lstm_cell", "mark", "run_fused",
           "runs_itself", "step"]

#: Keras' activations by name (keras_graph.ACTIVATIONS but softmax), as functions: the ones
#: keras_torch._act_module gives a Dense, so a cell's relu is a Dense's relu.
ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "elu": F.elu, "selu": F.selu, "gelu": F.gelu, "swish": F.silu, "silu": F.silu, "softplus": F.softplus,
    "softsign": F.softsign, "leaky_relu": lambda x: F.leaky_relu(x, 0.2),  # keras.activations' default slope
    "hard_sigmoid": F.hardsigmoid, "hard_swish": F.hardswish, "hard_silu": F.hardswish, "mish": F.mish,
    "exponential": torch.exp,
    "hard_sigmoid_keras2": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
}


def activate(name: str, x: torch.Tensor) -> torch.Tensor:
    """Keras' activation ``name`` of ``x`` (:data:`ACTIVATION_FUNCTIONS`); KeyError for another."""
    return ACTIVATION_FUNCTIONS[name](x)


def gate(name: str, x: torch.Tensor) -> torch.Tensor:
    """A recurrent gate's activation (spec ``recurrent_activation``; hard_sigmoid is relu6(x + 3) / 6,
    PyTorch's and Keras 3's, hard_sigmoid_keras2 0.2x + 0.5): another of Keras' where named, else
    the sigmoid."""
    return ACTIVATION_FUNCTIONS.get(name, torch.sigmoid)(x)


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weights: list[torch.Tensor | None],
              gate_activation: str, activation: str = "tanh") -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step in PyTorch's layout (gates i, f, g, o) with ``gate_activation`` on i, f, o and
    ``activation`` on the candidate and the cell state, as Keras' LSTMCell: c = f c + i act(g),
    h = o act(c)."""
    w_ih, w_hh, b_ih, b_hh = weights
    assert w_ih is not None and w_hh is not None
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, 1)
    c = gate(gate_activation, f) * c + gate(gate_activation, i) * activate(activation, g)
    return gate(gate_activation, o) * activate(activation, c), c


def gru_cell(x: torch.Tensor, h: torch.Tensor, weights: list[torch.Tensor | None], gate_activation: str,
             reset_after: bool, activation: str = "tanh") -> torch.Tensor:
    """One GRU step in PyTorch's layout (gates r, z, n), ``activation`` on the candidate n.
    ``reset_after=False``: the reset gate multiplies h before the candidate's recurrent product,
    not the product."""
    w_ih, w_hh, b_ih, b_hh = weights
    assert w_ih is not None and w_hh is not None
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, 1)
    w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
    b_hr, b_hz, b_hn = b_hh.chunk(3, 0) if b_hh is not None else (None, None, None)
    r = gate(gate_activation, xr + F.linear(h, w_hr, b_hr))
    z = gate(gate_activation, xz + F.linear(h, w_hz, b_hz))
    n = activate(activation, xn + (r * F.linear(h, w_hn, b_hn) if reset_after else F.linear(r * h, w_hn, b_hn)))
    return (1 - z) * n + z * h


def mark(rnn: nn.RNNBase, gate_activation: str = "sigmoid", reset_after: bool = True,
         activation: str = "tanh") -> None:
    """Make ``rnn`` an LSTM/GRU with these gates and this activation (PyTorch's own: sigmoid,
    reset after, tanh). ``gate_activation`` may name the activation too, after a slash
    (``"sigmoid/relu"``: :func:`gradhealth.analysis.importers.keras_graph.recurrent_gates` gives
    the Keras door's cells so); a name neither table has is refused (ValueError)."""
    gate_activation, _, named = gate_activation.partition("/")
    activation = named or activation
    for name in (gate_activation, activation):
        if name not in ACTIVATION_FUNCTIONS:
            raise ValueError(f"a recurrent cell with activation {name!r} is not simulated")
    setattr(rnn, "gate_activation", gate_activation)  # noqa: B010  # plain attributes of ours,
    setattr(rnn, "reset_after", reset_after)  # noqa: B010  # which torch's classes do not declare
    setattr(rnn, "activation", activation)  # noqa: B010


def cell_of(rnn: nn.Module) -> tuple[str, bool, str]:
    """(gate activation, reset_after, activation) of ``rnn``: what :func:`mark` set, else PyTorch's
    cell (sigmoid, True, tanh)."""
    return (str(getattr(rnn, "gate_activation", "sigmoid")), bool(getattr(rnn, "reset_after", True)),
            str(getattr(rnn, "activation", "tanh")))


def run_fused(rnn: nn.Module) -> bool:
    """PyTorch's fused module computes ``rnn`` (its cell is PyTorch's)."""
    return cell_of(rnn) == ("sigmoid", True, "tanh")


def runs_itself(rnn: nn.Module) -> bool:
    """``rnn(x)`` computes the layer: torch's fused module with torch's own cell, or a module that
    is not torch's recurrent one (the simulation's UnrolledRNN in its place) and steps itself."""
    return run_fused(rnn) or not isinstance(rnn, nn.RNNBase)


def step(rnn: nn.Module, kind: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
         weights: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) after one step of ``rnn`` (``kind`` lstm, gru or rnn; c is passed through but for an
    LSTM) from input ``x`` with one layer-direction's ``weights`` [w_ih, w_hh, b_ih, b_hh]."""
    gate_activation, reset_after, activation = cell_of(rnn)
    if kind == "lstm":
        # torch's kernel takes h as wide as c; a projected LSTM's h is proj_size wide
        if (gate_activation, activation) == ("sigmoid", "tanh") and h.shape[-1] == c.shape[-1]:
            return torch.lstm_cell(x, (h, c), *weights)  # type: ignore[arg-type]  # biases may be None, as torch allows
        return lstm_cell(x, h, c, weights, gate_activation, activation)
    if kind == "gru":
        if (gate_activation, reset_after, activation) == ("sigmoid", True, "tanh"):
            return torch.gru_cell(x, h, *weights), c  # type: ignore[arg-type]  # biases may be None, as torch allows
        return gru_cell(x, h, weights, gate_activation, reset_after, activation), c
    if getattr(rnn, "nonlinearity", "tanh") == "relu":
        return torch.rnn_relu_cell(x, h, *weights), c  # type: ignore[arg-type]  # biases may be None, as torch allows
    return torch.rnn_tanh_cell(x, h, *weights), c  # type: ignore[arg-type]  # biases may be None, as torch allows
