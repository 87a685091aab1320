"""Job counters kept as jobs finish, in the same transaction as the state change, so that
``/metrics`` reads a few small rows instead of the whole job table at each scrape.

Each counter is one row of the ``counters`` table: a name, its labels as canonical JSON, and a
value that only goes up (``INSERT ... ON CONFLICT DO UPDATE SET value = value + excluded.value``,
atomic on PostgreSQL and SQLite alike, so several worker processes finishing jobs at once lose no
count). A deleted job keeps its counts: these are Prometheus counters, not a census of the table.

Counters kept (label names in brackets):

- ``jobs_finished`` [kind, status]: jobs that reached a terminal status.
- ``job_duration_bucket`` [kind, le] and ``job_duration_sum`` [kind]: run time (started to
  finished) of jobs that ended ``succeeded`` or ``failed``. Buckets are stored *non-cumulative*
  (one row per job, the smallest bound that holds it) and summed up at scrape time, so a finish
  writes one bucket row, not one per bound; the count is the sum of the buckets.
- ``findings`` [code]: findings in finished diagnoses, one per finding.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gradhealth.db.models import CounterRow

#: Upper bounds (seconds) of the job duration histogram's buckets.
DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

FINISHED = "jobs_finished"
DURATION_BUCKET = "job_duration_bucket"
DURATION_SUM = "job_duration_sum"
FINDINGS = "findings"
#: Live runs' rows (gradhealth.live.diagnose.count_changes adds to them, gradhealth.live.metrics
#: exports them): ``gradhealth_run_findings_raised_total{code,severity}`` and
#: ``gradhealth_runs_finished_total{health}``
RUN_FINDINGS = "run_findings"
RUNS_FINISHED = "runs_finished"

#: Statuses whose run time the duration histogram observes (a cancelled job's time says little).
TIMED = frozenset({"succeeded", "failed"})

#: A label value is clipped to this many characters: the labels column is VARCHAR(255), and a
#: too-long value must not fail (roll back) the transaction that records a job's end.
_LABEL_MAX = 64

Key = tuple[str, str]  # (name, labels as canonical JSON)


def labels_key(**labels: str) -> str:
    """Labels as the canonical JSON stored in the ``labels`` column (sorted keys, no spaces)."""
    return json.dumps({k: str(v)[:_LABEL_MAX] for k, v in labels.items()}, sort_keys=True,
                      separators=(",", ":"))


def bucket_bound(duration_s: float) -> str:
    """The ``le`` label of the smallest bucket holding ``duration_s`` (``+Inf`` past the last)."""
    for bound in DURATION_BUCKETS:
        if duration_s <= bound:
            return repr(float(bound))
    return "+Inf"


def increments(*, kind: str, status: str, duration_s: float | None,
               codes: Iterable[str], severities: Iterable[str] | None = None) -> dict[Key, float]:
    """What one job reaching ``status`` adds to each counter. ``severities``: each finding's, in
    the order of ``codes`` (``gradhealth_findings_total{code,severity}``, as a live run's counter);
    None where they are not known (jobs the migration counts from their comma-joined codes)."""
    out: dict[Key, float] = {(FINISHED, labels_key(kind=kind, status=status)): 1.0}
    if status in TIMED and duration_s is not None and math.isfinite(duration_s):
        duration_s = max(duration_s, 0.0)  # clocks of two hosts may disagree by a little
        out[(DURATION_BUCKET, labels_key(kind=kind, le=bucket_bound(duration_s)))] = 1.0
        out[(DURATION_SUM, labels_key(kind=kind))] = duration_s
    codes = list(codes)
    levels: list[str | None] = list(severities) if severities is not None else [None] * len(codes)
    for code, severity in zip(codes, levels, strict=True):
        if code:
            key = (FINDINGS, labels_key(code=code, severity=severity) if severity else labels_key(code=code))
            out[key] = out.get(key, 0.0) + 1.0
    return out


def _upsert(dialect: str) -> Any:
    """The one UPSERT statement of a dialect, parameters bound per row (name, labels, value).

    One fixed statement run as an executemany: a multi-VALUES insert's SQL differs with its number
    of rows, so SQLAlchemy compiled it again at each job's finish (about 1 ms of CPU per job)."""
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        table = cast("Table", CounterRow.__table__)  # Core, not ORM: no bulk-insert bookkeeping
        if dialect == "postgresql":
            insert: Any = postgresql.insert(table)
        elif dialect == "sqlite":
            insert = sqlite.insert(table)
        else:  # pragma: no cover - the service runs on SQLite or PostgreSQL only
            raise NotImplementedError(f"counters on {dialect}")
        stmt = _UPSERTS[dialect] = insert.on_conflict_do_update(
            index_elements=[table.c.name, table.c.labels],
            set_={"value": table.c.value + insert.excluded.value})
    return stmt


_UPSERTS: dict[str, Any] = {}


def add(session: Session | Connection, deltas: Mapping[Key, float]) -> None:
    """Add ``deltas`` to the counters with one cached UPSERT statement, executed once per row
    (an executemany, inside the caller's transaction).

    Rows go in sorted order, so two transactions touching the same counters lock them in the
    same order on PostgreSQL (no deadlock between two finishing workers)."""
    if not deltas:
        return
    rows = [{"name": n, "labels": lab, "value": v} for (n, lab), v in sorted(deltas.items())]
    dialect = session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name
    stmt = _upsert(dialect)
    connection = session.connection() if isinstance(session, Session) else session
    connection.execute(stmt, rows)

def job_finished(session: Session, *, kind: str, status: str, duration_s: float | None,
                 codes: list[str], severities: list[str] | None = None) -> None:
    """Count one job reaching a terminal ``status`` (runs inside the caller's transaction)."""
    add(session, increments(kind=kind, status=status, duration_s=duration_s, codes=codes, severities=severities))


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def read(session: Session | Connection, names: Iterable[str] | None = None) -> list[Sample]:
    """Every counter (a few rows per kind and finding code, whatever the number of jobs), or those
    of the given ``names``."""
    query = select(CounterRow.name, CounterRow.labels, CounterRow.value)
    if names is not None:
        query = query.where(CounterRow.name.in_(tuple(names)))
    rows = session.execute(query.order_by(CounterRow.name, CounterRow.labels)).all()
    return [Sample(name, json.loads(labels), float(value)) for name, labels, value in rows]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def backfill(connection: Connection, rows: Iterable[tuple[str, str, Any, Any, str | None]]) -> int:
    """Count already finished jobs, given as (kind, status, started_at, finished_at, finding
    codes comma-joined) rows: what the migration that adds the counters runs once, so a service
    upgraded with history keeps its totals. Returns how many jobs were counted."""
    total: dict[Key, float] = {}
    n = 0
    for kind, status, started, finished, codes in rows:
        start, end = _utc(started), _utc(finished)
        duration = (end - start).total_seconds() if start is not None and end is not None else None
        for key, delta in increments(kind=kind, status=status, duration_s=duration,
                                     codes=(codes or "").split(",")).items():
            total[key] = total.get(key, 0.0) + delta
        n += 1
    add(connection, total)
    return n
