"""What the third ONNX sweep found, each rebuilt here with plain torch: a clip's bounds given to the
activation that replaces it, an opset-10 clip's attributes, the hard sigmoid's flat tails, a
saturating gate's bias, and external data that names a file outside the model's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import inline_external
from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import export


def _mlp(act: type[nn.Module], std: float, depth: int = 4, width: int = 32, bias: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        nn.init.normal_(lin.weight, 0.0, std)
        nn.init.constant_(lin.bias, bias)
        layers += [lin, act()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _codes(doc) -> dict[str, object]:
    return {f.code: f for f in doc.findings}


@pytest.mark.parametrize("act,opset", [(nn.Hardtanh, 11), (nn.Hardtanh, 17), (nn.ReLU6, 11)])
def test_a_clip_swapped_for_a_relu_is_given_its_tensor_alone(act: type[nn.Module], opset: int) -> None:
    # Clip(x, min, max): the ReLU that replaces it in a remedy's copy takes x, not the bounds
    model = _mlp(act, 1.0) if act is nn.Hardtanh else _mlp(act, 0.3, bias=-2.0)
    doc = check_onnx(export(model, torch.randn(8, 32), opset=opset), seeds=1)
    finding = _codes(doc)["saturation" if act is nn.Hardtanh else "dead_units"]
    swapped = [r for r in finding.remedies if r.id == "relu_family_activation"]
    assert swapped and swapped[0].verified is not None


def _clip10(lo: float, hi: float) -> bytes:
    """Linear then Clip with its bounds as attributes (opset 10)."""
    w = numpy_helper.from_array(np.full((4, 4), 3.0, np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Clip", ["h"], ["y"], min=lo, max=hi)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)]).SerializeToString()


def test_an_opset_10_clip_takes_its_bounds_from_its_attributes() -> None:
    graph = import_onnx(_clip10(-1.0, 1.0)).module.double()
    x = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(2, 4)
    expected = torch.clamp(x @ torch.full((4, 4), 3.0, dtype=torch.float64), -1.0, 1.0)
    torch.testing.assert_close(graph(x), expected)


def test_a_hard_sigmoid_in_its_flat_tails_is_saturated_and_measured_so() -> None:
    model = _mlp(nn.Hardsigmoid, 2.0, depth=3)
    x = torch.randn(256, 32)
    # the share of units with derivative exactly 0, measured here on the model itself
    with torch.no_grad():
        h, flat = x, []
        for layer in list(model)[:-1]:
            h = layer(h)
            if isinstance(layer, nn.Hardsigmoid):
                flat.append(float(((h <= 0) | (h >= 1)).double().mean()))
    assert min(flat) > 0.5
    for doc in (check_module(model, x, seeds=1), check_onnx(export(model, x), seeds=1)):
        sat = _codes(doc)["saturation"]
        assert sat.severity == "error"
        assert sat.evidence.value == pytest.approx(max(flat), abs=0.1)
    # at a sound scale the same network is healthy: its pre-activations sit inside (-3, 3)
    assert "saturation" not in _codes(check_module(_mlp(nn.Hardsigmoid, 32 ** -0.5, depth=3), x, seeds=1))


class ClosedGate(nn.Module):
    """A squeeze-excitation gate whose bias shuts it: sigmoid(W s - 10) ~ 0 whatever the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(8, 4), nn.Linear(4, 8)
        nn.init.constant_(self.fc2.bias, -10.0)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(h.mean((2, 3))))))
        return self.head((h * s[:, :, None, None]).mean((2, 3)))


def test_a_gate_shut_by_its_bias_is_offered_the_bias_at_zero() -> None:
    torch.manual_seed(0)
    doc = check_module(ClosedGate(), torch.randn(16, 4, 8, 8), seeds=1)
    sat = _codes(doc)["saturation"]
    zero = [r for r in sat.remedies if r.id == "zero_bias"]
    assert zero and zero[0].verified is not None and zero[0].verified.fixed
    # a gate is not offered a ReLU in its place (a ReLU gates nothing)
    assert "relu_family_activation" not in {r.id for r in sat.remedies}


def _external(tmp_path: Path, location: str) -> bytes:
    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4])
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("where,why", [
    ("../secret.bin", "not a plain file name"), ("/etc/passwd", "not a plain file name"),
    ("missing.bin", "no such file beside the model"),
])
def test_external_data_outside_the_models_folder_is_refused_by_its_name(tmp_path: Path, where: str, why: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.ones(16, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(ModelError, match=why):
        inline_external(_external(tmp_path, where), folder)


def test_external_data_named_plainly_beside_the_model_is_read(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    model = onnx.load_from_string(inline_external(_external(tmp_path, "w.bin"), tmp_path))
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]).ravel(), np.arange(16))
