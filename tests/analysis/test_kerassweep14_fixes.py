"""kerassweep14: a Keras <= 2.1 Sequential nested in a Sequential (both bare layer lists), a custom
layer beside it, a Lambda without output_shape (the CarND input normalisation), and the summary
saying which weights a config alone was checked with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras, read_keras_training


def _dense(name: str, units: int, fan_in: int | None = None, act: str = "relu", std: float = 0.01) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": name, "trainable": True, "units": units, "activation": act, "use_bias": True,
                           "kernel_initializer": {"class_name": "RandomNormal",
                                                  "config": {"mean": 0.0, "stddev": std, "seed": None}},
                           "bias_initializer": {"class_name": "Zeros", "config": {}}}
    if fan_in is not None:
        cfg["batch_input_shape"] = [None, fan_in]
    return {"class_name": "Dense", "config": cfg}


def _dec(head: list[dict[str, Any]]) -> bytes:
    """DEC-Keras's model.to_json() under Keras 2.0.6: Sequential([Sequential(encoder), *head]), the
    inner one's config a bare list with no name, as Keras <= 2.1 writes it."""
    encoder = [_dense("encoder_dense_1", 500, 39), _dense("encoder_dense_2", 500, 500),
               _dense("encoder_dense_3", 2000, 500), _dense("encoder_dense_4", 10, 2000, "linear")]
    return json.dumps({"class_name": "Sequential", "config": [{"class_name": "Sequential", "config": encoder}, *head],
                       "keras_version": "2.0.6", "backend": "tensorflow"}).encode()


def test_a_bare_list_sequential_nested_in_one_is_read_and_checked() -> None:
    data = _dec([])
    training = read_keras_training(data)  # was AttributeError: 'list' object has no attribute 'get'
    inner = training.config["config"]["layers"][0]
    assert [lay["config"]["name"] for lay in inner["config"]["layers"]][0] == "encoder_dense_1"
    doc = check_keras(data, seeds=1, verify=False)
    assert [u.name for u in doc.layers] == [f"encoder_dense_{i}" for i in range(1, 5)]
    # N(0, 0.01) kernels: each layer's weight std as configured
    assert all(abs(u.weight_std - 0.01) < 1e-3 for u in doc.layers)


def test_a_custom_layer_beside_a_nested_bare_list_model_is_refused_by_name() -> None:
    data = _dec([{"class_name": "ClusteringLayer", "config": {"name": "clustering", "output_dim": 10}}])
    with pytest.raises(ModelError) as err:
        check_keras(data, seeds=1, verify=False)
    assert err.value.detail.startswith("unsupported Keras layers: ClusteringLayer (clustering)"), err.value.detail
    assert "not an object with a `config` object" not in err.value.detail


def _carnd(tmp_path: Path, channels: int = 3, lr: float = 1e-4) -> Path:
    """The Udacity CarND driving model as Keras 2.0.6's model.save() writes it: Lambda(x / 127.5 - 1,
    input_shape=(16, 16, channels)) with no output_shape, Conv2D 24 5x5 over 3 channels, Flatten,
    Dense 1; trained-size weights."""
    layers = [
        {"class_name": "Lambda", "config": {"name": "lambda_1", "trainable": True,
                                            "batch_input_shape": [None, 16, 16, channels], "dtype": "float32",
                                            "function": ["4wEAAAA...", None, None], "function_type": "lambda",
                                            "output_shape": None, "output_shape_type": "raw", "arguments": {}}},
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "trainable": True, "filters": 24,
                                            "kernel_size": [5, 5], "strides": [2, 2], "padding": "valid",
                                            "data_format": "channels_last", "dilation_rate": [1, 1],
                                            "activation": "relu", "use_bias": True,
                                            "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                                                "scale": 1.0, "mode": "fan_avg", "distribution": "uniform",
                                                "seed": None}},
                                            "bias_initializer": {"class_name": "Zeros", "config": {}}}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True}},
        _dense("dense_1", 1, None, "linear", 0.05),
    ]
    config = {"class_name": "Sequential", "config": layers}
    training = {"loss": "mse", "metrics": [], "optimizer_config": {
        "class_name": "Adam", "config": {"lr": lr, "beta_1": 0.9, "beta_2": 0.999, "decay": 0.0, "epsilon": 1e-08}}}
    rng = np.random.default_rng(0)
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.0.6"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        root = f.create_group("model_weights")
        names = ["lambda_1", "conv2d_1", "flatten_1", "dense_1"]
        root.attrs["layer_names"] = [n.encode() for n in names]
        shapes = {"conv2d_1": [(5, 5, 3, 24), (24,)], "dense_1": [(6 * 6 * 24, 1), (1,)]}
        for name in names:
            g = root.create_group(name)
            arrays = shapes.get(name, [])
            weight_names = [f"{name}/{w}:0" for w in ("kernel", "bias")[:len(arrays)]]
            g.attrs["weight_names"] = [w.encode() for w in weight_names]
            for w, shape in zip(weight_names, arrays, strict=True):
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
                g.create_dataset(w, data=rng.normal(0, 1 / np.sqrt(fan_in), shape) if len(shape) > 1
                                 else np.zeros(shape))
    return path


def test_a_lambda_without_output_shape_is_assumed_to_keep_its_inputs_shape_and_said(tmp_path: Path) -> None:
    doc = check_keras(_carnd(tmp_path).read_bytes(), seeds=1, verify=False)
    assert doc.status == "healthy", doc.summary
    assert "lambda_1 = its input, ASSUMED (it declares no output_shape" in doc.summary
    assert "[weights: as stored in the file]" in doc.summary
    assert [u.name for u in doc.layers][:1] == ["conv2d_1"]


def test_an_assumed_lambda_shape_the_next_layers_stored_kernel_contradicts_is_refused_naming_both(
        tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:  # the Lambda's input has 1 channel, the stored kernel reads 3
        check_keras(_carnd(tmp_path, channels=1).read_bytes(), seeds=1, verify=False)
    detail = err.value.detail
    assert "conv2d_1" in detail and "reads Lambda lambda_1" in detail and "give lambda_1 its output_shape" in detail


def test_a_config_alone_says_keras_initialisers_on_the_spec_door_as_on_the_graph_door() -> None:
    # a plain Dense chain goes the spec door; kerassweep14 h06 had no [weights: ...] tag there
    data = json.dumps({"class_name": "Sequential", "config": [_dense("a", 16, 8, std=0.3), _dense("b", 1, None, "linear", 0.3)]})
    doc = check_keras(data.encode(), seeds=1, verify=False)
    assert doc.summary.endswith("[weights: Keras' initialisers, drawn per seed]"), doc.summary


def test_a_bad_size_in_a_nested_bare_list_model_is_pointed_at_where_the_file_has_it() -> None:
    from gradhealth.errors import InputFormatError

    inner = [_dense("a", 4, 3), _dense("b", 0)]
    for config, pointer in (({"class_name": "Sequential", "config": inner}, "/config/1/config/units"),
                            ({"class_name": "Sequential", "config": [{"class_name": "Sequential", "config": inner},
                                                                     _dense("c", 2)]},
                             "/config/0/config/1/config/units")):
        with pytest.raises(InputFormatError) as err:
            check_keras(json.dumps(config).encode(), seeds=1, verify=False)
        assert [p.pointer for p in err.value.problems] == [pointer], err.value.detail
