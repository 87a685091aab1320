"""A short log (under the trend checks' ``min_points``) whose every epoch is logged (newuser15 #1):
a loss that rose at every point and at least doubled is a ``loss_divergence`` warning, not a healthy
check; the ``insufficient_data`` note does not tell a run that logs every epoch to log more often."""

from __future__ import annotations

from pathlib import Path

from gradhealth.library import check_logs
from gradhealth.logs.thresholds import LogThresholds

_HEAD = "epoch,accuracy,loss,val_accuracy,val_loss\n"


def _keras(tmp_path: Path, losses: list[float]) -> Path:
    p = tmp_path / "training.log"
    p.write_text(_HEAD + "".join(f"{e},0.10,{v},0.10,{v * 1.2}\n" for e, v in enumerate(losses)))
    return p


def test_short_run_rising_every_epoch_is_divergence(tmp_path):
    losses = [2.30, 2.9, 4.8, 9.7, 25.3]
    assert len(losses) < LogThresholds().min_points
    d = check_logs(_keras(tmp_path, losses))
    (f,) = [f for f in d.findings if f.code == "loss_divergence"]
    assert f.severity == "warning"
    # the rise is last over first, computed here independently
    assert abs(f.evidence.value - 25.3 / 2.30) < 1e-9
    assert d.status != "healthy"


def test_short_run_that_falls_or_barely_rises_is_not_divergence(tmp_path):
    # falling: learning; rising every epoch but only 1.3x: under the doubling the rule asks for
    for losses in ([2.3, 1.9, 1.6, 1.4, 1.3], [2.0, 2.1, 2.3, 2.45, 2.6], [2.3, 9.0, 4.0, 12.0, 25.0]):
        d = check_logs(_keras(tmp_path, losses))
        assert not [f for f in d.findings if f.code == "loss_divergence"], losses


def test_every_epoch_logged_is_not_told_to_log_more_often(tmp_path):
    d = check_logs(_keras(tmp_path, [2.3, 1.9, 1.6, 1.4, 1.3]))
    (note,) = [f for f in d.findings if f.code == "insufficient_data"]
    assert "more often" not in note.explanation
    assert "Every epoch of this run is logged" in note.explanation and "5 epoch(s) long" in note.explanation


def test_sampled_log_is_still_told_to_log_more_often(tmp_path):
    # steps 100 apart: the log samples a longer run, and the advice to log more often stands
    p = tmp_path / "metrics.csv"
    p.write_text("step,loss\n" + "".join(f"{(i + 1) * 100},{2.3 - 0.1 * i}\n" for i in range(5)))
    (note,) = [f for f in check_logs(p).findings if f.code == "insufficient_data"]
    assert "more often" in note.explanation


def test_four_rising_points_stay_too_few(tmp_path):
    # 3 rises in a row happen by chance 1 time in 24 (4! orderings): not enough to call a divergence
    d = check_logs(_keras(tmp_path, [0.85, 1.2, 2.4, 5.0]))
    assert not [f for f in d.findings if f.code == "loss_divergence"]


def test_a_healthy_short_runs_summary_says_what_was_not_judged(tmp_path):
    # logsweep92 unsuperpoint_notes: four loss lines read "healthy ... notes: insufficient_data", as
    # if the trends had been judged and found fine
    d = check_logs(_keras(tmp_path, [2.3, 1.9, 1.6]))
    (note,) = [f for f in d.findings if f.code == "insufficient_data"]
    assert d.status == "healthy"
    assert d.summary.endswith(f"; not judged: {note.summary}"), d.summary
