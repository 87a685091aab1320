"""errsweep6 #3: one client must not fill the global job queue. A client (API key, or client
address with keys off) may have max_jobs_per_client jobs queued or running; one more is a 429 with
Retry-After, while other clients are still accepted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gradhealth.jobs import store
from gradhealth.settings import hash_key
from tests.api.helpers import TINY, Api, running_app, settings_for


def _from(api: Api, address: str) -> Api:
    """The same app, seen from another client address."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
    return Api(api.portal, httpx.AsyncClient(transport=transport, base_url="http://testserver"), api.app)


@pytest.fixture(scope="module")
def quota_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(settings_for(tmp_path_factory.mktemp("quota"), workers=0, max_jobs_per_client=3,
                                  max_queued_jobs=100)) as api:
        yield api


def _spec(i: int) -> dict[str, Any]:
    return {**TINY, "name": f"quota {i}"}


def test_one_address_is_held_to_its_quota_and_others_are_not(quota_api: Api) -> None:
    a, b = _from(quota_api, "10.0.0.1"), _from(quota_api, "10.0.0.2")
    ids = [a.post("/v1/checks/architecture", json=_spec(i)).json()["id"] for i in range(3)]
    refused = a.post("/v1/checks/architecture", json=_spec(3))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    problem = refused.json()
    assert "10.0.0.1 has 3 jobs queued or running, the quota is 3" in problem["detail"]
    assert "GRADHEALTH_MAX_JOBS_PER_CLIENT" in problem["detail"]
    # Another client is accepted: the queue (limit 100) is far from full.
    assert b.post("/v1/checks/architecture", json=_spec(0)).status_code == 202
    # A finished (here cancelled) job frees its place in the quota.
    assert a.delete(f"/v1/jobs/{ids[0]}").status_code in (200, 202)
    assert a.post("/v1/checks/architecture", json=_spec(4)).status_code == 202


def test_a_running_job_counts_toward_the_quota(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_app(settings_for(tmp_path_factory.mktemp("quota_running"), workers=0,
                                  max_jobs_per_client=2)) as api:
        for i in range(2):
            assert api.post("/v1/checks/architecture", json=_spec(i)).status_code == 202
        with api.app.state.sessions() as session:  # a worker takes one: queued -> running
            assert store.claim(session, worker_id="test-worker", lease_s=60.0) is not None
        refused = api.post("/v1/checks/architecture", json=_spec(2))  # 1 queued + 1 running
        assert refused.status_code == 429, refused.text


def test_with_keys_the_quota_is_per_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    keys = f"bob={hash_key('b' * 32)},alice={hash_key('a' * 32)}"
    with running_app(settings_for(tmp_path_factory.mktemp("quota_keys"), workers=0, max_jobs_per_client=2,
                                  api_keys=keys)) as api:
        bob, alice = {"X-API-Key": "b" * 32}, {"X-API-Key": "a" * 32}
        for i in range(2):
            assert api.post("/v1/checks/architecture", json=_spec(i), headers=bob).status_code == 202
        refused = api.post("/v1/checks/architecture", json=_spec(2), headers=bob)
        assert refused.status_code == 429 and "bob has 2 jobs" in refused.json()["detail"]
        # Same address, another key: its own quota.
        assert api.post("/v1/checks/architecture", json=_spec(0), headers=alice).status_code == 202
