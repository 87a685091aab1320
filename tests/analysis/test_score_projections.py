"""An attention's query and key projections reach its softmax through q k^T: their gradient goes
through the softmax's Jacobian and is small by design, so a run of them is no starved middle
(modsweep33 h10: hyunwoongko/transformer's Post-LN decoder queries at 1e-3 of the last layer's
read as a vanishing_gradient error). Read from the autograd graph, as the check reads it."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth.analysis.graph import Record, Role, consumers, score_projections


class _Attention(nn.Module):
    """Multi-head attention written as hyunwoongko/transformer writes it: split heads with view
    and transpose, q @ k^T / sqrt(d), masked_fill, softmax, @ v."""

    def __init__(self, d: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.heads = heads

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outs = {"q": self.q(x), "k": self.k(x), "v": self.v(x)}
        q, k, v = (self.split(outs[n]) for n in "qkv")
        score = (q @ k.transpose(2, 3)) / math.sqrt(q.shape[-1])
        score = score.masked_fill(mask == 0, -10000)
        y = (torch.softmax(score, -1) @ v).transpose(1, 2).reshape(x.shape)
        outs["o"] = self.o(y)
        return x + outs["o"], outs


def test_the_query_and_key_projections_are_the_ones_that_reach_the_softmax() -> None:
    torch.manual_seed(0)
    attn, head = _Attention(), nn.Linear(16, 3)
    x = torch.randn(2, 5, 16)
    y, outs = attn(x, torch.ones(5, 5))
    logits = head(y.mean(1))
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 2]))
    records = [Record(n, n, Role("weight", "linear"), getattr(attn, n), x, outs[n]) for n in "qkvo"]
    records.append(Record("head", "head", Role("weight", "linear"), head, y.mean(1), logits))
    found = score_projections(records, consumers(loss.grad_fn))
    # v reaches the output through softmax(...) @ v, not through the softmax; o and the head's
    # own products have a weight operand: a layer, not q k^T
    assert found == ["q", "k"]
