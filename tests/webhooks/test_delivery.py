"""Deliveries over real sockets: a receiver verifies the HMAC of a finished job's event by its own
computation; a receiver that fails twice gets the event on the third attempt (logged); attempts end
in `failed`; redirects are not followed; the check at delivery time refuses a name that resolves to
a private address, and the connection goes to the address checked; concurrent deliverers send each
delivery once; a ping reaches the receiver."""

from __future__ import annotations

import json
import random
import shutil
import ssl
import subprocess
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.db.models import WebhookDeliveryRow
from gradhealth.jobs import store
from gradhealth.webhooks import outbox, registry
from gradhealth.webhooks.deliver import Deliverer, backoff_s
from tests.api.helpers import Api
from tests.webhooks.helpers import ALICE, BOB, key_settings
from tests.webhooks.receiver import receiver, verify, wait_delivery

SECRET = "test-secret-0123456789"


def finish_job(sessions: sessionmaker[Session], owner: str, result: dict[str, Any]) -> str:
    """A job of ``owner`` run to success through the job store, as a worker does."""
    with sessions() as session:
        job, _ = store.submit(session, kind="logs", owner=owner, request={"path": "x"}, idempotency_key=None,
                              time_limit_s=60, max_attempts=1)
        assert store.claim(session, worker_id="w", lease_s=60).id == job.id
        assert store.finish(session, job_id=job.id, worker_id="w", status="succeeded", result=result)
        return job.id


RESULT = {"status": "error", "findings": [{"code": "exploding_gradients", "severity": "error"},
                                          {"code": "loss_spikes", "severity": "warning"}]}


def test_a_finished_job_is_delivered_signed_to_its_owner_only(hooks_api: Api) -> None:
    with receiver() as alice_rx, receiver() as bob_rx:
        hook = hooks_api.post("/v1/webhooks", json={"url": alice_rx.url, "secret": SECRET}, headers=ALICE).json()
        bobs = hooks_api.post("/v1/webhooks", json={"url": bob_rx.url}, headers=BOB).json()
        job_id = finish_job(hooks_api.app.state.sessions, "alice", RESULT)
        (got,) = alice_rx.wait_for(1)
        delivery = wait_delivery(hooks_api, hook["id"], "delivered", ALICE)
        time.sleep(0.3)  # time enough for a wrong delivery to bob to arrive
        assert bob_rx.requests == []
        assert hooks_api.get(f"/v1/webhooks/{bobs['id']}/deliveries", headers=BOB).json()["items"] == []
    assert verify(SECRET, got)
    assert not verify("another-secret-0123456789", got)
    assert got.headers["x-gradhealth-event"] == "job.finished"
    assert got.headers["x-gradhealth-delivery"] == delivery["id"]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{alice_rx.port}" and got.path == "/hook"
    assert abs(int(got.headers["x-gradhealth-timestamp"]) - time.time()) < 60
    body = json.loads(got.body)
    assert body["id"] == delivery["id"] and body["event"] == "job.finished" and body["webhook_id"] == hook["id"]
    assert body["data"] == {"job_id": job_id, "kind": "logs", "status": "succeeded", "result_status": "error",
                            "finding_codes": ["exploding_gradients", "loss_spikes"], "error": None}
    assert delivery["attempts"] == 1 and delivery["last_status"] == 200 and delivery["delivered_at"]
    assert delivery["payload"] == body["data"]


def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(hooks_api: Api) -> None:
    with receiver(statuses=[500, 503]) as rx:
        hook = hooks_api.post("/v1/webhooks", json={"url": rx.url, "secret": SECRET}, headers=ALICE).json()
        finish_job(hooks_api.app.state.sessions, "alice", RESULT)
        requests = rx.wait_for(3)
        delivery = wait_delivery(hooks_api, hook["id"], "delivered", ALICE)
    assert delivery["attempts"] == 3 and delivery["last_status"] == 200 and delivery["last_error"] is None
    assert len({r.headers["x-gradhealth-delivery"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1  # the same event each time
    assert all(verify(SECRET, r) for r in requests)
    # Backoff: after attempt n the wait is at least half of base * 2**(n-1) (base 0.05 s).
    gaps = [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05, gaps


def test_a_ping_reaches_the_receiver(hooks_api: Api) -> None:
    with receiver() as rx:
        hook = hooks_api.post("/v1/webhooks", json={"url": rx.url, "events": ["run.error_finding"]},
                              headers=ALICE).json()
        queued = hooks_api.post(f"/v1/webhooks/{hook['id']}/test", headers=ALICE)
        assert queued.status_code == 202 and queued.json()["event"] == "ping"
        (got,) = rx.wait_for(1)
        wait_delivery(hooks_api, hook["id"], "delivered", ALICE)
    assert verify(hook["secret"], got)
    assert got.headers["x-gradhealth-event"] == "ping"
    assert json.loads(got.body)["data"]["webhook_id"] == hook["id"]


def test_the_delivery_log_pages_newest_first(hooks_api: Api) -> None:
    hook = hooks_api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/never", "events": ["job.finished"]},
                          headers=BOB).json()
    with hooks_api.app.state.sessions() as session:
        ids = [outbox.queue(session, hook["id"], "ping", {"n": n}).id for n in range(5)]
        session.commit()
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = hooks_api.get(f"/v1/webhooks/{hook['id']}/deliveries", params=params, headers=BOB).json()
        seen += [item["payload"]["n"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [4, 3, 2, 1, 0] and len(ids) == 5
    bad = hooks_api.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"cursor": "nonsense"}, headers=BOB)
    assert bad.status_code == 422
    assert [e["parameter"] for e in bad.json()["errors"]] == ["query.cursor"]  # (newuser16 #6: null)
    hooks_api.delete(f"/v1/webhooks/{hook['id']}", headers=BOB)


# --- the deliverer on its own database, driven step by step -----------------------------------------


def _hook(sessions: sessionmaker[Session], url: str, n: int = 1) -> tuple[str, list[str]]:
    with sessions() as session:
        hook = registry.create(session, owner="alice", url=url, events=list(outbox.EVENTS), secret=SECRET)
        ids = [outbox.queue(session, hook.id, "ping", {"n": i}).id for i in range(n)]
        session.commit()
        return hook.id, ids


def _drive(deliverer: Deliverer, sessions: sessionmaker[Session], delivery_id: str, timeout: float = 10.0) -> Any:
    """Run the deliverer until the delivery is delivered or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliverer.run_once()
        with sessions() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            if row.status != "pending":
                return row
        time.sleep(0.01)
    raise AssertionError("the delivery stayed pending")


def test_attempts_end_in_failed(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    settings = key_settings(tmp_path, webhook_max_attempts=3, webhook_base_delay_s=0.01)
    with receiver(statuses=[500] * 10) as rx:
        _, (delivery_id,) = _hook(sessions, rx.url)
        deliverer = Deliverer(sessions, settings)
        try:
            row = _drive(deliverer, sessions, delivery_id)
        finally:
            deliverer.stop()
        assert len(rx.requests) == 3
    assert (row.status, row.attempts, row.last_status, row.last_error) == ("failed", 3, 500, "HTTP 500")
    assert row.next_attempt_at is None


def test_redirects_are_not_followed(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    settings = key_settings(tmp_path, webhook_max_attempts=1)
    with receiver() as inside, receiver(statuses=[307], location="") as rx:
        rx.location = inside.url
        _, (delivery_id,) = _hook(sessions, rx.url)
        deliverer = Deliverer(sessions, settings)
        try:
            row = _drive(deliverer, sessions, delivery_id)
        finally:
            deliverer.stop()
        time.sleep(0.1)
        assert len(rx.requests) == 1 and inside.requests == []
    assert row.status == "failed" and row.last_status == 307 and "redirects are not followed" in row.last_error


def test_delivery_time_resolution_is_checked_and_pinned(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    """A name registered while it did not resolve (or resolved elsewhere) is checked again at delivery:
    resolving to 127.0.0.1 is refused; with private targets allowed the request goes to the address
    resolved and checked (this name exists in no DNS: only the pinned address can have reached it)."""
    def resolve(host: str, port: int) -> list[str]:
        assert host == "hooks.example.test"
        return ["127.0.0.1"]

    with receiver() as rx:
        url = f"http://hooks.example.test:{rx.port}/hook"
        _, (refused_id,) = _hook(sessions, url)
        strict = Deliverer(sessions, key_settings(tmp_path, webhooks_allow_private=False, webhook_max_attempts=1),
                           resolve=resolve)
        try:
            row = _drive(strict, sessions, refused_id)
        finally:
            strict.stop()
        assert row.status == "failed" and "127.0.0.1 is a loopback address" in row.last_error
        assert rx.requests == []

        _, (pinned_id,) = _hook(sessions, url)
        allowed = Deliverer(sessions, key_settings(tmp_path), resolve=resolve)
        try:
            row = _drive(allowed, sessions, pinned_id)
        finally:
            allowed.stop()
        assert row.status == "delivered", row.last_error
        (got,) = rx.requests
    assert got.headers["host"] == f"hooks.example.test:{rx.port}"
    assert verify(SECRET, got)


def test_concurrent_deliverers_send_each_delivery_once(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    settings = key_settings(tmp_path)
    with receiver() as rx:
        _, ids = _hook(sessions, rx.url, n=30)
        deliverers = [Deliverer(sessions, settings) for _ in range(3)]
        threads = [threading.Thread(target=d.run_once, kwargs={"limit": 100}) for d in deliverers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for d in deliverers:
            d.stop()
        sent = [r.headers["x-gradhealth-delivery"] for r in rx.requests]
    assert sorted(sent) == sorted(ids)  # every one, none twice
    with sessions() as session:
        rows = [session.get(WebhookDeliveryRow, i) for i in ids]
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12])
def test_backoff_is_exponential_with_jitter_and_capped(attempt: int) -> None:
    rng = random.Random(attempt)
    full = min(100.0, 2.0 * 2 ** (attempt - 1))
    waits = [backoff_s(attempt, 2.0, 100.0, rng) for _ in range(200)]
    assert all(full / 2 <= w <= full for w in waits)
    assert max(waits) - min(waits) > full / 4  # jittered, not constant


def test_old_finished_deliveries_leave_the_log(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    from gradhealth.webhooks.deliver import RETENTION

    _, ids = _hook(sessions, "http://127.0.0.1:9/never", n=4)
    old = store.utcnow() - RETENTION - timedelta(hours=1)
    with sessions() as session:
        for delivery_id, status, created in zip(ids, ["delivered", "failed", "pending", "delivered"],
                                                [old, old, old, store.utcnow()], strict=True):
            row = session.get(WebhookDeliveryRow, delivery_id)
            row.status, row.created_at, row.next_attempt_at = status, created, None
        session.commit()
    deliverer = Deliverer(sessions, key_settings(tmp_path))
    try:
        assert deliverer.prune() == 2
    finally:
        deliverer.stop()
    with sessions() as session:
        left = {i for i in ids if session.get(WebhookDeliveryRow, i) is not None}
    assert left == {ids[2], ids[3]}  # a pending one stays whatever its age


def test_an_event_goes_only_to_the_owners_webhooks_that_subscribe_to_it(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        jobs_only = registry.create(session, owner="alice", url="http://a.test/", events=["job.finished"],
                                    secret=SECRET).id
        runs_only = registry.create(session, owner="alice", url="http://b.test/", events=["run.error_finding"],
                                    secret=SECRET).id
        others = registry.create(session, owner="bob", url="http://c.test/", events=list(outbox.EVENTS),
                                 secret=SECRET).id
        finding = {"code": "exploding_gradients", "severity": "error"}
        outbox.enqueue(session, owner="alice", event="run.error_finding",
                       payload={"run_id": "r1", "name": "bert", "finding": finding})
        session.commit()
        queued = {hook: [(d.event, d.payload) for d in session.scalars(
            select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == hook))]
            for hook in (jobs_only, runs_only, others)}
    assert queued == {jobs_only: [], others: [],
                      runs_only: [("run.error_finding", {"run_id": "r1", "name": "bert", "finding": finding})]}


def test_an_event_rolled_back_with_its_change_is_never_sent(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        hook = registry.create(session, owner="alice", url="http://a.test/", events=list(outbox.EVENTS),
                               secret=SECRET).id
        outbox.enqueue(session, owner="alice", event="job.finished", payload={"job_id": "j"})
        session.rollback()
        assert registry.deliveries(session, hook, cursor=None, limit=10).items == []


def _certificate(folder: Any, name: str) -> tuple[str, str]:
    """A self-signed certificate for ``name`` (its own CA), made with the openssl command."""
    cert, key = f"{folder}/{name}.pem", f"{folder}/{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("served", ["hooks.example.test", "other.example.test"])
def test_https_connects_to_the_checked_address_and_verifies_the_urls_name(
        sessions: sessionmaker[Session], tmp_path: Any, served: str) -> None:
    """The request goes to the pinned 127.0.0.1, yet SNI and the certificate check use the URL's
    name: a certificate for another name is refused, not accepted because the IP was dialled."""
    cert, key = _certificate(tmp_path, served)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=cert)

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with receiver(tls=server_tls) as rx:
        _, (delivery_id,) = _hook(sessions, f"https://hooks.example.test:{rx.port}/hook")
        deliverer = Deliverer(sessions, key_settings(tmp_path, webhook_max_attempts=1), resolve=resolve,
                              verify=trust)
        try:
            row = _drive(deliverer, sessions, delivery_id)
        finally:
            deliverer.stop()
        assert rx.server_names and set(rx.server_names) == {"hooks.example.test"}
        if served == "hooks.example.test":
            assert row.status == "delivered", row.last_error
            (got,) = rx.requests
            assert got.headers["host"] == f"hooks.example.test:{rx.port}" and verify(SECRET, got)
        else:
            assert row.status == "failed" and "certificate" in row.last_error.lower(), row.last_error
            assert rx.requests == []
