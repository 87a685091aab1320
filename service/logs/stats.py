"""Robust statistics the log detectors share: finite points, rolling median/MAD, smoothing,
baselines.

Every detector compares a run with itself (its own early baseline, its own rolling median), so these
are robust to spikes and to the scale of the run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from gradhealth.logs.series import Series


def finite(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """The steps and values of ``s`` where the value is finite."""
    mask = np.isfinite(s.values)
    return s.steps[mask], s.values[mask]


def rolling_median_mad(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the ``window`` points *before* each point (nan for the first ones)."""
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
            m = np.nanmedian(view, axis=1)
            d = np.nanmedian(np.abs(view - m[:, None]), axis=1)
        counts = np.sum(~np.isnan(view), axis=1)
        m[counts < 3] = np.nan
        med[start:stop], mad[start:stop] = m, d
    return med, mad


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A centred running median (odd window), robust to isolated spikes."""
    n = len(values)
    w = max(1, min(window, n) | 1)
    if w == 1:
        return values.copy()
    half = w // 2
    padded = np.concatenate([np.full(half, values[0]), values, np.full(half, values[-1])])
    view = np.lib.stride_tricks.sliding_window_view(padded, w)
    return np.median(view, axis=1)


def early_baseline(values: np.ndarray, fraction: float) -> float:
    """Median of the early part of a run, after the first few warm-up points."""
    n = len(values)
    k = max(5, int(n * fraction))
    skip = min(n // 20, k // 2)  # warm-up: the first 5% may be atypical either way
    part = values[skip : skip + k]
    return float(np.median(part)) if len(part) else math.nan


def num(x: float | np.generic) -> int | float:
    """A step as the log wrote it: an int when it is whole."""
    v = float(x)
    return int(v) if v.is_integer() else v


def span(steps: np.ndarray) -> list[int | float]:
    """``[first, last]`` of ``steps``."""
    return [num(steps[0]), num(steps[-1])]
