"""errsweep8 #6: once one address held GRADHEALTH_MAX_CONNECTIONS_PER_ADDRESS connections (a
dashboard's event streams), every request from it got 429, /livez, /readyz and /metrics too, so a
probe sharing the address (a sidecar, localhost) reported a healthy service as down. A real server,
real sockets, a cap of 3."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.e2e.helpers import serve


def _request(port: int, line: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"{line}\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):  # read to the close: each past-the-cap connection is closed
            data += chunk
        return data


def test_probes_and_scrapes_are_answered_past_the_per_address_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    with serve(url, tmp_path / "serve.log", GRADHEALTH_WORKERS="0", GRADHEALTH_UPLOAD_DIR=str(tmp_path / "up"),
               GRADHEALTH_MAX_CONNECTIONS_PER_ADDRESS="3", GRADHEALTH_HEADER_TIMEOUT_S="20",
               GRADHEALTH_KEEP_ALIVE_S="20") as client:
        port = client.base_url.port
        assert port is not None
        held = []
        for _ in range(3):  # the cap: kept-alive connections that each completed a request
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            held.append(s)
        try:
            time.sleep(0.2)
            assert _request(port, "GET /v1/jobs HTTP/1.1").startswith(b"HTTP/1.1 429")
            for path in ("/livez", "/readyz", "/metrics"):
                answer = _request(port, f"GET {path} HTTP/1.1")
                assert answer.startswith(b"HTTP/1.1 200"), (path, answer[:200])
            # with a query: answered by the service (which refuses an unknown parameter), not the cap
            assert not _request(port, "GET /livez?verbose=1 HTTP/1.1").startswith(b"HTTP/1.1 429")
            assert b"# TYPE" in _request(port, "GET /metrics HTTP/1.1")
            # a path that only starts like a probe's is no probe
            assert _request(port, "GET /livez/../v1/jobs HTTP/1.1").startswith(b"HTTP/1.1 429")
        finally:
            for s in held:
                s.close()
