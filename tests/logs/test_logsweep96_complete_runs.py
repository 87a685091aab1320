"""Runs appended to one console with different totals (logsweep96, problem 1): a run whose counter
reached its own stated total (``Epoch 30/30``, ``iter: 1000/1000``, ``Episode 10/10``) ran to its end,
so it was neither cut short nor superseded by the next, and is judged on its own whatever the next
run's total. A run that stopped before its total, then another (a crash, a relaunch), is still
superseded by the next: not judged for trends, its NaN/Inf noted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _keras(losses: list[float], total: int) -> list[str]:
    """A Keras ``fit`` console of ``total`` epochs that printed the epochs of ``losses``."""
    out: list[str] = []
    for e, v in enumerate(losses, 1):
        out += [f"Epoch {e}/{total}",
                f"363/363 [==============================] - 0s 700us/step - loss: {v:.4f} - val_loss: {v * 1.05:.4f}"]
    return out


# an SGD run that blew up at epoch 2 and never learnt (30 epochs), a healthy one (20 epochs)
_EXPLODE = [0.7645, 8.16e9] + [1.34 + 0.01 * (e % 3) for e in range(28)]
_HEALTHY = [1.0 * 0.9 ** e for e in range(20)]


def test_complete_runs_of_different_totals_are_each_judged(tmp_path: Path) -> None:
    path = write(tmp_path, "cells.txt", "\n".join(_keras(_EXPLODE, 30) + _keras(_HEALTHY, 20)) + "\n")
    log = read_log(path)
    assert log.runs == ["run1", "run2"]
    series = by_name(log)
    assert np.allclose(series["run1/loss"].values, np.round(_EXPLODE, 4))
    assert np.allclose(series["run2/loss"].values, np.round(_HEALTHY, 4))
    assert not [w for w in log.warnings if w.code == "skipped_runs"]
    # the explosion in the first run is found, not passed over for the healthy second one
    doc = run_log_check(path)
    assert doc.status != "healthy"
    assert [f for f in doc.findings if (f.evidence.metric or "").startswith("run1/")]


def test_complete_step_and_episode_counted_runs_of_different_totals_are_each_judged(tmp_path: Path) -> None:
    steps = [f"iter: {i}/1000 loss: {2.0 * 0.998 ** i:.4f}" for i in range(10, 1001, 10)]
    steps += [f"iter: {i}/500 loss: {3.0 * 0.996 ** i:.4f}" for i in range(10, 501, 10)]
    log = read_log(write(tmp_path, "steps.log", "\n".join(steps) + "\n"))
    assert log.runs == ["run1", "run2"]
    assert len(by_name(log)["run1/loss"].values) == 100 and len(by_name(log)["run2/loss"].values) == 50
    episodes = [f"Episode {e}/10 | Loss: {2.0 / e:.3f}" for e in range(1, 11)]
    episodes += [f"Episode {e}/5 | Loss: {3.0 / e:.3f}" for e in range(1, 6)]
    log = read_log(write(tmp_path, "rl.log", "\n".join(episodes) + "\n"))
    assert log.runs == ["run1", "run2"]


def test_a_run_cut_short_then_a_relaunch_keeps_the_last(tmp_path: Path) -> None:
    # 7 epochs of 30 (a crash, a NaN on the way), then a relaunch of 20 epochs: the first run is
    # superseded, only the relaunch is judged; the NaN is still noted
    cut = _keras([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 30) + ["Epoch 7/30", "363/363 [====] - 0s - loss: nan - val_loss: nan"]
    path = write(tmp_path, "crash.txt", "\n".join(cut + _keras(_HEALTHY, 20)) + "\n")
    log = read_log(path)
    assert log.runs == []
    assert np.allclose(by_name(log)["loss"].values, np.round(_HEALTHY, 4))
    [note] = [w for w in log.warnings if w.code == "skipped_runs"]
    assert "stopped before its own total" in note.message and "superseded" in note.message
    assert f"from line {len(cut) + 1}, is read" in note.message
    assert [w for w in log.warnings if w.code == "skipped_nonfinite" and "line 14" in w.message]


def test_complete_runs_judged_and_a_cut_short_one_between_superseded(tmp_path: Path) -> None:
    # a complete 30-epoch run that blew up, a 20-epoch run that crashed at epoch 6 (NaN), its relaunch
    first = _keras(_EXPLODE, 30)
    cut = _keras([1.0, 0.9, 0.8, 0.7, 0.6], 20) + ["Epoch 6/20", "363/363 [====] - 0s - loss: nan - val_loss: nan"]
    lines = first + cut + _keras(_HEALTHY, 20)
    path = write(tmp_path, "three.txt", "\n".join(lines) + "\n")
    log = read_log(path)
    assert log.runs == ["run1", "run3"]
    series = by_name(log)
    assert np.allclose(series["run1/loss"].values, np.round(_EXPLODE, 4))
    assert np.allclose(series["run3/loss"].values, np.round(_HEALTHY, 4))
    [note] = [w for w in log.warnings if w.code == "skipped_runs"]
    start, stop = len(first) + 1, len(first) + len(cut)
    assert f"run 2 of 3 (lines {start}-{stop})" in note.message and "superseded" in note.message
    [nan] = [w for w in log.warnings if w.code == "skipped_nonfinite"]
    assert f"line {stop}:" in nan.message
    doc = run_log_check(path)
    assert [f for f in doc.findings if f.code == "nonfinite"]
    assert [f for f in doc.findings if (f.evidence.metric or "").startswith("run1/")]
