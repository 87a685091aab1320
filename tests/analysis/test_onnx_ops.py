"""The ops real models export beyond the first families (U-Nets, GroupNorm ResNets, MobileNets,
causal decoders): each model checked through ONNX agrees with the same model checked live, layer
by layer, to 1e-6 (float64, same weights and inputs); and single ops against numpy."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers.onnx import InstanceNorm, import_onnx
from gradhealth.analysis.importers.onnx_static import parse, unsupported
from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import (
    GroupNormResidual,
    MaskedEncoder,
    MobileBlock,
    Odds,
    TinyGPT,
    UNet,
    Unmasked,
    WeightNormed,
    export,
    token_ids,
)
from tests.analysis.test_onnx import _same

MODELS = {
    "unet": (UNet, lambda: torch.randn(4, 3, 16, 16)),
    "groupnorm_residual": (GroupNormResidual, lambda: torch.randn(4, 8, 8, 8)),
    "mobile_block": (MobileBlock, lambda: torch.randn(4, 3, 16, 16)),
    "tiny_gpt": (TinyGPT, lambda: token_ids(4, 8)),
    "tiny_gpt_tanh_gelu": (lambda: TinyGPT(approximate="tanh"), lambda: token_ids(4, 8)),
    "odds": (Odds, lambda: torch.randn(4, 4, 10)),
    "weight_normed": (WeightNormed, lambda: torch.randn(4, 4, 20)),
}
#: Models whose activations are all modules of the spec's vocabulary: the live door sees the same
#: units as the ONNX door (a functional mish or glu is a few ONNX nodes, invisible to the hooks).
SAME_UNITS = ("unet", "groupnorm_residual", "mobile_block", "tiny_gpt", "tiny_gpt_tanh_gelu",
              "weight_normed")


_OPSETS = [(case, opset) for case in sorted(MODELS) for opset in (17, 18)]


@pytest.mark.parametrize("case,opset", _OPSETS)
def test_interpreted_graph_computes_what_the_model_does(case: str, opset: int) -> None:
    """The output, and the gradient of a loss on it with respect to a float input, in float64."""
    build, make_input = MODELS[case]
    torch.manual_seed(0)
    model = build()
    x = make_input()
    data = export(model, x, opset=opset)
    assert unsupported(parse(data)) == []
    graph = import_onnx(data).module.double()
    model = model.double()
    xs = [x.double().requires_grad_() if x.is_floating_point() else x for _ in range(2)]
    ours, theirs = graph(xs[0]), model(xs[1])
    # 1e-6: constants in the file (a softmax scale, an eps) are float32, the model's are float64
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)
    if x.is_floating_point():
        (ours ** 2).sum().backward()
        (theirs ** 2).sum().backward()
        torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", SAME_UNITS)
def test_model_through_onnx_agrees_with_the_live_model(case: str) -> None:
    build, make_input = MODELS[case]
    torch.manual_seed(0)
    model = build()
    x = make_input()
    live = check_module(model, x, seeds=2, verify=False)
    via_onnx = check_onnx(export(model, x, opset=17), seeds=2, verify=False)
    _same(live, via_onnx)
    assert any(layer.grad_norm for layer in via_onnx.layers)
    if case.startswith("tiny_gpt"):  # the tanh form of GELU too is one gelu unit, not a tanh
        ff = next(layer for layer in via_onnx.layers if layer.name == "ff.0")
        assert ff.activation == "gelu"


def test_group_norm_is_one_unit_with_its_affine_parameters() -> None:
    # exported as Reshape, InstanceNormalization (unit scale), Reshape, Mul, Add: folded into one
    # op whose weight and bias are the model's and get a gradient
    torch.manual_seed(0)
    model = GroupNormResidual()
    with torch.no_grad():
        model.gn.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, 8, 8)
    graph = import_onnx(export(model, x)).module.double()
    (group,) = [op for op in graph.ops if isinstance(op, InstanceNorm) and op.groups]
    assert group.groups == 4
    torch.testing.assert_close(group.weight.detach().reshape(-1), model.gn.weight.detach().double())
    graph(x.double()).sum().backward()
    assert group.weight.grad is not None and float(group.weight.grad.abs().sum()) > 0


def _run(node: object, inputs: dict[str, np.ndarray], inits: dict[str, np.ndarray],
         out_shape: list[int]) -> np.ndarray:
    """One node as a graph, interpreted in float64."""
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    module = import_onnx(data).module.double()
    args = [torch.from_numpy(v.astype(np.float64)) for v in inputs.values()]
    with torch.no_grad():
        return np.asarray(module(*args).numpy())


def test_group_normalization_op_per_group_scale() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3, 3)).astype(np.float32)
    scale = np.array([1.5, -0.5, 2.0], np.float32)
    bias = np.array([0.1, 0.2, 0.3], np.float32)
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-5)
    got = _run(node, {"x": x}, {"s": scale, "b": bias}, list(x.shape))
    g = x.astype(np.float64).reshape(2, 3, -1)
    norm = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    expected = (norm * scale[None, :, None] + bias[None, :, None]).reshape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_depth_to_space_dcr_order() -> None:
    x = np.arange(2 * 8 * 2 * 3, dtype=np.float32).reshape(2, 8, 2, 3)
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="DCR")
    got = _run(node, {"x": x}, {}, [2, 2, 4, 6])
    # The ONNX operator's reference: reshape, transpose, reshape.
    expected = x.reshape(2, 2, 2, 2, 2, 3).transpose(0, 3, 4, 1, 5, 2).reshape(2, 2, 4, 6)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("mode,numpy_mode", [("edge", "edge"), ("reflect", "reflect"), ("wrap", "wrap")])
def test_pad_modes_match_numpy(mode: str, numpy_mode: str) -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode=mode)
    got = _run(node, {"x": x}, {"p": pads}, [2, 3, 7, 8])
    expected = np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], mode=numpy_mode)
    np.testing.assert_array_equal(got, expected)


def test_einsum_tile_and_argmax() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 4, 5)).astype(np.float32)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="bij,bjk->bik")
    np.testing.assert_allclose(_run(node, {"a": a, "b": b}, {}, [2, 3, 5]), a @ b, rtol=1e-6)
    tile = helper.make_node("Tile", ["a", "r"], ["y"])
    np.testing.assert_array_equal(_run(tile, {"a": a}, {"r": np.array([1, 2, 1], np.int64)}, [2, 6, 4]),
                                  np.tile(a, (1, 2, 1)))


def test_a_parametrized_weight_is_reinitialised_by_the_init_remedy() -> None:
    # weight_norm computes the weight: the He edit draws one and assigns it (its g and v follow)
    from gradhealth.analysis.module_check import _init_edit

    torch.manual_seed(0)
    layer = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(400, 300))
    with torch.no_grad():
        layer.parametrizations.weight.original1.mul_(10.0)  # v scaled: w unchanged (w = g v/|v|)
        layer.parametrizations.weight.original0.mul_(5.0)  # g scaled: w 5x the default
    _init_edit("kaiming_normal")(layer, 0)
    std = float(layer.weight.detach().std())
    assert std == pytest.approx((2 / 400) ** 0.5, rel=0.03)


@pytest.mark.parametrize("how", ["opset18", "dynamo_unoptimised"])
def test_a_weight_computed_from_stored_tensors_is_folded_into_the_layer(how: str) -> None:
    # Opset 18, and the dynamo exporter without optimize, write weight_norm out (ReduceL2, Div,
    # Mul into the Conv's weight input) where opset 17 stores the folded weight: both files must
    # give the same layers, with the same figures, as that one and as the live model.
    torch.manual_seed(0)
    model = WeightNormed()
    x = torch.randn(4, 4, 20)
    if how == "opset18":
        data = export(model, x, opset=18)
    else:
        f = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), f, dynamo=True, optimize=False, verbose=False)
        data = f.getvalue()
    ops = {n.op_type for n in parse(data).graph.node}
    assert {"ReduceL2", "Div", "Mul"} <= ops  # the weight really is computed in this file
    folded = check_onnx(data, seeds=2, verify=False)
    stored = check_onnx(export(model, x, opset=17), seeds=2, verify=False)
    if how == "opset18":  # the same exporter: the same names
        _same(stored, folded)
    else:
        assert [u.grad_norm for u in folded.layers] == pytest.approx(
            [u.grad_norm for u in stored.layers], rel=1e-6)
    _same(check_module(model, x, seeds=2, verify=False), stored)


def test_a_conv_whose_weight_depends_on_the_input_is_a_conv_of_that_weight() -> None:
    # a weight computed from a graph input is not a constant: nothing to fold, so the Conv takes
    # it as a value (onnxsweep7: StyleGAN2's modulated conv; tests/analysis/test_onnx_sweep7_fixes.py)
    w = helper.make_node("Mul", ["w_in", "s"], ["w"], name="make_w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="c1")
    graph = helper.make_graph(
        [w, conv], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5]),
         helper.make_tensor_value_info("w_in", TensorProto.FLOAT, [3, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "s")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    x, w_in = torch.randn(1, 2, 5, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(import_onnx(data).module.double()(x, w_in), F.conv1d(x, 2.0 * w_in))


def test_folding_leaves_a_node_whose_result_would_outgrow_the_file() -> None:
    # a broadcast of two stored vectors into a matrix bigger than anything stored, and bigger
    # than the folding bound, is left for the interpreter to compute
    from gradhealth.analysis.importers import onnx as onnx_import

    n = 1 << 16  # 2^32 elements (16 GiB) if it were computed: refused before any allocation
    mul = helper.make_node("Mul", ["a", "b"], ["outer"], name="outer")
    add = helper.make_node("Add", ["x", "one"], ["y"], name="plus")
    nodes = [onnx_import.Node(m.op_type, m.name, list(m.input), list(m.output), {})
             for m in (mul, add)]
    static = {"a": np.ones((n, 1), np.float32), "b": np.ones((1, n), np.float32),
              "one": np.ones(1, np.float32)}
    left, folded = onnx_import._fold_constants(nodes, static, set())
    assert [x.name for x in left] == ["outer", "plus"] and folded == set()
    static["b"] = np.full((1, 8), 3.0, np.float32)
    left, folded = onnx_import._fold_constants(nodes, static, set())
    assert [x.name for x in left] == ["plus"] and folded == {"outer"}
    np.testing.assert_array_equal(static["outer"], np.full((n, 8), 3.0, np.float32))


def test_reduce_l2_and_log_sum_exp_match_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    axes = np.array([1, 2], np.int64)
    l2 = helper.make_node("ReduceL2", ["x", "a"], ["y"], keepdims=1)
    np.testing.assert_allclose(_run(l2, {"x": x}, {"a": axes}, [2, 1, 1]),
                               np.sqrt((x.astype(np.float64) ** 2).sum((1, 2), keepdims=True)), rtol=1e-6)
    lse = helper.make_node("ReduceLogSumExp", ["x", "a"], ["y"], keepdims=0)
    np.testing.assert_allclose(_run(lse, {"x": x}, {"a": axes}, [2]),
                               np.log(np.exp(x.astype(np.float64)).sum((1, 2))), rtol=1e-6)


def test_an_integer_input_that_indexes_no_table_is_a_mask_of_ones() -> None:
    # before: refused ("cannot tell which ids are valid"); random 0/1 would mask whole rows
    torch.manual_seed(0)
    model = MaskedEncoder()
    ids = token_ids(4, 6)
    mask = torch.ones(4, 6, dtype=torch.long)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), f, dynamo=False, input_names=["ids", "mask"])
    imported = import_onnx(f.getvalue())
    assert [(s.dtype, s.high) for s in imported.inputs] == [(torch.int64, 50), (torch.int64, None)]
    via_onnx = check_onnx(f.getvalue(), seeds=2, verify=False)
    same_weights = Unmasked()
    same_weights.load_state_dict(model.state_dict())
    live = check_module(same_weights, ids, seeds=2, verify=False)
    _same(live, via_onnx)
    assert not [f.code for f in via_onnx.findings if f.code == "nonfinite"]


def test_gather_elements_matches_numpy_take_along_axis() -> None:
    # BERT's exported embeddings gather position ids with GatherElements; negative indices count
    # from the end, as the operator's reference has it
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    idx = np.array([[[0, 4, -1, 2]] * 2] * 3, np.int64)  # shape (3, 2, 4), gathered along axis 1
    node = helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)
    got = _run(node, {"x": x}, {"i": idx}, [3, 2, 4])
    np.testing.assert_array_equal(got, np.take_along_axis(x, np.where(idx < 0, idx + 5, idx), axis=1))


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum_matches_the_operators_definition(exclusive: int, reverse: int) -> None:
    # RoBERTa's exported position ids are a CumSum of the padding mask
    x = np.arange(1, 2 * 5 + 1, dtype=np.float32).reshape(2, 5)
    node = helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=exclusive, reverse=reverse)
    got = _run(node, {"x": x}, {"a": np.array(1, np.int64)}, [2, 5])
    # the definition, term by term: y[j] = sum of x[k] for k before j (or after, reversed),
    # j itself included unless exclusive
    expected = np.zeros_like(x)
    for j in range(5):
        ks = [k for k in range(5) if (k >= j if reverse else k <= j) and not (exclusive and k == j)]
        expected[:, j] = x[:, ks].sum(1) if ks else 0
    np.testing.assert_array_equal(got, expected)


def test_an_opset_9_lstm_whose_gates_are_reordered_by_attribute_slices() -> None:
    # torch 1.x exports (opset 9) reorder the LSTM's gate blocks with Slice nodes whose bounds are
    # attributes, then Concat: folded like the opset-10 form, W and R are known and the LSTM runs
    import onnx

    from tests.analysis.onnx_models import Sequence, export

    torch.manual_seed(0)
    model, x = Sequence(torch.nn.LSTM, hidden=16), torch.randn(4, 12, 8)
    old = export(model, x, train=True, opset=9)
    slices = [n for n in onnx.load_from_string(old).graph.node if n.op_type == "Slice"]
    assert slices and all(any(a.name == "starts" for a in n.attribute) for n in slices)  # the test's file
    new = check_onnx(export(model, x, train=True, opset=17), seeds=1, verify=False)
    doc = check_onnx(old, seeds=1, verify=False)
    assert [s.output_grad_norm for s in doc.time_steps] == pytest.approx(
        [s.output_grad_norm for s in new.time_steps], rel=1e-9)
