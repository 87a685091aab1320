"""The log check, end to end: file/folder/archive -> RunLog -> findings -> Diagnosis.

:func:`run_log_check` is what the command line, the HTTP worker and the tests call.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.boosting_snippets import in_boosting
from gradhealth.core.document import (
    Diagnosis,
    Finding,
    LogInfo,
    Remedy,
    SeriesPoints,
    SeriesSummary,
    finite_or_none,
    more_findings,
    status_of,
    unjudged_by,
)
from gradhealth.core.rules import Detector, worst_first
from gradhealth.core.ticks import advance, ticking
from gradhealth.logs.detectors import DETECTORS
from gradhealth.logs.detectors.common import times
from gradhealth.logs.readers.registry import ReadLimits
from gradhealth.logs.series import LogWarning, RunLog, Series, boosting_log
from gradhealth.logs.stats import median
from gradhealth.logs.thresholds import LogThresholds

_log = logging.getLogger(__name__)

#: Series listed one by one in a log diagnosis; beyond it the list is cut (``log.series`` keeps the
#: count, and a note in ``log.warnings`` says so), so a log of many series cannot make a huge document.
MAX_SERIES_LISTED = 1000


def listed(run: RunLog, limit: int = MAX_SERIES_LISTED) -> list[Series]:
    """The series a diagnosis lists: all of them, or ``limit`` of them, those the detectors read
    (every role but ``metric``) first, in the log's order."""
    if len(run.series) <= limit:
        return run.series
    ranked = sorted(range(len(run.series)), key=lambda i: (run.series[i].role == "metric", i))[:limit]
    return [run.series[i] for i in sorted(ranked)]


def summarise(run: RunLog) -> list[SeriesSummary]:
    out = []
    for s in listed(run):
        ok = s.values[np.isfinite(s.values)]
        out.append(SeriesSummary(
            name=s.name, role=s.role, layer=s.layer, points=len(s), nonfinite=int(len(s) - len(ok)),
            first_step=finite_or_none(float(s.steps[0])) if len(s) else None,
            last_step=finite_or_none(float(s.steps[-1])) if len(s) else None,
            min=finite_or_none(float(ok.min())) if len(ok) else None,
            max=finite_or_none(float(ok.max())) if len(ok) else None,
            median=finite_or_none(float(median(ok))) if len(ok) else None,
            last=finite_or_none(float(s.values[-1])) if len(s) else None))
    return out


# Charts need the shape of a series, not every point: a bounded document whatever the log's length.
MAX_POINTS = 500  # per series a finding names, and the learning rate
LAYER_POINTS = 120  # per per-layer norm series: the columns of a layer x step heatmap
MAX_LAYER_SERIES = 128  # per-layer norm series kept (the first in the log's order)


def downsample(values: np.ndarray, limit: int) -> tuple[np.ndarray, bool]:
    """Indices (ascending) of at most ``limit`` points that keep the series' shape: the points are
    cut into ``limit // 3`` buckets of consecutive points and each keeps its lowest and highest
    finite value and its first non-finite one, so a one-step spike or NaN is never dropped."""
    n = len(values)
    if n <= limit:
        return np.arange(n), False
    # Vectorised over the buckets (np.array_split's: the first n % k one point longer); the same
    # indices as taking nanargmin / nanargmax / the first non-finite point of each bucket in turn.
    k = max(1, limit // 3)
    size, longer = divmod(n, k)
    sizes = np.full(k, size)
    sizes[:longer] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    bucket = np.repeat(np.arange(k), sizes)
    finite = np.isfinite(values)
    lows = np.where(finite, values, np.inf)
    highs = np.where(finite, values, -np.inf)
    has_finite = np.logical_or.reduceat(finite, starts)
    keep = [_first_where(lows == np.minimum.reduceat(lows, starts)[bucket], bucket, k),
            _first_where(highs == np.maximum.reduceat(highs, starts)[bucket], bucket, k)]
    chosen = np.concatenate([keep[0][has_finite], keep[1][has_finite],
                             _first_where(~finite, bucket, k)[~np.logical_and.reduceat(finite, starts)]])
    return np.unique(chosen.astype(np.int64)), True


def _first_where(mask: np.ndarray, bucket: np.ndarray, k: int) -> np.ndarray:
    """The first index of each of ``k`` buckets where ``mask`` holds (-1 where it never does)."""
    first = np.full(k, -1, dtype=np.int64)
    hits = np.flatnonzero(mask)[::-1]  # reversed: the last write per bucket is its first hit
    first[bucket[hits]] = hits
    return first


def chart_points(run: RunLog, findings: list[Finding]) -> list[SeriesPoints]:
    """The downsampled series reports and dashboards draw (see :class:`SeriesPoints`)."""
    named: set[str] = set()
    for f in findings:
        named.update(x for x in (f.evidence.metric, *(f.evidence.layers or [])) if x)
    out: list[SeriesPoints] = []
    layer_series = 0
    for s in run.series:
        if s.name in named or s.role == "learning_rate":
            limit = MAX_POINTS
        elif s.role == "layer_grad_norm" and layer_series < MAX_LAYER_SERIES:
            limit, layer_series = LAYER_POINTS, layer_series + 1
        else:
            continue
        idx, cut = downsample(s.values, limit)
        out.append(SeriesPoints(
            name=s.name, role=s.role, layer=s.layer, downsampled=cut,
            steps=[float(x) for x in s.steps[idx]],
            values=[finite_or_none(float(x)) for x in s.values[idx]]))
    return out


def diagnose(run: RunLog, thresholds: LogThresholds | None = None, *, started: float | None = None) -> Diagnosis:
    """Findings for an already-read run.

    A figure of a log near the largest float (a loss of 1.8e308, a spike of 1e300 over a level of
    1e-300) may overflow: a ratio, a threshold times a level, a difference of two such values. IEEE
    arithmetic makes it +-inf, which is the answer meant (a ratio past any float, a threshold no
    value reaches), and every detector reads non-finite figures as such; numpy's "overflow
    encountered" RuntimeWarnings are not printed for it (errsweep7: six of them on stderr, where the
    CLI writes one line per error). Medians, whose overflow would be a wrong answer, are computed
    without it (:func:`gradhealth.logs.stats.median`); a NaN from an invalid operation still warns."""
    with np.errstate(over="ignore", under="ignore"):
        return _diagnose(run, thresholds, started=started)


def _notes_summary(findings: Sequence[Finding]) -> str:
    """A healthy summary's tail: the notes' codes, and what an ``insufficient_data`` note left
    unjudged in its own words (a file of four loss lines read "healthy ... notes: insufficient_data",
    as if its trends had been judged and found fine: logsweep92 unsuperpoint_notes)."""
    if not findings:
        return ""
    short = [f for f in findings if f.code == "insufficient_data"]
    return (f"; notes: {', '.join(f.code for f in findings)}"
            + "".join(f"; not judged: {f.summary}" for f in short[:2]))


#: A series that counts the run's epochs (an HF Trainer console dict's ``'epoch': 0.53``)
_EPOCH_SERIES = re.compile(r"(?:^|/)epochs?$", re.IGNORECASE)


def _epochs_as_positions(run: RunLog) -> None:
    """Where no line of ``run`` names a step (its steps are the running index of its lines, warning
    ``running_index``) but each line names its epoch, the findings name a point by that: ``record 1
    (epoch 0.53)``, not "step 0", which the log never said (logsweep98 modernbert_hf_console_nan:
    Trainer console dicts, the NaN "at step 0" of a run at epoch 0.53). Set as each series' position
    words (:attr:`~gradhealth.logs.series.Series.position_words`) where it has none of its own."""
    if not any(w.code == "running_index" for w in run.warnings):
        return
    epoch = next((s for s in run.series if _EPOCH_SERIES.search(s.name) and s.role == "metric"), None)
    if epoch is None or not len(epoch):
        return
    at = {float(x): float(v) for x, v in zip(epoch.steps, epoch.values, strict=True) if np.isfinite(v)}
    for s in run.series:
        if s.position_words or s.step_unit != "step":
            continue
        words = {float(x): f"record {int(x) + 1} (epoch {at[float(x)]:.4g})" for x in s.steps
                 if float(x) in at and float(x).is_integer()}
        if words:
            s.position_words = words


def _points_as_positions(run: RunLog) -> None:
    """Where no line or row of ``run`` names a step (warning ``running_index``: its steps are their
    count from 0), the findings name a point by its place in the log, ``point 2`` or ``points 1-2``
    (:attr:`~gradhealth.logs.series.Series.counted_points`), not "steps 0-1", a step counter the log
    never printed; a series worded by its epochs (:func:`_epochs_as_positions`) keeps them."""
    if not any(w.code == "running_index" for w in run.warnings):
        return
    for s in run.series:
        if not s.position_words and s.step_unit == "step":
            s.counted_points = True


def _diagnose(run: RunLog, thresholds: LogThresholds | None = None, *, started: float | None = None) -> Diagnosis:
    thresholds = thresholds or LogThresholds()
    started = started if started is not None else time.perf_counter()
    _epochs_as_positions(run)
    _points_as_positions(run)
    # a folder of several runs: each judged on its own (one run's long healthy loss must not stand
    # for another's divergence)
    parts = list(run.split().values()) or [run]
    rules = itertools.count()  # rules run, of len(parts) * len(DETECTORS): the stage's progress
    total = len(parts) * len(DETECTORS)
    findings = _without_moot_notes(worst_first([
        f for part in parts
        for f in _one_sized_rate(_one_learning_rate_direction(_with_target_scale(_spikes_into_divergence(
            _remedies_for_the_cause([f for detect in DETECTORS
                                     for f in _guarded(detect, part, thresholds, run, next(rules) / total)]),
            part), part)))]))
    if boosting_log(run):
        # a boosting library's evaluations: its remedies in its parameters' words, none of a network's
        # optimizer (logsweep97 lgbm_hyperopt_cv)
        findings = in_boosting(findings)
    status = status_of(findings)
    worst = next((f for f in findings if f.severity != "info"), None)
    summary = (f"{status}: {worst.code}: {worst.summary}" + more_findings(findings)
               if worst else f"healthy: {sum(len(s) for s in run.series):,} points in {len(run.series)} series"
               + _notes_summary(findings))
    # the trends not judged (too short an excerpt, no training loss): said beside the status, which
    # stays what was found (logsweep98 piper827: "healthy" above a note that nothing was judged)
    unjudged = unjudged_by(findings)
    return Diagnosis(
        kind="logs", name=Path(run.source).name, status=status, summary=summary, findings=findings,
        judged=unjudged is None, not_judged=unjudged.summary if unjudged is not None else None,
        series=summarise(run),
        points=chart_points(run, findings),
        log=LogInfo(format=run.format, source=Path(run.source).name, series=len(run.series),
                    points=sum(len(s) for s in run.series), warnings=_notes(run)[:100],
                    params=dict(run.params), duration_s=round(time.perf_counter() - started, 4)),
    )


#: Findings of layers the gradient does not reach (the first layers' starved by a vanishing
#: gradient, layers whose gradient is exactly 0): a higher learning rate scales every layer's step
#: by the same factor, so it cannot bring those layers back, and a plateau beside them is theirs
_STARVED = ("vanishing_gradient", "dead_layer")


def _remedies_for_the_cause(findings: list[Finding]) -> list[Finding]:
    """One run's findings, with a ``loss_plateau``'s ``raise_learning_rate`` replaced by the remedies
    of a :data:`_STARVED` finding (a warning or an error) of the same run: the plateau is that
    finding's doing, and 3x the rate on a 12-layer sigmoid MLP whose first layer gets 1e-12 of the
    last one's gradient leaves it at 3e-12 (newuser11: "Fix: raise_learning_rate" under the plateau
    beside that vanishing_gradient error). The summary names the cause; evidence ``cause``."""
    causes = [f for f in worst_first(findings) if f.code in _STARVED and f.severity != "info"]
    if not causes:
        return findings
    cause = causes[0]
    out = []
    for f in findings:
        if f.code == "loss_plateau" and any(r.id == "raise_learning_rate" for r in f.remedies):
            kept = [r for r in f.remedies if r.id != "raise_learning_rate"]
            ids = {r.id for r in kept}
            borrowed = [r for r in cause.remedies if r.id not in ids]
            f = f.model_copy(update={
                "summary": f"{f.summary}; its likely cause is the {cause.code} {cause.severity}, which a higher "
                           "learning rate does not reach (it scales every layer's step alike, the starved ones' too)",
                "remedies": kept + borrowed,
                "evidence": f.evidence.model_copy(update={"cause": cause.code,
                                                          "withheld_remedies": ["raise_learning_rate"]})})
        out.append(f)
    return out


#: Findings an unscaled regression target explains where the training loss starts as a huge squared
#: error (:func:`gradhealth.logs.remedies.unscaled_targets`): gradients that size blow up (NaN, a
#: diverging loss, an exploding norm, outsize steps), or a bounded output saturates against targets
#: it cannot reach and its gradient dies with the loss flat
_SCALE_EXPLAINS = ("nonfinite", "loss_divergence", "exploding_gradient", "large_updates", "vanishing_gradient")


def _with_target_scale(findings: list[Finding], run: RunLog) -> list[Finding]:
    """One run's findings, each warning or error of :data:`_SCALE_EXPLAINS` that lowers the learning
    rate (or is a vanishing gradient) with the targets' ``normalise_inputs`` first among its remedies
    where the training loss is 1e4 or more from the start on (a squared error of values in the hundreds
    or more, :func:`gradhealth.logs.remedies.unscaled_targets`): a lower learning rate shrinks the steps, not the
    error they follow, and newuser12's regression (targets about 3000, MSE 9.6e6 at step 0) went to
    NaN at lr 1e-3 and at the 3e-4 the lower_learning_rate remedy gave alike. Evidence ``loss_scale``."""
    from gradhealth.logs.remedies import unscaled_targets

    if not any(f.code in _SCALE_EXPLAINS and f.severity != "info" for f in findings):
        return findings
    fix = unscaled_targets(run)
    if fix is None:
        return findings
    out = []
    for f in findings:
        # (beside a lower learning rate, or under a gradient that died with the loss: a NaN with no growth
        # before it is a bad batch or an operation out of its domain, whose remedies say so)
        if f.code in _SCALE_EXPLAINS and f.severity != "info" and all(r.id != fix.id for r in f.remedies) and (
                f.code == "vanishing_gradient" or any(r.id == "lower_learning_rate" for r in f.remedies)):
            tail = (f"; {fix.params['loss_name']} started at {fix.params['loss_level']:.3g}, as a mean squared "
                    f"error predictions about {fix.params['rms_error']:.2g} off their targets: an output that cannot "
                    "reach targets that far (a sigmoid or tanh saturated at its bound) or unscaled targets"
                    if f.code == "vanishing_gradient" else "")
            f = f.model_copy(update={
                "summary": f.summary + tail,
                "remedies": [fix.model_copy(deep=True)] + list(f.remedies),
                "evidence": f.evidence.model_copy(update={"loss_scale": {
                    "metric": fix.params["loss_name"],
                    "early_level": fix.params["loss_level"], "rms_error": fix.params["rms_error"]}})})
        out.append(f)
    return out


def _one_learning_rate_direction(findings: list[Finding]) -> list[Finding]:
    """One run's findings with the learning rate advised one way only: where a warning or error
    offers ``lower_learning_rate`` (NaN, spikes, a divergence, outsize steps: the run's own evidence
    that its steps are too large), no finding offers ``raise_learning_rate`` beside it (a flat loss is
    also what a rate too large gives: saturated units, weights thrown into a flat region). newuser12
    got "lower the rate x0.3" under gradient_spike and "raise it x3" under loss_plateau in one report.
    The finding that loses its raise says so in its summary; evidence ``withheld_remedies``. A finding
    that offers both directions itself (reward_plateau: either can leave a return flat) is kept whole,
    and does not decide for the others."""
    def offers(f: Finding, rid: str) -> bool:
        return any(r.id == rid for r in f.remedies)

    # (a finding that offers both itself, and says why, is left whole: reward_plateau's "too small to move
    # the return, or so large the policy collapsed early")
    lowering = [f for f in worst_first(findings) if f.severity != "info"
                and offers(f, "lower_learning_rate") and not offers(f, "raise_learning_rate")]
    if not lowering:
        return findings
    by = lowering[0]
    out = []
    for f in findings:
        if offers(f, "raise_learning_rate") and not offers(f, "lower_learning_rate"):
            withheld = list((f.evidence.model_extra or {}).get("withheld_remedies") or [])
            f = f.model_copy(update={
                "summary": f"{f.summary}; no higher learning rate is advised: the {by.code} {by.severity} advises "
                           "a lower one (a flat loss is also what steps too large give)",
                "remedies": [r for r in f.remedies if r.id != "raise_learning_rate"],
                "evidence": f.evidence.model_copy(update={
                    "withheld_remedies": withheld + ["raise_learning_rate"], "lower_learning_rate_from": by.code})})
        out.append(f)
    return out


def _one_sized_rate(findings: list[Finding]) -> list[Finding]:
    """One run's findings, every plain ``lower_learning_rate`` (the fixed 0.3x cut) replaced by the
    deepest cut a finding sized from the run's blow-up (:func:`gradhealth.logs.remedies.sized_lower_lr`,
    params ``gradient_rise``) where that cut is deeper: one document names one rate, and the evidence
    of the blow-up that killed the network outranks the grid step (newuser13: 0.08 under dead_layer
    beside "8 -> 2.4" under loss_divergence and loss_spike). A rate taken back to where the run was
    stable (``learning_rate_jump``) or sized from update ratios or clipping stays."""
    sized = [r for f in findings for r in f.remedies
             if r.id == "lower_learning_rate" and "gradient_rise" in r.params]
    if not sized:
        return findings
    best = min(sized, key=lambda r: float(r.params["factor"]))
    out = []

    def plain(r: Remedy) -> bool:
        # a GAN's cut aimed at one network's optimizer (param target) stays aimed: the sized cut is
        # for the one optimizer of the network that blew up
        return (r.id == "lower_learning_rate" and r.params.get("factor") == R.LOWER_LR_FACTOR
                and "learning_rate_jump" not in r.params and "target" not in r.params)

    for f in findings:
        if any(plain(r) and float(best.params["factor"]) < R.LOWER_LR_FACTOR for r in f.remedies):
            f = f.model_copy(update={"remedies": [
                best.model_copy(deep=True) if plain(r) else r for r in f.remedies]})
        out.append(f)
    return out


def _figure(x: float | None) -> str:
    """A figure read back from a finding's evidence, which holds a non-finite one as null (JSON has no
    Inf): a ratio of two finite values past the largest float (a loss of 1e300 over a rolling median of
    1e-300) is "more than 1.8e+308", not a TypeError (errsweep7)."""
    if x is None or math.isinf(x):
        return "more than 1.8e+308" if x is None or x > 0 else "less than -1.8e+308"
    return f"{x:.3g}"


def _spikes_into_divergence(findings: list[Finding], run: RunLog) -> list[Finding]:
    """One run's findings, with a ``loss_spike`` the log ends in folded into the ``loss_divergence``
    (a warning or an error) of the same series or of its training counterpart (the training loss, for
    the validation loss): where every one of its spike events began at or after the divergence's
    onset and the last runs to the end of the log, the "spike" is the divergence's climb as the
    rolling median sees it, not a second problem (logsweep79 u07: the training loss diverging from
    step 8200, eval_loss 28.4x its rolling median at steps 14000-15000, "whether the run recovered
    is unknown"). The divergence's summary names each, its evidence keeps their evidence as
    ``spikes``, and its remedies gain theirs it lacked; a spike finding with an event before the
    onset stands."""
    divergences = [i for i, f in enumerate(findings) if f.code == "loss_divergence" and f.severity != "info"
                   and f.evidence.metric is not None and f.evidence.steps]
    if not divergences:
        return findings
    loss, val = run.first("loss"), run.first("val_loss")

    def counterpart(spiked: str, diverged: str) -> bool:
        return spiked == diverged or (val is not None and loss is not None and spiked == val.name
                                      and diverged == loss.name)

    folded: dict[int, list[Finding]] = {}
    for spike in findings:
        extra = spike.evidence.model_extra or {}
        events = extra.get("events") or []
        if spike.code != "loss_spike" or not extra.get("ends_at_spike") or not events:
            continue
        into = next((i for i in divergences if counterpart(str(spike.evidence.metric), str(findings[i].evidence.metric))
                     and all(float(e["start"]) >= float((findings[i].evidence.steps or [0])[0]) for e in events)), None)
        if into is not None:
            folded.setdefault(into, []).append(spike)
    if not folded:
        return findings
    gone = {id(f) for spikes in folded.values() for f in spikes}
    out = []
    for i, f in enumerate(findings):
        if id(f) in gone:
            continue
        if i in folded:
            words, remedies = [], list(f.remedies)
            for spike in folded[i]:
                events = (spike.evidence.model_extra or {})["events"]
                last = events[-1]
                spiked = next((x for x in run.series if x.name == spike.evidence.metric), None)
                where = spiked.where if spiked is not None else (lambda x: f"step {x}")
                earlier = len(events) - 1
                words.append(f"{spike.evidence.metric} reached {_figure(last['peak'])} at {where(last['peak_step'])} "
                             f"({times(last['peak_ratio'])} its rolling median), raised from {where(last['start'])} on"
                             + (f", after {earlier} more spike(s) from {where(events[0]['start'])}" if earlier else ""))
                remedies += [r for r in spike.remedies if r.id not in {x.id for x in remedies}]
            f = f.model_copy(update={
                "summary": f"{f.summary}; the log ends in it: {'; '.join(words)}",
                "remedies": remedies,
                "evidence": f.evidence.model_copy(update={"spikes": [x.evidence.model_dump() for x in folded[i]]})})
        out.append(f)
    return out


def _without_moot_notes(findings: list[Finding]) -> list[Finding]:
    """``findings`` less the ``insufficient_data`` note that a loss has too few finite points for the
    trend checks where its NaN/Inf are among them and a ``nonfinite`` warning or error reports them:
    the trend of a loss that went NaN is moot, and "too short to judge trends" beside "NaN first
    appears in loss at epoch 1" read as a second, lesser problem (logsweep72 u02-u04). So is the note that a
    training loss had too few steps for its trends beside a gradient norm that had enough (evidence
    ``thin_loss``) where another rule's warning or error already judged that loss."""
    judged = {f.evidence.metric for f in findings if f.code != "insufficient_data" and f.severity != "info"}
    findings = [f for f in findings if not (f.code == "insufficient_data" and (f.evidence.model_extra or {}).get(
        "thin_loss") and f.evidence.metric in judged)]
    if not any(f.code == "nonfinite" and f.severity != "info" for f in findings):
        return findings
    return [f for f in findings
            if not (f.code == "insufficient_data" and (f.evidence.model_extra or {}).get("nonfinite_points"))]


def _guarded(detect: Detector, part: RunLog, thresholds: LogThresholds, run: RunLog,
             done: float = 0.0) -> list[Finding]:
    """``detect``'s findings on ``part``; a detector that fails is logged and named in a note on
    ``run``, and the others' findings stand (one rule's bug must not fail every append of a live
    run). ``GRADHEALTH_STRICT=1`` (the test suite sets it) re-raises instead. ``done``: the share of
    the check's rules run before this one (its progress)."""
    advance(done)  # between rules: a cancelled job stops before the next one
    try:
        return detect(part, thresholds)
    except Exception as exc:  # noqa: BLE001 - reported in the document, and raised in strict mode
        if os.environ.get("GRADHEALTH_STRICT") == "1":
            raise
        name = getattr(detect, "__name__", "a detector")
        _log.exception("log detector %s failed on %s", name, part.source)
        run.warnings.append(LogWarning("detector_failed", (
            f"the {name} check failed on this log ({type(exc).__name__}: {str(exc)[:200]}) and is missing from "
            "the findings; this is a bug in gradhealth, not a finding about your run: please report it")))
        return []


def _notes(run: RunLog) -> list[str]:
    notes = [w.message for w in run.warnings]
    if len(run.series) > MAX_SERIES_LISTED:
        notes.insert(0, f"{run.source}: {len(run.series):,} series; the document lists "
                        f"{MAX_SERIES_LISTED:,} of them (the detectors' series first)")
    return notes


def run_log_check(path: Path, *, format: str | None = None, thresholds: LogThresholds | None = None,
                  limits: ReadLimits | None = None, progress=None) -> Diagnosis:  # noqa: ANN001
    """Read the log at ``path`` (file, folder or archive) and diagnose it."""
    from gradhealth.logs.load import read_log

    started = time.perf_counter()
    report = progress or (lambda fraction, stage: None)
    report(0.05, "reading the log")
    # the readers' loops over lines, records and points, and the gaps between rules, report too
    # (at most every ticks.TICK_S): a cancellation or time limit is met within a fraction of a
    # second of work, not only at these three stages
    # and move through their stage's span as they go: bytes read of the file's size, rules run
    with ticking(progress, 0.05, "reading the log", until=0.7):
        run = read_log(Path(path), format=format, limits=limits or ReadLimits())
    stage = f"read {len(run.series)} series; diagnosing"
    report(0.7, stage)
    with ticking(progress, 0.7, stage, until=1.0):
        doc = diagnose(run, thresholds, started=started)
    report(1.0, "done")
    return doc
