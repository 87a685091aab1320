"""peersweep20 (deepmufl's StackOverflow benchmark as Keras 2 HDF5 configs): fixes.

- dm57407973 / dm58572274 / dm64395424: binary cross-entropy on a raw (linear or ReLU) output was
  explained with categorical cross-entropy's division by the sum, and its remedy's torch line was
  the multi-class nn.CrossEntropyLoss for a one-unit binary model.
- dm49583466: a 1-20-20-20 sigmoid stack at U(+-0.05) got a false exploding_gradient ("weights too
  large") beside a correct vanishing_gradient: the per-layer forward gain was read off the std of
  sigmoid outputs, which sit near 0.5, not off the second moment mean-field theory propagates.
"""

from __future__ import annotations

import math
from typing import Any

from gradhealth import check_architecture


def _raw_output_spec(loss: str, units: int) -> dict[str, Any]:
    return {
        "input": {"shape": [8]}, "batch_size": 64, "seeds": 2,
        "loss": {"type": loss, "from_logits": False},
        "layers": [{"type": "linear", "out_features": 16, "activation": "relu"},
                   {"type": "linear", "out_features": units}],
    }


def _mismatch(doc: Any) -> Any:
    f = next((f for f in doc.findings if f.code == "output_loss_mismatch"), None)
    assert f is not None, doc.summary
    return f


def test_binary_cross_entropy_on_a_raw_output_is_explained_as_a_clip_with_a_binary_remedy() -> None:
    doc = check_architecture(_raw_output_spec("binary_cross_entropy", 1), verify=False)
    f = _mismatch(doc)
    # a zero-mean linear output is at or below 0 for about half the samples: each is clipped
    assert f.evidence.value >= 0.4
    assert "by their sum" not in f.explanation and "divides" not in f.explanation
    assert "clips each raw output" in f.explanation and "sigmoid" in f.explanation
    remedy = next(r for r in f.remedies if r.id == "logits_loss")
    assert "nn.BCEWithLogitsLoss()" in remedy.snippet
    assert "CrossEntropyLoss" not in remedy.snippet.replace("BCEWithLogitsLoss", "")
    assert "BinaryCrossentropy(from_logits=True)" in remedy.snippet


def test_categorical_cross_entropy_on_raw_outputs_keeps_the_sum_and_the_multi_class_loss() -> None:
    doc = check_architecture(_raw_output_spec("cross_entropy", 4), verify=False)
    f = _mismatch(doc)
    assert "divides the raw outputs by their sum" in f.explanation
    remedy = next(r for r in f.remedies if r.id == "logits_loss")
    assert "nn.CrossEntropyLoss()" in remedy.snippet and "BCEWithLogitsLoss" not in remedy.snippet
    assert "CategoricalCrossentropy(from_logits=True)" in remedy.snippet


def _sigmoid_stack(bound: float) -> dict[str, Any]:
    init = {"scheme": "uniform", "bound": bound}
    return {
        "input": {"shape": [1], "range": [0, 1]}, "batch_size": 32, "seeds": 3,
        "loss": {"type": "mse", "target_range": [0, 1]},
        "layers": [{"type": "linear", "out_features": 20, "activation": "sigmoid", "init": init,
                    "bias_init": {"scheme": "zeros"}, "repeat": 3},
                   {"type": "linear", "out_features": 1}],
    }


def test_a_small_init_sigmoid_stack_vanishes_and_does_not_explode() -> None:
    bound, width = 0.05, 20
    doc = check_architecture(_sigmoid_stack(bound), verify=False)
    codes = {f.code: f for f in doc.findings}
    assert "vanishing_gradient" in codes, doc.summary
    assert "exploding_gradient" not in codes, doc.summary
    # mean-field: sigma_w2 = fan_in * bound^2 / 3; the hidden layers' inputs are sigmoid outputs near
    # 0.5 (second moment about 1/4), so q = sigma_w2 / 4 and each output is 0.5 + h/4 with h ~ N(0, q):
    # std sqrt(q) / 4, whatever the previous layer's std, and root mean square about 0.5 throughout
    sigma_w2 = width * bound ** 2 / 3
    predicted_std = math.sqrt(sigma_w2 / 4) / 4
    hidden = [layer for layer in doc.layers if layer.activation == "sigmoid"]
    assert len(hidden) == 3
    for layer in hidden[1:]:
        assert math.isclose(layer.activation_std, predicted_std, rel_tol=0.35), (layer.name, layer.activation_std)
        rms = math.hypot(layer.activation_mean, layer.activation_std)
        assert math.isclose(rms, 0.5, rel_tol=0.02)
    # the std climbs from the first layer (fan-in 1) towards that fixed point: a std ratio over 2 a
    # layer, which is no gain (the weights' scale gives sqrt(sigma_w2 / sigma_w2*) << 1)
    assert hidden[2].activation_std / hidden[0].activation_std > 2


def test_a_large_init_relu_stack_still_explodes() -> None:
    # U(+-1) at width 256 on ReLU: sigma_w2 = 256 / 3 = 85 >> 2 (He's): a real gain, still found
    spec = {
        "input": {"shape": [64]}, "batch_size": 32, "seeds": 2, "loss": "mse",
        "layers": [{"type": "linear", "out_features": 256, "activation": "relu",
                    "init": {"scheme": "uniform", "bound": 1.0}, "bias_init": {"scheme": "zeros"}, "repeat": 4},
                   {"type": "linear", "out_features": 1}],
    }
    doc = check_architecture(spec, verify=False)
    assert any(f.code == "exploding_gradient" for f in doc.findings), doc.summary


def test_a_long_signal_conv1d_window_is_read_and_an_absurd_one_refused_naming_the_bound() -> None:
    # peersweep20 dm62440336: a Conv1D of kernel 10000, stride 5000 over raw audio was refused at 4096
    from gradhealth.analysis.importers.keras_graph import size_problems

    assert size_problems("Conv1D", {"filters": 8, "kernel_size": [10000], "strides": [5000]}) == []
    problems = size_problems("Conv1D", {"filters": 8, "kernel_size": [10**7], "strides": [1]})
    assert [p[0] for p in problems] == ["kernel_size/0"]
    assert "65536" in problems[0][1] and "no setting raises it" in problems[0][1]


def _bottleneck_spec(seeds: int) -> dict[str, Any]:
    def dense(n: int) -> dict[str, Any]:
        return {"type": "linear", "out_features": n, "activation": "relu", "init": "xavier_uniform",
                "bias_init": {"scheme": "zeros"}}

    return {"input": {"shape": [1], "range": [0.4, 25]}, "batch_size": 5, "seeds": seeds,
            "loss": {"type": "mse", "target_range": [0.2, 12.5]}, "layers": [dense(1), dense(9), dense(1)]}


def test_a_one_unit_relu_born_dead_at_a_small_batch_is_dead_units_and_no_remedy_is_blamed_for_it() -> None:
    # peersweep20 dm56452176: 1 -> Dense(1, relu) on inputs all positive, zero bias: the one unit is off
    # for every sample exactly when its weight is negative, half the draws; then no gradient reaches
    # any layer. At a batch of 5 it went unreported, and the linear output's one-seed re-simulation
    # (seed 0, a dead draw) was said to "introduce vanishing_gradient"
    seeds = 4
    doc = check_architecture(_bottleneck_spec(seeds))
    dead = next((f for f in doc.findings if f.code == "dead_units"), None)
    assert dead is not None, doc.summary
    ev = dead.evidence.model_dump()
    born = ev["dead_seeds"]["layers[0].linear"]
    assert 0 < len(born) < seeds and ev["born_dead_draws"] == len(born) and ev["seeds"] == seeds
    assert f"born dead in {len(born)} of {seeds} seeds" in dead.summary
    mismatch = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    linear = next(r for r in mismatch.remedies if r.id == "output_activation")
    assert linear.verified is not None
    # the original network shows the same zero on the same draws: no side effect of the remedy's
    assert "vanishing_gradient" not in linear.verified.side_effects
    assert "dead_units" not in linear.verified.side_effects
