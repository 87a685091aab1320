"""logsweep97 lgbm_hyperopt_cv: a LightGBM hyperparameter search's console, 100 cross-validated fits one after
another, each restarting its ``[n]`` round counter, was read as one series of 635 evaluations "steps 20-200" and
given a loss_plateau warning with PyTorch optimizer code as its remedy. A boosting round counter that starts
again splits runs as a bare step counter does; a fit stopped early after a few rounds is a short run (a note),
not a log with nothing read; a boosting log's remedies are its parameters (learning_rate/eta, early stopping),
never a network optimizer's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import write

ROUNDS = [20, 40, 60, 80, 100, 120, 140]
#: each fit's floor (a weak-signal task: the fits differ by their parameters, each saturates at its own level)
FLOORS = [0.5326, 0.5334, 0.5317, 0.5314, 0.5331, 0.5322]


def _fit(floor: float, r: int) -> float:
    """A fit's validation logloss at round ``r``: most of the fall done by round 20, then flat at its floor."""
    return floor + 0.002 * math.exp(-r / 15)


def _cv_console() -> str:
    lines = []
    for k, floor in enumerate(FLOORS):
        lines += ["{", f' "learning_rate": 0.{k + 1},', f' "num_leaves": {10 + k}', "}"]
        lines += [f"[{r}]\tvalid's binary_logloss: {_fit(floor, r):.6f}" for r in ROUNDS]
    return "\n".join(lines) + "\n"


def test_each_fit_whose_round_counter_starts_again_is_a_run_of_its_own(tmp_path: Path) -> None:
    run = read_log(write(tmp_path, "cv.log", _cv_console()))
    assert len(run.runs) == len(FLOORS)
    parts = run.split()
    for k, (name, floor) in enumerate(zip(run.runs, FLOORS, strict=True)):
        (val,) = [s for s in parts[name].series if s.role == "val_loss"]
        np.testing.assert_array_equal(val.steps, ROUNDS, err_msg=f"fit {k}")
        np.testing.assert_allclose(val.values, [_fit(floor, r) for r in ROUNDS], atol=5e-7)
    assert any(w.code == "several_runs" for w in run.warnings)


def test_a_search_of_saturating_fits_is_no_plateau(tmp_path: Path) -> None:
    doc = diagnose(read_log(write(tmp_path, "cv.log", _cv_console())))
    assert doc.status == "healthy", [(f.code, f.summary) for f in doc.findings if f.severity != "info"]


def test_a_fit_stopped_after_three_rounds_is_a_short_run_not_nothing_read(tmp_path: Path) -> None:
    text = "".join(f"[{r}]\tvalid's binary_logloss: {_fit(0.53, r):.6f}\n" for r in ROUNDS[:3])
    doc = diagnose(read_log(write(tmp_path, "short.log", text)))
    assert doc.status == "healthy"
    (note,) = [f for f in doc.findings if f.code == "insufficient_data"]
    assert note.severity == "info" and "valid-binary_logloss (3 points" in note.summary


def _stuck_xgboost(tmp_path: Path) -> Path:
    # eta 0: the training rmse does not move from round 0 (a genuine plateau, the rounds add nothing)
    text = "".join(f"[{i}]\ttrain-rmse:{17.0 + 0.001 * (-1) ** i:.4f}\tvalidate-rmse:{17.5 + 0.001 * (-1) ** i:.4f}\n"
                   for i in range(60))
    return write(tmp_path, "xgb.log", text)


def test_a_boosting_logs_plateau_remedy_is_its_learning_rate_parameter(tmp_path: Path) -> None:
    (plateau,) = [f for f in diagnose(read_log(_stuck_xgboost(tmp_path))).findings if f.code == "loss_plateau"]
    (raise_lr,) = plateau.remedies
    assert raise_lr.id == "raise_learning_rate" and raise_lr.snippet_framework == "boosting"
    assert "eta" in raise_lr.change and "learning_rate" in raise_lr.snippet
    for network_code in ("optimizer", "param_groups", "torch", 'group["lr"]'):
        assert network_code not in raise_lr.snippet


def test_an_overfitting_boosting_run_is_told_to_stop_early_in_its_librarys_words(tmp_path: Path) -> None:
    rounds = range(1, 150)
    train = [0.69 * math.exp(-i / 30) for i in rounds]
    valid = [0.5 + 0.19 * math.exp(-i / 10) + (0.004 * (i - 30) if i > 30 else 0.0) for i in rounds]
    text = "".join(f"[{i}]\ttraining's binary_logloss: {t:.5f}\tvalid_1's binary_logloss: {v:.5f}\n"
                   for i, t, v in zip(rounds, train, valid, strict=True))
    doc = diagnose(read_log(write(tmp_path, "lgb.log", text)))
    remedies = [r for f in doc.findings if f.severity != "info" for r in f.remedies]
    assert remedies and all(r.snippet_framework == "boosting" for r in remedies)
    stop = next(r for r in remedies if r.id == "early_stopping")
    best = int(np.argmin(valid)) + 1  # the round where the validation loss was lowest
    assert f"round {best}" in stop.change and "early_stopping_rounds" in stop.snippet
    assert all("torch" not in r.snippet and "optimizer" not in r.snippet for r in remedies)


def test_a_network_console_keeps_its_pytorch_remedies(tmp_path: Path) -> None:
    text = "".join(f"step {i} loss {2.0 + 0.001 * (-1) ** i:.4f}\n" for i in range(60))
    (plateau,) = [f for f in diagnose(read_log(write(tmp_path, "train.log", text))).findings
                  if f.code == "loss_plateau"]
    assert all(r.snippet_framework == "pytorch" for r in plateau.remedies)
