"""The baseline comparison (``gradhealth check --baseline``) in the text and Markdown reports.

Every string of a comparison is user input: the baseline document is a file the user gives (its
codes, series, summaries) and ``source`` is its path. The text report puts each line through
``one_line`` (text.py); the Markdown report escapes each string here, as it does its own.
"""

from __future__ import annotations

from collections.abc import Callable

from gradhealth.core.document import BaselineComparison, Diagnosis
from gradhealth.report.context import md_code, md_text, one_line

_ORDER = ("new", "worse", "gone", "unchanged")


def _headline(b: BaselineComparison, quote: Callable[[str], str] = str) -> str:
    against = f" {quote(b.source)}" if b.source else ""
    return (f"compared with the baseline{against}: {b.new} new, {b.worse} worse, {b.gone} gone, "
            f"{b.unchanged} unchanged; {b.regressions} regression(s) at warning or above")


def baseline_text(doc: Diagnosis) -> list[str]:
    """Lines for the text report (none without a baseline)."""
    b = doc.baseline
    if b is None:
        return []
    lines = ["", _headline(b)]
    for change in _ORDER[:3]:
        for e in (e for e in b.findings if e.change == change):
            where = f" at {e.where}" if e.where else ""
            lines.append(f"    {change:5s} {e.code} ({e.severity}){where}: {e.summary}")
            lines += [f"          {r}" for r in e.reasons]
    return lines


def _cell(text: str) -> str:
    """Literal text for one table cell: one line, Markdown and HTML escaped (pipes too)."""
    return md_text(" ".join(one_line(text).split()))


def baseline_markdown(doc: Diagnosis) -> list[str]:
    """Lines for the Markdown report (none without a baseline)."""
    b = doc.baseline
    if b is None:
        return []
    out = ["", "### Compared with the baseline", "", _headline(b, md_code) + "."]
    shown = [e for change in _ORDER[:3] for e in b.findings if e.change == change]
    if shown:
        out += ["", "| change | severity | code | where | why |", "|---|---|---|---|---|"]
        for e in shown:
            why = "; ".join(e.reasons) or e.summary
            # A baseline's code need not be in the catalog: any string is shown as a literal span.
            out.append(f"| **{e.change}** | {e.severity} | {md_code(e.code, in_table=True)} "
                       f"| {_cell(e.where or '')} | {_cell(why)} |")
    return out
