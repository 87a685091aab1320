"""The ``Accept`` header, read one way on every route: a ``q`` that is not a plain decimal from 0 to
1 is a 400 naming the header wherever it is sent (the report routes choose a format by it; the
others answer JSON whatever it says, but do not take a malformed one silently)."""

from __future__ import annotations

import re

from gradhealth.api.problems import ApiError

#: A quality value as written: a plain decimal (RFC 9110 12.4.2 allows at most three decimals; more
#: are read, not refused). Signs, exponents, ``inf`` and ``nan`` are not quality values.
_QVALUE = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def quality(value: str, media: str) -> float:
    """The ``q`` of an Accept entry, from 0 to 1; a 400 naming the header otherwise."""
    text = value.strip().strip('"')
    q = float(text) if _QVALUE.fullmatch(text) else None
    if q is None or not 0.0 <= q <= 1.0:
        why = (f"q={value.strip()[:40]!r} for {media[:60]!r} is not a quality value; use a number from 0 to 1 "
               "(e.g. q=0.5)")
        raise ApiError(400, "invalid_accept", f"header.Accept: {why}", parameter="header.Accept", item=why)
    return q


def ranked(accept: str) -> list[tuple[float, int, str]]:
    """(-q, position, media type in lower case) of each entry of ``accept`` with a q above 0, most
    preferred first; a 400 (:func:`quality`) for any entry whose q is not a quality value."""
    out: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                q = quality(value, media)
        if media and q > 0:
            out.append((-q, i, media.lower()))
    return sorted(out)
