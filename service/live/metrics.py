"""Per-run gauges for active live runs, bounded in cardinality: only the ``limit`` most recently
updated active runs are exported (``GRADHEALTH_RUN_GAUGE_LIMIT``), read from their rows at scrape
time (one indexed query of at most ``limit`` rows, whatever the number of runs or points)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.live import store
from gradhealth.live.diagnose import grad_norm_of
from gradhealth.settings import Settings

#: The default of the setting: the app sets its configured value on the collector.
DEFAULT_LIMIT = int(Settings.model_fields["run_gauge_limit"].default)


class RunCollector(Collector):
    """``gradhealth_run_grad_norm{run,name}`` (NaN, +Inf or -Inf where the run's latest gradient
    norm is) and ``gradhealth_run_findings{run,name,code}``."""

    def __init__(self, factory: sessionmaker[Session], limit: int = DEFAULT_LIMIT) -> None:
        self.factory = factory
        self.limit = limit
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

    def collect(self) -> Iterator[GaugeMetricFamily]:
        owner = getattr(self._scope, "owner", None)
        with self.factory() as session:
            runs = store.active_recent(session, self.limit, owner=owner) if self.limit > 0 else []
        norm = GaugeMetricFamily("gradhealth_run_grad_norm", "Latest total gradient norm of an active live run",
                                 labels=["run", "name"])
        findings = GaugeMetricFamily("gradhealth_run_findings",
                                     "Findings of an active live run's current diagnosis, by code and severity",
                                     labels=["run", "name", "code", "severity"])
        for run in runs:
            value = grad_norm_of(run)
            if value is not None:  # NaN and +-Inf too: the exposition format spells them (NaN, +Inf, -Inf)
                norm.add_metric([run.id, run.name], value)
            tally: dict[tuple[str, str], int] = {}
            for f in (run.diagnosis or {}).get("findings", []):
                key = (str(f.get("code")), str(f.get("severity")))
                tally[key] = tally.get(key, 0) + 1
            for (code, severity), n in sorted(tally.items()):
                findings.add_metric([run.id, run.name, code, severity], n)
        yield norm
        yield findings
