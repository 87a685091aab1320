"""Keras ``CSVLogger`` files and Keras ``History`` saved as CSV: one row per epoch.

``tf.keras.callbacks.CSVLogger`` writes a header ``epoch,<metric>,...,val_<metric>,...`` (e.g.
``epoch,accuracy,loss,lr,val_accuracy,val_loss``) and one row per epoch; a ``History`` saved with
``pandas.DataFrame(history.history).to_csv(...)`` has an unnamed index column first instead of
``epoch``. Every other column becomes a series against the epoch (or the index), with
``step_unit="epoch"``. ``loss``/``val_loss``/``lr``/``learning_rate`` get their roles; other columns
(accuracy, dice_coef...) are metrics. Keras writes non-finite values as ``nan``/``inf``.
"""

from __future__ import annotations

import re
from pathlib import Path

from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import csv_header, open_log, read_wide_csv
from gradhealth.logs.series import RunLog

_INDEX = ("", "Unnamed: 0")
_NAME = re.compile(r"[A-Za-z_][\w./-]*")
_LOSSY = ("loss", "val_loss")


class KerasReader:
    name = "keras"
    description = "Keras CSVLogger / History CSV (one row per epoch: epoch, loss, val_loss, lr...)"

    def sniff(self, filename: str, head: bytes) -> float:
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
            header = csv_header(f.read(64 * 1024)) or []
        step = "epoch" if "epoch" in header else next((c for c in _INDEX if c in header), None)
        points, warnings, _ = read_wide_csv(
            path, limits, step_column=step, fmt=self.name,
            skip=lambda c: c in _INDEX, skip_repeated_header=True)
        return RunLog(format=self.name, source=path.name, series=points.build(step_unit="epoch"),
                      warnings=warnings)


READER = KerasReader()
