"""The TensorBoard reader: an event file's records -> series (see the package docstring).

Framing and CRCs come from :mod:`.tfrecord`, the common one-scalar events from the numpy
:mod:`.fastpath`, every other event from the Python :class:`.protobuf.EventDecoder`; the two kinds
of points are merged per tag in file order. Histograms become norms, ``layer_grad_norm`` when the
tag names a gradient, else ``weight_norm``. A file whose step is the epoch (Ultralytics' tags, an
``epoch`` scalar equal to its step, Keras' ``epoch_*`` tags) gets ``step_unit="epoch"``
(:mod:`gradhealth.logs.axis`).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from gradhealth.core import ticks
from gradhealth.errors import LogError, UploadTooLarge
from gradhealth.logs.axis import mark_epochs
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.tensorboard import protobuf
from gradhealth.logs.readers.tensorboard.fastpath import assign_tag_ids, decode_simple_scalars
from gradhealth.logs.readers.tensorboard.protobuf import EventDecoder, Malformed
from gradhealth.logs.readers.tensorboard.tfrecord import (
    Buf,
    frame,
    header_ok,
    payload_crcs_ok,
    where,
)
from gradhealth.logs.readers.textio import MAX_STEP, step_too_far
from gradhealth.logs.series import LogWarning, RunLog, Series, classify, make_series
from gradhealth.logs.sniff import check_size

MAX_WARNINGS = 20           # detailed corrupt-record warnings; the rest are counted in one more


class TensorBoardReader:
    name = "tensorboard"
    description = ("TensorBoard event file (events.out.tfevents.*): scalars (simple_value or TF2 "
                   "tensors) and histogram norms, from torch.utils.tensorboard, tensorboardX, "
                   "Lightning, Keras/TF2")

    def sniff(self, filename: str, head: bytes) -> float:
        if "tfevents" in filename:
            return 1.0
        if len(head) >= 12 and header_ok(head, 0):
            return 0.9
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        path = Path(path)
        check_size(path, limits)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None
        return read_events(data, str(path), limits)


def read_events(data: bytes, source: str, limits: ReadLimits | None = None) -> RunLog:
    """Read a whole event file's bytes into a RunLog (see the package docstring)."""
    limits = limits or ReadLimits()
    name = Path(source).name
    try:
        return _read_events(data, source, name, limits)
    except protobuf.TooManyTags:
        raise UploadTooLarge(f"{name}: more than {protobuf.MAX_TAGS:,} distinct tags; the limit is "
                             f"{protobuf.MAX_TAGS:,} series per file") from None


def _read_events(data: bytes, source: str, name: str, limits: ReadLimits) -> RunLog:
    if not data:
        raise LogError(f"{name}: the file is empty (no TFRecord in it)")
    buf = Buf(data)
    warnings: list[LogWarning] = []

    # 1. framing and length CRCs
    starts, lengths, index = frame(buf, name, warnings)
    if not len(starts):
        raise LogError(warnings[0].message if warnings else f"{name}: no complete TFRecord in the file")

    # the bar (a job's): framing and CRCs are vectorised, the events that are not plain scalars one by one
    ticks.advance(0.2)

    # 2. payload CRCs
    crc_ok = payload_crcs_ok(buf, starts, lengths)
    bad = np.flatnonzero(~crc_ok)
    for i in bad[:MAX_WARNINGS].tolist():
        s = int(starts[i])
        warnings.append(LogWarning("corrupt_record", f"{name}: {where(int(index[i]), s)}: payload CRC "
                                   "mismatch; record skipped", where=f"offset {s}"))
    if len(bad) > MAX_WARNINGS:
        warnings.append(LogWarning("corrupt_record", f"{name}: {len(bad) - MAX_WARNINGS} more records "
                                   "with a payload CRC mismatch skipped"))
    if len(bad):
        starts, lengths, index = starts[crc_ok], lengths[crc_ok], index[crc_ok]
    if not len(starts):
        raise LogError(warnings[0].message)

    # 3. events: plain simple_value scalars with numpy, the rest one by one
    n_records = len(starts)
    simple, tag_start, tag_len, f_step, f_value, f_wall = decode_simple_scalars(buf, starts, lengths)
    if len(f_value) > limits.max_points:
        raise UploadTooLarge(f"{name}: more than {limits.max_points:,} points; the limit is "
                             f"{limits.max_points:,}")
    f_order = index[simple]   # record index; the Python decoder's order is record << 20 | value
    others = np.flatnonzero(~simple)
    starts, lengths, index = starts[others], lengths[others], index[others]
    del simple, others
    tag_ids: dict[str, int] = {}
    f_tag = assign_tag_ids(buf, tag_start, tag_len, tag_ids)
    del tag_start, tag_len
    decoder = EventDecoder(tag_ids)
    bad_events = 0
    ticks.advance(0.5)
    for i in range(len(starts)):
        if ticks.armed:  # one attribute read a record where no job runs (the CLI)
            ticks.advance(0.5 + 0.5 * i / len(starts))
        s, ln = int(starts[i]), int(lengths[i])
        try:
            decoder.event(data, s + 12, s + 12 + ln, int(index[i]))
        except (Malformed, IndexError, struct.error) as exc:
            bad_events += 1
            if bad_events <= MAX_WARNINGS:
                warnings.append(LogWarning("corrupt_record", f"{name}: {where(int(index[i]), s)}: not a "
                                           f"valid Event ({exc or 'cut short'}); record skipped",
                                           where=f"offset {s}"))
        if len(decoder.scalars.value) + len(decoder.histograms.value) + len(f_value) > limits.max_points:
            raise UploadTooLarge(f"{name}: more than {limits.max_points:,} points; the limit is "
                                 f"{limits.max_points:,}")
    if bad_events > MAX_WARNINGS:
        warnings.append(LogWarning("corrupt_record", f"{name}: {bad_events - MAX_WARNINGS} more "
                                   "records that are not valid Events skipped"))

    # 4. series, in the order their tags first appear
    names = {tid: tag for tag, tid in tag_ids.items()}
    fast = (f_tag, f_order, f_step, f_value, f_wall)
    none = tuple(c[:0] for c in fast)
    series = _series(names, fast, decoder.scalars.arrays(), histogram=False, name=name, warnings=warnings)
    taken = {s.name for s in series}
    series += _series(names, none, decoder.histograms.arrays(), histogram=True, taken=taken, name=name,
                      warnings=warnings)
    warnings.extend(LogWarning("skipped_values", f"{name}: {note}") for note in
                    (decoder.tensor_notes + decoder.histogram_notes)[:MAX_WARNINGS])
    mark_epochs(series)   # a file whose step is the epoch (Ultralytics, Keras' epoch_* tags)
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


def _check_steps(name: str, tag: str, step: np.ndarray, order: np.ndarray) -> str | None:
    """The house's step bound on one tag's steps (int64, as ``Event.step`` is; ``order`` the points'
    record << 20): a step from 2^53 on is refused, as the text and CSV readers refuse it, naming the
    tag and the record. A negative one (protobuf's int64 reading: the varint of 2^64 - 1 is -1, as
    TensorBoard shows it) among steps from 0 is left out, as every reader leaves it out
    (:meth:`~gradhealth.logs.series.Series._drop_negative`): a writer that counts steps from 0 never
    writes one, it is an unsigned 2^64 - 1 or a -1 "no step" (errsweep6, read as -1 after steps 0-49
    without a word). Returned: the ``step_order`` note's words for it, naming the record and the
    unsigned value, else None."""
    far = np.flatnonzero(np.abs(step.astype(np.float64)) >= MAX_STEP)
    if len(far):
        k = int(far[0])
        raise LogError(f"{name}: {tag!r} has a point at step {int(step[k]):,} (record {int(order[k]) >> 20}): "
                       f"{step_too_far(float(step[k]))}")
    neg = np.flatnonzero(step < 0)
    if not len(neg) or len(neg) == len(step):   # (a series all of negative steps counts down: its own note)
        return None
    k = int(neg[0])
    unsigned = int(step[k]) + (1 << 64)
    return (f"{name}: {tag!r} has {len(neg)} point(s) at a negative step among {len(step) - len(neg)} at steps "
            f"from 0, first step {int(step[k])} (record {int(order[k]) >> 20}): Event.step is a signed int64, "
            f"so the writer wrote the unsigned {unsigned:,}, or {int(step[k])} for no step; left out (no step "
            f"counted from 0 is below 0: read there, they would come before step 0)")


def _series(names: dict[int, str], fast: tuple[np.ndarray, ...], slow: tuple[np.ndarray, ...], *,
            histogram: bool, taken: set[str] | None = None, name: str = "",
            warnings: list[LogWarning] | None = None) -> list[Series]:
    """One series per tag from its numpy-decoded (``fast``) and Python-decoded (``slow``) points,
    each given as columns (tag id, order in the file, step, value, wall time), merged in file order;
    steps checked by :func:`_check_steps`."""
    f_tag, f_order, f_step, f_value, f_wall = fast
    s_tag, s_order, s_step, s_value, s_wall = slow
    fast_of, slow_of = _by_tag(f_tag), _by_tag(s_tag)
    cols = []
    for tid in sorted(set(fast_of) | set(slow_of)):
        fi, si = fast_of.get(tid), slow_of.get(tid)
        if si is None:
            fi = fast_of[tid]
            order, step, value, wall = f_order[fi] << 20, f_step[fi], f_value[fi], f_wall[fi]
        elif fi is None:
            order, step, value, wall = s_order[si], s_step[si], s_value[si], s_wall[si]
        else:
            order = np.concatenate([f_order[fi] << 20, s_order[si]])
            first = np.argsort(order, kind="stable")
            order = order[first]
            step = np.concatenate([f_step[fi], s_step[si]])[first]
            value = np.concatenate([f_value[fi], s_value[si]])[first]
            wall = np.concatenate([f_wall[fi], s_wall[si]])[first]
        note = _check_steps(name, names[tid], step, order)
        cols.append((int(order[0]), tid, step, value, wall, note))
    cols.sort(key=lambda c: c[0])
    out = []
    for _, tid, step, value, wall, note in cols:
        tname = names[tid]
        if not histogram:
            out.append(_noted(make_series(tname, step, value, wall), note))
            continue
        role, layer = classify(tname)
        if "grad" in tname.lower():
            if role != "layer_grad_norm" or not layer:
                layer = _GRAD_TOKEN.sub("", tname).strip("/._-") or tname
            role = "layer_grad_norm"
        else:
            role, layer = "weight_norm", layer if role == "weight_norm" and layer else tname
        sname = f"{tname}/norm" if taken and tname in taken else tname
        out.append(_noted(make_series(sname, step, value, wall, role=role, layer=layer), note))
    return out


def _noted(series: Series, note: str | None) -> Series:
    """``series`` with its negative steps' note in the reader's words (the record they came in)."""
    if note is not None and series.negative_note is not None:
        series.negative_note = note
    return series


READER = TensorBoardReader()
