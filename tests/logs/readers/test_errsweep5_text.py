"""errsweep5 G1, G5, G11, G12: the text reader and the text helpers the table readers share.

- G1: a line repeating ``a=1`` thousands of times was read in time growing with the square of its
  pairs (every match checked against every span kept so far): 121 KB took 41 s.
- G5: a CSV whose header holds a Windows-1252 byte (``acc_é`` saved by Excel on Windows), or whose
  lines end in a lone CR (Excel's "CSV (Macintosh)"), was refused as "not a log format this service
  reads".
- G11: a step of 5,000 digits refused the whole log with Python's int_max_str_digits message.
- G12: ``step inf`` / ``step nan`` / ``step 1e400`` took the step of the line before and replaced
  its values.

Speed is measured in bench/, never asserted here: G1's tests check the result on such a line and
count the span look-ups (one per match, so linear in the pairs).
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs.load import read_log
from gradhealth.logs.readers import text as text_reader
from gradhealth.logs.readers.textio import Lines, first_lines
from tests.logs.helpers import by_name, write


def _body(n: int = 30) -> str:
    return "".join(f"step {i} loss {2 * math.exp(-i / 10):.4f}\n" for i in range(n))


# --- G1 -------------------------------------------------------------------------------------


def test_spans_answer_as_the_list_of_every_span_did() -> None:
    rng = random.Random(5)
    for _ in range(200):
        spans = text_reader._Spans()
        kept: list[tuple[int, int]] = []
        for _ in range(rng.randint(0, 12)):
            a = rng.randint(0, 60)
            b = a + rng.randint(1, 15)
            spans.add(a, b)
            kept.append((a, b))
        for pos in range(-1, 80):
            assert spans.covers(pos) == any(x <= pos < y for x, y in kept)
            for width in (1, 2, 7):
                a, b = pos, pos + width
                assert spans.overlaps(a, b) == any(a < y and x < b for x, y in kept)


@pytest.mark.parametrize("pair", ["a=1", "step=1", "cfg(a=1)", "a 1 |"])
def test_a_line_of_thousands_of_pairs_is_read(tmp_path: Path, pair: str) -> None:
    # 20,000 pairs on one line (120-200 KB): it took minutes before; the run's own lines are read
    path = write(tmp_path, "train.log", _body() + "step 30 loss 0.1 " + " ".join([pair] * 20_000) + "\n")
    log = read_log(path)
    loss = by_name(log)["loss"]
    assert len(loss.steps) == 31  # ("step=1" names the last line's step: 1, then it is read at step 1)
    assert 0.1 in loss.values.tolist()


def test_span_look_ups_grow_with_the_pairs_not_their_square() -> None:
    def look_ups(n: int) -> int:
        before = text_reader._Spans.checks
        text_reader._line_values("step 30 loss 0.1 " + " ".join(["a=1"] * n))
        return text_reader._Spans.checks - before

    small, large = look_ups(2_000), look_ups(4_000)
    assert 0 < large <= 2 * small + 10


# --- G5 -------------------------------------------------------------------------------------

_ROWS = "".join(f"{i},{2 * math.exp(-i / 10):.4f},0.5\n" for i in range(40))


def test_a_windows_1252_header_is_read_with_a_note(tmp_path: Path) -> None:
    # the whole file is Windows-1252: a cell's "é" too ("run" holds text: left out with a note)
    path = write(tmp_path, "metrics.csv", ("step,loss,acc_é,run\n" + _ROWS.replace("\n", ",café\n"))
                 .encode("cp1252"))
    log = read_log(path)
    assert sorted(by_name(log)) == ["acc_é", "loss"]
    assert any("'café'" in w.message for w in log.warnings if w.code == "skipped_values")
    assert len(by_name(log)["loss"].steps) == 40
    notes = [w for w in log.warnings if w.code == "transcoded"]
    assert len(notes) == 1 and notes[0].where == "line 1"
    assert notes[0].message.startswith("metrics.csv line 1: not UTF-8 text; read as cp1252")


def test_lines_ending_in_a_lone_cr_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "metrics.csv", ("step,loss,acc\n" + _ROWS).replace("\n", "\r").encode())
    log = read_log(path)
    loss = by_name(log)["loss"]
    assert loss.steps.tolist() == list(range(40))
    assert not [w for w in log.warnings if w.code == "transcoded"]


def test_a_header_that_is_no_text_is_refused_naming_the_byte_and_line(tmp_path: Path) -> None:
    # 0x81 is no character of Windows-1252 either: refused, and the refusal says why
    path = write(tmp_path, "metrics.csv", b"step,loss,acc_\x81\n" + _ROWS.encode())
    with pytest.raises(UnknownLogFormat) as e:
        read_log(path)
    assert "line 1 is not UTF-8 text (byte 0x81 at column 15): save it as UTF-8" in str(e.value)


def test_a_row_that_is_not_utf8_under_a_utf8_header_is_an_error_naming_its_line(tmp_path: Path) -> None:
    # the header is UTF-8 and a row is not: mixed encodings, refused naming the line and the byte
    path = write(tmp_path, "metrics.csv", ("step,loss,acc\n" + _ROWS).encode() + b"40,0.1,0.5\xe9\n")
    with pytest.raises(LogError) as e:
        read_log(path)
    at = len("step,loss,acc\n" + _ROWS) + len("40,0.1,0.5")
    assert f"metrics.csv line 42: not UTF-8 text (byte offset {at}), byte 0xe9; save it as UTF-8" in str(e.value)


def test_lenient_lines_split_a_crlf_across_reads_once() -> None:
    # a CRLF whose CR ends one 64 KiB read and whose LF starts the next is one line end
    first = b"x" * (2**16 - 1) + b"\r\n"
    data = first + b"a,b\rc,d\r\ne,f"
    lines = Lines(io.BytesIO(data), "t.csv", lenient=True)
    got = [(lines.lineno, lines.offset, t) for t in lines]
    assert [t for _, _, t in got] == [first.decode(), "a,b\r", "c,d\r\n", "e,f"]
    assert [o for _, o, _ in got] == [0, len(first), len(first) + 4, len(first) + 9]
    assert lines.unterminated_last


def test_first_lines_split_where_the_reader_splits() -> None:
    assert first_lines(b"a,b\r1,2\r3,4\r") == ["a,b", "1,2", "3,4"]
    assert first_lines("acc_é,b\n1,2\n".encode("cp1252")) == ["acc_é,b", "1,2"]
    assert first_lines(b"\x01\x02\x81\n1,2\n") == []  # control bytes: not text


# --- G11 ------------------------------------------------------------------------------------


def test_a_step_of_thousands_of_digits_skips_its_line(tmp_path: Path) -> None:
    big = "7" * 5000
    body = _body(40)
    lines = body.splitlines(keepends=True)
    path = write(tmp_path, "train.log", "".join(lines[:10]) + f"step {big} loss 0.5\n" + "".join(lines[10:]))
    log = read_log(path)
    assert by_name(log)["loss"].steps.tolist() == list(range(40))
    (note,) = [w for w in log.warnings if w.code == "skipped_line"]
    assert note.where == "line 11"
    assert note.message == ("train.log line 11: the step has 5,000 digits, more than any run counts; "
                            "the line (loss = 0.5) is skipped")


@pytest.mark.parametrize("line", [f"config: run_id={'7' * 5000}", f"iter: {'7' * 5000}/1000 loss: 0.5",
                                  f"Epoch [{'7' * 5000}][1/2] loss: 0.5", f"{'7' * 5000}/100 [=====] - loss: 0.5"])
def test_long_digit_runs_anywhere_do_not_refuse_the_log(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "train.log", line + "\n" + _body(40))
    log = read_log(path)
    assert len(by_name(log)["loss"].steps) >= 40


# --- G12 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["inf", "nan", "1e400", "-inf"])
def test_a_step_that_is_not_finite_skips_its_line(tmp_path: Path, bad: str) -> None:
    lines = [f"step {bad if i == 20 else i} loss {'nan' if i == 20 else round(2 * math.exp(-i / 10), 4)}\n"
             for i in range(40)]
    log = read_log(write(tmp_path, "t.log", "".join(lines)))
    loss = by_name(log)["loss"]
    assert loss.steps.tolist() == [i for i in range(40) if i != 20]
    assert loss.values[19] == pytest.approx(round(2 * math.exp(-1.9), 4))  # step 19 keeps its own value
    (note,) = [w for w in log.warnings if w.code == "skipped_line"]
    assert note.where == "line 21"
    assert note.message == f"t.log line 21: the step is {bad!r}, not a finite number; the line (loss = nan) is skipped"


def test_several_bad_steps_are_one_note(tmp_path: Path) -> None:
    lines = [f"step {'inf' if i % 10 == 5 else i} loss 0.5\n" for i in range(40)]
    log = read_log(write(tmp_path, "t.log", "".join(lines)))
    (note,) = [w for w in log.warnings if w.code == "skipped_line"]
    assert note.message.endswith("is skipped (and 3 more such lines)")


def test_a_long_form_table_in_windows_1252_says_so(tmp_path: Path) -> None:
    # the long-form native reader walks CsvRows itself: its table gets the note read_wide_csv gives
    path = tmp_path / "points.csv"
    body = "step,metric,value,note_\xe9\n" + "".join(f"{i},loss,{2.0 - 0.05 * i},x\n" for i in range(12))
    path.write_bytes(body.encode("cp1252"))
    run = read_log(path)
    assert run.format == "native"
    [note] = [w for w in run.warnings if w.code == "transcoded"]
    assert "line 1" in note.message and "cp1252" in note.message
    assert len(run.first("loss")) == 12
