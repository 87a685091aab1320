"""Text logs: an epoch counter going back to its start more often than the places kept (errsweep4
D6), names before a copula (``loss is: 2.50``), an evaluation announced on a line of its own, values
printed as one-element arrays or tensors, and Chinese names (logsweep49 items 05, 08, 17)."""

from __future__ import annotations

import math
from pathlib import Path

from gradhealth.library import check_logs
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import pairs
from gradhealth.logs.series import RunLog, Series


def by_name(log: RunLog) -> dict[str, Series]:
    return {s.name: s for s in log.series}


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _trials(n: int, epochs: int, nan_trial: int | None) -> list[str]:
    """``n`` complete trials of ``epochs`` epochs each, a NaN loss at epoch ``epochs - 2`` of ``nan_trial``."""
    return [f"epoch: {e} loss: {'nan' if (r == nan_trial and e == epochs - 2) else f'{2.0 - 0.3 * e + 0.001 * r:.4f}'}"
            f" acc: {0.2 + 0.1 * e:.2f}" for r in range(n) for e in range(epochs)]


def test_trials_past_the_restart_cap_still_split_and_the_last_50_are_judged(tmp_path: Path) -> None:
    # 250 trials went back to epoch 0 249 times, past the 200 places kept: not one "resumed" run
    log = read_log(write(tmp_path, "search.log", _trials(250, 5, nan_trial=248)))
    assert log.runs == [f"run{k}" for k in range(201, 251)]
    (note,) = [w for w in log.warnings if w.code == "several_runs"]
    assert "250 runs appended" in note.message and "the first 200 are not read" in note.message
    assert "run201 (line 1001)" in note.message
    loss = by_name(log)["run249/loss"]
    assert len(loss.values) == 5 and math.isnan(loss.values[3])
    assert not any(w.code == "overwritten_values" for w in log.warnings)


def test_trials_past_the_cap_with_a_nan_are_unhealthy(tmp_path: Path) -> None:
    doc = check_logs(write(tmp_path, "search.log", _trials(201, 5, nan_trial=199)))
    assert any(f.code == "nonfinite" and f.severity == "error" and "run200/loss" in f.summary for f in doc.findings)


def test_an_overwritten_nan_is_never_hidden_and_many_returns_are_not_a_resume(tmp_path: Path) -> None:
    # trials of two epochs each are too short to be judged on their own: one run by epoch, each
    # epoch's last values kept; the NaN of trial 11 is replaced, and must still be reported
    path = write(tmp_path, "short.log", _trials(30, 2, nan_trial=10))
    log = read_log(path)
    (over,) = [w for w in log.warnings if w.code == "overwritten_values"]
    assert "29 times" in over.message and "30 runs appended" in over.message
    (event,) = [w for w in log.warnings if w.code == "nonfinite_event"]
    assert event.where == "line 21" and "loss = nan at epoch 0" in event.message
    doc = check_logs(path)
    assert any(f.code == "nonfinite" and f.severity == "error" for f in doc.findings)


def test_a_copula_before_the_separator_is_part_of_it() -> None:
    # Paddle's examples: "loss is: 2.50, acc is: 0.07" named "is" once, and acc was dropped
    assert pairs("epoch: 0,  loss is: 2.504774796962738, acc is: 0.0708582267165184") == [
        ("epoch", "0"), ("loss", "2.504774796962738"), ("acc", "0.0708582267165184")]
    assert pairs("step 3, val_loss was = 0.5") == [("val_loss", "0.5"), ("step", "3")]


def test_an_evaluation_announced_before_a_line_of_the_same_epoch_is_named_eval(tmp_path: Path) -> None:
    lines = ["testing in eval mode……", "epoch: 0,  loss is: 2.50, acc is: 0.07"]
    for e in range(4):
        lines += [f"epoch: {e},  loss is: {0.6 - 0.1 * e:.2f}, acc is: {0.78 + 0.03 * e:.2f}",
                  "testing in eval mode……", f"epoch: {e},  loss is: {0.45 + 0.01 * e:.2f}, acc is: 0.8",
                  "Now continue training……"]
    s = by_name(read_log(write(tmp_path, "paddle.txt", lines)))
    assert sorted(s) == ["acc", "eval_acc", "eval_loss", "loss"]
    assert list(s["loss"].values) == [0.6, 0.5, 0.4, 0.3]  # the training values, not the evaluation's
    assert list(s["eval_loss"].values) == [0.45, 0.46, 0.47, 0.48]
    assert s["eval_loss"].role == "val_loss"


def test_one_element_arrays_and_tensors_are_their_number() -> None:
    line = ("2018-01-24 23:55:23,455 INFO    : Epoch: [0][300/320]\t Loss [ 0.69090915] "
            "Avg Loss [ 0.6879074] Accuracy 0.587")
    assert dict(pairs(line)) == {"epoch": "0.9375", "Loss": "0.69090915", "Avg_Loss": "0.6879074",
                                 "Accuracy": "0.587"}
    assert dict(pairs("step 5 loss tensor(0.6909)")) == {"step": "5", "loss": "0.6909"}
    assert dict(pairs("step 5 loss: tensor(0.6909, device='cuda:0', grad_fn=<NllLossBackward0>) "
                      "grad_norm: tensor([1.5e-3]) kl: [nan]")) == {
        "step": "5", "loss": "0.6909", "grad_norm": "1.5e-3", "kl": "nan"}
    # a bracketed whole number after a name stays what it was (a position, a count)
    assert dict(pairs("Epoch[145] Batch [20]\tSpeed: 100.5 samples/sec\tTrain-CrossEntropy=0.51"))["epoch"] == "145"


def test_chinese_names_are_read_and_common_ones_translated(tmp_path: Path) -> None:
    assert pairs("Epoch 16 完成 | 训练损失: 4.6130 | 验证损失: 6.0073 | 时间: 385.8s") == [
        ("train_loss", "4.6130"), ("val_loss", "6.0073"), ("Epoch", "16")]
    assert dict(pairs("step 3 验证准确率: 0.91 学习率: 0.001 梯度范数: 1.5")) == {
        "step": "3", "val_acc": "0.91", "lr": "0.001", "梯度范数": "1.5"}
    lines = [f"Epoch {e} 完成 | 训练损失: {4.6 - 0.02 * e:.4f} | 验证损失: {6.0 + 0.01 * e:.4f}" for e in range(1, 12)]
    s = by_name(read_log(write(tmp_path, "zh.txt", lines)))
    assert s["train_loss"].role == "loss" and s["val_loss"].role == "val_loss"
    assert len(s["val_loss"].values) == 11
