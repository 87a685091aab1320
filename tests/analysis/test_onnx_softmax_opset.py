"""ONNX Softmax and LogSoftmax follow the file's opset: before 13 the input is coerced to 2-D
[prod(shape[:axis]), prod(shape[axis:])] and the softmax taken over the flattened trailing
dimensions (default axis 1); from 13 over the one ``axis`` (default -1). Checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from gradhealth.analysis.importers.onnx import import_onnx


def _model(op: str, opset: int, **attrs: int) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])
    node = helper.make_node(op, ["x"], ["y"], name="soft", **attrs)
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _numpy_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    module = import_onnx(data).module.double()
    out = module(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple | list) else out).detach().numpy()


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_before_opset_13_takes_the_flattened_trailing_dims(op: str) -> None:
    x = np.random.default_rng(0).normal(0, 2, (2, 3, 4))
    flat = _numpy_softmax(x.reshape(2, 12), 1).reshape(2, 3, 4)  # ONNX 1-12: [2, 3*4]
    per_axis = _numpy_softmax(x, 1)  # ONNX 13+: over axis 1 only
    want = {11: flat, 13: per_axis}
    for opset in (11, 13):
        got = _run(_model(op, opset, axis=1), x)
        expected = want[opset] if op == "Softmax" else np.log(want[opset])
        assert np.allclose(got, expected, atol=1e-10), opset
    assert not np.allclose(flat, per_axis)
    # the default axis: 1 before 13 (the flattened [2, 12] again), -1 from 13
    assert np.allclose(_run(_model("Softmax", 11), x), flat, atol=1e-10)
    assert np.allclose(_run(_model("Softmax", 13), x), _numpy_softmax(x, -1), atol=1e-10)
