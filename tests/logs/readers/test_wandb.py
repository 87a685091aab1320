"""Weights & Biases history exports and run summaries."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.readers.wandb import READER, histogram_norm
from tests.logs.helpers import by_name, write

SHARED_SUMMARY = Path("/work/shared/data/real-logs/wandb-grpo-code/wandb-summary.json")  # no licence

HIST = {"_type": "histogram", "values": [1, 2], "bins": [-1.0, 0.0, 2.0]}    # norm ~ sqrt(1*.25 + 2*1) = 1.5
HIST_CSV = json.dumps(HIST).replace('"', '""')
HIST_REPR = repr(HIST).replace('"', '""')

HISTORY_CSV = f"""\
,_step,_runtime,_timestamp,train/loss,train/grad_norm,train/learning_rate,gradients/fc1.weight,note
0,0,1.5,1718000000.5,2.5,0.8,0.001,"{HIST_CSV}",hello
1,1,2.5,1718000001.5,nan,inf,0.001,"{HIST_REPR}",
2,2,3.5,1718000002.5,NaN,Infinity,0.001,,x
3,3,4.5,1718000003.5,-inf,1.0,0.001,"{HIST_CSV}",
"""


def history_jsonl() -> str:
    rows = [
        {"_step": 0, "_runtime": 1.0, "_timestamp": 1718000000.0, "train/loss": 2.0, "train/grad_norm": 0.5,
         "gradients/fc1.weight": HIST, "parameters/fc1.weight": {"_type": "histogram", "values": [4],
                                                                 "packedBins": {"min": 1.0, "size": 2.0, "count": 1}}},
        {"_step": 1, "_runtime": 2.0, "_timestamp": 1718000001.0, "train/loss": float("nan"),
         "train/grad_norm": float("inf"), "media": {"_type": "image-file", "path": "x.png"}},
        {"_step": 2, "_runtime": 3.0, "_timestamp": 1718000002.0, "eval/loss": 2.2, "train/loss": 1.5},
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


UI_EXPORT = """\
"Step","lucky-run-3 - train/loss","lucky-run-3 - train/loss__MIN","lucky-run-3 - train/loss__MAX"
"10","2.5","2.4","2.6"
"20","2.1","2.0","2.2"
"""


def test_histogram_norm_approximation():
    assert histogram_norm(HIST) == pytest.approx(1.5)
    packed = {"_type": "histogram", "values": [4], "packedBins": {"min": 1.0, "size": 2.0, "count": 1}}
    assert histogram_norm(packed) == pytest.approx(4.0)          # 4 values at midpoint 2 -> sqrt(4*4)
    assert histogram_norm({"_type": "histogram", "values": [1, 2], "bins": [0, 1]}) is None
    assert histogram_norm({"_type": "image-file"}) is None


@pytest.mark.skipif(not SHARED_SUMMARY.exists(), reason="unlicensed file, only in /work/shared")
def test_real_summary_from_shared():
    raw = json.loads(SHARED_SUMMARY.read_text())
    log = read_log(SHARED_SUMMARY)
    assert log.format == "wandb" and log.series == []
    assert [w.code for w in log.warnings] == ["summary_only"]
    assert float(log.params["summary/train/grad_norm"]) == raw["train/grad_norm"] == 0.020761946216225624
    assert float(log.params["summary/train/loss"]) == raw["train/loss"] == -0.0027
    assert log.params["summary/_step"] == "17294" and log.params["summary/train/global_step"] == "960"
    assert sniff.detect(SHARED_SUMMARY).name == "wandb"


def test_summary_synthetic(tmp_path):
    text = '{"_step": 5, "train/loss": NaN, "gradients/w": ' + json.dumps(HIST) + ', "s": "x"}'
    p = write(tmp_path, "wandb-summary.json", text)
    log = read_log(p)
    assert log.series == [] and log.warnings[0].code == "summary_only"
    assert log.params["summary/train/loss"] == "nan" and float(log.params["summary/gradients/w"]) == pytest.approx(1.5)
    assert "summary/s" not in log.params
    cut = write(tmp_path, "wandb-summary.json", '{"_step": 5, "train/loss": 2.')
    with pytest.raises(LogError, match=r"wandb-summary\.json line 1 column \d+: not valid JSON"):
        read_log(cut)


def test_history_csv(tmp_path):
    log = read_log(write(tmp_path, "history.csv", HISTORY_CSV))
    assert log.format == "wandb"
    s = by_name(log)
    assert set(s) == {"train/loss", "train/grad_norm", "train/learning_rate", "gradients/fc1.weight"}
    loss, gn, g = s["train/loss"], s["train/grad_norm"], s["gradients/fc1.weight"]
    assert loss.role == "loss" and gn.role == "grad_norm" and s["train/learning_rate"].role == "learning_rate"
    assert math.isnan(loss.values[1]) and math.isnan(loss.values[2]) and loss.values[3] == -math.inf
    assert gn.values[1] == gn.values[2] == math.inf
    assert (g.role, g.layer) == ("layer_grad_norm", "fc1.weight")
    assert g.steps.tolist() == [0, 1, 3] and g.values.tolist() == pytest.approx([1.5, 1.5, 1.5])
    assert loss.wall_time[0] == 1718000000.5
    assert [w.code for w in log.warnings] == ["skipped_values"] and "note" in log.warnings[0].message


def test_history_jsonl(tmp_path):
    log = read_log(write(tmp_path, "wandb-history.jsonl", history_jsonl()))
    s = by_name(log)
    assert s["train/loss"].steps.tolist() == [0, 1, 2] and math.isnan(s["train/loss"].values[1])
    assert s["train/grad_norm"].values[1] == math.inf
    assert s["eval/loss"].role == "val_loss"
    assert s["gradients/fc1.weight"].values[0] == pytest.approx(1.5)
    w = s["parameters/fc1.weight"]
    assert (w.role, w.layer, w.values[0]) == ("weight_norm", "fc1.weight", pytest.approx(4.0))
    assert "media" in log.warnings[0].message


def test_ui_export_csv(tmp_path):
    p = write(tmp_path, "wandb_export_2024-05-01T10_00_00.csv", UI_EXPORT)
    assert sniff.detect(p).name == "wandb"
    log = read_log(p)
    assert [(s.name, s.role, s.steps.tolist(), s.values.tolist()) for s in log.series] == \
        [("train/loss", "loss", [10, 20], [2.5, 2.1])]


def test_truncated_last_lines(tmp_path):
    log = read_log(write(tmp_path, "h.jsonl", history_jsonl() + '{"_step": 3, "train/lo'))
    assert log.warnings[0].code == "truncated_log" and "h.jsonl line 4" in log.warnings[0].message
    log = read_log(write(tmp_path, "history.csv", HISTORY_CSV + "4,4,5.5"))
    assert "truncated_log" in [w.code for w in log.warnings]


def test_bad_line_in_the_middle(tmp_path):
    lines = history_jsonl().splitlines()
    lines.insert(1, '{"_step": 0.5, "train/loss": }')
    with pytest.raises(LogError, match=r"h\.jsonl line 2: not a JSON object"):
        read_log(write(tmp_path, "h.jsonl", "\n".join(lines) + "\n"))


def test_empty_garbage_wrong_hint(tmp_path):
    empty = write(tmp_path, "wandb-summary.json", b"")
    with pytest.raises(UnknownLogFormat):
        read_log(empty)
    with pytest.raises(LogError, match="empty"):
        READER.read(empty, ReadLimits())
    garbage = write(tmp_path, "export.csv", random.Random(5).randbytes(3000))
    with pytest.raises(UnknownLogFormat):
        read_log(garbage)
    with pytest.raises(LogError):
        READER.read(garbage, ReadLimits())
    with pytest.raises(LogError):
        READER.read(write(tmp_path, "x.json", b"{" + random.Random(6).randbytes(500)), ReadLimits())
    with pytest.raises(UnknownLogFormat, match="not in the native format; it looks like wandb") as e:
        read_log(write(tmp_path, "history.csv", HISTORY_CSV), format="native")
    assert e.value.status == 415


@pytest.mark.parametrize(("name", "text"), [
    ("history.csv", HISTORY_CSV), ("wandb-history.jsonl", history_jsonl()), ("export.json", history_jsonl()),
    ("wandb-summary.json", '{"_step": 1, "loss": 2}'), ("summary.json", '{\n  "_runtime": 3,\n  "loss": 2\n}\n'),
])
def test_detected_without_hint(tmp_path, name, text):
    assert sniff.detect(write(tmp_path, name, text)).name == "wandb"
