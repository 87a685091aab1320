"""A layer scale (ConvNeXt's, CaiT's: a residual branch multiplied by a learned per-channel vector
set to 1e-6 at initialisation) is part of the layer it scales, as a norm is. Read as a layer of
its own, the branch's last layer sits 1e-6 below the stream and the depth ratio from the stem to
the last block reads as a 1e6x "exploding gradient" on a healthy network."""

from __future__ import annotations

from typing import cast

import pytest
import torch
from torch import nn

from gradhealth.analysis.module_check import check_onnx
from tests.analysis.onnx_models import export


class LayerScale2d(nn.Module):
    """timm's LayerScale2d: a module of its own holding the vector."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(self.gamma.view(1, -1, 1, 1))


class Block(nn.Module):
    """torchvision's CNBlock, small: depthwise conv, LayerNorm over channels-last, two Linear,
    then ``layer_scale * branch`` (after the permute back) added to the stream. ``style``: how
    the scale is written: torchvision's Parameter of shape (C, 1, 1) times the branch; timm's
    ConvNeXt, ``branch.mul(self.gamma.reshape(1, -1, 1, 1))``; or timm's LayerScale2d module."""

    def __init__(self, dim: int, scale: float, style: str = "torchvision") -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        self.style = style
        if style == "module":
            self.ls = LayerScale2d(dim, scale)
        else:
            self.layer_scale = nn.Parameter(torch.full((dim, 1, 1) if style == "torchvision" else (dim,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.pw2(torch.nn.functional.gelu(self.pw1(y))).permute(0, 3, 1, 2)
        if self.style == "module":
            return x + self.ls(y)
        if self.style == "timm":
            return x + y.mul(self.layer_scale.reshape(1, -1, 1, 1))
        return x + self.layer_scale * y


def _net(scale: float, style: str = "torchvision") -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 2, stride=2), *[Block(8, scale, style) for _ in range(6)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def test_a_layer_scale_folds_into_its_layer_through_the_onnx_door() -> None:
    data = export(_net(1e-6).eval(), torch.randn(2, 3, 16, 16))
    doc = check_onnx(data, seeds=1, verify=False)
    assert "exploding_gradient" not in {f.code for f in doc.findings}, doc.summary
    units = {u.name: u for u in doc.layers}
    stem = doc.layers[0].output_grad_norm
    last_pw2 = [u for name, u in units.items() if name.endswith("pw2")][-1]
    last_pw1 = [u for name, u in units.items() if name.endswith("pw1")][-1]
    # after the scale: the stream's gradient, of the stem's order; before it: 1e-6 of that
    assert 0.05 < last_pw2.output_grad_norm / stem < 20
    assert last_pw2.output_grad_norm / last_pw1.output_grad_norm > 1e4


def test_a_scalar_multiply_is_not_a_layer_scale() -> None:
    # x * 0.5 (a decomposed GELU, attention's 1/sqrt(d)) stays arithmetic, not part of the layer:
    # only a stored vector of per-channel scales is one
    class Half(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * 0.5

    from gradhealth.analysis.graph import role_of
    from gradhealth.analysis.importers.onnx import import_onnx

    net = nn.Sequential(Half(), nn.ReLU(), nn.Linear(8, 3))
    imported = import_onnx(export(net.eval(), torch.randn(2, 8)), batch_size=2)
    assert all(role_of(op).type != "layerscale" for op in imported.module.ops)
    scaled = import_onnx(export(_net(1e-6).eval(), torch.randn(2, 3, 16, 16)), batch_size=2)
    assert sum(role_of(op).type == "layerscale" for op in scaled.module.ops) == 6


@pytest.mark.parametrize("style", ["torchvision", "timm", "module"])
def test_a_layer_scale_parameter_folds_into_its_layer_in_a_live_module(style: str) -> None:
    # torchvision's CNBlock multiplies by a Parameter of the block, not a module: the live door
    # sees the multiply itself, also through a reshape of the vector; a module that multiplies
    # its input by its one vector is a layer scale too
    from gradhealth.analysis.module_check import check_module

    doc = check_module(_net(1e-6, style), torch.randn(4, 3, 16, 16), seeds=1, verify=False)
    assert "exploding_gradient" not in {f.code for f in doc.findings}, doc.summary
    units = {u.name: u for u in doc.layers}
    stem = doc.layers[0].output_grad_norm
    assert 0.05 < units["6.pw2"].output_grad_norm / stem < 20
    assert units["6.pw2"].output_grad_norm / units["6.pw1"].output_grad_norm > 1e4
    # the ONNX door and the live door read the scaled layers the same way (pw1 is left out: the
    # ONNX door measures it after its GELU, which the file has as nodes and the live module calls
    # as a function no hook sees)
    onnx_doc = check_onnx(export(_net(1e-6).eval(), torch.randn(4, 3, 16, 16)), seeds=1, verify=False)
    live = {u.name: u.output_grad_norm for u in doc.layers if not u.name.endswith("pw1")}
    assert {u.name: u.output_grad_norm for u in onnx_doc.layers if u.name in live} == pytest.approx(
        live, rel=1e-6)


class MetaBlock(nn.Module):
    """timm's PoolFormer block: x + ls1(pool(norm1(x)) - norm1(x)), then x + ls2(mlp(norm2(x))),
    both branches scaled by 1e-5 at init."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(1, dim), nn.GroupNorm(1, dim)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.ls1, self.ls2 = LayerScale2d(dim, 1e-5), LayerScale2d(dim, 1e-5)
        self.fc1, self.fc2 = nn.Conv2d(dim, 4 * dim, 1), nn.Conv2d(4 * dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.ls1(self.pool(y) - y)
        return x + self.ls2(self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x)))))


@pytest.mark.parametrize("stem_norm", [False, True])
def test_a_norm_that_shares_its_layers_output_with_the_stream_is_not_part_of_that_layer(stem_norm: bool) -> None:
    # The first block's norm reads the stem's output (or the output of the stem's own norm,
    # timm's FocalNet), which also goes down the stream: the stem's gradient is the stream's, not
    # 1e-5 of it (read after the block's norm, it was, and a healthy PoolFormer read as a 4e5x
    # vanishing gradient, FocalNet as 8e4x). The stem's own norm, which only it reads, stays its.
    from gradhealth.analysis.module_check import check_module

    torch.manual_seed(0)
    stem = [nn.Conv2d(3, 8, 4, stride=4), *([nn.GroupNorm(1, 8)] if stem_norm else [])]
    net = nn.Sequential(*stem, *[MetaBlock(8) for _ in range(4)],
                        nn.GroupNorm(1, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    doc = check_module(net, torch.randn(4, 3, 16, 16), seeds=1, verify=False)
    assert "vanishing_gradient" not in {f.code for f in doc.findings}, doc.summary
    units = {u.name: u for u in doc.layers}
    first = str(len(stem))  # the first block's index
    # dL/dx0 = dL/dx1 + (paths through branches scaled by 1e-5): the stem's output gradient is
    # the first block's, which its fc2 (with the layer scale folded in) writes to
    assert units["0"].output_grad_norm == pytest.approx(units[f"{first}.fc2"].output_grad_norm, rel=1e-3)
    assert units["0"].normalised is stem_norm


class LayerScale(nn.Module):
    """timm's LayerScale: the input times a learned vector over the last axis."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class ViTBlock(nn.Module):
    """A pre-norm Transformer block with single-head attention, DeiT III's layer scales."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.ls1, self.ls2 = LayerScale(dim, init), LayerScale(dim, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        x = x + self.ls1(self.proj(attn @ v))
        return x + self.ls2(self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x)))))


class ClassTokenViT(nn.Module):
    """Patch embedding, a class token, blocks, and a head that reads the class token only."""

    def __init__(self, init: float, depth: int = 4, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(12, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*[ViTBlock(dim, init) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(x)], dim=1)
        return cast(torch.Tensor, self.head(self.norm(self.blocks(x))[:, 0]))


def test_a_class_token_reached_through_small_layer_scales_is_a_note_not_a_vanishing_gradient() -> None:
    # The head reads the class token; the patch tokens reach it only through attention branches
    # scaled by 1e-6, so the embedding's gradient is about a millionth of the class token's. The
    # scales are learned gates with full-sized gradients of their own: re-simulated with them at
    # 1 the network is healthy, so the finding is a note.
    from gradhealth.analysis.module_check import check_module

    x = torch.randn(8, 6, 12)
    torch.manual_seed(0)
    doc = check_module(ClassTokenViT(1e-6), x, seeds=1, verify=False)
    (finding,) = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert finding.severity == "info" and doc.status == "healthy"
    evidence = finding.evidence.model_dump()
    assert evidence["gated_by_layer_scales"] is True
    assert evidence["layer_scales"] == 8 and evidence["largest_layer_scale"] == pytest.approx(1e-6)
    # the gradient ratio it reports is real: about the scale itself (one attention hop of 1e-6)
    assert 1e-8 < evidence["grad_ratio"] < 1e-4
    assert evidence["value_with_layer_scales_at_1"] > 1e-2
    # the same network with its scales at 1 has no finding to note at all
    torch.manual_seed(0)
    opened = check_module(ClassTokenViT(1.0), x, seeds=1, verify=False)
    assert "vanishing_gradient" not in {f.code for f in opened.findings}
    # the ONNX door reads the exported scales (stored constants) the same way
    torch.manual_seed(0)
    onnx_doc = check_onnx(export(ClassTokenViT(1e-6).eval(), x), seeds=1, verify=False)
    (onnx_finding,) = [f for f in onnx_doc.findings if f.code == "vanishing_gradient"]
    assert onnx_finding.severity == "info" and onnx_finding.evidence.model_dump()["gated_by_layer_scales"] is True


def test_layer_scales_do_not_excuse_a_network_that_vanishes_with_them_open() -> None:
    # the same class-token network under a deep sigmoid embedding: open scales do not help it
    from gradhealth.analysis.module_check import check_module

    class Deep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pre = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(12, 12), nn.Sigmoid())])
            self.vit = ClassTokenViT(1e-6, depth=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return cast(torch.Tensor, self.vit(self.pre(x)))

    torch.manual_seed(0)
    doc = check_module(Deep(), torch.randn(8, 6, 12), seeds=1, verify=False)
    (finding,) = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert finding.severity == "error" and "gated_by_layer_scales" not in finding.evidence.model_dump()
