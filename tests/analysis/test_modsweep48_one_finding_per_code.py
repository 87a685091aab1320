"""modsweep48: one model, one finding per code. A zero packed q/k/v slice (module_check) and a depth
ratio (rules) were two vanishing_gradient findings on one model; they are one, the most severe
leading and carrying the other's summary and evidence (``merged``)."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.findings import Detection, merge_same_code

D = 16


def _det(severity: str, summary: str, **evidence: object) -> Detection:
    return Detection("vanishing_gradient", severity, "m", 0.0, summary, summary + ".", dict(evidence))


def test_one_finding_per_code_the_most_severe_leads_and_carries_the_others() -> None:
    depth = _det("warning", "gradient shrinks 317x", depth=6)
    sliced = _det("error", "no gradient reaches attn.in_proj_weight[q]", zero_slices=["attn.in_proj_weight[q]"])
    other = Detection("dead_units", "warning", "m", 0.5, "dead", "dead.", {})
    merged = merge_same_code([depth, other, sliced])
    assert [d.code for d in merged] == ["vanishing_gradient", "dead_units"]
    lead = merged[0]
    assert lead.severity == "error" and lead.evidence["zero_slices"] == ["attn.in_proj_weight[q]"]
    assert lead.summary == "no gradient reaches attn.in_proj_weight[q]; also: gradient shrinks 317x"
    assert lead.evidence["merged"] == [{"severity": "warning", "summary": "gradient shrinks 317x", "depth": 6}]
    assert merge_same_code([depth, other]) == [depth, other]


class _DeepBag(nn.Module):
    """A deep sigmoid stack (a vanishing depth ratio) before a TransformerEncoderLayer fed
    x.unsqueeze(0) without batch_first (softmax over one key: q and k slices get exactly 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = nn.Sequential(*(m for _ in range(8) for m in (nn.Linear(D, D), nn.Sigmoid())))
        self.attn = nn.TransformerEncoderLayer(D, 2, dim_feedforward=32, dropout=0.0)
        self.head = nn.Linear(D, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(self.stack(x).unsqueeze(0)).squeeze(0))


def test_zero_slice_and_depth_ratio_are_one_vanishing_gradient_finding() -> None:
    torch.manual_seed(0)
    net = _DeepBag().double()
    x = torch.randn(12, D, dtype=torch.float64)
    net(x).sum().backward()
    w = net.attn.self_attn.in_proj_weight.grad
    # the theory: softmax over one key gives q none, up to float64 round-off (1e-16 of v's on some CPUs)
    assert w is not None and float(w.chunk(3)[0].norm()) <= 1e-12 * float(w.chunk(3)[2].norm())
    doc = check_module(net, x, loss="sum", seeds=1, verify=False)
    found = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert len(found) == 1
    extra = found[0].evidence.model_extra or {}
    carried = [extra, *extra.get("merged", [])]
    assert any(e.get("zero_slices") for e in carried)
    assert any(e.get("metric", found[0].evidence.metric) != "packed_slice_grad_norm" for e in carried)
