"""Issue 13, section 1: the non-spec findings of the attack run, each reproduced first."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from gradhealth.jobs import store
from gradhealth.settings import Settings, hash_key

# --- authentication cannot be switched off by a malformed key list -------------------------------

@pytest.mark.parametrize("value", [",", " ", " , ", ",,,"])
def test_a_key_list_that_holds_no_key_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GRADHEALTH_API_KEYS", value)
    with pytest.raises(ValidationError, match="holds no key"):
        Settings(host="0.0.0.0")


def test_an_empty_key_list_is_keys_off_and_still_guarded_on_a_public_address() -> None:
    assert Settings(api_keys="").key_owners() == {}
    assert Settings(api_keys="", host="0.0.0.0").unsafe_reason() is not None
    good = f"ci={hash_key('secret')}"
    assert Settings(api_keys=f",{good},", host="0.0.0.0").unsafe_reason() is None
    assert Settings(api_keys=f",{good},").key_owners() == {hash_key("secret"): "ci"}


# --- a lone surrogate in a log's metric name ------------------------------------------------------

def _log_with(name: str, n: int = 60) -> bytes:
    rows = []
    for step in range(n):
        rows += [{"step": step, "metric": "loss", "value": 2.0 / (1 + step)},
                 {"step": step, "metric": name, "value": 1.0 + step}]
    # json.dumps writes the surrogate as the escape \ud800, as a real tool's JSON would
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_a_lone_surrogate_in_a_metric_name_is_readable_after_the_job(api) -> None:
    r = api.post("/v1/checks/logs?wait=60&filename=run.jsonl", content=_log_with("acc\ud800uracy"))
    assert r.status_code in (200, 202), r.text
    job = api.wait_done(r.json()["id"])
    assert job["status"] == "succeeded", job
    names = [s["name"] for s in job["result"]["series"]]
    assert "acc\ufffduracy" in names
    again = api.get(f"/v1/jobs/{job['id']}")
    assert again.status_code == 200 and again.json()["result"]["series"] == job["result"]["series"]
    assert api.get("/v1/jobs?limit=5").status_code == 200


# --- upload file names ------------------------------------------------------------------------------

def _entries(app) -> set[str]:  # noqa: ANN001
    folder = Path(app.state.settings.upload_dir)
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


@pytest.mark.parametrize("query", ["?filename=..", "?filename=a/..", "?filename=.", "?filename=",
                                   "?filename=a%5C..", "?filename=%2F"])
def test_a_query_file_name_that_names_no_file_is_422_and_leaves_nothing(idle_api, query: str) -> None:
    before = _entries(idle_api.app)
    r = idle_api.post(f"/v1/checks/logs{query}", content=_log_with("acc"))
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("invalid-filename")
    assert _entries(idle_api.app) == before


@pytest.mark.parametrize("name", ["..", "a/..", "../.."])
def test_a_multipart_file_name_that_names_no_file_is_422_and_leaves_nothing(idle_api, name: str) -> None:
    before = _entries(idle_api.app)
    r = idle_api.post("/v1/checks/logs", files={"file": (name, _log_with("acc"))})
    assert r.status_code == 422, r.text
    assert _entries(idle_api.app) == before


def test_a_path_in_the_file_name_is_reduced_to_its_last_part(idle_api) -> None:
    r = idle_api.post("/v1/checks/logs?filename=../../etc/run%20one.jsonl", content=_log_with("acc"))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    with idle_api.app.state.sessions() as session:
        stored = Path(store.get(session, job_id, None).request["path"])
    assert stored.name == "run_one.jsonl"
    assert stored.parent.parent == Path(idle_api.app.state.settings.upload_dir).resolve()


# --- ids and cursors that PostgreSQL would refuse with a DataError ---------------------------------

@pytest.mark.parametrize("job_id", ["%00", "abc%00def", "a" * 200, "..%2F..", "%F0%9F%92%A5"])
def test_an_impossible_job_id_is_404(idle_api, job_id: str) -> None:
    for method in ("GET", "DELETE"):
        r = idle_api.request(method, f"/v1/jobs/{job_id}")
        assert r.status_code == 404, (method, r.text)
    assert idle_api.get(f"/v1/jobs/{job_id}/events").status_code == 404


@pytest.mark.parametrize("raw", ["2024-01-01T00:00:00+00:00|ab\x00cd", "2024-01-01T00:00:00\x00|abcd",
                                 "2024-01-01T00:00:00|abcd", "|", "x"])
def test_a_cursor_with_a_nul_or_a_bad_part_is_422(idle_api, raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode()
    r = idle_api.get("/v1/jobs", params={"cursor": cursor})
    assert r.status_code == 422, r.text


# --- a log of very many series ---------------------------------------------------------------------

def _wide_csv(columns: int, rows: int = 5, name: str = "m{}") -> bytes:
    head = "step," + ",".join(name.format(i) for i in range(columns))
    body = [f"{r}," + ",".join(f"{1.5 + r}" for _ in range(columns)) for r in range(rows)]
    return ("\n".join([head, *body]) + "\n").encode()


def test_a_csv_over_the_series_limit_fails_its_job_with_413_not_a_huge_result(api) -> None:
    limit = api.app.state.settings.log_max_series
    r = api.post("/v1/checks/logs?wait=60&filename=wide.csv", content=_wide_csv(limit + 1, rows=2))
    job = api.wait_done(r.json()["id"])
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["status"] == 413 and "GRADHEALTH_LOG_MAX_SERIES" in job["error"]["detail"]


def test_the_series_limit_is_a_setting_and_refuses_a_wide_csv_from_its_header(tmp_path: Path) -> None:
    from gradhealth.errors import UploadTooLarge
    from gradhealth.library import check_logs

    settings = Settings(log_max_series=50)
    assert settings.read_limits().max_series == 50
    wide = tmp_path / "wide.csv"
    # 10^5 columns and a last row that is not a number: refused from the header, before any row
    wide.write_bytes(_wide_csv(100_000, rows=1) + b"x" * 10 + b"\n")
    with pytest.raises(UploadTooLarge, match="100,000 columns"):
        check_logs(wide, settings=settings)
    jsonl = tmp_path / "run.jsonl"
    jsonl.write_text("".join(json.dumps({"step": s, "metric": f"m{i}", "value": 1.0}) + "\n"
                             for s in range(3) for i in range(51)))
    with pytest.raises(UploadTooLarge, match="more than 50 series"):
        check_logs(jsonl, settings=settings)
    assert check_logs(jsonl, settings=Settings(log_max_series=51)).log.series == 51


def test_a_diagnosis_lists_at_most_a_bounded_number_of_series_the_detectors_first(tmp_path: Path) -> None:
    from gradhealth.library import check_logs
    from gradhealth.logs.check import MAX_SERIES_LISTED

    n = MAX_SERIES_LISTED + 300
    path = tmp_path / "many.csv"
    # the loss comes last, after n-1 plain metrics: it is listed all the same
    path.write_bytes(_wide_csv(n - 1, rows=4, name="acc{}").replace(b"\n", b",x\n", 1)
                     .replace(b"x\n", b"loss\n", 1))
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0]] + [row + f",{2.0 / (i + 1)}" for i, row in enumerate(text[1:])]) + "\n")
    doc = check_logs(path)
    names = [s.name for s in doc.series]
    assert doc.log.series == n and len(names) == MAX_SERIES_LISTED
    assert "loss" in names and names[-1] == "loss"
    assert names[:-1] == [f"acc{i}" for i in range(MAX_SERIES_LISTED - 1)]
    assert f"{n:,} series" in doc.log.warnings[0]
    assert len(doc.model_dump_json()) < 400_000


# --- results are never loaded for a list, and large ones are streamed as stored ---------------------

def test_a_job_list_never_selects_the_result_column(api) -> None:
    from sqlalchemy import event

    r = api.post("/v1/checks/logs?wait=60&filename=run.jsonl", content=_log_with("acc"))
    assert api.wait_done(r.json()["id"])["status"] == "succeeded"
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    engine = api.app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        page = api.get("/v1/jobs?limit=1")
        one = api.get(f"/v1/jobs/{r.json()['id']}")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert page.status_code == 200 and page.json()["items"][0]["id"] == r.json()["id"]
    assert one.json()["result"]["status"] in ("healthy", "warning", "error")
    listing = [s for s in statements if "FROM jobs" in s and "ORDER BY" in s]
    heavy = re.compile(r"jobs\.(result|request|error)\b")
    assert listing and not any(heavy.search(s) for s in listing), listing
    assert any("jobs.result" in s for s in statements if s not in listing)  # the read does load it


def test_a_large_result_is_streamed_as_stored_and_reads_the_same(api, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradhealth.api.routers import jobs

    r = api.post("/v1/checks/logs?wait=60&filename=wide.csv", content=_wide_csv(300, rows=4))
    job_id = r.json()["id"]
    parsed = api.wait_done(job_id)
    assert parsed["status"] == "succeeded" and len(parsed["result"]["series"]) == 300
    monkeypatch.setattr(jobs, "STREAM_RESULT_CHARS", 1000)
    streamed = api.get(f"/v1/jobs/{job_id}")
    assert streamed.status_code == 200 and streamed.headers["content-type"] == "application/json"
    assert "content-length" not in streamed.headers  # sent in chunks
    assert streamed.json() == parsed
