"""Callers: API keys (off on the embedded default, on when keys are configured; stored hashed)
and a per-key rate limit."""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass

from gradhealth.api.problems import ApiError
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


def enforce_rate(limiter: RateLimiter, caller: Caller) -> None:
    wait = limiter.take(caller.name)
    if wait > 0:
        raise ApiError(429, "rate_limited", f"rate limit exceeded for {caller.name}; retry in {math.ceil(wait)} s",
                       headers={"Retry-After": str(math.ceil(wait))})
