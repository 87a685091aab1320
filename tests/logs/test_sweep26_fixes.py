"""What the twenty-sixth log sweep found: a loss that rises from its very first point (a boosting
run's training loss, round after round) crashed the lost-progress check and read as a plateau."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import write


@pytest.mark.parametrize("rise,noise", [(1.3, 0.0), (1.3, 0.01), (1.45, 0.0)])
def test_a_loss_rising_from_its_first_point_is_a_climb_not_a_crash_nor_a_plateau(
        tmp_path: Path, rise: float, noise: float) -> None:
    rng = np.random.default_rng(0)
    n = 12
    v = 0.7 * (1 + (rise - 1) * np.arange(n) / (n - 1)) * (1 + noise * rng.standard_normal(n))
    text = "step,loss\n" + "".join(f"{i},{x:.5f}\n" for i, x in enumerate(v))
    report = diagnose(read_log(write(tmp_path, "rise.csv", text)))
    codes = {f.code: f.severity for f in report.findings}
    assert codes.get("loss_divergence") == "warning" and "loss_plateau" not in codes
    [f] = [f for f in report.findings if f.code == "loss_divergence"]
    assert "never went below where it began" in f.summary


def test_a_loss_that_falls_first_is_still_judged_by_the_share_it_gives_back(tmp_path: Path) -> None:
    # falls 2.0 -> 1.0, then climbs back to 1.2: a fifth of the fall, under the third that counts
    v = np.concatenate([np.linspace(2.0, 1.0, 10), np.linspace(1.0, 1.2, 10)])
    text = "step,loss\n" + "".join(f"{i},{x:.5f}\n" for i, x in enumerate(v))
    report = diagnose(read_log(write(tmp_path, "fall.csv", text)))
    assert "loss_divergence" not in {f.code for f in report.findings if f.severity != "info"}


def _grid(rows: list[tuple[int, float]]) -> str:
    rule = "+--------------+--------------+--------------+"
    lines = [rule, "| Iteration    | Loss         | Elapsed Time |", rule]
    lines += [f"| {i:<12} | {v:<12.6g} | {i * 0.9:.2f}s        |" for i, v in rows]
    return "\n".join([*lines, rule]) + "\n"


def test_a_grid_table_with_plus_borders_is_read(tmp_path: Path) -> None:
    # Turi Create's progress table (tabulate's "grid" and PrettyTable draw the same borders)
    rows = [(i, 5.2 * 0.97 ** i) for i in range(1, 21)]
    run = read_log(write(tmp_path, "turi.log", _grid(rows)))
    [loss] = [s for s in run.series if s.name == "Loss"]
    assert run.format == "markdown" and loss.role == "loss"
    np.testing.assert_array_equal(loss.steps, np.arange(1, 21))
    np.testing.assert_allclose(loss.values, [v for _, v in rows], rtol=1e-5)


def test_detectron2s_diverged_predictions_are_a_reported_nan(tmp_path: Path) -> None:
    text = ("iter: 1  total_loss: 4.02e+06  loss_cls: 3.218e+06  loss_box_reg: 4.646e+05  lr: 2e-05  max_mem: 5626M\n"
            "FloatingPointError: Predicted boxes or scores contain Inf/NaN. Training has diverged.\n")
    report = diagnose(read_log(write(tmp_path, "d2.log", text)))
    assert [f.severity for f in report.findings if f.code == "nonfinite"] == ["error"]
