"""The stability bound's sharpness leaves out scale-invariant weights (found beside specsweep11's
plainnet56_bn_cifar, and on a live plain 30-layer conv + BN module at SGD 0.1 momentum 0.9, told to
lower its rate to 7.36e-05 from an all-parameter lambda_max of 5.16e3 though its trial steps did not
diverge). The weights a batch norm reads are scale-invariant (L(c w) = L(w)): their curvature, about
1/|w|^2, tunes itself as their norm grows (Arora, Li & Lyu 2019), so the bound lr x lambda_max <
2 (1 + momentum) is judged on the Hessian over the other parameters. Checked against a power
iteration by hand over the parameter set chosen by layer type here."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import gradhealth
import gradhealth.analysis.module_check as MC
from gradhealth.analysis.graph import loss_of, make_inputs

pytestmark = pytest.mark.filterwarnings("ignore")


def _plain(depth: int, bn: bool) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    c = 3
    for _ in range(depth):
        layers += [nn.Conv2d(c, 8, 3, padding=1), *([nn.BatchNorm2d(8)] if bn else []), nn.ReLU()]
        c = 8
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def _checked(model: nn.Module, lr: float, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Any]:
    """(the diagnosis, the sharpness the check measured, the run it measured it on)."""
    seen: dict[str, Any] = {}
    measure = MC.initial_sharpness

    def spy(run: Any, *args: Any, **kwargs: Any) -> Any:
        seen["run"], seen["sharp"] = run, measure(run, *args, **kwargs)
        return seen["sharp"]

    monkeypatch.setattr(MC, "initial_sharpness", spy)
    doc = gradhealth.check_module(model, torch.randn(16, 3, 8, 8), verify=False,
                                  optimizer={"type": "sgd", "lr": lr, "momentum": 0.9})
    return doc, seen["sharp"], seen["run"]


def _power_by_hand(model: nn.Module, run: Any, keep: set[str], steps: int = 200) -> float:
    """lambda_max of the loss Hessian over the parameters named ``keep`` (the others held fixed), on
    the check's seed-0 batch and cross-entropy targets, by plain power iteration on H + s I (s a
    bound on the most negative eigenvalue's size, from a first iteration), in float64."""
    net = copy.deepcopy(model).double().train()
    loss, _ = loss_of("cross_entropy", net(*make_inputs(run.inputs, 0)), 0)
    params = [p for n, p in net.named_parameters() if n in keep]
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hv(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return [h.detach() for h in torch.autograd.grad(grads, params, v, retain_graph=True)]

    def top(shift: float) -> float:
        gen = torch.Generator().manual_seed(1)
        v = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
        value = 0.0
        for _ in range(steps):
            norm = torch.sqrt(sum((x * x).sum() for x in v))
            v = [x / norm for x in v]
            w = [h + shift * x for h, x in zip(hv(v), v, strict=True)]
            value = float(sum((x * y).sum() for x, y in zip(v, w, strict=True)))
            v = w
        return value - shift

    big = abs(top(0.0))  # the eigenvalue largest in size bounds every other's
    return top(big)


def test_a_plain_bn_conv_nets_sharpness_leaves_out_its_bn_fed_convs(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _plain(12, bn=True)
    doc, sharp, run = _checked(model, 1.0, monkeypatch)
    convs = {n for n, p in model.named_parameters() if isinstance(model.get_submodule(n.rsplit(".", 1)[0]), nn.Conv2d)}
    rest = {n for n, _ in model.named_parameters()} - convs
    assert set(getattr(sharp, "scale_invariant", convs)) == convs  # every conv feeds a batch norm; the BN's and head's stay
    over_rest, over_all = _power_by_hand(model, run, rest), _power_by_hand(model, run, rest | convs)
    assert over_all > 20 * over_rest  # the BN-fed convs' 1/|w|^2 curvature is what was judged before
    assert sharp.value == pytest.approx(over_rest, rel=0.05)
    # lr 1 x lambda_max over all parameters (~27) is far past 2 (1 + 0.9); over the rest (~0.5) it is not
    assert 1.0 * over_all > 3.8 > 1.0 * over_rest
    assert "large_updates" not in {f.code for f in doc.findings}


def test_a_plain_conv_net_without_norms_at_a_rate_too_large_is_still_told(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _plain(3, bn=False)
    doc, sharp, run = _checked(model, 40.0, monkeypatch)
    assert getattr(sharp, "scale_invariant", ()) == ()
    every = {n for n, _ in model.named_parameters()}
    exact = _power_by_hand(model, run, every)
    # the check's power iteration stops once its Rayleigh quotient moves under 1% a product: a
    # lower bound, within 10% of the converged figure here
    assert 0.9 * exact <= sharp.value <= 1.001 * exact
    found = next(f for f in doc.findings if f.code == "large_updates")
    evidence = found.evidence.model_dump()
    assert found.severity == "error"
    assert evidence["sharpness"] == sharp.value
    assert evidence["lr_times_sharpness"] == pytest.approx(40.0 * sharp.value)
    assert evidence["stability_bound"] == pytest.approx(2 * (1 + 0.9))
    assert evidence["diverges"] is True
    assert "lower_learning_rate" in [r.id for r in found.remedies]
