"""Report links: a signed, expiring token that opens one job's or run's report without an API key.

A dashboard links a run's report (Grafana's data links open a URL; they cannot send ``X-API-Key``).
The token carries what it opens (kind, id, format) and when it expires, signed with HMAC-SHA256
under the service's ``link_secret`` together with the owner of that job or run (not written in
the token): it needs no table, every replica with the same secret honours it, and changing the
secret revokes every link. Deleting the job or run, or removing its owner's API key, makes its
links 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

#: What a link may open.
KINDS = ("job", "run")


@dataclass(frozen=True)
class Link:
    kind: str  # "job" | "run"
    id: str
    owner: str
    format: str
    expires: int  # Unix time


class BadLink(Exception):
    """Not a link this service signed (malformed, or signed under another secret)."""


class ExpiredLink(Exception):
    """A link this service signed, past its expiry."""

    def __init__(self, link: Link) -> None:
        super().__init__(link.expires)
        self.link = link


def new_secret() -> bytes:
    """A random signing key (for a service started without ``link_secret``)."""
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def sign(secret: bytes, link: Link) -> str:
    """The token of ``link``: what it opens (kind, id, format, expiry) as compact JSON, base64url,
    then the MAC of that and of the owner. The owner is not in the token (a key's name is nobody
    else's business, apisweep4 D7): the MAC holds with the owner of the job or run it names only."""
    payload = _b64(json.dumps({"k": link.kind, "i": link.id, "f": link.format, "e": link.expires},
                              separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return f"{payload}.{_mac(secret, _signed(payload, link.owner))}"


def _signed(payload: str, owner: str) -> str:
    # (the owner's name is any text: hashed into the signed string, so it is ASCII there)
    return f"{payload}.{hashlib.sha256(owner.encode('utf-8')).hexdigest()}"


def read(token: str) -> Link:
    """What ``token`` claims to open (its owner blank), not yet verified; :class:`BadLink` for a
    token that is not one of this service's shape."""
    payload, dot, mac = token.partition(".")
    if not dot or len(token) > 1024 or not token.isascii():
        raise BadLink(token[:40])
    try:
        fields = json.loads(_unb64(payload))
        link = Link(kind=str(fields["k"]), id=str(fields["i"]), owner="", format=str(fields["f"]),
                    expires=int(fields["e"]))
    except (ValueError, KeyError, TypeError) as e:
        raise BadLink(token[:40]) from e
    if link.kind not in KINDS:
        raise BadLink(token[:40])
    return link


def verify(secret: bytes, token: str, owner: str, now: float | None = None) -> Link:
    """The link ``token`` stands for, signed by ``secret`` for the job or run of ``owner`` (compared
    in constant time); :class:`BadLink` otherwise, :class:`ExpiredLink` past its expiry."""
    link = read(token)
    payload, _, mac = token.partition(".")
    if not hmac.compare_digest(_mac(secret, _signed(payload, owner)), mac):
        raise BadLink(token[:40])
    link = Link(link.kind, link.id, owner, link.format, link.expires)
    if (time.time() if now is None else now) >= link.expires:
        raise ExpiredLink(link)
    return link
