"""PyTorch Lightning ``CSVLogger`` ``metrics.csv``.

The file is wide and sparse: one column per logged key plus ``step`` (the global step) and
usually ``epoch``; training-step rows and epoch-end / validation rows are interleaved, and a row
leaves blank every key it did not log. Each column becomes a series of its non-blank cells
against the ``step`` column, epoch-level columns (``val_loss``, ``*_epoch``) included; the
``epoch`` column is kept as a metric series.

Gradient-norm columns written by ``lightning.pytorch.utilities.grad_norm`` (or the older
``track_grad_norm``) are recognised for any norm type p: ``grad_{p}_norm/<param>`` (per parameter)
and ``grad_{p}_norm_total`` (total), e.g. ``grad_2.0_norm/encoder.0.weight``, ``grad_inf_norm_total``.
"""

from __future__ import annotations

import re
from pathlib import Path

from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import csv_header, read_wide_csv
from gradhealth.logs.series import Role, RunLog

GRAD_COLUMN = re.compile(r"^grad_(?:\d+(?:\.\d*)?|inf)_norm(?:(?P<total>_total)|[/_](?P<layer>.+))$")


def lightning_role(name: str) -> tuple[Role | None, str | None]:
    m = GRAD_COLUMN.match(name)
    if m:
        return ("grad_norm", None) if m["total"] else ("layer_grad_norm", m["layer"])
    return None, None


class LightningReader:
    name = "lightning"
    description = "PyTorch Lightning CSVLogger metrics.csv (step and epoch rows, grad_{p}_norm columns)"

    def sniff(self, filename: str, head: bytes) -> float:
        header = csv_header(head)
        if header is None or "step" not in header:
            return 0.0
        if "value" in header and ("metric" in header or "kind" in header):
            return 0.0                       # the native long form
        if any(GRAD_COLUMN.match(c) for c in header):
            return 0.9
        # The CSVLogger writes an `epoch` column into every metrics.csv. The file name alone never
        # decides: `step,loss,grad_norm` is the native wide form under any name, and a gzipped
        # upload is read under its name without `.gz` while a plain one keeps whatever name it was
        # sent under, so a name rule read one CSV as two formats (newuser8 #12).
        if "epoch" in header:
            return 0.9 if filename == "metrics.csv" else 0.7
        return 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        points, warnings, _ = read_wide_csv(path, limits, step_column="step", fmt=self.name)
        return RunLog(format=self.name, source=path.name, series=points.build(role=lightning_role),
                      warnings=warnings)


READER = LightningReader()
