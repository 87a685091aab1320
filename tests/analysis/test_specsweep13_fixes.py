"""specsweep13: fixes from a sweep of published / textbook architecture specs."""

from __future__ import annotations

from gradhealth.analysis.check import verdict_note
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.library import check_architecture


def _zero_tanh() -> dict:
    # every weight 0 (Goodfellow 2016 Sec. 8.4): no gradient passes any layer
    return {"input": {"shape": [8]}, "seeds": 2, "layers": [
        {"type": "linear", "out_features": 4, "activation": "tanh", "init": "zeros", "repeat": 2},
        {"type": "linear", "out_features": 3, "init": "zeros"}]}


def test_p1_zero_weights_offer_no_activation_swap_and_every_fix_passes_gradient() -> None:
    # specsweep13 P1: tanh -> relu with He init on the hidden layers alone, the zero readout kept, read
    # "verified, fixed: 0 -> 0" under a rationale (ReLU does not shrink the gradient) that is not the cause
    doc = check_architecture(_zero_tanh())
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.evidence.model_extra["zero_weights"]
    ids = [r.id for r in f.remedies]
    assert "relu_family_activation" not in ids
    init = next(r for r in f.remedies if r.id == "xavier_init")
    # every zero layer re-initialised together: the gradient reaches the first layer
    assert init.verified is not None and init.verified.fixed and init.verified.after > 0
    for r in f.remedies:
        if r.verified is not None and r.verified.fixed:
            assert r.verified.after and r.verified.after > 0


def test_p1_fixed_beside_after_zero_says_the_zero_left_is_a_designed_readout() -> None:
    # what is left all zero after a change (a readout whose own weights get a gradient) learns at the
    # first step: "fixed" beside "after 0" says so
    spec = {"input": {"shape": [8]}, "seeds": 2, "layers": [
        {"type": "linear", "out_features": 16, "activation": "relu", "init": "kaiming_normal", "repeat": 2},
        {"type": "linear", "out_features": 3, "init": "zeros"}]}
    after = simulate(make_plan(parse_spec(spec)))
    note = verdict_note(0.0, True, "vanishing_gradient", after, Thresholds())
    assert note is not None and "layers[1].linear is still all zero" in note and "first step" in note


def _bn_mlp(residual: bool) -> dict:
    # Yang et al. 2019: BN-ReLU MLP of depth 100 at SGD 0.02; every hidden layer BN-fed (scale-invariant)
    block = {"type": "linear", "out_features": 64, "norm": "batchnorm", "activation": "relu",
             "init": "kaiming_normal"}
    hidden = ([block, {"type": "residual", "layers": [block], "repeat": 99}] if residual
              else [{**block, "repeat": 100}])
    return {"input": {"shape": [64]}, "batch_size": 64, "seeds": 2,
            "layers": [*hidden, {"type": "linear", "out_features": 10}], "optimizer": {"type": "sgd", "lr": 0.02}}


def test_p3_a_large_updates_side_effect_is_shown_by_the_steps_the_rule_judges() -> None:
    # specsweep13 P3: "large_updates max_update_ratio before 132480 after 2.54": the before was a BN-fed
    # layer's raw step (not judged: its direction changes by r/sqrt(1+r^2) < 1), the after the head's
    from gradhealth.analysis.check import side_effect_figures
    from gradhealth.analysis.rules import judged_update_ratios

    t = Thresholds()
    before = simulate(make_plan(parse_spec(_bn_mlp(False))))
    after = simulate(make_plan(parse_spec(_bn_mlp(True))))
    steps_before, steps_after = judged_update_ratios(before), judged_update_ratios(after)
    assert max(steps_before.values()) > 1e3  # a BN-fed layer's raw step, which is not judged
    [fig] = side_effect_figures(["large_updates"], [], before, after, t)
    assert fig.metric == "max_judged_update_ratio"
    # the figures are the head's own step on each network (the only layer outside the norms)
    assert fig.before == steps_before["layers[1].linear"] < 0.1
    assert fig.after == steps_after["layers[2].linear"] > 1.0
