"""Typed dependencies, so route signatures read like prose and tests override them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from gradhealth.api.security import (
    Caller,
    authenticate_throttled,
    client_address,
    enforce_rate,
    single_credentials,
)
from gradhealth.settings import Settings


# The two dependencies every route takes are coroutines: FastAPI runs a plain function dependency
# in its thread pool, a hand-off per dependency per request, for work (a lookup, a SHA-256 and a
# token bucket) far cheaper than the hand-off. Neither waits on anything.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


async def get_caller(request: Request,
                     x_api_key: Annotated[str | None, Header(alias="X-API-Key",
                                                             description="your API key")] = None,
                     ) -> Caller:
    single_credentials(request.scope.get("headers") or [])  # the app's guard refuses it first
    address = client_address(request.scope)
    caller = authenticate_throttled(request.app.state.settings, x_api_key, request.app.state.auth_failures,
                                    address)
    enforce_rate(request.app.state.limiter, caller, address)
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CallerDep = Annotated[Caller, Depends(get_caller)]
