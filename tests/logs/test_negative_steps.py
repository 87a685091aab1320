"""A point at a negative step among steps from 0: one rule for every reader with explicit steps.

A counter that starts at 0 never goes below it: a negative step among such steps is a sentinel (-1
for "no step") or an unsigned 2^64 - 1 read back as a signed -1. Read there, it came before step 0
and the run's first point looked like a spike (W&B's run file, errsweep9 #3) while TensorBoard kept
it and CSV and JSON Lines logs sorted it to the front without a word. Now every reader leaves it out,
with one ``step_order`` note per series naming how many points, where the first was and that they
were left out. A series whose steps are all negative counts on its own axis and is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.series import make_series
from tests.logs.helpers import by_name, write

_LOSS = [2.0 * 0.97 ** i for i in range(40)]


def _csv() -> str:
    rows = [f"{i},{v:.5f}" for i, v in enumerate(_LOSS)]
    rows.append("-1,9.0")       # written last, at the sentinel step: no place among the others
    return "step,loss\n" + "\n".join(rows) + "\n"


def _jsonl() -> str:
    rows = [json.dumps({"step": i, "loss": round(v, 5)}) for i, v in enumerate(_LOSS)]
    rows.append(json.dumps({"step": -1, "loss": 9.0}))
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(("name", "text"), [("metrics.csv", _csv()), ("metrics.jsonl", _jsonl())])
def test_a_negative_step_among_steps_from_0_is_left_out_with_a_note(tmp_path: Path, name: str, text: str) -> None:
    log = read_log(write(tmp_path, name, text))
    loss = by_name(log)["loss"]
    assert loss.steps.tolist() == list(range(40))                   # the 9.0 at -1 is no point of the run
    assert np.allclose(loss.values, [round(v, 5) for v in _LOSS])
    notes = [w.message for w in log.warnings if w.code == "step_order"]
    assert len(notes) == 1, log.warnings
    assert "loss: 1 point(s) at a negative step among 40" in notes[0] and "step -1" in notes[0]
    assert "18,446,744,073,709,551,615" in notes[0] and "left out" in notes[0]
    # kept, it sorted before step 0 as a loss of 9.0 that fell to 2.0: the run's start read as a spike
    assert not [f for f in diagnose(log).findings if f.code in ("loss_spike", "loss_divergence")]


def test_a_series_all_at_negative_steps_is_kept(tmp_path: Path) -> None:
    text = "step,loss\n" + "".join(f"{i - 40},{v:.5f}\n" for i, v in enumerate(_LOSS))
    log = read_log(write(tmp_path, "metrics.csv", text))
    assert by_name(log)["loss"].steps.tolist() == list(range(-40, 0))
    assert not [w for w in log.warnings if "negative" in w.message]


def test_the_rule_is_the_series_own_whatever_built_it() -> None:
    # a fractional epoch axis too: a negative epoch among epochs from 0 is left out, named in epochs
    s = make_series("val_loss", [0.5, 1.0, -0.5, 1.5], [1.0, 0.9, 5.0, 0.8], step_unit="epoch")
    assert s.steps.tolist() == [0.5, 1.0, 1.5] and s.values.tolist() == [1.0, 0.9, 0.8]
    assert s.negative_note is not None and "negative epoch" in s.negative_note and "epoch -0.5" in s.negative_note
    assert "18,446" not in s.negative_note       # no int64 reading of a fractional epoch
    kept = make_series("loss", [0, 1, 2], [1.0, 0.9, 0.8], wall_time=[10.0, 11.0, 12.0])
    assert kept.negative_note is None and kept.steps.tolist() == [0, 1, 2]


def test_a_negative_step_starts_no_appended_run_and_hides_none(tmp_path: Path) -> None:
    # JSON Lines runs appended one after another split where the step goes back to the first: a -1 is
    # no run's start (it was read as a second run of one point), and a run starting again after it
    # still is one
    rows = [{"step": i, "loss": v} for i, v in enumerate(_LOSS)] + [{"step": -1, "loss": 9.0}]
    rows += [{"step": i, "loss": v + 1} for i, v in enumerate(_LOSS)]
    log = read_log(write(tmp_path, "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    assert log.runs == ["run1", "run2"]
    names = by_name(log)
    assert names["run1/loss"].steps.tolist() == names["run2/loss"].steps.tolist() == list(range(40))
    assert 9.0 not in names["run1/loss"].values.tolist()
