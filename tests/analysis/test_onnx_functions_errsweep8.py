"""errsweep8 #5: a model whose node calls a function the file defines (``model.functions``, domain
``local``) was refused as "unsupported ONNX ops: local::MyRelu", reading like a missing operator.
Such functions are inlined (``onnx.inliner``) before the check; one that calls itself is named as a
function; a nest of functions that would inline to more nodes than the limit is refused by its
count, before anything is inlined."""

from __future__ import annotations

import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx_static import read_header
from gradhealth.analysis.module_check import check_onnx
from gradhealth.errors import LimitExceeded

_OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]


def _mlp(middle: list, functions: list = ()) -> bytes:  # type: ignore[assignment]
    """x [4, 8] -> MatMul(W1) -> middle nodes (h -> a) -> MatMul(W2) -> y [4, 3]."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm1"), *middle,
         helper.make_node("MatMul", ["a", "W2"], ["y"], name="mm2")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        [numpy_helper.from_array(rng.normal(0, 0.4, (8, 6)).astype(np.float32), "W1"),
         numpy_helper.from_array(rng.normal(0, 0.4, (6, 3)).astype(np.float32), "W2")])
    return helper.make_model(graph, opset_imports=_OPSETS, ir_version=9, functions=list(functions)).SerializeToString()


def _fn(name: str, body: list) -> object:
    return helper.make_function("local", name, ["a"], ["b"], body, _OPSETS)


def test_a_local_function_is_inlined_and_checked_as_the_ops_it_is_made_of() -> None:
    my_relu = _fn("MyRelu", [helper.make_node("Relu", ["a"], ["b"])])
    as_function = _mlp([helper.make_node("MyRelu", ["h"], ["a"], domain="local", name="act")], [my_relu])
    plain = _mlp([helper.make_node("Relu", ["h"], ["a"], name="act")])
    header = read_header(as_function)
    assert [n.op_type for n in header.model.graph.node] == ["MatMul", "Relu", "MatMul"]
    assert not header.model.functions
    # the same network: the same document as the file written without the function
    a, b = check_onnx(as_function, seeds=1, verify=False), check_onnx(plain, seeds=1, verify=False)
    assert a.status == b.status and a.simulation.parameters == b.simulation.parameters == 8 * 6 + 6 * 3
    assert sorted(f.code for f in a.findings) == sorted(f.code for f in b.findings)


def test_nested_functions_are_inlined_too() -> None:
    inner = _fn("Inner", [helper.make_node("Tanh", ["a"], ["b"])])
    outer = _fn("Outer", [helper.make_node("Inner", ["a"], ["t"], domain="local"),
                          helper.make_node("Relu", ["t"], ["b"])])
    data = _mlp([helper.make_node("Outer", ["h"], ["a"], domain="local", name="block")], [outer, inner])
    assert [n.op_type for n in read_header(data).model.graph.node] == ["MatMul", "Tanh", "Relu", "MatMul"]


def test_a_recursive_function_is_named_as_a_function_the_file_defines() -> None:
    f1 = _fn("F1", [helper.make_node("F2", ["a"], ["b"], domain="local")])
    f2 = _fn("F2", [helper.make_node("F1", ["a"], ["b"], domain="local")])
    data = _mlp([helper.make_node("F1", ["h"], ["a"], domain="local", name="loop")], [f1, f2])
    with pytest.raises(ModelError) as refused:
        read_header(data)
    assert "local::F1 (node loop)" in str(refused.value)
    assert "local::F1 is a function the file defines (model.functions)" in str(refused.value)


def test_a_dead_recursive_function_leaves_the_live_one_inlined() -> None:
    loop = _fn("Loop", [helper.make_node("Loop", ["a"], ["b"], domain="local")])
    my_relu = _fn("MyRelu", [helper.make_node("Relu", ["a"], ["b"])])
    data = _mlp([helper.make_node("MyRelu", ["h"], ["a"], domain="local", name="act"),
                 helper.make_node("Loop", ["h"], ["unused"], domain="local", name="dead")], [loop, my_relu])
    header = read_header(data)  # the dead call is pruned as before; the live one inlined
    assert [n.op_type for n in header.model.graph.node] == ["MatMul", "Relu", "MatMul"]


def test_functions_that_would_inline_past_the_node_limit_are_refused_by_their_count() -> None:
    functions = [_fn("F0", [helper.make_node("Relu", ["a"], ["b"])])]
    for k in range(1, 61):  # F_k calls F_(k-1) twice: 2^60 Relus inlined
        functions.append(_fn(f"F{k}", [helper.make_node(f"F{k - 1}", ["a"], ["t"], domain="local"),
                                       helper.make_node(f"F{k - 1}", ["t"], ["b"], domain="local")]))
    data = _mlp([helper.make_node("F60", ["h"], ["a"], domain="local", name="bomb")], functions)
    start = time.monotonic()
    with pytest.raises(LimitExceeded) as refused:
        read_header(data)
    assert time.monotonic() - start < 5
    assert f"expand to about 10^{len(str(2**60)) - 1} nodes once inlined" in str(refused.value)
