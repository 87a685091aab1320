"""logsweep54: VSE++'s "Eit ... Le" prints are a step and a loss, and a loss frozen to its last
digits is stuck even in an excerpt that starts mid-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs
from tests.logs.helpers import write


def _vse(losses: list[float], first: int = 12400) -> str:
    # VSE++'s train.py (and SCAN, VSRN, SGRAF, GSMN after it) logs this line every 100 iterations
    return "".join(f"2020-09-15 21:05:17,981 Epoch: [5][{1069 + 100 * i}/2266]\tEit {first + 100 * i}  lr 0.0002  "
                   f"Le {x!r}\tTime 0.900 (0.000)\tData 0.039 (0.000)\t\n" for i, x in enumerate(losses))


def test_vse_prints_are_read_as_iterations_and_a_loss(tmp_path: Path) -> None:
    losses = [40.0 * 0.97 ** i for i in range(12)]
    doc = check_logs(write(tmp_path, "train.log", _vse(losses)))
    [loss] = [s for s in doc.series if s.role == "loss"]
    assert loss.name == "Le" and loss.points == 12
    assert doc.status == "healthy", doc.summary


def test_a_loss_frozen_to_its_last_digits_in_an_excerpt_is_stuck(tmp_path: Path) -> None:
    # logsweep54 14: epoch 5 of a GSMN run, the loss at 25.60001-25.60002 over 8 prints
    frozen = [25.600017547607422, 25.60001564025879, 25.600017547607422, 25.600017547607422,
              25.600017547607422, 25.600013732910156, 25.60000991821289, 25.600013732910156]
    doc = check_logs(write(tmp_path, "train.log", _vse(frozen)))
    [f] = [f for f in doc.findings if f.code == "loss_plateau"]
    spread = (max(frozen) - min(frozen)) / float(np.median(frozen[4:]))
    assert f.severity == "warning" and f.evidence.value == pytest.approx(spread, rel=1e-3)
    assert f.evidence.steps == [12400, 13100]


@pytest.mark.parametrize("losses", [
    # a minibatch loss of a healthy run that has settled: flat, but moving in its 3rd-4th digit
    [25.6 + 0.01 * ((-1) ** i) * (i % 3) for i in range(8)],
    # five prints only: too few to call frozen
    [25.600017547607422] * 5,
    # printed to 3 digits: the print cannot show a change under 4e-4 of the level
    [25.6] * 8,
])
def test_a_settled_or_short_or_coarse_excerpt_is_not_frozen(tmp_path: Path, losses: list[float]) -> None:
    doc = check_logs(write(tmp_path, "train.log", _vse(losses)))
    assert not [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"], doc.summary
