"""A webhook pauses itself after ``webhooks_pause_after`` deliveries in a row ended failed (retries
exhausted) at a real receiver answering 500: GET shows why and when, its pending deliveries are
cancelled, it receives nothing more; a delivered one in between resets the count; 0 never pauses;
PATCH ``active: true`` resumes it with a fresh count; migration 0005 upgrades an existing table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.db.models import WebhookDeliveryRow, WebhookRow
from gradhealth.webhooks import outbox, registry
from gradhealth.webhooks.deliver import Deliverer
from tests.api.helpers import Api, running_app
from tests.webhooks.helpers import ALICE, key_settings
from tests.webhooks.receiver import Receiver, receiver, wait_delivery
from tests.webhooks.test_delivery import SECRET, finish_job

REASON = "paused after 3 consecutive failed deliveries; last: HTTP 500"


@pytest.fixture(scope="module")
def pausing_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Two attempts per delivery, paused after three failed deliveries in a row."""
    settings = key_settings(tmp_path_factory.mktemp("pause"), webhook_max_attempts=2, webhooks_pause_after=3,
                            webhook_base_delay_s=0.02)
    with running_app(settings, start_workers=False) as client:
        yield client


def _ping_until_done(api: Api, webhook_id: str, status: str) -> dict[str, Any]:
    r = api.post(f"/v1/webhooks/{webhook_id}/test", headers=ALICE)
    assert r.status_code == 202, r.text
    done = wait_delivery(api, webhook_id, status, ALICE)
    assert done["id"] == r.json()["id"]
    return done


def _quiet(rx: Receiver, seconds: float = 0.5) -> int:
    """How many requests the receiver holds after ``seconds`` more (several deliverer polls)."""
    time.sleep(seconds)
    return len(rx.requests)


def test_failed_deliveries_in_a_row_pause_the_webhook_and_it_then_receives_nothing(pausing_api: Api) -> None:
    with receiver(statuses=[500] * 6) as rx:  # then 200
        hook = pausing_api.post("/v1/webhooks", json={"url": rx.url, "secret": SECRET}, headers=ALICE).json()
        base = f"/v1/webhooks/{hook['id']}"
        for n in range(1, 3):
            failed = _ping_until_done(pausing_api, hook["id"], "failed")
            assert (failed["attempts"], failed["last_status"]) == (2, 500)
            got = pausing_api.get(base, headers=ALICE).json()
            assert got["active"] is True and got["disabled_reason"] is None, n
        _ping_until_done(pausing_api, hook["id"], "failed")
        assert len(rx.requests) == 6  # three deliveries, two attempts each
        paused = pausing_api.get(base, headers=ALICE).json()
        assert paused["active"] is False and paused["disabled_reason"] == REASON
        assert abs(datetime.fromisoformat(paused["disabled_at"]) - datetime.now(UTC)) < timedelta(minutes=1)

        # Paused: a finished job queues nothing for it and a ping is refused; the receiver (which
        # would now answer 200) hears nothing.
        finish_job(pausing_api.app.state.sessions, "alice", {"status": "ok", "findings": []})
        assert pausing_api.post(f"{base}/test", headers=ALICE).status_code == 409
        assert _quiet(rx) == 6
        assert len(pausing_api.get(f"{base}/deliveries", headers=ALICE).json()["items"]) == 3

        # Resumed: the reason goes, deliveries flow again, and the count starts afresh.
        resumed = pausing_api.request("PATCH", base, json={"active": True}, headers=ALICE)
        assert resumed.status_code == 200, resumed.text
        assert (resumed.json()["active"], resumed.json()["disabled_reason"], resumed.json()["disabled_at"]) \
            == (True, None, None)
        _ping_until_done(pausing_api, hook["id"], "delivered")
        assert len(rx.requests) == 7
        rx.statuses.extend([500] * 4)
        for _ in range(2):  # two failures after the resume: below the three that pause it
            _ping_until_done(pausing_api, hook["id"], "failed")
        assert pausing_api.get(base, headers=ALICE).json()["active"] is True


# --- the deliverer on its own database, driven step by step -----------------------------------------


def _queue(sessions: sessionmaker[Session], webhook_id: str, n: int = 1) -> list[str]:
    with sessions() as session:
        ids = [outbox.queue(session, webhook_id, "ping", {"n": i}).id for i in range(n)]
        session.commit()
        return ids


def _hook_row(sessions: sessionmaker[Session], webhook_id: str) -> WebhookRow:
    with sessions() as session:
        row = session.get(WebhookRow, webhook_id)
        assert row is not None
        return row


def _delivery(sessions: sessionmaker[Session], delivery_id: str) -> WebhookDeliveryRow:
    with sessions() as session:
        row = session.get(WebhookDeliveryRow, delivery_id)
        assert row is not None
        return row


def _deliver_one(deliverer: Deliverer, sessions: sessionmaker[Session], webhook_id: str) -> str:
    """Queue one delivery and make its single attempt; returns how it ended."""
    (delivery_id,) = _queue(sessions, webhook_id)
    assert deliverer.run_once(limit=1) == 1
    return _delivery(sessions, delivery_id).status


def test_the_count_is_of_failures_in_a_row_and_pausing_cancels_what_is_pending(
        sessions: sessionmaker[Session], tmp_path: Any) -> None:
    settings = key_settings(tmp_path, webhook_max_attempts=1, webhooks_pause_after=3)
    with receiver(statuses=[500, 500, 200, 500, 500, 503]) as rx:
        with sessions() as session:
            hook = registry.create(session, owner="alice", url=rx.url, events=list(outbox.EVENTS),
                                   secret=SECRET).id
        deliverer = Deliverer(sessions, settings)
        try:
            ended = [_deliver_one(deliverer, sessions, hook) for _ in range(5)]
            assert ended == ["failed", "failed", "delivered", "failed", "failed"]
            row = _hook_row(sessions, hook)
            assert (row.active, row.consecutive_failures, row.disabled_reason) == (True, 2, None)

            # The sixth attempt is the third failure in a row: it pauses the webhook and cancels
            # the two deliveries queued behind it, unsent.
            first, *behind = _queue(sessions, hook, n=3)
            assert deliverer.run_once(limit=1) == 1
            assert _delivery(sessions, first).status == "failed"
            row = _hook_row(sessions, hook)
            assert (row.active, row.consecutive_failures) == (False, 3)
            assert row.disabled_reason == "paused after 3 consecutive failed deliveries; last: HTTP 503"
            for delivery_id in behind:
                cancelled = _delivery(sessions, delivery_id)
                assert (cancelled.status, cancelled.attempts, cancelled.next_attempt_at, cancelled.last_error) \
                    == ("cancelled", 0, None, registry.CANCELLED)

            # One queued by a transaction that still saw it active is cancelled when claimed.
            (late,) = _queue(sessions, hook)
            assert deliverer.run_once() == 0
            assert (_delivery(sessions, late).status, _delivery(sessions, late).attempts) == ("cancelled", 0)
            with sessions() as session:
                outbox.enqueue(session, owner="alice", event="job.finished", payload={"job_id": "j"})
                session.commit()
                assert registry.deliveries(session, hook, cursor=None, limit=20).items[0].id == late
        finally:
            deliverer.stop()
        assert len(rx.requests) == 6


def test_zero_never_pauses(sessions: sessionmaker[Session], tmp_path: Any) -> None:
    settings = key_settings(tmp_path, webhook_max_attempts=1, webhooks_pause_after=0)
    with receiver(statuses=[500] * 8) as rx:
        with sessions() as session:
            hook = registry.create(session, owner="alice", url=rx.url, events=list(outbox.EVENTS),
                                   secret=SECRET).id
        deliverer = Deliverer(sessions, settings)
        try:
            assert [_deliver_one(deliverer, sessions, hook) for _ in range(8)] == ["failed"] * 8
        finally:
            deliverer.stop()
    row = _hook_row(sessions, hook)
    assert (row.active, row.consecutive_failures, row.disabled_reason) == (True, 8, None)


def test_migration_0005_adds_the_columns_to_existing_webhooks(tmp_path: Any) -> None:
    from alembic import command

    from tests.helpers import migrations_at

    cfg, engine = migrations_at(tmp_path, "0004")
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO webhooks (id, owner, url, secret, events, created_at, active) VALUES "
                "('0123456789abcdef0123456789abcdef', 'alice', 'https://93.184.216.34/', 's', '[]', "
                "'2026-01-01 00:00:00', 1)"))
        command.upgrade(cfg, "head")
        with engine.connect() as connection:
            row = connection.execute(sa.text(
                "SELECT consecutive_failures, disabled_reason, disabled_at, active FROM webhooks")).one()
        assert tuple(row) == (0, None, None, 1)
        command.downgrade(cfg, "0004")
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("webhooks")}
        assert "consecutive_failures" not in columns and "active" in columns
    finally:
        engine.dispose()
