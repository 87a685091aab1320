"""A log check meets its progress callback (and so a job's cancellation) inside the readers' loops
over lines, records and points and between rules, not only at its three stages: a cancelled log
check stopped only after the whole read (minutes for a large upload) and ended failed or succeeded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gradhealth.core import ticks
from gradhealth.jobs.kinds import run_logs
from gradhealth.jobs.worker import JobStopped, _Running
from gradhealth.settings import Settings

ROWS = 3000


def _console(path: Path) -> Path:
    with path.open("w") as f:
        for i in range(ROWS):
            f.write(f"epoch {i // 100} step {i} loss {1 / (1 + i * 1e-3):.5f} grad_norm {0.5 + 0.01 * (i % 7):.4f}\n")
    return path


def _csv(path: Path) -> Path:
    with path.open("w") as f:
        f.write("step,loss,grad_norm\n")
        f.writelines(f"{i},{1 / (1 + i * 1e-3):.5f},{0.5 + 0.01 * (i % 7):.4f}\n" for i in range(ROWS))
    return path


def _jsonl(path: Path) -> Path:
    with path.open("w") as f:
        f.writelines(json.dumps({"step": i, "loss": 1 / (1 + i * 1e-3)}) + "\n" for i in range(ROWS))
    return path


@pytest.fixture(autouse=True)
def every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ticks, "TICK_S", 0.0)  # report at every tick: the test needs no slow log


@pytest.mark.parametrize("make", [_console, _csv, _jsonl], ids=["console", "csv", "jsonl"])
def test_a_cancelled_log_check_stops_inside_the_read(tmp_path, make):
    path = make(tmp_path / {"_console": "train.log", "_csv": "metrics.csv", "_jsonl": "metrics.jsonl"}[make.__name__])
    running = _Running("job", time_limit_s=600, kind="logs")
    stages: list[str] = []

    def check(fraction: float, stage: str) -> None:
        stages.append(stage)
        running.check(fraction, stage)
        running.cancelled = True  # what the heartbeat sets once the row says cancel requested

    with pytest.raises(JobStopped) as stopped:
        run_logs({"path": str(path)}, check, Settings())
    assert stopped.value.status == "cancelled"
    # stopped while reading, at the first tick after the request: the read never reached its end
    assert stages[-1] == "reading the log" and len(stages) == 2


def test_a_cancelled_log_check_stops_between_rules(tmp_path):
    path = _csv(tmp_path / "metrics.csv")
    running = _Running("job", time_limit_s=600, kind="logs")
    stages: list[str] = []

    def check(fraction: float, stage: str) -> None:
        stages.append(stage)
        running.check(fraction, stage)
        if "diagnosing" in stage:
            running.cancelled = True

    with pytest.raises(JobStopped) as stopped:
        run_logs({"path": str(path)}, check, Settings())
    assert stopped.value.status == "cancelled"
    assert stages[-1] == "read 2 series; diagnosing" and "done" not in stages


def test_ticks_without_a_callback_do_nothing_and_restore_the_outer_one():
    seen: list[str] = []
    ticks.tick()  # nothing set: a no-op
    assert ticks.armed == 0  # the hot loops skip tick() altogether
    with ticking_of(seen, "outer"):
        assert ticks.armed == 1
        with ticks.ticking(None, 0.5, "inner"):
            assert ticks.armed == 1  # a block without a callback arms nothing
            ticks.tick()
        ticks.tick()
    assert ticks.armed == 0
    ticks.tick()
    assert seen == ["outer"]


def ticking_of(seen: list[str], stage: str):  # noqa: ANN201
    return ticks.ticking(lambda fraction, s: seen.append(s), 0.1, stage)


def test_a_tick_reports_at_most_every_tick_s(monkeypatch):
    monkeypatch.setattr(ticks, "TICK_S", 3600.0)
    seen: list[str] = []
    with ticking_of(seen, "reading"):
        started = time.perf_counter()
        for _ in range(100_000):
            ticks.tick()
        spent = time.perf_counter() - started
    assert seen == []  # within TICK_S of the start: no report
    assert spent < 2.0  # a few hundred nanoseconds a tick, generously bounded
