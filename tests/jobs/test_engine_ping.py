"""The PostgreSQL engine pings a pooled connection only after it sat idle, and replaces one that
broke while idle (what ``pool_pre_ping`` did on every checkout, one round trip per session)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gradhealth.db import engine as engine_mod
from gradhealth.db.engine import make_engine
from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py


def _backend_pid(engine) -> int:  # noqa: ANN001 - an Engine
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_killed_while_idle_is_replaced(database_url: str,  # noqa: F811 - fixture
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite opens no server connection to lose")
    engine = make_engine(database_url)
    other = make_engine(database_url)
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first  # a hot connection is reused as it is, no ping needed
        with other.connect() as admin:  # the server drops the pooled connection while it is idle
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one()
            admin.commit()
        monkeypatch.setattr(engine_mod, "PING_IDLE_S", 0.0)  # it has now been idle long enough
        assert _backend_pid(engine) != first  # pinged, found dead, replaced: no error for the caller
    finally:
        engine.dispose()
        other.dispose()


def test_a_busy_connection_is_not_pinged(database_url: str) -> None:  # noqa: F811 - fixture
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite is not pinged")
    engine = make_engine(database_url)
    pings: list[object] = []
    real = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: pings.append(connection) or real(connection)  # type: ignore[method-assign]
    try:
        for _ in range(5):
            _backend_pid(engine)
        assert pings == []  # returned a moment ago each time: no round trip spent on a ping
    finally:
        engine.dispose()
