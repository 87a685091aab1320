"""onnxsweep22 and peersweep17's ONNX defects: an output-activation remedy re-simulated on the
imported graph (peersweep17 tdc_regrNN_softmax_1unit: the Softmax node was never removed, so the
right fix read "not fixed"); the loss assumed for an output of more than [batch, k] said in a note,
with the axis its classes lie on (onnxsweep22 problem 1)."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.graph import GraphRun, _loss, output_class_axis
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.module_check import check_onnx
from tests.analysis.onnx_models import export


def _softmax_over_one_unit() -> bytes:
    torch.manual_seed(0)
    return export(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Softmax(dim=-1)),
                  torch.randn(4, 8))


def test_removing_an_onnx_softmax_over_one_unit_is_verified_fixed() -> None:
    # a softmax over one unit is the constant 1: no sample gets a gradient (fraction 1); without it
    # the regression's output is linear and every sample gets one (fraction 0)
    doc = check_onnx(_softmax_over_one_unit(), loss="mse", seeds=1)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    [r] = [r for r in f.remedies if r.id == "output_activation"]
    assert r.verified is not None and r.verified.fixed and r.verified.before == 1 and r.verified.after == 0


def test_a_sigmoid_for_an_onnx_softmax_over_one_class_is_verified_fixed() -> None:
    # under cross-entropy the remedy is a sigmoid under binary cross-entropy, which the same edit makes
    doc = check_onnx(_softmax_over_one_unit(), loss="cross_entropy", seeds=1)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch" and f.severity == "error"]
    fixed = [r for r in f.remedies if r.verified is not None and r.verified.fixed]
    assert fixed and fixed[0].verified is not None and fixed[0].verified.after == 0


def _decoder(channels: int) -> bytes:
    torch.manual_seed(0)
    return export(nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, channels, 3, padding=1),
                                nn.Tanh()), torch.randn(2, 4, 6, 6))


class _Forecaster(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def test_a_one_channel_map_without_a_loss_is_checked_under_mse_and_said() -> None:
    # cross-entropy over a convolution map's single channel is identically 0 (one class), and over
    # its last axis would make classes of pixel columns: a decoder's image is a regression
    assert output_class_axis(import_onnx(_decoder(1)).module) == 1
    doc = check_onnx(_decoder(1), seeds=1, verify=False)
    assert doc.simulation.loss == "mse"
    [note] = [n for n in doc.simulation.notes if "no loss was given" in n]
    assert "axis 1" in note and "--loss" in note and note in doc.summary


def test_a_sequence_output_without_a_loss_names_its_class_axis_and_mse() -> None:
    data = export(_Forecaster(), torch.randn(2, 7, 3))
    assert output_class_axis(import_onnx(data).module) == -1
    doc = check_onnx(data, seeds=1, verify=False)
    assert doc.simulation.loss == "cross_entropy"
    [note] = [n for n in doc.simulation.notes if "no loss was given" in n]
    assert "axis 2" in note and "--loss mse" in note
    # a [batch, k] classifier's loss needs no note
    torch.manual_seed(0)
    plain = check_onnx(export(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)), torch.randn(4, 8)),
                       seeds=1, verify=False)
    assert not [n for n in plain.simulation.notes if "no loss was given" in n]


def test_cross_entropy_on_a_convolution_map_takes_its_classes_on_the_channels() -> None:
    # torch's nn.CrossEntropyLoss reads [N, C, H, W] with the classes on dim 1: the same value as
    # the run's loss with class_axis 1, against the targets it draws per seed (over [N, H, W])
    out = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    run = GraphRun(nn.Identity(), [], loss="cross_entropy", class_axis=1)
    got, _ = _loss(run, out, seed=0)
    target = torch.randint(3, (2, 4, 5), generator=torch.Generator().manual_seed(20_000))
    assert torch.allclose(got, nn.functional.cross_entropy(out, target))
