"""The web UI without a browser: the page and every asset it references come from the service,
under a same-origin Content-Security-Policy; the page is public and its data is not."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from gradhealth.core.document import Diagnosis
from gradhealth.library import example_names
from gradhealth.report import ReportContext, render
from gradhealth.settings import hash_key
from tests.api.helpers import running_app, settings_for

KEY = "ui-test-key"
#: The one absolute URL allowed in the UI's files: the SVG namespace, a name that is never fetched.
SVG_NS = "http://www.w3.org/2000/svg"


class _Refs(HTMLParser):
    """Every URL the page makes the browser load or link to (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def _external(text: str) -> list[str]:
    """Absolute and protocol-relative URLs (``// comment`` is no URL: a space follows)."""
    return [u for u in re.findall(r"""(?i)(?:https?:)?//[^\s"'()<>`]+""", text) if u != SVG_NS]


def _directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def test_the_page_and_every_asset_it_references_come_from_the_service(tmp_path: Path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        page = api.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        refs = _Refs()
        refs.feed(page.text)
        assert {"/ui/app.js", "/ui/app.css", "/ui/icon.svg"} <= set(refs.urls)
        for url in refs.urls:
            assert url.startswith("/") and not url.startswith("//"), f"{url} is not the service's"
        bodies = {"/": page.text}
        for url in sorted(set(refs.urls)):
            answer = api.get(url)
            assert answer.status_code == 200, url
            if url.startswith("/ui/"):  # the UI's own files (the others: links to /docs, /openapi.json)
                assert "default-src 'self'" in answer.headers["content-security-policy"], url
                assert answer.headers["x-content-type-options"] == "nosniff"
            bodies[url] = answer.text
        css_urls = re.findall(r"url\(([^)]*)\)", bodies["/ui/app.css"])
        assert css_urls == [], "the stylesheet loads nothing"
        for url, body in bodies.items():
            assert _external(body) == [], f"{url} names a URL outside the service"
        # The script talks to the API only through relative paths under the page's root.
        script = bodies["/ui/app.js"]
        assert "fetch(ROOT + path" in script and "new EventSource(ROOT + url)" in script


def test_the_policy_is_same_origin_and_allows_only_the_reports_own_stylesheet(
        tmp_path: Path, checked: Callable[[str], Diagnosis]) -> None:
    report = render("html", checked("std1_mlp"), ReportContext(source="std1_mlp"))
    styles = re.findall(r"<style>(.*?)</style>", report, flags=re.S)
    assert len(styles) == 1
    expected = "'sha256-" + base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode() + "'"
    with running_app(settings_for(tmp_path, workers=0)) as api:
        csp = _directives(api.get("/").headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'", expected]
    assert "script-src" not in csp, "scripts fall back to default-src 'self': no inline, no eval"
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in s or "*" in s for sources in csp.values() for s in sources)


def test_unknown_asset_names_are_problems_not_files(tmp_path: Path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        for name in ("nope.js", "..%2F__init__.py", "%2E%2E%2Fsettings.py", "index.html"):
            answer = api.get(f"/ui/{name}")
            assert answer.status_code == 404, name
            assert answer.headers["content-type"].startswith("application/problem+json")


def test_the_examples_are_the_bundled_ones(tmp_path: Path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        items = api.get("/ui/examples").json()["items"]
    assert [i["name"] for i in items] == example_names() and len(items) >= 10
    folder = resources.files("gradhealth") / "examples"
    for item in items:
        assert item["spec"] == (folder / f"{item['name']}.yaml").read_text(encoding="utf-8")
        assert item["description"]


@pytest.mark.parametrize("docs_public", [True, False])
def test_with_keys_on_the_page_is_public_and_the_data_is_not(tmp_path: Path, docs_public: bool) -> None:
    settings = settings_for(tmp_path, workers=0, api_keys=f"alice={hash_key(KEY)}", docs_public=docs_public)
    with running_app(settings) as api:
        page = api.get("/")
        assert page.status_code == 200 and 'data-keys="on"' in page.text
        assert KEY not in page.text
        for asset in ("/ui/app.js", "/ui/app.css", "/ui/icon.svg"):
            assert api.get(asset).status_code == 200
        assert api.get("/v1/jobs").status_code == 401
        # The examples are documentation: public exactly when the docs are.
        assert api.get("/ui/examples").status_code == (200 if docs_public else 401)
        assert api.get("/ui/examples", headers={"X-API-Key": KEY}).status_code == 200
        refused = api.get("/ui/examples", headers={"X-API-Key": "wrong"})
        assert refused.status_code == (200 if docs_public else 401)


def test_with_keys_off_the_page_says_so(tmp_path: Path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        assert 'data-keys="off"' in api.get("/").text


def test_the_ui_is_not_part_of_the_api_description(tmp_path: Path) -> None:
    with running_app(settings_for(tmp_path, workers=0)) as api:
        paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_the_url_check_sees_urls_outside_the_service() -> None:
    page = ('<script src="https://cdn.example.com/x.js"></script><link href="//fonts.example.org/f.css">'
            '<svg xmlns="http://www.w3.org/2000/svg"></svg> // a comment')
    assert _external(page) == ["https://cdn.example.com/x.js", "//fonts.example.org/f.css"]
