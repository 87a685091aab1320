"""onnxsweep15: a continuous policy whose action output is sampled around its mean
(``Clip(mu + exp(log_std) * RandomNormalLike(mu))``, Unity ML-Agents' Walker brain; SB3's Gaussian PPO
as ``mean + std * (RandomNormalLike(zeros) * ones + zeros)``) is checked at the mean, and a random op
that cannot be followed back is refused saying how to go on; a file ending in a sigmoid over several
units under an explicit cross-entropy gets the unreachable-floor finding; the inference-softmax note
gives the floor for the file's own class count. Every graph is built here with ``onnx.helper``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from gradhealth import check_onnx
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx_static import read_header
from gradhealth.cli import main

_RNG = np.random.default_rng(0)


def _t(name: str, a: Any) -> Any:
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def _model(nodes: list[Any], inits: list[Any], outputs: list[tuple[str, list[Any]]], opset: int = 9) -> bytes:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs], inits)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString())


def _body(width: int = 3) -> tuple[list[Any], list[Any]]:
    """obs [N, 6] -> Gemm -> Tanh -> Gemm -> ``mu`` [N, width]."""
    inits = [_t("w1", _RNG.standard_normal((16, 6)) * (1 / 6) ** 0.5), _t("b1", np.zeros(16)),
             _t("w2", _RNG.standard_normal((width, 16)) * (1 / 16) ** 0.5), _t("b2", np.zeros(width))]
    nodes = [helper.make_node("Gemm", ["obs", "w1", "b1"], ["z1"], name="fc1", transB=1),
             helper.make_node("Tanh", ["z1"], ["h1"], name="tanh1"),
             helper.make_node("Gemm", ["h1", "w2", "b2"], ["mu"], name="fc_mu", transB=1)]
    return nodes, inits


def _gaussian_policy(through_layer: bool = False) -> bytes:
    """``action = Clip(mu + exp(log_std) * RandomNormalLike(mu), -3, 3)``, as ML-Agents writes it (opset 9);
    ``through_layer``: the sample then feeds another layer (a VAE's decoder), no action tail."""
    nodes, inits = _body()
    inits.append(_t("log_std", np.full(3, -0.5)))
    nodes += [helper.make_node("Exp", ["log_std"], ["std"], name="exp"),
              helper.make_node("RandomNormalLike", ["mu"], ["eps"], name="draw"),
              helper.make_node("Mul", ["eps", "std"], ["noise"], name="scale"),
              helper.make_node("Add", ["mu", "noise"], ["sample"], name="shift")]
    if through_layer:
        inits += [_t("w3", _RNG.standard_normal((4, 3)) * 0.5), _t("b3", np.zeros(4))]
        nodes.append(helper.make_node("Gemm", ["sample", "w3", "b3"], ["action"], name="decoder", transB=1))
        return _model(nodes, inits, [("action", ["N", 4])])
    nodes.append(helper.make_node("Clip", ["sample"], ["action"], name="clip", min=-3.0, max=3.0))
    return _model(nodes, inits, [("action", ["N", 3])])


def _sb3_policy() -> bytes:
    """SB3's export of a Gaussian policy: the mean broadcast by Expand, the draw made as torch.normal(0, 1)
    does, ``RandomNormalLike(zeros) * ones + zeros``, then ``mean + noise * std``; a value head second."""
    nodes, inits = _body(width=1)
    inits += [_t("log_std", [0.0]), _t("zeros", np.zeros((1, 1))), _t("ones", np.ones((1, 1))),
              numpy_helper.from_array(np.array([1, 1], np.int64), "shape"),
              _t("wv", _RNG.standard_normal((1, 16)) * 0.25), _t("bv", [0.0])]
    nodes += [helper.make_node("Expand", ["mu", "shape"], ["mean"], name="expand"),
              helper.make_node("Exp", ["log_std"], ["std"], name="exp"),
              helper.make_node("RandomNormalLike", ["zeros"], ["eps0"], name="draw"),
              helper.make_node("Mul", ["ones", "eps0"], ["eps1"], name="times_ones"),
              helper.make_node("Add", ["eps1", "zeros"], ["eps"], name="plus_zeros"),
              helper.make_node("Mul", ["eps", "std"], ["noise"], name="scale"),
              helper.make_node("Add", ["mean", "noise"], ["action"], name="shift"),
              helper.make_node("Gemm", ["h1", "wv", "bv"], ["value"], name="value_net", transB=1)]
    return _model(nodes, inits, [("action", ["N", 1]), ("value", ["N", 1])], opset=13)


# --- 1. a continuous policy's sampled action: the loss at its mean ---------------------------------

@pytest.mark.parametrize(("build", "mean"), [(_gaussian_policy, "mu"), (_sb3_policy, "mu")])
def test_an_action_sampled_around_a_mean_is_checked_at_the_mean(build: Any, mean: str) -> None:
    header = read_header(build())
    assert [o.name for o in header.model.graph.output] == [mean]
    assert not {n.op_type for n in header.model.graph.node} & {"RandomNormalLike", "Clip", "Expand"}
    assert header.loss_note is not None and f"the mean {mean!r}" in header.loss_note
    assert header.sampled_means == (mean,)


def test_the_mean_checked_is_the_one_loss_at_mu_checks() -> None:
    data = _gaussian_policy()
    doc = check_onnx(data, seeds=2, verify=False)
    # an independent path: the user naming the mean, under the squared error the mean is trained with
    named = check_onnx(data, seeds=2, verify=False, loss_at="mu", loss="mse")
    assert doc.status == named.status and "'mu'" in doc.summary and "sampled around a mean" in doc.summary
    assert "checked under mse" in doc.summary
    grads = {layer.name: layer.output_grad_norm for layer in doc.layers}
    assert grads == {layer.name: layer.output_grad_norm for layer in named.layers}
    assert len(grads) == 2 and all(g is not None and g > 0 for g in grads.values())


def test_a_draw_that_cannot_be_followed_back_is_refused_naming_the_tensors_to_take_the_loss_at() -> None:
    with pytest.raises(ModelError) as err:
        read_header(_gaussian_policy(through_layer=True))
    message = str(err.value)
    assert "RandomNormalLike (node draw)" in message and "--loss-at TENSOR" in message
    assert "'mu'" in message  # the draw's non-noise operand, the mean it is added to


def test_the_cli_refuses_a_loss_at_past_the_draw_with_exit_2_and_says_how_to_go_on(tmp_path: Path,
                                                                                   capsys: Any) -> None:
    path = tmp_path / "policy.onnx"
    path.write_bytes(_gaussian_policy())
    assert main(["check", str(path), "--loss-at", "action", "--no-verify", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "--loss-at TENSOR" in err and "'mu'" in err and "Traceback" not in err


# --- 2. a sigmoid per class under an explicit cross-entropy on logits ------------------------------

def _sigmoid_classifier(classes: int, final: str = "Sigmoid") -> bytes:
    nodes, inits = _body(width=classes)
    attrs = {"axis": -1} if final == "Softmax" else {}
    nodes.append(helper.make_node(final, ["mu"], ["probs"], name="head", **attrs))
    return _model(nodes, inits, [("probs", ["N", classes])], opset=13)


@pytest.mark.parametrize("classes", [4, 10])
def test_a_sigmoid_per_class_under_cross_entropy_is_an_error_with_the_floor_of_its_class_count(classes: int) -> None:
    doc = check_onnx(_sigmoid_classifier(classes), loss="cross_entropy", seeds=2)
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert len(found) == 1 and found[0].severity == "error", [(f.code, f.severity) for f in doc.findings]
    ev = found[0].evidence
    floor = math.log(1 + (classes - 1) / math.e)  # the best softmax over logits in [0, 1]
    assert ev.metric == "unreachable_loss_fraction" and ev.classes == classes
    assert ev.loss_floor == pytest.approx(floor, rel=1e-9)
    assert ev.value == pytest.approx(floor / math.log(classes), rel=1e-9)
    # dropping the sigmoid (the loss on its logits) is verified to remove the floor
    remedy = next(r for r in found[0].remedies if r.id == "logits_loss")
    assert remedy.verified is not None and remedy.verified.fixed


def test_without_a_loss_a_sigmoid_per_class_stays_a_multi_label_note() -> None:
    doc = check_onnx(_sigmoid_classifier(4), seeds=1, verify=False)
    assert [f.severity for f in doc.findings if f.code == "output_loss_mismatch"] == ["info"]


# --- 3. the inference-softmax note's floor is the file's own class count's ---------------------------

def test_the_inference_softmax_note_gives_the_floor_for_its_own_classes() -> None:
    doc = check_onnx(_sigmoid_classifier(2, final="Softmax"), seeds=1, verify=False)
    note = next(f for f in doc.findings if f.code == "output_loss_mismatch")
    share = math.log(1 + 1 / math.e) / math.log(2)  # 2 classes: 45% of chance
    assert f"about {share:.0%} of chance for its 2 classes" in note.explanation
    assert "10 classes" not in note.explanation
