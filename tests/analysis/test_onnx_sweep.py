"""Patterns found by exporting real architectures (torchvision's zoo) through both of torch's
exporters, each rebuilt here with plain torch: the op or structure that failed, checked against
the live model or against the op's definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import helper
from torch import nn

from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import parse, unsupported
from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import export
from tests.analysis.test_onnx_ops import _run


class ShiftedWindowMask(nn.Module):
    """Swin's attention mask: a zero tensor whose slices are assigned in place (ScatterND in
    the TorchScript exporter's file), then added to the scores."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(x.shape[1], x.shape[2])
        count = 0
        for rows in (slice(0, 2), slice(2, 4)):
            for cols in (slice(0, 3), slice(3, 6)):
                mask[rows, cols] = count
                count += 1
        y = self.fc(x) + mask
        y = y.clone()
        y[:, 1:3] = y[:, 1:3] * 2.0  # in-place assignment of a computed slice
        return y


def test_slice_assignment_runs_as_the_model_does() -> None:
    torch.manual_seed(0)
    model = ShiftedWindowMask()
    x = torch.randn(3, 4, 6)
    data = export(model, x, opset=17)
    assert "ScatterND" in {n.op_type for n in parse(data).graph.node}
    assert unsupported(parse(data)) == []
    graph = import_onnx(data).module.double()
    xd = x.double().requires_grad_(True)
    out = graph(xd)
    ref_x = x.double().requires_grad_(True)
    ref = model.double()(ref_x)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    (out ** 2).sum().backward()
    (ref ** 2).sum().backward()
    torch.testing.assert_close(xd.grad, ref_x.grad, rtol=1e-9, atol=1e-9)


def test_scatter_nd_reductions_match_the_operator_definition() -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 3)).astype(np.float32)
    idx = np.array([[2], [0], [2]], np.int64)  # row 2 twice: add accumulates both
    upd = rng.standard_normal((3, 3)).astype(np.float32)
    for reduction in ("none", "add", "mul"):
        node = helper.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction=reduction)
        if reduction == "none":  # repeated indices are undefined without a reduction
            i, u = idx[:2], upd[:2]
        else:
            i, u = idx, upd
        got = _run(node, {"d": data}, {"i": i, "u": u}, [4, 3])
        want = data.astype(np.float64).copy()
        for k, row in enumerate(i[:, 0]):  # the ONNX reference's loop
            if reduction == "none":
                want[row] = u[k]
            elif reduction == "add":
                want[row] += u[k]
            else:
                want[row] *= u[k]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


class NarrowingConvBN(nn.Module):
    """A MobileNet-like stack of conv + BatchNorm + ReLU6 blocks (nested Sequentials, as
    torchvision's ``features``) with convolutions drawn far too small: BatchNorm is what keeps its
    activations at unit scale, so without it the gradient to the first layer vanishes."""

    def __init__(self, depth: int = 8) -> None:
        super().__init__()
        blocks = []
        for _ in range(depth):
            conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            nn.init.normal_(conv.weight, std=0.02)  # ~1/4 of He: x0.25 per layer without a norm
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(8), nn.ReLU6()))
        self.stem = nn.Conv2d(3, 8, 1)
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.stem(x)).mean(dim=(2, 3)))


def test_a_batchnorm_folded_by_an_inference_export_is_restored() -> None:
    """torch's eval-mode export folds each BatchNorm into its convolution: the file is then a
    network without normalisation, whose activations shrink ~4x per block. The ONNX door restores
    the norms, and measures what the live model (BatchNorm in training mode) measures."""
    torch.manual_seed(0)
    model = NarrowingConvBN().eval()
    x = torch.randn(4, 3, 8, 8)
    data = export(model, x, opset=17)
    ops = [n.op_type for n in parse(data).graph.node]
    assert "BatchNormalization" not in ops  # folded by the exporter
    imported = import_onnx(data)
    assert imported.restored_norms == [f"features.{i}.0" for i in range(8)]  # named as the model's

    live = check_module(model, x, seeds=2, verify=False)
    onnx_doc = check_onnx(data, seeds=2, verify=False)
    assert [f.code for f in live.findings] == [] and onnx_doc.status == live.status
    ours = {lay.name: lay for lay in onnx_doc.layers}
    for lay in live.layers:
        if lay.name.startswith("features."):
            # the folded conv's weight is W / sqrt(1 + eps): equal to the model's to 1e-5
            assert ours[lay.name].output_grad_norm == pytest.approx(lay.output_grad_norm, rel=1e-3)
            assert ours[lay.name].activation_std == pytest.approx(lay.activation_std, rel=1e-3)


def test_without_the_restored_norm_the_same_file_would_vanish() -> None:
    """The control: the same stack without BatchNorm really vanishes, and its file (nothing
    folded: the convolutions keep their names) is not given norms it never had."""
    torch.manual_seed(0)
    model = NarrowingConvBN().eval()
    for block in model.features:
        block[1] = nn.Identity()
    x = torch.randn(4, 3, 8, 8)
    data = export(model, x, opset=17)
    assert import_onnx(data).restored_norms == []
    doc = check_onnx(data, seeds=2, verify=False)
    assert "vanishing_gradient" in [f.code for f in doc.findings]
    first, last = doc.layers[1], doc.layers[-2]
    # backwards through 7 blocks of x0.25-ish: the ratio is far below the 1e-3 threshold's scale
    assert first.output_grad_norm / last.output_grad_norm < 1e-3


def test_weights_saved_beside_the_file_are_read_from_its_folder(tmp_path: Path) -> None:
    """torch's default export writes the tensors to ``model.onnx.data`` beside the model: a path
    given to the check reads them from the file's folder; a location outside it is not read."""
    import onnx

    from gradhealth.analysis.importers import ModelError
    from gradhealth.library import check_onnx as check_path

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    data = export(model, torch.randn(4, 6), opset=17)
    proto = onnx.load_from_string(data)
    onnx.save_model(proto, str(tmp_path / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=0)
    assert (tmp_path / "m.onnx.data").stat().st_size >= 4 * (6 * 16 + 16 * 3)
    inline = check_onnx(data, seeds=1, verify=False)
    with pytest.raises(ModelError, match="--external-data"):  # never followed unless asked
        check_path(tmp_path / "m.onnx", seeds=1, verify=False)
    beside = check_path(tmp_path / "m.onnx", seeds=1, verify=False, external_data=True)
    assert [lay.grad_norm for lay in beside.layers] == [lay.grad_norm for lay in inline.layers]

    outside = tmp_path / "sub"
    outside.mkdir()
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../m.onnx.data"
    (outside / "m.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match="external data"):
        check_path(outside / "m.onnx", seeds=1, verify=False, external_data=True)
