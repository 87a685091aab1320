"""Numbers as people read them in messages: plain decimals, never scientific notation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


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
    """``LO,HI``, two finite numbers with LO < HI within :data:`MAX_RANGE` (:func:`range_problem`), as a pair; ``error(message)`` raised naming
    ``name`` (the option or field) and ``example`` (what a right one looks like) otherwise."""
    parts = str(text).split(",")
    try:
        low, high = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if range_problem(low, high) is not None:
        raise error(f"{name}: expected LO,HI, {RANGE_RULE} ({example}), not {str(text)[:40]!r}")
    return low, high


#: The largest magnitude either end of a data range may have (``input.range``, ``loss.target_range``,
#: ``--input-range``, ``--target-range``, ``check_module(input_range=, target_range=)``). Inputs are
#: drawn uniform in the range, so ``high - low`` must be finite (±1e308 overflowed to inf and the
#: NaN was blamed on the first layer: errsweep5), and so must their squares and the sums of them
#: the first layer takes: (1e6)^2 = 1e12, times 2^31 elements, is about 2e21, far below float32's
#: 3.4e38. 1e6 still holds raw data far from unit scale (16-bit pixels to 65535, prices in the
#: hundreds of thousands); wider data is better rescaled before a network sees it anyway. The
#: same kind of bound as a spec's ``scale`` (at most 100), looser because a range is the data's own.
MAX_RANGE = 1e6
#: What a range must be, in the words every door uses.
RANGE_RULE = f"two finite numbers with low < high, each between -{plain(MAX_RANGE)} and {plain(MAX_RANGE)}"


def range_problem(low: Any, high: Any) -> str | None:
    """Why ``(low, high)`` is not a usable data range (see :data:`MAX_RANGE`), or None: the one
    check behind every door that takes a range. The words quote the pair, say what is wrong and
    give the rule."""
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError, OverflowError):
        return f"{str([low, high])[:80]} are not numbers; expected {RANGE_RULE}"
    shown = f"[{lo:.10g}, {hi:.10g}]"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{shown} is not finite; expected {RANGE_RULE}"
    if max(abs(lo), abs(hi)) > MAX_RANGE:
        return (f"{shown} is too far from zero; expected {RANGE_RULE} (a range this wide overflows what the "
                "check computes: rescale such data first)")
    if not lo < hi:
        return f"{shown}: low is not below high; expected {RANGE_RULE}"
    return None
