"""What the seventh spec sweep found: a Post-LN stack split across spec entries was not one stack."""

from __future__ import annotations

import pytest

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.plan import Limits
from gradhealth.analysis.thresholds import Thresholds


def _encoder(layers: int, norm_first: bool = False) -> dict:
    return {"type": "transformer_encoder", "d_model": 32, "heads": 4, "ff_width": 64, "num_layers": layers,
            "norm_first": norm_first}


def _spec(*middle: dict) -> dict:
    return {"input": {"tokens": {"vocab_size": 200, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "layers": [{"type": "embedding", "embedding_dim": 32}, *middle, {"type": "pool", "mode": "mean"},
                       {"type": "linear", "out_features": 5, "activation": "identity"}]}


def _post_ln(spec: dict) -> list[str]:
    doc = run_architecture_check(spec, CheckOptions(Thresholds(), Limits(), verify=False))
    return [layer for f in doc.findings if f.code == "post_ln_depth_risk" for layer in f.evidence.layers]


@pytest.mark.parametrize("split", [
    [_encoder(3), _encoder(3)],
    [{"type": "block", "layers": [_encoder(3), _encoder(3)]}],
    [_encoder(2), _encoder(2), _encoder(2)],
])
def test_consecutive_post_ln_entries_are_one_stack(split: list[dict]) -> None:
    whole = _post_ln(_spec(_encoder(6)))
    assert len(whole) > 0  # the six-layer stack in one entry: flagged, as before
    assert len(_post_ln(_spec(*split))) == len(whole)


def test_a_layer_between_or_a_pre_ln_stack_ends_the_stack() -> None:
    between = {"type": "linear", "out_features": 32, "activation": "relu"}
    assert _post_ln(_spec(_encoder(3), between, _encoder(3))) == []
    assert _post_ln(_spec(_encoder(3), _encoder(3, norm_first=True), _encoder(3))) == []


def test_a_fix_that_leaves_hardtanh_units_under_their_bar_says_so() -> None:
    # std 0.2 weights saturate a hardtanh MLP; Xavier leaves about 32% of units past the kink (a
    # correct init's share), which the rule does not judge: after is null, but units of the kind remain
    spec = {"input": {"shape": [64]}, "batch_size": 64, "seeds": 1,
            "layers": [{"type": "linear", "out_features": 128, "activation": "hardtanh", "repeat": 8,
                        "init": {"scheme": "normal", "std": 0.2}},
                       {"type": "linear", "out_features": 10, "activation": "identity"}]}
    doc = run_architecture_check(spec, CheckOptions(Thresholds(), Limits(), verify=True))
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    xavier = next(r for r in sat.remedies if r.id == "xavier_init")
    assert xavier.verified is not None and xavier.verified.fixed and xavier.verified.after is None
    assert "52%" in (xavier.verified.note or "") and "no unit of the kind it counts remains" not in xavier.verified.note
    relu = next(r for r in sat.remedies if r.id == "relu_family_activation")
    assert relu.verified is not None and "no unit of the kind it counts remains" in (relu.verified.note or "")


def test_a_fix_whose_largest_ratio_left_is_the_exempt_head_says_so() -> None:
    # SGD at 0.1 with an L2 weight decay of 5 moves every layer by half its norm (the decay's 0.5);
    # lowered, the hidden layers move by little and the fresh head by about 0.15: fixed, after 0.15
    spec = {"input": {"shape": [256]}, "optimizer": {"type": "sgd", "lr": 0.1, "weight_decay": 5.0},
            "layers": [{"type": "linear", "out_features": 256, "activation": "relu", "init": "kaiming_normal",
                        "repeat": 4, "bias_init": "zeros"},
                       {"type": "linear", "out_features": 10, "activation": "identity"}]}
    doc = run_architecture_check(spec, CheckOptions(Thresholds(), Limits(), verify=True))
    [f] = [f for f in doc.findings if f.code == "large_updates"]
    decay = next(r for r in f.remedies if r.id == "weight_decay")
    v = decay.verified
    assert v is not None and v.fixed and v.after is not None and v.after > Thresholds().large_update_warning
    assert v.note is not None and "output layer's first step" in v.note
    rate = next(r for r in f.remedies if r.id == "lower_learning_rate")
    assert rate.verified is not None and rate.verified.note is None  # under the warning: nothing to say


def test_a_spec_output_nearly_all_in_its_tails_is_a_warning_with_no_activation_swap() -> None:
    # a sigmoid output behind a constant bias of 8: sigmoid(8) = 0.99966, every unit past 0.98
    spec = {"input": {"shape": [32]}, "seeds": 2, "loss": "mse",
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 16, "activation": "sigmoid",
                        "bias_init": {"scheme": "constant", "value": 8.0}}]}
    doc = run_architecture_check(spec, CheckOptions(Thresholds(), Limits(), verify=True))
    [f] = [f for f in doc.findings if f.code == "saturation"]
    assert f.severity == "warning" and f.evidence.model_dump()["output"] is True and f.evidence.value > 0.9
    ids = [r.id for r in f.remedies]
    assert "relu_family_activation" not in ids and "batch_norm" not in ids
    fix = next(r for r in f.remedies if r.id == "zero_bias")
    assert fix.verified is not None and fix.verified.fixed and fix.recommended
