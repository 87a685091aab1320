"""peersweep21 (NeuraLint's synthetic LeNet mutants): P1 a constant output layer's exactly-zero
gradient below it read as ``small_updates`` ("raise Adam's rate to 6.24e+04"), and "no gradient
reaches" lost behind a softmax; P2 zero kernels in several layers, whose dead_units init remedy
patched the first alone; P3 wording. Every model is built here; the expected figures come from
theory (a constant readout passes back w * sum(dL/dz) = 0 under a softmax) or from the test's own
arithmetic."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import gradhealth
from gradhealth.analysis import spec as S
from gradhealth.analysis.findings import Detection
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import translate_or_graph
from gradhealth.analysis.remedies import raise_rate
from gradhealth.core import remedies as R


def _constant_readout(softmax: bool) -> nn.Module:
    """784-64-64 ReLU (torch's default init) -> Linear(10) with every weight 0.1 (Keras'
    Constant(0.1)), optionally a softmax the loss applies again."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)]
    out = layers[-1]
    assert isinstance(out, nn.Linear)
    nn.init.constant_(out.weight, 0.1)
    nn.init.zeros_(out.bias)
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


@pytest.mark.parametrize("softmax", [False, True])
def test_a_constant_readout_is_no_gradient_not_a_small_learning_rate(softmax: bool) -> None:
    net = _constant_readout(softmax)
    x = torch.rand(64, 784)
    # theory, checked independently: every row of the readout is equal, so what it passes back is
    # 0.1 * sum_k dL/dz_k, and the sum of cross-entropy's (and a softmax's) gradient over classes is 0
    xd, nd = x.double(), _constant_readout(softmax).double()
    h = nd[:4](xd).detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(nd[4:](h), torch.randint(0, 10, (64,)))
    (g,) = torch.autograd.grad(loss, h)
    assert float(g.abs().max()) < 1e-15
    doc = gradhealth.check_module(net, x, loss="cross_entropy", optimizer={"type": "adam", "lr": 1e-3},
                                  input_range=(0.0, 1.0), verify=False)
    codes = {f.code: f for f in doc.findings}
    rows = {r.name: r for r in doc.layers}
    assert rows["0"].grad_norm == 0.0 and rows["2"].grad_norm == 0.0
    # no rate moves a layer that gets no gradient: the rate is not blamed, and no x6e7 is proposed
    assert "small_updates" not in codes
    assert not any(r.id == "raise_learning_rate" for f in doc.findings for r in f.remedies)
    # every hidden output gradient exactly 0 (0/0, no ratio): still "no gradient reaches", the softmax
    # case too, whose readout's weights have no spread (std 0) but are not zero
    vanishing = codes["vanishing_gradient"]
    assert vanishing.severity == "error" and "no gradient reaches 0 (Linear)" in vanishing.summary
    assert "symmetric_weights" in codes


def _small(value: float, fastest: float) -> Detection:
    return Detection("small_updates", "warning", "median_update_ratio", value, "", "",
                     {"max_update_ratio": fastest, "value": value})


def test_a_raised_rate_never_moves_the_fastest_layer_past_a_healthy_step() -> None:
    opt = S.OptimizerSpec(type="adam", lr=1e-3)
    # the median layer at 1e-8, the fastest at 1e-5: x1e4 takes it to 1e-4 and the fastest to 0.1,
    # past the healthy top of 1e-2: no rate is proposed, and the explanation says why
    det = _small(1e-8, 1e-5)
    assert raise_rate(det, opt) is None
    assert "No learning rate is proposed" in det.explanation and "1e+03x" in det.explanation
    # the median at 1.6e-12 beside a readout moving 0.00937 (the sweep's repro): x6.24e7 never offered
    assert raise_rate(_small(1.6e-12, 0.00937), opt) is None
    # within the range: x1e2 takes the median to 1e-4 and the fastest to 1e-3 <= 1e-2
    found = raise_rate(_small(1e-6, 1e-5), opt)
    assert found is not None
    remedy, new_lr = found
    assert new_lr == pytest.approx(1e-3 * R.UPDATE_RATIO_FLOOR_TARGET / 1e-6)
    assert remedy.params["factor"] == pytest.approx(100.0)


def test_zero_kernels_in_several_layers_dead_units_names_them_all() -> None:
    import numpy as np

    from gradhealth.analysis.rules import _zero_weight_cause
    from gradhealth.analysis.simulate import UnitStats

    def unit(name: str, rms: float) -> UnitStats:
        return UnitStats(name, f"/layers/{name}", "linear", "relu", 0, True, 8, 8,
                         {"weight_rms": np.array([rms, rms]), "weight_std": np.array([rms, rms])})

    class _Result:
        units = [unit("a", 0.0), unit("b", 0.0), unit("c", 0.3), unit("d", 0.0)]

    dead = Detection("dead_units", "error", "max_dead_fraction", 1.0, "", "", {"layers": ["a"]})
    found = _zero_weight_cause(dead, _Result())  # type: ignore[arg-type]  # (the units are all it reads)
    # every all-zero layer, not only the dead one: re-initialising a alone leaves b outputting 0
    assert found.evidence["zero_weights"] == ["a", "b", "d"]
    assert "vanishing_gradient" in found.explanation
    # a dead layer with weights of its own (a bias too negative): no zero-weight cause, unchanged
    other = Detection("dead_units", "error", "max_dead_fraction", 1.0, "", "", {"layers": ["c"]})
    assert "zero_weights" not in _zero_weight_cause(other, _Result()).evidence  # type: ignore[arg-type]


def test_zero_kernels_in_a_spec_dead_units_init_remedy_covers_every_zero_layer() -> None:
    # a spec: three ReLU layers with zero weights and biases (Keras' zeros kernel, zero bias); the
    # first outputs relu(0) = 0 for every input (dead), the next ones are held at 0 by it and by
    # their own zero weights, so re-initialising the first alone leaves the second dead
    zero = {"type": "linear", "out_features": 32, "activation": "relu", "init": {"scheme": "zeros"},
            "bias_init": {"scheme": "zeros"}}
    spec = {"input": {"shape": [16]}, "batch_size": 32, "seeds": 2,
            "loss": {"type": "cross_entropy", "classes": 4},
            "layers": [zero, zero, zero, {"type": "linear", "out_features": 4}]}
    doc = gradhealth.check_architecture(spec)
    dead = next(f for f in doc.findings if f.code == "dead_units")
    init = next(r for r in dead.remedies if r.id == "he_init")
    paths = sorted(op["path"] for op in init.patch)
    assert paths == ["/layers/0/init", "/layers/1/init", "/layers/2/init"]
    assert init.verified is not None and init.verified.fixed


def _keras_config(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 12, 12, 1], "name": "x"}}, *layers]}}


def test_a_shape_error_the_graph_door_found_marks_the_spec_reason_secondary() -> None:
    # 12x12 -> conv, stride 3, 'same' (which the spec translation does not read) -> 4x4 -> pool 2 -> 2x2
    # -> pool 2 -> 1x1 -> pool 2: does not fit (NeuraLint's inv_filter_size, small)
    conv = {"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [3, 3],
                                               "padding": "same", "activation": "relu"}}
    pools = [{"class_name": "MaxPooling2D", "config": {"name": f"p{i}", "pool_size": [2, 2], "strides": [2, 2],
                                                       "padding": "valid"}} for i in range(3)]
    tail = [{"class_name": "Flatten", "config": {"name": "f"}},
            {"class_name": "Dense", "config": {"name": "d", "units": 3, "activation": "softmax"}}]
    assert math.floor((math.ceil(12 / 3) / 2) / 2) == 1  # the last pool's input, 1x1
    with pytest.raises(ModelError) as err:
        translate_or_graph(_keras_config([conv, *pools, *tail]))
    detail = err.value.detail
    assert "p2 (MaxPooling2D): the pool [2, 2] does not fit the input [1, 1, 2]" in detail
    assert "(secondary, a limit of the spec translation tried first" in detail
    assert "(as a spec:" not in detail


def test_symmetric_weights_says_each_layers_value_and_unit_count() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))
    for m, v in ((net[2], 0.1), (net[4], 0.1)):
        nn.init.constant_(m.weight, v)
    doc = gradhealth.check_module(net, torch.rand(32, 20), loss="cross_entropy", verify=False)
    f = next(f for f in doc.findings if f.code == "symmetric_weights")
    assert "(0.1 in each)" in f.summary and "and so on" not in f.summary
    # each layer's own count: 12 units in 2, 5 in 4 (never "its 12 units" for both)
    assert "2 (Linear)'s 12" in f.summary and "4 (Linear)'s 5" in f.summary and "its 12 units" not in f.summary
