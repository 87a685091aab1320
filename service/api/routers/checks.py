"""/v1/checks: submit checks. The spec is validated (and sized against the limits) here, before a
job exists, so a bad spec gets its 422 at once and never reaches a worker."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from gradhealth import devices
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import field_hint, load_spec_text, parse_spec, unknown_field_words
from gradhealth.api.bodies import DuplicateKey, strict_loads
from gradhealth.api.deps import CallerDep, SettingsDep
from gradhealth.api.problems import ApiError, echo_id
from gradhealth.api.routers.jobs import job_response, to_read
from gradhealth.api.schemas import (
    QUEUE_FULL,
    RATE_LIMITED,
    FileName,
    JobRead,
    LogFormatHint,
    Problem,
)
from gradhealth.api.security import Caller, client_address, rate_key
from gradhealth.core.losses import LOSSES, loss_problem
from gradhealth.core.words import shorten
from gradhealth.db.models import JobRow
from gradhealth.errors import GradHealthError, InputFormatError, cuda_unavailable, not_utf8_at
from gradhealth.jobs import store
from gradhealth.jobs.wakeup import Hub
from gradhealth.report.context import one_line
from gradhealth.settings import Settings

router = APIRouter(prefix="/v1/checks", tags=["checks"], responses=RATE_LIMITED)
log = logging.getLogger("gradhealth.api")

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
SPEC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Spec"}},
        # The same Spec, written as YAML: the schema describes the data, the media type its
        # encoding, so a generator sends a YAML mapping and an empty body is invalid here too.
        "application/yaml": {"schema": {"$ref": "#/components/schemas/Spec"}},
    },
}


#: The charsets a text body may declare: UTF-8, and US-ASCII (a subset of it).
UTF8_CHARSETS = ("utf-8", "utf8", "us-ascii", "ascii")


def refuse_encoding(content_encoding: str | None) -> None:
    """A 415 for a body with a Content-Encoding other than ``identity``: nothing here decompresses
    a request body, so a compressed one would be misread (a log "in no format", a model "not
    protobuf") and a plain one labelled compressed would be read as if it were not. Every route
    that reads a body gets this refusal from the app's middleware (``app.refuse_encoded_bodies``)."""
    encoding = (content_encoding or "").strip()
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    if any(c != "identity" for c in codings):
        raise ApiError(415, "unsupported_content_encoding",
                       f"Content-Encoding {encoding[:60]} is not supported; send the body uncompressed",
                       parameter="header.Content-Encoding",
                       headers={"Accept-Encoding": "identity"})  # RFC 9110 15.5.16


def refuse_undecoded(content_type: str, content_encoding: str | None, what: str = "the spec") -> None:
    """A 415 for a text body the service would misread: a Content-Encoding other than ``identity``
    (:func:`refuse_encoding`) or a ``charset`` other than UTF-8 (each body is read as UTF-8, so
    UTF-16 would be "invalid JSON at line 1, column 2")."""
    refuse_encoding(content_encoding)
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').strip().lower()
        if name.strip().lower() == "charset" and charset not in UTF8_CHARSETS:
            raise ApiError(415, "unsupported_charset",
                           f"charset {charset[:60]} is not supported; send {what} as UTF-8 "
                           "(charset=utf-8, or no charset)")


#: A spec body over this many bytes is read with at most LARGE_SPECS_AT_ONCE others at once.
LARGE_SPEC_BYTES = 64 * 1024
LARGE_SPECS_AT_ONCE = 2


def _large_spec_limiter(request: Request) -> anyio.CapacityLimiter:
    """The app's limiter of large spec reads, made on first use inside its event loop."""
    limiter = getattr(request.app.state, "large_spec_limiter", None)
    if limiter is None:
        limiter = request.app.state.large_spec_limiter = anyio.CapacityLimiter(LARGE_SPECS_AT_ONCE)
    return limiter


def decode_spec(body: bytes, content_type: str, content_encoding: str | None = None) -> dict[str, Any]:
    """The spec from a JSON or YAML body (UTF-8, not compressed)."""
    media = content_type.split(";")[0].strip().lower()
    if media and media != "application/json" and media not in YAML_TYPES and not media.endswith("+json"):
        raise ApiError(415, "unsupported_media_type",
                       f"send the spec as application/json or application/yaml, not {media}")
    refuse_undecoded(content_type, content_encoding)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"the body is not UTF-8 text {not_utf8_at(exc)}") from None
    return load_spec_text(text, content_type=(media or None) if media.endswith("json") or media in YAML_TYPES
                          else None)


async def wait_for(request: Request, job_id: str, owner: str, seconds: float, row=None):  # noqa: ANN001, ANN201
    """The job once it is finished, or as it is after ``seconds`` (``row``: the job as the caller
    last read it, unfinished; None: read it first).

    Woken by the job's finish (:mod:`gradhealth.jobs.wakeup`); the job is re-read at the hub's
    fallback interval in case that notification was lost. Where nothing would announce the finish
    to this process (no hub, no workers of its own, no ``LISTEN``), it polls with a short back-off."""
    # One SELECT, outside a transaction where the app has such sessions (app.state.reads).
    factory = getattr(request.app.state, "reads", None) or request.app.state.sessions
    hub: Hub | None = getattr(request.app.state, "wakeup", None)
    deadline = time.monotonic() + seconds

    def fetch():  # noqa: ANN202
        with factory() as session:
            return store.read(session, job_id, owner)  # the result as stored text, sent on unparsed

    def pending(row) -> bool:  # noqa: ANN001
        return row is not None and row.status not in store.TERMINAL and time.monotonic() < deadline

    pause = 0.005  # polling: small checks finish in milliseconds; look often, back off to 0.2 s
    with hub.watch(job_id) if hub is not None else contextlib.nullcontext() as watch:
        if row is None or watch is None or hub is None or not hub.covered:
            row = await run_in_threadpool(fetch)
        # else: a finish since ``row`` was read has fired the watch already (the hub keeps recent ones)
        while pending(row):
            left = max(deadline - time.monotonic(), 0)
            if watch is not None and hub is not None and hub.covered:
                await watch.wait(min(hub.fallback_s, left))
            else:
                await asyncio.sleep(min(pause, left))
                pause = min(0.2, pause * 1.5)
            row = await run_in_threadpool(fetch)
    return row


async def respond(request: Request, row, owner: str, wait: float) -> Response:  # noqa: ANN001
    """202 + Location + Retry-After, or 200 once the job finished within ``wait`` seconds.

    The body is built here, not by FastAPI from a JobRead (the route still declares JobRead, so
    the OpenAPI document is unchanged): a finished job's result goes out as the text stored."""
    if wait > 0 and row.status not in store.TERMINAL:
        row = await wait_for(request, row.id, owner, wait, row) or row
    headers = {"Location": f"/v1/jobs/{row.id}"}
    finished = row.status in store.TERMINAL
    if not finished:
        headers["Retry-After"] = "1"
    code = 200 if finished else 202
    if isinstance(row, JobRow):  # as submitted: a new job, or a repeated key's job with its result
        return Response(to_read(row).model_dump_json(), status_code=code, headers=headers,
                        media_type="application/json")
    return job_response(row, row.result_text, status_code=code, headers=headers)


@router.post(
    "/architecture", status_code=202, response_model=JobRead,
    summary="Check an architecture spec",
    description="Queues the check and answers 202 with the job (Location: /v1/jobs/{id}). With ?wait=N it "
                "waits up to N seconds and answers 200 with the finished job when it is done in time.",
    openapi_extra={"requestBody": SPEC_BODY},
    responses={200: {"model": JobRead, "description": "finished within ?wait"},
               **QUEUE_FULL,
               409: {"model": Problem, "description": "Idempotency-Key reused with another body"},
               413: {"model": Problem, "description": "body too large"},
               415: {"model": Problem, "description": "not JSON or YAML, not UTF-8, or compressed"},
               422: {"model": Problem, "description": "invalid spec (with JSON pointers) or over the limits"}},
)
async def submit_architecture(
    request: Request, caller: CallerDep, settings: SettingsDep,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for the result (capped)")] = 0,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
) -> Response:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    content_encoding = request.headers.get("content-encoding")

    def validate_and_submit():  # noqa: ANN202
        raw = decode_spec(body, content_type, content_encoding)
        spec = parse_spec(raw)
        make_plan(spec, settings.limits)  # SpecError / LimitExceeded -> 422 with pointers
        # cuda on a host without a GPU: 422 now, decided without torch (nvidia-smi). A pure API node
        # (workers=0) cannot see its workers' hosts: there the worker reports the same error on the job.
        if spec.device == "cuda" and settings.workers != 0 and not devices.host_has_gpu():
            raise cuda_unavailable()
        with request.app.state.sessions() as session:  # IdempotencyConflict -> 409 by its own status
            return store.submit(session, kind="architecture", owner=caller.name, request=raw,
                                idempotency_key=idempotency_key, time_limit_s=settings.job_time_limit_s,
                                max_attempts=settings.max_attempts, max_queued=settings.max_queued_jobs,
                                client=client, max_per_client=settings.max_jobs_per_client,
                                spec_text=body.decode("utf-8"))  # decoded above: UTF-8

    client = rate_key(caller, client_address(request.scope))  # the per-client job quota's key
    # Off the event loop: reading and validating a large spec is CPU work that /livez and every
    # other request must not wait behind. One trip to the thread pool, not two: each trip is a
    # thread hand-off, which costs milliseconds on a busy host. Large specs are read a few at a
    # time: parsing holds the GIL, and 40 at once left the event loop a 41st of it (errsweep6 #4).
    if len(body) > LARGE_SPEC_BYTES:
        row, _created = await anyio.to_thread.run_sync(validate_and_submit, limiter=_large_spec_limiter(request))
    else:
        row, _created = await run_in_threadpool(validate_and_submit)
    return await respond(request, row, caller.name, min(wait, settings.wait_max_s))


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


def storage_error(exc: OSError, folder: Path) -> ApiError:
    """The problem for an upload the service could not store: 507 when the disk or the quota is
    full, 503 (retry later) when the upload folder cannot be created or written. The answer names
    the setting and the system's reason; the folder's path goes to the log, not to the caller."""
    log.error("cannot store an upload in GRADHEALTH_UPLOAD_DIR %s: %s", folder, exc)
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        full = ApiError(507, "insufficient_storage", f"the upload could not be stored: the upload folder "
                        f"(GRADHEALTH_UPLOAD_DIR) is full ({reason}); try again later")
        full.title = "Insufficient storage"
        return full
    return ApiError(503, "upload_storage_unavailable", f"the upload could not be stored: the upload folder "
                    f"(GRADHEALTH_UPLOAD_DIR) cannot be written ({reason}); the service is misconfigured, "
                    "see its /readyz", headers={"Retry-After": "60"})


def display_name(text: str) -> str:
    """The ``filename`` form field as the report names the model: on one line (a line break or
    other control character would let the name start a line of a report, where CI runners read
    commands such as ``::error::``), at most 255 characters; "" when nothing is left."""
    return " ".join(one_line(text).split())[-255:]


class _Upload:
    """Streams an upload to a file in the upload folder, hashing it on the way. Any ``OSError``
    of the folder or the disk is a 503/507 problem (:func:`storage_error`), never a 500, and
    leaves nothing behind."""

    def __init__(self, folder: Path, filename: str, *, named: bool = True) -> None:
        safe = safe_filename(filename)  # before anything is created: a refused name leaves nothing
        self.folder = folder
        #: whether the client named the file (``?filename=``, the part's file name): a raw body sent
        #: without one is stored under a name of ours, which is no name of the job (newuser18 #6)
        self.named = named
        self.job_dir = folder / uuid.uuid4().hex
        self.path = self.job_dir / safe
        self.digest = hashlib.sha256()
        self.size = 0
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.job_dir.mkdir()
            self._file = self.path.open("wb")
        except OSError as exc:
            shutil.rmtree(self.job_dir, ignore_errors=True)
            raise storage_error(exc, folder) from None

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:  # the disk filled up (ENOSPC) while the body streamed in
            self.discard()
            raise storage_error(exc, self.folder) from None

    def close(self) -> None:
        try:
            self._file.close()  # flushes: the last buffered bytes can meet a full disk here
        except OSError as exc:
            self.discard()
            raise storage_error(exc, self.folder) from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        shutil.rmtree(self.job_dir, ignore_errors=True)


async def _store(chunks: AsyncIterator[bytes], folder: Path, filename: str | None, default: str) -> _Upload:
    """``chunks`` (a request's body, or a multipart part's: :func:`_part_chunks`) copied into a new
    upload under ``folder``, as ``filename`` (or ``default`` where the client named no file: then
    ``named`` is False); removed again if the copy fails (a client gone, a disk full)."""
    upload = _Upload(folder, filename or default, named=bool(filename))
    try:
        async for chunk in chunks:
            upload.write(chunk)
    except BaseException:
        upload.discard()
        raise
    upload.close()
    return upload


async def _part_chunks(part: Any, max_bytes: int) -> AsyncIterator[bytes]:
    """A multipart file part's bytes, ``CHUNK`` at a time; a 413 past ``max_bytes``
    (GRADHEALTH_MAX_UPLOAD_BYTES counts the file, not the form around it, whose body the
    body-limit middleware allows ``app.MULTIPART_ALLOWANCE`` more: newuser11 #7)."""
    seen = 0
    while chunk := await part.read(CHUNK):
        seen += len(chunk)
        if seen > max_bytes:
            # the type of every upload over this limit, however it is caught (newuser18 #3)
            raise ApiError(413, "upload_too_large", f"the uploaded file is over the limit of {max_bytes:,} bytes "
                           "(GRADHEALTH_MAX_UPLOAD_BYTES)", parameter="file")
        yield chunk


def _unnamed(upload: _Upload) -> dict[str, bool]:
    """``{"unnamed": True}`` for the job request of an upload whose file the client did not name:
    the job's ``name`` is then null, not the name it is stored under (``upload``, ``model.onnx``:
    newuser18 #6); its reports still place findings on that stored name."""
    return {} if upload.named else {"unnamed": True}


#: The job request's entries that are where this service stored the upload, not what was asked:
#: left out of an Idempotency-Key's fingerprint (each upload is stored under a new folder).
_STORAGE_ONLY = frozenset({"path"})


def upload_fingerprint(job_request: dict[str, Any]) -> dict[str, Any]:
    """What "the same request" means for an upload's Idempotency-Key: everything the job is given
    (the content's hash, its file name, the format hint, every option) except where the upload was
    stored. The same key with another ``?filename=`` or option is a 409 as another body is: it
    returned the first job under its old name (errsweep6 #8)."""
    return {k: v for k, v in job_request.items() if k not in _STORAGE_ONLY}


async def _submit_upload(request: Request, upload: _Upload, *, kind: str,
                         job_request: dict[str, Any], owner: str,
                         settings: Settings, idempotency_key: str | None, wait: float) -> Response:
    """Queue the job for a stored upload and answer as every check does. The upload is removed when
    the job is refused, and when the same upload is already a job (the first job keeps its copy)."""
    fingerprint = upload_fingerprint(job_request)

    def submit():  # noqa: ANN202
        with request.app.state.sessions() as session:  # IdempotencyConflict -> 409 by its own status
            return store.submit(session, kind=kind, owner=owner, request=job_request,
                                idempotency_key=idempotency_key, time_limit_s=settings.job_time_limit_s,
                                max_attempts=settings.max_attempts, max_queued=settings.max_queued_jobs,
                                fingerprint=fingerprint, client=client,
                                max_per_client=settings.max_jobs_per_client)

    client = rate_key(Caller(owner), client_address(request.scope))  # the per-client job quota's key

    try:
        row, created = await run_in_threadpool(submit)
    except BaseException:
        upload.discard()
        raise
    if not created:
        upload.discard()
    return await respond(request, row, owner, min(wait, settings.wait_max_s))


#: How long one header line of a multipart part may be (python-multipart's own limit; a longer
#: one is refused by the parser, whose message would only say "Invalid multipart data").
MAX_PART_HEADER = 4096 + 128


class _CutShort(Exception):
    """The multipart body ended without its closing delimiter."""


class _CloseWatch:
    """Watches a multipart body stream in for its closing delimiter (``--BOUNDARY--``): a body cut
    short (a dropped connection, a client that stopped writing) would parse without an error, its
    last part silently dropped, where the answer should say the body is incomplete, not "no file".
    Its last chunk raises :class:`_CutShort` inside the parser, which then closes its spooled parts."""

    def __init__(self, boundary: bytes) -> None:
        self.close = b"--" + boundary + b"--"
        self.closed = not boundary  # without a boundary the form parser refuses the body itself
        self._tail = b""

    def wrap(self, receive: Any) -> Any:
        async def watched() -> Any:
            message = await receive()
            if not self.closed and message.get("type") == "http.request":
                seen = self._tail + message.get("body", b"")
                self.closed = self.close in seen
                self._tail = seen[-len(self.close):]  # a delimiter split across two chunks is found too
                if not self.closed and not message.get("more_body", False):
                    raise _CutShort
            return message

        return watched


async def _form(request: Request, *, max_files: int, max_fields: int) -> Any:
    """The multipart form, or a 400 that says what is wrong with it: no boundary in the
    Content-Type, more files or fields than the endpoint takes, a part header over the parser's
    limit, a body that ends before its closing boundary, the parser's own reason otherwise."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import parse_options_header
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    takes = "(one part named `file`" + (", options as fields)" if max_fields > 5 else ")")

    def refused(where: str, message: str) -> ApiError:
        return ApiError(400, "invalid_multipart", f"{where}: not a multipart body this endpoint takes: "
                        f"{message} {takes}")

    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary", b"")
    watch = _CloseWatch(boundary)
    # The form is parsed from a view of the same stream that watches for the closing delimiter.
    watched = Request(request.scope, receive=watch.wrap(request.receive))
    try:
        form = await watched.form(max_files=max_files, max_fields=max_fields)
    except _CutShort:
        raise refused("body", f"the body ends before its closing boundary --{boundary.decode('latin-1')[:70]}-- "
                      "(the upload was cut short?)") from None
    except (MultiPartException, HTTPException) as exc:
        # (Starlette answers a parse error inside an app as an HTTPException(400) with its message)
        message = exc.message if isinstance(exc, MultiPartException) else str(exc.detail)
        if isinstance(exc, HTTPException) and exc.status_code != 400:
            raise
        # The parser's own reason, under Starlette's "Invalid multipart data." (a cause or context)
        reason: BaseException | None = exc
        for _ in range(8):  # a short chain; bounded all the same
            if reason is None or isinstance(reason, FormParserError):
                break
            reason = reason.__cause__ or reason.__context__
        reason = reason if isinstance(reason, FormParserError) else None
        cause = str(reason or "")
        if "header size" in cause.lower():
            message = (f"a part's header line is over {MAX_PART_HEADER:,} bytes (a file name that long? "
                       "send a short one)")
        elif cause:
            message = f"{message.rstrip('.')} ({shorten(cause, 200)})."
        where = "header.Content-Type" if "boundary" in message.lower() and not cause else "body"
        raise refused(where, message) from None
    return form


def unknown_hint(hint: str, known: dict[str, str]) -> str:
    """The refusal of an unknown ``?format=`` hint: the readers' names, and where the hint is a kind
    of file rather than a reader (``csv``, ``json``), the readers whose descriptions name it, and
    that the hint can be left out (newuser15 #10: ``?format=csv`` listed names only)."""
    word = re.compile(rf"(?<![\w]){re.escape(hint.strip().lower())}(?![\w])") if hint.strip() else None
    readers = [name for name, text in known.items() if word is not None and word.search(text.lower())]
    which = f"; {hint.strip()[:40]} files are read by {', '.join(readers)}" if readers else ""
    return (f"unknown format {hint[:60]!r}; use one of: {', '.join(known)}{which}; or leave ?format= out: "
            "the format is found by the file's content")


#: The Content-Transfer-Encoding values that mean "the bytes as they are" (RFC 2045 6.1); any
#: other (base64, quoted-printable) would be stored and read still encoded.
IDENTITY_TRANSFER_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


def refuse_other_multipart(content_type: str) -> None:
    """A 415 for a ``multipart/*`` body that is not ``multipart/form-data`` (``multipart/mixed``,
    ``multipart/related``): it is not a form, and read as a raw body its boundary lines would be
    taken for the log (errsweep9 #8)."""
    media = content_type.split(";")[0].strip().lower()
    if media.startswith("multipart/") and media != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       f"{media[:60]} is not taken; send the file as multipart/form-data (part `file`) "
                       "or as a raw body", parameter="header.Content-Type")


def refuse_transfer_encoded_part(part: Any) -> None:
    """A 400 for a form part sent with a ``Content-Transfer-Encoding`` other than 7bit, 8bit or
    binary: RFC 7578 4.7 deprecates it in forms and nothing here decodes it, so a base64 part would
    be read as the file's bytes (errsweep9 #8)."""
    headers = getattr(part, "headers", None) or {}
    encoding = str(headers.get("content-transfer-encoding", "") or "").strip()
    if encoding and encoding.lower() not in IDENTITY_TRANSFER_ENCODINGS:
        raise ApiError(400, "invalid_multipart",
                       f"part `file` has Content-Transfer-Encoding: {encoding[:60]}, which is not decoded here; "
                       "send the file's bytes as they are (no Content-Transfer-Encoding, or binary)",
                       parameter="file")


def is_form(content_type: str) -> bool:
    """Whether the body is a form: media types are case-insensitive (RFC 9110 8.3.1), so
    ``Multipart/Form-Data`` is one too, not a raw body whose boundary lines would be read as the file."""
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


def _file_part(form: Any, what: str) -> Any:
    """The form's part ``file`` as an upload, or a 422 that says why there is none: absent, or
    sent without a ``filename=`` (a part without one is a text field, RFC 7578 4.2); a 400 for a
    part whose Content-Transfer-Encoding would leave its bytes encoded."""
    part = form.get("file")
    if part is None:
        present = shorten(", ".join(sorted({str(k)[:40] for k in form})), 200)
        raise ApiError(422, "missing_file", f"send {what} as a multipart part named `file`"
                       + (f" (the body has: {present})" if present else " (the body has no parts)"),
                       parameter="file")
    if isinstance(part, str):
        raise ApiError(422, "missing_file", "part `file` has no filename=, so it was read as a text field, "
                       "not a file (a filename*= alone is not read); add filename=\"NAME\" to its "
                       "Content-Disposition", parameter="file")
    refuse_transfer_encoded_part(part)
    return part


def _refuse_unknown_fields(form: Any, allowed: tuple[str, ...]) -> None:
    """422 ``invalid_option`` naming the form's fields the endpoint does not take."""
    unknown = sorted({k for k in form if k != "file" and k not in allowed})
    if unknown:
        takes = f"use {', '.join(allowed)}" if allowed else "this endpoint takes only the part `file`"
        raise ApiError(422, "invalid_option", f"unknown fields: {shorten(', '.join(unknown), 200)}; {takes}",
                       each=[(echo_id(name[:40]), unknown_field_words(field_hint(name, allowed), ("file", *allowed), 12))
                             for name in unknown[:20]])


async def _receive_upload(request: Request, folder: Path, filename: str | None, max_bytes: int) -> _Upload:
    content_type = request.headers.get("content-type", "")
    if filename is not None:
        safe_filename(filename)  # a bad ?filename= is refused before the body is read
    refuse_other_multipart(content_type)
    if is_form(content_type):
        # Starlette spools parts to disk past 1 MiB; the body-limit middleware caps the total (the
        # file's limit plus the form's framing), _part_chunks the file
        form = await _form(request, max_files=1, max_fields=5)
        try:
            part = _file_part(form, "the log")
            _refuse_unknown_fields(form, ())  # the OpenAPI says additionalProperties: false
            name = filename if filename is not None else part.filename
            return await _store(_part_chunks(part, max_bytes), folder, name, "upload")
        finally:
            await form.close()  # the spooled parts are closed whatever happened
    return await _store(request.stream(), folder, filename, "upload")


@router.post(
    "/logs", status_code=202, response_model=JobRead, summary="Check uploaded training logs",
    description="A multipart upload (part `file`) or a raw body, optionally with ?format= (see /v1/catalog for "
                "the formats) and ?filename=. Archives of a run folder (zip, tar, tar.gz, tar.bz2, "
                "tar.xz; found by content) are accepted. Streams to disk within "
                "GRADHEALTH_MAX_UPLOAD_BYTES. Answers like the architecture check (202, ?wait).",
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"],
            "additionalProperties": False}},  # other parts are refused (422), so say so
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    responses={200: {"model": JobRead, "description": "finished within ?wait"},
               **QUEUE_FULL,
               409: {"model": Problem, "description": "Idempotency-Key reused with another body, file name or option"},
               413: {"model": Problem, "description": "upload too large"},
               415: {"model": Problem, "description": "not a log format this service reads, or the wrong hint"},
               422: {"model": Problem, "description": "an empty or unreadable upload"}},
)
async def submit_logs(
    request: Request, caller: CallerDep, settings: SettingsDep,
    format: Annotated[LogFormatHint | None,
                      Query(description="format hint: a reader's name (see /v1/catalog)")] = None,
    filename: Annotated[FileName | None, Query(max_length=255, description="the original file name")] = None,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for the result (capped)")] = 0,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
) -> Response:
    from gradhealth.logs.load import detect
    from gradhealth.logs.readers.registry import formats

    if format is not None and format not in formats():
        raise ApiError(422, "unknown_format_hint", unknown_hint(format, formats()), parameter="query.format")
    upload = await _receive_upload(request, Path(settings.upload_dir), filename, settings.max_upload_bytes)
    try:
        if upload.size == 0:
            raise ApiError(422, "empty_upload", "the upload is empty")
        # The loader's own detection (archives, byte-order marks, semicolon tables): an archive is
        # checked as the job extracts it; any other file the job could not read gets its 415 now.
        await run_in_threadpool(detect, upload.path, format)
    except BaseException:
        upload.discard()
        raise
    job_request = {"path": str(upload.path.resolve()), "format": format, "filename": upload.path.name,
                   "sha256": upload.digest.hexdigest(), "bytes": upload.size, **_unnamed(upload)}

    return await _submit_upload(request, upload, kind="logs", job_request=job_request,
                                owner=caller.name, settings=settings, idempotency_key=idempotency_key,
                                wait=wait)


# --- model (ONNX) ----------------------------------------------------------------------------------

ONNX_TYPES = ("application/onnx", "application/octet-stream")
MODEL_FIELDS = ("loss", "weights", "batch_size", "seeds", "verify", "input_shapes", "input_shape", "optimizer",
                "target_range", "loss_at", "input_range", "filename")


#: ``input_shapes`` is a few names and sizes: a longer text is no such thing (and a deeply nested
#: one would exhaust the JSON decoder's recursion)
_MAX_SHAPES_TEXT = 4096


def _refuse_text_spec(data: bytes) -> None:
    """A spec (YAML or JSON text: a mapping) sent to the model route: say what it is and where it
    goes (newuser13 #3: a YAML spec got protobuf's "Wire format was corrupt" and no hint)."""
    from gradhealth.analysis.spec import reads_as_yaml

    if data[:1] == b"\x08":
        return  # an ONNX protobuf's first field tag as onnx writes it (ir_version): no text
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return
    if reads_as_yaml(text):
        raise InputFormatError("not an ONNX model (nor a Keras file): the upload is text (a YAML or JSON mapping); an "
                               "architecture spec goes to POST /v1/checks/architecture (gradhealth check SPEC)")
    _refuse_other_json(data, text)


def _refuse_other_json(data: bytes, text: str) -> None:
    """JSON that is not a mapping (``null``, ``42``, ``[]``, a string, deeply nested arrays) sent to
    the model route: say it is JSON and what a Keras config is, not "not an ONNX protobuf" (errsweep8
    #4). Its nesting is counted before it is parsed (Python's decoder recurses per level)."""
    from gradhealth.analysis.importers.keras import MAX_CONFIG_DEPTH
    from gradhealth.core.strict_json import json_depth

    start = text.lstrip()[:1]
    if not start or start not in '[{"-0123456789tfn':
        return
    expected = ("a Keras model config is a JSON object with `class_name` and `config.layers`, as "
                "model.to_json() writes it; an ONNX model is a binary protobuf")
    depth = json_depth(data)
    if depth > MAX_CONFIG_DEPTH:
        raise InputFormatError(f"not an ONNX model (nor a Keras file): the upload is text that reads as JSON nested "
                               f"{depth:,} levels deep, more than the {MAX_CONFIG_DEPTH} levels a Keras model config "
                               f"is read to; {expected}")
    try:
        value = json.loads(text)
    except ValueError:
        return  # not JSON: the protobuf reader's words
    kind = ("null" if value is None else "a list" if isinstance(value, list) else "a string" if isinstance(value, str)
            else "true or false" if isinstance(value, bool) else "a number" if isinstance(value, int | float)
            else "an object")
    raise InputFormatError(f"not an ONNX model (nor a Keras file): the upload is JSON text ({kind}) but not a "
                           f"Keras model config; {expected}")


def model_options(fields: dict[str, list[str]], limits: Any) -> dict[str, Any]:
    """The model check's options from form fields or query parameters (each name once, except the
    repeatable ``input_shape``), checked: 422 ``invalid_option`` naming the field otherwise. Any
    ``ValueError`` from reading an option is that option's fault, never a 500 (errsweep6 H1: an
    ``int()`` of '²' dropped the connection): 422 ``invalid_option`` too."""
    try:
        return _model_options(fields, limits)
    except ValueError as exc:
        raise ApiError(422, "invalid_option", f"an option could not be read: {shorten(str(exc), 200)}",
                       parameter=getattr(exc, "parameter", None)) from None


def _model_options(fields: dict[str, list[str]], limits: Any) -> dict[str, Any]:
    from gradhealth.analysis.importers.onnx_static import input_shapes_from, parse_input_shape

    def bad(name: str, detail: str) -> ApiError:
        return ApiError(422, "invalid_option", f"{name}: {detail}", parameter=name, item=detail)

    def one(name: str) -> str | None:
        values = fields.get(name) or []
        if len(values) > 1:
            raise bad(name, "given more than once")
        return values[0] if values else None

    def integer(name: str, high: int) -> int | None:
        text = one(name)
        if text is None:
            return None
        digits = text.strip()
        # ASCII digits, and few of them, before int(): isdigit() takes '²', int() refuses it
        if (not (digits.isascii() and digits.isdigit()) or len(digits.lstrip("0")) > len(str(high))
                or not 1 <= int(digits) <= high):
            raise bad(name, f"expected an integer from 1 to {high}, not {text[:40]!r}")
        return int(digits)

    # None: the file's compiled loss (Keras), or the one its output implies (ONNX)
    loss = one("loss")
    if loss is not None and (problem := loss_problem(loss)) is not None:
        raise bad("loss", problem)
    weights = one("weights")  # None: the file's weights where it has them (as_given for ONNX)
    if weights is not None and weights not in ("as_given", "reinitialise"):
        raise bad("weights", f"use as_given or reinitialise, not {weights[:40]!r}")
    optimizer = None
    text = one("optimizer")
    if text is not None:
        from gradhealth.analysis.spec import parse_optimizer

        try:
            if len(text) <= 1000:  # parse_optimizer refuses a longer one; json would keep a repeated key's last value
                with contextlib.suppress(json.JSONDecodeError):
                    strict_loads(text)
            optimizer = parse_optimizer(text)
        except DuplicateKey as repeat:
            raise bad("optimizer", str(repeat)) from None
        except RecursionError:
            raise bad("optimizer", 'nested too deeply; expected JSON like {"type": "adam", "lr": 0.001}') from None
        except GradHealthError as exc:
            raise bad("optimizer", exc.detail) from None
    verify_text = one("verify")
    if verify_text is not None and verify_text.lower() not in ("true", "false", "1", "0"):
        raise bad("verify", f"use true or false, not {verify_text[:40]!r}")
    shapes: dict[str, list[int]] = {}
    text = one("input_shapes")
    field = "input_shapes"  # the one whose refusal names it (input_shape from the loop on)
    try:
        if text is not None:
            if len(text) > _MAX_SHAPES_TEXT:
                raise bad("input_shapes", f"{len(text):,} characters; at most {_MAX_SHAPES_TEXT:,} "
                          '(a few names and sizes: {"x": [8, 3, 32, 32]})')
            try:
                shapes.update(input_shapes_from(strict_loads(text)))
            except DuplicateKey as repeat:
                raise bad("input_shapes", str(repeat)) from None
            except (ValueError, RecursionError):
                raise bad("input_shapes", 'not JSON; expected e.g. {"x": [8, 3, 32, 32]}') from None
        field = "input_shape"
        for item in fields.get("input_shape") or []:
            name, dims = parse_input_shape(item)
            if name in shapes:
                raise bad("input_shape", f"{name[:60]!r} is given twice")
            shapes[name] = dims
    except GradHealthError as exc:
        if isinstance(exc, ApiError):
            raise
        raise ApiError(422, "invalid_option", exc.detail, parameter=field) from None
    options: dict[str, Any] = {"loss": loss, "weights": weights, "batch_size": integer("batch_size", 1 << 16),
               "seeds": integer("seeds", limits.max_seeds),
               "verify": None if verify_text is None else verify_text.lower() in ("true", "1"),
               "input_shapes": shapes or None, "optimizer": optimizer}
    text = one("target_range")
    if text is not None:  # (only where given: a request without it keeps its fingerprint)
        from gradhealth.analysis.importers.keras import parse_target_range

        try:
            options["target_range"] = list(parse_target_range(text, "target_range"))
        except GradHealthError as exc:
            raise ApiError(422, "invalid_option", exc.detail, parameter="target_range") from None
    text = one("loss_at")
    if text is not None:  # (only where given, as target_range)
        if not text or len(text) > 1000:
            raise bad("loss_at", "a tensor name of 1 to 1000 characters")
        options["loss_at"] = text
    text = one("input_range")
    if text is not None:
        from gradhealth.analysis.importers.onnx_static import parse_input_range

        try:
            options["input_range"] = list(parse_input_range(text, "input_range"))
        except GradHealthError as exc:
            raise ApiError(422, "invalid_option", exc.detail, parameter="input_range") from None
    return options


async def _receive_model(request: Request, folder: Path, filename: str | None,
                         max_bytes: int) -> tuple[_Upload, dict[str, list[str]]]:
    """The uploaded model on disk and the form's option fields (none for a raw body)."""
    content_type = request.headers.get("content-type", "")
    if filename is not None:
        safe_filename(filename)  # a bad ?filename= is refused before the body is read
    if is_form(content_type):
        form = await _form(request, max_files=1, max_fields=64)
        try:
            part = _file_part(form, "the .onnx file")
            _refuse_unknown_fields(form, MODEL_FIELDS)
            fields = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in MODEL_FIELDS if k in form}
            return await _store(_part_chunks(part, max_bytes), folder, filename or part.filename,
                                "model.onnx"), fields
        finally:
            await form.close()
    media = content_type.split(";")[0].strip().lower()
    if media not in ONNX_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       f"send the model as application/onnx or multipart/form-data, not {media or 'no type'}")
    return await _store(request.stream(), folder, filename, "model.onnx"), {}


@router.post(
    "/model", status_code=202, response_model=JobRead, summary="Check an ONNX or Keras model file",
    description="The .onnx file as a multipart part `file` (options as form fields) or as an "
                f"`application/onnx` body (options as query parameters): `loss` ({', '.join(LOSSES)}), "
                "`weights` (as_given: the file's; reinitialise: PyTorch's default per layer), "
                "`batch_size`, `seeds`, `verify`, and sizes for dynamic dimensions as `input_shapes` "
                '(JSON, e.g. {"x": [8, 3, 32, 32]}) or repeated `input_shape=x=8x3x32x32`. '
                "Not ONNX, external data, unsupported ops (each named with its node), missing sizes "
                "and graphs over the limits are refused here, before a job exists; nothing in the "
                "file is executed. Streams to disk within GRADHEALTH_MAX_UPLOAD_BYTES. Answers like "
                "the architecture check (202, ?wait).",
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "loss": {"type": "string", "enum": list(LOSSES)},
            "weights": {"type": "string", "enum": ["as_given", "reinitialise"]},
            "batch_size": {"type": "integer", "minimum": 1}, "seeds": {"type": "integer", "minimum": 1},
            "verify": {"type": "boolean"},
            "input_shapes": {"type": "string", "description": "JSON object: input name -> sizes"},
            "input_shape": {"type": "array", "items": {"type": "string", "pattern": "^.+=[0-9x,]+$"}},
            "optimizer": {"type": "string", "description": 'JSON: the training optimizer, e.g. '
                                                            '{"type": "adam", "lr": 0.001}'},
            "target_range": {"type": "string", "pattern": "^[^,]+,[^,]+$",
                             "description": "LO,HI: where a Keras model's regression targets lie (0,1 for "
                                            "0/1 labels): the spec's loss.target_range"},
            "loss_at": {"type": "string", "description": "an ONNX graph's tensor the loss is taken at (a graph "
                                                        "output or an internal value)"},
            "input_range": {"type": "string", "pattern": "^[^,]+,[^,]+$",
                            "description": "LO,HI: an ONNX or Keras model's float inputs drawn uniform in it "
                                           "(0,1 for pixels) instead of standard normal"}}}},
        "application/onnx": {"schema": {"type": "string", "format": "binary"}}}}},
    responses={200: {"model": JobRead, "description": "finished within ?wait"},
               **QUEUE_FULL,
               400: {"model": Problem, "description": "not an ONNX model"},
               409: {"model": Problem, "description": "Idempotency-Key reused with another body, file name or option"},
               413: {"model": Problem, "description": "upload too large"},
               415: {"model": Problem, "description": "neither multipart nor application/onnx"},
               422: {"model": Problem, "description": "an option, op, external tensor, missing size "
                                                      "or limit that cannot be checked"}},
)
async def submit_model(
    request: Request, caller: CallerDep, settings: SettingsDep,
    loss: Annotated[str | None, Query(description=f"one of {', '.join(LOSSES)}; default: the file's "
                                                 "compiled loss (Keras), else the one its output implies")] = None,
    weights: Annotated[str | None, Query(description="as_given (default) or reinitialise")] = None,
    batch_size: Annotated[str | None, Query(description="fills a dynamic first dimension")] = None,
    seeds: Annotated[str | None, Query(description="independent initialisations / input draws")] = None,
    verify: Annotated[str | None, Query(description="re-simulate remedies (default: the service's)")] = None,
    input_shapes: Annotated[str | None, Query(description='JSON: {"x": [8, 3, 32, 32]}')] = None,
    input_shape: Annotated[list[str] | None, Query(description="NAME=8x3x32x32, repeatable")] = None,
    optimizer: Annotated[str | None, Query(
        max_length=1000, description='JSON: the training optimizer whose first step large_updates checks, '
                                     'e.g. {"type": "adam", "lr": 0.001} (a Keras file: overrides its own)')] = None,
    target_range: Annotated[str | None, Query(
        max_length=100, description="LO,HI: where a Keras model's regression targets lie (0,1 for 0/1 labels)")] = None,
    loss_at: Annotated[str | None, Query(
        max_length=1000, description="an ONNX graph's tensor the loss is taken at (an output or an internal value)")] = None,
    input_range: Annotated[str | None, Query(
        max_length=100, description="LO,HI: an ONNX or Keras model's float inputs drawn uniform in it (0,1 for pixels)")] = None,
    filename: Annotated[FileName | None, Query(max_length=255, description="the original file name")] = None,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for the result (capped)")] = 0,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)] = None,
) -> Response:
    from gradhealth.analysis.importers.keras import (
        read_keras_training,
        read_keras_weights,
        sniff_keras,
        translate_or_graph,
        translation_reads_weights,
        vet_keras_archive,
        with_input_shapes,
        with_target_range,
    )
    from gradhealth.analysis.importers.onnx_static import check_has_weights, read_header
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec

    query = {"loss": loss, "weights": weights, "batch_size": batch_size, "seeds": seeds, "verify": verify,
             "input_shapes": input_shapes, "optimizer": optimizer, "target_range": target_range,
             "loss_at": loss_at, "input_range": input_range}
    fields: dict[str, list[str]] = {k: [v] for k, v in query.items() if v is not None}
    if input_shape:
        fields["input_shape"] = list(input_shape)
    upload, form_fields = await _receive_model(request, Path(settings.upload_dir), filename,
                                               settings.max_upload_bytes)
    try:
        twice = sorted(set(form_fields) & set(fields) - {"filename"})
        if twice:
            raise ApiError(422, "invalid_option", f"given both as a query parameter and a form field: "
                           f"{', '.join(twice)}", parameter=twice[0])
        fields.update(form_fields)
        options = model_options(fields, settings.limits)
        # the name the client gave the file (a `filename` field, ?filename=, the part's file name), in
        # which a refusal words its fix; the stored default `model.onnx` is no name of the user's
        # (newuser19 #2: the refusal of mlp_default.onnx said onnx.load('model.onnx'))
        field_name = form_fields.get("filename") or []
        user_name = (display_name(field_name[0]) if field_name else "") or (upload.path.name if upload.named else None)
        if upload.size == 0:
            raise ApiError(422, "empty_upload", "the upload is empty")

        def validate() -> str:
            data = upload.path.read_bytes()
            kind = sniff_keras(data[:4096])
            if kind is not None:  # a Keras config, .keras zip or .h5, by content
                # a .keras zip's entries by their sizes and ratio, and its weights' file references
                vet_keras_archive(data)
                training = read_keras_training(data)
                file_loss, compiled = training.loss, training.optimizer
                config = with_input_shapes(training.config, options["input_shapes"])
                # The stored weights only where the translation reads them (a PReLU's alpha), as the
                # job will: a trained per-unit alpha is refused here, a uniform one accepted.
                stored = (read_keras_weights(data, config)
                          if options["weights"] != "reinitialise" and translation_reads_weights(config)
                          else None)
                # torch-free: refused before a job exists (a spec's plan, or the graph's shapes)
                given = options.get("target_range")
                spec, _, _ = translate_or_graph(
                    config, with_target_range(options["loss"] or file_loss, tuple(given) if given else None),
                    seeds=options["seeds"] or 3,
                    batch_size=options["batch_size"] or 64, stored=stored,
                    optimizer=options["optimizer"] or compiled, limits=settings.limits,
                    # the initialisers are drawn from for reinitialise, or a config without weights;
                    # a weights file that turns out empty is refused by the job as the CLI does
                    draws=options["weights"] == "reinitialise" or kind == "json")
                if spec is not None:
                    make_plan(parse_spec(spec), settings.limits)
                if options.get("loss_at") is not None:  # refused, never dropped (the CLI's words)
                    raise ApiError(422, "invalid_option", "loss_at applies to ONNX files; a Keras file's loss "
                                   "is taken at its output layer: leave it out", parameter="loss_at")
                return "keras"
            if options.get("target_range") is not None:  # refused, never dropped (the CLI's words)
                raise ApiError(422, "invalid_option", "target_range applies to Keras files, whose single "
                               "bounded output under mse, mae or huber is judged against the targets' range; "
                               "an .onnx file's is not: leave it out", parameter="target_range")
            _refuse_text_spec(data)
            # Protobuf only, torch-free: the worker's importer applies these same rules again.
            header = read_header(data, input_shapes=options["input_shapes"],
                                 batch_size=options["batch_size"], limits=settings.limits,
                                 max_bytes=settings.max_upload_bytes, output=options.get("loss_at"),
                                 file_name=user_name,
                                 weights=options.get("weights"))
            # a graph with no weight has no gradient to check (errsweep6: an If on a constant folded
            # to Relu(x) failed in the job with torch's "does not require grad")
            check_has_weights(header.model.graph, header.folded_ifs)
            return "onnx"

        try:
            model_format = await run_in_threadpool(validate)
        except GradHealthError as exc:
            if isinstance(exc, ApiError) or exc.parameter is None:
                raise
            # an option the file contradicts (a loss_at it has no tensor for, input shapes for an
            # input it lacks): that option's 422, named as the other options' are (newuser15 #10)
            named = exc.parameter
            if named == "input_shapes" and "input_shapes" not in fields and "input_shape" in fields:
                named = "input_shape"  # (the repeatable form was the one given)
            raise ApiError(422, "invalid_option", exc.detail, parameter=named) from None
    except BaseException:
        upload.discard()
        raise
    given: list[str] = form_fields.get("filename") or []
    name = (display_name(given[0]) if given else "") or upload.path.name
    job_request = {"path": str(upload.path.resolve()), "filename": name,
                   "sha256": upload.digest.hexdigest(), "bytes": upload.size, **options,
                   **({} if given else _unnamed(upload))}
    if model_format == "keras":
        job_request["format"] = "keras"

    return await _submit_upload(request, upload, kind="model", job_request=job_request,
                                owner=caller.name, settings=settings, idempotency_key=idempotency_key,
                                wait=wait)
