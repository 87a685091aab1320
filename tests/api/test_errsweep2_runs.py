"""errsweep2 N4 and N5 through HTTP, on SQLite and PostgreSQL: a live-run point whose name exceeds the
published bound, and run thresholds that are not finite or absurdly large, are a 422 naming where (not
a 500 on PostgreSQL, nor stored on SQLite); and a value the database refuses anyway is a 422 problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gradhealth.db.engine import migrate
from gradhealth.live.points import Point
from tests.api.helpers import Api, running_app, settings_for
from tests.pg import create_database, database_url, drop_database, postgres_url  # noqa: F401 - pytest fixtures

JSON = {"content-type": "application/json"}


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811 - the imported fixture
    with running_app(settings_for(tmp_path, database_url=database_url, workers=0)) as client:
        yield client


@pytest.fixture
def pg_api(postgres_url: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811 - the imported fixture
    url = create_database(postgres_url)
    try:
        migrate(url)
        with running_app(settings_for(tmp_path, database_url=url, workers=0)) as client:
            yield client
    finally:
        drop_database(postgres_url, url)


def _run(api: Api, name: str) -> str:
    r = api.post("/v1/runs", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_name_over_its_published_bound_is_a_422_naming_the_record(api):
    run = _run(api, "long-names")
    url = f"/v1/runs/{run}/points"
    ok = {"step": 1, "metric": "loss", "value": 1.0}
    for point, detail in (
            ({"step": 1, "metric": "m" * 256, "value": 1.0}, "record 2: 'metric' is 256 characters; at most 255"),
            ({"step": 1, "layer": "l" * 246, "kind": "grad_norm", "value": 1.0},
             "record 2: 'layer' is 246 characters; at most 200")):
        r = api.post(url, json=[ok, point])
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == detail
    # at the bounds, both stores take them (PostgreSQL's varchar(255) holds "update_ratio/" + 200)
    r = api.post(url, json=[ok, {"step": 1, "metric": "m" * 255, "value": 1.0},
                            {"step": 1, "layer": "l" * 200, "kind": "update_ratio", "value": 1.0}])
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text


@pytest.mark.parametrize(("thresholds", "pointer", "words"), [
    (b'{"explode_error": 1e999}', "/config/thresholds/explode_error", "finite number"),
    (b'{"spike_factor": -1e999}', "/config/thresholds/spike_factor", "finite number"),
    (b'{"explode_error": NaN}', "/config/thresholds/explode_error", "finite number"),
    (b'{"window": 9223372036854775808}', "/config/thresholds/window", "less than or equal to 100"),
    (b'{"min_points": 1000000000000000000}', "/config/thresholds/min_points", "less than or equal to"),
    (b'{"validation_rise": 1e308}', "/config/thresholds/validation_rise", "less than or equal to"),
])
def test_run_thresholds_not_finite_or_unbounded_are_a_422_at_their_pointer(api, thresholds, pointer, words):
    body = b'{"name": "thr", "config": {"thresholds": %s}}' % thresholds
    r = api.post("/v1/runs", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["pointer"] == pointer and words in error["detail"], error
    assert api.get("/v1/runs").json()["items"] == []


def test_finite_thresholds_in_range_are_stored_as_given(api):
    r = api.post("/v1/runs", json={"name": "thr-ok", "config": {"thresholds": {"explode_error": 1e6, "window": 100}}})
    assert r.status_code == 201, r.text
    thresholds = r.json()["config"]["thresholds"]
    assert thresholds["explode_error"] == 1e6 and thresholds["window"] == 100


def test_a_value_the_database_refuses_is_a_422_problem_not_a_500(pg_api, monkeypatch):
    # the backstop behind the validation: a name PostgreSQL's varchar(255) refuses, past parse()
    run = _run(pg_api, "backstop")
    monkeypatch.setattr("gradhealth.api.routers.runs.parse",
                        lambda body, media, *, max_points: [Point("m" * 300, 1.0, 1.0)])
    r = pg_api.post(f"/v1/runs/{run}/points", json=[])
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 422 and "value too long" in r.json()["detail"]
    monkeypatch.undo()
    # nothing was stored, and the run takes points as before
    r = pg_api.post(f"/v1/runs/{run}/points", json=[{"step": 1, "metric": "loss", "value": 1.0}])
    assert r.status_code == 200 and r.json()["points"] == 1, r.text
