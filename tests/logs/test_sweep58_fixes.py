"""What the fifty-eighth log sweep found: a Keras console whose optimizer prints its loss as 0
while its metric falls, and a per-batch series whose spike recovery was judged over 25 of 58,000
points."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check
from tests.logs.helpers import write


def _keras_console(metric: list[float], loss_zero_from: int, moving_val: bool) -> str:
    lines = []
    n = len(metric)
    for e, m in enumerate(metric, 1):
        loss = m if e < loss_zero_from else 0.0
        val = m * 1.01 if moving_val else 0.5
        lines.append(f"Epoch {e}/{n}\n3/3 [==============================] - 0s 5ms/step - loss: {loss:.4e} "
                     f"- mean_squared_error: {m:.4e} - val_loss: {val:.4e} - val_mean_squared_error: {val:.4e}\n")
    return "".join(lines)


def test_a_loss_printed_as_zero_while_its_metric_falls_is_a_note(tmp_path: Path) -> None:
    metric = list(0.4609 * np.geomspace(1, 1.5e-7, 60))
    doc = run_log_check(write(tmp_path, "train.log", _keras_console(metric, 2, moving_val=True)))
    zero = [f for f in doc.findings if f.code == "zero_gradient"]
    assert zero and all(f.severity == "info" for f in zero)
    assert "not the one being minimised" in zero[0].summary


def test_a_loss_at_zero_with_nothing_moving_stays_an_error(tmp_path: Path) -> None:
    metric = [0.4609] + [0.30] * 59          # the metric stuck too, the validation loss flat
    doc = run_log_check(write(tmp_path, "train.log", _keras_console(metric, 2, moving_val=False)))
    assert any(f.code == "zero_gradient" and f.severity == "error" for f in doc.findings)


def _batches(n: int, stay: int, rng: np.random.Generator) -> np.ndarray:
    """A per-batch loss falling to 0.011 over ``n`` points with multiplicative noise, and one spike
    of 4x at 80% of the run, after which the level holds for 7 points and then sits at 2.1x it for
    ``stay`` points (the real one, step 47269 of 58,035: 0.0428 against 0.011, then a stretch near
    0.0226)."""
    v = 0.011 + 2.3 * np.exp(-np.arange(n) / (n / 12))
    v = v * np.exp(rng.normal(0, 0.1, n))
    i = int(0.8 * n)
    level = float(np.median(v[i - 50:i]))
    v[i] = 4 * level
    v[i + 8:i + 8 + stay] = 2.1 * level * np.exp(rng.normal(0, 0.05, min(stay, n - i - 8)))
    return v


def _csv(v: np.ndarray) -> str:
    return "step,loss\n" + "".join(f"{i},{x:.6f}\n" for i, x in enumerate(v))


def test_a_spike_whose_next_few_dozen_batches_stay_high_recovered_on_a_long_log(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "run.csv", _csv(_batches(40_000, 25, np.random.default_rng(0)))))
    spikes = [f for f in doc.findings if f.code == "loss_spike"]
    assert spikes and all(f.severity == "info" and f.evidence.model_extra["recovered"] is True for f in spikes)


def test_on_a_short_log_the_same_stretch_is_no_recovery(tmp_path: Path) -> None:
    # 25 points after the spike are a tenth of a 250-point log: there they are the run's next stretch
    doc = run_log_check(write(tmp_path, "run.csv", _csv(_batches(250, 25, np.random.default_rng(0)))))
    assert any(f.code == "loss_spike" and f.severity == "warning" for f in doc.findings)
