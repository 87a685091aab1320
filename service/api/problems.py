"""Every error as RFC 9457 ``application/problem+json``: one renderer for the exception tree,
FastAPI's validation errors and Starlette's HTTP errors (keeping ``Allow`` and ``Retry-After``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from gradhealth.analysis.spec import (
    field_hint,
    fields_at,
    input_echo,
    reads_as_yaml,
    unknown_field_words,
)
from gradhealth.core.words import shorten
from gradhealth.errors import PROBLEM_BASE, GradHealthError

log = logging.getLogger("gradhealth.api")

PROBLEM_JSON = "application/problem+json"

_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 410: "Gone", 413: "Content too large", 415: "Unsupported media type",
           422: "Unprocessable content", 429: "Too many requests", 501: "Not implemented", 503: "Service unavailable",
           507: "Insufficient storage"}


class ApiError(GradHealthError):
    """An HTTP-level error raised by the API layer itself (not by the analysis core)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, *,
                 parameter: str | None = None, pointer: str | None = None, item: str | None = None,
                 each: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = _TITLES.get(status, "Error")
        self.headers = headers or {}
        #: where the problem is (its ``errors[]`` item): a parameter (``seeds``, ``query.limit``) or a
        #: JSON pointer into the body; ``item``: the item's detail, the place left out (else ``detail``)
        self.parameter = parameter
        self.pointer = pointer
        self.item = item
        #: several places at once, ``(parameter, detail)`` each: one ``errors[]`` item per parameter
        self.each = tuple(each)

    def to_problem(self) -> dict[str, object]:
        body = super().to_problem()
        if self.each:
            body["errors"] = [{"pointer": None, "parameter": p, "detail": d} for p, d in self.each]
        elif "errors" not in body or self.parameter is not None or self.pointer is not None:  # (its item's detail leaves the place out)
            body["errors"] = [{"pointer": self.pointer, "parameter": self.parameter, "detail": self.item or self.detail}]
        return body


def bad_cursor() -> ApiError:
    """422 ``invalid_cursor``: a page's ``?cursor=`` that no list of this service returned (every
    paged list says it alike, naming the parameter: newuser16 #6 found it null)."""
    return ApiError(422, "invalid_cursor", "query.cursor: not a cursor this service returned; start again "
                    "without it", parameter="query.cursor", item="not a cursor this service returned; start "
                    "again without it")


#: How much of an id from the path a message echoes: ids are 32 hex characters or so.
ID_CHARS = 64


def echo_id(value: str) -> str:
    """An id from the request, as a message may echo it: at most :data:`ID_CHARS` characters (then
    "..." and the length) and control or other unprintable characters escaped as Python writes
    them (``\\x00``). ``/v1/jobs/%00`` echoed a raw NUL, and a 10,000-character id all of it back
    (errsweep5)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:ID_CHARS])
    return shown if len(value) <= ID_CHARS else f"{shown}... ({len(value)} characters)"


def problem_response(status: int, title: str, detail: str, *, type_: str | None = None,
                     instance: str | None = None, headers: dict[str, str] | None = None,
                     extra: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": type_ or f"{PROBLEM_BASE}http-{status}", "title": title, "status": status,
                            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    if 400 <= status < 500 and "errors" not in body:
        # every client error carries errors[] (README: pointer, parameter, detail), if only the detail
        body["errors"] = [{"pointer": None, "parameter": None, "detail": detail}]
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the routes for this path take, documented or not (the UI's pages, /docs), asked
    of the routes themselves (Starlette's own Allow names only the first matching route's). HEAD
    wherever GET is: the app answers it as GET without the body (``app.head_as_get``)."""
    found = [method for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
             if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                    for route in request.app.routes)]
    if "GET" in found and "HEAD" not in found:
        found.insert(found.index("GET") + 1, "HEAD")
    return found


def _slash_hint(request: Request) -> str:
    """For a path that ends in ``/`` where the path without it is served (``DELETE /v1/jobs/``: a
    script's empty id), what it was likely meant as. The app redirects no trailing slash: a 307 sent
    ``DELETE /v1/jobs/`` on to a 405 of the job list (newuser18 #8)."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return ""
    bare = {**request.scope, "path": path.rstrip("/") or "/"}
    if not any(route.matches({**bare, "method": m})[0] != Match.NONE for route in request.app.routes
               for m in ("GET", "POST", "DELETE")):
        return ""
    return f" (the path ends in '/': an empty id? {bare['path']} is served without the trailing slash)"


def _json_position(body: bytes, pos: int) -> str:
    """``line L, column C`` of character offset ``pos`` in a request body."""
    text = body.decode("utf-8", "replace")[:pos]
    return f"line {text.count(chr(10)) + 1}, column {pos - (text.rfind(chr(10)) + 1) + 1}"


def _unknown_field(request: Request, loc: Sequence[Any]) -> str | None:
    """newuser9 #8: for a body key a request model forbids (``extra="forbid"``, pydantic's "Extra
    inputs are not permitted"), the spec's wording: ``unknown field; did you mean 'clip_threshold'?``
    and the fields the object takes, found by walking the route's body model along ``loc``
    (``body``, ``config``, ``clip_treshold``). None where the model cannot be found."""
    field = getattr(request.scope.get("route"), "body_field", None)
    body = getattr(getattr(field, "field_info", None), "annotation", None)
    if body is None or len(loc) < 2:
        return None
    fields = fields_at(body, loc[1:-1])
    if not fields:
        return None
    return unknown_field_words(field_hint(str(loc[-1]), fields), fields, 12)


#: Pydantic's bound checks, and the words for each bound (``?wait=nan`` failed ``ge=0``).
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<=")}


def _nan_bound(err: Any) -> str | None:
    """For a number parameter given as NaN (``?wait=nan``): "not a number", where pydantic said
    "Input should be greater than or equal to 0", a bound NaN fails only because it is no number
    (errsweep5). None for every other error."""
    bound = _BOUNDS.get(str(err.get("type")))
    value = err.get("input")
    if bound is None or not isinstance(value, str | float):
        return None
    try:
        if not math.isnan(float(value)):
            return None
    except ValueError:
        return None
    limit = (err.get("ctx") or {}).get(bound[0])
    return f"{value!r:.40} is not a number (NaN): give a number {bound[1]} {limit}"


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""

    @app.exception_handler(GradHealthError)
    async def _ours(request: Request, exc: GradHealthError) -> JSONResponse:
        body = exc.to_problem()
        return problem_response(exc.status, str(body["title"]), exc.detail, type_=str(body["type"]),
                                instance=request.url.path, headers=getattr(exc, "headers", None),
                                extra={"errors": body["errors"]} if "errors" in body else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            # a body that is not JSON has no member to point at: its offset is a place in the text
            loc = bad_json.get("loc", ())
            pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            reason = (bad_json.get("ctx") or {}).get("error") or bad_json.get("msg", "not JSON")
            body = await request.body()
            detail = f"invalid JSON at {_json_position(body, pos)}: {reason}"
            if reads_as_yaml(body.decode("utf-8", "replace")):
                detail += "; the body reads as YAML, but this route takes JSON only (application/json)"
            return problem_response(400, "Bad request", detail, type_=f"{PROBLEM_BASE}invalid-request",
                                    instance=request.url.path,
                                    extra={"errors": [{"pointer": None, "parameter": "body", "detail": detail}]})
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = loc[0] if loc else "request"
            pointer = "/" + "/".join(loc[1:]) if where == "body" else None
            message = _nan_bound(err) or err["msg"] + input_echo(err)  # (got VALUE), as a spec's errors say it
            if err.get("type") == "extra_forbidden" and where == "body":
                message = _unknown_field(request, tuple(err.get("loc", ()))) or message
            errors.append({"pointer": pointer, "parameter": None if pointer else ".".join(loc), "detail": message})
        detail = "; ".join(f"{e['pointer'] or e['parameter']}: {e['detail']}" for e in errors)
        return problem_response(422, "Invalid request", detail, type_=f"{PROBLEM_BASE}invalid-request",
                                instance=request.url.path, extra={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}{_slash_hint(request)}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
        return problem_response(exc.status_code, _TITLES.get(exc.status_code, "Error"), detail,
                                instance=request.url.path, headers=headers)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (PostgreSQL: a string over its column's length, a number JSON
        # cannot hold; SQLite checks neither): the request's validation should have refused it first,
        # so it is logged, but it is the request's value that is wrong, not the service: a 422.
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        log.warning("the database refused a value on %s %s: %s", request.method, request.url.path, reason)
        detail = f"a value of this request cannot be stored: {shorten(reason, 200)}"
        return problem_response(422, "Invalid request", detail, type_=f"{PROBLEM_BASE}invalid-request",
                                instance=request.url.path)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client went away mid-body: nobody reads this answer, and nothing failed here (handled
        # here, inside the app, it is neither a 500 in the metrics nor a traceback in the log)
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return problem_response(400, "Bad request", "the client disconnected before sending its whole body",
                                instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal error", "an unexpected error occurred; it has been logged",
                                instance=request.url.path)
