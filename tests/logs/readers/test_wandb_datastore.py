"""W&B's own run file (``run-<id>.wandb``) and W&B run folders (logsweep64 h05, u02).

The file is written here by a small encoder of the layout wandb's ``sdk/internal/datastore.py``
writes: the 7-byte ``:W&B`` header, 32 KiB blocks of records with a 7-byte header (zlib CRC-32 of
type byte and data, length, type FULL/FIRST/MIDDLE/LAST), each message a protobuf
``wandb_internal.Record`` whose field 2 is a ``HistoryRecord``.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import pytest

from gradhealth.errors import LogError
from gradhealth.logs.load import read_log

BLOCK = 32768


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:          # length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _history(row: dict[str, object], step: int) -> bytes:
    items = b"".join(_field(1, _field(1, k.encode()) + _field(16, json.dumps(v).encode()))
                     for k, v in row.items())
    step_msg = _varint(1 << 3 | 0) + _varint(step) if step else b""
    return items + _field(2, step_msg)


def _record(row: dict[str, object], step: int, num: int) -> bytes:
    return _varint(1 << 3 | 0) + _varint(num) + _field(2, _history(row, step))


def _ieee(typed: bytes) -> int:
    return zlib.crc32(typed) & 0xFFFFFFFF


def _leveldb_crc(typed: bytes) -> int:
    """LevelDB's masked CRC-32C (Castagnoli), bit by bit."""
    c = 0xFFFFFFFF
    for b in typed:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _run_file(messages: list[bytes], crc=_ieee) -> bytes:
    out = bytearray(b":W&B" + struct.pack("<H", 0xBEE1) + b"\x00")
    for msg in messages:
        rest, first = msg, True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\x00" * left
                continue
            chunk, rest = rest[:left - 7], rest[left - 7:]
            kind = (1 if first else 4) if not rest else (2 if first else 3)
            out += struct.pack("<IHB", crc(bytes([kind]) + chunk), len(chunk), kind) + chunk
            first = False
            if not rest:
                break
    return bytes(out)


def _losses(n: int) -> list[float]:
    return [0.69 + 0.3 * math.exp(-i / 10) for i in range(n)]


def _rows(n: int) -> list[bytes]:
    return [_record({"train/loss": v, "lr": 1e-3, "_step": i, "_timestamp": 1.7e9 + i}, i, i + 1)
            for i, v in enumerate(_losses(n))]


def test_run_file_history_is_read_with_split_records(tmp_path: Path) -> None:
    rows = _rows(40)
    # a record larger than a block (a logged text), split FIRST/MIDDLE/LAST over three blocks
    rows.insert(5, _record({"note": "x" * 70_000, "_step": 4}, 4, 99))
    path = tmp_path / "run-abc123.wandb"
    path.write_bytes(_run_file(rows))
    log = read_log(path)
    assert log.format == "wandb"
    loss = next(s for s in log.series if s.name == "train/loss")
    assert loss.role == "loss"
    assert loss.steps.tolist() == list(range(40))
    assert loss.values.tolist() == pytest.approx(_losses(40))
    assert any(w.code == "skipped_values" and "note" in w.message for w in log.warnings)
    assert not any(w.code == "truncated_log" for w in log.warnings)


def test_run_file_with_leveldb_checksums_is_read(tmp_path: Path) -> None:
    path = tmp_path / "run-abc123.wandb"
    path.write_bytes(_run_file(_rows(12), crc=_leveldb_crc))
    log = read_log(path)
    assert len(next(s for s in log.series if s.name == "train/loss")) == 12
    assert not any(w.code == "corrupt_record" for w in log.warnings)


def test_run_file_cut_off_keeps_the_rows_before(tmp_path: Path) -> None:
    data = _run_file(_rows(30))
    path = tmp_path / "run-abc123.wandb"
    path.write_bytes(data[:-5])                     # inside the last record
    log = read_log(path)
    loss = next(s for s in log.series if s.name == "train/loss")
    assert len(loss) == 29
    assert any(w.code == "truncated_log" for w in log.warnings)


def test_run_file_bad_checksum_skips_the_record(tmp_path: Path) -> None:
    data = bytearray(_run_file(_rows(30)))
    data[-3] ^= 0xFF                                # inside the last record's data
    path = tmp_path / "run-abc123.wandb"
    path.write_bytes(bytes(data))
    log = read_log(path)
    loss = next(s for s in log.series if s.name == "train/loss")
    assert len(loss) == 29
    assert any(w.code == "corrupt_record" for w in log.warnings)


def test_run_file_corrupt_length_is_refused_with_its_offset(tmp_path: Path) -> None:
    data = bytearray(_run_file(_rows(10)))
    data[7 + 4:7 + 6] = struct.pack("<H", 40_000)   # the first record's length past its block
    path = tmp_path / "run-abc123.wandb"
    path.write_bytes(bytes(data))
    with pytest.raises(LogError, match="byte 7: a record of 40000 bytes"):
        read_log(path)


def test_run_file_not_protobuf_is_refused(tmp_path: Path) -> None:
    bad = _field(2, b"\x0a\xff\xff\xff\xff\x0f")      # an item claiming 4 GiB
    path = tmp_path / "run-abc123.wandb"
    path.write_bytes(_run_file([bad]))
    with pytest.raises(LogError, match="byte 7: not a W&B record"):
        read_log(path)


def test_run_folder_reads_the_run_file_and_leaves_out_wandb_debug_logs(tmp_path: Path) -> None:
    run = tmp_path / "run-20230329_131547-abc123"
    (run / "logs").mkdir(parents=True)
    (run / "files").mkdir()
    (run / "run-abc123.wandb").write_bytes(_run_file(_rows(40)))
    lines = [f"2023-03-29 13:15:{i % 60:02d},802 DEBUG   HandlerThread:899021 [handler.py:handle_request():144] "
             f"handle_request: status" for i in range(200)]
    (run / "logs" / "debug-internal.log").write_text("\n".join(lines) + "\n")
    (run / "files" / "wandb-summary.json").write_text('{"train/loss": 0.69, "_step": 39}')
    (run / "logs" / "debug.log").write_text(
        "2023-03-29 13:15:47,096 INFO    MainThread:898841 [wandb_setup.py:_flush():76] Configure stats pid to 898841\n")
    log = read_log(run)
    names = [s.name for s in log.series]
    assert "train/loss" in names
    assert not any(n.startswith("logs/") for n in names)
    assert any("W&B's own debug log" in w.message and "logs/debug-internal.log" in w.message
               for w in log.warnings)
    summary = next(w for w in log.warnings if w.code == "summary_only")
    assert "history is read from" in summary.message and "run-abc123.wandb" in summary.message


def test_a_debug_log_outside_a_wandb_run_folder_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "debug.log").write_text(
        "".join(f"step {i} loss {1 / (i + 1):.4f}\n" for i in range(20)))
    (tmp_path / "exp" / "notes.txt").write_text("hello\n")
    log = read_log(tmp_path / "exp")
    assert any(s.role == "loss" and len(s) == 20 for s in log.series)
