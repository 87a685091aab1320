"""onnxsweep20 h08: torch.onnx.export writes torch.hstack as an If on a tensor's rank, which the
graph's shapes settle; it is folded to the branch it takes, and only an If chosen by tensor values
(or a Loop, a Scan) is refused, naming what the condition depends on."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import read_header
from gradhealth.analysis.module_check import check_onnx
from tests.analysis.onnx_models import export


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(value, name))


def _concat_if(name: str, seq: str, cond: str, out: str) -> onnx.NodeProto:
    """torch's hstack: ConcatFromSequence on axis 0 where the elements are 1-D, on axis 1 otherwise."""
    def branch(axis: int) -> onnx.GraphProto:
        made = f"{name}/cat{axis}"
        return helper.make_graph([helper.make_node("ConcatFromSequence", [seq], [made], axis=axis, new_axis=0)],
                                 f"{name}_{axis}", [], [helper.make_tensor_value_info(made, TensorProto.FLOAT, None)])
    return helper.make_node("If", [cond], [out], name=name, then_branch=branch(0), else_branch=branch(1))


def _rank_is_one(x: str, prefix: str) -> list[onnx.NodeProto]:
    return [helper.make_node("Shape", [x], [f"{prefix}/shape"], name=f"{prefix}/Shape"),
            helper.make_node("Size", [f"{prefix}/shape"], [f"{prefix}/rank"], name=f"{prefix}/Size"),
            _const(f"{prefix}/one", np.array(1, np.int64)),
            helper.make_node("Equal", [f"{prefix}/rank", f"{prefix}/one"], [f"{prefix}/cond"], name=f"{prefix}/Equal")]


def _hstack_model(dims: list, nodes_after: list | None = None, cond: str = "r/cond") -> bytes:
    w = numpy_helper.from_array(np.linspace(-1, 1, 16).reshape(4, 4).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul" if len(dims) > 1 else "Mul", ["x", "w" if len(dims) > 1 else "s"], ["a"],
                              name="mm"),
             helper.make_node("Neg", ["x"], ["b"], name="neg"),
             helper.make_node("SequenceConstruct", ["a", "b"], ["seq"], name="seq"),
             _const("k0", np.array(0, np.int64)),
             helper.make_node("SequenceAt", ["seq", "k0"], ["first"], name="at"),
             *_rank_is_one("first", "r"),
             _concat_if("hstack", "seq", cond, "y"), *(nodes_after or [])]
    inits = [w, numpy_helper.from_array(np.array(2.0, np.float32), "s")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    imported = import_onnx(data, input_shapes={"x": list(x.shape)})
    return imported.module.double()(torch.from_numpy(x).double()).detach().numpy()


@pytest.mark.parametrize("dims", [[3, 4], ["batch", 4]])
def test_an_if_on_a_tensors_rank_takes_its_branch_and_the_sequence_is_a_concat(dims: list) -> None:
    header = read_header(_hstack_model(dims))
    ops = [n.op_type for n in header.model.graph.node]
    assert "If" not in ops and not [o for o in ops if "Sequence" in o]
    (cat,) = [n for n in header.model.graph.node if n.op_type == "Concat"]
    assert helper.get_attribute_value(cat.attribute[0]) == 1 and list(cat.output) == ["y"]
    x = np.arange(12, dtype=np.float64).reshape(3, 4) / 7 - 0.5
    w = np.linspace(-1, 1, 16).reshape(4, 4)
    assert np.allclose(_run(_hstack_model(dims), x), np.concatenate([x @ w, -x], axis=1), atol=1e-6)


def test_a_rank_one_tensor_takes_the_then_branch() -> None:
    x = np.array([0.5, -1.0, 2.0, 3.0])
    assert np.allclose(_run(_hstack_model([4]), x), np.concatenate([2 * x, -x]))


def test_nested_ifs_fold_level_by_level() -> None:
    # an outer If on rank > 0 whose then branch holds the hstack If (reading the outer graph's sequence)
    inner = _concat_if("inner", "seq", "r/cond", "inner_y")
    then = helper.make_graph([inner], "then", [], [helper.make_tensor_value_info("inner_y", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["b"], ["other_y"], name="id")], "else", [],
                              [helper.make_tensor_value_info("other_y", TensorProto.FLOAT, None)])
    outer = helper.make_node("If", ["positive"], ["z"], name="outer", then_branch=then, else_branch=other)
    data = _hstack_model([3, 4], [_const("zero", np.array(0, np.int64)),
                                  helper.make_node("Greater", ["r/rank", "zero"], ["positive"], name="gt"), outer,
                                  helper.make_node("Add", ["z", "y"], ["y2"], name="add")])
    model = onnx.load_from_string(data)
    model.graph.output[0].name = "y2"
    data = model.SerializeToString()
    header = read_header(data)
    assert not [n for n in header.model.graph.node if n.op_type in ("If", "Identity") and n.name != "at"]
    x = np.arange(12, dtype=np.float64).reshape(3, 4) / 5 - 1
    want = np.concatenate([x @ np.linspace(-1, 1, 16).reshape(4, 4), -x], axis=1)
    assert np.allclose(_run(data, x), 2 * want, atol=1e-6)


def test_an_if_chosen_by_the_data_is_refused_naming_what_it_depends_on() -> None:
    data = _hstack_model([3, 4], [], cond="positive")
    model = onnx.load_from_string(data)
    model.graph.node.extend([helper.make_node("ReduceSum", ["x"], ["total"], name="sum", keepdims=0),
                             _const("zero", np.array(0.0, np.float32)),
                             helper.make_node("Greater", ["total", "zero"], ["positive"], name="gt")])
    with pytest.raises(ModelError) as err:
        read_header(model.SerializeToString())
    detail = err.value.detail
    assert detail.startswith("control flow is not simulated: the condition of hstack (If) depends on "
                             "the values of input 'x'")
    assert "torch.hstack" in detail  # the construct, recognised by its ConcatFromSequence branches
    assert "export the model without data-dependent branches" not in detail


def test_an_if_on_a_size_still_open_asks_for_it() -> None:
    # a condition on the batch, left dynamic (the check would choose it): its size is what the If needs
    data = _hstack_model(["batch", 4], [
        helper.make_node("Shape", ["x"], ["xs"], name="xs"),
        helper.make_node("Gather", ["xs", "k0"], ["n"], name="batch"),
        helper.make_node("Equal", ["n", "r/one"], ["batch_is_one"], name="is_one")], cond="batch_is_one")
    model = onnx.load_from_string(data)
    nodes = list(model.graph.node)
    nodes.insert(len(nodes) - 1, nodes.pop(nodes.index(next(n for n in nodes if n.op_type == "If"))))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    data = model.SerializeToString()
    with pytest.raises(ModelError, match="depends on the shape of 'x', which depends on the dynamic input "
                                         r"dimension\(s\) x\[0\]; give those sizes"):
        read_header(data)
    # given, it folds: a batch of 1 takes the then branch (axis 0), 3 the else branch (axis 1)
    for batch, axis in ((1, 0), (3, 1)):
        header = read_header(data, batch_size=batch)
        (cat,) = [n for n in header.model.graph.node if n.op_type == "Concat"]
        assert helper.get_attribute_value(cat.attribute[0]) == axis


class _Heads(nn.Module):
    """Two heads joined with torch.hstack, as YiHsiu7893/CPA-Project's ViT attention does."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out = nn.Linear(6, 4), nn.Linear(6, 4), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.hstack([torch.tanh(self.a(x)), torch.relu(self.b(x))]))


def test_a_traced_hstack_is_imported_and_computes_what_torch_computes() -> None:
    torch.manual_seed(0)
    model = _Heads()
    x = torch.randn(5, 6)
    data = export(model, x, opset=17)
    assert "If" in [n.op_type for n in onnx.load_from_string(data).graph.node]  # what the exporter writes
    imported = import_onnx(data)
    got = imported.module.double()(x.double())
    assert torch.allclose(got, model.double()(x.double()), atol=1e-12)
    doc = check_onnx(export(model.float(), x, opset=17), verify=False)
    assert doc.layers
