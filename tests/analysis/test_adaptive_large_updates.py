"""Adam's first step is its rate per weight whatever the gradient, so its update-to-weight ratio is
about lr / rms(W): lr 1e-2 on torch's default init (rms 1/sqrt(3 fan_in)) is lr * sqrt(3 fan_in), 0.196
at fan-in 128, a rate small networks train at (modsweep31 h06, modsweep32 h02/h08: a GAE, a char-RNN
GRU and an MNIST-rows LSTM at Adam 1e-2, each labelled healthy). Up to 0.3 under an adaptive
optimizer is a note where the layers' steps add up to 1 or less; past either, and under SGD from
0.1, a warning."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gradhealth.library import check_architecture


def _mlp(optimizer: dict[str, Any]) -> dict[str, Any]:
    layers = [{"type": "linear", "out_features": 128, "activation": "relu", "init": "default"} for _ in range(3)]
    return {"name": "mlp", "input": {"shape": [64, 128]}, "seeds": 2, "optimizer": optimizer,
            "layers": [*layers, {"type": "linear", "out_features": 10}], "loss": {"type": "cross_entropy"}}


def _large(doc: Any) -> Any:
    return next(f for f in doc.findings if f.code == "large_updates")


def test_adam_at_1e_2_on_default_init_is_a_note_with_the_ratio_theory_gives() -> None:
    f = _large(check_architecture(_mlp({"type": "adam", "lr": 1e-2}), verify=False))
    # a hidden layer's ratio: lr / rms(W) = 0.01 * sqrt(3 * 128) (biases are left out)
    assert f.evidence.model_extra["update_ratios"]
    hidden = [r for name, r in f.evidence.model_extra["update_ratios"].items() if "layers[3]" not in name]
    assert hidden and all(r == pytest.approx(0.01 * math.sqrt(3 * 128), rel=0.05) for r in hidden)
    assert f.severity == "info" and "a note under adam" in f.summary


def test_the_same_steps_over_many_layers_are_a_warning() -> None:
    # Adam moves every layer by its rate at once: twelve layers at 0.196 change the network by
    # about 2.4 of its size, past the sum a note allows (ConvNeXt and deep Transformers warm up)
    spec = _mlp({"type": "adam", "lr": 1e-2})
    spec["layers"] = [spec["layers"][0]] * 12 + [spec["layers"][-1]]
    f = _large(check_architecture(spec, verify=False))
    assert f.severity == "warning" and "a note" not in f.summary


def test_adam_past_three_times_the_warning_line_stays_a_warning() -> None:
    f = _large(check_architecture(_mlp({"type": "adam", "lr": 2e-2}), verify=False))  # 0.39
    assert f.severity == "warning" and "a note" not in f.summary


@pytest.mark.parametrize(("kind", "value", "note"), [
    ("adam", 0.2, True), ("adamw", 0.3, True), ("rmsprop", 0.25, True), ("adam", 0.31, False),
    ("sgd", 0.2, False),  # SGD's step is the gradient's: 0.2 of the weights is a large one
])
def test_the_note_is_for_adaptive_optimizers_up_to_0_3(kind: str, value: float, note: bool) -> None:
    from types import SimpleNamespace

    from gradhealth.analysis.rules import _adaptive_small_step

    result = SimpleNamespace(optimizer=SimpleNamespace(type=kind))
    assert _adaptive_small_step(result, value, 3 * value) is note  # type: ignore[arg-type]
    assert _adaptive_small_step(result, value, 1.2) is False  # type: ignore[arg-type]


def _deep(optimizer: dict[str, Any], depth: int = 16) -> dict[str, Any]:
    # He's init (std sqrt(2/128) = 0.125, at the edge of chaos: no vanishing gradient beside it)
    spec = _mlp(optimizer)
    spec["layers"] = [{**spec["layers"][0], "init": "kaiming_normal"}] * depth + [spec["layers"][-1]]
    return spec


@pytest.mark.parametrize(("kind", "lr"), [
    # each hidden layer's usual step is about lr / rms(W) = lr / 0.125 = 0.08 at 1e-2 (RMSprop's once
    # its square average has warmed up; Adagrad's 25th step is lr / 5 per weight: 0.08 at 5e-2)
    ("adam", 1e-2), ("rmsprop", 1e-2), ("adagrad", 5e-2),
])
def test_a_deep_stack_under_the_line_per_layer_warns_on_the_sum(kind: str, lr: float) -> None:
    # peersweep11 u05: every layer under 0.1, but 17 of them at 0.04-0.08; here 16 at 0.07-0.08 (the
    # fresh head left out) add up to about 1.2, past the depth sum that every adaptive optimizer is judged on alike
    doc = check_architecture(_deep({"type": kind, "lr": lr}), verify=False)
    f = _large(doc)
    steps = f.evidence.model_extra["update_ratios"]
    # (a little under lr / rms(W) deeper in: a unit off for the batch gets no step on its row)
    theory = lr / 0.125 * (0.2 if kind == "adagrad" else 1)
    assert len(steps) >= 16 and all(0.8 * theory <= r <= 1.05 * theory < 0.1 for r in steps.values())
    assert f.severity == "warning" and "summed over depth" in f.summary
    assert f.evidence.model_extra["adaptive_steps_sum"] > 1.0


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_the_same_deep_stack_at_1e_3_is_healthy(kind: str) -> None:
    # the standard rate: 16 layers at 0.008 add up to about 0.15
    doc = check_architecture(_deep({"type": kind, "lr": 1e-3}), verify=False)
    assert not [f for f in doc.findings if f.code == "large_updates"]


def test_sgd_is_not_judged_on_the_sum() -> None:
    # SGD's step is the gradient's, judged per layer only: the depth sum is the adaptive optimizers'
    from types import SimpleNamespace

    from gradhealth.analysis.rules import adaptive_depth_sum

    assert adaptive_depth_sum(SimpleNamespace(optimizer=SimpleNamespace(type="rmsprop")), 1.2)  # type: ignore[arg-type]
    assert not adaptive_depth_sum(SimpleNamespace(optimizer=SimpleNamespace(type="sgd")), 1.2)  # type: ignore[arg-type]
    assert not adaptive_depth_sum(SimpleNamespace(optimizer=SimpleNamespace(type="adam")), 0.9)  # type: ignore[arg-type]
