"""newuser15 #3: ``gradhealth check --server --progress`` printed ``queued`` and its ``running [ N%]``
lines and then nothing: the job's end was never passed to ``on_state``. The client now calls it once
more with the finished job."""

from __future__ import annotations

from typing import Any

import httpx

from gradhealth.client import Client

SPEC = {"input": {"shape": [16]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 4}]}


def test_on_state_sees_the_finished_job() -> None:
    polls = iter([{"status": "running", "progress": {"fraction": 0.4, "stage": "simulating"}},
                  {"status": "succeeded", "progress": {"fraction": 1.0, "stage": "done"}, "result": {"findings": []}}])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"id": "j1", "status": "queued", "progress": None},
                                  headers={"Location": "/v1/jobs/j1"})
        return httpx.Response(200, json={"id": "j1", **next(polls)})

    states: list[Any] = []
    client = Client("http://gh.test", on_state=lambda job: states.append(job["status"]))
    client.http.close()
    client.http = httpx.Client(base_url="http://gh.test", transport=httpx.MockTransport(answer))
    try:
        job = client.check_architecture(SPEC, poll_s=0)
    finally:
        client.close()
    assert job["status"] == "succeeded"
    assert states == ["queued", "running", "succeeded"]
