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
