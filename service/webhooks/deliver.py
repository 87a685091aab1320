"""The deliverer: takes due deliveries from the outbox and POSTs them, signed, to their webhooks.

Each delivery is claimed with a compare-and-set update (``... WHERE id = ? AND status = 'pending'
AND attempts = <seen> AND next_attempt_at <= now``) that also counts the attempt and pushes
``next_attempt_at`` past the attempt's lease, so several deliverers (threads, processes, hosts)
never send one attempt twice, and a deliverer that dies mid-attempt leaves the delivery due again
once the lease runs out. Its outcome is recorded only by the claimer of that attempt.

Each attempt (name resolution, connecting, TLS, sending, and the response head) must end within
``webhook_timeout_s`` of wall-clock time, whatever the receiver does (see :mod:`.deadline`: a
receiver that trickles its answer a byte at a time is cut off at the deadline, and the attempt is
recorded as timed out and retried). The lease is longer than that, so an attempt in progress is
never claimed again. Within a process, a webhook has at most one attempt in flight and an owner at
most all threads but one, so one owner's slow receivers cannot take every deliverer thread.

A 2xx answer is delivered; anything else (3xx included: redirects are never followed) is retried
after ``base * 2**(attempt-1)`` seconds (capped, with jitter) until ``webhook_max_attempts``.

A webhook whose deliveries end ``failed`` ``webhooks_pause_after`` times in a row is paused
(``active`` false, with a ``disabled_reason``); a paused webhook's pending deliveries end
``cancelled``, and one claimed after it paused is cancelled unsent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from gradhealth import __version__
from gradhealth.core.numbers import plain
from gradhealth.db.models import WebhookDeliveryRow, WebhookRow
from gradhealth.settings import Settings
from gradhealth.webhooks import registry
from gradhealth.webhooks.addresses import Resolver, UrlRefused, parse, pin, system_resolver
from gradhealth.webhooks.deadline import DeadlinePassed, DeadlineTransport, call_within, deadline

log = logging.getLogger("gradhealth.webhooks")

EVENT_HEADER = "X-Gradhealth-Event"
DELIVERY_HEADER = "X-Gradhealth-Delivery"
TIMESTAMP_HEADER = "X-Gradhealth-Timestamp"
SIGNATURE_HEADER = "X-Gradhealth-Signature"

#: Delivery threads per process: one slow receiver (up to the timeout per attempt) holds one, not all.
THREADS = 4
#: Attempts in flight at once, per process, to one webhook.
PER_WEBHOOK = 1
#: The lease's margin over an attempt's deadline: time to record the outcome.
LEASE_MARGIN_S = 30.0
#: Delivered and failed deliveries older than this leave the log (checked about once an hour).
RETENTION = timedelta(days=30)
_PRUNE_EVERY_S = 3600.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``{timestamp}.{body}``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(delivery_id: str, webhook_id: str, event: str, created_at: datetime, payload: Any) -> bytes:
    """The JSON a delivery sends (the same bytes at every attempt)."""
    created = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    envelope = {"id": delivery_id, "event": event, "webhook_id": webhook_id,
                "created_at": created.isoformat().replace("+00:00", "Z"), "data": payload}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """The wait after failed attempt number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped at
    ``max_s``, of which a random half is waited ("equal jitter": retries of many deliveries that failed
    together spread out, yet each wait still grows exponentially)."""
    delay = min(max_s, base_s * 2.0 ** (attempt - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    http_status: int | None
    error: str | None


@dataclass(frozen=True)
class _Claimed:
    id: str
    attempt: int
    webhook_id: str
    event: str
    payload: Any
    created_at: datetime
    url: str
    secret: str
    owner: str


def _dml(session: Session, statement: Any) -> CursorResult[Any]:
    return cast("CursorResult[Any]", session.execute(statement))


class Deliverer:
    """Delivers due webhook deliveries, one at a time, in a background thread or by :meth:`run_once`."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, *,
                 resolve: Resolver | None = None, verify: ssl.SSLContext | bool = True) -> None:
        """``resolve``: the resolver used at delivery time (default: the system's); ``verify``: how
        https receivers' certificates are checked (default: the system's CAs via certifi)."""
        self.sessions = sessions
        self.settings = settings
        self.resolve = resolve
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pruned = 0.0  # monotonic time of the last pruning
        self._prune_lock = threading.Lock()
        # Attempts in flight in this process, by webhook and by owner (see _reserve).
        self._busy_lock = threading.Lock()
        self._busy_hooks: Counter[str] = Counter()
        self._busy_owners: Counter[str] = Counter()
        self._per_owner = max(1, THREADS - 1)
        # No proxies (a proxy would connect where it likes, not to the checked address), no
        # redirects, a limit on every phase of an attempt, and a deadline on the whole of it.
        self._client = httpx.Client(transport=DeadlineTransport(verify=verify), trust_env=False,
                                    follow_redirects=False, timeout=httpx.Timeout(settings.webhook_timeout_s))

    @property
    def deadline_s(self) -> float:
        """How long one attempt may last, from resolving the host to the response's status."""
        return self.settings.webhook_timeout_s

    @property
    def lease_s(self) -> float:
        """How long a claimed attempt is ours: longer than any attempt lasts (its deadline), with room
        to record the outcome, so an attempt in progress is never claimed again."""
        return self.deadline_s + LEASE_MARGIN_S

    # --- the loop ----------------------------------------------------------------------------------

    def start(self, threads: int = THREADS) -> None:
        """Run in ``threads`` daemon threads until :meth:`stop` (their claims exclude each other
        as those of separate processes do). An owner's webhooks get at most ``threads - 1`` of them
        at once, one webhook at most one."""
        self._per_owner = max(1, threads - 1)
        self._threads = [threading.Thread(target=self._loop, name=f"gradhealth-webhooks-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking deliveries; an attempt under way finishes (or times out) on its own."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not any(thread.is_alive() for thread in self._threads):
            self._client.close()  # else the attempt in flight still uses it; the daemon thread ends with it

    def prune(self) -> int:
        """Drop delivered, failed and cancelled deliveries older than :data:`RETENTION`; returns how
        many."""
        with self.sessions() as session:
            gone = _dml(session, delete(WebhookDeliveryRow).where(
                WebhookDeliveryRow.status.in_(("delivered", "failed", "cancelled")),
                WebhookDeliveryRow.created_at < utcnow() - RETENTION)).rowcount
            session.commit()
        return gone

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._prune_lock:
                    due = time.monotonic() - self._pruned >= _PRUNE_EVERY_S or not self._pruned
                    if due:
                        self._pruned = time.monotonic()
                if due:
                    self.prune()
                busy = self.run_once() > 0
            except Exception:  # noqa: BLE001 - a database hiccup must not end deliveries for good
                log.exception("webhook deliverer: a round failed")
                busy = False
            if not busy:
                self._stop.wait(self.settings.webhook_poll_s)

    def run_once(self, limit: int = 20) -> int:
        """Deliver up to ``limit`` due deliveries; returns how many attempts were made."""
        done = 0
        while done < limit and not self._stop.is_set():
            claimed = self._claim()
            if claimed is None:
                break
            try:
                outcome = self.attempt(claimed)
                self._record(claimed, outcome)
            finally:
                self._release(claimed.webhook_id, claimed.owner)
            done += 1
        return done

    # --- steps -------------------------------------------------------------------------------------

    def _busy(self) -> tuple[list[str], list[str]]:
        """The webhooks and owners that may not start another attempt in this process now."""
        with self._busy_lock:
            hooks = [h for h, n in self._busy_hooks.items() if n >= PER_WEBHOOK]
            owners = [o for o, n in self._busy_owners.items() if n >= self._per_owner]
        return hooks, owners

    def _reserve(self, webhook_id: str, owner: str) -> bool:
        """Count an attempt to ``webhook_id`` as in flight, unless it or its owner is at its cap."""
        with self._busy_lock:
            if self._busy_hooks[webhook_id] >= PER_WEBHOOK or self._busy_owners[owner] >= self._per_owner:
                return False
            self._busy_hooks[webhook_id] += 1
            self._busy_owners[owner] += 1
            return True

    def _release(self, webhook_id: str, owner: str) -> None:
        with self._busy_lock:
            for counts, key in ((self._busy_hooks, webhook_id), (self._busy_owners, owner)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]

    def _claim(self) -> _Claimed | None:
        """Take one due delivery (compare-and-set) of a webhook and owner below their caps of attempts
        in flight (counted until :meth:`_release`), or None when none is due."""
        with self.sessions() as session:
            for _ in range(5):  # lost races: try the next candidate
                now = utcnow()
                busy_hooks, busy_owners = self._busy()
                query = (select(WebhookDeliveryRow.id, WebhookDeliveryRow.attempts, WebhookRow.id, WebhookRow.owner)
                         .join(WebhookRow, WebhookRow.id == WebhookDeliveryRow.webhook_id)
                         .where(WebhookDeliveryRow.status == "pending", WebhookDeliveryRow.next_attempt_at <= now))
                if busy_hooks:
                    query = query.where(WebhookDeliveryRow.webhook_id.not_in(busy_hooks))
                if busy_owners:
                    query = query.where(WebhookRow.owner.not_in(busy_owners))
                candidate = session.execute(query.order_by(WebhookDeliveryRow.next_attempt_at).limit(1)).first()
                session.rollback()
                if candidate is None:
                    return None
                delivery_id, seen, webhook_id, owner = candidate
                if not self._reserve(webhook_id, owner):  # another thread took the last place meanwhile
                    continue
                won = _dml(session, update(WebhookDeliveryRow).where(
                    WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.status == "pending",
                    WebhookDeliveryRow.attempts == seen, WebhookDeliveryRow.next_attempt_at <= now,
                ).values(attempts=seen + 1, next_attempt_at=now + timedelta(seconds=self.lease_s))).rowcount
                session.commit()
                if not won:
                    self._release(webhook_id, owner)
                    continue
                row = session.execute(
                    select(WebhookDeliveryRow.event, WebhookDeliveryRow.payload, WebhookDeliveryRow.created_at,
                           WebhookRow.id, WebhookRow.url, WebhookRow.secret, WebhookRow.active)
                    .join(WebhookRow, WebhookRow.id == WebhookDeliveryRow.webhook_id)
                    .where(WebhookDeliveryRow.id == delivery_id)).first()
                session.rollback()
                if row is None:  # its webhook was deleted meanwhile
                    self._release(webhook_id, owner)
                    continue
                event, payload, created_at, webhook_id, url, secret, active = row
                if not active:
                    # Queued by a transaction that saw the webhook active just before it was
                    # paused (pausing cancels the pending ones it sees): cancel it, unsent.
                    _dml(session, update(WebhookDeliveryRow).where(
                        WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.status == "pending",
                        WebhookDeliveryRow.attempts == seen + 1,
                    ).values(status="cancelled", attempts=seen, next_attempt_at=None,
                             last_error=registry.CANCELLED))
                    session.commit()
                    self._release(webhook_id, owner)
                    continue
                return _Claimed(delivery_id, seen + 1, webhook_id, event, payload, created_at, url, secret, owner)
        return None

    def attempt(self, claimed: _Claimed) -> Outcome:
        """One POST of ``claimed`` to the address its host resolves to now, once that is checked; over
        (timed out) :attr:`deadline_s` after it began, whatever the receiver does."""
        started = time.monotonic()
        ends = started + self.deadline_s

        def resolve(host: str, port: int) -> list[str]:  # a lookup that hangs ends with the deadline
            lookup = self.resolve or system_resolver
            try:
                return call_within(ends - time.monotonic(), lambda: lookup(host, port),
                                   name="gradhealth-webhooks-resolve")
            except DeadlinePassed as exc:
                raise OSError(str(exc)) from None

        try:
            target = parse(claimed.url)
            address = pin(target, allow_private=self.settings.webhooks_allow_private, resolve=resolve)
        except UrlRefused as refused:
            if time.monotonic() >= ends:
                return self._timed_out(started, f"resolving the host: {refused}")
            return Outcome(False, None, f"refused: {refused}")
        body = body_of(claimed.id, claimed.webhook_id, claimed.event, claimed.created_at, claimed.payload)
        timestamp = str(int(time.time()))
        headers = {"Host": target.host_header, "Content-Type": "application/json",
                   "User-Agent": f"gradhealth-webhooks/{__version__}", EVENT_HEADER: claimed.event,
                   DELIVERY_HEADER: claimed.id, TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(claimed.secret, timestamp, body)}
        # Connect to the checked address itself; Host and (for https) SNI and the certificate
        # check still use the URL's name, so TLS verifies the server that was meant.
        shown = f"[{address}]" if address.version == 6 else str(address)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            with deadline(ends), \
                 self._client.stream("POST", f"{target.scheme}://{shown}:{target.port}{target.path}",
                                     content=body, headers=headers, extensions=extensions) as response:
                status = response.status_code  # the body is never read: a receiver cannot flood us
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.TimeoutException) or time.monotonic() >= ends:
                return self._timed_out(started, f"{type(exc).__name__}: {exc}")
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__)
        if 200 <= status < 300:
            return Outcome(True, status, None)
        if 300 <= status < 400:
            return Outcome(False, status, f"HTTP {status}: redirects are not followed; register the final URL")
        return Outcome(False, status, f"HTTP {status}")

    def _timed_out(self, started: float, detail: str) -> Outcome:
        took = time.monotonic() - started
        return Outcome(False, None, f"timed out after {took:.1f} s (an attempt may last "
                                    f"{plain(self.deadline_s)} s, webhook_timeout_s): {detail}"[:500])

    def _record(self, claimed: _Claimed, outcome: Outcome) -> None:
        """The attempt's outcome, written only while the attempt is still ours (its count unchanged)."""
        now = utcnow()
        values: dict[str, Any] = {"last_status": outcome.http_status, "last_error": outcome.error}
        if outcome.delivered:
            values.update(status="delivered", delivered_at=now, next_attempt_at=None)
        elif claimed.attempt >= self.settings.webhook_max_attempts:
            values.update(status="failed", next_attempt_at=None)
        else:
            wait = backoff_s(claimed.attempt, self.settings.webhook_base_delay_s,
                             self.settings.webhook_max_delay_s)
            values.update(next_attempt_at=now + timedelta(seconds=wait))
        paused = False
        with self.sessions() as session:
            ours = _dml(session, update(WebhookDeliveryRow).where(
                WebhookDeliveryRow.id == claimed.id, WebhookDeliveryRow.status == "pending",
                WebhookDeliveryRow.attempts == claimed.attempt).values(**values)).rowcount
            if ours and values.get("status") in ("delivered", "failed"):
                paused = self._count_end(session, claimed.webhook_id, outcome)
            session.commit()
        if not outcome.delivered:
            log.info("webhook delivery %s attempt %d: %s", claimed.id, claimed.attempt, outcome.error)
        if paused:
            log.warning("webhook %s paused after %d deliveries in a row ended failed",
                        claimed.webhook_id, self.settings.webhooks_pause_after)

    def _count_end(self, session: Session, webhook_id: str, outcome: Outcome) -> bool:
        """A delivery of ``webhook_id`` ended (in the caller's transaction): a delivered one resets its
        count of failures in a row, a failed one adds to it and, at ``webhooks_pause_after``, pauses
        the webhook and cancels its pending deliveries. Returns whether this call paused it."""
        hook = WebhookRow.id == webhook_id
        if outcome.delivered:
            _dml(session, update(WebhookRow).where(hook, WebhookRow.consecutive_failures != 0)
                 .values(consecutive_failures=0))
            return False
        # One UPDATE adds, so concurrent deliverers' failures all count.
        _dml(session, update(WebhookRow).where(hook)
             .values(consecutive_failures=WebhookRow.consecutive_failures + 1))
        limit = self.settings.webhooks_pause_after
        if limit <= 0:
            return False
        reason = f"paused after {limit} consecutive failed deliveries; last: {outcome.error}"
        return registry.pause(session, webhook_id, reason, at_failures=limit)
