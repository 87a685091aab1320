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


async def query_guard(request: Request) -> None:
    """An app-wide dependency: a 422 for a declared one-value query parameter given more than once
    (``?limit=1&limit=50``: which one wins would be a guess, so neither does), on every route, and
    for a parameter the route does not declare, on list routes.

    A filter the list does not have (``GET /v1/runs?kind=logs``) or a misspelt one (``?stauts=``)
    would otherwise be ignored, and the whole list answered as if it were the filtered one. The
    422 is a validation error like a bad value's (``parameter: query.NAME``), naming the parameters
    the route takes. Endpoints that are not lists keep ignoring extra parameters."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = _query_fields(route.dependant)  # a few names: cheaper to walk than to cache safely
    errors: list[dict[str, Any]] = []
    listing = is_list_route(route)
    for name in dict.fromkeys(request.query_params):
        given = request.query_params.getlist(name)
        if name not in declared:
            if listing:
                errors.append({"type": "extra_forbidden", "loc": ("query", name[:60]), "input": given[0][:60],
                               "msg": f"unknown query parameter; allowed: {', '.join(sorted(declared))}"})
        elif declared[name] and len(given) > 1:
            errors.append({"type": "value_error", "loc": ("query", name), "input": given,
                           "msg": f"given {len(given)} times ({', '.join(repr(g[:40]) for g in given[:4])}); "
                                  "give it once"})
    if errors:
        raise RequestValidationError(errors[:5])


async def accept_guard(request: Request) -> None:
    """An app-wide dependency: an ``Accept`` header whose ``q`` is not a decimal from 0 to 1 is a
    400 naming the header on every route (:mod:`gradhealth.api.negotiation`), not only on those
    that choose a format by it."""
    accept = request.headers.get("accept")
    if accept and "q" in accept.lower():
        ranked(accept)
