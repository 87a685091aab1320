"""Job counters kept as jobs finish, in the same transaction as the state change, so that
``/metrics`` reads a few small rows instead of the whole job table at each scrape."""

from __future__ import annotations

from sqlalchemy.orm import Session


def job_finished(session: Session, *, kind: str, status: str, duration_s: float | None,
                 codes: list[str]) -> None:
    """Count one job reaching a terminal ``status`` (runs inside the caller's transaction)."""
