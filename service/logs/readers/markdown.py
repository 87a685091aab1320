"""Markdown tables of training results.

The Hugging Face Trainer writes one into every model card it pushes (``## Training results``), one
row per evaluation, ``No log`` where no training loss was logged yet::

    | Training Loss | Epoch | Step | Validation Loss | Accuracy |
    |:-------------:|:-----:|:----:|:---------------:|:--------:|
    | No log        | 1.0   | 250  | 0.6931          | 0.5      |
    | 0.6932        | 2.0   | 500  | 0.6931          | 0.5      |

and users paste such tables into issues and READMEs. The first table (a header row, a row of
dashes, then rows) whose header names a loss and a step or an epoch is read (a table comparing
models' losses, with neither, is no run); its other columns become series against the ``Step``
column (or ``Iteration``, ``Global Step``), else the ``Epoch`` column (``step_unit="epoch"``). A placeholder cell (``No log``, ``-``, ``N/A``, blank) is no
value; ``nan``/``inf`` are non-finite values; ``85.3%`` is 85.3. A column of text (a model name) is
left out with a ``skipped_values`` warning, and so is any further table with a loss (another run's).
A step (or epoch) cell that is not a finite number (``1e400``) or is 2^53 or more is refused naming its
line and the cell as written, as a CSV's is.
The text around the tables (the card's prose, its YAML front matter) is not read.
"""

from __future__ import annotations

import re
from pathlib import Path

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    Points,
    bad_step,
    cut_first_line,
    first_lines,
    number,
    read_text,
)
from gradhealth.logs.series import LogWarning, RunLog, classify

_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:[|+]\s*:?-+:?\s*)+\|?\s*$")
#: a grid table's border (tabulate's "grid", PrettyTable, Turi Create's progress tables): +----+----+
_BORDER = re.compile(r"^\s*\+(?:[-=:]+\+)+\s*$")
_PLACEHOLDERS = frozenset({"", "-", "--", "—", "n/a", "na", "none", "null", "no log", "no_log"})
_STEP = ("step", "steps", "global step", "global_step", "iteration", "iterations", "iter", "iters")
_EPOCH = ("epoch", "epochs")
#: The documents whose refusal says what was looked for in them (:meth:`MarkdownReader.why_not`)
_DOCUMENTS = (".md", ".markdown", ".rst")


def _cells(line: str) -> list[str] | None:
    """The cells of a table row (``| a | b |``), None for a line that is not one."""
    text = line.strip()
    if "|" not in text:
        return None
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|"):
        text = text[:-1]
    return [c.strip() for c in text.split("|")]


def _tables(lines: list[str]) -> list[tuple[int, list[str], list[tuple[int, list[str]]]]]:
    """Every table of ``lines``: (the header's line number, its cells, [(line number, cells)])."""
    found = []
    i = 0
    while i + 1 < len(lines):
        header = _cells(lines[i])
        if header is None or not (_SEPARATOR.match(lines[i + 1]) or _BORDER.match(lines[i + 1])):
            i += 1
            continue
        rows = []
        j = i + 2
        while j < len(lines):
            if _BORDER.match(lines[j]):
                j += 1  # a grid's rule between rows, or its last
                continue
            if (cells := _cells(lines[j])) is None:
                break
            rows.append((j + 1, cells))
            j += 1
        found.append((i + 1, header, rows))
        i = j
    return found


def _names_a_loss(header: list[str]) -> bool:
    """A table of training results: a loss column, and a step or epoch column to read it by (a
    README's table comparing models' losses has no step: it is not a run)."""
    low = [h.lower() for h in header]
    return (any(classify(h)[0] in ("loss", "val_loss") or "loss" in h for h in low)
            and any(h in _STEP or h in _EPOCH for h in low))


def _value(cell: str) -> float | None:
    low = cell.strip().lower()
    if low in _PLACEHOLDERS:
        return None
    return number(low[:-1].strip() if low.endswith("%") else low)


class MarkdownReader:
    name = "markdown"
    description = ("Markdown tables of training results (the Hugging Face model card's 'Training "
                   "results': | Training Loss | Epoch | Step | Validation Loss |), and grid tables "
                   "(+----+ borders: Turi Create's progress, tabulate's and PrettyTable's)")

    def sniff(self, filename: str, head: bytes) -> float:
        lines = first_lines(head, 400)
        for _, header, rows in _tables(lines):
            if _names_a_loss(header) and any(_value(c) is not None for _, r in rows for c in r):
                return 0.8
        return 0.0

    def why_not(self, filename: str, head: bytes) -> str | None:
        """Why a document (``.md``, ``.markdown``, ``.rst``) whose head :meth:`sniff` does not take
        is not read as a table of results; None for other files."""
        if not filename.lower().endswith(_DOCUMENTS):
            return None
        tables = _tables(first_lines(head, 400))
        if not tables and cut_first_line(head):
            return None  # the head ends inside its first line (a table's header?): the text reader says so
        if not tables:
            return "it has no Markdown table (a header row, then a row of dashes)"
        return (f"its {len(tables)} Markdown table(s) name no loss beside a step or an epoch column, or hold no "
                "number (a comparison of results, not a run)")

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        name = path.name
        tables = [t for t in _tables(read_text(path, limits).splitlines()) if _names_a_loss(t[1])]
        if not tables:
            raise LogError(f"{name}: no Markdown table with a loss column and a step or epoch column "
                           "(a header row naming them, then a row of dashes)")
        (at, header, rows), *others = tables
        warnings = [LogWarning("skipped_values", f"{name}: the table at line {line} is left out; "
                               f"the first table with a loss (line {at}) is read", where=f"line {line}")
                    for line, _, _ in others]
        low = [h.lower() for h in header]
        step_col = next((i for i, h in enumerate(low) if h in _STEP), None)
        epoch_col = next((i for i, h in enumerate(low) if h in _EPOCH), None)
        by = step_col if step_col is not None else epoch_col  # one of them: _names_a_loss
        points = Points(name, limits)
        texts: dict[int, tuple[int, str]] = {}  # column -> the first text cell (line, text)
        for line, cells in rows:
            if len(cells) != len(header):
                raise LogError(f"{name} line {line}: {len(cells)} cells where the header at line "
                               f"{at} has {len(header)}", position=(line, None))
            if by is None or (at_step := _value(cells[by])) is None:
                continue  # a row without its step (a summary row)
            if (why := bad_step(at_step, cells[by], header[by])) is not None:
                # a step no point can be placed at (1e400, 20 digits): refused naming the row, as a
                # CSV's is (errsweep7 #5)
                raise LogError(f"{name} line {line}, {why}", position=(line, None), field=header[by])
            step: float = at_step
            for col, cell in enumerate(cells):
                if col in (step_col, epoch_col) or not header[col]:
                    continue
                v = _value(cell)
                if v is None:
                    if cell.strip().lower() not in _PLACEHOLDERS:
                        texts.setdefault(col, (line, cell))
                    continue
                points.add(header[col], step, v)
        for col, (line, cell) in texts.items():
            warnings.append(LogWarning("skipped_values", f"{name} line {line}, column "
                                       f"'{header[col]}': {cell!r} is not a number; such cells are "
                                       "left out", where=f"line {line}"))
        if points.count == 0:
            raise LogError(f"{name}: the table at line {at} has no number in it")
        unit = "step" if step_col is not None or epoch_col is None else "epoch"
        return RunLog(format=self.name, source=name, series=points.build(step_unit=unit),
                      warnings=warnings)


READER = MarkdownReader()
