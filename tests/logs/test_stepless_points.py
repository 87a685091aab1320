"""A log that names no step (its steps are the count of its lines or rows with values, from 0: its
``running_index`` note) has its positions worded as points counted from 1 ("point 12", "points
11-20"), never as steps the log never printed: a stepless two-line log's span read "(steps 1-2)"."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import write


@pytest.mark.parametrize(("name", "text"), [
    ("train.log", "".join(f"loss: {0.5 if i < 10 else 0.5 + i:.2f}\n" for i in range(20))),
    ("metrics.csv", "total loss,ctc loss\n" + "".join(f"{0.5 if i < 10 else 0.5 + i:.2f},0.5\n" for i in range(20))),
])
def test_a_stepless_log_words_its_positions_as_points(tmp_path: Path, name: str, text: str) -> None:
    # its 20 lines (rows) of values are steps 0-19 for the checks; the findings name them points 1-20
    log = read_log(write(tmp_path, name, text))
    [note] = [w.message for w in log.warnings if w.code == "running_index"]
    assert "points 1-20" in note
    doc = diagnose(log)
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert "point 1" in f.summary and "step " not in f.summary, f.summary
    loss = next(s for s in log.series if s.role == "loss")
    assert loss.between(10, 19) == "points 11-20" and loss.where(0) == "point 1"


def test_a_log_with_steps_keeps_its_steps_words(tmp_path: Path) -> None:
    log = read_log(write(tmp_path, "train.log", "".join(f"step {i} loss {1.0 / (i + 1):.3f}\n" for i in range(20))))
    diagnose(log)
    loss = next(s for s in log.series if s.name == "loss")
    assert loss.between(1, 2) == "steps 1-2" and loss.where(3) == "step 3"
