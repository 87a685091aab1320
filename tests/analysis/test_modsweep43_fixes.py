"""modsweep43: the depth ratio judged along the path of the loss's main term (not against a layer
that feeds only a small-weighted auxiliary term), ... Every module is built here; expected numbers
come from theory or an independent torch computation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import gradhealth


class _AuxHead(nn.Module):
    """A He-init ReLU trunk ending in logits under cross-entropy, and a decoder reading the logits
    back to the input under an MSE term weighted ``aux_w`` (CapsNet's margin loss + 0.0005 x
    reconstruction). ``gain`` scales the trunk's hidden weights (1: He's, critical)."""

    def __init__(self, aux_w: float, gain: float = 1.0) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                   nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
        self.dec = nn.Sequential(nn.Linear(10, 128), nn.ReLU(), nn.Linear(128, 64))
        self.aux_w = aux_w
        torch.manual_seed(0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for i in (2, 4):
                self.trunk[i].weight.mul_(gain)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.trunk(x)
        return F.cross_entropy(logits, y) + self.aux_w * F.mse_loss(self.dec(logits), x)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)


def _hidden_gradients(model: _AuxHead, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||dL/dh|| at the outputs of trunk.0, trunk.2, trunk.4, dec.0 from torch's own backward."""
    net = model.double()
    outs: list[torch.Tensor] = []
    for i in (0, 2, 4):
        net.trunk[i].register_forward_hook(lambda _m, _i, o: (o.retain_grad(), outs.append(o))[1])
    net.dec[0].register_forward_hook(lambda _m, _i, o: (o.retain_grad(), outs.append(o))[1])
    net(x.double(), y).backward()
    return [float(o.grad.norm()) for o in outs]  # type: ignore[union-attr]


def test_small_weighted_auxiliary_head_is_not_read_as_growth_through_depth() -> None:
    x, y = _inputs()
    grads = _hidden_gradients(_AuxHead(5e-4), x, y)
    # independent: the main path (trunk.0 .. trunk.4) is steady at He's init, while the layer that
    # feeds only the 5e-4 term gets about 5e-4 of it: against it the ratio is over a thousand
    assert 0.3 < grads[0] / grads[2] < 3
    assert grads[0] / grads[3] > 300
    doc = gradhealth.check_module(_AuxHead(5e-4), (x, y), loss="sum", seeds=1, verify=False)
    assert "exploding_gradient" not in {f.code for f in doc.findings}, doc.summary


def test_growth_on_the_main_path_is_still_found_beside_an_auxiliary_head() -> None:
    x, y = _inputs()
    model = _AuxHead(5e-4, gain=4.0)  # each hidden ReLU layer 4x He's scale: the gradient grows ~4x a layer
    grads = _hidden_gradients(_AuxHead(5e-4, gain=4.0), x, y)
    assert grads[0] / grads[2] > 10  # (two 4x layers between them: about 16x)
    doc = gradhealth.check_module(model, (x, y), loss="sum", seeds=1, verify=False)
    assert "exploding_gradient" in {f.code for f in doc.findings}, doc.summary


class _StepHead(nn.Module):
    """One head applied at every decoder step, the steps joined with ``torch.cat`` (the PyTorch
    seq2seq tutorial's decoder loop); ``squash``: the head's final function."""

    def __init__(self, squash: str) -> None:
        super().__init__()
        self.a, self.b, self.squash = nn.Linear(20, 32), nn.Linear(32, 5), squash

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, 20] -> [B * T, 5]
        outs = []
        for t in range(x.shape[1]):
            logits = self.b(torch.relu(self.a(x[:, t])))
            outs.append((F.log_softmax(logits, dim=-1) if self.squash == "log_softmax" else logits)[:, None])
        return torch.cat(outs, dim=1).reshape(-1, 5)


def _one_hot(n: int) -> torch.Tensor:
    return torch.eye(5)[torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(2))]


def test_log_softmax_per_step_joined_by_cat_is_an_output_loss_mismatch_under_mse() -> None:
    x = torch.randn(32, 4, 20, generator=torch.Generator().manual_seed(0))
    out = _StepHead("log_softmax")(x)
    # independent: every entry is a log-probability (<= 0, each row's exp sums to 1), so a one-hot
    # target of 1 is out of reach: the squared error per row is at least (0 - 1)^2 = 1 at its class
    assert bool((out <= 0).all()) and torch.allclose(out.exp().sum(-1), torch.ones(len(out)), atol=1e-5)
    doc = gradhealth.check_module(_StepHead("log_softmax"), x, loss="mse", targets=_one_hot(128), seeds=1, verify=False)
    codes = {f.code: f.severity for f in doc.findings}
    assert codes.get("output_loss_mismatch") == "error", doc.summary
    # the same loop on raw logits can reach any target: nothing to judge
    doc = gradhealth.check_module(_StepHead("none"), x, loss="mse", targets=_one_hot(128), seeds=1, verify=False)
    assert "output_loss_mismatch" not in {f.code for f in doc.findings}


class _PickedStepHead(_StepHead):
    """The same loop over one sequence given as [T, 20], batched as one, its first (only) row picked
    out of the joined steps (``torch.cat(outs, dim=1)[0]``: a toy transformer's training forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, 20] -> [T, 5]
        x = x[None]
        outs = []
        for t in range(x.shape[1]):
            logits = self.b(torch.relu(self.a(x[:, t])))
            outs.append((F.log_softmax(logits, dim=-1) if self.squash == "log_softmax" else logits)[:, None])
        return torch.cat(outs, dim=1)[0]


def test_log_softmax_per_step_picked_out_of_the_join_is_still_the_outputs_squash() -> None:
    x = torch.randn(128, 20, generator=torch.Generator().manual_seed(0))
    out = _PickedStepHead("log_softmax")(x)
    # independent: the rows picked out are still log-probabilities
    assert torch.allclose(out.exp().sum(-1), torch.ones(len(out)), atol=1e-5)
    doc = gradhealth.check_module(_PickedStepHead("log_softmax"), x, loss="mse", targets=_one_hot(128), seeds=1,
                                  verify=False)
    assert {f.code: f.severity for f in doc.findings}.get("output_loss_mismatch") == "error", doc.summary
    doc = gradhealth.check_module(_PickedStepHead("none"), x, loss="mse", targets=_one_hot(128), seeds=1, verify=False)
    assert "output_loss_mismatch" not in {f.code for f in doc.findings}


class _ListBlocks(nn.Module):
    """Three Linear blocks kept in a plain Python list (not nn.ModuleList), and a registered head."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = [nn.Linear(32, 32) for _ in range(3)]
        self.unused = [nn.Linear(32, 32)]  # held outside but never called: no fault of training
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = torch.relu(b(x))
        return self.head(x)


def test_modules_in_a_plain_list_are_named_as_never_updated() -> None:
    model = _ListBlocks()
    # independent: torch registers only the head; the blocks' 3 x (32*32 + 32) weights are not in
    # model.parameters(), so an optimizer built from it never sees them
    assert sum(p.numel() for p in model.parameters()) == 32 * 4 + 4
    doc = gradhealth.check_module(model, torch.randn(16, 32), seeds=1, verify=False,
                                  optimizer={"type": "adam", "lr": 1e-3})
    assert doc.simulation is not None
    notes = [n for n in doc.simulation.notes if n.startswith("parameters not registered")]
    assert len(notes) == 1, doc.simulation.notes
    assert f"{3 * (32 * 32 + 32):,} weights" in notes[0] and "blocks (a plain list, 6 parameter tensors)" in notes[0]
    assert "unused" not in notes[0] and "never updates" in notes[0] and "nn.ModuleList" in notes[0]
    # the float64 fallback is put down to the list, not to a tensor the forward makes itself
    assert not any("makes or casts itself" in n for n in doc.simulation.notes)


def test_registered_blocks_get_no_such_note() -> None:
    model = _ListBlocks()
    model.blocks = nn.ModuleList(model.blocks)  # type: ignore[assignment]
    doc = gradhealth.check_module(model, torch.randn(16, 32), seeds=1, verify=False)
    assert doc.simulation is not None
    assert not any(n.startswith("parameters not registered") for n in doc.simulation.notes)


class _Threshold(nn.Module):
    """A loss taken of a hard threshold (road_building_extraction's train script: (p > 0.3).float())."""

    def __init__(self, cut: str) -> None:
        super().__init__()
        self.a, self.cut = nn.Linear(8, 3), cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.a(x))
        if self.cut == "threshold":  # noqa: SIM108 - one line per cut, for the line the refusal names
            mask = (p > 0.3).to(x.dtype)  # the cut
        else:
            mask = p.argmax(-1).to(x.dtype)  # the cut
        return (mask - 1).pow(2).mean()


def test_a_loss_with_no_path_to_the_weights_is_refused_with_the_cut_and_its_line() -> None:
    import inspect

    from gradhealth.analysis.module_check import ModelRunError

    for cut, op in (("threshold", "`>` (a comparison)"), ("argmax", "`argmax`")):
        model = _Threshold(cut)
        x = torch.randn(16, 8)
        assert not model(x).requires_grad  # independent: torch's own graph has no path to a weight
        lines, start = inspect.getsourcelines(_Threshold)
        lineno = start + next(i for i, text in enumerate(lines)
                              if "# the cut" in text and (cut == "threshold") == (">" in text))
        try:
            gradhealth.check_module(model, x, loss="sum", seeds=1, verify=False)
        except ModelRunError as exc:
            text = str(exc)
        else:
            raise AssertionError("no refusal")
        assert "the loss does not depend on any weight" in text and op in text, text
        assert f"test_modsweep43_fixes.py:{lineno}" in text, text


class _LogSigmaVAE(nn.Module):
    """A VAE whose KL term takes log(sigma^2) of a raw Linear output (JRogul's): no batch norm, no
    skip path; the loss is returned by the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 128), nn.ReLU())
        self.mu, self.sigma = nn.Linear(128, 64), nn.Linear(128, 64)
        self.decoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.encoder(image)
        mu, sigma = self.mu(h), self.sigma(h)
        out = self.decoder(mu + sigma * torch.randn_like(sigma))
        kl = -torch.sum(1 + torch.log(sigma.pow(2)) - mu.pow(2) - sigma.pow(2))
        return F.binary_cross_entropy(out, image, reduction="sum") + kl


def test_backward_growth_is_not_put_down_to_batch_norm_or_skips_the_model_does_not_have() -> None:
    torch.manual_seed(0)
    model = _LogSigmaVAE()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # theory: d/d sigma of -log(sigma^2) is -2/sigma, unbounded as a raw Linear output nears 0
    s = torch.tensor([0.5, 0.01], requires_grad=True)
    (-torch.log(s.pow(2))).sum().backward()
    assert torch.allclose(s.grad, -2 / s.detach())  # type: ignore[arg-type]
    doc = gradhealth.check_module(model, torch.rand(128, 784), loss="sum", seeds=2, input_range=(0, 1),
                                  optimizer={"type": "adam", "lr": 0.01}, verify=False)
    found = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert found, doc.summary
    assert "batch norm's" not in found[0].explanation and "skip paths)" not in found[0].explanation
    assert "log(sigma^2)" in found[0].explanation
