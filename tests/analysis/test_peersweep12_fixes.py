"""peersweep12's defects: a live module's bounded regression output judged on its targets (u05,
u07), a zero-initialised layer's first step judged (u15), a narrow ReLU layer left with one live
unit (u13), and a stacked recurrent layer's unread stretch worded as the layers above's (specsweep14 u13)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradhealth
from gradhealth.analysis.rules import bottleneck
from gradhealth.errors import ArgumentError


def _finding(doc, code):
    return next((f for f in doc.findings if f.code == code), None)


class _SigmoidRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(F.relu(self.hidden(x))))


def test_module_sigmoid_regression_judged_against_standard_normal_targets() -> None:
    torch.manual_seed(0)
    doc = gradhealth.check_module(_SigmoidRegressor(), torch.randn(32, 4), loss="mse", seeds=2, verify=False)
    found = _finding(doc, "output_loss_mismatch")
    assert found is not None and found.severity == "warning"
    # P(t < 0) + P(t > 1) for t ~ N(0, 1): 0.5 + 0.1587
    assert found.evidence.value == pytest.approx(0.5 + 0.5 * math.erfc(1 / math.sqrt(2)), abs=1e-9)


def test_module_sigmoid_regression_judged_on_the_targets_passed() -> None:
    torch.manual_seed(0)
    # targets in [-1, 1]: 3 of 8 below 0, out of the sigmoid's reach
    targets = torch.tensor([-0.9, -0.5, -0.1, 0.0, 0.2, 0.5, 0.8, 1.0])
    doc = gradhealth.check_module(_SigmoidRegressor(), torch.randn(32, 4), loss="mse", seeds=2, verify=False,
                                  targets=targets)
    found = _finding(doc, "output_loss_mismatch")
    assert found is not None and found.severity == "info"  # 3/8 = 37.5%, under the 45% line
    assert found.evidence.value == pytest.approx(3 / 8)
    assert found.evidence.model_extra["targets_passed"] == 8
    assert "8 targets passed" in found.summary
    inside = gradhealth.check_module(_SigmoidRegressor(), torch.randn(32, 4), loss="mse", seeds=2, verify=False,
                                     targets=torch.rand(50))
    ok = _finding(inside, "output_loss_mismatch")
    assert ok is not None and ok.severity == "info" and ok.evidence.value == 0.0
    assert "every target is in reach" in ok.summary
    far = gradhealth.check_module(_SigmoidRegressor(), torch.randn(32, 4), loss="mse", seeds=2, verify=False,
                                  targets=100 * torch.randn(40))
    assert _finding(far, "output_loss_mismatch").severity == "error"  # none in reach: 95% or more is an error


def test_module_target_range_and_bad_targets() -> None:
    torch.manual_seed(0)
    doc = gradhealth.check_module(_SigmoidRegressor(), torch.randn(32, 4), loss="mse", seeds=2, verify=False,
                                  target_range=(-1, 1))
    found = _finding(doc, "output_loss_mismatch")
    assert found is not None and found.evidence.value == pytest.approx(0.5)  # [-1, 0) of [-1, 1]
    with pytest.raises(ArgumentError, match="element 1"):
        gradhealth.check_module(_SigmoidRegressor(), torch.randn(8, 4), loss="mse", targets=[0.0, math.nan])
    with pytest.raises(ArgumentError, match="regression loss"):  # (class labels under cross_entropy are taken:
        # test_module_class_labels.py; a plain sum has no targets)
        gradhealth.check_module(_SigmoidRegressor(), torch.randn(8, 4), loss="sum", targets=[0.0])
    with pytest.raises(ArgumentError, match="low < high"):
        gradhealth.check_module(_SigmoidRegressor(), torch.randn(8, 4), loss="mse", target_range=(1, 0))


class _ZeroLogistic(nn.Module):
    """A zero-initialised softmax regression whose cross-entropy is summed over the batch (Defects4DL Fault1).
    ``pre``: behind a trainable identity layer, so the zero layer is not the model's only affine
    layer (one alone is judged by the loss's sharpness, test_sharpness.py); its gradient is the same."""

    def __init__(self, reduction: str, pre: bool = False) -> None:
        super().__init__()
        self.pre = nn.Linear(64, 64) if pre else nn.Identity()
        if isinstance(self.pre, nn.Linear):
            with torch.no_grad():
                self.pre.weight.copy_(torch.eye(64))
                self.pre.bias.zero_()
        self.lin = nn.Linear(64, 10)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)
        self.reduction = reduction
        self.register_buffer("y", torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.lin(self.pre(x)), self.y, reduction=self.reduction)


def _zero_step_rms(reduction: str) -> float:
    """The first SGD 0.01 step's rms per weight, computed independently with autograd on one draw."""
    torch.manual_seed(3)
    m = _ZeroLogistic(reduction).double()
    m(torch.rand(500, 64, dtype=torch.float64)).backward()
    return 0.01 * float(m.lin.weight.grad.norm()) / math.sqrt(m.lin.weight.numel())


def test_zero_initialised_layer_step_judged_against_a_usual_init() -> None:
    torch.manual_seed(0)
    alone = gradhealth.check_module(_ZeroLogistic("sum"), torch.rand(500, 64), loss="sum", seeds=2, verify=False,
                                    optimizer={"type": "sgd", "lr": 0.01}, input_range=(0, 1))
    by_curvature = _finding(alone, "large_updates")  # one affine layer: the stability bound judges it
    assert by_curvature is not None and by_curvature.severity == "error"
    assert by_curvature.evidence.model_extra["lr_times_sharpness"] > by_curvature.evidence.model_extra["stability_bound"]
    doc = gradhealth.check_module(_ZeroLogistic("sum", pre=True), torch.rand(500, 64), loss="sum", seeds=2,
                                  verify=False, optimizer={"type": "sgd", "lr": 0.01}, input_range=(0, 1))
    found = _finding(doc, "large_updates")
    # over the bound too, which then describes it; the zero layer's own measure is its judged ratio:
    # the step's rms per weight over 0.5/sqrt(64) (the inputs' draw differs, so within 10%)
    assert found is not None and found.severity == "error"
    expected = _zero_step_rms("sum") / (0.5 / 8)
    assert expected > 0.1  # over the warning line: 0.64 of a usual init's norm in one step
    layer = next(u for u in doc.layers if u.name == "lin")
    assert layer.judged_update_ratio == pytest.approx(expected, rel=0.1)
    # the same model with the mean over the batch: 500x smaller, a sound step
    mean = gradhealth.check_module(_ZeroLogistic("mean", pre=True), torch.rand(500, 64), loss="sum", seeds=2,
                                   verify=False, optimizer={"type": "sgd", "lr": 0.01}, input_range=(0, 1))
    assert _finding(mean, "large_updates") is None
    layer = next(u for u in mean.layers if u.name == "lin")
    assert layer.judged_update_ratio == pytest.approx(_zero_step_rms("mean") / (0.5 / 8), rel=0.1)


def test_bottleneck_live_units() -> None:
    assert bottleneck(0.8, 5)  # one live unit of five
    assert not bottleneck(0.6, 5)  # two live
    assert bottleneck(2 / 3, 3)
    assert not bottleneck(0.5, 2)  # half: never discounted anyway


class _NarrowReLU(nn.Module):
    """Inputs through a 2 -> 5 ReLU layer whose units 1-4 have weights that are 0 and biases of -1 (off
    for every input), then a readout: 4 of 5 units dead in every seed."""

    def __init__(self) -> None:
        super().__init__()
        self.h = nn.Linear(2, 5)
        self.out = nn.Linear(5, 1)
        with torch.no_grad():
            self.h.weight[1:].zero_()
            self.h.bias[1:].fill_(-1.0)
            self.h.weight[0] = torch.tensor([1.0, 1.0])
            self.h.bias[0] = 5.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.h(x)))


def test_narrow_layer_left_with_one_unit_is_dead_units() -> None:
    # 4 of 5 off in each seed: 4 of 5 all-samples, P = 6/32 = 0.19 at 1/2, within chance by the
    # binomial test, but one live unit is all the readout sees
    torch.manual_seed(0)
    doc = gradhealth.check_module(_NarrowReLU(), torch.rand(32, 2), loss="mse", seeds=2, verify=False,
                                  input_range=(-1, 1))
    found = _finding(doc, "dead_units")
    assert found is not None and found.severity == "warning"
    assert found.evidence.value == pytest.approx(0.8)


class _StackedRNN(nn.Module):
    """Three stacked tanh RNN layers over the steps, read at the top layer's last step only."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(4, 32, num_layers=3, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def test_stacked_rnn_unread_stretch_names_the_layers_above() -> None:
    # the loss reads the top layer's last step; the bottom layer's steps get the gradient from the
    # layer above, which carries it back only a few steps: the words say so (specsweep14 u13)
    torch.manual_seed(0)
    doc = gradhealth.check_module(_StackedRNN(), torch.randn(8, 150, 4), loss="mse", seeds=2, verify=False)
    found = [f for f in doc.findings if f.code == "vanishing_through_time"]
    extra = [f.evidence.model_dump() for f in found]
    unread = [(f, e) for f, e in zip(found, extra, strict=True) if "first_read_step" in e]
    assert unread, [f.summary for f in found]
    f, e = unread[0]
    assert e["read_from"] == "layers above"
    assert f"the layers above pass the loss's gradient down to it only from step {e['first_read_step']} on" \
        in f.summary
    assert "the loss reads it only" not in f.summary
