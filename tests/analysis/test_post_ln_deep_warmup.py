"""specsweep12 u11: a declared warm-up makes a Post-LN stack of up to 12 layers a note (Xiong et al.
2020: 6 and 12 layers train with it), not a deeper one: Liu et al. 2020 report 18 Post-LN layers
diverging on WMT'14 with warm-up to Adam's 1e-3. Deeper than 12, the warm-up counts only where its
peak step is BERT-large's size (24 layers at Adam 1e-4 on weights of std 0.02: 5e-3), 1e-2 or less."""

from __future__ import annotations

import pytest

from gradhealth.analysis.rules import POST_LN_DEEP_WARM_STEP, POST_LN_WARMUP_DEPTH
from gradhealth.library import check_architecture


def _spec(depth: int, lr: float, warmup: int) -> dict:
    return {"input": {"tokens": {"vocab_size": 100, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "optimizer": {"type": "adam", "lr": lr, "warmup_steps": warmup},
            "layers": [{"type": "embedding", "embedding_dim": 32},
                       {"type": "transformer_encoder", "d_model": 32, "heads": 4, "ff_width": 64,
                        "norm_first": False, "num_layers": depth},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}


def _finding(depth: int, lr: float, warmup: int, verify: bool = False):  # noqa: ANN202
    doc = check_architecture(_spec(depth, lr, warmup), verify=verify)
    [f] = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    return f


def test_the_thresholds_are_the_literatures() -> None:
    assert POST_LN_WARMUP_DEPTH == 12  # BERT-base's 12 train with warm-up, Liu et al.'s 18 do not
    # BERT-large's peak step (1e-4 / 0.02) under it, Liu et al.'s (1e-3 / 0.044) over it
    assert 1e-4 / 0.02 < POST_LN_DEEP_WARM_STEP < 1e-3 / 0.044


def test_warm_up_to_a_large_rate_trains_12_layers_not_18() -> None:
    # Adam's first step is about lr per weight: 1e-2 on d_model 32 (weights of rms 0.1-0.2) is ~0.05-0.1
    shallow = _finding(12, 1e-2, 8000)
    assert shallow.severity == "info" and "which is what trains such a stack" in shallow.summary
    deep = _finding(18, 1e-2, 8000)
    step = deep.evidence.model_extra["max_update_ratio"]
    assert step > POST_LN_DEEP_WARM_STEP
    assert deep.severity == "warning"
    assert "trains Post-LN stacks of up to 12 layers" in deep.summary
    assert deep.evidence.model_extra["deep_warmup_update_ratio_threshold"] == POST_LN_DEEP_WARM_STEP
    # the remedy offered brings the peak step to half the bar (the declared warm-up kept, none shorter added)
    [lower] = [r for r in deep.remedies if r.id == "lower_learning_rate"]
    assert lower.params["factor"] == pytest.approx(0.5 * POST_LN_DEEP_WARM_STEP / step)
    assert "warmup_steps" not in lower.params


def test_a_deep_stack_warmed_up_to_a_small_peak_step_is_a_note() -> None:
    # lr 1e-3 on d_model 32: a step of ~5e-3..1e-2; 5e-4 keeps it under 1e-2 and over the 1e-3 a
    # warm-up starts at (so the warm-up, not the gentle rate alone, is what makes it a note)
    f = _finding(24, 5e-4, 10000)
    step = f.evidence.model_extra["max_update_ratio"]
    assert 1e-3 < step <= POST_LN_DEEP_WARM_STEP
    assert f.severity == "info" and "small enough for this depth" in f.summary


def test_two_stacks_apart_are_judged_by_the_deeper() -> None:
    spec = _spec(10, 1e-2, 8000)
    enc = spec["layers"][1]
    spec["layers"][1:2] = [enc, {"type": "linear", "out_features": 32, "activation": "relu"}, enc]
    doc = check_architecture(spec, verify=False)
    [f] = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    assert f.severity == "info"  # two 10-layer stacks, each trained by the warm-up
