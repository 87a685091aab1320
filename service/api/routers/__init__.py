"""One router per resource; :func:`known_query_only`, which the list endpoints share."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters ``dependant`` and its dependencies declare, by the name sent."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_query_only(request: Request) -> None:
    """A dependency for list endpoints: a 422 for a query parameter the route does not declare.

    A filter the list does not have (``GET /v1/runs?kind=logs``) or a misspelt one (``?stauts=``)
    would otherwise be ignored, and the whole list answered as if it were the filtered one. The
    422 is a validation error like a bad value's (``parameter: query.NAME``), naming the parameters
    the route takes. Endpoints that are not lists keep ignoring extra parameters."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)  # a few names: cheaper to walk than to cache safely
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if unknown:
        allowed = ", ".join(sorted(known))
        raise RequestValidationError([
            {"type": "extra_forbidden", "loc": ("query", name[:60]), "input": request.query_params[name][:60],
             "msg": f"unknown query parameter; allowed: {allowed}"} for name in unknown[:5]])
