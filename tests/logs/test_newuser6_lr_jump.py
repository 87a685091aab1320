"""What the newuser6 walkthrough found in the log check: a run stable at lr 0.1 for 150 steps whose
rate then jumped to 200 and blew up was told to "lower the learning rate from 200 to 60" (a fixed
0.3x of a rate the run had never trained at) instead of going back to the 0.1 it was stable at (P5);
and a loss spike followed by NaN points was said to end the log (P16). Every input is a native
JSON Lines (recorder) or CSV log written here, with step, loss, grad_norm and lr."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from gradhealth.core.document import Diagnosis, Remedy
from gradhealth.logs.check import run_log_check


def _curves(lr: np.ndarray, onset: int) -> tuple[np.ndarray, np.ndarray]:
    """A loss and grad norm that fall smoothly until ``onset``, then grow 10x per step and go NaN
    five steps later."""
    n = len(lr)
    i = np.arange(n, dtype=np.float64)
    loss = 1.2 * np.exp(-i / 80) + 0.1
    grad = 0.8 * np.exp(-i / 200) + 0.05
    k = i[onset:] - onset
    loss[onset:] = loss[onset - 1] * 10.0 ** (k + 1)
    grad[onset:] = grad[onset - 1] * 10.0 ** (k + 1)
    loss[onset + 5:] = np.nan
    grad[onset + 5:] = np.nan
    return loss, grad


def _jsonl(tmp_path: Path, lr: np.ndarray, loss: np.ndarray, grad: np.ndarray) -> Path:
    rows: list[dict[str, object]] = [{"gradhealth_recorder": "start", "params": {}}]
    for s in range(len(lr)):
        rows += [{"step": s, "metric": "loss", "value": "NaN" if math.isnan(loss[s]) else float(loss[s])},
                 {"step": s, "metric": "grad_norm", "value": "NaN" if math.isnan(grad[s]) else float(grad[s])},
                 {"step": s, "metric": "lr", "value": float(lr[s])}]
    rows.append({"gradhealth_recorder": "end", "logged_steps": len(lr)})
    p = tmp_path / "gradients.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _csv(tmp_path: Path, lr: np.ndarray, loss: np.ndarray, grad: np.ndarray) -> Path:
    p = tmp_path / "train.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "loss", "grad_norm", "lr"])
        for s in range(len(lr)):
            w.writerow([s, repr(float(loss[s])), repr(float(grad[s])), repr(float(lr[s]))])
    return p


def _lr_fixes(doc: Diagnosis, code: str) -> list[Remedy]:
    return [r for f in doc.findings if f.code == code for r in f.remedies if r.id == "lower_learning_rate"]


def test_a_jump_to_a_rate_never_trained_at_sends_the_run_back_to_its_stable_rate(tmp_path):
    lr = np.where(np.arange(300) < 150, 0.1, 200.0)
    loss, grad = _curves(lr, onset=152)
    doc = run_log_check(_jsonl(tmp_path, lr, loss, grad))
    assert doc.status == "unhealthy"
    for code in ("exploding_gradient", "loss_divergence", "nonfinite"):
        (fix,) = _lr_fixes(doc, code)
        assert fix.params["learning_rate_at_onset"] == 200.0
        assert fix.params["suggested_learning_rate"] == 0.1  # the rate the run was stable at, not 0.3 x 200
        assert math.isclose(fix.params["factor"], 0.1 / 200.0)
        assert "to 0.1 " in fix.change and "to 60" not in fix.change
        assert "jumped from 0.1 to 200 at step 150" in fix.change
        jump = fix.params["learning_rate_jump"]
        assert (jump["from"], jump["to"], jump["step"], jump["stable_steps"]) == (0.1, 200.0, 150, [0, 149])
    (explode,) = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert explode.evidence.model_dump()["learning_rate_jump"]["step"] == 150


def test_a_fast_rise_over_a_few_logged_steps_is_named_too(tmp_path):
    # a scheduler that restarts high, in three logged steps: 0.05 -> 0.5 -> 5 -> 50
    lr = np.full(260, 0.05)
    lr[200:] = 50.0
    lr[200], lr[201] = 0.5, 5.0
    loss, grad = _curves(lr, onset=204)
    doc = run_log_check(_csv(tmp_path, lr, loss, grad))
    (fix,) = _lr_fixes(doc, "loss_divergence")
    assert fix.params["suggested_learning_rate"] == 0.05
    assert "rose from 0.05 (step 199) to 50" in fix.change


def test_no_jump_advice_where_the_rate_did_not_jump(tmp_path):
    # constant rate: the default 0.3x of the rate in effect
    lr = np.full(300, 0.1)
    loss, grad = _curves(lr, onset=152)
    doc = run_log_check(_jsonl(tmp_path, lr, loss, grad))
    fixes = _lr_fixes(doc, "loss_divergence") + _lr_fixes(doc, "exploding_gradient")
    assert fixes and all(math.isclose(f.params["suggested_learning_rate"], 0.03) for f in fixes)
    assert all("learning_rate_jump" not in f.params for f in fixes)
    # a restart to a rate the run had trained at before (cosine with warm restarts): not new territory
    lr = np.concatenate([np.geomspace(1.0, 0.01, 150), np.full(150, 1.0)])
    loss, grad = _curves(lr, onset=152)
    doc = run_log_check(_jsonl(tmp_path, lr, loss, grad))
    fixes = _lr_fixes(doc, "loss_divergence") + _lr_fixes(doc, "exploding_gradient")
    assert fixes and all("learning_rate_jump" not in f.params for f in fixes)
    # a smooth linear warm-up the blow-up comes late in: the default factor already names a rate it passed
    lr = np.minimum(1.0, (np.arange(300) + 1) / 200)
    loss, grad = _curves(lr, onset=180)
    doc = run_log_check(_jsonl(tmp_path, lr, loss, grad))
    fixes = _lr_fixes(doc, "loss_divergence") + _lr_fixes(doc, "exploding_gradient")
    assert fixes and all("learning_rate_jump" not in f.params for f in fixes)


def test_a_loss_spike_followed_by_nan_points_does_not_end_the_log(tmp_path):
    lr = np.where(np.arange(300) < 150, 0.1, 200.0)
    loss, grad = _curves(lr, onset=152)
    doc = run_log_check(_jsonl(tmp_path, lr, loss, grad))
    (spike,) = [f for f in doc.findings if f.code == "loss_spike"]
    assert "the log ends" not in spike.summary
    assert spike.evidence.model_dump()["ends_at_spike"] is False
    assert spike.evidence.model_dump()["recovered"] is False  # NaN after it: it did not recover
