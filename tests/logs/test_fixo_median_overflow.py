"""Medians of values near the largest float (closing35 notes, left by fixL: ``stats.rolling_median_mad``
gave an inf median where two neighbouring values near float max were averaged, their sum
overflowing; its siblings ``centred_median`` and ``split_medians`` alike)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gradhealth.logs import stats

BIG = float(np.finfo(np.float64).max)


def _midpoint(a: float, b: float) -> float:
    """The exact midpoint, computed without the sum (each half is exact for these values)."""
    return a / 2 + b / 2


def test_rolling_median_of_neighbours_near_float_max_is_finite():
    a, b, c, d = 0.90 * BIG, 0.95 * BIG, 0.99 * BIG, 0.97 * BIG
    v = np.array([1.0, 2.0, 3.0, a, b, c, d])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        med, mad = stats.rolling_median_mad(v, 4)
    # the 4 points before index 5 are 2, 3, a, b: the middle two 3 and a; before index 6: 3, a, b, c
    assert med[5] == _midpoint(3.0, a)
    assert med[6] == _midpoint(a, b)
    assert np.all(np.isfinite(med[3:])) and np.all(np.isfinite(mad[3:]))
    # its MAD: the median of |x - m| over 3, a, b, c (a's and b's deviations are the middle two)
    m = _midpoint(a, b)
    devs = sorted(abs(x - m) for x in (3.0, a, b, c))
    assert mad[6] == pytest.approx(_midpoint(devs[1], devs[2]), rel=1e-15)


def test_rolling_median_of_ordinary_values_is_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    v = rng.lognormal(size=200)
    v[[17, 90]] = np.nan
    med, mad = stats.rolling_median_mad(v, 10)
    for i in range(3, 200):
        window = v[max(0, i - 10):i]
        window = window[~np.isnan(window)]
        if len(window) >= 3:
            assert med[i] == np.median(window)
            assert mad[i] == np.median(np.abs(window - np.median(window)))


def test_an_inf_in_the_window_still_gives_an_inf_median():
    v = np.array([1.0, 2.0, math.inf, math.inf, 5.0])
    med, _ = stats.rolling_median_mad(v, 4)
    assert med[4] == math.inf  # 1, 2, inf, inf: the middle two are 2 and inf


def test_the_sibling_medians_near_float_max():
    a, b = 0.9 * BIG, 0.95 * BIG
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # centred: each point's neighbours, the point left out (index 1: a and b around 0 -> a, b)
        centred = stats.centred_median(np.array([a, 0.0, b]), 1)
        halves = stats.split_medians(np.array([1.0, 3.0, a, b]), 2)
    assert centred[1] == _midpoint(a, b)
    assert halves.tolist() == [2.0, _midpoint(a, b)]
