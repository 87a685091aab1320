"""Issue #12 (speed), fixCK: the packed q/k/v projection's per-slice gradient norms (``_zero_slices``,
modsweep48 ppmgcn_miltrans) come from the simulation's own backward of each seed, not from one more
forward and backward a seed of their own."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhealth import check_module

D = 16


def _encoder() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, 2, 32, dropout=0.0, batch_first=True)
    return nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Flatten(),
                         nn.Linear(6 * D, 3))


def _attention_calls(seeds: int) -> int:
    """The forward calls the first attention module gets in a check of ``seeds`` seeds (its copies
    carry the counting hook: a module's hooks are copied with it)."""
    calls = [0]

    def count(module: nn.Module, args: Any) -> None:
        calls[0] += 1

    net = _encoder()
    net[0].layers[0].self_attn.register_forward_pre_hook(count)
    # a batch of 8: no further forward-only draws for dead units (those run under a batch of 8)
    check_module(net, torch.randn(8, 6, D), seeds=seeds, verify=False)
    return calls[0]


def test_each_seed_runs_the_attention_forward_once() -> None:
    # the passes made once a check (the sharpness estimate, the own-dtype overflow probe) cancel out:
    # what each further seed adds is its one instrumented forward and backward, nothing more
    one, three = _attention_calls(1), _attention_calls(3)
    assert three - one == 2


def test_the_slice_norms_are_the_simulations_backward() -> None:
    """The norms read are those autograd gives the packed projection for the seed's batch and loss:
    one seed of a bare attention over (N, 1, D) (a singleton key axis) gives Q and K exactly 0, and V
    the norm of dL/dW_v computed independently on the same copy."""

    class Single(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(D, 4, batch_first=True)
            self.head = nn.Linear(D, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.unsqueeze(1)
            return self.head(self.mha(y, y, y)[0].squeeze(1))

    torch.manual_seed(0)
    net = Single().double()
    x = torch.randint(-2, 3, (10, D)).to(torch.float64)
    doc = check_module(net, x, loss="sum", seeds=1, verify=False)
    found = next(f for f in doc.findings if (f.evidence.model_extra or {}).get("zero_slices"))
    norms = (found.evidence.model_extra or {})["slice_grad_norms"]
    net.zero_grad()
    net(x).sum().backward()
    w, b = net.mha.in_proj_weight.grad, net.mha.in_proj_bias.grad
    assert w is not None and b is not None
    v = float((w.chunk(3)[2].pow(2).sum() + b.chunk(3)[2].pow(2).sum()).sqrt())
    assert norms["mha.in_proj_weight[q]"] == 0.0 and norms["mha.in_proj_weight[k]"] == 0.0
    assert abs(norms["mha.in_proj_weight[v]"] - v) <= 1e-9 * v
