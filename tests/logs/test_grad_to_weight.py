"""A total gradient norm that dwarfs the total weight norm logged beside it is an exploding gradient,
even when the run has no healthy baseline to grow from (logsweep47: grad norm 7e5 -> 1.1e6 against a
param norm of 1,800, a run already blown up before its first logged line)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gradhealth.logs.check import diagnose
from gradhealth.logs.thresholds import LogThresholds
from tests.logs.test_detectors_real_runs import alarms, found, run_of


def _train(target_scale: float, steps: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss, pre-clip total grad norm and total weight norm of a small MLP regressing targets of the
    given scale, clipped at 1.0 so the run itself stays finite (as a clipped LLM run does)."""
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = (x @ torch.randn(16, 1)) * target_scale
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    loss_v, grad_v, weight_v = [], [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        grad_v.append(float(nn.utils.clip_grad_norm_(net.parameters(), 1.0)))
        weight_v.append(float(torch.sqrt(sum(p.detach().pow(2).sum() for p in net.parameters()))))
        loss_v.append(float(loss.detach()))
        opt.step()
    return np.array(loss_v), np.array(grad_v), np.array(weight_v)


def test_unnormalised_targets_make_the_gradient_dwarf_the_weights() -> None:
    loss, grad, weight = _train(1e4)
    steps = np.arange(len(loss))
    expected = float(np.median(grad / weight))
    assert expected > 100  # the premise, measured independently of the detector
    [f] = found(diagnose(run_of(steps, loss=loss, grad_norm=grad, param_norm=weight)), "exploding_gradient")
    assert f.severity == "warning"
    assert abs(f.evidence.value - expected) < 1e-6 * expected
    assert f.evidence.model_extra["weight_metric"] == "param_norm"
    # every logged norm is blown up: the clipping remedy is the common default, not the run's p95
    clip = next(r for r in f.remedies if r.id == "gradient_clipping")
    assert clip.params["max_norm"] == 1.0


def test_the_same_network_on_scaled_targets_is_healthy() -> None:
    loss, grad, weight = _train(1.0)
    assert float(np.median(grad / weight)) < 1
    steps = np.arange(len(loss))
    assert not found(diagnose(run_of(steps, loss=loss, grad_norm=grad, param_norm=weight)), "exploding_gradient")


def test_the_ratio_needs_a_total_weight_norm_of_a_real_size() -> None:
    steps = np.arange(20)
    grad = np.full(20, 5.0) + 0.1 * np.sin(steps)
    # a per-parameter mean weight magnitude (0.02) is not the total L2 norm: no ratio taken
    mean_w = np.full(20, 0.02)
    assert not alarms(diagnose(run_of(steps, loss=np.linspace(2, 1, 20), grad_norm=grad, weight_norm=mean_w)))
    # a per-layer weight norm is not the total either
    run = run_of(steps, loss=np.linspace(2, 1, 20), grad_norm=grad * 1e3, weight_norm__fc1=np.full(20, 3.0))
    assert not found(diagnose(run), "exploding_gradient")


def test_the_error_bar_is_a_threshold() -> None:
    steps = np.arange(20)
    grad, weight = np.full(20, 2e6), np.full(20, 100.0)
    # (a loss that does not fall: a flat norm of 2e6 over a smoothly falling loss reads as one printed
    # before AMP's loss scale was undone, a note; logsweep89)
    run = run_of(steps, loss=np.full(20, 2.0), grad_norm=grad, weight_norm=weight)
    [f] = found(diagnose(run), "exploding_gradient")
    assert f.severity == "error" and f.evidence.value == 2e4
    [f] = found(diagnose(run, LogThresholds(grad_to_weight_error=1e5)), "exploding_gradient")
    assert f.severity == "warning"
