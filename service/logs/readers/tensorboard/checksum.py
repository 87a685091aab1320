"""CRC-32C (Castagnoli), as TFRecord framing uses it: one buffer, many equal-length rows at once,
and TFRecord's masking.

:func:`crc32c` is google-crc32c's C implementation when installed; otherwise numpy for long buffers
(cut into 4 KiB lanes computed side by side and joined with the linear "skip n zero bytes" map,
:func:`crc32c_numpy`) or a pure-Python byte table (:func:`crc32c_python`, the reference). All give
the same results. :func:`crc32c_rows` and the slicing-by-4 tables (:data:`TLO`, :data:`THI`: two
16-bit tables that advance a register by one 4-byte word) serve the framing's numpy code.
"""

from __future__ import annotations

import functools
from typing import overload
from warnings import catch_warnings, simplefilter

import numpy as np


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


def has_c_crc32c() -> bool:
    """Whether google-crc32c's C implementation is in use (then long buffers go one by one to it)."""
    return _google_crc32c is not None


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
T0, T1, T2, T3 = (_TABLES[k] for k in range(4))
_TABLE_PY: tuple[int, ...] = tuple(int(v) for v in T0)
# slicing-by-4 with two 16-bit tables: the state after 4 more bytes is TLO[c & 0xffff] ^ THI[c >> 16]
_I16 = np.arange(65536)
TLO = T3[_I16 & 0xFF] ^ T2[_I16 >> 8]
THI = T1[_I16 & 0xFF] ^ T0[_I16 >> 8]
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
            crc = TLO[c & 0xFFFF] ^ THI[c >> 16]
    for j in range(nwords * 4, length):
        crc = T0[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    return crc


HUGE_BYTES = 1 << 16  # without google-crc32c, buffers this long or longer: crc32c_numpy
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
    if len(data) >= HUGE_BYTES:
        return crc32c_numpy(data)
    return crc32c_python(data)


@overload
def mask_crc(crc: int) -> int: ...
@overload
def mask_crc(crc: np.ndarray) -> np.ndarray: ...
def mask_crc(crc: int | np.ndarray) -> int | np.ndarray:
    """TFRecord's masking: rotate right by 15 bits and add a constant (mod 2**32)."""
    if isinstance(crc, np.ndarray):
        c = crc.astype(np.uint32)
        return ((c >> np.uint32(15)) | (c << np.uint32(17))) + np.uint32(_MASK_DELTA)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    return int(mask_crc(crc32c(data)))
