"""logsweep49's detector misses: an accuracy that measures nothing a regression loss trains, and
validation bounces no higher than the run's first epochs."""

from __future__ import annotations

import numpy as np

from gradhealth.logs.check import diagnose
from tests.logs.test_detectors import run_of


def _findings(run, code: str):  # noqa: ANN001, ANN202
    return [f for f in diagnose(run).findings if f.code == code]


def test_an_accuracy_of_zero_on_both_splits_of_a_regression_is_a_note() -> None:
    # a Keras regression on mse logging "acc": 0 on validation, never above 0.6% on training,
    # while the loss falls 5x (Keras counts exact matches of continuous outputs)
    n = 12
    loss = 0.16 * np.exp(-np.arange(n) / 5) + 0.01
    train_acc = np.where(np.arange(n) % 2, 0.0056, 0.0)
    [f] = _findings(run_of(loss=loss, acc=train_acc, val_acc=np.zeros(n)), "loss_plateau")
    assert f.severity == "info"
    assert "does not measure what this loss trains" in f.summary
    assert f.evidence.model_extra["train_accuracy_max"] == 0.0056


def test_an_accuracy_of_zero_where_the_training_accuracy_climbs_is_still_a_warning() -> None:
    # a classifier fitting its training set (0.3 -> 0.95) that never gets one validation sample right
    n = 12
    loss = 2.3 * np.exp(-np.arange(n) / 3) + 0.05
    train_acc = np.linspace(0.3, 0.95, n)
    [f] = _findings(run_of(loss=loss, acc=train_acc, val_acc=np.zeros(n)), "loss_plateau")
    assert f.severity == "warning"


def _validation_run(bounce: float) -> dict[str, np.ndarray]:
    # 300 epochs of a validation loss: ls49's first 12 epochs (``bounce`` at epoch 4, where that run
    # had 0.0731), then a fall from 0.029 to 0.0116 with 1 % noise and three recovered bumps late
    rng = np.random.default_rng(7)
    first = np.array([0.0597, 0.056, 0.0541, 0.0465, bounce, 0.0555, 0.0485, 0.0313, 0.0306, 0.0303, 0.0291,
                      0.0286])
    t = np.arange(288)
    rest = (0.0175 * np.exp(-t / 60) + 0.0116) * np.exp(rng.normal(0, 0.01, 288))
    val = np.concatenate([first, rest])
    for i in (201, 202, 250, 253):
        val[i] *= 1.9
    train = 0.5 * np.exp(-np.arange(300) / 50) + 0.02
    return {"loss": train, "val_loss": val}


def test_validation_bumps_no_higher_than_its_first_epochs_are_a_note() -> None:
    # the largest bump (0.0731 at epoch 4) is a first-epochs bounce 1.2x the first point: the start
    [f] = _findings(run_of(**_validation_run(0.0731)), "loss_spike")
    assert f.severity == "info"


def test_an_early_blow_up_far_above_the_start_is_still_a_warning() -> None:
    # the same run thrown 50x above its start at epoch 4 (a 3D VAE's KL at step 30): not a bounce
    [f] = _findings(run_of(**_validation_run(3.0)), "loss_spike")
    assert f.severity == "warning"
