"""check_module is told the warm-up and clipping a training script uses (modsweep34 h06: a 12-layer
Post-LN stack at Adam 1e-4 with 5000 warm-up steps read as a warning, for want of a way to say so)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.analysis.module_check import scheduler_warmup
from gradhealth.errors import ArgumentError


def _stack() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=False)
    return nn.Sequential(nn.TransformerEncoder(layer, 8, enable_nested_tensor=False), nn.Linear(32, 10))


def _finding(doc, code):  # type: ignore[no-untyped-def]
    return next((f for f in doc.findings if f.code == code), None)


def _adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-4)


def test_warmup_steps_make_post_ln_a_note() -> None:
    model, x = _stack(), torch.randn(4, 16, 32)
    bare = _finding(check_module(model, x, seeds=1, verify=False, optimizer=_adam(model)), "post_ln_depth_risk")
    assert bare is not None and bare.severity == "warning"
    # what was measured, truthfully: both norms, not a claim about their order
    first, last = bare.evidence.model_dump()["first_layer_grad_norm"], bare.evidence.model_dump()["last_layer_grad_norm"]
    assert "does not shrink" not in bare.summary
    assert "at its first layer" in bare.summary and "at its last" in bare.summary
    assert first > 0 and last > 0
    doc = check_module(model, x, seeds=1, verify=False, optimizer=_adam(model), warmup_steps=5000, clip_norm=1.0)
    warm = _finding(doc, "post_ln_depth_risk")
    assert warm is not None and warm.severity == "info"
    assert warm.evidence.model_dump()["warmup_steps"] == 5000


def test_scheduler_warmup_is_read_without_stepping() -> None:
    model, x = _stack(), torch.randn(4, 16, 32)
    opt = _adam(model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(i / 5000, 1.0))
    before = [g["lr"] for g in opt.param_groups]
    assert scheduler_warmup(sched) == (5000, pytest.approx(1e-4))
    assert [g["lr"] for g in opt.param_groups] == before and sched.last_epoch == 0
    warm = _finding(check_module(model, x, seeds=1, verify=False, scheduler=sched), "post_ln_depth_risk")
    assert warm is not None and warm.severity == "info"


def test_scheduler_kinds() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    sched = torch.optim.lr_scheduler
    assert scheduler_warmup(sched.LinearLR(torch.optim.SGD(p, lr=0.1), 0.01, 1.0, total_iters=300))[0] == 300
    assert scheduler_warmup(sched.LinearLR(torch.optim.SGD(p, lr=0.1), 1.0, 0.1, total_iters=300))[0] == 0
    one = sched.OneCycleLR(torch.optim.SGD(p, lr=0.1), max_lr=0.5, total_steps=1000, pct_start=0.3)
    warm, peak = scheduler_warmup(one)
    assert warm == 300 and peak == pytest.approx(0.5)
    opt = torch.optim.SGD(p, lr=0.1)
    seq = sched.SequentialLR(opt, [sched.LinearLR(opt, 0.1, 1.0, total_iters=2000),
                                   sched.CosineAnnealingLR(opt, 10_000)], milestones=[1500])
    assert scheduler_warmup(seq)[0] == 1500
    # a scheduler with no warm-up reads as none (newuser10 #3: it raised); one whose warm-up the
    # check cannot read is still refused by name
    assert scheduler_warmup(sched.StepLR(torch.optim.SGD(p, lr=0.1), 10)) == (0, None)
    with pytest.raises(ArgumentError, match="CyclicLR"):
        scheduler_warmup(sched.CyclicLR(torch.optim.SGD(p, lr=0.1), 0.01, 0.1))


def test_warmup_needs_an_optimizer() -> None:
    with pytest.raises(ArgumentError, match="warmup_steps"):
        check_module(_stack(), torch.randn(4, 16, 32), seeds=1, verify=False, warmup_steps=5000)
    with pytest.raises(ArgumentError, match="warmup_steps"):
        check_module(_stack(), torch.randn(4, 16, 32), seeds=1, verify=False, optimizer={"type": "adam", "lr": 1e-4},
                     warmup_steps=-1)
