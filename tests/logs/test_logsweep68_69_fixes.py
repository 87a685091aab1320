"""logsweep68/69: a loss and gradient norm that drop to exactly 0 in one step (69 u08), a spike on
a smooth epoch-mean loss that cost an evaluated accuracy for good (68 u01), a short Keras run that
predicts one class (68 u05), and a learning rate of 0 at every log (69 u07). Each log is written
here the way its framework writes it; the expected numbers are computed from the inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import run_log_check


def _trainer_state(tmp_path: Path, history: list[dict]) -> Path:
    """A Hugging Face Trainer's trainer_state.json with ``history`` as its log_history."""
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"global_step": history[-1]["step"], "log_history": history}, indent=2))
    return p


def _by_code(doc, code: str) -> list:  # noqa: ANN001
    return [f for f in doc.findings if f.code == code]


# --- 1. zero_gradient: a one-step drop to exact zeros is a broken step, not convergence -----------

def _whisper_like(zero_from: int, n: int = 80) -> list[dict]:
    """A fine-tune's loss 11 -> ~0.85 (noisy, per-batch) and grad_norm ~15, then both exactly 0.0."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        step = 25 * (i + 1)
        if i < zero_from:
            loss = 0.8 + 10.2 * math.exp(-i / 4) + float(rng.uniform(-0.15, 0.15))
            norm = 15.0 + float(rng.uniform(-4, 4))
        else:
            loss, norm = 0.0, 0.0
        out.append({"epoch": step / 1000, "grad_norm": norm, "learning_rate": 1e-5, "loss": loss, "step": step})
    return out


def test_a_loss_and_grad_norm_dropping_to_exactly_0_in_one_step_is_a_broken_step_not_convergence(
        tmp_path: Path) -> None:
    history = _whisper_like(zero_from=40)
    doc = run_log_check(_trainer_state(tmp_path, history))
    [f] = _by_code(doc, "zero_gradient")
    assert f.severity == "error"
    extra = f.evidence.model_extra or {}
    assert "converged" not in extra
    assert extra["before"] == history[39]["loss"] and extra["grad_norm_before"] == history[39]["grad_norm"]
    assert extra["zero_points"] == 40 and extra["started"] == history[40]["step"]
    assert "converged" not in f.summary and f"{history[39]['loss']:.4g}" in f.summary


def test_a_one_step_drop_to_0_on_fewer_than_half_the_logs_is_a_warning_with_the_jump(tmp_path: Path) -> None:
    history = _whisper_like(zero_from=60)  # 20 of 80 logs at 0: the grad norm's own rule
    doc = run_log_check(_trainer_state(tmp_path, history))
    [f] = _by_code(doc, "zero_gradient")
    assert f.severity == "warning"
    assert (f.evidence.model_extra or {})["loss_before"] == history[59]["loss"]
    assert "the run converged" not in f.summary and "in one logged step" in f.summary


def test_a_loss_that_glides_to_its_last_printed_digit_and_then_prints_0_still_converged(tmp_path: Path) -> None:
    # the Trainer logs round(loss, 4): 2.0 falling 15 % a log reaches 0.0001, then prints 0.0
    history = []
    for i in range(80):
        loss = round(2.0 * 0.85 ** i, 4)
        norm = 0.0 if loss == 0 else 3.0 * 0.85 ** i
        history.append({"epoch": i / 10, "grad_norm": norm, "learning_rate": 1e-4, "loss": loss, "step": 10 * (i + 1)})
    first_zero = next(i for i, h in enumerate(history) if h["loss"] == 0)
    assert history[first_zero - 1]["loss"] == 0.0001 and 80 - first_zero < 40
    doc = run_log_check(_trainer_state(tmp_path, history))
    [f] = _by_code(doc, "zero_gradient")
    assert f.severity == "info" and "converged" in f.summary


# --- 2. loss_spike: a jump on a smooth epoch mean, and an accuracy that never came back -----------

def _deit_log(tmp_path: Path, *, acc_back: bool, jump: float = 0.8, batch_noise: float = 0.0) -> Path:
    """A DeiT-style log.txt (one JSON object an epoch): train_loss falling smoothly to ~4.5, then at
    epoch 80 up by ``jump`` and back over ~10 epochs; test_acc1 77.8 drops to 54 there and climbs
    back to 78 (``acc_back``) or only to 65."""
    rng = np.random.default_rng(2)
    lines = []
    for e in range(120):
        loss = 4.5 + 2.4 * math.exp(-e / 15) + float(rng.normal(0, 0.002))
        if batch_noise:
            loss *= 1 + float(rng.uniform(-batch_noise, batch_noise))
        acc = 78.0 - 70.0 * math.exp(-e / 12) + float(rng.normal(0, 0.1))
        if e >= 80:
            loss += jump * math.exp(-(e - 80) / 4)
            floor = 78.0 if acc_back else 65.0
            acc = floor - (floor - 54.0) * math.exp(-(e - 80) / 6) + float(rng.normal(0, 0.1))
        lines.append(json.dumps({"train_lr": 1e-3 * (0.5 + 0.5 * math.cos(math.pi * e / 120)), "train_loss": loss,
                                 "test_acc1": acc, "test_acc5": min(99.0, acc + 15), "epoch": e,
                                 "n_parameters": 5717416}))
    p = tmp_path / "log.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_a_jump_of_many_noises_on_a_smooth_epoch_loss_that_cost_the_accuracy_for_good_is_a_warning(
        tmp_path: Path) -> None:
    path = _deit_log(tmp_path, acc_back=False)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    v = np.log([r["train_loss"] for r in rows])  # the loss's noise in log units: a share of its level
    noise = 1.4826 * float(np.median(np.abs(np.diff(v, 2)))) / math.sqrt(6)
    assert (v[80] - v[79]) / noise >= 20 and math.exp(v[80] - v[79]) >= 1.05  # the test's premise
    doc = run_log_check(path)
    [f] = _by_code(doc, "loss_spike")
    assert f.severity == "warning" and f.evidence.steps == [80]
    extra = f.evidence.model_extra or {}
    assert extra["recovered"] is False and extra["jump_noises"]["80"] >= 20
    lost = extra["accuracy_lost"]
    assert lost["metric"] == "test_acc1" and lost["best"] == max(r["test_acc1"] for r in rows[:80])
    assert lost["last"] == rows[-1]["test_acc1"]
    assert "did not get back" in f.summary


def test_the_same_jump_with_the_accuracy_back_at_its_best_is_a_recovered_note(tmp_path: Path) -> None:
    doc = run_log_check(_deit_log(tmp_path, acc_back=True))
    [f] = _by_code(doc, "loss_spike")
    assert f.severity == "info" and (f.evidence.model_extra or {})["recovered"] is True


def test_a_per_batch_loss_noisier_than_the_jump_allows_gets_no_spike(tmp_path: Path) -> None:
    # +-8 % scatter a point: a bump of 0.3 (~5 % of the level) is a few noises, no spike
    doc = run_log_check(_deit_log(tmp_path, acc_back=True, jump=0.3, batch_noise=0.08))
    assert not _by_code(doc, "loss_spike")


# --- 3. loss_plateau: a short Keras run that predicts one class ------------------------------------

_KERAS_LINE = ("915/915 [==============================] - 59s 64ms/step - loss: {loss} - accuracy: {acc} - "
               "precision: {p} - recall: {r} - val_loss: {vl} - val_accuracy: {va} - val_precision: {vp} - "
               "val_recall: {vr}")


def _keras(tmp_path: Path, rows: list[dict]) -> Path:
    lines = []
    for i, r in enumerate(rows):
        lines += [f"Epoch {i + 1}/{len(rows)}", _KERAS_LINE.format(**r)]
    p = tmp_path / "train.log"
    p.write_text("\n".join(lines) + "\n")
    return p


def _h(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_a_short_keras_run_with_a_constant_accuracy_at_the_prior_entropy_predicts_one_class(tmp_path: Path) -> None:
    zero = "0.0000e+00"
    rows = [{"loss": "2363402.7500", "acc": "0.6550", "p": "0.3190", "r": "0.0218", "vl": "0.6369",
             "va": "0.6667", "vp": zero, "vr": zero}]
    rows += [{"loss": x, "acc": "0.6633", "p": zero, "r": zero, "vl": y, "va": "0.6667", "vp": zero, "vr": zero}
             for x, y in (("0.6395", "0.6385"), ("0.6402", "0.6367"), ("0.6398", "0.6368"), ("0.6401", "0.6387"))]
    doc = run_log_check(_keras(tmp_path, rows))
    [f] = [f for f in _by_code(doc, "loss_plateau") if "one class" in f.summary]
    assert f.severity == "warning" and f.evidence.metric == "val_accuracy"
    extra = f.evidence.model_extra or {}
    assert abs(extra["prior_entropy"] - _h(0.6667)) < 1e-9 and abs(_h(0.6667) - 0.6365) < 1e-4
    assert extra["zero_metrics"] == ["val_precision", "val_recall"] and extra["first_loss"] == 2363402.75
    assert [r.id for r in f.remedies] == ["balance_classes"]


def test_a_balanced_binary_task_at_chance_is_one_finding_not_two(tmp_path: Path) -> None:
    # logsweep70 u04: accuracy 0.5 and a loss at ln 2 on every epoch read both "at chance for 2
    # classes" and "predicts one class": on a balanced binary task they are the same fault
    keras = "\n".join(f"Epoch {i + 1}/5\n100/100 [====] - 1s - loss: 0.6932 - accuracy: 0.5000 - "
                      f"val_loss: 0.6931 - val_accuracy: 0.5000" for i in range(5))
    p = tmp_path / "train.log"
    p.write_text(keras + "\n")
    plateaus = _by_code(run_log_check(p), "loss_plateau")
    assert len(plateaus) == 1 and "chance for about 2 classes" in plateaus[0].summary


def test_a_constant_accuracy_with_the_loss_at_its_entropy_alone_is_enough_but_not_with_a_lower_loss(
        tmp_path: Path) -> None:
    at_h = f"{_h(0.8125):.4f}"  # 0.4826
    keras = "\n".join(f"Epoch {i + 1}/4\n100/100 [====] - 1s - loss: {x} - accuracy: 0.8125"
                      for i, x in enumerate([at_h, at_h, at_h, at_h]))
    (tmp_path / "a").mkdir()
    p = tmp_path / "a" / "train.log"
    p.write_text(keras + "\n")
    doc = run_log_check(p)
    assert any("one class" in f.summary for f in _by_code(doc, "loss_plateau"))
    learnt = keras.replace(f"loss: {at_h}", "loss: 0.3012")  # far under H(0.8125): it learnt something
    (tmp_path / "b").mkdir()
    q = tmp_path / "b" / "train.log"
    q.write_text(learnt + "\n")
    assert not any("one class" in f.summary for f in _by_code(run_log_check(q), "loss_plateau"))


# --- 4. negative_learning_rate: a logged rate of 0 -------------------------------------------------

def _lr_history(rates: list[float]) -> list[dict]:
    rng = np.random.default_rng(3)
    return [{"epoch": i / 10, "grad_norm": 1.0 + float(rng.uniform(0, 0.2)), "learning_rate": lr,
             "loss": 1.9 + float(rng.uniform(-0.1, 0.1)), "step": 15 * (i + 1)} for i, lr in enumerate(rates)]


def test_a_learning_rate_of_0_at_every_log_is_negative_learning_rate(tmp_path: Path) -> None:
    doc = run_log_check(_trainer_state(tmp_path, _lr_history([0.0] * 60)))
    [f] = _by_code(doc, "negative_learning_rate")
    assert f.severity == "error" and f.evidence.steps == [15, 900]
    extra = f.evidence.model_extra or {}
    assert extra["points"] == 60 and extra["throughout"] is True
    assert [r.id for r in f.remedies] == ["positive_learning_rate"]


def test_a_rate_0_from_mid_run_to_the_end_is_one_and_a_decay_reaching_0_at_its_last_log_is_not(
        tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    doc = run_log_check(_trainer_state(tmp_path / "a", _lr_history([2e-5] * 36 + [0.0] * 24)))
    [f] = _by_code(doc, "negative_learning_rate")
    extra = f.evidence.model_extra or {}
    assert extra["points"] == 24 and extra["throughout"] is False and extra["before"] == 2e-5
    assert f.evidence.steps == [15 * 37, 900]
    (tmp_path / "b").mkdir()
    linear = [2e-5 * (1 - i / 59) for i in range(60)]  # the Trainer's linear schedule: 0 at the last step
    assert not _by_code(run_log_check(_trainer_state(tmp_path / "b", _lr_history(linear))), "negative_learning_rate")


def test_one_parameter_group_at_0_beside_a_training_one_is_a_frozen_backbone(tmp_path: Path) -> None:
    # Lightning's LearningRateMonitor: one column per parameter group, the backbone's frozen at 0
    rows = ["epoch,step,lr-AdamW/pg1,lr-AdamW/pg2,train_loss"]
    rows += [f"0,{s},0.0,0.001,{2.0 * 0.98 ** s}" for s in range(0, 600, 10)]
    p = tmp_path / "metrics.csv"
    p.write_text("\n".join(rows) + "\n")
    assert not _by_code(run_log_check(p), "negative_learning_rate")


def test_a_loss_of_nan_points_only_is_said_to_have_no_finite_point_not_no_point(tmp_path: Path) -> None:
    # logsweep70 u05: a Keras loss NaN from epoch 1 read "only 0 point(s) in loss", as if nothing was parsed
    p = tmp_path / "history.csv"
    p.write_text("epoch,loss,accuracy\n" + "".join(f"{e},nan,0.5\n" for e in range(6)))
    from gradhealth.logs.detectors.coverage import insufficient
    from gradhealth.logs.load import read_log
    from gradhealth.logs.thresholds import LogThresholds

    [note] = insufficient(read_log(p), LogThresholds())
    assert "only 0 finite point(s) in loss (of 6: 6 NaN/Inf)" in note.summary
    # in the document the nonfinite error says it alone: the trend of a NaN loss is moot (logsweep72)
    doc = run_log_check(p)
    assert [f.code for f in doc.findings if f.severity != "info"] == ["nonfinite"]
    assert not [f for f in doc.findings if f.code == "insufficient_data"]
