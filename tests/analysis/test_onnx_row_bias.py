"""skl2onnx writes an MLP's intercepts as [1, out] rows added after each MatMul. Read as a constant
beside the product, each Add was taken for a residual sum: a plain MLP was offered scaled_residual
and its layers had "no activation of their own" (onnxsweep16 u01). A single row of the weight's
width is the layer's bias, as a vector is: the same graph with vector biases is the reference."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx


def _mlp(row_bias: bool, scale: float = 3.0) -> bytes:
    rng = np.random.default_rng(0)
    widths = [21, 64, 32, 16, 1]
    nodes: list[Any] = [helper.make_node("Cast", ["x"], ["h_in"], to=TensorProto.FLOAT)]
    inits, prev = [], "h_in"
    for k in range(4):
        w = rng.normal(0, scale / np.sqrt(widths[k]), (widths[k], widths[k + 1])).astype(np.float32)
        b = rng.normal(0, 0.1, (1, widths[k + 1]) if row_bias else (widths[k + 1],)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"coefficient{k}"), numpy_helper.from_array(b, f"intercepts{k}")]
        nodes += [helper.make_node("MatMul", [prev, f"coefficient{k}"], [f"mul{k}"]),
                  helper.make_node("Add", [f"mul{k}", f"intercepts{k}"], [f"add{k}"])]
        prev = f"add{k}"
        if k < 3:
            nodes.append(helper.make_node("Relu", [prev], [f"act{k}"]))
            prev = f"act{k}"
    graph = helper.make_graph(nodes, "skl2onnx_mlp", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [16, 21])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [16, 1])], inits)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def test_a_row_bias_is_the_layers_bias_as_a_vector_is() -> None:
    rows, vectors = check_onnx(_mlp(True), seeds=2), check_onnx(_mlp(False), seeds=2)
    assert [layer.name for layer in rows.layers] == [layer.name for layer in vectors.layers]
    for a, b in zip(rows.layers, vectors.layers, strict=True):
        assert a.grad_norm == b.grad_norm and a.activation_std == b.activation_std
    remedies = {r.id for f in rows.findings for r in f.remedies}
    assert "scaled_residual" not in remedies
    assert {(f.code, f.severity) for f in rows.findings} == {(f.code, f.severity) for f in vectors.findings}
