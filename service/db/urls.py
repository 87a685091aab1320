"""What a database URL names, read without loading SQLAlchemy (the settings check it at start-up)."""

from __future__ import annotations


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (``sqlite:///PATH``), or None: another database, or one in memory."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1] if "///" in url else ""
    return path if path and path != ":memory:" else None
