"""Of the remedies a re-simulation shows fixing a finding, the smallest change comes first: an
engineer fixes the init before swapping activations or adding structure."""

from __future__ import annotations

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds


def test_an_init_that_fixes_the_case_is_offered_before_an_activation_swap_that_does_too() -> None:
    # tanh at sigma_w^2 = 0.36 (std 0.6 / sqrt(fan_in)) is deep in the ordered phase: chi1 = 0.36 a layer.
    # Xavier's sigma_w^2 = 1 is critical for tanh, and ReLU with He init is critical too: both fix it
    raw = {"input": {"shape": [64]}, "seeds": 1,
           "layers": [{"type": "linear", "out_features": 64, "activation": "tanh",
                       "init": {"scheme": "normal", "std": 0.075}, "repeat": 20},
                      {"type": "linear", "out_features": 10}]}
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), device="cpu"))
    [vanishing] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    fixes = [r.id for r in vanishing.remedies if r.verified is not None and r.verified.fixed
             and not r.verified.side_effects]
    assert "xavier_init" in fixes and "relu_family_activation" in fixes
    assert vanishing.remedies[0].id == "xavier_init"
