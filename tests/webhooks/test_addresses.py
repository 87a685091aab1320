"""Which URLs a webhook may call, judged without the network: every non-public address form is
refused (numeric IPv4 spellings as the resolver reads them, IPv6 that embeds IPv4, loopback names),
public ones pass, and the setting lets private ones through."""

from __future__ import annotations

import ipaddress

import pytest

from gradhealth.webhooks.addresses import (
    UrlRefused,
    check_registration,
    numeric,
    parse,
    pin,
    refusal,
)


def _no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} was looked up in DNS")


REFUSED = [
    "http://127.0.0.1/hook", "http://127.8.9.10/", "http://[::1]/", "http://10.0.0.7/", "http://172.16.3.4/",
    "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://localhost/",
    "http://LocalHost.:8080/", "http://api.localhost/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://2130706433/",
    "http://0x7f000001/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/", "http://017700000001/",
    "http://0.0.0.0/", "http://0/", "http://[::]/", "http://224.0.0.251/", "http://[ff02::1]/",
    "http://240.0.0.1/", "http://255.255.255.255/", "http://[fe80::1]/", "http://[fc00::1]/",
    "http://[fd12:3456::1]/", "http://100.64.0.1/", "http://[2002:7f00:1::]/", "http://[64:ff9b::a00:1]/",
    "http://[::127.0.0.1]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_addresses_are_refused_without_the_setting(url: str) -> None:
    with pytest.raises(UrlRefused, match="address|loopback name"):
        check_registration(url, allow_private=False, resolve=_no_dns)


@pytest.mark.parametrize("url", REFUSED)
def test_the_setting_allows_them(url: str) -> None:
    assert check_registration(url, allow_private=True, resolve=_no_dns).url == url


@pytest.mark.parametrize("url", ["https://93.184.216.34/hook", "http://8.8.8.8:8080/x?y=1",
                                 "https://[2606:4700:4700::1111]/", "http://[::ffff:8.8.8.8]/"])
def test_public_addresses_pass(url: str) -> None:
    check_registration(url, allow_private=False, resolve=_no_dns)


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/", "scheme"), ("file:///etc/passwd", "scheme"), ("example.com/hook", "scheme"),
    ("http://user:pw@example.com/", "user name"), ("https://token@example.com/", "user name"),
    ("http:///hook", "no host"), ("http://example.com:99999/", "valid URL"), ("http://exa mple.com/", "whitespace"),
    ("http://example.com/" + "a" * 2100, "longer"),
])
def test_malformed_urls_are_refused_even_with_the_setting(url: str, why: str) -> None:
    with pytest.raises(UrlRefused, match=why):
        check_registration(url, allow_private=True, resolve=_no_dns)


def test_numeric_spellings_are_read_as_the_resolver_reads_them() -> None:
    for spelling in ("2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001"):
        assert numeric(spelling) == ipaddress.ip_address("127.0.0.1"), spelling
    assert numeric("example.com") is None


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    both = {"mixed.test": ["93.184.216.34", "10.0.0.1"], "public.test": ["93.184.216.34"]}

    def resolve(host: str, port: int) -> list[str]:
        return both[host]

    with pytest.raises(UrlRefused, match="mixed.test resolves to 10.0.0.1"):
        check_registration("http://mixed.test/", allow_private=False, resolve=resolve)
    check_registration("http://public.test/", allow_private=False, resolve=resolve)
    # At delivery too, and the address connected to is the one checked.
    with pytest.raises(UrlRefused):
        pin(parse("http://mixed.test/"), allow_private=False, resolve=resolve)
    assert str(pin(parse("http://public.test/"), allow_private=False, resolve=resolve)) == "93.184.216.34"


def test_a_name_that_does_not_resolve_yet_is_accepted_at_registration_but_not_delivered() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    check_registration("https://hooks.example.test/", allow_private=False, resolve=nowhere)
    with pytest.raises(UrlRefused, match="does not resolve"):
        pin(parse("https://hooks.example.test/"), allow_private=False, resolve=nowhere)


def test_ipv6_embedding_ipv4_is_judged_by_the_ipv4_address() -> None:
    assert "127.0.0.1" in (refusal(ipaddress.ip_address("::ffff:127.0.0.1")) or "")
    assert refusal(ipaddress.ip_address("::ffff:8.8.8.8")) is None
    assert refusal(ipaddress.ip_address("2002:0808:0808::1")) is None  # 6to4 of 8.8.8.8
