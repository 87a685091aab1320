"""test-tube's ``metrics.csv`` (``test_tube.Experiment``; PyTorch Lightning's ``TestTubeLogger`` before 1.5).

``Experiment.log(metrics)`` appends one row per call, its metrics and a ``created_at`` timestamp
(``train_loss,epoch,created_at``), and ``save()`` writes them as a CSV with no step column. The
table is the per-epoch (or per-row) kind the Keras reader takes (:mod:`gradhealth.logs.readers.keras`):
read by it, ``epoch`` (or the row) as the axis, the ``created_at`` text column left out with a note,
and labelled ``test_tube``: the tool that wrote it (a Lightning user must not wonder whether a Keras
reader was the right one)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gradhealth.logs.readers.keras import READER as KERAS
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import csv_header
from gradhealth.logs.series import RunLog

#: The column test-tube adds to every row it logs.
CREATED_AT = "created_at"


class TestTubeReader:
    __test__ = False  # (a reader, not a pytest class)
    name = "test_tube"
    description = ("test-tube metrics.csv (test_tube.Experiment, PyTorch Lightning's TestTubeLogger before 1.5): "
                   "one row per logged dict, a created_at column, no step column")

    def sniff(self, filename: str, head: bytes) -> float:
        header = csv_header(head)
        if header is None or CREATED_AT not in header or {"step", "_step", "Step"} & set(header):
            return 0.0
        # (above the Keras reader's 0.85 for a table whose first column is its epoch)
        return 0.9 if KERAS.sniff(filename, head) > 0 else 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        return replace(KERAS.read(path, limits), format=self.name)


READER = TestTubeReader()
