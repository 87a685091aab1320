"""Engines and sessions. SQLite (the embedded default) runs in WAL mode so the API reads while a
worker writes; ``DATABASE_URL`` may point at PostgreSQL instead."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.db.urls import sqlite_file


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite, WAL journal, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url)
    _ping_when_idle(engine)
    return engine


#: A pooled connection unused this long is pinged before it is handed out again.
PING_IDLE_S = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection that sat idle in the pool for ``PING_IDLE_S``.

    A pre-ping on every checkout is a round trip per session, several per job on the worker's and
    ``?wait``'s path; a connection that broke (a restarted server, a dropped idle connection)
    almost always broke while idle, and a busy one that fails mid-use invalidates the pool anyway."""
    import time

    from sqlalchemy import exc

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:  # noqa: ANN001 - pool objects
        record.info["gradhealth_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:  # noqa: ANN001 - pool objects
        since = record.info.get("gradhealth_idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_S:  # read at call: tests lower it
            return  # a fresh connection, or one returned a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool drops this connection and checks out (or opens) another.
            raise exc.DisconnectionError(str(error)) from error


def redact_url(url: str) -> str:
    """``url`` fit to print: the password shown as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: show nothing of it
        return "<database URL>"


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


#: The advisory lock key migrations hold on PostgreSQL (any fixed 64-bit number; "gradhlth").
MIGRATION_LOCK = 0x6772616468_6C7468


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    if not url.startswith("postgresql"):
        command.upgrade(cfg, "head")  # SQLite: one host, and its writes serialise anyway
        return
    # Several pods starting at once would each create the tables and all but one fail: a
    # session-level advisory lock makes them take turns (the later ones find the schema current).
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
            try:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()
