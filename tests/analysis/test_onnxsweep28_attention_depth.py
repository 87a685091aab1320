"""onnxsweep28 qs_attention: a vanishing_gradient depth chain started at an attention's key
projection (whose small gradient comes through the softmax's Jacobian and the 1/sqrt(d_k) scale,
not through depth) and counted the parallel query/key/value projections of one block as successive
layers ("8 layers, 7 steps" for two attention blocks and two dense layers). modsweep48: one model,
one finding per code (a zero packed slice and a depth ratio were two vanishing_gradient findings)."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth import check_module

D, T = 16, 24


class _Attention(nn.Module):
    """Single-head self-attention written with three Linear projections and a softmax (a Keras
    MultiHeadAttention as tf2onnx writes it: query, key, value, output), no residual."""

    def __init__(self, qk_scale: float = 1.0) -> None:
        super().__init__()
        self.query, self.key, self.value, self.out = (nn.Linear(D, D) for _ in range(4))
        with torch.no_grad():
            self.query.weight.mul_(qk_scale)
            self.key.weight.mul_(qk_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1)
        return self.out(weights @ v)


class _Net(nn.Module):
    def __init__(self, blocks: int, qk_scale: float = 1.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Attention(qk_scale) for _ in range(blocks))
        self.dense = nn.Linear(D, D)
        self.head = nn.Linear(D, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(torch.relu(self.dense(x.mean(dim=1))))


def _vanishing(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code == "vanishing_gradient"]


def _by_hand(net: _Net, x: torch.Tensor) -> dict[str, float]:
    """||dL/d output|| of each projection by autograd, loss the sum of the output."""
    outs: dict[str, torch.Tensor] = {}

    def keep(name: str):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, _i: object, o: torch.Tensor) -> None:
            o.retain_grad()
            outs[name] = o
        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    net(x).sum().backward()
    for h in hooks:
        h.remove()
    return {n: float(o.grad.norm()) for n, o in outs.items() if o.grad is not None}


def test_key_projection_behind_softmax_is_not_the_first_layer_of_a_depth_chain() -> None:
    torch.manual_seed(0)
    net = _Net(blocks=2, qk_scale=0.05).double()
    x = torch.randn(4, T, D, dtype=torch.float64)
    grads = _by_hand(net, x)
    # the theory: the query/key projections' gradient is small through the near-uniform softmax
    # (scores ~0 at this scale), the value projection's is not
    assert grads["blocks.0.key"] < 0.01 * grads["dense"] < grads["blocks.0.value"]
    doc = check_module(net, x, loss="sum", seeds=1, verify=False)
    for f in _vanishing(doc):
        assert f.evidence.layers is not None
        assert not f.evidence.layers[0].startswith(("blocks.0.key", "blocks.0.query")), f.summary
        for r in f.remedies:  # no BatchNorm after a query or key projection
            if r.id == "batch_norm":
                assert "key" not in r.change and "query" not in r.change, r.change


def test_parallel_projections_of_one_block_count_as_one_step_and_deep_attention_still_vanishes() -> None:
    # six attention blocks with no residual, every weight scaled down: a real depth-compounding shrink
    torch.manual_seed(0)
    blocks = 6
    net = _Net(blocks=blocks).double()
    with torch.no_grad():
        for b in net.blocks:
            b.value.weight.mul_(0.3)
            b.out.weight.mul_(0.3)
    x = torch.randn(4, T, D, dtype=torch.float64)
    grads = _by_hand(net, x)
    assert grads["blocks.0.value"] < 0.01 * grads["dense"]  # the theory holds: it does vanish
    doc = check_module(net, x, loss="sum", seeds=1, verify=False)
    found = _vanishing(doc)
    assert len(found) == 1 and found[0].severity in ("warning", "error")
    extra = found[0].evidence.model_extra or {}
    assert found[0].evidence.layers == ["blocks.0.value", "dense"]
    # the longest path: value -> out in each block, then dense; 2 layers a block and 1, not 4 a block
    assert extra["depth"] == 2 * blocks + 1
    # its structural remedies name no query/key projection: a norm after q or k changes what the scores
    # mean, and a skip x + q(x) around one is no path around the block
    structural = [r for r in found[0].remedies if r.id in ("batch_norm", "residual_connections")]
    assert {r.id for r in structural} == {"batch_norm", "residual_connections"}
    assert not any(".query" in r.change or ".key" in r.change for r in structural), [r.change for r in structural]
