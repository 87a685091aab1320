"""errsweep6 #8: a webhook to an IANA special-purpose address that this Python's ``ipaddress``
still calls global (192.0.0.8 in 192.0.0.0/24) or to a name only a local resolver answers (a single
label: ``intranet``, ``instance-data``; a name under ``.internal``) was accepted at registration."""

from __future__ import annotations

import ipaddress

import pytest

from gradhealth.webhooks.addresses import UrlRefused, check_registration, parse, pin, refusal

PUBLIC = "93.184.216.34"


def _public(host: str, port: int) -> list[str]:
    return [PUBLIC]  # every name resolves to a public address: only the name's own rule refuses


@pytest.mark.parametrize("address", ["192.0.0.8", "192.0.0.1", "192.0.0.255", "3fff::1",
                                     "2002:c000:8::"])  # (6to4 carrying 192.0.0.8)
def test_special_purpose_addresses_are_refused(address):
    why = refusal(ipaddress.ip_address(address))
    assert why is not None  # (192.0.0.1: "a private address", in the /29 every Python knows)
    shown = f"[{address}]" if ":" in address else address
    with pytest.raises(UrlRefused, match="webhooks may only call public addresses"):
        check_registration(f"http://{shown}/hook", allow_private=False, resolve=_public)


@pytest.mark.parametrize("address", ["192.0.0.9", "192.0.0.10", PUBLIC])  # the registry's global ones
def test_the_registrys_globally_reachable_anycast_addresses_pass(address):
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host,why", [("intranet", "single-label name"), ("instance-data", "single-label name"),
                                      ("metadata.google.internal", "under .internal"),
                                      ("printer.local", "under .local")])
def test_names_only_a_local_resolver_answers_are_refused(host, why):
    with pytest.raises(UrlRefused) as refused:
        check_registration(f"http://{host}/hook", allow_private=False, resolve=_public)
    assert why in str(refused.value) and "webhooks may only call public addresses" in str(refused.value)
    with pytest.raises(UrlRefused, match=why):  # a webhook stored before the rule: refused at delivery
        pin(parse(f"http://{host}/hook"), allow_private=False, resolve=_public)
    # the setting that allows private addresses allows them
    assert check_registration(f"http://{host}/hook", allow_private=True).host == host


def test_a_public_dotted_name_still_passes():
    assert check_registration("https://hooks.example.com/x", allow_private=False, resolve=_public).port == 443
