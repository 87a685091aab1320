"""errsweep5 G13: ``check --baseline`` edge cases.

A baseline saved with a UTF-8 BOM (Windows PowerShell 5's ``Out-File``) is read; a job resource
from ``GET /v1/jobs/{id}`` that failed (or has not finished) is refused with the job's own error,
not with schema errors; a baseline of another kind than the check (an architecture diagnosis for a
log check) is refused with exit 2: its findings are keyed differently, so comparing would call
every finding new.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.cli import main

pytestmark = pytest.mark.usefixtures("off_runner")


def _log_doc(run_csv: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["check", str(run_csv), "--format", "json"]) == 1
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "logs"
    return doc


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_baseline_with_a_utf8_bom_is_read(tmp_path, run_csv, capsys):
    base = tmp_path / "base.json"
    base.write_bytes(b"\xef\xbb\xbf" + json.dumps(_log_doc(run_csv, capsys)).encode())
    # the same run as its baseline: nothing new, so --fail-on new passes
    assert main(["check", str(run_csv), "--baseline", str(base), "--fail-on", "new", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "BOM" not in out.err
    assert json.loads(out.out)["baseline"] is not None


def test_a_baseline_that_is_not_utf8_names_the_byte(tmp_path, run_csv, capsys):
    base = tmp_path / "base.json"
    base.write_bytes(b'{"kind": "logs", "name": "\xe9"}')
    assert main(["check", str(run_csv), "--baseline", str(base)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"--baseline {base}: not UTF-8 text (byte offset 26)" in err


def test_a_failed_job_as_baseline_says_the_job_failed(tmp_path, run_csv, capsys):
    base = tmp_path / "failed_job.json"
    base.write_text(json.dumps({"id": "x1", "kind": "model", "status": "failed", "result": None,
                                "error": {"type": "about:blank", "title": "Internal", "status": 500,
                                          "detail": "IndexError"}}))
    assert main(["check", str(run_csv), "--baseline", str(base)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"--baseline {base}: this job x1 failed: IndexError; it has no diagnosis" in err
    assert "/status" not in err and "error(s)" not in err


@pytest.mark.parametrize(("status", "said"), [("running", "is running"), ("queued", "is queued"),
                                              ("cancelled", "was cancelled")])
def test_an_unfinished_job_as_baseline_says_so(tmp_path, run_csv, capsys, status, said):
    base = tmp_path / "job.json"
    base.write_text(json.dumps({"id": "j", "kind": "logs", "status": status, "result": None}))
    assert main(["check", str(run_csv), "--baseline", str(base)]) == 2
    assert f"this job j {said} and has no diagnosis" in _one_line(capsys.readouterr().err)


def test_a_succeeded_job_as_baseline_is_its_result(tmp_path, run_csv, capsys):
    base = tmp_path / "job.json"
    base.write_text(json.dumps({"id": "j", "kind": "logs", "status": "succeeded", "error": None,
                                "result": _log_doc(run_csv, capsys)}))
    assert main(["check", str(run_csv), "--baseline", str(base), "--fail-on", "new"]) == 0


def test_an_architecture_baseline_for_a_log_check_is_refused(tmp_path, run_csv, capsys):
    base = tmp_path / "spec_base.json"
    base.write_text(json.dumps({"schema_version": "1", "kind": "architecture", "name": "net",
                                "status": "healthy", "summary": "s", "findings": []}))
    assert main(["check", str(run_csv), "--baseline", str(base), "--fail-on", "new"]) == 2
    out = capsys.readouterr()
    err = _one_line(out.err)
    assert f"--baseline {base}: the baseline is the document of an architecture (spec or model) check" in err
    assert "this is a log check (kind 'logs')" in err
    assert out.out == ""   # no report compared across kinds
