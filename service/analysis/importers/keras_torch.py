"""A Keras graph (:mod:`.keras_graph`) built in PyTorch and checked through the graph simulation.

The network keeps Keras' channels-last tensors from end to end, so every layer computes what
Keras computes in the order Keras computes it (a Flatten's order, a Dense on the channels axis, a
Concatenate's axis) and stored weights go in with no permutation but their own layout's; only a
convolution or a pooling moves the channels to torch's axis 1 around its kernel. Weights are the
file's (``as_given``) or drawn from each seed with the initialisers the config names, by Keras'
formulas (fans of Keras' kernel layouts, truncated normals rescaled by .8796...).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradhealth.analysis.cells import gate, mark
from gradhealth.analysis.freshinit import fresh_init, fresh_note
from gradhealth.analysis.graph import Role, role_of, run_recurrent
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import load_recurrent, loss_type, no_weights, passes_values
from gradhealth.analysis.importers.keras_graph import (
    _CONVS,
    _GLOBAL,
    _MERGES,
    _POOLS,
    _TRANSPOSED,
    ATTENTION_PARTS,
    DISTANCE,
    IDENTITY_LAYERS,
    NORMALIZATION_EPSILON,
    RECURRENT,
    TIME_DISTRIBUTED,
    KerasGraph,
    Node,
    _activation,
    _axis,
    _ints,
    _padding_pairs,
    conv_padding,
    dot_axes,
    frame_config,
    recurrent_cell,
    recurrent_gates,
    spec_gate,
    transposed_padding,
    window,
)

__all__ = ["KerasNet", "check_keras_graph", "draw_initializer"]

#: Keras divides a truncated normal's std by this (the std of N(0, 1) cut at +-2) to keep the
#: variance at scale / fan (keras.initializers.VarianceScaling).
TRUNCATION_STD = 0.87962566103423978


def _act_module(name: str, keras2: bool = False) -> nn.Module:
    """The activation ``name`` means in Keras 3, or in Keras 2 (``keras2``), where hard_sigmoid
    was 0.2x + 0.5 rather than relu6(x + 3) / 6."""
    if name == "hard_sigmoid" and keras2:
        return _Fn(functools.partial(gate, "hard_sigmoid_keras2"))
    simple: dict[str, Any] = {
        "linear": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh, "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU, "swish": nn.SiLU,
        "silu": nn.SiLU, "softplus": nn.Softplus, "softsign": nn.Softsign,
        "hard_sigmoid": nn.Hardsigmoid, "hard_swish": nn.Hardswish, "hard_silu": nn.Hardswish,
        "mish": nn.Mish}
    if name in simple:
        return cast(nn.Module, simple[name]())
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)  # keras.activations.leaky_relu's default slope
    if name == "softmax":
        return nn.Softmax(dim=-1)
    return _Fn(torch.exp)  # exponential


class _Fn(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.fn(*xs))


class _ChannelsLast(nn.Module):
    """A torch kernel (convolutions, pooling, resizing) applied to a channels-last tensor, with
    Keras' padding (asymmetric for ``same`` with strides) applied first."""

    def __init__(self, body: nn.Module, pads: list[int], fill: float = 0.0) -> None:
        super().__init__()
        self.body, self.pads, self.fill = body, pads, fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(-1, 1)
        if any(self.pads):
            x = F.pad(x, self.pads, value=self.fill)
        return cast(torch.Tensor, self.body(x)).movedim(1, -1)


class _AvgPoolSame(nn.Module):
    """Average pooling with ``same`` padding as Keras does it: over the window's real values only."""

    def __init__(self, pool: nn.Module, pads: list[int]) -> None:
        super().__init__()
        self.pool, self.pads = pool, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:1, :1])
        return cast(torch.Tensor, self.pool(F.pad(x, self.pads)) / self.pool(F.pad(ones, self.pads)))


class _Norm(nn.Module):
    """A BatchNormalization over any axis of a channels-last tensor: the axis moved last and the
    rest flattened, which is what batch statistics over every other axis are."""

    def __init__(self, bn: nn.BatchNorm1d, axis: int) -> None:
        super().__init__()
        self.bn, self.axis = bn, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and self.axis == 1:  # a Dense's output: the norm reads that very tensor
            return cast(torch.Tensor, self.bn(x))
        y = x.movedim(self.axis, -1)
        shape = y.shape
        return cast(torch.Tensor, self.bn(y.reshape(-1, shape[-1]))).reshape(shape).movedim(-1, self.axis)


class _Scale(nn.Module):
    """x * gamma (ConvNeXt's LayerScale) or PReLU's relu(x) - alpha relu(-x)."""

    def __init__(self, shape: tuple[int, ...], prelu: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))
        self.prelu = prelu
        if not prelu:
            # a layer scale is part of the layer it scales, as a norm is: the Tracer folds it
            # into that unit, whose gradient is then the residual stream's, not 1e-6 of it
            self.role = Role("norm", "layerscale")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prelu:
            return F.relu(x) - self.weight * F.relu(-x)
        return x * self.weight


class _Affine(nn.Module):
    """Rescaling (x * scale + offset) and an adapted Normalization ((x - mean) / sqrt(variance))."""

    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, scale: Any, offset: Any) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64))
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


class _Merge(nn.Module):
    """The merge layers (and Keras 3's arithmetic ops), over tensors and numbers in call order."""

    def __init__(self, cls: str, axis: int, args: list[str | float] | None = None,
                 scale: float = 1.0) -> None:
        super().__init__()
        self.cls, self.axis, self.scale = cls, axis, scale
        self.constants = [a if isinstance(a, float) else None for a in args] if args else None

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.cls == "Concatenate":
            return torch.cat(tensors, dim=self.axis)
        if self.cls == "CustomScaleLayer":
            return tensors[0] + tensors[1] * self.scale
        it = iter(tensors)
        xs: list[Any] = ([next(it) if c is None else c for c in self.constants] if self.constants
                         else list(tensors))
        out = xs[0]
        for x in xs[1:]:
            out = (out + x if self.cls in ("Add", "Average") else out - x if self.cls == "Subtract"
                   else out * x if self.cls == "Multiply" else out / x
                   if self.cls in ("Divide", "TrueDivide") else torch.maximum(out, torch.as_tensor(x))
                   if self.cls == "Maximum" else torch.minimum(out, torch.as_tensor(x)))
        return cast(torch.Tensor, out / len(xs) if self.cls == "Average" else out)


class _Distance(nn.Module):
    """A distance Lambda's stand-in: sqrt(max(sum((a - b)^2), eps)) over the last axis (Keras'
    siamese example, with its epsilon 1e-7 under the root), its last axis kept or not."""

    def __init__(self, keepdims: bool) -> None:
        super().__init__()
        self.keepdims = keepdims

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        squared = torch.sum((a - b) ** 2, dim=-1, keepdim=self.keepdims)
        return torch.sqrt(torch.clamp(squared, min=1e-7))


class _Dot(nn.Module):
    """Keras' Dot: the sum of products over one axis of each input (L2-normalised along it first
    with ``normalize``: cosine similarity), the other axes kept in order (batch_dot)."""

    def __init__(self, axes: tuple[int, int], normalize: bool) -> None:
        super().__init__()
        self.axes, self.normalize = axes, normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = self.axes[0] + 1, self.axes[1] + 1  # past the batch axis
        if self.normalize:  # keras.ops.normalize: x / max(||x||, 1e-12)
            x, y = F.normalize(x, dim=a, eps=1e-12), F.normalize(y, dim=b, eps=1e-12)
        x, y = x.movedim(a, -1), y.movedim(b, -1)  # the contracted axis last in both
        if x.dim() == 2 and y.dim() == 2:
            return (x * y).sum(-1, keepdim=True)
        return torch.einsum("b...k,bmk->b...m", x, y) if y.dim() == 3 else torch.einsum("bnk,bk->bn", x, y)


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...], permute: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.shape, self.permute = shape, permute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.permute is not None:
            return x.permute(0, *self.permute)
        return x.reshape(x.shape[0], *self.shape)


class _Slice(nn.Module):
    """Cropping: a slice of every spatial axis."""

    def __init__(self, pairs: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.pairs = pairs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index: list[slice] = [slice(None)]
        index += [slice(a, x.shape[k + 1] - b) for k, (a, b) in enumerate(self.pairs)]
        return x[tuple(index)]


class _Attention(nn.Module):
    """Keras' MultiHeadAttention over the timesteps: query, key and value projections per head
    (each an ``nn.Linear`` of heads x size features), softmax(q k^T / sqrt(key_dim)) (causal where
    the call asked for it), and the output projection. Dropout is left out, as everywhere."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        shapes = dict(node.weights)
        (dq, h, k), (dv, _, v) = shapes["query_kernel"], shapes["value_kernel"]
        bias = "query_bias" in shapes
        self.heads, self.key_dim, self.value_dim = h, k, v
        self.causal = bool(node.cfg.get("_causal"))
        self.query = nn.Linear(dq, h * k, bias=bias)
        self.key = nn.Linear(shapes["key_kernel"][0], h * k, bias=bias)
        self.value = nn.Linear(dv, h * v, bias=bias)
        self.output = nn.Linear(h * v, shapes["output_kernel"][-1], bias=bias)

    def forward(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        b, t, s = query.shape[0], query.shape[1], value.shape[1]
        q = self.query(query).view(b, t, self.heads, self.key_dim) / math.sqrt(self.key_dim)
        kk = self.key(key).view(b, s, self.heads, self.key_dim)
        vv = self.value(value).view(b, s, self.heads, self.value_dim)
        scores = torch.einsum("bthd,bshd->bhts", q, kk)
        if self.causal:
            scores = scores.masked_fill(torch.ones(t, s, dtype=torch.bool, device=scores.device).triu(1),
                                        float("-inf"))
        out = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), vv)
        return cast(torch.Tensor, self.output(out.reshape(b, t, self.heads * self.value_dim)))


class _Recurrent(nn.Module):
    """SimpleRNN/LSTM/GRU, or a Bidirectional one (directions concatenated), over [batch, time,
    features]: the whole sequence, or the last output (each direction's final state)."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        cls, cfg, directions = recurrent_cell(node.cls, node.cfg)
        act, gate_activation, reset_after = recurrent_gates(cls, cfg)
        kind: Any = {"SimpleRNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[cls]
        extra = {"nonlinearity": act} if cls == "SimpleRNN" else {}
        self.units = int(cfg["units"])
        self.rnn = kind(node.in_shapes[0][-1], self.units, batch_first=True,
                        bidirectional=directions == 2, **extra)
        if cls != "SimpleRNN":
            mark(self.rnn, spec_gate(gate_activation, keras3=not node.cfg.get("_keras2")), reset_after)
        self.cls, self.directions = cls, directions
        self.sequences = bool(cfg.get("return_sequences"))
        # go_backwards (one direction only: keras_graph.recurrent_cell refuses it in a Bidirectional)
        self.backwards = directions == 1 and bool(cfg.get("go_backwards"))

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> torch.Tensor:
        """The sequence or last output; ``states``: the call's ``initial_state`` ([h0] or, for an
        LSTM, [h0, c0], each [batch, units]; keras_graph._recurrent_refs), zeros when absent."""
        if self.backwards:  # Keras reads the sequence from its last step to its first
            x = x.flip(1)
        hx: Any = None
        if states:  # torch's [layers * directions, batch, units]; Keras' state is one layer's
            h0 = [s.unsqueeze(0) for s in states]
            hx = (h0[0], h0[1]) if self.cls == "LSTM" else h0[0]
        seq, _ = run_recurrent(self.rnn, x, hx)
        if self.sequences:
            # in the order read: Keras' go_backwards layer returns the reversed sequence (its
            # backend's rnn stacks the outputs step by step; only Bidirectional flips them back)
            return seq
        if self.directions == 2:  # the backward direction ends at t = 0
            return torch.cat([seq[:, -1, :self.units], seq[:, 0, self.units:]], dim=-1)
        return seq[:, -1]


def _conv(node: Node) -> tuple[nn.Module, list[nn.Module]]:
    """The convolution of ``node`` (channels-last) and its weight modules in ``node.weights`` order."""
    cfg, x = node.cfg, node.in_shapes[0]
    n = len(x) - 1
    k, s, d, padding = window(cfg, n)
    pads: list[int] = []
    for i in reversed(range(n)):  # F.pad lists the last axis first
        _, before, after = conv_padding(x[i], k[i], s[i], d[i], padding)
        pads += [before, after]
    conv_cls: Any = nn.Conv2d if n == 2 else nn.Conv1d
    c, bias = x[-1], bool(cfg.get("use_bias", True))
    if node.cls.startswith(("Depthwise", "Separable")):
        dm = int(cfg.get("depth_multiplier", 1))
        depthwise = conv_cls(c, c * dm, k, s, 0, d, groups=c, bias=bias and node.cls.startswith("Depthwise"))
        if node.cls.startswith("Depthwise"):
            return _ChannelsLast(depthwise, pads), [depthwise]
        pointwise = conv_cls(c * dm, int(cfg["filters"]), 1, bias=bias)
        return _ChannelsLast(nn.Sequential(depthwise, pointwise), pads), [depthwise, pointwise]
    groups = int(cfg.get("groups", 1))
    conv = conv_cls(c, int(cfg["filters"]), k, s, 0, d, groups=groups, bias=bias)
    return _ChannelsLast(conv, pads), [conv]


def _keras_cut(y: torch.Tensor, cuts: list[tuple[int, int]], bias: torch.Tensor | None) -> torch.Tensor:
    """A channels-first transposed convolution's full output (no bias) cut or zero-extended to
    Keras' size on each axis (``transposed_padding``), then the bias."""
    for axis, (start, size) in enumerate(cuts, start=2):
        y = y.narrow(axis, start, min(size, y.shape[axis] - start))
        if y.shape[axis] < size:
            pad = [0, 0] * (y.dim() - axis - 1) + [0, size - y.shape[axis]]
            y = F.pad(y, pad)
    return y + bias.reshape(-1, *[1] * (y.dim() - 2)) if bias is not None else y


class _Transposed1d(nn.ConvTranspose1d):
    """Keras' Conv1DTranspose, channels first: one torch weight layer whose output is Keras' (cut,
    then the bias), so its activation and norm read the tensor it makes (one unit, as a Conv1D's)."""

    cuts: list[tuple[int, int]]

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return _keras_cut(F.conv_transpose1d(x, self.weight, None, self.stride), self.cuts, self.bias)


class _Transposed2d(nn.ConvTranspose2d):
    """Keras' Conv2DTranspose, channels first (as :class:`_Transposed1d`)."""

    cuts: list[tuple[int, int]]

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return _keras_cut(F.conv_transpose2d(x, self.weight, None, self.stride), self.cuts, self.bias)


def _transposed(node: Node) -> tuple[nn.Module, list[nn.Module]]:
    cfg, x = node.cfg, node.in_shapes[0]
    n = len(x) - 1
    k, s, _, padding = window(cfg, n)
    conv: Any = (_Transposed2d if n == 2 else _Transposed1d)(x[-1], int(cfg["filters"]), cast(Any, k), cast(Any, s),
                                                            bias=bool(cfg.get("use_bias", True)))
    conv.cuts = [(transposed_padding(x[i], k[i], s[i], padding)[1], node.shape[i]) for i in range(n)]
    return _ChannelsLast(conv, []), [conv]


def _pool(node: Node) -> nn.Module:
    cfg, x = node.cfg, node.in_shapes[0]
    n = len(x) - 1
    k, s, _, padding = window(cfg, n, pool=True)
    pads: list[int] = []
    for i in reversed(range(n)):
        _, before, after = conv_padding(x[i], k[i], s[i], 1, padding)
        pads += [before, after]
    if node.cls.startswith("Max"):
        pool: nn.Module = (nn.MaxPool2d if n == 2 else nn.MaxPool1d)(k, s)
        return _ChannelsLast(pool, pads, fill=-math.inf)
    pool = (nn.AvgPool2d if n == 2 else nn.AvgPool1d)(cast(Any, k), cast(Any, s))
    return _ChannelsLast(_AvgPoolSame(pool, pads) if any(pads) else pool, [])


def _relu_layer(cfg: dict[str, Any]) -> nn.Module:
    cap = cfg.get("max_value")
    slope = float(cfg.get("negative_slope") or 0.0)
    threshold = float(cfg.get("threshold") or 0.0)
    if threshold == 0.0 and slope == 0.0:
        return nn.ReLU() if cap is None else nn.ReLU6() if float(cap) == 6.0 else _Fn(
            lambda x: torch.clamp(x, 0.0, float(cap)))
    if threshold == 0.0 and cap is None:
        return nn.LeakyReLU(slope)

    def relu(x: torch.Tensor) -> torch.Tensor:  # keras.activations.relu's general form
        out = torch.where(x >= threshold, x, slope * (x - threshold))
        return out if cap is None else torch.clamp(out, max=float(cap))
    return _Fn(relu)


class _TimeDistributed(nn.Module):
    """Keras' TimeDistributed: ``body`` on each time step's frame, the frames stacked along the batch."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        y = self.body(x.reshape(b * t, *x.shape[2:]))
        return cast(torch.Tensor, y.reshape(b, t, *y.shape[1:]))


def _layer(node: Node) -> tuple[nn.Module, list[nn.Module]]:
    """The torch module of one Keras layer and the modules its weights go into (in order)."""
    if node.cfg.get(TIME_DISTRIBUTED):
        frame = dataclasses.replace(node, cfg=frame_config(node.cfg), shape=node.shape[1:],
                                    in_shapes=[s[1:] for s in node.in_shapes])
        body, inner = _layer(frame)
        return _TimeDistributed(body), inner
    cls, cfg, x = node.cls, node.cfg, node.in_shapes[0] if node.in_shapes else node.shape
    core: nn.Module
    holders: list[nn.Module] = []
    if cfg.get("_skipped"):  # the input's own preprocessing (keras_graph._skip_preprocessing)
        return nn.Identity(), []
    if cls == "Dense":
        core = nn.Linear(x[-1], int(cfg["units"]), bias=bool(cfg.get("use_bias", True)))
        holders = [core]
    elif cls in _CONVS:
        core, holders = _conv(node)
    elif cls in _TRANSPOSED:
        core, holders = _transposed(node)
    elif cls in _POOLS:
        core = _pool(node)
    elif cls in _GLOBAL:
        dims = tuple(range(1, len(x)))
        keep = bool(cfg.get("keepdims"))
        core = _Fn((lambda t: t.mean(dim=dims, keepdim=keep)) if "Average" in cls
                   else (lambda t: t.amax(dim=dims, keepdim=keep)))
    elif cls in _MERGES:
        core = _Merge(cls, 1 + _axis(cfg.get("axis", -1), len(x)) if cls == "Concatenate" else 0,
                      node.args, float(cfg.get("scale", 1.0)))
    elif cls in ("ZeroPadding1D", "ZeroPadding2D"):
        pairs = _padding_pairs(cfg.get("padding", 1), len(x) - 1)
        core = _Fn(lambda t: F.pad(t, [0, 0, *[v for a, b in reversed(pairs) for v in (a, b)]]))
    elif cls in ("Cropping1D", "Cropping2D"):
        core = _Slice(_padding_pairs(cfg.get("cropping", 1), len(x) - 1))
    elif cls in ("UpSampling1D", "UpSampling2D"):
        size = _ints(cfg.get("size", 2), len(x) - 1, "size")
        mode = "bilinear" if cfg.get("interpolation") == "bilinear" and len(x) == 3 else "nearest"
        core = _ChannelsLast(nn.Upsample(scale_factor=tuple(float(v) for v in size), mode=mode), [])
    elif cls in ("Flatten", "Reshape"):
        core = _Reshape(node.shape)
    elif cls == "Permute":
        core = _Reshape(node.shape, tuple(int(v) for v in cfg["dims"]))
    elif cls == "RepeatVector":
        steps = node.shape[0]
        core = _Fn(lambda t: t.unsqueeze(1).expand(-1, steps, -1))
    elif cls == "BatchNormalization":
        axis = 1 + _axis(cfg.get("axis", -1), len(x))
        bn = nn.BatchNorm1d(node.shape[axis - 1], eps=float(cfg.get("epsilon", 1e-3)),
                            momentum=1.0 - float(cfg.get("momentum", 0.99)))
        core, holders = _Norm(bn, axis), [bn]
    elif cls == "LayerNormalization":
        width = dict(node.weights).get("gamma") or dict(node.weights).get("beta") or (x[-1],)
        ln = nn.LayerNorm(list(width), eps=float(cfg.get("epsilon", 1e-3)))
        core, holders = ln, [ln]
    elif cls in RECURRENT or cls == "Bidirectional":
        core = _Recurrent(node)
        holders = [core]
    elif cls == "MultiHeadAttention":
        core = _Attention(node)
        holders = [core]
    elif cls == DISTANCE:
        core = _Distance(bool(cfg.get("_keepdims", True)))
    elif cls == "Dot":
        core = _Dot(dot_axes(cfg, node.in_shapes), bool(cfg.get("normalize", False)))
    elif cls == "Activation":
        core = _act_module(_activation(cfg.get("activation")), bool(cfg.get("_keras2")))
    elif cls == "ReLU":
        core = _relu_layer(cfg)
    elif cls == "LeakyReLU":
        core = nn.LeakyReLU(float(cfg.get("negative_slope", cfg.get("alpha", 0.3))))
    elif cls == "ELU":
        core = nn.ELU(float(cfg.get("alpha", 1.0)))
    elif cls == "ThresholdedReLU":
        theta = float(cfg.get("theta", 1.0))
        core = _Fn(lambda t: t * (t > theta).to(t.dtype))
    elif cls == "Softmax":
        core = nn.Softmax(dim=1 + _axis(cfg.get("axis", -1), len(x)))
    elif cls == "PReLU":
        core = _Scale(dict(node.weights)["alpha"], prelu=True)
        holders = [core]
    elif cls == "LayerScale":
        core = _Scale((x[-1],))
        holders = [core]
    elif cls in ("Rescaling", "Normalization"):
        core = _Affine(cfg.get("scale", 1.0), cfg.get("offset", 0.0)) if cls == "Rescaling" else _Affine(1.0, 0.0)
        holders = [core] if cls == "Normalization" else []
    elif cls == "Embedding":
        core = nn.Embedding(int(cfg["input_dim"]), int(cfg["output_dim"]))
        holders = [core]
    else:  # InputLayer and the identities
        assert cls in (*IDENTITY_LAYERS, "InputLayer"), cls
        core = nn.Identity()
    # a recurrent layer's activation is its cell's own, not one applied to its output
    act = cfg.get("activation") if cls not in ("Activation", *RECURRENT) else None
    if act is not None and _activation(act) != "linear":
        return nn.Sequential(core, _act_module(_activation(act), bool(cfg.get("_keras2")))), holders
    return core, holders


class KerasNet(nn.Module):
    """The graph's layers over a name -> tensor table, in an order that runs them."""

    def __init__(self, graph: KerasGraph, fold: str | dict[str, str] | None) -> None:
        """``fold``: the activation the loss takes into itself (softmax, sigmoid), left out of the
        output layer; for several outputs, by output name."""
        super().__init__()
        self.graph = graph
        self.layers = nn.ModuleList()
        self.holders: list[list[nn.Module]] = []
        folds = fold if isinstance(fold, dict) else {graph.output_name: fold} if fold else {}
        # a shared layer's later calls run its first call's module (the same weights)
        built = {node.name: _layer(node) for node in graph.nodes if not node.cfg.get("_shares")}
        outputs = set(graph.output_names or [graph.output_name])
        for node in graph.nodes:
            owner = node.cfg.get("_shares")
            module, holders = (built[owner][0], []) if owner else built[node.name]
            if node.name in folds:
                module = _without_activation(module, folds[node.name])
            if node.name in outputs:
                module = _marked_softmax(module, tuple(node.shape))
            self.layers.append(module)
            self.holders.append(holders)
        _fuse_convolutions(self)

    def forward(self, *xs: torch.Tensor) -> Any:
        """The output from the model's inputs, in the order Keras takes them (a tuple of the
        outputs, in Keras' order, for a model of several)."""
        names = [name for name, _, _ in self.graph.inputs] or [self.graph.input_name]
        if len(xs) != len(names):
            raise TypeError(f"the model takes {len(names)} inputs ({', '.join(names)}), not {len(xs)}")
        env: dict[str, torch.Tensor] = dict(zip(names, xs, strict=True))
        for node, module in zip(self.graph.nodes, self.layers, strict=True):
            if node.name not in env:
                env[node.name] = module(*[env[i] for i in node.inputs])
        if len(self.graph.output_names) > 1:
            return tuple(env[name] for name in self.graph.output_names)
        return env[self.graph.output_name]

    def recurrent_initializers(self) -> dict[str, str]:
        """Each recurrent layer's (a Bidirectional's: its layer's) ``recurrent_initializer`` as the
        class it names (Keras' default: orthogonal), with its gain where that is not 1, by layer
        name: the init it already has, which no remedy proposes again (:func:`.module_check.orthogonal_already`)."""
        from gradhealth.analysis.importers.keras import _initializer

        out: dict[str, str] = {}
        for node in self.graph.nodes:
            if node.cls not in RECURRENT and node.cls != "Bidirectional":
                continue
            try:
                _, cfg, _ = recurrent_cell(node.cls, node.cfg)
            except ValueError:
                continue
            name, init_cfg = _initializer(cfg.get("recurrent_initializer") or "orthogonal")
            gain = float(init_cfg.get("gain", 1.0)) if name in ("orthogonal", "identity") else 1.0
            # orthogonal_init draws at gain 1: Orthogonal(gain=3) is another init (as a spec's
            # recurrent_init reads in orthogonal_already)
            out[node.name] = name if abs(gain - 1.0) < 1e-9 else f"{name} (gain {gain:g})"
        return out

    def module_names(self) -> dict[nn.Module, tuple[str, str]]:
        """Every module -> (its Keras layer's name, a pointer); a separable convolution's two
        kernels are ``name.depthwise`` and ``name.pointwise``."""
        out: dict[nn.Module, tuple[str, str]] = {}
        for node, module, holders in zip(self.graph.nodes, self.layers, self.holders, strict=True):
            if node.cfg.get("_shares"):
                continue  # its modules are its first call's, named after the layer
            for m in module.modules():
                out[m] = (node.name, f"layer:{node.name}")
            if node.cls.startswith("Separable"):
                out[holders[0]] = (f"{node.name}.depthwise", f"layer:{node.name}")
                out[holders[1]] = (f"{node.name}.pointwise", f"layer:{node.name}")
            if node.cls == "MultiHeadAttention":  # Keras' names of its four projections
                for part, _ in ATTENTION_PARTS:
                    out[getattr(holders[0], part)] = (f"{node.name}.{part}", f"layer:{node.name}")
        return out


def _fuse_convolutions(net: KerasNet) -> None:
    """Run a convolution's own activation, and a BatchNormalization (and activation layer) that
    only it feeds, inside its channels-first body, as torch networks are written (conv, bn, relu).

    The graph simulation reads a layer, its norm and its activation as one unit when each reads
    the tensor the one before made; between Keras' channels-last layers the channels move, so
    apart they were three: the convolution's output gradient was read before its norm (scaled by
    1 / the batch std, which the norm makes meaningless) and no ReLU of a convolution was seen.
    Transposed convolutions too (kerassweep12 u08: a DCGAN generator's Conv2DTranspose(tanh) had
    no activation on its unit, its saturation never measured), and a TimeDistributed one's own
    activation inside each frame's body."""
    nodes = net.graph.nodes
    readers: dict[str, list[int]] = {}
    for k, node in enumerate(nodes):
        for name in node.inputs:
            readers.setdefault(name, []).append(k)

    def only_reader(k: int, classes: tuple[str, ...]) -> int | None:
        found = readers.get(nodes[k].name, [])
        if len(found) != 1 or nodes[k].name in (net.graph.output_names or [net.graph.output_name]):
            return None
        j = found[0]
        return j if nodes[j].cls in classes and not nodes[j].cfg.get("_skipped") else None

    shared = {n.cfg.get("_shares") for n in nodes} - {None}
    for k, node in enumerate(nodes):
        module = net.layers[k]
        if node.cls not in (*_CONVS, *_TRANSPOSED) or node.cfg.get("_skipped") or node.name in shared or node.cfg.get("_shares"):
            continue  # a shared convolution's calls each have their own norm, if any
        if isinstance(module, _TimeDistributed):  # its frames' own activation (no norm: that reads all frames)
            module.body = _channels_first_activation(module.body)
            continue
        core, act = (module[0], module[1]) if isinstance(module, nn.Sequential) else (module, None)
        if not isinstance(core, _ChannelsLast):
            continue
        act = _channels_first(act) if act is not None else None
        parts = [core.body] if act is None else [core.body, act]
        # the norm only the convolution feeds, also after its own relu (Conv2D(activation="relu")
        # then BatchNormalization, as Keras tutorials write it: relu(c z) = c relu(z))
        b = only_reader(k, ("BatchNormalization",)) if act is None or isinstance(act, nn.ReLU | nn.LeakyReLU) else None
        if b is not None and _axis(nodes[b].cfg.get("axis", -1), len(nodes[b].shape)) != len(nodes[b].shape) - 1:
            b = None  # a norm over another axis stays a layer of its own (and so does what follows)
        if b is not None:
            old = cast(_Norm, net.layers[b]).bn
            bn = (nn.BatchNorm2d if len(node.shape) == 3 else nn.BatchNorm1d)(
                old.num_features, eps=old.eps, momentum=old.momentum)
            parts.append(bn)
            net.layers[b], net.holders[b] = nn.Identity(), [bn]
        # an activation layer reading the norm, or the convolution itself, when it has none
        last = (b if b is not None else k) if act is None else None
        c = only_reader(last, ("Activation", "ReLU", "LeakyReLU", "ELU")) if last is not None else None
        if c is not None and role_of(net.layers[c]).kind == "act":
            parts.append(net.layers[c])
            net.layers[c] = nn.Identity()
        if len(parts) > 1:
            core.body = nn.Sequential(*parts)
            net.layers[k] = core


def _channels_first(act: nn.Module) -> nn.Module:
    """A convolution's activation to run on its channels-first output: a softmax over the channels
    (Keras' axis -1 is torch's 1 there); the element-wise ones as they are."""
    return nn.Softmax(dim=1) if isinstance(act, nn.Softmax) else act


def _channels_first_activation(module: nn.Module) -> nn.Module:
    """``Sequential(convolution, activation)`` (channels last) as the convolution with the
    activation inside its channels-first body, where the simulation reads the two as one unit
    (the activation reads the tensor the convolution made); anything else unchanged."""
    if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], _ChannelsLast):
        core = module[0]
        core.body = nn.Sequential(core.body, _channels_first(module[1]))
        return core
    return module


#: The Keras output activations whose range is bounded on both sides (:data:`.losses.BOUNDS`): a
#: loss on logits over them has a floor (a softmax's and a sigmoid's own are folded into the loss).
LOGIT_BOUNDED = frozenset({"sigmoid", "tanh", "hard_sigmoid", "softsign"})


def _without_activation(module: nn.Module, fold: str) -> nn.Module:
    """The output layer with the activation the loss folds in (softmax, sigmoid) removed."""
    kind = nn.Softmax if fold == "softmax" else nn.Sigmoid
    if isinstance(module, kind):
        return nn.Identity()
    if isinstance(module, nn.Sequential) and isinstance(module[-1], kind):
        return module[0]
    return module


class _OutputSoftmax(nn.Softmax):
    """A softmax over the classes ending an output the loss does not fold in (probabilities under
    binary cross-entropy or a regression loss): recorded as the output's activation, as a
    sigmoid's is, so the rules see probabilities rather than an identity output."""

    role = Role("act", "activation", "softmax")


def _marked_softmax(module: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """``module`` with its final softmax over the last axis, where it has one, an
    :class:`_OutputSoftmax`. Not a softmax over one unit: that is the constant 1, whose zero
    gradient is read at the layer's own output."""
    parts = list(module) if isinstance(module, nn.Sequential) else [module]
    soft = parts[-1] if parts else None
    if not isinstance(soft, nn.Softmax) or type(soft) is not nn.Softmax or soft.dim not in (-1, len(shape)) \
            or not shape or shape[-1] < 2:
        return module
    marked = _OutputSoftmax(soft.dim)
    return nn.Sequential(*parts[:-1], marked) if isinstance(module, nn.Sequential) else marked


def _fed_squash(graph: KerasGraph, name: str) -> tuple[str, str] | None:
    """(the softmax/sigmoid, the layer) that output ``name``, itself a softmax or sigmoid layer
    without weights (Activation, Softmax), reads directly: two squashes in a row, whose second
    sees inputs in [0, 1] and so can never be confident."""
    node = graph.node(name)
    if node.weights or len(node.inputs) != 1 or _output_activation(graph, name) not in ("softmax", "sigmoid"):
        return None
    src = graph.node(node.inputs[0])
    inner = _output_activation(graph, src.name)
    if inner not in ("softmax", "sigmoid") or src.cls in (*RECURRENT, "Bidirectional", "InputLayer"):
        return None
    return inner, src.name


def _sole_reader(graph: KerasGraph, src: str, reader: str) -> bool:
    """Whether ``reader`` is the only layer reading ``src``, which is no output and no shared
    layer's call (so its activation can leave the network without changing another path)."""
    node = graph.node(src)
    shared = {n.cfg.get("_shares") for n in graph.nodes} - {None}
    readers = [n.name for n in graph.nodes if src in n.inputs]
    return (readers == [reader] and src not in (graph.output_names or [graph.output_name])
            and not node.cfg.get("_shares") and src not in shared)


def _readout_units(graph: KerasGraph) -> list[str]:
    """The layers whose units make the outputs: each output layer, or for one without weights
    (a Softmax or Activation layer) the layer with weights it reads through layers like it."""
    out = []
    for name in graph.output_names:
        node = graph.node(name)
        while not node.weights and len(node.inputs) == 1 and node.cls not in ("InputLayer",):
            node = graph.node(node.inputs[0])
        out.append(node.name)
    return out


def _output_head(graph: KerasGraph, name: str) -> str:
    """The layer whose activation makes output ``name``: the output layer itself, or the last layer
    before layers that pass its values on with their meaning unchanged (:func:`.keras.passes_values`:
    a Reshape, Flatten, Dropout, an Activation('linear')), each the only reader of the one before,
    and keeping the output's last axis (the axis a softmax normalises and a loss reads): MobileNet
    v1's softmax before its Reshape((1000,)), a Dense(1) -> Activation('sigmoid') -> Dropout."""
    outputs = set(graph.output_names or [graph.output_name])
    node = graph.node(name)
    last = node.shape[-1:]
    while passes_values(node.cls, node.cfg) and len(node.inputs) == 1:
        src = graph.node(node.inputs[0])
        if (src.cls == "InputLayer" or src.name in outputs or src.shape[-1:] != last
                or node.cfg.get("_shares") or not _sole_reader(graph, src.name, node.name)):
            break
        node = src
    return node.name


def _output_activation(graph: KerasGraph, name: str) -> str:
    node = graph.node(name)
    if node.cls == "Softmax":
        return "softmax"
    return _activation(node.cfg.get("activation")) if "activation" in node.cfg else "linear"


# --- weights ---------------------------------------------------------------------------------------

def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """keras.src.initializers.random_initializers.compute_fans."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated(shape: tuple[int, ...], mean: float, std: float) -> torch.Tensor:
    out = torch.empty(shape, dtype=torch.float64)
    nn.init.trunc_normal_(out, mean, std, mean - 2 * std, mean + 2 * std)
    return out


def draw_initializer(value: Any, shape: tuple[int, ...], default: str) -> torch.Tensor:
    """One weight drawn as the Keras initialiser ``value`` draws it (``default`` when None), in
    Keras' layout, from torch's default generator (seeded by the caller)."""
    from gradhealth.analysis.importers.keras import _initializer

    name, cfg = _initializer(value if value is not None else default)  # OrthogonalInitializer: orthogonal
    presets = {"glorotuniform": (1.0, "fan_avg", "uniform"), "glorotnormal": (1.0, "fan_avg", "truncated_normal"),
               "henormal": (2.0, "fan_in", "truncated_normal"), "heuniform": (2.0, "fan_in", "uniform"),
               "lecunnormal": (1.0, "fan_in", "truncated_normal"), "lecununiform": (1.0, "fan_in", "uniform")}
    if name in presets or name == "variancescaling":
        scale, mode, dist = presets.get(name) or (float(cfg.get("scale", 1.0)), str(cfg.get("mode", "fan_in")),
                                                   str(cfg.get("distribution", "truncated_normal")))
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2)
        var = scale / max(1.0, fan)
        if dist == "uniform":
            limit = math.sqrt(3 * var)
            return torch.empty(shape, dtype=torch.float64).uniform_(-limit, limit)
        if dist == "untruncated_normal":
            return torch.randn(shape, dtype=torch.float64) * math.sqrt(var)
        return _truncated(shape, 0.0, math.sqrt(var) / TRUNCATION_STD)
    if name == "randomnormal":
        return torch.randn(shape, dtype=torch.float64) * float(cfg.get("stddev", 0.05)) + float(cfg.get("mean", 0.0))
    if name == "truncatednormal":
        return _truncated(shape, float(cfg.get("mean", 0.0)), float(cfg.get("stddev", 0.05)))
    if name == "randomuniform":
        return torch.empty(shape, dtype=torch.float64).uniform_(float(cfg.get("minval", -0.05)),
                                                               float(cfg.get("maxval", 0.05)))
    if name in ("orthogonal", "identity"):
        rows, cols = math.prod(shape[:-1]) if len(shape) > 1 else 1, shape[-1] if shape else 1
        flat = torch.empty(rows, cols, dtype=torch.float64)
        if name == "orthogonal":
            nn.init.orthogonal_(flat, float(cfg.get("gain", 1.0)))
        else:
            flat = torch.eye(rows, cols, dtype=torch.float64) * float(cfg.get("gain", 1.0))
        return flat.reshape(shape)
    fill = 1.0 if name == "ones" else float(cfg.get("value", 0.0)) if name == "constant" else 0.0
    return torch.full(shape, fill, dtype=torch.float64)


_INIT_KEYS = {"kernel": ("kernel_initializer", "glorot_uniform"), "bias": ("bias_initializer", "zeros"),
              "depthwise_kernel": ("depthwise_initializer", "glorot_uniform"),
              "pointwise_kernel": ("pointwise_initializer", "glorot_uniform"),
              "embeddings": ("embeddings_initializer", "uniform"),
              "gamma": ("gamma_initializer", "ones"), "beta": ("beta_initializer", "zeros"),
              "moving_mean": ("moving_mean_initializer", "zeros"),
              "moving_variance": ("moving_variance_initializer", "ones"),
              "alpha": ("alpha_initializer", "zeros")}


#: A recurrent layer's initialisers (Keras' defaults: glorot_uniform, orthogonal, zeros).
_RECURRENT_INIT = {"kernel": ("kernel_initializer", "glorot_uniform"),
                   "recurrent_kernel": ("recurrent_initializer", "orthogonal"),
                   "bias": ("bias_initializer", "zeros")}


def _drawn(node: Node) -> list[np.ndarray]:
    """``node``'s variables drawn from its config's initialisers (Keras' layouts)."""
    out = []
    recurrent = recurrent_cell(node.cls, node.cfg) if node.cls in RECURRENT or node.cls == "Bidirectional" else None
    for role, shape in node.weights:
        if recurrent is not None:
            cls, cfg, _ = recurrent
            base = role.removeprefix("forward_").removeprefix("backward_")
            key, default_init = _RECURRENT_INIT[base]
            drawn = draw_initializer(cfg.get(key), shape, default_init).numpy()
            if base == "bias" and cls == "LSTM" and cfg.get("unit_forget_bias", True):
                units = int(cfg["units"])
                drawn[units:2 * units] = 1.0  # Keras: the forget gate's block is ones
            out.append(drawn)
        elif node.cls == "MultiHeadAttention":
            kind = "kernel" if role.endswith("_kernel") else "bias"
            key, default_init = _INIT_KEYS[kind]
            # Keras 3 draws a projection's kernel over the fans of the matrix it is (features by
            # heads x size; heads x size by features for the output), Keras 2 over its 3-d shape
            fans = shape if kind == "bias" or node.cfg.get("_keras2") else (
                (math.prod(shape[:-1]), shape[-1]) if role == "output_kernel" else (shape[0], math.prod(shape[1:])))
            out.append(draw_initializer(node.cfg.get(key), fans, default_init).numpy().reshape(shape))
        elif node.cls == "LayerScale" and role == "gamma":
            out.append(np.full(shape, float(node.cfg.get("init_values", 1e-6))))
        elif node.cls == "Normalization":
            mean, var = node.cfg.get("mean"), node.cfg.get("variance")
            value = (mean if role == "mean" else var if role == "variance" else 0.0)
            default = 0.0 if role == "mean" else 1.0
            out.append(np.broadcast_to(np.asarray(default if value is None else value, dtype=np.float64),
                                       shape).copy())
        else:
            key, default_init = _INIT_KEYS.get(role, ("", "zeros"))
            out.append(draw_initializer(node.cfg.get(key), shape, default_init).numpy())
    return out


def _assign(node: Node, holders: list[nn.Module], module: nn.Module, arrays: list[np.ndarray]) -> None:
    """Put ``node``'s variables (Keras' layouts, ``node.weights`` order) into its torch modules."""
    values = dict(zip([r for r, _ in node.weights], arrays, strict=True))

    def put(param: Any, value: np.ndarray | None) -> None:
        if param is not None and value is not None:
            with torch.no_grad():
                param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype))

    cls = node.cls
    if cls == "Dense":
        put(holders[0].weight, values["kernel"].T)
        put(holders[0].bias, values.get("bias"))
    elif cls in _CONVS:
        last = holders[-1]
        if "depthwise_kernel" in values:
            k = values["depthwise_kernel"]  # [k..., c, dm] -> [c * dm, 1, k...]
            spatial = k.shape[:-2]
            flat = k.reshape(*spatial, -1)
            put(holders[0].weight, flat.transpose(flat.ndim - 1, *range(flat.ndim - 1))[:, None])
        if "pointwise_kernel" in values or "kernel" in values:
            k = values["pointwise_kernel"] if "pointwise_kernel" in values else values["kernel"]
            put(last.weight, k.transpose(k.ndim - 1, k.ndim - 2, *range(k.ndim - 2)))
        put(last.bias, values.get("bias"))
    elif cls in _TRANSPOSED:  # Keras [k..., out, in] -> torch [in, out, k...]
        k = values["kernel"]
        put(holders[0].weight, k.transpose(k.ndim - 1, k.ndim - 2, *range(k.ndim - 2)))
        put(holders[0].bias, values.get("bias"))
    elif cls in ("BatchNormalization", "LayerNormalization"):
        norm = holders[0]
        n = int(cast(torch.Tensor, norm.weight).numel())
        put(norm.weight, values.get("gamma", np.ones(n)).reshape(cast(torch.Tensor, norm.weight).shape))
        put(norm.bias, values.get("beta", np.zeros(n)).reshape(cast(torch.Tensor, norm.bias).shape))
        if cls == "BatchNormalization":
            put(norm.running_mean, values["moving_mean"])
            put(norm.running_var, values["moving_variance"])
    elif cls in ("PReLU", "LayerScale"):
        put(holders[0].weight, values["alpha" if cls == "PReLU" else "gamma"])
    elif cls == "Normalization":
        norm = cast(_Affine, holders[0])
        std = np.maximum(np.sqrt(np.maximum(values["variance"], 0.0)), 1e-7)  # keras.backend.epsilon()
        shape = _broadcast_shape(node)
        norm.scale = torch.as_tensor((1.0 / std).reshape(shape), dtype=torch.float64)
        norm.offset = torch.as_tensor((-values["mean"] / std).reshape(shape), dtype=torch.float64)
    elif cls == "Embedding":
        put(holders[0].weight, values["embeddings"])
    elif cls == "MultiHeadAttention":
        attention = cast(_Attention, holders[0])
        for part, _ in ATTENTION_PARTS:  # kernel [features, heads, size] -> weight [heads * size, features]
            linear = cast(nn.Linear, getattr(attention, part))
            kernel = values[f"{part}_kernel"]
            put(linear.weight, kernel.reshape(-1, kernel.shape[-1]).T if part == "output"
                else kernel.reshape(kernel.shape[0], -1).T)
            put(linear.bias, values[f"{part}_bias"].reshape(-1) if f"{part}_bias" in values else None)
    elif cls in RECURRENT or cls == "Bidirectional":
        rec = cast(_Recurrent, holders[0])
        problems: list[str] = []
        for d, suffix in enumerate(["", "_reverse"][:rec.directions]):  # forward's, then backward's
            load_recurrent(rec.rnn, rec.cls, arrays[3 * d:3 * d + 3], node.name,
                           lambda param, value, _: put(param, value), problems, suffix)
        if problems:
            raise ModelError("; ".join(problems))


def _broadcast_shape(node: Node) -> tuple[int, ...]:
    """A Normalization's statistics (its axes only) as a shape that broadcasts against its input."""
    x = node.in_shapes[0]
    axis = node.cfg.get("axis", -1)
    keep = {_axis(a, len(x)) for a in ([axis] if isinstance(axis, int) else list(axis or []))}
    return tuple(v if k in keep else 1 for k, v in enumerate(x))


def load_stored(net: KerasNet, stored: dict[str, list[np.ndarray]]) -> None:
    """The file's weights into ``net``; :class:`ModelError` naming every layer whose don't fit."""
    problems = []
    for node, module, holders in zip(net.graph.nodes, net.layers, net.holders, strict=True):
        if not node.weights:
            continue
        arrays = list(stored.get(node.name) or [])
        if node.cls == "Normalization" and (len(arrays) < 2 or node.cfg.get("_adapted_to_range")):
            # given as config constants, not variables; or never adapted, and given the statistics
            # of the range's inputs (keras_graph._skip_preprocessing)
            arrays = _drawn(node)
        if node.cls == "Normalization" and len(arrays) == 2:
            arrays.append(np.zeros(()))
        want = [s for _, s in node.weights]
        if not arrays:
            problems.append(f"{node.name}: {no_weights(stored, node.name, 'the file stores no weights')} "
                            f"({', '.join(r for r, _ in node.weights)})")
            continue
        if [tuple(a.shape) for a in arrays] != want:
            problems.append(f"{node.name}: the file stores {[list(a.shape) for a in arrays]} where "
                            f"the config builds {[list(s) for s in want]}")
            continue
        _assign(node, holders, module, arrays)
    if problems:
        raise ModelError("the stored weights do not fit the config: " + "; ".join(problems))


def reinitialise(net: KerasNet) -> None:
    """Every layer's variables drawn from its config's initialisers (the caller seeds torch)."""
    for node, module, holders in zip(net.graph.nodes, net.layers, net.holders, strict=True):
        if node.weights:
            _assign(node, holders, module, _drawn(node))


def check_keras_graph(graph: KerasGraph, *, loss: str | dict[str, Any] | None, stored: dict[str, list[np.ndarray]] | None,
                      seeds: int, batch_size: int, device: str | None, verify: bool | None,
                      settings: Any, progress: Any, optimizer: dict[str, Any] | None,
                      output_losses: Any = None, input_range: tuple[float, float] | None = None) -> Any:
    """The check of a Keras graph: the file's weights (``stored``) or each seed's draw of the
    config's initialisers, through the graph simulation and the spec check's rules.
    ``output_losses``: a model of several outputs' compiled loss for each (a list in their order,
    or a dict by output name; :attr:`.keras.KerasTraining.output_losses`). ``input_range``: the float
    inputs drawn uniform in it (``--input-range``); token ids keep their draw below the vocabulary."""
    from gradhealth.analysis.graph import GraphRun, InputSpec
    from gradhealth.analysis.module_check import diagnose, on_synthetic_inputs, optimizer_spec
    from gradhealth.devices import require_cuda_if_asked

    require_cuda_if_asked(device)
    outputs = graph.output_names or [graph.output_name]
    losses: list[str] = []
    spec_losses: list[Any] = []
    folds: dict[str, str] = {}
    options: list[tuple[bool, str | None]] = []  # each output's (from_logits, squashed)
    doubles: dict[str, tuple[str, str, bool]] = {}  # output -> (first squash, its layer, re-simulated)
    heads: list[str] = []  # each output's head (:func:`_output_head`)
    for k, name in enumerate(outputs):  # each output's compiled loss, the file's one, or the output's own
        given = (output_losses[k] if isinstance(output_losses, list) and k < len(output_losses) else
                 output_losses.get(name) if isinstance(output_losses, dict) else None)
        spec_loss = given if given is not None else loss
        spec_losses.append(spec_loss)
        kind = loss_type(spec_loss)
        # the layer whose activation the output is: past layers that pass it on (a Reshape after
        # MobileNet's softmax, an Activation('sigmoid') after Dense(1): kerassweep27)
        head = _output_head(graph, name)
        heads.append(head)
        out_act = _output_activation(graph, head)
        width = graph.node(name).shape[-1:] or (1,)
        own = kind or ("cross_entropy" if out_act == "softmax" else
                       "binary_cross_entropy" if out_act == "sigmoid" and width == (1,) else "mse")
        fold = ("softmax" if out_act == "softmax" and own == "cross_entropy" else
                "sigmoid" if out_act == "sigmoid" and own == "binary_cross_entropy" else None)
        # a softmax the loss does not fold in stays in the network (probabilities into mse, or a
        # softmax over one unit: the constant 1, which passes no gradient)
        losses.append(own)
        if fold is not None:
            folds[head] = fold
        # Keras on probabilities (from_logits False) is exact where the output's softmax/sigmoid was
        # folded into the loss; a loss on logits over a softmax/sigmoid output applies it again
        on_probabilities = isinstance(spec_loss, dict) and spec_loss.get("from_logits") is False
        on_logits = isinstance(spec_loss, dict) and spec_loss.get("from_logits") is True
        squashed = fold if on_logits else None
        if on_logits and fold is None and own in ("cross_entropy", "binary_cross_entropy") \
                and out_act in LOGIT_BOUNDED and (own == "binary_cross_entropy" or width[-1] > 1):
            # a bounded output under the other loss on logits (a sigmoid or tanh head under
            # (Sparse)CategoricalCrossentropy(from_logits=True), a tanh under BinaryCrossentropy's):
            # the loss's own softmax/sigmoid reads logits held in the activation's range, a floor
            # output_loss_mismatch measures; the activation stays in the network, as Keras runs it
            # (kerassweep29 cad_sigmoid_from_logits: three sigmoids under SCCE read healthy)
            squashed = out_act
        double = _fed_squash(graph, head) if not on_logits else None
        if double is not None and own in ("cross_entropy", "binary_cross_entropy"):
            inner, src = double
            # the loss (or the layer after it) squashes outputs that went through a softmax/sigmoid
            # already: the first as `squashed`, so output_loss_mismatch measures the floor
            reapplied = (inner, own) in (("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"))
            if not reapplied:
                # the loss does not apply this one again (.losses.loss_value): it stays in the
                # network, simulated as it is; its removal cannot be re-simulated
                squashed = inner
                doubles[name] = (inner, src, False)
            elif fold is not None and _sole_reader(graph, src, head):
                # both folded out, the loss applies the first again and then its own: exactly the
                # model, and dropping the redundant one is the run without `squashed`
                folds[src] = inner
                squashed = inner
                doubles[name] = (inner, src, True)
        options.append((not (on_probabilities and fold is None), squashed))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)
        net = KerasNet(graph, folds).double()
    if stored is not None:
        load_stored(net, stored)

    def prepare(copy: nn.Module, seed: int) -> None:
        reinitialise(cast(KerasNet, copy))

    def names(copy: nn.Module) -> dict[nn.Module, tuple[str, str]]:
        return cast(KerasNet, copy).module_names()

    # stored weights that are an init's draw (saved before training): an initialisation (onnxsweep24)
    fresh = fresh_init(net) if stored is not None else None
    inputs = [InputSpec((batch_size, *shape), torch.int64, vocab) if vocab
              else InputSpec((batch_size, *shape), uniform=input_range) for _, shape, vocab in graph.inputs]
    several = len(outputs) > 1
    # (a loss the file compiled on logits over a softmax/sigmoid output: the folded output through
    # it twice, as Keras computes it; on probabilities, as Keras computes it where none was folded)
    from_logits, squashed = options[0]
    run = GraphRun(net, inputs, losses[0], seeds, None if stored is not None else prepare, names,
                   from_logits=from_logits, squashed=squashed,
                   optimizer=optimizer_spec(optimizer), losses=tuple(losses) if several else None,
                   readouts=frozenset(_readout_units(graph) if several else ()),
                   output_options=tuple(options) if several else None,
                   # a bounded regression output judged as the spec door judges a Keras file's
                   bounded_regression=not several, target_range=_target_range(spec_losses[0]),
                   checkpoint=stored is not None and fresh is None)
    thresholds = settings.thresholds
    doc = diagnose(run, name=graph.name, device=device, thresholds=thresholds,
                   verify=settings.verify_remedies if verify is None else verify,
                   parameters=graph.parameters, activation_bytes=graph.activation_bytes,
                   progress=progress, budget=settings.limits.max_verify_seconds)
    if not several and outputs[0] in doubles:
        _redundant_squash(doc, graph, heads[0], *doubles[outputs[0]], loss=spec_losses[0], kind=losses[0])
    _degenerate_preprocessing(doc, graph)
    doc.summary = (f"{doc.summary} [weights: as stored in the file]{' [' + fresh_note(fresh) + ']' if fresh else ''}"
                   if stored is not None
                   else f"{doc.summary} [weights: Keras' initialisers, drawn per seed]")
    if stored is not None:
        on_synthetic_inputs(doc, input_range)
    if graph.preprocessing:
        doc.summary += (f" [input preprocessing skipped: {', '.join(graph.preprocessing)}; the "
                        "synthetic inputs are already normalised]")
    if graph.applied_preprocessing and input_range is not None:
        doc.summary += (f" [input preprocessing applied to the raw inputs in [{input_range[0]:g}, "
                        f"{input_range[1]:g}]: {', '.join(graph.applied_preprocessing)}]")
    if graph.adapted_preprocessing:
        doc.summary += (" [input preprocessing with no statistics to apply, simulated as adapted to the "
                        "range's inputs: " + ", ".join(f"{name} ({why}; given mean {mean:.4g}, variance {var:.4g})"
                                                       for name, why, mean, var in graph.adapted_preprocessing) + "]")
    if graph.degenerate_preprocessing:
        doc.summary += (" [input preprocessing simulated with its statistics, which describe no data: "
                        + ", ".join(f"{name} ({why})" for name, why, _ in graph.degenerate_preprocessing) + "]")
    return doc


def _target_range(loss: Any) -> tuple[float, float] | None:
    """The ``target_range`` a spec loss carries (:func:`.keras.with_target_range`), else None."""
    given = loss.get("target_range") if isinstance(loss, dict) else None
    return (float(given[0]), float(given[1])) if isinstance(given, list | tuple) and len(given) == 2 else None


def _redundant_squash(doc: Any, graph: KerasGraph, name: str, inner: str, src: str, resimulated: bool, *,
                      loss: Any, kind: str) -> None:
    """Word the output_loss_mismatch finding of two squashes in a row (``src``'s ``inner``, then
    the output layer ``name``'s softmax/sigmoid) as what the file holds: the rule words a
    squashed output as one a loss compiled on logits squashes again, and its remedy as that loss
    changed; here the fix is one activation fewer. ``loss``: the file's (or given) loss, ``kind``
    the one simulated. A remedy whose run could not drop the first
    (:func:`check_keras_graph` keeps it in the network) is said to be unverified, not fixed."""
    from gradhealth.analysis.check import layers_with_weights, summary_line
    from gradhealth.core.document import status_of

    outer = _output_activation(graph, name)
    found = [f for f in doc.findings
             if f.code == "output_loss_mismatch" and f.evidence.metric == "unreachable_loss_fraction"]
    if not found:
        return
    f = found[0]
    k = int(getattr(f.evidence, "classes", None) or (graph.node(name).shape or (1,))[-1])
    floor = getattr(f.evidence, "loss_floor", None)
    value = f.evidence.value
    if outer == "softmax":
        best = math.e / (math.e + max(k - 1, 1))
        reach = f"no class can get a probability over e / (e + {k - 1}) = {best:.0%} ({k} classes)"
    else:
        reach = f"every probability stays in [0.5, {1 / (1 + math.exp(-1)):.3g}]"
    own = (outer, kind) in (("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"))
    bound = (f"{kind} can never fall below {floor:.3g} ({value:.0%} of its value at chance)" if own
             else f"the right class's log loss can never fall below {floor:.3g} ({value:.0%} of ln {k})")
    f.summary = (f"{name} applies a {outer} to {src}'s {inner} outputs: the {outer} sees inputs in [0, 1], "
                 f"so {reach}, and {bound}")
    f.explanation = (
        f"{src} ends in a {inner} and {name} applies a {outer} to its outputs: two squashes in a row. The "
        f"second gets inputs in [0, 1], at most 1 apart, so it can never be confident ({reach}); the loss "
        "stalls high, and the gradient reaching the network is scaled down by the first one's slope as well. "
        "One softmax (or sigmoid) per output is the whole of a classifier's squash; the second is redundant.")
    f.evidence.from_logits = loss.get("from_logits") if isinstance(loss, dict) else None
    f.evidence.output_activation = outer
    f.evidence.first_activation = inner
    f.evidence.squash_layers = [src, name]
    f.evidence.layers = [src]
    for r in f.remedies:
        if r.id != "logits_loss":
            continue
        r.title = "Squash once"
        r.rationale = (f"A {outer} becomes confident only as its inputs spread apart; the outputs of another "
                       "squash stay in [0, 1], while a linear layer's are unbounded.")
        r.change = (f"drop the {inner} of {src} (activation linear) so that {name}'s {outer} is the only squash "
                    f"under {kind}" + (f"; or remove {name} and keep {src}'s {inner}" if inner == outer else ""))
        r.snippet = (f"# Keras: {src} with no activation of its own, then the one {outer}\n"
                     f"x = keras.layers.Dense({k})(x)  # {src}: activation=None\n"
                     f"out = keras.layers.Activation('{outer}')(x)  # {name}")
        r.params = {"layer": src, "drop_activation": inner}
        if not resimulated and r.verified is not None:
            # the first squash stays in the simulated network: a run without `squashed` is the same model
            r.verified, r.unverified = None, "not_simulable"
    doc.status = status_of(doc.findings)
    doc.summary = summary_line(doc.status, doc.findings, layers_with_weights(doc.layers))


def _degenerate_preprocessing(doc: Any, graph: KerasGraph) -> None:
    """An error finding for each input Normalization whose statistics describe no data
    (:func:`.keras_graph.degenerate_statistics`), unless the simulation's own names it already.
    The layer is simulated with them, but the rules judge growth between layers, and a network
    whose every input is 1e7 times too large has none to judge: its first weights' gradients and
    its loss are about 1e14 times a normalised input's."""
    from gradhealth.analysis.check import layers_with_weights, summary_line
    from gradhealth.core.document import status_of
    from gradhealth.core.rules import rule

    added = []
    for name, why, scale in graph.degenerate_preprocessing:
        code = "nonfinite" if math.isnan(scale) else "exploding_gradient"
        if any(f.code == code and name in (f.evidence.layers or []) for f in doc.findings):
            continue  # (the simulation's own nonfinite names the first layer after it: this is why)
        added.append(rule(code).finding(
            "error", f"{name}: {why}",
            f"The Normalization {name} reads the model's input with {why}: Keras divides by "
            f"max(sqrt(variance), {NORMALIZATION_EPSILON:g}), so every later activation, the loss and "
            "every weight's gradient scale with it (or are not finite). Statistics adapted on data "
            "that vary in every feature, or the layer left out, normalise the input instead.",
            {"metric": "input_scale", "value": None if math.isnan(scale) else scale, "layers": [name]}))
    if added:
        doc.findings[:0] = added  # the worst first, as the check orders them
        doc.status = status_of(doc.findings)
        doc.summary = summary_line(doc.status, doc.findings, layers_with_weights(doc.layers))
