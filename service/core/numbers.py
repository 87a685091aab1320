"""Numbers as people read them in messages: plain decimals, never scientific notation."""

from __future__ import annotations

import math
from collections.abc import Callable


def plain(x: float) -> str:
    """``x`` as a plain decimal: 999999999, 2592000, 2.5, 0.25 (``:g`` wrote ``1e+09`` and
    ``2.592e+06``: newuser6). Whole numbers have no point; others keep up to 3 decimals (at least
    one significant digit)."""
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e18:
        return str(int(x))
    places = 3
    while places < 12 and round(x, places) == 0:
        places += 1
    return f"{x:.{places}f}".rstrip("0").rstrip(".")


def parse_range(text: str, name: str, example: str, error: Callable[[str], Exception]) -> tuple[float, float]:
    """``LO,HI``, two finite numbers with LO < HI, as a pair; ``error(message)`` raised naming
    ``name`` (the option or field) and ``example`` (what a right one looks like) otherwise."""
    parts = str(text).split(",")
    try:
        low, high = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise error(f"{name}: expected LO,HI, two finite numbers with LO < HI ({example}), not {str(text)[:40]!r}")
    return low, high
