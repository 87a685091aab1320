"""Text helpers the line-based readers share: opening a log after the size check, its lines with
line numbers and byte offsets, CSV rows and headers, JSON with bare ``nan``/``inf`` tokens,
numbers in any spelling, first lines for sniffing, a wide-CSV reader, and :class:`Points`, which
collects (step, value, wall time) points per series name.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from gradhealth.core import ticks
from gradhealth.core.strict_json import strict_decode, strict_loads
from gradhealth.core.ticks import tick
from gradhealth.core.words import first_few
from gradhealth.errors import LogError, UploadTooLarge
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import LogWarning, Role, Series, classify, make_series, parse_number
from gradhealth.logs.sniff import HEAD_BYTES, binary, check_size, past_comment

MAX_LINE_BYTES = 16 * 2**20
#: A line's end: LF, CRLF, or a lone CR (Excel's "CSV (Macintosh)", classic Mac OS text)
_LINE_END = re.compile(rb"\r\n?|\n")
_CHUNK = 2**16
#: C0 control characters other than tab, CR and LF: text in a single-byte encoding has none of them
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: What a line that is not UTF-8 is read as: Windows' Western European code page, which Excel on
#: Windows saves CSV in (``acc_é`` is the byte 0xe9); its letters are ISO-8859-1's, plus ``€`` and
#: typographic quotes where ISO-8859-1 has control codes
FALLBACK_ENCODING = "cp1252"


def split_lines(data: bytes) -> list[bytes]:
    """``data``'s lines without their ends (LF, CRLF or a lone CR); a last empty piece is kept (the
    text after the last line end)."""
    return _LINE_END.split(data)


def decode_line(raw: bytes) -> tuple[str, bool] | None:
    """A line's text: UTF-8, else :data:`FALLBACK_ENCODING` where every byte is a character of it
    and none is a control code (so binary data is never read as text); and whether the fallback
    was used. None when it is neither."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        return None
    return (None if _CONTROL.search(text) else (text, True))


class CutLine(bytes):
    """A line longer than the reader keeps: its first bytes (and its end, where it has one);
    ``size`` is the whole line's length in bytes, without its end (LF or CRLF)."""

    size: int


def read_line(f: BinaryIO, limit: int = MAX_LINE_BYTES) -> bytes:
    """The next line of ``f`` with its end (LF), b"" at the end of the file. A line longer than
    ``limit`` bytes is one line all the same: its first ``limit`` bytes (and its LF) come back as a
    :class:`CutLine`, and the rest of it is read past, so the lines after it keep their numbers."""
    raw = f.readline(limit)
    if len(raw) < limit or raw.endswith(b"\n"):
        return raw
    size = len(raw)
    while True:
        rest = f.readline(limit)
        size += len(rest)
        if not rest or rest.endswith(b"\n"):
            break
    end = b"\r\n" if rest.endswith(b"\r\n") else b"\n" if rest.endswith(b"\n") else b""
    cut = CutLine(raw + (b"\n" if end else b""))
    cut.size = size - len(end)
    return cut


def open_log(path: Path, limits: ReadLimits) -> BinaryIO:
    """The file opened for reading after the size check."""
    check_size(path, limits)
    try:
        return path.open("rb")
    except OSError as e:
        raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None


def _size_of(f: BinaryIO) -> int:
    """The size in bytes of the file ``f`` reads from its start, or 0 where it has no such size (a
    stream, a member read out of an archive)."""
    try:
        return os.fstat(f.fileno()).st_size if f.tell() == 0 else 0
    except (OSError, AttributeError, ValueError):
        return 0


class Lines:
    """A binary file's lines as text, one at a time.

    While iterating, ``lineno`` (1-based) and ``offset`` (byte offset of the line's start) describe
    the line just returned, and ``unterminated_last`` says it is the file's last line and has no
    newline (so it may have been cut off while being written).

    ``lenient`` (tables: :class:`CsvRows`): a lone CR ends a line too (Excel's "CSV (Macintosh)"),
    and a file whose first line is not UTF-8 is read as :data:`FALLBACK_ENCODING` throughout
    (Excel's CSV on Windows); ``transcoded`` is then 1 (the reader's ``transcoded`` note), else
    None. Otherwise a line that is not UTF-8 (a file whose header is UTF-8 and a later line is
    not has mixed encodings) is a :class:`LogError` naming the line, the byte offset and the byte.
    """

    def __init__(self, f: BinaryIO, name: str, *, lenient: bool = False) -> None:
        self._f = f
        self.name = name
        self.lineno = 0
        self.offset = 0
        self.unterminated_last = False
        self.transcoded: int | None = None
        self._read = 0
        self._lenient = lenient
        self._ends = (b"\n", b"\r") if lenient else (b"\n",)
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._size = _size_of(f)  # (0: unknown) what the reading stage's progress is a share of

    def _lenient_raw(self) -> bytes:
        """The next line, up to and with its end (LF, CRLF or a lone CR); b"" at the end of the file."""
        scan = self._pos
        while True:
            m = _LINE_END.search(self._buf, scan)
            # (a CR that ends what was read may be the first half of a CRLF: read on to see)
            if m is not None and (m.end() < len(self._buf) or m[0] != b"\r" or self._eof):
                line = self._buf[self._pos:m.end()]
                self._pos = m.end()
                break
            if self._eof:
                line = self._buf[self._pos:]
                self._pos = len(self._buf)
                break
            if len(self._buf) - self._pos >= MAX_LINE_BYTES:
                raise LogError(f"{self.name} line {self.lineno + 1} (byte offset {self._read}): the line is "
                               f"longer than {MAX_LINE_BYTES:,} bytes; this is not a line-based log",
                               position=(self.lineno + 1, None))
            scan = max(self._pos, len(self._buf) - 1) - self._pos  # (searched already, but a last CR)
            chunk = self._f.read(_CHUNK)
            self._eof = not chunk
            self._buf = self._buf[self._pos:] + chunk
            self._pos = 0
        self._read += len(line)
        return line

    def _next_raw(self) -> bytes:
        if self._lenient:
            return self._lenient_raw()
        start = self._read
        raw = self._f.readline(MAX_LINE_BYTES)
        self._read += len(raw)
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise LogError(f"{self.name} line {self.lineno + 1} (byte offset {start}): the line is "
                           f"longer than {MAX_LINE_BYTES:,} bytes; this is not a line-based log",
                           position=(self.lineno + 1, None))
        return raw

    def __iter__(self) -> Iterator[str]:
        nxt = self._next_raw()
        while nxt:
            if ticks.armed:  # a cancelled job stops here, within a fraction of a second of reading
                if self._size:  # and its progress moves with the bytes read (newuser15 #3)
                    ticks.advance(self._read / self._size)
                else:
                    tick()
            raw = nxt
            self.lineno += 1
            self.offset = offset_here = self._read - len(raw)
            nxt = self._next_raw()
            self.unterminated_last = not nxt and not raw.endswith(self._ends)
            try:
                # (a table whose first line is Windows-1252 is so throughout: Excel saves it whole)
                text = raw.decode(FALLBACK_ENCODING if self.transcoded else "utf-8")
            except UnicodeDecodeError as e:
                decoded = decode_line(raw) if self._lenient and self.lineno == 1 else None
                if decoded is not None:
                    text = decoded[0]
                    self.transcoded = self.lineno
                elif not self.unterminated_last:
                    what = f"{FALLBACK_ENCODING} text as line 1 is" if self.transcoded else "UTF-8 text"
                    raise LogError(f"{self.name} line {self.lineno}: not {what} (byte offset "
                                   f"{offset_here + e.start}), byte 0x{raw[e.start]:02x}; save it as "
                                   "UTF-8", position=(self.lineno, None)) from None
                else:
                    text = raw.decode("utf-8", "replace")  # cut inside a character: fails to parse later
            if self.lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield text


def truncated(name: str, lineno: int, why: str) -> LogWarning:
    """The warning for a last line cut off while being written."""
    return LogWarning("truncated_log", f"{name} line {lineno}: the last line is cut off ({why}); "
                      f"read up to line {lineno - 1}", where=f"line {lineno}")


#: Steps from 2^53 on are refused: 2^53 + 1 is the first integer a float cannot tell from its
#: neighbour (two steps read as one there, and a span of steps overflows what the trends compute).
MAX_STEP = 2.0 ** 53


def step_too_far(step: float) -> str | None:
    """Why a point at ``step`` cannot be read (from :data:`MAX_STEP` on), else None."""
    if abs(step) < MAX_STEP:
        return None
    return "from 2^53 on, steps are no longer told apart (each float stands for several), so no run counts that far"


def bad_step(step: float, text: str, column: str) -> str | None:
    """Why the step ``step`` a table's ``column`` cell ``text`` holds cannot place a point (not a
    finite number, or from :data:`MAX_STEP` on), quoting the cell as written; None for a good one."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not math.isfinite(step):
        return f"the {column!r} cell is {shown!r}, not a finite number"
    if (too_far := step_too_far(step)) is not None:
        return f"the {column!r} cell is {shown!r}: {too_far}"
    return None


#: A point with its series name and, when the format says it, the series' role and layer.
Record = tuple[str, float, float, "float | None", "tuple[Role, str | None] | None"]


class Points:
    """Collects (step, value, wall time) points per series name, in first-seen order."""

    def __init__(self, name: str, limits: ReadLimits) -> None:
        self.name = name
        self.limits = limits
        self.count = 0
        self._data: dict[str, tuple[list[float], list[float], list[float]]] = {}
        self._has_wall: set[str] = set()
        self.roles: dict[str, tuple[Role, str | None]] = {}
        # the places where a run resumed from a checkpoint (its step went back): (each resumed
        # series -> how many of its points came before, the step it went back to), and the first's
        # (where, the step before, the step at it) for the note
        self._resumes: list[tuple[dict[str, int], float]] = []
        self._first_resume: tuple[str, float, float] | None = None
        self.records = 0  # the records (or lines) resumes are counted against (:meth:`resumed_note`)

    def add(self, series: str, step: float, value: float, wall: float | None = None) -> None:
        too_far = step_too_far(step)
        if too_far is not None:
            raise LogError(f"{self.name}: {series!r} has a point at step {step:.6g}: {too_far}")
        entry = self._data.get(series)
        if entry is None:
            if len(self._data) >= self.limits.max_series:
                raise UploadTooLarge(f"{self.name}: more than {self.limits.max_series:,} series; the "
                                     f"limit is {self.limits.max_series:,} (GRADHEALTH_LOG_MAX_SERIES)")
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

    def add_records(self, records: list[Record]) -> None:
        """Add (name, step, value, wall time, role or None) records, remembering each name's role."""
        for name, step, value, wall, role in records:
            if role is not None:
                self.roles.setdefault(name, role)
            self.add(name, step, value, wall)

    def resume(self, names: Iterable[str], step: float, was: float, where: str) -> None:
        """Note that the run resumed at ``where``: a record of ``names`` at ``step`` after one at
        ``was`` (``step < was``), its step gone back to a checkpoint's (not to the run's start,
        which is a run of its own). From ``step`` on, the values the earlier pass logged for those
        names are replaced by the resumed pass's (:meth:`build`), as the text reader replaces the
        earlier pass of a console resumed by epoch."""
        self._resumes.append(({k: len(self._data[k][0]) for k in names if k in self._data}, step))
        if self._first_resume is None:
            self._first_resume = (where, was, step)

    def _resumed(self) -> bool:
        """Whether the resumes are applied: now and then (at most one record in four goes back); a
        step that goes back more often is a file's order (a countdown, a shuffle), sorted by step."""
        return bool(self._resumes) and 4 * len(self._resumes) <= max(self.records, 1)

    def _replaced(self, series: str, steps: list[float]) -> list[int]:
        """The indexes of ``series``' points kept once each resume replaced the earlier pass's
        points at or after the step it went back to."""
        marks = sorted((counts[series], step) for counts, step in self._resumes if counts.get(series))
        if not marks:
            return list(range(len(steps)))
        keep, below, j = [], math.inf, len(marks) - 1
        for i in range(len(steps) - 1, -1, -1):
            while j >= 0 and marks[j][0] > i:   # the resumes that came after point i
                below = min(below, marks[j][1])
                j -= 1
            if not steps[i] >= below:
                keep.append(i)
        return keep[::-1]

    def resumed_note(self, label: str, unit: str = "step") -> LogWarning | None:
        """The ``overwritten_values`` warning of the resumes :meth:`build` applies: where the first
        was, how many, and the series whose earlier values were replaced. None where there were none."""
        if not self._resumed() or self._first_resume is None:
            return None
        names = [k for k in self._data if len(self._replaced(k, self._data[k][0])) < len(self._data[k][0])]
        if not names:
            return None
        where, was, now = self._first_resume
        more = f" (and {len(self._resumes) - 1:,} more such returns)" if len(self._resumes) > 1 else ""
        return LogWarning(
            "overwritten_values", f"{label} {where}: the {unit} goes back from {was:g} to {now:g} within one run "
            f"(resumed from a checkpoint?){more}; the values of {first_few(names)} the earlier pass logged from "
            f"{unit} {now:g} on are replaced by the resumed pass's", where=where)

    def remap(self, places: list[float]) -> bool:
        """Put each point read at a row index (``step_column=None``) at ``places[index]``; False (and
        nothing changed) where an index has no place."""
        if any(int(x) != x or not 0 <= x < len(places) for steps, _, _ in self._data.values() for x in steps):
            return False
        for steps, _, _ in self._data.values():
            steps[:] = [places[int(x)] for x in steps]
        return True

    def build(self, *, step_unit: str = "step",
              role: Callable[[str], tuple[Role | None, str | None]] | None = None,
              repeats: bool = True) -> list[Series]:
        """The series collected. ``repeats=False`` drops a point equal in step and value to the one
        before it in its series (a console whose every line two log handlers print: TF1's absl
        ``I0422 ... learning.py:507] global step 409: loss = ...`` and ``INFO:tensorflow:...``)."""
        out = []
        resumed = self._resumed()
        for series, (steps, values, walls) in self._data.items():
            tick()  # thousands of series are as many arrays to build
            if resumed:
                kept = self._replaced(series, steps)
                if len(kept) < len(steps):
                    steps, values, walls = [steps[i] for i in kept], [values[i] for i in kept], [walls[i] for i in kept]
            if not repeats and len(steps) > 1:
                keep = [0] + [i for i in range(1, len(steps))
                              if steps[i] != steps[i - 1] or values[i] != values[i - 1]]
                if len(keep) < len(steps):
                    steps, values, walls = ([steps[i] for i in keep], [values[i] for i in keep],
                                            [walls[i] for i in keep])
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


def read_text(path: Path, limits: ReadLimits) -> str:
    """A whole JSON or text file within the size limit, as UTF-8 text (a BOM dropped); a
    :class:`LogError` naming the byte offset of text that is not UTF-8, or why it cannot be read."""
    check_size(path, limits)
    try:
        return path.read_bytes().decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as e:
        raise LogError(f"{path.name} byte offset {e.start}: not UTF-8 text") from None
    except OSError as e:
        raise LogError(f"{path.name}: cannot be read ({e.strerror or e})") from None


_JSON = json.JSONDecoder()


#: The most digits an integer in a JSON record may have: Python's own limit on converting text to
#: an int (4300 by default). No step or value comes near it.
MAX_DIGITS = sys.get_int_max_str_digits() or 4300
_LONG_INTEGER = re.compile(rf"\d{{{MAX_DIGITS + 1},}}")


def too_many_digits(text: str) -> json.JSONDecodeError:
    """The error for an integer too long to read (Python's own words were "Exceeds the limit (4300
    digits) for integer string conversion ...; use sys.set_int_max_str_digits() to increase the
    limit", advice for the service's operator: errsweep6), in the words the native reader's
    ``_not_json`` uses, with where it starts (the decoder's line and column)."""
    found = _LONG_INTEGER.search(text)
    digits = len(found[0]) if found else MAX_DIGITS + 1
    return json.JSONDecodeError(f"an integer of {digits} digits, too long to be read as a number (at most "
                                f"{MAX_DIGITS:,} digits)", text, found.start() if found else 0)


def loads(text: str, decoder: json.JSONDecoder = _JSON, *, strict: bool = True) -> Any:
    """``json.loads`` that also takes bare ``nan`` / ``inf`` / ``-inf`` tokens (as strings);
    ``decoder``: the decoder to read with (one that marks numbers of its own, say). With ``strict``
    (the default, for reading records) an object that names a key twice is refused
    (:class:`~gradhealth.core.strict_json.DuplicateKey`, with the member's JSON pointer): json keeps
    the last of the two silently, and a record ``{"loss": 0.5, "loss": NaN}`` would be judged by a
    value its writer may not have meant. Format sniffing passes ``strict=False``.

    Raises ``ValueError`` (a ``json.JSONDecodeError`` when the text is not JSON).
    """
    def decode(document: str) -> Any:
        if strict:
            # (a decoder of one's own, the live-run door's, is as strict: errsweep5 stored the
            # second of {"value":1,"value":2})
            return strict_loads(document) if decoder is _JSON else strict_decode(document, decoder)
        return decoder.decode(document)

    try:
        return decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        first = e
    except ValueError as e:
        if "integer string conversion" not in str(e):
            raise
        raise too_many_digits(text) from None
    fixed = _BARE_NONFINITE.sub(lambda m: f'{m[1]}"{m[2]}{m[3]}"', text)
    if fixed == text:
        raise first
    try:
        return decode(fixed)
    except (json.JSONDecodeError, RecursionError):
        raise first from None


def cut_first_line(head: bytes) -> bool:
    """Whether ``head``, a sniffer's :data:`~gradhealth.logs.sniff.HEAD_BYTES` of a file, ends inside
    the file's first line (no line end in it): what the file holds past that line is not known."""
    return len(head) >= HEAD_BYTES and _LINE_END.search(head) is None


def first_lines(head: bytes, n: int = 50) -> list[str]:
    """Up to ``n`` complete, non-empty lines of ``head`` as text, split where :class:`Lines` splits
    them (LF, CRLF or a lone CR); where the first line is not UTF-8, all are read as
    :data:`FALLBACK_ENCODING`, as a table's reader reads them (:func:`decode_line`). [] when the
    head is binary (:func:`gradhealth.logs.sniff.binary`) or its first line is neither; lines from
    one that is not UTF-8 in a head that is, or that holds a NUL byte (a crash's padding, a UTF-16
    fragment appended), are left out, so the reader meets that line and names it."""
    if binary(head):
        return []
    nul = head.find(b"\x00")
    if nul >= 0:
        head = head[:nul]
        head = head[:max(head.rfind(b"\n"), head.rfind(b"\r")) + 1]  # up to the NUL's line
    raw_lines = split_lines(head)
    if len(raw_lines) > 1 and len(head) >= 4096:
        raw_lines = raw_lines[:-1]            # the head may end mid-line
    out: list[str] = []
    fallback = False
    conflicts = Conflicts()  # a table's readers read one side of a merge conflict: so does a sniffer
    for i, raw in enumerate(raw_lines):
        try:
            text = raw.decode(FALLBACK_ENCODING if fallback else "utf-8")
        except UnicodeDecodeError:
            decoded = decode_line(raw) if i == 0 else None
            if decoded is None:
                if i == 0:
                    return []
                break
            text, fallback = decoded
        if i == 0:
            text = text.lstrip("\ufeff")
        if text.strip() and conflicts.keep(i + 1, text):
            out.append(text)
            if len(out) >= n:
                break
    return out


_COMMENT_HEADER = re.compile(r"#\s*[,\t]")  # "#,epoch,loss": a header whose first column is named "#"


def _comment(line: str) -> bool:
    """A line that is a ``#`` comment, not a row (a header whose first column is ``#`` is a row)."""
    text = line.lstrip("\ufeff").lstrip()
    return text.startswith("#") and not _COMMENT_HEADER.match(text)


def leading_comments(head: bytes) -> int:
    """How many lines at the start of a table's ``head`` are ``#`` comments (blank lines among them
    counted), to be passed over before its header: Stable-Baselines3's Monitor opens its
    ``monitor.csv`` with ``#{"t_start": 1591112345.12, "env_id": "LunarLander-v2"}`` above
    ``r,l,t``. 0 when there are none, or when the line after them is not a header but a row of
    numbers: then the last comment is the header itself (``numpy.savetxt``'s ``# step,loss``) and
    the table is read as it always was."""
    raw = split_lines(head)
    if len(raw) > 1 and len(head) >= 4096:
        raw = raw[:-1]                                   # the head may end mid-line
    count = 0
    for i, line in enumerate(raw):
        decoded = decode_line(line)
        if decoded is None:
            return 0
        text = decoded[0]
        if not text.strip() or _comment(text):
            count = i + 1
            continue
        if not any(_comment(t.decode("utf-8", "replace")) for t in raw[:i]):
            return 0                                     # blank lines alone: nothing to pass over
        try:
            row = next(csv.reader([text], delimiter="\t" if "\t" in text and "," not in text else ","))
        except (csv.Error, StopIteration):
            return 0
        return count if not all(_numeric(c) for c in row if c.strip()) else 0
    return 0


def after_comments(head: bytes) -> bytes:
    """``head`` without its leading ``#`` comment lines (:func:`leading_comments`)."""
    n = leading_comments(head)
    if not n:
        return head
    ends = _LINE_END.finditer(head)
    end = 0
    for _ in range(n):
        m = next(ends, None)
        if m is None:
            return b""
        end = m.end()
    return head[end:]


def delimiter(head: bytes) -> str:
    """A table's column separator: a tab where its first line (after leading ``#`` comments) has
    tabs and no comma, else a comma."""
    lines = first_lines(after_comments(head), 1)
    return "\t" if lines and "\t" in lines[0] and "," not in lines[0] else ","


def csv_header(head: bytes) -> list[str] | None:
    """The first row of ``head`` when it looks like a CSV (or tab-separated) header (>= 2 columns),
    else None. Leading ``#`` comment lines are passed over (:func:`leading_comments`)."""
    head = after_comments(head)
    lines = first_lines(head, 3)
    if not lines:
        return None
    sep = delimiter(head)
    try:
        row = next(csv.reader([lines[0]], delimiter=sep))
    except (csv.Error, StopIteration):
        return None
    if len(row) < 2 or lines[0].lstrip().startswith(("{", "[")):
        return None
    # a console line with a comma ("2018-10-11 09:16:22,448 INFO - ...") is not a header: a
    # header names its columns, and names seldom start with digits. Some do ("8-dim", one column
    # per model size): a first row that is not all numbers over rows that are, cell for cell, heads them.
    if sum(c.strip()[:1].isdigit() for c in row) * 2 > len(row) and not _heads_numbers(row, lines[1:], sep):
        return None
    return [c.strip() for c in row]


def _numeric(cell: str) -> bool:
    try:
        parse_number(cell)
    except ValueError:
        return False
    return True


def _heads_numbers(row: list[str], below: list[str], sep: str) -> bool:
    """Whether ``row``, not all numbers, sits over rows of as many cells that are all numbers."""
    if all(_numeric(c) for c in row) or not below:
        return False
    try:
        rows = list(csv.reader(below, delimiter=sep))
    except csv.Error:
        return False
    return all(len(r) == len(row) and all(_numeric(c) for c in r) for r in rows)


#: The separator :class:`CsvRows` and :func:`read_wide_csv` take for a table whose columns are
#: aligned with blanks (:func:`aligned_header`): its cells are split at runs of spaces.
ALIGNED = " "
#: A column's name in an aligned table's header: an identifier (``MeanReward``, ``val/acc``, ``mAP@.5``).
_ALIGNED_NAME = re.compile(r"[A-Za-z_][\w./@%-]*")
#: A piece of a date or time written in words and numbers (``2023-10-14``, ``12:36:54.120``, ``Oct``,
#: ``PM``, ``+0200``): a row's last cell may be a timestamp of several such pieces.
_TIME_PIECE = re.compile(r"(?:\d{1,4}[-/.:]){1,3}\d{1,4}(?:[.,]\d+)?Z?|[A-Za-z]{3}|\d{1,4}|[AaPp][Mm]|UTC|[+-]\d{2}:?\d{2}")
#: Rows below an aligned table's header that must all match it, and the lines of the head looked at.
_ALIGNED_ROWS = 3
_ALIGNED_SAMPLE = 20


def aligned_cells(line: str, width: int | None = None) -> list[str]:
    """The cells of a line of a table aligned with blanks: its tokens, where a row of ``width``
    columns holds more, the last ones joined into one cell when they are the pieces of a date and
    time (``2023-10-14 12:36:54``, ``Sat Oct 14 12:36:54 2023``), the timestamp column's one value."""
    tokens = line.split()
    if width is not None and 0 < width < len(tokens):
        tail = tokens[width - 1:]
        if all(_TIME_PIECE.fullmatch(t) for t in tail) and any(":" in t for t in tail):
            tokens = [*tokens[:width - 1], " ".join(tail)]
    return tokens


def aligned_header(head: bytes) -> list[str] | None:
    """The column names of a table whose columns are aligned with blanks, not commas or tabs (the
    PyTorch Mario tutorial's ``MetricLogger``: ``Episode  Step  Epsilon  MeanReward ... Time``; what
    ``column -t`` prints), else None. Its first line (after leading ``#`` comments) is three or more
    distinct names, each an identifier; every line below it in the head (three at least) has as many
    cells (a trailing timestamp of several pieces is one cell, :func:`aligned_cells`), two thirds of
    them and two at least numbers or missing values. Prose, ``key value`` lines (half of them names)
    and consoles with lines of other shapes are no such table (logsweep62 u01)."""
    lines = first_lines(after_comments(head), _ALIGNED_SAMPLE + 1)
    if len(lines) < _ALIGNED_ROWS + 1 or "\t" in lines[0] or "," in lines[0]:
        return None
    names = lines[0].split()
    if len(names) < 3 or len(set(names)) != len(names) or not all(_ALIGNED_NAME.fullmatch(c) for c in names):
        return None
    for line in lines[1:]:
        cells = aligned_cells(line, len(names))
        numbers = sum(_numeric(c) or c.lower() in MISSING for c in cells)
        if len(cells) != len(names) or numbers < 2 or 3 * numbers < 2 * len(cells):
            return None
    return names


def row_failed(name: str, lineno: int, error: BadRow, cut: bool, warnings: list[LogWarning], *,
               sep: str = ":") -> None:
    """A table row a reader could not read: on the file's cut-off last line a ``truncated_log``
    warning, the rows before it kept (the caller stops reading); anywhere else a :class:`LogError`
    naming the line."""
    if not cut:
        raise LogError(f"{name} line {lineno}{sep} {error}", position=(lineno, None), field=error.field) from None
    warnings.append(truncated(name, lineno, str(error)))


#: git's merge-conflict markers, each at the start of a line: ``<<<<<<< HEAD`` opens a conflict
#: (our side follows), ``|||||||`` starts the merge base's lines (diff3 style), ``=======`` the other
#: side's, and ``>>>>>>> branch`` closes it
_CONFLICT_OPEN = re.compile(r"<{7}(?:[ \t].*)?")
_CONFLICT_BASE = re.compile(r"\|{7}(?:[ \t].*)?")
_CONFLICT_SPLIT = re.compile(r"={7}[ \t]*")
_CONFLICT_CLOSE = re.compile(r">{7}(?:[ \t].*)?")


class Conflicts:
    """The git merge conflicts a table went through, read line by line (:meth:`keep`): of each
    conflict, the side after its ``<<<<<<<`` line (our side, HEAD's in a merge) is kept, and the
    marker lines, the merge base's lines (``|||||||``) and the other side's (``=======`` to
    ``>>>>>>>``) are passed over, so the rows of the two sides are never read as one table. A
    ``=======`` or ``>>>>>>>`` outside a conflict is a line as any other. ``blocks``: per conflict,
    (its ``<<<<<<<`` line, its ``=======`` line, its ``>>>>>>>`` line or None where the file ends
    inside it, the open marker's label, the close marker's label, the other side's lines left out)."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int | None, int | None, str, str, int]] = []
        self._state = ""   # "", "ours", "base", "theirs"
        self._open = 0
        self._split: int | None = None
        self._label = ""
        self._dropped = 0

    def keep(self, lineno: int, text: str) -> bool:
        """Whether line ``lineno`` (its text) is read: False for a marker line and the lines of a
        conflict's side that is not kept."""
        line = text.rstrip("\r\n")
        state = self._state
        if not state:
            if _CONFLICT_OPEN.fullmatch(line):
                self._state, self._open, self._split, self._dropped = "ours", lineno, None, 0
                self._label = line[7:].strip()
                return False
            return True
        if state in ("ours", "base") and _CONFLICT_SPLIT.fullmatch(line):
            self._state, self._split = "theirs", lineno
            return False
        if state == "ours" and _CONFLICT_BASE.fullmatch(line):
            self._state = "base"
            return False
        if state == "theirs" and _CONFLICT_CLOSE.fullmatch(line):
            self.blocks.append((self._open, self._split, lineno, self._label, line[7:].strip(), self._dropped))
            self._state = ""
            return False
        if state == "ours":
            return True
        self._dropped += bool(line.strip())
        return False

    def finish(self) -> None:
        """At the end of the file: a conflict still open is recorded as cut off there."""
        if self._state:
            self.blocks.append((self._open, self._split, None, self._label, "", self._dropped))
            self._state = ""


def conflict_note(name: str, conflicts: Conflicts) -> LogWarning | None:
    """The ``merge_conflict`` note of a table whose lines went through a git merge and kept its
    conflict markers (:class:`Conflicts`), naming the marker lines and the side read; None when
    there was none."""
    conflicts.finish()
    if not conflicts.blocks:
        return None
    parts = []
    for opened, split, closed, ours, theirs, dropped in conflicts.blocks[:5]:
        marks = [f"<<<<<<< {ours}".rstrip() + f" at line {opened}"]
        if split is not None:
            marks.append(f"======= at line {split}")
        marks.append(f">>>>>>> {theirs}".rstrip() + f" at line {closed}" if closed is not None
                     else "no >>>>>>> line before the file ends")
        side = f"{ours}'s side" if ours else "the side after <<<<<<<"
        parts.append(f"{', '.join(marks)}: read {side}; the other side's {dropped:,} line(s)"
                     + (f" ({theirs})" if theirs else "") + " left out")
    more = len(conflicts.blocks) - 5
    first = conflicts.blocks[0][0]
    return LogWarning(
        "merge_conflict",
        f"{name}: {len(conflicts.blocks)} git merge conflict(s) left in the file ({'; '.join(parts)}"
        + (f"; and {more} more" if more > 0 else "") + "). Only one side of each is read: the two sides' rows "
        "are two versions of the same lines, not one run; resolve the conflict to choose the other",
        where=f"line {first}")


class CsvRows:
    """A CSV file's records as (line number, cells), used as a context manager that closes the file.

    Leading ``#`` comment lines are passed over (:func:`leading_comments`); with ``sep=ALIGNED`` the
    cells of a table aligned with blanks are its tokens (:func:`aligned_cells`); ``cells`` is None for a
    last line cut off inside a quoted field; blank lines are skipped; ``lines.unterminated_last``
    says whether the record just returned is an unterminated last line.
    """

    def __init__(self, path: Path, limits: ReadLimits, *, sep: str = ",") -> None:
        self.path = path
        self.sep = sep
        self._f = open_log(path, limits)
        # leading "#" comment lines are passed over, as csv_header passes them over; a first comment
        # longer than the head (a Monitor file's start record with a long info dict) is read to its end
        self._skip = leading_comments(past_comment(self._f, self._f.read(HEAD_BYTES), HEAD_BYTES))
        self._f.seek(0)
        self.lines = Lines(self._f, path.name, lenient=True)
        #: the git merge conflicts met so far: one side of each is read (:class:`Conflicts`)
        self.conflicts = Conflicts()

    def __enter__(self) -> CsvRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __iter__(self) -> Iterator[tuple[int, list[str] | None]]:
        lines = self.lines
        skip = self._skip
        keep = self.conflicts.keep
        if self.sep == ALIGNED:
            # a table aligned with blanks: no quoting, cells split at runs of spaces, its width the header's
            width: int | None = None
            for text in lines:
                cells = aligned_cells(text, width) if lines.lineno > skip and keep(lines.lineno, text) else []
                if cells:
                    width = width or len(cells)
                    yield lines.lineno, cells
            self.conflicts.finish()
            return
        started = [0]  # the line the record being read begins on (0: none begun)

        def fed() -> Iterator[str]:
            for text in lines:
                if lines.lineno > skip and keep(lines.lineno, text):
                    if not started[0]:
                        started[0] = lines.lineno
                    yield text

        reader = csv.reader(fed(), delimiter=self.sep)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                self.conflicts.finish()
                return
            except csv.Error as e:
                if lines.unterminated_last:
                    yield lines.lineno, None
                    return
                if started[0] and started[0] < lines.lineno:
                    # a record over several lines is a quoted field that holds line ends: one that
                    # never closes runs on until the csv module gives up, far from where it opened
                    raise LogError(f"{self.path.name} line {started[0]}: a quoted field opened on this "
                                   f"line is never closed (still open {lines.lineno - started[0]:,} lines "
                                   f"later, at line {lines.lineno}: {e}); close the quote or remove it",
                                   position=(started[0], None)) from None
                raise LogError(f"{self.path.name} line {lines.lineno}: not valid CSV ({e})",
                               position=(lines.lineno, None)) from None
            started[0] = 0
            if row and any(c.strip() for c in row):
                yield lines.lineno, row


def check_header(name: str, header: list[str]) -> list[str]:
    """Stripped column names; duplicates are an error."""
    cols = [c.strip() for c in header]
    seen: set[str] = set()
    for i, c in enumerate(cols):
        if c and c in seen:
            raise LogError(f"{name} line 1: column {i + 1} repeats the name {c!r}", position=(1, None), field=c)
        seen.add(c)
    return cols


def read_wide_csv(path: Path, limits: ReadLimits, *, step_column: str | None, fmt: str,
                  skip: Callable[[str], bool] = lambda c: False,
                  wall_columns: tuple[str, ...] = (),
                  cell: Callable[[str, str], float | None] | None = None,
                  skip_repeated_header: bool = False,
                  from_line: int = 0,
                  sep: str = ",",
                  ) -> tuple[Points, list[LogWarning], list[str]]:
    """Read a wide CSV: each column (except the step, wall-time and skipped ones) is a series of its
    non-blank cells against the step column (or the 0-based data row index when ``step_column`` is
    None).

    A column whose cell in the first data row is text (not a number or a percentage) is left out
    with a ``skipped_values`` warning (unless ``cell`` is given); a percentage is its number. A later
    cell that is not a number is an error naming the line and column, unless ``cell`` is given:
    then ``cell(column, text)`` returns the value or None to skip the cell (lenient readers).
    With ``skip_repeated_header``, a row equal to the header (files appended to) is skipped with a
    warning. Rows on lines before ``from_line`` are not read (a caller keeping only the last of
    several runs appended to one file); the header is still the file's first row. ``sep``: the
    column separator (``\\t`` for a tab-separated table, :data:`ALIGNED` for one aligned with blanks).
    """
    warnings: list[LogWarning] = []
    points = Points(path.name, limits)
    header: list[str] | None = None
    step_idx = -1
    wall_idx = -1
    columns: list[tuple[int, str]] = []
    n_data = 0
    last_step: float | None = None
    blank_steps = 0
    with CsvRows(path, limits, sep=sep) as rows:
        lines = rows.lines
        for lineno, row in rows:
            if header is None:
                if row is None:
                    raise LogError(f"{path.name} line {lineno}: the header is cut off", position=(lineno, None))
                header = check_header(path.name, row)
                if step_column is not None:
                    if step_column not in header:
                        raise LogError(f"{path.name} line {lineno}: no {step_column!r} column "
                                       f"(columns: {', '.join(header)})", position=(lineno, None))
                    step_idx = header.index(step_column)
                wall_idx = next((header.index(w) for w in wall_columns if w in header), -1)
                columns = [(i, c) for i, c in enumerate(header)
                           if i not in (step_idx, wall_idx) and c and not skip(c)]
                if len(columns) > limits.max_series:  # refused from the header, before any row
                    raise UploadTooLarge(f"{path.name}: {len(columns):,} columns; the limit is "
                                         f"{limits.max_series:,} series (GRADHEALTH_LOG_MAX_SERIES)")
                continue
            if lineno < from_line:
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
                raise LogError(f"{path.name} line {lineno}: expected {len(header)} columns, got {len(row)}",
                               position=(lineno, None))
            if n_data == 0 and cell is None:
                # a column whose first value is text (fastai's "04:39" time, a run name) holds no
                # series: left out, with a note; text in a loss, rate or norm column, or later in a
                # numeric one, is still an error
                text_cols = [(i, c) for i, c in columns
                             if _is_text(row[i].strip()) and classify(c)[0] not in CORE_ROLES]
                for i, c in text_cols:
                    warnings.append(LogWarning(
                        "skipped_values", f"{path.name}: column {c!r} holds text ({_short(row[i].strip())}), "
                        "not numbers: left out", where=f"column {c}"))
                columns = [col for col in columns if col not in text_cols]
            try:
                if step_idx >= 0:
                    text = row[step_idx].strip()
                    if not text and last_step is None:
                        raise BadRow(f"the {step_column!r} cell is blank", field=step_column)
                    # a logger's dump that left the step out (Stable-Baselines3 writes a row per dump,
                    # blank where a key was not recorded): the step of the row before (logsweep31)
                    step = _num(text, step_column or "step") if text else cast(float, last_step)
                    blank_steps += not text
                    if (why := bad_step(step, text, step_column or "step")) is not None:
                        raise BadRow(why, field=step_column or "step")
                else:
                    step = float(n_data)
                wall = None
                if wall_idx >= 0 and row[wall_idx].strip():
                    wall = _num(row[wall_idx], header[wall_idx])
                found: list[tuple[str, float]] = []
                for i, c in columns:
                    text = row[i].strip()
                    if not text or text.lower() in MISSING:
                        continue
                    try:
                        found.append((c, _cell_number(text)))
                    except ValueError:
                        if cell is None:
                            raise BadRow(_not_a_number(c, text), field=c) from None
                        v = cell(c, text)
                        if v is not None:
                            found.append((c, v))
            except BadRow as e:
                row_failed(path.name, lineno, e, cut, warnings, sep=",")
                break
            last_step = step
            n_data += 1
            for c, v in found:
                points.add(c, step, v, wall)
    if header is None:
        raise LogError(f"{path.name}: the file is empty")
    if points.count == 0:
        # "native" is this project's name for a plain table of columns, not one a user knows
        kind = "CSV" if fmt == "native" else fmt
        raise LogError(f"{path.name}: no values after the header (a {kind} log needs at least one row of values)")
    if blank_steps:
        warnings.append(LogWarning("placed_by_order", f"{path.name}: {blank_steps:,} row(s) with a blank "
                                   f"{step_column!r} cell took the step of the row before"))
    if (note := transcoded_note(path.name, lines)) is not None:
        warnings.append(note)
    if (note := conflict_note(path.name, rows.conflicts)) is not None:
        warnings.insert(0, note)
    return points, warnings, header


def transcoded_note(name: str, lines: Lines) -> LogWarning | None:
    """The ``transcoded`` note of a table whose lines were not all UTF-8 (:class:`Lines`'
    ``lenient``), else None."""
    if lines.transcoded is None:
        return None
    return LogWarning("transcoded", f"{name} line {lines.transcoded}: not UTF-8 text; read as "
                      f"{FALLBACK_ENCODING} (Windows-1252, the encoding Excel on Windows saves CSV in)",
                      where=f"line {lines.transcoded}")


#: The roles a run is judged on: never read past as text.
CORE_ROLES = frozenset({"loss", "val_loss", "grad_norm", "clipped_grad_norm", "learning_rate"})


#: Cells that say "no value" in the spellings tools write (R's NA, pandas' None, a dash).
MISSING = frozenset({"na", "n/a", "null", "none", "nil", "-", "--"})


def _cell_number(cell: str) -> float:
    """A CSV cell's number; a percentage is its number (Stable-Baselines3's "Progress" 1.15%).
    :class:`ValueError` when it is neither."""
    return parse_number(cell[:-1] if cell.endswith("%") else cell)


def _is_text(cell: str) -> bool:
    """A non-blank cell that is neither a number, a percentage (``1.15%``) nor a missing value."""
    if not cell or cell.lower() in MISSING:
        return False
    try:
        _cell_number(cell)
    except ValueError:
        return True
    return False


class BadRow(Exception):
    """A row (or line) that does not parse; its message says why, the caller adds where. ``field``:
    the column (or record field) at fault, by name, where one is (the failed job's
    ``errors[].field``: newuser16 #6)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _num(text: str, column: str) -> float:
    try:
        return parse_number(text)
    except ValueError:
        raise BadRow(_not_a_number(column, text), field=column) from None


def _not_a_number(column: str, text: str) -> str:
    """Why a cell is refused: not a number, or holding a NUL byte (said so: ``'0.4\\x00'`` alone
    looks like a number)."""
    if "\x00" in text:
        return (f"column {column!r}: not a number: {_short(text)} holds a NUL byte (a crash's zero "
                "padding, or text of another encoding such as UTF-16 written into the file)")
    return f"column {column!r}: not a number: {_short(text)}"


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")
