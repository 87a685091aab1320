"""logsweep63: a custom GPT-2 LoRA script's ``Epoch E | Step S/T | Loss: ...`` log whose start-up banner
"Total training steps: 13002" was read as the step every line sat at, and whose evaluation and
summary lines joined the training loss (u04/h05); PyTorch's word_language_model console placing each
epoch's validation before that epoch's batches (u05); and a Keras run stuck at exactly ln 10 named as
chance over 8 classes from its accuracy of 0.13 (u03). Every log here is synthetic, written in the
tools' own formats."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log

from .helpers import by_name, write

# --- u04/h05: "Epoch E | Step S/T | Loss: ..." after a "Total training steps: N" banner ------------------

_T = 500  # batches per epoch


def _lora_log(tmp_path: Path, *, nan_from: tuple[int, int] | None = None) -> Path:
    """The AnshDhalla1/PyTorch_finetune_GPT2 script's console: Python logging's "INFO:__main__:"
    head, a banner counting the run's steps, a line every 10 steps of each 2 epochs, an evaluation
    block and an epoch summary after each epoch, a final evaluation and its results."""
    lines = ["INFO:__main__:🔢 Training batches: 500", "INFO:__main__:🎯 Total training steps: 1000",
             "INFO:__main__:🎬 Starting training..."]
    nan = False
    for e in range(2):
        for s in range(0, _T, 10):
            nan = nan or (nan_from is not None and (e, s) >= nan_from)
            loss = "nan" if nan else f"{0.5 + 2.0 * math.exp(-(e * _T + s) / 100):.4f}"
            lines.append(f"INFO:__main__:Epoch {e} | Step {s:4d}/{_T} | Loss: {loss} | PPL: 1.70 | "
                         f"LR: 1.00e-04 | Grad: {'nan' if nan else '0.300'} | Time: 0.510s")
        ev = "nan" if nan else f"{0.9 - 0.1 * e:.4f}"  # far above the training loss: an evaluation's
        lines += ["INFO:__main__:📊 Evaluation Results:", f"INFO:__main__:   Loss: {ev}",
                  "INFO:__main__:   Perplexity: 2.46", "INFO:__main__:   Tokens: 2,982,385",
                  f"INFO:__main__:✅ Epoch {e} completed in 4729.23s | Avg Loss: {ev}"]
    lines += ["INFO:__main__:🏁 Final evaluation...", "INFO:__main__:📊 Evaluation Results:",
              "INFO:__main__:   Loss: 0.8000", "INFO:__main__:🎉 Final Results: Loss=0.8000, PPL=2.23"]
    return write(tmp_path, "train.log", "\n".join(lines) + "\n")


def test_a_total_steps_banner_is_no_step_and_each_line_sits_at_its_own_place(tmp_path: Path) -> None:
    s = by_name(read_log(_lora_log(tmp_path)))
    loss = s["Loss"]
    # 2 epochs of 50 lines each, at e + S/T (0, 0.02, ..., 1.98), not all at step 1000
    assert len(loss.values) == 100
    np.testing.assert_allclose(loss.steps, [e + k / 50 for e in range(2) for k in range(50)], atol=1e-6)
    assert loss.epoch_length == _T
    assert loss.where(1 + 300 / _T) == f"epoch 1, iteration 300/{_T}"


def test_evaluation_blocks_and_final_results_stay_out_of_the_training_loss(tmp_path: Path) -> None:
    s = by_name(read_log(_lora_log(tmp_path)))
    loss = s["Loss"]
    # the training loss's last value is the last training line's (0.5 + 2 e^-9.9), not the final 0.8
    assert loss.values[-1] == float(f"{0.5 + 2.0 * math.exp(-990 / 100):.4f}")
    assert 0.8 not in loss.values and 0.9 not in loss.values
    ev = s["eval_Loss"]
    assert ev.role == "val_loss"
    # after epoch 0's batches (at its last line's place), after epoch 1's, and the final evaluation's
    # two figures (one point, at the end of epoch 1, after its summary)
    assert list(ev.values) == [0.9, 0.8, 0.8]
    assert ev.steps[0] >= loss.steps[49] and ev.steps[1] >= loss.steps[-1] and ev.steps[-1] > loss.steps[-1]


def test_a_final_results_line_is_an_evaluations_without_a_heading_above_it(tmp_path: Path) -> None:
    text = _lora_log(tmp_path).read_text().replace("INFO:__main__:🏁 Final evaluation...\n", "")
    text = text.replace("INFO:__main__:📊 Evaluation Results:\nINFO:__main__:   Loss: 0.8000\n", "")
    s = by_name(read_log(write(tmp_path, "train.log", text)))
    assert 0.8 not in s["Loss"].values and s["eval_Loss"].values[-1] == 0.8 and s["eval_PPL"].values[-1] == 2.23


def test_the_first_nan_is_reported_at_its_epoch_and_iteration(tmp_path: Path) -> None:
    d = check_logs(_lora_log(tmp_path, nan_from=(0, 300)))
    nonfinite = next(f for f in d.findings if f.code == "nonfinite")
    # (the gradient norm, NaN on the same line, is named first: logsweep77)
    assert nonfinite.summary.startswith(f"NaN first appears in Grad at epoch 0, iteration 300/{_T} (and in Loss ")
    # 20 training lines of epoch 0 and 50 of epoch 1: the evaluations' NaNs are their own
    assert nonfinite.evidence.counts["Loss"] == 70


# --- u05/h04: PyTorch's word_language_model console -----------------------------------------------------


def _word_lm_log(tmp_path: Path, epochs: int = 3, nan: bool = False) -> Path:
    """examples/word_language_model/main.py's stdout: epochs counted from 1, a line every 200 of 2983
    batches, then "| end of epoch E | ... | valid loss ... |" and the test loss at the end."""
    lines = []
    for e in range(1, epochs + 1):
        for b in range(200, 2983, 200):
            loss = "nan" if nan else f"{7.0 - 0.5 * e - b / 3000:5.2f}"
            lines.append(f"| epoch {e:3d} | {b:5d}/ 2983 batches | lr 20.00 | ms/batch 11.45 | loss {loss} | ppl "
                         f"{'nan' if nan else '500.00'}")
        lines.append("-" * 89)
        valid = "nan" if nan else f"{6.0 - 0.3 * e:5.2f}"
        lines.append(f"| end of epoch {e:3d} | time: 35.02s | valid loss {valid} | valid ppl   200.00")
        lines.append("-" * 89)
    lines += ["=" * 89, f"| End of training | test loss {'nan' if nan else ' 5.01'} | test ppl   150.00", "=" * 89]
    return write(tmp_path, "train.log", "\n".join(lines) + "\n")


def test_an_epochs_validation_sits_after_its_batches(tmp_path: Path) -> None:
    s = by_name(read_log(_word_lm_log(tmp_path)))
    loss, valid = s["loss"], s["valid_loss"]
    assert len(valid.values) == 3 and len(loss.values) == 3 * 14
    for e in range(1, 4):
        batches = loss.steps[(loss.steps >= e) & (loss.steps < e + 1)]
        assert len(batches) == 14
        at = valid.steps[e - 1]
        # after epoch e's last batch (e + 2800/2983), before epoch e + 1's first (e + 1 + 200/2983)
        assert batches.max() < at < e + 1 + 200 / 2983


def test_a_run_nan_from_its_first_batch_is_reported_at_that_batch(tmp_path: Path) -> None:
    d = check_logs(_word_lm_log(tmp_path, epochs=2, nan=True))
    nonfinite = next(f for f in d.findings if f.code == "nonfinite")
    # (the perplexity made from the loss, NaN on the same line, is named after it: logsweep77)
    assert nonfinite.summary == "NaN first appears in loss at epoch 1, iteration 200/2983 (and in ppl at the same epoch)"


# --- u03: a loss at exactly ln k names k over the accuracy's guess --------------------------------------


def _keras_log(tmp_path: Path, accuracy: float, loss: float) -> Path:
    """Keras' fit stdout (verbose=1): an ``Epoch e/10`` header, then the epoch's last progress bar."""
    lines = []
    for e in range(1, 11):
        first = e == 1
        lines += [f"Epoch {e}/10",
                  f"62/62 [==============================] - 5s 78ms/step - loss: {5.7976 if first else loss:.4f} - "
                  f"accuracy: {0.2408 if first else accuracy + 0.001 * e:.4f} - val_loss: {loss:.4f} - "
                  f"val_accuracy: 0.1073"]
    return write(tmp_path, "train.log", "\n".join(lines) + "\n")


def test_a_loss_at_ln_10_is_chance_over_10_classes_whatever_the_accuracy_suggests(tmp_path: Path) -> None:
    # loss 2.3026 = ln 10 (to 0.001 %); training accuracy ~0.13, whose 1 / 0.13 rounds to 8 classes
    assert abs(2.3026 - math.log(10)) < 1e-4
    d = check_logs(_keras_log(tmp_path, 0.125, 2.3026))
    plateau = next(f for f in d.findings if f.code == "loss_plateau")
    assert "at chance for about 10 classes, as ln 10 = 2.3 (" in plateau.summary and "accuracy 0.13)" in plateau.summary


def test_a_loss_near_no_ln_k_leaves_the_class_count_to_the_accuracy(tmp_path: Path) -> None:
    # loss 2.10, 1 % from ln 8 = 2.079 (outside the 0.3 % that names k by the loss): k from the accuracy
    d = check_logs(_keras_log(tmp_path, 0.125, 2.10))
    plateau = next(f for f in d.findings if f.code == "loss_plateau")
    assert "at chance for about 8 classes" in plateau.summary
