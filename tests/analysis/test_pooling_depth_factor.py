"""The through-depth ratio takes out the average pools' structural factor (specsweep10 #2/#3).

An average over k disjoint elements gives each input 1/k of its output's gradient, so the gradient's
norm over k times as many elements is exactly 1/sqrt(k) of it: with identity layers between 2x2
average pools each pool halves ||dL/dh|| though every layer gets the same weight gradient. A max
pool routes each gradient to one input and keeps the norm exactly."""

from __future__ import annotations

import math

import pytest

from gradhealth import check_architecture
from gradhealth.analysis.check import parse_spec
from gradhealth.analysis.findings import depth_ratio, pooling_factor
from gradhealth.analysis.limits import Limits
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import simulate


def _identity_net(pool: str) -> dict:
    conv = {"type": "conv2d", "out_channels": 4, "kernel_size": 1, "init": "identity"}
    return {
        "input": {"shape": [4, 8, 8]},
        "batch_size": 16,
        "layers": [conv, {"type": pool, "kernel_size": 2}, conv, {"type": pool, "kernel_size": 2}, conv,
                   {"type": "flatten"}, {"type": "linear", "out_features": 10}],
    }


def _result(raw: dict):
    return simulate(make_plan(parse_spec(raw), Limits()))


def _raw_ratio(units) -> float:
    return units[0].geo("output_grad_norm") / units[-1].geo("output_grad_norm")


@pytest.mark.parametrize("pool", ["avgpool2d", "maxpool2d"])
def test_identity_convs_between_pools_read_a_ratio_of_one(pool: str) -> None:
    result = _result(_identity_net(pool))
    ratio, units = depth_ratio(result)
    assert [u.type for u in units] == ["conv2d", "conv2d", "conv2d"]
    # the raw norms: 1/2 per 2x2 average pool (1/sqrt(4)), kept by a max pool
    assert _raw_ratio(units) == pytest.approx(0.25 if pool == "avgpool2d" else 1.0, rel=1e-6)
    assert pooling_factor(result, units) == pytest.approx(4.0 if pool == "avgpool2d" else 1.0)
    assert ratio == pytest.approx(1.0, abs=1e-6)
    doc = check_architecture(_identity_net(pool), seeds=2)
    assert not [f for f in doc.findings if f.code in ("vanishing_gradient", "exploding_gradient")]


def test_global_average_pool_counts_its_spatial_size() -> None:
    # pool mean over a 4x4 map: sqrt(16) = 4 between the convs before and after it... as a chain
    # conv -> pool(mean) -> linear -> linear: the pool averages 16 elements per output
    raw = {
        "input": {"shape": [4, 4, 4]},
        "batch_size": 16,
        "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 1, "init": "identity"},
                   {"type": "pool", "mode": "mean"},
                   {"type": "linear", "out_features": 4, "init": "identity"},
                   {"type": "linear", "out_features": 3}],
    }
    result = _result(raw)
    ratio, units = depth_ratio(result)
    assert [u.type for u in units] == ["conv2d", "linear"]
    assert _raw_ratio(units) == pytest.approx(0.25, rel=1e-6)
    assert ratio == pytest.approx(1.0, abs=1e-6)


def test_lenet_ratio_is_the_raw_one_times_two_per_pool() -> None:
    # d2l's sigmoid LeNet (Xavier, SGD 0.5), as specsweep10's lenet_sigmoid_xavier_sgd05
    layers = [
        {"type": "conv2d", "out_channels": 6, "kernel_size": 5, "padding": 2, "activation": "sigmoid",
         "init": "xavier_normal"},
        {"type": "avgpool2d", "kernel_size": 2, "stride": 2},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 5, "activation": "sigmoid", "init": "xavier_normal"},
        {"type": "avgpool2d", "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 120, "activation": "sigmoid", "init": "xavier_normal"},
        {"type": "linear", "out_features": 84, "activation": "sigmoid", "init": "xavier_normal"},
        {"type": "linear", "out_features": 10, "init": "xavier_normal"},
    ]
    raw = {"input": {"shape": [1, 28, 28], "range": [0, 1]}, "batch_size": 32,
           "optimizer": {"type": "sgd", "lr": 0.5}, "layers": layers}
    result = _result(raw)
    ratio, units = depth_ratio(result)
    assert ratio == pytest.approx(_raw_ratio(units) * 2 * 2, rel=1e-9)
    assert math.isfinite(ratio)
    # under torch's default init the shrink is past the bar still: the finding says the factor
    for layer in layers:
        layer.pop("init", None)
    raw = {**raw, "optimizer": {"type": "adam", "lr": 0.001}}
    doc = check_architecture(raw).model_dump(mode="json")
    (f,) = [f for f in doc["findings"] if f["code"] == "vanishing_gradient"]
    ev = f["evidence"]
    assert ev["pooling_factor"] == pytest.approx(4.0)
    assert ev["raw_grad_ratio"] == pytest.approx(ev["first_output_grad_norm"] / ev["last_output_grad_norm"], rel=1e-9)
    assert ev["grad_ratio"] == pytest.approx(ev["raw_grad_ratio"] * 4, rel=1e-9)
    assert "average pooling" in f["explanation"]
