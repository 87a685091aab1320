"""modsweep47 (live PyTorch modules): the large steps an exploding growth makes are said to follow
from it, in the spec and the module door alike; the batch_norm snippet, compact and worded for
each layer's place."""
from __future__ import annotations

import copy
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


class _Down(nn.Module):
    """A block that widens the stream: its skip is a projection (a shortcut Linear), as a ResNet's
    downsample conv."""

    def __init__(self, width: int, wider: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, wider), nn.Linear(wider, wider)
        self.shortcut = nn.Sequential(nn.Linear(width, wider))
        for m in (self.fc1, self.fc2, self.shortcut[0]):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.fc2(torch.relu(self.fc1(x)))


def test_modsweep47_the_batch_norm_snippet_is_compact_and_says_where_each_norm_goes() -> None:
    # (modsweep47 #2: one line per conv of a BN-free ResNet-56, 57 in all, each "then its norm, before
    # its activation", the shortcut convs and the convs added to the skip path too)
    torch.manual_seed(0)
    stem = nn.Linear(32, 32)
    nn.init.kaiming_normal_(stem.weight, nonlinearity="relu")
    model = nn.Sequential(stem, nn.ReLU(), *[_Block(32) for _ in range(8)], _Down(32, 48), nn.Linear(48, 10))
    doc = check_module(model, torch.randn(32, 32), loss="cross_entropy", seeds=1, verify=False)
    growth = next(f for f in doc.findings if f.code == "exploding_gradient")
    [bn] = [r for r in growth.remedies if r.id == "batch_norm"]
    lines = bn.snippet.splitlines()
    # 20 layers normed (every Linear but the head), the blocks (model[2] to model[9]) in loops
    assert len(lines) <= 12 and lines.count("for i in range(2, 10):") == 2
    at = {kind: next(i for i, line in enumerate(lines) if line.startswith("#") and kind in line)
          for kind in ("feeds an activation", "ends a residual branch", "shortcut's projection")}
    order = sorted(at.values())
    section = {kind: lines[i + 1:next((j for j in order if j > i), len(lines))] for kind, i in at.items()}
    assert "    model[i].fc1 = nn.Sequential(model[i].fc1, nn.BatchNorm1d(32))" in section["feeds an activation"]
    assert "model[10].fc1 = nn.Sequential(model[10].fc1, nn.BatchNorm1d(48))" in section["feeds an activation"]
    assert "    model[i].fc2 = nn.Sequential(model[i].fc2, nn.BatchNorm1d(32))" in section["ends a residual branch"]
    assert "model[10].fc2 = nn.Sequential(model[10].fc2, nn.BatchNorm1d(48))" in section["ends a residual branch"]
    assert section["shortcut's projection"] == [
        "model[10].shortcut[0] = nn.Sequential(model[10].shortcut[0], nn.BatchNorm1d(48))"]
    assert "before its activation" not in bn.snippet
    # as pasted: a norm right after each of the 20 Linears but the head, and the model still runs
    fixed = copy.deepcopy(model)
    exec(bn.snippet, {"nn": nn, "model": fixed})  # noqa: S102 - the remedy's own code, run as a user would
    normed = [m for m in fixed.modules() if isinstance(m, nn.Sequential) and len(m) == 2
              and isinstance(m[0], nn.Linear) and isinstance(m[1], nn.BatchNorm1d)
              and m[1].num_features == m[0].out_features]
    assert len(normed) == 20 and isinstance(fixed[11], nn.Linear)
    assert fixed(torch.randn(4, 32)).shape == (4, 10)
