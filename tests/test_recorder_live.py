"""The recorder's live mode (issue 11 section 3) against a stand-in of the runs API: a real HTTP
server on a socket of this process (not a mock of httpx) that keeps points by (step, metric) as
the service does, and can be made to fail, to lose its answers, to block or to refuse.

What arrives is compared with the recorder's own file of the same run, which the tests of
tests/test_recorder.py pin against norms computed independently.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torch import nn

from gradhealth.recorder import GradientRecorder, HttpSink, RunRefused


class StandIn:
    """``POST /v1/runs``, ``/v1/runs/{id}/points`` (JSON Lines) and ``/finish``, in memory."""

    def __init__(self) -> None:
        self.points: dict[tuple[float, str], float] = {}
        self.order: list[tuple[float, str]] = []  # first arrival of each point
        self.duplicates = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_next = 0  # answer 503 (before storing) to this many points requests
        self.lose_next = 0  # store, then answer 500 (the answer is lost) this many times
        self.refuse_runs = False  # 401 on POST /v1/runs
        self.block = threading.Event()  # points requests wait on it while ``blocking``
        self.blocking = False
        self.entered = threading.Event()  # a points request is waiting on ``block``
        self.finished = False
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stand_in.requests.append((self.path, dict(self.headers), body))
                if self.path == "/v1/runs":
                    if stand_in.refuse_runs:
                        return self._answer(401, {"title": "unauthorized"})
                    return self._answer(201, {"id": "r1", "status": "active",
                                              **json.loads(body)})
                if self.path == "/v1/runs/r1/finish":
                    stand_in.finished = True
                    return self._answer(200, {"id": "r1", "status": "finished"})
                assert self.path == "/v1/runs/r1/points", self.path
                if stand_in.blocking:
                    stand_in.entered.set()
                    stand_in.block.wait(60)
                with stand_in.lock:
                    if stand_in.fail_next:
                        stand_in.fail_next -= 1
                        return self._answer(503, {"title": "down"})
                    accepted = duplicates = 0
                    for line in body.decode().splitlines():
                        row = json.loads(line)
                        key = (row["step"], row.get("metric") or "grad_norm/" + row["layer"])
                        if key in stand_in.points:
                            duplicates += 1
                        else:
                            accepted += 1
                            stand_in.points[key] = row["value"]
                            stand_in.order.append(key)
                    stand_in.duplicates += duplicates
                    if stand_in.lose_next:
                        stand_in.lose_next -= 1
                        return self._answer(500, {"title": "answer lost"})
                return self._answer(200, {"accepted": accepted, "duplicates": duplicates,
                                          "points": len(stand_in.points)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.block.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    s = StandIn()
    yield s
    s.stop()


def _point_lines(path: Path) -> list[str]:
    """The recorder's file's lines less its own start and end records: the rows it sends."""
    return [line for line in path.read_text().splitlines() if "gradhealth_recorder" not in json.loads(line)]


def _file_points(path: Path) -> list[tuple[tuple[float, str], float]]:
    """The recorder's file as (step, series) -> value, in file order."""
    out = []
    for line in _point_lines(path):
        row = json.loads(line)
        out.append(((row["step"], row.get("metric") or "grad_norm/" + row["layer"]), row["value"]))
    return out


def _train(model: nn.Module, recorder: GradientRecorder, steps: int, start: int = 0) -> None:
    torch.manual_seed(start)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        recorder.step(loss=loss, optimizer=optimizer)
        optimizer.step()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


ROWS_PER_STEP = 3 + 4  # loss, grad_norm, lr + four parameters


def test_every_point_arrives_once_in_order_through_failures_and_lost_answers(stand_in, tmp_path):
    stand_in.fail_next = 3
    stand_in.lose_next = 2
    path = tmp_path / "run.jsonl"
    model = _model()
    rec = GradientRecorder(model, path, server=stand_in.url, run="mlp", api_key="k-123",
                           config={"clip_threshold": 1.0}, flush_interval=0.01)
    rec.live.backoff = (0.01, 0.05)
    _train(model, rec, 40)
    rec.close()
    expected = _file_points(path)
    assert len(expected) == 40 * ROWS_PER_STEP
    assert stand_in.order == [k for k, _ in expected]  # each once, in the file's order
    assert stand_in.points == dict(expected)  # the same values, bit for bit after JSON
    assert stand_in.duplicates > 0  # the batches whose answer was lost came again ...
    assert rec.live.retries == 5  # ... and so did the 503 ones, each after a backoff
    assert rec.live.sent == 40 and rec.live.last_seq == 39
    run_request = stand_in.requests[0]
    assert json.loads(run_request[2]) == {"name": "mlp", "config": {"clip_threshold": 1.0}}
    assert all(h.get("X-API-Key") == "k-123" for _, h, _ in stand_in.requests)
    assert all(h["Content-Type"] == "application/x-ndjson"
               for p, h, _ in stand_in.requests if p.endswith("/points"))
    assert stand_in.finished and rec.live.finished
    assert rec.live.unsent_path is None


def test_a_blocked_service_never_holds_up_the_step_and_the_overflow_spills_to_disk(
        stand_in, tmp_path):
    stand_in.blocking = True
    path = tmp_path / "run.jsonl"
    model = _model()
    rec = GradientRecorder(model, path, server=stand_in.url, run="slow", buffer=8,
                           flush_interval=0)
    _train(model, rec, 1)
    assert stand_in.entered.wait(30)  # the first batch is stuck in the service
    started = time.monotonic()
    _train(model, rec, 99, start=1)  # all of it while the service holds the first batch
    elapsed = time.monotonic() - started
    rec.flush()  # the writer has handed every step to the live sink
    assert not stand_in.block.is_set() and stand_in.points == {}
    spill = rec.live.spill_path
    assert spill == tmp_path / "run.unsent.jsonl" and spill.exists()
    assert rec.live.spilled >= 100 - 2 * 8  # past the buffer, the steps went to disk
    assert elapsed < 60  # 99 steps of a tiny MLP: seconds even on a busy machine, not a timeout
    stand_in.block.set()
    assert rec.live.wait_sent(99, timeout=60)
    rec.close()
    expected = _file_points(path)
    assert len(expected) == 100 * ROWS_PER_STEP
    assert stand_in.order == [k for k, _ in expected]
    assert stand_in.points == dict(expected)
    assert not spill.exists()  # read back and removed once sent


def test_a_service_down_at_close_leaves_the_unsent_steps_in_a_file(tmp_path, caplog):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    path = tmp_path / "run.jsonl"
    model = _model()
    rec = GradientRecorder(model, path, server=url, run="down", close_timeout=1.0, buffer=4)
    rec.live.backoff = (0.01, 0.1)
    _train(model, rec, 30)
    with caplog.at_level(logging.WARNING, logger="gradhealth.recorder"):
        started = time.monotonic()
        rec.close()
        assert time.monotonic() - started < 1.0 + 10  # bounded by close_timeout (+ one request)
    assert rec.live.retries > 0 and rec.live.sent == 0
    unsent = rec.live.unsent_path
    assert unsent == tmp_path / "run.unsent.jsonl"
    # Every step, in order, in the recorder's own format: what the file holds.
    assert unsent.read_text().splitlines() == _point_lines(path)
    assert str(unsent) in caplog.text


def test_a_refusal_stops_the_training_loop_and_keeps_the_points(stand_in, tmp_path):
    stand_in.refuse_runs = True
    path = tmp_path / "run.jsonl"
    model = _model()
    rec = GradientRecorder(model, path, server=stand_in.url, run="nokey", flush_interval=0, on_refused="raise")
    with pytest.raises(RunRefused, match="writer failed.*401") as raised:  # noqa: PT012
        for i in range(200):
            _train(model, rec, 1, start=i)
            time.sleep(0.01)
    assert isinstance(raised.value.__cause__, RunRefused)  # the sending thread's, chained
    assert "401" in str(raised.value.__cause__)
    with pytest.raises(RunRefused, match="writer failed"):
        rec.close()
    kept = rec.live.unsent_path.read_text().splitlines()
    assert kept and kept == _point_lines(path)[:len(kept)]


def test_live_mode_without_a_file(stand_in):
    model = _model()
    rec = GradientRecorder(model, server=stand_in.url, run="nofile", flush_interval=0.01)
    _train(model, rec, 5)
    rec.close()
    assert sorted({step for step, _ in stand_in.points}) == [0, 1, 2, 3, 4]
    assert len(stand_in.points) == 5 * ROWS_PER_STEP
    with pytest.raises(ValueError, match="no path"):
        rec.send(stand_in.url)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "path, a server"),
    ({"server": "http://127.0.0.1:9"}, "run name"),
])
def test_live_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientRecorder(_model(), **kwargs)


def test_the_sink_refuses_a_zero_buffer():
    with pytest.raises(ValueError, match="buffer"):
        HttpSink("http://127.0.0.1:9", "x", buffer=0)
