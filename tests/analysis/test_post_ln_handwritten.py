"""Post-LN stacks whose LayerNorm or RMSNorm is written by hand (modsweep24, tf_postln_enc24_lr1e-3).

The norm is recognised by what it computes on the autograd graph (a per-position division by the
root of a variance or mean square over the feature dimension), not by a class or node name.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.graph import consumers, normalised_outputs
from gradhealth.analysis.thresholds import Thresholds

DEPTH = Thresholds().post_ln_depth


class Normaliser(nn.Module):
    """hyunwoongko's / many BERT ports' LayerNorm: (x - mean) / sqrt(var + eps) * gamma + beta."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gamma, self.beta = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return self.gamma * ((x - mean) / torch.sqrt(var + 1e-12)) + self.beta


class StdScaler(nn.Module):
    """The Annotated Transformer's: a_2 * (x - mean) / (std + eps) + b_2."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.a_2, self.b_2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + 1e-6) + self.b_2


class RootMeanSquare(nn.Module):
    """An RMSNorm as LLaMA ports write it: x * rsqrt(mean(x^2) + eps) * g, computed in float32."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        return self.g * h.to(x.dtype)


NORMS = {"layer_norm": Normaliser, "std_norm": StdScaler, "rms_norm": RootMeanSquare}


class Layer(nn.Module):
    """Two sublayers (a token mixer and a feed-forward), each added back and normalised:
    Post-LN x = norm(x + f(x)), or Pre-LN x = x + f(norm(x))."""

    def __init__(self, d: int, norm: type[nn.Module], post: bool) -> None:
        super().__init__()
        self.post = post
        self.n1, self.n2 = norm(d), norm(d)
        self.mix = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post:
            x = self.n1(x + self.mix(x))
            return self.n2(x + self.ff(x))
        x = x + self.mix(self.n1(x))
        return x + self.ff(self.n2(x))


class Stack(nn.Module):
    def __init__(self, norm: type[nn.Module], post: bool, layers: int = DEPTH, d: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, d)
        self.layers = nn.ModuleList(Layer(d, norm, post) for _ in range(layers))
        self.final = nn.Identity() if post else norm(d)
        self.head = nn.Linear(d, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.final(x).mean(1))


def _norms_found(model: nn.Module, x: torch.Tensor, norm: type[nn.Module]) -> tuple[int, int]:
    """(how many of ``norm``'s calls the graph walk recognises from their input, how many calls)."""
    inputs: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
               for m in model.modules() if isinstance(m, norm)]
    loss = model(x).square().mean()
    for h in handles:
        h.remove()
    readers = consumers(loss.grad_fn)
    return sum(bool(normalised_outputs(t.grad_fn, readers)) for t in inputs), len(inputs)


def _post_ln(doc: object) -> list[object]:
    return [f for f in doc.findings if f.code == "post_ln_depth_risk"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("norm", list(NORMS))
def test_a_post_ln_stack_with_a_hand_written_norm_is_a_depth_risk(norm: str) -> None:
    # the same maths as nn.LayerNorm / nn.RMSNorm, in a class of any name: the stack is Post-LN
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (8, 10))
    doc = check_module(Stack(NORMS[norm], post=True), ids, seeds=2, verify=False)
    [f] = _post_ln(doc)
    assert f.severity == "warning" and f.evidence.model_dump()["depth"] == DEPTH  # type: ignore[attr-defined]
    # the same stack, layer for layer, as with torch's own nn.LayerNorm in its place
    torch.manual_seed(0)
    [own] = _post_ln(check_module(Stack(nn.LayerNorm, post=True), ids, seeds=2, verify=False))
    assert f.evidence.layers == own.evidence.layers  # type: ignore[attr-defined]


@pytest.mark.parametrize("norm", list(NORMS))
def test_the_same_hand_written_norms_placed_pre_ln_are_no_depth_risk(norm: str) -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (8, 10))
    model = Stack(NORMS[norm], post=False)
    # every norm is recognised as one (2 per layer and the final one) ...
    assert _norms_found(model, ids, NORMS[norm]) == (2 * DEPTH + 1, 2 * DEPTH + 1)
    # ... and, its output feeding the next sublayer rather than the next sum, is no Post-LN block
    assert _post_ln(check_module(model, ids, seeds=2, verify=False)) == []


class NormedMLP(nn.Module):
    """A plain MLP, Linear -> norm -> ReLU per layer, with no residual sum."""

    def __init__(self, norm: type[nn.Module], layers: int = DEPTH + 2, d: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(*(m for _ in range(layers) for m in (nn.Linear(d, d), norm(d), nn.ReLU())))
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.mark.parametrize("norm", list(NORMS))
def test_a_plain_mlp_with_a_hand_written_norm_has_no_post_ln_finding(norm: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 32)
    model = NormedMLP(NORMS[norm])
    found, calls = _norms_found(model, x, NORMS[norm])
    assert found == calls == DEPTH + 2  # the norms are recognised, on a 2-D (batch, feature) input too
    assert _post_ln(check_module(model, x, seeds=2, verify=False)) == []


def test_statistics_that_do_not_normalise_each_position_are_not_norms() -> None:
    # over the batch (a BatchNorm by hand), over the whole tensor, by a first moment, or a softmax:
    # each divides by a reduction, none divides each position by its own root mean square
    x = torch.randn(8, 10, 16, requires_grad=True)
    s = x * 1.0
    outs = {
        "batch": (s - s.mean(0, keepdim=True)) / torch.sqrt(s.var(0, keepdim=True) + 1e-5),
        "global": s / s.std(),
        "first_moment": s / s.abs().mean(-1, keepdim=True),
        "softmax": s.exp() / s.exp().sum(-1, keepdim=True),
        "times_sigma": s * s.std(-1, keepdim=True),
    }
    loss = sum(o.sum() for o in outs.values())
    assert isinstance(loss, torch.Tensor)
    assert normalised_outputs(s.grad_fn, consumers(loss.grad_fn)) == []
    # while the per-position norm of the same stream is found
    ln = (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, keepdim=True) + 1e-5)
    assert normalised_outputs(s.grad_fn, consumers((loss + ln.sum()).grad_fn)) == [ln.grad_fn]
