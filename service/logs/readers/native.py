"""Gradient Health's own log format ("native"): JSON Lines or CSV, long or wide.

A native log is UTF-8 text (a byte-order mark is ignored; line ends may be ``\\n`` or ``\\r\\n``)
in one of four layouts. Every layout has a ``step`` (a number: the optimizer step; fractional
values are kept as they are) and values that are numbers or one of the non-finite spellings
``nan``, ``NaN``, ``inf``, ``-inf``, ``Infinity``, ``-Infinity`` (any letter case; a leading ``+``
is allowed).

**Long form, JSON Lines** (``.jsonl``): one JSON object per line, one value per object::

    {"step": 100, "metric": "loss", "value": 2.31, "wall_time": 1718000000.5}
    {"step": 100, "metric": "grad_norm", "value": NaN}
    {"step": 100, "layer": "encoder.0.weight", "kind": "grad_norm", "value": 0.12}

- ``step`` (required): a number, or a string holding one.
- ``value`` (required): a number, a bare ``NaN`` / ``Infinity`` / ``-Infinity`` / ``nan`` /
  ``inf`` / ``-inf`` token, or a string holding any of those; ``null`` means "not logged" and
  the object is skipped (so a NaN must be written as ``NaN`` or ``"nan"``, not ``null``).
- either ``metric``: the metric's name, or ``layer`` + ``kind``: a per-layer value, where
  ``kind`` is ``grad_norm``, ``weight_norm`` or ``update_ratio``.
- ``wall_time`` or ``time`` (optional): seconds since the Unix epoch.
- other keys are ignored.

**Long form, CSV**: a header row with the columns ``step``, ``value`` and either ``metric`` or
``layer`` and ``kind`` (both sets may be present: a row uses ``metric`` when that cell is not
blank, else ``layer`` + ``kind``), optionally ``wall_time`` or ``time``; one value per row (a row
with a blank ``value`` is skipped)::

    step,metric,layer,kind,value,wall_time
    100,loss,,,2.31,1718000000.5
    100,,encoder.0.weight,grad_norm,0.12,1718000000.5

**Wide form, CSV**: a header row with a ``step`` column (exact, lower case), optionally
``wall_time`` or ``time``, and one column per metric; a blank cell means "not logged at this
step"::

    step,loss,val_loss,grad_norm,lr,grad_norm/encoder.0.weight,weight_norm/encoder.0.weight
    100,2.31,,0.84,0.0003,0.12,15.2
    200,2.10,2.25,0.80,0.0003,0.11,15.3

**Wide form, JSON Lines**: an object with ``step`` and neither ``metric`` nor ``layer``/``kind``
holds one value per key, as a wide CSV row does: ``{"step": 100, "loss": 2.31, "grad_norm": 0.84}``
(``null`` = not logged; the names ``value``, ``metric``, ``layer``, ``kind``, ``wall_time`` and
``time`` are not metrics).

Names: ``loss`` (training loss), ``val_loss`` (validation loss), ``grad_norm`` (total gradient
norm, before clipping), ``lr`` or ``learning_rate``, ``weight_norm`` (total weight norm),
``update_ratio`` (total ||update|| / ||weight||); per layer, the long form's ``kind`` or the wide
form's column prefix ``grad_norm/<layer>``, ``weight_norm/<layer>``, ``update_ratio/<layer>``.
Any other name is kept as written; its role is guessed from common spellings (``train/loss`` is a
loss, ``eval_loss`` a validation loss), else it is a plain metric (e.g. ``accuracy``).

Rows may come in any step order; each series is sorted by step. A final line that is cut off
(no newline at the end of the file, and it does not parse) is dropped with the warning
``truncated_log``; a line that does not parse anywhere else is an error naming the line.

This module also holds the line, CSV and point-collecting helpers the other text readers share.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gradhealth.errors import LogError, UploadTooLarge
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import LogWarning, Role, RunLog, Series, make_series, parse_number

MAX_LINE_BYTES = 16 * 2**20

# --- shared helpers ----------------------------------------------------------------------------------


def check_size(path: Path, limits: ReadLimits) -> int:
    """The file's size, refused over ``limits.max_file_bytes``."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None
    if size > limits.max_file_bytes:
        raise UploadTooLarge(f"{path.name} is {size:,} bytes; the limit for one log file is "
                             f"{limits.max_file_bytes:,} bytes")
    return size


def open_log(path: Path, limits: ReadLimits) -> BinaryIO:
    """The file opened for reading after the size check."""
    check_size(path, limits)
    try:
        return path.open("rb")
    except OSError as e:
        raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None


class Lines:
    """A binary file's lines as text, one at a time.

    While iterating, ``lineno`` (1-based) and ``offset`` (byte offset of the line's start) describe
    the line just returned, and ``unterminated_last`` says it is the file's last line and has no
    newline (so it may have been cut off while being written).
    """

    def __init__(self, f: BinaryIO, name: str) -> None:
        self._f = f
        self.name = name
        self.lineno = 0
        self.offset = 0
        self.unterminated_last = False
        self._read = 0

    def _next_raw(self) -> bytes:
        start = self._read
        raw = self._f.readline(MAX_LINE_BYTES)
        self._read += len(raw)
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise LogError(f"{self.name} line {self.lineno + 1} (byte offset {start}): the line is "
                           f"longer than {MAX_LINE_BYTES:,} bytes; this is not a line-based log")
        return raw

    def __iter__(self) -> Iterator[str]:
        nxt = self._next_raw()
        while nxt:
            raw = nxt
            self.lineno += 1
            self.offset = offset_here = self._read - len(raw)
            nxt = self._next_raw()
            self.unterminated_last = not nxt and not raw.endswith(b"\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if not self.unterminated_last:
                    raise LogError(f"{self.name} line {self.lineno}: not UTF-8 text (byte offset "
                                   f"{offset_here + e.start})") from None
                text = raw.decode("utf-8", "replace")  # cut inside a character: fails to parse later
            if self.lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield text


def truncated(name: str, lineno: int, why: str) -> LogWarning:
    """The warning for a last line cut off while being written."""
    return LogWarning("truncated_log", f"{name} line {lineno}: the last line is cut off ({why}); "
                      f"read up to line {lineno - 1}", where=f"line {lineno}")


class Points:
    """Collects (step, value, wall time) points per series name, in first-seen order."""

    def __init__(self, name: str, limits: ReadLimits) -> None:
        self.name = name
        self.limits = limits
        self.count = 0
        self._data: dict[str, tuple[list[float], list[float], list[float]]] = {}
        self._has_wall: set[str] = set()
        self.roles: dict[str, tuple[Role, str | None]] = {}

    def add(self, series: str, step: float, value: float, wall: float | None = None) -> None:
        entry = self._data.get(series)
        if entry is None:
            entry = self._data[series] = ([], [], [])
        entry[0].append(step)
        entry[1].append(value)
        if wall is not None:
            self._has_wall.add(series)
            entry[2].append(wall)
        else:
            entry[2].append(math.nan)
        self.count += 1
        if self.count > self.limits.max_points:
            raise UploadTooLarge(f"{self.name}: more than {self.limits.max_points:,} values; the limit "
                                 f"is {self.limits.max_points:,}")

    def add_records(self, records: list[tuple[str, float, float, float | None, tuple[Role, str | None] | None]],
                    ) -> None:
        """Add (name, step, value, wall time, role or None) records, remembering each name's role."""
        for name, step, value, wall, role in records:
            if role is not None:
                self.roles.setdefault(name, role)
            self.add(name, step, value, wall)

    def build(self, *, step_unit: str = "step",
              role: Callable[[str], tuple[Role | None, str | None]] | None = None) -> list[Series]:
        out = []
        for series, (steps, values, walls) in self._data.items():
            r, layer = self.roles.get(series) or (role(series) if role else (None, None))
            out.append(make_series(series, steps, values, walls if series in self._has_wall else None,
                                   step_unit=step_unit, role=r, layer=layer))
        return out


def number(cell: Any) -> float | None:
    """A JSON or CSV value as a float; None when it is not a number (bools are not numbers)."""
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, (int, float)):
        try:
            return float(cell)
        except OverflowError:             # an integer too large for a float
            return math.inf if cell > 0 else -math.inf
    if isinstance(cell, str):
        try:
            return parse_number(cell)
        except ValueError:
            return None
    return None


_BARE_NONFINITE = re.compile(r"([:\[,]\s*)([-+]?)(nan|inf|infinity)(?=\s*[,}\]])", re.IGNORECASE)


def loads(text: str) -> Any:
    """``json.loads`` that also takes bare ``nan`` / ``inf`` / ``-inf`` tokens (as strings).

    Raises ``ValueError`` (a ``json.JSONDecodeError`` when the text is not JSON).
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as first:
        fixed = _BARE_NONFINITE.sub(lambda m: f'{m[1]}"{m[2]}{m[3]}"', text)
        if fixed == text:
            raise
        try:
            return json.loads(fixed)
        except (json.JSONDecodeError, RecursionError):
            raise first from None


def first_lines(head: bytes, n: int = 50) -> list[str]:
    """Up to ``n`` complete, non-empty lines of ``head`` as text; [] when it holds NUL bytes or its
    first line is not UTF-8 (lines after a line that is not UTF-8 are left out)."""
    if b"\x00" in head[:4096]:
        return []
    raw_lines = head.split(b"\n")
    if len(raw_lines) > 1 and len(head) >= 4096:
        raw_lines = raw_lines[:-1]            # the head may end mid-line
    out: list[str] = []
    for i, raw in enumerate(raw_lines):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if i == 0:
                return []
            break
        if i == 0:
            text = text.lstrip("\ufeff")
        text = text.rstrip("\r")
        if text.strip():
            out.append(text)
            if len(out) >= n:
                break
    return out


def csv_header(head: bytes) -> list[str] | None:
    """The first row of ``head`` when it looks like a CSV header (>= 2 columns), else None."""
    lines = first_lines(head, 3)
    if not lines:
        return None
    try:
        row = next(csv.reader([lines[0]]))
    except (csv.Error, StopIteration):
        return None
    if len(row) < 2 or lines[0].lstrip().startswith(("{", "[")):
        return None
    return [c.strip() for c in row]


class CsvRows:
    """A CSV file's records as (line number, cells), used as a context manager that closes the file.

    ``cells`` is None for a last line cut off inside a quoted field; blank lines are skipped;
    ``lines.unterminated_last`` says whether the record just returned is an unterminated last line.
    """

    def __init__(self, path: Path, limits: ReadLimits) -> None:
        self.path = path
        self._f = open_log(path, limits)
        self.lines = Lines(self._f, path.name)

    def __enter__(self) -> CsvRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __iter__(self) -> Iterator[tuple[int, list[str] | None]]:
        lines = self.lines
        reader = csv.reader(iter(lines))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                if lines.unterminated_last:
                    yield lines.lineno, None
                    return
                raise LogError(f"{self.path.name} line {lines.lineno}: not valid CSV ({e})") from None
            if row and any(c.strip() for c in row):
                yield lines.lineno, row


def check_header(name: str, header: list[str]) -> list[str]:
    """Stripped column names; duplicates are an error."""
    cols = [c.strip() for c in header]
    seen: set[str] = set()
    for i, c in enumerate(cols):
        if c and c in seen:
            raise LogError(f"{name} line 1: column {i + 1} repeats the name {c!r}")
        seen.add(c)
    return cols


def read_wide_csv(path: Path, limits: ReadLimits, *, step_column: str | None, fmt: str,
                  skip: Callable[[str], bool] = lambda c: False,
                  wall_columns: tuple[str, ...] = (),
                  cell: Callable[[str, str], float | None] | None = None,
                  skip_repeated_header: bool = False,
                  ) -> tuple[Points, list[LogWarning], list[str]]:
    """Read a wide CSV: each column (except the step, wall-time and skipped ones) is a series of its
    non-blank cells against the step column (or the 0-based data row index when ``step_column`` is
    None).

    A cell that is not a number is an error naming the line and column, unless ``cell`` is given:
    then ``cell(column, text)`` returns the value or None to skip the cell (lenient readers).
    With ``skip_repeated_header``, a row equal to the header (files appended to) is skipped with a
    warning.
    """
    warnings: list[LogWarning] = []
    points = Points(path.name, limits)
    header: list[str] | None = None
    step_idx = -1
    wall_idx = -1
    columns: list[tuple[int, str]] = []
    n_data = 0
    with CsvRows(path, limits) as rows:
        lines = rows.lines
        for lineno, row in rows:
            if header is None:
                if row is None:
                    raise LogError(f"{path.name} line {lineno}: the header is cut off")
                header = check_header(path.name, row)
                if step_column is not None:
                    if step_column not in header:
                        raise LogError(f"{path.name} line {lineno}: no {step_column!r} column "
                                       f"(columns: {', '.join(header)})")
                    step_idx = header.index(step_column)
                wall_idx = next((header.index(w) for w in wall_columns if w in header), -1)
                columns = [(i, c) for i, c in enumerate(header)
                           if i not in (step_idx, wall_idx) and c and not skip(c)]
                continue
            cut = lines.unterminated_last and lineno == lines.lineno
            if row is None:
                warnings.append(truncated(path.name, lineno, "inside a quoted field"))
                break
            if skip_repeated_header and [c.strip() for c in row] == header:
                warnings.append(LogWarning("skipped_line", f"{path.name} line {lineno}: the header repeats; "
                                           "skipped", where=f"line {lineno}"))
                continue
            if len(row) != len(header):
                if cut:
                    warnings.append(truncated(path.name, lineno, f"{len(row)} of {len(header)} columns"))
                    break
                raise LogError(f"{path.name} line {lineno}: expected {len(header)} columns, got {len(row)}")
            try:
                if step_idx >= 0:
                    text = row[step_idx].strip()
                    if not text:
                        raise _Bad(f"the {step_column!r} cell is blank")
                    step = _num(text, step_column or "step")
                    if not math.isfinite(step):
                        raise _Bad(f"the {step_column!r} cell is {text!r}, not a finite number")
                else:
                    step = float(n_data)
                wall = None
                if wall_idx >= 0 and row[wall_idx].strip():
                    wall = _num(row[wall_idx], header[wall_idx])
                found: list[tuple[str, float]] = []
                for i, c in columns:
                    text = row[i].strip()
                    if not text:
                        continue
                    try:
                        found.append((c, parse_number(text)))
                    except ValueError:
                        if cell is None:
                            raise _Bad(f"column {c!r}: not a number: {_short(text)}") from None
                        v = cell(c, text)
                        if v is not None:
                            found.append((c, v))
            except _Bad as e:
                if cut:
                    warnings.append(truncated(path.name, lineno, str(e)))
                    break
                raise LogError(f"{path.name} line {lineno}, {e}") from None
            n_data += 1
            for c, v in found:
                points.add(c, step, v, wall)
    if header is None:
        raise LogError(f"{path.name}: the file is empty")
    if points.count == 0:
        raise LogError(f"{path.name}: no values after the header (a {fmt} log needs at least one row)")
    return points, warnings, header


class _Bad(Exception):
    pass


def _num(text: str, column: str) -> float:
    try:
        return parse_number(text)
    except ValueError:
        raise _Bad(f"column {column!r}: not a number: {_short(text)}") from None


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


# --- the native reader -------------------------------------------------------------------------------

KINDS: dict[str, Role] = {"grad_norm": "layer_grad_norm", "weight_norm": "weight_norm",
                          "update_ratio": "update_ratio"}
_LAYER_COLUMN = re.compile(r"^(?P<kind>grad_norm|weight_norm|update_ratio)/(?P<layer>.+)$")
_WALL = ("wall_time", "time")
_RESERVED = {"step", "value", "metric", "layer", "kind", "wall_time", "time"}


def native_role(name: str) -> tuple[Role | None, str | None]:
    """Roles for native names: ``<kind>/<layer>`` per layer, else the common names."""
    m = _LAYER_COLUMN.match(name)
    if m:
        return KINDS[m["kind"]], m["layer"]
    return None, None


def _is_long(cols: list[str] | set[str]) -> bool:
    c = set(cols)
    return "step" in c and "value" in c and ("metric" in c or {"layer", "kind"} <= c)


class NativeReader:
    name = "native"
    description = ("Gradient Health's own format: JSON Lines or CSV, long (step, metric or layer+kind, "
                   "value) or wide (a step column plus one column per metric)")

    def sniff(self, filename: str, head: bytes) -> float:
        lines = first_lines(head, 2)
        if not lines:
            return 0.0
        first = lines[0].strip()
        if first.startswith("{"):
            try:
                obj = loads(first)
            except ValueError:
                return 0.0
            if not isinstance(obj, dict) or "step" not in obj:
                return 0.0
            if _is_long(obj.keys()) or ({"step", "value"} <= obj.keys() and "kind" in obj):
                return 0.95
            if "_step" in obj or "log_history" in obj:
                return 0.0
            return 0.6
        header = csv_header(head)
        if header is None or "step" not in header:
            return 0.0
        if _is_long(header):
            return 0.95
        if any(_LAYER_COLUMN.match(c) for c in header):
            return 0.8
        return 0.6

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            start = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not start:
            raise LogError(f"{path.name}: the file is empty")
        if start.startswith(b"{"):
            return self._read_jsonl(path, limits)
        return self._read_csv(path, limits)

    # JSON Lines, long or wide
    def _read_jsonl(self, path: Path, limits: ReadLimits) -> RunLog:
        warnings: list[LogWarning] = []
        points = Points(path.name, limits)
        with open_log(path, limits) as f:
            lines = Lines(f, path.name)
            for text in lines:
                if not text.strip():
                    continue
                n = lines.lineno
                try:
                    obj = loads(text)
                    if not isinstance(obj, dict):
                        raise _Bad(f"expected a JSON object, got {type(obj).__name__}")
                    found = self._record(obj)
                except (ValueError, _Bad) as e:
                    why = f"not JSON ({e})" if isinstance(e, ValueError) else str(e)
                    if lines.unterminated_last:
                        warnings.append(truncated(path.name, n, why))
                        break
                    raise LogError(f"{path.name} line {n}: {why}") from None
                points.add_records(found)
        if points.count == 0:
            raise LogError(f"{path.name}: no values (each line needs a step and a value)")
        return RunLog(format=self.name, source=path.name,
                      series=points.build(role=native_role), warnings=warnings)

    @staticmethod
    def _record(obj: dict[str, Any], long: bool | None = None,
                ) -> list[tuple[str, float, float, float | None, tuple[Role, str | None] | None]]:
        if "step" not in obj:
            raise _Bad("no 'step'")
        step = number(obj["step"])
        if step is None or not math.isfinite(step):
            raise _Bad(f"'step' is {json.dumps(obj['step'])[:40]}, not a finite number")
        wall = None
        for w in _WALL:
            if obj.get(w) is not None:
                wall = number(obj[w])
                if wall is None:
                    raise _Bad(f"{w!r} is not a number")
                break
        if long is None:
            long = "value" in obj and ("metric" in obj or "kind" in obj or "layer" in obj)
        if long:
            if obj["value"] is None:
                return []
            value = number(obj["value"])
            if value is None:
                raise _Bad(f"'value' is {json.dumps(obj['value'])[:40]}, not a number")
            metric = obj.get("metric")
            if isinstance(metric, str) and metric.strip():
                return [(metric.strip(), step, value, wall, None)]
            kind, layer = obj.get("kind"), obj.get("layer")
            if kind is None and layer is None:
                raise _Bad("no 'metric' (or 'layer' and 'kind') for this value")
            if kind not in KINDS:
                raise _Bad(f"'kind' is {json.dumps(kind)[:40]}; use one of {', '.join(KINDS)}")
            if not isinstance(layer, str) or not layer.strip():
                raise _Bad("'layer' must be a non-empty string when 'kind' is given")
            return [(f"{kind}/{layer.strip()}", step, value, wall, (KINDS[kind], layer.strip()))]
        out = []
        for key, raw in obj.items():
            if key in _RESERVED or raw is None:
                continue
            value = number(raw)
            if value is None:
                raise _Bad(f"{key!r} is {json.dumps(raw)[:40]}, not a number")
            out.append((key, step, value, wall, None))
        return out

    # CSV, long or wide
    def _read_csv(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            header = csv_header(f.read(64 * 1024))
        if header is not None and _is_long(header):
            return self._read_long_csv(path, limits)
        points, warnings, _ = read_wide_csv(path, limits, step_column="step", fmt="native",
                                            wall_columns=_WALL)
        return RunLog(format=self.name, source=path.name,
                      series=points.build(role=native_role), warnings=warnings)

    def _read_long_csv(self, path: Path, limits: ReadLimits) -> RunLog:
        fast = _fast_long_csv(path, limits)
        if fast is not None:
            return fast
        warnings: list[LogWarning] = []
        points = Points(path.name, limits)
        with CsvRows(path, limits) as rows:
            self._long_rows(path, rows, points, warnings)
        if points.count == 0:
            raise LogError(f"{path.name}: no values after the header")
        return RunLog(format=self.name, source=path.name,
                      series=points.build(role=native_role), warnings=warnings)

    def _long_rows(self, path: Path, rows: CsvRows, points: Points, warnings: list[LogWarning]) -> None:
        lines = rows.lines
        header: list[str] = []
        idx: dict[str, int] = {}
        for lineno, row in rows:
            if not header:
                header[:] = check_header(path.name, row or [])
                idx.update({c: i for i, c in enumerate(header)})
                continue
            cut = lines.unterminated_last and lineno == lines.lineno
            try:
                if row is None:
                    raise _Bad("cut inside a quoted field")
                if len(row) != len(header):
                    raise _Bad(f"expected {len(header)} columns, got {len(row)}")
                rec: dict[str, Any] = {c: row[i].strip() for c, i in idx.items()}
                for k in ("metric", "layer", "kind", "wall_time", "time"):
                    if rec.get(k) == "":
                        rec[k] = None
                if rec["value"] == "":
                    continue
                found = self._record(rec, long=True)
            except _Bad as e:
                if cut:
                    warnings.append(truncated(path.name, lineno, str(e)))
                    break
                raise LogError(f"{path.name} line {lineno}: {e}") from None
            points.add_records(found)


_NAN_TOKENS = ["nan", "NaN", "NAN", "+nan", "-nan", "+NaN", "-NaN"]
_FAST_COLUMNS = {"step", "metric", "layer", "kind", "value", "wall_time", "time"}


def _fast_long_csv(path: Path, limits: ReadLimits) -> RunLog | None:
    """The clean common case of a long CSV through pandas' C parser (when pandas is installed).

    None sends the file down the careful line-by-line path, which gives the same series and, for a
    file with any problem (a blank value, a bad number, a cut last line, an unknown kind), the
    warnings and line-numbered errors: the fast path never has to explain anything.
    """
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency; the careful path still works
        return None
    with path.open("rb") as f:
        header = f.readline().decode("utf-8", "replace").lstrip("\ufeff").strip().split(",")
        f.seek(0, 2)
        if f.tell() == 0:
            return None
        f.seek(-1, 2)
        if f.read(1) != b"\n" or set(header) - _FAST_COLUMNS or len(set(header)) != len(header):
            return None
    # Names as categories: the parser interns them and hands back integer codes (no factorize pass).
    strings = {c: "category" for c in ("metric", "layer", "kind") if c in header}
    floats = {c: "float64" for c in ("step", "value", "wall_time", "time") if c in header}
    try:
        df = pd.read_csv(path, dtype={**strings, **floats}, keep_default_na=False, engine="c",
                         na_values={"value": _NAN_TOKENS}, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if len(df) == 0 or len(df) > limits.max_points:
        return None  # empty: the careful path says so; too many: it raises with the figures
    steps = df["step"].to_numpy()
    if not np.isfinite(steps).all():
        return None
    if "metric" in df and "" not in df["metric"].cat.categories:
        names = df["metric"]
    elif {"layer", "kind"} <= set(df.columns) and "metric" not in df:
        if not set(df["kind"].cat.categories) <= set(KINDS) or "" in set(df["layer"].cat.categories):
            return None
        names = (df["kind"].astype(str) + "/" + df["layer"].astype(str)).astype("category")
    else:
        return None  # a mix of metric and per-layer rows: rare, and the careful path handles it
    # First-seen order, as the careful path reports series.
    codes = names.cat.codes.to_numpy()
    first_seen = np.unique(codes, return_index=True)[1]
    uniques = names.cat.categories[codes[np.sort(first_seen)]]
    remap = np.empty(len(names.cat.categories), dtype=np.int64)
    remap[codes[np.sort(first_seen)]] = np.arange(len(uniques))
    codes = remap[codes]
    order = np.argsort(codes.astype(np.int32 if len(uniques) > 32_000 else np.int16), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniques)))])
    values = df["value"].to_numpy()
    wall_col = next((c for c in _WALL if c in df), None)
    walls = df[wall_col].to_numpy() if wall_col else None
    series = []
    for i, raw_name in enumerate(uniques):
        rows = order[bounds[i]:bounds[i + 1]]
        name = str(raw_name).strip()
        role, layer = native_role(name)
        series.append(make_series(name, steps[rows], values[rows], None if walls is None else walls[rows],
                                  role=role, layer=layer))
    return RunLog(format="native", source=path.name, series=series)


READER = NativeReader()
