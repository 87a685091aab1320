"""newuser11 #10: a request's wrong-type value is echoed back as a spec's is ("(got 'wide')"), and a
secret never is."""

from __future__ import annotations


def test_a_wrong_type_in_a_request_is_echoed(idle_api) -> None:
    r = idle_api.post("/v1/checks/architecture", json={"input": {"shape": [784]},
                                                      "layers": [{"type": "linear", "out_features": "wide"}]})
    assert r.status_code == 422
    assert "/layers/0/out_features: Input should be a valid integer (got 'wide')" in r.json()["detail"]
    r = idle_api.get("/v1/jobs?limit=lots")
    assert r.status_code == 422 and "(got 'lots')" in r.json()["detail"], r.json()
    r = idle_api.post("/v1/webhooks", json={"url": "https://example.com/hook", "events": "job.finished"})
    assert r.status_code == 422 and "/events: Input should be a valid list (got 'job.finished')" in r.json()["detail"]


def test_a_secret_is_not_echoed(idle_api) -> None:
    r = idle_api.post("/v1/webhooks", json={"url": "https://example.com/hook", "secret": "hunter2-short"})
    assert r.status_code == 422 and "/secret" in r.json()["detail"]
    assert "hunter2" not in r.text
