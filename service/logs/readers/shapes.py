"""Reuse one line's parse for the lines of the same shape: a log's lines differ in their digits.

A training console prints the same line a million times with other numbers in it (``step 120 |
loss 3.41 | lr 6e-4``). Parsing each in full (a few dozen regular expressions, :func:`gradhealth.
logs.readers.text.line_values`) made a 50 MB text log take 40 s. Lines whose text is the same but for
their digits (the *shape*: every digit read as ``1``; digit counts kept, and ``0`` kept apart in
digits joined by commas, since the parser groups thousands only after ``[1-9]``) are parsed the
same way: the same names, from the same character spans. So after a shape's first lines are parsed in full, the spans its values came from
are learnt and the next lines of that shape are read from those spans, a slice per value.

A recipe is trusted only when it is certain:

- every value must be the text of one span of the line (commas of grouped thousands dropped) and the
  spans must be told apart by the lines themselves: a value found at several places (``lr 0.001 wd
  0.001``) is narrowed by the next lines of the shape, and a shape whose values stay ambiguous is
  always parsed in full;
- the recipe must reproduce the full parse of the shape's next :data:`CONFIRM` lines exactly;
- a parse that *computes* a value or decides from a number's value (a fractional epoch from ``[1][50/
  5808]``, an evaluation's last batch, two numbers compared) calls :func:`computed`, and its shape is
  always parsed in full.

A name with a digit (``layers.3.grad``, ``top5``: the shape reads it as ``1``) keeps its shape parsed
in full too, and so does a line whose count's total reads 0 (the parser treats no total and 0 alike).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

Parsed = tuple[list[tuple[str, str]], float | None]

#: Full parses a learnt recipe must reproduce before the shape's lines are read from it.
CONFIRM = 2
#: Shapes remembered; past it the memory starts afresh (a log of ever-new shapes gains nothing).
MAX_SHAPES = 20_000

_SHAPE = str.maketrans("0123456789", "1111111111")
_SHAPE_GROUPED = str.maketrans("23456789", "11111111")
_GROUPED = re.compile(r"\d+(?:,\d+)+")
_INTEGER = re.compile(r"\d+")
_DIGITS = frozenset("0123456789")
_local = threading.local()


def computed() -> None:
    """Say that the parse under way computed a value or branched on one (see the module's doc)."""
    _local.computed = True


def shape_of(line: str) -> str:
    """``line`` with every digit as ``1`` (``0`` kept in digits joined by commas, ``8,388,608``, not in
    a timestamp's ``12:05:07,123`` alone): lines of one shape parse alike."""
    if "," not in line:
        return line.translate(_SHAPE)
    parts: list[str] = []
    at = 0
    for m in _GROUPED.finditer(line):
        parts += [line[at:m.start()].translate(_SHAPE), m[0].translate(_SHAPE_GROUPED)]
        at = m.end()
    parts.append(line[at:].translate(_SHAPE))
    return "".join(parts)


def _spans(line: str, value: str) -> list[tuple[int, int]]:
    """Where ``value`` stands in ``line`` as a whole number (not inside a longer one), with grouped
    thousands' commas allowed (``8388608`` at ``8,388,608``)."""
    out: list[tuple[int, int]] = []
    at = line.find(value)
    while at >= 0:
        end = at + len(value)
        before = line[at - 1] if at else ""
        after = line[end:end + 2]
        if (before not in _DIGITS and before != "." and before != ","
                and not (after[:1] in _DIGITS or (after[:1] in ".,eE" and after[1:2] in _DIGITS))):
            out.append((at, end))
        at = line.find(value, at + 1)
    if not out and value.isdigit() and "," in line:
        # a grouped number: walk its digits and commas from each place its first digit stands
        at = line.find(value[0])
        while at >= 0:
            i, j = at, 0
            while i < len(line) and j < len(value):
                if line[i] == value[j]:
                    j += 1
                elif line[i] != "," or j == 0:
                    break
                i += 1
            before = line[at - 1] if at else ""
            if j == len(value) and before not in _DIGITS and (i == len(line) or line[i] not in _DIGITS):
                out.append((at, i))
            at = line.find(value[0], at + 1)
    return out


@dataclass
class _Shape:
    """What is known of one shape: candidate spans per value until one each, then the recipe."""
    keys: list[str]
    candidates: list[list[tuple[int, int]]]      # per value, the spans it may come from
    total: float | None
    total_candidates: list[tuple[int, int]] = field(default_factory=list)
    confirmed: int = 0

    def ready(self) -> bool:
        return all(len(c) == 1 for c in self.candidates) and (self.total is None or len(self.total_candidates) == 1)

    def read(self, line: str) -> Parsed:
        found = [(k, line[s:e].replace(",", "")) for k, [(s, e)] in zip(self.keys, self.candidates, strict=True)]
        if self.total is None:
            return found, None
        (s, e), = self.total_candidates
        return found, float(line[s:e].replace(",", ""))

    def narrow(self, line: str, parsed: Parsed) -> bool:
        """Keep the spans that give this line's values too; False when the line contradicts the shape."""
        found, total = parsed
        if [k for k, _ in found] != self.keys or (total is None) != (self.total is None):
            return False
        self.candidates = [[(s, e) for s, e in spans if line[s:e].replace(",", "") == v]
                           for spans, (_, v) in zip(self.candidates, found, strict=True)]
        if total is not None:
            self.total_candidates = [(s, e) for s, e in self.total_candidates
                                     if _float(line[s:e]) == total]
        return all(self.candidates) and (total is None or bool(self.total_candidates))


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


class ShapeCache:
    """Parses lines with ``parse``, reusing the spans learnt for each shape (see the module)."""

    def __init__(self, parse: Callable[[str], Parsed]) -> None:
        self._parse = parse
        self._shapes: dict[str, _Shape | None] = {}   # None: always parsed in full

    def _full(self, line: str) -> tuple[Parsed, bool]:
        _local.computed = False
        parsed = self._parse(line)
        return parsed, _local.computed

    def __call__(self, line: str) -> Parsed:
        key = shape_of(line)
        if key not in self._shapes:
            parsed, was_computed = self._full(line)
            if was_computed:
                self._shapes[key] = None
            else:
                self._learn(key, line, parsed)
            return parsed
        known = self._shapes[key]
        if known is None:
            return self._parse(line)
        if known.ready() and known.confirmed >= CONFIRM:
            parsed = known.read(line)
            if parsed[1] != 0.0:
                return parsed
        parsed, was_computed = self._full(line)
        if was_computed:
            self._shapes[key] = None
        elif known.ready():
            if known.read(line) == parsed:
                known.confirmed += 1
            else:
                self._shapes[key] = None
        elif not known.narrow(line, parsed):
            self._shapes[key] = None
        return parsed

    def _learn(self, key: str, line: str, parsed: Parsed) -> None:
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        found, total = parsed
        if any(ch in _DIGITS for k, _ in found for ch in k):
            self._shapes[key] = None   # a name with a digit the shape does not keep (top1, top5)
            return
        candidates = [_spans(line, v) for _, v in found]
        totals: list[tuple[int, int]] = []
        if total is not None:
            totals = [(m, e) for m, e in _number_spans(line) if _float(line[m:e]) == total]
        if not all(candidates) or (total is not None and not totals):
            self._shapes[key] = None   # a value that is no span of the line: computed
            return
        self._shapes[key] = _Shape([k for k, _ in found], candidates, total, totals)


def _number_spans(line: str) -> list[tuple[int, int]]:
    """The spans of the unsigned integers in ``line`` (a count's total is one)."""
    return [m.span() for m in _INTEGER.finditer(line)]
