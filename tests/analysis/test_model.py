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


def test_identity_init_is_the_identity_with_gain_and_a_kernel_passes_each_channel_through():
    w = torch.empty(8, 8, dtype=torch.float64)
    init_weight(w, InitSpec(scheme="identity", gain=0.5))
    assert torch.equal(w, 0.5 * torch.eye(8, dtype=torch.float64))
    k = torch.empty(4, 4, 3, 3, dtype=torch.float64)
    init_weight(k, InitSpec(scheme="identity"))
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    assert torch.allclose(torch.nn.functional.conv2d(x, k, padding=1), x)


def test_an_irnn_spec_gets_an_identity_recurrent_weight_and_keeps_its_gradient_through_time():
    # IRNN (Le, Jaitly & Hinton 2015): a ReLU RNN whose recurrent weight starts at the identity
    # carries h_{t-1} through unchanged where its units are on, so dh_T/dh_t stays near 1 over 100
    # steps, where a small random recurrent weight (std 0.01) loses it in a few steps
    from gradhealth.library import check_architecture

    def spec(recurrent_init: dict) -> dict:
        return {"name": "irnn", "input": {"shape": [100, 8]}, "batch_size": 16, "seeds": 2,
                "layers": [{"type": "rnn", "hidden_size": 32, "nonlinearity": "relu", "init": {"scheme": "normal", "std": 0.001},
                            "recurrent_init": recurrent_init, "bias_init": "zeros"},
                           {"type": "linear", "out_features": 4}], "loss": {"type": "mse"}}
    net = build_network(make_plan(parse_spec(spec({"scheme": "identity"}))))
    rnn = next(m for m in net.modules() if isinstance(m, torch.nn.RNN))
    assert torch.equal(rnn.weight_hh_l0.detach().double(), torch.eye(32, dtype=torch.float64))
    codes = lambda doc: {f.code for f in doc.findings if f.severity != "info"}  # noqa: E731
    assert "vanishing_through_time" not in codes(check_architecture(spec({"scheme": "identity"}), verify=False))
    assert "vanishing_through_time" in codes(check_architecture(spec({"scheme": "normal", "std": 0.01}), verify=False))


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


def test_a_keras_identity_initializer_translates_to_the_spec_scheme():
    from gradhealth.analysis.importers.keras import _Translator

    t = _Translator()
    assert t.init({"class_name": "Identity", "config": {"gain": 0.5}}, "simple_rnn") == {"scheme": "identity", "gain": 0.5}
    assert t.problems == []
