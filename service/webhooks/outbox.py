"""The outbox: events are written in the same transaction as the change they report, and delivered
afterwards by the deliverer, so that no event is lost and none is sent for a change rolled back."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def enqueue(session: Session, *, owner: str, event: str, payload: dict[str, Any]) -> None:
    """Queue ``event`` for every webhook of ``owner`` subscribed to it (inside the caller's transaction)."""
