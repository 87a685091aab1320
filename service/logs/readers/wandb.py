"""Weights & Biases run history, exported, and run summaries.

Read:

- **History as CSV**, e.g. ``run.history().to_csv(...)`` / ``scan_history`` dumps: columns
  ``_step``, ``_runtime``, ``_timestamp`` and one per logged key (``train/loss``,
  ``train/grad_norm``...), blank where a row did not log the key; a leading unnamed index column
  is ignored. Each key becomes a series against ``_step``, with ``_timestamp`` as wall time.
  Exports from the W&B web UI (``wandb_export_*.csv``: a ``Step`` column and
  ``<run name> - <key>`` columns with ``__MIN`` / ``__MAX`` companions) are read too: the
  ``__MIN``/``__MAX`` columns are dropped and, when all columns belong to one run, the
  ``<run name> - `` prefix is removed from the series names. An export of several runs is read as a
  folder of runs is: each run's series named ``<run>/<key>`` and each run judged on its own (a
  ``several_runs`` note). A chart with a custom x-axis is exported with that key (``epoch_id``...)
  as the first column instead of ``Step``: it is the step axis when its cells are numbers that never decrease (else the row
  index is, and the column is a series).
- Not read: the **runs table** export (the project's table, one row per *run*: ``Name``, ``State``,
  ``Notes``, ``User``, ``Tags``, ``Created``, ``Runtime``... and each run's final values). It holds
  no history, so it is refused with an error saying to export a run's history instead.
- **History as JSON Lines** (``wandb-history.jsonl`` of older run folders, or one JSON object per
  line from an export): the same keys per object; bare ``NaN``/``Infinity`` tokens are read as
  non-finite values.
- **Summary** (``wandb-summary.json``, one JSON object with the final value of each key): there
  is no history in it, so the RunLog has no series, the numeric final values go to
  ``RunLog.params`` as ``summary/<key>`` (e.g. ``summary/train/grad_norm``), and the warning
  ``summary_only`` says so.

Keys starting with ``_`` (``_step``, ``_runtime``, ``_timestamp``, ``_wandb``) are bookkeeping, not
series. Cells that are neither numbers nor histograms (strings, images, tables) are skipped.

Gradient histograms from ``wandb.watch(model, log="gradients")`` (keys ``gradients/<param>``;
``log="all"`` adds ``parameters/<param>``) appear in exports as JSON objects
``{"_type": "histogram", "values": [counts...], "bins": [edges...]}`` (or with ``packedBins``
``{"min", "size", "count"}``), in CSV also as their Python ``repr``. Each histogram becomes one
value, an **approximation** of the parameter's gradient (or weight) L2 norm from the histogram:
``sqrt(sum(count_i * mid_i**2))`` with ``mid_i`` the midpoint of bin i. It is exact only when
every value sits at its bin's midpoint; with W&B's default 64 bins it is usually within a few
percent, which is enough to see explosion, vanishing and spikes, not small drifts.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings as pywarnings
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gradhealth.errors import LogError
from gradhealth.logs.readers import wandb_datastore
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    CsvRows,
    Lines,
    Points,
    csv_header,
    first_lines,
    loads,
    number,
    open_log,
    read_text,
    read_wide_csv,
    truncated,
)
from gradhealth.logs.series import LogWarning, Role, RunLog, classify, parse_number, several_runs

_STEP_COLUMNS = ("_step", "Step", "step")
#: The training loop's own step, which the Hugging Face and Lightning integrations log with every
#: row and chart against (``define_metric``); W&B's ``_step`` only counts the rows logged.
_TRAINER_STEPS = ("train/global_step", "trainer/global_step")
_BOOKKEEPING = {"_step", "_runtime", "_timestamp", "_wandb"}
_UI_COLUMN = re.compile(r"^(?P<run>.+?) - (?P<key>.+)$")
#: The W&B runs table's own columns (one row per run); ``Name`` and ``State`` plus two of the rest.
_RUNS_TABLE = ("Notes", "User", "Tags", "Created", "Runtime", "Sweep", "ID")
_MAX_BINS = 100_000
_MAX_CELL = 4 * 2**20


def histogram_norm(obj: Any) -> float | None:
    """The L2 norm approximated from a W&B histogram object, None when ``obj`` is not one."""
    if not isinstance(obj, dict) or obj.get("_type") != "histogram":
        return None
    try:
        counts = np.asarray(obj.get("values"), dtype=np.float64)
        bins = obj.get("bins")
        packed = obj.get("packedBins")
        if bins is None and isinstance(packed, dict):
            k = int(packed["count"])
            if not 0 < k <= _MAX_BINS:
                return None
            edges = float(packed["min"]) + float(packed["size"]) * np.arange(k + 1)
        else:
            edges = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError, KeyError, OverflowError):
        return None
    if counts.ndim != 1 or edges.ndim != 1 or len(edges) != len(counts) + 1 or not len(counts):
        return None
    mids = (edges[:-1] + edges[1:]) / 2.0
    with np.errstate(all="ignore"):
        return float(np.sqrt(np.sum(counts * mids * mids)))     # NaN for negative (bad) counts


def _cell_histogram(text: str) -> Any:
    if not text.startswith("{") or len(text) > _MAX_CELL:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")          # e.g. invalid escape sequences in strings
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def wandb_role(key: str) -> tuple[Role | None, str | None]:
    for prefix, role in (("gradients/", "layer_grad_norm"), ("parameters/", "weight_norm")):
        if key.startswith(prefix) and len(key) > len(prefix):
            return role, key[len(prefix):]  # type: ignore[return-value]  # the prefixes' roles are Role literals
    return None, None


class WandbReader:
    name = "wandb"
    description = ("Weights & Biases run file (run-<id>.wandb), history export (CSV or JSON Lines: _step, "
                   "train/loss..., gradients/* histograms) or wandb-summary.json (final values only)")

    def sniff(self, filename: str, head: bytes) -> float:
        if wandb_datastore.is_datastore(head):
            return 0.99
        low = filename.lower()
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"{"):
            if b'"log_history"' in head:
                return 0.0
            if "wandb-summary" in low:
                return 0.95
            lines = first_lines(head, 1)
            try:
                obj = loads(lines[0], strict=False) if lines else None
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                return 0.9 if _BOOKKEEPING & obj.keys() else 0.0
            return 0.8 if any(f'"{k}"'.encode() in head for k in _BOOKKEEPING) else 0.0
        header = csv_header(head)
        if header is None:
            return 0.0
        if "_step" in header or low.startswith("wandb_export") or _runs_table(header):
            return 0.9
        if "_runtime" in header or "_timestamp" in header:
            return 0.85
        if header[0] == "Step" and any(_UI_COLUMN.match(c) for c in header[1:]):
            return 0.85
        if _custom_x(header) is not None:
            return 0.85
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            head = f.read(64 * 1024)
        if wandb_datastore.is_datastore(head):
            return self._read_datastore(path, limits)
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not start:
            raise LogError(f"{path.name}: the file is empty")
        if not start.startswith(b"{"):
            return self._read_csv(path, limits)
        low = path.name.lower()
        if "summary" in low:
            return self._read_summary(path, limits)
        if low.endswith(".jsonl") or "history" in low:
            return self._read_jsonl(path, limits)
        lines = first_lines(head, 2)
        try:
            one_line_object = bool(lines) and isinstance(loads(lines[0], strict=False), dict)
        except ValueError:
            one_line_object = False
        if one_line_object and len(lines) > 1 and lines[1].lstrip().startswith("{"):
            return self._read_jsonl(path, limits)
        return self._read_summary(path, limits)

    # --- summary -----------------------------------------------------------------------------------
    def _read_summary(self, path: Path, limits: ReadLimits) -> RunLog:
        text = read_text(path, limits)
        try:
            obj = loads(text)
        except json.JSONDecodeError as e:
            raise LogError(f"{path.name} line {e.lineno} column {e.colno}: not valid JSON ({e.msg})"
                           + ("; the file looks cut off" if e.pos >= len(text.rstrip()) else ""),
                           position=(e.lineno, e.colno)) from None
        except ValueError as e:
            raise LogError(f"{path.name}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise LogError(f"{path.name}: expected one JSON object (a W&B summary), got {type(obj).__name__}")
        params: dict[str, str] = {}
        for key, raw in obj.items():
            value = number(raw) if not isinstance(raw, str) else _nonfinite_text(raw)
            if value is None:
                value = histogram_norm(raw)
            if value is not None:
                params[f"summary/{key}"] = str(raw) if isinstance(raw, int) else repr(value)
        warning = LogWarning(
            "summary_only", f"{path.name} holds only the final value of each key (a W&B run summary), "
            "no history; export the run's history (CSV or JSON Lines) to see how training went")
        return RunLog(format=self.name, source=path.name, warnings=[warning], params=params)

    # --- history, JSON Lines -----------------------------------------------------------------------
    def _read_jsonl(self, path: Path, limits: ReadLimits) -> RunLog:
        # placed by the trainer's own step where every record has it, never going back (the
        # HF/Lightning integrations); else by W&B's row counter. A record that breaks that stops the
        # attempt at once, so a history is read whole once in the usual cases
        for trainer_step in (*_TRAINER_STEPS, None):
            try:
                return self._read_history(path, limits, trainer_step)
            except _NotSteppedBy:
                continue
        raise AssertionError("unreachable: the last attempt has no trainer step to break")

    def _read_history(self, path: Path, limits: ReadLimits, trainer_step: str | None) -> RunLog:
        """The history placed by ``trainer_step`` (:class:`_NotSteppedBy` where a record lacks it or it
        goes back: a run resumed from an earlier checkpoint logs steps again), or by ``_step``."""
        warnings: list[LogWarning] = []

        def records() -> Generator[dict[str, Any], None, None]:
            with open_log(path, limits) as f:
                lines = Lines(f, path.name)
                for text in lines:
                    if not text.strip():
                        continue
                    try:
                        obj = loads(text)
                        if not isinstance(obj, dict):
                            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                    except ValueError as e:
                        if lines.unterminated_last:
                            warnings.append(truncated(path.name, lines.lineno, "not JSON"))
                            break
                        raise LogError(f"{path.name} line {lines.lineno}: not a JSON object ({e})",
                                       position=(lines.lineno, None)) from None
                    yield obj

        rows = records()
        try:
            return self._placed(path.name, limits, rows, trainer_step, warnings)
        finally:
            rows.close()                               # the file, where a placement gave up early

    def _placed(self, name: str, limits: ReadLimits, records: Iterable[dict[str, Any]],
                trainer_step: str | None, warnings: list[LogWarning]) -> RunLog:
        """The RunLog of history records (one dict of key -> value per logged row), each row placed at
        ``trainer_step`` (:class:`_NotSteppedBy` where a row lacks it or it goes back), else at
        ``_step``, else at its index."""
        points = Points(name, limits)
        skipped: set[str] = set()
        index = 0
        last = -math.inf
        for obj in records:
            if trainer_step is not None:
                step = number(obj.get(trainer_step))
                if step is None or not math.isfinite(step) or step < last:
                    raise _NotSteppedBy
                last = step
            else:
                step = number(obj.get("_step"))
            if step is None or not math.isfinite(step):
                step = float(index)
            wall = number(obj.get("_timestamp"))
            index += 1
            for key, raw in obj.items():
                if key.startswith("_") or raw is None:
                    continue
                value = number(raw) if not isinstance(raw, str) else None
                if value is None:
                    value = histogram_norm(raw)
                if value is None:
                    skipped.add(key)
                    continue
                points.add(key, step, value, wall)
        if points.count == 0:
            raise LogError(f"{name}: no numeric values in the history")
        if skipped:
            warnings.append(_skipped(name, skipped))
        return RunLog(format=self.name, source=name, series=points.build(role=wandb_role),
                      warnings=warnings)

    # --- the run file, run-<id>.wandb ---------------------------------------------------------------
    def _read_datastore(self, path: Path, limits: ReadLimits) -> RunLog:
        """The step history of W&B's own run file (:mod:`.wandb_datastore`): each ``HistoryRecord``
        a row, its items' ``value_json`` decoded as JSON, placed as a JSON Lines history is."""
        with open_log(path, limits) as f:
            found = wandb_datastore.scan(f, path.name, path.stat().st_size)
        notes: list[LogWarning] = []
        if found.bad_checksums:
            notes.append(LogWarning(
                "corrupt_record", f"{path.name}: {found.bad_checksums} record(s) whose checksum does not "
                f"match were skipped (the first at byte {found.first_bad})", where=f"byte {found.first_bad}"))
        if found.truncated_at is not None:
            notes.append(LogWarning(
                "truncated_log", f"{path.name} byte {found.truncated_at}: the last record is cut off; "
                f"read the {len(found.rows)} history row(s) before it", where=f"byte {found.truncated_at}"))
        if not found.rows and found.truncated_at is not None:
            # (a split message never finished: every record after its first part only continues it)
            raise LogError(f"{path.name} byte {found.truncated_at}: the last record, begun at byte "
                           f"{found.truncated_at}, is cut off: the file ends "
                           f"{path.stat().st_size - found.truncated_at:,} bytes into it, before its last part "
                           f"(a writer that stopped mid-record, or a copy taken while it wrote); no history "
                           f"row before it ({found.records} whole record(s) read)")
        if not found.rows:
            raise LogError(f"{path.name}: a W&B run file with no history rows ({found.records} record(s) "
                           "read): nothing was logged with wandb.log")
        notes.extend(_negative_steps(path.name, found.rows))
        history = found.rows
        if any(r.step is not None and r.step >= 0 for r in history):
            # (a negative step among steps from 0 is no place on the run's axis: left out, as the note says)
            history = [r for r in history if r.step is None or r.step >= 0]
        rows: list[dict[str, Any]] = []
        for row in history:
            obj: dict[str, Any] = {}
            for key, text in row.items:
                try:
                    obj[key] = loads(text) if text else None
                except ValueError as e:
                    raise LogError(f"{path.name} byte {row.offset}: {key!r} is not JSON ({e})") from None
            if "_step" not in obj and row.step is not None:
                obj["_step"] = row.step
            rows.append(obj)
        for trainer_step in (*_TRAINER_STEPS, None):
            try:
                return self._placed(path.name, limits, rows, trainer_step, list(notes))
            except _NotSteppedBy:
                continue
        raise AssertionError("unreachable: the last attempt has no trainer step to break")

    # --- history, CSV ------------------------------------------------------------------------------
    def _read_csv(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            header = csv_header(f.read(64 * 1024)) or []
        if _runs_table(header):
            raise LogError(
                f"{path.name} is a W&B runs table (one row per run: {', '.join(header[:6])}...), not a "
                "run's history: export a run's history instead (the run's page, or "
                "wandb.Api().run(PATH).history().to_csv(...)) and check that file")
        step = next((c for c in _TRAINER_STEPS if c in header and _never_decreases(path, limits, c)), None) \
            or next((c for c in _STEP_COLUMNS if c in header), None)
        x = _custom_x(header)
        if step is None and x is not None and _never_decreases(path, limits, x):
            step = x
        skipped: set[str] = set()

        def cell(column: str, text: str) -> float | None:
            value = histogram_norm(_cell_histogram(text))
            if value is None:
                skipped.add(column)
            return value

        def skip(c: str) -> bool:
            m = _UI_COLUMN.match(c)
            return (c.startswith("_") or c in ("Unnamed: 0",) or c.endswith(("__MIN", "__MAX"))
                    or bool(m and m["key"].startswith("_")))     # a run's own _step, _runtime...

        # The runs, in the export's order: several runs' curves cannot be judged as one.
        runs = list(dict.fromkeys(
            m["run"] for c in header if c != step and not skip(c) and (m := _UI_COLUMN.match(c))))
        ui = step != "_step" and len(runs) >= 1 and all(
            _UI_COLUMN.match(c) for c in header if c and c not in (step, x) and not skip(c))
        several = ui and len(runs) > 1
        points, warnings, _ = read_wide_csv(path, limits, step_column=step, fmt=self.name, skip=skip,
                                            wall_columns=("_timestamp",), cell=cell)

        def key(name: str) -> str:
            m = _UI_COLUMN.match(name)
            return m["key"] if ui and m else name

        def named(name: str) -> str:
            """A run's series as ``<run>/<key>`` where the export holds several runs (each judged on
            its own, as a folder's runs are), else the key alone."""
            m = _UI_COLUMN.match(name)
            return f"{m['run']}/{m['key']}" if several and m else key(name)

        def role(name: str) -> tuple[Role | None, str | None]:
            r, layer = wandb_role(key(name))
            return (r, layer) if r else classify(key(name))

        series = points.build(role=role)
        for s in series:
            s.name = named(s.name)
        if skipped:
            warnings.append(_skipped(path.name, skipped))
        if several:
            warnings.append(several_runs(path.name, f"a W&B export of {len(runs)} runs", runs))
        return RunLog(format=self.name, source=path.name, series=series, warnings=warnings,
                      runs=runs if several else [])


def _runs_table(header: list[str]) -> bool:
    """Whether a CSV header is the W&B runs table's (one row per run), not a history's."""
    return {"Name", "State"} <= set(header) and sum(c in header for c in _RUNS_TABLE) >= 2


def _custom_x(header: list[str]) -> str | None:
    """The first column of a W&B UI export charted against a custom x-axis (``epoch_id``, then only
    ``<run> - <key>`` columns), else None."""
    if len(header) < 2 or not header[0] or _UI_COLUMN.match(header[0]) or header[0] in _STEP_COLUMNS:
        return None
    runs = [c for c in header[1:] if c]
    # at least one "<run> - <key>" column: a console line ending in a comma or a tab ("Starting
    # run,", "{'Loss/classification_loss': nan,") has only empty cells after its first
    return header[0] if runs and all(_UI_COLUMN.match(c) for c in runs) else None


def _never_decreases(path: Path, limits: ReadLimits, column: str) -> bool:
    """Whether the data cells of ``column`` are finite numbers, none below the one before (rows the
    reader will refuse, short or cut off, are passed over here: it reports them)."""
    last = -math.inf
    idx = -1
    with CsvRows(path, limits) as rows:
        for _lineno, row in rows:
            if row is None:
                break
            if idx < 0:
                cells = [c.strip().lstrip("\ufeff") for c in row]
                if column not in cells:
                    return False
                idx = cells.index(column)
                continue
            if len(row) <= idx:
                continue
            try:
                value = parse_number(row[idx].strip())
            except ValueError:
                return False
            if not math.isfinite(value) or value < last:
                return False
            last = value
    return last > -math.inf


class _NotSteppedBy(Exception):
    """A history record without the trainer step being tried, or with one below the record before."""


def _negative_steps(name: str, rows: list[wandb_datastore.HistoryRow]) -> list[LogWarning]:
    """A ``step_order`` note where some history records' ``HistoryStep.num`` is negative among
    others from 0 on, as the TensorBoard reader gives for ``Event.step``: the field is a signed
    int64, so a writer's unsigned 2^64 - 1 (or a -1 "no step") reads as -1 and is placed before
    every other step, before step 0 (errsweep9 #3: a spurious loss spike at step 0); such records are
    left out, and the note names the first one and the unsigned value it stands for."""
    neg = [r for r in rows if r.step is not None and r.step < 0]
    rest = sum(1 for r in rows if r.step is not None and r.step >= 0)
    if not neg or not rest:
        return []
    first = neg[0]
    assert first.step is not None
    return [LogWarning("step_order", (
        f"{name}: {len(neg)} history record(s) at a negative step among {rest} at steps from 0, the first "
        f"at byte {first.offset}, step {first.step}: HistoryStep.num is a signed int64, so the writer "
        f"wrote the unsigned {first.step + (1 << 64):,}, or {first.step} for no step; left out (their values "
        f"have no place among the others' steps)"), where=f"byte {first.offset}")]


def _skipped(name: str, keys: set[str]) -> LogWarning:
    shown = ", ".join(sorted(keys)[:10]) + (" ..." if len(keys) > 10 else "")
    return LogWarning("skipped_values", f"{name}: values that are neither numbers nor histograms were "
                      f"skipped in {len(keys)} key(s): {shown}")


READER = WandbReader()


def _nonfinite_text(raw: str) -> float | None:
    """A summary's final value written as a string only when it spells NaN or Inf (an encoder that
    cannot write them bare); any other string (a sample text, a note) is not a number of the run."""
    try:
        value = parse_number(raw)
    except ValueError:
        return None
    return value if not math.isfinite(value) else None
