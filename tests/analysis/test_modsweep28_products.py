"""Products of one weight of the model's with one activation, the weight on either side and at
any rank, are layers measured as a Linear is (msweep28 capsnet_w1: a capsule layer computes
``torch.matmul(self.weight, u[:, None, :, :, None])`` with a 4-D weight first; read as no layer,
its gradient-to-weight ratio falling from 1.4e-3 to 7e-6 under a std-1.0 init went unmeasured).

Each gradient norm is checked against autograd on the parameter itself, on the check's own
synthetic batch (standard normal float64 from the seed's generator) and its ``sum`` loss."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gradhealth import check_module


def _param_grad_norm(model: nn.Module, shape: tuple[int, ...], name: str) -> float:
    """||dL/dW|| for the parameter ``name``, L = sum of the output, on seed 0's batch: the check
    draws it as ``torch.randn(shape, generator=Generator().manual_seed(10_000), float64)``."""
    twin = copy.deepcopy(model).double()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(10_000), dtype=torch.float64)
    twin(x).sum().backward()
    grad = dict(twin.named_parameters())[name].grad
    assert grad is not None
    return float(grad.norm())


class _Capsules(nn.Module):
    """A stem making 6 input capsules of 8, a capsule layer W [3, 6, 5, 8] applied weight first,
    ``W[j, i] @ u[i]`` for each output capsule j (no routing: a plain sum over i), and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(12, 6 * 8)
        self.weight = nn.Parameter(0.1 * torch.randn(3, 6, 5, 8))
        self.head = nn.Linear(3 * 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(self.stem(x)).view(x.shape[0], 6, 8)
        u_hat = torch.squeeze(torch.matmul(self.weight, u[:, None, :, :, None]), dim=-1)  # [B, 3, 6, 5]
        return self.head(u_hat.sum(dim=2).flatten(1))


def test_a_weight_first_4d_capsule_product_is_a_layer_with_the_parameters_gradient() -> None:
    torch.manual_seed(0)
    model = _Capsules()
    doc = check_module(model, torch.randn(16, 12), loss="sum", seeds=1, verify=False)
    layers = {layer.name: layer for layer in doc.layers}
    assert list(layers) == ["stem", "weight", "head"]
    caps = layers["weight"]
    # fan-in: the contracted capsule dimension (8); fan-out: 5 per output capsule, times the 3
    # output capsules the input is broadcast over; the 6 input capsules are groups
    assert (caps.type, caps.fan_in, caps.fan_out) == ("linear", 8, 3 * 5)
    assert caps.grad_norm == pytest.approx(_param_grad_norm(model, (16, 12), "weight"), rel=1e-9)


class _EinsumHeads(nn.Module):
    """A per-head projection written ``einsum("bhni,hoi->bhon")``: the weight second, its output
    units on the second-last axis (neither last nor second)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(10, 4 * 8)
        self.w = nn.Parameter(torch.randn(4, 6, 8) / 8**0.5)
        self.head = nn.Linear(4 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x)).view(x.shape[0], x.shape[1], 4, 8).transpose(1, 2)  # [B, heads, n, 8]
        y = torch.einsum("bhni,hoi->bhon", h, self.w)  # [B, heads, 6, n]
        return self.head(y.mean(-1).flatten(1))


def test_an_einsum_with_the_weight_second_is_a_layer_with_the_parameters_gradient() -> None:
    torch.manual_seed(0)
    model = _EinsumHeads()
    doc = check_module(model, torch.randn(4, 7, 10), loss="sum", seeds=1, verify=False)
    layers = {layer.name: layer for layer in doc.layers}
    assert list(layers) == ["stem", "w", "head"]
    assert (layers["w"].fan_in, layers["w"].fan_out) == (8, 6)
    assert layers["w"].grad_norm == pytest.approx(_param_grad_norm(model, (4, 7, 10), "w"), rel=1e-9)


class _Bmm(nn.Module):
    """``torch.bmm(W.expand(B, -1, -1), h)``: a [out, in] weight expanded over the batch, first."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(5, 9)
        self.w = nn.Parameter(torch.randn(7, 9) / 3.0)
        self.head = nn.Linear(7, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.stem(x)).transpose(1, 2)  # [B, 9, n]
        y = torch.bmm(self.w.expand(x.shape[0], -1, -1), h)  # [B, 7, n]: a 1x1 convolution
        return self.head(torch.tanh(y).transpose(1, 2))


def test_a_bmm_with_an_expanded_weight_first_is_a_layer_with_the_parameters_gradient() -> None:
    torch.manual_seed(0)
    model = _Bmm()
    doc = check_module(model, torch.randn(6, 11, 5), loss="sum", seeds=1, verify=False)
    layers = {layer.name: layer for layer in doc.layers}
    assert list(layers) == ["stem", "w", "head"]
    assert (layers["w"].fan_in, layers["w"].fan_out) == (9, 7)
    # the parameter's gradient sums the batch copies' (not the expanded tensor's, 6 slices apart)
    assert layers["w"].grad_norm == pytest.approx(_param_grad_norm(model, (6, 11, 5), "w"), rel=1e-9)


def test_a_product_of_a_weight_with_the_input_itself_is_not_read_as_an_expanded_weight() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.s = nn.Parameter(torch.ones(5))
            self.w = nn.Parameter(torch.randn(4, 5) / 5**0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # x * s: one parameter and the input (no gradient of its own), more values than s: an
            # activation, not s expanded; so w alone is the product's weight
            return torch.matmul(self.w, (x * self.s).unsqueeze(-1))

    torch.manual_seed(0)
    doc = check_module(Scaled(), torch.randn(8, 5), loss="sum", seeds=1, verify=False)
    assert [(layer.name, layer.fan_in, layer.fan_out) for layer in doc.layers] == [("w", 5, 4)]
