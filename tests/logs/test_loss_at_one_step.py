"""A training loss whose points sit at one step (or too few for its trends) beside a gradient norm
that has enough: its trends were not judged, and the log says so. The coverage check judged a log by
its longest series, loss or gradient norm, so a loss printed on lines that all carry the same step,
or one loss line in a stepless log of gradient norms, read "healthy" without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import write

_NORMS = "".join(f"step {i} grad_norm {1.0 + 0.01 * (i % 3):.2f}\n" for i in range(40))


def _thin(doc):  # noqa: ANN001, ANN202 - a Diagnosis in, its note on the loss (or None) out
    return next((f for f in doc.findings if f.code == "insufficient_data"
                 and (f.evidence.model_extra or {}).get("thin_loss")), None)


@pytest.mark.parametrize("losses", [1, 5, 12])
def test_a_loss_printed_at_one_step_beside_a_long_grad_norm_is_not_judged(tmp_path: Path, losses: int) -> None:
    # several lines print the same step (a counter set once and never advanced), 1 to 12 of them
    text = "".join(f"step 7 loss {1.0 - 0.02 * k:.2f}\n" for k in range(losses)) + _NORMS
    doc = diagnose(read_log(write(tmp_path, "train.log", text)))
    f = _thin(doc)
    assert f is not None, [(x.code, x.summary) for x in doc.findings]
    assert f.evidence.metric == "loss" and f.evidence.value == 1.0 and f.evidence.steps == [7, 7]
    extra = f.evidence.model_extra or {}
    assert extra["points"] == losses and extra["judged"] is False
    assert f"{losses} point" in f.summary and "one step (step 7)" in f.summary and "grad_norm's 40" in f.summary
    # the document: not judged, in this finding's words
    assert doc.judged is False and doc.not_judged == f.summary


def test_one_loss_line_in_a_stepless_log_of_grad_norms_is_not_judged(tmp_path: Path) -> None:
    text = "".join(f"grad_norm: {1.0 + 0.01 * (i % 3):.2f}\n" for i in range(30)) + "loss: 0.7\n"
    doc = diagnose(read_log(write(tmp_path, "train.log", text)))
    f = _thin(doc)
    assert f is not None and "1 point sits at one step (point 31)" in f.summary
    assert doc.judged is False


def test_a_loss_with_enough_steps_beside_a_longer_grad_norm_gets_no_note(tmp_path: Path) -> None:
    text = "".join(f"step {i} loss {1.0 / (i + 1):.4f}\n" for i in range(0, 40, 4)) + _NORMS
    doc = diagnose(read_log(write(tmp_path, "train.log", text)))
    assert _thin(doc) is None and doc.judged is True


def test_a_loss_another_rule_judged_gets_no_note(tmp_path: Path) -> None:
    # its NaN is reported (a nonfinite error): the trend of a loss gone NaN is moot, no second note
    text = "step 7 loss 0.5\nstep 7 loss nan\n" + _NORMS
    doc = diagnose(read_log(write(tmp_path, "train.log", text)))
    assert any(f.code == "nonfinite" and f.evidence.metric == "loss" for f in doc.findings)
    assert _thin(doc) is None
