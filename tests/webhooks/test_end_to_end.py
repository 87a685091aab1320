"""The whole path: a log uploaded through the API, checked by a real worker process, which records
the job's end and its event in one transaction; the API process's deliverer sends it, and the
receiver's own HMAC computation accepts it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from tests.api.helpers import Api, running_app
from tests.webhooks.helpers import ALICE, key_settings
from tests.webhooks.receiver import receiver, verify, wait_delivery


def _log_with_a_nan(n: int = 60, nan_at: int = 40) -> bytes:
    rows = []
    for step in range(n):
        grad = float("nan") if step >= nan_at else 1.0 + 0.01 * math.sin(step)  # never back: diverged
        rows += [{"step": step, "metric": "loss", "value": 2.0 * math.exp(-step / 30) + 0.2},
                 {"step": step, "metric": "grad_norm", "value": grad}]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def worker_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(key_settings(tmp_path_factory.mktemp("e2e"), workers=1)) as client:
        yield client


def test_a_checked_log_is_announced_signed(worker_api: Api) -> None:
    with receiver() as rx:
        hook = worker_api.post("/v1/webhooks", json={"url": rx.url, "events": ["job.finished"]},
                               headers=ALICE).json()
        r = worker_api.post("/v1/checks/logs?wait=60", files={"file": ("run.jsonl", _log_with_a_nan())},
                            headers=ALICE)
        assert r.status_code == 200, r.text
        job = r.json()
        (got,) = rx.wait_for(1, timeout=30)
        delivery = wait_delivery(worker_api, hook["id"], "delivered", ALICE)
    assert verify(hook["secret"], got)
    data = json.loads(got.body)["data"]
    assert data["job_id"] == job["id"] and data["kind"] == "logs" and data["status"] == "succeeded"
    assert data["result_status"] == job["result"]["status"] == "unhealthy"
    assert data["finding_codes"] == [f["code"] for f in job["result"]["findings"]]
    assert "nonfinite" in data["finding_codes"]
    assert delivery["id"] == got.headers["x-gradhealth-delivery"] and delivery["attempts"] == 1


def test_a_failed_jobs_event_carries_the_problem_the_job_shows(worker_api: Api) -> None:
    # the event's error was the stored problem without the instance and errors[] the API adds when
    # showing the job: a receiver could not point at the job or read where the input was wrong
    with receiver() as rx:
        worker_api.post("/v1/webhooks", json={"url": rx.url, "events": ["job.finished"]}, headers=ALICE)
        r = worker_api.post("/v1/checks/logs?wait=60", files={"file": ("run.csv", b"step,loss\n")},
                            headers=ALICE)
        job = r.json()
        (got,) = rx.wait_for(1, timeout=30)
    assert job["status"] == "failed", job
    data = json.loads(got.body)["data"]
    assert data["job_id"] == job["id"] and data["status"] == "failed"
    shown = {k: v for k, v in job["error"].items() if k != "errors"}
    assert {k: v for k, v in data["error"].items() if k != "errors"} == shown
    assert [e["detail"] for e in data["error"]["errors"]] == [e["detail"] for e in job["error"]["errors"]]
    assert data["error"]["instance"] == f"/v1/jobs/{job['id']}" and data["error"]["errors"], data["error"]
