"""logsweep72: a name a console line repeats after its validation marker (u01's ``Val Loss: ... |
Token Acc: ...``), a token accuracy that never leaves the most frequent token's share, positions
said as the log says them (``ep: 0, batch: 160``), and the trend note beside a NaN loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log


def _series(path: Path) -> dict[str, np.ndarray]:
    return {s.name: s.values for s in read_log(path).series}


def _mt_log(tmp_path: Path, val_acc: list[float], train_loss: list[float], val_loss: list[float],
            train_acc: list[float], seq: float = 0.0) -> Path:
    """The console of logsweep72 u01's translation script: one line per epoch, each split's
    accuracies under the same names."""
    rows = [f"Epoch {e} |             Train Loss: {tl:.4f} | Token Acc: {ta:.4f} | Seq Acc: {seq * ta:.4f} |"
            f"             Val Loss: {vl:.4f} | Token Acc: {va:.4f} | Seq Acc: {seq * va:.4f}\n"
            for e, (tl, ta, vl, va) in enumerate(zip(train_loss, train_acc, val_loss, val_acc, strict=True))]
    path = tmp_path / "train.log"
    path.write_text("start load training data...\nStarting Training From Epoch 0\n" + "".join(rows))
    return path


def test_the_accuracy_named_again_after_the_validation_loss_is_the_validation_accuracy(tmp_path: Path) -> None:
    n = 10
    path = _mt_log(tmp_path, val_acc=[0.5 + 0.01 * e for e in range(n)], train_loss=[3 - 0.1 * e for e in range(n)],
                   val_loss=[3.1 - 0.1 * e for e in range(n)], train_acc=[0.2 + 0.01 * e for e in range(n)])
    got = _series(path)
    assert np.allclose(got["Token_Acc"], [0.2 + 0.01 * e for e in range(n)])
    assert np.allclose(got["val_Token_Acc"], [0.5 + 0.01 * e for e in range(n)])
    assert np.allclose(got["val_Seq_Acc"], 0.0) and "Seq_Acc" in got


def test_a_name_repeated_without_a_split_between_keeps_both_values(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_text("".join(f"step {i} | loss: {1 / (i + 1):.4f} | acc: {0.1 * i:.2f} | acc: {0.05 * i:.3f}\n"
                            for i in range(1, 10)))
    got = _series(path)
    assert np.allclose(got["acc"], [0.1 * i for i in range(1, 10)])
    assert np.allclose(got["acc_2"], [0.05 * i for i in range(1, 10)])


def test_a_token_accuracy_at_the_frequency_baseline_while_the_loss_falls_is_one_class(tmp_path: Path) -> None:
    # 52 epochs: the loss falls 11.23 -> 8.66, the validation token accuracy drifts 0.066 -> 0.0683,
    # 0.0023 (above the 0.002 one-sample spread, but 0.25 % of the 0.933 it could gain)
    n = 52
    train = [8.66 + (11.23 - 8.66) * math.exp(-e / 15) for e in range(n)]
    val_acc = [0.066 + 0.0023 * e / (n - 1) for e in range(n)]
    path = _mt_log(tmp_path, val_acc=val_acc, train_loss=train, val_loss=[x - 0.001 for x in train],
                   train_acc=val_acc)
    doc = check_logs(path)
    (plateau,) = [f for f in doc.findings if f.code == "loss_plateau"]
    assert plateau.severity == "warning" and plateau.evidence.metric == "val_Token_Acc"
    assert "0.066-0.0683 at all 52 evaluations" in plateau.summary


def test_a_saturated_or_a_rising_accuracy_is_no_one_class_model(tmp_path: Path) -> None:
    n = 52
    falling = [0.05 + 0.6 * math.exp(-e / 10) for e in range(n)]
    # saturated near 1: moves 0.003 (over 0.002, and 30 % of the 0.01 it could gain) with a loss near
    # the two-way prior H(0.99) = 0.056
    saturated = _mt_log(tmp_path, val_acc=[0.99 + 0.003 * (e % 2) for e in range(n)], train_loss=falling,
                        val_loss=[0.055] * n, train_acc=[0.99] * n, seq=0.5)
    assert not [f for f in check_logs(saturated).findings if f.code == "loss_plateau"]
    rising = tmp_path / "rising"
    rising.mkdir()
    grows = _mt_log(rising, val_acc=[0.066 + 0.4 * (1 - math.exp(-e / 10)) for e in range(n)], train_loss=falling,
                    val_loss=falling, train_acc=[0.066 + 0.5 * (1 - math.exp(-e / 10)) for e in range(n)], seq=0.5)
    assert not [f for f in check_logs(grows).findings if f.code == "loss_plateau"]


def test_a_divergence_is_placed_at_the_epoch_and_batch_the_log_prints(tmp_path: Path) -> None:
    # logsweep72 u05's print: "ep: 0, batch: N, ..., loss: X" every 20 batches, the loss turning up
    losses = [10.98, 10.97, 10.98, 10.91, 10.31, 10.08, 9.77, 9.60, 9.88, 10.45, 11.30, 12.64, 14.11, 15.92,
              17.48, 19.20]
    path = tmp_path / "train.log"
    path.write_text("".join(f"ep: 0, batch: {20 * (i + 1)}, time: 8.50, ntokens: 450.00/513, loss: {v:.6f}\n"
                            for i, v in enumerate(losses)))
    (div,) = [f for f in check_logs(path).findings if f.code == "loss_divergence"]
    # the lowest logged loss, 9.60, is the 8th line: batch 160
    assert "lowest 9.6 at epoch 0, batch 160" in div.summary
    assert "step 7" not in div.summary


def test_a_batch_counted_again_every_epoch_is_named_within_its_epoch(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("".join(f"ep: {e}, batch: {b}, loss: {3 - 0.01 * (10 * e + b / 20):.4f}\n"
                            for e in range(3) for b in range(20, 220, 20)))
    (loss,) = [s for s in read_log(path).series if s.name == "loss"]
    assert len(loss) == 30
    assert loss.where(loss.steps[13]) == "epoch 1, batch 80"      # the 14th line: epoch 1's 4th
    assert loss.where(loss.steps[0]) == "epoch 0, batch 20"


def test_no_trend_note_beside_a_nan_loss_but_one_for_a_short_finite_run(tmp_path: Path) -> None:
    nan_run = tmp_path / "nan.txt"
    nan_run.write_text("".join(f"Epoch {e}/5\n1563/1563 [==============================] - 5s 3ms/step - loss: nan"
                               " - accuracy: 0.0100\n" for e in range(1, 6)))
    codes = [f.code for f in check_logs(nan_run).findings]
    assert codes == ["nonfinite"]
    short = tmp_path / "short.txt"
    short.write_text("".join(f"Epoch {e}/5\n1563/1563 [==============================] - 5s 3ms/step - "
                             f"loss: {1 / e:.4f} - accuracy: 0.{e}000\n" for e in range(1, 6)))
    assert [f.code for f in check_logs(short).findings] == ["insufficient_data"]
