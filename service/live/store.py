"""Database operations on live runs, their points and their events (the only code that writes them).

Points are inserted with ``ON CONFLICT DO NOTHING`` on the key (run, metric, step), so a retried
batch inserts nothing twice; ``RETURNING`` tells which points were new (SQLite >= 3.35, PostgreSQL).
A change to a run is a compare-and-set on its ``version``: two appends racing on one run cannot
both win, and the loser retries against the winner's state.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import and_, case, delete, false, func, insert, not_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gradhealth.db.models import RunEventRow, RunPointRow, RunRow
from gradhealth.jobs.store import as_utc, keyset_page, utcnow, valid_id
from gradhealth.live.points import Point, decode_special, encode_special

#: Rows per INSERT statement: 4 parameters each stays under SQLite's 32,766 bound variables.
_CHUNK = 2000


class RunInUse(Exception):
    """Another writer stored points in the run (or created it) less than the writer lease ago."""

    def __init__(self, run_id: str, idle_s: float, lease_s: float, points: int = 0) -> None:
        super().__init__(run_id)
        self.run_id = run_id
        self.idle_s = idle_s
        self.points = points
        self.retry_after = max(1, math.ceil(lease_s - idle_s))


def create(session: Session, *, owner: str, name: str, config: dict[str, Any], writer: str | None = None,
           take_over: bool = False, writer_lease_s: float = 0.0) -> tuple[RunRow, bool]:
    """A new active run, or (``created`` False) the caller's active run of that name: the recorder
    re-attaches to its run after a restart. ``writer`` (the process that will send the points)
    becomes the run's writer; re-attaching under another writer raises :class:`RunInUse` while the
    run's writer was active within ``writer_lease_s`` (``take_over``: takes it anyway)."""
    existing = active_named(session, owner, name)
    if existing is not None:
        return claim(session, existing, writer, take_over=take_over, lease_s=writer_lease_s), False
    now = utcnow()
    row = RunRow(id=uuid.uuid4().hex, owner=owner, name=name, status="active", config=config, created_at=now,
                 updated_at=now, points=0, series=[], findings_state={}, events=0, version=0, writer=writer)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # another request created it first (the partial unique index)
        session.rollback()
        existing = active_named(session, owner, name)
        if existing is None:
            raise
        return claim(session, existing, writer, take_over=take_over, lease_s=writer_lease_s), False
    return row, True


def claim(session: Session, row: RunRow, writer: str | None, *, take_over: bool, lease_s: float) -> RunRow:
    """Make ``writer`` the writer of the active run ``row`` (None: nothing to claim). Another writer's
    run is taken only once that writer has been quiet for ``lease_s`` (its process likely died:
    a restart re-attaches), or with ``take_over``; otherwise :class:`RunInUse`."""
    for _ in range(8):  # a batch of the old writer may bump the version meanwhile: read again
        if writer is None or row.writer == writer:
            return row
        if row.writer is not None and not take_over and lease_s > 0:
            idle = (utcnow() - writer_active_at(row)).total_seconds()
            if idle < lease_s:
                raise RunInUse(row.id, idle, lease_s, row.points)
        if compare_and_set(session, row.id, row.version, {"writer": writer}):
            session.commit()
            session.refresh(row)
            return row
        session.rollback()
        fresh = get(session, row.id, None)
        if fresh is None or fresh.status != "active":
            raise RunInUse(row.id, 0.0, 1.0)  # finished or deleted meanwhile: the caller tries again
        row = fresh
    raise RunInUse(row.id, 0.0, 1.0)


def writer_active_at(row: RunRow) -> datetime:
    """When the run's writer was last heard from: its last stored batch or its last heartbeat."""
    stored = as_utc(row.updated_at)
    return max(stored, as_utc(row.writer_seen_at)) if row.writer_seen_at is not None else stored


def heartbeat(session: Session, run_id: str, owner: str, writer: str) -> str:
    """Record that ``writer`` is alive on the run: ``"ok"``, else why not: ``"not_found"``,
    ``"finished"`` or ``"taken_over"`` (another process writes it now). A plain update of one
    column: no version bump, so a heartbeat never makes a batch's compare-and-set start over."""
    done = cast("CursorResult[Any]", session.execute(update(RunRow).where(
        RunRow.id == run_id, RunRow.owner == owner, RunRow.status == "active", RunRow.writer == writer,
    ).values(writer_seen_at=utcnow()).execution_options(synchronize_session=False)))
    session.commit()
    if done.rowcount == 1:
        return "ok"
    row = get(session, run_id, owner)
    if row is None:
        return "not_found"
    if row.status != "active":
        return "finished"
    # a run no process named itself the writer of (created by curl) holds no lease: nothing to keep
    return "ok" if row.writer is None else "taken_over"


def active_named(session: Session, owner: str, name: str) -> RunRow | None:
    return session.scalars(select(RunRow).where(RunRow.owner == owner, RunRow.name == name,
                                                RunRow.status == "active")).first()


def get(session: Session, run_id: str, owner: str | None) -> RunRow | None:
    """The run, or None when it does not exist or belongs to another caller (``owner=None``: any)."""
    if not valid_id(run_id):
        return None
    row = session.get(RunRow, run_id, populate_existing=True)
    if row is None or (owner is not None and row.owner != owner):
        return None
    return row


@dataclass
class Page:
    runs: list[RunRow]
    next_cursor: str | None


def stale_cutoff(stale_after_s: float, now: datetime | None = None) -> datetime | None:
    """The time before which an active run's last stored point makes it stale (None: runs never go
    stale). A stale run is still active: its next point makes it fresh again, and its recorder
    re-attaches to it by name."""
    if stale_after_s <= 0:
        return None
    return (now or utcnow()) - timedelta(seconds=stale_after_s)


def _idle(cutoff: datetime | None) -> Any:
    """SQL: an active run that stored no point since ``cutoff`` (None: no run is)."""
    return and_(RunRow.status == "active", RunRow.updated_at < cutoff) if cutoff is not None else false()


def is_stale(row: RunRow, cutoff: datetime | None) -> bool:
    """Whether ``row`` is an active run that stored no point since ``cutoff`` (its ``updated_at`` is
    set by each batch that stored points, and at creation)."""
    return cutoff is not None and row.status == "active" and as_utc(row.updated_at) < cutoff


def list_runs(session: Session, *, owner: str | None, status: str | None = None, cursor: str | None = None,
              limit: int = 20, stale: bool | None = None, cutoff: datetime | None = None) -> Page:
    """Newest first, keyset-paginated by (created_at, id) like the job list; ``stale`` True: only
    the active runs idle since ``cutoff``, False: every other run. Raises ValueError on a malformed
    cursor."""
    q = select(RunRow)
    if owner is not None:
        q = q.where(RunRow.owner == owner)
    if status is not None:
        q = q.where(RunRow.status == status)
    if stale is not None:
        q = q.where(_idle(cutoff) if stale else not_(_idle(cutoff)))
    return Page(*keyset_page(session, q, RunRow, cursor, limit))


def count_active(session: Session, cutoff: datetime | None, *, owner: str | None = None) -> tuple[int, int]:
    """How many active runs are fresh and how many stale (idle since ``cutoff``)."""
    query = select(func.count(), func.coalesce(func.sum(case((_idle(cutoff), 1), else_=0)), 0)).where(
        RunRow.status == "active")
    if owner is not None:
        query = query.where(RunRow.owner == owner)
    total, stale = session.execute(query).one()
    return int(total) - int(stale), int(stale)


def reap_runs(session: Session, retention_s: float, now: datetime | None = None) -> list[str]:
    """Delete the runs finished, or active without a new point, more than ``retention_s`` ago (0:
    none), with their points and events. Returns their ids."""
    if retention_s <= 0:
        return []
    cutoff = (now or utcnow()) - timedelta(seconds=retention_s)
    old_enough = (((RunRow.status == "finished") & (func.coalesce(RunRow.finished_at, RunRow.updated_at) < cutoff))
                  | _idle(cutoff))
    gone: list[str] = []
    for run_id in list(session.scalars(select(RunRow.id).where(old_enough))):
        # the condition again, in the DELETE itself: a batch that stored points since the look-up
        # made the run recent, and it stays (apisweep4 D4: runs deleted right after a 200)
        deleted = cast("CursorResult[Any]", session.execute(
            delete(RunRow).where(RunRow.id == run_id, old_enough).execution_options(synchronize_session=False)))
        if deleted.rowcount == 1:
            session.execute(delete(RunEventRow).where(RunEventRow.run_id == run_id))
            session.execute(delete(RunPointRow).where(RunPointRow.run_id == run_id))
            gone.append(run_id)
        session.commit()
    return gone


def delete_run(session: Session, run_id: str) -> None:
    """Delete a run with its points and events (explicitly: SQLite enforces no foreign keys here)."""
    session.execute(delete(RunEventRow).where(RunEventRow.run_id == run_id))
    session.execute(delete(RunPointRow).where(RunPointRow.run_id == run_id))
    session.execute(delete(RunRow).where(RunRow.id == run_id))
    session.commit()


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RunPointRow)


def insert_points(session: Session, run_id: str, points: list[Point]) -> list[Point]:
    """Insert the points not stored yet (in the caller's transaction); returns those, in batch order.
    A point whose (metric, step) is stored already, or repeated in the batch, is dropped."""
    unique: dict[tuple[str, float], Point] = {}
    for p in points:
        unique.setdefault((p.metric, float(p.step)), p)
    inserted: set[tuple[str, float]] = set()
    items = list(unique.values())
    for start in range(0, len(items), _CHUNK):
        rows = []
        for p in items[start:start + _CHUNK]:
            value, special = encode_special(p.value)
            rows.append({"run_id": run_id, "metric": p.metric, "step": float(p.step), "value": value,
                         "special": special})
        # One cached statement, executed for many rows (SQLAlchemy batches them as multi-row INSERTs).
        stmt = _insert(session).on_conflict_do_nothing().returning(RunPointRow.metric, RunPointRow.step)
        inserted.update((m, float(s)) for m, s in session.execute(stmt, rows))
    return [p for key, p in unique.items() if key in inserted]


#: A conflict: (step, metric, value kept, value sent).
Conflict = tuple[float, str, float, float]


def conflicts(session: Session, run_id: str, points: list[Point], new: list[Point]) -> list[Conflict]:
    """The points of a batch that were not stored (``new``: those :func:`insert_points` stored)
    whose value differs from the one the run keeps for their (metric, step): a script restarted
    from step 0 under the same run name, not a retried batch (whose resent values are the same).
    NaN equals NaN here, as stored. Costs a query only where the batch had duplicates."""
    kept: dict[tuple[str, float], tuple[float | None, int]] = {
        (p.metric, float(p.step)): encode_special(p.value) for p in new}
    dropped: list[Point] = []
    fresh = {id(p) for p in new}
    for p in points:
        if id(p) not in fresh:
            dropped.append(p)
    if not dropped:
        return []
    wanted: dict[str, set[float]] = {}
    for p in dropped:
        if (p.metric, float(p.step)) not in kept:
            wanted.setdefault(p.metric, set()).add(float(p.step))
    for metric, steps in wanted.items():
        ordered = sorted(steps)
        for start in range(0, len(ordered), _CHUNK):
            q = select(RunPointRow.step, RunPointRow.value, RunPointRow.special).where(
                RunPointRow.run_id == run_id, RunPointRow.metric == metric,
                RunPointRow.step.in_(ordered[start:start + _CHUNK]))
            for step, value, special in session.execute(q):
                kept[(metric, float(step))] = (value, special)
    out: list[Conflict] = []
    for p in dropped:
        have = kept.get((p.metric, float(p.step)))
        if have is not None and have != encode_special(p.value):
            out.append((p.step, p.metric, decode_special(*have), p.value))
    return out


def bulk_points(session: Session, run_id: str, points: list[Point]) -> None:
    """Insert points known to be new, fast (no RETURNING): for filling a run in benchmarks and tests."""
    session.execute(insert(RunPointRow), [
        {"run_id": run_id, "metric": p.metric, "step": float(p.step), **dict(zip(
            ("value", "special"), encode_special(p.value), strict=True))} for p in points])


def iter_points(session: Session, run_id: str, *, batch: int = 50_000) -> Iterator[Point]:
    """Every stored point of a run, by series and then step (the primary key's order)."""
    q = (select(RunPointRow.metric, RunPointRow.step, RunPointRow.value, RunPointRow.special)
         .where(RunPointRow.run_id == run_id).order_by(RunPointRow.metric, RunPointRow.step)
         .execution_options(yield_per=batch))
    for metric, step, value, special in session.execute(q):
        yield Point(metric, step, decode_special(value, special))


def run_arrays(session: Session, run_id: str, *, chunk: int = 5_000) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Every stored series of a run as ``(metric, steps, values)`` arrays (steps ascending), in
    metric order: one query in the primary key's order, fetched ``chunk`` rows at a time and turned
    into numpy columns per chunk, so a run of millions of points costs about 16 bytes a point (the
    arrays) and no Python object per point outlives its chunk (finishing a run reads every point)."""
    # a NULL value with code 0 reads as code 1 (NaN), as decode_special reads it
    code = RunPointRow.special + case((and_(RunPointRow.value.is_(None), RunPointRow.special == 0), 1), else_=0)
    q = (select(RunPointRow.metric, RunPointRow.step, func.coalesce(RunPointRow.value, 0.0), code)
         .where(RunPointRow.run_id == run_id).order_by(RunPointRow.metric, RunPointRow.step)
         .execution_options(yield_per=chunk))
    name: str | None = None
    parts: list[tuple[np.ndarray, np.ndarray]] = []

    def done() -> tuple[str, np.ndarray, np.ndarray]:
        assert name is not None
        steps = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        values = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        return name, steps, values

    # Core, not the ORM: no per-row ORM bookkeeping (the ORM path took twice as long)
    for rows in session.connection().execute(q).partitions():
        metrics, steps_t, values_t, special_t = zip(*rows, strict=True)
        steps = np.array(steps_t, dtype=np.float64)
        values = _decoded(np.array(values_t, dtype=np.float64), np.array(special_t, dtype=np.int64))
        labels = np.array(metrics, dtype=object)
        cuts = [0, *(np.flatnonzero(labels[1:] != labels[:-1]) + 1).tolist(), len(labels)]
        del metrics, labels
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            metric = rows[a][0]
            if metric != name:
                if name is not None:
                    yield done()
                name, parts = metric, []
            parts.append((steps[a:b].copy() if b - a < len(steps) else steps,
                          values[a:b].copy() if b - a < len(values) else values))
    if name is not None:
        yield done()


def series_arrays(session: Session, run_id: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """One series' stored points as arrays (steps ascending), fetched as plain rows: rebuilding a
    run's state reads a million points in about a second, not a Python object per point."""
    rows = session.execute(select(RunPointRow.step, RunPointRow.value, RunPointRow.special)
                           .where(RunPointRow.run_id == run_id, RunPointRow.metric == metric)
                           .order_by(RunPointRow.step)).all()
    if not rows:
        return np.zeros(0), np.zeros(0)
    arr = np.array([(s, math.nan if v is None else v, c) for s, v, c in rows], dtype=np.float64)
    return arr[:, 0], _decoded(arr[:, 1], arr[:, 2])


def _decoded(values: np.ndarray, special: np.ndarray) -> np.ndarray:
    """``values`` with the stored ``special`` codes applied in place, as
    :func:`~gradhealth.live.points.decode_special` reads one point: 0 the value, 2 +Inf, 3 -Inf,
    any other NaN (a value stored as NULL is NaN already)."""
    values[special != 0] = math.nan
    values[special == 2] = math.inf
    values[special == 3] = -math.inf
    return values


def count_points(session: Session, run_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(RunPointRow).where(RunPointRow.run_id == run_id))
               or 0)


def add_events(session: Session, run_id: str, after: int, events: list[tuple[str, dict[str, Any]]]) -> int:
    """Store events numbered after ``after`` (the run's last); returns the new last number (the
    caller writes it with its compare-and-set on the version, which keeps the numbers unique)."""
    for name, data in events:
        after += 1
        session.add(RunEventRow(run_id=run_id, seq=after, event=name, data=data))
    return after


def events_after(session: Session, run_id: str, seq: int, limit: int = 500) -> list[RunEventRow]:
    return list(session.scalars(select(RunEventRow).where(RunEventRow.run_id == run_id, RunEventRow.seq > seq)
                                .order_by(RunEventRow.seq).limit(limit)))


def compare_and_set(session: Session, run_id: str, version: int, values: dict[str, Any]) -> bool:
    """Write ``values`` and bump the version if the run is still at ``version`` (in the caller's
    transaction); False when another change came first."""
    result = cast("CursorResult[Any]", session.execute(
        update(RunRow).where(RunRow.id == run_id, RunRow.version == version)
        .values(**values, version=version + 1).execution_options(synchronize_session=False)))
    return result.rowcount == 1


def active_recent(session: Session, limit: int, *, owner: str | None = None,
                  cutoff: datetime | None = None) -> list[RunRow]:
    """The ``limit`` most recently updated active runs (what the per-run gauges show), leaving out
    those stale since ``cutoff``; ``owner``'s alone where given."""
    query = select(RunRow).where(RunRow.status == "active", not_(_idle(cutoff)))
    if owner is not None:
        query = query.where(RunRow.owner == owner)
    return list(session.scalars(query.order_by(RunRow.updated_at.desc()).limit(limit)))
