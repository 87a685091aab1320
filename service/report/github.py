"""GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` per finding.

GitHub shows at most 10 annotations of each kind per step, so the most severe come first, at most
10 of each kind, and when some do not fit, a last notice says how many more the report holds (the
notices leave room for it). :func:`write_step_summary` appends the Markdown report to the job's
summary (``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gradhealth.core.document import Diagnosis, Finding, unjudged_by
from gradhealth.report.context import (
    UNCHANGED_NOTE,
    ReportContext,
    Where,
    annotation_severity,
    baseline_changes,
    by_severity,
    finding_title,
    locate_findings,
    no_bidi,
    passes_as_unchanged,
    remedy_label,
    top_remedy,
    verified_text,
)
from gradhealth.report.refusal import Refusal

COMMAND = {"error": "error", "warning": "warning", "info": "notice"}
PER_KIND = 10  # GitHub's limit per annotation kind and step


# Control characters other than CR and LF (which are escaped), and Unicode's line separators: a
# user string's (a terminal escape, a U+2028) become a space.
_OTHER_BREAKS = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]+")


def escape_data(s: str) -> str:
    """A command's message, escaped as @actions/core does (other control characters: spaces)."""
    return _OTHER_BREAKS.sub(" ", no_bidi(s)).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    """A command property's value (``file``, ``title``...), escaped as @actions/core does."""
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


def _command(kind: str, message: str, **props: str | int | None) -> str:
    shown = ",".join(f"{k}={escape_property(str(v))}" for k, v in props.items() if v is not None)
    return f"::{kind}{' ' + shown if shown else ''}::{escape_data(message)}"


def invalid_input_commands(path: str, refusal: Refusal) -> list[str]:
    """``::error`` commands for an input the check refused (exit 2), on the file ``path``: one per
    problem at the line its JSON pointer names (:meth:`Refusal.placed`, GitHub's 10 per kind),
    else one at the file for the whole error; a CI run shows them on the file as a finding's."""
    title = f"gradhealth: {refusal.title.lower()}"
    out = [_command("error", message, file=path, line=line, col=col, title=title)
           for message, line, col in refusal.placed(10)]
    if len(refusal.problems) > 10:
        out.append(_command("notice", f"{len(refusal.problems) - 10} more problem(s) in {path}; see the job log",
                            file=path))
    return out


def _message(f: Finding, doc: Diagnosis, ctx: ReportContext | None = None) -> str:
    lines = [f.summary]
    if ctx is not None and ctx.member:
        lines.append(f"In the archive's {ctx.member}")
    best = top_remedy(f)
    if best is not None and best.verified is None and doc.kind != "logs" and len(f.remedies) > 1:
        # nothing simulated: the first by kind of change is no more "the" fix than the others, and
        # the simulation may show it fixes nothing (newuser6). --no-verify is named only where it
        # was given (as pre-commit runs it); a model file's structural changes are never simulated
        # on its graph, with or without it (newuser15 #6)
        shown = ", ".join(r.id for r in f.remedies[:4])
        if any(r.unverified == "skipped" for r in f.remedies):
            lines.append(f"Possible fixes, not simulated (check without --no-verify to see which work): {shown}")
        else:
            lines.append(f"Possible fixes, not simulated (changes the check cannot make and measure on this "
                         f"model): {shown}")
    elif best is not None:
        # "Fix:" names a verified fix only; a log's remedies are read from it, never simulated
        lines.append(f"{remedy_label(best)}: {best.id}: {best.change} ({verified_text(best, doc, markdown=False)})")
    return "\n".join(lines)


def _change_note(change: str | None, passing: bool) -> str | None:
    """The first line of a finding's annotation against a baseline: ``(unchanged from the baseline;
    it passes --fail-on new)``, ``(new since the baseline)``, ``(worse than in the baseline)``."""
    if change is None:
        return None
    if change == "new":
        return "(new since the baseline)"
    if change == "worse":
        return "(worse than in the baseline)"
    return f"({UNCHANGED_NOTE}{'; it passes --fail-on new' if passing else ''})"


def github_commands(doc: Diagnosis, ctx: ReportContext) -> list[str]:
    """The workflow commands for ``doc``, most severe first, within GitHub's per-kind caps."""
    return github_commands_for([(doc, ctx)])


def github_commands_for(reports: list[tuple[Diagnosis, ReportContext]]) -> list[str]:
    """The workflow commands of several checks in one step (``gradhealth check a.yaml b.csv``):
    GitHub's caps are per step, so they apply once across all of them, most severe first (each
    check's own order, then the inputs' order, within a severity)."""
    placed: list[tuple[Finding, Diagnosis, ReportContext, Where]] = []
    level: dict[int, str] = {}  # id(finding): the command it is annotated with
    note: dict[int, str | None] = {}
    unjudged: set[int] = set()  # id(finding): the note that the run's trends were not judged
    for doc, ctx in reports:
        short = unjudged_by(doc.findings)
        if short is not None:
            unjudged.add(id(short))
        placed += [(f, doc, ctx, w) for f, w in zip(doc.findings, locate_findings(doc, ctx), strict=True)]
        for f, passing, change in zip(doc.findings, passes_as_unchanged(doc, ctx), baseline_changes(doc),
                                      strict=True):
            level[id(f)] = COMMAND[annotation_severity(f, passing)]
            note[id(f)] = _change_note(change, passing)
            if f is short and ctx.fail_on_unjudged:
                level[id(f)] = COMMAND["error"]  # it fails the step, as the exit code does (logsweep98)
    rank = {id(f): i for i, f in enumerate(by_severity([f for f, _, _, _ in placed]))}
    ordered = sorted(placed, key=lambda item: rank[id(item[0])])
    count = {k: sum(1 for f, *_ in ordered if level[id(f)] == k) for k in COMMAND.values()}
    room = dict.fromkeys(COMMAND.values(), PER_KIND)
    if any(n > PER_KIND for n in count.values()):
        room["notice"] = PER_KIND - 1  # the last notice says how many more there are
    shown: list[str] = []
    for f, doc, ctx, w in ordered:
        kind = level[id(f)]
        if room[kind] == 0:
            continue
        room[kind] -= 1
        message = _message(f, doc, ctx)
        if note[id(f)]:
            message = f"{note[id(f)]}\n{message}"
        # a line with no file=: GitHub has nothing to anchor it to (newuser16 #3, an architecture job's
        # report with no ?source=), so the annotation is the run's, with no line
        anchored = w.uri is not None
        shown.append(
            _command(
                kind,
                message,
                file=w.uri,
                line=w.line if anchored else None,
                endLine=w.end_line if anchored else None,
                col=w.column if anchored else None,
                endColumn=w.end_column if anchored and w.line == w.end_line else None,
                title=f"{f.code}: " + ("NOT JUDGED (too little data)" if id(f) in unjudged else finding_title(f)),
            )
        )
    hidden = len(ordered) - len(shown)
    if hidden:
        shown.append(
            _command(
                "notice",
                f"{hidden} more finding(s) are in the report (not shown here: "
                f"GitHub shows {PER_KIND} annotations of each kind per step).",
                title="gradhealth: more findings",
            )
        )
    return shown


def render_github(doc: Diagnosis, ctx: ReportContext) -> str:
    """The workflow commands as lines for a step's standard output."""
    return "\n".join(github_commands(doc, ctx))


def write_step_summary(
    doc: Diagnosis, ctx: ReportContext, path: str | os.PathLike[str] | None = None
) -> bool:
    """Append the Markdown report to ``path`` (default: ``$GITHUB_STEP_SUMMARY``); False when
    there is no summary file to write to."""
    from gradhealth.report.markdown import render_markdown

    target = path if path is not None else os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with Path(target).open("a", encoding="utf-8") as f:
        f.write(render_markdown(doc, ctx) + "\n\n")
    return True
