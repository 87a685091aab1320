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
