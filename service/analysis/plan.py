"""Spec -> plan: shapes, names, parameter count and memory, before anything is allocated.

The plan is pure data. It expands ``repeat`` and ``num_layers``, names every
measured unit by its path in the spec (``layers[3].linear``, a repeated copy
``layers[0].linear#7``, a nested one ``layers[2].residual#4.layers[0].linear``),
infers every shape, and estimates the parameter count and the activation memory
so that :func:`check_limits` can refuse a spec before a single tensor exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from gradhealth.analysis import spec as S
from gradhealth.errors import LimitExceeded, Problem, SpecError

Layout = Literal["vector", "sequence", "channels", "image", "tokens"]


class Limits(BaseModel):
    """Resource limits checked before a simulation starts."""

    max_parameters: int = Field(default=200_000_000, description="parameters of one model instance")
    max_activation_bytes: int = Field(
        default=8 * 2**30, description="estimated bytes of activations and their gradients for one seed"
    )
    max_units: int = Field(default=2_000, description="measured layers after expanding `repeat`")
    max_time_steps: int = Field(default=4_096, description="sequence length of recurrent/transformer inputs")
    max_seeds: int = Field(default=16, description="seeds per check")


@dataclass
class UnitPlan:
    """One measured unit of the network."""

    name: str
    pointer: str
    layer: S.Layer
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_layout: Layout
    out_layout: Layout
    parameters: int
    activation_elements: int  # per sample, including internal buffers kept for backward
    copy: int = 0  # which repeat/num_layers copy this is
    children: list[UnitPlan] = field(default_factory=list)

    def walk(self) -> list[UnitPlan]:
        """This unit and all units nested in it, in forward order (parent first)."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class Plan:
    spec: S.Spec
    units: list[UnitPlan]
    input_shape: tuple[int, ...]
    input_layout: Layout
    output_shape: tuple[int, ...]
    classes: int | None
    parameters: int
    activation_bytes: int

    def all_units(self) -> list[UnitPlan]:
        return [u for top in self.units for u in top.walk()]


def _conv_out(size: int, kernel: int, stride: int, padding: int | str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return (size + 2 * int(padding) - kernel) // stride + 1


_BYTES = {"float64": 8, "float32": 4}


class _Planner:
    def __init__(self, spec: S.Spec, limits: Limits) -> None:
        self.spec = spec
        self.limits = limits
        self.units = 0

    def fail(self, pointer: str, message: str) -> SpecError:
        return SpecError.at(pointer, message)

    def layers(
        self, layers: list[S.Layer], shape: tuple[int, ...], layout: Layout, prefix: str, pointer: str
    ) -> tuple[list[UnitPlan], tuple[int, ...], Layout]:
        plans: list[UnitPlan] = []
        for i, layer in enumerate(layers):
            ptr = f"{pointer}/layers/{i}"
            copies = layer.repeat * (layer.num_layers if isinstance(layer, S.TransformerEncoderLayer) else 1)
            for k in range(copies):
                name = f"{prefix}layers[{i}].{layer.type}" + (f"#{k}" if copies > 1 else "")
                unit = self.unit(layer, shape, layout, name, ptr)
                unit.copy = k
                plans.append(unit)
                shape, layout = unit.out_shape, unit.out_layout
            if isinstance(layer, S.TransformerEncoderLayer) and layer.norm_first:
                # Pre-LN stacks end in a final LayerNorm (as in GPT-2 / torch's encoder norm).
                d = layer.d_model
                plans.append(
                    UnitPlan(f"{prefix}layers[{i}].transformer_encoder.final_norm", ptr, layer, "final_norm",
                             shape, shape, layout, layout, 2 * d, 2 * math.prod(shape))
                )
        return plans, shape, layout

    def unit(self, layer: S.Layer, shape: tuple[int, ...], layout: Layout, name: str, ptr: str) -> UnitPlan:
        self.units += 1
        if self.units > self.limits.max_units:
            # Checked while expanding, so `repeat: 1000000000` costs nothing.
            raise LimitExceeded.at(ptr + "/repeat", f"more than {self.limits.max_units} layers after expanding "
                                   "`repeat`/`num_layers`; that is the limit")
        numel = math.prod(shape)

        def make(out: tuple[int, ...], out_layout: Layout, params: int = 0, extra: int = 0) -> UnitPlan:
            return UnitPlan(name, ptr, layer, layer.type, shape, out, layout, out_layout, params,
                            2 * math.prod(out) + extra)

        if layout == "tokens" and not isinstance(layer, S.EmbeddingLayer):
            raise self.fail(ptr, f"a `{layer.type}` layer cannot take token ids; start with an `embedding` layer")

        if isinstance(layer, S.LinearLayer):
            fan_in = shape[-1]
            params = fan_in * layer.out_features + (layer.out_features if layer.bias else 0)
            params += 2 * layer.out_features if layer.norm else 0
            return make(shape[:-1] + (layer.out_features,), layout if layout != "channels" else "channels", params)
        if isinstance(layer, (S.Conv1dLayer, S.Conv2dLayer)):
            rank = 2 if isinstance(layer, S.Conv1dLayer) else 3
            if len(shape) != rank:
                want = "[channels, length]" if rank == 2 else "[channels, height, width]"
                raise self.fail(ptr, f"{layer.type} needs an input of shape {want}, got {list(shape)}")
            spatial = tuple(_conv_out(s, layer.kernel_size, layer.stride, layer.padding) for s in shape[1:])
            if min(spatial) < 1:
                raise self.fail(ptr + "/kernel_size",
                                f"kernel {layer.kernel_size} does not fit the input {list(shape)}")
            k = layer.kernel_size ** (rank - 1)
            params = shape[0] * layer.out_channels * k + (layer.out_channels if layer.bias else 0)
            params += 2 * layer.out_channels if layer.norm else 0
            return make((layer.out_channels,) + spatial, "channels" if rank == 2 else "image", params)
        if isinstance(layer, S.PoolLayer2d):
            if len(shape) != 3:
                raise self.fail(ptr, f"{layer.type} needs [channels, height, width], got {list(shape)}")
            stride = layer.stride or layer.kernel_size
            spatial = tuple(_conv_out(s, layer.kernel_size, stride, 0) for s in shape[1:])
            if min(spatial) < 1:
                raise self.fail(ptr + "/kernel_size", f"kernel {layer.kernel_size} does not fit {list(shape)}")
            return make((shape[0],) + spatial, "image")
        if isinstance(layer, S.FlattenLayer):
            return make((numel,), "vector")
        if isinstance(layer, S.EmbeddingLayer):
            if layout != "tokens":
                raise self.fail(ptr, "an `embedding` layer needs token input: set input.tokens {vocab_size, seq_len}")
            vocab = self.spec.input.tokens.vocab_size  # type: ignore[union-attr]
            return make((shape[0], layer.embedding_dim), "sequence", vocab * layer.embedding_dim)
        if isinstance(layer, S.NormLayer):
            features = shape[0] if (layer.type == "batchnorm" and layout in ("channels", "image")) else shape[-1]
            return make(shape, layout, 2 * features)
        if isinstance(layer, (S.DropoutLayer, S.ActivationLayer)):
            return make(shape, layout)
        if isinstance(layer, S.RecurrentLayer):
            if layout != "sequence" or len(shape) != 2:
                raise self.fail(ptr, f"{layer.type} needs a sequence input [seq_len, features], got {list(shape)}")
            seq, feat = shape
            if seq > self.limits.max_time_steps:
                raise LimitExceeded.at("/input", f"sequence length {seq} is over the limit of "
                                       f"{self.limits.max_time_steps} time steps")
            gates = {"rnn": 1, "lstm": 4, "gru": 3}[layer.type]
            h = layer.hidden_size
            params = sum(gates * h * ((feat if i == 0 else h) + h + 2) for i in range(layer.num_layers))
            out = (h,) if layer.output == "last" else (seq, h)
            inner = layer.num_layers * seq * h * (2 * gates + 3)
            return make(out, "vector" if layer.output == "last" else "sequence", params, inner)
        if isinstance(layer, S.SequencePoolLayer):
            if layout != "sequence":
                raise self.fail(ptr, f"`pool` needs a sequence [seq_len, features], got {list(shape)}")
            return make(shape[1:], "vector")
        if isinstance(layer, S.TransformerEncoderLayer):
            if layout != "sequence" or shape[-1] != layer.d_model:
                raise self.fail(ptr + "/d_model", f"transformer_encoder needs a sequence [seq_len, {layer.d_model}], "
                                f"got {list(shape)}")
            seq = shape[0]
            if seq > self.limits.max_time_steps:
                raise LimitExceeded.at("/input", f"sequence length {seq} is over the limit of "
                                       f"{self.limits.max_time_steps} time steps")
            d, f = layer.d_model, layer.ff_width
            params = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
            inner = seq * (12 * d + 3 * f) + 3 * layer.heads * seq * seq
            return make(shape, layout, params, inner)
        if isinstance(layer, (S.ResidualBlock, S.SequentialBlock)):
            children, out, out_layout = self.layers(layer.layers, shape, layout, name + ".", ptr)
            if isinstance(layer, S.ResidualBlock) and out != shape:
                raise self.fail(ptr + "/layers", f"a residual branch must keep the shape {list(shape)}, "
                                f"but it ends in {list(out)}")
            unit = make(out, out_layout if isinstance(layer, S.SequentialBlock) else layout)
            unit.children = children
            unit.parameters = sum(c.parameters for c in children)
            unit.activation_elements += sum(c.activation_elements for c in children)
            return unit
        raise self.fail(ptr, f"unsupported layer type {layer.type!r}")  # pragma: no cover


def make_plan(spec: S.Spec, limits: Limits | None = None) -> Plan:
    """Infer shapes, names and sizes for ``spec``; raise :class:`SpecError` on any mismatch."""
    limits = limits or Limits()
    planner = _Planner(spec, limits)
    if spec.input.tokens is not None:
        shape: tuple[int, ...] = (spec.input.tokens.seq_len,)
        layout: Layout = "tokens"
        if spec.input.tokens.seq_len > limits.max_time_steps:
            raise LimitExceeded.at("/input/tokens/seq_len", f"{spec.input.tokens.seq_len} time steps is over "
                                   f"the limit of {limits.max_time_steps}")
    else:
        shape = tuple(spec.input.shape or ())
        layout = {1: "vector", 2: "sequence", 3: "image"}[len(shape)]  # type: ignore[assignment]
    units, out, out_layout = planner.layers(spec.layers, shape, layout, "", "")
    if out_layout == "tokens":
        raise SpecError.at("/layers", "the network never embeds its token input")
    classes = None
    if spec.loss.type == "cross_entropy":
        classes = out[-1]
        if spec.loss.classes is not None and spec.loss.classes != classes:
            raise SpecError.at("/loss/classes", f"the network outputs {classes} features but the loss expects "
                               f"{spec.loss.classes} classes; make the last layer's width {spec.loss.classes}")
        if classes < 2:
            raise SpecError.at("/loss", "cross_entropy needs an output of at least 2 classes; "
                               "use mse or sum for a single output")
    plan = Plan(spec, units, shape, layout, out, classes,
                parameters=sum(u.parameters for u in units),
                activation_bytes=_BYTES[spec.precision] * spec.batch_size * (
                    math.prod(shape) + sum(u.activation_elements for u in units)),
                )
    check_limits(plan, limits, planner.units)
    return plan


def check_limits(plan: Plan, limits: Limits, units: int) -> None:
    """Refuse a plan over the limits, naming both size figures and the limits."""
    spec = plan.spec
    problems: list[Problem] = []
    figures = (f"the spec needs about {plan.parameters:,} parameters and {plan.activation_bytes / 2**20:,.1f} MiB "
               f"of activation memory (limits: {limits.max_parameters:,} parameters, "
               f"{limits.max_activation_bytes / 2**20:,.0f} MiB)")
    if plan.parameters > limits.max_parameters:
        problems.append(Problem("/layers", f"too many parameters: {figures}; make layers narrower or fewer"))
    if plan.activation_bytes > limits.max_activation_bytes:
        problems.append(Problem("/batch_size", f"too much activation memory: {figures}; lower batch_size "
                                f"(now {spec.batch_size}) or the input size"))
    if units > limits.max_units:
        problems.append(Problem("/layers", f"{units} layers after expanding `repeat` is over the limit of "
                                f"{limits.max_units}"))
    if spec.seeds > limits.max_seeds:
        problems.append(Problem("/seeds", f"{spec.seeds} seeds is over the limit of {limits.max_seeds}"))
    if problems:
        raise LimitExceeded("; ".join(p.message for p in problems), problems)
