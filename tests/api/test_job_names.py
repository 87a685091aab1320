"""Jobs carry a name (newuser3 #9): the spec's ``name`` or the uploaded file's name, on the job
resource (submit, GET, the list) and in the web UI's jobs table; optional and additive (a spec
without a name, and jobs stored before migration 0006, have none), stored on SQLite and
PostgreSQL by a plain ADD COLUMN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gradhealth.jobs.store import JOB_NAME_MAX, job_name
from tests.api.helpers import TINY, running_app, settings_for
from tests.api.test_logs import native_log
from tests.api.test_model_checks import tiny_graph
from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures

APP_JS = Path(__file__).resolve().parents[2] / "service" / "ui" / "static" / "app.js"


def test_a_specs_name_is_the_jobs_name_in_get_and_the_list(idle_api):
    named = idle_api.post("/v1/checks/architecture", json=dict(TINY, name="encoder-v2"))
    assert named.status_code == 202 and named.json()["name"] == "encoder-v2"
    plain = idle_api.post("/v1/checks/architecture", json=TINY).json()
    assert plain["name"] is None  # optional: a spec without a name
    assert idle_api.get(f"/v1/jobs/{named.json()['id']}").json()["name"] == "encoder-v2"
    items = {j["id"]: j for j in idle_api.get("/v1/jobs", params={"limit": 100}).json()["items"]}
    assert items[named.json()["id"]]["name"] == "encoder-v2" and items[plain["id"]]["name"] is None


def test_an_uploads_file_name_is_the_jobs_name(idle_api):
    log = idle_api.post("/v1/checks/logs", files={"file": ("run-42.jsonl", native_log())})
    assert log.status_code == 202, log.text
    assert log.json()["name"] == "run-42.jsonl"
    raw = idle_api.post("/v1/checks/logs?format=native&filename=raw-run.jsonl", content=native_log(),
                        headers={"content-type": "application/octet-stream"})
    assert raw.status_code == 202, raw.text
    assert idle_api.get(f"/v1/jobs/{raw.json()['id']}").json()["name"] == "raw-run.jsonl"


def test_a_model_uploads_file_name_is_the_jobs_name(api):
    r = api.post("/v1/checks/model", files={"file": ("tiny.onnx", tiny_graph())}, data={"seeds": "1"})
    assert r.status_code in (200, 202), r.text
    assert r.json()["name"] == "tiny.onnx"


def test_the_name_is_stored_on_sqlite_and_postgresql(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    # database_url: migrated to head (0006 included) on each backend
    with running_app(settings_for(tmp_path, database_url=database_url, workers=0)) as api:
        job = api.post("/v1/checks/architecture", json=dict(TINY, name="pg-" + "é" * 300)).json()
        assert job["name"] is not None and len(job["name"]) == JOB_NAME_MAX
        listed = api.get("/v1/jobs").json()["items"]
        assert [j["name"] for j in listed] == [job["name"]]
        assert api.get(f"/v1/jobs/{job['id']}").json()["name"] == job["name"]


def test_job_name_is_one_bounded_line():
    assert job_name("architecture", {"name": "a\nb\x00c"}) == "a b c"
    assert job_name("logs", {"filename": "x.csv", "name": "ignored"}) == "x.csv"
    assert job_name("architecture", {"name": 3}) is None and job_name("architecture", []) is None
    assert job_name("model", {}) is None and job_name("architecture", {"name": "  "}) is None
    long = job_name("architecture", {"name": "n" * 1000})
    assert long is not None and len(long) == JOB_NAME_MAX and long.endswith("\u2026")
    assert job_name("architecture", {"name": "bad \ud800 surrogate"}) == "bad ? surrogate"


def test_the_openapi_job_schema_has_an_optional_name(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    summary = schemas["JobSummary"]
    assert "name" in summary["properties"] and "name" not in summary.get("required", [])


def test_migration_0006_adds_the_column_to_existing_jobs(tmp_path: Any) -> None:
    from alembic import command

    from tests.helpers import migrations_at

    cfg, engine = migrations_at(tmp_path, "0005")
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO jobs (id, kind, owner, status, request, request_hash, progress, stage, attempts, "
                "max_attempts, time_limit_s, cancel_requested, created_at, updated_at) VALUES "
                "('0123456789abcdef0123456789abcdef', 'architecture', 'alice', 'queued', '{}', 'h', 0, 'queued', "
                "0, 3, 60, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        command.upgrade(cfg, "head")
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT name FROM jobs")).scalar_one() is None
        command.downgrade(cfg, "0005")
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
        assert "name" not in columns and "kind" in columns
    finally:
        engine.dispose()


def test_the_ui_shows_a_jobs_name():
    js = APP_JS.read_text(encoding="utf-8")
    row = js[js.index("function row(job)"):]
    row = row[:row.index("\n  }\n")]
    assert "job.name" in row and "data-job-name" in row
