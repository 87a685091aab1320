"""What the fifth ONNX sweep found: Einsum nodes on an initializer were weightless functions, a huge
declared input got past the memory limit, and a negative initializer dimension was read as "infer"."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradhealth.analysis.module_check import check_onnx
from tests.analysis.onnx_models import export


class _EinsumMLP(nn.Module):
    """Layers written as einsum over weights the module holds, N(0, 1): the gradient explodes."""

    def __init__(self, depth: int = 6, width: int = 32) -> None:
        super().__init__()
        self.ws = nn.ParameterList(nn.Parameter(torch.randn(width, width)) for _ in range(depth))
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w in self.ws:
            x = torch.tanh(torch.einsum("bi,oi->bo", x, w))
        return self.head(x)


def _as_linear(model: _EinsumMLP) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in model.ws:
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers, model.head)


def test_einsum_nodes_on_an_initializer_are_layers_measured_as_their_linear_twins() -> None:
    torch.manual_seed(0)
    model, x = _EinsumMLP(), torch.randn(2, 32)
    doc = check_onnx(export(model, x), seeds=2, verify=False)
    twin = check_onnx(export(_as_linear(model), x), seeds=2, verify=False)
    weighted = [layer for layer in doc.layers if layer.type == "linear"]
    assert len(weighted) == 7 and [(layer.fan_in, layer.fan_out) for layer in weighted[:6]] == [(32, 32)] * 6
    assert {f.code for f in doc.findings} == {f.code for f in twin.findings} != set()
    for f, g in zip(doc.findings, twin.findings, strict=True):
        assert f.evidence.value == pytest.approx(g.evidence.value, rel=1e-6)


def _graph(node: str, x_shape: list[int], out_shape: list[int], weight_dims: list[int] | None = None,
           opset: int = 17) -> bytes:
    import numpy as np
    from onnx import TensorProto, helper

    inits, inputs = [], ["x"]
    if weight_dims is not None:  # a weight whose declared dims are written as given (raw data of 64 x 64)
        w = TensorProto(name="W", data_type=TensorProto.FLOAT, raw_data=np.ones(64 * 64, np.float32).tobytes())
        w.dims.extend(weight_dims)
        inits.append(w)
        inputs.append("W")
    op = helper.make_node(node, inputs, ["y"], **({"axes": [2], "keepdims": 0} if node == "ReduceMean" else {}))
    graph = helper.make_graph([op], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def test_a_huge_declared_input_is_refused_by_the_memory_limit_before_anything_is_allocated() -> None:
    from gradhealth.errors import LimitExceeded

    # [16, 64, 2e9] floats: 1.6e13 bytes in float64, whatever the ReduceMean after it makes
    with pytest.raises(LimitExceeded, match="over the limit"):
        check_onnx(_graph("ReduceMean", [16, 64, 2_000_000_000], [16, 64]), seeds=1, verify=False)


def test_a_stored_tensor_of_a_negative_size_and_an_opset_from_the_future_are_refused() -> None:
    from gradhealth.analysis.importers import ModelError

    with pytest.raises(ModelError, match=r"negative dimension: W \[64, -64\]"):
        check_onnx(_graph("MatMul", [2, 64], [2, 64], weight_dims=[64, -64]), seeds=1, verify=False)
    with pytest.raises(ModelError, match="declares opset ai.onnx 99"):
        check_onnx(_graph("Relu", [2, 4], [2, 4], opset=99), seeds=1, verify=False)
