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
row's, a new run starts (a resume whose epochs go on from the last row's is the same run). A counter
that stays or goes back on more rows than it rises on (stuck at 0, each epoch on several rows, a
countdown) starts no runs: the file is one run read in its row order, each row one epoch after the
row before, with a ``step_order`` note (runs of one row each could not be judged). Every
run is read and judged on its own, as a folder's runs are: its series are ``run<k>/<name>`` (k
counts the runs from the file's start) and one ``several_runs`` note says how many runs the file
holds and each one's lines and epochs, e.g. ``run1 (lines 2-134, epoch 0-132)``. The last
:data:`_MAX_RUNS` runs are read at most (the note says how many earlier ones are not). An earlier
run with a row that cannot be read (text in a number column) is left out with a ``skipped_runs``
note naming the line; in the last run (the one the file ends with) that row is an error, as in a
file of one run. Lines between two runs that hold no row of either (a repeated header, a row cut
off by the crash that ended a run) are passed over. A row repeating the header (files
concatenated, or appended to with pandas' ``to_csv(mode="a")``) is skipped with a ``skipped_line``
warning; it starts no run by itself. The header is the file's first row for every run: CSVLogger
never writes another.

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
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    Conflicts,
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
from gradhealth.logs.series import (
    LogWarning,
    RunLog,
    classify,
    gan_part,
    parse_number,
    several_runs,
)

_INDEX = ("", "Unnamed: 0")
_NAME = re.compile(r"[A-Za-z_][\w./-]*")
_LOSSY = ("loss", "val_loss")
#: A loss of a part in a column's name, as a word ("Gen Loss", "kl_losses"; not "lossless")
_PART_LOSS = re.compile(r"(?:^|[^a-z])loss(?:es)?(?![a-z])", re.IGNORECASE)
# A column name's words: letter case, spaces, underscores and hyphens aside ("Epoch", "EPOCH", " epoch_").
_SEPARATORS = re.compile(r"[\s_-]+")
# A JSON object whose first value is a list (optionally inside "history"), with a loss list somewhere.
_JSON_HISTORY = re.compile(rb'^\{\s*(?:"history"\s*:\s*\{\s*)?"(?:[^"\\]|\\.)*"\s*:\s*\[')
_JSON_LOSS = re.compile(rb'"(?:\w*[_/])?loss"\s*:\s*\[\s*(?:-?[\d.]|NaN|Infinity|null|\])')


class KerasReader:
    name = "keras"
    description = ("Keras CSVLogger / History CSV (one row per epoch: epoch, loss, val_loss, lr...); also other "
                   "tools' per-epoch tables: Ultralytics YOLO results.csv (space-padded columns), fastai's and "
                   "tsai's tab-separated tables, json.dump(history.history) files")

    def sniff(self, filename: str, head: bytes) -> float:
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"{"):
            if b'"log_history"' in head or not _JSON_LOSS.search(head):
                return 0.0
            try:
                obj = _unwrap(loads(start.decode("utf-8"), strict=False))
            except (ValueError, UnicodeDecodeError):      # longer than the head: the start must do
                return 0.6 if _JSON_HISTORY.match(start) else 0.0
            if not isinstance(obj, dict) or _loss_key(obj) is None:
                return 0.0
            return 0.8 if all(isinstance(v, list) for v in obj.values()) else 0.5
        header = csv_header(head)
        if header is None or {"step", "_step", "Step"} & set(header):
            return 0.0
        epoch = _epoch_column(header)
        if header[0] == "epoch":
            return 0.85
        # a loss column by its role, not its exact name: "Cross Entropy Loss", "train loss" (logsweep59's
        # DeepCubeA metrics.csv: "Epoch,Target Cost,Squared Loss,Cross Entropy Loss", refused by all)
        # and a loss of a part (a GAN player's "Gen Loss", "Disc Loss", "D Loss": logsweep91 wavegan_d_dominant)
        has_loss = any(c in _LOSSY or c.startswith("val_") or classify(c)[0] in _LOSSY or _PART_LOSS.search(c)
                       or gan_part(c) is not None for c in header)
        if header[0] in _INDEX and has_loss:
            return 0.6
        if epoch is not None and has_loss:
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
        step = _epoch_column(header) or next((c for c in _INDEX if c in header), None)
        runs = _runs(path, limits, step, sep) if step is not None else []
        if step is not None and _stalled(runs):
            # a row per batch, each with its epoch (a hand-written loop's "epoch,batch,loss", a GAN
            # tutorial's "Epoch,Batch,Gen Loss,Disc Loss"): each row placed within its epoch, as the
            # text reader places "ep: 0, batch: 160" lines (logsweep91 wavegan_d_dominant)
            return (_read_within_epochs(path, limits, step, header, sep)
                    or _read_by_row(path, limits, step, sep, runs))
        if len(runs) > 1 and step is not None:
            return _read_runs(path, limits, step, sep, runs)
        points, warnings, _ = read_wide_csv(
            path, limits, step_column=step, fmt=self.name,
            skip=lambda c: c in _INDEX, skip_repeated_header=True, sep=sep)
        return RunLog(format=self.name, source=path.name, series=points.build(step_unit="epoch"),
                      warnings=warnings)


def _epoch_column(header: list[str]) -> str | None:
    """The header's epoch column: ``epoch`` itself, else the first named so in any letter case and
    with spaces, underscores or hyphens around it (``Epoch``, ``EPOCH``, ``epoch_``); None if none."""
    if "epoch" in header:
        return "epoch"
    return next((c for c in header if _SEPARATORS.sub("_", c.strip().lower()).strip("_") == "epoch"), None)


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
    lengths: dict[int, list[str]] = {}
    for key, values in obj.items():
        if isinstance(values, list):
            lengths.setdefault(len(values), []).append(key)
    # lists of different lengths in a pure history: each read over its own epochs (two models'
    # histories merged with prefixes, heads stopped early at different epochs)
    uneven = pure and len(lengths) > 1
    runs = _model_prefixes(lengths) if uneven else None
    points = Points(name, limits)
    skipped: list[str] = []
    for key, values in obj.items():
        if not isinstance(values, list):
            skipped.append(key)
            continue
        if len(values) != epochs and not uneven:
            skipped.append(key)
            continue
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
            shown = key
            if runs is not None:
                prefix = runs[len(values)]
                shown = f"{prefix.rstrip(_PREFIX_ENDS)}/{key[len(prefix):]}"
            for i, value in found:
                points.add(shown, float(i), value)
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
    names: list[str] = []
    if uneven:
        counts = "; ".join(f"{n} in {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                           for n, keys in lengths.items())
        if runs is not None:
            names = [runs[n].rstrip(_PREFIX_ENDS) for n in lengths]
            warnings.append(several_runs(name, f"the histories of {len(names)} models, told apart by their "
                                         f"keys' prefixes and lengths (values: {counts})", names))
        else:
            warnings.append(LogWarning(
                "uneven_lengths", f"{name}: the lists have different lengths (values: {counts}; {first!r} "
                f"has {epochs}); each is read over its own epochs from 0"))
    return RunLog(format="keras", source=name, series=points.build(step_unit="epoch"),
                  warnings=warnings, runs=names)


_PREFIX_ENDS = "_/.- "


def _model_prefixes(lengths: dict[int, list[str]]) -> dict[int, str] | None:
    """Each list length's prefix where a history of lists of different lengths is several models'
    histories merged (``reg_loss``, ``reg_val_loss`` for 30 epochs, ``cls_loss``, ``cls_accuracy``
    for 19): every key of one length starts with one prefix ending in a separator, and the lengths'
    prefixes differ and none starts another. None otherwise (the lists are then one run's)."""
    out: dict[int, str] = {}
    for n, keys in lengths.items():
        common = os.path.commonprefix(keys)
        cut = max(common.rfind(c) for c in _PREFIX_ENDS) + 1
        prefix = common[:cut]
        if not prefix.rstrip(_PREFIX_ENDS) or any(len(k) == len(prefix) for k in keys):
            return None
        out[n] = prefix
    prefixes = list(out.values())
    if any(a != b and b.startswith(a) for a in prefixes for b in prefixes) or len(set(prefixes)) < len(prefixes):
        return None
    return out


#: Appended runs read and judged at most: the last ones (a file that restarts its epochs on every
#: row is not a file of runs to list one by one); as many as the text reader's trials.
_MAX_RUNS = 50


class _Run:
    """Consecutive data rows whose step rises: lines ``first_line`` to ``last_line``; ``start`` is
    the physical line its first row begins on (``first_line`` is the line that row ends on), and
    ``header`` the line the file's header ends on."""

    def __init__(self, line: int, step: float, start: int, header: int) -> None:
        self.first_line = self.last_line = line
        self.first_step = self.last_step = step
        self.start, self.header = start, header
        self.rows = 1


def _runs(path: Path, limits: ReadLimits, step_column: str, sep: str = ",") -> list[_Run]:
    """The runs appended one after another in the file: a new one starts at a row whose step is at
    or below the previous row's. Rows the reader will refuse or skip (a repeated header, a wrong
    column count, a step that is not a finite number) are passed over here; the reader reports
    them when they are in a run it reads."""
    runs: list[_Run] = []
    header: list[str] | None = None
    header_line = previous = 0
    idx = -1
    with CsvRows(path, limits, sep=sep) as rows:
        for lineno, row in rows:
            if row is None:
                break
            before, previous = previous, lineno
            cells = [c.strip() for c in row]
            if header is None:
                header, header_line = cells, lineno
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
                runs.append(_Run(lineno, step, before + 1, header_line))
    return runs


def _stalled(runs: list[_Run]) -> bool:
    """Whether the counter stays or goes back on more rows than it rises on: a counter stuck at one
    value (0 on every row), one that repeats each value (a row per batch, each with its epoch) or
    counts down. Such a file is not runs appended one after another (most would be one row, too
    short to judge, and a loss rising over the whole file would be judged healthy): it is one run.
    Appended CSVLogger runs restart after advancing, so their epochs rise on most rows."""
    restarts = len(runs) - 1
    rises = sum(r.rows - 1 for r in runs)
    return restarts > rises


def _read_by_row(path: Path, limits: ReadLimits, step: str, sep: str, runs: list[_Run]) -> RunLog:
    """A file whose counter does not advance (:func:`_stalled`), read as one run in its row order,
    each row one position after the one before, with a ``step_order`` note saying so."""
    name = path.name
    unit = "index" if step in _INDEX else "epoch"
    points, warnings, _ = read_wide_csv(
        path, limits, step_column=None, fmt="keras", skip=lambda c: c in _INDEX or c == step,
        skip_repeated_header=True, sep=sep)
    rows = sum(r.rows for r in runs)
    first, second = runs[0], runs[1]
    note = LogWarning(
        "step_order",
        f"{name}: the {unit} does not rise from one row to the next on {len(runs) - 1:,} of {rows - 1:,} rows "
        f"(first at line {second.first_line}: {unit} {first.last_step:g} then {second.first_step:g}), so these "
        "are not runs appended one after another: read as one run in the file's row order, the order its "
        f"lines were written, each row one {unit} after the row before ({unit} 0 at line {first.first_line})",
        where=f"line {second.first_line}")
    return RunLog(format="keras", source=name, series=points.build(step_unit="epoch"),
                  warnings=[note, *warnings])


#: A column counting the batches within each epoch, by its words (letter case, spaces, underscores
#: and hyphens aside): ``Batch``, ``batch_idx``, ``minibatch``, ``batch no``
_BATCH = re.compile(r"(?:mini_?)?batch(?:_?(?:idx|index|id|num|number|no|nr))?")


def _batch_column(header: list[str], epoch: str) -> str | None:
    """The header's column counting batches within the epoch (:data:`_BATCH`), else None."""
    return next((c for c in header if c != epoch
                 and _BATCH.fullmatch(_SEPARATORS.sub("_", c.strip().lower()).strip("_"))), None)


def _read_within_epochs(path: Path, limits: ReadLimits, step: str, header: list[str], sep: str) -> RunLog | None:
    """A table with a row per batch, each row naming its epoch (which never goes back, and repeats
    over the rows of one epoch), read with each row at its place within its epoch, the fractional
    epoch the text reader gives a line placed within its epoch: with a column counting the batches
    within it (``epoch,batch,loss``), ``e + b / length``, the length the largest batch plus the usual
    step between batches (``0..19``: 20), and findings name the place as the table does (``epoch 3,
    batch 7``); without one, the k-th of n rows of epoch e at ``e + k (e' - e) / n``, e' the next
    epoch (the last epoch takes the usual step between epochs). None where the rows do not fit that
    (an epoch that goes back, a batch that does not rise within its epoch, a cell that is no
    number): the caller reads the rows in their order."""
    if step in _INDEX:
        return None
    batch = _batch_column(header, step)
    names = [c.strip() for c in header]
    if step not in names or (batch is not None and batch not in names):
        return None
    ie = names.index(step)
    ib = names.index(batch) if batch is not None else -1
    places: list[tuple[float, float]] = []
    with CsvRows(path, limits, sep=sep) as rows:
        first = True
        for _, row in rows:
            if row is None:
                break
            cells = [c.strip() for c in row]
            if first:
                first = False
                continue
            if cells == names:
                continue
            if len(cells) != len(names):
                return None
            try:
                e = parse_number(cells[ie])
                b = parse_number(cells[ib]) if ib >= 0 else 0.0
            except ValueError:
                return None
            if not (math.isfinite(e) and math.isfinite(b)) or b < 0 or (places and e < places[-1][0]):
                return None
            places.append((e, b))
    epochs = sorted({e for e, _ in places})
    if len(epochs) < 2:
        return None
    epoch_gaps = [b - a for a, b in zip(epochs, epochs[1:], strict=False)]
    words: dict[float, str] | None = None
    if batch is not None:
        counts = sorted({b for _, b in places})
        gaps = [b - a for a, b in zip(counts, counts[1:], strict=False)]
        length = counts[-1] + (sorted(gaps)[len(gaps) // 2] if gaps else 1.0)
        at = [round(e + b / length, 9) for e, b in places]
        word = _SEPARATORS.sub(" ", batch.strip().lower())
        words = {x: f"epoch {e:g}, {word} {b:g}" for x, (e, b) in zip(at, places, strict=True)}
        how = (f"each row at its place within its epoch by its {batch!r} column, epoch + {batch} / {length:g} "
               f"({batch} {counts[0]:g}-{counts[-1]:g})")
    else:
        nxt = dict(zip(epochs, epochs[1:], strict=False))
        usual = sorted(epoch_gaps)[len(epoch_gaps) // 2]
        size: dict[float, int] = {}
        for e, _ in places:
            size[e] = size.get(e, 0) + 1
        at, k, previous = [], 0, None
        for e, _ in places:
            k = k + 1 if e == previous else 0
            previous = e
            at.append(round(e + k * (nxt.get(e, e + usual) - e) / size[e], 9))
        how = "the k-th of an epoch's n rows at epoch + k / n"
    if any(b <= a for a, b in zip(at, at[1:], strict=False)):
        return None
    points, warnings, _ = read_wide_csv(
        path, limits, step_column=None, fmt="keras", skip=lambda c: c in _INDEX or c in (step, batch),
        skip_repeated_header=True, sep=sep)
    if not points.remap(at):
        return None
    note = LogWarning(
        "step_order",
        f"{path.name}: the {step!r} column repeats over several rows ({len(places):,} rows in {len(epochs):,} "
        f"epochs, {step} {epochs[0]:g}-{epochs[-1]:g}): a row per batch, read as fractional epochs, {how}")
    series = points.build(step_unit="epoch")
    if words is not None:
        for s in series:
            if all(float(x) in words for x in s.steps):
                s.position_words = words
    return RunLog(format="keras", source=path.name, series=series, warnings=[note, *warnings])


def _read_runs(path: Path, limits: ReadLimits, step: str, sep: str, runs: list[_Run]) -> RunLog:
    """A file of several runs appended one after another, each read as a run of its own (series
    ``run<k>/<name>``, judged one by one as a folder's runs are), with a ``several_runs`` note.

    The last run is read from the file itself (from its first line on, as a file of one run); each
    earlier one from a copy holding the file's header lines and that run's lines only, read by the
    same reader, its messages' line numbers put back to the file's. An earlier run that cannot be
    read is left out with a note; when no earlier run can be, the last one is the log."""
    name = path.name
    unit = "index" if step in _INDEX else "epoch"
    skipped = max(0, len(runs) - _MAX_RUNS)
    kept = runs[skipped:]
    notes: list[LogWarning] = []
    logs: list[tuple[int, _Run, RunLog]] = []
    with tempfile.TemporaryDirectory(prefix="gh-keras-") as tmp:
        copies = _copy_runs(path, limits, kept[:-1], Path(tmp))
        for k, (run, copy) in enumerate(zip(kept[:-1], copies, strict=True), start=skipped + 1):
            try:
                points, warnings, _ = read_wide_csv(copy, limits, step_column=step, fmt="keras",
                                                    skip=lambda c: c in _INDEX, skip_repeated_header=True,
                                                    sep=sep)
            except LogError as e:
                notes.append(LogWarning(
                    "skipped_runs", f"{name}: run{k} (lines {run.first_line}-{run.last_line}) is not read: "
                    f"{_file_lines(e.detail, run)}", where=f"line {run.first_line}"))
                continue
            for w in warnings:
                w.message = _file_lines(w.message, run)
                w.where = _file_lines(w.where, run) if w.where else w.where
            logs.append((k, run, RunLog(format="keras", source=name, series=points.build(step_unit="epoch"),
                                        warnings=warnings)))
    last = kept[-1]
    points, warnings, _ = read_wide_csv(path, limits, step_column=step, fmt="keras",
                                        skip=lambda c: c in _INDEX, skip_repeated_header=True,
                                        from_line=last.first_line, sep=sep)
    final = RunLog(format="keras", source=name, series=points.build(step_unit="epoch"), warnings=warnings)
    if not logs:   # no earlier run could be read: the last one is the log, with the notes why
        final.warnings[:0] = notes
        return final
    logs.append((len(runs), last, final))
    shown = [f"run{k} (lines {r.first_line}-{r.last_line}, {unit} {r.first_step:g}-{r.last_step:g})"
             for k, r, _ in logs]
    head = several_runs(
        name, f"{len(runs)} runs appended one after another (the {unit} starts again)", shown,
        tail=f"; the first {skipped} are not read" if skipped else "")
    merged = RunLog(format="keras", source=name, warnings=[head, *notes], runs=[f"run{k}" for k, _, _ in logs])
    seen = {w.message for w in merged.warnings}
    for k, _, log in logs:
        merged.series += [replace(s, name=f"run{k}/{s.name}") for s in log.series]
        for w in log.warnings:  # the same note from every run (a text column) once
            if w.message not in seen:
                seen.add(w.message)
                merged.warnings.append(w)
    return merged


def _copy_runs(path: Path, limits: ReadLimits, runs: list[_Run], folder: Path) -> list[Path]:
    """For each of ``runs``, a copy of the file (in its own folder under ``folder``, under the
    file's name, so messages name the file) holding the header's lines and the run's lines
    ``start`` to ``last_line``; one pass over the file, writing no line twice but the header's."""
    copies = []
    for i in range(len(runs)):
        (folder / str(i)).mkdir()
        copies.append(folder / str(i) / path.name)
    outs = [c.open("wb") for c in copies]
    # a git merge conflict's marker lines and the side not read are blank lines in the copies (which
    # a table's reader skips), so that a run copied from inside a conflict reads as the file reads
    conflicts = Conflicts()
    try:
        with open_log(path, limits) as f:
            k = 0
            for lineno, raw in enumerate(f, start=1):
                if not conflicts.keep(lineno, raw.decode("utf-8", "replace")):
                    raw = b"\n"
                if lineno <= runs[0].header:
                    for out in outs:
                        out.write(raw)
                    continue
                while k < len(runs) and lineno > runs[k].last_line:
                    k += 1
                if k == len(runs):
                    break
                if lineno >= runs[k].start:
                    outs[k].write(raw)
    finally:
        for out in outs:
            out.close()
    return copies


_LINE = re.compile(r"\bline (\d+)")


def _file_lines(text: str, run: _Run) -> str:
    """``text`` about a copy of ``run`` (:func:`_copy_runs`) with its line numbers the file's: a line
    after the header's is the run's ``start`` plus how far after the header it is."""
    def shift(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return m.group(0) if n <= run.header else f"line {n + run.start - run.header - 1}"

    return _LINE.sub(shift, text)


READER = KerasReader()
