"""onnxsweep22 and peersweep17's ONNX defects: an output-activation remedy re-simulated on the
imported graph (peersweep17 tdc_regrNN_softmax_1unit: the Softmax node was never removed, so the
right fix read "not fixed"); the loss assumed for an output of more than [batch, k] said in a note,
with the axis its classes lie on (onnxsweep22 problem 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, external_data_helper, helper, numpy_helper
from torch import nn

from gradhealth.analysis.graph import GraphRun, _loss, output_class_axis
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import read_header
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


# --- refusals in the user's terms (onnxsweep22 problems 4 and 5, disagreement 2) ---------------

def _matmul_model(producer: str, extra: list | None = None, inits: list | None = None) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"), *(extra or [])]
    out = nodes[-1].output[0]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], [w, *(inits or [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = producer
    return model


def test_a_tf2onnx_loop_refusal_gives_keras_advice_and_a_torch_one_torch_advice() -> None:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Relu", ["v_in"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    loop = [helper.make_node("Constant", [], ["n"], value=numpy_helper.from_array(np.array(3, np.int64))),
            helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(True))),
            helper.make_node("Loop", ["n", "c", "y"], ["z"], name="gru/while_loop", body=body)]
    for producer, said, unsaid in (("tf2onnx", "unroll=True", "torch.jit.script"),
                                   ("pytorch", "torch.jit.script", "unroll=True")):
        with pytest.raises(ModelError) as err:
            read_header(_matmul_model(producer, loop).SerializeToString())
        assert "gru/while_loop (Loop)" in str(err.value) and said in str(err.value)
        assert unsaid not in str(err.value)


def test_an_external_data_refusal_names_the_users_file_and_where_it_points(tmp_path: Path) -> None:
    from gradhealth import check_onnx as check_path

    model = _matmul_model("pytorch")
    onnx.save(model, tmp_path / "kws.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="kws.onnx.data", size_threshold=0)
    (tmp_path / "kws.onnx.data").unlink()
    with pytest.raises(ModelError) as err:
        check_path(tmp_path / "kws.onnx")
    text = str(err.value)
    assert "'kws.onnx.data'" in text and "gradhealth check kws.onnx --external-data" in text
    assert "onnx.load('kws.onnx')" in text and "model.onnx" not in text


def test_reinitialise_with_missing_external_data_names_the_buffers_it_still_needs() -> None:
    # W is a MatMul's weight, which reinitialise redraws; the mask is multiplied in as stored
    mask = numpy_helper.from_array(np.tril(np.ones((2, 4), np.float32)), "mask")
    model = _matmul_model("pytorch", [helper.make_node("Mul", ["y", "mask"], ["z"], name="masked")], [mask])
    external_data_helper.convert_model_to_external_data(model, location="net.onnx.data", size_threshold=0)
    with pytest.raises(ModelError) as err:
        read_header(model.SerializeToString(), weights="reinitialise")
    text = str(err.value)
    assert "reinitialise" in text and "1 of these are no layer's parameter" in text and ": mask" in text
    with pytest.raises(ModelError) as plain:
        read_header(model.SerializeToString())
    assert "reinitialise" not in str(plain.value)
