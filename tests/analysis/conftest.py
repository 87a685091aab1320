"""Fixtures the analysis tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.helpers import Api, running_app, settings_for


@pytest.fixture(scope="module")
def idle_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An app without workers: a model passing the submission check would stay queued, so a test
    of what the model door refuses at submission sees its answer, never a job's."""
    with running_app(settings_for(tmp_path_factory.mktemp("idle"), workers=0)) as client:
        yield client
