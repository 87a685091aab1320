"""Norms written out op by op in an ONNX file (a GroupNorm, LayerNorm or RMSNorm a model computes by
hand, exported as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div): the layers they read are
``normalised`` as with the native op, and the values are the same. Before, the division was plain
arithmetic, and a trained DDPM U-Net with 20 such GroupNorms had none of its 66 layers normalised."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth import check_onnx
from gradhealth.analysis.importers.onnx import import_onnx

from .onnx_models import export


class HandGroupNorm(nn.Module):
    """GroupNorm as many diffusion repositories write it: reshape to groups, centre, divide by the
    root of the mean square plus eps, reshape back, then the affine scale and shift."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = x.reshape(n, self.groups, -1)
        mean = g.mean(-1, keepdim=True)
        var = ((g - mean) ** 2).mean(-1, keepdim=True)
        g = (g - mean) / torch.sqrt(var + self.eps)
        return g.reshape(n, c, h, w) * self.weight[:, None, None] + self.bias[:, None, None]


class ConvNormNet(nn.Module):
    """conv -> norm -> SiLU -> conv -> norm -> SiLU -> pooled head: the norm's class is the one thing
    that differs between the two exports compared."""

    def __init__(self, norm: type[nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm1 = norm(4, 8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.norm2 = norm(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.silu(self.norm1(self.conv1(x)))
        h = nn.functional.silu(self.norm2(self.conv2(h)))
        return self.head(h.mean((2, 3)))


class HandLayerNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        return self.gamma * (x - mean) / (var + 1e-5).sqrt()


class HandRMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.g


class Mlp(nn.Module):
    def __init__(self, norm: nn.Module | None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.norm = norm if norm is not None else nn.Identity()
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


def _normalised(data: bytes) -> dict[str, bool]:
    doc = check_onnx(data, seeds=1, verify=False)
    return {layer.name: layer.normalised for layer in doc.layers if layer.type.startswith(("conv", "linear"))}


def test_hand_written_group_norm_normalises_the_convolutions_as_nn_group_norm_does() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    hand, native = ConvNormNet(HandGroupNorm), ConvNormNet(nn.GroupNorm)
    native.load_state_dict(hand.state_dict())
    hand_file = export(hand, x)
    imported = import_onnx(hand_file)
    assert imported.module.op_types.count("_WrittenNorm") == 2
    # the same values as the model: the norm is replaced, not changed
    with torch.no_grad():
        torch.testing.assert_close(imported.module(x), hand(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(hand(x), native(x), rtol=1e-5, atol=1e-5)
    # each convolution's output is divided by its own group's root mean square: its weights'
    # scale is divided out, so both are normalised (as nn.GroupNorm's export says too)
    by_hand, by_module = _normalised(hand_file), _normalised(export(native, x))
    assert by_hand["conv1"] and by_hand["conv2"] and not by_hand["head"]
    assert by_hand == by_module


@pytest.mark.parametrize("norm", [HandLayerNorm, HandRMSNorm])
def test_hand_written_layer_and_rms_norm_normalise_the_layer_before(norm: type[nn.Module]) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    model = Mlp(norm(16))
    data = export(model, x)
    imported = import_onnx(data)
    assert imported.module.op_types.count("_WrittenNorm") == 1
    with torch.no_grad():
        torch.testing.assert_close(imported.module(x), model(x), rtol=1e-5, atol=1e-5)
    found = _normalised(data)
    assert found["fc1"] and not found["fc2"]
    assert not any(_normalised(export(Mlp(None), x)).values())  # without the norm: neither layer


def _graph(nodes: list, inits: list) -> bytes:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def _written(eps_outside: bool = False, mean_read_again: bool = False, root: str = "Sqrt") -> bytes:
    """x @ W1 + b1, normalised over the features as ONNX ops, then @ W2: the std+eps form, a mean
    some other node reads too, or no root at all (a centring and a division by the variance)."""
    rng = np.random.default_rng(0)
    f32 = lambda a, n: numpy_helper.from_array(np.asarray(a, np.float32), n)  # noqa: E731
    inits = [f32(rng.standard_normal((6, 16)) * 0.4, "W1"), f32(np.zeros(16), "b1"),
             f32(rng.standard_normal((16, 2)) * 0.25, "W2"), f32(2.0, "two"), f32(1e-5, "eps")]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["a"]), helper.make_node("Add", ["a", "b1"], ["h"]),
             helper.make_node("ReduceMean", ["h"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["h", "m"], ["d"]), helper.make_node("Pow", ["d", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["v"], axes=[-1])]
    if eps_outside:
        nodes += [helper.make_node("Sqrt", ["v"], ["s"]), helper.make_node("Add", ["s", "eps"], ["r"])]
    elif root == "Sqrt":
        nodes += [helper.make_node("Add", ["v", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["r"])]
    else:
        nodes += [helper.make_node("Add", ["v", "eps"], ["r"])]
    nodes.append(helper.make_node("Div", ["d", "r"], ["n"]))
    last = "n"
    if mean_read_again:
        nodes.append(helper.make_node("Add", ["n", "m"], ["n2"]))
        last = "n2"
    nodes += [helper.make_node("Relu", [last], ["z"]), helper.make_node("MatMul", ["z", "W2"], ["y"])]
    return _graph(nodes, inits)


def _reference(data: bytes, x: np.ndarray, eps_outside: bool = False, mean_read_again: bool = False,
               root: str = "Sqrt") -> np.ndarray:
    """The graph's output computed in numpy from the initializers."""
    import onnx

    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in onnx.load_from_string(data).graph.initializer}
    h = x @ w["W1"] + w["b1"]
    m = h.mean(-1, keepdims=True)
    v = ((h - m) ** 2).mean(-1, keepdims=True)
    r = (np.sqrt(v) + 1e-5) if eps_outside else np.sqrt(v + 1e-5) if root == "Sqrt" else v + 1e-5
    n = (h - m) / r
    n = n + m if mean_read_again else n
    return np.asarray(np.maximum(n, 0) @ w["W2"])


@pytest.mark.parametrize("case,folded", [({}, True), ({"eps_outside": True}, True),
                                         ({"mean_read_again": True}, False), ({"root": "none"}, False)])
def test_written_norm_forms_and_near_misses(case: dict, folded: bool) -> None:
    # (x - mean) / (std + eps) is a norm too; a mean read elsewhere, or a division by the variance
    # itself (x / sigma^2, not scale-free), is left as the arithmetic it is, and not a norm
    data = _written(**case)
    imported = import_onnx(data)
    assert imported.module.op_types.count("_WrittenNorm") == int(folded)
    x = np.random.default_rng(1).standard_normal((5, 6))
    with torch.no_grad():
        got = imported.module.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _reference(data, x, **case), rtol=1e-6, atol=1e-9)
