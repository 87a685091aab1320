"""What the fourteenth live-module sweep found: a projection of a learned query (the same for every
sample) was read as the first layer of a path of its own, whose tiny gradient gave a false vanishing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module


class _LearnedQuery(nn.Module):
    """An encoder, then a decoder whose query is a learned token attending to the encoder's outputs
    (Perceiver IO's output query, DETR's object queries): the query's projection gets its gradient
    only through the attention's softmax logits, small when the keys are alike."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.enc = nn.ModuleList(nn.Linear(width, width) for _ in range(3))
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.mlp = nn.ModuleList(nn.Linear(width, width) for _ in range(2))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.enc:
            h = h + F.relu(layer(h))
        q = self.q(self.query.expand(x.shape[0], -1, -1))
        att = torch.softmax(q @ self.k(h).transpose(1, 2) / h.shape[-1] ** 0.5, -1)
        y = (att @ self.v(h)).squeeze(1)
        for layer in self.mlp:
            y = y + F.relu(layer(y))
        return self.head(y)


def test_a_layer_reading_the_same_learned_query_for_every_sample_starts_no_path() -> None:
    torch.manual_seed(0)
    model, x = _LearnedQuery(), torch.randn(16, 12, 32)
    with torch.no_grad():
        model.k.weight.mul_(1e-4)  # keys nearly alike: the query's projection gets almost no gradient
    doc = check_module(model, x, seeds=2, verify=False)
    grads = {layer.name: layer.output_grad_norm for layer in doc.layers}
    assert grads["q"] < 1e-3 * grads["head"]  # the fact the false alarm came from
    assert not [f for f in doc.findings if f.code == "vanishing_gradient"]
