"""Protobuf wire decoding, by hand, of the few TensorFlow messages that hold training curves.

* ``Event {wall_time=1 double, step=2 int64, summary=5 Summary}``; ``Summary {value=1 repeated}``;
* ``Summary.Value {tag=1, simple_value=2 float, histo=5 HistogramProto, tensor=8 TensorProto,
  metadata=9 SummaryMetadata}``.

:func:`fields` walks the wire format; :class:`EventDecoder` decodes one ``Event`` record at a time
into columns of points (scalars and histogram norms), tagged by a tag id. Scalars come as
``simple_value`` or as one-element tensors (:func:`tensor_scalar`) under the ``scalars`` plugin;
the plugin name is sent with a tag's first value only, so it is remembered per tag. The hparams
plugin's session-start record gives the run's parameters (:func:`hparams`).
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterator

import numpy as np

_F64 = struct.Struct("<d").unpack_from
_F32 = struct.Struct("<f").unpack_from
MAX_TAGS = 100_000          # distinct tags in one file (each becomes a series)


class TooManyTags(Exception):
    """More than :data:`MAX_TAGS` distinct tags (the reader turns it into UploadTooLarge)."""


class Malformed(Exception):
    """A record that is not a valid protobuf message of the expected shape."""


def varint(buf: bytes, pos: int) -> tuple[int, int]:
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
            raise Malformed("varint longer than 10 bytes")


def fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) for each field in ``buf[pos:end]``.

    Varint: a = the value. 64-/32-bit: a = where the 8/4 bytes start. Length-delimited: the bytes
    are ``buf[a:b]``.
    """
    while pos < end:
        key, pos = varint(buf, pos)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            value, pos = varint(buf, pos)
            yield fn, wt, value, pos
        elif wt == 1:
            pos += 8
            if pos > end:
                break
            yield fn, wt, pos - 8, pos
        elif wt == 2:
            length, pos = varint(buf, pos)
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
            raise Malformed(f"field {fn} has wire type {wt}")
    if pos != end:
        raise Malformed(f"a field runs {pos - end} bytes past the end of its message")


def signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed(buf: bytes, wt: int, a: int, b: int, fmt: str) -> list[float]:
    """A repeated float/double/int field, packed (wire type 2) or one element."""
    if wt == 2:
        if fmt == "varint":
            out: list[float] = []
            pos = a
            while pos < b:
                v, pos = varint(buf, pos)
                out.append(v)
            if pos != b:
                raise Malformed("packed varints run past their field")
            return out
        size = struct.calcsize(fmt)
        if (b - a) % size:
            raise Malformed(f"packed {fmt!r} values of {b - a} bytes")
        return list(struct.unpack_from(f"<{(b - a) // size}{fmt}", buf, a))
    if fmt == "varint":
        return [a] if wt == 0 else []
    if (wt, struct.calcsize(fmt)) not in ((1, 8), (5, 4)):
        raise Malformed(f"a {fmt!r} value with wire type {wt}")
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


#: The most elements a tensor's declared shape may have before it is called out as not fitting its
#: data (TensorFlow's own tensors stop at 2^31 elements per dimension in practice, and no summary
#: logs one so big).
MAX_TENSOR_ELEMENTS = 2**31


def tensor_scalar(buf: bytes, a: int, b: int) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    return tensor_scalar_why(buf, a, b)[0]


def _dims_text(dims: list[int]) -> str:
    return "[" + ", ".join(f"2^{d.bit_length() - 1}" if d > 1 << 20 and d & (d - 1) == 0 else str(d)
                           for d in dims) + "]"


def tensor_scalar_why(buf: bytes, a: int, b: int) -> tuple[float | None, str | None]:
    """The value of a one-element numeric TensorProto and None, else None and, where its declared
    shape does not fit its data (dims [2^40, 2^40] over one value, DT_DOUBLE [1000000] over 8 bytes,
    a negative dim: errsweep6), the words saying so; (None, None) for a tensor that is merely not a
    scalar (a histogram's, a string's). One ``float_val`` over many elements is TensorFlow's
    shorthand for a filled tensor, not a mismatch."""
    dtype = 0
    dims: list[int] = []
    content: tuple[int, int] | None = None
    vals: dict[int, list[tuple[int, int, int]]] = {}
    for fn, wt, fa, fb in fields(buf, a, b):
        if fn == 1 and wt == 0:
            dtype = fa
        elif fn == 2 and wt == 2:  # TensorShapeProto {dim=2 {size=1}} (dim is field 2, not 1: errsweep6)
            for dfn, dwt, da, db in fields(buf, fa, fb):
                if dfn == 2 and dwt == 2:
                    size = 0
                    for sfn, swt, sa, _ in fields(buf, da, db):
                        if sfn == 1 and swt == 0:
                            size = signed64(sa)
                    dims.append(size)
        elif fn == 4 and wt == 2:
            content = (fa, fb)
        else:
            vals.setdefault(fn, []).append((wt, fa, fb))
    numel = 1
    for d in dims:
        numel *= d
    spec = _DTYPES.get(dtype)
    if spec is None:
        return None, None
    shape = _dims_text(dims)
    if any(d < 0 for d in dims):
        return None, f"declares shape {shape}, with a negative size"
    if numel > MAX_TENSOR_ELEMENTS:
        return None, f"declares shape {shape}, {numel:,} elements, more than any logged tensor holds (2^31)"
    content_fmt, field, field_fmt = spec
    size = struct.calcsize(content_fmt)
    if content is not None and content[1] > content[0]:
        nbytes = content[1] - content[0]
        if nbytes != numel * size:
            return None, (f"declares shape {shape} ({numel:,} elements, {numel * size:,} bytes) but its "
                          f"tensor_content holds {nbytes:,} bytes")
        if numel != 1:
            return None, None
        raw = struct.unpack_from(f"<{content_fmt}", buf, content[0])[0]
    else:
        found: list[float] = []
        for wt, fa, fb in vals.get(field, []):
            found.extend(_packed(buf, wt, fa, fb, field_fmt))
        if len(found) > max(numel, 1) or (found and len(found) != 1 and len(found) != numel):
            return None, f"declares shape {shape} ({numel:,} elements) but holds {len(found):,} values"
        if numel != 1 or len(found) != 1:
            return None, None
        raw = found[0]
        if field_fmt == "varint":
            if dtype in (3, 5, 6, 9):  # signed ints come sign-extended to 64 bits
                raw = signed64(int(raw))
            elif dtype == 19:
                raw = struct.unpack("<e", struct.pack("<H", int(raw) & 0xFFFF))[0]
    if dtype == 14:
        return struct.unpack("<f", struct.pack("<I", (int(raw) & 0xFFFF) << 16))[0], None
    return float(raw), None


def histogram_norm_why(buf: bytes, a: int, b: int) -> tuple[float | None, str | None]:
    """sqrt(sum_squares) of a HistogramProto and None; or None and the words saying why the record
    cannot be a histogram of any values: a negative sum of squares or count (``num``, a bucket's),
    or bucket counts that are not one per bucket limit. Such a record is damaged (or its writer
    wrong), not a histogram of NaN values: it is left out, not read as a NaN norm. A NaN
    sum_squares is kept (NaN values summed give it)."""
    num = sum_squares = 0.0
    n_limits = n_buckets = 0
    negative_bucket = False
    for fn, wt, fa, fb in fields(buf, a, b):
        if fn == 3 and wt == 1:
            num = _F64(buf, fa)[0]
        elif fn == 5 and wt == 1:
            sum_squares = _F64(buf, fa)[0]
        elif fn in (6, 7):  # bucket_limit, bucket: repeated double, packed (wire 2) or one by one (wire 1)
            count = (fb - fa) // 8 if wt == 2 else 1 if wt == 1 else 0
            if fn == 6:
                n_limits += count
            else:
                n_buckets += count
                if wt == 2:
                    negative_bucket = negative_bucket or bool(
                        (np.frombuffer(buf, "<f8", count, fa) < 0).any())
                elif wt == 1:
                    negative_bucket = negative_bucket or _F64(buf, fa)[0] < 0
    if sum_squares < 0:
        return None, f"has a negative sum of squares ({sum_squares!r})"
    if not num >= 0:
        return None, f"has a count (num) of {num!r}"
    if negative_bucket:
        return None, "has a negative bucket count"
    if n_limits and n_buckets and n_limits != n_buckets:
        return None, f"has {n_buckets:,} bucket counts for {n_limits:,} bucket limits"
    return math.sqrt(sum_squares), None


def _metadata(buf: bytes, a: int, b: int) -> tuple[str | None, tuple[int, int] | None]:
    """(plugin_name, plugin content span) of a SummaryMetadata."""
    name, content = None, None
    for fn, wt, fa, fb in fields(buf, a, b):
        if fn == 1 and wt == 2:  # plugin_data {plugin_name=1, content=2}
            for pfn, pwt, pa, pb in fields(buf, fa, fb):
                if pfn == 1 and pwt == 2:
                    name = buf[pa:pb].decode("utf-8", "replace")
                elif pfn == 2 and pwt == 2:
                    content = (pa, pb)
    return name, content


def hparams(buf: bytes, a: int, b: int) -> dict[str, str]:
    """The hyperparameters of an hparams-plugin session_start_info (``HParamsPluginData.3``)."""
    out: dict[str, str] = {}
    for fn, wt, fa, fb in fields(buf, a, b):
        if fn != 3 or wt != 2:
            continue
        for sfn, swt, sa, sb in fields(buf, fa, fb):  # SessionStartInfo {hparams=1 map<string, Value>}
            if sfn != 1 or swt != 2:
                continue
            key, text = None, None
            for efn, ewt, ea, eb in fields(buf, sa, sb):
                if efn == 1 and ewt == 2:
                    key = buf[ea:eb].decode("utf-8", "replace")
                elif efn == 2 and ewt == 2:  # google.protobuf.Value
                    for vfn, vwt, va, vb in fields(buf, ea, eb):
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


class EventDecoder:
    """Per-record Python decoding of events that are not one plain simple_value."""

    def __init__(self, tag_ids: dict[str, int]) -> None:
        self.tag_ids = tag_ids
        self.plugins: dict[str, str] = {}
        self.scalars = _Points()
        self.histograms = _Points()
        self.params: dict[str, str] = {}
        self.skipped_tensors: set[str] = set()
        #: tensors whose declared shape does not fit their data, one note per tag
        self.tensor_notes: list[str] = []
        self._noted: set[str] = set()
        #: histograms no values could give, per tag: [first record, why, how many records]
        self._bad_histograms: dict[str, list] = {}
        self._record = 0

    @property
    def histogram_notes(self) -> list[str]:
        """A note for each tag with histograms no values could give (:func:`histogram_norm_why`)."""
        return [f"record {first}: the histogram of {tag!r} {why}, which no values give; left out as "
                f"damaged{f' (and {count - 1:,} more such record(s) of it)' if count > 1 else ''}"
                for tag, (first, why, count) in self._bad_histograms.items()]

    def _id(self, tag: str) -> int:
        tid = self.tag_ids.get(tag)
        if tid is None:
            if len(self.tag_ids) >= MAX_TAGS:
                raise TooManyTags
            tid = self.tag_ids[tag] = len(self.tag_ids)
        return tid

    def event(self, buf: bytes, a: int, b: int, record: int) -> None:
        self._record = record
        wall, step = 0.0, 0
        summaries = []
        for fn, wt, fa, fb in fields(buf, a, b):
            if fn == 1 and wt == 1:
                wall = _F64(buf, fa)[0]
            elif fn == 2 and wt == 0:
                step = signed64(fa)
            elif fn == 5 and wt == 2:
                summaries.append((fa, fb))
        found = []  # decode the whole record before keeping any of it
        for sa, sb in summaries:
            for fn, wt, va, vb in fields(buf, sa, sb):
                if fn == 1 and wt == 2:
                    found.extend(self._value(buf, va, vb))
        for k, (kind, tag, value) in enumerate(found):
            points = self.scalars if kind == "scalar" else self.histograms
            points.add(self._id(tag), (record << 20) + k, step, value, wall)

    def _value(self, buf: bytes, a: int, b: int) -> list[tuple[str, str, float]]:
        tag, simple, histo, tensor, plugin, content = None, None, None, None, None, None
        for fn, wt, fa, fb in fields(buf, a, b):
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
                self.params.update(hparams(buf, *content))
            return []
        if simple is not None:
            return [("scalar", tag, simple)]
        if histo is not None:
            norm, why = histogram_norm_why(buf, *histo)
            if norm is not None:
                return [("histogram", tag, norm)]
            bad = self._bad_histograms.get(tag)
            if bad is None:
                self._bad_histograms[tag] = [self._record, why or "", 1]
            else:
                bad[2] += 1
            return []
        if tensor is not None and plugin in ("", "scalars"):
            value, why = tensor_scalar_why(buf, *tensor)
            if value is not None:
                return [("scalar", tag, value)]
            if why is not None and tag not in self._noted:
                self._noted.add(tag)
                self.tensor_notes.append(f"record {self._record}: the tensor of {tag!r} {why}; left out "
                                         "(a scalar tensor has shape [] or [1] and one value)")
        if tensor is not None:
            self.skipped_tensors.add(tag)
        return []
