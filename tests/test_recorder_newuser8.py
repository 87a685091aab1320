"""newuser8 #4: a training script restarted under the same path after a crash emptied the first
process's log; the recorder now appends after it (and never spills over an earlier unsent file).
newuser8 #5: a restart refused with 409 run_in_use was logged as "the service did not answer in
time"; the warning now says another process holds the run and what to do, and ``take_over=True``
takes the run at once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from gradhealth import check_logs
from gradhealth.errors import ArgumentError, ArgumentTypeError
from gradhealth.recorder import GradientRecorder
from tests.test_recorder_service import Service, small_model, train_recorded


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_restarted_recorder_appends_after_a_cut_off_log_and_keeps_every_step(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="gradhealth.recorder")
    path = tmp_path / "run" / "gradients.jsonl"
    model = small_model()
    first = GradientRecorder(model, path, flush_interval=0)
    train_recorded(model, first, range(6))
    first._writer.flush()
    # the process is killed mid-write: no end record, and half a line at the end of the file
    first._writer.close(clean=False)
    with path.open("a") as f:
        f.write('{"step": 6, "metric": "lo')
    model = small_model()  # the script started again: a new model
    second = GradientRecorder(model, path, flush_interval=0)
    assert second.path == path
    assert second.appended is not None
    assert second.appended.last_step == 5 and not second.appended.ended
    assert second.appended.dropped == len('{"step": 6, "metric": "lo')
    train_recorded(model, second, range(4))
    second.close()
    rows = _records(path)  # every line parses
    starts = [i for i, r in enumerate(rows) if r.get("gradhealth_recorder") == "start"]
    assert len(starts) == 2 and starts[0] == 0
    first_steps = {r["step"] for r in rows[:starts[1]] if "step" in r}
    second_steps = {r["step"] for r in rows[starts[1]:] if "step" in r}
    assert first_steps == set(range(6)) and second_steps == set(range(4))
    assert rows[-1] == {"gradhealth_recorder": "end", "logged_steps": 4}
    said = [r.getMessage() for r in caplog.records if "already holds" in r.getMessage()]
    assert len(said) == 1 and "last step 5" in said[0] and "cut off" in said[0] and "appended" in said[0]
    # the log check reads both runs: the restart from step 0 is a run of its own
    text = json.dumps(check_logs(path).model_dump(mode="json"))
    assert "2 runs appended one after another" in text and "run2/loss" in text


def test_a_file_that_is_not_a_recorders_log_is_written_beside_never_emptied(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("my own notes\n")
    model = small_model()
    rec = GradientRecorder(model, path, flush_interval=0)
    train_recorded(model, rec, range(2))
    rec.close()
    assert path.read_text() == "my own notes\n"
    assert rec.path != path and rec.path.parent == path.parent and rec.appended is None
    assert _records(rec.path)[-1] == {"gradhealth_recorder": "end", "logged_steps": 2}


def test_unsent_steps_of_an_earlier_process_are_not_overwritten(tmp_path):
    unsent = tmp_path / "g.unsent.jsonl"
    unsent.write_text('{"step": 0, "metric": "loss", "value": 1.0, "wall_time": 0.0}\n')
    # a server nothing listens on: close() keeps everything in a spill file of its own
    model = small_model()
    rec = GradientRecorder(model, tmp_path / "g.jsonl", server="http://127.0.0.1:9", run="r",
                           flush_interval=0, close_timeout=0.5)
    train_recorded(model, rec, range(3))
    rec.close()
    assert unsent.read_text() == '{"step": 0, "metric": "loss", "value": 1.0, "wall_time": 0.0}\n'
    assert rec.live is not None and rec.live.unsent_path is not None and rec.live.unsent_path != unsent
    assert {r["step"] for r in _records(rec.live.unsent_path)} == {0, 1, 2}


def test_take_over_is_checked():
    with pytest.raises(ArgumentTypeError, match="take_over"):
        GradientRecorder(small_model(), server="http://127.0.0.1:9", run="r", take_over="yes")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="take_over"):
        GradientRecorder(small_model(), "x.jsonl", take_over=True)


def test_a_run_held_by_another_writer_is_named_as_such_and_take_over_takes_it(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gradhealth.recorder")
    svc = Service(tmp_path)
    svc.start()
    try:
        other = {"X-Gradhealth-Writer": "the-crashed-process"}
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            run = client.post("/v1/runs", json={"name": "held"}, headers=other).json()
            client.post(f"/v1/runs/{run['id']}/points", json=[{"step": 0, "metric": "loss", "value": 1.0}],
                        headers=other).raise_for_status()
        model = small_model()
        waiting = GradientRecorder(model, tmp_path / "a.jsonl", server=svc.url, run="held",
                                   flush_interval=0, close_timeout=1)
        train_recorded(model, waiting, range(3))
        waiting.close()
        assert waiting.live is not None and waiting.live.unsent_path is not None
        said = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "could not be sent" in r.getMessage()]
        assert len(said) == 1, said
        assert "did not answer in time" not in said[0]
        assert "run_in_use" in said[0] and "another process is its writer" in said[0]
        assert "close_timeout" in said[0] and "take_over=True" in said[0]

        taking = GradientRecorder(model, tmp_path / "b.jsonl", server=svc.url, run="held",
                                  flush_interval=0, close_timeout=30, take_over=True)
        train_recorded(model, taking, range(1, 4))
        taking.close()
        assert taking.live is not None and taking.live.run_id == run["id"] and taking.live.finished
        assert taking.live.unsent_path is None
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            loss = client.get(f"/v1/runs/{run['id']}/points?metric=loss").json()["items"]
        assert {p["step"] for p in loss} == {0, 1, 2, 3}
    finally:
        svc.stop()
