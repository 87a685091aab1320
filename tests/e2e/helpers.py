"""Builders for the end-to-end tests: real processes, `gradhealth serve` under uvicorn on localhost,
and standalone `gradhealth worker`s."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

GRADHEALTH = [sys.executable, "-m", "gradhealth.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADHEALTH_")}
    env.update({"GRADHEALTH_DATABASE_URL": url, "GRADHEALTH_LOG_LEVEL": "WARNING", **extra})
    return env


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_ready(process: subprocess.Popen, client: httpx.Client, log: Path, timeout: float = 60) -> None:
    """Until /readyz answers 200; fails with the server's log if it exits or never gets ready."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "service did not become ready"
        time.sleep(0.2)


def start_server(env: dict[str, str], log: Path, port: int) -> subprocess.Popen:
    """`gradhealth serve --port PORT` in its own process group, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([*GRADHEALTH, "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def serve(url: str, log: Path, **env: str) -> Iterator[httpx.Client]:
    """`gradhealth serve` on a free port; yields a client once /readyz says ready."""
    port = free_port()
    process = start_server(env_for(url, **env), log, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_ready(process, client, log)
        yield client
    finally:
        client.close()
        stop(process)


def start_worker(url: str, log: Path, **env: str) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([*GRADHEALTH, "worker", "--processes", "1"], env=env_for(url, **env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_job(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")
