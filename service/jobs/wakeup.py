"""Wake-ups instead of polling: a worker is woken when a job is queued, a ``?wait`` caller when its
job finishes.

One concept, three carriers:

* **Announcing** (:func:`notify`, called by the store in the transaction that queues or finishes a
  job): on PostgreSQL ``pg_notify('gradhealth_jobs', '<job id>:<event>')``, which the server sends
  at commit and drops on rollback; on every database, a delivery to this process's subscribers
  (:func:`subscribe`) once the session commits (never on rollback).
* **PostgreSQL** ``LISTEN``: workers (:class:`IdleWait`) and the API (:class:`Hub`) each hold one
  dedicated autocommit psycopg connection listening on :data:`CHANNEL`, so a job queued or finished
  on any host is seen by all.
* **The local channel** of the embedded default (SQLite; the API process starts its own workers
  through the Supervisor): one wake pipe shared by its workers and a done pipe per worker
  (:func:`local_pair`). The API writes one byte, a token, into the wake pipe per queued job; an idle
  worker takes one token and claims, so a job wakes one worker, not all of them (a worker that
  claims without having been woken retires a token instead). A worker writes ``<job id>\\n`` into
  its done pipe when it finishes a job, which a thread of the API reads and hands to the ``?wait``
  callers.

Polling stays as the fallback that guarantees progress when a notification is lost (a listener
reconnecting, a worker killed between its commit and its write, a second process on one SQLite
file): an idle worker still claims every ``job_wake_fallback_s`` and a ``?wait`` caller re-reads its
job as often. Where no carrier reaches a process at all (a standalone ``gradhealth worker`` on
SQLite, an API without workers on SQLite), both keep the short back-off polling of old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.orm import Session

log = logging.getLogger("gradhealth.wakeup")

#: The PostgreSQL notification channel; payloads are ``<job id>:<event>``.
CHANNEL = "gradhealth_jobs"
QUEUED = "queued"
FINISHED = "finished"
#: A job id standing for "some job": wakes workers without naming one (a requeue after a worker died).
ANY = "*"

_PENDING = "gradhealth_wakeup_pending"
Subscriber = Callable[[str, str], None]
_subscribers: list[Subscriber] = []
_subscribers_lock = threading.Lock()


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


# --- announcing ----------------------------------------------------------------------------------

def notify(session: Session, job_id: str, what: str) -> None:
    """Announce that ``job_id`` was queued or finished, as part of ``session``'s transaction: sent
    when it commits, never when it rolls back."""
    # Inside a transaction even where nothing is executed (SQLite), so that a rollback drops it.
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": f"{job_id}:{what}"})
    session.info.setdefault(_PENDING, []).append((job_id, what))


def announce(session: Session, job_id: str, what: str) -> None:
    """:func:`notify` in a transaction of its own (for a change already committed)."""
    session.rollback()
    notify(session, job_id, what)
    session.commit()


def subscribe(callback: Subscriber) -> None:
    """Call ``callback(job_id, event)`` for every announcement committed in this process. It runs in
    the committing thread, so it must be quick and must not block."""
    with _subscribers_lock:
        _subscribers.append(callback)


def unsubscribe(callback: Subscriber) -> None:
    with _subscribers_lock, contextlib.suppress(ValueError):
        _subscribers.remove(callback)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    with _subscribers_lock:
        targets = list(_subscribers)
    for job_id, what in pending:
        for callback in targets:
            try:
                callback(job_id, what)
            except Exception:  # noqa: BLE001 - a lost wake-up is recovered by the fallback poll
                log.exception("wake-up subscriber failed")


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _parse(payload: str) -> tuple[str, str]:
    job_id, _, what = payload.rpartition(":")
    return job_id, what


# --- PostgreSQL LISTEN ---------------------------------------------------------------------------

def conninfo(url: str) -> str:
    """A libpq URL for a SQLAlchemy ``postgresql[+driver]://`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Listen:
    """One dedicated autocommit connection with ``LISTEN gradhealth_jobs``; reconnects lazily."""

    retry_s = 1.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        self._next_try = 0.0

    def ensure(self) -> bool:
        """Connected (connecting when due); True when it is. A fresh connection may have missed
        notifications: the caller treats connecting as a wake-up."""
        if self.conn is not None:
            return True
        if time.monotonic() < self._next_try:
            return False
        import psycopg

        try:
            self.conn = psycopg.connect(conninfo(self.url), autocommit=True, connect_timeout=5)
            self.conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("LISTEN %s failed (%s); polling until it is back", CHANNEL, exc)
            self.close()
            self._next_try = time.monotonic() + self.retry_s
            return False
        return True

    def fileno(self) -> int:
        return int(self.conn.fileno())

    def drain(self, timeout: float = 0.0) -> list[tuple[str, str]]:
        """The notifications received (waiting up to ``timeout`` for the first)."""
        import psycopg

        try:
            got = [_parse(n.payload) for n in self.conn.notifies(timeout=timeout, stop_after=1)]
            if got:  # and whatever else already arrived
                got += [_parse(n.payload) for n in self.conn.notifies(timeout=0)]
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost (%s); polling until it is back", exc)
            self.close()
            self._next_try = time.monotonic() + self.retry_s
            return []
        return got

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None


# --- the local channel ---------------------------------------------------------------------------

@dataclass
class WorkerEnds:
    """A worker's ends of its local channel (they cross the spawn boundary by pickling)."""

    wake: Connection  # read, shared by the workers: a token per queued job
    done: Connection  # write, its own: "<job id>\n" per finished job


@dataclass
class ApiEnds:
    """The API's ends of one worker's local channel."""

    wake: Connection  # write, shared
    done: Connection  # read, its own


def wake_pipe(ctx: Any) -> tuple[Connection, Connection]:
    """The wake pipe all workers of one API share, (read end, write end); ``ctx``: a
    multiprocessing context."""
    reader, writer = ctx.Pipe(duplex=False)
    return reader, writer


def local_pair(ctx: Any, wake: tuple[Connection, Connection]) -> tuple[WorkerEnds, ApiEnds]:
    """One worker's channel: the shared ``wake`` pipe and a done pipe of its own. After the worker
    is started, close its done end in the parent (:func:`close_child_ends`) so that its death
    reads as end of file."""
    done_r, done_w = ctx.Pipe(duplex=False)
    return WorkerEnds(wake[0], done_w), ApiEnds(wake[1], done_r)


def close_child_ends(ends: WorkerEnds) -> None:
    """The parent's copy of a started worker's own end (the shared wake pipe stays open)."""
    with contextlib.suppress(OSError):
        ends.done.close()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def report_finishes(ends: WorkerEnds) -> Subscriber:
    """In a worker process: pass every finish committed here to the API through ``ends.done``.
    Returns the subscriber (registered already)."""
    fd = ends.done.fileno()
    broken = False

    def on_commit(job_id: str, what: str) -> None:
        nonlocal broken
        if what != FINISHED or broken:
            return
        try:
            _write_all(fd, f"{job_id}\n".encode())  # one write under PIPE_BUF: never interleaved
        except OSError:  # the API is gone: its supervisor will stop us too
            broken = True

    subscribe(on_commit)
    return on_commit


class IdleWait:
    """What an idle worker blocks on: its local wake pipe and, on PostgreSQL, ``LISTEN``."""

    def __init__(self, database_url: str, ends: WorkerEnds | None = None) -> None:
        self._pipe = ends.wake if ends is not None else None
        if self._pipe is not None:
            os.set_blocking(self._pipe.fileno(), False)  # a token another worker took is no wait
        self._holding = False  # took a token and has not claimed since
        self._listen = _Listen(database_url) if is_postgres(database_url) else None
        if self._listen is not None:
            self._listen.ensure()

    @property
    def covered(self) -> bool:
        """Whether a queued job will wake this worker (else it has to poll)."""
        return self._pipe is not None or (self._listen is not None and self._listen.conn is not None)

    def wait(self, timeout: float) -> bool:
        """Block until a job may have been queued (True) or ``timeout`` seconds passed (False)."""
        fds: list[int] = []
        if self._pipe is not None:
            fds.append(self._pipe.fileno())
        if self._listen is not None:
            if self._listen.conn is None:
                if self._listen.ensure():
                    return True  # reconnected: what was missed meanwhile is looked for now
            else:
                fds.append(self._listen.fileno())
        if not fds:
            time.sleep(timeout)
            return False
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError):  # a descriptor closed under us
            ready = []
        woke = False
        if self._pipe is not None and self._pipe.fileno() in ready:
            try:
                data = os.read(self._pipe.fileno(), 1)  # one token: one job, one worker
            except BlockingIOError:
                data = None  # another idle worker took it
            except OSError:
                data = b""
            if data:
                woke = self._holding = True
            elif data is not None:  # end of file: the API that fed it is gone
                self._pipe = None
        if self._listen is not None and self._listen.conn is not None:
            ready_pg = self._listen.fileno() in ready
            events = self._listen.drain(0.0) if ready_pg else []
            woke = woke or any(what == QUEUED for _, what in events)
        return woke

    def claimed(self) -> None:
        """A job was claimed: the token that announced it is spent (taken when woken, else taken
        now), so that no idle worker wakes for a job already running."""
        if self._holding:
            self._holding = False
        elif self._pipe is not None:
            with contextlib.suppress(OSError):  # BlockingIOError: not written yet, or none
                os.read(self._pipe.fileno(), 1)

    def close(self) -> None:
        if self._listen is not None:
            self._listen.close()


# --- the API's side ------------------------------------------------------------------------------

class Watch:
    """One ``?wait`` caller's interest in one job (see :meth:`Hub.watch`)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def fire(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float) -> bool:
        """Until the job is announced finished (True) or ``timeout`` seconds pass (False); either
        way the caller re-reads the job."""
        try:
            await asyncio.wait_for(self.event.wait(), max(timeout, 0.0))
            woke = True
        except TimeoutError:
            woke = False
        self.event.clear()
        return woke


class Hub:
    """The API process's end: wakes its own workers when it queues a job (local channel) and its
    ``?wait`` callers when a job finishes (local channel, and ``LISTEN`` on PostgreSQL)."""

    #: How many recent finishes a new watch looks back on.
    RECENT = 4096

    def __init__(self, database_url: str, *, fallback_s: float = 5.0) -> None:
        self.database_url = database_url
        #: How often a waiting caller re-reads its job regardless (a lost notification).
        self.fallback_s = fallback_s
        self._watches: dict[str, set[Watch]] = {}
        # Jobs announced finished lately, so that a watch begun just after the announcement
        # still fires at once (a ?wait caller need not re-read its job before waiting).
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._workers: list[ApiEnds] = []
        self._wake: Connection | None = None  # the shared wake pipe's write end
        self._stop = threading.Event()
        self._listening = False
        self._thread: threading.Thread | None = None
        self._started = False

    # lifecycle
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        subscribe(self._on_commit)
        if is_postgres(self.database_url):
            self._thread = threading.Thread(target=self._listen_loop, name="gradhealth-listen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        unsubscribe(self._on_commit)
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._workers = []
            wake, self._wake = self._wake, None
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.close()

    @property
    def covered(self) -> bool:
        """Whether a finish will be announced to this process (workers attached, or ``LISTEN`` up)."""
        return bool(self._workers) or self._listening

    # the local channel
    def attach(self, ends: ApiEnds) -> None:
        """Take one worker's channel (the Supervisor, after starting it). Its done pipe is read by
        a thread of its own, which ends at end of file (the worker died or was replaced)."""
        with self._lock:
            if self._wake is None:
                os.set_blocking(ends.wake.fileno(), False)  # queueing a job never waits on workers
                self._wake = ends.wake
            self._workers.append(ends)
        threading.Thread(target=self._read_done, args=(ends,), name="gradhealth-done", daemon=True).start()

    def _read_done(self, ends: ApiEnds) -> None:
        fd = ends.done.fileno()
        buffer = b""
        try:
            while chunk := os.read(fd, 65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self.deliver(line.decode(errors="replace"), FINISHED)
        except OSError:
            pass
        finally:
            with self._lock:
                if ends in self._workers:
                    self._workers.remove(ends)
            with contextlib.suppress(OSError):
                ends.done.close()

    def _wake_workers(self) -> None:
        wake = self._wake
        if wake is None:
            return
        # BlockingIOError: the pipe holds 64 KiB of tokens already; other errors: stopping.
        with contextlib.suppress(OSError):
            os.write(wake.fileno(), b"\0")

    def _on_commit(self, job_id: str, what: str) -> None:
        if what == QUEUED:
            self._wake_workers()
        self.deliver(job_id, what)

    # PostgreSQL
    def _listen_loop(self) -> None:
        listen = _Listen(self.database_url)
        try:
            while not self._stop.is_set():
                if listen.conn is None:
                    self._listening = False
                    if not listen.ensure():
                        self._stop.wait(listen.retry_s)
                        continue
                    self._listening = True
                    self.wake_all()  # a finish may have been missed while not listening
                for job_id, what in listen.drain(0.5):
                    self.deliver(job_id, what)
        finally:
            self._listening = False
            listen.close()

    # the ?wait callers
    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """Register interest in ``job_id`` (inside a running event loop). A finish announced
        since the caller last read the job is not missed: if it came before the watch began, the
        watch starts fired (for the last :attr:`RECENT` finishes; beyond, the fallback re-read)."""
        w = Watch(job_id)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(w)
            if job_id in self._recent:
                w.event.set()
        try:
            yield w
        finally:
            with self._lock:
                group = self._watches.get(job_id)
                if group is not None:
                    group.discard(w)
                    if not group:
                        del self._watches[job_id]

    def deliver(self, job_id: str, what: str) -> None:
        """Wake the callers waiting on ``job_id`` when it finished (thread-safe)."""
        if what != FINISHED:
            return
        with self._lock:
            self._recent[job_id] = None
            if len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
            targets = list(self._watches.get(job_id, ()))
        for w in targets:
            w.fire()

    def wake_all(self) -> None:
        with self._lock:
            targets = [w for group in self._watches.values() for w in group]
        for w in targets:
            w.fire()
