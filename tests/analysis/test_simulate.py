"""The instrumented simulation against independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import UnitStats, prepare, simulate
from gradhealth.analysis.spec import parse_spec
from gradhealth.library import check_architecture
from tests.helpers import mlp


def test_figures_match_a_hand_computation():
    plan = make_plan(parse_spec(mlp(3, width=32, activation="tanh", init="xavier_normal")))
    result = simulate(plan)
    net, x, target = prepare(plan, 0, torch.device("cpu"))
    hs = []
    h = x
    for layer in net.body:
        h = layer(h)
        h.retain_grad()
        hs.append(h)
    loss = nn.functional.cross_entropy(h, target)
    loss.backward()
    for unit, h in zip(result.units, hs, strict=True):
        assert unit.values["output_grad_norm"][0] == pytest.approx(h.grad.norm().item(), rel=1e-12)
        assert unit.values["activation_std"][0] == pytest.approx(h.std().item(), rel=1e-12)
    w = net.body[0].module.weight
    assert result.units[0].values["grad_norm"][0] == pytest.approx(w.grad.norm().item(), rel=1e-12)
    assert result.losses[0] == pytest.approx(loss.item(), rel=1e-12)


def test_dead_and_saturated_fractions_are_counted_per_unit():
    # Bias -10 with small weights: every ReLU unit is negative for every sample (all dead) and
    # every sigmoid output sits below 0.02 (all saturated).
    dead = simulate(make_plan(parse_spec(mlp(2, width=16, init={"scheme": "normal", "std": 0.01},
                                             bias_init={"scheme": "constant", "value": -10.0}))))
    assert dead.units[0].mean("dead_fraction") == 1.0
    sat = simulate(make_plan(parse_spec(mlp(2, width=16, activation="sigmoid",
                                            init={"scheme": "normal", "std": 0.01},
                                            bias_init={"scheme": "constant", "value": -10.0}))))
    assert sat.units[0].mean("saturated_fraction") == 1.0
    healthy = simulate(make_plan(parse_spec(mlp(2, width=64))))
    assert healthy.units[0].mean("dead_fraction") == 0.0


def test_time_steps_equal_an_independent_autograd_computation():
    """dL/dh_t from the probe equals the gradient w.r.t. a leaf hidden state fed to torch's fused RNN."""
    spec = {"input": {"shape": [20, 4]}, "seeds": 1, "batch_size": 8,
            "layers": [{"type": "rnn", "hidden_size": 16}, {"type": "linear", "out_features": 3}]}
    plan = make_plan(parse_spec(spec))
    result = simulate(plan)
    series = result.time_series[0].norms[0]
    net, x, target = prepare(plan, 0, torch.device("cpu"))
    rnn, readout = net.body[0].rnn, net.body[1].module
    for t in (0, 9, 18):
        with torch.no_grad():
            _, h_t = rnn(x[:, : t + 1])  # hidden state after step t
        h_t = h_t.clone().requires_grad_(True)
        rest, _ = rnn(x[:, t + 1:], h_t) if t + 1 < x.shape[1] else (h_t.transpose(0, 1), None)
        loss = nn.functional.cross_entropy(readout(rest[:, -1]), target)
        (grad,) = torch.autograd.grad(loss, h_t)
        assert series[t] == pytest.approx(grad.norm().item(), rel=1e-9), t


def test_float64_keeps_gradients_that_float32_flushes_to_zero():
    spec = {"input": {"shape": [200, 8]}, "seeds": 1, "batch_size": 8,
            "layers": [{"type": "rnn", "hidden_size": 32, "recurrent_init": {"scheme": "normal", "std": 0.05}},
                       {"type": "linear", "out_features": 3}]}
    f64 = simulate(make_plan(parse_spec(spec))).time_series[0].norms[0]
    f32 = simulate(make_plan(parse_spec(spec | {"precision": "float32"}))).time_series[0].norms[0]
    assert f32[0] == 0.0  # float32 lost it entirely
    assert 0 < f64[0] < 1e-38  # float64 still measures it


def test_seeds_are_reproducible_and_independent():
    plan = make_plan(parse_spec(mlp(4, width=32) | {"seeds": 3}))
    a, b = simulate(plan), simulate(plan)
    np.testing.assert_array_equal(a.units[0].values["grad_norm"], b.units[0].values["grad_norm"])
    assert len(set(a.units[0].values["grad_norm"].tolist())) == 3


def test_dropout_masks_come_from_the_seed_and_leave_the_global_generator_alone():
    spec = mlp(2, width=32)
    spec["layers"].insert(1, {"type": "dropout", "p": 0.5})
    plan = make_plan(parse_spec(spec))
    torch.manual_seed(123)
    a = simulate(plan)
    after_a = torch.rand(3)
    b = simulate(plan)  # the global generator has moved on: the masks must not follow it
    np.testing.assert_array_equal(a.units[0].values["grad_norm"], b.units[0].values["grad_norm"])
    torch.manual_seed(123)
    torch.testing.assert_close(torch.rand(3), after_a)  # simulate drew nothing from it
    # the masks do act: without dropout the first layer's gradient is not the same
    no_drop = simulate(make_plan(parse_spec(mlp(2, width=32))))
    assert not np.allclose(a.units[0].values["grad_norm"], no_drop.units[0].values["grad_norm"])


def test_nonfinite_is_located_at_the_first_layer():
    spec = parse_spec({"input": {"shape": [16]}, "seeds": 1,
                       "layers": [{"type": "linear", "out_features": 16, "init": {"scheme": "normal", "std": 1.0}},
                                  {"type": "linear", "out_features": 16, "init": {"scheme": "normal", "std": 100.0}},
                                  {"type": "linear", "out_features": 3}]})
    # An input scale the spec refuses (at most 100) is set past validation: what is pinned here is
    # that the simulator finds the first layer whose output overflows, not what a user may ask for.
    spec.input = spec.input.model_copy(update={"scale": 1e306})
    result = simulate(make_plan(spec))
    flags = [u.mean("nonfinite_forward") for u in result.units]
    assert flags[0] == 0.0 and flags[1] == 1.0
    assert not math.isfinite(result.losses[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_and_cpu_give_the_same_figures():
    plan = make_plan(parse_spec(mlp(10, width=64)))
    cpu, gpu = simulate(plan, device="cpu"), simulate(plan, device="cuda")
    for a, b in zip(cpu.units, gpu.units, strict=True):
        np.testing.assert_allclose(a.values["output_grad_norm"], b.values["output_grad_norm"], rtol=1e-6)


# --- the per-seed reductions, against numpy's nan-aware ones ---------------------------------

_EDGES = (0.0, 1e-300, 0.5, 3.2, 7e10, math.inf, math.nan)


def _numpy_figures(v: np.ndarray) -> tuple[float, float, float]:
    """What UnitStats computed with numpy before: geometric mean, mean, std of log10."""
    if np.all(np.isnan(v)):
        geo = mean = math.nan
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            geo = float(np.exp(np.nanmean(np.log(v))))
        mean = float(np.nanmean(v))
    positive = len(v) >= 2 and bool(np.all(np.isfinite(v))) and bool(np.all(v > 0))
    std = float(np.std(np.log10(v))) if positive else math.nan
    return geo, mean, std


@pytest.mark.parametrize("n", [1, 2, 3])
def test_seed_reductions_agree_with_numpy_on_every_edge_case(n):
    unit = UnitStats("u", "/layers/0", "linear", None, 0, True)
    for combo in itertools.product(_EDGES, repeat=n):
        v = np.array(combo)
        unit.values = {"m": v}
        got = (unit.geo("m"), unit.mean("m"), unit.log10_std("m"))
        for ours, theirs in zip(got, _numpy_figures(v), strict=True):
            assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, rel=1e-12), combo


def _hardtanh_mlp(init: dict) -> dict:
    return {"name": "hardtanh mlp", "input": {"shape": [256]}, "batch_size": 64, "layers": [
        {"type": "linear", "out_features": 256, "activation": "hardtanh", "init": init, "bias_init": "zeros",
         "repeat": 12}, {"type": "linear", "out_features": 10}]}


def test_a_hardtanh_at_a_correct_init_is_not_saturated_and_one_scaled_up_is() -> None:
    # a unit-variance pre-activation is past hardtanh's kink erfc(1/sqrt 2) = 31.7% of the time:
    # that is a correct init (sigmoid and tanh are counted only deep in their tails, which such a
    # pre-activation hardly reaches), not a saturated layer
    healthy = check_architecture(_hardtanh_mlp({"scheme": "xavier_uniform"}))
    fractions = [layer.saturated_fraction for layer in healthy.layers if layer.saturated_fraction is not None]
    # measured: the first layer, whose input has unit variance, at that share (deeper layers' inputs
    # shrink, as hardtanh's variance map has its fixed point below 1)
    assert 0.27 < max(fractions) < 0.37
    assert not [f for f in healthy.findings if f.code == "saturation"]
    # std 0.25 over fan-in 256: pre-activations of std ~4 or more, past the kink ~80% of the time
    saturated = check_architecture(_hardtanh_mlp({"scheme": "normal", "std": 0.25}))
    [f] = [f for f in saturated.findings if f.code == "saturation"]
    assert f.severity == "error" and f.evidence.value > 0.6
