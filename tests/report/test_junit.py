"""JUnit XML parsed back and counted: a case per code checked, a failure per warning/error."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gradhealth.report import ReportContext, render
from gradhealth.report.context import ARCHITECTURE_CODES, LOG_CODES

from .helpers import LOG, document, finding, remedy


def parse(xml: str) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.fromstring(xml.encode())
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return suite, suite.findall("testcase")


def test_counts_match_the_findings(arch_doc):
    suite, cases = parse(render("junit", arch_doc, ReportContext(source="specs/deep.yaml")))
    failing = [f for f in arch_doc.findings if f.severity in ("warning", "error")]
    found_codes = {f.code for f in arch_doc.findings}
    assert len(failing) >= 1
    assert (
        int(suite.get("failures"))
        == len(failing)
        == sum(c.find("failure") is not None for c in cases)
    )
    assert (
        int(suite.get("tests"))
        == len(cases)
        == len(arch_doc.findings) + len(set(ARCHITECTURE_CODES) - found_codes)
    )
    assert {c.get("name") for c in cases} == set(ARCHITECTURE_CODES)
    assert {c.get("classname") for c in cases} == {"specs/deep.yaml"}
    for f in failing:
        case = next(c for c in cases if c.get("name") == f.code)
        failure = case.find("failure")
        assert failure.get("message") == f.summary and failure.get("type") == f.severity
        assert all(r.id in failure.text for r in f.remedies)


def test_info_findings_pass_and_repeated_codes_are_one_case_each():
    doc = document(
        [
            finding("gradient_spike", "warning", "spikes in norm", steps=[1, 2], metric="norm"),
            finding(
                "gradient_spike",
                "error",
                "spikes in norm/fc1",
                steps=[3, 4],
                metric="norm/fc1",
                remedies=[remedy("gradient_clipping")],
            ),
            finding(
                "loss_plateau", "info", "loss is flat late in the run", steps=[5, 9], metric="loss"
            ),
        ],
        kind="logs",
    )
    suite, cases = parse(render("junit", doc, ReportContext(source="logs/run.csv")))
    assert int(suite.get("tests")) == len(LOG_CODES) - 2 + 3 == len(cases)
    assert int(suite.get("failures")) == 2
    spikes = [c for c in cases if c.get("name") == "gradient_spike"]
    assert sorted(c.find("failure").get("message") for c in spikes) == [
        "spikes in norm",
        "spikes in norm/fc1",
    ]
    assert "gradient_clipping" in spikes[1].find("failure").text
    plateau = next(c for c in cases if c.get("name") == "loss_plateau")
    assert plateau.find("failure") is None and "loss is flat" in plateau.find("system-out").text


def test_log_report_names_the_line(log_doc):
    suite, cases = parse(render("junit", log_doc, ReportContext(source="main.log", path=LOG)))
    assert {c.get("name") for c in cases} == set(LOG_CODES)
    assert int(suite.get("tests")) == len(LOG_CODES) + len(log_doc.findings) - len(
        {f.code for f in log_doc.findings}
    )
    noted = [c for c in cases if c.find("system-out") is not None or c.find("failure") is not None]
    assert len(noted) == len(log_doc.findings)
    assert all(
        "where: main.log:"
        in (c.find("failure") if c.find("failure") is not None else c.find("system-out")).text
        for c in noted
    )


def test_markup_in_summaries_is_escaped():
    doc = document([finding("saturation", "warning", 'units <saturate> & "stay" there')])
    _, cases = parse(render("junit", doc, ReportContext(source="a&b.yaml")))
    case = next(c for c in cases if c.get("name") == "saturation")
    assert case.find("failure").get("message") == 'units <saturate> & "stay" there'
    assert case.get("classname") == "a&b.yaml"
