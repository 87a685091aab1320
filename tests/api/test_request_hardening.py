"""Request hardening (errsweep4 D3, D4, D9): repeated and unknown query parameters refused on every
route, slow request bodies timed out and uploads in flight capped, webhook hosts and secrets checked."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from gradhealth.api.routers import _query_fields, is_list_route, query_guard
from tests.api.helpers import Api, running_app, settings_for

SPEC = {"input": {"shape": [8]}, "batch_size": 4, "seeds": 1, "layers": [{"type": "linear", "out_features": 4}]}
CSV = b"step,loss\n1,2\n2,3\n3,2\n"


@pytest.fixture(scope="module")
def hard_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers (jobs stay queued), a short body deadline and one upload in flight at most."""
    with running_app(settings_for(tmp_path_factory.mktemp("hard"), workers=0, body_timeout_s=0.5,
                                  body_min_rate=1_000_000, max_uploads_in_flight=1)) as client:
        client.app.state.webhook_resolve = lambda host, port: ["93.184.215.14"]  # no DNS in tests
        yield client


def _dependency_calls(dependant: Any) -> set[Any]:
    calls = set()
    for sub in dependant.dependencies:
        calls.add(sub.call)
        calls |= _dependency_calls(sub)
    return calls


def _api_routes(api: Api) -> list[Any]:
    """Every API route as served: included routers' routes with the app's dependencies
    (this FastAPI keeps an included router as one entry of ``app.routes``)."""
    return [c for c in iter_route_contexts(api.app.routes) if isinstance(c.original_route, APIRoute)]


# --- D3: repeated and unknown query parameters ---------------------------------------------------


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/v1/jobs?limit=1&limit=50"),
    ("GET", "/v1/jobs?status=queued&status=succeeded"),
    ("GET", "/v1/runs?limit=1&limit=2"),
    ("POST", "/v1/checks/architecture?wait=0&wait=30"),
    ("POST", "/v1/checks/logs?format=text&format=native&filename=a.csv"),
    ("POST", "/v1/checks/logs?filename=a.csv&filename=b.log"),
    ("GET", "/v1/jobs/x/report?format=json&format=sarif"),
])
def test_repeated_query_parameter_is_422_naming_it(hard_api: Api, method: str, url: str) -> None:
    name = re.search(r"[?&](\w+)=[^&]*&.*\b\1=", url)
    assert name is not None
    body: dict[str, Any] = ({"json": SPEC} if "architecture" in url
                            else {"content": CSV, "headers": {"Content-Type": "text/csv"}} if method == "POST" else {})
    r = hard_api.request(method, url, **body)
    assert r.status_code == 422, r.text
    assert f"query.{name.group(1)}: given 2 times" in r.json()["detail"]


def test_repeatable_list_parameter_stays_repeatable(hard_api: Api) -> None:
    """``input_shape`` on the model door is a list: given twice is not refused as a repeat."""
    route = next(r for r in _api_routes(hard_api) if r.path == "/v1/checks/model")
    assert _query_fields(route.dependant)["input_shape"] is False
    assert _query_fields(route.dependant)["wait"] is True


def test_webhook_list_refuses_unknown_parameters(hard_api: Api) -> None:
    r = hard_api.get("/v1/webhooks?limit=1&stauts=x")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "query.limit: unknown query parameter" in detail and "query.stauts" in detail


def test_every_route_carries_the_query_guard(hard_api: Api) -> None:
    """Walks the route table: every route has the guard, every declared one-value parameter given
    twice is a 422 naming it, and every endpoint refuses an unknown parameter."""
    routes = _api_routes(hard_api)
    lists = [r for r in routes if is_list_route(r.original_route)]
    assert {r.path for r in lists} >= {"/v1/jobs", "/v1/runs", "/v1/webhooks", "/v1/webhooks/{webhook_id}/deliveries"}
    checked = strict = 0
    for route in routes:
        assert query_guard in _dependency_calls(route.dependant), f"{route.path} lacks query_guard"
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        method = sorted(route.methods - {"HEAD"})[0]
        for name, scalar in _query_fields(route.dependant).items():
            if not scalar:
                continue
            r = hard_api.request(method, f"{path}?{name}=1&{name}=2")
            assert r.status_code == 422, (method, route.path, name, r.status_code, r.text[:200])
            assert f"query.{name}: given 2 times" in r.json()["detail"], (route.path, r.text[:200])
            checked += 1
        if route.original_route.include_in_schema:
            # every endpoint, not only the lists (newuser14 #5: ?wiat=5 on a check was a 202 that
            # never waited): a 422 naming the parameter and those the endpoint takes
            r = hard_api.request(method, f"{path}?no_such_parameter=1")
            assert r.status_code == 422, (method, route.path, r.status_code, r.text[:200])
            item = next(e for e in r.json()["errors"] if e["parameter"] == "query.no_such_parameter")
            taken = sorted(_query_fields(route.dependant))
            assert item["detail"] == "unknown query parameter; " + (
                f"allowed: {', '.join(taken)}" if taken else "this endpoint takes no query parameters"), r.text
            strict += 1
    assert checked >= 10 and strict >= 20


def test_a_misspelt_wait_on_a_check_is_refused_not_queued(hard_api: Api) -> None:
    """newuser14 #5: ``?wiat=5`` was ignored (202, a queued job); the pages a browser opens still
    take a query string (a link's tracking parameters)."""
    r = hard_api.post("/v1/checks/architecture?wiat=5", json=SPEC)
    assert r.status_code == 422, r.text
    assert "query.wiat: unknown query parameter; allowed: " in r.json()["detail"] and "wait" in r.json()["detail"]
    assert hard_api.get("/?utm_source=x").status_code == 200


def test_single_parameters_still_work(hard_api: Api) -> None:
    assert hard_api.get("/v1/jobs?limit=1&status=queued").status_code == 200
    assert hard_api.get("/v1/webhooks").status_code == 200


# --- D4: slow bodies and uploads in flight -------------------------------------------------------


async def _trickle(first: bytes, then: bytes, pause: float) -> AsyncIterator[bytes]:
    yield first
    for i in range(len(then)):
        await anyio.sleep(pause)
        yield then[i:i + 1]


def test_slow_spec_body_is_408_and_closes(hard_api: Api) -> None:
    r = hard_api.post("/v1/checks/architecture", content=_trickle(b"{", b"      ", 0.3),
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 408, r.text
    assert "GRADHEALTH_BODY_TIMEOUT_S" in r.json()["detail"]
    assert r.headers["connection"] == "close"


def test_slow_upload_is_408_and_leaves_no_file(hard_api: Api) -> None:
    folder = Path(hard_api.app.state.settings.upload_dir)
    before = set(folder.rglob("*")) if folder.exists() else set()
    r = hard_api.post("/v1/checks/logs?filename=a.csv", content=_trickle(b"step,loss\n", b"1,2\n2,3\n", 0.3),
                      headers={"Content-Type": "text/csv"})
    assert r.status_code == 408, r.text
    after = set(folder.rglob("*")) if folder.exists() else set()
    assert not [p for p in after - before if p.is_file()]


def test_fast_body_within_the_deadline_is_served(hard_api: Api) -> None:
    r = hard_api.post("/v1/checks/logs?filename=a.csv", content=_trickle(b"step,loss\n", b"1,2\n", 0.01),
                      headers={"Content-Type": "text/csv"})
    assert r.status_code == 202, r.text


def test_upload_in_flight_cap_is_503_with_retry_after(hard_api: Api) -> None:
    async def scenario() -> tuple[int, Any, int]:
        gate = anyio.Event()

        async def stalled() -> AsyncIterator[bytes]:
            yield b"step,loss\n"
            await gate.wait()
            yield b"1,2\n2,3\n"

        first: list[int] = []

        async def upload() -> None:
            r = await hard_api.client.post("/v1/checks/logs?filename=a.csv", content=stalled(),
                                           headers={"Content-Type": "text/csv"})
            first.append(r.status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(upload)
            await anyio.sleep(0.1)  # the first upload is in, its body stalled
            second = await hard_api.client.post("/v1/checks/logs?filename=b.csv", content=CSV,
                                                headers={"Content-Type": "text/csv"})
            gate.set()
        third = await hard_api.client.post("/v1/checks/logs?filename=c.csv", content=CSV,
                                           headers={"Content-Type": "text/csv"})
        return first[0], second, third.status_code

    first, second, third = hard_api.portal.call(scenario)
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] == "5"
    assert "GRADHEALTH_MAX_UPLOADS_IN_FLIGHT" in second.json()["detail"]
    assert first == 202 and third == 202  # the slot is freed once the first body is in


def test_serve_passes_connection_limits_to_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from gradhealth.cli import cmd_serve

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("GRADHEALTH_DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite")
    monkeypatch.setenv("GRADHEALTH_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.setenv("GRADHEALTH_WORKERS", "0")
    monkeypatch.setenv("GRADHEALTH_MAX_CONNECTIONS", "77")
    monkeypatch.setenv("GRADHEALTH_KEEP_ALIVE_S", "3")
    assert cmd_serve(argparse.Namespace(host=None, port=None, workers=None)) == 0
    assert seen["limit_concurrency"] == 77 and seen["timeout_keep_alive"] == 3


# --- D9: webhook host and secret -----------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://xn--/", "https://xn--zz-.example/", "https://xn--a.example/",
                                 "https://a..example/", "https://" + "a" * 64 + ".example/"])
def test_webhook_host_that_is_no_domain_name_is_422(hard_api: Api, url: str) -> None:
    r = hard_api.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("/url: ") and "not a valid domain name" in r.json()["detail"]


@pytest.mark.parametrize("secret", ["\x00" * 20, "\n" * 20, "a-good-secret-123\r\n", "abcdefghijklmnop\x85"])
def test_webhook_secret_with_control_characters_is_422(hard_api: Api, secret: str) -> None:
    r = hard_api.post("/v1/webhooks", json={"url": "https://example.com/", "secret": secret})
    assert r.status_code == 422, r.text
    assert "/secret" in r.json()["detail"] and "control characters" in r.json()["detail"]


def test_webhook_patch_secret_with_control_characters_is_422(hard_api: Api) -> None:
    created = hard_api.post("/v1/webhooks", json={"url": "https://93.184.215.14/"})
    assert created.status_code == 201, created.text
    r = hard_api.request("PATCH", f"/v1/webhooks/{created.json()['id']}", json={"secret": "\t" * 20})
    assert r.status_code == 422 and "/secret" in r.json()["detail"]
    hard_api.delete(f"/v1/webhooks/{created.json()['id']}")


@pytest.mark.parametrize("url", ["https://xn--bcher-kva.example/", "https://bücher.example/",
                                 "https://93.184.215.14/", "https://[2606:2800:220:1::]/"])
def test_valid_internationalised_and_literal_hosts_still_register(hard_api: Api, url: str) -> None:
    r = hard_api.post("/v1/webhooks", json={"url": url, "secret": "a printable secret 123"})
    assert r.status_code == 201, r.text
    hard_api.delete(f"/v1/webhooks/{r.json()['id']}")
