"""An app per test module for the live-run tests (no workers: runs need none)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.helpers import Api, running_app, settings_for
from tests.pg import database_url, factory, postgres_url  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(settings_for(tmp_path_factory.mktemp("live"), workers=0, run_max_batch_points=500,
                                  run_max_points=3000)) as client:
        yield client
