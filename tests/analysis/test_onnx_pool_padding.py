"""MaxPool and AveragePool with ``auto_pad`` SAME_UPPER/SAME_LOWER, uneven ``pads``, ``ceil_mode``,
``dilations`` and ``count_include_pad`` (as keras2onnx/tf2onnx write ``padding='same'`` pools,
onnxsweep10 h16) against a window-by-window numpy reference; and unnamed nodes named by op and
position in the graph (onnxsweep10 b05)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers.onnx import import_onnx


def _reference(x: np.ndarray, kind: str, kernel: list[int], strides: list[int], dilations: list[int],
               auto_pad: str, pads: list[int], ceil: bool, include: bool) -> np.ndarray:
    """The pool as the ONNX spec (and onnxruntime) compute it, one window at a time."""
    sizes = list(x.shape[2:])
    nd = len(sizes)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, s, span in zip(sizes, strides, spans, strict=True):
            total = max(0, (math.ceil(n / s) - 1) * s + span - n)
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        outs = [math.ceil(n / s) for n, s in zip(sizes, strides, strict=True)]
    else:
        begin, end = (pads[:nd], pads[nd:]) if auto_pad == "NOTSET" else ([0] * nd, [0] * nd)
        outs = []
        for i in range(nd):
            room = (sizes[i] + begin[i] + end[i] - spans[i]) / strides[i]
            out = math.ceil(room) + 1 if ceil and auto_pad == "NOTSET" else math.floor(room) + 1
            if ceil and (out - 1) * strides[i] >= sizes[i] + begin[i]:
                out -= 1
            outs.append(out)
    y = np.zeros((*x.shape[:2], *outs))
    for o in itertools.product(*(range(n) for n in outs)):
        cells = [[o[i] * strides[i] - begin[i] + j * dilations[i] for j in range(kernel[i])] for i in range(nd)]
        real = [p for p in itertools.product(*cells) if all(0 <= p[i] < sizes[i] for i in range(nd))]
        padded = [p for p in itertools.product(*cells) if all(-begin[i] <= p[i] < sizes[i] + end[i] for i in range(nd))]
        vals = np.stack([x[(slice(None), slice(None), *p)] for p in real], axis=-1)
        if kind == "MaxPool":
            y[(slice(None), slice(None), *o)] = vals.max(axis=-1)
        else:
            y[(slice(None), slice(None), *o)] = vals.sum(axis=-1) / (len(padded) if include else len(real))
    return y


def _pool(x: np.ndarray, kind: str, out_shape: list[int], **attrs: object) -> np.ndarray:
    """One pool node as a graph, interpreted in float64."""
    node = helper.make_node(kind, ["x"], ["y"], name="pool", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()
    module = import_onnx(data).module.double()
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(x.astype(np.float64))).numpy())


#: (op, count_include_pad): an attribute of AveragePool only
KINDS = [("MaxPool", 0), ("AveragePool", 0), ("AveragePool", 1)]
CASES = [  # (spatial sizes, kernel, strides, auto_pad, pads)
    *[(sizes, [3, 2], strides, pad, None)
      for sizes in ([7, 6], [8, 5]) for strides in ([1, 1], [2, 2]) for pad in ("SAME_UPPER", "SAME_LOWER")],
    ([7, 6], [2, 2], [2, 2], "SAME_UPPER", None),
    ([5], [4], [2], "SAME_LOWER", None),
    ([7, 6], [3, 3], [1, 1], "NOTSET", [0, 1, 2, 0]),
    ([8, 5], [3, 2], [2, 2], "NOTSET", [1, 0, 0, 1]),
    ([6], [3], [2], "NOTSET", [0, 2]),
    ([4, 4, 5], [2, 2, 3], [2, 1, 2], "SAME_UPPER", None),
]


@pytest.mark.parametrize("kind,include", KINDS)
@pytest.mark.parametrize("sizes,kernel,strides,auto_pad,pads", CASES)
def test_pool_padding_matches_reference(kind: str, include: int, sizes: list[int], kernel: list[int],
                                        strides: list[int], auto_pad: str, pads: list[int] | None) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, *sizes)) - 3.0  # negative: -inf padding matters
    nd = len(sizes)
    want = _reference(x, kind, kernel, strides, [1] * nd, auto_pad, pads or [0] * 2 * nd, False, bool(include))
    attrs: dict[str, object] = {"kernel_shape": kernel, "strides": strides, "auto_pad": auto_pad}
    if pads is not None:
        attrs["pads"] = pads
    if kind == "AveragePool":
        attrs["count_include_pad"] = include
    got = _pool(x, kind, list(want.shape), **attrs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,include", KINDS)
@pytest.mark.parametrize("sizes,kernel,strides,pads,dilations", [
    ([7, 6], [3, 2], [2, 2], [0, 1, 1, 0], [1, 1]),
    ([8, 7], [2, 3], [3, 2], [1, 0, 0, 1], [1, 1]),
    ([9], [3], [2], [1, 0], [2]),
    ([10, 9], [2, 2], [2, 3], [1, 0, 0, 1], [2, 2]),
])
def test_pool_ceil_mode_and_dilations_match_reference(kind: str, include: int, sizes: list[int], kernel: list[int],
                                                      strides: list[int], pads: list[int],
                                                      dilations: list[int]) -> None:
    x = np.random.default_rng(1).standard_normal((2, 2, *sizes)) - 3.0
    want = _reference(x, kind, kernel, strides, dilations, "NOTSET", pads, True, bool(include))
    attrs: dict[str, object] = {"kernel_shape": kernel, "strides": strides, "pads": pads, "ceil_mode": 1,
                                "dilations": dilations}
    if kind == "AveragePool":
        attrs["count_include_pad"] = include
    got = _pool(x, kind, list(want.shape), **attrs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_same_upper_pool_model_is_checked(tmp_path: object) -> None:
    """A keras2onnx-style CNN (Conv, MaxPool auto_pad=SAME_UPPER on an odd size) imports and
    its gradient reaches the convolution's weight (h16 was refused: exit 2)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", auto_pad="SAME_UPPER", kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="max_pooling2d_3", auto_pad="SAME_UPPER",
                              kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "d"], ["y"], name="dense")]
    inits = [numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((4 * 4 * 4, 3)).astype(np.float32), "d")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 7, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    module = import_onnx(data).module.double()
    y = module(torch.randn(2, 1, 7, 7, dtype=torch.float64))
    assert tuple(y.shape) == (2, 3)
    y.square().sum().backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def _unnamed_graph() -> bytes:
    """A Relu, then an unnamed LSTM (graph position 1) and an unnamed Gemm (position 3)."""
    rng = np.random.default_rng(0)
    hidden, feat = 3, 2
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("LSTM", ["r", "W", "R"], ["hs"], hidden_size=hidden),
             helper.make_node("Reshape", ["hs", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "D"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, feat)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "R"),
             numpy_helper.from_array(np.array([-1, 5 * hidden], np.int64), "shape"),
             numpy_helper.from_array(rng.standard_normal((5 * hidden, 2)).astype(np.float32), "D")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 4, feat])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_unnamed_nodes_are_named_by_op_and_graph_position() -> None:
    first = [name for name, _ in import_onnx(_unnamed_graph()).module.unit_names]
    again = [name for name, _ in import_onnx(_unnamed_graph()).module.unit_names]
    assert "LSTM_1" in first and "Gemm_3" in first
    assert first == again
