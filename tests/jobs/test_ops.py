"""Issue 13, operations: a graceful stop (SIGTERM) hands a running job back without using up an
attempt; uploads no job holds, and those of long-finished jobs, are reaped; workers are recycled
after ``worker_max_jobs`` jobs."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.db.models import JobRow
from gradhealth.jobs import store
from gradhealth.jobs.retention import UploadSweeper
from gradhealth.jobs.supervisor import Supervisor
from gradhealth.settings import Settings
from tests.helpers import aged_upload

TINY = {"input": {"shape": [4]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 2}]}
# Several seconds of work on one core: long enough to be caught in the middle.
SLOW = {"input": {"shape": [300, 16]}, "seeds": 6, "batch_size": 64, "name": "slow",
        "layers": [{"type": "rnn", "hidden_size": 128}, {"type": "linear", "out_features": 4}]}


def _submit(session, request=TINY, kind: str = "architecture") -> str:  # noqa: ANN001
    return store.submit(session, kind=kind, owner="t", request=request, idempotency_key=None,
                        time_limit_s=600, max_attempts=3)[0].id


# --- 1. a graceful stop gives the attempt back ---------------------------------------------------

def test_requeue_stopped_gives_the_attempt_back(factory) -> None:  # noqa: ANN001
    with factory() as session:
        job_id = _submit(session)
        assert store.claim(session, worker_id="w1", lease_s=60).attempts == 1
        assert not store.requeue_stopped(session, job_id=job_id, worker_id="someone-else")
        assert store.requeue_stopped(session, job_id=job_id, worker_id="w1")
        job = store.get(session, job_id, None)
        assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
        assert not store.requeue_stopped(session, job_id=job_id, worker_id="w1")  # not running any more
        # Three graceful stops in a row: the job is still there to be run, with every attempt left.
        for _ in range(3):
            store.claim(session, worker_id="w2", lease_s=60)
            assert store.requeue_stopped(session, job_id=job_id, worker_id="w2")
        assert store.get(session, job_id, None).attempts == 0
        # A job asked to stop ends cancelled rather than queued again.
        store.claim(session, worker_id="w3", lease_s=60)
        assert store.cancel_or_delete(session, job_id) == "cancel_requested"
        assert store.requeue_stopped(session, job_id=job_id, worker_id="w3")
        assert store.get(session, job_id, None).status == "cancelled"


def _wait(predicate, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_stopping_the_supervisor_mid_job_does_not_use_up_an_attempt(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/stop.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    with factory() as session:
        job_id = _submit(session, SLOW)
    sup = Supervisor(url, processes=1, lease_s=600)  # no lease expiry could requeue it in this test
    sup.start()
    try:
        def running() -> bool:
            with factory() as session:
                job = store.get(session, job_id, None)
                return job.status == "running" and job.stage not in ("starting",)
        _wait(running)
    finally:
        sup.stop(timeout=30)
    with factory() as session:
        job = store.get(session, job_id, None)
    # Before: the supervisor killed it and the lease reaper requeued it with attempts == 1.
    assert job.status == "queued", (job.status, job.stage)
    assert job.attempts == 0 and "stopped" in job.stage
    assert sup.slots[0].process.exitcode == 0  # it left on SIGTERM by itself, not killed


# --- 2. upload retention --------------------------------------------------------------------------



def test_uploads_without_a_job_and_of_long_finished_jobs_are_reaped(factory, tmp_path) -> None:  # noqa: ANN001
    uploads = tmp_path / "uploads"
    orphan_old = aged_upload(uploads, "a" * 32, age_s=2 * store.ORPHAN_GRACE_S)  # a killed server's partial upload
    orphan_new = aged_upload(uploads, "b" * 32)  # may still be streaming in
    queued = aged_upload(uploads, "c" * 32, age_s=30 * 86400)
    old_done = aged_upload(uploads, "d" * 32, age_s=30 * 86400)
    new_done = aged_upload(uploads, "e" * 32, age_s=30 * 86400)
    with factory() as session:
        ids = {p: _submit(session, {"path": str(p), "format": None}, kind="logs")
               for p in (queued, old_done, new_done)}
        now = store.utcnow()
        for path, ago in ((old_done, timedelta(days=8)), (new_done, timedelta(days=6))):
            session.execute(update(JobRow).where(JobRow.id == ids[path]).values(
                status="succeeded", finished_at=now - ago))
        session.commit()
        week = 7 * 86400.0
        assert store.reap_uploads(session, uploads, retention_s=0) == 1  # 0: finished jobs keep theirs
        assert not orphan_old.parent.exists()
        assert store.reap_uploads(session, uploads, retention_s=week) == 1
    remaining = sorted(p.name for p in uploads.iterdir())
    assert remaining == sorted(p.parent.name for p in (orphan_new, queued, new_done))
    assert store.reap_uploads(factory(), tmp_path / "none", retention_s=week) == 0


def test_the_sweeper_reaps_uploads_with_its_settings(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/reap.db"
    migrate(url)
    settings = Settings(database_url=url, upload_dir=str(tmp_path / "up"), upload_retention_s=60)
    orphan = aged_upload(tmp_path / "up", "f" * 32, age_s=2 * store.ORPHAN_GRACE_S)
    engine = make_engine(url)
    try:  # not started: one sweep called directly
        assert UploadSweeper(make_sessionmaker(engine), settings).sweep_once() == 1
        assert not orphan.parent.exists()
    finally:
        engine.dispose()


# --- 6. recycling ---------------------------------------------------------------------------------

def test_a_worker_is_replaced_after_worker_max_jobs(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path}/recycle.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    settings = Settings(database_url=url, upload_dir=str(tmp_path), worker_max_jobs=2)
    sup = Supervisor(url, processes=1, lease_s=30, settings=settings)
    sup.start()
    try:
        slot = sup.slots[0]
        first_pid = slot.process.pid
        with factory() as session:
            ids = [_submit(session) for _ in range(2)]

        def done(job_ids: list[str]) -> bool:
            with factory() as session:
                return all(store.get(session, j, None).status == "succeeded" for j in job_ids)
        _wait(lambda: done(ids))
        _wait(lambda: slot.process.pid != first_pid)
        assert slot.recycled == 1 and slot.restarts == 0  # planned, not a crash
        with factory() as session:  # the fresh process takes the next job
            third = _submit(session)
        _wait(lambda: done([third]))
        assert sup.alive() == 1
    finally:
        sup.stop(timeout=30)


def test_a_worker_that_keeps_gpu_memory_after_a_job_leaves_to_be_replaced(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # No GPU here: the allocator's figure is what the worker reads after each job, so it is set.
    import threading

    from gradhealth.jobs import worker

    url = f"sqlite:///{tmp_path}/gpu.db"
    migrate(url)
    factory = make_sessionmaker(make_engine(url))
    with factory() as session:
        ids = [_submit(session) for _ in range(2)]
    settings = Settings(database_url=url, upload_dir=str(tmp_path), worker_max_gpu_bytes=1000)
    monkeypatch.setattr(worker, "gpu_bytes_kept", lambda: 5000)
    stop = threading.Event()
    backstop = threading.Timer(30, stop.set)  # without the rule the loop would serve on: end it anyway
    backstop.start()
    try:
        worker.worker_loop(worker.WorkerConfig(url, settings=settings, poll_s=0.05), stop=stop)
    finally:
        backstop.cancel()
    with factory() as session:
        statuses = [store.get(session, j, None).status for j in ids]
    assert sorted(statuses) == ["queued", "succeeded"]  # one job, then out: the next process takes the rest
    assert not stop.is_set()  # it left by itself, not at the backstop


def test_gpu_bytes_kept_is_zero_where_cuda_was_never_used() -> None:
    from gradhealth.jobs.worker import gpu_bytes_kept

    assert gpu_bytes_kept() == 0
