"""A real HTTP server on a socket of this process that answers the recorder's requests as scripted.

Shared by the recorder tests that need a service's answers the real one would not give on demand
(a 409, a non-JSON 200, a Retry-After); the fixture ``recorder_server`` in conftest.py starts one.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    """A real HTTP server: answers ``POST /v1/runs`` and the points with ``plan`` (a list of
    (status, body) popped per request; when it is empty, 201/200 JSON as the service does)."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, bytes, str] | tuple[int, bytes, str, dict[str, str]]] = []
        self.requests: list[str] = []
        self.times: list[float] = []
        self.points = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append(self.path)
                server.times.append(time.monotonic())
                headers: dict[str, str] = {}
                if server.plan:
                    status, data, kind, *more = server.plan.pop(0)
                    headers = more[0] if more else {}
                elif self.path == "/v1/runs":
                    status, data, kind = 201, b'{"id": "r1"}', "application/json"
                else:
                    if self.path.endswith("/points"):
                        server.points += len(body.splitlines())
                    status, data, kind = 200, b"{}", "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
