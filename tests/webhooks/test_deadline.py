"""A receiver that trickles its answer cannot hold a deliverer: each attempt ends by its wall-clock
deadline (``webhook_timeout_s``) and is recorded as timed out, then retried; the claim's lease outlasts
any attempt, so a delivery never has two connections open at once; and while slow receivers hold
attempts, a healthy receiver still gets its deliveries at once (one owner gets at most all deliverer
threads but one, one webhook at most one).

The slow receivers here send their status line a byte every 0.3 s: every read of it is well within
the 1 s timeout, so only a deadline on the whole attempt ends it."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gradhealth.db.models import WebhookDeliveryRow
from gradhealth.webhooks import outbox, registry
from gradhealth.webhooks.deliver import Deliverer
from tests.webhooks.helpers import key_settings
from tests.webhooks.receiver import receiver, serving

TRICKLE_S = 0.3  # one byte of the response every TRICKLE_S seconds
DEADLINE_S = 1.0
SLACK_S = 0.8


@dataclass
class Slow:
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: Counter[str] = field(default_factory=Counter)  # connections open now, by delivery
    most: Counter[str] = field(default_factory=Counter)  # the most open at once, by delivery
    opened: list[tuple[str, float]] = field(default_factory=list)  # (delivery, when)
    closed: list[tuple[str, float]] = field(default_factory=list)

    def url(self, n: int = 0) -> str:
        return f"http://127.0.0.1:{self.port}/slow{n}"

    def open_now(self) -> int:
        with self.lock:
            return sum(self.open.values())

    def wait_open(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.open_now() < count:
            assert time.monotonic() < deadline, f"{self.open_now()} of {count} connections opened"
            time.sleep(0.01)


def _read_request(conn: socket.socket) -> str:
    """The request's delivery id, once its head and body have arrived."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return ""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    lower = {k.lower(): v for k, v in headers.items()}
    while len(body) < int(lower.get("content-length", "0")):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return lower.get("x-gradhealth-delivery", "")


@contextmanager
def slow_receiver() -> Iterator[Slow]:
    """A receiver on 127.0.0.1 that reads the request, then sends ``HTTP/1.1 200 OK`` and an endless
    header a byte every :data:`TRICKLE_S` until the client closes the connection."""
    state = Slow()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            delivery = _read_request(conn)
            with state.lock:
                state.open[delivery] += 1
                state.most[delivery] = max(state.most[delivery], state.open[delivery])
                state.opened.append((delivery, time.monotonic()))
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10_000:
                    conn.sendall(bytes([byte]))
                    readable, _, _ = select.select([conn], [], [], TRICKLE_S)
                    if readable and not conn.recv(1):  # the client closed: see it at once
                        break
            except OSError:
                pass
            finally:
                with state.lock:
                    state.open[delivery] -= 1
                    state.closed.append((delivery, time.monotonic()))

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 64

    server = Server(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    with serving(server):
        yield state


def _queue(sessions: sessionmaker[Session], url: str, owner: str = "alice") -> str:
    """A webhook of ``owner`` calling ``url``, with one ping due; the delivery's id."""
    with sessions() as session:
        hook = registry.create(session, owner=owner, url=url, events=list(outbox.EVENTS), secret="s" * 20)
        delivery_id = outbox.queue(session, hook.id, "ping", {"n": 1}).id
        session.commit()
    return delivery_id


def _row(sessions: sessionmaker[Session], delivery_id: str) -> WebhookDeliveryRow:
    with sessions() as session:
        row = session.get(WebhookDeliveryRow, delivery_id)
        assert row is not None
        session.expunge(row)
        return row


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _settings(tmp_path: Any, **overrides: Any) -> Any:
    return key_settings(tmp_path, **{"webhook_timeout_s": DEADLINE_S, **overrides})


def test_a_trickling_receiver_is_cut_off_at_the_deadline_and_the_attempt_recorded_as_timed_out(
        sessions: sessionmaker[Session], tmp_path: Any) -> None:
    deliverer = Deliverer(sessions, _settings(tmp_path, webhook_base_delay_s=30))
    with slow_receiver() as slow:
        delivery_id = _queue(sessions, slow.url())
        seen: list[WebhookDeliveryRow] = []

        def watch() -> None:  # the claim, seen while the attempt is under way
            slow.wait_open(1)
            seen.append(_row(sessions, delivery_id))

        watcher = threading.Thread(target=watch)
        watcher.start()
        attempt = threading.Thread(target=deliverer.run_once, kwargs={"limit": 1})
        started = time.monotonic()
        attempt.start()
        attempt.join(DEADLINE_S + SLACK_S + 2)
        took = time.monotonic() - started
        deliverer.stop()
        assert not attempt.is_alive(), "the attempt outlasted its deadline"
        watcher.join(5)
        deadline = time.monotonic() + 2
        while slow.open_now() and time.monotonic() < deadline:  # the receiver sees the close
            time.sleep(0.01)
        assert slow.open_now() == 0 and len(slow.opened) == 1
    assert DEADLINE_S - 0.1 <= took <= DEADLINE_S + SLACK_S, took
    row = _row(sessions, delivery_id)
    assert (row.status, row.attempts, row.last_status) == ("pending", 1, None)
    assert row.last_error is not None and row.last_error.startswith("timed out after 1."), row.last_error
    assert _aware(row.next_attempt_at) > datetime.now(UTC) + timedelta(seconds=10)  # retried per the back-off
    # While the attempt ran, its claim reached past the end of any attempt.
    assert deliverer.lease_s > DEADLINE_S
    (during,) = seen
    assert _aware(during.next_attempt_at) - _aware(during.created_at) >= timedelta(seconds=DEADLINE_S + 1)


def test_retries_of_a_trickling_receiver_never_overlap_and_end_failed(
        sessions: sessionmaker[Session], tmp_path: Any) -> None:
    deliverer = Deliverer(sessions, _settings(tmp_path, webhook_max_attempts=3, webhook_base_delay_s=0.05,
                                              webhooks_pause_after=0))
    with slow_receiver() as slow:
        delivery_id = _queue(sessions, slow.url())
        deliverer.start()
        try:
            deadline = time.monotonic() + 3 * (DEADLINE_S + SLACK_S) + 2
            while _row(sessions, delivery_id).status == "pending":
                assert time.monotonic() < deadline, "the delivery stayed pending"
                time.sleep(0.05)
        finally:
            deliverer.stop()
        assert slow.most[delivery_id] == 1  # never two connections at once for the delivery
        assert len(slow.opened) == 3
    row = _row(sessions, delivery_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error is not None and row.last_error.startswith("timed out"), row.last_error


def test_a_healthy_receiver_is_delivered_at_once_while_five_slow_ones_are_pending(
        sessions: sessionmaker[Session], tmp_path: Any) -> None:
    """Five slow webhooks of alice hold three of the four threads (one each); bob's delivery takes the
    fourth at once, long before any slow attempt ends."""
    deliverer = Deliverer(sessions, _settings(tmp_path, webhook_timeout_s=2.0, webhook_base_delay_s=30))
    with slow_receiver() as slow, receiver() as healthy:
        slow_ids = [_queue(sessions, slow.url(n)) for n in range(5)]
        deliverer.start(4)
        try:
            slow.wait_open(3)
            time.sleep(0.3)
            assert slow.open_now() == 3  # alice: all threads but one
            queued = time.monotonic()
            bobs = _queue(sessions, healthy.url, owner="bob")
            (got,) = healthy.wait_for(1, timeout=2.0)
            assert got.at - queued < 1.0
            assert got.headers["x-gradhealth-delivery"] == bobs
            assert slow.open_now() == 3  # still under way
        finally:
            deliverer.stop()
    assert all(slow.most[i] <= 1 for i in slow_ids)


def test_the_owners_own_healthy_receiver_waits_at_most_one_deadline(
        sessions: sessionmaker[Session], tmp_path: Any) -> None:
    """With a single owner (API keys off, say) its slow webhooks take at most three threads, then time
    out; its healthy webhook is delivered within about one deadline, not after the slow ones."""
    deliverer = Deliverer(sessions, _settings(tmp_path, webhook_base_delay_s=30))
    with slow_receiver() as slow, receiver() as healthy:
        for n in range(5):
            _queue(sessions, slow.url(n))
        deliverer.start(4)
        try:
            slow.wait_open(3)
            queued = time.monotonic()
            _queue(sessions, healthy.url)
            (got,) = healthy.wait_for(1, timeout=DEADLINE_S + 2)
            assert got.at - queued < DEADLINE_S + SLACK_S
        finally:
            deliverer.stop()
    with slow.lock:
        assert max(slow.most.values()) == 1


def test_a_hanging_name_lookup_counts_against_the_deadline(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    release = threading.Event()

    def resolve(host: str, port: int) -> list[str]:  # a resolver that does not answer
        release.wait(10)
        return ["127.0.0.1"]

    deliverer = Deliverer(sessions, _settings(tmp_path, webhook_base_delay_s=30), resolve=resolve)
    delivery_id = _queue(sessions, "http://hooks.example.test/hook")
    started = time.monotonic()
    try:
        assert deliverer.run_once(limit=1) == 1
        took = time.monotonic() - started
    finally:
        release.set()
        deliverer.stop()
    assert took <= DEADLINE_S + SLACK_S, took
    row = _row(sessions, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and row.last_error.startswith("timed out"), row.last_error
    assert "resolving" in row.last_error, row.last_error
