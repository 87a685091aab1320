"""modsweep46 fixes: the recurrent stand-ins hand back torch's layout (awaelchli_charlm_tied: the
word-LM's ``output.view(-1, hidden)`` failed inside the check only), ..."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.analysis.graph import StackedRNN, UnrolledRNN


def _stepping(rnn: nn.RNNBase) -> nn.Module:
    """The simulation's stand-in for ``rnn`` (a copy of its weights), made to run step by step."""
    stand_in: nn.Module = StackedRNN(rnn) if rnn.num_layers > 1 else UnrolledRNN(rnn)
    for m in stand_in.modules():
        if isinstance(m, UnrolledRNN):
            m.probing = True  # the probed, stepped forward, not torch's fused module
    return stand_in


def _flat(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _flat(v)]  # type: ignore[attr-defined]  # a tuple of tensors/tuples


CASES = list(itertools.product((nn.LSTM, nn.GRU, nn.RNN), (False, True), (False, True), (1, 2), (False, True)))


@pytest.mark.parametrize(("cls", "batch_first", "bidirectional", "layers", "with_state"), CASES)
def test_the_stepped_stand_in_returns_torchs_values_shapes_strides_and_dtype(
        cls: type[nn.RNNBase], batch_first: bool, bidirectional: bool, layers: int, with_state: bool) -> None:
    torch.manual_seed(0)
    rnn = cls(5, 7, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional).double()
    stand_in = _stepping(rnn)
    d = 2 if bidirectional else 1
    for x in (torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)):  # batched, unbatched
        hx: object = None
        if with_state:
            batch = x.shape[0 if batch_first else 1]
            shape = (layers * d, batch, 7) if x.dim() == 3 else (layers * d, 7)
            h0 = torch.randn(shape, dtype=torch.float64)
            hx = (h0, torch.randn(shape, dtype=torch.float64)) if cls is nn.LSTM else h0
        want, got = _flat(rnn(x, hx)), _flat(stand_in(x, hx))
        assert len(got) == len(want) == (3 if cls is nn.LSTM else 2)
        for w, g in zip(want, got, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype
            assert g.is_contiguous() == w.is_contiguous() and g.stride() == w.stride()
            torch.testing.assert_close(g, w)
            # what a forward may do with torch's output (the word_language_model's view) it may do
            # with the stand-in's, and what it may not, it may not
            assert _views(g) == _views(w)
        if not batch_first:
            assert got[0].view(-1, 7 * d).shape == (got[0].numel() // (7 * d), 7 * d)


def _views(t: torch.Tensor) -> bool:
    try:
        t.view(-1, t.size(-1))
    except RuntimeError:
        return False
    return True


class _WordLM(nn.Module):
    """pytorch/examples word_language_model's RNNModel, cut down: Embedding -> LSTM -> view -> Linear."""

    def __init__(self, cls: type[nn.RNNBase], batch_first: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 16)
        self.rnn = cls(16, 16, num_layers=2, batch_first=batch_first)
        self.dec = nn.Linear(16, 20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(self.emb(x))
        h = h[0] if isinstance(h, tuple) else h
        h.view(-1)  # the state too, as torch's is contiguous
        return self.dec(out.view(out.size(0) * out.size(1), out.size(2)))


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_a_word_language_model_viewing_its_lstm_output_is_checked(cls: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 20, (10, 4))  # (time, batch): torch's output is contiguous, .view is legal
    model = _WordLM(cls, batch_first=False)
    assert model(x).shape == (40, 20)  # plain torch runs it
    doc = gradhealth.check_module(model, x, seeds=1, verify=False)
    assert doc.simulation is not None
    assert any(layer.name.startswith("rnn") for layer in doc.layers)
