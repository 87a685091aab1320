"""A small HTTP client for a running Gradient Health service (``gradhealth check --server``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from gradhealth.errors import GradHealthError


class RemoteError(GradHealthError):
    """The service answered with a problem document."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", problem)))
        self.status = int(problem.get("status", 500))
        self.title = str(problem.get("title", "Error"))
        self.code = "remote"
        self._problem = problem

    def to_problem(self) -> dict[str, object]:
        return dict(self._problem)


class Client:
    """Submit checks and wait for their results."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                raise RemoteError(response.json())
            except ValueError:
                raise RemoteError({"status": response.status_code, "title": "HTTP error",
                                   "detail": response.text[:500]}) from None
        return response.json()

    def check_architecture(self, spec: dict[str, Any], *, wait_s: float = 3600.0, poll_s: float = 0.5,
                           idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit ``spec`` and return the finished job (raises RemoteError for a failed one)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        job = self._json(self.http.post("/v1/checks/architecture", params={"wait": min(wait_s, 30)},
                                        json=spec, headers=headers, timeout=self._waiting(wait_s)))
        return self._finish(job, wait_s, poll_s)

    def check_logs(self, path: Path, *, format: str | None = None, wait_s: float = 3600.0,
                   poll_s: float = 0.5) -> dict[str, Any]:
        """Upload a log file (or archive) and return the finished job."""
        params: dict[str, Any] = {"wait": min(wait_s, 30), "filename": path.name}
        if format:
            params["format"] = format
        with path.open("rb") as f:
            job = self._json(self.http.post("/v1/checks/logs", params=params, files={"file": (path.name, f)},
                                            timeout=self._waiting(wait_s)))
        return self._finish(job, wait_s, poll_s)

    def _waiting(self, wait_s: float) -> httpx.Timeout:
        """The client's timeout plus the ?wait the server may spend before it answers (a read
        timeout equal to the wait itself raced the server's answer on a busy machine)."""
        base = self.http.timeout
        return httpx.Timeout(base.connect, read=(base.read or 0) + min(wait_s, 30),
                             write=base.write, pool=base.pool)

    def _finish(self, job: dict[str, Any], wait_s: float, poll_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(poll_s)
            job = self._json(self.http.get(f"/v1/jobs/{job['id']}"))
        if job["status"] == "failed":
            raise RemoteError(job.get("error") or {"detail": "the job failed", "status": 500})
        if job["status"] != "succeeded":
            raise RemoteError({"status": 504, "title": "Timed out", "detail": f"job {job['id']} is {job['status']}"})
        return job

    def close(self) -> None:
        self.http.close()
