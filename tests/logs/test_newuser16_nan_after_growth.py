"""newuser16 #1: a NaN after a steadily climbing gradient norm is tied to the climb, not to the data.

The norm grew e^(1/30) a step for 150 steps (2e4x its baseline) and then the loss went NaN; the
nonfinite finding judged only the last 25 points (2.3x growth, under its factor for "grew") and called
the norm flat, blaming "an input or a numerical operation, not the learning rate", while the same
report's exploding_gradient said it grew 2e4x. Both now read one measure of growth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth import check_logs


def _climb_then_nan(tmp_path: Path) -> Path:
    """300 steps: the norm about 1 to step 100, exp(step / 30) from 101 on; the loss NaN from 250."""
    rng = np.random.default_rng(0)
    rows = ["step,loss,grad_norm"]
    for step in range(300):
        norm = math.exp(step / 30) if step > 100 else 1.0 + 0.05 * rng.standard_normal()
        loss = "nan" if step >= 250 else f"{2.3 - 0.002 * step}"
        rows.append(f"{step},{loss},{norm!r}")
    path = tmp_path / "explode.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_nan_after_a_steady_climb_is_the_climbs_not_the_datas(tmp_path: Path) -> None:
    doc = check_logs(_climb_then_nan(tmp_path))
    [nan] = [f for f in doc.findings if f.code == "nonfinite"]
    [grew] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert nan.severity == "error" and nan.evidence.steps[0] == 250
    ids = [r.id for r in nan.remedies]
    assert "check_data" not in ids and "gradient_clipping" in ids and "lower_learning_rate" in ids
    assert "flat" not in nan.summary and "not the learning rate" not in nan.summary
    assert "grew steadily" in nan.summary
    before = nan.evidence.model_dump()["grew_before"]
    # the climb, from theory: it starts at step 101 and peaks at the last finite point before the NaN,
    # e^(249/30), over a baseline of about 1
    assert before["onset"] == 101 == grew.evidence.steps[0]
    assert before["peak_step"] == 249
    assert math.isclose(before["peak"], math.exp(249 / 30), rel_tol=1e-9)
    assert 0.9 < before["baseline"] < 1.1
    assert math.isclose(before["ratio"], before["peak"] / before["baseline"])
    assert nan.evidence.model_dump()["sudden"] is False
