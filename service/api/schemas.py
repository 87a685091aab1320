"""Request and response shapes of the HTTP API (one family per resource)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, WithJsonSchema

from gradhealth.core.document import Diagnosis
from gradhealth.logs.readers.registry import formats

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: ?format= of a log upload: any string to the server, so that a wrong hint gets the 422 that lists
#: the formats; an enum of the reader registry's names to clients and fuzzers.
LogFormatHint = Annotated[str, WithJsonSchema({"type": "string", "enum": list(formats())})]
#: ?filename= of an upload. The server keeps the last path component's last 120 characters and
#: refuses (422) a name that leaves only dots or nothing; the pattern says exactly that to clients.
FileName = Annotated[str, WithJsonSchema({"type": "string", "maxLength": 255,
                                          "pattern": r"[^./\\][^/\\]{0,119}$"})]
#: What a job checks: one value per submit endpoint (the list filter ?kind= takes the same values).
JobKind = Literal["architecture", "logs", "model"]


class ProblemError(BaseModel):
    """One located problem: where (a JSON pointer into the body, or a parameter) and what is wrong."""

    pointer: str | None = Field(None, description="JSON pointer into the request body, e.g. "
                                "`/layers/3/init/std`; null when the problem is in a parameter")
    parameter: str | None = Field(None, description="the query, path or header parameter at fault, "
                                  "e.g. `query.limit`; absent or null when `pointer` says where")
    detail: str = Field(description="what is wrong there and what to change")
    line: int | None = Field(None, ge=1, description="where a body that could not be parsed (invalid YAML or "
                             "JSON), or the line of a log a failed log job could not read, goes wrong: its "
                             "line, from 1; absent otherwise")
    column: int | None = Field(None, ge=1, description="that place's column, from 1; absent with `line`, and "
                               "where only the line is known")
    field: str | None = Field(None, description="the log's column (of a table) or field (of a record) the "
                              "problem is in, by name (`loss`); absent otherwise")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemError] | None = Field(None, description="each problem with where it is and what is wrong")


class EventStreamResponse(StreamingResponse):
    """A Server-Sent Events stream. As a route's ``response_class`` it makes the OpenAPI document
    declare ``text/event-stream`` alone for the 200 (generated clients must not parse it as JSON)."""

    media_type = "text/event-stream"


#: The 429 every route behind the per-caller rate limit may answer, with its Retry-After header.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {429: {
    "model": Problem, "description": "over the rate limit (GRADHEALTH_RATE_LIMIT_PER_MINUTE); retry later",
    "headers": {"Retry-After": {"description": "seconds until a request will be accepted",
                                "schema": {"type": "integer", "minimum": 1}}}}}

#: The submission routes' answer when the queue is full (GRADHEALTH_MAX_QUEUED_JOBS), and their 429,
#: which also means the caller's own jobs are at its quota (GRADHEALTH_MAX_JOBS_PER_CLIENT).
QUEUE_FULL: dict[int | str, dict[str, Any]] = {429: {
    "model": Problem, "description": "over the rate limit (GRADHEALTH_RATE_LIMIT_PER_MINUTE), or this "
                                     "caller's queued and running jobs are at its quota "
                                     "(GRADHEALTH_MAX_JOBS_PER_CLIENT); retry later",
    "headers": {"Retry-After": {"description": "seconds until a request will be accepted",
                                "schema": {"type": "integer", "minimum": 1}}}}, 503: {
    "model": Problem, "description": "too many queued jobs (GRADHEALTH_MAX_QUEUED_JOBS); retry later",
    "headers": {"Retry-After": {"description": "seconds after which a submission may be accepted",
                                "schema": {"type": "integer", "minimum": 1}}}}}


class Progress(BaseModel):
    fraction: float = Field(ge=0, le=1)
    stage: str


class JobLinks(BaseModel):
    self: str
    events: str


class JobSummary(BaseModel):
    id: str
    kind: JobKind
    name: str | None = Field(None, description="what the job checked: the spec's `name`, or the uploaded file's "
                                               "name (log and model checks); null when it had none")
    status: JobStatus
    progress: Progress
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    result_status: Literal["healthy", "warning", "unhealthy"] | None = None
    links: JobLinks
    cancel_requested: bool = Field(False, description="true once `DELETE /v1/jobs/{id}` asked this running job "
                                                      "to stop: it ends `cancelled` within a few seconds")


class JobRead(JobSummary):
    """A job with its outcome: the diagnosis document when it succeeded, a problem when it failed."""

    result: Diagnosis | None = None
    error: Problem | None = None


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next (older) page")


class CatalogEntry(BaseModel):
    id: str
    title: str
    description: str


class Catalog(BaseModel):
    findings: list[CatalogEntry]
    remedies: list[CatalogEntry]
    log_formats: list[CatalogEntry] = Field(default_factory=list, description="values of ?format= for log uploads")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
