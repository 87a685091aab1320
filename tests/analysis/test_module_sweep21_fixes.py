"""What the twenty-first module sweep (modules labelled by papers and mean-field theory) found."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


def test_a_norm_shifted_far_below_zero_is_fixed_by_zeroing_the_shift() -> None:
    # BatchNorm's beta at -3: its output is ~N(-3, 1), so the ReLUs after it are off for almost every
    # sample; the Linear biases were zeroed and nothing changed (0.973 -> 0.973)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 64
    for _ in range(5):
        bn = nn.BatchNorm1d(256)
        nn.init.constant_(bn.bias, -3.0)
        layers += [nn.Linear(width, 256), bn, nn.ReLU()]
        width = 256
    doc = check_module(nn.Sequential(*layers, nn.Linear(256, 10)), torch.randn(32, 64), loss="cross_entropy",
                       seeds=1)
    [f] = [f for f in doc.findings if f.code == "dead_units"]
    [zero] = [r for r in f.remedies if r.id == "zero_bias"]
    assert "shifts" in zero.change and zero.verified is not None and zero.verified.fixed
    assert zero.verified.after is not None and zero.verified.after < 0.5 * zero.verified.before


def _bn_mlp(batch: int, positions: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    norm = nn.BatchNorm1d
    layers: list[nn.Module] = []
    width = 32
    for _ in range(6):
        if positions:
            layers += [nn.Conv1d(width, 64, 1), norm(64), nn.ReLU()]
        else:
            layers += [nn.Linear(width, 64), norm(64), nn.ReLU()]
        width = 64
    head: list[nn.Module] = [nn.Flatten(), nn.LazyLinear(10)] if positions else [nn.Linear(64, 10)]
    x = torch.randn(batch, 32, positions) if positions else torch.randn(batch, 32)
    model = nn.Sequential(*layers, *head)
    model(x)  # (materialise the lazy head)
    return model, x


def test_batch_norms_over_two_values_a_channel_are_a_sign_function_and_an_error() -> None:
    # BatchNorm over 2 samples: (x1 - x2) / |x1 - x2| = +-1 whatever the input (msweep21: its gradient
    # grew 30-620x with the seed and was read as a norm's own gain, a note)
    model, x = _bn_mlp(2)
    doc = check_module(model, x, loss="cross_entropy", seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "small_batch_statistics"]
    bns = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm1d)]
    assert f.severity == "error" and f.evidence.value == 2 and f.evidence.layers == bns
    assert f.remedies and f.remedies[0].unverified == "not_simulable"


def test_a_small_batch_is_judged_with_its_positions_and_a_real_batch_is_not_flagged() -> None:
    # 4 samples over 3 positions: 12 values a channel, enough; 4 samples alone: a warning
    for batch, positions, expected in ((4, 3, None), (4, 0, "warning"), (64, 0, None)):
        model, x = _bn_mlp(batch, positions)
        doc = check_module(model, x, loss="cross_entropy", seeds=1, verify=False)
        found = [f.severity for f in doc.findings if f.code == "small_batch_statistics"]
        assert found == ([expected] if expected else []), (batch, positions)
