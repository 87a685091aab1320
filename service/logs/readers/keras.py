"""Keras ``CSVLogger`` files and Keras ``History`` saved as CSV: one row per epoch.

``tf.keras.callbacks.CSVLogger`` writes a header ``epoch,<metric>,...,val_<metric>,...`` (e.g.
``epoch,accuracy,loss,lr,val_accuracy,val_loss``) and one row per epoch; a ``History`` saved with
``pandas.DataFrame(history.history).to_csv(...)`` has an unnamed index column first instead of
``epoch``. Every other column becomes a series against the epoch (or the index), with
``step_unit="epoch"``. ``loss``/``val_loss``/``lr``/``learning_rate`` get their roles; other columns
(accuracy, dice_coef...) are metrics. Keras writes non-finite values as ``nan``/``inf``.

Several runs in one file: ``CSVLogger(append=True)`` (and a script re-run with it) opens the file
for appending and writes the header only when the file is empty, so a later run's rows follow the
earlier ones with no header between them, its epochs starting again (at 0, or at
``initial_epoch``). Where the epoch (or the index) goes back to a value at or below the previous
row's, a new run starts; only the last run is read (the one the file ends with, the run being
looked at now), and one ``skipped_runs`` warning says how many earlier runs, which lines and how
many rows were left out. A row repeating the header (files concatenated, or appended to with
pandas' ``to_csv(mode="a")``) is skipped with a ``skipped_line`` warning; it starts no run by
itself. The header is the file's first row for every run: CSVLogger never writes another.

**History as JSON** (``json.dump(history.history, f)``, e.g. ``training_history.json``): one object
of per-epoch lists, ``{"loss": [...], "val_loss": [...], "accuracy": [...]}`` (or the same object
under a ``"history"`` key). Epoch ``i`` is the list's ``i``-th value, from 0 as the CSV's ``epoch``
column (``step_unit="epoch"``); ``null`` means "not logged" and ``NaN``/``Infinity`` are read as
non-finite values. When every value of the object is a list, they are all per-epoch metrics: a list
of another length than the first, or holding something other than a number, is an error naming the
key. A hand-written history that also holds other keys (a timestamp, the class names, phase starts)
is read from its lists as long as the loss list (``loss``, else ``train_loss``, else the first key
ending in ``loss``); the other keys are left out with a ``skipped_values`` warning naming them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    CsvRows,
    Points,
    csv_header,
    delimiter,
    loads,
    number,
    open_log,
    read_text,
    read_wide_csv,
)
from gradhealth.logs.series import LogWarning, RunLog, parse_number

_INDEX = ("", "Unnamed: 0")
_NAME = re.compile(r"[A-Za-z_][\w./-]*")
_LOSSY = ("loss", "val_loss")
# A JSON object whose first value is a list (optionally inside "history"), with a loss list somewhere.
_JSON_HISTORY = re.compile(rb'^\{\s*(?:"history"\s*:\s*\{\s*)?"(?:[^"\\]|\\.)*"\s*:\s*\[')
_JSON_LOSS = re.compile(rb'"(?:\w*[_/])?loss"\s*:\s*\[\s*(?:-?[\d.]|NaN|Infinity|null|\])')


class KerasReader:
    name = "keras"
    description = "Keras CSVLogger / History CSV (one row per epoch: epoch, loss, val_loss, lr...)"

    def sniff(self, filename: str, head: bytes) -> float:
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"{"):
            if b'"log_history"' in head or not _JSON_LOSS.search(head):
                return 0.0
            try:
                obj = _unwrap(loads(start.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):      # longer than the head: the start must do
                return 0.6 if _JSON_HISTORY.match(start) else 0.0
            if not isinstance(obj, dict) or _loss_key(obj) is None:
                return 0.0
            return 0.8 if all(isinstance(v, list) for v in obj.values()) else 0.5
        header = csv_header(head)
        if header is None or {"step", "_step", "Step"} & set(header):
            return 0.0
        if header[0] == "epoch":
            return 0.85
        has_loss = any(c in _LOSSY or c.startswith("val_") for c in header)
        if header[0] in _INDEX and has_loss:
            return 0.6
        if "epoch" in header and has_loss:
            return 0.5
        if "loss" in header and all(_NAME.fullmatch(c) for c in header):
            return 0.4                       # History saved without index: metric columns only
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            head = f.read(64 * 1024)
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            return _read_json_history(path, limits)
        header = csv_header(head) or []
        sep = delimiter(head)  # CSVLogger(separator="\t"), fastai's and tsai's tab-separated tables
        step = "epoch" if "epoch" in header else next((c for c in _INDEX if c in header), None)
        runs = _runs(path, limits, step, sep) if step is not None else []
        points, warnings, _ = read_wide_csv(
            path, limits, step_column=step, fmt=self.name,
            skip=lambda c: c in _INDEX, skip_repeated_header=True,
            from_line=runs[-1].first_line if len(runs) > 1 else 0, sep=sep)
        if len(runs) > 1:
            warnings.insert(0, _skipped_runs(path.name, "epoch" if step == "epoch" else "index", runs))
        return RunLog(format=self.name, source=path.name, series=points.build(step_unit="epoch"),
                      warnings=warnings)


def _unwrap(obj: Any) -> Any:
    """The history object itself: ``obj["history"]`` when that is a dict, or the one dict of lists
    with a loss among the object's values when it has no loss list of its own (a report that
    keeps ``"training_history": {"loss": [...]}`` beside its model and dataset info)."""
    if not isinstance(obj, dict):
        return obj
    if isinstance(obj.get("history"), dict):
        return obj["history"]
    if _loss_key(obj) is None:
        inner = [v for v in obj.values() if isinstance(v, dict) and _loss_key(v) is not None]
        if len(inner) == 1:
            return inner[0]
    return obj


def _loss_key(obj: dict[str, Any]) -> str | None:
    """The key of the training-loss list: ``loss``, else ``train_loss``, else the first key ending in
    ``loss`` whose value is a list (None when there is none)."""
    lists = [k for k, v in obj.items() if isinstance(k, str) and isinstance(v, list)]
    for k in ("loss", "train_loss"):
        if k in lists:
            return k
    return next((k for k in lists if k.lower().endswith("loss")), None)


def _read_json_history(path: Path, limits: ReadLimits) -> RunLog:
    """A Keras ``History.history`` saved with ``json.dump``: one point per epoch, epochs from 0."""
    name = path.name
    text = read_text(path, limits)
    try:
        obj = _unwrap(loads(text))
    except ValueError as e:
        raise LogError(f"{name}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise LogError(f"{name}: expected one JSON object of per-epoch lists (a Keras history), "
                       f"got {type(obj).__name__}")
    loss = _loss_key(obj)
    if loss is None:
        raise LogError(f"{name}: no loss list (a Keras history has \"loss\": [one value per epoch])")
    pure = all(isinstance(v, list) for v in obj.values())
    epochs = len(obj[loss]) if not pure else len(next(iter(obj.values())))
    first = next(iter(obj)) if pure else loss
    points = Points(name, limits)
    skipped: list[str] = []
    for key, values in obj.items():
        if not isinstance(values, list):
            skipped.append(key)
            continue
        if len(values) != epochs:
            if not pure:
                skipped.append(key)
                continue
            raise LogError(f"{name}: {key!r} has {len(values)} values but {first!r} has {epochs}: "
                           "a Keras history has one value per epoch in every list")
        found: list[tuple[int, float]] = []
        for i, raw in enumerate(values):
            if raw is None:
                continue
            value = number(raw)
            if value is None:
                if not pure:
                    break
                raise LogError(f"{name}: {key!r} value {i} (epoch {i}) is {json.dumps(raw)[:40]}, "
                               "not a number")
            found.append((i, value))
        else:
            for i, value in found:
                points.add(key, float(i), value)
            continue
        skipped.append(key)
    warnings: list[LogWarning] = []
    if skipped:
        shown = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        warnings.append(LogWarning(
            "skipped_values", f"{name}: {len(skipped)} key(s) that are not lists of {epochs} numbers "
            f"(one per epoch, as {loss!r}) were left out: {shown}"))
    if points.count == 0:
        raise LogError(f"{name}: no values: the lists are empty")
    return RunLog(format="keras", source=name, series=points.build(step_unit="epoch"),
                  warnings=warnings)


class _Run:
    """Consecutive data rows whose step rises: lines ``first_line`` to ``last_line``."""

    def __init__(self, line: int, step: float) -> None:
        self.first_line = self.last_line = line
        self.first_step = self.last_step = step
        self.rows = 1


def _runs(path: Path, limits: ReadLimits, step_column: str, sep: str = ",") -> list[_Run]:
    """The runs appended one after another in the file: a new one starts at a row whose step is at
    or below the previous row's. Rows the reader will refuse or skip (a repeated header, a wrong
    column count, a step that is not a finite number) are passed over here; the reader reports
    them when they are in the run it reads."""
    runs: list[_Run] = []
    header: list[str] | None = None
    idx = -1
    with CsvRows(path, limits, sep=sep) as rows:
        for lineno, row in rows:
            if row is None:
                break
            cells = [c.strip() for c in row]
            if header is None:
                header = cells
                if step_column not in header:
                    return []
                idx = header.index(step_column)
                continue
            if len(cells) != len(header) or cells == header:
                continue
            try:
                step = parse_number(cells[idx])
            except ValueError:
                continue
            if not math.isfinite(step):
                continue
            if runs and step > runs[-1].last_step:
                run = runs[-1]
                run.last_line, run.last_step, run.rows = lineno, step, run.rows + 1
            else:
                runs.append(_Run(lineno, step))
    return runs


def _skipped_runs(name: str, unit: str, runs: list[_Run]) -> LogWarning:
    """The note for the earlier runs of a file appended to, which are left out."""
    last, before = runs[-1], runs[-2]
    earlier = runs[:-1]
    n = len(earlier)
    rows = sum(r.rows for r in earlier)
    return LogWarning(
        "skipped_runs",
        f"{name}: {len(runs)} runs appended one after another (the {unit} goes back from "
        f"{before.last_step:g} to {last.first_step:g} at line {last.first_line}); read the last run "
        f"(lines {last.first_line}-{last.last_line}, {unit} {last.first_step:g}-{last.last_step:g}) "
        f"and left out the earlier {'run' if n == 1 else f'{n} runs'} (lines {earlier[0].first_line}-"
        f"{before.last_line}, {rows} rows)",
        where=f"line {last.first_line}")


READER = KerasReader()
