"""Webhooks and their delivery log in the database: create, read, list, change, pause, delete,
page deliveries.
Every read is scoped to an owner, so one key never sees another's webhooks."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from gradhealth.db.models import WebhookDeliveryRow, WebhookRow

#: Webhooks one owner may hold (each finished job is one delivery per webhook).
MAX_PER_OWNER = 20
_ID = re.compile(r"[0-9a-f]{32}")


def valid_id(text: str) -> bool:
    """Whether ``text`` can be one of our ids (decided before the database sees it)."""
    return bool(_ID.fullmatch(text))


def new_secret() -> str:
    """A signing secret: 256 random bits."""
    return "whsec_" + secrets.token_urlsafe(32)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def count(session: Session, owner: str) -> int:
    return session.scalar(select(func.count()).select_from(WebhookRow).where(WebhookRow.owner == owner)) or 0


def create(session: Session, *, owner: str, url: str, events: Sequence[str], secret: str) -> WebhookRow:
    row = WebhookRow(id=uuid.uuid4().hex, owner=owner, url=url, secret=secret, events=list(events),
                     created_at=datetime.now(UTC), active=True)
    session.add(row)
    session.commit()
    return row


def get(session: Session, webhook_id: str, owner: str) -> WebhookRow | None:
    """``owner``'s webhook ``webhook_id``, or None (also for another owner's)."""
    if not valid_id(webhook_id):
        return None
    return session.scalar(select(WebhookRow).where(WebhookRow.id == webhook_id, WebhookRow.owner == owner))


def list_for(session: Session, owner: str) -> list[WebhookRow]:
    return list(session.scalars(select(WebhookRow).where(WebhookRow.owner == owner)
                                .order_by(WebhookRow.created_at, WebhookRow.id)))


#: The ``disabled_reason`` of a webhook its owner paused (PATCH ``active: false``).
PAUSED_BY_OWNER = "paused by its owner"


def change(session: Session, row: WebhookRow, *, url: str | None = None, events: Sequence[str] | None = None,
           active: bool | None = None, secret: str | None = None) -> WebhookRow:
    """Change the fields given (None: unchanged) and commit. Pausing cancels the deliveries still
    pending; resuming clears the reason and the count of failures in a row, as does a new URL
    (another receiver starts with a clean record). Deliveries still pending are signed with the
    secret current at their next attempt."""
    if url is not None and url != row.url:
        row.url = url
        row.consecutive_failures = 0
    if events is not None:
        row.events = list(events)
    if secret is not None:
        row.secret = secret
    if active is False and row.active:
        pause(session, row.id, PAUSED_BY_OWNER)
        session.refresh(row)
    elif active is True and not row.active:
        row.active, row.disabled_reason, row.disabled_at, row.consecutive_failures = True, None, None, 0
    session.commit()
    return row


def pause(session: Session, webhook_id: str, reason: str, *, at_failures: int | None = None) -> bool:
    """Pause ``webhook_id`` with ``reason`` and cancel its pending deliveries (not committed: the
    caller's transaction). With ``at_failures``, only if it has failed that many deliveries in a row
    by now (the check and the change in one UPDATE, so concurrent deliverers pause it once).
    Returns whether this call paused it."""
    where = [WebhookRow.id == webhook_id, WebhookRow.active.is_(True)]
    if at_failures is not None:
        where.append(WebhookRow.consecutive_failures >= at_failures)
    paused = session.execute(update(WebhookRow).where(*where).values(
        active=False, disabled_reason=reason[:1000], disabled_at=datetime.now(UTC)))
    if not getattr(paused, "rowcount", 0):
        return False
    cancel_pending(session, webhook_id)
    return True


#: ``last_error`` of a delivery cancelled because its webhook was paused.
CANCELLED = "cancelled: the webhook is paused"


def cancel_pending(session: Session, webhook_id: str) -> int:
    """End ``webhook_id``'s pending deliveries as ``cancelled`` (an attempt under way at this moment
    still reaches the receiver, but its outcome is not recorded). Not committed."""
    result = session.execute(update(WebhookDeliveryRow).where(
        WebhookDeliveryRow.webhook_id == webhook_id, WebhookDeliveryRow.status == "pending",
    ).values(status="cancelled", next_attempt_at=None, last_error=CANCELLED))
    return int(getattr(result, "rowcount", 0))


def remove(session: Session, webhook_id: str, owner: str) -> bool:
    """Delete a webhook and its delivery log (explicitly: SQLite enforces no cascade by default)."""
    if get(session, webhook_id, owner) is None:
        return False
    session.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id))
    session.execute(delete(WebhookRow).where(WebhookRow.id == webhook_id, WebhookRow.owner == owner))
    session.commit()
    return True


@dataclass
class DeliveryPage:
    items: list[WebhookDeliveryRow]
    next_cursor: str | None


def _encode(row: WebhookDeliveryRow) -> str:
    created = as_utc(row.created_at)
    assert created is not None
    return base64.urlsafe_b64encode(f"{created.isoformat()}|{row.id}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on a cursor this service did not write."""
    created, delivery_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    when = datetime.fromisoformat(created)
    if not valid_id(delivery_id) or when.tzinfo is None:
        raise ValueError("not a delivery cursor")
    return when, delivery_id


def deliveries(session: Session, webhook_id: str, *, cursor: str | None, limit: int) -> DeliveryPage:
    """A webhook's deliveries, newest first, keyset-paginated by (created_at, id)."""
    q = select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id)
    if cursor is not None:
        created, delivery_id = _decode(cursor)
        q = q.where(or_(WebhookDeliveryRow.created_at < created,
                        and_(WebhookDeliveryRow.created_at == created, WebhookDeliveryRow.id < delivery_id)))
    rows = list(session.scalars(q.order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id.desc())
                                .limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(rows, _encode(rows[-1]) if more and rows else None)
