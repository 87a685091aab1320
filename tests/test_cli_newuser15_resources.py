"""newuser15 #7: ``gradhealth check run.json`` on a saved ``GET /v1/runs/{id}`` was read by the native
log reader as a one-point log (its ``points``, ``last_step`` and ``grad_norm`` counters) and passed
HEALTHY, exit 0, for a run the service called unhealthy; a saved ``GET /v1/jobs/{id}`` was "not a log
format". Both are recognised as the service's resources: their diagnosis is rendered, or the refusal
says why they have none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.cli import main
from gradhealth.library import check_logs


def _unhealthy_doc(tmp_path: Path) -> dict:
    log = tmp_path / "train.csv"
    # a loss that falls, then climbs 10x and stays: loss_divergence, an error
    values = [2.0 - 0.1 * i for i in range(15)] + [0.5 * 1.4 ** i for i in range(15)]
    log.write_text("step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    doc = json.loads(check_logs(log).model_dump_json())
    assert doc["status"] == "unhealthy"
    return doc


def test_saved_run_resource_renders_its_diagnosis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = {"id": "7f1c", "name": "demo", "status": "active", "stale": False, "points": 30, "last_step": 29,
           "grad_norm": 1.2, "health": "unhealthy", "finding_codes": ["loss_divergence"], "links": {},
           "diagnosis": _unhealthy_doc(tmp_path)}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "UNHEALTHY" in out and "loss_divergence" in out


def test_saved_job_resource_renders_its_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = {"id": "9a2b", "kind": "logs", "name": "train.csv", "status": "succeeded", "result_status": "unhealthy",
           "links": {}, "result": _unhealthy_doc(tmp_path), "error": None}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert main(["check", str(path)]) == 1
    assert "loss_divergence" in capsys.readouterr().out


def test_failed_job_resource_says_it_has_no_diagnosis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = {"id": "9a2c", "kind": "logs", "name": None, "status": "failed", "result": None,
           "error": {"title": "Log could not be read", "detail": "line 4: not a number"}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "job 9a2c failed: line 4: not a number" in err and "no diagnosis" in err
