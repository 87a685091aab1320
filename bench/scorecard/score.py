"""Score the log check (``gradhealth.check_logs``) and the AUTOTRAINER baseline on the corpus.

Per case and code:

- **hit**: an expected code is found (any severity) and located: each expected step span holds at
  least one step the finding names (``evidence.steps`` or ``evidence.spike_steps``); a finding
  that names no step counts as located. An expected code not found, or found elsewhere, is a miss.
- **false alarm**: a forbidden code is found at the case's ``forbidden_from`` severity or above
  (generated runs: any severity; the real logs, whose only label is "trained well": warning).
- Codes that are neither (a blow-up that also spikes) are not judged.

Precision = hits / (hits + false alarms), recall = hits / expected, per code. The baseline is
scored the same way on the cases whose log has per-layer norms, for the codes its rules cover,
and the log check is shown on those same cases beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorecard import autotrainer
from scorecard.corpus import CACHE, CODES, Case, build, locate

RANK = {"info": 0, "warning": 1, "error": 2}
#: The documentation page whose Scorecard section holds the committed table (from the root).
SCORECARD_PAGE = "docs/findings.md"
START = "<!-- scorecard:start -->"
END = "<!-- scorecard:end -->"


@dataclass
class Outcome:
    """What one case got."""

    case: Case
    found: dict[str, str]                      # code -> worst severity
    hits: set[str] = field(default_factory=set)
    misses: set[str] = field(default_factory=set)
    false_alarms: set[str] = field(default_factory=set)
    alarms: list[str] = field(default_factory=list)   # warning/error codes (for healthy runs)
    baseline: set[str] | None = None
    baseline_hits: set[str] = field(default_factory=set)
    baseline_misses: set[str] = field(default_factory=set)
    baseline_false: set[str] = field(default_factory=set)


def _named_steps(finding: Any) -> list[float]:
    ev = finding.evidence
    extra = ev.model_extra or {}
    steps = extra.get("spike_steps") or ev.steps or []
    return [float(s) for s in steps if s is not None]


def _located(findings: list[Any], spans: list[list[int]] | None) -> bool:
    if not spans:
        return True
    named = [s for f in findings for s in _named_steps(f)]
    if not named:
        return True
    return all(any(lo <= s <= hi for s in named) for lo, hi in spans)


def judge(case: Case, root: Path = CACHE) -> Outcome:
    """Run the log check (and, where the log has per-layer norms, the baseline) on one case."""
    import gradhealth
    from gradhealth.logs.load import read_log

    path = locate(case, root)
    doc = gradhealth.check_logs(path)
    found: dict[str, str] = {}
    for f in doc.findings:
        if f.code not in found or RANK[f.severity] > RANK[found[f.code]]:
            found[f.code] = f.severity
    out = Outcome(case, found, alarms=sorted(c for c, s in found.items() if RANK[s] >= 1))
    for code, spans in case.expected.items():
        mine = [f for f in doc.findings if f.code == code]
        (out.hits if mine and _located(mine, spans) else out.misses).add(code)
    floor = RANK[case.forbidden_from]
    out.false_alarms = {c for c in case.forbidden if c in found and RANK[found[c]] >= floor}
    if case.layers:
        out.baseline = autotrainer.detect(read_log(path))
    if out.baseline is not None:
        for code in autotrainer.CODES:
            if code in case.expected:
                (out.baseline_hits if code in out.baseline else out.baseline_misses).add(code)
            elif code in case.forbidden and code in out.baseline:
                out.baseline_false.add(code)
    return out


def evaluate(root: Path = CACHE) -> list[Outcome]:
    """Build (or reuse) the corpus and judge every case."""
    return [judge(c, root) for c in build(root)]


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "-"


def table(outcomes: list[Outcome]) -> str:
    """The scorecard as Markdown: per code, then false alarms on healthy runs, then the baseline."""
    lines = ["| code | cases | hits | false alarms | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
    for code in CODES:
        n = sum(code in o.case.expected for o in outcomes)
        hits = sum(code in o.hits for o in outcomes)
        fa = sum(code in o.false_alarms for o in outcomes)
        if n or fa:
            lines.append(f"| `{code}` | {n} | {hits} | {fa} | {_ratio(hits, hits + fa)} | {_ratio(hits, n)} |")
    healthy = [o for o in outcomes if o.case.healthy]
    loud = [o for o in healthy if o.alarms]
    gen = [o for o in outcomes if not o.case.name.startswith("real:")]
    lines += ["", f"Cases: {len(outcomes)} ({len(gen)} generated runs, {len(outcomes) - len(gen)} real logs); "
              f"healthy: {len(healthy)}. Healthy runs with a warning or error: **{len(loud)}**"
              + (" (" + ", ".join(f"{o.case.name}: {'/'.join(o.alarms)}" for o in loud) + ")" if loud else "")
              + "."]
    with_layers = [o for o in outcomes if o.baseline is not None]
    lines += ["", f"Side by side on the {len(with_layers)} cases whose log has per-layer gradient norms:", "",
              "| code | cases | AUTOTRAINER precision | AUTOTRAINER recall | gradhealth precision | gradhealth recall |",
              "|---|---:|---:|---:|---:|---:|"]
    for code in autotrainer.CODES:
        n = sum(code in o.case.expected for o in with_layers)
        bh = sum(code in o.baseline_hits for o in with_layers)
        bf = sum(code in o.baseline_false for o in with_layers)
        gh = sum(code in o.hits for o in with_layers)
        gf = sum(code in o.false_alarms for o in with_layers)
        lines.append(f"| `{code}` | {n} | {_ratio(bh, bh + bf)} | {_ratio(bh, n)} | {_ratio(gh, gh + gf)} | "
                     f"{_ratio(gh, n)} |")
    return "\n".join(lines) + "\n"


def details(outcomes: list[Outcome]) -> str:
    """One line per case: what was expected, found, missed and falsely raised."""
    rows = []
    for o in outcomes:
        c = o.case
        found = ", ".join(f"{k}({v[0]})" for k, v in sorted(o.found.items())) or "-"
        rows.append(f"{c.name:34} {c.format:12} expected={sorted(c.expected) or '-'} found={found}"
                    + (f" MISSED={sorted(o.misses)}" if o.misses else "")
                    + (f" FALSE={sorted(o.false_alarms)}" if o.false_alarms else "")
                    + (f" autotrainer={sorted(o.baseline)}" if o.baseline is not None else ""))
    return "\n".join(rows) + "\n"


def readme_block(text: str) -> str | None:
    """The scorecard table committed in docs/findings.md (between the markers, the commit line left out)."""
    if START not in text or END not in text:
        return None
    block = text.split(START, 1)[1].split(END, 1)[0]
    kept = "\n".join(line for line in block.splitlines() if not line.startswith("Made at commit"))
    return kept.strip("\n") + "\n"


def write_readme(readme: Path, tab: str, commit: str) -> None:
    """Replace the table between the markers in docs/findings.md."""
    text = readme.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}\nMade at commit `{commit}`.\n\n{tab}{END}{tail}")
