"""errsweep4 D1, D8, D10: smoothing a long run in O(n log w), a step that counts down, and the
Monitor reader's leniencies (a start record that is not JSON, an overflowing literal, a start record
longer than the sniffer's head)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from gradhealth.logs.series import make_series
from gradhealth.logs.stats import smooth

# --- D1: smooth ------------------------------------------------------------------------------------


def _reference(values: np.ndarray, window: int) -> np.ndarray:
    """smooth's documented definition, one np.median per point."""
    n = len(values)
    w = max(1, min(window, n) | 1)
    half = w // 2
    return np.array([np.median(values[max(0, i - half): i + half + 1]) for i in range(n)])


@pytest.mark.parametrize("n", [3, 10, 64, 257, 1500])
@pytest.mark.parametrize("fraction", [0.1, 0.33, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("kind", ["normal", "rounded", "nan", "inf"])
def test_smooth_matches_its_definition_edges_included(n: int, fraction: float, kind: str) -> None:
    rng = np.random.default_rng(n * 31 + int(fraction * 10))
    values = rng.standard_normal(n)
    if kind == "rounded":
        values = np.round(values, 1)              # ties everywhere
    elif kind == "nan":
        values[rng.integers(0, n, 2)] = np.nan
    elif kind == "inf":
        values[rng.integers(0, n, 2)] = np.inf
        values[-1] = -np.inf
    window = max(3, int(n * fraction))
    with np.errstate(invalid="ignore"):
        expected = _reference(values, window)
    assert np.array_equal(smooth(values, window), expected, equal_nan=True)


def test_smooth_with_a_tenth_of_a_long_run_as_window_is_fast() -> None:
    # the RL and validation checks smooth with n / 10: the edge loop and the sorted list made this
    # quadratic (8 s at n = 200k, minutes at 10^6)
    n = 300_000
    values = np.random.default_rng(0).random(n)
    started = time.perf_counter()
    out = smooth(values, (n // 10) | 1)
    assert time.perf_counter() - started < 5.0
    half = (n // 10) // 2
    for i in (0, 1, half - 1, half, n // 2, n - half, n - 1):
        assert out[i] == np.median(values[max(0, i - half): i + half + 1])


# --- D8: a step that counts down -------------------------------------------------------------------


def _rising_loss(lines: int = 100) -> list[float]:
    return [1 + i * 0.02 for i in range(lines)]


def _order_notes(log) -> list[str]:  # noqa: ANN001
    return [w.message for w in log.warnings if w.code == "step_order"]


def test_a_keras_countdown_is_read_in_file_order_and_noted(tmp_path: Path) -> None:
    loss = _rising_loss()
    (tmp_path / "train.log").write_text("".join(f"Epoch {100 - i}/100 - loss: {v:.3f}\n" for i, v in enumerate(loss)))
    doc = run_log_check(tmp_path / "train.log")
    assert "loss_divergence" in [f.code for f in doc.findings]
    notes = [w for w in doc.log.warnings if "goes down" in w]
    assert len(notes) == 1 and "99 of 99" in notes[0] and "100 then 99" in notes[0]
    assert "the log's order" in notes[0]


def test_a_csv_step_column_counting_down_is_read_in_file_order(tmp_path: Path) -> None:
    loss = _rising_loss()
    (tmp_path / "run.csv").write_text("step,loss\n" + "".join(f"{100 - i},{v}\n" for i, v in enumerate(loss)))
    log = read_log(tmp_path / "run.csv")
    s = log.first("loss")
    assert s is not None and list(s.values) == loss      # the first line first
    assert list(s.steps) == list(range(100))              # its distance from the first point
    assert len(_order_notes(log)) == 1
    assert "loss_divergence" in [f.code for f in run_log_check(tmp_path / "run.csv").findings]


def test_a_step_that_mostly_goes_down_is_sorted_and_noted() -> None:
    steps = [200, 99, 98, 97, 204, 95, 94, 93, 208]
    s = make_series("loss", steps, list(range(len(steps))))
    assert list(s.steps) == sorted(steps)
    assert s.order_note is not None and "the step's order" in s.order_note and "6 of 8" in s.order_note


def test_a_countdown_with_a_wall_time_that_falls_with_it_is_newest_first() -> None:
    steps = [5, 4, 3, 2, 1]
    s = make_series("loss", steps, [5.0, 4.0, 3.0, 2.0, 1.0], wall_time=[50.0, 40.0, 30.0, 20.0, 10.0])
    assert list(s.steps) == [1, 2, 3, 4, 5] and list(s.values) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert s.order_note is not None and "newest first" in s.order_note


def test_a_resume_going_back_once_is_sorted_without_a_step_order_note() -> None:
    s = make_series("loss", [1, 2, 3, 4, 5, 3, 4, 5, 6], [1.0] * 9)
    assert list(s.steps) == sorted([1, 2, 3, 4, 5, 3, 4, 5, 6]) and s.order_note is None


def test_an_ascending_log_has_no_step_order_note(tmp_path: Path) -> None:
    (tmp_path / "run.csv").write_text("step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(_rising_loss())))
    assert _order_notes(read_log(tmp_path / "run.csv")) == []


# --- D10: Monitor files ----------------------------------------------------------------------------

_ROWS = "".join(f"{1.0 + i * 0.1},{10 + i},{i * 0.5}\n" for i in range(20))


def test_a_monitor_start_record_that_is_not_json_is_noted(tmp_path: Path) -> None:
    (tmp_path / "a.monitor.csv").write_text('#{"t_start": \nr,l,t\n' + _ROWS)
    log = read_log(tmp_path / "a.monitor.csv")
    assert log.format == "sb3_monitor"
    assert any(w.code == "skipped_line" and "line 1" in w.message and "not JSON" in w.message for w in log.warnings)


def test_a_monitor_with_a_json_start_record_has_no_such_note(tmp_path: Path) -> None:
    (tmp_path / "a.monitor.csv").write_text('#{"t_start": 1.0, "env_id": "X"}\nr,l,t\n' + _ROWS)
    assert not any(w.code == "skipped_line" for w in read_log(tmp_path / "a.monitor.csv").warnings)


@pytest.mark.parametrize(("column", "header", "row"), [
    ("is_success", "r,l,t,is_success", "1.0,10,0.5,1e999"),
    ("r", "r,l,t", "1e999,10,0.5"),
    ("t", "r,l,t", "1.0,10,-1e400"),
    ("speed", "r,l,t,speed", "1.0,10,0.5,9e999"),
])
def test_an_overflowing_monitor_literal_is_refused_with_its_line_and_column(
        tmp_path: Path, column: str, header: str, row: str) -> None:
    good = ",".join(["1.0", "10", "0.5"] + ["1"] * (header.count(",") - 2))
    text = f'#{{"t_start": 1.0}}\n{header}\n' + f"{good}\n" * 3 + f"{row}\n"
    (tmp_path / "b.monitor.csv").write_text(text)
    with pytest.raises(LogError, match=rf"line 6: column '{column}' is [-0-9e]+, beyond the range of a float"):
        read_log(tmp_path / "b.monitor.csv")


def test_an_infinity_spelled_inf_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "b.monitor.csv").write_text('#{"t_start": 1.0}\nr,l,t,is_success\n' + "1.0,10,0.5,True\n" * 3
                                            + "inf,10,0.5,inf\n")
    log = read_log(tmp_path / "b.monitor.csv")
    assert np.isinf(log.series[0].values).any()


def test_a_monitor_start_record_longer_than_the_sniffers_head_is_read(tmp_path: Path) -> None:
    start = json.dumps({"t_start": 1.0, "env_id": "X", "pad": "a" * 70_000})
    (tmp_path / "c.monitor.csv").write_text(f"#{start}\nr,l,t\n" + _ROWS)
    log = read_log(tmp_path / "c.monitor.csv")
    assert log.format == "sb3_monitor"
    assert log.params.get("env_id") == "X"
    returns = next(s for s in log.series if s.name == "episode_return")
    assert len(returns) == 20 and returns.wall_time is not None
