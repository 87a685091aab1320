"""modsweep48 fixes. Problem 1 (below): zero-gradient slices of a packed q/k/v projection. Wording 1: a Post-LN stack's "lower the learning rate + warm-up" remedy was tagged
"a change to the model's code the check cannot make on a copy"; an optimizer/schedule change is a
change to the training configuration (``unverified="training_time"``), whatever finding proposes it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth import check_module
from gradhealth.core import remedies as R
from gradhealth.report import render


def _post_ln() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=False)
    return nn.Sequential(nn.TransformerEncoder(layer, 8, enable_nested_tensor=False), nn.Linear(32, 10))


def test_a_rate_and_warmup_remedy_is_a_training_change_not_a_model_code_change() -> None:
    model = _post_ln()
    doc = check_module(model, torch.randn(4, 16, 32), seeds=1, verify=False,
                       optimizer=torch.optim.AdamW(model.parameters(), lr=3e-4))
    [post_ln] = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    rate = next(r for r in post_ln.remedies if r.id == "lower_learning_rate")
    assert rate.unverified == "training_time"
    text = render("text", doc)
    line = next(ln for ln in text.splitlines() if "lower_learning_rate" in ln or "warm-up" in ln.lower())
    assert "model's code" not in line


def test_the_unmeasured_reason_follows_the_remedy_kind() -> None:
    for rid in ("lower_learning_rate", "raise_learning_rate", "gradient_clipping", "weight_decay"):
        assert R.unmeasured_reason(rid) == "training_time"
    for rid in ("pre_layer_norm", "residual_connections", "layer_norm"):
        assert R.unmeasured_reason(rid) == "not_simulable"


# --- problem 1: a packed q/k/v projection's zero slices (ppmgcn_miltrans) ---------------------------
# nn.MultiheadAttention packs Q, K and V into one in_proj_weight; attention over sequences of length 1
# (batch_first=False fed x.unsqueeze(0)) gives Q and K exactly no gradient (softmax over one key is 1),
# which the one norm over the packed tensor hid: the model read HEALTHY.

D = 16


class _Bag(nn.Module):
    """A transformer over a bag of N instances, its input laid out as ``layout`` says."""

    def __init__(self, batch_first: bool, layout: str) -> None:
        super().__init__()
        self.attn = nn.TransformerEncoderLayer(D, 2, 32, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(D, 3)
        self.layout = layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "unsqueeze0":  # (N, D) -> (1, N, D)
            return self.head(self.attn(x.unsqueeze(0)).squeeze(0))
        if self.layout == "unsqueeze1":  # (N, D) -> (N, 1, D)
            return self.head(self.attn(x.unsqueeze(1)).squeeze(1))
        return self.head(self.attn(x).mean(dim=0))  # (seq, batch, D) as given


def _levels(*shape: int) -> torch.Tensor:
    """A few levels, which the check uses as given: autograd by hand reads the very batch it does."""
    return torch.randint(-2, 3, shape).to(torch.float64)


def _slices_by_autograd(net: _Bag, x: torch.Tensor) -> dict[str, float]:
    """||dL/d in_proj (weight and bias rows)|| per q/k/v third, loss the sum of the output."""
    net.zero_grad()
    net(x).sum().backward()
    w, b = net.attn.self_attn.in_proj_weight.grad, net.attn.self_attn.in_proj_bias.grad
    assert w is not None and b is not None
    return {s: float((w.chunk(3)[k].pow(2).sum() + b.chunk(3)[k].pow(2).sum()).sqrt())
            for k, s in enumerate("qkv")}


def _check(net: nn.Module, x: torch.Tensor) -> gradhealth.Diagnosis:
    return check_module(net, x, loss="sum", seeds=1, verify=False)


def _sliced(doc: gradhealth.Diagnosis):  # type: ignore[no-untyped-def]
    return next((f for f in doc.findings if (f.evidence.model_extra or {}).get("zero_slices")), None)


def test_attention_over_length_one_gives_q_and_k_no_gradient_and_is_found() -> None:
    torch.manual_seed(0)
    net = _Bag(batch_first=False, layout="unsqueeze0").double()
    x = _levels(12, D)
    by_hand = _slices_by_autograd(net, x)
    # the theory: softmax over 1 key gives q and k exactly 0; float64 kernels leave round-off on some CPUs
    # (7.9e-16 against v's ~1 on an AMD EPYC), which the check counts as none (_ZERO_SLICE_SHARE)
    assert by_hand["v"] > 0 and by_hand["q"] <= 1e-12 * by_hand["v"] and by_hand["k"] <= 1e-12 * by_hand["v"]
    doc = _check(net, x)
    found = _sliced(doc)
    assert found is not None and found.severity in ("warning", "error") and doc.status != "healthy"
    extra = found.evidence.model_extra or {}
    assert extra["zero_slices"] == ["attn.self_attn.in_proj_weight[q]", "attn.self_attn.in_proj_weight[k]"]
    norms = extra["slice_grad_norms"]
    assert norms["attn.self_attn.in_proj_weight[v]"] == pytest.approx(by_hand["v"], rel=1e-6)
    # the cause, where it can be read: the axis attended over, its length, the layout remedy
    assert (extra["attended_axis"], extra["attended_length"], extra["batch_first"]) == (0, 1, False)
    assert "length 1" in found.summary and "axis 0" in found.summary
    assert "batch_first=True" in found.explanation and "(seq, batch, feature)" in found.explanation
    assert found.remedies == []  # no change on a copy: the explanation names the fix


def test_batch_first_fed_a_sequence_of_one_is_read_on_its_own_axis() -> None:
    torch.manual_seed(0)
    net = _Bag(batch_first=True, layout="unsqueeze1").double()
    x = _levels(12, D)
    by_hand = _slices_by_autograd(net, x)
    assert by_hand["q"] <= 1e-12 * by_hand["v"]  # none, up to float64 round-off
    found = _sliced(_check(net, x))
    assert found is not None
    extra = found.evidence.model_extra or {}
    assert (extra["attended_axis"], extra["attended_length"], extra["batch_first"]) == (1, 1, True)


def test_attention_over_eight_positions_has_no_zero_slice() -> None:
    torch.manual_seed(0)
    net = _Bag(batch_first=False, layout="seq").double()
    x = _levels(8, 6, D)  # (seq 8, batch 6, D)
    by_hand = _slices_by_autograd(net, x)
    assert min(by_hand.values()) > 0
    doc = _check(net, x)
    assert _sliced(doc) is None
    assert not any(f.code == "vanishing_gradient" and f.severity != "info" for f in doc.findings)
