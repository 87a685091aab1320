"""errsweep5 G4: a Keras CSV whose epoch column does not advance is one run, not one "run" per row.

A counter stuck at 0 (or repeating each epoch, or counting down) opened a new run on every row: 40
one-row runs, each too short to judge, so a loss rising 0.5 -> 4.4 was HEALTHY. Appended CSVLogger
runs (epochs restarting after advancing) are still split: tests/logs/readers/test_keras_appended.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _csv(epochs: list[int], header: str = "epoch,loss,val_loss") -> str:
    """A CSVLogger-shaped file: row i has loss 0.5 + 0.1 i (rising), whatever its epoch says."""
    return header + "\n" + "".join(f"{e},{0.5 + 0.1 * i:.2f},{0.6 + 0.2 * i:.2f}\n"
                                   for i, e in enumerate(epochs))


def _codes(log) -> list[str]:  # noqa: ANN001
    return [w.code for w in log.warnings]


def test_an_epoch_stuck_at_zero_is_one_run_in_row_order(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "training.log", _csv([0] * 40)))
    assert log.runs == [] and _codes(log) == ["step_order"]
    loss = by_name(log)["loss"]
    assert loss.steps.tolist() == list(range(40))
    assert loss.values[0] == 0.5 and round(float(loss.values[-1]), 2) == 4.4
    assert "epoch" not in by_name(log)            # the counter is the axis, not a series
    note = log.warnings[0]
    assert note.where == "line 3"
    assert note.message.startswith("training.log: the epoch does not rise from one row to the next on 39 of 39 rows "
                                   "(first at line 3: epoch 0 then 0)")
    assert "read as one run in the file's row order" in note.message


def test_a_descending_epoch_is_one_run_in_row_order(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "desc.csv", _csv([-i for i in range(40)])))
    assert log.runs == [] and _codes(log) == ["step_order"]
    assert by_name(log)["loss"].steps.tolist() == list(range(40))
    assert by_name(log)["loss"].values[0] == 0.5


def test_an_epoch_repeated_on_several_rows_is_one_run(tmp_path: Path) -> None:
    # a row per batch, each with its epoch: 0 0 0 1 1 1 ...
    log = read_log(write(tmp_path, "batches.csv", _csv([i // 3 for i in range(30)])))
    assert log.runs == [] and _codes(log) == ["step_order"]
    # (logsweep91: each row at its place within its epoch, the k-th of 3 at e + k / 3, no longer one
    # epoch per row)
    assert len(by_name(log)["loss"]) == 30 and "repeats over several rows" in log.warnings[0].message
    assert by_name(log)["loss"].steps.tolist() == pytest.approx([i // 3 + (i % 3) / 3 for i in range(30)])


def test_a_history_index_stuck_at_zero_is_one_run(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "history.csv", _csv([0] * 12, header=",loss,val_loss")))
    assert log.runs == [] and _codes(log) == ["step_order"]
    assert "the index does not rise" in log.warnings[0].message
    assert by_name(log)["val_loss"].steps.tolist() == list(range(12))


def test_a_rising_loss_under_a_stuck_epoch_is_judged_as_with_a_rising_one(tmp_path: Path) -> None:
    rising = run_log_check(write(tmp_path, "inc.csv", _csv(list(range(40)))))
    for name, epochs in (("const.csv", [0] * 40), ("desc.csv", [-i for i in range(40)])):
        doc = run_log_check(write(tmp_path, name, _csv(epochs)))
        assert doc.status == rising.status == "unhealthy"
        assert {f.code for f in doc.findings} == {f.code for f in rising.findings}
        assert "loss_divergence" in {f.code for f in doc.findings}
        assert "insufficient_data" not in {f.code for f in doc.findings}


def test_appended_runs_that_advance_are_still_split(tmp_path: Path) -> None:
    # a run cut after one epoch, then one of two: as many restarts as rises, still appended runs
    log = read_log(write(tmp_path, "training.log", _csv([0, 0, 1])))
    assert log.runs == ["run1", "run2"] and _codes(log) == ["several_runs"]
    # two runs of three epochs each: one restart, four rises
    log = read_log(write(tmp_path, "two.log", _csv([0, 1, 2, 0, 1, 2])))
    assert log.runs == ["run1", "run2"] and by_name(log)["run2/loss"].steps.tolist() == [0, 1, 2]
