"""The outbox: events are written in the same transaction as the change they report, and delivered
afterwards by the deliverer, so that no event is lost and none is sent for a change rolled back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gradhealth.db.models import WebhookDeliveryRow, WebhookRow

#: The events a webhook may subscribe to (``ping`` is sent only on request, to one webhook).
EVENTS = ("job.finished", "run.error_finding")
PING = "ping"


def queue(session: Session, webhook_id: str, event: str, payload: dict[str, Any]) -> WebhookDeliveryRow:
    """Add one pending delivery of ``event`` to ``webhook_id`` (not committed: the caller's transaction)."""
    now = datetime.now(UTC)
    row = WebhookDeliveryRow(id=uuid.uuid4().hex, webhook_id=webhook_id, event=event, payload=payload,
                             status="pending", attempts=0, next_attempt_at=now, created_at=now)
    session.add(row)
    return row


def enqueue(session: Session, *, owner: str, event: str, payload: dict[str, Any]) -> None:
    """Queue ``event`` for every webhook of ``owner`` subscribed to it (inside the caller's transaction)."""
    hooks = session.execute(select(WebhookRow.id, WebhookRow.events)
                            .where(WebhookRow.owner == owner, WebhookRow.active.is_(True))).all()
    for webhook_id, events in hooks:
        if event in (events or ()):
            queue(session, webhook_id, event, payload)
    if hooks:
        session.flush()
