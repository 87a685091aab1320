"""Stable-Baselines3's ``Monitor`` CSV (``stable_baselines3.common.monitor.Monitor``, and OpenAI
baselines' and gym's ``bench.Monitor`` before it): one row per finished episode::

    #{"t_start": 1591112345.12, "env_id": "LunarLander-v2"}
    r,l,t,is_success
    -180.5,97,0.31,False
    -150.2,112,0.64,False

Line 1 is a JSON comment (the monitor's start, Unix seconds, and the environment's id), line 2 the
header: ``r`` (the episode's return), ``l`` (its length in environment steps), ``t`` (seconds since
``t_start``), then the ``info_keywords`` the monitor was given. SB3 writes one file per environment
(``0.monitor.csv``, ``1.monitor.csv`` ... in a ``monitor_dir``, or ``monitor.csv``).

It is read as a reinforcement-learning run whose x-axis is environment steps, as SB3's own plots
(``results_plotter.ts2xy``) draw it: each episode at the running total of ``l`` up to and including
it. The series:

- ``episode_return``: ``r``, one point per episode;
- ``ep_rew_mean``: the mean of ``r`` over the last 100 episodes (fewer at the start), as SB3's
  logger reports ``rollout/ep_rew_mean`` and its ``results_plotter`` smooths a Monitor's curve:
  single episodes scatter far more than a policy's progress moves, so this is the series whose
  rise and fall the RL checks judge (both names are an episode return to them);
- ``episode_length``: ``l``;
- ``success_rate``: ``is_success`` (``True``/``False`` or 0/1), as the share of successes over the
  last 100 episodes, as SB3's logger reports ``rollout/success_rate``;
- any other ``info_keywords`` column of numbers under its own name (one of text is left out with a
  ``skipped_values`` warning).

The wall time of each point is ``t_start + t``. A row that does not parse is an error naming its
line, unless it is the file's unterminated last line (cut off while being written): that one is
dropped with the warning ``truncated_log``.

The native reader (:mod:`gradhealth.logs.readers.native`) reads these files as well (with its own
format name), so ``--log-format native`` takes them too.
"""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import Any

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import (
    MISSING,
    BadRow,
    CsvRows,
    Points,
    check_header,
    conflict_note,
    csv_header,
    first_lines,
    number,
    open_log,
    row_failed,
    transcoded_note,
)
from gradhealth.logs.series import LogWarning, RunLog, parse_number
from gradhealth.logs.sniff import HEAD_BYTES, past_comment

#: The columns every Monitor file starts with, in this order (``csv.DictWriter(fieldnames=("r", "l", "t", ...))``).
COLUMNS = ["r", "l", "t"]
#: The series names the columns are read as: names the RL checks know (``detectors.rl._RETURN``).
RETURN, MEAN_RETURN, LENGTH, SUCCESS = "episode_return", "ep_rew_mean", "episode_length", "success_rate"
#: Episodes the mean return and the success rate are taken over (SB3's ``stats_window_size`` default).
WINDOW = 100
_BOOL = {"true": 1.0, "false": 0.0}


def monitor_layout(head: bytes) -> tuple[dict[str, Any] | None, list[str]] | None:
    """``(start record, header)`` when ``head`` is a Monitor file: a header whose first columns are
    ``r,l,t``, after a ``#{"t_start": ...}`` line (the start record; None when the file has no such
    line); None for any other file."""
    header = csv_header(head)
    if header is None or header[:3] != COLUMNS:
        return None
    lines = first_lines(head, 1)
    start: dict[str, Any] | None = None
    first = lines[0].lstrip() if lines else ""
    if first.startswith("#"):
        try:
            obj = json.loads(first[1:])
        except ValueError:
            obj = None
        if isinstance(obj, dict) and number(obj.get("t_start")) is not None:
            start = obj
    return start, header


def _value(row: list[str], i: int, column: str, what: str) -> float:
    text = row[i].strip()
    if not text:
        raise BadRow(f"column {column!r} ({what}) is blank", field=column)
    try:
        return _finite_literal(parse_number(text), text, column)
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise BadRow(f"column {column!r} ({what}) is {shown!r}, not a number", field=column) from None


def _flag(text: str, column: str) -> float | None:
    """A cell of ``is_success`` or another info keyword (``column``): True/False as 1/0, a number as
    itself, None for a blank or missing value; :class:`ValueError` for other text, :class:`BadRow`
    for a number beyond a float's range."""
    t = text.strip()
    if not t or t.lower() in MISSING:
        return None
    if t.lower() in _BOOL:
        return _BOOL[t.lower()]
    return _finite_literal(parse_number(t), t, column)


def _finite_literal(value: float, text: str, column: str) -> float:
    """``value``, refused where it is an infinity ``float()`` made of a number too large
    (``1e999``): Python writes an infinite value as ``inf``, never as a huge number, so that one
    is a corrupt cell, refused as the other doors refuse it."""
    if math.isinf(value) and any(c.isdigit() for c in text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise BadRow(f"column {column!r} is {shown}, beyond the range of a float (about 1.8e308)", field=column)
    return value


def read_monitor(path: Path, limits: ReadLimits, fmt: str) -> RunLog:
    """Read a Monitor file as the run of format ``fmt`` (see the module's description)."""
    with open_log(path, limits) as f:
        # a start record longer than the head (a long info dict) is read to its end: the header after it
        head = past_comment(f, f.read(HEAD_BYTES), HEAD_BYTES)
    found = monitor_layout(head)
    if found is None:
        raise LogError(f"{path.name}: not a Monitor file (its header must start with r,l,t)")
    start, _ = found
    warnings: list[LogWarning] = []
    first = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if start is None and first.startswith(b"#"):
        shown = first.split(b"\n", 1)[0][:60].decode("utf-8", "replace").rstrip()
        warnings.append(LogWarning(
            "skipped_line", f"{path.name} line 1: the Monitor start record {shown!r} is not JSON with a "
            "numeric t_start: left out, so the episodes have no wall time and no env_id", where="line 1"))
    t_start = number(start.get("t_start")) if start is not None else None
    if t_start is not None and not math.isfinite(t_start):
        t_start = None
    points = Points(path.name, limits)
    header: list[str] = []
    success = -1
    extra: list[tuple[int, str]] = []
    skipped: set[str] = set()
    recent: deque[float] = deque(maxlen=WINDOW)   # successes
    returns: deque[float] = deque(maxlen=WINDOW)
    steps = 0.0
    episodes = 0
    with CsvRows(path, limits) as rows:
        lines = rows.lines
        for lineno, row in rows:
            if not header:
                if row is None:
                    raise LogError(f"{path.name} line {lineno}: the header is cut off", position=(lineno, None))
                header = check_header(path.name, row)
                success = header.index("is_success") if "is_success" in header else -1
                extra = [(i, c) for i, c in enumerate(header) if i >= len(COLUMNS) and i != success and c]
                continue
            cut = lines.unterminated_last and lineno == lines.lineno
            try:
                if row is None:
                    raise BadRow("cut inside a quoted field")
                if len(row) != len(header):
                    raise BadRow(f"expected {len(header)} columns ({', '.join(header)}), got {len(row)}")
                ret = _value(row, 0, "r", "the episode's return")
                length = _value(row, 1, "l", "the episode's length")
                if not math.isfinite(length) or length < 0 or length != int(length):
                    raise BadRow(f"column 'l' (the episode's length) is {row[1].strip()!r}, not a count of steps",
                                 field="l")
                t = _value(row, 2, "t", "seconds since t_start")
                ok: float | None = None
                if success >= 0:
                    try:
                        ok = _flag(row[success], "is_success")
                    except BadRow:
                        raise
                    except ValueError:
                        raise BadRow(f"column 'is_success' is {row[success].strip()[:40]!r}, not True, False "
                                     "or a number", field="is_success") from None
                others: list[tuple[str, float]] = []
                for i, c in extra:
                    try:
                        v = _flag(row[i], c)
                    except BadRow:
                        raise
                    except ValueError:
                        if c not in skipped:
                            skipped.add(c)
                            warnings.append(LogWarning(
                                "skipped_values", f"{path.name} line {lineno}: column {c!r} holds text "
                                f"({row[i].strip()[:40]!r}), not numbers: left out wherever it is not one",
                                where=f"line {lineno}"))
                        continue
                    if v is not None:
                        others.append((c, v))
            except BadRow as e:
                row_failed(path.name, lineno, e, cut, warnings)
                break
            steps += length
            episodes += 1
            wall = t_start + t if t_start is not None and math.isfinite(t) else None
            returns.append(ret)
            points.add(RETURN, steps, ret, wall)
            points.add(MEAN_RETURN, steps, sum(returns) / len(returns), wall)
            points.add(LENGTH, steps, length, wall)
            if ok is not None:
                recent.append(ok)
                points.add(SUCCESS, steps, sum(recent) / len(recent), wall)
            for c, v in others:
                points.add(c, steps, v, wall)
    if not header:
        raise LogError(f"{path.name}: the file is empty")
    if episodes == 0:
        raise LogError(f"{path.name}: no episodes after the header (a Monitor file has a row per finished episode)")
    params: dict[str, str] = {}
    env_id = start.get("env_id") if start is not None else None
    if isinstance(env_id, str) and env_id.strip() and env_id != "None":
        params["env_id"] = env_id.strip()
    if (note := conflict_note(path.name, rows.conflicts)) is not None:
        warnings.append(note)
    if (note := transcoded_note(path.name, lines)) is not None:
        warnings.append(note)
    return RunLog(format=fmt, source=path.name, series=points.build(), warnings=warnings, params=params)


class MonitorReader:
    name = "sb3_monitor"
    description = ("Stable-Baselines3's (or OpenAI baselines') Monitor CSV, monitor.csv: '#{\"t_start\": ...}', "
                   "then r,l,t per episode")

    def sniff(self, filename: str, head: bytes) -> float:
        found = monitor_layout(head)
        if found is None:
            return 0.0
        return 0.9 if found[0] is not None else 0.7

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        return read_monitor(path, limits, self.name)


READER = MonitorReader()
