"""Which readers exist (one module per format, each exposing ``READER``), the limits a read works
within, and the protocol a reader follows. How a file's format is found is
:mod:`gradhealth.logs.sniff`; reading files, folders and archives is :mod:`gradhealth.logs.load`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gradhealth.logs.series import RunLog

#: One module per format under gradhealth.logs.readers, each exposing ``READER``.
READER_MODULES: tuple[str, ...] = (
    "native", "hf_trainer", "lightning", "tensorboard", "mlflow", "wandb", "keras", "test_tube", "sb3", "monitor",
    "sacred", "clearml", "allennlp", "markdown", "notebook", "text", "numbers",
)


def _configured_max_file_bytes() -> int:
    """The upload limit as :class:`gradhealth.settings.Settings` defines it: one definition, which
    the reader takes unless told otherwise (imported late: settings pull in pydantic-settings)."""
    from gradhealth.settings import Settings

    return int(Settings.model_fields["max_upload_bytes"].default)


@dataclass(frozen=True)
class ReadLimits:
    """Limits on what a read may consume (uploads are untrusted).

    ``max_file_bytes`` defaults to the service's upload limit (``GRADHEALTH_MAX_UPLOAD_BYTES``'s
    default); :meth:`gradhealth.settings.Settings.read_limits` gives the configured one.
    """

    max_file_bytes: int = field(default_factory=_configured_max_file_bytes)   # one log file
    max_archive_entries: int = 10_000          # files in a zip / tar.gz
    max_uncompressed_bytes: int = 2 * 2**30    # all files of an archive, uncompressed
    max_compression_ratio: float = 200.0       # uncompressed / compressed, per archive (zip bombs)
    max_points: int = 50_000_000               # values across all series
    max_series: int = 10_000                   # series (columns, metric names) in one log


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
