"""Server-Sent Events of a job: one `progress` shape (as in GET /v1/jobs/{id}), `id:` lines that grow
across a job's whole life, and resumption with Last-Event-ID that repeats nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gradhealth.api.routers.jobs import event_id
from tests.api.helpers import TINY
from tests.helpers import parse_sse


def _stream(api, job_id: str, **headers: str | bytes):  # noqa: ANN202 - a small test helper
    """The events endpoint read through httpx streaming, as an EventSource would."""
    async def read() -> tuple[int, str]:
        async with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as r:
            return r.status_code, "".join([chunk async for chunk in r.aiter_text()])

    return api.portal.call(read)


def _row(status: str, attempts: int, progress: float) -> SimpleNamespace:
    return SimpleNamespace(status=status, attempts=attempts, progress=progress)


def test_event_ids_grow_over_a_job_that_is_requeued_and_finishes():
    # Queued, attempt 1 runs halfway, its worker dies (requeued, progress back to 0), attempt 2
    # runs and succeeds: the progress goes backwards, the ids must not.
    life = [_row("queued", 0, 0.0), _row("running", 1, 0.0), _row("running", 1, 0.37),
            _row("running", 1, 0.5), _row("queued", 1, 0.0), _row("running", 2, 0.0),
            _row("running", 2, 0.999), _row("succeeded", 2, 1.0)]
    ids = [event_id(r) for r in life] + [event_id(life[-1], done=True)]
    assert ids == sorted(set(ids)), ids
    # Cancelled while waiting for its second attempt: still after everything the first one sent.
    cancelled = _row("cancelled", 1, 0.0)
    assert event_id(cancelled) > event_id(_row("queued", 1, 0.0)) > event_id(_row("running", 1, 1.0))
    assert event_id(cancelled, done=True) > event_id(cancelled)


def test_progress_has_one_shape_and_events_have_growing_ids(api):
    job = api.post("/v1/checks/architecture", json=TINY).json()
    status, body = _stream(api, job["id"])
    assert status == 200
    events = parse_sse(body)
    assert [e["event"] for e in events][-1] == "done" and all(e["id"] is not None for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), ids
    read = api.get(f"/v1/jobs/{job['id']}").json()
    for e in events[:-1]:
        assert e["event"] == "progress"
        # The same object as the job resource's, and nothing else carries progress or stage.
        assert set(e["data"]["progress"]) == set(read["progress"]) == {"fraction", "stage"}
        assert isinstance(e["data"]["progress"]["fraction"], float) and "stage" not in e["data"]
    assert events[-2]["data"]["progress"] == read["progress"] == events[-1]["data"]["progress"]
    assert read["progress"]["fraction"] == 1.0


def test_last_event_id_resumes_after_it_and_204_once_done_was_seen(api):
    job = api.post("/v1/checks/architecture", json=TINY).json()
    events = parse_sse(_stream(api, job["id"])[1])
    done = events[-1]
    # Resuming after the last progress event gives the done event alone.
    status, body = _stream(api, job["id"], **{"Last-Event-ID": str(events[-2]["id"])})
    assert status == 200 and parse_sse(body) == [done]
    # Resuming after an id older than everything repeats nothing newer than it and misses nothing.
    status, body = _stream(api, job["id"], **{"Last-Event-ID": str(events[-2]["id"] - 1)})
    assert [e["event"] for e in parse_sse(body)] == ["progress", "done"]
    # After `done`: 204, which tells an EventSource to stop reconnecting.
    status, body = _stream(api, job["id"], **{"Last-Event-ID": str(done["id"])})
    assert status == 204 and body == ""


@pytest.mark.parametrize("garbage", ["abc", "-5", "²".encode(), "9" * 40])
def test_a_last_event_id_that_is_not_ours_is_a_400(idle_api, garbage):
    # errsweep6 #8: it was ignored, and the stream replayed from the first event
    job = idle_api.post("/v1/checks/architecture", json=TINY).json()
    r = idle_api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": garbage})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]


@pytest.mark.parametrize("garbage", [""])
def test_an_empty_last_event_id_is_ignored(idle_api, garbage):
    job = idle_api.post("/v1/checks/architecture", json=TINY).json()
    idle_api.delete(f"/v1/jobs/{job['id']}")  # cancelled while queued: the stream ends at once
    status, body = _stream(idle_api, job["id"], **{"Last-Event-ID": garbage})
    assert status == 200
    assert [e["event"] for e in parse_sse(body)] == ["progress", "done"]
    assert parse_sse(body)[-1]["data"]["status"] == "cancelled"
