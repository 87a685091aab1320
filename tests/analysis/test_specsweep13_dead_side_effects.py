"""A remedy is not blamed for a figure the unchanged network had worse (specsweep13 problem 4,
lu2019_narrow_relu_w2_d30). A deep width-2 ReLU stack is born dead: its hidden layers get no
gradient at all, so their first step is 0 and small_updates, which leaves such layers out, does not
fire. batch_norm revives the units (dead fraction -> 0), and its changed network steps those layers
by a tiny but nonzero amount; that small_updates was read as a side effect the remedy made, so the
only verified fix of the dead units was `recommended: false`."""

from __future__ import annotations

from typing import Any

from gradhealth.library import check_architecture


def _narrow(width: int, depth: int) -> dict[str, Any]:
    return {"name": "narrow", "input": {"shape": [2], "distribution": "uniform", "scale": 1}, "loss": "mse",
            "batch_size": 64,
            "layers": [{"type": "linear", "out_features": width, "activation": "relu", "init": "kaiming_normal",
                        "bias_init": "zeros", "repeat": depth},
                       {"type": "linear", "out_features": 1}],
            "optimizer": {"type": "adam", "lr": 0.001}}


def test_a_verified_fix_of_born_dead_units_is_recommended() -> None:
    doc = check_architecture(_narrow(2, 30))
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    # the unchanged network: the first layer gets no gradient (a dead layer above it), so its step is 0
    assert doc.layers[0].grad_norm == 0.0 and doc.layers[0].update_ratio == 0.0
    assert not [f for f in doc.findings if f.code == "small_updates"]
    bn = next(r for r in dead.remedies if r.id == "batch_norm")
    assert bn.verified is not None and bn.verified.fixed and bn.verified.after == 0.0
    # layers that moved 0 before and move a little now were not made slow by the remedy
    assert "small_updates" not in bn.verified.side_effects
    assert bn.recommended
