"""The live-module door judges a remedy's re-simulation by the spec door's rules (maintainers' review
of the twin ``judge`` functions): a finding the unchanged network already shows on the very seeds a
remedy was re-simulated on (a verdict on one seed) is no side effect of the remedy's."""

from __future__ import annotations

import torch
from torch import nn

from gradhealth.analysis.graph import InputSpec, make_inputs
from gradhealth.analysis.module_check import check_module

D, B, SEEDS = 8, 4, 4


def _dead_in_seed_0_only() -> nn.Module:
    """x -> relu(x_i - c) -> Linear(1, 8) -> ReLU -> Linear(8, 1) -> ReLU, the first unit off for the
    whole of seed 0's batch (every sample's x_i below c) and on for some sample of every other seed:
    the draws are the simulation's own (standard normal, :func:`make_inputs`), and ``i`` and ``c`` are
    chosen from them, so seed 0 is born dead by construction and no gradient reaches layer 0 there."""
    batches = [make_inputs([InputSpec(shape=(B, D))], s)[0] for s in range(SEEDS)]

    def split(i: int, sign: float) -> tuple[float, float]:  # (seed 0's top of sign * x_i, the other seeds' lowest top)
        tops = [float((sign * b[:, i]).max()) for b in batches]
        return tops[0], min(tops[1:])

    i, sign = max(((i, sign) for i in range(D) for sign in (1.0, -1.0)), key=lambda k: split(*k)[1] - split(*k)[0])
    top0, others = split(i, sign)
    assert others - top0 > 0.1, "some input coordinate separates seed 0's batch from every other seed's"
    c = (top0 + others) / 2
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, 1), nn.ReLU(), nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1), nn.ReLU())
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0, i] = sign
        net[0].bias.fill_(-c)
    return net


def test_a_finding_the_original_shows_on_the_remedys_seeds_is_not_blamed_on_the_remedy() -> None:
    net = _dead_in_seed_0_only()
    x = torch.randn(B, D)
    # the unchanged network on seed 0 alone: no gradient reaches layer 0 (a vanishing gradient, dead units)
    alone = {f.code: f.severity for f in check_module(net, x, loss="mse", seeds=1, target_range=(-1, 1),
                                                       verify=False).findings}
    assert alone.get("vanishing_gradient") == "error" and alone.get("dead_units") == "error", alone
    doc = check_module(net, x, loss="mse", seeds=SEEDS, target_range=(-1, 1))
    found = {f.code: f for f in doc.findings}
    # over every seed: born dead in one of them, a warning, and no vanishing gradient
    assert "vanishing_gradient" not in found and found["dead_units"].severity == "warning", doc.summary
    # a ReLU output under targets half below 0: a linear output fixes that whatever layer 0 does; its
    # re-simulation on seed 0 shows seed 0's dead first layer, which the original shows there too
    linear = next(r for r in found["output_loss_mismatch"].remedies if r.id == "output_activation")
    assert linear.verified is not None and linear.verified.seeds == 1
    assert linear.verified.side_effects == [], linear.verified
    assert linear.verified.fixed and linear.recommended
