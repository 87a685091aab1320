"""apisweep4: defects of the live-run additions (stale runs, retention, the writer lease).

- D3: a batch racing its run's deletion got 500 (``ObjectDeletedError``) instead of 404.
- D4: the retention sweep deleted runs that had just stored points (the 200 already sent).
- D10: ``?take_over=true`` without ``X-Gradhealth-Writer`` took nothing, silently; two writer
  headers were taken.
- D11: ``run_in_use`` said "its last points came 0 s ago" of a run without points.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.sql import Delete

from gradhealth.db.models import RunPointRow, RunRow
from gradhealth.live import diagnose, store
from gradhealth.live.points import Point
from gradhealth.logs.thresholds import LogThresholds
from tests.api.helpers import running_app, settings_for


@pytest.fixture
def sessions(factory):  # noqa: ANN001, ANN201 - pytest fixture: sessions on both stores
    return factory


def test_a_batch_racing_its_runs_deletion_is_run_gone_not_a_crash(sessions, monkeypatch):
    with sessions() as session:
        run_id = store.create(session, owner="me", name="racing", config={})[0].id

    def deleted_meanwhile(session, run, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        # the compare-and-set lost to a DELETE that came first: rolled back, the row gone
        session.rollback()
        with sessions() as other:
            store.delete_run(other, run_id)
        return False

    monkeypatch.setattr(diagnose, "_commit", deleted_meanwhile)
    with sessions() as session:
        out = diagnose.append_batches(session, run_id, "me", [[Point("loss", 1, 1.0)]], base=LogThresholds(),
                                      max_points=1000, max_series=100)
    assert len(out) == 1 and isinstance(out[0], diagnose.RunGone)


def test_the_retention_sweep_keeps_a_run_that_stored_points_after_it_looked(sessions):
    with sessions() as session:
        run = store.create(session, owner="me", name="late-batch", config={})[0]
        run_id = run.id
        store.insert_points(session, run_id, [Point("loss", 1, 1.0)])
        session.execute(update(RunRow).where(RunRow.id == run_id)
                        .values(updated_at=store.utcnow() - timedelta(hours=2)))
        session.commit()

        fired = []

        @event.listens_for(session, "do_orm_execute")
        def batch_lands(state):  # noqa: ANN001, ANN202 - between the look-up and the DELETE, a batch lands
            if isinstance(state.statement, Delete) and not fired:
                fired.append(True)
                state.session.execute(update(RunRow).where(RunRow.id == run_id).values(updated_at=store.utcnow()))

        assert store.reap_runs(session, 3600) == []
        assert fired  # the race happened
        assert session.scalar(select(RunRow.id).where(RunRow.id == run_id)) == run_id
        assert session.scalar(select(RunPointRow.step).where(RunPointRow.run_id == run_id)) == 1


def test_take_over_needs_a_writer_and_one_writer_header_only(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        r = api.post("/v1/runs?take_over=true", json={"name": "x"})
        assert r.status_code == 422 and "X-Gradhealth-Writer" in r.json()["detail"]
        two = api.post("/v1/runs", json={"name": "x"},
                       headers=[("X-Gradhealth-Writer", "a-1"), ("X-Gradhealth-Writer", "b-2")])
        assert two.status_code == 400 and "several X-Gradhealth-Writer" in two.json()["detail"]


def test_run_in_use_of_a_run_without_points_says_so(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_writer_lease_s=60)) as api:
        api.post("/v1/runs", json={"name": "empty"}, headers={"X-Gradhealth-Writer": "a-1"})
        r = api.post("/v1/runs", json={"name": "empty"}, headers={"X-Gradhealth-Writer": "b-2"})
        assert r.status_code == 409
        assert "has no points yet" in r.json()["detail"] and "last points" not in r.json()["detail"]
