"""The OpenAPI document says what the server does (issue 15): the media types of the SSE stream and
/metrics, the enums of the log format hint, the report format and a job's kind, an empty cursor,
the upload's one part, typed problem errors, and the 429 with Retry-After of rate-limited routes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradhealth.api.problems import ApiError
from gradhealth.api.routers.checks import safe_filename
from gradhealth.jobs.kinds import KINDS
from gradhealth.logs.readers.registry import formats
from gradhealth.report import FORMATS
from tests.api.helpers import Api, running_app, settings_for


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers (jobs stay queued), the default test rate limit."""
    with running_app(settings_for(tmp_path_factory.mktemp("contract"), workers=0)) as client:
        yield client


@pytest.fixture(scope="module")
def doc(limited: Api) -> dict[str, Any]:
    return limited.app.openapi()


def _param(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    (param,) = [p for p in doc["paths"][path][method]["parameters"] if p["name"] == name]
    return param["schema"]["anyOf"][0] if "anyOf" in param["schema"] else param["schema"]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components, for jsonschema."""
    return {**schema, "components": doc["components"]}


def test_sse_and_metrics_declare_only_their_own_media_type(doc: dict[str, Any]) -> None:
    events = doc["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}


def test_enums_are_the_registries(doc: dict[str, Any]) -> None:
    assert _param(doc, "/v1/checks/logs", "post", "format")["enum"] == list(formats())
    assert _param(doc, "/v1/jobs/{job_id}/report", "get", "format")["enum"] == list(FORMATS)
    assert _param(doc, "/v1/jobs", "get", "kind")["enum"] == list(KINDS)
    for model in ("JobRead", "JobSummary"):
        assert doc["components"]["schemas"][model]["properties"]["kind"]["enum"] == list(KINDS)


def test_a_wrong_format_hint_still_gets_the_error_that_lists_the_formats(limited: Api) -> None:
    answer = limited.post("/v1/checks/logs?format=tensorbored", content=b"step,loss\n1,2\n")
    assert answer.status_code == 422
    body = answer.json()
    assert body["type"].endswith("/unknown-format-hint")
    assert all(name in body["detail"] for name in formats())


def test_an_empty_cursor_is_refused_and_the_schema_says_so(doc: dict[str, Any], limited: Api) -> None:
    assert _param(doc, "/v1/jobs", "get", "cursor")["minLength"] == 1
    answer = limited.get("/v1/jobs?cursor=")
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["parameter"] == "query.cursor" and error["pointer"] is None


def test_the_upload_has_one_part(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/v1/checks/logs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["additionalProperties"] is False and body["required"] == ["file"]


@given(st.text(alphabet="./\\aé_", max_size=10) | st.builds(lambda n: "a" + "." * n, st.integers(100, 140)))
def test_the_filename_pattern_is_the_servers_rule(name: str) -> None:
    # The pattern is searched (JSON Schema patterns are not anchored); the rule is safe_filename's.
    from gradhealth.api.schemas import FileName

    pattern = FileName.__metadata__[0].json_schema["pattern"]
    try:
        safe_filename(name)
        accepted = True
    except ApiError:
        accepted = False
    assert accepted == bool(re.search(pattern, name))


def test_problem_errors_are_typed_and_what_the_server_sends_fits(doc: dict[str, Any], limited: Api) -> None:
    item = doc["components"]["schemas"]["ProblemError"]
    # line/column (newuser14 #7): where a body that does not parse goes wrong; field (newuser16 #6):
    # the column of a log a failed job could not read, by name
    assert set(item["properties"]) == {"pointer", "parameter", "detail", "line", "column", "field"}
    assert item["required"] == ["detail"]
    problem = _resolve(doc, {"$ref": "#/components/schemas/Problem"})
    # a spec error (JSON pointers into the body) and a parameter error, both as the schema says
    spec = limited.post("/v1/checks/architecture", json={"input": {"shape": [4]},
                                                         "layers": [{"type": "linear", "out_features": 0}]})
    params = limited.get("/v1/jobs?limit=0")
    broken = limited.post("/v1/checks/architecture", content=b"input: {shape: [4]\nlayers: []\n",
                          headers={"Content-Type": "application/yaml"})
    assert broken.json()["errors"][0]["line"] == 1 and broken.json()["errors"][0]["column"] == 8
    jsonschema.validate(broken.json(), problem)
    for answer in (spec, params):
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
        jsonschema.validate(answer.json(), problem)
        assert answer.json()["errors"]
    assert spec.json()["errors"][0]["pointer"].startswith("/layers/0")


def test_rate_limited_routes_declare_429_with_retry_after(doc: dict[str, Any],
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    limited_ops = [(path, method) for path, ops in doc["paths"].items() for method, op in ops.items()
                   if any(p["name"] == "X-API-Key" for p in op.get("parameters", []))]
    assert len(limited_ops) >= 8  # every /v1 route but the catalog takes the caller
    for path, method in limited_ops:
        declared = doc["paths"][path][method]["responses"]["429"]
        assert declared["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, method)
        assert "application/problem+json" in declared["content"]
    # and the server answers as declared once a limit of 3 a minute is reached
    settings = settings_for(tmp_path_factory.mktemp("limit"), workers=0, rate_limit_per_minute=3)
    with running_app(settings) as client:
        answers = [client.get("/v1/jobs") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[-1]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    jsonschema.validate(refused.json(), _resolve(doc, {"$ref": "#/components/schemas/Problem"}))


def test_readyz_keeps_its_own_503_body(doc: dict[str, Any]) -> None:
    content = doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert content == {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
