"""/v1/runs: live training runs. Create (or re-attach to) a run, append batches of points, read its
current diagnosis, watch new findings as Server-Sent Events, finish, list and delete; read its
stored points back (page by page) and its diagnosis as a report (HTML charts, Markdown, SARIF, ...)
like a job's."""

from __future__ import annotations

import asyncio
import base64
import difflib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import and_, or_, select
from starlette.concurrency import run_in_threadpool

from gradhealth.api.bodies import JsonBodyDep
from gradhealth.api.deps import CallerDep, SessionDep, SettingsDep
from gradhealth.api.problems import ApiError, bad_cursor, echo_id
from gradhealth.api.routers.checks import refuse_undecoded
from gradhealth.api.routers.jobs import (
    BAD_LAST_EVENT_ID,
    LAST_EVENT_ID_SCHEMA,
    _event,
    _last_event_id,
)
from gradhealth.api.routers.reports import REPORT_CONTENT, ReportFormat, negotiate, rendered
from gradhealth.api.schemas import RATE_LIMITED, EventStreamResponse, Problem
from gradhealth.core.document import Diagnosis, Step
from gradhealth.core.words import first_few
from gradhealth.db.models import RunPointRow, RunRow
from gradhealth.jobs.store import as_utc
from gradhealth.live import diagnose, store
from gradhealth.live.diagnose import RunConfig
from gradhealth.live.points import (
    JSON_TYPES,
    LINES_TYPES,
    NAME_PATTERN,
    BadPoints,
    decode_special,
    parse,
    spelled,
)
from gradhealth.logs.series import clean_name
from gradhealth.report import Format, ReportContext
from gradhealth.settings import Settings

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=RATE_LIMITED)

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such run (or not yours)"}}
RunStatus = Literal["active", "finished"]


# --- bodies --------------------------------------------------------------------------------------


#: The process that writes a run: the recorder sends a random id per process on each request, so
#: that two processes on one run name are told apart (newuser4 P7). Optional (curl sends none).
WriterHeader = Annotated[str | None, Header(alias="X-Gradhealth-Writer", min_length=1, max_length=64,
                                            pattern=r"^[A-Za-z0-9._:-]+$",
                                            description="the id of the process writing the run (the recorder "
                                                        "sends one): points or a finish from a process that "
                                                        "is no longer the run's writer get 409 run_taken_over")]


#: The heartbeat's writer: required (a heartbeat says which process is alive), so the schema says so.
RequiredWriterHeader = Annotated[str, Header(alias="X-Gradhealth-Writer", min_length=1, max_length=64,
                                             pattern=r"^[A-Za-z0-9._:-]+$",
                                             description="the id of the process writing the run (the recorder "
                                                         "sends one): the process the heartbeat keeps the run for")]


async def _one_writer(request: Request) -> None:
    """400 for a request naming its writer twice: which one would hold the run? (apisweep4 D10)
    A coroutine: a plain function dependency would wait for a thread of the pool, and batches
    queued before a finish could then reach their run after it."""
    if len(request.headers.getlist("x-gradhealth-writer")) > 1:
        raise ApiError(400, "repeated_writer", "the request has several X-Gradhealth-Writer headers: send one")


OneWriter = [Depends(_one_writer)]


async def _writer_named(request: Request) -> None:
    """The heartbeat's missing writer header refused before the caller's rate limit is taken (a
    route's dependencies run before its parameters are validated): the 422 of a request that cannot
    succeed, not a 429 that says to send it again."""
    if not request.headers.get("x-gradhealth-writer"):
        raise RequestValidationError([{"type": "missing", "loc": ("header", "X-Gradhealth-Writer"),
                                       "msg": "Field required", "input": None}])


class RunCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255, pattern=NAME_PATTERN,
                      description="the run's name; a second create with the name of your active run returns it "
                                  "(a 409 if it sends another config)")
    config: RunConfig = Field(default_factory=RunConfig)

    @field_validator("name")
    @classmethod
    def _utf8(cls, value: str) -> str:
        return clean_name(value)  # a lone surrogate (from a JSON escape) could not be stored


# A pattern, not an enum: enum values that differ only in case (nan, NaN) become one identifier in
# generated clients, which then refuse the schema.
NonFinite = Annotated[str, Field(pattern=r"^(nan|NaN|-?inf|-?Infinity)$")]
PointValue = Annotated[float | NonFinite | None, Field(description="a number, a non-finite spelling, or null "
                                                                    "(not logged: skipped)")]


#: A point's series or layer name: not blank, and no control character (points.unstorable)
_POINT_NAME = r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$"


class MetricPoint(BaseModel):
    """One value of the series ``metric`` (``loss``, ``grad_norm``, ``lr``, ...) at ``step``."""

    step: float
    metric: str = Field(min_length=1, max_length=255, pattern=_POINT_NAME)
    value: PointValue
    wall_time: float | None = None


class LayerPoint(BaseModel):
    """One per-layer value, as GradientRecorder writes them: the series ``<kind>/<layer>``."""

    step: float
    layer: str = Field(min_length=1, max_length=200, pattern=_POINT_NAME)
    kind: Literal["grad_norm", "weight_norm", "update_ratio"]
    value: PointValue
    wall_time: float | None = None


class RunLinks(BaseModel):
    self: str
    points: str = Field(description="POST a batch of points; GET the stored points, page by page")
    events: str
    finish: str
    report: str | None = Field(None, description="the run's diagnosis as a report (?format=html, markdown, json, "
                                                 "...), charts included")


class RunSummary(BaseModel):
    id: str
    name: str
    status: RunStatus
    stale: bool = Field(False, description="active, but no new point for GRADHEALTH_RUN_STALE_AFTER_S (updated_at "
                                           "is when it last stored one): a crashed or stopped process. It keeps "
                                           "no per-run gauges on /metrics; its next point makes it fresh again")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    points: int = Field(description="points stored")
    last_step: Step | None = None
    grad_norm: float | NonFinite | None = Field(
        None, description="the latest total gradient norm: a number, or \"NaN\", \"Infinity\" or \"-Infinity\" where "
        "it is not finite (as a point's value may be sent); null while the run has logged none")
    health: Literal["healthy", "warning", "unhealthy"] | None = Field(
        None, description="the current diagnosis' status")
    finding_codes: list[str] = Field(default_factory=list)
    version: int = Field(description="bumped on every change")
    links: RunLinks


class RunRead(RunSummary):
    """A run with its config and its current diagnosis: the log check's document over the run so far."""

    config: RunConfig
    diagnosis: Diagnosis | None = None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next (older) page")


class StoredPoint(BaseModel):
    """One stored point of a run: the series ``metric`` (a recorder's per-layer point is the series
    ``<kind>/<layer>``) at ``step``."""

    metric: str
    step: Step
    value: float | NonFinite = Field(description="a number, or \"NaN\", \"Infinity\" or \"-Infinity\"")


class RunPointsPage(BaseModel):
    run_id: str
    items: list[StoredPoint] = Field(description="by series name, then step")
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")


class PointConflict(BaseModel):
    """A point sent again with another value than the one the run keeps."""

    step: Step
    metric: str
    kept: float | NonFinite = Field(description="the value stored first, which the run keeps")
    sent: float | NonFinite = Field(description="the value this batch sent, ignored")


#: Conflicts a points answer lists (``conflicts`` counts them all).
MAX_CONFLICTS_SHOWN = 5


class PointsAccepted(BaseModel):
    accepted: int = Field(description="new points stored")
    duplicates: int = Field(description="points of this batch stored before (a retried batch): ignored")
    points: int = Field(description="points the run holds now")
    last_step: Step | None = None
    conflicts: int = Field(0, description="of the duplicates, those sent with another value than the one "
                                          "kept (a script restarted from step 0 under the same run name): "
                                          "ignored too, the first value stays")
    conflicting: list[PointConflict] = Field(default_factory=list, description=(
        f"the first {MAX_CONFLICTS_SHOWN} conflicts, in batch order"))


def _grad_norm(row: RunRow) -> float | str | None:
    # a non-finite norm spelled as a point's value may be (JSON would say null for NaN and Inf alike)
    value = diagnose.grad_norm_of(row)
    return None if value is None else spelled(value)


def _summary(row: RunRow, stale_before: datetime | None) -> dict[str, Any]:
    base = f"/v1/runs/{row.id}"
    return dict(id=row.id, name=row.name, status=row.status, stale=store.is_stale(row, stale_before),
                created_at=as_utc(row.created_at),
                updated_at=as_utc(row.updated_at), finished_at=as_utc(row.finished_at), points=row.points,
                last_step=row.last_step, grad_norm=_grad_norm(row),
                health=(row.diagnosis or {}).get("status"), finding_codes=(row.finding_codes or "").split(",")
                if row.finding_codes else [], version=row.version,
                links=RunLinks(self=base, points=f"{base}/points", events=f"{base}/events", finish=f"{base}/finish",
                               report=f"{base}/report"))


def _read(row: RunRow, settings: Settings) -> RunRead:
    return RunRead(**_summary(row, store.stale_cutoff(settings.run_stale_after_s)), config=RunConfig.model_validate(row.config or {}), diagnosis=row.diagnosis)


def _load(session, run_id: str, caller) -> RunRow:  # noqa: ANN001 - internal helper
    row = store.get(session, run_id, caller.name)
    if row is None:
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}")
    return row


def _refuse_replaced_writer(row: RunRow, writer: str | None) -> None:
    """409 for points or a finish from a process that is no longer the run's writer: another one
    took the run over, and the two must not interleave their points (newuser4 P7)."""
    if writer is not None and row.writer is not None and row.writer != writer:
        raise ApiError(409, "run_taken_over",
                       f"run {row.id} ({row.name[:80]!r}) is now written by another process (it took the run "
                       "over with ?take_over=true, or re-attached after this one sent nothing for "
                       "GRADHEALTH_RUN_WRITER_LEASE_S): this process's requests to it are refused; start "
                       "a run of another name")


# --- routes --------------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=RunRead, summary="Start a live run (or re-attach to it)",
             dependencies=OneWriter,
             responses={200: {"model": RunRead, "description": "your active run of that name, re-attached"},
                        409: {"model": Problem, "description": "your active run of that name has another "
                              "config: the detail names the fields that differ (run_config_conflict); or "
                              "another process writes it (run_in_use, with Retry-After)"}})
def create_run(body: RunCreate, response: Response, session: SessionDep, caller: CallerDep,
               settings: SettingsDep, _json: JsonBodyDep, writer: WriterHeader = None,
               take_over: Annotated[bool, Query(description="with X-Gradhealth-Writer: become the writer of your "
                                                            "active run of that name even while another "
                                                            "process writes it (that one's next batch gets 409 "
                                                            "run_taken_over)")] = False) -> RunRead:
    if take_over and writer is None:  # (apisweep4 D10: it took nothing over, silently)
        raise ApiError(422, "take_over_needs_writer", "query.take_over: true takes the run over for the writer "
                       "named by the X-Gradhealth-Writer header; send that header too")
    config = body.config.model_dump(mode="json", exclude_unset=True)
    try:
        # the run's thresholds override the service's field by field: together they must still be
        # ordered (a run warning at 60x where the service calls 50x an error is refused here, not
        # found out at its first batch of points)
        diagnose.thresholds_of(config, settings.log_thresholds)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", "config", "thresholds"),
                                       "msg": f"{err['msg']} (the service's thresholds with the run's)"}
                                      for err in e.errors(include_url=False, include_context=False)]) from None
    try:
        row, created = store.create(session, owner=caller.name, name=body.name, config=config, writer=writer,
                                    take_over=take_over, writer_lease_s=settings.run_writer_lease_s)
    except store.RunInUse as e:
        last = (f"its last points came {e.idle_s:.0f} s ago" if e.points else
                f"it was created {e.idle_s:.0f} s ago and has no points yet")  # (apisweep4 D11)
        raise ApiError(409, "run_in_use",
                       f"run {e.run_id} ({body.name[:80]!r}) is being written by another process ({last}): "
                       f"use another name, finish that run, wait "
                       f"{e.retry_after} s (a process that died loses the run after "
                       f"GRADHEALTH_RUN_WRITER_LEASE_S), or take it over with ?take_over=true",
                       headers={"Retry-After": str(e.retry_after)}) from None
    if not created and "config" in body.model_fields_set:
        # a re-attach that sets a field of the config must set the run's own value: another one would
        # be dropped silently (the run keeps diagnosing with its stored settings). Fields it leaves
        # out, or no config at all, re-attach.
        changed = config_changes(row.config or {}, config)
        if changed:
            raise ApiError(409, "run_config_conflict",
                           f"run {row.id} ({body.name[:80]!r}) is active with another config: "
                           f"{'; '.join(changed)}; send its config (GET /v1/runs/{row.id}), finish it "
                           "(POST .../finish) or use another name")
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/runs/{row.id}"
    return _read(row, settings)


def config_changes(stored: dict[str, Any], sent: dict[str, Any]) -> list[str]:
    """How a config sent for a run differs from the one it is stored with, field by field
    (``thresholds`` and ``params`` key by key) as ``"clip_threshold: 1.0 (the run's) != 50.0 (sent)"``;
    [] when every field the sender set means the same. A field it leaves out is the run's: a
    recorder re-attaching after a restart may not know what the first one sent (its clip
    threshold), and a setting left out is not one dropped."""
    def flat(config: dict[str, Any]) -> dict[str, Any]:
        try:  # as validated (60 and 60.0 are one threshold); a config stored under older rules as it is
            given = RunConfig.model_validate(config).model_dump(mode="json", exclude_unset=True)
        except ValidationError:
            given = config
        out: dict[str, Any] = {}
        for key, value in given.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items() if v is not None})
            elif value is not None:
                out[key] = value
        return out

    def shown(value: Any) -> str:
        return "unset" if value is None else repr(value)[:60]

    before, after = flat(stored), flat(sent)
    return [f"{key[:80]}: {shown(before.get(key))} (the run's) != {shown(after.get(key))} (sent)"
            for key in sorted(after.keys()) if before.get(key) != after.get(key)][:10]


_POINT_SCHEMA = {"anyOf": [MetricPoint.model_json_schema(), LayerPoint.model_json_schema()]}
_POINTS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "items": _POINT_SCHEMA}},
    "application/x-ndjson": {"schema": {"type": "string", "description": "one point object per line"}},
}}}


@router.post("/{run_id}/points", response_model=PointsAccepted, summary="Append a batch of points",
             dependencies=OneWriter,
             openapi_extra=_POINTS_BODY,
             responses={**NOT_FOUND,
                        409: {"model": Problem, "description": "the run is finished (run_finished), or another "
                              "process is its writer now (run_taken_over)"},
                        429: {**RATE_LIMITED[429], "description": "over the rate limit, or too many batches "
                              "of this run waiting to be stored (`run_busy`); retry after Retry-After seconds"},
                        413: {"model": Problem, "description": "the run would hold more than "
                                                              "GRADHEALTH_RUN_MAX_POINTS points"},
                        415: {"model": Problem, "description": "not JSON or JSON Lines, not UTF-8, or compressed"},
                        422: {"model": Problem, "description": "a bad point: the detail names its line or record"}})
async def append_points(run_id: str, request: Request, caller: CallerDep, settings: SettingsDep,
                        writer: WriterHeader = None) -> PointsAccepted:
    """A JSON array (``application/json``) or JSON Lines (``application/x-ndjson``) of
    ``{step, metric, value}`` or the recorder's rows. Idempotent by (metric, step): a point stored
    before is counted in ``duplicates`` and changes nothing; one sent with another value than the
    one kept is counted in ``conflicts`` too (the first few listed in ``conflicting``)."""
    media = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES + LINES_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send points as application/json (a JSON array of point objects) or application/x-ndjson "
                       f"(JSON Lines: one point object per line), not {media[:60]}")
    refuse_undecoded(request.headers.get("content-type", ""), request.headers.get("content-encoding"), "points")
    body = await request.body()

    def owned() -> RunRow | None:
        with request.app.state.sessions() as session:
            return store.get(session, run_id, caller.name)

    row = await run_in_threadpool(owned)
    if row is None:  # another key's run is not found, whatever the body
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}")
    _refuse_replaced_writer(row, writer)
    try:
        points = parse(body, media, max_points=settings.run_max_batch_points)
    except BadPoints as e:
        raise ApiError(422, "invalid_points", str(e), pointer=e.pointer,
                       parameter=None if e.pointer else "body", item=e.reason if e.pointer else None) from None

    # The run's own worker stores and diagnoses the batch (with any others queued meanwhile): this
    # request holds no thread while it waits, so a flood of appends to one run cannot starve the
    # threadpool every other request needs (errsweep2 N2).
    try:
        done = await asyncio.wrap_future(diagnose.submit_append(
            run_id, caller.name, points, sessions=request.app.state.sessions, base=settings.log_thresholds,
            max_points=settings.run_max_points, max_series=settings.log_max_series))
    except diagnose.RunBusy as e:
        raise ApiError(429, "run_busy", str(e), headers={"Retry-After": str(e.retry_after)}) from None
    except diagnose.RunGone:
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}") from None
    except diagnose.RunFinished:
        raise ApiError(409, "run_finished", f"run {run_id} is finished; start a new run") from None
    except diagnose.RunFull as e:
        raise ApiError(413, "run_too_large", str(e)) from None
    return PointsAccepted(accepted=done.accepted, duplicates=done.duplicates, points=done.points,
                          last_step=done.last_step, conflicts=len(done.conflicts),
                          conflicting=[PointConflict(step=step, metric=metric, kept=spelled(kept), sent=spelled(sent))
                                       for step, metric, kept, sent in done.conflicts[:MAX_CONFLICTS_SHOWN]])


#: Points one GET /v1/runs/{id}/points page may hold.
MAX_POINTS_PAGE = 10_000


def _points_cursor(metric: str, step: float) -> str:
    """The page cursor after the point (metric, step): opaque to clients."""
    return base64.urlsafe_b64encode(json.dumps([metric, step]).encode()).decode()


def _after_point(cursor: str) -> tuple[str, float]:
    """The (metric, step) a cursor names; a 422 naming ?cursor= for anything this service did not write."""
    try:
        metric, step = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        if isinstance(metric, str) and isinstance(step, int | float) and not isinstance(step, bool):
            return metric, float(step)
    except (ValueError, TypeError, UnicodeError):
        pass
    raise bad_cursor()


def _unknown_series(row: RunRow, metric: str) -> ApiError:
    """422 for ``?metric=`` naming a series the run never had (a typo read as an empty page, "no
    data" on a panel: newuser16 #8), naming the run's series and the closest one. A series the run
    has, with no point past the cursor, is an empty page as before."""
    names = [str(n) for n in row.series or []]
    close = difflib.get_close_matches(metric, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    has = f"its series: {first_few(sorted(names), 20)}" if names else "it has no points yet"
    what = f"run {row.id} has no series {metric[:80]!r}{hint} ({has})"
    return ApiError(422, "unknown_metric", f"query.metric: {what}", parameter="query.metric", item=what)


@router.get("/{run_id}/points", response_model=RunPointsPage, summary="A run's stored points, page by page",
            responses={**NOT_FOUND, 422: {"model": Problem, "description": "a bad cursor, metric or limit, or a "
                                          "metric the run has no series of (`unknown_metric`)"}})
def read_points(run_id: str, session: SessionDep, caller: CallerDep,
                metric: Annotated[str | None, Query(min_length=1, max_length=255,
                                                    description="only this series (e.g. `loss`, "
                                                                "`grad_norm/encoder.0`)")] = None,
                cursor: Annotated[str | None, Query(min_length=1, max_length=2000,
                                                    description="next_cursor of the previous page")] = None,
                limit: Annotated[int, Query(ge=1, le=MAX_POINTS_PAGE)] = 1000) -> RunPointsPage:
    """Every point the run holds, active or finished, ordered by series and step (the store's key):
    a page costs one indexed range read, whatever the run's length. Non-finite values are spelled
    as a point's value may be sent."""
    row = _load(session, run_id, caller)
    q = (select(RunPointRow.metric, RunPointRow.step, RunPointRow.value, RunPointRow.special)
         .where(RunPointRow.run_id == run_id))
    if metric is not None:
        q = q.where(RunPointRow.metric == metric)
    if cursor is not None:
        after_metric, after_step = _after_point(cursor)
        q = q.where(or_(RunPointRow.metric > after_metric,
                        and_(RunPointRow.metric == after_metric, RunPointRow.step > after_step)))
    rows = session.execute(q.order_by(RunPointRow.metric, RunPointRow.step).limit(limit + 1)).all()
    if not rows and metric is not None and metric not in (row.series or []):
        raise _unknown_series(row, metric)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [StoredPoint(metric=m, step=st, value=spelled(decode_special(v, sp))) for m, st, v, sp in rows]
    return RunPointsPage(run_id=run_id, items=items,
                         next_cursor=_points_cursor(rows[-1][0], float(rows[-1][1])) if more and rows else None)


@router.get(
    "/{run_id}/report",
    summary="A run's diagnosis as HTML (with charts), Markdown, JSON, SARIF, JUnit or text",
    description="Chosen by ?format= or the Accept header, as a job's report. The diagnosis of the run so far "
                "(each series' recent points in full and its history decimated, spikes and non-finite values "
                "kept) while it is active, of every point once it is finished.",
    response_class=Response,
    responses={200: {"content": REPORT_CONTENT, "description": "the report"},
               **NOT_FOUND,
               400: {"model": Problem, "description": "an Accept header with a q that is not a number from 0 to 1"},
               406: {"model": Problem, "description": "an unknown ?format= or no format the Accept header allows"},
               409: {"model": Problem, "description": "the run has no diagnosis yet (no points)"}},
)
def run_report(
    run_id: str, session: SessionDep, caller: CallerDep,
    format: Annotated[ReportFormat | None, Query(description="a report format; overrides Accept")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    source: Annotated[str | None, Query(max_length=1000, description=(
        "the path in your repository the report's findings are placed on (the training script or its log); "
        "without it they are on an artifact named after the run, which is no file"))] = None,
) -> Response:
    row = _load(session, run_id, caller)  # 404 first: an unknown run is unknown in any format
    return run_rendered(row, negotiate(format, accept), source)


def run_rendered(row: RunRow, chosen: Format, source: str | None = None) -> Response:
    """A run's current diagnosis as a report in ``chosen``: 409 before its first points."""
    if not row.diagnosis:
        raise ApiError(409, "run_not_diagnosed",
                       f"run {row.id} has no diagnosis yet: POST its points first (/v1/runs/{row.id}/points)")
    doc = Diagnosis.model_validate(row.diagnosis)
    # the run's series are a log's (a RunLog): its findings locate by step, as a log job's do
    # a run is sent points, never a file: its findings are on ?source= where given (newuser18 #9), else
    # on an artifact named after the run
    return rendered(chosen, doc, ReportContext(source=source or row.name, kind="logs"))


@router.get("/{run_id}", response_model=RunRead, responses=NOT_FOUND, summary="A run and its current diagnosis")
def read_run(run_id: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> RunRead:
    return _read(_load(session, run_id, caller), settings)


@router.post("/{run_id}/finish", response_model=RunRead,
             dependencies=OneWriter,
             responses={**NOT_FOUND, 409: {"model": Problem, "description": "another process is the run's writer "
                                                                         "now (run_taken_over)"}},
             summary="Finish a run: a last diagnosis over every point")
async def finish_run(run_id: str, request: Request, caller: CallerDep, settings: SettingsDep,
                     writer: WriterHeader = None) -> RunRead:
    sessions = request.app.state.sessions

    def read(check_writer: bool = False) -> RunRead | None:
        with sessions() as session:
            row = store.get(session, run_id, caller.name)
            if row is not None and check_writer and row.status == "active":
                _refuse_replaced_writer(row, writer)
            return None if row is None else _read(row, settings)

    if await run_in_threadpool(read, True) is None:
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}")
    # after the batches queued before it, on the run's worker: no thread held while it reads every point
    try:
        await asyncio.wrap_future(diagnose.submit_finish(run_id, caller.name, sessions=sessions,
                                                         base=settings.log_thresholds))
    except diagnose.RunGone:
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}") from None
    done = await run_in_threadpool(read)
    if done is None:
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}")
    return done


@router.post("/{run_id}/heartbeat", status_code=204, dependencies=[Depends(_writer_named), *OneWriter],
             summary="Say the run's writer is alive between batches (keeps the writer lease)",
             responses={**NOT_FOUND,
                        409: {"model": Problem, "description": "another process is the run's writer now "
                              "(run_taken_over), or the run is finished (run_finished)"}})
def run_heartbeat(run_id: str, session: SessionDep, caller: CallerDep, writer: RequiredWriterHeader) -> Response:
    """The recorder sends this when it has sent nothing for a while (a training step slower than
    ``GRADHEALTH_RUN_WRITER_LEASE_S``): the lease counts from the later of the run's last batch and
    its writer's last heartbeat, so a slow process is not taken for a dead one. Stores no point and
    leaves ``updated_at`` (the last point) and ``stale`` as they are."""
    said = store.heartbeat(session, run_id, caller.name, writer)
    if said == "not_found":
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}")
    if said == "finished":
        raise ApiError(409, "run_finished", f"run {run_id} is finished; start a new run")
    if said == "taken_over":
        _refuse_replaced_writer(_load(session, run_id, caller), writer)
    return Response(status_code=204)


@router.get("", response_model=RunPage, summary="Your runs, newest first",
            responses={422: {"model": Problem, "description": "a bad cursor or filter"}})
def list_runs(session: SessionDep, caller: CallerDep,
              settings: SettingsDep,
              status: Annotated[RunStatus | None, Query(description="only runs in this state")] = None,
              stale: Annotated[bool | None, Query(description="true: only the stale runs (active, no new point "
                                                               "for GRADHEALTH_RUN_STALE_AFTER_S); false: the "
                                                               "others")] = None,
              cursor: Annotated[str | None, Query(min_length=1, description="next_cursor of the previous page")] = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> RunPage:
    try:
        cutoff = store.stale_cutoff(settings.run_stale_after_s)  # one "now" for the filter and every row
        page = store.list_runs(session, owner=caller.name, status=status, cursor=cursor, limit=limit, stale=stale,
                               cutoff=cutoff)
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    return RunPage(items=[RunSummary(**_summary(r, cutoff)) for r in page.runs], next_cursor=page.next_cursor)


@router.delete("/{run_id}", status_code=204, response_model=None, summary="Delete a run and its points",
               responses={**NOT_FOUND, 204: {"description": "deleted"}})
def delete_run(run_id: str, session: SessionDep, caller: CallerDep) -> Response:
    _load(session, run_id, caller)
    store.delete_run(session, run_id)
    diagnose.forget(run_id)
    return Response(status_code=204)


@router.get("/{run_id}/events", summary="New and changed findings as Server-Sent Events",
            response_class=EventStreamResponse,
            responses={**NOT_FOUND, **BAD_LAST_EVENT_ID,
                       200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                          "description": "`finding` and `resolved` events, then `finished`"},
                       204: {"description": "Last-Event-ID is the run's `finished` event: nothing more will come"}})
async def run_events(run_id: str, request: Request, caller: CallerDep,
                     last_event_id: Annotated[str, Header(
                         json_schema_extra=LAST_EVENT_ID_SCHEMA,
                         description="the id of the last event received: resume after it")] = "") -> Response:
    """A ``finding`` event for each new finding or one whose severity changed (``change``: new or
    changed, with the finding as in the diagnosis), ``resolved`` when one goes away, and ``finished``
    when the run is finished. Ids count the run's events from 1; a client reconnecting with
    ``Last-Event-ID`` gets only newer ones, and 204 once it has seen ``finished``."""
    factory = request.app.state.sessions
    seen = max(0, _last_event_id(last_event_id))

    def fetch(after: int) -> tuple[RunRow | None, list[tuple[int, str, Any]]]:
        with factory() as session:
            row = store.get(session, run_id, caller.name)
            if row is None:
                return None, []
            return row, [(e.seq, e.event, e.data) for e in store.events_after(session, run_id, after)]

    first, pending = await run_in_threadpool(fetch, seen)
    if first is None:
        raise ApiError(404, "run_not_found", f"no run {echo_id(run_id)}")
    if first.status == "finished" and not pending:
        return Response(status_code=204)
    poll = 0.25

    async def stream() -> AsyncIterator[str]:
        nonlocal pending
        last, idle = seen, 0.0
        while True:
            for seq, name, data in pending:
                last = seq
                yield _event(name, data, seq)
                idle = 0.0
                if name == "finished":
                    return
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)
            idle += poll
            if idle >= 15:
                yield ": keep-alive\n\n"
                idle = 0.0
            row, pending = await run_in_threadpool(fetch, last)
            if row is None:
                yield _event("finished", {"run_id": run_id, "status": "deleted"})
                return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
