"""AllenNLP serialization folders: one ``metrics_epoch_<N>.json`` per epoch.

AllenNLP's trainer writes, after each epoch N, a JSON object of that epoch's figures
(``training_loss``, ``validation_loss``, ``training_accuracy``, ``validation_<metric>``...) beside
its bookkeeping (``best_epoch``, ``best_validation_*``, ``peak_*_memory_MB``, ``training_duration``,
``epoch``), and at the end ``metrics.json`` (the last epoch's again, with the best ones). A folder
holding two or more epoch files is read as one run: every number of every epoch file a point at
its epoch, the bookkeeping left out (it says what the run kept, not what it measured). Other files
in the folder are not read.
"""

from __future__ import annotations

import re
from pathlib import Path

from gradhealth.errors import LogError
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.textio import Points, loads, number, read_text
from gradhealth.logs.series import LogWarning, RunLog

_EPOCH_FILE = re.compile(r"^metrics_epoch_(\d+)\.json$")
#: What the trainer keeps, not what an epoch measured: the best epoch's figures, memory, durations
_BOOKKEEPING = re.compile(r"^(?:best_|peak_)|_memory_MB$|^(?:epoch|best_epoch|training_epochs|training_start_epoch)$"
                          r"|duration")
_MAX_EPOCHS = 100_000


def epoch_files(folder: Path) -> list[tuple[int, Path]]:
    """The folder's ``metrics_epoch_<N>.json`` files, by epoch."""
    found = []
    try:
        for p in folder.iterdir():
            m = _EPOCH_FILE.match(p.name)
            if m and p.is_file() and not p.is_symlink():
                found.append((int(m[1]), p))
                if len(found) > _MAX_EPOCHS:
                    raise LogError(f"{folder.name}: more than {_MAX_EPOCHS:,} epoch files")
    except OSError:
        return []
    return sorted(found)


class AllenNLPReader:
    name = "allennlp"
    description = "AllenNLP serialization folder: metrics_epoch_<N>.json, one JSON object of figures per epoch"

    def sniff(self, filename: str, head: bytes) -> float:
        return 0.0  # one epoch's file is one point: the folder is the run (sniff_dir)

    def sniff_dir(self, path: Path) -> float:
        """0.9 for a folder of two or more epoch files, else 0."""
        return 0.9 if len(epoch_files(path)) >= 2 else 0.0

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        files = epoch_files(path) if path.is_dir() else []
        if not files:
            raise LogError(f"{path.name}: no metrics_epoch_<N>.json files (an AllenNLP serialization folder)")
        points = Points(path.name, limits)
        skipped: set[str] = set()
        for epoch, p in files:
            try:
                obj = loads(read_text(p, limits))
            except ValueError as e:
                raise LogError(f"{path.name}/{p.name}: not valid JSON ({e})") from None
            if not isinstance(obj, dict):
                raise LogError(f"{path.name}/{p.name}: expected a JSON object of the epoch's figures, got "
                               f"{type(obj).__name__}")
            for key, raw in obj.items():
                if _BOOKKEEPING.search(key):
                    continue
                value = number(raw) if raw is not None else None
                if value is None:
                    skipped.add(key)
                    continue
                points.add(key, float(epoch), value)
        warnings = []
        if skipped:
            names = sorted(skipped)
            warnings.append(LogWarning("skipped_values", f"{path.name}: {len(names)} key(s) that are not numbers "
                                       f"were left out: {', '.join(names[:10])}" + (" ..." if len(names) > 10 else "")))
        if points.count == 0:
            raise LogError(f"{path.name}: the epoch files hold no numbers")
        return RunLog(format=self.name, source=path.name, series=points.build(step_unit="epoch"),
                      warnings=warnings)


READER = AllenNLPReader()
