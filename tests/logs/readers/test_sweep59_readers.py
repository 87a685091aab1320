"""Log-reader fixes from logsweep59: genuine logs refused ("unknown log format") or misread.

- an epoch CSV whose columns are capitalised and spaced (DeepCubeA's ``Epoch,Target Cost,Squared
  Loss,Cross Entropy Loss``) was claimed by no reader;
- a pasted detectron2 NaN report whose ``loss_dict`` holds ``'name': tensor(nan, ...)`` entries was
  refused because its one plain value (``data_time``) hid the NaN-report fallback;
- ``1920/191900 (epoch 1) loss: ...`` lines (a leading unnamed count beside the epoch) were read by
  epoch: 3,948 lines became 11 points.

Every file is synthetic, built here in the real format.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.text import READER as TEXT
from gradhealth.logs.readers.text import pairs
from tests.logs.helpers import by_name, write

# --- 1. an epoch CSV with capitalised, spaced column names ------------------------------------

def _deepcube(epochs: int) -> tuple[str, list[float]]:
    rows = ["Epoch,Target Cost,Squared Loss,Cross Entropy Loss"]
    ce = [2.5 * math.exp(-e / 10) + 0.5 for e in range(1, epochs + 1)]
    for e, c in zip(range(1, epochs + 1), ce, strict=True):
        rows.append(f"{e},{13791 - 20 * e},{0.41 - 0.001 * e:.6f},{c:.6f}")
    return "\n".join(rows) + "\n", [round(c, 6) for c in ce]


def test_capitalised_epoch_csv_with_spaced_loss_names_is_read_as_keras(tmp_path):
    text, ce = _deepcube(30)
    path = write(tmp_path, "metrics.csv", text)
    assert sniff.detect(path).name == "keras"
    log = read_log(path)
    series = by_name(log)
    # the epoch column is the step, not a series; the three others are series by epoch
    assert set(series) == {"Target Cost", "Squared Loss", "Cross Entropy Loss"}
    loss = series["Cross Entropy Loss"]
    assert loss.role == "loss"
    assert loss.step_unit == "epoch"
    assert list(loss.steps) == list(range(1, 31))
    np.testing.assert_allclose(loss.values, ce)
    np.testing.assert_allclose(series["Target Cost"].values, [13791 - 20 * e for e in range(1, 31)])


@pytest.mark.parametrize("epoch", ["EPOCH", "Epoch_", "epoch "])
def test_epoch_column_in_any_case_with_separators(tmp_path, epoch):
    rows = [f"{epoch},Train Loss,Val Loss"] + [f"{e},{1 / e:.6f},{1.2 / e:.6f}" for e in range(1, 11)]
    path = write(tmp_path, "history.csv", "\n".join(rows) + "\n")
    assert sniff.detect(path).name == "keras"
    series = by_name(read_log(path))
    assert set(series) == {"Train Loss", "Val Loss"}
    assert series["Train Loss"].role == "loss" and series["Val Loss"].role == "val_loss"
    assert list(series["Val Loss"].steps) == list(range(1, 11))
    np.testing.assert_allclose(series["Val Loss"].values, [round(1.2 / e, 6) for e in range(1, 11)])


# --- 2. a pasted NaN report beside non-loss values ---------------------------------------------

_LOSS_DICT = ("loss_dict = {'loss_box_reg_stage0': tensor(nan, device='cuda:0', grad_fn=<MeanBackward0>), "
              "'loss_cls_stage0': tensor(0.4312, device='cuda:0', grad_fn=<MeanBackward0>), "
              "'data_time': 0.007915766909718513}")


def test_tensor_entries_of_a_dict_repr_are_values():
    assert pairs(_LOSS_DICT) == [("loss_box_reg_stage0", "nan"), ("loss_cls_stage0", "0.4312"),
                                 ("data_time", "0.007915766909718513")]
    assert pairs("{'loss_cls': tensor(0.5)}") == [("loss_cls", "0.5")]
    assert pairs('{"loss_cls": tensor([0.25], device="cuda:0")}') == [("loss_cls", "0.25")]


def test_detectron2_nan_report_with_loss_dict_is_read(tmp_path):
    text = "\n".join([
        '  File "detectron2/engine/train_loop.py", line 254, in _detect_anomaly',
        "    raise FloatingPointError(",
        "FloatingPointError: Loss became infinite or NaN at iteration=1029!",
        _LOSS_DICT,
    ]) + "\n"
    path = write(tmp_path, "issue_block.txt", text)
    assert sniff.detect(path).name == "text"
    series = by_name(read_log(path))
    assert math.isnan(series["loss_box_reg_stage0"].values[-1])
    assert series["loss_cls_stage0"].values[-1] == pytest.approx(0.4312)


def test_nan_report_beside_values_that_are_no_loss_is_claimed():
    # the fallback holds wherever no loss value was read, not only where no value at all was
    head = "\n".join([
        "[08/01 10:00:00 d2.engine.hooks]: starting training",
        "FloatingPointError: Loss became infinite or NaN at iteration=1029!",
        "data_time: 0.0079",
        "Please check your learning rate.",
    ]).encode()
    assert TEXT.sniff("block.txt", head) >= 0.3
    # without the report, the same lines are no training log
    assert TEXT.sniff("block.txt", head.replace(b"Loss became infinite or NaN", b"stopped")) == 0.0


# --- 3. a leading unnamed count beside the epoch -------------------------------------------------

def test_leading_count_rising_across_epochs_is_the_global_step(tmp_path):
    lines, steps, kl = [], [], []
    g = 0
    for e in range(1, 6):
        for _ in range(6):
            g += 100
            steps.append(g)
            kl.append(round(10 ** (g / 300), 3))
            lines.append(f"{g}/3000 (epoch {e}) loss: {3 - g / 3000:.4f}, KL_loss: {kl[-1]:.3f}, \n\t")
    path = write(tmp_path, "train_py.log", "\n".join(lines) + "\n")
    series = by_name(read_log(path, format="text"))
    assert list(series["loss"].steps) == steps          # 30 points, not 5 (one per epoch)
    assert series["loss"].step_unit == "step"
    np.testing.assert_allclose(series["KL_loss"].values, kl)
    assert series["KL_loss"].values.max() == pytest.approx(1e10)


def test_leading_count_restarting_every_epoch_is_a_position_within_it(tmp_path):
    lines, where = [], []
    for e in range(1, 6):
        for i in range(0, 600, 100):
            where.append(round(e + i / 600, 6))            # 600 = the last count (500) + its gap (100)
            lines.append(f"{i}/600 (epoch {e}) loss: {3 - e * 0.1 - i / 6000:.4f}")
    path = write(tmp_path, "train.log", "\n".join(lines) + "\n")
    loss = by_name(read_log(path, format="text"))["loss"]
    assert loss.step_unit == "epoch"
    np.testing.assert_allclose(loss.steps, where)


def test_leading_date_is_no_count():
    assert pairs("12/05/2020 epoch 1 loss 3.5") == [("epoch", "1"), ("loss", "3.5")]
