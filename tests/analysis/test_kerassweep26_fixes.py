"""kerassweep26: tf.keras 2's ``TFOpLambda`` layers (``x + y``, ``x * 0.5``, ``tf.nn.relu``, ``tf.concat``:
the keras-io transformer's residual adds, geolife_transformer) were refused as custom layer code, with
a count that missed the layers reached only through an op's kwargs operand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import translate_or_graph
from gradhealth.analysis.importers.keras_torch import KerasNet, load_stored


def _ref(layer: str, **kwargs: Any) -> list[Any]:
    """``[layer, node, tensor, kwargs]``: tf.keras 2 writes ``name: None`` among an op's kwargs."""
    return [layer, 0, 0, {**kwargs, "name": None}]


def _layer(cls: str, name: str, inbound: Any, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg}, "inbound_nodes": inbound}


def _op(function: str, name: str, node: Any) -> dict[str, Any]:
    """A TFOpLambda as tf.keras 2.4-2.15 writes it: the op's name, the first argument's tensor
    with the other arguments as its kwargs."""
    return _layer("TFOpLambda", name, [node], function=function, trainable=True, dtype="float32")


def _model(ops: list[dict[str, Any]], last: str) -> dict[str, Any]:
    layers = [
        _layer("InputLayer", "inp", [], batch_input_shape=[None, 6]),
        _layer("Dense", "d1", [[_ref("inp")]], units=8, activation="linear"),
        _layer("Dense", "d2", [[_ref("inp")]], units=8, activation="linear"),
        *ops,
        _layer("Dense", "out", [[_ref(last)]], units=3, activation="linear"),
    ]
    return {"class_name": "Functional", "keras_version": "2.11.0",
            "config": {"name": "m", "layers": layers, "input_layers": [["inp", 0, 0]],
                       "output_layers": [["out", 0, 0]]}}


def test_tf_ops_compute_what_tensorflow_computes() -> None:
    ops = [
        _op("__operators__.add", "tf.__operators__.add", _ref("d1", y=["d2", 0, 0])),
        _op("math.multiply", "tf.math.multiply", _ref("tf.__operators__.add", y=0.5)),
        _op("math.subtract", "tf.math.subtract", ["_CONSTANT_VALUE", -1, 2.0,
                                                  {"y": ["tf.math.multiply", 0, 0], "name": None}]),
        _op("nn.relu", "tf.nn.relu", _ref("tf.math.subtract")),
        _op("concat", "tf.concat", [_ref("tf.nn.relu", axis=-1), _ref("d2", axis=-1)]),
    ]
    _, _, graph = translate_or_graph(_model(ops, "tf.concat"))
    assert graph is not None
    rng = np.random.default_rng(26)
    w = {"d1": [rng.normal(size=(6, 8)), rng.normal(size=8)], "d2": [rng.normal(size=(6, 8)), rng.normal(size=8)],
         "out": [rng.normal(size=(16, 3)), rng.normal(size=3)]}
    net = KerasNet(graph, None).double()
    load_stored(net, w)
    x = rng.normal(size=(5, 6))
    d1, d2 = x @ w["d1"][0] + w["d1"][1], x @ w["d2"][0] + w["d2"][1]
    hidden = np.maximum(2.0 - (d1 + d2) * 0.5, 0.0)
    want = np.concatenate([hidden, d2], -1) @ w["out"][0] + w["out"][1]
    got = net(torch.tensor(x)).detach().numpy()
    assert np.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_a_residual_read_through_kwargs_reaches_every_layer() -> None:
    # x = d2 + d1 where only the kwargs operand leads back to d1's branch: d1 must be in the graph
    ops = [_op("__operators__.add", "tf.__operators__.add", _ref("d2", y=["d1", 0, 0]))]
    _, _, graph = translate_or_graph(_model(ops, "tf.__operators__.add"))
    assert graph is not None
    assert {"d1", "d2"} <= {n.name for n in graph.nodes}
    assert graph.parameters == 2 * (6 * 8 + 8) + 8 * 3 + 3


def test_an_op_with_no_layer_is_refused_naming_every_one_and_its_function() -> None:
    ops = [_op("__operators__.add", "tf.__operators__.add", _ref("d1", y=["d2", 0, 0]))]
    # four reductions, the first reached only through its kwargs operand's reader
    ops.append(_op("math.reduce_mean", "tf.math.reduce_mean", _ref("tf.__operators__.add", axis=-1)))
    for k in range(1, 4):
        ops.append(_op("math.reduce_mean", f"tf.math.reduce_mean_{k}",
                       _ref("d2", axis=-1, keepdims=True)))
    ops.append(_op("math.gather", "tf.math.gather", _ref("tf.math.reduce_mean_1", indices=[0])))
    ops.append(_op("__operators__.add", "tf.__operators__.add_1",
                   _ref("tf.math.reduce_mean_2", y=["tf.math.reduce_mean", 0, 0])))
    ops.append(_op("__operators__.add", "tf.__operators__.add_2",
                   _ref("tf.math.reduce_mean_3", y=["tf.__operators__.add_1", 0, 0])))
    ops.append(_op("__operators__.add", "tf.__operators__.add_3",
                   _ref("tf.__operators__.add_2", y=["tf.math.gather", 0, 0])))
    with pytest.raises(ModelError) as err:
        translate_or_graph(_model(ops, "tf.__operators__.add_3"))
    said = str(err.value)
    assert "TFOpLambda x5 (tf.math.reduce_mean, tf.math.reduce_mean_1, tf.math.reduce_mean_2 and 2 more)" in said
    assert "tf.math.reduce_mean x4" in said and "tf.math.gather" in said
    assert "custom layer" not in said
