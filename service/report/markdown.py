"""Markdown: a job's step summary or a pull-request comment, with nothing to host.

Status, a findings table, the top verified remedy per finding (its snippet and before/after
figures), and for architecture checks a Mermaid ``xychart-beta`` of the per-layer gradient norms
in log10, which GitHub renders.
"""

from __future__ import annotations

import math
import re

from gradhealth.core.document import Diagnosis, LayerReport
from gradhealth.report.baseline import baseline_markdown
from gradhealth.report.context import (
    UNCHANGED_NOTE,
    ReportContext,
    Where,
    annotation_severity,
    baseline_changes,
    finding_title,
    input_label,
    locate_findings,
    md_code,
    md_text,
    num,
    one_line,
    passes_as_unchanged,
    top_remedy,
    verified_text,
)

STATUS_MARK = {"healthy": "✅", "warning": "⚠️", "unhealthy": "❌"}
#: A healthy document whose trends were not judged (``judged`` false): no green tick (logsweep98)
NOT_JUDGED_MARK = "❔"
SEVERITY_MARK = {"error": "❌ error", "warning": "⚠️ warning", "info": "ℹ️ info"}
CHANGE_NOTE = {"new": "new since the baseline", "worse": "worse than in the baseline", "unchanged": UNCHANGED_NOTE}
CHART_POINTS = 60  # an x axis past this many labels is unreadable: longer nets are sampled evenly
LOG10_FLOOR = -40.0  # a zero norm is charted at this floor (log10 of 0 is -inf)


def cell(text: str) -> str:
    """Text for one table cell: one line, literal (Markdown and HTML escaped, pipes too)."""
    return md_text(" ".join(one_line(text).split()))


def fenced(code: str, lang: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{code.rstrip()}\n{fence}"


def _where(w: Where) -> str:
    if w.uri is None:
        return md_code(w.logical, in_table=True) if w.logical else ""
    at = f"{w.uri}:{w.line}" if w.line else w.uri
    return md_code(at, in_table=True) + (f" ({md_code(w.logical, in_table=True)})" if w.logical else "")


def _log10(x: float) -> float:
    return max(LOG10_FLOOR, math.log10(x)) if x > 0 else LOG10_FLOOR


def _label(name: str) -> str:
    return '"' + one_line(name).replace('"', "'") + '"'


def gradient_chart(layers: list[LayerReport]) -> str | None:
    """A Mermaid ``xychart-beta`` of log10 ||dL/dW|| (bars) and, where every charted layer has it,
    log10 ||dL/dh|| (line) per layer; None when no layer has a gradient norm."""
    charted = [layer for layer in layers if layer.grad_norm is not None]
    if not charted:
        return None
    if len(charted) > CHART_POINTS:
        step = (len(charted) - 1) / (CHART_POINTS - 1)
        charted = [charted[round(i * step)] for i in range(CHART_POINTS)]
    bars = [_log10(layer.grad_norm or 0.0) for layer in charted]
    out_norms = [layer.output_grad_norm for layer in charted]
    lines = [
        "xychart-beta",
        '    title "log10 gradient norm per layer (bars: dL/dW'
        + (', line: dL/dh)"' if all(x is not None for x in out_norms) else ')"'),
        "    x-axis [" + ", ".join(_label(layer.name) for layer in charted) + "]",
        '    y-axis "log10 norm"',
        "    bar [" + ", ".join(f"{v:.3f}" for v in bars) + "]",
    ]
    if all(x is not None for x in out_norms):
        lines.append("    line [" + ", ".join(f"{_log10(x or 0.0):.3f}" for x in out_norms) + "]")
    return fenced("\n".join(lines), "mermaid")


def render_markdown(doc: Diagnosis, ctx: ReportContext) -> str:
    """The Markdown report."""
    name = input_label(doc, ctx, prefer_name=True)
    out = [
        (f"## {NOT_JUDGED_MARK} Gradient Health: {md_text(name)}: **not judged** (too little data; nothing found)"
         if doc.status == "healthy" and not doc.judged else
         f"## {STATUS_MARK[doc.status]} Gradient Health: {md_text(name)}: **{doc.status}**"),
        "",
        md_text(doc.summary),
    ]
    if ctx.source:
        out += ["", f"Checked: {md_code(ctx.source)} ({ctx.check_kind(doc)})"]
    if doc.simulation is not None and doc.simulation.notes:
        out += [""] + [f"> Note: {md_text(n)}" for n in doc.simulation.notes]  # as text and HTML show them
    places = locate_findings(doc, ctx)
    if doc.findings:
        out += ["", "| severity | code | where | finding |", "|---|---|---|---|"]
        for f, w, passing, change in zip(doc.findings, places, passes_as_unchanged(doc, ctx),
                                         baseline_changes(doc), strict=True):
            # an unchanged finding --fail-on new passes is marked as a warning, as in the annotations
            mark = SEVERITY_MARK[annotation_severity(f, passing)]
            if passing and f.severity == "error":
                mark += " (an error)"
            if change is not None:
                mark += f" · {CHANGE_NOTE.get(change, UNCHANGED_NOTE)}"
            out.append(f"| {mark} | `{f.code}` | {_where(w)} | {cell(f.summary)} |")
        out += ["", "### Remedies"]
        for f in doc.findings:
            best = top_remedy(f)
            out += ["", f"#### `{f.code}`: {finding_title(f)}", ""]
            if best is None:
                out.append("No remedy proposed: " + md_text(f.explanation))
                continue
            out.append(f"**`{best.id}`**: {md_text(best.change)} ({verified_text(best, doc)})")
            if best.verified is not None:
                v = best.verified
                out += [
                    "",
                    "| metric | before | after | fixed |",
                    "|---|---|---|---|",
                    f"| {md_code(v.metric, in_table=True)} | {num(v.before)} | {num(v.after)} "
                    f"| {'not judged' if v.not_judged else 'not measured' if v.not_measured else 'on fresh weights' if v.fixed and v.fresh_weights else 'yes' if v.fixed else 'no'} |",
                ]
            if best.snippet:
                out += ["", fenced(best.snippet, "python")]
    if doc.kind == "architecture":
        chart = gradient_chart(doc.layers)
        if chart:
            out += ["", "### Gradient norms per layer", "", chart]
    out += baseline_markdown(doc)
    return "\n".join(out) + "\n"
