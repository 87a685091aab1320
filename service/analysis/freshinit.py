"""Whether a model file's stored weights are a fresh initialisation rather than trained ones.

A file exported straight after construction (to check an architecture before training it) holds
weights drawn from an init distribution, and a checkpoint's training moves them off it. Each layer's
weights are tested against the common init families of their own fan-in and fan-out, within the
sampling error of their count: a uniform one (torch's default U(+-1/sqrt(fan_in)), Glorot's,
He's, LeCun's) by its bound, which no weight exceeds and the largest nearly reaches, and its
spread; a normal one (N(0, 1), He's, LeCun's, Glorot's, N(0, 0.01^2), N(0, 0.02^2)) by its mean,
spread and kurtosis. Biases must be 0 or lie within torch's default bound. The file reads as freshly
initialised only where every layer with enough weights to tell matches one family: training that
moved any layer off its init makes it a checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

#: A layer with fewer weights than this tells nothing either way (skipped).
MIN_WEIGHTS = 64
#: A normal family is judged on at least this many weights (its shape test is weak below).
MIN_NORMAL = 256
#: How many standard errors of its count a statistic may stray from the family's value.
SIGMAS = 5.0


@dataclass(frozen=True)
class Layer:
    weight: torch.Tensor
    bias: torch.Tensor | None
    fan_in: int
    fan_out: int


def _uniform_bounds(fan_in: int, fan_out: int) -> dict[str, float]:
    return {"torch's default U(+-1/sqrt(fan_in))": 1.0 / math.sqrt(fan_in),
            "Glorot uniform": math.sqrt(6.0 / (fan_in + fan_out)),
            "He uniform": math.sqrt(6.0 / fan_in),
            "LeCun uniform": math.sqrt(3.0 / fan_in)}


def _normal_stds(fan_in: int, fan_out: int) -> dict[str, float]:
    return {"N(0, 1)": 1.0, "He normal": math.sqrt(2.0 / fan_in), "LeCun normal": math.sqrt(1.0 / fan_in),
            "Glorot normal": math.sqrt(2.0 / (fan_in + fan_out)), "N(0, 0.01^2)": 0.01, "N(0, 0.02^2)": 0.02}


def layer_family(layer: Layer) -> str | None:
    """The init family ``layer``'s weights (and bias) are a draw of; None where none fits, or
    where the layer has too few weights to tell (:data:`MIN_WEIGHTS`)."""
    w = layer.weight.detach().double().flatten()
    n = w.numel()
    if n < MIN_WEIGHTS or layer.fan_in <= 0 or not bool(torch.isfinite(w).all()):
        return None
    if not _bias_fresh(layer):
        return None
    top = float(w.abs().max())
    mean = float(w.mean())
    std = float(w.std())
    for name, bound in _uniform_bounds(layer.fan_in, max(layer.fan_out, 1)).items():
        # no weight past the bound (float32 rounding aside), the largest within a few gaps of
        # it (n draws leave a gap of about bound / n), and a spread of bound / sqrt(3)
        if (top <= bound * (1 + 1e-5) and top >= bound * (1 - 2 * SIGMAS / n)
                and abs(std / (bound / math.sqrt(3.0)) - 1) <= SIGMAS * 0.45 / math.sqrt(n)):
            return name
    if n < MIN_NORMAL or std <= 0:
        return None
    kurtosis = float(((w - mean) ** 4).mean()) / std ** 4
    for name, s in _normal_stds(layer.fan_in, max(layer.fan_out, 1)).items():
        if (abs(std / s - 1) <= SIGMAS / math.sqrt(2 * n) and abs(mean) <= SIGMAS * s / math.sqrt(n)
                and abs(kurtosis - 3.0) <= SIGMAS * math.sqrt(24.0 / n)):
            return name
    return None


def _bias_fresh(layer: Layer) -> bool:
    """A bias as an init leaves it: none, all 0, or within torch's default U(+-1/sqrt(fan_in))."""
    b = layer.bias
    if b is None or b.numel() == 0:
        return True
    b = b.detach().double()
    if not bool(torch.isfinite(b).all()):
        return False
    return bool((b == 0).all()) or float(b.abs().max()) <= (1 + 1e-5) / math.sqrt(layer.fan_in)


def layers_of(module: nn.Module) -> list[Layer]:
    """The weighted layers of ``module``: an imported ONNX graph's nodes that have a weight
    (their ``fan()``), and torch's own Linear and convolution modules (a Keras file built in torch)."""
    from gradhealth.analysis.importers.onnx import Op

    out: list[Layer] = []
    for m in module.modules():
        if isinstance(m, Op):
            weight, fan_in, fan_out = m.fan()
            if weight is not None and fan_in and fan_out:
                bias = getattr(m, "bias", None)
                out.append(Layer(weight, bias if isinstance(bias, torch.Tensor) else None, fan_in, fan_out))
        elif isinstance(m, nn.Linear):
            out.append(Layer(m.weight, m.bias, m.in_features, m.out_features))
        elif isinstance(m, nn.modules.conv._ConvNd):
            w = m.weight
            receptive = w[0][0].numel()
            out.append(Layer(w, m.bias, int(w.shape[1]) * receptive, int(w.shape[0]) * receptive))
    return out


def fresh_init(module: nn.Module) -> dict[str, int] | None:
    """The init families (name -> layers) every layer of ``module`` large enough to tell matches,
    where all do and at least one was judged; None where any layer's weights are off every family
    (trained, or an init this does not know: read as a checkpoint)."""
    found: dict[str, int] = {}
    for layer in layers_of(module):
        if layer.weight.numel() < MIN_WEIGHTS:
            continue
        family = layer_family(layer)
        if family is None:
            return None
        found[family] = found.get(family, 0) + 1
    return found or None


def fresh_note(families: dict[str, int]) -> str:
    """The note saying the stored weights were read as a fresh initialisation."""
    total = sum(families.values())
    drawn = ", ".join(f"{name} ({count})" if len(families) > 1 else name for name, count in families.items())
    return (f"the stored weights look freshly initialised, not trained: each of the {total} layers' weights "
            f"matches an init draw of its own fan-in ({drawn}) within sampling error, so they are checked as "
            "an initialisation and its remedies are fixes to apply before training")
