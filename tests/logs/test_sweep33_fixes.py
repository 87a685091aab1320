"""What the thirty-third log sweep found (training scripts' console output): a logger's closing
line ("[PID:1234] [RANK:0]") turned a Trainer's stdout into one point per printed epoch, a tqdm bar
named "steps" was read by its percentage, timm's train lines had no position and its evaluation's
per-batch progress lines were read as the pass's results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import line_values
from tests.logs.helpers import by_name, write


def test_which_process_wrote_a_line_is_no_figure() -> None:
    line = "[2024-04-02 10:40:30,001] [INFO] [axolotl.train.train:190] [PID:1234] [RANK:0] Training Completed!!!"
    assert line_values(line) == ([], None)
    assert line_values("[INFO] [PID:1234] step 5 loss 0.3") == ([("step", "5"), ("loss", "0.3")], None)


def _trainer_stdout(losses: list[float]) -> str:
    # the Trainer prints its epoch to 2 decimals: about three logs share each printed epoch
    n = len(losses)
    lines = [f"{{'loss': {x:.4f}, 'grad_norm': 0.41, 'learning_rate': 0.0002, 'epoch': {2 * (k + 1) / n:.2f}}}"
             for k, x in enumerate(losses)]
    lines.append("[2024-04-02 10:40:30,001] [INFO] [axolotl.train.train:190] [PID:1234] [RANK:0] Training Completed!!!")
    return "\n".join(lines) + "\n"


def test_a_closing_logger_line_keeps_every_record_of_a_trainers_stdout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    losses = list(1.0 + 0.05 * rng.standard_normal(600))
    losses[300] = 5.6       # one bad batch, five times the run's first loss
    log = read_log(write(tmp_path, "train.log", _trainer_stdout(losses)))
    loss = by_name(log)["loss"]
    assert len(loss.values) == 600
    [f] = [f for f in diagnose(log).findings if f.code == "loss_spike"]
    assert f.evidence.value == 5.6 and f.evidence.count == 1   # found where it was, not overwritten


def test_a_tqdm_bar_named_steps_is_placed_by_its_count_not_its_percentage(tmp_path: Path) -> None:
    bar = ["epoch 1/2"]
    for i in range(1, 201):
        if i == 101:
            bar.append("epoch 2/2")
        loss = "nan" if i >= 150 else f"{0.1 + 0.001 * math.sin(i):.4f}"
        bar.append(f"steps: {100 * i // 200:3d}%|████      | {i}/200 [00:{i % 60:02d}<00:10,  1.90s/it, avr_loss={loss}]")
    log = read_log(write(tmp_path, "train.log", "\r".join(bar) + "\n"))
    loss = by_name(log)["avr_loss"]
    np.testing.assert_array_equal(loss.steps, np.arange(1, 201))
    [f] = [f for f in diagnose(log).findings if f.code == "nonfinite"]
    assert "step 150" in f.summary


def _timm_log(eval_losses: list[float], noise: np.ndarray) -> str:
    lines = []
    for e, avg in enumerate(eval_losses):
        for i in range(0, 1251, 250):
            loss = 6.9 - 0.5 * (e + i / 1251)
            lines.append(f"Train: {e} [{i:4d}/1251 ({100 * i / 1251:3.0f}%)]  Loss: {loss:.3f} ({loss + 0.02:.3f})  "
                         f"Time: 0.373s,  685.60/s  (0.410s,  624.39/s)  LR: 1.000e-03  Data: 0.012 (0.020)")
        for k, i in enumerate((0, 24, 48)):
            batch = avg * noise[3 * e + k]
            lines.append(f"Test: [{i:4d}/48]  Time: 0.200 (0.250)  Loss: {batch:7.3f} ({avg if i == 48 else batch:6.3f})  "
                         f"Acc@1: {20 + 5 * e:7.3f} ({20 + 5 * e:7.3f})  Acc@5: {40 + 5 * e:7.3f} ({40 + 5 * e:7.3f})")
    return "\n".join(lines) + "\n"


def test_timms_train_lines_are_placed_in_their_epoch_and_an_evaluation_counts_once_per_pass(tmp_path: Path) -> None:
    # the per-batch evaluation losses wander +-25 %, the passes' averages fall every epoch
    noise = np.random.default_rng(3).uniform(0.75, 1.25, 30)
    averages = [3.5, 2.4, 1.8, 1.4, 1.2, 1.05, 0.98, 0.95, 0.94, 0.93]
    log = read_log(write(tmp_path, "train.log", _timm_log(averages, noise)))
    s = by_name(log)
    assert s["Loss"].step_unit == "epoch" and s["Loss"].steps[1] == round(250 / 1251, 6)
    np.testing.assert_allclose(s["eval_Loss"].values, averages)
    assert not [f for f in diagnose(log).findings if f.severity != "info"]


def test_espnets_batches_are_placed_in_their_epoch_despite_a_banner_before_the_first_step(tmp_path: Path) -> None:
    head = ("[gpu-node07] 2023-03-01 10:00:00,000 (asr:500) INFO: pytorch.version=1.13.1, cuda.available=True, "
            "cudnn.version=8500\n")
    lines = []
    for e in range(1, 4):
        for b in range(100, 501, 100):
            lines.append(f"[gpu-node07] 2023-03-01 10:00:36,000 (trainer:732) INFO: {e}epoch:train:{b - 99}-{b}batch: "
                         f"iter_time=1.75e-04, loss={200 - 10 * e - b / 100:.3f}, grad_norm=50.0")
    log = read_log(write(tmp_path, "train.log", head + "\n".join(lines) + "\n"))
    s = by_name(log)
    assert "INFO" not in s and "pytorch.version" not in s     # a record's level, a banner: no figures
    loss = s["loss"]
    assert loss.step_unit == "epoch" and len(loss.values) == 15
    assert np.all(np.diff(loss.steps) > 0)                     # 3 epochs of 5 reports, in order
