"""onnxsweep29 #1 (cloud_unet): a 537k-parameter U-Net at 4x224x224 ran ~25 min at the defaults (batch 16,
3 seeds, float64, CPU), silent on a stderr that was no terminal, and was killed in CI as a hang. The
check now estimates the simulation's time from the model's multiply-adds before it starts, lowers the
batch and seeds the user did not set where the defaults would pass the time budget, says so in the
report, and says the estimate on stderr."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.importers.onnx_static import multiply_adds, parse
from gradhealth.analysis.limits import Limits
from gradhealth.analysis.module_check import (
    TIME_FLOOR_BATCH,
    TIME_FLOOR_SEEDS,
    check_onnx,
    fit_time,
)


def _w(rng: np.random.Generator, name: str, *dims: int) -> TensorProto:
    fan_in = int(np.prod(dims[1:])) or dims[0]
    return numpy_helper.from_array((rng.standard_normal(dims) * np.sqrt(2 / fan_in)).astype(np.float32), name)


def _conv_net(side: int, channels: int = 8) -> bytes:
    """x [N, 3, side, side] -> Conv 3->C k3 pad1 -> Relu -> Conv C->C k3 stride 2 pad1 -> Relu
    -> ConvTranspose C->4 k2 stride 2 -> Relu -> Flatten -> Gemm (4*side*side -> 5): a known net whose
    multiply-adds the test counts by hand."""
    rng = np.random.default_rng(0)
    c = channels
    inits = [_w(rng, "w1", c, 3, 3, 3), _w(rng, "w2", c, c, 3, 3), _w(rng, "wt", c, 4, 2, 2),
             _w(rng, "wg", 5, 4 * side * side)]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("ConvTranspose", ["r2", "wt"], ["t"], strides=[2, 2], kernel_shape=[2, 2]),
             helper.make_node("Relu", ["t"], ["r3"]),
             helper.make_node("Flatten", ["r3"], ["f"]),
             helper.make_node("Gemm", ["f", "wg"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, side, side])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _mlp() -> bytes:
    rng = np.random.default_rng(1)
    inits = [_w(rng, "w1", 10, 32), _w(rng, "w2", 32, 2)]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "w2"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _by_hand(side: int, c: int = 8) -> int:
    """Multiply-adds of :func:`_conv_net` for one sample, from the layers' definitions: each output
    value of a convolution is in_channels x kernel products; each input value of the transposed
    convolution scatters out_channels x kernel products; the Gemm's each output is its in_features."""
    conv1 = (c * side * side) * (3 * 3 * 3)
    half = side // 2
    conv2 = (c * half * half) * (c * 3 * 3)
    deconv = (c * half * half) * (4 * 2 * 2)
    gemm = 5 * (4 * side * side)
    return conv1 + conv2 + deconv + gemm


@pytest.mark.parametrize("side", [16, 32])
def test_multiply_adds_of_a_known_conv_net_onnxsweep29(side: int) -> None:
    model = parse(_conv_net(side))
    assert multiply_adds(model, {"x": [1, 3, side, side]}) == _by_hand(side)
    # linear in the batch
    assert multiply_adds(model, {"x": [6, 3, side, side]}) == 6 * _by_hand(side)


def test_mlp_multiply_adds_onnxsweep29() -> None:
    assert multiply_adds(parse(_mlp()), {"x": [16, 10]}) == 16 * (10 * 32 + 32 * 2)


def test_big_input_is_cut_small_mlp_is_not_onnxsweep29() -> None:
    budget = Limits().simulation_seconds
    # a convolution stack at 224x224 with 256 channels: ~7.5e9 multiply-adds a sample, past the budget
    # at the defaults by a margin no plausible CPU rate closes (16 x 10 passes: over 1e12)
    big = multiply_adds(parse(_conv_net(224, channels=256)), {"x": [16, 3, 224, 224]})
    timing = fit_time(big, 16, 3, batch_free=True, seeds_free=True, device=None, budget=budget)
    assert timing.lowered and timing.batch < 16 and timing.batch >= TIME_FLOOR_BATCH
    assert timing.seeds >= TIME_FLOOR_SEEDS
    assert timing.note is not None and "GRADHEALTH_LIMITS__SIMULATION_SECONDS" in timing.note
    small = multiply_adds(parse(_mlp()), {"x": [16, 10]})
    kept = fit_time(small, 16, 3, batch_free=True, seeds_free=True, device=None, budget=budget)
    assert (kept.batch, kept.seeds, kept.lowered, kept.note) == (16, 3, False, None)
    # what the user gave is kept, with the way to shorten it in the start line
    given = fit_time(big, 16, 3, batch_free=False, seeds_free=False, device=None, budget=budget)
    assert (given.batch, given.seeds, given.lowered) == (16, 3, False)
    assert "--batch-size and --seeds shorten it" in given.start_line("m.onnx")


def test_check_lowers_only_what_was_not_given_onnxsweep29() -> None:
    # a budget no simulation meets: the default batch and seeds drop to their floors, said in the report
    tight = Limits(simulation_seconds=1e-9)
    doc = check_onnx(_conv_net(16), loss="mse", limits=tight, verify=False)
    assert (doc.simulation.batch_size, doc.simulation.seeds) == (TIME_FLOOR_BATCH, TIME_FLOOR_SEEDS)
    assert "not the default batch 16 and 3 seeds" in doc.summary
    given = check_onnx(_conv_net(16), loss="mse", limits=tight, verify=False, seeds=3, batch_size=8)
    assert (given.simulation.batch_size, given.simulation.seeds) == (8, 3)
    assert "not the default" not in given.summary
    # and at the default budget a small net keeps the defaults
    doc = check_onnx(_mlp(), loss="mse", verify=False)
    assert (doc.simulation.batch_size, doc.simulation.seeds) == (16, 3)


def test_start_line_on_stderr_without_a_terminal_onnxsweep29(tmp_path, capsys) -> None:  # noqa: ANN001
    from gradhealth.cli import main

    path = tmp_path / "mlp.onnx"
    path.write_bytes(_mlp())
    main(["check", str(path), "--loss", "mse", "--no-verify"])
    err = capsys.readouterr().err
    assert "checking mlp.onnx: ~" in err and "s estimated (batch 16, 3 seeds)" in err
