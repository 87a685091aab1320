"""`large_updates` in the architecture check: the first optimizer step's ||delta W|| / ||W||.

The check computes the first step in closed form; the tests run torch.optim's own optimizers for
one step on the same gradients and measure the change of the weights, and check the bundled
numbers against the first-step formulas where they have a simple value (Adam: lr per weight).
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth.analysis.importers.keras import check_keras, keras_optimizer, read_keras_training
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.rules import detect
from gradhealth.analysis.simulate import bare_step, prepare, simulate, update_ratios
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.errors import SpecError
from gradhealth.library import check_architecture
from tests.analysis.test_keras_import import _dense, _seq
from tests.helpers import mlp


def _torch_optimizer(opt: dict[str, Any], params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """torch.optim's optimizer for a spec ``optimizer`` dict, with torch's own defaults."""
    kw: dict[str, Any] = {"lr": opt["lr"], "weight_decay": opt.get("weight_decay", 0.0)}
    if opt["type"] == "sgd":
        return torch.optim.SGD(params, momentum=opt.get("momentum", 0.0), nesterov=opt.get("nesterov", False), **kw)
    if opt["type"] == "rmsprop":
        return torch.optim.RMSprop(params, alpha=opt.get("alpha", 0.99), momentum=opt.get("momentum", 0.0), **kw)
    if opt["type"] == "adadelta":
        return torch.optim.Adadelta(params, rho=opt.get("alpha", 0.9), eps=opt.get("eps", 1e-6), **kw)
    if opt["type"] == "nadam":
        return torch.optim.NAdam(params, **kw)
    if opt["type"] == "adagrad":
        return torch.optim.Adagrad(params, initial_accumulator_value=opt.get("initial_accumulator", 0.0),
                                   eps=opt.get("eps", 1e-10), **kw)
    return (torch.optim.AdamW if opt["type"] == "adamw" else torch.optim.Adam)(params, **kw)


OPTIMIZERS = [
    {"type": "sgd", "lr": 0.5},
    {"type": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True},
    {"type": "sgd", "lr": 0.5, "weight_decay": 0.1},
    {"type": "adam", "lr": 0.01},
    {"type": "adamw", "lr": 0.01, "weight_decay": 0.5},
    {"type": "rmsprop", "lr": 0.01, "alpha": 0.9},
    {"type": "adadelta", "lr": 1.0},  # torch's rho 0.9 when absent
    {"type": "adadelta", "lr": 1.0, "alpha": 0.95, "eps": 1e-7},  # Keras' defaults
    {"type": "nadam", "lr": 0.01},
    {"type": "nadam", "lr": 0.01, "weight_decay": 0.1},
    {"type": "adagrad", "lr": 0.01},  # torch's: the sum starts at 0
    {"type": "adagrad", "lr": 0.5, "initial_accumulator": 0.1, "weight_decay": 0.1},  # Keras' start
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_update_ratio_is_torch_optims_own_first_step(opt: dict[str, Any]) -> None:
    plan = make_plan(parse_spec(mlp(3, width=32) | {"optimizer": opt, "seeds": 1}))
    net, x, target = prepare(plan, 0, torch.device("cpu"))
    bare_step(net, x, target)
    got = update_ratios(net, plan.spec.optimizer)  # closed form; leaves the weights alone
    weights = {u.name: u.weight() for u in net.units() if u.weight() is not None and u.weight().dim() >= 2}
    before = {name: w.detach().clone() for name, w in weights.items()}
    _torch_optimizer(opt, list(net.parameters())).step()
    assert set(got) == set(weights) and len(got) == 4  # three hidden layers and the readout
    # (torch's NAdam computes its momentum schedule from a float32 step counter)
    rel = 1e-7 if opt["type"] == "nadam" else 1e-9
    for name, w in weights.items():
        expected = float((w.detach() - before[name]).norm() / before[name].norm())
        assert got[name] == pytest.approx(expected, rel=rel), name


def test_the_simulation_reports_each_seeds_ratio_and_only_with_an_optimizer() -> None:
    opt = {"type": "adam", "lr": 0.02}
    plan = make_plan(parse_spec(mlp(2, width=16) | {"optimizer": opt, "seeds": 2}))
    result = simulate(plan)
    for seed in range(2):
        net, x, target = prepare(plan, seed, torch.device("cpu"))
        bare_step(net, x, target)
        for name, value in update_ratios(net, plan.spec.optimizer).items():
            assert result.unit(name).values["update_ratio"][seed] == pytest.approx(value, rel=1e-9)
    plain = simulate(make_plan(parse_spec(mlp(2, width=16))))
    assert all("update_ratio" not in u.values for u in plain.units)


def _spec(opt: dict[str, Any] | None) -> dict[str, Any]:
    spec = mlp(4, width=64) | {"seeds": 2}
    if opt is not None:
        spec["optimizer"] = opt
    return spec


def test_a_learning_rate_far_too_large_is_found_and_the_verified_rate_fixes_it() -> None:
    # Adam's first step is about lr per weight, so the ratio is lr * sqrt(n) / ||W||. He init on
    # the 64x64 layers: ||W|| ~ sqrt(n * 2 / 64), ratio 0.3 * sqrt(64 / 2) = 1.70. The readout keeps
    # torch's default U(+-1/sqrt(64)): ||W|| ~ sqrt(n / (3 * 64)), ratio 0.3 * sqrt(3 * 64) = 4.16,
    # the worst layer.
    doc = check_architecture(_spec({"type": "adam", "lr": 0.3}))
    found = {f.code: f for f in doc.findings}
    assert "large_updates" in found
    f = found["large_updates"]
    assert f.severity == "error"
    ratios = f.evidence.model_dump()["update_ratios"]
    hidden = [v for name, v in ratios.items() if name != f.evidence.layers[0]]
    assert f.evidence.value == pytest.approx(0.3 * math.sqrt(3 * 64), rel=0.05)  # a finite ||W||
    assert len(hidden) == 4 and all(v == pytest.approx(0.3 * math.sqrt(32), rel=0.05) for v in hidden)
    remedy = next(r for r in f.remedies if r.id == "lower_learning_rate")
    assert remedy.patch[0]["path"] == "/optimizer/lr"
    new_lr = remedy.patch[0]["value"]
    # each layer is brought to a tenth of the line it is judged by (specsweep14 P1): the hidden
    # layers' 0.1 (to 1e-2), the readout's fresh-head line 1 under Adam (to 0.1); the hidden ones,
    # 1.70 against 0.01, need the larger cut: lr 0.3 x 0.01 / (0.3 sqrt(32)), the readout then at
    # 0.01 x sqrt(3 x 64) / sqrt(32) = 0.01 sqrt(6)
    assert new_lr == pytest.approx(0.3 * 1e-2 / max(hidden), rel=1e-2)
    assert new_lr == pytest.approx(1e-2 / math.sqrt(32), rel=0.05)
    assert remedy.verified is not None and remedy.verified.fixed
    # the ratio is linear in lr
    assert remedy.verified.after == pytest.approx(1e-2 * f.evidence.value / max(hidden), rel=1e-2)
    assert remedy.verified.after == pytest.approx(1e-2 * math.sqrt(6), rel=0.05)
    assert remedy.recommended


@pytest.mark.parametrize("opt,severity", [
    ({"type": "adam", "lr": 1e-3}, None),  # ~0.006: a healthy step
    ({"type": "adam", "lr": 0.03}, "warning"),  # ~0.17
    ({"type": "sgd", "lr": 0.1}, None),
    (None, None),
])
def test_severity_follows_the_thresholds(opt: dict[str, Any] | None, severity: str | None) -> None:
    doc = check_architecture(_spec(opt), verify=False)
    found = {f.code: f.severity for f in doc.findings}
    assert found.get("large_updates") == severity


def test_an_invalid_optimizer_is_a_spec_error_at_its_pointer() -> None:
    for bad, pointer in (({"type": "adam", "lr": 1e7}, "/optimizer/lr"),  # (0 or below: a finding)
                         ({"type": "adam", "lr": "fast"}, "/optimizer/lr"),
                         ({"type": "lion", "lr": 1e-3}, "/optimizer/type"),
                         ({"lr": 1e-3}, "/optimizer/type")):
        with pytest.raises(SpecError, match=pointer):
            parse_spec(_spec(bad))


# --- Keras: the optimizer the file was compiled with ------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    ("adam", {"type": "adam", "lr": 0.001, "eps": 1e-7}),
    ("sgd", {"type": "sgd", "lr": 0.01}),
    # Keras 2's training_config
    ({"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.5, "beta_1": 0.9,
                                       "epsilon": 1e-07, "amsgrad": False}},
     {"type": "adam", "lr": 0.5, "eps": 1e-7}),
    ({"class_name": "SGD", "config": {"lr": 0.2, "momentum": 0.9, "nesterov": True}},
     {"type": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True}),
    ({"class_name": "RMSprop", "config": {"learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-07}},
     {"type": "rmsprop", "lr": 0.001, "alpha": 0.9, "eps": 1e-7}),
    # Keras 3's compile_config: weight_decay is decoupled in every optimizer
    ({"module": "keras.optimizers", "class_name": "Adam", "registered_name": None,
      "config": {"name": "adam", "learning_rate": 0.01, "weight_decay": 0.1, "epsilon": 1e-07}},
     {"type": "adamw", "lr": 0.01, "weight_decay": 0.1, "eps": 1e-7}),
    ({"class_name": "AdamW", "config": {"learning_rate": 0.001}},
     {"type": "adamw", "lr": 0.001, "weight_decay": 0.004, "eps": 1e-7}),
    ({"class_name": "Adam", "config": {"learning_rate": {
        "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 100}}}},
     {"type": "adam", "lr": 0.1, "eps": 1e-7}),
    ({"class_name": "Adamax", "config": {"learning_rate": 0.002}}, {"type": "adam", "lr": 0.002, "eps": 1e-7}),
    # no spec equivalent, or nothing to read: no optimizer (the model is still checked)
    ({"class_name": "Nadam", "config": {"learning_rate": 0.002}}, {"type": "nadam", "lr": 0.002, "eps": 1e-7}),
    ({"class_name": "Ftrl", "config": {"learning_rate": 0.01}}, None),
    ({"class_name": "Lion", "config": {"learning_rate": 0.01}}, None),
    ({"class_name": "Adam", "config": {"learning_rate": "fast"}}, None),
    ({"class_name": "RMSprop", "config": {"learning_rate": 0.001, "rho": None}}, None),
    ({"class_name": "RMSprop", "config": {"learning_rate": 0.001, "rho": "x"}}, None),
    (None, None),
])
def test_keras_optimizers_translate_to_the_spec(value: Any, expected: dict[str, Any] | None) -> None:
    assert keras_optimizer(value) == expected
    if expected is not None:
        parse_spec(_spec(expected))  # every translation is a valid spec optimizer


def _h5(config: dict[str, Any], training: dict[str, Any]) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["training_config"] = json.dumps(training)
    return buf.getvalue()


def test_a_keras_file_compiled_with_a_large_rate_gets_large_updates() -> None:
    cfg = _seq(*[_dense(f"d{i}", 64, "relu") for i in range(3)], _dense("out", 10, "softmax"), shape=[64])
    big = {"loss": "categorical_crossentropy",
           "optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 0.5}}}
    data = _h5(cfg, big)
    assert read_keras_training(data)[2] == {"type": "adam", "lr": 0.5, "eps": 1e-7}
    doc = check_keras(data, seeds=1, verify=False)
    f = next(f for f in doc.findings if f.code == "large_updates")
    assert f.evidence.layers and all(name in ("d0", "d1", "d2", "out") for name in f.evidence.layers)
    calm = {**big, "optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 1e-4}}}
    assert all(f.code != "large_updates" for f in check_keras(_h5(cfg, calm), seeds=1, verify=False).findings)


# --- the live door: the user's own torch optimizer -------------------------------------------------


def _mlp_module() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(3):
        layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(64, 10))


def test_a_live_modules_own_optimizer_is_read_and_its_rate_verified() -> None:
    from gradhealth import check_module
    from gradhealth.testing import assert_gradients_healthy

    model = _mlp_module()
    before = [p.detach().clone() for p in model.parameters()]
    # torch's default Linear init, U(+-1/sqrt(64)): ||W|| = sqrt(n / (3 * 64)), and Adam's first
    # step ~ lr * sqrt(n): every layer's ratio is lr * sqrt(3 * 64) = 4.16 at lr 0.3
    doc = check_module(model, torch.randn(8, 64), seeds=2, optimizer=torch.optim.Adam(model.parameters(), lr=0.3))
    f = next(f for f in doc.findings if f.code == "large_updates")
    assert f.severity == "error" and f.evidence.value == pytest.approx(0.3 * math.sqrt(3 * 64), rel=0.1)
    fix = next(r for r in f.remedies if r.id == "lower_learning_rate")
    assert fix.verified.fixed and fix.verified.after == pytest.approx(1e-2, rel=0.02)
    assert fix.patch == [] and "0.3 to 0.0007" in fix.change  # no spec to patch: the rate is named
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # untouched
    with pytest.raises(AssertionError, match="large_updates"):
        assert_gradients_healthy(model, torch.randn(8, 64), seeds=1, verify=False,
                                 optimizer={"type": "adam", "lr": 0.3})
    calm = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    assert_gradients_healthy(model, torch.randn(8, 64), seeds=1, verify=False, optimizer=calm)


def test_a_live_optimizer_the_check_cannot_step_is_refused_by_name() -> None:
    from gradhealth.analysis.module_check import optimizer_spec

    model = _mlp_module()
    spec = optimizer_spec(torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, momentum=0.5))
    assert spec is not None and (spec.type, spec.lr, spec.alpha, spec.momentum) == ("rmsprop", 0.01, 0.9, 0.5)
    with pytest.raises(ValueError, match="Adamax is not one whose first step"):
        optimizer_spec(torch.optim.Adamax(model.parameters()))
    adagrad = optimizer_spec(torch.optim.Adagrad(model.parameters(), lr=0.1, initial_accumulator_value=0.2))
    assert adagrad is not None and (adagrad.type, adagrad.lr, adagrad.initial_accumulator) == ("adagrad", 0.1, 0.2)


def test_a_keras_file_with_stored_weights_checks_its_compiled_optimizer() -> None:
    # the stored weights go through the graph simulation (weights: as_given): the compiled
    # optimizer must reach it too, and an explicit optimizer overrides the file's
    import h5py
    import numpy as np

    from tests.analysis.test_keras_layers import _h5_keras2, _prelu_model, _stored

    stored, _ = _stored(np.zeros(6, np.float32))
    buf = io.BytesIO(_h5_keras2(_prelu_model("keras2"), stored))
    with h5py.File(buf, "a") as f:
        f.attrs["training_config"] = json.dumps({
            "loss": "categorical_crossentropy",
            "optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 0.5}}})
    data = buf.getvalue()
    doc = check_keras(data, seeds=1, verify=False)
    assert "as stored in the file" in doc.summary
    f = next(f for f in doc.findings if f.code == "large_updates")
    # the stored kernels are standard normal, ||W|| ~ sqrt(n): Adam's lr * sqrt(n) / ||W|| ~ lr
    assert set(f.evidence.layers) == {"d", "out"} and f.evidence.value == pytest.approx(0.5, rel=0.25)
    calm = check_keras(data, seeds=1, verify=False, optimizer={"type": "adam", "lr": 1e-5})
    assert all(f.code != "large_updates" for f in calm.findings)


@pytest.mark.parametrize("text,says", [
    ('{"type": "adam", "lr": -1e7}', "/lr: Input should be greater than or equal to -1000000"),
    ('{"type": "adam"}', "/lr: Field required"),
    ('{"type": "lion", "lr": 0.1}', "/type"),
    ('{"type": "sgd", "lr": 0.1, "bogus": 1}', "/bogus: unknown field"),
    ("adam", "not JSON"),
    ("[1]", "not a JSON object"),
    ("{" + " " * 1000 + "}", "over 1000 characters"),
])
def test_an_optimizer_option_names_what_is_wrong(text: str, says: str) -> None:
    from gradhealth.analysis.spec import parse_optimizer

    with pytest.raises(SpecError, match=says.replace("(", r"\(")):
        parse_optimizer(text)
    assert parse_optimizer('{"type": "sgd", "lr": 1, "momentum": 0.9}') == {
        "type": "sgd", "lr": 1.0, "momentum": 0.9}


def test_a_learning_rate_far_too_small_is_found_on_the_median_weight_and_raised() -> None:
    # Adam's first step is about lr per weight, so the readout (torch's default init, the smallest
    # ||W|| per weight) moves fastest: lr * sqrt(3 * 64), 6.9e-7 at lr 5e-8; the He-initialised
    # 64x64 layers, which hold most of the weights, lr * sqrt(64 / 2) = 2.8e-7: the median weight's
    # layer's figure is judged (peersweep18: a small head no longer speaks for the network)
    lr = 5e-8
    doc = check_architecture(_spec({"type": "adam", "lr": lr}))
    f = next(f for f in doc.findings if f.code == "small_updates")
    assert f.severity == "warning" and doc.status == "warning"
    assert f.evidence.value == pytest.approx(lr * math.sqrt(64 / 2), rel=0.05)
    ev = f.evidence.model_dump()
    ratios = ev["update_ratios"]
    assert ev["max_update_ratio"] == pytest.approx(lr * math.sqrt(3 * 64), rel=0.05)
    assert ev["fastest_layer"] == max(ratios, key=ratios.get)
    assert ratios[f.evidence.layers[0]] == f.evidence.value
    remedy = next(r for r in f.remedies if r.id == "raise_learning_rate")
    new_lr = remedy.patch[0]["value"]
    assert new_lr == pytest.approx(lr * 1e-4 / f.evidence.value, rel=1e-2)
    assert remedy.verified is not None and remedy.verified.fixed
    assert remedy.verified.after == pytest.approx(1e-4, rel=1e-2)  # the ratio is linear in lr


@pytest.mark.parametrize("opt,found", [
    ({"type": "adam", "lr": 1e-6}, False),  # ~1.4e-5: slow, but a fine-tuning rate
    ({"type": "sgd", "lr": 1e-9}, True),
    ({"type": "sgd", "lr": 0.1}, False),
])
def test_small_updates_only_three_decades_under_a_healthy_step(opt: dict[str, Any], found: bool) -> None:
    doc = check_architecture(_spec(opt), verify=False)
    assert ("small_updates" in {f.code for f in doc.findings}) == found


def test_a_keras_file_compiled_with_a_tiny_rate_gets_small_updates() -> None:
    cfg = _seq(*[_dense(f"d{i}", 64, "relu") for i in range(3)], _dense("out", 10, "softmax"), shape=[64])
    tiny = {"loss": "categorical_crossentropy",
            "optimizer_config": {"class_name": "SGD", "config": {"learning_rate": 1e-9}}}
    doc = check_keras(_h5(cfg, tiny), seeds=1)
    f = next(f for f in doc.findings if f.code == "small_updates")
    remedy = next(r for r in f.remedies if r.id == "raise_learning_rate")
    assert remedy.verified is not None and remedy.verified.fixed
    assert remedy.verified.after == pytest.approx(1e-4, rel=1e-2)


def test_sgd_steps_made_small_by_a_vanishing_network_are_not_blamed_on_the_rate() -> None:
    # tanh at std 0.01 per weight: the signal and its gradient shrink ~100x a layer, so SGD's
    # step (lr x the gradient) is tiny at any usual rate; the network is the finding, not the rate
    spec = {"input": {"shape": [64]}, "seeds": 2, "optimizer": {"type": "sgd", "lr": 0.01},
            "layers": [{"type": "linear", "out_features": 64, "activation": "tanh", "bias": False,
                        "init": {"scheme": "normal", "std": 0.01}, "repeat": 6},
                       {"type": "linear", "out_features": 10}]}
    codes = {f.code for f in check_architecture(spec, verify=False).findings}
    assert "vanishing_gradient" in codes and "small_updates" not in codes
    # (the step is small indeed: the fastest layer moves by ~3e-8 of its weights)
    result = simulate(make_plan(parse_spec(spec)))
    assert max(u.geo("update_ratio") for u in result.units if "update_ratio" in u.values) < 1e-6
    # Adam's step does not scale with the gradient: a tiny rate is the rate's fault there too
    spec["optimizer"] = {"type": "adam", "lr": 1e-9}
    codes = {f.code for f in check_architecture(spec, verify=False).findings}
    assert {"vanishing_gradient", "small_updates"} <= codes


def test_rmsprop_is_judged_by_its_warmed_up_step_not_its_start_up_transient() -> None:
    # RMSprop's square average starts at (1 - alpha) g^2: its first step is 1/sqrt(1 - alpha) = 3.2x
    # its usual one. A Flatten of 18,496 features into Dense(64) at Keras' rmsprop 1e-3 (the classic
    # cats-vs-dogs convnet) moves that layer by ~0.3 on step one, by ~0.1 once the average is warm.
    spec = {"name": "wide", "input": {"shape": [4096]}, "batch_size": 32, "seeds": 1, "loss": "binary_cross_entropy",
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "xavier_uniform"},
                       {"type": "linear", "out_features": 1}],
            "optimizer": {"type": "rmsprop", "lr": 0.001, "alpha": 0.9, "eps": 1e-7}}
    plan = make_plan(parse_spec(spec))
    net, x, target = prepare(plan, 0, torch.device("cpu"))
    bare_step(net, x, target)
    w = net.units()[0].weight()
    before = w.detach().clone()
    _torch_optimizer({"type": "rmsprop", "lr": 0.001, "alpha": 0.9}, list(net.parameters())).step()
    first = float((w.detach() - before).norm() / before.norm())  # torch.optim's own first step
    assert first > 0.1 > first * 0.1 ** 0.5  # a warning on step one, healthy once warm
    assert not [f for f in check_architecture(spec).findings if f.code == "large_updates"]
    # ten times the rate is too large either way, and the ratio judged is the warmed-up step
    spec["optimizer"]["lr"] = 0.01
    [f] = [f for f in check_architecture(spec).findings if f.code == "large_updates"]
    assert f.evidence.value == pytest.approx(10 * first * 0.1 ** 0.5, rel=0.05)
    assert f.evidence.first_step_factor == pytest.approx(0.1 ** -0.5)


@pytest.mark.parametrize("config,expected", [
    ({"class_name": "Adadelta", "config": {"learning_rate": 1000.0, "rho": 0.95, "epsilon": 1e-7}},
     {"type": "adadelta", "lr": 1000.0, "alpha": 0.95, "eps": 1e-7}),
    ("adadelta", {"type": "adadelta", "lr": 0.001, "alpha": 0.95, "eps": 1e-7}),
    ({"class_name": "Nadam", "config": {"learning_rate": 0.002}}, {"type": "nadam", "lr": 0.002, "eps": 1e-7}),
    # the peer benchmarks' Adagrad(lr=1) and (lr=0.1): it was dropped as "no optimizer"
    ({"class_name": "Adagrad", "config": {"learning_rate": 1.0, "initial_accumulator_value": 0.1, "epsilon": 1e-7}},
     {"type": "adagrad", "lr": 1.0, "eps": 1e-7, "initial_accumulator": 0.1}),
    ("adagrad", {"type": "adagrad", "lr": 0.001, "eps": 1e-7, "initial_accumulator": 0.1}),
])
def test_keras_adadelta_nadam_and_adagrad_are_read(config: Any, expected: dict[str, Any]) -> None:
    assert keras_optimizer(config) == expected


def test_deepcrimes_learning_rate_mutant_of_adadelta_takes_steps_too_large() -> None:
    # DeepCrime's MNIST model trains with Adadelta(1.0); its HLR mutant multiplies the rate by 1000:
    # the first step moves each weight by about lr sqrt(eps / (1 - rho)) = 1.4, weights of ~0.05
    cfg = _seq(_dense("d1", 64, "relu"), _dense("d2", 64, "relu"), _dense("out", 10, "softmax"), shape=[32])

    def check(lr: float) -> Any:
        opt = {"class_name": "Adadelta", "config": {"learning_rate": lr, "rho": 0.95, "epsilon": 1e-7}}
        data = json.dumps({**cfg, "compile_config": {"loss": "categorical_crossentropy", "optimizer": opt}})
        return check_keras(io.BytesIO(data.encode()).getvalue(), verify=False)
    assert [f.severity for f in check(1000.0).findings if f.code == "large_updates"] == ["error"]
    assert not [f for f in check(1.0).findings if f.code in ("large_updates", "small_updates")]


@pytest.mark.parametrize("rate", [-1000.0, -0.001, 0.0])
def test_a_keras_file_compiled_with_a_rate_at_or_below_zero_is_an_error(rate: float) -> None:
    # UMLAUT's planted bug: Adam(learning_rate=-1e3) steps up the gradient; before, the rate was
    # dropped as "no optimizer" and the model read healthy
    cfg = _seq(_dense("d1", 32, "relu"), _dense("out", 10, "softmax"), shape=[16])
    opt = {"class_name": "Adam", "config": {"learning_rate": rate}}
    data = json.dumps({**cfg, "compile_config": {"loss": "categorical_crossentropy", "optimizer": opt}}).encode()
    doc = check_keras(data, verify=False)
    [f] = [f for f in doc.findings if f.code == "negative_learning_rate"]
    assert f.severity == "error" and doc.status == "unhealthy" and f.evidence.value == rate
    assert doc.summary.startswith("unhealthy: negative_learning_rate") and f.remedies[0].id == "positive_learning_rate"
    assert f"{abs(rate) if rate < 0 else 0.001:g}" in f.remedies[0].change
    # an optimizer given to the check replaces the file's
    assert not [f for f in check_keras(data, verify=False, optimizer={"type": "adam", "lr": 1e-3}).findings
                if f.code == "negative_learning_rate"]


def test_a_spec_with_a_negative_rate_gets_the_finding_and_a_verified_patch() -> None:
    doc = check_architecture(_spec({"type": "sgd", "lr": -0.01}))
    [f] = [f for f in doc.findings if f.code == "negative_learning_rate"]
    [r] = f.remedies
    assert r.patch == [{"op": "replace", "path": "/optimizer/lr", "value": 0.01}]
    assert r.verified is not None and r.verified.fixed and r.verified.after == 0.01
    # the step's size is the rate's: the same ratios as at +0.01
    plus = check_architecture(_spec({"type": "sgd", "lr": 0.01}))
    assert not [f for f in plus.findings if f.code == "negative_learning_rate"]
    with pytest.raises(SpecError):
        parse_spec(_spec({"type": "sgd", "lr": -1e7}))  # still bounded in size


def test_adagrad_is_judged_by_its_25th_step_which_its_growing_sum_has_shrunk() -> None:
    # torch's Adagrad starts its sum at 0: every step is lr g / sqrt(sum of g^2 so far), the first
    # lr sign(g), the 25th (under the same gradient) a fifth of it; that is the step judged
    spec = {"name": "mlp", "input": {"shape": [256]}, "batch_size": 32, "seeds": 1,
            "layers": [{"type": "linear", "out_features": 256, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 10}],
            "optimizer": {"type": "adagrad", "lr": 0.01}}
    plan = make_plan(parse_spec(spec))
    net, x, target = prepare(plan, 0, torch.device("cpu"))
    bare_step(net, x, target)
    weights = [u.weight() for u in net.units() if u.weight() is not None]
    before = [w.detach().clone() for w in weights]
    _torch_optimizer(spec["optimizer"], list(net.parameters())).step()
    # torch.optim's own first step, the worst layer's
    first = max(float((w.detach() - b).norm() / b.norm()) for w, b in zip(weights, before, strict=True))
    twenty_fifth = first / 5
    assert twenty_fifth < 0.1 < first  # a warning on step one, not once the sum has grown
    assert not [f for f in check_architecture(spec).findings if f.code == "large_updates"]
    spec["optimizer"]["lr"] = 0.1
    [f] = [f for f in check_architecture(spec).findings if f.code == "large_updates"]
    assert f.evidence.first_step_factor == pytest.approx(5.0)
    assert f.evidence.value == pytest.approx(10 * twenty_fifth, rel=0.05)


def test_keras_name_rho_is_accepted_for_alpha() -> None:
    from gradhealth.analysis.spec import OptimizerSpec

    spec = OptimizerSpec.model_validate({"type": "rmsprop", "lr": 0.01, "rho": 0.675})
    assert spec.alpha == 0.675 and "alpha" in spec.model_fields_set
    assert OptimizerSpec.model_validate({"type": "adadelta", "lr": 1.0, "alpha": 0.95}).alpha == 0.95


def test_a_fresh_head_moving_a_tenth_at_sgd_01_is_not_a_rate_too_large() -> None:
    # the usual BN-CNN recipe (SGD 0.1, momentum 0.9): at initialisation the head's gradient is of
    # order one and it moves 0.15 of its weights in one step, the BN convolutions 0.007-0.04
    def conv(c: int) -> dict[str, Any]:
        return {"type": "conv2d", "out_channels": c, "kernel_size": 3, "padding": 1, "activation": "relu",
                "init": "kaiming_normal", "norm": "batchnorm"}

    pool = {"type": "maxpool2d", "kernel_size": 2}
    spec = {"input": {"shape": [3, 32, 32]}, "batch_size": 32, "seeds": 2,
            "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
            "layers": [conv(32), conv(32), pool, conv(64), pool, {"type": "flatten"},
                       {"type": "linear", "out_features": 128, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 10}]}
    plan = make_plan(parse_spec(spec))
    result = simulate(plan)
    ratios = {u.name: u.geo("update_ratio") for u in result.units if "update_ratio" in u.values}
    head = result.units[-1].name
    assert ratios[head] > Thresholds().large_update_warning > max(r for n, r in ratios.items() if n != head)
    assert "large_updates" not in {d.code for d in detect(result, Thresholds())}
    # a rate that rewrites the head entirely, or moves the hidden layers too, still is
    for lr in (10.0, 2.0):
        fast = simulate(make_plan(parse_spec({**spec, "optimizer": {"type": "sgd", "lr": lr}})))
        assert "large_updates" in {d.code for d in detect(fast, Thresholds())}


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_a_new_rate_alone_rescales_the_first_simulation_as_a_re_simulation_measures_it(opt: dict[str, Any]) -> None:
    # The rate remedy is verified without a simulation: against one, every figure but the update
    # ratios identical, and those scaled by |new lr| / |old lr| to rounding.
    from gradhealth.analysis.simulate import at_rate

    base = simulate(make_plan(parse_spec(_spec(opt))))
    moved = opt | {"lr": -opt["lr"] / 7}
    plan = make_plan(parse_spec(_spec(moved)))
    rescaled = at_rate(base, plan.spec.optimizer, plan)
    again = simulate(plan)
    assert rescaled is not None and rescaled.optimizer == plan.spec.optimizer and rescaled.plan is plan
    for a, b in zip(rescaled.units, again.units, strict=True):
        assert a.name == b.name and a.values.keys() == b.values.keys()
        for metric in a.values:
            if metric in ("update_ratio", "usual_update_ratio"):  # (Adagrad's 25th step scales too)
                assert a.values[metric] == pytest.approx(b.values[metric], rel=1e-12)
            else:
                assert a.values[metric] == pytest.approx(b.values[metric], rel=0, abs=0, nan_ok=True)
    assert any("update_ratio" in u.values for u in rescaled.units)


@pytest.mark.parametrize("other", [
    {"type": "adam", "lr": 0.01, "weight_decay": 0.1},  # weight decay's step is not the rate's
    {"type": "sgd", "lr": 0.01},  # another optimizer
    {"type": "adadelta", "lr": 0.5, "alpha": 0.99},  # alpha set (rho 0.99) against absent (0.9)
])
def test_any_other_change_of_the_optimizer_is_simulated(other: dict[str, Any]) -> None:
    from gradhealth.analysis.simulate import at_rate

    base_opt = {"type": "adadelta", "lr": 1.0} if other["type"] == "adadelta" else {"type": "adam", "lr": 0.3}
    base = simulate(make_plan(parse_spec(_spec(base_opt))))
    assert at_rate(base, parse_spec(_spec(other)).optimizer) is None
    zero = simulate(make_plan(parse_spec(_spec({"type": "adam", "lr": 0.0}))))
    assert at_rate(zero, parse_spec(_spec({"type": "adam", "lr": 0.001})).optimizer) is None  # 0 scales to 0


def test_the_rate_remedy_costs_no_simulation_in_both_checks() -> None:
    from gradhealth import check_module

    doc = check_architecture(_spec({"type": "adam", "lr": 0.3}))
    fix = next(r for f in doc.findings if f.code == "large_updates" for r in f.remedies if r.id == "lower_learning_rate")
    assert fix.verified is not None and fix.verified.fixed
    assert doc.simulation.remedies_simulated == sum(1 for f in doc.findings for r in f.remedies
                                                    if r.verified is not None and r is not fix)
    model = _mlp_module()
    live = check_module(model, torch.randn(8, 64), seeds=2, optimizer=torch.optim.Adam(model.parameters(), lr=0.3))
    fix = next(r for f in live.findings if f.code == "large_updates" for r in f.remedies if r.id == "lower_learning_rate")
    assert fix.verified is not None and fix.verified.fixed
    assert live.simulation.remedies_simulated == sum(1 for f in live.findings for r in f.remedies
                                                     if r.verified is not None and r is not fix)


def test_a_rate_remedy_verified_without_a_simulation_is_counted_and_said() -> None:
    # newuser16 #10: "0 remedy simulation(s)" beside "[FIXED: max_update_ratio 0.566 -> 0.01]" read as a
    # contradiction: the report says what verified it (the first simulation rescaled to the new rate)
    from gradhealth import check_module
    from gradhealth.report import render

    doc = check_architecture(_spec({"type": "adam", "lr": 0.3}))
    rescaled = [r for f in doc.findings for r in f.remedies if r.id == "lower_learning_rate" and r.verified]
    assert rescaled and doc.simulation.remedies_rescaled == len({json.dumps(r.patch) for r in rescaled})
    text = render("text", doc)
    assert (f"{doc.simulation.remedies_simulated} remedy simulation(s) and {doc.simulation.remedies_rescaled} "
            "learning-rate remedy(ies) verified by rescaling the first simulation") in text
    assert "verified by rescaling the first simulation" in render("html", doc)
    model = _mlp_module()
    live = check_module(model, torch.randn(8, 64), seeds=2, optimizer=torch.optim.Adam(model.parameters(), lr=0.3))
    assert live.simulation.remedies_rescaled == sum(1 for f in live.findings for r in f.remedies
                                                    if r.id == "lower_learning_rate" and r.verified is not None)
    assert check_architecture(_spec({"type": "adam", "lr": 1e-3})).simulation.remedies_rescaled == 0


def test_a_step_that_is_mostly_weight_decay_is_told_to_lower_the_decay() -> None:
    # SGD at 0.1 with a decay of 20: the L2 term alone moves every weight by lr x wd = 2 of its
    # norm (specsweep2); a lower rate shrinks the step but leaves the decay 500x the gradient's
    doc = check_architecture(_spec({"type": "sgd", "lr": 0.1, "weight_decay": 20.0}))
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    assert f.evidence.value == pytest.approx(2.0, rel=0.05)  # the decay's 2 plus a little gradient
    [wd] = [r for r in f.remedies if r.id == "weight_decay"]
    assert wd.patch == [{"op": "replace", "path": "/optimizer/weight_decay", "value": 0.01}]  # 0.1 x 1e-2 / 0.1
    assert wd.verified is not None and wd.verified.after < f.evidence.value / 10
    # a usual decay, and Adam's L2 (divided by the gradient's scale), get no such remedy
    for opt in ({"type": "sgd", "lr": 3.0, "weight_decay": 5e-4}, {"type": "adam", "lr": 0.3, "weight_decay": 20.0}):
        found = [f for f in check_architecture(_spec(opt)).findings if f.code == "large_updates"]
        assert found and not [r for r in found[0].remedies if r.id == "weight_decay"]


class _GatedMLP(torch.nn.Module):
    """A gMLP-style block: a spatial gate initialised near zero (weights N(0, 1e-3), bias 1, as
    the paper does), so the block starts as the identity and the gate grows as it learns."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.hidden, self.out = (torch.nn.Linear(32, 64), torch.nn.Linear(64, 64),
                                           torch.nn.Linear(64, 10))
        self.gate = torch.nn.Linear(64, 64)
        torch.nn.init.normal_(self.gate.weight, 0.0, 1e-3)
        torch.nn.init.ones_(self.gate.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(torch.relu(self.inp(x))))
        return self.out(h * self.gate(h))


def test_a_layer_started_near_zero_on_purpose_does_not_set_the_rate() -> None:
    # Adam moves every weight by about lr on its first step: the gate's N(0, 1e-3) weights by about
    # their whole norm at lr 1e-3, which is how a near-zero start grows; the other layers by ~1e-2
    from gradhealth.library import check_module

    torch.manual_seed(0)
    doc = check_module(_GatedMLP(), torch.randn(64, 32), optimizer={"type": "adam", "lr": 1e-3}, verify=False)
    assert not [f for f in doc.findings if f.code == "large_updates"]
    torch.manual_seed(0)
    doc = check_module(_GatedMLP(), torch.randn(64, 32), optimizer={"type": "adam", "lr": 1.0})
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    assert "gate" not in f.evidence.layers and f.evidence.value > max(f.evidence.update_ratios.values())
    [r] = [r for r in f.remedies if r.id == "lower_learning_rate"]
    # the rate that brings the worst judged layer to the target ratio, not the gate
    worst = max(f.evidence.update_ratios.values())
    from gradhealth.core.remedies import UPDATE_RATIO_TARGET
    assert r.params["suggested_learning_rate"] == pytest.approx(1.0 * UPDATE_RATIO_TARGET / worst, rel=0.01)
    assert r.verified is not None and r.verified.fixed  # (its metric stays the largest ratio, the gate's)


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM, nn.RNN])
def test_a_torch_recurrent_layers_weights_are_in_the_first_steps_ratios(cell: type[nn.RNNBase]) -> None:
    # msweep8: nn.GRU/LSTM weights were left out of the update ratios (the unrolled layer holds the
    # module as a child), so an LSTM moving 14.7x its norm went unjudged. Its ratio is the one its
    # own weight matrices get from a plain SGD step, computed here by hand
    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.rnn, self.head = nn.Embedding(100, 32), cell(32, 64, batch_first=True), nn.Linear(64, 100)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(self.emb(x))[0])

    torch.manual_seed(0)
    model, x = LM(), torch.randint(0, 100, (8, 20))
    from gradhealth import check_module

    doc = check_module(model, x, seeds=1, optimizer={"type": "sgd", "lr": 50.0}, verify=False)
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    ratios = f.evidence.model_dump()["update_ratios"]
    assert "rnn" in ratios and ratios["rnn"] > 0.1


def test_adagrad_with_kerass_accumulator_is_judged_by_its_25th_step_measured_not_a_fixed_fifth() -> None:
    # Keras starts Adagrad's sum at 0.1: under gradients far below sqrt(0.1) the sum hardly grows, so
    # the 25th step is as large as the first (kerassweep6: a step of 0.135 judged as 0.027)
    spec = {"name": "mlp", "input": {"shape": [256]}, "batch_size": 32, "seeds": 1,
            "layers": [{"type": "linear", "out_features": 256, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 10}],
            "optimizer": {"type": "adagrad", "lr": 5.0, "initial_accumulator": 0.1}}
    plan = make_plan(parse_spec(spec))
    net, x, target = prepare(plan, 0, torch.device("cpu"))
    bare_step(net, x, target)
    weights = [u.weight() for u in net.units() if u.weight() is not None]
    before = [w.detach().clone() for w in weights]
    opt = _torch_optimizer(spec["optimizer"], list(net.parameters()))
    for _ in range(25):  # torch.optim's own 25 steps under the same gradients
        opt.step()
        last = [w.detach().clone() for w in weights]
        if _ == 23:
            prev = last
    step25 = max(float((a - b).norm() / b0.norm()) for a, b, b0 in zip(last, prev, before, strict=True))
    [f] = [f for f in check_architecture(spec).findings if f.code == "large_updates"]
    assert f.evidence.value == pytest.approx(step25, rel=0.05)
    assert f.evidence.first_step_factor < 2.5  # not the fixed 5 of a sum started at 0


@pytest.mark.parametrize("lr", [1e-12, 1e-170, 1e-300])
def test_a_rate_whose_step_squares_below_float64_is_still_too_small(lr: float) -> None:
    # Adam's first step is about lr per weight: 1e-170 squared is 0 in float64, and the ratio read
    # 0 ("no gradient"), so the network was called healthy (errsweep3 F12)
    spec = {"input": {"shape": [8]}, "batch_size": 8, "seeds": 1, "optimizer": {"type": "adam", "lr": lr},
            "layers": [{"type": "linear", "out_features": 8, "activation": "relu"}, {"type": "linear", "out_features": 4}]}
    doc = check_architecture(spec, verify=False)
    [f] = [f for f in doc.findings if f.code == "small_updates"]
    # the fastest layer moves by about lr * sqrt(n) / ||W||: within two decades of lr itself
    assert f.severity == "warning" and f.evidence.value > 0 and abs(math.log10(f.evidence.value / lr)) < 2
