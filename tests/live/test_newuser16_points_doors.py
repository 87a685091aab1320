"""newuser16 #7, #8: a live run's points route says what is wrong with a request, not an empty or
misleading answer.

- #7: a JSON array sent as ``text/plain`` got 422 "line 1: expected a JSON object, got list" (the
  body read as JSON Lines), while a form body got the 415 naming the accepted types.
- #8: ``GET /v1/runs/{id}/points?metric=los`` (a typo) answered an empty 200: a panel showed "no data".
"""

from __future__ import annotations

import json

import pytest

POINTS = [{"step": 1, "metric": "loss", "value": 1.0}, {"step": 1, "metric": "grad_norm", "value": 2.0}]


def _run(api, name: str) -> str:  # noqa: ANN001 - the test client
    r = api.post("/v1/runs", json={"name": name, "config": {}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded"])
def test_a_type_that_is_neither_json_nor_json_lines_gets_the_415_naming_both(api, content_type):
    run = _run(api, f"type-{content_type}")
    r = api.post(f"/v1/runs/{run}/points", content=json.dumps(POINTS).encode(),
                 headers={"content-type": content_type})
    assert r.status_code == 415, r.text
    detail = r.json()["detail"]
    assert "application/json" in detail and "application/x-ndjson" in detail
    assert api.get(f"/v1/runs/{run}").json()["points"] == 0


def test_a_json_array_sent_as_json_lines_is_told_its_type(api):
    run = _run(api, "array-as-lines")
    r = api.post(f"/v1/runs/{run}/points", content=json.dumps(POINTS).encode(),
                 headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 422, r.text
    assert "line 1" in r.json()["detail"] and "Content-Type: application/json" in r.json()["detail"]
    # the same body as application/json is stored
    r = api.post(f"/v1/runs/{run}/points", json=POINTS)
    assert r.status_code == 200 and r.json()["accepted"] == len(POINTS), r.text


def test_a_metric_the_run_never_had_is_a_422_naming_its_series_and_the_closest(api):
    run = _run(api, "typo")
    assert api.post(f"/v1/runs/{run}/points", json=POINTS).status_code == 200
    r = api.get(f"/v1/runs/{run}/points", params={"metric": "los"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["parameter"] == "query.metric"
    assert "did you mean 'loss'?" in body["detail"] and "grad_norm, loss" in body["detail"]
    # a series it has: its points; past its last point (a cursor at the end): an empty page, as before
    page = api.get(f"/v1/runs/{run}/points", params={"metric": "loss"}).json()
    assert [(p["metric"], p["step"]) for p in page["items"]] == [("loss", 1)]
    first = api.get(f"/v1/runs/{run}/points", params={"limit": 1}).json()  # by series: grad_norm's one point
    assert [p["metric"] for p in first["items"]] == ["grad_norm"]
    r = api.get(f"/v1/runs/{run}/points", params={"metric": "grad_norm", "cursor": first["next_cursor"]})
    assert r.status_code == 200 and r.json()["items"] == [], r.text


def test_a_run_without_points_says_so_for_any_metric(api):
    run = _run(api, "empty")
    r = api.get(f"/v1/runs/{run}/points", params={"metric": "loss"})
    assert r.status_code == 422 and "no points yet" in r.json()["detail"], r.text
