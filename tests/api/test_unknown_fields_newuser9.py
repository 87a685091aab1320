"""newuser9 #8: a misspelt key in a request body that forbids extra keys (``POST /v1/runs``'s
config, the webhook bodies) got pydantic's "Extra inputs are not permitted", which says neither
what was meant nor what is allowed; the spec routes say ``unknown field; did you mean ...?``."""

from __future__ import annotations

from tests.api.helpers import Api


def _only(response, pointer: str) -> str:  # noqa: ANN001
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["pointer"] for e in errors] == [pointer], errors
    assert "Extra inputs are not permitted" not in response.json()["detail"]
    return errors[0]["detail"]


def test_a_misspelt_run_config_key_gets_a_did_you_mean(idle_api: Api) -> None:
    r = idle_api.post("/v1/runs", json={"name": "x", "config": {"clip_treshold": 1}})
    detail = _only(r, "/config/clip_treshold")
    assert detail.startswith("unknown field; did you mean 'clip_threshold'?"), detail
    assert "(allowed: clip_threshold, num_classes, params, thresholds)" in detail


def test_a_key_near_nothing_is_told_what_is_allowed(idle_api: Api) -> None:
    r = idle_api.post("/v1/runs", json={"name": "x", "config": {"zzz": 1}})
    assert _only(r, "/config/zzz") == "unknown field (allowed: clip_threshold, num_classes, params, thresholds)"


def test_every_forbidding_request_model_says_it_alike(idle_api: Api) -> None:
    """One place (the problem renderer), so every route's model with extra="forbid" gets it."""
    r = idle_api.post("/v1/webhooks", json={"url": "https://example.com/hook", "evnts": ["job.finished"]})
    assert _only(r, "/evnts").startswith("unknown field; did you mean 'events'?")
