"""kerassweep29 problem 1: a model nested in a Keras model with several outputs or inputs.

fy_vae_json (keras-team's vae_mlp.py saved whole: ``encoder = Model(x, [z_mean, z_log_var, z])``,
``decoder(encoder(x)[2])``, written ``["encoder", 1, 2]``) and malgan_combined (a GAN's combined model
calling a two-input generator ``Functional([x, noise])``) were refused as "a nested model is supported
with one input and one output" plus a false "a layer the config does not define" and a "custom layer's
computation is code" for Keras' own Model class. Each nested model's layers are now inlined, its inputs
fed by the call's tensors in order and output k read where the outer model reads ``[name, node, k]``.

The check is compared with an independent computation: the same network written flat (the nested
models' layers as the outer model's own, with the same weights), whose gradients must be the same.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.importers.keras_graph import plan_keras_graph
from tests.keras_files import keras2_h5

GLOROT = {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform",
                                                     "seed": None}}


def _input(name: str, features: int) -> dict[str, Any]:
    return {"name": name, "class_name": "InputLayer", "inbound_nodes": [],
            "config": {"batch_input_shape": [None, features], "dtype": "float32", "sparse": False, "name": name}}


def _layer(cls: str, name: str, reads: list[tuple[str, int, int]], **cfg: Any) -> dict[str, Any]:
    """A Keras 2.2 functional layer called once on the tensors ``reads`` ([layer, node, tensor])."""
    return {"name": name, "class_name": cls, "config": {"name": name, "trainable": True, **cfg},
            "inbound_nodes": [[[src, node, t, {}] for src, node, t in reads]]}


def _dense(name: str, units: int, act: str, src: str, node: int = 0, tensor: int = 0) -> dict[str, Any]:
    return _layer("Dense", name, [(src, node, tensor)], units=units, activation=act, use_bias=True,
                  kernel_initializer=GLOROT, bias_initializer={"class_name": "Zeros", "config": {}})


def _sampling(src: str = "z_mean", node: int = 0) -> dict[str, Any]:
    # vae_mlp.py's Lambda(sampling, output_shape=(latent_dim,))([z_mean, z_log_var]): its function is code
    # (bytecode in the file, never run); both doors stand in the sum of its inputs for it
    return _layer("Lambda", "z", [(src, node, 0), ("z_log", node, 0)], function=["4wEAAAAA", None, None],
                  function_type="lambda", output_shape=[3], arguments={})


def _vae(tensor: int) -> dict[str, Any]:
    """keras-team vae_mlp.py in Keras 2.2.4's to_json() (8 -> 6 relu -> [z_mean, z_log, z] of 3 -> 6 relu
    -> 8 tanh): the encoder returns three tensors, the decoder reads output ``tensor`` of it."""
    encoder_layers = [_input("input_1", 8), _dense("dense_1", 6, "relu", "input_1"),
                      _dense("z_mean", 3, "linear", "dense_1"), _dense("z_log", 3, "linear", "dense_1"), _sampling()]
    encoder = {"name": "encoder", "class_name": "Model",
               "config": {"name": "encoder", "layers": encoder_layers, "input_layers": [["input_1", 0, 0]],
                          "output_layers": [["z_mean", 0, 0], ["z_log", 0, 0], ["z", 0, 0]]},
               "inbound_nodes": [[["input_1", 0, 0, {}]]]}
    decoder_layers = [_input("z_sampling", 3), _dense("dense_2", 6, "relu", "z_sampling"),
                      _dense("dense_3", 8, "tanh", "dense_2")]
    decoder = {"name": "model_1", "class_name": "Model",
               "config": {"name": "model_1", "layers": decoder_layers, "input_layers": [["z_sampling", 0, 0]],
                          "output_layers": [["dense_3", 0, 0]]},
               "inbound_nodes": [[["encoder", 1, tensor, {}]]]}  # node 0: the encoder's own build
    return {"class_name": "Model", "keras_version": "2.2.4", "backend": "tensorflow",
            "config": {"name": "vae", "layers": [_input("input_1", 8), encoder, decoder],
                       "input_layers": [["input_1", 0, 0]], "output_layers": [["model_1", 1, 0]]}}


def _vae_flat(tensor: int) -> dict[str, Any]:
    """The same network written without nesting: the decoder's first layer reads the encoder's output."""
    read = ["z_mean", "z_log", "z"][tensor]
    layers = [_input("input_1", 8), _dense("dense_1", 6, "relu", "input_1"),
              _dense("z_mean", 3, "linear", "dense_1"), _dense("z_log", 3, "linear", "dense_1"), _sampling(),
              _dense("dense_2", 6, "relu", read), _dense("dense_3", 8, "tanh", "dense_2")]
    return {"class_name": "Model", "keras_version": "2.2.4", "backend": "tensorflow",
            "config": {"name": "vae", "layers": layers, "input_layers": [["input_1", 0, 0]],
                       "output_layers": [["dense_3", 0, 0]]}}


def _weights() -> dict[str, list[tuple[str, np.ndarray]]]:
    rng = np.random.default_rng(29)
    sizes = {"dense_1": (8, 6), "z_mean": (6, 3), "z_log": (6, 3), "dense_2": (3, 6), "dense_3": (6, 8)}
    return {name: [("kernel", rng.normal(0, 0.5, size).astype("float32")),
                   ("bias", rng.normal(0, 0.1, size[1]).astype("float32"))] for name, size in sizes.items()}


def _nested_h5(config: dict[str, Any]) -> bytes:
    """Keras 2's ``model.save()`` of the nested VAE: a nested model's group holds its layers' arrays,
    listed as ``<layer>/kernel:0`` in its ``weight_names``."""
    w = _weights()
    stored = {"encoder": [(f"{n}/{role}", a) for n in ("dense_1", "z_mean", "z_log") for role, a in w[n]],
              "model_1": [(f"{n}/{role}", a) for n in ("dense_2", "dense_3") for role, a in w[n]]}
    return keras2_h5(config, stored, attrs={"keras_version": "2.2.4", "backend": "tensorflow"})


@pytest.mark.parametrize("tensor", [2, 0, 1])
def test_kerassweep29_a_vae_decoder_reads_the_encoders_output_it_names(tensor: int) -> None:
    graph = plan_keras_graph(_vae(tensor))
    read = ["z_mean", "z_log", "z"][tensor]
    assert [n.name for n in graph.nodes if n.name != "input_1"][-2:] == ["dense_2", "dense_3"]
    assert graph.node("dense_2").inputs == [read]
    assert graph.node("dense_1").inputs == ["input_1"]  # the encoder's input is the call's tensor
    assert graph.output_names == ["dense_3"]
    # z (z_mean + z_log) reads both heads; the output z_mean or z_log alone does not reach the other,
    # which is then no part of the graph from the input to the output (as in a flat model)
    heads = 2 if tensor == 2 else 1
    assert graph.parameters == (8 * 6 + 6) + heads * (6 * 3 + 3) + (3 * 6 + 6) + (6 * 8 + 8)


@pytest.mark.parametrize("tensor", [2, 0])
def test_kerassweep29_a_nested_vae_checks_as_the_same_network_written_flat(tensor: int) -> None:
    w = _weights()
    nested = check_keras(_nested_h5(_vae(tensor)), loss="mse", seeds=2, batch_size=16, verify=False)
    flat = check_keras(keras2_h5(_vae_flat(tensor), w, attrs={"keras_version": "2.2.4", "backend": "tensorflow"}),
                       loss="mse", seeds=2, batch_size=16, verify=False)
    assert "as stored" in nested.summary  # the stored weights, found in the nested models' groups
    got = {layer.name: layer.grad_norm for layer in nested.layers}
    want = {layer.name: layer.grad_norm for layer in flat.layers}
    assert set(got) == set(want) >= {"dense_1", "z_mean", "dense_2", "dense_3"}
    for name, value in want.items():
        assert value and got[name] == pytest.approx(value, rel=1e-9), name


def _tensor(src: str, features: int) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, features], "dtype": "float32", "keras_history": [src, 0, 0]}}


def _k3(cls: str, name: str, args: list[Any], **cfg: Any) -> dict[str, Any]:
    """A Keras 3 layer called once with ``args`` (tensors by :func:`_tensor`)."""
    return {"module": "keras.layers", "class_name": cls, "name": name,
            "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
            "inbound_nodes": [{"args": args, "kwargs": {}}] if args else []}


def _k3_input(name: str, features: int) -> dict[str, Any]:
    return _k3("InputLayer", name, [], batch_shape=[None, features], sparse=False)


def _k3_dense(name: str, units: int, act: str, src: str, features: int) -> dict[str, Any]:
    return _k3("Dense", name, [_tensor(src, features)], units=units, activation=act, use_bias=True,
               kernel_initializer={"module": "keras.initializers", "class_name": "GlorotUniform",
                                   "config": {"seed": None}},
               bias_initializer={"module": "keras.initializers", "class_name": "Zeros", "config": {}})


def _generator_layers(x: str, noise: str) -> list[dict[str, Any]]:
    return [_k3("Concatenate", "concatenate", [[_tensor(x, 7), _tensor(noise, 5)]], axis=-1),
            _k3_dense("g_hidden", 10, "relu", "concatenate", 12), _k3_dense("g_out", 7, "sigmoid", "g_hidden", 10)]


def _detector_layers(src: str) -> list[dict[str, Any]]:
    return [_k3_dense("d_hidden", 8, "relu", src, 7), _k3_dense("d_out", 1, "sigmoid", "d_hidden", 8)]


def _malgan(noise_first: bool = False) -> dict[str, Any]:
    """MalGAN's combined model in Keras 3.8's config: ``generator = Model([x, noise], adversarial)``,
    ``detector = Model(adversarial, score)``, ``combined = Model([x, noise], [detector(generator([x, noise])),
    generator([x, noise])])``. ``noise_first``: the outer model feeds the generator (noise, x) instead,
    which must reach the generator's inputs in that order."""
    generator = _k3("Functional", "generator", [[_tensor("feat", 7), _tensor("z", 5)][::-1 if noise_first else 1]],
                    layers=[_k3_input("g_x", 7), _k3_input("g_noise", 5), *_generator_layers("g_x", "g_noise")],
                    input_layers=[["g_x", 0, 0], ["g_noise", 0, 0]], output_layers=[["g_out", 0, 0]])
    detector = _k3("Functional", "detector", [_tensor("generator", 7)],
                   layers=[_k3_input("d_in", 7), *_detector_layers("d_in")],
                   input_layers=[["d_in", 0, 0]], output_layers=[["d_out", 0, 0]])
    feat, z = (_k3_input("feat", 7), _k3_input("z", 5)) if not noise_first else (_k3_input("feat", 5), _k3_input("z", 7))
    return {"module": "keras", "class_name": "Functional", "keras_version": "3.8.0",
            "config": {"name": "combined", "trainable": True, "layers": [feat, z, generator, detector],
                       "input_layers": [["feat", 0, 0], ["z", 0, 0]],
                       "output_layers": [["detector", 1, 0], ["generator", 1, 0]]}}


def _malgan_flat() -> dict[str, Any]:
    return {"module": "keras", "class_name": "Functional", "keras_version": "3.8.0",
            "config": {"name": "combined", "trainable": True,
                       "layers": [_k3_input("feat", 7), _k3_input("z", 5), *_generator_layers("feat", "z"),
                                  *_detector_layers("g_out")],
                       "input_layers": [["feat", 0, 0], ["z", 0, 0]],
                       "output_layers": [["d_out", 0, 0], ["g_out", 0, 0]]}}


def test_kerassweep29_a_two_input_nested_generator_reads_the_calls_tensors_in_order() -> None:
    graph = plan_keras_graph(_malgan())
    # was refused: "functional: a nested model is supported with one input, to a depth of 8"
    assert [n.name for n in graph.nodes if n.cls != "InputLayer"] == [
        "concatenate", "g_hidden", "g_out", "d_hidden", "d_out"]
    assert graph.node("concatenate").inputs == ["feat", "z"]
    assert graph.node("d_hidden").inputs == ["g_out"]
    assert graph.output_names == ["d_out", "g_out"]
    assert [name for name, _, _ in graph.inputs] == ["feat", "z"]
    swapped = plan_keras_graph(_malgan(noise_first=True))
    assert swapped.node("concatenate").inputs == ["z", "feat"]  # the generator's x is fed z, its noise feat
    assert swapped.node("concatenate").shape == (12,)


def test_kerassweep29_a_two_input_nested_generator_checks_as_the_same_network_written_flat() -> None:
    # no stored weights: each door draws Keras' initialisers per seed, layer by layer, the same in both
    nested = check_keras(json.dumps(_malgan()).encode(), loss="binary_cross_entropy", seeds=2, batch_size=16,
                         verify=False)
    flat = check_keras(json.dumps(_malgan_flat()).encode(), loss="binary_cross_entropy", seeds=2, batch_size=16,
                       verify=False)
    got = {layer.name: layer.grad_norm for layer in nested.layers}
    want = {layer.name: layer.grad_norm for layer in flat.layers}
    assert set(got) == set(want) >= {"g_hidden", "g_out", "d_hidden", "d_out"}
    for name, value in want.items():
        assert value and got[name] == pytest.approx(value, rel=1e-9), name


def test_kerassweep29_a_nested_model_called_with_too_few_tensors_is_refused_as_such() -> None:
    config = _malgan()
    generator = config["config"]["layers"][2]
    generator["inbound_nodes"] = [{"args": [_tensor("feat", 7)], "kwargs": {}}]
    with pytest.raises(ModelError) as caught:
        check_keras(json.dumps(config).encode(), loss="binary_cross_entropy", seeds=1, batch_size=8, verify=False)
    said = str(caught.value)
    assert "generator: a Keras Functional nested in the model (Keras' own class, not custom code) takes 2 input(s)" in said
    assert "called here with 1 tensor(s)" in said and "separate files" in said
    assert "does not define" not in said and "custom layer's computation is code" not in said


def test_kerassweep29_reading_an_output_the_nested_model_does_not_have_is_refused_as_such() -> None:
    config = _vae(2)
    config["config"]["layers"][2]["inbound_nodes"] = [[["encoder", 1, 3, {}]]]
    with pytest.raises(ModelError) as caught:
        check_keras(json.dumps(config).encode(), loss="mse", seeds=1, batch_size=8, verify=False)
    said = str(caught.value)
    assert "dense_2: reads output 3 of the nested model encoder, which has 3 output(s)" in said
    assert "does not define" not in said and "custom layer's computation is code" not in said
