"""Every door to the same diagnosis: a spec, a live module and its ONNX export.

Oracles that can fail independently of the code under test:

* the same network through the spec door (its own builder, seed 0), the live-module door and the
  ONNX door (torch.onnx.export of that module) gives the same per-layer gradient norms to 1e-6
  relative, in float64 on the same synthetic batch, and the same finding codes. The weights are
  the spec's own (drawn by the spec builder for seed 0, copied into a plain PyTorch module), and
  the loss is the plain sum of the outputs, the one loss the three draw no random target for;
  the ONNX door is the importer and graph simulation that ``check_onnx`` runs, with that loss;
* a bidirectional recurrent layer unrolled step by step computes what torch's fused module does,
  and torch.onnx.export's bidirectional LSTM/GRU/RNN nodes check as the live module does;
* modules whose health is known from theory get that diagnosis through every door.

The spec door cannot express a Transformer encoder layer by layer (its ``transformer_encoder``
is one measured unit, the module and ONNX doors measure its projections one by one); that family
is compared across the module and ONNX doors in tests/analysis/test_onnx.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_architecture, check_module
from gradhealth.analysis.graph import GraphRun, StackedRNN, UnrolledRNN
from gradhealth.analysis.importers.onnx import OnnxModule, import_onnx
from gradhealth.analysis.model import build_network
from gradhealth.analysis.module_check import check_onnx, diagnose
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec
from tests.analysis.onnx_models import Residual, Sequence, export, mlp
from tests.analysis.recurrent import shut_gates

WEIGHT_TYPES = {"linear", "conv1d", "conv2d", "lstm", "gru", "rnn", "embedding"}


def _onnx_door(data: bytes, loss: str, seeds: int) -> Any:
    """``check_onnx`` with any loss of the graph simulation (the door itself offers CE and MSE)."""
    imported = import_onnx(data)

    def names(net: nn.Module) -> dict[nn.Module, tuple[str, str]]:
        assert isinstance(net, OnnxModule)
        return net.module_names()

    return diagnose(GraphRun(imported.module, imported.inputs, loss, seeds, None, names), verify=False)


def _weights(doc: Any) -> list[Any]:
    return [layer for layer in doc.layers if layer.type in WEIGHT_TYPES]


def _same(a: Any, b: Any) -> None:
    """Same weight layers, per-layer norms to 1e-6 relative, same dL/dh_t series, same codes."""
    la, lb = _weights(a), _weights(b)
    assert len(la) == len(lb) and la
    for x, y in zip(la, lb, strict=True):
        for metric in ("grad_norm", "output_grad_norm"):
            u, v = getattr(x, metric), getattr(y, metric)
            assert u is not None and v == pytest.approx(u, rel=1e-6), (x.name, y.name, metric)
    assert [s.output_grad_norm for s in a.time_steps] == pytest.approx(
        [s.output_grad_norm for s in b.time_steps], rel=1e-6)
    assert [f.code for f in a.findings] == [f.code for f in b.findings]


def _from_spec(spec: dict[str, Any], user: nn.Module) -> None:
    """Give ``user`` the weights the spec builder draws for seed 0 (parameters in the same order)."""
    plan = make_plan(parse_spec(spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_network(plan)
    mine, theirs = list(user.parameters()), list(net.parameters())
    assert [tuple(p.shape) for p in mine] == [tuple(p.shape) for p in theirs]
    with torch.no_grad():
        for p, q in zip(mine, theirs, strict=True):
            p.copy_(q)


def _cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 5))


def _conv(channels: int, **extra: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": channels, "kernel_size": 3, "padding": 1, **extra}


FAMILIES: dict[str, tuple[Any, tuple[int, ...], dict[str, Any], bool]] = {
    # name: (module, input shape, the spec of the same network, export in training mode)
    "mlp": (lambda: mlp(nn.Sigmoid, depth=4, width=32), (8, 32), {
        "input": {"shape": [32]},
        "layers": [{"type": "linear", "out_features": 32, "activation": "sigmoid", "repeat": 4},
                   {"type": "linear", "out_features": 10}]}, False),
    "cnn_batchnorm_pool": (_cnn, (8, 3, 8, 8), {
        "input": {"shape": [3, 8, 8]},
        "layers": [_conv(8, norm="batchnorm", activation="relu"), {"type": "maxpool2d", "kernel_size": 2},
                   _conv(8, norm="batchnorm", activation="relu"), {"type": "flatten"},
                   {"type": "linear", "out_features": 5}]}, True),
    "residual": (Residual, (8, 16), {
        "input": {"shape": [16]},
        "layers": [{"type": "linear", "out_features": 32},
                   {"type": "residual", "layers": [{"type": "linear", "out_features": 32, "activation": "relu"},
                                                   {"type": "linear", "out_features": 32}]},
                   {"type": "linear", "out_features": 4}]}, False),
    **{kind: (lambda cell=cell: Sequence(cell), (8, 12, 8), {
        "input": {"shape": [12, 8]},
        "layers": [{"type": kind, "hidden_size": 16}, {"type": "linear", "out_features": 3}]}, False)
       for kind, cell in (("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN))},
    **{f"bidirectional_{kind}": (lambda cell=cell: Bidirectional(cell), (8, 12, 8), {
        "input": {"shape": [12, 8]},
        "layers": [{"type": kind, "hidden_size": 16, "bidirectional": True, "output": "sequence"},
                   {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 3}]}, False)
       for kind, cell in (("lstm", nn.LSTM), ("gru", nn.GRU))},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_spec_module_and_onnx_doors_agree(family: str) -> None:
    build, shape, spec, train = FAMILIES[family]
    spec = {**spec, "seeds": 1, "batch_size": shape[0], "loss": "sum"}
    torch.manual_seed(0)
    model = build()
    _from_spec(spec, model)
    x = torch.randn(shape)
    via_spec = check_architecture(spec, verify=False)
    live = check_module(model, x, loss="sum", seeds=1, verify=False)
    via_onnx = _onnx_door(export(model, x, train), "sum", 1)
    _same(live, via_spec)
    _same(live, via_onnx)
    if family in ("lstm", "gru", "rnn"):  # measured through time, step by step, in every door
        assert len(via_spec.time_steps) == len(live.time_steps) == 12
    if family.startswith("bidirectional"):  # both directions, each step by step
        assert len(via_spec.time_steps) == len(live.time_steps) == 24


@pytest.mark.parametrize(("kind", "cell"), [("lstm", nn.LSTM), ("gru", nn.GRU)])
def test_a_stacked_recurrent_layer_through_every_door(kind: str, cell: type[nn.RNNBase]) -> None:
    # One nn.LSTM of two layers: the ONNX exporter writes a node per layer and the live module is
    # measured layer by layer too (StackedRNN), both naming them rnn, rnn#2; the spec keeps
    # `num_layers` one unit with a dL/dh_t series per layer (its sublayers). Same numbers all the
    # same: the spec unit's gradient norm is the L2 norm of the two layers', and its sublayer k's
    # series is layer k's.
    spec = {"input": {"shape": [12, 8]}, "seeds": 1, "batch_size": 8, "loss": "sum",
            "layers": [{"type": kind, "hidden_size": 16, "num_layers": 2}, {"type": "linear", "out_features": 3}]}
    torch.manual_seed(0)
    model = Sequence(cell, num_layers=2)
    _from_spec(spec, model)
    x = torch.randn(8, 12, 8)
    via_spec = check_architecture(spec, verify=False)
    live = check_module(model, x, loss="sum", seeds=1, verify=False)
    via_onnx = _onnx_door(export(model, x, False), "sum", 1)
    _same(live, via_onnx)
    assert [x.name for x in _weights(live)] == [x.name for x in _weights(via_onnx)] == ["rnn", "rnn#2", "head"]
    rnn, head = _weights(via_spec)
    layers = _weights(live)[:2]
    assert rnn.grad_norm == pytest.approx(math.hypot(*(x.grad_norm for x in layers)), rel=1e-6)
    assert rnn.output_grad_norm == pytest.approx(layers[1].output_grad_norm, rel=1e-6)
    assert head.grad_norm == pytest.approx(_weights(live)[2].grad_norm, rel=1e-6)
    for sub, name in enumerate(("rnn", "rnn#2")):
        assert [s.output_grad_norm for s in via_spec.time_steps if s.sublayer == sub] == pytest.approx(
            [s.output_grad_norm for s in live.time_steps if s.layer == name], rel=1e-6)
    assert [f.code for f in via_spec.findings] == [f.code for f in live.findings]


# --- bidirectional recurrent layers ------------------------------------------------------------


class Bidirectional(nn.Module):
    def __init__(self, cell: type[nn.RNNBase], final: bool = False) -> None:
        super().__init__()
        self.rnn = cell(8, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 3)
        self.final = final

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.rnn(x)[0]
        if self.final:  # each direction's final state (Keras' Bidirectional without sequences)
            return self.head(torch.cat([seq[:, -1, :16], seq[:, 0, 16:]], -1))
        # the mean over positions: every step of both directions reaches the loss (reading only
        # position -1 would see the reverse direction's first step, before any recurrence)
        return self.head(seq.mean(1))


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_unrolled_bidirectional_layer_computes_the_fused_one(cell: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    rnn = cell(5, 7, num_layers=2, bidirectional=True, batch_first=True).double()
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    fused, state = rnn(x)
    unrolled = UnrolledRNN(rnn)
    unrolled.probing = True
    out, ustate = unrolled(x)
    assert torch.allclose(out, fused, rtol=1e-12, atol=1e-12)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    ustate if isinstance(ustate, tuple) else (ustate,), strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert sorted(unrolled.steps) == [0, 1, 2, 3]  # (layer, direction) -> 2 * layer + direction
    # the last layer's reverse direction (key 3) runs from the last position: its first step is
    # the output there
    assert torch.allclose(unrolled.steps[3][0], fused[:, -1, 7:], rtol=1e-12, atol=1e-12)
    assert torch.allclose(unrolled.steps[2][-1], fused[:, -1, :7], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_a_stacked_layer_split_per_layer_computes_the_fused_one(cell: type[nn.RNNBase]) -> None:
    # given an initial state too, and bidirectional: layer k's slice of h_0 goes to layer k
    torch.manual_seed(0)
    rnn = cell(5, 7, num_layers=3, bidirectional=True, batch_first=True).double()
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    h0 = torch.randn(6, 3, 7, dtype=torch.float64)
    hx = (h0, torch.randn(6, 3, 7, dtype=torch.float64)) if cell is nn.LSTM else h0
    fused, state = rnn(x, hx)
    stacked = StackedRNN(rnn)
    for layer in stacked.layers:
        layer.probing = True
    out, sstate = stacked(x, hx)
    assert torch.allclose(out, fused, rtol=1e-12, atol=1e-12)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    sstate if isinstance(sstate, tuple) else (sstate,), strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_bidirectional_onnx_and_live_module_agree(cell: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    model = Bidirectional(cell)
    x = torch.randn(4, 10, 8)
    data = export(model, x)
    import onnx

    (node,) = [n for n in onnx.load_from_string(data).graph.node if n.op_type == cell.__name__]
    assert {a.name: a.s for a in node.attribute}["direction"] == b"bidirectional"
    live = check_module(model, x, seeds=2, verify=False)
    via_onnx = check_onnx(data, seeds=2, verify=False)
    _same(live, via_onnx)
    assert [layer.name for layer in via_onnx.layers] == ["rnn", "head"]
    series = {(s.layer, s.sublayer) for s in via_onnx.time_steps}
    assert series == {("rnn", 0), ("rnn", 1)}
    for sub in (0, 1):  # each direction's dL/dh_t, one per step, in the order it runs them
        assert len([s for s in via_onnx.time_steps if s.sublayer == sub]) == 10


# --- the known-health table, through every door --------------------------------------------------

class HeResidualStack(nn.Module):
    """x + relu(W x) repeated, He-initialised, no normalisation: the variance doubles per block."""

    def __init__(self, width: int = 32, depth: int = 40) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth))
        for block in self.blocks:
            nn.init.kaiming_normal_(block[0].weight, nonlinearity="relu")
            nn.init.zeros_(block[0].bias)
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.out(x)


class BatchNormResNet(nn.Module):
    def __init__(self, channels: int = 8, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                          nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
            for _ in range(blocks))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 8 * 8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = torch.relu(h + block(h))
        return self.head(h)


def _dead_relu() -> nn.Module:
    model = mlp(nn.ReLU, depth=3, he=True)
    with torch.no_grad():
        model[2].bias.fill_(-50.0)  # layer 2's pre-activations are below 0 for every input
    return model


def _big_tanh() -> nn.Module:
    model = mlp(nn.Tanh, depth=4)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 3.0 / m.in_features ** 0.5)
    return model


def _linear(**extra: Any) -> dict[str, Any]:
    return {"type": "linear", "out_features": 64, **extra}


HE = {"init": "kaiming_normal", "bias_init": "zeros"}
TABLE: dict[str, tuple[Any, tuple[int, ...], dict[str, Any], str, bool]] = {
    # name: (module, input shape, the spec of the same architecture and init, expected, train)
    "deep_sigmoid_mlp": (lambda: mlp(nn.Sigmoid), (32, 64), {
        "input": {"shape": [64]},  # PyTorch's default init: U(+-1/sqrt(64))
        "layers": [_linear(activation="sigmoid", init={"scheme": "uniform", "bound": 0.125},
                           bias_init={"scheme": "normal", "std": 0.125 / 3**0.5}, repeat=8),
                   {"type": "linear", "out_features": 10}]}, "vanishing_gradient", False),
    "he_residual_stack": (HeResidualStack, (16, 32), {
        "input": {"shape": [32]},
        "layers": [{"type": "residual", "repeat": 40, "layers": [
            {"type": "linear", "out_features": 32, "activation": "relu", **HE}]},
                   {"type": "linear", "out_features": 10}]}, "exploding_gradient", False),
    "relu_negative_bias": (_dead_relu, (32, 64), {
        "input": {"shape": [64]},
        "layers": [_linear(activation="relu", **HE),
                   _linear(activation="relu", init="kaiming_normal",
                           bias_init={"scheme": "constant", "value": -50.0}),
                   _linear(activation="relu", **HE), {"type": "linear", "out_features": 10}]},
        "dead_units", False),
    "tanh_std_3": (_big_tanh, (64, 64), {
        "input": {"shape": [64]},
        "layers": [_linear(activation="tanh", init={"scheme": "normal", "std": 3 / 8}, repeat=4),
                   {"type": "linear", "out_features": 10}]}, "saturation", False),
    "lstm_100_steps": (lambda: Sequence(nn.LSTM, hidden=32), (8, 100, 8), {
        "input": {"shape": [100, 8]},
        "layers": [{"type": "lstm", "hidden_size": 32}, {"type": "linear", "out_features": 3}]},
        "vanishing_through_time", False),
    "he_relu_mlp": (lambda: mlp(nn.ReLU, he=True), (64, 64), {
        "input": {"shape": [64]},
        "layers": [_linear(activation="relu", **HE, repeat=8), {"type": "linear", "out_features": 10}]},
        "healthy", False),
    "batchnorm_resnet": (BatchNormResNet, (16, 3, 8, 8), {
        "input": {"shape": [3, 8, 8]},
        "layers": [_conv(8, norm="batchnorm", activation="relu"),
                   {"type": "residual", "repeat": 3, "layers": [
                       _conv(8, norm="batchnorm", activation="relu"), _conv(8, norm="batchnorm")]},
                   {"type": "activation", "activation": "relu"}, {"type": "flatten"},
                   {"type": "linear", "out_features": 10}]}, "healthy", True),
}


@pytest.mark.parametrize("case", sorted(TABLE))
def test_known_health_through_every_door(case: str) -> None:
    build, shape, spec, expected, train = TABLE[case]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(shape)
    docs = {"module": check_module(model, x, seeds=2, verify=False),
            "onnx": check_onnx(export(model, x, train), seeds=2, verify=False),
            "spec": check_architecture({**spec, "seeds": 2, "batch_size": shape[0]}, verify=False)}
    for door, doc in docs.items():
        codes = [f.code for f in doc.findings]
        if expected == "healthy":
            assert doc.status == "healthy", (door, doc.summary)
        else:
            assert expected in codes, (door, doc.summary)


def test_bidirectional_lstm_over_100_steps_and_its_chrono_remedy() -> None:
    # each direction of an LSTM with shut forget gates loses its gradient over 100 steps, as one
    # direction does; the chrono gate initialisation is applied to both directions of a copy and
    # re-simulated (shut gates: a default LSTM's is a note without remedies since kerassweep13)
    torch.manual_seed(0)
    model = Bidirectional(nn.LSTM, final=True)
    shut_gates(model.rnn, 16)
    doc = check_module(model, torch.randn(8, 100, 8), seeds=1)
    finding = next(f for f in doc.findings if f.code == "vanishing_through_time")
    chrono = next(r for r in finding.remedies if r.id == "gated_recurrent_cell")
    # fixed only when both directions get it: the reverse one vanishes as much as the forward one
    assert chrono.verified is not None and chrono.verified.fixed, chrono.verified
