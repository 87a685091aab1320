"""onnxsweep17: a graph that runs at batch 1 only, dead units in a batch-1 file, and the forward
and backward signal collapsing together (weights uniformly too small)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.module_check import check_onnx


def _model(nodes, inputs, outputs, inits) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _mlp(scales: list[float], width: int = 64, batch: str | int = "batch", seed: int = 0) -> bytes:
    """Gemm+ReLU layers at He scale times ``scales[i]``, then a linear readout of 1 unit."""
    rng = np.random.default_rng(seed)
    nodes, inits, x, fan = [], {}, "x", width
    for i, s in enumerate(scales):
        last = i == len(scales) - 1
        out = 1 if last else width
        inits[f"w{i}"] = (rng.standard_normal((out, fan)) * s * np.sqrt(2 / fan)).astype(np.float32)
        inits[f"b{i}"] = np.zeros(out, np.float32)
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"z{i}"], transB=1))
        x = f"z{i}"
        if not last:
            nodes.append(helper.make_node("Relu", [x], [f"h{i}"]))
            x = f"h{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1])], inits)


def test_uniformly_small_weights_are_a_collapse_both_ways() -> None:
    # 4 layers at 0.05x He: each multiplies both signals by about 0.05 (mean field: sqrt(sigma_w^2/2)),
    # ~1.25e-4 backwards over 3 gains; the trunk's first/last ratio alone (2 gains, 2.5e-3) is an error
    # at 1e-4 only beyond; with 3 layers it is ~0.05^1 = 0.05 over the trunk, under no bar
    doc = check_onnx(_mlp([0.05, 0.05, 0.05]), loss="mse")
    found = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert found and found[0].severity == "warning"
    ev = found[0].evidence.model_dump()
    assert ev["signal_collapse"] is True
    assert 0.02 < ev["per_layer_factor"] < 0.12  # ~0.05 backwards
    assert 0.02 < ev["forward_per_layer_factor"] < 0.12  # ~0.05 forwards (N(0, 1) inputs)


def test_he_and_torch_default_scales_are_not_a_collapse() -> None:
    # torch's default U(+-1/sqrt(fan_in)) is 1/sqrt(6) of He's std: 0.41 per layer, over the 0.354 bar
    for scales in ([1.0] * 4, [6 ** -0.5] * 4):
        doc = check_onnx(_mlp(scales), loss="mse")
        assert not [f for f in doc.findings if f.code == "vanishing_gradient"], scales


def test_a_small_head_on_a_healthy_trunk_is_not_a_collapse() -> None:
    # PPO's actor: hidden layers at gain sqrt(2), the head at 0.01 (CleanRL's layer_init(std=0.01)):
    # both totals fall about 100x through the head alone, over a trunk whose gains are 1
    for scales in ([1.0, 1.0, 0.007], [1.0, 1.0, 1.0, 0.005]):
        doc = check_onnx(_mlp(scales), loss="mse")
        assert not [f for f in doc.findings if f.code == "vanishing_gradient" and f.severity != "info"], scales


def test_dead_layer_in_a_batch_one_file_is_judged_over_the_seeds_samples() -> None:
    # batch fixed at 1 by the file; inputs in [0, 1] and every weight of the first layer negative,
    # no bias: every unit is 0 for every sample of every seed (48 samples), so the layer is dead
    rng = np.random.default_rng(1)
    w0 = -np.abs(rng.standard_normal((32, 16))).astype(np.float32) * 0.3
    w1 = rng.standard_normal((10, 32)).astype(np.float32) * 0.2
    nodes = [helper.make_node("Gemm", ["x", "w0"], ["z0"], transB=1), helper.make_node("Relu", ["z0"], ["h0"]),
             helper.make_node("Gemm", ["h0", "w1"], ["y"], transB=1)]
    data = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], {"w0": w0, "w1": w1})
    doc = check_onnx(data, input_range=(0.0, 1.0))
    dead = [f for f in doc.findings if f.code == "dead_units"]
    assert dead and dead[0].severity == "error", [(f.code, f.severity, f.summary) for f in doc.findings]
    # 3 seeds' batches of 1, each run on further draws to 16 samples a seed (onnxsweep27)
    assert dead[0].evidence.model_dump()["pooled_samples"] == 48


def test_graph_that_runs_at_batch_one_only_falls_back_to_it() -> None:
    # ML-Agents' memory LSTM: memories [batch, 1, 2H] sliced and passed as initial_h / initial_c,
    # whose layout is [directions, batch, H]: only batch 1 runs
    rng = np.random.default_rng(2)
    hidden, feat = 4, 3
    inits = {"W": (rng.standard_normal((1, 4 * hidden, feat)) * 0.3).astype(np.float32),
             "R": (rng.standard_normal((1, 4 * hidden, hidden)) * 0.3).astype(np.float32),
             "starts_h": np.array([0], np.int64), "ends_h": np.array([hidden], np.int64),
             "starts_c": np.array([hidden], np.int64), "ends_c": np.array([2 * hidden], np.int64),
             "axes": np.array([2], np.int64), "wo": (rng.standard_normal((2, hidden)) * 0.5).astype(np.float32)}
    nodes = [helper.make_node("Unsqueeze", ["x", "axes0"], ["seq"]),
             helper.make_node("Slice", ["memories", "starts_h", "ends_h", "axes"], ["h0"]),
             helper.make_node("Slice", ["memories", "starts_c", "ends_c", "axes"], ["c0"]),
             helper.make_node("LSTM", ["seq", "W", "R", "", "", "h0", "c0"], ["Y", "Yh", "Yc"], hidden_size=hidden),
             helper.make_node("Squeeze", ["Yh", "axes0"], ["hs"]),
             helper.make_node("Gemm", ["hs", "wo"], ["y"], transB=1)]
    inits["axes0"] = np.array([0], np.int64)
    data = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", feat]),
                          helper.make_tensor_value_info("memories", TensorProto.FLOAT, ["batch", 1, 2 * hidden])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], inits)
    doc = check_onnx(data, loss="mse")
    assert "simulated at batch 1" in doc.summary
    assert "batch 1" in str(doc.model_dump())
