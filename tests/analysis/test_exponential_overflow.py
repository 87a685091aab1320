"""peersweep18 (Keras activation="exponential") and closing36: a NaN/Inf made by an exponential in a
stack was explained as "the weights or activations before it are far too large" and remedied with an
init. With LeCun-scaled weights, E[exp(x)^2] = exp(2 var x) for x ~ N(0, var), so the pre-activation
variance goes 1 -> e^2 -> e^(2 e^2) ~ 2.6e6 ...: the exps overflow whatever the init, as the
re-simulated init remedy confirms."""

from __future__ import annotations

import math

import torch
from torch import nn

import gradhealth


class ExpStack(nn.Module):
    def __init__(self, width: int = 32, depth: int = 8) -> None:
        super().__init__()
        self.ls = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.out = nn.Linear(width, 1)
        for layer in self.ls:  # LeCun: unit variance in, unit variance out of each Linear
            nn.init.normal_(layer.weight, std=width ** -0.5)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.ls:
            x = torch.exp(layer(x))
        return self.out(x)


def test_the_theory_overflows_float32_by_the_fourth_layer() -> None:
    # the pre-activation's variance after each exp: var_{l+1} = E[exp(2 x)] = exp(2 var_l) (fan-in
    # scaled weights pass the second moment on); float32's exp overflows past ~88.7 = ln(3.4e38)
    var, layers = 1.0, 1
    while 3 * math.sqrt(var) < math.log(torch.finfo(torch.float32).max):  # a 3-sigma input
        var, layers = math.exp(2 * var), layers + 1
    assert layers <= 4


def test_an_exponential_s_overflow_is_its_own_and_its_remedy_replaces_it() -> None:
    torch.manual_seed(0)
    doc = gradhealth.check_module(ExpStack(), torch.randn(64, 32))
    f = next(f for f in doc.findings if f.code == "nonfinite")
    assert f.evidence.model_dump()["operation"] == "exp"
    assert "far too large" not in f.explanation and "whatever the initialisation" in f.explanation
    first = f.remedies[0]
    assert first.id == "relu_family_activation" and "replace exp at" in first.change
    assert "torch.exp(x.clamp(max=20.0))" in first.snippet
    # the init the old wording sent users to does not help: re-simulated, it still overflows
    init = next(r for r in f.remedies if r.id.endswith("_init"))
    assert init.verified is not None and init.verified.fixed is False
