"""A narrow deep ReLU stack is born dead in some draws: a layer whose every unit is off for the whole
batch passes no gradient, and nothing before it learns (Lu et al. 2019). A Keras benchmark model
(16 x Dense(5) + Activation('relu')) checked on fresh weights read healthy: one seed of three was
dead, the geometric means over seeds were all 0, and no ratio could be formed."""

from __future__ import annotations

from typing import Any

import pytest

from gradhealth.library import check_architecture


def _stack(width: int, depth: int, separate: bool, seeds: int = 3) -> dict[str, Any]:
    layers: list[dict[str, Any]] = []
    for _ in range(depth):
        if separate:  # Keras' Dense then Activation('relu')
            layers += [{"type": "linear", "out_features": width, "init": "kaiming_uniform"},
                       {"type": "activation", "activation": "relu"}]
        else:
            layers.append({"type": "linear", "out_features": width, "activation": "relu", "init": "kaiming_uniform"})
    layers.append({"type": "linear", "out_features": 1})
    return {"name": "narrow", "input": {"shape": [2]}, "batch_size": 64, "seeds": seeds,
            "loss": "binary_cross_entropy", "layers": layers}


@pytest.mark.parametrize("separate", [True, False])
def test_a_stack_born_dead_is_a_dead_units_error_with_a_verified_fix(separate: bool) -> None:
    doc = check_architecture(_stack(3, 30, separate))
    [f] = [f for f in doc.findings if f.code == "dead_units"]
    assert f.severity == "error" and f.summary.startswith("born dead in ") and f.evidence.value >= 0.5
    dead = f.evidence.dead_seeds
    assert sorted({s for ss in dead.values() for s in ss}) == [0, 1, 2] and f.evidence.seeds == 3
    # its value is the share of draws born dead (here over many further draws of this small stack:
    # nearly all), over its threshold of none
    ev = f.evidence.model_extra
    assert f.evidence.metric == "born_dead_seeds" and f.evidence.value == ev["born_dead_draws"] / ev["draws"]
    assert f.evidence.value > 0.9 > f.evidence.threshold
    # a remedy's before and after are the rule's own measure, and named so
    fixed = next(r.verified for r in f.remedies if r.verified is not None)
    assert fixed.metric == "max_dead_fraction" and 0 < fixed.before <= 1
    # each dead layer in a seed: every unit off for the whole batch, and nothing reached the first layer
    first = doc.layers[0]
    assert first.grad_norm == 0.0  # the geometric mean over seeds of a layer no gradient reached
    assert any(r.verified is not None and r.verified.fixed for r in f.remedies)


def test_a_wide_stack_is_not_born_dead() -> None:
    doc = check_architecture(_stack(64, 16, True), verify=False)
    assert not [f for f in doc.findings if f.code == "dead_units"]
