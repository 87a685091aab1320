"""onnxsweep11: a gated cell the loss reads at its last steps only (a forecaster's Dense over the
last 30 of 120 LSTM steps) was a note, "read often", though its first 90 steps learn through the
recurrence alone; a shut forget gate read at every step was lowered to a note the same way; and a
shallow MLP with every weight 10x too large, whose logits saturate the softmax, got no finding."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth.library import check_module


class _Forecaster(nn.Module):
    """An LSTM over ``steps`` steps whose readout sees only its last ``read`` steps (flattened),
    or every step through a mean where ``read`` is None; ``forget_bias`` on the forget gate."""

    def __init__(self, steps: int, read: int | None, forget_bias: float | None = None) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 16, batch_first=True)
        if forget_bias is not None:
            with torch.no_grad():
                for b in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                    b[16:32] = forget_bias / 2  # torch's gate order: input, forget, cell, output
        self.read = read
        self.head = nn.Linear(16 * (read or 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lstm(x)[0]
        if self.read is None:
            return self.head(y.mean(1))
        return self.head(y[:, -self.read:].flatten(1))


def _through_time(model: nn.Module, steps: int):
    torch.manual_seed(0)
    doc = check_module(model, torch.randn(8, steps, 4), loss="mse", seeds=2, verify=False)
    return [f for f in doc.findings if f.code == "vanishing_through_time"]


def test_an_lstm_read_at_its_last_steps_only_says_its_unread_stretch() -> None:
    # steps 0-89 get no gradient of their own: dL/dh_t falls by the recurrence's factor per step
    # (well under 1 for torch's default LSTM init) from step 90 back to step 0. Since kerassweep13
    # a gated cell at default gates' factor (~0.6 a step) is a note at any length, as it is read at
    # its last step alone (the onnxsweep11 tester doubted this warning's label too); the note still
    # says which steps learn through the recurrence alone
    [f] = _through_time(_Forecaster(120, 30), 120)
    extra = f.evidence.model_dump()
    assert f.severity == "info", f.summary
    assert extra["first_read_step"] == 120 - 30 and extra["unread_steps"] == [0, 89]
    # 90 steps at a per-step factor p < 0.9: dL/dh_0 under p^90 < 1e-4 of the read steps'
    assert extra["unread_grad_ratio"] < 1e-2
    assert extra["unread_grad_ratio"] <= extra["per_step_factor"] ** 80
    assert "from step 90 on" in f.summary


def test_the_same_lstm_read_at_every_step_stays_a_note() -> None:
    # every step gets its own gradient from the mean: what vanishes is only the reach of long
    # dependencies, which gates learn (today's "read often" note)
    found = _through_time(_Forecaster(120, None), 120)
    assert all(f.severity == "info" for f in found), [f.summary for f in found]
    assert all("first_read_step" not in f.evidence.model_dump() for f in found)


def test_a_shut_forget_gate_read_at_every_step_is_not_lowered_to_a_note() -> None:
    # forget bias -5: sigmoid(-5) = 0.0067, the cell forgets each step; dL/dh_t carried back falls
    # far below the default gates' ~0.6 a step (a memory horizon under a step): a warning, as it is
    # where the loss reads the last step alone
    [f] = _through_time(_Forecaster(60, None, forget_bias=-5.0), 60)
    extra = f.evidence.model_dump()
    assert extra["per_step_factor"] < 0.5
    assert f.severity == "warning", f.summary


class _MLP(nn.Module):
    """Two ReLU hidden layers and a linear readout, weights ``gain`` times He's std, biases 0."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.l1, self.l2, self.out = nn.Linear(30, 64), nn.Linear(64, 32), nn.Linear(32, 2)
        with torch.no_grad():
            for layer in (self.l1, self.l2, self.out):
                layer.weight.normal_(0, gain * math.sqrt(2 / layer.in_features))
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.l2(torch.relu(self.l1(x)))))


def _exploding(gain: float, loss: str = "cross_entropy", verify: bool = False):
    torch.manual_seed(0)
    doc = check_module(_MLP(gain), torch.randn(64, 30), loss=loss, seeds=2, verify=verify)
    return [f for f in doc.findings if f.code == "exploding_gradient"]


def test_a_shallow_mlp_with_weights_10x_he_warns_on_its_logits() -> None:
    # mean-field, sigma_w^2 = 2 g^2 / fan_in on unit inputs: q_l = 2 g^2 E[h_{l-1}^2] and E[h^2] = q / 2
    # under ReLU, so q1 = 2 g^2, q2 = 2 g^4, the logits' q3 = 2 g^6: a std of sqrt(2) g^3 = 1414 at
    # g = 10 (1.41 at He); the first/last hidden gradient ratio is only about g = 10, under the 1e2 bar
    [f] = _exploding(10.0, verify=True)
    extra = f.evidence.model_dump()
    assert f.severity == "warning", f.summary
    assert 1414 / 2 < extra["logit_std"] < 1414 * 2, extra["logit_std"]
    assert extra["output_layer"] == "out"
    assert extra["grad_ratio"] < 1e2
    he = next(r for r in f.remedies if r.id == "he_init")
    assert he.verified is not None and he.verified.fixed


def test_he_scaled_logits_are_no_finding() -> None:
    # at He the logits' std is about sqrt(2) (q3 = 2 on unit inputs)
    assert not [f for f in _exploding(1.0) if f.severity in ("warning", "error")]


def test_a_regression_output_of_weights_10x_he_is_judged_on_its_init_not_its_logits() -> None:
    # a regression output saturates no softmax, so the logits' rule is not what fires; but every
    # layer at 10x He's std grows both signals about 10x per layer, 1e3 from the input to the output
    # (modsweep37 u02): the oversized init is the finding (it was no finding at all)
    [f] = _exploding(10.0, "mse")
    extra = f.evidence.model_dump()
    assert f.severity == "warning" and extra["oversized_init"] is True
    assert extra.get("logit_std") is None
    # sqrt(fan_in std^2 / sigma_w2*): 10 under ReLU (sigma_w2* = 2), 10 sqrt(2) for the linear readout (1)
    gains = extra["weight_scale_gains"]
    assert gains["l1"] == pytest.approx(10.0, rel=0.1) and gains["l2"] == pytest.approx(10.0, rel=0.1)
    assert gains["out"] == pytest.approx(10.0 * math.sqrt(2), rel=0.1)


class _RNN(nn.Module):
    """A tanh RNN over 15 steps read at its last step, its recurrent weights times ``gain``."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(32, 64, batch_first=True)
        with torch.no_grad():
            self.rnn.weight_hh_l0.mul_(gain)
        self.head = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def test_a_recurrent_cells_tanh_saturation_is_measured_from_its_sequence_output() -> None:
    # the tanh runs inside nn.RNN: its h_t is the tanh's output, so the share of h_t within the
    # margin of +-1 is the cell's saturation (it was not measured at all)
    torch.manual_seed(0)
    model = _RNN(4.0)
    doc = check_module(model, torch.randn(32, 15, 32), seeds=2, verify=False)
    [layer] = [u for u in doc.layers if u.name == "rnn"]
    # an independent count on fresh N(0, 1) inputs: 0.02 is the tools' tanh margin
    with torch.no_grad():
        h = model.rnn(torch.randn(256, 15, 32, dtype=torch.float32))[0]
    expected = float((h.abs() > 0.98).double().mean())
    assert layer.saturated_fraction == pytest.approx(expected, abs=0.05)
    torch.manual_seed(0)
    calm = check_module(_RNN(1.0), torch.randn(32, 15, 32), seeds=2, verify=False)
    [base] = [u for u in calm.layers if u.name == "rnn"]
    assert base.saturated_fraction is not None and base.saturated_fraction < layer.saturated_fraction
