"""SARIF 2.1.0 (OASIS), the format code-scanning tools read (GitHub code scanning, GitLab, Azure).

One rule per finding code the check evaluated (its catalog title and description, the docs
page's section as help); one result per finding, at the spec node of the layer it names (line and
column from the parser), at the log line of its first step, or at the file. Remedies are in the
result's Markdown message with their verified before/after figures; a remedy that patches the
spec is also a ``fix`` whose replacement text is the patched node. The schema is vendored in
``schemas/`` and the tests validate against it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from gradhealth import __version__
from gradhealth.core.catalog import FINDINGS, REMEDIES
from gradhealth.core.document import Diagnosis, Finding
from gradhealth.report import locate as _locate
from gradhealth.report.context import (
    UNCHANGED_NOTE,
    ReportContext,
    Where,
    annotation_severity,
    baseline_changes,
    evaluated_codes,
    help_uri,
    locate_findings,
    no_bidi_in,
    not_run,
    num,
    passes_as_unchanged,
    title,
    verified_text,
)

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
LEVEL = {"error": "error", "warning": "warning", "info": "note"}
#: SARIF's result.baselineState for each change against ``--baseline``
BASELINE_STATE = {"new": "new", "worse": "updated", "unchanged": "unchanged"}
FINGERPRINT = "gradhealth/v1"
_MAX_FIXES = 3  # per result: the best remedies; the rest are in the message


def _rule(code: str, doc: Diagnosis, ctx: ReportContext) -> dict[str, Any]:
    entry = FINDINGS.get(code)
    description = entry.description if entry else code
    return {
        "id": code,
        "name": "".join(w.capitalize() for w in code.split("_")),
        "shortDescription": {"text": title(code)},
        "fullDescription": {"text": description},
        "help": {
            "text": description,
            "markdown": f"**{title(code)}**\n\n{description}\n\n"
            f"[Finding codes and thresholds]({help_uri(doc, ctx)})",
        },
        "helpUri": help_uri(doc, ctx),
        "properties": {"tags": ["gradients", "machine-learning"]},
    }


def _message(f: Finding, doc: Diagnosis, ctx: ReportContext) -> dict[str, str]:
    text = [f.summary, f.explanation]
    md = [f"**{f.summary}**", "", f.explanation]
    if ctx.member:  # the location is the archive: the file read inside it is named here
        text.append(f"In the archive's {ctx.member}.")
        md += ["", f"In the archive's `{ctx.member}`."]
    ev = f.evidence
    if ev.metric:
        where = f" at steps {ev.steps[0]}..{ev.steps[-1]}" if ev.steps else ""
        md += [
            "",
            f"Evidence: `{ev.metric}` = {num(ev.value)} (threshold {num(ev.threshold)}){where}.",
        ]
    if ev.layers:
        md += [
            "",
            "Layers: "
            + ", ".join(f"`{name}`" for name in ev.layers[:8])
            + (" …" if len(ev.layers) > 8 else ""),
        ]
    if f.remedies:
        md += ["", "Remedies (best first):", ""]
        for i, r in enumerate(f.remedies, 1):
            tag = "" if r.recommended else " (not recommended)"
            md.append(f"{i}. `{r.id}`{tag}: {r.change} ({verified_text(r, doc)})")
            text.append(f"{i}. {r.id}{tag}: {r.change}")
    return {"text": "\n".join(text), "markdown": "\n".join(md)}


def _region(w: Where) -> dict[str, int] | None:
    if w.line is None:
        return None
    region = {"startLine": w.line}
    if w.column is not None:
        region["startColumn"] = w.column
    if w.end_line is not None:
        region["endLine"] = w.end_line
    if w.end_column is not None:
        region["endColumn"] = w.end_column
    return region


def artifact_uri(path: str) -> str:
    """A repository path as an RFC 3986 URI reference: percent-encoded (UTF-8), slashes kept, so
    a relative path stays relative (a colon in it is encoded too: never read as a scheme)."""
    return quote(path, safe="/")


def _artifact(path: str, ctx: ReportContext | None = None) -> dict[str, str]:
    """A file's artifactLocation: relative to ``%SRCROOT%`` (the repository), or, for an input
    outside it that the path would climb out to (``../a.yaml``), its absolute file URI alone, as
    SARIF takes an absolute URI (no ``uriBaseId``)."""
    if ctx is not None and ctx.source_uri and path == ctx.source:
        return {"uri": ctx.source_uri}
    return {"uri": artifact_uri(path), "uriBaseId": "%SRCROOT%"}


def _location(w: Where, ctx: ReportContext | None = None) -> dict[str, Any]:
    loc: dict[str, Any] = {}
    if w.uri:
        physical: dict[str, Any] = {"artifactLocation": _artifact(w.uri, ctx)}
        region = _region(w)
        if region:
            physical["region"] = region
        loc["physicalLocation"] = physical
    if w.logical:
        loc["logicalLocations"] = [{"fullyQualifiedName": w.logical, "kind": w.logical_kind}]
    return loc


def _fixes(f: Finding, doc: Diagnosis, ctx: ReportContext) -> list[dict[str, Any]]:
    if ctx.text is None or ctx.source is None:
        return []
    fixes: list[dict[str, Any]] = []
    for r in f.remedies:
        if not (r.patch and r.recommended) or len(fixes) == _MAX_FIXES:
            continue
        found = _locate.patch_replacement(ctx.text, r.patch)
        if found is None:
            continue
        s, replacement = found
        entry = REMEDIES.get(r.id)
        fixes.append(
            {
                "description": {
                    "text": f"{entry.title if entry else r.id}: {r.change} "
                    f"({verified_text(r, doc, markdown=False)})"
                },
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(ctx.source, ctx),
                        "replacements": [
                            {
                                "deletedRegion": {
                                    "startLine": s.line,
                                    "startColumn": s.column,
                                    "endLine": s.end_line,
                                    "endColumn": s.end_column,
                                },
                                "insertedContent": {"text": replacement},
                            }
                        ],
                    }
                ],
            }
        )
    return fixes


def _fingerprint(code: str, w: Where) -> str:
    return hashlib.sha256(f"{code}|{w.key}".encode()).hexdigest()[:32]


def sarif_log(doc: Diagnosis, ctx: ReportContext) -> dict[str, Any]:
    """The SARIF log (one run) of ``doc`` as a JSON-ready dict."""
    codes = evaluated_codes(doc)
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for f, w, passing, change in zip(doc.findings, locate_findings(doc, ctx), passes_as_unchanged(doc, ctx),
                                     baseline_changes(doc), strict=True):
        message = _message(f, doc, ctx)
        if change == "unchanged":
            note = f"({UNCHANGED_NOTE}{'; it passes --fail-on new' if passing else ''})"
            message = {key: f"{note} {text}" for key, text in message.items()}
        result: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            # an unchanged finding --fail-on new passes is no error of this change (as in JUnit)
            "level": LEVEL[annotation_severity(f, passing)],
            "message": message,
            "partialFingerprints": {FINGERPRINT: _fingerprint(f.code, w)},
        }
        if change is not None:
            result["baselineState"] = BASELINE_STATE.get(change, "unchanged")
        location = _location(w, ctx)
        if location:
            result["locations"] = [location]
        if w.related and w.uri:
            result["relatedLocations"] = [
                {
                    "id": i,
                    "message": {"text": name or s.pointer},
                    "physicalLocation": {
                        "artifactLocation": _artifact(w.uri, ctx),
                        "region": {
                            "startLine": s.line,
                            "startColumn": s.column,
                            "endLine": s.end_line,
                            "endColumn": s.end_column,
                        },
                    },
                }
                for i, (name, s) in enumerate(w.related, 1)
            ]
        fixes = _fixes(f, doc, ctx)
        if fixes:
            result["fixes"] = fixes
        results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "gradhealth",
                "fullName": "Gradient Health",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": ctx.readme_url,
                "rules": [_rule(code, doc, ctx) for code in codes],
            }
        },
        "columnKind": "unicodeCodePoints",
        "results": results,
        "properties": {"status": doc.status, "summary": doc.summary, "kind": ctx.check_kind(doc),
                       "judged": doc.judged, **({"notJudged": doc.not_judged} if doc.not_judged else {})},
    }
    unjudged = not_run(doc)
    if unjudged:
        # a rule with no result reads as passed: one that had nothing to judge (a log with no
        # history) is said as a notification of the invocation, on its rule (newuser14 #1)
        run["invocations"] = [{
            "executionSuccessful": True,
            "toolExecutionNotifications": [
                {"level": "note", "message": {"text": why},
                 "associatedRule": {"id": code, "index": index[code]}}
                for code, why in unjudged.items() if code in index]}]
        run["properties"]["notRun"] = [code for code in codes if code in unjudged]
    if ctx.source:
        run["artifacts"] = [{"location": _artifact(ctx.source, ctx)}]
        # One category per checked file: code scanning keeps each file's alerts apart.
        run["automationDetails"] = {"id": f"gradhealth/{ctx.check_kind(doc)}/{ctx.source}/"}
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render_sarif(doc: Diagnosis, ctx: ReportContext) -> str:
    """SARIF 2.1.0 JSON text."""
    return json.dumps(no_bidi_in(sarif_log(doc, ctx)), indent=2, ensure_ascii=False)
