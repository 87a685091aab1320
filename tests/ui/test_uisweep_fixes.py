"""The web UI's fixes from the UI sweep, in a real browser (Debian's Chromium, Playwright) against a
real `gradhealth serve`: one server and one browser for the module, a fresh page per test.

- a YAML spec in flow style (opens with a brace) is sent as YAML;
- the focus stays on a button after its work, and a problem is brought into view (375 px) and
  focused; a validation problem's errors are listed once;
- a failed job says why (the problem's title and detail);
- a report that fails to load takes the previous report off the page;
- jobs older than the newest page are reached with "Load older jobs";
- a live run's age ticks, and a long run name wraps at 375 px.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import wait_job
from tests.ui.test_browser import DESKTOP, PHONE, Watched, _server, browser, chromium  # noqa: F401

FLOW_SPEC = "{input: {shape: [16]}, layers: [{type: linear, out_features: 4}]}"
BAD_SPEC = 'input: {shape: "sixteen"}\nlayers:\n  - {type: linear, out_features: "ten", repeat: -3}\n'
SMALL_SPEC = "input: {shape: [4]}\nlayers:\n  - {type: linear, out_features: 2}\n"
PAGE = 50


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    chromium()
    with _server(tmp_path_factory.mktemp("uisweep")) as api:
        yield api


@pytest.fixture
def page(browser: Any, server: httpx.Client) -> Iterator[Any]:  # noqa: F811
    w = Watched(browser, str(server.base_url).rstrip("/"), viewport=DESKTOP)
    try:
        yield w.page
    finally:
        w.close()


def _open(page: Any, server: httpx.Client) -> None:
    page.goto(str(server.base_url).rstrip("/") + "/")
    from playwright.sync_api import expect

    expect(page.locator("#examples button").first).to_be_visible()


def test_flow_style_yaml_goes_as_yaml_and_the_focus_stays_on_the_button(
        page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    _open(page, server)
    # A YAML spec in flow style opens with a brace: it is still sent as YAML (JSON only parses).
    page.fill("#spec", FLOW_SPEC)
    with page.expect_request("**/v1/checks/architecture") as request:
        page.locator("#spec-submit").click()
    assert request.value.headers["content-type"] == "application/yaml"
    expect(page.locator("#spec-submit")).to_be_enabled()
    with page.expect_request("**/v1/checks/architecture") as request:
        page.fill("#spec", '{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}]}')
        page.locator("#spec-submit").click()
    assert request.value.headers["content-type"] == "application/json"
    expect(page.locator("#spec-submit")).to_be_enabled()
    # Submitted from the keyboard: once done, the focus is on the button again.
    page.fill("#spec", SMALL_SPEC)
    page.focus("#spec-submit")
    page.keyboard.press("Enter")
    # three jobs: the service reads the flow-style spec as the YAML it was sent as, too
    expect(page.locator("#jobs tbody tr")).to_have_count(3, timeout=30_000)
    assert page.locator("#problem").is_hidden(), page.locator("#problem").inner_text()
    expect(page.locator("#spec-submit")).to_be_enabled()
    assert page.evaluate("document.activeElement.id") == "spec-submit"
    for job_id in page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.jobId)"):
        wait_job(server, job_id, ("succeeded", "failed"))
        server.delete(f"/v1/jobs/{job_id}")


def test_a_problem_is_listed_once_in_view_and_focused_at_phone_width(page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size(PHONE)
    _open(page, server)
    page.fill("#spec", BAD_SPEC)
    page.locator("#spec-submit").click()
    box = page.locator("#problem")
    box.wait_for(state="visible")
    expect(box).to_be_focused()
    top, bottom = page.evaluate("(() => { const r = document.getElementById('problem').getBoundingClientRect();"
                                " return [r.top, r.bottom]; })()")
    assert 0 <= top < PHONE["height"] and bottom > 0, (top, bottom)
    items = [t.strip() for t in box.locator("li").all_inner_texts()]
    assert len(items) >= 2, box.inner_text()
    text = box.inner_text()
    for item in items:  # each error once: not again in a detail that joins them all
        detail = item.split(" ", 1)[-1]
        assert text.count(detail) == 1, text


def test_a_job_list_that_left_before_a_submission_does_not_take_the_new_job_off(
        page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    _open(page, server)
    rows = page.locator("#jobs tbody tr")
    before = rows.count()
    # A list refresh whose answer was made before the submission arrives after it (CI saw this
    # race: the new job's row went and, every job done, no refresh brought it back).
    held: list[Any] = []

    def hold_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/v1/jobs?limit=*", hold_first)
    page.locator("#jobs-refresh").click()
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the list request was not made"
    stale = held[0].fetch()
    page.fill("#spec", SMALL_SPEC)
    page.locator("#spec-submit").click()
    expect(rows).to_have_count(before + 1, timeout=30_000)
    new_id = rows.first.get_attribute("data-job-id")
    held[0].fulfill(response=stale)
    expect(page.locator("#jobs-refresh")).to_be_enabled()
    expect(rows).to_have_count(before + 1)
    assert rows.first.get_attribute("data-job-id") == new_id
    wait_job(server, new_id, ("succeeded", "failed"))
    server.delete(f"/v1/jobs/{new_id}")


def test_a_failed_job_says_why(page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    job = server.post("/v1/checks/logs", files={"file": ("bad.csv", b"step,loss\n1,abc\n2,def\n", "text/csv")})
    assert job.status_code in (200, 202), job.text
    failed = wait_job(server, job.json()["id"], ("failed", "succeeded"))
    assert failed["status"] == "failed" and failed["error"]["detail"], failed
    _open(page, server)
    reason = page.locator(f"tr[data-job-id='{failed['id']}'] [data-reason]")
    expect(reason).to_contain_text(failed["error"]["title"], timeout=15_000)
    expect(reason).to_contain_text(failed["error"]["detail"])
    server.delete(f"/v1/jobs/{failed['id']}")


def test_a_report_that_fails_to_load_takes_the_previous_one_off_the_page(
        page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    ids = []
    for _ in range(2):
        job = server.post("/v1/checks/logs", files={"file": ("ok.csv", b"step,loss\n1,2.0\n2,1.5\n3,1.2\n4,1.0\n",
                                                            "text/csv")})
        ids.append(wait_job(server, job.json()["id"], ("succeeded",))["id"])
    _open(page, server)
    page.locator(f"tr[data-job-id='{ids[0]}'] button[data-action=report]").click()
    expect(page.locator("#report-section")).to_be_visible()
    expect(page.frame_locator("#report").locator("h1")).to_be_visible()
    page.route(f"**/v1/jobs/{ids[1]}/report**", lambda route: route.fulfill(
        status=500, content_type="application/problem+json",
        body='{"status": 500, "title": "Internal Server Error", "detail": "the report failed"}'))
    page.locator(f"tr[data-job-id='{ids[1]}'] button[data-action=report]").click()
    expect(page.locator("#problem")).to_contain_text("the report failed")
    expect(page.locator("#report-section")).to_be_hidden()
    assert page.locator("#report").get_attribute("srcdoc") is None
    for job_id in ids:
        server.delete(f"/v1/jobs/{job_id}")


def test_jobs_older_than_the_newest_page_can_be_loaded(page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    created = []
    for i in range(PAGE + 3):  # logs that fail as soon as they are read: quick work for the worker
        job = server.post("/v1/checks/logs", files={"file": (f"old-{i}.csv", b"step,loss\n1,abc\n", "text/csv")})
        assert job.status_code in (200, 202), job.text
        created.append(job.json()["id"])
    for job_id in created:
        wait_job(server, job_id, ("failed", "succeeded"))
    total = len(server.get("/v1/jobs?limit=100").json()["items"])
    assert total > PAGE
    _open(page, server)
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(PAGE)
    older = page.locator("#jobs-older")
    expect(older).to_be_visible()
    older.click()
    expect(rows).to_have_count(total)
    expect(older).to_be_hidden()
    page.locator("#jobs-refresh").click()  # a refresh keeps the older jobs
    expect(page.locator("#jobs-refresh")).to_be_enabled()
    expect(rows).to_have_count(total)
    for job_id in created:
        server.delete(f"/v1/jobs/{job_id}")


def test_a_live_runs_age_ticks_and_its_long_name_wraps(page: Any, server: httpx.Client) -> None:
    from playwright.sync_api import expect

    run = server.post("/v1/runs", json={"name": "VeryLongRunNameWithoutSpaces" * 8})
    assert run.status_code in (200, 201), run.text
    page.set_viewport_size(PHONE)
    _open(page, server)
    row = page.locator(f"tr[data-run-id='{run.json()['id']}']")
    expect(row).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide at 375 px"
    ago = row.locator("[data-created]")
    expect(ago).to_have_count(1)
    two_hours = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    ago.evaluate("(node, when) => { node.dataset.created = when; }", two_hours)
    expect(ago).to_have_text("2 h ago", timeout=8_000)  # the ages tick every 5 s
    server.delete(f"/v1/runs/{run.json()['id']}")


def test_an_active_run_older_than_twenty_others_is_still_listed(page: Any, server: httpx.Client) -> None:
    # newuser4: the list showed the 20 newest runs, so a run training for days dropped out of it
    from playwright.sync_api import expect

    old = server.post("/v1/runs", json={"name": "long-training"}).json()
    finished = []
    for k in range(21):
        run = server.post("/v1/runs", json={"name": f"short-{k}"}).json()
        server.post(f"/v1/runs/{run['id']}/finish")
        finished.append(run["id"])
    _open(page, server)
    expect(page.locator(f"tr[data-run-id='{old['id']}']")).to_be_visible()
    expect(page.locator("#runs tbody tr").first).to_have_attribute("data-run-id", old["id"])
    for run_id in [old["id"], *finished]:
        server.delete(f"/v1/runs/{run_id}")


def test_a_stale_run_says_so_and_when_it_last_stored_a_point(page: Any, server: httpx.Client) -> None:
    # newuser4 P5: a crashed run looked live (its row showed only its creation age). The service
    # marks it stale (tests/live/test_stale_runs.py); here the page's rendering of that answer.
    from playwright.sync_api import expect

    run = server.post("/v1/runs", json={"name": "crashed-run"}).json()
    server.post(f"/v1/runs/{run['id']}/points", json=[{"step": 1, "metric": "loss", "value": 1.0}])
    two_hours = (datetime.now(UTC) - timedelta(hours=2)).isoformat()

    def aged(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        for item in body["items"]:
            if item["id"] == run["id"]:
                item.update(stale=True, updated_at=two_hours)
        route.fulfill(response=answer, json=body)

    page.route("**/v1/runs?*", aged)
    _open(page, server)
    row = page.locator(f"tr[data-run-id='{run['id']}']")
    expect(row.locator(".status")).to_have_text("stale")
    expect(row.locator("[data-prefix]")).to_have_text("last point 2 h ago")
    page.unroute("**/v1/runs?*")
    server.delete(f"/v1/runs/{run['id']}")


def test_a_live_runs_report_follows_the_run_and_says_which_step_it_shows(page: Any, server: httpx.Client) -> None:
    # newuser4 P13: the report of an active run was a one-off snapshot, with nothing saying of
    # which step, and no address to open it on its own.
    from playwright.sync_api import expect

    run = server.post("/v1/runs", json={"name": "followed"}).json()
    rows = [{"step": s, "metric": "loss", "value": 2.0 - 0.01 * s} for s in range(30)]
    assert server.post(f"/v1/runs/{run['id']}/points", json=rows).status_code == 200
    _open(page, server)
    row = page.locator(f"tr[data-run-id='{run['id']}']")
    row.get_by_role("button", name="Report").click()
    expect(page.locator("#report-asof")).to_have_text(re.compile(r"as of step 29 \(30 points\)"))
    link = page.locator("#report-link")
    expect(link).to_be_visible()
    assert link.get_attribute("href") == f"{str(server.base_url).rstrip('/')}/v1/runs/{run['id']}/report?format=html"
    first = page.locator("#report").get_attribute("srcdoc")

    more = [{"step": s, "metric": "loss", "value": 2.0 - 0.01 * s} for s in range(30, 45)]
    assert server.post(f"/v1/runs/{run['id']}/points", json=more).status_code == 200
    expect(page.locator("#report-asof")).to_have_text(re.compile(r"as of step 44 \(45 points\)"), timeout=15_000)
    assert page.locator("#report").get_attribute("srcdoc") != first  # the frame holds the new report
    server.post(f"/v1/runs/{run['id']}/finish")
    expect(page.locator("#report-asof")).to_have_text(re.compile(r"^Finished at step 44"), timeout=15_000)
    server.delete(f"/v1/runs/{run['id']}")


def test_a_log_too_short_to_judge_is_not_listed_as_plain_healthy(page: Any, server: httpx.Client) -> None:
    # logsweep98 #1: a few lines of a log were listed "diagnosis: healthy", read as checked
    from playwright.sync_api import expect

    short = b"step,loss\n" + b"".join(f"{i},{2 - i / 10}\n".encode() for i in range(4))
    long = b"step,loss\n" + b"".join(f"{i},{2 / (1 + i / 10)}\n".encode() for i in range(60))
    ids = {}
    for name, body in (("short.csv", short), ("long.csv", long)):
        job = server.post("/v1/checks/logs", files={"file": (name, body, "text/csv")})
        assert job.status_code in (200, 202), job.text
        ids[name] = wait_job(server, job.json()["id"], ("failed", "succeeded"))
        assert ids[name]["status"] == "succeeded", ids[name]
    assert server.get(f"/v1/jobs/{ids['short.csv']['id']}").json()["result"]["judged"] is False
    _open(page, server)
    unjudged = page.locator(f"tr[data-job-id='{ids['short.csv']['id']}'] [data-judged]")
    expect(unjudged).to_have_attribute("data-judged", "false", timeout=15_000)
    expect(unjudged).to_contain_text("healthy (not judged")
    judged = page.locator(f"tr[data-job-id='{ids['long.csv']['id']}'] [data-judged]")
    expect(judged).to_have_attribute("data-judged", "true", timeout=15_000)
    expect(judged).not_to_contain_text("not judged")
    for job in ids.values():
        server.delete(f"/v1/jobs/{job['id']}")
