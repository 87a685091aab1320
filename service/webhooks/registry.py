"""Webhooks and their delivery log in the database: create, read, list, delete, page deliveries.
Every read is scoped to an owner, so one key never sees another's webhooks."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, or_, select
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
