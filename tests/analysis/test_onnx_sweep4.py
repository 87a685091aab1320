"""What the fourth ONNX sweep found, rebuilt with plain torch: a ReLU after a sum or a concatenation
(ResNet's relu(x + f(x)), DenseNet's joins) counted its units along the image's width, where a whole
column is never zero, so its dead channels went unseen; and in a live module, a functional ReLU
there was not measured at all."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import export


def _neg(conv: nn.Conv2d) -> nn.Conv2d:
    """Three quarters of the channels biased to -10: off for every input."""
    nn.init.kaiming_normal_(conv.weight)
    bias = torch.zeros(conv.out_channels)
    bias[: 3 * conv.out_channels // 4] = -10.0
    conv.bias.data = bias
    return conv


class Join(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.a, self.b = _neg(nn.Conv2d(3, 32, 3, 1, 1)), _neg(nn.Conv2d(3, 32, 3, 1, 1))
        self.c = nn.Conv2d(64 if mode == "concat" else 32, 32, 3, 1, 1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x) + self.b(x)) if self.mode == "add" else F.relu(torch.cat([self.a(x), self.b(x)], 1))
        return self.head(F.relu(self.c(h)).mean((2, 3)))


def _dead_channels(model: Join, x: torch.Tensor) -> float:
    """The share of the joined ReLU's channels zero for every sample and position, measured here."""
    with torch.no_grad():
        a, b = model.a(x), model.b(x)
        h = F.relu(a + b) if model.mode == "add" else F.relu(torch.cat([a, b], 1))
    return 1.0 - float((h != 0).transpose(0, 1).flatten(1).any(1).double().mean())


@pytest.mark.parametrize("mode", ["add", "concat"])
def test_a_relu_after_a_join_counts_its_dead_channels_in_both_doors(mode: str) -> None:
    torch.manual_seed(0)
    model, x = Join(mode).eval(), torch.randn(16, 3, 16, 16)
    dead = _dead_channels(model, x)
    assert dead == pytest.approx(0.75)
    for doc in (check_onnx(export(model, x), seeds=1, verify=False), check_module(model, x, seeds=1, verify=False)):
        [f] = [f for f in doc.findings if f.code == "dead_units"]
        assert f.evidence.value == pytest.approx(dead, abs=0.05)


class Cell(nn.Module):
    """A tanh cell written by hand: a functional activation on a sum, called at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.x2h, self.h2h, self.head = nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], 16)
        for t in range(x.shape[1]):
            h = torch.tanh(self.x2h(x[:, t]) + self.h2h(h))
        return self.head(h)


def test_an_activation_on_a_sum_called_at_every_step_is_a_step_not_a_layer() -> None:
    # measured at its first call (its saturation counts, msweep13), once: not twelve layers of depth
    torch.manual_seed(0)
    doc = check_module(Cell(), torch.randn(8, 12, 4), seeds=1, verify=False)
    assert [layer.name for layer in doc.layers if ">" in layer.name] == ["h2h>tanh"]
    assert {f.code for f in doc.findings} == {"vanishing_through_time"}  # its recurrence's, as before


def _mlp_file(batch: int | str, width: int | str = 4, domain: str = "") -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    op = helper.make_node("FusedMatMul" if domain else "MatMul", ["x", "W"], ["y"], domain=domain or None)
    graph = helper.make_graph([op], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], [w])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


@pytest.mark.parametrize("batch,width,where", [(0, 4, "x[0] = 0"), (-16, 4, "x[0] = -16"), (8, 0, "x[1] = 0")])
def test_a_size_declared_zero_or_negative_is_refused_as_such(batch: int, width: int, where: str) -> None:
    from gradhealth.analysis.importers import ModelError

    with pytest.raises(ModelError, match="declared 0 or negative: " + re.escape(where)):
        check_onnx(_mlp_file(batch, width), seeds=1, verify=False)


def test_minus_one_is_a_dimension_left_open() -> None:
    # some converters write -1 for a batch they do not know: the default batch, as a missing one
    doc = check_onnx(_mlp_file(-1), seeds=1, verify=False)
    assert doc.simulation.batch_size > 0


def test_an_op_of_another_domain_is_named_with_its_domain() -> None:
    from gradhealth.analysis.importers import ModelError

    with pytest.raises(ModelError, match="com.microsoft::FusedMatMul"):
        check_onnx(_mlp_file(2, domain="com.microsoft"), seeds=1, verify=False)
