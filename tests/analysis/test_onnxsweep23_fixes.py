"""onnxsweep23's ONNX defects: a graph with no batch axis (an input [164] read whole by its first
MatMul) had its features read as the batch (problem 1); the memory refusal suggested a length the
graph's stored positional table cannot take, and following it gave torch's raw shape error; a VAE's
decoder after its in-graph draw was never said to be unreachable (problem 2); wording: a quantised
graph's every node on one line, an implied cross-entropy on raw scores unsaid, a float metric called
"sampled or indexed", a chrono snippet in the wrong LSTM layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import check_module, check_onnx
from gradhealth.analysis.plan import Limits
from gradhealth.core import remedies as R
from gradhealth.errors import LimitExceeded


def _mlp_graph(batched: bool, bias: float = 0.0) -> bytes:
    """obs -> MatMul 12x32 -> Relu -> MatMul 32x32 (+ bias) -> Relu -> MatMul 32x5, with or without
    a batch axis in front of obs (the same weights)."""
    rng = np.random.default_rng(0)

    def w(name: str, i: int, o: int) -> TensorProto:
        return numpy_helper.from_array((rng.standard_normal((i, o)) * np.sqrt(2 / i)).astype(np.float32), name)

    inits = [w("w1", 12, 32), w("w2", 32, 32), w("w3", 32, 5),
             numpy_helper.from_array(np.full(32, bias, np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["obs", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["a1"]),
             helper.make_node("MatMul", ["a1", "w2"], ["h2p"]), helper.make_node("Add", ["h2p", "b2"], ["h2"]),
             helper.make_node("Relu", ["h2"], ["a2"]), helper.make_node("MatMul", ["a2", "w3"], ["act"])]
    lead: list[int | str] = ["N"] if batched else []
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [*lead, 12])],
                          [helper.make_tensor_value_info("act", TensorProto.FLOAT, [*lead, 5])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_unbatched_input_is_simulated_over_a_batch_added_in_front_onnxsweep23() -> None:
    # obs [12] is one sample (w1 [12, 32] reads its only axis): before, "batch 12"; now the batch axis
    # is added and the graph measures exactly what its batched twin measures at batch 16
    one = check_onnx(_mlp_graph(False), seeds=2, loss="mse")
    twin = check_onnx(_mlp_graph(True), seeds=2, loss="mse")
    assert one.simulation.batch_size == 16 == twin.simulation.batch_size
    assert "no batch axis" in one.summary and "input obs [12] is one sample" in one.summary
    for a, b in zip(one.layers, twin.layers, strict=True):
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-9)
        assert a.dead_fraction == b.dead_fraction


def test_unbatched_input_gets_its_batch_size_onnxsweep23() -> None:
    # --batch-size fills the added axis; it no longer overwrites the feature size 12
    doc = check_onnx(_mlp_graph(False), seeds=1, loss="mse", batch_size=4)
    assert doc.simulation.batch_size == 4


def _two_input_policy() -> bytes:
    """dice_policy's shape: obs [12] -> MatMul 12x8 -> Relu (one sample), moves [n_moves, 3] -> MatMul
    3x8; scores = moves_emb @ obs_emb, [n_moves]: a MatMul of two computed tensors, which a batch axis
    added in front of obs would not keep per sample."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((12, 8)).astype(np.float32), "wo"),
             numpy_helper.from_array(rng.standard_normal((3, 8)).astype(np.float32), "wm")]
    nodes = [helper.make_node("MatMul", ["obs", "wo"], ["o1"]), helper.make_node("Relu", ["o1"], ["o"]),
             helper.make_node("MatMul", ["moves", "wm"], ["m1"]), helper.make_node("Relu", ["m1"], ["m"]),
             helper.make_node("MatMul", ["m", "o"], ["scores"], name="score")]
    g = helper.make_graph(nodes, "p", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [12]),
                                       helper.make_tensor_value_info("moves", TensorProto.FLOAT, ["n_moves", 3])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n_moves"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_graph_with_no_batch_axis_asks_for_its_symbolic_size_onnxsweep23() -> None:
    # n_moves is no batch (the graph has none): asked for by name, not filled with 16 unsaid
    with pytest.raises(ModelError) as err:
        check_onnx(_two_input_policy(), seeds=1)
    text = str(err.value)
    assert "moves[0] (n_moves)" in text and "no batch axis" in text and "--input-shape moves=" in text
    # and --batch-size does not overwrite the fixed 12; its refusal gives advice for this graph
    with pytest.raises(ModelError) as err:
        check_onnx(_two_input_policy(), seeds=1, batch_size=4, input_shapes={"moves": [5, 3]})
    assert "export the model with a batch axis" in str(err.value) and "dynamic batch axis" not in str(err.value)


def test_graph_with_no_batch_axis_runs_one_sample_per_seed_onnxsweep23() -> None:
    doc = check_onnx(_two_input_policy(), seeds=3, input_shapes={"moves": [5, 3]})
    assert doc.simulation.batch_size == 1
    assert "one sample per seed" in doc.summary
    # one sample cannot show a unit dead: never more than a note
    assert not [f for f in doc.findings if f.code == "dead_units" and f.severity != "info"]


def _positional_transformer(length: int, d: int = 8) -> bytes:
    """ids [1, L] -> embedding -> + a stored positional table [1, L, d] -> scores x x^T [1, L, L]
    -> Softmax -> @ x -> MatMul d x 4: the length is fixed by the table."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal((50, d)).astype(np.float32), "emb"),
             numpy_helper.from_array(rng.standard_normal((1, length, d)).astype(np.float32), "pos"),
             numpy_helper.from_array(rng.standard_normal((d, 4)).astype(np.float32), "head"),
             numpy_helper.from_array(np.array([0, 2, 1], np.int64), "perm_unused")]
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("Add", ["e", "pos"], ["x"], name="/Add"),
             helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "xt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"]), helper.make_node("MatMul", ["y", "head"], ["out"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, length])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, length, 4])], inits[:3])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_memory_refusal_respects_a_length_the_graph_fixes_onnxsweep23() -> None:
    # 400 tokens: three [1, 400, 400] maps (scores, softmax, product's input) dominate; a limit of
    # 4 MB would fit about half the length, which the stored [1, 400, 8] table cannot take
    limits = Limits(max_activation_bytes=4_000_000)
    with pytest.raises(LimitExceeded) as err:
        check_onnx(_positional_transformer(400), seeds=1, limits=limits)
    text = str(err.value)
    assert "--input-shape" not in text and "fixes ids[1] at 400" in text and "node /Add (Add)" in text
    assert "GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES=" in text
    raised = int(text.split("GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES=")[1].split()[0])
    # the raised limit it names lets the same file through
    assert raised >= 4_000_000 and check_onnx(_positional_transformer(400), seeds=1,
                                              limits=Limits(max_activation_bytes=raised)).status


def test_a_shorter_length_the_graph_fixes_is_a_clear_refusal_onnxsweep23() -> None:
    with pytest.raises(ModelError) as err:
        check_onnx(_positional_transformer(40), seeds=1, input_shapes={"ids": [1, 20]})
    assert "replaced size(s) the file fixes (ids[1] 40 -> 20)" in str(err.value)


def test_vae_refusal_says_the_decoder_cannot_be_checked_through_the_draw_onnxsweep23() -> None:
    rng = np.random.default_rng(3)

    def w(name: str, i: int, o: int) -> TensorProto:
        return numpy_helper.from_array(rng.standard_normal((i, o)).astype(np.float32) * 0.3, name)

    nodes = [helper.make_node("MatMul", ["x", "we"], ["h"]), helper.make_node("MatMul", ["h", "wm"], ["mu"]),
             helper.make_node("MatMul", ["h", "ws"], ["ls"]), helper.make_node("Exp", ["ls"], ["sig"]),
             helper.make_node("RandomNormalLike", ["mu"], ["eps"]), helper.make_node("Mul", ["sig", "eps"], ["n"]),
             helper.make_node("Add", ["mu", "n"], ["z"]), helper.make_node("MatMul", ["z", "wd"], ["d1"], name="dec1"),
             helper.make_node("Relu", ["d1"], ["d"]), helper.make_node("MatMul", ["d", "wo"], ["rec"], name="dec2")]
    g = helper.make_graph(nodes, "vae", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                          [helper.make_tensor_value_info("rec", TensorProto.FLOAT, ["N", 10])],
                          [w("we", 10, 8), w("wm", 8, 2), w("ws", 8, 2), w("wd", 2, 8), w("wo", 8, 10)])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ModelError) as err:
        check_onnx(data, seeds=1)
    text = str(err.value)
    assert "the 2 layer(s) after the draw (dec1, dec2" in text and "export them as a model of their own" in text
    # following its advice at the latent mean: the implied cross-entropy there is said, not silent
    doc = check_onnx(data, seeds=1, output="mu")
    assert any("loss cross_entropy, implied" in n and "--loss mse" in n for n in doc.simulation.notes)


def test_implied_cross_entropy_is_said_only_without_a_softmax_onnxsweep23() -> None:
    raw = check_onnx(_mlp_graph(True), seeds=1)
    assert any("loss cross_entropy, implied" in n for n in raw.simulation.notes)
    told = check_onnx(_mlp_graph(True), seeds=1, loss="cross_entropy")
    assert not any("implied" in n for n in told.simulation.notes)
    from tests.analysis.onnx_models import export
    torch.manual_seed(0)
    soft = export(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=-1)), torch.randn(4, 6))
    assert not any("loss cross_entropy, implied" in n for n in check_onnx(soft, seeds=1).simulation.notes)


def test_many_unsupported_nodes_are_counted_not_listed_onnxsweep23() -> None:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h0"])]
    nodes += [helper.make_node("Det", [f"h{k}"], [f"h{k + 1}"], name=f"det{k}") for k in range(7)]
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("h7", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.ones((4, 4), np.float32), "w")])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ModelError) as err:
        check_onnx(data, seeds=1)
    text = str(err.value)
    assert "Det (7 nodes: det0, det1, det2 and 4 more)" in text and "det6" not in text


def test_float_metric_output_is_worded_for_what_it_is_onnxsweep23() -> None:
    # accuracy = ReduceMean(Cast(Equal(ArgMax(z), ArgMax(t)))): a float tensor, neither sampled nor indexed
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("ArgMax", ["z"], ["p"], axis=1),
             helper.make_node("ArgMax", ["t"], ["q"], axis=1), helper.make_node("Equal", ["p", "q"], ["e"]),
             helper.make_node("Cast", ["e"], ["ef"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["ef"], ["accuracy"], keepdims=0)]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                                       helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("accuracy", TensorProto.FLOAT, [])],
                          [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    doc = check_onnx(data, seeds=1)
    note = doc.summary
    assert "sampled or indexed" not in note and "a sample, an index or a truth value" not in note
    assert "Cast, Equal and ArgMax, which pass no gradient" in note


def test_chrono_snippet_keeps_the_models_layout_onnxsweep23() -> None:
    assert "batch_first=True)" in R.gated_recurrent_cell("rnn", "chrono", 100).snippet
    seq_first = R.gated_recurrent_cell("rnn", "chrono", 100, batch_first=False).snippet
    assert "batch_first=False)" in seq_first and "batch_first=True" not in seq_first

    class Net(nn.Module):  # sequence-first, as nn.RNN's default and an ONNX LSTM of layout 0
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.out = nn.RNN(4, 16), nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.rnn(x)[0][-1])

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.rnn.weight_hh_l0.mul_(0.2)  # contracting: dL/dh_t vanishes over 80 steps
    doc = check_module(net, torch.randn(80, 8, 4), seeds=1)
    gated = [r for f in doc.findings for r in f.remedies if r.id == "gated_recurrent_cell"]
    assert gated and all("batch_first=True" not in r.snippet for r in gated)
    assert any("batch_first=False)" in r.snippet for r in gated)


def test_a_vector_shared_across_another_inputs_batch_keeps_that_batch_onnxsweep23() -> None:
    # c [8] @ Wc [8, 4] is added to x [N, 4]'s features: c is one vector for the whole batch of x,
    # and the graph's batch is x's (filled with 16 as before), not refused for a missing N
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("MatMul", ["c", "wc"], ["cc"]), helper.make_node("MatMul", ["x", "wx"], ["xx"]),
             helper.make_node("Add", ["xx", "cc"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "wo"], ["y"])]
    g = helper.make_graph(nodes, "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6]),
                                       helper.make_tensor_value_info("c", TensorProto.FLOAT, [8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "wc"),
                           numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "wx"),
                           numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "wo")])
    doc = check_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(), seeds=1)
    assert doc.simulation.batch_size == 16 and "no batch axis" not in doc.summary
