"""/livez, /readyz and /metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from gradhealth.api.schemas import Health
from gradhealth.api.security import authenticate_throttled, client_address

router = APIRouter(tags=["health"])


def upload_dir_problem(folder: Path) -> str | None:
    """Why uploads cannot be stored in ``folder`` (GRADHEALTH_UPLOAD_DIR), or None: the folder is
    created if missing, then a file is written in it and removed, as an upload would be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-") as probe:  # removed on close
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


@router.get("/livez", response_model=Health, summary="The process is up")
def livez() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health,
            summary="The database and the worker are reachable, and uploads can be stored",
            responses={503: {"model": Health, "description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}

    def ping() -> None:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    # The upload folder: a folder that cannot be written fails every log and model upload.
    problem = await run_in_threadpool(upload_dir_problem, Path(request.app.state.settings.upload_dir))
    checks["upload_dir"] = "ok" if problem is None else f"GRADHEALTH_UPLOAD_DIR cannot be written: {problem}"
    supervisor = request.app.state.supervisor
    if supervisor is None:
        checks["worker"] = "external (not supervised by this process)"
    else:
        alive = supervisor.alive()
        checks["worker"] = (f"ok ({alive} process(es))" if alive
                            else "no worker process is running (dead, or restarting over and over)")
    ready = (checks["database"] == "ok" and checks["upload_dir"] == "ok"
             and not checks["worker"].startswith("no worker"))
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    """The job counters are every caller's (database-wide); with API keys on, the live runs' gauges
    name the calling key's own runs only (``GRADHEALTH_METRICS_PUBLIC=true``: a scrape that sends a key
    gets its own runs, one without a key every run's)."""
    caller = getattr(request.state, "caller", None)  # set by the key check (security.exposure_guard)
    settings = request.app.state.settings
    if caller is None and settings.key_owners() and request.headers.get("x-api-key"):
        # public metrics, but the scrape names its key: its own runs only (apisweep4 D5: key B saw
        # key A's run ids and names)
        caller = authenticate_throttled(settings, request.headers["x-api-key"], request.app.state.auth_failures,
                                        client_address(request.scope))
    owner = caller.name if caller is not None else None
    state = request.app.state.metrics

    def render() -> bytes:
        with state.runs.owned_by(owner):
            return generate_latest(state.registry)

    payload = await run_in_threadpool(render)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
