"""One router per resource; :func:`query_guard`, the query-string check every route gets (the app
adds it as an app-wide dependency, ``gradhealth.api.app.create_app``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import is_scalar_field
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from gradhealth.api.negotiation import ranked
from gradhealth.api.problems import ApiError


def _query_fields(dependant: Dependant) -> dict[str, bool]:
    """The query parameters ``dependant`` and its dependencies declare, by the name sent, each with
    whether it takes one value (True) or is repeatable (a list, False)."""
    fields = {p.alias: is_scalar_field(p) for p in dependant.query_params}
    for sub in dependant.dependencies:
        fields.update(_query_fields(sub))
    return fields


def is_list_route(route: APIRoute) -> bool:
    """A list endpoint: a GET whose answer is a page of ``items`` (jobs, runs, webhooks, deliveries).
    Decided from the route itself, so that a new list route gets the unknown-parameter check too."""
    model: Any = route.response_model
    return "GET" in (route.methods or ()) and "items" in (getattr(model, "model_fields", None) or {})


def takes_only_declared_query(route: APIRoute) -> bool:
    """Whether ``route`` refuses a query parameter it does not declare: every endpoint of the API
    (those the OpenAPI document lists). The pages a browser opens (the UI at ``/``, ``/docs``,
    ``/redoc``) are no endpoints: a link's tracking parameters must not turn them into a 422."""
    return bool(route.include_in_schema)


async def query_guard(request: Request) -> None:
    """An app-wide dependency: a 422 for a declared one-value query parameter given more than once
    (``?limit=1&limit=50``: which one wins would be a guess, so neither does), and for a parameter
    the route does not declare, on every endpoint (:func:`takes_only_declared_query`).

    A filter the list does not have (``GET /v1/runs?kind=logs``), a misspelt one (``?stauts=``) or
    a misspelt ``?wiat=5`` on a check would otherwise be ignored: the whole list answered as if it
    were the filtered one, a queued job where the script waited for a result (newuser14 #5). The
    422 is a validation error like a bad value's (``parameter: query.NAME``), naming the parameters
    the route takes (or saying it takes none)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = _query_fields(route.dependant)  # a few names: cheaper to walk than to cache safely
    errors: list[dict[str, Any]] = []
    strict = takes_only_declared_query(route)
    allowed = f"allowed: {', '.join(sorted(declared))}" if declared else "this endpoint takes no query parameters"
    for name in dict.fromkeys(request.query_params):
        given = request.query_params.getlist(name)
        if name not in declared:
            if strict:
                errors.append({"type": "extra_forbidden", "loc": ("query", name[:60]), "input": given[0][:60],
                               "msg": f"unknown query parameter; {allowed}"})
        elif declared[name] and len(given) > 1:
            errors.append({"type": "value_error", "loc": ("query", name), "input": given,
                           "msg": f"given {len(given)} times ({', '.join(repr(g[:40]) for g in given[:4])}); "
                                  "give it once"})
    if errors:
        raise RequestValidationError(errors[:5])


#: Headers whose grammar is a list (several field lines are one comma-separated value, RFC 9110
#: 5.3), and those whose repetition has its own check and code (``repeated_writer``,
#: ``repeated_credentials``): left to those.
_LIST_OR_OWN_HEADERS = frozenset({"accept", "x-gradhealth-writer", "x-api-key", "authorization"})
#: How a header the route declares without its own spelling is named in a message.
_SPELLED = {"last-event-id": "Last-Event-ID"}


def _header_fields(dependant: Dependant) -> dict[str, str]:
    """The headers ``dependant`` and its dependencies declare, by their lower-case name, each with
    the name a message gives it."""
    fields: dict[str, str] = {}
    for p in dependant.header_params:
        name = p.alias.replace("_", "-")
        fields[name.lower()] = _SPELLED.get(name.lower(), name)
    for sub in dependant.dependencies:
        fields.update(_header_fields(sub))
    return fields


async def header_guard(request: Request) -> None:
    """An app-wide dependency: a 400 naming the header for a one-value header the route declares
    (``Idempotency-Key``, ``Last-Event-ID``) sent more than once. Which of two keys a submission was
    made under would be a guess: one of them was used, silently (errsweep6 #8)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    raw = [name.decode("latin-1").lower() for name, _ in request.scope.get("headers") or ()]
    if len(raw) == len(set(raw)):
        return
    declared = _header_fields(route.dependant)
    for name in dict.fromkeys(raw):
        if name in declared and name not in _LIST_OR_OWN_HEADERS and raw.count(name) > 1:
            shown = declared[name]
            raise ApiError(400, "repeated_header", f"the request has {raw.count(name)} {shown} headers: send one {shown}")


async def accept_guard(request: Request) -> None:
    """An app-wide dependency: an ``Accept`` header whose ``q`` is not a decimal from 0 to 1 is a
    400 naming the header on every route (:mod:`gradhealth.api.negotiation`), not only on those
    that choose a format by it."""
    accept = request.headers.get("accept")
    if accept and "q" in accept.lower():
        ranked(accept)
