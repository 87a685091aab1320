"""What the thirty-fourth log sweep found (structured formats): a run's figures scoped by a dot
(Sacred's ``train.update_ratio``, ``training.grad_norm``) lost their role, per-layer gradient norms
growing towards the input were not read as exploding, and a W&B history from the Hugging Face or
Lightning integration was placed by W&B's row counter instead of the trainer's step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.series import classify
from tests.logs.helpers import by_name, write


@pytest.mark.parametrize(("name", "role", "layer"), [
    ("train.update_ratio", "update_ratio", None),
    ("train/update_ratio", "update_ratio", None),
    ("train/update_ratio/fc1.weight", "update_ratio", "fc1.weight"),
    ("training.grad_norm", "grad_norm", None),   # the run's total, not a layer called "training"
    ("train.lr", "learning_rate", None),
    ("training.lr", "learning_rate", None),
    ("optimizer/grad_norm", "grad_norm", None),
    ("training.loss", "loss", None),
    ("training.encoder.grad_norm", "layer_grad_norm", "encoder"),
])
def test_a_split_or_optimizer_scope_before_the_name_keeps_its_role(name: str, role: str, layer: str | None) -> None:
    assert classify(name) == (role, layer)


@pytest.mark.parametrize("name", ["train.accuracy", "train/global_step", "train_runtime", "training.epoch"])
def test_a_scoped_name_that_is_no_known_figure_stays_a_metric(name: str) -> None:
    assert classify(name)[0] == "metric"


def _sacred(tmp_path: Path, series: dict[str, list[float]]) -> Path:
    obj = {k: {"steps": list(range(0, 10 * len(v), 10)), "timestamps": ["2026-01-01T00:00:00.000000"] * len(v),
               "values": v} for k, v in series.items()}
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(obj))
    (run / "config.json").write_text("{}")
    return run


def test_a_dotted_update_ratio_three_decades_low_is_small_updates(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    run = _sacred(tmp_path, {"train.loss": list(2.3 + 0.01 * rng.standard_normal(n)),
                             "train.update_ratio": list(2e-7 * np.exp(0.1 * rng.standard_normal(n)))})
    doc = diagnose(read_log(run))
    assert "small_updates" in {f.code for f in doc.findings if f.severity in ("warning", "error")}


def _layers_csv(tmp_path: Path, gain: float) -> Path:
    """A CSV of ten blocks' gradient norms, each block ``gain`` times the one after it (towards the
    input), with a loss that falls: the growth with depth is the only thing wrong or right."""
    rng = np.random.default_rng(1)
    names = [f"grad_norm/blocks.{i}.fc.weight" for i in range(10)]
    rows = ["step,loss," + ",".join(names)]
    for k in range(40):
        noise = np.exp(0.1 * rng.standard_normal(10))
        norms = [0.05 * gain ** (9 - i) * noise[i] for i in range(10)]
        rows.append(f"{k * 10},{3.0 * np.exp(-k / 30):.5f}," + ",".join(f"{x:.6g}" for x in norms))
    return write(tmp_path, "metrics.csv", "\n".join(rows) + "\n")


def test_per_layer_norms_growing_decades_towards_the_input_are_exploding(tmp_path: Path) -> None:
    doc = diagnose(read_log(_layers_csv(tmp_path, 2.6)))   # 2.6^9 = 5.4e3 from the last block to the first
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert f.severity == "warning"
    assert f.evidence.layers == ["blocks.0.fc.weight", "blocks.9.fc.weight"]
    assert f.evidence.value == pytest.approx(2.6**9, rel=0.3)
    assert not [f for f in doc.findings if f.code == "vanishing_gradient"]


def test_per_layer_norms_within_a_few_decades_are_not_exploding(tmp_path: Path) -> None:
    doc = diagnose(read_log(_layers_csv(tmp_path, 1.8)))   # 1.8^9 = 198: inside the 3 decades allowed
    assert not [f for f in doc.findings if f.code == "exploding_gradient"]


def _hf_history(n: int, nan_from: int) -> list[dict]:
    rows = []
    for k in range(n):
        step = 5 * (k + 1)
        bad = step >= nan_from
        rows.append({"_step": k, "_runtime": 3.3 * (k + 1), "_timestamp": 1.7649e9 + 3.3 * k,
                     "train/global_step": step, "train/epoch": step / 1000,
                     "train/loss": float("nan") if bad else 3.0 - 0.001 * k,
                     "train/grad_norm": float("nan") if bad else 1.2})
    return rows


def test_a_wandb_csv_from_the_hf_integration_is_placed_by_the_trainers_step(tmp_path: Path) -> None:
    rows = _hf_history(400, nan_from=1420)
    keys = list(rows[0])
    text = ",".join(keys) + "\n" + "\n".join(",".join(str(r[k]) for k in keys) for r in rows) + "\n"
    log = read_log(write(tmp_path, "wandb_export.csv", text))
    assert by_name(log)["train/loss"].steps[-1] == 2000
    [f] = [f for f in diagnose(log).findings if f.code == "nonfinite"]
    assert "step 1420" in f.summary


def test_a_wandb_history_jsonl_is_placed_by_the_trainers_step_unless_it_goes_back(tmp_path: Path) -> None:
    rows = _hf_history(400, nan_from=1420)
    path = write(tmp_path, "history.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert by_name(read_log(path))["train/epoch"].steps[-1] == 2000
    # resumed from a checkpoint: the trainer's steps repeat, W&B's own counter keeps the order
    resumed = rows[:200] + [{**r, "_step": r["_step"] + 100} for r in rows[100:300]]
    path = write(tmp_path, "resumed-history.jsonl", "\n".join(json.dumps(r) for r in resumed) + "\n")
    assert by_name(read_log(path))["train/epoch"].steps[-1] == 399
