"""Remedies: every patch applies to the user's spec and yields a valid spec; ranking is honest."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits, make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.catalog import FINDINGS, REMEDIES
from tests.helpers import example, mlp

EXAMPLES = ["deep_sigmoid_mlp", "relu_xavier_mlp", "std1_mlp", "residual_mlp_unnormalised", "tanh_rnn_long",
            "transformer_post_ln"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_patch_applies_and_yields_a_valid_spec(name, checked):
    doc = checked(name)
    assert doc.findings
    for finding in doc.findings:
        assert finding.code in FINDINGS
        for remedy in finding.remedies:
            assert remedy.id in REMEDIES and remedy.snippet and remedy.change
            if remedy.patch:
                patched = jsonpatch.apply_patch(copy.deepcopy(example(name)), remedy.patch)
                make_plan(parse_spec(patched))  # raises if the patch broke the spec
                assert remedy.verified is not None, remedy.id
            assert "{" not in remedy.change


@pytest.mark.parametrize("name", EXAMPLES)
def test_measured_failures_are_never_ranked_above_measured_fixes(name, checked):
    for finding in checked(name).findings:
        ranks = ["fixed" if r.recommended and r.verified else "unverified" if r.verified is None else "failed"
                 for r in finding.remedies]
        order = {"fixed": 0, "unverified": 1, "failed": 2}
        assert [order[r] for r in ranks] == sorted(order[r] for r in ranks)
        for r in finding.remedies:
            if r.verified and not r.verified.fixed:
                # (a partial one, a decade nearer healthy with nothing introduced, stays recommended)
                assert not r.recommended or r.verified.improved


def test_residual_remedy_keeps_a_width_changing_first_layer():
    raw = mlp(10, width=64, activation="sigmoid", init={"scheme": "normal", "std": 0.05})
    raw["input"]["shape"] = [100]
    doc = run_architecture_check(raw, CheckOptions(Thresholds(), Limits()))
    res = next(r for r in doc.findings[0].remedies if r.id == "residual_connections")
    patched = jsonpatch.apply_patch(copy.deepcopy(raw), res.patch)
    assert patched["layers"][0].get("repeat", 1) == 1
    assert patched["layers"][1]["type"] == "residual" and patched["layers"][1]["repeat"] == 9


def test_no_verify_proposes_without_simulating():
    doc = run_architecture_check(example("relu_xavier_mlp"), CheckOptions(Thresholds(), Limits(), verify=False))
    assert doc.simulation.remedies_simulated == 0
    assert all(r.verified is None for f in doc.findings for r in f.remedies)


def test_thresholds_are_settings():
    raw = mlp(6, width=64, init="xavier_normal")  # chi1 = 1/2: ratio 2^-2.5 ~ 0.18
    assert run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), verify=False)).status == "healthy"
    strict = Thresholds(vanishing_warning=0.5)
    doc = run_architecture_check(raw, CheckOptions(strict, Limits(), verify=False))
    assert [f.code for f in doc.findings] == ["vanishing_gradient"]


def test_the_clipping_reference_is_the_best_simulation_that_removed_the_finding():
    from gradhealth.analysis.check import clip_reference
    from gradhealth.core import remedies as R
    from gradhealth.core.document import Verified

    def tried(after: float, fixed: bool, side_effects: list[str]) -> R.Remedy:
        remedy = R.orthogonal_init("rnn")
        remedy.verified = Verified(metric="m", before=1e5, after=after, fixed=fixed,
                                   side_effects=side_effects)
        remedy.recommended = fixed and not side_effects
        return remedy

    failed, traded, clean = tried(1e4, False, []), tried(1e-3, True, ["vanishing_through_time"]), \
        tried(0.4, True, [])
    unsimulated = R.lower_learning_rate()
    results = {id(failed): "failed", id(traded): "traded", id(clean): "clean"}
    code = "exploding_through_time"
    assert clip_reference(code, [failed, traded, clean, unsimulated], results) == "clean"
    # no clean fix: the one that removed the explosion, though it left a vanishing
    assert clip_reference(code, [failed, traded, unsimulated], results) == "traded"
    # nothing removed it: no reference (the broken network's norms would clip nothing)
    assert clip_reference(code, [failed, unsimulated], results) is None


def test_weights_all_zero_pass_no_gradient_and_one_remedy_reinitialises_them_all():
    from gradhealth import check_architecture

    spec = {"input": {"shape": [64]}, "seeds": 2, "batch_size": 32,
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "zeros", "repeat": 4},
                       {"type": "linear", "out_features": 10, "init": "zeros"}]}
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error" and f.summary.startswith("no gradient reaches layers[0].linear#0 from layers[1].linear")
    assert len(f.evidence.model_dump()["zero_weights"]) == 5 and "all exactly zero" in f.explanation
    [init] = [r for r in f.remedies if r.id == "he_init"]
    assert {op["path"] for op in init.patch} == {"/layers/0/init", "/layers/1/init"}
    assert init.verified is not None and init.verified.fixed and init.recommended
    # a readout alone at zero (DiT's final layer) passes gradient from the second step: healthy, with a
    # note that no gradient reached the hidden layers at initialisation (specsweep12 p3)
    spec["layers"][0]["init"] = "kaiming_normal"
    doc = check_architecture(spec, verify=False)
    [note] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert doc.status == "healthy" and note.severity == "info" and note.evidence.model_dump()["depth_unmeasured"]


@pytest.mark.parametrize("activation,bias,code", [("sigmoid", 6.0, "saturation"), ("relu", -3.0, "dead_units")])
def test_a_bias_the_spec_sets_far_from_zero_is_offered_zeros(activation: str, bias: float, code: str) -> None:
    # a +6 bias pins sigmoid units at 1, a -3 bias keeps ReLU units at 0, whatever the weights' init
    # (bias_init is a field of its own: a new init leaves it): zeroing it is the direct fix
    from gradhealth.library import check_architecture

    init = "xavier_normal" if activation == "sigmoid" else "kaiming_normal"
    spec = {"input": {"shape": [64]}, "seeds": 2,
            "layers": [{"type": "linear", "out_features": 64, "activation": activation, "init": init,
                        "bias_init": {"scheme": "constant", "value": bias}, "repeat": 4},
                       {"type": "linear", "out_features": 10}]}
    [f] = [f for f in check_architecture(spec).findings if f.code == code]
    [fix] = [r for r in f.remedies if r.id == "zero_bias"]
    assert fix.patch == [{"op": "add", "path": "/layers/0/bias_init", "value": {"scheme": "zeros"}}]
    assert fix.verified is not None and fix.verified.fixed and "nn.init.zeros_(m.bias)" in fix.snippet
    # biases at zero, or torch's default: nothing to zero
    spec["layers"][0]["bias_init"] = {"scheme": "zeros"}
    assert not [r for f in check_architecture(spec).findings for r in f.remedies if r.id == "zero_bias"]


def test_a_remedy_that_leaves_nothing_to_measure_says_so_beside_its_null_after() -> None:
    # tanh at std 1 saturates; a ReLU in its place has no saturation to count: after is null, and the
    # note says why, where a measured remedy (Xavier) has a number and no note
    from gradhealth.library import check_architecture
    layers = [{"type": "linear", "out_features": 64, "activation": "tanh", "init": {"scheme": "normal", "std": 1.0}}
              for _ in range(6)]
    doc = check_architecture({"name": "t", "input": {"shape": [32]}, "batch_size": 64,
                              "layers": [*layers, {"type": "linear", "out_features": 10}]})
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    by_id = {r.id: r.verified for r in sat.remedies if r.verified is not None}
    swap = by_id["relu_family_activation"]
    # (and so not fixed: nothing measured that the saturation's harm is gone, kerassweep26)
    assert swap.after is None and not swap.fixed and swap.not_measured
    assert "no unit of the kind it counts remains" in (swap.note or "")
    assert by_id["xavier_init"].after is not None and by_id["xavier_init"].note is None
