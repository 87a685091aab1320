"""Issue 13, section 1: the non-spec findings of the attack run, each reproduced first."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gradhealth.settings import Settings, hash_key


# --- authentication cannot be switched off by a malformed key list -------------------------------

@pytest.mark.parametrize("value", [",", " ", " , ", ",,,"])
def test_a_key_list_that_holds_no_key_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GRADHEALTH_API_KEYS", value)
    with pytest.raises(ValidationError, match="holds no key"):
        Settings(host="0.0.0.0")


def test_an_empty_key_list_is_keys_off_and_still_guarded_on_a_public_address() -> None:
    assert Settings(api_keys="").key_owners() == {}
    assert Settings(api_keys="", host="0.0.0.0").unsafe_reason() is not None
    good = f"ci={hash_key('secret')}"
    assert Settings(api_keys=f",{good},", host="0.0.0.0").unsafe_reason() is None
    assert Settings(api_keys=f",{good},").key_owners() == {hash_key("secret"): "ci"}
