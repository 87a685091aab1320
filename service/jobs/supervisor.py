"""Keeps worker processes alive: one per GPU (or one on a CPU-only machine), started with
``spawn`` (never ``fork``: a forked CUDA context is unusable, and the API process must not touch
CUDA at all).

Every second the supervisor restarts a worker that died (releasing its job at once, so another
attempt starts without waiting for the lease to run out) and kills a worker whose job is past its
time limit plus a grace period, failing that job with a clear reason. Likewise a worker whose job
was asked to stop (``DELETE /v1/jobs/{id}``) and still runs ``settings.job_cancel_grace_s`` after
the supervisor saw the request: it is killed, the job ends ``cancelled`` and a fresh worker starts,
so a cancellation takes effect even where the job never reaches its progress callback.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gradhealth.db.engine import make_engine, make_sessionmaker
from gradhealth.db.models import JobRow
from gradhealth.devices import gpu_count
from gradhealth.jobs import store, wakeup
from gradhealth.jobs.worker import worker_main
from gradhealth.settings import Settings, get_settings

log = logging.getLogger("gradhealth.supervisor")


@dataclass
class _Slot:
    index: int
    gpu: int | None
    process: Any = None
    worker_id: str = ""
    restarts: int = 0
    recent: list[float] | None = None  # monotonic times of recent restarts
    recycled: int = 0  # planned replacements after worker_max_jobs jobs
    started: float = 0.0  # monotonic time the current process was spawned
    cancel_kills: int = 0  # workers stopped because their cancelled job ran past the grace period


class Supervisor:
    """Starts, watches and stops the worker processes of one host."""

    def __init__(self, database_url: str, *, processes: int | None = None, lease_s: float = 15.0,
                 grace_s: float = 5.0, settings: Settings | None = None,
                 wake: wakeup.Hub | None = None) -> None:
        """``settings``: what every job runs with (thresholds, limits, ...); the workers get these,
        not whatever the environment says when a job starts. Default: the environment, read now.

        ``wake``: the hub of the API process these workers serve (the embedded default): each
        worker gets a local channel to it, so that a job the API queues wakes it at once and its
        finish wakes the ``?wait`` callers. Without one (``gradhealth worker``) workers on
        PostgreSQL still ``LISTEN``; on SQLite they poll."""
        self.wake = wake
        self._wake_pipe = wakeup.wake_pipe(mp.get_context("spawn")) if wake is not None else None
        self.database_url = database_url
        self.lease_s = lease_s
        self.settings = settings if settings is not None else get_settings()
        self.grace_s = grace_s
        gpus = gpu_count()
        count = processes or max(gpus, 1)
        self.slots = [_Slot(i, i % gpus if gpus else None) for i in range(count)]
        self._ctx = mp.get_context("spawn")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine = make_engine(database_url)
        self._factory = make_sessionmaker(self._engine)
        #: job id -> monotonic time this supervisor first saw its cancel request (while it runs)
        self._cancel_seen: dict[str, float] = {}

    def _spawn(self, slot: _Slot) -> None:
        slot.worker_id = f"{socket.gethostname()}:w{slot.index}:{uuid.uuid4().hex[:8]}"
        slot.started = time.monotonic()
        threads = max(1, (os.cpu_count() or 1) // len(self.slots)) if slot.gpu is None else None
        ends = wakeup.local_pair(self._ctx, self._wake_pipe) if self._wake_pipe is not None else None
        slot.process = self._ctx.Process(target=worker_main, name=f"gradhealth-worker-{slot.index}",
                                         args=(self.database_url, slot.worker_id, self.lease_s, slot.gpu, None,
                                               threads, self.settings.model_dump(mode="json"),
                                               ends[0] if ends else None),
                                         daemon=True)
        slot.process.start()
        if ends is not None and self.wake is not None:
            wakeup.close_child_ends(ends[0])  # the child holds its own copy: its exit reads as end of file
            self.wake.attach(ends[1])
        log.info("started worker %s (pid %s, gpu %s)", slot.worker_id, slot.process.pid, slot.gpu)

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, name="gradhealth-supervisor", daemon=True)
        self._thread.start()

    #: A process that has stayed up this long after its last restart counts as alive again, even
    #: within a minute of a crash loop: it is running jobs, and /readyz should say so at once.
    stable_s: float = 10.0

    def alive(self) -> int:
        """How many worker processes are running and not crash-looping (3 restarts within a minute,
        the current process younger than :attr:`stable_s`)."""
        now = time.monotonic()
        return sum(1 for s in self.slots if s.process is not None and s.process.is_alive()
                   and (sum(1 for t in (s.recent or []) if now - t < 60) < 3
                        or now - s.started >= self.stable_s))

    def _restarted(self, slot: _Slot) -> None:
        slot.restarts += 1
        slot.recent = [t for t in (slot.recent or []) if time.monotonic() - t < 60] + [time.monotonic()]
        self._spawn(slot)

    def _watch(self) -> None:
        # Uploads and live runs are the API's to sweep (gradhealth.jobs.retention), not the
        # workers': the API writes both, and a fleet's workers may be at zero.
        while not self._stop.wait(1.0):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the watcher must outlive a database hiccup
                log.exception("supervisor check failed")

    def check_once(self) -> None:
        """Restart dead workers; stop workers whose job overran its time limit, or was cancelled
        and still runs past the cancellation's grace period."""
        running: set[str] = set()
        for slot in self.slots:
            if self._stop.is_set():
                return
            if not slot.process.is_alive():
                if slot.process.exitcode == 0:
                    # A planned exit (worker_max_jobs reached): replaced, and not counted as a
                    # crash, so that recycling never reads as a crash loop on /readyz.
                    log.info("worker %s recycled after its jobs; starting a fresh one", slot.worker_id)
                    slot.recycled += 1
                else:
                    log.warning("worker %s exited (code %s); restarting", slot.worker_id,
                                slot.process.exitcode)
                with self._factory() as session:
                    store.release_worker(session, slot.worker_id)
                    # Its job may be queued again: wake the others (on PostgreSQL, other hosts too).
                    wakeup.announce(session, wakeup.ANY, wakeup.QUEUED)
                if slot.process.exitcode == 0:
                    self._spawn(slot)
                else:
                    self._restarted(slot)
                continue
            rows = self._held(slot.worker_id)
            running.update(row.id for row in rows)
            overdue = self._overdue(rows)
            if overdue is not None:
                job_id, limit, kind = overdue
                log.warning("job %s is past its %.0f s limit; stopping worker %s", job_id, limit, slot.worker_id)
                slot.process.kill()
                slot.process.join(10)
                with self._factory() as session:
                    store.finish(session, job_id=job_id, worker_id=slot.worker_id, status="failed",
                                 error=store.time_limit_problem(kind, limit))
                self._restarted(slot)
                continue
            ignored = self._cancel_ignored(rows)
            if ignored is not None:
                log.warning("job %s was asked to stop and still runs %.1f s later; stopping worker %s",
                            ignored, self.settings.job_cancel_grace_s, slot.worker_id)
                slot.process.kill()
                slot.process.join(10)
                self._cancel_seen.pop(ignored, None)
                with self._factory() as session:
                    store.finish(session, job_id=ignored, worker_id=slot.worker_id, status="cancelled")
                    # anything else the killed worker held (a job it claimed meanwhile) is requeued now
                    store.release_worker(session, slot.worker_id)
                    wakeup.announce(session, wakeup.ANY, wakeup.QUEUED)
                # a replacement the user asked for, not a crash: not counted towards a crash loop
                slot.cancel_kills += 1
                self._spawn(slot)
        for job_id in [j for j in self._cancel_seen if j not in running]:
            del self._cancel_seen[job_id]  # it stopped by itself (or is another host's now)

    def _held(self, worker_id: str) -> list[Any]:
        """The running jobs whose lease ``worker_id`` holds (one at most, as a rule)."""
        with self._factory() as session:
            return list(session.execute(select(
                JobRow.id, JobRow.started_at, JobRow.time_limit_s, JobRow.kind, JobRow.cancel_requested).where(
                JobRow.status == "running", JobRow.lease_owner == worker_id)).all())

    def _overdue(self, rows: list[Any]) -> tuple[str, float, str] | None:
        now = store.utcnow()
        for row in rows:
            if row.started_at is not None and now > store.as_utc(row.started_at) + timedelta(
                    seconds=row.time_limit_s + self.grace_s):
                return row.id, row.time_limit_s, row.kind
        return None

    def _cancel_ignored(self, rows: list[Any]) -> str | None:
        """The id of a job among ``rows`` asked to stop at least ``job_cancel_grace_s`` ago (as
        this supervisor first saw the request) and still running, else None."""
        now = time.monotonic()
        for row in rows:
            if row.cancel_requested:
                seen = self._cancel_seen.setdefault(row.id, now)
                if now - seen >= self.settings.job_cancel_grace_s:
                    return str(row.id)
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and terminate the workers: SIGTERM, on which a worker hands its running job
        back with its attempt; one that does not exit in ``timeout`` is killed and its job requeued
        as a lost worker's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate()
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout)
                if slot.process.is_alive():
                    slot.process.kill()
        with self._factory() as session:
            for slot in self.slots:
                store.release_worker(session, slot.worker_id)
        if self._wake_pipe is not None:
            self._wake_pipe[0].close()  # the shared wake pipe's read end, kept for respawns
        self._engine.dispose()
