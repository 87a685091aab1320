"""newuser8 #6: ``Client.check_architecture`` took only a dict; it now takes what the in-process
``gradhealth.check_architecture`` takes (a dict, a path, ``example:NAME``, YAML/JSON text), read
client-side by the same ``load_spec`` and sent as JSON, with clear errors for anything else."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gradhealth.client import Client
from gradhealth.errors import ArgumentTypeError, InputFormatError
from gradhealth.library import load_spec

YAML = """\
name: small
input: {shape: [8]}
batch_size: 4
seeds: 1
loss: {type: mse}
layers:
  - {type: linear, out_features: 4, activation: tanh}
"""


def _client(sent: list[tuple[str, str, bytes]]) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path, request.content))
        if request.url.path.startswith("/v1/runs"):
            return httpx.Response(200, json={"id": "r1", "status": "active"} if request.url.path != "/v1/runs"
                                  else {"items": [], "next_cursor": None})
        return httpx.Response(200, json={"id": "j1", "status": "succeeded", "result": {"status": "healthy"}})

    client = Client("http://service.test")
    client.http = httpx.Client(base_url="http://service.test", transport=httpx.MockTransport(handler))
    return client


@pytest.mark.parametrize("form", ["example", "path", "str path", "yaml text", "json text", "dict"])
def test_check_architecture_takes_every_form_the_library_takes(tmp_path, form):
    path = tmp_path / "small.yaml"
    path.write_text(YAML)
    arg: object = {"example": "example:deep_sigmoid_mlp", "path": path, "str path": str(path),
                   "yaml text": YAML, "json text": json.dumps(load_spec(YAML)), "dict": load_spec(YAML)}[form]
    sent: list[tuple[str, str, bytes]] = []
    with _client(sent) as client:
        job = client.check_architecture(arg, wait_s=5)  # type: ignore[arg-type]
    assert job["status"] == "succeeded"
    method, where, body = sent[0]
    assert (method, where) == ("POST", "/v1/checks/architecture")
    expected = load_spec("example:deep_sigmoid_mlp") if form == "example" else load_spec(YAML)
    assert json.loads(body) == expected


def test_check_architecture_refuses_what_it_cannot_read_before_sending(tmp_path):
    sent: list[tuple[str, str, bytes]] = []
    with _client(sent) as client:
        with pytest.raises(InputFormatError, match="no such file"):
            client.check_architecture(tmp_path / "missing.yaml")
        with pytest.raises(InputFormatError, match="no bundled example 'nope'"):
            client.check_architecture("example:nope")
        with pytest.raises(ArgumentTypeError, match="spec must be"):
            client.check_architecture(42)  # type: ignore[arg-type]
        with pytest.raises(ArgumentTypeError, match="path must be"):
            client.check_logs(42)  # type: ignore[arg-type]
        with pytest.raises(InputFormatError, match="no such file"):
            client.check_logs(tmp_path / "missing.jsonl")
    assert sent == []


def test_check_logs_takes_a_str_and_runs_are_read(tmp_path):
    log = tmp_path / "g.jsonl"
    log.write_text('{"step": 0, "metric": "loss", "value": 1.0}\n')
    sent: list[tuple[str, str, bytes]] = []
    with _client(sent) as client:
        assert client.check_logs(str(log), wait_s=5)["status"] == "succeeded"
        assert client.run("r1")["id"] == "r1"
        assert client.runs(status="active")["items"] == []
    assert [(m, w) for m, w, _ in sent] == [("POST", "/v1/checks/logs"), ("GET", "/v1/runs/r1"),
                                            ("GET", "/v1/runs")]
    assert Path(log).name.encode() in sent[0][2]
