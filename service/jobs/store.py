"""Job state transitions on the job table: the only code that writes job state.

States::

    queued --claim--> running --complete--> succeeded
       |                 |  \\--fail-------> failed
       |                 |   \\--lease expired, attempts left--> queued   (a worker died)
       |                 |    \\-lease expired, no attempts left--> failed
       |                 |\\--graceful stop (SIGTERM) of its worker--> queued, attempt given back
       |                 \\--cancel requested, seen by the worker--> cancelled
       \\--cancel--> cancelled

Claims are compare-and-set updates (``UPDATE ... WHERE id = ? AND status = 'queued'``), so two
workers racing for one job cannot both win, on SQLite (writes serialise) and on PostgreSQL
(the losing UPDATE re-checks its WHERE clause after the winner commits) alike.
"""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import json
import logging
import re
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any, cast, overload

from sqlalchemy import Table, Text, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer
from sqlalchemy.sql.base import Executable

from gradhealth.core.numbers import plain
from gradhealth.db.models import JobRow
from gradhealth.errors import ClientQuotaExceeded, IdempotencyConflict, QueueFull, problem_type
from gradhealth.jobs import wakeup

log = logging.getLogger("gradhealth.jobs")

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
#: The job table in Core: a write on the worker's hot path skips the ORM's bulk-update bookkeeping.
_JOBS = cast("Table", JobRow.__table__)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _dml(session: Session, statement: Executable) -> CursorResult[Any]:
    """Run an UPDATE or DELETE. ``Session.execute`` is typed as returning a plain ``Result``; for
    these statements it is a ``CursorResult``, whose ``rowcount`` the compare-and-set steps read."""
    return cast("CursorResult[Any]", session.execute(statement))


# Typed per argument, so that a time known to be set stays a datetime for the caller.
@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def request_hash(kind: str, request: Any) -> str:
    """A stable hash of a request, for idempotency."""
    canonical = json.dumps({"kind": kind, "request": request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


#: Built once: building and hashing a statement cost more CPU than running it.
_INSERT = insert(_JOBS)
_COUNT_QUEUED = select(func.count()).select_from(_JOBS).where(_JOBS.c.status == "queued")
_COUNT_CLIENT_ACTIVE = select(func.count()).select_from(_JOBS).where(
    _JOBS.c.client == bindparam("client"), _JOBS.c.status.in_(("queued", "running")))


def submit(session: Session, *, kind: str, owner: str, request: Any, idempotency_key: str | None,
           time_limit_s: float, max_attempts: int, fingerprint: Any = None,
           max_queued: int | None = None, client: str | None = None,
           max_per_client: int | None = None, spec_text: str | None = None) -> tuple[JobRow, bool]:
    """Queue a job; returns (job, created). A repeated key with the same body returns the first job.

    ``client`` is who submits it ("key:NAME", or "address:IP" with keys off); with ``max_per_client``
    jobs of that client queued or running already, a new job is refused with
    :class:`ClientQuotaExceeded` (429), before the global ``max_queued`` is looked at, so one
    client cannot fill the queue for everyone.

    ``max_queued``: with this many jobs queued already, a new job is refused with
    :class:`QueueFull` (503); a repeated submission still gets its first job.

    ``spec_text`` is an architecture spec's text as submitted (its reports' lines are placed in it).

    ``fingerprint`` is what "the same body" means when it is not the request itself (an upload is
    stored under a new path each time, but its content hash is the same).
    """
    digest = request_hash(kind, request if fingerprint is None else fingerprint)
    if idempotency_key is not None:
        existing = session.scalar(select(JobRow).where(JobRow.owner == owner,
                                                       JobRow.idempotency_key == idempotency_key))
        if existing is not None:
            if existing.request_hash != digest:
                raise IdempotencyConflict(existing.id, idempotency_key)
            return existing, False
    if client is not None and max_per_client:
        active = session.scalar(_COUNT_CLIENT_ACTIVE, {"client": client}) or 0
        if active >= max_per_client:
            session.rollback()
            raise ClientQuotaExceeded(client.partition(":")[2] or client, active, max_per_client)
    if max_queued is not None:
        queued = session.scalar(_COUNT_QUEUED) or 0
        if queued >= max_queued:
            session.rollback()
            raise QueueFull(queued, max_queued)
    now = utcnow()
    values = dict(id=uuid.uuid4().hex, kind=kind, owner=owner, status="queued", request=request,
                  request_hash=digest, idempotency_key=idempotency_key, progress=0.0, stage="queued",
                  attempts=0, max_attempts=max_attempts, time_limit_s=time_limit_s, cancel_requested=False,
                  created_at=now, updated_at=now, name=job_name(kind, request), client=client,
                  spec_text=spec_text)
    # The row is written with one Core INSERT (the ORM's flush of one new object cost more CPU than
    # the insert); the caller gets the job as an ORM object all the same, built from those values,
    # belonging to no session.
    job = JobRow(**values)
    try:
        session.execute(_INSERT, values)  # a lost race on the key surfaces here or at the commit
        wakeup.notify(session, job.id, wakeup.QUEUED)  # idle workers are woken at commit
        session.commit()
    except IntegrityError:
        # Two requests with one new key raced: the loser returns the winner's job (or its conflict).
        session.rollback()
        if idempotency_key is None:
            raise
        winner = session.scalar(select(JobRow).where(JobRow.owner == owner, JobRow.idempotency_key == idempotency_key))
        if winner is None:
            raise
        if winner.request_hash != digest:
            raise IdempotencyConflict(winner.id, idempotency_key) from None
        return winner, False
    return job, True


#: The longest job name stored (the column's size); a longer one is cut, with an ellipsis.
JOB_NAME_MAX = 255
# Control characters (C0, DEL, C1) and Unicode's line separators: a name is one line of a table.
_NAME_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def job_name(kind: str, request: Any) -> str | None:
    """What a job checked, for people: an architecture spec's ``name``, an upload's file name (log
    and model jobs); None when the input has none. One line, at most :data:`JOB_NAME_MAX`
    characters, storable as UTF-8 (a lone surrogate from a JSON escape is replaced)."""
    if not isinstance(request, dict) or request.get("unnamed"):
        return None  # an upload whose file the client did not name (newuser18 #6)
    raw = request.get("name") if kind == "architecture" else request.get("filename")
    if not isinstance(raw, str):
        return None
    text = _NAME_BREAKS.sub(" ", raw).strip().encode("utf-8", "replace").decode("utf-8")
    if not text:
        return None
    return text if len(text) <= JOB_NAME_MAX else text[:JOB_NAME_MAX - 1] + "\u2026"


#: What a job id can look like (ours are uuid4 hex). Anything else is no job, decided before the
#: database sees it: PostgreSQL refuses a NUL in a string with a DataError (a 500).
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_id(job_id: str) -> bool:
    """Whether ``job_id`` could name a job (no NUL, no odd characters, not too long)."""
    return _JOB_ID.fullmatch(job_id) is not None


#: The columns a job list never needs: loading a result can mean megabytes per row.
_HEAVY = (JobRow.result, JobRow.request, JobRow.error, JobRow.spec_text)


def get(session: Session, job_id: str, owner: str | None, *, with_result: bool = True) -> JobRow | None:
    """The job, or None when it does not exist or belongs to another caller (``owner=None``: any).

    ``with_result=False`` leaves the result unloaded (reading ``row.result`` then raises); fetch it
    as stored text with :func:`result_text`."""
    if not valid_id(job_id):
        return None
    options = [defer(JobRow.result, raiseload=True)] if not with_result else []
    job = session.get(JobRow, job_id, populate_existing=True, options=options)  # one SELECT, fresh values
    if job is None or (owner is not None and job.owner != owner):
        return None
    return job


#: A job as stored, its result as the JSON text stored (``result_text``), in one Core SELECT: the
#: ``?wait`` hand-back sends that text on as it is, so neither the ORM nor a JSON parse is needed.
_READ = select(*(c for c in _JOBS.c if c.name not in ("result", "spec_text")),  # spec_text: reports only
               sql_cast(_JOBS.c.result, Text).label("result_text")).where(
    _JOBS.c.id == bindparam("job_id", type_=_JOBS.c.id.type))


def read(session: Session, job_id: str, owner: str | None) -> Row[Any] | None:
    """The job as :func:`get` finds it (None: no such job, or another caller's), as a read-only row:
    every column as an attribute, except ``result``, which is ``result_text``, the JSON text
    stored (None or ``"null"`` when there is none)."""
    if not valid_id(job_id):
        return None
    row = cast("Row[Any] | None", session.execute(_READ, {"job_id": job_id}).first())
    if row is None or (owner is not None and row.owner != owner):
        return None
    return row


@dataclass
class Page:
    jobs: list[JobRow]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """The page cursor after the row (created_at, id): jobs and live runs page the same way."""
    raw = f"{as_utc(created_at).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on a malformed cursor (checked here, so no odd value reaches the query)."""
    created, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    if not valid_id(job_id):
        raise ValueError("the cursor names no job")
    when = datetime.fromisoformat(created)
    if when.tzinfo is None:
        raise ValueError("the cursor's time has no zone")
    return when, job_id


def list_jobs(session: Session, *, owner: str | None, status: str | None = None, kind: str | None = None,
              cursor: str | None = None, limit: int = 20) -> Page:
    """Newest first, keyset-paginated by (created_at, id). The rows carry no result, request or
    error (reading one raises): a page of summaries must not load every document on it."""
    q = select(JobRow).options(*(defer(c, raiseload=True) for c in _HEAVY))
    if owner is not None:
        q = q.where(JobRow.owner == owner)
    if status is not None:
        q = q.where(JobRow.status == status)
    if kind is not None:
        q = q.where(JobRow.kind == kind)
    return Page(*keyset_page(session, q, JobRow, cursor, limit))


def keyset_page(session: Session, query: Any, table: Any, cursor: str | None,
                limit: int) -> tuple[list[Any], str | None]:
    """One page of ``query`` newest first by (created_at, id), and the cursor of the next page
    (None on the last): jobs and live runs page alike. Raises ValueError on a malformed cursor."""
    if cursor is not None:
        created, row_id = decode_cursor(cursor)
        query = query.where(or_(table.created_at < created,
                                and_(table.created_at == created, table.id < row_id)))
    rows = list(session.scalars(query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None


def result_text(session: Session, job_id: str) -> str | None:
    """A job's result as the JSON text stored, not parsed (None when it has none)."""
    text = session.scalar(select(sql_cast(JobRow.result, Text)).where(JobRow.id == job_id))
    return None if text is None or text == "null" else text


def cancel_or_delete(session: Session, job_id: str) -> str | None:
    """Cancel a queued job, ask a running one to stop, delete a finished one.

    Returns what happened, or None when the job is gone. Each step is one compare-and-set write,
    so a job that changes state meanwhile falls through to the next step.
    """
    now = utcnow()
    session.rollback()
    steps = (
        ("cancelled", update(JobRow).where(JobRow.id == job_id, JobRow.status == "queued")
         .values(status="cancelled", stage="cancelled", finished_at=now, updated_at=now)),
        ("cancel_requested", update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
         .values(cancel_requested=True, updated_at=now)),
        ("deleted", delete(JobRow).where(JobRow.id == job_id, JobRow.status.in_(TERMINAL))),
    )
    for outcome, statement in steps:
        done = _dml(session, statement).rowcount
        if done and outcome == "cancelled":  # a queued job ends here: counted in the same commit
            _finished(session, job_id, "cancelled", now, None, None)
        session.commit()
        if done:
            return outcome
    return None


# --- the worker's side -------------------------------------------------------------------------

def reap_expired(session: Session) -> int:
    """Requeue running jobs whose worker stopped renewing its lease, or fail them when out of attempts."""
    now = utcnow()
    stale = session.execute(select(JobRow.id, JobRow.attempts, JobRow.max_attempts, JobRow.lease_owner,
                                   JobRow.cancel_requested)
                            .where(JobRow.status == "running", JobRow.lease_expires_at < now)).all()
    # End the read transaction before writing: SQLite cannot upgrade a stale WAL snapshot to a write.
    session.rollback()
    changed = 0
    for job_id, attempts, max_attempts, lease_owner, cancel_requested in stale:
        if cancel_requested:  # it was asked to stop: its worker's death finishes the job as cancelled
            values: dict[str, Any] = dict(status="cancelled", finished_at=now, stage="cancelled",
                                          lease_owner=None, lease_expires_at=None)
        elif attempts >= max_attempts:
            values = dict(
                status="failed", finished_at=now, stage="failed", lease_owner=None, lease_expires_at=None,
                error=problem("worker-lost", "Worker lost",
                              f"the worker running this job stopped {attempts} time(s) "
                              f"(limit {max_attempts}); the last one was {lease_owner}", 500))
        else:
            values = dict(status="queued", stage=f"requeued after worker {lease_owner} was lost",
                          lease_owner=None, lease_expires_at=None, progress=0.0)
        # Re-check the lease in the write: a heartbeat that landed meanwhile keeps the job.
        done = _dml(session, update(JobRow).where(
            JobRow.id == job_id, JobRow.status == "running", JobRow.lease_owner == lease_owner,
            JobRow.lease_expires_at < now).values(updated_at=now, **values)).rowcount
        if done and values["status"] in TERMINAL:
            _finished(session, job_id, values["status"], now, None, values.get("error"))
        changed += done
    session.commit()
    return changed


def release_worker(session: Session, worker_id: str) -> None:
    """Expire the leases of a worker known to be dead, so its job is requeued at once."""
    session.execute(update(JobRow).where(JobRow.status == "running", JobRow.lease_owner == worker_id)
                    .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    reap_expired(session)


def requeue_stopped(session: Session, *, job_id: str, worker_id: str) -> bool:
    """Hand back the job of a worker that is stopping gracefully (SIGTERM): queued again with the
    attempt it used given back, since the job did nothing wrong. A job asked to stop ends cancelled.

    One compare-and-set on (id, lease owner, running): False when the lease was lost meanwhile."""
    now = utcnow()
    session.rollback()
    freed = dict(lease_owner=None, lease_expires_at=None, updated_at=now)
    mine = (JobRow.id == job_id, JobRow.lease_owner == worker_id, JobRow.status == "running")
    done = _dml(session, update(JobRow).where(*mine, JobRow.cancel_requested.is_(False)).values(
        status="queued", stage=f"requeued: worker {worker_id} stopped", progress=0.0,
        attempts=JobRow.attempts - 1, **freed)).rowcount
    if not done:
        done = _dml(session, update(JobRow).where(*mine, JobRow.cancel_requested.is_(True)).values(
            status="cancelled", stage="cancelled", finished_at=now, **freed)).rowcount
        if done:
            _finished(session, job_id, "cancelled", now, None, None)
    session.commit()
    return bool(done)


#: An upload folder no job names is left this long before it is taken for debris: the upload
#: may still be streaming in, or its job about to be submitted.
ORPHAN_GRACE_S = 3600.0


def remove_upload(folder: Path) -> OSError | None:
    """Delete one upload folder and what is in it. Returns None when it is gone (already gone too:
    another API replica's sweep may have removed it first), else the first error that left part of
    it behind (a read-only mount: EROFS; no write permission: EACCES), logged as a warning with the
    path and errno: a delete that fails must not fail silently, or the volume only grows."""
    errors: list[OSError] = []

    def failed(path: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return  # removed by someone else meanwhile: what we wanted
        errors.append(exc if isinstance(exc, OSError) else OSError(str(exc)))
        if len(errors) == 1 and isinstance(exc, OSError) and exc.filename is None:
            exc.filename = path

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=lambda _func, path, exc: failed(path, exc))
    else:
        shutil.rmtree(folder, onerror=lambda _func, path, info: failed(path, info[1]))
    if not errors:
        return None
    first = errors[0]
    code = errno.errorcode.get(first.errno, "?") if first.errno is not None else "?"
    log.warning("could not delete upload folder %s: %s: [Errno %s %s] %s%s", folder,
                first.filename or folder, first.errno, code, first.strerror or first,
                f" ({len(errors)} entries left)" if len(errors) > 1 else "")
    return first


def reap_uploads(session: Session, upload_dir: Path, *, retention_s: float,
                 orphan_grace_s: float = ORPHAN_GRACE_S,
                 on_error: Callable[[Path, OSError], None] | None = None) -> int:
    """Remove upload folders (``upload_dir/<hex>/<file>``) that no job names and that have not
    changed for ``orphan_grace_s`` (a partial upload left by a killed server), and those of jobs
    finished more than ``retention_s`` ago (0: kept until the job is deleted). Returns how many
    were removed; a folder that could not be (see :func:`remove_upload`) is logged, handed to
    ``on_error`` (the API counts it in ``/metrics``) and not counted.

    Folders are matched by name, not by full path, so a host that mounts the shared folder
    elsewhere still recognises them."""
    if not upload_dir.is_dir():
        return 0
    folders = {p.name: p for p in upload_dir.iterdir() if p.is_dir() and not p.is_symlink()}
    if not folders:
        return 0
    now = utcnow()
    rows = session.execute(select(JobRow.request, JobRow.status, JobRow.finished_at)
                           .where(JobRow.kind.in_(("logs", "model")))).all()
    session.rollback()
    held: set[str] = set()
    expired: set[str] = set()
    for request, status, finished_at in rows:
        path = request.get("path") if isinstance(request, dict) else None
        if not isinstance(path, str):
            continue
        name = PurePath(path).parent.name
        old = (retention_s > 0 and status in TERMINAL and finished_at is not None
               and as_utc(finished_at) < now - timedelta(seconds=retention_s))
        (expired if old else held).add(name)
    removed = 0
    for name, folder in folders.items():
        if name in held:  # another job (an idempotent repeat) may still hold an expired one's folder
            continue
        if name not in expired:
            try:
                changed = max([folder.stat().st_mtime] + [f.stat().st_mtime for f in folder.iterdir()])
            except OSError:
                continue
            if now.timestamp() - changed < orphan_grace_s:
                continue
        error = remove_upload(folder)
        if error is None:
            removed += 1
        elif on_error is not None:
            on_error(folder, error)
    return removed


def claim(session: Session, *, worker_id: str, lease_s: float,
          kinds: tuple[str, ...] | None = None) -> Row[Any] | None:
    """Atomically take the oldest queued job, or None when none is queued. The job comes back as
    the row the claim wrote (every column of the job table, read as attributes: ``job.id``,
    ``job.request``, ``job.attempts``), not as an ORM object: the worker only reads it.

    The first try is one statement, a compare-and-set on the oldest queued id chosen inside the
    UPDATE (no read and rollback before it: the common case, one worker woken for one job). When
    that loses a race, each round reads a few of the oldest queued ids and tries them in turn; a
    lost race moves on to the next candidate instead of giving up, so concurrent workers spread
    over the queue rather than all fighting for its head.
    """
    head, by_id, candidates = _claim_statements(tuple(kinds) if kinds else None)
    won = _take(session, head, {}, worker_id, lease_s)
    if won is not None:
        return won
    while True:
        found = list(session.scalars(candidates))
        session.rollback()  # the compare-and-set below starts its own write transaction
        if not found:
            return None
        for job_id in found:
            if (won := _take(session, by_id, {"job_id": job_id}, worker_id, lease_s)) is not None:
                return won


@functools.lru_cache(maxsize=16)
def _claim_statements(kinds: tuple[str, ...] | None) -> tuple[Executable, Executable, Executable]:
    """The claim's statements for one set of kinds, built once: building and hashing a statement
    cost more CPU than running it (a worker asks with the same kinds every time). Returns the
    compare-and-set on the queue's head, the one on a given ``:job_id``, and the candidates' read."""
    t = _JOBS.c
    queued = select(t.id).where(t.status == "queued")
    if kinds:
        queued = queued.where(t.kind.in_(kinds))
    queued = queued.order_by(t.created_at, t.id)
    now = bindparam("now", type_=t.updated_at.type)
    # RETURNING hands back the claimed row with the write: no second read on the job's path.
    take = update(_JOBS).values(
        status="running", lease_owner=bindparam("worker_id", type_=t.lease_owner.type),
        lease_expires_at=bindparam("lease_expires_at", type_=t.lease_expires_at.type),
        attempts=t.attempts + 1, started_at=now, updated_at=now, stage="starting", progress=0.0,
    ).returning(*t)
    head = take.where(t.id == queued.limit(1).scalar_subquery(), t.status == "queued")
    by_id = take.where(t.id == bindparam("job_id", type_=t.id.type), t.status == "queued")
    return head, by_id, queued.limit(16)


def _take(session: Session, statement: Executable, params: dict[str, Any], worker_id: str,
          lease_s: float) -> Row[Any] | None:
    """One compare-and-set of a claim (a statement of :func:`_claim_statements`), committed."""
    now = utcnow()
    won = session.execute(statement, {**params, "now": now, "worker_id": worker_id,
                                      "lease_expires_at": now + timedelta(seconds=lease_s)}).first()
    session.commit()
    return won


def heartbeat(session: Session, *, job_id: str, worker_id: str, lease_s: float,
              progress: float | None = None, stage: str | None = None) -> tuple[bool, bool]:
    """Renew the lease (and record progress). Returns (still ours, cancel requested)."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}
    if progress is not None:
        values["progress"] = progress
    if stage is not None:
        values["stage"] = stage[:255]
    ours = _dml(session, update(JobRow).where(JobRow.id == job_id, JobRow.lease_owner == worker_id,
                                              JobRow.status == "running").values(**values)).rowcount
    session.commit()
    cancel = bool(session.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))
    session.rollback()
    return bool(ours), cancel


_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(value: Any) -> Any:
    """A JSON value with lone surrogates in its strings (keys too) replaced by U+FFFD.

    Such a string is stored without complaint (as a ``\\ud800`` escape) but cannot be encoded as
    UTF-8, so every later read of the job would be a 500; nothing stored may hold one."""
    if isinstance(value, dict | list):
        # One C-speed pass finds whether there is anything to replace (almost never); walking a
        # whole result document in Python cost more than storing it.
        try:
            clean = _SURROGATE.search(json.dumps(value, ensure_ascii=False)) is None
        except (TypeError, ValueError):  # not plain JSON data: walk it
            clean = False
        if clean:
            return value
    return _scrub(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def finish(session: Session, *, job_id: str, worker_id: str, status: str, result: Any = None,
           error: dict[str, Any] | None = None) -> bool:
    """Record the outcome; ignored (False) when the lease was lost meanwhile."""
    now = utcnow()
    result, error = scrub(result), scrub(error)
    params: dict[str, Any] = {"job_id": job_id, "worker_id": worker_id, "v_status": status, "v_now": now,
                              "v_error": error}
    succeeded = status == "succeeded"
    if succeeded:
        params["v_result"] = result
        params["v_result_status"] = result.get("status") if isinstance(result, dict) else None
        codes = [f.get("code") for f in (result or {}).get("findings", [])] if isinstance(result, dict) else []
        params["v_finding_codes"] = ",".join(c for c in codes if c)
    row = session.execute(_finish_statement(succeeded), params).first()
    if row is not None:
        _finished(session, job_id, status, now, result, error, row=tuple(row))
    session.commit()
    return row is not None


@functools.lru_cache(maxsize=2)
def _finish_statement(succeeded: bool) -> Executable:
    """The finish's compare-and-set (one for a success, which also writes the result), built once:
    building it cost more CPU than running it. RETURNING hands :func:`_finished` the job's kind,
    owner and start with the write: no second statement on the job's path."""
    t = _JOBS.c

    def param(name: str, column: Any) -> Any:
        return bindparam(f"v_{name}", type_=column.type)

    values: dict[str, Any] = dict(status=param("status", t.status), finished_at=param("now", t.finished_at),
                                  updated_at=param("now", t.updated_at), lease_owner=None,
                                  lease_expires_at=None, stage=param("status", t.stage),
                                  error=param("error", t.error))
    if succeeded:
        values.update(progress=1.0, result=param("result", t.result),
                      result_status=param("result_status", t.result_status),
                      finding_codes=param("finding_codes", t.finding_codes))
    return (update(_JOBS).where(t.id == bindparam("job_id", type_=t.id.type),
                                t.lease_owner == bindparam("worker_id", type_=t.lease_owner.type),
                                t.status == "running")
            .values(**values).returning(t.kind, t.owner, t.started_at))


def _finished(session: Session, job_id: str, status: str, now: datetime, result: Any,
              error: dict[str, Any] | None, *, row: tuple[str, str, Any] | None = None) -> None:
    """What a job reaching a terminal state sets off, in the transaction that records it: the
    metric counters and the webhook outbox (so neither counts nor announces a change rolled back).
    ``row``: the job's (kind, owner, started_at) where the caller has them already."""
    from gradhealth.jobs import counters
    from gradhealth.webhooks import outbox

    kind, owner, started = row if row is not None else session.execute(
        select(JobRow.kind, JobRow.owner, JobRow.started_at).where(JobRow.id == job_id)).one()
    start = as_utc(started)
    found = [f for f in (result or {}).get("findings", []) if isinstance(f, dict) and f.get("code")] \
        if isinstance(result, dict) else []
    codes = [f["code"] for f in found]
    counters.job_finished(session, kind=kind, status=status,
                          duration_s=(now - start).total_seconds() if start else None, codes=codes,
                          severities=[str(f.get("severity") or "") for f in found])
    payload: dict[str, Any] = {"job_id": job_id, "kind": kind, "status": status,
                               "result_status": result.get("status") if isinstance(result, dict) else None,
                               "finding_codes": codes, "error": job_problem(error, job_id)}
    outbox.enqueue(session, owner=owner, event="job.finished", payload=payload)
    wakeup.notify(session, job_id, wakeup.FINISHED)  # ?wait callers are woken at commit


def job_problem(error: Any, job_id: str) -> Any:
    """A failed job's stored problem as the job and its ``job.finished`` webhook show it:
    ``instance`` the job's own path, and a client error's ``errors[]`` present, if only with the
    detail, as a 4xx answer's always is (the failed log job of a header-only CSV had ``errors:
    null``, ``instance: null``: newuser16 #6)."""
    if not isinstance(error, dict):
        return error
    shown = dict(error)
    shown.setdefault("instance", f"/v1/jobs/{job_id}")
    status = shown.get("status")
    if isinstance(status, int) and 400 <= status < 500 and not shown.get("errors"):
        shown["errors"] = [{"pointer": None, "parameter": None, "detail": str(shown.get("detail", ""))}]
    return shown


def problem(slug: str, title: str, detail: str, status: int) -> dict[str, Any]:
    """An RFC 9457 problem body as stored on a failed job."""
    return {"type": problem_type(slug), "title": title, "status": status,
            "detail": detail}


#: What makes a job of each kind quicker, for its time-limit problem.
_SMALLER = {
    "architecture": "make the spec smaller (fewer seeds, layers or time steps)",
    "logs": "send a smaller upload (fewer runs in the archive, a shorter log)",
    "model": "check a smaller model or input (fewer seeds, a shorter sequence, a smaller batch)",
}


def time_limit_problem(kind: str, limit_s: float, stage: str | None = None) -> dict[str, Any]:
    """The problem stored on a job stopped at its time limit, with the advice that fits its kind."""
    at = f" (at: {stage})" if stage else ""
    advice = _SMALLER.get(kind, "send a smaller input")
    return problem("time-limit", "Time limit exceeded",
                   f"the job ran longer than its limit of {plain(limit_s)} s{at} and was stopped; {advice} or raise "
                   "GRADHEALTH_JOB_TIME_LIMIT_S", 422)


def counts(session: Session) -> dict[tuple[str, str], int]:
    """Jobs by (kind, status), for metrics."""
    rows = session.execute(select(JobRow.kind, JobRow.status, func.count()).group_by(JobRow.kind, JobRow.status))
    return {(k, s): n for k, s, n in rows}
