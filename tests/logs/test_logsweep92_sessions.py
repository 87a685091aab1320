"""Console lines from appended training sessions (logsweep92 madqn_sessions): a session header's
date is no value ("Training Session Started: 2026-02-03 15:30:00" was a series ``Started`` at 2026,
the log's first point)."""

from __future__ import annotations

from pathlib import Path

from gradhealth.logs.load import read_log


def test_a_date_after_a_colon_is_no_value(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_text("Training Session Started: 2026-02-03 15:30:00\n"
                 + "".join(f"step {i} | Loss: {2.0 - 0.1 * i:.2f}\n" for i in range(10)))
    run = read_log(p)
    assert [s.name for s in run.series] == ["Loss"]
    (loss,) = run.series
    assert len(loss) == 10 and float(loss.values[0]) == 2.0


def test_a_range_or_a_date_inside_a_line_is_not_read_as_its_first_number(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_text("".join(f"step {i} date: 2026-02-{i + 1:02d} loss: {1.0 / (i + 1):.4f}\n" for i in range(10)))
    run = read_log(p)
    assert {s.name for s in run.series} == {"loss"}
