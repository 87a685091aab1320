"""Small PyTorch models of the families issue 8 names, and their ONNX export (legacy exporter)."""

from __future__ import annotations

import io
import warnings

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
