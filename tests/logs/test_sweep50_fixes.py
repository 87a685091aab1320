"""logsweep50: a W&B run summary (final values only) is a note, not a log that failed to read."""

from __future__ import annotations

import json
from pathlib import Path

from gradhealth.library import check_logs


def test_a_run_summary_is_a_note_naming_its_final_values(tmp_path: Path) -> None:
    path = tmp_path / "wandb-summary.json"
    path.write_text(json.dumps({"bce_loss": 0.277, "ACC": 0.653, "epoch": 49, "_step": 11749}))
    doc = check_logs(path)
    [f] = doc.findings
    # a warning since newuser14 #1: no check of a history ran, and "healthy" read as "checked"
    assert (f.code, f.severity) == ("insufficient_data", "warning")
    assert "only the final value of each of its 4 keys" in f.summary and "bce_loss = 0.277" in f.summary
    assert f.evidence.model_extra["final_values"]["ACC"] == "0.653"
    assert doc.status == "warning"


def test_a_log_with_nothing_to_judge_is_still_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,throughput\n" + "".join(f"{i},{100 + i}\n" for i in range(20)))
    [f] = check_logs(path).findings
    assert (f.code, f.severity) == ("insufficient_data", "warning")


def test_a_summary_that_ended_nan_is_a_nonfinite_error(tmp_path: Path) -> None:
    # W&B's encoder writes NaN and Infinity bare; some exports write them as strings
    path = tmp_path / "wandb-summary.json"
    path.write_text('{"train/loss": NaN, "train/grad_norm": "Infinity", "eval/accuracy": NaN, '
                    '"sample": "nan is a word", "_step": 1019}')
    doc = check_logs(path)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "error" and doc.status == "unhealthy"
    # the loss and the gradient norm broke; an undefined evaluation metric is not a trained quantity
    assert f.evidence.model_extra["metrics"] == ["train/loss", "train/grad_norm"]
    assert f.evidence.steps == [1019]


def test_a_summary_whose_final_gradient_norm_is_astronomical_is_exploding(tmp_path: Path) -> None:
    path = tmp_path / "wandb-summary.json"
    path.write_text(json.dumps({"train/loss": 2.3, "train/grad_norm": 3.2e12, "_step": 100}))
    [f] = [f for f in check_logs(path).findings if f.code == "exploding_gradient"]
    assert f.severity == "error" and f.evidence.peak == 3.2e12
    # an ordinary final norm says nothing
    path.write_text(json.dumps({"train/loss": 2.3, "train/grad_norm": 3.2, "_step": 100}))
    # (no exploding_gradient; the summary's own insufficient_data warning, since newuser14 #1)
    assert [(f.code, f.severity) for f in check_logs(path).findings] == [("insufficient_data", "warning")]
