"""newuser10 items 1, 2, 8, 14 and logsweep75's wording, on logs written here the way the tools write them:

1. a ReLU MLP whose every weight matrix died (only the output bias still gets a gradient) was a dead_layer
   warning, and its evidence gave a count of layers as the value of grad_norm/0.weight;
2. a NaN from one bad batch, nothing growing before it, got "lower the LR" and "clip";
8. HTML labelled log remedies "Verified: from the log";
14. "1 of its 5 points" counted only the finite points of a 150-point loss;
logsweep75: two minima in one loss_divergence sentence, and Monitor summaries naming ep_rew_mean, a
column the file does not have."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.report import render
from gradhealth.report.context import ReportContext

_LAYERS = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def _recorder_log(tmp_path: Path, steps: int, point) -> Path:  # noqa: ANN001 - point(step) -> (loss, norm, layers)
    """The GradientRecorder's JSON Lines: loss, grad_norm and lr per logged step, then one line per tensor."""
    lines: list[dict] = [{"gradhealth_recorder": "start", "params": {"num_classes": "5"}}]
    for step in range(0, steps, 5):
        loss, norm, layers = point(step)
        lines += [{"step": step, "metric": "loss", "value": loss},
                  {"step": step, "metric": "grad_norm", "value": norm},
                  {"step": step, "metric": "lr", "value": 0.05}]
        lines += [{"step": step, "layer": n, "kind": "grad_norm", "value": v} for n, v in layers.items()]
    path = tmp_path / "gradients.jsonl"
    path.write_text("\n".join(json.dumps(x, allow_nan=True) for x in lines) + "\n")
    return path


def _dead_weights(tmp_path: Path, alive: tuple[str, ...]) -> Path:
    """A 5-class MLP whose tensors but ``alive`` are at exactly 0 from step 60, the loss at ln 5."""
    rng = np.random.default_rng(0)

    def point(step: int):  # noqa: ANN202
        layers = {n: 0.0 if step >= 60 and n not in alive else float(0.1 + rng.random()) for n in _LAYERS}
        return float(math.log(5) * np.exp(rng.normal(0, 0.01))), float(0.5 + rng.random()), layers
    return _recorder_log(tmp_path, 400, point)


def test_every_weight_matrix_dead_is_an_error_though_the_output_bias_learns(tmp_path: Path) -> None:
    doc = check_logs(_dead_weights(tmp_path, alive=("4.bias",)))
    [f] = [f for f in doc.findings if f.code == "dead_layer"]
    assert f.severity == "error"
    ev = f.evidence.model_dump()
    assert ev["metric"] == "grad_norm/*"           # the kind of series, not one layer's
    assert ev["dead_count"] == 5 and ev["value"] == 0.0
    assert ev["weight_tensors"] == 3 and ev["dead_weight_tensors"] == 3 and ev["all_weights_dead"] is True
    assert "every weight tensor (3 of 3)" in f.summary and "4.bias" in f.summary.split("3 of 3")[1]


def test_a_weight_matrix_still_learning_keeps_dead_layer_a_warning(tmp_path: Path) -> None:
    doc = check_logs(_dead_weights(tmp_path, alive=("4.weight", "4.bias")))
    [f] = [f for f in doc.findings if f.code == "dead_layer"]
    assert f.severity == "warning" and f.evidence.model_dump()["all_weights_dead"] is False
    assert f.evidence.model_dump()["dead_count"] == 4


def _nan_at(tmp_path: Path, growing: bool) -> Path:
    """400 steps, every 5th logged; the loss NaN from step 250 on. Flat before it (a bad batch), or the
    norm doubling every logged step over the 8 before it (an explosion)."""
    rng = np.random.default_rng(1)

    def point(step: int):  # noqa: ANN202
        if step >= 250:
            return math.nan, math.nan, {n: math.nan for n in _LAYERS}
        k = (step - 210) // 5  # logged points before the NaN, counted from step 210
        norm = float(1.0 + 0.3 * rng.random()) * (2.0 ** k if growing and k > 0 else 1.0)
        loss = float(0.3 * np.exp(rng.normal(0, 0.1))) * (1.5 ** k if growing and k > 0 else 1.0)
        return loss, norm, {n: norm / 3 for n in _LAYERS}
    return _recorder_log(tmp_path, 400, point)


def test_a_nan_with_nothing_growing_before_it_points_at_the_data_not_the_step_size(tmp_path: Path) -> None:
    [f] = [f for f in check_logs(_nan_at(tmp_path, growing=False)).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.steps[0] == 250
    ids = [r.id for r in f.remedies]
    assert "lower_learning_rate" not in ids and "gradient_clipping" not in ids
    assert ids[0] == "check_data" and "domain_guard" in ids
    assert "no growth before it" in f.summary and "not the learning rate" in f.summary
    assert f.evidence.model_dump()["sudden"] is True


def test_a_nan_after_the_norm_grew_keeps_clipping_and_a_lower_rate(tmp_path: Path) -> None:
    [f] = [f for f in check_logs(_nan_at(tmp_path, growing=True)).findings if f.code == "nonfinite"]
    ids = [r.id for r in f.remedies]
    assert "gradient_clipping" in ids and "lower_learning_rate" in ids and "check_data" not in ids


def test_the_astronomical_loss_counts_say_which_points_are_finite(tmp_path: Path) -> None:
    # 150 points: 4 ordinary, one 3.59e28 at step 8, then NaN (newuser10 #14)
    values = [1e4, 2e5, 3e7, 5e9, 3.59e28] + [math.nan] * 145

    def point(step: int):  # noqa: ANN202
        v = values[step // 2]
        return v, v, {}
    lines = [{"step": 2 * i, "metric": "loss", "value": v} for i, v in enumerate(values)]
    path = tmp_path / "gradients.jsonl"
    path.write_text("\n".join(json.dumps(x, allow_nan=True) for x in lines) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "loss_divergence"]
    assert "1 of its 5 finite points (145 NaN/Inf) is 1e+15 or more" in f.summary


def test_html_does_not_call_log_remedies_verified(tmp_path: Path) -> None:
    path = _nan_at(tmp_path, growing=True)
    doc = check_logs(path)
    html = render("html", doc, ReportContext(source=str(path), path=path))
    assert doc.findings and any(f.remedies for f in doc.findings)
    assert "Verified:" not in html and "(from the log)" in html


def test_a_divergence_names_its_running_median_minimum_apart_from_the_logged_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    loss = [float(3.0 * np.exp(-i / 10) + 0.5) * np.exp(rng.normal(0, 0.05)) for i in range(30)]
    loss += [float(loss[-1] * 1.12 ** k) for k in range(1, 21)]  # +12% a point for 20 points
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(loss)))
    [f] = [f for f in check_logs(path).findings if f.code == "loss_divergence"]
    assert "'s running median (of " in f.summary and "rose" in f.summary and "from its lowest, " in f.summary
    assert "the logged values: lowest" in f.summary and "from its minimum" not in f.summary


def test_monitor_summaries_name_the_files_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n, cut = 300, 240
    returns = [float(-180 + 330 * i / cut + rng.normal(0, 30)) if i < cut else float(-250 + rng.normal(0, 30))
               for i in range(n)]
    rows = ["#" + json.dumps({"t_start": 1700000000.0, "env_id": "LunarLander-v2"}), "r,l,t"]
    rows += [f"{r:.6f},200,{0.4 * (i + 1):.6f}" for i, r in enumerate(returns)]
    path = tmp_path / "monitor.csv"
    path.write_text("\n".join(rows) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "reward_collapse"]
    assert "column r" in f.summary
