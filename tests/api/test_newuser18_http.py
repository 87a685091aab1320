"""newuser18: the HTTP layer's smaller contract gaps. A report link's request body was ignored (even
``{not json``: a week-long link); a failed or cancelled job's report said ``job-not-finished``; an upload
over GRADHEALTH_MAX_UPLOAD_BYTES got ``http-413`` or ``content-too-large`` by its size, neither naming the
place; errors[] items lacked the parameter or pointer their detail names; the header timeout's 408 was
text/plain; a raw upload without ?filename= got an invented job name; ``DELETE /v1/jobs/`` was a 307."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import update

from gradhealth.analysis.spec import MAX_DEPTH, MAX_NODES
from gradhealth.api.serving import guarded_protocol
from gradhealth.db.models import JobRow
from gradhealth.settings import Settings
from tests.api.helpers import TINY, Api, running_app, settings_for

PROBLEM = "application/problem+json"
LIMIT = 50_000  # GRADHEALTH_MAX_UPLOAD_BYTES of this module's app
CSV = b"step,loss\n" + b"".join(f"{i},{1 + i % 3}\n".encode() for i in range(30))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """No workers: jobs stay queued until a test says otherwise."""
    with running_app(settings_for(tmp_path_factory.mktemp("nu18"), workers=0, max_upload_bytes=LIMIT)) as client:
        yield client


def _queued(api: Api) -> str:
    r = api.post("/v1/checks/architecture", json=TINY)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:400]
    assert r.headers["content-type"] == PROBLEM
    return dict(r.json())


def _life(link: dict[str, Any]) -> float:
    return datetime.fromisoformat(link["expires_at"]).timestamp() - time.time()


# --- #1: a report link's body is read: honoured when valid, refused with its place otherwise ---------


def test_a_link_body_that_is_not_json_is_a_400_not_a_week_long_link(api):
    job = _queued(api)
    r = api.post(f"/v1/jobs/{job}/report/link", content=b"{not json", headers={"content-type": "application/json"})
    problem = _problem(r, 400)
    assert problem["errors"][0]["parameter"] == "body" and "invalid JSON" in problem["detail"]


def test_an_unknown_body_field_is_a_422_at_its_pointer_on_both_link_routes(api):
    job = _queued(api)
    run = api.post("/v1/runs", json={"name": "nu18-run"}).json()["id"]
    for path in (f"/v1/jobs/{job}/report/link", f"/v1/runs/{run}/report/link"):
        problem = _problem(api.post(path, json={"expires_in_s": -5}), 422)
        assert problem["errors"][0]["pointer"] == "/expires_in_s", problem
        assert "ttl_s" in problem["errors"][0]["detail"]  # says what the body takes


def test_a_link_body_form_encoded_is_a_415(api):
    r = api.post(f"/v1/jobs/{_queued(api)}/report/link", content=b"ttl_s=60",
                 headers={"content-type": "application/x-www-form-urlencoded"})
    _problem(r, 415)


def test_the_body_s_ttl_and_format_are_honoured(api):
    job = _queued(api)
    link = api.post(f"/v1/jobs/{job}/report/link", json={"ttl_s": 120, "format": "sarif"})
    assert link.status_code == 201, link.text
    assert link.json()["format"] == "sarif"
    assert 110 < _life(link.json()) <= 121  # two minutes, not a week
    # no body, an empty body and an empty object: the defaults (a week, html)
    for kwargs in ({}, {"content": b"", "headers": {"content-type": "application/json"}}, {"json": {}}):
        made = api.post(f"/v1/jobs/{job}/report/link", **kwargs)
        assert made.status_code == 201, made.text
        assert made.json()["format"] == "html" and abs(_life(made.json()) - 7 * 86400) < 10


def test_a_body_option_is_checked_at_its_pointer(api):
    job = _queued(api)
    problem = _problem(api.post(f"/v1/jobs/{job}/report/link", json={"ttl_s": -5}), 422)
    assert problem["errors"][0]["pointer"] == "/ttl_s"
    problem = _problem(api.post(f"/v1/jobs/{job}/report/link", json={"format": "pdf"}), 406)
    assert problem["errors"][0]["pointer"] == "/format" and "pdf" in problem["detail"]
    problem = _problem(api.post(f"/v1/jobs/{job}/report/link?ttl_s=60", json={"ttl_s": 60}), 422)
    assert problem["errors"][0]["pointer"] == "/ttl_s" and "query" in problem["detail"]


# --- #2: one problem type for "finished without a report" ---------------------------------------


def test_a_cancelled_or_failed_job_s_report_is_job_has_no_report(api):
    cancelled = _queued(api)
    assert api.delete(f"/v1/jobs/{cancelled}").status_code in (200, 202)
    failed = _queued(api)
    with api.app.state.sessions() as session:
        session.execute(update(JobRow).where(JobRow.id == failed).values(status="failed", stage="failed"))
        session.commit()
    for job, status in ((cancelled, "cancelled"), (failed, "failed")):
        problem = _problem(api.get(f"/v1/jobs/{job}/report"), 409)
        assert problem["type"].endswith("/job-has-no-report") and f"is {status}" in problem["detail"]
    # a job still queued keeps job-not-finished: it may yet have one
    problem = _problem(api.get(f"/v1/jobs/{_queued(api)}/report"), 409)
    assert problem["type"].endswith("/job-not-finished")


# --- #3: one 413 type for an upload over the limit, with its place ---------------------------------


@pytest.mark.parametrize(("size", "multipart"), [(LIMIT + 1000, True), (LIMIT * 4, True),
                                                 (LIMIT + 1000, False), (LIMIT * 4, False)])
@pytest.mark.parametrize("door", ["/v1/checks/logs", "/v1/checks/model"])
def test_an_upload_over_the_limit_has_one_type_and_names_its_place(api, door, size, multipart):
    data = b"x" * size
    if multipart:
        r = api.post(door, files={"file": ("big.csv", data)})
    else:
        r = api.post(f"{door}?filename=big.csv", content=data, headers={"content-type": "application/octet-stream"})
    problem = _problem(r, 413)
    assert problem["type"].endswith("/upload-too-large"), problem["type"]
    assert "GRADHEALTH_MAX_UPLOAD_BYTES" in problem["detail"]
    assert problem["errors"][0]["parameter"] == ("file" if multipart else "body")


# --- #4: the place the detail names is in errors[] ------------------------------------------------


def test_an_unknown_report_format_and_a_bad_accept_name_their_parameter(api):
    job = _queued(api)
    problem = _problem(api.get(f"/v1/jobs/{job}/report?format=pdf"), 406)
    assert problem["errors"][0]["parameter"] == "query.format"
    problem = _problem(api.get(f"/v1/jobs/{job}/report", headers={"Accept": "application/x-nothing"}), 406)
    assert problem["errors"][0]["parameter"] == "header.Accept"
    problem = _problem(api.get("/v1/jobs", headers={"Accept": "application/json;q=nan"}), 400)
    assert problem["errors"][0]["parameter"] == "header.Accept"
    assert not problem["errors"][0]["detail"].startswith("header.Accept")  # (the item names it once)


def test_a_spec_nested_too_deep_has_its_pointer(api):
    levels = 5000
    body = "[" * levels + "]" * levels
    spec = '{"input": {"shape": [4]}, "layers": ' + body + "}"
    problem = _problem(api.post("/v1/checks/architecture", content=spec, headers={"content-type": "application/json"}),
                       400)
    # the first container past MAX_DEPTH: /layers is level 2, each [ one more
    expected = "/layers" + "/0" * (MAX_DEPTH - 1)
    assert problem["errors"][0]["pointer"] == expected, problem["errors"]


def test_a_spec_over_the_value_budget_has_its_pointer(api):
    layers = [{"type": "linear", "out_features": 4}] * (MAX_NODES // 4)
    spec = json.dumps({"input": {"shape": [4]}, "layers": layers})
    problem = _problem(api.post("/v1/checks/architecture", content=spec, headers={"content-type": "application/json"}),
                       400)
    pointer = problem["errors"][0]["pointer"]
    assert pointer is not None and pointer.startswith("/layers/"), problem["errors"]
    # about 4 values a layer (its object, its key-value pairs): the budget ends near layer MAX_NODES / 5
    index = int(pointer.split("/")[2])
    assert MAX_NODES // 6 < index < MAX_NODES // 4, index
    assert str(MAX_NODES) in problem["detail"]


# --- #5: the header timeout's 408 is a problem document --------------------------------------------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent, self.closed = b"", False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5000) if name == "peername" else default


class _Base(asyncio.Protocol):
    """uvicorn's protocol, as far as the guard uses it."""

    cycle = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.loop = transport, asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        pass


def test_the_header_timeout_408_is_a_problem_document():
    protocol_class = guarded_protocol(Settings(header_timeout_s=0.05), base=_Base)

    async def half_head() -> _Transport:
        transport = _Transport()
        protocol = protocol_class()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.3)
        return transport

    transport = asyncio.run(half_head())
    head, _, body = transport.sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and transport.closed
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 408 and "GRADHEALTH_HEADER_TIMEOUT_S" in problem["detail"]
    assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) == len(body)


# --- #6: an upload the client did not name has no job name ---------------------------------------


def test_a_raw_upload_without_a_filename_has_a_null_name(api):
    unnamed = api.post("/v1/checks/logs", content=CSV, headers={"content-type": "text/csv"})
    assert unnamed.status_code == 202, unnamed.text
    assert unnamed.json()["name"] is None
    named = api.post("/v1/checks/logs?filename=run.csv", content=CSV, headers={"content-type": "text/csv"})
    assert named.json()["name"] == "run.csv"
    part = api.post("/v1/checks/logs", files={"file": ("train.csv", CSV)})
    assert part.json()["name"] == "train.csv"
    listed = {j["id"]: j["name"] for j in api.get("/v1/jobs?limit=100").json()["items"]}
    assert listed[unnamed.json()["id"]] is None


# --- #7: a trailing slash is an error document, not a redirect -----------------------------------


@pytest.mark.parametrize("method", ["DELETE", "GET", "POST"])
def test_an_empty_job_id_is_a_404_problem_not_a_redirect(api, method):
    problem = _problem(api.request(method, "/v1/jobs/"), 404)
    assert "/v1/jobs/" in problem["detail"] and "trailing slash" in problem["detail"]
