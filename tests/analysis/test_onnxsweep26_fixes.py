"""onnxsweep26: a bounded ending (tanh, hardtanh) under cross-entropy in the file and live doors; a
dynamic feature size the stored tensors fix; a Keras Normalization's input drawn in its raw space; a
batch reduced for memory said; a one-unit output named a logit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth import check_module, check_onnx
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import DEFAULT_BATCH, read_header
from gradhealth.analysis.limits import Limits


def _init(name: str, a: np.ndarray) -> Any:
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def _save(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> bytes:
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def _floor(classes: int, span: float) -> float:
    """Theory: the best cross-entropy over logits held in a range ``span`` wide, over ln k at chance."""
    return math.log1p((classes - 1) * math.exp(-span)) / math.log(classes)


def _head(ending: list[Any]) -> bytes:
    """Gemm-ReLU-Gemm then ``ending`` (nodes from z to y) over 10 classes."""
    rng = np.random.default_rng(0)
    return _save([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                  helper.make_node("Gemm", ["r", "w2", "b2"], ["z"]), *ending],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 40])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                 [_init("w1", rng.normal(0, (2 / 40) ** .5, (40, 64))), _init("b1", np.zeros(64)),
                  _init("w2", rng.normal(0, (1 / 64) ** .5, (64, 10))), _init("b2", np.zeros(10)),
                  _init("lo", np.array(-1.0)), _init("hi", np.array(1.0))])


def _mismatch(doc: Any) -> Any:
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert found, [f.code for f in doc.findings]
    return found[0]


def test_onnxsweep26_a_file_ending_in_tanh_under_cross_entropy_has_the_tanh_floor() -> None:
    doc = check_onnx(_head([helper.make_node("Tanh", ["z"], ["y"])]), loss="cross_entropy", verify=False)
    f = _mismatch(doc)
    # logits in [-1, 1], 2 apart: ln(1 + 9/e^2) = 0.797, 35% of ln 10
    assert f.severity == "error" and math.isclose(f.evidence.value, _floor(10, 2.0), rel_tol=1e-9)
    assert math.isclose(f.evidence.model_dump()["loss_floor"], math.log1p(9 * math.exp(-2)), rel_tol=1e-9)


def test_onnxsweep26_a_file_ending_in_hardtanh_under_cross_entropy_has_the_same_floor() -> None:
    doc = check_onnx(_head([helper.make_node("Clip", ["z", "lo", "hi"], ["y"])]), loss="cross_entropy",
                     verify=False)
    assert math.isclose(_mismatch(doc).evidence.value, _floor(10, 2.0), rel_tol=1e-9)


class _Net(nn.Module):
    def __init__(self, end: nn.Module) -> None:
        super().__init__()
        self.network = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10), end)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def test_onnxsweep26_a_live_module_ending_in_tanh_or_hardtanh_under_cross_entropy() -> None:
    for end in (nn.Tanh(), nn.Hardtanh()):
        torch.manual_seed(0)
        doc = check_module(_Net(end), torch.randn(16, 40), loss="cross_entropy", verify=False)
        assert math.isclose(_mismatch(doc).evidence.value, _floor(10, 2.0), rel_tol=1e-9)


def test_onnxsweep26_a_relu_then_tanh_ending_takes_the_composed_range() -> None:
    # a ReLU before the tanh holds the logits in [0, 1): 1 apart, the floor of a sigmoid ending
    torch.manual_seed(0)
    doc = check_module(_Net(nn.Sequential(nn.ReLU(), nn.Tanh())), torch.randn(16, 40), loss="cross_entropy",
                       verify=False)
    assert math.isclose(_mismatch(doc).evidence.value, _floor(10, 1.0), rel_tol=1e-9)


def _keras_normalised(features: int = 8, constant: int = 2) -> bytes:
    """tf2onnx's Keras Normalization -> Dense(16, relu) -> Dense(1), every input dim dynamic; the last
    ``constant`` features were constant in training, so their scale is 1/epsilon = 1e7."""
    rng = np.random.default_rng(0)
    inv = np.ones((1, features))
    inv[0, features - constant:] = 1e7
    return _save([helper.make_node("Sub", ["x", "mu"], ["s"]), helper.make_node("Mul", ["s", "inv"], ["n"]),
                  helper.make_node("MatMul", ["n", "w1"], ["m"]), helper.make_node("Add", ["m", "b1"], ["a"]),
                  helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["m2"]),
                  helper.make_node("Add", ["m2", "b2"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["unk__6", "unk__7"])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["unk__8", 1])],
                 [_init("mu", rng.normal(50, 10, (1, features))), _init("inv", inv),
                  _init("w1", rng.normal(0, .5, (features, 16))), _init("b1", np.zeros(16)),
                  _init("w2", rng.normal(0, .25, (16, 1))), _init("b2", np.zeros(1))])


def test_onnxsweep26_a_dynamic_feature_size_the_stored_tensors_fix_is_taken_and_said() -> None:
    header = read_header(_keras_normalised(features=8))
    assert header.shapes["x"] == [DEFAULT_BATCH, 8]
    assert header.batch_note is not None and "x[1] (unk__7) is 8" in header.batch_note


def test_onnxsweep26_a_matmul_weight_alone_fixes_the_feature_size() -> None:
    rng = np.random.default_rng(1)
    data = _save([helper.make_node("MatMul", ["x", "w"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["unk__1", "unk__2"])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["unk__3", 4])],
                 [_init("w", rng.normal(0, .5, (13, 4)))])
    assert read_header(data).shapes["x"] == [DEFAULT_BATCH, 13]


def test_onnxsweep26_a_keras_normalisation_input_is_drawn_in_its_raw_space() -> None:
    imported = import_onnx(_keras_normalised())
    assert any("raw feature space" in n for n in imported.notes)
    xs = [torch.randn(64, 8, dtype=torch.float64)]
    seen: list[torch.Tensor] = []
    # what the first MatMul reads is the standardised features: the draw itself, not 1e7 times it
    net = imported.module.double()  # (as simulated: float64, where mean + z / 1e7 keeps z)
    module = next(m for m in net.modules() if isinstance(m, nn.Module) and hasattr(m, "weight")
                  and tuple(m.weight.shape) in ((16, 8), (8, 16)))
    module.register_forward_hook(lambda m, a, out: seen.append(a[0].detach()))
    with torch.no_grad():
        net(*xs)
    assert seen and float(seen[0].abs().max()) < 10.0
    assert torch.allclose(seen[0].double(), xs[0], atol=1e-3)


def test_onnxsweep26_a_batch_reduced_for_memory_is_said() -> None:
    rng = np.random.default_rng(2)
    data = _save([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 512])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 512])],
                 [_init("w", rng.normal(0, .05, (512, 512)))])
    full = read_header(data).activation_bytes
    header = read_header(data, limits=Limits(max_activation_bytes=full // 2))
    batch = header.shapes["x"][0]
    assert 2 <= batch < DEFAULT_BATCH
    assert header.batch_note is not None and f"simulated at batch {batch}, not the default {DEFAULT_BATCH}" \
        in header.batch_note


def test_onnxsweep26_one_output_named_logit_under_the_implied_mse_is_said() -> None:
    rng = np.random.default_rng(3)
    data = _save([helper.make_node("Gemm", ["x", "w", "b"], ["logit"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                 [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])],
                 [_init("w", rng.normal(0, .4, (6, 1))), _init("b", np.zeros(1))])
    doc = check_onnx(data, verify=False)
    assert doc.simulation is not None
    assert any("--loss binary_cross_entropy" in n and "'logit'" in n for n in doc.simulation.notes)


def test_onnxsweep26_sources_parse() -> None:
    onnx.checker.check_model(onnx.load_from_string(_keras_normalised()))
