"""The worker loop: claim a job, run it with a heartbeat that renews its lease, record the outcome.

A worker that dies stops renewing its lease; :func:`gradhealth.jobs.store.reap_expired` (called by
every worker before it claims) requeues the job for another worker, or fails it when it has used
up its attempts. The time limit is enforced twice: cooperatively here (the progress callback
raises once the job is over its limit) and by the supervisor, which kills a worker that does not
stop in time.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gradhealth.db.engine import make_engine, make_sessionmaker
from gradhealth.errors import GradHealthError
from gradhealth.jobs import store, wakeup
from gradhealth.jobs.kinds import HANDLERS
from gradhealth.settings import Settings, get_settings

log = logging.getLogger("gradhealth.worker")


class GracefulStop(BaseException):
    """Raised in the main thread by SIGTERM while a job runs. A BaseException, so that no handler's
    ``except Exception`` swallows it: the job is handed back (attempt returned) and the worker exits."""


#: The job this process is running now (None between jobs): SIGTERM interrupts only a job.
_current: _Running | None = None


def _on_sigterm(stop: threading.Event) -> Any:
    def handler(signum: int, frame: Any) -> None:
        stop.set()
        if _current is not None and not _current.done.is_set():
            raise GracefulStop
    return handler


class JobStopped(Exception):
    """Raised inside a running job to stop it: time limit, cancellation or a lost lease."""

    def __init__(self, status: str, problem: dict[str, Any] | None) -> None:
        super().__init__(status)
        self.status = status
        self.problem = problem


@dataclass
class WorkerConfig:
    database_url: str
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    lease_s: float = 15.0
    #: The longest back-off between polls where no wake-up channel reaches this worker.
    poll_s: float = 0.25
    #: Where one does: an idle worker still claims this often, in case a wake-up was lost
    #: (None: ``settings.job_wake_fallback_s``).
    fallback_s: float | None = None
    # What every job runs with: the settings the service started with (read once, not per job).
    settings: Settings = field(default_factory=get_settings)
    # Set by SIGTERM: finish (or hand back) the current job and leave the loop.
    stopping: threading.Event = field(default_factory=threading.Event)


class _Running:
    """Shared state between a running job, its progress callback and its heartbeat thread."""

    def __init__(self, job_id: str, time_limit_s: float, kind: str = "architecture") -> None:
        self.job_id = job_id
        self.kind = kind
        self.started = time.monotonic()
        self.time_limit_s = time_limit_s
        self.progress = 0.0
        self.stage = "starting"
        self.cancelled = False
        self.lost = False
        self.done = threading.Event()
        #: the progress the last beat stored (a beat comes early once it moved: :func:`_due`)
        self.stored = (0.0, "starting")

    def check(self, fraction: float, stage: str) -> None:
        # to 4 decimals: 0.1 + 0.2 is shown as 0.3, not 0.30000000000000004 (newuser3)
        # the stage to its column's 255 characters (a remedy's re-simulation names both steps)
        self.progress, self.stage = round(max(0.0, min(1.0, fraction)), 4), stage[:255]
        if self.lost:
            raise JobStopped("lost", None)
        if self.cancelled:
            raise JobStopped("cancelled", None)
        if time.monotonic() - self.started > self.time_limit_s:
            raise JobStopped("failed", store.time_limit_problem(self.kind, self.time_limit_s, stage))


#: How often the heartbeat looks whether a job's progress moved: a unit of work done (a seed, a
#: remedy's re-simulation, a share of a log read) is stored within this, not at the next lease
#: renewal up to 2 s later (newuser18 #7: a 1.5 s first seed showed as one jump from 0 to 0.5).
PROGRESS_EVERY_S = 0.25


def _due(running: _Running, since_beat: float, cfg: WorkerConfig) -> bool:
    """Whether ``running`` needs a beat ``since_beat`` seconds after its last: its lease's interval
    has passed, or its progress moved since the last beat stored it."""
    return since_beat >= _beat_every(cfg) or (running.progress, running.stage) != running.stored


def _beat(factory: sessionmaker[Session], cfg: WorkerConfig, running: _Running) -> None:
    """Renew ``running``'s lease once and take in what the store says (lost, cancelled)."""
    running.stored = (running.progress, running.stage)
    try:
        with factory() as session:
            ours, cancel = store.heartbeat(session, job_id=running.job_id, worker_id=cfg.worker_id,
                                           lease_s=cfg.lease_s, progress=running.progress, stage=running.stage)
        running.lost = running.lost or not ours
        running.cancelled = running.cancelled or cancel
    except Exception:  # noqa: BLE001 - a DB hiccup must not kill the job; the next beat retries
        log.exception("heartbeat failed for job %s", running.job_id)


def _beat_every(cfg: WorkerConfig) -> float:
    return min(cfg.lease_s / 3, 2.0)


def _heartbeat(factory: sessionmaker[Session], cfg: WorkerConfig, running: _Running) -> None:
    parent = os.getppid()
    last = time.monotonic()
    while not running.done.wait(min(PROGRESS_EVERY_S, _beat_every(cfg))):
        if os.getppid() != parent:  # our supervisor died: stop, let the lease expire elsewhere
            os._exit(3)
        if _due(running, time.monotonic() - last, cfg):
            last = time.monotonic()
            _beat(factory, cfg, running)


class Heart:
    """One heartbeat thread for all of a worker's jobs, instead of a thread started and joined per
    job (a start and a join are two thread hand-offs on the job's path, about 1-2 ms of latency on
    a busy host). It ticks every ``lease_s / 3`` (at most 2 s) and renews the job running then, so
    a job's first beat comes within one interval of its start rather than exactly one after it,
    well inside the lease either way. A beat that lands after its job finished changes nothing:
    the store renews only a running job of this worker."""

    def __init__(self, factory: sessionmaker[Session], cfg: WorkerConfig) -> None:
        self.factory = factory
        self.cfg = cfg
        self.current: _Running | None = None  # set and cleared by the job's thread only
        self._stop = threading.Event()
        self._parent = os.getppid()
        self._thread = threading.Thread(target=self._loop, name="gradhealth-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(min(PROGRESS_EVERY_S, _beat_every(self.cfg))):
            running = self.current
            if running is None or running.done.is_set():
                continue
            if os.getppid() != self._parent:  # our supervisor died: stop, let the lease expire elsewhere
                os._exit(3)
            if _due(running, time.monotonic() - last, self.cfg):
                last = time.monotonic()
                _beat(self.factory, self.cfg, running)

    def stop(self) -> None:
        """Stop ticking; waits for a beat under way (before the worker disposes of its engine)."""
        self._stop.set()
        self._thread.join(5)


def run_one(factory: sessionmaker[Session], cfg: WorkerConfig, *, reap: bool = True,
            claimed: Any = None, heart: Heart | None = None) -> bool:
    """Claim and run at most one job. Returns whether a job was run. ``reap``: first requeue the
    jobs of workers whose lease ran out (a query and a commit; the loop does it now and then).
    ``claimed``: called once a job is claimed, before it runs. ``heart``: the worker's heartbeat
    thread (None: a thread of its own for this job)."""
    with factory() as session:
        if reap:
            store.reap_expired(session)
        job = store.claim(session, worker_id=cfg.worker_id, lease_s=cfg.lease_s, kinds=tuple(HANDLERS))
        if job is None:
            return False
        if claimed is not None:
            claimed()
        job_id, kind, request, limit = job.id, job.kind, job.request, job.time_limit_s
    global _current
    running = _Running(job_id, limit, kind)
    beat = None if heart is not None else threading.Thread(target=_heartbeat, args=(factory, cfg, running),
                                                           daemon=True)
    status, result, problem = "failed", None, None
    log.info("worker %s runs %s job %s", cfg.worker_id, kind, job_id)
    try:
        _current = running
        if beat is not None:
            beat.start()
        else:
            heart.current = running  # type: ignore[union-attr]  # one of the two is set
        if cfg.stopping.is_set():  # SIGTERM came between the claim and now
            raise GracefulStop
        result = HANDLERS[kind](request, running.check, cfg.settings)
        status = "succeeded"
    except GracefulStop:
        status = "stopped"
    except JobStopped as stop:
        status, problem = stop.status, stop.problem
    except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded on the job, never lost
        to_problem = getattr(exc, "to_problem", None)
        problem = to_problem() if callable(to_problem) else store.problem(
            "job-error", "The check failed", f"{type(exc).__name__}: {exc}", 500)
        if isinstance(exc, GradHealthError) and exc.status < 500:
            # the input's fault, said on the job (a 4xx problem): one line, not an error with a traceback
            log.info("job %s refused its input: %s", job_id, exc)
        else:
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    finally:
        running.done.set()  # from here on SIGTERM only stops the loop: the outcome is recorded
        _current = None
        if heart is not None:
            heart.current = None
        elif beat.is_alive():  # type: ignore[union-attr]  # without a heart, beat is the thread started above
            beat.join()  # type: ignore[union-attr]  # the same thread
    if status == "lost":
        return True  # another worker owns the job now
    if status == "stopped":
        with factory() as session:
            handed = store.requeue_stopped(session, job_id=job_id, worker_id=cfg.worker_id)
            if handed:  # queued again: another worker takes it now, not at its next fallback look
                wakeup.announce(session, job_id, wakeup.QUEUED)
        log.info("worker %s stopping: job %s %s", cfg.worker_id, job_id,
                 "handed back" if handed else "was no longer ours")
        return True
    with factory() as session:
        store.finish(session, job_id=job_id, worker_id=cfg.worker_id, status=status, result=result, error=problem)
    return True


def gpu_bytes_kept() -> int:
    """GPU memory this process's CUDA caching allocator still holds (0 where CUDA was never used:
    torch is not imported for that, and CUDA is not initialised by asking)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return 0
    torch.cuda.empty_cache()  # cached free blocks are not kept memory: only what is still held counts
    return int(sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count())))


#: An idle worker waits in slices this long, so that a stop (SIGTERM, ``stop``, its parent's death)
#: is seen promptly: a signal does not interrupt a wait (PEP 475 resumes it).
_SLICE_S = 0.5


def _idle(wake: wakeup.IdleWait, cfg: WorkerConfig, stop: Any, parent: int, backoff: float) -> float:
    """Wait for work after a claim found none; returns the next back-off. Woken by the channel, the
    worker claims at once; without one (or past the fallback interval) it claims anyway."""
    if not wake.covered:
        # Back off from 10 ms to poll_s, so a fresh job waits milliseconds, not a full poll.
        backoff = min(cfg.poll_s, max(0.01, backoff * 2))
        wake.wait(backoff)
        return backoff
    fallback = cfg.fallback_s if cfg.fallback_s is not None else cfg.settings.job_wake_fallback_s
    deadline = time.monotonic() + fallback
    while (left := deadline - time.monotonic()) > 0:
        if wake.wait(min(_SLICE_S, left)):
            break
        if cfg.stopping.is_set() or (stop is not None and stop.is_set()) or os.getppid() != parent:
            break
    return 0.0


def preload_simulation(settings: Settings) -> float:
    """Import what an architecture or model check simulates with (torch, the model builders),
    after setting the CPU threads as a job would; returns the seconds it took.

    A worker does this when it first goes idle, so the first check it claims does not pay for the
    import: with two workers, the second's first job took 2 s longer than every later one."""
    started = time.perf_counter()
    from gradhealth.devices import use_simulation_threads

    use_simulation_threads(settings.threads)  # before torch loads: it reads OMP_NUM_THREADS once
    import gradhealth.analysis.check  # noqa: F401 - imported for its side effect: loaded once
    import gradhealth.analysis.module_check  # noqa: F401
    return time.perf_counter() - started


def worker_loop(cfg: WorkerConfig, stop: Any = None, channel: wakeup.WorkerEnds | None = None) -> None:
    """Run jobs until ``stop`` (anything with ``is_set()``) or ``cfg.stopping`` is set, or until
    ``settings.worker_max_jobs`` jobs have run (the supervisor then starts a fresh process).

    Idle, the worker waits to be woken (``channel`` from its supervisor, and ``LISTEN`` on
    PostgreSQL); without either it polls with a short back-off."""
    engine = make_engine(cfg.database_url)
    factory = make_sessionmaker(engine)
    parent = os.getppid()
    wake = wakeup.IdleWait(cfg.database_url, channel)
    reporter = wakeup.report_finishes(channel) if channel is not None else None
    heart = Heart(factory, cfg)
    idle = 0.0
    jobs = 0
    # Reaping is for workers lost elsewhere (the supervisor releases its own at once): a few times
    # per lease is soon enough, and keeps two statements and a commit off each job's path.
    reap_every = min(cfg.lease_s / 3, 5.0)
    last_reap = float("-inf")
    max_jobs = cfg.settings.worker_max_jobs
    preloaded = False
    while (stop is None or not stop.is_set()) and not cfg.stopping.is_set():
        try:
            reap = time.monotonic() - last_reap >= reap_every
            ran = run_one(factory, cfg, reap=reap, claimed=wake.claimed, heart=heart)
            if reap:
                last_reap = time.monotonic()
        except GracefulStop:  # SIGTERM outside a job's run (it was set up or recorded): just leave
            break
        except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable; keep serving
            log.exception("worker %s: claim failed", cfg.worker_id)
            ran = False
        if ran:
            jobs += 1
            if max_jobs and jobs >= max_jobs:
                log.info("worker %s ran %d job(s); exiting to be replaced", cfg.worker_id, jobs)
                break
            kept = gpu_bytes_kept()
            if cfg.settings.worker_max_gpu_bytes and kept > cfg.settings.worker_max_gpu_bytes:
                log.info("worker %s still holds %d bytes of GPU memory after a job; exiting to be replaced",
                         cfg.worker_id, kept)
                break
            idle = 0.0  # look again at once: work tends to come in bursts
            continue
        if os.getppid() != parent:
            break
        if not preloaded and cfg.settings.worker_preload:
            preloaded = True
            log.info("worker %s: simulation modules loaded in %.2f s", cfg.worker_id,
                     preload_simulation(cfg.settings))
            continue  # a job may have come meanwhile
        idle = _idle(wake, cfg, stop, parent, idle)
    heart.stop()
    wake.close()
    if reporter is not None:
        wakeup.unsubscribe(reporter)
    engine.dispose()


def worker_main(database_url: str, worker_id: str, lease_s: float, gpu: int | None, stop: Any = None,
                threads: int | None = None, settings: dict[str, Any] | None = None,
                channel: wakeup.WorkerEnds | None = None) -> None:
    """Entry point of a spawned worker process: pin its GPU and its CPU threads before torch is
    imported (several workers on one host must not each take every core), then loop.

    ``settings`` is the supervisor's :class:`Settings` as a plain dict (it crosses the spawn
    boundary by pickling); None reads the environment, as a standalone worker does. ``channel``:
    this worker's ends of the local wake-up channel (see :mod:`gradhealth.jobs.wakeup`)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    logging.basicConfig(level=os.environ.get("GRADHEALTH_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = Settings(**settings) if settings is not None else get_settings()
    cfg = WorkerConfig(database_url=database_url, worker_id=worker_id, lease_s=lease_s, settings=config)
    # A graceful stop (the supervisor's terminate, or Kubernetes) hands a running job back.
    signal.signal(signal.SIGTERM, _on_sigterm(cfg.stopping))
    worker_loop(cfg, stop, channel)
