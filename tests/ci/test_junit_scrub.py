"""JUnit reports hold only XML 1.0 characters and keep every user string on one line (errsweep2 N7):
a series named with U+FFFE, or a name or ``?source=`` holding "\\n::error::...", gives a well-formed
file where no line starts with ``::`` (a GitHub workflow command if a CI step prints it), from the
renderer, the service's report endpoint and ``gradhealth check --format junit``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from gradhealth.cli import main
from gradhealth.core.baseline import compare
from gradhealth.core.document import LayerReport
from gradhealth.report import FORMATS, ReportContext, render
from tests.api.helpers import running_app, settings_for
from tests.report.helpers import document, finding

from .test_report_endpoint import finish_as_worker, submit_log

BAD = "grad_norm/enc\ufffe.0\n::error::pwned\x00\ud800"


def _bad_doc(kind: str = "logs"):
    f = finding("vanishing_gradient", "warning", f"{BAD} is vanishing", metric=BAD, layers=[BAD],
                steps=[1, 2] if kind == "logs" else None)
    info = finding("loss_plateau", "info", f"{BAD} is flat", metric=BAD, steps=[3, 4])
    doc = document([f, info], kind=kind, name=BAD)
    return doc.model_copy(update={"summary": f"summary {BAD}"})


def _assert_clean(xml: str) -> ET.Element:
    root = ET.fromstring(xml.encode())  # well-formed: no U+FFFE, NUL or lone surrogate left
    for line in xml.splitlines():
        assert not line.lstrip().startswith("::"), line
    assert "\ufffe" not in xml and "\x00" not in xml
    return root


@pytest.mark.parametrize("kind", ["logs", "architecture"])
def test_every_attribute_and_text_is_scrubbed(kind):
    xml = render("junit", _bad_doc(kind), ReportContext(source=f"run.jsonl{BAD}", fail_on="warning"))
    root = _assert_clean(xml)
    suite = root.find("testsuite")
    assert "pwned" in suite.get("name") and "\n" not in suite.get("name")
    summary = next(p for p in suite.iter("property") if p.get("name") == "summary")
    assert "\n" not in summary.get("value") and "pwned" in summary.get("value")
    for case in suite.iter("testcase"):
        for value in case.attrib.values():
            assert "\n" not in value
    texts = [e.text for e in root.iter() if e.tag in ("failure", "system-out")]
    assert len(texts) == 2 and all("pwned" in t for t in texts)


def test_the_report_endpoint_scrubs_source_and_names(tmp_path_factory):
    with running_app(settings_for(tmp_path_factory.mktemp("junit"), workers=0)) as api:
        job = submit_log(api)
        finish_as_worker(api, job["id"], lambda request: _bad_doc())
        got = api.get(f"/v1/jobs/{job['id']}/report",
                      params={"format": "junit", "source": "run.jsonl\n::error::src"})
        assert got.status_code == 200, got.text
        root = _assert_clean(got.text)
        assert {c.get("file") for c in root.iter("testcase")} == {"run.jsonl ::error::src"}


@pytest.fixture
def in_repo(tmp_path, monkeypatch) -> Iterator:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path


def test_the_cli_junit_of_a_log_with_odd_series_names(in_repo, capsys):
    rows = [json.dumps({"step": s, "loss": 2.0 - s / 100, "grad_norm/enc\ufffe.0": 1e-9 * (1 + s % 3),
                        "grad_norm/x\n::error::pwned": 1.0 + (s % 5) / 10, "grad_norm/head": 1.0})
            for s in range(60)]
    (in_repo / "run.jsonl").write_text("\n".join(rows) + "\n")
    main(["check", "run.jsonl", "--format", "junit", "--fail-on", "never"])
    _assert_clean(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", [name for name in FORMATS if name != "github"])
def test_no_format_begins_a_line_with_a_name_that_begins_with_colons(fmt):
    """A name that itself begins with ``::`` (the spec's, a layer's in the --layers table, a
    baseline reason's) does not begin a line of any report (github's lines are commands by design,
    its messages escaped)."""
    name = "::error::x"
    f = finding("dead_units", "warning", f"{name} dead", layers=[name], metric=name)
    layer = LayerReport(name=name, type="linear", pointer="/layers/0", grad_norm=1.0, dead_fraction=0.9)
    doc = document([f], name=name, layers=[layer])
    before = doc.model_copy(update={"layers": [layer.model_copy(update={"dead_fraction": 0.1})]})
    doc = doc.model_copy(update={"baseline": compare(doc, before)})
    out = render(fmt, doc, ReportContext(source=f"{name}.yaml", layers=True))
    for line in out.splitlines():
        assert not line.lstrip().startswith("::"), line
