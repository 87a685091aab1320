"""PATCH /v1/webhooks/{id}: each field changes alone, the URL is checked as at registration, bad or
unknown fields are problems with pointers, another key's webhook is 404, pausing cancels what is
pending and queues nothing new, and a rotated secret signs the next delivery (the old one no longer
verifies it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gradhealth.webhooks import outbox, registry
from tests.api.helpers import Api
from tests.webhooks.helpers import ALICE, BOB
from tests.webhooks.receiver import receiver, verify, wait_delivery

PUBLIC = "https://93.184.216.34/hook"
OLD_SECRET = "old-secret-0123456789abcdef"


def patch(api: Api, webhook_id: str, body: Any, headers: dict[str, str] = ALICE) -> Any:
    return api.request("PATCH", f"/v1/webhooks/{webhook_id}", json=body, headers=headers)


def create(api: Api, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/webhooks", json={"url": PUBLIC, **body}, headers=ALICE)
    assert r.status_code == 201, r.text
    return r.json()


def shown(api: Api, webhook_id: str, headers: dict[str, str] = ALICE) -> dict[str, Any]:
    r = api.get(f"/v1/webhooks/{webhook_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_field_changes_alone(strict_api: Api) -> None:
    hook = create(strict_api, secret=OLD_SECRET)
    before = shown(strict_api, hook["id"])
    assert before["active"] and before["disabled_reason"] is None and before["disabled_at"] is None

    r = patch(strict_api, hook["id"], {"url": "https://93.184.216.34/moved"})
    assert r.status_code == 200, r.text
    assert r.json()["secret"] is None  # shown only when rotated
    assert shown(strict_api, hook["id"]) == {**before, "url": "https://93.184.216.34/moved"}

    r = patch(strict_api, hook["id"], {"events": ["run.error_finding", "run.error_finding"]})
    assert r.status_code == 200, r.text
    assert shown(strict_api, hook["id"])["events"] == ["run.error_finding"]  # once each

    assert patch(strict_api, hook["id"], {}).status_code == 200  # nothing to change: unchanged
    after = shown(strict_api, hook["id"])
    assert after == {**before, "url": "https://93.184.216.34/moved", "events": ["run.error_finding"]}
    with strict_api.app.state.sessions() as session:
        assert registry.get(session, hook["id"], "alice").secret == OLD_SECRET  # untouched by the above

    assert patch(strict_api, hook["id"], {"secret": "n" * 20}).json()["secret"] is None  # the caller knows it
    with strict_api.app.state.sessions() as session:
        assert registry.get(session, hook["id"], "alice").secret == "n" * 20


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "http://[::1]/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://2130706433/hook",
                                 "ftp://93.184.216.34/", "https://me:pw@93.184.216.34/"])
def test_a_new_url_is_checked_as_at_registration(strict_api: Api, url: str) -> None:
    hook = create(strict_api)
    r = patch(strict_api, hook["id"], {"url": url})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/invalid-webhook-url")
    assert [e["pointer"] for e in r.json()["errors"]] == ["/url"]
    assert shown(strict_api, hook["id"])["url"] == PUBLIC  # unchanged


@pytest.mark.parametrize(("body", "pointer"), [
    ({"colour": "red"}, "/colour"),
    ({"url": PUBLIC, "owner": "bob"}, "/owner"),
    ({"events": []}, "/events"),
    ({"events": ["job.started"]}, "/events/0"),
    ({"secret": "short"}, "/secret"),
    ({"active": "maybe"}, "/active"),
    ({"url": None}, "/url"),
    ({"active": None}, "/active"),
    ({"secret": "s" * 20, "rotate_secret": True}, "/secret"),
])
def test_bad_or_unknown_fields_are_problems_with_pointers(strict_api: Api, body: dict, pointer: str) -> None:
    hook = create(strict_api)
    before = shown(strict_api, hook["id"])
    r = patch(strict_api, hook["id"], body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert pointer in [e["pointer"] for e in r.json()["errors"]], r.json()
    assert shown(strict_api, hook["id"]) == before
    expected = "/conflicting-fields" if "rotate_secret" in body else "/invalid-request"
    assert r.json()["type"].endswith(expected)


def test_a_body_that_is_not_an_object_is_refused(strict_api: Api) -> None:
    hook = create(strict_api)
    r = patch(strict_api, hook["id"], ["active", False])
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_another_keys_webhook_is_not_found(strict_api: Api) -> None:
    hook = create(strict_api)
    for body in ({"active": False}, {"rotate_secret": True}, {"url": "https://93.184.216.34/bob"}):
        r = patch(strict_api, hook["id"], body, headers=BOB)
        assert r.status_code == 404 and r.json()["type"].endswith("/webhook-not-found")
    assert shown(strict_api, hook["id"])["active"] and shown(strict_api, hook["id"])["url"] == PUBLIC
    assert patch(strict_api, "0" * 32, {"active": False}).status_code == 404
    assert patch(strict_api, "not-an-id", {"active": False}).status_code == 404
    assert strict_api.request("PATCH", f"/v1/webhooks/{hook['id']}", json={}, headers={}).status_code == 401


def test_pausing_cancels_the_pending_deliveries_and_resuming_clears_the_reason(strict_api: Api) -> None:
    """``strict_api`` runs no deliverer: the queued deliveries stay pending until the pause."""
    hook = create(strict_api)
    with strict_api.app.state.sessions() as session:
        queued = [outbox.queue(session, hook["id"], "ping", {"n": n}).id for n in range(3)]
        session.commit()
    r = patch(strict_api, hook["id"], {"active": False})
    assert r.status_code == 200, r.text
    paused = shown(strict_api, hook["id"])
    assert paused["active"] is False and paused["disabled_reason"] == "paused by its owner"
    at = datetime.fromisoformat(paused["disabled_at"])
    assert abs(at - datetime.now(UTC)) < timedelta(minutes=1)
    log = strict_api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=ALICE).json()["items"]
    assert sorted(d["id"] for d in log) == sorted(queued)
    assert {(d["status"], d["attempts"], d["next_attempt_at"], d["last_error"]) for d in log} == {
        ("cancelled", 0, None, registry.CANCELLED)}

    # Paused: no new event is queued for it, and a test ping is refused.
    with strict_api.app.state.sessions() as session:
        outbox.enqueue(session, owner="alice", event="job.finished", payload={"job_id": "j"})
        session.commit()
    assert len(strict_api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=ALICE).json()["items"]) == 3
    ping = strict_api.post(f"/v1/webhooks/{hook['id']}/test", headers=ALICE)
    assert ping.status_code == 409 and ping.json()["type"].endswith("/webhook-paused")

    assert patch(strict_api, hook["id"], {"active": True}).status_code == 200
    resumed = shown(strict_api, hook["id"])
    assert resumed["active"] is True and resumed["disabled_reason"] is None and resumed["disabled_at"] is None
    with strict_api.app.state.sessions() as session:
        outbox.enqueue(session, owner="alice", event="job.finished", payload={"job_id": "k"})
        session.commit()
    log = strict_api.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=ALICE).json()["items"]
    assert [(d["status"], d["payload"]) for d in log[:1]] == [("pending", {"job_id": "k"})]
    assert strict_api.post(f"/v1/webhooks/{hook['id']}/test", headers=ALICE).status_code == 202


def test_a_rotated_secret_signs_the_next_delivery(hooks_api: Api) -> None:
    with receiver() as rx:
        hook = hooks_api.post("/v1/webhooks", json={"url": rx.url, "secret": OLD_SECRET}, headers=ALICE).json()
        r = patch(hooks_api, hook["id"], {"rotate_secret": True})
        assert r.status_code == 200, r.text
        new = r.json()["secret"]
        assert new.startswith("whsec_") and len(new) > 40 and new != OLD_SECRET
        assert "secret" not in shown(hooks_api, hook["id"])  # shown once, in the PATCH's answer
        again = patch(hooks_api, hook["id"], {"rotate_secret": True}).json()["secret"]
        assert again != new  # each rotation a fresh one
        assert hooks_api.post(f"/v1/webhooks/{hook['id']}/test", headers=ALICE).status_code == 202
        (got,) = rx.wait_for(1)
        wait_delivery(hooks_api, hook["id"], "delivered", ALICE)
    assert verify(again, got)
    assert not verify(new, got) and not verify(OLD_SECRET, got)
