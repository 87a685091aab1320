"""logsweep99 #3: a NaN that nothing grew towards is worded from the numbers before it. A PINN's
mean_loss fell about threefold over the 25 points before its NaN (PINNforEM's Lightning
metrics.csv: 22.4 at most, 1.04 last) and was called "flat"; a fall is no growth either, so the
verdict (an input or an operation, not the learning rate) stands, but the words say it fell. The
logs here are synthetic, in Lightning's CSVLogger format."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs

_NAN_AT = 218
_WINDOW = 25  # the finite points before the NaN the check looks at (LogThresholds.window)


def _pinn_csv(tmp_path: Path, window_fall: float) -> tuple[Path, np.ndarray]:
    """``epoch,mean_loss,step``: the loss falls from 1e4 to 10 over the first 193 epochs, then by
    ``window_fall`` over the last 25 before the NaN at epoch 218 (NaN from there on); the values of
    those 25 come back with the path."""
    rng = np.random.default_rng(99)
    k = np.arange(_NAN_AT)
    start = _NAN_AT - _WINDOW
    level = np.where(k < start, 1e4 * (10 / 1e4) ** (k / start),
                     10 * (1 / window_fall) ** ((k - start) / (_WINDOW - 1)))
    loss = level * np.exp(0.25 * rng.standard_normal(len(k)))
    rows = ["epoch,mean_loss,step"] + [f"{i},{v},{i}" for i, v in enumerate(loss)]
    rows += [f"{i},nan,{i}" for i in range(_NAN_AT, _NAN_AT + 40)]
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(rows) + "\n")
    return path, loss[-_WINDOW:]


def _nan_finding(path: Path):  # noqa: ANN202
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    return f


def test_a_loss_that_fell_before_its_nan_is_called_falling_not_flat(tmp_path: Path) -> None:
    path, window = _pinn_csv(tmp_path, window_fall=10.0)
    f = _nan_finding(path)
    # the verdict stands: nothing grew, so the data or an operation, not the step size
    assert f.evidence.model_dump()["sudden"] is True and [r.id for r in f.remedies][0] == "check_data"
    # the halves' medians, computed here from the values written: a fall of more than 2x
    first, second = float(np.median(window[:12])), float(np.median(window[12:]))
    assert second * 2 < first
    assert "was flat" not in f.summary
    assert (f"mean_loss was falling over the 25 points before it (median {first:.3g} over their first half, "
            f"{second:.3g} over their second; at most {window.max():.3g}, last {window[-1]:.3g})") in f.summary
    before = f.evidence.model_dump()["before"]["mean_loss"]
    assert before["trend"] == "falling"
    assert math.isclose(before["first_level"], first) and math.isclose(before["last_level"], second)
    assert "were falling" in f.remedies[0].change


def test_a_loss_level_before_its_nan_is_still_called_flat(tmp_path: Path) -> None:
    # the same run with the 25 points before the NaN level (noise only): flat, as before
    path, window = _pinn_csv(tmp_path, window_fall=1.0)
    f = _nan_finding(path)
    assert f"mean_loss was flat over the 25 points before it (median {float(np.median(window)):.3g}" in f.summary
    assert f.evidence.model_dump()["before"]["mean_loss"]["trend"] == "flat"
    assert "were flat" in f.remedies[0].change
