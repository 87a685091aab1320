"""Session-wide fixtures: a cached check, so each example is simulated once per session.

Builders that test modules import (example specs, MLP specs) live in tests/helpers.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache

import pytest
import torch

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import Diagnosis
from tests.helpers import example

# Tests share two cores with each other's simulations; one torch thread avoids oversubscription.
torch.set_num_threads(1)


@cache
def _checked(name: str) -> Diagnosis:
    return run_architecture_check(example(name), CheckOptions(Thresholds(), Limits()))


@pytest.fixture
def checked() -> Callable[[str], Diagnosis]:
    """checked(name) -> the diagnosis of a bundled example (computed once per session)."""
    return lambda name: copy.deepcopy(_checked(name))
