"""One rule per finding code, registered once: the registry both checks read.

A :class:`FindingRule` holds what is true of a code whatever the input: the code, its catalog
entry, how the badness of its metric ranks, and where it stands among findings of equal severity.
Each check then gives the rule its own part:

* the architecture check an ``ArchitectureRule`` (``gradhealth.analysis.rules``): how the code is
  measured on a simulation, when it fires, how it is described and which remedies it proposes;
* the log check a detector (``gradhealth.logs.detectors``, ``@detects(code)``).

Adding a finding code is one line in :data:`_RULES` below, its check part(s) and its text in
:mod:`gradhealth.core.catalog`; a test checks that registry and catalog agree. Nothing here imports
torch or numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, TypeVar

from gradhealth.core.catalog import FINDINGS, Entry
from gradhealth.core.document import SEVERITY_RANK, Evidence, Finding, Remedy, Severity


class Badness(Enum):
    """How far a metric is from healthy, for ranking remedies by what they left behind."""

    #: The metric itself: a fraction of units, a flag, a norm. Larger is worse.
    VALUE = "value"
    #: A ratio whose healthy value is 1: |log10(ratio)|, so 1e-4 and 1e4 are equally bad.
    LOG_RATIO = "log_ratio"

    def of(self, value: float | None) -> float:
        """The badness of ``value``; unmeasured (None) is the worst."""
        if value is None:
            return math.inf
        if self is Badness.LOG_RATIO:
            return abs(math.log10(value)) if value > 0 else math.inf
        return value


#: A log detector: (RunLog, LogThresholds) -> its findings (loosely typed: core knows no logs).
Detector = Callable[[Any, Any], list[Finding]]


class Stage(Enum):
    """Where a code stands in the chain of causes, for listing a root cause ahead of what it makes
    among findings of one severity: what the model or its training is set to (its init, its output
    and loss, its batch, its rate's sign) makes the gradients that flow through it, and those make the
    optimizer's steps (a constant init's copies of one unit, 0.01 each, get one large step together:
    peersweep17 tdc_baseCNN_const_init led with that step)."""

    #: A setting of the model or its training: the cause of what is measured on it.
    SETTING = 0
    #: The gradients' and signals' flow through the network (and a log's series of them).
    FLOW = 1
    #: The optimizer's steps, made from those gradients.
    STEPS = 2


@dataclass(eq=False)
class FindingRule:
    """All about one finding code; ``architecture`` and ``detector`` are the checks' parts."""

    code: str
    badness: Badness = Badness.VALUE
    #: Its place in the chain of causes (:func:`worst_first`).
    stage: Stage = Stage.FLOW
    #: The architecture check's part (an ``analysis.rules.ArchitectureRule``), set on its import.
    architecture: Any = None
    #: The log check's part, set when ``gradhealth.logs.detectors`` is imported.
    detector: Detector | None = None

    @property
    def entry(self) -> Entry:
        """The catalog's title and description."""
        return FINDINGS[self.code]

    def finding(
        self,
        severity: Severity | str,
        summary: str,
        explanation: str,
        evidence: dict[str, Any],
        remedies: Iterable[Remedy | None] = (),
    ) -> Finding:
        """The one way both checks make a :class:`Finding` of this code."""
        if severity not in SEVERITY_RANK:
            raise ValueError(f"{self.code}: unknown severity {severity!r}")
        return Finding(
            code=self.code,
            severity=severity,
            summary=summary,
            explanation=explanation,
            evidence=Evidence(**evidence),
            remedies=[r for r in remedies if r is not None],
        )


_REGISTRY: dict[str, FindingRule] = {}


def register(finding_rule: FindingRule) -> FindingRule:
    """Add ``finding_rule``; a code is registered once."""
    if finding_rule.code in _REGISTRY:
        raise ValueError(f"finding code {finding_rule.code!r} is registered twice")
    if finding_rule.code not in FINDINGS:
        raise ValueError(f"finding code {finding_rule.code!r} has no catalog entry")
    _REGISTRY[finding_rule.code] = finding_rule
    return finding_rule


def rule(code: str) -> FindingRule:
    """The rule of ``code`` (KeyError for an unknown code)."""
    return _REGISTRY[code]


def codes() -> tuple[str, ...]:
    """Every registered code, in registry order."""
    return tuple(_REGISTRY)


def rules() -> tuple[FindingRule, ...]:
    """Every registered rule, in registry order."""
    return tuple(_REGISTRY.values())


def implement_architecture(code: str, part: Any) -> None:
    """Give ``code`` its architecture-check part (once)."""
    r = rule(code)
    if r.architecture is not None:
        raise ValueError(f"{code}: architecture rule given twice")
    r.architecture = part


D = TypeVar("D", bound=Detector)


def detects(code: str) -> Callable[[D], D]:
    """Decorator: register a function as the log check's detector of ``code`` (once)."""

    def attach(fn: D) -> D:
        r = rule(code)
        if r.detector is not None:
            raise ValueError(f"{code}: log detector given twice")
        r.detector = fn
        return fn

    return attach


class _Ranked(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def severity(self) -> str: ...


R = TypeVar("R", bound=_Ranked)


def worst_first(items: Sequence[R]) -> list[R]:
    """``items`` (findings or detections) by severity, worst first; among one severity the root
    cause first (by :class:`Stage`: a setting, then the gradients' flow, then the steps), then in
    registry order. The first is what a document's summary leads with."""
    index = {c: i for i, c in enumerate(_REGISTRY)}

    def stage(code: str) -> int:
        return _REGISTRY[code].stage.value if code in _REGISTRY else Stage.FLOW.value

    return sorted(items, key=lambda x: (-SEVERITY_RANK[x.severity], stage(x.code), index.get(x.code, len(index))))


# The registry. Its order is the order in which findings of equal severity and stage are listed.
for _rule in (
    FindingRule("nonfinite"),
    FindingRule("exploding_gradient", Badness.LOG_RATIO),
    FindingRule("gradient_spike"),
    FindingRule("vanishing_gradient", Badness.LOG_RATIO),
    FindingRule("dead_layer"),
    FindingRule("zero_gradient"),
    FindingRule("clipping_saturated"),
    FindingRule("loss_spike"),
    FindingRule("loss_divergence"),
    FindingRule("loss_plateau"),
    FindingRule("loss_oscillation"),
    FindingRule("validation_divergence"),
    FindingRule("reward_collapse"),
    FindingRule("reward_plateau"),
    FindingRule("kl_divergence"),
    FindingRule("truncated_log"),
    FindingRule("insufficient_data"),
    FindingRule("exploding_through_time", Badness.LOG_RATIO),
    FindingRule("vanishing_through_time", Badness.LOG_RATIO),
    FindingRule("saturation"),
    FindingRule("dead_units"),
    FindingRule("post_ln_depth_risk"),
    FindingRule("negative_learning_rate", stage=Stage.SETTING),
    FindingRule("large_updates", stage=Stage.STEPS),
    FindingRule("small_updates", stage=Stage.STEPS),
    FindingRule("output_loss_mismatch", stage=Stage.SETTING),
    FindingRule("symmetric_weights", stage=Stage.SETTING),
    FindingRule("small_batch_statistics", stage=Stage.SETTING),
):
    register(_rule)
