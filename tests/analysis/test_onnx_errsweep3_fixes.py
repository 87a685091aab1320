"""errsweep3 F5, F13 and the ONNX parts of F2 and F16: an ONNX file whose attributes are of the
wrong type (a FLOAT Constant value, a STRING transA), given twice, or describe a window no
convolution or pool has (pads=[1] for a 2-d conv, strides 0, group 0, a kernel_shape the weight
contradicts), an opset below 1, a graph with no output or whose output no node computes, or
constants declaring more values than the limit, is refused at submission naming the node and the
attribute; what only a run can find names the node in flight."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import _attrs
from gradhealth.analysis.importers.onnx_static import read_header
from gradhealth.analysis.plan import Limits
from gradhealth.errors import LimitExceeded
from tests.api.helpers import Api


def _mlp(*, pre: list[Any] | None = None, inits: list[Any] | None = None, gemm: dict[str, Any] | None = None,
         opset: int = 17) -> Any:
    """x [N, 8] (through ``pre``, which makes x1, where given) -> Gemm fc (W [8, 4]) -> Relu -> y."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "W")
    nodes = [*(pre or []), helper.make_node("Gemm", ["x1" if pre else "x", "W"], ["g"], name="fc", **(gemm or {})),
             helper.make_node("Relu", ["g"], ["y"], name="act")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, *(inits or [])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _conv(op: str = "Conv", **attrs: Any) -> bytes:
    """x [2, 3, 8, 8] -> ``op`` (a Conv of W [4, 3, 3, 3], or a pool after a 1x1 Conv) -> Flatten."""
    if op == "Conv":
        w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W")
        nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", **attrs)]
    else:
        w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "W")
        nodes = [helper.make_node("Conv", ["x", "W"], ["c0"], name="conv"),
                 helper.make_node(op, ["c0"], ["c"], name="pool", **attrs)]
    nodes.append(helper.make_node("Flatten", ["c"], ["y"], name="flat"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def _const_float() -> bytes:
    c = helper.make_node("Constant", [], ["c"], name="cst")
    c.attribute.append(helper.make_attribute("value", 2.0))  # a FLOAT where ONNX defines a TENSOR
    return bytes(_mlp(pre=[c, helper.make_node("Mul", ["x", "c"], ["x1"], name="mul")]).SerializeToString())


def _cos_ints() -> bytes:
    cs = helper.make_node("ConstantOfShape", ["shp"], ["z"], name="cos")
    cs.attribute.append(helper.make_attribute("value", [1, 2]))  # INTS where ONNX defines a TENSOR
    shp = numpy_helper.from_array(np.array([1, 8], np.int64), "shp")
    return bytes(_mlp(pre=[cs, helper.make_node("Add", ["x", "z"], ["x1"], name="add")], inits=[shp])
                 .SerializeToString())


def _dup_attr() -> bytes:
    m = _mlp()
    m.graph.node[0].attribute.extend([helper.make_attribute("alpha", 1.0), helper.make_attribute("alpha", 2.0)])
    return bytes(m.SerializeToString())


def _no_output() -> bytes:
    m = _mlp()
    del m.graph.output[:]
    return bytes(m.SerializeToString())


def _output_is(name: str) -> bytes:
    m = _mlp()
    m.graph.output[0].name = name
    return bytes(m.SerializeToString())


def _cast(to: int) -> bytes:
    return _mlp(pre=[helper.make_node("Cast", ["x"], ["x1"], name="cast", to=to)]).SerializeToString()


def _reshape(shape: list[int]) -> bytes:
    target = numpy_helper.from_array(np.array(shape, np.int64), "shape")
    return _mlp(pre=[helper.make_node("Reshape", ["x", "shape"], ["x1"], name="rs")], inits=[target]).SerializeToString()


def _bad_models() -> dict[str, tuple[bytes, str]]:
    """Each refused by the header (what the API runs at submission), and the message it names."""
    return {
        "const_float": (_const_float(), "node cst (Constant): attribute 'value' is a FLOAT, expected a TENSOR"),
        "cos_ints": (_cos_ints(), "node cos (ConstantOfShape): attribute 'value' is an INTS, expected a TENSOR"),
        "transA_string": (_mlp(gemm={"transA": "yes"}).SerializeToString(),
                          "node fc (Gemm): attribute 'transA' is a STRING, expected an INT"),
        "transB_7": (_mlp(gemm={"transB": 7}).SerializeToString(), "node fc (Gemm): attribute 'transB' is 7, must be 0 or 1"),
        "dup_attr": (_dup_attr(), "node fc (Gemm): attribute 'alpha' is given more than once"),
        "pads_short": (_conv(pads=[1]), "node conv (Conv): pads has 1 value(s), needs 4"),
        "strides_0": (_conv(strides=[0, 0]), "node conv (Conv): strides [0, 0] holds 0; each must be at least 1"),
        "dilations_0": (_conv(dilations=[0, 0]), "node conv (Conv): dilations [0, 0] holds 0"),
        "group_0": (_conv(group=0), "node conv (Conv): group 0; it must be at least 1"),
        "group_5": (_conv(group=5), "node conv (Conv): group 5 does not divide the 4 output channels"),
        "pads_negative": (_conv(pads=[-5, -5, -5, -5]), "node conv (Conv): pads [-5, -5, -5, -5] holds -5"),
        "kernel_shape": (_conv(kernel_shape=[5, 5]),
                         "node conv (Conv): kernel_shape [5, 5] contradicts its weight 'W' of shape [4, 3, 3, 3]"),
        "auto_pad": (_conv(auto_pad="BOGUS"), "node conv (Conv): auto_pad 'BOGUS' is none of"),
        "pool_no_kernel": (_conv("MaxPool"), "node pool (MaxPool): attribute 'kernel_shape' is required"),
        "pool_kernel_0": (_conv("MaxPool", kernel_shape=[0, 0]), "node pool (MaxPool): kernel_shape [0, 0] holds 0"),
        "pool_kernel_rank": (_conv("AveragePool", kernel_shape=[2]),
                             "node pool (AveragePool): kernel_shape has 1 value(s), needs 2"),
        "cast_string": (_cast(TensorProto.STRING), "node cast (Cast): casts to element type 8 (STRING)"),
        "cast_999": (_cast(999), "node cast (Cast): casts to element type 999 (no ONNX type)"),
        "reshape_two_inferred": (_reshape([-1, -1]), "node rs (Reshape): its target shape [-1, -1] has more than one -1"),
        "no_output": (_no_output(), "the graph has no output"),
        "output_is_input": (_output_is("x"), "graph output 'x' is a graph input that no node computes"),
        "output_is_initializer": (_output_is("W"), "graph output 'W' is an initializer that no node computes"),
        # (an ArgMax of the logits is no longer refused: its loss is taken at the logits it reads,
        # test_onnx_sweep14_fixes.py; an ArgMax of a graph input still is, test_onnx_sweep11_fixes.py)
        "opset_0": (_mlp(opset=0).SerializeToString(), "opset ai.onnx 0; opset versions start at 1"),
        "opset_negative": (_mlp(opset=-5).SerializeToString(), "opset ai.onnx -5; opset versions start at 1"),
    }


@pytest.mark.parametrize("case", list(_bad_models()))
def test_the_header_refuses_naming_the_node_and_attribute(case: str) -> None:
    data, message = _bad_models()[case]
    with pytest.raises(ModelError) as caught:
        read_header(data)
    assert message in str(caught.value)


def test_a_well_formed_conv_and_pool_still_pass() -> None:
    read_header(_conv(pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3], group=1))
    read_header(_conv("MaxPool", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
    read_header(_mlp(gemm={"transB": 0, "alpha": 1.0}).SerializeToString())
    read_header(_cast(TensorProto.DOUBLE))
    read_header(_reshape([-1, 8]))


def test_the_worker_reads_attributes_through_the_type_checking_accessor() -> None:
    node = helper.make_node("Constant", [], ["c"], name="cst")
    node.attribute.append(helper.make_attribute("value", 2.0))
    with pytest.raises(ModelError, match=r"node cst \(Constant\): attribute 'value' is a FLOAT, expected a TENSOR"):
        _attrs(node)
    untyped = helper.make_node("Relu", ["x"], ["y"], name="r")
    untyped.attribute.add(name="alpha")  # no type at all
    assert untyped.attribute[0].type == AttributeProto.UNDEFINED
    with pytest.raises(ModelError, match=r"node r \(Relu\): attribute 'alpha' has no type"):
        _attrs(untyped)


# --- F2: constants' declared sizes against the limit, before any data is read ----------------------

def _constant_of(dims: list[int], data: bool) -> bytes:
    t = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=dims)
    if data:
        t.raw_data = np.zeros(dims, np.float32).tobytes()
    c = helper.make_node("Constant", [], ["c"], name="cst", value=t)
    return bytes(_mlp(pre=[c, helper.make_node("Add", ["x", "c"], ["x1"], name="add")]).SerializeToString())


def test_a_constant_declaring_more_values_than_the_limit_is_refused_from_its_dims() -> None:
    # declared, never written: refused as over the limit, not read (nor met as a data-length problem)
    with pytest.raises(LimitExceeded, match=r"node cst \(Constant\), attribute 'value' alone declares "
                                            rf"{2**40 * 8}") as caught:
        read_header(_constant_of([2**40, 8], data=False))
    assert "over the limit of 200000000" in str(caught.value)


def test_constants_count_with_the_parameters() -> None:
    data = _constant_of([4, 8], data=True)  # 32 values, beside the 32 parameters of W
    read_header(data, limits=Limits(max_parameters=64))
    with pytest.raises(LimitExceeded, match="the model stores 64 values"):
        read_header(data, limits=Limits(max_parameters=63))


# --- what only a run finds: named by the node in flight ---------------------------------------------

def test_a_run_time_failure_names_the_node_in_flight() -> None:
    shape = numpy_helper.from_array(np.array([-1, -1], np.int64), "shp")
    data = _mlp(pre=[helper.make_node("Reshape", ["x", "shp"], ["x1"], name="rs")], inits=[shape]).SerializeToString()
    with pytest.raises(ModelError) as caught:
        check_onnx(data, seeds=1, verify=False)
    assert "node rs (Reshape): " in str(caught.value)
    assert "only one dimension can be inferred" in str(caught.value)


def test_a_torch_error_keeps_its_kind_with_the_node_named() -> None:
    # a 1-d input split in two halves of 4 feeds fc's [8, 4] weight: torch's RuntimeError at run
    data = _mlp(pre=[helper.make_node("Split", ["x"], ["x1", "x2"], name="sp", axis=1, num_outputs=2)],
                opset=18).SerializeToString()
    with pytest.raises(ModelError) as caught:
        check_onnx(data, seeds=1, verify=False)
    assert "node fc (Gemm): mat1 and mat2 shapes cannot be multiplied" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)


# --- the HTTP door: refused at submission, no job queued --------------------------------------------

def test_http_refuses_each_at_submission_with_a_422(idle_api: Api) -> None:
    for case, (data, message) in _bad_models().items():
        r = idle_api.post("/v1/checks/model", content=data, headers={"content-type": "application/onnx"})
        assert r.status_code == 422, (case, r.text)
        assert message in r.json()["detail"], (case, r.json())
