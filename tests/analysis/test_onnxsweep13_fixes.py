"""onnxsweep13: a file ending in a Softmax node whose logits are huge (every weight x8), and the
exploding_gradient evidence's span when no gradient reaches any layer. Graphs are built here with
``onnx.helper``; the expected figures come from the theory, not from the tool's output."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.rules import detect
from gradhealth.analysis.simulate import SimulationResult, UnitStats
from gradhealth.analysis.thresholds import Thresholds


def _init(name: str, v: np.ndarray) -> Any:
    return numpy_helper.from_array(np.asarray(v, np.float32), name)


def _softmax_mlp(scale: float, opset: int = 9) -> bytes:
    """x [16, 32] -> 5 x (Gemm 64, Relu) -> Gemm 10 -> Softmax(axis=1), torch's default init times ``scale``."""
    rng = np.random.default_rng(0)
    nodes, inits, prev, fan_in = [], [], "x", 32
    for k in range(6):
        out = 10 if k == 5 else 64
        bound = 1 / np.sqrt(fan_in)
        inits += [_init(f"W{k}", rng.uniform(-bound, bound, (out, fan_in)) * scale),
                  _init(f"b{k}", rng.uniform(-bound, bound, out) * scale)]
        nodes.append(helper.make_node("Gemm", [prev, f"W{k}", f"b{k}"], [f"z{k}"], name=f"FC{k + 1}", transB=1))
        prev = f"z{k}"
        if k < 5:
            nodes.append(helper.make_node("Relu", [prev], [f"h{k}"]))
            prev = f"h{k}"
        fan_in = out
    nodes.append(helper.make_node("Softmax", [prev], ["y"], axis=1))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 10])], inits)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString())


def test_a_final_softmax_on_huge_logits_still_gives_the_cross_entropy_on_the_logits() -> None:
    # x8 per layer (ReLU halves the variance: about 8 / sqrt(6) = 3.3x per layer at torch's default,
    # x8 -> 26x): logits of order 1e7. On the probabilities the winner rounds to exactly 1 and the
    # others under float64's smallest number: no sample got a gradient, an output_loss_mismatch
    # error "exactly none" beside the note that the loss is on the logits. On the logits, a sample
    # whose class is not the argmax has dL/dz = softmax - onehot, of norm >= 1/sqrt 2 (theory): about
    # 9 of 10 samples at random labels
    doc = check_onnx(_softmax_mlp(8.0), verify=False)
    codes = {(f.code, f.severity) for f in doc.findings}
    assert ("output_loss_mismatch", "error") not in codes
    assert ("output_loss_mismatch", "info") in codes  # the note on the inference softmax
    last = doc.layers[-1]
    assert last.output_grad_norm is not None and last.output_grad_norm > 0.1
    assert all(layer.grad_norm and layer.grad_norm > 0 for layer in doc.layers)
    [exploding] = [f for f in doc.findings if f.code == "exploding_gradient"]
    assert exploding.severity in ("warning", "error")


def _result(grad: float) -> SimulationResult:
    """Six fully-connected layers whose activation std grows 10x per layer; output gradients ``grad``."""
    units = []
    for i in range(6):
        u = UnitStats(f"fc{i + 1}", f"node:fc{i + 1}", "linear", "relu" if i < 5 else None, 0, True,
                      64, 64 if i < 5 else 10)
        u.values = {"grad_norm": np.full(3, grad), "output_grad_norm": np.full(3, grad),
                    "activation_std": np.full(3, 10.0 ** i), "activation_mean": np.zeros(3),
                    "weight_std": np.ones(3)}
        units.append(u)
    return SimulationResult(None, "cpu", "float64", 3, units, [], [1.0] * 3, 0.0,  # type: ignore[arg-type]
                            batch_size=16)


def test_exploding_activation_evidence_spans_the_layers_it_grew_over_when_no_gradient_flows() -> None:
    # the forward grows 10x per layer over the trunk fc1 .. fc5 (fc6 is the readout): 1e4 over 5
    # layers, 4 gains. With every gradient 0 (the loss overflowed), the span was the gradient's chain,
    # cut at the last layer any gradient reaches: "1e+04x across 1 layers (fc1 .. fc1)"
    [det] = [d for d in detect(_result(0.0), Thresholds()) if d.code == "exploding_gradient"]
    ev = det.evidence
    assert ev["layers"] == ["fc1", "fc5"] and ev["depth"] == 5
    assert abs(ev["activation_growth"] - 1e4) < 1e-6 * 1e4
    assert abs(ev["activation_growth_per_layer"] - 10.0) < 1e-9
    assert ev["no_gradient"] is True
    assert "from fc1 to fc5 (5 layers, 4 steps" in det.summary


def _churn_mlp(dead: int) -> bytes:
    """x [N, 12] -> Gemm 64 + Relu -> Gemm 32 + Relu -> Gemm 1 -> Sigmoid, the second layer's first
    ``dead`` units with every weight and bias negative: on the first layer's ReLU outputs (>= 0) their
    pre-activation is below 0 for every input, so they are dead by construction; the others' are
    positive, so they fire for every input."""
    rng = np.random.default_rng(1)
    w2 = np.abs(rng.standard_normal((32, 64))) * 0.1
    b2 = np.full(32, 0.5)
    w2[:dead], b2[:dead] = -w2[:dead], -0.5
    inits = [_init("W1", rng.standard_normal((64, 12)) * 0.4), _init("b1", np.full(64, 0.1)),
             _init("W2", w2), _init("b2", b2), _init("W3", rng.standard_normal((1, 32)) * 0.2), _init("b3", np.zeros(1))]
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["z1"], name="dense_1", transB=1),
             helper.make_node("Relu", ["z1"], ["h1"]),
             helper.make_node("Gemm", ["h1", "W2", "b2"], ["z2"], name="dense_2", transB=1),
             helper.make_node("Relu", ["z2"], ["h2"]),
             helper.make_node("Gemm", ["h2", "W3", "b3"], ["z3"], name="dense_3", transB=1),
             helper.make_node("Sigmoid", ["z3"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def test_a_table_dead_fraction_past_the_warning_never_sits_beside_silence() -> None:
    # 20 of 32 units dead for every input: 62.5%, past the 60% warning. dead_units counts a share
    # above 1/2 only where a one-sided binomial test at 1/2 rejects it (Bonferroni over the 2 ReLU
    # layers: 0.025); P(X >= 20 | 32, 1/2) = 0.108, so no warning, and the table's 62.5% stood beside
    # no finding at all (onnxsweep13 u06: 69% in its table)
    p = sum(math.comb(32, i) for i in range(20, 33)) / 2 ** 32
    assert 0.10 < p < 0.11
    doc = check_onnx(_churn_mlp(20), verify=False)
    layer = next(x for x in doc.layers if x.name.startswith("dense_2"))
    assert layer.dead_fraction_all_samples == 20 / 32
    assert layer.dead_fraction is not None and layer.dead_fraction >= 0.6
    [note] = [f for f in doc.findings if f.code == "dead_units"]
    assert note.severity == "info" and doc.status == "healthy"
    assert "20 of 32" in note.summary
    assert note.evidence.model_dump()["all_samples_fractions"][layer.name] == 20 / 32


def test_a_layer_dead_past_the_binomial_test_is_still_a_warning() -> None:
    # 28 of 32: P(X >= 28 | 32, 1/2) = 8.4e-6, far under 0.025: the finding itself, not a note
    doc = check_onnx(_churn_mlp(28), verify=False)
    [finding] = [f for f in doc.findings if f.code == "dead_units"]
    assert finding.severity == "error"  # 87.5% >= the 85% error
