"""newuser8 items 1-2 and logsweep71 h06, on logs written here the way the tools write them:

1. a ReLU MLP killed by lr 8: five of six tensors at exactly 0 on 70% of the steps, with flickers
   (the odd batch wakes a unit), got no dead_layer;
2. its loss, noisy around 1.5x its start (ln 3) and above chance, read "rising" to loss_plateau and
   "no divergence" to loss_divergence, so neither reported it;
3. one YOLO validation loss part rising 13% while the parts' task metric held was a warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from tests.logs.test_component_validation import _results_csv

_LAYERS = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def _dead_mlp(tmp_path: Path, seed: int = 0, level: float = 1.55) -> Path:
    """The recorder's JSON Lines of a 3-class run whose loss is thrown from ln 3 to a noisy ~1.6 and
    whose layers but the output bias die at step 36, each waking on about 1 step in 5 after."""
    rng = np.random.default_rng(seed)
    lines = [{"gradhealth_recorder": "start", "params": {"num_classes": "3"}}]
    for step in range(300):
        loss = 1.106 if step == 0 else float((level + 0.4 * step / 300) * np.exp(rng.normal(0, 0.25)))
        lines += [{"step": step, "metric": "loss", "value": loss},
                  {"step": step, "metric": "grad_norm", "value": float(0.5 + rng.random())},
                  {"step": step, "metric": "lr", "value": 8.0}]
        asleep = step >= 36 and rng.random() < 0.8
        for name in _LAYERS:
            value = 0.0 if asleep and name != "4.bias" else float(0.1 + rng.random())
            lines.append({"step": step, "layer": name, "kind": "grad_norm", "value": value})
    path = tmp_path / "gradients.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_layers_at_exactly_zero_on_most_steps_with_flickers_are_dead(tmp_path: Path) -> None:
    doc = check_logs(_dead_mlp(tmp_path))
    [f] = [f for f in doc.findings if f.code == "dead_layer"]
    assert f.severity == "error"  # every weight tensor dead: only the output bias learns (newuser10 #1)
    assert f.evidence.layers == _LAYERS[:5]
    ev = f.evidence.model_dump()
    assert 0.65 <= ev["zero_fraction"] <= 0.8  # about 0.8 of the 264 steps from 36: ~0.70 of the run
    assert "lower_learning_rate" in [r.id for r in f.remedies]


def test_a_loss_stuck_above_chance_is_reported_whatever_its_noise(tmp_path: Path) -> None:
    for seed in range(6):
        doc = check_logs(_dead_mlp(tmp_path, seed, level=1.3))  # drifting 1.3 -> 1.7: "rising", not 1.5x its lowest
        loss = [f for f in doc.findings if f.code in ("loss_plateau", "loss_divergence") and f.severity != "info"]
        assert loss, (seed, [(f.code, f.severity) for f in doc.findings])


def _yolo_parts(tmp_path: Path, task_metric_falls: bool) -> Path:
    """A YOLOv8 results.csv: val/box_loss lowest at epoch 28, then +13% to epoch 120, while cls falls
    and dfl holds; mAP50-95 holds at its best, or falls from 0.58 to 0.40 after epoch 28."""
    n = 120
    e = np.arange(1, n + 1)
    noise = np.random.default_rng(5).normal(0, 0.003, n)
    box = np.where(e <= 28, 1.75 - 0.25 * (e - 1) / 27, 1.5 * (1 + 0.13 * (e - 28) / 92)) * (1 + noise)
    cls = (0.7 + 1.8 * np.exp(-(e - 1) / 10)) * (1 - noise)
    dfl = np.full(n, 1.6) * (1 + noise[::-1])
    m = (np.where(e <= 28, 0.3 + 0.01 * e, 0.58 - 0.002 * (e - 28)) if task_metric_falls
         else np.minimum(0.52, 0.30 + 0.01 * e) * (1 + noise))
    return _results_csv(tmp_path / "results.csv", n, box, cls, dfl, m)


def test_one_part_rising_while_the_task_metric_holds_is_a_note(tmp_path: Path) -> None:
    [f] = [f for f in check_logs(_yolo_parts(tmp_path, task_metric_falls=False)).findings
           if f.code == "validation_divergence"]
    assert f.severity == "info" and f.evidence.metric == "val/box_loss"
    ev = f.evidence.model_dump()
    assert ev["components"] == ["val/box_loss", "val/cls_loss", "val/dfl_loss"]
    assert ev["task_metric_holds"] is True
    assert "one part of the validation loss" in f.summary


def test_one_part_rising_while_the_task_metric_falls_is_still_a_warning(tmp_path: Path) -> None:
    [f] = [f for f in check_logs(_yolo_parts(tmp_path, task_metric_falls=True)).findings
           if f.code == "validation_divergence"]
    assert f.severity == "warning" and f.evidence.metric == "val/box_loss"
    [stop] = [r for r in f.remedies if r.id == "early_stopping"]
    assert stop.model_dump()["params"]["patience"] == 7  # a quarter of the 28 evaluations to the best
