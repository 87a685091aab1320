"""Fixtures for the end-to-end tests: the database servers (builders in tests/e2e/helpers.py)."""

from __future__ import annotations

from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py
