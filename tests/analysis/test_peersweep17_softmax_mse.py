"""peersweep17 tdc_baseCNN_mse_on_softmax: a softmax under mse is told that it gives weak gradients
on confidently wrong samples and that cross-entropy is the usual pairing (the note spoke of reachable
targets only)."""

from __future__ import annotations

import torch
from torch import nn

import gradhealth


class _SoftmaxClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Linear(8, 32), nn.ReLU()), nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.body(x)), dim=-1)


def test_mse_on_a_softmax_passes_about_4p_to_a_confidently_wrong_samples_logit() -> None:
    # the figure the note gives, computed by autograd: the class's probability p near 0, another's near 1
    for p_target in (1e-2, 1e-3):
        z = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        z[1] = 12.0
        z[0] = float(torch.log(torch.tensor(p_target)) + torch.logsumexp(z[1:], 0))  # p_0 about p_target
        z = z.detach().requires_grad_(True)
        y = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        p = torch.softmax(z, 0)
        ((p - y) ** 2).sum().backward()
        mse = float(z.grad[0])  # type: ignore[index]  # set by backward
        p = p.detach()
        z.grad = None
        nn.functional.cross_entropy(z[None], torch.tensor([0])).backward()
        ce = float(z.grad[0])  # type: ignore[index]  # set by backward
        assert abs(mse / (-4 * float(p[0])) - 1) < 0.05 and abs(ce - (float(p[0]) - 1)) < 1e-12


def test_a_softmax_under_mse_is_told_of_its_weak_gradients_and_the_usual_pairing() -> None:
    torch.manual_seed(0)
    for targets in ({}, {"targets": torch.eye(5)[torch.arange(32) % 5]}):  # assumed, then one-hot given
        doc = gradhealth.check_module(_SoftmaxClassifier(), torch.randn(32, 8), loss="mse", seeds=1,
                                      verify=False, **targets)  # type: ignore[arg-type]  # a tensor or nothing
        [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
        assert f.severity == "info"  # a note as before: the targets are in reach
        assert "confidently wrong" in f.summary and "cross-entropy is the usual pairing" in f.summary
        assert "about 4p" in f.explanation
        assert (f.evidence.model_extra or {})["weak_gradient_when_confidently_wrong"] is True
