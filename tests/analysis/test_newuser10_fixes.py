"""newuser10 #3-#7: schedulers with no warm-up, a warm-up the optimizer shows without its length,
nn.MultiheadAttention's packed q/k/v projection stepped, a bounded regression output that reaches
none of the targets, and the output_activation remedy's words for a regression."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.errors import ArgumentError


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.999),
    lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 100),
    lambda o: torch.optim.lr_scheduler.StepLR(o, 10),
    lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10, 20]),
    lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o),
])
def test_a_scheduler_with_no_warm_up_reads_as_none(make: object) -> None:
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = make(opt)  # type: ignore[operator]
    doc = check_module(model, torch.randn(8, 16), seeds=1, verify=False, optimizer=opt, scheduler=sched)
    assert doc.simulation is not None and doc.simulation.optimizer is not None
    assert doc.simulation.optimizer["lr"] == pytest.approx(1e-3)
    assert "warmup_steps" not in doc.simulation.optimizer
    assert any(f"{type(sched).__name__} has no warm-up" in n for n in doc.simulation.notes)


def test_what_is_not_a_scheduler_is_still_refused() -> None:
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ArgumentError, match="not a torch.optim.lr_scheduler scheduler"):
        check_module(model, torch.randn(8, 16), seeds=1, verify=False, optimizer=opt, scheduler=object())


def test_a_warm_up_built_on_the_optimizer_but_not_passed_has_no_made_up_length() -> None:
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-3, total_iters=5000)  # built, not passed
    doc = check_module(model, torch.randn(8, 16), seeds=1, verify=False, optimizer=opt)
    assert doc.simulation is not None and doc.simulation.optimizer is not None
    assert "warmup_steps" not in doc.simulation.optimizer  # was 1: a length no one gave
    assert doc.simulation.optimizer["lr"] == pytest.approx(1e-3)  # judged at the rate it warms up to
    assert any("below its initial_lr" in n and "scheduler=" in n for n in doc.simulation.notes)
    # passed, its real length is read
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LinearLR(opt2, start_factor=1e-3, total_iters=5000)
    doc = check_module(model, torch.randn(8, 16), seeds=1, verify=False, optimizer=opt2, scheduler=sched)
    assert doc.simulation is not None and doc.simulation.optimizer is not None
    assert doc.simulation.optimizer["warmup_steps"] == 5000


class _Enc(nn.Module):
    def __init__(self, d: int = 64) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True), 1,
                                         enable_nested_tensor=False)
        self.head = nn.Linear(d, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(x).mean(1))


def test_the_multihead_attention_in_projection_gets_its_step() -> None:
    torch.manual_seed(0)
    model = _Enc()
    lr = 0.05
    doc = check_module(model, torch.randn(8, 10, 64), seeds=1, verify=False,
                       optimizer=torch.optim.Adam(model.parameters(), lr=lr))
    [attn] = [row for row in doc.layers if row.name == "enc.layers.0.self_attn"]
    # Adam's first step moves each weight by lr; in_proj_weight [192, 64] is xavier_uniform with
    # std sqrt(2 / (64 + 192)), so ||dW|| / ||W|| = lr / std (to the sampling of the init)
    w = model.enc.layers[0].self_attn.in_proj_weight.detach()
    assert attn.update_ratio == pytest.approx(lr * math.sqrt(w.numel()) / float(w.norm()), rel=1e-3)
    assert attn.update_ratio == pytest.approx(lr / math.sqrt(2 / 256), rel=0.05)
    assert "not measured" not in doc.summary
    assert doc.simulation is not None and not any("not measured" in n for n in doc.simulation.notes)


def _sigmoid_regression() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())


@pytest.mark.parametrize("given", [{"target_range": (5.0, 50.0)}, {"targets": 5 + 45 * torch.rand(64, 1)}])
def test_a_bounded_output_that_reaches_no_target_is_an_error(given: dict[str, object]) -> None:
    doc = check_module(_sigmoid_regression(), torch.randn(64, 13), loss="mse", seeds=1, **given)  # type: ignore[arg-type]
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.evidence.value == 1.0 and f.severity == "error"
    assert doc.status == "unhealthy"


def test_a_bounded_output_that_misses_some_targets_stays_a_warning() -> None:
    # (0, 4): 3/4 of the range above a sigmoid's 1, under the 0.95 error line
    doc = check_module(_sigmoid_regression(), torch.randn(64, 13), loss="mse", seeds=1, verify=False,
                       target_range=(0.0, 4.0))
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.evidence.value == pytest.approx(0.75) and f.severity == "warning"


def test_the_regression_output_remedy_speaks_of_the_regression() -> None:
    doc = check_module(_sigmoid_regression(), torch.randn(64, 13), loss="mse", seeds=1, target_range=(5.0, 50.0))
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    [r] = [r for r in f.remedies if r.id == "output_activation"]
    assert "softmax" not in r.rationale and "regression" in r.rationale and "sigmoid" in r.rationale
    # the snippet filled from the model: the module to replace and the head's real widths
    assert r.params["n_out"] == "1" and r.params["n_in"] == "64" and "n_in" not in r.snippet
    assert r.snippet.startswith("model[5] = nn.Identity()") and "a Linear(64, 1)" in r.snippet


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_the_simulations_notes_are_in_every_human_report(fmt: str) -> None:
    from gradhealth.report import ReportContext, render

    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    doc = check_module(model, torch.randn(8, 16), seeds=1, verify=False, optimizer=opt, scheduler=sched)
    assert doc.simulation is not None and doc.simulation.notes
    report = render(fmt, doc, ReportContext(source="model"))
    assert "StepLR has no warm-up" in report
