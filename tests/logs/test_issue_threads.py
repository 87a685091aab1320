"""What the log check says of logs pasted into bug reports, each once wrong in general terms:

- a two-line excerpt with a gradient norm of 3.8e12 read healthy (too short for a baseline);
- eight epochs of a LoRA loss that went 1.4 -> 6.4 and stayed up read healthy (smoothed flat);
- eleven iterations of a 600,000-iteration run were "a loss that never learnt".

Numbers are the threads' own where they are quoted (mlx-examples #620, mmdetection #3446,
nanoGPT #110); the rest are written to the same shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from tests.logs.test_detectors_real_runs import alarms, found, run_of


def test_an_astronomical_gradient_norm_is_an_error_however_short_the_log() -> None:
    run = run_of(np.array([50, 100]), loss=np.array([59307.9, 21082.3]),
                 grad_norm=np.array([3801898445783.0, 40558643632.0]))
    [f] = found(diagnose(run), "exploding_gradient")
    assert f.severity == "error" and f.evidence.steps[0] == 50 and f.evidence.peak == 3801898445783.0
    # an ordinary norm in a short log says nothing
    run = run_of(np.array([50, 100]), loss=np.array([2.1, 2.0]), grad_norm=np.array([3.2, 2.9]))
    assert not found(diagnose(run), "exploding_gradient")


def test_a_short_loss_that_climbed_and_stayed_up_is_a_divergence() -> None:
    steps = np.arange(25, 201, 25)
    loss = np.array([1.593, 1.406, 3.316, 6.437, 5.478, 4.857, 4.874, 4.604])
    [f] = found(diagnose(run_of(steps, loss=loss)), "loss_divergence")
    assert f.severity in ("warning", "error") and "from its lowest" in f.summary


def test_a_flat_excerpt_of_a_long_run_is_not_a_run_that_never_learnt() -> None:
    steps = np.arange(1631, 1642)
    loss = np.array([4.0863, 3.7441, 3.9848, 3.87, 3.99, 3.77, 3.88, 3.68, 3.92, 3.68, 3.97])
    assert not alarms(diagnose(run_of(steps, loss=loss)))
    # the same numbers from the start of a run are a loss that never moved
    assert found(diagnose(run_of(np.arange(0, 11), loss=loss)), "loss_plateau")


def test_a_grad_norm_that_rises_early_and_then_holds_while_the_loss_falls_is_not_a_spike() -> None:
    # a DETR-style detector: 20 -> 114 in its first 150 steps, then 120-150 to the end, loss 45 -> 5.6
    rng = np.random.default_rng(4)
    steps = np.arange(1, 1501, 50)
    norm = np.concatenate([[19.9, 18.8, 60.7, 113.8], 135 + 8 * rng.standard_normal(len(steps) - 4)])
    loss = 5.6 + 40 * np.exp(-steps / 300)
    assert not found(diagnose(run_of(steps, loss=loss, grad_norm=norm)), "gradient_spike")
    # the same step up while the loss stops falling is an instability that did not settle
    flat = np.concatenate([loss[:4], np.full(len(steps) - 4, loss[3])])
    [f] = found(diagnose(run_of(steps, loss=flat, grad_norm=norm)), "gradient_spike")
    assert f.severity == "warning" and not f.evidence.recovered


@pytest.mark.parametrize("classes,level", [(2, 0.6931), (100, 4.600), (1000, 6.90776)])
def test_a_loss_pinned_at_ln_k_is_at_chance_with_no_accuracy_logged(classes: int, level: float) -> None:
    # TensorFlow, Lightning (a tqdm excerpt of epoch 0) and Caffe threads: the loss printed the same
    # to its last digit, at the cross-entropy of a uniform guess over k classes
    steps = np.arange(100, 1600, 100)
    [f] = found(diagnose(run_of(steps, loss=np.full(len(steps), level))), "loss_plateau")
    assert f.severity == "warning" and f.evidence.at_chance["num_classes"] == classes
    assert "at chance" in f.summary


def test_a_loss_near_ln_k_that_still_moves_is_not_called_chance() -> None:
    rng = np.random.default_rng(4)
    loss = 2.30 * np.exp(rng.normal(0, 0.004, 60))  # noise of a model that predicts something
    assert not any("at chance" in f.summary for f in diagnose(run_of(loss=loss)).findings)


def test_a_glaring_spike_in_a_short_pasted_log(tmp_path) -> None:  # noqa: ANN001
    # unsloth: a Trainer console of 9 steps, one grad norm 11140 among norms of about 8; the
    # user's notes ("<-- spike #2 (step 9)") are not part of the log
    from gradhealth.library import check_logs
    norms = [14.98, 9.78, 7.64, 92.10, 29.00, 5.21, 7.83, 7.79, 11140.00]
    lines = [f"{{'loss': 1.4, 'grad_norm': {g}, 'learning_rate': 2e-4, 'epoch': {0.1 * (i + 1):.1f}}}"
             + ("    <-- spike #2 (step 9): ~1500x" if g > 1000 else "") for i, g in enumerate(norms)]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    [f] = found(check_logs(path), "gradient_spike")
    assert f.evidence.value == 11140.0 and f.evidence.count == 1 and f.evidence.spike_steps == [0.9]
    # the same numbers without the outlier: only the note on 92.1 (the issue's own "spike #1")
    path.write_text("\n".join(lines[:-1]) + "\n")
    [f] = found(check_logs(path), "gradient_spike")
    assert f.severity == "info" and f.evidence.value == 92.10


def test_a_gradient_norm_that_jumps_by_orders_of_magnitude_in_one_step_has_blown_up() -> None:
    # mmdetection #11708's two lines: grad_norm 3.46 -> 3.1e7, the loss 1.5 -> 63 with it
    run = run_of(np.array([50, 100]), loss=np.array([1.5043, 63.1261]),
                 grad_norm=np.array([3.4572, 31101415.5974]))
    [f] = found(diagnose(run), "exploding_gradient")
    assert f.severity == "error" and f.evidence.steps == [50, 100]
    assert f.evidence.value == pytest.approx(31101415.5974 / 3.4572)
    assert "1.5 -> 63.1" in f.summary
    # the same jump with the loss steady is a warning; a 1000x rise of a tiny norm is nothing
    run = run_of(np.array([50, 100]), loss=np.array([1.50, 1.49]), grad_norm=np.array([3.4572, 31101415.5974]))
    assert [g.severity for g in found(diagnose(run), "exploding_gradient")] == ["warning"]
    run = run_of(np.array([50, 100]), loss=np.array([1.50, 1.49]), grad_norm=np.array([1e-4, 0.1]))
    assert not found(diagnose(run), "exploding_gradient")


def test_a_short_loss_up_by_orders_of_magnitude_that_stays_up_is_a_divergence() -> None:
    # tensorflow/models #8423 (one line per step): up 8e6x in 7 steps, not rising at every step
    loss = np.array([0.1442, 25237.8984, 75835.2812, 28575.1914, 134869.8906, 437442.4062, 212268.4531])
    [f] = found(diagnose(run_of(np.arange(408, 415), loss=loss)), "loss_divergence")
    assert f.severity == "error" and f.evidence.minimum == 0.1442 and f.evidence.final == 212268.4531
    # one last point up alone could be a spike the run comes back from: not yet a divergence
    loss = np.array([0.52, 0.50, 0.49, 0.47, 900.0])
    assert not found(diagnose(run_of(np.arange(5), loss=loss)), "loss_divergence")


def test_a_validation_loss_pinned_at_ln_k_names_chance_beside_a_noisy_training_loss() -> None:
    # a 4-way multiple-choice fine-tune: training loss 1.383-1.417 (too noisy to sit at ln 4 on its
    # own), every evaluation 1.3863 = ln 4: the model predicts the four answers alike
    rng = np.random.default_rng(1)
    steps = np.arange(50, 3150, 50)
    train = math.log(4) + np.abs(rng.normal(0, 0.012, len(steps)))
    evals = math.log(4) + rng.normal(0, 2e-5, len(steps))
    [f] = found(diagnose(run_of(steps, loss=train, eval_loss=evals)), "loss_plateau")
    assert f.severity == "warning" and f.evidence.at_chance["num_classes"] == 4
    assert "at chance for about 4 classes, as ln 4" in f.summary and "eval_loss sits at ln 4" in f.summary
    # the same training loss alone says it barely moved, naming no chance level
    [g] = found(diagnose(run_of(steps, loss=train)), "loss_plateau")
    assert g.evidence.at_chance is None


def test_a_short_loss_repeating_to_every_printed_digit_is_frozen() -> None:
    # keras-team/keras #2392: 5.7178, then 5.7257 three epochs running (Adagrad at lr 1.0)
    [f] = found(diagnose(run_of(np.arange(1, 5), loss=np.array([5.7178, 5.7257, 5.7257, 5.7257]))), "loss_plateau")
    assert f.severity == "warning" and f.evidence.steps == [2, 4] and f.remedies == []
    # a loss that fell and settled, one at 0, and one still moving in its last digit are not frozen
    for loss in ([2.30, 0.91, 0.40, 0.40, 0.40], [0.5, 0.0, 0.0, 0.0], [5.7178, 5.7257, 5.7256, 5.7257]):
        assert not found(diagnose(run_of(np.arange(len(loss)), loss=np.array(loss))), "loss_plateau")


def test_a_gradient_norm_zero_at_every_step_trained_nothing() -> None:
    # axolotl #2357: loss 0.0 and grad_norm 0.0 at all 11 logged steps (labels all masked)
    steps = np.arange(1, 12)
    [f] = found(diagnose(run_of(steps, loss=np.zeros(11), grad_norm=np.zeros(11))), "zero_gradient")
    assert f.severity == "error" and f.evidence.model_dump()["loss_zero"] is True
    assert "at every one of its 11 logged points (steps 1-11)" in f.summary and "measures nothing" in f.summary
    # with a loss that moves, still nothing was updated; with per-layer norms, dead_layer speaks
    [g] = found(diagnose(run_of(steps, loss=np.linspace(2.3, 2.2, 11), grad_norm=np.zeros(11))), "zero_gradient")
    assert g.severity == "error" and "measures nothing" not in g.summary
    run = run_of(steps, loss=np.zeros(11), grad_norm=np.zeros(11), grad_norm__fc1=np.zeros(11))
    assert not found(diagnose(run), "zero_gradient")


def test_a_nan_at_a_fractional_epoch_is_named_as_an_epoch() -> None:
    from gradhealth.logs.series import RunLog, make_series

    # xtuner #187: the position 240/735 into epoch 1, read as epoch 1.326531
    steps = np.array([1.0, 1.108844, 1.217687, 1.326531, 1.435374])
    run = RunLog(format="test", source="synthetic", series=[
        make_series("loss", steps, np.array([2.1, 1.9, 1.8, 1.8, 1.8]), step_unit="epoch"),
        make_series("grad_norm", steps, np.array([0.5, 0.6, 0.7, np.nan, np.nan]), step_unit="epoch")])
    [f] = found(diagnose(run), "nonfinite")
    assert "at epoch 1.327" in f.summary and f.evidence.steps[0] == pytest.approx(1.326531)


def test_an_excerpt_within_one_epoch_of_a_run_under_way_is_noted_as_too_little() -> None:
    from gradhealth.logs.series import RunLog, make_series

    # piper #827: a Lightning bar at epoch 476, 0-11 % of it, loss 16.8-16.9 ("not decreasing")
    steps = 476 + np.arange(17) / 158
    loss = 16.8 + 0.1 * (np.arange(17) % 2)
    run = RunLog(format="test", source="synthetic", series=[make_series("loss", steps, loss, step_unit="epoch")])
    [f] = found(diagnose(run), "insufficient_data")
    assert f.severity == "info" and "of an epoch" in f.summary
    # whole epochs from the start, or a step axis, say nothing of the kind
    whole = RunLog(format="test", source="synthetic",
                   series=[make_series("loss", np.arange(1, 18.0), 2.0 / np.arange(1, 18.0), step_unit="epoch")])
    assert not found(diagnose(whole), "insufficient_data")
    assert not found(diagnose(run_of(np.arange(17), loss=loss)), "insufficient_data")


def test_a_validation_loss_far_above_training_at_the_same_accuracy_is_no_overfitting() -> None:
    # tensorflow #39831: val_loss 8-20 against a training loss of 0.07, both accuracies 0.97
    steps = np.arange(11, 21)
    loss = np.linspace(0.085, 0.0699, 10)
    val = np.array([9.1, 12.3, 14.2, 8.0, 7.95, 7.97, 13.9, 20.3, 11.0, 8.87])
    acc, val_acc = np.full(10, 0.976), np.full(10, 0.970)
    [f] = found(diagnose(run_of(steps, loss=loss, val_loss=val, accuracy=acc, val_accuracy=val_acc)),
                "validation_divergence")
    assert f.severity == "warning" and "not overfitting" in f.explanation
    assert f.evidence.value == pytest.approx(float(np.median(val[5:])) / float(np.median(loss[5:])))
    # overfitting proper: the validation accuracy falls behind, and the usual finding is given
    rising = np.linspace(0.3, 0.9, 10)
    [g] = found(diagnose(run_of(steps, loss=loss, val_loss=rising, accuracy=acc, val_accuracy=np.full(10, 0.80))),
                "validation_divergence")
    assert "overfitting" in g.explanation and "not overfitting" not in g.explanation


def test_a_training_set_learnt_by_heart_is_overfitting_whatever_the_loss_ratio() -> None:
    # keras #1971: training accuracy 1.0 at loss 5e-4, validation 0.96 at 0.13: 250x, overfitting
    steps = np.arange(90, 101)
    run = run_of(steps, loss=np.full(11, 5e-4), val_loss=np.linspace(0.125, 0.133, 11),
                 accuracy=np.ones(11), val_accuracy=np.full(11, 0.96))
    assert not [f for f in diagnose(run).findings if "not overfitting" in f.explanation]
