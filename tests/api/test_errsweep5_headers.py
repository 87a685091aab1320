"""errsweep5 G9: every response says nosniff, and every document the service serves (a job's HTML
or Markdown report, opened directly) carries a strict Content-Security-Policy that no other site
may frame, as the UI's own pages do; the UI and /docs keep their own policies."""

from __future__ import annotations

import pytest

from tests.api.test_logs import native_log


@pytest.fixture(scope="module")
def job_id(api) -> str:  # noqa: ANN001 - the module's app (tests/api/conftest.py)
    r = api.post("/v1/checks/logs?wait=60", files={"file": ("<b>run</b>.jsonl", native_log(nan_at=77))})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return r.json()["id"]


def _directives(policy: str) -> dict[str, str]:
    return {d.strip().split(" ", 1)[0]: d.strip() for d in policy.split(";") if d.strip()}


@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_a_reports_document_is_sandboxed_unframeable_and_not_sniffed(api, job_id, fmt):
    r = api.get(f"/v1/jobs/{job_id}/report?format={fmt}")
    assert r.status_code == 200, r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    policy = _directives(r.headers["content-security-policy"])
    assert "sandbox" in policy
    assert policy["default-src"] == "default-src 'none'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert "script-src" not in policy and "'unsafe-inline'" not in r.headers["content-security-policy"]
    # the report's own stylesheet is the one the UI allows (by its hash)
    from gradhealth.ui import report_style_hash

    assert report_style_hash() in policy["style-src"]
    # chosen by Accept the same
    if fmt == "html":
        by_accept = api.get(f"/v1/jobs/{job_id}/report", headers={"accept": "text/html"})
        assert by_accept.headers["content-security-policy"] == r.headers["content-security-policy"]


def test_every_response_says_nosniff_and_the_uis_own_policies_stay(api, job_id):
    for url in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/report?format=sarif", "/v1/jobs/nope",
                "/openapi.json", "/no/such/page", "/ui/app.js"):
        r = api.get(url)
        assert r.headers.get("x-content-type-options") == "nosniff", (url, r.status_code)
        if not r.headers["content-type"].startswith("text/html"):
            assert "content-security-policy" not in r.headers or url.startswith("/ui/"), url
    for url in ("/", "/docs", "/redoc"):
        r = api.get(url)
        assert r.status_code == 200
        policy = _directives(r.headers["content-security-policy"])
        assert policy["default-src"] == "default-src 'self'" and "frame-ancestors" in policy, url
        assert r.headers["content-security-policy"].count("frame-ancestors") == 1
        assert r.headers["x-content-type-options"] == "nosniff"
