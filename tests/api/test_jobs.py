"""Jobs: read, SSE, list with filters and cursors, cancel and delete, 404 and 405."""

from __future__ import annotations

import json

from tests.api.helpers import TINY

PROBLEM = "application/problem+json"


def _events(body: str) -> list[tuple[str, dict]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if not lines:  # a comment-only block: the stream's keep-alive while a slow job runs
            continue
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_events_stream_progress_then_the_final_state(api):
    job = api.post("/v1/checks/architecture", json=TINY).json()
    r = api.get(f"/v1/jobs/{job['id']}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert events[0][0] == "progress" and events[-1][0] == "done"
    assert events[-1][1]["status"] == "succeeded" and events[-1][1]["result"]["status"] == "healthy"
    fractions = [data["progress"]["fraction"] for name, data in events if name == "progress"]
    assert fractions == sorted(fractions)


def test_list_filters_and_paginates_newest_first(idle_api):
    ids = [idle_api.post("/v1/checks/architecture", json=dict(TINY, name=f"n{i}")).json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = idle_api.get("/v1/jobs", params={"limit": 2, "status": "queued", "kind": "architecture",
                                                **({"cursor": cursor} if cursor else {})}).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i for i in seen if i in ids] == ids[::-1]
    assert len(seen) == len(set(seen))
    assert idle_api.get("/v1/jobs", params={"status": "succeeded"}).json()["items"] == []
    r = idle_api.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert idle_api.get("/v1/jobs", params={"status": "bogus"}).status_code == 422


def test_cancel_a_queued_job_then_delete_it(idle_api):
    job = idle_api.post("/v1/checks/architecture", json=dict(TINY, name="cancel me")).json()
    r = idle_api.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert idle_api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert idle_api.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_unknown_job_is_404_problem(idle_api):
    for r in (idle_api.get("/v1/jobs/nope"), idle_api.get("/v1/jobs/nope/events"), idle_api.delete("/v1/jobs/nope")):
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM and "nope" in r.json()["detail"]


def test_wrong_method_is_405_with_allow(idle_api):
    r = idle_api.request("PUT", "/v1/checks/architecture", json=TINY)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.headers["content-type"] == PROBLEM and "POST" in r.json()["detail"]


def test_unknown_path_is_404_problem(idle_api):
    r = idle_api.get("/v2/anything")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
