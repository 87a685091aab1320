"""Shared builders: example specs and a cached check, so each example is simulated once per session."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import pytest
import torch
import yaml

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.core.document import Diagnosis
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds

# Tests share two cores with each other's simulations; one torch thread avoids oversubscription.
torch.set_num_threads(1)


def example(name: str) -> dict[str, Any]:
    """A bundled example spec as a fresh dict."""
    text = (resources.files("gradhealth") / "examples" / f"{name}.yaml").read_text()
    return yaml.safe_load(text)


@cache
def _checked(name: str) -> Diagnosis:
    return run_architecture_check(example(name), CheckOptions(Thresholds(), Limits()))


@pytest.fixture
def checked():
    """checked(name) -> the diagnosis of a bundled example (computed once per session)."""
    return lambda name: copy.deepcopy(_checked(name))


def mlp(depth: int, width: int = 128, activation: str = "relu", init: Any = "kaiming_normal",
        **extra: Any) -> dict[str, Any]:
    """A spec for a plain MLP with a readout."""
    layer = {"type": "linear", "out_features": width, "activation": activation, "init": init,
             "bias_init": "zeros", "repeat": depth}
    layer.update(extra)
    return {"input": {"shape": [width]}, "batch_size": 64, "seeds": 2,
            "layers": [layer, {"type": "linear", "out_features": 10}]}
