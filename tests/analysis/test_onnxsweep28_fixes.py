"""onnxsweep28: a layer whose gradient is exactly 0 off the main path (attention pooling over one
time step) read healthy; key/query projections as the start of a vanishing chain; a dynamic-dims
example that does not add up; a non-standard op worded as a gap; node names."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module, check_onnx

from .onnx_models import export

# --- 1. an exactly zero gradient on a side branch (onnxsweep28 loto_gru) -------------------------


class _Pooled(nn.Module):
    """Attention pooling over the time axis: softmax(attn(h)) over the steps weighs h."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.attn, self.fc = nn.Linear(8, 32), nn.Linear(32, 1), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, 8]
        h = torch.tanh(self.enc(x))
        w = torch.softmax(self.attn(h).squeeze(-1), dim=1)
        return self.fc((h * w.unsqueeze(-1)).sum(1))


def _grads(model: nn.Module, steps: int) -> dict[str, float]:
    """The weight gradients' norms under an MSE loss, computed here by autograd (independent of the tool)."""
    model.zero_grad()
    out = model(torch.randn(16, steps, 8, dtype=torch.float64))
    ((out - torch.randn_like(out)) ** 2).mean().backward()
    return {n: float(m.weight.grad.norm()) for n, m in model.named_children()}


def _zero_findings(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code == "vanishing_gradient"
            and "attn" in (f.evidence.model_extra.get("no_gradient_layers") or [])]


def test_a_score_layer_under_a_softmax_over_one_step_is_reported_by_both_doors() -> None:
    torch.manual_seed(0)
    model = _Pooled()
    # the construction: a softmax over one element is 1, so attn gets exactly none and the rest some
    g = _grads(model.double(), 1)
    assert g["attn"] == 0.0 and g["enc"] > 0 and g["fc"] > 0
    model = model.float()
    onnx_doc = check_onnx(export(model, torch.randn(2, 1, 8)), loss="mse", verify=False)
    module_doc = check_module(model, torch.randn(4, 1, 8), loss="mse", verify=False)
    for doc in (onnx_doc, module_doc):
        [f] = _zero_findings(doc)
        assert f.severity == "warning" and doc.status != "healthy"
        assert f.evidence.model_extra["singleton_softmax"] == ["attn"]
        assert "softmax over an axis of one element" in f.explanation


def test_the_same_pooling_over_several_steps_gets_no_such_finding() -> None:
    torch.manual_seed(0)
    model = _Pooled()
    assert _grads(model.double(), 3)["attn"] > 0  # over 3 steps the scores matter
    model = model.float()
    doc = check_onnx(export(model, torch.randn(2, 3, 8)), loss="mse", verify=False)
    assert not _zero_findings(doc)
