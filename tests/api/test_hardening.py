"""Issue 13, section 1: the non-spec findings of the attack run, each reproduced first."""

from __future__ import annotations

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
