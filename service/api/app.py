"""The FastAPI application: routers, problem+json errors, body limit, metrics, and the embedded
worker processes started with the app (SQLite and one local worker by default).

Run with ``gradhealth serve`` or ``uvicorn --factory gradhealth.api.app:create_app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gradhealth import __version__
from gradhealth.analysis.spec import Spec
from gradhealth.api import links, problems
from gradhealth.api.metrics import Metrics, route_label
from gradhealth.api.problems import ApiError
from gradhealth.api.routers import (
    accept_guard,
    catalog,
    checks,
    header_guard,
    health,
    jobs,
    query_guard,
    reports,
)
from gradhealth.api.routers import links as link_routes
from gradhealth.api.routers import runs as run_routes
from gradhealth.api.routers import webhooks as webhook_routes
from gradhealth.api.security import RateLimiter, exposure_guard
from gradhealth.core.numbers import plain
from gradhealth.db.engine import make_engine, make_sessionmaker, migrate
from gradhealth.errors import problem_type
from gradhealth.jobs.retention import UploadSweeper
from gradhealth.jobs.supervisor import Supervisor
from gradhealth.jobs.wakeup import Hub
from gradhealth.settings import Settings, get_settings
from gradhealth.ui import router as ui_router

log = logging.getLogger("gradhealth.api")


class _TooLarge(Exception):
    pass


class StartupError(Exception):
    """The service cannot start as configured (its message says which setting and why)."""


def check_startup(settings: Settings) -> None:
    """Refuse to start where every upload would fail: the upload folder (GRADHEALTH_UPLOAD_DIR) is
    created and a file written in it and removed. Raises :class:`StartupError` naming the folder;
    run at the app's start-up (``gradhealth serve`` may call it first, to exit 2 before binding)."""
    problem = health.upload_dir_problem(Path(settings.upload_dir))
    if problem is not None:
        raise StartupError(f"GRADHEALTH_UPLOAD_DIR {settings.upload_dir} cannot be created or written: "
                           f"{problem}; set it to a folder this process can write (shared with the workers)")


#: Methods whose requests carry no body the service reads (a Content-Encoding on them is moot).
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def refuse_transfer_coding(transfer_encoding: str | None) -> None:
    """A 501 for a Transfer-Encoding holding a coding other than ``chunked`` (RFC 9112 6.1: a
    server that does not understand a transfer coding SHOULD answer 501). The HTTP parser undoes
    ``chunked`` only, so ``gzip, chunked`` would reach the readers still compressed, past the
    Content-Encoding refusal (errsweep9 #9); h11 refuses it itself, httptools does not."""
    codings = [c.strip().lower() for c in (transfer_encoding or "").split(",") if c.strip()]
    other = [c for c in codings if c != "chunked"]
    if other:
        raise ApiError(501, "unsupported_transfer_coding",
                       f"Transfer-Encoding {', '.join(other)[:60]} is not implemented; only chunked is: "
                       "send the body uncompressed, chunked or with a Content-Length",
                       parameter="header.Transfer-Encoding")


def refuse_encoded_bodies(app: ASGIApp) -> ASGIApp:
    """415 for a request body with a Content-Encoding other than ``identity``, on every route that
    reads one: nothing here decompresses a body, and no route can forget the check (the spec,
    points, log and model doors all answer alike, ``checks.refuse_encoding``)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            values = [v.decode("latin-1") for k, v in headers if k == b"content-encoding"]
            transfer = [v.decode("latin-1") for k, v in headers if k == b"transfer-encoding"]
            try:
                refuse_transfer_coding(", ".join(transfer) if transfer else None)
                if scope["method"] not in _BODILESS:
                    checks.refuse_encoding(", ".join(values) if values else None)
            except ApiError as exc:
                response = problems.problem_response(
                    exc.status, exc.title, exc.detail, type_=exc.type_uri, instance=scope.get("path"),
                    headers=exc.headers,
                    extra={"errors": [{"pointer": None, "parameter": exc.parameter, "detail": exc.detail}]})
                await response(scope, _empty_receive, send)
                return
        await app(scope, receive, send)

    return guarded


def body_limit(app: ASGIApp, limit_for: Any) -> ASGIApp:
    """413 for a body over ``limit_for(path, content_type)`` bytes (with the 413's :class:`Over`):
    by Content-Length up front, or while it streams in."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit, over = limit_for(scope.get("path", ""), headers.get(b"content-type", b"").decode("latin-1"))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(scope, send, over)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _reject(scope, send, over)

    return guarded


@dataclass(frozen=True)
class Over:
    """What a 413 says: its problem type's code, its detail, and the place over the limit (its
    ``errors[].parameter``: ``file`` for a form's file part, ``body`` for a raw body)."""

    code: str
    detail: str
    parameter: str


#: The one problem type of an upload over GRADHEALTH_MAX_UPLOAD_BYTES, however it is sent and
#: wherever it is caught (here by its size, in the file part as it is stored, in the log reader):
#: newuser18 #3 got ``http-413`` or ``content-too-large`` by the file's size.
UPLOAD_TOO_LARGE = "upload_too_large"


async def _reject(scope: Scope, send: Send, over: Over) -> None:
    response = problems.problem_response(
        413, "Content too large", over.detail, instance=scope.get("path"),
        type_=problem_type(over.code.replace("_", "-")) if over.code else None,
        extra={"errors": [{"pointer": None, "parameter": over.parameter, "detail": over.detail}]})
    await response(scope, _empty_receive, send)


#: What a multipart upload's body may hold beyond its file's ``GRADHEALTH_MAX_UPLOAD_BYTES``: the
#: boundaries, the part headers (at most ``checks.MAX_PART_HEADER`` a line) and the form's option
#: fields (newuser11 #7: a 1,048,400-byte file under a 1,048,576-byte limit was refused as a form
#: and taken as a raw body). The file part itself is held to the limit as it is stored.
MULTIPART_ALLOWANCE = 64 * 1024


def limits(settings: Settings) -> Any:
    """``(path, content_type) -> (limit, the 413's words)`` for :func:`body_limit`: an upload door's
    raw body is the file (GRADHEALTH_MAX_UPLOAD_BYTES), its multipart body the file plus
    :data:`MULTIPART_ALLOWANCE`; any other body GRADHEALTH_MAX_BODY_BYTES."""
    upload = settings.max_upload_bytes

    def limit_for(path: str, content_type: str) -> tuple[int, Over]:
        if path not in UPLOAD_PATHS:
            return settings.max_body_bytes, Over("", f"the request body is over the limit of "
                                                 f"{settings.max_body_bytes:,} bytes (GRADHEALTH_MAX_BODY_BYTES)", "body")
        if content_type.lower().startswith("multipart/form-data"):
            return upload + MULTIPART_ALLOWANCE, Over(UPLOAD_TOO_LARGE, (
                f"the multipart body is over the limit of {upload + MULTIPART_ALLOWANCE:,} bytes: the file's "
                f"{upload:,} (GRADHEALTH_MAX_UPLOAD_BYTES) and {MULTIPART_ALLOWANCE:,} for the form's framing and "
                "fields"), "file")
        return upload, Over(UPLOAD_TOO_LARGE, f"the uploaded file is over the limit of {upload:,} bytes "
                            "(GRADHEALTH_MAX_UPLOAD_BYTES)", "body")

    return limit_for


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


#: The doors whose bodies are streamed to an upload file (GRADHEALTH_MAX_UPLOAD_BYTES applies).
UPLOAD_PATHS = frozenset({"/v1/checks/logs", "/v1/checks/model"})


def body_deadline(app: ASGIApp, timeout_s: float, min_rate: int) -> ASGIApp:
    """408 for a request body that arrives too slowly: all of it must be in ``timeout_s`` seconds
    after the request began, plus one second per ``min_rate`` bytes received (a large upload at a
    fair rate has the time it needs; one trickling a byte every few seconds does not). The route
    reading it is cancelled (an upload's file is removed) and the connection closed. Any answer
    sent before the body is read whole closes the connection too: the rest is never read."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start = anyio.current_time()
        received = 0
        started = False
        headers = dict(scope.get("headers") or [])
        # A request declares its body (RFC 9112 6.3): without one there is nothing to time or close on
        complete = b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") in (b"0", b"")

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                given = list(message.get("headers", []))
                if not complete and not any(k.lower() == b"connection" for k, _ in given):
                    message = {**message, "headers": [*given, (b"connection", b"close")]}
            await send(message)

        with anyio.CancelScope() as request_scope:

            async def timed_receive() -> Message:
                nonlocal received, complete
                if complete:  # the body is in: what follows is waiting for a disconnect, not a body
                    return await receive()
                deadline = start + timeout_s + received / min_rate
                try:
                    with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                        message = await receive()
                except TimeoutError:
                    if not started:
                        await _too_slow(scope, closing_send, timeout_s, min_rate, received)
                    request_scope.cancel()  # the route stops reading; its cleanup runs
                    await anyio.lowlevel.checkpoint()
                    raise  # not reached: the checkpoint raises the cancellation
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    complete = not message.get("more_body", False)
                else:  # http.disconnect
                    complete = True
                return message

            await app(scope, timed_receive, closing_send)

    return guarded


async def _too_slow(scope: Scope, send: Send, timeout_s: float, min_rate: int, received: int) -> None:
    response = problems.problem_response(
        408, "Request timeout",
        f"the request body arrived too slowly ({received:,} bytes by the deadline): it must arrive within "
        f"{plain(timeout_s)} s (GRADHEALTH_BODY_TIMEOUT_S) plus 1 s per {min_rate:,} bytes (GRADHEALTH_BODY_MIN_RATE)",
        instance=scope.get("path"), headers={"Connection": "close"})
    await response(scope, _empty_receive, send)


def upload_cap(app: ASGIApp, limit: int, paths: frozenset[str] = UPLOAD_PATHS) -> ASGIApp:
    """503 with ``Retry-After`` for an upload (a POST to ``paths``) while ``limit`` others are still
    arriving: each holds an upload file open until its body is in. A slot is freed when the body
    is in (a ``?wait`` for the result holds none) or the request ends."""
    in_flight = 0  # one event loop: no lock needed

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal in_flight
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("path") not in paths:
            await app(scope, receive, send)
            return
        if in_flight >= limit:
            response = problems.problem_response(
                503, "Service unavailable", f"{limit} uploads are being received already "
                "(GRADHEALTH_MAX_UPLOADS_IN_FLIGHT); retry after a few seconds",
                instance=scope.get("path"), headers={"Retry-After": "5", "Connection": "close"})
            await response(scope, _empty_receive, send)
            return
        in_flight += 1
        held = True

        def release() -> None:
            nonlocal in_flight, held
            if held:
                held = False
                in_flight -= 1

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                release()
            return message

        try:
            await app(scope, counted_receive, send)
        finally:
            release()

    return guarded


def head_as_get(app: ASGIApp) -> ASGIApp:
    """HEAD answered as GET without its body (RFC 9110 9.3.2), for every GET route: FastAPI's
    routes answer only the methods they declare, so the OpenAPI document stays GET-only. Once the
    status and headers are sent the GET is cancelled, so a HEAD on an event stream ends at once."""

    async def head(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return
        with anyio.CancelScope() as answered:

            async def headers_only(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await send(message)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    answered.cancel()
                    await anyio.lowlevel.checkpoint()

            inner = {**scope, "method": "GET"}
            try:
                await app(inner, receive, headers_only)
            finally:  # what routing recorded (the route, for the metrics' label), not the method
                scope.update({k: v for k, v in inner.items() if k != "method"})

    return head


def create_app(settings: Settings | None = None, *, start_workers: bool | None = None) -> FastAPI:
    """Build the app. Workers start with it unless ``start_workers`` is False or ``settings.workers == 0``."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    run_workers = settings.workers != 0 if start_workers is None else start_workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # before anything starts: a service whose every upload would be a 500 does not start
            check_startup(settings)
        except StartupError as exc:
            log.critical("%s", exc)
            raise
        migrate(settings.database_url)
        # Wakes this process's workers when it queues a job, and ?wait callers when one finishes.
        app.state.wakeup = Hub(settings.database_url, fallback_s=settings.job_wake_fallback_s)
        app.state.wakeup.start()
        # The uploads this process writes are its to delete, with in-process workers or without
        # (an API node of a fleet, GRADHEALTH_WORKERS=0): the workers may only read them.
        app.state.upload_sweeper = UploadSweeper(sessions, settings,
                                                 on_error=app.state.metrics.upload_delete_failed)
        app.state.upload_sweeper.start()
        if run_workers:
            app.state.supervisor = Supervisor(settings.database_url, processes=settings.workers,
                                              lease_s=settings.lease_s, settings=settings,
                                              wake=app.state.wakeup)
            app.state.supervisor.start()
        if settings.webhooks_deliver:  # the outbox's deliverer; safe to run in several processes
            from gradhealth.webhooks.deliver import Deliverer

            app.state.deliverer = Deliverer(sessions, settings)
            app.state.deliverer.start()
        try:
            yield
        finally:
            if app.state.deliverer is not None:
                app.state.deliverer.stop()
            if app.state.supervisor is not None:
                app.state.supervisor.stop()
            app.state.upload_sweeper.stop()
            app.state.wakeup.stop()
            engine.dispose()

    # /docs and /redoc are built below from the package's own copies of their assets (no CDN).
    # query_guard on every route, once: a one-value query parameter given twice is a 422 everywhere,
    # an unknown one on every list route (routers.query_guard); a new route cannot forget it. A
    # one-value header the route declares, sent twice, is a 400 (routers.header_guard).
    # No redirect of a trailing slash: `DELETE /v1/jobs/` (a script's unset id) is a 404 problem
    # document naming the path, not a 307 on to another resource (newuser18 #8).
    app = FastAPI(title="Gradient Health", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  docs_url=None, redoc_url=None, dependencies=[Depends(query_guard), Depends(accept_guard),
                                                              Depends(header_guard)],
                  description="Tells whether a network's gradients are healthy, why not, and what fixes it.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    # For the ?wait re-read: a read-only SELECT needs no transaction, and on PostgreSQL one costs
    # two round trips more (BEGIN, then ROLLBACK when the session closes) than the SELECT itself.
    # The same pool; the level is set (client-side) at checkout and reset at return.
    app.state.reads = make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
    app.state.supervisor = None
    app.state.upload_sweeper = None  # a retention.UploadSweeper while the app runs
    app.state.wakeup = None  # a wakeup.Hub while the app runs (routers poll without one)
    app.state.deliverer = None
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.auth_failures = RateLimiter(settings.auth_failures_per_minute)
    app.state.metrics = Metrics(sessions)
    app.state.metrics.runs.limit = settings.run_gauge_limit
    app.state.metrics.runs.stale_after_s = settings.run_stale_after_s
    # signs report links: the setting's key on every replica, else one of this process's own
    app.state.link_secret = settings.link_secret.encode() if settings.link_secret else links.new_secret()
    problems.install(app)
    for module in (checks, jobs, reports, catalog, health, webhook_routes, run_routes, link_routes):
        app.include_router(module.router)
    app.include_router(ui_router)  # the web UI at / (gradhealth.ui)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            spec_schema = Spec.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(spec_schema.pop("$defs", {}))
            components["Spec"] = spec_schema
            # The seeds limit is a setting: show this service's, not the schema's default.
            spec_schema["properties"]["seeds"]["maximum"] = settings.limits.max_seeds
            _document_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
    _add_docs(app)
    # Inside the metrics middleware (the last added is the outermost), so that refused requests are
    # counted too, with their own status: a body over the limit is a 413 there, not the exception
    # that stopped reading it
    app.add_middleware(_Raw, wrap=head_as_get)  # innermost: metrics count a HEAD as HEAD
    # After the key check (a caller without a key gets its 401 first), before any route reads
    app.add_middleware(_Raw, wrap=refuse_encoded_bodies)
    # After the key check: a caller without a key takes no upload slot
    app.add_middleware(_Raw, wrap=lambda inner: upload_cap(inner, settings.max_uploads_in_flight))
    app.add_middleware(_Raw, wrap=lambda inner: exposure_guard(inner, settings, app.state.auth_failures))
    app.add_middleware(_Raw, wrap=lambda inner: body_limit(inner, limits(settings)))
    # Outside all that reads the body, inside the metrics (a 408 is counted as one)
    app.add_middleware(_Raw, wrap=lambda inner: body_deadline(inner, settings.body_timeout_s,
                                                              settings.body_min_rate))
    app.add_middleware(_Raw, wrap=lambda inner: app.state.metrics.middleware(inner, route_label))
    # Outermost: every response, the refusals of the middlewares above included
    app.add_middleware(_Raw, wrap=security_headers)
    return app


#: Media types a browser renders as a document of the service's origin (or may, when sniffing):
#: what a job's report is served as (?format=html, markdown), and the UI's pages and icon.
DOCUMENT_TYPES = frozenset({b"text/html", b"application/xhtml+xml", b"text/markdown", b"image/svg+xml"})


def document_policy(frame_ancestors: str = "'none'") -> str:
    """The Content-Security-Policy of a document served without one of its own (a job's report,
    which holds names from the caller's input): a sandbox (no script, no form, an opaque origin)
    where nothing loads but the report's own stylesheet (by its hash, as the UI allows it) and
    inline images, and that no other page may frame (``frame_ancestors``: the sources that may, for
    a report opened by its link)."""
    from gradhealth.ui import report_style_hash

    return "; ".join(["sandbox", "default-src 'none'", f"style-src {report_style_hash()}", "img-src data:",
                      "base-uri 'none'", "form-action 'none'", f"frame-ancestors {frame_ancestors}"])


def security_headers(app: ASGIApp) -> ASGIApp:
    """``X-Content-Type-Options: nosniff`` on every response, and on every document
    (:data:`DOCUMENT_TYPES`) a Content-Security-Policy: :func:`document_policy` where the route
    set none (the UI's pages and /docs set their own), ``frame-ancestors 'none'`` added to one that
    lacks it. One place, so that no route (a new report format, an error page) can forget them."""
    policy = document_policy().encode("ascii")

    async def secured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                names = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                media = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if media.split(b";", 1)[0].strip().lower() in DOCUMENT_TYPES:
                    if b"content-security-policy" not in names:
                        headers.append((b"content-security-policy", policy))
                    else:
                        headers = [(k, v + b"; frame-ancestors 'none'" if k.lower() == b"content-security-policy"
                                    and b"frame-ancestors" not in v else v) for k, v in headers]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_secured)

    return secured


_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


#: Swagger UI and ReDoc, vendored (see each folder's SOURCE) so that the docs work offline.
STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"


def _add_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc, with their scripts and styles served from the package, under
    the web UI's Content-Security-Policy (``default-src 'self'``: nothing loads from elsewhere),
    its one inline script (Swagger UI's set-up) and inline stylesheet (ReDoc's) allowed by hash."""
    import base64
    import hashlib
    import re

    from gradhealth.ui import content_security_policy

    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def hashes(page: str, tag: str) -> list[str]:
        return ["'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
                + "'" for body in re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)]

    def policed(response: HTMLResponse, *, runtime_styles: bool = False) -> HTMLResponse:
        """The UI's policy, with the page's own inline script and styles. ``runtime_styles``:
        ReDoc writes its styles into <style> elements as it renders (styled-components), which
        no hash can name: its styles are then allowed inline (scripts never are), and its search
        worker, started from a blob: the page itself makes."""
        page = bytes(response.body).decode("utf-8")
        directives = [d.strip() for d in content_security_policy().split(";")]
        styles = ["'unsafe-inline'"] if runtime_styles else hashes(page, "style")
        # The UI's style-src names the report's stylesheet; these pages have their own.
        directives = [" ".join(["style-src 'self'", *styles]) if d.startswith("style-src ") else d
                      for d in directives]
        if runtime_styles:  # and its search index in a worker it starts from a blob: of its own
            directives.append("worker-src 'self' blob:")
        scripts = hashes(page, "script")
        if scripts:
            directives.append(" ".join(["script-src 'self'", *scripts]))
        response.headers["Content-Security-Policy"] = "; ".join(directives)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return policed(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/swagger-ui/favicon-32x32.png",
            # No badge from the public validator.swagger.io: nothing leaves the page.
            swagger_ui_parameters={"validatorUrl": None}))

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = base(request)
        return policed(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False), runtime_styles=True)


def _document_problems(schema: dict[str, Any]) -> None:
    """Every error is application/problem+json: say so for each documented error response, and add a
    catch-all 4XX (401 without a key, 413 over the body limit, 429 over the rate limit, ...)."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                # A route's own error body stays (/readyz's 503 is a Health document, not a problem).
                refs = {c.get("schema", {}).get("$ref") for c in response.get("content", {}).values()}
                if code[0] in "45" and refs <= {None, problem_ref["$ref"], _FASTAPI_422}:
                    response["content"] = {problems.PROBLEM_JSON: {"schema": problem_ref}}
            # every endpoint refuses a query parameter it does not declare (routers.query_guard)
            responses.setdefault("4XX", {"description": "a problem (RFC 9457); among them a 422 for a query "
                                         "parameter this operation does not take (naming it and those it takes)",
                                         "content": {problems.PROBLEM_JSON: {"schema": problem_ref}}})


class _Raw:
    """Adapts a function ``ASGIApp -> ASGIApp`` to Starlette's middleware interface."""

    def __init__(self, app: ASGIApp, wrap: Any) -> None:
        self.inner = wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, send)
