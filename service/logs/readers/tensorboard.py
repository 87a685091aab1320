"""TensorBoard event files (``events.out.tfevents.*``), read without tensorflow or tensorboard.

An event file is a sequence of TFRecords, each::

    uint64 length | uint32 masked CRC-32C of the 8 length bytes | payload | uint32 masked CRC-32C of it

and each payload is an ``Event`` protobuf. Only the few messages that hold training curves are
decoded, by hand (:func:`_fields` walks the wire format):

* ``Event {wall_time=1 double, step=2 int64, summary=5 Summary}``; ``Summary {value=1 repeated}``;
* ``Summary.Value {tag=1, simple_value=2 float, histo=5 HistogramProto, tensor=8 TensorProto,
  metadata=9 SummaryMetadata}``.

Scalars come as ``simple_value`` (torch.utils.tensorboard, tensorboardX, Lightning, TF1 and some
Keras) or as 0-d tensors (TF2 / Keras: ``tensor {dtype: DT_FLOAT, tensor_content: 4 bytes}`` under
the ``scalars`` plugin; the plugin name is sent with a tag's first value only, so it is remembered
per tag). Histograms (``add_histogram``) become norms, sqrt(sum_squares): ``layer_grad_norm`` when
the tag names a gradient, else ``weight_norm``. TF2 tensor histograms (a ``[k, 3]`` tensor of
buckets) carry no sum of squares and are skipped, as are images, audio, text and graphs. The
hparams plugin's session-start record gives :attr:`RunLog.params`.

Speed (``bench/bench_logs.py``): one Python loop walks the record framing (one ``unpack_from`` per
record); everything else is numpy over many records at once, reading values at arbitrary byte
offsets through stride-1 views of the file (:class:`_Buf`):

* the length CRCs from the lengths themselves, the payload CRCs a 4-byte word of every record per
  step (slicing-by-4 with two 16-bit tables, :func:`_payload_crcs_many`);
* every record of the common shape ``wall_time, [step], summary{value{tag, simple_value}}`` (one
  scalar per event, as torch and Lightning write) is recognised and decoded byte for byte
  (:func:`_decode_chunk`); its tag is hashed 8 bytes at a time, looked up among the tags met so
  far, and compared word for word with the tag found (:func:`_tag_ids`);
* only the other records (tensors, histograms, hparams, several values per event) go through the
  per-record Python decoder, and the two kinds of points are merged per tag in file order.

CRC-32C is google-crc32c's when installed; otherwise numpy (long buffers are cut into lanes that
are joined with the linear "skip n zero bytes" map, :func:`crc32c_numpy`) or a pure-Python table.

Damage: a record whose payload CRC fails is skipped with a ``corrupt_record`` warning and reading
goes on with the next record (its framing is intact). A record whose *length* CRC fails breaks the
framing: the reader searches forward for the next position where a complete record with valid CRCs
starts, and says how many bytes it skipped. A file that ends inside a record gives a
``truncated_log`` warning. Every warning names the record index and byte offset; what was read
before (and after) is returned. Nothing readable at all raises :class:`LogError`.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from array import array
from collections.abc import Iterator
from pathlib import Path
from warnings import catch_warnings, simplefilter

import numpy as np

from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import LogWarning, RunLog, Series, classify, make_series


def _load_google_crc32c():  # noqa: ANN202 - a module or None
    """google-crc32c's C implementation when installed (its pure-Python fallback is slower than
    ours, and warns on import); the numpy / pure-Python ones below give the same results."""
    try:
        with catch_warnings():
            simplefilter("ignore", RuntimeWarning)
            import google_crc32c
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return google_crc32c if getattr(google_crc32c, "implementation", "") == "c" else None


_google_crc32c = _load_google_crc32c()

# --- CRC-32C (Castagnoli) ----------------------------------------------------------------------------

_POLY = 0x82F63B78  # reflected 0x1EDC6F41
_MASK_DELTA = 0xA282EAD8


def _make_tables() -> np.ndarray:
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(3):  # slicing-by-4: T[k][i] = T[k-1][i] >> 8 ^ T[0][T[k-1][i] & 0xff]
        prev = tables[-1]
        tables.append([(v >> 8) ^ t0[v & 0xFF] for v in prev])
    return np.array(tables, dtype=np.uint32)


_TABLES = _make_tables()
_T0, _T1, _T2, _T3 = (_TABLES[k] for k in range(4))
_TABLE_PY: tuple[int, ...] = tuple(int(v) for v in _T0)
# slicing-by-4 with two 16-bit tables: the state after 4 more bytes is _TLO[c & 0xffff] ^ _THI[c >> 16]
_I16 = np.arange(65536)
_TLO = _T3[_I16 & 0xFF] ^ _T2[_I16 >> 8]
_THI = _T1[_I16 & 0xFF] ^ _T0[_I16 >> 8]
del _I16


def crc32c_python(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data`` with a byte table, in pure Python (slow; the reference)."""
    crc = 0xFFFFFFFF
    table = _TABLE_PY
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """CRC-32C of each row of a ``[n, L]`` uint8 array, all rows at once (numpy, slicing-by-4)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    return _crc_rows(rows, np.full(len(rows), 0xFFFFFFFF, dtype=np.uint32)) ^ np.uint32(0xFFFFFFFF)


def _crc_rows(rows: np.ndarray, state: np.ndarray) -> np.ndarray:
    """The CRC registers after feeding each row of a C-contiguous ``[n, L]`` uint8 array to
    registers starting at ``state`` (no final xor)."""
    n, length = rows.shape
    crc = state.astype(np.uint32)
    nwords = length // 4
    if nwords and n:
        flat = rows.reshape(-1)
        for j in range(nwords):  # word j of every row: a strided view, nothing copied
            w = np.ndarray((n,), dtype="<u4", buffer=flat, offset=4 * j, strides=(length,))
            c = crc ^ w
            crc = _TLO[c & 0xFFFF] ^ _THI[c >> 16]
    for j in range(nwords * 4, length):
        crc = _T0[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    return crc


_LANE = 4096        # bytes per lane when one long buffer is cut up for numpy
_LANES = 256        # lanes computed side by side (1 MiB: stays in cache)


def _gf2_apply(cols: list[int], x: int) -> int:
    r = 0
    i = 0
    while x:
        if x & 1:
            r ^= cols[i]
        x >>= 1
        i += 1
    return r


@functools.cache
def _skip_zeros(nbytes: int) -> tuple[tuple[int, ...], ...]:
    """Byte tables of the (linear) map "the CRC register after ``nbytes`` more zero bytes": register
    ``s`` becomes ``t[0][s & 0xff] ^ t[1][s >> 8 & 0xff] ^ t[2][s >> 16 & 0xff] ^ t[3][s >> 24]``."""
    one = [_TABLE_PY[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(32)]  # one zero byte
    result = [1 << i for i in range(32)]                                       # identity
    power, k = one, nbytes
    while k:  # binary powering of the 32x32 matrix over GF(2), kept as its columns
        if k & 1:
            result = [_gf2_apply(power, c) for c in result]
        power = [_gf2_apply(power, c) for c in power]
        k >>= 1
    return tuple(tuple(_gf2_apply(result, v << (8 * b)) for v in range(256)) for b in range(4))


def crc32c_numpy(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of one buffer with numpy: cut into 4 KiB lanes whose registers are computed side by
    side (lane 0 from the initial register, the others from 0), then joined in order: the register
    after lane i+1 is skip_4KiB(register after lane i) ^ lane i+1's own, since the register update
    is linear. The bytes after the last whole lane are done in Python."""
    data = bytes(data)
    lanes = len(data) // _LANE
    state = 0xFFFFFFFF
    if lanes:
        t0, t1, t2, t3 = _skip_zeros(_LANE)
        rows = np.frombuffer(data, dtype=np.uint8, count=lanes * _LANE).reshape(lanes, _LANE)
        for lo in range(0, lanes, _LANES):
            block = rows[lo:lo + _LANES]
            init = np.zeros(len(block), dtype=np.uint32)
            if lo == 0:
                init[0] = state
            regs = _crc_rows(block, init).tolist()
            if lo == 0:
                state = regs.pop(0)
            for r in regs:
                state = (t0[state & 0xFF] ^ t1[(state >> 8) & 0xFF] ^ t2[(state >> 16) & 0xFF]
                         ^ t3[state >> 24] ^ r)
    table = _TABLE_PY
    for b in data[lanes * _LANE:]:
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state ^ 0xFFFFFFFF


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data``: google-crc32c when installed, else numpy (long data) or pure Python."""
    if _google_crc32c is not None:
        return int(_google_crc32c.value(bytes(data)))
    if len(data) >= _HUGE_RECORD:
        return crc32c_numpy(data)
    return crc32c_python(data)


def mask_crc(crc: int | np.ndarray) -> int | np.ndarray:
    """TFRecord's masking: rotate right by 15 bits and add a constant (mod 2**32)."""
    if isinstance(crc, np.ndarray):
        c = crc.astype(np.uint32)
        return ((c >> np.uint32(15)) | (c << np.uint32(17))) + np.uint32(_MASK_DELTA)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    return int(mask_crc(crc32c(data)))


def frame_record(payload: bytes) -> bytes:
    """One TFRecord around ``payload`` (used by tests and the benchmark to write files)."""
    header = struct.pack("<Q", len(payload))
    return (header + struct.pack("<I", masked_crc32c(header)) + payload
            + struct.pack("<I", masked_crc32c(payload)))


# --- framing -----------------------------------------------------------------------------------------

_U64 = struct.Struct("<Q").unpack_from
_U32 = struct.Struct("<I").unpack_from
_F64 = struct.Struct("<d").unpack_from
_F32 = struct.Struct("<f").unpack_from
_MAX_WARNINGS = 20          # detailed corrupt-record warnings; the rest are counted in one more
_LONG_RECORD = 4096         # payloads longer than this: not in the per-chunk numpy CRC
_HUGE_RECORD = 1 << 16      # without google-crc32c, payloads longer than this: crc32c_numpy each
_RESYNC_CHUNK = 1 << 20     # byte positions per numpy batch when searching for the next record
_CHUNK = 1 << 15            # records per numpy batch (the temporaries stay in cache)
_FFFF = np.uint32(0xFFFFFFFF)


class _Buf:
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
    return _TLO[c & 0xFFFF] ^ _THI[c >> 16]


def _length_crcs(lengths: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of each 8-byte little-endian length (uint64 array), all at once."""
    crc = np.full(len(lengths), _FFFF, dtype=np.uint32)
    crc = _crc_word(crc, (lengths & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    crc = _crc_word(crc, (lengths >> np.uint64(32)).astype(np.uint32))
    return mask_crc(crc ^ _FFFF)


def _header_ok(data: bytes, pos: int) -> bool:
    return len(data) - pos >= 12 and masked_crc32c(data[pos:pos + 8]) == _U32(data, pos + 8)[0]


def _walk(buf: _Buf, pos: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Record starts and lengths from ``pos`` on, trusting the lengths; and where the walk stopped.

    The walk stops at the end of the file, at a record that does not fit in the file, or at a
    header cut short; ``stop == buf.n`` means the last record ended exactly at the end of the file.
    Length CRCs are not checked here.
    """
    data, n = buf.data, buf.n
    out = array("q")
    append = out.append
    unpack = _U64
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


def _crc_advance(buf: _Buf, crc: np.ndarray, pos: np.ndarray, first: int, stop: int) -> np.ndarray:
    """The CRC states after words ``first..stop-1`` (4 bytes each) of the payloads at ``pos``;
    two words per 8-byte read."""
    j = first
    while j + 2 <= stop:
        w = buf.u64[pos + 4 * j].view("<u4")
        c = crc ^ w[0::2]
        crc = _TLO[c & 0xFFFF] ^ _THI[c >> 16]
        c = crc ^ w[1::2]
        crc = _TLO[c & 0xFFFF] ^ _THI[c >> 16]
        j += 2
    if j < stop:
        c = crc ^ buf.u32[pos + 4 * j]
        crc = _TLO[c & 0xFFFF] ^ _THI[c >> 16]
    return crc


def _payload_crcs_ok(buf: _Buf, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each record's payload CRC holds.

    Payloads up to ``_LONG_RECORD`` bytes (scalars, small histograms): numpy, ``_CHUNK`` records at
    a time (:func:`_payload_crcs_many`). Longer ones (graphs, big histograms): one by one with
    google-crc32c when it is installed; else those up to ``_HUGE_RECORD`` bytes all together with
    numpy as well, and the rest one by one (:func:`crc32c_numpy`).
    """
    ok = np.empty(len(starts), dtype=bool)
    long_ = lengths > _LONG_RECORD
    if not long_.any():
        for lo in range(0, len(starts), _CHUNK):
            ok[lo:lo + _CHUNK] = _payload_crcs_many(buf, starts[lo:lo + _CHUNK], lengths[lo:lo + _CHUNK])
        return ok
    short = np.flatnonzero(~long_)
    for lo in range(0, len(short), _CHUNK):
        sel = short[lo:lo + _CHUNK]
        ok[sel] = _payload_crcs_many(buf, starts[sel], lengths[sel])
    one_by_one = np.flatnonzero(long_)
    if _google_crc32c is None:
        together = one_by_one[lengths[one_by_one] <= _HUGE_RECORD]
        ok[together] = _payload_crcs_many(buf, starts[together], lengths[together])
        one_by_one = one_by_one[lengths[one_by_one] > _HUGE_RECORD]
    for i in one_by_one.tolist():
        s, ln = int(starts[i]) + 12, int(lengths[i])
        ok[i] = masked_crc32c(buf.data[s:s + ln]) == _U32(buf.data, s + ln)[0]
    return ok


def _payload_crcs_many(buf: _Buf, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
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
            crc[sel] = _T0[(crc[sel] ^ b) & 0xFF] ^ (crc[sel] >> 8)
    return mask_crc(crc ^ _FFFF) == stored


def _resync(buf: _Buf, pos: int) -> int | None:
    """The first position >= ``pos`` where a whole record with valid CRCs starts, if any."""
    data, n = buf.data, buf.n
    while pos <= n - 16:
        hi = min(n - 16, pos + _RESYNC_CHUNK)  # candidate starts pos..hi
        lengths = buf.u64[pos:hi + 1]
        hits = np.flatnonzero(_length_crcs(lengths) == buf.u32[pos + 8:hi + 9])
        for h in hits.tolist():
            start = pos + h
            length = _U64(data, start)[0]
            end = start + 12 + length
            if end + 4 <= n and masked_crc32c(data[start + 12:end]) == _U32(data, end)[0]:
                return start
        pos = hi + 1
    return None


# --- protobuf wire format ----------------------------------------------------------------------------


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) for each field in ``buf[pos:end]``.

    Varint: a = the value. 64-/32-bit: a = where the 8/4 bytes start. Length-delimited: the bytes
    are ``buf[a:b]``.
    """
    while pos < end:
        key, pos = _varint(buf, pos)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            value, pos = _varint(buf, pos)
            yield fn, wt, value, pos
        elif wt == 1:
            pos += 8
            if pos > end:
                break
            yield fn, wt, pos - 8, pos
        elif wt == 2:
            length, pos = _varint(buf, pos)
            pos += length
            if pos > end:
                break
            yield fn, wt, pos - length, pos
        elif wt == 5:
            pos += 4
            if pos > end:
                break
            yield fn, wt, pos - 4, pos
        else:
            raise _Malformed(f"field {fn} has wire type {wt}")
    if pos != end:
        raise _Malformed(f"a field runs {pos - end} bytes past the end of its message")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed(buf: bytes, wt: int, a: int, b: int, fmt: str) -> list[float]:
    """A repeated float/double/int field, packed (wire type 2) or one element."""
    if wt == 2:
        if fmt == "varint":
            out, pos = [], a
            while pos < b:
                v, pos = _varint(buf, pos)
                out.append(v)
            if pos != b:
                raise _Malformed("packed varints run past their field")
            return out
        size = struct.calcsize(fmt)
        if (b - a) % size:
            raise _Malformed(f"packed {fmt!r} values of {b - a} bytes")
        return list(struct.unpack_from(f"<{(b - a) // size}{fmt}", buf, a))
    if fmt == "varint":
        return [a] if wt == 0 else []
    if (wt, struct.calcsize(fmt)) not in ((1, 8), (5, 4)):
        raise _Malformed(f"a {fmt!r} value with wire type {wt}")
    return list(struct.unpack_from(f"<{fmt}", buf, a))


# TensorFlow DataType -> (struct format of tensor_content, the *_val field holding it, its format)
_DTYPES: dict[int, tuple[str, int, str]] = {
    1: ("f", 5, "f"),        # DT_FLOAT: float_val
    2: ("d", 6, "d"),        # DT_DOUBLE: double_val
    3: ("i", 7, "varint"),   # DT_INT32: int_val
    4: ("B", 7, "varint"),   # DT_UINT8
    5: ("h", 7, "varint"),   # DT_INT16
    6: ("b", 7, "varint"),   # DT_INT8
    9: ("q", 10, "varint"),  # DT_INT64: int64_val
    10: ("?", 11, "varint"),  # DT_BOOL: bool_val
    14: ("H", 13, "varint"),  # DT_BFLOAT16: half_val holds the bits
    19: ("e", 13, "varint"),  # DT_HALF: half_val holds the bits
    22: ("I", 16, "varint"),  # DT_UINT32: uint32_val
    23: ("Q", 17, "varint"),  # DT_UINT64: uint64_val
}


def _tensor_scalar(buf: bytes, a: int, b: int) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    dtype = 0
    numel = 1
    content: tuple[int, int] | None = None
    vals: dict[int, list[tuple[int, int, int]]] = {}
    for fn, wt, fa, fb in _fields(buf, a, b):
        if fn == 1 and wt == 0:
            dtype = fa
        elif fn == 2 and wt == 2:  # TensorShapeProto {dim=1 {size=1}}
            for dfn, dwt, da, db in _fields(buf, fa, fb):
                if dfn == 1 and dwt == 2:
                    size = 1
                    for sfn, swt, sa, _ in _fields(buf, da, db):
                        if sfn == 1 and swt == 0:
                            size = _signed64(sa)
                    numel *= size
        elif fn == 4 and wt == 2:
            content = (fa, fb)
        else:
            vals.setdefault(fn, []).append((wt, fa, fb))
    spec = _DTYPES.get(dtype)
    if spec is None or numel != 1:
        return None
    content_fmt, field, field_fmt = spec
    if content is not None and content[1] > content[0]:
        size = struct.calcsize(content_fmt)
        if content[1] - content[0] != size:
            return None
        raw = struct.unpack_from(f"<{content_fmt}", buf, content[0])[0]
    else:
        found: list[float] = []
        for wt, fa, fb in vals.get(field, []):
            found.extend(_packed(buf, wt, fa, fb, field_fmt))
        if len(found) != 1:
            return None
        raw = found[0]
        if field_fmt == "varint":
            if dtype in (3, 5, 6, 9):  # signed ints come sign-extended to 64 bits
                raw = _signed64(int(raw))
            elif dtype == 19:
                raw = struct.unpack("<e", struct.pack("<H", int(raw) & 0xFFFF))[0]
    if dtype == 14:
        return struct.unpack("<f", struct.pack("<I", (int(raw) & 0xFFFF) << 16))[0]
    return float(raw)


def _histogram_norm(buf: bytes, a: int, b: int) -> float:
    """sqrt(sum_squares) of a HistogramProto (field 5, a double; 0 when absent)."""
    sum_squares = 0.0
    for fn, wt, fa, _ in _fields(buf, a, b):
        if fn == 5 and wt == 1:
            sum_squares = _F64(buf, fa)[0]
    return math.sqrt(sum_squares) if sum_squares >= 0 else math.nan


def _metadata(buf: bytes, a: int, b: int) -> tuple[str | None, tuple[int, int] | None]:
    """(plugin_name, plugin content span) of a SummaryMetadata."""
    name, content = None, None
    for fn, wt, fa, fb in _fields(buf, a, b):
        if fn == 1 and wt == 2:  # plugin_data {plugin_name=1, content=2}
            for pfn, pwt, pa, pb in _fields(buf, fa, fb):
                if pfn == 1 and pwt == 2:
                    name = buf[pa:pb].decode("utf-8", "replace")
                elif pfn == 2 and pwt == 2:
                    content = (pa, pb)
    return name, content


def _hparams(buf: bytes, a: int, b: int) -> dict[str, str]:
    """The hyperparameters of an hparams-plugin session_start_info (``HParamsPluginData.3``)."""
    out: dict[str, str] = {}
    for fn, wt, fa, fb in _fields(buf, a, b):
        if fn != 3 or wt != 2:
            continue
        for sfn, swt, sa, sb in _fields(buf, fa, fb):  # SessionStartInfo {hparams=1 map<string, Value>}
            if sfn != 1 or swt != 2:
                continue
            key, text = None, None
            for efn, ewt, ea, eb in _fields(buf, sa, sb):
                if efn == 1 and ewt == 2:
                    key = buf[ea:eb].decode("utf-8", "replace")
                elif efn == 2 and ewt == 2:  # google.protobuf.Value
                    for vfn, vwt, va, vb in _fields(buf, ea, eb):
                        if vfn == 2 and vwt == 1:
                            number = _F64(buf, va)[0]
                            text = (str(int(number)) if math.isfinite(number) and number == int(number)
                                    else repr(number))
                        elif vfn == 3 and vwt == 2:
                            text = buf[va:vb].decode("utf-8", "replace")
                        elif vfn == 4 and vwt == 0:
                            text = "true" if va else "false"
            if key is not None and text is not None:
                out[key] = text
    return out


# --- decoding ----------------------------------------------------------------------------------------


class _Points:
    """Points of one kind (scalars or histogram norms), in columns, tagged by a tag id."""

    def __init__(self) -> None:
        self.tag = array("q")
        self.order = array("q")   # record index * 2**20 + value index: file order
        self.step = array("q")
        self.value = array("d")
        self.wall = array("d")

    def add(self, tag: int, order: int, step: int, value: float, wall: float) -> None:
        self.tag.append(tag)
        self.order.append(order)
        self.step.append(step)
        self.value.append(value)
        self.wall.append(wall)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (np.frombuffer(self.tag, dtype=np.int64),
                np.frombuffer(self.order, dtype=np.int64), np.frombuffer(self.step, dtype=np.int64),
                np.frombuffer(self.value, dtype=np.float64), np.frombuffer(self.wall, dtype=np.float64))


class _Decoder:
    """Per-record Python decoding of events that are not one plain simple_value."""

    def __init__(self, tag_ids: dict[str, int]) -> None:
        self.tag_ids = tag_ids
        self.plugins: dict[str, str] = {}
        self.scalars = _Points()
        self.histograms = _Points()
        self.params: dict[str, str] = {}
        self.skipped_tensors: set[str] = set()

    def _id(self, tag: str) -> int:
        tid = self.tag_ids.get(tag)
        if tid is None:
            if len(self.tag_ids) >= _MAX_TAGS:
                raise _TooManyTags
            tid = self.tag_ids[tag] = len(self.tag_ids)
        return tid

    def event(self, buf: bytes, a: int, b: int, record: int) -> None:
        wall, step = 0.0, 0
        summaries = []
        for fn, wt, fa, fb in _fields(buf, a, b):
            if fn == 1 and wt == 1:
                wall = _F64(buf, fa)[0]
            elif fn == 2 and wt == 0:
                step = _signed64(fa)
            elif fn == 5 and wt == 2:
                summaries.append((fa, fb))
        found = []  # decode the whole record before keeping any of it
        for sa, sb in summaries:
            for fn, wt, va, vb in _fields(buf, sa, sb):
                if fn == 1 and wt == 2:
                    found.extend(self._value(buf, va, vb))
        for k, (kind, tag, value) in enumerate(found):
            points = self.scalars if kind == "scalar" else self.histograms
            points.add(self._id(tag), (record << 20) + k, step, value, wall)

    def _value(self, buf: bytes, a: int, b: int) -> list[tuple[str, str, float]]:
        tag, simple, histo, tensor, plugin, content = None, None, None, None, None, None
        for fn, wt, fa, fb in _fields(buf, a, b):
            if fn == 1 and wt == 2:
                tag = buf[fa:fb].decode("utf-8", "replace")
            elif fn == 2 and wt == 5:
                simple = _F32(buf, fa)[0]
            elif fn == 5 and wt == 2:
                histo = (fa, fb)
            elif fn == 8 and wt == 2:
                tensor = (fa, fb)
            elif fn == 9 and wt == 2:
                plugin, content = _metadata(buf, fa, fb)
        if tag is None:
            return []
        if plugin is not None:
            self.plugins[tag] = plugin
        else:
            plugin = self.plugins.get(tag, "")
        if plugin == "hparams":
            if content is not None:
                self.params.update(_hparams(buf, *content))
            return []
        if simple is not None:
            return [("scalar", tag, simple)]
        if histo is not None:
            return [("histogram", tag, _histogram_norm(buf, *histo))]
        if tensor is not None and plugin in ("", "scalars"):
            value = _tensor_scalar(buf, *tensor)
            if value is not None:
                return [("scalar", tag, value)]
        if tensor is not None:
            self.skipped_tensors.add(tag)
        return []


def _vvarint(u8: np.ndarray, pos: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints at each of ``pos`` (numpy): their values and where each ends. Clears ``ok`` on overrun."""
    last = len(u8) - 1
    b = u8[np.minimum(pos, last)]
    value = (b & 0x7F).astype(np.uint64)
    end = pos + 1
    more = np.flatnonzero(b >= 0x80)
    ok[pos > last] = False
    cur = pos[more] + 1
    for k in range(1, 10):  # the few longer varints
        if not len(more):
            return value, end
        b = u8[np.minimum(cur, last)]
        value[more] |= (b & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        ok[more[cur > last]] = False
        cont = b >= 0x80
        done = ~cont
        end[more[done]] = cur[done] + 1
        more, cur = more[cont], cur[cont] + 1
    ok[more] = False
    return value, end


_SMALL = np.uint64(1 << 31)


def _decode_simple_scalars(buf: _Buf, starts: np.ndarray, lengths: np.ndarray):
    """:func:`_decode_chunk` over all records, ``_CHUNK`` at a time."""
    parts = [_decode_chunk(buf, starts[lo:lo + _CHUNK], lengths[lo:lo + _CHUNK])
             for lo in range(0, len(starts), _CHUNK)]
    if len(parts) <= 1:
        return parts[0] if parts else _decode_chunk(buf, starts, lengths)
    cols = list(zip(*parts, strict=True))
    del parts
    out = []
    for k in range(len(cols)):  # one column at a time, dropping the pieces as they are joined
        out.append(np.concatenate(cols[k]))
        cols[k] = ()
    return tuple(out)


def _decode_chunk(buf: _Buf, starts: np.ndarray, lengths: np.ndarray):
    """Numpy decoding of events shaped ``wall_time, [step], summary{value{tag, simple_value}}``.

    Returns (mask of records that have exactly that shape, and for those: tag start, tag length,
    step, value, wall time). The shape is checked byte for byte, so a record that differs in any
    way (metadata, two values, a histogram, fields in another order) is left to the Python decoder.
    """
    u8 = buf.u8
    n = len(starts)
    p = starts + 12
    end = p + lengths
    ok = lengths >= 9 + 2 + 2 + 2 + 5
    last = len(u8) - 1
    ok &= u8[np.minimum(p, last)] == 0x09
    wall_pos = p + 1
    q = p + 9
    has_step = ok & (u8[np.minimum(q, last)] == 0x10)
    step = np.zeros(n, dtype=np.uint64)
    sidx = np.flatnonzero(has_step)
    if len(sidx):
        sok = np.ones(len(sidx), dtype=bool)
        sval, send = _vvarint(u8, q[sidx] + 1, sok)
        step[sidx] = sval
        q[sidx] = send
        ok[sidx[~sok]] = False
    # summary (field 5, length-delimited) holding one value (field 1) of tag (1) + simple_value (2)
    for expected in (0x2A, 0x0A):
        ok &= q < end
        ok &= u8[np.minimum(q, last)] == expected
        length, q = _vvarint(u8, q + 1, ok)
        length = np.where(length < _SMALL, length, 0).astype(np.int64)
        ok &= q + length == end
    ok &= q < end
    ok &= u8[np.minimum(q, last)] == 0x0A
    tag_len, tag_start = _vvarint(u8, q + 1, ok)
    tag_len = np.where(ok & (tag_len <= _MAX_FAST_TAG), tag_len, 0).astype(np.int64)
    ok &= (tag_len > 0) & (tag_start + tag_len + 5 == end)
    ok &= u8[np.minimum(tag_start + tag_len, last)] == 0x15
    sel = np.flatnonzero(ok)
    values = buf.f32[end[sel] - 4].astype(np.float64)
    walls = buf.f64[wall_pos[sel]]
    return ok, tag_start[sel], tag_len[sel], step[sel].view(np.int64), values, walls


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MAX_FAST_TAG = 256         # longer tags go through the Python decoder
_MAX_TAGS = 100_000         # distinct tags in one file (each becomes a series)


_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def _tag_words(u64: np.ndarray, tag_start: np.ndarray, tag_len: np.ndarray) -> list[np.ndarray]:
    """Word j (8 bytes, masked to the tag's end; 0 past it) of each tag, for j = 0, 1, ...

    Each tag is followed by at least 9 more bytes of its record, so an 8-byte read that starts
    inside a tag never leaves the file.
    """
    whole = tag_len // 8
    nwords = int((tag_len.max() + 7) // 8) if len(tag_len) else 0
    every = int(whole.min()) if len(tag_len) else 0
    last = len(u64) - 1
    out = [u64[tag_start + 8 * j] for j in range(every)]   # every tag has these whole words
    if nwords > every:
        pmask = np.left_shift(np.uint64(1), (8 * (tag_len - 8 * whole)).astype(np.uint64)) - np.uint64(1)
        for j in range(every, nwords):
            mask = np.where(whole > j, _ALL, np.where(whole == j, pmask, np.uint64(0)))
            out.append(u64[np.minimum(tag_start + 8 * j, last)] & mask)
    return out


class _TooManyTags(Exception):
    pass


class _TagTable:
    """The distinct tags met so far: their hashes (sorted, for lookups), their words, their ids."""

    def __init__(self, data: bytes, tag_ids: dict[str, int]) -> None:
        self.data = data
        self.tag_ids = tag_ids
        self.sorted_hash = np.zeros(0, dtype=np.uint64)
        self.sorted_key = np.zeros(0, dtype=np.int64)   # key (in order of first appearance) of each
        self.length = np.zeros(0, dtype=np.int64)       # per key
        self.tid = np.zeros(0, dtype=np.int64)          # per key: the id in ``tag_ids``
        self.words: list[np.ndarray] = []                # word j of each key's tag

    def lookup(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(key, found) for each hash."""
        if not len(self.sorted_hash):
            return np.zeros(len(h), dtype=np.int64), np.zeros(len(h), dtype=bool)
        at = np.minimum(np.searchsorted(self.sorted_hash, h), len(self.sorted_hash) - 1)
        return self.sorted_key[at], self.sorted_hash[at] == h

    def add(self, h: np.ndarray, first: np.ndarray, tag_start: np.ndarray, tag_len: np.ndarray,
            words: list[np.ndarray]) -> None:
        """New keys: hashes ``h[first]`` (ascending ``first``: order of appearance)."""
        base = len(self.length)
        tids = []
        for k in first.tolist():
            s = int(tag_start[k])
            tag = self.data[s:s + int(tag_len[k])].decode("utf-8", "replace")
            tids.append(self.tag_ids.setdefault(tag, len(self.tag_ids)))
        if len(self.tag_ids) > _MAX_TAGS:
            raise _TooManyTags
        self.tid = np.concatenate([self.tid, np.array(tids, dtype=np.int64)])
        self.length = np.concatenate([self.length, tag_len[first]])
        for j in range(max(len(words), len(self.words))):
            old = self.words[j] if j < len(self.words) else np.zeros(base, dtype=np.uint64)
            new = words[j][first] if j < len(words) else np.zeros(len(first), dtype=np.uint64)
            if j < len(self.words):
                self.words[j] = np.concatenate([old, new])
            else:
                self.words.append(np.concatenate([old, new]))
        hashes = np.concatenate([self.sorted_hash, h[first]])
        keys = np.concatenate([self.sorted_key, np.arange(base, base + len(first))])
        order = np.argsort(hashes, kind="stable")
        self.sorted_hash, self.sorted_key = hashes[order], keys[order]


def _tag_ids(buf: _Buf, tag_start: np.ndarray, tag_len: np.ndarray,
             tag_ids: dict[str, int]) -> np.ndarray:
    """The tag id of each point (``tag_ids`` gets the new tags, numbered in order of appearance).

    In file order, ``_CHUNK`` points at a time: each tag is read 8 bytes at a time and hashed; the
    hash is looked up among the tags met so far (new ones are added); and the tag is compared word
    for word with the one found, so that a hash collision cannot merge two tags (a tag that
    differs is looked up by its bytes instead).
    """
    n = len(tag_start)
    tid = np.empty(n, dtype=np.int64)
    table = _TagTable(buf.data, tag_ids)
    for lo in range(0, n, _CHUNK):
        ts, tl = tag_start[lo:lo + _CHUNK], tag_len[lo:lo + _CHUNK]
        words = _tag_words(buf.u64, ts, tl)
        nwords = (tl + 7) // 8
        every = int(nwords.min())
        h = (_FNV_OFFSET ^ tl.astype(np.uint64)) * _FNV_PRIME
        for j, w in enumerate(words):
            x = (h ^ w) * _FNV_PRIME
            x ^= x >> np.uint64(29)
            h = x if j < every else np.where(nwords > j, x, h)
        key, found = table.lookup(h)
        if not found.all():
            missing = np.flatnonzero(~found)
            _, first = np.unique(h[missing], return_index=True)
            table.add(h, np.sort(missing[first]), ts, tl, words)
            key, found = table.lookup(h)
        same = table.length[key] == tl
        for j in range(max(len(words), len(table.words))):
            mine = words[j] if j < len(words) else np.uint64(0)
            theirs = table.words[j][key] if j < len(table.words) else np.uint64(0)
            same &= mine == theirs
        tid[lo:lo + len(ts)] = table.tid[key]
        for i in np.flatnonzero(~same).tolist():  # a hash collision: by the tag's bytes
            s = int(ts[i])
            tag = buf.data[s:s + int(tl[i])].decode("utf-8", "replace")
            tid[lo + i] = tag_ids.setdefault(tag, len(tag_ids))
    if len(tag_ids) > _MAX_TAGS:
        raise _TooManyTags
    return tid


# --- the reader --------------------------------------------------------------------------------------


def _where(record: int, offset: int) -> str:
    return f"record {record} at byte offset {offset}"


class TensorBoardReader:
    name = "tensorboard"
    description = ("TensorBoard event file (events.out.tfevents.*): scalars (simple_value or TF2 "
                   "tensors) and histogram norms, from torch.utils.tensorboard, tensorboardX, "
                   "Lightning, Keras/TF2")

    def sniff(self, filename: str, head: bytes) -> float:
        if "tfevents" in filename:
            return 1.0
        if len(head) >= 12 and _header_ok(head, 0):
            return 0.9
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > limits.max_file_bytes:
                raise UploadTooLarge(f"{path.name} is {size:,} bytes; the limit for one log file is "
                                     f"{limits.max_file_bytes:,} bytes")
            data = path.read_bytes()
        except OSError as e:
            raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None
        return read_events(data, str(path), limits)


def _frame(buf: _Buf, name: str, warnings: list[LogWarning]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
            warnings.append(LogWarning("truncated_log", f"{name}: {_where(record, stop)}: the file "
                                       f"ends inside the record header ({n - stop} of 12 bytes)",
                                       where=f"offset {stop}"))
            break
        if len(bad) or not _header_ok(data, stop):
            if stop == 0:
                raise UnknownLogFormat(f"{name}: not a TFRecord file: {_where(0, 0)}: "
                                       "length CRC mismatch")
            nxt = _resync(buf, stop + 1)
            tail = (f"skipped {nxt - stop:,} bytes to the next valid record at byte offset {nxt}"
                    if nxt is not None else f"no valid record after it ({n - stop:,} bytes skipped)")
            warnings.append(LogWarning("corrupt_record", f"{name}: {_where(record, stop)}: length CRC "
                                       f"mismatch; {tail}", where=f"offset {stop}"))
            if nxt is None:
                break
            pos, record = nxt, record + 1  # the broken stretch counts as one record
            continue
        need = _U64(data, stop)[0] + 16
        warnings.append(LogWarning("truncated_log", f"{name}: {_where(record, stop)}: the file ends "
                                   f"inside the record ({n - stop:,} of {need:,} bytes present)",
                                   where=f"offset {stop}"))
        break
    if len(pieces) == 1:
        return pieces[0]
    return tuple(np.concatenate(col) for col in zip(*pieces, strict=True))  # type: ignore[return-value]


def read_events(data: bytes, source: str, limits: ReadLimits | None = None) -> RunLog:
    """Read a whole event file's bytes into a RunLog (see the module docstring)."""
    limits = limits or ReadLimits()
    name = Path(source).name
    try:
        return _read_events(data, source, name, limits)
    except _TooManyTags:
        raise UploadTooLarge(f"{name}: more than {_MAX_TAGS:,} distinct tags; the limit is "
                             f"{_MAX_TAGS:,} series per file") from None


def _read_events(data: bytes, source: str, name: str, limits: ReadLimits) -> RunLog:
    if not data:
        raise LogError(f"{name}: the file is empty (no TFRecord in it)")
    buf = _Buf(data)
    warnings: list[LogWarning] = []

    # 1. framing and length CRCs
    starts, lengths, index = _frame(buf, name, warnings)
    if not len(starts):
        raise LogError(warnings[0].message if warnings else f"{name}: no complete TFRecord in the file")

    # 2. payload CRCs
    crc_ok = _payload_crcs_ok(buf, starts, lengths)
    bad = np.flatnonzero(~crc_ok)
    for i in bad[:_MAX_WARNINGS].tolist():
        s = int(starts[i])
        warnings.append(LogWarning("corrupt_record", f"{name}: {_where(int(index[i]), s)}: payload CRC "
                                   "mismatch; record skipped", where=f"offset {s}"))
    if len(bad) > _MAX_WARNINGS:
        warnings.append(LogWarning("corrupt_record", f"{name}: {len(bad) - _MAX_WARNINGS} more records "
                                   "with a payload CRC mismatch skipped"))
    if len(bad):
        starts, lengths, index = starts[crc_ok], lengths[crc_ok], index[crc_ok]
    if not len(starts):
        raise LogError(warnings[0].message)

    # 3. events: plain simple_value scalars with numpy, the rest one by one
    n_records = len(starts)
    simple, tag_start, tag_len, f_step, f_value, f_wall = _decode_simple_scalars(buf, starts, lengths)
    if len(f_value) > limits.max_points:
        raise UploadTooLarge(f"{name}: more than {limits.max_points:,} points; the limit is "
                             f"{limits.max_points:,}")
    f_order = index[simple]   # record index; the Python decoder's order is record << 20 | value
    others = np.flatnonzero(~simple)
    starts, lengths, index = starts[others], lengths[others], index[others]
    del simple, others
    tag_ids: dict[str, int] = {}
    f_tag = _tag_ids(buf, tag_start, tag_len, tag_ids)
    del tag_start, tag_len
    decoder = _Decoder(tag_ids)
    bad_events = 0
    for i in range(len(starts)):
        s, ln = int(starts[i]), int(lengths[i])
        try:
            decoder.event(data, s + 12, s + 12 + ln, int(index[i]))
        except (_Malformed, IndexError, struct.error) as exc:
            bad_events += 1
            if bad_events <= _MAX_WARNINGS:
                warnings.append(LogWarning("corrupt_record", f"{name}: {_where(int(index[i]), s)}: not a "
                                           f"valid Event ({exc or 'cut short'}); record skipped",
                                           where=f"offset {s}"))
        if len(decoder.scalars.value) + len(decoder.histograms.value) + len(f_value) > limits.max_points:
            raise UploadTooLarge(f"{name}: more than {limits.max_points:,} points; the limit is "
                                 f"{limits.max_points:,}")
    if bad_events > _MAX_WARNINGS:
        warnings.append(LogWarning("corrupt_record", f"{name}: {bad_events - _MAX_WARNINGS} more "
                                   "records that are not valid Events skipped"))

    # 4. series, in the order their tags first appear
    names = {tid: tag for tag, tid in tag_ids.items()}
    fast = (f_tag, f_order, f_step, f_value, f_wall)
    none = tuple(c[:0] for c in fast)
    series = _series(names, fast, decoder.scalars.arrays(), histogram=False)
    taken = {s.name for s in series}
    series += _series(names, none, decoder.histograms.arrays(), histogram=True, taken=taken)
    if not series:
        skipped = (f" (tensors that are not scalars: {', '.join(sorted(decoder.skipped_tensors)[:5])})"
                   if decoder.skipped_tensors else "")
        warnings.append(LogWarning("no_series", f"{name}: {n_records:,} records read, none holds a "
                                   f"scalar or a histogram{skipped}"))
    return RunLog(format="tensorboard", source=source, series=series, warnings=warnings,
                  params=decoder.params)


_GRAD_TOKEN = re.compile(r"(?:^|[/._-])(?:grads?|gradients?)(?=$|[/._-])", re.IGNORECASE)


def _by_tag(tag: np.ndarray) -> dict[int, np.ndarray]:
    """Tag id -> the indices of its points, ascending."""
    if not len(tag):
        return {}
    count = int(tag.max()) + 1
    key = tag.astype(np.uint16) if count <= 1 << 16 else tag   # uint16: numpy sorts by radix
    order = np.argsort(key, kind="stable")
    sizes = np.bincount(tag, minlength=count)
    ends = np.cumsum(sizes).tolist()
    return {t: order[e - c:e] for t, (c, e) in enumerate(zip(sizes.tolist(), ends, strict=True)) if c}


def _series(names: dict[int, str], fast: tuple[np.ndarray, ...], slow: tuple[np.ndarray, ...], *,
            histogram: bool, taken: set[str] | None = None) -> list[Series]:
    """One series per tag from its numpy-decoded (``fast``) and Python-decoded (``slow``) points,
    each given as columns (tag id, order in the file, step, value, wall time), merged in file order."""
    f_tag, f_order, f_step, f_value, f_wall = fast
    s_tag, s_order, s_step, s_value, s_wall = slow
    fast_of, slow_of = _by_tag(f_tag), _by_tag(s_tag)
    cols = []
    for tid in set(fast_of) | set(slow_of):
        fi, si = fast_of.get(tid), slow_of.get(tid)
        if si is None:
            order, step, value, wall = f_order[fi[:1]] << 20, f_step[fi], f_value[fi], f_wall[fi]
        elif fi is None:
            order, step, value, wall = s_order[si], s_step[si], s_value[si], s_wall[si]
        else:
            order = np.concatenate([f_order[fi] << 20, s_order[si]])
            first = np.argsort(order, kind="stable")
            order = order[first]
            step = np.concatenate([f_step[fi], s_step[si]])[first]
            value = np.concatenate([f_value[fi], s_value[si]])[first]
            wall = np.concatenate([f_wall[fi], s_wall[si]])[first]
        cols.append((int(order[0]), tid, step, value, wall))
    cols.sort(key=lambda c: c[0])
    out = []
    for _, tid, step, value, wall in cols:
        tname = names[tid]
        if not histogram:
            out.append(make_series(tname, step, value, wall))
            continue
        role, layer = classify(tname)
        if "grad" in tname.lower():
            if role != "layer_grad_norm" or not layer:
                layer = _GRAD_TOKEN.sub("", tname).strip("/._-") or tname
            role = "layer_grad_norm"
        else:
            role, layer = "weight_norm", layer if role == "weight_norm" and layer else tname
        sname = f"{tname}/norm" if taken and tname in taken else tname
        out.append(make_series(sname, step, value, wall, role=role, layer=layer))
    return out


READER = TensorBoardReader()
