"""A wall-clock deadline for one delivery attempt, enforced on every socket operation.

httpx's timeouts bound each operation (one connect, one read, one write), not the whole request: a
receiver that sends its response a byte every second never trips a 3 s read timeout, and would hold
a deliverer thread (and its socket) for as long as it likes. Here every operation of the network
streams a :class:`DeadlineTransport` opens waits at most until the deadline of the attempt under way
in the calling thread (set by :func:`deadline`), and an operation begun after it fails at once with
a timeout, so an attempt ends, its socket closed by httpcore, within about its deadline whatever the
receiver does. Name resolution is bounded by :func:`call_within`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpcore
import httpx

T = TypeVar("T")

_current = threading.local()


class DeadlinePassed(TimeoutError):
    """The attempt's deadline passed before ``call_within``'s function returned."""


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Bound the calling thread's socket operations on :class:`DeadlineTransport` streams by ``at``
    (a :func:`time.monotonic` time) until the block ends."""
    previous = getattr(_current, "at", None)
    _current.at = at
    try:
        yield
    finally:
        _current.at = previous


def remaining() -> float | None:
    """Seconds left to the calling thread's deadline (at most 0), or None when none is set."""
    at: float | None = getattr(_current, "at", None)
    return None if at is None else at - time.monotonic()


def _bounded(timeout: float | None, timed_out: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the deadline; ``timed_out`` when nothing is left."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise timed_out("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


def call_within(seconds: float, function: Callable[[], T], name: str = "gradhealth-webhooks-call") -> T:
    """``function()`` if it returns within ``seconds``, else :class:`DeadlinePassed` (it then runs on,
    unattended, in a daemon thread: a blocking call such as ``getaddrinfo`` cannot be interrupted)."""
    if seconds <= 0:
        raise DeadlinePassed("no time was left")
    done = threading.Event()
    result: list[Any] = []

    def run() -> None:
        try:
            result.append((True, function()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    if not done.wait(seconds):
        raise DeadlinePassed(f"no answer within {seconds:.3g} s")
    ok, value = result[0]
    if not ok:
        raise value
    return value


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the calling thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # Each read is bounded by what is left; a trickle of bytes only brings the next read closer
        # to the deadline, where it fails without waiting.
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._inner.get_extra_info("socket")
        if not isinstance(sock, socket.socket):  # not a plain or TLS socket: one bounded write
            self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))
            return
        # As httpcore's own sync stream does, but the deadline is checked before every send(), so a
        # receiver that reads slowly cannot stretch the request either.
        view = memoryview(buffer)
        try:
            while view:
                sock.settimeout(_bounded(timeout, httpcore.WriteTimeout))
                sent = sock.send(view)
                view = view[sent:]
        except TimeoutError as exc:  # socket.timeout
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # The socket's timeout bounds the whole handshake, so one bounded call suffices.
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, its connections bounded by the calling thread's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout),
                                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport with no proxy, whose connections honour :func:`deadline`."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        limits = httpx.Limits()  # httpx's defaults
        # httpx offers no public way to choose the network backend: replace the pool it built (with
        # the same settings) by one on the bounded backend.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):  # pragma: no cover
            raise RuntimeError("this httpx version keeps its connection pool elsewhere; the webhook "
                               "deliverer cannot bound its attempts")
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_DeadlineBackend())
