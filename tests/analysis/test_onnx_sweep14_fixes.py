"""onnxsweep14: an RL policy export (Unity ML-Agents' brains) whose float outputs are constants and
whose computed outputs are int64 actions sampled (Multinomial) or argmaxed from a softmax over each
branch's masked logits; the loss is taken at those logits, a float ``action_masks`` input is all
ones, ``--loss-at`` chooses the tensor, ``--input-range`` draws inputs in the data's range, and a
per-layer gradient gain the weights' scale does not give (a trained checkpoint's) is a note. Every
graph is built here with ``onnx.helper``, as ML-Agents' exporter writes it (opset 9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.graph import InputSpec, make_inputs
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import JOINED_LOGITS, read_header
from gradhealth.cli import main
from tests.analysis.onnx_models import aligned_relu_mlp

_RNG = np.random.default_rng(0)


def _t(name: str, a: Any) -> Any:
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def _brain(branches: tuple[int, ...] = (3, 2), nan: bool = False, hidden: int = 32) -> bytes:
    """obs [N, 6] -> two Swish layers -> per branch: logits * mask - (1 - mask) * 1e8 -> Softmax ->
    Log -> Multinomial (``discrete_actions``) and ArgMax (``deterministic_discrete_actions``); the
    metadata outputs ``version_number`` and ``memory_size`` are initializers."""
    w1 = _RNG.standard_normal((hidden, 6)) * (1 / 6) ** 0.5
    w2 = _RNG.standard_normal((hidden, hidden)) * (1 / hidden) ** 0.5
    if nan:
        w2[5, 7] = np.nan
    inits = [_t("w1", w1), _t("b1", np.zeros(hidden)), _t("w2", w2), _t("b2", np.zeros(hidden)),
             _t("version_number", [3.0]), _t("memory_size", [0.0])]
    nodes = [helper.make_node("Gemm", ["obs", "w1", "b1"], ["z1"], name="Gemm_1", transB=1),
             helper.make_node("Sigmoid", ["z1"], ["s1"], name="Sigmoid_1"),
             helper.make_node("Mul", ["z1", "s1"], ["h1"], name="Mul_1"),
             helper.make_node("Gemm", ["h1", "w2", "b2"], ["z2"], name="Gemm_2", transB=1),
             helper.make_node("Sigmoid", ["z2"], ["s2"], name="Sigmoid_2"),
             helper.make_node("Mul", ["z2", "s2"], ["h2"], name="Mul_2")]
    samples, argmaxes, start = [], [], 0
    for k, width in enumerate(branches):
        inits += [_t(f"wb{k}", _RNG.standard_normal((width, hidden)) * 0.1), _t(f"bb{k}", np.zeros(width))]
        c = [helper.make_node("Constant", [], [f"c{k}{j}"], name=f"Constant_{k}{j}",
                              value=helper.make_tensor(f"v{k}{j}", TensorProto.FLOAT, [], [v]))
             for j, v in enumerate((-1.0, 1.0, 1e8))]
        nodes += [helper.make_node("Slice", ["action_masks"], [f"m{k}"], name=f"Slice_{k}", axes=[1],
                                   starts=[start], ends=[start + width]),
                  helper.make_node("Gemm", ["h2", f"wb{k}", f"bb{k}"], [f"l{k}"], name=f"Gemm_b{k}", transB=1),
                  *c,
                  helper.make_node("Mul", [f"m{k}", f"c{k}0"], [f"n{k}"], name=f"Mul_n{k}"),
                  helper.make_node("Add", [f"n{k}", f"c{k}1"], [f"inv{k}"], name=f"Add_inv{k}"),
                  helper.make_node("Mul", [f"l{k}", f"m{k}"], [f"lm{k}"], name=f"Mul_lm{k}"),
                  helper.make_node("Mul", [f"inv{k}", f"c{k}2"], [f"big{k}"], name=f"Mul_big{k}"),
                  helper.make_node("Sub", [f"lm{k}", f"big{k}"], [f"logits{k}"], name=f"Sub_{k}"),
                  helper.make_node("Softmax", [f"logits{k}"], [f"p{k}"], name=f"Softmax_{k}", axis=1),
                  helper.make_node("Log", [f"p{k}"], [f"lp{k}"], name=f"Log_{k}"),
                  helper.make_node("Multinomial", [f"lp{k}"], [f"a{k}"], name=f"Multinomial_{k}",
                                   dtype=TensorProto.INT64),
                  helper.make_node("ArgMax", [f"p{k}"], [f"d{k}"], name=f"ArgMax_{k}", axis=1)]
        samples.append(f"a{k}")
        argmaxes.append(f"d{k}")
        start += width
    nodes += [helper.make_node("Concat", samples, ["discrete_actions"], name="Concat_a", axis=1),
              helper.make_node("Concat", argmaxes, ["deterministic_discrete_actions"], name="Concat_d", axis=1)]
    graph = helper.make_graph(
        nodes, "brain",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 6]),
         helper.make_tensor_value_info("action_masks", TensorProto.FLOAT, ["batch", sum(branches)])],
        [helper.make_tensor_value_info("version_number", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("memory_size", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("discrete_actions", TensorProto.INT64, ["batch", len(branches)]),
         helper.make_tensor_value_info("deterministic_discrete_actions", TensorProto.INT64,
                                       ["batch", len(branches)])],
        inits)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)]).SerializeToString())


# --- 1. a policy's integer actions: the loss at the logits they are sampled from --------------------

def test_a_policy_whose_outputs_are_constants_and_int_actions_is_checked_at_every_branchs_logits() -> None:
    header = read_header(_brain())
    # the constant float outputs are not the loss's; the actions are walked back past Multinomial,
    # Log and Softmax to each branch's masked logits, joined into one tensor
    assert [o.name for o in header.model.graph.output] == [JOINED_LOGITS]
    joined = next(n for n in header.model.graph.node if n.output[0] == JOINED_LOGITS)
    assert list(joined.input) == ["logits0", "logits1"]
    assert not {n.op_type for n in header.model.graph.node} & {"Multinomial", "ArgMax", "Softmax", "Log"}
    assert header.loss_note is not None and "'logits0', 'logits1'" in header.loss_note
    assert "--loss-at" in header.loss_note

    doc = check_onnx(_brain(), seeds=1, verify=False)
    assert doc.status == "healthy", doc.summary
    assert "'logits0', 'logits1'" in doc.summary
    grads = {layer.name: layer.output_grad_norm for layer in doc.layers}
    # every head and the shared body get a gradient (the loss reads both branches)
    assert len(grads) == 4 and all(g is not None and g > 0 for g in grads.values()), grads


def test_a_float_action_mask_is_all_ones_not_standard_normal() -> None:
    imported = import_onnx(_brain())
    mask = next(s for s in imported.inputs if s.shape[-1] == 5)
    obs = next(s for s in imported.inputs if s.shape[-1] == 6)
    drawn = make_inputs(imported.inputs, 0)
    assert torch.equal(drawn[imported.inputs.index(mask)], torch.ones(mask.shape, dtype=torch.float64))
    assert obs.value is None  # the observation is data: still drawn
    assert any("action_masks is a mask" in n for n in imported.notes)


def test_a_nan_weight_in_a_policy_body_is_a_nonfinite_error_located_at_its_layer() -> None:
    doc = check_onnx(_brain(nan=True), seeds=1, verify=False)
    found = {f.code: f for f in doc.findings}
    assert "nonfinite" in found and found["nonfinite"].severity == "error"
    # the NaN came from the weight, not from the Concat that joins the logits
    assert "made by cat" not in found["nonfinite"].summary


def test_an_argmax_of_the_logits_is_checked_at_the_logits() -> None:
    w = _t("W", _RNG.standard_normal((8, 4)) * 0.3)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc"),
             helper.make_node("ArgMax", ["y"], ["label"], name="am", axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1])], [w])
    header = read_header(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert [o.name for o in header.model.graph.output] == ["y"]


def test_a_constant_node_output_listed_first_is_not_the_loss() -> None:
    w = _t("W", _RNG.standard_normal((8, 4)) * 0.3)
    nodes = [helper.make_node("Constant", [], ["ver"], name="ver",
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0])),
             helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("ver", TensorProto.FLOAT, [1]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    header = read_header(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert [o.name for o in header.model.graph.output] == ["y"]
    assert header.loss_note is not None and "'y'" in header.loss_note


def test_no_computed_float_tensor_at_all_is_refused_saying_what_each_output_is_and_how_to_choose() -> None:
    nodes = [helper.make_node("ArgMax", ["x"], ["am"], name="am", axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("ver", TensorProto.FLOAT, [1]),
                               helper.make_tensor_value_info("am", TensorProto.INT64, ["N"])],
                              [_t("ver", [1.0])])
    with pytest.raises(ModelError) as caught:
        read_header(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    message = str(caught.value)
    assert "graph output 'ver' is an initializer" in message and "graph output 'am' is declared INT64" in message
    assert "--loss-at NAME" in message


# --- 1b. --loss-at: the user's choice of tensor -------------------------------------------------------

def test_loss_at_takes_the_loss_at_an_internal_value() -> None:
    header = read_header(_brain(), output="logits1")
    assert [o.name for o in header.model.graph.output] == ["logits1"]
    assert not any(n.name == "Gemm_b0" for n in header.model.graph.node)  # branch 0 is not read
    doc = check_onnx(_brain(), seeds=1, verify=False, loss_at="logits1")
    assert len(doc.layers) == 3 and "'logits1', as asked" in doc.summary


@pytest.mark.parametrize(("name", "said"), [
    ("nope", "the graph has no tensor of that name; its outputs are 'version_number', 'memory_size'"),
    ("version_number", "is an initializer: no gradient would reach any layer from it"),
    ("discrete_actions", "the floating-point tensor it is made of is 'logits0'"),
])
def test_loss_at_refuses_a_name_that_is_no_computed_float_tensor(name: str, said: str) -> None:
    with pytest.raises(ModelError, match="loss_at") as caught:
        read_header(_brain(), output=name)
    assert said in str(caught.value)


def test_the_cli_takes_loss_at_and_refuses_an_unknown_name_with_exit_2(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "brain.onnx"
    path.write_bytes(_brain())
    assert main(["check", str(path), "--loss-at", "nope", "--no-verify", "--seeds", "1"]) == 2
    assert "its outputs are 'version_number'" in capsys.readouterr().err
    assert main(["check", str(path), "--loss-at", "logits0", "--no-verify", "--seeds", "1",
                 "--format", "json"]) == 0
    assert "'logits0', as asked" in json.loads(capsys.readouterr().out)["summary"]


# --- 2a. --input-range: inputs drawn in the data's range ----------------------------------------------

def test_input_range_draws_float_inputs_uniform_in_it() -> None:
    drawn = make_inputs([InputSpec((64, 784), uniform=(0.0, 1.0)), InputSpec((64, 784))], 0)
    assert float(drawn[0].min()) >= 0.0 and float(drawn[0].max()) <= 1.0
    # U(0, 1): mean 1/2, variance 1/12 (the standard-normal draw beside it: mean 0, variance 1)
    assert abs(float(drawn[0].mean()) - 0.5) < 0.01 and abs(float(drawn[0].var()) - 1 / 12) < 0.005
    assert float(drawn[1].min()) < 0.0


def test_the_cli_refuses_a_bad_input_range_with_exit_2(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "brain.onnx"
    path.write_bytes(_brain())
    assert main(["check", str(path), "--input-range", "1,0"]) == 2
    assert "--input-range: expected LO,HI" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1,1", "-0.5,0.5", "-inf,0"])
def test_a_range_starting_below_zero_is_taken_without_an_equals_sign(tmp_path: Path, capsys: Any, value: str) -> None:
    # onnxsweep16: argparse took "-1,1" for an option ("expected one argument"); only
    # --input-range=-1,1 worked. -inf is refused by the range's own check, naming the flag.
    path = tmp_path / "brain.onnx"
    path.write_bytes(_brain())
    code = main(["check", str(path), "--input-range", value, "--format", "json"])
    err = capsys.readouterr().err
    assert "expected one argument" not in err
    assert code == (2 if "inf" in value else 0)
    if "inf" in value:
        assert "--input-range" in err


# --- 2b. a gain per layer the weights' scale does not give ---------------------------------------------

def _aligned_relu_mlp(scale: float, width: int = 64, depth: int = 5) -> bytes:
    """x [N, width] -> depth x (width relu) -> 10, each hidden weight ``scale`` * a rank-2 matrix
    whose singular directions line up layer after layer (as training aligns them), plus small
    i.i.d. noise: the gradient grows along the aligned directions though the entries are small."""
    return aligned_relu_mlp(_RNG, scale, noise=0.01, width=width, depth=depth, outputs=10)


def test_a_steep_gain_from_aligned_weights_below_he_scale_is_a_note_not_an_init_warning() -> None:
    doc = check_onnx(_aligned_relu_mlp(2.5), seeds=2, verify=False)
    found = {f.code: f for f in doc.findings}
    f = found.get("exploding_gradient")
    assert f is not None and f.severity == "info", doc.summary
    evidence = f.evidence.model_dump()
    assert evidence["stretch_gain"] >= 2
    # the weights' own scale: each hidden W has entries of rms about sqrt(2.5^2 * 2 / 64^2 + 0.01^2),
    # sqrt(64 * rms^2 / 2) per layer by mean-field theory, well under 1
    rms = (2.5 ** 2 * 2 / 64 ** 2 + 0.01 ** 2) ** 0.5
    assert abs(evidence["weight_scale_gain"] / (64 * rms ** 2 / 2) ** 0.5 - 1) < 0.25
    assert "no initialisation gives" not in f.summary and "learned" in f.summary


def test_a_recurrent_layers_initial_state_input_is_zeros() -> None:
    """ML-Agents' recurrent brains (and any export taking (h0, c0) as inputs) feed the LSTM's state
    from graph inputs: zeros, the state a sequence starts from, not N(0, 1)."""
    hidden, features = 8, 4
    inits = [_t("W", _RNG.standard_normal((1, 4 * hidden, features)) * 0.3),
             _t("R", _RNG.standard_normal((1, 4 * hidden, hidden)) * 0.3), _t("B", np.zeros((1, 8 * hidden))),
             _t("Wo", _RNG.standard_normal((hidden, 3)) * 0.3)]
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h"], name="lstm",
                              hidden_size=hidden),
             helper.make_node("Squeeze", ["Y_h"], ["h"], name="sq", axes=[0]),
             helper.make_node("MatMul", ["h", "Wo"], ["y"], name="out")]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, features]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 2, hidden]),
         helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, 2, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits)
    imported = import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]).SerializeToString())
    x, h0, c0 = make_inputs(imported.inputs, 0)
    assert float(x.abs().sum()) > 0
    assert torch.equal(h0, torch.zeros(1, 2, hidden, dtype=torch.float64)) and torch.equal(c0, torch.zeros_like(c0))
