"""errsweep6 #8 on a live run's points: a long-form point's unknown field (``__proto__``, a typo),
one naming its series by both ``metric`` and ``layer``, and a ``wall_time`` that is no time
(``"NaN"``, ``1e300``, negative) were stored silently; each is a 422 naming the record or line and
the field. What GradientRecorder sends is still taken whole."""

from __future__ import annotations

import json

import pytest

from tests.api.helpers import Api

NDJSON = {"content-type": "application/x-ndjson"}


def _run(api: Api, name: str) -> str:
    r = api.post("/v1/runs", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("point,field", [
    ({"step": 12, "metric": "loss", "value": 1, "__proto__": {"x": 1}, "constructor": 1}, "'__proto__'"),
    ({"step": 12, "metric": "loss", "valeu": 2, "value": 1}, "'valeu'"),
    ({"step": 11, "metric": "loss", "layer": "a", "kind": "grad_norm", "value": 1}, "'layer'"),
    ({"step": 13, "metric": "loss", "value": 1, "wall_time": "NaN"}, "'wall_time'"),
    ({"step": 14, "metric": "loss", "value": 1, "wall_time": 1e300}, "'wall_time'"),
    ({"step": 14, "metric": "loss", "value": 1, "wall_time": -5}, "'wall_time'"),
    ({"step": 14, "loss": 2.0, "wall_time": "inf"}, "'wall_time'"),  # a wide record's too
])
def test_a_bad_point_field_is_a_422_naming_the_record_and_field(api, point, field):
    run = _run(api, f"bad-{field}-{len(json.dumps(point))}")
    good = {"step": 1, "metric": "loss", "value": 2.0}
    r = api.post(f"/v1/runs/{run}/points", json=[good, point])
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("record 2: ") and field in r.json()["detail"]
    r = api.post(f"/v1/runs/{run}/points", content=json.dumps(point) + "\n", headers=NDJSON)
    assert r.status_code == 422 and r.json()["detail"].startswith("line 1: ") and field in r.json()["detail"]
    assert api.get(f"/v1/runs/{run}").json()["points"] == 0  # nothing of either batch was stored


def test_what_the_recorder_sends_is_taken(api):
    # the rows GradientRecorder writes (its module docstring and _rows): wall_time on the metric rows
    run = _run(api, "recorder-rows")
    rows = [{"step": 120, "metric": "loss", "value": 3.41, "wall_time": 1718000000.0},
            {"step": 120, "metric": "grad_norm", "value": "NaN", "wall_time": 1718000000.0},
            {"step": 120, "metric": "lr", "value": 0.0006, "wall_time": 1718000000.0},
            {"step": 120, "layer": "encoder.0.weight", "kind": "grad_norm", "value": 0.013},
            {"step": 121, "loss": 3.3, "wall_time": 1718000001.5}]
    r = api.post(f"/v1/runs/{run}/points", content="\n".join(map(json.dumps, rows)), headers=NDJSON)
    assert r.status_code == 200, r.text
    assert api.get(f"/v1/runs/{run}").json()["points"] == 5
