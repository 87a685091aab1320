"""The outbox: events are written in the same transaction as the change they report, and delivered
afterwards by the deliverer, so that no event is lost and none is sent for a change rolled back."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

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


@functools.cache
def _hooks_of_owner() -> Executable:
    """The active webhooks of one owner: a Core statement built once, since every finished job
    asks (building the ORM select cost more CPU than running it)."""
    t = WebhookRow.__table__.c
    return select(t.id, t.events).where(t.owner == bindparam("owner", type_=t.owner.type),
                                        t.active.is_(True))


def enqueue(session: Session, *, owner: str, event: str, payload: dict[str, Any]) -> None:
    """Queue ``event`` for every webhook of ``owner`` subscribed to it (inside the caller's transaction)."""
    hooks = session.execute(_hooks_of_owner(), {"owner": owner}).all()
    for webhook_id, events in hooks:
        if event in (events or ()):
            queue(session, webhook_id, event, payload)
    if hooks:
        session.flush()
