"""Robust statistics the log detectors share: finite points, rolling median/MAD, smoothing,
baselines.

Every detector compares a run with itself (its own early baseline, its own rolling median), so these
are robust to spikes and to the scale of the run.
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
import warnings

import numpy as np

from gradhealth.logs.series import Series


def median(values: np.ndarray | list[float]) -> np.float64:
    """``np.median`` of 1-D ``values`` (NaN where one is NaN or there are none), without its overflow:
    np.median takes the mean of the two middle values of an even count, ``(a + b) / 2``, which is
    inf for two values near the largest float (1.7976931348623157e308, a log that overflowed), with a
    RuntimeWarning. Halved first where the sum could overflow, the median of finite values is finite;
    elsewhere the sum is the same, bit for bit, as np.median's."""
    a = np.asarray(values, dtype=np.float64).ravel()
    n = len(a)
    if n == 0 or np.isnan(a).any():
        return np.float64(np.nan)
    k = n // 2
    if n % 2:
        return np.float64(np.partition(a, k)[k])
    part = np.partition(a, [k - 1, k])
    return np.float64(_middle(float(part[k - 1]), float(part[k])))


#: Below this magnitude the sum of two values cannot overflow
_HALF_MAX = 8.0e307


def _middle(lo: float, hi: float) -> float:
    """``(lo + hi) / 2`` as np.mean gives it, halved first where the sum would overflow."""
    return (lo + hi) / 2 if abs(lo) < _HALF_MAX and abs(hi) < _HALF_MAX else lo / 2 + hi / 2


def _row_medians(rows: np.ndarray, *, skip_nan: bool) -> np.ndarray:
    """``np.nanmedian(rows, axis=1)`` (``np.median`` where not ``skip_nan``) without its overflow:
    a row whose two middle values are near the largest float (their sum is inf) gets
    :func:`median`'s midpoint, halved first, instead; every other row keeps numpy's value, bit for
    bit. A row whose median is inf by its own values (one of them inf) keeps it."""
    with np.errstate(over="ignore"):  # the overflowing sums, replaced below
        out = np.nanmedian(rows, axis=1) if skip_nan else np.median(rows, axis=1)
    for i in np.flatnonzero(np.isinf(out)):
        row = rows[i]
        out[i] = median(row[~np.isnan(row)] if skip_nan else row)
    return out


def finite(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """The steps and values of ``s`` where the value is finite."""
    mask = np.isfinite(s.values)
    return s.steps[mask], s.values[mask]


def late_level(s: Series) -> tuple[float, int, int]:
    """``(median, finite, nonfinite)`` of the last quarter of ``s``'s logged points (3 at least):
    the median over the finite ones only (NaN where there are none) and how many of each. The
    window is the logged points', not the finite ones': a run that ends in NaN/Inf has no late level,
    and the last quarter of its finite points is its healthy middle (newuser11: a "late median" of
    2.41 from steps 124-164 of a norm that was Inf from step 165 to 299)."""
    window = s.values[-max(3, len(s.values) // 4):]
    ok = window[np.isfinite(window)]
    return (float(median(ok)) if len(ok) else math.nan), int(len(ok)), int(len(window) - len(ok))


def rolling_median_mad(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the ``window`` points *before* each point (nan for the first ones); finite
    for finite values however large (two neighbouring values near the largest float: their
    midpoint halved first, :func:`median`)."""
    n = len(values)
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if n <= 3:
        return med, mad
    padded = np.concatenate([np.full(window, np.nan), values])
    chunk = 65_536  # bounded memory for long runs
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        view = np.lib.stride_tricks.sliding_window_view(padded[start : stop + window - 1], window)[
            : stop - start
        ]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan rows; masked out below
            m = _row_medians(view, skip_nan=True)
            d = _row_medians(np.abs(view - m[:, None]), skip_nan=True)
        counts = np.sum(~np.isnan(view), axis=1)
        m[counts < 3] = np.nan
        med[start:stop], mad[start:stop] = m, d
    return med, mad


def fill_leading_baseline(values: np.ndarray, med: np.ndarray, mad: np.ndarray, window: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``med``/``mad`` (of :func:`rolling_median_mad`) with a baseline for the leading points it
    leaves out (fewer than 3 points before them): the larger of the median of the points before
    (however few: 1 or 2) and the median of the ``window`` points after, with the after points' MAD.
    The larger, so a point is judged a spike only where it stands far above the level on both its
    sides: a run that starts high and settles (0.38 is not before 51; 198, 422 before 3.3) has its
    high start as its level, while 52,169 at the third point, after 0.38 and 51 and before ~0.7, is
    2,030x the level before it (newuser13: grad norm 0.38 -> 51 -> 52,169 -> 2,283 -> ~0.7; the
    rolling median needs 3 points before, so the run's largest spike, at step 10, was never judged).
    The first point has nothing before it and stays unjudged (the run's start, not a spike)."""
    med, mad = med.copy(), mad.copy()
    n = len(values)
    for i in range(1, min(3, n - 1)):
        if not math.isnan(med[i]):
            continue
        before = values[:i][np.isfinite(values[:i])]
        after = values[i + 1:i + 1 + window]
        after = after[np.isfinite(after)]
        if not len(before) or len(after) < 3:
            continue
        a = float(median(after))
        med[i] = max(float(median(before)), a)
        mad[i] = float(median(np.abs(after - a)))
    return med, mad


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A centred running median (odd window), robust to isolated spikes.

    Near the ends the window shrinks to the points that exist: padding with the end value would
    let one outlier on the first or last step stand for half a window (a single corrupted last
    batch then read as a loss that ended high).

    Every point is ``median(values[max(0, i - half) : i + half + 1])`` (``half = w // 2``: NaN
    where that window holds a NaN, the mean of the two middle values where it holds an even
    count), computed in O(n log w): detectors smooth with a tenth of the run as the window, and a
    median per window (or a sorted list shifted per point) took minutes on a 10^6-episode run.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    w = max(1, min(window, n) | 1)
    if w == 1:
        return values.copy()
    half = w // 2
    nan = np.isnan(values)
    # NaN has no rank: stand it in by +inf, then give every window that held one NaN, as np.median does
    clean = np.where(nan, np.inf, values) if nan.any() else values
    out = np.empty(n)
    if n >= w:
        out[half : n - half] = _running_median(clean, w)
    left = range(min(half, n))
    right = range(max(half, n - half), n)
    # the edges' windows are the prefixes of up to 2 * half points and the suffixes as long
    out[left.start : left.stop] = _prefix_medians(clean, [min(i + half + 1, n) for i in left])
    out[right.start : right.stop] = _prefix_medians(clean[::-1], [n - max(0, i - half) for i in reversed(right)])[::-1]
    if nan.any():
        counts = np.concatenate([[0], np.cumsum(nan)])
        idx = np.arange(n)
        held = counts[np.minimum(n, idx + half + 1)] - counts[np.maximum(0, idx - half)]
        out[held > 0] = np.nan
    return out


# Up to this many window cells (n * w) the windows are partitioned with numpy (about 15 ns a cell).
_PARTITION_CELLS = 2_000_000
_CHUNK_CELLS = 1_000_000  # a chunk of windows copied at once: bounded memory
# Up to this estimated cost a sorted window slides in Python (bisect: about 1 us a point plus the
# shift of w / 2 pointers per insertion and deletion); above it SciPy's rank filter is imported.
_SLIDE_BUDGET_US = 150_000


def _running_median(values: np.ndarray, w: int) -> np.ndarray:
    """The median of every full window of odd size ``w`` (n - w + 1 of them), exactly as
    ``np.median`` gives it (the middle value: no averaging for an odd count), for NaN-free values.

    The middle value is selected, never computed, so the three paths give the same numbers, by
    the cost each has: small problems (the detectors' usual windows of 9-11 points) partition every
    window with numpy; windows of a tenth of a run of up to some 10^5 points keep one sorted window
    and slide it point by point; larger ones use SciPy's 1-D rank filter (1.15 on, scipy#20543),
    which keeps the window in a double heap in C, O(n log w): 0.4 s for 10^6 points at w = 10^5,
    where the sorted window took 77 s. SciPy is imported only then: importing ``scipy.ndimage`` cost
    every log check 0.25-0.4 s of start-up, a fifth of a whole-process check of 2M scalars."""
    half = w // 2
    n = len(values)
    windows = n - w + 1
    if windows * w <= _PARTITION_CELLS:
        out = np.empty(windows)
        view = np.lib.stride_tricks.sliding_window_view(values, w)
        step = max(1, _CHUNK_CELLS // w)
        for start in range(0, windows, step):
            stop = min(windows, start + step)
            out[start:stop] = np.partition(view[start:stop], half, axis=1)[:, half]
        return out
    if n * (1.0 + w / 4000.0) <= _SLIDE_BUDGET_US:
        seq = values.tolist()
        window = sorted(seq[:w])
        medians = [window[half]]
        for old, new in zip(seq, seq[w:], strict=False):  # the window leaves the last w points
            del window[bisect.bisect_left(window, old)]
            bisect.insort(window, new)
            medians.append(window[half])
        return np.asarray(medians, dtype=np.float64)
    from scipy.ndimage import median_filter  # deferred: a heavy import, for large inputs only

    return np.asarray(median_filter(values, size=w, mode="nearest")[half : n - half], dtype=np.float64)


def _prefix_medians(values: np.ndarray, lengths: list[int]) -> np.ndarray:
    """``median(values[:k])`` for each ``k`` of the non-decreasing ``lengths`` (NaN-free values),
    kept incrementally in two heaps: the lower half (negated, a max-heap) and the upper half."""
    out = np.empty(len(lengths))
    lower: list[float] = []   # negated: -lower[0] is the largest of the lower half
    upper: list[float] = []
    taken = 0
    for j, k in enumerate(lengths):
        for x in values[taken:k].tolist():
            if lower and x > -lower[0]:
                heapq.heappush(upper, x)
            else:
                heapq.heappush(lower, -x)
            # the lower half holds the middle: as many points as the upper half, or one more
            if len(lower) > len(upper) + 1:
                heapq.heappush(upper, -heapq.heappop(lower))
            elif len(upper) > len(lower):
                heapq.heappush(lower, -heapq.heappop(upper))
        taken = max(taken, k)
        # np.median's mean of the two middle values for an even count: (a + b) / 2, as np.mean,
        # halved first where the sum would overflow (:func:`median`)
        out[j] = -lower[0] if len(lower) > len(upper) else _middle(-lower[0], upper[0])
    return out


def centred_median(values: np.ndarray, half: int) -> np.ndarray:
    """Median of the up to ``half`` points on each side of every point, the point itself left out
    (nan where fewer than 2 neighbours exist). A point far above this baseline stands out from
    both its past and its future: a spike the run came back from."""
    n = len(values)
    out = np.full(n, np.nan)
    if n < 3 or half < 1:
        return out
    w = 2 * half + 1
    padded = np.concatenate([np.full(half, np.nan), values.astype(np.float64), np.full(half, np.nan)])
    chunk = 65_536  # bounded memory for long runs
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        view = np.lib.stride_tricks.sliding_window_view(padded[start : stop + w - 1], w)[: stop - start].copy()
        view[:, half] = np.nan
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan rows; masked out below
            m = _row_medians(view, skip_nan=True)
        m[np.sum(~np.isnan(view), axis=1) < 2] = np.nan
        out[start:stop] = m
    return out


def split_medians(values: np.ndarray, parts: int) -> np.ndarray:
    """``[median(b) for b in np.array_split(values, parts)]``, vectorised: ``array_split`` makes
    the first ``len % parts`` parts one longer, so the parts are two reshaped blocks (a live run
    re-runs the detectors on every batch, and a Python call per part cost most of it)."""
    n = len(values)
    size, longer = divmod(n, parts)
    head = longer * (size + 1)
    out = np.empty(parts)
    if longer:
        out[:longer] = _row_medians(values[:head].reshape(longer, size + 1), skip_nan=False)
    if parts > longer:
        out[longer:] = _row_medians(values[head:].reshape(parts - longer, size), skip_nan=False)
    return out


def diff_noise(values: np.ndarray) -> float:
    """The standard deviation of a series' point-to-point noise, read from its successive
    differences (1.4826 MAD of them, over sqrt 2): robust to outliers, and a slow trend barely
    moves it."""
    return 1.4826 * float(median(np.abs(np.diff(values)))) / math.sqrt(2)


def second_diff_noise(values: np.ndarray) -> float:
    """The standard deviation of one point's noise, read from the series' second differences
    (1.4826 MAD of them, over sqrt 6): a smooth descent and a steady rise are no noise (their
    second differences are near 0), so a trend does not hide in it. 0 under 3 points."""
    if len(values) < 3:
        return 0.0
    return 1.4826 * float(median(np.abs(np.diff(values, 2)))) / math.sqrt(6)


def theil_sen(x: np.ndarray, y: np.ndarray, *, max_points: int = 200,
              z: float = 2.576) -> tuple[float, float, float]:
    """Theil-Sen slope of ``y`` over ``x`` with Sen's rank-based confidence interval (``z``: 99 %
    two-sided by default): ``(slope, low, high)``.

    The median of all pairwise slopes ignores up to ~29 % outliers, so a few spikes do not tilt it.
    Series longer than ``max_points`` are first reduced to that many bin medians (the pairs grow as
    n^2); the interval is then that of the bin medians, which is what a trend over the run means.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) > max_points:
        x, y = split_medians(x, max_points), split_medians(y, max_points)
    n = len(x)
    if n < 2:
        return 0.0, -math.inf, math.inf
    i, j = np.triu_indices(n, 1)
    dx = x[j] - x[i]
    keep = dx != 0
    slopes = np.sort((y[j] - y[i])[keep] / dx[keep])
    m = len(slopes)
    if m == 0:
        return 0.0, -math.inf, math.inf
    slope = float(median(slopes))
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    lo_i, hi_i = int(math.floor((m - c) / 2)), int(math.ceil((m + c) / 2))
    low = float(slopes[lo_i]) if 0 <= lo_i < m else -math.inf
    high = float(slopes[hi_i]) if 0 <= hi_i < m else math.inf
    return slope, low, high


def resolution(values: np.ndarray, max_decimals: int = 9) -> float:
    """The rounding step the values were written with: 10^-d for the fewest decimals d that hold
    every value (Hugging Face's Trainer logs ``round(loss, 4)``), 0 when they are full floats.

    Near a value that small, two logged points one step apart differ by a factor that says
    nothing about the run (0.0002 is "twice" 0.0001)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0
    for d in range(max_decimals + 1):
        # a few units in the last place: the decimal text parsed, then rounded again in binary
        if np.all(np.abs(v - np.round(v, d)) <= 1e-12 * np.abs(v)):
            return 10.0 ** -d
    return 0.0


def natural_key(name: str) -> tuple:
    """Sort key that orders ``layers.2`` before ``layers.10`` (tools such as Lightning's CSVLogger
    write their columns in plain alphabetical order, which is not the depth order)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)


#: An early window whose median sits this many times above the warm-up points before it is already
#: inside a blow-up (:func:`early_baseline`): two decades, the default ``explode_error``.
EARLY_BLOWUP = 100.0


def early_baseline(values: np.ndarray, fraction: float) -> float:
    """Median of the early part of a run, after the first few warm-up points.

    The window is a fraction of the run, so it moves later as the log grows: a run that blew up
    early and stayed up (a missing ``zero_grad()``: norms 0.75-5.9 for 13 steps, then 2.9e6-1.8e7
    to the end, newuser5) had its window inside the blow-up on 250 points and more, the blown-up
    level became the baseline and its ``exploding_gradient`` disappeared. Where the window's median
    is :data:`EARLY_BLOWUP` times the warm-up points' before it (or their first 10's), the baseline
    is theirs: the level before the growth, however long the run."""
    n = len(values)
    k = max(5, int(n * fraction))
    skip = min(n // 20, k // 2)  # warm-up: the first 5% may be atypical either way
    part = values[skip : skip + k]
    if not len(part):
        return math.nan
    base = float(median(part))
    if skip >= 3:
        # the warm-up points, or their first 10 alone where the blow-up began among them (13 healthy
        # points of a 600-point run's 30)
        before = min(float(median(values[:skip])), float(median(values[:min(skip, 10)])))
        if before > 0 and base >= EARLY_BLOWUP * before:
            return before
    return base


#: Significant digits a logged float32 must carry to be printed in full (7 or more; Lightning's CSV
#: and the HF Trainer write 17): an exact repeat of such a value is no plateau's rounding
FULL_DIGITS = 7


def printed_digits(x: float) -> int:
    """Significant digits of ``x`` as the log printed it (its shortest round-trip form: 0.2297 -> 4,
    0.22974897921085358 -> 17); 0 for 0 and non-finite values."""
    if not math.isfinite(x) or x == 0:
        return 0
    mantissa = repr(abs(float(x))).split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


def num(x: float | np.generic) -> int | float:
    """A step as the log wrote it: an int when it is whole."""
    v = float(x)
    return int(v) if v.is_integer() else v


def span(steps: np.ndarray) -> list[int | float]:
    """``[first, last]`` of ``steps``."""
    return [num(steps[0]), num(steps[-1])]
