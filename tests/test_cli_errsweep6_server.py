"""errsweep6 #6: `gradhealth check --server` must not trust the server. A fake server started here
answers as a hostile or broken one would: an endless body, a body trickled a byte at a time, JSON
nested 200,000 deep. Each ends in a plain error, exit 3, within --server-timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gradhealth.cli import main
from gradhealth.client import Client, RemoteError


def _handler(mode: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                if mode == "huge":  # no length, and more bytes than any answer of the service
                    self.send_response(202)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b'{"id":"')
                    for _ in range(100):
                        self.wfile.write(b"a" * (1 << 20))
                elif mode == "huge_declared":
                    self.send_response(202)
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                elif mode == "slow":  # every read within any timeout, the whole answer never
                    self.send_response(202)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.5)
                elif mode == "deep":
                    body = b'{"id":"x","status":"succeeded","result":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
            except OSError:  # the client hung up, as it should
                pass

    return Handler


@pytest.fixture
def fake() -> Iterator[callable]:  # type: ignore[valid-type]
    servers: list[ThreadingHTTPServer] = []

    def start(mode: str) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mode))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _check(url: str, timeout: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    started = time.monotonic()
    code = main(["check", "example:relu_he_mlp", "--server", url, "--no-progress", "--server-timeout", timeout])
    return code, capsys.readouterr().err, time.monotonic() - started


def test_an_endless_answer_is_refused_at_the_size_limit(fake, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = _check(fake("huge"), "30", capsys)
    assert code == 3
    assert "the answer is over 67,108,864 bytes" in err and "Traceback" not in err


def test_a_declared_huge_answer_is_refused_before_it_is_read(fake) -> None:
    with Client(fake("huge_declared")) as client, pytest.raises(RemoteError) as caught:
        client.check_architecture("example:relu_he_mlp", wait_s=10)
    assert caught.value.status == 502
    assert "1,000,000,000,000 bytes, over the limit of 67,108,864" in str(caught.value)


def test_a_small_client_limit_is_kept(fake) -> None:
    with Client(fake("huge"), max_response_bytes=2**20) as client, pytest.raises(RemoteError) as caught:
        client.check_architecture("example:relu_he_mlp", wait_s=10)
    assert "over 1,048,576 bytes" in str(caught.value)


def test_a_trickled_answer_ends_at_the_server_timeout(fake, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, took = _check(fake("slow"), "2", capsys)
    assert code == 3
    assert "did not answer in time" in err
    # 100 bytes at 2 a second would take 50 s; the deadline is 2 s (and one more for a last request)
    assert took < 6, took


def test_json_too_deep_is_not_a_service_answer(fake, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = _check(fake("deep"), "30", capsys)
    assert code == 3
    assert "nested too deep to be a Gradient Health document" in err
    assert "RecursionError" not in err
