"""The web UI at ``/``: one server-rendered page, its own stylesheet and vanilla script, served by
the service itself (no CDN, no build step).

The page holds no data, so ``/`` and ``/ui/...`` are public whatever the exposure settings: every
job, report and event reaches the browser through the API, with the caller's key (kept in the
browser's session storage, sent as ``X-API-Key``). The bundled examples are documentation, so
``/ui/examples`` follows ``docs_public`` as ``/v1/catalog`` does.

Every response carries a Content-Security-Policy of ``default-src 'self'``: nothing the page loads
may come from elsewhere. A report is shown in a sandboxed ``srcdoc`` frame, which inherits the
page's policy, so the policy also allows the report's one inline stylesheet by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import html
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from gradhealth import __version__
from gradhealth.api.problems import ApiError
from gradhealth.api.security import authenticate_throttled, client_address
from gradhealth.library import example_names

router = APIRouter(include_in_schema=False)

#: The files under ``/ui/``: a fixed list (never a path from the request), with their media types.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def _file(*parts: str) -> str:
    """A packaged text file under ``gradhealth/`` (works from a wheel as from the source tree)."""
    path = resources.files("gradhealth")
    for part in parts:
        path = path / part
    return path.read_text(encoding="utf-8")


@cache
def report_style_hash() -> str:
    """The CSP source for the HTML report's inline stylesheet (``'sha256-...'``)."""
    from gradhealth.report.html import _STYLE  # the report's one <style>, a constant

    digest = hashlib.sha256(_STYLE.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy() -> str:
    """The UI's policy: everything from the service itself; no inline script, no plugins, no
    framing of the UI by other sites. Styles: the UI's own file and the report's stylesheet."""
    return "; ".join([
        "default-src 'self'",
        f"style-src 'self' {report_style_hash()}",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _headers(cache_control: str) -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": cache_control}


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    """The page. Relative asset URLs and a ``data-root`` let it work under a proxy's root path."""
    root = request.scope.get("root_path", "").rstrip("/")
    settings = request.app.state.settings
    page = (_file("ui", "templates", "index.html")
            .replace("{{root}}", html.escape(root + "/", quote=True))
            .replace("{{version}}", html.escape(__version__))
            .replace("{{keys}}", "on" if settings.key_owners() else "off"))
    return HTMLResponse(page, headers=_headers("no-cache"))


@router.get("/ui/examples")
def examples(request: Request) -> Response:
    """The bundled example specs (name, one line about it, its YAML text), for the one-click picker."""
    settings = request.app.state.settings
    if settings.key_owners() and not settings.docs_public:
        authenticate_throttled(settings, request.headers.get("x-api-key"),
                               request.app.state.auth_failures, client_address(request.scope))
    from gradhealth.cli import example_description

    items: list[dict[str, Any]] = [
        {"name": name, "description": example_description(name),
         "spec": _file("examples", f"{name}.yaml")}
        for name in example_names()]
    return JSONResponse({"items": items}, headers=_headers("no-cache"))


@router.get("/ui/{name}")
def asset(name: str) -> Response:
    """The page's script, stylesheet and icon."""
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no UI file {name!r}")
    return Response(_file("ui", "static", name), media_type=ASSETS[name], headers=_headers("no-cache"))
