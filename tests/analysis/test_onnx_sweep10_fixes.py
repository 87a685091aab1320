"""onnxsweep10's defects: the loss the check chooses for an inference softmax head (h02, h04), dead
units read from one seed's small batch (h08), and a gated cell with its forget gate shut (b05)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import export, mlp


def _severe(doc: object, code: str) -> list[str]:
    return [f.severity for f in doc.findings if f.code == code and f.severity in ("warning", "error")]  # type: ignore[attr-defined]


def test_an_inference_softmax_with_trained_size_logits_is_no_output_loss_mismatch() -> None:
    # h02/h04: trained logits are large, so on the clipped probabilities part of the batch put its
    # class under 1e-7 and got no gradient, reported as the user's output_loss_mismatch; the loss
    # is the check's own choice and now takes the logits before the softmax
    torch.manual_seed(0)
    body = mlp(nn.ReLU, depth=3, he=True)
    with torch.no_grad():
        body[-1].weight.mul_(30.0)  # logits of a few tens: the true class often under 1e-7
    x = torch.randn(16, 64)
    soft = check_onnx(export(nn.Sequential(body, nn.Softmax(dim=-1)), x), seeds=2, verify=False)
    logs = check_onnx(export(nn.Sequential(body, nn.LogSoftmax(dim=-1)), x), seeds=2, verify=False)
    assert not _severe(soft, "output_loss_mismatch"), soft.summary
    [note] = [f for f in soft.findings if f.code == "output_loss_mismatch"]
    assert note.severity == "info" and "logits before it" in note.summary
    # the gradient every layer gets is the one a net returning log-probabilities gets
    for a, b in zip(soft.layers, logs.layers, strict=True):
        assert a.output_grad_norm == pytest.approx(b.output_grad_norm, rel=1e-6)


def test_an_inference_softmax_whose_probabilities_underflow_still_gets_the_logits_gradient() -> None:
    # logits thousands apart: the softmax's probabilities underflow to 0 in float64, whose log is
    # -inf; the cross-entropy is then taken from the logits the softmax was given
    torch.manual_seed(0)
    body = mlp(nn.ReLU, depth=2, he=True)
    with torch.no_grad():
        body[-1].weight.mul_(2000.0)
    x = torch.randn(16, 64)
    doc = check_onnx(export(nn.Sequential(body, nn.Softmax(dim=-1)), x), seeds=1, verify=False)
    assert not [f for f in doc.findings if f.code == "nonfinite"], doc.summary
    assert not _severe(doc, "output_loss_mismatch"), doc.summary
    assert all(layer.output_grad_norm > 0 for layer in doc.layers), doc.summary


@pytest.mark.parametrize("width", [1, 10])
def test_an_implied_sigmoid_head_with_trained_size_logits_is_no_output_loss_mismatch(width: int) -> None:
    # h13 (a multi-label head) and a binary classifier: the binary cross-entropy the check implies
    # for a sigmoid head was taken on its clipped probabilities, an error for the check's own choice
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, width), nn.Sigmoid())
    with torch.no_grad():
        net[2].weight.mul_(200.0)  # logits of tens to hundreds: the sigmoid rounds to 0 or 1
    doc = check_onnx(export(net, torch.randn(16, 8)), seeds=2, verify=False)
    assert not _severe(doc, "output_loss_mismatch"), doc.summary
    assert not [f for f in doc.findings if f.code == "nonfinite"], doc.summary
    assert all(layer.output_grad_norm > 0 for layer in doc.layers), doc.summary


class _Rare(nn.Module):
    """A ReLU layer each of whose units fires for 2% of standard-normal inputs (a trained net's
    selective units), then a linear readout."""

    def __init__(self, width: int = 64, bias: float = -2.054) -> None:
        super().__init__()
        self.hidden = nn.Linear(32, width)
        self.out = nn.Linear(width, 10)
        with torch.no_grad():
            w = torch.randn(width, 32)
            self.hidden.weight.copy_(w / w.norm(dim=1, keepdim=True))  # each pre-activation N(0, 1) ...
            self.hidden.bias.fill_(bias)  # ... minus 2.054: above 0 for 2% of inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def test_units_that_fire_rarely_are_not_dead_when_another_seeds_batch_sees_them_fire() -> None:
    # h08: each unit is zero for a batch of 16 with probability 0.98^16 = 0.72, so each seed read
    # ~72% of the layer dead (a warning); dead is zero for every sample of every seed's batch (48
    # samples: 0.38)
    torch.manual_seed(0)
    doc = check_onnx(export(_Rare(), torch.randn(16, 32)), verify=False)
    assert not _severe(doc, "dead_units"), doc.summary


def test_a_layer_dead_in_every_seed_is_still_dead_units() -> None:
    torch.manual_seed(0)
    doc = check_onnx(export(_Rare(bias=-8.0), torch.randn(16, 32)), verify=False)  # never fires
    assert _severe(doc, "dead_units") == ["error"], doc.summary


class _LastStep(nn.Module):
    """An LSTM over 28 rows of 28, read at its last step (pytorch/examples' MNIST RNN)."""

    def __init__(self, forget_bias: float | None = None) -> None:
        super().__init__()
        self.rnn = nn.LSTM(28, 64, batch_first=True)
        self.fc = nn.Linear(64, 10)
        if forget_bias is not None:
            with torch.no_grad():
                self.rnn.bias_ih_l0[64:128].fill_(forget_bias)
                self.rnn.bias_hh_l0[64:128].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0][:, -1])


def test_an_lstm_with_its_forget_gate_shut_is_a_warning_with_the_forget_bias_remedy() -> None:
    # b05: forget bias -5 (gate 0.007) wipes the memory each step: 0.33 a step over 28 steps, far
    # from default gates' ~0.6, which the under-50-steps note is for
    torch.manual_seed(0)
    doc = check_module(_LastStep(forget_bias=-5.0), torch.randn(16, 28, 28), loss="cross_entropy", seeds=2,
                       verify=False)
    [finding] = [f for f in doc.findings if f.code == "vanishing_through_time"]
    assert finding.severity == "warning", doc.summary
    assert any(r.id == "gated_recurrent_cell" for r in finding.remedies)


def test_an_lstm_with_default_gates_over_28_steps_stays_a_note() -> None:
    # modsweep22's mnist_rnn: default gates, 28 steps, ~0.6 a step
    torch.manual_seed(0)
    doc = check_module(_LastStep(), torch.randn(16, 28, 28), loss="cross_entropy", seeds=2, verify=False)
    assert [f.severity for f in doc.findings if f.code == "vanishing_through_time"] == ["info"], doc.summary
