"""What the thirty-ninth log sweep (real logs from public repositories) and the live-run sweep
found in the log check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose, run_log_check
from tests.logs.helpers import write
from tests.logs.test_detectors import run_of


def _trial(losses: list[float], total: int) -> str:
    return "".join(f"2025-06-02 14:{i:02d}:20,402 - INFO - Config: {{'batch_size': 128, 'lr': 0.001}}, "
                   f"Epoch {i}/{total}, Train Loss: {v:.4f}, Test Acc: {50 + i}.00%\n"
                   for i, v in enumerate(losses, 1))


def test_an_epoch_counter_starting_again_with_the_same_total_is_another_run(tmp_path: Path) -> None:
    # a hyperparameter search appends its trials: each counts Epoch 1/8 .. 8/8; the middle one
    # diverges: each trial is judged on its own, and the one that diverged is named
    good = [1.5 * 0.8 ** i for i in range(8)]
    bad = [1.5 * 1.6 ** i for i in range(8)]
    doc = run_log_check(write(tmp_path, "search.log", _trial(good, 8) + _trial(bad, 8) + _trial(good, 8)))
    [w] = [w for w in doc.log.warnings if "runs appended" in w]
    assert "3 runs" in w and "run2 (line 9)" in w and "each judged on its own" in w
    [f] = [f for f in doc.findings if f.code == "loss_divergence"]
    assert f.evidence.metric == "run2/Train_Loss" and f.severity == "error"


def test_a_resumed_run_going_on_from_a_later_epoch_is_one_run(tmp_path: Path) -> None:
    losses = [1.5 * 0.9 ** i for i in range(10)]
    first = _trial(losses[:6], 10)
    resumed = "".join(ln for ln in _trial(losses, 10).splitlines(keepends=True)[3:])  # from epoch 4
    doc = run_log_check(write(tmp_path, "resumed.log", first + resumed))
    assert not [w for w in doc.log.warnings if "runs appended" in w]


def _with_spike(peak: float) -> np.ndarray:
    rng = np.random.default_rng(5)
    t = np.arange(600)
    loss = (0.1 * np.exp(-t / 100) + 0.05) * np.exp(rng.normal(0, 0.05, len(t)))
    loss[320] = peak
    return loss


def test_one_loss_spike_an_order_of_magnitude_above_the_start_is_a_warning_where_it_outlasted_its_batch() -> None:
    # a PINN at 0.05 thrown to 126 for one step (the start was 0.15), the next logged point still at
    # 0.5 (10x the level): that step damaged the weights, so it undid the training
    lasting = _with_spike(126.0)
    lasting[321] = 0.5
    [f] = [f for f in diagnose(run_of(loss=lasting)).findings if f.code == "loss_spike"]
    assert f.severity == "warning" and "where the run started" in f.summary and f.evidence.recovered
    # the same spike that the next batch leaves again is one bad batch of a per-batch loss: a note
    # (docs/findings.md's undone-learning rule; logsweep82 pl_pend_v18 revised this sweep's warning)
    [lone] = [f for f in diagnose(run_of(loss=_with_spike(126.0))).findings if f.code == "loss_spike"]
    assert lone.severity == "info" and lone.evidence.recovered
    # the same single spike, large against its neighbours but below where the run began: a note
    [g] = [f for f in diagnose(run_of(loss=_with_spike(1.2))).findings if f.code == "loss_spike"]
    assert g.severity == "info"


def test_a_gradient_norm_that_moves_to_a_higher_level_as_the_loss_falls_is_no_spike() -> None:
    # an LSTM leaving its ln 2 plateau: norms 0.2 for 40 steps, then 2.4-2.7 on the way to a level of
    # about 1.1 that holds, while the loss falls from 0.69 to 0.08 (livesweep h03)
    rng = np.random.default_rng(2)
    n = 250
    grad = np.concatenate([0.2 * np.exp(rng.normal(0, 0.3, 40)), [2.43, 2.36, 1.8, 0.52, 1.41, 2.66],
                           1.1 * np.exp(rng.normal(0, 0.4, n - 46))])
    loss = np.concatenate([np.full(40, 0.69), np.geomspace(0.69, 0.08, n - 40)]) * np.exp(rng.normal(0, 0.05, n))
    assert not [f for f in diagnose(run_of(loss=loss, grad_norm=grad)).findings if f.code == "gradient_spike"
                and f.severity != "info"]
    # the same peaks with the norm falling back to its old level: spikes the run recovered from
    back = grad.copy()
    back[46:] = 0.2 * np.exp(rng.normal(0, 0.3, n - 46))
    [f] = [f for f in diagnose(run_of(loss=loss, grad_norm=back)).findings if f.code == "gradient_spike"]
    assert f.evidence.count >= 2
