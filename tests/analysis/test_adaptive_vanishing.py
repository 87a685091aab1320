"""A gradient that shrinks through depth starves the early layers under SGD, whose step is the
gradient; Adam divides each weight's gradient by its own running size, so every layer moves about
its rate per weight (modsweep26: NeRF's 8-layer ReLU MLP at torch's default init shrinks the
gradient 559x and trains under Adam). vanishing_gradient between its warning and error levels is a
note under an adaptive optimizer whose first step moves the first layer as much as the others."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gradhealth.library import check_architecture


def _mlp(optimizer: dict[str, Any] | None, depth: int = 8) -> dict[str, Any]:
    # torch's default init gives a ReLU layer a backward gain of sqrt(1/6) = 0.41: 8 layers shrink
    # the gradient about 0.41^7 = 2e-3, between the warning (1e-2) and error (1e-4) levels
    layers = [{"type": "linear", "out_features": 256, "activation": "relu", "init": "default"} for _ in range(depth)]
    spec: dict[str, Any] = {"name": "nerf-like", "input": {"shape": [64, 63]}, "seeds": 3,
                            "layers": [*layers, {"type": "linear", "out_features": 4}], "loss": {"type": "mse"}}
    if optimizer is not None:
        spec["optimizer"] = optimizer
    return spec


def _vanishing(doc: Any) -> Any:
    return next(f for f in doc.findings if f.code == "vanishing_gradient")


def test_the_default_init_relu_stack_shrinks_as_theory_says() -> None:
    f = _vanishing(check_architecture(_mlp(None)))
    per_layer = f.evidence.value ** (1 / 7)
    assert per_layer == pytest.approx(math.sqrt(1 / 6), rel=0.15)
    assert f.severity == "warning"


@pytest.mark.parametrize("opt", [{"type": "adam", "lr": 5e-4}, {"type": "rmsprop", "lr": 1e-3}])
def test_under_an_adaptive_optimizer_it_is_a_note_naming_the_even_steps(opt: dict[str, Any]) -> None:
    doc = check_architecture(_mlp(opt))
    f = _vanishing(doc)
    assert f.severity == "info" and opt["type"] in f.summary
    extra = f.evidence.model_extra
    assert extra["first_layer_update_ratio"] >= 0.1 * extra["median_update_ratio"]


def test_under_sgd_it_stays_a_warning() -> None:
    assert _vanishing(check_architecture(_mlp({"type": "sgd", "lr": 0.01}))).severity == "warning"


def test_a_vanishing_past_the_error_level_stays_an_error_under_adam() -> None:
    f = _vanishing(check_architecture(_mlp({"type": "adam", "lr": 1e-3}, depth=16)))
    assert f.evidence.value < 1e-4 and f.severity == "error"


def test_a_shrink_through_saturating_activations_stays_a_warning_under_adam() -> None:
    # The textbook case (kerassweep16 u06, peersweep8 u01, modsweep30 u02: deep sigmoid stacks under
    # Adam, each labelled vanishing): the factor per layer is the activation's slope, which falls
    # further as units saturate, and Adam's running scale lags behind it.
    layers = [{"type": "linear", "out_features": 256, "activation": "sigmoid", "init": "xavier_normal"}
              for _ in range(6)]
    spec = {"name": "deep-sigmoid", "input": {"shape": [64, 63]}, "seeds": 3,
            "layers": [*layers, {"type": "linear", "out_features": 4}], "loss": {"type": "mse"},
            "optimizer": {"type": "adam", "lr": 1e-3}}
    f = _vanishing(check_architecture(spec))
    assert 1e-4 < f.evidence.value < 1e-2  # between the levels, where the ReLU stack's is a note
    assert f.severity == "warning" and "a note under" not in f.summary
