"""filesweep1 h07: a declared output size that follows a dynamic input size the check filled.

Unity ML-Agents exports a recurrent brain (Hallway.onnx) with every input's batch dynamic
(``recurrent_in`` of ['batch', 1, 128]) but ``recurrent_out`` declared [1, 1, 128]: the batch of 1 it
was traced with. The check fills the dynamic batch with 16, so the graph computes [16, 1, 128]; that
is the exporter's trace, not the file contradicting itself, and the file was refused (exit 2) "fix
the declared output shape". A fixed size that does not follow the filled batch (a width of 5
declared, 4 computed) is still refused, as is another rank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.importers import ModelError
from gradhealth.cli import main


def _matmul(out_shape: list[int | str]) -> bytes:
    """x ['N', 8] (a dynamic batch) -> MatMul fc (W [8, 4]) -> y, declared ``out_shape``."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32) * 0.3, "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], [w])
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def _lstm(hidden: int = 6) -> bytes:
    """ML-Agents' shape of a memory: x ['batch', 5, 3] (batch-first) and a state h0 ['batch', 1, H]
    in; an LSTM over the sequence; its last state out, transposed back to batch-first and declared
    [1, 1, H] (the batch of 1 it was traced with)."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array((rng.standard_normal((1, 4 * hidden, 3)) * 0.4).astype(np.float32), "W")
    r = numpy_helper.from_array((rng.standard_normal((1, 4 * hidden, hidden)) * 0.4).astype(np.float32), "R")
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], name="to_seq", perm=[1, 0, 2]),
        helper.make_node("Transpose", ["h0"], ["h0t"], name="state_to_seq", perm=[1, 0, 2]),
        helper.make_node("LSTM", ["xt", "W", "R", "", "", "h0t"], ["", "yh"], name="lstm", hidden_size=hidden),
        helper.make_node("Transpose", ["yh"], ["recurrent_out"], name="to_batch", perm=[1, 0, 2]),
    ]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, 3]),
                               helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["batch", 1, hidden])],
                              [helper.make_tensor_value_info("recurrent_out", TensorProto.FLOAT, [1, 1, hidden])],
                              [w, r])
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def test_an_output_declared_with_the_traced_batch_is_checked() -> None:
    result = check_onnx(_matmul([1, 4]), loss="mse", seeds=1, verify=False)
    assert result.simulation is not None and result.simulation.batch_size == 16  # the dynamic batch is not narrowed to the declared 1


def test_a_recurrent_state_declared_with_the_traced_batch_is_checked(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "memory.onnx"
    path.write_bytes(_lstm())
    assert main(["check", str(path), "--seeds", "1", "--no-verify", "--no-progress", "--loss", "mse"]) in (0, 1)
    out = capsys.readouterr()
    assert "is declared of shape" not in out.out + out.err


def test_a_size_that_does_not_follow_the_batch_is_still_refused() -> None:
    # the width is 4 whatever the batch: a fixed 5 contradicts the file, the traced batch of 1 does not
    with pytest.raises(ModelError) as caught:
        check_onnx(_matmul([1, 5]), loss="mse", seeds=1, verify=False)
    assert ("graph output 'y' is declared of shape [1, 5], but its graph computes shape [16, 4] "
            "(dimension 1: 5 declared, 4 computed)") in caught.value.detail
    with pytest.raises(ModelError) as caught:
        check_onnx(_matmul(["N", 5]), loss="mse", seeds=1, verify=False)
    assert "(dimension 1: 5 declared, 4 computed)" in caught.value.detail


def test_another_rank_is_still_refused_after_a_fill() -> None:
    with pytest.raises(ModelError) as caught:
        check_onnx(_matmul([1, 4, 1]), loss="mse", seeds=1, verify=False)
    assert "is declared of shape [1, 4, 1] (rank 3), but its graph computes shape [16, 4] (rank 2)" in caught.value.detail
