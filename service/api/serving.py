"""Connection-level guards for `gradhealth serve`: uvicorn's HTTP protocol with a deadline on each
request's head and a cap on the connections one client address holds.

uvicorn times an idle keep-alive connection, but its timer stops at the first byte: a client that
sends half a request head and goes silent holds its connection (and one of ``max_connections``
slots) forever, and a thousand such connections from one address answer every other client with
503. Here a connection that has not completed a request's head ``header_timeout_s`` seconds after
it opened, or after its previous response, gets a 408 and is closed; and an address that already
holds ``max_connections_per_address`` connections has its next one answered 429 and closed, unless
that connection's request is a health probe or a scrape (``GET /livez``, ``/readyz``, ``/metrics``:
:data:`PROBE_SLOTS` such connections past the cap, each closed after its one response), so a probe
that shares an address with many dashboard viewers is not failed by them. The
deadline runs from the connection's opening for its first request, and from the first byte of each
later one (between requests, uvicorn's keep-alive timeout applies).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

from gradhealth.settings import Settings

#: Connections past the per-address cap one address may hold while their first request line is
#: read: a probe's or a scrape's is served (:data:`_PROBE`), any other gets the cap's 429.
PROBE_SLOTS = 8
#: The request lines exempt from the per-address cap: health probes and the Prometheus scrape.
_PROBE = re.compile(rb"(GET|HEAD) /(livez|readyz|metrics)(\?[^ ]*)? HTTP/1\.[01]\r?")


def _problem_response(status: int, reason: str, title: str, code: str, detail: str, headers: str = "") -> bytes:
    """A whole HTTP/1.1 response, written on the connection before any request reached the app: an
    RFC 9457 problem document as every other 4xx of the service is (newuser18 #5 got text/plain)."""
    from gradhealth.errors import problem_type

    body = json.dumps({"type": problem_type(code), "title": title, "status": status, "detail": detail,
                       "errors": [{"pointer": None, "parameter": None, "detail": detail}]}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nx-content-type-options: nosniff\r\n"
            f"{headers}connection: close\r\n\r\n").encode() + body


def guarded_protocol(settings: Settings, base: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (httptools where installed, else h11, or ``base``) with the head
    deadline (``header_timeout_s``) and the per-address cap (``max_connections_per_address``, 0:
    none) of ``settings``; pass it as ``uvicorn.run(http=...)``."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    head_timeout = settings.header_timeout_s
    per_address = settings.max_connections_per_address
    open_by_address: Counter[str] = Counter()  # one event loop per serving process: no lock needed
    over_by_address: Counter[str] = Counter()  # past the cap, their first request line being read
    too_many = _problem_response(
        429, "Too Many Requests", "Too many requests", "too-many-connections",
        f"this address holds {per_address} connections already, the limit "
        "(GRADHEALTH_MAX_CONNECTIONS_PER_ADDRESS); close some and retry", "retry-after: 1\r\n")
    too_slow = _problem_response(
        408, "Request Timeout", "Request timeout", "http-408",  # the type of the body's 408 too
        f"the request's headers did not arrive within {head_timeout:g} s (GRADHEALTH_HEADER_TIMEOUT_S)")

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]  # a class chosen at run time
        _gh_address: str | None = None
        _gh_timer: asyncio.TimerHandle | None = None
        _gh_armed_cycle: Any = None
        _gh_bytes = False
        _gh_over: str | None = None  # past the cap: served only as a probe (the address)
        _gh_line = b""  # the first request line of such a connection, until it is judged
        _gh_probe = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else None
            if per_address and address is not None:
                if open_by_address[address] >= per_address:
                    if over_by_address[address] >= PROBE_SLOTS:
                        self.transport.write(too_many)
                        self.transport.close()
                        return
                    over_by_address[address] += 1  # judged by its request line (data_received)
                    self._gh_over = address
                else:
                    open_by_address[address] += 1
                    self._gh_address = address
            self._gh_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._gh_disarm()
            if self._gh_over is not None:
                over_by_address[self._gh_over] -= 1
                if over_by_address[self._gh_over] <= 0:
                    del over_by_address[self._gh_over]
                self._gh_over = None
            if self._gh_address is not None:
                open_by_address[self._gh_address] -= 1
                if open_by_address[self._gh_address] <= 0:
                    del open_by_address[self._gh_address]
                self._gh_address = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._gh_over is not None and not self._gh_probe:
                # past the cap: a probe's or a scrape's request line is served, any other refused
                self._gh_line += data
                self._gh_bytes = True
                if b"\n" not in self._gh_line and len(self._gh_line) < 1024:
                    return  # (the head deadline still runs)
                if not _PROBE.fullmatch(self._gh_line.split(b"\n", 1)[0]):
                    if not self.transport.is_closing():
                        self.transport.write(too_many)
                        self.transport.close()
                    return
                self._gh_probe = True
                data, self._gh_line = self._gh_line, b""
            cycle = self.cycle
            if self._gh_timer is None and (cycle is None or cycle.response_complete):
                self._gh_arm()  # the first byte of the next request's head: its deadline starts
            self._gh_bytes = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._gh_over is not None and not self.transport.is_closing():
                self.transport.close()  # a probe past the cap: one response (flushed), then closed
                return
            # between requests: uvicorn's keep-alive timer times the idle connection until the next
            # request's first byte (data_received arms the head deadline then)
            self._gh_disarm()

        def _gh_arm(self) -> None:
            self._gh_disarm()
            self._gh_armed_cycle = self.cycle
            self._gh_bytes = False
            self._gh_timer = self.loop.call_later(head_timeout, self._gh_expired)

        def _gh_disarm(self) -> None:
            if self._gh_timer is not None:
                self._gh_timer.cancel()
                self._gh_timer = None

        def _gh_expired(self) -> None:
            self._gh_timer = None
            cycle = self.cycle
            if cycle is not self._gh_armed_cycle:
                return  # a request's head arrived in time (its body has the app's own deadline)
            if cycle is not None and not cycle.response_complete:
                return  # a request is being answered
            if not self.transport.is_closing():
                if self._gh_bytes:  # part of a head came: say why; a silent connection is just closed
                    self.transport.write(too_slow)
                self.transport.close()

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
    return GuardedProtocol
