"""large_updates judges the step a layer will keep taking, against the weights' scale it will have:

- a layer whose weights start below a usual initialisation's scale on purpose (the TCN's readout and
  1x1 downsample convs at N(0, 0.01), modsweep29 h03) is judged against 0.5/sqrt(fan_in) per weight:
  its gradient, and so its step, does not depend on its own weights' size;
- the first step is judged, SGD's momentum or not (a BN-CNN at SGD 0.1 momentum 0.9 stays healthy).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.library import check_architecture


def _large(doc: Any) -> Any:
    return next((f for f in doc.findings if f.code == "large_updates"), None)


def _small_init_mlp(std: float | None) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 10))
    if std is not None:
        with torch.no_grad():
            for m in model:
                if isinstance(m, nn.Linear):
                    m.weight.normal_(0, std)
    return model


def test_weights_started_small_are_judged_against_a_usual_init_scale() -> None:
    # Adam's first step is lr per weight: ||dW|| = lr sqrt(n). Against weights of std 0.02 that is
    # 4e-3 / 0.02 = 0.2 of their norm; against the usual scale 0.5 / sqrt(128) = 0.0442 it is
    # 4e-3 * sqrt(128) / 0.5 = 0.0905, what any normally initialised layer of fan-in 128 moves
    model = _small_init_mlp(0.02)
    doc = check_module(model, torch.randn(32, 128), seeds=1, verify=False,
                       optimizer=torch.optim.Adam(model.parameters(), lr=4e-3))
    assert _large(doc) is None
    # a rate really too large is still one: 0.1 * sqrt(128) / 0.5 = 2.26 of the usual scale
    doc = check_module(model, torch.randn(32, 128), seeds=1, verify=False,
                       optimizer=torch.optim.Adam(model.parameters(), lr=0.1))
    f = _large(doc)
    assert f is not None and f.severity == "error"
    factors = f.evidence.model_extra["init_scale_factor"]
    assert set(factors) == {"0", "2", "4"}
    assert all(v == pytest.approx(0.02 / (0.5 / math.sqrt(128)), rel=0.05) for v in factors.values())
    assert max(f.evidence.model_extra["update_ratios"].values()) == pytest.approx(0.1 * math.sqrt(128) / 0.5,
                                                                                  rel=0.05)


def test_a_default_initialised_layer_keeps_its_own_ratio() -> None:
    # torch's default U(+-1/sqrt(128)), std 0.051, is above the scale judged against: lr sqrt(3 * 128)
    model = _small_init_mlp(None)
    doc = check_module(model, torch.randn(32, 128), seeds=1, verify=False,
                       optimizer=torch.optim.Adam(model.parameters(), lr=0.1))
    f = _large(doc)
    assert f is not None and f.severity == "error"
    assert "init_scale_factor" not in f.evidence.model_extra
    assert f.evidence.value == pytest.approx(0.1 * math.sqrt(3 * 128), rel=0.05)


class _TinyTCN(nn.Module):
    """locuslab/TCN's way: a 1x1 downsample conv and a linear readout at N(0, 0.01)."""

    def __init__(self) -> None:
        super().__init__()
        self.downsample = nn.Conv1d(2, 30, 1)
        self.linear = nn.Linear(30, 1)
        with torch.no_grad():
            self.downsample.weight.normal_(0, 0.01)
            self.linear.weight.normal_(0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.downsample(x))[:, :, -1])


def test_a_tcn_readout_started_at_001_on_purpose_trains_at_its_published_adam_rate() -> None:
    torch.manual_seed(0)
    model = _TinyTCN()
    doc = check_module(model, torch.randn(16, 2, 50), loss="mse", seeds=1, verify=False,
                       optimizer=torch.optim.Adam(model.parameters(), lr=4e-3))
    assert _large(doc) is None  # judged 4e-3 sqrt(30) / 0.5 = 0.044 and 4e-3 sqrt(2) / 0.5 = 0.011


def test_a_batch_normed_networks_steps_are_judged_as_measured() -> None:
    # the limits were measured on momentum-0.9 recipes' first steps
    conv = {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False,
            "norm": "batchnorm", "init": "kaiming_normal", "activation": "relu"}
    spec = {"input": {"shape": [3, 16, 16]}, "batch_size": 16, "seeds": 2,
            "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
            "layers": [conv, conv, conv, {"type": "avgpool2d", "kernel_size": 16}, {"type": "flatten"},
                       {"type": "linear", "out_features": 10}]}
    assert check_architecture(spec, verify=False).status == "healthy"
