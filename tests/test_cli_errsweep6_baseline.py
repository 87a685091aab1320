"""errsweep6 #8: a ``--baseline`` holding 5,000 copies of one finding was taken and printed 5,000
"gone" lines (12.7 s, 416 MB). A baseline's findings are counted once per identity (code, series or
first layer, severity, summary), and one listing more than ``MAX_BASELINE_FINDINGS`` is refused,
exit 2, naming the pointer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradhealth.cli import main
from gradhealth.cli_report import MAX_BASELINE_FINDINGS

pytestmark = pytest.mark.usefixtures("off_runner")


def _log_doc(run_csv: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["check", str(run_csv), "--format", "json"]) == 1
    doc: dict = json.loads(capsys.readouterr().out)
    assert doc["findings"], doc
    return doc


def _gone_finding(doc: dict) -> dict:
    gone = json.loads(json.dumps(doc["findings"][0]))
    gone["code"], gone["evidence"]["metric"] = "loss_plateau", "no_such_series"  # not in this run
    gone["severity"], gone["summary"] = "warning", "loss barely moved"
    return gone


def test_copies_of_one_baseline_finding_count_once(tmp_path, run_csv, capsys):
    doc = _log_doc(run_csv, capsys)
    base = dict(doc, findings=doc["findings"] + [_gone_finding(doc)] * 500)
    path = tmp_path / "base.json"
    path.write_text(json.dumps(base))
    assert main(["check", str(run_csv), "--baseline", str(path), "--format", "json"]) == 1
    compared = json.loads(capsys.readouterr().out)["baseline"]
    assert compared["gone"] == 1 and compared["new"] == 0
    assert compared["unchanged"] + compared["worse"] == len(doc["findings"])
    assert main(["check", str(run_csv), "--baseline", str(path)]) == 1
    assert capsys.readouterr().out.count("no_such_series") == 1  # the text report says it once


def test_a_baseline_over_the_findings_limit_is_refused(tmp_path, run_csv, capsys):
    doc = _log_doc(run_csv, capsys)
    gone = _gone_finding(doc)
    many = [dict(gone, summary=f"loss barely moved ({i})") for i in range(MAX_BASELINE_FINDINGS + 1)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(dict(doc, findings=many)))
    assert main(["check", str(run_csv), "--baseline", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"--baseline {path}: at /findings: {MAX_BASELINE_FINDINGS + 1:,} findings" in err
    assert f"{MAX_BASELINE_FINDINGS:,}" in err
    # as a job resource, the pointer is into its result
    path.write_text(json.dumps({"id": "j1", "kind": "logs", "status": "succeeded",
                                "result": dict(doc, findings=many)}))
    assert main(["check", str(run_csv), "--baseline", str(path)]) == 2
    assert "at /result/findings: " in capsys.readouterr().err
