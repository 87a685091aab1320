"""A trained checkpoint's gradient can grow past the through-depth bar by what its weights learned,
not their scale: the gradient a trained classifier's head sends back lies in few directions (a
2-class softmax's in one), and training lines each layer's strongest directions up with the next
one's, so the gradient grows along them far more than i.i.d. weights of the same scale would. A
trained Keras CNN under Adam (every kernel at 0.27-1.4x the scale that keeps the signal) grew its
gradient 151x where its weights' scale gives about 2x, and read "exploding_gradient warning, weights
too large" (kerassweep30 F1). That is a note naming the learned structure; the same structure with
weights x8, whose scale gives the growth itself, stays a warning. The forward's steadiness beside a
backward-only growth under Adam is judged per layer step, not as one total over any depth."""

from __future__ import annotations

import math

import torch
from torch import nn

from gradhealth import check_module

WIDTH, HIDDEN, ALIGNED = 64, 6, 3.0


def _aligned_chain(scale: float = 1.0) -> nn.Sequential:
    """32 -> 64 -> (6 x 64) -> 2, linear hidden layers (as a trained CNN's linear convs): every
    hidden weight i.i.d. at LeCun's scale (gain 1 for a linear layer) plus a rank-one piece of
    singular value ``ALIGNED`` along d_l d_(l-1)^T, its input direction the previous layer's output
    direction and the last one's output direction the head's (row 0 - row 1): the 2-class head's
    gradient is passed back along the chain about 3x a step. ``scale`` multiplies every weight."""
    torch.manual_seed(0)
    layers = [nn.Linear(32, WIDTH)] + [nn.Linear(WIDTH, WIDTH) for _ in range(HIDDEN)] + [nn.Linear(WIDTH, 2)]
    dirs = [torch.nn.functional.normalize(torch.randn(WIDTH), dim=0) for _ in range(HIDDEN + 1)]
    with torch.no_grad():
        for m in layers:
            m.weight.normal_(0, 1 / math.sqrt(m.in_features))
            m.bias.zero_()
        head = layers[-1]
        head.weight[0] = dirs[-1] / 2
        head.weight[1] = -dirs[-1] / 2
        for k, m in enumerate(layers[1:-1]):
            m.weight.add_(ALIGNED * torch.outer(dirs[k + 1], dirs[k]))
        for m in layers:
            m.weight.mul_(scale)
    return nn.Sequential(*layers)


def _measured(model: nn.Sequential, x: torch.Tensor) -> tuple[float, float]:
    """(||dL/dh|| at the first layer's output over the last hidden layer's, the product over the
    hidden layers of sqrt(fan_in * var(W)): what i.i.d. weights of their scales give), computed
    here with autograd, independently of the tool."""
    hs = []
    h = x
    for m in model:
        h = m(h)
        h.retain_grad()
        hs.append(h)
    nn.functional.cross_entropy(h, torch.randint(0, 2, (x.shape[0],), generator=torch.Generator().manual_seed(1))).backward()
    ratio = float(hs[0].grad.norm() / hs[-2].grad.norm())
    predicted = math.prod(math.sqrt(m.in_features * float(m.weight.detach().var())) for m in list(model)[1:-1])
    return ratio, predicted


def _exploding(model: nn.Module, optimizer: dict | None = None):
    doc = check_module(model, torch.randn(64, 32), loss="cross_entropy", verify=False, seeds=2, trained=True,
                       optimizer=optimizer or {"type": "adam", "lr": 1e-5})
    return doc, next((f for f in doc.findings if f.code == "exploding_gradient"), None)


def test_the_chain_grows_the_gradient_past_the_bar_where_its_scale_does_not() -> None:
    # the premise, measured here: 100-1e4x through depth, the weights' scale under 2x of it
    ratio, predicted = _measured(_aligned_chain(), torch.randn(64, 32))
    assert 100 < ratio < 1e4 and predicted < 2


def test_a_checkpoints_learned_gradient_growth_is_a_note_naming_the_structure() -> None:
    doc, f = _exploding(_aligned_chain())
    assert f is not None and f.severity == "info"
    ev = f.evidence.model_dump()
    assert 100 < ev["grad_ratio"] < 1e4
    assert ev["learned_structure"] is True and ev["note_reason"] == "learned_structure"
    _, predicted = _measured(_aligned_chain(), torch.randn(64, 32))
    assert math.isclose(ev["weight_scale_growth"], predicted, rel_tol=0.1)
    assert "structure the weights learned" in f.summary
    assert doc.status == "healthy"


def test_under_sgd_too_the_learned_growth_is_a_note() -> None:
    # the judgement is the weights' scale against the growth, whatever optimizer trains on
    _, f = _exploding(_aligned_chain(), {"type": "sgd", "lr": 0.01})
    assert f is not None and f.severity == "info" and f.evidence.model_dump()["learned_structure"] is True


def test_weights_x8_give_the_growth_by_their_scale_and_stay_a_warning() -> None:
    doc, f = _exploding(_aligned_chain(8.0))
    assert f is not None and f.severity in ("warning", "error")
    assert not f.evidence.model_dump().get("learned_structure")
    assert doc.status != "healthy"


def test_the_same_weights_at_initialisation_are_not_judged_learned() -> None:
    # a live module not said to be trained: nothing was learned, the growth stays a finding
    doc = check_module(_aligned_chain(), torch.randn(64, 32), loss="cross_entropy", verify=False, seeds=2,
                       optimizer={"type": "sgd", "lr": 0.01})
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    assert f.severity == "warning" and not f.evidence.model_dump().get("learned_structure")
