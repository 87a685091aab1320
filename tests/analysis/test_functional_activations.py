"""The live door reads activations a forward computes as functions (``F.relu(self.fc(x))``,
``torch.tanh``, ``x.sigmoid()``) as it reads activation modules: the same network written either
way gets the same document. Before, a network written with functions had no activation to measure
(no dead or saturated units) and a network of dead ReLUs was called healthy."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import export


class Net(nn.Module):
    """Six Linear layers with an activation after each, as a module or as a function."""

    def __init__(self, act: nn.Module | Callable[[torch.Tensor], torch.Tensor], bias: float) -> None:
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(6)])
        self.out = nn.Linear(32, 5)
        self.act = act
        with torch.no_grad():
            for fc in self.fcs:
                fc.bias.fill_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fc in self.fcs:
            x = self.act(fc(x))
        return self.out(x)


def _pair(module: nn.Module, function: Callable[[torch.Tensor], torch.Tensor],
          bias: float) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = Net(module, bias)
    torch.manual_seed(0)
    return a, Net(function, bias)


def _doc(net: nn.Module):  # noqa: ANN202
    return check_module(net, torch.randn(16, 32), seeds=2, verify=False)


@pytest.mark.parametrize("module,function,bias,code", [
    (nn.ReLU(), F.relu, -1.5, "dead_units"),  # a negative bias kills the units
    (nn.ReLU(), lambda x: x.relu(), -1.5, "dead_units"),
    (nn.ReLU(), lambda x: torch.relu_(x), -1.5, "dead_units"),  # in place
    (nn.Tanh(), torch.tanh, 3.0, "saturation"),  # a large bias pins tanh at +1
    (nn.Sigmoid(), lambda x: x.sigmoid(), 0.0, "vanishing_gradient"),
    # clamps used as activations: the ReLU and the hardtanh they compute
    (nn.ReLU(), lambda x: x.clamp(min=0), -1.5, "dead_units"),
    (nn.ReLU(), lambda x: torch.clamp_min(x, 0.0), -1.5, "dead_units"),
    (nn.ReLU6(), lambda x: torch.clamp(x, 0, 6), -1.5, "dead_units"),
    (nn.Hardtanh(), lambda x: x.clamp(-1.0, 1.0), 3.0, "saturation"),
    (nn.Hardtanh(), lambda x: torch.clip(x, min=-1, max=1), 3.0, "saturation"),
])
def test_a_function_is_read_as_its_module(module: nn.Module, function: Callable[[torch.Tensor], torch.Tensor],
                                          bias: float, code: str) -> None:
    with_modules, with_functions = _pair(module, function, bias)
    a, b = _doc(with_modules), _doc(with_functions)
    assert code in {f.code for f in a.findings}
    assert [(f.code, f.severity) for f in b.findings] == [(f.code, f.severity) for f in a.findings]
    assert [u.activation for u in b.layers] == [u.activation for u in a.layers]
    for u, v in zip(a.layers, b.layers, strict=True):
        assert v.output_grad_norm == pytest.approx(u.output_grad_norm, rel=1e-9)
        assert (v.dead_fraction, v.saturated_fraction) == (u.dead_fraction, u.saturated_fraction)


def test_the_live_door_and_the_onnx_door_agree_on_a_functional_network() -> None:
    torch.manual_seed(0)
    net = Net(F.relu, -1.5)
    live = _doc(net)
    imported = check_onnx(export(net.eval(), torch.randn(16, 32)), seeds=2, verify=False)
    assert [u.output_grad_norm for u in imported.layers] == pytest.approx(
        [u.output_grad_norm for u in live.layers], rel=1e-6)
    assert [u.dead_fraction for u in imported.layers] == [u.dead_fraction for u in live.layers]


def test_a_function_inside_a_module_belongs_to_that_module() -> None:
    # nn.ReLU calls F.relu itself, and a custom activation module may call torch.tanh: read once,
    # by the module's hook, never folded a second time
    class Swishy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(x)

    torch.manual_seed(0)
    doc = _doc(Net(nn.ReLU(), 0.0))
    assert [u.activation for u in doc.layers][:6] == ["relu"] * 6
    torch.manual_seed(0)
    doc = _doc(Net(Swishy(), 0.0))  # an unknown module: its sigmoid of x is not an activation of fc
    assert all(u.activation is None for u in doc.layers)


def test_an_activation_swap_is_verified_on_functions_as_on_modules() -> None:
    # the relu remedy for a sigmoid stack: simulated by swapping the modules in one network and
    # the functions as they run in the other; the same numbers come out
    with_modules, with_functions = _pair(nn.Sigmoid(), torch.sigmoid, 0.0)
    found = []
    for net in (with_modules, with_functions):
        doc = check_module(net, torch.randn(16, 32), seeds=2, verify=True)
        finding = next(f for f in doc.findings if f.code == "vanishing_gradient")
        swap = next(r for r in finding.remedies if r.id == "relu_family_activation")
        assert swap.verified is not None and swap.verified.after != swap.verified.before
        found.append((swap.verified.before, swap.verified.after, swap.verified.fixed))
    assert found[1] == pytest.approx(found[0], rel=1e-9)


class _InPlaceBlock(nn.Module):
    """torchvision's BasicBlock: conv-BN-ReLU, conv-BN, ``out += identity`` in place, then an
    in-place ReLU of the sum."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return cast(torch.Tensor, self.relu(out))


def test_a_relu_of_a_residual_sum_made_in_place_is_not_the_last_layers_activation() -> None:
    # `out += identity` changes the second convolution's (normalised) output in place: the ReLU
    # after it reads the block's sum, not that layer's output, so it is not that layer's
    # activation (an in-place ReLU right after a norm still is)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _InPlaceBlock(8), _InPlaceBlock(8),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    doc = check_module(net, torch.randn(8, 3, 8, 8), seeds=1, verify=False)
    units = {u.name: u for u in doc.layers}
    assert units["1.conv1"].activation == "relu" and units["1.conv1"].normalised
    assert units["1.conv2"].activation is None and units["1.conv2"].normalised
    # the ReLU of the sum is a unit of its own
    assert units["1.relu"].type == "activation" and units["1.relu"].activation == "relu"


@pytest.mark.parametrize("clamp", [lambda x: x.clamp(-3, 3), lambda x: x.clamp(max=0),
                                   lambda x: x.clamp(min=torch.zeros(()))])
def test_a_clamp_to_other_bounds_is_no_activation(clamp: Callable[[torch.Tensor], torch.Tensor]) -> None:
    torch.manual_seed(0)
    assert {u.activation for u in _doc(Net(clamp, 0.0)).layers} == {None}
