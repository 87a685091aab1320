"""peersweep18 (AUTOTRAINER's labelled cases): Keras CSV logs committed with git merge-conflict
markers were refused ("line 2: expected 4 columns, got 1"), and an overfitting run whose
train/validation accuracy gap opened to 0.23 was excused as over-confidence because its validation
accuracy crept up by 0.019."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _rows(n: int, loss: float, start: int = 0) -> list[str]:
    return [f"{start + i},{loss + 0.01 * i:.4f},{loss + 0.02 * i:.4f}\n" for i in range(n)]


def _conflicted(ours: list[str], theirs: list[str], header: str = "epoch,loss,val_loss\n") -> str:
    return header + "<<<<<<< HEAD\n" + "".join(ours) + "=======\n" + "".join(theirs) + ">>>>>>> 6.16\n"


def test_a_keras_csv_with_conflict_markers_reads_heads_side_with_a_note(tmp_path: Path) -> None:
    ours, theirs = _rows(6, 1.0), _rows(4, 5.0)
    log = read_log(write(tmp_path, "history.csv", _conflicted(ours, theirs)))
    loss = by_name(log)["loss"]
    # HEAD's six rows only: never both sides' rows in one series
    assert loss.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.allclose(loss.values, [1.0 + 0.01 * i for i in range(6)])
    [note] = [w for w in log.warnings if w.code == "merge_conflict"]
    # the marker lines named: <<<<<<< on line 2, ======= on 2 + 6 + 1 = 9, >>>>>>> on 9 + 4 + 1 = 14
    assert "line 2" in note.message and "line 9" in note.message and "line 14" in note.message
    assert "HEAD" in note.message and "4 line(s)" in note.message


def test_a_conflict_in_the_middle_of_a_history_keeps_the_rows_around_it(tmp_path: Path) -> None:
    # rows 0-2 shared, then a conflict over epochs 3-4, then epoch 5 shared again
    text = ("epoch,loss,val_loss\n" + "".join(_rows(3, 1.0)) + "<<<<<<< ours\n" + "".join(_rows(2, 2.0, 3))
            + "||||||| base\n" + "".join(_rows(2, 9.0, 3)) + "=======\n" + "".join(_rows(2, 7.0, 3))
            + ">>>>>>> theirs\n" + "5,3.0,3.0\n")
    log = read_log(write(tmp_path, "history.csv", text))
    loss = by_name(log)["loss"]
    assert loss.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert loss.values[3] == 2.0 and loss.values[5] == 3.0  # ours, not the base's 9 nor theirs' 7
    assert log.runs == [] or len(log.runs) <= 1


def test_a_headerless_keras_history_with_conflicts_is_checked_not_refused(tmp_path: Path) -> None:
    # AUTOTRAINER's case14.csv: no epoch column, both sides at ln 2 throughout
    header = "val_loss,val_accuracy,loss,accuracy\n"
    flat = [f"{math.log(2):.6f},0.50,{math.log(2) + 1e-5 * (i % 3):.6f},0.50\n" for i in range(25)]
    doc = run_log_check(write(tmp_path, "case14.csv", _conflicted(flat, flat[:5], header)))
    assert any(f.code == "loss_plateau" for f in doc.findings)
    assert any("merge conflict" in w for w in doc.log.warnings)


def test_a_monitor_csv_with_conflict_markers_is_read_too(tmp_path: Path) -> None:
    # the Stable-Baselines3 Monitor reader shares the table code
    head = '#{"t_start": 1591112345.0, "env_id": "CartPole-v1"}\nr,l,t\n'
    ours = [f"{10 + i}.0,{10 + i},{i + 1}.5\n" for i in range(5)]
    theirs = [f"{500 + i}.0,{500 + i},{i + 1}.5\n" for i in range(3)]
    text = head + "<<<<<<< HEAD\n" + "".join(ours) + "=======\n" + "".join(theirs) + ">>>>>>> main\n"
    log = read_log(write(tmp_path, "monitor.csv", text))
    assert any(w.code == "merge_conflict" for w in log.warnings)
    rewards = next(s for s in log.series if s.values.size == 5 and s.values[0] == 10.0)
    assert float(np.max(rewards.values)) == 14.0


def test_an_overfitting_run_with_a_widening_accuracy_gap_is_a_warning_not_calibration(tmp_path: Path) -> None:
    # val_loss bottoms at epoch 50 and rises 20 %, val_accuracy creeps +0.02 while the training
    # accuracy climbs 0.70 -> 0.88: the gap grows 0.07 -> 0.23, far more than the validation gain
    n = 200
    e = np.arange(n)
    val_loss = np.where(e <= 50, 1.9 - 0.86 * (e / 50), 1.04 + 0.24 * (e - 50) / 149)
    val_acc = np.where(e <= 50, 0.30 + 0.33 * e / 50, 0.63 + 0.02 * (e - 50) / 149)
    loss = 2.3 * np.exp(-e / 50) + 0.3
    acc = np.where(e <= 50, 0.19 + 0.51 * e / 50, 0.70 + 0.18 * (e - 50) / 149)
    rng = np.random.default_rng(0)
    rows = [f"{i},{val_loss[i] + rng.normal(0, 0.005):.5f},{val_acc[i] + rng.normal(0, 0.002):.5f},"
            f"{loss[i]:.5f},{acc[i]:.5f}\n" for i in range(n)]
    doc = run_log_check(write(tmp_path, "run.csv", "epoch,val_loss,val_accuracy,loss,accuracy\n" + "".join(rows)))
    f = next(f for f in doc.findings if f.code == "validation_divergence")
    assert f.severity == "warning"
    ev = f.evidence.model_dump()
    assert ev["gap_metric"] == "val_accuracy" and ev["gap_train_metric"] == "accuracy"
    assert 0.05 < ev["train_val_gap_then"] < 0.09 and 0.2 < ev["train_val_gap_last"] < 0.26


def test_a_rising_val_loss_beside_both_accuracies_rising_together_stays_a_calibration_note(tmp_path: Path) -> None:
    # the same loss curves, but validation accuracy keeps pace with training (the gap holds at 0.05)
    n = 200
    e = np.arange(n)
    val_loss = np.where(e <= 50, 1.9 - 0.86 * (e / 50), 1.04 + 0.24 * (e - 50) / 149)
    acc = np.where(e <= 50, 0.19 + 0.51 * e / 50, 0.70 + 0.18 * (e - 50) / 149)
    val_acc = acc - 0.05
    loss = 2.3 * np.exp(-e / 50) + 0.3
    rows = [f"{i},{val_loss[i]:.5f},{val_acc[i]:.5f},{loss[i]:.5f},{acc[i]:.5f}\n" for i in range(n)]
    doc = run_log_check(write(tmp_path, "run.csv", "epoch,val_loss,val_accuracy,loss,accuracy\n" + "".join(rows)))
    f = next(f for f in doc.findings if f.code == "validation_divergence")
    assert f.severity == "info" and "over-confidence" in f.explanation
