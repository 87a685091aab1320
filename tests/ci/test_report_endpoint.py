"""GET /v1/jobs/{id}/report through the ASGI app: the format by ?format= or Accept, 404/406/409
problems, the OpenAPI media types, and the same bytes as rendering the job's document here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradhealth.core.document import Diagnosis
from gradhealth.jobs import store
from gradhealth.library import check_architecture, check_logs
from gradhealth.report import FORMATS, ReportContext, render
from tests.api.helpers import VANISHING, Api, running_app, settings_for

from .helpers import exploding_csv


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # No worker: the test plays it, so the job's state is what each test says.
    with running_app(settings_for(tmp_path_factory.mktemp("reports"), workers=0)) as client:
        yield client


def submit_log(api: Api) -> dict:
    job = api.post("/v1/checks/logs", params={"filename": "bad.csv"},
                   files={"file": ("bad.csv", exploding_csv().encode())})
    assert job.status_code == 202, job.text
    return job.json()


def finish_as_worker(api: Api, job_id: str, run=None) -> Diagnosis:  # noqa: ANN001
    """What a worker does: claim the job, run its check, store the result."""
    with api.app.state.sessions() as session:
        row = store.claim(session, worker_id="test", lease_s=60)
        assert row is not None and row.id == job_id
        doc = run(row.request) if run else check_logs(row.request["path"])
        assert store.finish(session, job_id=job_id, worker_id="test", status="succeeded",
                            result=doc.model_dump(mode="json"))
        return doc


def upload_path(api: Api, job_id: str) -> Path:
    with api.app.state.sessions() as session:
        return Path(store.get(session, job_id, None).request["path"])


def test_unknown_job_unfinished_job_and_unknown_format(api):
    assert api.get("/v1/jobs/nope/report").status_code == 404
    job = submit_log(api)
    queued = api.get(f"/v1/jobs/{job['id']}/report", params={"format": "sarif"})
    assert queued.status_code == 409
    assert queued.headers["content-type"].startswith("application/problem+json")
    assert "queued" in queued.json()["detail"]
    finish_as_worker(api, job["id"])
    assert api.get(f"/v1/jobs/{job['id']}/report", params={"format": "pdf"}).status_code == 406
    assert api.get(f"/v1/jobs/{job['id']}/report", headers={"Accept": "image/png"}).status_code == 406


@pytest.mark.parametrize("accept, name", [
    ("application/sarif+json", "sarif"),
    ("application/junit+xml", "junit"),
    ("application/xml", "junit"),
    ("text/markdown", "markdown"),
    ("text/html", "html"),
    ("application/json", "json"),
    ("text/plain", "text"),
    ("*/*", "json"),
    ("", "json"),
    ("image/png, text/markdown;q=0.5, application/sarif+json;q=0.9", "sarif"),
])
def test_accept_picks_the_format_and_the_bytes_are_a_local_rendering(api, accept, name):
    job = submit_log(api)
    finish_as_worker(api, job["id"])
    got = api.get(f"/v1/jobs/{job['id']}/report", params={"source": "runs/bad.csv"},
                  headers={"Accept": accept} if accept else {})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].split(";")[0] == FORMATS[name].media_type.split(";")[0]
    stored = Diagnosis.model_validate(api.get(f"/v1/jobs/{job['id']}").json()["result"])
    ctx = ReportContext(source="runs/bad.csv", path=upload_path(api, job["id"]), kind="logs")
    assert got.text == render(name, stored, ctx)


def test_every_format_by_name_for_a_log_job_lines_from_the_upload(api):
    job = submit_log(api)
    finish_as_worker(api, job["id"])
    for name in FORMATS:
        got = api.get(f"/v1/jobs/{job['id']}/report", params={"format": name})
        assert got.status_code == 200, (name, got.text)
    sarif = api.get(f"/v1/jobs/{job['id']}/report", params={"format": "sarif"}).json()
    results = {r["ruleId"]: r for r in sarif["runs"][0]["results"]}
    loc = results["nonfinite"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "bad.csv"  # the upload's own name without ?source=
    line = loc["region"]["startLine"]
    assert exploding_csv().splitlines()[line - 1].split(",")[1] == "nan"


def test_an_architecture_job_is_located_in_its_spec_as_sent(api):
    # the JSON text as the caller wrote it (4-space indent), not the stored spec re-serialised (newuser16 #3)
    text = json.dumps(VANISHING, indent=4, ensure_ascii=False)
    job = api.post("/v1/checks/architecture", content=text.encode(),
                   headers={"Content-Type": "application/json"}).json()
    finish_as_worker(api, job["id"], lambda spec: check_architecture(spec, verify=False))
    got = api.get(f"/v1/jobs/{job['id']}/report", params={"format": "sarif", "source": "spec.json"})
    sarif = got.json()
    result = next(r for r in sarif["runs"][0]["results"] if r["ruleId"] == "vanishing_gradient")
    region = result["locations"][0]["physicalLocation"]["region"]
    # /layers/0 is the first object inside "layers": [ of the text sent.
    lines = text.splitlines()
    assert lines[region["startLine"] - 2].strip() == '"layers": ['
    assert lines[region["startLine"] - 1].strip() == "{"


@pytest.mark.parametrize("source", ["models/encoder.yaml", "models/encoder.yml"])
def test_an_architecture_job_named_as_a_yaml_file_gets_no_lines(api, source):
    # The lines are those of the JSON sent: in the caller's YAML they would point anywhere
    # (newuser6 10: lines 14-23 of a 7-line file), so the findings are placed on the file.
    job = api.post("/v1/checks/architecture", json=VANISHING).json()
    finish_as_worker(api, job["id"], lambda spec: check_architecture(spec, verify=False))
    sarif = api.get(f"/v1/jobs/{job['id']}/report", params={"format": "sarif", "source": source}).json()
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "vanishing_gradient" for r in results)
    for r in results:
        location = r["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == source
        assert "region" not in location
    github = api.get(f"/v1/jobs/{job['id']}/report", params={"format": "github", "source": source}).text
    assert f"file={source}" in github and "line=" not in github


def test_openapi_declares_the_report_media_types(api):
    op = api.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/report"]["get"]
    content = op["responses"]["200"]["content"]
    assert {"application/sarif+json", "application/junit+xml", "text/markdown", "text/html",
            "application/json", "text/plain"} <= set(content)
    assert {"404", "406", "409"} <= set(op["responses"])
