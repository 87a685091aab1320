"""Builders for the webhook tests: two API keys (alice, bob) and settings that let webhooks call the
loopback receivers the tests start, with a deliverer that polls often and retries quickly."""

from __future__ import annotations

from typing import Any

from gradhealth.settings import hash_key
from tests.api.helpers import settings_for

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef"}
ALICE = {"X-API-Key": KEYS["alice"]}
BOB = {"X-API-Key": KEYS["bob"]}


def key_settings(tmp_path: Any, **overrides: Any) -> Any:
    keys = ",".join(f"{name}={hash_key(key)}" for name, key in KEYS.items())
    base: dict[str, Any] = {"workers": 0, "api_keys": keys, "webhooks_allow_private": True,
                            "webhook_poll_s": 0.05, "webhook_base_delay_s": 0.05, "webhook_timeout_s": 5.0}
    base.update(overrides)
    return settings_for(tmp_path, **base)
