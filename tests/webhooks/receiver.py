"""A real HTTP receiver for webhook tests: a threaded server on a loopback port that records every
request and answers with the statuses it is told, in order (then 200); and what a receiver does
to verify a signature (the README's recipe)."""

from __future__ import annotations

import hashlib
import hmac
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.api.helpers import Api


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    port: int
    statuses: list[int] = field(default_factory=list)
    location: str = ""
    requests: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # SNI of each TLS handshake
    scheme: str = "http"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The first ``count`` requests, once they have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.requests)} of {count} requests arrived in {timeout} s")


@contextmanager
def receiver(statuses: list[int] | None = None, location: str = "",
             tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 until the block ends; ``tls``: serve https with it."""
    state = Receiver(port=0, statuses=list(statuses or []), location=location, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server interface
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                               body, time.monotonic()))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    if tls is not None:
        def remember(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
            state.server_names.append(name)

        tls.sni_callback = remember  # type: ignore[assignment]
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield state


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` answering on a thread of its own until the block ends, then shut and closed."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def verify(secret: str, request: Received) -> bool:
    """What a receiver does (the README's recipe): HMAC-SHA256 over ``{timestamp}.{body}``."""
    timestamp = request.headers["x-gradhealth-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + expected, request.headers["x-gradhealth-signature"])


def wait_delivery(api: Api, webhook_id: str, status: str, headers: dict[str, str], timeout: float = 15.0
                  ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = api.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=headers).json()["items"]
        if items and items[0]["status"] == status:
            return items[0]
        time.sleep(0.05)
    raise AssertionError(f"no {status} delivery in {timeout} s: {items}")
