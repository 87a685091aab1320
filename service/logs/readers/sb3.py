"""Stable-Baselines3's console tables (its logger's ``stdout`` format, what ``verbose=1`` prints),
and those of OpenAI baselines and stable-baselines 2 before it (the same table without sections).

Each time the agent logs, SB3 prints one table between dashed lines; a key with no value opens a
section and the keys under it belong to it::

    ------------------------------------------
    | rollout/                |              |
    |    ep_len_mean          | 192          |
    |    ep_rew_mean          | 1.48         |
    | time/                   |              |
    |    total_timesteps      | 4096         |
    | train/                  |              |
    |    loss                 | 0.0124       |
    ------------------------------------------

Each table is one record: its values are named ``section/key`` (``rollout/ep_rew_mean``,
``train/loss``) and stepped by ``time/total_timesteps`` (the environment steps so far), else by the
table's index (baselines' DDPG by ``total/steps``, HER by ``epoch``). Lines outside the tables (the
environment's banner, a set-up's pages of output) are skipped. SB3
shortens long keys and values with ``...``; a value that is not a number (a shortened one, a
string) is skipped. A table the file ends inside is kept when it has a step, with the warning
``truncated_log``. A file that begins inside a table (the tail of a console log) has lost that
table's first section header: its keys above the first header it still shows get the section the
same key has in the file's whole tables (``ep_rew_mean`` -> ``rollout/ep_rew_mean``, ``loss`` ->
``train/loss``), or stay bare where no table names one; the table is kept only when it has a step
(the table's index would place a point from 20M steps in at step 0).
"""

from __future__ import annotations

import re
from pathlib import Path

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import Lines, Points, first_lines, open_log
from gradhealth.logs.series import LogWarning, RunLog, parse_number

_ROW = re.compile(r"^\s*\|\s+(?P<key>[^|]*?)\s*\|\s*(?P<val>[^|]*?)\s*\|\s*$")
_RULE = re.compile(r"^\s*-{10,}\s*$")
#: The step of a table, the first of these it has (SB3 and PPO2: environment steps; baselines' DDPG:
#: total/steps; HER: its epoch), else the table's index.
_STEP = ("time/total_timesteps", "total_timesteps", "total/steps", "epoch")
#: A table of this many "| key | number |" rows or more, twice in a file's head, is such a table
#: whatever its keys (baselines' DDPG, HER and the rest print them after pages of set-up output).
_TABLE_ROWS = 4
#: Keys of OpenAI baselines' and stable-baselines 2's tables, which have no sections (PPO2: approxkl,
#: ep_rewmean, nupdates, policy_entropy, serial_timesteps, total_timesteps, value_loss ...)
_BASELINES_KEYS = frozenset({"total_timesteps", "serial_timesteps", "nupdates", "n_updates", "policy_entropy",
                             "policy_loss", "value_loss", "ep_rewmean", "eprewmean", "ep_reward_mean",
                             "approxkl", "explained_variance"})


def _record(points: Points, values: dict[str, float], index: int) -> bool:
    """Add one table's values at its step; whether it had any."""
    if not values:
        return False
    step = next((values[k] for k in _STEP if k in values), float(index))
    for name, value in values.items():
        if name not in _STEP:
            points.add(name, step, value)
    return True


def _tables(lines: list[str]) -> int:
    """How many tables ``lines`` hold: blocks between dashed rules of :data:`_TABLE_ROWS` or more
    rows, most of them a number."""
    found, rows, numbers = 0, 0, 0
    for line in lines:
        if _RULE.match(line):
            found += rows >= _TABLE_ROWS and 2 * numbers > rows
            rows = numbers = 0
        elif (m := _ROW.match(line)) is not None:
            rows += 1
            try:
                parse_number(m["val"])
                numbers += 1
            except ValueError:
                pass
    return found


class SB3Reader:
    name = "sb3"
    description = "Stable-Baselines3 console tables (verbose=1: '| rollout/ |', '|    ep_rew_mean | 1.48 |' ...)"

    def sniff(self, filename: str, head: bytes) -> float:
        lines = first_lines(head, 200)
        rows = [m for ln in lines if (m := _ROW.match(ln))]
        sections = {m["key"] for m in rows if m["key"].endswith("/") and not m["val"]}
        keys = {m["key"].strip() for m in rows}
        if len(rows) >= 4 and (sections & {"rollout/", "time/", "train/", "eval/"} or keys & _BASELINES_KEYS) and any(
                _RULE.match(ln) for ln in lines):
            return 0.85
        return 0.85 if _tables(first_lines(head, 1 << 20)) >= 2 else 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        points = Points(path.name, limits)
        warnings: list[LogWarning] = []
        section = ""
        values: dict[str, float] = {}
        # the tables in file order; the first is the fragment the file may begin inside (rows before
        # any dashed rule), whose keys above its first section header have lost their section
        found: list[dict[str, float]] = []
        head: dict[str, float] | None = None
        unsectioned: set[str] = set()
        sections: dict[str, set[str]] = {}  # a bare key -> the sections it has in whole tables
        ruled = False
        with open_log(path, limits) as f:
            lines = Lines(f, path.name)
            for line in lines:
                if _RULE.match(line):
                    if not ruled:
                        head = values
                    elif values:
                        found.append(values)
                    ruled = True
                    section, values = "", {}
                    continue
                m = _ROW.match(line)
                if m is None:
                    continue
                key, val = m["key"], m["val"]
                if key.endswith("/") and not val:
                    section = key
                    continue
                try:
                    number = parse_number(val)
                except ValueError:
                    continue  # a string, or a value SB3 shortened with "..."
                values[section + key.strip()] = number
                if not ruled and not section:
                    unsectioned.add(key.strip())
                elif ruled:
                    sections.setdefault(key.strip(), set()).add(section)
        tables = 0
        if head:
            head = {(next(iter(sections[k])) + k if k in unsectioned and len(sections.get(k, ())) == 1 else k): x
                    for k, x in head.items()}
            if any(k in head for k in _STEP):
                tables += _record(points, head, tables)
            else:
                warnings.append(LogWarning("skipped_values", (
                    f"{path.name}: the log begins inside a table with no step ({', '.join(list(head)[:5])}"
                    + (" ..." if len(head) > 5 else "") + "): its values are not read"), where="start of file"))
        for table in found:
            tables += _record(points, table, tables)
        if values and any(k in values for k in _STEP) and _record(points, values, tables):
            warnings.append(LogWarning("truncated_log", f"{path.name}: the log ends inside a table; its values "
                                       "are read", where="end of file"))
        if points.count == 0:
            raise LogError(f"{path.name}: no Stable-Baselines3 table with a number in it")
        return RunLog(format=self.name, source=path.name, series=points.build(), warnings=warnings)


READER = SB3Reader()
