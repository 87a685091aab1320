"""Small PyTorch models of the families issue 8 names, and their ONNX export (legacy exporter)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn


def export(model: nn.Module, x: torch.Tensor, train: bool = False, opset: int | None = None) -> bytes:
    """``torch.onnx.export`` (TorchScript exporter: offline, needs only ``onnx``) to bytes."""
    f = io.BytesIO()
    kwargs: dict = ({"training": torch.onnx.TrainingMode.TRAINING, "do_constant_folding": False}
                    if train else {})
    if opset is not None:
        kwargs["opset_version"] = opset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and tracer notes
        torch.onnx.export(model, (x,), f, dynamo=False, **kwargs)
    return f.getvalue()


def token_ids(batch: int, length: int, vocab: int = 50) -> torch.Tensor:
    """Token ids with the table's last row among them: the live door draws its synthetic ids
    below the example's largest id + 1, the ONNX door below the table's size; they agree then."""
    ids = torch.randint(0, vocab, (batch, length))
    ids[0, 0] = vocab - 1
    return ids


def mlp(act: type[nn.Module], depth: int = 8, width: int = 64, he: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        if he:
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            nn.init.zeros_(lin.bias)
        layers += [lin, act()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).train()


class Residual(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.fc1 = nn.Linear(width, width)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(width, width)
        self.out = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(h + self.fc2(self.act(self.fc1(h))))


class Sequence(nn.Module):
    def __init__(self, cell: type[nn.RNNBase] = nn.LSTM, hidden: int = 16, num_layers: int = 1) -> None:
        super().__init__()
        self.rnn = cell(8, hidden, batch_first=True, num_layers=num_layers)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


class Encoder(nn.Module):
    """Token ids -> embedding -> ``nn.TransformerEncoder`` -> mean over positions -> classes."""

    def __init__(self, vocab: int = 50, width: int = 16, depth: int = 2,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 2, 32, batch_first=True, activation=activation)
        self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(x)).mean(1))


def upsampler() -> nn.Sequential:
    """A decoder's upsampling: transposed convolutions (stride 2, padding, output padding)."""
    return nn.Sequential(nn.ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1),
                         nn.ReLU(),
                         nn.ConvTranspose2d(6, 4, 2, stride=2), nn.Tanh(), nn.Flatten(),
                         nn.Linear(4 * 16 * 16, 5))


# --- families whose exports use the ops added for real models (Resize, norms, PRelu, ...) ------

class UNet(nn.Module):
    """Two levels, skip connection by Concat; upsampled by nearest and by bilinear Resize."""

    def __init__(self) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.down2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.near = nn.Upsample(scale_factor=2, mode="nearest")
        self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.up = nn.Conv2d(16 + 8, 8, 3, padding=1)
        self.up_act = nn.ReLU()
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(a)
        u = self.near(b) + self.bilinear(b)
        return self.out(self.up_act(self.up(torch.cat([u, a], 1)))).mean((2, 3))


class GroupNormResidual(nn.Module):
    """GroupNorm (exported as Reshape + InstanceNormalization + Mul/Add) and InstanceNorm2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.act = nn.SiLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.conv2(self.inorm(self.act(self.gn(self.conv1(x)))))
        return self.head(h.mean((2, 3)))


class MobileBlock(nn.Module):
    """MobileNetV3-style: Hardswish, depthwise conv with ReLU6, PReLU, squeeze-and-excite."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.hswish = nn.Hardswish()
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.relu6 = nn.ReLU6()
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.prelu = nn.PReLU(16)
        self.se1, self.se_act, self.se2 = nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1)
        self.gate = nn.Hardsigmoid()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hswish(self.stem(x))
        h = self.prelu(self.pointwise(self.relu6(self.depthwise(h))))
        pooled = nn.functional.adaptive_avg_pool2d(h, 1)
        h = h * self.gate(self.se2(self.se_act(self.se1(pooled))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class TinyGPT(nn.Module):
    """A causal decoder block: learned positions, one qkv projection split in three (Split), a
    triu mask (Trilu), softmax attention, a GELU feed-forward (``approximate``: GPT-2's "tanh")."""

    def __init__(self, vocab: int = 50, length: int = 8, width: int = 32, heads: int = 4,
                 approximate: str = "none") -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(length, width) * 0.02)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate=approximate),
                                nn.Linear(4 * width, width))
        self.head = nn.Linear(width, vocab)
        self.heads = heads

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx) + self.pos
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        b, t, d = q.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        x = x + self.ff(self.ln2(x))
        return self.head(x).mean(1)


class Odds(nn.Module):
    """Reflection padding (Pad), Mish, a flip (Slice with step -1), a max over time (ReduceMax),
    GLU (Split), an elementwise maximum (Max), rsqrt and Softsign."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3)
        self.glu = nn.Linear(8, 16)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.mish(self.conv(nn.functional.pad(x, (1, 1), mode="reflect")))
        h = torch.flip(h, dims=[2]).amax(dim=2)
        h = nn.functional.glu(self.glu(h), dim=-1)
        h = torch.maximum(h, 0.1 * h) + torch.rsqrt(h * h + 1)
        return self.fc(nn.functional.softsign(h))


class WeightNormed(nn.Module):
    """A dilated 1-d conv net (WaveNet-like) whose first conv is weight-normalised: its weight is
    computed from g and v at each forward (a parametrization); exporters fold it into the file."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 8, 3, dilation=2, padding=2))
        self.act = nn.ReLU()
        self.c2 = nn.Conv1d(8, 8, 3, dilation=4, padding=4)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c2(self.act(self.c1(x))).mean(2))


class MaskedEncoder(nn.Module):
    """A BERT-style encoder taking token ids and an integer attention mask (1: a token, 0: padding)."""

    def __init__(self, vocab: int = 50, width: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, 4)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.emb(ids)).chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1) / 4.0 + (1.0 - mask[:, None, :].to(q.dtype)) * -10000.0
        return self.out(scores.softmax(-1) @ v).mean(1)


class Unmasked(MaskedEncoder):
    """``MaskedEncoder(ids, mask of ones)``: what the check of the two-input model must measure."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(ids, torch.ones_like(ids) if mask is None else mask)


def aligned_relu_mlp(rng: np.random.Generator, aligned: float, *, noise: float, width: int = 64,
                     depth: int = 4, outputs: int = 1) -> bytes:
    """An ONNX graph x [N, width] -> depth x (width relu) -> ``outputs``: each hidden weight
    ``aligned`` times a rank-2 projection onto directions that line up layer after layer (as
    training aligns them), plus i.i.d. N(0, noise^2) entries that set the weights' scale; the
    gradient grows along the aligned directions though the entries are small. ``rng``: the caller's
    generator (its draws, in this order: the directions, each layer's noise, the readout)."""
    from onnx import TensorProto, helper, numpy_helper

    def t(name: str, a: object) -> object:
        return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)

    q, _ = np.linalg.qr(np.abs(rng.standard_normal((width, 2))))
    inits, nodes, prev = [], [], "x"
    for k in range(depth):
        w = aligned * (q @ q.T) + rng.standard_normal((width, width)) * noise
        inits += [t(f"W{k}", w.T), t(f"b{k}", np.zeros(width))]
        nodes += [helper.make_node("MatMul", [prev, f"W{k}"], [f"m{k}"], name=f"fc{k}"),
                  helper.make_node("Add", [f"m{k}", f"b{k}"], [f"a{k}"], name=f"add{k}"),
                  helper.make_node("Relu", [f"a{k}"], [f"h{k}"], name=f"relu{k}")]
        prev = f"h{k}"
    inits += [t("Wo", rng.standard_normal((width, outputs)) * 0.1)]
    nodes.append(helper.make_node("MatMul", [prev, "Wo"], ["y"], name="out"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outputs])], inits)
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
