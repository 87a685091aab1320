"""Recurrent modules' set-ups shared by the analysis tests."""

from __future__ import annotations

import torch
from torch import nn


def shut_gates(rnn: nn.Module, hidden: int) -> None:
    """Shut a torch LSTM's forget gates or a GRU's update gates (the second gate block of every
    bias: -5, sigmoid 0.007): since kerassweep13 a default gated cell's vanishing through time is
    a note without remedies at any length, so the remedy tests use gates worse than default."""
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("bias_ih"):
                p[hidden:2 * hidden] = -5.0
            elif name.startswith("bias_hh"):
                p[hidden:2 * hidden] = 0.0
