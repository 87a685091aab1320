"""The job resource built from the stored result text (``?wait`` and ``GET /v1/jobs/{id}``) is the
document the JobRead model gives from the parsed result: same JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gradhealth.api.routers.jobs import job_response, to_read
from gradhealth.jobs import store
from gradhealth.jobs.kinds import run_architecture
from gradhealth.settings import Settings
from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py

SPEC = {"input": {"shape": [8]}, "batch_size": 4, "seeds": 1, "loss": "mse",
        "layers": [{"type": "linear", "out_features": 8, "activation": "tanh", "repeat": 3},
                   {"type": "linear", "out_features": 2}]}


def strict(body: bytes) -> Any:
    """JSON as a strict client reads it: NaN and Infinity are not JSON."""
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")
    return json.loads(body, parse_constant=refuse)


def finished(factory: sessionmaker[Session], *, result: Any = None, error: Any = None) -> str:
    with factory() as session:
        job, _ = store.submit(session, kind="architecture", owner="alice", request=SPEC,
                              idempotency_key=None, time_limit_s=60, max_attempts=1)
        store.claim(session, worker_id="w", lease_s=30)
        status = "failed" if error is not None else "succeeded"
        store.finish(session, job_id=job.id, worker_id="w", status=status, result=result, error=error)
        return job.id


def test_a_finished_job_is_sent_as_the_model_would_write_it(factory):
    doc = run_architecture(SPEC, lambda fraction, stage: None, Settings(verify_remedies=False))
    job_id = finished(factory, result=doc)
    with factory() as session:
        row = store.read(session, job_id, "alice")
        orm = store.get(session, job_id, "alice")
        assert store.read(session, job_id, "bob") is None
    assert row is not None and orm is not None
    sent = strict(job_response(row, row.result_text).body)
    assert sent == to_read(orm).model_dump(mode="json")  # the ORM row, the result parsed and validated
    assert sent["result"] == doc and sent["status"] == "succeeded" and sent["error"] is None


def test_a_failed_job_and_a_job_without_result(factory):
    job_id = finished(factory, error=store.problem("job-error", "The check failed", "boom", 500))
    with factory() as session:
        row = store.read(session, job_id, "alice")
        orm = store.get(session, job_id, "alice")
    response = job_response(row, row.result_text, status_code=202, headers={"Retry-After": "1"})
    assert response.status_code == 202 and response.headers["Retry-After"] == "1"
    assert strict(response.body) == to_read(orm).model_dump(mode="json")
    assert strict(response.body)["error"]["detail"] == "boom"


def test_a_non_finite_number_goes_through_the_model(factory):
    doc = run_architecture(SPEC, lambda fraction, stage: None, Settings(verify_remedies=False))
    job_id = finished(factory, result=doc)
    with factory() as session:
        row = store.read(session, job_id, "alice")
    # As json.dumps writes a non-finite float: the model writes it as null, and so must the response.
    text, count = re.subn(r'"grad_norm": [-0-9.e+]+', '"grad_norm": NaN', row.result_text, count=1)
    assert count == 1
    sent = strict(job_response(row, text).body)
    assert sent["result"]["layers"][0]["grad_norm"] is None
