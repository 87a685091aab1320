"""--no-verify remedy order: an init remedy that mean-field theory predicts leaves a vanishing
gradient over its threshold comes after the structural remedies (specsweep11 other problem 2: a
5-layer sigmoid stack got xavier_init first, which the verified run measured not to fix it)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gradhealth import check_architecture
from gradhealth.analysis.check import predicted_init_effect
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import parse_spec


def _stack(activation: str, depth: int, init: dict[str, Any]) -> dict[str, Any]:
    return {"input": {"shape": [256]}, "batch_size": 32, "seeds": 1, "optimizer": {"type": "sgd", "lr": 0.01},
            "layers": [{"type": "linear", "out_features": 256, "activation": activation, "init": init,
                        "bias_init": {"scheme": "zeros"}, "repeat": depth},
                       {"type": "linear", "out_features": 10}]}


def _ids(spec: dict[str, Any]) -> list[str]:
    doc = check_architecture(spec, verify=False)
    found = next(f for f in doc.findings if f.code == "vanishing_gradient")
    return [r.id for r in found.remedies]


def test_xavier_cannot_fix_a_sigmoid_stack_so_it_comes_after_structural_remedies() -> None:
    # sigmoid' <= 1/4, so under Xavier (sigma_w^2 = 1 for equal fans) each layer passes at most
    # sqrt(1 * 1/16) = 0.25 of the gradient: 4 steps give at most 0.25^4 = 3.9e-3, under the 1e-2 warning
    assert 0.25 ** 4 < 1e-2
    ids = _ids(_stack("sigmoid", 5, {"scheme": "default"}))
    assert "xavier_init" in ids and "relu_family_activation" in ids
    assert ids.index("xavier_init") > max(ids.index(i) for i in ("relu_family_activation", "batch_norm"))


def test_an_init_theory_says_fixes_keeps_its_place() -> None:
    # ReLU at Var(W) = 0.0025 (sigma_w^2 = 0.64): each step passes sqrt(0.64 / 2) = 0.566, 9 steps 6e-3;
    # He's sigma_w^2 = 2 is the edge of chaos: the predicted change is (2 / 0.64)^(9/2)
    spec = _stack("relu", 10, {"scheme": "normal", "std": 0.05})
    ids = _ids(spec)
    assert ids[0] == "he_init"
    result = simulate(make_plan(parse_spec(spec)))
    doc = check_architecture(spec, verify=False)
    he = next(r for f in doc.findings for r in f.remedies if r.id == "he_init")
    effect = predicted_init_effect(he, result)
    assert effect is not None
    sigma_w2 = 0.05 ** 2 * 256
    assert effect == pytest.approx(4.5 * math.log10(2 / sigma_w2), abs=0.1)
