"""onnxsweep28: a layer whose gradient is exactly 0 off the main path (attention pooling over one
time step) read healthy; key/query projections as the start of a vanishing chain; a dynamic-dims
example that does not add up; a non-standard op worded as a gap; node names."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module, check_onnx

from .onnx_models import export

# --- 1. an exactly zero gradient on a side branch (onnxsweep28 loto_gru) -------------------------


class _Pooled(nn.Module):
    """Attention pooling over the time axis: softmax(attn(h)) over the steps weighs h."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.attn, self.fc = nn.Linear(8, 32), nn.Linear(32, 1), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, 8]
        h = torch.tanh(self.enc(x))
        w = torch.softmax(self.attn(h).squeeze(-1), dim=1)
        return self.fc((h * w.unsqueeze(-1)).sum(1))


def _grads(model: nn.Module, steps: int) -> dict[str, float]:
    """The weight gradients' norms under an MSE loss, computed here by autograd (independent of the tool)."""
    model.zero_grad()
    out = model(torch.randn(16, steps, 8, dtype=torch.float64))
    ((out - torch.randn_like(out)) ** 2).mean().backward()
    return {n: float(m.weight.grad.norm()) for n, m in model.named_children()}


def _zero_findings(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code == "vanishing_gradient"
            and "attn" in (f.evidence.model_extra.get("no_gradient_layers") or [])]


def test_a_score_layer_under_a_softmax_over_one_step_is_reported_by_both_doors() -> None:
    torch.manual_seed(0)
    model = _Pooled()
    # the construction: a softmax over one element is 1, so attn gets exactly none and the rest some
    g = _grads(model.double(), 1)
    assert g["attn"] == 0.0 and g["enc"] > 0 and g["fc"] > 0
    model = model.float()
    onnx_doc = check_onnx(export(model, torch.randn(2, 1, 8)), loss="mse", verify=False)
    module_doc = check_module(model, torch.randn(4, 1, 8), loss="mse", verify=False)
    for doc in (onnx_doc, module_doc):
        [f] = _zero_findings(doc)
        assert f.severity == "warning" and doc.status != "healthy"
        assert f.evidence.model_extra["singleton_softmax"] == ["attn"]
        assert "softmax over an axis of one element" in f.explanation


def test_the_same_pooling_over_several_steps_gets_no_such_finding() -> None:
    torch.manual_seed(0)
    model = _Pooled()
    assert _grads(model.double(), 3)["attn"] > 0  # over 3 steps the scores matter
    model = model.float()
    doc = check_onnx(export(model, torch.randn(2, 3, 8)), loss="mse", verify=False)
    assert not _zero_findings(doc)


# --- 4. an op outside the ONNX standard (onnxsweep28 qs_deeptrans: tf2onnx's Erfc) ----------------


def _erfc_model() -> bytes:
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("Erfc", ["x"], ["y"], name="ffn/Gelu/Erfc")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_an_op_outside_the_onnx_standard_is_refused_as_an_invalid_file() -> None:
    import onnx
    import pytest

    from gradhealth.analysis.importers import ModelError
    data = _erfc_model()
    assert not onnx.defs.has("Erfc")  # the standard's own registry, independent of the tool
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(onnx.load_from_string(data))
    with pytest.raises(ModelError) as err:
        check_onnx(data, loss="mse", verify=False)
    said = str(err.value)
    assert "Erfc is no operator of the ONNX standard" in said and "not valid ONNX" in said
    assert "gelu(approximate=True)" in said


# --- 5. unnamed nodes pointed at by op and index (onnxsweep28 superres) ---------------------------


def test_an_unnamed_node_gets_a_pointer_of_its_op_and_index() -> None:
    import onnx
    torch.manual_seed(0)
    model = onnx.load_from_string(export(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)),
                                         torch.randn(2, 8)))
    for node in model.graph.node:
        node.name = ""  # as torch 1.1 left them
    for init in model.graph.initializer:  # no weight path to name the layer by either
        init.name = init.name.replace(".", "_")
    for node in model.graph.node:
        node.input[:] = [i.replace(".", "_") for i in node.input]
    doc = check_onnx(model.SerializeToString(), loss="mse", verify=False)
    pointers = [u.pointer for u in doc.layers]
    ops = [(i, n.op_type) for i, n in enumerate(model.graph.node)]
    assert pointers and all(p != "node:" for p in pointers)
    # each pointer names a node by its op and its index in the graph, as the file has them
    assert all(p.removeprefix("node:") in {f"{op}_{i}" for i, op in ops} for p in pointers), pointers


# --- 5b. the loss-at note of an integer output (onnxsweep28 mnist_op7_uint8) ----------------------


def test_the_note_of_an_argmax_output_names_the_float_tensor_it_is_made_of() -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32), "fc_w")
    nodes = [helper.make_node("Gemm", ["x", "fc_w"], ["logits"], transB=1, name="fc"),
             helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0, name="am"),
             helper.make_node("Cast", ["idx"], ["output"], to=TensorProto.UINT8, name="cast")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.UINT8, [4])], [w])
    data = onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    doc = check_onnx(data, loss="mse", verify=False)
    said = " ".join(n for n in doc.notes) if hasattr(doc, "notes") else doc.model_dump_json()
    # 'output' is the uint8 output: the floating-point tensor is the one it is made from
    assert "floating-point tensor that 'output' is computed from (through" in said, said
