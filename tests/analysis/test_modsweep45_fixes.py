"""modsweep45: a live module holding a Python module as an attribute is copied (the module shared),
and one that still cannot be copied is refused with the project's error naming the attribute
(valedan_mlp, valedan_transformer); an activation chain ending the output (ReLU then Sigmoid) is
judged on its composed range (ovheur_ae_relu_sigmoid); BCE on probabilities has a loss name of its
own (martin_gan_d, ji_gan_d); an exactly zero gradient no activation explains is said to be a
disconnected path (ji_vit). Every module is built here; expected numbers come from theory."""

from __future__ import annotations

import math
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradhealth
from gradhealth.analysis.importers import ModelError


class _HoldsModule(nn.Module):
    """An 8-16-3 ReLU MLP keeping torch.nn as an attribute (``self.nn = nn``, to switch layer
    libraries) and calling its functional API through it."""

    def __init__(self) -> None:
        super().__init__()
        self.nn = nn
        self.F = F
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.F.relu(self.fc1(x)))


def test_module_attribute_is_shared_not_copied() -> None:
    model = _HoldsModule()
    doc = gradhealth.check_module(model, torch.randn(16, 8), seeds=1, verify=False)
    assert doc.status in ("healthy", "warning", "error")
    assert model.nn is nn and model.F is F  # the user's module is untouched


class _HoldsLock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.guard = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_uncopyable_attribute_is_named_in_a_gradhealth_error() -> None:
    with pytest.raises(ModelError) as info:
        gradhealth.check_module(_HoldsLock(), torch.randn(8, 4), seeds=1, verify=False)
    assert isinstance(info.value, gradhealth.GradHealthError) and isinstance(info.value, ValueError)
    assert "guard" in str(info.value) and "lock" in str(info.value).lower()


class _EmbedsAnInt(nn.Module):
    """A forward that cannot run (nn.Embedding called on a Python int), holding torch.nn too."""

    def __init__(self) -> None:
        super().__init__()
        self.nn = nn
        self.emb = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(x.shape[1]))


def test_forward_error_is_what_a_module_holding_a_module_reports() -> None:
    from gradhealth.analysis.module_check import ModelRunError
    with pytest.raises(ModelRunError) as info:
        gradhealth.check_module(_EmbedsAnInt(), torch.randn(8, 4), seeds=1, verify=False)
    assert "embedding" in str(info.value).lower() or "int" in str(info.value)


def test_activation_chain_range_composes() -> None:
    from gradhealth.analysis.losses import activation_image
    # relu then sigmoid: sigmoid([0, inf)) = [0.5, 1]; tanh then relu: [0, 1]
    assert activation_image("sigmoid", activation_image("relu")) == (0.5, 1.0)
    assert activation_image("relu", activation_image("tanh")) == (0.0, 1.0)
    assert activation_image("gelu") is None


class _ReluSigmoidDecoder(nn.Module):
    """A conv decoder ending ConvTranspose2d -> ReLU -> Sigmoid: every output in [0.5, 1)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(True),
                                 nn.ConvTranspose2d(8, 3, 3, padding=1), nn.ReLU(True), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_relu_then_sigmoid_cannot_reach_half_the_target_range() -> None:
    doc = gradhealth.check_module(_ReluSigmoidDecoder(), torch.rand(8, 3, 8, 8), loss="mse", seeds=2,
                                  input_range=(0.0, 1.0), target_range=(0.0, 1.0))
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert found, [f.code for f in doc.findings]
    ev = found[0].evidence.model_extra or {}
    # targets uniform in [0, 1], outputs in [sigmoid(0), sigmoid(inf)) = [0.5, 1): half out of reach
    assert ev["output_range"] == [0.5, 1.0]
    assert math.isclose(found[0].evidence.value, 0.5, abs_tol=1e-9)
    assert "relu then sigmoid" in found[0].explanation.lower() and "then net.4 (Sigmoid)" in found[0].summary
    # dropping the ReLU gives the sigmoid its whole [0, 1]: offered first, and verified fixed
    first = found[0].remedies[0]
    assert "drop the relu (net.3)" in first.change
    assert first.verified is not None and first.verified.after == 0.0 and first.verified.fixed


class _SigmoidDecoder(nn.Module):
    """The same decoder ending ConvTranspose2d -> Sigmoid alone: outputs in (0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(True),
                                 nn.ConvTranspose2d(8, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_sigmoid_within_target_range_note_does_not_contradict_itself() -> None:
    doc = gradhealth.check_module(_SigmoidDecoder(), torch.rand(8, 3, 8, 8), loss="mse", seeds=1, verify=False,
                                  input_range=(0.0, 1.0), target_range=(0.0, 1.0))
    assert not [f for f in doc.findings if f.code == "output_loss_mismatch" and f.severity != "info"]
    notes = " ".join(doc.simulation.notes)
    assert "not one the check judges" not in notes


class _GanD(nn.Module):
    """A vanilla-GAN discriminator: LeakyReLU MLP ending in its own Sigmoid, trained with nn.BCELoss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(32, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_bce_on_probabilities_has_a_name() -> None:
    x = torch.randn(16, 32)
    on_logits = gradhealth.check_module(_GanD(), x, loss="binary_cross_entropy", seeds=1, verify=False)
    found = [f for f in on_logits.findings if f.code == "output_loss_mismatch"]
    assert found and found[0].severity == "error"
    # the floor of BCE-with-logits on a sigmoid's [0, 1]: (ln(1 + e^-1) + ln 2) / 2 over ln 2
    floor = (math.log1p(math.exp(-1)) + math.log(2)) / 2 / math.log(2)
    assert math.isclose(found[0].evidence.value, floor, rel_tol=1e-6)
    words = found[0].explanation + " ".join(r.change for r in found[0].remedies)
    assert 'loss="binary_cross_entropy_probs"' in words
    probs = gradhealth.check_module(_GanD(), x, loss="binary_cross_entropy_probs", seeds=1, verify=False)
    assert not [f for f in probs.findings if f.code == "output_loss_mismatch"]


class _BatchAxisAttention(nn.Module):
    """A tiny ViT whose nn.MultiheadAttention lacks batch_first=True but is fed (batch, tokens, d):
    it attends over the batch at each token, so the cls token read by the head never sees a patch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Linear(12, 16)
        self.cls = nn.Parameter(torch.randn(1, 1, 16))
        self.attn = nn.MultiheadAttention(16, 2)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        t = t + self.attn(t, t, t, need_weights=False)[0]
        t = t + self.mlp(t)
        return self.head(t[:, 0])


def test_disconnected_path_is_not_explained_as_a_vanishing_product() -> None:
    model = _BatchAxisAttention()
    x = torch.randn(8, 5, 12)
    # independently: no gradient reaches the patch embedding at all
    F.cross_entropy(model(x), torch.randint(0, 4, (8,))).backward()
    assert model.patch.weight.grad is not None and float(model.patch.weight.grad.abs().max()) == 0.0
    doc = gradhealth.check_module(_BatchAxisAttention(), x, seeds=2, verify=False)
    found = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert found
    ev = found[0].evidence.model_extra or {}
    assert ev.get("disconnected") is True
    assert "does not depend on" in found[0].explanation and "batch_first" in found[0].explanation
    assert "product is exactly 0" not in found[0].explanation
    assert not [r for r in found[0].remedies if r.id in ("batch_norm", "he_init", "init")]
