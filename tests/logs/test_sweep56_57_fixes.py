"""What the fifty-sixth and fifty-seventh log sweeps (real logs: a fine-tune's mid-run blow-up, a
detector's early validation spikes, CycleGAN's console) found."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check
from tests.logs.helpers import write


def _codes(doc, severities=("warning", "error")) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in doc.findings if f.severity in severities}


def _trainer_csv(loss: np.ndarray) -> str:
    return "step,loss\n" + "".join(f"{50 * (i + 1)},{x:.4f}\n" for i, x in enumerate(loss))


def _fine_tune(climb: float, length: int, rng: np.random.Generator, floor: float = 900) -> np.ndarray:
    """A loss falling from 3,550 to ``floor`` over 42 points, climbing ``climb`` x over ``length``
    points, then back to its floor; 61 points in all (logsweep56's stress fine-tune)."""
    fall = np.geomspace(3550, floor, 42)
    # the real climb's shape: up within two points and held, its peak late (1163 ... 2397, 1679)
    shape = np.array([1.3, 1.7, 1.85, 2.2, 1.8, 2.0, 2.15, 2.7, 2.45, 1.9])[:length]
    up = floor * (1 + (shape - 1) * (climb - 1) / 1.7)
    back = floor * np.geomspace(1.55, 1.25, 61 - 42 - length)
    return np.concatenate([fall, up, back]) * (1 + rng.normal(0, 0.02, 61))


def test_a_short_climb_that_gave_back_half_the_fall_is_a_warning(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "run.csv", _trainer_csv(_fine_tune(2.7, 10, np.random.default_rng(0)))))
    found = [f for f in doc.findings if f.code == "loss_divergence"]
    assert found and found[0].severity == "warning"
    assert 5 <= found[0].evidence.model_extra["points_above"] < 0.2 * 61  # shorter than the long rule's fifth


def test_a_short_bump_that_gives_back_little_is_no_divergence(tmp_path: Path) -> None:
    # a like climb (9 points over 1.5x) above a floor 24x below the start: a twentieth of the fall given back
    doc = run_log_check(write(tmp_path, "run.csv", _trainer_csv(_fine_tune(3.5, 10, np.random.default_rng(0), 150))))
    assert "loss_divergence" not in _codes(doc)


def _detector_csv(val_cls: list[float]) -> str:
    rows = ["epoch,train/box_loss,train/cls_loss,train/dfl_loss,metrics/mAP50(B),val/box_loss,val/cls_loss,val/dfl_loss"]
    for e, cls in enumerate(val_cls, 1):
        rows.append(f"{e},{1.5 / e ** 0.3:.4f},{3.0 / e ** 0.4:.4f},{1.3 / e ** 0.2:.4f},{min(0.9, 0.02 * e):.4f},"
                    f"{1.6 / e ** 0.25:.4f},{cls:.4f},{1.4 / e ** 0.2:.4f}")
    return "\n".join(rows) + "\n"


def _val_cls(spikes: dict[int, float], n: int = 60) -> list[float]:
    base = [4.3 * (1 + 0.5 / e) * (1 - 0.4 * e / n) for e in range(1, n + 1)]
    for at, value in spikes.items():
        base[at - 1] = value
    return base


def test_early_validation_spikes_the_run_recovered_from_are_a_note(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "results.csv", _detector_csv(_val_cls({7: 65.2, 11: 113.5}))))
    spikes = [f for f in doc.findings if f.code == "loss_spike" and "val" in f.evidence.metric]
    assert spikes and all(f.severity == "info" for f in spikes)


def test_late_validation_spikes_stay_a_warning(tmp_path: Path) -> None:
    doc = run_log_check(write(tmp_path, "results.csv", _detector_csv(_val_cls({37: 65.2, 45: 113.5, 52: 90.0}))))
    spikes = [f for f in doc.findings if f.code == "loss_spike" and "val" in f.evidence.metric]
    assert spikes and spikes[0].severity == "warning"


def _cyclegan(d_b: np.ndarray, g_b: np.ndarray, per_epoch: int = 13) -> str:
    """pix2pix/CycleGAN's console: ``iters`` counts within the epoch."""
    lines = ["================ Training Loss (Sun Sep 17 14:06:12 2017) ================\n"]
    for k, (d, g) in enumerate(zip(d_b, g_b, strict=True)):
        epoch, it = 1 + k // per_epoch, 100 * (1 + k % per_epoch)
        lines.append(f"(epoch: {epoch}, iters: {it}, time: 0.746) D_A: 0.210 G_A: 0.450 Cyc_A: 1.492 "
                     f"D_B: {d:.3f} G_B: {g:.3f} Cyc_B: 2.123 \n")
    return "".join(lines)


def test_cyclegans_iters_count_within_the_epoch_so_every_line_is_a_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 13 * 40
    doc = run_log_check(write(tmp_path, "loss_log.txt", _cyclegan(0.2 + rng.uniform(-0.05, 0.05, n),
                                                                  0.4 + rng.uniform(-0.1, 0.1, n))))
    d_b = next(s for s in doc.series if s.name == "D_B")
    assert d_b.points == n and "iters" not in {s.name for s in doc.series}


def test_a_discriminator_near_zero_while_its_generator_climbs_is_winning(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 13 * 200
    # D_B from 0.16 down to 0.002-0.006 for the middle third, G_B up to LSGAN's ceiling of ~1 there
    d = np.concatenate([np.geomspace(0.16, 0.01, n // 3), np.full(n // 3, 0.003), np.geomspace(0.01, 0.03, n - 2 * (n // 3))])
    g = np.concatenate([np.linspace(0.4, 0.9, n // 3), np.full(n // 3, 0.97), np.linspace(0.95, 0.85, n - 2 * (n // 3))])
    d_noisy = np.clip(d * (1 + rng.uniform(-0.3, 0.3, n)), 0.001, None)
    g_noisy = g + rng.uniform(-0.02, 0.02, n)
    doc = run_log_check(write(tmp_path, "loss_log.txt", _cyclegan(d_noisy, g_noisy)))
    found = [f for f in doc.findings if f.code == "loss_plateau" and f.severity == "warning"]
    assert found and found[0].evidence.metric == "D_B"
    assert found[0].evidence.model_extra["generator"] == "G_B"
    assert found[0].evidence.model_extra["generator_ratio"] >= 2.0


def test_a_balanced_gan_is_not_judged_winning(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 13 * 200
    d = 0.25 * np.geomspace(1, 0.5, n) * (1 + rng.uniform(-0.3, 0.3, n))   # LSGAN's D near balance
    g = 0.3 + 0.1 * np.sin(np.arange(n) / 50) + rng.uniform(-0.05, 0.05, n)
    doc = run_log_check(write(tmp_path, "loss_log.txt", _cyclegan(d, g)))
    assert "loss_plateau" not in _codes(doc)
