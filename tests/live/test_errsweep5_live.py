"""errsweep5 G6-G8 on live runs, on SQLite and PostgreSQL alike: a control character in a point's
name or a NUL in a param is a 422 naming the line and field (G6); a latest gradient norm that is
NaN or +-Inf is exported on the gauge and spelled in the API (G7); re-creating an active run with
another config is a 409 naming the fields (G8)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import Api, running_app, settings_for

NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:  # database_url: tests/pg.py, both stores
    with running_app(settings_for(tmp_path, database_url=database_url, workers=0)) as client:
        yield client


def _run(api: Api, name: str, **config: object) -> dict:
    r = api.post("/v1/runs", json={"name": name, "config": config})
    assert r.status_code == 201, r.text
    return r.json()


def _lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# --- G6: one "storable string" rule, the same answer on both stores ---------------------------------


@pytest.mark.parametrize(("bad", "field", "what"), [
    ({"step": 9, "metric": "lo\u0000ss", "value": 1.0}, "'metric'", "NUL character (U+0000) at index 2"),
    ({"step": 9, "metric": "lo\u0001ss", "value": 1.0}, "'metric'", "control character U+0001 at index 2"),
    ({"step": 9, "layer": "fc\u00001", "kind": "grad_norm", "value": 1.0}, "'layer'", "NUL character"),
    ({"step": 9, "lo\u0000ss": 1.0}, "the series name", "NUL character"),
])
def test_a_control_character_in_a_points_name_is_a_422_naming_its_line_and_field(api, bad, field, what):
    run = _run(api, "nul-names")
    rows = [{"step": i, "metric": "loss", "value": 1.0 / (i + 1)} for i in range(9)] + [bad]
    r = api.post(f"/v1/runs/{run['id']}/points", content=_lines(rows), headers=NDJSON)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"line 10: {field}") and what in detail, detail
    assert "cannot be stored: PostgreSQL" not in detail
    # the whole batch is refused before anything is stored, on either store
    assert api.get(f"/v1/runs/{run['id']}").json()["points"] == 0
    # a JSON array names the record
    r = api.post(f"/v1/runs/{run['id']}/points", json=rows)
    assert r.status_code == 422 and r.json()["detail"].startswith(f"record 10: {field}"), r.text


def test_a_nul_in_a_runs_param_is_a_422_naming_it_and_other_text_is_kept(api):
    for params, where in (({"note": "a\u0000b"}, "the value of 'note'"), ({"k\u0000": "1"}, "the key 'k\\x00'"),
                          ({"k\tx": "1"}, "the key 'k\\tx'")):
        r = api.post("/v1/runs", json={"name": "nul-params", "config": {"params": params}})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail.startswith("/config/params:") and where in detail, detail
    # a param's value is free text: a line break in it is stored (only a NUL cannot be)
    run = _run(api, "multiline-param", params={"optimizer": "SGD (\n  lr: 0.1\n)"})
    assert run["config"]["params"]["optimizer"] == "SGD (\n  lr: 0.1\n)"


# --- G7: a non-finite latest gradient norm, exported and spelled ------------------------------------


def _gauge(api: Api, run_id: str) -> float | None:
    for family in text_string_to_metric_families(api.get("/metrics").text):
        if family.name == "gradhealth_run_grad_norm":
            for sample in family.samples:
                if sample.labels["run"] == run_id:
                    return sample.value
    return None


@pytest.mark.parametrize(("last", "spelled"), [("NaN", "NaN"), ("Infinity", "Infinity"),
                                               ("-Infinity", "-Infinity"), ("1.5", 1.5)])
def test_a_non_finite_latest_grad_norm_is_on_the_gauge_and_spelled_in_the_api(api, last, spelled):
    run = _run(api, f"gauge-{last}")
    body = _lines([{"step": i, "metric": "grad_norm", "value": 1.0} for i in range(10)])
    body += f'{{"step": 10, "metric": "grad_norm", "value": {last}}}\n'
    assert api.post(f"/v1/runs/{run['id']}/points", content=body, headers=NDJSON).status_code == 200
    got = api.get(f"/v1/runs/{run['id']}").json()
    assert got["grad_norm"] == spelled
    listed = {r["id"]: r for r in api.get("/v1/runs").json()["items"]}
    assert listed[run["id"]]["grad_norm"] == spelled
    value = _gauge(api, run["id"])
    assert value is not None, "the gauge left out the run"
    expected = float(spelled)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected
    # the spelling is one a point's value takes back
    again = _lines([{"step": 11, "metric": "grad_norm", "value": got["grad_norm"]}])
    assert api.post(f"/v1/runs/{run['id']}/points", content=again, headers=NDJSON).status_code == 200


def test_a_run_without_a_grad_norm_series_has_no_grad_norm(api):
    run = _run(api, "no-norm")
    body = _lines([{"step": i, "metric": "loss", "value": float("nan") if i == 4 else 1.0} for i in range(5)]
                  ).replace("NaN", '"nan"')
    assert api.post(f"/v1/runs/{run['id']}/points", content=body, headers=NDJSON).status_code == 200
    assert api.get(f"/v1/runs/{run['id']}").json()["grad_norm"] is None
    assert _gauge(api, run["id"]) is None


# --- G8: re-creating an active run with another config ----------------------------------------------


def test_recreating_an_active_run_with_another_config_is_a_409_naming_the_fields(api):
    first = _run(api, "reattach-config", clip_threshold=1.0, params={"lr": "0.1"})
    r = api.post("/v1/runs", json={"name": "reattach-config",
                                   "config": {"clip_threshold": 50, "params": {"lr": "0.1"},
                                              "thresholds": {"explode_warning": 20.0}}})
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert first["id"] in detail and "clip_threshold: 1.0 (the run's) != 50.0 (sent)" in detail, detail
    assert "thresholds.explode_warning: unset (the run's) != 20.0 (sent)" in detail, detail
    assert "params.lr" not in detail
    # nothing changed
    assert api.get(f"/v1/runs/{first['id']}").json()["config"] == first["config"]
    # the same config (written differently) re-attaches, as does a create without a config
    same = api.post("/v1/runs", json={"name": "reattach-config", "config": {"params": {"lr": "0.1"},
                                                                             "clip_threshold": 1}})
    assert same.status_code == 200 and same.json()["id"] == first["id"], same.text
    bare = api.post("/v1/runs", json={"name": "reattach-config"})
    assert bare.status_code == 200 and bare.json()["id"] == first["id"], bare.text
    # a config that leaves a stored field out re-attaches: a restarted recorder may not know it
    # (tests/test_recorder_service.py), and nothing it sent is dropped
    left_out = api.post("/v1/runs", json={"name": "reattach-config", "config": {}})
    assert left_out.status_code == 200 and left_out.json()["config"] == first["config"], left_out.text
