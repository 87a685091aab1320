"""The supervisor: a worker past its job's time limit is killed and replaced, and the job fails
with the reason; a worker that dies is replaced and its job requeued at once."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.db.models import JobRow
from gradhealth.jobs import store
from gradhealth.jobs.supervisor import Supervisor

TINY = {"input": {"shape": [4]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 2}]}


def _wait_alive(sup: Supervisor, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sup.alive() < len(sup.slots):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _running_job(factory, worker_id: str, *, started_ago: float, limit: float,  # noqa: ANN001
                 kind: str = "nothing-runs-this") -> str:
    """A job that this worker holds, as if it had started ``started_ago`` seconds ago."""
    with factory() as session:
        job, _ = store.submit(session, kind=kind, owner="t", request=TINY, idempotency_key=None,
                              time_limit_s=limit, max_attempts=3)
        now = store.utcnow()
        session.execute(update(JobRow).where(JobRow.id == job.id).values(
            status="running", lease_owner=worker_id, attempts=1, started_at=now - timedelta(seconds=started_ago),
            lease_expires_at=now + timedelta(seconds=600)))
        session.commit()
        return job.id


def test_a_worker_past_the_time_limit_is_killed_and_replaced(tmp_path):
    url = f"sqlite:///{tmp_path}/sup.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    sup = Supervisor(url, processes=1, lease_s=600, grace_s=1)
    sup.start()
    try:
        _wait_alive(sup)
        slot = sup.slots[0]
        old_pid, old_id = slot.process.pid, slot.worker_id
        fresh = _running_job(factory, old_id, started_ago=1, limit=600)
        sup.check_once()
        assert slot.process.pid == old_pid  # within its limit: left alone
        overdue = _running_job(factory, old_id, started_ago=100, limit=10, kind="logs")
        sup.check_once()
        assert slot.process.pid != old_pid and slot.restarts == 1
        with factory() as session:
            job = store.get(session, overdue, None)
            assert job.status == "failed" and job.error["type"].endswith("time-limit")
            assert "10 s" in job.error["detail"]
            # the advice fits the job: a log upload has no spec to make smaller
            assert "smaller upload" in job.error["detail"] and "spec" not in job.error["detail"]
        _wait_alive(sup)
        assert fresh  # the other job's fate is the lease's business, not the time limit's
    finally:
        sup.stop()


def test_a_dead_worker_is_replaced_and_its_job_requeued(tmp_path):
    url = f"sqlite:///{tmp_path}/dead.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    sup = Supervisor(url, processes=1, lease_s=600)
    sup.start()
    try:
        _wait_alive(sup)
        slot = sup.slots[0]
        job_id = _running_job(factory, slot.worker_id, started_ago=1, limit=600)
        slot.process.kill()
        slot.process.join(10)
        sup.check_once()
        _wait_alive(sup)
        assert slot.restarts == 1
        with factory() as session:
            job = store.get(session, job_id, None)
            assert job.status == "queued" and "requeued" in job.stage
    finally:
        sup.stop()


def test_a_crash_looping_worker_is_not_counted_as_alive(tmp_path):
    url = f"sqlite:///{tmp_path}/loop.db"
    migrate(url)
    sup = Supervisor(url, processes=1, lease_s=600)
    sup.start()
    try:
        _wait_alive(sup)
        for _ in range(3):
            sup.slots[0].process.kill()
            sup.slots[0].process.join(10)
            sup.check_once()
        assert sup.slots[0].restarts == 3 and sup.alive() == 0  # readyz reports "no worker"
        # Once the new process stays up, it is ready again without waiting out the minute
        # (it was 503 for 50 s while jobs already ran).
        sup.stable_s = 1.0
        time.sleep(1.2)
        assert sup.slots[0].process.is_alive() and sup.alive() == 1
    finally:
        sup.stop()


def test_workers_run_jobs_with_the_supervisors_settings_not_the_environment(tmp_path, monkeypatch):
    from gradhealth.settings import Settings

    # Eight sigmoid layers with a small init: the gradient ratio is ~1e-13, a vanishing error at the
    # default thresholds and at the environment's below; the settings handed over say "never".
    vanishing = {"input": {"shape": [32]}, "seeds": 1, "batch_size": 32,
                 "layers": [{"type": "linear", "out_features": 32, "activation": "sigmoid",
                             "init": {"scheme": "normal", "std": 0.05}, "repeat": 8},
                            {"type": "linear", "out_features": 4}]}
    monkeypatch.setenv("GRADHEALTH_THRESHOLDS__VANISHING_WARNING", "0.5")  # the spawned worker inherits it
    url = f"sqlite:///{tmp_path}/settings.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    given = Settings(database_url=url, verify_remedies=False,
                     thresholds={"vanishing_warning": 1e-30, "vanishing_error": 1e-31})
    with factory() as session:
        job, _ = store.submit(session, kind="architecture", owner="t", request=vanishing, idempotency_key=None,
                              time_limit_s=300, max_attempts=1)
    sup = Supervisor(url, processes=1, lease_s=600, settings=given)
    sup.start()
    try:
        deadline = time.monotonic() + 300
        while True:
            with factory() as session:
                done = store.get(session, job.id, None)
                if done.status in store.TERMINAL:
                    break
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)
    finally:
        sup.stop()
    assert done.status == "succeeded", done.error
    codes = [f["code"] for f in done.result["findings"]]
    assert "vanishing_gradient" not in codes, codes
    # The control: the same spec under the environment's settings does vanish.
    from gradhealth.library import check_architecture

    control = check_architecture(vanishing, verify=False)
    assert "vanishing_gradient" in [f.code for f in control.findings]
