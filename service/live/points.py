"""A batch of points for a live run: a JSON array or JSON Lines of ``{step, metric, value}`` or the
recorder's own rows (``{step, layer, kind: "grad_norm", value}``), read with the native log
reader's row rules, so a name maps to the same series (and role) as in an uploaded JSONL log."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gradhealth.logs.readers.native import NativeReader, recorder_record
from gradhealth.logs.readers.textio import BadRow, loads
from gradhealth.logs.series import clean_name


class BadPoints(ValueError):
    """A batch that cannot be read; the message names the line (JSON Lines) or record (array)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One value of one series: ``metric`` is the series name as the log reader names it
    (``loss``, ``grad_norm/encoder.0.weight`` for a per-layer row)."""

    metric: str
    step: float
    value: float


JSON_TYPES = ("application/json",)
LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq",
               "text/plain")


def _points(obj: object) -> list[Point]:
    if not isinstance(obj, dict):
        raise BadRow(f"expected a JSON object, got {type(obj).__name__}")
    if recorder_record(obj) is not None:  # a recorder file's start or end record: no point
        return []
    if "value" not in obj and any(k in obj for k in ("metric", "layer", "kind")):
        # a long-form point with its value misnamed ({"metric": "loss", "valu": 2.0}) would otherwise
        # be read as a wide one: a series "valu", the metric dropped
        raise BadRow("it names a 'metric' (or 'layer' and 'kind') but has no 'value'")
    if "value" in obj and not any(k in obj for k in ("metric", "layer", "kind")):
        raise BadRow("its 'value' needs a 'metric' (or a 'layer' and a 'kind') naming it")
    found = NativeReader._record(obj)
    if not found and "value" not in obj:   # (a long-form point whose value is null is none, as in a log)
        raise BadRow("it holds no value: send {\"step\": 1, \"metric\": \"loss\", \"value\": 2.3} or "
                     "{\"step\": 1, \"loss\": 2.3}")
    # Names are scrubbed of lone surrogates (from JSON escapes) before they reach the database.
    return [Point(clean_name(name), step, value) for name, step, value, _wall, _role in found]


def parse(body: bytes, content_type: str, *, max_points: int) -> list[Point]:
    """The points of a batch, in the order given. ``content_type``: ``application/json`` for an array
    (or one object), a JSON Lines type otherwise. Raises :class:`BadPoints` naming where."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadPoints(f"the body is not UTF-8 (byte {e.start})") from None
    out: list[Point] = []
    if media in JSON_TYPES or (media not in LINES_TYPES and text.lstrip().startswith("[")):
        try:
            items = loads(text)
        except ValueError as e:
            raise BadPoints(f"not JSON ({e})") from None
        items = items if isinstance(items, list) else [items]
        for i, item in enumerate(items, 1):
            try:
                out += _points(item)
            except BadRow as e:
                raise BadPoints(f"record {i}: {e}") from None
            if len(out) > max_points:
                raise BadPoints(f"more than {max_points:,} points in one batch (GRADHEALTH_RUN_MAX_BATCH_POINTS)")
        return out
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out += _points(loads(line))
        except ValueError as e:
            raise BadPoints(f"line {n}: not JSON ({e})") from None
        except BadRow as e:
            raise BadPoints(f"line {n}: {e}") from None
        if len(out) > max_points:
            raise BadPoints(f"more than {max_points:,} points in one batch (GRADHEALTH_RUN_MAX_BATCH_POINTS)")
    return out


def encode_special(value: float) -> tuple[float | None, int]:
    """``(value, special)`` as stored: NaN and the infinities by code, since SQLite reads NaN back as NULL."""
    if value != value:
        return None, 1
    if value == float("inf"):
        return None, 2
    if value == float("-inf"):
        return None, 3
    return value, 0


def decode_special(value: float | None, special: int) -> float:
    """The value :func:`encode_special` stored."""
    return (value if special == 0 and value is not None else
            (float("nan"), float("nan"), float("inf"), float("-inf"))[special if special in (1, 2, 3) else 1])


def dumps_point(p: Point) -> str:
    """A point as one JSON Lines row (non-finite values as strings), as the native reader reads it."""
    v = p.value if p.value == p.value and abs(p.value) != float("inf") else str(p.value)
    return json.dumps({"step": p.step, "metric": p.metric, "value": v})
