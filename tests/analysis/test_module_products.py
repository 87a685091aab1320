"""Layers a forward writes as one product call on a weight it holds: ``torch.einsum``, a batched
``bmm`` with a 3-D weight, ``F.linear`` on a reshaped weight (msweep12: a KAN was refused, and
einsum layers between two nn.Linear were skipped, so a 1e-9 vanishing stack read healthy)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth import check_module


class _EinsumSigmoid(nn.Module):
    """A stem, ``depth`` sigmoid layers written as einsum over a ParameterList, a head."""

    def __init__(self, depth: int = 10, width: int = 32) -> None:
        super().__init__()
        self.stem, self.head = nn.Linear(16, width), nn.Linear(width, 4)
        self.ws = nn.ParameterList(nn.Parameter(nn.init.xavier_normal_(torch.empty(width, width)))
                                   for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(self.stem(x))
        for w in self.ws:
            h = torch.sigmoid(torch.einsum("bi,oi->bo", h, w))
        return self.head(h)


def _as_linear(model: _EinsumSigmoid) -> nn.Sequential:
    """The same network, every layer an nn.Linear with the same weights (no biases inside)."""
    layers: list[nn.Module] = [model.stem, nn.Sigmoid()]
    for w in model.ws:
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        layers += [lin, nn.Sigmoid()]
    return nn.Sequential(*layers, model.head)


def test_einsum_layers_are_measured_as_the_same_network_of_linear_modules() -> None:
    torch.manual_seed(0)
    model, x = _EinsumSigmoid(), torch.randn(32, 16)
    doc = check_module(model, x, seeds=2, verify=False)
    twin = check_module(_as_linear(model), x, seeds=2, verify=False)
    assert [layer.type for layer in doc.layers] == ["linear"] * 12
    assert [layer.name for layer in doc.layers][1:3] == ["ws.0", "ws.1"]
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    [g] = [f for f in twin.findings if f.code == "vanishing_gradient"]
    assert f.severity == g.severity == "error"
    assert f.evidence.value == pytest.approx(g.evidence.value, rel=1e-9)


class _KAN(nn.Module):
    """A Chebyshev KAN layer: y_o = sum_i sum_d c[i, o, d] T_d(tanh x_i)."""

    def __init__(self, i: int, o: int, degree: int = 4) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.randn(i, o, degree + 1) / math.sqrt(i * (degree + 1)))
        self.degree = degree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(x)
        basis = [torch.ones_like(x), x]
        for _ in range(2, self.degree + 1):
            basis.append(2 * x * basis[-1] - basis[-2])
        return torch.einsum("bid,iod->bo", torch.stack(basis, -1), self.c)


def test_a_network_of_einsum_layers_alone_is_checked_with_their_fans() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(_KAN(16, 32), _KAN(32, 8))
    doc = check_module(model, torch.randn(32, 16), seeds=1, verify=False)
    assert [(layer.name, layer.type) for layer in doc.layers] == [("0.c", "linear"), ("1.c", "linear")]
    assert [(layer.fan_in, layer.fan_out) for layer in doc.layers] == [(16 * 5, 32), (32 * 5, 8)]


def test_an_experts_batched_product_is_a_layer_and_attention_is_not() -> None:
    class Experts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 16, 24) / 4.0)
            self.q, self.out = nn.Linear(16, 16), nn.Linear(24, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.q(x)
            mixed = torch.softmax(torch.einsum("bd,cd->bc", q, q), -1) @ q  # two activations: no layer
            h = torch.bmm(mixed.unsqueeze(0).expand(4, -1, -1), self.w)  # [experts, batch, 24]
            return self.out(torch.relu(h).mean(0))

    torch.manual_seed(0)
    doc = check_module(Experts(), torch.randn(8, 16), seeds=1, verify=False)
    assert [(layer.name, layer.fan_in, layer.fan_out) for layer in doc.layers] == [
        ("q", 16, 16), ("w", 16, 24), ("out", 24, 3)]


def test_f_linear_on_a_reshaped_parameter_is_its_layer() -> None:
    class Reshaped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.ParameterList(nn.Parameter(torch.randn(i, o, 5) / math.sqrt(5 * i))
                                      for i, o in ((16, 32), (32, 4)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for c in self.c:
                x = nn.functional.linear(x.repeat_interleave(5, -1), c.permute(1, 0, 2).reshape(c.shape[1], -1))
            return x

    torch.manual_seed(0)
    doc = check_module(Reshaped(), torch.randn(8, 16), seeds=1, verify=False)
    assert [layer.name for layer in doc.layers] == ["c.0", "c.1"]


def test_a_kernel_a_hypernetwork_generates_is_not_its_generators_bias() -> None:
    # msweep10's HyperCNN: w = gen(z[l]).view(c, c, 3, 3), gen's bias as many numbers as a kernel;
    # read as that bias reshaped, the 12 convolutions were one layer called in a loop, a recurrence
    class Hyper(nn.Module):
        def __init__(self, layers: int = 4, c: int = 4) -> None:
            super().__init__()
            self.stem, self.head = nn.Conv2d(3, c, 3, padding=1), nn.Linear(c, 5)
            self.z, self.gen, self.c = nn.Parameter(torch.randn(layers, 8)), nn.Linear(8, c * c * 9), c

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            for z in self.z:
                h = torch.relu(nn.functional.conv2d(h, self.gen(z).view(self.c, self.c, 3, 3), padding=1))
            return self.head(h.mean((2, 3)))

    torch.manual_seed(0)
    doc = check_module(Hyper(), torch.randn(4, 3, 8, 8), seeds=1, verify=False)
    assert "gen.bias" not in {layer.name for layer in doc.layers}
    assert not [f for f in doc.findings if f.code.endswith("_through_time")]
