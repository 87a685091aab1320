"""What the thirty-eighth log sweep found: a plateau at chance was excused as "still warming up"
though the warm-up had ended long before the stretch judged (llm.c at ln 50304; a DPO loss at
ln 2), and a learning-rate range test, whose loss blows up at the end by design, was an error."""

from __future__ import annotations

import math

import numpy as np

from gradhealth.logs.check import diagnose
from tests.logs.test_detectors import run_of


def _plateau(lr: np.ndarray) -> list:
    steps = np.arange(0, 3000, 10)
    loss = math.log(50304) + 0.002 * np.sin(steps)
    return [f for f in diagnose(run_of(steps=steps, train_loss=loss, lr=lr)).findings if f.code == "loss_plateau"]


def test_a_warm_up_that_ended_before_the_stretch_judged_excuses_no_plateau() -> None:
    steps = np.arange(0, 3000, 10)
    warm_then_constant = 6e-4 * np.minimum(1.0, (steps + 1) / 700)
    [f] = _plateau(warm_then_constant)
    assert f.severity == "warning" and f.evidence.warmup is None
    # a rate still climbing through the whole stretch (a warm-up of 10000 steps) excuses it
    [f] = _plateau(6e-4 * (steps + 1) / 10000)
    assert f.severity == "info" and "warm-up" in f.summary


def test_a_learning_rate_range_test_is_a_note_and_a_growing_schedule_in_training_an_error() -> None:
    n = 100
    lr = 1e-7 * (1e8 ** (np.arange(n) / (n - 1)))           # 1e-7 -> 10, x1.2 per step
    loss = np.concatenate([np.linspace(2.3, 1.5, 75), 1.5 * np.geomspace(1, 3, 25)])
    [f] = [f for f in diagnose(run_of(loss=loss, lr=lr)).findings if f.code == "loss_divergence"]
    assert f.severity == "info" and "range test" in f.summary and not f.remedies
    # the same climb in a run at a working rate that starts to grow part-way: the error it was
    grown = np.concatenate([np.full(60, 1e-3), 1e-3 * 1.2 ** np.arange(1, 41)])
    [f] = [f for f in diagnose(run_of(loss=loss, lr=grown)).findings if f.code == "loss_divergence"]
    assert f.severity == "error"


def test_a_late_climb_that_takes_an_lm_back_to_where_it_stood_early_is_a_divergence() -> None:
    # an LM's loss: 10.8 -> 3.06 at 80 % of 5000 steps (most of the fall in its first few hundred),
    # then a steady climb to 3.7 and no way down: back where it stood at ~18 % of the run
    rng = np.random.default_rng(2)
    steps = np.arange(0, 5000, 5)
    s = steps / 5000
    loss = 3.0 + 7.8 * np.exp(-steps / 150) + 0.06 * (1 - s) + np.where(s > 0.8, 3.2 * (s - 0.8), 0.0)
    loss += 0.03 * rng.standard_normal(len(steps))
    [f] = [f for f in diagnose(run_of(steps=steps, loss=loss)).findings if f.code == "loss_divergence"]
    assert f.severity == "warning" and f.evidence.model_dump()["steps_undone"] >= 0.5
    assert "back where it stood" in f.summary
    # the same run ending at its floor, noise and all: nothing
    flat = 3.0 + 7.8 * np.exp(-steps / 150) + 0.06 * (1 - s) + 0.03 * rng.standard_normal(len(steps))
    assert not [f for f in diagnose(run_of(steps=steps, loss=flat)).findings if f.code == "loss_divergence"]
