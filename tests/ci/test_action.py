"""The GitHub Action run as GitHub runs it: action.yml's own steps, in a git checkout, with the
GITHUB_* files; the SARIF files, the step summary, the annotations, the outputs and the exit code."""

from __future__ import annotations

import json
import re

import pytest

from .helpers import (
    ROOT,
    VANISHING_YAML,
    action,
    exploding_csv,
    git_checkout,
    healthy_csv,
    run_action,
    validate_sarif,
)

NO_INSTALL = {"install": "false"}


def sarif_files(repo, out="gradhealth-results"):
    return sorted((repo / out).glob("*.sarif"))


def test_the_action_declares_what_the_issue_asks_for():
    spec = action()
    assert spec["runs"]["using"] == "composite"
    assert {"path", "fail-on", "server", "api-key", "baseline", "python-version", "install"} <= set(
        spec["inputs"])
    assert spec["inputs"]["path"]["required"] is True
    steps = spec["runs"]["steps"]
    # Installing (Python, the package with the CPU torch pin) is skippable; the check is not.
    install = [s for s in steps if s.get("if") == "inputs.install == 'true'"]
    assert any("setup-python" in s.get("uses", "") for s in install)
    assert any("torch==" in s.get("run", "") and "download.pytorch.org/whl/cpu" in s["run"]
               for s in install)
    check = [s for s in steps if "if" not in s]
    assert len(check) == 1 and "gradhealth check" in check[0]["run"]
    # Inputs reach the script through env, never pasted into the shell text (injection).
    assert "${{" not in check[0]["run"]
    assert "github/codeql-action/upload-sarif" in (ROOT / "action.yml").read_text()


def test_unhealthy_inputs_fail_the_step_with_sarif_summary_and_annotations(tmp_path):
    repo = git_checkout(tmp_path, {"specs/vanishing.yaml": VANISHING_YAML,
                                   "logs/exploding.csv": exploding_csv(),
                                   "logs/healthy.csv": healthy_csv()})
    run = run_action(repo, {**NO_INSTALL, "path": "specs/vanishing.yaml\nlogs/exploding.csv logs/healthy.csv"},
                     tmp_path)
    assert [s for s in run["steps"] if s[1] == "skipped"] == [
        ("Set up Python", "skipped"), ("Install gradhealth", "skipped")]
    assert run["rc"] == 1, run["stderr"]
    assert run["outputs"]["exit-code"] == "1"
    assert run["outputs"]["sarif-dir"] == "gradhealth-results"
    files = sarif_files(repo)
    assert len(files) == 3
    logs = {}
    for f in files:
        log = json.loads(f.read_text())
        validate_sarif(log)
        run0 = log["runs"][0]
        logs[run0["artifacts"][0]["location"]["uri"]] = run0
    # Repository-relative paths, one code-scanning category per input.
    assert set(logs) == {"specs/vanishing.yaml", "logs/exploding.csv", "logs/healthy.csv"}
    assert len({r["automationDetails"]["id"] for r in logs.values()}) == 3
    spec_results = logs["specs/vanishing.yaml"]["results"]
    vanishing = next(r for r in spec_results if r["ruleId"] == "vanishing_gradient")
    region = vanishing["locations"][0]["physicalLocation"]["region"]
    # /layers/0 is the block that starts "  - type: linear" on line 6 of VANISHING_YAML.
    assert VANISHING_YAML.splitlines()[region["startLine"] - 1].strip() == "- type: linear"
    assert region["startLine"] == 6
    nonfinite = next(r for r in logs["logs/exploding.csv"]["results"] if r["ruleId"] == "nonfinite")
    line = nonfinite["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert exploding_csv().splitlines()[line - 1].split(",")[1] == "nan"  # the first NaN's line
    assert logs["logs/healthy.csv"]["results"] == []
    # Annotations on stdout for GitHub to pick up, with the file and line.
    assert re.search(r"^::error file=logs/exploding\.csv,line=\d+", run["stdout"], re.M)
    assert re.search(r"^::error file=specs/vanishing\.yaml,line=6", run["stdout"], re.M)
    # One Markdown summary per input, appended to the step summary.
    summary = run["summary"].read_text()
    assert summary.count("Gradient Health:") == 3
    assert "`specs/vanishing.yaml`" in summary and "❌" in summary and "✅" in summary


def test_healthy_inputs_pass(tmp_path):
    repo = git_checkout(tmp_path, {"logs/healthy.csv": healthy_csv()})
    run = run_action(repo, {**NO_INSTALL, "path": "logs/healthy.csv"}, tmp_path)
    assert run["rc"] == 0, run["stderr"]
    assert run["outputs"]["exit-code"] == "0"
    assert "**healthy**" in run["summary"].read_text()
    assert len(sarif_files(repo)) == 1


@pytest.mark.parametrize("fail_on, expected", [("warning", 1), ("error", 1), ("never", 0)])
def test_fail_on_is_passed_through(tmp_path, fail_on, expected):
    repo = git_checkout(tmp_path, {"logs/exploding.csv": exploding_csv()})
    run = run_action(repo, {**NO_INSTALL, "path": "logs/exploding.csv", "fail-on": fail_on}, tmp_path)
    assert run["rc"] == expected, run["stderr"]


def test_a_baseline_from_main_turns_known_findings_green(tmp_path):
    # Main's diagnosis of the same log: nothing new, so --fail-on new passes; without the file
    # (first run) every finding is new and the step fails, with a warning saying why.
    repo = git_checkout(tmp_path, {"logs/exploding.csv": exploding_csv()})
    for sub in "abc":
        (tmp_path / sub).mkdir()
    first = run_action(repo, {**NO_INSTALL, "path": "logs/exploding.csv"}, tmp_path / "a")
    assert first["rc"] == 1
    main_json = next((repo / "gradhealth-results").glob("*.json"))
    (repo / "main.json").write_text(main_json.read_text())
    again = run_action(repo, {**NO_INSTALL, "path": "logs/exploding.csv", "fail-on": "new",
                              "baseline": "main.json"}, tmp_path / "b")
    assert again["rc"] == 0, again["stdout"] + again["stderr"]
    assert "0 new, 0 worse" in again["summary"].read_text()
    missing = run_action(repo, {**NO_INSTALL, "path": "logs/exploding.csv", "fail-on": "new",
                                "baseline": "absent.json"}, tmp_path / "c")
    assert missing["rc"] == 1
    assert "::warning title=gradhealth baseline::absent.json not found" in missing["stdout"]


def test_no_input_is_an_error_not_a_pass(tmp_path):
    repo = git_checkout(tmp_path, {"README": "x"})
    run = run_action(repo, {**NO_INSTALL, "path": " "}, tmp_path)
    assert run["rc"] == 2


def test_a_path_with_a_space_on_its_own_line_and_a_glob_are_inputs(tmp_path):
    # cisweep2: `for input in $GRADHEALTH_PATHS` split "models/my model.yaml" in two
    repo = git_checkout(tmp_path, {"models/my model.yaml": VANISHING_YAML, "logs/a.csv": healthy_csv(),
                                   "logs/b.csv": healthy_csv()})
    run = run_action(repo, {**NO_INSTALL, "path": "models/my model.yaml\nlogs/*.csv"}, tmp_path)
    assert run["rc"] == 1, run["stdout"] + run["stderr"]
    uris = {json.loads(f.read_text())["runs"][0]["artifacts"][0]["location"]["uri"] for f in sarif_files(repo)}
    # (SARIF URIs are percent-encoded)
    assert uris == {"models/my%20model.yaml", "logs/a.csv", "logs/b.csv"}


def test_a_baseline_folder_compares_each_input_with_its_own(tmp_path):
    # cisweep2: one --baseline handed to every input compared a log with a spec's document (now
    # refused) and a second spec with the first's; main's output folder is each input's own baseline
    repo = git_checkout(tmp_path, {"specs/vanishing.yaml": VANISHING_YAML, "logs/exploding.csv": exploding_csv()})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = "specs/vanishing.yaml logs/exploding.csv"
    first = run_action(repo, {**NO_INSTALL, "path": paths}, tmp_path / "a")
    assert first["rc"] == 1
    (repo / "gradhealth-results").rename(repo / "main-results")
    again = run_action(repo, {**NO_INSTALL, "path": paths, "fail-on": "new", "baseline": "main-results"},
                       tmp_path / "b")
    assert again["rc"] == 0, again["stdout"] + again["stderr"]
    assert again["summary"].read_text().count("0 new, 0 worse") == 2


@pytest.mark.parametrize("flag, expected", [("false", 0), ("true", 1)])
def test_fail_on_unjudged_fails_a_log_too_short_to_judge_only_when_asked(tmp_path, flag, expected):
    # 4 points: fewer than the trend checks need, so the log is healthy but not judged
    repo = git_checkout(tmp_path, {"logs/short.csv": "step,loss\n" + "".join(f"{i},{2 - i / 10}\n" for i in range(4))})
    run = run_action(repo, {**NO_INSTALL, "path": "logs/short.csv", "fail-on-unjudged": flag}, tmp_path)
    assert run["rc"] == expected, run["stderr"]
    assert run["outputs"]["exit-code"] == str(expected)
