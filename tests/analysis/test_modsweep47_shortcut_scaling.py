"""modsweep47 ll_resnet56_nobn (#3): the verified ``scaled_residual`` of a BN-free ResNet scaled its
shortcut projections (the stage-changing 1x1 ``downsample`` convs) by 1/sqrt(N) along with the
branches' last convs, shrinking the whole stream: a 5.29e3x growth "fixed" into a 0.0311 ratio, a
32x shrink. Fixup / SkipInit scale only each residual BRANCH; the shortcut carries the stream."""
from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import SpecError, check_architecture, check_module
from gradhealth.analysis import module_check


class _Block(nn.Module):
    """A BasicBlock without norms: conv-relu-conv added to the block's input, or to its 1x1
    projection where the block changes the width or the resolution (He et al. 2016, option B)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(self.conv2(F.relu(self.conv1(x))) + shortcut)


class _ResNet(nn.Module):
    """CIFAR ResNet-(6n+2) without batch norm, He(fan_out) init as torchvision's, narrow (width 4)."""

    def __init__(self, n: int, width: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(_Block(c_in, c_out, 2 if stage and i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(F.relu(self.conv1(x))).mean((2, 3)))


def _first_to_last(model: _ResNet, x: torch.Tensor) -> float:
    """||dL/d conv1's output|| / ||dL/d the last conv's output|| by plain autograd (float64), the
    geometric mean over four draws of the labels: the growth the finding measures, computed here
    without the package."""
    net = copy.deepcopy(model).double()
    outs: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            out.retain_grad()
            outs[name] = out
        return hook

    net.conv1.register_forward_hook(keep("first"))
    net.blocks[-1].conv2.register_forward_hook(keep("last"))
    logs = []
    for draw in range(4):
        labels = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(draw))
        F.cross_entropy(net(x.double()), labels).backward()
        first, last = outs["first"].grad, outs["last"].grad
        assert first is not None and last is not None
        logs.append(math.log(float(first.norm() / last.norm())))
        net.zero_grad()
    return math.exp(sum(logs) / len(logs))


def _scaled_by_hand(model: _ResNet, factor: float, shortcuts: bool) -> _ResNet:
    out = copy.deepcopy(model)
    with torch.no_grad():
        for block in out.blocks:
            block.conv2.weight.mul_(factor)
            if shortcuts and block.downsample is not None:
                block.downsample[0].weight.mul_(factor)
    return out


def test_modsweep47_scaled_residual_scales_the_branches_not_the_shortcut_projections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # ResNet-44 (7 blocks a stage, 21 in all, two with a projection shortcut): the smallest CIFAR
    # ResNet whose He-init growth without norms passes the 1e2 warning line (ResNet-32's is ~80x)
    torch.manual_seed(0)
    model = _ResNet(7)
    x = torch.randn(4, 3, 32, 32)
    edits: list[Any] = []
    made = module_check._scale_branches_edit

    def recorded(ends: list[str], factor: float) -> Any:
        edit = made(ends, factor)
        edits.append(edit)
        return edit

    monkeypatch.setattr(module_check, "_scale_branches_edit", recorded)
    doc = check_module(model, x, loss="cross_entropy", seeds=1)
    growth = next(f for f in doc.findings if f.code == "exploding_gradient")
    [scaled] = [r for r in growth.remedies if r.id == "scaled_residual"]
    # the change as verified, applied to a copy: each block's conv2 times 1/sqrt(21 blocks), the
    # two shortcut convs and every other weight untouched
    [edit] = edits
    fixed = copy.deepcopy(model)
    edit(fixed, 0)
    before, after = dict(model.named_parameters()), dict(fixed.named_parameters())
    for name, weight in before.items():
        factor = 1 / math.sqrt(21) if name.endswith("conv2.weight") else 1.0
        assert torch.allclose(after[name], weight * factor), name
    assert torch.equal(after["blocks.7.downsample.0.weight"], before["blocks.7.downsample.0.weight"])
    assert torch.equal(after["blocks.14.downsample.0.weight"], before["blocks.14.downsample.0.weight"])
    # the verified ratio: the growth of scaled branches, each block's Jacobian 1 + O(1/L) in
    # variance, so of order e^c whatever the depth (not a shrink), as the same network scaled by
    # hand gives; scaling the shortcuts too shrinks the stream by (1/sqrt(23))^2 more
    verified = scaled.verified
    assert verified is not None and verified.fixed and verified.before is not None and verified.after is not None
    assert verified.before > 1e2
    raw = _first_to_last(model, x)
    assert 0.5 < verified.before / raw < 2
    branches = _first_to_last(_scaled_by_hand(model, 1 / math.sqrt(21), shortcuts=False), x)
    with_shortcuts = _first_to_last(_scaled_by_hand(model, 1 / math.sqrt(23), shortcuts=True), x)
    assert 0.2 < branches < 5 and with_shortcuts < 0.1  # (the defect's 0.0311 on ResNet-56)
    assert 0.5 < verified.after / branches < 2
    # and the remedy says which it kept
    assert "blocks.7.downsample.0, blocks.14.downsample.0) kept as they are" in scaled.change


def test_modsweep47_a_spec_residual_has_no_projection_for_scaled_residual_to_scale() -> None:
    # the spec door's residual is x + scale * f(x) with an identity skip: a branch that would need
    # a projection (it changes the width) is refused, and scaled_residual patches the branches'
    # `scale` only, the skip never
    he = {"init": "kaiming_normal"}
    spec: dict[str, Any] = {
        "name": "res", "input": {"shape": [32]}, "seeds": 1, "batch_size": 32,
        "layers": [{"type": "linear", "out_features": 32, "activation": "relu", **he},
                   {"type": "residual", "repeat": 12, "layers": [
                       {"type": "linear", "out_features": 32, "activation": "relu", **he},
                       {"type": "linear", "out_features": 32, **he}]},
                   {"type": "linear", "out_features": 10}]}
    growth = next(f for f in check_architecture(spec, verify=False).findings if f.code == "exploding_gradient")
    [scaled] = [r for r in growth.remedies if r.id == "scaled_residual"]
    assert [(op["op"], op["path"], op["value"]) for op in scaled.patch] == [
        ("add", "/layers/1/scale", round(1 / math.sqrt(12), 4))]
    wider = copy.deepcopy(spec)
    wider["layers"][1]["layers"][1]["out_features"] = 48
    with pytest.raises(SpecError, match="a residual branch must keep the shape"):
        check_architecture(wider, verify=False)
