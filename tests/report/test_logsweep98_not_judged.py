"""logsweep98 piper827 / swin_running_avg_inf: a short excerpt (6 loss lines; a fraction of one
epoch of a run under way) came out "HEALTHY", exit 0, with only an info note saying its trends were
not judged. The status keeps its three values; the document says ``judged: false`` with the reason,
the text headline says NOT JUDGED, JUnit skips the trend checks, and ``--fail-on-unjudged`` fails."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gradhealth.cli import main
from gradhealth.library import check_logs, render


def _short(tmp_path: Path) -> Path:
    # 6 points: under the 8 the trend checks need (LogThresholds.min_points)
    path = tmp_path / "train.log"
    path.write_text("".join(f"step {i} loss {2.0 - 0.01 * i:.3f}\n" for i in range(1, 7)))
    return path


def _long(tmp_path: Path) -> Path:
    # 40 points of a steadily falling loss: judged, and healthy
    path = tmp_path / "long.log"
    path.write_text("".join(f"step {i} loss {2.0 * 0.97 ** i:.4f}\n" for i in range(1, 41)))
    return path


def _one_epoch_excerpt(tmp_path: Path) -> Path:
    # 17 progress lines inside epoch 476 (0-11 % of it): enough points, too little of the run
    path = tmp_path / "excerpt.csv"
    path.write_text("epoch,loss\n" + "".join(f"{476 + i / 160:.5f},{25.0 + (i % 3) * 0.1:.2f}\n" for i in range(17)))
    return path


def test_a_short_excerpt_is_healthy_but_not_judged(tmp_path: Path) -> None:
    doc = check_logs(_short(tmp_path))
    assert doc.status == "healthy"  # the enum is kept: nothing was found
    assert doc.judged is False
    assert doc.not_judged is not None and "too short to judge trends" in doc.not_judged
    text = render(doc)
    first = text.splitlines()[0]
    assert "NOT JUDGED" in first and "HEALTHY" not in first
    assert json.loads(doc.model_dump_json())["judged"] is False


def test_an_excerpt_within_one_epoch_is_not_judged(tmp_path: Path) -> None:
    doc = check_logs(_one_epoch_excerpt(tmp_path))
    assert doc.status == "healthy" and doc.judged is False
    assert doc.not_judged is not None and "of an epoch" in doc.not_judged


def test_a_judged_log_stays_healthy_and_judged(tmp_path: Path) -> None:
    doc = check_logs(_long(tmp_path))
    assert (doc.status, doc.judged, doc.not_judged) == ("healthy", True, None)
    assert render(doc).splitlines()[0].endswith(": HEALTHY")


def test_no_loss_at_all_stays_a_warning_and_is_not_judged(tmp_path: Path) -> None:
    path = tmp_path / "acc.log"
    path.write_text("".join(f"step {i} lr 0.1\n" for i in range(1, 20)))
    doc = check_logs(path)
    assert doc.status == "warning" and doc.judged is False
    assert render(doc).splitlines()[0].endswith(": WARNING")  # its headline unchanged


def test_junit_skips_the_trend_checks_and_markdown_has_no_healthy_mark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _short(tmp_path)
    assert main(["check", "train.log", "--output", "junit=r.xml", "--output", "markdown=r.md",
                 "--output", "sarif=r.sarif"]) == 0
    capsys.readouterr()
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None
    skipped = {c.get("name") for c in suite.iter("testcase") if c.find("skipped") is not None}
    assert {"loss_plateau", "loss_oscillation", "validation_divergence"} <= skipped
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["judged"] == "false"
    heading = (tmp_path / "r.md").read_text().splitlines()[0]
    assert "not judged" in heading and "✅" not in heading
    run = json.loads((tmp_path / "r.sarif").read_text())["runs"][0]
    assert run["properties"]["judged"] is False
    assert "loss_plateau" in run["properties"]["notRun"]


def test_fail_on_unjudged_fails_only_an_unjudged_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _short(tmp_path)
    _long(tmp_path)
    assert main(["check", "train.log", "--fail-on-unjudged", "--output", "junit=r.xml"]) == 1
    assert main(["check", "train.log", "--fail-on", "never", "--fail-on-unjudged"]) == 1
    assert main(["check", "long.log", "--fail-on-unjudged"]) == 0
    capsys.readouterr()
    failed = {c.get("name") for c in ET.parse(tmp_path / "r.xml").getroot().iter("testcase")
              if c.find("failure") is not None}
    assert failed == {"insufficient_data"}
    assert main(["check", "train.log", "--fail-on-unjudged", "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert "::error" in out and "NOT JUDGED" in out
