"""MLflow file-store run folders."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.mlflow import READER
from gradhealth.logs.readers.registry import ReadLimits

SHARED_RUN = Path("/work/shared/data/real-logs/mlflow-swahili-rnn")   # no licence: not copied

LOSS = """\
1700000000000 2.5 0
1700000001000 2.25 1
1700000002000 nan 2
1700000003000 inf 3
1700000004000 -inf 4
"""


def run_folder(tmp_path: Path, loss: str = LOSS) -> Path:
    run = tmp_path / "mlruns" / "1" / "0123abcd"
    (run / "metrics" / "train").mkdir(parents=True)
    (run / "params").mkdir()
    (run / "metrics" / "loss").write_text(loss)
    (run / "metrics" / "train" / "grad_norm").write_text("1700000000000 0.5 0\n1700000001000 NaN 1\n")
    (run / "metrics" / "lr").write_text("1700000000000 0.001 0\n1700000001000 0.0005 1\n")
    (run / "params" / "opt_clipnorm").write_text("5")
    (run / "params" / "max_grad_norm").write_text("1.0")
    (run / "meta.yaml").write_text("name: test\n")
    return run


def by_name(log):
    return {s.name: s for s in log.series}


@pytest.mark.skipif(not SHARED_RUN.exists(), reason="unlicensed files, only in /work/shared")
def test_real_run_folder_from_shared():
    lines = (SHARED_RUN / "metrics" / "loss").read_text().split()
    values = [float(v) for v in lines[1::3]]
    log = read_log(SHARED_RUN)
    assert log.format == "mlflow" and log.warnings == []
    loss = by_name(log)["loss"]
    assert loss.role == "loss" and len(loss) == len(values) == 10
    assert loss.steps.tolist() == list(range(10))
    assert loss.values[0] == values[0] == 332.6841735839844
    assert loss.values[-1] == values[-1] == 234.7978057861328
    assert loss.wall_time[0] == 1628697792.090
    assert log.params["opt_clipnorm"] == "5" and log.params["opt_name"] == "SGD"
    assert len(log.params) == 20
    assert READER.sniff_dir(SHARED_RUN) == 1.0
    assert sniff.detect(SHARED_RUN / "metrics" / "loss").name == "mlflow"
    single = read_log(SHARED_RUN / "metrics" / "loss")   # one metrics file: its run's params come along
    assert single.format == "mlflow" and single.params["opt_clipnorm"] == "5"


def test_run_folder_nested_keys_nonfinite_and_params(tmp_path):
    run = run_folder(tmp_path)
    assert READER.sniff_dir(run) == 1.0 and READER.sniff_dir(run.parent) == 0.0
    log = read_log(run)
    s = by_name(log)
    assert set(s) == {"loss", "lr", "train/grad_norm"}
    assert s["train/grad_norm"].role == "grad_norm" and math.isnan(s["train/grad_norm"].values[1])
    assert s["lr"].role == "learning_rate"
    v = s["loss"].values
    assert v[:2].tolist() == [2.5, 2.25] and math.isnan(v[2]) and v[3] == math.inf and v[4] == -math.inf
    assert s["loss"].wall_time[1] == 1700000001.0
    assert log.params == {"opt_clipnorm": "5", "max_grad_norm": "1.0"}


def test_legacy_lines_without_step(tmp_path):
    run = run_folder(tmp_path, "1500000000000 3.0\n1500000001000 2.0\n")
    assert by_name(read_log(run))["loss"].steps.tolist() == [0, 1]


def test_truncated_last_line(tmp_path):
    run = run_folder(tmp_path, LOSS + "1700000005000 ")
    log = read_log(run)
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert "metrics/loss line 6" in log.warnings[0].message
    assert len(by_name(log)["loss"]) == 5


def test_bad_line_in_the_middle(tmp_path):
    run = run_folder(tmp_path, LOSS.replace("1700000002000 nan 2", "1700000002000 oops 2"))
    with pytest.raises(LogError, match=r"metrics/loss line 3: expected 'timestamp value step'"):
        read_log(run)


def test_single_metrics_file_and_detection(tmp_path):
    run = run_folder(tmp_path)
    p = run / "metrics" / "loss"
    assert sniff.detect(p).name == "mlflow"
    log = read_log(p)
    assert log.format == "mlflow" and [s.name for s in log.series] == ["loss"]
    assert log.params["opt_clipnorm"] == "5"


def test_empty_garbage_wrong_hint(tmp_path):
    run = run_folder(tmp_path, "")
    (run / "metrics" / "train" / "grad_norm").write_text("")
    (run / "metrics" / "lr").write_text("")
    with pytest.raises(LogError, match="no metric values"):
        read_log(run)
    empty = tmp_path / "loss"
    empty.write_bytes(b"")
    with pytest.raises(UnknownLogFormat):
        read_log(empty)
    with pytest.raises(LogError, match="no metric values"):
        READER.read(empty, ReadLimits())
    garbage = tmp_path / "acc"
    garbage.write_bytes(random.Random(4).randbytes(2000))
    with pytest.raises(UnknownLogFormat):
        read_log(garbage)
    with pytest.raises(LogError):
        READER.read(garbage, ReadLimits())
    with pytest.raises(LogError, match="not an MLflow run folder"):
        READER.read(tmp_path, ReadLimits())
    good = run_folder(tmp_path / "b") / "metrics" / "loss"
    with pytest.raises(UnknownLogFormat, match="not in the text format; it looks like mlflow") as e:
        read_log(good, format="text")
    assert e.value.status == 415
