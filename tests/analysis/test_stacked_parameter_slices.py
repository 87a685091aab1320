"""A stack of layers held as one parameter, ``self.W = nn.Parameter(torch.randn(L, d, d))`` used as
``x @ self.W[i]`` in a loop over i (or ``F.linear(x, self.W[i])``, or ``for w in self.W``): each slice
is a layer of its own (``W[0]``, ``W[1]``...), measured with the slice's own weight gradient; before,
no layer was measured at all and a deep tanh stack at a large or tiny std read healthy. Numbers from
torch autograd on the same module and batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradhealth

L, D = 12, 32


class _Stacked(nn.Module):
    def __init__(self, std: float, how: str = "matmul") -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(L, D, D) * std)
        self.head = nn.Linear(D, 5)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "iter":
            for w in self.W:
                x = torch.tanh(x @ w)
        else:
            for i in range(self.W.shape[0]):
                x = torch.tanh(x @ self.W[i] if self.how == "matmul" else nn.functional.linear(x, self.W[i]))
        return self.head(x)


def _levels() -> torch.Tensor:
    """An input of a few levels, which the check uses as given (it draws a standard normal one in place
    of a continuous example): the computation by hand reads the very batch the check does."""
    return torch.randint(-2, 3, (16, D)).to(torch.float64)


def _by_hand(net: _Stacked, x: torch.Tensor) -> tuple[list[float], list[float]]:
    """(||dL/dW[i]||, ||dL/dh_i||) per slice, h_i = tanh(h_{i-1} W_i) (W_i^T for F.linear), loss the sum."""
    w = net.W.detach().clone().requires_grad_(True)
    hs = []
    for i in range(L):
        x = torch.tanh(x @ (w[i].t() if net.how == "linear" else w[i]))
        x.retain_grad()
        hs.append(x)
    net.head(x).sum().backward()
    assert w.grad is not None
    return [float(w.grad[i].norm()) for i in range(L)], [float(h.grad.norm()) for h in hs if h.grad is not None]


def _check(net: _Stacked, x: torch.Tensor) -> gradhealth.Diagnosis:
    return gradhealth.check_module(net, x, loss="sum", seeds=1, verify=False)


@pytest.mark.parametrize("how", ["matmul", "linear", "iter"])
def test_each_slice_of_a_stacked_parameter_is_a_layer_with_its_own_gradient(how: str) -> None:
    torch.manual_seed(0)
    net = _Stacked(1 / D ** 0.5, how).double()
    x = _levels()
    weights, outputs = _by_hand(net, x)
    doc = _check(net, x)
    layers = {layer.name: layer for layer in doc.layers}
    assert [n for n in layers if n != "head"] == [f"W[{i}]" for i in range(L)]
    for i in range(L):
        layer = layers[f"W[{i}]"]
        assert layer.grad_norm == pytest.approx(weights[i], rel=1e-6)
        assert layer.output_grad_norm == pytest.approx(outputs[i], rel=1e-6)
        assert (layer.fan_in, layer.fan_out) == (D, D)
        assert layer.weight_std == pytest.approx(float(net.W[i].detach().std()), rel=1e-6)


def test_a_deep_tanh_stack_at_a_large_std_explodes_and_saturates_per_slice() -> None:
    torch.manual_seed(0)
    net = _Stacked(1.0).double()  # 32x the variance LeCun's 1/fan_in gives: the chaotic phase
    x = _levels()
    _, outputs = _by_hand(net, x)
    doc = _check(net, x)
    found = {f.code: f for f in doc.findings}
    assert "exploding_gradient" in found and "saturation" in found
    exploding = found["exploding_gradient"]
    assert exploding.evidence.layers == ["W[0]", f"W[{L - 1}]"]
    assert exploding.evidence.model_dump()["grad_ratio"] == pytest.approx(outputs[0] / outputs[-1], rel=1e-6)
    assert set(found["saturation"].evidence.layers) >= {f"W[{i}]" for i in range(L)}


def test_a_deep_tanh_stack_at_a_tiny_std_vanishes_per_slice() -> None:
    torch.manual_seed(0)
    net = _Stacked(0.01).double()
    x = _levels()
    _, outputs = _by_hand(net, x)
    doc = _check(net, x)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.evidence.layers == ["W[0]", f"W[{L - 1}]"]
    assert f.evidence.value == pytest.approx(outputs[0] / outputs[-1], rel=1e-6)
    # theory: in tanh's linear regime each layer scales the gradient by std * sqrt(d) = 0.057
    assert f.evidence.model_dump()["per_layer_factor"] == pytest.approx(0.01 * D ** 0.5, rel=0.15)
    assert not any(f.code == "saturation" for f in doc.findings)
