"""logsweep99 slm_metrics.jsonl: the native JSON Lines reader merged a resumed run's records (the step
going back to a checkpoint's) silently; the resumed pass now replaces the earlier one from that step on,
with an ``overwritten_values`` warning, as the text reader does for a console."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write


def _jsonl(steps: list[int]) -> tuple[str, dict[int, float]]:
    """Records at ``steps`` in that order (the loss telling each record apart) and the value each
    step should hold: the last record written at it."""
    out, last = [], {}
    for n, step in enumerate(steps):
        loss = round(8.5 - step / 1000 + n * 1e-4, 6)
        out.append(json.dumps({"step": step, "loss": loss, "lr": 3e-5, "tokens": step * 524288}))
        last[step] = loss
    return "\n".join(out) + "\n", last


def test_a_resumed_jsonl_run_replaces_the_earlier_pass_with_a_warning(tmp_path: Path) -> None:
    # slm_metrics.jsonl's shape: an aborted start (20, 20, 40, then 20 again), a long run, resumed
    # three times from the checkpoint at 1520
    steps = [20, 20, 40, *range(20, 1600, 20), *range(1520, 1580, 20), *range(1520, 1620, 20),
             *range(1520, 1700, 20)]
    text, last = _jsonl(steps)
    log = read_log(write(tmp_path, "metrics.jsonl", text))
    loss = by_name(log)["loss"]
    # one point a step, each the resumed pass's (the last written), none of the passes interleaved
    assert list(loss.steps) == sorted(last)
    assert dict(zip(map(int, loss.steps), map(float, loss.values), strict=True)) == pytest.approx(last)
    assert not [w for w in log.warnings if w.code == "several_runs"]
    (over,) = [w for w in log.warnings if w.code == "overwritten_values"]
    assert over.where == "line 4" and "from 40 to 20" in over.message
    assert "and 3 more such returns" in over.message and "loss" in over.message


def test_a_jsonl_step_that_mostly_goes_down_is_no_resume(tmp_path: Path) -> None:
    # a file written newest first: every record "goes back", none replaces another
    steps = list(range(1000, 0, -10))
    text, last = _jsonl(steps)
    log = read_log(write(tmp_path, "metrics.jsonl", text))
    assert len(by_name(log)["loss"].steps) == len(steps)
    assert not [w for w in log.warnings if w.code == "overwritten_values"]
