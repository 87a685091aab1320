"""logsweep99 pinn_early_spike: a loss spike at a run's second point, on a loss falling by decades, was
measured against the points after it. Its ratio ("36.4x its rolling median") and the "undid what the run
had learnt" warning read the centred median of the epochs after it as the level before it, and the noise
it was judged in was one figure for the whole log, so the first 250 epochs of the same run were healthy
and the first 500 a warning."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.library import check_logs
from tests.logs.helpers import write


def _metrics(tmp_path: Path, loss: np.ndarray, name: str = "mean_loss") -> Path:
    """A Lightning CSVLogger ``metrics.csv``: one epoch mean per row."""
    rows = "".join(f"{e},{v!r},{e}\n" for e, v in enumerate(loss.tolist()))
    return write(tmp_path, "metrics.csv", f"epoch,{name},step\n{rows}")


def _spike(path: Path) -> Finding | None:
    found = [f for f in check_logs(path).findings if f.code == "loss_spike"]
    return found[0] if found else None


def _pinn_like(n: int = 500) -> np.ndarray:
    """The shape of the PINN's mean_loss: 1.37e13, then 10.8x that at epoch 1, then falling twelve
    decades over ~260 epochs with a scatter of about half a log unit, then flat at ~13.4 with a
    scatter of a thousandth."""
    rng = np.random.default_rng(99)
    k = np.arange(n)
    start, floor = math.log(1.367e13), math.log(13.4)
    level = np.maximum(start - (start - floor) * k / 260, floor)
    noise = np.where(level > floor, 0.5, 0.001) * rng.standard_normal(n)
    loss = np.exp(level + noise)
    loss[0] = 1.367e13
    loss[1] = 10.8 * loss[0]
    return loss


def test_an_early_jump_on_a_loss_falling_by_decades_gets_the_same_verdict_however_long_the_log(
        tmp_path: Path) -> None:
    loss = _pinn_like()
    (tmp_path / "short").mkdir()
    (tmp_path / "long").mkdir()
    short = _spike(_metrics(tmp_path / "short", loss[:250]))
    long = _spike(_metrics(tmp_path / "long", loss))
    # the same early epochs: the flat tail logged long after them does not change what they were
    assert (short is None) == (long is None)
    for f in (short, long):
        if f is not None:
            assert f.severity == "info"
            assert "undid" not in f.summary and "undid_learning" not in f.evidence.model_dump()
            assert f.evidence.model_dump()["max_ratio"] < 11


def _early_jump(n: int = 200) -> np.ndarray:
    """An epoch mean at 10, 108 at its second epoch (10.8x the only point before it), then falling
    smoothly to 0.01, a hundredth of a per-cent scatter."""
    rng = np.random.default_rng(5)
    k = np.arange(n)
    loss = (10 * np.exp(-k / 5) + 0.01) * np.exp(0.01 * rng.standard_normal(n))
    loss[0], loss[1] = 10.0, 108.0
    return loss


def test_a_jump_at_the_second_point_is_measured_from_the_point_before_it(tmp_path: Path) -> None:
    f = _spike(_metrics(tmp_path, _early_jump()))
    assert f is not None and f.evidence.model_dump()["spike_steps"] == [1]
    # against the larger of the median before it (10, the first point) and that of the window after
    # (far lower): 10.8x, not the ~40x of a median over the epochs after it
    assert abs(f.evidence.model_dump()["max_ratio"] - 10.8) < 0.01
    assert "10.8x the level before the spike, 10)" in f.summary
    # one point before it: the run had learnt nothing it could undo, and one jump early in a run that
    # falls on from there is a note
    assert "undid" not in f.summary and "undid_learning" not in f.evidence.model_dump()
    assert f.severity == "info"


def test_a_later_jump_after_the_run_had_halved_still_undid_learning(tmp_path: Path) -> None:
    # an epoch mean from 4.0 down to ~1.0, thrown to 12 (12x the level before, 3x the start) at epoch
    # 150 of 400 and back: the run lost what it had learnt
    rng = np.random.default_rng(7)
    k = np.arange(400)
    loss = (1.0 + 3.0 * np.exp(-k / 10)) * np.exp(0.01 * rng.standard_normal(400))
    loss[150] = 12.0
    f = _spike(_metrics(tmp_path, loss))
    assert f is not None and f.severity == "warning"
    undid = f.evidence.model_dump()["undid_learning"]
    assert undid["step"] == 150 and undid["why"] == "start"
    # the level before it: the median of the window of epochs before epoch 150
    assert abs(undid["baseline"] - float(np.median(loss[150 - 12:150]))) < 0.05
    assert "the spike undid what the run had learnt" in f.summary
