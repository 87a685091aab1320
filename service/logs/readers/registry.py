"""Which readers exist, how a file's format is found, and reading files, folders and archives."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gradhealth.errors import UnknownLogFormat
from gradhealth.logs.series import RunLog

#: One module per format under gradhealth.logs.readers, each exposing ``READER``.
READER_MODULES: tuple[str, ...] = (
    "native", "hf_trainer", "lightning", "tensorboard", "mlflow", "wandb", "keras", "text",
)


@dataclass(frozen=True)
class ReadLimits:
    """Limits on what a read may consume (uploads are untrusted)."""

    max_file_bytes: int = 512 * 2**20          # one log file
    max_archive_entries: int = 10_000          # files in a zip / tar.gz
    max_uncompressed_bytes: int = 2 * 2**30    # all files of an archive, uncompressed
    max_compression_ratio: float = 200.0       # uncompressed / compressed, per archive (zip bombs)
    max_points: int = 50_000_000               # values across all series


class Reader(Protocol):
    name: str          # the format hint clients use, e.g. "tensorboard"
    description: str

    def sniff(self, filename: str, head: bytes) -> float:
        """How sure (0..1) that a file named ``filename`` starting with ``head`` is this format."""
        ...

    def read(self, path: Path, limits: ReadLimits) -> RunLog:
        """Read the file; raise :class:`gradhealth.errors.LogError` saying where it is broken."""
        ...


def readers() -> list[Reader]:
    """Every registered reader."""
    return [importlib.import_module(f"gradhealth.logs.readers.{m}").READER for m in READER_MODULES]


def formats() -> dict[str, str]:
    """Format hint -> description."""
    return {r.name: r.description for r in readers()}


HEAD_BYTES = 64 * 1024


def detect(path: Path, hint: str | None = None) -> Reader:
    """The reader for ``path``: the hinted one (checked against the content), else the surest sniff."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    if not head:
        raise UnknownLogFormat(f"{path.name}: the file is empty")
    all_readers = readers()
    if hint is not None:
        match = [r for r in all_readers if r.name == hint]
        if not match:
            raise UnknownLogFormat(f"unknown format hint {hint!r}; use one of: {', '.join(r.name for r in all_readers)}")
        if match[0].sniff(path.name, head) <= 0:
            best = max(all_readers, key=lambda r: r.sniff(path.name, head))
            guess = f"; it looks like {best.name}" if best.sniff(path.name, head) > 0 else ""
            raise UnknownLogFormat(f"{path.name} is not in the {hint} format{guess}")
        return match[0]
    scored = sorted(((r.sniff(path.name, head), i, r) for i, r in enumerate(all_readers)), key=lambda t: (-t[0], t[1]))
    score, _, best = scored[0]
    if score <= 0:
        raise UnknownLogFormat(f"{path.name}: not a log format this service reads "
                               f"({', '.join(r.name for r in all_readers)})")
    return best
