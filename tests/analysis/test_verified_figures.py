"""specsweep12 u07/u10: a remedy's verification shows the figures its verdict was judged on. Pre-LN
"fixed" a Post-LN stack whose last-layer norm barely moved (2.32 -> 2.28): the rule fires on the
stack's depth, which goes 6 -> 0 (``verified.judged``). Xavier on a chaotic tanh net was "not fixed,
introduces vanishing_gradient" beside exploding's max(gradient ratio, activation growth) of 0.59,
which hid the gradient ratio the side effect was judged on (``verified.side_effect_figures``)."""

from __future__ import annotations

import math

import jsonpatch

from gradhealth.library import check_architecture
from gradhealth.report.context import verified_text
from gradhealth.report.text import render_text


def test_pre_ln_shows_the_post_ln_depth_it_was_judged_on() -> None:
    spec = {"input": {"tokens": {"vocab_size": 100, "seq_len": 16}}, "batch_size": 8, "seeds": 1,
            "layers": [{"type": "embedding", "embedding_dim": 32},
                       {"type": "transformer_encoder", "d_model": 32, "heads": 4, "ff_width": 64,
                        "norm_first": False, "num_layers": 6},
                       {"type": "pool", "mode": "mean"}, {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    pre = next(r for r in f.remedies if r.id == "pre_layer_norm")
    v = pre.verified
    assert v is not None and v.fixed and v.metric == "last_layer_grad_norm"
    assert v.judged is not None and (v.judged.metric, v.judged.before, v.judged.after) == ("post_ln_depth", 6, 0)
    assert "post_ln_depth 6 → 0 (last_layer_grad_norm" in verified_text(pre, doc)
    assert "FIXED: post_ln_depth 6 -> 0 (last_layer_grad_norm" in render_text(doc)


def test_a_side_effect_shows_its_own_figure() -> None:
    # Schoenholz et al. 2017: tanh at sigma_w^2 = 4, sigma_b^2 = 0.05 is chaotic (the gradient grows);
    # Xavier (sigma_w^2 = 1) with the same biases is in the ordered phase, chi_1 < 1: it shrinks
    width, depth = 128, 50  # 1.158 per layer (u10): 1.3e3x over 50; Xavier: 0.864 per layer, 7.7e-4
    spec = {"input": {"shape": [width]}, "batch_size": 64, "seeds": 1,
            "layers": [{"type": "linear", "out_features": width, "activation": "tanh", "repeat": depth,
                        "init": {"scheme": "normal", "std": 2 / math.sqrt(width)},
                        "bias_init": {"scheme": "normal", "std": math.sqrt(0.05)}},
                       {"type": "linear", "out_features": 10}]}
    doc = check_architecture(spec)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    xavier = next(r for r in f.remedies if r.id == "xavier_init")
    v = xavier.verified
    assert v is not None and "vanishing_gradient" in v.side_effects
    [side] = [s for s in v.side_effect_figures if s.code == "vanishing_gradient"]
    assert side.metric == "output_grad_ratio_first_to_last"
    # measured independently: the patched spec checked on its own gives the same ratio
    fixed = check_architecture(jsonpatch.apply_patch(spec, xavier.patch))
    [van] = [g for g in fixed.findings if g.code == "vanishing_gradient"]
    assert side.after is not None and side.after < 1e-2
    assert math.isclose(side.after, van.evidence.value, rel_tol=1e-6)
    assert side.before == f.evidence.model_extra["grad_ratio"]  # the chaotic net's ratio, > 1
    assert v.after is not None and v.after > 10 * side.after  # the finding's own metric hid it
    assert f"introduces vanishing_gradient (output_grad_ratio_first_to_last {side.before:.3g} -> {side.after:.3g})" \
        in render_text(doc)
