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

**The step key.** ``step`` above stands for the first of ``step``, ``global_step``,
``train/global_step``, ``iteration``, ``iter``, ``steps`` present (exact spelling, else any letter
case: a CSV column ``Step`` or ``Iteration``), so detectron2's ``metrics.json`` (JSON Lines keyed by
``iteration``, whatever its name) and nanoGPT-style ``iter,train_loss,val_loss`` CSVs are read. In
JSON Lines, a record with none of them may use ``epoch`` (the series are then per epoch,
``step_unit="epoch"``); a CSV with only ``epoch`` is the Keras reader's. Other step-like keys in a
record (``epoch`` next to ``step``) are plain metrics. A ``time`` value below 1e8 is not a Unix time
but a duration (detectron2's seconds per iteration): it is a plain metric, not the wall time.

Rows may come in any step order; each series is sorted by step. A final line that is cut off
(no newline at the end of the file, and it does not parse) is dropped with the warning
``truncated_log``; a line that does not parse anywhere else is an error naming the line.

**Runs appended to one file** (a JSON Lines file or array a restarted job appends to, detectron2's
``metrics.json``): where, after at least three records of a kind in rising order, a record's step
goes back to or below the first step of its kind, a new run starts (a resume that goes back less,
to a checkpoint after the run's start, is the same run). Every run is read and judged on its own,
as a folder's runs are: its series are ``run<k>/<name>`` and one ``several_runs`` note says how
many runs the file holds and each one's lines (``run1 (lines 1-40)``); the last 50 runs at most. A step that goes back
less (a resume from a checkpoint) is the same run: from that step on the resumed pass's records replace
the earlier pass's for the same fields, with an ``overwritten_values`` warning (where steps go back now
and then: at most one record in four, :meth:`~gradhealth.logs.readers.textio.Points.resume`).

**GradientRecorder's files** (:mod:`gradhealth.recorder`) are the long form between two records of
the recorder's own: a first line ``{"gradhealth_recorder": "start", "params": {"max_grad_norm":
"1.0"}}`` (the run's params, read into the log's params) and, written by a clean ``close()`` only,
a last line ``{"gradhealth_recorder": "end", "logged_steps": 300}``. A file with the start record and
no end record was cut off (the training script crashed or was killed): it is read, with the warning
``truncated_log``.

**A wide table aligned with blanks** (no commas or tabs: the PyTorch Mario tutorial's ``MetricLogger``,
``Episode  Step  Epsilon  MeanReward ... Time``): a first line of three or more names, then rows with as
many cells, mostly numbers (a trailing date and time counts as one cell). Its step is the step key
above (``Step``, else ``Episode``...; else ``Epoch``, else the row); a column of text (a timestamp) is
left out with a note. Tables the text reader reads (Ultralytics', fastai's consoles) stay its own.

**Stable-Baselines3's Monitor CSV** (``monitor.csv``: a ``#{"t_start": ...}`` line, then ``r,l,t``
per episode) is read as :mod:`gradhealth.logs.readers.monitor` reads it. In any CSV, leading ``#``
comment lines above the header are passed over.

The line, CSV and point-collecting helpers it shares with the other text readers are in
:mod:`gradhealth.logs.readers.textio`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gradhealth.core.strict_json import DuplicateKey
from gradhealth.errors import LogError
from gradhealth.logs.readers.monitor import monitor_layout, read_monitor
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    ALIGNED,
    CORE_ROLES,
    MISSING,
    BadRow,
    CsvRows,
    Lines,
    Points,
    Record,
    after_comments,
    aligned_header,
    check_header,
    conflict_note,
    csv_header,
    delimiter,
    first_lines,
    loads,
    number,
    open_log,
    read_text,
    read_wide_csv,
    row_failed,
    step_too_far,
    transcoded_note,
    truncated,
)
from gradhealth.logs.series import (
    RUN_RECORDS,
    LogWarning,
    Role,
    RunLog,
    Series,
    classify,
    make_series,
    off_axis,
    several_runs,
    starts_again,
)
from gradhealth.logs.stats import num as _num

# --- the native reader -------------------------------------------------------------------------------

KINDS: dict[str, Role] = {"grad_norm": "layer_grad_norm", "weight_norm": "weight_norm",
                          "update_ratio": "update_ratio"}
_LAYER_COLUMN = re.compile(r"^(?P<kind>grad_norm|weight_norm|update_ratio)/(?P<layer>.+)$")
_WALL = ("wall_time", "time")
_RESERVED = {"value", "metric", "layer", "kind", "wall_time", "time"}
#: The step keys a record or header may use, surest first (the text reader's ``STEP_KEYS`` less the
#: one- and two-letter ones, which are too ambiguous as a column name); ``epoch`` only when none of
#: these is there (a coarser axis: its series get ``step_unit="epoch"``).
STEP_KEYS: tuple[str, ...] = ("step", "global_step", "train/global_step", "iteration", "iter", "steps",
                              "current_steps", "num_updates",  # LLaMA-Factory's trainer_log.jsonl, fairseq
                              # Stable-Baselines3's progress.csv (an RL run counts environment steps)
                              "time/total_timesteps", "time/total timesteps", "total_timesteps", "total timesteps",
                              # OpenAI baselines' DDPG/HER and PPO2 loggers, Spinning Up's, RLlib's
                              "total/steps", "misc/total_timesteps", "TotalEnvInteracts", "timesteps_total",
                              # an off-policy SB3 run's episodes, a DQN script's own count (logsweep31)
                              "time/episodes", "steps_done", "total_steps", "env_steps",
                              # StyleGAN2/3's stats.jsonl: thousands of real images shown
                              "Progress/kimg",
                              # an RL script's own table, a row per episode (logsweep53: A2C's episode,total_reward,...)
                              "episode", "episodes")
_EPOCH = "epoch"
#: Columns only a reinforcement-learning logger writes (an agent's success rate, episode counts, Q values)
_RL_COLUMN = re.compile(r"success_rate|(?:^|/)episodes?$|mean_q|ep_?rew|episode_?reward", re.IGNORECASE)
_ARRAY_OF_RECORDS = re.compile(rb"\[\s*\{")
_ARRAY_STEP = re.compile(rb'"(?:step|global_step|iteration|iter|epoch)"\s*:\s*-?\d')
_MAX_RUNS = 50    # runs appended to one file read and judged at most (the last ones)
_MIN_UNIX_TIME = 1e8  # a ``time`` below this (1973) is a duration (detectron2's seconds per iteration)
#: A table aligned with blanks is claimed this surely: under any score the text reader gives a console
#: it reads (0.3 and up; registered after this reader, it loses ties), above nothing (logsweep62 u01).
_ALIGNED_SCORE = 0.28


_INT_DIGITS = re.compile(r"value has (\d+) digits")


def read_json_array(path: Path, limits: ReadLimits, of: str) -> list[Any]:
    """The JSON array a whole file holds (of records, of numbers: ``of`` names them in the refusal);
    :class:`LogError` saying why (:func:`_not_json`) when it is not JSON or not an array."""
    text = read_text(path, limits)
    try:
        data = loads(text)
    except ValueError as e:
        raise LogError(f"{path.name}: {_not_json(e, text, 'not valid JSON')}") from None
    if not isinstance(data, list):
        raise LogError(f"{path.name}: expected a JSON array of {of}, got {type(data).__name__}")
    return data


def _not_json(e: ValueError, text: str, what: str = "not JSON") -> str:
    """Why ``text`` could not be decoded, in words: an integer literal longer than Python converts
    (``sys.get_int_max_str_digits()``, 4,300 digits by default) as "an integer of N digits", as the
    spec loader says it, not Python's advice to raise that limit; else ``what`` and the decoder's
    message; a key named twice as the record's JSON pointer and that."""
    if isinstance(e, DuplicateKey):
        return f"the record at {e.pointer}: {e.why}"
    if isinstance(e, json.JSONDecodeError) or "integer string conversion" not in str(e):
        return f"{what} ({e})"
    found = _INT_DIGITS.search(str(e))
    digits = int(found.group(1)) if found else max(
        (len(m) for m in re.findall(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)), default=0)
    return f"an integer of {digits or 'too many'} digits, too long to be read as a number"


def summarised(obj: dict[str, Any]) -> dict[str, Any]:
    """A record whose fields are summaries (StyleGAN's ``{"num": 64, "mean": ..., "std": ...}``) as
    their means; any other record as it is."""
    if not any(isinstance(v, dict) and "mean" in v for v in obj.values()):
        return obj
    return {k: v["mean"] if isinstance(v, dict) and "mean" in v else v for k, v in obj.items()}


def step_key(keys: Iterable[str], *, epoch: bool = True) -> str | None:
    """The step key among ``keys``: the first of :data:`STEP_KEYS` present (exact spelling, else any
    letter case, e.g. ``Step``), else ``epoch`` when ``epoch`` is allowed, else None."""
    names = list(keys)
    present = set(names)
    for k in STEP_KEYS:
        if k in present:
            return k
    lower = {n.lower(): n for n in reversed(names) if isinstance(n, str)}
    for k in STEP_KEYS:
        if k in lower:
            return lower[k]
    if epoch:
        return _EPOCH if _EPOCH in present else lower.get(_EPOCH)
    return None


def _loss_table(header: list[str], lines: list[str], sep: str) -> bool:
    """Whether a header without a step column (nor an epoch: Keras' CSVLogger's) heads a table of
    losses: a column named as a loss (or a grad norm), every column named (a trailing separator
    aside), and a first row of numbers only."""
    while header and not header[-1]:
        header = header[:-1]
    if len(lines) < 2 or not all(c for c in header) or step_key(header) is not None:
        return False
    if not any(_by_row(c) for c in header):
        return False
    cells = lines[1].split(sep)
    return all(number(c.strip()) is not None for c in cells if c.strip())


#: A column's name as a one-column table's header writes it: a letter first, then words
_COLUMN_NAME = re.compile(r"[A-Za-z_][\w ./:()-]*")


def one_column(head: bytes, *, strict: bool = False) -> str | None:
    """The name heading a table of one column (``loss`` over a number per line: what
    ``pd.Series(losses, name="loss").to_csv(index=False)`` writes), else None: a first line (after
    leading ``#`` comments) that is one name, over two lines at least of one cell each, the first a
    number (the reader names a later cell that is not); ``strict``: every one a number or a missing value."""
    lines = [line.strip() for line in first_lines(after_comments(head), 50)]
    if len(lines) < 3 or not _COLUMN_NAME.fullmatch(lines[0]) or number(lines[0]) is not None:
        return None
    cells = lines[1:]
    if number(cells[0]) is None or any("," in c or "\t" in c for c in cells):
        return None
    if strict and not all(number(c) is not None or c.lower() in MISSING for c in cells):
        return None
    return lines[0]


def _by_row(column: str) -> bool:
    """Whether a table's column read by row needs no step to be judged: a loss, a validation loss
    or a gradient norm (what :func:`_loss_table` asks of one column of a wider table)."""
    return classify(column)[0] in ("loss", "val_loss", "grad_norm")


#: A loss of a part in a column's name (``g_loss``, ``kl_losses``): judged as a column of that name is
_PART_LOSS = re.compile(r"loss(?:es)?(?![a-z])", re.IGNORECASE)


def _pandas_index(header: list[str]) -> bool:
    """Whether the first column is a DataFrame's unnamed index: blank (or pandas' own
    ``Unnamed: 0``) before named columns."""
    return (len(header) >= 2 and header[0].strip() in ("", "Unnamed: 0")
            and all(re.match(r"[A-Za-z_][\w ./:()-]*$", c.strip()) for c in header[1:]))


def native_role(name: str) -> tuple[Role | None, str | None]:
    """Roles for native names: ``<kind>/<layer>`` per layer, else the common names."""
    m = _LAYER_COLUMN.match(name)
    if m:
        return KINDS[m["kind"]], m["layer"]
    return None, None


_TB_CSV = re.compile(r"^run[-_](?P<run>.*?)[-_]tag[-_](?P<tag>.+?)\.csv$", re.IGNORECASE)


def tensorboard_csv_tag(filename: str) -> str:
    """The series name of a TensorBoard scalar downloaded as CSV (``Wall time,Step,Value``), from
    the name TensorBoard gives the file: ``run-<run>-tag-<tag>.csv`` (``run-validation-tag-
    epoch_loss.csv`` is ``validation/epoch_loss``); else the file's stem."""
    m = _TB_CSV.match(filename)
    if m is None:
        return filename.rsplit(".", 1)[0]
    run = m["run"].strip(".-_")
    return f"{run}/{m['tag']}" if run else m["tag"]


#: Other tools' names for a long table's name and value columns (Comet's metrics export:
#: ``metricName,metricValue,timestamp,step,epoch,runContext``)
_LONG_ALIASES = {"metricname": "metric", "metric_name": "metric", "metricvalue": "value", "metric_value": "value"}


def _long_name(column: str) -> str:
    return _LONG_ALIASES.get(column.strip().lower(), column)


def _is_long(cols: Iterable[str]) -> bool:
    c = {_long_name(x) for x in cols}
    return step_key(c) is not None and "value" in c and ("metric" in c or {"layer", "kind"} <= c)


#: Leading records of a JSON Lines log with neither a step nor a loss that are passed over as the
#: run's header (mmcv's ``{"env_info": ..., "config": ..., "seed": 42, "exp_name": ...}``).
_HEADER_RECORDS = 3


#: The key of GradientRecorder's start and end records (gradhealth.recorder.RECORDER_KEY).
RECORDER_KEY = "gradhealth_recorder"


def recorder_record(obj: object) -> str | None:
    """``"start"`` or ``"end"`` for GradientRecorder's own records (no step, no value), else None."""
    if isinstance(obj, dict) and obj.get(RECORDER_KEY) in ("start", "end") and "value" not in obj \
            and step_key(obj) is None:
        return str(obj[RECORDER_KEY])
    return None


def _header_record(obj: dict[str, Any]) -> bool:
    """Whether a record names no step and holds no loss or norm: the run's description, not a point."""
    return step_key(obj) is None and not stepless_losses(obj)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        obj = loads(text, strict=False)
    except ValueError:
        return None
    return summarised(obj) if isinstance(obj, dict) else None


#: A record's split in mmcv's log.json (``"mode": "val"``): its figures are the evaluation's.
_EVAL_MODES = frozenset({"val", "eval", "test"})
#: A val record's bookkeeping, not the evaluation's figures (its ``lr`` repeats training's).
_EVAL_BOOKKEEPING = frozenset({"lr", "time", "data_time", "memory", "mode"})


def stepless_losses(obj: dict[str, Any]) -> bool:
    """Whether a JSON record with no step key still reads as a training record: it has a loss (or a
    gradient norm) as a number (fastText's ``{"progress": 72.8, "loss": 0.655, "lr": 0.0136}``)."""
    return step_key(obj) is None and any(
        classify(k)[0] in ("loss", "val_loss", "grad_norm") and number(v) is not None for k, v in obj.items())


class NativeReader:
    name = "native"
    description = ("Gradient Health's own format: JSON Lines or CSV, long (step, metric or layer+kind, "
                   "value) or wide (a step column plus one column per metric); also other tools' step tables: "
                   "Stable-Baselines3 progress.csv (and OpenAI baselines' HER progress.csv), detectron2 "
                   "metrics.json, LLaMA-Factory trainer_log.jsonl, fairseq, nanoGPT-style iter,train_loss,val_loss "
                   "CSVs, Chainer result/log, StyleGAN2/3 stats.jsonl, mmcv *.log.json and mmengine scalars.json, "
                   "TensorBoard's CSV download (run-<run>-tag-<tag>.csv)")

    def sniff(self, filename: str, head: bytes) -> float:
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"["):
            # a JSON array of records whose first has a step (Chainer's result/log)
            return 0.55 if _ARRAY_OF_RECORDS.match(start) and _ARRAY_STEP.search(start[:4096]) else 0.0
        lines = first_lines(head, 2)
        if not lines:
            return 0.0
        first = lines[0].strip()
        if first.startswith("{"):
            try:
                obj = loads(first, strict=False)
            except ValueError:
                return 0.0
            if not isinstance(obj, dict) or "_step" in obj or "log_history" in obj:
                return 0.0
            obj = summarised(obj)
            if _header_record(obj) or recorder_record(obj):
                # mmcv's *.log.json opens with the run's env_info, config and seed: judge the records
                # after it
                following = [line for line in first_lines(head, _HEADER_RECORDS + 2)[1:] if line.strip()]
                nxt = next((o for o in map(_json_object, following) if o is not None and not _header_record(o)), None)
                if nxt is None:
                    return 0.0
                obj = nxt
            key = step_key(obj)
            if key is None:
                return 0.4 if stepless_losses(obj) else 0.0
            if number(obj[key]) is None:
                return 0.0
            if _is_long(obj.keys()) or ({"value", "kind"} <= obj.keys()):
                return 0.95
            return 0.5 if key == _EPOCH else 0.6
        if monitor_layout(head) is not None:
            return 0.5  # SB3's monitor.csv: the sb3_monitor reader's, read here too (--log-format native)
        header = csv_header(head)
        if header is None:
            if (column := one_column(head)) is not None:
                # one named column of numbers (pd.Series(losses, name="loss").to_csv(index=False)):
                # a loss table of one column, read by row as a wider one is (errsweep7 #1)
                return 0.35 if _by_row(column) or _PART_LOSS.search(column) else 0.0
            # a table aligned with blanks (the PyTorch Mario tutorial's MetricLogger): claimed below
            # every console the text reader reads (its scores are 0.3 and up), so Ultralytics',
            # scikit-learn's and fastai's aligned tables stay the text reader's (logsweep62 u01)
            return _ALIGNED_SCORE if aligned_header(head) is not None else 0.0
        lines = first_lines(after_comments(head), 2)  # the header and the row below it
        if step_key(header, epoch=False) is None and step_key(header) == _EPOCH and any(
                _RL_COLUMN.search(c) for c in header):
            return 0.3  # baselines' HER logs by epoch: success rates and Q values, no loss (logsweep31)
        if step_key(header, epoch=False) is None:
            # pandas' to_csv writes its index as a first column without a name
            # (pd.DataFrame(history.history).to_csv(...): ",loss,accuracy,val_loss")
            index = lines[1].split(",", 1)[0].strip() if len(lines) > 1 else ""
            if _pandas_index(header) and index.isdigit() and "_step" not in header:  # not W&B's export
                return 0.5
            # a table of losses with no step at all (PaddleOCR's "total loss<TAB>score loss"): by row
            return 0.35 if _loss_table(header, lines, delimiter(head)) else 0.0
        if _is_long(header):
            return 0.95
        if any(_LAYER_COLUMN.match(c) for c in header):
            return 0.8
        return 0.6

    def why_not(self, filename: str, head: bytes) -> str | None:
        """Why a table of one named column of numbers is not read: its name says no loss (nor a
        gradient norm), and by row such a column could be anything (an accuracy read as a loss would
        rise into a divergence); None for any other file."""
        column = one_column(head, strict=True)
        if column is None or _by_row(column) or _PART_LOSS.search(column):
            return None
        return (f"its one column, {column!r}, names no loss, validation loss or gradient norm, so it is not "
                f"read by row: name the column after what it holds (loss) or add a step column (step,{column})")

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            start = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if not start:
            raise LogError(f"{path.name}: the file is empty")
        if start.startswith(b"{"):
            return self._read_jsonl(path, limits)
        if start.startswith(b"["):
            return self._read_json_array(path, limits)
        return self._read_csv(path, limits)

    # JSON Lines, long or wide
    def _read_jsonl(self, path: Path, limits: ReadLimits) -> RunLog:
        records = _Records(path.name, limits)
        with open_log(path, limits) as f:
            lines = Lines(f, path.name)
            for text in lines:
                if not text.strip():
                    continue
                n = lines.lineno
                try:
                    records.add(loads(text), f"line {n}")
                except (ValueError, BadRow) as e:
                    why = _not_json(e, text) if isinstance(e, ValueError) else str(e)
                    if lines.unterminated_last:
                        records.warnings.append(truncated(path.name, n, why))
                        break
                    raise LogError(f"{path.name} line {n}: {why}", position=(n, None)) from None
        if records.recorder == "start" and not any(w.code == "truncated_log" for w in records.warnings):
            records.warnings.append(LogWarning(
                "truncated_log", f"{path.name}: GradientRecorder's file has no end record after line "
                f"{lines.lineno}: the recorder was not closed (the training script crashed, was "
                "interrupted or killed), so the log may stop before the run did", where=f"line {lines.lineno}"))
        return records.run(self.name)

    def _read_json_array(self, path: Path, limits: ReadLimits) -> RunLog:
        """One JSON array of records (Chainer's ``LogReport`` writes ``result/log`` so)."""
        records = _Records(path.name, limits)
        for i, obj in enumerate(read_json_array(path, limits, "records")):
            try:
                records.add(obj, f"record {i}")
            except BadRow as e:
                raise LogError(f"{path.name} record {i}: {e}") from None
        return records.run(self.name)

    @staticmethod
    def _record(obj: dict[str, Any], long: bool | None = None, keys: set[str] | None = None,
                skipped: dict[str, str] | None = None) -> list[Record]:
        """The values of one record. With ``skipped``, a field of the wide form that is not a number
        (a time string such as ``"0:03:29"``, a list of COCO APs) is left out and noted there, as
        ``name -> its text``; without it, it is an error."""
        obj = summarised(obj)
        key = step_key(obj)
        if key is None:
            raise BadRow(f"no 'step' (nor {', '.join(repr(k) for k in (*STEP_KEYS[1:], _EPOCH))})")
        step = number(obj[key])
        if step is None or not math.isfinite(step):
            raise BadRow(f"{key!r} is {json.dumps(obj[key])[:40]}, not a finite number")
        too_far = step_too_far(step)
        if too_far is not None:
            raise BadRow(f"{key!r} is {json.dumps(obj[key])[:40]}: {too_far}")
        if keys is not None:
            keys.add(key)
        wall = None
        reserved = _RESERVED | {key}
        for w in _WALL:
            if wall is None and obj.get(w) is not None:
                t = number(obj[w])
                if t is None:
                    raise BadRow(f"{w!r} is not a number")
                if w == "time" and abs(t) < _MIN_UNIX_TIME:
                    reserved = reserved - {"time"}  # a duration (detectron2's seconds per iteration)
                else:
                    wall = t
        if long is None:
            long = "value" in obj and ("metric" in obj or "kind" in obj or "layer" in obj)
        if long:
            if obj["value"] is None:
                return []
            value = number(obj["value"])
            if value is None:
                raise BadRow(f"'value' is {json.dumps(obj['value'])[:40]}, not a number")
            metric = obj.get("metric")
            if isinstance(metric, str) and metric.strip():
                return [(metric.strip(), step, value, wall, None)]
            kind, layer = obj.get("kind"), obj.get("layer")
            if kind is None and layer is None:
                raise BadRow("no 'metric' (or 'layer' and 'kind') for this value")
            if kind not in KINDS:
                raise BadRow(f"'kind' is {json.dumps(kind)[:40]}; use one of {', '.join(KINDS)}")
            if not isinstance(layer, str) or not layer.strip():
                raise BadRow("'layer' must be a non-empty string when 'kind' is given")
            return [(f"{kind}/{layer.strip()}", step, value, wall, (KINDS[kind], layer.strip()))]
        out: list[Record] = []
        for name, raw in obj.items():
            if name in reserved or raw is None:
                continue
            value = number(raw)
            if value is None:
                if skipped is None:
                    raise BadRow(f"{name!r} is {json.dumps(raw)[:40]}, not a number")
                text = json.dumps(raw)
                skipped.setdefault(name, text if len(text) <= 40 else text[:37] + "...")
                continue
            out.append((name, step, value, wall, None))
        return out

    # CSV, long or wide
    def _read_csv(self, path: Path, limits: ReadLimits) -> RunLog:
        with open_log(path, limits) as f:
            head = f.read(64 * 1024)
        if monitor_layout(head) is not None:
            return read_monitor(path, limits, self.name)
        header = csv_header(head)
        if header is not None and _is_long(header):
            return self._read_long_csv(path, limits)
        aligned = aligned_header(head) if header is None else None
        if aligned is not None:
            return self._read_aligned(path, limits, aligned)
        step: str | None = step_key(header or [], epoch=False) or ("" if header and _pandas_index(header) else None)
        tensorboard = [c.strip().lower() for c in header or []] == ["wall time", "step", "value"]
        points, warnings, _ = read_wide_csv(path, limits, step_column=step, fmt="native", sep=delimiter(head),
                                            wall_columns=("Wall time", *_WALL) if tensorboard else _WALL)
        series = points.build(role=native_role)
        if step is None and series:
            # a table of losses with no step column (one column, or PaddleOCR's): by row; say so,
            # as the text reader does, so that a finding "at step 8" reads as the 9th row
            rows = max(int(s.steps[-1]) for s in series) + 1
            warnings.append(LogWarning(
                "running_index", f"{path.name}: no step column, so the steps are the {rows:,} rows counted from 0 "
                f"(step 0 is the first row below the header, step {rows - 1:,} the last; findings name them points "
                f"1-{rows:,})"))
        if tensorboard:
            # TensorBoard's "download CSV" of one scalar: the tag is only in the file's name
            name = tensorboard_csv_tag(path.name)
            series = [make_series(name, s.steps, s.values, s.wall_time) for s in series]
            runs = _restarts(series[0]) if len(series) == 1 else []
            if len(runs) > 1:
                kept = runs[-_MAX_RUNS:]
                first = len(runs) - len(kept) + 1
                names = [f"run{k}" for k in range(first, len(runs) + 1)]
                series = [make_series(f"{prefix}/{name}", st, v, w) for prefix, (st, v, w) in zip(names, kept, strict=True)]
                shown = [f"{prefix} (steps {_num(st[0])}-{_num(st[-1])})" for prefix, (st, _, _) in zip(names, kept, strict=True)]
                warnings = [several_runs(path.name, f"{len(runs)} runs one after another in wall-time order (the step "
                                         "starts again)", shown,
                                         tail=f"; the first {first - 1} are not read" if first > 1 else ""), *warnings]
                return RunLog(format=self.name, source=path.name, series=series, warnings=warnings, runs=names)
        return RunLog(format=self.name, source=path.name, series=series, warnings=warnings)

    def _read_aligned(self, path: Path, limits: ReadLimits, header: list[str]) -> RunLog:
        """A wide table aligned with blanks (:func:`~gradhealth.logs.readers.textio.aligned_header`):
        stepped by its step column (``Step``, else ``Episode``, ``Iter``...; else ``Epoch``, by epoch;
        else by row), each other numeric column a series; a text column (the Mario logger's ISO
        ``Time``) is left out with a note."""
        step = step_key(header)
        points, warnings, _ = read_wide_csv(path, limits, step_column=step, fmt="native", sep=ALIGNED)
        unit = "epoch" if step is not None and step.lower() == _EPOCH else "step"
        return RunLog(format=self.name, source=path.name, series=points.build(role=native_role, step_unit=unit),
                      warnings=warnings)

    def _read_long_csv(self, path: Path, limits: ReadLimits) -> RunLog:
        fast = _fast_long_csv(path, limits)
        if fast is not None:
            return fast
        warnings: list[LogWarning] = []
        points = Points(path.name, limits)
        with CsvRows(path, limits) as rows:
            self._long_rows(path, rows, points, warnings)
            if (note := conflict_note(path.name, rows.conflicts)) is not None:
                warnings.append(note)
            if (note := transcoded_note(path.name, rows.lines)) is not None:
                warnings.append(note)
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
                idx.update({_long_name(c): i for i, c in enumerate(header)})
                continue
            cut = lines.unterminated_last and lineno == lines.lineno
            try:
                if row is None:
                    raise BadRow("cut inside a quoted field")
                if len(row) != len(header):
                    raise BadRow(f"expected {len(header)} columns, got {len(row)}")
                rec: dict[str, Any] = {c: row[i].strip() for c, i in idx.items()}
                for k in ("metric", "layer", "kind", "wall_time", "time"):
                    if rec.get(k) == "":
                        rec[k] = None
                if rec["value"] == "":
                    continue
                found = self._record(rec, long=True)
            except BadRow as e:
                row_failed(path.name, lineno, e, cut, warnings)
                break
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
    strings: dict[str, str] = {c: "category" for c in ("metric", "layer", "kind") if c in header}
    floats: dict[str, str] = {c: "float64" for c in ("step", "value", "wall_time", "time") if c in header}
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


def _restarts(s: Series) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The runs in a TensorBoard CSV of one scalar whose step starts again while its wall time goes
    on (a job restarted with its step counter reset, logging to the same directory): the points in
    wall-time order, split where a step goes back to or below its run's first one after
    ``RUN_RECORDS`` in rising order (a resume from a checkpoint after the start goes back less and
    stays one run), as the JSON Lines reader splits appended runs. Sorted by step the runs' points
    would interleave. One run, or none where the points carry no wall time: ``[]``."""
    if s.wall_time is None or len(s.steps) < 2 * RUN_RECORDS:
        return []
    wall = np.asarray(s.wall_time, dtype=np.float64)
    if not np.all(np.isfinite(wall)):
        return []
    order = np.argsort(wall, kind="stable")
    steps, values, wall = s.steps[order], s.values[order], wall[order]
    cuts, first, last, rising = [], steps[0], steps[0], 1
    for i in range(1, len(steps)):
        if off_axis(steps[i], first):
            continue  # (left out by its series)
        if starts_again(steps[i], first, last, rising):
            cuts.append(i)
            first, rising = steps[i], 1
        elif steps[i] > last:
            rising += 1
        last = steps[i]
    if not cuts:
        return []
    bounds = [0, *cuts, len(steps)]
    return [(steps[a:b], values[a:b], wall[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


class _Records:
    """The records of a JSON Lines file or JSON array as they are read: their points, the fields
    left out as text, and the runs appended one after another (each kept, judged on its own)."""

    def __init__(self, name: str, limits: ReadLimits) -> None:
        self.name, self.limits = name, limits
        self.points = Points(name, limits)
        self.warnings: list[LogWarning] = []
        self.keys: set[str] = set()
        self.skipped: dict[str, str] = {}  # a field left out as text -> its text, noted once
        self.starts: dict[frozenset[str], tuple[float, float, int]] = {}  # fields -> first, last step, rising
        self.runs = 1
        # the runs before the one being read: (points, where its first and last record are)
        self.done: list[tuple[Points, str, str]] = []
        self.first_where = self.last_where = ""  # the current run's first and last record with values
        self.by_order: bool | None = None  # records with no step, placed by their order (decided at the first)
        self.order = 0
        self.headers = 0                    # leading records passed over as the run's description
        self.last_step: float | None = None  # the step of the last training record read
        self.epoch: float | None = None      # ... and its epoch, where it gives one beside its iteration
        self.recorder: str | None = None     # the last of GradientRecorder's own records: "start", "end"
        self.params: dict[str, str] = {}     # the run's params (from the recorder's start record)

    def add(self, obj: Any, where: str) -> None:
        """Add one decoded record (``where``: ``line 12``, ``record 3``); :class:`BadRow` if it is not one."""
        if not isinstance(obj, dict):
            raise BadRow(f"expected a JSON object, got {type(obj).__name__}")
        kind = recorder_record(obj)
        if kind is not None:
            self.recorder = kind
            params = obj.get("params")
            if kind == "start" and isinstance(params, dict):
                self.params.update({str(k): str(v) for k, v in params.items()})
            missing = obj.get("steps_without_gradients")
            if kind == "end" and isinstance(missing, int) and not isinstance(missing, bool) and missing > 0:
                # (newuser5 P3) the recorder saw no gradient at those steps: step() was called before
                # backward() or after zero_grad(), so the norms a diagnosis needs are missing there
                logged = obj.get("logged_steps")
                of = f" of {logged}" if isinstance(logged, int) else ""
                self.warnings.append(LogWarning(
                    "steps_without_gradients", f"{self.name} {where}: GradientRecorder logged {missing}{of} "
                    "step(s) at which no parameter had a gradient: step() was called before backward() or "
                    "after optimizer.zero_grad(), so their gradient norms are missing; call it after "
                    "backward() and before zero_grad()", where=where))
            return
        if self.order == self.headers < _HEADER_RECORDS and _header_record(summarised(obj)):
            self.headers += 1
            self.order += 1
            self.warnings.append(LogWarning(
                "skipped_header", f"{self.name} {where}: a record with no step and no loss "
                f"({', '.join(list(obj)[:4])}...) before the first point: the run's description, not read",
                where=where))
            return
        mode = obj.get("mode")
        evaluation = isinstance(mode, str) and mode.lower() in _EVAL_MODES
        if evaluation:
            # an evaluation's record: its own names, at the training step it followed (mmcv writes
            # the evaluation loader's length as its "iter")
            at = {"step": self.last_step} if self.last_step is not None else {
                k: obj[k] for k in obj if step_key({k: obj[k]}) is not None}
            obj = {**at, **{f"val_{k}": v for k, v in obj.items()
                            if k not in _EVAL_BOOKKEEPING and step_key({k: v}) is None}}
        elif isinstance(mode, str):
            obj = {k: v for k, v in obj.items() if k != "mode"}
        elif ("epoch" not in obj and "iter" not in obj and self.epoch is not None and self.last_step is not None
              and number(obj.get("step")) == self.epoch):
            # mmengine's scalars.json: a by-epoch run's validation record is stepped by the epoch
            # it closes ({"coco/bbox_mAP": 0.3, "step": 1} among training records at step 50, 100...):
            # the evaluation's figures, at the training step they followed
            obj = {"step": self.last_step, **{f"val/{k}": v for k, v in obj.items() if k != "step"}}
            evaluation = True
        if self.by_order is None:
            self.by_order = stepless_losses(obj)
            if self.by_order:
                self.warnings.append(LogWarning(
                    "placed_by_order", f"{self.name}: the records name no step (nor epoch); each is placed "
                    "by its order, the first at step 0", where=where))
        if self.by_order and step_key(obj) is None:
            obj = {"step": self.order, **obj}
        self.order += 1
        noted = len(self.skipped)
        found = NativeReader._record(obj, keys=self.keys, skipped=self.skipped)
        if found:
            # A run appended to the same file starts again: a record whose step goes back to or below
            # the first step of records of its kind, after at least RUN_RECORDS of them in rising
            # order (validation records with steps of their own are another kind; a few records out
            # of order are not a run). The kind: the loss, rate and norm fields, which a resumed run
            # with other loss components still has; a record with none is known by all its fields.
            names = [r[0] for r in found]
            core = [n for n in names if classify(n)[0] in CORE_ROLES]
            fields = frozenset(core or names)
            step = found[0][1]
            first, last, count = self.starts.setdefault(fields, (step, step, 0))
            if off_axis(step, first):
                pass  # (left out by its series: the run's first and last steps stay as they were)
            elif starts_again(step, first, last, count):
                self.done.append((self.points, self.first_where, self.last_where))
                if len(self.done) >= _MAX_RUNS:  # the last _MAX_RUNS runs are read at most
                    del self.done[0]
                self.points, self.starts = Points(self.name, self.limits), {fields: (step, step, 1)}
                self.runs, self.first_where = self.runs + 1, where
            else:
                if step < last:
                    # back to a checkpoint's step, not the run's start: the run resumed, its later
                    # records replacing the earlier pass's from that step on (a warning says so)
                    self.points.resume(names, step, last, where)
                self.starts[fields] = (first, step, count + 1 if step > last or count == 0 else count)
            self.points.records += 1
        self.points.add_records(found)
        if found:
            self.first_where, self.last_where = self.first_where or where, where
        if found and not evaluation:
            self.last_step = found[0][1]
            self.epoch = number(obj.get("epoch")) if "iter" in obj else None
        for name, shown in list(self.skipped.items())[noted:]:  # the fields first left out here
            self.warnings.append(LogWarning(
                "skipped_values", f"{self.name} {where}: {name!r} is {shown}, not a number: left out "
                "wherever it is not one", where=where))

    def run(self, fmt: str) -> RunLog:
        """The log read: one run, or several appended one after another, each judged on its own
        (series ``run<k>/<name>``, as a folder's runs are) with a ``several_runs`` note."""
        if self.points.count == 0:
            raise LogError(f"{self.name}: no values (each record needs a step and a value)")
        unit = "epoch" if self.keys == {_EPOCH} else "step"
        parts = [*self.done, (self.points, self.first_where, self.last_where)]
        # each run's resumes from a checkpoint, as the text reader notes a console's
        resumes = [w for points, _, _ in parts if (w := points.resumed_note(self.name, unit)) is not None]
        if not self.done:
            return RunLog(format=fmt, source=self.name, series=self.points.build(role=native_role, step_unit=unit),
                          warnings=[*resumes, *self.warnings], params=self.params)
        first = self.runs - len(parts) + 1   # the index of the first run kept
        names = [f"run{k}" for k in range(first, self.runs + 1)]
        series = [replace(s, name=f"{prefix}/{s.name}") for prefix, (points, _, _) in zip(names, parts, strict=True)
                  for s in points.build(role=native_role, step_unit=unit)]
        shown = [f"{prefix} ({_span(a, b)})" for prefix, (_, a, b) in zip(names, parts, strict=True)]
        note = several_runs(self.name, f"{self.runs} runs appended one after another (the steps start again)",
                            shown, tail=f"; the first {first - 1} are not read" if first > 1 else "")
        return RunLog(format=fmt, source=self.name, series=series, warnings=[note, *resumes, *self.warnings],
                      params=self.params, runs=names)


def _span(first: str, last: str) -> str:
    """``lines 2-40`` for a run from ``line 2`` to ``line 40`` (``records 0-9`` in a JSON array)."""
    word, _, a = first.partition(" ")
    return f"{word}s {a}-{last.partition(' ')[2]}" if first != last else first


READER = NativeReader()
