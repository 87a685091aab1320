"""modsweep46 fixes: the recurrent stand-ins hand back torch's layout (awaelchli_charlm_tied: the
word-LM's ``output.view(-1, hidden)`` failed inside the check only), and a ReLU layer whose inputs are
alike across the samples (a squeeze-and-excitation bottleneck) is judged as one sample (ayesh_aunet_r16)."""

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


# --- dead_units on a squeeze-and-excitation bottleneck (ayesh_aunet_r16) --------------------------

class _SE(nn.Module):
    def __init__(self, c: int, r: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // r), nn.ReLU(), nn.Linear(c // r, c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


class _SENet(nn.Module):
    """Two ReLU convs, a squeeze-and-excitation block (32 -> 4 -> 32), a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 32, 3, padding=1)
        self.se = _SE(32, 8)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.head(self.se(x).mean((2, 3)))


def _spread(z: torch.Tensor, feature_dim: int) -> float:
    """||z - each unit's mean over the other dims|| / ||z||, computed here by hand."""
    dims = [d for d in range(z.dim()) if d != feature_dim]
    dev = z - z.mean(dim=dims, keepdim=True)
    return float(dev.norm() / z.norm())


def test_a_squeeze_excitation_bottleneck_off_for_the_batch_is_a_note_on_alike_inputs_not_dead_units() -> None:
    torch.manual_seed(1)
    model = _SENet()
    x = torch.rand(8, 3, 16, 16)
    # independently, in plain torch: the SE layer's pre-activations barely vary across the samples,
    # the conv before it's do, and most of its 4 units are off for the whole batch
    with torch.no_grad():
        h = torch.relu(model.c2(torch.relu(model.c1(x))))
        pre_se = model.se.fc[0](h.mean((2, 3)))
        pre_c2 = model.c2(torch.relu(model.c1(x)))
    from gradhealth.analysis.rules import ALIKE_DROP, ALIKE_SPREAD
    assert _spread(pre_se, 1) < ALIKE_SPREAD and _spread(pre_c2, 1) >= ALIKE_DROP * _spread(pre_se, 1)
    assert int((pre_se.amax(0) <= 0).sum()) >= 2
    doc = gradhealth.check_module(model, x, seeds=3, verify=False)
    found = [f for f in doc.findings if f.code == "dead_units"]
    # a warning before (a 1-live-unit "bottleneck", with init remedies that change nothing); now a
    # note saying the batch is one sample for the layer, with no remedy
    assert found and all(f.severity == "info" for f in found)
    note = found[0]
    assert note.evidence.layers == ["se.fc.0"]
    assert "one sample" in note.summary and "2^-batch" in note.explanation
    assert "3 of 4 units is within chance of half" in note.summary  # P(3 or 4 of 4 at 1/2) = 5/16
    assert "live unit or fewer" not in note.explanation  # (a narrow layer's bottleneck rule: not applied)
    assert not note.remedies
    spread = note.evidence.model_extra["sample_spread"]["se.fc.0"]
    assert 0 < spread < ALIKE_SPREAD and note.evidence.model_extra["sample_spread_before"]["se.fc.0"] >= ALIKE_DROP * spread
