"""The ONNX door: an exported model gives the live module's per-layer gradients, findings and
verified remedies; what cannot be checked is refused before anything runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.onnx import import_onnx
from gradhealth.analysis.importers.onnx_static import DEFAULT_BATCH, activation_bytes
from gradhealth.analysis.module_check import check_module, check_onnx
from gradhealth.analysis.plan import Limits
from gradhealth.errors import InputFormatError, LimitExceeded
from tests.analysis.onnx_models import Encoder, Residual, Sequence, cnn, export, mlp, upsampler


def _same(live, onnx_doc) -> None:
    """Per-layer gradient norms equal to 1e-6 relative (float64, same inputs), same codes."""
    assert [u.name for u in live.layers] == [u.name for u in onnx_doc.layers]
    for a, b in zip(live.layers, onnx_doc.layers, strict=True):
        for metric in ("grad_norm", "output_grad_norm"):
            x, y = getattr(a, metric), getattr(b, metric)
            assert (x is None) == (y is None), (a.name, metric)
            if x is not None:
                assert y == pytest.approx(x, rel=1e-6), (a.name, metric)
    assert [f.code for f in live.findings] == [f.code for f in onnx_doc.findings]
    for s, t in zip(live.time_steps, onnx_doc.time_steps, strict=True):
        assert t.output_grad_norm == pytest.approx(s.output_grad_norm, rel=1e-6)


CASES = {
    "sigmoid_mlp": (lambda: mlp(nn.Sigmoid), (32, 64), False),
    "he_relu_mlp": (lambda: mlp(nn.ReLU, he=True), (32, 64), False),
    "cnn_batchnorm": (cnn, (8, 3, 8, 8), True),
    "residual": (Residual, (16, 16), False),
    "lstm": (lambda: Sequence(nn.LSTM), (8, 20, 8), False),
    "gru": (lambda: Sequence(nn.GRU), (8, 20, 8), False),
    "rnn": (lambda: Sequence(nn.RNN), (8, 20, 8), False),
    "conv_transpose": (upsampler, (4, 3, 4, 4), False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_and_live_module_agree(case: str) -> None:
    build, shape, train = CASES[case]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(shape)
    live = check_module(model, x, seeds=2, verify=False)
    via_onnx = check_onnx(export(model, x, train), seeds=2, verify=False)
    _same(live, via_onnx)
    assert live.layers  # something was measured


@pytest.mark.parametrize("activation,opset", [("gelu", None), ("gelu", 17), ("relu", None)])
def test_transformer_encoder_with_token_inputs_agrees(activation: str, opset: int | None) -> None:
    # token ids in, an embedding, attention whose projections torch applies as functions; opset
    # 17 writes GELU as x * (erf(x / sqrt 2) + 1) * 0.5, which must still read as a gelu unit
    torch.manual_seed(0)
    model = Encoder(activation=activation)
    ids = torch.randint(0, 50, (4, 7))
    data = export(model, ids, opset=opset)
    live = check_module(model, ids, seeds=2, verify=False)
    via_onnx = check_onnx(data, seeds=2, verify=False)
    _same(live, via_onnx)
    names = [u.name for u in via_onnx.layers]
    assert names == ["emb"] + [f"enc.layers.{i}.{p}" for i in range(2) for p in
                               ("self_attn", "self_attn.out_proj", "linear1", "linear2")] + ["head"]
    ff = via_onnx.layers[3]
    assert ff.activation == activation and live.layers[3].activation == activation
    # the packed q/k/v projection: fan-in the width, three widths out, weights as in the module
    attn = via_onnx.layers[1]
    assert (attn.fan_in, attn.fan_out) == (16, 48)
    w = model.enc.layers[0].self_attn.in_proj_weight.detach().double()
    assert attn.weight_std == pytest.approx(float(w.std()), rel=1e-6)
    # synthetic ids are drawn below the table's 50 rows, in the input's shape and integer type
    (spec,) = import_onnx(data).inputs
    assert (spec.shape, spec.dtype, spec.high) == ((4, 7), torch.int64, 50)


def test_erf_gelu_is_folded_to_one_activation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    x = torch.randn(4, 8)
    data = export(model, x, opset=17)
    assert "Erf" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    doc = check_onnx(data, seeds=1, verify=False)
    assert [(u.name, u.activation) for u in doc.layers] == [("0", "gelu"), ("2", None)]
    _same(check_module(model, x, seeds=1, verify=False), doc)


def test_layers_named_as_the_user_sees_them() -> None:
    torch.manual_seed(0)
    doc = check_onnx(export(Residual(), torch.randn(4, 16)), seeds=1, verify=False)
    assert [layer.name for layer in doc.layers] == ["inp", "fc1", "fc2", "out"]
    assert doc.layers[1].activation == "relu" and doc.layers[1].pointer == "node:/fc1/Gemm"


def test_lstm_is_measured_through_time() -> None:
    torch.manual_seed(0)
    doc = check_onnx(export(Sequence(nn.LSTM), torch.randn(4, 12, 8)), seeds=1, verify=False)
    steps = [s for s in doc.time_steps if s.layer == "rnn"]
    assert [s.t for s in steps] == list(range(12))
    # dL/dh_t reaches the early steps only through the recurrence: it shrinks backwards in time
    assert steps[0].output_grad_norm < steps[-2].output_grad_norm


def test_deep_sigmoid_vanishes_and_relu_swap_is_verified() -> None:
    torch.manual_seed(0)
    model = mlp(nn.Sigmoid)
    doc = check_onnx(export(model, torch.randn(32, 64)), seeds=2)
    assert doc.status == "unhealthy" and doc.findings[0].code == "vanishing_gradient"
    # exported as built, its weights are torch's default draw: an initialisation, whose swap (with
    # its He init) is a fix verified on it, not advice for retraining a checkpoint (onnxsweep24)
    assert "look freshly initialised" in doc.summary
    best = next(r for r in doc.findings[0].remedies if r.id == "relu_family_activation")
    assert best.verified is not None and best.verified.fixed and not best.verified.fresh_weights
    assert not best.for_retraining and doc.findings[0].remedies.index(best) < min(
        doc.findings[0].remedies.index(r) for r in doc.findings[0].remedies if r.verified is None)
    structural = [r for r in doc.findings[0].remedies if r.id in ("batch_norm", "residual_connections")]
    assert structural and all(r.verified is None and "not verified" in r.change for r in structural)
    assert all(r.snippet for r in doc.findings[0].remedies)


def test_reinitialise_uses_pytorch_default_init() -> None:
    # a file whose weights are all zero: as given, no gradient reaches the first layer; with
    # PyTorch's default initialisation the same architecture is checked as if freshly built
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=2)
    for p in model.parameters():
        nn.init.zeros_(p)
    data = export(model, torch.randn(8, 64))
    given = check_onnx(data, seeds=1, verify=False)
    fresh = check_onnx(data, seeds=1, verify=False, weights="reinitialise")
    assert given.layers[0].grad_norm == 0.0
    assert fresh.layers[0].grad_norm > 0.0
    # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std = 1/sqrt(3 fan_in)
    assert fresh.layers[0].weight_std == pytest.approx((3 * 64) ** -0.5, rel=0.05)


def _graph(nodes, inits, inp_shape=(2, 4), name="g") -> bytes:
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, inp_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_not_onnx_is_refused() -> None:
    with pytest.raises(InputFormatError, match="not an ONNX model"):
        check_onnx(b"layers:\n  - linear: 3\n")
    with pytest.raises(InputFormatError):
        check_onnx(b"")


def test_every_unsupported_op_is_named_in_one_error() -> None:
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
    data = _graph([helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
                   helper.make_node("Loop", ["a"], ["b"], name="loop1"),
                   helper.make_node("NonMaxSuppression", ["b"], ["y"], name="nms")], [w])
    with pytest.raises(ModelError) as err:
        check_onnx(data)
    assert "Loop (node loop1)" in err.value.detail and "NonMaxSuppression (node nms)" in err.value.detail
    assert err.value.status == 422


def test_external_data_is_refused_without_being_read() -> None:
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    data = _graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [w])
    with pytest.raises(ModelError, match="external data.*w") as err:
        check_onnx(data)
    # the count and the fix, not a list of every tensor torch's exporter put beside the file
    assert "1 tensor(s)" in err.value.detail and "external_data=False" in err.value.detail
    # and how to check it as it is, from the machine holding the .data file, with or without a server
    # (newuser3: "for a file on this machine" read as the server's machine)
    assert "--external-data" in err.value.detail and "--server URL" in err.value.detail


def test_many_external_tensors_are_counted_and_control_flow_is_named_as_such() -> None:
    def stored(name: str) -> onnx.TensorProto:
        t = helper.make_tensor(name, TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", "model.onnx.data"
        return t
    ws = [stored(f"layer{i}.weight") for i in range(12)]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"layer{i}.weight"],
                              [f"h{i + 1}" if i < 11 else "y"], name=f"mm{i}") for i in range(12)]
    with pytest.raises(ModelError) as err:
        check_onnx(_graph(nodes, ws))
    assert "12 tensor(s)" in err.value.detail and "and 7 more" in err.value.detail
    assert "layer11.weight" not in err.value.detail
    # an If node's branches are a subgraph: control flow, which no inlining of data fixes
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    cond = helper.make_node("If", ["c"], ["y"], name="node_cond__0", then_branch=branch, else_branch=branch)
    positive = helper.make_node("Greater", ["x", "zero"], ["c"], name="gt")
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    with pytest.raises(ModelError, match=r"control flow is not simulated: the condition of node_cond__0 \(If\) "
                                         "depends on the values of input 'x'") as err:
        check_onnx(_graph([positive, cond], [zero]))
    assert "external" not in err.value.detail


def test_too_many_parameters_is_refused_before_allocation() -> None:
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
    data = _graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [w])
    with pytest.raises(LimitExceeded, match="16 parameters"):
        check_onnx(data, limits=Limits(max_parameters=10))


def test_a_dynamic_batch_takes_the_default_and_other_dynamic_sizes_are_asked_for() -> None:
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=1)
    x = torch.randn(4, 64)
    import io
    import warnings
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    # torch's and tf2onnx's exports leave the batch dynamic by default: it takes DEFAULT_BATCH
    doc = check_onnx(f.getvalue(), seeds=1, verify=False)
    assert doc.simulation is not None and doc.simulation.batch_size == DEFAULT_BATCH
    doc = check_onnx(f.getvalue(), seeds=1, verify=False, batch_size=6)
    assert doc.simulation is not None and doc.simulation.batch_size == 6
    # over the activation limit at the default, the largest batch that fits (the user's own is refused)
    small = Limits(max_activation_bytes=activation_bytes(onnx.load_from_string(f.getvalue()), {"x": [5, 64]}))
    doc = check_onnx(f.getvalue(), seeds=1, verify=False, limits=small)
    assert doc.simulation is not None and doc.simulation.batch_size == 5
    with pytest.raises(LimitExceeded, match="a batch of 5 or fewer fits"):
        check_onnx(f.getvalue(), seeds=1, verify=False, limits=small, batch_size=16)
    # a dynamic size that is not the batch (a sequence's length) is still asked for
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    seq = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ModelError, match=r"x\[1\] \(time\); give them as input shapes"):
        check_onnx(seq, seeds=1)


def test_onnx_parse_only() -> None:
    # sanity: the test models are real ONNX (the checker accepts them)
    onnx.checker.check_model(onnx.load_from_string(export(Residual(), torch.randn(2, 16))))


def test_a_graph_that_fixes_its_batch_size_is_refused_with_the_reason_not_failed() -> None:
    # torch's exporter bakes the example's batch into an Expand (a class token made per sample):
    # asked for another batch size, the file's own graph does not compute, which is a property
    # of the file (422), not a failure of the check
    from tests.analysis.test_layer_scale import ClassTokenViT

    torch.manual_seed(0)
    data = export(ClassTokenViT(1.0).eval(), torch.randn(2, 6, 12))
    assert check_onnx(data, seeds=1, verify=False).simulation.batch_size == 2  # as exported: runs
    with pytest.raises(ModelError, match=r"does not run on inputs of shapes \[\[8, 6, 12\]\].*fix its batch size"):
        check_onnx(data, seeds=1, verify=False, batch_size=8)


def test_findings_on_a_files_own_weights_say_the_inputs_were_synthetic() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        model[0].bias.fill_(-50.0)  # off for every input: dead on any data, synthetic or not
    doc = check_onnx(export(model, torch.randn(16, 16)), seeds=1, verify=False)
    [dead] = [f for f in doc.findings if f.code == "dead_units"]
    assert "fed synthetic inputs" in dead.explanation and "weights: reinitialise" in dead.explanation
    # the architecture itself, at torch's initialisation: the bias is drawn again, nothing is dead
    fresh = check_onnx(export(model, torch.randn(16, 16)), seeds=1, verify=False, weights="reinitialise")
    assert "dead_units" not in {f.code for f in fresh.findings}


def test_activations_over_the_limit_name_the_batch_that_fits() -> None:
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.zeros(16, np.float32))
    data = _graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [w], inp_shape=(64, 4))
    with pytest.raises(LimitExceeded) as err:
        check_onnx(data, limits=Limits(max_activation_bytes=2000))
    fits = int(err.value.detail.split("a batch of ")[1].split()[0])
    assert 1 <= fits < 64
    check_onnx(data, batch_size=fits, limits=Limits(max_activation_bytes=2000), verify=False)  # and it does


class _PaddedEncoder(torch.nn.Module):
    """A BERT-style classifier taking torch's key_padding_mask (True = padding) as an input."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 32)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(32, 3)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(ids), src_key_padding_mask=pad_mask)[:, 0])


def test_a_padding_mask_input_is_filled_with_what_masks_nothing() -> None:
    # torch's mask is True where a token is padding: all ones masked every key, and the softmax
    # over nothing but -inf was a NaN the model never sees in training (a nonfinite error)
    import io
    import warnings

    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_PaddedEncoder().eval(), (torch.randint(0, 50, (4, 12)), torch.zeros(4, 12, dtype=torch.bool)),
                          f, dynamo=False, opset_version=17)
    doc = check_onnx(f.getvalue(), verify=False)
    assert not [x for x in doc.findings if x.code == "nonfinite"], [x.summary for x in doc.findings]


class _TopTwoRouter(torch.nn.Module):
    """A mixture of experts' router: each token's two highest-scoring experts, softmax-weighted."""

    def __init__(self) -> None:
        super().__init__()
        self.router = torch.nn.Linear(8, 4)
        self.experts = torch.nn.Linear(8, 4 * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores, picked = torch.topk(self.router(x), 2, dim=-1)
        outs = self.experts(x).reshape(*x.shape[:-1], 4, 8)
        chosen = torch.gather(outs, -2, picked.unsqueeze(-1).expand(*picked.shape, 8))
        return (torch.softmax(scores, -1).unsqueeze(-1) * chosen).sum(-2)


def test_topk_routing_computes_what_torch_computes() -> None:
    torch.manual_seed(0)
    model = _TopTwoRouter()
    x = torch.randn(6, 8)
    imported = import_onnx(export(model, x))
    got = imported.module.double()(x.double())
    want = model.double()(x.double())
    assert torch.allclose(got, want, atol=1e-12)
    assert not [f for f in check_onnx(export(model.float(), x), verify=False).findings if f.severity == "error"]


def _one_output(last: nn.Module | None) -> bytes:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)]
    return export(nn.Sequential(*layers, *([last] if last is not None else [])), torch.randn(4, 8))


def test_a_files_loss_is_read_from_its_output_when_none_is_given() -> None:
    # a binary classifier (one sigmoid unit) and a regression (one linear unit) under the default
    # cross-entropy were a softmax over one value: "no gradient reaches the output", an error on
    # working models; a classifier over classes keeps cross-entropy
    from gradhealth.analysis.module_check import implied_loss

    for last, loss in ((nn.Sigmoid(), ("binary_cross_entropy", False)), (None, ("mse", True))):
        data = _one_output(last)
        imported = import_onnx(data)
        assert implied_loss(imported.module, imported.inputs) == loss
        assert check_onnx(data, seeds=1, verify=False).findings == []
    classes = import_onnx(export(mlp(nn.ReLU, depth=1), torch.randn(4, 64)))
    assert implied_loss(classes.module, classes.inputs) == ("cross_entropy", True)
    # a sigmoid over several outputs is a multi-label head: binary cross-entropy on each (a softmax
    # over its probabilities was simulated, a loss no such model trains with: onnxsweep8)
    torch.manual_seed(0)
    labels = import_onnx(export(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10), nn.Sigmoid()),
                                torch.randn(4, 8)))
    assert implied_loss(labels.module, labels.inputs) == ("binary_cross_entropy", False)
    [note] = check_onnx(export(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10), nn.Sigmoid()),
                               torch.randn(4, 8)), seeds=1, verify=False).findings
    assert (note.code, note.severity) == ("output_loss_mismatch", "info") and "multi-label" in note.summary
    # asked for, cross-entropy over one unit is still what the user gets, and named as such
    [f] = check_onnx(_one_output(None), seeds=1, verify=False, loss="cross_entropy").findings
    assert f.code == "output_loss_mismatch"


class _Stack(nn.Module):
    """Features -> ``nn.TransformerEncoder`` of ``depth`` layers -> mean -> classes."""

    def __init__(self, depth: int, norm_first: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.inp(x)).mean(1))


def test_an_exported_post_ln_stack_is_a_depth_risk_as_the_live_one() -> None:
    from gradhealth import check_onnx
    from tests.analysis.onnx_models import export

    x = torch.randn(4, 10, 16)
    for depth, norm_first, expected in ((8, False, True), (8, True, False), (3, False, False)):
        torch.manual_seed(0)
        doc = check_onnx(export(_Stack(depth, norm_first).train(), x, train=True), seeds=1)
        risk = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
        assert bool(risk) == expected, (depth, norm_first, doc.summary)
        if risk:
            assert risk[0].evidence.model_dump()["depth"] == depth
            pre = next(r for r in risk[0].remedies if r.id == "pre_layer_norm")
            assert pre.verified is None and "x = x + f(norm(x))" in pre.change


def test_a_files_final_softmax_is_its_inference_head_and_a_note() -> None:
    # onnxsweep2: an exported classifier ending in nn.Softmax was simulated through that softmax and
    # a second one inside the cross-entropy (every gradient ~9x smaller than its LogSoftmax twin's)
    # and said nothing. The loss now takes its probabilities, as on the logits before them, and a
    # note says what a softmax applied twice in training would do
    torch.manual_seed(0)
    body = mlp(nn.ReLU, depth=4, he=True)
    x = torch.randn(16, 64)
    soft = check_onnx(export(nn.Sequential(body, nn.Softmax(dim=-1)), x), loss="cross_entropy", seeds=2, verify=False)
    logs = check_onnx(export(nn.Sequential(body, nn.LogSoftmax(dim=-1)), x), loss="cross_entropy", seeds=2,
                      verify=False)
    grads = [(a.output_grad_norm, b.output_grad_norm) for a, b in zip(soft.layers, logs.layers, strict=True)]
    assert grads and all(a == pytest.approx(b, rel=1e-6) for a, b in grads)
    [note] = [f for f in soft.findings if f.code == "output_loss_mismatch"]
    assert note.severity == "info" and soft.status == "healthy" and "output_loss_mismatch" in soft.summary
    assert not [f for f in logs.findings if f.code == "output_loss_mismatch"]
