"""Lists as people read them in messages: the first few names, and how many more."""

from __future__ import annotations

from collections.abc import Sequence


def first_few(names: Sequence[str], most: int = 5) -> str:
    """The first ``most`` of ``names`` joined by commas, and how many more: ``a, b, c and 3 more``.
    A long list (hundreds of layers, every field of a schema) is named by its start, with its size."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")
