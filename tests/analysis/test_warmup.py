"""A run that warms up to its rate: large_updates judges the step at the full rate, and a warning
there is a note where the run warms up to it (modsweep26: ConvNeXt's AdamW 4e-3 moves its
0.02-std layers by lr / rms = 0.2 at that rate, and trains with its 20-epoch warm-up). A torch
optimizer with a warm-up scheduler attached is judged at the rate it warms up to (Hugging Face's
linear warm-up starts it at lr 0, which read as negative_learning_rate)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.library import check_architecture


def _spec(lr: float, warmup: int | None) -> dict[str, Any]:
    opt: dict[str, Any] = {"type": "adamw", "lr": lr}
    if warmup is not None:
        opt["warmup_steps"] = warmup
    layer = {"type": "linear", "out_features": 256, "activation": "gelu", "init": {"scheme": "normal", "std": 0.02}}
    return {"name": "convnext-like", "input": {"shape": [64, 256]}, "seeds": 2, "layers": [layer, layer, layer,
            {"type": "linear", "out_features": 10}], "optimizer": opt, "loss": "cross_entropy"}


def _large(doc: Any) -> Any:
    return next((f for f in doc.findings if f.code == "large_updates"), None)


def test_adamws_first_step_is_its_rate_over_the_weights_rms() -> None:
    f = _large(check_architecture(_spec(4e-3, None)))
    # four layers whose steps add up to under 1: a note under an adaptive optimizer, as a small
    # network's (tests/analysis/test_adaptive_large_updates.py: a deep one's is a warning)
    assert f is not None and f.severity == "info" and "a note under adamw" in f.summary
    # Adam's first step is lr per weight: a ratio of lr / rms(W) = 4e-3 / 0.02
    assert f.evidence.value == pytest.approx(0.2, rel=0.1)


def test_with_a_warm_up_the_same_step_is_a_note_naming_it() -> None:
    f = _large(check_architecture(_spec(4e-3, 2000)))
    assert f is not None and f.severity == "info"
    assert "warms up to that rate over 2,000 steps" in f.summary
    assert f.evidence.model_extra["warmup_steps"] == 2000


def test_a_step_that_rewrites_the_weights_stays_an_error_after_any_warm_up() -> None:
    f = _large(check_architecture(_spec(0.1, 2000)))
    assert f is not None and f.severity == "error"


def _mlp() -> nn.Module:
    # ConvNeXt-T's widest, 768: there the scale a layer is judged against, 0.5/sqrt(768) = 0.018, is
    # under its 0.02, so lr / rms(W) = 0.2 is the step judged (a narrower layer's would be judged
    # against that scale: at 128 wide, 0.044, the step 0.09, under the line)
    torch.manual_seed(0)
    # (six 768-wide layers deep: their steps of 0.2 add up past 1, as ConvNeXt-T's 36 do)
    model = nn.Sequential(nn.Linear(64, 768), nn.GELU(),
                          *[m for _ in range(6) for m in (nn.Linear(768, 768), nn.GELU())], nn.Linear(768, 10))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.02)
    return model


def test_a_torch_warm_up_scheduler_is_read_from_the_optimizer() -> None:
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.001, total_iters=1000)
    doc = check_module(model, torch.randn(32, 64), seeds=1, verify=False, optimizer=opt)
    f = _large(doc)
    assert f is not None and f.severity == "info"
    assert f.evidence.model_extra["learning_rate"] == pytest.approx(4e-3)


def test_a_warm_up_from_zero_is_no_negative_learning_rate() -> None:
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 1000))  # HF's linear warm-up
    assert opt.param_groups[0]["lr"] == 0.0
    doc = check_module(model, torch.randn(32, 64), seeds=1, verify=False, optimizer=opt)
    assert not any(f.code == "negative_learning_rate" for f in doc.findings)
    assert _large(doc) is not None


def test_a_plain_torch_optimizer_is_judged_as_before() -> None:
    model = _mlp()
    doc = check_module(model, torch.randn(32, 64), seeds=1, verify=False,
                       optimizer=torch.optim.AdamW(model.parameters(), lr=4e-3))
    f = _large(doc)
    assert f is not None and f.severity == "warning"
