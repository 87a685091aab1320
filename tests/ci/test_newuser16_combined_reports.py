"""newuser16 #2: several inputs in one CI step share one report per format, in a file or on stdout.

``gradhealth check A B --format junit`` (or ``-o``) was refused with exit 2: only text, github and
markdown could share standard output, so the README's one-run command worked for one model alone."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from gradhealth.cli import main
from gradhealth.core.document import Diagnosis
from gradhealth.report import ReportContext, render

from .helpers import exploding_csv, healthy_csv


@pytest.fixture
def runs(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "bad.csv").write_text(exploding_csv())
    (folder / "ok.csv").write_text(healthy_csv())
    (folder / "broken.csv").write_text("step,loss\n0,1.0\n1,abc\n2,0.5\n")  # refused: exit 2
    monkeypatch.chdir(folder)
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _alone(runs, name: str, fmt: str) -> str:
    """The report one input alone writes (the reference each combined part must equal)."""
    out = runs / f"alone-{name}.{fmt}"
    main(["check", name, "--format", fmt, "-o", str(out)])
    return out.read_text()


def test_sarif_junit_and_json_files_hold_every_input_and_the_exit_is_the_worst(runs, capsys):
    out = runs / "out"
    code = main(["check", "ok.csv", "bad.csv", "--format", "github", "--output", f"sarif={out}/r.sarif",
                 "--output", f"junit={out}/r.xml", "--output", f"json={out}/d.json"])
    assert code == 1  # ok.csv exits 0, bad.csv 1
    assert "file=runs/bad.csv" in capsys.readouterr().out  # the main report still on stdout
    # SARIF: one run per input, each the run the input alone gives
    runs_ = json.loads((out / "r.sarif").read_text())["runs"]
    assert [r["artifacts"][0]["location"]["uri"] for r in runs_] == ["runs/ok.csv", "runs/bad.csv"]
    assert runs_ == [json.loads(_alone(runs, n, "sarif"))["runs"][0] for n in ("ok.csv", "bad.csv")]
    # JUnit: one suite per input, the totals their sums
    root = ET.fromstring((out / "r.xml").read_text())
    suites = root.findall("testsuite")
    assert len(suites) == 2
    for key in ("tests", "failures", "skipped"):
        assert int(root.get(key)) == sum(int(s.get(key)) for s in suites)
    assert int(suites[1].get("failures")) >= 1 and int(suites[0].get("failures")) == 0
    # JSON: keyed by input as given, each the document the input alone writes
    combined = json.loads((out / "d.json").read_text())
    assert list(combined) == ["ok.csv", "bad.csv"]
    assert [combined[n]["exit_code"] for n in combined] == [0, 1]
    for name in combined:
        doc = Diagnosis.model_validate(combined[name]["diagnosis"])
        assert doc.findings == Diagnosis.model_validate_json(_alone(runs, name, "json")).findings


def test_a_refused_input_is_in_the_combined_reports_and_sets_the_exit(runs, capsys):
    assert main(["check", "bad.csv", "broken.csv", "--format", "json"]) == 2
    combined = json.loads(capsys.readouterr().out)
    assert combined["bad.csv"]["exit_code"] == 1 and "diagnosis" in combined["bad.csv"]
    assert combined["broken.csv"]["exit_code"] == 2 and combined["broken.csv"]["problem"]["status"] in (400, 422)
    assert main(["check", "bad.csv", "broken.csv", "--format", "sarif", "-o", "all.sarif"]) == 2
    rules = [r["ruleId"] for run in json.loads((runs / "runs" / "all.sarif").read_text())["runs"]
             for r in run["results"]]
    assert "invalid_input" in rules and "exploding_gradient" in rules


def test_codeclimate_and_text_join_and_html_stays_one_input(runs, capsys):
    assert main(["check", "ok.csv", "bad.csv", "--format", "codeclimate"]) == 1
    issues = json.loads(capsys.readouterr().out)
    assert issues == json.loads(_alone(runs, "ok.csv", "codeclimate")) + json.loads(_alone(runs, "bad.csv", "codeclimate"))
    assert main(["check", "ok.csv", "bad.csv", "-o", "both.txt"]) == 1
    text = (runs / "runs" / "both.txt").read_text()
    doc = Diagnosis.model_validate_json(_alone(runs, "bad.csv", "json"))
    assert render("text", doc, ReportContext(source="runs/bad.csv")).splitlines()[0] in text
    assert main(["check", "ok.csv", "bad.csv", "--format", "html"]) == 2
