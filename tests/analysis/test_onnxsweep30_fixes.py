"""onnxsweep30's ONNX door defects: a 1-D input whose only axis is declared dynamic (``['batch_size']``)
but read whole by a stored MatMul weight was run as a batch of 16 scalars and failed with torch's raw
shape error (F1); a legacy IR-1 file with no opset_import was told it had "no graph, nodes or opset"
(F2); an HTML page or a Git LFS pointer saved as the model was "Wire format was corrupt" (F4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import read_keras_training
from gradhealth.analysis.importers.onnx_static import parse, read_header
from gradhealth.analysis.module_check import check_onnx
from gradhealth.errors import InputFormatError


def _q_net(lead: list[int | str], features: int | str = 14) -> bytes:
    """The snake Q-net's shape, smaller: input [*lead, features] -> MatMul 14x32 (+ b) -> Relu ->
    MatMul 32x3, the same seeded weights whatever the declared shape."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((14, 32)) * 0.4).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal(32) * 0.1).astype(np.float32), "b1"),
             numpy_helper.from_array((rng.standard_normal((32, 3)) * 0.3).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"], name="/linear1/MatMul"),
             helper.make_node("Add", ["h", "b1"], ["hb"]), helper.make_node("Relu", ["hb"], ["a"]),
             helper.make_node("MatMul", ["a", "w2"], ["q"], name="/linear2/MatMul")]
    shape = [*lead, features] if lead else [features]
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("q", TensorProto.FLOAT, [*lead, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_dynamic_1d_input_read_whole_by_a_weight_is_features_onnxsweep30() -> None:
    # input ['batch_size'] @ w1 [14, 32]: the weight contracts the only axis, so it is 14 features and
    # not a batch of 16 scalars (which torch refused: 1x16 and 14x32). Checked as its batched twin
    # [N, 14] is, to the same gradients, and the note says why the named axis was read as features.
    one = check_onnx(_q_net([], "batch_size"), seeds=2, loss="mse")
    twin = check_onnx(_q_net(["N"]), seeds=2, loss="mse")
    assert one.simulation.batch_size == 16 == twin.simulation.batch_size
    assert "14 features" in one.summary and "'batch_size'" in one.summary and "[14, 32]" in one.summary
    for a, b in zip(one.layers, twin.layers, strict=True):
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-9)


def test_dynamic_1d_input_takes_the_size_the_user_gives_onnxsweep30() -> None:
    # --input-shape input=14 (what the refusal used to be missing) reads as the declared [14] does
    header = read_header(_q_net([], "batch_size"), input_shapes={"input": [14]})
    assert header.shapes["input"] == [16, 14]
    assert read_header(_q_net([], "batch_size"), batch_size=4).shapes["input"] == [4, 14]


def test_dynamic_1d_input_not_read_whole_stays_a_batch_onnxsweep30() -> None:
    # a batch of scalars: x [N] -> Unsqueeze -> [N, 1] @ w [1, 8]; no weight reads the axis whole, so it
    # is still the batch the exporter named
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["x1"]), helper.make_node("MatMul", ["x1", "w"], ["h"]),
             helper.make_node("Tanh", ["h"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["y"])]
    g = helper.make_graph(nodes, "s", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
                          [numpy_helper.from_array(np.array([1], np.int64), "ax"),
                           numpy_helper.from_array(rng.standard_normal((1, 8)).astype(np.float32), "w"),
                           numpy_helper.from_array(rng.standard_normal((8, 1)).astype(np.float32), "w2")])
    header = read_header(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert header.shapes["x"] == [16] and header.one_sample is None and header.batch_note is None


def test_shape_error_names_the_input_and_the_input_shape_to_give_onnxsweep30() -> None:
    # the axis reaches the weight through a Reshape to [1, -1] (a traced x.view(1, -1)): not followed,
    # so the check still takes it as the batch, and the run fails; the refusal names the input and the
    # --input-shape that gives its size (the weight's 14 rows), not torch's message alone
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["x2"]),
             helper.make_node("MatMul", ["x2", "w"], ["h"], name="/fc/MatMul"), helper.make_node("Relu", ["h"], ["y"])]
    g = helper.make_graph(nodes, "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                          [numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
                           numpy_helper.from_array(rng.standard_normal((14, 8)).astype(np.float32), "w")])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ModelError) as err:
        check_onnx(data, seeds=1, loss="mse")
    text = str(err.value)
    assert "input x's first axis ('batch_size')" in text and "--input-shape x=14" in text
    # and following it runs
    doc = check_onnx(data, seeds=1, loss="mse", input_shapes={"x": [14]})
    assert doc.layers


def _espcn(legacy: bool) -> bytes:
    """A conv net as PyTorch 0.2 wrote it (``legacy``: IR version 1, no opset_import, opset 1's Add with
    ``broadcast``/``axis`` and Reshape with its shape as an attribute, attributes with no ``type``), or
    the same net in opset 13 (the bias [C, 1, 1], the shape an input)."""
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal(4) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32)
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 256])
    if legacy:
        nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], **conv),
                 helper.make_node("Add", ["c1", "b1"], ["a1"], broadcast=1, axis=1),
                 helper.make_node("Relu", ["a1"], ["r1"]),
                 helper.make_node("Conv", ["r1", "w2"], ["c2"], **conv),
                 helper.make_node("Reshape", ["c2"], ["y"], shape=[2, 256])]
        inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")]
        # IR 1 lists every weight as a graph input too
        weights = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
        g = helper.make_graph(nodes, "torch-jit-export", [x, *weights], [y], inits)
        model = helper.make_model(g, producer_name="pytorch", producer_version="0.2")
        del model.opset_import[:]
        model.ir_version = 1
        for n in model.graph.node:
            for a in n.attribute:
                a.type = 0  # (UNDEFINED: IR 1 had no attribute types)
        return model.SerializeToString()
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], **conv), helper.make_node("Add", ["c1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("Conv", ["r1", "w2"], ["c2"], **conv),
             helper.make_node("Reshape", ["c2", "shape"], ["y"])]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1.reshape(4, 1, 1), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.array([2, 256], np.int64), "shape")]
    g = helper.make_graph(nodes, "modern", [x], [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_legacy_ir1_file_is_read_as_opset_1_onnxsweep30() -> None:
    # ONNX before IR 3 had no opset_import: such a file is opset 1 (its Add broadcasts by axis, its
    # Reshape takes an attribute). Before, "no graph, nodes or opset in the file". Now it is checked,
    # said, and measures what the same net written in opset 13 measures
    torch.manual_seed(0)
    old = check_onnx(_espcn(True), seeds=2, loss="mse")
    new = check_onnx(_espcn(False), seeds=2, loss="mse")
    assert "legacy ONNX file (IR version 1, no opset_import; exported by pytorch 0.2)" in old.summary
    assert "read as opset 1" in old.summary
    assert len(old.layers) == len(new.layers)
    for a, b in zip(old.layers, new.layers, strict=True):
        assert (a.grad_norm is None) == (b.grad_norm is None)
        assert a.grad_norm is None or a.grad_norm == pytest.approx(b.grad_norm, rel=1e-6)
        assert a.output_grad_norm == pytest.approx(b.output_grad_norm, rel=1e-6)


def test_missing_graph_nodes_or_opset_are_each_said_onnxsweep30() -> None:
    with pytest.raises(InputFormatError, match="holds no graph"):
        parse(b"\x08\x07")  # ir_version 7 and nothing else
    empty = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InputFormatError, match="graph has no nodes"):
        parse(empty.SerializeToString())
    modern = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    del modern.opset_import[:]
    with pytest.raises(InputFormatError) as err:
        parse(modern.SerializeToString())
    text = str(err.value)
    assert "declares no opset" in text and "no graph" not in text and "onnx.helper" in text
    # a legacy file with ops of another domain, whose versions nothing says: refused, naming what to do
    legacy = helper.make_model(helper.make_graph([helper.make_node("Foo", ["x"], ["y"], domain="com.example")], "g",
                                                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    del legacy.opset_import[:]
    legacy.ir_version = 2
    with pytest.raises(InputFormatError) as err:
        parse(legacy.SerializeToString())
    assert "legacy ONNX file (IR version 2" in str(err.value) and "version_converter" in str(err.value)
    assert "Foo" in str(err.value)


_LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 12345678\n"
_HTML = b"\n\n\n<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>yolov8n.onnx</title></head>\n" + b" " * 100


def test_html_page_or_lfs_pointer_saved_as_a_model_is_said_onnxsweep30() -> None:
    for data, said, fix in ((_LFS, "a Git LFS pointer", "git lfs pull"),
                            (_HTML, "an HTML page", "raw file"),
                            (b"\xef\xbb\xbf  <html><body>404</body></html>", "an HTML page", "raw file")):
        with pytest.raises(InputFormatError) as err:
            parse(data)
        assert said in str(err.value) and fix in str(err.value) and "Wire format" not in str(err.value)
        # the Keras door (a .h5 or .keras that is the page or the pointer) says the same
        with pytest.raises(InputFormatError) as err:
            read_keras_training(data)
        assert said in str(err.value) and fix in str(err.value)
