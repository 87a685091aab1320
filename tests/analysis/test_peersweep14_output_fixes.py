"""peersweep14: a softmax (or log_softmax) output under a regression loss is judged against the
targets given; a bounded output of several units is judged per element where targets are given;
``targets=`` that no rule uses are said to be unused in ``simulation.notes``."""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

import gradhealth
from gradhealth.analysis.importers.keras import check_keras
from tests.keras_files import keras2_h5

GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
          "registered_name": None}
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def _mismatch(doc: Any) -> Any:
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert len(found) == 1, [(f.code, f.summary) for f in doc.findings]
    return found[0]


def _softmax_regressor() -> nn.Module:
    # deepmufl SO 60766775: sigmoid 32-20-15, then a 4-way softmax, trained with mse on regression targets
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Sigmoid(), nn.Linear(32, 20), nn.Sigmoid(), nn.Linear(20, 15),
                         nn.Sigmoid(), nn.Linear(15, 4), nn.Softmax(dim=-1))


def test_a_softmax_regression_head_under_mse_with_unscaled_targets_is_an_error() -> None:
    torch.manual_seed(1)
    x = torch.randn(32, 8)
    targets = x @ (torch.rand(8, 4) * 100)  # make_regression's scale: std ~ 100
    doc = gradhealth.check_module(_softmax_regressor(), x, loss="mse", seeds=1, targets=targets)
    f = _mismatch(doc)
    assert f.severity == "error" and doc.status == "unhealthy"
    ev = f.evidence.model_extra or {}
    # independent count: a row is in the simplex only if each value is in [0, 1] and the row sums to 1
    inside = ((targets >= 0) & (targets <= 1)).all(dim=-1) & ((targets.sum(dim=-1) - 1).abs() <= 1e-3)
    assert f.evidence.metric == "unreachable_target_fraction"
    assert f.evidence.value == 1.0 - float(inside.double().mean())
    assert ev["output_activation"] == "softmax" and ev["output_range"] == [0.0, 1.0]
    assert ev["output_constraint"] == "each row sums to 1" and ev["classes"] == 4 and ev["target_rows"] == 32
    assert ev["target_range"] == [float(targets.min()), float(targets.max())]
    remedy = next(r for r in f.remedies if r.id == "output_activation")
    assert "linear output" in remedy.change
    # the model's one nn.Softmax swapped for nn.Identity: the targets are in reach (re-simulated)
    assert remedy.verified is not None and remedy.verified.fixed


def test_a_softmax_q_head_called_in_forward_is_an_error_against_q_targets() -> None:
    # DRLinter DQN_Wrong_activation_output_2: a CartPole Q head through torch.softmax, TD targets in [1, 1.98]
    class Q(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.h1, self.h2, self.out = nn.Linear(4, 200), nn.Linear(200, 200), nn.Linear(200, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(torch.tanh(self.h2(torch.tanh(self.h1(x))))), dim=-1)

    torch.manual_seed(0)
    targets = 1.0 + 0.98 * torch.rand(32, 2)
    doc = gradhealth.check_module(Q(), torch.randn(32, 4), loss="mse", seeds=1, verify=False, targets=targets)
    f = _mismatch(doc)
    assert f.severity == "error" and f.evidence.value == 1.0  # every Q-value is above 1
    assert "for Q-values a linear head" in f.explanation
    assert any(r.id == "output_activation" for r in f.remedies)
    assert not any("not used" in n or "used for the loss only" in n for n in doc.simulation.notes)


def test_the_share_of_target_rows_off_the_simplex_sets_the_severity() -> None:
    torch.manual_seed(2)
    one_hot = torch.eye(4)[torch.randint(0, 4, (16,))]
    # rows in [0, 1] but summing to 2: out of the simplex though every value is in range
    doubled = torch.cat([one_hot[:8], one_hot[8:] * 0 + 0.5])
    half = torch.cat([one_hot, doubled[8:]])  # 16 + 8 rows, 8 of them off: 1/3
    doc = gradhealth.check_module(_softmax_regressor(), torch.randn(32, 8), loss="mse", seeds=1, verify=False,
                                  targets=half)
    f = _mismatch(doc)
    assert abs(f.evidence.value - 8 / 24) < 1e-12 and f.severity == "info"
    assert (f.evidence.model_extra or {})["out_of_range_fraction"] == 0.0
    over = torch.cat([one_hot[:4], torch.full((12, 4), 0.5)])  # 12 of 16 rows off: 75%
    f = _mismatch(gradhealth.check_module(_softmax_regressor(), torch.randn(32, 8), loss="mse", seeds=1,
                                          verify=False, targets=over))
    assert f.evidence.value == 0.75 and f.severity == "warning"
    # one-hot labels: every row in reach, a note
    f = _mismatch(gradhealth.check_module(_softmax_regressor(), torch.randn(32, 8), loss="mse", seeds=1,
                                          verify=False, targets=one_hot))
    assert f.evidence.value == 0.0 and f.severity == "info" and "every target is in reach" in f.summary


def test_a_softmax_under_mse_without_targets_is_a_note_saying_what_was_assumed() -> None:
    doc = gradhealth.check_module(_softmax_regressor(), torch.randn(32, 8), loss="mse", seeds=1, verify=False)
    f = _mismatch(doc)
    # a note only (the sigmoid stack under it is vanishing_gradient's, a warning of its own)
    assert f.severity == "info"
    assert (f.evidence.model_extra or {})["targets_assumed"] == "probability rows"
    assert "only probability targets" in f.summary


def test_a_softmax_under_mse_with_a_target_range_is_judged_on_its_span() -> None:
    f = _mismatch(gradhealth.check_module(_softmax_regressor(), torch.randn(32, 8), loss="mse", seeds=1,
                                          verify=False, target_range=(-1.0, 1.0)))
    assert f.evidence.value == 0.5 and f.severity == "warning"  # [-1, 0) of [-1, 1]


def test_a_log_softmax_under_mse_is_judged_on_its_exp() -> None:
    class L(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(self.fc(x), dim=-1)

    log_probs = torch.log(torch.tensor([[0.2, 0.3, 0.5]] * 16))  # in reach: exps sum to 1
    targets = torch.cat([log_probs, torch.zeros(16, 3)])  # zeros: exps sum to 3, off
    f = _mismatch(gradhealth.check_module(L(), torch.randn(32, 8), loss="mse", seeds=1, verify=False,
                                          targets=targets))
    assert f.evidence.value == 0.5 and (f.evidence.model_extra or {})["output_activation"] == "log_softmax"


def test_a_multi_unit_sigmoid_is_judged_per_element_where_targets_are_given() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3), nn.Sigmoid())
    targets = torch.tensor([[0.5, 2.0, -1.0]] * 32)  # two of every three out of [0, 1]
    f = _mismatch(gradhealth.check_module(net, torch.randn(32, 8), loss="mse", seeds=1, verify=False,
                                          targets=targets))
    assert abs(f.evidence.value - 2 / 3) < 1e-12 and f.severity == "warning"
    # without targets it stays unjudged (many such outputs are a reconstruction in range by design)
    doc = gradhealth.check_module(net, torch.randn(32, 8), loss="mse", seeds=1, verify=False)
    assert not [x for x in doc.findings if x.code == "output_loss_mismatch"]


def test_targets_no_rule_uses_are_said_to_be_unused() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    doc = gradhealth.check_module(net, torch.randn(32, 8), loss="mse", seeds=1, verify=False,
                                  targets=torch.randn(32, 3) * 100)
    # (the targets now set the simulated loss, so "used for the loss only"; the output named by
    # module and class, newuser12 #8)
    notes = [n for n in doc.simulation.notes if n.startswith("targets= used for the loss only")]
    assert len(notes) == 1 and "2 (Linear 16\u21923), with no activation" in notes[0]
    doc = gradhealth.check_module(net, torch.randn(32, 8), loss="mse", seeds=1, verify=False, target_range=(0, 1))
    assert any(n.startswith("target_range= not used") for n in doc.simulation.notes)
    # used: no such note
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    doc = gradhealth.check_module(net, torch.randn(32, 8), loss="mse", seeds=1, verify=False,
                                  targets=torch.rand(32, 1))
    assert not any("not used" in n or "used for the loss only" in n for n in doc.simulation.notes)


def _dense(name: str, units: int, act: str) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "units": units, "activation": act,
                                              "use_bias": True, "kernel_initializer": GLOROT,
                                              "bias_initializer": ZEROS}}


def _softmax_mse_file() -> bytes:
    config = {"class_name": "Sequential", "config": {"name": "mlp", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 8]}},
        _dense("d0", 32, "sigmoid"), _dense("d1", 20, "sigmoid"), _dense("out", 4, "softmax")]}}
    training = {"loss": "mse", "metrics": [],
                "optimizer_config": {"class_name": "SGD", "config": {"learning_rate": 0.01, "momentum": 0.87}}}
    return keras2_h5(config, {}, attrs={"keras_version": "2.13.1", "training_config": json.dumps(training)})


def test_a_keras_softmax_output_compiled_with_mse_is_judged_on_the_target_range() -> None:
    data = _softmax_mse_file()
    doc = check_keras(data, weights="reinitialise", seeds=1, batch_size=32, verify=False, target_range=(-300, 300))
    f = _mismatch(doc)
    assert f.severity == "error" and abs(f.evidence.value - (1 - 1 / 600)) < 1e-12
    assert any(r.id == "output_activation" for r in f.remedies)
    # the targets unknown: a note that mse on a softmax fits only probability targets
    f = _mismatch(check_keras(data, weights="reinitialise", seeds=1, batch_size=32, verify=False))
    assert f.severity == "info" and "only probability targets" in f.summary
