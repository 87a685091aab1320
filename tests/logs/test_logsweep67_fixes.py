"""logsweep67: a frozen model read from its losses' exact repeats (u04), a NaN in evaluation only
that later evaluations recovered from (u05), and one reward_collapse per quantity (u10). Each log
is written here the way its framework writes it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check


def _codes(doc) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(f.code, f.severity) for f in doc.findings]


def _lightning(tmp_path: Path, *, frozen_from: int | None, fmt: str = "{!r}", epochs: int = 12,
               steps_per_epoch: int = 30) -> Path:
    """A Lightning CSVLogger metrics.csv (epoch,step,train_loss,val_loss: one row per step, one
    per validation) of a loss that falls; from epoch ``frozen_from`` on the weights no longer
    change, so the (unshuffled) batches give the same losses every epoch and the validation the
    same value."""
    rng = np.random.default_rng(0)
    batch_noise = rng.uniform(0.8, 1.2, steps_per_epoch)
    rows = ["epoch,step,train_loss,val_loss"]
    step = 0
    for e in range(epochs):
        level = 2.0 * math.exp(-0.3 * min(e, frozen_from if frozen_from is not None else e))
        for b in range(steps_per_epoch):
            # float32 losses, printed in full as Lightning writes them
            x = float(np.float32(level * batch_noise[b] * (1.0 if frozen_from is not None and e >= frozen_from
                                                           else rng.uniform(0.97, 1.03))))
            rows.append(f"{e},{step},{fmt.format(x)},")
            step += 1
        val = float(np.float32(0.9 * level * (1.0 if frozen_from is not None and e >= frozen_from
                                               else rng.uniform(0.99, 1.01))))
        rows.append(f"{e},{step - 1},,{fmt.format(val)}")
    p = tmp_path / "metrics.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def test_a_validation_loss_identical_to_every_printed_digit_at_evaluation_after_evaluation_is_a_frozen_model(
        tmp_path: Path) -> None:
    doc = run_log_check(_lightning(tmp_path, frozen_from=6))
    [f] = [f for f in doc.findings if f.code == "small_updates"]
    assert f.severity == "warning"
    # epochs 6-11 are frozen: 6 evaluations at one value, each the last step of its epoch
    assert f.evidence.metric == "val_loss"
    extra = f.evidence.model_extra or {}
    assert extra["repeats"] == 6 and extra["evaluations"] == 12 and extra["digits"] >= 7
    assert f.evidence.steps == [6 * 30 + 29, 11 * 30 + 29]
    # the training loss's 30 batches repeat from epoch 6 (step 180) to the end: 6 periods
    assert extra["period"] == 30 and extra["repeat_steps"] == [180, 359]
    assert [r.id for r in f.remedies] == ["check_updates"]
    assert "stopped changing" in f.summary


def test_the_training_loss_repeating_epoch_after_epoch_says_it_alone(tmp_path: Path) -> None:
    """Without the validation rows, the per-step loss's exact period is the evidence."""
    p = _lightning(tmp_path, frozen_from=6)
    p.write_text("\n".join(line for line in p.read_text().splitlines() if ",," not in line) + "\n")
    [f] = [f for f in run_log_check(p).findings if f.code == "small_updates"]
    assert f.evidence.metric == "train_loss" and (f.evidence.model_extra or {})["period"] == 30


def test_a_healthy_run_and_one_printed_to_four_decimals_on_a_plateau_are_not_frozen(tmp_path: Path) -> None:
    assert ("small_updates", "warning") not in _codes(run_log_check(_lightning(tmp_path, frozen_from=None)))
    # a plateau a loss printed to 4 decimals cannot resolve: 0.2297 at every evaluation, a batch
    # loss that repeats at that print precision too
    rows = ["epoch,loss,val_loss,val_accuracy"]
    rng = np.random.default_rng(1)
    for e in range(30):
        loss = 0.2 + 0.5 * math.exp(-e) + rng.uniform(0, 3e-5)
        val = 0.2297 if e >= 8 else 0.2297 + 0.3 * math.exp(-e)
        rows.append(f"{e},{loss:.4f},{val:.4f},{0.91 if e >= 5 else 0.5:.2f}")
    p = tmp_path / "plateau.csv"
    p.write_text("\n".join(rows) + "\n")
    assert "small_updates" not in [c for c, _ in _codes(run_log_check(p))]


_YOLO_HEADER = ("               epoch,      train/box_loss,      train/obj_loss,      train/cls_loss,   "
                "metrics/precision,      metrics/recall,     metrics/mAP_0.5,metrics/mAP_0.5:0.95,        "
                "val/box_loss,        val/obj_loss,        val/cls_loss,               x/lr0,               "
                "x/lr1,               x/lr2")


def _yolo(tmp_path: Path, nan_epochs: set[int], epochs: int = 30) -> Path:
    """A YOLOv5 results.csv (columns padded to 20, as its train.py writes them)."""
    rows = [_YOLO_HEADER]
    for e in range(epochs):
        box, obj = 0.1 * math.exp(-e / 20), 0.035 * math.exp(-e / 30)
        vbox, vobj = ("nan", "nan") if e in nan_epochs else (f"{0.08 * math.exp(-e / 25):.5g}",
                                                            f"{0.02 * math.exp(-e / 40):.5g}")
        m = 0.9 * (1 - math.exp(-e / 8))
        vals = [str(e), f"{box:.5g}", f"{obj:.5g}", "0", f"{m:.5g}", f"{m:.5g}", f"{m:.5g}", f"{m / 2:.5g}",
                vbox, vobj, "0", "0.01", "0.01", "0.01"]
        rows.append(",".join(f"{v:>20}" for v in vals))
    p = tmp_path / "results.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def test_a_nan_in_one_evaluation_that_later_ones_recovered_from_is_a_warning_not_an_error(tmp_path: Path) -> None:
    doc = run_log_check(_yolo(tmp_path, {1}))
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "warning" and doc.status != "unhealthy"
    assert "evaluation only" in f.summary and "epoch 1" in f.summary
    extra = f.evidence.model_extra or {}
    assert extra["evaluation_only"] is True and extra["nonfinite_steps"] == [1]
    assert "lower_learning_rate" not in [r.id for r in f.remedies]


def test_a_nan_evaluation_at_the_end_or_a_nan_training_loss_stays_an_error(tmp_path: Path) -> None:
    # the last evaluation NaN: nothing shows the weights sound after it
    [f] = [f for f in run_log_check(_yolo(tmp_path, {29})).findings if f.code == "nonfinite"]
    assert f.severity == "error"
    p = _yolo(tmp_path, {1})
    lines = p.read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = f"{'nan':>20}"
    lines[3] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    [f] = [f for f in run_log_check(p).findings if f.code == "nonfinite"]
    assert f.severity == "error"


def test_episode_returns_and_their_running_mean_give_one_collapse(tmp_path: Path) -> None:
    """A Monitor file (one row per episode): the reader derives ep_rew_mean, a 100-episode mean
    of the same returns; the collapse is judged on it, the episodes' medians folded in."""
    rng = np.random.default_rng(2)
    n = 3000
    level = np.concatenate([np.linspace(100, 2000, n // 2), np.full(n - n // 2, -400.0)])
    returns = level + rng.normal(0, 150, n)
    rows = ['#{"t_start": 1591112345.12, "env_id": "Walker2d-v3"}', "r,l,t"]
    rows += [f"{r:.6f},1000,{i * 0.5:.6f}" for i, r in enumerate(returns)]
    p = tmp_path / "0.monitor.csv"
    p.write_text("\n".join(rows) + "\n")
    doc = run_log_check(p)
    [f] = [f for f in doc.findings if f.code == "reward_collapse"]
    assert f.evidence.metric == "ep_rew_mean"
    episodes = (f.evidence.model_extra or {})["episodes"]
    assert episodes["metric"] == "episode_return"
    # the medians of single episodes, computed here from the returns written
    assert math.isclose(episodes["start"], float(np.median(returns[: n // 10])), rel_tol=1e-6)
    assert math.isclose(episodes["last"], float(np.median(returns[-math.ceil(0.2 * n):])), rel_tol=1e-6)
    assert "per episode (column r)" in f.summary  # the Monitor file's column (logsweep75)


def test_a_validation_loss_carried_forward_on_every_training_line_is_not_a_frozen_model(tmp_path: Path) -> None:
    # A console or CSV that repeats the last evaluation's value on each training line (a progress
    # bar's postfix) shows it identical for many lines while the model learns: not evaluations.
    rows = ["step,train_loss,val_loss"]
    val = float("nan")
    for step in range(600):
        loss = float(np.float32(2.0 * math.exp(-step / 200) + 0.01 * math.sin(step)))
        if step % 100 == 0:
            val = float(np.float32(0.9 * loss + 0.05))
        rows.append(f"{step},{loss!r},{val!r}")
    p = tmp_path / "metrics.csv"
    p.write_text("\n".join(rows) + "\n")
    assert "small_updates" not in [f.code for f in run_log_check(p).findings]
