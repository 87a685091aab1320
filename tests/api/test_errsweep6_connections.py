"""errsweep6 #2: half-sent request heads (slowloris) from one address must not take every
connection slot of `gradhealth serve`: a head deadline closes them, and a per-address cap keeps
slots for everyone else. A real server, real sockets; short limits so this takes a few seconds."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.e2e.helpers import serve

HALF_HEAD = b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n"  # no closing blank line, then silence


def _half_open(port: int, n: int, source: str = "127.0.0.1") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        s.sendall(HALF_HEAD)
        socks.append(s)
    return socks


def _get(port: int, path: str, source: str) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=10) as client:
        return client.get(path).status_code


def test_half_sent_heads_from_one_address_leave_livez_answerable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    with serve(url, tmp_path / "serve.log", GRADHEALTH_WORKERS="0", GRADHEALTH_UPLOAD_DIR=str(tmp_path / "up"),
               GRADHEALTH_MAX_CONNECTIONS="8", GRADHEALTH_MAX_CONNECTIONS_PER_ADDRESS="4",
               GRADHEALTH_HEADER_TIMEOUT_S="2") as client:
        port = client.base_url.port
        assert port is not None
        socks = _half_open(port, 10)  # more than max_connections, from one address
        try:
            time.sleep(0.3)
            # Another address is still served, health probes included.
            assert _get(port, "/livez", "127.0.0.2") == 200
            assert _get(port, "/readyz", "127.0.0.2") == 200
            # The head deadline: the silent connections are answered 408 (or were refused at the cap)
            # and closed, and their address is served again.
            time.sleep(2.5)
            for s in socks:
                s.settimeout(2)
                data = s.recv(4096)
                assert data.startswith((b"HTTP/1.1 408", b"HTTP/1.1 429")), data[:80]
                assert b"GRADHEALTH_" in data
                try:  # then closed by the server (a reset, as the half head was never read)
                    while s.recv(4096):
                        pass
                except ConnectionResetError:
                    pass
            assert _get(port, "/livez", "127.0.0.1") == 200
        finally:
            for s in socks:
                s.close()


def test_a_complete_request_on_a_kept_alive_connection_is_not_cut(tmp_path: Path) -> None:
    """The head deadline starts again after each response: a keep-alive client sending requests
    one after another, each within the deadline, is served throughout."""
    url = f"sqlite:///{tmp_path}/db.sqlite"
    with serve(url, tmp_path / "serve.log", GRADHEALTH_WORKERS="0", GRADHEALTH_UPLOAD_DIR=str(tmp_path / "up"),
               GRADHEALTH_HEADER_TIMEOUT_S="1.5", GRADHEALTH_KEEP_ALIVE_S="5") as client:
        for _ in range(3):
            assert client.get("/livez").status_code == 200
            time.sleep(1)
