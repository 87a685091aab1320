"""Console formats and failures from the twenty-fourth log sweep (real issue pastes), each written
here in the shape the tool printed it, with made-up numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import line_values
from gradhealth.logs.series import classify
from tests.logs.helpers import by_name, write


def test_open_mpis_output_tag_before_each_line_is_no_value(tmp_path: Path) -> None:
    # SageMaker runs the script under mpirun --tag-output: "[1,mpirank:0,algo-1]<stdout>:" and
    # syslog's "#015" for each carriage return
    lines = [f"[1,mpirank:0,algo-1]<stdout>:#015Epoch {e}: 100% 2/2 [00:00<00:00, 12.10it/s, "
             f"loss={2.3 - 0.1 * e:.2f}, v_num=0]" for e in range(10)]
    s = by_name(read_log(write(tmp_path, "sagemaker.log", "\n".join(lines) + "\n")))
    np.testing.assert_allclose(s["loss"].values, [2.3 - 0.1 * e for e in range(10)], atol=1e-9)
    assert "mpirank" not in s
    assert dict(line_values("[1,0]<stderr>:step: 4 loss: 0.5")[0]) == {"step": "4", "loss": "0.5"}


@pytest.mark.parametrize("line,pairs", [
    ("[12]\ttrain-rmse:0.41\tvalidate-rmse:0.47", {"step": "12", "train-rmse": "0.41", "validate-rmse": "0.47"}),
    ("[3]\tvalidation_0-logloss:0.62\tvalidation_1-logloss:0.66",
     {"step": "3", "validation_0-logloss": "0.62", "validation_1-logloss": "0.66"}),
    ("[40]\ttraining's l2: 0.17\tvalid_1's l2: 0.22", {"step": "40", "training-l2": "0.17", "valid_1-l2": "0.22"}),
])
def test_a_boosting_rounds_evaluation_is_its_round_and_each_sets_metric(line: str, pairs: dict) -> None:
    assert dict(line_values(line)[0]) == pairs


@pytest.mark.parametrize("name,role", [
    ("train-rmse", "loss"), ("training-l2", "loss"), ("train-logloss", "loss"),
    ("validate-rmse", "val_loss"), ("validation_1-logloss", "val_loss"), ("valid_0-l2", "val_loss"),
    ("train-auc", "metric"),   # a score that rises, not the objective
    ("val_rmse", "metric"),    # a Keras metric beside its loss keeps its role
])
def test_boosting_objectives_are_their_sets_losses(name: str, role: str) -> None:
    assert classify(name)[0] == role


def test_an_xgboost_log_is_read_and_judged_by_its_rounds(tmp_path: Path) -> None:
    rmse = [17.0 * 0.72 ** i + 2.0 for i in range(40)]
    text = "\n".join(f"[{i}]\ttrain-rmse:{v:.4f}\tvalidate-rmse:{v * 1.05:.4f}" for i, v in enumerate(rmse)) + "\n"
    run = read_log(write(tmp_path, "xgb.log", text))
    s = by_name(run)
    np.testing.assert_array_equal(s["train-rmse"].steps, np.arange(40))
    assert not [f for f in diagnose(run).findings if f.severity != "info"]


def test_a_postfix_key_with_a_colon_and_an_equals_sign_is_read() -> None:
    # tqdm's set_postfix(**{"loss: ": x}) prints "loss: =6.78"
    found = dict(line_values("100%|##########| 625/625 [03:20<00:00, 3.12it/s, epoch=4, loss: =6.78, LR=0.00012]")[0])
    assert found["loss"] == "6.78" and found["epoch"] == "4"


def _gan(d: list[float]) -> str:
    return "\n".join(f"Elapsed [1:22:48.539515] batch: {6000 + 500 * i}  d_loss: {x:.6f}  g_loss: {16 + i % 3:.6f}"
                     for i, x in enumerate(d)) + "\n"


def test_a_discriminator_loss_at_exactly_zero_is_a_won_game(tmp_path: Path) -> None:
    d = [0.0] * 14 + [0.28, 0.0, 0.01, 0.0]
    plateau = [f for f in diagnose(read_log(write(tmp_path, "gan.log", _gan(d)))).findings if f.code == "loss_plateau"]
    assert [f.severity for f in plateau] == ["warning"] and plateau[0].evidence.metric == "d_loss"


@pytest.mark.parametrize("d", [
    [0.5, 0.0, 0.7, 0.3, 0.0, 0.6, 0.4, 0.0],          # at 0 now and then: a game going on
    [0.0, 0.0, 0.0, 0.0],                               # too few points to say
])
def test_a_discriminator_at_zero_now_and_then_is_no_won_game(tmp_path: Path, d: list[float]) -> None:
    report = diagnose(read_log(write(tmp_path, "gan.log", _gan(d))))
    assert not [f for f in report.findings if f.code == "loss_plateau"]
