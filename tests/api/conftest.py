"""An app per test module (builders in tests/api/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.helpers import Api, running_app, settings_for


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An app with one real worker process."""
    with running_app(settings_for(tmp_path_factory.mktemp("api"))) as client:
        yield client


@pytest.fixture(scope="module")
def idle_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An app without workers: jobs stay queued."""
    with running_app(settings_for(tmp_path_factory.mktemp("idle"), workers=0, max_body_bytes=4096,
                                  max_upload_bytes=50_000)) as client:
        yield client
