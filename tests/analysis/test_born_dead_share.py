"""Born dead is a share of a network's draws, not a property of every draw. A narrow ReLU stack (the
peer's repaired 8 x Dense(5, relu, he_uniform)) is born dead in a few per cent of initialisations:
one dead seed of ten made ``dead_units`` an error and, through a geometric mean of 0, a
``vanishing_gradient`` error for the whole network, while the other nine seeds were healthy; a
re-initialisation with the variance it already had was then "verified" by one seed that lived."""

from __future__ import annotations

from typing import Any

import pytest

from gradhealth.analysis import simulate as simulate_module
from gradhealth.analysis.findings import depth_ratio
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import InitSpec, parse_spec
from gradhealth.core.rules import rule
from gradhealth.library import check_architecture

#: Keras' he_uniform, as the Keras import writes it
HE_UNIFORM = {"scheme": "variance_scaling", "scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


def _stack(width: int, depth: int, init: Any = "kaiming_uniform", seeds: int = 10,
           batch: int = 128) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [{"type": "linear", "out_features": width, "activation": "relu",
                                     "init": init, "bias_init": "zeros"} for _ in range(depth)]
    layers.append({"type": "linear", "out_features": 1})
    return {"name": "narrow", "input": {"shape": [2]}, "batch_size": batch, "seeds": seeds,
            "loss": "binary_cross_entropy", "layers": layers}


def test_a_minority_of_born_dead_seeds_is_one_warning_not_two_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # seed 0 of these ten draws is born dead, the nine others live; over the seeds alone (the network
    # too large for more draws) the count is said, and any is a warning
    monkeypatch.setattr(simulate_module, "BORN_DEAD_DRAW_PARAMETERS", 0)
    doc = check_architecture(_stack(5, 8), verify=False)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert dead.severity == "warning"
    assert dead.summary.startswith("born dead in 1 of 10 seeds: ")
    assert dead.evidence.value == 0.1
    # the live seeds' gradient passes: no "no gradient reaches the first layer" for the network
    assert not [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert doc.status == "warning"


def test_a_small_stacks_share_over_many_draws_is_a_note_under_a_tenth() -> None:
    # the same stack is small enough for hundreds of draws: a few per cent die (peersweep11 h07)
    doc = check_architecture(_stack(5, 8), verify=False)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    ev = dead.evidence.model_extra
    assert ev["draws_beyond_seeds"] and ev["draws"] >= 200
    assert dead.evidence.value < 0.1 and dead.severity == "info" and doc.status == "healthy"
    assert f"of {ev['draws']} initialisations" in dead.summary


def test_the_depth_ratio_is_taken_over_the_live_seeds() -> None:
    result = simulate(make_plan(parse_spec(_stack(5, 8))))
    assert depth_ratio(result)[0] == 0.0  # the geometric mean over every seed: one dead seed makes it 0
    value = rule("vanishing_gradient").architecture.measure(result)
    assert 0.1 < value < 10  # ||dL/dh|| first over last, over the nine seeds that live

    from gradhealth.analysis.rules import live_seeds

    live, left_out = live_seeds(result)
    assert left_out == [0] and live.seeds == 9 and value == depth_ratio(live)[0]


def test_most_seeds_born_dead_stays_an_error() -> None:
    doc = check_architecture(_stack(3, 30, init="default", batch=64, seeds=4), verify=False)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert dead.severity == "error"
    assert dead.summary.startswith("born dead in ") and dead.evidence.value >= 0.5


def test_an_init_with_the_variance_the_layers_have_is_not_offered() -> None:
    # Keras' he_uniform on a ReLU stack: kaiming_normal gives the same variance, 2/fan_in
    doc = check_architecture(_stack(3, 30, init=HE_UNIFORM, batch=64, seeds=4), verify=False)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert "he_init" not in [r.id for r in dead.remedies]
    assert "relu_family_activation" in [r.id for r in dead.remedies]
    # a different variance is still offered
    doc = check_architecture(_stack(3, 30, init={"scheme": "normal", "std": 0.05}, batch=64, seeds=4),
                             verify=False)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert "he_init" in [r.id for r in dead.remedies]

    from gradhealth.analysis.rules import init_variance

    # He's variance 2/fan_in, whatever the distribution's shape
    for same in (HE_UNIFORM, {"scheme": "he_uniform"}, {"scheme": "kaiming_normal"},
                 {"scheme": "uniform", "bound": (3 * 2 / 5) ** 0.5}):
        assert abs(init_variance(InitSpec.model_validate(same), 5, 5, "relu") - 2 / 5) < 1e-12


def test_a_remedy_of_a_born_dead_network_is_judged_over_every_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulate_module, "BORN_DEAD_DRAW_PARAMETERS", 0)  # the seeds' count, as before
    # he_init changes the scale (std 0.3 -> 1/sqrt 2), not which units a zero-bias ReLU turns off:
    # one re-simulated seed that lived said "fixed"; the share over the finding's ten seeds decides
    doc = check_architecture(_stack(4, 8, init={"scheme": "normal", "std": 0.3}))
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert dead.severity == "warning" and dead.evidence.value == 0.1  # seed 9
    [he] = [r.verified for r in dead.remedies if r.id == "he_init"]
    assert he is not None and he.seeds == 10 and not he.fixed
    # a partial simulation of a network that may be born dead goes on to every seed; a wide one does not
    assert simulate(make_plan(parse_spec(_stack(5, 8))), seeds=1).seeds == 10
    assert simulate(make_plan(parse_spec(_stack(64, 4))), seeds=1).seeds == 1
