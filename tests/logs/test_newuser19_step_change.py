"""newuser19 #3: a gradient norm that jumps to a new level in one step and stays there is a step change,
not compounding growth.

A norm of 1 for 150 steps and then 1e4 flat was reported as exploding_gradient "grad_norm grew steadily
from step 150 to 1e+04 (step 150)", explained as a norm that "keeps growing instead of settling". The
growth is one step's: the summary now says so, the explanation names what changes at one step (a bad
batch, a schedule step, a resumed checkpoint), and no summary gives one step as both ends of a growth."""

from __future__ import annotations

import math
from pathlib import Path

from gradhealth import check_logs


def _write(tmp_path: Path, norms: list[float], name: str = "metrics.csv", nan_from: int | None = None) -> Path:
    rows = ["step,loss,grad_norm"]
    for step, norm in enumerate(norms):
        loss = "nan" if nan_from is not None and step >= nan_from else f"{2.5 * math.exp(-step / 80):.5f}"
        rows.append(f"{step},{loss},{norm!r}")
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_one_step_jump_that_holds_is_a_step_change_not_growth(tmp_path: Path) -> None:
    # the report's repro: 1.0 for steps 0-149, 1e4 from step 150 to 199
    doc = check_logs(_write(tmp_path, [1.0 if s < 150 else 1e4 for s in range(200)]))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert f.severity == "error"
    assert "grew steadily" not in f.summary and "keeps growing" not in f.explanation
    # the jump, from the series itself: 1e4 / 1 at step 150, the point before it at step 149
    jump = f.evidence.model_dump()["step_change"]
    assert jump == {"step": 150, "before_step": 149, "before": 1.0, "after": 1e4, "factor": 1e4}
    assert "jumped 1e+04x at step 150" in f.summary and "stayed there" in f.summary
    for cause in ("bad batch", "schedule", "checkpoint"):
        assert cause in f.explanation
    ids = [r.id for r in f.remedies]
    assert "gradient_clipping" in ids and "lower_learning_rate" in ids
    # weight decay bounds weights growing step after step, which a one-step jump is not
    assert "weight_decay" not in ids


def test_compounding_growth_keeps_its_words_and_its_two_steps(tmp_path: Path) -> None:
    # exp(s / 10) from step 100: crosses 10x its baseline of 1 at once (e^10.1) and keeps growing
    norms = [1.0 if s < 100 else math.exp(s / 10) for s in range(200)]
    doc = check_logs(_write(tmp_path, norms))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert f.evidence.model_dump()["step_change"] is None
    assert "grew steadily from step 100" in f.summary and "(step 199)" in f.summary
    assert "keeps growing" in f.explanation
    assert "weight_decay" in [r.id for r in f.remedies]


def test_a_peak_at_the_first_grown_point_is_not_growth_from_a_step_to_itself(tmp_path: Path) -> None:
    # 1 -> 5 -> 1e3 (its peak) and then a fall by e^-4.8 that stays over 10x the baseline: not a level
    # held after one step (the tail's later half sits ~7x under its first), nor growth to a later peak
    norms = [1.0] * 150 + [5.0, 1e3] + [1e3 * math.exp(-(s + 1) / 10) + 20 for s in range(48)]
    doc = check_logs(_write(tmp_path, norms))
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert f.evidence.model_dump()["peak_step"] == 151
    assert "(step 151)" not in f.summary and "rose to 1e+03 at step 151" in f.summary


def test_a_nan_after_a_jump_is_put_down_to_the_jump(tmp_path: Path) -> None:
    # the same jump, and the loss NaN from step 190: the nonfinite finding reads the same measure
    doc = check_logs(_write(tmp_path, [1.0 if s < 150 else 1e4 for s in range(200)], nan_from=190))
    [nan] = [f for f in doc.findings if f.code == "nonfinite"]
    assert "jumped 1e+04x at step 150" in nan.summary and "grew steadily" not in nan.summary
    assert "climbs for many steps" not in nan.explanation and "bad batch" in nan.explanation
