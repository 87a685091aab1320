"""The job metrics: counters kept as jobs end, checked against an independent count of the job
table, on SQLite and PostgreSQL; concurrent finishes lose no count; deleting a job keeps its counts;
the migration counts the history already there.

The scrape-cost test (1k against 100k finished jobs) is in test_metrics_scale.py.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.api.metrics import DURATION_BUCKETS, JobCollector
from gradhealth.db import engine as db_engine
from gradhealth.db.models import CounterRow, JobRow
from gradhealth.jobs import counters, store, worker
from gradhealth.jobs.store import TERMINAL, as_utc, utcnow
from tests.api.helpers import TINY, VANISHING, running_app, settings_for
from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Exposition text -> {(sample name, labels): value} (only gradhealth job samples)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def scrape(factory: sessionmaker[Session]) -> Samples:
    registry = CollectorRegistry()
    registry.register(JobCollector(factory))
    return parse(generate_latest(registry).decode())


def job_samples(samples: Samples) -> Samples:
    """The samples that come from the counters (not the queued/running gauges)."""
    names = ("gradhealth_jobs_finished_total", "gradhealth_findings_total",
             "gradhealth_job_duration_seconds_")
    return {k: v for k, v in samples.items() if k[0].startswith(names)}


def expected_from_table(session: Session) -> Samples:
    """What the counters must say, computed from the job table itself (rows, results, times): an
    independent count, valid as long as no finished job has been deleted."""
    out: Samples = {}

    def add(name: str, labels: dict[str, str], value: float) -> None:
        key = (name, frozenset(labels.items()))
        out[key] = out.get(key, 0.0) + value

    durations: dict[str, list[float]] = {}
    for kind, status, started, finished, result in session.execute(
            select(JobRow.kind, JobRow.status, JobRow.started_at, JobRow.finished_at, JobRow.result)
            .where(JobRow.status.in_(TERMINAL))):
        add("gradhealth_jobs_finished_total", {"kind": kind, "status": status}, 1)
        if status in ("succeeded", "failed") and started is not None:
            durations.setdefault(kind, []).append((as_utc(finished) - as_utc(started)).total_seconds())
        for finding in (result or {}).get("findings", []):
            add("gradhealth_findings_total", {"code": finding["code"], "severity": finding["severity"]}, 1)
    for kind, values in durations.items():
        for bound in DURATION_BUCKETS:
            add("gradhealth_job_duration_seconds_bucket", {"kind": kind, "le": str(bound)},
                sum(1 for v in values if v <= bound))
        add("gradhealth_job_duration_seconds_bucket", {"kind": kind, "le": "+Inf"}, len(values))
        add("gradhealth_job_duration_seconds_count", {"kind": kind}, len(values))
        add("gradhealth_job_duration_seconds_sum", {"kind": kind}, sum(values))
    return out


def assert_samples_equal(got: Samples, want: Samples) -> None:
    assert set(got) == set(want), (sorted(set(got) ^ set(want)))
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-5), key


def _submit(session: Session, *, kind: str = "architecture", request: Any = None,
            **kw: Any) -> str:
    job, _ = store.submit(session, kind=kind, owner="alice", request=request if request is not None else TINY,
                          idempotency_key=None, time_limit_s=kw.pop("time_limit_s", 60.0),
                          max_attempts=kw.pop("max_attempts", 3))
    return job.id


# --- every terminal path counts, once, and matches the table ---------------------------------------


def test_counters_match_the_jobs_finished_through_the_real_worker(factory, database_url):  # noqa: F811
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="w1", lease_s=5)
    with factory() as s:
        _submit(s)  # succeeds, healthy
        _submit(s, request=VANISHING)  # succeeds with findings
        _submit(s, time_limit_s=1e-9)  # fails: over its time limit
        _submit(s, kind="logs", request={"path": "/nonexistent/metrics.csv"})  # fails: no file
        cancelled_queued = _submit(s)
    with factory() as s:
        assert store.cancel_or_delete(s, cancelled_queued) == "cancelled"
        assert store.cancel_or_delete(s, cancelled_queued) == "deleted"  # counted before it went
    while worker.run_one(factory, cfg):
        pass

    # A worker that died with no attempts left: failed by the reaper.
    with factory() as s:
        lost = _submit(s, max_attempts=1)
        assert store.claim(s, worker_id="dead", lease_s=60).id == lost
        s.execute(update(JobRow).where(JobRow.id == lost)
                  .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
        assert store.reap_expired(s) == 1
    # Asked to stop while its worker stopped gracefully: cancelled.
    with factory() as s:
        stopped = _submit(s)
        assert store.claim(s, worker_id="w2", lease_s=60).id == stopped
        assert store.cancel_or_delete(s, stopped) == "cancel_requested"
        assert store.requeue_stopped(s, job_id=stopped, worker_id="w2")
        # A graceful stop without a cancel hands the job back: not finished, not counted.
        back = _submit(s)
        assert store.claim(s, worker_id="w3", lease_s=60).id == back
        assert store.requeue_stopped(s, job_id=back, worker_id="w3")

    with factory() as s:
        statuses = Counter(s.scalars(select(JobRow.status)))
        want = expected_from_table(s)
    assert statuses == {"succeeded": 2, "failed": 3, "cancelled": 1, "queued": 1}
    key = ("gradhealth_jobs_finished_total", frozenset({"kind": "architecture", "status": "cancelled"}.items()))
    want[key] = want.get(key, 0) + 1  # the cancelled job deleted above is not in the table any more
    got = scrape(factory)
    assert_samples_equal(job_samples(got), want)
    assert got[("gradhealth_queue_depth", frozenset())] == 1
    assert got[("gradhealth_jobs", frozenset({"kind": "architecture", "status": "queued"}.items()))] == 1
    assert any(k[0] == "gradhealth_findings_total" and ("code", "vanishing_gradient") in k[1] for k in got)


def test_a_deleted_job_keeps_its_counts(factory, database_url):  # noqa: F811
    cfg = worker.WorkerConfig(database_url=database_url, worker_id="w1", lease_s=5)
    with factory() as s:
        ids = [_submit(s, request=VANISHING), _submit(s)]
    while worker.run_one(factory, cfg):
        pass
    before = scrape(factory)
    with factory() as s:
        assert_samples_equal(job_samples(before), expected_from_table(s))
        for job_id in ids:
            assert store.cancel_or_delete(s, job_id) == "deleted"
        assert s.scalar(select(JobRow.id)) is None
    after = scrape(factory)
    assert job_samples(after) == job_samples(before)
    finished = ("gradhealth_jobs_finished_total",
                frozenset({"kind": "architecture", "status": "succeeded"}.items()))
    assert after[finished] == 2


# --- concurrency -----------------------------------------------------------------------------------


def test_concurrent_finishes_lose_no_count(factory):
    """Eight writers finish jobs at once on the same counters, starting from none (so they also
    race to create each row): every count arrives."""
    threads, per_thread = 8, 24  # a multiple of the four durations
    durations = [0.05, 0.3, 7.0, 5000.0]  # four different buckets, +Inf included
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with factory() as s:
                    counters.job_finished(s, kind="architecture", status="succeeded",
                                          duration_s=durations[i % 4], codes=["a", "b", "a"])
                    s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    n = threads * per_thread
    got = scrape(factory)
    kind = frozenset({"kind": "architecture"}.items())
    assert got[("gradhealth_jobs_finished_total",
                frozenset({"kind": "architecture", "status": "succeeded"}.items()))] == n
    assert got[("gradhealth_findings_total", frozenset({"code": "a", "severity": ""}.items()))] == 2 * n
    assert got[("gradhealth_findings_total", frozenset({"code": "b", "severity": ""}.items()))] == n
    assert got[("gradhealth_job_duration_seconds_count", kind)] == n
    assert got[("gradhealth_job_duration_seconds_sum", kind)] == pytest.approx(n / 4 * sum(durations))
    bucket = {dict(k[1])["le"]: v for k, v in got.items() if k[0] == "gradhealth_job_duration_seconds_bucket"}
    assert bucket["0.1"] == n / 4 and bucket["0.5"] == n / 2 and bucket["10"] == 3 * n / 4
    assert bucket["1800"] == 3 * n / 4 and bucket["+Inf"] == n


# --- the migration counts the history already there ------------------------------------------------


def alembic(url: str, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db_engine.__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    getattr(command, action)(cfg, revision)


def test_the_migration_counts_jobs_finished_before_it(factory, database_url):  # noqa: F811
    """Rows as an older version left them; the figures expected are worked out by hand."""
    alembic(database_url, "downgrade", "0003")
    t0 = utcnow() - timedelta(hours=1)

    def job(i: int, kind: str, status: str, run_s: float | None, codes: str | None) -> dict[str, Any]:
        return dict(id=f"job{i}", kind=kind, owner="alice", status=status, request={}, request_hash="h",
                    progress=0.0, stage=status, attempts=1, max_attempts=3, time_limit_s=60.0,
                    cancel_requested=False, created_at=t0, updated_at=t0,
                    started_at=t0 if run_s is not None else None,
                    finished_at=t0 + timedelta(seconds=run_s) if run_s is not None else
                    (t0 if status in TERMINAL else None), finding_codes=codes)

    rows = [job(1, "architecture", "succeeded", 0.3, "vanishing_gradient,dead_relu"),
            job(2, "architecture", "succeeded", 7.0, "vanishing_gradient"),
            job(3, "logs", "failed", 2000.0, None),
            job(4, "architecture", "cancelled", None, None),
            job(5, "architecture", "queued", None, None),
            job(6, "architecture", "running", 10.0, None)]
    rows[5]["finished_at"] = None
    with factory() as s:
        s.execute(delete(JobRow))
        s.execute(insert(JobRow.__table__), rows)
        s.commit()
    alembic(database_url, "upgrade", "head")
    got = job_samples(scrape(factory))

    def k(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return (name, frozenset(labels.items()))

    want: Samples = {
        k("gradhealth_jobs_finished_total", kind="architecture", status="succeeded"): 2,
        k("gradhealth_jobs_finished_total", kind="architecture", status="cancelled"): 1,
        k("gradhealth_jobs_finished_total", kind="logs", status="failed"): 1,
        k("gradhealth_findings_total", code="vanishing_gradient", severity=""): 2,  # counted before severities
        k("gradhealth_findings_total", code="dead_relu", severity=""): 1,
        k("gradhealth_job_duration_seconds_count", kind="architecture"): 2,
        k("gradhealth_job_duration_seconds_sum", kind="architecture"): 7.3,
        k("gradhealth_job_duration_seconds_count", kind="logs"): 1,
        k("gradhealth_job_duration_seconds_sum", kind="logs"): 2000.0,
    }
    for b in DURATION_BUCKETS:  # 0.3 s from 0.5 on, 7 s from 10 on; 2000 s only in +Inf
        want[k("gradhealth_job_duration_seconds_bucket", kind="architecture", le=str(b))] = (
            (b >= 0.5) + (b >= 10))
        want[k("gradhealth_job_duration_seconds_bucket", kind="logs", le=str(b))] = 0
    want[k("gradhealth_job_duration_seconds_bucket", kind="architecture", le="+Inf")] = 2
    want[k("gradhealth_job_duration_seconds_bucket", kind="logs", le="+Inf")] = 1
    assert_samples_equal(got, want)
    with factory() as s:  # a new finish adds to the backfilled rows
        counters.job_finished(s, kind="logs", status="failed", duration_s=1.0, codes=[])
        s.commit()
        assert s.scalar(select(CounterRow.value).where(
            CounterRow.name == counters.FINISHED,
            CounterRow.labels == counters.labels_key(kind="logs", status="failed"))) == 2


def test_a_label_value_too_long_for_the_column_is_clipped_not_fatal(factory):
    with factory() as s:
        counters.job_finished(s, kind="architecture", status="succeeded", duration_s=math.inf,
                              codes=["x" * 1000])
        s.commit()
    got = scrape(factory)
    assert got[("gradhealth_findings_total", frozenset({"code": "x" * 64, "severity": ""}.items()))] == 1
    # A duration that is not finite is not observed (it would poison the sum for good).
    assert not any(k[0].startswith("gradhealth_job_duration") for k in got)


# --- through the app, with its real worker process -------------------------------------------------


def test_metrics_endpoint_counts_real_checks_and_keeps_deleted_ones(tmp_path):
    with running_app(settings_for(tmp_path)) as api:
        ids = [api.post("/v1/checks/architecture", json=spec).json()["id"] for spec in (TINY, VANISHING)]
        docs = [api.wait_done(i) for i in ids]
        assert [d["status"] for d in docs] == ["succeeded", "succeeded"]
        codes = Counter((f["code"], f["severity"]) for i in ids
                        for f in api.get(f"/v1/jobs/{i}").json()["result"]["findings"])
        assert codes  # the vanishing spec has findings
        before = parse(api.get("/metrics").text)
        assert before[("gradhealth_jobs_finished_total",
                       frozenset({"kind": "architecture", "status": "succeeded"}.items()))] == 2
        for (code, severity), n in codes.items():  # by severity, as a live run's (newuser13 #4)
            assert before[("gradhealth_findings_total", frozenset({"code": code, "severity": severity}.items()))] == n
        assert not any(name.endswith("_created") for name, _ in before)  # no prometheus_client _created
        assert before[("gradhealth_job_duration_seconds_count",
                       frozenset({"kind": "architecture"}.items()))] == 2
        for i in ids:
            assert api.delete(f"/v1/jobs/{i}").status_code in (200, 202, 204)
        after = parse(api.get("/metrics").text)
        assert job_samples(after) == job_samples(before)


def test_a_request_refused_before_routing_counts_under_its_route(tmp_path):
    # newuser13 #4: a 413 over-limit body was counted under route="unmatched"
    with running_app(settings_for(tmp_path, workers=0, max_body_bytes=4096)) as api:
        r = api.post("/v1/checks/architecture", content=b'{"name": "' + b"x" * 5000 + b'"}',
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert api.get("/no/such/path").status_code == 404
        got = parse(api.get("/metrics").text)
    key = frozenset({"method": "POST", "route": "/v1/checks/architecture", "status": "413"}.items())
    assert got[("gradhealth_http_requests_total", key)] == 1
    assert not any(dict(k[1]).get("route") == "unmatched" and dict(k[1]).get("status") == "413" for k in got)
    assert got[("gradhealth_http_requests_total",
                frozenset({"method": "GET", "route": "unmatched", "status": "404"}.items()))] == 1
