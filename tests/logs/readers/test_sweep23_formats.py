"""Console formats from the twenty-third log sweep (real issue pastes), each written here in the shape
the tool printed it, with made-up numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import line_values
from gradhealth.logs.series import classify
from tests.logs.helpers import by_name, write


def _mar(iters: int = 400, every: int = 100, nan_from: tuple[int, int] = (1, 100)) -> str:
    """MAR's console: each name and its value parted by spaces only, an iteration counted within
    its epoch, an epoch header between epochs; the excerpt starts inside epoch 0 (no header)."""
    lines = []
    for e in range(3):
        if e:
            lines.append(f"==>>[2020-04-17 18:32:53] [Epoch={e:03d}/020] Stage 1, [Need: 09:13:00]")
        for i in range(0, iters, every):
            v = "nan" if (e, i) >= nan_from else f"{5.0 - e - i / 1000:.3f}"
            lines.append(f"  Iter: [{i:03d}/{iters}]   Freq 143.4   loss_target 0.000   loss_source {v}   "
                         f"loss_total {v}   [2020-04-17 18:31:34]")
        lines.append(f"  **Train**  loss_target 0.000   loss_source {v}   loss_total {v}   ")
    return "\n".join(lines) + "\n"


def test_names_and_values_parted_by_spaces_are_read_when_the_name_is_a_loss_part() -> None:
    found, total = line_values("  Iter: [3800/3877]   Freq 143.4   loss_target 0.000   loss_source nan   "
                               "loss_total nan   [2020-04-17 18:32:18]")
    assert dict(found) == {"Iter": "3800", "loss_target": "0.000", "loss_source": "nan", "loss_total": "nan"}
    assert total == 3877
    # prose is not: "Freq 143.4" names no loss, "number of nan iterations" no value
    assert "Freq" not in dict(found)
    assert line_values("skipped the number of nan iterations 3 times")[0] == []


def test_a_count_that_starts_again_under_epoch_headers_goes_on_from_the_steps_before_them(tmp_path: Path) -> None:
    s = by_name(read_log(write(tmp_path, "train.log", _mar())))
    total = s["loss_total"]
    assert total.role == "loss" and total.step_unit == "step"
    assert np.all(np.diff(total.steps) >= 0)
    # epoch 1's iteration 100 is step 400 + 100 (the count is 400 an epoch)
    first_nan = float(total.steps[np.flatnonzero(np.isnan(total.values))[0]])
    assert first_nan == 1 * 400 + 100
    report = diagnose(read_log(write(tmp_path, "t.log", _mar())))
    nonfinite = [f for f in report.findings if f.code == "nonfinite"]
    assert nonfinite and nonfinite[0].severity == "error"


@pytest.mark.parametrize("name,role", [
    ("loss_total", "loss"), ("losstotal", "loss"), ("loss/train", "loss"),
    ("loss_val", "val_loss"), ("loss/val", "val_loss"), ("loss_test", "val_loss"),
    ("loss_target", "metric"), ("loss_valence", "metric"),
])
def test_a_split_after_the_loss_name_says_which_loss(name: str, role: str) -> None:
    assert classify(name)[0] == role


def test_a_split_word_after_loss_and_before_an_accuracy_belongs_to_the_name() -> None:
    found = dict(line_values("Epoch 0: Cos eeg: 6.6717, Cos img: 6.6729, loss val: 6.6089")[0])
    assert found["loss_val"] == "6.6089" and "val" not in found
    found = dict(line_values("train acc: 0.5002 val acc: 0.5000 test acc: 0.4990")[0])
    assert found == {"train_acc": "0.5002", "val_acc": "0.5000", "test_acc": "0.4990"}


def test_the_best_so_far_in_one_clause_of_a_steps_line_leaves_its_other_values_the_steps() -> None:
    line = ("I1112 15:55:03.135487 140547172456256 train.py:23] epoch 173 best test acc: 0.9120, "
            "train loss: 1.3054; train acc: 0.5002 val acc: 0.5000 test acc: 0.5000")
    found = dict(line_values(line)[0])
    assert found == {"best_test_acc": "0.9120", "epoch": "173", "train_loss": "1.3054",
                     "train_acc": "0.5002", "val_acc": "0.5000", "test_acc": "0.5000"}
    # a line that reports the best alone stays the best's, every value of it
    found = dict(line_values("current best: epoch 12, train_loss: inf, val_loss: 2.0")[0])
    assert found == {"best_epoch": "12", "best_train_loss": "inf", "best_val_loss": "2.0"}
    # "best" right before a name marks that name only
    found = dict(line_values("Epoch 3: loss 0.5, best val_loss: 0.3, val_loss: 0.4")[0])
    assert found["val_loss"] == "0.4" and found["best_val_loss"] == "0.3"


def test_json_lines_with_a_loss_and_no_step_are_placed_by_their_order(tmp_path: Path) -> None:
    # fastText's -verbose JSON progress: a percentage, the loss and the rate, no step
    rows = [{"progress": round(10 + i * 0.5, 1), "loss": 1.0 / (1 + i), "lr": 0.05 * (1 - i / 40),
             "words": 200000 + i, "eta": "0h0m"} for i in range(30)]
    path = write(tmp_path, "progress.log", "\n".join(json.dumps(r) for r in rows) + "\n")
    run = read_log(path)
    s = by_name(run)
    assert run.format == "native"
    np.testing.assert_array_equal(s["loss"].steps, np.arange(30))
    np.testing.assert_allclose(s["loss"].values, [1.0 / (1 + i) for i in range(30)])
    assert "placed_by_order" in {w.code for w in run.warnings}
    # a JSON record that is a config, not a training record, is still no log
    path = write(tmp_path, "config.log", json.dumps({"loss": "mse", "optimizer": "adam"}) + "\n")
    with pytest.raises(Exception, match="format"):
        read_log(path)


def _keras_short(epochs: int, val_acc: list[float], loss: float = math.log(2)) -> str:
    rng = np.random.default_rng(0)
    lines = []
    for e in range(epochs):
        lines.append(f"Epoch {e + 1}/30")
        lines.append(f"200/200 [==============================] - 4883s 24s/step - loss: "
                     f"{loss + rng.normal(0, 0.008):.4f} - accuracy: {0.5 + rng.normal(0, 0.02):.4f} - "
                     f"val_loss: {loss + rng.normal(0, 0.004):.4f} - val_accuracy: {val_acc[e]:.4f} - lr: 0.0100")
    return "\n".join(lines) + "\n"


def test_an_accuracy_pinned_at_one_over_k_beside_a_loss_at_ln_k_is_chance_on_a_short_run(tmp_path: Path) -> None:
    run = read_log(write(tmp_path, "keras.log", _keras_short(7, [0.5, 0.5, 0.5, 0.5, 0.5, 0.56, 0.5])))
    plateau = [f for f in diagnose(run).findings if f.code == "loss_plateau"]
    assert plateau and plateau[0].severity == "warning"
    assert plateau[0].evidence.at_chance["num_classes"] == 2


@pytest.mark.parametrize("val_acc,loss", [
    ([0.5, 0.55, 0.61, 0.66, 0.7, 0.74, 0.78], math.log(2)),   # the accuracy moves: learning
    ([0.5] * 7, 0.35),                                          # pinned, but the loss is far from ln 2
])
def test_no_chance_without_both_signs(tmp_path: Path, val_acc: list[float], loss: float) -> None:
    run = read_log(write(tmp_path, "keras.log", _keras_short(7, val_acc, loss)))
    assert not [f for f in diagnose(run).findings if f.code == "loss_plateau" and f.severity != "info"]


def _nemo_bar(steps: int, loss: str = "nan", twin: str = "reduced_train_loss") -> str:
    """NeMo's tqdm bar pasted as one line: ``loss=nan`` (the bar's placeholder) beside the loss it
    reports under another name, updates glued by carriage returns."""
    parts = []
    for i in range(steps):
        parts.append(f"Epoch 0:   3%|#         | {565 + i}/20101 [2:12:19<76:15:08, 14.05s/it, loss={loss}, "
                     f"v_num=, {twin}={3.9 - 0.01 * i:.3f}, gradient_norm=1.010, global_step={564.0 + i}, ")
    return "\r".join(parts) + "\n"


def test_a_loss_never_finite_beside_a_finite_twin_at_the_same_steps_is_a_placeholder(tmp_path: Path) -> None:
    for steps in (1, 12):
        report = diagnose(read_log(write(tmp_path, "bar.log", _nemo_bar(steps))))
        nonfinite = [f for f in report.findings if f.code == "nonfinite"]
        assert [f.severity for f in nonfinite] == ["info"]


@pytest.mark.parametrize("twin", ["avg_loss", "running_loss"])
def test_an_average_beside_a_nan_loss_is_no_witness(tmp_path: Path, twin: str) -> None:
    # a running average may skip the batches whose loss was NaN: the NaN loss is the run's
    report = diagnose(read_log(write(tmp_path, "bar.log", _nemo_bar(12, twin=twin))))
    assert [f.severity for f in report.findings if f.code == "nonfinite"] == ["error"]


def test_a_named_mean_loss_that_is_nan_beside_a_finite_bar_loss_is_the_runs(tmp_path: Path) -> None:
    # "Mean Training loss : nan" after an epoch whose bar ended at loss=1.95e+4: one batch went NaN
    lines = []
    for e, bar in ((8, "1.95e+4"), (9, "9.77e+4")):
        lines += [f"Epoch {e}: 100%|##########| 266/266 [00:42<00:00,  6.22it/s, loss={bar}]",
                  "Mean Training loss : nan", f"Epoch {e} time: 45.8 seconds"]
    report = diagnose(read_log(write(tmp_path, "t.log", "\n".join(lines) + "\n")))
    assert [f.severity for f in report.findings if f.code == "nonfinite"] == ["error"]
