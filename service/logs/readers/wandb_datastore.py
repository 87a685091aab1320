"""W&B's own run file, ``run-<id>.wandb``: the datastore every W&B run folder (``wandb/run-<date>-<id>/``)
writes since wandb 0.10, and the only copy of an offline run's (``wandb offline``) step history.

The layout, checked against files written by wandb 0.14 and wandb's ``sdk/internal/datastore.py``:

- a 7-byte file header: the ident ``:W&B``, the magic ``0xBEE1`` (2 bytes, little-endian) and a
  version byte (0);
- then LevelDB-log-style records in blocks of 32 KiB counted from the start of the file (the
  header fills the first 7 bytes of block 0). Each record has a 7-byte header: a checksum (4 bytes),
  the data length (2 bytes) and a type (1 byte: FULL 1, or FIRST 2, MIDDLE 3, LAST 4 for a message
  split across blocks). W&B's checksum is the plain CRC-32 (zlib's) of the type byte and the data,
  not LevelDB's masked CRC-32C; a file whose first record carries the masked CRC-32C is read
  with that. Fewer than 7 bytes left in a
  block are zero padding, and so is an all-zero record header (a preallocated tail);
- each assembled message is a protobuf ``wandb_internal.Record``. Only its ``history`` field (2,
  a ``HistoryRecord``: ``repeated HistoryItem item = 1`` with ``key = 1``, ``repeated string
  nested_key = 2``, ``value_json = 16``, and ``HistoryStep step = 2`` with ``num = 1``) is read
  here; the protobuf wire format is decoded directly (no generated code).

The file is untrusted: every length is checked against what is left of its block, message or file,
and a record that breaks the layout (a length past its block, an unknown type, a split message out
of order, a message that is not valid protobuf) is refused with :class:`LogError` naming its byte
offset. A record whose checksum does not match is skipped and counted (the reader goes on with the
next record: its length still fits its block); a last record cut off at the end of the file (a run
still writing, or a copy taken mid-run) ends the read with a note.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from gradhealth.errors import LogError

IDENT = b":W&B"
MAGIC = 0xBEE1
HEADER = IDENT + struct.pack("<H", MAGIC)     # the version byte follows
HEADER_LEN = 7
BLOCK_LEN = 32768
RECORD_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

#: ``wandb_internal.Record`` field numbers read here (wandb/proto/wandb_internal.proto)
RECORD_HISTORY = 2
HISTORY_ITEM, HISTORY_STEP = 1, 2
ITEM_KEY, ITEM_NESTED_KEY, ITEM_VALUE_JSON = 1, 2, 16
STEP_NUM = 1


def is_datastore(head: bytes) -> bool:
    """Whether ``head`` starts with the ``.wandb`` file header."""
    return head.startswith(HEADER) and len(head) >= HEADER_LEN


@dataclass
class HistoryRow:
    """One ``HistoryRecord``: its items as (key, value_json) and its ``step.num`` (None if unset)."""

    items: list[tuple[str, str]]
    step: int | None
    offset: int      # byte offset of the record's first block record in the file


@dataclass
class Scan:
    """What a scan found besides the history rows."""

    bad_checksums: int = 0
    first_bad: int | None = None
    truncated_at: int | None = None
    records: int = 0
    rows: list[HistoryRow] = field(default_factory=list)


# --- CRC-32C (LevelDB's), masked; only tried where zlib's CRC-32 does not match -----------------------
def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def _crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _ieee(typed: bytes) -> int:
    return zlib.crc32(typed) & 0xFFFFFFFF


def _leveldb(typed: bytes) -> int:
    return _masked(_crc32c(typed))


# --- protobuf wire format ------------------------------------------------------------------------------
class _Corrupt(Exception):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    for _ in range(10):
        if i >= len(buf):
            raise _Corrupt("a varint runs past the end of its message")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
    raise _Corrupt("a varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message: an int for varints and fixed-width
    fields, the bytes of a length-delimited one. Raises ``_Corrupt`` on a malformed message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt("field number 0")
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if i + width > len(buf):
                raise _Corrupt("a fixed-width field runs past the end of its message")
            value = int.from_bytes(buf[i:i + width], "little")
            i += width
        elif wire == 2:
            length, i = _varint(buf, i)
            if length > len(buf) - i:
                raise _Corrupt(f"a field of {length} bytes with {len(buf) - i} left in its message")
            value = buf[i:i + length]
            i += length
        else:
            raise _Corrupt(f"wire type {wire} (groups and unknown types are not written by W&B)")
        yield number, wire, value


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise _Corrupt("a string field with a number's wire type")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Corrupt(f"a string field that is not UTF-8 ({e.reason})") from None


def _history(buf: bytes, offset: int) -> HistoryRow:
    items: list[tuple[str, str]] = []
    step: int | None = None
    for number, _wire, value in fields(buf):
        if number == HISTORY_ITEM and isinstance(value, bytes):
            key, nested, value_json = "", [], ""
            for n, _w, v in fields(value):
                if n == ITEM_KEY:
                    key = _text(v)
                elif n == ITEM_NESTED_KEY:
                    nested.append(_text(v))
                elif n == ITEM_VALUE_JSON:
                    value_json = _text(v)
            items.append((key or ".".join(nested), value_json))
        elif number == HISTORY_STEP and isinstance(value, bytes):
            step = 0                                   # proto3: num 0 is not written
            for n, w, v in fields(value):
                if n == STEP_NUM and w == 0 and isinstance(v, int):
                    step = v - (1 << 64) if v >= 1 << 63 else v
    return HistoryRow(items, step, offset)


def _message(buf: bytes, offset: int, scan: Scan) -> None:
    scan.records += 1
    for number, _wire, value in fields(buf):
        if number == RECORD_HISTORY:
            if not isinstance(value, bytes):
                raise _Corrupt("the history field with a number's wire type")
            scan.rows.append(_history(value, offset))


# --- blocks and records --------------------------------------------------------------------------------
def scan(f: BinaryIO, name: str, size: int) -> Scan:
    """The history rows of a ``.wandb`` file opened as ``f`` (``size`` bytes, already bounded by the
    caller's file limit). Raises :class:`LogError` naming the byte offset of what is broken."""
    header = f.read(HEADER_LEN)
    if len(header) < HEADER_LEN or not header.startswith(HEADER):
        raise LogError(f"{name}: not a W&B run file (it does not start with the ':W&B' header)")
    if header[6] != 0:
        raise LogError(f"{name}: W&B run file version {header[6]}; gradhealth reads version 0")
    out = Scan()
    pos = HEADER_LEN
    pending: list[bytes] | None = None     # the parts of a split message
    pending_at = 0
    dropping = False                       # the parts after a bad checksum, up to the next message
    checksum = None                        # W&B's CRC-32, or LevelDB's: the first record's decides
    while pos < size:
        left = BLOCK_LEN - pos % BLOCK_LEN
        if left < RECORD_HEADER_LEN:                 # the block's zero trailer
            f.seek(left, 1)
            pos += left
            continue
        head = f.read(RECORD_HEADER_LEN)
        if len(head) < RECORD_HEADER_LEN:
            out.truncated_at = pos
            break
        stored, length, kind = struct.unpack("<IHB", head)
        if stored == 0 and length == 0 and kind == 0:   # zero-filled (preallocated) rest of a block
            f.seek(left - RECORD_HEADER_LEN, 1)
            pos += left
            continue
        if length > left - RECORD_HEADER_LEN:
            raise LogError(f"{name} byte {pos}: a record of {length} bytes with "
                           f"{left - RECORD_HEADER_LEN} left in its 32 KiB block; the file is corrupt")
        if kind not in (FULL, FIRST, MIDDLE, LAST):
            raise LogError(f"{name} byte {pos}: record type {kind} (expected 1 to 4); the file is corrupt")
        data = f.read(length)
        if len(data) < length:
            out.truncated_at = pos
            break
        at = pos
        pos += RECORD_HEADER_LEN + length
        typed = bytes([kind]) + data
        if checksum is None:
            checksum = _leveldb if _ieee(typed) != stored and _leveldb(typed) == stored else _ieee
        if checksum(typed) != stored:
            out.bad_checksums += 1
            if out.first_bad is None:
                out.first_bad = at
            pending, dropping = None, True             # a split message missing a part is dropped
            continue
        if dropping and kind in (MIDDLE, LAST):
            continue
        dropping = False
        if kind in (FULL, FIRST):
            if pending is not None:
                raise LogError(f"{name} byte {at}: a new message starts inside the split message "
                               f"begun at byte {pending_at}; the file is corrupt")
            if kind == FIRST:
                pending, pending_at = [data], at
                continue
            message, message_at = data, at
        else:
            if pending is None:
                raise LogError(f"{name} byte {at}: the {'middle' if kind == MIDDLE else 'last'} part "
                               "of a split message without its first part; the file is corrupt")
            pending.append(data)
            if kind == MIDDLE:
                continue
            message, message_at, pending = b"".join(pending), pending_at, None
        try:
            _message(message, message_at, out)
        except _Corrupt as e:
            raise LogError(f"{name} byte {message_at}: not a W&B record ({e}); the file is corrupt") from None
    if pending is not None and out.truncated_at is None:
        out.truncated_at = pending_at
    return out
