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

A few epochs at a small rate barely move a kernel's spread, so the other parameters count as well
(kerassweep28: a trained SimpleRNN file was read as fresh from one Dense kernel): a bias must be as
an init leaves it (constant, Keras' zeros or an LSTM's forget-gate ones, per gate; or a draw of
torch's default bound, by its spread too); an embedding a draw of Keras' default U(+-0.05), torch's
N(0, 1) or a small normal; a recurrent kernel still orthogonal (every singular value the same, as
Keras' default draws it) or a draw of torch's default U(+-1/sqrt(hidden)) or another family.
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


def layer_family(layer: Layer, extra: dict[str, float] | None = None) -> str | None:
    """The init family ``layer``'s weights (and bias) are a draw of; None where none fits, or
    where the layer has too few weights to tell (:data:`MIN_WEIGHTS`). ``extra``: more uniform
    families by their bound (an RNN's torch default U(+-1/sqrt(hidden)))."""
    w = layer.weight.detach().double().flatten()
    n = w.numel()
    if n < MIN_WEIGHTS or layer.fan_in <= 0 or not bool(torch.isfinite(w).all()):
        return None
    if not _bias_fresh(layer.bias, 1.0 / math.sqrt(layer.fan_in)):
        return None
    return _family(w, {**_uniform_bounds(layer.fan_in, max(layer.fan_out, 1)), **(extra or {})},
                   _normal_stds(layer.fan_in, max(layer.fan_out, 1)))


def _family(w: torch.Tensor, bounds: dict[str, float], stds: dict[str, float]) -> str | None:
    """The uniform (by its bound) or normal (by its std) family the flat float64 ``w`` is a draw of."""
    n = w.numel()
    if n < MIN_WEIGHTS or not bool(torch.isfinite(w).all()):
        return None
    top = float(w.abs().max())
    mean = float(w.mean())
    std = float(w.std())
    for name, bound in bounds.items():
        # no weight past the bound (float32 rounding aside), the largest within a few gaps of
        # it (n draws leave a gap of about bound / n), and a spread of bound / sqrt(3)
        if (top <= bound * (1 + 1e-5) and top >= bound * (1 - 2 * SIGMAS / n)
                and abs(std / (bound / math.sqrt(3.0)) - 1) <= SIGMAS * 0.45 / math.sqrt(n)):
            return name
    if n < MIN_NORMAL or std <= 0:
        return None
    kurtosis = float(((w - mean) ** 4).mean()) / std ** 4
    for name, s in stds.items():
        if (abs(std / s - 1) <= SIGMAS / math.sqrt(2 * n) and abs(mean) <= SIGMAS * s / math.sqrt(n)
                and abs(kurtosis - 3.0) <= SIGMAS * math.sqrt(24.0 / n)):
            return name
    return None


#: A bias drawn from torch's default bound is judged by its spread from this many values on (fewer
#: tell little: the bound alone is checked).
MIN_BIAS_SPREAD = 8


def _bias_fresh(bias: torch.Tensor | None, bound: float, gates: int = 1) -> bool:
    """A bias as an init leaves it: none; 0 or 1 throughout each of its ``gates`` chunks (Keras'
    zeros, an LSTM's unit_forget_bias ones); or a draw of torch's default U(+-``bound``): none past
    it and, from :data:`MIN_BIAS_SPREAD` values on, the spread bound / sqrt(3) within sampling error.
    A trained bias (small values of every size, nonzero) is none of these."""
    if bias is None or bias.numel() == 0:
        return True
    b = bias.detach().double().flatten()
    if not bool(torch.isfinite(b).all()):
        return False
    chunks = b.chunk(gates) if gates > 1 and b.numel() % gates == 0 else [b]
    if all(bool((c == c[0]).all()) and float(c[0]) in (0.0, 1.0) for c in chunks):
        return True
    n = b.numel()
    if float(b.abs().max()) > (1 + 1e-5) * bound:
        return False
    return n < MIN_BIAS_SPREAD or abs(float(b.std()) / (bound / math.sqrt(3.0)) - 1) <= SIGMAS * 0.45 / math.sqrt(n)


def _orthogonal(w: torch.Tensor) -> bool:
    """Whether the matrix ``w`` is orthogonal at some gain: all its singular values the same
    (float32 round-off aside), as Keras' default ``Orthogonal`` recurrent kernel is drawn."""
    if w.dim() != 2 or min(w.shape) < 2:
        return False
    sv = torch.linalg.svdvals(w.detach().double())
    return bool(sv[0] > 0) and float(sv[-1] / sv[0]) >= 1 - 1e-4


#: The families an embedding's table is drawn from: Keras' default U(+-0.05), torch's N(0, 1) and
#: the small normals of transformer code
_EMBEDDING_BOUNDS = {"Keras' default U(+-0.05)": 0.05}
_EMBEDDING_STDS = {"N(0, 1)": 1.0, "N(0, 0.02^2)": 0.02, "N(0, 0.01^2)": 0.01}


def _recurrent_families(rnn: nn.RNNBase) -> list[str | None]:
    """The init family of each weight matrix of ``rnn`` (None: off every one, so trained), its
    biases judged with the input-side matrix; matrices too small to tell are left out."""
    h = rnn.hidden_size
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    params = dict(rnn.named_parameters())
    out: list[str | None] = []
    for name, w in params.items():
        if not name.startswith("weight_") or w.numel() < MIN_WEIGHTS:
            continue
        side = name.split("_")[1]  # ih or hh
        bias = params.get(name.replace("weight_", "bias_"))
        if not _bias_fresh(bias, 1.0 / math.sqrt(h), gates):
            out.append(None)
            continue
        if side == "hh" and _orthogonal(w):
            out.append("orthogonal")
            continue
        fan_in, fan_out = int(w.shape[1]), int(w.shape[0])
        family = _family(w.detach().double().flatten(),
                         {**_uniform_bounds(fan_in, fan_out), "torch's default U(+-1/sqrt(hidden))": 1.0 / math.sqrt(h)},
                         _normal_stds(fan_in, fan_out))
        if family is not None and side == "hh" and not _iid_spectrum(w):
            family = None  # an orthogonal kernel that training moved: entries of a draw's spread,
        out.append(family)  # but not a draw's spectrum
    return out


#: Matrices this small in either side are not judged by their spectrum (its edge fluctuates more).
MIN_SPECTRUM = 16
#: How far the largest singular value of an iid draw may stray from its Marchenko-Pastur edge
#: s (sqrt(m) + sqrt(n)): its Tracy-Widom fluctuation is about 5% at 16 x 16, less above.
SPECTRUM_TOLERANCE = 0.2


def _iid_spectrum(w: torch.Tensor) -> bool:
    """Whether the largest singular value of ``w`` is an iid draw's, s (sqrt(m) + sqrt(n)) for its
    entries' spread s: a trained recurrent kernel that started orthogonal keeps every singular value
    near 1 with entries of the same spread as a Glorot draw (kerassweep28: sv_max 1.69 where a draw
    reaches 2.0), which its entries' statistics alone cannot tell."""
    m, n = (int(d) for d in w.shape)
    if min(m, n) < MIN_SPECTRUM:
        return True
    x = w.detach().double()
    edge = float(x.std()) * (math.sqrt(m) + math.sqrt(n))
    return edge > 0 and abs(float(torch.linalg.svdvals(x)[0]) / edge - 1) <= SPECTRUM_TOLERANCE


def _other_families(module: nn.Module) -> list[str | None]:
    """The init families of ``module``'s embeddings and recurrent layers (None: trained)."""
    out: list[str | None] = []
    for m in module.modules():
        if isinstance(m, nn.Embedding) and m.weight.numel() >= MIN_WEIGHTS:
            out.append(_family(m.weight.detach().double().flatten(), _EMBEDDING_BOUNDS, _EMBEDDING_STDS))
        elif isinstance(m, nn.RNNBase):
            out.extend(_recurrent_families(m))
    return out


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
    (trained, or an init this does not know: read as a checkpoint). Embeddings and recurrent layers
    count too, and a bias moved off its init (:func:`_bias_fresh`) is a sign of training whatever
    its layer's size."""
    found: dict[str, int] = {}
    for layer in layers_of(module):
        if layer.weight.numel() < MIN_WEIGHTS:
            if not _bias_fresh(layer.bias, 1.0 / math.sqrt(max(layer.fan_in, 1))):
                return None
            continue
        family = layer_family(layer)
        if family is None:
            return None
        found[family] = found.get(family, 0) + 1
    for other in _other_families(module):
        if other is None:
            return None
        found[other] = found.get(other, 0) + 1
    return found or None


def fresh_note(families: dict[str, int]) -> str:
    """The note saying the stored weights were read as a fresh initialisation."""
    total = sum(families.values())
    drawn = ", ".join(f"{name} ({count})" if len(families) > 1 else name for name, count in families.items())
    which = "the one weight matrix large enough to judge matches" if total == 1 else \
        f"each of the {total} weight matrices large enough to judge matches"
    return (f"the stored weights look freshly initialised, not trained: {which} an init draw of its own "
            f"fan-in ({drawn}) within sampling error and every bias is as an init leaves it, so they are "
            "checked as an initialisation and any remedies are fixes to apply before training")
