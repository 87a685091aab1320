"""A log of component losses only (Ultralytics YOLO's ``train/box_loss``, ``train/cls_loss``...) gets
their sum as its training / validation loss (:mod:`gradhealth.logs.derive`).

The YOLO files under ``tests/data/logs/yolo-results-synthetic/`` are synthetic, written in the
format YOLOv8 / YOLOv5 write ``results.csv`` (space-padded columns); see ``SOURCES.md`` there.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradhealth.logs.check import diagnose
from gradhealth.logs.derive import add_component_losses
from gradhealth.logs.load import read_log
from gradhealth.logs.series import Role, RunLog, Series, make_series
from tests.logs.helpers import by_name, write

DATA = Path(__file__).resolve().parents[1] / "data" / "logs" / "yolo-results-synthetic"
V8 = DATA / "yolov8-results.csv"
V5 = DATA / "yolov5-results.csv"


def columns(path: Path) -> dict[str, np.ndarray]:
    """The file's columns by their stripped header, as floats, read here independently of the readers."""
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header = [h.strip() for h in rows[0]]
    return {h: np.array([float(r[i]) for r in rows[1:]]) for i, h in enumerate(header)}


def derived(log: RunLog, role: Role) -> Series:
    """The one series of ``role`` (the derived one, in these logs)."""
    found = log.by_role(role)
    assert len(found) == 1, [s.name for s in found]
    return found[0]


@pytest.mark.parametrize("path,parts", [
    (V8, ("box", "cls", "dfl")),
    (V5, ("box", "obj", "cls")),
])
def test_yolo_loss_is_the_sum_of_its_component_columns(path: Path, parts: tuple[str, ...]) -> None:
    cols = columns(path)
    log = read_log(path)
    splits: tuple[tuple[str, Role], ...] = (("train", "loss"), ("val", "val_loss"))
    for split, role in splits:
        s = derived(log, role)
        assert s.name == f"{split}/loss (sum of {', '.join(p + '_loss' for p in parts)})"
        expected = sum(cols[f"{split}/{p}_loss"] for p in parts)
        np.testing.assert_array_equal(s.steps, cols["epoch"])
        np.testing.assert_allclose(s.values, expected, rtol=1e-12)
        assert s.step_unit == "epoch"
    # the components are kept as they are, as metrics
    named = by_name(log)
    for split in ("train", "val"):
        for p in parts:
            comp = named[f"{split}/{p}_loss"]
            assert comp.role == "metric"
            np.testing.assert_array_equal(comp.values, cols[f"{split}/{p}_loss"])
    notes = [w for w in log.warnings if w.code == "derived_loss"]
    assert len(notes) == 2
    assert "no training loss is logged" in notes[0].message and "sum" in notes[0].message
    assert "no validation loss is logged" in notes[1].message


def test_yolov8_check_is_healthy_with_the_summed_loss() -> None:
    """Before: insufficient_data ("the log has no training loss"). The summed training loss jumps up
    once when YOLOv8 switches mosaic off for the last 10 epochs (close_mosaic); that is no spike and
    no divergence."""
    doc = diagnose(read_log(V8))
    codes = {f.code for f in doc.findings}
    assert doc.status == "healthy", [(f.code, f.summary) for f in doc.findings]
    assert "insufficient_data" not in codes
    assert not codes & {"loss_spike", "loss_divergence", "validation_divergence", "nonfinite"}
    assert any("sum of" in w for w in doc.log.warnings)  # the report says what the loss is
    assert any(s.role == "loss" and s.name.startswith("train/loss (sum of") for s in doc.series)


def test_a_logged_total_loss_means_nothing_is_derived(tmp_path: Path) -> None:
    # detectron2's metrics.json: total_loss next to its parts
    d2 = "".join(json.dumps({"iteration": i, "loss_cls": 0.7 / (i + 1), "loss_box_reg": 0.5 / (i + 1),
                             "total_loss": 1.2 / (i + 1), "lr": 0.001}) + "\n" for i in range(19, 400, 20))
    log = read_log(write(tmp_path, "metrics.json", d2))
    assert [s.name for s in log.by_role("loss")] == ["total_loss"]
    assert not [w for w in log.warnings if w.code == "derived_loss"]
    # split-named parts next to the split's own loss
    text = "epoch,train/box_loss,train/cls_loss,train/loss,val/box_loss,val/cls_loss,val_loss\n" + "".join(
        f"{e},{1 / (e + 1)},{2 / (e + 1)},{3 / (e + 1)},{1.5 / (e + 1)},{2.5 / (e + 1)},{4 / (e + 1)}\n"
        for e in range(12))
    log = read_log(write(tmp_path, "results.csv", text))
    assert [s.name for s in log.by_role("loss")] == ["train/loss"]
    assert [s.name for s in log.by_role("val_loss")] == ["val_loss"]
    assert not [w for w in log.warnings if w.code == "derived_loss"]


def test_a_total_under_a_name_classify_does_not_know_and_a_single_part_derive_nothing(tmp_path: Path) -> None:
    text = "epoch,val/box_loss,val/cls_loss,val/total_loss,train/box_loss\n" + "".join(
        f"{e},{1 / (e + 1)},{2 / (e + 1)},{3 / (e + 1)},{1 / (e + 1)}\n" for e in range(12))
    log = read_log(write(tmp_path, "results.csv", text))
    assert not log.by_role("loss") and not log.by_role("val_loss")
    assert not log.warnings


def test_other_spellings_of_splits_and_parts(tmp_path: Path) -> None:
    text = "epoch,training_rpn_loss,training_roi_loss,valid/loss_cls,valid/loss_box\n" + "".join(
        f"{e},{1 / (e + 1)},{2 / (e + 1)},{3 / (e + 1)},{4 / (e + 1)}\n" for e in range(12))
    log = read_log(write(tmp_path, "history.csv", text))
    assert derived(log, "loss").name == "training_loss (sum of rpn_loss, roi_loss)"
    assert derived(log, "val_loss").name == "valid/loss (sum of loss_cls, loss_box)"
    np.testing.assert_allclose(derived(log, "val_loss").values, [7 / (e + 1) for e in range(12)])


def test_steps_missing_in_one_component_are_left_out(tmp_path: Path) -> None:
    rows = []
    for e in range(12):
        cls = "" if e in (3, 7) else f"{2 / (e + 1)}"
        rows.append(f"{e},{1 / (e + 1)},{cls},{0.5}\n")
    log = read_log(write(tmp_path, "results.csv", "epoch,train/box_loss,train/cls_loss,train/dfl_loss\n" + "".join(rows)))
    s = derived(log, "loss")
    kept = [e for e in range(12) if e not in (3, 7)]
    np.testing.assert_array_equal(s.steps, kept)
    np.testing.assert_allclose(s.values, [1 / (e + 1) + 2 / (e + 1) + 0.5 for e in kept])
    note = next(w for w in log.warnings if w.code == "derived_loss")
    assert "10 step(s)" in note.message and "2 step(s) where some component has no value" in note.message


def test_components_that_share_few_steps_are_not_summed() -> None:
    run = RunLog(format="native", source="run.jsonl", series=[
        make_series("train/box_loss", list(range(0, 100)), [1.0] * 100),
        make_series("train/cls_loss", list(range(0, 1000, 10)), [2.0] * 100)])  # 10 shared steps of 190
    add_component_losses(run)
    assert not run.by_role("loss") and not run.warnings


def test_a_nan_component_makes_the_sum_nan_and_the_check_says_so(tmp_path: Path) -> None:
    rows = [f"{e},{'nan' if e == 8 else 1 / (e + 1)},{2 / (e + 1)},{1.0}\n" for e in range(15)]
    path = write(tmp_path, "results.csv", "epoch,train/box_loss,train/cls_loss,train/dfl_loss\n" + "".join(rows))
    log = read_log(path)
    s = derived(log, "loss")
    assert len(s) == 15
    assert math.isnan(s.values[8]) and np.all(np.isfinite(np.delete(s.values, 8)))
    doc = diagnose(log)
    nonfinite = [f for f in doc.findings if f.code == "nonfinite"]
    assert nonfinite and nonfinite[0].severity == "error"
    assert s.name in (nonfinite[0].evidence.metrics or [])


def test_a_folder_of_two_runs_gets_one_sum_per_run(tmp_path: Path) -> None:
    text = "epoch,train/box_loss,train/cls_loss\n" + "".join(f"{e},{1 / (e + 1)},{2 / (e + 1)}\n" for e in range(10))
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        write(tmp_path / "runs" / run, "results.csv", text)
    log = read_log(tmp_path / "runs")
    assert sorted(s.name for s in log.by_role("loss")) == [
        "a/train/loss (sum of box_loss, cls_loss)", "b/train/loss (sum of box_loss, cls_loss)"]


@pytest.mark.parametrize("name", ["mse_loss", "ctc_loss", "MSE Loss", "episode/MSE Loss", "loss_net", "reconLoss"])
def test_a_loss_named_in_words_is_the_training_loss(tmp_path: Path, name: str) -> None:
    # one series with "loss" in its last part and no name classify knows: the loss to judge; a
    # run that blows up under that name is a divergence, not "no training loss"
    text = f"step,{name},accuracy\n" + "".join(
        f"{i},{2.0 / (i + 1) if i < 40 else 0.05 * 3 ** (i - 40)},0.5\n" for i in range(60))
    log = read_log(write(tmp_path, "history.csv", text))
    assert [s.name for s in log.by_role("loss")] == [name]
    assert any(w.code == "derived_loss" and name in w.message for w in log.warnings)
    codes = {f.code for f in diagnose(log).findings}
    assert "loss_divergence" in codes and "insufficient_data" not in codes


@pytest.mark.parametrize("names", [
    ("Loss/pi", "Loss/v"),              # a heading, not a name: an RL run's policy and value terms
    ("loss/discrim",),                  # an adversarial part under a heading
    ("loss_scale",),                    # fp16's scaler
    ("actor_loss",), ("policy_loss",),  # not minimised towards zero
    ("value_loss", "q_loss"),           # several: which is the loss is not for the check to guess
    ("val_mse_loss",),                  # a split other than training
])
def test_series_under_a_loss_heading_or_several_losses_are_not_read_as_the_loss(
        tmp_path: Path, names: tuple[str, ...]) -> None:
    text = "step," + ",".join(names) + "\n" + "".join(
        f"{i}," + ",".join(str(1.0 / (i + 1)) for _ in names) + "\n" for i in range(30))
    log = read_log(write(tmp_path, "history.csv", text))
    assert not log.by_role("loss")
    assert not [w for w in log.warnings if w.code == "derived_loss"]


def test_three_or_more_parts_of_a_loss_named_with_no_split_add_up_to_the_training_loss(tmp_path: Path) -> None:
    # Hand4Whole (ls20): "loss_smpl_pose: 0.34 loss_smpl_shape: 0.17 loss_joint_proj: 0.38 ..." and no
    # total was "no training loss"; two parts, or an agent's or a GAN's objectives, stay apart
    lines = [f"Epoch 0/7 itr {i}/3489: lr: 0.0001 loss_smpl_pose: {0.34 - 0.01 * i:.4f} loss_smpl_shape: 0.1658 "
             f"loss_joint_proj: {0.38 - 0.01 * i:.4f} loss_joint_cam: 0.0461" for i in range(1, 13)]
    log = read_log(write(tmp_path, "train.log", "\n".join(lines) + "\n"))
    [total] = log.by_role("loss")
    assert total.values[0] == pytest.approx(0.33 + 0.1658 + 0.37 + 0.0461)
    assert any(w.code == "derived_loss" for w in log.warnings)
    for names in (("loss_a", "loss_b"), ("actor_loss", "critic_loss", "entropy_loss")):
        text = "step," + ",".join(names) + "\n" + "".join(
            f"{i}," + ",".join(f"{1.0 / (i + 1):.4f}" for _ in names) + "\n" for i in range(20))
        assert not read_log(write(tmp_path, "h.csv", text)).by_role("loss"), names


def test_yolov10_head_parts_without_loss_in_their_names_are_summed(tmp_path: Path) -> None:
    # YOLOv10's results.csv logs its one-to-many (om) and one-to-one (oo) heads' parts with no
    # "_loss" and no total (logsweep29: read as "no training loss")
    parts = ("box_om", "cls_om", "dfl_om", "box_oo", "cls_oo", "dfl_oo")
    header = ["epoch", *(f"train/{p}" for p in parts), "metrics/mAP50(B)", *(f"val/{p}" for p in parts)]
    rows = [[e, *(1.0 + k / 10 - 0.02 * e for k in range(6)), 0.1 * e, *(2.0 + k / 10 - 0.01 * e for k in range(6))]
            for e in range(1, 21)]
    text = ",".join(f"{h:>20}" for h in header) + "\n" + "\n".join(",".join(f"{v:>20}" for v in r) for r in rows)
    log = read_log(write(tmp_path, "results.csv", text + "\n"))
    train, val = derived(log, "loss"), derived(log, "val_loss")
    np.testing.assert_allclose(train.values, [sum(r[1:7]) for r in rows], rtol=1e-12)
    np.testing.assert_allclose(val.values, [sum(r[8:14]) for r in rows], rtol=1e-12)
    assert train.name.startswith("train/loss (sum of box_om, cls_om")


def test_a_split_parts_name_with_underscores_is_a_component(tmp_path: Path) -> None:
    # train/rpn_cls_loss read as split "rpn", part "cls" (no split of that name: not a component)
    names = ("rpn_cls", "rpn_bbox", "rcnn_cls")
    text = "step," + ",".join(f"train/{n}_loss" for n in names) + "\n" + "\n".join(
        f"{i}," + ",".join(f"{0.5 + k - 0.01 * i:.4f}" for k in range(3)) for i in range(30)) + "\n"
    log = read_log(write(tmp_path, "metrics.csv", text))
    loss = derived(log, "loss")
    assert loss.values[0] == pytest.approx(0.5 + 1.5 + 2.5)
