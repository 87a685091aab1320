"""Prometheus metrics: HTTP requests (counted in this process) and job figures, read from the
database at scrape time so they are right however many API and worker processes there are.

A scrape costs the same at any history size: the finished-job figures come from the small
``counters`` table that a job's terminal transition updates (gradhealth.jobs.counters), and the
queue and running figures are indexed counts over the non-terminal statuses only
(``ix_jobs_status_created``). Two statements, a few dozen rows, never the whole job table.

Every counter series whose labels are known up front (each job kind x terminal status, each catalog
finding code) is exported from the start at 0 (newuser4 P6): Prometheus' ``increase()`` and
``rate()`` see nothing of a series' first sample, so a counter born at 1 with its first job left
the dashboard's throughput, failed-jobs and findings panels at 0 for the first event of each kind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gradhealth.core.catalog import FINDINGS
from gradhealth.db.models import JobRow
from gradhealth.jobs import counters
from gradhealth.jobs.counters import DURATION_BUCKETS
from gradhealth.jobs.kinds import KINDS
from gradhealth.jobs.store import TERMINAL
from gradhealth.live.metrics import SEVERITIES, RunCollector

__all__ = ["DURATION_BUCKETS", "STREAM_BUCKETS", "JobCollector", "Metrics", "route_label", "streaming"]

#: The statuses a job is counted in while it is not finished (a gauge, read from the job table).
ACTIVE = ("queued", "running")


class JobCollector(Collector):
    """Job figures: ``gradhealth_jobs{kind,status}`` (queued and running jobs now),
    ``gradhealth_queue_depth``, ``gradhealth_jobs_finished_total{kind,status}``,
    ``gradhealth_job_duration_seconds{kind}`` (histogram) and ``gradhealth_findings_total{code,severity}``.

    ``kinds``, ``statuses`` and ``codes``: the label values exported at 0 before any job counts in
    them (the app passes every job kind, terminal status and catalog code), so that a series exists
    before its first event and ``increase()`` counts that event; ``gradhealth_jobs`` has every kind
    in both active statuses, 0 when none is queued or running."""

    def __init__(self, factory: sessionmaker[Session], *, kinds: Iterable[str] = (),
                 statuses: Iterable[str] = (), codes: Iterable[str] = ()) -> None:
        self.factory = factory
        self.kinds = tuple(kinds)
        self.statuses = tuple(statuses)
        self.codes = tuple(codes)

    def collect(self) -> Iterator[Metric]:
        with self.factory() as session:
            # The IN over the two non-terminal statuses is a range of ix_jobs_status_created:
            # it reads the queued and running rows only, however many jobs have finished.
            active = session.execute(
                select(JobRow.kind, JobRow.status, func.count()).where(JobRow.status.in_(ACTIVE))
                .group_by(JobRow.kind, JobRow.status)).all()
            samples = counters.read(session)
        jobs = GaugeMetricFamily("gradhealth_jobs", "Jobs queued or running now, by kind and status",
                                 labels=["kind", "status"])
        # every kind at 0 in each active status: an idle service's panel reads 0, not "No data" (newuser7)
        now: dict[tuple[str, str], float] = {(k, st): 0.0 for k in self.kinds for st in ACTIVE}
        for kind, status, n in active:
            now[(kind, status)] = n
        for (kind, status), value in sorted(now.items()):
            jobs.add_metric([kind, status], value)
        yield jobs
        depth = GaugeMetricFamily("gradhealth_queue_depth", "Jobs waiting for a worker")
        depth.add_metric([], sum(n for _, status, n in active if status == "queued"))
        yield depth

        finished = CounterMetricFamily("gradhealth_jobs_finished", "Jobs that reached a terminal "
                                       "status, by kind and status", labels=["kind", "status"])
        findings = CounterMetricFamily("gradhealth_findings", "Findings in finished diagnoses, by code and "
                                       "severity (severity=\"\" for jobs counted before the label existed)",
                                       labels=["code", "severity"])
        done: dict[tuple[str, str], float] = {(k, st): 0.0 for k in self.kinds for st in self.statuses}
        found: dict[tuple[str, str], float] = {(c, sev): 0.0 for c in self.codes for sev in SEVERITIES}
        buckets: dict[str, dict[float, float]] = {kind: {} for kind in self.kinds}
        sums: dict[str, float] = {}
        for s in samples:
            if s.name == counters.FINISHED:
                done[(s.labels["kind"], s.labels["status"])] = s.value
            elif s.name == counters.FINDINGS:
                found[(s.labels["code"], s.labels.get("severity", ""))] = s.value
            elif s.name == counters.DURATION_BUCKET:
                buckets.setdefault(s.labels["kind"], {})[float(s.labels["le"])] = s.value
            elif s.name == counters.DURATION_SUM:
                sums[s.labels["kind"]] = s.value
        for (kind, status), value in sorted(done.items()):
            finished.add_metric([kind, status], value)
        for (code, severity), value in sorted(found.items()):
            findings.add_metric([code, severity], value)
        yield finished
        hist = HistogramMetricFamily("gradhealth_job_duration_seconds",
                                     "Run time of jobs that ended succeeded or failed", labels=["kind"])
        for kind, per_bound in sorted(buckets.items()):
            # Stored per bucket, exposed cumulative: each bound counts every job at or below it.
            cumulative = [(str(b), sum(n for le, n in per_bound.items() if le <= b))
                          for b in DURATION_BUCKETS]
            cumulative.append(("+Inf", sum(per_bound.values())))
            hist.add_metric([kind], cumulative, sums.get(kind, 0.0))
        yield hist
        yield findings


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """The routes with a path template, through included routers (FastAPI wraps each one the app
    includes in a router that matches every path and defers the choice to its own routes)."""
    for route in routes:
        if getattr(route, "path", None) is not None:
            yield route
        elif hasattr(route, "original_router"):
            yield from _leaf_routes(getattr(route.original_router, "routes", ()))
        elif hasattr(route, "routes"):
            yield from _leaf_routes(route.routes)


def route_label(scope: Scope) -> str:
    """The route template a request matched (``/v1/jobs/{job_id}``, ``/openapi.json``, ``/static``),
    or ``unmatched``. FastAPI records its API routes in the scope; Starlette's plain routes (the
    OpenAPI document) and mounts (the docs' static files) only their endpoint, which is looked up."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is not None and app is not None:
        for route in getattr(app, "routes", ()):
            if getattr(route, "endpoint", None) is endpoint or getattr(route, "app", None) is endpoint:
                return getattr(route, "path", None) or "unmatched"
    if app is not None and scope.get("type") == "http":
        # Refused before routing (a 413 body over the limit, a 401, a 415 compressed body): counted
        # under the route the request was sent to, not "unmatched" (newuser13 #4). A route whose path
        # matches with another method (a 405) is that route too.
        partial = None
        for route in _leaf_routes(getattr(app, "routes", ())):
            try:
                match, _ = route.matches(scope)
            except (KeyError, TypeError, ValueError):
                continue
            if match == Match.FULL:
                return getattr(route, "path", None) or "unmatched"
            if match == Match.PARTIAL and partial is None:
                partial = getattr(route, "path", None)
        if partial:
            return partial
    return "unmatched"


#: Buckets (seconds) of ``gradhealth_http_stream_duration_seconds``: an SSE stream lasts as long as
#: its client listens, a long poll up to its ``wait``, both far past the request histogram's 10 s.
STREAM_BUCKETS: tuple[float, ...] = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)


def _wait_asked(scope: Scope) -> bool:
    """Whether the request is a long poll (a ``wait`` query parameter above 0)."""
    raw = scope.get("query_string") or b""
    if b"wait" not in raw:  # (the common case, without parsing)
        return False
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key == "wait":
            try:
                return float(value) > 0
            except ValueError:
                return False
    return False


def streaming(scope: Scope, content_type: bytes | None) -> bool:
    """Whether a request is a stream or a long poll, whose time is the client's (how long it
    listens, or ``?wait``) rather than the service's: an SSE response (``text/event-stream``) or a
    request with ``wait`` > 0. newuser4 P11: in the request histogram (top bucket 10 s) these
    pinned the dashboard's p95 of their routes at 10 s, which looked like an outage."""
    if content_type is not None and content_type.split(b";", 1)[0].strip().lower() == b"text/event-stream":
        return True
    return _wait_asked(scope)


class Metrics:
    """The registry of one app, with the HTTP middleware that feeds it."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        # No `_created` series beside each counter and histogram (prometheus_client's default): it
        # doubled the scrape with a HELP per family and no panel reads it (newuser13 #4)
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.requests = Counter("gradhealth_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("gradhealth_http_request_duration_seconds",
                                 "HTTP request latency (streams and long polls are in "
                                 "gradhealth_http_stream_duration_seconds)",
                                 ["method", "route"], registry=self.registry)
        self.stream_latency = Histogram("gradhealth_http_stream_duration_seconds",
                                        "Duration of SSE streams and ?wait long polls",
                                        ["method", "route"], buckets=STREAM_BUCKETS, registry=self.registry)
        # The upload retention sweep of this process (gradhealth.jobs.retention): folders it could
        # not delete (a read-only mount, a permission), each counted at every sweep that tried; no
        # labels, so it is exported at 0 from start-up (the errno is in the logged warning).
        self.upload_delete_failures = Counter(
            "gradhealth_upload_delete_failures", "Upload folders the retention sweep could not delete "
            "(the warning logged names the path and errno)", registry=self.registry)
        self.registry.register(JobCollector(factory, kinds=KINDS, statuses=sorted(TERMINAL), codes=FINDINGS))
        self.runs = RunCollector(factory)  # per-run gauges of live runs (gradhealth.live)
        self.registry.register(self.runs)

    def upload_delete_failed(self, folder: Path, error: OSError) -> None:
        """Count a folder the upload sweep could not delete (``store.remove_upload`` logged it)."""
        self.upload_delete_failures.inc()

    def middleware(self, app: ASGIApp, route_of: Callable[[Scope], str]) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = {"code": 500}
            content_type: list[bytes] = []

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    content_type[:] = [v for k, v in message.get("headers", ()) if k.lower() == b"content-type"]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                route = route_of(scope)
                self.requests.labels(scope["method"], route, str(status["code"])).inc()
                histogram = (self.stream_latency if streaming(scope, content_type[0] if content_type else None)
                             else self.latency)
                histogram.labels(scope["method"], route).observe(time.perf_counter() - started)

        return wrapped
