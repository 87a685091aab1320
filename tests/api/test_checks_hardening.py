"""The architecture route against hostile specs (issue 13) and its request schema (issue 15): every
bad body is a 400/422 problem, never a 500 or a stalled event loop, and never a job that cannot be
stored; the OpenAPI document says what the route enforces."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from gradhealth.analysis.spec import MAX_NODES
from tests.analysis.test_spec_hardening import alias_bomb, scalar_bomb
from tests.api.helpers import TINY, Api, running_app, settings_for

PROBLEM = "application/problem+json"
YAML = {"content-type": "application/yaml"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers (jobs stay queued) and a body limit large enough for the deep-nesting bodies."""
    settings = settings_for(tmp_path_factory.mktemp("hardening"), workers=0, max_body_bytes=2_000_000)
    with running_app(settings) as client:
        yield client


def post(app: Api, body: str | bytes, headers: dict[str, str]) -> Any:
    return app.post("/v1/checks/architecture", content=body, headers=headers)


def refused(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == PROBLEM
    assert len(r.content) < 4_000, len(r.content)
    return r.json()


def linear(value: str) -> str:
    return '{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": ' + value + "}]}"


def test_alias_bomb_is_a_400_naming_the_budget(app):
    body = refused(post(app, alias_bomb(), YAML), 400)
    assert "aliases" in body["detail"] and str(MAX_NODES) in body["detail"]
    refused(post(app, scalar_bomb(), YAML), 400)


@pytest.mark.parametrize(("body", "headers"), [
    ("[" * 100_000 + "]" * 100_000, JSON),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, JSON),
    ("a: " + "[" * 100_000 + "]" * 100_000, YAML),
    ("a: " + "{b: " * 100_000 + "1" + "}" * 100_000, YAML),
])
def test_deep_nesting_is_a_400_and_logs_no_traceback(app, caplog, body, headers):
    with caplog.at_level(logging.DEBUG):
        problem = refused(post(app, body, headers), 400)
    assert "nested" in problem["detail"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert sum(len(r.getMessage()) for r in caplog.records) < 10_000


@pytest.mark.parametrize("digits", [400, 5_000])
def test_huge_integers_are_a_422_at_the_field(app, digits):
    body = refused(post(app, linear("9" * digits), JSON), 422)
    assert [e["pointer"] for e in body["errors"]] == ["/layers/0/out_features"]
    yaml_body = f"input: {{shape: [4]}}\nlayers: [{{type: linear, out_features: {'9' * digits}}}]\n"
    body = refused(post(app, yaml_body, YAML), 422)
    assert [e["pointer"] for e in body["errors"]] == ["/layers/0/out_features"]


@pytest.mark.parametrize(("body", "headers", "pointer"), [
    ("name: !!binary aGVsbG8=\ninput: {shape: [4]}\nlayers: [{type: flatten}]\n", YAML, "/name"),
    ('{"name": "a\\ud800b", "input": {"shape": [4]}, "layers": [{"type": "flatten"}]}', JSON, "/name"),
    ('name: "a\\ud800b"\ninput: {shape: [4]}\nlayers: [{type: flatten}]\n', YAML, "/name"),
    ('{"name": "a\\u0000b", "input": {"shape": [4]}, "layers": [{"type": "flatten"}]}', JSON, "/name"),
    ('{"input": {"shape": [4], "scale": NaN}, "layers": [{"type": "flatten"}]}', JSON, "/input/scale"),
    ('{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2, '
     '"bias_init": {"scheme": "constant", "value": Infinity}}]}', JSON, "/layers/0/bias_init/value"),
    ("input: {shape: [4]}\nlayers: [{type: linear, out_features: 2, negative_slope: .nan}]\n", YAML,
     "/layers/0/negative_slope"),
    (linear("true"), JSON, "/layers/0/out_features"),
    ('{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2, "negative_slope": 1e308}]}',
     JSON, "/layers/0/negative_slope"),
    ("input: {shape: [4]}\nlayers: [{type: linear, out_features: 2, negative_slope: 1e308}]\n", YAML,
     "/layers/0/negative_slope"),
])
def test_values_a_job_could_not_store_or_run_are_a_422_at_the_field(app, body, headers, pointer):
    problem = refused(post(app, body, headers), 422)
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    json.dumps(problem).encode("utf-8")  # the answer itself is plain UTF-8 JSON


@pytest.mark.parametrize(("body", "headers"), [(b"", YAML), (b"  \n", YAML), (b"# nothing\n", YAML), (b"", JSON)])
def test_an_empty_body_is_a_400_saying_so(app, body, headers):
    assert "empty" in refused(post(app, body, headers), 400)["detail"]


def test_no_refused_body_made_a_job(app):
    # Runs after the refusals above (module order): none of them may have queued anything.
    assert app.get("/v1/jobs").json()["items"] == []


def test_livez_answers_while_a_spec_is_validated(app, monkeypatch):
    from gradhealth.api.routers import checks

    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []
    real = checks.parse_spec

    def held_parse(raw: Any) -> Any:
        started.set()
        release.wait(timeout=5)  # on the event loop this would block /livez for these 5 s
        finished.append(True)
        return real(raw)

    monkeypatch.setattr(checks, "parse_spec", held_parse)
    pending = app.portal.start_task_soon(partial(app.client.post, "/v1/checks/architecture", json=TINY))
    assert started.wait(timeout=30)
    live = app.get("/livez")
    answered_during_parse = not finished
    release.set()
    assert live.status_code == 200
    assert answered_during_parse, "/livez waited for the spec to be parsed"
    assert pending.result(timeout=30).status_code == 202


def _spec_components(doc: dict[str, Any]) -> dict[str, Any]:
    from gradhealth.analysis.spec import spec_json_schema

    names = {"Spec", *spec_json_schema()["$defs"]}
    return {k: v for k, v in doc["components"]["schemas"].items() if k in names}


def test_the_request_schema_says_what_the_route_enforces(app):
    doc = app.get("/openapi.json").json()
    content = doc["paths"]["/v1/checks/architecture"]["post"]["requestBody"]["content"]
    # YAML is the same Spec (schemathesis and clients serialise the object), so an empty body is invalid.
    assert content["application/yaml"]["schema"] == content["application/json"]["schema"]
    models = _spec_components(doc)
    assert len(models) > 10 and "allOf" in models["InputSpec"]
    assert {"vocab_size", "seq_len"} <= set(models["InputSpec"]["properties"])
    assert models["InputSpec"]["properties"]["shape"]["anyOf"][0]["items"]["minimum"] == 1
    for name, model in models.items():  # a generated request type must not require a defaulted field
        defaulted = {k for k, v in model.get("properties", {}).items() if "default" in v}
        assert not defaulted & set(model.get("required", [])), name
