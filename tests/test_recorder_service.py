"""Live mode against the real service (issue 11 section 3): a real training loop streams to
`gradhealth serve` (a subprocess on a free port with a temporary SQLite database), the service is
killed with SIGKILL mid-run and started again on the same database and port, the training process
"restarts" (a second recorder re-attaches to the run by its name), and every step's points are in
the database exactly once, with the values of the recorder's own files.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import torch
from torch import nn

from gradhealth.recorder import GradientRecorder
from tests.e2e.helpers import env_for, free_port, start_server, stop, wait_ready


class Service:
    """`gradhealth serve` in its own process group, startable again on the same port and DB;
    ``extra``: settings beside the defaults (``GRADHEALTH_RUN_MAX_BATCH_POINTS="5"``)."""

    def __init__(self, tmp: Path, **extra: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "runs.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.extra = extra

    def start(self) -> None:
        self.starts += 1
        env = env_for(f"sqlite:///{self.db}", GRADHEALTH_UPLOAD_DIR=str(self.tmp / "uploads"),
                      GRADHEALTH_WORKERS="1", **self.extra)
        self.proc = start_server(env, self.logfile, self.port)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            wait_ready(self.proc, client, self.logfile, timeout=120)

    @property
    def logfile(self) -> Path:
        return self.tmp / f"serve{self.starts}.log"

    def log(self) -> str:
        return self.logfile.read_text()[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop(self.proc, sig)


def small_model() -> nn.Module:
    """The recorder tests' model: 4 parameters, so a step records 3 + 4 rows."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))


def train_recorded(model: nn.Module, rec: GradientRecorder, steps: range, *,
                   optimizer: torch.optim.Optimizer | None = None,
                   batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """Train ``model`` on one fixed batch for ``steps``, recording each step: by ``optimizer`` and on
    ``batch`` where given (a run continued across restarts keeps both), else a fresh SGD at 0.01 on a
    fresh batch of 16."""
    optimizer = optimizer if optimizer is not None else torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch if batch is not None else (torch.randn(16, 6), torch.randn(16, 1))
    for step in steps:
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        rec.step(loss=loss, optimizer=optimizer, step=step)
        optimizer.step()


#: Rows one logged step of :func:`small_model` writes: loss, grad_norm, lr and its 4 parameters.
ROWS_PER_STEP = 3 + 4


@pytest.fixture
def service(tmp_path):
    # one per test here (they restart and stop it); tests/conftest.py shares one per module elsewhere
    s = Service(tmp_path)
    s.start()
    yield s
    s.stop()


def _file_points(path: Path) -> dict[tuple[float, str], float]:
    out: dict[tuple[float, str], float] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "gradhealth_recorder" in row:  # the recorder's start and end records: no point
            continue
        key = (row["step"], row.get("metric") or "grad_norm/" + row["layer"])
        assert key not in out
        out[key] = row["value"]
    return out


def test_a_service_killed_and_restarted_mid_run_gets_every_point_exactly_once(service, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch = torch.randn(32, 6), torch.randn(32, 1)

    def train(rec: GradientRecorder, steps: range) -> None:
        train_recorded(model, rec, steps, optimizer=optimizer, batch=batch)

    first = GradientRecorder(model, tmp_path / "part1.jsonl", server=service.url, run="restarts",
                             config={"clip_threshold": 5.0}, flush_interval=0.05,
                             finish_on_close=False, close_timeout=120)
    first.live.backoff = (0.05, 0.5)
    train(first, range(0, 20))
    assert first.live.wait_sent(19, timeout=120), service.log()
    service.stop(signal.SIGKILL)  # no goodbye: whatever it was doing is cut off
    train(first, range(20, 40))
    first.flush()
    time.sleep(0.5)
    assert first.live.last_seq == 19 and first.live.retries > 0  # nothing sent while down
    service.start()  # same database, same port
    train(first, range(40, 60))
    first.close()  # sends what is left, leaves the run active
    assert first.live.unsent_path is None and not first.live.finished
    run_id = first.live.run_id

    # The training process starts again: a new recorder re-attaches to the active run by name.
    second = GradientRecorder(model, tmp_path / "part2.jsonl", server=service.url,
                              run="restarts", flush_interval=0.05, close_timeout=120)
    train(second, range(60, 80))
    second.close()
    assert second.live.run_id == run_id and second.live.finished

    with httpx.Client(base_url=service.url, timeout=30) as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    rows_per_step = 3 + 4
    assert run["status"] == "finished" and run["points"] == 80 * rows_per_step, run
    assert run["last_step"] == 79
    service.stop()
    expected = _file_points(tmp_path / "part1.jsonl") | _file_points(tmp_path / "part2.jsonl")
    assert len(expected) == 80 * rows_per_step
    with sqlite3.connect(service.db) as db:
        stored = db.execute("SELECT step, metric, value, special FROM run_points WHERE run_id = ?",
                            (run_id,)).fetchall()
    assert len(stored) == len(expected)  # once each: (run, metric, step) is the table's key
    assert all(special == 0 for *_, special in stored)
    assert {(step, metric): value for step, metric, value, _ in stored} == expected
