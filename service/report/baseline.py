"""The baseline comparison (``gradhealth check --baseline``) in the text and Markdown reports."""

from __future__ import annotations

from gradhealth.core.document import BaselineComparison, Diagnosis

_ORDER = ("new", "worse", "gone", "unchanged")


def _headline(b: BaselineComparison) -> str:
    against = f" {b.source}" if b.source else ""
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
    return " ".join(text.split()).replace("|", "\\|")


def baseline_markdown(doc: Diagnosis) -> list[str]:
    """Lines for the Markdown report (none without a baseline)."""
    b = doc.baseline
    if b is None:
        return []
    out = ["", "### Compared with the baseline", "", _headline(b) + "."]
    shown = [e for change in _ORDER[:3] for e in b.findings if e.change == change]
    if shown:
        out += ["", "| change | severity | code | where | why |", "|---|---|---|---|---|"]
        for e in shown:
            why = "; ".join(e.reasons) or e.summary
            out.append(f"| **{e.change}** | {e.severity} | `{e.code}` | {_cell(e.where or '')} "
                       f"| {_cell(why)} |")
    return out
