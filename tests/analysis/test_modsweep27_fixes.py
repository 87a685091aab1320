"""What the twenty-seventh module sweep found: a mixture of experts whose experts each end in a
softmax, mixed by gate weights, trained with cross-entropy (davidmrau/mixture-of-experts'
example): its output is probabilities by value though its last autograd step is no softmax."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.graph import distributions


class _SoftmaxExperts(nn.Module):
    """Experts that each end in a softmax, mixed by a softmax gate (index_add, as a sparse
    dispatcher combines them)."""

    def __init__(self, d: int = 16, classes: int = 20, experts: int = 4) -> None:
        super().__init__()
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, classes), nn.Softmax(-1))
                                     for _ in range(experts))
        self.gate = nn.Linear(d, experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.softmax(self.gate(x), dim=-1)
        out = torch.zeros(x.shape[0], self.experts[0][2].out_features, dtype=x.dtype)
        rows = torch.arange(x.shape[0])
        for k, expert in enumerate(self.experts):
            out = out.index_add(0, rows, g[:, k:k + 1] * expert(x))
        return out


def test_a_mix_of_softmaxes_under_cross_entropy_is_the_mismatch_with_its_floor() -> None:
    torch.manual_seed(0)
    doc = check_module(_SoftmaxExperts(), torch.randn(32, 16), seeds=2, verify=True)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.severity == "error"
    # probabilities taken for logits: the loss cannot fall below -ln(e / (e + k - 1)) for k = 20
    floor = -math.log(math.e / (math.e + 19))
    assert f"{floor:.3g}" in f.summary
    assert any(r.id == "logits_loss" and r.verified is not None and r.verified.fixed for r in f.remedies)


def test_rows_are_distributions_by_their_values_only() -> None:
    p = torch.softmax(torch.randn(8, 5), dim=-1)
    assert distributions(0.3 * p + 0.7 * torch.softmax(torch.randn(8, 5), dim=-1))
    assert not distributions(torch.relu(torch.randn(8, 5)))    # non-negative logits: rows do not sum to 1
    assert not distributions(p - 0.01)                         # a negative entry
    assert not distributions(torch.ones(8, 1))                 # one class: no distribution to speak of


def test_checking_the_output_for_distributions_cuts_nothing() -> None:
    # the value check runs inside the traced forward, where a .detach() call reads as the model's
    # own cut: a LoRA adapter's zero B then read as "the forward detaches their output", an error
    class Adapter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.A, self.B = nn.Linear(16, 4, bias=False), nn.Linear(4, 16, bias=False)
            nn.init.zeros_(self.B.weight)
            self.head = nn.Linear(16, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(x + self.B(self.A(x))))

    torch.manual_seed(0)
    doc = check_module(Adapter(), torch.randn(16, 16), seeds=1, verify=False)
    assert not any("detaches" in f.summary for f in doc.findings)
