"""kerassweep27: the loss a Keras model implies is read from its output's activation past layers that
pass values on unchanged in meaning (an Activation('sigmoid') layer after Dense(1), MobileNet v1's
Reshape after its softmax, a Dropout, an Activation('linear')), in both doors; the CLI takes every
loss a model file's check takes; orthogonal_init is not proposed for recurrent layers already
initialised orthogonally; the norm-input note words the inputs actually simulated; `gradhealth fix`
refuses a model file in words."""

from __future__ import annotations

from typing import Any

import pytest

from gradhealth.analysis.importers.keras import check_keras
from tests.analysis.test_keras_import import _dense, _layer, _seq


def _tensor(name: str) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}


def _functional(shape: list[int], *layers: dict[str, Any]) -> dict[str, Any]:
    """A Keras 3 Functional chain: input -> layers..., each reading the one before."""
    out: list[dict[str, Any]] = [{"class_name": "InputLayer", "name": "x",
                                  "config": {"name": "x", "batch_shape": [None, *shape]}, "inbound_nodes": []}]
    previous = "x"
    for lay in layers:
        name = lay["config"]["name"]
        out.append({**lay, "name": name, "inbound_nodes": [{"args": [_tensor(previous)], "kwargs": {}}]})
        previous = name
    return {"class_name": "Functional", "config": {"name": "m", "layers": out, "input_layers": [["x", 0, 0]],
                                                   "output_layers": [[previous, 0, 0]]}}


def _grads(doc: Any) -> dict[str, float]:
    return {u.name: u.grad_norm for u in doc.layers if u.grad_norm is not None}


def _mismatch(doc: Any) -> list[Any]:
    return [f for f in doc.findings if f.code == "output_loss_mismatch"]


@pytest.mark.parametrize("tail", [
    [],
    [_layer("Dropout", "drop", rate=0.0)],  # (a rate of 0: the same network)
    [_layer("Activation", "lin", activation="linear")],
    [_layer("Flatten", "flat")],
])
def test_spec_door_a_separate_sigmoid_layer_after_dense_1_implies_binary_cross_entropy(tail: list[Any]) -> None:
    # catsdogs_cnn_json: Dense(1) then Activation('sigmoid') read as a regression under mse, which the
    # same net written Dense(1, activation='sigmoid') was not
    hidden = _dense("hidden", 16, "relu")
    split = check_keras(_seq(hidden, _dense("out", 1), _layer("Activation", "act", activation="sigmoid"), *tail,
                             shape=[12]), seeds=2, verify=False)
    merged = check_keras(_seq(hidden, _dense("out", 1, "sigmoid"), shape=[12]), seeds=2, verify=False)
    assert merged.simulation.loss == "binary_cross_entropy"
    assert split.simulation.loss == "binary_cross_entropy", split.summary
    assert not _mismatch(split), split.summary
    # the same network, the same draws: the same gradients as the merged form (the sigmoid folded in)
    assert _grads(split) == pytest.approx(_grads(merged), rel=1e-9)


def test_spec_door_a_softmax_layer_then_dropout_implies_cross_entropy() -> None:
    hidden = _dense("hidden", 16, "relu")
    split = check_keras(_seq(hidden, _dense("out", 5), _layer("Activation", "act", activation="softmax"),
                             _layer("Dropout", "drop", rate=0.0), shape=[12]), seeds=2, verify=False)
    merged = check_keras(_seq(hidden, _dense("out", 5, "softmax"), shape=[12]), seeds=2, verify=False)
    assert split.simulation.loss == merged.simulation.loss == "cross_entropy"
    assert _grads(split) == pytest.approx(_grads(merged), rel=1e-9)


@pytest.mark.parametrize("tail", [
    [_layer("Reshape", "reshape", target_shape=[7])],  # MobileNet v1's Reshape((1000,)) after its softmax
    [_layer("Reshape", "reshape", target_shape=[1, 7]), _layer("Flatten", "flat")],
    [_layer("Dropout", "drop", rate=0.0), _layer("Activation", "lin", activation="linear")],
])
def test_graph_door_a_softmax_before_shape_only_layers_implies_cross_entropy(tail: list[Any]) -> None:
    dense = {"class_name": "Dense", "config": {"name": "logits", "units": 7, "activation": "linear"}}
    act = {"class_name": "Activation", "config": {"name": "act_softmax", "activation": "softmax"}}
    mid = {"class_name": "Dense", "config": {"name": "mid", "units": 16, "activation": "relu"}}
    # a Reshape the spec door does not take: both through the graph door, with the same draws
    pre = {"class_name": "Reshape", "config": {"name": "pre", "target_shape": [16]}}
    split = check_keras(_functional([9], mid, pre, dense, act, *tail), seeds=2, verify=False)
    plain = check_keras(_functional([9], mid, pre, dense, act), seeds=2, verify=False)
    assert plain.simulation.loss == "cross_entropy"
    assert split.simulation.loss == "cross_entropy", split.summary
    assert not _mismatch(split), [f.summary for f in _mismatch(split)]
    # the softmax folded into the loss in both: the same gradients
    assert _grads(split) == pytest.approx(_grads(plain), rel=1e-9)


def test_graph_door_a_reshape_that_merges_the_softmax_rows_is_not_looked_through() -> None:
    # a softmax over 5 per position, reshaped to rows of 15: its rows are not the output's
    dense = {"class_name": "Dense", "config": {"name": "logits", "units": 5, "activation": "softmax"}}
    reshape = {"class_name": "Reshape", "config": {"name": "reshape", "target_shape": [15]}}
    doc = check_keras(_functional([3, 4], dense, reshape), seeds=1, verify=False)
    assert doc.simulation.loss == "mse"


def test_graph_door_a_separate_sigmoid_then_reshape_implies_binary_cross_entropy() -> None:
    mid = {"class_name": "Dense", "config": {"name": "mid", "units": 16, "activation": "relu"}}
    dense = {"class_name": "Dense", "config": {"name": "logit", "units": 1, "activation": "linear"}}
    act = {"class_name": "Activation", "config": {"name": "act", "activation": "sigmoid"}}
    reshape = {"class_name": "Reshape", "config": {"name": "reshape", "target_shape": [1]}}
    doc = check_keras(_functional([9], mid, dense, act, reshape), seeds=2, verify=False)
    assert doc.simulation.loss == "binary_cross_entropy", doc.summary
    assert not _mismatch(doc)


# --- orthogonal_init is never proposed for recurrent layers already initialised so --------------

def test_is_orthogonal_reads_w_wt_against_a_multiple_of_the_identity() -> None:
    import torch

    from gradhealth.analysis.module_check import orthogonal_gain

    torch.manual_seed(0)
    q = torch.nn.init.orthogonal_(torch.empty(16, 16))
    assert (orthogonal_gain(q) is not None) and (orthogonal_gain(0.5 * q) is not None)  # any gain: W W^T = g^2 I
    assert orthogonal_gain(torch.empty(16, 16).uniform_(-0.25, 0.25)) is None  # torch's default for weight_hh
    bent = q.clone()
    bent[0, 0] += 0.01  # off by far more than float32 round-off
    assert orthogonal_gain(bent) is None


def _rnn_config(init: Any) -> dict[str, Any]:
    rnn = {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 12, "activation": "tanh",
                                                 "return_sequences": False, **({"recurrent_initializer": init}
                                                                               if init is not None else {})}}
    out = {"class_name": "Dense", "config": {"name": "out", "units": 1, "activation": "linear"}}
    # a Reshape the spec door does not take: the graph door's remedies
    reshape = {"class_name": "Reshape", "config": {"name": "reshape", "target_shape": [1]}}
    return _functional([40, 3], rnn, out, reshape)


def _remedy_ids(doc: Any, code: str) -> list[str]:
    return [r.id for f in doc.findings if f.code == code for r in f.remedies]


@pytest.mark.parametrize(("init", "offered"), [
    # orthogonal_init draws at gain 1: Orthogonal(gain=0.3), a recurrence shrinking 0.3 a step, is
    # another init, which the remedy changes; Orthogonal() (gain 1) is the init already there
    ({"class_name": "Orthogonal", "config": {"gain": 0.3}}, True),
    ({"class_name": "Orthogonal", "config": {"gain": 1.0}}, None),
    (None, None),  # Keras' default recurrent_initializer: orthogonal
    ({"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}, True),
])
def test_keras_graph_door_orthogonal_init_only_for_a_layer_not_orthogonal(init: Any, offered: bool | None) -> None:
    # kerassweep27 sent_simplernn_stack: three SimpleRNNs at Keras' default (orthogonal) were offered it
    doc = check_keras(_rnn_config(init), seeds=2, verify=False)
    codes = {f.code for f in doc.findings}
    if offered is None and "vanishing_through_time" not in codes:
        return  # the default draw need not vanish; where it does, orthogonal_init is not offered
    assert "vanishing_through_time" in codes, doc.summary
    assert ("orthogonal_init" in _remedy_ids(doc, "vanishing_through_time")) is bool(offered)


def test_live_module_orthogonal_init_only_for_weights_not_orthogonal() -> None:
    import torch
    from torch import nn

    from gradhealth import check_module

    class Net(nn.Module):
        def __init__(self, gain: float | None) -> None:
            super().__init__()
            self.rnn = nn.RNN(3, 12, batch_first=True)
            self.out = nn.Linear(12, 1)
            if gain is not None:
                nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=gain)
            else:  # small, not orthogonal
                nn.init.normal_(self.rnn.weight_hh_l0, std=0.02)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.rnn(x)[0][:, -1])

    from gradhealth.analysis.module_check import orthogonal_already

    torch.manual_seed(0)
    x = torch.randn(16, 40, 3)
    plain = check_module(Net(None), x, loss="mse", seeds=2, verify=False)
    assert "orthogonal_init" in _remedy_ids(plain, "vanishing_through_time")
    # orthogonal_init draws at gain 1: a layer already there gets none, one orthogonal at another gain
    # (0.3: its recurrence shrinks 0.3 a step) is another init, which the remedy changes
    assert orthogonal_already(Net(1.0), None, ["rnn"]) == {"rnn"}
    assert orthogonal_already(Net(0.3), None, ["rnn"]) == set()
    ortho = check_module(Net(0.3), x, loss="mse", seeds=2, verify=False)
    assert "orthogonal_init" in _remedy_ids(ortho, "vanishing_through_time")


@pytest.mark.parametrize(("recurrent_initializer", "offered"), [(None, False), ("glorot_uniform", True)])
def test_stored_weights_orthogonal_init_follows_the_configs_recurrent_initializer(
        recurrent_initializer: str | None, offered: bool) -> None:
    # the sweep's own path: an .h5 of trained (not orthogonal) weights, loaded into the spec door's
    # network; training again from scratch draws the config's initialiser, orthogonal by default
    import numpy as np

    from tests.keras_files import keras2_h5

    extra = {"recurrent_initializer": recurrent_initializer} if recurrent_initializer else {}
    config = _seq(_layer("SimpleRNN", "rnn", units=12, activation="tanh", **extra), _dense("out", 1),
                  shape=[40, 3])
    rng = np.random.default_rng(0)
    stored = {"rnn": [("kernel", rng.standard_normal((3, 12)).astype(np.float32) * 0.5),
                      ("recurrent_kernel", rng.standard_normal((12, 12)).astype(np.float32) * 0.02),
                      ("bias", np.zeros(12, np.float32))],
              "out": [("kernel", rng.standard_normal((12, 1)).astype(np.float32)), ("bias", np.zeros(1, np.float32))]}
    doc = check_keras(keras2_h5(config, stored), seeds=2, verify=False, loss="mse")
    assert "as stored in the file" in doc.summary
    assert "vanishing_through_time" in {f.code for f in doc.findings}, doc.summary
    assert ("orthogonal_init" in _remedy_ids(doc, "vanishing_through_time")) is offered


# --- the norm-input note words the inputs the run simulated -------------------------------------

def _simulated(input_: dict[str, Any]) -> Any:
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.simulate import simulate
    from gradhealth.analysis.spec import parse_spec

    spec = {"input": input_, "layers": [{"type": "linear", "out_features": 4}], "seeds": 1, "batch_size": 4}
    return simulate(make_plan(parse_spec(spec)))


def test_the_norm_input_words_follow_the_simulated_inputs() -> None:
    # kerassweep27 mobilenet_v1_json: "inputs in [0, 1], whose nonzero mean ..." and "Inputs standardised
    # to zero mean remove most of it" on a run whose inputs were standard normal
    from gradhealth.analysis.rules import _norm_input_advice, _norm_input_cause

    normal = _simulated({"shape": [3]})
    assert normal.input_range is None
    assert "zero-mean, standard normal" in _norm_input_cause(normal)
    assert "[0, 1]" not in _norm_input_cause(normal) + _norm_input_advice(normal)
    assert "standardised" not in _norm_input_advice(normal)
    uniform = _simulated({"shape": [3], "distribution": "uniform", "scale": 2.0})
    assert "zero-mean, uniform in [-2, 2]" in _norm_input_cause(uniform)
    # U(0, 1): mean 0.5 over a std of 1/sqrt(12) = 0.29, a mean as large as the spread
    pixels = _simulated({"shape": [3], "range": [0, 1]})
    assert pixels.input_range == (0, 1)
    assert "drawn uniform in [0, 1]" in _norm_input_cause(pixels)
    assert "standardised to zero mean" in _norm_input_advice(pixels)
    # U(-1, 1): zero mean
    centred = _simulated({"shape": [3], "range": [-1, 1]})
    assert "zero-mean, uniform in [-1, 1]" in _norm_input_cause(centred)


def test_the_graph_door_carries_its_input_range() -> None:
    import torch
    from torch import nn

    from gradhealth.analysis.graph import GraphRun, InputSpec, simulate_graph

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4))
    drawn = simulate_graph(GraphRun(net, [InputSpec((4, 3))], "mse", 1))
    ranged = simulate_graph(GraphRun(net, [InputSpec((4, 3), uniform=(0.0, 1.0))], "mse", 1))
    given = simulate_graph(GraphRun(net, [InputSpec((4, 3), rows=torch.rand(4, 3) + 5)], "mse", 1))
    assert (drawn.input_range, drawn.inputs_given) == (None, False)
    assert (ranged.input_range, ranged.inputs_given) == ((0.0, 1.0), False)
    assert given.inputs_given


def test_a_remedys_change_names_the_keras_layer_not_the_spec_index() -> None:
    # catsdogs_cnn_json under mse: "end layers[14] with no activation" where the layer is activation_5
    doc = check_keras(_seq(_dense("hidden", 8, "relu"), _dense("out", 1),
                           _layer("Activation", "activation_5", activation="sigmoid"), shape=[6]),
                      loss="mse", seeds=1, verify=False)
    [remedy] = [r for f in _mismatch(doc) for r in f.remedies if r.id == "output_activation"]
    assert remedy.change.startswith("end activation_5 with no activation"), remedy.change
    assert "layers[" not in remedy.change
    # the patch still points into the spec the check made (its path, not a name)
    assert remedy.patch[0]["path"] == "/layers/2/activation"
