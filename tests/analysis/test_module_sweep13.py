"""What the thirteenth live-module sweep found: an activation on a residual branch was folded into the
layer whose output the stream carries on, so that layer's gradient was read as the branch's share."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module


class _PreActivationResidual(nn.Module):
    """stem -> blocks h = h + W2 relu(W1 relu(h)) (a small branch, no norm) -> mid -> blocks -> head:
    the activation on each branch reads the stream, which also goes on past the block."""

    def __init__(self, blocks: int = 4, width: int = 64) -> None:
        super().__init__()
        self.stem, self.mid, self.head = nn.Linear(32, width), nn.Linear(width, width), nn.Linear(width, 10)
        self.w1 = nn.ModuleList(nn.Linear(width, width) for _ in range(2 * blocks))
        self.w2 = nn.ModuleList(nn.Linear(width, width) for _ in range(2 * blocks))
        with torch.no_grad():
            for w in self.w2:
                w.weight.mul_(0.01)
        self.blocks = blocks

    def run(self, h: torch.Tensor, ks: range) -> torch.Tensor:
        for k in ks:
            h = h + self.w2[k](F.relu(self.w1[k](F.relu(h))))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.run(self.stem(x), range(self.blocks))
        return self.head(self.run(self.mid(h), range(self.blocks, 2 * self.blocks)))


def test_a_layer_whose_output_a_branch_activation_reads_is_read_on_the_stream() -> None:
    torch.manual_seed(0)
    model = _PreActivationResidual()
    doc = check_module(model, torch.randn(64, 32), seeds=1, verify=False)
    layers = {layer.name: layer for layer in doc.layers}
    assert layers["stem"].activation is None and layers["mid"].activation is None
    assert not [f for f in doc.findings if f.code in ("vanishing_gradient", "exploding_gradient")]
    # the independent reading: autograd on the stream, float64, a batch of the same size
    m = model.double()
    x = torch.randn(64, 32, dtype=torch.float64)
    stem = m.stem(x)
    stem.retain_grad()
    mid = m.mid(m.run(stem, range(4)))
    mid.retain_grad()
    F.cross_entropy(m.head(m.run(mid, range(4, 8))), torch.randint(0, 10, (64,))).backward()
    truth = float(stem.grad.norm() / mid.grad.norm())
    assert layers["stem"].output_grad_norm / layers["mid"].output_grad_norm == pytest.approx(truth, rel=0.3)
    # an activation only its branch reads stays the layer's, as before
    assert layers["w1.0"].activation == "relu"


class _Gated(nn.Module):
    """h * sigmoid(gate(h)), the gate's output detached (``mode="detach"``), or detached and added back
    times 0 (``"zero"``: the graph kept, the gradient exactly 0)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.a, self.gate, self.b, self.head = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 10)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x))
        g = torch.sigmoid(self.gate(h))
        if self.mode == "detach":
            g = g.detach()
        elif self.mode == "zero":
            g = g.detach() + 0.0 * g
        return self.head(F.relu(self.b(h * g)))


@pytest.mark.parametrize("mode", ["detach", "zero"])
def test_a_layer_in_the_middle_whose_output_is_detached_gets_no_gradient_and_is_named(mode: str) -> None:
    torch.manual_seed(0)
    model, x = _Gated(mode), torch.randn(64, 32)
    # the independent fact: autograd gives the gate's weights a zero gradient, the others not
    nn.functional.cross_entropy(model(x), torch.randint(0, 10, (64,))).backward()
    assert model.gate.weight.grad is None or not model.gate.weight.grad.any()
    assert model.a.weight.grad.abs().sum() > 0
    doc = check_module(_Gated(mode), x, seeds=2)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "warning" and f.evidence.layers == ["gate"] and ".detach()" in f.summary
    assert not f.remedies  # a new init or a norm does not bring back what a detach cuts


def test_an_ungated_twin_and_a_head_the_loss_does_not_read_are_not_named() -> None:
    torch.manual_seed(0)
    assert not check_module(_Gated("none"), torch.randn(64, 32), seeds=2, verify=False).findings

    class TwoHeads(nn.Module):  # an auxiliary head returned beside the logits, no detach
        def __init__(self) -> None:
            super().__init__()
            self.a, self.main, self.aux = nn.Linear(32, 64), nn.Linear(64, 10), nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = F.relu(self.a(x))
            return self.main(h), self.aux(h)

    torch.manual_seed(0)
    assert not [f for f in check_module(TwoHeads(), torch.randn(64, 32), seeds=2, verify=False).findings
                if f.code == "vanishing_gradient"]


class _Additive(nn.Module):
    """Additive attention's energies tanh(W k + U q_t) at every one of ``steps`` decoder steps, W and
    U drawn N(0, 1): the energies sit in tanh's tails."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.w, self.u, self.v, self.steps = nn.Linear(32, 64), nn.Linear(32, 64), nn.Linear(64, 1), steps
        with torch.no_grad():
            self.w.weight.normal_(0, 1.0), self.u.weight.normal_(0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys, q, out = self.w(x), x[:, 0], 0.0
        for _ in range(self.steps):
            scores = self.v(torch.tanh(keys + self.u(q)[:, None])).squeeze(-1)
            q = (torch.softmax(scores, -1)[..., None] * x).sum(1)
            out = out + q
        return out


@pytest.mark.parametrize("steps", [1, 6])
def test_an_activation_called_at_every_step_of_a_loop_is_measured_at_its_first(steps: int) -> None:
    torch.manual_seed(0)
    model, x = _Additive(steps), torch.randn(16, 12, 32)
    with torch.no_grad():  # the independent fact: the first step's energies, |tanh| > 0.995 or so
        first = torch.tanh(model.w(x) + model.u(x[:, 0])[:, None])
    doc = check_module(model, x, loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "saturation"]
    assert f.evidence.layers == ["u>tanh"]
    assert float((first.abs() > 0.99).double().mean()) > 0.3 and f.evidence.value > 0.3


def test_a_forward_that_squashes_its_logits_into_its_own_loss_is_not_saturated() -> None:
    # RetinaNet's classifier at the -4.6 prior (probability 0.01), its sigmoid taken at every pyramid
    # level inside a focal loss the forward computes: saturated by design, the network's output
    class Focal(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.cls = nn.Linear(16, 32), nn.Linear(32, 20)
            nn.init.constant_(self.cls.bias, -4.6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            loss = 0.0
            for level in range(3):
                z = self.cls(F.relu(self.body(x * (level + 1)))).view(-1, 4, 5).flatten(1)
                p = torch.sigmoid(z)  # the modulating factor; the cross-entropy takes the logits themselves
                ce = F.binary_cross_entropy_with_logits(z, torch.zeros_like(z), reduction="none")
                loss = loss + (p ** 2 * ce).sum()
            return loss

    torch.manual_seed(0)
    doc = check_module(Focal(), torch.randn(16, 16), loss="sum", seeds=2, verify=False)
    assert "cls>sigmoid" in {layer.name for layer in doc.layers}  # measured, at its first call
    assert not [f for f in doc.findings if f.code == "saturation"]


def test_an_activation_swap_names_every_layer_it_swaps() -> None:
    # inputs 50x their scale saturate the first tanh only; the verified swap changes every tanh, and its
    # words said "in ls.0" (msweep13's PINN)
    class Tanh3(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ls = nn.ModuleList([nn.Linear(2, 32), nn.Linear(32, 32), nn.Linear(32, 32)])
            self.out = nn.Linear(32, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = 50.0 * x
            for layer in self.ls:
                h = torch.tanh(layer(h))
            return self.out(h)

    torch.manual_seed(0)
    doc = check_module(Tanh3(), torch.randn(64, 2), loss="mse", seeds=2)
    [f] = [f for f in doc.findings if f.code == "saturation"]
    assert f.evidence.layers == ["ls.0"]
    swap = next(r for r in f.remedies if r.id == "relu_family_activation")
    assert "every tanh layer (ls.0, ls.1, ls.2)" in swap.change


class _SigmoidDecoder(nn.Module):
    """An autoencoder whose output sigmoid sits behind a bias of ``bias``."""

    def __init__(self, bias: float) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(32, 16), nn.Linear(16, 32)
        nn.init.constant_(self.dec.bias, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(torch.relu(self.enc(x))))


def test_an_output_nearly_all_in_its_tails_is_a_warning_and_a_fix_is_measured() -> None:
    # four module sweeps labelled an output saturated at initialisation a defect (a sigmoid output behind
    # a bias of 8, a generator's tanh at huge weights); a trained model's confident outputs sit there by
    # design: a warning at most, from 90% of the output units
    torch.manual_seed(0)
    model, x = _SigmoidDecoder(8.0), torch.randn(64, 32)
    with torch.no_grad():  # the independent fact: sigmoid within 0.02 of 1 for nearly every unit
        share = float((model(x) > 0.98).double().mean())
    assert share > 0.9
    doc = check_module(model, x, loss="mse", seeds=2)
    [f] = [f for f in doc.findings if f.code == "saturation"]
    assert f.severity == "warning" and f.evidence.layers == ["dec"] and f.evidence.model_dump()["output"] is True
    assert f.evidence.value == pytest.approx(share, abs=0.05)
    assert "relu_family_activation" not in {r.id for r in f.remedies}  # the output's range is the model's
    fix = next(r for r in f.remedies if r.id == "zero_bias")
    assert fix.verified is not None and fix.verified.fixed and fix.verified.after is not None and fix.verified.after < 0.1
    torch.manual_seed(0)
    assert not check_module(_SigmoidDecoder(0.0), x, loss="mse", seeds=2, verify=False).findings
