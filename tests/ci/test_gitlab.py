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


def _bin_with(tmp_path, names):
    """A PATH of system tools plus a folder with gradhealth and the named Python launchers only
    (an image with python3 and no `python`, or none at all)."""
    import sys
    from pathlib import Path

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "gradhealth").symlink_to(Path(sys.executable).parent / "gradhealth")
    for name in names:
        (bin_ / name).symlink_to(sys.executable)
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):  # the system's tools, less its Pythons
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else ():
            if not tool.name.startswith("python") and not (bin_ / tool.name).exists():
                (bin_ / tool.name).symlink_to(tool)
    return str(bin_)


def test_the_code_quality_file_is_merged_with_only_python3(tmp_path):
    # newuser6 #8: `python -c ... 2>/dev/null || echo "[]"` wrote [] on an image without `python`
    repo = git_checkout(tmp_path, {"logs/exploding.csv": exploding_csv()})
    done = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/exploding.csv", "GRADHEALTH_INSTALL": "false",
                                 "PATH": _bin_with(tmp_path, ["python3"])})
    assert done.returncode == 1, done.stdout + done.stderr
    issues = json.loads((repo / "gradhealth-results" / "gl-code-quality.json").read_text())
    assert {i["check_name"] for i in issues} >= {"nonfinite", "exploding_gradient"}


def test_a_code_quality_merge_that_cannot_run_fails_the_job_loudly(tmp_path):
    repo = git_checkout(tmp_path, {"logs/healthy.csv": healthy_csv()})
    done = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/healthy.csv", "GRADHEALTH_INSTALL": "false",
                                 "PATH": _bin_with(tmp_path, [])})
    assert done.returncode == 3, done.stdout + done.stderr
    assert "gl-code-quality.json: no python3 or python on PATH" in done.stderr


def _readme_yaml_after(marker: str) -> dict:
    import re

    import yaml

    from tests.helpers import documentation

    text = documentation()
    block = re.search(r"```yaml\n(.*?)```", text[text.index(marker):], re.S)
    assert block is not None
    return yaml.safe_load(block.group(1))


def test_the_readme_gitlab_example_shows_the_server_and_its_variables_exist():
    # newuser6 #9: the example showed neither a server nor where the API key goes
    from tests.helpers import documentation

    example = _readme_yaml_after("**GitLab CI** (`ci/gitlab/gradhealth.gitlab-ci.yml`)")
    assert set(example["variables"]) <= set(gitlab_template()["variables"])
    assert example["variables"]["GRADHEALTH_SERVER"].startswith("https://")
    text = documentation()
    section = text[text.index("**GitLab CI** (`ci/gitlab"):text.index("**pre-commit**")]
    assert "GRADHEALTH_API_KEY" in section and "masked" in section


def test_the_readme_action_example_uploads_the_baseline_it_downloads():
    from .helpers import action

    steps = _readme_yaml_after("**GitHub Action** (`action.yml`")["steps"]
    check = next(s for s in steps if s.get("id") == "gradhealth")
    assert set(check["with"]) <= set(action()["inputs"])
    assert {"server", "api-key"} <= set(check["with"])
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    downloads = [s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact")]
    assert uploads and uploads[0]["with"]["path"].rstrip("/") == "gradhealth-results"
    assert downloads and downloads[0]["with"]["path"] == check["with"]["baseline"]
    assert downloads[0]["with"]["name"] == uploads[0]["with"]["name"]


def test_fail_on_unjudged_variable_fails_a_log_too_short_to_judge(tmp_path):
    repo = git_checkout(tmp_path, {"logs/short.csv": "step,loss\n" + "".join(f"{i},{2 - i / 10}\n" for i in range(4))})
    for flag, expected in (("false", 0), ("true", 1)):
        done = run_gitlab_job(repo, {"GRADHEALTH_PATHS": "logs/short.csv", "GRADHEALTH_INSTALL": "false",
                                     "GRADHEALTH_FAIL_ON_UNJUDGED": flag})
        assert done.returncode == expected, done.stdout + done.stderr
