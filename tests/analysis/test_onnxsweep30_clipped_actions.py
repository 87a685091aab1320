"""onnxsweep30 F5: a policy whose output is ``Concat(Clip(a0, -1, 1), Clip(a1, 0, 1), shoot_logit)``,
checked with no loss given. The logits' size was a warning ("the cross_entropy loss's softmax is
saturated from the first step") under a cross-entropy the check itself guessed, with no softmax in
the graph, while the share of the clipped actions beyond their bounds, where they get no gradient
whatever the loss, went unsaid."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth.analysis.module_check import check_onnx


def _weights(scale1: float, scale_cont: float, scale_shoot: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"w1": (rng.standard_normal((8, 32)) * scale1).astype(np.float32),
            "b1": (rng.standard_normal(32) * 0.1).astype(np.float32),
            "wc": (rng.standard_normal((32, 2)) * scale_cont).astype(np.float32),
            "bc": np.array([0.2, -0.1], np.float32),
            "ws": (rng.standard_normal((32, 1)) * scale_shoot).astype(np.float32)}


def _policy(w: dict[str, np.ndarray], clip_hidden: bool = False) -> bytes:
    """obs [N, 8] -> MatMul+Add -> Relu -> cont [N, 2] and shoot [N, 1]; the action is
    Concat(Clip(cont[:, 0:1], -1, 1), Clip(cont[:, 1:2], 0, 1), shoot), as torch exports it (opset 17,
    bounds as Constant inputs). ``clip_hidden``: a Clip(-1, 1) on the hidden layer instead, no clip on
    the output path."""
    c = {"lo": -1.0, "hi": 1.0, "zero": 0.0}
    consts = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(np.array(v, np.float32)))
              for k, v in c.items()]
    ints = {"s0": [0], "e0": [1], "s1": [1], "e1": [2], "ax": [1]}
    consts += [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(np.array(v, np.int64)))
               for k, v in ints.items()]
    hidden = ([helper.make_node("Relu", ["h"], ["r0"]), helper.make_node("Clip", ["r0", "lo", "hi"], ["r"])]
              if clip_hidden else [helper.make_node("Relu", ["h"], ["r"])])
    nodes = [*consts, helper.make_node("MatMul", ["obs", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h"]),
             *hidden,
             helper.make_node("MatMul", ["r", "wc"], ["c0"]), helper.make_node("Add", ["c0", "bc"], ["cont"]),
             helper.make_node("MatMul", ["r", "ws"], ["shoot"])]
    if clip_hidden:
        nodes.append(helper.make_node("Concat", ["cont", "shoot"], ["action"], axis=1))
    else:
        nodes += [helper.make_node("Slice", ["cont", "s0", "e0", "ax"], ["a0"], name="/Slice"),
                  helper.make_node("Clip", ["a0", "lo", "hi"], ["a0c"], name="/Clip"),
                  helper.make_node("Slice", ["cont", "s1", "e1", "ax"], ["a1"], name="/Slice_1"),
                  helper.make_node("Clip", ["a1", "zero", "hi"], ["a1c"], name="/Clip_1"),
                  helper.make_node("Concat", ["a0c", "a1c", "shoot"], ["action"], axis=1)]
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    g = helper.make_graph(nodes, "policy", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _numpy_heads(w: dict[str, np.ndarray], n: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """The same graph in numpy on ``n`` standard-normal observations: (cont [n, 2] before the clips,
    shoot [n, 1])."""
    x = np.random.default_rng(1).standard_normal((n, 8))
    r = np.maximum(x @ w["w1"].astype(np.float64) + w["b1"], 0.0)
    return r @ w["wc"].astype(np.float64) + w["bc"], r @ w["ws"].astype(np.float64)


def _clipped(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code == "output_loss_mismatch"
            and f.evidence.metric == "clipped_output_fraction"]


# --- the share of each clipped head's values beyond its bounds ----------------------------------------


def test_each_output_clip_reports_its_share_beyond_the_bounds_as_numpy_computes_it() -> None:
    w = _weights(1 / 2, 1.5 / 32 ** 0.5, 1 / 32 ** 0.5)  # He-like trunk, heads of std about 1.5
    cont, _ = _numpy_heads(w)
    expected = [float(np.mean(np.abs(cont[:, 0]) > 1.0)),
                float(np.mean((cont[:, 1] < 0.0) | (cont[:, 1] > 1.0)))]
    assert 0.2 < expected[0] < 0.8 and expected[1] > 0.6  # the set-up: both heads partly clipped
    doc = check_onnx(_policy(w), seeds=3, batch_size=512, loss="mse", verify=False)
    [f] = _clipped(doc)
    ev = f.evidence.model_extra
    heads = {h["node"]: h for h in ev["clipped_heads"]}
    assert set(heads) == {"/Clip", "/Clip_1"}
    assert heads["/Clip"]["bounds"] == [-1.0, 1.0] and heads["/Clip_1"]["bounds"] == [0.0, 1.0]
    # 1536 draws a head: a share's sampling error is under 0.013
    assert abs(heads["/Clip"]["clipped_fraction"] - expected[0]) < 0.05
    assert abs(heads["/Clip_1"]["clipped_fraction"] - expected[1]) < 0.05
    assert abs(f.evidence.value - max(expected)) < 0.05
    assert ev["output_activation"] == "clip" and f.evidence.layers == ["/Clip", "/Clip_1"]
    # past a hardtanh's bar (52%): a warning, the document's status with it, and each head named
    assert f.severity == "warning" and doc.status == "warning"
    assert "/Clip_1 clips a1 to [0, 1]" in f.summary and "no gradient" in f.summary


def test_the_clip_is_reported_under_the_implied_loss_too_and_not_when_no_clip_reaches_the_output() -> None:
    w = _weights(1 / 2, 1.5 / 32 ** 0.5, 1 / 32 ** 0.5)
    # no --loss: the clip passes no gradient whatever the loss, so it is said all the same
    assert len(_clipped(check_onnx(_policy(w), seeds=2, verify=False))) == 1
    # a Clip on a hidden layer is no output's clip (a hidden hardtanh is judged as saturation)
    assert _clipped(check_onnx(_policy(w, clip_hidden=True), seeds=2, loss="mse", verify=False)) == []


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
