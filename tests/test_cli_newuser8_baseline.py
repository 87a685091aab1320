"""newuser8 #7 and #8: ``check --baseline``.

#7: a live run saved from ``GET /v1/runs/{id}`` is a baseline (its ``diagnosis``), as a job from
``GET /v1/jobs/{id}`` is (its ``result``); a file that is neither says what a baseline may be.

#8: under ``--fail-on new`` a finding unchanged from the baseline passes (exit 0, a passed JUnit
case), so no report annotates it as an error: GitHub's ``::warning`` / SARIF's ``warning`` (with
``baselineState: unchanged``) / Markdown's mark say "unchanged from the baseline".
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradhealth.cli import main

pytestmark = pytest.mark.usefixtures("off_runner")


@pytest.fixture
def diagnosis(run_csv: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["check", str(run_csv), "--format", "json"]) == 1
    doc: dict = json.loads(capsys.readouterr().out)
    assert any(f["severity"] == "error" for f in doc["findings"])
    return doc


def _run_resource(diagnosis: dict | None, status: str = "finished") -> dict:
    """A run as GET /v1/runs/{id} answers it (gradhealth.api.routers.runs.RunRead)."""
    return {"id": "33086114a63f4dc28d62a5401171a692", "name": "highlr", "status": status, "stale": False,
            "created_at": "2026-12-06T15:33:26Z", "updated_at": "2026-12-06T15:33:45Z",
            "finished_at": "2026-12-06T15:33:45Z", "points": 2700, "last_step": 299, "grad_norm": 7.38,
            "health": diagnosis and diagnosis["status"], "finding_codes": [], "version": 21,
            "links": {"self": "/v1/runs/33086114a63f4dc28d62a5401171a692"}, "config": {},
            "diagnosis": diagnosis}


@pytest.mark.parametrize("status", ["finished", "active"])
def test_a_run_resource_is_a_baseline(tmp_path, run_csv, diagnosis, capsys, status):
    base = tmp_path / "run.json"
    base.write_text(json.dumps(_run_resource(diagnosis, status)))
    assert main(["check", str(run_csv), "--baseline", str(base), "--fail-on", "new", "--format", "json"]) == 0
    b = json.loads(capsys.readouterr().out)["baseline"]
    assert b["new"] == 0 and b["unchanged"] == len(diagnosis["findings"]) and b["regressions"] == 0


def test_a_run_without_a_diagnosis_yet_is_refused_by_name(tmp_path, run_csv, capsys):
    base = tmp_path / "run.json"
    base.write_text(json.dumps(_run_resource(None, "active")))
    assert main(["check", str(run_csv), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "run 33086114a63f4dc28d62a5401171a692 (active) has no /diagnosis yet" in err


def test_a_document_that_is_no_baseline_says_what_is_accepted(tmp_path, run_csv, capsys):
    base = tmp_path / "other.json"
    base.write_text(json.dumps({"name": "x", "status": "done"}))
    assert main(["check", str(run_csv), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert "not a diagnosis document" in err
    assert "GET /v1/jobs/{id}" in err and "GET /v1/runs/{id}" in err


def _reports(tmp_path: Path, run_csv: Path, baseline: Path, fail_on: str,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    outs = {fmt: tmp_path / f"out.{fmt}" for fmt in ("sarif", "markdown", "junit")}
    argv = ["check", str(run_csv), "--baseline", str(baseline), "--fail-on", fail_on, "--format", "github"]
    for fmt, path in outs.items():
        argv += ["--output", f"{fmt}={path}"]
    rc = main(argv)
    texts = {fmt: path.read_text() for fmt, path in outs.items()}
    texts["github"] = capsys.readouterr().out
    return rc, texts


def test_an_unchanged_error_under_fail_on_new_is_annotated_as_unchanged_not_as_an_error(
        tmp_path, run_csv, diagnosis, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(diagnosis))
    rc, out = _reports(tmp_path, run_csv, base, "new", capsys)
    assert rc == 0
    commands = [line for line in out["github"].splitlines() if line.startswith("::")]
    assert commands and not any(line.startswith("::error") for line in commands), commands
    errors = [f for f in diagnosis["findings"] if f["severity"] == "error"]
    warned = [line for line in commands if line.startswith("::warning")]
    assert len(warned) >= len(errors)
    assert all("unchanged from the baseline; it passes --fail-on new" in line for line in warned)
    results = json.loads(out["sarif"])["runs"][0]["results"]
    assert len(results) == len(diagnosis["findings"])
    assert all(r["level"] != "error" and r["baselineState"] == "unchanged" for r in results)
    assert all(r["message"]["text"].startswith("(unchanged from the baseline") for r in results)
    table = [row for row in out["markdown"].splitlines() if row.startswith("| ") and "`" in row]
    assert table and all("unchanged from the baseline" in row and "❌" not in row for row in table)
    suite = ET.fromstring(out["junit"])
    assert suite.get("failures") == "0"


def test_the_same_error_fails_and_stays_an_error_under_fail_on_error(tmp_path, run_csv, diagnosis, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(diagnosis))
    rc, out = _reports(tmp_path, run_csv, base, "error", capsys)
    assert rc == 1  # the exit code fails on it, so it is annotated as the error it is
    assert any(line.startswith("::error") and "(unchanged from the baseline)" in line
               for line in out["github"].splitlines())
    results = json.loads(out["sarif"])["runs"][0]["results"]
    assert any(r["level"] == "error" and r["baselineState"] == "unchanged" for r in results)


def test_a_new_error_stays_an_error_under_fail_on_new(tmp_path, run_csv, diagnosis, capsys):
    empty = dict(diagnosis, findings=[], status="healthy")
    base = tmp_path / "base.json"
    base.write_text(json.dumps(empty))
    rc, out = _reports(tmp_path, run_csv, base, "new", capsys)
    assert rc == 1
    assert any(line.startswith("::error") and "(new since the baseline)" in line
               for line in out["github"].splitlines())
    results = json.loads(out["sarif"])["runs"][0]["results"]
    assert any(r["level"] == "error" and r["baselineState"] == "new" for r in results)
