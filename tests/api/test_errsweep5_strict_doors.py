"""errsweep5: a live run's points refuse a key named twice (as every JSON door does), and an Accept
whose q is not a decimal from 0 to 1 is a 400 on every route, not only the report routes."""

from __future__ import annotations

import uuid

import pytest

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def _run(api) -> str:
    r = api.post("/v1/runs", json={"name": f"dup-keys-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(("body", "headers", "pointer"), [
    (b'{"step":11,"metric":"loss","value":1,"value":2}', NDJSON, "line 1: /value"),
    (b'[{"step":11,"metric":"loss","value":1,"value":2}]', JSON, "/0/value"),
])
def test_points_with_a_key_named_twice_are_a_422(api, body, headers, pointer):
    run = _run(api)
    r = api.post(f"/v1/runs/{run}/points", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert pointer in r.text and "appears twice" in r.text
    assert api.get(f"/v1/runs/{run}/points").json()["items"] == []


def test_every_json_door_refuses_a_repeated_key(api):
    run = _run(api)
    doors = []
    for template, item in api.app.openapi()["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}) if isinstance(op, dict) else {}
            if method not in ("post", "put", "patch") or not any("json" in t for t in content):
                continue
            path = template.replace("{run_id}", run)
            if "{" in path:
                continue  # (a door on a job or a link needs one in a state to take a body: the run's stand in)
            doors.append((method.upper(), path))
    assert ("POST", f"/v1/runs/{run}/points") in doors and ("POST", "/v1/runs") in doors
    for method, path in doors:
        r = api.request(method, path, content=b'{"name": "a", "name": "b"}', headers=JSON)
        assert not r.is_success, (path, r.status_code, r.text)
        if r.status_code in (400, 422):
            assert "twice" in r.text, (path, r.text)


@pytest.mark.parametrize("q", ["nan", "2", "-1", "1e0", "0x1", "inf"])
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/runs", "/livez"])
def test_a_bad_accept_q_is_a_400_on_every_route(api, path, q):
    r = api.get(path, headers={"Accept": f"application/json;q={q}"})
    assert r.status_code == 400, (path, r.status_code, r.text)
    assert "header.Accept" in r.text


def test_a_good_accept_q_is_taken(api):
    assert api.get("/v1/jobs", headers={"Accept": "text/html;q=0.9, application/json;q=0.5"}).status_code == 200
