"""Issue 13, operations and exposure: a queue-depth limit (503 + Retry-After), rate-limit buckets
per client address with keys off, throttled key guessing, and /metrics and the docs behind the
key when keys are on (each a setting)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gradhealth.settings import hash_key
from tests.api.helpers import TINY, Api, running_app, settings_for

KEY = "k-" + "s" * 30
KEYS = f"ci={hash_key(KEY)}"


def _from(api: Api, address: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A request as sent from another client address."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    return api.portal.call(send)


@pytest.fixture
def app_with(tmp_path: Any) -> Iterator[Any]:
    stack: list[Any] = []

    def make(**overrides: Any) -> Api:
        context = running_app(settings_for(tmp_path / str(len(stack)), workers=0, **overrides))
        stack.append(context)
        return context.__enter__()

    yield make
    for context in reversed(stack):
        context.__exit__(None, None, None)


def test_submissions_beyond_the_queue_limit_get_503_with_retry_after(app_with: Any) -> None:
    api = app_with(max_queued_jobs=2)
    first = api.post("/v1/checks/architecture", json=TINY, headers={"Idempotency-Key": "one"})
    assert first.status_code == 202
    assert api.post("/v1/checks/architecture", json=TINY).status_code == 202
    refused = api.post("/v1/checks/architecture", json=TINY)
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["type"].endswith("queue-full") and "2" in refused.json()["detail"]
    refused_upload = api.post("/v1/checks/logs?filename=run.csv", content=b"step,loss\n0,1.0\n1,0.5\n")
    assert refused_upload.status_code == 503
    # A repeat of an accepted submission still gets its job: it adds nothing to the queue.
    again = api.post("/v1/checks/architecture", json=TINY, headers={"Idempotency-Key": "one"})
    assert again.status_code in (200, 202) and again.json()["id"] == first.json()["id"]
    assert len(api.get("/v1/jobs").json()["items"]) == 2
    # ... and the OpenAPI document says so on every submission route, header included.
    paths = api.get("/openapi.json").json()["paths"]
    for route in ("/v1/checks/architecture", "/v1/checks/logs", "/v1/checks/model"):
        declared = paths[route]["post"]["responses"]["503"]
        assert declared["headers"]["Retry-After"]["schema"]["type"] == "integer", route


def test_with_keys_off_each_client_address_has_its_own_bucket(app_with: Any) -> None:
    api = app_with(rate_limit_per_minute=3)
    assert [_from(api, "10.0.0.1", "GET", "/v1/jobs").status_code for _ in range(3)] == [200] * 3
    limited = _from(api, "10.0.0.1", "GET", "/v1/jobs")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # Another client is not starved by the first.
    assert _from(api, "10.0.0.2", "GET", "/v1/jobs").status_code == 200


def test_wrong_keys_are_throttled_per_address(app_with: Any) -> None:
    api = app_with(api_keys=KEYS, auth_failures_per_minute=3)
    guesses = [_from(api, "10.0.0.9", "GET", "/v1/jobs", headers={"X-API-Key": f"guess-{i}"}).status_code
               for i in range(3)]
    assert guesses == [401, 401, 401]
    throttled = _from(api, "10.0.0.9", "GET", "/v1/jobs", headers={"X-API-Key": "guess-4"})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    # Throttled whatever it sends, or the right guess would still be told apart.
    assert _from(api, "10.0.0.9", "GET", "/v1/jobs", headers={"X-API-Key": KEY}).status_code == 429
    # Other addresses are unaffected, with or without a valid key.
    assert _from(api, "10.0.0.10", "GET", "/v1/jobs", headers={"X-API-Key": "nope"}).status_code == 401
    assert _from(api, "10.0.0.10", "GET", "/v1/jobs", headers={"X-API-Key": KEY}).status_code == 200


DOCS = ("/openapi.json", "/docs", "/redoc", "/static/swagger-ui/swagger-ui.css", "/v1/catalog")


def test_with_keys_on_metrics_need_a_key_and_docs_are_public_by_default(app_with: Any) -> None:
    api = app_with(api_keys=KEYS)
    refused = api.get("/metrics")
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/problem+json")
    assert api.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    assert api.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401
    for path in DOCS:
        assert api.get(path).status_code == 200, path
    assert api.get("/livez").status_code == 200


def test_exposure_settings(app_with: Any) -> None:
    private = app_with(api_keys=KEYS, docs_public=False, metrics_public=True)
    assert private.get("/metrics").status_code == 200
    for path in DOCS:
        assert private.get(path).status_code == 401, path
        assert private.get(path, headers={"X-API-Key": KEY}).status_code == 200, path
    assert private.get("/livez").status_code == 200 and private.get("/readyz").status_code == 200
    # With keys off there is nothing to ask for.
    open_app = app_with(docs_public=False)
    assert open_app.get("/metrics").status_code == 200 and open_app.get("/openapi.json").status_code == 200
