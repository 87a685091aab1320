"""Console formats from the twenty-fifth log sweep (training logs committed to public repositories),
each written here in the shape the tool printed it, with made-up numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import line_values
from gradhealth.logs.series import classify
from tests.logs.helpers import by_name, write


def _opennmt(steps: int = 12) -> str:
    lines = []
    best = "inf"
    for i in range(1, steps + 1):
        xent = 3.3 * math.exp(-i / 4) + 0.01
        lines.append(f"[2024-05-08 04:06:17,722 INFO] Step {50 * i}/100000; acc:  {min(99.6, 12 + 8 * i):.2f}; "
                     f"ppl: {math.exp(xent):5.2f}; xent: {xent:.2f}; lr: 1.00000; 11270/8704 tok/s;      4 sec")
        if i % 4 == 0:
            ppl = math.exp(xent + 0.1)
            lines.append(f"[2024-05-08 04:06:18,000 INFO] Validation perplexity: {ppl:.4f}")
            lines.append(f"[2024-05-08 04:06:18,001 INFO] Model is improving ppl: {best} --> {ppl:.5f}.")
            best = f"{ppl:.5f}"
    return "\n".join(lines) + "\n"


def test_the_value_an_arrow_replaces_is_not_read() -> None:
    # OpenNMT's best-so-far starts from infinity: "Model is improving ppl: inf --> 5.45281."
    assert line_values("[INFO] Model is improving ppl: inf --> 5.45281.")[0] == []
    assert line_values("lr: 0.1 -> 0.01")[0] == []
    assert dict(line_values("step: 3 loss: 0.5 -- lr: 0.1")[0]) == {"step": "3", "loss": "0.5", "lr": "0.1"}


def test_a_healthy_opennmt_run_with_its_best_so_far_from_infinity_is_healthy(tmp_path: Path) -> None:
    run = read_log(write(tmp_path, "train.log", _opennmt()))
    s = by_name(run)
    assert np.all(np.isfinite(s["ppl"].values))
    assert not [f for f in diagnose(run).findings if f.code == "nonfinite"]


def _mxnet(epochs: int = 3, nan_at: tuple[int, int] | None = None) -> str:
    lines = []
    for e in range(epochs):
        for b in range(20, 120, 20):
            v = 2.0 * math.exp(-(e * 100 + b) / 200)
            shown = "nan" if (e, b) == nan_at else f"{v:.6f}"
            lines.append(f"INFO:root:Epoch[{e}] Batch [{b}]\tSpeed: 36.22 samples/sec\tTrain-CrossEntropy={shown}")
            lines.append(f"INFO:root:Epoch[{e}] Batch [{b}]\tSpeed: 36.22 samples/sec\tTrain-SmoothL1={v / 2:.6f}")
        lines.append(f"INFO:root:Epoch[{e}] Time cost=103.4")
        lines.append(f"INFO:root:Epoch[{e}] Validation-CrossEntropy={2.1 * math.exp(-(e * 100 + 100) / 200):.6f}")
    return "\n".join(lines) + "\n"


def test_mxnets_epoch_and_batch_in_brackets_place_each_line_within_its_epoch(tmp_path: Path) -> None:
    assert dict(line_values("Epoch[145] Batch [20]\tSpeed: 36.22 samples/sec\tTrain-Acc=0.774131")[0]) == {
        "epoch": "145", "step": "20", "Speed": "36.22", "Train-Acc": "0.774131"}
    s = by_name(read_log(write(tmp_path, "mx.log", _mxnet())))
    ce = s["Train-CrossEntropy"]
    assert ce.role == "loss" and ce.step_unit == "epoch"
    # epoch 0's five batches lie within it, epoch 1's after them
    assert np.all((ce.steps[:5] > 0) & (ce.steps[:5] < 1)) and np.all((ce.steps[5:10] > 1) & (ce.steps[5:10] < 2))
    assert np.all(np.diff(ce.steps) > 0)
    assert s["Validation-CrossEntropy"].role == "val_loss"


def test_a_nan_in_an_mxnet_loss_is_a_nonfinite_error(tmp_path: Path) -> None:
    report = diagnose(read_log(write(tmp_path, "mx.log", _mxnet(nan_at=(1, 60)))))
    assert [f.severity for f in report.findings if f.code == "nonfinite"] == ["error"]


@pytest.mark.parametrize("name,role", [
    ("Train-CrossEntropy", "loss"), ("Train-SmoothL1", "loss"), ("Validation-cross-entropy", "val_loss"),
    ("Train-Acc", "metric"), ("Train-ObjectAcc", "metric"),
])
def test_mxnet_speedometer_names(name: str, role: str) -> None:
    assert classify(name)[0] == role


def _annealed(epochs: int = 50, recon_climb: float = 0.0) -> str:
    """A Lightning metrics.csv of a Bayesian network: the loss is nll + beta * kl with beta ramped
    from 0 to 2e-4 over 25 epochs; the NLL holds (or climbs by ``recon_climb`` a epoch)."""
    rng = np.random.default_rng(0)
    rows = ["epoch,step,train_kl_epoch,train_loss_epoch,train_nll_epoch"]
    for e in range(epochs):
        nll = 0.51 + rng.normal(0, 0.02) + recon_climb * e
        kl = 347000.0 + rng.normal(0, 300)
        beta = 2e-4 * min(1.0, e / 25)
        rows.append(f"{e},{38 + 39 * e},{kl},{nll + beta * kl},{nll}")
    return "\n".join(rows) + "\n"


def test_a_loss_climbing_with_its_penalty_weight_while_its_data_term_holds_is_a_note(tmp_path: Path) -> None:
    report = diagnose(read_log(write(tmp_path, "metrics.csv", _annealed())))
    [f] = [f for f in report.findings if f.code == "loss_divergence"]
    assert f.severity == "info" and f.evidence.data_term == "train_nll_epoch"


def test_a_climb_its_data_term_makes_too_is_a_divergence(tmp_path: Path) -> None:
    # the NLL itself climbing 0.5 -> 25: the fit is lost, whatever the penalty does
    report = diagnose(read_log(write(tmp_path, "metrics.csv", _annealed(recon_climb=0.5))))
    assert [f.severity for f in report.findings if f.code == "loss_divergence"] == ["error"]


def test_a_timing_beside_a_diverging_loss_is_no_data_term(tmp_path: Path) -> None:
    # detectron2's data_time holds flat while the loss diverges: no term of the loss
    rows = ["iteration,total_loss,data_time,time"]
    rows += [f"{i * 20},{0.5 + (0.0 if i < 20 else 0.2 * (i - 20)):.4f},0.0123,0.45" for i in range(40)]
    report = diagnose(read_log(write(tmp_path, "metrics.csv", "\n".join(rows) + "\n")))
    assert [f.severity for f in report.findings if f.code == "loss_divergence"] == ["error"]
