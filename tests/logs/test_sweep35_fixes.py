"""What the thirty-fifth log sweep found (tools' own files): mmcv's log.json was refused for its
opening record of env_info and config, ClearML's reported scalars and Comet's metrics export were
not read, and six gradient-norm spikes of 44-200x stayed a note in a run logged at every step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradhealth.logs.check import diagnose
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name, write
from tests.logs.test_detectors import healthy, run_of


def test_an_mmcv_log_json_is_read_past_its_opening_record_and_its_val_records_are_the_evaluations(
        tmp_path: Path) -> None:
    lines = [json.dumps({"env_info": "sys.platform: linux\nPyTorch: 1.12.1", "config": "model = dict()",
                         "seed": 42, "exp_name": "deeplabv3.py"})]
    for it in range(50, 2001, 50):
        lines.append(json.dumps({"mode": "train", "epoch": 1, "iter": it, "lr": 0.01, "memory": 9651,
                                 "loss": 1.6 - it / 4000, "grad_norm": 7.5, "time": 0.53}))
        if it % 500 == 0:
            lines.append(json.dumps({"mode": "val", "epoch": 1, "iter": 500, "lr": 0.01, "mIoU": 0.5 + it / 10000}))
    log = read_log(write(tmp_path, "20230412_101533.log.json", "\n".join(lines) + "\n"))
    assert log.format == "native"
    s = by_name(log)
    assert len(s["loss"].values) == 40 and len(s["lr"].values) == 40          # val records' lr is not training's
    np.testing.assert_array_equal(s["val_mIoU"].steps, [500, 1000, 1500, 2000])  # at the step they followed
    assert any(w.code == "skipped_header" and "line 1" in w.message for w in log.warnings)


def test_clearml_reported_scalars_are_read_as_title_and_series(tmp_path: Path) -> None:
    xs = list(range(0, 1000, 20))
    scalars = {"loss": {"train": {"x": xs, "y": [2.3 * 0.99 ** i for i in range(len(xs))], "name": "train"}},
               "grad_norm": {f"encoder.layers.{k}.fc.weight": {"x": xs, "y": [0.0 if k == 1 else 0.5] * len(xs)}
                             for k in range(3)}}
    log = read_log(write(tmp_path, "clearml_reported_scalars.json", json.dumps(scalars, indent=2)))
    assert log.format == "clearml"
    assert by_name(log)["loss/train"].role == "loss"
    [f] = [f for f in diagnose(log).findings if f.code == "dead_layer"]
    assert f.evidence.layers == ["encoder.layers.1.fc.weight"]


def test_comets_metrics_export_is_a_long_table(tmp_path: Path) -> None:
    rows = ["metricName,metricValue,timestamp,step,epoch,runContext"]
    for step in range(40):
        rows.append(f"train_loss,{2.3 * 0.97 ** step},{1700000000000 + step},{step},0,train")
        rows.append(f"update_ratio/conv1.weight,0.5,{1700000000000 + step},{step},0,train")
    log = read_log(write(tmp_path, "comet_metrics_export.csv", "\n".join(rows) + "\n"))
    s = by_name(log)
    assert s["train_loss"].role == "loss" and len(s["train_loss"].values) == 40
    assert [(f.code, f.severity) for f in diagnose(log).findings if f.severity != "info"] == [("large_updates", "warning")]


def test_several_severe_gradient_spikes_are_a_warning_however_often_the_run_logs() -> None:
    loss, grad = healthy(1000, 4)
    for i, size in zip((150, 380, 520, 700, 860, 931), (60, 90, 44, 120, 70, 150), strict=True):
        grad[i] *= size
    [f] = [f for f in diagnose(run_of(loss=loss, grad_norm=grad)).findings if f.code == "gradient_spike"]
    assert f.severity == "warning" and f.evidence.recovered is True   # 6 in 1000 points: 0.6 %
    loss, grad = healthy(1000, 4)
    grad[500] *= 150                                                    # one, however large: a note
    [f] = [f for f in diagnose(run_of(loss=loss, grad_norm=grad)).findings if f.code == "gradient_spike"]
    assert f.severity == "info"


def test_mmengines_validation_records_stepped_by_their_epoch_follow_that_epochs_training(tmp_path: Path) -> None:
    lines = []
    for epoch in range(1, 4):
        for it in range(50, 1001, 50):
            step = (epoch - 1) * 1000 + it
            lines.append(json.dumps({"lr": 0.02, "loss": 2.4 - step / 5000, "grad_norm": 7.0, "data_time": 0.01,
                                     "time": 0.44, "epoch": epoch, "iter": step, "memory": 3821, "step": step}))
        lines.append(json.dumps({"coco/bbox_mAP": 0.1 * epoch, "data_time": 0.003, "time": 0.05, "step": epoch}))
    s = by_name(read_log(write(tmp_path, "scalars.json", "\n".join(lines) + "\n")))
    np.testing.assert_array_equal(s["val/coco/bbox_mAP"].steps, [1000, 2000, 3000])
    assert len(s["time"].values) == 60 and s["time"].steps[0] == 50   # training's own, unmixed
