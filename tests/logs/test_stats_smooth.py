"""logs.stats.smooth: a centred running median, checked against np.median of each window."""

from __future__ import annotations

import numpy as np
import pytest

from gradhealth.logs.stats import smooth


def _brute(values: np.ndarray, window: int) -> np.ndarray:
    n = len(values)
    w = max(1, min(window, n) | 1)
    half = w // 2
    return np.array([np.median(values[max(0, i - half): i + half + 1]) for i in range(n)])


@pytest.mark.parametrize("window", [1, 3, 9, 31, 33, 35, 101, 500, 2001])
@pytest.mark.parametrize("n", [1, 2, 5, 40, 1000])
def test_smooth_is_the_median_of_each_centred_window(window: int, n: int) -> None:
    rng = np.random.default_rng(n * 7919 + window)
    # ties, repeated values and both signs of zero: the sorted window must drop the right one
    values = np.round(rng.standard_normal(n), 1)
    values[::7] = 0.0
    values[3::11] = -0.0
    assert np.array_equal(smooth(values, window), _brute(values, window))


def test_a_nan_propagates_as_numpy_does() -> None:
    values = np.arange(200, dtype=np.float64)
    values[100] = np.nan
    got, want = smooth(values, 41), _brute(values, 41)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    assert np.isnan(got[100]) and not np.isnan(got[0])


@pytest.mark.parametrize("path", ["partition", "slide", "rank_filter"])
@pytest.mark.parametrize(("n", "window"), [(400, 41), (3000, 301), (2500, 2499)])
def test_every_running_median_path_selects_numpys_median(monkeypatch: pytest.MonkeyPatch, path: str,
                                                         n: int, window: int) -> None:
    # The three paths are picked by cost; each must give np.median's values (ties, signed zeros, inf)
    from gradhealth.logs import stats

    monkeypatch.setattr(stats, "_PARTITION_CELLS", 10**12 if path == "partition" else 0)
    monkeypatch.setattr(stats, "_SLIDE_BUDGET_US", 10**12 if path == "slide" else 0)
    rng = np.random.default_rng(n + window)
    values = np.round(rng.standard_normal(n), 1)
    values[::13] = -0.0
    values[5::17] = np.inf
    values[8::19] = -np.inf
    with np.errstate(invalid="ignore"):  # an edge's even window may average inf and -inf, as numpy does
        expected = _brute(values, window)
    assert np.array_equal(smooth(values, window), expected, equal_nan=True)
