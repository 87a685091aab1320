"""Which URLs a webhook may call: http(s), no userinfo, and (unless ``webhooks_allow_private``) only
public addresses, so that a webhook cannot be used to reach the services next to this one.

The address is checked twice: when the webhook is registered, and at each delivery after DNS
resolution; the delivery then connects to the very address that was checked (a name that resolves
to a public address at check time and to 127.0.0.1 a moment later gains nothing).
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: ``resolve(host, port) -> addresses``: the system resolver unless a test gives another.
Resolver = Callable[[str, int], list[str]]

MAX_URL_CHARS = 2048
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UrlRefused(ValueError):
    """A webhook URL that may not be called; the message says why and what to change."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart: what to connect to and what to say in Host and SNI."""

    url: str
    scheme: str
    host: str  # as in the URL, lower case, IPv6 without brackets
    port: int
    path: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return shown if self.port == default else f"{shown}:{self.port}"


def parse(url: str) -> Target:
    """The parts of ``url``; :class:`UrlRefused` unless it is an absolute http(s) URL with a host
    and no user name or password."""
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRefused("the URL holds whitespace or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    if port == 0:
        raise UrlRefused("port 0 is no port a server listens on")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused(f"the scheme must be http or https (got {parts.scheme or 'none'!r})")
    if "@" in parts.netloc:
        raise UrlRefused("the URL may not carry a user name or password (userinfo before '@'); "
                         "authenticate the request with the webhook's signature instead")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("the URL has no host")
    _check_name(host)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=scheme, host=host.lower(), port=port or (443 if scheme == "https" else 80),
                  path=path)


#: RFC 1035 2.3.4: a name's length in octets, and one label's.
_MAX_NAME, _MAX_LABEL = 253, 63
#: RFC 1123 2.1: a host name's (ASCII) label is letters, digits and hyphens, with no hyphen at
#: either end; ``exa%00mple`` or ``a_b!`` names nothing a resolver would look up (errsweep6 H10)
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _check_name(host: str) -> None:
    """:class:`UrlRefused` unless ``host`` (an address literal, or a name) can be looked up at all:
    every label non-empty and within 63 octets once IDNA-encoded, a non-ASCII label encodable, and
    an ``xn--`` label a real A-label (Punycode that decodes to a name which encodes back to it), as
    ``xn--`` or ``xn--zz-`` do not. Such a host would fail only at delivery; refuse it now."""
    if ":" in host or numeric(host) is not None:  # an IPv6 literal, or an address in any form
        return
    encoded: list[str] = []
    for label in host.split("."):
        if not label:
            raise UrlRefused(f"the host {host[:80]!r} is not a valid domain name: it has an empty label")
        try:
            ascii_label = label if label.isascii() else encodings.idna.ToASCII(label).decode("ascii")
        except UnicodeError as exc:
            raise UrlRefused(f"the host {host[:80]!r} is not a valid domain name: {label[:63]!r} cannot be "
                             f"IDNA-encoded ({exc})") from None
        if ascii_label.lower().startswith("xn--") and not _is_a_label(ascii_label):
            raise UrlRefused(f"the host {host[:80]!r} is not a valid domain name: {label[:63]!r} is not a "
                             "valid IDNA A-label (Punycode of an internationalised label)")
        if len(ascii_label) > _MAX_LABEL:
            raise UrlRefused(f"the host {host[:80]!r} is not a valid domain name: a label is longer than "
                             f"{_MAX_LABEL} characters")
        if not _LDH_LABEL.fullmatch(ascii_label):
            raise UrlRefused(f"the host {host[:80]!r} is not a valid domain name: {label[:63]!r} is not "
                             "letters, digits and inner hyphens (a percent sign, an underscore or other "
                             "punctuation cannot be in a host name)")
        encoded.append(ascii_label)
    if len(".".join(encoded)) > _MAX_NAME:
        raise UrlRefused(f"the host is not a valid domain name: longer than {_MAX_NAME} characters")


def _is_a_label(label: str) -> bool:
    """Whether ``xn--...`` is Punycode of a non-ASCII label that IDNA encodes back to the same label."""
    try:
        unicode_label = label[4:].encode("ascii").decode("punycode")
        return (not unicode_label.isascii()
                and encodings.idna.ToASCII(unicode_label).decode("ascii").lower() == label.lower())
    except UnicodeError:
        return False


#: IANA special-purpose blocks that are not globally reachable and that an older Python's
#: ``ipaddress`` still calls global (``is_global``, the rule below, follows the registry from 3.12.4
#: on): 192.0.0.0/24 past its /29 (192.0.0.8, errsweep6 #8) but for the two anycast services the
#: registry calls global, 192.0.0.9 and 192.0.0.10; the documentation prefix 3fff::/20 (RFC 9637).
_NOT_GLOBAL = (ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv6Network("3fff::/20"))
_GLOBAL_EXCEPTIONS = (ipaddress.IPv4Address("192.0.0.9"), ipaddress.IPv4Address("192.0.0.10"))


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    # An IPv6 address that carries an IPv4 one reaches that IPv4 host: judge the IPv4 one.
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            why = refusal(embedded)
            return f"{why} (inside the IPv6 address {address})" if why else None
    for flag, why in (("is_unspecified", "an unspecified"), ("is_loopback", "a loopback"),
                      ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
                      ("is_reserved", "a reserved"), ("is_private", "a private")):
        if getattr(address, flag):
            return f"{address} is {why} address"
    if not address.is_global:  # shared address space (100.64.0.0/10) and the like
        return f"{address} is not a public address"
    if address not in _GLOBAL_EXCEPTIONS and any(address in block for block in _NOT_GLOBAL
                                                 if block.version == address.version):
        return f"{address} is a special-purpose address"
    return None


def numeric(host: str) -> IPAddress | None:
    """``host`` as an address when it is one in any form the resolver reads as one (``2130706433``,
    ``0x7f.1``, ``0177.0.0.1`` are 127.0.0.1), without asking DNS; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in out:
            out.append(address)
    return out


def _named_local(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost") or host in ("localhost.localdomain",
                                                                          "ip6-localhost", "ip6-loopback")


#: Domains for a local network's own names, which no public resolver answers: mDNS's ``local``
#: (RFC 6762), ``home.arpa`` (RFC 8375), ``internal`` (reserved by ICANN for private networks in
#: 2024: a cloud's metadata host, ``metadata.google.internal``), ``localdomain``.
_LOCAL_DOMAINS = ("local", "internal", "home.arpa", "localdomain")


def _local_name(host: str) -> str | None:
    """Why the name ``host`` (not an address) is a local network's, or None: a single label
    (``intranet``, ``instance-data``: only a local resolver's search list makes it a name), or a
    name under a special-use domain (``metadata.google.internal``, ``printer.local``)."""
    if numeric(host) is not None or ":" in host:
        return None
    if "." not in host:
        return f"{host} is a single-label name (no dot), which only a local resolver answers"
    lower = host.lower()
    for domain in _LOCAL_DOMAINS:
        if lower == domain or lower.endswith("." + domain):
            return f"{host} is under .{domain}, a special-use domain no public resolver answers"
    return None


def check_registration(url: str, *, allow_private: bool, resolve: Resolver | None = None) -> Target:
    """``url`` parsed and checked before a webhook is stored; :class:`UrlRefused` says why not.

    A name that does not resolve now is accepted (it is checked again at each delivery); one that
    resolves to any non-public address is refused.
    """
    target = parse(url)
    if allow_private:
        return target
    if _named_local(target.host):
        raise UrlRefused(f"{target.host} is a loopback name; webhooks may only call public addresses "
                         "(GRADHEALTH_WEBHOOKS_ALLOW_PRIVATE=true allows others)")
    local = _local_name(target.host)
    if local is not None:
        raise UrlRefused(f"{local}; webhooks may only call public addresses "
                         "(GRADHEALTH_WEBHOOKS_ALLOW_PRIVATE=true allows others)")
    literal = numeric(target.host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            addresses = [_address(a) for a in (resolve or system_resolver)(target.host, target.port)]
        except (OSError, UnicodeError, ValueError):
            addresses = []
    for address in addresses:
        why = refusal(address)
        if why is not None:
            if literal is None:
                where = f"{target.host} resolves to {address}: {why}"
            else:  # 2130706433 and 0x7f.1 are 127.0.0.1: say so
                where = why if str(address) == target.host else f"{target.host} is {address}: {why}"
            raise UrlRefused(f"{where}; webhooks may only call public addresses "
                             "(GRADHEALTH_WEBHOOKS_ALLOW_PRIVATE=true allows others)")
    return target


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # a scope id (fe80::1%eth0) is not an address


def pin(target: Target, *, allow_private: bool, resolve: Resolver | None = None) -> IPAddress:
    """The address a delivery connects to: ``target``'s host resolved now, every address it resolves
    to checked; :class:`UrlRefused` when any is refused or none is found."""
    if not allow_private and _named_local(target.host):
        raise UrlRefused(f"{target.host} is a loopback name")
    local = None if allow_private else _local_name(target.host)
    if local is not None:  # (a webhook stored before this rule)
        raise UrlRefused(local)
    literal = numeric(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [_address(a) for a in (resolve or system_resolver)(target.host, target.port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise UrlRefused(f"{target.host} does not resolve: {exc}") from None
    if not addresses:
        raise UrlRefused(f"{target.host} resolves to no address")
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise UrlRefused(f"{target.host} resolves to {address}: {why}")
    return addresses[0]
