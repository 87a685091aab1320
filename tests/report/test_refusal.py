"""An input the check refuses (exit 2) or cannot run on (exit 3) still leaves the SARIF and JUnit
reports a CI step uploads, with the refusal at the input's lines (newuser3: the upload step found
no file, and the reason showed only in the job log)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from gradhealth.cli import main

from .test_sarif import validate

BAD = """name: two-mistakes
input:
  shape: [8, 4]
layers:
  - type: dense
    units: 3
  - type: linear
    out_features: 0
"""


def _line_of(text: str, needle: str) -> int:
    """An independent placement: the 1-based line where ``needle`` starts."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path / "bad.yaml"


def test_a_refused_spec_is_a_valid_sarif_log_with_each_problem_at_its_line(
        bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "bad.yaml", "--format", "sarif"]) == 2
    log = json.loads(capsys.readouterr().out)
    validate(log)
    (run,) = log["runs"]
    assert run["invocations"] == [{"executionSuccessful": True}]
    assert [r["ruleId"] for r in run["results"]] == ["invalid_input", "invalid_input"]
    lines = [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in run["results"]]
    assert lines == [_line_of(BAD, "type: dense"), _line_of(BAD, "out_features: 0")]
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "bad.yaml" for r in run["results"])
    assert "/layers/0" in run["results"][0]["message"]["text"]
    # the category a diagnosis of this spec would have: the alert closes once the fixed spec is uploaded
    assert run["automationDetails"]["id"] == "gradhealth/spec/bad.yaml/"


def test_a_refused_spec_writes_the_junit_report_asked_for_with_a_failure(bad: Path) -> None:
    assert main(["check", "bad.yaml", "--output", "junit=reports/gh.xml"]) == 2
    root = ET.parse(bad.parent / "reports" / "gh.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "1", "0")
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "invalid_input"
    assert f"bad.yaml:{_line_of(BAD, 'type: dense')}: /layers/0" in (failure.text or "")


def test_a_refused_log_is_reported_on_the_line_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.jsonl").write_text('{"step": 1, "loss": 0.5, "loss": 0.1}\n')
    assert main(["check", "run.jsonl", "--format", "sarif"]) == 2
    log = json.loads(capsys.readouterr().out)
    validate(log)
    (result,) = log["runs"][0]["results"]
    # its line, as the message names it (it sat on the file with no region before newuser16 #6)
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert "line 1" in result["message"]["text"] and "appears twice" in result["message"]["text"]
    assert log["runs"][0]["automationDetails"]["id"] == "gradhealth/logs/run.jsonl/"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_check_that_cannot_run_is_an_unsuccessful_invocation_and_a_junit_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.yaml").write_text("name: ok\ninput:\n  shape: [8, 4]\nlayers:\n  - type: linear\n"
                                      "    out_features: 2\n")
    assert main(["check", "ok.yaml", "--device", "cuda", "--format", "sarif", "--output", "junit=j.xml"]) == 3
    log = json.loads(capsys.readouterr().out)
    validate(log)
    (run,) = log["runs"]
    assert run["results"] == []   # nothing is wrong with the file
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert "CUDA" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert (root.get("failures"), root.get("errors")) == ("0", "1")

