"""What the sixtieth log sweep found in ``loss_plateau``: Lightning's per-batch loss judged by its
5-point edges beside epoch means that never fell (u06), a flat noisy W&B loss read as "rising" by one
spike in its last five points and then judged by no detector (u04), and a long noisy run whose last
quarter sits no lower than its first called "too little to tell" (u05).

Inputs are synthetic, in each format's own layout; expected numbers come from numpy/scipy here, not
from the detector."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from gradhealth.logs.check import run_log_check
from gradhealth.logs.stats import theil_sen

# --- u06: Lightning's train_loss_step beside train_loss_epoch -------------------------------------


def _lightning_step_epoch(tmp_path: Path, step_values: np.ndarray, epoch_values: list[float] | None,
                          per_epoch: int) -> Path:
    """A CSVLogger metrics.csv of ``self.log("train_loss", ..., on_step=True, on_epoch=True)``: one
    row per 50 batches with ``train_loss_step``, and after each epoch a row with ``train_loss_epoch``
    (columns sorted, as the logger writes them)."""
    rows = ["epoch,step,train_loss_epoch,train_loss_step"]
    for i, v in enumerate(step_values):
        epoch = i // per_epoch
        rows.append(f"{epoch},{50 * (i + 1) - 1},,{float(v)!r}")
        if epoch_values is not None and (i + 1) % per_epoch == 0:
            rows.append(f"{epoch},{50 * (i + 1) - 1},{float(epoch_values[epoch])!r},")
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _flat_batches(rng: np.random.Generator, n: int = 539) -> np.ndarray:
    """Batch losses flat at 2.55 (lognormal noise, 20 % per batch) whose first five read 2.9 and last
    five 2.5: 5-point edge medians "fall" 13.8 %, the run's level does not move."""
    v = 2.55 * np.exp(rng.normal(0, 0.2, n))
    v[:5] = [3.0, 2.7, 3.1, 2.9, 2.8]
    v[-5:] = [2.4, 2.6, 2.5, 2.3, 2.55]
    return v


def test_a_step_loss_whose_edges_fell_by_noise_and_whose_epochs_did_not_never_learnt(tmp_path: Path) -> None:
    v = _flat_batches(np.random.default_rng(60))
    epochs = [2.601, 2.485, 2.558, 2.512, 2.487, 2.461, 2.657]
    doc = run_log_check(_lightning_step_epoch(tmp_path, v, epochs, per_epoch=77))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "warning", [(x.code, x.severity, x.summary) for x in doc.findings]
    ev = f[0].evidence.model_extra
    assert ev["epoch_metric"] == "train_loss_epoch"
    assert ev["epoch_improvement"] == (2.601 - 2.657) / 2.601
    # the level from the medians of the first and last tenths (54 points each), not the 5-point edges
    k = math.ceil(0.1 * len(v))
    start, end = np.median(v[:k]), np.median(v[-k:])
    assert abs(ev["overall_improvement"] - (start - end) / start) < 1e-12
    assert abs(ev["overall_improvement"]) < 0.05 < (2.9 - 2.5) / 2.9
    assert "train_loss_epoch 2.601 -> 2.657 over 7 epochs" in f[0].summary


def test_epoch_means_that_did_not_fall_overrule_batches_a_little_lower_at_the_end(tmp_path: Path) -> None:
    """Batches whose first tenth sits 9 % above the rest (a fall of the batches' level between 5 % and
    _NEVER_PLAUSIBLE's 20 %) beside epoch means 2.60 -> 2.66: both must show the fall; without the
    twin the batches alone count as having learnt."""
    rng = np.random.default_rng(60)
    v = 2.55 * np.exp(rng.normal(0, 0.2, 539))
    v[:54] *= 1.09
    k = math.ceil(0.1 * len(v))
    assert 0.05 < 1 - np.median(v[-k:]) / np.median(v[:k]) < 0.2
    epochs = [2.601, 2.485, 2.558, 2.512, 2.487, 2.461, 2.657]
    doc = run_log_check(_lightning_step_epoch(tmp_path, v, epochs, per_epoch=77))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "warning" and "over 7 epochs" in f[0].summary
    alone = run_log_check(_lightning_step_epoch(tmp_path, v, None, per_epoch=77))
    assert not [x for x in alone.findings if x.code == "loss_plateau" and x.severity == "warning"]


def test_flat_batches_whose_edges_fell_by_noise_never_learnt_without_an_epoch_twin(tmp_path: Path) -> None:
    v = _flat_batches(np.random.default_rng(61))
    doc = run_log_check(_lightning_step_epoch(tmp_path, v, None, per_epoch=77))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "warning" and "barely moved" in f[0].summary


def test_a_step_loss_that_fell_fast_inside_its_first_tenth_learnt(tmp_path: Path) -> None:
    """A drop from 10 to 1 over the first 8 of 539 points hides inside the first tenth's median; the
    start above the end's band keeps it a fall (also without the fix: this guards the new levels)."""
    rng = np.random.default_rng(62)
    v = 1.0 * np.exp(rng.normal(0, 0.05, 539))
    v[:8] = np.geomspace(10, 1.1, 8)
    doc = run_log_check(_lightning_step_epoch(tmp_path, v, None, per_epoch=77))
    assert not [x for x in doc.findings if x.code == "loss_plateau" and x.severity != "info"]


def test_a_noisy_step_loss_that_falls_with_its_epochs_stays_quiet(tmp_path: Path) -> None:
    rng = np.random.default_rng(63)
    n = 539
    v = np.linspace(3.0, 1.8, n) * np.exp(rng.normal(0, 0.2, n))
    epochs = [float(np.mean(v[e * 77:(e + 1) * 77])) for e in range(7)]
    doc = run_log_check(_lightning_step_epoch(tmp_path, v, epochs, per_epoch=77))
    assert not [x for x in doc.findings if x.code == "loss_plateau"]


# --- u04: a flat noisy loss with one spike among its last five points is not rising --------------


def _wandb_history(tmp_path: Path, loss: np.ndarray, lr: np.ndarray | None = None) -> Path:
    """A W&B run history exported with pandas (a leading unnamed index column)."""
    head = ",_step,_runtime,_timestamp,train/loss" + (",train/lr" if lr is not None else "")
    rows = [head]
    for i, v in enumerate(loss):
        rows.append(f"{i},{i + 1},{60.0 * (i + 1)},{1772452553.0 + 60 * i},{float(v)!r}"
                    + (f",{float(lr[i])!r}" if lr is not None else ""))
    path = tmp_path / "wandb_history.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _flat_spiky(rng: np.random.Generator) -> np.ndarray:
    """41 losses flat at 0.185 (8 % noise), the first five's median 0.178, the last five's 0.21 with
    a 0.50 spike among them: 1.18x, past loss_divergence's 1.15 "lost" rise from its first point."""
    v = 0.185 * np.exp(rng.normal(0, 0.08, 41))
    v[:5] = [0.178, 0.177, 0.173, 0.209, 0.182]
    v[-5:] = [0.19, 0.50, 0.21, 0.215, 0.207]
    return v


def test_a_flat_loss_whose_last_five_hold_a_spike_is_judged_flat(tmp_path: Path) -> None:
    v = _flat_spiky(np.random.default_rng(66))
    steps = np.arange(1, 42, dtype=np.float64)
    _, low, _ = theil_sen(steps, np.log(v))
    assert low < 0  # the whole run's trend does not bear a rise out
    doc = run_log_check(_wandb_history(tmp_path, v))
    assert not [x for x in doc.findings if x.code == "loss_divergence"]
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "warning" and "barely moved" in f[0].summary, \
        [(x.code, x.severity, x.summary) for x in doc.findings]


def test_the_flat_spiky_loss_in_a_warm_up_is_only_a_note(tmp_path: Path) -> None:
    """The learning rate climbing linearly all along (u04's 2.7e-7 -> 1e-5): the run has not trained
    at its rate yet, so the plateau is a note that names the warm-up."""
    v = _flat_spiky(np.random.default_rng(66))
    lr = np.linspace(2.7e-7, 1.0e-5, 41)
    doc = run_log_check(_wandb_history(tmp_path, v, lr))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "info"
    assert f[0].evidence.model_extra["warmup"] == [lr[0], lr[-1]]


def test_a_loss_that_climbs_all_along_is_still_left_to_divergence(tmp_path: Path) -> None:
    """A loss rising steadily 0.18 -> 0.22 (+22 %, trend's interval above 0) still climbs: no plateau
    (also without the fix: this guards the trend condition)."""
    rng = np.random.default_rng(65)
    v = np.linspace(0.18, 0.22, 41) * np.exp(rng.normal(0, 0.01, 41))
    _, low, _ = theil_sen(np.arange(41, dtype=np.float64), np.log(v))
    assert low > 0
    doc = run_log_check(_wandb_history(tmp_path, v))
    assert not [x for x in doc.findings if x.code == "loss_plateau"]


# --- u05: a long noisy run whose last quarter ranks no lower than its first -----------------------


def _lightning_loss(tmp_path: Path, v: np.ndarray, every: int = 50, lr: np.ndarray | None = None) -> Path:
    """A CSVLogger metrics.csv of ``self.log("loss", ...)`` every ``every`` steps of one epoch."""
    rows = ["epoch,loss,step" + (",lr-AdamW" if lr is not None else "")]
    rows += [f"0,{float(x)!r},{every * (i + 1) - 1}" + (f",{float(lr[i])!r}" if lr is not None else "") for i, x in enumerate(v)]
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _bouncing(rng: np.random.Generator) -> np.ndarray:
    """50 losses around 2.3 with 18 % noise and no trend (u05's TurnGPT fine-tune: 1.24-3.15)."""
    return 2.3 * np.exp(rng.normal(0, 0.18, 50))


def test_a_long_noisy_run_whose_last_quarter_is_no_lower_shows_no_learning(tmp_path: Path) -> None:
    v = _bouncing(np.random.default_rng(61))
    q = len(v) // 4
    # independently: the last quarter ranks no lower (Mann-Whitney's U of "last below first" as a share)
    u = mannwhitneyu(v[:q], v[-q:]).statistic  # pairs where a first-quarter point is the higher
    steps = 50 * np.arange(1, 51, dtype=np.float64) - 1
    slope, low, _ = theil_sen(steps, np.log(v))
    span = steps[-1] - steps[0]
    assert u / q**2 <= 0.5 and 1 - math.exp(slope * span) < 0.05 and 1 - math.exp(low * span) >= 0.2
    doc = run_log_check(_lightning_loss(tmp_path, v))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "warning", [(x.code, x.severity, x.summary) for x in doc.findings]
    assert "no evidence of learning over 2450 steps" in f[0].summary
    assert abs(f[0].evidence.model_extra["last_quarter_lower"] - u / q**2) < 1e-12


def test_the_noisy_run_still_warming_up_is_only_a_note(tmp_path: Path) -> None:
    v = _bouncing(np.random.default_rng(61))
    doc = run_log_check(_lightning_loss(tmp_path, v, lr=np.linspace(1e-6, 5e-5, 50)))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "info" and f[0].evidence.model_extra["warmup"] is not None


def test_the_noisy_run_over_few_steps_is_still_too_little_to_tell(tmp_path: Path) -> None:
    """The same 50 points over 500 steps (also without the fix: the step bar is conservative)."""
    v = _bouncing(np.random.default_rng(61))
    doc = run_log_check(_lightning_loss(tmp_path, v, every=10))
    f = [x for x in doc.findings if x.code == "loss_plateau"]
    assert len(f) == 1 and f[0].severity == "info" and "too little to tell" in f[0].summary


def test_a_noisy_run_that_falls_stays_quiet(tmp_path: Path) -> None:
    """The same noise about a loss falling 2.8 -> 2.0 over 2,500 steps: no plateau warning
    (also without the fix)."""
    rng = np.random.default_rng(67)
    v = np.linspace(2.8, 2.0, 50) * np.exp(rng.normal(0, 0.18, 50))
    doc = run_log_check(_lightning_loss(tmp_path, v))
    assert not [x for x in doc.findings if x.code == "loss_plateau" and x.severity != "info"]
