"""What the twenty-ninth log sweep found (committed log files): a loss running away below 0 read
healthy, as every loss with a negative value was taken for an objective with no scale."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import write


def _csv(losses: list[float], extra: str = "") -> str:
    """Keras' CSVLogger: epoch, loss (and ``extra`` columns, constant)."""
    head = "epoch,loss" + (f",{extra}" if extra else "")
    return head + "\n" + "\n".join(f"{e},{v!r}" + (",1.0" if extra else "") for e, v in enumerate(losses)) + "\n"


def _codes(doc) -> dict[str, str]:  # noqa: ANN001 - a Diagnosis
    return {f.code: f.severity for f in doc.findings}


def test_a_loss_falling_orders_of_magnitude_below_zero_diverges(tmp_path: Path) -> None:
    # an ECG classifier trained with binary cross-entropy on labels outside [0, 1]: -3.4e4 -> -6.5e7
    losses = [-3.4e4 * (1 + e) ** 1.8 for e in range(70)]
    doc = diagnose(read_log(write(tmp_path, "training.log", _csv(losses))))
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert f.severity == "error" and "without a floor" in f.summary
    # its value is the growth of the running medians' size, first to last (a window of 9 on 70 points:
    # the first median is that of epochs 0-4, the last of 65-69), against the losses themselves
    assert f.evidence.value == pytest.approx(losses[-3] / losses[2], rel=1e-9)


@pytest.mark.parametrize("losses", [
    [-1.0 - 2.0 * e / 40 for e in range(40)],              # a Gaussian NLL improving from -1 to -3
    [0.5 - 0.1 * e for e in range(40)],                    # crossing 0: a likelihood gaining, no start below 0
    [-50.0 * (1 + e) for e in range(40)],                  # 40x: short of two orders of magnitude
])
def test_a_negative_loss_that_keeps_a_floor_is_not_judged_so(tmp_path: Path, losses: list[float]) -> None:
    doc = diagnose(read_log(write(tmp_path, "training.log", _csv(losses))))
    assert "loss_divergence" not in _codes(doc)


def test_an_agents_objective_is_not_judged_so(tmp_path: Path) -> None:
    # a DDPG actor's loss is -Q, whose size grows with the returns as the policy improves
    losses = [-1.0 * (1 + e) ** 2 for e in range(40)]
    text = "epoch,loss,episode_reward\n" + "\n".join(f"{e},{v!r},{10.0 * e}" for e, v in enumerate(losses)) + "\n"
    assert "loss_divergence" not in _codes(diagnose(read_log(write(tmp_path, "rl.csv", text))))
