"""A trained net's forward can grow through what its weights learned, not their scale: iDeepLC's
retention-time regressor (onnxsweep18 h04), whose conv kernels each sum to about +4.7, multiplies
the positive mean of its ReLU inputs per layer and grew 172x over 5 layers at 0.4-0.6x He's scale
while its gradient stayed under the bar. That is a note; an init whose weights' scale grows the
signal stays a warning."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth import check_module


def _conv_stack(scale: float, mean_sum: float) -> nn.Module:
    """3 Conv1d(k=5)+ReLU, a flatten to 896 features, 896->64->64->1: every weight N(0, scale * He's
    std); every layer but the readout's weights shifted so each kernel or row sums to ``mean_sum``."""
    torch.manual_seed(0)
    convs = [nn.Conv1d(8, 32, 5), nn.Conv1d(32, 32, 5), nn.Conv1d(32, 32, 5)]
    lins = [nn.Linear(32 * 28, 64), nn.Linear(64, 64), nn.Linear(64, 1)]
    with torch.no_grad():
        for m in convs + lins:
            fan_in = m.weight[0].numel()
            m.weight.normal_(0, scale * math.sqrt(2 / fan_in))
            if m is not lins[-1]:
                m.weight.add_(mean_sum / fan_in)
            m.bias.zero_()
    return nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU(), convs[2], nn.ReLU(), nn.Flatten(),
                         lins[0], nn.ReLU(), lins[1], nn.ReLU(), lins[2])


def _exploding(model: nn.Module):
    doc = check_module(model, torch.randn(64, 8, 40), loss="mse", verify=False, seeds=2, trained=True)
    return doc, next((f for f in doc.findings if f.code == "exploding_gradient"), None)


def test_positive_mean_kernels_grow_the_forward_as_a_note() -> None:
    # weights at half He's std, each kernel and row summing to +6: the mean of the ReLU outputs is
    # multiplied about 6x per layer, while random weights of that scale would shrink the signal
    # 0.5x per layer (0.5^4 = 0.0625 over the four layers after the first)
    doc, f = _exploding(_conv_stack(0.5, 6.0))
    assert f is not None and f.severity == "info"
    ev = f.evidence.model_dump()
    assert ev["activation_growth"] > 100 and ev["grad_ratio"] < 100
    assert ev["learned_structure"] is True
    assert 0.03 < ev["weight_scale_growth"] < 0.12  # 0.5^4 = 0.0625, up to the draws' spread
    assert doc.status == "healthy"


def test_an_init_too_large_still_warns() -> None:
    # zero-mean weights at 4x He's std: random weights that large grow both directions about 4x per
    # layer (4^4 = 256 over the trunk): the scale predicts the growth, a warning as before
    _, f = _exploding(_conv_stack(4.0, 0.0))
    assert f is not None and f.severity == "warning"
    assert not f.evidence.model_dump().get("learned_structure")
