"""Fixtures for the job tests: a fresh migrated database per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.pg import database_url, factory, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py
