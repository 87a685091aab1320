"""Patterns found by exporting real architectures (torchvision's zoo) through both of torch's
exporters, each rebuilt here with plain torch: the op or structure that failed, checked against
the live model or against the op's definition."""

from __future__ import annotations

import numpy as np
import torch
from onnx import helper
from torch import nn

from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import parse, unsupported
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
