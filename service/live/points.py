"""A batch of points for a live run: a JSON array or JSON Lines of ``{step, metric, value}`` or the
recorder's own rows (``{step, layer, kind: "grad_norm", value}``), read with the native log
reader's row rules, so a name maps to the same series (and role) as in an uploaded JSONL log."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from gradhealth.core.pointers import escape
from gradhealth.core.strict_json import DuplicateKey
from gradhealth.errors import not_utf8_at
from gradhealth.logs.readers import textio
from gradhealth.logs.readers.native import STEP_KEYS, NativeReader, recorder_record, step_key
from gradhealth.logs.readers.textio import BadRow
from gradhealth.logs.series import clean_name


class BadPoints(ValueError):
    """A batch that cannot be read; the message names the line (JSON Lines) or record (array), and
    ``pointer`` the record's field in a JSON array body (``/1/value``), where there is one."""

    def __init__(self, message: str, pointer: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.reason = reason or message


#: A row's message names its field first, quoted: ``'value' is "abc", not a number``.
_FIELD_FIRST = re.compile(r"^'([^']+)'")


def _record_pointer(index: int, item: object, reason: str) -> str:
    """The JSON pointer of the array's record ``index`` (0-based), down to the field its problem
    names where the record has it."""
    found = _FIELD_FIRST.match(reason)
    if found is not None and isinstance(item, dict) and found.group(1) in item:
        return f"/{index}/{escape(found.group(1))}"
    return f"/{index}"


@dataclass(frozen=True, slots=True)
class Point:
    """One value of one series: ``metric`` is the series name as the log reader names it
    (``loss``, ``grad_norm/encoder.0.weight`` for a per-layer row)."""

    metric: str
    step: float
    value: float


#: The published bounds of a point (``MetricPoint.metric``, ``LayerPoint.layer`` in the OpenAPI
#: document): a series name is stored in ``run_points.metric``, a ``String(255)`` (which PostgreSQL
#: enforces and SQLite does not), and ``<kind>/<layer>`` stays within it.
MAX_METRIC_CHARS = 255
MAX_LAYER_CHARS = 200
#: Keys of a record that are never read as a value (the rest of a wide record's keys are series).
_NOT_VALUES = frozenset({"metric", "layer", "kind", "wall_time", "time"})
_NONFINITE_TEXT = re.compile(r"^\s*[+-]?(?:nan|inf|infinity)\s*$", re.IGNORECASE)
#: Within a line of a JSON Lines body, the ASCII separators ``str.splitlines`` also broke at (``\r``,
#: ``\v``, ``\f``, ``\x1c``-``\x1e``: JSON-seq's RS before each record). None can occur raw inside a
#: JSON string (U+0085, U+2028 and U+2029 can, and are no break).
_SEPARATORS = re.compile(r"[\r\x0b\x0c\x1c-\x1e]")

#: What a name (a run's, a series', a layer's, a param's key) may hold: no C0 control character
#: (U+0000-U+001F), the rule a run's name has always had (``RunCreate.name``). A NUL cannot be
#: stored the same on both stores (PostgreSQL's text refuses it, SQLite keeps it), and the other
#: controls would break the name's line in a report. A free-text value (a param's) may hold them,
#: all but the NUL. The published schemas carry the same rule (``NAME_PATTERN``).
NAME_PATTERN = r"^[^\x00-\x1f]+$"
_NAME_REFUSED = re.compile(r"[\x00-\x1f]")
_TEXT_REFUSED = re.compile(r"\x00")


def unstorable(text: str, *, name: bool = True) -> str | None:
    """Why ``text`` cannot be stored as a name (``name``: no C0 control character) or as a free-text
    value (no NUL), said after the field's name ("contains a NUL character (U+0000) at index 2");
    None when it can. The one check of every string a live run stores, so that SQLite and
    PostgreSQL answer the same, before anything is stored."""
    found = (_NAME_REFUSED if name else _TEXT_REFUSED).search(text)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character (U+0000)" if char == "\x00" else f"the control character U+{ord(char):04X}"
    rule = ("names cannot hold control characters (U+0000-U+001F)" if name
            else "a NUL cannot be stored")
    return f"contains {what} at index {found.start()}; {rule}"


class _Overflow(float):
    """A JSON number literal too large for a float (``1e999``, ``10**400`` as an integer): read as
    the infinity ``float()`` makes of it, and marked, so that a point's value or step written so is
    refused (a client sends an infinity as ``Infinity`` or ``"inf"``, never as a huge number)."""

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, literal: str) -> _Overflow:
        out = super().__new__(cls, -math.inf if literal.lstrip().startswith("-") else math.inf)
        out.literal = literal
        return out


def _float(text: str) -> float:
    value = float(text)
    return _Overflow(text) if math.isinf(value) else value


def _int(text: str) -> int | float:
    # more than 309 digits is beyond float64 (1.8e308) whatever they are (JSON has no leading zeros);
    # this also spares int() its 4,300-digit limit
    if len(text.lstrip("-")) > 309:
        return _Overflow(text)
    value = int(text)
    try:
        float(value)
    except OverflowError:
        return _Overflow(text)
    return value


_DECODER = json.JSONDecoder(parse_float=_float, parse_int=_int)


def loads(text: str) -> Any:
    """:func:`gradhealth.logs.readers.textio.loads` (JSON, with bare ``nan`` / ``inf`` tokens read
    as strings), with number literals that overflow a float marked :class:`_Overflow`."""
    return textio.loads(text, _DECODER)


def _overflow(raw: Any) -> str | None:
    """The text of a value that overflows a float (a number literal, or a string holding one that is
    not a non-finite spelling); None for any other value."""
    if isinstance(raw, dict) and "mean" in raw:  # a summary record's field (read as its mean)
        raw = raw["mean"]
    if isinstance(raw, _Overflow):
        text = raw.literal.strip()
    elif isinstance(raw, str) and not _NONFINITE_TEXT.match(raw):
        try:
            if not math.isinf(float(raw.strip())):
                return None
        except ValueError:
            return None
        text = raw.strip()
    else:
        return None
    digits = len(text.lstrip("+-"))
    return f"an integer of {digits:,} digits" if text.lstrip("+-").isdigit() and digits > 40 else text[:40]


_SUSPECT = frozenset({_Overflow, str, dict})  # the types of value that may hold an overflowing number


def _check_bounds(obj: dict[str, Any]) -> None:
    """Refuse what the published point models refuse and the stores cannot hold: a name over its
    length bound or holding a control character, and a value (or step) that overflows a float."""
    metric, layer = obj.get("metric"), obj.get("layer")
    for field_name, text in (("metric", metric), ("layer", layer)):
        why = unstorable(text) if isinstance(text, str) else None
        if why is not None:
            raise BadRow(f"{field_name!r} {why}")
    if isinstance(metric, str) and metric.strip() and len(metric) > MAX_METRIC_CHARS:
        raise BadRow(f"'metric' is {len(metric):,} characters; at most {MAX_METRIC_CHARS}")
    if (not isinstance(metric, str) or not metric.strip()) and isinstance(layer, str) \
            and len(layer) > MAX_LAYER_CHARS:
        raise BadRow(f"'layer' is {len(layer):,} characters; at most {MAX_LAYER_CHARS}")
    suspects = [k for k, v in obj.items() if type(v) in _SUSPECT and k not in _NOT_VALUES]
    if not suspects:  # (the common case, cheaply: no number overflowed, no value given as text)
        return
    if "value" in obj and any(k in obj for k in ("metric", "layer", "kind")):  # long form: step and value
        read = {step_key(obj), "value"}
        suspects = [k for k in suspects if k in read]
    for name in suspects:
        text = _overflow(obj[name])
        if text is not None:
            raise BadRow(f"{name[:40]!r} is {text}, beyond the range of a float (about 1.8e308); "
                         "send an infinite value as Infinity or \"inf\"")


#: The step keys whose unit has fractions (an epoch's, StyleGAN's thousands of images): every other
#: step is a whole, non-negative number.
_FRACTIONAL_STEPS = frozenset({"epoch", "progress/kimg"})

JSON_TYPES = ("application/json",)
#: (``text/plain`` is not one: it says nothing of the form, and a JSON array sent as it was read as
#: one line of JSON Lines, "line 1: expected a JSON object, got list"; it gets the 415 that names
#: the types, as a form body does: newuser16 #7)
LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq")


#: The fields of a long-form point (``MetricPoint``, ``LayerPoint``): its value, what names it, when
#: (``wall_time``, or a log's ``time``), and its step under any of the names a log's step has.
_LONG_FIELDS = frozenset({"value", "metric", "layer", "kind", "wall_time", "time", *STEP_KEYS, "epoch"})


def _long_form_fields(obj: dict[str, Any]) -> None:
    """Refuse a long-form point's field it does not have (``__proto__``, ``valeu``, ``unit``), and
    one naming its series both ways (``metric`` and ``layer``/``kind``): each was dropped silently,
    the point stored without it (errsweep6 #8). Every field GradientRecorder sends is one of these."""
    unknown = [k for k in obj if k not in _LONG_FIELDS]
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise BadRow(f"unknown field{'s' if len(unknown) > 1 else ''} {shown}; a point has 'step', 'value', "
                     "'metric' (or 'layer' and 'kind') and optionally 'wall_time'")
    if "metric" in obj and ("layer" in obj or "kind" in obj):
        both = "'layer'" if "layer" in obj else "'kind'"
        raise BadRow(f"it names its series by both 'metric' and {both}; send 'metric', or 'layer' and 'kind'")


def _wall_time(obj: dict[str, Any]) -> None:
    """Refuse a ``wall_time`` that is not a time: not a finite number of seconds since 1970 at or
    after 0 (``"NaN"``, ``1e300`` overflows no float but no clock; Infinity, -5). A year past 10000
    (253402300800 s) is no clock's either."""
    if "wall_time" not in obj or obj["wall_time"] is None:
        return
    raw = obj["wall_time"]
    t = textio.number(raw)
    if t is None or not math.isfinite(t) or not 0 <= t < _MAX_WALL_TIME:
        raise BadRow(f"'wall_time' is {json.dumps(raw)[:40]}; send the time as seconds since 1970 "
                     f"(a finite number from 0 to {_MAX_WALL_TIME:.0f}), or leave it out")


#: The year 10000 in seconds since 1970: a later wall_time is no clock's.
_MAX_WALL_TIME = 253402300800.0


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
    if "value" in obj:  # the long form: only its own fields (a wide record's keys are all series)
        _long_form_fields(obj)
    _wall_time(obj)
    if obj.get("value", 0) is None and any(k in obj for k in ("metric", "layer", "kind")):
        # newuser4 P15: a log's reader skips such a row, but a batch that answered 200 having
        # dropped a point silently hid a client's bug (a None logged where a NaN was meant)
        raise BadRow("'value' is null; send a number, or \"NaN\", \"Infinity\" or \"-Infinity\" "
                     "for a value that is not finite, or leave the point out")
    _check_bounds(obj)
    found = NativeReader._record(obj)
    if not found and "value" not in obj:
        raise BadRow("it holds no value: send {\"step\": 1, \"metric\": \"loss\", \"value\": 2.3} or "
                     "{\"step\": 1, \"loss\": 2.3}")
    for name, *_ in found:  # a wide record's keys are series names
        if len(name) > MAX_METRIC_CHARS:
            raise BadRow(f"the series name {name[:40]!r}... is {len(name):,} characters; at most {MAX_METRIC_CHARS}")
        why = unstorable(name)
        if why is not None:
            raise BadRow(f"the series name {name[:40]!r} {why}")
    for _name, step, *_ in found[:1]:  # one record, one step
        # newuser13 #5: a step is the training step's number, as the recorder's step() takes it
        # (step=1.5 raises ArgumentTypeError there); only an epoch, HF's "epoch": 0.25, has fractions
        key = step_key(k for k in obj if isinstance(k, str)) or "step"
        whole = key.lower() in _FRACTIONAL_STEPS or float(step).is_integer()
        if not (math.isfinite(step) and step >= 0 and whole):
            raise BadRow(f"{key[:40]!r} is {_shown(obj.get(key, step))}; a step is a non-negative integer "
                         "(the training step's number), as the recorder's step() takes")
    # Names are scrubbed of lone surrogates (from JSON escapes) before they reach the database.
    return [Point(clean_name(name), step, value) for name, step, value, _wall, _role in found]


def _shown(raw: Any) -> str:
    return json.dumps(raw)[:40] if isinstance(raw, int | float | str) and not isinstance(raw, _Overflow) else repr(raw)[:40]


def parse(body: bytes, content_type: str, *, max_points: int) -> list[Point]:
    """The points of a batch, in the order given. ``content_type``: ``application/json`` for an array
    (or one object), a JSON Lines type otherwise. Raises :class:`BadPoints` naming where."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadPoints(f"the body is not UTF-8 text {not_utf8_at(e)}") from None
    out: list[Point] = []
    if media in JSON_TYPES or (media not in LINES_TYPES and text.lstrip().startswith("[")):
        try:
            items = loads(text)
        except DuplicateKey as e:
            raise BadPoints(str(e)) from None
        except ValueError as e:
            raise BadPoints(f"not JSON ({e})") from None
        items = items if isinstance(items, list) else [items]
        for i, item in enumerate(items, 1):
            try:
                out += _points(item)
            except BadRow as e:
                raise BadPoints(f"record {i}: {e}", _record_pointer(i - 1, item, str(e)), str(e)) from None
            if len(out) > max_points:
                raise BadPoints(f"more than {max_points:,} points in one batch (GRADHEALTH_RUN_MAX_BATCH_POINTS)")
        return out
    # Lines end at "\n" (a "\r" before it is a separator, as below): str.splitlines() would also
    # break at U+2028, U+2029 and U+0085, which JSON allows raw inside a string (JSON.stringify and
    # json.dumps(ensure_ascii=False) write them so), and number the lines after them wrong.
    records = ((n, part) for n, line in enumerate(text.split("\n"), 1) for part in _SEPARATORS.split(line))
    for n, record in records:
        if not record.strip():
            continue
        try:
            out += _points(loads(record))
        except DuplicateKey as e:
            raise BadPoints(f"line {n}: {e}") from None
        except ValueError as e:
            raise BadPoints(f"line {n}: not JSON ({e})") from None
        except BadRow as e:
            array = " (a JSON array of points is sent as Content-Type: application/json)" \
                if record.lstrip().startswith("[") else ""
            raise BadPoints(f"line {n}: {e}{array}") from None
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


def spelled(value: float) -> float | str:
    """A value for a JSON document: a finite number as it is, NaN and the infinities as the strings
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (strict JSON has no literal for them). These are the
    spellings a point's ``value`` takes, JavaScript's ``Number()`` and Python's ``float()`` read,
    and the recorder writes."""
    if value != value:
        return "NaN"
    if abs(value) == float("inf"):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def dumps_point(p: Point) -> str:
    """A point as one JSON Lines row (non-finite values as strings), as the native reader reads it."""
    v = p.value if p.value == p.value and abs(p.value) != float("inf") else str(p.value)
    return json.dumps({"step": p.step, "metric": p.metric, "value": v})
