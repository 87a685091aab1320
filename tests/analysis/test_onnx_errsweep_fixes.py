"""errsweep E5-E7: ONNX files that passed the submission check and then failed the job with a 500
are refused up front, naming what is wrong: dims whose int64 product wraps (E5), an initializer of
an unknown element type or of data another size than its dims (E6), an axis or perm out of range
for its input's rank (E7, statically, and at run time as a backstop naming the node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.importers import ModelError, onnx_static
from gradhealth.analysis.importers.onnx_static import _tensor_problem, elements
from gradhealth.cli import main
from gradhealth.errors import LimitExceeded
from tests.api.helpers import Api


def _weight(name: str = "W") -> Any:
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), name)


def _model(w: Any | None = None, *, nodes: list[Any] | None = None, x: list[Any] | None = None,
           out: str = "y", opset: int = 17) -> bytes:
    """x [N, 8] @ W [8, 4] -> y, then ``nodes`` (reading y) where given."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"), *(nodes or [])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x or ["N", 8])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                              [_weight() if w is None else w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _refusal(data: bytes) -> BaseException:
    with pytest.raises((ModelError, LimitExceeded)) as caught:
        check_onnx(data, seeds=1, verify=False)
    return caught.value


# --- E5: exact products ---------------------------------------------------------------------------

def test_initializer_dims_whose_int64_product_wraps_to_0_are_over_the_parameter_limit() -> None:
    w = _weight()
    w.dims[:] = [2**32, 2**32]  # np.prod: 0 parameters
    exc = _refusal(_model(w))
    assert isinstance(exc, LimitExceeded)
    assert f"{2**64} parameters" in str(exc)


def test_input_dims_whose_int64_product_wraps_are_over_the_memory_limit() -> None:
    exc = _refusal(_model(x=[2**62, 2**62]))
    assert isinstance(exc, LimitExceeded)
    assert "activations" in str(exc)


def test_elements_is_exact() -> None:
    assert elements([2**32, 2**32]) == 2**64
    assert elements(np.array([2**62, 4], dtype=np.int64)) == 2**64
    assert elements([]) == 1


# --- E6: an initializer's element type and data length ------------------------------------------

def _unknown_type() -> Any:
    w = _weight()
    w.data_type = 999
    return w


def _truncated() -> Any:
    w = _weight()
    w.raw_data = w.raw_data[:-3]
    return w


def _other_dims() -> Any:
    w = _weight()
    w.raw_data = w.raw_data[:64]  # what a [4, 4] would hold: not a misleading "does not run"
    return w


def _typed_short() -> Any:
    w = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.zeros(32, np.float32))
    del w.float_data[30:]
    return w


@pytest.mark.parametrize(("make", "message"), [
    (_unknown_type, "initializer 'W': data type 999 is not an ONNX element type"),
    (_truncated, "initializer 'W': raw_data holds 125 bytes, its dims [8, 4] of float32 need 128"),
    (_other_dims, "initializer 'W': raw_data holds 64 bytes, its dims [8, 4] of float32 need 128"),
    (_typed_short, "initializer 'W': float_data holds 30 values, its dims [8, 4] of float32 need 32"),
], ids=["data_type_999", "truncated_raw_data", "raw_data_of_other_dims", "float_data_short"])
def test_an_initializer_whose_data_does_not_fit_is_refused_by_name(make: Any, message: str) -> None:
    exc = _refusal(_model(make()))
    assert isinstance(exc, ModelError)
    assert message in str(exc)


def test_a_constant_whose_data_does_not_fit_is_refused_naming_its_node() -> None:
    value = numpy_helper.from_array(np.ones((4,), np.float32), "c")
    value.raw_data = value.raw_data[:10]
    exc = _refusal(_model(nodes=[helper.make_node("Constant", [], ["c"], name="k", value=value),
                                 helper.make_node("Add", ["y", "c"], ["z"], name="add")], out="z"))
    assert isinstance(exc, ModelError)
    assert "node k (Constant), attribute 'value': raw_data holds 10 bytes, its dims [4] of float32 need 16" \
        in str(exc)


@pytest.mark.parametrize("tensor", [
    numpy_helper.from_array(np.ones((3, 5), np.float32)),
    numpy_helper.from_array(np.ones((3, 5), np.float16)),
    numpy_helper.from_array(np.ones((2, 3), np.complex64)),
    numpy_helper.from_array(np.array([True, False, True])),
    numpy_helper.from_array(np.arange(6, dtype=np.int64).reshape(2, 3)),
    numpy_helper.from_array(np.zeros((0, 4), np.float32)),
    helper.make_tensor("t", TensorProto.FLOAT, [2, 3], np.ones(6, np.float32)),
    helper.make_tensor("t", TensorProto.FLOAT16, [2, 3], np.ones(6, np.float16)),
    helper.make_tensor("t", TensorProto.BFLOAT16, [2, 3], np.ones(6, np.float32)),
    helper.make_tensor("t", TensorProto.FLOAT8E4M3FN, [5], np.ones(5, np.float32)),
    helper.make_tensor("t", TensorProto.INT4, [5], np.ones(5, np.int8)),
    helper.make_tensor("t", TensorProto.INT4, [5], np.ones(5, np.int8).tobytes()[:3], raw=True),
    helper.make_tensor("t", TensorProto.COMPLEX64, [2], np.ones(2, np.complex64)),
    helper.make_tensor("t", TensorProto.DOUBLE, [3], np.ones(3)),
    helper.make_tensor("t", TensorProto.UINT64, [3], np.ones(3, np.uint64)),
    helper.make_tensor("t", TensorProto.STRING, [2], [b"a", b"b"]),
], ids=lambda t: f"{TensorProto.DataType.Name(t.data_type)}{'-raw' if t.HasField('raw_data') else ''}"
                 f"{list(t.dims)}")
def test_well_formed_tensors_of_every_storage_pass(tensor: Any) -> None:
    assert _tensor_problem(tensor) is None
    numpy_helper.to_array(tensor)  # (what the worker then reads)


# --- E7: axes out of range ------------------------------------------------------------------------

@pytest.mark.parametrize(("node", "opset", "message"), [
    (helper.make_node("Softmax", ["y"], ["z"], name="sm", axis=99), 17,
     "node sm (Softmax): axis 99 is out of range, its input 'y' has rank 2 (axis -2 to 1)"),
    (helper.make_node("Transpose", ["y"], ["z"], name="tr", perm=[5, 0]), 17,
     "node tr (Transpose): perm [5, 0] is not a permutation of the 2 axes of its input 'y'"),
    (helper.make_node("Transpose", ["y"], ["z"], name="tr", perm=[0, 0]), 17,
     "node tr (Transpose): perm [0, 0] is not a permutation"),
    (helper.make_node("Concat", ["y", "y"], ["z"], name="cat", axis=-3), 17,
     "node cat (Concat): axis -3 is out of range"),
    (helper.make_node("LogSoftmax", ["y"], ["z"], axis=2), 17, "node #1 (LogSoftmax): axis 2 is out of range"),
    (helper.make_node("Flatten", ["y"], ["z"], name="fl", axis=3), 17,
     "node fl (Flatten): axis 3 is out of range, its input 'y' has rank 2 (axis -2 to 2)"),
    (helper.make_node("Unsqueeze", ["y"], ["z"], name="un", axes=[4]), 11,
     "node un (Unsqueeze): axes [4] has 4 out of range"),
    (helper.make_node("ReduceMean", ["y"], ["z"], name="rm", axes=[1, 7]), 17,
     "node rm (ReduceMean): axes [1, 7] has 7 out of range"),
], ids=["softmax", "transpose", "transpose_repeat", "concat", "logsoftmax", "flatten", "unsqueeze", "reduce"])
def test_an_axis_out_of_range_is_refused_naming_the_node_and_the_attribute(node: Any, opset: int,
                                                                           message: str) -> None:
    exc = _refusal(_model(nodes=[node], out="z", opset=opset))
    assert isinstance(exc, ModelError)
    assert message in str(exc)


@pytest.mark.parametrize("node", [
    helper.make_node("Softmax", ["y"], ["z"], axis=-2),
    helper.make_node("Flatten", ["y"], ["z"], axis=2),
    helper.make_node("Transpose", ["y"], ["z"], perm=[1, 0]),
    helper.make_node("Concat", ["y", "y"], ["z"], axis=-1),
], ids=["softmax", "flatten", "transpose", "concat"])
def test_axes_in_range_still_run(node: Any) -> None:
    assert check_onnx(_model(nodes=[node], out="z"), seeds=1, verify=False).status


def test_what_the_header_cannot_judge_is_refused_at_run_time_naming_the_node(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a Concat without its (required) axis: a KeyError in the interpreter, the job's 500
    exc = _refusal(_model(nodes=[helper.make_node("Concat", ["y", "y"], ["z"], name="cat")], out="z"))
    assert isinstance(exc, ModelError)
    assert "node cat (Concat): KeyError" in str(exc)
    # an axis whose input rank the header did not know: torch's IndexError, attributed to the node
    monkeypatch.setattr(onnx_static, "check_axes", lambda graph, ranks: None)
    exc = _refusal(_model(nodes=[helper.make_node("Softmax", ["y"], ["z"], name="sm", axis=99)], out="z"))
    assert isinstance(exc, ModelError)
    assert "node sm (Softmax): IndexError: Dimension out of range" in str(exc)


# --- the CLI and HTTP doors -----------------------------------------------------------------------

def _bad_models() -> dict[str, tuple[bytes, str]]:
    w = _weight()
    w.dims[:] = [2**32, 2**32]
    return {
        "wrapped_dims": (_model(w), f"{2**64} parameters"),
        "wrapped_input": (_model(x=[2**62, 2**62]), "activations"),
        "data_type": (_model(_unknown_type()), "initializer 'W': data type 999"),
        "raw_data": (_model(_truncated()), "initializer 'W': raw_data holds 125 bytes"),
        "softmax": (_model(nodes=[helper.make_node("Softmax", ["y"], ["z"], name="sm", axis=99)], out="z"),
                    "node sm (Softmax): axis 99"),
        "transpose": (_model(nodes=[helper.make_node("Transpose", ["y"], ["z"], name="tr", perm=[5, 0])],
                             out="z"), "node tr (Transpose): perm [5, 0]"),
    }


@pytest.mark.parametrize("case", list(_bad_models()))
def test_the_cli_exits_2_with_the_message(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, message = _bad_models()[case]
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert main(["check", str(path), "--no-progress", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_http_refuses_each_at_submission_with_a_422(idle_api: Api) -> None:
    for case, (data, message) in _bad_models().items():
        r = idle_api.post("/v1/checks/model", content=data, headers={"content-type": "application/onnx"})
        assert r.status_code == 422, (case, r.text)
        assert message in r.json()["detail"], (case, r.json())
