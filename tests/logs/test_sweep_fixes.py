"""What a sweep of real public logs found misread, each pinned in general terms.

- several evaluation sets (the Trainer's ``eval_<set>_loss``) are validation losses, each judged;
- validation_divergence quotes the values the file holds, not its smoothing;
- a loss logged rounded (``round(loss, 4)``) is not "twice its level" one rounding step up;
- a validation accuracy that climbed in its first evaluations and then held is not "stuck";
- OLMo's ``train/CrossEntropyLoss`` and ``optim/total_grad_norm`` are the loss and the grad norm.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.series import RunLog, classify, make_series
from gradhealth.logs.stats import resolution
from tests.logs.test_detectors_real_runs import alarms, found, run_of


@pytest.mark.parametrize("name,role", [
    ("eval_loss", "val_loss"),
    ("eval_g0_loss", "val_loss"),  # eval_dataset={"g0": ..., ...}
    ("eval_squad-v2_loss", "val_loss"),
    ("val_loss/dataloader_idx_1", "val_loss"),  # Lightning, several val dataloaders
    ("eval_runtime", "metric"),
    ("eval_lossy", "metric"),
    ("train/CrossEntropyLoss", "loss"),
    ("lm_loss", "loss"),
    ("optim/total_grad_norm", "grad_norm"),
    ("optimizer/grad_norm", "grad_norm"),
    ("categorical_crossentropy", "metric"),  # a Keras metric beside the loss, not the loss
])
def test_names_real_tools_write(name: str, role: str) -> None:
    assert classify(name)[0] == role


def _overfit(n: int = 40, rise: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A training loss that keeps falling, and a validation loss with its minimum at n/4."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    train = 2.0 * np.exp(-t / 8) + 0.05
    val = 1.0 + rise * ((t - n / 4) / n) ** 2 * 4 + rng.normal(0, 0.01, n)
    return train, val


def test_every_evaluation_set_is_judged_and_the_worst_named_with_the_others() -> None:
    train, val = _overfit(rise=1.0)
    _, mild = _overfit(rise=0.3, seed=1)
    _, flat = _overfit(rise=0.0, seed=2)
    run = run_of(loss=train, eval_a_loss=flat, eval_b_loss=mild, eval_c_loss=val)
    [f] = found(diagnose(run), "validation_divergence")
    assert f.evidence.metric == "eval_c_loss" and f.evidence.also_diverged == ["eval_b_loss"]
    # the quoted values are the file's own: its lowest point near the best and its last
    j = int(np.argmin(val))
    assert f.evidence.best == pytest.approx(val[j]) and f.evidence.best_step == j
    assert f.evidence.last == pytest.approx(val[-1])
    assert f.evidence.raw_rise == pytest.approx((val[-1] - val[j]) / val[j])
    assert f"{val[j]:.3g} (step {j})" in f.summary and f"{(val[-1] - val[j]) / val[j]:+.0%}" in f.summary
    assert f"loss fell from {train[j]:.3g} to {train[-1]:.3g}" in f.summary  # the training loss then and now
    [stop, _] = f.remedies
    assert stop.id == "early_stopping" and f"from step {j} " in stop.change


def test_a_loss_rounded_to_four_decimals_has_no_spikes_one_rounding_step_up() -> None:
    # the tail of a fine-tuning run: 0.0001 and 0.0002 alternate, as the Trainer writes them
    rng = np.random.default_rng(3)
    true = np.concatenate([np.geomspace(0.5, 1.4e-4, 150), np.full(150, 1.4e-4)]) * np.exp(rng.normal(0, 0.05, 300))
    logged = np.round(true, 4)
    assert set(np.unique(logged[-100:])) <= {1e-4, 2e-4}  # the truth of the test's own data
    assert resolution(logged) == pytest.approx(1e-4)
    assert not found(diagnose(run_of(loss=logged)), "loss_spike"), alarms(diagnose(run_of(loss=logged)))
    # a real spike in the same rounded log is still one: 0.5 against a level of 0.0001
    spiked = logged.copy()
    spiked[220] = 0.5
    [f] = found(diagnose(run_of(loss=spiked)), "loss_spike")
    assert 220 in f.evidence.steps or f.evidence.steps[0] == 220


@pytest.mark.parametrize("values,step", [
    (np.array([0.1, 0.25, 1.5]), 0.01),
    (np.array([2.0, 7.0]), 1.0),
    (np.array([1 / 3, 0.5]), 0.0),  # full floats: no rounding to undo
])
def test_resolution_is_the_fewest_decimals_that_hold_every_value(values, step) -> None:
    assert resolution(values) == pytest.approx(step)


def test_a_validation_accuracy_that_climbed_first_then_held_is_not_stuck() -> None:
    # a Keras CSVLogger's shape: validation accuracy 0.40 after the first epoch, 0.65 from the
    # second on, while the training accuracy climbs to 0.98 (and the validation loss rises)
    n = 25
    rng = np.random.default_rng(4)
    val_acc = np.concatenate([[0.40], 0.65 + rng.normal(0, 0.01, n - 1)])
    acc = 1 - 0.6 * np.exp(-np.arange(n) / 4)
    loss = 1.3 * np.exp(-np.arange(n) / 5) + 0.05
    doc = diagnose(run_of(loss=loss, accuracy=acc, val_accuracy=val_acc))
    assert not [f for f in found(doc, "loss_plateau") if f.evidence.metric == "val_accuracy"]
    # the same run whose validation accuracy never climbed is stuck
    doc = diagnose(run_of(loss=loss, accuracy=acc, val_accuracy=val_acc - (val_acc - 0.40) * (np.arange(n) > 0)
                          + rng.normal(0, 0.01, n) * (np.arange(n) > 0)))
    assert [f for f in found(doc, "loss_plateau") if f.evidence.metric == "val_accuracy"]


def test_an_undefined_evaluation_metric_is_a_note_and_a_component_loss_is_not() -> None:
    # detectron2 writes COCO's AP for small objects as NaN on a set without small objects
    n = 30
    loss = 2.0 * np.exp(-np.arange(n) / 10) + 0.4
    ap_small = np.full(n, np.nan)
    doc = diagnose(run_of(total_loss=loss, bbox__APs=ap_small, bbox__AP=np.linspace(10, 70, n)))
    [f] = found(doc, "nonfinite")
    assert f.severity == "info" and doc.status == "healthy" and f.evidence.metrics == ["bbox/APs"]
    assert not f.remedies
    # a loss component that turns NaN is training breaking, whatever role its name got
    box = loss.copy()
    box[20:] = np.nan
    doc = diagnose(run_of(train__box_loss=box, train__cls_loss=loss, bbox__APs=ap_small))
    errors = [f for f in found(doc, "nonfinite") if f.severity == "error"]
    assert errors and errors[0].evidence.metric == "train/box_loss"


@pytest.mark.parametrize("name,role", [
    ("lr_decay_iters", "metric"), ("lr_warmup_steps", "metric"), ("lr_scheduler", "metric"),
    ("lr_pg0", "learning_rate"), ("x/lr0", "learning_rate"), ("lr-AdamW/pg1", "learning_rate"),
    ("val/loss_epoch", "val_loss"), ("dev_loss", "val_loss"), ("mean_loss", "loss"), ("train/avg_loss", "loss"),
])
def test_more_names_real_tools_write(name: str, role: str) -> None:
    assert classify(name)[0] == role


def test_a_run_stopped_with_ctrl_c_is_a_note(tmp_path) -> None:
    from gradhealth.library import check_logs

    lines = [f"step {i} loss {3.0 - 0.01 * i:.3f}" for i in range(40)]
    lines += ["Traceback (most recent call last):", '  File "train.py", line 9, in <module>',
              "    loss.backward()", "KeyboardInterrupt"]
    p = tmp_path / "train.log"
    p.write_text("\n".join(lines) + "\n")
    [f] = [f for f in check_logs(p).findings if f.code == "truncated_log"]
    assert f.severity == "info" and "stopped by hand" in f.summary
    p.write_text("\n".join(lines[:-1] + ["RuntimeError: CUDA out of memory"]) + "\n")
    [f] = [f for f in check_logs(p).findings if f.code == "truncated_log"]
    assert f.severity == "warning"


@pytest.mark.parametrize("last,severity", [
    ("torch.distributed.elastic.multiprocessing.api.SignalException: Process 54958 got signal: 2", "info"),
    # SIGTERM: killed from outside (a scheduler's time limit): the run did not end as it should
    ("torch.distributed.elastic.multiprocessing.api.SignalException: Process 54958 got signal: 15", "warning"),
])
def test_a_launcher_stopped_by_sigint_is_a_note_and_by_sigterm_a_warning(tmp_path, last, severity) -> None:
    from gradhealth.library import check_logs

    lines = [f"step {i} loss {3.0 - 0.01 * i:.3f}" for i in range(40)]
    lines += ["Traceback (most recent call last):", '  File "run.py", line 85, in handler', last]
    p = tmp_path / "train.log"
    p.write_text("\n".join(lines) + "\n")
    [f] = [f for f in check_logs(p).findings if f.code == "truncated_log"]
    assert f.severity == severity


def test_a_loss_scalers_skips_are_a_note_and_its_warm_up_rate_is_not_zero() -> None:
    from gradhealth.logs.remedies import learning_rate_at

    # fp16 DPO: the norm is NaN at 4 of 75 steps (the scaler finding its scale), the loss finite
    n = 75
    loss = 0.69 * np.exp(-np.arange(n) / 30) + 0.15
    grad = 5 + np.sin(np.arange(n))
    grad[[1, 2, 18, 74 - 10]] = np.nan
    lr = np.minimum(np.arange(n) / 10, 1.0) * 5e-6  # a warm-up from 0
    run = run_of(loss=loss, grad_norm=grad, learning_rate=lr)
    [f] = found(diagnose(run), "nonfinite")
    assert f.severity == "info" and f.evidence.counts == {"grad_norm": 4}
    assert learning_rate_at(run, 0.0) == pytest.approx(5e-7)  # the first rate the warm-up reaches
    # the same NaN held to the end is the weights gone: an error
    grad[60:] = np.nan
    [f] = found(diagnose(run_of(loss=loss, grad_norm=grad, learning_rate=lr)), "nonfinite")
    assert f.severity == "error"


def test_a_noisy_loss_that_clearly_falls_over_the_run_is_not_an_oscillation() -> None:
    # a DPO-like preference loss: large step-to-step noise around a fall from 0.69 to 0.2
    rng = np.random.default_rng(0)
    n = 120
    trend = 0.8 * np.exp(-np.arange(n) / 15) + 0.1  # falls, then level with large noise on top
    noise = rng.normal(0, 0.5, n)
    loss = trend * np.exp(noise)
    assert not found(diagnose(run_of(loss=loss)), "loss_oscillation")
    # swings of the same size that alternate (up, down, up: steps overshooting) are one
    swinging = trend * np.exp(np.abs(noise) * np.where(np.arange(n) % 2, 1.0, -1.0))
    assert found(diagnose(run_of(loss=swinging)), "loss_oscillation")


@pytest.mark.parametrize("n", [16, 40, 200])
def test_independent_batch_losses_scattered_around_a_level_are_not_an_oscillation(n: int) -> None:
    # a per-batch loss at its level: each batch's loss drawn independently (a detection set's hard
    # and easy batches); it changes direction on 2/3 of steps and strays 30 % from the median
    rng = np.random.default_rng(n)
    seen = [found(diagnose(run_of(loss=1.2 * np.exp(rng.normal(0, 0.55, n)))), "loss_oscillation") for _ in range(20)]
    assert sum(map(bool, seen)) <= 2
    # the same swings in alternation (over, under, over the level) are steps overshooting
    swing = np.abs(rng.normal(0, 0.55, n)) * np.where(np.arange(n) % 2, 1.0, -1.0)
    assert found(diagnose(run_of(loss=1.2 * np.exp(swing))), "loss_oscillation")


def test_a_running_mean_reset_each_epoch_is_not_an_oscillation() -> None:
    # a script that prints the epoch's running mean of the loss every few batches: it starts
    # each epoch at the first batches' value and falls through it (a sawtooth, luopeixiang/ner #24)
    within = 0.5 + 5.5 * np.exp(-np.arange(12) / 2.5)
    seen = []
    for seed in range(20):  # an epoch and most of the next, as pasted
        rng = np.random.default_rng(seed)
        loss = np.concatenate([within * (1 - 0.1 * e) * np.exp(rng.normal(0, 0.15, 12)) for e in range(2)])[:22]
        seen.append(bool(found(diagnose(run_of(loss=loss)), "loss_oscillation")))
    assert not any(seen)


def test_two_small_recovered_bumps_in_a_short_run_are_a_note() -> None:
    n = 126
    loss = 0.33 + 0.01 * np.sin(np.arange(n))
    loss[[40, 90]] = 0.496  # 1.5x, and back at once
    [f] = found(diagnose(run_of(loss=loss)), "loss_spike")
    assert f.severity == "info"
    loss[[40, 60, 90]] = 0.496  # a third: a pattern
    [f] = found(diagnose(run_of(loss=loss)), "loss_spike")
    assert f.severity == "warning"


def test_a_rising_eval_loss_while_the_same_evaluations_task_metric_improves_is_a_note() -> None:
    train, val = _overfit(rise=1.0)
    n = len(val)
    j = int(np.argmin(val))
    wer = np.linspace(30.0, 24.0, n)  # the word error rate keeps falling past the loss's minimum
    [f] = found(diagnose(run_of(loss=train, eval_loss=val, eval_wer=wer)), "validation_divergence")
    assert f.severity == "info" and not f.remedies
    assert f.evidence.task_metric == "eval_wer" and f.evidence.task_metric_then == pytest.approx(wer[j])
    assert f.evidence.task_metric_last == pytest.approx(wer[-1])
    # an error rate that got worse with the loss: overfitting, as before
    [f] = found(diagnose(run_of(loss=train, eval_loss=val, eval_wer=wer[::-1].copy())), "validation_divergence")
    assert f.severity == "warning"
    # another evaluation set's accuracy says nothing about this set's loss
    acc = np.linspace(0.5, 0.9, n)
    [f] = found(diagnose(run_of(loss=train, eval_a_loss=val, eval_b_accuracy=acc)), "validation_divergence")
    assert f.severity == "warning"
    # a gain inside 2% is no evidence either way
    flatish = np.full(n, 24.0)
    flatish[-1] = 23.9
    [f] = found(diagnose(run_of(loss=train, eval_loss=val, eval_wer=flatish)), "validation_divergence")
    assert f.severity == "warning"


def test_a_long_climb_the_run_partly_came_back_from_is_a_divergence_warning() -> None:
    # a fine-tune: falls to 0.135, climbs to ~0.3 while its warm-up peaks, then ends at 0.18
    n = 60
    rng = np.random.default_rng(11)
    t = np.arange(n)
    shape = np.select([t < 8, t < 15, t < 40], [0.6 - 0.058 * t, 0.135, 0.3], 0.18)
    loss = shape * np.exp(rng.normal(0, 0.02, n))
    sm_floor = float(np.min(loss[:15]))
    assert np.mean(loss > 1.5 * sm_floor) > 0.2 and loss[-1] / sm_floor < 1.5  # the test's own shape
    [f] = found(diagnose(run_of(loss=loss)), "loss_divergence")
    assert f.severity == "warning" and f.evidence.points_above >= 0.2 * n
    assert f.evidence.final == pytest.approx(float(np.mean(loss[-5:])), rel=0.1)
    # the same climb for a few points only is a spike's business, not this rule's
    brief = np.where((t >= 20) & (t < 24), 0.3, np.where(t < 8, 0.6 - 0.058 * t, 0.135)) * np.exp(
        rng.normal(0, 0.02, n))
    assert not found(diagnose(run_of(loss=brief)), "loss_divergence")


def _fine_tune(train: list[float], evals: np.ndarray) -> RunLog:
    """The Trainer's shape: the training loss every 500 steps, an evaluation every 132."""
    run = RunLog(format="test", source="synthetic")
    run.series.append(make_series("loss", 500 * np.arange(1, len(train) + 1), np.array(train)))
    run.series.append(make_series("eval_loss", 132 * np.arange(1, len(evals) + 1), evals))
    return run


def test_a_fine_tune_that_never_got_back_to_its_first_evaluation_diverged() -> None:
    # a Whisper fine-tune at 3e-3: the first evaluation is the best the run sees, and the training
    # loss, logged 5 times, ends above where it began
    rng = np.random.default_rng(0)
    evals = np.concatenate([[2.5], 3.2 + 0.9 * np.exp(-np.arange(19) / 8) * rng.uniform(0.6, 1.4, 19)])
    [f] = found(diagnose(_fine_tune([1.24, 2.03, 2.16, 1.98, 1.79], evals)), "loss_divergence")
    assert f.severity == "warning" and f.evidence.metric == "eval_loss"
    assert f.evidence.value == pytest.approx(float(evals[1:].min()) / 2.5)
    assert f.remedies[0].id == "lower_learning_rate"
    # a training loss that falls beside it is overfitting, not this
    assert not found(diagnose(_fine_tune([1.24, 0.9, 0.7, 0.5, 0.4], evals)), "loss_divergence")
    # nor is a run whose evaluations came back below the first one
    back = evals.copy()
    back[-3:] = 2.4
    assert not found(diagnose(_fine_tune([1.24, 2.03, 2.16, 1.98, 1.79], back)), "loss_divergence")


@pytest.mark.parametrize("vocab", [32_000, 50_257, 128_256])
def test_a_language_model_pinned_at_ln_of_its_vocabulary_predicts_every_token_alike(vocab: int) -> None:
    # an excerpt from step 38 on (litgpt #689: 10.8259 = ln 50304 for 23 steps)
    level = float(np.log(vocab))
    loss = np.full(24, round(level, 4))
    run = RunLog(format="test", source="synthetic")
    run.series.append(make_series("loss", 38 + np.arange(24), loss))
    [f] = found(diagnose(run), "loss_plateau")
    assert f.severity == "warning" and f.evidence.at_chance["num_classes"] == vocab


def test_a_long_noisy_flat_loss_is_not_a_divergence_from_its_luckiest_stretch() -> None:
    # DL4J prints each 100th minibatch's score: 800 points scattered 20 % around a level. The
    # lowest of ~790 nine-point medians sits far under that level, the last one at it.
    seen = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        loss = 0.85 * np.exp(rng.normal(0, 0.22, 800))
        seen.append(bool(found(diagnose(run_of(loss=loss)), "loss_divergence")))
    assert not any(seen)
    # a loss that doubles over the last fifth of such a log still diverged
    rng = np.random.default_rng(0)
    loss = 0.85 * np.exp(rng.normal(0, 0.22, 800)) * np.where(np.arange(800) < 640, 1.0, 2.2)
    assert [f.severity for f in found(diagnose(run_of(loss=loss)), "loss_divergence")] == ["error"]


def test_a_short_log_whose_loss_blows_up_by_orders_of_magnitude_diverged() -> None:
    # an mmdet excerpt: 4 logged steps, 0.85 -> 2.4 -> 6.3e4 -> 1.1e13
    run = run_of(loss=np.array([0.85, 2.44, 6.3e4, 1.1e13]))
    [f] = found(diagnose(run), "loss_divergence")
    assert f.severity == "error" and f.evidence.value == pytest.approx(1.1e13 / 0.85)
    # three short steps up that stay within an order of magnitude are too few points to judge
    assert not found(diagnose(run_of(loss=np.array([0.85, 1.2, 2.4, 5.0]))), "loss_divergence")
    # nor is a blow-up the log came back from
    assert not found(diagnose(run_of(loss=np.array([0.85, 6.3e4, 1.1e13, 0.9]))), "loss_divergence")


def test_findings_on_an_epoch_axis_say_epoch_not_step(tmp_path) -> None:
    # a Keras CSVLogger file: its x axis is the epoch, and a summary that says "step 12" points a
    # reader at the wrong place (a step is one batch)
    from gradhealth.library import check_logs

    n = 30
    loss = np.concatenate([2.0 * np.exp(-np.arange(12) / 4) + 0.3, 0.45 * 1.6 ** np.arange(1, n - 11)])
    val_acc = 0.1 + 0.005 * np.sin(np.arange(n))  # never leaves chance on 10 classes
    acc = np.linspace(0.2, 0.9, n)
    rows = [f"{e},{a:.4f},{lo:.6g},{va:.4f}" for e, (a, lo, va) in enumerate(zip(acc, loss, val_acc, strict=True))]
    path = tmp_path / "training.log"
    path.write_text("epoch,accuracy,loss,val_accuracy\n" + "\n".join(rows) + "\n")
    doc = check_logs(path)
    texts = [f.summary for f in doc.findings] + [r.change for f in doc.findings for r in f.remedies]
    assert any(f.code == "loss_divergence" for f in doc.findings)
    assert any("epoch" in t for t in texts)
    assert not [t for t in texts if "step " in t or "steps " in t], texts
    # with the rate logged (Keras' ReduceLROnPlateau column), the remedy names it at its epoch
    lr_rows = [f"{r},0.001" for r in rows]
    path.write_text("epoch,accuracy,loss,val_accuracy,lr\n" + "\n".join(lr_rows) + "\n")
    doc = check_logs(path)
    changes = [r.change for f in doc.findings for r in f.remedies if r.id == "lower_learning_rate"]
    assert changes and all("(in effect at epoch " in c for c in changes), changes


def test_a_norm_blown_up_from_the_first_step_is_an_error_from_that_step() -> None:
    # grokfast #9's shape: 3.8e12 at the first logged step, growing ~11x to 1.4e14. Against its own
    # (already blown-up) baseline that is only a warning's growth; against any healthy network's
    # norm (0.1-100) it is far past the absolute level, which needs no baseline
    n = 10
    norms = 3.8e12 * 11.3 ** (np.arange(n) / (n - 1))
    loss = 11.7 - 0.05 * np.arange(n)
    doc = diagnose(run_of(loss=loss, grad_norm=norms))
    [f] = found(doc, "exploding_gradient")
    assert f.severity == "error" and f.evidence.steps[0] == 0
    # no clipping threshold taken from norms of 1e12 and more: a default, said to be one
    [clip] = [r for r in f.remedies if r.id == "gradient_clipping"]
    assert clip.params["max_norm"] == 1.0 and "default" in clip.params["basis"]
    # a healthy stretch before the blow-up still gives the run's own threshold
    calm = np.concatenate([np.full(20, 2.0) + 0.1 * np.sin(np.arange(20)), norms])
    doc = diagnose(run_of(loss=np.linspace(3, 2, 30), grad_norm=calm))
    [clip] = [r for f in found(doc, "exploding_gradient") for r in f.remedies if r.id == "gradient_clipping"]
    assert 1.5 < clip.params["max_norm"] < 2.5


def test_a_loss_pinned_at_exactly_zero_trains_nothing() -> None:
    # CUT #2: 1.67 at the first logged step, then 'loss': 0.0 at every one after (labels all masked)
    steps = np.arange(1, 13) * 10.0
    loss = np.concatenate([[1.6736], np.zeros(11)])
    [f] = found(diagnose(run_of(steps, loss=loss, learning_rate=np.linspace(4e-6, 4.8e-5, 12))), "zero_gradient")
    assert f.severity == "error" and f.evidence.steps == [20, 120] and "1.674" in f.summary
    # detectron2 #3023: total_loss 0 at each of 5 pasted iterations: too few for an error, still said
    [f] = found(diagnose(run_of(np.arange(5) * 20.0 + 1959, total_loss=np.zeros(5))), "zero_gradient")
    assert f.severity == "warning"
    # not: a loss learnt down to 0 (a memorised set), two zero points, a GRPO loss of 0 while its
    # gradient norm moves (its log has the rewards beside it), an RL run with rewards, a loss 0 at the end only
    glide = np.concatenate([np.geomspace(2.0, 1e-4, 20), np.zeros(10)])
    assert not found(diagnose(run_of(loss=glide)), "zero_gradient")
    assert not found(diagnose(run_of(loss=np.array([1.7, 0.0, 0.0]))), "zero_gradient")
    grpo = run_of(loss=np.zeros(12), grad_norm=np.linspace(0.1, 0.3, 12), reward=np.linspace(0, 1, 12))
    assert not found(diagnose(grpo), "zero_gradient")
    # with no reward beside it, a gradient norm above 0 contradicts the loss of 0 (logsweep88 P2): a warning
    [bare] = found(diagnose(run_of(loss=np.zeros(12), grad_norm=np.linspace(0.1, 0.3, 12))), "zero_gradient")
    assert bare.severity == "warning" and "grad_norm" in bare.summary
    assert not found(diagnose(run_of(loss=np.zeros(12), reward=np.linspace(0, 1, 12))), "zero_gradient")
    assert not found(diagnose(run_of(loss=np.concatenate([np.linspace(3, 1, 20), np.zeros(3)]))), "zero_gradient")
    # Hugging Face's NaN filter logs a NaN step's loss as 0.0 beside a NaN grad_norm: nonfinite's
    # error, and the printed 0 said beside it as a warning, never the error of a masked loss
    # (logsweep65 u05, u06)
    nan_run = run_of(loss=np.zeros(12), grad_norm=np.full(12, np.nan))
    [zero] = found(diagnose(nan_run), "zero_gradient")
    assert zero.severity == "warning" and "NaN" in zero.summary and found(diagnose(nan_run), "nonfinite")


def test_a_gradient_norm_of_exactly_zero_is_said_on_a_short_excerpt() -> None:
    # MIMIGenRec #3: grad_norm 0.0 and learning_rate 0.0 at each of 4 pasted steps
    run = run_of(np.arange(4.0), loss=np.array([12.10, 12.06, 12.00, 12.07]), grad_norm=np.zeros(4),
                 learning_rate=np.zeros(4))
    [f] = found(diagnose(run), "zero_gradient")
    assert f.severity == "warning" and "learning rate is exactly 0" in f.summary
    # two points are not enough to say "throughout"; a norm that moves is not zero
    assert not found(diagnose(run_of(loss=np.array([2.0, 1.9]), grad_norm=np.zeros(2))), "zero_gradient")
    assert not found(diagnose(run_of(loss=np.array([2.0, 1.9, 1.8]), grad_norm=np.array([0.0, 0.5, 0.4]))),
                     "zero_gradient")


def test_a_short_fine_tune_whose_validation_loss_turns_up_gets_a_note() -> None:
    # a BERT fine-tune's three epochs (Keras CSVLogger, ls13): val 0.318, 0.320, 0.443 while the
    # training loss went 0.386 -> 0.113; too few points for a warning, enough for a note
    epochs = np.arange(3.0)
    run = run_of(epochs, loss=np.array([0.386, 0.2266, 0.1134]), val_loss=np.array([0.3179, 0.3203, 0.4432]))
    for s in run.series:
        s.step_unit = "epoch"
    [f] = found(diagnose(run), "validation_divergence")
    assert f.severity == "info" and f.evidence.steps == [0, 2] and "epoch 0" in f.summary
    # not: a validation loss that dips back at the end, a rise within noise, a training loss
    # that did not fall, a long run (the full rule's)
    assert not found(diagnose(run_of(epochs, loss=np.array([0.39, 0.23, 0.11]),
                                     val_loss=np.array([0.32, 0.45, 0.40]))), "validation_divergence")
    assert not found(diagnose(run_of(epochs, loss=np.array([0.39, 0.23, 0.11]),
                                     val_loss=np.array([0.32, 0.33, 0.35]))), "validation_divergence")
    assert not found(diagnose(run_of(epochs, loss=np.array([0.39, 0.38, 0.37]),
                                     val_loss=np.array([0.32, 0.33, 0.45]))), "validation_divergence")


def test_one_loss_far_above_a_short_excerpt_is_a_note() -> None:
    # LLaVA #918: six pasted steps, 0.66 0.80 4.27 0.77 0.56 0.82: too few for the rolling rule
    run = run_of(np.arange(6.0), loss=np.array([0.6623, 0.8022, 4.2653, 0.77, 0.556, 0.8223]))
    [f] = found(diagnose(run), "loss_spike")
    assert f.severity == "info" and f.evidence.steps == [2] and "4.27" in f.summary
    # not: a first point far above the rest (the start of training), a smaller bump, a climb
    for loss in ([4.2, 0.8, 0.7, 0.75, 0.6, 0.7], [0.66, 0.8, 2.2, 0.77, 0.56, 0.82], [0.5, 0.6, 2.6, 3.0, 3.2, 3.4]):
        assert not found(diagnose(run_of(np.arange(6.0), loss=np.array(loss))), "loss_spike")


def test_deepspeeds_loss_scale_halved_at_every_report_is_overflow(tmp_path) -> None:
    # Chinese-LLaMA-Alpaca #534: "Attempted loss scale: 64, reducing to 32", then 16, 8, 4, 2,
    # each a skipped step; DeepSpeed exits once the scale is at its floor of 1
    from gradhealth.library import check_logs
    from gradhealth.logs.readers.text import pairs

    line = ("[2023-06-07 22:16:00,018] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! Rank 0 "
            "Skipping step. Attempted loss scale: {}, reducing to {}")
    assert pairs(line.format(64, 32)) == [("loss_scale", "32")]
    halving = [line.format(2 ** k, 2 ** (k - 1)) for k in range(6, 1, -1)]  # ... reducing to 2
    path = tmp_path / "ds.log"
    path.write_text("{'loss': 2.0491, 'learning_rate': 0.000196, 'epoch': 0.28}\n" + "\n".join(halving) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "warning" and f.evidence.value == 2 and "halved at each of the last 4" in f.summary
    path.write_text("\n".join([*halving, line.format(2, 1)]) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.value == 1
    # a scaler finding its scale at the start (65536 -> 4096) and holding it is no finding
    settling = [line.format(2 ** k, 2 ** (k - 1)) for k in range(16, 12, -1)]
    path.write_text("\n".join(settling) + "\n{'loss': 2.0, 'epoch': 0.1}\n")
    assert not [f for f in check_logs(path).findings if f.code == "nonfinite"]
    # Megatron prints "loss scale: 1" at every iteration of a bf16 run, which needs no scaler
    megatron = [f" iteration {i}/  250000 | learning rate: 9.150E-06 | lm loss: {2.5 - 0.01 * i:.6E} | loss scale: 1.0 |"
                for i in range(120, 130)]
    path.write_text("\n".join(megatron) + "\n")
    assert not [f for f in check_logs(path).findings if f.code == "nonfinite"]


@pytest.mark.parametrize("value", ["87.3365", "16.1181"])
def test_a_loss_pinned_at_a_probability_clamp_is_an_overflow(tmp_path, value: str) -> None:
    # caffe dropout #3: "Iteration 55900, loss = 87.3365" on every line: -ln(FLT_MIN), the value
    # SoftmaxWithLoss gives a probability that underflowed; Keras' epsilon gives -ln(1e-7)
    from gradhealth.library import check_logs

    assert float(value) == pytest.approx(-np.log(np.finfo(np.float32).tiny) if value.startswith("87")
                                         else -np.log(1e-7), abs=5e-5)
    lines = [f"I0616 00:2{i}:30.437563 10711 solver.cpp:228] Iteration {55700 + 100 * i}, loss = "
             f"{'2.3011' if i == 0 else value}" for i in range(3)]
    path = tmp_path / "caffe.log"
    path.write_text("\n".join(lines) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.steps == [55800, 55900] and f.evidence.value == float(value)
    # a loss that passes near it on its way down is not pinned there
    path.write_text("\n".join(f"Iteration {100 * i}, loss = {v}" for i, v in enumerate((90.1, 87.3365, 80.2, 40.0)))
                    + "\n")
    assert not [f for f in check_logs(path).findings if f.code == "nonfinite"]


def test_a_word_before_loss_names_which_loss(tmp_path) -> None:
    # PyTorch-YOLOv3 forks print "total loss: 4119.9" then "x loss", ..., "cls loss": all of them
    # read as one "loss", the last (cls) overwriting the total
    from gradhealth.logs.load import read_log
    from gradhealth.logs.readers.text import pairs

    assert pairs("total loss: 4119.8759765625") == [("total_loss", "4119.8759765625")]
    assert pairs("cls loss: 0.561546266078949") == [("cls_loss", "0.561546266078949")]
    assert pairs("[1, 2000] running loss: 2.2") == [("running_loss", "2.2")]
    assert pairs("the loss: 0.3") == [("loss", "0.3")]  # a word that names nothing is left out
    epochs = "".join(f"************epoch: {e} ***************\ntotal loss: {4000 - 100 * e}\nx loss: 0.39\n"
                     f"cls loss: 0.56\n" for e in range(10))
    path = tmp_path / "yolo.log"
    path.write_text(epochs)
    run = read_log(path)
    assert run.first("loss").name == "total_loss" and run.first("loss").values[-1] == 3100


def test_opennmts_capped_perplexity_is_a_blown_up_loss_at_its_position(tmp_path) -> None:
    # OpenNMT-py #253: it prints exp(min(loss, 100)); ppl 2.69e43 = e^100 on every line
    from gradhealth.library import check_logs

    lines = [f"Epoch  1,   {i * 50:>4}/21692; acc:   0.41; ppl: 26881171418161356094253400435962903554686976.00; "
             f"3324 src tok/s; 4592 tgt tok/s;     {22 + i} s elapsed" for i in range(1, 6)]
    path = tmp_path / "onmt.log"
    path.write_text("\n".join(lines) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "error" and f.evidence.value == 100.0 and "epoch 1, iteration 50/21692" in f.summary
    # a perplexity below its cap is a loss like any other
    path.write_text("\n".join(line.replace("26881171418161356094253400435962903554686976.00", f"{30 - i}.5")
                              for i, line in enumerate(lines)) + "\n")
    assert not [f for f in check_logs(path).findings if f.code == "nonfinite"]


def test_nan_metrics_with_no_loss_logged_are_a_warning_not_a_finite_run(tmp_path) -> None:
    # darknet #3984: "Region 82 Avg IOU: nan, Class: nan, Obj: nan, No Obj: nan, ... count: 2" and no
    # loss line: the note said "while the losses and gradients stay finite"
    from gradhealth.library import check_logs

    line = "Region 82 Avg IOU: nan, Class: nan, Obj: nan, No Obj: nan, .5R: 0.000000, .75R: 0.000000,  count: 2"
    path = tmp_path / "darknet.log"
    path.write_text("\n".join([line] * 6) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "warning" and "no loss or gradient norm" in f.summary
    path.write_text("\n".join(f"{line}, loss: {2.0 - 0.1 * i}" for i in range(6)) + "\n")
    [f] = [f for f in check_logs(path).findings if f.code == "nonfinite"]
    assert f.severity == "info" and "stay finite" in f.summary


def test_a_short_validation_loss_rising_at_every_evaluation_is_overfitting() -> None:
    # keras #3056: 7 epochs, val_loss 0.6770, 0.6765 then up at each of the 5 after; loss falling
    loss = np.array([0.6807, 0.6693, 0.6678, 0.6485, 0.6175, 0.5860, 0.5521])
    val = np.array([0.6770, 0.6765, 0.6789, 0.6913, 0.7101, 0.7268, 0.7586])
    [f] = found(diagnose(run_of(loss=loss, val_loss=val)), "validation_divergence")
    assert f.severity == "warning" and f.evidence.best == 0.6765 and f.evidence.value == pytest.approx(0.7586 / 0.6765 - 1)
    # one noisy evaluation in the climb: no trend to call
    bumpy = val.copy()
    bumpy[4] = 0.6801
    assert not [a for a in alarms(diagnose(run_of(loss=loss, val_loss=bumpy))) if a[0] == "validation_divergence"]


def test_one_gradient_norm_far_above_a_short_excerpt_is_a_note() -> None:
    # unsloth #5207: 92.1 among norms of 5-15; the step after it is still raised (29.0)
    norms = np.array([14.98, 9.78, 7.64, 92.10, 29.00, 5.21, 7.83, 7.79])
    [f] = found(diagnose(run_of(loss=np.linspace(1.5, 1.3, 8), grad_norm=norms)), "gradient_spike")
    assert f.severity == "info" and f.evidence.value == 92.10 and f.evidence.spike_steps == [3]


def test_an_agents_rewards_alone_are_a_note() -> None:
    # cleanrl: "global_step=3442, episode_reward=15.5" and nothing else
    run = RunLog(format="text", source="cleanrl.log",
                 series=[make_series("episode_reward", list(range(0, 700, 100)), [15.5, 23.9, 19.0, 30.2, 41.0, 38.0, 50.1])])
    [f] = found(diagnose(run), "insufficient_data")
    assert f.severity == "info" and "episode_reward" in f.summary


def test_a_loss_identical_from_the_first_step_to_hundreds_later_has_not_moved() -> None:
    # litgpt #125: "iter 1: loss 11.0666" ... "iter 400: loss 11.0666"
    [f] = found(diagnose(run_of(steps=np.array([1, 400]), loss=np.array([11.0666, 11.0666]))), "loss_plateau")
    assert f.severity == "warning" and f.evidence.steps == [1, 400]
    # a loss that moved, or two points close together, or an excerpt from mid-run: nothing to say
    assert not found(diagnose(run_of(steps=np.array([1, 400]), loss=np.array([11.0666, 9.1]))), "loss_plateau")
    assert not found(diagnose(run_of(steps=np.array([1, 20]), loss=np.array([11.0666, 11.0666]))), "loss_plateau")
    assert not found(diagnose(run_of(steps=np.array([5000, 5400]), loss=np.array([2.5, 2.5]))), "loss_plateau")


def test_a_loss_barely_moving_through_a_warm_up_is_a_note() -> None:
    # detectron2 (ls16): total_loss 4.56 -> 4.36 over iterations 439-839 while the rate climbed
    # linearly 2e-5 -> 8.4e-4: the run ended inside its 1000-iteration warm-up
    steps = np.arange(19, 840, 20)
    loss = 4.5 + 0.05 * np.sin(steps)
    lr = 1e-6 * steps
    [f] = found(diagnose(run_of(steps=steps, total_loss=loss, lr=lr)), "loss_plateau")
    assert f.severity == "info" and "warm-up" in f.summary and f.evidence.warmup == [pytest.approx(1.9e-5),
                                                                                     pytest.approx(8.39e-4)]
    # the same loss at a constant rate has not moved: the warning
    [f] = found(diagnose(run_of(steps=steps, total_loss=loss, lr=np.full(len(steps), 8e-4))), "loss_plateau")
    assert f.severity == "warning"


def test_spikes_on_consecutive_points_are_one_event() -> None:
    # detectron2 logs 20-iteration medians: one bad stretch lifts several points in a row. Two
    # recovered stretches (5 + 6 points) in 250 points are two events, not eleven spikes.
    rng = np.random.default_rng(0)
    loss = 1.4 * np.exp(-np.arange(250) / 400) * (1 + 0.03 * rng.standard_normal(250))
    loss[100:105] = [3.0, 5.5, 7.17, 4.0, 2.5]
    loss[180:186] = [2.4, 4.1, 5.06, 3.9, 3.0, 2.2]
    [f] = found(diagnose(run_of(loss=loss)), "loss_spike")
    assert f.evidence.episodes == 2 and f.evidence.count >= 8 and f.severity == "info"


def test_a_validation_loss_alone_is_a_note_not_a_missing_loss() -> None:
    # a Lightning metrics.csv from a module that logs only in validation_step (ls16: val_loss
    # 2.271 -> 1.952 over 10 epochs): not the "no loss to judge" warning
    [f] = found(diagnose(run_of(val_loss=np.linspace(2.271, 1.952, 10))), "insufficient_data")
    assert f.severity == "info" and "val_loss" in f.summary
    [f] = found(diagnose(run_of(lr=np.full(10, 1e-3), throughput=np.linspace(200, 210, 10))), "insufficient_data")
    assert f.severity == "warning"  # nothing that is a loss at all
    # an accuracy alone (MXNet's default Speedometer, ls18/ls20): a note that only NaN/Inf is checked
    [f] = found(diagnose(run_of(train_accuracy=np.linspace(0.5, 0.9, 10), val_acc=np.linspace(0.2, 0.6, 10))),
                "insufficient_data")
    assert f.severity == "info" and "val_acc" in f.summary


@pytest.mark.parametrize("name", ["metrics/accuracy_top1", "val_acc", "eval/accuracy"])
def test_an_accuracy_of_exactly_zero_throughout_while_the_loss_falls_is_a_warning(name: str) -> None:
    # a YOLO classifier (ls16): accuracy_top1 and top5 exactly 0 for 22 epochs, train/loss 2.52 -> 0.05
    loss = 2.52 * np.exp(-np.arange(22) / 4)
    [f] = found(diagnose(run_of(**{"train__loss": loss, name.replace("/", "__"): np.zeros(22)})), "loss_plateau")
    assert f.severity == "warning" and f.evidence.metric == name and f.evidence.value == 0.0
    # an accuracy that was 0 at first and then moved, or a loss that did not fall: not this
    late = np.zeros(22)
    late[-3:] = [0.1, 0.3, 0.5]
    assert not [f for f in diagnose(run_of(train__loss=loss, val_acc=late)).findings
                if f.code == "loss_plateau" and f.evidence.value == 0.0]


def test_a_task_metric_improving_by_its_own_noise_does_not_excuse_a_rising_validation_loss() -> None:
    # ls16 (a Lightning ImageBind fine-tune): val_loss 3.49 -> 4.2 while val_acc at chance went
    # 0.048 -> 0.057 on a set of 228 samples (two samples more right): not a calibration note
    n = 23
    train = np.linspace(2.36, 1.56, n)
    val = np.concatenate([np.linspace(4.0, 3.49, 8), np.linspace(3.55, 4.2, n - 8)])
    acc = np.round(np.array([5, 6, 6, 10, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 13, 13, 14, 15, 11, 12, 12, 13])
                   / 228, 4)
    [f] = found(diagnose(run_of(loss=train, val_loss=val, val_accuracy=acc)), "validation_divergence")
    assert f.severity == "warning"
    # a gain of many samples is the calibration case: a note
    clear = np.round(np.concatenate([np.full(8, 11), np.linspace(11, 60, n - 8)]) / 228, 4)
    [f] = found(diagnose(run_of(loss=train, val_loss=val, val_accuracy=clear)), "validation_divergence")
    assert f.severity == "info"


def _lm_loss(jump: float, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """A word-level LM's per-200-batch loss in nats: 9 -> 5.2 over three epochs (14 reports each),
    then, in the fourth, a jump of ``jump`` nats that stays for six more epochs."""
    rng = np.random.default_rng(seed)
    fall = 5.2 + 3.8 * np.exp(-np.arange(42) / 6)
    after = np.full(98, 5.2 + jump)
    return np.concatenate([fall, after]) + rng.normal(0, noise, 140)


def test_a_loss_that_gives_back_most_of_its_fall_for_good_diverged_though_by_a_small_factor() -> None:
    # nlpia2's GRU at lr 20 (ls17): 5.2 nats -> 6.5 and never back, 1.25x: a perplexity 3.6x
    [f] = found(diagnose(run_of(loss=_lm_loss(1.3))), "loss_divergence")
    assert f.severity == "warning" and f.evidence.value == pytest.approx(6.5 / 5.2, rel=0.03)
    assert f.evidence.model_dump()["share_undone"] > 1 / 3
    # a small step up (under 1.15x) is no divergence, nor is the same rise from a loss that never fell
    # much beyond its noise (a per-batch fine-tune's medians wandering: ls16's TurnGPT)
    assert not found(diagnose(run_of(loss=_lm_loss(0.5))), "loss_divergence")
    rng = np.random.default_rng(1)
    wander = np.concatenate([np.full(30, 2.3), np.full(20, 2.0), np.full(20, 2.6)]) + rng.normal(0, 0.35, 70)
    assert not found(diagnose(run_of(loss=wander)), "loss_divergence")


def test_an_agents_loss_spikes_with_its_returns_and_are_a_note() -> None:
    # SB3 PPO (ls18): one-step episodes paying +-100; the value loss jumps whenever a rollout holds a +100
    rng = np.random.default_rng(0)
    loss = 4000 + rng.normal(0, 200, 100)
    loss[[20, 21, 45, 70, 71, 90]] *= 4
    reward = np.linspace(-80, 27, 100)
    spikes = found(diagnose(run_of(train__loss=loss, **{"rollout__ep_rew_mean": reward})), "loss_spike")
    assert spikes and all(f.severity == "info" for f in spikes)
    # the same loss in supervised training: a warning
    assert [f.severity for f in found(diagnose(run_of(train__loss=loss)), "loss_spike")] == ["warning"]


def test_a_loss_repeated_exactly_is_frozen_only_in_a_log_from_near_the_runs_start() -> None:
    # an excerpt of a settled run's last epochs (ls17, a Keras paste of epochs 95-100 at 0.0266) has
    # not shown where the run began; the same repeats from epoch 1 on are a loss that never moved
    settled = run_of(steps=np.arange(95, 101), loss=np.full(6, 0.0266))
    assert not [f for f in diagnose(settled).findings if f.code == "loss_plateau" and f.severity == "warning"]
    stuck = run_of(steps=np.arange(1, 7), loss=np.array([0.7, 0.6931, 0.6931, 0.6931, 0.6931, 0.6931]))
    assert [f.severity for f in found(diagnose(stuck), "loss_plateau")] == ["warning"]


def test_a_training_set_learnt_and_a_validation_set_not_from_the_start_is_overfitting() -> None:
    # LipNet (ls17): acc 0.88 -> 0.996 while val_acc stays 0.24-0.36 and val_loss 5-8.6 against
    # 0.4 -> 0.012: never low enough to rise from, but the model learnt only its training set
    acc = np.array([0.880, 0.990, 0.994, 0.995, 0.9954, 0.9959])
    loss = np.array([0.4086, 0.0300, 0.0168, 0.0153, 0.0151, 0.0122])
    val_acc = np.array([0.255, 0.244, 0.360, 0.345, 0.335, 0.355])
    val_loss = np.array([6.84, 8.60, 5.13, 6.72, 5.99, 6.26])
    [f] = found(diagnose(run_of(loss=loss, acc=acc, val_loss=val_loss, val_acc=val_acc)), "validation_divergence")
    assert f.severity == "warning" and f.evidence.value > 100
    # the same losses at matching accuracies are evaluation's doing, not this; nor is a small gap
    assert not [f for f in diagnose(run_of(loss=loss, acc=acc, val_loss=val_loss, val_acc=acc - 0.02)).findings
                if f.code == "validation_divergence" and "learnt" in f.explanation]
    assert not found(diagnose(run_of(loss=loss, acc=acc, val_loss=loss * 3, val_acc=val_acc)), "validation_divergence")


def test_a_validation_loss_logged_alone_is_judged_for_what_it_can_show() -> None:
    # ls19 (Lightning modules logging in validation_step only): 6.589 first, then 46 evaluations all
    # higher; and 50 evaluations within 0.3% of 6.46
    rng = np.random.default_rng(0)
    worse = np.concatenate([[6.589], 6.70 + 0.04 * rng.random(46)])
    [f] = found(diagnose(run_of(steps=np.arange(47) * 310 + 310, val_loss=worse)), "loss_divergence")
    assert f.severity == "warning" and f.evidence.model_dump()["evaluations"] == 47
    flat = 6.464 - 0.0003 * np.arange(50) + 0.002 * rng.random(50)
    [f] = found(diagnose(run_of(val_loss=flat)), "loss_plateau")
    assert f.severity == "warning"
    # a validation loss that improves is neither; nor is a short one
    assert not alarms(diagnose(run_of(val_loss=np.linspace(6.5, 4.0, 30))))
    assert not alarms(diagnose(run_of(val_loss=worse[:6])))


def test_a_rising_task_metric_does_not_excuse_a_training_set_learnt_far_beyond_it() -> None:
    # ls19 (EEG): val_loss 1.49 -> 4.42 while val_acc rose 0.44 -> 0.53, training accuracy 1.0
    n = 40
    train = 0.85 * np.exp(-np.arange(n) / 5) + 0.005
    val = np.concatenate([np.linspace(1.8, 1.49, 5), np.linspace(1.55, 4.42, n - 5)])
    train_acc = np.minimum(1.0, 0.3 + np.arange(n) / 10)
    val_acc = np.concatenate([np.linspace(0.3, 0.44, 5), np.linspace(0.44, 0.53, n - 5)])
    [f] = found(diagnose(run_of(loss=train, val_loss=val, train_acc=train_acc, val_acc=val_acc)),
                "validation_divergence")
    assert f.severity == "warning"


def test_a_noisy_per_batch_loss_wandering_at_its_floor_did_not_diverge() -> None:
    # ls19: a fitted classifier's train_loss_step, noise of ~0.02 around 0.05 after falling from 0.37
    # (lowest running median 0.0275, last 0.0546: 1.98x); and one fitted to ~0 (4.5e-6) wandering to 0.009
    rng = np.random.default_rng(3)
    fitted = np.concatenate([np.linspace(0.37, 0.06, 9), np.abs(0.05 + rng.normal(0, 0.02, 125))])
    assert not found(diagnose(run_of(loss=fitted)), "loss_divergence")
    floor = np.concatenate([np.geomspace(1.79, 1e-5, 200), np.abs(rng.normal(0, 0.01, 300)) + 1e-6])
    assert not found(diagnose(run_of(loss=floor)), "loss_divergence")
    # a real climb stays one: 0.05 -> 0.5 for good
    climb = np.concatenate([fitted, np.abs(0.5 + rng.normal(0, 0.02, 60))])
    assert [f.severity for f in found(diagnose(run_of(loss=climb)), "loss_divergence")] == ["error"]


def test_a_learning_rate_of_zero_throughout_and_an_astronomical_loss_are_findings() -> None:
    # ls20: PaddleSpeech's "lr: 0.00000000" on every line; a pose model's loss at 3e31
    rng = np.random.default_rng(0)
    loss = 16 + rng.normal(0, 1.5, 7)
    [f] = found(diagnose(run_of(loss=loss, lr=np.zeros(7))), "small_updates")
    assert f.severity == "warning" and [r.id for r in f.remedies] == ["positive_learning_rate"]
    warm = np.concatenate([[0.0], np.linspace(1e-5, 1e-4, 6)])  # a warm-up from 0: not this
    assert not found(diagnose(run_of(loss=loss, lr=warm)), "small_updates")
    huge = 3.0e31 * (1 + 0.01 * np.arange(10))
    [f] = found(diagnose(run_of(loss=huge)), "loss_divergence")
    # the value is its largest (newuser11), beside the first point over 1e15
    assert f.severity == "error" and f.evidence.value == pytest.approx(float(huge.max()))
    assert f.evidence.model_dump()["first_over"] == pytest.approx(3.0e31)
    assert not found(diagnose(run_of(loss=1e9 * np.linspace(1, 0.5, 40))), "loss_divergence")  # large, sound


def test_an_accuracy_column_that_counts_samples_is_no_accuracy() -> None:
    # ls19: train_acc 87-126 (correct samples per batch of 128): divided by 100 as a percent it was
    # "accuracy 1.26"; it is no share at all
    from gradhealth.logs.detectors.chance import accuracies

    counts = run_of(loss=np.linspace(1.0, 0.2, 20), train_acc=np.linspace(87, 126, 20), val_acc=np.linspace(0.5, 0.8, 20))
    assert accuracies(counts)[0] is None and accuracies(counts)[1] is not None
    percent = run_of(loss=np.linspace(1.0, 0.2, 20), train_acc=np.linspace(40, 99, 20))
    assert accuracies(percent)[0] is not None


def test_a_loss_that_is_the_keras_clamp_times_the_share_wrong_is_saturated_outputs() -> None:
    # ls20 (a Keras CNN): loss 8.9545 at accuracy 0.4444, 9.3127 at 0.4222: 16.1181 x (1 - acc)
    acc = np.array([0.4667, 0.3778, 0.4444, 0.4222, 0.5111, 0.3333, 0.4889, 0.4000, 0.4556])
    [f] = found(diagnose(run_of(loss=16.1181 * (1 - acc), acc=acc)), "nonfinite")
    assert f.severity == "error" and f.evidence.model_dump()["accuracy_metric"] == "acc"
    # an ordinary loss beside an accuracy: nothing of the kind
    rng = np.random.default_rng(0)
    loss = 16.1181 * (1 - acc) * (1 + 0.05 * rng.standard_normal(9))
    assert not found(diagnose(run_of(loss=loss, acc=acc)), "nonfinite")


def test_losses_that_are_not_one_training_loss_are_a_note_not_no_loss() -> None:
    # ls21: OpenRLHF's critic_loss alone, faceswap's loss_A and loss_B (two autoencoders): losses the
    # checks cannot judge as one training loss, but not "no training loss"
    for series in ({"critic_loss": np.linspace(0.5, 0.2, 12)},
                   {"loss_A": np.linspace(0.09, 0.05, 12), "loss_B": np.linspace(0.08, 0.04, 12)}):
        [f] = found(diagnose(run_of(**series)), "insufficient_data")
        assert f.severity == "info" and "none is a training loss" in f.summary


def test_a_loss_lower_at_every_point_is_no_plateau() -> None:
    # ls21 (SimCLR): epoch averages falling by under 1% an epoch, each lower than the one before
    loss = np.array([3.240, 3.089, 3.055, 3.048, 3.040, 3.033, 3.027, 3.022, 3.013, 3.007])
    assert not found(diagnose(run_of(steps=np.arange(1, 11), loss=loss)), "loss_plateau")
    flat = loss.copy()
    flat[5:] = flat[5]  # the same numbers that stop falling halfway: still judged
    assert found(diagnose(run_of(loss=np.concatenate([flat, np.full(10, flat[5])]))), "loss_plateau")


def test_recovered_bumps_of_a_loss_fitted_near_zero_are_a_note() -> None:
    # ls22: a validation loss from 2.4 down to ~1e-3 jumping to 0.14-0.29 in a few epochs, each time
    # back: 100-500x its rolling median, a tenth of its start
    rng = np.random.default_rng(0)
    val = np.concatenate([np.geomspace(2.4, 2e-3, 15), 1e-3 * (1 + 0.2 * rng.random(45))])
    for i, h in ((18, 0.29), (24, 0.14), (31, 0.2)):
        val[i] = h
    loss = np.geomspace(2.0, 1e-3, 60)
    spikes = found(diagnose(run_of(loss=loss, val_loss=val)), "loss_spike")
    assert spikes and all(f.severity == "info" for f in spikes)
    val2 = val.copy()
    val2[[18, 24, 31]] = 3.0  # back above where it started: a warning still
    assert any(f.severity == "warning" for f in found(diagnose(run_of(loss=loss, val_loss=val2)), "loss_spike"))


def test_a_task_metric_that_ends_well_under_its_own_best_excuses_no_rising_validation_loss() -> None:
    # ls22: eval_accuracy 0.90 at the first evaluation, 0.49 at the loss's best, 0.78 at the end:
    # it "improved" since the loss's best only by recovering part of what it had lost
    n = 12
    train = np.linspace(1.2, 0.4, n)
    val = np.array([1.49, 1.37, 1.33, 1.37, 1.36, 1.43, 1.44, 1.48, 1.51, 1.49, 1.52, 1.53])
    steady = np.array([0.902, 0.900, 0.901, 0.903, 0.900, 0.902, 0.901, 0.900, 0.902, 0.901, 0.903, 0.900])
    acc = steady.copy()
    acc[2:] = np.linspace(0.49, 0.60, n - 2)
    [f] = found(diagnose(run_of(loss=train, eval_loss=val, eval_accuracy=acc)), "validation_divergence")
    assert f.severity == "warning"
    better = np.concatenate([[0.40, 0.45], np.linspace(0.49, 0.80, n - 2)])  # at its best at the end: a note
    [f] = found(diagnose(run_of(loss=train, eval_loss=val, eval_accuracy=better)), "validation_divergence")
    assert f.severity == "info"
