"""Report links: a signed, expiring token that opens one job's or run's report without an API key.

A dashboard links a run's report (Grafana's data links open a URL; they cannot send ``X-API-Key``).
The token carries what it opens (kind, id, owner, format) and when it expires, signed with
HMAC-SHA256 under the service's ``link_secret``: it needs no table, every replica with the same
secret honours it, and changing the secret revokes every link. Deleting the job or run makes its
links 404. A token says nothing more than the report it opens does.
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
    """The token of ``link``: its fields as compact JSON, then the MAC of that, both base64url."""
    payload = _b64(json.dumps({"k": link.kind, "i": link.id, "o": link.owner, "f": link.format, "e": link.expires},
                              separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, token: str, now: float | None = None) -> Link:
    """The link ``token`` stands for; :class:`BadLink` unless this secret signed it (compared in
    constant time), :class:`ExpiredLink` past its expiry."""
    payload, dot, mac = token.partition(".")
    if not dot or len(token) > 2048 or not hmac.compare_digest(_mac(secret, payload), mac):
        raise BadLink(token[:40])
    try:
        fields = json.loads(_unb64(payload))
        link = Link(kind=str(fields["k"]), id=str(fields["i"]), owner=str(fields["o"]), format=str(fields["f"]),
                    expires=int(fields["e"]))
    except (ValueError, KeyError, TypeError) as e:  # (signed by us, so only a bug gets here)
        raise BadLink(token[:40]) from e
    if link.kind not in KINDS:
        raise BadLink(token[:40])
    if (time.time() if now is None else now) >= link.expires:
        raise ExpiredLink(link)
    return link
