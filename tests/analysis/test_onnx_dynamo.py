"""Files from torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, the default since
torch 2.9): their nodes are named ``node_MatMul_1``, weights it folded are ``val_0``, and initializers
with equal values are stored once. Layers are still named as in the model (from the module path
the exporter writes into each node's metadata) and measure what the live model measures."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch import nn

from gradhealth.analysis.module_check import check_module, check_onnx
from tests.analysis.onnx_models import (
    Encoder,
    MobileBlock,
    Residual,
    Sequence,
    TinyGPT,
    UNet,
    cnn,
    mlp,
    token_ids,
)
from tests.analysis.test_onnx import _same

pytest.importorskip("onnxscript")  # the dynamo exporter's own dependency (in the dev extra)


def export_dynamo(model: nn.Module, x: torch.Tensor, optimize: bool = True) -> bytes:
    logging.disable(logging.WARNING)  # the exporter reports each step of its translation
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (x,), dynamo=True, verbose=False, optimize=optimize)
    finally:
        logging.disable(logging.NOTSET)
    assert program is not None
    return bytes(program.model_proto.SerializeToString())


CASES = {
    "sigmoid_mlp": (lambda: mlp(nn.Sigmoid), lambda: torch.randn(8, 64)),
    "residual": (Residual, lambda: torch.randn(8, 16)),
    "lstm": (lambda: Sequence(nn.LSTM), lambda: torch.randn(4, 10, 8)),
    # two layers that start as copies: the exporter stores their weights once
    "transformer_encoder": (Encoder, lambda: token_ids(4, 7)),
    "unet": (UNet, lambda: torch.randn(4, 3, 16, 16)),
    "mobile_block": (MobileBlock, lambda: torch.randn(4, 3, 16, 16)),
    "tiny_gpt": (TinyGPT, lambda: token_ids(4, 8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dynamo_export_agrees_with_the_live_model(case: str) -> None:
    build, make_input = CASES[case]
    torch.manual_seed(0)
    model = build()
    x = make_input()
    data = export_dynamo(model, x)
    live = check_module(model, x, seeds=2, verify=False)
    via_onnx = check_onnx(data, seeds=2, verify=False)
    _same(live, via_onnx)
    assert not any(layer.name.startswith(("node_", "val_")) for layer in via_onnx.layers)


def test_the_encoder_layers_are_told_apart() -> None:
    torch.manual_seed(0)
    model = Encoder()
    doc = check_onnx(export_dynamo(model, token_ids(4, 7)), seeds=1, verify=False)
    names = [layer.name for layer in doc.layers]
    assert names == ["emb"] + [f"enc.layers.{i}.{p}" for i in range(2) for p in
                               ("self_attn", "self_attn.out_proj", "linear1", "linear2")] + ["head"]


def test_batchnorm_is_kept_with_optimize_off_and_measured_as_in_training() -> None:
    # optimize=True (the default) folds BatchNorm into the convolution (an inference graph) and
    # says so on the node: the check restores it (PyTorch's initial affine); with optimize=False
    # the file keeps it. Either way the check measures the training network
    torch.manual_seed(0)
    model = cnn()
    x = torch.randn(8, 3, 8, 8)
    live = check_module(model, x, seeds=2, verify=False)
    kept = check_onnx(export_dynamo(model, x, optimize=False), seeds=2, verify=False)
    _same(live, kept)
    folded = check_onnx(export_dynamo(model, x), seeds=2, verify=False)
    assert [layer.name for layer in folded.layers] == [layer.name for layer in live.layers]
    # the folded weight is W / sqrt(1 + eps) (running variance 1): equal to 1e-5, not exactly
    assert [layer.grad_norm for layer in folded.layers] == pytest.approx(
        [layer.grad_norm for layer in live.layers], rel=1e-3)


class TanhRNN(nn.Module):
    """nn.RNN under a last-position readout: the dynamo exporter unrolls it into one MatMul and
    Tanh per step (no RNN node), the recurrent weight stored once per step."""

    def __init__(self, hidden: int = 32, gain: float = 0.5, nonlinearity: str = "tanh", **kw: object) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, hidden, batch_first=True, nonlinearity=nonlinearity, **kw)  # type: ignore[arg-type]
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.orthogonal_(p, gain)  # every singular value = gain: dL/dh_t shrinks by <= gain per step
        self.head = nn.Linear(hidden * (2 if self.rnn.bidirectional else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


def _series(doc: object) -> dict[tuple[str, int], list[float]]:
    out: dict[tuple[str, int], list[float]] = {}
    for t in doc.time_steps:  # type: ignore[attr-defined]
        out.setdefault((t.layer, t.sublayer), []).append(t.output_grad_norm)
    return out


def _exported_rnn(gain: float, steps: int) -> tuple[TanhRNN, torch.Tensor, bytes]:
    """A :class:`TanhRNN` at ``gain``, an input of ``steps`` steps and the dynamo exporter's file."""
    torch.manual_seed(0)
    model = TanhRNN(gain=gain)
    x = torch.randn(4, steps, 8)
    return model, x, export_dynamo(model, x)


def test_an_unrolled_rnn_is_measured_through_time_as_the_live_module_is() -> None:
    model, x, data = _exported_rnn(0.5, 40)
    via_onnx = check_onnx(data, seeds=2, verify=False)
    live = check_module(model, x, seeds=2, verify=False)
    # the same dL/dh_t, step by step, as the live module unrolled by the check itself
    onnx_steps, live_steps = _series(via_onnx), _series(live)
    assert list(onnx_steps) == [("rnn", 0)] and list(live_steps) == [("rnn", 0)]
    assert onnx_steps[("rnn", 0)] == pytest.approx(live_steps[("rnn", 0)], rel=1e-6)
    # 0.5 per step at most, over 38 steps: an error, named as a recurrence, not as depth
    assert [f.code for f in via_onnx.findings] == [f.code for f in live.findings] == ["vanishing_through_time"]
    finding = via_onnx.findings[0]
    extra = finding.evidence.model_dump()
    assert finding.severity == "error" and extra["sequence_length"] == 40
    assert extra["per_step_factor"] <= 0.5


def test_the_steps_of_an_unrolled_rnn_are_not_depth() -> None:
    # a bidirectional layer: two chains, one per direction, each read in the order it runs;
    # healthy at gain 1 over a short sequence
    torch.manual_seed(0)
    model = TanhRNN(gain=1.0, bidirectional=True)
    x = torch.randn(4, 6, 8)
    doc = check_onnx(export_dynamo(model, x), seeds=2, verify=False)
    assert set(_series(doc)) == {("rnn", 0), ("rnn", 1)}
    assert all(len(v) == 6 for v in _series(doc).values())
    assert doc.status == "healthy", [f.summary for f in doc.findings]
    kinds = {layer.name: layer.type for layer in doc.layers}
    assert kinds["rnn"] == "rnn" and kinds["head"] == "linear"


def test_separate_weights_of_one_shape_are_depth_not_time() -> None:
    # a tanh MLP of square layers has the same op pattern step to step, but every layer has
    # weights of its own: a deep net, not a recurrence
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(16, 16)]
    for _ in range(6):
        layers += [nn.Tanh(), nn.Linear(16, 16)]
    doc = check_onnx(export_dynamo(nn.Sequential(*layers), torch.randn(8, 16)), seeds=1, verify=False)
    assert doc.time_steps == []
    assert all(layer.type != "rnn" for layer in doc.layers)


def test_orthogonal_init_is_verified_on_an_unrolled_rnn_and_reinitialising_keeps_one_weight() -> None:
    from gradhealth.analysis.importers.onnx import import_onnx

    _, _, data = _exported_rnn(0.3, 30)
    doc = check_onnx(data, seeds=1, verify=True)
    finding = next(f for f in doc.findings if f.code == "vanishing_through_time")
    remedy = next(r for r in finding.remedies if r.id == "orthogonal_init")
    assert remedy.verified is not None and remedy.verified.after is not None
    # every step's copy set to one orthogonal matrix: far less shrinking than at gain 0.3
    assert remedy.verified.before is not None and remedy.verified.after > 1e6 * remedy.verified.before
    module = import_onnx(data).module
    (links, projections), = module.recurrent_links
    assert len(links) == 29 and len(projections) == 1
    module.reinitialise()
    first = module.ops[links[0]].weight
    assert all(torch.equal(module.ops[i].weight, first) for i in links)
    # nn.RNN's init for every weight of it: U(+-1/sqrt(hidden))
    largest = float(module.ops[projections[0]].weight.detach().abs().max())
    assert 0.9 / 32 ** 0.5 < largest <= 1 / 32 ** 0.5
