"""What the thirty-sixth log sweep (false alarms on healthy runs) found: a flat validation loss with
its evaluations' ordinary noise (0.030 +- 13 %) was called validation_divergence in a third of such
runs: the "best" was one low draw, the "last" one or two points, and no trend was asked for."""

from __future__ import annotations

import math

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.detectors.validation import _trend_z
from gradhealth.logs.series import RunLog, make_series


def _run(val: np.ndarray, train: np.ndarray | None = None) -> RunLog:
    e = np.arange(len(val))
    loss = 0.3 * np.exp(-e / 4) + 0.02 if train is None else train
    return RunLog(format="keras", source="history.csv", series=[
        make_series("loss", e, loss, step_unit="epoch"), make_series("val_loss", e, val, step_unit="epoch")])


def _flagged(val: np.ndarray, train: np.ndarray | None = None) -> list:
    return [f for f in diagnose(_run(val, train)).findings
            if f.code == "validation_divergence" and f.severity != "info"]


def _mnist_val(seed: int, overfit: float = 0.0) -> np.ndarray:
    """20 epochs of a Keras MNIST val_loss: down to 0.030 by epoch 5, then flat with 13 % evaluation
    noise, plus ``overfit`` per epoch from epoch 7 on (0.0015: +65 % by epoch 19)."""
    noise = np.random.default_rng(seed).standard_normal(20)
    return np.round(np.array([0.030 + 0.07 * math.exp(-e / 1.2) + max(0, e - 6) * overfit + 0.004 * noise[e]
                              for e in range(20)]), 4)


def test_a_flat_noisy_validation_loss_is_rarely_called_a_divergence() -> None:
    # pure noise after the fall: a 5 % test should fire on about 5 % of runs, not the third it did
    false_alarms = sum(bool(_flagged(_mnist_val(1000 + s))) for s in range(100))
    assert false_alarms <= 8


def test_a_steady_rise_of_the_same_size_as_the_noise_is_still_caught() -> None:
    caught = sum(bool(_flagged(_mnist_val(5000 + s, overfit=0.0015))) for s in range(100))
    assert caught >= 85


def test_the_summary_never_says_the_training_loss_fell_to_a_higher_value() -> None:
    rng = np.random.default_rng(7)
    val = np.array([2.0, 1.2, 0.9, 0.8, 0.82, 0.9, 0.98, 1.05, 1.1, 1.18, 1.25, 1.3])
    train = np.array([2.0, 1.0, 0.7, 0.5, 0.4, 0.33, 0.3, 0.27, 0.25, 0.23, 0.2, 0.19]) * (1 + 0.01 * rng.random(12))
    train[-1] = 0.55   # the last logged point of a noisy loss, above the one at the best (0.5)
    [f] = _flagged(val, train)
    then, now = (float(x) for x in f.summary.split("loss fell from ")[1].split(";")[0].split(" to "))
    assert now < then


def test_the_trend_statistic() -> None:
    assert _trend_z(np.arange(10.0)) > 3 and _trend_z(-np.arange(10.0)) < -3
    assert abs(_trend_z(np.array([1.0, 3.0, 2.0, 3.0, 1.0, 2.0]))) < 1
    assert _trend_z(np.ones(8)) == 0.0


def test_a_validation_loss_that_jumps_and_stays_up_is_a_divergence_without_a_trend_after() -> None:
    # nanoGPT's evaluations: down to 1.24, then from one evaluation to the next 1.47, where it stays
    # (drifting down a little) while the training loss keeps falling: a lasting rise, not a blip
    val = np.array([4.57, 2.727, 1.911, 1.542, 1.369, 1.282, 1.234, 1.259, 1.247, 1.24, 1.237, 1.472,
                    1.469, 1.478, 1.472, 1.473, 1.462, 1.458, 1.457, 1.491, 1.466])
    train = np.linspace(4.5, 1.05, len(val))
    assert _trend_z(val[9:]) < 1.64          # the Mann-Kendall test alone would let it pass
    [f] = _flagged(val, train)
    assert "rose from its lowest 1.23" in f.summary


def test_a_splits_only_loss_under_a_name_of_its_own_is_its_loss(tmp_path) -> None:  # noqa: ANN001
    # SimCLR's Lightning log: the contrastive loss is all the training split logs
    from gradhealth.logs.load import read_log

    path = tmp_path / "metrics.csv"
    path.write_text("step,train/nt_xent_loss\n" + "".join(
        f"{10 * i},{6.93 - 0.01 * i + (0.1 * (i - 30) if i > 30 else 0.0)}\n" for i in range(60)))
    log = read_log(path)
    [loss] = log.by_role("loss")
    assert loss.name == "train/nt_xent_loss" and any("only loss logged" in w.message for w in log.warnings)
    assert [f.code for f in diagnose(log).findings if f.severity != "info"] == ["loss_divergence"]
