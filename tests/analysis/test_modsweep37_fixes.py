"""What the thirty-seventh live-module sweep found: a shallow ReLU critic with every weight at
N(0, 1) (3.4x and 11x He's std) read healthy, its trunk's first/last ratio being one layer's gain
(modsweep37 u02); and a check with no optimizer skipped the update checks in silence (h03)."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradhealth import check_module
from gradhealth.analysis.module_check import NO_OPTIMIZER_NOTE
from gradhealth.core.document import Diagnosis


class _Critic(nn.Module):
    """SAC's QNetwork: (state, action) -> 23-256-256-1 ReLU MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1 = nn.Linear(23, 256)
        self.linear2 = nn.Linear(256, 256)
        self.linear3 = nn.Linear(256, 1)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, action], 1)
        return self.linear3(F.relu(self.linear2(F.relu(self.linear1(x)))))


def _critic(init: str) -> _Critic:
    torch.manual_seed(0)
    model = _Critic()
    with torch.no_grad():
        for layer in (model.linear1, model.linear2, model.linear3):
            if init == "normal":
                layer.weight.normal_(0, 1)
            elif init == "he":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
    return model


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(256, 17), torch.rand(256, 6) * 2 - 1


def _check(model: nn.Module, *, verify: bool = False) -> Diagnosis:
    return check_module(model, _inputs(), loss="mse", seeds=2, verify=verify,
                        optimizer=torch.optim.Adam(model.parameters(), lr=3e-4))


def test_a_shallow_net_whose_every_layer_is_far_over_its_critical_scale_explodes() -> None:
    model = _critic("normal")
    doc = _check(model, verify=True)
    found = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert found and found[0].severity == "warning", doc.summary
    f = found[0]
    ev = f.evidence.model_dump()
    assert ev["oversized_init"] is True and ev["layers"] == ["linear1", "linear3"]
    # each layer's gain by its scale: sqrt(fan_in std(W)^2 / sigma_w2*), 2 under ReLU, 1 for the
    # linear readout (mean-field theory), from the weights themselves
    expected = {name: math.sqrt(layer.in_features * float(layer.weight.detach().double().var()) / crit)
                for name, layer, crit in (("linear1", model.linear1, 2.0), ("linear2", model.linear2, 2.0),
                                          ("linear3", model.linear3, 1.0))}
    for name, gain in expected.items():
        assert ev["weight_scale_gains"][name] == pytest.approx(gain, rel=0.02)
    assert ev["oversized_layers"] == ["linear1", "linear2", "linear3"]
    # the gradient from the readout back to linear1 passes linear3's and linear2's Jacobians: about
    # their scale gains' product (11.3 x 15.8 = 179), far over the 100x bar, while the trunk's own
    # ratio (linear2 -> linear1) is one gain, about 11
    backward = expected["linear2"] * expected["linear3"]
    assert ev["grad_ratio"] == pytest.approx(backward, rel=0.3) and ev["grad_ratio"] > 100
    assert ev["readout_grad_ratio"] == ev["grad_ratio"]
    assert ev["trunk_grad_ratio"] == pytest.approx(expected["linear2"], rel=0.3)
    # the finding's metric stays the trunk's, as a remedy's re-simulation measures it
    assert ev["metric"] == "max(output_grad_ratio_first_to_last, activation_growth)" and ev["value"] < 100
    assert ev["forward_ratio"] > 100 and ev["weight_scale_growth"] > 100
    assert "from linear3 back to linear1" in f.summary
    assert "too large for their activations" in f.summary
    # the forward's figures are written out, not left as a template's placeholders
    said = re.search(r"the forward signal ([0-9.e+-]+)x from the input to linear3's output \(3 layers, ", f.summary)
    assert "{" not in f.summary and said and float(said.group(1)) == pytest.approx(ev["forward_ratio"], rel=0.01)
    # He init, the remedy, is verified on the growth it fires on
    he = next(r for r in f.remedies if r.id == "he_init")
    assert he.verified is not None and he.verified.fixed
    assert he.verified.judged is not None and he.verified.judged.metric == "output_grad_ratio_first_to_readout"
    assert he.verified.judged.before == pytest.approx(ev["grad_ratio"]) and he.verified.judged.after < 10
    assert he.verified.metric == ev["metric"] and he.verified.before == pytest.approx(ev["value"])


@pytest.mark.parametrize("init", ["default", "he"])
def test_the_same_critic_at_a_usual_init_stays_healthy(init: str) -> None:
    doc = _check(_critic(init))
    assert doc.status == "healthy", [(f.code, f.summary) for f in doc.findings]


def test_no_optimizer_is_a_note_naming_how_to_pass_one() -> None:
    model = _critic("default")
    doc = check_module(model, _inputs(), loss="mse", seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.optimizer is None
    assert NO_OPTIMIZER_NOTE in doc.simulation.notes
    assert "optimizer=" in NO_OPTIMIZER_NOTE and "large_updates" in NO_OPTIMIZER_NOTE
    given = _check(model)
    assert given.simulation is not None
    assert not any("no optimizer" in n for n in given.simulation.notes)


def test_an_optimizer_the_check_cannot_step_is_refused_saying_what_to_do() -> None:
    model = _critic("default")
    with pytest.raises(ValueError, match="LBFGS is not one whose first step") as err:
        check_module(model, _inputs(), loss="mse", seeds=1, verify=False,
                     optimizer=torch.optim.LBFGS(model.parameters()))
    assert "leave optimizer out" in str(err.value) and "not checked" in str(err.value)
