"""errsweep7 items 2, 3 and 8 (third bullet): losses and gradient norms at the ends of the float range.

A loss alternating 1e300 / 1e-300 over 40+ rows crashed the log check (a spike's ratio to its rolling
median, 1e600, overflowed to inf, which the evidence holds as null, and the summary formatted the null);
values near 1.8e308 printed numpy "overflow encountered" RuntimeWarnings on stderr; and +-1e300
alternately was "12 of its 12 points are 1e+15 or more" with half of them -1e300."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import run_log_check

MAX = sys.float_info.max  # 1.7976931348623157e308
TINY = 5e-324  # the smallest subnormal


def _every(k: int, a: float, b: float) -> Callable[[int], float]:
    return lambda i: a if i % k == 0 else b


_MIXED = [math.inf, math.nan, 1e308, -1e308, TINY, 1.0, -math.inf]

# name -> (loss at row i, grad_norm at row i or None)
PATTERNS: dict[str, tuple[Callable[[int], float], Callable[[int], float] | None]] = {
    "every_third_1e300_else_1e-300": (_every(3, 1e300, 1e-300), None),
    "alternating_1e300_1e-300": (_every(2, 1e300, 1e-300), None),
    "alternating_pm1e300": (lambda i: 1e300 * (-1) ** i, None),
    "alternating_pm_max_grad_1e308": (lambda i: MAX * (-1) ** i, lambda i: 1e308),
    "max_everywhere": (lambda i: MAX, lambda i: MAX),
    "subnormal_everywhere": (lambda i: TINY, lambda i: TINY),
    "subnormal_and_max_grad": (_every(2, TINY, 1.0), _every(2, TINY, MAX)),
    "mixed_inf_nan_huge": (lambda i: _MIXED[i % 7], lambda i: [1e308, math.nan, math.inf, TINY][i % 4]),
    "rising_1e-300_to_max": (lambda i: 10.0 ** min(-300 + 15 * i, 308), lambda i: 10.0 ** min(-300 + 20 * i, 308)),
    "late_spike_to_1e300": (lambda i: 1.0 / (i + 1) if i % 50 < 47 else 1e300, lambda i: 1.0 if i % 50 < 47 else MAX),
}
ROWS = (10, 20, 40, 41, 100, 300)


def _csv(tmp_path: Path, name: str, rows: int) -> Path:
    loss, grad = PATTERNS[name]
    lines = ["step,loss" + (",grad_norm" if grad else "")]
    lines += [f"{i},{loss(i)!r}" + (f",{grad(i)!r}" if grad else "") for i in range(rows)]
    path = tmp_path / f"{name}_{rows}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_errsweep7_extreme_values_give_a_document_and_no_runtime_warning(tmp_path: Path, name: str, rows: int) -> None:
    path = _csv(tmp_path, name, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning (or any other) fails the test
        doc = run_log_check(path)
    assert doc.status in {"healthy", "warning", "unhealthy"}
    assert doc.model_dump_json()  # valid JSON: no NaN/Inf left in it
    for f in doc.findings:
        assert "None" not in f.summary and "infx" not in f.summary and "nanx" not in f.summary, f.summary


def test_errsweep7_a_spike_past_the_float_range_folded_into_the_divergence_is_said_in_words(tmp_path: Path) -> None:
    # 1e300 over a rolling median of 1e-300 is 1e600: past the largest float, null in the evidence
    doc = run_log_check(_csv(tmp_path, "every_third_1e300_else_1e-300", 40))
    div = next(f for f in doc.findings if f.code == "loss_divergence")
    assert "the log ends in it: loss reached 1e+300" in div.summary
    assert "(more than 1.8e+308x its rolling median)" in div.summary
    assert div.evidence.model_extra["spikes"][0]["events"][-1]["peak_ratio"] is None


def test_errsweep7_the_level_before_an_overflowing_blow_up_is_stated_not_zero(tmp_path: Path) -> None:
    # grad norm 5e-324, 1.8e308, ...: the rise is past any float; the level before is 5e-324, not 1.8e308/inf = 0
    doc = run_log_check(_csv(tmp_path, "subnormal_and_max_grad", 40))
    spike = next(f for f in doc.findings if f.code == "gradient_spike")
    assert "more than 1.8e+308x the level before the spike (4.94e-324, before step 1)" in spike.summary


def test_errsweep7_cli_prints_nothing_on_stderr_for_values_near_the_float_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("step,loss,grad_norm\n" + "".join(f"{i},{MAX * (-1) ** i!r},1e308\n" for i in range(100)))
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(path), "--no-timings"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""


def test_errsweep7_huge_losses_of_both_signs_are_counted_by_magnitude(tmp_path: Path) -> None:
    v = [1e300 * (-1) ** i for i in range(12)]
    path = tmp_path / "loss.csv"
    path.write_text("step,loss\n" + "".join(f"{i},{x!r}\n" for i, x in enumerate(v)))
    div = next(f for f in run_log_check(path).findings if f.code == "loss_divergence")
    big = sum(abs(x) >= 1e15 for x in v)
    negative = sum(x <= -1e15 for x in v)
    assert (big, negative) == (12, 6)
    assert f"({big} of its 12 points are 1e+15 or more in magnitude, {negative} of them negative)" in div.summary
    assert "never above 1.5x its start in magnitude" in div.summary


def test_errsweep7_positive_huge_losses_keep_the_plain_wording(tmp_path: Path) -> None:
    path = tmp_path / "loss.csv"
    path.write_text("step,loss\n" + "".join(f"{i},{1e300!r}\n" for i in range(12)))
    div = next(f for f in run_log_check(path).findings if f.code == "loss_divergence")
    assert "(12 of its 12 points are 1e+15 or more)" in div.summary


def test_errsweep7_median_does_not_overflow_and_otherwise_equals_numpy() -> None:
    from gradhealth.logs.stats import median, smooth

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert median([MAX, MAX]) == MAX  # np.median: (MAX + MAX) / 2 = inf, with a RuntimeWarning
        assert median([MAX, -MAX, MAX, -MAX]) == 0.0
        assert median([-MAX, -MAX]) == -MAX
        assert median([TINY, TINY]) == TINY
        assert math.isnan(median([1.0, math.nan])) and math.isnan(median([]))
        assert list(smooth(np.full(6, MAX), 3)) == [MAX] * 6  # the shrunken end windows hold 2 points
    rng = np.random.default_rng(7)
    for n in range(1, 60):
        x = rng.standard_normal(n) * 10.0 ** float(rng.integers(-300, 300))
        assert median(x) == np.median(x)


def test_errsweep7_times_reads_a_ratio_past_the_float_range_in_words() -> None:
    from gradhealth.logs.detectors.common import times

    assert times(36.4) == "36.4x"
    assert times(math.inf) == times(None) == "more than 1.8e+308x"
