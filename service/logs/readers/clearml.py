"""ClearML's reported scalars, as ``Task.get_reported_scalars()`` returns them and users save them
with ``json.dump`` (or the web UI's scalar export)::

    {"loss": {"train": {"x": [0, 20, 40], "y": [2.3, 1.9, 1.6], "name": "train"},
              "val":   {"x": [100, 200], "y": [2.0, 1.7]}},
     "grad_norm": {"encoder.layers.0.fc.weight": {"x": [...], "y": [...]}}}

A graph's title and its series name the series ``title/series`` (``loss/train``, a layer's
``grad_norm/<layer>``), or ``title`` alone where the series repeats it; ``x`` is the step
(ClearML's iteration), ``y`` the value (``null``: NaN).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.sacred import add_lists, json_object
from gradhealth.logs.readers.textio import Points
from gradhealth.logs.series import RunLog

#: The file's start: an object of graphs, the first holding an object of series of "x"/"y" lists.
_START = re.compile(rb'^\s*\{\s*"(?:[^"\\]|\\.)*"\s*:\s*\{\s*"(?:[^"\\]|\\.)*"\s*:\s*\{\s*"(?:x|y|name)"\s*:')


def _series_name(title: str, series: str) -> str:
    return title if series in (title, "") else f"{title}/{series}"


class ClearMLReader:
    name = "clearml"
    description = "ClearML reported scalars ({title: {series: {x, y}}}, Task.get_reported_scalars() saved as JSON)"

    def sniff(self, filename: str, head: bytes) -> float:
        return 0.9 if _START.match(head.lstrip(b"\xef\xbb\xbf")) else 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        name = path.name
        obj = json_object(path, limits, "graphs ({title: {series: {x, y}}})")
        points = Points(name, limits)
        for title, graph in obj.items():
            if not isinstance(graph, dict):
                raise LogError(f"{name}: {title!r} is not an object of series (a ClearML graph): "
                               f"{json.dumps(graph)[:80]}")
            for series, entry in graph.items():
                key = _series_name(title, series)
                xs, ys = (entry.get("x"), entry.get("y")) if isinstance(entry, dict) else (None, None)
                if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
                    raise LogError(f"{name}: {key!r} is not {{\"x\": [...], \"y\": [...]}} of one length "
                                   f"(a ClearML series): {json.dumps(entry)[:80]}")
                add_lists(points, name, key, xs, ys)
        return RunLog(format=self.name, source=name, series=points.build())


READER = ClearMLReader()
