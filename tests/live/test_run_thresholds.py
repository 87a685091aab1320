"""A run's own thresholds against the service's: refused at creation where together they invert a
warning/error pair, and a run stored before the service's thresholds changed still takes points,
diagnosed with the service's thresholds and a note why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gradhealth.live import store
from gradhealth.logs.thresholds import LogThresholds
from tests.api.helpers import Api, running_app, settings_for

#: The service warns at 20x and calls 50x an error; a run asking to warn only at 60x inverts them.
SERVICE = LogThresholds(explode_warning=20.0, explode_error=50.0)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_app(settings_for(tmp_path, log_thresholds=SERVICE), start_workers=False) as api:
        yield api


def test_a_run_whose_thresholds_invert_the_services_is_a_422(api: Api) -> None:
    r = api.post("/v1/runs", json={"name": "late-warning", "config": {"thresholds": {"explode_warning": 60}}})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["pointer"] == "/config/thresholds"
    assert "explode_warning (60" in error["detail"] and "explode_error (50" in error["detail"]
    assert api.get("/v1/runs").json()["items"] == []
    # a run whose warning stays under the service's error is kept
    ok = api.post("/v1/runs", json={"name": "fits", "config": {"thresholds": {"explode_warning": 30}}})
    assert ok.status_code == 201, ok.text


def test_a_stored_run_that_no_longer_fits_still_takes_points_with_a_note(api: Api) -> None:
    # stored as a run created before the service's thresholds were set as they are now
    with api.app.state.sessions() as session:
        row, _ = store.create(session, owner="anonymous", name="older",
                              config={"thresholds": {"explode_warning": 60.0}})
        run_id = row.id
    points = [{"step": i, "metric": "loss", "value": 1.0 / (i + 1)} for i in range(20)]
    r = api.post(f"/v1/runs/{run_id}/points", json=points)
    assert r.status_code == 200, r.text
    doc = api.get(f"/v1/runs/{run_id}")
    assert doc.status_code == 200, doc.text
    warnings = doc.json()["diagnosis"]["log"]["warnings"]
    assert any("do not fit the service's" in w and "explode_warning" in w for w in warnings), warnings
    finish = api.post(f"/v1/runs/{run_id}/finish")
    assert finish.status_code == 200, finish.text
