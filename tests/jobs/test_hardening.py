"""Issue 13, section 1, at the job store: on SQLite and on a real PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import base64

import pytest

from gradhealth.jobs import store
from tests.pg import postgres_url  # noqa: F401 - the fixture


def _submit(session, **kw):  # noqa: ANN001, ANN202
    args = dict(kind="architecture", owner="o", request={"a": 1}, idempotency_key=None,
                time_limit_s=60.0, max_attempts=3)
    args.update(kw)
    return store.submit(session, **args)[0]


def test_a_nul_in_a_job_id_or_a_cursor_never_reaches_the_database(factory) -> None:
    with factory() as session:
        job = _submit(session)
        assert store.get(session, job.id, None) is not None
        assert store.get(session, job.id + "\x00", None) is None
        assert store.get(session, "\x00", "o") is None
        nul = base64.urlsafe_b64encode(f"{store.as_utc(job.created_at).isoformat()}|a\x00b".encode()).decode()
        with pytest.raises(ValueError):
            store.list_jobs(session, owner="o", cursor=nul)
        # the session is still usable: nothing failed inside the database
        assert [j.id for j in store.list_jobs(session, owner="o").jobs] == [job.id]


def test_a_stored_result_never_holds_a_lone_surrogate(factory) -> None:
    with factory() as session:
        job = _submit(session)
        assert store.claim(session, worker_id="w", lease_s=30) is not None
        result = {"status": "healthy", "findings": [], "log": {"warnings": ["x\ud800"],
                                                             "params": {"k\udfff": "v\ud801"}}}
        assert store.finish(session, job_id=job.id, worker_id="w", status="succeeded", result=result)
        stored = store.get(session, job.id, None).result
    assert stored["log"] == {"warnings": ["x\ufffd"], "params": {"k\ufffd": "v\ufffd"}}
    assert "\ud800" not in str(stored)


def test_migrations_started_at_once_on_postgresql_take_turns(postgres_url: str) -> None:  # noqa: F811
    import threading

    from sqlalchemy import inspect

    from gradhealth.db.engine import make_engine, migrate
    from tests.pg import create_database, drop_database

    url = create_database(postgres_url)
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def start_a_pod() -> None:
        try:
            gate.wait()
            migrate(url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    try:
        pods = [threading.Thread(target=start_a_pod) for _ in range(4)]
        for pod in pods:
            pod.start()
        for pod in pods:
            pod.join(120)
        engine = make_engine(url)
        try:
            assert "jobs" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
    finally:
        drop_database(postgres_url, url)
    assert errors == []


def test_a_database_url_is_printed_without_its_password() -> None:
    from gradhealth.db.engine import redact_url

    shown = redact_url("postgresql://gh:s3cret-pw@db.internal:5432/gradhealth")
    assert "s3cret-pw" not in shown and shown == "postgresql://gh:***@db.internal:5432/gradhealth"
    assert redact_url("sqlite:///./data/gradhealth.db") == "sqlite:///./data/gradhealth.db"
    assert "pw" not in redact_url("::not a url pw::")


def test_progress_is_kept_to_four_decimals() -> None:
    # newuser3: 0.1 + 0.2 was shown as "fraction": 0.30000000000000004 in GET /v1/jobs/{id} and SSE
    from gradhealth.jobs.worker import _Running

    running = _Running("j", time_limit_s=60.0)
    running.check(0.1 + 0.2, "simulating")
    assert running.progress == 0.3 and repr(running.progress) == "0.3"
    running.check(1.7, "done")  # and clamped to [0, 1] as before
    assert running.progress == 1.0
