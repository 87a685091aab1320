"""/v1/checks: submit checks. The spec is validated (and sized against the limits) here, before a
job exists, so a bad spec gets its 422 at once and never reaches a worker."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service.analysis.plan import make_plan
from service.analysis.spec import load_spec_text, parse_spec
from service.api.deps import CallerDep, SettingsDep
from service.api.problems import ApiError
from service.api.routers.jobs import to_read
from service.api.schemas import JobRead, Problem
from service.jobs import store

router = APIRouter(prefix="/v1/checks", tags=["checks"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
SPEC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Spec"}},
        "application/yaml": {"schema": {"type": "string", "description": "the same spec as YAML"}},
    },
}


def decode_spec(body: bytes, content_type: str) -> dict[str, Any]:
    """The spec from a JSON or YAML body."""
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and media not in YAML_TYPES and not media.endswith("+json"):
        raise ApiError(415, "unsupported_media_type",
                       f"send the spec as application/json or application/yaml, not {media}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"the body is not UTF-8 (byte {exc.start})") from None
    return load_spec_text(text, content_type="application/json" if media.endswith("json") else None)


async def wait_for(request: Request, job_id: str, owner: str, seconds: float):  # noqa: ANN201
    """Poll the job until it is finished or ``seconds`` have passed."""
    factory = request.app.state.sessions
    deadline = time.monotonic() + seconds

    def fetch():  # noqa: ANN202
        with factory() as session:
            return store.get(session, job_id, owner)

    row = await run_in_threadpool(fetch)
    while row is not None and row.status not in store.TERMINAL and time.monotonic() < deadline:
        await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
        row = await run_in_threadpool(fetch)
    return row


@router.post(
    "/architecture", status_code=202, response_model=JobRead,
    summary="Check an architecture spec",
    description="Queues the check and answers 202 with the job (Location: /v1/jobs/{id}). With ?wait=N it "
                "waits up to N seconds and answers 200 with the finished job when it is done in time.",
    openapi_extra={"requestBody": SPEC_BODY},
    responses={200: {"model": JobRead, "description": "finished within ?wait"},
               409: {"model": Problem, "description": "Idempotency-Key reused with another body"},
               413: {"model": Problem, "description": "body too large"},
               415: {"model": Problem, "description": "not JSON or YAML"},
               422: {"model": Problem, "description": "invalid spec (with JSON pointers) or over the limits"}},
)
async def submit_architecture(
    request: Request, response: Response, caller: CallerDep, settings: SettingsDep,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for the result (capped)")] = 0,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JobRead:
    raw = decode_spec(await request.body(), request.headers.get("content-type", "application/json"))
    make_plan(parse_spec(raw), settings.limits)  # SpecError / LimitExceeded -> 422 with pointers

    def submit():  # noqa: ANN202
        with request.app.state.sessions() as session:
            try:
                return store.submit(session, kind="architecture", owner=caller.name, request=raw,
                                    idempotency_key=idempotency_key, time_limit_s=settings.job_time_limit_s,
                                    max_attempts=settings.max_attempts)
            except store.IdempotencyConflict as exc:
                raise ApiError(409, "idempotency_conflict",
                               f"Idempotency-Key {idempotency_key!r} was used for job {exc.job_id} with a "
                               "different body; use a new key for a new request") from None

    row, _created = await run_in_threadpool(submit)
    if wait > 0 and row.status not in store.TERMINAL:
        row = await wait_for(request, row.id, caller.name, min(wait, settings.wait_max_s)) or row
    response.headers["Location"] = f"/v1/jobs/{row.id}"
    if row.status in store.TERMINAL:
        response.status_code = 200
    else:
        response.headers["Retry-After"] = "1"
    return to_read(row)
