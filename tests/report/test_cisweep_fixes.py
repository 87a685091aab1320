"""The renderers' CI-sweep defects: user strings that could start a line of their own or carry
Markdown/HTML, SARIF's artifact URIs, GitHub's cap across several checks, JUnit's failures
following --fail-on and holding only XML characters."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from gradhealth.core.baseline import compare
from gradhealth.core.document import LayerReport
from gradhealth.report import ReportContext, render
from gradhealth.report.context import md_code, md_text, one_line
from gradhealth.report.github import PER_KIND, github_commands, github_commands_for
from tests.report.helpers import document, finding

EVIL = "evil | <img src=x onerror=alert(1)> **bold** `tick` [a](http://x) \r\n::error::injected\u2028# h\x1b[31m"


def _evil_doc(kind: str = "architecture"):
    f = finding("dead_units", "warning", f"dead units in {EVIL}", layers=[EVIL], metric=EVIL,
                steps=[1, 2] if kind == "logs" else None)
    extra = {"layers": [LayerReport(name=EVIL, type="linear", pointer="/layers/0", grad_norm=1.0)]} if kind != "logs" else {}
    return document([f], kind=kind, name=EVIL, **extra)


def test_one_line_and_markdown_helpers():
    assert one_line("a\r\nb\u2028c\x85d\x00e\tf") == "a b c d e f"
    escaped = md_text(EVIL)
    assert not re.search(r"(?<!\\)[<>]", escaped) and "\n" not in escaped and "\r" not in escaped
    assert "\\*\\*bold\\*\\*" in escaped and "\\[a\\]" in escaped and "\\|" in escaped
    span = md_code("a ``b`` c|d", in_table=True)
    assert span.startswith("```") and span.endswith("```") and "\\|" in span


@pytest.mark.parametrize("fmt", ["text", "markdown", "github"])
@pytest.mark.parametrize("kind", ["architecture", "logs"])
def test_user_strings_never_start_a_line(fmt, kind):
    out = render(fmt, _evil_doc(kind), ReportContext(source="x.yaml", layers=True))
    assert "injected" in out or fmt == "github"
    for line in out.splitlines():
        assert not line.lstrip().startswith("::error::injected"), line
        if fmt != "github":
            assert not line.lstrip().startswith("::"), line
    assert "\r" not in out and "\u2028" not in out and "\x1b" not in out


def test_markdown_escapes_html_and_markup_from_user_strings():
    out = render("markdown", _evil_doc(), ReportContext(source="x.yaml"))
    heading = out.splitlines()[0]
    assert heading.startswith("## ") and "injected" in heading  # the name stays on the heading
    raw_html = re.compile(r"(?<!\\)<")
    assert not raw_html.search(heading)  # never raw HTML outside a code span
    rows = [line for line in out.splitlines() if line.startswith("| ⚠️")]
    assert rows and not [row for row in rows if raw_html.search(re.split(r"(?<!\\)\|", row)[-2])]
    assert "**bold**" not in heading
    assert not [line for line in out.splitlines() if line.startswith("# ")]
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 5, row  # four cells: no pipe from the strings


# RFC 3986 URI reference, relative form: pchar = unreserved / pct-encoded / sub-delims / ":" / "@";
# the first segment of a relative path holds no ":" (it would read as a scheme).
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=@:]|%[0-9A-Fa-f]{2})"
_SEG_NC = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=@]|%[0-9A-Fa-f]{2})"
RELATIVE_REF = re.compile(rf"^(?:/{_PCHAR}*)*$|^{_SEG_NC}+(?:/{_PCHAR}*)*$")


def test_sarif_artifact_uris_are_percent_encoded_relative_references():
    source = "weird dir/a,b:c%25 ü.yaml"
    doc = document([finding("dead_units", "warning", layers=["l"])])
    sarif = json.loads(render("sarif", doc, ReportContext(source=source)))
    run = sarif["runs"][0]
    uris = [run["artifacts"][0]["location"]["uri"]]
    uris += [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    for uri in uris:
        assert RELATIVE_REF.match(uri), uri
        assert uri == "weird%20dir/a%2Cb%3Ac%2525%20%C3%BC.yaml"
    for plain in ("models/net.yaml", "a:b.yaml"):
        uri = json.loads(render("sarif", doc, ReportContext(source=plain)))["runs"][0]["artifacts"][0]
        assert RELATIVE_REF.match(uri["location"]["uri"]), uri


def test_github_cap_applies_once_across_checks_most_severe_first():
    ctx_a, ctx_b = ReportContext(source="a.yaml"), ReportContext(source="b.yaml")
    warn = document([finding("dead_units", "warning", f"w{i}", layers=[f"l{i}"]) for i in range(8)])
    err = document([finding("saturation", "error", f"e{i}", layers=[f"l{i}"]) for i in range(8)])
    lines = github_commands_for([(warn, ctx_a), (err, ctx_b)])
    assert [x.split(" ", 1)[0] for x in lines] == ["::error"] * 8 + ["::warning"] * 8
    more = document([finding("dead_units", "warning", f"v{i}", layers=[f"l{i}"]) for i in range(7)])
    lines = github_commands_for([(warn, ctx_a), (more, ctx_b)])
    assert len([x for x in lines if x.startswith("::warning")]) == PER_KIND
    assert lines[-1].startswith("::notice") and "5 more" in lines[-1]
    assert github_commands(warn, ctx_a) == github_commands_for([(warn, ctx_a)])


def _junit(doc, ctx):
    root = ET.fromstring(render("junit", doc, ctx).encode())
    return int(root.get("failures")), root


def test_junit_failures_follow_fail_on():
    doc = document([finding("dead_units", "warning", layers=["a"]),
                    finding("saturation", "error", layers=["b"]),
                    finding("small_updates", "info")])
    assert _junit(doc, ReportContext(source="x.yaml"))[0] == 2  # no bar given: warnings and errors
    assert _junit(doc, ReportContext(source="x.yaml", fail_on="warning"))[0] == 2
    failures, root = _junit(doc, ReportContext(source="x.yaml", fail_on="error"))
    assert failures == 1
    passed = [c for c in root.iter("testcase") if c.get("name") == "dead_units"][0]
    assert passed.find("failure") is None and "dead_units" in passed.findtext("system-out")
    assert _junit(doc, ReportContext(source="x.yaml", fail_on="never"))[0] == 0
    before = document([finding("dead_units", "warning", layers=["a"])])
    compared = doc.model_copy(update={"baseline": compare(doc, before)})
    assert _junit(compared, ReportContext(source="x.yaml", fail_on="new"))[0] == 1  # only the new error


def test_junit_holds_only_xml_characters():
    failures, root = _junit(_evil_doc(), ReportContext(source="x.yaml"))  # parses: no \x1b in it
    assert failures == 1
    failure = next(root.iter("failure"))
    assert "\n" not in failure.get("message") and "injected" in failure.get("message")
