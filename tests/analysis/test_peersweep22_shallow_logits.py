"""Held-out peersweep22 ips13: raw heart features (up to 150) into a 9 -> 2 softmax regression with
truncated_normal(1) weights, logits std 180, read healthy but for the rate: the saturated-logit check of
exploding_gradient ran only where there is a depth to measure a growth over. Judged however shallow the
net, as docs/findings.md says: one weight layer too."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth.analysis.module_check import check_module


def test_one_weight_layer_with_saturated_logits_is_a_finding() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(9, 2))
    nn.init.trunc_normal_(net[0].weight, std=1.0, a=-2.0, b=2.0)
    nn.init.zeros_(net[0].bias)
    x = torch.rand(64, 9) * 150
    with torch.no_grad():
        raw = float(net(x).std())
    assert raw > 100  # the logits' std, computed directly
    doc = check_module(net, x, loss="cross_entropy", input_range=(0.0, 150.0), optimizer={"type": "sgd", "lr": 0.01})
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    ev = f.evidence.model_dump()
    assert f.severity == "warning" and raw / 1.5 < ev["logit_std"] < raw * 1.5
    assert ev["inputs_far"] and "inputs' scale" in f.summary  # RMS 150/sqrt(3) = 86.6
    assert abs(ev["input_rms"] - 150 / math.sqrt(3)) < 10
    [fix] = [r for r in f.remedies if r.id == "normalise_inputs"]
    v = fix.verified
    assert v is not None and v.fixed and v.judged is not None and v.judged.metric == "logit_std"
    # theory: unit-variance inputs through 9 weights of truncated N(0, 1) (variance 0.774): std sqrt(9 x 0.774)
    assert v.judged.after is not None and 1.5 < v.judged.after < 4.5
