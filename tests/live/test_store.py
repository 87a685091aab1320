"""The live-run store on SQLite and PostgreSQL: idempotent inserts that say which points were new,
non-finite values kept apart, one active run per name, and compare-and-set changes."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.exc import IntegrityError

from gradhealth.db.models import RunRow
from gradhealth.live import diagnose, store
from gradhealth.live.points import Point
from gradhealth.logs.thresholds import LogThresholds


@pytest.fixture
def sessions(factory):  # noqa: ANN001, ANN201 - pytest fixture: sessions on both stores
    return factory


def test_points_are_inserted_once_and_kept_non_finite(sessions):
    with sessions() as session:
        run, created = store.create(session, owner="me", name="r", config={})
        assert created
        batch = [Point("loss", 1, 2.0), Point("loss", 2, math.nan), Point("g", 1, math.inf),
                 Point("g", 2, -math.inf), Point("loss", 1, 9.0)]  # a repeat inside the batch
        new = store.insert_points(session, run.id, batch)
        session.commit()
        assert [(p.metric, p.step) for p in new] == [("loss", 1), ("loss", 2), ("g", 1), ("g", 2)]
        again = store.insert_points(session, run.id, batch + [Point("loss", 3, 1.0)])
        session.commit()
        assert [(p.metric, p.step) for p in again] == [("loss", 3)]
        got = {(p.metric, p.step): p.value for p in store.iter_points(session, run.id)}
        assert got[("loss", 1)] == 2.0 and math.isnan(got[("loss", 2)])  # the first value stays
        assert got[("g", 1)] == math.inf and got[("g", 2)] == -math.inf
        steps, values = store.series_arrays(session, run.id, "g")
        assert steps.tolist() == [1, 2] and values.tolist() == [math.inf, -math.inf]


def test_one_active_run_per_name_and_key(sessions):
    with sessions() as session:
        a, _ = store.create(session, owner="me", name="r", config={})
        b, created = store.create(session, owner="me", name="r", config={})
        assert not created and b.id == a.id
        other, created = store.create(session, owner="you", name="r", config={})
        assert created and other.id != a.id
        # The partial unique index, not only the look-up, refuses a second active run of a name.
        now = store.utcnow()
        session.add(RunRow(id="x" * 32, owner="me", name="r", status="active", config={}, created_at=now,
                           updated_at=now, points=0, series=[], findings_state={}, events=0, version=0))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()


def test_a_change_against_a_stale_version_loses(sessions):
    with sessions() as session:
        run, _ = store.create(session, owner="me", name="r", config={})
        assert store.compare_and_set(session, run.id, 0, {"points": 1})
        assert not store.compare_and_set(session, run.id, 0, {"points": 2})
        session.commit()
        assert store.get(session, run.id, "me").version == 1


def test_append_and_finish_on_either_database(sessions):
    with sessions() as session:
        run, _ = store.create(session, owner="me", name="r", config={"clip_threshold": 1.0})
        points = [Point("grad_norm", s, 1.0) for s in range(20)] + [Point("grad_norm", 20, math.nan)]
        done = diagnose.append(session, run.id, "me", points, base=LogThresholds(), max_points=1000,
                               max_series=10)
        assert (done.accepted, done.points, done.last_step) == (21, 21, 20)
        row = store.get(session, run.id, "me")
        assert row.finding_codes and "nonfinite" in row.finding_codes.split(",")
        finished = diagnose.finish(session, run.id, "me", base=LogThresholds())
        assert finished.status == "finished"
        events = store.events_after(session, run.id, 0)
        assert [e.seq for e in events] == list(range(1, len(events) + 1)) and events[-1].event == "finished"
        # newuser17 #7: the event names the health as the run resource does (`status` kept beside it)
        assert events[-1].data["health"] == events[-1].data["status"] == "unhealthy"  # a NaN: an error
        store.delete_run(session, run.id)
        assert store.get(session, run.id, None) is None and store.count_points(session, run.id) == 0
