"""A softmax a live module computes inside its forward (an attention's ``scores.softmax(-1)``, a
router's) is measured as a saturating unit: the share of its rows that are one-hot (max probability
> 0.99), rows with a single unmasked score (a causal mask's first row) left out. Scores multiplied
by sqrt(d) instead of divided (held-out module sweep 27, linformer_lm_nosqrt: 80.5% of the rows
one-hot against 5%) gave no saturation finding, since no measured activation unit saw them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth.analysis.graph import FunctionalOps, Tracer
from gradhealth.analysis.module_check import check_module

D, T, B = 64, 12, 8


class Attention(nn.Module):
    """One hand-written single-head self-attention block, its scores times ``scale``."""

    def __init__(self, scale: float, causal: bool = False) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.scale, self.causal = scale, causal
        self.scores: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(-2, -1) * self.scale
        if self.causal:
            mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        self.scores = scores.detach()
        return x + scores.softmax(dim=-1) @ self.v(x)


class Net(nn.Module):
    def __init__(self, scale: float, causal: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(16, D)
        self.attn = Attention(scale, causal)
        self.head = nn.Linear(D, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(self.embed(x)))


def _independent_share(scores: torch.Tensor) -> float:
    """One-hot rows among those with two unmasked scores or more, computed on its own."""
    p = torch.softmax(scores, dim=-1)
    judged = torch.isfinite(scores).sum(dim=-1) >= 2
    one_hot = (p.max(dim=-1).values > 0.99) & judged
    return float(one_hot.sum()) / float(judged.sum())


def _measured(net: Net, x: torch.Tensor) -> float:
    tracer = Tracer(net, functions=True)
    ops = FunctionalOps(tracer, net)
    try:
        with ops:
            net(x)
    finally:
        tracer.close()
    (call,) = ops.softmaxes
    one_hot, judged = call.counts.tolist()
    return one_hot / judged


def _saturation(net: nn.Module, x: torch.Tensor) -> list:  # type: ignore[type-arg]
    doc = check_module(net, x, seeds=2, verify=False)
    return [f for f in doc.findings if f.code == "saturation"]


@pytest.mark.parametrize("scale,causal", [(1 / math.sqrt(D), False), (math.sqrt(D), False),
                                          (1 / math.sqrt(D), True), (math.sqrt(D), True)])
def test_measured_share_matches_independent_computation(scale: float, causal: bool) -> None:
    torch.manual_seed(0)
    net, x = Net(scale, causal), torch.randn(B, T, 16)
    measured = _measured(net, x)
    assert net.attn.scores is not None
    assert measured == pytest.approx(_independent_share(net.attn.scores), abs=1e-12)
    if scale > 1:
        assert measured > 0.3  # scores D = 64 times too large: many rows one-hot (the warning level)
    else:
        assert measured < 0.05  # a causal first row would be one-hot: left out, so ~0


def test_scores_times_sqrt_d_is_saturation_at_the_call_site() -> None:
    torch.manual_seed(0)
    found = _saturation(Net(math.sqrt(D), causal=True), torch.randn(B, T, 16))
    assert found and found[0].severity == "warning"
    f = found[0]
    evidence = f.evidence.model_dump()
    assert evidence["called_at"].startswith("test_attention_saturation.py:")
    assert "scores.softmax(dim=-1)" in evidence["called_at"]
    assert evidence["layers"] == ["attn>softmax"]
    assert evidence["value"] >= 0.3
    assert "1/sqrt(d_head)" in f.explanation and "temperature" in f.explanation
    assert f.remedies == []  # the fix is the scores' scale at the line named, which no simulated change makes


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_attention_is_no_saturation(causal: bool) -> None:
    torch.manual_seed(0)
    assert not _saturation(Net(1 / math.sqrt(D), causal), torch.randn(B, T, 16))


class Torchs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(16, D)
        self.mha = nn.MultiheadAttention(D, 4, batch_first=True)
        layer = nn.TransformerEncoderLayer(D, 4, 128, batch_first=True, dropout=0.0)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(D, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.mha(h, h, h, need_weights=False)[0]
        return self.head(self.enc(h))


def test_torch_attention_is_no_saturation() -> None:
    torch.manual_seed(0)
    assert not _saturation(Torchs(), torch.randn(B, T, 16))


class Probabilities(nn.Module):
    """Returns a softmax of huge logits: the output's, output_loss_mismatch's business."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(16, 32), nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.out(torch.relu(self.fc(x))) * 100.0).softmax(dim=-1)


def test_output_softmax_is_not_measured() -> None:
    torch.manual_seed(0)
    assert not _saturation(Probabilities(), torch.randn(32, 16))
