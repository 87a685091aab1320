"""What the twenty-ninth live-module sweep found: a sparse mixture of experts whose empty experts
crashed the dead-unit readout, binary cross-entropy missing from check_module's losses, and
weight-normed layers whose optimizer step went unmeasured under torch's parametrize API."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis import figures
from gradhealth.analysis.graph import GraphRun, simulate_graph
from gradhealth.analysis.module_check import CheckFailed, input_specs, optimizer_spec
from gradhealth.errors import ArgumentError, GradHealthError


class _Expert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))


class _SparseMoE(nn.Module):
    """Two experts; the router sends every sample to expert 0, so expert 1 runs on a [0, 8] batch
    in every seed (legal in torch, and routine in a sparse mixture of experts at a small batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.experts = nn.ModuleList(_Expert() for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = x[:, 0] > math.inf  # no sample goes to expert 1
        out = self.experts[0](x[~chosen])
        return out.index_add(0, torch.nonzero(chosen).flatten(), self.experts[1](x[chosen]))


def test_an_expert_given_no_sample_is_measured_in_no_seed_and_named() -> None:
    torch.manual_seed(0)
    doc = check_module(_SparseMoE(), torch.randn(6, 8), verify=False)  # crashed: amax over an empty dim
    layers = {layer.name: layer for layer in doc.layers}
    empty = layers["experts.1.fc1"]
    assert empty.seeds_without_samples == 3
    # neither dead nor alive, no gradient figure (its weight gradient is 0 for want of samples)
    assert empty.dead_fraction is None and empty.output_grad_norm is None and empty.grad_norm is None
    assert not empty.nonfinite_forward
    assert empty.weight_std is not None  # its weights are still read
    assert layers["experts.0.fc1"].seeds_without_samples is None
    assert layers["experts.0.fc1"].dead_fraction is not None
    assert "saw no sample" in doc.summary and "experts.1.fc1" in doc.summary
    assert not any(f.code in ("dead_units", "vanishing_gradient", "nonfinite") for f in doc.findings)


def test_the_checks_own_failure_is_a_named_error_not_a_bare_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: figures.Readout, *args: object, **kwargs: object) -> None:
        raise IndexError("an internal readout failed")

    monkeypatch.setattr(figures.Readout, "add_unit", broken)
    with pytest.raises(CheckFailed, match=r"IndexError: an internal readout failed.*the check's own error") as info:
        check_module(nn.Sequential(nn.Linear(4, 3)), torch.randn(5, 4), verify=False)
    assert isinstance(info.value, GradHealthError) and isinstance(info.value.__cause__, IndexError)


class _NeuMF(nn.Module):
    """NCF's NeuMF: one logit per (user, item) pair, viewed to [batch] as guoyang9/NCF does."""

    def __init__(self, sigmoid: bool = False) -> None:
        super().__init__()
        self.user, self.item = nn.Embedding(50, 8), nn.Embedding(40, 8)
        self.mlp = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
        self.predict = nn.Linear(8, 1)
        self.sigmoid = sigmoid

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        out = self.predict(self.mlp(torch.cat([self.user(user), self.item(item)], dim=-1)))
        return (torch.sigmoid(out) if self.sigmoid else out).view(-1)


def _pairs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, 50, (64,)), torch.randint(0, 40, (64,))


def test_binary_cross_entropy_on_one_logit_per_pair() -> None:
    torch.manual_seed(0)
    doc = check_module(_NeuMF(), _pairs(), loss="binary_cross_entropy", verify=False)  # was an ArgumentError
    assert doc.status == "healthy", doc.summary
    with pytest.raises(ArgumentError, match="loss must be one of cross_entropy, binary_cross_entropy, mse, mae, huber, sum, binary_cross_entropy_probs"):
        check_module(_NeuMF(), _pairs(), loss="hinge")


def test_a_sigmoid_ending_under_binary_cross_entropy_on_logits_is_squashed_twice() -> None:
    torch.manual_seed(0)
    doc = check_module(_NeuMF(sigmoid=True), _pairs(), loss="binary_cross_entropy")
    found = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    assert found.severity == "error"
    # logits in [0, 1] under BCEWithLogitsLoss with 0/1 targets: at best sigmoid(1) for a positive
    # (loss ln(1 + e^-1)) and sigmoid(0) for a negative (ln 2); over ln 2 at chance
    floor = (math.log1p(math.exp(-1)) + math.log(2)) / 2
    evidence = found.evidence.model_dump()
    assert evidence["value"] == pytest.approx(floor / math.log(2), rel=1e-6)
    assert evidence["loss_floor"] == pytest.approx(floor, rel=1e-6)
    assert "BCEWithLogitsLoss" in found.explanation
    remedy = next(r for r in found.remedies if r.id == "logits_loss")
    assert remedy.verified is not None and remedy.verified.fixed


class _Block(nn.Module):
    def __init__(self, old_api: bool) -> None:
        super().__init__()
        wn = torch.nn.utils.weight_norm if old_api else torch.nn.utils.parametrizations.weight_norm
        self.conv = wn(nn.Conv1d(4, 6, 3, padding=1))
        self.linear = nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.conv(x))[:, :, -1])


@pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm.*is deprecated:FutureWarning")
def test_a_weight_normed_layers_step_is_measured_with_either_api() -> None:
    ratios = []
    for old_api in (True, False):
        torch.manual_seed(0)
        model = _Block(old_api)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        run = GraphRun(model, input_specs(torch.randn(8, 4, 10), model), "mse", 1,
                       optimizer=optimizer_spec(opt), trace_functions=True)
        conv = next(u for u in simulate_graph(run).units if u.name == "conv")
        assert "update_ratio" in conv.values  # was missing under the parametrize API
        ratios.append(conv.geo("update_ratio"))
    # Adam's first step moves every weight with a gradient by lr: over weight_g (6) and weight_v
    # (6 x 4 x 3), lr sqrt(6 + 72) / ||(g, v)||, where ||g|| = ||v|| = ||W|| at weight_norm's start
    torch.manual_seed(0)
    w = nn.Conv1d(4, 6, 3, padding=1).weight.detach().double()
    expected = 1e-3 * math.sqrt(6 + 72) / (math.sqrt(2) * float(w.norm()))
    assert ratios[0] == pytest.approx(expected, rel=1e-3)
    assert ratios[1] == pytest.approx(ratios[0], rel=1e-9)


def test_a_layers_step_left_unmeasured_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradhealth.analysis import graph

    # as the parametrize API's weight-normed layers were: weights not among the unit's own parameters
    monkeypatch.setattr(graph, "own_parameters", lambda module: [])
    torch.manual_seed(0)
    doc = check_module(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.randn(16, 4),
                       optimizer={"type": "adam", "lr": 1e-3}, verify=False)
    assert doc.simulation is not None
    assert any("first step was not measured on 2 layers with a gradient (0, 2)" in n for n in doc.simulation.notes)
    assert "not measured" not in doc.summary  # a note, not the headline (newuser10 #5)


def test_a_sigmoid_per_class_under_cross_entropy_names_the_softmax_the_loss_adds() -> None:
    # modsweep30 u03: "cross_entropy applies its own" read as its own sigmoid; it is a softmax
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10), nn.Sigmoid())
    found = next(f for f in check_module(model, torch.randn(32, 8), verify=False).findings
                 if f.code == "output_loss_mismatch")
    assert "cross_entropy applies its own softmax" in found.summary, found.summary
