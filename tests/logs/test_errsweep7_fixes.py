"""errsweep7 #1, #4, #5 and #8 (first two bullets): a CSV of one loss column read by row; NUL padding
a crashed writer leaves passed over with a note (a NUL inside a line still refused, naming the line and
byte); a table's step that no point can be placed at refused naming the line and the cell as written;
and refusals that count the right lines and give the real cause."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import load

# --- #1: a CSV whose only column is a loss ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["loss", "train_loss", "val_loss", "grad_norm", "g_loss"])
def test_a_csv_of_one_loss_column_is_read_by_row_from_0(tmp_path: Path, name: str) -> None:
    losses = [1.0, 0.9, 0.8, 0.7, 0.6]
    path = tmp_path / "curve.csv"
    path.write_text(f"{name}\n" + "".join(f"{v}\n" for v in losses))  # pd.Series(..., name=...).to_csv(index=False)
    assert load.detect(path) == "native"
    log = load.read_log(path)
    [s] = [s for s in log.series if s.name == name]
    assert s.steps.tolist() == [0, 1, 2, 3, 4]
    assert s.values.tolist() == losses
    [note] = [w for w in log.warnings if w.code == "running_index"]
    assert "5 rows counted from 0" in note.message


def test_a_300000_row_loss_column_reads_in_seconds(tmp_path: Path) -> None:
    n = 300_000
    losses = 2.0 / (1.0 + 1e-4 * np.arange(n))
    path = tmp_path / "loss.csv"
    path.write_text("loss\n" + "\n".join(repr(float(v)) for v in losses) + "\n")
    t = time.perf_counter()
    log = load.read_log(path)
    took = time.perf_counter() - t
    [s] = log.series
    assert len(s) == n and s.steps[-1] == n - 1
    np.testing.assert_allclose(s.values, losses)
    assert took < 20, took  # linear: about 2 s on a loaded 2-core machine


def test_a_bad_cell_in_a_one_column_loss_table_is_named(tmp_path: Path) -> None:
    path = tmp_path / "loss.csv"
    path.write_text("loss\n1.0\n0.9\nabc\n0.7\n")
    with pytest.raises(LogError) as e:
        load.read_log(path)
    assert e.value.detail.startswith("loss.csv line 4, column 'loss'")


def test_one_column_that_names_no_loss_is_refused_saying_why(tmp_path: Path) -> None:
    path = tmp_path / "acc.csv"
    path.write_text("accuracy\n0.5\n0.6\n0.7\n")
    with pytest.raises(UnknownLogFormat) as e:
        load.detect(path)
    assert "its one column, 'accuracy', names no loss" in e.value.detail
    assert "(step,accuracy)" in e.value.detail


# --- #4: NUL bytes ------------------------------------------------------------------------------------------

_TEXT = "".join(f"step: {i} loss: {1 / (i + 1):.4f}\n" for i in range(30)).encode()
_CSV = b"step,loss\n" + b"".join(b"%d,%r\n" % (i, 1 / (i + 1)) for i in range(30))


def test_nul_padding_between_text_lines_is_passed_over_with_a_note(tmp_path: Path) -> None:
    later = "".join(f"step: {i} loss: {0.01:.4f}\n" for i in range(30, 40)).encode()
    path = tmp_path / "train.log"
    path.write_bytes(_TEXT + b"\x00" * 4096 + later)
    assert load.detect(path) == "text"
    log = load.read_log(path)
    [s] = log.series
    assert s.steps.tolist() == list(range(40))
    [note] = [w for w in log.warnings if w.code == "nul_bytes"]
    assert f"line 31 on (the first at byte offset {len(_TEXT):,}" in note.message


def test_nul_padding_after_a_clean_csv_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_bytes(_CSV + b"\x00" * 4096)
    log = load.read_log(path)
    [s] = log.series
    assert s.steps.tolist() == list(range(30))
    assert s.values.tolist() == [1 / (i + 1) for i in range(30)]
    [note] = [w for w in log.warnings if w.code == "nul_bytes"]
    assert f"line 32 on (the first at byte offset {len(_CSV):,}" in note.message


def test_nul_padding_past_the_head_is_passed_over(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%r\n" % (i, 1 / (i + 1)) for i in range(30, 6000))
    path = tmp_path / "metrics.csv"
    path.write_bytes(_CSV + rows + b"\x00" * 512)
    assert len(_CSV + rows) > 64 * 1024
    log = load.read_log(path)
    assert len(log.series[0]) == 6000
    [note] = [w for w in log.warnings if w.code == "nul_bytes"]
    assert "line 6,002 on" in note.message


def test_a_nul_inside_the_first_line_is_refused_naming_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"".join(b"step: %d\x00 loss: 0.5\n" % i for i in range(20)))
    with pytest.raises(UnknownLogFormat) as e:
        load.detect(path)
    assert "line 1 holds a NUL byte (byte offset 7, column 8)" in e.value.detail


# --- #5: a table's step no point can be placed at ------------------------------------------------------------

_MD = "| Training Loss | Epoch | Step |\n|---|---|---|\n| 0.9 | 1.0 | 10 |\n| 0.8 | 2.0 | 20 |\n| 0.7 | 3.0 | {} |\n"


@pytest.mark.parametrize(("cell", "why"), [("1e400", "not a finite number"),
                                           ("99999999999999999999", "from 2^53 on")])
def test_a_markdown_step_is_refused_naming_the_line_and_cell(tmp_path: Path, cell: str, why: str) -> None:
    path = tmp_path / "README.md"
    path.write_text(_MD.format(cell))
    with pytest.raises(LogError) as e:
        load.read_log(path)
    assert e.value.detail.startswith(f"README.md line 5, the 'Step' cell is '{cell}'")
    assert why in e.value.detail


@pytest.mark.parametrize(("header", "cell"), [("step,loss", "100000000000000000000"), ("epoch,loss", "1e+300"),
                                              ("step,loss", "9007199254740992")])
def test_a_csv_step_from_2_53_on_is_refused_naming_the_line_and_cell(tmp_path: Path, header: str, cell: str) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(f"{header}\n1,0.9\n2,0.8\n{cell},0.7\n")
    with pytest.raises(LogError) as e:
        load.read_log(path)
    col = header.split(",")[0]
    assert e.value.detail.startswith(f"metrics.csv line 4, the '{col}' cell is '{cell}': from 2^53 on")


def test_a_step_just_below_2_53_is_read(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,0.9\n2,0.8\n9007199254740991,0.7\n")
    assert load.read_log(path).series[0].steps[-1] == 2**53 - 1


# --- #8: the right counts and causes in refusals -------------------------------------------------------------

def test_a_first_line_longer_than_the_head_is_said_so(tmp_path: Path) -> None:
    cols = ["Training Loss", "Step"] + [f"c{i}" for i in range(20_000)]
    path = tmp_path / "wide.md"
    path.write_text("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n| 1 | 1 |\n| 0.5 | 2 |\n")
    with pytest.raises(UnknownLogFormat) as e:
        load.detect(path)
    assert "its first line is longer than the 65,536 bytes" in e.value.detail
    assert "of its 1 non-blank lines" not in e.value.detail


def test_every_step_non_finite_is_the_reason_given(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("".join(f"step: 1e400 loss: {i}\n" for i in range(50)))
    with pytest.raises(LogError) as e:
        load.read_log(path)
    assert e.value.detail.startswith("train.log line 1: the step is '1e400', not a finite number")
    assert "the other 49 lines with values" in e.value.detail
    assert "no 'key: value'" not in e.value.detail
