"""Sacred's ``metrics.json`` (the FileStorageObserver's run folder: ``runs/<id>/metrics.json``).

One JSON object, a key per metric logged with ``_run.log_scalar(name, value, step)``, each holding
three lists of one length::

    {"train.loss": {"steps": [0, 1, 2], "timestamps": ["2020-05-01T10:00:00.000000", ...],
                    "values": [2.3, 1.9, 1.6]}, ...}

Each key becomes a series named by it against its steps, with the timestamps (ISO 8601, UTC) as
wall time. A value that is not a number (``null``: Sacred writes NaN so) is NaN; a key whose
lists differ in length, or are not lists, is an error naming it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import Points, loads, number, read_text
from gradhealth.logs.series import RunLog

#: The file's start: an object whose first value is an object of Sacred's lists.
_START = re.compile(rb'^\s*\{\s*"(?:[^"\\]|\\.)*"\s*:\s*\{\s*"(?:steps|timestamps|values)"\s*:\s*\[')


def _wall(stamp: Any) -> float | None:
    """An ISO 8601 timestamp (Sacred's, UTC) as seconds since the epoch; None where it is none."""
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class SacredReader:
    name = "sacred"
    description = "Sacred metrics.json ({name: {steps, timestamps, values}} per logged scalar)"

    def sniff(self, filename: str, head: bytes) -> float:
        return 0.9 if _START.match(head.lstrip(b"\xef\xbb\xbf")) else 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        name = path.name
        obj = json_object(path, limits, "metrics ({name: {steps, values}})")
        points = Points(name, limits)
        for key, entry in obj.items():
            steps, values = (entry.get("steps"), entry.get("values")) if isinstance(entry, dict) else (None, None)
            if not isinstance(steps, list) or not isinstance(values, list) or len(steps) != len(values):
                raise LogError(f"{name}: {key!r} is not {{\"steps\": [...], \"values\": [...]}} of one length "
                               f"(a Sacred metric): {json.dumps(entry)[:80]}")
            add_lists(points, name, key, steps, values, entry.get("timestamps"))
        return RunLog(format=self.name, source=name, series=points.build())


def json_object(path: Path, limits: ReadLimits, of_what: str) -> dict[str, Any]:
    """The file's one non-empty JSON object (a LogError naming the file otherwise: ``of_what`` says
    what the object should hold)."""
    try:
        obj = loads(read_text(path, limits))
    except ValueError as e:
        raise LogError(f"{path.name}: not valid JSON ({e})") from None
    if not isinstance(obj, dict) or not obj:
        raise LogError(f"{path.name}: expected one JSON object of {of_what}")
    return obj


def add_lists(points: Points, source: str, key: str, steps: list[Any], values: list[Any], stamps: Any = None) -> None:
    """Add one series given as parallel lists of steps and values (``null`` values are NaN; ISO
    timestamps, where given one per value, the wall time); a step or value that is not a number is
    an error naming ``key`` in ``source`` and the position."""
    walls = stamps if isinstance(stamps, list) and len(stamps) == len(values) else [None] * len(values)
    for i, (step, raw, stamp) in enumerate(zip(steps, values, walls, strict=True)):
        at = number(step)
        if at is None:
            raise LogError(f"{source}: {key!r} step {i} is {json.dumps(step)[:40]}, not a number")
        value = number(raw) if raw is not None else float("nan")
        if value is None:
            raise LogError(f"{source}: {key!r} value {i} is {json.dumps(raw)[:40]}, not a number")
        points.add(key, at, value, _wall(stamp))


READER = SacredReader()
