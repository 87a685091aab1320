"""The job state machine (gradhealth.jobs.store) and one worker pass, on SQLite and on PostgreSQL.

Every test runs twice through the ``database_url`` fixture (tests/pg.py): ``[sqlite]`` and
``[postgresql]``, each on a fresh migrated database.
"""

from __future__ import annotations

import base64
import threading
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from gradhealth.db.models import JobRow
from gradhealth.jobs import store, worker
from gradhealth.jobs.store import as_utc, utcnow

TINY_SPEC = {
    "input": {"shape": [8]},
    "seeds": 1,
    "layers": [
        {"type": "linear", "out_features": 8, "activation": "relu", "init": "kaiming_normal", "repeat": 3},
        {"type": "linear", "out_features": 3},
    ],
}


def submit(session, *, owner: str = "alice", kind: str = "architecture", request: Any = None,
           key: str | None = None, time_limit_s: float = 600.0, max_attempts: int = 3):
    """store.submit with defaults; the job comes back as its id only (``.id``): the store's own
    rollbacks expire the rows it hands out, which then cannot load once their session is closed."""
    job, created = store.submit(session, kind=kind, owner=owner, request={"n": 0} if request is None else request,
                                idempotency_key=key, time_limit_s=time_limit_s, max_attempts=max_attempts)
    return SimpleNamespace(id=job.id), created


def row(factory, job_id: str) -> JobRow | None:
    """The job as stored now, read in a session of its own."""
    with factory() as session:
        return session.get(JobRow, job_id)


def expire_lease(factory, job_id: str) -> None:
    with factory() as session:
        session.execute(update(JobRow).where(JobRow.id == job_id)
                        .values(lease_expires_at=utcnow() - timedelta(seconds=30)))
        session.commit()


# --- submit and idempotency ----------------------------------------------------------------------

def test_submit_queues_a_job(factory):
    with factory() as session:
        job, created = submit(session, request={"a": 1}, max_attempts=2, time_limit_s=30)
    assert created
    stored = row(factory, job.id)
    assert (stored.status, stored.stage, stored.progress, stored.attempts) == ("queued", "queued", 0.0, 0)
    assert (stored.kind, stored.owner, stored.request) == ("architecture", "alice", {"a": 1})
    assert (stored.max_attempts, stored.time_limit_s, stored.cancel_requested) == (2, 30.0, False)
    assert stored.lease_owner is None and stored.started_at is None and stored.result is None
    with factory() as session:
        assert store.get(session, job.id, "alice").id == job.id
        assert store.get(session, job.id, None).id == job.id
        assert store.get(session, job.id, "mallory") is None
        assert store.get(session, "0" * 32, None) is None


def test_same_key_same_body_returns_the_same_job(factory):
    with factory() as session:
        first, created1 = submit(session, request={"a": 1, "b": [1, 2]}, key="k1")
    with factory() as session:
        again, created2 = submit(session, request={"b": [1, 2], "a": 1}, key="k1")  # key order ignored
    assert (created1, created2) == (True, False)
    assert again.id == first.id
    with factory() as session:
        assert store.counts(session) == {("architecture", "queued"): 1}


def test_same_key_different_body_conflicts(factory):
    with factory() as session:
        first, _ = submit(session, request={"a": 1}, key="k1")
    with factory() as session, pytest.raises(store.IdempotencyConflict) as conflict:
        submit(session, request={"a": 2}, key="k1")
    assert conflict.value.job_id == first.id
    with factory() as session, pytest.raises(store.IdempotencyConflict):
        submit(session, kind="other", request={"a": 1}, key="k1")  # the kind is part of the body
    with factory() as session:
        assert store.counts(session) == {("architecture", "queued"): 1}


def test_idempotency_key_is_per_owner(factory):
    with factory() as session:
        a, created_a = submit(session, owner="alice", key="k1")
        b, created_b = submit(session, owner="bob", key="k1")
        c, created_c = submit(session, owner="alice")  # no key: always a new job
        d, created_d = submit(session, owner="alice")
    assert created_a and created_b and created_c and created_d
    assert len({a.id, b.id, c.id, d.id}) == 4


def test_concurrent_submits_with_one_new_key_make_one_job(factory):
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def submitter() -> None:
        try:
            with factory() as session:
                start.wait(timeout=30)
                job, created = submit(session, request={"a": 1}, key="race")
                results.append((job.id, created))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submitter) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len({job_id for job_id, _ in results}) == 1, results
    assert sorted(created for _, created in results) == [False, False, False, True]


def test_submit_with_a_key_does_not_retry_a_failing_insert_forever(factory, database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite does not enforce VARCHAR lengths, so this insert does not fail there")
    from sqlalchemy.exc import DBAPIError

    with factory() as session:
        try:
            submit(session, request={"a": 1}, key="k" * 256)  # longer than idempotency_key's 255
        except DBAPIError:
            return  # the database's error, raised once
        except RecursionError:
            # not re-raised: pytest would spend minutes formatting ~500 chained tracebacks
            raise AssertionError("submit retried the failing INSERT until RecursionError") from None
    raise AssertionError("an over-long Idempotency-Key was stored")


# --- claim ---------------------------------------------------------------------------------------

def test_claim_takes_the_oldest_queued_job(factory):
    with factory() as session:
        first, _ = submit(session, request={"n": 1})
        second, _ = submit(session, request={"n": 2})
    before = utcnow()
    with factory() as session:
        assert store.claim(session, worker_id="w1", lease_s=30, kinds=("other",)) is None
        got = store.claim(session, worker_id="w1", lease_s=30)
    assert got.id == first.id
    stored = row(factory, first.id)
    assert (stored.status, stored.attempts, stored.lease_owner, stored.stage) == ("running", 1, "w1", "starting")
    assert as_utc(stored.lease_expires_at) >= before + timedelta(seconds=29)
    assert as_utc(stored.started_at) >= before - timedelta(seconds=1)
    with factory() as session:
        assert store.claim(session, worker_id="w2", lease_s=30, kinds=("architecture",)).id == second.id
        assert store.claim(session, worker_id="w3", lease_s=30) is None
    assert row(factory, second.id).lease_owner == "w2"
    assert row(factory, first.id).lease_owner == "w1"


def test_concurrent_claims_take_every_job_exactly_once(factory):
    with factory() as session:
        ids = {submit(session, request={"n": i})[0].id for i in range(20)}
    claimed: dict[str, list[str]] = {f"w{i}": [] for i in range(4)}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def claimer(worker_id: str) -> None:
        try:
            with factory() as session:
                start.wait(timeout=30)
                while (job := store.claim(session, worker_id=worker_id, lease_s=60)) is not None:
                    claimed[worker_id].append(job.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    everything = [job_id for jobs in claimed.values() for job_id in jobs]
    assert len(everything) == len(set(everything)) == 20, claimed  # no job claimed twice
    assert set(everything) == ids  # and none left behind
    with factory() as session:
        for worker_id, jobs in claimed.items():
            for job_id in jobs:
                stored = session.get(JobRow, job_id)
                assert (stored.status, stored.attempts, stored.lease_owner) == ("running", 1, worker_id)


# --- heartbeat -----------------------------------------------------------------------------------

def test_heartbeat_renews_the_lease_and_records_progress(factory):
    with factory() as session:
        job, _ = submit(session)
        store.claim(session, worker_id="w1", lease_s=5)
    first_lease = as_utc(row(factory, job.id).lease_expires_at)
    with factory() as session:
        assert store.heartbeat(session, job_id=job.id, worker_id="w1", lease_s=600,
                               progress=0.5, stage="simulating") == (True, False)
    stored = row(factory, job.id)
    assert (stored.progress, stored.stage) == (0.5, "simulating")
    assert as_utc(stored.lease_expires_at) >= first_lease + timedelta(seconds=590)
    with factory() as session:  # no progress given: progress and stage stay
        assert store.heartbeat(session, job_id=job.id, worker_id="w1", lease_s=600) == (True, False)
    assert (row(factory, job.id).progress, row(factory, job.id).stage) == (0.5, "simulating")


def test_heartbeat_reports_a_cancel_request(factory):
    with factory() as session:
        job, _ = submit(session)
        store.claim(session, worker_id="w1", lease_s=30)
        assert store.cancel_or_delete(session, job.id) == "cancel_requested"
        assert store.heartbeat(session, job_id=job.id, worker_id="w1", lease_s=30) == (True, True)


def test_heartbeat_after_a_takeover_is_refused(factory):
    with factory() as session:
        job, _ = submit(session)
        store.claim(session, worker_id="w1", lease_s=30)
        store.release_worker(session, "w1")
        assert store.claim(session, worker_id="w2", lease_s=30).id == job.id
        ours, _ = store.heartbeat(session, job_id=job.id, worker_id="w1", lease_s=30, progress=0.9, stage="late")
    assert ours is False
    stored = row(factory, job.id)
    assert (stored.lease_owner, stored.attempts, stored.progress, stored.stage) == ("w2", 2, 0.0, "starting")


# --- reaping dead workers ------------------------------------------------------------------------

def test_reap_requeues_an_expired_lease_while_attempts_remain(factory):
    with factory() as session:
        job, _ = submit(session, max_attempts=3)
        alive, _ = submit(session, max_attempts=3)
        store.claim(session, worker_id="w1", lease_s=30)
        store.claim(session, worker_id="w2", lease_s=30)
    expire_lease(factory, job.id)
    with factory() as session:
        assert store.reap_expired(session) == 1
    stored = row(factory, job.id)
    assert (stored.status, stored.attempts, stored.lease_owner, stored.lease_expires_at) == ("queued", 1, None, None)
    assert "w1" in stored.stage
    assert row(factory, alive.id).status == "running"  # its lease is live
    with factory() as session:
        again = store.claim(session, worker_id="w3", lease_s=30)
    assert again.id == job.id
    assert row(factory, job.id).attempts == 2


def test_reap_fails_a_job_out_of_attempts(factory):
    with factory() as session:
        job, _ = submit(session, max_attempts=2)
    for attempt, worker_id in enumerate(("w1", "w2"), start=1):
        with factory() as session:
            assert store.claim(session, worker_id=worker_id, lease_s=30).id == job.id
        expire_lease(factory, job.id)
        with factory() as session:
            assert store.reap_expired(session) == 1
        assert row(factory, job.id).attempts == attempt
    stored = row(factory, job.id)
    assert (stored.status, stored.stage, stored.lease_owner) == ("failed", "failed", None)
    assert stored.finished_at is not None
    assert stored.error["type"].endswith("worker-lost")
    assert "w2" in stored.error["detail"]
    with factory() as session:
        assert store.reap_expired(session) == 0
        assert store.claim(session, worker_id="w3", lease_s=30) is None


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_job_cancelled_while_its_worker_dies_ends_cancelled(factory, max_attempts):
    with factory() as session:
        job, _ = submit(session, max_attempts=max_attempts)
        store.claim(session, worker_id="w1", lease_s=30)
        assert store.cancel_or_delete(session, job.id) == "cancel_requested"
        store.release_worker(session, "w1")
    assert row(factory, job.id).status == "cancelled"


def test_release_worker_requeues_its_job_at_once(factory):
    with factory() as session:
        dead, _ = submit(session)
        other, _ = submit(session)
        store.claim(session, worker_id="dead", lease_s=600)
        store.claim(session, worker_id="alive", lease_s=600)
        store.release_worker(session, "dead")
    assert (row(factory, dead.id).status, row(factory, dead.id).lease_owner) == ("queued", None)
    assert (row(factory, other.id).status, row(factory, other.id).lease_owner) == ("running", "alive")


# --- finish --------------------------------------------------------------------------------------

def test_finish_success_stores_the_result(factory):
    result = {"status": "warning", "findings": [{"code": "vanishing-gradient"}, {"code": "dead-relu"}]}
    with factory() as session:
        job, _ = submit(session)
        store.claim(session, worker_id="w1", lease_s=30)
        assert store.finish(session, job_id=job.id, worker_id="w1", status="succeeded", result=result)
    stored = row(factory, job.id)
    assert (stored.status, stored.stage, stored.progress) == ("succeeded", "succeeded", 1.0)
    assert stored.result == result
    assert (stored.result_status, stored.finding_codes) == ("warning", "vanishing-gradient,dead-relu")
    assert (stored.lease_owner, stored.lease_expires_at, stored.error) == (None, None, None)
    assert stored.finished_at is not None


def test_finish_failure_stores_the_error(factory):
    problem = store.problem("job-error", "The check failed", "boom", 500)
    with factory() as session:
        job, _ = submit(session)
        store.claim(session, worker_id="w1", lease_s=30)
        assert store.finish(session, job_id=job.id, worker_id="w1", status="failed", error=problem)
    stored = row(factory, job.id)
    assert (stored.status, stored.error, stored.result, stored.result_status) == ("failed", problem, None, None)


def test_finish_after_losing_the_lease_changes_nothing(factory):
    with factory() as session:
        job, _ = submit(session)
        store.claim(session, worker_id="w1", lease_s=30)
        store.release_worker(session, "w1")
        # requeued, not claimed yet
        assert not store.finish(session, job_id=job.id, worker_id="w1", status="succeeded", result={"status": "x"})
        assert row(factory, job.id).status == "queued"
        store.claim(session, worker_id="w2", lease_s=30)
        assert not store.finish(session, job_id=job.id, worker_id="w1", status="succeeded", result={"status": "x"})
    stored = row(factory, job.id)
    assert (stored.status, stored.lease_owner, stored.result, stored.finished_at) == ("running", "w2", None, None)


# --- cancel and delete ---------------------------------------------------------------------------

def test_cancel_or_delete_walks_the_states(factory):
    with factory() as session:
        queued, _ = submit(session, request={"n": 1})
        assert store.cancel_or_delete(session, queued.id) == "cancelled"
        stored = row(factory, queued.id)
        assert (stored.status, stored.stage) == ("cancelled", "cancelled") and stored.finished_at is not None

        running, _ = submit(session, request={"n": 2})
        assert store.claim(session, worker_id="w1", lease_s=30).id == running.id
        assert store.cancel_or_delete(session, running.id) == "cancel_requested"
        stored = row(factory, running.id)
        assert (stored.status, stored.cancel_requested, stored.lease_owner) == ("running", True, "w1")

        assert store.finish(session, job_id=running.id, worker_id="w1", status="cancelled")
        assert store.cancel_or_delete(session, running.id) == "deleted"
        assert row(factory, running.id) is None
        assert store.get(session, running.id, None) is None
        assert store.cancel_or_delete(session, running.id) is None

        assert store.cancel_or_delete(session, queued.id) == "deleted"  # a cancelled job is finished
        assert store.cancel_or_delete(session, "0" * 32) is None
        assert store.counts(session) == {}


# --- listing and counts --------------------------------------------------------------------------

def test_list_jobs_newest_first_with_filters(factory):
    with factory() as session:
        a1, _ = submit(session, owner="alice", request={"n": 1})
        b1, _ = submit(session, owner="bob", request={"n": 2})
        a2, _ = submit(session, owner="alice", kind="other", request={"n": 3})
        a3, _ = submit(session, owner="alice", request={"n": 4})
        store.claim(session, worker_id="w1", lease_s=30)  # takes a1

        def ids(**kw: Any) -> list[str]:
            page = store.list_jobs(session, **{"owner": None, **kw})
            assert page.next_cursor is None
            return [j.id for j in page.jobs]

        assert ids() == [a3.id, a2.id, b1.id, a1.id]
        assert ids(owner="alice") == [a3.id, a2.id, a1.id]
        assert ids(owner="bob") == [b1.id]
        assert ids(owner="carol") == []
        assert ids(status="running") == [a1.id]
        assert ids(status="queued", owner="alice") == [a3.id, a2.id]
        assert ids(kind="other") == [a2.id]
        assert ids(kind="architecture", status="queued") == [a3.id, b1.id]


def _all_pages(session, limit: int, **kw: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = store.list_jobs(session, cursor=cursor, limit=limit, **kw)
        pages.append([j.id for j in page.jobs])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 10, "pagination does not end"


def test_cursor_pagination_returns_every_job_once(factory):
    with factory() as session:
        newest_first = [submit(session, request={"n": i})[0].id for i in range(25)][::-1]
        submit(session, owner="bob")  # another caller's job is not listed
        pages = _all_pages(session, 10, owner="alice")
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [job_id for page in pages for job_id in page] == newest_first


def test_cursor_pagination_breaks_ties_on_created_at(factory):
    with factory() as session:
        ids = {submit(session, request={"n": i})[0].id for i in range(7)}
        session.execute(update(JobRow).values(created_at=utcnow()))  # all created at one instant
        session.commit()
        pages = _all_pages(session, 3, owner=None)
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [job_id for page in pages for job_id in page]
    assert listed == sorted(ids, reverse=True)


def test_malformed_cursor_is_a_value_error(factory):
    malformed = ["not a cursor", "!!!", base64.urlsafe_b64encode(b"no separator").decode(),
                 base64.urlsafe_b64encode(b"yesterday|abc").decode(),
                 base64.urlsafe_b64encode(b"\xff\xfe|abc").decode()]
    with factory() as session:
        submit(session)
        for cursor in malformed:
            with pytest.raises(ValueError):
                store.list_jobs(session, owner=None, cursor=cursor)


def test_counts_by_kind_and_status(factory):
    with factory() as session:
        assert store.counts(session) == {}
        for i in range(3):
            submit(session, request={"n": i})
        submit(session, kind="other")
        store.claim(session, worker_id="w1", lease_s=30, kinds=("architecture",))
        done, _ = submit(session, kind="other", request={"n": 9})
        store.cancel_or_delete(session, done.id)
        assert store.counts(session) == {("architecture", "queued"): 2, ("architecture", "running"): 1,
                                         ("other", "queued"): 1, ("other", "cancelled"): 1}


# --- one worker pass, end to end -----------------------------------------------------------------

def test_run_one_runs_a_real_check(factory, database_url):
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="w1", lease_s=5)
    assert worker.run_one(factory, cfg) is False  # nothing queued
    with factory() as session:
        job, _ = submit(session, request=TINY_SPEC)
    assert worker.run_one(factory, cfg) is True
    stored = row(factory, job.id)
    assert stored.status == "succeeded", stored.error
    assert (stored.progress, stored.attempts, stored.lease_owner) == (1.0, 1, None)
    assert stored.result["status"] == "healthy"
    assert stored.result_status == "healthy"
    assert stored.error is None


def test_run_one_enforces_the_time_limit(factory, database_url):
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="w1", lease_s=5)
    with factory() as session:
        job, _ = submit(session, request=TINY_SPEC, time_limit_s=1e-9)
    assert worker.run_one(factory, cfg) is True
    stored = row(factory, job.id)
    assert stored.status == "failed"
    assert stored.error["type"].endswith("time-limit"), stored.error
    assert stored.result is None
    with factory() as session:
        assert session.scalar(select(JobRow.lease_owner).where(JobRow.id == job.id)) is None


def test_one_heart_renews_each_job_and_stops_a_cancelled_one(factory, database_url, monkeypatch):
    """The worker loop's long-lived heartbeat thread (worker.Heart), across two jobs: it renews
    the running job's lease past the one its claim set, and a cancel asked while the job runs
    reaches the job through it. Without a beat neither would happen (the job would succeed)."""
    lease = 0.3  # a beat every 0.1 s
    started = threading.Event()
    leases: list[tuple[Any, Any]] = []

    def slow(request, progress, settings):
        started.set()
        for i in range(60):  # up to 3 s, in steps that look at the flags the beats set
            progress(i / 60, "slow")
            threading.Event().wait(0.05)
            if request.get("short") and i >= 12:
                with factory() as session:  # the lease as the beats left it, 0.6 s in
                    leases.append(session.execute(select(JobRow.started_at, JobRow.lease_expires_at)
                                                  .where(JobRow.status == "running")).one())
                break
        return {"done": True}

    monkeypatch.setitem(worker.HANDLERS, "architecture", slow)
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="w1", lease_s=lease)
    heart = worker.Heart(factory, cfg)
    try:
        for n in range(2):
            with factory() as session:
                first, _ = submit(session, request={"short": True, "n": n})
            assert worker.run_one(factory, cfg, reap=False, heart=heart) is True
            stored = row(factory, first.id)
            assert stored.status == "succeeded", stored.error
            assert heart.current is None
            # Beaten while it ran: 0.6 s in, its lease ends well after the one its claim set.
            began, expires = leases[n]
            assert as_utc(expires) > as_utc(began) + timedelta(seconds=lease + 0.2)
        with factory() as session:
            job, _ = submit(session)
        started.clear()
        outcome: list[bool] = []
        runner = threading.Thread(target=lambda: outcome.append(
            worker.run_one(factory, cfg, reap=False, heart=heart)))
        runner.start()
        assert started.wait(10)
        with factory() as session:
            assert store.cancel_or_delete(session, job.id) == "cancel_requested"
        runner.join(10)
        assert outcome == [True]
        assert row(factory, job.id).status == "cancelled"
    finally:
        heart.stop()


def test_a_job_whose_input_is_refused_is_logged_as_one_line_not_an_error(factory, database_url, caplog):
    # (logsweep37: every refused archive filled the worker's log with an ERROR and a traceback)
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="w1", lease_s=5)
    with factory() as session:
        job, _ = submit(session, request={**TINY_SPEC, "seeds": 0})
    with caplog.at_level("INFO", logger="gradhealth"):
        assert worker.run_one(factory, cfg) is True
    stored = row(factory, job.id)
    assert stored.status == "failed" and 400 <= stored.error["status"] < 500, stored.error
    mine = [r for r in caplog.records if str(job.id) in r.getMessage() and "refused" in r.getMessage()]
    assert mine and all(r.levelname == "INFO" and "Traceback" not in r.getMessage() for r in mine)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
