"""onnxsweep28 cappgpt: a KV-cache decoder export declares its attention mask's length as a sum of
other dims (``past_sequence_length + sequence_length``); the refusal's example ``--input-shape``
gave the sum the same stand-in as each term, and pasting it failed at an Add deep in the graph that
named no input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx_static import EXAMPLE_SIZE, sum_terms
from gradhealth.analysis.module_check import check_onnx


def _kv_graph() -> bytes:
    """x [N, S], past [N, P], mask [N, "P + S"]: Concat(past, x) is [N, P + S] and is added to the
    mask, so the graph runs only where the mask's length is P + S."""
    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S"]),
              helper.make_tensor_value_info("past", TensorProto.FLOAT, ["N", "P"]),
              helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", "P + S"])]
    w = numpy_helper.from_array(rng.normal(size=(1, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [helper.make_node("Concat", ["past", "x"], ["cat"], name="cat", axis=1),
             helper.make_node("Add", ["cat", "mask"], ["masked"], name="add"),
             helper.make_node("ReduceMean", ["masked"], ["pooled"], name="pool", axes=[1], keepdims=1),
             helper.make_node("Gemm", ["pooled", "w", "b"], ["logits"], name="head")]
    graph = helper.make_graph(nodes, "kv", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
                              initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return bytes(model.SerializeToString())


def _example(text: str) -> dict[str, list[int]]:
    return {name: [int(v) for v in sizes.split("x")]
            for name, sizes in re.findall(r"--input-shape (\w+)=([\dx]+)", text)}


def test_sum_terms_reads_only_names_and_integers_joined_by_plus() -> None:
    assert sum_terms("past_sequence_length + sequence_length") == ["past_sequence_length", "sequence_length"]
    assert sum_terms("past_sequence_length+1") == ["past_sequence_length", "1"]
    assert sum_terms("sequence_length") is None
    assert sum_terms("2*S") is None and sum_terms("S - 1") is None and sum_terms("__import__('os') + 1") is None


def test_the_example_gives_a_sum_dim_the_sum_of_its_terms_and_pasting_it_runs() -> None:
    data = _kv_graph()
    with pytest.raises(ModelError) as err:
        check_onnx(data, seeds=1, verify=False)
    shown = _example(str(err.value))
    # P and S each the stand-in, the mask's P + S their sum
    assert shown == {"x": [16, EXAMPLE_SIZE], "past": [16, EXAMPLE_SIZE], "mask": [16, 2 * EXAMPLE_SIZE]}
    assert "mask[1] (P + S) is their sum, 256" in str(err.value)
    doc = check_onnx(data, seeds=1, verify=False, input_shapes=shown)
    assert doc.layers


def test_a_term_given_by_the_user_is_added_as_given() -> None:
    with pytest.raises(ModelError) as err:
        check_onnx(_kv_graph(), seeds=1, verify=False, input_shapes={"x": [16, 8]})
    shown = _example(str(err.value))
    assert shown["past"] == [16, EXAMPLE_SIZE] and shown["mask"] == [16, EXAMPLE_SIZE + 8]


def test_a_size_mismatch_names_the_sum_dim_and_the_sum_it_should_be() -> None:
    with pytest.raises(ModelError) as err:
        check_onnx(_kv_graph(), seeds=1, verify=False,
                   input_shapes={"x": [16, 128], "past": [16, 128], "mask": [16, 128]})
    text = str(err.value)
    assert "does not run on inputs of shapes" in text
    assert "mask[1] (P + S) is 128, but the other inputs' sizes make it 128 + 128 = 256" in text
