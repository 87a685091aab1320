"""What a healthy summary's "(note: ...)" says must be what the finding concludes.

onnxsweep22 (tictactoe_mla, parking_mla) and kerassweep24 (sm_boston_conv_lstm_seq): Swish MLPs and a
conv/LSTM regressor with no norm layer read "exploding_gradient growth 14x, absorbed by normalisation",
their evidence `absorbed_by_normalisation: true`, where the finding said "structure the weights learned".
onnxsweep22 churn_keras: "dead_units 0.5 of the units dead" beside a finding saying 62% off for all 48
samples, "not judged dead". onnxsweep22 weather_lstm: "shrinks 1.48e+46x ... dL/dh_0 is 6.86e-07 of the
best-read step's", two figures 40 decades apart with nothing saying which is which."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.findings import binomial_tail_half
from tests.analysis.test_adaptive_exploding import _bn_stack  # the same 30 Linear-BN-ReLU blocks
from tests.analysis.test_learned_forward_growth import _conv_stack


def _finding(doc: Any, code: str) -> Any:
    return next(f for f in doc.findings if f.code == code)


def _positive_mean_convs() -> nn.Module:
    """No norm anywhere: 3 Conv1d+ReLU and 3 Linear, weights at half He's std, each kernel and row
    summing to +6 (the forward grows through what the weights learned, not their scale)."""
    return _conv_stack(0.5, 6.0)


def test_learned_growth_in_a_net_without_a_norm_is_not_said_absorbed_by_normalisation() -> None:
    doc = check_module(_positive_mean_convs(), torch.randn(64, 8, 40), loss="mse", verify=False, seeds=2,
                       trained=True)  # the positive-mean kernels stand for a trained checkpoint
    f = _finding(doc, "exploding_gradient")
    assert f.severity == "info" and doc.status == "healthy"
    assert not any(layer.normalised for layer in doc.layers)  # nothing could absorb it
    ev = f.evidence.model_dump()
    assert ev["absorbed_by_normalisation"] is False and ev["note_reason"] == "learned_structure"
    assert "absorbed by normalisation" not in doc.summary
    assert "structure the weights learned" in doc.summary
    assert "normalisation itself" not in f.explanation


def test_a_growth_evened_out_by_adam_says_so_not_normalisation() -> None:
    doc = check_module(_bn_stack(), torch.randn(64, 32), verify=False, seeds=2,
                       optimizer={"type": "adam", "lr": 1e-3})
    f = _finding(doc, "exploding_gradient")
    assert f.severity == "info"
    assert not doc.layers[0].normalised  # the first layer, where the gradient is largest, has no norm
    ev = f.evidence.model_dump()
    assert ev["absorbed_by_normalisation"] is False and ev["note_reason"] == "adaptive_optimizer"
    assert "absorbed by normalisation" not in doc.summary and "per-weight steps" in doc.summary
    assert "adam" in f.explanation and "The gain comes from the normalisation itself" not in f.explanation


def test_growth_through_normalised_layers_alone_is_still_absorbed_by_normalisation() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(30):
        layers += [nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU()]
    doc = check_module(nn.Sequential(*layers, nn.Linear(64, 10)), torch.randn(64, 64), verify=False, seeds=2)
    f = _finding(doc, "exploding_gradient")
    ev = f.evidence.model_dump()
    assert f.severity == "info" and ev["grad_ratio"] > 100  # 1.21^29 = 250 (Yang et al. 2019)
    assert ev["absorbed_by_normalisation"] is True and ev["note_reason"] == "normalisation"
    assert "absorbed by normalisation" in doc.summary


class _HalfOff(nn.Module):
    """8 -> 32 ReLU -> 1 with 20 of the 32 units pushed off for any input (bias -100)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden, self.out = nn.Linear(8, 32), nn.Linear(32, 1)
        with torch.no_grad():
            self.hidden.bias.zero_()
            self.hidden.bias[:20] = -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def test_a_layer_within_chance_of_half_off_is_not_summarised_as_half_dead() -> None:
    # 20 of 32 off for all 48 samples: P(X >= 20) at 1/2 is 0.11, over the 0.05 line, so the finding
    # does not judge the layer dead; the summary quotes that, not the judged share 1/2
    assert binomial_tail_half(20, 32) > 0.05
    doc = check_module(_HalfOff(), torch.randn(16, 8), loss="mse", verify=False, seeds=3)
    f = _finding(doc, "dead_units")
    assert f.severity == "info" and doc.status == "healthy"
    assert f.evidence.value == 0.5  # the judged share stays the finding's value
    assert "0.5 of the units dead" not in doc.summary
    assert f"{20 / 32:.0%} of a layer's units off for all 48 samples, not judged dead" in doc.summary
    assert "20 of 32 units is within chance of half" in doc.summary


class _Stacked(nn.Module):
    """A default-gated LSTM under one whose forget gate is opened (bias +1): the loss reads the top
    layer's last step, so the bottom layer's early steps get what the top's recurrence carries down."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.low, self.high = nn.LSTM(4, 16, batch_first=True), nn.LSTM(16, 16, batch_first=True)
        with torch.no_grad():
            for b in (self.high.bias_ih_l0, self.high.bias_hh_l0):
                b[16:32] = 0.5  # (twice: +1) torch's gate order: input, forget, cell, output
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.high(self.low(x)[0])[0][:, -1])


def _by_autograd(model: _Stacked, x: torch.Tensor) -> tuple[float, float]:
    """(the bottom layer's last-step gradient carried back to step 0 by its own recurrence, over the
    same carried one step: step T-2; dL/dh_0 over the largest dL/dh_t), by torch autograd on the
    bottom layer unrolled step by step, in float64 (the norm of a 1e-24 gradient underflows float32's)."""
    model, x = copy.deepcopy(model).double(), x.double()
    h = c = torch.zeros(1, x.shape[0], 16, dtype=torch.float64)
    hs = []
    for t in range(x.shape[1]):
        out, (_, c) = model.low(x[:, t:t + 1], (h, c))
        out.retain_grad()
        hs.append(out)
        h = out.transpose(0, 1)  # h_t itself carries the recurrence on, and the layer above reads it
    y = model.head(model.high(torch.cat(hs, 1))[0][:, -1])
    loss = nn.functional.mse_loss(y, torch.zeros_like(y))
    loss.backward(retain_graph=True)
    total = np.array([s.grad.norm().item() for s in hs])
    g = hs[-1].grad
    carried = torch.autograd.grad(hs[-1], hs[:-1], grad_outputs=g)
    own = carried[0].norm().item() / carried[-1].norm().item()
    return own, float(total[0] / total.max())


def test_a_stacked_lstm_says_which_of_its_two_figures_is_which_and_both_are_right() -> None:
    model, x = _Stacked(), torch.randn(8, 120, 4)
    doc = check_module(model, x, loss="mse", verify=False, seeds=2)
    f = next(f for f in doc.findings if f.code == "vanishing_through_time" and f.evidence.layers == ["low"])
    ev = f.evidence.model_dump()
    assert ev["read_from"] == "layers above"
    own, total = _by_autograd(model, x)
    # the two figures are each right, however far apart (their own recurrence against the one above)
    assert abs(math.log10(ev["value"]) - math.log10(own)) < 1.0
    assert abs(math.log10(ev["unread_grad_ratio"]) - math.log10(total)) < 1.0
    assert math.log10(ev["unread_grad_ratio"]) - math.log10(ev["value"]) > 10
    # ... and the text says which is which
    assert "the whole gradient step 0 gets" in f.summary and "layer above carries down" in f.summary
    assert f"this layer's own recurrence alone carries {ev['value']:.3g}" in f.summary
    assert "learn through its recurrence alone" not in f.summary  # the layer above brings the most
    assert "the gradient reaching step 0 is nearly all the layer above's" in f.explanation
    if doc.status == "healthy":
        assert "carried back to step 0 by its own recurrence" in doc.summary
        assert f"dL/dh_0 {ev['unread_grad_ratio']:.2g} of the best-read step's" in doc.summary


class _ReadEveryStep(nn.Module):
    """A tanh RNN whose recurrent weights are scaled to 0.02 of PyTorch's default, read at every step
    over 300 steps: the carried gradient shrinks by about 0.02 x 0.35 x sqrt(8) a step, under 1e-308
    (float64's smallest normal) well before step 0, while each step gets a gradient of its own."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.RNN(1, 8, batch_first=True)
        with torch.no_grad():
            self.rnn.weight_hh_l0.mul_(0.02)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def test_a_carried_gradient_that_underflows_is_not_summarised_as_gradient_0() -> None:
    """The healthy summary's note says the carried gradient fell under the float range, not
    "first/last step gradient 0", which reads as a layer that gets no gradient at all."""
    doc = check_module(_ReadEveryStep(), torch.randn(8, 300, 1), loss="mse", verify=False, seeds=2)
    f = _finding(doc, "vanishing_through_time")
    assert f.severity == "info" and f.evidence.value == 0.0 and doc.status == "healthy"
    assert "step gradient 0" not in doc.summary
    assert "carried back to step 0 by its own recurrence, falls under the float range" in doc.summary


def test_a_softmax_under_mse_note_says_what_it_concludes_not_0_out_of_reach() -> None:
    """A softmax classifier trained with mse on its probabilities (a capsule net's class lengths with
    mse for the margin loss): the note's figure is 0 of the targets out of reach, which beside the
    code read as a contradiction; the summary says the output fits probability targets."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10), nn.Softmax(dim=-1))
    doc = check_module(model, torch.randn(32, 16), loss="mse", verify=False, seeds=2)
    f = _finding(doc, "output_loss_mismatch")
    assert f.severity == "info" and f.evidence.value == 0.0 and doc.status == "healthy"
    assert "0 of the targets out of reach" not in doc.summary
    assert "output_loss_mismatch a softmax output under mse: fits probability targets" in doc.summary
