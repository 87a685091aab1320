"""Planning: shapes and sizes before allocation, limits, names."""

from __future__ import annotations

import pytest
import torch

from gradhealth.analysis.model import build_network
from gradhealth.analysis.plan import Limits, make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import LimitExceeded, SpecError
from tests.helpers import example


@pytest.mark.parametrize("name", ["small_cnn", "tanh_rnn_long", "lstm_long", "transformer_pre_ln",
                                  "transformer_post_ln", "residual_mlp_unnormalised", "deep_sigmoid_mlp"])
def test_parameter_count_matches_the_built_model(name):
    plan = make_plan(parse_spec(example(name)))
    net = build_network(plan)
    assert plan.parameters == sum(p.numel() for p in net.parameters())


def test_planned_shapes_match_the_real_forward_pass():
    plan = make_plan(parse_spec(example("small_cnn")))
    net = build_network(plan).double()
    x = torch.randn(2, *plan.input_shape, dtype=torch.float64)
    for unit, module in zip(plan.units, net.body, strict=True):
        x = module(x)
        assert tuple(x.shape[1:]) == unit.out_shape, unit.name


def test_names_follow_the_spec_path():
    plan = make_plan(parse_spec({"input": {"shape": [8]}, "layers": [
        {"type": "linear", "out_features": 8, "repeat": 2},
        {"type": "residual", "repeat": 2, "layers": [{"type": "linear", "out_features": 8}]},
        {"type": "linear", "out_features": 3}]}))
    names = [u.name for u in plan.all_units()]
    assert names == ["layers[0].linear#0", "layers[0].linear#1",
                     "layers[1].residual#0", "layers[1].residual#0.layers[0].linear",
                     "layers[1].residual#1", "layers[1].residual#1.layers[0].linear", "layers[2].linear"]
    assert plan.all_units()[3].pointer == "/layers/1/layers/0"


def test_a_trillion_parameters_is_refused_with_both_figures():
    spec = parse_spec({"input": {"shape": [1_000_000]}, "layers": [{"type": "linear", "out_features": 1_000_000}]})
    with pytest.raises(LimitExceeded) as info:
        make_plan(spec)
    detail = info.value.detail
    assert "1,000,001,000,000 parameters" in detail and "MiB of memory per seed" in detail
    assert info.value.status == 422


def test_activation_memory_limit_names_the_batch_size():
    spec = parse_spec({"input": {"shape": [3, 512, 512]}, "batch_size": 4096, "layers": [
        {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}]})
    with pytest.raises(LimitExceeded) as info:
        make_plan(spec, Limits())
    assert any(p.pointer == "/batch_size" for p in info.value.problems)


def test_huge_repeat_is_refused_without_expanding_it():
    spec = parse_spec({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 4,
                                                            "repeat": 10**12}]})
    with pytest.raises(LimitExceeded, match="repeat"):
        make_plan(spec)


@pytest.mark.parametrize(("raw", "pointer"), [
    ({"input": {"shape": [4]}, "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3}]}, "/layers/0"),
    ({"input": {"shape": [4]}, "layers": [{"type": "lstm", "hidden_size": 2}]}, "/layers/0"),
    ({"input": {"shape": [4]}, "layers": [{"type": "residual", "layers": [{"type": "linear", "out_features": 3}]}]},
     "/layers/0/layers"),
    ({"input": {"shape": [4]}, "loss": {"type": "cross_entropy", "classes": 10},
      "layers": [{"type": "linear", "out_features": 3}]}, "/loss/classes"),
    ({"input": {"tokens": {"vocab_size": 10, "seq_len": 4}}, "layers": [{"type": "linear", "out_features": 3}]},
     "/layers/0"),
    ({"input": {"shape": [3, 8, 8]}, "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 9}]},
     "/layers/0/kernel_size"),
])
def test_shape_errors_point_at_the_layer(raw, pointer):
    with pytest.raises(SpecError) as info:
        make_plan(parse_spec(raw))
    assert info.value.problems[0].pointer == pointer


@pytest.mark.parametrize("mode", ["mean", "max"])
@pytest.mark.parametrize("conv,shape", [("conv2d", [3, 9, 7]), ("conv1d", [3, 11])])
def test_pool_over_a_convolution_is_global_pooling_of_each_channel(conv, shape, mode):
    raw = {"input": {"shape": shape}, "seeds": 1,
           "layers": [{"type": conv, "out_channels": 5, "kernel_size": 3, "activation": "relu"},
                      {"type": "pool", "mode": mode}, {"type": "linear", "out_features": 2}]}
    plan = make_plan(parse_spec(raw))
    assert plan.units[1].out_shape == (5,)
    net = build_network(plan)
    x = torch.randn(4, *shape)
    features = net.body[0](x)
    expected = features.flatten(2).amax(2) if mode == "max" else features.flatten(2).mean(2)
    torch.testing.assert_close(net.body[1](features), expected)


def test_pool_last_is_for_sequences_only():
    raw = {"input": {"shape": [3, 8, 8]},
           "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                      {"type": "pool", "mode": "last"}, {"type": "linear", "out_features": 2}]}
    with pytest.raises(SpecError) as info:
        make_plan(parse_spec(raw))
    assert info.value.problems[0].pointer == "/layers/1"
    assert "mode `last` is for sequences" in info.value.problems[0].message


def test_cross_entropy_over_one_output_unit_is_a_finding_with_the_loss_that_fits() -> None:
    # Keras trains a one-unit softmax or sigmoid under categorical cross-entropy without complaint
    # (StackOverflow 58609115): the loss over one class is 0 whatever the output, so nothing learns.
    # Refusing the spec (or the Keras file) left the user without the reason.
    from gradhealth.library import check_architecture

    spec = {"input": {"shape": [8]}, "loss": {"type": "cross_entropy"},
            "layers": [{"type": "linear", "out_features": 16, "activation": "relu"}, {"type": "linear", "out_features": 1}]}
    assert make_plan(parse_spec(spec), Limits()).classes == 1
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.severity == "error" and f.evidence.value == 1.0 and "a single class is 0" in f.explanation
    [r] = f.remedies
    assert r.patch == [{"op": "replace", "path": "/loss/type", "value": "binary_cross_entropy"}]
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0
