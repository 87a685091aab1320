"""An app with two API keys (alice, bob), webhooks allowed to call the loopback receivers the tests
start, and a deliverer that polls often and retries after a few hundredths of a second; and a
fresh migrated database for driving the deliverer step by step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.helpers import Api, running_app
from tests.pg import database_url, factory, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py
from tests.webhooks.helpers import key_settings


@pytest.fixture(scope="module")
def hooks_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Keys on, private targets allowed (the receivers are on 127.0.0.1), deliverer running."""
    with running_app(key_settings(tmp_path_factory.mktemp("hooks")), start_workers=False) as client:
        yield client


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The default: private targets refused."""
    with running_app(key_settings(tmp_path_factory.mktemp("strict"), webhooks_allow_private=False,
                                  webhooks_deliver=False), start_workers=False) as client:
        yield client


@pytest.fixture
def sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:  # noqa: F811 - the fixture
    """A fresh migrated database, SQLite and PostgreSQL (the claims' compare-and-set on both)."""
    return factory
