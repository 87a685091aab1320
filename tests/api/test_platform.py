"""Catalog, health, metrics, the OpenAPI surface, API keys and the rate limit."""

from __future__ import annotations

import json

from gradhealth.core.catalog import FINDINGS, REMEDIES
from gradhealth.settings import hash_key
from tests.api.helpers import TINY, running_app, settings_for

PROBLEM = "application/problem+json"


def test_catalog_lists_every_code_and_remedy(idle_api):
    body = idle_api.get("/v1/catalog").json()
    assert {e["id"] for e in body["findings"]} == set(FINDINGS)
    assert {e["id"] for e in body["remedies"]} == set(REMEDIES)


def test_health_endpoints(api, idle_api):
    assert api.get("/livez").json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["worker"].startswith("ok")
    assert idle_api.get("/readyz").json()["checks"]["worker"].startswith("external")


def test_metrics_in_prometheus_format(api):
    api.post("/v1/checks/architecture?wait=60", json=TINY)
    text = api.get("/metrics").text
    assert 'gradhealth_http_requests_total{method="POST",route="/v1/checks/architecture"' in text
    assert "gradhealth_http_request_duration_seconds_bucket" in text
    assert 'gradhealth_jobs_finished_total{kind="architecture",status="succeeded"}' in text
    assert "gradhealth_queue_depth" in text
    assert 'gradhealth_job_duration_seconds_count{kind="architecture"}' in text


def test_findings_by_code_are_counted(api):
    from tests.api.helpers import VANISHING

    api.post("/v1/checks/architecture?wait=60", json=VANISHING)
    assert 'gradhealth_findings_total{code="vanishing_gradient",severity="error"}' in api.get("/metrics").text


def test_openapi_documents_the_public_surface(idle_api):
    doc = idle_api.get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == {
        ("POST", "/v1/checks/architecture"), ("POST", "/v1/checks/logs"), ("POST", "/v1/checks/model"),
        ("GET", "/v1/jobs"), ("GET", "/v1/jobs/{job_id}"), ("GET", "/v1/jobs/{job_id}/report"),
        ("DELETE", "/v1/jobs/{job_id}"), ("GET", "/v1/jobs/{job_id}/events"), ("GET", "/v1/catalog"),
        ("GET", "/livez"), ("GET", "/readyz"), ("GET", "/metrics"),
        ("POST", "/v1/runs"), ("GET", "/v1/runs"), ("GET", "/v1/runs/{run_id}"), ("DELETE", "/v1/runs/{run_id}"),
        ("GET", "/v1/runs/{run_id}/events"), ("POST", "/v1/runs/{run_id}/finish"), ("POST", "/v1/runs/{run_id}/heartbeat"),
        ("POST", "/v1/runs/{run_id}/points"), ("GET", "/v1/runs/{run_id}/points"), ("GET", "/v1/runs/{run_id}/report"),
        ("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("GET", "/v1/webhooks/{webhook_id}"),
        ("DELETE", "/v1/webhooks/{webhook_id}"), ("PATCH", "/v1/webhooks/{webhook_id}"),
        ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
        ("POST", "/v1/webhooks/{webhook_id}/test"),
        ("POST", "/v1/jobs/{job_id}/report/link"), ("POST", "/v1/runs/{run_id}/report/link"),
        ("GET", "/v1/shared/{token}"),
    }
    schemas = doc["components"]["schemas"]
    assert {"Spec", "LinearLayer", "JobRead", "Diagnosis", "Finding", "Remedy", "Problem"} <= set(schemas)
    # The UI's page and assets are served by the app but are not API operations.
    assert not any(p == "/" or p.startswith("/ui") for p in doc["paths"])


def test_api_keys_isolate_callers_and_rate_limit(tmp_path):
    keys = f"alice={hash_key('alice-secret')},bob={hash_key('bob-secret')}"
    settings = settings_for(tmp_path, workers=0, api_keys=keys, rate_limit_per_minute=5)
    with running_app(settings) as api:
        alice, bob = {"X-API-Key": "alice-secret"}, {"X-API-Key": "bob-secret"}
        r = api.post("/v1/checks/architecture", json=TINY)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
        assert api.post("/v1/checks/architecture", json=TINY, headers={"X-API-Key": "wrong"}).status_code == 401
        job = api.post("/v1/checks/architecture", json=TINY, headers=alice).json()
        assert api.get(f"/v1/jobs/{job['id']}", headers=alice).status_code == 200
        assert api.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
        assert api.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
        assert api.get("/v1/jobs", headers=bob).json()["items"] == []
        # alice has used 2 of her 5 requests a minute; bob's bucket is his own
        for _ in range(3):
            assert api.get("/v1/jobs", headers=alice).status_code == 200
        limited = api.get("/v1/jobs", headers=alice)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.headers["content-type"] == PROBLEM
        assert api.get("/v1/jobs", headers=bob).status_code == 200


def test_keys_off_on_a_public_address_is_refused():
    settings = settings_for("/tmp", host="0.0.0.0")
    assert "GRADHEALTH_API_KEYS" in settings.unsafe_reason()
    assert settings_for("/tmp", host="0.0.0.0", allow_insecure=True).unsafe_reason() is None
    assert settings_for("/tmp", host="127.0.0.1").unsafe_reason() is None


def test_the_cli_catalog_is_the_api_catalog(idle_api, capsys):
    # Issue 14 item 12: one document, one shape (it was dicts keyed by id, without the log formats).
    from gradhealth.cli import main

    assert main(["catalog"]) == 0
    assert json.loads(capsys.readouterr().out) == idle_api.get("/v1/catalog").json()
