"""TFRecord framing of an event file, checked with numpy over many records at once.

A TFRecord file is a sequence of records, each::

    uint64 length | uint32 masked CRC-32C of the 8 length bytes | payload | uint32 masked CRC-32C of it

One Python loop walks the framing (one ``unpack_from`` per record, :func:`_walk`); everything else
is numpy over many records at once, reading values at arbitrary byte offsets through stride-1 views
of the file (:class:`Buf`): the length CRCs from the lengths themselves, the payload CRCs a 4-byte
word of every record per step (slicing-by-4 with two 16-bit tables, :func:`_payload_crcs_many`).

Damage: a record whose *length* CRC fails breaks the framing: :func:`frame` searches forward for the
next position where a complete record with valid CRCs starts, and says how many bytes it skipped
(``corrupt_record``). A file that ends inside a record gives a ``truncated_log`` warning. Payload
CRCs are checked by :func:`payload_crcs_ok`; the reader skips the records that fail.
"""

from __future__ import annotations

import struct
from array import array

import numpy as np

from gradhealth.errors import UnknownLogFormat
from gradhealth.logs.readers.tensorboard import checksum
from gradhealth.logs.readers.tensorboard.checksum import (
    HUGE_BYTES,
    T0,
    THI,
    TLO,
    mask_crc,
    masked_crc32c,
)
from gradhealth.logs.series import LogWarning


def frame_record(payload: bytes) -> bytes:
    """One TFRecord around ``payload`` (used by tests and the benchmark to write files)."""
    header = struct.pack("<Q", len(payload))
    return (header + struct.pack("<I", masked_crc32c(header)) + payload
            + struct.pack("<I", masked_crc32c(payload)))


U64 = struct.Struct("<Q").unpack_from
U32 = struct.Struct("<I").unpack_from
LONG_RECORD = 4096          # payloads longer than this: not in the per-chunk numpy CRC
_RESYNC_CHUNK = 1 << 20     # byte positions per numpy batch when searching for the next record
# Records per numpy batch (the temporaries stay in cache); the fast path batches by it too.
CHUNK = 1 << 15
_FFFF = np.uint32(0xFFFFFFFF)


class Buf:
    """A file's bytes with numpy views that read a value of each width at *any* byte offset.

    ``u32[i]`` is the little-endian uint32 in bytes ``i..i+3`` (a stride-1 view, nothing copied),
    so gathering the values at many offsets is one fancy index.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        self.u8 = np.frombuffer(data, dtype=np.uint8)
        self.u32 = self._view("<u4", 4)
        self.u64 = self._view("<u8", 8)
        self.f32 = self.u32.view("<f4")
        self.f64 = self.u64.view("<f8")

    def _view(self, dtype: str, size: int) -> np.ndarray:
        count = max(self.n - size + 1, 0)
        if not count:
            return np.zeros(0, dtype=dtype)
        return np.ndarray((count,), dtype=dtype, buffer=self.data, strides=(1,))


def _crc_word(crc: np.ndarray, word: np.ndarray) -> np.ndarray:
    """The (unfinalised) CRC state after 4 more bytes, given as a little-endian uint32."""
    c = crc ^ word
    return TLO[c & 0xFFFF] ^ THI[c >> 16]


def _length_crcs(lengths: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of each 8-byte little-endian length (uint64 array), all at once."""
    crc = np.full(len(lengths), _FFFF, dtype=np.uint32)
    crc = _crc_word(crc, (lengths & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    crc = _crc_word(crc, (lengths >> np.uint64(32)).astype(np.uint32))
    return mask_crc(crc ^ _FFFF)


def header_ok(data: bytes, pos: int) -> bool:
    return len(data) - pos >= 12 and masked_crc32c(data[pos:pos + 8]) == U32(data, pos + 8)[0]


def _walk(buf: Buf, pos: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Record starts and lengths from ``pos`` on, trusting the lengths; and where the walk stopped.

    The walk stops at the end of the file, at a record that does not fit in the file, or at a
    header cut short; ``stop == buf.n`` means the last record ended exactly at the end of the file.
    Length CRCs are not checked here.
    """
    data, n = buf.data, buf.n
    out = array("q")
    append = out.append
    unpack = U64
    try:  # the hot loop: one unpack per record; it ends when unpack runs past the end
        while True:
            append(pos)
            pos += unpack(data, pos)[0] + 16
    except (struct.error, OverflowError):  # past the end of the file, or of int64
        pass
    walked = np.frombuffer(out, dtype=np.int64)   # ascending; all but the last start n - 11 or less
    whole = walked[walked <= n - 12]                # starts with a whole header
    lengths = buf.u64[whole] if len(whole) else np.zeros(0, dtype=np.uint64)
    room = n - 16 - whole                           # payload bytes that fit after each header
    fits = (room >= 0) & (lengths <= np.maximum(room, 0).astype(np.uint64))
    bad = np.flatnonzero(~fits)
    keep = int(bad[0]) if len(bad) else len(whole)
    stop = int(walked[keep]) if keep < len(walked) else n
    return whole[:keep], lengths[:keep], stop


def _crc_advance(buf: Buf, crc: np.ndarray, pos: np.ndarray, first: int, stop: int) -> np.ndarray:
    """The CRC states after words ``first..stop-1`` (4 bytes each) of the payloads at ``pos``;
    two words per 8-byte read."""
    j = first
    while j + 2 <= stop:
        w = buf.u64[pos + 4 * j].view("<u4")
        c = crc ^ w[0::2]
        crc = TLO[c & 0xFFFF] ^ THI[c >> 16]
        c = crc ^ w[1::2]
        crc = TLO[c & 0xFFFF] ^ THI[c >> 16]
        j += 2
    if j < stop:
        c = crc ^ buf.u32[pos + 4 * j]
        crc = TLO[c & 0xFFFF] ^ THI[c >> 16]
    return crc


def payload_crcs_ok(buf: Buf, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each record's payload CRC holds.

    Payloads up to ``LONG_RECORD`` bytes (scalars, small histograms): numpy, ``CHUNK`` records at
    a time (:func:`_payload_crcs_many`). Longer ones (graphs, big histograms): one by one with
    google-crc32c when it is installed; else those up to ``HUGE_BYTES`` bytes all together with
    numpy as well, and the rest one by one (:func:`crc32c_numpy`).
    """
    ok = np.empty(len(starts), dtype=bool)
    long_ = lengths > LONG_RECORD
    if not long_.any():
        for lo in range(0, len(starts), CHUNK):
            ok[lo:lo + CHUNK] = _payload_crcs_many(buf, starts[lo:lo + CHUNK], lengths[lo:lo + CHUNK])
        return ok
    short = np.flatnonzero(~long_)
    for lo in range(0, len(short), CHUNK):
        sel = short[lo:lo + CHUNK]
        ok[sel] = _payload_crcs_many(buf, starts[sel], lengths[sel])
    one_by_one = np.flatnonzero(long_)
    if not checksum.has_c_crc32c():
        together = one_by_one[lengths[one_by_one] <= HUGE_BYTES]
        ok[together] = _payload_crcs_many(buf, starts[together], lengths[together])
        one_by_one = one_by_one[lengths[one_by_one] > HUGE_BYTES]
    for i in one_by_one.tolist():
        s, ln = int(starts[i]) + 12, int(lengths[i])
        ok[i] = masked_crc32c(buf.data[s:s + ln]) == U32(buf.data, s + ln)[0]
    return ok


def _payload_crcs_many(buf: Buf, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each record's payload CRC holds, all records at once.

    In file order, each numpy step advances the CRC register of every record still going by one
    4-byte word (two 16-bit table lookups), so each record reads its bytes in order; once the
    shortest records are done, the steps run over the longer ones only.
    """
    if not len(starts):
        return np.ones(0, dtype=bool)
    pos = starts + 12
    stored = buf.u32[pos + lengths]
    words = lengths // 4
    done = int(words.min())
    # every record has at least ``done`` words: no selection
    crc = _crc_advance(buf, np.full(len(pos), _FFFF, dtype=np.uint32), pos, 0, done)
    act = np.flatnonzero(words > done)
    while len(act):
        w = words[act]
        upto = int(w.min())
        crc[act] = _crc_advance(buf, crc[act], pos[act], done, upto)
        done = upto
        act = act[w > done]
    rest = lengths - 4 * words
    for r in range(3):  # the 1..3 bytes after the last whole word
        sel = np.flatnonzero(rest > r)
        if len(sel):
            b = buf.u8[pos[sel] + 4 * words[sel] + r]
            crc[sel] = T0[(crc[sel] ^ b) & 0xFF] ^ (crc[sel] >> 8)
    return mask_crc(crc ^ _FFFF) == stored


def _resync(buf: Buf, pos: int) -> int | None:
    """The first position >= ``pos`` where a whole record with valid CRCs starts, if any."""
    data, n = buf.data, buf.n
    while pos <= n - 16:
        hi = min(n - 16, pos + _RESYNC_CHUNK)  # candidate starts pos..hi
        lengths = buf.u64[pos:hi + 1]
        hits = np.flatnonzero(_length_crcs(lengths) == buf.u32[pos + 8:hi + 9])
        for h in hits.tolist():
            start = pos + h
            length = U64(data, start)[0]
            end = start + 12 + length
            if end + 4 <= n and masked_crc32c(data[start + 12:end]) == U32(data, end)[0]:
                return start
        pos = hi + 1
    return None


def where(record: int, offset: int) -> str:
    """How warnings name a record."""
    return f"record {record} at byte offset {offset}"


def frame(buf: Buf, name: str, warnings: list[LogWarning]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Record starts, payload lengths and record indices of every record with a valid length CRC.

    Resynchronises after a broken length; warns about that and about a file cut off in a record.
    """
    data, n = buf.data, buf.n
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pos, record = 0, 0
    while True:
        starts, lengths, stop = _walk(buf, pos)
        bad = np.flatnonzero(_length_crcs(lengths) != buf.u32[starts + 8])
        if len(bad):
            starts, lengths, stop = starts[: bad[0]], lengths[: bad[0]], int(starts[bad[0]])
        pieces.append((starts, lengths.astype(np.int64), np.arange(record, record + len(starts))))
        record += len(starts)
        if stop >= n:
            break
        if n - stop < 12 and not len(bad):
            warnings.append(LogWarning("truncated_log", f"{name}: {where(record, stop)}: the file "
                                       f"ends inside the record header ({n - stop} of 12 bytes)",
                                       where=f"offset {stop}"))
            break
        if len(bad) or not header_ok(data, stop):
            if stop == 0:
                raise UnknownLogFormat(f"{name}: not a TFRecord file: {where(0, 0)}: "
                                       "length CRC mismatch")
            nxt = _resync(buf, stop + 1)
            tail = (f"skipped {nxt - stop:,} bytes to the next valid record at byte offset {nxt}"
                    if nxt is not None else f"no valid record after it ({n - stop:,} bytes skipped)")
            warnings.append(LogWarning("corrupt_record", f"{name}: {where(record, stop)}: length CRC "
                                       f"mismatch; {tail}", where=f"offset {stop}"))
            if nxt is None:
                break
            pos, record = nxt, record + 1  # the broken stretch counts as one record
            continue
        need = U64(data, stop)[0] + 16
        warnings.append(LogWarning("truncated_log", f"{name}: {where(record, stop)}: the file ends "
                                   f"inside the record ({n - stop:,} of {need:,} bytes present)",
                                   where=f"offset {stop}"))
        break
    if len(pieces) == 1:
        return pieces[0]
    return tuple(np.concatenate(col) for col in zip(*pieces, strict=True))  # type: ignore[return-value]  # zip keeps each piece's fixed arity
