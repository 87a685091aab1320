"""onnxsweep24: a ReLU output under a loss the check guessed, fresh exports read as trained
checkpoints, quantised graphs refused with no way on, an image-shaped --input-shape example for a
token input, remedies naming every layer, and Sequential indices named bare."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gradhealth.analysis.freshinit import Layer, fresh_init, layer_family
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.module_check import check_onnx
from gradhealth.core import remedies as R

from .onnx_models import export


def _relu_tail() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()).eval()


def _mismatch(doc):  # type: ignore[no-untyped-def]
    return [f for f in doc.findings if f.code == "output_loss_mismatch"]


# --- 1. a ReLU output under the cross-entropy the check guessed ----------------------------------


def test_a_relu_output_under_a_guessed_loss_is_a_note_worded_as_the_checks_guess() -> None:
    data = export(_relu_tail(), torch.randn(16, 32))
    doc = check_onnx(data, verify=False)
    [f] = _mismatch(doc)
    assert f.severity == "info" and doc.status != "unhealthy"
    assert "its own guess" in f.summary and "give --loss mse" in f.summary
    assert f.evidence.model_extra["loss_implied"] is True
    # a symmetric init with a small bias: the sign of each pre-activation is about a fair coin
    assert 0.3 < f.evidence.value < 0.7
    # the layer a bare Sequential index names, read as a layer (onnxsweep24 #7)
    assert f.summary.startswith("layer 2's outputs go through a ReLU")
    # told by the user, the same pairing is the model's mismatch
    [told] = _mismatch(check_onnx(data, loss="cross_entropy", verify=False))
    assert told.severity in ("warning", "error") and "its own guess" not in told.summary


# --- 2. fresh initialisations told from trained weights ------------------------------------------


@pytest.mark.parametrize(("init", "family"), [
    (None, "torch's default U(+-1/sqrt(fan_in))"),
    (lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), "He normal"),
    (lambda w: nn.init.normal_(w, 0.0, 1.0), "N(0, 1)"),
    (nn.init.xavier_uniform_, "Glorot uniform"),
])
def test_an_init_draw_is_named_by_its_family(init, family) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    lin = nn.Linear(200, 100)
    if init is not None:
        init(lin.weight)
        nn.init.zeros_(lin.bias)
    assert layer_family(Layer(lin.weight, lin.bias, 200, 100)) == family


def test_weights_moved_off_their_init_are_no_fresh_draw() -> None:
    torch.manual_seed(2)
    lin = nn.Linear(200, 100)
    bound = 1 / math.sqrt(200)
    with torch.no_grad():
        moved = lin.weight + 0.3 * bound * torch.randn_like(lin.weight)  # updates spread the draw past its bound
        scaled = lin.weight * 1.2  # a uniform draw wider than any family's bound
    assert layer_family(Layer(moved, lin.bias, 200, 100)) is None
    assert layer_family(Layer(scaled, lin.bias, 200, 100)) is None
    # a bias beyond torch's default bound is no init's either
    assert layer_family(Layer(lin.weight, torch.full((100,), 5 * bound), 200, 100)) is None


def _deep_sigmoid() -> nn.Sequential:
    torch.manual_seed(3)
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(64, 64), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(64, 10)).eval()


def test_a_fresh_export_is_an_initialisation_and_a_trained_one_a_checkpoint() -> None:
    model = _deep_sigmoid()
    x = torch.randn(16, 64)
    fresh = check_onnx(export(model, x), loss="cross_entropy")
    assert fresh_init(model) is not None
    assert "look freshly initialised" in fresh.summary
    redraws = [r for f in fresh.findings for r in f.remedies if r.id in R.REDRAWS_WEIGHTS]
    assert redraws and not any(r.for_retraining or "discard" in r.change for r in redraws)
    # the same architecture moved off its init, as training moves it
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.add_(0.3 / math.sqrt(64) * torch.randn_like(m.weight))
    assert fresh_init(model) is None
    trained = check_onnx(export(model, x), loss="cross_entropy")
    assert "freshly initialised" not in trained.summary
    later = [r for f in trained.findings for r in f.remedies if r.for_retraining]
    assert later and all("whatever training they hold" in r.change for r in later)
    for f in fresh.findings:
        # on the initialisation a fix the re-simulation verified leads every one it could not measure
        measured = [i for i, r in enumerate(f.remedies) if r.verified is not None and r.verified.fixed]
        unmeasured = [i for i, r in enumerate(f.remedies) if r.verified is None]
        if measured and unmeasured:
            assert max(measured) < min(unmeasured)


# --- 3. quantised graphs ----------------------------------------------------------------------


def test_a_quantised_graph_is_refused_with_what_to_check_instead() -> None:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "W")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, dtype=np.uint8), "z")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
             helper.make_node("MatMul", ["xd", "W"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w, scale, zero])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    with pytest.raises(ModelError) as err:
        check_onnx(data)
    text = str(err.value)
    assert "QuantizeLinear" in text and "quantised graph" in text and "before quantisation" in text


# --- 4. the --input-shape example built from the input ------------------------------------------


class _TokenLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(50, 16), nn.GRU(16, 16, batch_first=True), nn.Linear(16, 50)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.emb(tokens))[0])


def test_a_dynamic_sequence_length_is_asked_for_in_the_inputs_own_rank() -> None:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_TokenLM().eval(), (torch.randint(0, 50, (2, 7)),), f, dynamo=False,
                          input_names=["tokens"], dynamic_axes={"tokens": {0: "batch", 1: "seq_len"}})
    with pytest.raises(ModelError) as err:
        check_onnx(f.getvalue())
    text = str(err.value)
    assert "tokens[1] (seq_len)" in text
    # rank 2, its batch the default, the sequence a stand-in named as the file names it
    assert "--input-shape tokens=16x128" in text and "128 standing for seq_len" in text
    assert "224" not in text
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()))


# --- 5. remedies over many layers -------------------------------------------------------------


def test_a_remedy_over_many_layers_names_a_few_and_counts_the_rest() -> None:
    names = [f"linears.{i}" for i in range(100)]
    norm = R.normalisation("batchnorm", names)
    assert "linears.0, linears.1, linears.2, linears.3 and 96 more" in norm.change and "linears.99" not in norm.change
    skip = R.residual_connections(names[:3], resized=["linears.0"])
    assert skip.change.startswith("wrap linears.0, linears.1, linears.2 in skip connections")
    assert "; linears.0 changes the channel or feature count" in skip.change and "1x1 convolution" in skip.change
    assert "projection" not in R.residual_connections(names[:3]).change


def test_the_residual_remedy_of_a_plain_cnn_names_its_channel_changes() -> None:
    torch.manual_seed(4)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1), nn.Sigmoid()]
    for _ in range(6):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 8 * 8, 10)).eval()
    doc = check_onnx(export(model, torch.randn(4, 3, 8, 8)), loss="cross_entropy", verify=False)
    skips = [r for f in doc.findings for r in f.remedies if r.id == "residual_connections"]
    assert skips
    for r in skips:
        # the first conv (3 -> 8 channels) needs a projection; the 8 -> 8 convolutions do not
        resized = r.change.split(";")[1]
        assert resized.startswith(" layer 0 changes the channel or feature count")
        assert "layer 2" not in resized
