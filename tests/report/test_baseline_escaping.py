"""errsweep4 D2: a --baseline file is user input. Its finding codes (in the catalog or not), series,
summaries and its own path reach the reports' "Compared with the baseline" section, and each
format must print them as literal text in its own syntax: the hostile strings of the CI sweep
(``EVIL``, test_cisweep_fixes.py) put into a baseline instead of the checked document."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from gradhealth.core.baseline import compare
from gradhealth.core.document import Diagnosis
from gradhealth.report import FORMATS, ReportContext, render
from tests.report.helpers import document, finding
from tests.report.test_cisweep_fixes import EVIL, _evil_doc

_RAW_HTML = re.compile(r"(?<!\\)<")
_PIPE = re.compile(r"(?<!\\)\|")
_JS_LINK = re.compile(r"(?<!\\)\]\(javascript:")


def _hostile_baseline(kind: str) -> Diagnosis:
    """A current document compared with a baseline whose finding code is not in the catalog and
    whose series/summary are hostile: the baseline's finding is listed as gone."""
    before = _evil_doc(kind)
    before = before.model_copy(update={"findings": [
        f.model_copy(update={"code": EVIL, "summary": f"{f.summary} <a href=\"https://evil.example\">x</a> [click](javascript:alert(2))"})
        for f in before.findings]})
    now = document([finding("dead_units", "warning", "fine", layers=["l0"], metric="loss",
                            steps=[1, 2] if kind == "logs" else None)], kind=kind)
    return now.model_copy(update={"baseline": compare(now, before, source=EVIL)})


def _section(md: str) -> list[str]:
    lines = md.splitlines()
    return lines[lines.index("### Compared with the baseline"):]


@pytest.mark.parametrize("kind", ["architecture", "logs"])
def test_markdown_baseline_section_escapes_every_baseline_string(kind):
    doc = _hostile_baseline(kind)
    assert [e.change for e in doc.baseline.findings].count("gone") == 1
    section = _section(render("markdown", doc, ReportContext(source="x.yaml")))
    headline = section[2]
    assert headline.startswith("compared with the baseline `")  # the path as a code span
    assert not _RAW_HTML.search(headline.split("`")[0])
    [gone] = [row for row in section if row.startswith("| **gone** |")]
    cells = _PIPE.split(gone)[1:-1]
    assert len(cells) == 5, gone  # no pipe from the strings opens a cell
    change, severity, code, where, why = (c.strip() for c in cells)
    # the code (not in the catalog) is one literal code span: its fence outruns every backtick run
    fence = re.match(r"`+", code)
    assert fence and code.endswith(fence.group()), code
    inner = code[len(fence.group()):-len(fence.group())]
    assert all(len(run) < len(fence.group()) for run in re.findall(r"`+", inner)), code
    for text in (where, why):
        assert not _RAW_HTML.search(text), text
        assert not _JS_LINK.search(text) and "**bold**" not in text, text
    assert "\\<a href" in why and "\\<img src=x" in where  # still shown, as text
    assert not [line for line in section if line.startswith(("#", "::")) and "Compared" not in line]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", ["architecture", "logs"])
def test_every_format_prints_a_hostile_baseline_in_its_own_syntax(fmt, kind):
    out = render(fmt, _hostile_baseline(kind), ReportContext(source="x.yaml"))
    if fmt == "json":  # JSON's own escaping: the strings come back exactly as the baseline had them
        assert json.loads(out)["baseline"]["source"] == EVIL
        return
    assert "\r" not in out and "\u2028" not in out and "\x1b" not in out
    for line in out.splitlines():
        assert not line.lstrip().startswith("::error::injected"), line
        if fmt not in ("github",):
            assert not line.lstrip().startswith("::"), line
    if fmt in ("sarif", "codeclimate"):
        json.loads(out)
    elif fmt == "junit":
        ET.fromstring(out.encode())
    elif fmt == "html":
        assert "<img" not in out and 'href="https://evil.example"' not in out
    elif fmt == "text":
        assert "gone" in out and "injected" in out  # printed, on the entry's own line
