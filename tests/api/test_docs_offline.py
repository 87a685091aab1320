"""/docs and /redoc work offline: every asset they load is served by the service itself (vendored
with its licence and a SOURCE note, and shipped as package data), and the docs and the OpenAPI
document are counted under their own route in the metrics, not as `unmatched`."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from gradhealth.api.app import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
#: src=/href= attributes and the quoted URLs inside the page's script (the OpenAPI document's).
REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def _references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_nothing_from_outside_and_every_asset_is_served(idle_api, page):
    r = idle_api.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    # No absolute URL at all (the service's own would be http://testserver; there is none either).
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []
    assert "fonts.googleapis" not in html and "cdn.jsdelivr" not in html
    references = _references(html)
    assert "/openapi.json" in references and any(u.endswith(".js") for u in references), references
    for url in references:
        asset = idle_api.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url


def test_swagger_ui_asks_no_public_validator(idle_api):
    assert '"validatorUrl": null' in idle_api.get("/docs").text


def test_vendored_assets_carry_licence_source_and_match_their_recorded_hashes():
    for folder, names in {"swagger-ui": ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"],
                          "redoc": ["redoc.standalone.js"]}.items():
        base = STATIC_DIR / folder
        assert (base / "LICENSE").is_file() and (base / "SOURCE").is_file()
        source = (base / "SOURCE").read_text()
        for name in names:
            digest = hashlib.sha256((base / name).read_bytes()).hexdigest()
            assert f"{digest}  {name}" in source, f"{folder}/{name} differs from the version SOURCE names"
    total = sum(p.stat().st_size for p in STATIC_DIR.rglob("*") if p.is_file())
    assert total < 5 * 2**20


def test_the_assets_are_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["gradhealth"]
    source = ROOT / setuptools["package-dir"]["gradhealth"]
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            relative = path.relative_to(source).as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def _requests(metrics: str, route: str) -> float:
    pattern = rf'gradhealth_http_requests_total{{method="GET",route="{re.escape(route)}",status="200"}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


def test_docs_openapi_and_assets_are_counted_under_their_own_route(idle_api):
    before = idle_api.get("/metrics").text
    unmatched_before = sum(float(v) for v in re.findall(r'route="unmatched"[^}]*} (\S+)', before))
    for url in ("/docs", "/redoc", "/openapi.json", "/static/redoc/redoc.standalone.js",
                "/static/swagger-ui/swagger-ui.css"):
        assert idle_api.get(url).status_code == 200
    after = idle_api.get("/metrics").text
    for route, n in (("/docs", 1), ("/redoc", 1), ("/openapi.json", 1), ("/static", 2)):
        assert _requests(after, route) - _requests(before, route) == n, route
    assert sum(float(v) for v in re.findall(r'route="unmatched"[^}]*} (\S+)', after)) == unmatched_before
