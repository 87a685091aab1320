"""Small builders shared by the reader tests."""

from __future__ import annotations

from pathlib import Path


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    """A file named ``name`` in ``tmp_path`` holding ``data``."""
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def by_name(log):  # noqa: ANN001, ANN201 - a RunLog in, its series by name out
    return {s.name: s for s in log.series}
