"""peersweep18 (AUTOTRAINER's labelled cases) on the architecture check: SGD 1e-5 not called too
small because a 1-unit readout (the fastest layer) spoke for the network; an untrained live module's
exploding logits read "confident outputs the weights learned"; a step of 5.4e13 of the weights' norm
reported under a total clip norm of 1; layers of an nn.Sequential named by bare index in the texts."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_architecture, check_module


def _he_mlp(lr: float) -> dict[str, Any]:
    he = {"scheme": "variance_scaling", "scale": 2.0, "mode": "fan_in", "distribution": "uniform"}
    return {"input": {"shape": [2], "range": [-1, 1]}, "batch_size": 128, "seeds": 2,
            "loss": "binary_cross_entropy", "optimizer": {"type": "sgd", "lr": lr},
            "layers": [{"type": "linear", "out_features": 64, "init": he, "activation": "relu", "repeat": 7},
                       {"type": "linear", "out_features": 1, "init": he}]}


def test_small_updates_weighs_layers_by_their_weights_so_a_one_unit_head_cannot_mask_them() -> None:
    doc = check_architecture(_he_mlp(1e-5), verify=False)
    f = next(f for f in doc.findings if f.code == "small_updates")
    ev = f.evidence.model_dump()
    ratios: dict[str, float] = ev["update_ratios"]
    # the readout alone is over the 1e-6 bar (the old rule's figure), the layers holding the rest are not
    assert ev["max_update_ratio"] > 1e-6 and max(ratios.values()) == ev["max_update_ratio"]
    # the weighted median computed here from the widths: 2x64, six 64x64, 64x1
    counts = [2 * 64] + [64 * 64] * 6 + [64]
    names = sorted(ratios, key=lambda n: (n.count("layers[1]"), n))  # the hidden layers, then the head
    layer_counts = dict(zip(names, counts, strict=True))
    order = sorted(ratios, key=ratios.get)
    acc, half, median = 0.0, sum(counts) / 2, math.nan
    for n in order:
        acc += layer_counts[n]
        if acc >= half:
            median = ratios[n]
            break
    assert f.evidence.value == pytest.approx(median)
    assert f.evidence.value < 1e-6 and ev["weights_share_under_threshold"] > 0.99
    # the rate that moves the median weight's layer by 1e-4, verified
    remedy = next(r for r in f.remedies if r.id == "raise_learning_rate")
    assert remedy.patch[0]["value"] == pytest.approx(1e-5 * 1e-4 / f.evidence.value, rel=1e-2)


def test_a_usual_rate_on_the_same_network_is_not_small() -> None:
    doc = check_architecture(_he_mlp(1e-2), verify=False)
    assert "small_updates" not in {f.code for f in doc.findings}


class _Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


def _exp_stack() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 2
    for _ in range(5):
        lin = nn.Linear(width, 5)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers += [lin, _Exp()]
        width = 5
    head = nn.Linear(5, 1)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def test_an_untrained_live_module_is_never_said_to_have_learned_its_logits() -> None:
    # (three seeds: their gradient growth stays under the bar, so the logits' size decides)
    doc = check_module(_exp_stack(), torch.rand(32, 2) * 2 - 1, loss="binary_cross_entropy", verify=False,
                       input_range=(-1, 1), seeds=3)
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert f.evidence.model_dump().get("logit_std", 0) > 1e10 and f.severity != "info"
    assert "learned" not in f.summary and not f.evidence.model_dump().get("learned_structure")


def test_clipping_that_binds_bounds_the_judged_step() -> None:
    # SGD's step under a total clip norm c is lr * c at most in norm: each layer's ratio is at most
    # lr * c / ||W||, whatever the gradient at init
    lr, clip = 0.01, 1.0
    model = _exp_stack()
    norms = {str(i): float(m.weight.detach().norm()) for i, m in enumerate(model) if isinstance(m, nn.Linear)}
    doc = check_module(model, torch.rand(32, 2) * 2 - 1, loss="binary_cross_entropy", verify=False,
                       input_range=(-1, 1), seeds=1, optimizer={"type": "sgd", "lr": lr}, clip_norm=clip)
    ratios = {layer.name: layer.update_ratio for layer in doc.layers if layer.update_ratio is not None}
    assert ratios
    for name, ratio in ratios.items():
        assert ratio <= lr * clip / norms[name] * (1 + 1e-6)
    # and together they add up to the clipped step: sum of (ratio * ||W||)^2 <= (lr * clip)^2
    assert sum((r * norms[n]) ** 2 for n, r in ratios.items()) <= (lr * clip) ** 2 * (1 + 1e-6)


def test_per_tensor_clipping_bounds_each_layer_step() -> None:
    from gradhealth.analysis import spec as S
    from gradhealth.analysis.simulate import step_ratios
    w = torch.ones(4, 4, dtype=torch.float64, requires_grad=True)
    v = torch.ones(4, 4, dtype=torch.float64, requires_grad=True)
    w.grad = torch.full((4, 4), 100.0, dtype=torch.float64)
    v.grad = torch.full((4, 4), 1e-3, dtype=torch.float64)
    opt = S.OptimizerSpec(type="sgd", lr=0.1, clip_norm=2.0)
    out = step_ratios({"a": [w], "b": [v]}, opt)
    assert out["a"] == pytest.approx(0.1 * 2.0 / 4.0, rel=1e-6)       # clipped: lr * c / ||W||
    assert out["b"] == pytest.approx(0.1 * 1e-3 * 4 / 4.0, rel=1e-6)  # under the clip: unchanged


def test_sequential_layers_are_named_as_layers_in_texts_and_kept_as_names_in_fields() -> None:
    doc = check_module(_exp_stack(), torch.rand(32, 2) * 2 - 1, loss="binary_cross_entropy", verify=False,
                       input_range=(-1, 1), seeds=1)
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert "0 (Linear)" in f.summary and "from 0 to" not in f.summary
    assert {layer.name for layer in doc.layers} >= {"0", "2", "10"}  # the document's names unchanged
