"""A norm layer of its own after a layer's activation (Keras' ``Conv2D(activation='relu')`` then
``BatchNormalization()``) normalises that layer as a ``norm`` on its pre-activation does
(peersweep17 tdc_deepCNN_low_lr, _random_init, _high_lr: a VGG-style CNN with BatchNorm after each
ReLU, fed inputs in [0, 1], read "exploding_gradient warning, grows 103x across 14 layers", all of
it one BatchNorm's backward 1/sigma at the first conv, and was offered ``batch_norm`` for layers a
BatchNorm already follows).

The theory the tests check against: a norm divides out its input's scale, and ReLU, pooling,
dropout and a flatten are positively homogeneous (f(c z) = c f(z), c > 0), so a layer a norm reads
through them is scale-invariant: L(c W) = L(W), whence dL/dh at its output is exactly 1/c times as
large when its weights are c times as large (Euler), and every other layer's gradient is unchanged.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from gradhealth.analysis.check import CheckOptions, run_architecture_check
from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.plan import Limits, make_plan, read_by_norms
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import Diagnosis
from tests.analysis.test_keras_import import _dense, _init, _layer, _seq

BN: dict[str, Any] = {"type": "batchnorm"}


def _check(raw: dict[str, Any], verify: bool = False) -> Diagnosis:
    return run_architecture_check(raw, CheckOptions(Thresholds(), Limits(), verify=verify))


def _conv(channels: int, scale: float = 2.0) -> dict[str, Any]:
    # Keras' he_uniform (variance_scaling 2, fan_in, uniform); `scale` times 16 is 4x the weights
    return {"type": "conv2d", "out_channels": channels, "kernel_size": 3, "padding": "same", "activation": "relu",
            "bias": False, "init": {"scheme": "variance_scaling", "scale": scale, "mode": "fan_in",
                                    "distribution": "uniform"}}


def _vgg(first_scale: float = 2.0, low: float = 0.0, high: float = 1.0) -> dict[str, Any]:
    """The benchmark's VGG shape, small: (conv-ReLU, BatchNorm) x 2 then a max pool, three times with
    16, 32, 32 channels, a Dense(64)-ReLU, BatchNorm and the readout, on inputs uniform in [low, high]."""
    layers: list[dict[str, Any]] = []
    for k, c in enumerate((16, 32, 32)):
        layers += [_conv(c, first_scale if k == 0 else 2.0), dict(BN), _conv(c), dict(BN),
                   {"type": "maxpool2d", "kernel_size": 2, "stride": 2}]
    layers += [{"type": "flatten"},
               {"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_uniform",
                "bias_init": "zeros"}, dict(BN),
               {"type": "linear", "out_features": 10, "init": "xavier_uniform"}]
    return {"input": {"shape": [3, 16, 16], "range": [low, high]}, "batch_size": 32, "seeds": 2,
            "loss": "cross_entropy", "layers": layers}


def _linear(width: int, std: float, *, bias: bool = True, activation: str = "relu") -> dict[str, Any]:
    layer: dict[str, Any] = {"type": "linear", "out_features": width, "activation": activation,
                             "init": {"scheme": "normal", "std": std}, "bias": bias}
    if bias:
        layer["bias_init"] = "zeros"
    return layer


def _names(raw: dict[str, Any]) -> set[str]:
    return read_by_norms(make_plan(parse_spec(raw)))


def test_which_layers_a_norm_layer_reads_follows_the_homogeneous_steps() -> None:
    raw = {"input": {"shape": [3, 8, 8]}, "layers": [
        _conv(4),                                                    # 0: ReLU, pool, dropout, then BN
        {"type": "maxpool2d", "kernel_size": 2}, {"type": "dropout", "p": 0.2}, dict(BN),
        {"type": "flatten"},
        _linear(8, 0.1, bias=False), _linear(8, 0.1, bias=False),   # 5, 6: bias-free ReLU chain, then BN
        dict(BN),
        _linear(8, 0.1), _linear(8, 0.1),                            # 8, 9: 8 has a bias: only 9's scale
        {"type": "activation", "activation": "relu"}, dict(BN),      #    reaches the norm
        _linear(8, 0.1, activation="tanh"), dict(BN),                # 12: tanh(c z) != c tanh(z)
        _linear(8, 0.1), {"type": "activation", "activation": "sigmoid"}, dict(BN),  # 14: a sigmoid after
        {"type": "block", "layers": [_linear(8, 0.1)]}, {"type": "layernorm"},  # 17: through a block
        {"type": "residual", "layers": [_linear(8, 0.1)]}, dict(BN),  # 19: x + f(x) is no one layer's
        {"type": "linear", "out_features": 3}]}
    assert _names(raw) == {"layers[0].conv2d", "layers[5].linear", "layers[6].linear", "layers[9].linear",
                           "layers[17].block.layers[0].linear"}


def test_the_layer_a_norm_layer_reads_is_scale_invariant_and_marked_normalised() -> None:
    # the first conv's weights 1.7x He's, then 6.9x (the same draw): far enough from its norm's eps (1e-5
    # beside a variance; a nearly constant channel's is about that at He's scale) for the invariance
    base, scaled = _check(_vgg(6.0)), _check(_vgg(96.0))
    g0, g1 = ([layer.output_grad_norm or math.nan for layer in doc.layers] for doc in (base, scaled))
    # dL/dh of the first conv: 1/4 as large; every other layer's as large
    assert g1[0] / g0[0] == pytest.approx(0.25, rel=0.02)
    assert g1[1:] == pytest.approx(g0[1:], rel=0.02)
    flags = {layer.name: layer.normalised for layer in base.layers}
    assert all(flags[n] for n in flags if ".conv2d" in n) and flags["layers[16].linear"]
    assert not flags["layers[18].linear"]  # the readout: no norm reads it
    assert not any(flags[n] for n in flags if ".batchnorm" in n)


def test_growth_only_at_a_norms_input_is_a_note_not_an_explosion() -> None:
    doc = _check(_vgg())
    # the chain judged: the layers with parameters (convs, norms, the hidden Dense), the readout aside
    chain = [layer for layer in doc.layers if layer.name != "layers[18].linear"
             and not any(k in layer.name for k in (".maxpool", ".flatten"))]
    norms = [layer.output_grad_norm or math.nan for layer in chain]
    [found] = [f for f in doc.findings if f.code == "exploding_gradient"]
    ev = found.evidence.model_dump()
    first, last = norms[0], norms[-1]
    assert chain[-1].name == "layers[17].batchnorm"
    assert first / last > 100  # the first conv's gradient is past the warning bar (124x in the sweep's shape)
    assert found.severity == "info" and doc.status == "healthy"
    assert ev["norm_input_layers"] == ["layers[0].conv2d"]
    # the jump: the first conv's gradient over the one just after its BatchNorm
    assert ev["norm_input_jump"] == pytest.approx(first / (doc.layers[1].output_grad_norm or 1.0), rel=1e-6)
    assert ev["grad_ratio_elsewhere"] == pytest.approx(max(norms[1:]) / last, rel=1e-6) and ev["grad_ratio_elsewhere"] < 100
    assert "scale invariance" in found.summary and found.remedies == []
    # its words are the run's inputs' (kerassweep27: "inputs in [0, 1]" was said of a standard-normal run)
    assert "drawn uniform in [0, 1]" in found.explanation and "standardised to zero mean" in found.explanation
    # the jump is the nonzero mean's: inputs in [-0.5, 0.5] (zero mean) leave no finding
    centred = _check(_vgg(low=-0.5, high=0.5))
    assert not [f for f in centred.findings if f.code == "exploding_gradient"]


def test_growth_where_no_norm_reads_the_layers_is_still_a_warning_and_only_they_get_a_norm() -> None:
    # post-activation BatchNorm over the first five layers, then eight layers at 2x He's std with
    # no norm: the gradient doubles back through each of them (theory: 2^7 = 128x over the stretch)
    width = 128
    he = math.sqrt(2 / width)
    layers = [_linear(width, math.sqrt(2 / 64)), dict(BN)]
    for _ in range(4):
        layers += [_linear(width, he), dict(BN)]
    layers += [_linear(width, 2 * he) for _ in range(8)] + [{"type": "linear", "out_features": 10}]
    doc = _check({"input": {"shape": [64]}, "batch_size": 64, "seeds": 2, "loss": "cross_entropy",
                  "layers": layers})
    [found] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert found.severity == "warning" and doc.status != "healthy"
    g = {layer.name: layer.output_grad_norm or math.nan for layer in doc.layers}
    stretch = g["layers[10].linear"] / g["layers[17].linear"]
    assert stretch == pytest.approx(2.0 ** 7, rel=0.25)
    normed = {layer.name for layer in doc.layers if layer.normalised}
    assert normed == {f"layers[{k}].linear" for k in (0, 2, 4, 6, 8)}
    [bn] = [r for r in found.remedies if r.id == "batch_norm"]
    # the change names the first four of the eight and counts the rest; the patch reaches all eight
    assert "layers[10]" in bn.change and "and 4 more" in bn.change
    assert not any(f"layers[{k}]," in bn.change or bn.change.endswith(f"layers[{k}]") for k in (0, 2, 4, 6, 8))
    assert {p["path"].split("/")[2] for p in bn.patch or []} == {str(k) for k in range(10, 18)}


def test_weights_too_large_between_norms_cancel_out_as_the_norm_divides_them() -> None:
    # a bias-free ReLU stretch between two BatchNorms: its weights' scale c is divided out by the
    # norm after it, so the gradient at the stretch's input is the same at c = 1 and c = 2 (2^6 in
    # all) and no growth is found; the forward's 2^6 is undone by the norm
    width = 64
    he = math.sqrt(2 / width)

    def net(c: float) -> dict[str, Any]:
        layers = [_linear(width, he), dict(BN)] + [_linear(width, c * he, bias=False) for _ in range(6)] + [
            dict(BN), _linear(width, he), dict(BN), {"type": "linear", "out_features": 10}]
        return {"input": {"shape": [width]}, "batch_size": 64, "seeds": 1, "loss": "cross_entropy", "layers": layers}

    plain, large = _check(net(1.0)), _check(net(2.0))
    g1 = {layer.name: layer.output_grad_norm or math.nan for layer in plain.layers}
    g2 = {layer.name: layer.output_grad_norm or math.nan for layer in large.layers}
    assert g2["layers[1].batchnorm"] == pytest.approx(g1["layers[1].batchnorm"], rel=0.02)
    # inside the stretch dL/dh_k goes as 1/||h_k||: 2^-k of the plain net's after the k-th large layer.
    # (Not at layers[7], the norm's input: there its channels that the ReLU holds off for the whole
    # batch, variance 0 at any scale, are divided by the norm's sqrt(eps) alone; the ReLU passes none
    # of that back.)
    for k in range(1, 6):
        name = f"layers[{k + 1}].linear"
        assert g2[name] / g1[name] == pytest.approx(2.0 ** -k, rel=0.02), name
    assert all(layer.normalised for layer in large.layers if layer.name.endswith(".linear")
               and layer.name != "layers[11].linear")
    assert not [f for f in large.findings if f.code == "exploding_gradient" and f.severity != "info"]


def test_a_keras_dense_relu_then_batchnormalization_is_normalised() -> None:
    cfg = _seq(_dense("hidden", 32, "relu", _init("HeUniform")), _layer("BatchNormalization", "bn"),
               _dense("out", 4, "softmax"), shape=[16])
    doc = check_keras(json.dumps(cfg).encode(), loss="cross_entropy", seeds=1, batch_size=32, verify=False)
    assert {layer.name: layer.normalised for layer in doc.layers if "bn" not in layer.name} == {
        "hidden": True, "out": False}


def test_a_live_modules_batch_norm_remedy_leaves_out_the_layers_a_norm_reads() -> None:
    import torch
    from torch import nn

    from gradhealth.analysis.module_check import check_module

    torch.manual_seed(0)
    width = 128
    front: list[nn.Module] = []
    for _ in range(5):
        front += [nn.Linear(width, width), nn.ReLU(), nn.BatchNorm1d(width)]
    tail: list[nn.Module] = []
    for _ in range(8):
        layer = nn.Linear(width, width)
        nn.init.normal_(layer.weight, std=2 * math.sqrt(2 / width))  # 2x He's: 2x per layer back
        nn.init.zeros_(layer.bias)
        tail += [layer, nn.ReLU()]
    model = nn.Sequential(*front, *tail, nn.Linear(width, 10))
    doc = check_module(model, torch.randn(64, width), seeds=1, verify=False)
    [found] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert found.severity == "warning"
    normed = [layer.name for layer in doc.layers if layer.normalised]
    assert normed == [str(3 * k) for k in range(5)]  # each Linear a BatchNorm reads after its ReLU
    [bn] = [r for r in found.remedies if r.id == "batch_norm"]
    # the snippet norms each of the eight unnormed Linears (15, 17, ..., 29), none a norm reads already
    # (run as pasted: modsweep47 made the eight alike lines one loop)
    fixed = copy.deepcopy(model)
    exec(bn.snippet, {"nn": nn, "model": fixed})  # noqa: S102 - the remedy's own code, run as a user would
    named = {str(k) for k, m in enumerate(fixed) if isinstance(m, nn.Sequential) and isinstance(m[-1], nn.BatchNorm1d)}
    assert not named & set(normed) and named == {str(k) for k in range(15, 30, 2)}


def _pre_activation(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with each BatchNorm layer moved onto the pre-activation of the layer before it."""
    layers: list[dict[str, Any]] = []
    for layer in raw["layers"]:
        if layer == BN and layers and layers[-1]["type"] in ("conv2d", "linear"):
            layers[-1] = {**layers[-1], "norm": "batchnorm"}
        else:
            layers.append(layer)
    return {**raw, "layers": layers}


def test_large_steps_of_layers_a_norm_reads_are_judged_as_with_the_norm_on_their_pre_activations() -> None:
    # SGD 0.1 momentum 0.9 (the usual BatchNorm CNN recipe): each conv's step is scale-invariant's,
    # judged on the first step up to the error level, whichever side of the ReLU the BatchNorm is on
    raw = {**_vgg(), "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}}
    post, pre = _check(raw), _check(_pre_activation(raw))
    assert sum(layer.type == "batchnorm" for layer in post.layers) == 7
    assert not any(layer.type == "batchnorm" for layer in pre.layers)

    def steps(doc: Diagnosis) -> list[str]:
        return [f.severity for f in doc.findings if f.code == "large_updates"]

    assert steps(post) == steps(pre) == []
    # (the steps are large: over the 0.1 warning line judged built up, for some conv)
    assert max(layer.judged_update_ratio or 0.0 for layer in post.layers if layer.type == "conv2d") > 0.1
