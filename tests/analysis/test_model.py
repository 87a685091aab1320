"""The model builder: inits give the variance they promise, and the probed (unrolled)
recurrent forward equals torch's fused kernel."""

from __future__ import annotations

import math

import pytest
import torch

from gradhealth.analysis.model import Probe, build_network, init_weight
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import InitSpec, parse_spec


@pytest.mark.parametrize(("scheme", "activation", "expected_var"), [
    ("kaiming_normal", "relu", 2 / 400),
    ("kaiming_uniform", "relu", 2 / 400),
    ("kaiming_normal", "leaky_relu", 2 / (1 + 0.01**2) / 400),
    ("xavier_normal", "tanh", 2 / (400 + 300)),
    ("xavier_uniform", "tanh", 2 / (400 + 300)),
    ("lecun_normal", "selu", 1 / 400),
])
def test_init_variance_matches_its_formula(scheme, activation, expected_var):
    torch.manual_seed(0)
    w = torch.empty(300, 400, dtype=torch.float64)
    init_weight(w, InitSpec(scheme=scheme), activation)
    # 120k samples: the sample variance is within ~1% of the true one
    assert w.var().item() == pytest.approx(expected_var, rel=0.03)


def test_orthogonal_init_is_orthogonal_with_gain():
    w = torch.empty(64, 64, dtype=torch.float64)
    init_weight(w, InitSpec(scheme="orthogonal", gain=0.9))
    assert torch.allclose(w @ w.T, 0.81 * torch.eye(64, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("layer", [
    {"type": "rnn", "hidden_size": 16, "num_layers": 2},
    {"type": "rnn", "hidden_size": 16, "nonlinearity": "relu"},
    {"type": "lstm", "hidden_size": 16, "num_layers": 2, "forget_bias": 1.0},
    {"type": "lstm", "hidden_size": 16, "forget_bias": "chrono"},
    {"type": "gru", "hidden_size": 16, "output": "sequence"},
])
def test_unrolled_recurrence_equals_the_fused_kernel(layer):
    plan = make_plan(parse_spec({"input": {"shape": [12, 5]}, "layers": [layer]}, ), )
    torch.manual_seed(3)
    net = build_network(plan).double()
    x = torch.randn(4, 12, 5, dtype=torch.float64)
    fused = net(x)
    net.set_probe(Probe())
    unrolled = net(x)
    assert torch.allclose(fused, unrolled, atol=1e-12)


def test_chrono_init_sets_forget_and_input_biases():
    plan = make_plan(parse_spec({"input": {"shape": [100, 3]},
                                 "layers": [{"type": "lstm", "hidden_size": 256, "forget_bias": "chrono"}]}))
    net = build_network(plan)
    b = net.body[0].rnn.bias_ih_l0.detach()
    forget, inp = b[256:512], b[:256]
    assert torch.all(forget >= 0) and torch.all(forget <= math.log(99) + 1e-6)
    assert torch.allclose(inp, -forget)


def test_constant_forget_bias_opens_the_gate():
    plan = make_plan(parse_spec({"input": {"shape": [10, 3]},
                                 "layers": [{"type": "lstm", "hidden_size": 8, "forget_bias": 1.0}]}))
    rnn = build_network(plan).body[0].rnn
    assert torch.all(rnn.bias_ih_l0[8:16] == 1.0) and torch.all(rnn.bias_hh_l0[8:16] == 0.0)
