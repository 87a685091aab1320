"""onnxsweep27 fixes: a tree ensemble's refusal leads with why (titanic_tree); a ReLU stretch's chi1
is printed where its phase is named (snn_policy's ``chi1=- (chaotic)``); dead_units on a file that
fixes its batch at 1 is judged over enough samples (mouse_path_range)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import check_onnx


def _tree_pipeline() -> bytes:
    """skl2onnx's shape of a pipeline: a column picked (ArrayFeatureExtractor), one-hot encoded, then
    a TreeEnsembleRegressor; the feature encoding's ops come first in the graph."""
    nodes = [helper.make_node("ArrayFeatureExtractor", ["x", "col"], ["c"], domain="ai.onnx.ml"),
             helper.make_node("OneHotEncoder", ["c"], ["oh"], domain="ai.onnx.ml", cats_int64s=[0, 1]),
             helper.make_node("TreeEnsembleRegressor", ["oh"], ["y"], domain="ai.onnx.ml", n_targets=1,
                              nodes_treeids=[0], nodes_nodeids=[0], nodes_featureids=[0], nodes_values=[0.0],
                              nodes_modes=["LEAF"], target_treeids=[0], target_nodeids=[0], target_ids=[0],
                              target_weights=[1.0])]
    graph = helper.make_graph(nodes, "skl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
                              [numpy_helper.from_array(np.array([0], np.int64), "col")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)]).SerializeToString()


def test_a_tree_ensembles_refusal_says_it_has_no_gradient_before_listing_its_ops() -> None:
    from gradhealth.analysis.importers.onnx import import_onnx
    from gradhealth.analysis.importers.onnx_static import read_header

    for load in (import_onnx, read_header):
        with pytest.raises(ModelError) as info:
            load(_tree_pipeline())
        said = str(info.value)
        # the reason leads; the ops, the encoding's first, still all named after it
        assert said.index("tree ensemble") < said.index("ArrayFeatureExtractor")
        assert said.index("no gradient at all") < said.index("unsupported ONNX ops")
        for op in ("ArrayFeatureExtractor", "OneHotEncoder", "TreeEnsembleRegressor"):
            assert f"ai.onnx.ml::{op}" in said


def _relu_mlp(sigma_w2: float, widths: tuple[int, ...] = (64, 64, 64, 8), batch: int | str = "N",
              dead: int = 0) -> bytes:
    """A ReLU MLP of Gemm layers whose weights are N(0, sigma_w2 / fan_in), biases 0; the first
    ``dead`` units of its first layer get a bias of -1e3 (off for any input of unit scale)."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for k, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        w = rng.normal(0.0, np.sqrt(sigma_w2 / a), (a, b)).astype(np.float32)
        bias = np.zeros(b, np.float32)
        if k == 0:
            bias[:dead] = -1e3
        inits += [numpy_helper.from_array(w, f"w{k}"), numpy_helper.from_array(bias, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"h{k}"]))
        x = f"h{k}"
        if k < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{k}"]))
            x = f"r{k}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, widths[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, widths[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_a_relu_stretch_with_no_finite_fixed_point_prints_the_chi1_its_phase_is_named_by() -> None:
    doc = check_onnx(_relu_mlp(5.0), loss="mse", seeds=1, verify=False)
    (stretch,) = doc.theory.stretches
    assert stretch.q_star is None  # sigma_w^2 > 2: q grows without end
    # mean field: a ReLU layer's chi1 = sigma_w^2 / 2 at every q (Poole et al. 2016), so chaotic here
    assert stretch.chi1 == pytest.approx(stretch.sigma_w2 / 2, rel=1e-6)
    assert stretch.chi1 > 1 and stretch.phase == "chaotic"
