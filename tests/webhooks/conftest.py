"""An app with two API keys (alice, bob), webhooks allowed to call the loopback receivers the tests
start, and a deliverer that polls often and retries after a few hundredths of a second."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gradhealth.settings import hash_key
from tests.api.helpers import Api, running_app, settings_for
from tests.pg import database_url, postgres_url  # noqa: F401 - pytest fixtures, see tests/pg.py

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef"}
ALICE = {"X-API-Key": KEYS["alice"]}
BOB = {"X-API-Key": KEYS["bob"]}


def key_settings(tmp_path: Any, **overrides: Any) -> Any:
    keys = ",".join(f"{name}={hash_key(key)}" for name, key in KEYS.items())
    base: dict[str, Any] = {"workers": 0, "api_keys": keys, "webhooks_allow_private": True,
                            "webhook_poll_s": 0.05, "webhook_base_delay_s": 0.05, "webhook_timeout_s": 5.0}
    base.update(overrides)
    return settings_for(tmp_path, **base)


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
