"""newuser14 #1: a log with no history (a W&B ``wandb-summary.json``: final values only) judged
nothing over a run, yet came out HEALTHY, exit 0 under ``--fail-on warning``, with 20 passed JUnit
cases. It is an ``insufficient_data`` warning; the checks that had nothing to judge are skipped
JUnit cases and SARIF's not-run notifications, never passed ones."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import gradhealth.report as report_pkg
from gradhealth.cli import main
from gradhealth.core.rules import rules
from gradhealth.library import check_logs

SCHEMA = json.loads((Path(report_pkg.__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())
#: the detectors that judge a summary's final values without a history (docs/logs.md)
JUDGE_FINALS = {"nonfinite", "exploding_gradient"}


def _summary(tmp_path: Path) -> Path:
    path = tmp_path / "wandb-summary.json"
    path.write_text(json.dumps({"train/loss": 0.41, "train/grad_norm": 1.3, "eval/accuracy": 0.8, "_step": 900}))
    return path


def test_a_summary_is_a_warning_listing_the_checks_that_did_not_run(tmp_path: Path) -> None:
    doc = check_logs(_summary(tmp_path))
    [f] = doc.findings
    assert (f.code, f.severity, doc.status) == ("insufficient_data", "warning", "warning")
    log_codes = {r.code for r in rules() if r.detector is not None}
    assert set(f.evidence.model_extra["not_run"]) == log_codes - JUDGE_FINALS - {"insufficient_data", "truncated_log"}


def test_no_history_fails_fail_on_warning_and_passes_no_unrun_case(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _summary(tmp_path)
    assert main(["check", "wandb-summary.json", "--fail-on", "warning", "--output", "junit=r.xml",
                 "--output", "sarif=r.sarif"]) == 1
    assert main(["check", "wandb-summary.json"]) == 0  # a warning: under the default --fail-on error
    capsys.readouterr()
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    skipped = {name for name, c in cases.items() if c.find("skipped") is not None}
    failed = {name for name, c in cases.items() if c.find("failure") is not None}
    passed = set(cases) - skipped - failed
    assert failed == {"insufficient_data"}
    assert passed == JUDGE_FINALS | {"truncated_log"}  # only what judged the final values or the file
    assert int(suite.get("skipped") or 0) == len(skipped) == len(cases) - 4
    sarif = json.loads((tmp_path / "r.sarif").read_text())
    jsonschema.Draft4Validator(SCHEMA).validate(sarif)
    run = sarif["runs"][0]
    rules_ = [r["id"] for r in run["tool"]["driver"]["rules"]]
    noted = {n["associatedRule"]["id"] for n in run["invocations"][0]["toolExecutionNotifications"]}
    assert noted == skipped and set(run["properties"]["notRun"]) == skipped
    for n in run["invocations"][0]["toolExecutionNotifications"]:
        assert rules_[n["associatedRule"]["index"]] == n["associatedRule"]["id"]
    assert [r["level"] for r in run["results"]] == ["warning"]


def test_a_log_with_history_skips_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.csv").write_text("step,loss\n" + "".join(f"{i},{2.0 / (1 + i)}\n" for i in range(40)))
    assert main(["check", "metrics.csv", "--fail-on", "warning", "--output", "junit=r.xml",
                 "--output", "sarif=r.sarif"]) == 0
    capsys.readouterr()
    assert ET.parse(tmp_path / "r.xml").getroot().find("testsuite").get("skipped") == "0"  # type: ignore[union-attr]
    assert "invocations" not in json.loads((tmp_path / "r.sarif").read_text())["runs"][0]
