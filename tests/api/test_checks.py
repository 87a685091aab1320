"""Submitting checks: 202 + Location, ?wait, idempotency, and every error status."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.api.helpers import TINY, VANISHING

PROBLEM = "application/problem+json"


def test_submit_answers_202_with_location_then_the_job_succeeds(api):
    r = api.post("/v1/checks/architecture", json=VANISHING)
    assert r.status_code == 202
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}" and r.headers["retry-after"] == "1"
    assert job["status"] in ("queued", "running")
    done = api.wait_done(job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["progress"]["fraction"] == 1.0
    assert done["result"]["status"] == "unhealthy"
    assert done["result"]["findings"][0]["code"] == "vanishing_gradient"
    assert done["result_status"] == "unhealthy"


def test_wait_returns_200_with_the_finished_job_in_one_round_trip(api):
    r = api.post("/v1/checks/architecture?wait=60", json=TINY)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded" and r.json()["result"]["status"] == "healthy"
    assert "retry-after" not in r.headers


def test_yaml_body_is_accepted(api):
    r = api.post("/v1/checks/architecture?wait=60", content=yaml.safe_dump(TINY),
                 headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and r.json()["result"]["status"] == "healthy"


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(idle_api):
    headers = {"Idempotency-Key": "build-42"}
    first = idle_api.post("/v1/checks/architecture", json=TINY, headers=headers)
    again = idle_api.post("/v1/checks/architecture", json=TINY, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = idle_api.post("/v1/checks/architecture", json=VANISHING, headers=headers)
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    assert first.json()["id"] in other.json()["detail"]


def test_invalid_spec_is_422_with_json_pointers(idle_api):
    bad = json.loads(json.dumps(TINY))
    bad["layers"][0]["init"] = {"scheme": "normal", "std": -1}
    r = idle_api.post("/v1/checks/architecture", json=bad)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["errors"][0]["pointer"] == "/layers/0/init/std"
    assert body["title"] and "greater than 0" in body["detail"]


def test_spec_over_the_limits_is_refused_before_any_work(idle_api):
    huge = {"input": {"shape": [1000000]}, "layers": [{"type": "linear", "out_features": 1000000}]}
    r = idle_api.post("/v1/checks/architecture", json=huge)
    assert r.status_code == 422 and "limit-exceeded" in r.json()["type"]
    assert "1,000,001,000,000 parameters" in r.json()["detail"] and "MiB" in r.json()["detail"]


def test_unreadable_body_is_400_and_wrong_type_is_415(idle_api):
    r = idle_api.post("/v1/checks/architecture", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "invalid JSON" in r.json()["detail"]
    r = idle_api.post("/v1/checks/architecture", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM


def test_body_over_the_size_limit_is_413(idle_api):
    spec = dict(TINY, name="x" * 5000)
    r = idle_api.post("/v1/checks/architecture", json=spec)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert "4,096 bytes" in r.json()["detail"]


def test_bad_query_parameter_is_422(idle_api):
    r = idle_api.post("/v1/checks/architecture?wait=-1", json=TINY)
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "query.wait"


def test_idempotency_conflict_is_a_problem_of_its_own_type(idle_api):
    headers = {"Idempotency-Key": "build-43"}
    assert idle_api.post("/v1/checks/architecture", json=TINY, headers=headers).status_code == 202
    other = idle_api.post("/v1/checks/architecture", json=VANISHING, headers=headers)
    body = other.json()
    assert other.status_code == body["status"] == 409
    assert body["type"] == "https://gradient-health.dev/problems/idempotency-conflict"
    assert "'build-43'" in body["detail"]


def test_cuda_on_a_host_without_a_gpu_is_422_at_device(api):
    from gradhealth.devices import gpu_count

    if gpu_count():
        pytest.skip("this host has a GPU")
    before = len(api.get("/v1/jobs?limit=100").json()["items"])
    r = api.post("/v1/checks/architecture", json={**TINY, "device": "cuda"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert [e["pointer"] for e in r.json()["errors"]] == ["/device"]
    assert len(api.get("/v1/jobs?limit=100").json()["items"]) == before  # refused before a job exists


def test_cuda_the_worker_cannot_use_fails_the_job_as_a_spec_error(api, monkeypatch):
    # The API believes the host has a GPU; the worker's torch sees none: the job fails with the same
    # 422 problem at /device, not a 500.
    from gradhealth import devices

    if devices.torch_cuda_available():
        pytest.skip("torch sees a CUDA device here")
    monkeypatch.setattr(devices, "host_has_gpu", lambda: True)
    r = api.post("/v1/checks/architecture?wait=120", json={**TINY, "device": "cuda"})
    job = r.json()
    assert r.status_code == 200 and job["status"] == "failed", job
    assert job["error"]["status"] == 422 and job["error"]["type"].endswith("/invalid-spec")
    assert [e["pointer"] for e in job["error"]["errors"]] == ["/device"]
