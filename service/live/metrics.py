"""Per-run gauges for active live runs, bounded in cardinality: only the ``limit`` most recently
updated active runs are exported (``GRADHEALTH_RUN_GAUGE_LIMIT``), read from their rows at scrape
time (one indexed query of at most ``limit`` rows, whatever the number of runs or points).

And two counters of every run, which outlive the runs (newuser4 P4: a run that ended unhealthy left
no trace in Prometheus once its gauges went): ``gradhealth_runs_finished_total{health}`` and
``gradhealth_run_findings_raised_total{code,severity}``, kept in the ``counters`` table as the job counters
are (:func:`gradhealth.live.diagnose.count_changes` adds to them in the transaction that changes
the run), so every API process reports the same totals. Their labels are bounded (the catalog's
codes, three severities, three health values) and every combination is exported from the start at
0, so that ``increase()`` counts the first event of each (newuser4 P6)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.core.catalog import FINDINGS
from gradhealth.core.document import Severity, Status
from gradhealth.jobs import counters
from gradhealth.jobs.store import as_utc
from gradhealth.live import store
from gradhealth.live.diagnose import grad_norm_of
from gradhealth.settings import Settings

#: The default of the setting: the app sets its configured value on the collector.
DEFAULT_LIMIT = int(Settings.model_fields["run_gauge_limit"].default)
DEFAULT_STALE_AFTER_S = float(Settings.model_fields["run_stale_after_s"].default)

#: ``gradhealth_run_health``'s value for a run's diagnosis status: worse is higher, so that
#: ``max()`` over runs and ``> 1`` alerts read naturally.
HEALTH_VALUES: dict[str, int] = {"healthy": 0, "warning": 1, "unhealthy": 2}
assert set(HEALTH_VALUES) == set(get_args(Status))  # a new status must be given its value
SEVERITIES: tuple[str, ...] = get_args(Severity)


class RunCollector(Collector):
    """Per active run that is not stale (the ``limit`` most recently updated):
    ``gradhealth_run_grad_norm{run,name}``
    (NaN, +Inf or -Inf where the run's latest gradient norm is),
    ``gradhealth_run_findings{run,name,code,severity}``, ``gradhealth_run_health{run,name}``
    (:data:`HEALTH_VALUES`), ``gradhealth_run_last_step{run,name}`` and
    ``gradhealth_run_last_point_timestamp_seconds{run,name}``. Of every run, database-wide as the
    job counters: ``gradhealth_runs_finished_total{health}`` and
    ``gradhealth_run_findings_raised_total{code,severity}``; and the gauge
    ``gradhealth_runs_active{stale}`` (the caller's runs, with API keys on)."""

    def __init__(self, factory: sessionmaker[Session], limit: int = DEFAULT_LIMIT,
                 stale_after_s: float = DEFAULT_STALE_AFTER_S) -> None:
        self.factory = factory
        self.limit = limit
        #: an active run idle this long gets no per-run gauges (its alerts resolve); 0: never
        self.stale_after_s = stale_after_s
        self._scope = threading.local()

    @contextlib.contextmanager
    def owned_by(self, owner: str | None) -> Iterator[None]:
        """Collect, in this thread, only the runs of ``owner`` (None: every caller's): with API keys
        on, a run's id and name are its owner's, as its jobs are."""
        self._scope.owner = owner
        try:
            yield
        finally:
            self._scope.owner = None

    def collect(self) -> Iterator[Metric]:
        owner = getattr(self._scope, "owner", None)
        with self.factory() as session:
            cutoff = store.stale_cutoff(self.stale_after_s)
            runs = store.active_recent(session, self.limit, owner=owner, cutoff=cutoff) if self.limit > 0 else []
            fresh, stale = store.count_active(session, cutoff, owner=owner)
            totals = counters.read(session, names=(counters.RUN_FINDINGS, counters.RUNS_FINISHED))
        # (the counter is gradhealth_run_findings_raised_total, not gradhealth_run_findings_total: in
        # OpenMetrics, and to parsers that drop _total, that would be the gauge gradhealth_run_findings)
        finished_by: dict[str, float] = dict.fromkeys(HEALTH_VALUES, 0.0)
        found_by: dict[tuple[str, str], float] = {(c, sev): 0.0 for c in FINDINGS for sev in SEVERITIES}
        for sample in totals:
            if sample.name == counters.RUNS_FINISHED:
                finished_by[sample.labels["health"]] = sample.value
            else:
                found_by[(sample.labels["code"], sample.labels["severity"])] = sample.value
        finished = CounterMetricFamily("gradhealth_runs_finished", "Live runs finished, by the health of their "
                                       "final diagnosis", labels=["health"])
        for verdict, total in sorted(finished_by.items()):
            finished.add_metric([verdict], total)
        yield finished
        appeared = CounterMetricFamily("gradhealth_run_findings_raised", "Findings that appeared in live runs, by code "
                                       "and severity (each once per run and severity, however often it is "
                                       "re-diagnosed)", labels=["code", "severity"])
        for (code, severity), total in sorted(found_by.items()):
            appeared.add_metric([code, severity], total)
        yield appeared

        active = GaugeMetricFamily("gradhealth_runs_active", "Active live runs: stale=\"true\" for those that "
                                   "stored no new point for GRADHEALTH_RUN_STALE_AFTER_S (no per-run gauges)",
                                   labels=["stale"])
        active.add_metric(["false"], fresh)
        active.add_metric(["true"], stale)
        yield active

        norm = GaugeMetricFamily("gradhealth_run_grad_norm", "Latest total gradient norm of an active live run",
                                 labels=["run", "name"])
        findings = GaugeMetricFamily("gradhealth_run_findings",
                                     "Findings of an active live run's current diagnosis, by code and severity",
                                     labels=["run", "name", "code", "severity"])
        health = GaugeMetricFamily("gradhealth_run_health", "Health of an active live run's current diagnosis: "
                                   "0 healthy, 1 warning, 2 unhealthy", labels=["run", "name"])
        last_step = GaugeMetricFamily("gradhealth_run_last_step", "Highest step stored of an active live run",
                                      labels=["run", "name"])
        last_point = GaugeMetricFamily("gradhealth_run_last_point_timestamp_seconds",
                                       "When an active live run last stored new points (Unix time)",
                                       labels=["run", "name"])
        for run in runs:
            value = grad_norm_of(run)
            if value is not None:  # NaN and +-Inf too: the exposition format spells them (NaN, +Inf, -Inf)
                norm.add_metric([run.id, run.name], value)
            status = (run.diagnosis or {}).get("status")
            if status in HEALTH_VALUES:  # (a run without points has no diagnosis yet: no health)
                health.add_metric([run.id, run.name], HEALTH_VALUES[status])
            if run.last_step is not None:
                last_step.add_metric([run.id, run.name], float(run.last_step))
            if run.points:  # updated_at is set by each batch that stored points (and at creation)
                last_point.add_metric([run.id, run.name], as_utc(run.updated_at).timestamp())
            tally: dict[tuple[str, str], int] = {}
            for f in (run.diagnosis or {}).get("findings", []):
                key = (str(f.get("code")), str(f.get("severity")))
                tally[key] = tally.get(key, 0) + 1
            for (code, severity), n in sorted(tally.items()):
                findings.add_metric([run.id, run.name, code, severity], n)
        yield norm
        yield findings
        yield health
        yield last_step
        yield last_point
