"""newuser4 P7, the service's side: two processes recording under one run name interleaved their
points into one run (and its diagnosis). A recorder names its process in ``X-Gradhealth-Writer``;
a second writer's create gets 409 ``run_in_use`` (with Retry-After) while the run's writer stored
points within ``GRADHEALTH_RUN_WRITER_LEASE_S``; after it (the first process died) a restart
re-attaches, and the old writer's points and finish get 409 ``run_taken_over``.
``?take_over=true`` takes the run at once. Requests without the header behave as before."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from gradhealth.db.models import RunRow
from gradhealth.live import store
from tests.api.helpers import running_app, settings_for

A = {"X-Gradhealth-Writer": "a1b2-100"}
B = {"X-Gradhealth-Writer": "c3d4-200"}


def _idle(api, run_id: str, seconds: float) -> None:  # noqa: ANN001 - the test client
    with api.app.state.sessions() as session:
        session.execute(update(RunRow).where(RunRow.id == run_id)
                        .values(updated_at=store.utcnow() - timedelta(seconds=seconds)))
        session.commit()


def _point(step: int) -> list[dict]:
    return [{"step": step, "metric": "loss", "value": 1.0 / (step + 1)}]


def test_a_second_writer_is_refused_while_the_first_writes_and_takes_over_after_the_lease(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_writer_lease_s=60)) as api:
        first = api.post("/v1/runs", json={"name": "shared"}, headers=A)
        assert first.status_code == 201
        run = first.json()["id"]
        assert api.post(f"/v1/runs/{run}/points", json=_point(0), headers=A).status_code == 200

        second = api.post("/v1/runs", json={"name": "shared"}, headers=B)
        assert second.status_code == 409, second.text
        problem = second.json()
        assert problem["type"].endswith("run-in-use") and run in problem["detail"]
        assert 1 <= int(second.headers["Retry-After"]) <= 60
        # the first writer re-attaching, and a caller naming no writer, are not refused
        assert api.post("/v1/runs", json={"name": "shared"}, headers=A).status_code == 200
        assert api.post("/v1/runs", json={"name": "shared"}).status_code == 200

        # The first process dies: after the lease, a restart (a new process id) re-attaches.
        _idle(api, run, 61)
        again = api.post("/v1/runs", json={"name": "shared"}, headers=B)
        assert again.status_code == 200 and again.json()["id"] == run
        assert api.post(f"/v1/runs/{run}/points", json=_point(1), headers=B).status_code == 200
        late = api.post(f"/v1/runs/{run}/points", json=_point(2), headers=A)  # the old one was only slow
        assert late.status_code == 409 and late.json()["type"].endswith("run-taken-over")
        assert api.post(f"/v1/runs/{run}/finish", headers=A).status_code == 409
        stored = api.get(f"/v1/runs/{run}/points").json()["items"]
        assert [p["step"] for p in stored] == [0, 1]  # nothing of the refused batch
        assert api.post(f"/v1/runs/{run}/finish", headers=B).json()["status"] == "finished"


def test_take_over_takes_the_run_at_once(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_writer_lease_s=600)) as api:
        run = api.post("/v1/runs", json={"name": "moved"}, headers=A).json()["id"]
        api.post(f"/v1/runs/{run}/points", json=_point(0), headers=A)
        assert api.post("/v1/runs", json={"name": "moved"}, headers=B).status_code == 409
        taken = api.post("/v1/runs?take_over=true", json={"name": "moved"}, headers=B)
        assert taken.status_code == 200 and taken.json()["id"] == run
        assert api.post(f"/v1/runs/{run}/points", json=_point(1), headers=A).status_code == 409
        assert api.post(f"/v1/runs/{run}/points", json=_point(1), headers=B).status_code == 200


def test_no_lease_and_no_header_keep_the_old_behaviour(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_writer_lease_s=0)) as api:
        run = api.post("/v1/runs", json={"name": "free"}, headers=A).json()["id"]
        api.post(f"/v1/runs/{run}/points", json=_point(0), headers=A)
        assert api.post("/v1/runs", json={"name": "free"}, headers=B).json()["id"] == run  # lease 0
        # a batch without the header is taken from anyone, as before writers existed
        assert api.post(f"/v1/runs/{run}/points", json=_point(1)).status_code == 200


def test_a_malformed_writer_header_is_a_422_naming_it(tmp_path):
    with running_app(settings_for(tmp_path, workers=0)) as api:
        r = api.post("/v1/runs", json={"name": "x"}, headers={"X-Gradhealth-Writer": "a b/c"})
        assert r.status_code == 422
        assert "X-Gradhealth-Writer" in r.text or "x-gradhealth-writer" in r.text.lower()


def _seen(api, run_id: str) -> tuple:  # noqa: ANN001 - the test client
    with api.app.state.sessions() as session:
        row = session.get(RunRow, run_id)
        return row.updated_at, row.writer_seen_at


def test_a_heartbeat_keeps_the_run_for_a_writer_slower_than_the_lease(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_writer_lease_s=60)) as api:
        run = api.post("/v1/runs", json={"name": "slow"}, headers=A).json()["id"]
        api.post(f"/v1/runs/{run}/points", json=_point(0), headers=A)
        _idle(api, run, 61)                      # a step slower than the lease...
        stored_at, _ = _seen(api, run)
        beat = api.post(f"/v1/runs/{run}/heartbeat", headers=A)
        assert beat.status_code == 204 and beat.content == b""
        after, seen = _seen(api, run)
        assert after == stored_at and seen is not None       # the last point's time is left alone
        listed = api.get(f"/v1/runs/{run}").json()
        assert listed["points"] == 1 and listed["version"] == api.get(f"/v1/runs/{run}").json()["version"]
        # ...whose process said it is alive: a second process is refused, not handed the run
        second = api.post("/v1/runs", json={"name": "slow"}, headers=B)
        assert second.status_code == 409 and second.json()["type"].endswith("run-in-use")
        # once the heartbeats stop too (the process died), the lease runs out as before
        with api.app.state.sessions() as session:
            session.execute(update(RunRow).where(RunRow.id == run)
                            .values(writer_seen_at=store.utcnow() - timedelta(seconds=61)))
            session.commit()
        assert api.post("/v1/runs", json={"name": "slow"}, headers=B).status_code == 200
        late = api.post(f"/v1/runs/{run}/heartbeat", headers=A)   # the old one was only slow
        assert late.status_code == 409 and late.json()["type"].endswith("run-taken-over")


def test_a_heartbeat_names_its_writer_and_a_live_run_of_the_caller(tmp_path):
    with running_app(settings_for(tmp_path, workers=0, run_writer_lease_s=60)) as api:
        run = api.post("/v1/runs", json={"name": "beats"}, headers=A).json()["id"]
        anonymous = api.post(f"/v1/runs/{run}/heartbeat")
        assert anonymous.status_code == 422 and "x-gradhealth-writer" in anonymous.text.lower()
        assert api.post("/v1/runs/0123456789abcdef0123456789abcdef/heartbeat", headers=A).status_code == 404
        twice = api.post(f"/v1/runs/{run}/heartbeat", headers=[("X-Gradhealth-Writer", "a"),
                                                                   ("X-Gradhealth-Writer", "b")])
        assert twice.status_code == 400
        api.post(f"/v1/runs/{run}/points", json=_point(0), headers=A)
        api.post(f"/v1/runs/{run}/finish", headers=A)
        done = api.post(f"/v1/runs/{run}/heartbeat", headers=A)
        assert done.status_code == 409 and done.json()["type"].endswith("run-finished")


def test_migration_0008_adds_the_heartbeat_column_to_existing_runs(tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from tests.helpers import migrations_at

    cfg, engine = migrations_at(tmp_path, "0007")
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO runs (id, owner, name, status, config, created_at, updated_at, points, series, "
                "findings_state, events, version, writer) VALUES ('0123456789abcdef0123456789abcdef', 'alice', "
                "'old', 'active', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0, '[]', '{}', 0, 0, 'w-1')"))
        command.upgrade(cfg, "head")
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT writer_seen_at FROM runs")).scalar_one() is None
        command.downgrade(cfg, "0007")
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("runs")}
        assert "writer_seen_at" not in columns and "writer" in columns
    finally:
        engine.dispose()


def test_a_heartbeat_without_its_header_is_a_422_even_past_the_rate_limit(tmp_path):
    # schemathesis: a request that can never succeed is refused as such, not told to come back (429)
    with running_app(settings_for(tmp_path, workers=0, rate_limit_per_minute=2)) as api:
        run = api.post("/v1/runs", json={"name": "limited"}, headers=A).json()["id"]
        while api.get("/v1/runs").status_code != 429:
            pass
        refused = api.post(f"/v1/runs/{run}/heartbeat")
        assert refused.status_code == 422 and "x-gradhealth-writer" in refused.text.lower()
        assert api.post(f"/v1/runs/{run}/heartbeat", headers=A).status_code == 429   # a valid one waits its turn
