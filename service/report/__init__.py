"""Reports of a diagnosis document in the formats people and CI systems read.

Every format is a pure function ``(Diagnosis, ReportContext) -> str`` registered once in
:data:`FORMATS` with its media type and file suffix, so adding an output format is one entry here
(plus its module). The command line's ``--format`` choices and the API's content negotiation both
read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gradhealth.core.document import Diagnosis
from gradhealth.report.codeclimate import render_codeclimate
from gradhealth.report.context import ReportContext, input_label
from gradhealth.report.github import github_commands, render_github, write_step_summary
from gradhealth.report.html import render_html
from gradhealth.report.junit import render_junit
from gradhealth.report.markdown import render_markdown
from gradhealth.report.sarif import render_sarif, sarif_log
from gradhealth.report.text import render_text

Renderer = Callable[[Diagnosis, ReportContext], str]

__all__ = [
    "FORMATS",
    "Format",
    "Renderer",
    "ReportContext",
    "for_media_type",
    "github_commands",
    "render",
    "render_text",
    "sarif_log",
    "write_step_summary",
]


@dataclass(frozen=True)
class Format:
    """One output format: how to render it and how to serve or save it."""

    name: str
    media_type: str
    suffix: str
    render: Renderer
    description: str
    also_accepts: tuple[str, ...] = ()  # further media types that select it in an Accept header
    negotiable: bool = True  # False: only by name (its media type belongs to another format)


def _text(doc: Diagnosis, ctx: ReportContext) -> str:
    return render_text(doc, layers=ctx.layers, source=ctx.source,
                       heading=input_label(doc, ctx, prefer_name=True), timings=ctx.timings)


def _json(doc: Diagnosis, ctx: ReportContext) -> str:
    return doc.model_dump_json(indent=2)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "text", "text/plain; charset=utf-8", ".txt", _text, "the readable report (the default)"
        ),
        Format("json", "application/json", ".json", _json, "the diagnosis document"),
        Format(
            "sarif",
            "application/sarif+json",
            ".sarif",
            render_sarif,
            "SARIF 2.1.0 for code scanning (GitHub, GitLab): findings on the spec's own lines",
        ),
        Format(
            "junit",
            "application/junit+xml",
            ".xml",
            render_junit,
            "JUnit XML (GitLab, Jenkins): one test case per finding code checked",
            also_accepts=("application/xml", "text/xml"),
        ),
        Format(
            "github",
            "text/plain; charset=utf-8",
            ".txt",
            render_github,
            "GitHub Actions workflow commands (::error/::warning annotations)",
            negotiable=False,
        ),
        Format(
            "markdown",
            "text/markdown; charset=utf-8",
            ".md",
            render_markdown,
            "Markdown: a step summary or pull-request comment, with a Mermaid gradient chart",
        ),
        Format(
            "html", "text/html; charset=utf-8", ".html", render_html, "a self-contained HTML page"
        ),
        Format(
            "codeclimate",
            "application/json",
            ".json",
            render_codeclimate,
            "GitLab Code Quality (Code Climate JSON): findings in merge requests",
            negotiable=False,
        ),
    )
}


def render(name: str, doc: Diagnosis, context: ReportContext | None = None) -> str:
    """``doc`` in format ``name`` (a key of :data:`FORMATS`); KeyError for an unknown name."""
    return FORMATS[name].render(doc, context or ReportContext())


def for_media_type(media_type: str) -> Format | None:
    """The format a media type (one entry of an Accept header, parameters ignored) asks for."""
    wanted = media_type.split(";")[0].strip().lower()
    for f in FORMATS.values():
        if f.negotiable and wanted in (f.media_type.split(";")[0], *f.also_accepts):
            return f
    return None
