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
