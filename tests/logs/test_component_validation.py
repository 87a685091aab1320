"""A validation loss that is a sum of component losses (Ultralytics' val/box_loss, val/cls_loss,
val/dfl_loss) is judged part by part as well: one head that overfits under flat others is not
diluted in the sum below the rise the check asks for (ls48, items 10 and 11).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.library import check_logs
from gradhealth.logs.derive import component_pairs
from gradhealth.logs.series import RunLog, make_series

_COLUMNS = ["epoch", "train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/precision(B)",
            "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)", "val/box_loss", "val/cls_loss",
            "val/dfl_loss", "lr/pg0"]


def _results_csv(path: Path, n: int, val_box: np.ndarray, val_cls: np.ndarray, val_dfl: np.ndarray,
                 map5095: np.ndarray, precision: np.ndarray | None = None, seed: int = 0) -> Path:
    """A YOLOv8 ``results.csv`` (its padded header included) whose training parts keep falling."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, n + 1)
    rows = [",".join(f"{c:>20s}" for c in _COLUMNS)]
    prec = precision if precision is not None else np.full(n, 0.5)
    for i in range(n):
        train = [1.8 * np.exp(-e[i] / 20) + 0.6, 3.9 * np.exp(-e[i] / 8) + 0.6, 1.5 * np.exp(-e[i] / 20) + 0.9]
        train = [x * (1 + rng.normal(0, 0.003)) for x in train]
        row = [e[i], *train, prec[i], 0.7, map5095[i] + 0.2, map5095[i], val_box[i], val_cls[i], val_dfl[i], 1e-3]
        rows.append(",".join(f"{x:>20.6g}" for x in row))
    path.write_text("\n".join(rows) + "\n")
    return path


def _flat(n: int, level: float, seed: int) -> np.ndarray:
    return level * (1 + np.random.default_rng(seed).normal(0, 0.004, n))


def _divergence(path: Path) -> list[Finding]:
    return [f for f in check_logs(path).findings if f.code == "validation_divergence"]


def _cls_overfit(n: int = 55, best: int = 34, rise: float = 0.25) -> np.ndarray:
    """A class loss that falls to its lowest at epoch ``best`` and then rises by ``rise``."""
    e = np.arange(1, n + 1)
    down = 1.84 + 7.0 * np.exp(-(e - 1) / 3) * (e <= best)
    up = 1.84 * (1 + rise * np.clip((e - best) / (n - best), 0, None))
    noise = 1 + np.random.default_rng(3).normal(0, 0.004, n)
    return np.where(e <= best, down, up) * noise


def test_one_head_that_overfits_under_flat_others_is_a_warning_naming_it(tmp_path: Path) -> None:
    n = 55
    e = np.arange(1, n + 1)
    # mAP50-95 peaks at the class loss's best and falls, while precision alone creeps up: the
    # detector's main metric decides, not precision (which can gain at recall's cost)
    m = 0.35 - 0.004 * np.abs(e - 35)
    path = _results_csv(tmp_path / "results.csv", n, _flat(n, 2.0, 1), _cls_overfit(n), _flat(n, 2.0, 2), m,
                        precision=np.linspace(0.2, 0.45, n))
    [f] = _divergence(path)
    assert f.severity == "warning"
    assert f.evidence.metric == "val/cls_loss" and f.evidence.train_metric == "train/cls_loss"
    assert f.evidence.component == "val/cls_loss" and f.evidence.component_rise > 0.15
    assert f.evidence.task_metric == "metrics/mAP50-95(B)"
    assert "val/cls_loss rose" in f.summary and "train/cls_loss fell" in f.summary
    assert "metrics/mAP50-95(B) ends at" in f.summary


def test_a_head_whose_rise_comes_with_a_still_improving_map_is_a_note(tmp_path: Path) -> None:
    n = 55
    m = np.linspace(0.10, 0.45, n)  # mAP50-95 keeps improving to the end: calibration, not overfitting
    path = _results_csv(tmp_path / "results.csv", n, _flat(n, 2.0, 1), _cls_overfit(n), _flat(n, 2.0, 2), m)
    [f] = _divergence(path)
    assert f.severity == "info" and f.evidence.metric == "val/cls_loss"
    assert f.evidence.task_metric == "metrics/mAP50-95(B)"
    # the whole loss rising +30% is judged as ever, by a metric of its own prefix only: a creeping
    # mAP excuses no part when the sum itself diverged (ls41's YOLOv5 objectness overfit)
    e = np.arange(1, n + 1)
    every = 1 + 0.3 * np.clip((e - 20) / (n - 20), 0, None) + 0.5 * np.exp(-e / 3)
    path = _results_csv(tmp_path / "all.csv", n, _flat(n, 1.0, 1) * every, _flat(n, 1.5, 2) * every,
                        _flat(n, 1.2, 7) * every, m)
    [f] = _divergence(path)
    assert f.severity == "warning" and f.evidence.metric.startswith("val/loss (sum of")
    assert f.evidence.component in ("val/box_loss", "val/cls_loss", "val/dfl_loss")


def test_a_long_run_whose_parts_rise_steadily_under_ten_percent_diverged_unless_map_gains(tmp_path: Path) -> None:
    n = 100
    e = np.arange(1, n + 1)
    box = 1.23 * (1 + 0.08 * np.clip((e - 5) / (n - 5), 0, None)) * (1 + np.random.default_rng(4).normal(0, 0.005, n))
    cls = 1.3 * np.exp(-e / 40) + 0.2  # still falling: the sum hides the box rise
    flat_map = 0.52 + np.random.default_rng(5).normal(0, 0.005, n)
    [f] = _divergence(_results_csv(tmp_path / "flat.csv", n, box, cls, _flat(n, 1.25, 6), flat_map))
    # one part rising under a falling sum with mAP50-95 held at its best is a note (logsweep71 h06)
    assert f.severity == "info" and f.evidence.metric == "val/box_loss"
    assert f.evidence.model_dump()["task_metric_holds"] is True
    assert f.evidence.threshold < 0.1  # judged by the slow-trend rise, not the general bar
    # the same rise beside an mAP50-95 that gained 0.1 since the box loss's best is no divergence,
    # nor are parts that all fall
    gaining = np.linspace(0.45, 0.55, n)
    assert not _divergence(_results_csv(tmp_path / "gaining.csv", n, box, cls, _flat(n, 1.25, 6), gaining))
    fall = np.exp(-e / 15)
    assert not _divergence(_results_csv(tmp_path / "healthy.csv", n, 1.0 + 0.5 * fall, 0.5 + 2.5 * fall,
                                        1.1 + 0.3 * fall, 0.7 - 0.5 * fall))


def test_component_pairs_pair_each_validation_part_with_its_own_training_part() -> None:
    x = np.arange(10, dtype=float)
    run = RunLog(format="csv", source="t", series=[make_series(name, x, x) for name in (
        "train/box_loss", "train/cls_loss", "val/box_loss", "val/cls_loss", "val/seg_loss", "run2/val_x_loss")])
    pairs = [(v.name, t.name) for v, t in component_pairs(run)]
    # seg has no training counterpart; a lone component of a split is no sum of parts
    assert pairs == [("val/box_loss", "train/box_loss"), ("val/cls_loss", "train/cls_loss")]
