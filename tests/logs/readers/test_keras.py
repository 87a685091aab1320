"""Keras CSVLogger / History CSV."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.keras import READER
from gradhealth.logs.readers.registry import ReadLimits
from tests.logs.helpers import by_name, write

REAL = Path(__file__).resolve().parents[2] / "data" / "logs" / "keras-csvlogger-brats" / "training.log"

SYNTH = """\
epoch,accuracy,loss,lr,val_accuracy,val_loss
0,0.5,2.0,0.001,0.55,1.9
1,0.6,nan,0.001,0.6,inf
2,0.7,inf,0.0005,0.65,-inf
3,0.75,NaN,0.0005,0.7,1.5
"""

HISTORY = """\
,loss,accuracy,val_loss,val_accuracy,learning_rate
0,1.2,0.5,1.3,0.45,0.01
1,0.9,0.6,1.1,0.5,0.01
"""


def test_real_file():
    with REAL.open(newline="") as f:
        rows = list(csv.DictReader(f))
    log = read_log(REAL)
    assert log.format == "keras" and log.warnings == []
    s = by_name(log)
    assert set(s) == set(rows[0]) - {"epoch"}
    assert all(x.step_unit == "epoch" for x in log.series)
    vl, lr = s["val_loss"], s["lr"]
    assert vl.role == "val_loss" and s["loss"].role == "loss" and lr.role == "learning_rate"
    assert len(vl) == len(rows) == 24 and vl.steps.tolist() == list(range(24))
    assert vl.values[0] == float(rows[0]["val_loss"]) == 0.05463637784123421
    assert vl.values[-1] == float(rows[-1]["val_loss"]) == 0.034485723823308945
    assert lr.values[0] == 0.001 and lr.values[-1] == 1e-06
    assert sniff.detect(REAL).name == "keras"


def test_nonfinite_and_roles(tmp_path):
    log = read_log(write(tmp_path, "training.log", SYNTH))
    s = by_name(log)
    assert math.isnan(s["loss"].values[1]) and s["loss"].values[2] == math.inf and math.isnan(s["loss"].values[3])
    assert s["val_loss"].values[1] == math.inf and s["val_loss"].values[2] == -math.inf
    assert s["accuracy"].role == "metric"


def test_history_csv_with_index_column(tmp_path):
    p = write(tmp_path, "history.csv", HISTORY)
    assert sniff.detect(p).name == "keras"
    s = by_name(read_log(p))
    assert set(s) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert s["loss"].steps.tolist() == [0, 1] and s["learning_rate"].role == "learning_rate"


def test_truncated_last_line_and_crlf(tmp_path):
    log = read_log(write(tmp_path, "training.log", SYNTH.replace("\n", "\r\n") + "4,0.8,1.1"))
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert "training.log line 6" in log.warnings[0].message
    assert len(by_name(log)["loss"]) == 4


def test_bad_row_in_the_middle(tmp_path):
    lines = SYNTH.splitlines()
    lines[2] = "1,0.6,oops,0.001,0.6,1.0"
    with pytest.raises(LogError, match=r"training\.log line 3, column 'loss': not a number: 'oops'"):
        read_log(write(tmp_path, "training.log", "\n".join(lines) + "\n"))


def test_empty_garbage_wrong_hint(tmp_path):
    empty = write(tmp_path, "training.log", b"")
    with pytest.raises(UnknownLogFormat):
        read_log(empty)
    with pytest.raises(LogError, match="empty"):
        READER.read(empty, ReadLimits())
    garbage = write(tmp_path, "training.csv", random.Random(3).randbytes(3000))
    with pytest.raises(UnknownLogFormat):
        read_log(garbage)
    with pytest.raises(LogError):
        READER.read(garbage, ReadLimits())
    with pytest.raises(UnknownLogFormat, match="not in the native format; it looks like keras") as e:
        read_log(REAL, format="native")
    assert e.value.status == 415


def test_detected_without_hint(tmp_path):
    assert sniff.detect(write(tmp_path, "training.log", SYNTH)).name == "keras"
    assert sniff.detect(write(tmp_path, "log.csv", SYNTH)).name == "keras"
