"""Markdown read back through a Markdown parser (markdown-it-py, GFM tables): the findings table,
the remedy's snippet, and a Mermaid chart whose numbers are the layers' log10 norms."""

from __future__ import annotations

import math

from markdown_it import MarkdownIt

from gradhealth.report import ReportContext, render
from gradhealth.report.markdown import CHART_POINTS

from .helpers import document, finding, remedy, spec_text

MD = MarkdownIt("commonmark").enable("table")


def tables(tokens):
    """Each table as rows of cell texts (header first)."""
    out, rows, row, in_cell = [], [], [], False
    for t in tokens:
        if t.type == "table_open":
            rows = []
        elif t.type == "tr_open":
            row = []
        elif t.type in ("th_open", "td_open"):
            in_cell = True
        elif t.type == "inline" and in_cell:
            row.append(t.content)
            in_cell = False
        elif t.type == "tr_close":
            rows.append(row)
        elif t.type == "table_close":
            out.append(rows)
    return out


def test_architecture_report(arch_doc):
    text = render("markdown", arch_doc, ReportContext(source="specs/deep.yaml", text=spec_text()))
    tokens = MD.parse(text)
    findings_table = tables(tokens)[0]
    assert findings_table[0] == ["severity", "code", "where", "finding"]
    assert len(findings_table) - 1 == len(arch_doc.findings)
    line = next(i for i, x in enumerate(spec_text().splitlines(), 1) if "activation: sigmoid" in x)
    assert any(f"specs/deep.yaml:{line}" in row[2] for row in findings_table[1:])
    fences = {t.info: t.content for t in tokens if t.type == "fence"}
    best = arch_doc.findings[0].remedies[0]
    assert best.snippet.strip() in fences["python"]
    # The before/after table of the top verified remedy.
    before_after = next(t for t in tables(tokens) if t[0] == ["metric", "before", "after", "fixed"])
    assert before_after[1][1:] == [
        f"{best.verified.before:.3g}",
        f"{best.verified.after:.3g}",
        "yes",
    ]
    chart = fences["mermaid"].splitlines()
    assert chart[0] == "xychart-beta"
    bars = next(x for x in chart if x.strip().startswith("bar ["))
    values = [float(v) for v in bars.strip()[len("bar [") : -1].split(",")]
    expected = [
        math.log10(layer.grad_norm) for layer in arch_doc.layers if layer.grad_norm is not None
    ]
    assert len(values) == len(expected) and all(
        abs(a - b) < 1e-3 for a, b in zip(values, expected, strict=True)
    )


def test_long_nets_are_sampled_to_a_readable_axis():
    layers = [
        {
            "name": f"layers[{i}].linear",
            "pointer": f"/layers/{i}",
            "type": "linear",
            "grad_norm": 10.0**-i,
            "output_grad_norm": 1.0,
        }
        for i in range(150)
    ]
    text = render("markdown", document([], layers=layers), ReportContext())
    (chart,) = [t.content for t in MD.parse(text) if t.type == "fence" and t.info == "mermaid"]
    bars = next(x for x in chart.splitlines() if x.strip().startswith("bar ["))
    values = [float(v) for v in bars.strip()[5:-1].split(",")]
    assert (
        len(values) == CHART_POINTS and values[0] == 0 and values[-1] == -40.0
    )  # 1e-149 is at the floor


def test_pipes_in_summaries_stay_inside_their_cell():
    doc = document(
        [
            finding("saturation", "warning", "a | b | c"),
            finding("dead_units", "error", "two\nlines", remedies=[remedy("he_init")]),
        ]
    )
    rows = tables(MD.parse(render("markdown", doc, ReportContext())))[0]
    assert [len(r) for r in rows] == [4, 4, 4]
    assert rows[1][3] == "a | b | c" and rows[2][3] == "two lines"


def test_a_log_report_has_no_chart_and_a_healthy_one_no_table(log_doc):
    tokens = MD.parse(render("markdown", log_doc, ReportContext(source="main.log")))
    assert not any(t.type == "fence" and t.info == "mermaid" for t in tokens)
    healthy = MD.parse(render("markdown", document([]), ReportContext()))
    assert not tables(healthy) and any(
        "healthy" in t.content for t in healthy if t.type == "inline"
    )
