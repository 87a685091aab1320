"""errsweep5 G2, G10 and the module sweep's M1.

G2: an ONNX graph whose output is a scalar (``ReduceSum keepdims=0``) under cross-entropy, or has no
elements (``Slice 0:0``) under any loss, is refused naming the output (a 422, exit 2), not a 500
IndexError or a "NaN in the loss" verdict. M1: a live module returning ``(None, logits)`` is
checked on its logits; an output holding no floating-point tensor is a ModelError showing its
structure. G10: constant parameter inputs the ONNX operator does not define (a Reshape target
copying a dimension its input lacks, a Dropout ratio of 2.5, a Squeeze of a size-4 axis) and a
declared output shape the graph contradicts are refused at submission naming the node or output;
what only a run finds names the node, op and inputs, not Python's text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth import check_module, check_onnx
from gradhealth.analysis.importers import ModelError
from gradhealth.cli import main
from tests.api.helpers import Api, running_app, settings_for


def _graph(extra: list[Any], inits: tuple[Any, ...] = (), out_shape: list[int] | None = None,
           opset: int = 13) -> bytes:
    """x [16, 8] -> MatMul fc (W [8, 4]) -> y, then ``extra`` (its last node makes the output)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32) * 0.3, "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc"), *extra]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 8])],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)],
                              [w, *inits])
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString())


def _ints(name: str, values: list[int]) -> Any:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _scalar_output() -> bytes:
    return _graph([helper.make_node("ReduceSum", ["y"], ["z"], name="rsum", keepdims=0)], out_shape=[])


def _empty_output() -> bytes:
    return _graph([helper.make_node("Slice", ["y", "st", "en"], ["z"], name="sl")],
                  (_ints("st", [0]), _ints("en", [0])), out_shape=[0, 4])


# --- G2: a scalar or empty output -----------------------------------------------------------------

@pytest.mark.parametrize("loss", [None, "cross_entropy"])
def test_a_scalar_output_under_cross_entropy_is_refused_naming_it(loss: str | None) -> None:
    with pytest.raises(ModelError) as caught:
        check_onnx(_scalar_output(), loss=loss, seeds=1, verify=False)
    assert "the graph's output 'z' is a scalar (shape [])" in caught.value.detail
    assert "cross_entropy needs [batch, classes]" in caught.value.detail
    assert caught.value.status == 422


def test_a_scalar_output_under_mse_is_still_checked() -> None:
    assert check_onnx(_scalar_output(), loss="mse", seeds=1, verify=False).status in ("healthy", "warning")


@pytest.mark.parametrize("loss", [None, "cross_entropy", "mse"])
def test_an_empty_output_is_refused_under_every_loss_not_judged_nonfinite(loss: str | None) -> None:
    with pytest.raises(ModelError, match=r"output 'z' has no elements \(shape \[0, 4\]\)"):
        check_onnx(_empty_output(), loss=loss, seeds=1, verify=False)


def test_a_live_module_returning_its_loss_is_refused_naming_the_output() -> None:
    class Summed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).sum()

    with pytest.raises(ModelError, match=r"the model's output is a scalar .*cross_entropy needs"):
        check_module(Summed(), torch.randn(16, 8), seeds=1, verify=False)
    assert check_module(Summed(), torch.randn(16, 8), loss="sum", seeds=1, verify=False).status


def test_cli_exits_2_for_a_scalar_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scalar.onnx"
    path.write_bytes(_scalar_output())
    assert main(["check", str(path), "--seeds", "1", "--no-verify", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "output 'z' is a scalar" in err and "this is a bug" not in err


@pytest.fixture(scope="module")
def worker_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An app with one real worker: the scalar output is found in the job, not at submission."""
    with running_app(settings_for(tmp_path_factory.mktemp("es5"))) as client:
        yield client


def test_http_job_fails_with_a_422_naming_the_output(worker_api: Api) -> None:
    for data, message in ((_scalar_output(), "output 'z' is a scalar"), (_empty_output(), "output 'z' has no elements")):
        r = worker_api.post("/v1/checks/model?wait=60&seeds=1&verify=false", content=data,
                            headers={"content-type": "application/onnx"})
        job = r.json() if r.status_code >= 300 else worker_api.wait_done(r.json()["id"])
        error = job.get("error") or job
        assert error.get("status") == 422, job
        assert message in error["detail"], job


# --- M1: (None, logits), and an output with no floating-point tensor ---------------------------------

class _Mixer(nn.Module):
    """An MLP-Mixer head as Hugging Face-style code writes it: (loss, logits), the loss None without labels."""

    def __init__(self, ids: bool = False) -> None:
        super().__init__()
        self.fc, self.ids = nn.Linear(8, 4), ids

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.fc(x)
        if self.ids:
            return None, {"ids": logits.argmax(-1)}
        return (None if labels is None else nn.functional.cross_entropy(logits, labels)), logits


def test_a_leading_none_is_passed_over_to_the_logits() -> None:
    doc = check_module(_Mixer(), torch.randn(16, 8), seeds=1, verify=False)
    assert doc.layers and doc.status in ("healthy", "warning")


def test_an_output_without_a_float_tensor_is_a_model_error_showing_its_structure() -> None:
    with pytest.raises(ModelError) as caught:
        check_module(_Mixer(ids=True), torch.randn(16, 8), seeds=1, verify=False)
    assert "tuple(NoneType, dict(ids: Tensor(int64, [16])))" in caught.value.detail
    assert caught.value.status == 422


# --- G10: constant parameter inputs, declared output shapes, the interpreter's words -----------------

#: refused at submission: what the values and the input's rank decide
_AT_SUBMISSION = {
    "reshape copies a dimension the input lacks": (
        _graph([helper.make_node("Reshape", ["y", "s"], ["z"], name="rs")], (_ints("s", [0, 0, 0]),)),
        "node rs (Reshape): its target shape [0, 0, 0]: shape[2] = 0 copies a dimension its input 'y' "
        "(rank 2) does not have"),
    "reshape to a size below -1": (
        _graph([helper.make_node("Reshape", ["y", "s"], ["z"], name="rs")], (_ints("s", [16, -4]),)),
        "node rs (Reshape): its target shape [16, -4] holds -4"),
    "dropout ratio as an input": (
        _graph([helper.make_node("Dropout", ["y", "r"], ["z"], name="do")],
               (numpy_helper.from_array(np.array(2.5, np.float32), "r"),), [16, 4]),
        "node do (Dropout): ratio 2.5 is outside [0, 1)"),
    "dropout ratio as an attribute": (
        _graph([helper.make_node("Dropout", ["y"], ["z"], name="do", ratio=-0.1)], out_shape=[16, 4], opset=10),
        "node do (Dropout): ratio -0.1 is outside [0, 1)"),
    "squeeze axis out of range": (
        _graph([helper.make_node("Squeeze", ["y", "ax"], ["z"], name="sq")], (_ints("ax", [2]),)),
        "node sq (Squeeze): axes [2] has 2 out of range, its input 'y' has rank 2"),
    "unsqueeze axis out of range": (
        _graph([helper.make_node("Unsqueeze", ["y", "ax"], ["z"], name="uq")], (_ints("ax", [5]),)),
        "node uq (Unsqueeze): axes [5] has 5 out of range"),
    "slice step 0": (
        _graph([helper.make_node("Slice", ["y", "st", "en", "ax", "sp"], ["z"], name="sl")],
               (_ints("st", [0]), _ints("en", [2]), _ints("ax", [1]), _ints("sp", [0]))),
        "node sl (Slice): its steps [0] hold a 0"),
}
#: refused by the run (422), on the tensors themselves: what needs the input's sizes, which
#: shape inference can get wrong (a pool with ceil_mode), and the declared output against the computed
_AT_RUN_TIME = {
    "squeeze of a size-4 axis": (
        _graph([helper.make_node("Squeeze", ["y", "ax"], ["z"], name="sq")], (_ints("ax", [1]),)),
        "node sq (Squeeze): axis 1 has size 4 (its input has shape [16, 4])"),
    "reshape to another size": (
        _graph([helper.make_node("Reshape", ["y", "s"], ["z"], name="rs")], (_ints("s", [5, -1]),)),
        "node rs (Reshape): shape '[5, -1]' is invalid for input of size 64"),
    "declared output of another rank": (
        _graph([helper.make_node("Relu", ["y"], ["z"], name="relu")], out_shape=[3, 3, 3]),
        "graph output 'z' is declared of shape [3, 3, 3] (rank 3), but its graph computes shape [16, 4] (rank 2)"),
    "declared output of another size": (
        _graph([helper.make_node("Relu", ["y"], ["z"], name="relu")], out_shape=[16, 5]),
        "graph output 'z' is declared of shape [16, 5], but its graph computes shape [16, 4] (dimension 1"),
}


@pytest.mark.parametrize("case", sorted(_AT_SUBMISSION) + sorted(_AT_RUN_TIME))
def test_parameters_outside_the_op_are_refused_naming_the_node(case: str) -> None:
    data, message = {**_AT_SUBMISSION, **_AT_RUN_TIME}[case]
    with pytest.raises(ModelError) as caught:
        check_onnx(data, loss="mse", seeds=1, verify=False)
    assert message in caught.value.detail
    with pytest.raises(ModelError):
        check_onnx(data, seeds=1, verify=False)  # (the implied loss's probe forward too)


def test_http_refuses_the_static_ones_at_submission(idle_api: Api) -> None:
    for case, (data, message) in _AT_SUBMISSION.items():
        r = idle_api.post("/v1/checks/model", content=data, headers={"content-type": "application/onnx"})
        assert r.status_code == 422, (case, r.text)
        assert message in r.json()["detail"], (case, r.json())


def test_http_job_fails_with_a_422_for_the_run_time_ones(worker_api: Api) -> None:
    for case, (data, message) in _AT_RUN_TIME.items():
        r = worker_api.post("/v1/checks/model?wait=60&seeds=1&verify=false", content=data,
                            headers={"content-type": "application/onnx"})
        job = r.json() if r.status_code >= 300 else worker_api.wait_done(r.json()["id"])
        error = job.get("error") or job
        assert error.get("status") == 422, (case, job)
        assert message in error["detail"], (case, job)


def test_valid_parameters_still_run() -> None:
    ok = [
        _graph([helper.make_node("Reshape", ["y", "s"], ["z"], name="rs")], (_ints("s", [0, -1]),)),
        _graph([helper.make_node("Unsqueeze", ["y", "ax"], ["u"], name="uq"),
                helper.make_node("Squeeze", ["u", "ax"], ["z"], name="sq")], (_ints("ax", [1]),), [16, 4]),
        _graph([helper.make_node("Dropout", ["y", "r"], ["z"], name="do")],
               (numpy_helper.from_array(np.array(0.5, np.float32), "r"),), [16, 4]),
        _graph([helper.make_node("Relu", ["y"], ["z"], name="relu")], out_shape=["N", 4]),
    ]
    for data in ok:
        assert check_onnx(data, seeds=1, verify=False).layers


def test_a_declared_batch_replaced_by_batch_size_is_no_contradiction() -> None:
    data = _graph([helper.make_node("Relu", ["y"], ["z"], name="relu")], out_shape=[16, 4])
    assert check_onnx(data, seeds=1, verify=False, batch_size=8).layers


def test_an_op_failing_at_run_time_is_named_by_node_op_and_inputs_not_python_text() -> None:
    # the target is computed (Shape -> Concat [0]): no static check can see it, the run does
    data = _graph([helper.make_node("Shape", ["y"], ["sh"], name="shape"),
                   helper.make_node("Concat", ["sh", "zero"], ["t"], name="cat", axis=0),
                   helper.make_node("Reshape", ["y", "t"], ["z"], name="rs")], (_ints("zero", [0]),))
    with pytest.raises(ModelError) as caught:
        check_onnx(data, seeds=1, verify=False)
    detail = caught.value.detail
    assert "node rs (Reshape): IndexError: its inputs do not fit it ('y' of shape [16, 4], 't' = [16, 4, 0])" in detail
    assert "tuple index out of range" not in detail
