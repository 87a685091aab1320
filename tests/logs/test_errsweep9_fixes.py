"""errsweep9 fixes: a text log's over-long line is one line (#1); an impossible TensorBoard histogram
is left out with a note, not read as NaN (#2); a W&B step of 2^64-1 is read unsigned, with a
step_order note (#3); an unterminated CSV quote is named where it opened (#4); a trainer_state.json
number too long to read names its place (#5); a W&B split record never finished is cut off (#6);
symlinked MLflow metric files are named in a note (#7)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
from gradhealth.logs import load
from gradhealth.logs.readers import text, textio

# --- #1: an over-long line of a text log is one line, however many reads it takes ------------------------


def test_read_line_reads_past_a_long_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"a\n" + b"x" * 1000 + b"\nb\n" + b"y" * 999)
    with path.open("rb") as f:
        lines = list(iter(lambda: textio.read_line(f, 64), b""))
    assert len(lines) == 4  # a, the long line, b, the unterminated long last line
    assert lines[0] == b"a\n" and lines[2] == b"b\n"
    assert isinstance(lines[1], textio.CutLine) and lines[1].size == 1000 and lines[1].endswith(b"\n")
    assert isinstance(lines[3], textio.CutLine) and lines[3].size == 999 and not lines[3].endswith(b"\n")


def test_long_line_keeps_later_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the reader's limits made small: a line of 5x the piece it reads at once (as 80 MB is to 16 MiB)
    monkeypatch.setattr(text, "MAX_LINE", 4096)
    monkeypatch.setattr(text, "MAX_VALUES_LINE", 1024)
    lines = [f"step: {i} loss: {1 / (i + 1):.4f}" for i in range(30)]   # lines 1..30
    lines.append("loss: 0.5 " * 2048)                                    # line 31: 20,480 characters
    lines.append("step: 1e400 loss: 0.3")                                # line 32
    lines += [f"step: {i} loss: {1 / (i + 1):.4f}" for i in range(31, 40)]
    path = tmp_path / "lineno.log"
    path.write_text("\n".join(lines) + "\n")
    log = load.read_log(path)
    notes = [w.message for w in log.warnings if w.code == "skipped_line"]
    [step_note] = [m for m in notes if "1e400" in m]
    assert "line 32:" in step_note
    [long_note] = [m for m in notes if "long" in m]
    assert "line 31:" in long_note and "more such" not in long_note
    assert f"{len(lines[30]):,} bytes long" in long_note  # the whole line, not the piece read at once


# --- #2: a TensorBoard histogram no values could give is left out, not read as NaN --------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, body: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(body)) + body if wire == 2 else body)


def _f64(x: float) -> bytes:
    return struct.pack("<d", x)


def _event(step: int, tag: str, *, simple: float | None = None, histo: bytes | None = None) -> bytes:
    value = _field(1, 2, tag.encode())
    value += _field(2, 5, struct.pack("<f", simple)) if simple is not None else _field(5, 2, histo or b"")
    return _field(1, 1, _f64(1.7e9 + step)) + _field(2, 0, _varint(step)) + _field(5, 2, _field(1, 2, value))


def _histo(num: float, sum_squares: float, limits: int = 2, buckets: int = 2) -> bytes:
    return (_field(3, 1, _f64(num)) + _field(4, 1, _f64(1.0)) + _field(5, 1, _f64(sum_squares))
            + _field(6, 2, b"".join(_f64(float(i)) for i in range(limits)))
            + _field(7, 2, b"".join(_f64(num / max(buckets, 1)) for _ in range(buckets))))


@pytest.mark.parametrize(("bad", "words"), [
    (_histo(10, -4.0), "negative sum of squares"),
    (_histo(-1, 2.0), "count (num) of -1.0"),
    (_histo(10, 2.0, limits=1000, buckets=5), "5 bucket counts for 1,000 bucket limits"),
], ids=["negative_sum_squares", "negative_num", "buckets_vs_limits"])
def test_impossible_histogram_is_left_out_with_a_note(tmp_path: Path, bad: bytes, words: str) -> None:
    from gradhealth.logs.readers import tensorboard as tb

    records = [_field(1, 1, _f64(1.7e9)) + _field(3, 2, b"brain.Event:2")]
    for i in range(30):
        records.append(_event(i, "loss", simple=1.0 / (i + 1)))
        records.append(_event(i, "grad/layer1", histo=bad if i in (12, 20) else _histo(10, 4.0)))
    path = tmp_path / "events.out.tfevents.1700000000.h.1.0"
    path.write_bytes(b"".join(tb.frame_record(r) for r in records))
    log = load.read_log(path)
    [grad] = [s for s in log.series if s.name == "grad/layer1"]
    assert len(grad.values) == 28 and np.all(grad.values == 2.0)   # sqrt(4), every good record; no NaN
    assert 12 not in grad.steps.tolist() and 20 not in grad.steps.tolist()
    [note] = [w.message for w in log.warnings if w.code == "skipped_values" and "grad/layer1" in w.message]
    # the first bad one is record 26: the file_version record 0, then two records a step
    assert "record 26:" in note and words in note and "1 more such record" in note


# --- #3, #6: W&B run files (hand-framed: ':W&B' header, blocks of 32 KiB, CRC-32 of type + data) ----------

def _wandb_record(kind: int, data: bytes) -> bytes:
    return struct.pack("<IHB", zlib.crc32(bytes([kind]) + data), len(data), kind) + data


def _wandb_history(step: int, key: str, value: str) -> bytes:
    item = _field(1, 2, key.encode()) + _field(16, 2, value.encode())
    return _field(2, 2, _field(1, 2, item) + _field(2, 2, _field(1, 0, _varint(step))))


_WANDB_HEADER = b":W&B" + struct.pack("<H", 0xBEE1) + b"\0"


def test_wandb_step_of_2_64_minus_1_is_left_out_with_a_step_order_note(tmp_path: Path) -> None:
    # a HistoryStep.num of 2^64 - 1 reads as the int64 -1: kept, it sorted before step 0 and made
    # step 0 look like a loss spike; it is left out, the note naming its byte and unsigned value
    out = bytearray(_WANDB_HEADER)
    for i in range(30):
        out += _wandb_record(1, _wandb_history(i, "loss", repr(1.0 / (i + 1))))
    bad_at = len(out)
    out += _wandb_record(1, _wandb_history(2**64 - 1, "loss", "0.5"))
    path = tmp_path / "run-abc.wandb"
    path.write_bytes(bytes(out))
    log = load.read_log(path)
    [loss] = [s for s in log.series if s.name == "loss"]
    assert loss.steps.tolist() == list(range(30))
    assert np.allclose(loss.values, [1.0 / (i + 1) for i in range(30)])
    [note] = [w for w in log.warnings if w.code == "step_order"]
    assert f"byte {bad_at}" in note.message and f"{2**64 - 1:,}" in note.message and "left out" in note.message
    assert note.where == f"byte {bad_at}"


def test_wandb_split_record_never_finished_is_cut_off(tmp_path: Path) -> None:
    out = bytearray(_WANDB_HEADER)
    kind = 2  # FIRST, then only MIDDLE parts, each filling its block
    while len(out) < 4 * 32768:
        n = 32768 - len(out) % 32768 - 7
        out += _wandb_record(kind, b"\x0a" * n)
        kind = 3
    path = tmp_path / "run-abc.wandb"
    path.write_bytes(bytes(out))
    with pytest.raises(LogError) as e:
        load.read_log(path)
    assert "begun at byte 7, is cut off" in str(e.value) and "nothing was logged" not in str(e.value)


# --- #4: an unterminated CSV quote is named on the line it opened --------------------------------------------

def test_unterminated_csv_quote_named_where_it_opened(tmp_path: Path) -> None:
    rows = ["step,loss"] + [f"{i},{1 / (i + 1)}" for i in range(10)] + ['10,"0.5']   # the quote: line 12
    rows += [f"{i},{1 / (i + 1)}" for i in range(11, 20_000)]   # ~440 KB: past the csv module's 131,072
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(LogError) as e:
        load.read_log(path)
    assert str(e.value).startswith("quote.csv line 12: a quoted field opened on this line is never closed")
    assert e.value.position == (12, None)


# --- #5: a trainer_state.json number too long to read: the readers' words, with its place ---------------

def test_trainer_state_long_integer_named_with_its_place(tmp_path: Path) -> None:
    head = '{"log_history": [' + ", ".join(f'{{"step": {i}, "loss": {1 / (i + 1)}}}' for i in range(30))
    head += ', {"step": 31, "loss": '
    digits = textio.MAX_DIGITS + 700
    path = tmp_path / "trainer_state.json"
    path.write_text(head + "1" * digits + '}], "global_step": 31}')
    with pytest.raises(LogError) as e:
        load.read_log(path)
    message = str(e.value)
    assert f"line 1 column {len(head) + 1}:" in message and f"an integer of {digits} digits" in message
    assert "set_int_max_str_digits" not in message


# --- #7: symbolic links among MLflow metric files: not followed, and named ----------------------------------

def test_mlflow_symlinked_metrics_named_in_a_note(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "params").mkdir()
    (run / "metrics" / "loss").write_text("".join(f"{1700000000000 + i} {1 / (i + 1)} {i}\n" for i in range(30)))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "gn").write_text("".join(f"{1700000000000 + i} 1.0 {i}\n" for i in range(30)))
    (run / "metrics" / "grad_norm").symlink_to(outside / "gn")
    (run / "metrics" / "sub").symlink_to(outside, target_is_directory=True)
    log = load.read_log(run)
    assert [s.name for s in log.series] == ["loss"]        # neither link is followed
    [note] = [w for w in log.warnings if w.code == "skipped_files"]
    assert "2 symbolic link(s)" in note.message
    assert "metrics/grad_norm" in note.message and "metrics/sub/" in note.message


# --- #10: UTF-16 without a byte-order mark is said to be so; a huge series name is cut where shown ---------

@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_named(tmp_path: Path, codec: str) -> None:
    from gradhealth.errors import UnknownLogFormat

    path = tmp_path / "loss.csv"
    path.write_bytes(("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(20))).encode(codec))
    with pytest.raises((UnknownLogFormat, LogError)) as e:
        load.read_log(path)
    assert f"looks like {codec.upper().replace('-LE', 'LE').replace('-BE', 'BE')} text" in str(e.value)
    assert "without NUL bytes" not in str(e.value)


def test_zero_padding_is_not_called_utf16() -> None:
    from gradhealth.logs.sniff import utf16_without_bom

    assert utf16_without_bom(b"\x00" * 4096) is None                  # NULs at both parities
    assert utf16_without_bom(b"step,loss\n0,1.0\n" * 10) is None      # no NUL at all
    assert utf16_without_bom("step,loss\n0,1.0\n".encode("utf-16-le") * 10) == "UTF-16LE"


def test_huge_tensorboard_tag_is_cut_in_the_report(tmp_path: Path) -> None:
    from gradhealth import check_logs
    from gradhealth.logs.readers import tensorboard as tb

    tag = "train/loss_" + "A" * 100_000
    records = [_field(1, 1, _f64(1.7e9)) + _field(3, 2, b"brain.Event:2")]
    records += [_event(i, tag, simple=1.0 / (i + 1)) for i in range(30)]
    path = tmp_path / "events.out.tfevents.1700000000.h.1.0"
    path.write_bytes(b"".join(tb.frame_record(r) for r in records))
    log = load.read_log(path)
    [s] = log.series
    assert s.name.startswith(tag[:200]) and len(s.name) < 300 and f"{len(tag):,} characters" in s.name
    assert s.role == "loss"                       # the role is the whole name's
    assert any(w.code == "long_names" for w in log.warnings)
    assert len(check_logs(path).model_dump_json()) < 50_000   # the 100,000-character tag is nowhere whole
