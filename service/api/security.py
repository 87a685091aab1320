"""Callers: API keys (off on the embedded default, on when keys are configured; stored hashed),
a rate limit per key (per client address with keys off), throttled key guessing, and which
routes besides the API itself need a key."""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from gradhealth.api.problems import ApiError, problem_response
from gradhealth.settings import Settings, hash_key

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    name: str


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def waiting(self, key: str) -> float:
        """Like :meth:`take`, without taking a token: 0 when a request would be allowed now."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a request would be."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


#: Headers that carry a credential. Sent twice, which one counts would be a guess (a proxy's and
#: the client's, say): such a request is refused, not answered as the first one's caller.
CREDENTIAL_HEADERS = {"x-api-key": "X-API-Key", "authorization": "Authorization"}


def single_credentials(raw_headers: Iterable[tuple[bytes, bytes]]) -> None:
    """400 when a credential header (:data:`CREDENTIAL_HEADERS`) is in ``raw_headers`` (ASGI's)
    more than once."""
    seen: set[str] = set()
    for raw, _ in raw_headers:
        name = raw.decode("latin-1").lower()
        if name in CREDENTIAL_HEADERS:
            if name in seen:
                shown = CREDENTIAL_HEADERS[name]
                raise ApiError(400, "repeated_credentials",
                               f"the request has several {shown} headers: send one {shown}")
            seen.add(name)


def authenticate(settings: Settings, api_key: str | None) -> Caller:
    """The caller of a request; raises 401 when keys are on and the key is missing or unknown."""
    owners = settings.key_owners()
    if not owners:
        return Caller(ANONYMOUS)
    if not api_key:
        raise ApiError(401, "unauthorized", "send your API key in the X-API-Key header",
                       headers={"WWW-Authenticate": "ApiKey"})
    digest = hash_key(api_key)
    for stored, name in owners.items():
        if hmac.compare_digest(stored, digest):
            return Caller(name)
    raise ApiError(401, "unauthorized", "the API key in X-API-Key is not valid", headers={"WWW-Authenticate": "ApiKey"})


def rate_key(caller: Caller, address: str) -> str:
    """The bucket a request draws from: its key's caller, or with keys off its client address
    (one shared bucket would let one client starve all the others)."""
    return f"address:{address}" if caller.name == ANONYMOUS else f"key:{caller.name}"


def enforce_rate(limiter: RateLimiter, caller: Caller, address: str = "unknown") -> None:
    """429 with Retry-After when the caller's bucket is empty."""
    wait = limiter.take(rate_key(caller, address))
    if wait > 0:
        who = caller.name if caller.name != ANONYMOUS else address
        raise ApiError(429, "rate_limited", f"rate limit exceeded for {who}; retry in {math.ceil(wait)} s",
                       headers={"Retry-After": str(math.ceil(wait))})


def authenticate_throttled(settings: Settings, api_key: str | None, failures: RateLimiter,
                           address: str) -> Caller:
    """:func:`authenticate`, with missing or wrong keys counted per client address: beyond
    ``auth_failures_per_minute`` such a client gets 429 instead of 401, so keys cannot be guessed
    at full speed. (Behind a proxy, run uvicorn with ``--forwarded-allow-ips`` so the address is
    the client's, not the proxy's.)"""
    bucket = f"failures:{address}"
    # Checked before the key: an address over its failures gets 429 whatever it sends, or a
    # guesser would still learn the moment a guess is right.
    wait = failures.waiting(bucket) if settings.key_owners() else 0.0
    if wait > 0:
        raise ApiError(429, "rate_limited", f"too many requests without a valid API key from {address}; "
                       f"retry in {math.ceil(wait)} s", headers={"Retry-After": str(math.ceil(wait))})
    try:
        return authenticate(settings, api_key)
    except ApiError as refused:
        if refused.status == 401:
            failures.take(bucket)
        raise


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (the proxy's, unless forwarded headers are trusted)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


#: Served without a key while ``docs_public`` (the API's description, not anyone's data).
DOC_PREFIXES = ("/openapi.json", "/docs", "/redoc", "/static/", "/v1/catalog")


def exposure_guard(app: ASGIApp, settings: Settings, failures: RateLimiter) -> ASGIApp:
    """With keys on, /metrics (counts across all callers) needs a key unless ``metrics_public``,
    and the documentation routes unless ``docs_public``. With keys off, nothing changes. On every
    route, keys on or off, a repeated credential header is a 400 (:func:`single_credentials`)."""
    protected: tuple[str, ...] = (() if settings.metrics_public else ("/metrics",)) + (
        () if settings.docs_public else DOC_PREFIXES)
    keys_on = bool(settings.key_owners())

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        try:
            if scope["type"] == "http":
                single_credentials(scope.get("headers") or [])  # every route, keys on or off
        except ApiError as refused:
            await _refuse(refused, path, scope, receive, send)
            return
        if keys_on and any(path == p.rstrip("/") or path.startswith(p) for p in protected):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            try:
                caller = authenticate_throttled(settings, headers.get("x-api-key"), failures, client_address(scope))
            except ApiError as refused:
                await _refuse(refused, path, scope, receive, send)
                return
            scope.setdefault("state", {})["caller"] = caller  # request.state.caller: whose /metrics
        await app(scope, receive, send)

    return guarded


async def _refuse(refused: ApiError, path: str, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(refused.status, refused.title, refused.detail,
                                type_=str(refused.to_problem()["type"]), instance=path, headers=refused.headers)
    await response(scope, receive, send)
