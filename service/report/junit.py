"""JUnit XML as GitLab and Jenkins read it: one test case per finding code the check evaluated.

``testcase@classname`` is the checked input and ``@name`` the finding code. A code without a
finding is a passed case, so dashboards count what was checked, not only what failed; a code that had
nothing to judge (:func:`~gradhealth.report.context.not_run`: a log with no history) is a skipped case. A finding
that fails the check is a failed case (``failure@message`` = its summary, ``@type`` = its
severity, the body = evidence and remedies): at or above ``--fail-on`` when one was given (the exit
code's bar, ``ReportContext.fail_on``), else every warning or error. A finding below it (an
informational one, a warning under ``--fail-on error``, an unchanged one under ``new``) is a passed
case whose ``system-out`` says what was noted. A code with several findings (one per series, say)
has one case per finding.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from gradhealth.core.document import SEVERITY_RANK, Diagnosis, Finding, unjudged_by
from gradhealth.report.context import (
    UNCHANGED_NOTE,
    ReportContext,
    Where,
    baseline_changes,
    evaluated_codes,
    input_kind_word,
    input_label,
    input_path,
    locate_findings,
    not_run,
    num,
    one_line,
    verified_text,
)

# Characters XML 1.0 cannot hold at all (a control character in a layer's or series' name).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def scrub_xml(root: ET.Element) -> None:
    """Every attribute and text node of ``root`` as XML 1.0 can hold it, at serialisation: an
    attribute (a name, the source, a summary) on one line; a text node (a finding's body, whose
    lines :func:`_body` builds with every user string on one line) keeps its own line breaks."""
    for el in root.iter():
        for key, value in el.attrib.items():
            el.set(key, _xml_text(one_line(value)))
        if el.text:
            el.text = _xml_text(el.text)
        if el.tail:
            el.tail = _xml_text(el.tail)


def _place(w: Where) -> str:
    if w.uri is None:
        return w.logical or ""
    at = f"{w.uri}:{w.line}" if w.line else w.uri
    return f"{at} ({w.logical})" if w.logical else at


def _body(f: Finding, w: Where, doc: Diagnosis) -> str:
    lines = [f"{f.severity}: {f.summary}", f"why: {f.explanation}"]
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
    # every line on its own: a user string (a series, a layer, the source) cannot start a line,
    # where a CI runner that prints the file reads commands (GitHub's `::error::`)
    return "\n".join(one_line(line) for line in lines)


def _case(code: str, classname: str, ctx: ReportContext) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=code)
    if ctx.source:
        case.set("file", ctx.source)
    return case


def failing(doc: Diagnosis, fail_on: str | None) -> list[bool]:
    """Which findings of ``doc`` fail under ``--fail-on`` (the exit code's rule): at least that
    severe; ``new``: a new or worse finding at warning or above (every one without a baseline);
    ``never``: none; None (no bar given): every warning and error finding."""
    if fail_on is None:
        fail_on = "warning"
    if fail_on == "never":
        return [False] * len(doc.findings)
    if fail_on == "new":
        at_least = [SEVERITY_RANK[f.severity] >= SEVERITY_RANK["warning"] for f in doc.findings]
        if doc.baseline is None:
            return at_least
        # the comparison lists the current findings first, in order, then the gone ones
        changes = [e.change for e in doc.baseline.findings if e.change != "gone"]
        if len(changes) != len(doc.findings):
            return at_least
        return [a and c in ("new", "worse") for a, c in zip(at_least, changes, strict=True)]
    bar = SEVERITY_RANK.get(fail_on, SEVERITY_RANK["warning"])
    return [SEVERITY_RANK[f.severity] >= bar for f in doc.findings]


def render_junit(doc: Diagnosis, ctx: ReportContext) -> str:
    """JUnit XML text (UTF-8, with declaration). A finding below ``ctx.fail_on`` (the bar the
    exit code follows) is a passed case with the finding in its ``system-out``."""
    # the input's path (the saved document's, for one rendered again), never only a model's class
    # name, which several inputs share (newuser12 #5)
    classname = input_path(doc, ctx) or doc.name or doc.kind
    places = locate_findings(doc, ctx)
    fails = failing(doc, ctx.fail_on)
    if ctx.fail_on_unjudged:
        # --fail-on-unjudged: the note that nothing was judged fails, as the exit code does
        unjudged_note = unjudged_by(doc.findings)
        fails = [fail or f is unjudged_note for f, fail in zip(doc.findings, fails, strict=True)]
    by_code: dict[str, list[tuple[Finding, Where, bool, str | None]]] = {}
    for f, w, fail, change in zip(doc.findings, places, fails, baseline_changes(doc), strict=True):
        by_code.setdefault(f.code, []).append((f, w, fail, change))
    cases: list[ET.Element] = []
    unjudged = not_run(doc)
    for code in evaluated_codes(doc):
        if code in unjudged:  # nothing to judge (a log with no history): skipped, never passed
            cases.append(case := _case(code, classname, ctx))
            ET.SubElement(case, "skipped", message=unjudged[code])
        elif code not in by_code:
            cases.append(_case(code, classname, ctx))  # evaluated, nothing found: passed
        for f, w, fail, change in by_code.get(code, []):
            case = _case(code, classname, ctx)
            body = _body(f, w, doc)
            if change == "unchanged":
                body = f"({UNCHANGED_NOTE})\n{body}"
            if fail:
                failure = ET.SubElement(case, "failure", message=f.summary, type=f.severity)
                failure.text = body
            else:
                ET.SubElement(case, "system-out").text = body
            cases.append(case)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "gradhealth", **counts, "skipped": str(skipped)})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": f"gradhealth {input_kind_word(doc, ctx)}: {input_label(doc, ctx, word=False)}", **counts,
         "skipped": str(skipped)},
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="status", value=doc.status)
    ET.SubElement(props, "property", name="summary", value=doc.summary)
    ET.SubElement(props, "property", name="judged", value="true" if doc.judged else "false")
    if doc.not_judged:
        ET.SubElement(props, "property", name="not_judged", value=doc.not_judged)
    suite.extend(cases)
    scrub_xml(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
