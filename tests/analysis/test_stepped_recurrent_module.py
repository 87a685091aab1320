"""A recurrent module stepped once per call in a forward's own Python loop, carrying the state it
returned (a seq2seq decoder's ``nn.LSTM``/``GRU``/``RNN`` called once per target token, as in the
bentrevett pytorch-seq2seq tutorial): each layer's gradient over time is read from its own h_t at every
call, one step per call and in time order, for every layer of a stacked module alike. The second
layer of a stacked decoder was read twice, as a loop and as a one-step sequence, joined into one
series out of time order and one step longer than its carried gradient: a numpy broadcast error from
inside the rules. dL/dh_t is checked against torch autograd on the same weights, stepped by hand."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.analysis.figures import Readout
from gradhealth.analysis.simulate import TimeSeries
from gradhealth.errors import TimeSeriesError

SRC, TRG, BATCH, VOCAB, EMB, HIDDEN = 6, 5, 4, 12, 8, 16
MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class _Seq2Seq(nn.Module):
    """An encoder run over the whole source, then a decoder of the same kind stepped once per target
    step from the encoder's final state, always fed the true previous step (teacher forcing); both read
    features (not token ids, which the check draws itself), so autograd can be run on the very batch."""

    def __init__(self, kind: str, layers: int) -> None:
        super().__init__()
        self.kind = kind
        self.enc = MODULES[kind](EMB, HIDDEN, layers)
        self.dec = MODULES[kind](EMB, HIDDEN, layers)
        self.out = nn.Linear(HIDDEN, VOCAB)

    def forward(self, src: torch.Tensor, trg: torch.Tensor) -> torch.Tensor:
        _, state = self.enc(src)
        outputs = []
        for t in range(trg.shape[0] - 1):
            output, state = self.dec(trg[t].unsqueeze(0), state)
            outputs.append(self.out(output.squeeze(0)))
        return torch.stack(outputs)


def _levels(steps: int) -> torch.Tensor:
    """Features of a few levels, which the check uses as given (it draws a standard normal batch in
    place of a continuous example): the hand-stepped module reads the very batch the check does."""
    return torch.randint(-2, 3, (steps, BATCH, EMB)).to(torch.float64)


def _by_hand(model: _Seq2Seq, src: torch.Tensor, trg: torch.Tensor) -> dict[int, list[float]]:
    """Per decoder layer: ||dL/dh_t|| at each decoder step, L the outputs' sum, stepped with torch's
    cell functions on the model's own weights (float64)."""
    net = model.double()
    _, state = net.enc(src)
    h, c = state if net.kind == "lstm" else (state, None)
    layers = net.dec.num_layers
    hs = [h[k] for k in range(layers)]
    cs = [c[k] for k in range(layers)] if c is not None else []
    kept: dict[int, list[torch.Tensor]] = {k: [] for k in range(layers)}
    total = torch.zeros((), dtype=torch.float64)
    for t in range(trg.shape[0] - 1):
        x = trg[t]
        for k in range(layers):
            w = [getattr(net.dec, f"{p}_l{k}") for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if net.kind == "lstm":
                hs[k], cs[k] = torch.lstm_cell(x, (hs[k], cs[k]), *w)
            elif net.kind == "gru":
                hs[k] = torch.gru_cell(x, hs[k], *w)
            else:
                hs[k] = torch.rnn_tanh_cell(x, hs[k], *w)
            kept[k].append(hs[k])
            x = hs[k]
        total = total + net.out(x).sum()
    flat = [h for k in range(layers) for h in kept[k]]
    grads = iter(torch.autograd.grad(total, flat))
    return {k: [float(next(grads).norm()) for _ in kept[k]] for k in range(layers)}


def _steps(doc: gradhealth.Diagnosis, layer: str) -> list[tuple[int, float | None]]:
    return [(s.t, s.output_grad_norm) for s in doc.time_steps if s.layer == layer and s.sublayer == 0]


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_every_layer_of_a_module_stepped_per_token_has_one_step_per_call(kind: str, layers: int) -> None:
    torch.manual_seed(0)
    model = _Seq2Seq(kind, layers).double()
    src, trg = _levels(SRC), _levels(TRG)
    doc = gradhealth.check_module(model, (src, trg), loss="sum", seeds=1, verify=False)
    expected = _by_hand(model, src, trg)
    for k in range(layers):
        name = "dec" if k == 0 else f"dec#{k + 1}"
        steps = _steps(doc, name)
        # one step per decoder call, in time order, each dL/dh_t autograd's own (the state carried
        # to the next call included: an LSTM's output is a copy of h_t, its state the other path)
        assert [t for t, _ in steps] == list(range(TRG - 1)), (name, steps)
        assert [g for _, g in steps] == pytest.approx(expected[k], rel=1e-6), name
        # the encoder, one call over the whole source, keeps a step per source token
        enc = "enc" if k == 0 else f"enc#{k + 1}"
        assert [t for t, _ in _steps(doc, enc)] == list(range(SRC)), enc


def _tutorial(layers: int) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The tutorial's shape: embedding dropout, random teacher forcing (the argmax fed back otherwise),
    the decoder a module of its own whose forward takes and returns (hidden, cell)."""

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMB)
            self.rnn = nn.LSTM(EMB, HIDDEN, layers, dropout=0.5 if layers > 1 else 0.0)
            self.fc_out = nn.Linear(HIDDEN, VOCAB)
            self.dropout = nn.Dropout(0.5)

        def forward(self, token: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, ...]:
            output, (hidden, cell) = self.rnn(self.dropout(self.embedding(token.unsqueeze(0))), (hidden, cell))
            return self.fc_out(output.squeeze(0)), hidden, cell

    class Seq2Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMB)
            self.encoder = nn.LSTM(EMB, HIDDEN, layers, dropout=0.5 if layers > 1 else 0.0)
            self.decoder = Decoder()

        def forward(self, src: torch.Tensor, trg: torch.Tensor) -> torch.Tensor:
            _, (hidden, cell) = self.encoder(self.embedding(src))
            outputs = torch.zeros(trg.shape[0], trg.shape[1], VOCAB)
            token = trg[0]
            for t in range(1, trg.shape[0]):
                output, hidden, cell = self.decoder(token, hidden, cell)
                outputs[t] = output
                token = trg[t] if random.random() < 0.5 else output.argmax(1)
            return outputs[1:].view(-1, VOCAB)

    model = Seq2Seq()
    for p in model.parameters():
        nn.init.uniform_(p.data, -0.08, 0.08)
    return model, (torch.randint(0, VOCAB, (SRC, BATCH)), torch.randint(0, VOCAB, (TRG, BATCH)))


@pytest.mark.parametrize("layers", [1, 2])
def test_the_seq2seq_tutorials_stacked_decoder_is_diagnosed(layers: int) -> None:
    # modsweep50 m14: the 2-layer decoder crashed the check ("operands could not be broadcast
    # together with shapes (1,23) (1,24)"); the 1-layer one ran, and is read the same way
    random.seed(0)
    torch.manual_seed(0)
    model, inputs = _tutorial(layers)
    optimizer = torch.optim.Adam(model.parameters())
    doc = gradhealth.check_module(model, inputs, loss="cross_entropy", seeds=2, optimizer=optimizer,
                                  clip_norm=1.0, verify=False)
    # healthy: weights in U(-0.08, 0.08), a 5-token target, Adam and clipping
    assert doc.status == "healthy", [f.summary for f in doc.findings]
    for k in range(layers):
        name = "decoder.rnn" if k == 0 else f"decoder.rnn#{k + 1}"
        assert [t for t, _ in _steps(doc, name)] == list(range(TRG - 1)), name


def test_a_layers_steps_read_twice_are_refused_by_name() -> None:
    readout = Readout()
    h = [torch.ones(2, 3, requires_grad=True) for _ in range(3)]
    for x in h:
        readout.add_step(("decoder.rnn#2", 0), x)
    readout.add_carried(("decoder.rnn#2", 0), h)
    with pytest.raises(TimeSeriesError, match=r"decoder\.rnn#2"):
        readout.add_step(("decoder.rnn#2", 0), h[0])
    with pytest.raises(TimeSeriesError, match=r"decoder\.rnn#2"):
        readout.add_carried(("decoder.rnn#2", 0), h)


def test_a_series_and_its_carried_gradient_of_different_lengths_are_refused_by_name() -> None:
    with pytest.raises(TimeSeriesError, match=r"decoder\.rnn#2"):
        TimeSeries("decoder.rnn#2", 0, np.ones((1, 5)), carried=np.ones((1, 4)))
    assert TimeSeries("rnn", 0, np.ones((1, 5)), carried=np.ones((1, 5))).carried is not None


def test_a_layer_run_for_different_numbers_of_steps_in_different_seeds_is_refused_by_name() -> None:
    # a decoder looping until an end token runs as many steps as each seed's batch asks: its series
    # cannot be stacked over the seeds (a numpy "inhomogeneous shape" error before)
    seeds = [SimpleNamespace(steps={("decoder.rnn", 0): [1.0] * n}, carried={}) for n in (4, 5)]
    with pytest.raises(TimeSeriesError, match=r"decoder\.rnn.*\[4, 5\].*seeds=1"):
        TimeSeries.of("decoder.rnn", 0, seeds)  # type: ignore[arg-type]
