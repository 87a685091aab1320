"""The through-time ratio of a recurrent (sub)layer's dL/dh_t, from its first step to its last."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.findings import bidirectional_reach, time_ratios
from gradhealth.analysis.simulate import TimeSeries
from gradhealth.library import check_architecture, check_module


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


class _PooledLoopRNN(torch.nn.Module):
    """h_t = W h_{t-1} + U x_t, W orthogonal times ``gain``, read at every step (mean over time):
    each step gets its own gradient from the readout, so dL/dh_t barely falls towards step 0
    (a geometric sum, not a product), while what the recurrence carries from the last step back
    to step 0 is exactly gain^(T-2) of it."""

    def __init__(self, gain: float, steps: int = 30) -> None:
        super().__init__()
        self.inp, self.rec = torch.nn.Linear(8, 32), torch.nn.Linear(32, 32, bias=False)
        self.out = torch.nn.Linear(32, 4)
        torch.nn.init.orthogonal_(self.rec.weight, gain)
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 32, dtype=x.dtype)
        states = []
        for t in range(self.steps):
            h = self.rec(h) + self.inp(x[:, t])
            states.append(h)
        return self.out(torch.stack(states, 1).mean(1))


def test_a_recurrence_read_at_every_step_is_judged_by_what_it_carries() -> None:
    from gradhealth import check_module

    torch.manual_seed(0)
    doc = check_module(_PooledLoopRNN(0.5), torch.randn(8, 30, 8), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    extra = f.evidence.model_dump()
    assert extra["per_step_factor"] == pytest.approx(0.5, rel=1e-6) and extra["measured"] == "carried"
    assert "carried back through its own recurrence" in f.summary
    # the dL/dh_t the document charts is still the loss's own: it does not fall 0.5 per step
    by_t = [s.output_grad_norm for s in doc.time_steps if s.layer == "rec"]
    assert by_t[0] / by_t[-2] > 0.5  # a geometric sum of the readout's per-step gradients
    assert not [f for f in check_module(_PooledLoopRNN(1.0), torch.randn(8, 30, 8), seeds=2,
                                        verify=False).findings if f.code.endswith("through_time")]


def test_a_pooled_tanh_rnn_vanishes_and_stacked_long_memory_lstms_do_not_explode() -> None:
    # the textbook vanishing tanh RNN, read through a mean over its 100 steps instead of its last
    # one: the same recurrence, the same finding (it was healthy: every step got the pool's gradient)
    rnn = {"name": "pooled tanh RNN", "input": {"shape": [100, 32]}, "batch_size": 32,
           "layers": [{"type": "rnn", "hidden_size": 128, "nonlinearity": "tanh", "output": "sequence"},
                      {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}
    last = {**rnn, "layers": [{"type": "rnn", "hidden_size": 128, "nonlinearity": "tanh"}, rnn["layers"][2]]}
    pooled = {f.code: f for f in check_architecture(rnn, verify=False).findings}
    read_last = {f.code: f for f in check_architecture(last, verify=False).findings}
    # read at every step, each step learns from its own gradient: what vanishes is the reach of
    # long dependencies, a note on its memory horizon as for a gated cell (specsweep10: it was a
    # warning, against docs/findings.md); read at the last step alone, nothing reaches the early inputs
    assert (pooled["vanishing_through_time"].severity, read_last["vanishing_through_time"].severity) == (
        "info", "error")
    a, b = (math.log10(d["vanishing_through_time"].evidence.value) for d in (pooled, read_last))
    assert abs(a - b) < 1  # the same recurrence from the same weights: within a decade of 1e-26
    # a gated cell read at every step (a BiLSTM tagger's forget bias 1 over 50 steps): a note
    tagger = {"input": {"shape": [50, 32]}, "batch_size": 16,
              "layers": [{"type": "lstm", "hidden_size": 64, "bidirectional": True, "output": "sequence",
                          "forget_bias": 1.0}, {"type": "pool", "mode": "mean"},
                         {"type": "linear", "out_features": 5}]}
    notes = [f for f in check_architecture(tagger, verify=False).findings if f.code == "vanishing_through_time"]
    assert notes and {f.severity for f in notes} == {"info"}
    # four chrono LSTM layers under a mean pool: each lower layer's dL/dh_t piles up what the
    # layers above inject at every step (~400x towards step 0), but its own recurrence shrinks
    # what it carries (specsweep2: 0.047 from the last step to the first)
    stacked = {"input": {"shape": [100, 16]}, "batch_size": 16,
               "layers": [{"type": "lstm", "hidden_size": 64, "num_layers": 4, "forget_bias": "chrono",
                           "output": "sequence"}, {"type": "pool", "mode": "mean"},
                          {"type": "linear", "out_features": 10}]}
    assert not [f for f in check_architecture(stacked, verify=False).findings
                if f.code == "exploding_through_time" and f.severity != "info"]


@pytest.mark.parametrize("layer", [
    {"type": "rnn", "hidden_size": 32, "nonlinearity": "tanh"},
    {"type": "lstm", "hidden_size": 32, "num_layers": 2, "bidirectional": True},
    {"type": "gru", "hidden_size": 32, "bidirectional": True},
])
def test_a_layer_read_at_its_last_step_alone_carries_exactly_its_dl_dh(layer, monkeypatch) -> None:
    # the premise of skipping the carried pass there: with the loss reading only each direction's
    # final state, dL/dh_t is the last step's gradient carried back, to rounding
    from gradhealth.analysis.model import RecurrentUnit
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.simulate import simulate
    from gradhealth.analysis.spec import parse_spec

    spec = {"input": {"shape": [12, 8]}, "batch_size": 8, "seeds": 2,
            "layers": [layer, {"type": "linear", "out_features": 4}]}
    top = {ts.sublayer for ts in simulate(make_plan(parse_spec(spec))).time_series
           if ts.sublayer // (2 if layer.get("bidirectional") else 1) == layer.get("num_layers", 1) - 1}
    assert all(ts.carried is None for ts in simulate(make_plan(parse_spec(spec))).time_series if ts.sublayer in top)
    monkeypatch.setattr(RecurrentUnit, "read_at_last_step_only", lambda self, sub: False)
    for ts in simulate(make_plan(parse_spec(spec))).time_series:
        assert ts.carried is not None
        if ts.sublayer in top:
            assert ts.carried == pytest.approx(ts.norms, rel=1e-9, abs=1e-300)


def test_a_carried_pass_that_cannot_run_leaves_the_check_on_dl_dh(monkeypatch) -> None:
    # the extra backward is a measurement's refinement: a graph it cannot run back through a
    # second time must not fail the check, which then judges dL/dh_t as before
    from gradhealth.analysis import figures

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("Trying to backward through the graph a second time")

    monkeypatch.setattr(figures.torch.autograd, "grad", refuse)
    torch.manual_seed(0)
    doc = check_module(_PooledLoopRNN(0.5), torch.randn(8, 30, 8), seeds=2, verify=False)
    assert not [f for f in doc.findings if f.code == "vanishing_through_time"]  # dL/dh_t barely falls
    assert any(s.layer == "rec" for s in doc.time_steps)


def _pair(fwd: np.ndarray, bwd: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(time_series=[TimeSeries("bi", 0, fwd), TimeSeries("bi", 1, bwd, reverse=True)])


def test_a_bidirectional_layer_read_at_both_ends_is_judged_at_its_worst_reached_input() -> None:
    # each direction halves its gradient per step over 30 steps; the backward one runs from the
    # last position to the first, so position p is 28 - p forward steps and p - 1 backward steps
    # from where each enters: the middle is the worst reached, about 13-14 steps from either end
    decay = np.tile(0.5 ** np.arange(30)[::-1], (3, 1))
    result = _pair(decay, decay.copy())
    per_direction = time_ratios(result)  # type: ignore[arg-type]
    assert [r[2] for r in per_direction] == pytest.approx([0.5 ** 28, 0.5 ** 28])
    [(layer, sub, ratio, steps)] = time_ratios(result, reach=True)  # type: ignore[arg-type]
    assert (layer, sub) == ("bi", 0)
    reach = bidirectional_reach(result)[("bi", 0)]  # type: ignore[arg-type]
    path = min(28 - reach.position, reach.position - 1)
    assert path == 13 and ratio == pytest.approx(0.5 ** 13) and steps == path + 2
    # a backward direction that carries nothing past its first step (read at the last position):
    # no pair, each direction as before
    cut = np.zeros((3, 30))
    cut[:, 0] = 1.0
    assert bidirectional_reach(_pair(decay, cut)) == {}  # type: ignore[arg-type]


def test_a_keras_style_bilstm_names_its_worst_reached_position_not_step_0() -> None:
    class Final(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(8, 16, batch_first=True, bidirectional=True)
            self.head = nn.Linear(32, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seq = self.rnn(x)[0]  # each direction's final state, as Keras' Bidirectional returns
            return self.head(torch.cat([seq[:, -1, :16], seq[:, 0, 16:]], -1))
    torch.manual_seed(0)
    doc = check_module(Final(), torch.randn(8, 120, 8), seeds=1, verify=False)
    finding = next(f for f in doc.findings if f.code == "vanishing_through_time")
    extra = finding.evidence.model_extra or {}
    position = extra["worst_reached_position"]
    assert 30 <= position <= 90 and extra["sequence_length"] == 120, finding.summary
    # independently: the forward direction's own ratio from its step 118 to step 0, from the
    # document's per-step norms, is far smaller than what reaches the worst position
    fwd = [s.output_grad_norm for s in doc.time_steps if s.layer == finding.evidence.layers[0] and s.sublayer == 0]
    assert finding.evidence.value > 100 * fwd[0] / fwd[118]
    assert f"position {position} of 120" in finding.summary


class _StackedLSTMs(nn.Module):
    """Two stacked LSTMs, the first read at every step by the second, the second at its last step
    by a linear head (kerassweep20 u05's shape); the first's recurrent weights times ``scale``."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(12, 64, batch_first=True)
        self.lstm_1 = nn.LSTM(64, 32, batch_first=True)
        self.head = nn.Linear(32, 1)
        with torch.no_grad():
            self.lstm.weight_hh_l0.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(x)
        out, _ = self.lstm_1(seq)
        return self.head(out[:, -1])


def _carried_by_autograd(net: _StackedLSTMs, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """(||(dh_{T-1}/dh_0)^T g|| / ||(dh_{T-1}/dh_{T-2})^T g||, T) for the first LSTM, g = dL/dh_{T-1}:
    its cell stepped by hand with its own weights, the second LSTM and the head on top."""
    w = [p.detach() for p in (net.lstm.weight_ih_l0, net.lstm.weight_hh_l0, net.lstm.bias_ih_l0,
                              net.lstm.bias_hh_l0)]
    x = x.clone().requires_grad_(True)
    h = torch.zeros(x.shape[0], 64, dtype=x.dtype)
    c = torch.zeros_like(h)
    hs = []
    for t in range(x.shape[1]):
        h, c = torch.lstm_cell(x[:, t], (h, c), *w)
        hs.append(h)
    out, _ = net.lstm_1(torch.stack(hs, 1))
    loss = nn.functional.mse_loss(net.head(out[:, -1]), y)
    (g,) = torch.autograd.grad(loss, hs[-1], retain_graph=True)
    norms = [torch.autograd.grad(hs[-1], hs[t], grad_outputs=g, retain_graph=True)[0].norm().item()
             for t in range(len(hs) - 1)]
    return norms[0] / norms[-1], len(hs)


def test_a_stacked_lstm_whose_recurrence_expands_over_a_short_sequence_explodes_through_time() -> None:
    # kerassweep20 u05: a Keras relu LSTM under another, its recurrent kernel x6: the gradient its
    # own recurrence carries grew 1.91x a step, 93x over 9 steps, under the 100x bar: healthy
    torch.manual_seed(0)
    net = _StackedLSTMs(12.0).double()
    x = torch.rand(32, 9, 12, dtype=torch.float64)
    y = torch.randn(32, 1, dtype=torch.float64)
    ratio, steps = _carried_by_autograd(net, x, y)
    per_step = ratio ** (1 / (steps - 2))
    assert 10 < ratio < 100 and per_step > 1.4  # independent: a short expanding recurrence, under the bar
    doc = check_module(net, x, loss="mse", targets=y, input_range=(0.0, 1.0), seeds=3, verify=False)
    [f] = [f for f in doc.findings if f.code == "exploding_through_time"]
    extra = f.evidence.model_dump()
    assert f.severity == "warning" and extra["layers"] == ["lstm"] and extra["measured"] == "carried"
    assert extra["expanding"] is True and extra["per_step_threshold"] == 1.25
    assert extra["per_step_factor"] == pytest.approx(per_step, rel=0.1)
    assert f.evidence.value < 100 and "per-step gain no initialisation gives" in f.summary
    # the control: the same stack at torch's default init shrinks what its recurrences carry
    torch.manual_seed(0)
    healthy = _StackedLSTMs(1.0).double()
    assert _carried_by_autograd(healthy, x, y)[0] < 1
    doc = check_module(healthy, x, loss="mse", targets=y, input_range=(0.0, 1.0), seeds=3, verify=False)
    assert not [f for f in doc.findings if f.code == "exploding_through_time"]
