"""errsweep2 N11 and N12: HEAD answers like GET without a body on every GET route (uptime monitors
probe with HEAD), the OpenAPI document staying GET-only; and a repeated credential header
(X-API-Key, Authorization) is a 400 problem, not silently the first one's caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from gradhealth.settings import hash_key
from tests.api.helpers import TINY, Api, running_app, settings_for

BOB, ALICE = "k-bob-" + "b" * 30, "k-alice-" + "a" * 30
KEYS = f"bob={hash_key(BOB)},alice={hash_key(ALICE)}"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(settings_for(tmp_path_factory.mktemp("keys"), workers=0, api_keys=KEYS)) as api:
        yield api


@pytest.fixture(scope="module")
def open_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(settings_for(tmp_path_factory.mktemp("head"), workers=0)) as api:
        yield api


def _head_like_get(api: Api, url: str, **kwargs: Any) -> None:
    got, head = api.get(url, **kwargs), api.request("HEAD", url, **kwargs)
    assert head.status_code == got.status_code, (url, head.status_code, head.text)
    assert head.content == b"", url
    assert head.headers.get("content-type") == got.headers.get("content-type"), url


def test_head_answers_every_get_route_without_a_body(open_api: Api) -> None:
    job = open_api.post("/v1/checks/architecture", json=TINY).json()
    run = open_api.post("/v1/runs", json={"name": "head"}).json()
    for url in ("/livez", "/readyz", "/metrics", "/", "/v1/catalog", "/v1/jobs", f"/v1/jobs/{job['id']}",
                "/v1/runs", f"/v1/runs/{run['id']}", "/v1/webhooks", "/openapi.json", "/v1/jobs/nope"):
        _head_like_get(open_api, url)
    assert open_api.request("HEAD", "/livez").status_code == 200
    assert open_api.request("HEAD", "/v1/jobs/nope").status_code == 404


def test_head_on_an_event_stream_ends_at_once(open_api: Api) -> None:
    run = open_api.post("/v1/runs", json={"name": "head-sse"}).json()
    # a GET of it streams until the run finishes; a HEAD ends once the headers are sent
    head = open_api.portal.call(_head_within, open_api, f"/v1/runs/{run['id']}/events")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")


async def _head_within(api: Api, url: str) -> Any:
    with anyio.fail_after(10):
        return await api.client.request("HEAD", url)


def test_head_leaves_the_openapi_document_get_only_and_other_methods_alone(open_api: Api) -> None:
    paths = open_api.get("/openapi.json").json()["paths"]
    assert not [p for p, ops in paths.items() if "head" in ops]
    refused = open_api.request("HEAD", "/v1/checks/architecture")  # POST only
    assert refused.status_code == 405 and refused.content == b""


def test_head_with_keys_on_needs_the_key(keyed: Api) -> None:
    assert keyed.request("HEAD", "/v1/jobs").status_code == 401
    assert keyed.request("HEAD", "/metrics").status_code == 401
    ok = keyed.request("HEAD", "/metrics", headers={"X-API-Key": BOB})
    assert ok.status_code == 200 and ok.content == b""


@pytest.mark.parametrize("url", ["/v1/jobs", "/metrics", "/livez"])
@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_a_repeated_credential_header_is_a_400(keyed: Api, url: str, header: str) -> None:
    first, second = (BOB, ALICE) if header == "X-API-Key" else ("Bearer one", "Bearer two")
    got = keyed.get(url, headers=[(header, first), (header, second), *([("X-API-Key", BOB)]
                                                                         if header != "X-API-Key" else [])])
    assert got.status_code == 400, got.text
    assert got.headers["content-type"].startswith("application/problem+json")
    assert f"send one {header}" in got.json()["detail"]


def test_one_key_still_works_and_a_repeated_key_is_refused_with_keys_off(keyed: Api, open_api: Api) -> None:
    assert keyed.get("/v1/jobs", headers={"X-API-Key": BOB}).status_code == 200
    assert keyed.get("/v1/jobs", headers=[("X-API-Key", BOB), ("X-API-Key", BOB)]).status_code == 400
    assert open_api.get("/v1/jobs", headers=[("X-API-Key", "a"), ("X-API-Key", "b")]).status_code == 400


def test_a_405_lists_head_where_get_is_answered(open_api: Api) -> None:
    refused = open_api.request("PUT", "/v1/jobs")  # GET (and so HEAD) and POST there
    allowed = [m.strip() for m in refused.headers["allow"].split(",")]
    assert refused.status_code == 405 and "GET" in allowed and "HEAD" in allowed
    assert "HEAD" not in open_api.request("GET", "/v1/checks/architecture").headers.get("allow", "")
