"""onnxsweep7's three refusals of valid models, fixed at their root: bfloat16/float8 initializers
are float weights (read as float32), a convolution's weight may be computed in the graph
(StyleGAN2's modulated conv, weight standardisation), and ScatterElements (torch's scatter_add,
a graph network's message passing) is interpreted. Outputs are compared with onnx's reference
evaluator or with the torch model exported."""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers import onnx as importer
from gradhealth.analysis.importers.onnx import (
    OPS,
    Conv,
    ConvTranspose,
    Linear,
    _tensor,
    import_onnx,
)
from gradhealth.analysis.importers.onnx_static import SUPPORTED_OPS, parse
from gradhealth.analysis.module_check import check_onnx


def _graph(nodes: list[Any], inits: list[Any], inputs: list[tuple[str, int, list[int]]],
           opset: int = 18) -> bytes:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], opset: int = 17) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(model, args, f, dynamo=False, opset_version=opset)
    return f.getvalue()


# --- 1. bfloat16 and float8 initializers -----------------------------------------------------------

_LOW_FLOATS = [TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2]


def _low(name: str, values: np.ndarray, elem: int) -> Any:
    """An initializer of element type ``elem`` holding ``values`` (rounded to that type)."""
    return helper.make_tensor(name, elem, list(values.shape), values.reshape(-1).tolist())


def _stored(t: Any) -> np.ndarray:
    """What the file holds, as float32 (the rounding to bfloat16/float8 done)."""
    return np.asarray(numpy_helper.to_array(t)).astype(np.float32)


@pytest.mark.parametrize("elem", _LOW_FLOATS, ids=["bfloat16", "float8e4m3fn", "float8e5m2"])
def test_low_precision_gemm_weights_are_a_linear_layer_of_their_values(elem: int) -> None:
    rng = np.random.default_rng(0)
    w = _low("W", rng.standard_normal((4, 6)) * 0.5, elem)
    b = _low("B", rng.standard_normal(4) * 0.1, elem)
    data = _graph([helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1)], [w, b],
                  [("x", TensorProto.FLOAT, [3, 6])])
    imported = import_onnx(data)
    op = imported.module.ops[0]
    assert isinstance(op, Linear)  # not the weightless fallback: a layer with a parameter
    np.testing.assert_array_equal(op.weight.detach().numpy(), _stored(w))
    x = rng.standard_normal((3, 6))
    with torch.no_grad():
        got = imported.module.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, x @ _stored(w).T.astype(np.float64) + _stored(b), rtol=1e-12)


@pytest.mark.parametrize("op_type", ["Conv", "ConvTranspose"])
def test_bfloat16_convolution_weights_are_the_layers_parameters(op_type: str) -> None:
    rng = np.random.default_rng(1)
    w = _low("W", rng.standard_normal((3, 3, 3, 3)) * 0.3, TensorProto.BFLOAT16)
    data = _graph([helper.make_node(op_type, ["x", "W"], ["y"], pads=[1, 1, 1, 1])], [w],
                  [("x", TensorProto.BFLOAT16, [2, 3, 5, 5])])
    imported = import_onnx(data)
    op = imported.module.ops[0]
    assert isinstance(op, ConvTranspose if op_type == "ConvTranspose" else Conv)
    assert imported.inputs[0].dtype == torch.float64  # a bfloat16 input is simulated as a float
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    fn = F.conv_transpose2d if op_type == "ConvTranspose" else F.conv2d
    with torch.no_grad():
        got = imported.module.double()(torch.from_numpy(x).double())
        want = fn(torch.from_numpy(x).double(), torch.from_numpy(_stored(w)).double(), padding=1)
    torch.testing.assert_close(got, want)


def test_a_stored_tensor_of_no_number_type_is_refused_by_name_not_read_as_integers() -> None:
    c = numpy_helper.from_array(np.array([1 + 2j, 3 - 1j], np.complex64), "odd_tensor")
    data = _graph([helper.make_node("Add", ["x", "odd_tensor"], ["y"])], [c], [("x", TensorProto.FLOAT, [2])])
    with pytest.raises(ModelError, match="odd_tensor"):
        import_onnx(data)
    with pytest.raises(ModelError, match="named"):
        _tensor(np.array(["a"]), "named")


# --- 2. a convolution's weight computed in the graph --------------------------------------------

#: (op, nd, attributes): strides, asymmetric pads, auto_pad, dilations, groups, output_padding
_CONV_CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Conv", 1, {"strides": [2], "pads": [1, 2]}),
    ("Conv", 2, {"pads": [0, 1, 2, 1], "dilations": [2, 1]}),
    ("Conv", 2, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("Conv", 2, {"auto_pad": "SAME_LOWER", "strides": [2, 1]}),
    ("Conv", 2, {"auto_pad": "VALID", "group": 2}),
    ("Conv", 3, {"pads": [1, 1, 1, 1, 1, 1], "strides": [1, 2, 1]}),
    ("ConvTranspose", 1, {"strides": [2], "output_padding": [1], "pads": [1, 1]}),
    ("ConvTranspose", 2, {"strides": [2, 2], "pads": [0, 1, 1, 0], "dilations": [1, 2]}),
    ("ConvTranspose", 2, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("ConvTranspose", 2, {"auto_pad": "SAME_LOWER", "strides": [3, 2], "dilations": [1, 2]}),
]


def _conv_graph(op: str, nd: int, attrs: dict[str, Any], stored: bool) -> tuple[bytes, dict[str, np.ndarray]]:
    rng = np.random.default_rng(nd)
    groups = int(attrs.get("group", 1))
    x = rng.standard_normal((2, 4, *[7] * nd)).astype(np.float32)
    shape = (4, 6 // groups, *[3] * nd) if op == "ConvTranspose" else (6, 4 // groups, *[3] * nd)
    w = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    node = helper.make_node(op, ["x", "w", "b"], ["y"], kernel_shape=[3] * nd, **attrs)
    inits = [numpy_helper.from_array(b, "b")] + ([numpy_helper.from_array(w, "w")] if stored else [])
    inputs = [("x", TensorProto.FLOAT, list(x.shape))] + ([] if stored else [("w", TensorProto.FLOAT, list(w.shape))])
    feeds = {"x": x} if stored else {"x": x, "w": w}
    return _graph([node], inits, inputs), feeds


@pytest.mark.parametrize("op,nd,attrs", _CONV_CASES, ids=[f"{o}{n}d-{'-'.join(a)}" for o, n, a in _CONV_CASES])
@pytest.mark.parametrize("stored", [False, True], ids=["computed_weight", "stored_weight"])
def test_convolution_attributes_compute_what_the_onnx_reference_does(op: str, nd: int, attrs: dict[str, Any],
                                                                     stored: bool) -> None:
    data, feeds = _conv_graph(op, nd, attrs, stored)
    expected = ReferenceEvaluator(parse(data)).run(None, feeds)[0]
    imported = import_onnx(data)
    assert isinstance(imported.module.ops[0], Conv if stored else importer.DynamicConv)
    with torch.no_grad():
        got = imported.module.double()(*[torch.from_numpy(v).double() for v in feeds.values()]).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


class _ModulatedConv(nn.Module):
    """StyleGAN2's modulated, demodulated 3x3 conv: the style scales the stored kernel's input
    channels per sample, each output filter is renormalised, and the batch runs as conv groups."""

    def __init__(self, channels: int = 4, latent: int = 8, demodulate: bool = True) -> None:
        super().__init__()
        self.affine = nn.Linear(latent, channels)
        nn.init.ones_(self.affine.bias)
        self.weight = nn.Parameter(torch.randn(channels, channels, 3, 3))
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        n, c, h, w_ = x.shape
        style = self.affine(latent)
        w = self.weight.unsqueeze(0) * style.reshape(n, 1, c, 1, 1)
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
        out = F.conv2d(x.reshape(1, n * c, h, w_), w.reshape(n * c, c, 3, 3), padding=1, groups=n)
        return F.leaky_relu(out.reshape(n, c, h, w_), 0.2) * math.sqrt(2)


def test_a_modulated_conv_is_a_layer_whose_stored_kernel_gets_its_gradient() -> None:
    torch.manual_seed(0)
    model = _ModulatedConv()
    x, latent = torch.randn(2, 4, 6, 6), torch.randn(2, 8)
    imported = import_onnx(_export(model, (x, latent)))
    graph = imported.module.double()
    convs = [op for op in graph.ops if isinstance(op, importer.DynamicConv)]
    assert len(convs) == 1 and convs[0].role.type == "conv2d" and convs[0].role.kind == "weight"
    model = model.double()
    ours, theirs = graph(x.double(), latent.double()), model(x.double(), latent.double())
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)
    # the fans are the computed weight's ([n * c, c, 3, 3]); the kernel it is made from is trained
    weight, fan_in, _ = convs[0].fan()
    assert weight is not None and fan_in == 4 * 9
    # (the exporter stores it unsqueezed: [1, c, c, 3, 3])
    kernels = [p for p in graph.parameters() if p.numel() == model.weight.numel() and p.dim() >= 4]
    assert len(kernels) == 1
    ours.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    assert kernels[0].grad is not None
    torch.testing.assert_close(kernels[0].grad.reshape(model.weight.shape), model.weight.grad, rtol=1e-6, atol=1e-8)


def test_a_modulated_conv_is_measured_as_a_convolution_with_its_weight_gradient() -> None:
    torch.manual_seed(0)
    data = _export(_ModulatedConv(), (torch.randn(2, 4, 6, 6), torch.randn(2, 8)))
    doc = check_onnx(data, seeds=1, verify=False, loss="mse")
    convs = [layer for layer in doc.layers if layer.type == "conv2d"]
    assert len(convs) == 1
    conv = convs[0]
    assert conv.fan_in == 36 and conv.grad_norm is not None and math.isfinite(conv.grad_norm) and conv.grad_norm > 0
    assert "affine" in {layer.name for layer in doc.layers}  # the style's layer is measured too


def test_a_conv_whose_weight_a_hypernetwork_makes_from_an_input_runs_with_its_gradients() -> None:
    """A weight computed from a graph input (a hypernetwork's Linear, reshaped to a kernel): no
    stored value to fold, so a convolution of a computed weight, differentiable in both inputs."""

    class HyperConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hyper = nn.Linear(5, 6 * 3 * 3)

        def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return F.conv1d(x, self.hyper(z).reshape(6, 3, 3), stride=2, padding=1)

    torch.manual_seed(0)
    model = HyperConv()
    x, z = torch.randn(2, 3, 9), torch.randn(1, 5)
    graph = import_onnx(_export(model, (x, z))).module.double()
    assert [op.role.type for op in graph.ops if isinstance(op, importer.DynamicConv)] == ["conv1d"]
    model = model.double()
    xs, zs = [x.double().requires_grad_() for _ in range(2)], [z.double().requires_grad_() for _ in range(2)]
    ours, theirs = graph(xs[0], zs[0]), model(xs[1], zs[1])
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)
    ours.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(zs[0].grad, zs[1].grad, rtol=1e-6, atol=1e-8)


# --- 3. ScatterElements ---------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements_computes_what_the_onnx_reference_does(reduction: str, axis: int) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 5)).astype(np.float32)
    updates = rng.standard_normal((3, 5) if axis == 0 else (4, 3)).astype(np.float32)
    size = data.shape[axis]
    idx = rng.integers(-size, size, updates.shape)
    if reduction == "none":  # one write per position (duplicates leave the winner undefined)
        rows = [rng.permutation(size)[:3] - size * (k % 2) for k in range(updates.shape[1 - axis % 2])]
        idx = np.stack(rows, 1 - axis % 2) if axis % 2 == 0 else np.stack(rows, 0)
    idx = idx.astype(np.int64)
    model = _graph([helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=axis, reduction=reduction)],
                   [], [("d", TensorProto.FLOAT, [4, 5]), ("i", TensorProto.INT64, list(idx.shape)),
                        ("u", TensorProto.FLOAT, list(updates.shape))])
    expected = ReferenceEvaluator(parse(model)).run(None, {"d": data, "i": idx, "u": updates})[0]
    with torch.no_grad():
        got = import_onnx(model).module.double()(
            torch.from_numpy(data).double(), torch.from_numpy(idx), torch.from_numpy(updates).double()).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_scatter_elements_refuses_an_index_out_of_range() -> None:
    model = _graph([helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], reduction="add")],
                   [numpy_helper.from_array(np.array([[0], [4]], np.int64), "i")],
                   [("d", TensorProto.FLOAT, [4, 2]), ("u", TensorProto.FLOAT, [2, 1])])
    with pytest.raises(ValueError, match="out of range"):
        import_onnx(model).module(torch.zeros(4, 2), torch.ones(2, 1))


class _MessagePassing(nn.Module):
    """A GraphSAGE-style layer: messages from source nodes summed into their destinations
    (scatter_add, exported as ScatterElements reduction=add), mean by degree, self term added."""

    def __init__(self) -> None:
        super().__init__()
        self.src = torch.tensor([0, 1, 2, 3, 4, 5, 1, 2])
        self.dst = torch.tensor([1, 2, 3, 4, 5, 0, 0, 0])
        self.inv_deg = 1.0 / torch.bincount(self.dst, minlength=6).clamp(min=1).unsqueeze(1).float()
        self.self_lin, self.nb_lin = nn.Linear(6, 6), nn.Linear(6, 6, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        msg = x[self.src]
        agg = torch.zeros_like(x).scatter_add(0, self.dst.unsqueeze(1).expand_as(msg), msg)
        return torch.relu(self.self_lin(x) + self.nb_lin(agg * self.inv_deg.to(x.dtype)))


def test_a_scatter_add_message_passing_layer_runs_with_its_gradients() -> None:
    torch.manual_seed(0)
    model = _MessagePassing()
    x = torch.randn(6, 6)
    data = _export(model, (x,), opset=16)
    assert "ScatterElements" in {n.op_type for n in parse(data).graph.node}
    graph = import_onnx(data).module.double()
    model = model.double()
    xs = [x.double().requires_grad_() for _ in range(2)]
    ours, theirs = graph(xs[0]), model(xs[1])
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)
    ours.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-6, atol=1e-8)
    doc = check_onnx(data, seeds=1, verify=False, loss="mse")
    assert {"self_lin", "nb_lin"} <= {layer.name for layer in doc.layers}


def test_scatter_elements_is_in_the_torch_free_op_list() -> None:
    assert "ScatterElements" in OPS and "ScatterElements" in SUPPORTED_OPS


class _Synthesis(nn.Module):
    """StyleGAN2's synthesis without demodulation (onnxsweep7's b07, smaller): a stack of
    modulated convs whose stored kernels are N(0, 1), nothing to renormalise them."""

    def __init__(self, depth: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_ModulatedConv(demodulate=False) for _ in range(depth))

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, latent)
        return x


def test_undemodulated_modulated_convs_are_diagnosed_exploding_and_the_init_remedy_is_verified() -> None:
    torch.manual_seed(0)
    data = _export(_Synthesis(), (torch.randn(2, 4, 6, 6), torch.randn(2, 8)))
    graph = import_onnx(data).module
    convs = [op for op in graph.ops if isinstance(op, importer.DynamicConv)]
    assert len(convs) == 8
    # a remedy's edit of the layer's weight reaches the stored kernel it is computed from
    kernel = convs[0].sources[0]
    assert convs[0].weight.shape == (4, 4, 3, 3)
    with torch.no_grad():
        convs[0].weight.zero_()
    assert not kernel.detach().any()
    doc = check_onnx(data, seeds=1, verify=True, loss="mse")
    found = {f.code: f for f in doc.findings}
    assert "exploding_gradient" in found
    he = [r for r in found["exploding_gradient"].remedies if r.id == "he_init"]
    assert he and he[0].verified is not None


def test_a_computed_weight_conv_without_rank_attributes_takes_its_rank_from_the_declared_shapes() -> None:
    """No kernel_shape, strides or pads (all optional): the rank is the declared input's, so the
    unit is a conv1d from the start."""
    nodes = [helper.make_node("Mul", ["w_in", "s"], ["w"]), helper.make_node("Conv", ["x", "w"], ["y"])]
    data = _graph(nodes, [numpy_helper.from_array(np.array(2.0, np.float32), "s")],
                  [("x", TensorProto.FLOAT, [1, 2, 5]), ("w_in", TensorProto.FLOAT, [3, 2, 3])])
    module = import_onnx(data).module.double()
    conv = module.ops[-1]
    assert isinstance(conv, importer.DynamicConv) and conv.role.type == "conv1d"
    x, w_in = torch.randn(1, 2, 5, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(module(x, w_in), F.conv1d(x, 2.0 * w_in))
