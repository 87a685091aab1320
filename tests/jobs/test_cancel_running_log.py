"""errsweep: DELETE /v1/jobs/{id} on a running log check recorded the request, but the job ran on
to its end and finished failed or succeeded minutes later. Now a real worker stops a log check
within its next heartbeat and tick, and a worker whose job does not stop at all (stuck in one
call, here a stopped process) is killed by the supervisor after ``job_cancel_grace_s``, the job
ending cancelled (not failed, not requeued) and a fresh worker taking its place."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.jobs import store
from gradhealth.jobs.supervisor import Supervisor
from gradhealth.settings import Settings

# 20 s of reading or more (a console log the text reader parses line by line): a job that ran to
# its end before stopping is told from one stopped at its next tick by far more than any load adds
LINES = 400_000


def _slow_log(path: Path) -> Path:
    with path.open("w") as f:
        f.writelines(f"epoch {i // 1000} step {i} loss {1 / (1 + i * 1e-3):.5f} grad_norm "
                     f"{0.5 + 0.01 * (i % 7):.4f} lr 0.001\n" for i in range(LINES))
    return path


def _until(what, timeout: float, every: float = 0.02):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    return what()


def _start(tmp_path: Path, grace_s: float, lease_s: float = 600) -> tuple[Supervisor, object, str]:
    url = f"sqlite:///{tmp_path}/cancel.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    settings = Settings(database_url=url, worker_preload=False, job_cancel_grace_s=grace_s)
    log = _slow_log(tmp_path / "train.log")
    sup = Supervisor(url, processes=1, lease_s=lease_s, settings=settings)
    sup.start()
    with factory() as session:
        job, _ = store.submit(session, kind="logs", owner="t", request={"path": str(log)}, idempotency_key=None,
                              time_limit_s=600, max_attempts=3)
    return sup, factory, job.id


def _status(factory, job_id: str):  # noqa: ANN001, ANN202
    with factory() as session:
        return store.get(session, job_id, None, with_result=False)


def test_a_running_log_check_stops_at_its_next_tick_when_cancelled(tmp_path):
    # only the job's own ticks can stop it here; a heartbeat every second (lease_s / 3)
    sup, factory, job_id = _start(tmp_path, grace_s=300, lease_s=3)
    try:
        assert _until(lambda: _status(factory, job_id).status == "running", 60)
        pid = sup.slots[0].process.pid
        with factory() as session:
            assert store.cancel_or_delete(session, job_id) == "cancel_requested"
        asked = time.monotonic()
        done = _until(lambda: _status(factory, job_id).status in store.TERMINAL, 30)
        job = _status(factory, job_id)
        assert done and job.status == "cancelled", (job.status, job.stage, job.error)
        # the heartbeat (every 1 s) and the next tick (0.25 s), with a generous margin for a busy host;
        # the whole read takes twice this at least
        assert time.monotonic() - asked < 10
        assert sup.slots[0].process.pid == pid and sup.slots[0].cancel_kills == 0  # the worker goes on
    finally:
        sup.stop()


def test_a_worker_that_ignores_a_cancel_is_replaced_after_the_grace_period(tmp_path):
    grace = 1.0
    sup, factory, job_id = _start(tmp_path, grace_s=grace)
    try:
        assert _until(lambda: _status(factory, job_id).status == "running", 60)
        slot = sup.slots[0]
        pid = slot.process.pid
        # a job that never reaches its progress callback again (one long C call, a hung read): its
        # worker process stopped outright, heartbeat and all
        os.kill(pid, signal.SIGSTOP)
        with factory() as session:
            assert store.cancel_or_delete(session, job_id) == "cancel_requested"
        asked = time.monotonic()
        # the supervisor looks every second: the request seen within 1 s, the worker killed at grace
        assert _until(lambda: _status(factory, job_id).status in store.TERMINAL, grace + 20)
        took = time.monotonic() - asked
        job = _status(factory, job_id)
        assert (job.status, job.stage, job.error, job.attempts) == ("cancelled", "cancelled", None, 1)
        assert took < grace + 20
        assert _until(lambda: slot.process.pid != pid and slot.process.is_alive(), 30)
        assert slot.cancel_kills == 1 and slot.restarts == 0  # replaced at the user's request, not a crash
        assert sup.alive() == 1
    finally:
        sup.stop()


def test_a_cancelled_job_is_left_to_stop_by_itself_within_the_grace_period(tmp_path):
    from datetime import timedelta

    from sqlalchemy import update

    from gradhealth.db.models import JobRow

    url = f"sqlite:///{tmp_path}/grace.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    sup = Supervisor(url, processes=1, lease_s=600, settings=Settings(database_url=url, worker_preload=False,
                                                                     job_cancel_grace_s=300))
    sup.start()
    try:
        assert _until(lambda: sup.alive() == 1, 60)
        slot = sup.slots[0]
        pid = slot.process.pid
        with factory() as session:  # a job this worker holds, asked to stop a moment ago
            job, _ = store.submit(session, kind="nothing-runs-this", owner="t", request={}, idempotency_key=None,
                                  time_limit_s=600, max_attempts=3)
            now = store.utcnow()
            session.execute(update(JobRow).where(JobRow.id == job.id).values(
                status="running", lease_owner=slot.worker_id, attempts=1, started_at=now,
                lease_expires_at=now + timedelta(seconds=600), cancel_requested=True))
            session.commit()
        sup.check_once()
        sup.check_once()
        assert slot.process.pid == pid and slot.cancel_kills == 0  # 300 s to stop by itself
        assert _status(factory, job.id).status == "running"
    finally:
        sup.stop()
