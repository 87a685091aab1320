"""What the eighteenth module sweep found: SGD at ResNet's own rate was called too large, because
the stem convolution that feeds a batch norm moves by a third of its weights at the first step,
though a layer a norm takes directly is scale-invariant: a large step there grows its weights'
norm and so shrinks its own next steps (Arora, Li & Lyu 2019)."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth import check_module


def _cnn(bn: bool) -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for _ in range(3):
        layers += [nn.Conv2d(c, 16, 3, padding=1, bias=not bn), *([nn.BatchNorm2d(16)] if bn else []), nn.ReLU()]
        c = 16
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def _large(bn: bool, lr: float) -> list:
    torch.manual_seed(0)
    doc = check_module(_cnn(bn), torch.randn(8, 3, 16, 16), seeds=1, verify=False,
                       optimizer={"type": "sgd", "lr": lr, "momentum": 0.9})
    return [f for f in doc.findings if f.code == "large_updates"]


def test_batch_normed_layers_moving_less_than_their_norm_are_not_the_rates_fault() -> None:
    # at lr 2 the BN-fed convolutions move by 0.1-0.7 of their norm and the fresh head by 0.7: no
    # finding; the same network without norms at the same rate (0.11 in a convolution) is a warning
    assert _large(bn=True, lr=2.0) == []
    [plain] = _large(bn=False, lr=2.0)
    assert plain.severity == "warning"


def test_a_step_that_rewrites_a_batch_normed_layer_whole_is_still_an_error() -> None:
    [f] = _large(bn=True, lr=5.0)
    assert f.severity == "error" and f.evidence.value > 1


class _Agent(nn.Module):
    """CleanRL's continuous PPO agent, its actions bounded by a tanh and returned beside the critic's
    value, the actor's last layer at gain 100 (its tanh in its tails for nearly every unit)."""

    def __init__(self) -> None:
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1))
        self.actor = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 4), nn.Tanh())
        nn.init.orthogonal_(self.actor[2].weight, gain=100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.actor(x), self.critic(x)], dim=-1)


def test_a_tanh_output_returned_beside_another_is_judged_as_an_output() -> None:
    torch.manual_seed(0)
    doc = check_module(_Agent(), torch.randn(16, 8), loss="mse", seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "saturation"]
    assert f.severity == "warning" and f.evidence.model_dump().get("output") is True
    # the action bound is the model's range: no ReLU offered in its place
    assert not [r for r in f.remedies if r.id == "relu_family_activation"]


def test_a_remedy_the_check_cannot_make_on_a_module_says_why_it_is_not_verified() -> None:
    # (msweep18: nanoGPT's Post-LN remedy came back with neither `verified` nor `unverified`)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    doc = check_module(nn.Sequential(*layers, nn.Linear(32, 4)), torch.randn(16, 32), seeds=1)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    norm = next(r for r in f.remedies if r.id == "batch_norm")
    assert norm.verified is None and norm.unverified == "not_simulable"
    assert all(r.verified is not None or r.unverified is not None for r in f.remedies)
    quick = check_module(nn.Sequential(*layers, nn.Linear(32, 4)), torch.randn(16, 32), seeds=1, verify=False)
    [g] = [g for g in quick.findings if g.code == "vanishing_gradient"]
    assert {r.unverified for r in g.remedies} <= {"skipped", "not_simulable", "training_time"}
    assert next(r for r in g.remedies if r.id == "xavier_init").unverified == "skipped"
