"""/v1/jobs: read, watch (Server-Sent Events), list and cancel/delete jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from gradhealth.api.deps import CallerDep, SessionDep, SettingsDep
from gradhealth.api.problems import ApiError, bad_cursor, echo_id
from gradhealth.api.schemas import (
    RATE_LIMITED,
    EventStreamResponse,
    JobKind,
    JobLinks,
    JobPage,
    JobRead,
    JobStatus,
    JobSummary,
    Problem,
    Progress,
)
from gradhealth.db.models import JobRow
from gradhealth.jobs import store

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=RATE_LIMITED)

# Typed as FastAPI declares `responses`, so that it can be unpacked into a wider mapping.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such job (or not yours)"}}
#: An event stream's 400: a Last-Event-ID that cannot be one of its ids.
#: What a Last-Event-ID may be, stated in the OpenAPI document (not validated by FastAPI, so that
#: anything else keeps its 400 naming the header, :func:`_last_event_id`): empty, or a whole number
#: of up to 18 digits, blanks around it allowed.
LAST_EVENT_ID_SCHEMA: dict[str, Any] = {"pattern": r"^\s*[0-9]{0,18}\s*$"}
BAD_LAST_EVENT_ID: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a Last-Event-ID that is not an event id of the stream, or sent twice"}}


def summary_fields(row: JobRow) -> dict:
    return dict(
        id=row.id, kind=row.kind, name=row.name, status=row.status,
        progress=Progress(fraction=row.progress, stage=row.stage), attempts=row.attempts,
        max_attempts=row.max_attempts, created_at=store.as_utc(row.created_at),
        started_at=store.as_utc(row.started_at), finished_at=store.as_utc(row.finished_at),
        updated_at=store.as_utc(row.updated_at), result_status=row.result_status,
        links=JobLinks(self=f"/v1/jobs/{row.id}", events=f"/v1/jobs/{row.id}/events"),
        cancel_requested=bool(row.cancel_requested),
    )


_ROW_RESULT: Any = object()


def to_read(row: JobRow, result: Any = _ROW_RESULT) -> JobRead:
    """The job resource of a row (the row itself is never returned); ``result``: the row's unless given."""
    return JobRead(**summary_fields(row), result=row.result if result is _ROW_RESULT else result,
                   error=store.job_problem(row.error, row.id))


def job_response(row: Any, result_text: str | None, *, status_code: int = 200,
                 headers: dict[str, str] | None = None) -> Response:
    """The job resource of ``row`` as a JSON response, its result ``result_text`` (the JSON text
    stored; None or ``"null"``: none) sent on as stored: the document a worker stored from the
    Diagnosis model is what parsing it into that model and writing it out again gives, at a cost
    of milliseconds per request. Where the text holds something the model writes differently
    (``NaN``/``Infinity``, which the model writes as null), it goes through the model as before."""
    text = None if result_text is None or result_text == "null" else result_text
    body = _spliced(row, text) if text is not None else None
    if body is None:
        body = to_read(row, json.loads(text) if text is not None else None).model_dump_json().encode()
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def _spliced(row: Any, text: str) -> bytes | None:
    """JobRead's JSON with ``text`` as its result, or None where the text must go through the model."""
    if "NaN" in text or "Infinity" in text:  # a token, or only a name in a string: the model decides
        return None
    try:
        result = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate stored before names were scrubbed
        return None
    head = to_read(row, None)  # the small fields, written by the model; result and error go last
    error = head.error.model_dump_json().encode() if head.error is not None else b"null"
    return b"".join((head.model_dump_json(exclude={"result", "error"}).encode()[:-1],
                     b',"result":', result, b',"error":', error, b"}"))


def _load(session, job_id: str, caller, *, with_result: bool = True) -> JobRow:  # noqa: ANN001 - internal helper
    row = store.get(session, job_id, caller.name, with_result=with_result)
    if row is None:
        raise ApiError(404, "job_not_found", f"no job {echo_id(job_id)}")
    return row


#: A stored result longer than this (characters of JSON) is sent as stored, in chunks, never parsed:
#: parsing a document of megabytes into Python objects costs several times its size per reader.
STREAM_RESULT_CHARS = 256 * 1024
_CHUNK = 64 * 1024


@router.get("/{job_id}", response_model=JobRead, responses=NOT_FOUND, summary="A job, with its diagnosis when done")
def read_job(job_id: str, session: SessionDep, caller: CallerDep) -> Any:
    row = _load(session, job_id, caller, with_result=False)
    text = store.result_text(session, job_id)
    if text is None or len(text) <= STREAM_RESULT_CHARS:
        return job_response(row, text)
    head = to_read(row, None).model_dump(mode="json")
    error = head.pop("error")
    head.pop("result")
    prefix = json.dumps(head, separators=(",", ":"))[:-1] + ',"result":'
    suffix = ',"error":' + json.dumps(error, separators=(",", ":")) + "}"

    def chunks() -> Iterator[bytes]:
        yield prefix.encode()
        for start in range(0, len(text), _CHUNK):
            # surrogatepass: a result stored before names were scrubbed still streams
            yield text[start:start + _CHUNK].encode("utf-8", "surrogatepass")
        yield suffix.encode()

    return StreamingResponse(chunks(), media_type="application/json")


@router.get("", response_model=JobPage, summary="Your jobs, newest first",
            responses={422: {"model": Problem, "description": "a bad cursor or filter"}})
def list_jobs(session: SessionDep, caller: CallerDep,
              status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
              kind: Annotated[JobKind | None, Query(description="only this kind")] = None,
              cursor: Annotated[str | None, Query(min_length=1,  # "" is refused, and the schema says so
                                                  description="next_cursor of the previous page")] = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JobPage:
    try:
        page = store.list_jobs(session, owner=caller.name, status=status, kind=kind, cursor=cursor, limit=limit)
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    return JobPage(items=[JobSummary(**summary_fields(r)) for r in page.jobs], next_cursor=page.next_cursor)


@router.delete("/{job_id}", summary="Cancel a queued or running job, or delete a finished one",
               response_model=None,
               responses={**NOT_FOUND, 200: {"model": JobRead, "description": "the queued job was cancelled"},
                          202: {"model": JobRead, "description": "the running job was asked to stop"},
                          204: {"description": "the finished job was deleted"}})
def delete_job(job_id: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> Response:
    row = _load(session, job_id, caller)
    kind, request = row.kind, row.request
    outcome = store.cancel_or_delete(session, job_id)
    if outcome is None or outcome == "deleted":
        if kind in ("logs", "model") and outcome == "deleted":
            _remove_upload(Path(settings.upload_dir), request)
        return Response(status_code=204)
    body = to_read(_load(session, job_id, caller)).model_dump_json()
    return Response(body, status_code=200 if outcome == "cancelled" else 202, media_type="application/json")


def _remove_upload(folder: Path, request: dict) -> None:
    """Delete a deleted job's uploaded log or model (its own folder inside the upload folder, nothing else)."""
    upload = Path(request.get("path", "")).resolve().parent
    if upload.parent == folder.resolve():
        store.remove_upload(upload)  # a failure is logged; the retention sweep retries it as an orphan


#: Event ids: ``slot * _ID_STRIDE + per-mille progress``, ``+ _DONE`` for the final event. The slot
#: orders a job's phases (queued 0, attempt 1 running 1, requeued 2, attempt 2 running 3, ...,
#: finished last), so the id grows with every event of a job, across requeues and reconnections,
#: without any state kept by the server: a client resuming with Last-Event-ID sees nothing twice.
_ID_STRIDE = 1002
_DONE = 1001


def event_id(row: JobRow, *, done: bool = False) -> int:
    """The id of the event that reports ``row``'s state (``done``: of its final event)."""
    attempts = row.attempts or 0
    if row.status in store.TERMINAL:
        slot = 2 * attempts + 2
    elif row.status == "running":
        slot = 2 * attempts - 1
    else:  # queued: waiting for attempt attempts + 1
        slot = 2 * attempts
    permille = round(max(0.0, min(1.0, row.progress or 0.0)) * 1000)
    return slot * _ID_STRIDE + (_DONE if done else permille)


#: The most digits an event id of this service has (ids fit a signed 64-bit integer).
_EVENT_ID_DIGITS = 18


def _last_event_id(header: str | None) -> int:
    """The client's Last-Event-ID as a number; -1 (nothing seen) when absent or empty. Anything else
    that is not an id these streams send (a whole number of at most 18 ASCII digits: ``abc``, ``-1``,
    ``1e100``, 26 digits) is a 400 naming the header: it was replayed from the first event as if
    nothing had been seen (errsweep6 #8), which a client resuming would take for new events."""
    text = (header or "").strip()
    if not text:
        return -1
    if not (text.isascii() and text.isdigit() and len(text) <= _EVENT_ID_DIGITS):
        raise ApiError(400, "invalid_last_event_id",
                       f"the Last-Event-ID header {echo_id(text)!r} is not an event id of this stream: send the "
                       f"id: of the last event received (a whole number of up to {_EVENT_ID_DIGITS} digits), "
                       "or no Last-Event-ID to start from the first event")
    return int(text)


def _event(name: str, data: dict, event: int | None = None) -> str:
    head = f"id: {event}\n" if event is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get("/{job_id}/events", summary="Progress and the final state as Server-Sent Events",
            response_class=EventStreamResponse,
            responses={**NOT_FOUND, **BAD_LAST_EVENT_ID,
                       200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                          "description": "`progress` events, then one `done` event"},
                       204: {"description": "Last-Event-ID is the job's final event: nothing more will come"}})
async def job_events(job_id: str, request: Request, caller: CallerDep,
                     last_event_id: Annotated[str, Header(
                         json_schema_extra=LAST_EVENT_ID_SCHEMA,
                         description="the id of the last event received: resume after it")] = "") -> Response:
    """``progress`` events (the job's status, attempts and ``progress`` object, as in ``GET /v1/jobs/{id}``),
    then one ``done`` event with the whole job. Each event has an ``id:``; a client reconnecting with
    ``Last-Event-ID`` gets only what is newer, and 204 (stop reconnecting) once it has seen ``done``."""
    factory = request.app.state.sessions
    seen = _last_event_id(last_event_id)

    def fetch() -> JobRow | None:
        with factory() as session:
            return store.get(session, job_id, caller.name)

    first = await run_in_threadpool(fetch)
    if first is None:
        raise ApiError(404, "job_not_found", f"no job {echo_id(job_id)}")
    if first.status in store.TERMINAL and event_id(first, done=True) <= seen:
        return Response(status_code=204)
    poll = request.app.state.settings.lease_s / 30 if request.app.state.settings.lease_s < 15 else 0.5

    hub = getattr(request.app.state, "wakeup", None)

    async def stream() -> AsyncIterator[str]:
        # Progress is read every `poll`; the finish arrives as soon as it is announced.
        with hub.watch(job_id) if hub is not None else contextlib.nullcontext() as watch:
            async for event in _events(watch):
                yield event

    async def _events(watch: Any) -> AsyncIterator[str]:
        row: JobRow | None = first
        last = seen
        idle = 0.0
        while True:
            if row is None:
                yield _event("done", {"id": job_id, "status": "deleted"})
                return
            current = event_id(row)
            # Only a newer state is sent: an older one was seen before a reconnection (or is a
            # stage change at the same fraction, which the next event reports).
            if current > last:
                last = current
                yield _event("progress", {"id": row.id, "status": row.status,
                                          "progress": Progress(fraction=row.progress, stage=row.stage)
                                          .model_dump(mode="json"),
                                          "attempts": row.attempts,
                                          "cancel_requested": bool(row.cancel_requested)}, current)
                idle = 0.0
            if row.status in store.TERMINAL:
                yield _event("done", to_read(row).model_dump(mode="json"), event_id(row, done=True))
                return
            if await request.is_disconnected():
                return
            if watch is not None:
                await watch.wait(poll)
            else:
                await asyncio.sleep(poll)
            idle += poll
            if idle >= 15:
                yield ": keep-alive\n\n"
                idle = 0.0
            row = await run_in_threadpool(fetch)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
