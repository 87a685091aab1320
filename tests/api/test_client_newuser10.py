"""newuser10 #11, #12: ``Client.check_architecture`` takes the library's ``seeds=`` and ``device=``;
``Client.run_report`` reads a live run's report; a service that cannot be reached raises the
client's own error (a ``RemoteError``, so a ``GradHealthError``) naming the URL."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from gradhealth.client import Client, RemoteError, ServiceUnreachable
from gradhealth.errors import GradHealthError, SpecError

YAML = "input: {shape: [8]}\nloss: {type: mse}\nlayers:\n  - {type: linear, out_features: 4, activation: tanh}\n"


def _client(sent: list[httpx.Request]) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/v1/runs/r1/report":
            return httpx.Response(200, text="## run r1: healthy", headers={"content-type": "text/markdown"})
        if request.url.path.startswith("/v1/runs/"):
            return httpx.Response(404, json={"status": 404, "title": "Not found", "detail": "no run r2"})
        return httpx.Response(200, json={"id": "j1", "status": "succeeded", "result": {"status": "healthy"}})

    client = Client("http://service.test")
    client.http = httpx.Client(base_url="http://service.test", transport=httpx.MockTransport(handler))
    return client


def test_check_architecture_sends_seeds_and_device_in_the_spec() -> None:
    sent: list[httpx.Request] = []
    with _client(sent) as client:
        client.check_architecture(YAML, seeds=1, device="cpu", wait_s=5)
        client.check_architecture("example:deep_sigmoid_mlp", seeds=2, wait_s=5)
    body = json.loads(sent[0].content)
    assert body["seeds"] == 1 and body["device"] == "cpu" and body["layers"][0]["out_features"] == 4
    assert json.loads(sent[1].content)["seeds"] == 2 and "device" not in json.loads(sent[1].content)


def test_a_bad_spec_is_refused_before_the_override_hides_it() -> None:
    sent: list[httpx.Request] = []
    with _client(sent) as client, pytest.raises(SpecError, match="/seeds"):
        client.check_architecture(YAML + "seeds: 0\n", seeds=2, wait_s=5)
    assert sent == []


def test_run_report_reads_a_live_runs_report() -> None:
    sent: list[httpx.Request] = []
    with _client(sent) as client:
        assert client.run_report("r1", format="markdown") == "## run r1: healthy"
        with pytest.raises(RemoteError, match="no run r2") as err:
            client.run_report("r2")
    assert err.value.status == 404
    assert (sent[0].method, sent[0].url.path, sent[0].url.params["format"]) == ("GET", "/v1/runs/r1/report", "markdown")


def test_the_service_has_the_route_run_report_reads() -> None:
    from gradhealth.api.routers.runs import router

    paths = {getattr(route, "path", None) for route in router.routes}
    assert "/v1/runs/{run_id}/report" in paths


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize("call", ["check_architecture", "report", "run", "run_report", "runs"])
def test_an_unreachable_service_raises_the_clients_error_naming_the_url(call: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    args = {"check_architecture": (YAML,), "report": ("j1",), "run": ("r1",), "run_report": ("r1",), "runs": ()}[call]
    with Client(url, timeout=5) as client, pytest.raises(ServiceUnreachable) as err:
        getattr(client, call)(*args)
    assert isinstance(err.value, RemoteError) and isinstance(err.value, GradHealthError)
    assert err.value.status == 503 and f"cannot reach {url}" in str(err.value)
    assert isinstance(err.value.__cause__, httpx.ConnectError)


def test_a_timeout_is_the_clients_error_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = Client("http://service.test")
    client.http = httpx.Client(base_url="http://service.test", transport=httpx.MockTransport(handler))
    with client, pytest.raises(ServiceUnreachable, match="http://service.test did not answer in time") as err:
        client.run("r1")
    assert err.value.status == 504


def test_a_spec_the_service_refuses_is_a_spec_error_too(idle_api) -> None:
    """newuser16 #5: without ``seeds=`` the service validated the spec and the client raised a plain
    RemoteError, so ``except SpecError`` (the README's pattern) caught only the ``seeds=`` call."""
    bad = {"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 0}]}
    def to_the_app(request: httpx.Request) -> httpx.Response:  # each request served by the real app
        answer = idle_api.request(request.method, str(request.url), content=request.content,
                                  headers=dict(request.headers))
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    client = Client("http://testserver")
    client.http = httpx.Client(base_url="http://testserver", transport=httpx.MockTransport(to_the_app))
    for kwargs in ({}, {"seeds": 1}):
        with pytest.raises(SpecError) as caught:
            client.check_architecture(bad, wait_s=5, **kwargs)
        assert [p.pointer for p in caught.value.problems] == ["/layers/0/out_features"], kwargs
    assert isinstance(caught.value, SpecError) and not isinstance(caught.value, RemoteError)  # (local)
    with pytest.raises(RemoteError) as remote:
        client.check_architecture(bad, wait_s=5)
    assert remote.value.status == 422
