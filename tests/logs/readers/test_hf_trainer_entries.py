"""Hugging Face trainer_state.json with log_history entries that carry no ``step``.

The Trainer adds ``step`` to everything it logs, but scripts append their own entries: the file
this reproduces (a Seq2Seq fine-tune) holds, after each epoch's ``eval_*`` entry, a ``predict_*``
entry with ``epoch`` and no ``step``. Such entries cannot be placed on the step axis: they are left
out with one ``skipped_entries`` warning, and the rest of the file is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.errors import LogError
from gradhealth.logs.check import run_log_check
from gradhealth.logs.load import read_log
from tests.logs.helpers import by_name

CPT = Path("/work/logsweep/hf-cpt/trainer_state.json")   # no licence: not copied


def write_state(tmp_path: Path, history: list[dict]) -> Path:
    p = tmp_path / "trainer_state.json"
    state = {"best_metric": None, "epoch": 2.0, "global_step": 20, "log_history": history,
             "logging_steps": 5, "max_steps": 20}
    p.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return p


def train(step: int, loss: float) -> dict:
    return {"epoch": step / 10, "grad_norm": loss * 2, "learning_rate": 1e-5, "loss": loss, "step": step}


def evaluate(step: int, loss: float) -> dict:
    return {"epoch": step / 10, "eval_loss": loss, "eval_runtime": 3.5, "step": step}


def predict(epoch: float, loss: float) -> dict:
    return {"epoch": epoch, "predict_loss": loss, "predict_rouge-1": 40.0, "predict_runtime": 9.0}


HISTORY = [
    train(5, 2.5), evaluate(10, 2.4), predict(1.0, 2.45),
    train(15, 2.0), evaluate(20, 1.9), predict(2.0, 1.95),
    {"epoch": 2.0, "step": 20, "total_flos": 1e15, "train_loss": 2.2, "train_runtime": 100.0,
     "train_samples_per_second": 5.0, "train_steps_per_second": 0.3},
]


def test_entries_without_step_are_left_out_with_a_note(tmp_path):
    p = write_state(tmp_path, HISTORY)
    log = read_log(p)
    raw = json.loads(p.read_text())["log_history"]
    s = by_name(log)
    assert not any(name.startswith("predict_") for name in s)
    assert s["loss"].steps.tolist() == [e["step"] for e in raw if "loss" in e] == [5, 15]
    assert s["loss"].values.tolist() == [e["loss"] for e in raw if "loss" in e] == [2.5, 2.0]
    assert s["eval_loss"].steps.tolist() == [10, 20] and s["eval_loss"].values.tolist() == [2.4, 1.9]
    assert s["epoch"].values.tolist() == [0.5, 1.0, 1.5, 2.0]     # only from entries with a step
    [w] = log.warnings
    assert w.code == "skipped_entries" and w.where == "log_history[2]"
    assert w.message == ("trainer_state.json: 2 log_history entries without a 'step' left out: "
                         "log_history[2], [5] (keys: predict_loss, predict_rouge-1, predict_runtime); "
                         "they cannot be placed on the step axis")


def test_one_entry_and_many_entries(tmp_path):
    log = read_log(write_state(tmp_path, [train(5, 1.0), predict(0.5, 1.0), train(10, 0.9)]))
    assert log.warnings[0].message.startswith("trainer_state.json: 1 log_history entry without a 'step'")
    many = [train(5, 1.0)] + [predict(0.5, 1.0)] * 7
    msg = read_log(write_state(tmp_path, many)).warnings[0].message
    assert "7 log_history entries" in msg and "log_history[1], [2], [3], [4], [5] and 2 more" in msg


def test_no_entry_with_a_step_is_an_error(tmp_path):
    with pytest.raises(LogError, match=r"trainer_state\.json: none of the 2 log_history entries has a 'step'"):
        read_log(write_state(tmp_path, [predict(1.0, 2.0), predict(2.0, 1.9)]))


def test_broken_steps_stay_errors(tmp_path):
    # a training entry without its step: the Trainer never writes one
    with pytest.raises(LogError, match=r"log_history\[1\] has no finite numeric 'step' \(a training entry needs one\)"):
        read_log(write_state(tmp_path, [train(5, 1.0), {"epoch": 1.0, "loss": 0.9}]))
    # a step that is there but not a finite number
    bad = dict(train(10, 0.9), step="ten")
    with pytest.raises(LogError, match=r"log_history\[1\] has no finite numeric 'step' \(it is 'ten'\)"):
        read_log(write_state(tmp_path, [train(5, 1.0), bad]))
    with pytest.raises(LogError, match=r"log_history\[1\] has no finite numeric 'step'"):
        read_log(write_state(tmp_path, [train(5, 1.0), dict(train(10, 0.9), step=float("nan"))]))


def test_check_document_carries_the_note(tmp_path):
    doc = run_log_check(write_state(tmp_path, HISTORY))
    assert doc.log is not None
    assert any("without a 'step' left out" in n for n in doc.log.warnings)


@pytest.mark.skipif(not CPT.exists(), reason="unlicensed real file, only in /work/logsweep")
def test_cpt_real_file():
    raw = json.loads(CPT.read_text())["log_history"]
    stepless = [i for i, e in enumerate(raw) if "step" not in e]
    log = read_log(CPT)
    s = by_name(log)
    assert stepless == list(range(2, 30, 3))
    assert not any(name.startswith("predict_") for name in s)
    assert s["loss"].values.tolist() == [e["loss"] for e in raw if "loss" in e]
    assert s["eval_loss"].steps.tolist() == [e["step"] for e in raw if "eval_loss" in e]
    assert s["eval_loss"].values[0] == raw[1]["eval_loss"] == 0.6597685217857361
    [w] = log.warnings
    assert w.code == "skipped_entries" and "10 log_history entries without a 'step'" in w.message
