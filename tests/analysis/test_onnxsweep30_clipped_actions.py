"""onnxsweep30 F5: a policy whose output is ``Concat(Clip(a0, -1, 1), Clip(a1, 0, 1), shoot_logit)``,
checked with no loss given. The logits' size was a warning ("the cross_entropy loss's softmax is
saturated from the first step") under a cross-entropy the check itself guessed, with no softmax in
the graph."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.module_check import check_onnx

# --- logits judged only under the softmax the check guessed: a note ----------------------------------


def _mlp(softmax: bool = False) -> tuple[bytes, list[np.ndarray]]:
    """x [N, 8] -> 32 -> 32 (ReLU) -> 3 raw outputs, the last layer's weights far too large (N(0, 64));
    ``softmax``: a Softmax over the 3 in the graph. The file and its weights."""
    rng = np.random.default_rng(5)
    ws = [(rng.standard_normal((8, 32))).astype(np.float32), (rng.standard_normal((32, 32)) * 0.5).astype(np.float32),
          (rng.standard_normal((32, 3)) * 8.0).astype(np.float32)]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["h2"]), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("MatMul", ["r2", "w3"], ["z" if softmax else "y"])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["y"], axis=-1))
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(w, f"w{k + 1}") for k, w in enumerate(ws)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(), ws


def _exploding(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code == "exploding_gradient"]


def test_logits_saturating_a_softmax_the_check_only_guessed_are_a_note() -> None:
    data, ws = _mlp()
    x = np.random.default_rng(1).standard_normal((100_000, 8))
    logits = np.maximum(np.maximum(x @ ws[0], 0) @ ws[1], 0) @ ws[2]
    assert float(np.std(logits)) > 100  # the set-up: over the logits' bar under a loss on logits
    [f] = _exploding(check_onnx(data, seeds=2, verify=False))
    ev = f.evidence.model_extra
    # no loss was given and no softmax in the graph reads the outputs: the cross-entropy, and the
    # softmax it would saturate, are the check's own guess, so at most a note (as its pairings are)
    assert f.severity == "info" and ev["note_reason"] == "loss_implied" and ev["loss_implied"] is True
    assert ev["logit_std"] > 100 and "own guess" in f.summary and "--loss" in f.summary
    # told the loss, the same logits are the model's: a warning, as before
    [told] = _exploding(check_onnx(data, seeds=2, loss="cross_entropy", verify=False))
    assert told.severity == "warning" and "own guess" not in told.summary
    # a Softmax in the graph says they are class scores: its own softmax saturates, a warning
    [own] = _exploding(check_onnx(_mlp(softmax=True)[0], seeds=2, verify=False))
    assert own.severity == "warning" and "own guess" not in own.summary


def _linear(scale: float, softmax: bool = False) -> bytes:
    """One weight layer, x [N, 8] @ w [8, 4] (a softmax regression), ending in a Softmax or not."""
    w = (np.random.default_rng(3).standard_normal((8, 4)) * scale).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y" if not softmax else "z"])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["y"], axis=-1))
    g = helper.make_graph(nodes, "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_single_layers_logits_are_a_note_only_where_the_softmax_is_the_checks_guess() -> None:
    # std of x @ w for x ~ N(0, I): the column norms of w, about sqrt(8) * 60 = 170
    w = np.random.default_rng(3).standard_normal((8, 4)) * 60.0
    col = float(np.sqrt((w ** 2).sum(0)).mean())
    assert col > 100
    guessed = [f for f in check_onnx(_linear(60.0), seeds=2, verify=False).findings
               if f.code == "exploding_gradient"]
    assert [f.severity for f in guessed] == ["info"] and "own guess" in guessed[0].summary
    # a Softmax in the graph says they are class scores: its own softmax saturates, a warning
    own = [f for f in check_onnx(_linear(60.0, softmax=True), seeds=2, verify=False).findings
           if f.code == "exploding_gradient"]
    assert [f.severity for f in own] == ["warning"] and "own guess" not in own[0].summary
