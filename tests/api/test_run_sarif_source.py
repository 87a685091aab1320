"""newuser18 #9: a live run's SARIF placed its results on an artifact named after the run (under
%SRCROOT%), a file no repository has. The run report takes ``?source=`` (as a job's does): the findings
are placed on that path; without it they stay on the run's name, as docs/ci.md says."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.helpers import Api, running_app, settings_for


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(settings_for(tmp_path_factory.mktemp("runsrc"), workers=0)) as client:
        yield client


def _uris(sarif: dict[str, Any]) -> set[str]:
    return {loc["physicalLocation"]["artifactLocation"]["uri"]
            for run in sarif["runs"] for res in run["results"] for loc in res.get("locations", [])
            if "physicalLocation" in loc}


def _diverging_run(api: Api) -> str:
    run = api.post("/v1/runs", json={"name": "nightly run"}).json()["id"]
    # a loss that grows without bound: a finding to place
    points = [{"step": s, "metric": "loss", "value": 1.0 if s < 60 else math.exp((s - 60) / 4)} for s in range(100)]
    points[-1]["value"] = "NaN"
    r = api.post(f"/v1/runs/{run}/points", content=json.dumps(points), headers={"content-type": "application/json"})
    assert r.status_code in (200, 202), r.text[:300]
    return str(run)


def test_a_run_sarif_is_placed_on_the_source_given(api: Api) -> None:
    run = _diverging_run(api)
    plain = api.get(f"/v1/runs/{run}/report?format=sarif")
    assert plain.status_code == 200, plain.text[:300]
    assert _uris(plain.json()) == {"nightly%20run"}
    placed = api.get(f"/v1/runs/{run}/report?format=sarif&source=logs/train.log")
    assert placed.status_code == 200, placed.text[:300]
    assert _uris(placed.json()) == {"logs/train.log"}
