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
