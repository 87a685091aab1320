"""A short stack of saturating layers whose gradient shrinks 7-10x per layer (onnxsweep19 u01,
kerassweep21 u08): the first-to-last ratio over two steps stayed over 1e-2 (0.0196, 0.0127) and read
healthy. The rate per layer is judged too (``SATURATING_LAYER_FACTOR``, 0.2), through saturating
activations, over two steps or more.

Numbers from mean-field theory, not from the tool: ||dL/dh|| falls per layer by
sqrt(fan * Var(W) * E[phi'(z)^2]); a sigmoid's slope is 1/4 at 0, so torch's default Var(W) =
1/(3 fan_in) gives sqrt(1/3 / 16) = 0.144, LeCun's 1/fan_in sqrt(1/16) = 0.25 (a little less as the
pre-activations spread: 0.23-0.24), a tanh's at torch's default sqrt(1/3) = 0.58."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.module_check import check_onnx
from tests.keras_files import keras2_h5


def _stack(widths: list[int], act: str, std: str, seed: int = 0, classes: int = 10) -> bytes:
    """An ONNX Gemm stack ``widths[0]`` -> ... -> ``classes`` with ``act`` after every hidden layer;
    ``std``: "torch" (U(+-1/sqrt(fan_in))) or "lecun" (N(0, 1/fan_in))."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], {}, "x"
    dims = widths + [classes]
    for i, (fan, out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        bound = fan ** -0.5
        w = (rng.uniform(-bound, bound, (out, fan)) if std == "torch" else rng.standard_normal((out, fan)) * bound)
        inits[f"w{i}"] = w.astype(np.float32)
        inits[f"b{i}"] = np.zeros(out, np.float32)
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"z{i}"], transB=1))
        x = f"z{i}"
        if i < len(dims) - 2:
            nodes.append(helper.make_node(act, [x], [f"h{i}"]))
            x = f"h{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", widths[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _vanishing(doc: Any) -> list[Any]:
    return [f for f in doc.findings if f.code == "vanishing_gradient"]


def test_three_sigmoid_layers_at_torch_default_init_are_a_warning() -> None:
    # onnxsweep19 u01's shape at width 200: 0.144 per layer, ~0.02 over 2 steps (over the 1e-2 bar)
    doc = check_onnx(_stack([200, 200, 200, 200], "Sigmoid", "torch"), verify=False)
    found = _vanishing(doc)
    assert found and found[0].severity == "warning"
    ev = found[0].evidence.model_dump()
    assert ev["short_saturating_stack"] is True
    assert ev["per_layer_threshold"] == 0.2
    assert 0.12 < ev["judged_per_layer_factor"] < 0.17  # theory: 0.144
    assert ev["grad_ratio"] > 0.01  # the total alone is under no bar
    assert ev["weight_grad_ratio_first_to_readout"] < ev["grad_ratio"]
    assert "short stack" in found[0].summary


def test_under_adam_it_stays_a_warning() -> None:
    # as the total's rule: through saturating activations an adaptive optimizer does not make it a note
    doc = check_onnx(_stack([200, 200, 200, 200], "Sigmoid", "torch"), verify=False,
                     optimizer={"type": "adam", "lr": 1e-3})
    found = _vanishing(doc)
    assert found and found[0].severity == "warning"


def test_lecun_init_sigmoid_tanh_and_a_single_step_stay_healthy() -> None:
    for widths, act, std in (([200, 200, 200, 200], "Sigmoid", "lecun"),  # 0.24 per layer: the slope's own
                             ([200, 200, 200, 200], "Tanh", "torch"),  # 0.58 per layer
                             ([200, 200, 200], "Sigmoid", "torch")):  # one step: 0.144, 7x
        doc = check_onnx(_stack(widths, act, std), verify=False)
        assert not _vanishing(doc), (widths, act, std)


def test_a_stack_widening_to_the_output_is_judged_per_unit_too() -> None:
    # 32-64-128 at LeCun: the norm over 128 units is larger than over 32 (0.19 per layer by norms),
    # per unit ~0.24 as at equal widths: not a finding its widths make
    doc = check_onnx(_stack([200, 32, 64, 128], "Sigmoid", "lecun"), verify=False)
    assert not _vanishing(doc)


def _dense(name: str, units: int, act: str, std: float) -> dict[str, Any]:
    init = {"module": "keras.initializers", "class_name": "RandomNormal",
            "config": {"mean": 0.0, "stddev": std, "seed": None}, "registered_name": None}
    zeros = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "units": units, "activation": act,
                                              "use_bias": True, "kernel_initializer": init, "bias_initializer": zeros}}


def test_keras_sigmoid_mlp_at_random_normal_005_is_a_warning() -> None:
    # kerassweep21 u08's shape: 21-128-64-32-1, RandomNormal(0.05): per layer sqrt(fan * 0.0025 / 16)
    # = 0.2 (fan 64) and 0.28 (fan 128) by the weights' scale, less through the sigmoids' spread
    config = {"class_name": "Sequential", "config": {"name": "mlp", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, 21]}},
        _dense("d0", 128, "sigmoid", 0.05), _dense("d1", 64, "sigmoid", 0.05), _dense("d2", 32, "sigmoid", 0.05),
        _dense("out", 1, "linear", 0.05)]}}
    data = keras2_h5(config, {}, attrs={"keras_version": "2.13.1"})
    doc = check_keras(data, weights="reinitialise", seeds=3, verify=False, loss="mse")
    found = _vanishing(doc)
    assert found and found[0].severity == "warning"
    assert 0.05 < found[0].evidence.model_dump()["per_layer_factor"] <= 0.2
