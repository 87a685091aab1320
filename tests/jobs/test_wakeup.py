"""Wake-ups instead of polling (issue 12 item 3), on SQLite (the local channel between the API and
the workers its Supervisor starts) and on PostgreSQL (LISTEN/NOTIFY).

The liveness checks set the fallback poll far above their bound (60 s against 20 s), so a job that
finishes in time was picked up and announced by a wake-up, not found by a poll; the fallback checks
send no notification at all and set the fallback short. Bounds are generous: these are not
benchmarks (bench/bench_http.py measures the latency)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from gradhealth.db.engine import make_engine, make_sessionmaker
from gradhealth.db.models import JobRow
from gradhealth.jobs import store, wakeup, worker
from gradhealth.jobs.supervisor import Supervisor
from gradhealth.settings import Settings

TINY = {"input": {"shape": [4]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 2}]}
FALLBACK_HUGE = 60.0
BOUND = 20.0  # a third of the fallback: only a wake-up can finish a job this soon


def _submit(factory, request=TINY):  # noqa: ANN001, ANN202
    with factory() as session:
        job, _ = store.submit(session, kind="architecture", owner="t", request=request, idempotency_key=None,
                              time_limit_s=300, max_attempts=1)
        return job.id


def _submit_silently(factory) -> str:  # noqa: ANN001
    """A queued job inserted without any notification: only a poll can find it."""
    now = store.utcnow()
    job_id = uuid.uuid4().hex
    with factory() as session:
        session.add(JobRow(id=job_id, kind="architecture", owner="t", status="queued", request=TINY,
                           request_hash=job_id, progress=0.0, stage="queued", attempts=0, max_attempts=1,
                           time_limit_s=300, cancel_requested=False, created_at=now, updated_at=now))
        session.commit()
    return job_id


def _status(factory, job_id: str) -> str:  # noqa: ANN001
    with factory() as session:
        return store.get(session, job_id, None, with_result=False).status


def _wait_status(factory, job_id: str, timeout: float) -> str:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while (status := _status(factory, job_id)) not in store.TERMINAL and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


class _Collect:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, job_id: str, what: str) -> None:
        self.seen.append((job_id, what))


@pytest.fixture
def collected():  # noqa: ANN201
    got = _Collect()
    wakeup.subscribe(got)
    yield got
    wakeup.unsubscribe(got)


def test_an_announcement_is_delivered_at_commit_and_never_on_rollback(factory, database_url, collected):
    listen = wakeup._Listen(database_url) if wakeup.is_postgres(database_url) else None
    try:
        if listen is not None:
            assert listen.ensure()
        with factory() as session:
            wakeup.notify(session, "dropped", wakeup.QUEUED)
            session.rollback()
            wakeup.notify(session, "kept", wakeup.FINISHED)
            assert collected.seen == []
            if listen is not None:
                assert listen.drain(0.3) == []  # NOTIFY goes out at commit, not before
            session.commit()
        assert collected.seen == [("kept", wakeup.FINISHED)]
        if listen is not None:
            assert listen.drain(5.0) == [("kept", wakeup.FINISHED)]
    finally:
        if listen is not None:
            listen.close()


def test_the_store_announces_queued_and_every_finish(factory, database_url, collected):
    done = _submit(factory)
    cancelled = _submit(factory)
    assert collected.seen == [(done, "queued"), (cancelled, "queued")]
    with factory() as session:
        assert store.claim(session, worker_id="w", lease_s=30).id == done
        store.finish(session, job_id=done, worker_id="w", status="succeeded", result={"status": "healthy"})
        store.cancel_or_delete(session, cancelled)
    assert collected.seen[2:] == [(done, "finished"), (cancelled, "finished")]


def _wait_alive(sup: Supervisor, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sup.alive() < len(sup.slots):
        assert time.monotonic() < deadline
        time.sleep(0.1)


async def _await_finish(hub: wakeup.Hub, factory, job_id: str, bound: float) -> str:  # noqa: ANN001
    """What a ?wait caller does: watch, read, then sleep until woken (the hub's fallback is huge)."""
    deadline = time.monotonic() + bound
    with hub.watch(job_id) as watch:
        status = _status(factory, job_id)
        while status not in store.TERMINAL and time.monotonic() < deadline:
            await watch.wait(min(hub.fallback_s, deadline - time.monotonic()))
            status = _status(factory, job_id)
    return status


def test_an_idle_worker_and_a_waiting_caller_are_woken_not_polled(database_url):
    """SQLite: the Supervisor gives its workers a channel to the hub. PostgreSQL: no local channel
    at all (as for workers on another host): the workers and the hub LISTEN."""
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    local = not wakeup.is_postgres(database_url)
    hub = wakeup.Hub(database_url, fallback_s=FALLBACK_HUGE)
    hub.start()
    settings = Settings(database_url=database_url, verify_remedies=False, job_wake_fallback_s=FALLBACK_HUGE)
    sup = Supervisor(database_url, processes=1, lease_s=600, settings=settings, wake=hub if local else None)
    sup.start()
    try:
        _wait_alive(sup)
        # The first job of a worker imports torch: not part of what is measured.
        assert _wait_status(factory, _submit(factory), 300) == "succeeded"
        deadline = time.monotonic() + 30
        while not hub.covered:  # PostgreSQL: the hub's LISTEN connection is up
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # the worker is idle now, in a wait of FALLBACK_HUGE
        silent = _submit_silently(factory)
        time.sleep(1.5)
        assert _status(factory, silent) == "queued"  # nothing polls: this job waits for a wake-up
        started = time.monotonic()
        announced = _submit(factory)
        status = asyncio.run(_await_finish(hub, factory, announced, BOUND))
        took = time.monotonic() - started
        assert status == "succeeded" and took < BOUND
        assert _status(factory, silent) == "succeeded"  # the wake-up claims the oldest first
    finally:
        sup.stop()
        hub.stop()
        engine.dispose()


def test_a_lost_wake_up_is_recovered_by_the_fallback_poll(factory, database_url):
    """A worker whose channel never says anything still finds a job within its fallback interval,
    and a ?wait caller whose job finishes unannounced still sees it."""
    wake_r, wake_w = mp.Pipe(duplex=False)
    done_r, done_w = mp.Pipe(duplex=False)
    ends = wakeup.WorkerEnds(wake_r, done_w)
    stop = threading.Event()
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="fallback", lease_s=60,
                              settings=Settings(database_url=database_url, verify_remedies=False),
                              fallback_s=0.5)
    thread = threading.Thread(target=worker.worker_loop, args=(cfg, stop, ends), daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # idle, waiting on a channel that stays silent
        job_id = _submit_silently(factory)
        assert _wait_status(factory, job_id, 300) == "succeeded"
    finally:
        stop.set()
        thread.join(30)
        for conn in (wake_r, wake_w, done_r, done_w):
            conn.close()
    assert not thread.is_alive()

    # The ?wait side: a hub that believes finishes are announced (a worker attached), a job that
    # finishes without a word.
    from gradhealth.api.routers.checks import wait_for

    hub = wakeup.Hub(database_url, fallback_s=0.3)
    api_r, api_w = mp.Pipe(duplex=False)
    wake_r2, wake_w2 = mp.Pipe(duplex=False)
    hub.attach(wakeup.ApiEnds(wake_w2, api_r))
    assert hub.covered
    job_id = _submit_silently(factory)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(sessions=factory, wakeup=hub)))

    async def finish_later_and_wait() -> tuple[str, float]:
        async def finish() -> None:
            await asyncio.sleep(0.3)
            with factory() as session:  # no store.finish: no announcement
                session.execute(update(JobRow).where(JobRow.id == job_id).values(status="succeeded"))
                session.commit()

        started = time.monotonic()
        task = asyncio.create_task(finish())
        row = await wait_for(request, job_id, "t", 60.0)
        await task
        return row.status, time.monotonic() - started

    try:
        status, took = asyncio.run(finish_later_and_wait())
    finally:
        api_w.close()  # the reader thread ends at end of file
        hub.stop()
        wake_r2.close()
    assert status == "succeeded" and took < 30


def test_a_watch_begun_just_after_the_finish_starts_fired() -> None:
    """?wait skips re-reading the job it just queued: a finish announced in between must not be lost."""
    hub = wakeup.Hub("sqlite://", fallback_s=FALLBACK_HUGE)

    async def both() -> tuple[bool, bool]:
        hub.deliver("early", wakeup.FINISHED)
        with hub.watch("early") as early, hub.watch("other") as other:
            return await early.wait(5.0), await other.wait(0.05)

    assert asyncio.run(both()) == (True, False)


def test_a_queued_job_wakes_one_idle_worker_not_all() -> None:
    """Workers share one wake pipe of tokens: one per queued job, taken by one worker; a worker that
    claims without a token (straight after its previous job) retires one."""
    reader, writer = wakeup.wake_pipe(mp.get_context("spawn"))
    first = wakeup.IdleWait("sqlite://", wakeup.WorkerEnds(reader, writer))
    second = wakeup.IdleWait("sqlite://", wakeup.WorkerEnds(reader, writer))
    try:
        hub = wakeup.Hub("sqlite://")
        hub.attach(wakeup.ApiEnds(writer, mp.Pipe(duplex=False)[0]))
        hub._wake_workers()
        assert first.wait(5.0) is True
        assert second.wait(0.2) is False  # the token is spent: no empty claim for this one
        first.claimed()  # the token it took pays for the claim
        hub._wake_workers()
        second.claimed()  # claimed straight after a job, unwoken: retires the token
        assert first.wait(0.2) is False
    finally:
        first.close()
        second.close()
        reader.close()
        writer.close()
