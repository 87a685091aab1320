"""Jupyter notebooks (``.ipynb``): the training consoles in their code cells' outputs.

A notebook is JSON: its cells, each code cell's ``outputs``. Its text, read as a console, is JSON's
(``"execution_count": 12``, ``"nbformat": 4`` read as series), so the notebook is parsed and only what
the cells printed is read: each code cell's ``stream`` outputs (stdout and stderr ``text``) and the
``text/plain`` of its ``execute_result`` outputs (``pyout`` in nbformat 3), in the cell's order, are one
console, read by the text reader. Nothing is run: the cells' sources are never read, let alone executed.

Each cell whose output holds a training log is a run of its own, judged on its own, its series named
``cell<i>/<name>`` (``i``: the cell's index in the notebook, from 0, as ``cells[i]`` in its JSON), so a
finding names the cell its series came from; a cell whose console the text reader splits into several
runs keeps them (``cell<i>/run<k>/<name>``). The reader's notes name the cell too (``explode.ipynb [cell
3] line 5``: the line of that cell's output). A notebook none of whose cells printed a training log is
refused saying that it is a notebook and how many code cells with output it has. Where some cells
printed a loss or a gradient norm, the others (a version string, a search's best parameters) are no run.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

from gradhealth.errors import LogError, UploadTooLarge
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.text import READER as TEXT
from gradhealth.logs.readers.textio import read_text
from gradhealth.logs.series import LogWarning, RunLog, several_runs

#: A notebook's JSON as nbformat 4 writes it (``{"cells": [``) where the name does not say .ipynb
_CELLS_FIRST = re.compile(rb'^\s*\{\s*"cells"\s*:\s*\[')
#: The roles that make a cell's output a training run's console
_TRAINED = frozenset({"loss", "val_loss", "grad_norm", "clipped_grad_norm", "layer_grad_norm"})
#: The most cells' outputs read (each is one read of the text reader)
MAX_CELLS = 2_000


def _text(value: object) -> str:
    """A notebook's multi-line string: one string, or a list of lines (each ending in its newline)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


def cell_outputs(nb: dict) -> list[tuple[int, str]]:
    """``(index, text)`` of each code cell with printed output: its stream outputs and its
    ``execute_result``'s ``text/plain``, in order. ``index`` is the cell's place in the notebook (nbformat
    3's worksheets counted one after another)."""
    cells = nb.get("cells")
    if not isinstance(cells, list):  # nbformat 3: worksheets of cells
        cells = [c for w in nb.get("worksheets") or [] if isinstance(w, dict)
                 for c in (w.get("cells") or [])]
    found = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        parts = []
        for out in cell.get("outputs") or []:
            if not isinstance(out, dict):
                continue
            kind = out.get("output_type")
            if kind == "stream":
                parts.append(_text(out.get("text")))
            elif kind == "execute_result":
                data = out.get("data")
                parts.append(_text(data.get("text/plain")) if isinstance(data, dict) else "")
            elif kind == "pyout":
                parts.append(_text(out.get("text")))
        text = "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)
        if text.strip():
            found.append((i, text))
    return found


class NotebookReader:
    name = "notebook"
    description = ("Jupyter notebooks (.ipynb): each code cell's printed output (stdout/stderr streams and "
                   "text results) read as a console, one run per cell; no cell is run")

    def sniff(self, filename: str, head: bytes) -> float:
        if filename.lower().endswith(".ipynb") and head.lstrip().startswith(b"{"):
            return 0.99
        return 0.9 if _CELLS_FIRST.match(head) else 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        name = path.name
        try:
            nb = json.loads(read_text(path, limits))
        except json.JSONDecodeError as e:
            raise LogError(f"{name} line {e.lineno}: not a Jupyter notebook's JSON ({e.msg})",
                           position=(e.lineno, e.colno)) from None
        except RecursionError:
            raise LogError(f"{name}: not a Jupyter notebook's JSON (nested too deeply)") from None
        if not isinstance(nb, dict) or not (isinstance(nb.get("cells"), list) or "worksheets" in nb):
            raise LogError(f"{name}: JSON with no notebook cells (a Jupyter notebook holds a 'cells' list)")
        outputs = cell_outputs(nb)
        warnings: list[LogWarning] = []
        if len(outputs) > MAX_CELLS:
            warnings.append(LogWarning("skipped_values", f"{name}: {len(outputs)} code cells with output; the "
                                       f"first {MAX_CELLS} are read"))
            outputs = outputs[:MAX_CELLS]
        runs: list[tuple[str, RunLog]] = []
        points, series = 0, 0
        with tempfile.TemporaryDirectory(prefix="gradhealth-nb-") as tmp:
            for i, text in outputs:
                cell = Path(tmp) / f"{name} [cell {i}]"
                cell.write_text(text, encoding="utf-8")
                # what is left of the limits for this cell: the notebook's values and series all told
                left = replace(limits, max_points=limits.max_points - points, max_series=limits.max_series - series)
                try:
                    log = TEXT.read(cell, left)
                except UploadTooLarge:
                    raise
                except LogError:
                    continue  # a cell that printed no training log (a shape, a summary, a plot's repr)
                finally:
                    cell.unlink()
                if not log.series:
                    continue
                points += sum(len(s) for s in log.series)
                series += len(log.series)
                runs.append((f"cell{i}", log))
        # the cells that printed a training run: a loss or a gradient norm among their values, not a version
        # string, a grid search's best parameters or a metric printed once (where none did, every cell with
        # values is read, for the checks to say what is missing)
        runs = [r for r in runs if any(s.role in _TRAINED for s in r[1].series)] or runs
        if not runs:
            raise LogError(f"{name} is a Jupyter notebook, and none of its {len(outputs)} code cell(s) with printed "
                           "output holds a training log (lines naming a loss, step or epoch); where a cell's output "
                           "shows training, copy that output into a .txt file and check that")
        merged = RunLog(format=self.name, source=name, warnings=warnings,
                        traceback=runs[-1][1].traceback, after_training=runs[-1][1].after_training)
        for prefix, log in runs:
            merged.series += [replace(s, name=f"{prefix}/{s.name}") for s in log.series]
            merged.runs += [f"{prefix}/{r}" for r in log.runs] if log.runs else [prefix]
            merged.warnings += log.warnings
            merged.params = {**log.params, **merged.params}
        if len(runs) > 1:
            merged.warnings.insert(0, several_runs(name, f"{len(runs)} code cells whose output holds a training "
                                                   "log", [p for p, _ in runs]))
        return merged


READER = NotebookReader()
