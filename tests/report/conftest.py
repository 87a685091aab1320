"""Fixtures for the report tests: one real architecture check (seeds 1) and one real log check,
each computed once per session (builders are in tests/report/helpers.py)."""

from __future__ import annotations

from functools import cache

import pytest
import yaml

from gradhealth.core.document import Diagnosis
from tests.report.helpers import LOG, spec_text


@cache
def _architecture() -> Diagnosis:
    from gradhealth.analysis.check import CheckOptions, run_architecture_check
    from gradhealth.analysis.plan import Limits
    from gradhealth.analysis.thresholds import Thresholds

    raw = yaml.safe_load(spec_text())
    raw["seeds"] = 1
    return run_architecture_check(raw, CheckOptions(Thresholds(), Limits()))


@cache
def _logs() -> Diagnosis:
    from gradhealth.logs.check import run_log_check

    return run_log_check(LOG)


@pytest.fixture
def arch_doc() -> Diagnosis:
    """The diagnosis of the deep sigmoid MLP example (vanishing gradient, verified remedies)."""
    return _architecture().model_copy(deep=True)


@pytest.fixture
def log_doc() -> Diagnosis:
    """The diagnosis of llm.c's GPT-2 124M log (gradient spikes)."""
    return _logs().model_copy(deep=True)
