"""The README documents every finding code, remedy id, example and setting the code has."""

from __future__ import annotations

from pathlib import Path

from gradhealth.analysis.findings import CODES
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.cli import example_names
from gradhealth.core.catalog import FINDINGS, REMEDIES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_finding_code_is_in_the_catalog_and_the_readme():
    log_codes = {"gradient_spike", "dead_layer", "clipping_saturated", "loss_spike", "loss_divergence",
                 "loss_plateau", "loss_oscillation", "validation_divergence", "truncated_log", "insufficient_data", "zero_gradient"}
    assert set(CODES) | log_codes == set(FINDINGS)
    for code in FINDINGS:
        assert f"| `{code}` |" in README, code


def test_every_remedy_id_is_documented():
    for rid in REMEDIES:
        assert f"| `{rid}` |" in README, rid


def test_every_example_is_listed():
    for name in example_names():
        assert f"`{name}`" in README, name


def test_every_service_setting_is_documented():
    from gradhealth.settings import Settings

    for field in Settings.model_fields:
        if field not in ("thresholds", "limits", "log_thresholds"):
            assert f"GRADHEALTH_{field.upper()}" in README, field


def test_every_log_threshold_is_documented():
    from gradhealth.logs.thresholds import LogThresholds

    for field in LogThresholds.model_fields:
        assert f"GRADHEALTH_LOG_THRESHOLDS__{field.upper()}" in README, field


def test_every_setting_is_documented():
    for field in Thresholds.model_fields:
        assert f"GRADHEALTH_THRESHOLDS__{field.upper()}" in README or f"__{field.upper()}" in README, field
    for field in Limits.model_fields:
        assert f"GRADHEALTH_LIMITS__{field.upper()}" in README, field
