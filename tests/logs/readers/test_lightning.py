"""PyTorch Lightning CSVLogger metrics.csv."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.lightning import READER
from gradhealth.logs.readers.registry import ReadLimits
from tests.logs.helpers import by_name, write

REAL = Path(__file__).resolve().parents[2] / "data" / "logs" / "lightning-csv-ml-aos" / "metrics.csv"

SYNTH = """\
epoch,grad_2.0_norm/encoder.0.weight,grad_2.0_norm/encoder.0.bias,grad_2.0_norm_total,grad_inf_norm_total,lr-Adam,step,train_loss_step,train_loss_epoch,val_loss
0,0.5,0.1,0.51,0.2,0.001,0,2.0,,
0,0.6,0.1,0.61,0.3,0.001,1,1.9,,
0,,,,,,1,,,2.1
0,,,,,,1,,1.95,
1,nan,0.1,nan,inf,0.001,2,NaN,,
1,inf,0.2,Infinity,inf,0.001,3,1.7,,
1,,,,,,3,,,-inf
"""


def test_real_file():
    with REAL.open(newline="") as f:
        rows = list(csv.DictReader(f))
    train = [(int(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    val = [(int(r["step"]), float(r["val_loss"]), int(r["epoch"])) for r in rows if r["val_loss"]]
    log = read_log(REAL)
    assert log.format == "lightning" and log.warnings == []
    s = by_name(log)
    assert set(s) == {"train_rmse", "train_loss", "epoch", "val_rmse", "val_loss"}
    tl, vl = s["train_loss"], s["val_loss"]
    assert tl.role == "loss" and vl.role == "val_loss" and s["epoch"].role == "metric"
    assert len(tl) == len(train) == 604 and len(vl) == len(val) == 200 and len(s["epoch"]) == 804
    assert (tl.steps[0], tl.values[0]) == (49, 0.12900930643081665)
    assert (tl.steps[-1], tl.values[-1]) == (30199, 0.0010093876626342535)
    assert (vl.steps[0], vl.values[0]) == (150, 0.017430756241083145)
    assert (vl.steps[-1], vl.values[-1]) == (30199, 0.0003582172212190926)
    best = min(val, key=lambda t: t[1])
    i = int(vl.values.argmin())
    assert (vl.steps[i], vl.values[i]) == (best[0], best[1]) == (24914, 0.00028294959338381886)
    assert best[2] == 164                                  # the epoch of the best val_loss
    assert sniff.detect(REAL).name == "lightning"


def test_grad_norm_columns_for_any_p_and_sparse_rows(tmp_path):
    log = read_log(write(tmp_path, "metrics.csv", SYNTH))
    s = by_name(log)
    w = s["grad_2.0_norm/encoder.0.weight"]
    assert (w.role, w.layer) == ("layer_grad_norm", "encoder.0.weight")
    assert w.steps.tolist() == [0, 1, 2, 3] and math.isnan(w.values[2]) and w.values[3] == math.inf
    assert s["grad_2.0_norm_total"].role == "grad_norm"
    assert s["grad_inf_norm_total"].role == "grad_norm"
    assert s["lr-Adam"].role == "learning_rate"
    assert s["val_loss"].steps.tolist() == [1, 3] and s["val_loss"].values[1] == -math.inf
    assert s["train_loss_epoch"].steps.tolist() == [1] and s["train_loss_epoch"].role == "loss"
    assert s["epoch"].values.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_detected_by_grad_columns_under_any_name(tmp_path):
    assert sniff.detect(write(tmp_path, "metrics.csv", SYNTH)).name == "lightning"
    assert sniff.detect(write(tmp_path, "version_3.csv", SYNTH)).name == "lightning"
    assert sniff.detect(write(tmp_path, "m.csv", "epoch,step,train_loss\n0,9,1.0\n")).name == "lightning"


def test_truncated_last_line(tmp_path):
    log = read_log(write(tmp_path, "metrics.csv", SYNTH + "1,0.5,0.1"))
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert "metrics.csv line 9" in log.warnings[0].message


def test_bad_rows_in_the_middle(tmp_path):
    lines = SYNTH.splitlines()
    bad = lines[:3] + ["0,0.5,0.1"] + lines[3:]
    with pytest.raises(LogError, match=r"metrics\.csv line 4: expected 10 columns, got 3"):
        read_log(write(tmp_path, "metrics.csv", "\n".join(bad) + "\n"))
    bad = lines[:3] + [lines[2].replace("0.6", "x0.6", 1)] + lines[3:]
    with pytest.raises(LogError, match=r"line 4, column 'grad_2.0_norm/encoder.0.weight': not a number: 'x0.6'"):
        read_log(write(tmp_path, "metrics.csv", "\n".join(bad) + "\n"))


def test_empty_garbage_wrong_hint(tmp_path):
    empty = write(tmp_path, "metrics.csv", b"")
    with pytest.raises(UnknownLogFormat):
        read_log(empty)
    with pytest.raises(LogError, match="empty"):
        READER.read(empty, ReadLimits())
    garbage = write(tmp_path, "metrics.csv", random.Random(2).randbytes(3000))
    with pytest.raises(UnknownLogFormat):
        read_log(garbage)
    with pytest.raises(LogError):
        READER.read(garbage, ReadLimits())
    with pytest.raises(UnknownLogFormat, match="not in the keras format; it looks like lightning"):
        read_log(REAL, format="keras")
    with pytest.raises(UnknownLogFormat, match="not in the lightning format; it looks like"):
        read_log(write(tmp_path, "k.csv", "epoch,loss\n0,1.0\n"), format="lightning")
