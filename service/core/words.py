"""Lists as people read them in messages: the first few names, and how many more."""

from __future__ import annotations

from collections.abc import Sequence


def first_few(names: Sequence[str], most: int = 5) -> str:
    """The first ``most`` of ``names`` joined by commas, and how many more: ``a, b, c and 3 more``.
    A long list (hundreds of layers, every field of a schema) is named by its start, with its size."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


#: where a shortened message may be cut, best first: between list items, then between words
_BOUNDARIES = ((", ", "; "), (" ",))


def shorten(text: str, most: int) -> str:
    """``text`` in at most ``most`` characters, ended with `` …`` where it is cut: whole where it
    fits; else cut after the last list item (``, `` or ``; ``) that ends in the second half of the
    room, else after the last whole word there, never inside a value (newuser19 #4: a finding's
    summary cut at 120 characters ended ``train/reward = )``, a metric with an empty value)."""
    if len(text) <= most:
        return text
    room = text[:max(most - 2, 0)]
    for separators in _BOUNDARIES:
        cut = max(room.rfind(s) for s in separators)
        if cut >= len(room) // 2:
            return room[:cut].rstrip(" ,;:=(") + " …"
    return room + " …"
