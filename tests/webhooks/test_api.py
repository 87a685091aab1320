"""/v1/webhooks: registration (secret shown once), refusal of private targets with a pointer,
ownership by key, deletion with the delivery log, and the schema in OpenAPI."""

from __future__ import annotations

import pytest

from tests.api.helpers import Api
from tests.webhooks.helpers import ALICE, BOB

REFUSED = ["http://127.0.0.1/hook", "http://[::1]/hook", "http://10.1.2.3/hook",
           "http://169.254.169.254/latest/meta-data/", "http://localhost:8080/hook",
           "http://[::ffff:127.0.0.1]/hook", "http://2130706433/hook", "http://0x7f.0.0.1/hook"]


@pytest.mark.parametrize("url", REFUSED)
def test_private_targets_are_refused_with_a_pointer_to_the_url(strict_api: Api, url: str) -> None:
    r = strict_api.post("/v1/webhooks", json={"url": url}, headers=ALICE)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/invalid-webhook-url")
    assert problem["errors"][0]["pointer"] == "/url"
    assert "public addresses" in problem["detail"]
    assert strict_api.get("/v1/webhooks", headers=ALICE).json()["items"] == []


@pytest.mark.parametrize(("body", "pointer"), [
    ({"url": "ftp://93.184.216.34/"}, "/url"), ({"url": "https://me:pw@93.184.216.34/"}, "/url"),
    ({"url": "https://93.184.216.34/", "events": ["job.started"]}, "/events/0"),
    ({"url": "https://93.184.216.34/", "events": []}, "/events"),
    ({"url": "https://93.184.216.34/", "secret": "short"}, "/secret"),
    ({"url": "https://93.184.216.34/", "bogus": 1}, "/bogus"),   # refused as PATCH refuses it
    ({"url": "http://93.184.216.34:0/"}, "/url"),
])
def test_bad_bodies_are_problems_with_pointers(strict_api: Api, body: dict, pointer: str) -> None:
    r = strict_api.post("/v1/webhooks", json=body, headers=ALICE)
    assert r.status_code == 422, r.text
    assert pointer in [e["pointer"] for e in r.json()["errors"]]


def test_a_public_target_is_registered_and_its_secret_shown_once(strict_api: Api) -> None:
    r = strict_api.post("/v1/webhooks", json={"url": "https://93.184.216.34/hook"}, headers=ALICE)
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/v1/webhooks/{created['id']}"
    assert created["events"] == ["job.finished", "run.error_finding"]
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    shown = strict_api.get(f"/v1/webhooks/{created['id']}", headers=ALICE).json()
    assert "secret" not in shown and shown["url"] == "https://93.184.216.34/hook"
    listed = strict_api.get("/v1/webhooks", headers=ALICE).json()["items"]
    assert all("secret" not in item for item in listed) and created["id"] in [i["id"] for i in listed]
    given = strict_api.post("/v1/webhooks", json={"url": "https://93.184.216.34/other", "events": ["job.finished"],
                                                  "secret": "s" * 32}, headers=ALICE).json()
    assert given["secret"] == "s" * 32 and given["events"] == ["job.finished"]


def test_webhooks_belong_to_their_key(hooks_api: Api) -> None:
    mine = hooks_api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/alice"}, headers=ALICE).json()["id"]
    base = f"/v1/webhooks/{mine}"
    assert hooks_api.get(base, headers=BOB).status_code == 404
    assert hooks_api.get(f"{base}/deliveries", headers=BOB).status_code == 404
    assert hooks_api.post(f"{base}/test", headers=BOB).status_code == 404
    assert hooks_api.delete(base, headers=BOB).status_code == 404
    assert mine not in [i["id"] for i in hooks_api.get("/v1/webhooks", headers=BOB).json()["items"]]
    assert hooks_api.get(base, headers=ALICE).status_code == 200
    assert hooks_api.get("/v1/webhooks", headers={}).status_code == 401
    assert hooks_api.delete(base, headers=ALICE).status_code == 204
    assert hooks_api.get(base, headers=ALICE).status_code == 404
    assert hooks_api.get("/v1/webhooks/not-an-id", headers=ALICE).status_code == 404


def test_the_endpoints_are_in_openapi(strict_api: Api) -> None:
    paths = strict_api.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/webhooks"]) == {"get", "post"}
    assert set(paths["/v1/webhooks/{webhook_id}"]) == {"get", "patch", "delete"}
    assert "get" in paths["/v1/webhooks/{webhook_id}/deliveries"]
    assert "post" in paths["/v1/webhooks/{webhook_id}/test"]
    assert "201" in paths["/v1/webhooks"]["post"]["responses"]


def test_the_schema_offers_exactly_the_events_the_outbox_sends(strict_api: Api) -> None:
    from gradhealth.webhooks.outbox import EVENTS

    create = strict_api.get("/openapi.json").json()["components"]["schemas"]["WebhookCreate"]
    assert tuple(create["properties"]["events"]["items"]["enum"]) == EVENTS
    assert tuple(create["properties"]["events"]["default"]) == EVENTS
