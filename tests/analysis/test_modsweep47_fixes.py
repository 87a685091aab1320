"""modsweep47 (live PyTorch modules): the large steps an exploding growth makes are said to follow
from it, in the spec and the module door alike; the batch_norm snippet, compact and worded for
each layer's place."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradhealth import check_architecture, check_module

sys.path.insert(0, str(Path(__file__).parent))
from test_specsweep11_fixes import _residual_mlp  # noqa: E402


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        for m in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


def _residual_module(blocks: int) -> nn.Module:
    """_residual_mlp's network as a live module: He-initialised residual blocks without norms."""
    torch.manual_seed(0)
    stem = nn.Linear(32, 32)
    nn.init.kaiming_normal_(stem.weight, nonlinearity="relu")
    return nn.Sequential(stem, nn.ReLU(), *[_Block(32) for _ in range(blocks)], nn.Linear(32, 10))


def _linked(doc: Any) -> None:
    """The large_updates error leads (an error before a warning), and its summary, explanation and
    evidence name the exploding_gradient warning as the cause of its steps, with that finding's own
    growth figure."""
    large, growth = doc.findings[0], next(f for f in doc.findings if f.code == "exploding_gradient")
    assert (large.code, large.severity, growth.severity) == ("large_updates", "error", "warning")
    figure = f"{growth.evidence.value:.3g}x"
    assert f"follow from the exploding_gradient warning (a {figure} growth" in large.summary
    assert "lower learning rate does not fix" in doc.summary and figure in doc.summary
    assert "the growth is the cause" in large.explanation
    extra = large.evidence.model_extra or {}
    assert extra.get("cause") == "exploding_gradient" and extra.get("withheld_remedies") == ["lower_learning_rate"]
    assert "lower_learning_rate" not in [r.id for r in large.remedies]


def test_modsweep47_large_steps_of_a_growing_spec_name_the_growth_as_their_cause() -> None:
    # He residual blocks without norms: the stream's variance grows by a constant factor per block
    # (Fixup, Zhang et al. 2019), 8 blocks past the 1e2 warning line and under the 1e4 error
    _linked(check_architecture(_residual_mlp(8, 0.1), verify=False))


def test_modsweep47_large_steps_of_a_growing_module_name_the_growth_as_their_cause() -> None:
    # the same network as a live module: one behaviour for both doors
    model = _residual_module(8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _linked(check_module(model, torch.randn(32, 32), loss="cross_entropy", optimizer=opt, seeds=1,
                         verify=False))


def test_modsweep47_large_steps_without_growth_keep_their_rate_and_name_no_cause() -> None:
    spec = _residual_mlp(1, 0.1)
    spec["optimizer"]["lr"] = 50.0
    doc = check_architecture(spec, verify=False)
    large = next(f for f in doc.findings if f.code == "large_updates")
    assert "follow from" not in large.summary and "cause" not in (large.evidence.model_extra or {})
    assert "lower_learning_rate" in [r.id for r in large.remedies]
