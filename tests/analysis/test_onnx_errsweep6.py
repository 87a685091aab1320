"""errsweep6 #7 in the ONNX importer (the job's side): a graph whose stored floats are all constants
(no weight input reads one) has no trainable weight, said in words rather than torch's "element 0 of
tensors does not require grad"; a node's failure names a weight it holds as such, not "'W': NoneType"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import _describe, import_onnx, require_weights
from gradhealth.analysis.module_check import check_onnx


def test_a_graph_of_constants_only_has_no_trainable_weight() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(1.0, np.float32), "b")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    with pytest.raises(ModelError, match=r"no trainable weight: no stored tensor \(b\) feeds a weight input"):
        require_weights(import_onnx(data))
    with pytest.raises(ModelError, match=r"no trainable weight") as err:
        check_onnx(data, seeds=1)
    assert "grad_fn" not in str(err.value)


def test_a_held_weight_is_described_as_such() -> None:
    text = _describe(["W", "ix"], [None, torch.tensor([7, 0])])
    assert text == "'W', a stored tensor the node holds as its weight, 'ix' = [7, 0]"
    assert "NoneType" not in text
