"""The database schema (SQLAlchemy 2). Changed only through a migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    """One check: its request, its state machine, its lease and its result."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
        Index("ix_jobs_client_status", "client", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # queued | running | succeeded | failed | cancelled
    request: Mapped[Any] = mapped_column(JSON)
    request_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(255), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    time_limit_s: Mapped[float] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    result_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    finding_codes: Mapped[str | None] = mapped_column(Text, nullable=True)  # comma-separated, for metrics
    error: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    # what the job checked, for people: a spec's name or an upload's file name (migration 0006)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # who submitted it, for the per-client quota: "key:NAME", or "address:IP" with keys off (0009)
    client: Mapped[str | None] = mapped_column(String(160), nullable=True)
    # an architecture job's spec as the caller sent it (YAML or JSON text): a report's lines are the
    # caller's own, not those of the stored spec re-serialised (0010); None for other jobs and older ones
    spec_text: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)  # read by reports only


class CounterRow(Base):
    """One metric counter (a name and its labels as canonical JSON), only ever increased, in the
    transaction that finishes a job (gradhealth.jobs.counters): /metrics reads these few rows."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class WebhookRow(Base):
    """A URL one API key's owner wants called, signed with ``secret``, on the ``events`` it names."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_owner", "owner"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(255))  # kept as given: the deliverer signs with it
    events: Mapped[Any] = mapped_column(JSON)  # list of event names
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Deliveries that ended failed in a row (a delivered one resets it): the auto-pause counts these.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it is paused
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookDeliveryRow(Base):
    """One event for one webhook and its delivery attempts (gradhealth.webhooks.deliver)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed | cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the last HTTP status
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunRow(Base):
    """A live training run: its points are in ``run_points``; the rest is its current state, each
    change bumping ``version`` (the compare-and-set appends and the in-process state cache key on it)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_owner_created", "owner", "created_at"),
        Index("ix_runs_status_updated", "status", "updated_at"),
        # One active run of a name per key: the recorder re-attaches to it by name after a restart.
        Index("uq_runs_owner_active_name", "owner", "name", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # active | finished
    config: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    last_step: Mapped[float | None] = mapped_column(Float, nullable=True)
    grad_norm: Mapped[float | None] = mapped_column(Float, nullable=True)  # latest total gradient norm
    series: Mapped[Any] = mapped_column(JSON)  # series names in first-seen order (the log reader's order)
    diagnosis: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    finding_codes: Mapped[str | None] = mapped_column(Text, nullable=True)  # comma-separated, for metrics
    findings_state: Mapped[Any] = mapped_column(JSON)  # finding key -> severity, to tell new from changed
    events: Mapped[int] = mapped_column(Integer, default=0)  # last run_events.seq
    version: Mapped[int] = mapped_column(Integer, default=0)
    # The process that writes the run (the recorder's X-Gradhealth-Writer), so that a second process
    # on the same run name is told, not interleaved (newuser4 P7); null: none said (curl, older recorders)
    writer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The writer's last heartbeat (POST /v1/runs/{id}/heartbeat): alive between slow batches, so the
    # writer lease counts from the later of it and updated_at; null: none sent
    writer_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunPointRow(Base):
    """One value of a run. Non-finite values are kept by ``special`` (SQLite stores NaN as NULL):
    0 finite (``value`` holds it), 1 NaN, 2 +Inf, 3 -Inf."""

    __tablename__ = "run_points"

    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(255), primary_key=True)
    step: Mapped[float] = mapped_column(Float, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    special: Mapped[int] = mapped_column(SmallInteger, default=0)


class RunEventRow(Base):
    """The SSE events of a run, numbered from 1 (the ``id:`` a client resumes from)."""

    __tablename__ = "run_events"

    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))  # finding | resolved | finished
    data: Mapped[Any] = mapped_column(JSON)
