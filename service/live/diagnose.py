"""Appending to a live run and keeping its diagnosis current, incrementally.

Each run's :class:`~gradhealth.live.state.RunState` is cached in this process, keyed by the run's
id and version; a batch updates it with the points that were new and re-runs the log check's
detectors on its bounded series, so the cost of a batch is O(batch + the bounded series), whatever
the run's length. A miss (another process appended, or a restart) rebuilds the state from the
stored points once. :func:`finish` runs the full log check over every point, read per series into
arrays. The API hands batches and finishes to a run's queue (:func:`submit_append`,
:func:`submit_finish`): one worker per run at a time, on a small pool of this module's own, stores
and diagnoses the batches queued together, so no request waits for a run's lock on a thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from gradhealth.core.document import Diagnosis, Finding
from gradhealth.core.words import shorten
from gradhealth.db.models import RunEventRow, RunRow
from gradhealth.jobs import counters
from gradhealth.live import store
from gradhealth.live.points import Point, unstorable
from gradhealth.live.state import RunState, SeriesState
from gradhealth.logs.check import diagnose as log_diagnose
from gradhealth.logs.readers.native import native_role
from gradhealth.logs.series import RunLog, classify, clean_name, make_series
from gradhealth.logs.thresholds import LogThresholds
from gradhealth.webhooks import outbox

# --- configuration -------------------------------------------------------------------------------


def _params_schema(schema: dict[str, Any]) -> None:
    """The schema of ``params`` says what ``_utf8`` refuses (a generated client, or a fuzzer, then
    knows): a key holds no control character, a value no NUL."""
    schema["propertyNames"] = {"maxLength": 255, "pattern": "^[^\\x00-\\x1f]*$"}
    schema["additionalProperties"] = {"type": "string", "maxLength": 1000, "pattern": "^[^\\x00]*$"}


class RunThresholds(LogThresholds):
    """The log check's thresholds as a run's config takes them: a name that is none of them is
    refused, and the schema says so (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RunConfig(BaseModel):
    """What a run's diagnosis needs beyond its points (what a log's params would hold). Any other
    field is refused (422 at its pointer): a misspelt ``clip_treshold`` would otherwise be dropped."""

    # (allow_inf_nan=False: a clip threshold of 1e999 read as inf, stored as null, judged as "inf")
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    clip_threshold: float | None = Field(
        None, gt=0, description="the gradient clipping max_norm the run uses (clipping_saturated, clip remedies)")
    num_classes: int | None = Field(None, ge=2, le=1_000_000,
                                    description="classes of a classifier (a loss flat at ln k is at chance)")
    params: dict[Annotated[str, Field(max_length=255)], Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=100, json_schema_extra=_params_schema,
        description="other hyper-parameters, as a log's params (e.g. max_grad_norm)")
    thresholds: RunThresholds | None = Field(
        None, description="the log check's thresholds: the fields given override the service's")

    @field_validator("params", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        # a log's params are text ({"lr": "0.1"}); a number or a flag given as JSON reads as its text
        if isinstance(value, dict):
            return {k: (("true" if v else "false") if isinstance(v, bool)
                        else repr(v) if isinstance(v, int | float) else v) for k, v in value.items()}
        return value

    @field_validator("params")
    @classmethod
    def _utf8(cls, value: dict[str, str]) -> dict[str, str]:
        # a key is a name (no control character), a value free text (no NUL): as a point's names,
        # refused here on either store, not by PostgreSQL alone
        for key, text in value.items():
            why = unstorable(key)
            if why is not None:
                raise ValueError(f"the key {key[:40]!r} {why}")
            why = unstorable(text, name=False)
            if why is not None:
                raise ValueError(f"the value of {key[:40]!r} {why}")
        return {clean_name(k): clean_name(v) for k, v in value.items()}  # storable as UTF-8

    @field_validator("thresholds", mode="before")
    @classmethod
    def _known_thresholds(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(LogThresholds.model_fields))
            if unknown:
                raise ValueError(f"no such threshold: {', '.join(unknown)} (see GET /v1/catalog or the log "
                                 "thresholds in docs/settings.md)")
        return value


def params_of(config: dict[str, Any]) -> dict[str, str]:
    """The RunLog params a run's stored config stands for. (``gradhealth.recorder.config_params`` is
    the same mapping for the recorder's file, kept there so that the recorder stays one file needing
    only torch; a test pins that the two agree.)"""
    params = {str(k): str(v) for k, v in (config.get("params") or {}).items()}
    if config.get("clip_threshold") is not None:
        params["max_grad_norm"] = str(config["clip_threshold"])
    if config.get("num_classes") is not None:
        params["num_classes"] = str(config["num_classes"])
    return params


def param_sources_of(config: dict[str, Any]) -> dict[str, str]:
    """Where :func:`params_of`'s params came from where the run's config named them otherwise: a
    finding then names the config field the user set (newuser19 #7: "from the run's params" for a run
    created with only ``config.clip_threshold``)."""
    sources = {}
    if config.get("clip_threshold") is not None:
        sources["max_grad_norm"] = "the run's config.clip_threshold"
    if config.get("num_classes") is not None:
        sources["num_classes"] = "the run's config.num_classes"
    return sources


def thresholds_of(config: dict[str, Any], base: LogThresholds) -> LogThresholds:
    """The service's thresholds with the run's own overrides (stored as only the fields given);
    a ValidationError where together they do not fit (an inverted warning/error pair)."""
    given = config.get("thresholds") or {}
    return LogThresholds.model_validate({**base.model_dump(), **given}) if given else base


def run_thresholds(config: dict[str, Any], base: LogThresholds) -> tuple[LogThresholds, str | None]:
    """:func:`thresholds_of` for a stored run, with a note where its overrides no longer fit the
    service's thresholds (a run stored before the service's were changed): then the service's
    thresholds are used, so a run's points are never refused for its stored settings."""
    try:
        return thresholds_of(config, base), None
    except ValidationError as e:
        why = "; ".join(str(err.get("msg", "")).removeprefix("Value error, ") for err in e.errors())
        return base, f"the run's thresholds do not fit the service's ({why}): the service's thresholds are used"


# --- errors --------------------------------------------------------------------------------------


class RunFinished(Exception):
    """Points for a run that is finished."""


class RunFull(Exception):
    """More points than a run may hold."""


class RunGone(Exception):
    """The run was deleted meanwhile."""


# --- the state cache -----------------------------------------------------------------------------

#: Runs whose state this process keeps (least recently used dropped first)...
CACHE_RUNS = 256
#: ...and about how many bytes their states may take together (errsweep2 N14: a run of 10,000
#: series holds ~27 MB, so a count alone let 256 of them take gigabytes). The newest run stays
#: cached even when it alone is larger.
CACHE_BYTES = 512 * 2**20
_cache: OrderedDict[str, tuple[int, RunState, int]] = OrderedDict()
_cache_size = 0
_cache_lock = threading.Lock()


class _RunLock:
    """A run's lock, with the callers using it: the entry is dropped when none is and the run is
    no longer cached (finished, deleted, evicted), so the table does not grow with every run."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


_run_locks: dict[str, _RunLock] = {}


@contextmanager
def _lock(run_id: str) -> Iterator[None]:
    with _cache_lock:
        entry = _run_locks.get(run_id)
        if entry is None:
            entry = _run_locks[run_id] = _RunLock()
        entry.users += 1
    try:
        with entry.lock:
            yield
    finally:
        with _cache_lock:
            entry.users -= 1
            if not entry.users and run_id not in _cache and _run_locks.get(run_id) is entry:
                del _run_locks[run_id]


def _drop_lock(run_id: str) -> None:
    """Forget a run's lock entry unless a caller holds or waits for it (under ``_cache_lock``)."""
    entry = _run_locks.get(run_id)
    if entry is not None and not entry.users:
        del _run_locks[run_id]


def _cached(run: RunRow) -> RunState | None:
    with _cache_lock:
        hit = _cache.get(run.id)
        if hit is None or hit[0] != run.version:
            return None
        _cache.move_to_end(run.id)
        return hit[1]


def _remember(run_id: str, version: int, state: RunState) -> None:
    global _cache_size
    size = state.approx_bytes()
    with _cache_lock:
        old = _cache.pop(run_id, None)
        if old is not None:
            _cache_size -= old[2]
        _cache[run_id] = (version, state, size)
        _cache_size += size
        while len(_cache) > 1 and (len(_cache) > CACHE_RUNS or _cache_size > CACHE_BYTES):
            dropped, (_, _, dropped_size) = _cache.popitem(last=False)
            _cache_size -= dropped_size
            _drop_lock(dropped)


def forget(run_id: str) -> None:
    """Drop a run's cached state (deleted, finished, or a change that did not commit), and its lock
    entry unless a caller holds it (the holder drops it on release)."""
    global _cache_size
    with _cache_lock:
        old = _cache.pop(run_id, None)
        if old is not None:
            _cache_size -= old[2]
        _drop_lock(run_id)


def rebuild(session: Session, run: RunRow) -> RunState:
    """A run's state from its stored points (a cache miss: O(run), once)."""
    state = RunState()
    for name in run.series or []:
        state.series[name] = SeriesState.of(name, *store.series_arrays(session, run.id, name))
    return state


# --- findings ------------------------------------------------------------------------------------


def finding_key(f: Finding) -> str:
    """What makes a finding the same one from batch to batch: its code and the series it names."""
    return f"{f.code}|{f.evidence.metric or ''}"


@dataclass
class Changes:
    events: list[tuple[str, dict[str, Any]]]
    state: dict[str, str]
    new_errors: list[Finding]


#: Marks, in a run's findings state, a finding whose error was already sent as a webhook: the run
#: keeps its marks until it ends, so an error that comes back is sent once (newuser4: a diverging
#: run's loss_divergence went error -> resolved -> error four times, and three webhooks went out)
_ALERTED = "alerted:"


#: Marks, in a run's findings state, a finding missing from the latest diagnoses, with how many in a
#: row: it is held (no event) until it has been missing from RESOLVE_AFTER diagnoses in a row, so a
#: finding whose measure hovers at its threshold is not raised and resolved at every other batch
#: (newuser7: loss_plateau new -> resolved four times in 200 steps of one run); one back before that
#: is still the same finding, no new event. Finishing the run resolves every finding its full check
#: does not make.
_ABSENT = "absent:"
RESOLVE_AFTER = 3


def _mark(key: str) -> bool:
    return key.startswith((_ALERTED, _ABSENT))


def compare(before: dict[str, str], doc: Diagnosis, run: RunRow, *, final: bool = False) -> Changes:
    """Events for findings that are new, changed severity, or went away since ``before`` (missing
    from :data:`RESOLVE_AFTER` diagnoses in a row, or from the ``final`` one); the new errors to send
    as webhooks (each finding's first error in the run only)."""
    now: dict[str, str] = {k: v for k, v in before.items() if k.startswith(_ALERTED)}
    events: list[tuple[str, dict[str, Any]]] = []
    errors: list[Finding] = []
    for f in doc.findings:
        key = finding_key(f)
        if key in now:
            continue
        now[key] = f.severity
        old = before.get(key)
        if old == f.severity:
            continue
        events.append(("finding", {"run_id": run.id, "change": "new" if old is None else "changed",
                                   "previous_severity": old, "finding": f.model_dump(mode="json")}))
        if f.severity == "error" and _ALERTED + key not in now:
            errors.append(f)
            now[_ALERTED + key] = "error"
    for key, severity in before.items():
        if key not in now and not _mark(key):
            misses = int(before.get(_ABSENT + key, "0")) + 1
            if misses < RESOLVE_AFTER and not final:
                now[key] = severity  # held: missing once or twice is not yet gone
                now[_ABSENT + key] = str(misses)
                continue
            code, _, metric = key.partition("|")
            events.append(("resolved", {"run_id": run.id, "code": code, "metric": metric or None,
                                        "previous_severity": severity}))
    return Changes(events, now, errors)


def count_changes(session: Session, run: RunRow, before: dict[str, str], now: dict[str, str],
                  *, finished: str | None = None) -> None:
    """Add to the run counters, in the caller's transaction: each finding that reached a severity it
    never had before in this run (a finding that flaps, resolved and back, or is re-diagnosed at
    every batch, counts once per severity), and the run's final health when it ``finished``."""
    deltas: dict[tuple[str, str], float] = {}
    if finished is not None:
        deltas[(counters.RUNS_FINISHED, counters.labels_key(health=finished))] = 1.0
    changed = {(key, severity) for key, severity in now.items()
               if before.get(key) != severity and not _mark(key)}
    if changed:
        # What the run's earlier "finding" events said (the events this commit adds are numbered
        # after run.events): a few rows, read only when a finding is new or changed severity.
        for (data,) in session.execute(select(RunEventRow.data).where(
                RunEventRow.run_id == run.id, RunEventRow.event == "finding", RunEventRow.seq <= run.events)):
            f = (data or {}).get("finding") or {}
            key = f"{f.get('code')}|{(f.get('evidence') or {}).get('metric') or ''}"
            changed.discard((key, str(f.get("severity"))))
    for key, severity in changed:
        label = counters.labels_key(code=key.partition("|")[0], severity=severity)
        deltas[(counters.RUN_FINDINGS, label)] = deltas.get((counters.RUN_FINDINGS, label), 0.0) + 1.0
    counters.add(session, deltas)


def _document(run_log: RunLog, thresholds: LogThresholds, name: str, note: str | None) -> Diagnosis:
    doc = log_diagnose(run_log, thresholds, started=time.perf_counter())
    doc.name = name
    if doc.log is not None:
        doc.log.source = name
        if note:
            doc.log.warnings.insert(0, note)
    return doc


def _latest_grad_norm(run_log: RunLog) -> float | None:
    """The last value of the run's total gradient-norm series, NaN and the infinities included (a
    run blowing up is when a dashboard needs it most); None while the run has no such series."""
    s = run_log.first("grad_norm")
    if s is None or not len(s):
        return None
    return float(s.values[-1])


def _stored_grad_norm(value: float | None) -> float | None:
    # SQLite stores NaN as NULL (PostgreSQL would keep it): NULL on both, read back by grad_norm_of
    return None if value is None or math.isnan(value) else value


def _grad_norm_series(name: str) -> bool:
    """Whether ``name`` is read as a total gradient norm (the role _latest_grad_norm looks for), as
    the run's RunLog assigns roles (:meth:`RunState.run_log`, :func:`full_log`)."""
    role, _layer = native_role(name)
    return (role or classify(name)[0]) == "grad_norm"


def grad_norm_of(run: RunRow) -> float | None:
    """A run's latest total gradient norm as :func:`_commit` stored it: a finite value or an
    infinity as it is; NULL is NaN where the run has a total gradient-norm series (its last value
    was NaN: every series of a run holds a point), and no value where it has none."""
    if run.grad_norm is not None:
        return float(run.grad_norm)
    return math.nan if any(_grad_norm_series(n) for n in run.series or []) else None


def _commit(session: Session, run: RunRow, doc: Diagnosis, run_log: RunLog, *, extra: dict[str, Any],
            final: bool = False) -> bool:
    """Events, webhook outbox and the run's new state in one transaction; False when another change
    to the run came first (rolled back)."""
    changes = compare(run.findings_state or {}, doc, run, final=final)
    # `health` beside `status` (kept: clients read it): health is the run's health everywhere else, and
    # `status` its lifecycle (active/finished), so a dashboard reading the event's `status` was misled
    # (newuser17 #7)
    events = changes.events + ([("finished", {"run_id": run.id, "status": doc.status, "health": doc.status})]
                               if final else [])
    last = store.add_events(session, run.id, run.events, events)
    values = dict(diagnosis=doc.model_dump(mode="json"), findings_state=changes.state, events=last,
                  finding_codes=",".join(sorted({f.code for f in doc.findings})) or None,
                  grad_norm=_stored_grad_norm(_latest_grad_norm(run_log)), updated_at=store.utcnow(), **extra)
    if not store.compare_and_set(session, run.id, run.version, values):
        session.rollback()
        return False
    count_changes(session, run, run.findings_state or {}, changes.state, finished=doc.status if final else None)
    for f in changes.new_errors:
        outbox.enqueue(session, owner=run.owner, event="run.error_finding",
                       payload={"run_id": run.id, "name": run.name, "finding": f.model_dump(mode="json")})
    session.commit()
    return True


# --- operations ----------------------------------------------------------------------------------


@dataclass
class Appended:
    accepted: int
    duplicates: int
    points: int
    last_step: float | None
    #: Of the duplicates, those sent with another value than the one kept (see :func:`store.conflicts`).
    conflicts: list[store.Conflict] = field(default_factory=list)


def append(session: Session, run_id: str, owner: str, points: list[Point], *, base: LogThresholds,
           max_points: int, max_series: int) -> Appended:
    """Store the new points of a batch and bring the run's diagnosis up to date."""
    outcome = append_batches(session, run_id, owner, [points], base=base, max_points=max_points,
                             max_series=max_series)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def append_batches(session: Session, run_id: str, owner: str, batches: list[list[Point]], *,
                   base: LogThresholds, max_points: int, max_series: int) -> list[Appended | Exception]:
    """Store several batches of one run in one transaction, as if appended one after another, and
    diagnose the run once for all of them (batches queued while another was being diagnosed, see
    :func:`submit_append`). Per batch, its outcome: what it added, or the error that refused it
    (:class:`RunGone`, :class:`RunFinished`, :class:`RunFull`; a batch that would overfill the run
    is refused alone). An error of the diagnosis itself is raised, for every batch."""
    out: list[Appended | Exception | None] = [None] * len(batches)
    pending = list(range(len(batches)))
    with _lock(run_id):
        tries = 0
        while tries < 20:
            run = store.get(session, run_id, owner)
            refused: Exception | None = (RunGone(run_id) if run is None else
                                         RunFinished(run_id) if run.status != "active" else None)
            if run is None or refused is not None or not pending:
                for i in pending:
                    out[i] = refused
                return [o if o is not None else RunGone(run_id) for o in out]
            # (after a rollback or a commit the row's attributes reload, and a run deleted meanwhile
            # cannot: apisweep4 D3's 500s) the version this pass read, kept as a plain number
            version = run.version
            state = _cached(run) or rebuild(session, run)
            total = run.points
            names = list(run.series or [])
            known = set(names)
            added: dict[int, int] = {}
            clashes: dict[int, list[store.Conflict]] = {}
            new_points: list[Point] = []
            full: tuple[int, RunFull] | None = None
            for i in pending:
                new = store.insert_points(session, run.id, batches[i])
                clashes[i] = store.conflicts(session, run.id, batches[i], new)
                total += len(new)
                for p in new:
                    if p.metric not in known:
                        known.add(p.metric)
                        names.append(p.metric)
                if total > max_points or len(names) > max_series:
                    what = (f"{total:,} points; the limit is {max_points:,} (GRADHEALTH_RUN_MAX_POINTS)"
                            if total > max_points else
                            f"{len(names):,} series; the limit is {max_series:,} (GRADHEALTH_LOG_MAX_SERIES)")
                    full = (i, RunFull(f"this batch would give the run {what}"))
                    break
                added[i] = len(new)
                new_points += new
            if full is not None:  # refuse that batch alone; the others are stored again without it
                session.rollback()
                out[full[0]] = full[1]
                pending.remove(full[0])
                continue
            if not new_points:
                session.rollback()
                for i in pending:
                    out[i] = Appended(0, len(batches[i]), run.points, run.last_step, clashes.get(i, []))
                return [o for o in out if o is not None]
            state.add(new_points)
            try:
                run_log = state.run_log(run.name, params_of(run.config or {}),
                                          param_sources_of(run.config or {}))
                note = None if state.exact else (
                    f"{total:,} points: the live diagnosis reads each series' last points in full and its "
                    "history decimated (spikes and NaN/Inf kept); finishing the run checks every point")
                thresholds, misfit = run_thresholds(run.config or {}, base)
                doc = _document(run_log, thresholds, run.name, "; ".join(n for n in (misfit, note) if n) or None)
            except BaseException:
                # the cached state holds points that will not be stored: the next batch rebuilds it
                # from the table (a diagnosis that failed once must not fail every batch after it)
                session.rollback()
                forget(run_id)
                raise
            steps = [p.step for p in new_points]
            last_step = max(steps + ([run.last_step] if run.last_step is not None else []))
            if _commit(session, run, doc, run_log, extra=dict(points=total, series=names, last_step=last_step)):
                _remember(run_id, version + 1, state)
                for i in pending:
                    out[i] = Appended(added[i], len(batches[i]) - added[i], total, last_step, clashes.get(i, []))
                return [o for o in out if o is not None]
            forget(run_id)  # the state took points that were rolled back
            tries += 1
        raise RuntimeError(f"run {run_id}: too many concurrent changes")


# --- one worker per run: appends queue and coalesce ----------------------------------------------
#
# errsweep2 N2: each append waited for the run's lock inside the API's shared threadpool, so 80
# concurrent appends to one run held every thread, and another caller's GET waited 51.7 s. Now a
# request hands its batch to the run's queue and awaits the outcome without holding a thread. One
# worker at a time per run (on this module's own small pool, never the API's) takes every batch
# queued meanwhile and stores and diagnoses them together: N batches queued behind a slow diagnosis
# cost one diagnosis, not N. Past MAX_PENDING queued batches a run refuses more (:class:`RunBusy`:
# 429 with Retry-After, which the recorder retries).

#: Threads diagnosing live runs in this process (each run uses at most one at a time).
WORKERS = 4
#: Batches one run may have queued in this process before it answers 429.
MAX_PENDING = 64
#: At most this many points are stored and diagnosed together.
GROUP_POINTS = 200_000


class RunBusy(Exception):
    """Too many batches of this run are queued: retry later."""

    retry_after = 1


@dataclass(eq=False)
class _Job:
    sessions: Callable[[], Session]
    owner: str
    base: LogThresholds
    points: list[Point] | None  # None: finish the run
    limits: tuple[int, int] = (0, 0)  # max_points, max_series
    future: Future[Any] = field(default_factory=Future)

    def joins(self, other: _Job) -> bool:
        return (self.points is not None and other.points is not None and self.sessions is other.sessions
                and self.owner == other.owner and self.base is other.base and self.limits == other.limits)


_queues: dict[str, deque[_Job]] = {}
_queue_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _workers() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="gradhealth-live")
    return _pool


def _submit(run_id: str, job: _Job, *, bounded: bool) -> Future[Any]:
    with _queue_lock:
        queue = _queues.get(run_id)
        if queue is not None and bounded and len(queue) >= MAX_PENDING:
            raise RunBusy(f"{len(queue)} batches of run {run_id} are waiting to be stored; "
                          f"retry in {RunBusy.retry_after} s")
        start = queue is None
        if queue is None:
            queue = _queues[run_id] = deque()
        queue.append(job)
    if start:  # no worker has this run: start one (a run's queue exists while a worker has it)
        _workers().submit(_drain, run_id)
    return job.future


def submit_append(run_id: str, owner: str, points: list[Point], *, sessions: Callable[[], Session],
                  base: LogThresholds, max_points: int, max_series: int) -> Future[Appended]:
    """Queue a batch for the run's worker; the future holds its :class:`Appended` or its error.
    Raises :class:`RunBusy` when MAX_PENDING batches of the run are queued already."""
    return _submit(run_id, _Job(sessions, owner, base, points, (max_points, max_series)), bounded=True)


def submit_finish(run_id: str, owner: str, *, sessions: Callable[[], Session],
                  base: LogThresholds) -> Future[None]:
    """Queue the run's finish after the batches queued before it; the future is done when it is."""
    return _submit(run_id, _Job(sessions, owner, base, None), bounded=False)


def _drain(run_id: str) -> None:
    """Run the next group of the run's queued jobs, then queue the worker again (behind other runs')
    while more are waiting, or end, removing the queue."""
    with _queue_lock:
        queue = _queues[run_id]
        group: list[_Job] = []
        size = 0
        while queue and (not group or (group[0].joins(queue[0])
                                       and size + len(queue[0].points or ()) <= GROUP_POINTS)):
            job = queue.popleft()
            if job.future.set_running_or_notify_cancel():  # False: its request went away
                group.append(job)
                size += len(job.points or ())
    try:
        if group:
            _run_group(run_id, group)
    finally:
        with _queue_lock:
            again = bool(_queues[run_id])
            if not again:
                del _queues[run_id]
        if again:
            _workers().submit(_drain, run_id)


def _run_group(run_id: str, group: list[_Job]) -> None:
    head = group[0]
    try:
        with head.sessions() as session:
            if head.points is None:
                finish(session, run_id, head.owner, base=head.base)
                head.future.set_result(None)
                return
            outcomes = append_batches(session, run_id, head.owner, [j.points or [] for j in group], base=head.base,
                                      max_points=head.limits[0], max_series=head.limits[1])
    except Exception as e:
        if len(group) > 1:  # one batch's failure must not fail the batches queued with it: one by one
            for job in group:
                _run_group(run_id, [job])
            return
        head.future.set_exception(e)
        return
    except BaseException as e:
        for job in group:
            job.future.set_exception(e)
        raise
    for job, outcome in zip(group, outcomes, strict=True):
        if isinstance(outcome, Exception):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)


def _note_recovered(session: Session, run: RunRow, doc: Diagnosis) -> None:
    """Say, in the final document's notes, which errors the run raised (its "finding" events) that the
    full check of every point does not make: the findings stay the whole-log check's (the CLI's on the
    same points), and an error that went out as an event, a webhook and a counter does not vanish
    without a word (newuser8: loss_divergence raised at steps 80 and 280 of a 300-step run, its loss
    back under 1.5x its lowest running median at the end). One note per code and series: the last
    such error's step and summary."""
    final = {finding_key(f) for f in doc.findings if f.severity == "error"}
    raised: dict[str, tuple[int, dict[str, Any]]] = {}
    for seq, data in session.execute(select(RunEventRow.seq, RunEventRow.data).where(
            RunEventRow.run_id == run.id, RunEventRow.event == "finding", RunEventRow.seq <= run.events)):
        f = (data or {}).get("finding") or {}
        if f.get("severity") != "error":
            continue
        key = f"{f.get('code')}|{(f.get('evidence') or {}).get('metric') or ''}"
        if key not in final and (key not in raised or seq > raised[key][0]):
            raised[key] = (int(seq), f)
    if not raised or doc.log is None:
        return
    points = doc.log.points
    for seq, f in sorted(raised.values(), key=lambda sf: sf[0]):
        steps = (f.get("evidence") or {}).get("steps") or []
        at = f" up to step {steps[-1]:g}" if steps and isinstance(steps[-1], int | float) else ""
        doc.log.warnings.append(
            f"raised and recovered: {f.get('code')} was an error during the run (event {seq}{at}: "
            f"{shorten(str(f.get('summary') or ''), 200)}), but the full check of all {points:,} points does not make "
            "it: over the whole run it is not borne out")


def full_log(session: Session, run: RunRow) -> RunLog:
    """Every stored point of a run as the log check reads a log: read per series into numpy arrays
    (a columnar, chunked query), not a Python object per point, so finishing a run of millions of
    points costs about 16 bytes a point and the database's read time."""
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {name: (np.zeros(0), np.zeros(0)) for name in run.series or []}
    for name, steps, values in store.run_arrays(session, run.id):
        data[name] = (steps, values)
    series = []
    for name, (steps, values) in data.items():
        role, layer = native_role(name)
        series.append(make_series(name, steps, values, role=role, layer=layer))
    return RunLog(format="live", source=run.name, series=series, params=params_of(run.config or {}),
                  param_sources=param_sources_of(run.config or {}))


def finish(session: Session, run_id: str, owner: str, *, base: LogThresholds) -> RunRow:
    """Mark the run finished, with a diagnosis of every point (the full log check, once)."""
    with _lock(run_id):
        for _ in range(20):
            run = store.get(session, run_id, owner)
            if run is None:
                raise RunGone(run_id)
            if run.status != "active":
                return run
            run_log = full_log(session, run)
            thresholds, misfit = run_thresholds(run.config or {}, base)
            doc = _document(run_log, thresholds, run.name, misfit)
            _note_recovered(session, run, doc)
            now = store.utcnow()
            if _commit(session, run, doc, run_log, extra=dict(status="finished", finished_at=now), final=True):
                forget(run_id)
                fresh = store.get(session, run_id, owner)
                if fresh is None:
                    raise RunGone(run_id)
                return fresh
        raise RuntimeError(f"run {run_id}: too many concurrent changes")
