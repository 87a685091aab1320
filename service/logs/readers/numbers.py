"""A file of bare numbers with no header, named after what it holds: what ``np.savetxt("losses.txt",
losses)``, ``json.dump(losses, f)`` or a ``print(loss, file=f)`` loop writes::

    2.302585
    2.147109
    1.998342

One value per line (the step is the line's row, counted from 0, as a header-less table's index), or
two per line where the first counts up in whole numbers (``step loss``, ``10,2.14``), or the second
does and the first does not (``loss step``, ``1.0218862 0``), separated by
commas, tabs, semicolons or blanks; or one JSON array of numbers (``[2.30, 2.14, NaN]``).

The file's name says what the numbers are, since nothing else in the file does: a name with
``loss`` in it is the training loss (``val_``/``valid``/``eval``/``test``/``dev`` with it, the
validation loss), one with ``grad`` and ``norm`` the gradient norm (``train_losses.txt``,
``loss-history.csv``, ``val_loss.npy.txt``, ``grad_norms.csv``); a loss of a part keeps its name
(``g_losses.txt`` is ``g_loss``), judged as a column of that name would be. A file of numbers whose name says
none of these is refused with what to do (put a header line first: ``step,loss``; or name the file
after what it holds): judging an unnamed curve as a loss could call a rising accuracy a divergence.
So is a table of numbers with more columns than a step and one value: which is which cannot be told.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from gradhealth.errors import LogError
from gradhealth.logs.readers.native import read_json_array
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import Lines, Points, bad_step, first_lines, number, open_log
from gradhealth.logs.series import LogWarning, RunLog, parse_number

#: A number as a logging loop or numpy writes it, the non-finite spellings included.
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|NAN|inf|Inf|INF|Infinity|-?nan)"
#: A line of one or two numbers: the value, or the step and the value.
_LINE = re.compile(rf"\s*({_NUMBER})(?:\s*[,;\t ]\s*({_NUMBER}))?\s*[,;]?\s*")
_SEP = re.compile(r"\s*[,;\t ]\s*")
#: A JSON array of numbers (``json.dump(losses, f)``) opening the file.
#: (not a console's bracketed step before its fields, "[  5000] | loss 5.55")
_ARRAY = re.compile(rb"\s*\[(?![ \t]*\d+[ \t]*\][ \t]*\|)\s*(?:-?\d|NaN|-?Infinity|null)")
#: Lines of the head that must all be numbers before the file is taken for one of numbers.
_MIN_LINES = 3

_VALIDATION = {"val", "valid", "validation", "eval", "evaluation", "test", "dev"}


#: Words beside "loss" in a file's name that leave it the model's training loss.
_PLAIN = {"train", "training", "total", "mean", "avg", "average", "epoch", "step", "batch", "iter", "iteration",
          "history", "curve", "log", "value", "list", "all", "run", "model", "my", "per", "npy", "np"}


def quantity(filename: str) -> str | None:
    """The series a file of bare numbers holds, by its name: ``loss`` (a name of ``loss`` and plain
    words: ``train_losses.txt``, ``loss-history.csv``), ``val_loss`` (with ``val``, ``eval``, ``test``...),
    ``grad_norm`` (``grad`` and ``norm``), or a loss of a part under its own name (``g_losses.txt``
    is ``g_loss``, ``kl_loss.csv`` ``kl_loss``: judged as a header of that name is); None when the
    name says no loss and no gradient norm."""
    stem = filename.lower()
    for ext in (".gz", ".txt", ".csv", ".tsv", ".dat", ".log", ".json", ".out"):
        stem = stem.removesuffix(ext)
    words = [_singular(w) for w in re.split(r"[^a-z]+", stem) if w]
    if ("grad" in words or "gradient" in words) and "norm" in words or "gradnorm" in words:
        return "grad_norm"
    if not any(w.endswith("loss") for w in words):
        return None
    if "loss" in words and not set(words) - {"loss"} - _PLAIN - _VALIDATION:
        return "val_loss" if set(words) & _VALIDATION else "loss"
    return "_".join(w for w in words if w not in _PLAIN)


def _singular(word: str) -> str:
    if word.endswith("sses"):
        return word[:-2]            # losses
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word   # norms, not loss


def columns(head: bytes) -> int | None:
    """1 or 2 when every line of ``head`` (three at least) is one number or two, else None."""
    lines = [line for line in first_lines(head, 50) if line.strip()]
    if lines and not head.rstrip(b" \t").endswith((b"\n", b"\r")):
        lines = lines[:-1]          # a last line cut off while being written: the reader drops it
    if len(lines) < _MIN_LINES:
        return None
    widths = set()
    for line in lines:
        m = _LINE.fullmatch(line)
        if m is None:
            return None
        widths.add(2 if m.group(2) is not None else 1)
    return widths.pop() if len(widths) == 1 else None


#: A JSON number (NaN, Infinity and null as ``json.dump`` writes a missing or non-finite one)
_JSON_NUMBER = rb"(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity|null)"
#: A JSON array of numbers, whole: what the start of one is checked as (:func:`number_array`)
_WHOLE_ARRAY = re.compile(rb"\s*\[\s*" + _JSON_NUMBER + rb"(?:\s*,\s*" + _JSON_NUMBER + rb")*\s*\]")
#: How much of a head is checked to be a JSON array of numbers
_ARRAY_CHECK = 4096


def number_array(head: bytes) -> bool:
    """Whether ``head`` opens a JSON array of numbers: its first :data:`_ARRAY_CHECK` bytes up to the
    array's end, or up to their last comma where it goes on, are one in JSON's syntax, and where the
    array ends in the head, nothing but blanks follows it (a JSON file is one value). Not a printed
    tensor or NumPy array (``[-1., -1., ...,`` and ``[0.5 0.25]`` are no JSON), whose first
    character alone is a JSON array's; nor a console whose lines open with a bracketed step
    (``[0]\tloss: 0.69``, ``[12] loss=2.1``): ``[0]`` is a whole JSON array, but text follows it."""
    body = head.lstrip(b"\xef\xbb\xbf")
    if _ARRAY.match(body) is None:
        return False
    window = body[:_ARRAY_CHECK]
    if (end := window.find(b"]")) >= 0:
        return _WHOLE_ARRAY.fullmatch(window[:end + 1]) is not None and not body[end + 1:].strip()
    cut = window.rfind(b",")
    return cut > 0 and _WHOLE_ARRAY.fullmatch(window[:cut] + b"]") is not None


class NumbersReader:
    name = "numbers"
    description = ("a file of bare numbers, one per line (or a step and a number, or a JSON array), named "
                   "after what it holds: loss.txt, val_loss.csv, grad_norms.txt (np.savetxt, json.dump)")

    def sniff(self, filename: str, head: bytes) -> float:
        if quantity(filename) is None:
            return 0.0
        return 0.3 if columns(head) is not None or number_array(head) else 0.0

    def near_miss(self, filename: str, head: bytes) -> str | None:
        """Why a file of bare numbers is not read: its name does not say what they are, or it has
        more columns than a step and a value."""
        if number_array(head) and quantity(filename) is None:
            return ("line 1: a JSON array of bare numbers, with nothing to say what they are: name the file "
                    "after what it holds (loss.json, val_loss.json, grad_norm.json) or write records "
                    "({\"step\": 0, \"loss\": 2.3} per line)")
        lines = [line for line in first_lines(head, 50) if line.strip()]
        if len(lines) < _MIN_LINES or not all(_all_numbers(line) for line in lines):
            return None
        if columns(head) is None:
            width = max(len(_SEP.split(line.strip())) for line in lines)
            return (f"line 1: a table of numbers with no header ({width} columns): which column is which "
                    "cannot be told; put a header line first (step,loss,val_loss)")
        return ("line 1: numbers with no header and a file name that does not say what they are: put a "
                "header line first (step,loss) or name the file after what it holds (loss.txt, "
                "val_loss.csv, grad_norm.txt)")

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        name = quantity(path.name)
        if name is None:
            raise LogError(f"{path.name}: the file's name does not say what its numbers are (loss, val_loss, "
                           "grad_norm): put a header line first (step,loss) or rename the file")
        points = Points(path.name, limits)
        with open_log(path, limits) as f:
            head = f.read(4096)
        if number_array(head):
            how = self._read_array(path, limits, name, points)
        else:
            how = self._read_lines(path, limits, name, points, value_first=_value_first(head))
        if points.count == 0:
            raise LogError(f"{path.name}: no numbers")
        note = LogWarning("read_as", f"{path.name}: {points.count:,} bare numbers read as {name!r} (the file's "
                          f"name says so), {how}")
        return RunLog(format=self.name, source=path.name, series=points.build(), warnings=[note])

    @staticmethod
    def _read_array(path: Path, limits: ReadLimits, name: str, points: Points) -> str:
        for i, v in enumerate(read_json_array(path, limits, "numbers")):
            value = math.nan if v is None else number(v)   # (null: json.dump's None)
            if value is None:
                raise LogError(f"{path.name} record {i}: " + (f"{v[:40]!r} is not a number" if isinstance(v, str)
                                                              else f"expected a number, got {type(v).__name__}"))
            points.add(name, i, value)
        return "one per element of the array, stepped by its index"

    @staticmethod
    def _read_lines(path: Path, limits: ReadLimits, name: str, points: Points, *, value_first: bool = False) -> str:
        width: int | None = None
        last_step = -math.inf
        with open_log(path, limits) as f:
            lines = Lines(f, path.name, lenient=True)
            row = 0
            for text in lines:
                if not text.strip():
                    continue
                m = _LINE.fullmatch(text)
                cells = 0 if m is None else (2 if m.group(2) is not None else 1)
                if width is None:
                    width = cells
                if m is None or cells != width:
                    if lines.unterminated_last:
                        break  # a last line cut off while being written
                    shown = text.strip()[:60]
                    raise LogError(f"{path.name} line {lines.lineno}: expected {width} number"
                                   f"{'s' if width == 2 else ''} as on the lines above, got {shown!r}",
                                   position=(lines.lineno, None))
                if width == 1:
                    points.add(name, row, parse_number(m.group(1)))
                else:
                    at, val = (m.group(2), m.group(1)) if value_first else (m.group(1), m.group(2))
                    step = parse_number(at)
                    if (why := bad_step(step, at, "step")) is not None:
                        raise LogError(f"{path.name} line {lines.lineno}: {why.replace(' cell', '', 1)}",
                                       position=(lines.lineno, None))
                    if step != math.floor(step) or not step > last_step:
                        # (the first line has no step before it: only its own can be wrong)
                        wrong = (f"{at} is not a whole number" if step != math.floor(step)
                                 else f"{at} after {last_step:g}")
                        raise LogError(f"{path.name} line {lines.lineno}: two numbers per line are a step and "
                                       "a value, and the step must count up in whole numbers "
                                       f"({'second' if value_first else 'first'} column: {wrong}); for two values, put "
                                       "a header line first (loss,val_loss)", position=(lines.lineno, None))
                    last_step = step
                    points.add(name, step, parse_number(val))
                row += 1
        return ("one per line, stepped by the line's row" if width == 1 else
                "a value and its step per line (the second column counts up in whole numbers, the first does not)"
                if value_first else "a step and a value per line")


def _value_first(head: bytes) -> bool:
    """Whether a file of two numbers a line writes the value first and the step second (``1.0218862 0``,
    ``0.5186956 100``: a ``print(loss, step)``): the second column counts up in whole numbers over the
    head's lines and the first does not, so which is the step is unambiguous."""
    rows = [m for line in first_lines(head, 50) if line.strip() and (m := _LINE.fullmatch(line)) is not None]
    if not head.rstrip(b" \t").endswith((b"\n", b"\r")):
        rows = rows[:-1]  # (a last line cut off)
    if len(rows) < _MIN_LINES or any(m.group(2) is None for m in rows):
        return False

    def counts_up(cells: list[str]) -> bool:
        try:
            xs = [parse_number(c) for c in cells]
        except ValueError:
            return False
        return all(math.isfinite(x) and x == math.floor(x) for x in xs) and all(b > a for a, b in zip(xs, xs[1:], strict=False))

    return counts_up([m.group(2) for m in rows]) and not counts_up([m.group(1) for m in rows])


def _all_numbers(line: str) -> bool:
    cells = [c for c in _SEP.split(line.strip()) if c]
    try:
        for c in cells:
            parse_number(c)
    except ValueError:
        return False
    return bool(cells)


READER = NumbersReader()
