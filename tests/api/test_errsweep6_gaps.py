"""errsweep6 #8, the API's smaller contract gaps: a report link made for a job that can never have
a report (failed, cancelled); an Idempotency-Key sent twice, or reused with another ``?filename=``
(the first job came back under its old name); a Last-Event-ID that is no event id (replayed from
the first event)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from gradhealth.db.models import JobRow
from tests.api.helpers import TINY, Api, running_app, settings_for

CSV = b"step,loss\n" + b"".join(f"{i},{1 + i % 3}\n".encode() for i in range(30))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers: jobs stay queued until a test says otherwise."""
    with running_app(settings_for(tmp_path_factory.mktemp("gaps"), workers=0)) as client:
        yield client


def _queued(api: Api) -> str:
    r = api.post("/v1/checks/architecture", json=TINY)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_no_link_is_made_for_a_failed_or_cancelled_job(api):
    cancelled = _queued(api)
    assert api.delete(f"/v1/jobs/{cancelled}").status_code in (200, 202, 204)
    assert api.get(f"/v1/jobs/{cancelled}").json()["status"] == "cancelled"
    failed = _queued(api)
    with api.app.state.sessions() as session:
        session.execute(update(JobRow).where(JobRow.id == failed).values(status="failed", stage="failed"))
        session.commit()
    for job, status in ((cancelled, "cancelled"), (failed, "failed")):
        r = api.post(f"/v1/jobs/{job}/report/link")
        assert r.status_code == 409, r.text
        problem = r.json()
        assert problem["type"].endswith("job-has-no-report") and f"is {status}" in problem["detail"]
    # a queued job will have a report: its link is made (it answers 409 until the job succeeds)
    assert api.post(f"/v1/jobs/{_queued(api)}/report/link").status_code == 201


def test_two_idempotency_key_headers_are_a_400_naming_the_header(api):
    headers = [("Content-Type", "application/json"), ("Idempotency-Key", "x1"), ("Idempotency-Key", "x2")]
    before = len(api.get("/v1/jobs?limit=100").json()["items"])
    r = api.post("/v1/checks/architecture", content=b'{"input": {"shape": [8]}, "seeds": 1, '
                 b'"layers": [{"type": "linear", "out_features": 4}]}', headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("repeated-header") and "Idempotency-Key" in r.json()["detail"]
    for path in ("/v1/checks/logs?filename=a.csv", "/v1/checks/model"):
        assert api.post(path, content=CSV, headers=headers).status_code == 400
    assert len(api.get("/v1/jobs?limit=100").json()["items"]) == before  # no job was made
    one = api.post("/v1/checks/architecture", json=TINY, headers={"Idempotency-Key": "x3"})
    assert one.status_code == 202  # one header is as before


def test_a_reused_key_with_another_filename_is_a_conflict_as_another_body_is(api):
    key = {"Content-Type": "text/csv", "Idempotency-Key": "k2-logs"}
    first = api.post("/v1/checks/logs?filename=a.csv", content=CSV, headers=key)
    assert first.status_code == 202, first.text
    again = api.post("/v1/checks/logs?filename=a.csv", content=CSV, headers=key)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]  # a retry: the same job
    other_body = api.post("/v1/checks/logs?filename=a.csv", content=CSV + b"30,1\n", headers=key)
    assert other_body.status_code == 409
    for changed in ("/v1/checks/logs?filename=b.csv", "/v1/checks/logs?filename=a.csv&format=native"):
        r = api.post(changed, content=CSV, headers=key)
        assert r.status_code == other_body.status_code, (changed, r.text)
        assert r.json()["type"] == other_body.json()["type"] and first.json()["id"] in r.json()["detail"]


@pytest.mark.parametrize("value", ["abc", "-1", "1e100", "9" * 26, "\u0661".encode()])
def test_a_last_event_id_that_is_no_event_id_is_a_400(api, value):
    job = _queued(api)
    run = api.post("/v1/runs", json={"name": f"sse-{value[:3]!r}"}).json()["id"]
    for path in (f"/v1/jobs/{job}/events", f"/v1/runs/{run}/events"):
        r = api.get(path, headers={"Last-Event-ID": value})
        assert r.status_code == 400, (path, r.status_code)
        assert r.json()["type"].endswith("invalid-last-event-id") and "Last-Event-ID" in r.json()["detail"]
    r = api.get(f"/v1/runs/{run}/events", headers=[("Last-Event-ID", "1"), ("Last-Event-ID", "2")])
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]
