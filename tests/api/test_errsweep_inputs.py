"""errsweep E13-E15 over HTTP: a spec body's charset and Content-Encoding, the depth guard's pointer,
YAML 1.2 numbers, and unknown query parameters on the list endpoints."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest

from gradhealth.analysis.spec import MAX_DEPTH
from tests.api.helpers import TINY, Api, running_app, settings_for

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers: jobs stay queued (nothing here needs a result)."""
    with running_app(settings_for(tmp_path_factory.mktemp("errsweep"), workers=0,
                                  max_body_bytes=2_000_000)) as client:
        yield client


def spec(app: Api, body: bytes, headers: dict[str, str]) -> Any:
    return app.post("/v1/checks/architecture", content=body, headers=headers)


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == PROBLEM
    return r.json()


# --- E14a/b: a charset other than UTF-8, a Content-Encoding the service does not decode -------------


@pytest.mark.parametrize("charset", ["utf-16", '"UTF-16LE"', "latin-1"])
def test_a_spec_in_another_charset_is_415_naming_it(app, charset):
    body = json.dumps(TINY).encode("utf-16")
    detail = problem(spec(app, body, {"content-type": f"application/json; charset={charset}"}), 415)["detail"]
    assert charset.strip('"').lower() in detail and "UTF-8" in detail


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "utf8", "us-ascii"])
def test_a_utf8_charset_is_still_accepted(app, charset):
    for media in ("application/json", "application/yaml"):
        r = spec(app, json.dumps(TINY).encode(), {"content-type": f"{media}; charset={charset}"})
        assert r.status_code == 202, r.text


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_a_compressed_spec_is_415_naming_the_content_encoding(app, encoding):
    body = gzip.compress(json.dumps(TINY).encode())
    r = spec(app, body, {"content-type": "application/json", "content-encoding": encoding})
    assert r.headers.get("accept-encoding") == "identity"
    assert problem(r, 415)["detail"] == (f"Content-Encoding {encoding} is not supported; "
                                         "send the body uncompressed")


def test_identity_content_encoding_is_accepted(app):
    r = spec(app, json.dumps(TINY).encode(), {"content-type": "application/json", "content-encoding": "identity"})
    assert r.status_code == 202, r.text


def test_points_refuse_a_content_encoding_and_a_foreign_charset_too(app):
    run = app.post("/v1/runs", json={"name": "errsweep"})
    assert run.status_code == 201, run.text
    url = f"/v1/runs/{run.json()['id']}/points"
    body = json.dumps([{"step": 1, "metric": "loss", "value": 1.0}]).encode()
    r = app.post(url, content=gzip.compress(body), headers={"content-type": "application/json",
                                                            "content-encoding": "gzip"})
    assert "Content-Encoding gzip" in problem(r, 415)["detail"]
    r = app.post(url, content=body.decode().encode("utf-16"),
                 headers={"content-type": "application/json; charset=utf-16"})
    assert "utf-16" in problem(r, 415)["detail"]
    r = app.post(url, content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


# --- E13: JSON nested past the parser's stack still gets a pointer ------------------------------------


def test_a_json_spec_of_blocks_nested_900_deep_is_400_with_the_pointer(app):
    levels = 900
    body = ('{"input": {"shape": [8]}, "seeds": 1, "layers": [' + '{"type": "block", "layers": [' * levels
            + '{"type": "linear", "out_features": 4}' + "]}" * levels + "]}")
    detail = problem(spec(app, body.encode(), {"content-type": "application/json"}), 400)["detail"]
    assert detail == (f"the spec is nested more than {MAX_DEPTH} levels deep, at "
                      + "/layers/0" * ((MAX_DEPTH - 1) // 2 + 1))


# --- E15a: YAML 1.1's sexagesimal integers are text -------------------------------------------------


def test_a_sexagesimal_yaml_integer_is_422_at_its_pointer(app):
    body = b"input: {shape: [8]}\nseeds: 1\nlayers:\n  - {type: linear, out_features: 1:30}\n"
    errors = problem(spec(app, body, {"content-type": "application/yaml"}), 422)["errors"]
    assert [e["pointer"] for e in errors] == ["/layers/0/out_features"]


# --- E15b: a list endpoint refuses a query parameter it does not take ------------------------------


@pytest.mark.parametrize("url, allowed", [
    ("/v1/runs?kind=bogus", "cursor, limit, stale, status"),
    ("/v1/jobs?stauts=queued", "cursor, kind, limit, status"),
])
def test_list_endpoints_refuse_unknown_query_parameters_naming_those_they_take(app, url, allowed):
    body = problem(app.get(url), 422)
    name = url.split("?")[1].split("=")[0]
    assert body["errors"][0]["parameter"] == f"query.{name}"
    assert f"allowed: {allowed}" in body["detail"]


def test_list_endpoints_still_take_their_own_parameters(app):
    assert app.get("/v1/runs?status=active&limit=5").status_code == 200
    assert app.get("/v1/jobs?kind=architecture&status=queued&limit=5").status_code == 200
    body = problem(app.get("/v1/jobs?kind=bogus"), 422)  # an enumerated one names its values
    assert body["errors"][0]["parameter"] == "query.kind" and "'architecture'" in body["detail"]
