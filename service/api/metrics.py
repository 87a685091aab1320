"""Prometheus metrics: HTTP requests (counted in this process) and job figures (read from the job
table at scrape time, so they are right however many API and worker processes there are)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gradhealth.db.models import JobRow
from gradhealth.jobs import store

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class JobCollector(Collector):
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self):  # noqa: ANN201 - prometheus_client's protocol
        with self.factory() as session:
            counts = store.counts(session)
            finished = session.execute(select(JobRow.kind, JobRow.started_at, JobRow.finished_at).where(
                JobRow.status.in_(("succeeded", "failed")), JobRow.started_at.is_not(None))).all()
            codes = session.scalars(select(JobRow.finding_codes).where(JobRow.finding_codes.is_not(None))).all()
        jobs = GaugeMetricFamily("gradhealth_jobs", "Jobs by kind and status", labels=["kind", "status"])
        for (kind, status), n in sorted(counts.items()):
            jobs.add_metric([kind, status], n)
        yield jobs
        depth = GaugeMetricFamily("gradhealth_queue_depth", "Jobs waiting for a worker")
        depth.add_metric([], sum(n for (_, status), n in counts.items() if status == "queued"))
        yield depth
        hist = HistogramMetricFamily("gradhealth_job_duration_seconds", "Run time of finished jobs", labels=["kind"])
        by_kind: dict[str, list[float]] = {}
        for kind, started, ended in finished:
            start, end = store.as_utc(started), store.as_utc(ended)
            if start is None or end is None:  # a finished job has both; a row mid-update may not yet
                continue
            by_kind.setdefault(kind, []).append((end - start).total_seconds())
        for kind, values in sorted(by_kind.items()):
            buckets = [(str(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
            buckets.append(("+Inf", len(values)))
            hist.add_metric([kind], buckets, sum(values))
        yield hist
        findings = GaugeMetricFamily("gradhealth_findings", "Findings in stored diagnoses, by code", labels=["code"])
        tally: dict[str, int] = {}
        for joined in codes:
            for code in filter(None, (joined or "").split(",")):
                tally[code] = tally.get(code, 0) + 1
        for code, n in sorted(tally.items()):
            findings.add_metric([code], n)
        yield findings


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
    return "unmatched"


class Metrics:
    """The registry of one app, with the HTTP middleware that feeds it."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gradhealth_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("gradhealth_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.registry.register(JobCollector(factory))

    def middleware(self, app: ASGIApp, route_of: Callable[[Scope], str]) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = {"code": 500}

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                route = route_of(scope)
                self.requests.labels(scope["method"], route, str(status["code"])).inc()
                self.latency.labels(scope["method"], route).observe(time.perf_counter() - started)

        return wrapped
