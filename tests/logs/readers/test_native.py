"""The native format: JSON Lines / CSV, long and wide."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.native import READER
from gradhealth.logs.readers.registry import ReadLimits
from tests.logs.helpers import by_name

GARBAGE = random.Random(0).randbytes(4096)

LONG_JSONL = """\
{"step": 1, "metric": "loss", "value": 2.5, "wall_time": 1718000000.5}
{"step": 1, "metric": "grad_norm", "value": 0.8}
{"step": 1, "metric": "lr", "value": 0.0003}
{"step": 1, "layer": "encoder.0.weight", "kind": "grad_norm", "value": 0.12}
{"step": 1, "layer": "encoder.0.weight", "kind": "weight_norm", "value": 15.5}
{"step": 1, "layer": "encoder.0.weight", "kind": "update_ratio", "value": 0.001}
{"step": 2, "metric": "loss", "value": 2.25, "wall_time": 1718000001.5}
{"step": 2, "metric": "grad_norm", "value": NaN}
{"step": 2, "metric": "val_loss", "value": 2.4}
{"step": 2, "layer": "encoder.0.weight", "kind": "grad_norm", "value": Infinity}
"""

WIDE_CSV = """\
step,loss,val_loss,grad_norm,lr,weight_norm,update_ratio,grad_norm/enc.0,weight_norm/enc.0,update_ratio/enc.0
1,2.5,,0.8,3e-4,20,0.01,0.12,15.5,0.001
2,2.25,2.4,nan,3e-4,20.1,0.011,inf,15.6,0.002
3,NaN,,Infinity,3e-4,20.2,0.012,-inf,15.7,0.003
4,-Infinity,2.3,1.0,3e-4,20.3,0.013,0.1,15.8,0.004
"""


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8", newline="")
    else:
        p.write_bytes(data)
    return p


def test_long_jsonl(tmp_path):
    log = read_log(write(tmp_path, "run.jsonl", LONG_JSONL))
    assert log.format == "native"
    s = by_name(log)
    assert s["loss"].role == "loss" and s["loss"].steps.tolist() == [1, 2]
    assert s["loss"].values.tolist() == [2.5, 2.25]
    assert s["loss"].wall_time.tolist() == [1718000000.5, 1718000001.5]
    assert s["grad_norm"].role == "grad_norm" and math.isnan(s["grad_norm"].values[1])
    assert s["lr"].role == "learning_rate"
    assert s["val_loss"].role == "val_loss"
    g = s["grad_norm/encoder.0.weight"]
    assert (g.role, g.layer) == ("layer_grad_norm", "encoder.0.weight")
    assert g.values[0] == 0.12 and g.values[1] == math.inf
    assert (s["weight_norm/encoder.0.weight"].role, s["weight_norm/encoder.0.weight"].layer) == \
        ("weight_norm", "encoder.0.weight")
    assert s["update_ratio/encoder.0.weight"].role == "update_ratio"
    assert log.warnings == []


def test_jsonl_every_nonfinite_spelling(tmp_path):
    rows = ['{"step": 1, "metric": "loss", "value": NaN}',
            '{"step": 2, "metric": "loss", "value": Infinity}',
            '{"step": 3, "metric": "loss", "value": -Infinity}',
            '{"step": 4, "metric": "loss", "value": nan}',
            '{"step": 5, "metric": "loss", "value": inf}',
            '{"step": 6, "metric": "loss", "value": -inf}',
            '{"step": 7, "metric": "loss", "value": "NaN"}',
            '{"step": 8, "metric": "loss", "value": "-Infinity"}',
            '{"step": 9, "metric": "loss", "value": 1e3}']
    log = read_log(write(tmp_path, "run.jsonl", "\n".join(rows) + "\n"))
    v = log.series[0].values
    assert np.isnan(v[[0, 3, 6]]).all()
    assert v[1] == v[4] == math.inf and v[2] == v[5] == v[7] == -math.inf and v[8] == 1000.0


def test_wide_csv_roles_layers_and_nonfinite(tmp_path):
    log = read_log(write(tmp_path, "run.csv", WIDE_CSV))
    assert log.format == "native"
    s = by_name(log)
    assert s["val_loss"].steps.tolist() == [2, 4]          # blank cells are "not logged"
    assert s["loss"].values[2] != s["loss"].values[2] and s["loss"].values[3] == -math.inf
    assert math.isnan(s["grad_norm"].values[1]) and s["grad_norm"].values[2] == math.inf
    assert s["lr"].role == "learning_rate"
    assert s["weight_norm"].role == "weight_norm" and s["weight_norm"].layer is None
    assert s["update_ratio"].role == "update_ratio" and s["update_ratio"].layer is None
    assert (s["grad_norm/enc.0"].role, s["grad_norm/enc.0"].layer) == ("layer_grad_norm", "enc.0")
    assert s["grad_norm/enc.0"].values.tolist()[1:3] == [math.inf, -math.inf]
    assert (s["weight_norm/enc.0"].role, s["update_ratio/enc.0"].role) == ("weight_norm", "update_ratio")


def test_long_csv_with_metric_or_layer_and_kind(tmp_path):
    text = ("step,metric,layer,kind,value,wall_time\n"
            "10,loss,,,2.0,100\n"
            "10,,fc1,grad_norm,0.5,100\n"
            "20,loss,,,nan,\n"
            "20,,fc1,grad_norm,inf,101\n")
    log = read_log(write(tmp_path, "long.csv", text))
    s = by_name(log)
    assert s["loss"].steps.tolist() == [10, 20] and math.isnan(s["loss"].values[1])
    assert s["loss"].wall_time[0] == 100.0 and math.isnan(s["loss"].wall_time[1])
    assert (s["grad_norm/fc1"].role, s["grad_norm/fc1"].layer) == ("layer_grad_norm", "fc1")


def test_wide_jsonl_and_unsorted_steps(tmp_path):
    text = '{"step": 3, "loss": 1.0}\n{"step": 1, "loss": 3.0, "grad_norm": 2}\n{"step": 2, "loss": 2.0}\n'
    log = read_log(write(tmp_path, "w.jsonl", text))
    s = by_name(log)
    assert s["loss"].steps.tolist() == [1, 2, 3] and s["loss"].values.tolist() == [3.0, 2.0, 1.0]


def test_bom_and_crlf(tmp_path):
    data = ("\ufeff" + WIDE_CSV.replace("\n", "\r\n")).encode()
    log = read_log(write(tmp_path, "run.csv", data))
    assert len(by_name(log)["loss"]) == 4


def test_truncated_last_line_jsonl(tmp_path):
    text = LONG_JSONL + '{"step": 3, "metric": "loss", "val'
    log = read_log(write(tmp_path, "run.jsonl", text))
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert "line 11" in log.warnings[0].message
    assert by_name(log)["loss"].steps.tolist() == [1, 2]


def test_truncated_last_line_csv(tmp_path):
    log = read_log(write(tmp_path, "run.csv", WIDE_CSV + "5,2.0,,0.9"))
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert "line 6" in log.warnings[0].message
    assert len(by_name(log)["loss"]) == 4


def test_last_line_without_newline_that_parses_is_kept(tmp_path):
    log = read_log(write(tmp_path, "run.jsonl", LONG_JSONL.rstrip("\n")))
    assert log.warnings == [] and len(by_name(log)["grad_norm/encoder.0.weight"]) == 2


def test_bad_line_in_the_middle_is_an_error_naming_it(tmp_path):
    lines = LONG_JSONL.splitlines()
    lines[2] = '{"step": 1, "metric": "lr", "value": 0.0003'
    with pytest.raises(LogError, match=r"run\.jsonl line 3: not JSON") as e:
        read_log(write(tmp_path, "run.jsonl", "\n".join(lines) + "\n"))
    assert e.value.status == 422


@pytest.mark.parametrize(("row", "message"), [
    ("5,2.0,0.9", r"run\.csv line 4: expected 10 columns, got 3"),
    ("5,oops,,0.9,3e-4,20,0.01,0.12,15.5,0.001", r"run\.csv line 4, column 'loss': not a number: 'oops'"),
])
def test_bad_csv_row_in_the_middle(tmp_path, row, message):
    lines = WIDE_CSV.splitlines()
    lines.insert(3, row)
    with pytest.raises(LogError, match=message):
        read_log(write(tmp_path, "run.csv", "\n".join(lines) + "\n"))


def test_a_blank_step_takes_the_step_before_and_the_first_row_needs_one(tmp_path):
    # Stable-Baselines3 writes a row per dump, blank where a key was not recorded (logsweep31)
    lines = WIDE_CSV.splitlines()
    lines.insert(3, ",2.0,,0.9,3e-4,20,0.01,0.12,15.5,0.001")
    log = read_log(write(tmp_path, "run.csv", "\n".join(lines) + "\n"))
    step_before = float(lines[2].split(",")[0])
    assert step_before in set(by_name(log)["loss"].steps.tolist())
    assert [w.code for w in log.warnings] == ["placed_by_order"]
    first = [lines[0], ",2.0,,0.9,3e-4,20,0.01,0.12,15.5,0.001", *lines[1:]]
    with pytest.raises(LogError, match=r"first\.csv line 2, the 'step' cell is blank"):
        read_log(write(tmp_path, "first.csv", "\n".join(first) + "\n"))


def test_bad_kind_and_missing_step(tmp_path):
    with pytest.raises(LogError, match=r"line 2: 'kind' is \"grad\"; use one of grad_norm"):
        read_log(write(tmp_path, "a.jsonl", '{"step": 1, "metric": "loss", "value": 1}\n'
                                            '{"step": 1, "layer": "x", "kind": "grad", "value": 1}\n'))
    with pytest.raises(LogError, match=r"line 2: no 'step'"):
        READER.read(write(tmp_path, "b.jsonl", '{"step": 1, "metric": "loss", "value": 1}\n'
                                               '{"metric": "loss", "value": 1}\n'), ReadLimits())


def test_wrong_encoding_in_the_middle(tmp_path):
    data = WIDE_CSV.encode().replace(b"2,2.25", b"2,2.25\xe9", 1)
    with pytest.raises(LogError, match=r"run\.csv line 3: not UTF-8 text \(byte offset \d+\)"):
        read_log(write(tmp_path, "run.csv", data))


def test_empty_file_and_header_only(tmp_path):
    empty = write(tmp_path, "empty.jsonl", b"")
    with pytest.raises(UnknownLogFormat, match="empty"):
        read_log(empty)
    with pytest.raises(LogError, match="empty"):
        READER.read(empty, ReadLimits())
    # named as the user knows it: "native" is only this project's name for a plain table
    with pytest.raises(LogError, match=r"no values after the header \(a CSV log needs"):
        read_log(write(tmp_path, "h.csv", "step,loss,grad_norm\n"))


def test_garbage_bytes(tmp_path):
    p = write(tmp_path, "run.csv", GARBAGE)
    with pytest.raises(UnknownLogFormat) as e:
        read_log(p)
    assert e.value.status == 415
    with pytest.raises(LogError):
        READER.read(p, ReadLimits())
    with pytest.raises(LogError):
        READER.read(write(tmp_path, "g.jsonl", b"{" + GARBAGE), ReadLimits())


def test_wrong_hint_names_what_it_looks_like(tmp_path):
    p = write(tmp_path, "run.csv", WIDE_CSV)
    with pytest.raises(UnknownLogFormat, match=r"run\.csv is not in the keras format; it looks like native") as e:
        read_log(p, format="keras")
    assert e.value.status == 415
    with pytest.raises(UnknownLogFormat, match="unknown format hint 'nope'"):
        read_log(p, format="nope")
    assert read_log(p, format="native").format == "native"


@pytest.mark.parametrize(("name", "text"), [
    ("run.jsonl", LONG_JSONL), ("run.csv", WIDE_CSV),
    ("long.csv", "step,metric,value\n1,loss,2.0\n"),
    ("layers.csv", "step,layer,kind,value\n1,fc1,grad_norm,0.5\n"),
    ("metrics.jsonl", '{"step": 1, "loss": 2.0}\n'),
])
def test_detected_without_hint(tmp_path, name, text):
    assert sniff.detect(write(tmp_path, name, text)).name == "native"


def test_limits(tmp_path):
    p = write(tmp_path, "run.csv", WIDE_CSV)
    with pytest.raises(UploadTooLarge, match="limit is 10") as e:
        READER.read(p, ReadLimits(max_points=10))
    assert e.value.status == 413
    with pytest.raises(UploadTooLarge, match=r"run\.csv is \d+ bytes; the limit for one log file is 100 bytes"):
        read_log(p, limits=ReadLimits(max_file_bytes=100))


def test_the_fast_csv_path_agrees_with_the_careful_one(tmp_path, monkeypatch):
    """pandas' C parser (fast path) and the line-by-line reader give the very same series."""
    import numpy as np

    from gradhealth.logs.readers import native

    rng = np.random.default_rng(0)
    lines = ["step,metric,value,wall_time"]
    for step in range(300):
        for name in ("loss", "grad_norm", "lr", "grad_norm/enc.0.weight"):
            v = rng.normal()
            token = {5: "nan", 17: "NaN", 40: "inf", 41: "-Infinity"}.get(step, repr(v)) if name == "loss" else repr(v)
            lines.append(f"{step},{name},{token},{1.7e9 + step}")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines[:1] + lines[1:][::-1]) + "\n")  # any row order
    assert native._fast_long_csv(path, native.ReadLimits()) is not None
    fast = native.READER.read(path, native.ReadLimits())
    monkeypatch.setattr(native, "_fast_long_csv", lambda *a: None)
    slow = native.READER.read(path, native.ReadLimits())
    assert [(s.name, s.role, s.layer) for s in fast.series] == [(s.name, s.role, s.layer) for s in slow.series]
    for a, b in zip(fast.series, slow.series, strict=True):
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.values, b.values)  # NaN == NaN here; inf signs kept
        np.testing.assert_array_equal(a.wall_time, b.wall_time)
