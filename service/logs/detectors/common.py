"""Helpers every log detector uses: building a finding on its rule, the loss series a detector judges, and
the printed-precision and exponent limits.
"""

from __future__ import annotations

import math

import numpy as np

from gradhealth.core.document import Finding, Remedy
from gradhealth.core.rules import rule
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import finite, median
from gradhealth.logs.thresholds import LogThresholds


def finding(code: str, severity: str, summary: str, explanation: str, evidence: dict,
            remedies: list[Remedy | None]) -> Finding:
    """A finding of ``code`` made by its rule (which checks the severity; ``None`` remedies are dropped)."""
    return rule(code).finding(severity, summary, explanation, evidence, remedies)


def judged(run: RunLog, role: str, t: LogThresholds) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The run's main series of ``role`` with its finite points, when it has enough to judge."""
    s = run.first(role)  # type: ignore[arg-type]  # callers pass Role literals typed as str
    if s is None:
        return None
    steps, v = finite(s)
    return (s, steps, v) if len(v) >= t.min_points else None


#: The largest exponent math.exp takes (e^709 is near the largest float): a log-loss trend times a
#: span of steps past it is a rise beyond any float, not an OverflowError
MAX_EXP = 700.0


def positive_loss(run: RunLog, t: LogThresholds) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The training loss when relative changes of it mean something: enough points, and positive
    (an RL objective that sits at 0 or changes sign has no scale to be relative to)."""
    found = judged(run, "loss", t)
    if found is None or np.min(found[2]) < 0 or median(found[2]) <= 0:
        return None
    return found


#: Epoch averages an epoch-level twin needs to show a level at the start and at the end
_TWIN_POINTS = 3


def epoch_twin(run: RunLog, loss: Series) -> tuple[Series, np.ndarray, np.ndarray] | None:
    """The per-epoch average logged beside a per-batch loss, with its finite points: Lightning's
    ``self.log(..., on_step=True, on_epoch=True)`` writes ``<name>_step`` (one batch each) and
    ``<name>_epoch`` (the epoch's mean). :func:`positive_loss` picks the longer, per-batch one;
    the epoch means are its level with the batch noise averaged out (logsweep60 u06: 536 batch
    losses bouncing 1.6-4.3 beside 7 epoch means 2.60 -> 2.66). ``None`` without such a twin, or
    where it has fewer than 3 positive points."""
    if not loss.name.endswith("_step"):
        return None
    name = loss.name[: -len("_step")] + "_epoch"
    twin = next((s for s in run.series if s.name == name and s is not loss), None)
    if twin is None:
        return None
    steps, v = finite(twin)
    if len(v) < _TWIN_POINTS or np.min(v) <= 0:
        return None
    return twin, steps, v


def log_printed(v: np.ndarray) -> np.ndarray:
    """ln of a positive loss, a point printed as 0 (0.0000: rounded to the log's digits) read at the
    smallest value printed: ln 0 would make a trend's slopes NaN."""
    positive = v[v > 0]
    return np.log(np.maximum(v, float(np.min(positive)))) if len(positive) else np.full(len(v), np.nan)


def times(ratio: float | None) -> str:
    """A ratio of two logged values as a summary prints it, ``"36.4x"``. A ratio of finite values past
    the largest float (a spike of 1e300 over a level of 1e-300) is inf, which a finding's evidence holds
    as null (JSON has no Inf): either reads "more than 1.8e+308x", not "infx" nor a TypeError on None
    (errsweep7)."""
    if ratio is None or math.isinf(ratio):
        return "more than 1.8e+308x" if ratio is None or ratio > 0 else "less than -1.8e+308x"
    return f"{ratio:.3g}x"
