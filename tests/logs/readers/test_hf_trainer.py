"""Hugging Face trainer_state.json."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

from gradhealth.errors import LogError, UnknownLogFormat, UploadTooLarge
from gradhealth.logs import sniff
from gradhealth.logs.load import read_log
from gradhealth.logs.readers.hf_trainer import READER
from gradhealth.logs.readers.registry import ReadLimits

DATA = Path(__file__).resolve().parents[2] / "data" / "logs"
MISTRAL = DATA / "hf-mistral-translator" / "trainer_state.json"
SHARED_DLLM = Path("/work/shared/data/real-logs/hf-dllm-remasking/trainer_state.json")  # custom licence: not copied


def state(history: list[dict], **extra) -> dict:
    return {"best_metric": None, "epoch": 1.0, "global_step": 30, "log_history": history,
            "logging_steps": 10, "max_steps": 30, **extra}


HISTORY = [
    {"epoch": 0.1, "grad_norm": 1.5, "learning_rate": 1e-5, "loss": 2.5, "step": 10},
    {"epoch": 0.2, "grad_norm": float("nan"), "learning_rate": 2e-5, "loss": 2.4, "step": 20},
    {"epoch": 0.2, "eval_loss": 2.6, "eval_runtime": 3.5, "eval_samples_per_second": 10.0, "step": 20},
    {"epoch": 0.3, "grad_norm": float("inf"), "learning_rate": 3e-5, "loss": float("-inf"), "step": 30},
    {"epoch": 0.3, "step": 30, "total_flos": 1e15, "train_loss": 2.45, "train_runtime": 100.0,
     "train_samples_per_second": 5.0, "train_steps_per_second": 0.3},
]


def write_state(tmp_path: Path, obj: dict, name: str = "trainer_state.json", indent: int = 2) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj, indent=indent, sort_keys=True) + "\n")   # NaN/Infinity as Python writes them
    return p


def by_name(log):
    return {s.name: s for s in log.series}


def test_mistral_real_file():
    raw = json.loads(MISTRAL.read_text())
    logged = [e for e in raw["log_history"] if "loss" in e]
    top = max(logged, key=lambda e: e["grad_norm"])
    log = read_log(MISTRAL)
    assert log.format == "hf_trainer" and log.warnings == [] and log.params == {}
    s = by_name(log)
    assert set(s) == {"loss", "grad_norm", "learning_rate", "epoch"}   # summary entry left out
    loss, gn = s["loss"], s["grad_norm"]
    assert len(loss) == len(logged) == 866
    assert loss.steps[0] == 10 and loss.steps[-1] == 8660
    assert loss.values[0] == 2.4977 and loss.values[-1] == 0.1333
    assert gn.role == "grad_norm" and s["learning_rate"].role == "learning_rate"
    i = int(gn.values.argmax())
    assert (gn.steps[i], gn.values[i]) == (top["step"], top["grad_norm"]) == (50, 16.251842498779297)
    assert statistics.median(gn.values.tolist()) == pytest.approx(1.6612868, abs=1e-6)
    assert sniff.detect(MISTRAL).name == "hf_trainer"


@pytest.mark.skipif(not SHARED_DLLM.exists(), reason="unlicensed file, only in /work/shared")
def test_dllm_real_file_from_shared():
    raw = json.loads(SHARED_DLLM.read_text())["log_history"]
    log = read_log(SHARED_DLLM)
    s = by_name(log)
    assert len(s["loss"]) == len(raw) == 1000
    assert int((s["loss"].values == 0).sum()) == sum(1 for e in raw if e["loss"] == 0) == 792
    assert int((s["grad_norm"].values == 0).sum()) == 164
    i = int(s["grad_norm"].values.argmax())
    assert s["grad_norm"].steps[i] == 668 and s["grad_norm"].values[i] == pytest.approx(0.39987120032310486)
    assert len(s["reward"]) == sum("reward" in e for e in raw) == 500
    assert sniff.detect(SHARED_DLLM).name == "hf_trainer"


def test_nonfinite_tokens_eval_and_summary(tmp_path):
    p = write_state(tmp_path, state(HISTORY))
    assert b"NaN" in p.read_bytes() and b"-Infinity" in p.read_bytes()
    log = read_log(p)
    s = by_name(log)
    assert math.isnan(s["grad_norm"].values[1]) and s["grad_norm"].values[2] == math.inf
    assert s["loss"].values[2] == -math.inf
    assert s["eval_loss"].role == "val_loss" and s["eval_loss"].steps.tolist() == [20]
    assert "train_loss" not in s and "train_runtime" not in s and "total_flos" not in s
    assert s["loss"].steps.tolist() == [10, 20, 30]


def test_max_grad_norm_when_present(tmp_path):
    log = read_log(write_state(tmp_path, state(HISTORY, args={"max_grad_norm": 1.0})))
    assert log.params == {"max_grad_norm": "1.0"}
    log = read_log(write_state(tmp_path, state(HISTORY, max_grad_norm=0.5)))
    assert log.params == {"max_grad_norm": "0.5"}


def test_truncated_file_reads_complete_entries(tmp_path):
    p = write_state(tmp_path, state(HISTORY))
    text = p.read_text()
    cut = text[:text.index('"learning_rate": 3e-05')]          # inside the 4th entry
    p.write_text(cut)
    log = read_log(p)
    assert [w.code for w in log.warnings] == ["truncated_log"]
    assert by_name(log)["loss"].steps.tolist() == [10, 20]
    assert "3 complete log_history entries" in log.warnings[0].message


def test_bad_json_in_the_middle_is_an_error_naming_where(tmp_path):
    p = write_state(tmp_path, state(HISTORY))
    text = p.read_text().replace('"loss": 2.4,', '"loss": 2.4,,', 1)
    p.write_text(text)
    with pytest.raises(LogError, match=r"trainer_state\.json line \d+ column \d+ \(byte offset \d+\): not valid JSON"):
        read_log(p)


def test_entry_without_step_and_no_history(tmp_path):
    with pytest.raises(LogError, match=r"log_history\[1\] has no finite numeric 'step'"):
        read_log(write_state(tmp_path, state([HISTORY[0], {"loss": 1.0}])))
    with pytest.raises(LogError, match="no 'log_history' list"):
        READER.read(write_state(tmp_path, {"log_history": 3}), ReadLimits())
    with pytest.raises(LogError, match="no logged values"):
        read_log(write_state(tmp_path, state([])))


def test_empty_garbage_and_encoding(tmp_path):
    empty = tmp_path / "trainer_state.json"
    empty.write_bytes(b"")
    with pytest.raises(UnknownLogFormat):
        read_log(empty)
    with pytest.raises(LogError, match="empty"):
        READER.read(empty, ReadLimits())
    garbage = tmp_path / "g.json"
    garbage.write_bytes(random.Random(1).randbytes(2048))
    with pytest.raises(UnknownLogFormat):
        read_log(garbage)
    with pytest.raises(LogError):
        READER.read(garbage, ReadLimits())
    latin = tmp_path / "l.json"
    latin.write_bytes(b'{"log_history": [{"step": 1, "loss": 1.0, "note": "caf\xe9"}]}')
    with pytest.raises(LogError, match=r"l\.json byte offset 54: not UTF-8"):
        read_log(latin)


def test_wrong_hint(tmp_path):
    p = write_state(tmp_path, state(HISTORY))
    with pytest.raises(UnknownLogFormat, match="not in the lightning format; it looks like hf_trainer") as e:
        read_log(p, format="lightning")
    assert e.value.status == 415


def test_detected_without_hint_even_minified_and_renamed(tmp_path):
    assert sniff.detect(write_state(tmp_path, state(HISTORY))).name == "hf_trainer"
    p = write_state(tmp_path, state(HISTORY), name="state.json", indent=None)
    assert sniff.detect(p).name == "hf_trainer"


def test_size_limit(tmp_path):
    with pytest.raises(UploadTooLarge):
        READER.read(MISTRAL, ReadLimits(max_file_bytes=1000))
