"""onnxsweep12: skl2onnx's elementwise preprocessors (``ai.onnx.ml`` Scaler, Normalizer, Imputer,
Binarizer) in front of an MLP, and a file that fixes its batch at 1 around a BatchNormalization. Every
graph is built here with ``onnx.helper``; the ops' values are checked against ONNX's own reference
evaluator (``onnx.reference``), an independent implementation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from gradhealth import check_onnx
from gradhealth.analysis.graph import make_inputs
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx

_RNG = np.random.default_rng(0)
#: a StandardScaler's fit on features far from 0 (onnxsweep12's heart data: cholesterol 248, scale 0.019)
_OFFSET = [54.8, 248.1, 0.7, 132.7]
_SCALE = [0.108, 0.0194, 2.19, 0.0529]


def _init(name: str, v: np.ndarray) -> Any:
    return numpy_helper.from_array(np.asarray(v, np.float32), name)


def _model(nodes: list[Any], inits: list[Any], shape: list[Any], out: str = "y", ml: bool = True,
           opset: int = 17) -> bytes:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", 1)] if ml else [])
    return bytes(helper.make_model(graph, opset_imports=opsets, producer_name="skl2onnx").SerializeToString())


def _pipeline(pre: Any, hidden_bias: float = 0.0) -> bytes:
    """``pre`` (an ai.onnx.ml node x -> z) -> MatMul 4x8 + bias -> Relu -> MatMul 8x1 -> Sigmoid."""
    inits = [_init("W1", _RNG.standard_normal((4, 8)) * 0.7), _init("b1", np.full(8, hidden_bias)),
             _init("W2", _RNG.standard_normal((8, 1)) * 0.5), _init("b2", np.zeros(1))]
    nodes = [pre, helper.make_node("Cast", ["z"], ["zc"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["zc", "W1"], ["m1"], name="MatMul"),
             helper.make_node("Add", ["m1", "b1"], ["a1"]), helper.make_node("Relu", ["a1"], ["h"]),
             helper.make_node("MatMul", ["h", "W2"], ["m2"], name="MatMul1"),
             helper.make_node("Add", ["m2", "b2"], ["a2"]), helper.make_node("Sigmoid", ["a2"], ["y"])]
    return _model(nodes, inits, ["N", 4])


def _scaler(offset: list[float] = _OFFSET, scale: list[float] = _SCALE) -> Any:
    return helper.make_node("Scaler", ["x"], ["z"], domain="ai.onnx.ml", name="Scaler", offset=offset, scale=scale)


def _run_node(node: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ours, ONNX's reference) for one ai.onnx.ml node reading x [N, 4] (through an Identity: a
    Scaler reading the graph input itself has its draw unscaled)."""
    node.input[0] = "xi"
    data = _model([helper.make_node("Identity", ["x"], ["xi"]), node], [], ["N", 4], out="z")
    ours = import_onnx(data).module(torch.from_numpy(x))
    want = ReferenceEvaluator(data).run(None, {"x": x})[0]
    return ours.detach().numpy(), want


# --- 1. the ai.onnx.ml preprocessors ------------------------------------------------------------

@pytest.mark.parametrize("node", [
    _scaler(),
    _scaler([3.0], [0.5]),  # one value broadcasts to every feature
    helper.make_node("Normalizer", ["x"], ["z"], domain="ai.onnx.ml", norm="L1"),
    helper.make_node("Normalizer", ["x"], ["z"], domain="ai.onnx.ml", norm="L2"),
    helper.make_node("Normalizer", ["x"], ["z"], domain="ai.onnx.ml", norm="MAX"),
    helper.make_node("Imputer", ["x"], ["z"], domain="ai.onnx.ml", imputed_value_floats=[1.0, 2.0, 3.0, 4.0],
                     replaced_value_float=float("nan")),
    helper.make_node("Imputer", ["x"], ["z"], domain="ai.onnx.ml", imputed_value_floats=[9.0],
                     replaced_value_float=0.0),
    helper.make_node("Binarizer", ["x"], ["z"], domain="ai.onnx.ml", threshold=0.25),
], ids=["scaler", "scaler_one_value", "l1", "l2", "max", "imputer_nan", "imputer_zero", "binarizer"])
def test_the_ml_preprocessors_compute_what_onnx_defines(node: Any) -> None:
    x = _RNG.standard_normal((5, 4)).astype(np.float32)
    x[1, 2], x[3, 0] = np.nan if node.op_type == "Imputer" else 0.0, 0.0
    ours, want = _run_node(node, x)
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


def test_a_standard_scaler_pipeline_is_checked_on_inputs_in_its_raw_feature_space() -> None:
    data = _pipeline(_scaler())
    imported = import_onnx(data)
    x = make_inputs(imported.inputs, 0)[0].float()
    raw = np.asarray(_OFFSET) + x.numpy() / np.asarray(_SCALE)  # what the draw stands for
    # the draw stands for raw features offset + z / scale: the file's output on those
    ref = ReferenceEvaluator(data).run(None, {"x": raw.astype(np.float32)})[0]
    np.testing.assert_allclose(imported.module(x).detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    doc = check_onnx(data, seeds=1, verify=False)
    assert doc.status == "healthy", [f.summary for f in doc.findings]
    assert "raw feature space its Scaler" in doc.summary


def test_a_dead_hidden_layer_behind_a_scaler_is_found() -> None:
    # onnxsweep12 m04: every hidden bias -20 against standardised inputs: all 8 ReLUs off
    doc = check_onnx(_pipeline(_scaler(), hidden_bias=-20.0), seeds=2, verify=False)
    assert "dead_units" in {f.code for f in doc.findings if f.severity in ("warning", "error")}


def test_an_unknown_ml_op_is_still_refused_by_name() -> None:
    node = helper.make_node("OneHotEncoder", ["x"], ["z"], domain="ai.onnx.ml", cats_int64s=[0, 1])
    with pytest.raises(ModelError, match=r"ai\.onnx\.ml::OneHotEncoder \(node"):
        import_onnx(_model([node], [], ["N", 4], out="z"))


# --- 2. a fixed batch of 1 around a BatchNormalization -----------------------------------------

def _bn_mlp_batch_one() -> bytes:
    """x [1, 16] -> MatMul 16x8 -> BatchNormalization (stored statistics) -> Relu -> MatMul 8x3."""
    inits = [_init("W1", _RNG.standard_normal((16, 8)) * 0.35), _init("g", np.ones(8)), _init("b", np.zeros(8)),
             _init("rm", np.zeros(8)), _init("rv", np.ones(8)), _init("W2", _RNG.standard_normal((8, 3)) * 0.5)]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m"]),
             helper.make_node("BatchNormalization", ["m", "g", "b", "rm", "rv"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["h"]), helper.make_node("MatMul", ["h", "W2"], ["y"])]
    return _model(nodes, inits, [1, 16], ml=False, opset=9)


def test_a_batch_of_one_fixed_by_the_file_is_simulated_at_the_default_batch_for_its_norms() -> None:
    doc = check_onnx(_bn_mlp_batch_one(), seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.batch_size == 16
    assert "fixes its batch at 1; simulated at 16" in doc.summary


def test_the_batch_norm_hint_names_the_cli_flag() -> None:
    with pytest.raises(ModelError, match=r"--batch-size.*batch_size over HTTP"):
        check_onnx(_bn_mlp_batch_one(), seeds=1, verify=False, batch_size=1)

