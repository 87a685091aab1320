"""The rule registry: one rule per code, each with its catalog entry and a check using it."""

from __future__ import annotations

import math

import pytest

import gradhealth.analysis.rules  # noqa: F401  (attaches the architecture parts)
import gradhealth.logs.detectors  # noqa: F401  (attaches the log detectors)
from gradhealth.core import rules
from gradhealth.core.catalog import FINDINGS
from gradhealth.core.document import Evidence, Finding
from gradhealth.core.rules import Badness, FindingRule

#: The codes the simulation can show (the README's architecture table), written out independently.
ARCHITECTURE = {
    "nonfinite",
    "small_batch_statistics",
    "negative_learning_rate",
    "exploding_gradient",
    "vanishing_gradient",
    "exploding_through_time",
    "vanishing_through_time",
    "saturation",
    "dead_units",
    "symmetric_weights",
    "post_ln_depth_risk",
    "large_updates",
    "small_updates",
    "output_loss_mismatch",
}
RATIOS = {
    "vanishing_gradient",
    "exploding_gradient",
    "vanishing_through_time",
    "exploding_through_time",
}


def test_every_code_has_one_rule_and_one_catalog_entry():
    assert len(rules.codes()) == len(set(rules.codes()))
    assert set(rules.codes()) == set(FINDINGS)
    for r in rules.rules():
        assert r is rules.rule(r.code) and r.entry is FINDINGS[r.code]
        assert r.architecture is not None or r.detector is not None, (
            f"{r.code} is checked by nothing"
        )


def test_architecture_parts_are_the_simulated_codes():
    parts = {r.code for r in rules.rules() if r.architecture is not None}
    assert parts == ARCHITECTURE
    for code in parts:
        assert rules.rule(code).architecture.code == code
        assert rules.rule(code).architecture.remedies, code


def test_a_code_is_registered_once_and_needs_catalog_text():
    with pytest.raises(ValueError, match="twice"):
        rules.register(FindingRule("saturation"))
    with pytest.raises(ValueError, match="catalog"):
        rules.register(FindingRule("no_such_code"))
    with pytest.raises(ValueError, match="twice"):
        rules.implement_architecture("saturation", object())
    with pytest.raises(ValueError, match="twice"):
        rules.detects("loss_plateau")(lambda run, t: [])


def test_ratio_badness_is_the_log_distance_from_one():
    for code in RATIOS:
        assert rules.rule(code).badness is Badness.LOG_RATIO
    bad = Badness.LOG_RATIO.of
    assert bad(1.0) == 0.0
    # A 1e-4 vanishing ratio and a 1e4 exploding one are equally far from healthy.
    assert bad(1e-4) == pytest.approx(4.0) and bad(1e4) == pytest.approx(4.0)
    assert bad(0.5) == pytest.approx(math.log10(2))
    assert bad(0.0) == math.inf and bad(None) == math.inf
    # So a remedy that left a ratio of 0.5 ranks above one that overshot to 20.
    assert bad(0.5) < bad(20.0)


def test_value_badness_is_the_value_itself():
    for code in set(rules.codes()) - RATIOS:
        assert rules.rule(code).badness is Badness.VALUE, code
    assert Badness.VALUE.of(0.3) == 0.3 and Badness.VALUE.of(None) == math.inf


def test_worst_first_orders_by_severity_then_registry():
    def f(code: str, severity: str) -> Finding:
        return rules.rule(code).finding(severity, "s", "e", {"value": 1.0})

    found = [
        f("loss_plateau", "info"),
        f("saturation", "warning"),
        f("exploding_gradient", "warning"),
        f("nonfinite", "error"),
    ]
    ordered = [(x.code, x.severity) for x in rules.worst_first(found)]
    assert ordered == [
        ("nonfinite", "error"),
        ("exploding_gradient", "warning"),
        ("saturation", "warning"),
        ("loss_plateau", "info"),
    ]


def test_a_rule_makes_its_findings():
    made = rules.rule("dead_layer").finding(
        "warning", "sum", "why", {"value": float("nan"), "layers": ["a"]}, [None]
    )
    assert made.code == "dead_layer" and made.remedies == []
    assert made.evidence == Evidence(value=None, layers=["a"])  # NaN kept out of the document
    with pytest.raises(ValueError, match="severity"):
        rules.rule("dead_layer").finding("fatal", "s", "e", {})
