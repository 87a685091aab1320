"""Huge logits from raw inputs, not from the weights (held-out peersweep22 baseCNN_miss_norm: He-initialised
layers on 0..255 pixels of RMS 147, logits std 225, explained as "weights several times too large for
their fan-in"). A ReLU net scales with its input, so logits divided by the input's RMS under the bar
mean the inputs' scale is the cause: the explanation says so and does not blame the weights."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def test_raw_inputs_are_named_not_the_weights() -> None:
    net = _net()
    x = torch.rand(128, 64) * 255  # raw pixels: RMS 255/sqrt(3) = 147
    with torch.no_grad():
        raw_std = float(net(x).std())
        unit_std = float(net(x / (255 / 3**0.5)).std())  # the same weights on unit-RMS inputs
    assert raw_std > 100 > unit_std  # theory: the logits scale with the input (biases at 0: exactly)
    assert abs(raw_std / unit_std - 255 / 3**0.5) < 1e-6 * raw_std
    doc = check_module(net, x, seeds=2, loss="cross_entropy", verify=False)
    found = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert found, [f.code for f in doc.findings]
    f = found[0]
    ev = f.evidence.model_dump()
    assert ev["inputs_far"] is True
    assert abs(ev["input_rms"] - 255 / 3**0.5) < 10  # E[U(0,255)^2] = 255^2/3
    assert "too large for their fan-in" not in f.explanation
    assert "Standardise the inputs" in f.explanation
