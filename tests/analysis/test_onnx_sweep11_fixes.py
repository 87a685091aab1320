"""onnxsweep11: the ONNX door on skl2onnx classifiers (int64 label first, a ZipMap/ArrayFeatureExtractor
label tail), tf2onnx's inference BatchNorm folded into ``x * scale + shift``, an RNN whose ``Y_h`` alone
is read, a long sequence at batch 1 over the activation memory limit, and negative or float-cast ids
into an embedding. Every graph is built here with ``onnx.helper``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.graph import branch_sums, consumers
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import read_header
from gradhealth.analysis.plan import Limits
from gradhealth.errors import LimitExceeded

_RNG = np.random.default_rng(0)


def _w(name: str, *shape: int, scale: float | None = None) -> Any:
    s = scale if scale is not None else (2.0 / shape[0]) ** 0.5
    return numpy_helper.from_array((_RNG.standard_normal(shape) * s).astype(np.float32), name)


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any], ml: bool = False) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 1)] if ml else [])
    m = helper.make_model(graph, opset_imports=opsets, producer_name="skl2onnx" if ml else "test")
    return bytes(m.SerializeToString())


def _skl2onnx(binary: bool = False, quantised: bool = False) -> bytes:
    """An MLPClassifier as skl2onnx writes it: x [N, 8] -> 16 relu -> k classes (softmax, or one sigmoid
    column made [1 - p, p]); outputs the int64 label first (ArgMax -> ArrayFeatureExtractor -> Reshape
    -> Cast) and the probabilities as a ZipMap's sequence of maps second."""
    k = 1 if binary else 3
    inits = [_w("W1", 8, 16), numpy_helper.from_array(np.zeros(16, np.float32), "b1"), _w("W2", 16, k),
             numpy_helper.from_array(np.zeros(k, np.float32), "b2"),
             numpy_helper.from_array(np.arange(max(k, 2), dtype=np.int64), "classes"),
             numpy_helper.from_array(np.array([-1], np.int64), "shape"),
             numpy_helper.from_array(np.array([1.0], np.float32), "unity")]
    first = [helper.make_node("MatMul", ["x", "W1"], ["m1"], name="MatMul")]
    if quantised:  # onnxruntime's quantize_dynamic on the first layer
        inits += [numpy_helper.from_array(np.ones((8, 16), np.int8), "W1q"),
                  numpy_helper.from_array(np.array(0, np.int8), "W1zp")]
        first = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xzp"], name="x_QuantizeLinear"),
                 helper.make_node("MatMulInteger", ["xq", "W1q", "xzp", "W1zp"], ["mi"], name="MatMul_quant"),
                 helper.make_node("Cast", ["mi"], ["m1"], name="cast_q", to=TensorProto.FLOAT)]
    nodes = [*first, helper.make_node("Add", ["m1", "b1"], ["a1"], name="Add"),
             helper.make_node("Relu", ["a1"], ["h1"], name="Relu"),
             helper.make_node("MatMul", ["h1", "W2"], ["m2"], name="MatMul1"),
             helper.make_node("Add", ["m2", "b2"], ["a2"], name="Add1")]
    if binary:
        nodes += [helper.make_node("Sigmoid", ["a2"], ["p"], name="Relu1"),
                  helper.make_node("Sub", ["unity", "p"], ["neg"], name="Sub"),
                  helper.make_node("Concat", ["neg", "p"], ["probabilities"], name="Concat", axis=1)]
    else:
        nodes += [helper.make_node("Softmax", ["a2"], ["probabilities"], name="Relu1")]
    nodes += [helper.make_node("ArgMax", ["probabilities"], ["am"], name="ArgMax", axis=1),
              helper.make_node("ZipMap", ["probabilities"], ["output_probability"], name="ZipMap",
                               domain="ai.onnx.ml", classlabels_int64s=list(range(max(k, 2)))),
              helper.make_node("ArrayFeatureExtractor", ["classes", "am"], ["afe"], name="ArrayFeatureExtractor",
                               domain="ai.onnx.ml"),
              helper.make_node("Reshape", ["afe", "shape"], ["rs"], name="Reshape"),
              helper.make_node("Cast", ["rs"], ["output_label"], name="Cast1", to=TensorProto.INT64)]
    seq_map = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    outputs = [helper.make_tensor_value_info("output_label", TensorProto.INT64, ["N"]),
               helper.make_value_info("output_probability", seq_map)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])], outputs, inits, ml=True)


# --- 1. skl2onnx: the loss output and the label tail --------------------------------------------

def test_a_skl2onnx_classifier_takes_its_loss_of_the_probabilities_and_drops_the_label_tail() -> None:
    header = read_header(_skl2onnx())
    assert [o.name for o in header.model.graph.output] == ["probabilities"]
    ops = {n.op_type for n in header.model.graph.node}
    assert not ops & {"ZipMap", "ArrayFeatureExtractor", "ArgMax", "Cast"}
    assert any("ZipMap" in p for p in header.pruned) and any("ArrayFeatureExtractor" in p for p in header.pruned)
    doc = check_onnx(_skl2onnx(), seeds=1, verify=False)
    # the softmax is taken as the inference head: the cross-entropy of its logits
    assert any(f.code == "output_loss_mismatch" and "inference head" in f.summary for f in doc.findings)
    assert [u.name for u in doc.layers][:1] == ["MatMul"]


def test_a_binary_skl2onnx_classifier_is_judged_on_its_sigmoid_column() -> None:
    header = read_header(_skl2onnx(binary=True))
    # [1 - p, p] carries p alone: the loss is the binary cross-entropy of p's logits
    assert [o.name for o in header.model.graph.output] == ["p"]
    assert not {n.op_type for n in header.model.graph.node} & {"Sub", "Concat", "ZipMap"}
    doc = check_onnx(_skl2onnx(binary=True), seeds=1, verify=False)
    assert doc.layers and doc.layers[-1].output_grad_norm > 0


def test_a_dynamically_quantised_classifier_is_refused_naming_the_quantised_op_and_node() -> None:
    with pytest.raises(ModelError) as caught:
        read_header(_skl2onnx(quantised=True))
    message = str(caught.value)
    assert "MatMulInteger (node MatMul_quant)" in message and "DynamicQuantizeLinear (node x_QuantizeLinear)" in message
    assert "ZipMap" not in message and "INT64" not in message


def test_a_graph_with_no_floating_point_output_is_still_refused_naming_the_first() -> None:
    nodes = [helper.make_node("ArgMax", ["x"], ["am"], name="am", axis=1)]
    data = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                  [helper.make_tensor_value_info("am", TensorProto.INT64, None)], [])
    with pytest.raises(ModelError, match="graph output 'am' is declared INT64"):
        read_header(data)


# --- 2. a folded inference BatchNorm --------------------------------------------------------------

def _folded_bn_mlp(scale: float = 5.8) -> bytes:
    """x [N, 32] -> 3 x (MatMul + Add -> Relu -> Mul(scale) -> Add(shift)) -> MatMul 4: tf2onnx's Keras
    Dense + BatchNormalization at inference, its moving-variance scale ``scale`` per feature."""
    nodes, inits, x = [], [], "x"
    for k in range(3):
        inits += [_w(f"W{k}", 32, 32), numpy_helper.from_array(np.zeros(32, np.float32), f"b{k}"),
                  numpy_helper.from_array(np.full(32, scale, np.float32), f"bn{k}/mul"),
                  numpy_helper.from_array(_RNG.standard_normal(32).astype(np.float32), f"bn{k}/sub")]
        nodes += [helper.make_node("MatMul", [x, f"W{k}"], [f"m{k}"], name=f"dense_{k}/MatMul"),
                  helper.make_node("Add", [f"m{k}", f"b{k}"], [f"a{k}"], name=f"dense_{k}/BiasAdd"),
                  helper.make_node("Relu", [f"a{k}"], [f"r{k}"], name=f"dense_{k}/Relu"),
                  helper.make_node("Mul", [f"r{k}", f"bn{k}/mul"], [f"s{k}"], name=f"bn_{k}/batchnorm/mul_1"),
                  helper.make_node("Add", [f"s{k}", f"bn{k}/sub"], [f"t{k}"], name=f"bn_{k}/batchnorm/add_1")]
        x = f"t{k}"
    inits.append(_w("Wout", 32, 4))
    nodes.append(helper.make_node("MatMul", [x, "Wout"], ["y"], name="out/MatMul"))
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)


def test_a_folded_inference_batchnorm_is_simulated_with_batch_statistics() -> None:
    imported = import_onnx(_folded_bn_mlp())
    assert imported.module.op_types.count("_FoldedBatchNorm") == 3
    # against an independent computation: each block's output is (r - mean) / sqrt(var + eps) over the
    # batch, whatever the file's scale of 5.8 (which multiplied N(0, 1) activations ~5x per layer)
    x = torch.randn(64, 32, dtype=torch.float64)
    module = imported.module.double()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [op.register_forward_hook(lambda m, a, out: seen.append((a[0], out)))
             for op, t in zip(module.ops, module.op_types, strict=True) if t == "_FoldedBatchNorm"]
    module(x)
    for h in hooks:
        h.remove()
    for r, out in seen:
        expected = (r - r.mean(0)) / torch.sqrt(r.var(0, unbiased=False) + 1e-5)
        torch.testing.assert_close(out, expected)
    doc = check_onnx(_folded_bn_mlp(), seeds=1, verify=False)
    assert not [f for f in doc.findings if f.severity in ("warning", "error")], doc.summary
    assert [u.normalised for u in doc.layers[:3]] == [True, True, True]


class _Rec:
    """What :func:`branch_sums` reads of a unit: its name and output."""

    def __init__(self, name: str, out: torch.Tensor) -> None:
        self.name, self.out = name, out


def test_an_add_of_a_learned_shift_is_no_branch_sum_and_a_skip_is() -> None:
    lin1, lin2 = torch.nn.Linear(8, 8).double(), torch.nn.Linear(8, 8).double()
    x = torch.randn(4, 8, dtype=torch.float64)
    shift = torch.nn.Parameter(torch.randn(8, dtype=torch.float64))  # a learned shift: a leaf parameter
    h = lin1(x)
    affine = h * 3.0 + shift  # a folded norm's x * scale + shift after the layer
    assert branch_sums([_Rec("lin1", h)], consumers(lin2(affine).sum().grad_fn)) == {}  # type: ignore[list-item]
    h = lin1(x)
    branch = lin2(torch.relu(h))
    total = h + branch  # a real skip: both operands carry a gradient
    assert list(branch_sums([_Rec("lin2", branch)], consumers(total.sum().grad_fn))) == ["lin2"]  # type: ignore[list-item]


# --- 3. an RNN whose Y_h alone is read -----------------------------------------------------------

def _rnn_last_state(direction: str = "forward") -> bytes:
    """x [T=6, N, 4] -> RNN (tanh, hidden 8) -> Y_h [D, N, 8] (Y unread) -> Reshape [N, D*8]... -> Gemm 3,
    as torch 1.3 exported ``nn.RNN`` read at its last state."""
    d = 2 if direction == "bidirectional" else 1
    inits = [_w("W", d, 8, 4, scale=0.4), _w("R", d, 8, 8, scale=0.3), _w("B", d, 16, scale=0.1),
             _w("fc", 3, 8 * d, scale=0.3), numpy_helper.from_array(np.array([0, -1], np.int64), "flat")]
    nodes = [helper.make_node("RNN", ["x", "W", "R", "B"], ["", "Y_h"], name="RNN_14", hidden_size=8,
                              direction=direction),
             helper.make_node("Transpose", ["Y_h"], ["Y_hT"], name="tr", perm=[1, 0, 2]),
             helper.make_node("Reshape", ["Y_hT", "flat"], ["h"], name="flatten"),
             helper.make_node("Gemm", ["h", "fc"], ["y"], name="linear", transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 5, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 3])], inits)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_an_rnn_read_at_its_last_state_gets_its_output_gradient(direction: str) -> None:
    imported = import_onnx(_rnn_last_state(direction))
    op = imported.module.ops[0]
    x = torch.randn(6, 5, 4)
    _, y_h, _ = op(x)
    _, h_n = op.rnn(x)  # torch's own final state: Y_h must equal it
    torch.testing.assert_close(y_h, h_n)
    doc = check_onnx(_rnn_last_state(direction), seeds=1, verify=False)
    assert not any("no gradient reaches" in f.summary for f in doc.findings), doc.summary
    rnn = next(u for u in doc.layers if u.name == "RNN_14")
    assert rnn.output_grad_norm is not None and rnn.output_grad_norm > 0


# --- 4. memory at batch 1, and ids ---------------------------------------------------------------

def _attention(length: int, vocab: int = 50, float_ids: bool = False) -> bytes:
    """ids [1, L] -> Gather (table [vocab, 16]) -> self-attention scores [1, L, L] -> Softmax -> mix ->
    mean -> Gemm 3. ``float_ids``: the ids are a float input cast to int64 (torch.onnx of a float arg)."""
    inits = [_w("table", vocab, 16, scale=1.0), _w("fc", 3, 16, scale=0.3),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    pre = [helper.make_node("Cast", ["ids"], ["ids64"], name="/Cast", to=TensorProto.INT64)] if float_ids else []
    nodes = [*pre, helper.make_node("Gather", ["table", "ids64" if float_ids else "ids"], ["e"], name="/embedding/Gather"),
             helper.make_node("Transpose", ["e"], ["eT"], name="tr", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["e", "eT"], ["s"], name="scores"),
             helper.make_node("Softmax", ["s"], ["p"], name="/attention/Softmax", axis=-1),
             helper.make_node("MatMul", ["p", "e"], ["m"], name="mix"),
             helper.make_node("ReduceMean", ["m", "axes"], ["pooled"], name="pool", keepdims=0),
             helper.make_node("Gemm", ["pooled", "fc"], ["y"], name="head", transB=1)]
    elem = TensorProto.FLOAT if float_ids else TensorProto.INT64
    return _model(nodes, [helper.make_tensor_value_info("ids", elem, [1, length])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)


def test_a_long_sequence_at_batch_1_names_what_takes_the_memory_and_the_length_that_fits() -> None:
    limits = Limits(max_activation_bytes=64 * 2**20)
    with pytest.raises(LimitExceeded) as caught:
        read_header(_attention(2000), limits=limits)
    message = str(caught.value)
    assert "Softmax output of [1, 2000, 2000]" in message and "node /attention/Softmax" in message
    fits = int(message.split("a length of about ")[1].split()[0])
    # the length offered fits, and a tenth more does not. Theory: the scores and the softmax are two
    # [L, L] maps of float64 with their gradients, 2 * 16 * L^2 bytes: L = sqrt(2^26 / 32) = 1448 for
    # 64 MiB, a little less for the [L, 16] tensors that grow with L alone
    assert 1400 < fits <= 1448
    read_header(_attention(fits), limits=limits)
    with pytest.raises(LimitExceeded):
        read_header(_attention(int(fits * 1.1)), limits=limits)


def test_negative_ids_wrap_as_onnx_defines() -> None:
    imported = import_onnx(_attention(4))
    emb = imported.module.ops[0]
    table = emb.weight.detach()
    out = emb(None, torch.tensor([[-1, 0, -50, 49]]))
    torch.testing.assert_close(out[0], table[[49, 0, 0, 49]])


def test_a_float_input_cast_to_ids_draws_ids_within_the_table() -> None:
    imported = import_onnx(_attention(12, vocab=30, float_ids=True))
    [spec] = imported.inputs
    assert spec.dtype == torch.int64 and spec.high == 30
    doc = check_onnx(_attention(12, vocab=30, float_ids=True), seeds=1, verify=False)
    assert doc.layers
