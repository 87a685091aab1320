"""The GitLab template run as a runner runs it: its variables, before_script and script lines in
one shell with ``set -eo pipefail``, in a git checkout; the JUnit report (parsed back and counted)
and the Code Quality file it declares as artifacts."""

from __future__ import annotations

import glob
import json
import xml.etree.ElementTree as ET

from gradhealth.report.context import LOG_CODES

from .helpers import exploding_csv, git_checkout, gitlab_template, healthy_csv, run_gitlab_job


def test_the_template_declares_junit_and_code_quality_reports():
    job = gitlab_template()["gradhealth"]
    reports = job["artifacts"]["reports"]
    assert reports["junit"] == "$GRADHEALTH_OUT/*.junit.xml"
    assert reports["codequality"] == "$GRADHEALTH_OUT/gl-code-quality.json"
    assert job["artifacts"]["when"] == "always"  # reports of a failed job are the point


def test_the_job_writes_junit_and_code_quality_and_fails_on_an_unhealthy_log(tmp_path):
    repo = git_checkout(tmp_path, {"logs/exploding.csv": exploding_csv(), "logs/healthy.csv": healthy_csv()})
    done = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/exploding.csv logs/healthy.csv",
                                 "GRADHEALTH_INSTALL": "false"})
    assert done.returncode == 1, done.stdout + done.stderr
    out = repo / "gradhealth-results"
    junit = sorted(glob.glob(str(out / "*.junit.xml")))
    assert len(junit) == 2
    cases = {}
    for path in junit:
        root = ET.parse(path).getroot()
        for case in root.iter("testcase"):
            cases[(case.get("classname"), case.get("name"))] = case.find("failure") is not None
    # One test case per code the log check evaluates, for each input; failed ones are findings.
    assert len(cases) == 2 * len(LOG_CODES)
    assert cases[("logs/exploding.csv", "nonfinite")] is True
    assert cases[("logs/exploding.csv", "exploding_gradient")] is True
    assert not any(failed for (cls, _), failed in cases.items() if cls == "logs/healthy.csv")
    issues = json.loads((out / "gl-code-quality.json").read_text())
    assert {i["check_name"] for i in issues} >= {"nonfinite", "exploding_gradient"}
    for issue in issues:
        assert issue["location"]["path"] == "logs/exploding.csv"
        assert isinstance(issue["location"]["lines"]["begin"], int)
        assert issue["severity"] in ("info", "minor", "major", "critical", "blocker")
        assert issue["description"] and len(issue["fingerprint"]) == 32
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_the_job_passes_on_a_healthy_log_and_keeps_an_empty_code_quality_file(tmp_path):
    repo = git_checkout(tmp_path, {"logs/healthy.csv": healthy_csv()})
    done = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/healthy.csv", "GRADHEALTH_INSTALL": "false"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((repo / "gradhealth-results" / "gl-code-quality.json").read_text()) == []


def test_a_job_without_paths_fails(tmp_path):
    repo = git_checkout(tmp_path, {"README": "x"})
    done = run_gitlab_job(repo, {"GRADHEALTH_INSTALL": "false"})
    assert done.returncode == 2 and "GRADHEALTH_PATHS" in done.stdout


def test_a_path_with_a_space_and_a_baseline_folder_per_input(tmp_path):
    # cisweep2: the job split "logs/my run.csv" at its space and built its arguments as one string;
    # a folder of main's results is each input's own baseline
    repo = git_checkout(tmp_path, {"logs/my run.csv": exploding_csv(), "logs/healthy.csv": healthy_csv()})
    paths = "logs/my run.csv\nlogs/healthy.csv"
    first = run_gitlab_job(repo, {"GRADHEALTH_PATHS": paths, "GRADHEALTH_INSTALL": "false"})
    assert first.returncode == 1, first.stdout + first.stderr
    assert len(glob.glob(str(repo / "gradhealth-results" / "*.junit.xml"))) == 2
    (repo / "gradhealth-results").rename(repo / "main-results")
    again = run_gitlab_job(repo, {"GRADHEALTH_PATHS": paths, "GRADHEALTH_INSTALL": "false",
                                  "GRADHEALTH_FAIL_ON": "new", "GRADHEALTH_BASELINE": "main-results"})
    assert again.returncode == 0, again.stdout + again.stderr
