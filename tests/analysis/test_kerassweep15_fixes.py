"""kerassweep15: Keras 2 models built from nested sub-models (an encoder/decoder, a GAN's generator
and discriminator), whose config counts each nested model's own build node; RepeatVector (a
seq2seq's encoder state repeated over the decoder's steps); a softmax over hidden features right
before the head."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.importers.keras_graph import plan_keras_graph

GLOROT = {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform",
                                                     "seed": None}}


def _input(name: str, features: int) -> dict[str, Any]:
    return {"name": name, "class_name": "InputLayer", "inbound_nodes": [],
            "config": {"batch_input_shape": [None, features], "dtype": "float32", "sparse": False, "name": name}}


def _dense(name: str, units: int, act: str, *reads: tuple[str, int]) -> dict[str, Any]:
    """A Keras 2.2 functional Dense, one call per entry of ``reads`` ([layer, node, tensor, {}])."""
    return {"name": name, "class_name": "Dense",
            "config": {"name": name, "trainable": True, "units": units, "activation": act, "use_bias": True,
                       "kernel_initializer": GLOROT, "bias_initializer": {"class_name": "Zeros", "config": {}},
                       "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                       "kernel_constraint": None, "bias_constraint": None},
            "inbound_nodes": [[[src, node, 0, {}]] for src, node in reads]}


def _model(name: str, layers: list[dict[str, Any]], first: str, last: str,
           calls: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    """A Keras 2.2 ``Model`` config; nested (``calls`` given) it is a layer of the outer model."""
    out: dict[str, Any] = {"name": name, "class_name": "Model",
                           "config": {"name": name, "layers": layers, "input_layers": [[first, 0, 0]],
                                      "output_layers": [[last, 0, 0]]}}
    if calls is not None:
        out["inbound_nodes"] = [[[src, node, 0, {}]] for src, node in calls]
    return out


def _autoencoder() -> dict[str, Any]:
    """Arksyd96/denoising-autoencoder-keras' shape in Keras 2.2.5's to_json(): encoder = Model(x,
    code), decoder = Model(z, out), autoencoder = Model(x, decoder(encoder(x))). Each nested Model
    has node 0 (the one it was built with), so its call here is node 1."""
    encoder = _model("encoder", [_input("input_1", 12), _dense("enc_1", 8, "relu", ("input_1", 0)),
                                 _dense("enc_2", 4, "linear", ("enc_1", 0))], "input_1", "enc_2",
                     calls=[("input_1", 0)])
    decoder = _model("decoder", [_input("input_2", 4), _dense("dec_1", 8, "relu", ("input_2", 0)),
                                 _dense("dec_2", 12, "sigmoid", ("dec_1", 0))], "input_2", "dec_2",
                     calls=[("encoder", 1)])
    outer = _model("autoencoder", [_input("input_1", 12), encoder, decoder], "input_1", "decoder")
    outer["config"]["output_layers"] = [["decoder", 1, 0]]
    return {**outer, "keras_version": "2.2.5", "backend": "tensorflow"}


def test_a_keras2_encoder_decoder_of_nested_models_is_read_as_their_layers() -> None:
    config = _autoencoder()
    graph = plan_keras_graph(config)
    names = [n.name for n in graph.nodes]
    # was refused: "encoder#1: a layer the config does not define"
    assert [n for n in names if n != "input_1"] == ["enc_1", "enc_2", "dec_1", "dec_2"]
    assert graph.node("dec_1").inputs == ["enc_2"]
    assert graph.parameters == (12 * 8 + 8) + (8 * 4 + 4) + (4 * 8 + 8) + (8 * 12 + 12)
    doc = check_keras(json.dumps(config).encode(), loss="mse", seeds=1, batch_size=8, verify=False)
    assert [layer.name for layer in doc.layers] == ["enc_1", "enc_2", "dec_1", "dec_2"]
    assert all(layer.grad_norm and layer.grad_norm > 0 for layer in doc.layers)


def _gan(discriminator_calls: list[tuple[str, int]], sequential: bool) -> dict[str, Any]:
    """A Keras 2 GAN's combined model: Model(z, discriminator(generator(z))), the generator a
    nested Model, the discriminator a Model or a Sequential built with its input shape."""
    generator = _model("generator", [_input("noise", 6), _dense("g_1", 16, "relu", ("noise", 0)),
                                     _dense("g_2", 10, "tanh", ("g_1", 0))], "noise", "g_2",
                       calls=[("z", 0)])
    if sequential:
        first = _dense("d_1", 16, "relu")
        first["config"]["batch_input_shape"] = [None, 10]
        layers = [{k: v for k, v in lay.items() if k != "inbound_nodes"}
                  for lay in (first, _dense("d_2", 1, "sigmoid"))]
        discriminator: dict[str, Any] = {"name": "discriminator", "class_name": "Sequential",
                                         "config": {"name": "discriminator", "layers": layers},
                                         "inbound_nodes": [[[s, k, 0, {}]] for s, k in discriminator_calls]}
    else:
        discriminator = _model("discriminator", [_input("image", 10), _dense("d_1", 16, "relu", ("image", 0)),
                                                 _dense("d_2", 1, "sigmoid", ("d_1", 0))], "image", "d_2",
                               calls=discriminator_calls)
    outer = _model("combined", [_input("z", 6), generator, discriminator], "z", "discriminator")
    outer["config"]["output_layers"] = [["discriminator", 1, 0]]
    return {**outer, "keras_version": "2.2.4", "backend": "tensorflow"}


@pytest.mark.parametrize("sequential", [False, True])
def test_a_keras2_gan_combined_from_a_generator_and_a_discriminator_is_read(sequential: bool) -> None:
    graph = plan_keras_graph(_gan([("generator", 1)], sequential))
    names = [n.name for n in graph.nodes]
    assert [n for n in names if n not in ("z", "discriminator/input")] == ["g_1", "g_2", "d_1", "d_2"]
    assert graph.node("d_1").inputs == ["g_2"]
    assert graph.output_names == ["d_2"]


def test_a_keras2_nested_model_called_twice_is_its_calls_one_and_two() -> None:
    # a Siamese pair in Keras 2: the encoder's calls on both inputs are its nodes 1 and 2
    encoder = _model("encoder", [_input("x", 5), _dense("e_1", 3, "relu", ("x", 0))], "x", "e_1",
                     calls=[("left", 0), ("right", 0)])
    merge = {"name": "merge", "class_name": "Concatenate", "config": {"name": "merge", "axis": -1},
             "inbound_nodes": [[["encoder", 1, 0, {}], ["encoder", 2, 0, {}]]]}
    outer = _model("pair", [_input("left", 5), _input("right", 5), encoder, merge,
                            _dense("head", 1, "sigmoid", ("merge", 0))], "left", "head")
    outer["config"]["input_layers"] = [["left", 0, 0], ["right", 0, 0]]
    graph = plan_keras_graph(outer)
    assert graph.node("merge").inputs == ["e_1", "e_1#encoder#1"]
    assert graph.node("e_1#encoder#1").inputs == ["right"]
    assert graph.parameters == 5 * 3 + 3 + 6 + 1  # the encoder's weights once


def test_a_keras3_nested_model_keeps_its_history_and_its_output_counts_the_build_node() -> None:
    # Keras 3: keras_history counts this model's calls only (the decoder reads ["encoder", 0, 0]),
    # output_layers counts a Functional's own node (["decoder", 1, 0])
    def tensor(src: str, node: int) -> dict[str, Any]:
        return {"class_name": "__keras_tensor__",
                "config": {"shape": [None, 4], "dtype": "float32", "keras_history": [src, node, 0]}}

    def k3(layer: dict[str, Any], src: str | None, node: int = 0) -> dict[str, Any]:
        return {**layer, "inbound_nodes": [{"args": [tensor(src, node)], "kwargs": {}}] if src else []}

    encoder = _model("encoder", [k3(_input("x", 12), None), k3(_dense("enc_1", 4, "relu"), "x")], "x", "enc_1")
    decoder = _model("decoder", [k3(_input("z", 4), None), k3(_dense("dec_1", 12, "sigmoid"), "z")], "z", "dec_1")
    for nested in (encoder, decoder):
        nested["class_name"] = "Functional"
    outer = _model("ae", [k3(_input("x", 12), None), k3(encoder, "x"), k3(decoder, "encoder")], "x", "decoder")
    outer["config"]["output_layers"] = [["decoder", 1, 0]]
    graph = plan_keras_graph(outer)
    assert graph.node("dec_1").inputs == ["enc_1"]
    assert graph.output_names == ["dec_1"]


def _recurrent(cls: str, name: str, units: int, sequences: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": name, "trainable": True, "return_sequences": sequences, "return_state": False,
                           "go_backwards": False, "stateful": False, "unroll": False, "units": units,
                           "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
                           "kernel_initializer": GLOROT,
                           "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
                           "bias_initializer": {"class_name": "Zeros", "config": {}}, "dropout": 0.0,
                           "recurrent_dropout": 0.0, "implementation": 2}
    if cls == "LSTM":
        cfg["unit_forget_bias"] = True
    return {"class_name": cls, "config": cfg}


def _seq2seq(cls: str = "LSTM", n: Any = 4) -> dict[str, Any]:
    """Narozzy/NLP_Final_Project's NMT model in Keras 2.3.1's to_json(), smaller: Embedding over 6
    source tokens, an encoder LSTM/GRU, RepeatVector(n) to the target length, a decoder returning
    sequences, TimeDistributed(Dense(vocabulary, sigmoid))."""
    dense = _dense("dense_1", 9, "sigmoid")
    dense.pop("inbound_nodes")
    layers = [{"class_name": "Embedding", "config": {
                  "name": "embedding_1", "trainable": True, "batch_input_shape": [None, 6], "dtype": "float32",
                  "input_dim": 30, "output_dim": 8, "mask_zero": True, "input_length": 6,
                  "embeddings_initializer": {"class_name": "RandomUniform",
                                             "config": {"minval": -0.05, "maxval": 0.05, "seed": None}}}},
              _recurrent(cls, "encoder", 5, False),
              {"class_name": "RepeatVector", "config": {"name": "repeat_vector_1", "trainable": True,
                                                        "dtype": "float32", "n": n}},
              _recurrent(cls, "decoder", 5, True),
              {"class_name": "TimeDistributed", "config": {"name": "time_distributed_1", "trainable": True,
                                                           "layer": dense}}]
    return {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": layers},
            "keras_version": "2.3.1", "backend": "tensorflow"}


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_a_seq2seq_repeating_its_encoder_state_over_the_decoder_steps_is_checked(cls: str) -> None:
    config = _seq2seq(cls)
    graph = plan_keras_graph(config)  # was refused: "unsupported Keras layers: RepeatVector"
    assert graph.node("repeat_vector_1").shape == (4, 5)
    assert graph.node("decoder").shape == (4, 5)
    assert graph.node("time_distributed_1").shape == (4, 9)
    gates = {"LSTM": 4, "GRU": 3}[cls]
    bias = gates * 5 * (2 if cls == "GRU" else 1)  # Keras 2.3's GRU: reset_after, two biases
    recurrent = gates * 5 * (8 + 5) + bias, gates * 5 * (5 + 5) + bias
    assert graph.parameters == 30 * 8 + sum(recurrent) + 5 * 9 + 9  # RepeatVector: no weights
    doc = check_keras(json.dumps(config).encode(), loss="mse", optimizer={"type": "sgd", "lr": 0.01},
                      seeds=1, batch_size=8, verify=False)
    assert [layer.name for layer in doc.layers] == ["embedding_1", "encoder", "decoder", "time_distributed_1"]
    assert all(layer.grad_norm and layer.grad_norm > 0 for layer in doc.layers)


def test_repeat_vector_gradient_is_the_sum_over_its_steps() -> None:
    # Input(3) -> Dense(2) -> RepeatVector(4) -> TimeDistributed(Dense(1)); L = sum of the outputs:
    # every step reads the same code h, so dL/dh = 4 W2 (one W2 per step)
    import torch

    from gradhealth.analysis.importers.keras_torch import KerasNet

    inner = _dense("readout", 1, "linear")
    inner.pop("inbound_nodes")
    layers = [_input("x", 3), _dense("code", 2, "linear", ("x", 0)),
              {"name": "repeat", "class_name": "RepeatVector", "config": {"name": "repeat", "n": 4},
               "inbound_nodes": [[["code", 0, 0, {}]]]},
              {"name": "steps", "class_name": "TimeDistributed", "config": {"name": "steps", "layer": inner},
               "inbound_nodes": [[["repeat", 0, 0, {}]]]}]
    net = KerasNet(plan_keras_graph(_model("m", layers, "x", "steps")), None).double()
    names = [n.name for n in net.graph.nodes]
    captured: dict[str, torch.Tensor] = {}
    net.layers[names.index("code")].register_forward_hook(lambda m, i, o: captured.update(code=o))
    x = torch.randn(5, 3, dtype=torch.float64)
    y = net(x)
    assert y.shape == (5, 4, 1)
    captured["code"].retain_grad()
    y.sum().backward()
    readout = net.holders[names.index("steps")][0].weight.detach()  # [1, 2]
    assert torch.allclose(captured["code"].grad, 4 * readout.expand(5, 2))
    # every step's output is the same: the code, read once per step
    assert torch.allclose(y, y[:, :1].expand(5, 4, 1))


@pytest.mark.parametrize(("n", "said"), [(0, "n 0: expected a positive integer"),
                                         (None, "n None: expected a positive integer"),
                                         (2.5, "n 2.5: expected a positive integer")])
def test_a_repeat_vector_without_a_count_is_refused_at_its_key(n: Any, said: str) -> None:
    from gradhealth.errors import InputFormatError

    with pytest.raises(InputFormatError) as err:
        plan_keras_graph(_seq2seq(n=n))
    assert any("/config/layers/2/config/n" in str(p) for p in err.value.problems)
    assert said in err.value.detail and "repeat_vector_1 (RepeatVector)" in err.value.detail


def _classifier(hidden: str, separate: bool = False, loss: str = "categorical_crossentropy") -> dict[str, Any]:
    """Keras 2 Sequential: Dense(24, relu) over 20 features, Dense(32, ``hidden``) (or a linear
    Dense and an Activation layer after it: ``separate``), Dense(10, softmax), compiled with ``loss``
    and Adam 1e-3 (kerassweep15 u09: the hidden Dense(128) switched from relu to softmax)."""
    def dense(name: str, units: int, act: str, fan_in: int | None = None) -> dict[str, Any]:
        lay = _dense(name, units, act)
        lay.pop("inbound_nodes")
        lay.pop("name")
        if fan_in:
            lay["config"]["batch_input_shape"] = [None, fan_in]
        return lay

    layers = [dense("dense_1", 24, "relu", 20), dense("dense_2", 32, "linear" if separate else hidden)]
    if separate:
        layers.append({"class_name": "Activation", "config": {"name": "activation_1", "activation": hidden}})
    layers.append(dense("dense_3", 10, "softmax"))
    return {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": layers},
            "keras_version": "2.2.4", "backend": "tensorflow",
            "training_config": {"loss": loss, "metrics": ["accuracy"], "optimizer_config": {
                "class_name": "Adam", "config": {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999, "decay": 0.0}}}}


def _softmax_rms_gain(logits: Any) -> float:
    """The mean over rows of ||J||_F / sqrt(k), J the softmax's Jacobian, by autograd."""
    import math

    import torch

    gains = []
    for z in logits:
        jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), z)
        gains.append(float(jac.norm() / math.sqrt(len(z))))
    return sum(gains) / len(gains)


@pytest.mark.parametrize("separate", [False, True])
def test_a_hidden_softmax_right_before_the_head_is_a_saturation_warning_with_a_verified_swap(separate: bool) -> None:
    import torch

    config = _classifier("softmax", separate)
    doc = check_keras(json.dumps(config).encode(), seeds=2, batch_size=32, verify=True)
    found = [f for f in doc.findings if f.code == "saturation" and f.evidence.model_dump().get("hidden_softmax")]
    assert found and found[0].severity == "warning", [(f.code, f.summary) for f in doc.findings]
    ev = found[0].evidence.model_dump()
    assert ev["layers"] == ["dense_2"] and ev["features"] == {"dense_2": 32}
    assert ev["called_at"] == ("layer:activation_1" if separate else "layer:dense_2")
    # against autograd on the same architecture drawn here (Glorot-uniform Dense layers, zero
    # biases, standard normal inputs): a flat softmax over 32 features passes sqrt(31 / 32^3) = 0.031
    torch.manual_seed(0)
    x = torch.randn(256, 20, dtype=torch.float64)
    w1 = (torch.rand(20, 24, dtype=torch.float64) * 2 - 1) * (6 / 44) ** 0.5
    w2 = (torch.rand(24, 32, dtype=torch.float64) * 2 - 1) * (6 / 56) ** 0.5
    expected = _softmax_rms_gain(torch.relu(x @ w1) @ w2)
    assert (31 / 32 ** 3) ** 0.5 <= ev["value"] < 0.25
    assert abs(ev["value"] - expected) < 0.3 * expected
    swap = [r for r in found[0].remedies if r.id == "relu_family_activation"]
    # the swap leaves no softmax for its gain to be measured on: not measured, never fixed (kerassweep26)
    assert swap and swap[0].verified is not None and swap[0].verified.not_measured and not swap[0].verified.fixed
    assert swap[0].recommended


def test_a_relu_hidden_layer_and_a_softmax_output_are_no_hidden_softmax() -> None:
    for config in (_classifier("relu"), _classifier("relu", loss="mse")):  # the output's softmax kept under mse
        doc = check_keras(json.dumps(config).encode(), seeds=1, batch_size=32, verify=False)
        assert not [f for f in doc.findings if f.evidence.model_dump().get("hidden_softmax")]


def test_an_onnx_softmax_over_a_hidden_layers_features_is_the_same_warning() -> None:
    # the other model door: a Softmax node after a Gemm, read by the next Gemm
    import torch
    from torch import nn

    from gradhealth.library import check_onnx
    from tests.analysis.onnx_models import export

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 32), nn.Softmax(dim=-1), nn.Linear(32, 10))
    doc = check_onnx(export(model, torch.randn(4, 20)), loss="cross_entropy", seeds=1, verify=False)
    found = [f for f in doc.findings if f.evidence.model_dump().get("hidden_softmax")]
    assert found and found[0].evidence.model_dump()["features"] == {"2": 32}
    # a softmax ending the model is the output's, not a hidden one
    head = nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 10), nn.Softmax(dim=-1))
    doc = check_onnx(export(head, torch.randn(4, 20)), loss="mse", seeds=1, verify=False)
    assert not [f for f in doc.findings if f.evidence.model_dump().get("hidden_softmax")]
