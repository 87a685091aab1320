"""newuser11 #12: a run refused with 409 run_in_use while another process wrote it, then taken, was
logged as an outage ("http://... answers again after 11 s"); the recovery now says what happened:
the name was in use, and the recorder went on as a new run or re-attached."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from gradhealth.recorder import HttpSink, Record
from tests.recorder_server import ScriptedServer

HELD = "283e5c4ed05541d187a3a3a08e687636"
IN_USE = json.dumps({"type": "https://gradhealth.dev/problems/run_in_use", "title": "Conflict", "status": 409,
                     "detail": f"run {HELD} ('ddp-job') is being written by another process: use another name"}).encode()


def _recovered(recorder_server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, run_id: str) -> list[str]:
    caplog.set_level(logging.WARNING, logger="gradhealth.recorder")
    recorder_server.plan = [(409, IN_USE, "application/problem+json"), (409, IN_USE, "application/problem+json"),
                   (201, json.dumps({"id": run_id}).encode(), "application/json")]
    sink = HttpSink(recorder_server.url, "ddp-job", close_timeout=10, backoff=(0.01, 0.05), spill=tmp_path / "unsent.jsonl")
    sink.write([Record(0, 0, 0.0, 1.0, None, ("w",), (0.5,))])
    deadline = time.monotonic() + 8
    while recorder_server.points < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    return [r.getMessage() for r in caplog.records]


def test_a_name_in_use_then_free_is_not_called_an_outage(recorder_server: ScriptedServer, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    said = _recovered(recorder_server, tmp_path, caplog, "0e9b289863234cb89a7dd5697572d468")
    assert any("409 run_in_use" in m for m in said)
    assert not any("answers again" in m for m in said), said
    (back,) = [m for m in said if "was in use by another process" in m]
    assert back.startswith("gradhealth recorder: run 'ddp-job' was in use by another process for ")
    assert "went on as a new run 0e9b289863234cb89a7dd5697572d468 of that name" in back


def test_a_run_re_attached_after_the_lease_says_so(recorder_server: ScriptedServer, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    said = _recovered(recorder_server, tmp_path, caplog, HELD)
    (back,) = [m for m in said if "was in use by another process" in m]
    assert f"re-attached to run {HELD}" in back


def test_a_real_outage_keeps_its_words(recorder_server: ScriptedServer, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gradhealth.recorder")
    recorder_server.plan = [(503, b"", "text/plain")]
    sink = HttpSink(recorder_server.url, "r", close_timeout=10, backoff=(0.01, 0.05), spill=tmp_path / "unsent.jsonl")
    sink.write([Record(0, 0, 0.0, 1.0, None, ("w",), (0.5,))])
    sink.close()
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{recorder_server.url} answers again after" in m for m in said), said
    assert not any("in use" in m for m in said)
