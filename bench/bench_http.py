"""Cost of a check through the HTTP service against the same check in-process.

Starts a real service as a subprocess (``gradhealth serve`` on a free port of 127.0.0.1, ``--workers W``
worker processes) on each store asked for (``--store``: SQLite in a temporary directory, the embedded
default, whose workers are woken through a local channel; PostgreSQL, where workers and the API
``LISTEN``: a fresh database on ``--postgres-url``, or on a throw-away cluster started with the
tests' helper, tests/pg.py), waits for ``/readyz``, then measures:

* in-process: :func:`gradhealth.analysis.check.run_architecture_check` called directly, one after
  another (median and p99 latency; its rate is the in-process requests per second);
* http ?wait: ``POST /v1/checks/architecture?wait=30`` from one client, one after another (median and
  p99 latency, and where the time goes: queued until a worker claimed the job, run in the worker,
  and the rest: HTTP, validation, the database and the ``?wait`` hand-back);
* throughput: ``--concurrency C`` clients sending ``--requests N`` requests between them as fast as
  they are answered (requests per second against the in-process rate).

The overhead is the HTTP figure less the in-process one, at the median and at p99; the targets of
issue 12 (p50 <= 5 ms, p99 <= 25 ms, throughput >= 0.8x in-process) are printed with them.

The spec is tiny so that the HTTP and job machinery is what is measured, not the simulation:

* ``relu4`` (default): 4 ReLU layers of width 32 (He init), seeds 1, batch 16. Its run time is
  dominated by the mean-field theory step (the critical-init search for the ReLU stretch), not by
  PyTorch;
* ``mixed4``: the same with alternating ReLU/tanh layers, so there is no stretch of one activation
  and no theory step: the check itself takes a few milliseconds.

Both specs are healthy, so no remedy is proposed; the service runs with
``GRADHEALTH_VERIFY_REMEDIES=false`` and the in-process check with ``verify=False`` all the same, so
the two do exactly the same work. The rate limit is raised for the run so that it is not measured.

The script only talks to 127.0.0.1, sends at most ``--requests`` requests per phase (plus 3 warm-up
requests) and stops issuing new ones after ``--max-seconds``. The service is stopped at the end,
also on error or Ctrl-C. Run it from the repository root::

    .venv/bin/python bench/bench_http.py
    .venv/bin/python bench/bench_http.py --requests 20 --concurrency 2 --spec mixed4
    .venv/bin/python bench/bench_http.py --workers 2 --threads 1
    .venv/bin/python bench/bench_http.py --store postgresql --postgres-url postgresql://u@host/db

On a CPU shared with other work the figures swing; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
WARMUP = 3
WAIT_S = 30  # ?wait=30: the service answers when the job is done, or after 30 s with 202
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
#: Set on SIGINT/SIGTERM or an error: client threads send no further request.
STOPPING = threading.Event()
#: Issue 12's targets: ?wait overhead over in-process at the median and p99, and 4-client throughput.
TARGET_P50_S, TARGET_P99_S, TARGET_RATIO = 0.005, 0.025, 0.8


def _linear(activation: str) -> dict[str, Any]:
    init = "kaiming_normal" if activation == "relu" else "xavier_normal"
    return {"type": "linear", "out_features": 32, "activation": activation, "init": init}


SPECS: dict[str, dict[str, Any]] = {
    "relu4": {
        "name": "bench http: 4 relu layers, width 32",
        "input": {"shape": [32]}, "batch_size": 16, "seeds": 1, "loss": "mse",
        "layers": [{**_linear("relu"), "repeat": 4}, {"type": "linear", "out_features": 8}],
    },
    "mixed4": {
        "name": "bench http: relu/tanh alternating, width 32",
        "input": {"shape": [32]}, "batch_size": 16, "seeds": 1, "loss": "mse",
        "layers": [_linear("relu"), _linear("tanh"), _linear("relu"), _linear("tanh"),
                   {"type": "linear", "out_features": 8}],
    },
}


# --- figures -------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 50 samples, p99 is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)  # seconds, per request
    queued: list[float] = field(default_factory=list)  # created -> started (server clock)
    running: list[float] = field(default_factory=list)  # started -> finished
    rest: list[float] = field(default_factory=list)  # the client's latency less the two above
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# --- the service ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def service_env(database_url: str, threads: int | None) -> dict[str, str]:
    """The environment without any GRADHEALTH_* of the caller's, plus the bench's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADHEALTH_") and k != "DATABASE_URL"}
    env.update({
        "GRADHEALTH_DATABASE_URL": database_url,
        "GRADHEALTH_VERIFY_REMEDIES": "false",
        "GRADHEALTH_RATE_LIMIT_PER_MINUTE": "1000000",
        "GRADHEALTH_LOG_LEVEL": "WARNING",
        "NO_PROXY": HOST,
    })
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


@contextlib.contextmanager
def database(store: str, postgres_url: str | None) -> Iterator[str]:
    """A fresh, empty database on ``store``; yields its URL and removes it afterwards."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gradhealth-bench-db-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/pg.py: the clusters' helper
    from tests import pg

    server = None
    if postgres_url is None:
        bindir = pg.find_bindir()
        if bindir is None:
            raise SystemExit("bench_http: no PostgreSQL binaries; pass --postgres-url")
        server = pg.PostgresServer(bindir).start()
        postgres_url = server.url
    url = pg.create_database(postgres_url)
    try:
        yield url
    finally:
        pg.drop_database(postgres_url, url)
        if server is not None:
            server.stop()


@contextlib.contextmanager
def running_service(workers: int, threads: int | None, database_url: str) -> Iterator[tuple[str, int]]:
    """A ``gradhealth serve`` subprocess on a free port; yields (base URL, its pid). Always stopped."""
    exe = Path(sys.executable).with_name("gradhealth")
    if not exe.exists():
        raise SystemExit(f"bench_http: {exe} not found: run with the project's virtualenv Python")
    with tempfile.TemporaryDirectory(prefix="gradhealth-bench-") as tmp:
        port = free_port()
        log_path = Path(tmp) / "service.log"
        env = service_env(database_url, threads)
        cmd = [str(exe), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
        with open(log_path, "wb") as log:
            # A session of its own, so the uvicorn process and its worker processes can be stopped
            # together (and only they) if a graceful stop does not finish.
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://{HOST}:{port}"
            wait_ready(base, proc, log_path)
            yield base, proc.pid
        finally:
            stop(proc)


def wait_ready(base: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    with httpx.Client(base_url=base, trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with code {proc.returncode}:\n{_tail(log_path)}")
            try:
                r = client.get("/readyz")
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
    raise RuntimeError(f"the service was not ready after {READY_TIMEOUT_S:.0f} s ({last}):\n{_tail(log_path)}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (uvicorn shuts down and its supervisor stops the workers); SIGKILL the group if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print("bench_http: the service did not stop in time; killing it", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # our own session: the server and any worker left over
    proc.wait()


def cpu_seconds(session: int) -> dict[str, float]:
    """CPU seconds (user + system) of each process of ``session`` by role (Linux /proc; else empty)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[3]) != session:  # field 6 of stat: the session id
            continue
        pid = int(stat.parent.name)
        role = "api" if pid == session else "workers"
        out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_line(before: dict[str, float], after: dict[str, float], requests: int) -> str:
    if not after or not requests:
        return ""
    parts = [f"{role} {(after[role] - before.get(role, 0.0)) / requests * 1000:.1f} ms"
             for role in sorted(after)]
    return "             service CPU per request: " + ", ".join(parts)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the phases ----------------------------------------------------------------------------------

def in_process(spec: dict[str, Any], n: int, deadline: float) -> Timings:
    from gradhealth.analysis.check import CheckOptions, run_architecture_check
    from gradhealth.analysis.plan import Limits
    from gradhealth.analysis.thresholds import Thresholds

    options = CheckOptions(Thresholds(), Limits(), verify=False)
    for _ in range(WARMUP):
        run_architecture_check(spec, options)
    out = Timings()
    started = time.perf_counter()
    for _ in range(n):
        if time.monotonic() > deadline or STOPPING.is_set():
            break
        t0 = time.perf_counter()
        doc = run_architecture_check(spec, options)
        out.latencies.append(time.perf_counter() - t0)
        if doc.status != "healthy":
            out.errors.append(f"in-process check is {doc.status}")
    out.wall = time.perf_counter() - started
    return out


def one_request(client: httpx.Client, spec: dict[str, Any], out: Timings, lock: threading.Lock) -> None:
    t0 = time.perf_counter()
    try:
        r = client.post("/v1/checks/architecture", params={"wait": WAIT_S}, json=spec)
    except httpx.HTTPError as exc:
        with lock:
            out.errors.append(type(exc).__name__)
        return
    elapsed = time.perf_counter() - t0
    body = r.json() if r.headers.get("content-type", "").startswith("application/") else {}
    with lock:
        if r.status_code != 200 or body.get("status") != "succeeded":
            out.errors.append(f"{r.status_code} {body.get('status') or r.text[:120]}")
            return
        out.latencies.append(elapsed)
        created, began, ended = (_parse_time(body.get(k)) for k in ("created_at", "started_at", "finished_at"))
        if created and began and ended:
            queued, ran = (began - created).total_seconds(), (ended - began).total_seconds()
            out.queued.append(queued)
            out.running.append(ran)
            out.rest.append(elapsed - queued - ran)


def over_http(base: str, spec: dict[str, Any], n: int, concurrency: int, deadline: float) -> Timings:
    """``n`` requests from ``concurrency`` clients, each sending its next request when answered."""
    out, lock = Timings(), threading.Lock()
    remaining = iter(range(n))

    def client_loop() -> None:
        with httpx.Client(base_url=base, trust_env=False, timeout=WAIT_S + 30) as client:
            while time.monotonic() < deadline and not STOPPING.is_set():
                with lock:
                    if next(remaining, None) is None:
                        return
                one_request(client, spec, out, lock)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        try:
            for future in [pool.submit(client_loop) for _ in range(concurrency)]:
                future.result()
        except BaseException:
            STOPPING.set()  # let the other clients finish their request in flight and stop
            raise
    out.wall = time.perf_counter() - started
    return out


def warm_up(base: str, spec: dict[str, Any], session: int) -> None:
    """The first job of a worker imports torch, and an idle worker then loads the rest of the check's
    modules (``GRADHEALTH_WORKER_PRELOAD``): keep both out of the figures by waiting, after the
    warm-up requests, until the service's processes are idle."""
    out = over_http(base, spec, WARMUP, 1, time.monotonic() + READY_TIMEOUT_S)
    if out.errors:
        raise RuntimeError(f"warm-up requests failed: {out.errors}")
    settle(session)


def settle(session: int, quiet_s: float = 0.02, window_s: float = 0.25) -> None:
    """Wait (up to READY_TIMEOUT_S) until ``session``'s processes use under ``quiet_s`` of CPU
    in two windows of ``window_s`` running: a preload still under way would be counted as the
    first requests' CPU (17-20 ms a request instead of 6)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    quiet = 0
    before = cpu_seconds(session)
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(window_s)
        after = cpu_seconds(session)
        quiet = quiet + 1 if sum(after.values()) - sum(before.values()) < quiet_s else 0
        before = after


# --- main ----------------------------------------------------------------------------------------

def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def breakdown(t: Timings) -> str:
    if not t.queued:
        return ""
    q, r, rest = (statistics.median(v) for v in (t.queued, t.running, t.rest))
    return (f"             medians: queued {ms(q)}, run in worker {ms(r)}, the rest "
            f"(HTTP, validation, database, ?wait hand-back) {ms(rest)}")


def report(label: str, t: Timings) -> None:
    if t.errors:
        shown = "; ".join(sorted(set(t.errors))[:5])
        print(f"{label:<12} {len(t.errors)} failed request(s): {shown}")


def _terminate(signum: int, _frame: object) -> None:
    STOPPING.set()
    raise KeyboardInterrupt(f"signal {signum}")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def measure(store: str, args: argparse.Namespace, spec: dict[str, Any]) -> bool:
    """One store's figures, printed; whether every request succeeded."""
    print(f"\n== store {store}; before: {load()}")
    with database(store, args.postgres_url) as url, running_service(args.workers, args.threads, url) as (base, pid):
        warm_up(base, spec, pid)
        local = in_process(spec, args.requests, time.monotonic() + args.max_seconds)
        cpu0 = cpu_seconds(pid)
        seq = over_http(base, spec, args.requests, 1, time.monotonic() + args.max_seconds)
        cpu1 = cpu_seconds(pid)
        par = over_http(base, spec, args.requests, args.concurrency, time.monotonic() + args.max_seconds)
        cpu2 = cpu_seconds(pid)

    for label, t in (("in-process", local), ("http ?wait", seq), ("throughput", par)):
        report(label, t)
        if not t.latencies:
            print(f"{label}: no successful request")
            return False
    local_rps = len(local.latencies) / local.wall
    http_rps = len(par.latencies) / par.wall
    over50, over99, ratio = seq.median - local.median, seq.p99 - local.p99, http_rps / local_rps
    print(f"in-process   median {ms(local.median)}  p99 {ms(local.p99)}   (n={len(local.latencies)})")
    print(f"http ?wait   median {ms(seq.median)}  p99 {ms(seq.p99)}   ratio {seq.median / local.median:.1f}x"
          f"   (n={len(seq.latencies)})")
    print(f"             overhead: median {ms(over50)} (target <= {ms(TARGET_P50_S)}: {verdict(over50 <= TARGET_P50_S)}),"
          f" p99 {ms(over99)} (target <= {ms(TARGET_P99_S)}: {verdict(over99 <= TARGET_P99_S)})")
    print(breakdown(seq))
    print(cpu_line(cpu0, cpu1, len(seq.latencies) + len(seq.errors)))
    print(f"throughput   C={args.concurrency}  requests {len(par.latencies)}  rps {http_rps:.1f}   "
          f"(in-process rps {local_rps:.1f}, ratio {ratio:.2f}; target >= {TARGET_RATIO}: "
          f"{verdict(ratio >= TARGET_RATIO)})")
    print(f"             under load: median {ms(par.median)}  p99 {ms(par.p99)}")
    print(breakdown(par))
    print(cpu_line(cpu1, cpu2, len(par.latencies) + len(par.errors)))
    print(f"after: {load()}")
    return not (local.errors or seq.errors or par.errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per phase (default 50)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients for throughput (default 4)")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes (default 1)")
    parser.add_argument("--spec", choices=sorted(SPECS), default="relu4", help="the check to run (default relu4)")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both",
                        help="the job store(s) to measure (default both)")
    parser.add_argument("--postgres-url", default=None,
                        help="a PostgreSQL server to create the bench's database on (default: a throw-away "
                             "cluster from tests/pg.py)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in-process and OMP_NUM_THREADS in the service (default: torch's)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="stop issuing requests in a phase after this long (default 300)")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    spec = SPECS[args.spec]
    # SIGTERM (and SIGINT, even where a shell started us with it ignored) unwinds through the
    # `finally` that stops the service, which runs in a session of its own and would outlive us.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _terminate)
    print(f"spec {args.spec} ({spec['name']}); GRADHEALTH_VERIFY_REMEDIES=false (healthy spec: no remedy to "
          f"verify); service workers {args.workers}; torch threads {args.threads or 'default'}")
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    ok = True
    for store in stores:
        ok = measure(store, args, spec) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench_http: interrupted; the service was stopped", file=sys.stderr)
        sys.exit(130)
