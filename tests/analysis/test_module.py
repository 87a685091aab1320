"""The live-module door: known-health modules get their diagnosis, the module is never modified,
and assert_gradients_healthy fails a test with the text report."""

from __future__ import annotations

import collections
import collections.abc
import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth import check_module
from gradhealth.testing import assert_gradients_healthy
from tests.analysis.onnx_models import Sequence, mlp
from tests.analysis.recurrent import shut_gates


def _codes(doc) -> set[str]:
    return {f.code for f in doc.findings}


def test_module_is_never_modified() -> None:
    torch.manual_seed(0)
    model = mlp(nn.Sigmoid)
    before = copy.deepcopy(model.state_dict())
    doc = check_module(model, torch.randn(16, 64), seeds=2)
    assert doc.findings and any(r.verified for f in doc.findings for r in f.remedies)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(model[1], nn.Sigmoid)  # the activation swap happened on a copy


def test_he_relu_mlp_is_healthy() -> None:
    torch.manual_seed(0)
    doc = check_module(mlp(nn.ReLU, he=True), torch.randn(64, 64), seeds=2, verify=False)
    assert doc.status == "healthy", doc.summary


def test_relu_with_large_negative_bias_is_dead() -> None:
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=3, he=True)
    with torch.no_grad():
        model[2].bias.fill_(-50.0)  # pre-activations of layer 2 are below 0 for every input
    doc = check_module(model, torch.randn(32, 64), seeds=2, verify=False)
    assert "dead_units" in _codes(doc)
    assert next(layer for layer in doc.layers if layer.name == "2").dead_fraction == 1.0


def test_tanh_with_large_weights_saturates() -> None:
    torch.manual_seed(0)
    model = mlp(nn.Tanh, depth=4)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 3.0 / m.in_features ** 0.5)
    doc = check_module(model, torch.randn(64, 64), seeds=2, verify=False)
    assert "saturation" in _codes(doc)


def test_default_lstm_over_100_steps_vanishes_through_time() -> None:
    # forget gates shut (bias -5): a default LSTM's is a note without remedies since kerassweep13
    torch.manual_seed(0)
    model = Sequence(nn.LSTM, hidden=32)
    shut_gates(model.rnn, 32)
    doc = check_module(model, torch.randn(8, 100, 8), seeds=2)
    finding = next(f for f in doc.findings if f.code == "vanishing_through_time")
    chrono = next(r for r in finding.remedies if r.id == "gated_recurrent_cell")
    assert chrono.verified is not None  # the chrono bias was applied to a copy and re-simulated
    assert chrono.verified.after > chrono.verified.before


def test_assert_gradients_healthy_fails_with_the_report() -> None:
    torch.manual_seed(0)
    with pytest.raises(AssertionError) as err:
        assert_gradients_healthy(mlp(nn.Sigmoid), torch.randn(16, 64), seeds=2, verify=False)
    assert "vanishing_gradient" in str(err.value)
    doc = assert_gradients_healthy(mlp(nn.ReLU, he=True), torch.randn(64, 64), seeds=2, verify=False)
    assert doc.status == "healthy"

class _MaskedWithInf(nn.Module):
    """Attention masked with -inf where the mask is 0: a row with every key masked is NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.qkv = nn.Linear(8, 24)
        self.out = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.emb(ids)).chunk(3, dim=-1)
        scores = (q @ k.transpose(-2, -1)).masked_fill(mask[:, None, :] == 0, float("-inf"))
        return self.out(scores.softmax(-1) @ v).mean(1)


def test_an_integer_input_no_embedding_reads_is_used_as_given() -> None:
    # ids reach the embedding: drawn per seed; the mask does not: the user's (all ones) is kept.
    # Drawn at random, some rows of the mask would be all 0 and the check would report NaN.
    from gradhealth.analysis.module_check import input_specs

    torch.manual_seed(0)
    model = _MaskedWithInf()
    ids = torch.randint(0, 20, (16, 3))
    mask = torch.ones(16, 3, dtype=torch.long)
    specs = input_specs((ids, mask), model)
    assert specs[0].high == int(ids.max()) + 1 and specs[0].value is None
    assert specs[1].value is not None and bool((specs[1].value == 1).all())
    doc = check_module(model, (ids, mask), seeds=3, verify=False)
    assert "nonfinite" not in [f.code for f in doc.findings]
    assert all(layer.grad_norm is not None and layer.grad_norm > 0 for layer in doc.layers)


class _CastIds(_MaskedWithInf):
    """Takes int32 ids and casts them before the embedding, as many tokenizer pipelines do."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(ids.long(), mask)


def test_ids_cast_before_the_embedding_are_still_ids() -> None:
    from gradhealth.analysis.module_check import input_specs

    ids = torch.randint(0, 20, (4, 3), dtype=torch.int32)
    mask = torch.ones(4, 3, dtype=torch.long)
    specs = input_specs((ids, mask), _CastIds())
    assert specs[0].value is None and specs[0].high == int(ids.max()) + 1
    assert specs[1].value is not None


# --- Hugging Face conventions --------------------------------------------------------------------

class _Output(collections.OrderedDict):  # type: ignore[type-arg]  # transformers' ModelOutput is one
    """What a Hugging Face model returns: an ordered mapping of named outputs."""


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D, as GPT-2 uses it: a linear layer stored [in, out]."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.5)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], self.nf)


class _TextClassifier(nn.Module):
    """Keyword inputs and a mapping output, as a Hugging Face classifier has them."""

    def __init__(self, transposed: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.layers = nn.ModuleList([Conv1D(16, 16) if transposed else nn.Linear(16, 16) for _ in range(4)])
        self.head = nn.Linear(16, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _Output:
        h = self.emb(input_ids)
        for layer in self.layers:
            h = torch.tanh(layer(h))
        pooled = (h * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
        return _Output(logits=self.head(pooled), hidden_states=h)


def test_a_hugging_face_style_model_takes_keyword_inputs_and_returns_a_mapping() -> None:
    ids = torch.randint(0, 50, (8, 6))
    mask = torch.ones(8, 6, dtype=torch.long)
    mask[:, 4:] = 0
    torch.manual_seed(0)
    doc = check_module(_TextClassifier(False), {"input_ids": ids, "attention_mask": mask}, seeds=1, verify=False)
    assert [u.name for u in doc.layers] == ["emb", "layers.0", "layers.1", "layers.2", "layers.3", "head"]
    # the loss was read from the logits: the head, the readout, got a gradient
    assert doc.layers[-1].grad_norm and doc.layers[-1].grad_norm > 0


def test_gpt2_style_conv1d_is_a_linear_layer() -> None:
    # the same network with each nn.Linear replaced by a Conv1D holding the transposed weight:
    # the same units, fans and numbers
    torch.manual_seed(0)
    linear = _TextClassifier(False)
    conv = _TextClassifier(True)
    conv.load_state_dict({k: (v.t() if k.startswith("layers.") and k.endswith("weight") else v)
                          for k, v in linear.state_dict().items()})
    inputs = {"input_ids": torch.randint(0, 50, (8, 6)), "attention_mask": torch.ones(8, 6, dtype=torch.long)}
    a, b = (check_module(m, inputs, seeds=1, verify=False) for m in (linear, conv))
    assert [(u.name, u.type, u.activation, u.fan_in, u.fan_out) for u in a.layers] == [
        (u.name, u.type, u.activation, u.fan_in, u.fan_out) for u in b.layers]
    assert [u.grad_norm for u in b.layers] == pytest.approx([u.grad_norm for u in a.layers], rel=1e-9)


def test_a_saturated_output_is_what_a_trained_generator_does_and_a_saturated_hidden_layer_is_not() -> None:
    def net(scale_layer: int) -> nn.Module:
        torch.manual_seed(0)
        layers = [nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 16), nn.Tanh()]
        model = nn.Sequential(*layers)
        with torch.no_grad():
            model[scale_layer].weight.mul_(40.0)  # pre-activations far into tanh's flat tails
        return model

    x = torch.randn(64, 32)
    out = check_module(net(4), x, seeds=2, verify=False)
    saturated = {lay.name: lay.saturated_fraction for lay in out.layers if lay.saturated_fraction}
    assert max(saturated.values()) > 0.6  # the output layer is measured as saturated...
    assert "saturation" not in _codes(out)  # ...and not judged: it is the network's output
    hidden = check_module(net(2), x, seeds=2, verify=False)
    assert "saturation" in _codes(hidden)


class _RawLayers(nn.Module):
    """Layers written as functions on parameters the module holds (a ParameterList)."""

    def __init__(self, depth: int, width: int, act: collections.abc.Callable[[torch.Tensor], torch.Tensor],
                 std: float | None = None) -> None:
        super().__init__()
        self.ws = nn.ParameterList(nn.Parameter(torch.randn(width, width) * (std or width ** -0.5))
                                   for _ in range(depth))
        self.bs = nn.ParameterList(nn.Parameter(torch.zeros(width)) for _ in range(depth))
        self.head = nn.Parameter(torch.randn(10, width) * width ** -0.5)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w, b in zip(self.ws, self.bs, strict=True):
            x = self.act(torch.nn.functional.linear(x, w, b))
        return torch.nn.functional.linear(x, self.head)


def test_layers_written_as_functions_on_own_parameters_are_units() -> None:
    # the same network as modules and as F.linear over a ParameterList: the same units, figures
    # and verdict; before, the functional one had no layers at all (and the check crashed)
    torch.manual_seed(0)
    raw = _RawLayers(12, 32, torch.sigmoid)
    as_modules = nn.Sequential(*[m for w, b in zip(raw.ws, raw.bs, strict=True)
                                 for m in (_linear_from(w, b), nn.Sigmoid())], _linear_from(raw.head, None))
    x = torch.randn(16, 32)
    doc = check_module(raw, x, seeds=2, verify=True)
    ref = check_module(as_modules, x, seeds=2, verify=False)
    assert [layer.name for layer in doc.layers] == [f"ws.{k}" for k in range(12)] + ["head"]
    assert [layer.grad_norm for layer in doc.layers] == pytest.approx([layer.grad_norm for layer in ref.layers], rel=1e-9)
    assert [layer.activation for layer in doc.layers] == [layer.activation for layer in ref.layers]
    assert [f.code for f in doc.findings] == [f.code for f in ref.findings] == ["vanishing_gradient"]
    # the init remedy is not claimed verified: the check does not re-draw parameters it did not find in modules
    init = next(r for r in doc.findings[0].remedies if r.id == "xavier_init")
    assert init.verified is None and "functions on parameters" in init.change


def _linear_from(w: torch.Tensor, b: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
    return layer


def test_a_network_with_no_layer_the_check_can_see_is_checked_with_a_note_not_a_crash() -> None:
    class BroadcastOnly(nn.Module):
        """A linear layer written as a broadcast product and a sum: no call the check reads as one
        (an einsum or a product with the weight would be)."""

        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.unsqueeze(-1) * self.w).sum(1)

    # checked on its loss (and under SGD its sharpness), with a note naming what per-layer figures
    # could not measure (peersweep13: scalar-parameter regressions were refused)
    doc = check_module(BroadcastOnly(), torch.randn(4, 8), seeds=1, verify=False)
    assert "no layer to measure" in doc.summary and "(w)" in doc.summary


def test_a_custom_layer_module_holding_its_weight_is_measured() -> None:
    # StyleGAN's equalised learning rate: the module holds w ~ N(0, 1) and computes with
    # w * gain / sqrt(fan_in); a leaf module of no known kind was a black box, and a weight
    # computed from a parameter was no layer's. 8 such convs at gain 6 (3x He's) explode.
    class EqualisedConv(nn.Module):
        def __init__(self, cin: int, cout: int, gain: float) -> None:
            super().__init__()
            self.w, self.b = nn.Parameter(torch.randn(cout, cin, 3, 3)), nn.Parameter(torch.zeros(cout))
            self.c = gain / math.sqrt(cin * 9)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.w * self.c, self.b, padding=1)

    class Net(nn.Module):
        def __init__(self, gain: float) -> None:
            super().__init__()
            self.convs = nn.ModuleList(EqualisedConv(3 if i == 0 else 16, 16, gain) for i in range(8))
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for conv in self.convs:
                x = F.leaky_relu(conv(x), 0.2)
            return self.head(x.mean((2, 3)))

    torch.manual_seed(0)
    healthy = check_module(Net(math.sqrt(2)), torch.randn(8, 3, 16, 16), seeds=2, verify=False)
    assert [layer.name for layer in healthy.layers][:2] == ["convs.0.w", "convs.1.w"] and healthy.findings == []
    assert healthy.layers[1].weight_std == pytest.approx(math.sqrt(2) / math.sqrt(16 * 9), rel=0.1)  # the computed weight
    assert all(layer.grad_norm is not None and layer.grad_norm > 0 for layer in healthy.layers)
    torch.manual_seed(0)
    doc = check_module(Net(6.0), torch.randn(8, 3, 16, 16), seeds=2, verify=False)
    assert [(f.code, f.severity) for f in doc.findings] == [("exploding_gradient", "error")]


def test_a_packed_sequence_runs_as_packed() -> None:
    # pack_padded_sequence is how variable-length batches reach an LSTM; it crashed the step loop
    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.rnn = nn.LSTM(16, 32, batch_first=True, num_layers=2)
            self.out = nn.Linear(32, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            lengths = torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long)
            lengths[::2] = ids.shape[1] // 2
            packed = nn.utils.rnn.pack_padded_sequence(self.emb(ids), lengths, batch_first=True,
                                                       enforce_sorted=False)
            _, (h, _) = self.rnn(packed)
            return self.out(h[-1])

    torch.manual_seed(0)
    doc = check_module(Packed(), torch.randint(0, 50, (8, 12)), seeds=1, verify=False)
    assert [layer.name for layer in doc.layers] == ["emb", "rnn", "rnn#2", "out"]
    assert all(layer.grad_norm is not None and layer.grad_norm > 0 for layer in doc.layers)


class _Classifier(nn.Module):
    def __init__(self, ending: str, classes: int = 10) -> None:
        super().__init__()
        self.a, self.b, self.ending = nn.Linear(32, 64), nn.Linear(64, classes), ending
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.b(torch.relu(self.a(x)))
        if self.ending == "module":
            return self.softmax(z)
        if self.ending == "function":
            return torch.softmax(z, -1)
        if self.ending == "sigmoid":
            return torch.sigmoid(z)
        return torch.log_softmax(z, -1) if self.ending == "log_softmax" else z


@pytest.mark.parametrize("ending", ["module", "function", "sigmoid"])
def test_a_softmax_at_the_end_of_forward_under_cross_entropy_is_an_output_loss_mismatch(ending: str) -> None:
    # nn.CrossEntropyLoss applies log_softmax itself: softmax (or per-class sigmoid) outputs are
    # logits at most 1 apart, so the loss's floor is ln(1 + (k - 1) / e), 63 % of ln 10 at chance
    # for 10 classes; the fix is verified on the logits they came from (log p, logit p)
    torch.manual_seed(0)
    doc = check_module(_Classifier(ending), torch.randn(16, 32), seeds=2, verify=True)
    [f] = doc.findings
    assert (f.code, f.severity) == ("output_loss_mismatch", "error")
    assert f.evidence.model_dump()["loss_floor"] == pytest.approx(math.log1p(9 / math.e), rel=1e-12)
    assert f.evidence.value == pytest.approx(math.log1p(9 / math.e) / math.log(10), rel=1e-12)
    [remedy] = f.remedies
    assert remedy.id == "logits_loss" and "return the logits" in remedy.change
    assert remedy.verified is not None and remedy.verified.fixed


@pytest.mark.parametrize("ending", ["log_softmax", "logits"])
def test_logits_or_log_probabilities_under_cross_entropy_are_fine(ending: str) -> None:
    torch.manual_seed(0)
    assert check_module(_Classifier(ending), torch.randn(16, 32), seeds=2, verify=False).findings == []


def test_a_softmax_output_under_mse_is_not_a_cross_entropy_mismatch() -> None:
    torch.manual_seed(0)
    doc = check_module(_Classifier("function"), torch.randn(16, 32), loss="mse", seeds=2, verify=False)
    # at most the note that mse on a softmax fits probability targets (one-hot labels), taken for those
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert all(f.severity == "info" and (f.evidence.model_extra or {}).get("targets_assumed") for f in found)


class _Cut(nn.Module):
    def __init__(self, freeze: bool) -> None:
        super().__init__()
        self.a, self.b, self.c, self.out = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 10)
        self.freeze = freeze
        if freeze:  # a frozen backbone (fine-tuning a head): meant, not a fault
            for p in (*self.a.parameters(), *self.b.parameters()):
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b(torch.relu(self.a(x))))
        h = h if self.freeze else h.detach()
        return self.out(torch.relu(self.c(h)))


def test_a_detach_in_forward_is_no_gradient_reaching_the_layers_before_it() -> None:
    torch.manual_seed(0)
    doc = check_module(_Cut(freeze=False), torch.randn(16, 32), seeds=2, verify=True)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_gradient", "error")
    assert f.summary.startswith("no gradient reaches a from c") and "cut" in f.explanation
    assert f.remedies == []  # no init, activation or structure change gives them a gradient
    grads = {layer.name: layer.grad_norm for layer in doc.layers}
    assert grads["a"] == grads["b"] == 0.0 and grads["c"] > 0


def test_frozen_layers_are_not_a_finding() -> None:
    torch.manual_seed(0)
    assert check_module(_Cut(freeze=True), torch.randn(16, 32), seeds=2, verify=False).findings == []


class _FrozenBackbone(nn.Module):
    """12 sigmoid layers (the gradient through them shrinks ~4x a layer) and a ReLU layer whose
    bias of -30 keeps it off, all frozen under a trainable head: a linear probe."""

    def __init__(self, frozen: bool = True) -> None:
        super().__init__()
        self.bb = nn.Sequential(*[m for i in range(12) for m in (nn.Linear(32 if i == 0 else 64, 64), nn.Sigmoid())],
                                nn.Linear(64, 64), nn.ReLU())
        nn.init.constant_(self.bb[24].bias, -30.0)
        self.bb.requires_grad_(not frozen)
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bb(x) + 1.0)  # (+1: the head still gets a signal past the dead layer)


def test_a_frozen_backbone_is_not_judged_as_training_does_not_reach_it() -> None:
    torch.manual_seed(0)
    doc = check_module(_FrozenBackbone(), torch.randn(64, 32), seeds=2, verify=False)
    assert doc.findings == []
    layers = {layer.name: layer for layer in doc.layers}
    assert layers["bb.0"].grad_norm is None and layers["bb.0"].output_grad_norm is None  # none computed
    assert layers["bb.24"].dead_fraction is None and layers["head.0"].grad_norm > 0
    # the same layers trainable: the vanishing and the dead layer are findings
    torch.manual_seed(0)
    codes = {f.code for f in check_module(_FrozenBackbone(frozen=False), torch.randn(64, 32), seeds=2,
                                          verify=False).findings}
    assert {"vanishing_gradient", "dead_units"} <= codes


def test_a_model_frozen_whole_is_measured_as_if_trained() -> None:
    torch.manual_seed(0)
    model = _FrozenBackbone(frozen=False).requires_grad_(False)  # handed over for inference
    codes = {f.code for f in check_module(model, torch.randn(64, 32), seeds=2, verify=False).findings}
    assert "vanishing_gradient" in codes


def test_trainable_layers_run_under_no_grad_in_forward_get_no_gradient() -> None:
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
            self.dec = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():  # the bug: the encoder's weights are trainable but never learn
                z = self.enc(x)
            return self.dec(z)

    torch.manual_seed(0)
    doc = check_module(Encoder(), torch.randn(16, 32), seeds=2, verify=False)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_gradient", "error") and f.summary.startswith("no gradient reaches enc.0")
    grads = {layer.name: layer.grad_norm for layer in doc.layers}
    assert grads["enc.0"] == grads["enc.2"] == 0.0 and grads["dec.0"] > 0


class _LoopRNN(nn.Module):
    """A recurrence written as a Python loop over layers: h_t = W h_{t-1} + U x_t (no activation),
    W orthogonal times ``gain``: dL/dh_t shrinks by exactly ``gain`` per step back."""

    def __init__(self, gain: float, steps: int = 30) -> None:
        super().__init__()
        self.inp, self.rec, self.out = nn.Linear(8, 32), nn.Linear(32, 32, bias=False), nn.Linear(32, 4)
        nn.init.orthogonal_(self.rec.weight, gain)
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 32, dtype=x.dtype)
        for t in range(self.steps):
            h = self.rec(h) + self.inp(x[:, t])
        return self.out(h)


def test_a_layer_called_in_a_loop_is_measured_through_time() -> None:
    torch.manual_seed(0)
    doc = check_module(_LoopRNN(0.5), torch.randn(8, 30, 8), seeds=2, verify=True)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_through_time", "error")
    extra = f.evidence.model_dump()
    assert extra["per_step_factor"] == pytest.approx(0.5, rel=1e-6)  # the theory: exactly the gain
    assert extra["sequence_length"] == 30 and f.evidence.layers == ["rec"]
    assert {layer.name: layer.type for layer in doc.layers} == {"inp": "linear", "rec": "rnn", "out": "linear"}
    orthogonal = next(r for r in f.remedies if r.id == "orthogonal_init")
    assert orthogonal.verified is not None and orthogonal.verified.fixed  # gain 1: no shrinking
    assert check_module(_LoopRNN(1.0), torch.randn(8, 30, 8), seeds=2, verify=False).findings == []


class _RawLoopRNN(nn.Module):
    """The same recurrence written from scratch with matrices it holds (the d2l style):
    h_t = act(x_t @ W + h_{t-1} @ U + b), U orthogonal times ``gain``."""

    def __init__(self, gain: float, act: Any = None, steps: int = 30) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(8, 32) / 8 ** 0.5)
        self.U = nn.Parameter(nn.init.orthogonal_(torch.empty(32, 32), gain))
        self.b = nn.Parameter(torch.zeros(32))
        self.out = nn.Linear(32, 4)
        self.act, self.steps = act or (lambda z: z), steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 32, dtype=x.dtype)
        for t in range(self.steps):
            h = self.act(x[:, t] @ self.W + h @ self.U + self.b)
        return self.out(h)


def test_a_recurrence_on_matrices_the_model_holds_is_measured_through_time() -> None:
    torch.manual_seed(0)
    doc = check_module(_RawLoopRNN(0.5), torch.randn(8, 30, 8), seeds=2)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_through_time", "error")
    extra = f.evidence.model_dump()
    # (U^T)^k of an orthogonal U at gain 0.5 scales dL/dh_t by exactly 0.5 per step back
    assert extra["per_step_factor"] == pytest.approx(0.5, rel=1e-6) and f.evidence.layers == ["U"]
    assert {layer.name: layer.type for layer in doc.layers} == {"W": "linear", "U": "rnn", "out": "linear"}
    orthogonal = next(r for r in f.remedies if r.id == "orthogonal_init")
    assert orthogonal.verified is not None and orthogonal.verified.fixed  # U re-drawn at gain 1
    assert check_module(_RawLoopRNN(1.0), torch.randn(8, 30, 8), seeds=2, verify=False).findings == []
    # an identity-initialised ReLU recurrence at 1.1 (an IRNN too hot) grows back in time
    torch.manual_seed(0)
    hot = _RawLoopRNN(1.0, act=torch.relu, steps=60)
    with torch.no_grad():
        hot.U.copy_(1.1 * torch.eye(32))
    codes = {f.code for f in check_module(hot, torch.randn(8, 60, 8), seeds=2, verify=False).findings}
    assert "exploding_through_time" in codes


def test_a_layer_shared_by_separate_inputs_is_not_a_loop() -> None:
    class Siamese(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.out = nn.Linear(16, 16), nn.Linear(48, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.cat([torch.tanh(self.enc(x[:, k])) for k in range(3)], -1))

    torch.manual_seed(0)
    doc = check_module(Siamese(), torch.randn(8, 3, 16), seeds=1, verify=False)
    assert doc.time_steps == [] and {layer.type for layer in doc.layers} == {"linear"}


class _Encoder(nn.Module):
    def __init__(self, layers: int, norm_first: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.enc(self.emb(x)).mean(1))


def test_a_deep_post_ln_stack_of_torch_layers_is_a_risk_as_in_a_spec() -> None:
    # torch's nn.TransformerEncoderLayer is Post-LN by default (norm_first=False): 6 or more of
    # them are the spec's post_ln_depth_risk (Xiong et al. 2020); Pre-LN is verified on the copy
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (8, 10))
    doc = check_module(_Encoder(8, norm_first=False), ids, seeds=2, verify=True)
    [f] = doc.findings
    assert (f.code, f.severity) == ("post_ln_depth_risk", "warning") and f.evidence.model_dump()["depth"] == 8
    assert f.evidence.layers == ["enc.layers.0.linear2", "enc.layers.7.linear2"]
    pre_ln = next(r for r in f.remedies if r.id == "pre_layer_norm")
    assert pre_ln.verified is not None and pre_ln.verified.fixed
    assert check_module(_Encoder(8, norm_first=True), ids, seeds=2, verify=False).findings == []
    assert check_module(_Encoder(5, norm_first=False), ids, seeds=2, verify=False).findings == []


def test_a_head_the_loss_does_not_read_is_neither_the_output_nor_a_finding() -> None:
    # a second head returned beside the logits (an auxiliary output the loss here does not use)
    # gets no gradient; it is not the output layer (whose gradient would be "exactly none")
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
            self.cls, self.aux = nn.Linear(64, 10), nn.Linear(64, 1)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            h = self.body(x)
            return {"logits": self.cls(h), "aux": self.aux(h)}

    torch.manual_seed(0)
    doc = check_module(TwoHeads(), torch.randn(16, 32), seeds=2, verify=False)
    assert doc.findings == []
    assert {layer.name: layer.grad_norm for layer in doc.layers}["aux"] == 0.0


class _GCN(nn.Module):
    """Kipf & Welling's GCN with a dense adjacency input: D^-1/2 (A + I) D^-1/2 X W per layer."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32 if i == 0 else 64, 64) for i in range(3))
        self.out = nn.Linear(64, 7)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        a = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
        d = a.sum(1).rsqrt()
        a = d[:, None] * a * d[None, :]
        for lin in self.layers:
            x = torch.relu(a @ lin(x))
        return self.out(x)


def test_a_float_adjacency_or_mask_input_is_used_as_given() -> None:
    # noise in place of a 0/1 adjacency has negative degrees: rsqrt made NaN, a nonfinite "error"
    torch.manual_seed(0)
    adj = (torch.rand(64, 64) < 0.1).float()
    adj = ((adj + adj.T) > 0).float()
    doc = check_module(_GCN(), (torch.randn(64, 32), adj), seeds=2, verify=False)
    assert doc.findings == [] and doc.status == "healthy"


def test_a_through_time_ratio_below_float64_says_so_rather_than_0x() -> None:
    # an LSTM whose forget gate starts at sigmoid(-6) over 400 steps: dL/dh_0 underflows to 0
    class Closed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.out = nn.LSTM(8, 32, batch_first=True), nn.Linear(32, 3)
            with torch.no_grad():
                self.rnn.bias_ih_l0[32:64].fill_(-3.0)
                self.rnn.bias_hh_l0[32:64].fill_(-3.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    [f] = check_module(Closed(), torch.randn(4, 400, 8), seeds=1, verify=False).findings
    assert f.code == "vanishing_through_time" and f.evidence.value == 0.0
    assert "no dL/dh_t reaches step 0 from step 398" in f.summary and "0x" not in f.summary


class _BiRNN(nn.Module):
    """A bidirectional recurrent classifier reading the last position (a BiLSTM text classifier)."""

    def __init__(self, cell: type[nn.RNNBase], layers: int, **kw: object) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 64)
        self.rnn = cell(64, 64, num_layers=layers, batch_first=True, bidirectional=True, **kw)
        self.out = nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.emb(x))[0][:, -1])


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_a_stacked_bidirectional_classifier_does_not_explode_through_time(cell: type[nn.RNNBase]) -> None:
    # the second layer's forward direction vanishes back from the last position, so the gradient
    # injected into the first layer is largest at the end: the first layer's backward direction,
    # which starts there, read as "grows 1e10x" (an error) although its recurrence shrinks
    torch.manual_seed(0)
    doc = check_module(_BiRNN(cell, 2), torch.randint(0, 1000, (8, 50)), seeds=2, verify=False)
    # default gates: a note with the memory horizon, not a warning (kerassweep13: judged against
    # default gates, not the length)
    assert [(f.code, f.severity) for f in doc.findings] == [("vanishing_through_time", "info")]


def test_a_bidirectional_rnn_that_explodes_both_ways_still_explodes() -> None:
    torch.manual_seed(0)
    model = _BiRNN(nn.RNN, 2, nonlinearity="relu")
    for name, p in model.rnn.named_parameters():
        if name.startswith("weight_hh"):
            nn.init.orthogonal_(p, 1.5)
    doc = check_module(model, torch.randint(0, 1000, (8, 50)), seeds=2, verify=False)
    # both directions of both layers grow (1.5 per step, less the relu's halving): not a mirror
    assert "exploding_through_time" in {f.code for f in doc.findings}


class _ExplodingRNN(nn.Module):
    """A tanh RNN whose recurrent matrix is orthogonal at gain 3: dL/dh_t grows back in time."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, 32, batch_first=True)
        self.out = nn.Linear(32, 3)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, 3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def test_exploding_through_time_gets_a_clipping_threshold_from_the_fixed_network() -> None:
    torch.manual_seed(0)
    model, x = _ExplodingRNN(), torch.randn(8, 40, 8)
    doc = check_module(model, x, seeds=2)
    finding = next(f for f in doc.findings if f.code == "exploding_through_time")
    ids = [r.id for r in finding.remedies]
    assert "gradient_clipping" in ids
    clip = finding.remedies[ids.index("gradient_clipping")]
    assert clip.unverified == "training_time" and clip.verified is None
    # no learning-rate cut: the recurrence grows at init whatever the step size (sweeps 19-21)
    assert "lower_learning_rate" not in ids
    # orthogonal recurrent weights remove the explosion (tanh then leaves a mild vanishing): the
    # re-simulation the threshold comes from
    ortho = finding.remedies[ids.index("orthogonal_init")]
    assert ortho.verified is not None and ortho.verified.fixed
    # The threshold is the healthy network's scale, far below the broken one's own norm, which
    # clipping at would clip nothing: the broken network's total gradient norm, by hand.
    loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (8,)))
    loss.backward()
    broken = math.sqrt(sum(float(p.grad.square().sum()) for p in model.parameters()))
    assert 0 < clip.params["max_norm"] < broken / 100


class _ResidualLoop(nn.Module):
    """One update applied to its own stream ``steps`` times, x = x + f(x) with the same f (a neural
    cellular automaton's step, a shared block): no sequence, so no LSTM makes sense of it."""

    def __init__(self, steps: int = 40, width: int = 32) -> None:
        super().__init__()
        self.a, self.b, self.steps = nn.Linear(width, 64), nn.Linear(64, width), steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            x = x + self.b(torch.relu(self.a(x)))
        return x


def test_a_residual_loop_that_explodes_gets_its_update_scaled_and_verified() -> None:
    torch.manual_seed(0)
    model, x = _ResidualLoop(), torch.randn(16, 32)
    doc = check_module(model, x, loss="mse", seeds=2)
    finding = next(f for f in doc.findings if f.code == "exploding_through_time")
    scaled = finding.remedies[0]
    assert scaled.id == "scaled_residual" and "ending at b, added 40 times" in scaled.change
    assert scaled.verified is not None and scaled.verified.fixed and scaled.verified.after < finding.evidence.value / 10
    # the independent fact: b's output scaled by 1/sqrt(40) (its weight and bias: b is linear) makes
    # dL/dx_0 within the threshold of dL/dx_39, measured here by autograd in float64
    def ratio(scale: float) -> float:
        m = _ResidualLoop().double()
        m.load_state_dict(model.double().state_dict())
        with torch.no_grad():
            m.b.weight.mul_(scale), m.b.bias.mul_(scale)
        xs = [x.double().requires_grad_(True)]
        for _ in range(m.steps):
            xs.append(xs[-1] + m.b(torch.relu(m.a(xs[-1]))))
            xs[-1].retain_grad()
        xs[-1].square().sum().backward()
        return float(xs[0].grad.norm() / xs[-2].grad.norm())
    assert ratio(1.0) > 100 and ratio(40 ** -0.5) < 10
    # a loop over a sequence's steps with no stream of its own keeps its LSTM offer, no scaling
    torch.manual_seed(0)
    doc = check_module(_ExplodingRNN(), torch.randn(8, 40, 8), seeds=2, verify=False)
    finding = next(f for f in doc.findings if f.code == "exploding_through_time")
    assert "scaled_residual" not in {r.id for r in finding.remedies}


def test_without_verification_an_exploding_finding_gets_no_clipping_threshold() -> None:
    torch.manual_seed(0)
    doc = check_module(_ExplodingRNN(), torch.randn(8, 40, 8), seeds=2, verify=False)
    finding = next(f for f in doc.findings if f.code == "exploding_through_time")
    ids = [r.id for r in finding.remedies]
    assert "gradient_clipping" not in ids and "lower_learning_rate" not in ids
    assert "orthogonal_init" in ids  # the recurrence's own fix, unverified here


class _GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(16, 64, batch_first=True)
        self.out = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def test_a_gru_that_forgets_is_given_its_own_update_gate_opened_not_an_lstm() -> None:
    # update gates shut (bias -5): a default GRU's is a note without remedies since kerassweep13
    torch.manual_seed(0)
    model = _GRUClassifier()
    shut_gates(model.rnn, 64)
    doc = check_module(model, torch.randn(8, 200, 16), seeds=2)
    finding = next(f for f in doc.findings if f.code == "vanishing_through_time")
    gated = next(r for r in finding.remedies if r.id == "gated_recurrent_cell")
    assert gated.change.startswith("keep rnn (GRU) and give it chrono gate initialisation (T_max = 200)")
    assert "LSTM" not in gated.change and gated.params["update_gate_bias"] == "chrono"
    assert gated.verified is not None and gated.verified.fixed and gated.recommended
    assert finding.remedies[0] is gated  # the measured fix first


def test_the_chrono_edit_sets_a_grus_update_gate_bias_only() -> None:
    from gradhealth.analysis.module_check import _chrono_edit

    torch.manual_seed(0)
    rnn = nn.GRU(4, 8, num_layers=2, bidirectional=True)
    before = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    _chrono_edit(50)(rnn, 0)
    h = 8
    for name, p in rnn.named_parameters():
        z = slice(h, 2 * h)
        if name.startswith("bias_ih"):
            # b_z = log(u), u ~ U(1, 49): within [0, log 49]; r and n untouched
            assert bool((p[z] >= 0).all() and (p[z] <= math.log(49)).all()) and p[z].std() > 0
            assert torch.equal(p[:h], before[name][:h]) and torch.equal(p[2 * h:], before[name][2 * h:])
        elif name.startswith("bias_hh"):
            assert torch.equal(p[z], torch.zeros(h))
            assert torch.equal(p[:h], before[name][:h]) and torch.equal(p[2 * h:], before[name][2 * h:])
        else:
            assert torch.equal(p, before[name])


class _CheckpointedSigmoidStack(nn.Module):
    """20 Xavier sigmoid layers, each block under reentrant gradient checkpointing."""

    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.reentrant = reentrant
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(32, 32), nn.Sigmoid()) for _ in range(20))
        for block in self.blocks:
            nn.init.xavier_normal_(block[0].weight)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=self.reentrant)
        return self.head(x)


def test_reentrant_checkpointing_is_measured_as_the_plain_network(recwarn: pytest.WarningsRecorder) -> None:
    import torch.utils.checkpoint as ckpt

    x = torch.randn(32, 32, requires_grad=False)
    docs = {}
    for reentrant in (True, False):
        torch.manual_seed(0)
        docs[reentrant] = check_module(_CheckpointedSigmoidStack(reentrant), x, seeds=2, verify=False)
    # the same diagnosis as the non-reentrant form: the sigmoid stack vanishes
    assert [f.code for f in docs[True].findings] == [f.code for f in docs[False].findings]
    assert "vanishing_gradient" in {f.code for f in docs[True].findings}
    assert len(docs[True].layers) == len(docs[False].layers) == 21
    assert not [w for w in recwarn if "not a leaf" in str(w.message)]
    assert "apply" not in ckpt.CheckpointFunction.__dict__  # restored after the check


class _HandBlock(nn.Module):
    """A Transformer layer written by hand: Post-LN x = norm(x + f(x)), or Pre-LN x + f(norm(x))."""

    def __init__(self, d: int, post: bool) -> None:
        super().__init__()
        self.post = post
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = nn.MultiheadAttention(d, 4, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post:
            x = self.ln1(x + self.att(x, x, x, need_weights=False)[0])
            return self.ln2(x + self.ff(x))
        h = self.ln1(x)
        x = x + self.att(h, h, h, need_weights=False)[0]
        return x + self.ff(self.ln2(x))


class _HandTransformer(nn.Module):
    def __init__(self, layers: int, post: bool, d: int = 32) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, d)
        self.blocks = nn.ModuleList(_HandBlock(d, post) for _ in range(layers))
        self.norm = nn.Identity() if post else nn.LayerNorm(d)
        self.head = nn.Linear(d, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))


@pytest.mark.parametrize("layers", [8, 3])
def test_hand_written_post_ln_blocks_are_a_depth_risk_as_torchs_own(layers: int) -> None:
    ids = torch.randint(0, 100, (8, 12))
    torch.manual_seed(0)
    doc = check_module(_HandTransformer(layers, post=True), ids, seeds=2)
    risk = [f for f in doc.findings if f.code == "post_ln_depth_risk"]
    if layers < 6:  # thresholds.post_ln_depth: shallower stacks train without warm-up
        assert risk == []
        return
    [f] = risk
    assert f.severity == "warning" and f.evidence.model_dump()["depth"] == layers
    pre = next(r for r in f.remedies if r.id == "pre_layer_norm")
    assert "x = x + f(norm(x))" in pre.change and pre.verified is None  # no norm_first to switch
    # the same layers written Pre-LN are no risk
    torch.manual_seed(0)
    doc = check_module(_HandTransformer(layers, post=False), ids, seeds=2, verify=False)
    assert "post_ln_depth_risk" not in {f.code for f in doc.findings}


class _LogOfReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.l1(x))
        h = torch.log(h)  # -inf wherever the ReLU gave 0
        return self.l2(h)


def test_a_nan_made_by_a_function_names_it_and_the_line_that_calls_it() -> None:
    import inspect

    torch.manual_seed(0)
    doc = check_module(_LogOfReLU(), torch.randn(16, 16), seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    extra = f.evidence.model_dump()
    line = inspect.getsourcelines(_LogOfReLU.forward)[1] + 2  # the torch.log line
    assert extra["operation"] == "log" and extra["called_at"].startswith(f"test_module.py:{line} ")
    assert "torch.log(h)" in extra["called_at"] and "undefined" in f.explanation
    assert f.evidence.layers == ["l2"]  # the first layer whose output holds it, as before


class _ExpOverflow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.exp(1000.0 * self.l1(x)))  # e^1000 is past float64's range


def test_a_nan_made_by_overflow_says_it_overflowed() -> None:
    torch.manual_seed(0)
    doc = check_module(_ExpOverflow(), torch.randn(16, 16), seeds=1, verify=False)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.evidence.model_dump()["operation"] == "exp"
    assert "overflowed" in f.explanation and "undefined" not in f.explanation


class _CellLoop(nn.Module):
    """A forward stepping a torch cell (nn.RNNCell, LSTMCell, GRUCell) in its own loop, as a
    seq2seq decoder or an RL core does; the cell reads the state as its second argument."""

    def __init__(self, cell: nn.RNNCellBase, steps: int = 40) -> None:
        super().__init__()
        self.cell, self.out, self.steps = cell, nn.Linear(cell.hidden_size, 4), steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = None
        for t in range(self.steps):
            state = self.cell(x[:, t], state)
        return self.out(state[0] if isinstance(state, tuple) else state)


def test_a_cell_stepped_in_a_loop_is_measured_through_time() -> None:
    # theory, exactly: with no input weights and zero biases every h_t is 0, tanh'(0) = 1, and the
    # step's Jacobian is W_hh itself: orthogonal at gain 0.5 scales dL/dh_t by 0.5 per step back
    torch.manual_seed(0)
    cell = nn.RNNCell(8, 32)
    with torch.no_grad():
        cell.weight_ih.zero_(), cell.bias_ih.zero_(), cell.bias_hh.zero_()
        nn.init.orthogonal_(cell.weight_hh, 0.5)
    doc = check_module(_CellLoop(cell), torch.randn(8, 40, 8), seeds=2, verify=False)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_through_time", "error") and f.evidence.layers == ["cell"]
    assert f.evidence.model_dump()["per_step_factor"] == pytest.approx(0.5, rel=1e-6)  # float32 weights
    assert {layer.name: layer.type for layer in doc.layers} == {"cell": "rnn", "out": "linear"}
    # gated cells keep their kind (vanishing through time is at most a warning for them, and one
    # only for gates worse than default: here forget gates shut, bias -5), and the chrono remedy
    # opens an LSTMCell's own forget gate
    torch.manual_seed(0)
    lstm_cell = nn.LSTMCell(8, 32)
    with torch.no_grad():
        lstm_cell.bias_ih[32:64], lstm_cell.bias_hh[32:64] = -5.0, 0.0
    doc = check_module(_CellLoop(lstm_cell, steps=60), torch.randn(8, 60, 8), seeds=2)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_through_time", "warning")
    assert {layer.name: layer.type for layer in doc.layers}["cell"] == "lstm"
    chrono = next(r for r in f.remedies if r.id == "gated_recurrent_cell")
    assert "keep cell (LSTM)" in chrono.change and chrono.verified is not None and chrono.verified.fixed


class _NaiveSoftmax(nn.Module):
    """log(exp(z) / sum exp(z)) written by hand, with logits of a few hundred: exp overflows
    float32 (past 88.7) and gives inf / inf = NaN, while float64 holds exp(700)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 32), nn.Linear(32, 10)
        with torch.no_grad():
            self.b.weight.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = torch.exp(self.b(torch.relu(self.a(x))))
        return torch.log(e / e.sum(-1, keepdim=True))


def test_an_overflow_of_the_models_own_float32_is_found_though_float64_stays_finite() -> None:
    torch.manual_seed(0)
    model = _NaiveSoftmax(300.0)
    x = torch.randn(8, 16)
    with torch.no_grad():  # the independent check: in float32 the forward is NaN, in float64 not
        assert not torch.isfinite(model(x)).all() and torch.isfinite(model.double()(x.double())).all()
    model.float()
    doc = check_module(model, x, loss="sum", seeds=2)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    extra = f.evidence.model_dump()
    assert f.severity == "error" and extra["dtype"] == "float32" and extra["operation"] == "exp"
    assert "float32" in f.summary and not f.remedies  # no float64 re-simulation "fixes" it
    # the same model in float64, and a float32 one whose logits stay small: nothing to say
    torch.manual_seed(0)
    assert not [f for f in check_module(_NaiveSoftmax(300.0).double(), x.double(), loss="sum", seeds=2,
                                        verify=False).findings if f.code == "nonfinite"]
    torch.manual_seed(0)
    assert not [f for f in check_module(_NaiveSoftmax(1.0), x, loss="sum", seeds=2, verify=False).findings
                if f.code == "nonfinite"]


class _GatedMLP(nn.Module):
    """Each block scales its features by a sigmoid gate of them (squeeze-excitation's shape, on
    vectors): x * sigmoid(W x + b), the gate's bias at -4 so 98 % of it sits in the flat tail."""

    def __init__(self) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(32, 32) for _ in range(3))
        self.gates = nn.ModuleList(nn.Linear(32, 32) for _ in range(3))
        self.out = nn.Linear(32, 4)
        with torch.no_grad():
            for g in self.gates:
                g.bias.fill_(-4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fc, gate in zip(self.fcs, self.gates, strict=True):
            h = torch.relu(fc(x))
            x = h * torch.sigmoid(gate(h)).view(h.shape)
        return self.out(x)


def test_a_saturated_gate_is_not_offered_a_relu() -> None:
    # a ReLU in a gate's place gates nothing; the swap "fixed" saturation by removing the gating
    torch.manual_seed(0)
    doc = check_module(_GatedMLP(), torch.randn(16, 32), seeds=2)
    [f] = [f for f in doc.findings if f.code == "saturation"]
    assert all(name.startswith("gates.") for name in f.evidence.layers)
    assert "relu_family_activation" not in {r.id for r in f.remedies}
    # a saturated sigmoid layer that is no gate still is
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 4))
    with torch.no_grad():
        plain[0].bias.fill_(-4.0), plain[2].bias.fill_(-4.0)
    [f] = [f for f in check_module(plain, torch.randn(16, 32), seeds=2).findings if f.code == "saturation"]
    assert "relu_family_activation" in {r.id for r in f.remedies}


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_a_projected_lstm_is_unrolled_as_torch_runs_it(layers: int, bidirectional: bool) -> None:
    # LSTMP (proj_size): h_t = W_hr (o * tanh(c_t)); it was left fused, so no unit at all
    import copy

    from gradhealth.analysis.graph import UnrolledRNN, unroll_recurrent

    torch.manual_seed(0)
    lstm = nn.LSTM(8, 32, num_layers=layers, proj_size=16, batch_first=True, bidirectional=bidirectional).double()
    x = torch.randn(4, 20, 8, dtype=torch.float64)
    ref, (h_ref, c_ref) = lstm(x)
    holder = copy.deepcopy(nn.Sequential(lstm))
    unroll_recurrent(holder)
    unrolled = holder[0]
    for part in [unrolled] if isinstance(unrolled, UnrolledRNN) else unrolled.layers:
        part.probing = True  # step by step, as the simulation runs it
    out, (h_n, c_n) = unrolled(x)
    for a, b in ((out, ref), (h_n, h_ref), (c_n, c_ref)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_a_projected_lstm_is_measured_through_time() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.out = nn.LSTM(8, 32, proj_size=16, batch_first=True), nn.Linear(16, 4)
            with torch.no_grad():
                self.lstm.bias_ih_l0[32:64].fill_(-3.0)  # the forget gate nearly shut

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.lstm(x)[0][:, -1])

    torch.manual_seed(0)
    doc = check_module(Tagger(), torch.randn(8, 80, 8), seeds=2)
    [f] = doc.findings
    assert (f.code, f.severity) == ("vanishing_through_time", "warning") and f.evidence.layers == ["lstm"]
    chrono = next(r for r in f.remedies if r.id == "gated_recurrent_cell")
    assert chrono.verified is not None and chrono.verified.fixed


class _Blocks(nn.Module):
    """``depth`` ReLU layers with weights N(0, 4/fan_in) (twice He's variance: the gradient grows
    ~sqrt(2)x a layer back), plain or each as a residual branch x + f(x)."""

    def __init__(self, residual: bool, depth: int = 16) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(32, 64), nn.Linear(64, 10)
        self.layers = nn.ModuleList(nn.Linear(64, 64) for _ in range(depth))
        for layer in self.layers:
            nn.init.normal_(layer.weight, 0.0, (4 / 64) ** 0.5)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for layer in self.layers:
            h = h + torch.relu(layer(h)) if self.residual else torch.relu(layer(h))
        return self.out(h)


@pytest.mark.parametrize("residual", [False, True])
def test_residual_remedies_fit_whether_the_network_has_branches(residual: bool) -> None:
    # scaling residual branches needs branches; adding a skip path is for a stack without one
    torch.manual_seed(0)
    doc = check_module(_Blocks(residual), torch.randn(64, 32), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    ids = {r.id for r in f.remedies}
    assert ("scaled_residual" in ids) == residual and "residual_connections" not in ids
    torch.manual_seed(0)
    doc = check_module(nn.Sequential(*[m for _ in range(16) for m in (nn.Linear(64, 64), nn.Sigmoid())],
                                     nn.Linear(64, 10)), torch.randn(64, 64), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert "residual_connections" in {r.id for r in f.remedies} and "scaled_residual" not in {r.id for r in f.remedies}


class _Coupling(nn.Module):
    """A RealNVP-style affine coupling with an unbounded scale: x * exp(s(x)) + t(x). Eight of
    them with weights N(0, 0.13^2) compound exp(s) until some seeds overflow even float64."""

    def __init__(self, dim: int, parity: int) -> None:
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).double())
        self.net = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2 * dim))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.13)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t = self.net(x * self.mask).chunk(2, -1)
        return x * self.mask + (1 - self.mask) * (x * torch.exp(s) + t)


def test_a_remedy_whose_network_still_overflows_is_not_fixed() -> None:
    torch.manual_seed(0)
    flow = nn.Sequential(*[_Coupling(8, i % 2) for i in range(8)])
    doc = check_module(flow, torch.randn(128, 8), loss="mse", seeds=3)
    assert any(f.code == "nonfinite" for f in doc.findings)
    verified = [r for f in doc.findings for r in f.remedies if r.verified is not None]
    assert verified
    for r in verified:  # He init leaves exp(s) unbounded: its simulation is NaN, not healthy
        assert not (r.verified.fixed and r.verified.after is None), (r.id, r.verified)


@pytest.mark.parametrize("dim", [-1, 2])
def test_a_language_model_returning_probabilities_per_token_is_a_mismatch(dim: int) -> None:
    # (batch, tokens, vocabulary) probabilities: autograd keeps softmax's dim=-1 as 2^64 - 1, which
    # modulo 3 dimensions is 0, and the softmax over the vocabulary went unseen
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.out = nn.Embedding(50, 32), nn.Linear(32, 50)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(torch.tanh(self.emb(ids))), dim=dim)

    torch.manual_seed(0)
    doc = check_module(Tagger(), torch.randint(0, 50, (8, 12)), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.evidence.model_dump()["loss_floor"] == pytest.approx(math.log1p(49 / math.e), rel=1e-12)


class _DiffusionBlock(nn.Module):
    """An ADM/DDPM residual block: the timestep embedding added inside the branch, and the branch's
    last convolution initialised to zero so that the block starts as the identity."""

    def __init__(self, channels: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.emb = nn.Linear(emb, channels)
        self.norm2, self.conv2 = nn.GroupNorm(8, channels), nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


class _Denoiser(nn.Module):
    def __init__(self, zero_in_branch: bool = True) -> None:
        super().__init__()
        self.temb = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, 32))
        self.stem, self.out = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 3, 3, padding=1)
        self.blocks = nn.ModuleList(_DiffusionBlock(32, 32) for _ in range(3))
        self.zero_in_branch = zero_in_branch

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e, h = self.temb(t), self.stem(x)
        for block in self.blocks:
            h = block(h, e) if self.zero_in_branch else block.conv2(block(h, e))  # the zero conv on the stream
        return self.out(h)


def test_zero_initialised_residual_branch_ends_are_a_note_not_vanishing() -> None:
    # no gradient reaches the timestep MLP at the first step (it feeds only the zeroed branches),
    # but each zero conv gets a gradient of its own and is nonzero after one step
    torch.manual_seed(0)
    inputs = (torch.randn(8, 3, 16, 16), torch.randn(8, 16))
    doc = check_module(_Denoiser(), inputs, loss="mse", seeds=2)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "info" and f.remedies == [] and f.evidence.model_dump()["zero_branch_ends"] is True
    assert f.evidence.model_dump()["zero_weights"] == [f"blocks.{i}.conv2" for i in range(3)]
    # a zero layer on the main path passes nothing back, ever: the error, with an init remedy
    torch.manual_seed(0)
    doc = check_module(_Denoiser(zero_in_branch=False), inputs, loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "vanishing_gradient"]
    assert f.severity == "error" and "zero_branch_ends" not in f.evidence.model_dump()


class _StiffEuler(nn.Module):
    """A neural ODE stepped by Euler at dt = 1 with weights 3x LeCun's: h + f2(tanh(f1(h))) per step.
    Its tanh saturates, and the gradient through the 30 steps explodes."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.f1, self.f2, self.out = nn.Linear(8, 32), nn.Linear(32, 64), nn.Linear(64, 32), nn.Linear(32, 10)
        for m in (self.f1, self.f2):
            nn.init.normal_(m.weight, 0.0, 3.0 / math.sqrt(m.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for _ in range(30):
            h = h + self.f2(torch.tanh(self.f1(h)))
        return self.out(h)


def test_a_remedy_that_makes_another_finding_far_worse_is_not_recommended() -> None:
    # swapping the tanh for a ReLU removes the saturation (no tanh left) and multiplies the
    # explosion through the steps by orders of magnitude: a side effect, not a recommendation
    torch.manual_seed(0)
    doc = check_module(_StiffEuler(), torch.randn(32, 8), seeds=2)
    [sat] = [f for f in doc.findings if f.code == "saturation"]
    [swap] = [r for r in sat.remedies if r.id == "relu_family_activation"]
    # (no tanh left to be saturated, and the gradient still explodes: no fix, judged by the flow)
    assert swap.verified is not None and swap.verified.after is None and not swap.verified.fixed
    assert "exploding_gradient" in swap.verified.side_effects and not swap.recommended


def test_worsened_names_a_higher_severity_or_ten_times_the_wrong_way() -> None:
    from gradhealth.analysis.check import worsened
    from gradhealth.analysis.findings import Detection

    def det(code: str, severity: str, value: float) -> Detection:
        return Detection(code, severity, "m", value, "", "", {}, [])

    before = [det("saturation", "error", 0.98), det("exploding_gradient", "warning", 500.0),
              det("vanishing_through_time", "warning", 5e-3)]
    assert worsened(before, [det("exploding_gradient", "warning", 4000.0)], "saturation") == []  # 8x: not 10
    assert worsened(before, [det("exploding_gradient", "warning", 6000.0)], "saturation") == ["exploding_gradient"]
    assert worsened(before, [det("exploding_gradient", "error", 2e4)], "saturation") == ["exploding_gradient"]
    assert worsened(before, [det("vanishing_through_time", "warning", 4e-4)], "saturation") == ["vanishing_through_time"]
    assert worsened(before, [det("saturation", "error", 0.99)], "saturation") == []  # the finding being fixed


class _DiagonalScan(nn.Module):
    """h_t = a * h_{t-1} + W x_t with a learned per-channel decay a = exp(-exp(nu)) (LRU's, S4D's
    real form): dL/dh_{t-1} = a * dL/dh_t exactly where the loss reads the last state alone."""

    def __init__(self, a: float, steps: int = 40) -> None:
        super().__init__()
        self.inp, self.out, self.steps = nn.Linear(8, 32), nn.Linear(32, 10), steps
        self.nu = nn.Parameter(torch.full((32,), math.log(-math.log(a))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.exp(-torch.exp(self.nu))
        h = torch.zeros(x.shape[0], 32, dtype=x.dtype)
        for t in range(self.steps):
            h = a * h + self.inp(x[:, t])
        return self.out(h)


@pytest.mark.parametrize("a,code", [(0.5, "vanishing_through_time"), (0.99, None)])
def test_an_elementwise_recurrence_is_measured_through_time(a: float, code: str | None) -> None:
    torch.manual_seed(0)
    doc = check_module(_DiagonalScan(a), torch.randn(16, 40, 8), seeds=2)
    norms = [s.output_grad_norm for s in doc.time_steps if s.layer == "nu"]
    assert len(norms) == 39  # h_1 .. h_39: h_0 is a constant
    assert norms[0] / norms[1] == pytest.approx(a, rel=1e-6)  # a per step back (exactly, but for rounding)
    found = [f for f in doc.findings if f.code.endswith("_through_time")]
    assert [f.code for f in found] == ([code] if code else [])
    if code:
        [f] = found
        assert f.severity == "error" and [r.id for r in f.remedies] == ["stable_decay"]
        assert "0.9 to 0.999" in f.remedies[0].change


def test_a_learned_vector_used_once_per_block_is_no_recurrence() -> None:
    # a layer scale per residual block (ConvNeXt's gamma): products by a vector, but none chained
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fcs = nn.ModuleList(nn.Linear(32, 32) for _ in range(4))
            self.gammas = nn.ParameterList(nn.Parameter(torch.full((32,), 0.1)) for _ in range(4))
            self.out = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for fc, g in zip(self.fcs, self.gammas, strict=True):
                x = x + g * torch.relu(fc(x))
            return self.out(x)

    torch.manual_seed(0)
    assert check_module(Scaled(), torch.randn(16, 32), seeds=2, verify=False).time_steps == []


def test_a_layer_whose_weights_all_start_equal_is_symmetric() -> None:
    # every weight 1 (nn.init.ones_, Keras' Ones): the 32 units of that layer are copies forever
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    nn.init.ones_(m[2].weight)
    doc = check_module(m, torch.randn(32, 16), seeds=2)
    [f] = [f for f in doc.findings if f.code == "symmetric_weights"]
    assert f.severity == "error" and f.evidence.layers == ["2"] and f.evidence.model_dump()["values"] == {"2": 1.0}
    [r] = [r for r in f.remedies if r.id == "he_init"]
    assert r.verified is not None and r.verified.fixed
    # all zero is no symmetry finding (vanishing_gradient's: nothing passes), nor is a one-unit layer
    for layer, init in ((2, nn.init.zeros_), (4, nn.init.ones_)):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
        init(m[layer].weight)
        assert not [f for f in check_module(m, torch.randn(32, 16), loss="mse", seeds=2, verify=False).findings
                    if f.code == "symmetric_weights"]


@pytest.mark.parametrize("value", [0.01, 0.3, -0.07])
def test_a_constant_layer_is_symmetric_whatever_its_sums_round_to(value: float) -> None:
    # msweep7 (a Wide & Deep model): a 96 -> 128 layer constant at 0.01 read a spread of 1.4e-7 of
    # its size from sqrt(mean square - mean^2), the sums' rounding, and was missed
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(96, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    nn.init.constant_(m[0].weight, value)
    doc = check_module(m, torch.randn(32, 96), seeds=2, verify=False)
    assert [f.evidence.layers for f in doc.findings if f.code == "symmetric_weights"] == [["0"]]


def test_units_killed_by_their_biases_are_offered_zero_biases_with_the_weights_kept() -> None:
    # msweep7: RetinaNet's prior bias -log(99) copied onto every conv of the head: every unit off.
    # Zeroing the biases alone revives them (verified); a re-initialisation's words say it zeroes them too
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 5))
    with torch.no_grad():
        for conv in (model[2], model[4]):
            nn.init.normal_(conv.weight, 0.0, 0.01)
            conv.bias.fill_(-math.log(99))
    doc = check_module(model, torch.randn(8, 3, 8, 8), seeds=2)
    [f] = [f for f in doc.findings if f.code == "dead_units"]
    [zero] = [r for r in f.remedies if r.id == "zero_bias"]
    assert zero.verified is not None and zero.verified.fixed and zero.recommended
    assert zero.verified.after is not None and zero.verified.after < 0.6
    for r in f.remedies:
        if r.id in ("he_init", "relu_family_activation"):
            assert "biases at 0" in r.change


class _LeakyScan(nn.Module):
    """h_t = a * h_{t-1} + (1 - a) * W x_t, a = sigmoid(nu): the EMA form of a leaky integrator
    (QRNN's and SRU's fo-pooling, minGRU): its input is scaled by a vector made from nu as well."""

    def __init__(self, a: float, steps: int = 24) -> None:
        super().__init__()
        self.inp, self.out, self.steps = nn.Linear(8, 32), nn.Linear(32, 10), steps
        self.nu = nn.Parameter(torch.full((32,), math.log(a / (1 - a))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.nu)
        h = torch.zeros(x.shape[0], 32, dtype=x.dtype)
        for t in range(self.steps):
            h = a * h + (1 - a) * self.inp(x[:, t])
        return self.out(h)


@pytest.mark.parametrize("a,code", [(0.5, "vanishing_through_time"), (0.98, None)])
def test_a_leaky_recurrence_in_its_ema_form_is_measured_through_time(a: float, code: str | None) -> None:
    # msweep7: written as a * h + (1 - a) * u the recurrence was not seen at all (a * h + u was)
    torch.manual_seed(0)
    doc = check_module(_LeakyScan(a), torch.randn(16, 24, 8), seeds=2, verify=False)
    norms = [s.output_grad_norm for s in doc.time_steps if s.layer == "nu"]
    assert len(norms) >= 20
    assert norms[0] / norms[1] == pytest.approx(a, rel=1e-6)
    assert [f.code for f in doc.findings if f.code.endswith("_through_time")] == ([code] if code else [])


def test_a_remedy_that_turns_an_explosion_through_time_into_a_vanishing_is_no_fix() -> None:
    # onnxsweep2: a ReLU RNN whose recurrent weights grow 3x a step, re-initialised orthogonally, went
    # from 1e21 to 2e-17 and was marked fixed (not recommended); the spec door already said not fixed
    class Rnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.head = nn.RNN(8, 32, nonlinearity="relu", batch_first=True), nn.Linear(32, 4)
            with torch.no_grad():
                self.rnn.weight_hh_l0.mul_(6.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    doc = check_module(Rnn(), torch.randn(8, 60, 8), seeds=2)
    [f] = [f for f in doc.findings if f.code == "exploding_through_time"]
    [ortho] = [r for r in f.remedies if r.id == "orthogonal_init"]
    assert ortho.verified is not None and "vanishing_through_time" in ortho.verified.side_effects
    assert not ortho.verified.fixed and not ortho.recommended


def test_a_deep_unnormalised_residual_stack_gets_its_branches_scaled_and_verified() -> None:
    # onnxsweep2: 50 He ReLU blocks x + f(x) with no norm grow 2x a block; scaled_residual was left
    # "needs a new structure" though scaling a branch's last layer is a weight change
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 32)
            for fc in (self.fc1, self.fc2):
                nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
                nn.init.zeros_(fc.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.fc2(torch.relu(self.fc1(x)))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), *[Block() for _ in range(30)], nn.Linear(32, 10))
    doc = check_module(model, torch.randn(32, 16), seeds=2)
    [f] = [f for f in doc.findings if f.code == "exploding_gradient"]
    [scaled] = [r for r in f.remedies if r.id == "scaled_residual"]
    assert scaled.verified is not None and scaled.verified.fixed and scaled.recommended
    assert scaled.verified.after is not None and scaled.verified.after < 100
    assert "1.fc2" in scaled.change and "(each ending at" in scaled.change


class _HandCell(nn.Module):
    """A GRU written by hand (gated) or a tanh cell (plain), read at every step."""

    def __init__(self, gated: bool) -> None:
        super().__init__()
        d, self.gated = 32, gated
        self.x2g = nn.Linear(8, 3 * d)
        self.h2zr, self.h2n, self.head = nn.Linear(d, 2 * d, bias=False), nn.Linear(d, d, bias=False), nn.Linear(d, 4)
        nn.init.orthogonal_(self.h2zr.weight)
        nn.init.orthogonal_(self.h2n.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = 32
        gx = self.x2g(x)
        h, hs = x.new_zeros(x.shape[0], d), []
        for t in range(x.shape[1]):
            zx, rx, nx = gx[:, t].split(d, -1)
            if self.gated:
                zh, rh = self.h2zr(h).split(d, -1)
                z, r = torch.sigmoid(zx + zh), torch.sigmoid(rx + rh)
                h = z * h + (1 - z) * torch.tanh(nx + self.h2n(r * h))
            else:
                h = torch.tanh(nx + self.h2n(h))
            hs.append(h)
        return self.head(torch.stack(hs, 1))


def test_a_gated_cell_written_by_hand_is_offered_its_gates_bias_not_an_lstm() -> None:
    # msweep8: a GRU written by hand read as a plain cell and was told "make h2zr an LSTM"; its
    # recurrent projection drives sigmoid gates that multiply the state: a gated cell already
    # its update gate shut (bias -5: z ~ 0.007, nothing kept), as a default-like one is a note
    # without remedies since kerassweep13
    torch.manual_seed(0)
    hand = _HandCell(True)
    with torch.no_grad():
        hand.x2g.bias[:32] = -5.0
    gated = check_module(hand, torch.randn(8, 60, 8), seeds=2)
    [f] = [f for f in gated.findings if f.code == "vanishing_through_time"]
    [cell] = [r for r in f.remedies if r.id == "gated_recurrent_cell"]
    assert "gated cell written by hand" in cell.change and "LSTM" not in cell.change
    torch.manual_seed(0)
    plain = check_module(_HandCell(False), torch.randn(8, 60, 8), seeds=2)
    [f] = [f for f in plain.findings if f.code == "vanishing_through_time"]
    assert not [r for r in f.remedies if "gated cell written by hand" in r.change]


def test_a_reinitialisation_reaches_transposed_convolutions() -> None:
    # msweep9: a VAE decoder's std-10 ConvTranspose2d feeding a tanh kept its weights under the init
    # remedies (only Linear and Conv were redrawn), so "xavier_init" made the saturation worse
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32 * 4 * 4), nn.Unflatten(1, (32, 4, 4)), nn.ConvTranspose2d(32, 16, 4, 2, 1),
                          nn.Tanh(), nn.Conv2d(16, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    nn.init.normal_(model[2].weight, 0.0, 10.0)
    doc = check_module(model, torch.randn(16, 16), seeds=2)
    [f] = [f for f in doc.findings if f.code == "saturation"]
    [xavier] = [r for r in f.remedies if r.id == "xavier_init"]
    assert xavier.verified is not None and xavier.verified.fixed and xavier.verified.after < 0.3


def test_a_constant_convolution_is_symmetric_in_its_channels_not_its_kernel_positions() -> None:
    # msweep9: a U-Net's 16-channel 3x3 conv filled with a constant read "its 144 units" (16 x 3 x 3)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    nn.init.constant_(m[2].weight, 0.02)
    doc = check_module(m, torch.randn(8, 3, 8, 8), seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "symmetric_weights"]
    assert "144" not in f.summary and "output channels" in f.summary


def test_a_loss_made_infinite_after_the_last_layer_is_named_in_the_forward() -> None:
    # msweep9: a detection head's log(relu(x)) in the loss read "NaN/Inf first appears in the
    # backward pass" though every layer's output is finite and the loss is already inf
    class LogHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    torch.manual_seed(0)
    doc = check_module(LogHead(), torch.randn(16, 16), loss="mse", seeds=2, verify=False)
    [f] = [f for f in doc.findings if f.code == "nonfinite"]
    assert f.evidence.model_dump()["pass"] == "forward" and "backward" not in f.summary
    assert "the the" not in f.summary and "(made by log" in f.summary
