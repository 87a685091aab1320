"""GitLab Code Quality (a subset of the Code Climate issue format), so findings show in merge
requests: a JSON array of ``{description, check_name, fingerprint, severity, location: {path,
lines: {begin}}}``.

GitLab needs a path and a line for every issue: a finding without a line (a binary log, a model
file, a spec read from stdin) is put on line 1 of the checked file. The fingerprint is SARIF's
(code + location, independent of line shifts), so the merge-request widget matches an issue across
pipelines and shows only new and fixed ones.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gradhealth.core.document import Diagnosis
from gradhealth.report.context import (
    ReportContext,
    finding_title,
    locate_findings,
    no_bidi_in,
    remedy_label,
    top_remedy,
)

SEVERITY = {"error": "critical", "warning": "major", "info": "info"}
UNKNOWN_PATH = "gradhealth-input"  # GitLab requires a path; a spec from stdin has none


def codeclimate_issues(doc: Diagnosis, ctx: ReportContext) -> list[dict[str, Any]]:
    """One Code Quality issue per finding, in document order."""
    issues: list[dict[str, Any]] = []
    seen: set[str] = set()
    for f, w in zip(doc.findings, locate_findings(doc, ctx), strict=True):
        digest = hashlib.sha256(f"{f.code}|{w.key}".encode())
        fingerprint = digest.hexdigest()[:32]
        n = 1
        while fingerprint in seen:  # two findings of one code at one place stay two issues
            n += 1
            fingerprint = hashlib.sha256(f"{f.code}|{w.key}|{n}".encode()).hexdigest()[:32]
        seen.add(fingerprint)
        description = f"{f.code}: {f.summary}"
        best = top_remedy(f)
        if best is not None:
            description += f"; {remedy_label(best).lower()}: {best.id}: {best.change}"
        issues.append({
            "type": "issue",
            "check_name": f.code,
            "description": description,
            "content": {"body": f"**{finding_title(f)}**\n\n{f.explanation}"},
            "categories": ["Bug Risk"],
            "severity": SEVERITY[f.severity],
            "fingerprint": fingerprint,
            "location": {"path": w.uri or ctx.source or UNKNOWN_PATH,
                         # a line of no file (w.uri None) is no line of the path named
                         "lines": {"begin": (w.line if w.uri else None) or 1}},
        })
    return issues


def render_codeclimate(doc: Diagnosis, ctx: ReportContext) -> str:
    """The Code Quality report as JSON text."""
    return json.dumps(no_bidi_in(codeclimate_issues(doc, ctx)), indent=2, ensure_ascii=False)
