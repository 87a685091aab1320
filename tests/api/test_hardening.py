"""Issue 13, section 1: the non-spec findings of the attack run, each reproduced first."""

from __future__ import annotations

import base64
import json
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
