"""newuser18 #7: a job's progress reached the store only at its lease renewals (every lease_s / 3, at
most 2 s), so a 1.5 s first seed showed as one jump from 0 to 0.5. A moved progress is stored within
PROGRESS_EVERY_S of the move."""

from __future__ import annotations

import time

import pytest

from gradhealth.jobs import worker
from gradhealth.jobs.worker import PROGRESS_EVERY_S, Heart, WorkerConfig, _Running
from gradhealth.settings import Settings


def test_a_moved_progress_is_stored_well_before_the_next_renewal(monkeypatch: pytest.MonkeyPatch) -> None:
    stored: list[tuple[float, float, str]] = []
    monkeypatch.setattr(worker, "_beat", lambda factory, cfg, running: (
        stored.append((time.monotonic(), running.progress, running.stage)),
        setattr(running, "stored", (running.progress, running.stage))))
    cfg = WorkerConfig(database_url="sqlite://", lease_s=30.0, settings=Settings())  # renewals every 2 s
    heart = Heart(lambda: None, cfg)  # type: ignore[arg-type]  # _beat is replaced: no session is made
    try:
        running = _Running("job", 60.0)
        heart.current = running
        time.sleep(3 * PROGRESS_EVERY_S)
        assert stored == []  # nothing moved, the renewal is 2 s away: no write
        moved = time.monotonic()
        running.check(0.5, "simulating seed 2 of 2")
        deadline = moved + 1.0
        while not stored and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored and stored[0][1:] == (0.5, "simulating seed 2 of 2")
        assert stored[0][0] - moved < 1.0 < worker._beat_every(cfg)
    finally:
        heart.stop()


def test_an_unmoved_progress_waits_for_the_renewal() -> None:
    cfg = WorkerConfig(database_url="sqlite://", lease_s=30.0, settings=Settings())
    running = _Running("job", 60.0)
    assert not worker._due(running, 0.3, cfg) and worker._due(running, 2.0, cfg)
    running.check(0.1, "reading the log")
    assert worker._due(running, 0.3, cfg)
