"""The numpy fast path: the events of the common shape, decoded many records at once.

Every record shaped ``wall_time, [step], summary{value{tag, simple_value}}`` (one scalar per event,
as torch.utils.tensorboard and Lightning write) is recognised and decoded byte for byte
(:func:`_decode_chunk`); its tag is hashed 8 bytes at a time, looked up among the tags met so far,
and compared word for word with the tag found (:func:`assign_tag_ids`). Every other record (tensors,
histograms, hparams, several values per event) is left to
:class:`gradhealth.logs.readers.tensorboard.protobuf.EventDecoder`.

Batches are :data:`gradhealth.logs.readers.tensorboard.tfrecord.CHUNK` records and the tag limit is
:data:`gradhealth.logs.readers.tensorboard.protobuf.MAX_TAGS`, both read at call time so that
one setting governs every stage.
"""

from __future__ import annotations

import numpy as np

from gradhealth.logs.readers.tensorboard import protobuf, tfrecord
from gradhealth.logs.readers.tensorboard.tfrecord import Buf


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


def decode_simple_scalars(buf: Buf, starts: np.ndarray, lengths: np.ndarray):
    """:func:`_decode_chunk` over all records, ``CHUNK`` at a time."""
    chunk = tfrecord.CHUNK
    parts = [_decode_chunk(buf, starts[lo:lo + chunk], lengths[lo:lo + chunk])
             for lo in range(0, len(starts), chunk)]
    if len(parts) <= 1:
        return parts[0] if parts else _decode_chunk(buf, starts, lengths)
    cols = list(zip(*parts, strict=True))
    del parts
    out = []
    for k in range(len(cols)):  # one column at a time, dropping the pieces as they are joined
        out.append(np.concatenate(cols[k]))
        cols[k] = ()
    return tuple(out)


def _decode_chunk(buf: Buf, starts: np.ndarray, lengths: np.ndarray):
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
    tag_len = np.where(ok & (tag_len <= MAX_FAST_TAG), tag_len, 0).astype(np.int64)
    ok &= (tag_len > 0) & (tag_start + tag_len + 5 == end)
    ok &= u8[np.minimum(tag_start + tag_len, last)] == 0x15
    sel = np.flatnonzero(ok)
    values = buf.f32[end[sel] - 4].astype(np.float64)
    walls = buf.f64[wall_pos[sel]]
    return ok, tag_start[sel], tag_len[sel], step[sel].view(np.int64), values, walls


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
MAX_FAST_TAG = 256          # longer tags go through the Python decoder


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
        if len(self.tag_ids) > protobuf.MAX_TAGS:
            raise protobuf.TooManyTags
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


def assign_tag_ids(buf: Buf, tag_start: np.ndarray, tag_len: np.ndarray,
                   tag_ids: dict[str, int]) -> np.ndarray:
    """The tag id of each point (``tag_ids`` gets the new tags, numbered in order of appearance).

    In file order, ``CHUNK`` points at a time: each tag is read 8 bytes at a time and hashed; the
    hash is looked up among the tags met so far (new ones are added); and the tag is compared word
    for word with the one found, so that a hash collision cannot merge two tags (a tag that
    differs is looked up by its bytes instead).
    """
    n = len(tag_start)
    tid = np.empty(n, dtype=np.int64)
    table = _TagTable(buf.data, tag_ids)
    chunk = tfrecord.CHUNK
    for lo in range(0, n, chunk):
        ts, tl = tag_start[lo:lo + chunk], tag_len[lo:lo + chunk]
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
    if len(tag_ids) > protobuf.MAX_TAGS:
        raise protobuf.TooManyTags
    return tid
