"""onnxsweep25: tf2onnx's UpSampling2D (Resize ``tf_half_pixel_for_nn``) refused, a display tail
(x255, a Cast to uint8, sample 0) taken as the loss point, scikit-learn ops refused without a
reason, and the wording of a healthy summary's notes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.module_check import check_onnx

# --- 1. Resize nearest, coordinate_transformation_mode=tf_half_pixel_for_nn ------------------------


def _resize_graph(scales: list[float] | None = None, sizes: list[int] | None = None,
                  nearest_mode: str = "floor", hw: tuple[int, int] = (5, 7)) -> bytes:
    """Conv -> Resize (tf2onnx's UpSampling2D attributes, opset 11: the last opset with the mode)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (2, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(0, np.float32), "roi")]
    inputs = ["c", "roi"]
    if scales is not None:
        inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
        inputs.append("scales")
    else:
        inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "scales"))
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        inputs += ["scales", "sizes"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", inputs, ["y"], mode="nearest",
                              coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode=nearest_mode)]
    graph = helper.make_graph(nodes, "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 1, *hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]).SerializeToString()


def _spec_tf_half_pixel_for_nn(x: np.ndarray, factors: list[float], out: list[int]) -> np.ndarray:
    """The ONNX opset-11 spec's formula, written out: x_original = (x_resized + 0.5) / scale, then
    nearest_mode floor, the index clamped to the input (onnx's reference evaluator dropped the mode
    with opset 13 and does not run it)."""
    for axis, (s, n_out) in enumerate(zip(factors, out, strict=True), start=2):
        idx = np.clip(np.floor((np.arange(n_out) + 0.5) / s).astype(int), 0, x.shape[axis] - 1)
        x = np.take(x, idx, axis=axis)
    return x


def _asymmetric_floor_reference(x: np.ndarray, scales: list[float]) -> np.ndarray:
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    graph = helper.make_graph([node], "r", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
                              [numpy_helper.from_array(np.array(scales, np.float32), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


@pytest.mark.parametrize(("scales", "sizes"), [([1, 1, 2, 2], None), ([1, 1, 3, 2], None), (None, [4, 2, 10, 21])])
def test_tf_half_pixel_for_nn_at_whole_scales_is_simulated_as_the_spec_computes(scales, sizes) -> None:
    data = _resize_graph(scales, sizes)
    imported = import_onnx(data)
    x = torch.randn(4, 1, 5, 7, dtype=torch.float64)
    got = imported.module.double()(x).detach().numpy()
    w = numpy_helper.to_array(onnx.load_from_string(data).graph.initializer[0]).astype(np.float64)
    conv = torch.nn.functional.conv2d(x, torch.from_numpy(w), padding=1).numpy()
    factors = [float(v) for v in scales[2:]] if scales else [o / i for o, i in zip(sizes[2:], (5, 7), strict=True)]
    out = [int(np.floor(n * s)) for n, s in zip((5, 7), factors, strict=True)]
    want = _spec_tf_half_pixel_for_nn(conv, factors, out)
    assert got.shape == want.shape and np.array_equal(got, want)
    # and it is what onnx's reference evaluator computes for asymmetric / floor, the simulated mode
    assert np.array_equal(want, _asymmetric_floor_reference(conv, [1, 1, *factors]))


def test_the_spec_formula_differs_from_asymmetric_at_other_scales_and_modes() -> None:
    """Why the rest is refused: at a scale of 1.5, or with a rounding nearest_mode, the spec's index
    map is not asymmetric's (checked against onnx's reference evaluator)."""
    x = np.arange(6, dtype=np.float64).reshape(1, 1, 1, 6)
    half = _spec_tf_half_pixel_for_nn(x, [1.0, 1.5], [1, 9])
    assert not np.array_equal(half, _asymmetric_floor_reference(x, [1, 1, 1, 1.5]))


@pytest.mark.parametrize("scales", [[1, 1, 1.5, 2], [1, 1, 2, 0.5]])
def test_tf_half_pixel_for_nn_at_other_scales_is_refused_saying_why(scales) -> None:
    with pytest.raises(ModelError) as info:  # (stored scales: refused at submission, by the header)
        import_onnx(_resize_graph(scales))
    said = str(info.value)
    assert "tf_half_pixel_for_nn" in said and "whole-number scale" in said and "floor((i + 0.5) / s)" in said


def test_tf_half_pixel_for_nn_resized_to_sizes_of_no_whole_factor_is_refused_when_run() -> None:
    with pytest.raises(ModelError) as info:  # 5 -> 7 rows: a factor of 1.4, known once the input runs
        check_onnx(_resize_graph(sizes=[4, 2, 7, 14]), seeds=1, verify=False)
    said = str(info.value)
    assert "scale 1.4 on axis 2" in said and "whole-number scale" in said


def test_tf_half_pixel_for_nn_with_a_rounding_nearest_mode_is_refused() -> None:
    with pytest.raises(ModelError, match="nearest_mode=round_prefer_ceil"):
        import_onnx(_resize_graph([1, 1, 2, 2], nearest_mode="round_prefer_ceil"))


def test_an_upsampling_autoencoder_from_tf2onnx_is_checked() -> None:
    doc = check_onnx(_resize_graph([1, 1, 2, 2]), seeds=1, verify=False)
    assert doc.status in ("healthy", "unhealthy")


# --- 2. a display tail: uint8(255 * sigmoid(x)[0]) --------------------------------------------------


def _decoder(tail: str) -> bytes:
    """Gemm-ReLU-Gemm-Sigmoid and a display tail: ``plain`` (the Sigmoid is the output), ``x255``
    (Mul 255, Cast uint8), ``gather0`` (sample 0 first, then x255 and the Cast), ``gather_first``
    (sample 0 picked before the Sigmoid: no tensor has both the batch and the activation)."""
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1.0, (16, 2)).astype(np.float32)
    b = rng.normal(0, 0.25, (64, 16)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["z", "a"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "b"], ["l"], transB=1)]
    inits = [numpy_helper.from_array(a, "a"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array(255.0, np.float32), "k"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zero1"), numpy_helper.from_array(np.array([1], np.int64), "one1"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"), numpy_helper.from_array(np.array(1.0, np.float32), "hi")]
    if tail == "gather_first":
        nodes += [helper.make_node("Gather", ["l", "zero"], ["l0"], axis=0), helper.make_node("Sigmoid", ["l0"], ["p"]),
                  helper.make_node("Mul", ["p", "k"], ["s"])]
    else:
        nodes.append(helper.make_node("Sigmoid", ["l"], ["p"]))
        if tail == "gather0":
            nodes += [helper.make_node("Gather", ["p", "zero"], ["p0"], axis=0), helper.make_node("Mul", ["p0", "k"], ["s"])]
        elif tail == "slice0":  # p[0:1] along axis 0, clipped to [0, 1], then x255
            nodes += [helper.make_node("Slice", ["p", "zero1", "one1", "zero1"], ["p0"]),
                      helper.make_node("Clip", ["p0", "lo", "hi"], ["pc"]), helper.make_node("Mul", ["pc", "k"], ["s"])]
        elif tail == "x255":
            nodes.append(helper.make_node("Mul", ["p", "k"], ["s"]))
    if tail == "plain":
        out = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 64])
    else:
        nodes.append(helper.make_node("Cast", ["s"], ["img"], to=TensorProto.UINT8))
        out = helper.make_tensor_value_info("img", TensorProto.UINT8, None)
    graph = helper.make_graph(nodes, "decoder", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
                              [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@pytest.mark.parametrize("tail", ["x255", "gather0", "slice0"])
def test_a_display_tail_is_read_back_to_the_models_own_output(tail: str) -> None:
    from gradhealth.analysis.importers.onnx_static import check_outputs

    chosen, note = check_outputs(onnx.load_from_string(_decoder(tail)).graph)
    assert chosen == ["p"]  # the Sigmoid's output: batch axis and activation kept
    assert note is not None and "the model's own output (its Sigmoid)" in note and "Mul by a constant" in note
    assert ("Gather of sample 0 along the batch axis" in note) == (tail == "gather0")
    assert ("Slice along the batch axis, Clip, Mul" in note) == (tail == "slice0")
    # the check then measures what it measures on the decoder whose output is the Sigmoid itself
    # (the sweep's file gave a false vanishing_gradient: BCE on 255 * p[0], a gradient of 3e21)
    doc = check_onnx(_decoder(tail), seeds=2, verify=False)
    plain = check_onnx(_decoder("plain"), seeds=2, verify=False)
    assert doc.status == plain.status == "healthy"
    assert doc.simulation is not None and plain.simulation is not None and doc.simulation.loss == "binary_cross_entropy (on probabilities)"
    got = {row.name: row.output_grad_norm for row in doc.layers}
    want = {row.name: row.output_grad_norm for row in plain.layers}
    assert got.keys() == want.keys() and all(v > 0 for v in want.values())
    assert all(abs(got[k] - want[k]) <= 1e-9 * want[k] for k in want)


def test_a_batch_pick_before_the_activation_is_refused_with_the_loss_at_hint() -> None:
    with pytest.raises(ModelError) as info:
        import_onnx(_decoder("gather_first"))
    said = str(info.value)
    assert "--loss-at" in said and "'l'" in said and "batch axis" in said
    # named so, the loss point before the pick is checked
    assert check_onnx(_decoder("gather_first"), output="l", seeds=1, verify=False).status == "healthy"


# --- 4. wording ---------------------------------------------------------------------------------


def test_a_summary_carries_one_note_group_in_one_casing() -> None:
    from gradhealth.analysis.check import with_note

    line = "healthy: no gradient problem found in 6 layers with weights (note: dead_units 70%, not judged dead (batch 1))"
    assert with_note(line, "loss cross_entropy, implied.") == line[:-1] + "; loss cross_entropy, implied)"
    assert with_note("healthy: no gradient problem found in 2 layers with weights", "x") == (
        "healthy: no gradient problem found in 2 layers with weights (note: x)")
    # the sweep's case: a healthy note (output_loss_mismatch) and the importer's note on the loss point
    summary = check_onnx(_decoder("x255"), seeds=1, verify=False).summary
    assert summary.count("(note: ") == 1 and "(Note" not in summary and "output_loss_mismatch; no graph output" in summary


def test_a_sigmoid_images_outputs_are_counted_per_sample() -> None:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["z", "w"], ["h"], transB=1),
             helper.make_node("Reshape", ["h", "shape"], ["hr"]), helper.make_node("Sigmoid", ["hr"], ["img"])]
    graph = helper.make_graph(nodes, "dec", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 1, 4, 5])],
                              [numpy_helper.from_array(rng.normal(0, 0.5, (20, 3)).astype(np.float32), "w"),
                               numpy_helper.from_array(np.array([-1, 1, 4, 5], np.int64), "shape")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    [note] = [f for f in check_onnx(data, seeds=1, verify=False).findings if f.code == "output_loss_mismatch"]
    assert "a sigmoid over 20 outputs per sample (each a 1x4x5 tensor)" in note.summary  # 1 * 4 * 5, not 5


# --- 3. scikit-learn's ai.onnx.ml estimators: refused saying why -------------------------------------


def _sklearn(op: str, **attrs: object) -> bytes:
    """Scaler -> ``op`` (ai.onnx.ml), as skl2onnx writes a pipeline: label and probabilities out."""
    nodes = [helper.make_node("Scaler", ["x"], ["xs"], domain="ai.onnx.ml", offset=[0.0, 0.0, 0.0], scale=[1.0, 1.0, 1.0]),
             helper.make_node(op, ["xs"], ["label", "prob"], domain="ai.onnx.ml", **attrs)]
    graph = helper.make_graph(nodes, "skl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                               helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)]).SerializeToString()


@pytest.mark.parametrize(("op", "attrs", "why"), [
    ("TreeEnsembleClassifier", {"classlabels_int64s": [0, 1], "nodes_treeids": [0], "nodes_nodeids": [0],
                                "nodes_featureids": [0], "nodes_values": [0.0], "nodes_modes": ["LEAF"],
                                "class_treeids": [0], "class_nodeids": [0], "class_ids": [1], "class_weights": [1.0]},
     "no gradient at all"),
    ("LinearClassifier", {"classlabels_ints": [0, 1], "coefficients": [0.1] * 6, "intercepts": [0.0, 0.0]},
     "its own solver"),
])
def test_a_scikit_learn_estimator_is_refused_saying_why_a_gradient_check_does_not_apply(op, attrs, why) -> None:
    from gradhealth.analysis.importers.onnx_static import read_header

    for load in (import_onnx, read_header):  # the worker's importer and the API's torch-free header alike
        with pytest.raises(ModelError) as info:
            load(_sklearn(op, **attrs))
        said = str(info.value)
        assert f"ai.onnx.ml::{op}" in said and "scikit-learn model" in said and why in said
        assert "a gradient check does not apply" in said and "MLPClassifier" in said
