"""Fixtures for the job tests: a fresh migrated database per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gradhealth.db.engine import make_engine, make_sessionmaker
from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811 - the fixture
    """A session factory on ``database_url``; its engine is disposed after the test."""
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
