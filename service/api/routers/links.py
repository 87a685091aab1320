"""Report links: ``POST /v1/jobs/{id}/report/link`` and ``POST /v1/runs/{id}/report/link`` issue a
signed, expiring URL (``/v1/shared/{token}``) that opens that report without an API key, for a
dashboard's data link or a message to a colleague (newuser4 P8). The signing is
:mod:`gradhealth.api.links`; what a link opens is the report route's own rendering."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gradhealth.api import links
from gradhealth.api.deps import CallerDep, SessionDep, SettingsDep
from gradhealth.api.problems import ApiError
from gradhealth.api.routers import jobs as job_routes
from gradhealth.api.routers import runs as run_routes
from gradhealth.api.routers.reports import REPORT_CONTENT, ReportFormat, job_rendered, negotiate
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
           ttl_s: float) -> ReportLink:
    chosen = negotiate(format, None)  # 406 for an unknown format, as the report route
    if ttl_s > settings.link_max_ttl_s:
        raise ApiError(422, "link_ttl_too_long", f"query.ttl_s: {plain(ttl_s)} s is over this service's "
                       f"GRADHEALTH_LINK_MAX_TTL_S ({plain(settings.link_max_ttl_s)} s)")
    expires = math.ceil(time.time() + ttl_s)  # (never before ttl_s: apisweep4 D8)
    token = links.sign(request.app.state.link_secret,
                       links.Link(kind=kind, id=item_id, owner=owner, format=chosen.name, expires=expires))
    path = f"/v1/shared/{token}"
    return ReportLink(url=str(request.base_url).rstrip("/") + path, path=path, format=chosen.name,
                      expires_at=datetime.fromtimestamp(expires, UTC))


Ttl = Annotated[float, Query(ge=1, description="seconds the link stays valid (default a week; at most "
                                               "GRADHEALTH_LINK_MAX_TTL_S)")]
LinkFormat = Annotated[ReportFormat, Query(description="the report format the link opens")]
_ISSUED = {**job_routes.NOT_FOUND, 406: {"model": Problem, "description": "an unknown format"},
           422: {"model": Problem, "description": "a ttl_s over GRADHEALTH_LINK_MAX_TTL_S"}}
_JOB_ISSUED = {**_ISSUED, 409: {"model": Problem, "description": "the job failed or was cancelled: it will "
                                                                 "never have a report to link to"}}
#: A job in one of these states never gets a diagnosis (there is no retry): a link to its report could only
#: ever answer 409, so none is made (errsweep6 #8).
NO_REPORT_EVER = frozenset({"failed", "cancelled"})


@router.post("/v1/jobs/{job_id}/report/link", response_model=ReportLink, status_code=201, responses=_JOB_ISSUED,
             summary="A signed, expiring link to a job's report, opened without an API key")
def job_report_link(job_id: str, request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep,
                    format: LinkFormat = "html", ttl_s: Ttl = DEFAULT_TTL_S) -> ReportLink:
    row = job_routes._load(session, job_id, caller, with_result=False)
    if row.status in NO_REPORT_EVER:
        raise ApiError(409, "job_has_no_report",
                       f"job {row.id} is {row.status}: it will never have a report, so no link is made "
                       "(a link needs a queued, running or succeeded job)")
    return _issue(request, settings, "job", job_id, caller.name, format, ttl_s)


@router.post("/v1/runs/{run_id}/report/link", response_model=ReportLink, status_code=201, responses=_ISSUED,
             summary="A signed, expiring link to a live run's report (its diagnosis when opened)")
def run_report_link(run_id: str, request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep,
                    format: LinkFormat = "html", ttl_s: Ttl = DEFAULT_TTL_S) -> ReportLink:
    run_routes._load(session, run_id, caller)
    return _issue(request, settings, "run", run_id, caller.name, format, ttl_s)


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
        when = datetime.fromtimestamp(e.link.expires, UTC).isoformat()
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
