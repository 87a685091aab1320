"""Compare a diagnosis with an earlier one ("don't make it worse"): findings new, gone or worse.

A team adopts the check on a model that already has warnings: ``gradhealth check --baseline
main.json --fail-on new`` fails only on regressions, not on what the main branch already had.

Matching: a finding is identified by its code and, for log checks, the series it names (several
findings of one code are paired in document order). A matched finding is **worse** when

- its severity rose (warning -> error);
- its figure moved past the tolerance on the side that triggers it: a positive figure with a
  threshold (a gradient ratio, a growth factor) by more than ``decades`` in log10, away from the
  threshold; a fraction (metric ending in ``fraction``) up by more than ``fraction_step``;
- or one of the layers it names moved: the layer's gradient ratio (log10 of its ||dL/dh|| over
  the last layer's, the ratio the depth findings measure) further from 0 by more than
  ``decades``, or its dead or saturated fraction up by more than ``fraction_step``.

Every layer that moved past a tolerance is listed too (``layers``), named by its layer name.
Torch-free: it reads two documents.
"""

from __future__ import annotations

import math
from collections import defaultdict

from gradhealth.core.document import (
    SEVERITY_RANK,
    BaselineComparison,
    BaselineFinding,
    BaselineLayer,
    Diagnosis,
    Finding,
    LayerReport,
)

__all__ = ["DEFAULT_DECADES", "DEFAULT_FRACTION_STEP", "compare", "finding_key"]

DEFAULT_DECADES = 0.5  # half a decade: about 3x, well above the seed-to-seed spread of a ratio
DEFAULT_FRACTION_STEP = 0.1  # ten percentage points of a layer's units dead or saturated


def finding_key(f: Finding, kind: str) -> tuple[str, str | None]:
    """What identifies a finding across runs: its code, and for logs the series it names."""
    return (f.code, f.evidence.metric if kind == "logs" else None)


def _where(f: Finding, kind: str) -> str | None:
    if kind == "logs":
        return f.evidence.metric
    return f.evidence.layers[0] if f.evidence.layers else None


def _log10_ratios(layers: list[LayerReport]) -> dict[str, float]:
    """log10(||dL/dh|| of each layer / ||dL/dh|| of the last layer that has one)."""
    measured = [x for x in layers if x.output_grad_norm is not None and x.output_grad_norm > 0]
    if not measured:
        return {}
    last = measured[-1].output_grad_norm or 1.0
    return {x.name: math.log10((x.output_grad_norm or 0.0) / last) for x in measured}


def _layer_drifts(
    now: Diagnosis, before: Diagnosis, decades: float, step: float
) -> list[BaselineLayer]:
    drifts: list[BaselineLayer] = []
    r_now, r_before = _log10_ratios(now.layers), _log10_ratios(before.layers)
    old = {x.name: x for x in before.layers}
    for layer in now.layers:
        name = layer.name
        if name in r_now and name in r_before and abs(r_now[name]) - abs(r_before[name]) > decades:
            drifts.append(BaselineLayer(layer=name, metric="log10_grad_ratio",
                                        before=round(r_before[name], 4), after=round(r_now[name], 4)))
        prev = old.get(name)
        if prev is None:
            continue
        for metric in ("dead_fraction", "saturated_fraction"):
            a, b = getattr(prev, metric), getattr(layer, metric)
            if a is not None and b is not None and b - a > step:
                drifts.append(BaselineLayer(layer=name, metric=metric, before=a, after=b))
    return drifts


def _figure_worse(now: Finding, before: Finding, decades: float, step: float) -> str | None:
    """Why the finding's own figure is worse, or None."""
    metric = now.evidence.metric or ""
    a, b = before.evidence.value, now.evidence.value
    if a is None or b is None or metric != (before.evidence.metric or ""):
        return None
    if metric.endswith("fraction"):
        return f"{metric} {a:.3g} -> {b:.3g} (up more than {step:g})" if b - a > step else None
    threshold = now.evidence.threshold
    if threshold is None or threshold <= 0 or a <= 0 or b <= 0:
        return None
    # The side of the threshold the figure is on is the side that triggers the finding.
    away = 1.0 if b >= threshold else -1.0
    moved = away * (math.log10(b) - math.log10(a))
    if moved > decades:
        return f"{metric} {a:.3g} -> {b:.3g} ({moved:.2f} decades further past {threshold:.3g})"
    return None


def compare(
    now: Diagnosis,
    before: Diagnosis,
    *,
    decades: float = DEFAULT_DECADES,
    fraction_step: float = DEFAULT_FRACTION_STEP,
    source: str | None = None,
) -> BaselineComparison:
    """``now`` compared with ``before`` (the baseline): see the module's docstring for the rules."""
    kind = now.kind
    drifts = _layer_drifts(now, before, decades, fraction_step)
    drifted: dict[str, list[BaselineLayer]] = defaultdict(list)
    for d in drifts:
        drifted[d.layer].append(d)
    pool: dict[tuple[str, str | None], list[Finding]] = defaultdict(list)
    for f in before.findings:
        pool[finding_key(f, before.kind)].append(f)
    entries: list[BaselineFinding] = []
    for f in now.findings:
        matches = pool.get(finding_key(f, kind))
        if not matches:
            entries.append(BaselineFinding(change="new", code=f.code, severity=f.severity,
                                           where=_where(f, kind), summary=f.summary))
            continue
        old = matches.pop(0)
        reasons = []
        if SEVERITY_RANK[f.severity] > SEVERITY_RANK[old.severity]:
            reasons.append(f"severity {old.severity} -> {f.severity}")
        figure = _figure_worse(f, old, decades, fraction_step)
        if figure:
            reasons.append(figure)
        named = (f.evidence.layers or []) if kind != "logs" else []
        for name in named:
            for d in drifted.get(name, []):
                reasons.append(f"{name}: {d.metric} {d.before:.3g} -> {d.after:.3g}")
        entries.append(BaselineFinding(
            change="worse" if reasons else "unchanged", code=f.code, severity=f.severity,
            baseline_severity=old.severity, where=_where(f, kind), summary=f.summary,
            reasons=list(dict.fromkeys(reasons))))
    for left in pool.values():
        for old in left:
            entries.append(BaselineFinding(change="gone", code=old.code, severity=old.severity,
                                           baseline_severity=old.severity,
                                           where=_where(old, before.kind), summary=old.summary))
    count = {c: sum(1 for e in entries if e.change == c) for c in ("new", "gone", "worse", "unchanged")}
    regressions = sum(1 for e in entries if e.change in ("new", "worse")
                      and SEVERITY_RANK[e.severity] >= SEVERITY_RANK["warning"])
    return BaselineComparison(source=source, decades=decades, fraction_step=fraction_step,
                              regressions=regressions, findings=entries, layers=drifts, **count)
