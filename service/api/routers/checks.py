"""/v1/checks: submit checks. The spec is validated (and sized against the limits) here, before a
job exists, so a bad spec gets its 422 at once and never reaches a worker."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from gradhealth import devices
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import load_spec_text, parse_spec
from gradhealth.api.deps import CallerDep, SettingsDep
from gradhealth.api.problems import ApiError
from gradhealth.api.routers.jobs import to_read
from gradhealth.api.schemas import JobRead, Problem
from gradhealth.errors import cuda_unavailable
from gradhealth.jobs import store

router = APIRouter(prefix="/v1/checks", tags=["checks"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
SPEC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Spec"}},
        "application/yaml": {"schema": {"type": "string", "minLength": 1, "pattern": "\\S",
                                        "description": "the same spec as YAML (not empty)"}},
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
    pause = 0.005  # small checks finish in milliseconds: look often at first, then back off to 0.2 s
    while row is not None and row.status not in store.TERMINAL and time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(0.2, pause * 1.5)
        row = await run_in_threadpool(fetch)
    return row


async def respond(request: Request, response: Response, row, owner: str, wait: float) -> JobRead:  # noqa: ANN001
    """202 + Location + Retry-After, or 200 once the job finished within ``wait`` seconds."""
    if wait > 0 and row.status not in store.TERMINAL:
        row = await wait_for(request, row.id, owner, wait) or row
    response.headers["Location"] = f"/v1/jobs/{row.id}"
    if row.status in store.TERMINAL:
        response.status_code = 200
    else:
        response.headers["Retry-After"] = "1"
    return to_read(row)


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
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json")

    def validate():  # noqa: ANN202
        raw = decode_spec(body, content_type)
        spec = parse_spec(raw)
        make_plan(spec, settings.limits)  # SpecError / LimitExceeded -> 422 with pointers
        return raw, spec

    # Off the event loop: reading and validating a large spec is CPU work that /livez and every
    # other request must not wait behind.
    raw, spec = await run_in_threadpool(validate)
    # cuda on a host without a GPU: 422 now, decided without torch (nvidia-smi). A pure API node
    # (workers=0) cannot see its workers' hosts: there the worker reports the same error on the job.
    if spec.device == "cuda" and settings.workers != 0 and not devices.host_has_gpu():
        raise cuda_unavailable()

    def submit():  # noqa: ANN202
        with request.app.state.sessions() as session:  # IdempotencyConflict -> 409 by its own status
            return store.submit(session, kind="architecture", owner=caller.name, request=raw,
                                idempotency_key=idempotency_key, time_limit_s=settings.job_time_limit_s,
                                max_attempts=settings.max_attempts)

    row, _created = await run_in_threadpool(submit)
    return await respond(request, response, row, caller.name, min(wait, settings.wait_max_s))


# --- logs ------------------------------------------------------------------------------------------

CHUNK = 1 << 20


def safe_filename(filename: str) -> str:
    """The name an upload is stored under: the last path component of ``filename`` (``/`` or
    ``\\``), other characters than ``A-Za-z0-9._-`` as ``_``. A name that is empty or only dots
    (``..``, ``a/..``) is a 422: it names no file, and would name a folder."""
    base = re.split(r"[/\\]", filename)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", base)[-120:]
    if not safe.strip("."):
        raise ApiError(422, "invalid_filename", f"the file name {filename[:60]!r} names no file; "
                       "send a plain file name such as run.jsonl")
    return safe


class _Upload:
    """Streams an upload to a file in the upload folder, hashing it on the way."""

    def __init__(self, folder: Path, filename: str) -> None:
        safe = safe_filename(filename)  # before anything is created: a refused name leaves nothing
        folder.mkdir(parents=True, exist_ok=True)
        self.job_dir = folder / uuid.uuid4().hex
        self.job_dir.mkdir()
        self.path = self.job_dir / safe
        self.digest = hashlib.sha256()
        self.size = 0
        self._file = self.path.open("wb")

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.job_dir, ignore_errors=True)


async def _receive_upload(request: Request, folder: Path, filename: str | None) -> _Upload:
    content_type = request.headers.get("content-type", "")
    if filename is not None:
        safe_filename(filename)  # a bad ?filename= is refused before the body is read
    if content_type.startswith("multipart/form-data"):
        # Starlette spools parts to disk past 1 MiB; the body-limit middleware caps the total.
        form = await request.form(max_files=1, max_fields=5)
        part = form.get("file")
        if part is None or isinstance(part, str):
            raise ApiError(422, "missing_file", "send the log as a multipart part named `file`")
        try:
            upload = _Upload(folder, filename if filename is not None else part.filename or "upload")
        except BaseException:
            await part.close()  # the spooled part is closed even when its name is refused
            raise
        try:
            while chunk := await part.read(CHUNK):
                upload.write(chunk)
        finally:
            await part.close()
            upload.close()
        return upload
    upload = _Upload(folder, filename if filename is not None else "upload")
    try:
        async for chunk in request.stream():
            upload.write(chunk)
    except BaseException:
        upload.discard()
        raise
    upload.close()
    return upload


@router.post(
    "/logs", status_code=202, response_model=JobRead, summary="Check uploaded training logs",
    description="A multipart upload (part `file`) or a raw body, optionally with ?format= (see /v1/catalog for "
                "the formats) and ?filename=. Archives of a run folder (zip, tar, tar.gz, tar.bz2, "
                "tar.xz; found by content) are accepted. Streams to disk within "
                "GRADHEALTH_MAX_UPLOAD_BYTES. Answers like the architecture check (202, ?wait).",
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    responses={200: {"model": JobRead, "description": "finished within ?wait"},
               409: {"model": Problem, "description": "Idempotency-Key reused with another body"},
               413: {"model": Problem, "description": "upload too large"},
               415: {"model": Problem, "description": "not a log format this service reads, or the wrong hint"},
               422: {"model": Problem, "description": "an empty or unreadable upload"}},
)
async def submit_logs(
    request: Request, response: Response, caller: CallerDep, settings: SettingsDep,
    format: Annotated[str | None, Query(description="format hint, e.g. tensorboard, hf_trainer")] = None,
    filename: Annotated[str | None, Query(max_length=255, description="the original file name")] = None,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for the result (capped)")] = 0,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JobRead:
    from gradhealth.logs.readers.registry import formats
    from gradhealth.logs.sniff import archive_kind, detect

    if format is not None and format not in formats():
        raise ApiError(422, "unknown_format_hint", f"unknown format {format!r}; use one of: {', '.join(formats())}")
    upload = await _receive_upload(request, Path(settings.upload_dir), filename)
    try:
        if upload.size == 0:
            raise ApiError(422, "empty_upload", "the upload is empty")
        # The loader's archive detector: an archive is checked as the job extracts it; any other
        # file gets its 415 now, not a failed job later.
        if archive_kind(upload.path) is None:
            await run_in_threadpool(detect, upload.path, format)
    except BaseException:
        upload.discard()
        raise
    job_request = {"path": str(upload.path.resolve()), "format": format, "filename": upload.path.name,
                   "sha256": upload.digest.hexdigest(), "bytes": upload.size}

    def submit():  # noqa: ANN202
        with request.app.state.sessions() as session:  # IdempotencyConflict -> 409 by its own status
            return store.submit(session, kind="logs", owner=caller.name, request=job_request,
                                idempotency_key=idempotency_key, time_limit_s=settings.job_time_limit_s,
                                max_attempts=settings.max_attempts,
                                fingerprint={"sha256": job_request["sha256"], "format": format})

    try:
        row, created = await run_in_threadpool(submit)
    except BaseException:
        upload.discard()
        raise
    if not created:
        upload.discard()  # the same upload again: the first job keeps its copy
    return await respond(request, response, row, caller.name, min(wait, settings.wait_max_s))
