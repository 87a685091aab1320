"""kerassweep20 u02: a sigmoid output as wide as the model's input under mse (a denoising
autoencoder of standardised credit-card features) was not judged, since a bounded output wider than
one unit was left alone (an autoencoder's sigmoid pixels are in range by design). A bounded output
shaped as the model's one float input is a reconstruction: its targets are its inputs, and the share
of the inputs out of its range is judged, in a Keras file, an ONNX file or a live module. Standard
normal inputs fall outside a sigmoid's [0, 1] with probability 1 - (Phi(1) - Phi(0)) = 0.659: a note,
since those inputs are the simulation's and a sigmoid autoencoder's data is most often in [0, 1] (an
MNIST VAE); inputs drawn in a range the user gives are the data's: [-2, 2] leaves 0.75 out (a
warning), [0, 1] none (no finding)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.module_check import check_module, check_onnx
from tests.keras_files import keras2_h5

WIDTH = 12
#: P(z < 0 or z > 1) for z standard normal: the share of standard-normal inputs a sigmoid cannot reach
OUT_OF_SIGMOID = 1.0 - (0.8413447460685429 - 0.5)

GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
          "registered_name": None}
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def _dense(name: str, units: int, act: str) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "units": units, "activation": act,
                                              "use_bias": True, "kernel_initializer": GLOROT,
                                              "bias_initializer": ZEROS}}


def _autoencoder_h5(out_units: int = WIDTH) -> bytes:
    """Keras 2's model.save(): Input(12) -> Dense(6, relu) -> Dense(out_units, sigmoid), mse, Adam."""
    rng = np.random.default_rng(0)
    config = {"class_name": "Sequential", "config": {"name": "ae", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, WIDTH], "dtype": "float32",
                                                "name": "input_1"}},
        _dense("dense", 6, "relu"), _dense("dense_1", out_units, "sigmoid")]}}
    stored = {"dense": [("kernel", rng.normal(0, 0.4, (WIDTH, 6)).astype("float32")),
                        ("bias", np.zeros(6, "float32"))],
              "dense_1": [("kernel", rng.normal(0, 0.4, (6, out_units)).astype("float32")),
                          ("bias", np.zeros(out_units, "float32"))]}
    training = json.dumps({"loss": "mse", "metrics": [], "optimizer_config": {
        "class_name": "Adam", "config": {"learning_rate": 0.001}}})
    return keras2_h5(config, stored, attrs={"training_config": training, "keras_version": "2.13.1",
                                            "backend": "tensorflow"})


def _mismatch(doc: Any) -> list[Any]:
    return [f for f in doc.findings if f.code == "output_loss_mismatch"]


def test_a_keras_sigmoid_autoencoder_of_standard_normal_inputs_is_a_note() -> None:
    [f] = _mismatch(check_keras(_autoencoder_h5(), verify=False))
    assert f.severity == "info"  # the simulation's inputs, not the data's: --input-range decides
    assert f.evidence.model_dump()["output_range"] == [0.0, 1.0]
    # the inputs drawn: 3 seeds' first batch of 32 x 12 standard-normal values, ~0.659 out of [0, 1]
    assert abs(f.evidence.value - OUT_OF_SIGMOID) < 0.08, f.evidence.value
    assert "reconstruct" in f.summary


def test_a_keras_sigmoid_autoencoder_of_data_in_a_wider_range_is_a_warning() -> None:
    [f] = _mismatch(check_keras(_autoencoder_h5(), verify=False, input_range=(-2.0, 2.0)))
    assert f.severity == "warning" and abs(f.evidence.value - 0.75) < 0.08, f.evidence.value


def test_a_keras_sigmoid_autoencoder_of_inputs_in_its_range_has_no_finding() -> None:
    assert _mismatch(check_keras(_autoencoder_h5(), verify=False, input_range=(0.0, 1.0))) == []


def test_a_bounded_output_of_another_width_stays_unjudged() -> None:
    assert _mismatch(check_keras(_autoencoder_h5(out_units=5), verify=False)) == []


def _torch_autoencoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(WIDTH, 6), nn.ReLU(), nn.Linear(6, WIDTH), nn.Sigmoid())


def _onnx_autoencoder() -> bytes:
    """x[N, 12] -> Gemm(6) -> Relu -> Gemm(12) -> Sigmoid, as an exporter writes it."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.4, shape).astype("float32"), name)
             for name, shape in (("w1", (6, WIDTH)), ("b1", (6,)), ("w2", (WIDTH, 6)), ("b2", (WIDTH,)))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["z"], transB=1), helper.make_node("Sigmoid", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "ae", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def test_an_onnx_sigmoid_autoencoder_is_judged_on_its_inputs() -> None:
    data = _onnx_autoencoder()
    [f] = _mismatch(check_onnx(data, loss="mse", verify=False))
    assert f.severity == "info" and abs(f.evidence.value - OUT_OF_SIGMOID) < 0.08, f.evidence.value
    [g] = _mismatch(check_onnx(data, loss="mse", verify=False, input_range=(-2.0, 2.0)))
    assert g.severity == "warning" and abs(g.evidence.value - 0.75) < 0.08, g.evidence.value
    assert _mismatch(check_onnx(data, loss="mse", verify=False, input_range=(0.0, 1.0))) == []


def test_a_module_autoencoder_is_judged_where_its_input_range_is_given() -> None:
    x = torch.rand(32, WIDTH)  # pixels in [0, 1]
    # a placeholder example (torch.randn, modsweep30 h09) says nothing of the data: not judged
    assert _mismatch(check_module(_torch_autoencoder(), torch.randn(32, WIDTH), loss="mse", verify=False)) == []
    assert _mismatch(check_module(_torch_autoencoder(), x, loss="mse", verify=False, input_range=(0, 1))) == []
    # standardised data declared in [-2, 2]: (2 + 1) / 4 = 0.75 of the uniform draws out of [0, 1]
    [f] = _mismatch(check_module(_torch_autoencoder(), x, loss="mse", verify=False, input_range=(-2, 2)))
    assert f.severity == "warning" and abs(f.evidence.value - 0.75) < 0.08, f.evidence.value


def test_a_reconstruction_with_its_targets_given_in_range_has_no_finding() -> None:
    # --target-range 0,1 (kerassweep20 h05): the targets given are judged, all in reach, and a
    # reconstruction right for its targets says nothing, as when it was left unjudged
    assert _mismatch(check_keras(_autoencoder_h5(), verify=False, target_range=(0.0, 1.0))) == []
    [f] = _mismatch(check_keras(_autoencoder_h5(), verify=False, target_range=(-1.0, 1.0)))
    assert f.severity == "warning" and f.evidence.value == pytest.approx(0.5)  # half of [-1, 1] below 0


# --- an image output of one channel: values per sample, not the last axis ------------------------------------

SIDE = 8


def _conv(name: str, filters: int, act: str) -> dict[str, Any]:
    return {"class_name": "Conv2D", "config": {
        "name": name, "trainable": True, "filters": filters, "kernel_size": [3, 3], "strides": [1, 1],
        "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "activation": act,
        "use_bias": True, "kernel_initializer": GLOROT, "bias_initializer": ZEROS}}


def _conv_h5(channels_in: int, channels_out: int) -> bytes:
    """Keras 2's model.save() of a functional ``Model(inputs, outputs)``: Input(8, 8, channels_in)
    -> Conv2D(4, relu) -> MaxPooling2D -> UpSampling2D -> Conv2D(channels_out, sigmoid), mse, RMSprop: an image autoencoder where the
    channels match (a grayscale MNIST denoiser ends in Conv2D(1, sigmoid)), a one-channel map of each
    image (a segmentation mask) where not. Its output is channels-last, (batch, 8, 8, channels_out)."""
    rng = np.random.default_rng(0)
    layers = [{"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
               "config": {"batch_input_shape": [None, SIDE, SIDE, channels_in], "dtype": "float32",
                          "name": "input_1"}},
              {**_conv("conv2d", 4, "relu"), "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
              {"class_name": "MaxPooling2D", "name": "max_pooling2d", "inbound_nodes": [[["conv2d", 0, 0, {}]]],
               "config": {"name": "max_pooling2d", "trainable": True, "pool_size": [2, 2], "padding": "valid",
                          "strides": [2, 2], "data_format": "channels_last"}},
              {"class_name": "UpSampling2D", "name": "up_sampling2d",
               "inbound_nodes": [[["max_pooling2d", 0, 0, {}]]],
               "config": {"name": "up_sampling2d", "trainable": True, "size": [2, 2],
                          "data_format": "channels_last", "interpolation": "nearest"}},
              {**_conv("conv2d_1", channels_out, "sigmoid"), "name": "conv2d_1",
               "inbound_nodes": [[["up_sampling2d", 0, 0, {}]]]}]
    config = {"class_name": "Functional", "config": {"name": "conv_ae", "layers": layers,
                                                     "input_layers": [["input_1", 0, 0]],
                                                     "output_layers": [["conv2d_1", 0, 0]]}}
    stored = {"conv2d": [("kernel", rng.normal(0, 0.3, (3, 3, channels_in, 4)).astype("float32")),
                         ("bias", np.zeros(4, "float32"))],
              "conv2d_1": [("kernel", rng.normal(0, 0.3, (3, 3, 4, channels_out)).astype("float32")),
                           ("bias", np.zeros(channels_out, "float32"))]}
    training = json.dumps({"loss": "mse", "metrics": [], "optimizer_config": {
        "class_name": "RMSprop", "config": {"learning_rate": 0.001}}})
    return keras2_h5(config, stored, attrs={"training_config": training, "keras_version": "2.4.0",
                                            "backend": "tensorflow"})


@pytest.mark.parametrize("channels", [1, 3], ids=["grayscale", "rgb"])
def test_an_image_autoencoder_of_standard_normal_inputs_is_a_note_whatever_its_channels(channels: int) -> None:
    """A Conv2D(1, sigmoid) ends in one channel but holds 8 x 8 = 64 values a sample: a
    reconstruction, judged as the RGB one is (a note asking for --input-range), not a one-number
    regression (whose 66% of standard-normal targets out of reach is a warning)."""
    doc = check_keras(_conv_h5(channels, channels), verify=False)
    [f] = _mismatch(doc)
    assert f.severity == "info", f.summary
    assert abs(f.evidence.value - OUT_OF_SIGMOID) < 0.08, f.evidence.value
    assert "reconstruct" in f.summary
    assert doc.status == "healthy"


def test_a_grayscale_image_autoencoder_of_inputs_in_its_range_has_no_finding() -> None:
    assert _mismatch(check_keras(_conv_h5(1, 1), verify=False, input_range=(0.0, 1.0))) == []


def test_a_one_channel_sigmoid_map_is_judged_per_element_only_on_targets_given() -> None:
    """A Conv2D(1, sigmoid) map of RGB images (a segmentation mask: shaped as no input) holds 64
    values a sample: without targets it stays unjudged, as a bounded output of several values is;
    with targets uniform in [-2, 2], 3/4 of them lie outside the sigmoid's [0, 1]."""
    data = _conv_h5(3, 1)
    assert _mismatch(check_keras(data, verify=False)) == []
    [f] = _mismatch(check_keras(data, verify=False, target_range=(-2.0, 2.0)))
    assert f.severity == "warning" and abs(f.evidence.value - 0.75) < 1e-6, f.evidence.value
