"""Report links: ``POST /v1/jobs/{id}/report/link`` and ``POST /v1/runs/{id}/report/link`` issue a
signed, expiring URL (``/v1/shared/{token}``) that opens that report without an API key, for a
dashboard's data link or a message to a colleague (newuser4 P8). The signing is
:mod:`gradhealth.api.links`; what a link opens is the report route's own rendering."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gradhealth.api import links
from gradhealth.api.bodies import JsonBodyDep
from gradhealth.api.deps import CallerDep, SessionDep, SettingsDep
from gradhealth.api.problems import ApiError
from gradhealth.api.routers import jobs as job_routes
from gradhealth.api.routers import runs as run_routes
from gradhealth.api.routers.reports import (
    NO_REPORT_EVER,
    REPORT_CONTENT,
    ReportFormat,
    job_rendered,
    negotiate,
    no_report,
)
from gradhealth.api.schemas import RATE_LIMITED, Problem
from gradhealth.api.security import ANONYMOUS, Caller, client_address, enforce_rate
from gradhealth.core.numbers import plain
from gradhealth.db.models import JobRow, RunRow
from gradhealth.jobs import store as job_store
from gradhealth.live import store as run_store
from gradhealth.settings import Settings

router = APIRouter(tags=["reports"], responses=RATE_LIMITED)

#: A link's default life: a week.
DEFAULT_TTL_S = 7 * 86400


class ReportLink(BaseModel):
    url: str = Field(description="the report's address, absolute (as this request reached the service); "
                                 "anyone holding it reads the report until it expires")
    path: str = Field(description="the same, from the service's root (/v1/shared/...)")
    format: str
    expires_at: datetime


def _issue(request: Request, settings: Settings, kind: str, item_id: str, owner: str, format: str,
           ttl_s: float, ttl_at: str) -> ReportLink:
    chosen = negotiate(format, None)  # 406 for an unknown format, as the report route
    if ttl_s > settings.link_max_ttl_s:
        why = (f"{plain(ttl_s)} s is over this service's GRADHEALTH_LINK_MAX_TTL_S "
               f"({plain(settings.link_max_ttl_s)} s)")
        in_body = ttl_at.startswith("/")
        raise ApiError(422, "link_ttl_too_long", f"{ttl_at}: {why}", item=why, pointer=ttl_at if in_body else None,
                       parameter=None if in_body else ttl_at)
    expires = math.ceil(time.time() + ttl_s)  # (never before ttl_s: apisweep4 D8)
    token = links.sign(request.app.state.link_secret,
                       links.Link(kind=kind, id=item_id, owner=owner, format=chosen.name, expires=expires))
    path = f"/v1/shared/{token}"
    return ReportLink(url=str(request.base_url).rstrip("/") + path, path=path, format=chosen.name,
                      expires_at=datetime.fromtimestamp(expires, UTC))


Ttl = Annotated[float | None, Query(ge=1, description="seconds the link stays valid (default a week; at most "
                                                      "GRADHEALTH_LINK_MAX_TTL_S)")]
LinkFormat = Annotated[ReportFormat | None, Query(description="the report format the link opens (default html)")]


class LinkOptions(BaseModel):
    """The link's options as a JSON body, the same as the query's: a body is read, never ignored
    (newuser18 #1: ``{"expires_in_s": -5}``, even ``{not json``, made a week-long link)."""

    model_config = ConfigDict(extra="forbid")

    format: ReportFormat | None = Field(None, description="the report format the link opens (default html)")
    ttl_s: float | None = Field(None, ge=1, description="seconds the link stays valid (default a week; at most "
                                                         "GRADHEALTH_LINK_MAX_TTL_S)")


LinkBody = Annotated[LinkOptions | None, Body(description="optional: the options as JSON instead of the query "
                                                           "(an empty body is no options)")]


def _options(format: str | None, ttl_s: float | None, body: LinkOptions | None) -> tuple[str, float, str]:
    """The link's format and ttl, from the query or the body (not both: 422 naming the two places),
    else their defaults, and where the ttl was given; a body's unknown format is a 406 at its pointer."""
    chosen_format, chosen_ttl = format, ttl_s
    if body is not None:
        for name, given in (("format", format), ("ttl_s", ttl_s)):
            if given is not None and getattr(body, name) is not None:
                raise ApiError(422, "invalid_request", f"{name} is given both in the query (query.{name}) and in "
                               f"the body (/{name}): give it once", pointer=f"/{name}",
                               item="also given in the query: give it once")
        if body.format is not None:
            try:
                negotiate(body.format, None)
            except ApiError as e:
                raise ApiError(e.status, e.code, f"/format: {e.item or e.detail}", pointer="/format",
                               item=e.item or e.detail) from None
        chosen_format = body.format if body.format is not None else format
        chosen_ttl = body.ttl_s if body.ttl_s is not None else ttl_s
    ttl_at = "/ttl_s" if body is not None and body.ttl_s is not None else "query.ttl_s"
    return chosen_format or "html", DEFAULT_TTL_S if chosen_ttl is None else chosen_ttl, ttl_at
_ISSUED = {**job_routes.NOT_FOUND, 400: {"model": Problem, "description": "a body that is not JSON"},
           406: {"model": Problem, "description": "an unknown format"},
           415: {"model": Problem, "description": "a body that is not application/json"},
           422: {"model": Problem, "description": "a ttl_s over GRADHEALTH_LINK_MAX_TTL_S, a body field this route "
                                                 "does not take, or an option given both in the query and the body"}}
_JOB_ISSUED = {**_ISSUED, 409: {"model": Problem, "description": "the job failed or was cancelled: it will "
                                                                 "never have a report to link to"}}


@router.post("/v1/jobs/{job_id}/report/link", response_model=ReportLink, status_code=201, responses=_JOB_ISSUED,
             summary="A signed, expiring link to a job's report, opened without an API key")
def job_report_link(job_id: str, request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep,
                    _json: JsonBodyDep, format: LinkFormat = None, ttl_s: Ttl = None,
                    body: LinkBody = None) -> ReportLink:
    row = job_routes._load(session, job_id, caller, with_result=False)
    if row.status in NO_REPORT_EVER:
        raise no_report(row, ", so no link is made (a link needs a queued, running or succeeded job)")
    return _issue(request, settings, "job", job_id, caller.name, *_options(format, ttl_s, body))


@router.post("/v1/runs/{run_id}/report/link", response_model=ReportLink, status_code=201, responses=_ISSUED,
             summary="A signed, expiring link to a live run's report (its diagnosis when opened)")
def run_report_link(run_id: str, request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep,
                    _json: JsonBodyDep, format: LinkFormat = None, ttl_s: Ttl = None,
                    body: LinkBody = None) -> ReportLink:
    run_routes._load(session, run_id, caller)
    return _issue(request, settings, "run", run_id, caller.name, *_options(format, ttl_s, body))


@router.get("/v1/shared/{token}", response_class=Response,
            summary="The report a link opens (no API key: the link is the credential)",
            responses={200: {"content": REPORT_CONTENT, "description": "the report, as it is now"},
                       404: {"model": Problem, "description": "not a link of this service (or its job or run "
                                                              "was deleted, or the signing key changed)"},
                       409: {"model": Problem, "description": "nothing to report yet"},
                       410: {"model": Problem, "description": "the link expired"}})
def shared_report(token: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    address = client_address(request.scope)
    enforce_rate(request.app.state.limiter, Caller(ANONYMOUS), address)  # by address: no key here
    not_found = ApiError(404, "link_not_found", "no such report link: it was not made here, its job or run was "
                         "deleted, its owner's API key was removed, or the service's signing key changed")
    try:
        claimed = links.read(token)
        # looked up by id alone: the MAC then holds only with its owner's name
        row: JobRow | RunRow | None = (job_store.get(session, claimed.id, None) if claimed.kind == "job"
               else run_store.get(session, claimed.id, None))
        if row is None:
            raise links.BadLink(token[:40])
        link = links.verify(request.app.state.link_secret, token, row.owner)
    except links.BadLink:
        raise not_found from None
    except links.ExpiredLink as e:
        # written as the link's expires_at is (JSON: `Z`), not `+00:00` (newuser19 #10)
        when = datetime.fromtimestamp(e.link.expires, UTC).isoformat().replace("+00:00", "Z")
        raise ApiError(410, "link_expired", f"this report link expired at {when}; ask for a new one") from None
    owners = settings.key_owners()
    if owners and link.owner not in owners.values():
        raise not_found  # the key that made it is gone: so are its links (apisweep4 D6)
    chosen = negotiate(link.format, None)
    response = job_rendered(row, chosen) if isinstance(row, JobRow) else run_routes.run_rendered(row, chosen)
    response.headers["Cache-Control"] = "private, no-store"  # a live run's report changes
    if settings.report_frame_ancestors and chosen.media_type.startswith("text/html"):
        # a dashboard may frame it: the document's own policy, its frame-ancestors the setting's
        from gradhealth.api.app import document_policy  # (the app imports this router)

        response.headers["Content-Security-Policy"] = document_policy(settings.report_frame_ancestors)
    return response
