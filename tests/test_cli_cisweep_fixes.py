"""The command line's CI defects found by the CI sweep: report files into missing folders or
unwritable places, --server flags and answers, run folders and archives as locations, GitHub's cap
across several inputs, options between inputs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest

from gradhealth.cli import main
from tests.ci.helpers import VANISHING_YAML, exploding_csv

FAST = ("--no-verify", "--seeds", "1")


pytestmark = pytest.mark.usefixtures("off_runner")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "net.yaml"
    path.write_text(VANISHING_YAML)
    return path


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.csv").write_text(exploding_csv())
    return folder


def _one_line(err: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# --- D1: report files ------------------------------------------------------------------------------

def test_reports_into_missing_folders_are_written(spec, tmp_path, capsys, monkeypatch):
    summary = tmp_path / "gh" / "summary" / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code = main(["check", str(spec), *FAST, "--format", "github", "-o", str(tmp_path / "a" / "main.txt"),
                 "--output", f"sarif={tmp_path / 'b' / 'c' / 'x.sarif'}"])
    assert code == 1, capsys.readouterr().err  # the real verdict, not a crash
    assert (tmp_path / "a" / "main.txt").read_text().startswith("::error")
    assert json.loads((tmp_path / "b" / "c" / "x.sarif").read_text())["version"] == "2.1.0"
    assert "Gradient Health" in summary.read_text()


def test_an_unwritable_report_path_is_exit_2_in_one_line_before_the_check(spec, tmp_path, capsys,
                                                                          monkeypatch):
    import gradhealth.library

    def never(*args, **kwargs):  # the path is refused before anything is simulated
        raise AssertionError("simulated although the report cannot be written")

    monkeypatch.setattr(gradhealth.library, "check_architecture", never)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    for argv in (["--output", f"sarif={blocker / 'x.sarif'}"], ["-o", str(tmp_path)]):
        assert main(["check", str(spec), *FAST, *argv]) == 2
        err = capsys.readouterr().err
        _one_line(err)
        assert "cannot write the report" in err
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(blocker / "step.md"))
    assert main(["check", str(spec), *FAST, "--format", "github"]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "$GITHUB_STEP_SUMMARY" in err


def test_a_report_that_fails_to_write_after_the_check_is_one_line_exit_2(spec, tmp_path, capsys,
                                                                         monkeypatch):
    import gradhealth.cli_report as cli_report

    monkeypatch.setattr(cli_report, "writable", lambda *a, **k: None)  # the disk fills up later
    target = tmp_path / "full.sarif"

    real_open = Path.open

    def full(self, *args, **kwargs):
        if self == target:
            raise OSError(28, "No space left on device")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    assert main(["check", str(spec), *FAST, "--output", f"sarif={target}"]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "No space left on device" in err


# --- D2: user strings in the text report ----------------------------------------------------------

def test_a_name_with_line_breaks_cannot_start_a_workflow_command(tmp_path, capsys):
    path = tmp_path / "evil.yaml"
    path.write_text('name: "evil\\r\\n::error::injected\\u2028::warning::x"\n' + VANISHING_YAML)
    for fmt in ("text", "markdown"):
        assert main(["check", str(path), *FAST, "--format", fmt, "--fail-on", "never"]) == 0
        out = capsys.readouterr().out
        assert "injected" in out
        assert not [line for line in out.splitlines() if line.lstrip().startswith("::")], out
        assert "\r" not in out and "\u2028" not in out


# --- D3: --server and the flags it cannot drop ----------------------------------------------------

def _fake_server(monkeypatch, seen: list[dict]) -> None:
    """Client.check_architecture answering a finished job from a local check of what was sent."""
    from gradhealth.client import Client

    def check(self, spec, **kw):
        seen.append(spec)
        raise httpx.ConnectError("stop here")  # what was sent is all this test needs

    monkeypatch.setattr(Client, "check_architecture", check)


def test_server_gets_device_in_the_spec_and_refuses_no_verify(spec, monkeypatch, capsys):
    seen: list[dict] = []
    _fake_server(monkeypatch, seen)
    assert main(["check", str(spec), "--server", "http://x.invalid", "--device", "cpu", "--seeds", "2"]) == 3
    assert seen[-1]["device"] == "cpu" and seen[-1]["seeds"] == 2
    capsys.readouterr()
    assert main(["check", str(spec), "--server", "http://x.invalid", "--no-verify"]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "--no-verify" in err and "--server" in err
    assert len(seen) == 1  # nothing sent


def test_server_refuses_device_for_a_model_file(tmp_path, monkeypatch, capsys):
    from gradhealth.client import Client

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really onnx")
    monkeypatch.setattr(Client, "_json", lambda *a, **k: pytest.fail("sent although --device is dropped"))
    assert main(["check", str(model), "--server", "http://x.invalid", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert "--device" in err


# --- D5: a --server that is not the service ------------------------------------------------------

@pytest.mark.parametrize("body, content_type", [
    (b"<html><body>Sign in to the proxy</body></html>", "text/html"),
    (b'{"hello": "world"}', "application/json"),
    (b'[1, 2]', "application/json"),
    (b'{"id": "j1", "status": "succeeded", "result": {"not": "a diagnosis"}}', "application/json"),
])
def test_a_2xx_that_is_not_the_service_is_exit_3_in_one_line(spec, monkeypatch, capsys, body, content_type):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    real = httpx.Client.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **{**kwargs, "transport": httpx.MockTransport(handler)})

    monkeypatch.setattr(httpx.Client, "__init__", init)
    assert main(["check", str(spec), "--server", "http://proxy.invalid"]) == 3
    err = capsys.readouterr().err
    _one_line(err)
    assert "not a gradient health service" in err.lower()


# --- D6: a run folder's file and an archive's member as the location -----------------------------

def test_a_run_folder_points_at_the_file_read_with_its_lines(run_folder, capsys):
    assert main(["check", str(run_folder), "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    locations = [r["locations"][0]["physicalLocation"] for r in sarif["runs"][0]["results"]]
    assert locations and all(p["artifactLocation"]["uri"].endswith("run/metrics.csv") for p in locations)
    assert any("region" in p for p in locations)
    assert main(["check", str(run_folder), "--format", "codeclimate"]) == 1
    issues = json.loads(capsys.readouterr().out)
    assert all(i["location"]["path"].endswith("run/metrics.csv") for i in issues)
    assert any(i["location"]["lines"]["begin"] > 1 for i in issues)


def test_an_archive_keeps_its_path_and_names_the_member(run_folder, tmp_path, capsys):
    archive = tmp_path / "run.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = (run_folder / "metrics.csv").read_bytes()
        info = tarfile.TarInfo("metrics.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert main(["check", str(archive), "--format", "sarif"]) == 1
    results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    for r in results:
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("run.tar.gz")
        assert r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].startswith("metrics.csv")
        assert "In the archive's metrics.csv" in r["message"]["text"]
    assert main(["check", str(archive), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines and all("run.tar.gz" in x and "In the archive's metrics.csv" in x for x in lines)


# --- D7: GitHub's cap across several inputs -------------------------------------------------------

def test_githubs_cap_is_per_step_across_inputs(monkeypatch, tmp_path, capsys):
    import gradhealth.library
    from gradhealth.core.document import Diagnosis, Evidence, Finding

    def findings(severity: str, n: int) -> list[Finding]:
        return [Finding(code="dead_units", severity=severity, summary=f"{severity} {i}", explanation="x",
                        evidence=Evidence(layers=[f"l{i}"])) for i in range(n)]

    docs = {"a": findings("warning", 8), "b": findings("error", 8)}

    def fake(raw, **kwargs):
        return Diagnosis(status="unhealthy", summary="s", findings=docs[raw["name"]])

    monkeypatch.setattr(gradhealth.library, "check_architecture", fake)
    paths = []
    for name in docs:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: {name}\n" + VANISHING_YAML)
        paths.append(str(path))
    assert main(["check", *paths, "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    errors = [x for x in lines if x.startswith("::error")]
    warnings = [x for x in lines if x.startswith("::warning")]
    assert len(errors) == 8 and len(warnings) == 8  # 8 + 8 per kind: both fit
    assert lines.index(errors[0]) < lines.index(warnings[0])  # most severe first across inputs
    docs["a"] = findings("warning", 7)
    docs["b"] = findings("warning", 7)
    assert main(["check", *paths, "--format", "github"]) == 0  # warnings under --fail-on error
    lines = capsys.readouterr().out.splitlines()
    assert len([x for x in lines if x.startswith("::warning")]) == 10
    assert lines[-1].startswith("::notice") and "4 more finding(s)" in lines[-1]


# --- D8: options between inputs -------------------------------------------------------------------

def test_options_between_inputs(spec, run_folder, capsys):
    code = main(["check", str(spec), "--fail-on", "never", str(run_folder / "metrics.csv"), *FAST])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count(": UNHEALTHY") == 2  # both inputs checked, the option applied to both
    # every action type the check verb has, between and after the inputs
    code = main(["check", "--no-progress", str(spec), "--layers", "--step-summary", "--seeds", "1",
                 str(run_folder / "metrics.csv"), "--no-verify", "--fail-on", "never"])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.count(": UNHEALTHY") == 2
    report = spec.parent / "out" / "r.json"
    assert main(["check", "--format", "json", str(spec), *FAST, "-o", str(report), "--fail-on", "never"]) == 0
    assert json.loads(report.read_text())["status"] == "unhealthy"
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--fail-on", "never"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "required: spec" in err and "INPUT" not in err.splitlines()[-1]


# --- low: JUnit follows --fail-on -----------------------------------------------------------------

def test_junit_failures_follow_fail_on(spec, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    report = tmp_path / "j.xml"

    def failures(*argv: str) -> tuple[int, int]:
        code = main(["check", str(spec), *FAST, "--output", f"junit={report}", *argv])
        capsys.readouterr()
        return code, int(ET.parse(report).getroot().get("failures") or 0)

    baseline = tmp_path / "base.json"
    assert main(["check", str(spec), *FAST, "--output", f"json={baseline}"]) == 1
    capsys.readouterr()
    assert failures("--fail-on", "error") == (1, 1)
    assert failures("--fail-on", "never") == (0, 0)
    assert failures("--fail-on", "new", "--baseline", str(baseline)) == (0, 0)  # unchanged: not new



def test_a_formats_other_name_before_an_equals_sign_is_refused() -> None:
    # newuser sweep: "-o md=out/r.md" wrote the text report into a folder named "md=out"
    import argparse

    from gradhealth.cli_report import parse_output

    assert parse_output("markdown=out/r.md") == ("markdown", "out/r.md")
    assert parse_output("out/a=b.txt") == (None, "out/a=b.txt")   # a path: a folder before the "="
    with pytest.raises(argparse.ArgumentTypeError, match=r"'md' is no report format; did you mean markdown=out/r\.md"):
        parse_output("md=out/r.md")


def test_each_examples_line_is_its_first_whole_sentence() -> None:
    # newuser sweep: "... Adam's first step moves every" (the comment's first line, cut mid-sentence)
    from gradhealth.cli import example_description
    from gradhealth.library import example_names

    for name in example_names():
        line = example_description(name)
        assert line.endswith((".", ")")) and "\n" not in line, (name, line)
    assert example_description("adam_high_lr_mlp").endswith("of its norm (healthy: about 1e-3).")
