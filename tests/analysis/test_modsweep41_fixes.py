"""modsweep41 "other problems" 3-8: round-off gradients read as growth, oversized logits unsaid where
the trunk already fires, span wording, stacked RNN layer names, an RNN's zero initial state, and the
float32 fallback's note. Every module is built here; expected numbers come from theory or an
independent torch computation."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import gradhealth
from gradhealth.analysis.simulate import UnitStats

EPS = float(np.finfo(np.float64).eps)


def _unit(name: str, g: list[float], *, weight_norm: float = 1.0, fan_out: int = 10) -> UnitStats:
    return UnitStats(name, f"module:{name}", "linear", "relu", 0, True, 16, fan_out,
                     {"output_grad_norm": np.array(g), "grad_norm": np.array(g),
                      "weight_norm": np.array([weight_norm] * len(g))})


def test_round_off_floor_is_eps_times_the_terms_of_the_sum() -> None:
    from gradhealth.analysis.simulate import round_off_gradients

    # udacity_init_ones: a gradient at 1.8e-16 behind a readout with ||W||_F = 35.8 and ||g|| = 0.095,
    # where exact arithmetic gives 0; the floor is eps * sqrt(fan_out) * ||W|| * ||g|| = 2.4e-15
    a, b, c = _unit("a", [3.3e-14]), _unit("b", [1.8e-16]), _unit("c", [0.0949], weight_norm=35.8, fan_out=10)
    assert round_off_gradients([a, b, c], {}, "float64") == ["a", "b"]
    assert b.values["output_grad_norm"][0] == 0.0 and a.values["output_grad_norm"][0] == 0.0  # a: carried
    assert c.values["output_grad_norm"][0] == 0.0949


def test_a_real_vanishing_gradient_is_not_round_off() -> None:
    from gradhealth.analysis.simulate import round_off_gradients

    # a gradient shrinking by products (sigmoid' <= 1/4 a layer) stays far above the floor of each step:
    # 20 layers at 0.1 each reach 1e-20 of the loss's gradient, each step 0.1 of its successor's
    units = [_unit(f"l{i}", [10.0 ** -(20 - i)], weight_norm=4.0, fan_out=16) for i in range(21)]
    assert round_off_gradients(units, {}, "float64") == []
    # one step at 1e-3 of eps * sqrt(n) * ||W|| * ||g|| is round-off; at 10x the floor it is not
    floor = EPS * math.sqrt(16) * 4.0 * 1.0
    low, high = _unit("x", [floor * 1e-3]), _unit("y", [floor * 10])
    assert round_off_gradients([low, _unit("r", [1.0], weight_norm=4.0, fan_out=16)], {}, "float64") == ["x"]
    assert round_off_gradients([high, _unit("r", [1.0], weight_norm=4.0, fan_out=16)], {}, "float64") == []


def _constant_net(value: float) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, value)
            nn.init.zeros_(m.bias)
    return net


def test_equal_readout_rows_pass_back_no_gradient_not_growth() -> None:
    # every row of the readout equal: W3^T (p - y) = w * sum(p - y) = 0 exactly, so no gradient reaches
    # the hidden layers; float64 leaves ~1e-16 there, which was ratioed as growth
    doc = gradhealth.check_module(_constant_net(1.0), torch.rand(50, 32), loss="cross_entropy",
                                  optimizer={"type": "adam", "lr": 1e-3}, input_range=(0.0, 1.0), verify=False)
    rows = {r.name: r for r in doc.layers}
    assert rows["0"].output_grad_norm == 0.0 and rows["2"].output_grad_norm == 0.0
    vanishing = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert vanishing.severity == "error" and "no gradient reaches" in vanishing.summary
    assert vanishing.evidence.model_extra["round_off_gradient"] == ["0", "2"]
    assert "In exact arithmetic no gradient reaches" in vanishing.explanation
    exploding = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert all(not (f.evidence.model_extra.get("grad_ratio") or 0) > 1 for f in exploding)


def test_oversized_logits_said_where_the_trunk_already_fires() -> None:
    # U(0, 1) weights (Udacity's weights_init_uniform): the trunk's growth is past the 1e2 bar on its
    # own, and the logits' std, over 100, is said too, as measured by an independent forward
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)
    doc = gradhealth.check_module(net, torch.rand(100, 784), loss="cross_entropy",
                                  optimizer={"type": "adam", "lr": 1e-3}, input_range=(0.0, 1.0), verify=False)
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    extra = f.evidence.model_extra
    with torch.no_grad():
        logits = net.double()(torch.rand(100, 784, dtype=torch.float64))
    assert extra["logit_std"] > 100
    assert abs(math.log(extra["logit_std"] / float(logits.std()))) < 0.3
    assert "the logits out of 4 (Linear) have a std of" in f.summary and "saturated" in f.summary
    # one step between the two hidden layers: not "across 2 layers (.., X per layer)" with X the total
    assert "(2 layers, one step)" in f.summary and "per layer" not in f.summary


def test_spans_are_counted_in_steps() -> None:
    from gradhealth.analysis.rules import _steps

    assert _steps(2, 169.0) == "2 layers, one step"
    assert _steps(5, 11.8) == "5 layers, 4 steps, 11.8 per step"


class _Rows(nn.Module):
    def __init__(self, state_in_forward: bool = False) -> None:
        super().__init__()
        self.rnn = nn.RNN(6, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 3)
        self.state_in_forward = state_in_forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state_in_forward:
            h0 = torch.zeros(2, x.size(0), 16)  # float32, whatever the weights' dtype
            out, _ = self.rnn(x, h0)
        else:
            out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def test_a_stacked_rnn_layer_is_said_as_its_layer() -> None:
    torch.manual_seed(0)
    model = _Rows()
    with torch.no_grad():
        model.rnn.weight_hh_l1.mul_(0.02)  # layer 2's recurrence all but cut: its dL/dh_t vanishes
    doc = gradhealth.check_module(model, torch.randn(8, 30, 6), loss="cross_entropy", verify=False)
    assert [r.name for r in doc.layers][:2] == ["rnn", "rnn#2"]  # the names stay (the layer table's keys)
    f = next(f for f in doc.findings if f.code == "vanishing_through_time")
    assert f.evidence.layers == ["rnn#2"]
    assert f.summary.startswith("layer 2 of rnn (rnn#2): ")


def test_a_state_built_in_forward_says_why_float32_ran() -> None:
    torch.manual_seed(0)
    doc = gradhealth.check_module(_Rows(state_in_forward=True), torch.randn(8, 12, 6), loss="cross_entropy",
                                  verify=False)
    assert doc.simulation is not None and doc.simulation.precision == "float32"
    note = next(n for n in doc.simulation.notes if n.startswith("simulated in float32"))
    assert "test_modsweep41_fixes.py:" in note and "self.rnn(x, h0)" in note and "mat1 and mat2" in note


class _Lstm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(5, 12, batch_first=True)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out, _ = self.lstm(x, hidden)
        return self.fc(out[:, -1])


def test_an_lstm_zero_state_is_called_one() -> None:
    torch.manual_seed(0)
    h = (torch.zeros(1, 4, 12), torch.zeros(1, 4, 12))
    doc = gradhealth.check_module(_Lstm(), (torch.randn(4, 7, 5), h), loss="cross_entropy", verify=False)
    assert doc.simulation is not None
    notes = [n for n in doc.simulation.notes if n.startswith("float input hidden[")]
    assert len(notes) == 2
    for n in notes:
        assert "an RNN's zero initial state" in n and "shaped as lstm's initial state" in n
        assert "adjacency" not in n
