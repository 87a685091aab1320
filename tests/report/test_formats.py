"""The registry: every format renders every kind of document, deterministically; media types;
the report package stays free of torch; the code lists agree with the checks and the docs."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from gradhealth.core.document import Diagnosis
from gradhealth.report import FORMATS, ReportContext, for_media_type, render
from gradhealth.report.context import ARCHITECTURE_CODES, LOG_CODES, README_SECTIONS
from tests.helpers import DOCUMENTATION_FILES, doc_section, documentation

from .helpers import LOG, spec_text


def test_every_format_renders_both_kinds_the_same_twice(arch_doc, log_doc):
    arch_ctx = ReportContext(source="s.yaml", text=spec_text())
    log_ctx = ReportContext(source="main.log", path=LOG)
    for name in FORMATS:
        for doc, ctx in ((arch_doc, arch_ctx), (log_doc, log_ctx)):
            out = render(name, doc, ctx)
            assert out == render(name, doc.model_copy(deep=True), ctx), name
            assert out.strip() or (name == "github" and not doc.findings), name


def test_json_is_the_document(arch_doc):
    assert Diagnosis.model_validate_json(render("json", arch_doc)) == arch_doc


def test_text_is_the_readable_report(arch_doc):
    from gradhealth.report import render_text

    assert render("text", arch_doc, ReportContext(layers=True)) == render_text(
        arch_doc, layers=True
    )


def test_registry_entries():
    assert list(FORMATS) == [
        "text", "json", "sarif", "junit", "github", "markdown", "html", "codeclimate"
    ]
    assert for_media_type("application/sarif+json").name == "sarif"
    assert for_media_type("application/xml").name == "junit"
    assert for_media_type("application/junit+xml").name == "junit"
    assert for_media_type("text/markdown; charset=utf-8").name == "markdown"
    assert for_media_type("TEXT/HTML").name == "html"
    assert for_media_type("text/plain").name == "text"
    assert for_media_type("image/png") is None
    assert len({f.suffix for f in FORMATS.values() if f.negotiable}) == len(
        [f for f in FORMATS.values() if f.negotiable]
    )
    with pytest.raises(KeyError):
        render("pdf", Diagnosis(status="healthy", summary="", findings=[]))


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained(arch_doc):
    page = render("html", arch_doc, ReportContext(source="s.yaml", text=spec_text()))
    parser = _Collect()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "img" not in tags
    assert not any("src" in a or a.get("rel") == "stylesheet" for _, a in parser.tags)
    assert tags.count("tr") >= len(arch_doc.findings) + len(arch_doc.layers)


def test_the_report_package_does_not_load_torch():
    code = (
        "import sys, gradhealth.report as r, gradhealth.report.locate; "
        "from gradhealth.core.document import Diagnosis; "
        "r.render('sarif', Diagnosis(status='healthy', summary='', findings=[])); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_code_lists_are_the_rule_registrys():
    import gradhealth.analysis.rules  # noqa: F401  (attaches the architecture parts)
    import gradhealth.logs.detectors  # noqa: F401  (attaches the log detectors)
    from gradhealth.core.rules import rules

    assert set(ARCHITECTURE_CODES) == {r.code for r in rules() if r.architecture is not None}
    assert set(LOG_CODES) == {r.code for r in rules() if r.detector is not None}
    assert len(set(ARCHITECTURE_CODES)) == len(ARCHITECTURE_CODES) and len(set(LOG_CODES)) == len(
        LOG_CODES
    )


def test_log_codes_are_the_documented_log_codes():
    # docs/findings.md: one subsection per code under "Findings over time", in the catalog's order
    section = doc_section("Findings over time", documentation(), subsections=True)
    documented = re.findall(r"^#{2,6} `([a-z_]+)`\s*$", section, flags=re.MULTILINE)
    assert documented and tuple(documented) == LOG_CODES


def test_help_anchors_are_docs_headings():
    # each link is a docs page and one of its headings' anchors (GitHub's)
    anchors = {
        f"{path.name}#" + re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for path in DOCUMENTATION_FILES
        for h in re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
    }
    assert set(README_SECTIONS.values()) <= anchors
