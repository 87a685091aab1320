"""One :class:`LayerKind` object per layer type: how it is planned, built and what it activates with.

Each kind knows, for its spec model (``spec.py``):

* ``plan`` — output shape and layout, parameter count and activation memory, and the spec
  errors of a shape that does not fit (used by :mod:`gradhealth.analysis.plan`);
* ``build`` — the measured torch :class:`~gradhealth.analysis.model.Unit` of a planned unit
  (used by :mod:`gradhealth.analysis.model`);
* ``activation`` — the canonical activation it applies, if any (used by
  :mod:`gradhealth.analysis.simulate` for saturation/dead-unit figures and the theory).

Every kind is registered once in :data:`KINDS`, under each ``type`` literal of its spec model;
the planner, the builder and the simulator look kinds up there instead of chaining
``isinstance`` tests. A new layer type is its spec model in ``spec.py`` (added to the ``Layer``
union) plus one ``@register``-ed kind here; ``tests/analysis/test_kinds.py`` fails until both
exist and agree on the parameter count.

**The torch boundary.** This module imports no torch: planning runs in the API process to
validate a spec before any job exists, and there torch must never load. ``build`` imports
torch and :mod:`gradhealth.analysis.model` inside the method. It is only ever called from
``model.py``, which has loaded torch already, so the late import costs a dictionary lookup.
The alternative, a torch-free planning half and a builder half, would bring back two
parallel tables per layer type that can drift apart, which is what this module removes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, get_args

from pydantic import BaseModel

from gradhealth.analysis import spec as S
from gradhealth.analysis.activations import GATES, canonical
from gradhealth.errors import LimitExceeded, SpecError

if TYPE_CHECKING:
    from gradhealth.analysis.model import Unit
    from gradhealth.analysis.plan import Layout, Limits, UnitPlan

__all__ = ["KINDS", "LayerKind", "PlanContext", "Planned", "kind_of", "register"]

L = TypeVar("L", bound=BaseModel)


@dataclass
class Planned:
    """What a kind's ``plan`` works out for one unit."""

    out_shape: tuple[int, ...]
    out_layout: Layout
    parameters: int = 0
    #: Elements per sample kept for backward beyond the output and its gradient (gates, attention).
    extra: int = 0
    #: Bytes per seed that do not scale with the batch or the precision: the autograd nodes and
    #: tensor headers an unrolled recurrent layer creates at every step (see RecurrentKind.STEP_BYTES).
    overhead: int = 0
    children: list[UnitPlan] = field(default_factory=list)


class PlanContext(Protocol):
    """What a kind may ask of the planner."""

    spec: S.Spec
    limits: Limits

    def fail(self, pointer: str, message: str) -> SpecError: ...

    def count(self, layers: int, pointer: str) -> None:
        """Count ``layers`` more layers (a recurrent stack's) against the limit, refusing at ``pointer``."""

    def cell_steps(self, steps: int, pointer: str, detail: str) -> None:
        """Count ``steps`` more recurrent cell steps of one seed (layers x time steps x directions)
        against ``max_cell_steps`` (times the seeds), refusing at ``pointer``; ``detail`` spells
        ``steps`` out for the message."""

    def layers(
        self, layers: list[S.Layer], shape: tuple[int, ...], layout: Layout, prefix: str, pointer: str
    ) -> tuple[list[UnitPlan], tuple[int, ...], Layout]: ...


class LayerKind(Generic[L]):
    """Everything about one layer type. Subclasses set ``spec`` and override what applies."""

    #: The spec model; its ``type`` literals are the names the kind is registered under.
    spec: ClassVar[type[BaseModel] | None] = None
    #: Names of a kind with no spec model of its own (planned as the ``tail`` of another kind).
    extra_names: ClassVar[tuple[str, ...]] = ()
    #: Whether the kind accepts token ids (only an embedding does).
    takes_tokens: ClassVar[bool] = False
    #: Whether features sit on dim 1 of the pre-activation (conv: [N, C, ...]) rather than the last.
    channels_first: ClassVar[bool] = False

    def names(self) -> tuple[str, ...]:
        """The ``type`` literals (or extra names) this kind is registered under."""
        if self.spec is None:
            return self.extra_names
        return tuple(get_args(self.spec.model_fields["type"].annotation)) + self.extra_names

    def copies(self, layer: L) -> int:
        """How many measured units the spec entry expands to."""
        return int(layer.repeat)  # type: ignore[attr-defined]  # every spec layer has `repeat`

    def tail(self, layer: L) -> str | None:
        """The name of a kind planned once after all copies (a Pre-LN stack's final norm)."""
        return None

    def plan(self, ctx: PlanContext, layer: L, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        """Shapes and sizes of one unit taking ``shape`` in ``layout``; raise SpecError if it does not fit."""
        raise NotImplementedError

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        """The torch unit of ``plan`` (imports torch)."""
        raise NotImplementedError

    def activation(self, layer: L) -> str | None:
        """The canonical name of the activation the unit applies, or None."""
        return None


#: Every kind, under each of its names.
KINDS: dict[str, LayerKind[Any]] = {}

K = TypeVar("K", bound=LayerKind[Any])


def register(cls: type[K]) -> type[K]:
    """Class decorator: register one instance of ``cls`` under each of its names."""
    kind = cls()
    for name in kind.names():
        if name in KINDS:
            raise ValueError(f"layer kind {name!r} is registered twice ({type(KINDS[name]).__name__}, {cls.__name__})")
        KINDS[name] = kind
    return cls


def kind_of(name: str) -> LayerKind[Any]:
    """The kind registered under ``name`` (a spec ``type`` literal or a plan's ``kind``)."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"no layer kind {name!r}; known: {', '.join(sorted(KINDS))}") from None


# --- helpers ----------------------------------------------------------------------------------

def conv_out(size: int, kernel: int, stride: int, padding: int | str) -> int:
    """Output length of a convolution/pooling window (torch's floor formula; ``same`` keeps size/stride)."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size + 2 * int(padding) - kernel) // stride + 1


def _check_stride(ctx: PlanContext, ptr: str, stride: int, spatial: tuple[int, ...], padding: int | str) -> None:
    """Refuse a stride past the (padded) input's extent: it gives the one output a stride of that
    extent gives, and PyTorch's kernels take it in 32 bits (2^31 overflows them)."""
    extent = max(spatial) + (2 * padding if isinstance(padding, int) else 0)
    if stride > extent:
        raise ctx.fail(ptr + "/stride", f"stride {stride} is larger than the input's extent {extent} "
                       f"(input {list(spatial)}): at most {extent}, which gives the same single output")


def _check_kernel(ctx: PlanContext, ptr: str, kernel: int, shape: tuple[int, ...], padding: int | str,
                  what: str) -> None:
    """Refuse a kernel longer than the (padded) map it slides over, at ``/kernel_size``, before the
    stride is looked at: no stride gives such a window an output, so a stride refusal's advice led
    to a second refusal (specsweep14: VGG-16's fifth pool on a 28x28 input, refused at its stride
    with 'at most 1', then at its kernel). ``what``: the layer in words ("pool", "convolution")."""
    spatial = shape[1:]
    pad = 2 * padding if isinstance(padding, int) else 0
    if padding == "same" or all(s + pad >= kernel for s in spatial):
        return
    extent = min(spatial) + pad
    size = "x".join(str(s) for s in spatial)
    padded = f" ({size} with padding {padding} on each side)" if pad else ""
    given = list(ctx.spec.input.shape or [])
    smaller = len(given) == len(shape) and any(s < g for s, g in zip(spatial, given[1:], strict=False))
    why = (f"the input {given} is too small for the downsamplings before it: remove this {what} (or an earlier "
           "downsampling), " if smaller else "")
    one = " (which passes a 1-wide map on as it is)" if extent == 1 else ""
    raise ctx.fail(ptr + "/kernel_size", (
        f"kernel {kernel} does not fit {list(shape)}: the map is {'already ' if smaller else ''}{size}{padded} "
        f"before this {what}, smaller than its kernel, so no stride gives it an output; {why}use a kernel of at "
        f"most {extent}{one}, or give a larger input"))


def _check_time_steps(ctx: PlanContext, seq: int) -> None:
    if seq > ctx.limits.max_time_steps:
        # the input's own length where it is that ([seq_len, features]); else the input as a whole
        shape = ctx.spec.input.shape
        where = "/input/shape/0" if shape is not None and len(shape) >= 2 and shape[0] == seq else "/input"
        raise LimitExceeded.at(where, f"sequence length {seq} is over the limit of "
                               f"{ctx.limits.max_time_steps} time steps")


# --- weight layers ----------------------------------------------------------------------------

class _WeightKind(LayerKind[L]):
    """Linear and convolution: a weight, optional bias and norm, then the layer's activation."""

    def activation(self, layer: L) -> str | None:
        return canonical(layer.activation)  # type: ignore[attr-defined]  # every layer this kind is registered for has `activation`

    @staticmethod
    def _module(cls: Any, layer: Any, *args: Any, **kwargs: Any) -> Any:
        """``cls(*args, **kwargs)``, without drawing PyTorch's default weights when the spec's init
        replaces them at once: torch's CPU generator draws ~4 ns a number, so that wasted draw
        was about a third of building an MLP, in the check and in every remedy's re-simulation.
        The bias keeps PyTorch's default unless the spec's ``bias_init`` replaces it too."""
        import math

        import torch
        from torch import nn

        from gradhealth.analysis import model as M

        if layer.init.scheme == "default":
            return cls(*args, **kwargs)
        mod = M.without_default_init(cls)(*args, **kwargs)
        bias, weight = mod.bias, mod.weight
        if isinstance(bias, torch.Tensor) and isinstance(weight, torch.Tensor) and layer.bias_init.scheme == "default":
            fan_in = weight[0].numel()  # as PyTorch's reset_parameters: U(+-1/sqrt(fan_in))
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(bias, -bound, bound)
        return mod

    def _unit(self, plan: UnitPlan, layer: Any, mod: Any, norm_features: int, norm_rank: int) -> Unit:
        from gradhealth.analysis import model as M

        M.init_weight(mod.weight, layer.init, layer.activation, layer.negative_slope)
        M.init_bias(mod.bias, layer.bias_init)
        norm = None if layer.norm is None else M.make_norm(layer.norm, norm_features, norm_rank)
        act = None if layer.activation == "identity" else M.activation_module(layer.activation, layer.negative_slope)
        return M.SimpleUnit(plan, mod, norm, act)


@register
class LinearKind(_WeightKind[S.LinearLayer]):
    spec = S.LinearLayer

    def plan(self, ctx: PlanContext, layer: S.LinearLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        out = layer.out_features
        params = shape[-1] * out + (out if layer.bias else 0) + (2 * out if layer.norm else 0)
        return Planned(shape[:-1] + (out,), layout, params)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        layer: S.LinearLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        mod = self._module(nn.Linear, layer, plan.in_shape[-1], layer.out_features, bias=layer.bias)
        return self._unit(plan, layer, mod, layer.out_features, 1)


class _ConvKind(_WeightKind[L]):
    rank: ClassVar[int]  # of the input: [channels, length] or [channels, height, width]
    channels_first = True

    def plan(self, ctx: PlanContext, layer: L, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        conv: S.Conv1dLayer | S.Conv2dLayer = layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        if len(shape) != self.rank:
            want = "[channels, length]" if self.rank == 2 else "[channels, height, width]"
            raise ctx.fail(ptr, f"{conv.type} needs an input of shape {want}, got {list(shape)}")
        _check_kernel(ctx, ptr, conv.kernel_size, shape, conv.padding, "convolution")
        _check_stride(ctx, ptr, conv.stride, shape[1:], conv.padding)
        spatial = tuple(conv_out(s, conv.kernel_size, conv.stride, conv.padding) for s in shape[1:])
        if min(spatial) < 1:
            raise ctx.fail(ptr + "/kernel_size", f"kernel {conv.kernel_size} does not fit the input {list(shape)}")
        out = (conv.out_channels,) + spatial
        params = shape[0] * conv.out_channels * conv.kernel_size ** (self.rank - 1)
        params += conv.out_channels if conv.bias else 0
        # The built norm: BatchNorm over channels, LayerNorm over the channels at each position.
        params += 2 * conv.out_channels if conv.norm else 0
        return Planned(out, "channels" if self.rank == 2 else "image", params)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        layer: S.Conv1dLayer | S.Conv2dLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        cls = nn.Conv1d if self.rank == 2 else nn.Conv2d
        mod = self._module(cls, layer, plan.in_shape[0], layer.out_channels, layer.kernel_size,
                           stride=layer.stride, padding=layer.padding, bias=layer.bias)
        return self._unit(plan, layer, mod, layer.out_channels, len(plan.in_shape))


@register
class Conv1dKind(_ConvKind[S.Conv1dLayer]):
    spec = S.Conv1dLayer
    rank = 2


@register
class Conv2dKind(_ConvKind[S.Conv2dLayer]):
    spec = S.Conv2dLayer
    rank = 3


# --- shape-only layers ------------------------------------------------------------------------

@register
class Pool2dKind(LayerKind[S.PoolLayer2d]):
    spec = S.PoolLayer2d

    def plan(self, ctx: PlanContext, layer: S.PoolLayer2d, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        if len(shape) != 3:
            raise ctx.fail(ptr, f"{layer.type} needs [channels, height, width], got {list(shape)}")
        stride = layer.stride or layer.kernel_size
        _check_kernel(ctx, ptr, layer.kernel_size, shape, 0, "pool")
        if layer.stride is not None:
            _check_stride(ctx, ptr, stride, shape[1:], 0)
        spatial = tuple(conv_out(s, layer.kernel_size, stride, 0) for s in shape[1:])
        if min(spatial) < 1:
            raise ctx.fail(ptr + "/kernel_size", f"kernel {layer.kernel_size} does not fit {list(shape)}")
        return Planned((shape[0],) + spatial, "image")

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        layer: S.PoolLayer2d = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        pool = nn.MaxPool2d if layer.type == "maxpool2d" else nn.AvgPool2d
        return M.SimpleUnit(plan, pool(layer.kernel_size, layer.stride))


@register
class FlattenKind(LayerKind[S.FlattenLayer]):
    spec = S.FlattenLayer

    def plan(self, ctx: PlanContext, layer: S.FlattenLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        return Planned((math.prod(shape),), "vector")

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        return M.SimpleUnit(plan, nn.Flatten())


@register
class EmbeddingKind(LayerKind[S.EmbeddingLayer]):
    spec = S.EmbeddingLayer
    takes_tokens = True

    def plan(self, ctx: PlanContext, layer: S.EmbeddingLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        if layout != "tokens" or ctx.spec.input.tokens is None:
            raise ctx.fail(ptr, "an `embedding` layer needs token input: set input.tokens {vocab_size, seq_len}")
        vocab = ctx.spec.input.tokens.vocab_size
        return Planned((shape[0], layer.embedding_dim), "sequence", vocab * layer.embedding_dim)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        layer: S.EmbeddingLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        emb = nn.Embedding(spec.input.tokens.vocab_size, layer.embedding_dim)  # type: ignore[union-attr]  # the spec validator requires token input for an embedding
        M.init_weight(emb.weight, layer.init)
        return M.SimpleUnit(plan, emb)


@register
class NormKind(LayerKind[S.NormLayer]):
    spec = S.NormLayer

    @staticmethod
    def _features(layer: S.NormLayer, shape: tuple[int, ...], layout: Layout) -> int:
        # Both normalise the channels of conv outputs (LayerNorm at each position, as Keras'
        # LayerNormalization on channels-last maps and ConvNeXt's do), elsewhere the last dim.
        return shape[0] if layout in ("channels", "image") else shape[-1]

    def plan(self, ctx: PlanContext, layer: S.NormLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        return Planned(shape, layout, 2 * self._features(layer, shape, layout))

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        layer: S.NormLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        shape, features = plan.in_shape, self._features(layer, plan.in_shape, plan.in_layout)
        if layer.type == "layernorm":
            return M.SimpleUnit(plan, nn.LayerNorm(features), channels_last=plan.in_layout in ("channels", "image"))
        if plan.in_layout in ("channels", "image"):
            return M.SimpleUnit(plan, M.make_norm("batchnorm", features, len(shape)))
        return M.SimpleUnit(plan, nn.BatchNorm1d(features), channels_last=len(shape) == 2)


@register
class DropoutKind(LayerKind[S.DropoutLayer]):
    spec = S.DropoutLayer

    def plan(self, ctx: PlanContext, layer: S.DropoutLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        return Planned(shape, layout)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        layer: S.DropoutLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        return M.SimpleUnit(plan, nn.Dropout(layer.p))


@register
class ActivationKind(LayerKind[S.ActivationLayer]):
    spec = S.ActivationLayer

    def plan(self, ctx: PlanContext, layer: S.ActivationLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        return Planned(shape, layout)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        layer: S.ActivationLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        return M.SimpleUnit(plan, nn.Identity(), act=M.activation_module(layer.activation, layer.negative_slope))

    def activation(self, layer: S.ActivationLayer) -> str | None:
        return canonical(layer.activation)


# --- sequence layers --------------------------------------------------------------------------

@register
class RecurrentKind(LayerKind[S.RecurrentLayer]):
    """rnn/lstm/gru: ``GATES[type]`` blocks per weight, each ``[hidden, fan_in]``."""

    spec = S.RecurrentLayer

    #: Bytes per cell step (one layer, one time step, one direction) of one seed's simulation that
    #: do not depend on hidden_size, batch_size or precision: the unrolled (probed) forward makes
    #: several small tensors and autograd nodes per step and keeps each step's h with its gradient.
    #: Measured (peak RSS growth, VmHWM, float64 and float32 alike, hidden_size 1, batch 1 and 32,
    #: one seed): the slope over num_layers x seq_len in {2,5,10,20,40} x 256 and 10 x 512 is
    #: 21,000-21,100 bytes a step for lstm, 22,000 for gru, 11,000 for rnn; bidirectional 10 x 256
    #: equals unidirectional 20 x 256 (149 MB). The reporter's 50 x 512 and 100 x 1024 lstm runs
    #: (0.86 and 2.46 GB peak, 350 MB of it torch) give 20,000-20,600 bytes a step, where the
    #: element estimate alone said 5.4 and 21.5 MiB. At hidden_size 64 (10 x 256) the element
    #: estimate plus this term is 1.2x the measured growth; with 64 features and batch 16, 1.8x.
    STEP_BYTES: ClassVar[dict[str, int]] = {"rnn": 12 * 1024, "lstm": 22 * 1024, "gru": 22 * 1024}

    def plan(self, ctx: PlanContext, layer: S.RecurrentLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        if layout != "sequence" or len(shape) != 2:
            raise ctx.fail(ptr, f"{layer.type} needs a sequence input [seq_len, features], got {list(shape)}")
        seq, feat = shape
        _check_time_steps(ctx, seq)
        # each stacked layer is simulated like a layer of its own: counted before anything loops
        ctx.count(layer.num_layers - 1, ptr + "/num_layers")
        gates, h = GATES[layer.type], layer.hidden_size
        dirs = 2 if layer.bidirectional else 1
        # the probed simulation runs the cells one step at a time: bounded before anything runs
        steps = layer.num_layers * seq * dirs
        ctx.cell_steps(steps, ptr, f"{layer.num_layers} layer{'s' * (layer.num_layers > 1)} x {seq} time steps x "
                       f"{dirs} direction{'s' * (dirs > 1)}")
        # weight_ih [gates*h, fan_in] + weight_hh [gates*h, h] + two biases [gates*h], per stacked
        # layer and direction; a stacked layer above a bidirectional one reads 2h features
        params = dirs * gates * h * ((feat + h + 2) + (layer.num_layers - 1) * (dirs * h + h + 2))
        inner = dirs * layer.num_layers * seq * h * (2 * gates + 3)
        overhead = steps * self.STEP_BYTES[layer.type]
        if layer.output == "last":
            return Planned((dirs * h,), "vector", params, inner, overhead)
        return Planned((seq, dirs * h), "sequence", params, inner, overhead)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from gradhealth.analysis import model as M

        layer: S.RecurrentLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        return M.RecurrentUnit(plan, layer, plan.in_shape[-1], plan.in_shape[0], self.activation(layer))

    def activation(self, layer: S.RecurrentLayer) -> str:
        # torch's LSTM and GRU cells use tanh for the candidate/cell state; only rnn is configurable.
        return layer.nonlinearity if layer.type == "rnn" else "tanh"


@register
class SequencePoolKind(LayerKind[S.SequencePoolLayer]):
    spec = S.SequencePoolLayer

    def plan(self, ctx: PlanContext, layer: S.SequencePoolLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        if layout == "sequence":
            return Planned(shape[1:], "vector")
        if layout in ("channels", "image"):  # global pooling of each channel over space
            if layer.mode == "last":
                # at the layer: what flows into it decides, not the field alone (as for any shape)
                raise ctx.fail(ptr, "`pool` mode `last` is for sequences; over a convolution's "
                                    "output pool with `mean` or `max`")
            return Planned(shape[:1], "vector")
        raise ctx.fail(ptr, "`pool` needs a sequence [seq_len, features] or a convolution's output, "
                            f"got {list(shape)}")

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from gradhealth.analysis import model as M

        layer: S.SequencePoolLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        # a sequence [N, T, F] pools over time; channels-first conv output over every dim after C
        dims = (1,) if plan.in_layout == "sequence" else tuple(range(2, len(plan.in_shape) + 1))
        return M.SimpleUnit(plan, M.SequencePool(layer.mode, dims))


@register
class TransformerEncoderKind(LayerKind[S.TransformerEncoderLayer]):
    """``num_layers`` copies of torch's encoder layer; Pre-LN stacks end in a final LayerNorm."""

    spec = S.TransformerEncoderLayer

    def copies(self, layer: S.TransformerEncoderLayer) -> int:
        return layer.repeat * layer.num_layers

    def tail(self, layer: S.TransformerEncoderLayer) -> str | None:
        # Pre-LN stacks end in a final LayerNorm (as in GPT-2 / torch's encoder norm).
        return "final_norm" if layer.norm_first else None

    def plan(self, ctx: PlanContext, layer: S.TransformerEncoderLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        if layout != "sequence" or shape[-1] != layer.d_model:
            fix = ""
            if layout == "sequence":
                # the width mismatch's two fixes (specsweep14: BERT-Base's 768 on 300-d GloVe said what and
                # where, not what to write): the stack's width set to the input's, or a projection before it
                width = shape[-1]
                heads = (f" (its heads, {layer.heads}, must divide it: {width} is not a multiple)"
                         if width % layer.heads else "")
                fix = (f": set d_model: {width}, the width of its input{heads}, or put a linear layer with "
                       f"out_features: {layer.d_model} before it to project the {width} features to {layer.d_model}")
            raise ctx.fail(ptr + "/d_model", f"transformer_encoder needs a sequence [seq_len, {layer.d_model}], "
                           f"got {list(shape)}{fix}")
        seq = shape[0]
        _check_time_steps(ctx, seq)
        d, f = layer.d_model, layer.ff_width
        # attention in/out projections 4d^2 + 4d, feed-forward 2df + f + d, two LayerNorms 4d
        params = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
        inner = seq * (12 * d + 3 * f) + 3 * layer.heads * seq * seq
        return Planned(shape, layout, params, inner)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from gradhealth.analysis import model as M

        return M.TransformerUnit(plan, plan.layer)  # type: ignore[arg-type]  # a kind only builds the layer type it is registered for


@register
class FinalNormKind(LayerKind[S.TransformerEncoderLayer]):
    """The final LayerNorm of a Pre-LN transformer stack (no spec entry of its own)."""

    extra_names = ("final_norm",)

    def plan(self, ctx: PlanContext, layer: S.TransformerEncoderLayer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        return Planned(shape, layout, 2 * layer.d_model)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from torch import nn

        from gradhealth.analysis import model as M

        layer: S.TransformerEncoderLayer = plan.layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        return M.SimpleUnit(plan, nn.LayerNorm(layer.d_model))


# --- blocks -----------------------------------------------------------------------------------

class _BlockKind(LayerKind[L]):
    residual: ClassVar[bool]

    def plan(self, ctx: PlanContext, layer: L, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> Planned:
        block: S.ResidualBlock | S.SequentialBlock = layer  # type: ignore[assignment]  # a kind only plans the layer type it is registered for
        children, out, out_layout = ctx.layers(block.layers, shape, layout, name + ".", ptr)
        if self.residual and out != shape:
            raise ctx.fail(ptr + "/layers", f"a residual branch must keep the shape {list(shape)}, "
                           f"but it ends in {list(out)}")
        return Planned(out, layout if self.residual else out_layout,
                       parameters=sum(c.parameters for c in children),
                       extra=sum(c.activation_elements for c in children),
                       overhead=sum(c.overhead_bytes for c in children), children=children)

    def build(self, plan: UnitPlan, spec: S.Spec) -> Unit:
        from gradhealth.analysis import model as M

        children = [M.build_unit(c, spec) for c in plan.children]
        scale = plan.layer.scale if isinstance(plan.layer, S.ResidualBlock) else 1.0
        return M.BlockUnit(plan, children, self.residual, scale)


@register
class ResidualKind(_BlockKind[S.ResidualBlock]):
    """``x + scale * f(x)``."""

    spec = S.ResidualBlock
    residual = True


@register
class SequentialKind(_BlockKind[S.SequentialBlock]):
    """``f(x)``: a group of layers repeated as one."""

    spec = S.SequentialBlock
    residual = False
