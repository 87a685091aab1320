"""/docs and /redoc load nothing from outside the service: their pages and the vendored assets they
reference name no other host a browser would fetch from (an <img>/<script> src, a stylesheet's
url() or @import, a CDN), and they are served under the web UI's Content-Security-Policy, so that
whatever a bundle might still try is refused by the browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.api.helpers import running_app, settings_for
from tests.ui.test_page import _Refs

#: Patterns of a URL the browser fetches by itself (not a link the reader may follow, nor a name
#: such as a JSON Schema $id or an XML namespace): attribute or JSX-prop sources, CSS url() and
#: @import, and the CDNs such bundles load from.
FETCHED = re.compile(
    r"""(?ix)
    \b(?:src|srcset|poster)\s*[=:]\s*["'`]\s*(?:https?:)?//[^"'`\s]+
    | (?-i:url)\(\s*["']?\s*(?:https?:)?//[^)\s]+
    | @import\s+(?:url\()?\s*["']?(?:https?:)?//[^"')\s;]+
    | (?:https?:)?//(?:cdn\.redoc\.ly|fonts\.googleapis\.com|fonts\.gstatic\.com|cdn\.jsdelivr\.net
                      |unpkg\.com|cdnjs\.cloudflare\.com)\b[^"'`)\s]*
    """)


def _directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def test_the_check_sees_what_a_browser_would_fetch() -> None:
    seen = FETCHED.findall(
        'createElement("img",{alt:"logo",src:"https://cdn.redoc.ly/redoc/logo-mini.svg"}) '
        '<img src="//x.example/a.png"> .a{background:url("https://x.example/b.png")} '
        '@import url(https://fonts.googleapis.com/css?family=Roboto); '
        '<svg xmlns="http://www.w3.org/2000/svg"> {"$id":"https://json-schema.org/draft/2020-12/schema"} '
        '<a href="https://redocly.com/redoc/">docs</a>')
    assert len(seen) == 4, seen


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_load_nothing_from_elsewhere(tmp_path: Path, path: str) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        page = api.get(path)
        assert page.status_code == 200
        csp = _directives(page.headers["content-security-policy"])
        assert csp["default-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in csp.get("script-src", []) and "'unsafe-eval'" not in csp.get("script-src", [])
        for sources in csp.values():
            assert not [s for s in sources if "//" in s or s in ("*", "http:", "https:")], sources
        assert page.headers["x-content-type-options"] == "nosniff"
        refs = _Refs()
        refs.feed(page.text)
        assert refs.urls, "the page references its assets"
        bodies = {path: page.content}
        for url in sorted(set(refs.urls)):
            assert url.startswith("/") and not url.startswith("//"), f"{url} is not the service's"
            answer = api.get(url)
            assert answer.status_code == 200, url
            bodies[url] = answer.content
    for url, body in bodies.items():
        text = body.decode("utf-8", errors="replace")
        assert FETCHED.findall(text) == [], f"{url} makes the browser fetch from another host"
