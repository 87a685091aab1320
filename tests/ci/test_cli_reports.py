"""The check command's report options: the format list is the registry's, several formats from
one run, the step summary's conditions, repository-relative names, several inputs."""

from __future__ import annotations

import json
import subprocess

import pytest

from gradhealth.cli import main
from gradhealth.cli_report import FORMAT_NAMES, parse_output, repo_relative
from gradhealth.report import FORMATS

from .helpers import ci_env, exploding_csv, healthy_csv


def test_the_cli_offers_every_registered_format():
    assert tuple(FORMATS) == FORMAT_NAMES


def test_output_values():
    assert parse_output("sarif=out/r.sarif") == ("sarif", "out/r.sarif")
    assert parse_output("report.txt") == (None, "report.txt")
    assert parse_output("weird=name.txt") == (None, "weird=name.txt")  # not a format: a file


def test_repo_relative(tmp_path):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "models").mkdir()
    assert repo_relative(tmp_path / "repo" / "models" / "a.yaml") == "models/a.yaml"
    assert repo_relative(tmp_path / "repo" / "models" / "a.yaml", cwd=tmp_path / "repo" / "models") \
        == "models/a.yaml"


@pytest.fixture
def logs(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "bad.csv").write_text(exploding_csv())
    (tmp_path / "runs" / "ok.csv").write_text(healthy_csv())
    monkeypatch.chdir(tmp_path / "runs")  # names are relative to the repository, not the cwd
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_every_format_from_one_run_equals_rendering_the_json(logs, capsys):
    argv = ["check", "bad.csv", "--format", "text", "-o", str(logs / "main.txt")]
    argv += [x for name in FORMATS for x in ("--output", f"{name}={logs / ('out.' + name)}")]
    assert main(argv) == 1
    assert capsys.readouterr().out == ""
    from gradhealth.core.document import Diagnosis
    from gradhealth.report import ReportContext, render

    doc = Diagnosis.model_validate_json((logs / "out.json").read_text())
    ctx = ReportContext(source="runs/bad.csv", path=logs / "runs" / "bad.csv", kind="logs")
    for name in FORMATS:
        assert (logs / f"out.{name}").read_text() == render(name, doc, ctx) + "\n", name
    assert (logs / "main.txt").read_text() == (logs / "out.text").read_text()
    sarif = json.loads((logs / "out.sarif").read_text())
    assert sarif["runs"][0]["artifacts"][0]["location"]["uri"] == "runs/bad.csv"


def test_bad_output_combinations_are_usage_errors(logs, capsys):
    assert main(["check", "bad.csv", "-o", "a.txt", "-o", "b.txt"]) == 2
    assert main(["check", "bad.csv", "-o", "json=a", "-o", "sarif=a"]) == 2
    # an HTML page is one input's (SARIF, JUnit, JSON and the rest combine: test_newuser16_combined_reports)
    assert main(["check", "bad.csv", "ok.csv", "--format", "html"]) == 2
    assert main(["check", "bad.csv", "ok.csv", "-o", "html=x.html"]) == 2
    assert "several inputs" in capsys.readouterr().err


def test_several_inputs_share_stdout_and_the_worst_exit(logs, capsys):
    assert main(["check", "ok.csv", "bad.csv", "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert "file=runs/bad.csv" in out and "file=runs/ok.csv" not in out
    assert main(["check", "ok.csv", "ok.csv"]) == 0


@pytest.mark.parametrize("env, argv, written", [
    ({}, ["--format", "github"], False),  # no summary file: nothing to write
    ({"GITHUB_STEP_SUMMARY": "S"}, ["--format", "github"], True),
    ({"GITHUB_STEP_SUMMARY": "S"}, ["--format", "text"], False),
    ({"GITHUB_STEP_SUMMARY": "S", "GITHUB_ACTIONS": "true"}, ["--format", "text"], True),
    ({"GITHUB_STEP_SUMMARY": "S", "GITHUB_ACTIONS": "true"}, ["--no-step-summary"], False),
    ({"GITHUB_STEP_SUMMARY": "S"}, ["--step-summary"], True),
])
def test_step_summary_conditions(logs, monkeypatch, env, argv, written):
    summary = logs / "summary.md"
    summary.write_text("earlier step\n")
    for k, v in env.items():
        monkeypatch.setenv(k, str(summary) if v == "S" else v)
    main(["check", "bad.csv", *argv])
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never replaced
    assert ("Gradient Health:" in text) is written


def test_the_log_check_with_reports_stays_torch_free(logs):
    code = ("import sys; from gradhealth.cli import main; "
            "rc = main(['check', 'bad.csv', '--format', 'sarif', '--output', 'junit=j.xml', "
            "'--output', 'markdown=m.md', '--output', 'codeclimate=c.json']); "
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run(["python", "-c", code], cwd=logs / "runs", env=ci_env(), capture_output=True,
                          text=True)
    assert done.stdout.split()[-2:] == ["1", "False"], done.stderr


def test_sarif_names_an_input_outside_the_repository_by_its_absolute_uri(tmp_path, monkeypatch):
    # newuser13 #6: outside a git repository, `../specs/a.csv` under %SRCROOT% resolves to nothing
    (tmp_path / "specs").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "specs" / "a.csv").write_text(exploding_csv())
    monkeypatch.chdir(tmp_path / "work")
    assert main(["check", "../specs/a.csv", "--format", "sarif", "-o", "r.sarif"]) == 1
    run = json.loads((tmp_path / "work" / "r.sarif").read_text())["runs"][0]
    want = {"uri": (tmp_path / "specs" / "a.csv").resolve().as_uri()}
    assert run["artifacts"] == [{"location": want}]
    assert run["results"] and all(r["locations"][0]["physicalLocation"]["artifactLocation"] == want
                                  for r in run["results"])
    # inside the working directory: relative to %SRCROOT% as before
    (tmp_path / "work" / "b.csv").write_text(exploding_csv())
    assert main(["check", "b.csv", "--format", "sarif", "-o", "s.sarif"]) == 1
    run = json.loads((tmp_path / "work" / "s.sarif").read_text())["runs"][0]
    assert run["artifacts"] == [{"location": {"uri": "b.csv", "uriBaseId": "%SRCROOT%"}}]
