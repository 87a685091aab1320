"""What the sixth ONNX sweep found: valid exports refused for ops missing from the table (IsNaN in
torch's masked attention), invalid graphs (a cycle, an undefined input, a name written twice, an
output nothing makes) crashing as internal errors instead of being refused, and a ConstantOfShape
of a stored [1e5, 1e5] allocated in full."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth.analysis.importers import ModelError, onnx_static
from gradhealth.analysis.importers.onnx import OPS, Ctx, Fn, Node, OnnxModule, import_onnx
from gradhealth.analysis.importers.onnx_static import (
    SUPPORTED_OPS,
    activation_bytes,
    parse,
    read_header,
)
from gradhealth.analysis.module_check import check_onnx
from gradhealth.errors import LimitExceeded

_W = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32) * 0.3, "W")


def _model(nodes: list[Any], inits: list[Any] | None = None, inputs: list[Any] | None = None,
           outputs: tuple[str, ...] = ("y",), opset: int = 17) -> bytes:
    """A one-graph model over x [2, 8] (unless ``inputs`` says otherwise), outputs of any shape."""
    graph = helper.make_graph(
        nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [_W] if inits is None else inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _ints(name: str, values: Any) -> Any:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


# --- 1. ops torch's exporters write ----------------------------------------------------------------

class _MaskedAttention(nn.Module):
    """scaled_dot_product_attention with a boolean mask: the legacy exporter writes
    Where(IsNaN(Softmax(..)), 0, Softmax(..)), so a fully masked row is 0, not NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(16, 48), nn.Linear(16, 16)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 4, 4).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(x.shape))


class _PaddedMHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, key_padding_mask=mask)[0]


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.layer(x, src_key_padding_mask=mask)


class _Recurrent(nn.Module):
    def __init__(self, cls: type[nn.Module]) -> None:
        super().__init__()
        self.rnn = cls(16, 8, num_layers=2, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class _Functions(nn.Module):
    """Functions whose exports use the other ops added: isfinite/nan_to_num (IsInf, IsNaN),
    round, celu, atan, tan, var (ReduceProd of a shape), one_hot (OneHot)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(torch.isfinite(x), x, 0.0) + torch.nan_to_num(x) + torch.round(x) + F.celu(x)
        y = y + torch.atan(x) + torch.tan(x.clamp(-1, 1)) + x.var(-1, keepdim=True)
        hot = F.one_hot((x[..., 5].abs() * 3).long().clamp(max=9), 10).float()
        return y + hot.sum(-1, keepdim=True)


def _x() -> torch.Tensor:
    return torch.randn(2, 5, 16)


def _pad() -> torch.Tensor:
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[:, -1] = True  # True = padding, as torch's key_padding_mask
    return mask


_MODULES: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "sdpa_bool_mask": (_MaskedAttention, lambda: (_x(), torch.ones(5, 5, dtype=torch.bool).tril())),
    "mha_key_padding": (_PaddedMHA, lambda: (_x(), _pad())),
    "encoder_layer": (_Encoder, lambda: (_x(), _pad())),
    "gru": (lambda: _Recurrent(nn.GRU), lambda: (_x(),)),
    "lstm": (lambda: _Recurrent(nn.LSTM), lambda: (_x(),)),
    "upsample": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Upsample(scale_factor=2, mode="bilinear")),
                 lambda: (torch.randn(2, 3, 8, 8),)),
    "functions": (_Functions, lambda: (_x(),)),
}


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], dynamo: bool) -> bytes:
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, args, dynamo=True, verbose=False)
            assert program is not None
            return bytes(program.model_proto.SerializeToString())
        f = io.BytesIO()
        torch.onnx.export(model, args, f, dynamo=False)
        return f.getvalue()


#: Every module through the legacy exporter; through dynamo (slower) those whose ops differ.
_EXPORTS = [(case, False) for case in sorted(_MODULES)] + [
    (case, True) for case in ("functions", "mha_key_padding", "sdpa_bool_mask")]


@pytest.mark.parametrize("case,dynamo", _EXPORTS, ids=[f"{c}-{'dynamo' if d else 'legacy'}" for c, d in _EXPORTS])
def test_every_op_the_exporters_write_for_common_modules_is_in_the_table(case: str, dynamo: bool) -> None:
    build, make_args = _MODULES[case]
    torch.manual_seed(0)
    model = parse(_export(build(), make_args(), dynamo))
    ops = {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}
    assert ops <= SUPPORTED_OPS, sorted(ops - SUPPORTED_OPS)


def test_attention_with_a_boolean_mask_exported_by_the_legacy_exporter_computes_what_the_model_does() -> None:
    torch.manual_seed(0)
    model, (x, mask) = _MaskedAttention(), _MODULES["sdpa_bool_mask"][1]()
    data = _export(model, (x, mask), dynamo=False)
    assert "IsNaN" in {n.op_type for n in parse(data).graph.node}
    net = import_onnx(data).module.double()
    with torch.no_grad():
        np.testing.assert_allclose(net(x.double(), mask).numpy(), model.double()(x.double(), mask).numpy(),
                                   rtol=1e-9, atol=1e-12)
    doc = check_onnx(data, seeds=1, verify=False, loss="mse")
    assert {layer.name for layer in doc.layers} >= {"qkv", "out"}


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_functions_exported_with_the_ops_added_compute_what_the_model_does(dynamo: bool) -> None:
    torch.manual_seed(0)
    x = _x()
    x[0, 0, :3] = torch.tensor([float("inf"), float("-inf"), float("nan")])  # what isfinite and nan_to_num are for
    data = _export(_Functions(), (x,), dynamo)
    with torch.no_grad():
        got, expected = import_onnx(data).module.double()(x.double()), _Functions()(x.double())
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


_NEW_OPS: list[tuple[str, dict[str, Any], Callable[[np.random.Generator], np.ndarray]]] = [
    ("IsNaN", {}, lambda r: np.where(r.random((2, 8)) < 0.3, np.nan, r.standard_normal((2, 8)))),
    ("IsInf", {}, lambda r: np.where(r.random((2, 8)) < 0.5, np.where(r.random((2, 8)) < 0.5, np.inf, -np.inf),
                                     r.standard_normal((2, 8)))),
    ("IsInf", {"detect_positive": 0}, lambda r: np.array([[np.inf, -np.inf, 1.0, np.nan]] * 2)),
    ("IsInf", {"detect_negative": 0}, lambda r: np.array([[np.inf, -np.inf, 1.0, np.nan]] * 2)),
    ("Round", {}, lambda r: np.array([[0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 2.51, -2.7]])),
    ("Celu", {"alpha": 0.7}, lambda r: r.standard_normal((2, 8))),
    ("ThresholdedRelu", {"alpha": 0.3}, lambda r: r.standard_normal((2, 8))),
    ("Tan", {}, lambda r: r.uniform(-1, 1, (2, 8))),
    ("Atan", {}, lambda r: r.standard_normal((2, 8))),
    ("Asin", {}, lambda r: r.uniform(-1, 1, (2, 8))),
    ("Acos", {}, lambda r: r.uniform(-1, 1, (2, 8))),
    ("Sinh", {}, lambda r: r.standard_normal((2, 8))),
    ("Cosh", {}, lambda r: r.standard_normal((2, 8))),
    ("Asinh", {}, lambda r: r.standard_normal((2, 8))),
    ("Acosh", {}, lambda r: r.uniform(1, 3, (2, 8))),
    ("Atanh", {}, lambda r: r.uniform(-0.9, 0.9, (2, 8))),
    ("ReduceProd", {"keepdims": 0}, lambda r: r.uniform(0.5, 1.5, (2, 3, 4))),
]


@pytest.mark.parametrize("op,attrs,make", _NEW_OPS, ids=[f"{o}{'-' + '-'.join(a) if a else ''}"
                                                          for o, a, _ in _NEW_OPS])
def test_each_op_added_computes_what_the_onnx_reference_does(op: str, attrs: dict[str, Any],
                                                             make: Callable[[np.random.Generator], np.ndarray]) -> None:
    from onnx.reference import ReferenceEvaluator

    x = make(np.random.default_rng(0)).astype(np.float32)
    data = _model([helper.make_node(op, ["x"], ["y"], name="n", **attrs)], [],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))])
    expected = ReferenceEvaluator(parse(data)).run(None, {"x": x})[0]
    with torch.no_grad():
        got = import_onnx(data).module.double()(torch.from_numpy(x).double()).numpy()
    assert got.dtype == np.bool_ if expected.dtype == np.bool_ else got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_one_hot_wraps_negative_indices_moves_its_axis_and_leaves_out_of_range_rows_off() -> None:
    from onnx.reference import ReferenceEvaluator

    idx = np.array([[0, 3, -1], [2, 7, -5]], np.int64)  # 7 and -5 are out of a depth of 4
    data = _model([helper.make_node("OneHot", ["i", "depth", "values"], ["y"], name="hot", axis=1)],
                  [_ints("depth", 4), numpy_helper.from_array(np.array([-1.0, 2.0], np.float32), "values")],
                  [helper.make_tensor_value_info("i", TensorProto.INT64, [2, 3])])
    expected = ReferenceEvaluator(parse(data)).run(None, {"i": idx})[0]
    got = import_onnx(data).module(torch.from_numpy(idx)).numpy()
    assert got.shape == expected.shape == (2, 4, 3)
    np.testing.assert_allclose(got, expected)


# --- 2. graphs that are no dataflow graph ------------------------------------------------------

def _mm(out: str = "a") -> Any:
    return helper.make_node("MatMul", ["x", "W"], [out], name="mm")


_BROKEN: dict[str, tuple[list[Any], list[Any] | None, list[str]]] = {
    # h = MatMul(x, W) + k, k = Tanh(h)
    "cycle": ([_mm(), helper.make_node("Add", ["a", "k"], ["h"], name="add"),
               helper.make_node("Tanh", ["h"], ["k"], name="tanh"), helper.make_node("Relu", ["h"], ["y"], name="relu")],
              None, ["cycle", "node tanh (Tanh)", "node add (Add)", "'h'", "'k'"]),
    "self_loop": ([_mm(), helper.make_node("Max", ["a", "y"], ["y"], name="mx")], None,
                  ["node mx (Max) reads its own output 'y'"]),
    "dangling": ([_mm(), helper.make_node("Add", ["a", "ghost"], ["y"], name="add")], None,
                 ["node add (Add) reads 'ghost'", "not defined"]),
    "written_twice": ([_mm("h"), helper.make_node("Relu", ["h"], ["h"], name="relu"),
                       helper.make_node("Tanh", ["h"], ["y"], name="tanh")], None,
                      ["'h' is assigned more than once", "node mm (MatMul)", "node relu (Relu)"]),
    "overwrites_an_initializer": ([_mm(), helper.make_node("Relu", ["a"], ["W"], name="relu"),
                                   helper.make_node("Tanh", ["a"], ["y"], name="tanh")], None,
                                  ["'W' is assigned more than once", "an initializer", "node relu (Relu)"]),
    "two_initializers": ([_mm("y")], [_W, _W], ["'W' is assigned more than once", "two initializers"]),
    "output_never_produced": ([_mm("h")], None, ["graph output 'y' is produced by no node"]),
}


@pytest.mark.parametrize("case", sorted(_BROKEN))
def test_a_graph_that_is_no_dataflow_graph_is_refused_by_the_torch_free_header(case: str) -> None:
    nodes, inits, words = _BROKEN[case]
    with pytest.raises(ModelError) as caught:
        read_header(_model(nodes, inits))
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("case", ["cycle", "written_twice", "output_never_produced", "self_loop"])
def test_a_broken_graph_is_a_model_error_of_the_check_not_an_internal_error(case: str) -> None:
    nodes, inits, _ = _BROKEN[case]
    with pytest.raises(ModelError):
        check_onnx(_model(nodes, inits), seeds=1, verify=False)


def test_the_cli_exits_2_with_the_reason_for_a_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth.cli import main

    path = tmp_path / "cycle.onnx"
    path.write_bytes(_model(*_BROKEN["cycle"][:2]))
    assert main(["check", str(path), "--no-progress", "--no-verify", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "cycle" in err and "internal error" not in err


def test_nodes_listed_out_of_order_are_sorted_and_simulated_as_the_sorted_graph() -> None:
    nodes = [_mm(), helper.make_node("Tanh", ["a"], ["t"], name="tanh"),
             helper.make_node("Add", ["t", "a"], ["y"], name="add")]
    ordered, shuffled = _model(nodes), _model([nodes[2], nodes[0], nodes[1]])
    header = read_header(shuffled)
    assert header.reordered and [n.name for n in header.model.graph.node] == ["mm", "tanh", "add"]
    assert not read_header(ordered).reordered
    x = torch.randn(2, 8)
    torch.testing.assert_close(import_onnx(shuffled).module(x), import_onnx(ordered).module(x))
    a, b = (check_onnx(d, seeds=1, verify=False, loss="mse") for d in (shuffled, ordered))
    assert [(la.name, la.grad_norm) for la in a.layers] == [(lb.name, lb.grad_norm) for lb in b.layers]


def _if_node(reads: str) -> Any:
    """An If whose branches read ``reads`` from the graph around them (ONNX allows it)."""
    branch = [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)]
    then = helper.make_graph([helper.make_node("Relu", [reads], ["out"])], "then", [], branch)
    other = helper.make_graph([helper.make_node("Neg", [reads], ["out"])], "else", [], branch)
    return helper.make_node("If", ["c"], ["y"], name="iff", then_branch=then, else_branch=other)


def test_subgraphs_may_read_outer_names_and_control_flow_is_still_refused_as_such() -> None:
    c = numpy_helper.from_array(np.array(True), "c")
    # the If reads the MatMul's output from inside its branches, listed before the MatMul
    good = parse(_model([_if_node("a"), _mm()], [_W, c]))
    assert onnx_static.check_structure(good.graph) and [n.name for n in good.graph.node] == ["mm", "iff"]
    with pytest.raises(ModelError, match="node iff \\(If\\) reads 'ghost'"):
        onnx_static.check_structure(parse(_model([_mm(), _if_node("ghost")], [_W, c])).graph)
    # a stored condition settles the branch: the If is folded to it (onnxsweep20)
    folded = read_header(_model([_mm(), _if_node("a")], [_W, c])).model.graph.node
    assert [(n.op_type, list(n.output)) for n in folded] == [("MatMul", ["a"]), ("Relu", ["y"])]
    # one chosen by the data is refused as control flow, naming what it depends on
    top = helper.make_node("ReduceMax", ["a"], ["top"], name="top", keepdims=0)
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    chosen = helper.make_node("Greater", ["top", "zero"], ["c"], name="gt")
    with pytest.raises(ModelError, match="control flow is not simulated: the condition of iff \\(If\\) depends "
                                         "on the values of input 'x'"):
        read_header(_model([_mm(), top, chosen, _if_node("a")], [_W, zero]))


def test_the_module_never_hands_an_op_none_for_a_name_nothing_defined() -> None:
    add = OnnxModule(["x"], ["y"], [Fn(torch.add)], [(["x", "ghost"], ["y"])], {}, [("add", "node:add1")])
    with pytest.raises(ModelError, match="node add1 reads 'ghost'"):
        add(torch.ones(2))
    neg = OnnxModule(["x"], ["z"], [Fn(torch.neg)], [(["x"], ["y"])], {}, [("neg", "node:neg")])
    with pytest.raises(ModelError, match="graph output 'z'"):
        neg(torch.ones(2))
    # a value the op holds itself (a weight made a parameter) is read as None, as before
    held = OnnxModule(["x"], ["y"], [Fn(lambda x, w: -x if w is None else w)], [(["x", "W"], ["y"])], {},
                      [("lin", "node:lin")], held=frozenset({"W"}))
    torch.testing.assert_close(held(torch.ones(2)), -torch.ones(2))


# --- 3. tensors sized by constant values ---------------------------------------------------------

_HUGE: dict[str, tuple[list[Any], list[Any]]] = {
    "constant_of_shape": ([helper.make_node("ConstantOfShape", ["shp"], ["y"], name="big",
                                            value=numpy_helper.from_array(np.array([1.0], np.float32)))],
                          [_ints("shp", [100_000, 100_000])]),
    "constant_of_shape_from_constants": (
        [helper.make_node("Constant", [], ["d0"], value_ints=[100_000]),
         helper.make_node("Constant", [], ["d1"], value=_ints("v", [100_000])),
         helper.make_node("Concat", ["d0", "d1"], ["shp"], axis=0),
         helper.make_node("ConstantOfShape", ["shp"], ["y"], name="big")], []),
    "expand": ([helper.make_node("Expand", ["x", "shp"], ["y"], name="big")], [_ints("shp", [100_000, 100_000, 2, 8])]),
    "tile": ([helper.make_node("Tile", ["x", "reps"], ["y"], name="big")], [_ints("reps", [100_000, 100_000])]),
    "range": ([helper.make_node("Range", ["start", "limit", "delta"], ["y"], name="big")],
              [_ints("start", 0), _ints("limit", 10**11), _ints("delta", 1)]),
}


@pytest.mark.parametrize("case", sorted(_HUGE))
def test_a_tensor_sized_by_constant_arguments_is_bounded_by_the_memory_limit_naming_its_node(case: str) -> None:
    nodes, inits = _HUGE[case]
    with pytest.raises(LimitExceeded, match=r"node big \((ConstantOfShape|Expand|Tile|Range)\) would make 'y'"):
        read_header(_model(nodes, inits))


def test_the_memory_estimate_reads_stored_shapes_and_names_the_node_of_a_computed_one() -> None:
    data = _model(*_HUGE["constant_of_shape"])
    assert activation_bytes(parse(data), {"x": [2, 8]}) > 10**11  # the stored [1e5, 1e5]: 1.6e11 bytes
    # a shape computed from stored ones (Mul) is sized by ONNX's data propagation: named too
    computed = _model([helper.make_node("Mul", ["s0", "k"], ["shp"], name="mul"),
                       helper.make_node("ConstantOfShape", ["shp"], ["big"], name="fill"),
                       helper.make_node("Add", ["x", "big"], ["y"], name="add")],
                      [_ints("s0", [1000, 1000]), _ints("k", [100])],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])])
    with pytest.raises(LimitExceeded, match=r"'big', made by node fill \(ConstantOfShape\), alone"):
        read_header(computed)


def test_the_sweeps_constant_of_shape_is_refused_before_anything_is_allocated() -> None:
    nodes = [helper.make_node("ConstantOfShape", ["shp"], ["big"], name="big",
                              value=numpy_helper.from_array(np.array([1.0], np.float32))),
             helper.make_node("ReduceMean", ["big"], ["m"], axes=[0], keepdims=1),
             helper.make_node("Slice", ["m", "s0", "s1", "s2"], ["m8"]),
             helper.make_node("Add", ["x", "m8"], ["y"])]
    inits = [_ints("shp", [100_000, 100_000]), _ints("s0", [0]), _ints("s1", [8]), _ints("s2", [1])]
    with pytest.raises(LimitExceeded, match=r"node big \(ConstantOfShape\)"):
        check_onnx(_model(nodes, inits, opset=13), seeds=1, verify=False)


def test_small_value_sized_tensors_still_run() -> None:
    nodes = [helper.make_node("ConstantOfShape", ["shp"], ["c"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Tile", ["x", "reps"], ["t"]),
             helper.make_node("Range", ["r0", "r1", "r2"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
             helper.make_node("Expand", ["rf", "shp"], ["e"]),
             helper.make_node("MatMul", ["t", "W"], ["h"]),
             helper.make_node("Add", ["h", "c"], ["h2"]), helper.make_node("Add", ["h2", "e"], ["y"])]
    data = _model(nodes, [_W, _ints("shp", [4, 8]), _ints("reps", [2, 1]), _ints("r0", 0), _ints("r1", 8), _ints("r2", 1)])
    x = torch.randn(2, 8)
    expected = x.repeat(2, 1) @ torch.from_numpy(np.array(numpy_helper.to_array(_W))) + 0.5 + torch.arange(8.0)
    torch.testing.assert_close(import_onnx(data).module(x), expected)


@pytest.mark.parametrize("op,args", [
    ("ConstantOfShape", [torch.tensor([1000, 1000])]),
    ("Expand", [torch.ones(1, 1), torch.tensor([1000, 1000])]),
    ("Tile", [torch.ones(2, 2), torch.tensor([500, 500])]),
    ("Range", [torch.tensor(0), torch.tensor(10**6), torch.tensor(1)]),
])
def test_a_value_sized_op_bounds_what_it_makes_at_run_time_before_allocating(op: str, args: list[torch.Tensor]) -> None:
    # the backstop for arguments only known at run time: the header sizes the constant ones
    node = Node(op, "late", [f"i{k}" for k in range(len(args))], ["y"], {})
    built = OPS[op](node, Ctx({}, max_values=10_000))
    with pytest.raises(ValueError, match=r"node late \(" + op + r"\) would make a tensor of \d+ values"):
        built(*args)
    assert OPS[op](node, Ctx({}))(*args).numel() > 10_000  # unbounded where no limit is set (folding)


def test_a_graph_of_more_nodes_than_the_limits_allow_is_refused_before_anything_runs() -> None:
    # (apisweep2: a 1.3 MB chain of 50,000 Relu nodes held a worker for minutes)
    from onnx import TensorProto, helper

    from gradhealth.analysis.importers.onnx_static import NODES_PER_UNIT, read_header
    from gradhealth.analysis.plan import Limits
    from gradhealth.errors import LimitExceeded

    limits = Limits(max_units=10)
    def chain(n: int) -> bytes:
        nodes = [helper.make_node("Relu", [f"h{i}"], [f"h{i + 1}"], name=f"r{i}") for i in range(n)]
        graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info(f"h{n}", TensorProto.FLOAT, [1, 4])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    read_header(chain(NODES_PER_UNIT * 10), limits=limits)
    with pytest.raises(LimitExceeded, match=r"101 nodes, over the limit of 100"):
        read_header(chain(NODES_PER_UNIT * 10 + 1), limits=limits)
