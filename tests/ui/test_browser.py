"""The web UI in a real browser: Debian's Chromium, headless, driven by Playwright, against a real
`gradhealth serve` (SQLite, one worker). Submit a bundled example, watch its progress arrive live,
open the report and find its charts, delete the job; once with keys off (EventSource) and once
with a key required (fetch() streaming, the key only ever in a header).

No Chromium: skipped locally, failed when CI is set (.ci/run installs Debian's `chromium`).
Screenshots (light and dark, desktop and 375 px) go to $GRADHEALTH_TEST_ARTIFACTS or
tests/ui/artifacts/ (git-ignored); the folder is printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gradhealth.settings import hash_key
from tests.e2e.helpers import serve, wait_job

EXAMPLE = "transformer_post_ln"  # a post-LN risk, about 2 s (long enough to watch it run): findings, a
#                                 remedy and a layer chart
KEY = "browser-test-key"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 800}
LOG = Path(__file__).parents[1] / "data" / "logs" / "keras-csvlogger-brats" / "training.log"

# Records every state of the job rows the page shows (the stream's updates land between polls).
WATCH_ROWS = """() => {
  window.__rows = [];
  const tbody = document.querySelector('#jobs tbody');
  const record = () => {
    for (const tr of tbody.querySelectorAll('tr')) {
      const bar = tr.querySelector('progress');
      window.__rows.push({status: tr.dataset.status, fraction: bar ? Number(bar.value) : null,
                          stage: (tr.querySelector('.stage') || {}).textContent || ''});
    }
  };
  new MutationObserver(record).observe(tbody, {subtree: true, childList: true, attributes: true});
}"""


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium() -> str:
    """The system Chromium (Playwright's own browser download is not used)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if _ci():
            pytest.fail("CI is set and the web UI must be tested in a browser: chromium or playwright "
                        "not found (.ci/run installs the chromium package)", pytrace=False)
        pytest.skip("chromium (Debian package) or playwright (pip) not found")
    return path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("GRADHEALTH_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts") / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb UI screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    # As root (containers, CI) Chromium's sandbox cannot start.
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page with every console error, page error and request recorded."""

    def __init__(self, browser: Any, origin: str, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.origin = origin
        self.errors: list[str] = []
        self.requests: list[Any] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r))

    def foreign(self) -> list[str]:
        """Requests that left the service's origin (a report in a srcdoc frame is no request)."""
        return [r.url for r in self.requests
                if not (r.url.startswith(self.origin + "/") or r.url.startswith(f"blob:{self.origin}/")
                        or r.url.startswith(("about:", "data:")))]

    def close(self) -> None:
        self.context.close()


def _server(tmp_path: Path, **env: str) -> Any:
    return serve(f"sqlite:///{tmp_path}/ui.db", tmp_path / "serve.log", GRADHEALTH_WORKERS="1",
                 GRADHEALTH_UPLOAD_DIR=str(tmp_path / "uploads"), **env)


def _findings_text(job: dict[str, Any]) -> str:
    """What the Findings cell must say, from the API's document (not from the page)."""
    findings = job["result"]["findings"]
    if not findings:
        return "none"
    worst = max((f["severity"] for f in findings), key=["info", "warning", "error"].index)
    return f"{len(findings)} (worst: {worst})"


def _check_example(w: Watched, api: httpx.Client, headers: dict[str, str]) -> str:
    """Pick the example, submit it, watch it finish live, open the report; the job's id."""
    from playwright.sync_api import expect

    page = w.page
    page.get_by_role("button", name=EXAMPLE, exact=True).click()
    expect(page.get_by_label("Spec (YAML or JSON)")).to_have_value(
        (Path(__file__).parents[2] / "service" / "examples" / f"{EXAMPLE}.yaml").read_text(encoding="utf-8"))
    page.evaluate(WATCH_ROWS)
    page.get_by_role("button", name="Check spec").click()
    row = page.locator("#jobs tbody tr").first
    expect(row).to_have_attribute("data-status", "succeeded", timeout=120_000)
    job_id = row.get_attribute("data-job-id")
    assert job_id
    seen = page.evaluate("window.__rows")
    # Live: the row showed the job running with its progress bar, then done, with no reload.
    running = [s for s in seen if s["status"] == "running" and s["fraction"] is not None]
    assert running, f"the page never showed the job running: {seen}"
    assert all(0.0 <= s["fraction"] <= 1.0 for s in running)
    assert seen[-1]["status"] == "succeeded"
    assert any(r.url.endswith(f"/v1/jobs/{job_id}/events") for r in w.requests), "no event stream"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    job = api.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "succeeded" and job["result"]["findings"], "the example has findings"
    expect(row.locator("td.findings")).to_have_text(_findings_text(job))

    row.get_by_role("button", name="Report").click()
    frame = page.frame_locator("#report")
    expect(frame.locator("h1")).to_contain_text(job["result"]["status"])
    charts = frame.locator("svg.chart")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 1
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert (chart.locator("text.xlabel").text_content() or "").strip(), f"chart {i} has no x-axis label"
        assert (chart.locator("text.ylabel").text_content() or "").strip(), f"chart {i} has no y-axis label"
    # The report's stylesheet applied inside the frame (the policy allows it by its hash).
    assert frame.locator("body").evaluate("b => getComputedStyle(b).fontFamily") != ""
    expect(frame.locator("#findings")).to_contain_text(job["result"]["findings"][0]["code"])
    return job_id


def _screenshots(browser: Any, origin: str, folder: Path, name: str, before: Any = None) -> None:
    """Light and dark, desktop and 375 px; at 375 px nothing is wider than the screen."""
    for scheme in ("light", "dark"):
        for label, viewport in (("desktop", DESKTOP), ("375px", PHONE)):
            w = Watched(browser, origin, color_scheme=scheme, viewport=viewport)
            try:
                w.page.goto(origin + "/")
                if before is not None:
                    before(w.page)
                w.page.wait_for_load_state("networkidle")
                if viewport is PHONE:
                    width = w.page.evaluate("document.documentElement.scrollWidth")
                    assert width <= PHONE["width"], f"{scheme}: the page is {width} px wide at 375 px"
                background = w.page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert (background == "rgb(13, 17, 23)") == (scheme == "dark"), background
                w.page.screenshot(path=str(folder / f"{name}-{scheme}-{label}.png"), full_page=True)
                assert w.errors == [] and w.foreign() == []
            finally:
                w.close()


def test_submit_watch_report_delete_with_keys_off(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    with _server(tmp_path) as api:
        origin = str(api.base_url).rstrip("/")
        w = Watched(browser, origin, viewport=DESKTOP)
        try:
            response = w.page.goto(origin + "/")
            assert response is not None and response.ok
            assert "default-src 'self'" in response.headers["content-security-policy"]
            expect(w.page.locator("#key-state")).to_have_text("keys are off on this service")

            job_id = _check_example(w, api, {})
            assert any(r.url == f"{origin}/v1/jobs/{job_id}/events" and r.resource_type == "eventsource"
                       for r in w.requests), "keys off: the progress comes through EventSource"
            w.page.screenshot(path=str(artifacts / "report-light-desktop.png"), full_page=True)

            # A problem+json answer is shown to the user, pointer included.
            w.page.get_by_label("Spec (YAML or JSON)").fill("input: {shape: [8]}\nlayers: []\n")
            w.page.get_by_role("button", name="Check spec").click()
            problem = w.page.get_by_role("alert")
            expect(problem).to_contain_text("422")
            expected_errors = [e for e in w.errors if "422" in e]
            assert len(expected_errors) == 1  # the browser logs the refused request itself

            w.page.locator(f'tr[data-job-id="{job_id}"]').get_by_role("button", name="Delete").click()
            expect(w.page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
            assert api.get(f"/v1/jobs/{job_id}").status_code == 404
            expect(w.page.locator("#report-section")).to_be_hidden()

            # Uploads go to the log check, or to the model check by the file's type.
            w.page.get_by_label("File", exact=True).set_input_files(LOG)
            w.page.get_by_role("button", name="Upload and check").click()
            uploaded = w.page.locator("#jobs tbody tr").first
            expect(uploaded.locator('td[data-label="Kind"]')).to_have_text("logs")
            expect(uploaded).to_have_attribute("data-status", "succeeded", timeout=120_000)
            posts = [r.url for r in w.requests if r.method == "POST"]
            assert posts[-1] == f"{origin}/v1/checks/logs"
            w.page.get_by_label("File", exact=True).set_input_files(
                {"name": "model.onnx", "mimeType": "application/octet-stream", "buffer": b"not a model"})
            w.page.get_by_role("button", name="Upload and check").click()
            expect(problem).to_contain_text("400")
            posts = [r.url for r in w.requests if r.method == "POST"]
            assert posts[-1] == f"{origin}/v1/checks/model"
            expected_errors += [e for e in w.errors if "400" in e]
            assert len(expected_errors) == 2

            assert [e for e in w.errors if e not in expected_errors] == [], w.errors
            assert w.foreign() == []
        finally:
            w.close()

        # One finished job in the list for the screenshots.
        queued = api.post("/v1/checks/architecture", content=(
            Path(__file__).parents[2] / "service" / "examples" / f"{EXAMPLE}.yaml").read_bytes(),
            headers={"Content-Type": "application/yaml"}).json()
        assert wait_job(api, queued["id"], ("succeeded", "failed"))["status"] == "succeeded"
        _screenshots(browser, origin, artifacts, "jobs",
                     before=lambda page: expect(page.locator("td.findings").first).not_to_have_text("-"))


def test_with_a_key_required_the_key_goes_in_a_header_only(tmp_path: Path, browser: Any,
                                                            artifacts: Path) -> None:
    from playwright.sync_api import expect

    key = {"X-API-Key": KEY}
    with _server(tmp_path, GRADHEALTH_API_KEYS=f"alice={hash_key(KEY)}") as api:
        origin = str(api.base_url).rstrip("/")
        assert api.get("/v1/jobs").status_code == 401
        w = Watched(browser, origin, viewport=PHONE)
        try:
            w.page.goto(origin + "/")
            # Without a key the page asks for one and calls nothing that would be refused.
            expect(w.page.get_by_role("alert")).to_contain_text("needs an API key")
            w.page.wait_for_load_state("networkidle")
            assert not [r.url for r in w.requests if "/v1/" in r.url]

            w.page.get_by_label("API key").fill(KEY)
            w.page.get_by_role("button", name="Use key").click()
            expect(w.page.locator("#key-state")).to_have_text("a key is set for this tab")
            assert w.page.evaluate("sessionStorage.getItem('gradhealth.apiKey')") == KEY
            assert w.page.get_by_label("API key").input_value() == ""

            job_id = _check_example(w, api, key)
            streams = [r for r in w.requests if r.url.endswith(f"/v1/jobs/{job_id}/events")]
            assert streams and all(r.resource_type == "fetch" and r.headers.get("x-api-key") == KEY
                                   for r in streams), "keys on: the stream is a fetch() with the key header"
            api_calls = [r for r in w.requests if "/v1/" in r.url]
            assert api_calls and all(r.headers.get("x-api-key") == KEY for r in api_calls)
            assert not [r.url for r in w.requests if KEY in r.url], "the key never goes in a URL"
            width = w.page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide at 375 px"
            w.page.screenshot(path=str(artifacts / "keys-report-light-375px.png"), full_page=True)

            w.page.locator(f'tr[data-job-id="{job_id}"]').get_by_role("button", name="Delete").click()
            expect(w.page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
            assert api.get(f"/v1/jobs/{job_id}", headers=key).status_code == 404

            # A live run of this key appears, with the points it has sent so far.
            run = api.post("/v1/runs", json={"name": "ui-live"}, headers=key).json()
            points = [{"step": s, "metric": "loss", "value": 2.0 - s / 100} for s in range(30)]
            stored = api.post(f"/v1/runs/{run['id']}/points", json=points, headers=key).json()
            assert stored["points"] == 30
            run_row = w.page.locator(f'tr[data-run-id="{run["id"]}"]')
            points_cell = run_row.locator('td[data-label="Points"]')
            expect(points_cell.locator('span').first).to_have_text("30 (step 29)", timeout=15_000)
            expect(points_cell).to_contain_text("last point")  # when it last stored a point (newuser4 P5)
            expect(run_row.locator('td[data-label="Run"]')).to_contain_text("ui-live")

            # Forgetting the key leaves nothing of this caller's on the page.
            w.page.get_by_role("button", name="Forget").click()
            expect(w.page.locator("#jobs tbody tr, #runs tbody tr")).to_have_count(0)
            assert w.page.evaluate("sessionStorage.getItem('gradhealth.apiKey')") is None

            assert w.errors == [] and w.foreign() == []
        finally:
            w.close()
