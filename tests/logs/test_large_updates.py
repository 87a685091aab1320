"""The log check's ``large_updates``: a layer whose median update-to-weight ratio per step is far
above the healthy ~1e-3, read from native JSONL and CSV logs written here.

The truth is the test's own: the ratios it wrote (medians recomputed with numpy from them), the
learning rate it logged, and the factor 1e-2 / median worked out independently.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.library import check_logs
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.thresholds import LogThresholds
from tests.logs.helpers import write

DATA = Path(__file__).resolve().parents[1] / "data" / "logs"
LR = 0.05
N = 60


def base_rows(n: int = N, seed: int = 0) -> list[dict]:
    """A healthy run's loss, grad norm and constant learning rate, long-form JSONL records."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    loss = (2.0 * np.exp(-t / (n / 4)) + 0.3) * np.exp(rng.normal(0, 0.03, n))
    grad = np.exp(rng.normal(0, 0.15, n))
    rows: list[dict] = []
    for i in range(n):
        rows += [{"step": 10 * i, "metric": "loss", "value": float(loss[i])},
                 {"step": 10 * i, "metric": "grad_norm", "value": float(grad[i])},
                 {"step": 10 * i, "metric": "lr", "value": LR}]
    return rows


def ratio_rows(layer: str, values: np.ndarray | list[float]) -> list[dict]:
    """Long-form records of one layer's update ratios, one per logged step (step 10 i)."""
    return [{"step": 10 * i, "layer": layer, "kind": "update_ratio",
             "value": v if math.isfinite(v) else str(v)} for i, v in enumerate(values)]


def jsonl(tmp_path: Path, rows: list[dict]) -> Path:
    return write(tmp_path, "run.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def healthy_ratios(seed: int, n: int = N) -> np.ndarray:
    return 1e-3 * np.exp(np.random.default_rng(seed).normal(0, 0.3, n))


def large(doc) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == "large_updates"]


def test_healthy_ratios_raise_nothing(tmp_path):
    rows = base_rows() + ratio_rows("fc1.weight", healthy_ratios(1)) + ratio_rows(
        "fc2.weight", healthy_ratios(2))
    path = jsonl(tmp_path, rows)
    assert {s.role for s in read_log(path).series} >= {"update_ratio"}  # the reader saw them
    doc = check_logs(path)
    assert large(doc) == [] and doc.status == "healthy", [(f.code, f.summary) for f in doc.findings]


def test_one_layer_at_0_3_is_a_warning_with_the_factor_to_1e_2(tmp_path):
    hot = np.full(N, 0.3)
    hot[[7, 30, 51]] = 40.0  # spikes: the median ignores them
    rows = base_rows() + ratio_rows("fc1.weight", healthy_ratios(1)) + ratio_rows("fc2.weight", hot)
    doc = check_logs(jsonl(tmp_path, rows))
    [f] = large(doc)
    assert f.severity == "warning" and doc.status == "warning"
    assert f.evidence.layers == ["fc2.weight"] and "fc2.weight" in f.summary
    assert "fc1.weight" not in f.summary
    assert f.evidence.metric == "update_ratio/fc2.weight"
    assert f.evidence.value == pytest.approx(0.3) and f.evidence.threshold == pytest.approx(0.1)
    assert f.evidence.steps == [0, 10 * (N - 1)]
    [fix] = [r for r in f.remedies if r.id == "lower_learning_rate"]
    assert fix.params["factor"] == pytest.approx(1e-2 / 0.3, rel=1e-12)
    assert fix.params["learning_rate_at_onset"] == pytest.approx(LR)
    assert fix.params["suggested_learning_rate"] == pytest.approx(LR * 1e-2 / 0.3, rel=1e-12)
    assert "proportional to the learning rate" in fix.change


def test_a_layer_at_3_is_an_error_in_a_wide_csv(tmp_path):
    rng = np.random.default_rng(3)
    hot = 3.0 * np.exp(rng.normal(0, 0.2, N))
    cool = healthy_ratios(4)
    lines = ["step,loss,grad_norm,lr,update_ratio/enc.0.weight,update_ratio/enc.1.weight"]
    loss = 2.0 * np.exp(-np.arange(N) / 15) + 0.3
    grad = np.exp(rng.normal(0, 0.15, N))
    lines += [f"{i},{loss[i]:.17g},{grad[i]:.17g},{LR},{cool[i]:.17g},{hot[i]:.17g}"
              for i in range(N)]
    doc = check_logs(write(tmp_path, "run.csv", "\n".join(lines) + "\n"))
    [f] = large(doc)
    worst = float(np.median(hot))
    assert f.severity == "error" and f.evidence.layers == ["enc.1.weight"]
    assert f.evidence.value == pytest.approx(worst, rel=1e-12)
    [fix] = [r for r in f.remedies if r.id == "lower_learning_rate"]
    assert fix.params["factor"] == pytest.approx(1e-2 / worst, rel=1e-12)


def test_layers_are_named_worst_first_and_the_total_counts():
    from gradhealth.logs.series import RunLog, make_series

    run = RunLog(format="test", source="synthetic")
    steps = np.arange(20)
    levels = {"update_ratio/a.weight": 0.2, "update_ratio/b.weight": 0.9, "update_ratio": 0.5,
              "update_ratio/c.weight": 1e-3}
    for name, level in levels.items():
        run.series.append(make_series(name, steps, np.full(20, level)))
    [f] = large(diagnose(run))
    assert f.evidence.layers == ["b.weight", "update_ratio", "a.weight"]
    assert f.severity == "warning" and f.evidence.value == pytest.approx(0.9)
    # a higher warning threshold leaves only b.weight; a lower error threshold makes it an error
    [g] = large(diagnose(run, LogThresholds(large_update_warning=0.6, large_update_error=0.8)))
    assert g.evidence.layers == ["b.weight"] and g.severity == "error"


def test_a_zero_initialised_bias_does_not_fire(tmp_path):
    # +inf on the first step (zero weights), then huge while its norm is still tiny
    bias = [math.inf, math.inf, 1e6, 1e3] + [0.5] * (N - 4)
    rows = base_rows() + ratio_rows("fc1.weight", healthy_ratios(1)) + ratio_rows("fc1.bias", bias)
    assert large(check_logs(jsonl(tmp_path, rows))) == []
    # the same ratios on a weight are large updates: the bias is left out by name, not by luck
    rows = base_rows() + ratio_rows("fc1.weight", bias)
    [f] = large(check_logs(jsonl(tmp_path, rows)))
    assert f.evidence.value == pytest.approx(0.5)


def test_nonfinite_and_zero_ratios_never_fire_by_themselves(tmp_path):
    # A weight's first steps: NaN and +inf, a frozen step of 0, a few huge finite values; then
    # healthy.
    ratios = np.concatenate([[math.nan, math.inf, 0.0, 50.0, 20.0], healthy_ratios(5, N - 5)])
    rows = base_rows() + ratio_rows("fc1.weight", ratios)
    doc = check_logs(jsonl(tmp_path, rows))
    assert large(doc) == []
    # nor is an undefined ratio (weights of norm 0) an overflow: no nonfinite either; a NaN in
    # the loss still is
    assert all(f.code != "nonfinite" for f in doc.findings)
    rows[3]["value"] = "nan"  # the loss at step 10
    assert rows[3]["metric"] == "loss"
    assert any(f.code == "nonfinite" for f in check_logs(jsonl(tmp_path, rows)).findings)


def test_fewer_finite_positive_points_than_min_points_raise_nothing(tmp_path):
    k = LogThresholds().min_points
    few = [math.inf] * 10 + [0.0] * 10 + [5.0] * (k - 1)
    rows = base_rows() + ratio_rows("fc1.weight", few)
    assert large(check_logs(jsonl(tmp_path, rows))) == []
    # one more finite positive point is enough to judge: the same layer is now an error
    rows = base_rows() + ratio_rows("fc1.weight", few + [5.0])
    [f] = large(check_logs(jsonl(tmp_path, rows)))
    assert f.severity == "error" and f.evidence.value == pytest.approx(5.0)


@pytest.mark.parametrize("name", ["hf-mistral-translator", "lightning-csv-ml-aos"])
def test_real_logs_without_update_ratios_have_no_large_updates(name):
    path = DATA / name
    assert not [s for s in read_log(path).series if s.role == "update_ratio"]
    assert large(check_logs(path)) == []


def test_the_thresholds_must_be_positive():
    with pytest.raises(ValueError):
        LogThresholds(large_update_warning=0)
    with pytest.raises(ValueError):
        LogThresholds(large_update_error=-1)


def small(doc) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == "small_updates"]


def test_every_layer_three_decades_under_a_healthy_step_is_small_updates(tmp_path):
    slow = [3e-4 * healthy_ratios(i) for i in (1, 2)]  # ~3e-7 medians: 3e-4 of a healthy step
    slow[1] = slow[1] * 0.5
    bias = np.full(N, 1e-12)  # a bias's ratio says nothing about the rate: it is not judged
    rows = base_rows() + ratio_rows("fc1.weight", slow[0]) + ratio_rows("fc2.weight", slow[1]) + ratio_rows(
        "fc1.bias", bias)
    doc = check_logs(jsonl(tmp_path, rows))
    fastest = float(np.median(slow[0]))
    assert fastest < 1e-6  # the test's own data, under the line
    [f] = small(doc)
    assert f.severity == "warning" and f.evidence.value == pytest.approx(fastest)
    assert f.evidence.layers == ["fc1.weight", "fc2.weight"] and "fc1.weight" in f.summary
    [remedy] = f.remedies
    assert remedy.id == "raise_learning_rate"
    factor = 1e-4 / fastest
    assert remedy.params["factor"] == pytest.approx(factor)
    assert f"{LR * factor:.3g}" in remedy.change  # the rate in effect, raised


def test_one_starved_layer_beside_a_healthy_one_is_not_small_updates(tmp_path):
    rows = base_rows() + ratio_rows("fc1.weight", 1e-4 * healthy_ratios(1)) + ratio_rows(
        "fc2.weight", healthy_ratios(2))
    assert small(check_logs(jsonl(tmp_path, rows))) == []


@pytest.mark.parametrize("name", ["hf-mistral-translator", "lightning-csv-ml-aos"])
def test_real_logs_without_update_ratios_have_no_small_updates(name):
    assert small(check_logs(DATA / name)) == []
