"""Request and response shapes of the HTTP API (one family per resource)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gradhealth.core.document import Diagnosis

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="each with `pointer` (JSON pointer) and `detail`")


class Progress(BaseModel):
    fraction: float = Field(ge=0, le=1)
    stage: str


class JobLinks(BaseModel):
    self: str
    events: str


class JobSummary(BaseModel):
    id: str
    kind: str
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
