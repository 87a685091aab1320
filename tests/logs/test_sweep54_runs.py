"""logsweep54: a TensorBoard CSV of one scalar whose step starts again while its wall time goes on
holds runs one after another; sorted by step their points interleaved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _export(tmp_path: Path, segments: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    rows, wall = [], 1.575e9
    for steps, values in segments:
        for st, v in zip(steps, values, strict=True):
            wall += 3.0
            rows.append(f"{wall:.4f},{int(st)},{v:.6f}\n")
    path = tmp_path / "ocr_loss_export.csv"  # the tag from the stem: a loss by its words
    path.write_text("Wall time,Step,Value\n" + "".join(rows))
    return path


def test_a_step_that_starts_again_splits_the_export_into_runs(tmp_path: Path) -> None:
    # a run from scratch (2.8 -> 0.7), restarted with its step counter reset and resumed from its
    # checkpoint (0.7 -> 0.01): by step the two interleave, 2.8 beside 0.01 at the same steps
    first = (np.arange(40, 2440, 60), np.linspace(2.8, 0.7, 40))
    second = (np.arange(36, 2436, 60), np.geomspace(0.7, 0.01, 40))
    log = read_log(_export(tmp_path, [first, second]))
    assert log.runs == ["run1", "run2"]
    parts = log.split()
    for name, (steps, values) in zip(["run1", "run2"], [first, second], strict=True):
        [s] = parts[name].series
        assert np.array_equal(s.steps, steps) and np.allclose(s.values, values, rtol=1e-4)
    assert any(w.code == "several_runs" for w in log.warnings)
    # each run's loss is read by its name in words, run by run
    doc = check_logs(_export(tmp_path, [first, second]))
    assert doc.status == "healthy", doc.summary
    assert sum("as the training loss" in w for w in doc.log.warnings) == 2


def test_a_resume_that_goes_back_less_than_the_start_is_one_run(tmp_path: Path) -> None:
    # a resume from a checkpoint at step 1000 after reaching 1200: the same run, as the JSON Lines
    # reader reads appended records
    steps = np.concatenate([np.arange(0, 1260, 60), np.arange(1000, 3000, 60)])
    log = read_log(_export(tmp_path, [(steps, np.geomspace(3, 0.1, len(steps)))]))
    assert not log.runs and len(log.series) == 1
