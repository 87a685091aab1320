"""What the eighty-second log sweep found in the loss-spike finding: a lone recovered spike of a
per-batch loss graded a warning (pl_pend_v18), and a spike that left the loss raised for good called
"recovered" against a rolling median its own raised points made (pl_pinn_spike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.logs.check import run_log_check
from tests.logs.helpers import write


def _lightning(tmp_path: Path, column: str, values: np.ndarray) -> Path:
    rows = "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values))
    return write(tmp_path, "metrics.csv", f"step,{column}\n{rows}")


def _spike_finding(path: Path) -> tuple[Finding, list[Finding]]:
    doc = run_log_check(path)
    [f] = [f for f in doc.findings if f.code == "loss_spike"]
    return f, doc.findings


def test_a_lone_recovered_spike_of_a_per_batch_loss_above_its_start_is_a_note(tmp_path: Path) -> None:
    # pl_pend_v18: a PINN's per-batch loss falling from ~0.15 to ~0.05 with 5% batch noise, one batch at
    # 126 (2,500x its level, 800x its start) and the next batch back at the level: one bad batch, which
    # the next batch's loss shows did not damage the weights. The documented rule: a per-batch loss's
    # recovered spike is a note unless the next point is still at twice the level (or spikes are > 1%
    # of steps, 3 or more, or one did not recover)
    rng = np.random.default_rng(3)
    t = np.arange(1200)
    loss = (0.1 * np.exp(-t / 100) + 0.05) * np.exp(rng.normal(0, 0.05, len(t)))
    loss[600] = 126.0
    f, _ = _spike_finding(_lightning(tmp_path, "train_loss_step", loss))
    assert f.severity == "info"
    assert f.evidence.recovered is True and "recovered after each" in f.summary
    assert f.evidence.value == 126.0
    # the same spike whose next batch is still at 10x the level outlasted its batch: a warning
    loss[601] = 0.5
    g, _ = _spike_finding(_lightning(tmp_path, "train_loss_step", loss))
    assert g.severity == "warning" and "where the run started" in g.summary


def test_a_spike_that_leaves_a_raised_level_is_not_recovered_and_is_measured_from_the_level_before(
        tmp_path: Path) -> None:
    # pl_pinn_spike: a loss settled at 0.022, thrown to 16.8 and 17.9, then ~0.4 and only back to 0.14 by
    # the end (6x the level before): the run never came back, whatever the rolling median (lifted to
    # ~0.4 by the raised points themselves) says
    rng = np.random.default_rng(4)
    level = 0.022
    before = level * np.exp(rng.normal(0, 0.002, 550))
    event = np.array([16.8, 2.0, 17.9, 4.6, 1.1, 0.55])
    after = 0.14 + 0.26 * np.exp(-np.arange(180) / 40)
    loss = np.concatenate([before, event, after])
    f, findings = _spike_finding(_lightning(tmp_path, "train_loss", loss))
    [event_ev] = [e for e in f.evidence.model_extra["events"] if e["peak"] == 17.9]
    assert event_ev["recovered"] is False and f.evidence.recovered is False
    assert "recovered after each" not in f.summary and f.severity in ("warning", "error")
    # the ratio is to the level before the spike (0.022), not to a median of the raised points
    assert abs(event_ev["peak_ratio"] - 17.9 / level) < 0.02 * 17.9 / level
    assert "the level before the spike, 0.022" in f.summary
    # beside the divergence of the same loss, which says the rise is for good, nothing claims recovery
    assert any(x.code == "loss_divergence" and x.severity != "info" for x in findings)
