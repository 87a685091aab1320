"""What the forty-fourth to forty-sixth log sweeps (real logs: structured formats, bug-report
pastes, RL/GAN/recsys/MXNet logs) found in the log check's detectors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose, run_log_check
from gradhealth.logs.series import RunLog, make_series
from tests.logs.helpers import write


def _run(**named: np.ndarray) -> RunLog:
    """A run whose series keep their names as given (spaces, hyphens), one point per epoch."""
    run = RunLog(format="test", source="synthetic")
    for name, values in named.items():
        run.series.append(make_series(name, np.arange(len(values)), values, step_unit="epoch"))
    return run


def _codes(run: RunLog) -> dict[str, str]:
    return {f.code: f.severity for f in diagnose(run).findings}


# --- names with hyphens and spaces (MXNet's Train-Accuracy, GAIL's "mean 100 episode reward") ----

def test_mxnet_hyphenated_accuracies_are_accuracies(tmp_path: Path) -> None:
    # MXNet's Module.fit logs accuracy alone by default: a run the user reads from its accuracy,
    # a note, not a warning that the log says nothing
    lines = "".join(f"INFO:root:Epoch[{e}] Train-accuracy={0.2 + 0.05 * e:.4f}\n"
                    f"INFO:root:Epoch[{e}] Validation-accuracy={0.18 + 0.05 * e:.4f}\n" for e in range(10))
    doc = run_log_check(write(tmp_path, "train.log", lines))
    [note] = [f for f in doc.findings if f.code == "insufficient_data"]
    assert note.severity == "info" and "Train-accuracy" in note.summary
    assert not [f for f in doc.findings if f.severity in ("warning", "error")]


def test_a_reward_named_with_spaces_is_an_rl_outcome_and_its_mean_is_judged() -> None:
    rng = np.random.default_rng(3)
    n = 60
    mean = np.concatenate([np.linspace(10, 100, 30), np.full(30, 12.0)]) + rng.normal(0, 2, n)
    run = _run(**{"mean 100 episode reward": mean, "min 100 episode reward": mean - 40,
                  "max 100 episode reward": mean + 40})
    [f] = [f for f in diagnose(run).findings if f.code == "reward_collapse"]
    assert f.evidence.metric == "mean 100 episode reward"  # the mean, not its min/max companions


def test_a_series_named_for_a_reward_alone_is_a_note_not_a_warning() -> None:
    # a TensorBoard CSV export is named after its file: "acrobot_ppo_reward"
    run = _run(acrobot_ppo_reward=np.linspace(-7700, -4300, 40))
    [note] = diagnose(run).findings
    assert note.code == "insufficient_data" and note.severity == "info"
    assert "acrobot_ppo_reward" in note.summary


# --- a validation accuracy that is one class's share at every evaluation --------------------------

def _keras(val_acc: np.ndarray, val_loss: np.ndarray) -> RunLog:
    n = len(val_acc)
    return _run(loss=np.linspace(1.0, 0.6, n), acc=np.linspace(0.58, 0.72, n), val_loss=val_loss, val_acc=val_acc)


def test_a_validation_accuracy_at_one_class_share_with_the_prior_s_loss_is_a_warning() -> None:
    # Keras issue 4662: val_acc 0.7188 for 15 epochs, val_loss settling at 0.61
    share = 0.7188
    prior = -(share * math.log(share) + (1 - share) * math.log(1 - share))  # computed here: 0.594
    val_acc = np.array([0.7202, 0.7202, 0.7198] + [share] * 12)
    val_loss = np.concatenate([np.linspace(0.96, 0.65, 6), np.full(9, 1.03 * prior)])
    [f] = [f for f in diagnose(_keras(val_acc, val_loss)).findings if f.code == "loss_plateau"]
    assert f.severity == "warning" and f.evidence.metric == "val_acc"
    assert abs(f.evidence.prior_entropy - prior) < 1e-9 and f.remedies[0].id == "balance_classes"


def test_a_constant_accuracy_on_a_small_set_with_a_low_loss_is_no_one_class_model() -> None:
    # 31 of 32 right every epoch: a model that learned, on a set too small for its accuracy to move;
    # its loss (0.05) is far under the 0.14 that the share alone scores
    val_acc = np.full(15, 31 / 32)
    val_loss = np.linspace(0.09, 0.05, 15)
    assert "loss_plateau" not in _codes(_keras(val_acc, val_loss))


def test_an_overfitting_model_that_keeps_its_answers_is_no_one_class_model() -> None:
    # a small set's accuracy unmoved while the loss climbs from a best well under the share's 0.50
    val_acc = np.full(12, 0.8)
    val_loss = 0.40 + 0.03 * np.maximum(0, np.arange(12) - 3) ** 1.2
    assert "loss_plateau" not in _codes(_keras(val_acc, val_loss))


# --- a task metric for the whole set outranks one class's --------------------------------------------

def test_the_overall_metric_not_one_class_s_decides_whether_a_rising_eval_loss_is_overfitting() -> None:
    n = 20
    loss = np.linspace(0.8, 0.04, n)
    eval_loss = np.concatenate([np.linspace(0.9, 0.5, 6), np.linspace(0.55, 1.2, n - 6)])
    rare = np.concatenate([np.full(6, 0.3), np.linspace(0.35, 0.65, n - 6)])  # one rare class's F1
    flat = np.concatenate([np.linspace(0.3, 0.5, 6), np.full(n - 6, 0.5)])
    doc = diagnose(_run(loss=loss, eval_loss=eval_loss, eval_T005_f1=rare, eval_overall_f1=flat))
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.severity == "warning"  # the class's F1 rose; the set's did not
    rising = np.concatenate([np.linspace(0.3, 0.5, 6), np.linspace(0.5, 0.8, n - 6)])
    doc = diagnose(_run(loss=loss, eval_loss=eval_loss, eval_T005_f1=flat, eval_overall_f1=rising))
    [f] = [f for f in doc.findings if f.code == "validation_divergence"]
    assert f.severity == "info" and "eval_overall_f1" in f.summary


# --- an AUC at chance ------------------------------------------------------------------------------

def test_an_auc_at_one_half_is_chance_whatever_the_loss_does() -> None:
    rng = np.random.default_rng(1)
    n = 200
    loss = 5.4 * np.exp(-np.arange(n) / 20) + 0.3 + rng.normal(0, 0.05, n)  # the base rate learnt
    auc = 0.5 + rng.normal(0, 0.008, n)
    [f] = [f for f in diagnose(_run(loss=loss, auc=auc)).findings if f.code == "loss_plateau"]
    assert f.severity == "warning" and f.evidence.metric == "auc" and abs(f.evidence.value - 0.5) < 0.01


def test_an_auc_that_climbs_or_a_window_late_in_a_run_is_not_judged_at_chance() -> None:
    rng = np.random.default_rng(2)
    n = 200
    loss = 5.4 * np.exp(-np.arange(n) / 20) + 0.3 + rng.normal(0, 0.05, n)
    climbing = 0.5 + 0.25 * (1 - np.exp(-np.arange(n) / 30)) + rng.normal(0, 0.008, n)
    assert "loss_plateau" not in _codes(_run(loss=loss, auc=climbing))
    late = RunLog(format="test", source="synthetic")  # steps 5000-5199: a window, not the start
    for name, v in (("loss", np.full(n, 0.4) + rng.normal(0, 0.01, n)), ("auc", 0.5 + rng.normal(0, 0.008, n))):
        late.series.append(make_series(name, 5000 + np.arange(n), v))
    assert not [f for f in diagnose(late).findings if f.code == "loss_plateau" and f.evidence.metric == "auc"]


def test_a_loss_printed_as_zero_now_and_then_does_not_break_the_oscillation_check() -> None:
    # a random-looking loss in [0, 1) printed to 4 digits: some points read 0.0000
    import warnings

    rng = np.random.default_rng(4)
    loss = np.round(0.3 + 0.25 * (-1) ** np.arange(400) + rng.normal(0, 0.01, 400), 4)  # swings step to step
    loss[1::38] = 0.0  # some low swings print as 0.0000
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # log(0) warned and made the check fail
        [f] = [f for f in diagnose(_run(loss=loss)).findings if f.code == "loss_oscillation"]
    assert f.evidence.lag1_autocorrelation < 0


def test_three_steady_rises_of_a_short_validation_loss_that_add_up_are_overfitting() -> None:
    # a Keras CSVLogger of 7 epochs: val_loss 0.457 at epoch 3, then 0.469, 0.498, 0.534
    loss = np.array([0.63, 0.52, 0.44, 0.37, 0.29, 0.21, 0.158])
    val = np.array([0.61, 0.52, 0.48, 0.457, 0.469, 0.498, 0.534])
    [f] = [f for f in diagnose(_run(loss=loss, val_loss=val)).findings if f.code == "validation_divergence"]
    assert f.severity == "warning" and abs(f.evidence.value - (0.534 - 0.457) / 0.457) < 1e-9
    # three rises of 8% in all are within what evaluation noise does: no warning
    small = np.array([0.61, 0.52, 0.48, 0.457, 0.465, 0.478, 0.494])
    assert not [f for f in diagnose(_run(loss=loss, val_loss=small)).findings
                if f.code == "validation_divergence" and f.severity == "warning"]


def test_an_abbreviated_total_loss_is_the_training_loss(tmp_path: Path) -> None:
    lines = "".join(f"Epoch {e} train Loc Loss: {0.9 * 0.8 ** e:.4f} Cls Loss: {0.5 * 0.8 ** e:.4f} "
                    f"Tot Loss: {1.4 * 0.8 ** e:.4f} Accu :{0.5 + 0.04 * e:.4f}\n" for e in range(12))
    doc = run_log_check(write(tmp_path, "train.log", lines))
    [loss] = [s for s in doc.series if s.role == "loss"]
    assert loss.name.lower().startswith("tot") and loss.points == 12


def test_a_return_that_ends_far_below_where_it_started_is_a_collapse() -> None:
    # LunarLander under DQN: about -150 over its first episodes, about -950 over its last (noise 200)
    rng = np.random.default_rng(5)
    n = 200
    level = np.where(np.arange(n) < 120, -150.0, -950.0)
    [f] = [f for f in diagnose(_run(episode_return=level + rng.normal(0, 200, n))).findings
           if f.code == "reward_collapse"]
    assert f.severity == "warning" and "fell from" in f.summary and f.evidence.last < -700


def test_a_flat_or_rising_return_is_no_fall() -> None:
    rng = np.random.default_rng(6)
    n = 200
    for level in (np.full(n, -103.0), np.linspace(-200, 100, n)):
        assert not [f for f in diagnose(_run(episode_return=level + rng.normal(0, 30, n))).findings
                    if f.code == "reward_collapse"]
