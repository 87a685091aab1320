"""Appending to a live run and keeping its diagnosis current, incrementally.

Each run's :class:`~gradhealth.live.state.RunState` is cached in this process, keyed by the run's
id and version; a batch updates it with the points that were new and re-runs the log check's
detectors on its bounded series, so the cost of a batch is O(batch + the bounded series), whatever
the run's length. A miss (another process appended, or a restart) rebuilds the state from the
stored points once. :func:`finish` runs the full log check over every point.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from gradhealth.core.document import Diagnosis, Finding
from gradhealth.db.models import RunRow
from gradhealth.live import store
from gradhealth.live.points import Point
from gradhealth.live.state import RunState, SeriesState
from gradhealth.logs.check import diagnose as log_diagnose
from gradhealth.logs.readers.native import native_role
from gradhealth.logs.series import RunLog, clean_name, make_series
from gradhealth.logs.thresholds import LogThresholds
from gradhealth.webhooks import outbox

# --- configuration -------------------------------------------------------------------------------


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
        default_factory=dict, max_length=100,
        description="other hyper-parameters, as a log's params (e.g. max_grad_norm)")
    thresholds: LogThresholds | None = Field(
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
        return {clean_name(k): clean_name(v) for k, v in value.items()}  # storable as UTF-8

    @field_validator("thresholds", mode="before")
    @classmethod
    def _known_thresholds(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(LogThresholds.model_fields))
            if unknown:
                raise ValueError(f"no such threshold: {', '.join(unknown)} (see GET /v1/catalog or the README's "
                                 "log thresholds)")
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


def thresholds_of(config: dict[str, Any], base: LogThresholds) -> LogThresholds:
    """The service's thresholds with the run's own overrides (stored as only the fields given)."""
    given = config.get("thresholds") or {}
    return LogThresholds.model_validate({**base.model_dump(), **given}) if given else base


# --- errors --------------------------------------------------------------------------------------


class RunFinished(Exception):
    """Points for a run that is finished."""


class RunFull(Exception):
    """More points than a run may hold."""


class RunGone(Exception):
    """The run was deleted meanwhile."""


# --- the state cache -----------------------------------------------------------------------------

#: Runs whose state this process keeps (least recently used dropped first).
CACHE_RUNS = 256
_cache: OrderedDict[str, tuple[int, RunState]] = OrderedDict()
_cache_lock = threading.Lock()
_run_locks: dict[str, threading.Lock] = {}


def _lock(run_id: str) -> threading.Lock:
    with _cache_lock:
        return _run_locks.setdefault(run_id, threading.Lock())


def _cached(run: RunRow) -> RunState | None:
    with _cache_lock:
        hit = _cache.get(run.id)
        if hit is None or hit[0] != run.version:
            return None
        _cache.move_to_end(run.id)
        return hit[1]


def _remember(run_id: str, version: int, state: RunState) -> None:
    with _cache_lock:
        _cache[run_id] = (version, state)
        _cache.move_to_end(run_id)
        while len(_cache) > CACHE_RUNS:
            dropped, _ = _cache.popitem(last=False)
            _run_locks.pop(dropped, None)


def forget(run_id: str) -> None:
    """Drop a run's cached state (deleted, finished, or a change that did not commit)."""
    with _cache_lock:
        _cache.pop(run_id, None)


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


def compare(before: dict[str, str], doc: Diagnosis, run: RunRow) -> Changes:
    """Events for findings that are new, changed severity, or went away since ``before``."""
    now: dict[str, str] = {}
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
        if f.severity == "error":
            errors.append(f)
    for key, severity in before.items():
        if key not in now:
            code, _, metric = key.partition("|")
            events.append(("resolved", {"run_id": run.id, "code": code, "metric": metric or None,
                                        "previous_severity": severity}))
    return Changes(events, now, errors)


def _document(run_log: RunLog, thresholds: LogThresholds, name: str, note: str | None) -> Diagnosis:
    doc = log_diagnose(run_log, thresholds, started=time.perf_counter())
    doc.name = name
    if doc.log is not None:
        doc.log.source = name
        if note:
            doc.log.warnings.insert(0, note)
    return doc


def _latest_grad_norm(run_log: RunLog) -> float | None:
    s = run_log.first("grad_norm")
    if s is None or not len(s):
        return None
    v = float(s.values[-1])
    return None if math.isnan(v) else v


def _commit(session: Session, run: RunRow, doc: Diagnosis, run_log: RunLog, *, extra: dict[str, Any],
            final: bool = False) -> bool:
    """Events, webhook outbox and the run's new state in one transaction; False when another change
    to the run came first (rolled back)."""
    changes = compare(run.findings_state or {}, doc, run)
    events = changes.events + ([("finished", {"run_id": run.id, "status": doc.status})] if final else [])
    last = store.add_events(session, run.id, run.events, events)
    values = dict(diagnosis=doc.model_dump(mode="json"), findings_state=changes.state, events=last,
                  finding_codes=",".join(sorted({f.code for f in doc.findings})) or None,
                  grad_norm=_latest_grad_norm(run_log), updated_at=store.utcnow(), **extra)
    if not store.compare_and_set(session, run.id, run.version, values):
        session.rollback()
        return False
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


def append(session: Session, run_id: str, owner: str, points: list[Point], *, base: LogThresholds,
           max_points: int, max_series: int) -> Appended:
    """Store the new points of a batch and bring the run's diagnosis up to date."""
    with _lock(run_id):
        for _ in range(20):
            run = store.get(session, run_id, owner)
            if run is None:
                raise RunGone(run_id)
            if run.status != "active":
                raise RunFinished(run_id)
            state = _cached(run) or rebuild(session, run)
            new = store.insert_points(session, run.id, points)
            if not new:
                session.rollback()
                return Appended(0, len(points), run.points, run.last_step)
            total = run.points + len(new)
            names = list(run.series or [])
            known = set(names)
            for p in new:
                if p.metric not in known:
                    known.add(p.metric)
                    names.append(p.metric)
            if total > max_points or len(names) > max_series:
                session.rollback()
                what = (f"{total:,} points; the limit is {max_points:,} (GRADHEALTH_RUN_MAX_POINTS)"
                        if total > max_points else
                        f"{len(names):,} series; the limit is {max_series:,} (GRADHEALTH_LOG_MAX_SERIES)")
                raise RunFull(f"this batch would give the run {what}")
            state.add(new)
            try:
                run_log = state.run_log(run.name, params_of(run.config or {}))
                note = None if state.exact else (
                    f"{total:,} points: the live diagnosis reads each series' last points in full and its "
                    "history decimated (spikes and NaN/Inf kept); finishing the run checks every point")
                doc = _document(run_log, thresholds_of(run.config or {}, base), run.name, note)
            except BaseException:
                # the cached state holds points that will not be stored: the next batch rebuilds it
                # from the table (a diagnosis that failed once must not fail every batch after it)
                session.rollback()
                forget(run.id)
                raise
            steps = [p.step for p in new]
            last_step = max(steps + ([run.last_step] if run.last_step is not None else []))
            if _commit(session, run, doc, run_log, extra=dict(points=total, series=names, last_step=last_step)):
                _remember(run.id, run.version + 1, state)
                return Appended(len(new), len(points) - len(new), total, last_step)
            forget(run.id)  # the state took points that were rolled back
        raise RuntimeError(f"run {run_id}: too many concurrent changes")


def full_log(session: Session, run: RunRow) -> RunLog:
    """Every stored point of a run as the log check reads a log."""
    data: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in run.series or []}
    for p in store.iter_points(session, run.id):
        steps, values = data.setdefault(p.metric, ([], []))
        steps.append(p.step)
        values.append(p.value)
    series = []
    for name, (steps, values) in data.items():
        role, layer = native_role(name)
        series.append(make_series(name, np.asarray(steps), np.asarray(values), role=role, layer=layer))
    return RunLog(format="live", source=run.name, series=series, params=params_of(run.config or {}))


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
            doc = _document(run_log, thresholds_of(run.config or {}, base), run.name, None)
            now = store.utcnow()
            if _commit(session, run, doc, run_log, extra=dict(status="finished", finished_at=now), final=True):
                forget(run.id)
                fresh = store.get(session, run_id, owner)
                if fresh is None:
                    raise RunGone(run_id)
                return fresh
        raise RuntimeError(f"run {run_id}: too many concurrent changes")
