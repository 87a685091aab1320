"""newuser4 P5: a run whose process died stays ``active`` forever. An active run that stored no
point for ``GRADHEALTH_RUN_STALE_AFTER_S`` reads ``"stale": true``, loses its per-run gauges
(their alerts resolve) and is counted in ``gradhealth_runs_active{stale="true"}``; its next point
makes it fresh again. ``GRADHEALTH_RUN_RETENTION_S`` deletes runs finished, or abandoned, longer ago.

Time is moved by writing a run's ``updated_at`` (when it last stored a point) into the past."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from gradhealth.api.security import ANONYMOUS
from gradhealth.db.models import RunEventRow, RunPointRow, RunRow
from gradhealth.live import store
from gradhealth.live.points import Point
from tests.api.helpers import running_app, settings_for
from tests.live.test_metrics_newuser4 import key, named, points, scrape


def _age(api, run_id: str, seconds: float) -> None:  # noqa: ANN001 - the test client
    with api.app.state.sessions() as session:
        session.execute(update(RunRow).where(RunRow.id == run_id)
                        .values(updated_at=store.utcnow() - timedelta(seconds=seconds)))
        session.commit()


def _gauged(api) -> set[str]:  # noqa: ANN001
    return {dict(k)["run"] for k in named(scrape(api), "gradhealth_run_health")}


def test_an_idle_active_run_is_stale_loses_its_gauges_and_comes_back_with_its_next_point(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_stale_after_s=600)) as api:
        ids = {}
        for name in ("crashed", "training"):
            ids[name] = api.post("/v1/runs", json={"name": name}).json()["id"]
            assert api.post(f"/v1/runs/{ids[name]}/points", json=points([2.0, 1.9, 1.8], 0)).status_code == 200
        assert _gauged(api) == set(ids.values())
        _age(api, ids["crashed"], 601)

        assert api.get(f"/v1/runs/{ids['crashed']}").json()["stale"] is True
        assert api.get(f"/v1/runs/{ids['training']}").json()["stale"] is False
        listed = {r["name"]: r for r in api.get("/v1/runs").json()["items"]}
        assert listed["crashed"]["stale"] and listed["crashed"]["status"] == "active"
        assert [r["name"] for r in api.get("/v1/runs?stale=true").json()["items"]] == ["crashed"]
        assert [r["name"] for r in api.get("/v1/runs?stale=false").json()["items"]] == ["training"]

        got = scrape(api)
        assert _gauged(api) == {ids["training"]}
        assert {dict(k)["run"] for k in named(got, "gradhealth_run_last_step")} == {ids["training"]}
        assert named(got, "gradhealth_runs_active") == {key(stale="false"): 1.0, key(stale="true"): 1.0}

        # The process comes back (its recorder re-attaches by name) and sends: fresh again.
        assert api.post("/v1/runs", json={"name": "crashed"}).json()["id"] == ids["crashed"]
        assert api.post(f"/v1/runs/{ids['crashed']}/points", json=points([1.7], 3)).status_code == 200
        assert api.get(f"/v1/runs/{ids['crashed']}").json()["stale"] is False
        assert _gauged(api) == set(ids.values())

        # A finished run is never stale, however old.
        api.post(f"/v1/runs/{ids['training']}/finish")
        _age(api, ids["training"], 10_000)
        assert api.get(f"/v1/runs/{ids['training']}").json()["stale"] is False
        assert named(scrape(api), "gradhealth_runs_active") == {key(stale="false"): 1.0, key(stale="true"): 0.0}


def test_stale_after_zero_means_never(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_stale_after_s=0)) as api:
        run = api.post("/v1/runs", json={"name": "slow"}).json()["id"]
        api.post(f"/v1/runs/{run}/points", json=points([1.0, 0.9], 0))
        _age(api, run, 30 * 86400)
        assert api.get(f"/v1/runs/{run}").json()["stale"] is False
        assert api.get("/v1/runs?stale=true").json()["items"] == []
        assert _gauged(api) == {run}


@pytest.fixture
def sessions(factory):  # noqa: ANN001, ANN201 - pytest fixture: sessions on both stores
    return factory


def _run(session, name: str, *, finished: bool, idle_s: float, owner: str = "me") -> str:  # noqa: ANN001
    row, _ = store.create(session, owner=owner, name=name, config={})
    store.insert_points(session, row.id, [Point("loss", 1, 1.0), Point("loss", 2, 0.9)])
    store.add_events(session, row.id, 0, [("finding", {"code": "x"})])
    then = store.utcnow() - timedelta(seconds=idle_s)
    session.execute(update(RunRow).where(RunRow.id == row.id).values(
        updated_at=then, status="finished" if finished else "active", finished_at=then if finished else None))
    session.commit()
    return row.id


def test_retention_deletes_old_finished_and_abandoned_runs_with_their_points(sessions):
    with sessions() as session:
        old_done = _run(session, "old-done", finished=True, idle_s=7200)
        abandoned = _run(session, "abandoned", finished=False, idle_s=7200)
        recent_done = _run(session, "recent-done", finished=True, idle_s=60)
        training = _run(session, "training", finished=False, idle_s=60)
        assert store.reap_runs(session, 0) == []  # 0: kept
        assert sorted(store.reap_runs(session, 3600)) == sorted([old_done, abandoned])
        left = set(session.scalars(select(RunRow.id)))
        assert left == {recent_done, training}
        for table in (RunPointRow, RunEventRow):
            owners = set(session.scalars(select(table.run_id).distinct()))
            assert owners == left, table.__tablename__
        assert session.scalar(select(func.count()).select_from(RunPointRow)) == 4
        # the stale count agrees with the same clock
        assert store.count_active(session, store.stale_cutoff(30)) == (0, 1)
        assert store.count_active(session, None) == (1, 0)


def test_the_api_sweeps_runs_past_the_retention_setting(tmp_path, caplog):
    settings = settings_for(tmp_path, workers=0, run_retention_s=3600)
    with running_app(settings) as api, api.app.state.sessions() as session:
        gone = _run(session, "gone", finished=True, idle_s=7200, owner=ANONYMOUS)
        kept = _run(session, "kept", finished=True, idle_s=10, owner=ANONYMOUS)
        assert api.get(f"/v1/runs/{gone}").status_code == 200  # read once: its state is cached
        with caplog.at_level(logging.INFO, logger="gradhealth.retention"):
            assert api.app.state.upload_sweeper.reap_runs() == 1
        assert "GRADHEALTH_RUN_RETENTION_S" in caplog.text
        assert api.get(f"/v1/runs/{gone}").status_code == 404
        assert api.get(f"/v1/runs/{kept}").status_code == 200


def test_an_api_without_workers_sweeps_old_runs_at_start_up(tmp_path):
    """Only the process running the workers used to sweep live runs: an API node of a fleet
    (``GRADHEALTH_WORKERS=0``, or KEDA at zero workers) kept them whatever the retention."""
    settings = settings_for(tmp_path, workers=0, run_retention_s=3600)
    with running_app(settings_for(tmp_path, workers=0)) as api, api.app.state.sessions() as session:
        gone = _run(session, "gone", finished=True, idle_s=7200, owner=ANONYMOUS)
        kept = _run(session, "kept", finished=False, idle_s=10, owner=ANONYMOUS)
    with running_app(settings) as api:
        deadline = time.monotonic() + 20
        while api.get(f"/v1/runs/{gone}").status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.get(f"/v1/runs/{gone}").status_code == 404
        assert api.get(f"/v1/runs/{kept}").status_code == 200
