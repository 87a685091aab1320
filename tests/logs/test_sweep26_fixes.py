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
