"""The log check, end to end: file/folder/archive -> RunLog -> findings -> Diagnosis.

:func:`run_log_check` is what the command line, the HTTP worker and the tests call.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gradhealth.core.document import (
    Diagnosis,
    LogInfo,
    SeriesSummary,
    finite_or_none,
    status_of,
)
from gradhealth.core.rules import worst_first
from gradhealth.logs.detectors import DETECTORS
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import RunLog
from gradhealth.logs.thresholds import LogThresholds


def summarise(run: RunLog) -> list[SeriesSummary]:
    out = []
    for s in run.series:
        ok = s.values[np.isfinite(s.values)]
        out.append(SeriesSummary(
            name=s.name, role=s.role, layer=s.layer, points=len(s), nonfinite=int(len(s) - len(ok)),
            first_step=finite_or_none(float(s.steps[0])) if len(s) else None,
            last_step=finite_or_none(float(s.steps[-1])) if len(s) else None,
            min=finite_or_none(float(ok.min())) if len(ok) else None,
            max=finite_or_none(float(ok.max())) if len(ok) else None,
            median=finite_or_none(float(np.median(ok))) if len(ok) else None,
            last=finite_or_none(float(s.values[-1])) if len(s) else None))
    return out


def diagnose(run: RunLog, thresholds: LogThresholds | None = None, *, started: float | None = None) -> Diagnosis:
    """Findings for an already-read run."""
    thresholds = thresholds or LogThresholds()
    started = started if started is not None else time.perf_counter()
    findings = worst_first([f for detect in DETECTORS for f in detect(run, thresholds)])
    status = status_of(findings)
    worst = next((f for f in findings if f.severity != "info"), None)
    summary = (f"{status}: {worst.code}: {worst.summary}" + (f" (+{len(findings) - 1} more)" if len(findings) > 1 else "")
               if worst else f"healthy: {sum(len(s) for s in run.series):,} points in {len(run.series)} series"
               + (f"; notes: {', '.join(f.code for f in findings)}" if findings else ""))
    return Diagnosis(
        kind="logs", name=Path(run.source).name, status=status, summary=summary, findings=findings,
        series=summarise(run),
        log=LogInfo(format=run.format, source=Path(run.source).name, series=len(run.series),
                    points=sum(len(s) for s in run.series), warnings=[w.message for w in run.warnings][:100],
                    params=dict(run.params), duration_s=round(time.perf_counter() - started, 4)),
    )


def run_log_check(path: Path, *, format: str | None = None, thresholds: LogThresholds | None = None,
                  limits: ReadLimits | None = None, progress=None) -> Diagnosis:  # noqa: ANN001
    """Read the log at ``path`` (file, folder or archive) and diagnose it."""
    from gradhealth.logs.load import read_log

    started = time.perf_counter()
    report = progress or (lambda fraction, stage: None)
    report(0.05, "reading the log")
    run = read_log(Path(path), format=format, limits=limits or ReadLimits())
    report(0.7, f"read {len(run.series)} series; diagnosing")
    doc = diagnose(run, thresholds, started=started)
    report(1.0, "done")
    return doc
