"""Load test: N concurrent clients of mixed requests against a real service for a bounded time.

Each client (a thread with its own connection) picks, request after request, one of:

* ``spec``: ``POST /v1/checks/architecture?wait=W`` with a small spec (seeds 1; the service it
  starts runs with ``GRADHEALTH_VERIFY_REMEDIES=false``), answered when the job is done;
* ``logs``: ``POST /v1/checks/logs?wait=W`` with a small native CSV log as the raw body;
* ``read``: ``GET /v1/jobs/{id}`` of a job some client submitted;
* ``list``: ``GET /v1/jobs?limit=20``;

with weights 3:2:4:1 (``--mix``). It reports, per kind, the requests, p50 and p99 latency and the
errors by status (5xx counted apart; a transport error counts as its exception name), jobs that
were not done within ``?wait`` or did not succeed, and the resident memory (RSS) of the API
process at the start (after a warm-up) and at the end, with its peak, and of its worker processes.

By default it starts the service itself: ``gradhealth serve`` on a free port of 127.0.0.1 with a
temporary SQLite database and upload folder, ``--workers`` worker processes, the rate limit raised
so that it is not what is measured; the service is stopped at the end, also on error or Ctrl-C.
``--server URL`` targets a running service instead (loopback addresses only; ``--pid`` names its
API process for the RSS figures, and ``--api-key`` its key). Run it from the repository root::

    .venv/bin/python bench/load.py                      # 8 clients for 60 s
    .venv/bin/python bench/load.py --clients 4 --duration 10
    .venv/bin/python bench/load.py --server http://127.0.0.1:8000 --pid 12345 --json out.json

No request is issued after ``--duration``; requests in flight then finish (at most ``?wait``).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
KINDS = ("spec", "logs", "read", "list")
STOPPING = threading.Event()  # set on SIGINT/SIGTERM: clients issue no further request


def small_spec(rng: random.Random) -> dict[str, Any]:
    """A healthy spec of a few milliseconds of simulation; widths vary so the bodies differ."""
    width = rng.choice((16, 24, 32))
    return {
        "name": f"load {width}",
        "input": {"shape": [width]},
        "batch_size": 16,
        "seeds": 1,
        "layers": [
            {
                "type": "linear",
                "out_features": width,
                "activation": "tanh",
                "init": "xavier_normal",
                "repeat": 3,
            },
            {"type": "linear", "out_features": 4},
        ],
    }


def small_log(rng: random.Random) -> bytes:
    """A native CSV log of 200 steps with a loss and a steady gradient norm."""
    scale = rng.uniform(0.5, 2.0)
    rows = "".join(f"{i},{scale / (i + 1):.6g},{0.5 * scale:.6g}\n" for i in range(200))
    return ("step,loss,grad_norm\n" + rows).encode()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Tally:
    """What one kind of request got, over all clients."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0  # a check answered 202: not done within ?wait
    failed_jobs: int = 0  # a check answered 200 whose job did not succeed


@dataclass
class Run:
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    job_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# --- memory ------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def children_rss(pid: int) -> int:
    """Summed RSS of the processes whose parent is ``pid`` (the API's worker processes)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:  # field 4: the parent pid
            total += rss_bytes(int(stat.parent.name)) or 0
    return total


class RssMonitor:
    """Samples the API process's RSS once a second, for its peak."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, rss_bytes(self.pid) or 0)  # type: ignore[arg-type]

    def __enter__(self) -> RssMonitor:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


# --- the service -------------------------------------------------------------------------------


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise SystemExit(f"load: {url} is not a loopback address; this script only loads 127.0.0.1")
    return url.rstrip("/")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def started_service(workers: int) -> Iterator[tuple[str, int]]:
    """``gradhealth serve`` on a free loopback port with a temporary SQLite database; yields (base
    URL, pid of the API process). Stopped at the end, its worker processes with it."""
    exe = Path(sys.executable).with_name("gradhealth")
    if not exe.exists():
        raise SystemExit(f"load: {exe} not found: run with the project's virtualenv Python")
    with tempfile.TemporaryDirectory(prefix="gradhealth-load-") as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GRADHEALTH_") and k != "DATABASE_URL"
        }
        env.update(
            {
                "GRADHEALTH_DATABASE_URL": f"sqlite:///{tmp}/load.db",
                "GRADHEALTH_UPLOAD_DIR": f"{tmp}/uploads",
                "GRADHEALTH_VERIFY_REMEDIES": "false",
                "GRADHEALTH_RATE_LIMIT_PER_MINUTE": "1000000",
                "GRADHEALTH_LOG_LEVEL": "WARNING",
                "NO_PROXY": HOST,
            }
        )
        port = free_port()
        log_path = Path(tmp) / "service.log"
        cmd = [str(exe), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
        with open(log_path, "wb") as log:
            # A session of its own: the server and its worker processes are stopped together.
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            base = f"http://{HOST}:{port}"
            wait_ready(base, proc, log_path)
            yield base, proc.pid
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=base, trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the service exited with code {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"the service was not ready after {READY_TIMEOUT_S:.0f} s")


# --- the clients -------------------------------------------------------------------------------


def one_request(
    client: httpx.Client, kind: str, rng: random.Random, run: Run, wait_s: float
) -> None:
    """Send one request of ``kind`` and record its latency and outcome."""
    with run.lock:
        known = rng.choice(run.job_ids) if run.job_ids else None
    if kind == "read" and known is None:
        kind = "list"
    tally = run.tallies[kind]
    started = time.perf_counter()
    try:
        if kind == "spec":
            r = client.post(f"/v1/checks/architecture?wait={wait_s:g}", json=small_spec(rng))
        elif kind == "logs":
            r = client.post(
                f"/v1/checks/logs?wait={wait_s:g}&filename=run.csv",
                content=small_log(rng),
                headers={"Content-Type": "application/octet-stream"},
            )
        elif kind == "read":
            r = client.get(f"/v1/jobs/{known}")
        else:
            r = client.get("/v1/jobs", params={"limit": 20})
        r.read()
        status = str(r.status_code)
    except httpx.HTTPError as exc:
        r, status = None, type(exc).__name__
    elapsed = time.perf_counter() - started
    with run.lock:
        tally.latencies.append(elapsed)
        tally.statuses[status] += 1
        if r is not None and kind in ("spec", "logs") and r.status_code in (200, 202):
            job = r.json()
            run.job_ids.append(job["id"])
            if r.status_code == 202:
                tally.unfinished += 1
            elif job["status"] != "succeeded":
                tally.failed_jobs += 1


def client_loop(
    base: str,
    headers: dict[str, str],
    seed: int,
    weights: dict[str, int],
    deadline: float,
    run: Run,
    wait_s: float,
) -> None:
    rng = random.Random(seed)
    kinds, cum = list(weights), list(weights.values())
    with httpx.Client(
        base_url=base, headers=headers, trust_env=False, timeout=wait_s + 30
    ) as client:
        while time.monotonic() < deadline and not STOPPING.is_set():
            one_request(client, rng.choices(kinds, cum)[0], rng, run, wait_s)


def parse_mix(text: str) -> dict[str, int]:
    weights = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in KINDS or not weight.isdigit():
            raise argparse.ArgumentTypeError(
                f"--mix wants kind=weight for kinds {KINDS}, got {part!r}"
            )
        weights[name] = int(weight)
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("--mix: every weight is 0")
    return weights


# --- report ------------------------------------------------------------------------------------


def summary(run: Run, wall: float) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_s": round(wall, 2), "kinds": {}}
    for kind, t in run.tallies.items():
        if not t.latencies:
            continue
        out["kinds"][kind] = {
            "requests": len(t.latencies),
            "p50_ms": round(percentile(t.latencies, 50) * 1000, 1),
            "p99_ms": round(percentile(t.latencies, 99) * 1000, 1),
            "statuses": dict(t.statuses),
            "unfinished_within_wait": t.unfinished,
            "failed_jobs": t.failed_jobs,
        }
    everything = [x for t in run.tallies.values() for x in t.latencies]
    statuses = sum((t.statuses for t in run.tallies.values()), Counter())
    out["requests"] = len(everything)
    out["requests_per_s"] = round(len(everything) / wall, 1) if wall else 0.0
    out["p50_ms"] = round(percentile(everything, 50) * 1000, 1) if everything else None
    out["p99_ms"] = round(percentile(everything, 99) * 1000, 1) if everything else None
    out["errors"] = {s: n for s, n in statuses.items() if not (s.isdigit() and int(s) < 400)}
    out["5xx"] = sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500)
    return out


def print_report(result: dict[str, Any]) -> None:
    print(f"{'kind':6s} {'requests':>9s} {'p50':>10s} {'p99':>10s}  statuses")
    for kind, k in result["kinds"].items():
        extra = []
        if k["unfinished_within_wait"]:
            extra.append(f"{k['unfinished_within_wait']} not done within ?wait")
        if k["failed_jobs"]:
            extra.append(f"{k['failed_jobs']} jobs not succeeded")
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(k["statuses"].items()))
        print(
            f"{kind:6s} {k['requests']:9d} {k['p50_ms']:8.1f}ms {k['p99_ms']:8.1f}ms  {statuses}"
            + (f"  ({'; '.join(extra)})" if extra else "")
        )
    p50, p99 = result["p50_ms"] or 0, result["p99_ms"] or 0
    print(
        f"all    {result['requests']:9d} {p50:8.1f}ms {p99:8.1f}ms"
        f"  {result['requests_per_s']} requests/s over {result['wall_s']} s"
    )
    print(f"errors: {result['errors'] or 'none'}; 5xx: {result['5xx']}")
    r = result.get("rss")
    if r:
        growth = (
            f" ({(r['end'] - r['start']) / r['start']:+.1%})" if r["start"] and r["end"] else ""
        )
        print(
            f"API RSS: before warm-up {mib(r['initial'])}, start {mib(r['start'])}, "
            f"end {mib(r['end'])}{growth}, peak {mib(r['peak'])}"
        )
        print(f"its worker processes: start {mib(r['workers_start'])}, end {mib(r['workers_end'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds during which requests are sent"
    )
    parser.add_argument("--wait", type=float, default=30.0, help="?wait= of the checks, in seconds")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("spec=3,logs=2,read=4,list=1"))
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes of the service it starts"
    )
    parser.add_argument(
        "--server", help="a running service (loopback only) instead of starting one"
    )
    parser.add_argument(
        "--pid", type=int, help="with --server: its API process, for the RSS figures"
    )
    parser.add_argument("--api-key", default=os.environ.get("GRADHEALTH_API_KEY"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    def _terminate(signum: int, _frame: object) -> None:
        STOPPING.set()

    signal.signal(signal.SIGTERM, _terminate)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    with contextlib.ExitStack() as stack:
        if args.server:
            base, pid = loopback_only(args.server), args.pid
        else:
            base, pid = stack.enter_context(started_service(args.workers))
        initial = rss_bytes(pid) if pid else None
        warm = Run()  # one of each kind first: imports and caches are not what is measured
        with httpx.Client(
            base_url=base, headers=headers, trust_env=False, timeout=args.wait + 30
        ) as c:
            for kind in KINDS:
                one_request(c, kind, random.Random(args.seed), warm, args.wait)
        run = Run(job_ids=list(warm.job_ids))
        start_rss = rss_bytes(pid) if pid else None
        workers_start = children_rss(pid) if pid else None
        load_before = os.getloadavg()
        started = time.monotonic()
        deadline = started + args.duration
        with RssMonitor(pid) as monitor:
            threads = [
                threading.Thread(
                    target=client_loop,
                    args=(base, headers, args.seed + i + 1, args.mix, deadline, run, args.wait),
                )
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    t.join()
            except KeyboardInterrupt:
                STOPPING.set()
                for t in threads:
                    t.join()
        wall = time.monotonic() - started
        result = summary(run, wall)
        result["clients"] = args.clients
        result["duration_s"] = args.duration
        result["warm_up_statuses"] = {
            k: dict(t.statuses) for k, t in warm.tallies.items() if t.statuses
        }
        if pid:
            result["rss"] = {
                "initial": initial,
                "start": start_rss,
                "end": rss_bytes(pid),
                "peak": max(monitor.peak, start_rss or 0),
                "workers_start": workers_start,
                "workers_end": children_rss(pid),
            }
        result["machine"] = {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
        }
    print_report(result)
    print(f"machine: {result['machine']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["5xx"] else 0


if __name__ == "__main__":
    sys.exit(main())
