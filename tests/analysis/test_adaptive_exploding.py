"""A gradient that grows backwards while the forward stays steady (BatchNorm's own growth, gradients
summed over many skips) under an adaptive optimizer: Adam divides each weight's gradient by its own
running size, so the first layers' larger gradient does not make their step larger. A note there,
a warning under SGD, whose step is the gradient (modsweep33 h03: the official stacked hourglass under
Adam 1e-3, 1.94e3x over 101 layers with activations 0.996x, read as a warning)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_module


def _bn_stack() -> nn.Module:
    # a plain first layer (no norm of its own, so not absorbed by normalisation), then 30
    # Linear-BatchNorm-ReLU blocks: BN keeps the forward at one scale, and each block multiplies the
    # backward by about sqrt(pi / (pi - 1)) = 1.21 (Yang et al. 2019), 30 of them about 300x
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(32, 64)]
    for _ in range(30):
        layers += [nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(64, 10))


def _exploding(optimizer: dict) -> object:
    doc = check_module(_bn_stack(), torch.randn(64, 32), verify=False, seeds=2, optimizer=optimizer)
    return next(f for f in doc.findings if f.code == "exploding_gradient")


def test_under_adam_a_backward_only_growth_is_a_note_naming_the_steady_forward() -> None:
    f = _exploding({"type": "adam", "lr": 1e-3})
    assert 100 < f.evidence.value < 1e4  # between the warning and the error levels
    assert f.evidence.model_extra["activation_growth"] <= 1.5
    assert f.severity == "info" and "a note under adam: the forward is steady" in f.summary
    extra = f.evidence.model_extra
    assert extra["first_layer_update_ratio"] <= 10 * extra["median_update_ratio"]


def test_under_sgd_the_same_growth_stays_a_warning() -> None:
    f = _exploding({"type": "sgd", "lr": 0.01})
    assert f.severity == "warning" and "a note" not in f.summary


@pytest.mark.parametrize("scale", [3.0])
def test_a_forward_that_grows_stays_a_warning_under_adam(scale: float) -> None:
    # weights too large for the signal: the activations grow too, which no optimizer undoes
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(64, 64), nn.ReLU())], nn.Linear(64, 10))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale * 6 ** 0.5)  # torch's default is 1/sqrt(6) of He's gain: x3 He
    doc = check_module(model, torch.randn(64, 64), verify=False, seeds=2, optimizer={"type": "adam", "lr": 1e-3})
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert f.severity in ("warning", "error") and "a note" not in f.summary


def test_steadiness_is_judged_per_layer_step_not_as_one_total_over_any_depth() -> None:
    # the first Linear's weights /3: the activations end 3x the first layer's, over 30 steps (1.04
    # a step, under 1.25, and under the square root of the gradient's ~300x): the forward is steady
    # and the growth the backward's own; a 1.5x total read it as a forward that grows (kerassweep30 F1)
    model = _bn_stack()
    with torch.no_grad():
        model[0].weight.div_(3.0)  # the first Linear, whose output no norm takes: the next BN divides it out
    doc = check_module(model, torch.randn(64, 32), verify=False, seeds=2, optimizer={"type": "adam", "lr": 1e-3})
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    growth = f.evidence.model_extra["activation_growth"]
    assert growth > 1.5 and growth ** (1 / 30) <= 1.25 and growth ** 2 <= f.evidence.value
    assert f.severity == "info" and f.evidence.model_extra["note_reason"] == "adaptive_optimizer"
