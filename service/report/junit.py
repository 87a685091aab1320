"""JUnit XML as GitLab and Jenkins read it: one test case per finding code the check evaluated.

``testcase@classname`` is the checked input and ``@name`` the finding code. A code without a
finding is a passed case, so dashboards count what was checked, not only what failed. Each
warning or error finding is a failed case (``failure@message`` = its summary, ``@type`` = its
severity, the body = evidence and remedies); an informational finding is a passed case whose
``system-out`` says what was noted. A code with several findings (one per series, say) has one
case per finding.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gradhealth.core.document import Diagnosis, Finding
from gradhealth.report.context import (
    ReportContext,
    Where,
    evaluated_codes,
    locate_findings,
    num,
    verified_text,
)

FAILING = ("warning", "error")


def _place(w: Where) -> str:
    if w.uri is None:
        return w.logical or ""
    at = f"{w.uri}:{w.line}" if w.line else w.uri
    return f"{at} ({w.logical})" if w.logical else at


def _body(f: Finding, w: Where, doc: Diagnosis) -> str:
    lines = [f"{f.severity}: {f.summary}", f.explanation]
    place = _place(w)
    if place:
        lines.append(f"where: {place}")
    evidence = f.evidence.model_dump(exclude_none=True)
    if evidence:
        lines.append("evidence:")
        for key, value in evidence.items():
            shown = (
                num(value)
                if isinstance(value, float)
                else (", ".join(map(str, value)) if isinstance(value, list) else value)
            )
            lines.append(f"  {key}: {shown}")
    if f.remedies:
        lines.append("remedies (best first):")
        for i, r in enumerate(f.remedies, 1):
            tag = "" if r.recommended else " (not recommended)"
            lines.append(
                f"  {i}. {r.id}{tag}: {r.change} [{verified_text(r, doc, markdown=False)}]"
            )
    return "\n".join(lines)


def _case(code: str, classname: str, ctx: ReportContext) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=code)
    if ctx.source:
        case.set("file", ctx.source)
    return case


def render_junit(doc: Diagnosis, ctx: ReportContext) -> str:
    """JUnit XML text (UTF-8, with declaration)."""
    classname = ctx.source or doc.name or doc.kind
    places = locate_findings(doc, ctx)
    by_code: dict[str, list[tuple[Finding, Where]]] = {}
    for f, w in zip(doc.findings, places, strict=True):
        by_code.setdefault(f.code, []).append((f, w))
    cases: list[ET.Element] = []
    for code in evaluated_codes(doc):
        if code not in by_code:
            cases.append(_case(code, classname, ctx))  # evaluated, nothing found: passed
        for f, w in by_code.get(code, []):
            case = _case(code, classname, ctx)
            body = _body(f, w, doc)
            if f.severity in FAILING:
                failure = ET.SubElement(case, "failure", message=f.summary, type=f.severity)
                failure.text = body
            else:
                ET.SubElement(case, "system-out").text = body
            cases.append(case)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "gradhealth", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": f"gradhealth {ctx.check_kind(doc)}: {classname}", **counts, "skipped": "0"},
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="status", value=doc.status)
    ET.SubElement(props, "property", name="summary", value=doc.summary)
    suite.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
