"""A loss that "barely moved" is a warning only when the run's points bear it out.

The claim "the loss never learnt" rests on the trend over the whole run; a handful of noisy points
cannot tell a flat loss from one falling slowly (logsweep47: a fine-tune's 9 logged points at
0.15 +- 12 %, within its first third of an epoch, read "barely moved", a warning that told the user to
raise the learning rate).
"""

from __future__ import annotations

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.series import RunLog, make_series


def _run(steps: np.ndarray, loss: np.ndarray) -> RunLog:
    run = RunLog(format="test", source="synthetic")
    run.series.append(make_series("loss", steps, loss))
    return run


def _plateau(run: RunLog):  # noqa: ANN202
    return [f for f in diagnose(run).findings if f.code == "loss_plateau"]


def test_nine_noisy_points_of_a_fine_tune_are_too_few_to_say_it_never_learnt() -> None:
    # Time-MoE issue #71's nine Trainer logs: 8.8 % higher at the end, swinging 0.147-0.186
    loss = np.array([0.1474, 0.1549, 0.1864, 0.1819, 0.1558, 0.1568, 0.1471, 0.1558, 0.173])
    epochs = np.array([0.04, 0.08, 0.12, 0.15, 0.19, 0.23, 0.27, 0.31, 0.35])
    [f] = _plateau(_run(epochs, loss))
    assert f.severity == "info"
    assert "too little to tell" in f.summary
    assert f.remedies == []
    # the fall the points allow is far above the 5 % "barely moved" bar
    assert f.evidence.model_extra["largest_fall_allowed"] > 0.2


def test_a_few_points_that_stay_put_still_never_learnt() -> None:
    # twelve points within +-1 %: their trend rules out any real fall
    rng = np.random.default_rng(3)
    loss = 2.3 * np.exp(rng.normal(0, 0.01, 12))
    [f] = _plateau(_run(np.arange(12) * 10, loss))
    assert f.severity == "warning"
    assert "barely moved" in f.summary


def test_a_long_noisy_flat_run_never_learnt() -> None:
    # 5 % noise over 2,000 steps: enough points to rule out a fall that nine such points would allow
    rng = np.random.default_rng(4)
    loss = 0.16 * np.exp(rng.normal(0, 0.05, 2000))
    nine = [f for f in _plateau(_run(np.arange(9) * 10, loss[:9])) if f.severity == "warning"]
    assert not nine
    [f] = _plateau(_run(np.arange(2000) * 10, loss))
    assert f.severity == "warning"


def _stalls_at(tail: np.ndarray) -> list:
    # 240 logged epochs: a fall from 1.75 over the first half, then ``tail``
    head = 0.25 + 1.5 * np.exp(-np.arange(120) / 25)
    return _plateau(_run(np.arange(240) * 25, np.concatenate([head, tail])))


def test_a_loss_frozen_to_its_last_digit_is_a_warning() -> None:
    # a tiny LSTM's MSE stuck at 0.25000453 (both outputs 0.5 on 0/1 targets) for 120 epochs
    [f] = _stalls_at(np.full(120, 0.25000453) + np.tile([0.0, 5e-6], 60))
    assert f.severity == "warning"
    assert "frozen at 0.25" in f.summary


def test_a_loss_still_moving_in_its_fourth_digit_has_flattened_not_frozen() -> None:
    # a fit that still moves in its fourth digit (0.1% over its last half, +-0.02% between epochs):
    # convergence, a note
    [f] = _stalls_at(0.25 * (1 - 1e-3 * np.linspace(0, 1, 120)) * (1 + 2e-4 * np.tile([1.0, -1.0], 60)))
    assert f.severity == "info" and "frozen" not in f.summary


def test_a_loss_printed_with_too_few_digits_to_show_a_change_is_not_called_frozen() -> None:
    # "0.2500" to 4 decimals: a change under 2e-4 relative cannot show
    [f] = _stalls_at(np.full(120, 0.25))
    assert f.severity == "info"
