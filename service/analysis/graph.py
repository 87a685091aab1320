"""The common form of a user's real network (an ONNX graph or a live ``torch.nn.Module``) and its
instrumented simulation.

Why not reuse :mod:`gradhealth.analysis.simulate` directly: its units are built from a spec's plan
(``Unit.plan``), while a user's module is given as it is. What *is* shared is everything after
the tensors are caught: the figures (:data:`UnitStats` values with the same names and the same
definitions, the same float64 norms), :class:`SimulationResult`, the rules and the document. So the
same finding thresholds apply to a spec, an ONNX file and a live module alike.

How tensors are caught: a forward hook on every *leaf* module of the (deep-copied) network records
its input and output in execution order. Each leaf has a role: ``weight`` (Linear, Conv, Embedding,
recurrent; ONNX Gemm/MatMul/Conv/Gather-on-a-table/LSTM...), ``norm``, ``act`` (an activation, with
its canonical name) or ``other`` (reshapes, adds, pooling: not measured). A unit is a weight leaf,
extended by a norm and then by an activation that consume its output directly - the same grouping
as a spec's ``linear`` layer with ``norm`` and ``activation`` - so the through-depth ratio, the
saturated and dead fractions read the very tensors they read on a spec. An activation applied as a
function inside ``forward`` (``F.relu``) is not a module and is not seen: the unit then reports its
pre-activation output.

Recurrent layers (``nn.LSTM``/``GRU``/``RNN``, and ONNX ``LSTM``/``GRU``/``RNN`` which become those
modules) are replaced on the copy by :class:`UnrolledRNN`, which runs torch's own cell kernels one
step at a time and keeps every ``h_t`` for ``dL/dh_t`` - as the spec's recurrent units do.

Units are named as the user sees them: ``named_modules()`` paths for a live module, and for an ONNX
graph the module path the exporter wrote into the weight's initializer name (``0.weight`` -> ``0``)
or else the node name; the pointer says which ONNX node or module it is.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import math
import re
import time
import types
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from torch import nn

from gradhealth.analysis import theory
from gradhealth.analysis.cells import cell_of, mark, run_fused, runs_itself, step
from gradhealth.analysis.figures import Readout, SeedFigures, duplicates_over_seeds
from gradhealth.analysis.guards import (
    BACKWARD_MAKERS,
    DomainGuards,
    Guard,
    caller,
    frame_site,
    op_name,
    user_frame,
)
from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.losses import REGRESSION, activation_image, loss_value
from gradhealth.analysis.sharpness import MAX_PARAMETERS as SHARPNESS_MAX_PARAMETERS
from gradhealth.analysis.sharpness import PROBE_STEPS, Sharpness, StepProbe, top_eigenvalue
from gradhealth.analysis.sharpness import SETTLED as SHARPNESS_SETTLED
from gradhealth.analysis.simulate import (
    MIN_DEAD_BATCH,
    PROBABILITY_LOSSES,
    QKV,
    PackedSlices,
    SimulationResult,
    TimeSeries,
    UnitStats,
    add_step_ratios,
    clipping,
    pick_device,
    round_off_gradients,
)
from gradhealth.analysis.spec import OptimizerSpec

ProgressFn = Callable[[float, str], None]

#: Modules whose output is an activation of their input, by their canonical activation name.
ACTIVATION_MODULES: dict[type[nn.Module], str] = {
    nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu", nn.SELU: "selu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Softplus: "softplus",
    nn.ReLU6: "relu", nn.Hardtanh: "hardtanh", nn.Hardsigmoid: "hardsigmoid", nn.GLU: "glu",
}
# ReLU6 is the ReLU as far as the measurements go: units at 0 below the kink are dead, and the
# clamp at 6 is far above unit-variance pre-activations (hardtanh's "saturated beyond +-1" would
# call healthy ReLU6 units saturated). nn.ReLU6 subclasses nn.Hardtanh: it is listed first.
#: Activations with phi(c z) = c phi(z) for c > 0, so a norm after them still divides out the scale
#: of the weights before them (nn.ReLU6 reads as relu: its cap at 6 is far above unit-variance
#: pre-activations).
HOMOGENEOUS = frozenset({"relu", "leaky_relu"})
#: The norms whose statistics are the batch's in training (what :attr:`Tracer.batch_statistics` counts).
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm,
                nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.RMSNorm)
RNN_TYPES = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}
CELL_TYPES = {nn.LSTMCell: "lstm", nn.GRUCell: "gru", nn.RNNCell: "rnn"}


@dataclass
class Role:
    """What a leaf module is to the measurement."""

    kind: str  # weight | norm | act | other
    type: str = "other"  # the layer type in the document: linear, conv2d, lstm, embedding...
    activation: str | None = None
    channels_first: bool = False  # features on dim 1 (convolutions), else on the last dim


def role_of(module: nn.Module) -> Role:
    """The role of a torch leaf module (ONNX node modules declare their own ``role``)."""
    own = getattr(module, "role", None)
    if isinstance(own, Role):
        return own
    if isinstance(module, UnrolledRNN):
        return Role("weight", module.kind, module.nonlinearity)
    if isinstance(module, nn.RNNCellBase):  # one step, a forward's own loop calling it per step
        relu = getattr(module, "nonlinearity", "tanh") == "relu"
        return Role("weight", CELL_TYPES.get(type(module), "rnn"), "relu" if relu else "tanh")
    if isinstance(module, nn.Linear | nn.Bilinear) or _transposed_linear(module):
        return Role("weight", "linear")
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.ConvTranspose1d | nn.ConvTranspose2d):
        # from the kernel's size, not the weight: a wrapper may compute the weight in forward only
        # (a hand-written SpectralNorm deletes it, keeping ``weight_bar``: modsweep38 h03 crashed here)
        return Role("weight", f"conv{len(module.kernel_size)}d", channels_first=True)
    if isinstance(module, nn.Embedding):
        return Role("weight", "embedding")
    if isinstance(module, NORM_MODULES):
        name = type(module).__name__.lower()
        return Role("norm", "instancenorm" if name.startswith("instancenorm") else name)
    for cls, name in ACTIVATION_MODULES.items():
        if isinstance(module, cls):
            return Role("act", "activation", name)
    return Role("other")


def _pre_activation(out: torch.Tensor, activation: str | None, dim: Any) -> torch.Tensor:
    """What an activation's saturation is read from: the layer's output, or for a GLU (a * sigmoid(b),
    the halves along ``dim``) its gate's half b."""
    if activation == "glu" and isinstance(dim, int) and out.dim() and out.shape[dim] % 2 == 0:
        return out.chunk(2, dim)[1]
    return out


def _transposed_linear(module: nn.Module) -> bool:
    """A linear layer whose weight is stored [in, out], x @ W + b: Hugging Face's ``Conv1D``
    (GPT-2's attention and MLP layers), and a forward's own ``x @ self.W`` (a
    :class:`FunctionLayer` made from a matrix product)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return False
    return (type(module).__name__ == "Conv1D" and hasattr(module, "nf")) or bool(getattr(module, "transposed", False))


#: The parameters a layer's weight is computed from in its forward, where the layer holds no
#: ``weight`` outside it (or holds the last forward's): torch's old ``spectral_norm`` hook
#: (``weight_orig``), the hand-written SpectralNorm wrappers of the SN-GAN repositories, which delete
#: ``weight`` and keep ``weight_bar`` (and ``weight_u``/``weight_v``, its power iteration's vectors),
#: and torch's old ``weight_norm`` hook (``weight_v``, the direction, beside the gain ``weight_g``).
WEIGHT_SOURCES = ("weight_orig", "weight_bar", "weight_v")


def layer_weight(module: nn.Module) -> torch.Tensor | None:
    """A layer's weight as it stands outside its forward: its ``weight`` (a parametrization's
    computed one too), else where a wrapper or hook computes it in forward and holds none yet, the
    parameter it is computed from, of the same shape (:data:`WEIGHT_SOURCES`); None where neither is."""
    w = getattr(module, "weight", None)
    if isinstance(w, torch.Tensor):
        return w
    for name in WEIGHT_SOURCES:
        source = getattr(module, name, None)
        if isinstance(source, torch.Tensor) and source.dim() >= 2:
            return source
    return None


def weight_of(module: nn.Module) -> tuple[torch.Tensor | None, int | None, int | None]:
    """(main weight, fan_in, fan_out) of a weight leaf; ONNX modules say theirs themselves."""
    own = getattr(module, "fan", None)
    if callable(own):
        return cast(tuple[torch.Tensor | None, int | None, int | None], own())
    fans = getattr(module, "fans", None)
    if isinstance(module, FunctionLayer) and fans is not None:
        return module.weight, fans[0], fans[1]
    if _transposed_linear(module):
        stored = cast(torch.Tensor, module.weight)
        return stored, int(stored.shape[0]), int(stored.shape[1])
    if isinstance(module, UnrolledRNN):
        hh = cast(torch.Tensor, module.rnn.weight_hh_l0)
        return hh, int(hh.shape[1]), module.rnn.hidden_size
    if isinstance(module, nn.RNNCellBase):
        hh = module.weight_hh
        return hh, int(hh.shape[1]), module.hidden_size
    w = layer_weight(module)
    if not isinstance(w, torch.Tensor) or w.dim() < 2:
        return None, None, None
    if isinstance(module, nn.Embedding):
        return w, 1, int(w.shape[1])  # one row is picked per token: fan-in 1
    return w, int(w[0].numel()), int(w.shape[0] * (w[0][0].numel() if w.dim() > 2 else 1))


# --- recurrent layers, step by step ------------------------------------------------------------

#: What a forward may read of the ``nn.LSTM``/``GRU``/``RNN`` the simulation replaced (``if
#: self.rnn.bidirectional``, ``self.lstm.hidden_size``): the stand-ins answer with its values.
RNN_CONFIG = ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional", "proj_size", "nonlinearity")
_RNN_WEIGHT = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?")


class RecurrentStandIn(nn.Module):
    """The torch recurrent module's interface on the simulation's stand-ins (:class:`UnrolledRNN`,
    :class:`StackedRNN`), so a forward written against ``nn.LSTM`` runs unchanged: its configuration
    (:data:`RNN_CONFIG`), its weights by their torch names (``weight_hh_l1``) and
    ``flatten_parameters()`` (modsweep35: a GRU classifier calling ``self.gru.flatten_parameters()``
    and a sentiment LSTM reading ``self.lstm.bidirectional`` failed as if their forward were wrong)."""

    def _remember(self, rnn: nn.RNNBase) -> None:
        self._rnn_config = {k: getattr(rnn, k) for k in RNN_CONFIG if hasattr(rnn, k)}

    def flatten_parameters(self) -> None:
        """cuDNN's weight packing: a step-by-step run has nothing to pack."""

    def _weight(self, name: str) -> torch.Tensor | None:
        """The torch module's parameter ``name`` (``weight_ih_l0``...), where the stand-in keeps it."""
        return None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            config = self.__dict__.get("_rnn_config", {})
            if name in config:
                return config[name]
            weight = self._weight(name) if _RNN_WEIGHT.fullmatch(name) else None
            if weight is not None:
                return weight
            raise


class UnrolledRNN(RecurrentStandIn):
    """An ``nn.LSTM``/``GRU``/``RNN`` run one step at a time with torch's cell kernels (the same
    arithmetic as the fused module), keeping every h_t so dL/dh_t can be read after backward.
    Takes and returns what the wrapped module does (``(output, h_n)`` or ``(output, (h_n, c_n))``)."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self._remember(rnn)
        self.rnn = rnn
        #: an LSTM with projections (LSTMP): h_t = W_hr (o * tanh(c_t)), proj_size wide
        self.proj = int(getattr(rnn, "proj_size", 0))
        self.kind = RNN_TYPES[type(rnn)]
        self.directions = 2 if rnn.bidirectional else 1
        # the cell's activation: an RNN's nonlinearity, else what cells.mark set (Keras' relu LSTM)
        self.nonlinearity = (getattr(rnn, "nonlinearity", "tanh") if isinstance(rnn, nn.RNN)
                             else cell_of(rnn)[2])
        self.steps: dict[int, list[torch.Tensor]] = {}
        #: an LSTM's last cell state c_{T-1} per sublayer, as c_n reads it: carried state beside h
        #: (Readout.add_carried)
        self.cells: dict[int, torch.Tensor] = {}
        self.probing = False

    def _weight(self, name: str) -> torch.Tensor | None:
        return cast("torch.Tensor | None", getattr(self.rnn, name, None))

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        # (a call run fused or packed keeps no steps: none of an earlier call's is this one's)
        self.steps, self.cells = {}, {}
        if isinstance(x, nn.utils.rnn.PackedSequence):
            # sequences of several lengths, packed: each stops at its own length, which a step
            # loop over padded time would not; run as packed (the layer is measured, not its steps)
            return cast(tuple[torch.Tensor, Any], self.rnn(x, hx))
        if not self.probing and run_fused(self.rnn):
            return cast(tuple[torch.Tensor, Any], self.rnn(x, hx))
        rnn = self.rnn
        if x.dim() == 2:
            # torch's unbatched input, (time, features) whatever batch_first says, and a state
            # without its batch dimension: run as a batch of one and hand back torch's shapes
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if self.kind == "lstm" else hx.unsqueeze(1)
            out, state = self.forward(x.unsqueeze(0 if rnn.batch_first else 1), hx)
            out = out.squeeze(0 if rnn.batch_first else 1)
            if self.kind == "lstm":
                return out, (state[0].squeeze(1), state[1].squeeze(1))
            return out, state.squeeze(1)
        # time-major, [time, batch, features], as torch's kernels run and lay out their output
        seq = x.transpose(0, 1) if rnn.batch_first else x
        n, hsize = seq.shape[1], rnn.hidden_size
        h0 = c0 = None
        if hx is not None:
            h0, c0 = hx if self.kind == "lstm" else (hx, None)
        self.steps = {}
        self.cells = {}
        last_h: list[torch.Tensor] = []
        last_c: list[torch.Tensor] = []
        inp = seq
        length = seq.shape[0]
        for layer in range(rnn.num_layers):
            outs: list[torch.Tensor] = []
            # one unbind, not a slice per step: a slice's backward fills a zero tensor the size of
            # the whole sequence per step (T^2 work: 7x slower over 2,500 steps), unbind's one
            xs = inp.unbind(0)
            # a bidirectional layer: torch's second direction (``_reverse`` weights) reads the
            # sequence backwards; its steps are kept in the order it runs them (sublayer 2k + 1)
            for direction in range(self.directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = [getattr(rnn, f"{p}{suffix}") for p in ("weight_ih", "weight_hh")]
                if rnn.bias:
                    weights += [getattr(rnn, f"{p}{suffix}") for p in ("bias_ih", "bias_hh")]
                else:
                    weights += [None, None]
                index = layer * self.directions + direction  # torch's h_n order
                h = h0[index] if h0 is not None else seq.new_zeros(n, self.proj or hsize)
                c = c0[index] if c0 is not None else seq.new_zeros(n, hsize)
                w_hr = getattr(rnn, f"weight_hr{suffix}") if self.proj else None
                steps: list[torch.Tensor] = []
                for t in (range(length - 1, -1, -1) if direction else range(length)):
                    h, c = step(rnn, self.kind, xs[t], h, c, weights)
                    if w_hr is not None:
                        h = nn.functional.linear(h, w_hr)  # the projection: what the next step and the output read
                    if h.requires_grad:
                        h.retain_grad()
                    steps.append(h)
                self.steps[index] = steps
                if self.kind == "lstm" and c.requires_grad:
                    # c_n's own copy: its gradient is what the loss reads of the final cell alone
                    # (c_{T-1}'s own holds h_{T-1}'s path through it too, counted again by g)
                    c = c.view_as(c)
                    c.retain_grad()
                    self.cells[index] = c
                last_h.append(h)
                last_c.append(c)
                outs.append(torch.stack(steps[::-1] if direction else steps, 0))
            inp = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
        # torch's layout: a contiguous (time, batch, features) tensor, seen transposed where
        # batch_first, which a forward may .view where torch's may (pytorch's word_language_model:
        # ``output.view(-1, hidden)``); a batch-major stack transposed was not contiguous and .view
        # failed on it in the check only (modsweep46 awaelchli_charlm_tied)
        out = inp.transpose(0, 1) if rnn.batch_first else inp
        h_n = torch.stack(last_h)
        return out, ((h_n, torch.stack(last_c)) if self.kind == "lstm" else h_n)


def run_recurrent(rnn: nn.Module, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
    """``rnn(x, hx)``: torch's fused module where its cell is torch's, else step by step (a cell
    :func:`gradhealth.analysis.cells.mark` made otherwise; the simulation's UnrolledRNN, when it has
    taken the module's place, runs itself)."""
    if runs_itself(rnn):
        return cast(tuple[torch.Tensor, Any], rnn(x, hx))
    return UnrolledRNN(cast(nn.RNNBase, rnn))(x, hx)  # a torch recurrent module, as runs_itself says


class StackedRNN(RecurrentStandIn):
    """A multi-layer ``nn.LSTM``/``GRU``/``RNN`` as one single-layer module per layer, each with a
    copy of that layer's weights and run as an :class:`UnrolledRNN`: every layer is then a unit of
    its own (its gradient norm, its dL/dh_t), as the ONNX exporter emits one node per layer, so the
    live-module and ONNX doors describe a stacked RNN alike. Named ``rnn``, ``rnn#2``, ... after
    the module (the ONNX door's names for the same nodes). Takes and returns what the wrapped module
    does; like :class:`UnrolledRNN`, no dropout between layers (the simulation runs without noise)."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self._remember(rnn)
        self.kind = RNN_TYPES[type(rnn)]
        self.directions = 2 if rnn.bidirectional else 1
        proj = int(getattr(rnn, "proj_size", 0))  # an LSTM with projections: each layer reads proj_size
        extra = ({"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN)
                 else {"proj_size": proj} if proj else {})
        first = next(rnn.parameters())
        layers = []
        for k in range(rnn.num_layers):
            cls: Any = type(rnn)  # nn.LSTM/GRU/RNN: (input_size, hidden_size, ...), unlike RNNBase
            single = cls(rnn.input_size if k == 0 else (proj or rnn.hidden_size) * self.directions,
                         rnn.hidden_size, num_layers=1, bias=rnn.bias, batch_first=rnn.batch_first,
                         bidirectional=rnn.bidirectional, device=first.device, dtype=first.dtype, **extra)
            with torch.no_grad():
                for name, param in single.named_parameters():  # weight_ih_l0[_reverse] <- ..._l{k}
                    param.copy_(getattr(rnn, name.replace("_l0", f"_l{k}")))
            if not run_fused(rnn):
                mark(single, *cell_of(rnn))
            layers.append(UnrolledRNN(single))
            setattr(layers[-1], "stack_layer", k + 1)  # noqa: B010 (a plain int on a Module: "layer 2 of rnn", UnitStats.stack_layer)
        self.layers = nn.ModuleList(layers)

    def _weight(self, name: str) -> torch.Tensor | None:
        found = _RNN_WEIGHT.fullmatch(name)
        k = int(found.group(3)) if found else len(self.layers)
        if k >= len(self.layers):
            return None
        # layer k's copy keeps it as its own layer 0 (the copy the simulation measures and trains)
        return cast("torch.Tensor | None", getattr(self.layers[k].rnn, name.replace(f"_l{k}", "_l0"), None))

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        d = self.directions
        h0: Any = None
        c0: Any = None
        if hx is not None:
            h0, c0 = hx if self.kind == "lstm" else (hx, None)
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        out = x
        for k, layer in enumerate(self.layers):
            state: Any = None
            if h0 is not None:
                h = h0[k * d:(k + 1) * d]
                state = (h, c0[k * d:(k + 1) * d]) if self.kind == "lstm" else h
            out, last = layer(out, state)
            if self.kind == "lstm":
                hs.append(last[0])
                cs.append(last[1])
            else:
                hs.append(last)
        h_n = torch.cat(hs)
        return out, ((h_n, torch.cat(cs)) if self.kind == "lstm" else h_n)


def unroll_recurrent(model: nn.Module) -> None:
    """Replace every recurrent module of ``model`` (a copy; bidirectional and projected ones too)
    by :class:`UnrolledRNN`, or a multi-layer one by a :class:`StackedRNN` of them."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) in RNN_TYPES:
                rnn = cast(nn.RNNBase, child)
                stand_in: nn.Module = StackedRNN(rnn) if rnn.num_layers > 1 else UnrolledRNN(rnn)
                # a hook on the module's input (a remedy's edit: normalise_inputs standardising what
                # a first-layer GRU reads) moves to the stand-in, whose step loop never calls the
                # module itself (kerassweep29: the edit was measured as changing nothing)
                stand_in._forward_pre_hooks.update(rnn._forward_pre_hooks)
                stand_in._forward_pre_hooks_with_kwargs.update(rnn._forward_pre_hooks_with_kwargs)
                rnn._forward_pre_hooks.clear()
                rnn._forward_pre_hooks_with_kwargs.clear()
                setattr(parent, child_name, stand_in)



# --- attention: the packed q/k/v projection as a module a hook can see ---------------------------

class AttentionInProjection(nn.Module):
    """The packed q/k/v projection of an ``nn.MultiheadAttention`` (``in_proj_weight``), which the
    module applies as a function, run as a module so the tracer measures it. Its unit is named
    after the attention module, as the ONNX exporter names its MatMul (``.../self_attn/MatMul``)."""

    role = Role("weight", "linear")

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self._owner = [attention]  # a list: a reference, not a child (no cycle, no duplicate params)

    @property
    def bias(self) -> torch.Tensor | None:
        return cast(torch.Tensor | None, self._owner[0].in_proj_bias)

    def fan(self) -> tuple[torch.Tensor | None, int | None, int | None]:
        w = cast(torch.Tensor, self._owner[0].in_proj_weight)
        return w, int(w.shape[1]), int(w.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self._owner[0]
        return nn.functional.linear(x, cast(torch.Tensor, m.in_proj_weight), m.in_proj_bias)


def _attention_forward(self: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                       value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                       need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                       average_attn_weights: bool = True, is_causal: bool = False) -> Any:
    """Self-attention with the same arithmetic as ``F.multi_head_attention_forward`` (softmax of
    q k^T / sqrt(d) plus the masks, times v), its two projections run as modules. No dropout:
    seeds differ by their batch only, as everywhere in the simulation."""
    proj = cast(AttentionInProjection, self.gradhealth_in_proj)
    x = query if self.batch_first else query.transpose(0, 1)  # [batch, length, embed]
    n, length, embed = x.shape
    heads, d = self.num_heads, embed // self.num_heads
    q, k, v = (t.reshape(n, length, heads, d).transpose(1, 2) for t in proj(x).chunk(3, dim=-1))
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    for mask in (attn_mask, key_padding_mask):
        if mask is None:
            continue
        if mask is key_padding_mask:
            mask = mask.reshape(n, 1, 1, -1)
        elif mask.dim() == 3:
            mask = mask.reshape(n, heads, length, -1)
        if mask.dtype == torch.bool:
            mask = torch.zeros_like(mask, dtype=scores.dtype).masked_fill(mask, -math.inf)
        scores = scores + mask.to(scores.dtype)
    weights = torch.softmax(scores, dim=-1)
    out = self.out_proj((weights @ v).transpose(1, 2).reshape(n, length, embed))
    out = out if self.batch_first else out.transpose(0, 1)
    if not need_weights:
        return out, None
    return out, weights.mean(dim=1) if average_attn_weights else weights


def expose_attention(model: nn.Module) -> None:
    """Give every plain self-attention module of ``model`` (a copy) a forward whose q/k/v and output
    projections are modules, so both are measured (``F.multi_head_attention_forward`` applies them
    as functions: no hook would see them). Cross-attention and the rarer variants (bias_k/bias_v,
    add_zero_attn, separate q/k/v weights) keep torch's forward and go unmeasured."""
    for m in list(model.modules()):
        if (isinstance(m, nn.MultiheadAttention) and m._qkv_same_embed_dim and m.bias_k is None
                and not m.add_zero_attn):
            m.gradhealth_in_proj = AttentionInProjection(m)
            original = m.forward

            def forward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any,
                        _m: nn.MultiheadAttention = m, _original: Any = original,
                        **kwargs: Any) -> Any:
                if query is key and key is value:
                    return _attention_forward(_m, query, key, value, *args, **kwargs)
                return _original(query, key, value, *args, **kwargs)
            m.forward = forward  # type: ignore[method-assign]  # on the copy only
        # Transformer layers built with activation="relu"/"gelu" hold F.relu/F.gelu, a function no
        # hook sees; as a module, the feed-forward unit carries its activation as the ONNX Gelu does
        if isinstance(m, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
            swap = {nn.functional.relu: nn.ReLU, nn.functional.gelu: nn.GELU}.get(m.activation)
            if swap is not None:
                m.activation = swap()

# --- units from a trace ------------------------------------------------------------------------

@dataclass
class Record:
    """One measured unit of one forward pass."""

    name: str
    pointer: str
    role: Role
    module: nn.Module
    inp: torch.Tensor | None
    out: torch.Tensor
    pre: torch.Tensor | None = None
    activation: str | None = None
    params: list[nn.Parameter] = field(default_factory=list)
    #: the folded activation's own parameters (``nn.LeakyReLU(0.2)``'s slope, ``F.elu(x, 0.5)``'s alpha)
    activation_params: dict[str, float] = field(default_factory=dict)
    #: a parametrized layer's weight as its forward computed it (weight_norm, spectral_norm):
    #: its gradient is the layer's, as for the weight an exporter folds into the file
    weight: torch.Tensor | None = None
    #: a norm (not a layer scale) was folded in: the unit's output ignores its weights' scale
    normalised: bool = False
    #: the layer's own output, before the activation or norm folded in (a pre-norm block's norm
    #: reads the stem's output, which also goes on down the residual stream)
    raw: torch.Tensor | None = None
    #: ``out``'s version counter when it became the unit's output: an in-place op since
    #: (``out += identity`` in a ResNet block) makes it another tensor's value (:func:`_reads`)
    version: int = 0
    #: the unit as it was before each norm folded into it, for :meth:`Tracer.settle`
    folds: list[Fold] = field(default_factory=list)
    #: the hidden state a recurrent cell's call read (``cell(x_t, h)``), every tensor of it (an
    #: LSTMCell's ``(h, c)``: both are carried to the next step): what makes its calls a loop
    state: list[torch.Tensor] = field(default_factory=list)
    #: what the activation folded in read (the unit's output before it), for :meth:`Tracer.settle`
    act_in: torch.Tensor | None = None
    #: the activation module folded in, by its qualified name and class ("head.5 (Sigmoid)"); None
    #: where none is, or the forward calls the activation as a function
    activation_at: str | None = None
    #: an activation unit of its own whose input something else reads too (:meth:`Tracer.settle`)
    bypassed: bool = False
    #: the range of ``out`` where its last step is an activation of known range (:func:`.losses.
    #: activation_image`), composed through a chain of them (a ReLU then a Sigmoid: [0.5, 1]); None
    #: where unknown (no activation last, or a norm or scale after it)
    out_range: tuple[float, float] | None = None
    #: ``out``'s autograd node when it became the unit's output: an in-place op since (a residual
    #: ``q += residual`` on the output of a layer a no-op dropout returned as is) gives the tensor
    #: the op's node, and the layer's own is the one the graph walks start from (:func:`branch_sums`)
    node: Any = None
    #: every other tensor the module returned (an RNN's h_n and c_n beside its sequence output),
    #: whose gradients count in the unit's output gradient (:func:`output_grad`)
    extra_outs: list[torch.Tensor] = field(default_factory=list)
    #: a recurrent module's call (:class:`UnrolledRNN`): the h_t of each of its time steps, by
    #: sublayer, and each sublayer's last cell state c_{T-1} (an LSTM's), as that call made them; the
    #: module keeps only its last call's, and a decoder stepped once per token is called many times
    steps: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    cells: dict[int, torch.Tensor] = field(default_factory=dict)


class Fold(NamedTuple):
    """A unit as it was before a norm folded into it, and the units that fold marked normalised."""

    out: torch.Tensor
    n_params: int
    normalised: bool
    activation: str | None
    pre: torch.Tensor | None
    marked: list[Record]


#: A unit's own activation through which a later norm still divides out its weights' scale.
_PASSES_SCALE = frozenset({None, *HOMOGENEOUS})

#: Autograd steps that are positively homogeneous in their one differentiable input,
#: f(c x) = c f(x) for c > 0: views and copies, padding, slicing, pooling (max and average),
#: means and sums, resizing, dropout's mask, a multiply or divide by a constant, relu.
#: (A constant pad is read as a zero pad: Keras' and ONNX's paddings before a norm are.)
_HOMOGENEOUS_STEPS = re.compile(
    r"(View|UnsafeView|ReshapeAlias|Alias|Clone|ToCopy|Permute|Transpose|T|Expand|Squeeze|"
    r"Unsqueeze|Slice|Select|ConstantPadNd|ReflectionPad\dD|ReplicationPad\dD|"
    r"MaxPool\dDWithIndices|MaxPool\dD|AvgPool\dD|AdaptiveAvgPool\dD|AdaptiveMaxPool\dD|Mean|Sum|"
    r"Amax|Max|UpsampleNearest\dD|UpsampleBilinear2D|UpsampleLinear1D|NativeDropout|Mul|Div|"
    r"Relu|LeakyRelu)Backward\d+")


#: Autograd steps that join tensors: homogeneous jointly when every operand is (a sum of two
#: branches, a concatenation); an operand that is a constant (1 + x) or a leaf (x + bias) is not.
_JOINS = re.compile(r"(Add|Sub|Cat|Stack)Backward\d+")


def homogeneous_sources(tensor: torch.Tensor | None, sources: dict[Any, Any],
                        limit: int = 4096) -> tuple[list[Any], bool] | None:
    """The values in ``sources`` (keyed by autograd node) of the tensors that ``tensor`` was
    computed from by positively homogeneous steps alone (:data:`_HOMOGENEOUS_STEPS`, each with
    one differentiable input, a divide only by a constant) and joins of such (:data:`_JOINS`),
    walking back from ``tensor``; with whether a join was crossed. None when a walk meets any
    other step first (a learned scale, a constant added, a saturating activation, a leaf) or
    visits more than ``limit`` steps: then ``tensor`` is not f(the sources' outputs) with
    f(c z) = c f(z)."""
    if tensor is None or tensor.grad_fn is None:
        return None
    found: dict[int, Any] = {}
    joined = False
    stack, seen = [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if len(seen) > limit:
            return None
        if node in sources:
            found.setdefault(id(sources[node]), sources[node])
            continue
        name = type(node).__name__
        inputs = [n for n, _ in node.next_functions]
        live = [n for n in inputs if n is not None]
        if _JOINS.fullmatch(name):
            if len(live) != len(inputs):
                return None
            joined = True
            stack.extend(live)
            continue
        if not _HOMOGENEOUS_STEPS.fullmatch(name):
            return None
        if len(live) != 1 or (name.startswith("Div") and inputs[0] is None):
            return None  # c / x is homogeneous of degree -1
        stack.append(live[0])
    return list(found.values()), joined


#: Layers whose output is linear in their weights (so scaling the output is scaling them).
_LINEAR_IN_WEIGHTS = re.compile(r"linear|conv\dd|embedding")
#: How far from exact cancellation a group's scale derivative may be and still count as zero:
#: a norm's epsilon breaks the invariance by about eps / Var (1e-5 for unit variance).
_SCALE_TOLERANCE = 1e-3


def scale_term(rec: Record) -> float | None:
    """<dL/d out, out> for the unit's layer output (None before backward, or where no gradient
    reached it): the loss's derivative along scaling that output alone."""
    out = rec.raw if rec.raw is not None else rec.out  # scaling the weights scales this
    if out.grad is None:
        return None
    return float((out.grad * out.detach()).sum())


def scale_invariant(group: Sequence[Record], terms: dict[int, float | None]) -> bool:
    """Whether the loss is unchanged to first order when every unit of ``group`` has its layer's
    output scaled by the same c > 0 (its weights and bias scaled by c), read from the backward
    pass just done. By Euler's theorem the derivative along that scaling is the sum over the
    units of <dL/d out, out>, zero when the loss is invariant. Each unit's own term need not be
    zero: a pre-activation residual stage's branch ends and shortcut projections are only
    invariant together. ``terms``: each unit's term by its id, filled as they are computed (a
    stage's groups overlap: each unit's is computed once)."""
    values = []
    for rec in group:
        if id(rec) not in terms:
            terms[id(rec)] = scale_term(rec)
        term = terms[id(rec)]
        if term is None:
            return False
        values.append(term)
    total = sum(abs(t) for t in values)
    if not math.isfinite(total):
        return False
    return abs(sum(values)) <= _SCALE_TOLERANCE * total  # all terms zero: invariant


#: How many autograd steps back from a call's input its previous call's output may be (the sums,
#: the activation, a concatenation with the step's input) for the calls to be one recurrence.
_CHAIN_HOPS = 8
#: How far back a selective scan's decay is searched for the state before it (a gate computed from
#: h_(t-1) through a layer is a gated cell's, not a scan's decay): further than a state's chain.
_GATE_HOPS = 4 * _CHAIN_HOPS
#: Fewer calls of one module than this in a chain are not read as a recurrence.
MIN_LOOP_CALLS = 3


def _feeds(earlier: Record, later: Record) -> bool:
    """Whether ``later``'s input is computed from ``earlier``'s outputs within a few autograd steps.
    A recurrent cell reads its state apart from its input, and every tensor of it is carried: an
    LSTMCell's ``(h, c)`` reads the ``h`` and the ``c`` its previous call returned (its other
    outputs, :attr:`Record.extra_outs`), either of which makes the calls one recurrence."""
    targets = {t.grad_fn for t in (earlier.out, earlier.raw, *earlier.extra_outs)
               if t is not None and t.grad_fn is not None}
    reads = later.state or ([later.inp] if later.inp is not None else [])
    return any(_within_hops(r.grad_fn, targets) for r in reads)


def _within_hops(start: Any, targets: set[Any], hops: int = _CHAIN_HOPS) -> bool:
    """Whether the autograd node ``start`` reaches one of ``targets`` within ``hops`` steps."""
    frontier, seen = [start] if start is not None else [], set()
    for _ in range(hops):
        nxt = []
        for node in frontier:
            if node in targets:
                return True
            if node in seen:
                continue
            seen.add(node)
            nxt += [f for f, _ in node.next_functions if f is not None]
        frontier = nxt
    return any(node in targets for node in frontier)


def loops(units: Sequence[Record]) -> dict[str, list[Record]]:
    """Modules a forward calls again and again on what their last call made: a recurrence written
    as a Python loop over a layer (``h = torch.tanh(self.inp(x[:, t]) + self.rec(h))``), or one
    layer applied over and over. Name -> its calls in order, when every call reads the one before."""
    calls: dict[str, list[Record]] = {}
    for rec in units:
        calls.setdefault(rec.name, []).append(rec)
    return {name: cs for name, cs in calls.items()
            if len(cs) >= MIN_LOOP_CALLS and cs[0].role.kind == "weight"
            and all(_feeds(a, b) for a, b in zip(cs, cs[1:], strict=False))}


def _state_read(rec: Record) -> torch.Tensor | None:
    """The tensor a looped call read as its recurrent input (a cell's state, its h where the state
    is (h, c); else its input)."""
    return rec.state[0] if rec.state else rec.inp


def shared_states(looped: Mapping[str, Sequence[Record]]) -> dict[str, tuple[list[str], list[torch.Tensor]]]:
    """The loops (:func:`loops`) that are one recurrence: a cell written from raw parameters
    (d2l's ``GRUScratch``: ``R = sigmoid(X W_xr + H W_hr + b_r)``, ``Z`` likewise, ``H~ = tanh(X W_xh
    + (R * H) W_hh + b_h)``, ``H = Z * H + ...``) calls one product per recurrent matrix at every
    step, and each reads the one state H the step before made from all of them. There is one dL/dH_t,
    so the gradient through time is the state's, not each matrix's (modsweep44 aye_gru_scratch: W_hh's
    products read as exploding 1.61 a step and W_hz's as vanishing, on one state). Loops called as
    often whose calls feed each other's next are grouped; each group of two or more -> (its members in
    forward order, the state of each step: the tensor every member's call of that step reads or
    derives its input from, from the first step whose state has a history). The first member names
    the group. A group whose state cannot be told at some step is left out (its loops stay apart)."""
    names = list(looped)
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ca, cb = looped[a], looped[b]
            if len(ca) != len(cb) or root(a) == root(b):
                continue
            k = len(ca) // 2  # a step in the middle: the first may read a constant h_0
            if _feeds(ca[k - 1], cb[k]) and _feeds(cb[k - 1], ca[k]):
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    out: dict[str, tuple[list[str], list[torch.Tensor]]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        states: list[torch.Tensor] = []
        for k in range(len(looped[members[0]])):
            read = [t for t in (_state_read(looped[n][k]) for n in members) if isinstance(t, torch.Tensor)]
            state = next((c for c in read if c.grad_fn is not None and all(
                o is c or _within_hops(o.grad_fn, {c.grad_fn}) for o in read)), None)
            if state is None and states:
                break  # no state every member reads at this step: not one recurrence
            if state is not None:
                states.append(state)
        else:
            if len(states) >= MIN_LOOP_CALLS:
                out[members[0]] = (members, states)
    return out


def elementwise_loops(decays: Mapping[str, list[tuple[torch.Tensor, torch.Tensor]]]) -> dict[str, list[torch.Tensor]]:
    """Element-wise recurrences a forward writes itself, h_t = a * h_{t-1} + u_t with a learned
    per-channel decay a (LRU, S4D's and Mamba's diagonal scans with a fixed decay, RWKV's time
    decay, a leaky integrator): the decay's name -> the states it multiplied, in order, where each
    product's state is made from the product before (within a few autograd steps). Each state
    then is one time step: dL/dh_t shrinks (|a| < 1) or grows (|a| > 1) by |a| a step back."""
    out: dict[str, list[torch.Tensor]] = {}
    for name, steps in decays.items():
        if len(steps) < MIN_LOOP_CALLS:
            continue
        if all(_within_hops(later[0].grad_fn, {earlier[1].grad_fn})
               for earlier, later in zip(steps, steps[1:], strict=False)):
            out[name] = [state for state, _ in steps]
            continue
        # Else the steps whose state is made from the step before in the chain. A leaky or EMA form,
        # h = a * h + (1 - a) * u_t (QRNN's and SRU's fo-pooling, minGRU), also scales each input
        # by a vector made from the decay's parameter: those products read no earlier product and
        # are no step of the recurrence; the first state (made from the input alone) is none either.
        chain: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i, (state, made) in enumerate(steps):
            before = {chain[-1][1].grad_fn} if chain else {m.grad_fn for _, m in steps[max(0, i - 2):i]}
            if _within_hops(state.grad_fn, before):
                chain.append((state, made))
        if len(chain) >= MIN_LOOP_CALLS and len(chain) >= len(steps) // 2:
            out[name] = [state for state, _ in chain]
    return out


def consumers(root: Any, by_output: dict[tuple[Any, int], set[Any]] | None = None) -> dict[Any, set[Any]]:
    """Every autograd node reachable from ``root`` -> the nodes that read its output; and, into
    ``by_output`` where given, each (node, output index) -> the nodes that read that one output (a
    chunk's three parts are one node's three outputs)."""
    readers: dict[Any, set[Any]] = {}
    stack, seen = [root], {root}
    while stack:
        node = stack.pop()
        for nxt, nr in node.next_functions:
            if nxt is None:
                continue
            readers.setdefault(nxt, set()).add(node)
            if by_output is not None:
                by_output.setdefault((nxt, nr), set()).add(node)
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return readers


def _scale_vector(module: nn.Module) -> torch.Tensor | None:
    """A module's one parameter when it is a vector (of shape (C,), (C, 1, 1) or the like) and
    the module has no other parameter or buffer: what a layer scale module holds."""
    params = list(module.parameters(recurse=False))
    if len(params) != 1 or any(True for _ in module.buffers(recurse=False)):
        return None
    p = params[0]
    return p if p.numel() > 1 and sum(d > 1 for d in p.shape) == 1 else None


def _multiplies(inp: torch.Tensor, out: torch.Tensor, vector: torch.Tensor) -> bool:
    """``out`` is ``inp`` times ``vector`` per channel, the channels last or at dim 1."""
    if inp.shape != out.shape or inp.dim() < 2:
        return False
    v = vector.detach().reshape(-1).to(inp.dtype)
    with torch.no_grad():
        if inp.shape[-1] == v.numel() and torch.allclose(inp.detach() * v, out.detach(), rtol=1e-6, atol=0):
            return True
        shape = (v.numel(), *[1] * (inp.dim() - 2))
        return bool(inp.shape[1] == v.numel() and torch.allclose(inp.detach() * v.reshape(shape), out.detach(),
                                                                  rtol=1e-6, atol=0))


def _reads(tensor: Any, rec: Record, out: Any) -> bool:
    """A call that read ``tensor`` and made ``out`` read ``rec``'s output as the unit made it:
    the same tensor, not changed in place since (``out += identity``: then it holds the block's
    sum), except by this very call (an in-place ReLU returns its input, one version on)."""
    if tensor is not rec.out:
        return False
    return bool(tensor._version == rec.version or (out is tensor and tensor._version == rec.version + 1))


def parametrized_weight(module: nn.Module) -> bool:
    """The module's ``weight`` is computed by a parametrization (weight_norm, spectral_norm)."""
    return bool(torch.nn.utils.parametrize.is_parametrized(module, "weight"))


def hook_computed_weight(module: nn.Module) -> torch.Tensor | None:
    """The ``weight`` a forward pre-hook computed for this call, where the module holds it as a
    plain tensor with a history, not a parameter (the old ``torch.nn.utils.weight_norm`` and
    ``spectral_norm``, from their originals ``weight_g``/``weight_v``, ``weight_orig``); None otherwise.
    Its gradient is the layer's, as a parametrization's computed weight."""
    weight = vars(module).get("weight")
    if isinstance(weight, torch.Tensor) and not isinstance(weight, nn.Parameter) and weight.grad_fn is not None:
        return weight
    return None


def first_tensor(value: Any) -> torch.Tensor | None:
    """The tensor ``value`` is, or the first in it: the first element of a tuple or list that holds
    one (past a leading None), or of a mapping (a Hugging Face ``ModelOutput``: its ``logits`` where
    it has them, else its first tensor field)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        # the first element that holds one: a model's ``(None, logits)`` when no labels are given
        # (the loss it would compute itself, absent) is its logits
        return next((t for t in map(first_tensor, value) if t is not None), None)
    if isinstance(value, Mapping):
        if isinstance(value.get("logits"), torch.Tensor):
            return cast(torch.Tensor, value["logits"])
        return next((t for t in map(first_tensor, value.values()) if t is not None), None)
    return None


def all_tensors(value: Any, depth: int = 4) -> list[torch.Tensor]:
    """Every tensor in ``value``: itself, or those in its tuples, lists and mappings (an RNN's
    ``(output, (h_n, c_n))``), nested up to ``depth``, in order, each once."""
    if isinstance(value, torch.Tensor):
        return [value]
    items = (value if isinstance(value, tuple | list) else value.values() if isinstance(value, Mapping) else ())
    found: list[torch.Tensor] = []
    for item in items if depth > 0 else ():
        for t in all_tensors(item, depth - 1):
            if not any(t is f for f in found):
                found.append(t)
    return found


def _state_apart(module: nn.Module, output: Any) -> tuple[Any, ...] | None:
    """A recurrent cell's output with each state tensor after its first (an LSTMCell's c beside h)
    replaced by a view of itself, the same values, which the forward then carries on and the loss
    reads: its gradient is what the next step and the loss give it, apart from the path inside the
    cell through its own h (h = o * tanh(c)), which h's gradient already carries back. So the last
    step's whole state (h_{T-1}, c_{T-1}) is carried back once (:meth:`.figures.Readout.add_carried`),
    as :class:`UnrolledRNN` keeps its c_n. None for any other module or output (a GRUCell's or
    RNNCell's h alone)."""
    if not isinstance(module, nn.RNNCellBase) or not isinstance(output, tuple) or len(output) < 2:
        return None
    rest = [t.view_as(t) if isinstance(t, torch.Tensor) and t.requires_grad else t for t in output[1:]]
    return (output[0], *rest)


def output_grad(rec: Record) -> torch.Tensor | None:
    """The gradient the loss gave ``rec``'s outputs: its output's, joined (flattened, concatenated:
    its norm is the norm over all of them) with that of each other tensor its module returned and
    the loss reached (an LSTM classifier reads h_n, not the per-step output: modsweep35 h08 read
    "no gradient reaches lstm" where its weights got one); None where the loss reached none."""
    if not rec.extra_outs:
        return rec.out.grad
    grads = [g for g in [rec.out.grad, *(t.grad for t in rec.extra_outs)] if g is not None]
    if len(grads) <= 1:
        return grads[0] if grads else None
    return torch.cat([g.reshape(-1) for g in grads])


def _views(a: Any, b: torch.Tensor) -> bool:
    """``a`` is a tensor holding ``b``'s values, maybe through a view (a permute, a reshape)."""
    return (isinstance(a, torch.Tensor) and a.numel() == b.numel()
            and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


@dataclass
class _OpenNorm:
    """A norm with an activation inside (timm's BatchNormAct2d) while it runs."""

    module: nn.Module
    inp: torch.Tensor | None
    read: bool = False  # read as a norm already (when its activation ran)


class Tracer:
    """Forward hooks on the leaf modules of a network, grouping what they see into units."""

    def __init__(self, model: nn.Module, names: dict[nn.Module, tuple[str, str]] | None = None,
                 functions: bool = False) -> None:
        self.units: list[Record] = []
        #: units that norms read jointly (through sums of branches), for :meth:`confirm`
        self.groups: list[list[Record]] = []
        #: norms with an activation inside running now (innermost last)
        self._open: list[_OpenNorm] = []
        #: the vectors of the layer scales folded into units (parameters, or an imported graph's
        #: stored constants), for :func:`layer_scale_names`
        self.layer_scales: list[torch.Tensor] = []
        #: products of a state by a learned per-channel vector, by the vector's parameter name
        #: (:func:`elementwise_loops`): (the state multiplied, the product)
        self.decays: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        #: the last product by a decay computed per step from one parameter the model holds itself
        #: (a selective scan's exp(delta_t * A)), by that parameter's name (``_selective_decay``)
        self.scan_products: dict[str, torch.Tensor] = {}
        #: the parameters whose decays were recorded as a selective scan's (``_selective_decay``):
        #: a decay exp(delta_t * A) computed per step from the input, Mamba's form
        self.selective: set[str] = set()
        #: the autograd nodes of the tensors the forward called ``.detach()`` on (a live module's)
        self.detached: list[Any] = []
        #: the function activations called more than once under one name, every call in order
        #: (:meth:`drop_repeated`)
        self.repeated: dict[str, list[Record]] = {}
        self._handles: list[Any] = []
        #: training-mode batch norms -> the fewest values per channel they normalised over
        self.batch_statistics: dict[str, int] = {}
        #: leaves running now (what they compute with functions is theirs): counted only where
        #: :class:`FunctionalOps` reads functions
        self.functions = functions
        self.inside = 0
        #: the softmax modules an imported graph ran over a weight layer's own features (its
        #: activation: a Keras Dense(softmax), an ONNX Softmax after a Gemm); the live door reads
        #: every softmax as a function instead (:class:`FunctionalOps`)
        self.softmaxes: list[SoftmaxCall] = []
        #: the weight units read last before a softmax whose every output is exactly 1 (over an axis of
        #: one element: attention pooling over one step), either door's: their output cannot change the
        #: softmax's, so they get no gradient (:func:`singleton_softmax`)
        self.singleton_softmax: set[str] = set()
        self.model = model
        #: the autograd nodes of in-place residual sums the forward made (``x += residual``, read by
        #: :class:`FunctionalOps`): the node the sum gave the tensor, and where the tensor is a view
        #: (a linear layer's output on a sequence) the ``CopySlices`` node that does the add in the
        #: graph; an Add by another name for :func:`branch_sums` and :func:`post_ln_units`
        self.inplace_sums: set[Any] = set()
        if names is None:
            names = {m: (n or type(m).__name__, f"module:{n}") for n, m in model.named_modules()}
            for m in list(names):
                if isinstance(m, AttentionInProjection):  # named after its attention module
                    names[m] = names[m._owner[0]]
        for stack in [m for m in names if isinstance(m, StackedRNN)]:
            base, pointer = names[stack]
            for k, layer in enumerate(stack.layers):
                names[layer] = (base if k == 0 else f"{base}#{k + 1}", pointer)
        for module, (name, pointer) in names.items():
            # a parametrized layer (weight_norm, spectral_norm) is a leaf: its only children
            # compute its weight
            is_leaf = isinstance(module, UnrolledRNN) or (
                not any(n != "parametrizations" for n, _ in module.named_children())
                and not isinstance(module, _UNDER_UNROLLED))
            if not is_leaf:
                if isinstance(module, NORM_MODULES):  # a norm with its activation inside (timm's
                    # BatchNormAct2d, GroupNormAct): read as the norm, then that activation
                    self._handles.append(module.register_forward_pre_hook(self._norm_enter))
                    self._handles.append(module.register_forward_hook(self._norm_leave))
                continue
            role = role_of(module)
            if role.kind == "other" and functions and any(p.dim() >= 2 for p in module.parameters(recurse=False)):
                # a custom layer holding its own weights (an equalised-learning-rate conv computing
                # F.conv2d(x, self.w * c)): what it computes is read as the parent's would be
                continue
            if functions:
                self._handles.append(module.register_forward_pre_hook(self._enter))
            if role.kind == "other":
                vector = _scale_vector(module)
                if vector is not None:  # maybe a layer scale module (timm's LayerScale)
                    self._handles.append(module.register_forward_hook(
                        functools.partial(self._scale_hook, name, pointer, vector)))
                elif functions:
                    self._handles.append(module.register_forward_hook(self._leave))
                elif isinstance(module, nn.Softmax) or role.type == "softmax":
                    self._handles.append(module.register_forward_hook(
                        functools.partial(self._softmax_hook, name, pointer)))
                continue
            hook = functools.partial(self._hook, name, pointer, role)
            self._handles.append(module.register_forward_hook(hook))

    def _enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.inside += 1

    def note_inplace_sum(self, node: Any) -> None:
        """``node``: what a tensor's in-place add of another tensor made it (an ``AddBackward0``;
        on a view, an ``AsStridedBackward0`` over the ``CopySlices`` that adds in the graph)."""
        self.inplace_sums.add(node)
        if type(node).__name__ == "AsStridedBackward0":
            self.inplace_sums.update(f for f, _ in node.next_functions if type(f).__name__ == "CopySlices")

    def _softmax_hook(self, name: str, pointer: str, module: nn.Module, args: tuple[Any, ...],
                      output: Any) -> torch.Tensor | None:
        """A softmax module of an imported graph applied to the output of the weight layer read
        last, over that layer's features (a Keras ``Dense(128, activation="softmax")`` before the
        head, kerassweep15 u09, read as no activation at all): measured as that layer's possible
        activation, as :meth:`FunctionalOps._softmax` measures a live module's, and swapped as a
        remedy's copy asks (its replacement returned as the module's output)."""
        inp, out = first_tensor(args), first_tensor(output)
        rec = self.units[-1] if self.units else None
        if rec is not None and out is not None and singleton_softmax(out):
            self.singleton_softmax.add(rec.name)
        if (inp is None or out is None or rec is None or rec.role.kind != "weight" or rec.activation is not None
                or not out.is_floating_point() or out.dim() < 2 or inp.shape != out.shape
                or not _reads(inp, rec, out)):
            return None
        dim = 1 if rec.role.channels_first else out.dim() - 1
        own = getattr(module, "dim", None)
        if out.shape[dim] < 2:
            return None
        if isinstance(own, int):
            if own % out.dim() != dim:
                return None
        else:  # an imported Softmax node (its axis not kept): over the features if their rows sum to 1
            with torch.no_grad():
                if not bool(torch.allclose(out.data.sum(dim), torch.ones((), dtype=out.dtype, device=out.device),
                                           atol=1e-3)):
                    return None
        swap = getattr(self.model, SWAP_ATTRIBUTE, None)  # a remedy's activation swap, verified
        if swap is not None and "softmax" in swap[0] and rec.name != swap[3]:
            return cast(torch.Tensor, swap[2](inp))
        self.softmaxes.append(SoftmaxCall(name, pointer, rec.name, out, softmax_counts(inp, out, dim),
                                          (int(out.shape[dim]), softmax_gain(out, dim))))
        return None

    def _scale_hook(self, name: str, pointer: str, vector: torch.Tensor, module: nn.Module,
                    args: tuple[Any, ...], output: Any) -> None:
        """A module holding one vector: a layer scale when its output is its input times the
        vector, per channel (timm's LayerScale and LayerScale2d, CaiT's, DeiT III's, EVA's)."""
        if self.functions:
            self.inside -= 1
        inp, out = first_tensor(args), first_tensor(output)
        if inp is None or out is None or not out.is_floating_point():
            return
        if _multiplies(inp, out, vector):
            self._unit_event(name, pointer, Role("norm", "layerscale"), module, args, inp, out)

    def _norm_enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._open.append(_OpenNorm(module, first_tensor(args)))
        if self.functions:
            self.inside += 1  # the functions it computes with (F.batch_norm, an activation) are its own

    def _norm_leave(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self.functions:
            self.inside -= 1
        norm = self._open.pop()
        out = first_tensor(output)
        if not norm.read and out is not None and out.is_floating_point():  # no activation ran inside
            self._norm_read(norm, out)

    def _inside_norm(self, act_input: torch.Tensor | None) -> None:
        """An activation runs inside an open norm-with-activation: the norm comes first, and its
        output is what the activation reads."""
        if self._open and not self._open[-1].read and act_input is not None:
            self._norm_read(self._open[-1], act_input)

    def _norm_read(self, norm: _OpenNorm, out: torch.Tensor) -> None:
        norm.read = True
        self._unit_event("", "", role_of(norm.module), norm.module, (norm.inp,), norm.inp, out)

    def _leave(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self.inside -= 1

    def _hook(self, name: str, pointer: str, role: Role, module: nn.Module, args: tuple[Any, ...],
              output: Any) -> Any:
        if self.functions:
            self.inside -= 1
        apart = _state_apart(module, output)
        output = apart if apart is not None else output
        inp, out = first_tensor(args), first_tensor(output)
        if out is None or not out.is_floating_point():
            return apart
        if isinstance(module, _BATCH_NORMS) and module.training and inp is not None and inp.dim() >= 2:
            values = inp.numel() // max(inp.shape[1], 1)
            self.batch_statistics[name] = min(values, self.batch_statistics.get(name, values))
        if role.kind == "act":
            self._inside_norm(inp)
        self._unit_event(name, pointer, role, module, args, inp, out)
        if self.units and self.units[-1].module is module and self.units[-1].out is out:
            # the module's other outputs (an RNN's h_n and c_n, which a classifier reads instead of
            # its sequence): the loss may reach the unit through them alone
            self.units[-1].extra_outs = [self._keep(t) for t in all_tensors(output)
                                         if t is not out and t.is_floating_point() and t.requires_grad]
        if isinstance(module, (nn.RNNCellBase, UnrolledRNN)) and len(args) > 1 and self.units \
                and self.units[-1].module is module:
            # the state it read, every tensor of it: an LSTMCell's (h, c), a GRUCell's or RNNCell's h,
            # an nn.LSTM's (h_0, c_0) (a decoder stepped once per token carries its (h, c) so)
            self.units[-1].state = [t for t in all_tensors(args[1:]) if t.is_floating_point()]
        if isinstance(module, UnrolledRNN) and self.units and self.units[-1].module is module:
            # this call's own time steps: the module keeps its last call's only
            self.units[-1].steps = {sub: list(hs) for sub, hs in module.steps.items()}
            self.units[-1].cells = dict(module.cells)
        return apart

    def _unit_event(self, name: str, pointer: str, role: Role, module: nn.Module, args: tuple[Any, ...],
                    inp: torch.Tensor | None, out: torch.Tensor) -> None:
        """What one hooked module's call (``inp`` -> ``out``) adds to the units: a new unit, or
        an activation or norm folded into the last one."""
        last = self.units[-1] if self.units else None
        if role.type == "layerscale":
            # a layer scale reads its layer's output, maybe through a view (ConvNeXt permutes
            # first), as either operand of its Mul
            follows = last is not None and any(_views(a, last.out) for a in args)
        else:
            follows = last is not None and _reads(inp, last, out)
        if role.kind in ("norm", "act") and follows and last is not None and last.activation is None:
            if role.kind == "act":
                last.pre, last.activation = _pre_activation(last.out, role.activation, getattr(module, "dim", -1)), role.activation
                last.activation_params = activation_params(role.activation, vars(module))
                last.act_in = last.out
                last.activation_at = f"{name} ({type(module).__name__})"
                last.out_range = activation_image(role.activation, None, last.activation_params)
            elif role.type != "layerscale":
                before = Fold(last.out, len(last.params), last.normalised, last.activation, last.pre, [])
                last.folds.append(before._replace(marked=self._normalise(last)))
            else:  # the vector: a parameter of the module, or the operand that is not the layer's
                self.layer_scales += list(module.parameters(recurse=False)) + [
                    a for a in args if isinstance(a, torch.Tensor) and not _views(a, last.out)]
            if role.kind != "act":
                last.out_range = None  # a norm or a scale after the activation: its range is gone
            last.params += list(module.parameters())
            self._advance(last, out)
            return
        if role.kind == "norm":
            if role.type != "layerscale":
                # a layer -> relu -> norm, or a layer -> pooling/padding/reshape -> norm: each step
                # is positively homogeneous (f(c z) = c f(z)), so the norm still makes the layer's
                # weights scale-invariant; the norm stays out of the unit (read before it)
                if follows and last is not None:
                    if last.activation in _PASSES_SCALE:
                        self._normalise(last)
                else:
                    self._reached(inp)
            return  # a norm that follows no weight layer (a pre-norm block's own): not a unit
        weight = None
        hooked = hook_computed_weight(module) if role.kind == "weight" else None
        if role.kind == "weight" and parametrized_weight(module):
            # under parametrize.cached() (instrumented_step) this is the tensor forward used
            weight = self._keep(cast(torch.Tensor, module.weight))
        elif hooked is not None:
            weight = self._keep(hooked)  # the old weight_norm's: its pre-hook computed it for this call
        elif isinstance(module, FunctionLayer) and module.computed is not None:
            weight = self._keep(module.computed)  # its gradient is the layer's, as a parametrization's
        kept = self._keep(out)
        if role.kind == "act" and not role.channels_first and isinstance(inp, torch.Tensor):
            # an activation of its own (ResNet's relu(x + f(x)), one after a concatenation): its
            # features lie where the layers' before it do, channels first after convolutions
            prior = next((u for u in reversed(self.units) if u.role.kind == "weight"), None)
            if prior is not None and prior.role.channels_first and prior.out.dim() == inp.dim():
                role = dataclasses.replace(role, channels_first=True)
        # an activation of its own reading the last unit's output as it made it: its range is its
        # activation's image of that output's range (a ReLU then a Sigmoid: [0.5, 1], not [0, 1])
        read_range = last.out_range if follows and last is not None else None
        self.units.append(Record(name, pointer, role, module, inp, kept,
                                 pre=inp if role.kind == "act" else None,
                                 activation=role.activation, params=list(module.parameters()),
                                 weight=weight, raw=kept, version=kept._version, node=kept.grad_fn,
                                 out_range=activation_image(role.activation, read_range,
                                                            activation_params(role.activation, vars(module)))
                                 if role.kind == "act" and role.activation is not None else None))

    def _reached(self, tensor: torch.Tensor | None) -> None:
        """Mark the units that ``tensor`` (a norm's input) is made of through positively
        homogeneous steps (:func:`homogeneous_sources`). One unit is normalised by construction;
        several, joined by sums or concatenations, are only when the loss is invariant to their
        joint scale, which :meth:`confirm` reads after the backward pass."""
        if tensor is None or tensor.grad_fn is None:
            return
        ends = self._ends()
        walk = homogeneous_sources(tensor, ends)
        if walk is None or not walk[0] or not all(passes for _, passes in walk[0]):
            return
        found, joined = list({id(u): u for u, _ in walk[0]}.values()), walk[1]
        if not joined and len(found) == 1:
            self._normalise(found[0], ends)
        elif all(u.role.kind == "weight" and _LINEAR_IN_WEIGHTS.fullmatch(u.role.type) for u in found):
            self.groups.append(found)

    def _ends(self) -> dict[Any, tuple[Record, bool]]:
        """Each unit by the autograd node of its output (with whether its activation passes a
        scale on) and of its layer's own output, before the activation or a norm."""
        ends: dict[Any, tuple[Record, bool]] = {}
        for u in self.units:
            if u.out.grad_fn is not None:
                ends[u.out.grad_fn] = (u, u.activation in _PASSES_SCALE)
            if u.raw is not None and u.raw.grad_fn is not None:
                ends[u.raw.grad_fn] = (u, True)
        return ends

    def _normalise(self, unit: Record, ends: dict[Any, tuple[Record, bool]] | None = None) -> list[Record]:
        """Mark ``unit`` normalised, and the chain of layers before it while each passes a scale
        on: a bias-free linear or convolution (with a relu or none) is homogeneous in its input,
        so the norm divides out the scale of the layer that feeds it too (a depthwise
        convolution whose pointwise convolution a BatchNorm reads: timm's and Keras' separable
        convolutions). Returns the units it marked that were not marked before."""
        marked = [] if unit.normalised else [unit]
        unit.normalised = True
        while (unit.role.kind == "weight" and unit.role.type != "embedding"
               and _LINEAR_IN_WEIGHTS.fullmatch(unit.role.type) and unit.activation in _PASSES_SCALE
               and getattr(unit.module, "bias", True) is None and unit.inp is not None):
            ends = ends if ends is not None else self._ends()
            walk = homogeneous_sources(unit.inp, ends)
            if (walk is None or walk[1] or len(walk[0]) != 1 or not walk[0][0][1] or walk[0][0][0].normalised
                    or walk[0][0][0].role.kind != "weight"):
                break
            unit = walk[0][0][0]
            unit.normalised = True
            marked.append(unit)
        return marked

    def drop_repeated(self) -> None:
        """After the forward: of the activation units of functions (:class:`FunctionActivation`)
        called more than once under one name (a hand-written cell's gate at every step, additive
        attention's tanh at every decoder step, a block shared across depth), one call stays in the
        units (a step of a loop, not a layer of the depth), whose saturation still counts (msweep13: a
        decoder's energies 78% saturated went unmeasured); every call is kept in ``repeated``, and the
        one measured is picked as a module's is, among those whose output reaches the loss
        (:func:`measured_calls`)."""
        seen: set[str] = set()
        kept = []
        for u in self.units:
            if isinstance(u.module, FunctionActivation):
                self.repeated.setdefault(u.name, []).append(u)
                if u.name in seen:
                    continue
                seen.add(u.name)
            kept.append(u)
        self.units = kept
        # every call stays known: which of them is measured is chosen after the backward, by which
        # reach the loss (:func:`measured_calls`); a name called once is none of these
        self.repeated = {name: calls for name, calls in self.repeated.items() if len(calls) > 1}

    def settle(self, loss: torch.Tensor) -> None:
        """After the forward: a norm folded into a layer whose output something else reads too
        is not that layer's (a pre-norm block's first norm reads the stem's output, which also
        goes down the residual stream, whose gradient is the stem's). The layer's unit is then
        what it was before that fold (a stem whose own norm a block's pre-norm reads next: the
        stem's norm stays, the block's goes); the stream's norms may still normalise it
        (:meth:`confirm`). Likewise an activation folded into such a layer is unfolded, and an
        activation unit of its own whose input another reader shares is marked ``bypassed``."""
        folded = [u for u in self.units if u.folds]
        activated = [u for u in self.units if u.act_in is not None]
        if not (folded or activated or any(isinstance(u.module, FunctionActivation) for u in self.units)) \
                or loss.grad_fn is None:
            return
        per_output: dict[tuple[Any, int], set[Any]] = {}
        readers = consumers(loss.grad_fn, per_output)

        def shared(t: torch.Tensor) -> bool:  # something besides one reader reads this very tensor
            return len(per_output.get((t.grad_fn, t.output_nr), ())) > 1

        for u in folded:
            for k, fold in enumerate(u.folds):
                if fold.out.grad_fn is None or len(readers.get(fold.out.grad_fn, ())) <= 1:
                    continue
                for later in u.folds[k:]:  # undo this fold and every one after it
                    for other in later.marked:
                        other.normalised = False
                u.out, u.params, u.activation, u.pre = fold.out, u.params[:fold.n_params], fold.activation, fold.pre
                u.node = None  # (read from the fold's output)
                if u.activation is None:
                    u.activation_params = {}
                u.normalised = fold.normalised
                del u.folds[k:]
                break
        # an activation unit of its own whose input something else reads too: the gradient may pass
        # by it (a focal loss's sigmoid beside its cross-entropy on the same logits: msweep13)
        for u in [*self.units, *(c for calls in self.repeated.values() for c in calls[1:])]:
            if isinstance(u.module, FunctionActivation) and u.inp is not None and u.inp.grad_fn is not None:
                u.bypassed = shared(u.inp)
        # likewise an activation that reads a layer's output something else reads too: the branch of
        # a pre-activation residual block, x + f(relu(x)) (HiFi-GAN's, an NF-ResNet's), whose layer's
        # gradient is the stream's; read after the activation it was the branch's share (msweep13)
        for u in activated:
            a = u.act_in
            if u.activation is None or a is None or a is u.out or a.grad_fn is None or not shared(a):
                continue
            u.activation, u.pre, u.act_in, u.out_range = None, None, None, None
            u.activation_params = {}
            self._advance(u, a)

    def confirm(self) -> None:
        """After backward: the candidate groups whose joint scale the loss ignores are normalised."""
        terms: dict[int, float | None] = {}
        for group in self.groups:
            if not all(u.normalised for u in group) and scale_invariant(group, terms):
                for u in group:
                    u.normalised = True

    @classmethod
    def _advance(cls, rec: Record, out: torch.Tensor) -> None:
        """``out`` (an activation's, a norm's or a layer scale's) becomes ``rec``'s output."""
        rec.out, rec.version, rec.node = cls._keep(out), out._version, out.grad_fn
        rec.extra_outs = []  # the module's other outputs are not the fold's

    @staticmethod
    def _keep(t: torch.Tensor) -> torch.Tensor:
        if t.requires_grad:
            t.retain_grad()
        return t

    def close(self) -> None:
        for h in self._handles:
            h.remove()


#: Set on a network copy by a remedy's activation swap: (the activations it replaces, the new
#: one's name, its module, the unit whose activation is kept or None), which :class:`FunctionalOps`
#: applies where the forward calls them as functions.
SWAP_ATTRIBUTE = "_gradhealth_activation_swap"


#: Activation functions by the activation they compute (as :data:`ACTIVATION_MODULES` for modules).
ACTIVATION_FUNCTIONS: dict[Any, str] = {
    nn.functional.relu: "relu", torch.relu: "relu", torch.relu_: "relu", torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu", nn.functional.relu6: "relu", nn.functional.leaky_relu: "leaky_relu",
    nn.functional.elu: "elu", nn.functional.selu: "selu", torch.selu: "selu", nn.functional.gelu: "gelu",
    nn.functional.silu: "silu", nn.functional.softplus: "softplus", torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid", nn.functional.sigmoid: "sigmoid", torch.tanh: "tanh",
    torch.Tensor.tanh: "tanh", nn.functional.tanh: "tanh", nn.functional.hardtanh: "hardtanh",
    nn.functional.hardsigmoid: "hardsigmoid", nn.functional.glu: "glu"}


def activation_params(name: str | None, given: Mapping[str, Any]) -> dict[str, float]:
    """The parameters of activation ``name`` (:func:`theory.activation_parameters`) from a module's
    attributes or a function call's arguments, where they are plain numbers."""
    if name is None:
        return {}
    numbers = {k: float(v) for k, v in given.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return theory.activation_parameters(name, numbers)


_CLAMPS = (torch.clamp, torch.Tensor.clamp, torch.clip, torch.Tensor.clip)
_CLAMP_MINS = (torch.clamp_min, torch.Tensor.clamp_min)


def clamp_activation(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The activation a clamp computes when a forward uses one as such: ``clamp(min=0)`` (with a
    cap of 6 or more, or none) is the ReLU, ``clamp(-1, 1)`` the hardtanh; other bounds, or
    bounds given as tensors, none."""
    if func in _CLAMP_MINS:
        low, high = args[1] if len(args) > 1 else kwargs.get("min"), None
    elif func in _CLAMPS:
        low = args[1] if len(args) > 1 else kwargs.get("min")
        high = args[2] if len(args) > 2 else kwargs.get("max")
    else:
        return None
    if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in (low, high)):
        return None
    if low == 0 and (high is None or high >= 6):  # ReLU6's cap is the ReLU's, as nn.ReLU6 reads
        return "relu"
    if low == -1 and high == 1:
        return "hardtanh"
    return None


#: Layer functions a forward may call on parameters of its own (``F.linear(x, self.w, self.b)``).
LAYER_FUNCTIONS: dict[Any, str] = {nn.functional.linear: "linear", nn.functional.conv1d: "conv1d",
                                   nn.functional.conv2d: "conv2d", nn.functional.conv3d: "conv3d"}


def einsum_fans(equation: str, weight_shape: tuple[int, ...],
                any_layout: bool = False) -> tuple[tuple[int, int], bool] | None:
    """((fan_in, fan_out), channels_first) of ``x, w -> y`` written ``"xs,ws->ys"`` as a layer: the
    weight's sizes the product contracts with the input, those it makes in the output, and whether
    the output's units lie along its second axis (b c h w) rather than its last; None for a product
    that is no layer (a scale, a diagonal, no axis of the weight's own in the output).
    ``any_layout``: also a layer where the units lie on neither of those axes (a live module's
    ``"bhni,hoi->bhon"``), read as units last: its fans and gradients are exact, and only a ReLU's
    dead-unit count after it reads whole slices along the last axis (it can under-count, never
    over-count)."""
    if "->" not in equation or "." in equation:
        return None
    lhs, produced_by = equation.replace(" ", "").split("->")
    parts = lhs.split(",")
    if len(parts) != 2 or len(parts[1]) != len(weight_shape):
        return None
    xs, ws = parts
    contracted = [i for i, c in enumerate(ws) if c in xs and c not in produced_by]
    made = [i for i, c in enumerate(ws) if c in produced_by and c not in xs]
    own = {ws[i] for i in made}
    last = bool(produced_by) and produced_by[-1] in own
    channels_first = not last and len(produced_by) > 1 and produced_by[1] in own
    if not contracted or not made or not (last or channels_first or any_layout):
        return None
    return (math.prod(int(weight_shape[i]) for i in contracted), math.prod(int(weight_shape[i]) for i in made)), channels_first


def matmul_fans(weight_shape: tuple[int, ...], input_dims: int, input_lead: tuple[int, ...],
                weight_first: bool) -> tuple[tuple[int, int], bool] | None:
    """((fan_in, fan_out), channels_first) of ``torch.matmul`` (or ``bmm``, ``mm``) of an input with
    a weight of ``weight_shape`` as a layer, the weight on either side and at any rank: ``x @ W``
    with W [..., in, out] or ``W @ x`` with W [..., out, in] (a capsule layer's
    ``W[j, i] @ u[i]``, msweep28 capsnet: W [10, 1152, 16, 8] before a [B, 1, 1152, 8, 1] input).
    fan_in is the contracted size; fan_out the produced size times each leading size of the
    weight's that the input lacks or holds once (the input is broadcast along it: every input
    feeds that many more outputs, as an einsum axis of the weight's own). Leading sizes both hold
    are groups (experts, heads, capsules), counted in neither. ``input_lead``: the input's sizes
    before its last two (``()`` for a 1-D or a 2-D input). None for a 1-D weight (a weighted sum).
    The units lie last for ``x @ W`` and for ``W @ v`` with v a vector; for ``W @ x`` on a 3-D
    output ([B, out, L], a 1x1 convolution) second; else on the output's second-last axis, read as
    last (see :func:`einsum_fans`' ``any_layout``)."""
    if len(weight_shape) < 2 or input_dims < 1:
        return None
    fan_in, fan_out = (weight_shape[-1], weight_shape[-2]) if weight_first else (weight_shape[-2], weight_shape[-1])
    lead = weight_shape[:-2]
    for back in range(1, len(lead) + 1):
        if back > len(input_lead) or input_lead[-back] == 1:
            fan_out *= lead[-back]
    out_dims = (max(len(lead), len(input_lead)) + 2) if input_dims >= 2 else len(lead) + 1
    channels_first = weight_first and input_dims >= 2 and out_dims == 3
    return (int(fan_in), int(fan_out)), channels_first


def _expand_ellipsis(subscripts: list[str], produced_by: str, dims: list[int]) -> tuple[list[str], str] | None:
    """An einsum's subscripts with each ``...`` spelled out in letters the equation does not use
    (broadcast from the right, as torch does), for operands of ``dims`` dimensions; None where the
    equation cannot be read so."""
    used = set("".join(subscripts) + produced_by)
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    spans = [d - (len(sub) - 3) if "..." in sub else 0 for sub, d in zip(subscripts, dims, strict=True)]
    width = max(spans, default=0)
    if min(spans, default=0) < 0 or width > len(free) or produced_by.count("...") > 1:
        return None
    letters = "".join(free[:width])
    spelled = [sub.replace("...", letters[width - n:]) for sub, n in zip(subscripts, spans, strict=True)]
    return spelled, produced_by.replace("...", letters)


#: The autograd steps that only lay out a parameter's values anew (a view, a permute, an expand
#: along a batch or group axis): a product with what they make is a product with the parameter.
_LAYOUT_STEPS = frozenset({
    "ExpandBackward0", "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "UnsqueezeBackward0",
    "SqueezeBackward0", "SqueezeBackward1", "SqueezeBackward2", "PermuteBackward0", "TransposeBackward0",
    "TBackward0", "AliasBackward0", "CloneBackward0", "ToCopyBackward0", "RepeatBackward0"})
#: Steps that join tensors: layout alone where every tensor joined is the same one, copies of it
#: (``torch.cat([W] * batch)``, a 2017 capsule layer's batch tiling: what ``W.expand`` does by view)
_COPY_STEPS = frozenset({"CatBackward0", "StackBackward0"})


def _laid_out(t: torch.Tensor) -> torch.Tensor | None:
    """The leaf ``t`` is made from by :data:`_LAYOUT_STEPS` alone (one chain, a few steps; copies
    of one tensor joined, :data:`_COPY_STEPS`, are one link of it), or None."""
    node = t.grad_fn
    for _ in range(8):
        if node is None:
            return None
        variable = getattr(node, "variable", None)
        if variable is not None:
            return cast(torch.Tensor, variable)
        if node.name() not in _LAYOUT_STEPS | _COPY_STEPS:
            return None
        children = [child for child, _ in node.next_functions if child is not None]
        if node.name() in _COPY_STEPS:
            children = list({id(child): child for child in children}.values())
        if len(children) != 1:
            return None
        node = children[0]
    return None


#: The calls that cut a tensor from the autograd graph on purpose (:attr:`Tracer.detached`).
_DETACHES = (torch.Tensor.detach, torch.detach)
#: The calls whose result carries no gradient of their input (a comparison, a Heaviside step, an
#: argmax): a step built from them (``out[x > 0] = 1``, a spiking neuron's threshold) cuts the graph
#: as a .detach() does, its derivative 0 almost everywhere (:attr:`FunctionalOps.steps`).
_STEPS = (torch.Tensor.__gt__, torch.Tensor.__ge__, torch.Tensor.__lt__, torch.Tensor.__le__, torch.gt, torch.ge,
          torch.lt, torch.le, torch.Tensor.gt, torch.Tensor.ge, torch.Tensor.lt, torch.Tensor.le, torch.heaviside,
          torch.Tensor.heaviside, torch.argmax, torch.Tensor.argmax, torch.argmin, torch.Tensor.argmin)
_STEP_WORDS = {"gt": "a comparison >", "ge": "a comparison >=", "lt": "a comparison <", "le": "a comparison <=",
               "heaviside": "torch.heaviside"}


class FunctionActivation(nn.Module):
    """The unit of an activation a forward calls as a function on something no single layer made
    (``F.relu(self.a(x) + self.b(x))``, ``torch.tanh(torch.cat(...))``): no module computes it, so
    this placeholder stands for it, as an activation module's call would (ResNet's ``self.relu``
    after its sum). Named after the unit before it (``conv2>relu``); one called more than once a
    forward (in a loop, or a block shared across depth) is left out (:meth:`Tracer.drop_repeated`)."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self.role = Role("act", "activation", activation)


class ElementwiseScan(nn.Module):
    """The unit of an element-wise recurrence (:func:`elementwise_loops`): no module of the model
    computes it, so this placeholder stands for it in the records (its pointer names the decay)."""


class FunctionLayer(nn.Module):
    """A layer a forward computes with a function on parameters it holds itself (``F.linear(x,
    self.ws[k], self.bs[k])`` over a ``ParameterList``): the unit the call makes, holding the
    model's own weight and bias (not copies). Its pointer is ``function:<weight's name>``."""

    def __init__(self, kind: str, weight: nn.Parameter, bias: nn.Parameter | None,
                 transposed: bool = False, fans: tuple[int, int] | None = None,
                 channels_first: bool | None = None) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.transposed = transposed  # x @ W: the weight is stored [in, out]
        #: (fan_in, fan_out) where the weight's layout does not say them (an einsum's, a batched
        #: product's [experts, in, out]); None: read from the weight as a module's
        self.fans = fans
        #: the weight this call computed from ``weight`` (w * c, a modulated weight), or None
        self.computed: torch.Tensor | None = None
        self.role = Role("weight", kind, channels_first=kind != "linear" if channels_first is None else channels_first)


#: The softmax calls a forward may make (``nn.Softmax`` calls ``F.softmax``).
_SOFTMAXES = (torch.softmax, torch.Tensor.softmax, nn.functional.softmax)
#: A row of a softmax is one-hot when its largest probability passes this: its Jacobian
#: diag(p) - p p^T is then within 0.01 of 0, so the scores before it get almost no gradient.
SOFTMAX_ONE_HOT = 0.99
#: A score at or below this is a mask (``masked_fill(mask, -inf)``, -1e9, finfo.min, HF's -10000),
#: not a logit: a row with a single entry above it (a causal mask's first row) is one-hot by design.
SOFTMAX_MASKED = -1e4


@dataclass
class SoftmaxCall:
    """A softmax a live module's forward computed (an attention's, a router's): where, and its
    counts of one-hot rows and of rows with two entries or more unmasked (0-d tensors)."""

    module: str
    site: str | None
    after: str | None  # the unit the tracer read last before it
    out: torch.Tensor
    counts: torch.Tensor  # [one-hot rows, rows with >= 2 unmasked entries]
    #: a softmax over the features of the weight unit read last, on its output as that unit made it
    #: (``F.softmax(self.conv(x), dim=1)``): its activation, if a weight layer reads it
    #: (:func:`softmax_figures`); (its features, its mean Jacobian gain :func:`softmax_gain`), else None
    hidden: tuple[int, torch.Tensor] | None = None


def singleton_softmax(out: torch.Tensor) -> bool:
    """Whether a softmax's output is exactly 1 everywhere: it ran over an axis of one element (any
    row of two or more entries sums to 1 with each under 1), so its input cannot change it."""
    return out.is_floating_point() and out.numel() > 0 and bool((out.detach() == 1).all())


def softmax_gain(out: torch.Tensor, dim: int) -> torch.Tensor:
    """The root-mean-square gain of a softmax's Jacobian J = diag(p) - pp^T over ``dim`` (0-d): the
    mean over rows of sqrt(||J||_F^2 / k), what a random backward signal keeps through it. A flat row
    over k features (p = 1/k) gives sqrt((k - 1) / k^3), about 1/k."""
    with torch.no_grad():
        p = out.data.movedim(dim, -1).double()
        p2 = (p * p).sum(dim=-1)
        frob = p2 - 2 * (p ** 3).sum(dim=-1) + p2 * p2  # ||diag(p) - pp^T||_F^2
        return (frob.clamp_min(0) / p.shape[-1]).sqrt().mean()


def softmax_counts(inp: torch.Tensor, out: torch.Tensor, dim: int) -> torch.Tensor:
    """[rows whose largest probability is > :data:`SOFTMAX_ONE_HOT`, rows judged] of a softmax
    over ``dim`` of ``inp`` giving ``out``; rows with fewer than two unmasked scores are not judged."""
    with torch.no_grad():
        # .data, not .detach(): inside the traced forward a .detach() reads as the model's own cut
        p = out.data.movedim(dim, -1)
        judged = (inp.data.movedim(dim, -1) > SOFTMAX_MASKED).sum(dim=-1) >= 2
        one_hot = (p.amax(dim=-1) > SOFTMAX_ONE_HOT) & judged
        return torch.stack([one_hot.sum(), judged.sum()])


#: An in-place add of a tensor (``x += residual``: torch calls ``add_``), read as a residual sum.
_INPLACE_ADDS = (torch.Tensor.add_, torch.Tensor.__iadd__)
#: What takes one slice of a stacked parameter along its first axis (``self.W[i]``,
#: ``self.W.select(0, i)``, ``for w in self.W``): one layer's weight of a stack of them.
_SLICES = (torch.Tensor.__getitem__, torch.Tensor.select, torch.select, torch.Tensor.unbind, torch.unbind,
           torch.Tensor.__iter__)


class FunctionalOps(torch.overrides.TorchFunctionMode):
    """What a live module computes with functions rather than modules, folded into the unit it
    applies to as the Tracer folds an activation or a norm module (the live door only: an imported
    graph's every op is a module).

    * an activation function on a layer's output (``F.relu(self.fc(x))``, ``torch.tanh``,
      ``x.sigmoid()``): without it a network written with ``F.relu`` had no activation to measure,
      so no dead or saturated units, and its gradients were read before the activation;
    * a multiply by a learned per-channel vector no leaf module owns (torchvision's ConvNeXt:
      ``self.layer_scale * self.block(x)``, a Parameter of the block, 1e-6 at init): else the
      branch's last layer reads 1e-6 below the stream, a 1e6x "explosion" from the stem;
    * a layer function on a parameter of the model (``F.linear``, ``F.conv2d``): a unit of its
      own (:class:`FunctionLayer`), named after its weight; without it a network written so had
      no layers at all.
    Only calls outside every hooked module are read (an ``nn.ReLU`` calls ``F.relu`` itself)."""

    _MULS = (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__)
    #: ``x @ self.W`` with W a matrix the model holds: a linear layer stored [in, out]
    _MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm)
    #: a product of an input with a weight the model holds, written as one call: ``torch.einsum``
    #: (a KAN's basis coefficients, a per-head projection) and a (batched) product with a weight of
    #: any rank on either side (``torch.bmm(x, self.experts)``, a mixture of experts; a capsule
    #: layer's ``torch.matmul(self.weight, u[:, None, :, :, None])``)
    _EINSUMS = (torch.einsum,)
    _BATCHED = (torch.bmm, torch.Tensor.bmm, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
                torch.mm, torch.Tensor.mm)
    #: Reshapes of a scale vector before the multiply (timm's ConvNeXt:
    #: ``x.mul(self.gamma.reshape(1, -1, 1, 1))``): the result is the same scale.
    _VIEWS = (torch.Tensor.reshape, torch.Tensor.view, torch.reshape, torch.Tensor.unsqueeze,
              torch.unsqueeze, torch.Tensor.expand, torch.Tensor.expand_as, torch.Tensor.permute,
              torch.permute, torch.Tensor.to, torch.Tensor.type_as)

    def __init__(self, tracer: Tracer, model: nn.Module) -> None:
        super().__init__()
        self.tracer, self.model = tracer, model
        #: id -> (the tensor, the parameter it is or is a reshape of): the parameters, and their
        #: reshapes made during the forward (held here, so that their ids stay theirs)
        self.scales: dict[int, tuple[torch.Tensor, torch.Tensor]] = {
            id(p): (p, p) for m in model.modules() if any(True for _ in m.children())
            for p in m.parameters(recurse=False) if p.numel() > 1}
        self.param_names = {id(p): n for n, p in model.named_parameters()}
        #: the units the tracer names after a module: a weight leaf's (a tied decoder's F.linear on
        #: an embedding's weight is told apart from it); a custom module computing with its own
        #: weight (msweep28's DenseCapsule) is no unit, and its product is named after it plainly
        self.module_names = {n for n, m in model.named_modules() if role_of(m).kind == "weight"
                             and not any(c != "parametrizations" for c, _ in m.named_children())}
        #: by the weight's id, or (its id, the slice's index) for one slice of a stacked parameter
        self.layers: dict[Any, tuple[str, FunctionLayer]] = {}
        #: id -> (the tensor, the stacked parameter it is one slice of, its index along the first
        #: axis): the slices the forward took (held here, so that their ids stay theirs)
        self.slices: dict[int, tuple[torch.Tensor, nn.Parameter, int]] = {}
        self.activations: dict[str, FunctionActivation] = {}
        #: every softmax the forward computed, the output's included (:func:`softmax_figures` drops it)
        self.softmaxes: list[SoftmaxCall] = []
        #: the weights of layer functions the forward computed from no parameter of their shape (a
        #: hypernetwork's generated kernels, modsweep49 #2), by id -> (their kind, the tensor, held
        #: so that ids stay theirs): no unit, counted so that the report says they were not measured
        self.computed: dict[int, tuple[str, torch.Tensor]] = {}
        #: the step functions (:data:`_STEPS`) the forward applied to a tensor with a gradient, by name
        self.steps: set[str] = set()
        self._module_of = {id(m): n or type(m).__name__ for n, m in model.named_modules()}

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        tracer = self.tracer
        if func in _SLICES and not tracer.inside:
            out = self._note_slices(func, args, kwargs or {}, out)
        if func in _SOFTMAXES:
            return self._softmax(args, kwargs or {}, out)
        if (func in _STEPS and not tracer.inside and torch.is_grad_enabled() and args
                and isinstance(args[0], torch.Tensor) and args[0].requires_grad and args[0].is_floating_point()):
            # (not in a torch.autograd.Function's forward, run without grad: a surrogate spike's own step)
            name = func.__name__.strip("_")
            self.steps.add(_STEP_WORDS.get(name, name))
        if func in _DETACHES and args and isinstance(args[0], torch.Tensor) and args[0].grad_fn is not None:
            tracer.detached.append(args[0].grad_fn)
            return out
        if (func in _INPLACE_ADDS and len(args) >= 2 and isinstance(args[0], torch.Tensor)
                and isinstance(args[1], torch.Tensor) and not isinstance(args[1], nn.Parameter)
                and args[0].grad_fn is not None):
            tracer.note_inplace_sum(args[0].grad_fn)
        if (func in LAYER_FUNCTIONS and not tracer.inside and len(args) >= 2 and isinstance(out, torch.Tensor)
                and out.is_floating_point() and isinstance(args[1], torch.Tensor)):
            # the model's weight, or one the forward computes from it (an equalised learning rate's
            # w * c, a standardised or a style-modulated weight): a layer all the same
            sliced = self._slice(args[1])
            if sliced is not None:  # F.linear(x, self.W[i]): layer i of a stack
                w = args[1]
                fans = (int(w[0].numel()), int(w.shape[0] * (w[0][0].numel() if w.dim() > 2 else 1)))
                self._layer(LAYER_FUNCTIONS[func], args, kwargs or {}, out, source=sliced[0], index=sliced[1],
                            fans=fans)
                return out
            source = args[1] if isinstance(args[1], nn.Parameter) else self._source(args[1])
            if source is not None:
                self._layer(LAYER_FUNCTIONS[func], args, kwargs or {}, out, source=source)
                return out
            if args[1].requires_grad and args[1].grad_fn is not None:
                # a kernel made by other layers (a hypernetwork's): trained through them, not a layer here
                self.computed[id(args[1])] = (LAYER_FUNCTIONS[func], args[1])
        if (func in self._MATMULS and not tracer.inside and len(args) == 2 and isinstance(args[1], torch.Tensor)
                and args[1].dim() == 2 and isinstance(args[0], torch.Tensor) and not isinstance(args[0], nn.Parameter)
                and args[0].dim() >= 2 and isinstance(out, torch.Tensor) and out.is_floating_point()):
            sliced = self._slice(args[1])
            if sliced is not None:
                # x @ self.W[i], a slice of a stacked [L, in, out] parameter: layer i of a stack, each
                # slice a layer of its own, its weight gradient the slice's
                self._layer("linear", args, {}, out, transposed=True, source=sliced[0], index=sliced[1],
                            fans=(int(args[1].shape[0]), int(args[1].shape[1])))
                return out
            if isinstance(args[1], nn.Parameter):
                # a recurrence written from scratch, h = tanh(x_t @ W + h @ U + b): each product a layer
                self._layer("linear", args, {}, out, transposed=True)
                return out
            base = args[1]._base
            if isinstance(base, nn.Parameter) and base.dim() == 2 and args[1].shape == base.shape[::-1] \
                    and args[1].stride() == base.stride()[::-1]:
                # x @ W.t(): F.linear(x, W) written as a product (Glow's 1x1 mixing, a tied head)
                self._layer("linear", (args[0], base), {}, out, source=base)
                return out
        if (func in self._EINSUMS or func in self._BATCHED) and not tracer.inside and isinstance(out, torch.Tensor) \
                and out.is_floating_point() and self._product_layer(func, args, out):
            return out
        if (func in self._MULS and not tracer.inside and len(args) == 2 and isinstance(out, torch.Tensor)
                and out.is_floating_point() and out.requires_grad):
            self._decay(args[0], args[1], out)
        if tracer.inside or not tracer.units or not isinstance(out, torch.Tensor) or not args:
            return out
        if func in self._VIEWS and id(args[0]) in self.scales and out.numel() == args[0].numel():
            self.scales[id(out)] = (out, self.scales[id(args[0])][1])
            return out
        last = tracer.units[-1]
        own = ACTIVATION_FUNCTIONS.get(func)
        if own is not None and not (last.activation is None and last.role.kind == "weight"
                                    and _reads(args[0], last, out)):
            return self._own_activation(own, args[0], out, last)
        if last.activation is not None or last.role.kind != "weight":
            return out
        name = own or clamp_activation(func, args, kwargs or {})
        if name is not None and _reads(args[0], last, out):
            swap = getattr(self.model, SWAP_ATTRIBUTE, None)  # a remedy's activation swap, verified
            if swap is not None and name in swap[0] and last.name != swap[3]:
                name, out = swap[1], swap[2](args[0])
            last.pre = _pre_activation(last.out, name, args[1] if len(args) > 1 else (kwargs or {}).get("dim", -1))
            last.activation, last.act_in = name, last.out
            given = dict(zip(("negative_slope" if name == "leaky_relu" else "alpha",), args[1:2], strict=False)) | (kwargs or {})
            last.activation_params = activation_params(name, given)
            last.out_range = activation_image(name, None, last.activation_params)
            tracer._advance(last, out)
        elif func in self._MULS and len(args) == 2 and self.scales:
            a, b = args
            x, scale = (b, a) if id(a) in self.scales else (a, b) if id(b) in self.scales else (None, None)
            if _views(x, last.out) and out.numel() == last.out.numel():
                tracer._advance(last, out)
                tracer.layer_scales.append(self.scales[id(scale)][1])
        return out

    def _softmax(self, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        """Count the one-hot rows of a softmax (one reduction): an attention whose scores are not
        scaled by 1/sqrt(d_head) is one-hot in most rows at init (msweep27 linformer_lm_nosqrt:
        80.5% against 5%), which no measured activation unit showed. A softmax over a weight
        layer's own features (not an attention's scores, a product of two activations) is also
        measured as that layer's possible activation (:attr:`SoftmaxCall.hidden`), and swapped as a
        remedy's copy asks; returns the call's output."""
        inp = args[0] if args else kwargs.get("input")
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if isinstance(out, torch.Tensor) and self.tracer.units and singleton_softmax(out):
            self.tracer.singleton_softmax.add(self.tracer.units[-1].name)
        if not (isinstance(inp, torch.Tensor) and isinstance(out, torch.Tensor) and isinstance(dim, int)
                and out.is_floating_point() and out.dim() >= 1 and inp.shape == out.shape and out.shape[dim] >= 2):
            return out
        module, site = self._site()
        units = self.tracer.units
        rec = units[-1] if units else None
        hidden = None
        if (rec is not None and rec.role.kind == "weight" and rec.activation is None and _reads(inp, rec, out)
                and out.dim() >= 2 and dim % out.dim() == (1 if rec.role.channels_first else out.dim() - 1)):
            swap = getattr(self.model, SWAP_ATTRIBUTE, None)  # a remedy's activation swap, verified
            if swap is not None and "softmax" in swap[0] and rec.name != swap[3]:
                return swap[2](inp)
            hidden = (int(out.shape[dim]), softmax_gain(out, dim))
        self.softmaxes.append(SoftmaxCall(module, site, rec.name if rec is not None else None, out,
                                          softmax_counts(inp, out, dim), hidden))
        return out

    def _site(self) -> tuple[str, str | None]:
        """(the module whose forward made the call, its ``file:line (code)`` as :func:`caller` says
        it), from the one frame both come from (:func:`user_frame`)."""
        frame = user_frame()
        if frame is None:
            return "forward", None
        owner = frame.f_locals.get("self")
        return self._module_of.get(id(owner), type(owner).__name__ if owner is not None else "forward"), frame_site(frame)

    def _own_activation(self, name: str, inp: Any, out: torch.Tensor, last: Record) -> torch.Tensor:
        """An activation function on ``inp``, a tensor no single layer made: a unit of its own
        (:class:`FunctionActivation`), swapped as a remedy's copy asks; returns its output."""
        if not (isinstance(inp, torch.Tensor) and inp.requires_grad and inp.grad_fn is not None
                and inp.is_floating_point() and inp.dim() >= 2 and out.shape == inp.shape):
            return out
        swap = getattr(self.model, SWAP_ATTRIBUTE, None)
        if swap is not None and name in swap[0]:
            name, out = swap[1], swap[2](inp)
        key = f"{last.name}>{name}"
        module = self.activations.setdefault(key, FunctionActivation(name))
        self.tracer._unit_event(key, f"activation:{key}", module.role, module, (inp,), inp, out)
        return out

    def _note_slices(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        """Remember each slice along the first axis that ``func`` took of a stacked parameter of the
        model (three dimensions or more: a stack of matrices or kernels, ``nn.Parameter(torch.randn(L,
        d, d))``), with its index, so a layer function or a product on it is that slice's layer
        (:meth:`_slice`); returns ``out`` (an iterator's slices, taken and iterated again)."""
        p = args[0] if args else None
        if not isinstance(p, nn.Parameter) or id(p) not in self.param_names or p.dim() < 3:
            return out
        taken: list[tuple[Any, int]] = []
        if func is torch.Tensor.__iter__:
            out = list(out)
            taken = list(zip(out, range(len(out)), strict=False))
            out = iter(out)
        elif func in (torch.Tensor.unbind, torch.unbind):
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            if dim == 0 and isinstance(out, tuple | list):
                taken = list(zip(out, range(len(out)), strict=False))
        elif func is torch.Tensor.__getitem__:
            index = args[1] if len(args) > 1 else None
            if isinstance(index, int) and not isinstance(index, bool):
                taken = [(out, index % p.shape[0])]
        else:  # select(dim, index)
            dim, index = (list(args[1:3]) + [kwargs.get("dim"), kwargs.get("index")])[:2] if len(args) >= 3 \
                else (kwargs.get("dim", args[1] if len(args) > 1 else None), kwargs.get("index"))
            if dim == 0 and isinstance(index, int) and not isinstance(index, bool):
                taken = [(out, index % p.shape[0])]
        for t, k in taken:
            if isinstance(t, torch.Tensor):
                self.slices[id(t)] = (t, p, k)
        return out

    def _slice(self, t: Any) -> tuple[nn.Parameter, int] | None:
        """(the stacked parameter, the index) of a slice the forward took of one (:meth:`_note_slices`)."""
        entry = self.slices.get(id(t)) if isinstance(t, torch.Tensor) else None
        return (entry[1], entry[2]) if entry is not None and entry[0] is t else None

    def _layer(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: torch.Tensor,
               transposed: bool = False, source: nn.Parameter | None = None,
               fans: tuple[int, int] | None = None, channels_first: bool | None = None,
               index: int | None = None) -> None:
        """The unit of a layer function or product on ``args[1]``, the weight (``source``, the
        parameter, where the forward computed ``args[1]`` from it). ``index``: ``args[1]`` is that
        slice of the stacked parameter ``source`` (``x @ self.W[i]``), a layer of its own named
        ``W[i]``, whose gradient and figures are the slice's."""
        weight: nn.Parameter = args[1] if source is None else source
        key: Any = id(weight) if index is None else (id(weight), index)
        known = self.layers.get(key)
        if known is None:
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            full = self.param_names.get(id(weight), kind)
            name = full.removesuffix(".weight")
            own = next((full.removesuffix(f".{s}") for s in WEIGHT_SOURCES if full.endswith(f".{s}")), None)
            if index is not None:
                name = f"{name}[{index}]"
            elif own is not None:
                # the parameter a layer's weight is computed from (a SpectralNorm wrapper's
                # ``weight_bar``, its layer run as ``self.module.forward(x)``, which no hook sees):
                # the layer itself, by its module's name
                name = own
            elif name in self.module_names:  # a module's weight used again (a tied decoder)
                name = f"{name} ({kind})"
            known = self.layers[key] = (
                name, FunctionLayer(kind, weight, bias if isinstance(bias, nn.Parameter) else None,
                                    transposed=transposed, fans=fans, channels_first=channels_first))
        name, layer = known
        layer.computed = args[1] if args[1] is not weight else None  # this call's own weight
        self.tracer._unit_event(name, f"function:{name}", layer.role, layer, args[:1], args[0], out)

    def _product_layer(self, func: Any, args: tuple[Any, ...], out: torch.Tensor) -> bool:
        """An einsum or a (batched) matrix product of an input with one weight of the model's (a
        parameter, or a view or an expand of one), the weight on either side and at any rank: a
        unit of its own, measured as a Linear (gradient norm, update ratio), its fans the weight's
        contracted and produced sizes (:func:`einsum_fans`, :func:`matmul_fans`). False for
        anything else (an attention product of two activations, an outer product, a weighted sum
        by a weight vector). msweep28 capsnet_w1: a capsule layer's weight-first 4-D product was
        no layer, so its gradient-to-weight ratio falling 1.4e-3 -> 7e-6 went unmeasured."""
        if func in self._EINSUMS:
            if not args or not isinstance(args[0], str) or "->" not in args[0]:
                return False  # an implicit output: not read
            operands = list(args[1]) if len(args) == 2 and isinstance(args[1], list | tuple) else list(args[1:])
            lhs, produced_by = args[0].replace(" ", "").split("->")
            subscripts = lhs.split(",")
        else:
            operands, subscripts, produced_by = list(args[:2]), [], ""
        if len(operands) != 2 or not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in operands):
            return False
        # a slice of a stacked parameter (``torch.einsum("bi,io->bo", x, self.W[i])``): that slice's layer
        sliced = [self._slice(t) for t in operands]
        sources = [s[0] if s is not None else self._weight_operand(t) for s, t in zip(sliced, operands, strict=True)]
        if sum(src is not None for src in sources) != 1:
            return False
        k = 0 if sources[0] is not None else 1
        x, w, source = operands[1 - k], operands[k], cast(nn.Parameter, sources[k])
        picked = sliced[k]
        index = picked[1] if picked is not None else None
        if subscripts:
            if len(subscripts) != 2:
                return False
            if "." in args[0]:
                spelled = _expand_ellipsis(subscripts, produced_by, [t.dim() for t in operands])
                if spelled is None:
                    return False
                subscripts, produced_by = spelled
            if len(subscripts[1 - k]) != x.dim():
                return False
            found = einsum_fans(f"{subscripts[1 - k]},{subscripts[k]}->{produced_by}", tuple(w.shape),
                                any_layout=True)
        else:
            found = matmul_fans(tuple(w.shape), x.dim(), tuple(x.shape[:-2]), weight_first=k == 0)
        if found is None:
            return False
        # an expanded weight (W.expand(B, -1, -1) for a bmm) is read as its parameter: the
        # expand's own gradient holds each copy's share apart, and its norm is not the weight's
        held = w if w.numel() == source.numel() or index is not None else source
        self._layer("linear", (x, held), {}, out, source=source, fans=found[0], channels_first=found[1],
                    index=index)
        return True

    def _weight_operand(self, t: torch.Tensor) -> nn.Parameter | None:
        """The parameter ``t`` is, or is computed from alone (a reshape, a permute, a scaling by a
        constant) within :data:`_SOURCE_DEPTH` autograd steps; None for a tensor that other
        parameters or the input made as well (an activation)."""
        if isinstance(t, nn.Parameter):
            return t if id(t) in self.param_names else None
        if t.grad_fn is None:
            return None
        found, foreign, unfinished = self._walk_leaves(t, self._SOURCE_DEPTH)
        ids = {id(p) for p in found}
        if foreign or unfinished or len(ids) != 1:
            return None  # an input that requires grad, several parameters, or a history too deep
        if found[0].numel() == t.numel():
            return found[0]
        # more values than the parameter holds: a weight only when nothing but layout steps made
        # them (an expand along a batch axis), not a product with an input that needs no gradient
        return found[0] if t.numel() > found[0].numel() and _laid_out(t) is found[0] else None

    def _decay(self, a: Any, b: Any, out: torch.Tensor) -> None:
        """Keep ``state * decay`` where ``decay`` is a learned vector (a Parameter, or computed from
        one: LRU's exp(-exp(nu)), RWKV's exp(-exp(w))) smaller than the state it scales: a step of
        an element-wise recurrence h_t = a * h_{t-1} + u_t, if the products chain (:func:`elementwise_loops`)."""
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return
        if a.shape == b.shape and a.is_floating_point():
            self._selective_decay(a, b, out)
            return
        state, decay = (a, b) if b.numel() < a.numel() else (b, a) if a.numel() < b.numel() else (None, None)
        if state is None or decay is None or not decay.requires_grad or not state.requires_grad \
                or not state.is_floating_point() or sum(d > 1 for d in decay.shape) != 1:
            return
        source = decay if isinstance(decay, nn.Parameter) else self._source_vector(decay)
        name = self.param_names.get(id(source)) if source is not None else None
        if name is not None:
            self.tracer.decays.setdefault(name, []).append((self.tracer._keep(state), out))

    def _selective_decay(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
        """Keep ``state * decay`` of one shape where the decay is computed per step from one
        parameter the model holds itself (no layer's weight or bias) and the state is made from the
        last such product: a selective scan, h_t = exp(delta_t * A) * h_(t-1) + B_t x_t (Mamba's
        sequential scan, an input-gated linear recurrence), whose decay changes with the input but
        is no function of the state (a gate computed from h_(t-1), a hand-written GRU's, is not).
        Recorded under that parameter's name, as :func:`elementwise_loops` reads them."""
        for state, decay in ((a, b), (b, a)):
            if not decay.requires_grad or decay.grad_fn is None:
                continue
            own = {n for n in (self.param_names.get(id(p)) for p in self._params_behind(decay, 6))
                   if n is not None and n.rsplit(".", 1)[0] not in self.module_names}
            if len(own) != 1:
                continue
            (name,) = own
            before = self.tracer.scan_products.get(name)
            if before is not None and _within_hops(decay.grad_fn, {before.grad_fn}, _GATE_HOPS):
                # made from the last product: this operand is the state, or a gate computed from it
                # (through a layer, hooks and all: looked for further back than a state is)
                continue
            if before is not None and state.requires_grad and _within_hops(state.grad_fn, {before.grad_fn}):
                self.tracer.decays.setdefault(name, []).append((self.tracer._keep(state), out))
                self.tracer.selective.add(name)
            self.tracer.scan_products[name] = out
            return

    def _source_vector(self, d: torch.Tensor) -> nn.Parameter | None:
        """The one parameter a per-channel vector is computed from (elementwise, within a few steps)."""
        found = {id(p): p for p in self._params_behind(d, 6)}
        (param,) = found.values() if len(found) == 1 else (None,)
        return param if param is not None and param.numel() == d.numel() else None

    #: How far back through the autograd graph a computed weight is traced to its parameter.
    _SOURCE_DEPTH = 8

    def _source(self, w: torch.Tensor) -> nn.Parameter | None:
        """The model parameter a computed weight ``w`` is made from: of those its autograd graph
        reaches within :data:`_SOURCE_DEPTH` nodes, one with as many dimensions as ``w`` (a
        modulated weight also reaches the style layer's weight), the largest. None for a tensor
        no parameter made."""
        if not w.requires_grad:
            return None
        same = [p for p in self._params_behind(w, self._SOURCE_DEPTH) if p.dim() == w.dim()]
        # (or one parameter alone, reshaped: a [in, out, k] tensor made the [out, in * k] F.linear
        # takes; not a kernel a hypernetwork's layer generates, which its weight and bias make)
        return max(same, key=lambda p: p.numel()) if same else self._weight_operand(w)

    def _params_behind(self, t: torch.Tensor, depth: int) -> list[nn.Parameter]:
        """The model's parameters ``t``'s autograd graph reaches within ``depth`` nodes."""
        return self._walk_leaves(t, depth)[0]

    def _walk_leaves(self, t: torch.Tensor, depth: int) -> tuple[list[nn.Parameter], bool, bool]:
        """(the model's parameters ``t``'s autograd graph reaches within ``depth`` nodes, whether it
        reaches a leaf that is none of them, whether nodes were left unvisited at that depth)."""
        found: list[nn.Parameter] = []
        foreign = False
        if t.grad_fn is None:
            return found, foreign, False
        frontier, seen = [t.grad_fn], {t.grad_fn}
        for _ in range(depth):
            nxt = []
            for node in frontier:
                for child, _ in node.next_functions:
                    if child is None or child in seen:
                        continue
                    seen.add(child)
                    var = getattr(child, "variable", None)
                    if var is None:
                        nxt.append(child)
                    elif id(var) in self.param_names:
                        found.append(var)
                    else:
                        foreign = True
            frontier = nxt
            if not frontier:
                break
        return found, foreign, bool(frontier)


# nn.LSTM inside an UnrolledRNN is the same unit as its wrapper: not hooked on its own.
_UNDER_UNROLLED = (nn.LSTM, nn.GRU, nn.RNN)


def add_record(readout: Readout, rec: Record) -> bool:
    """Hand one hooked unit to ``readout``, with the names and definitions of the spec simulation's.
    True when the unit is trainable but the loss does not depend on its output (it is read as
    getting exactly no gradient)."""
    w, _, _ = weight_of(rec.module) if rec.role.kind == "weight" else (None, None, None)
    if rec.weight is not None:
        w = rec.weight
    owners = [w] if w is not None and not isinstance(rec.module, UnrolledRNN) else list(rec.module.parameters())
    grads: list[torch.Tensor | None] = [p.grad for p in owners]
    bias = getattr(rec.module, "bias", None) if w is not None else None
    out_grad = output_grad(rec)
    trainable = any(p.requires_grad for p in rec.module.parameters())
    cut = out_grad is None and rec.role.kind == "weight" and trainable
    if cut:
        # a trainable layer the loss does not reach (a .detach() after it, or run under
        # torch.no_grad() in forward): it gets exactly no gradient, which is the finding; a frozen
        # layer (requires_grad False) is left out
        out_grad = torch.zeros_like(rec.out)
        grads = [torch.zeros_like(p) if g is None and p.requires_grad else g
                 for g, p in zip(grads, owners, strict=True)]
    # outside training altogether (a frozen backbone's layers, before anything trainable): its
    # saturated or dead units starve nothing of a gradient, so they are not counted
    outside = out_grad is None and not rec.out.requires_grad and not trainable
    readout.add_unit(rec.name, out=rec.out, grad=out_grad, activation=rec.activation,
                     pre=None if outside else rec.pre,
                     inp=rec.inp, weight=w, bias=bias if isinstance(bias, torch.Tensor) else None,
                     weight_grads=grads if rec.role.kind == "weight" else None,
                     channels_first=rec.role.channels_first,
                     # a Linear's or a plain convolution's rows are its units, each over every input
                     rows_are_units=isinstance(rec.module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)
                     and getattr(rec.module, "groups", 1) == 1 and w is getattr(rec.module, "weight", None))
    return cut


# --- the simulation ----------------------------------------------------------------------------

@dataclass
class InputSpec:
    """One input of the network: its shape (batch first), dtype and, for token ids, the bound."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float64
    high: int | None = None  # integer inputs: ids are drawn below this; None: all ones (a mask)
    #: an integer input used as given for every seed (the live door's attention mask)
    value: torch.Tensor | None = None
    #: where the input sits in a live module's example inputs (``hidden[0]``: the first tensor of
    #: the forward's ``hidden`` argument, an LSTM's (h0, c0)); None for an imported graph's
    name: str | None = None
    #: a float input drawn uniform in [low, high] (the data's range, ``--input-range``) instead of N(0, 1)
    uniform: tuple[float, float] | None = None
    #: a float input whose batch is drawn from these rows (a live module's example values, far from
    #: unit scale: raw 0-255 pixels): each seed resamples them with replacement (:func:`resampled_rows`)
    rows: torch.Tensor | None = None
    #: why a float ``value`` is kept as given rather than drawn (a live module's example input that
    #: is structure, not data: a sparse tensor, a mask, an adjacency matrix, a one-hot encoding), in
    #: the words ``simulation.notes`` says it with; None for inputs drawn and integer inputs
    kept: str | None = None
    #: a ``kept`` input that is all 0 or 1 shaped as a recurrent module's initial state: that module's
    #: qualified name (``module_check.initial_state_of``), for the note's words
    initial_state: str | None = None


#: The generator seed offset of the rows a seed resamples (inputs' rows and regression targets alike,
#: so an input and its targets given row for row stay paired).
_ROWS_SEED = 30_000


def resampled_rows(n: int, seed: int) -> torch.Tensor:
    """The indices of seed ``seed``'s batch of ``n`` rows drawn with replacement from ``n`` given
    ones (a bootstrap sample): the same for every input and the targets of that batch size."""
    return torch.randint(n, (n,), generator=torch.Generator().manual_seed(_ROWS_SEED + seed))


def make_inputs(specs: Sequence[InputSpec], seed: int) -> list[torch.Tensor]:
    """The synthetic batch for ``seed``: standard normal floats (the spec check's default input), or
    uniform in an input's ``uniform`` range (``--input-range``), or the rows of an input's ``rows``
    resampled (the example's own values), and uniform integer ids below ``high``, drawn on the CPU
    so every device sees the same."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    out = []
    for s in specs:
        if s.value is not None:
            out.append(s.value.clone())
        elif s.rows is not None:
            rows = s.rows.to(torch.float64)
            out.append(rows[resampled_rows(rows.shape[0], seed)] if rows.dim() else rows.clone())
        elif s.dtype.is_floating_point and s.uniform is not None:
            low, high = s.uniform
            out.append(low + (high - low) * torch.rand(s.shape, generator=gen, dtype=torch.float64))
        elif s.dtype.is_floating_point:
            out.append(torch.randn(s.shape, generator=gen, dtype=torch.float64))
        else:
            out.append(torch.randint(s.high, s.shape, generator=gen, dtype=s.dtype) if s.high
                       else torch.ones(s.shape, dtype=s.dtype))
    return out


def check_loss_input(kind: str, out: torch.Tensor, name: str = "the model's output") -> None:
    """Refuse (:class:`ModelError`: a 422, exit 2) an output no loss of ``kind`` can be taken of,
    naming it (``name``): one with no elements (a ``Slice 0:0``: a loss of nothing is NaN, which
    read as a model that makes NaN), or a scalar under cross-entropy, which needs classes along a
    last dimension (a graph that returns its own loss, a ``ReduceSum`` with ``keepdims=0``)."""
    shape = list(out.shape)
    if out.numel() == 0:
        raise ModelError(f"{name} has no elements (shape {shape}): the check takes its loss of it, and a "
                         "loss of no values is no loss; return or export an output with values")
    if kind == "cross_entropy" and out.dim() == 0:
        raise ModelError(f"{name} is a scalar (shape []); cross_entropy needs [batch, classes]: return or "
                         "export the logits (not a loss already taken of them), or use the mse loss")


def _output_name(run: GraphRun, k: int = 0) -> str:
    """How a refusal names output ``k`` of ``run``: an imported graph's by its name, else by place."""
    names = getattr(run.model, "output_names", None)
    if isinstance(names, Sequence) and not isinstance(names, str) and k < len(names):
        return f"the graph's output {str(names[k])!r}"
    return "the model's output" if k == 0 else f"the model's output {k}"


def regression_targets(out: torch.Tensor, values: torch.Tensor, seed: int) -> torch.Tensor:
    """Seed ``seed``'s regression targets for ``out`` from the ``values`` the user gave (flattened):
    where they are as many as the output's elements, row for row, the batch's rows resampled as
    the inputs' are (:func:`resampled_rows`: an input given at its data's scale stays paired with
    its target); otherwise each element drawn from them with replacement."""
    flat = values.reshape(-1).to(torch.float64)
    if out.dim() >= 1 and out.shape[0] and flat.numel() == out.numel():
        target = flat.reshape(out.shape)[resampled_rows(out.shape[0], seed)]
    else:
        pick = torch.randint(flat.numel(), (max(out.numel(), 1),),
                             generator=torch.Generator().manual_seed(_ROWS_SEED + seed))
        target = flat[pick][:out.numel()].reshape(out.shape)
    return target.to(out.device, out.dtype)


def loss_of(kind: str, out: torch.Tensor, seed: int, *, from_logits: bool = True, squashed: str | None = None,
            targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the loss, the fraction of the batch it gives no gradient; :func:`.losses.loss_value`):
    cross-entropy over the last dimension against random classes, MSE against a random target
    (standard normal, or drawn from ``targets``, the regression targets given:
    :func:`regression_targets`), binary cross-entropy against random 0/1 targets, or a plain sum;
    the target is drawn from ``seed`` on the CPU."""
    check_loss_input(kind, out)
    gen = torch.Generator().manual_seed(20_000 + seed)
    target: torch.Tensor | None = None
    if kind == "cross_entropy":
        target = torch.randint(out.shape[-1], out.shape[:-1], generator=gen).to(out.device)
    elif kind in REGRESSION and targets is not None and targets.numel():
        target = regression_targets(out, targets, seed)
    elif kind in REGRESSION:
        target = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device, out.dtype)
    elif kind == "binary_cross_entropy":  # against random 0/1 targets (as the spec's)
        target = torch.randint(2, out.shape, generator=gen).to(out.device, out.dtype)
    return loss_value(kind, out, target, from_logits=from_logits, squashed=squashed)


@dataclass(frozen=True)
class Recurrence:
    """A recurrence an exporter unrolled into one op per step (the dynamo exporter writes
    ``nn.RNN`` so: h_t = tanh(x_t W_ih + h_{t-1} W_hh + b), with W_hh applied by a MatMul per
    step): measured as a recurrent layer is, through time, and not as depth."""

    #: the unit its dL/dh_t series is named after (the module's input projection, where it has one)
    layer: str
    sublayer: int
    #: the units whose outputs are h_0 .. h_{T-1}, in the order they run
    steps: tuple[str, ...]
    #: the units that apply the recurrent weight, one per step after the first
    links: tuple[str, ...]
    #: the units besides ``steps`` that are part of ``layer``'s steps, not depth (the links, a
    #: step's own input projection)
    nested: tuple[str, ...] = ()


@dataclass
class GraphRun:
    """How to simulate one network: it, its inputs and what every seed does to it."""

    model: nn.Module
    inputs: list[InputSpec]
    loss: str = "cross_entropy"
    seeds: int = 3
    #: called on each seed's copy before it runs (re-initialisation, a remedy's edit)
    prepare: Callable[[nn.Module, int], None] | None = None
    names: Callable[[nn.Module], dict[nn.Module, tuple[str, str]]] | None = None
    dtype: torch.dtype = torch.float64
    #: the training optimizer: its first step's update-to-weight ratio per unit (large_updates)
    optimizer: OptimizerSpec | None = None
    #: read activations and layer scales the forward computes as functions (a live module's
    #: ``F.relu``); an imported graph has a module for every op
    trace_functions: bool = False
    #: a model of several outputs: each output's loss, in the order the model returns them (the
    #: step's loss is their sum, as Keras sums a multi-output model's), and the units that make
    #: them (each a readout, left out of the trunk as the last unit is); None: ``loss`` of the
    #: (first) output
    losses: tuple[str, ...] | None = None
    readouts: frozenset[str] = frozenset()
    #: with ``losses``: each output's (from_logits, squashed), as ``from_logits`` and ``squashed``
    #: say for a single output (a Keras head compiled on logits over its softmax); None: (True, None)
    output_options: tuple[tuple[bool, str | None], ...] | None = None
    #: the inputs' keyword names, where the model takes them as keywords (a Hugging Face model's
    #: ``input_ids``, ``attention_mask``); None: positionally, in ``inputs``' order
    keywords: tuple[str, ...] | None = None
    #: the example inputs' nesting (a live module's ``model(x, (h0, c0))``): the inputs, one tensor
    #: per spec, put back into the arguments the forward takes (:func:`call`); None: each input is
    #: one argument
    nest: Callable[[Sequence[torch.Tensor]], list[Any]] | None = None
    #: False: the loss takes the (first) output for probabilities, as Keras' from_logits=False
    #: does (:func:`.losses.loss_value`); only for the two cross-entropies
    from_logits: bool = True
    #: the output's softmax/sigmoid, folded out of the network, that a loss on logits applies to
    #: it a second time (Keras' ``from_logits=True`` on a softmax output); None: once only
    squashed: str | None = None
    #: recurrences unrolled step by step in the graph (:class:`Recurrence`)
    recurrences: tuple[Recurrence, ...] = ()
    #: an imported graph's gates and candidates of recurrent cells written out as primitive ops
    #: (``Imported.cell_gates``): inside a cell, judged as a native cell's are
    cell_gates: tuple[str, ...] = ()
    #: a live module whose forward ends in a softmax or sigmoid under cross_entropy
    #: (:func:`forward_squash`): take the loss on the logits they came from (the softmax's log, the
    #: sigmoid's logit), as the model returning logits would
    unsquash: bool = False
    #: an imported file ending in a softmax under cross_entropy, or in a sigmoid under the binary
    #: cross-entropy the check implied: its exporter's inference head, the loss the cross-entropy
    #: of the logits before it (:func:`head_logits`), as it was trained; not the user's
    #: loss-on-probabilities choice that output_loss_mismatch judges
    inference_head: bool = False
    #: eps guards on operations' inputs at their call sites (a remedy's, :mod:`.guards`)
    guards: tuple[Guard, ...] = ()
    #: judge a bounded activation (a sigmoid, a tanh) ending a one-number regression output as the
    #: spec check does, on the targets' range (``target_range``; None: standard normal): a Keras
    #: file's output, whose targets the file or ``--target-range`` describes. Other graphs leave a
    #: bounded output alone (an autoencoder's sigmoid pixels are in range by design)
    bounded_regression: bool = False
    #: where the regression targets lie (the spec's ``loss.target_range``), with ``bounded_regression``
    target_range: tuple[float, float] | None = None
    #: example regression targets the user passed (``check_module``'s ``targets``, flattened, float64),
    #: with ``bounded_regression``: the share of them out of the output's range is judged
    target_values: np.ndarray | None = None
    #: the regression targets the loss is taken against (``check_module``'s ``targets``, flattened):
    #: each seed's drawn from them (:func:`regression_targets`), at their own scale; None: standard normal
    target_samples: torch.Tensor | None = None
    #: judge a bounded output shaped as the model's one float input (a reconstruction: an
    #: autoencoder's targets are its inputs) on the share of the inputs drawn out of its range
    #: (:func:`.rules.clipped_regression_output`): a file's (standard normal, or ``--input-range``'s);
    #: a live module's only where ``input_range`` says where its data lies
    reconstruction: bool = True
    #: an imported file's own final squash that the loss, given by the user, applies its softmax
    #: over: a sigmoid over several units under cross_entropy (nn.CrossEntropyLoss on sigmoid
    #: outputs), judged as a live module's forward ending in one (:func:`forward_squash`)
    file_squash: str | None = None
    #: the axis of the (first) output the cross-entropy takes its classes over where the output has
    #: more than two dimensions: -1 (the last: a sequence's [batch, time, classes], Keras'
    #: channels-last) or 1 (an imported graph's convolution map [batch, C, H, W], as
    #: nn.CrossEntropyLoss reads it: :func:`output_class_axis`)
    class_axis: int = -1
    #: the network runs with a model file's stored weights (an ONNX file's ``as_given``, a Keras file's
    #: stored weights): a trained checkpoint, not an initialisation. Remedies that re-draw or reset
    #: weights are then advice for training the architecture again (``Remedy.for_retraining``), and a
    #: regression output at a scale the weights learned is read as its targets' (:func:`.rules.learned_output_scale`).
    #: A live module (``check_module``) is the network about to be trained: False
    checkpoint: bool = False
    #: the loss is the check's own guess (an ONNX file with no ``--loss``: :func:`.module_check.implied_loss`),
    #: not the user's: a pairing of the output with it is a question to the user, not the model's
    #: fault (:class:`.rules.OutputLossMismatch`)
    loss_implied: bool = False
    #: the loss's softmax (or sigmoid) is the check's own guess as well: no loss was given and nothing
    #: in the graph makes the output probabilities (no softmax reads it, no sigmoid ends it), so a
    #: judgement of that softmax (logits that would saturate it) is a question to the user, a note
    #: at most (:class:`.rules.ExplodingGradient`)
    squash_implied: bool = False


def output_class_axis(net: nn.Module) -> int:
    """The axis an imported graph's (first) output holds its classes on, for a cross-entropy over
    an output of more than two dimensions: 1 where the output is a convolution's map (channels
    first: [batch, C, H, W]), back through activations and norms after it; -1 (the last)
    otherwise, and for anything that is no imported graph."""
    ops, wiring = getattr(net, "ops", None), getattr(net, "wiring", None)
    outputs = getattr(net, "output_names", None)
    if ops is None or wiring is None or not outputs:
        return -1
    producer = {o: k for k, (_, outs) in enumerate(wiring) for o in outs if o}
    k = producer.get(outputs[0])
    for _ in range(8):
        role = getattr(ops[k], "role", None) if k is not None else None
        if not isinstance(role, Role) or role.kind not in ("act", "norm", "weight"):
            return -1  # a reshape, transpose or sum may have moved the channels
        if role.kind == "weight":
            return 1 if role.channels_first else -1
        ins = wiring[k][0]
        k = producer.get(ins[0]) if ins else None
    return -1


def forward_squash(run: GraphRun, value: Any) -> str | None:
    """``"softmax"`` or ``"sigmoid"`` when a live module's forward returns probabilities over the
    classes (``F.softmax``, ``nn.Softmax`` over the last dimension; a sigmoid per class) that
    cross_entropy, on logits, softmaxes again: torch's ``nn.CrossEntropyLoss`` applies log_softmax
    itself; or ``"sigmoid"`` for a forward ending in a sigmoid under binary_cross_entropy, on
    logits as ``nn.BCEWithLogitsLoss``, which applies its own. An imported graph's final softmax is its exporter's (inference files end in one), not
    the training loss's input, so only the live door asks; but a file's sigmoid over several units
    under a cross_entropy the user gave (:attr:`GraphRun.file_squash`) is the model's own output."""
    if run.file_squash is not None:
        return run.file_squash if run.losses is None and run.loss == "cross_entropy" else None
    if (not run.trace_functions or run.losses is not None or run.squashed or not run.from_logits
            or run.loss not in ("cross_entropy", "binary_cross_entropy")):
        return None  # (a loss on probabilities, check_module's binary_cross_entropy_probs, wants the squash)
    out = first_tensor(value)
    fn = getattr(out, "grad_fn", None)
    if out is None or fn is None:
        return None
    if run.loss == "binary_cross_entropy":
        # binary cross-entropy on logits (nn.BCEWithLogitsLoss) applies a sigmoid itself: a forward
        # ending in one (a CTR model's or recommender's final nn.Sigmoid) is squashed twice, whatever
        # its width (one logit per pair, or one per label)
        # ... and a forward ending in another bounded activation (a tanh: logits in [-1, 1]) has
        # the floor of its range under it, as a spec's last tanh has (kerassweep29: only the
        # sigmoid was asked here)
        return _BOUNDED_NODES.get(_squash_kind(fn) or "")
    if out.dim() < 1:
        return None
    # a bounded ending over the classes (a sigmoid per class, a tanh, a hardtanh: nn.Tanh ending a
    # classifier under nn.CrossEntropyLoss, onnxsweep26) holds every logit the loss's softmax sees in
    # its range: the floor ln(1 + (k - 1) e^-(b - a)) whatever the bounded activation
    node = type(fn).__name__
    if node not in _BOUNDED_NODES and type(_through_views(fn)).__name__ in _JOIN_NODES:
        node = _squash_kind(fn) or ""
    if node in _BOUNDED_NODES:
        return _BOUNDED_NODES[node] if out.shape[-1] > 1 else None  # one unit: a softmax of one value, another fault
    return "softmax" if softmax_over_last(out) or distributions(out) else None


#: The bounded activations a forward's own (log_)softmax may read (:func:`squash_before_softmax`),
#: by their autograd node: the logits the softmax sees then lie in their range (``losses.BOUNDS``).
_BOUNDED_NODES = {"SigmoidBackward0": "sigmoid", "TanhBackward0": "tanh", "HardtanhBackward0": "hardtanh",
                  "HardsigmoidBackward0": "hardsigmoid"}
#: The bounded activations an imported file may end in that :func:`forward_squash` judges under a
#: cross_entropy the user gave (:attr:`GraphRun.file_squash`), as a live module's ending in them.
BOUNDED_ENDINGS = frozenset(_BOUNDED_NODES.values())


def squash_before_softmax(run: GraphRun, value: Any) -> str | None:
    """``"sigmoid"``, ``"tanh"`` or ``"hardtanh"`` when a live module's forward ends in its own
    softmax or log_softmax over the classes (the last dimension) of values that went through that
    bounded activation just before (``F.log_softmax(torch.sigmoid(self.fc2(x)))``, past reshapes):
    the logits the softmax sees are held in the activation's range, so the cross-entropy has a
    floor, ln(1 + (k - 1) e^-(b - a)) for k classes in [a, b], as for a forward ending in the
    sigmoid itself (:func:`forward_squash`). Asked where that one is: for cross_entropy only."""
    if (not run.trace_functions or run.losses is not None or run.squashed or run.file_squash is not None
            or run.loss != "cross_entropy"):
        return None
    out = first_tensor(value)
    fn = getattr(out, "grad_fn", None)
    if out is None or fn is None or out.dim() < 1 or out.shape[-1] < 2:
        return None
    bounds: set[str | None] = set()
    for node in final_nodes(fn):  # one softmax, or one per decoder step joined (torch.cat / stack)
        if type(node).__name__ not in ("LogSoftmaxBackward0", "SoftmaxBackward0") \
                or not _over_last_of_own(node, int(out.shape[-1])):
            return None
        inner = [f for f, _ in node.next_functions if f is not None]
        bounds.add(_BOUNDED_NODES.get(type(_through_views(inner[0])).__name__) if len(inner) == 1 else None)
    return bounds.pop() if len(bounds) == 1 else None


def output_width(value: Any) -> int | None:
    """The size of a graph's (first) output's last dimension: the logits cross-entropy takes per
    sample (:func:`loss_of`). A convolution ending a network has a fan_out of its channels times its
    kernel's positions, which is no count of its outputs (peersweep16 u10: Conv2d(4, 11, 5) then
    Flatten gives 11 logits, its fan_out 275); None where the output is no tensor or a scalar."""
    out = first_tensor(value)
    if out is None or out.dim() < 1:
        return None
    return int(out.shape[-1])


def values_per_sample(value: Any) -> int | None:
    """How many values a graph's (first) output holds per sample: the product of its dimensions past
    the batch's (a Conv2D(1)'s 28x28x1 map: 784, where :func:`output_width` is its one channel); None
    where the output is no tensor or a scalar."""
    out = first_tensor(value)
    if out is None or out.dim() < 1:
        return None
    return math.prod(int(d) for d in out.shape[1:])


def simplex_output(run: GraphRun, value: Any) -> tuple[str, int] | None:
    """``("softmax", k)`` where a graph's (first) output under a regression loss (mse, mae, huber)
    is one probability distribution per row over its last dimension of k >= 2 (a softmax's, by its
    autograd node or its values: :func:`distributions`), ``("log_softmax", k)`` for a log_softmax's
    (its exp one): the loss pulls it towards targets it can reach only inside that simplex (each in
    [0, 1], each row summing to 1), which :func:`.rules.simplex_regression_output` judges (peersweep14:
    a softmax regression head, a softmax Q-value head); None otherwise."""
    if run.losses is not None or run.loss not in REGRESSION:
        return None
    out = first_tensor(value)
    if out is None or not out.is_floating_point() or out.dim() < 1 or out.shape[-1] < 2:
        return None
    k = int(out.shape[-1])
    if softmax_over_last(out) or distributions(out):
        return "softmax", k
    nodes = final_nodes(out.grad_fn)
    # every part of the output a log_softmax's over the classes: one head's, or one per decoder step
    # joined with torch.cat / torch.stack
    if all(n is not None and type(n).__name__ == "LogSoftmaxBackward0" and _over_last_of_own(n, k) for n in nodes):
        return "log_softmax", k
    return None


#: Autograd nodes that only move or reshape values: an elementwise squash before them still ends the output
_VIEW_NODES = ("ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "SqueezeBackward0",
               "SqueezeBackward1", "SqueezeBackward2", "SqueezeBackward3", "UnsqueezeBackward0",
               "PermuteBackward0", "TransposeBackward0", "TBackward0", "CloneBackward0", "ExpandBackward0")


def _through_views(fn: Any, depth: int = 8) -> Any:
    """The autograd node behind ``fn`` past reshapes and views (NCF's ``prediction.view(-1)``)."""
    while depth and fn is not None and type(fn).__name__ in _VIEW_NODES:
        nxt = [f for f, _ in fn.next_functions if f is not None]
        if len(nxt) != 1:
            break
        fn, depth = nxt[0], depth - 1
    return fn


#: Autograd nodes that join tensors: a decoder's per-step outputs, each from the same head, joined
#: with ``torch.cat`` or ``torch.stack`` (the PyTorch seq2seq tutorial's decoder loop)
_JOIN_NODES = ("CatBackward0", "StackBackward0")
#: Indexing that picks rows or steps out of an output (``torch.cat(outs, dim=1)[0]``, ``out[:, -1]``):
#: a squash over the last dimension stays whole in what it picks; one over a dimension the pick cut
#: is told by the squash's own result no longer matching the output's width (:func:`_over_last_of_own`)
_PICK_NODES = ("SelectBackward0", "SliceBackward0")


def final_nodes(fn: Any, depth: int = 3) -> list[Any]:
    """The autograd nodes that make a tensor's values last, past reshapes and views
    (:func:`_through_views`) and through joins of several tensors (:data:`_JOIN_NODES`): one node for a
    plain output, one per step for outputs computed in a loop and joined with ``torch.cat`` or
    ``torch.stack``, each past its own views, and past an index that picks rows or steps out of the
    joined output (:data:`_PICK_NODES`). A squash that ends every part ends the whole output
    (``F.log_softmax`` applied at each decoder step, then concatenated), which a check of the last
    node alone reads as no squash at all (modsweep43 ipsum_transformer_list)."""
    fn = _through_views(fn)
    for _ in range(8):  # an index into the joined output: a row or a step picked out keeps its rows whole
        nxt = [f for f, _ in fn.next_functions if f is not None] if fn is not None else []
        if type(fn).__name__ not in _PICK_NODES or len(nxt) != 1:
            break
        fn = _through_views(nxt[0])
    if fn is None or depth == 0 or type(fn).__name__ not in _JOIN_NODES:
        return [fn]
    parts = [f for f, _ in fn.next_functions if f is not None]
    if not parts:
        return [fn]
    return [node for part in parts for node in final_nodes(part, depth - 1)]


def _squash_kind(fn: Any) -> str | None:
    """The one node type that ends every part of an output (:func:`final_nodes`); None where the
    parts end in different nodes."""
    kinds = {type(node).__name__ for node in final_nodes(fn)}
    return kinds.pop() if len(kinds) == 1 else None


def _over_last_of_own(node: Any, width: int) -> bool:
    """Whether a softmax or log_softmax node ran over the last dimension of its own result, of
    ``width`` entries (the output's last dimension: reshapes that keep it keep the classes)."""
    dim = getattr(node, "_saved_dim", -1)
    if dim >= 2 ** 63:
        dim -= 2 ** 64  # saved as an unsigned 64-bit integer (-1: 2^64 - 1)
    result = getattr(node, "_saved_result", None)
    if not isinstance(result, torch.Tensor) or result.dim() < 1:
        return False
    return bool(dim % result.dim() == result.dim() - 1 and result.shape[-1] == width)


#: A row of probabilities sums to 1 within this (float32 rounding over a few thousand classes)
_SUMS_TO_ONE = 1e-4


def distributions(out: torch.Tensor) -> bool:
    """Whether every row of ``out`` (over its last dimension, 2 or more classes) is a probability
    distribution by its values: no entry below 0 and each row summing to 1. A mix of softmaxes
    made some other way (a mixture of experts' gate-weighted softmax outputs, combined by
    index_add; an ensemble's mean) is probabilities though its last autograd step is no softmax
    (modsweep27: cross-entropy on such a mix can never fall below -ln(e/(e+19)) = 2.08 for 20
    classes); a network's logits never sum to 1 in every row by chance."""
    if out.dim() < 2 or out.shape[-1] < 2 or not out.is_floating_point() or out.numel() == 0:
        return False
    with torch.no_grad():
        # .data, not .detach(): this runs inside the traced forward, where a .detach() call is
        # recorded as the model cutting its own output from the graph (Tracer.detached)
        v = out.data
        if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
            return False
        return bool(((v.sum(dim=-1) - 1).abs() <= _SUMS_TO_ONE).all())


def softmax_over_last(out: torch.Tensor) -> bool:
    """Whether ``out`` was made by a softmax over its last dimension (its autograd node says)."""
    fn = out.grad_fn
    if fn is None or type(fn).__name__ != "SoftmaxBackward0" or out.dim() < 1:
        return False
    dim = getattr(fn, "_saved_dim", -1)
    if dim >= 2 ** 63:
        dim -= 2 ** 64  # autograd saves a negative dim as an unsigned 64-bit integer (-1: 2^64 - 1)
    return bool(dim % out.dim() == out.dim() - 1)


def call(net: nn.Module, xs: Sequence[torch.Tensor], keywords: Sequence[str] | None = None,
         nest: Callable[[Sequence[torch.Tensor]], list[Any]] | None = None) -> Any:
    """``net`` on ``xs``: positionally, or by the keyword names given; ``nest`` first puts the
    tensors back into the arguments they came from (:attr:`GraphRun.nest`)."""
    args: Sequence[Any] = nest(xs) if nest is not None else xs
    if keywords is not None:
        return net(**dict(zip(keywords, args, strict=True)))
    return net(*args)


_COMPLEX_OF = {torch.float64: torch.complex128, torch.float32: torch.complex64, torch.float16: torch.complex32}


def to_precision(net: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``net.to(device, dtype)``, but a complex parameter or buffer (an FNO's spectral weights) becomes
    the complex type of the same precision: ``Module.to(float64)`` would keep only its real part."""
    complex_dtype = _COMPLEX_OF.get(dtype, torch.complex128)

    def cast(t: torch.Tensor) -> torch.Tensor:
        if t.is_complex():
            return t.to(device=device, dtype=complex_dtype)
        return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
    return net._apply(cast)


#: Objects a copy shares by reference rather than copies: immutable and unpicklable, so
#: ``copy.deepcopy`` refuses them, though nothing of the check changes them (a Python module held
#: as an attribute: ``self.F = torch.nn.functional``, ``self.nn = nn``, ``self.np = numpy``)
SHARED_TYPES: tuple[type, ...] = (types.ModuleType,)
#: How deep :func:`_shared_objects` looks into plain containers and objects held by a module
_SHARED_DEPTH = 4


def _shared_objects(value: Any, memo: dict[int, Any], seen: set[int], depth: int = 0) -> None:
    """Put every :data:`SHARED_TYPES` object reachable from ``value`` (through lists, tuples, sets,
    dicts and plain objects' attributes, :data:`_SHARED_DEPTH` levels down) in ``memo`` as itself,
    so ``copy.deepcopy`` shares it instead of failing on it."""
    if id(value) in seen or depth > _SHARED_DEPTH:
        return
    seen.add(id(value))
    if isinstance(value, SHARED_TYPES):
        memo[id(value)] = value
        return
    if isinstance(value, torch.Tensor | nn.Module | str | bytes | int | float | bool | type(None)):
        return  # (modules are walked by model.modules(); tensors and scalars hold none)
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    elif hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
        items = vars(value).values()
    else:
        return
    for item in list(items):
        _shared_objects(item, memo, seen, depth + 1)


class ModelCopyError(ModelError, ValueError):
    """A live module the check cannot copy (it simulates copies only, never the module itself): the
    message names the attribute whose value refused ``copy.deepcopy``. Also a ValueError, as it was."""


def _uncopyable(model: nn.Module, memo: dict[int, Any]) -> tuple[str, Any, BaseException] | None:
    """(the qualified attribute, its value, the error) of the first attribute of ``model`` or a
    submodule whose value ``copy.deepcopy`` refuses on its own, or None where each copies alone."""
    for prefix, m in model.named_modules():
        for attr, value in vars(m).items():
            if attr in ("_modules", "_parameters", "_buffers") or isinstance(value, nn.Module):
                continue
            try:
                copy.deepcopy(value, dict(memo))
            except Exception as exc:  # noqa: BLE001 - the culprit, whatever it raises
                return (f"{prefix}.{attr}" if prefix else attr), value, exc
    return None


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``, the one way every simulation copies a live module.

    A tensor attribute that is not a graph leaf (the old hook-based ``torch.nn.utils.weight_norm``
    keeps ``weight``, computed from ``weight_g`` and ``weight_v``, as a plain attribute with a
    history) refuses ``copy.deepcopy``: such tensors are copied detached, since whatever computed
    them computes them again (weight_norm's pre-hook before every forward). A Python module held as
    an attribute (:data:`SHARED_TYPES`) is shared by the copy, not copied. Any other failure to copy
    is a :class:`ModelCopyError` (a ModelError and a ValueError) naming the attribute that refused."""
    memo: dict[int, Any] = {}
    seen: set[int] = set()
    for m in model.modules():
        for value in (*vars(m).values(), *m._buffers.values()):
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
            else:
                _shared_objects(value, memo, seen)
    try:
        return copy.deepcopy(model, dict(memo))
    except Exception as exc:  # noqa: BLE001 - whatever the module holds: the check cannot run without a copy
        culprit = _uncopyable(model, memo)
        what = (f"its attribute {culprit[0]} ({type(culprit[1]).__name__}) cannot be copied "
                f"({type(culprit[2]).__name__}: {culprit[2]})" if culprit is not None else
                f"copy.deepcopy failed: {type(exc).__name__}: {exc}")
        raise ModelCopyError(
            f"the check cannot copy {type(model).__name__}: {what}; it simulates copies only, never the module "
            "itself. Make the module deep-copyable: "
            + (f"keep {culprit[0].rsplit('.', 1)[-1]} off the module (a module-level name, or an argument of "
               "forward) or give its class a __deepcopy__; " if culprit is not None else "")
            + "hold no open files, locks or generators; torch.nn.utils.parametrizations.weight_norm instead of "
            "the old torch.nn.utils.weight_norm (a Python module held as an attribute, self.F = "
            "torch.nn.functional, is shared, not copied)") from exc


def _copy_for_seed(run: GraphRun, seed: int, device: torch.device) -> nn.Module:
    net = copy_module(run.model)
    if run.prepare is not None:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU's only, as simulate.prepare
            run.prepare(net, seed)
    unroll_recurrent(net)
    expose_attention(net)
    net = to_precision(net, device, run.dtype).train()
    for m in net.modules():
        if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.AlphaDropout):
            m.eval()  # no dropout noise: seeds differ by their batch only (a spec's own dropout
            # layers are simulated, with masks drawn from the seed: simulate._seeded)
    # A frozen layer (requires_grad False: a pretrained backbone under a trained head) is never
    # trained, so its gradient is not the network's problem, and training does not compute one:
    # it stays frozen here. A model frozen whole (for inference) is measured as if trained.
    params = list(net.parameters())
    if not any(p.requires_grad for p in params):
        for p in params:
            p.requires_grad_(True)
    return net


def _seed_inputs(run: GraphRun, seed: int, device: torch.device) -> list[torch.Tensor]:
    """Seed ``seed``'s synthetic batch on ``device``, floats in the run's dtype."""
    return [x.to(device) if not x.is_floating_point() else x.to(device, run.dtype)
            for x in make_inputs(run.inputs, seed)]


def structure(value: Any, depth: int = 3, most: int = 6) -> str:
    """What ``value`` is made of, by type and never by value: ``tuple(NoneType, Tensor(int64,
    [16]))``, ``dict(loss: NoneType, logits: NoneType)``; ``depth`` levels, ``most`` items each."""
    if isinstance(value, torch.Tensor):
        return f"Tensor({str(value.dtype).removeprefix('torch.')}, {list(value.shape)})"
    if isinstance(value, tuple | list | Mapping):
        kind = type(value).__name__
        if depth <= 0:
            return f"{kind}(...)"
        items = ([f"{str(k)[:40]}: {structure(v, depth - 1, most)}" for k, v in list(value.items())[:most]]
                 if isinstance(value, Mapping) else [structure(v, depth - 1, most) for v in list(value)[:most]])
        more = len(value) - most
        return f"{kind}({', '.join(items)}{f', and {more} more' if more > 0 else ''})"
    return type(value).__name__


def _output(value: Any, name: str = "the model's (first) output") -> torch.Tensor:
    """The tensor the loss is taken of in ``value`` (:func:`first_tensor`); :class:`ModelError` (a
    4xx, exit 2: the model's, not the check's) naming what ``value`` holds where it has no
    floating-point one."""
    out = first_tensor(value)
    if out is None or not out.is_floating_point():
        raise ModelError(f"{name} is {structure(value)}: the check takes its loss of a floating-point tensor "
                         "(the output itself, the first tensor of a tuple or list, or a mapping's 'logits'); "
                         "return the logits from forward")
    return out


def output_op(net: nn.Module) -> tuple[nn.Module, str] | None:
    """The activation op an imported graph's (first) output ends in, and its activation, back
    through parameter-free ops after it (tf2onnx's Identity, a Squeeze); None where the graph ends in
    a layer or is no imported graph (it has no ``ops`` and ``wiring``)."""
    ops, wiring = getattr(net, "ops", None), getattr(net, "wiring", None)
    outputs = getattr(net, "output_names", None)
    if ops is None or wiring is None or not outputs:
        return None
    producer = {o: k for k, (_, outs) in enumerate(wiring) for o in outs if o}
    k = producer.get(outputs[0])
    for _ in range(4):
        role = getattr(ops[k], "role", None) if k is not None else None
        if role is None or role.kind not in ("act", "other"):
            return None
        if role.kind == "act":
            return cast(nn.Module, ops[k]), str(role.activation)
        if role.type == "softmax":  # an imported Softmax node (no unit's activation: it mixes units)
            return cast(nn.Module, ops[k]), "softmax"
        ins = wiring[k][0]
        k = producer.get(ins[0]) if ins else None
    return None


def head_op(net: nn.Module) -> nn.Module | None:
    """The op of an imported graph whose softmax or sigmoid makes its (first) output
    (:func:`output_op`); None where the graph ends otherwise."""
    found = output_op(net)
    return found[0] if found is not None and found[1] in ("softmax", "sigmoid") else None


@contextlib.contextmanager
def head_logits(run: GraphRun, net: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While a forward of ``net`` runs: a list that gets the logits its inference softmax or sigmoid
    head (:attr:`GraphRun.inference_head`, :func:`head_op`) was given; empty for any other run."""
    held: list[torch.Tensor] = []
    op = head_op(net) if run.inference_head and run.losses is None else None
    if op is None:
        yield held
        return

    def keep(module: nn.Module, args: tuple[Any, ...], result: Any) -> None:
        if args and isinstance(args[0], torch.Tensor):
            held[:] = [args[0]]

    handle = op.register_forward_hook(keep)
    try:
        yield held
    finally:
        handle.remove()


def _head_log_probabilities(probs: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """The log-softmax of an inference head's logits, taken through its probabilities ``probs``
    (so the softmax and the layers before it get their gradient as a net returning logits gives
    them) where they are above the dtype's smallest normal, and from ``logits`` where a probability
    underflowed there (a log of 0: -inf, and a NaN gradient)."""
    tiny = torch.finfo(probs.dtype).tiny
    # clamped: at an underflowed entry the log's branch passes no gradient (not 0 * inf = NaN)
    through = torch.log(probs.clamp_min(tiny))
    if logits is None or logits.shape != probs.shape:
        return through
    return torch.where(probs < tiny, torch.log_softmax(logits.to(probs.dtype), dim=-1), through)


def _head_sigmoid_logits(probs: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """The logits of a sigmoid head's probabilities ``probs``: their logit, through the sigmoid,
    where it is exact, and ``logits`` (what the sigmoid was given) where the sigmoid rounded to 0
    or 1 (beyond about +-36 in float64)."""
    tiny, eps = torch.finfo(probs.dtype).tiny, torch.finfo(probs.dtype).eps
    # clamped: at a rounded entry the logit's branch passes no gradient (not 0 * inf = NaN)
    through = torch.logit(probs.clamp(tiny, 1 - eps))
    if logits is None or logits.numel() != probs.numel():
        return through
    z = logits.reshape(probs.shape).to(probs.dtype)  # (a Squeeze or Identity after the sigmoid)
    return torch.where((probs < tiny) | (probs > 1 - eps), z, through)


def _loss(run: GraphRun, out: Any, seed: int, logits: Sequence[torch.Tensor] = ()
          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The step's loss: ``run.loss`` of the (first) output, or the sum of ``run.losses`` over the
    outputs, each against targets of its own; and the fraction of the batch the single loss gives
    no gradient (None for several). An inference softmax or sigmoid head
    (:attr:`GraphRun.inference_head`) gets the cross-entropy of the logits before it (``logits``:
    what :func:`head_logits` held), as the net was trained: on the probabilities, a loss's clip
    held every sample whose trained logits put its class under 1e-7 and gave it no gradient
    (onnxsweep10)."""
    if run.losses is None:
        first = _output(out)
        # before the loss: a scalar or empty output named, not an IndexError or a NaN loss (errsweep5 G2)
        check_loss_input(run.loss, first, _output_name(run))
        held = logits[0] if logits else None
        if run.inference_head and run.loss == "cross_entropy" and softmax_over_last(first):
            # log-probabilities are logits whose log_softmax is themselves
            return loss_of(run.loss, _head_log_probabilities(first, held), seed, from_logits=True)
        if run.inference_head and run.loss == "binary_cross_entropy" and held is not None:
            return loss_of(run.loss, _head_sigmoid_logits(first, held), seed, from_logits=True)
        squash = forward_squash(run, out) if run.unsquash else None
        if run.loss == "cross_entropy" and run.class_axis != -1 and first.dim() > 2:
            # classes on a convolution map's channels: each position's channel scores a sample's
            first = first.movedim(run.class_axis, -1)
        if squash == "softmax":
            first = torch.log(first)  # = log_softmax(logits): the loss on the logits themselves
        elif squash == "sigmoid":
            first = torch.logit(first)  # the logits themselves
        elif squash == "tanh":
            first = torch.atanh(first.clamp(-1 + 1e-6, 1 - 1e-6))  # the tanh's input
        # (a hardtanh's or hardsigmoid's outputs are their inputs, scaled, wherever they pass a gradient)
        return loss_of(run.loss, first, seed, from_logits=run.from_logits, squashed=run.squashed,
                       targets=run.target_samples)
    outs = list(out) if isinstance(out, tuple | list) else [out]
    if len(outs) != len(run.losses) or not all(isinstance(o, torch.Tensor) for o in outs):
        raise ValueError(f"the model returned {len(outs)} outputs where {len(run.losses)} were expected")
    options = run.output_options or ((True, None),) * len(outs)
    firsts = [_output(o, _output_name(run, k)) for k, o in enumerate(outs)]
    for k, (kind, o) in enumerate(zip(run.losses, firsts, strict=True)):
        check_loss_input(kind, o, _output_name(run, k))
    return cast(torch.Tensor, sum(loss_of(kind, o, seed + 1_000_000 * k, from_logits=fl, squashed=sq)[0]
                                  for k, (kind, o, (fl, sq)) in enumerate(zip(run.losses, firsts, options, strict=True)))), None


def reconstructed_inputs(run: GraphRun, xs: Sequence[torch.Tensor], out: Any) -> np.ndarray | None:
    """The values of the model's one float input (flattened, float64) where its single output has
    the input's shape (an autoencoder: its targets are its inputs), else None; a run that does not
    judge reconstructions (:attr:`GraphRun.reconstruction`) None."""
    floats = [x for x in xs if x.is_floating_point()]
    if not run.reconstruction or run.losses is not None or len(floats) != 1:
        return None
    first = out if isinstance(out, torch.Tensor) else None
    if first is None or first.shape != floats[0].shape or first.numel() <= first.shape[0]:
        return None  # one number per sample is a regression, judged on its targets
    return floats[0].detach().to("cpu", torch.float64).flatten().numpy()


def layer_scale_names(net: nn.Module, tracer: Tracer) -> dict[str, float]:
    """The layer scales a trace folded into units, by the name of the parameter or buffer that
    holds each vector in ``net``, with its largest magnitude."""
    ids = {id(t) for t in tracer.layer_scales}
    return {name: float(t.detach().abs().max()) for name, t in
            [*net.named_parameters(), *net.named_buffers()] if id(t) in ids and t.numel()}


@contextlib.contextmanager
def direct_checkpoints() -> Iterator[None]:
    """``torch.utils.checkpoint``'s reentrant form run as a plain call while a network is measured.

    A reentrant checkpoint runs its function without a graph and again in the backward pass, so
    the outputs the hooks saw never get a gradient: a 20-layer sigmoid stack checkpointed block by
    block read as healthy. Checkpointing trades memory for recomputation and leaves the gradient as
    it is, so the measurement calls the function directly (the non-reentrant form needs nothing)."""
    function = getattr(torch.utils.checkpoint, "CheckpointFunction", None)
    if function is None:
        yield
        return
    own = "apply" in function.__dict__
    saved = function.__dict__.get("apply")

    def apply(cls: Any, run: Callable[..., Any], preserve_rng_state: bool, *args: Any) -> Any:
        return run(*args)

    function.apply = classmethod(apply)
    try:
        yield
    finally:
        if own:
            function.apply = saved
        else:
            del function.apply


def _same_for_every_sample(t: torch.Tensor | None) -> bool:
    """Whether ``t`` is a float tensor computed (it has a history) and the same for every sample of
    its batch: a learned query or latent array expanded over the batch, a positional table, which
    reads no data (:func:`gradhealth.analysis.findings.towers` starts no path there)."""
    if t is None or t.grad_fn is None or not t.is_floating_point() or t.dim() < 2 or t.shape[0] < 2:
        return False
    with torch.no_grad():
        return bool((t == t[:1]).all())


def _zero_weight(rec: Record) -> bool:
    """Whether ``rec`` is a layer whose weight (as its forward used it) is all exactly zero."""
    if rec.role.kind != "weight":
        return False
    w = rec.weight if rec.weight is not None else weight_of(rec.module)[0]
    return w is not None and w.numel() > 0 and not bool(w.detach().any())


#: Autograd steps that only reshape: a softmax reached from an output through them alone is the output's.
_OUTPUT_RESHAPES = ("View", "Reshape", "Unsqueeze", "Squeeze", "Permute", "Transpose", "Clone", "Expand",
                    "Select", "Slice", "Unbind", "Split", "Cat", "Stack", "ToCopy")


def _output_nodes(value: Any, depth: int = 3) -> set[Any]:
    """The autograd nodes of a forward's returned tensors and what they reshape (a softmax
    returned as the output, viewed or stacked, is output_loss_mismatch's, not an inner one's)."""
    found: list[Any] = []
    if isinstance(value, torch.Tensor):
        found = [value.grad_fn] if value.grad_fn is not None else []
    elif depth and isinstance(value, list | tuple | dict):
        for v in value.values() if isinstance(value, dict) else value:
            found += list(_output_nodes(v, depth - 1))
    nodes, frontier = set(found), found
    for _ in range(4):
        frontier = [c for n in frontier if type(n).__name__.startswith(_OUTPUT_RESHAPES)
                    for c, _ in n.next_functions if c is not None and c not in nodes]
        nodes.update(frontier)
    return nodes


#: The figure a softmax inside the forward leaves on the unit read before it: its share of one-hot
#: rows, under ``f"{SOFTMAX_KEY}:{module}>softmax|{file:line (code)}"`` (one key per call site; the
#: softmax is no layer of the document's, so it rides on a unit's figures, which reports do not list)
SOFTMAX_KEY = "softmax_saturated_fraction"


def softmax_figures(calls: Sequence[SoftmaxCall], value: Any, records: Sequence[Record],
                    figures: SeedFigures) -> None:
    """Put each softmax call site's share of one-hot rows (:func:`softmax_counts`, the calls of one
    site pooled) on the unit read before it (the first unit where none was), for ``rules.Saturation``;
    a softmax the forward returns (viewed, stacked) is the output's, output_loss_mismatch's business,
    and so is every other call of its site (the same head at the steps before the last one returned)."""
    outputs = _output_nodes(value)
    # a site one of whose calls makes the output is the output's at every call: a head's softmax run
    # at every time step of which only the last is returned (modsweep42) is no hidden softmax before
    output_sites = {(c.module, c.site) for c in calls if c.out.grad_fn is not None and c.out.grad_fn in outputs}
    sites: dict[tuple[str, str | None], list[SoftmaxCall]] = {}
    for c in calls:
        if (c.module, c.site) not in output_sites:
            sites.setdefault((c.module, c.site), []).append(c)
    names = [r.name for r in records if r.name in figures.units]
    if not sites or not names:
        return
    counts = torch.stack([torch.stack([c.counts for c in cs]).sum(dim=0) for cs in sites.values()]).tolist()
    logged = _logged_nodes(value)
    for ((module, site), cs), (one_hot, judged) in zip(sites.items(), counts, strict=True):
        if judged:
            host = cs[0].after if cs[0].after in names else names[0]
            key = f"{module}>softmax|{site or module}"
            figures.units[host][f"{SOFTMAX_KEY}:{key}"] = one_hot / judged
            if any(c.out.grad_fn is not None and c.out.grad_fn in logged for c in cs):
                # log(softmax(x)) (peersweep22 ips01/ips14): a log_softmax computed unstably, whose
                # gradient on x is e_y - p whatever the one-hot share (no vanishing Jacobian)
                figures.units[host][f"{SOFTMAX_LOGGED_KEY}:{key}"] = 1.0
            if any(_attention_scores(c.out.grad_fn) for c in cs):
                figures.units[host][f"{SOFTMAX_ATTENTION_KEY}:{key}"] = 1.0
        hidden = [c for c in cs if c.hidden is not None and c.after in names and _feeds_weight(c.out, records)]
        if hidden:
            # the layer's activation: its gain and its width (peersweep7 base_wrong_act: a conv's
            # softmax over 32 channels, gain ~1/32, read healthy as no activation at all)
            key = f"{hidden[0].after}>softmax|{site or module}"
            gains = torch.stack([cast(tuple[int, torch.Tensor], c.hidden)[1] for c in hidden])
            figures.units[cast(str, hidden[0].after)][f"{HIDDEN_SOFTMAX_KEY}:{key}"] = float(gains.nanmean())  # (a call on an empty batch: NaN)
            figures.units[cast(str, hidden[0].after)][f"{HIDDEN_SOFTMAX_WIDTH}:{key}"] = float(
                cast(tuple[int, torch.Tensor], hidden[0].hidden)[0])


#: The mark a softmax whose output a log reads (``torch.log(torch.softmax(x))``) leaves beside its share, and
#: the mark of a softmax over scores made by a product of two activations (an attention's q k^T, a router's or a
#: similarity's): the one-hot share means different things for each (``rules.Saturation``).
SOFTMAX_LOGGED_KEY = "softmax_log_of"
SOFTMAX_ATTENTION_KEY = "softmax_attention_scores"
#: The log nodes of autograd; the nodes walked from a forward's outputs to find them, at most.
_LOGS = ("LogBackward0", "Log2Backward0", "Log10Backward0")
_LOG_WALK = 50_000


def _logged_nodes(value: Any) -> set[Any]:
    """The autograd nodes whose output a log reads, directly or through reshapes (a softmax's: the
    numerically unstable log_softmax), among the nodes the forward's returned tensors reach."""
    seen: set[Any] = set()
    frontier = list(_output_nodes(value))
    logged: set[Any] = set()
    while frontier and len(seen) < _LOG_WALK:
        node = frontier.pop()
        if node in seen:
            continue
        seen.add(node)
        children = [c for c, _ in node.next_functions if c is not None]
        if type(node).__name__ in _LOGS:
            through = children
            for _ in range(4):
                logged.update(through)
                through = [c for n in through if type(n).__name__.startswith(_OUTPUT_RESHAPES + _RESHAPES)
                           for c, _ in n.next_functions if c is not None]
        frontier.extend(c for c in children if c not in seen)
    return logged


def _attention_scores(node: Any) -> bool:
    """Whether the softmax at autograd ``node`` reads scores made by a product of two activations
    (an attention's q k^T, a router's or a similarity's), through scalings, masks, sums and reshapes
    only; a layer's own product (with a weight) is no such score."""
    frontier = [c for c, _ in node.next_functions if c is not None] if node is not None else []
    for _ in range(16):
        nxt: list[Any] = []
        for n in frontier:
            kind = type(n).__name__.removesuffix("Backward0").removesuffix("Backward1")
            if kind in _PRODUCTS:
                if not any(_weight_operand(f) for f, _ in n.next_functions):
                    return True
            elif kind in ("Add", "Sub") or kind.startswith(_TO_SCORES):
                nxt.extend(c for c, _ in n.next_functions if c is not None)
        if not nxt:
            return False
        frontier = nxt
    return False


#: The figures a softmax used as a weight layer's activation leaves on that layer (:func:`softmax_figures`):
#: its Jacobian's gain (:func:`softmax_gain`) and the features it is taken over.
HIDDEN_SOFTMAX_KEY = "hidden_softmax_gain"
HIDDEN_SOFTMAX_WIDTH = "hidden_softmax_features"
#: Autograd steps a softmax's output may pass through on its way into a weight layer, those of one
#: input besides parameters (a pooling, a reshape, a dropout, a scale); a sum, a product with another
#: activation (an attention's p @ v, a router's gate times an expert) stops the walk.
_FEED_DEPTH = 24


def _param_only(node: Any, depth: int = 4) -> bool:
    """``node`` is a parameter, or a transpose, view or cast of one (``x @ W.t()``'s)."""
    kind = type(node).__name__
    if kind == "AccumulateGrad":
        return True
    parents = [n for n, _ in node.next_functions if n is not None]
    return (depth > 0 and (kind == "TBackward0" or kind.startswith(("ToCopy", *_RESHAPES))) and bool(parents)
            and all(_param_only(n, depth - 1) for n in parents))


def _feeds_weight(out: torch.Tensor, records: Sequence[Record]) -> bool:
    """A weight unit reads ``out`` (a softmax's output), through steps of one input only."""
    target = out.grad_fn
    if target is None:
        return False
    for rec in records:
        if rec.role.kind != "weight" or not isinstance(rec.inp, torch.Tensor):
            continue
        if rec.inp is out:
            return True
        node, seen = rec.inp.grad_fn, 0
        while node is not None and seen < _FEED_DEPTH:
            if node is target:
                return True
            if _gated_by_data(node):
                break
            inputs = [n for n, _ in node.next_functions if n is not None and not _param_only(n)]
            if len(inputs) != 1:
                break
            node, seen = inputs[0], seen + 1
    return False


#: Autograd nodes of a product (or quotient) of two tensors; a product with a Python number is another
#: node (``MulBackward1``), one input only.
_GATES = ("MulBackward0", "DivBackward0")


def _gated_by_data(node: Any) -> bool:
    """``node`` multiplies by a tensor outside the autograd graph, no parameter: the model's input
    itself (Keras' classic attention ``Multiply()([inputs, Dense(k, softmax)(inputs)])``, kerassweep26
    boston_attention_json), whose missing branch hid the product and read the softmax as the hidden
    activation of the Dense after it. Like a product with another activation, it is a gate, which
    stops the walk (a softmax's outputs gating another tensor are attention weights)."""
    return type(node).__name__ in _GATES and any(n is None for n, _ in node.next_functions)


def instrumented_step(run: GraphRun, net: nn.Module, xs: list[torch.Tensor], seed: int
                      ) -> tuple[SeedFigures, list[Record]]:
    """One forward + backward with every leaf hooked; all figures read back in one transfer."""
    tracer = Tracer(net, run.names(net) if run.names else None, functions=run.trace_functions)
    rnns = [m for m in net.modules() if isinstance(m, UnrolledRNN)]
    for m in rnns:
        m.probing = True
    try:
        net.zero_grad(set_to_none=True)
        # cached: a parametrized weight is computed once, so the hooks see the tensor used
        functional = FunctionalOps(tracer, net) if run.trace_functions else contextlib.nullcontext()
        with (torch.nn.utils.parametrize.cached(), functional, direct_checkpoints(), _guarded(run),
              head_logits(run, net) as logits):
            value = call(net, xs, run.keywords, run.nest)
            tracer.drop_repeated()
            squashed = None if run.unsquash else forward_squash(run, value)
            bounded = squash_before_softmax(run, value)
            simplex = simplex_output(run, value)
            width = output_width(value)
            per_sample = values_per_sample(value)
            loss, silent = _loss(run, value, seed, logits)
            inputs_back = reconstructed_inputs(run, xs, value) if seed == 0 else None
        tracer.settle(loss)
        looped = loops(tracer.units)
        # a recurrent module's state is its own (its h_t, read through its steps below), never one a
        # cell written from raw parameters shares with other loops
        shared = shared_states({n: cs for n, cs in looped.items() if not isinstance(cs[0].module, UnrolledRNN)})
        for _, states in shared.values():
            for h in states:
                if h.requires_grad:
                    h.retain_grad()  # dL/dH_t of the state several loops read (its steps)
        scans = elementwise_loops(tracer.decays)
        # kept for the gradient carried through time (Readout.add_carried) where there is time
        loss.backward(retain_graph=bool(rnns or run.recurrences or looped or scans))
        tracer.confirm()
    finally:
        tracer.close()
        for m in rnns:
            m.probing = False
    readout = Readout()
    cut: list[str] = []  # trainable units the loss does not depend on
    seen: set[str] = set()
    records: list[Record] = []
    # layers called once per step of a loop or an element-wise scan (an IndRNN's x_t W_ih, a
    # stacked cell's): measured at the last step, as the loop is, so that depth compares layers at
    # one time step and not the through-time factor again (modsweep49 indrnn_default_init)
    lengths = [len(calls) for calls in looped.values()] + [len(states) for states in scans.values()]
    calls_made = {**collections.Counter(rec.name for rec in tracer.units),
                  **{n: len(cs) for n, cs in tracer.repeated.items()}}
    per_step = {name for name, n in calls_made.items() if any(k <= n <= k + 1 for k in lengths)}
    measured = measured_calls(tracer.units, tracer.repeated, looped, per_step)
    for rec in tracer.units:
        if rec.name in seen:
            continue  # a module called twice (shared weights, a step of a loop): one call is measured
        seen.add(rec.name)
        rec = measured.get(rec.name, rec)
        records.append(rec)
        if add_record(readout, rec):
            cut.append(rec.name)
        if isinstance(rec.module, UnrolledRNN):
            add_recurrent_steps(readout, rec.name, _loop_calls(looped[rec.name], measured[rec.name])
                                if rec.name in looped else [rec])
    grouped = {n for members, _ in shared.values() for n in members}
    for name, (_, states) in shared.items():
        # one recurrence read by several loops (a cell written from raw parameters): the state's
        # steps, under its first member's name, and none of each matrix's own
        for h in states:
            readout.add_step((name, 0), h.grad)
        readout.add_carried((name, 0), states)
    for name, calls in looped.items():  # a layer called in a loop: its calls are time steps
        if name in grouped or isinstance(calls[0].module, UnrolledRNN):
            continue  # (a recurrent module's steps are read above, its h_t of every call)
        calls = _loop_calls(calls, measured[name])
        for rec in calls:
            readout.add_step((name, 0), rec.out.grad)
        # the last step's whole state is carried back: its other outputs too (an LSTMCell's c_{T-1}
        # beside h_{T-1}, which the loss reads where it reads the final (h, c), as a classifier
        # reading both or a decoder started from them does)
        readout.add_carried((name, 0), [rec.out for rec in calls], calls[-1].extra_outs)
    for name, states in scans.items():  # an element-wise recurrence: its states are time steps
        scan = Record(name, f"function:{name}", Role("other", "rnn"), ElementwiseScan(), None, states[-1])
        records.append(scan)
        readout.add_unit(name, out=states[-1], grad=states[-1].grad, activation=None)
        for h in states:
            readout.add_step((name, 0), h.grad)
        readout.add_carried((name, 0), states)
    # layers called once per step beside a loop (its input projection x_t W_ih): steps, not depth
    counts = collections.Counter(rec.name for rec in tracer.units)
    beside = [name for name, n in counts.items() if name not in looped
              and any(n == len(calls) for calls in looped.values())]
    by_name = {rec.name: rec for rec in records}
    for r in run.recurrences:
        if all(n in by_name for n in r.steps):  # a step folded into another unit: not read as time
            for n in r.steps:
                readout.add_step((r.layer, r.sublayer), by_name[n].out.grad)
            readout.add_carried((r.layer, r.sublayer), [by_name[n].out for n in r.steps])
    figures = readout.read(loss, silent)
    figures.forward_squash = squashed
    figures.squash_before_softmax = bounded
    figures.simplex_output = simplex
    figures.output_width = width
    figures.output_values = per_sample
    figures.reconstruction = inputs_back
    figures.batch_statistics = dict(tracer.batch_statistics)
    if seed == 0 and loss.grad_fn is not None:  # the structure is every seed's: read once (simulate_graph)
        readers = consumers(loss.grad_fn)  # one walk of the graph serves all three
        sums = branch_sums(records, readers, tracer.inplace_sums)
        figures.post_ln = post_ln_units(sums, readers, tracer.inplace_sums)
        figures.gates = gate_units(records, readers)
        figures.feeds = unit_feeds(records, readers)
        figures.loss_reads = loss_reads(records, readers, loss.grad_fn)
        fed = {n for targets in figures.feeds.values() for n in targets}
        for rec in records:
            if rec.name not in fed and _same_for_every_sample(rec.inp):
                figures.units.setdefault(rec.name, {})["constant_input"] = 1.0
            if _zero_weight(rec) and _same_for_every_sample(rec.inp):
                # an all-zero layer the data reaches only through another (zero layers in series:
                # its input is 0, or its bias's constant): it can never learn (rules.designed_zero_layers)
                figures.units.setdefault(rec.name, {})["input_same_for_every_sample"] = 1.0
        figures.gate_drivers = gate_drivers(looped, readers)
        figures.score_projections = score_projections(records, readers)
        # one name per residual sum made: a block shared across depth (ALBERT's, an ODE solver's
        # step) is summed once a call
        figures.summed = [name for name in sums for _ in range(max(1, counts.get(name, 1)))]
    figures.looped = [*looped, *scans]
    figures.selective_scans = [name for name in scans if name in tracer.selective]
    figures.shared_states = {name: members for name, (members, _) in shared.items()}
    figures.beside_loops = beside
    for name in cut:
        figures.units[name]["cut_off"] = 1.0
    for name, made in counts.items():
        if made > 1 and name in figures.units:
            # its output gradient is one call's, its weights get the sum over the calls (a neural
            # ODE's function, called at every solver stage, each output scaled by dt): not a depth
            figures.units[name][CALLS] = float(made)
    for rec in records:
        if rec.bypassed:
            figures.units.setdefault(rec.name, {})["bypassed"] = 1.0
    for rec in records if tracer.detached else ():
        # no gradient, cut or exactly 0 (the path kept through a 0 weight), where a .detach() the
        # forward makes reads its output (a router's, a gate's): the output is used, the weights never
        # learn; a head the loss does not read is cut without one
        g = output_grad(rec)
        if rec.role.kind == "weight" and rec.out.grad_fn is not None and (g is None or not bool(g.any())) and any(
                _within_hops(node, {rec.out.grad_fn}) for node in tracer.detached):
            figures.units.setdefault(rec.name, {})["detached"] = 1.0
    figures.layer_scales = layer_scale_names(net, tracer)
    if isinstance(functional, FunctionalOps):
        for kind, _ in functional.computed.values():
            figures.computed_kernels[kind] = figures.computed_kernels.get(kind, 0) + 1
        figures.step_ops = sorted(functional.steps)
    if run.optimizer is not None:
        # (an unrolled nn.RNN/GRU/LSTM keeps the module it unrolls as a child: its weights are its own)
        # (a unit that saw no sample, an expert given none of the batch, has a gradient of 0 for
        # want of data: its step is not measured in this seed, as none of its figures is)
        own = {rec.name: own_parameters(rec.module) for rec in records
               if not figures.units.get(rec.name, {}).get("no_samples")}
        add_step_ratios(figures.units, own, run.optimizer)
    for name in tracer.singleton_softmax:
        figures.units.setdefault(name, {})["singleton_softmax"] = 1.0
    if isinstance(functional, FunctionalOps) and functional.softmaxes:  # (no tensors of theirs read above)
        softmax_figures(functional.softmaxes, value, records, figures)
    elif tracer.softmaxes:  # an imported graph's softmax modules over a layer's features
        softmax_figures(tracer.softmaxes, value, records, figures)
    return figures, records


def _of_loop(name: str, calls: Sequence[Record], looped: Mapping[str, Sequence[Record]]) -> bool:
    """Whether ``name`` is an activation function's unit (:class:`FunctionActivation`, named
    "<unit before>><activation>") called once a step of the loop it is named after: a gate or
    candidate of a cell written from raw parameters (``torch.sigmoid(X @ W_xz + H @ W_hz + b_z)``).
    Like the loop's own products it is measured at its last step, its state built up: at the first
    h_0 is often 0, and its units are as unsaturated as the input alone makes them (modsweep44
    aye_gru_scratch: 6% of the update gate's units saturated at step 0, 84% by step 25)."""
    before, sep, _ = name.rpartition(">")
    return bool(sep) and isinstance(calls[0].module, FunctionActivation) and len(looped.get(before, ())) == len(calls)


def _loop_calls(calls: Sequence[Record], measured: Record) -> list[Record]:
    """A loop's calls up to the measured one, the last step whose output the loss reads (a char-RNN
    whose head reads [x_t, h_{t-1}] leaves the last step's new state unread): a step after it is no
    step back in time."""
    return list(calls[:max(k for k, rec in enumerate(calls) if rec is measured) + 1])


def add_recurrent_steps(readout: Readout, name: str, calls: Sequence[Record]) -> None:
    """The time steps of recurrent module ``name`` (an :class:`UnrolledRNN`), one series per sublayer:
    the h_t of each of ``calls`` in the order they ran, each call's own steps in order. One call over a
    whole sequence gives that sequence's steps; a module stepped once per call in a loop, carrying the
    state the call before left (a seq2seq decoder's ``nn.LSTM`` called once per target token), gives
    one step per call. h_t is what both the output and the next step read (an ``nn.LSTM``'s output is
    a copy of it), so dL/dh_t holds the gradient the recurrence carries; each layer of a stacked
    module (``rnn``, ``rnn#2``, ...) is read the same way, from its own calls. The carried gradient
    (:meth:`Readout.add_carried`) starts from the last call's last step, with that call's cell state."""
    last = calls[-1]
    for sub in last.steps:
        hs = [h for rec in calls for h in rec.steps.get(sub, [])]
        for h in hs:
            readout.add_step((name, sub), h.grad)
        readout.add_carried((name, sub), hs, [last.cells.get(sub)])


def measured_calls(units: Sequence[Record], repeated: Mapping[str, Sequence[Record]],
                   looped: Mapping[str, Sequence[Record]], per_step: Collection[str] = ()) -> dict[str, Record]:
    """After the backward: of each unit called more than once in a forward (shared weights, a layer
    in a Python loop, a head applied at every time step), the call that is measured. It is one whose
    output the loss reaches, with a gradient that is not all zero where one has: the first such call
    (a block shared across depth: the one the gradient passes every later call to reach), or, for a
    loop over its own state (``looped``), the last (its state built up; h_0 is often 0). A head called
    at every step of which only the last output is returned is measured at that last call, not at a
    first call whose output nothing reads (modsweep42: the PyTorch char-RNN tutorial's ``i2o`` read
    "no gradient reaches i2o", though its weights got one). Where no call's output reaches the loss
    the first (a loop's: the last) is measured, and the unit is cut off. A unit called once per
    step of a loop (``per_step``: an input projection beside its cell, a stacked cell's layers) is
    measured at its last step too, the step the loop is measured at. The weights' gradients are
    the module's parameters' own, summed over the calls by autograd, whichever call is measured."""
    calls: dict[str, list[Record]] = {}
    for rec in units:
        calls.setdefault(rec.name, []).append(rec)
    for name, more in repeated.items():
        calls[name] = list(more)
    for name, cs in looped.items():
        calls[name] = list(cs)
    calls = {name: cs for name, cs in calls.items() if len(cs) > 1}
    grads = {name: [output_grad(rec) for rec in cs] for name, cs in calls.items()}
    flat = [g for gs in grads.values() for g in gs if g is not None]
    # one transfer: whether each gradient that reached a call is anything but zeros
    nonzero = iter(torch.stack([g.detach().ne(0).any() for g in flat]).tolist() if flat else [])
    chosen: dict[str, Record] = {}
    for name, cs in calls.items():
        rank = [(2 if next(nonzero) else 1) if g is not None else 0 for g in grads[name]]
        order = list(range(len(cs)))[::-1] if name in looped or name in per_step or _of_loop(name, cs, looped) \
            else list(range(len(cs)))
        best = max(rank)
        chosen[name] = cs[next(k for k in order if rank[k] == best)]
    return chosen


class _FirstNonfinite(torch.overrides.TorchFunctionMode):
    """Finds the first torch function whose floating output holds a NaN or Inf while every
    floating tensor it read was finite: the operation that made the first non-finite value."""

    def __init__(self, overflow_only: bool = False, site: Callable[[], str | None] = caller) -> None:
        super().__init__()
        self.found: tuple[str, str | None] | None = None
        self.site = site
        #: only a NaN or a +Inf counts: a -inf a forward writes on purpose (a causal mask's
        #: masked_fill(mask, -inf) before a softmax) is no overflow
        self.overflow_only = overflow_only

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.found is None and isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            with torch.no_grad():
                bad = (bool(torch.isnan(out).any() or torch.isposinf(out).any()) if self.overflow_only
                       else not bool(torch.isfinite(out).all()))
                # (a sequence's tensors too: torch.cat of a NaN layer output made no NaN of its own)
                read = [b for a in (*args, *(kwargs or {}).values())
                        for b in (a if isinstance(a, list | tuple) else (a,))]
                inputs = [a for a in read if isinstance(a, torch.Tensor) and a.is_floating_point() and a.numel()]
                if bad and all(bool(torch.isfinite(a).all()) for a in inputs):
                    self.found = (op_name(func), self.site())
        return out


class _FirstNonfiniteGrad(torch.overrides.TorchFunctionMode):
    """Finds the call whose backward made the first NaN or Inf on the way back: the gradient it
    received for its output was finite and one it passed to an input was not (sqrt's derivative at
    0, a norm without an eps). Each floating input of a call of :data:`BACKWARD_MAKERS` is read
    through a view of its own, so that its hook sees that call's gradient alone."""

    def __init__(self, site: Callable[[], str | None] = caller) -> None:
        super().__init__()
        self.found: tuple[str, str | None] | None = None
        self.site = site

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        name, raw = op_name(func), getattr(func, "__name__", "")
        if name.lower() not in BACKWARD_MAKERS or (raw.endswith("_") and not raw.startswith("__")):
            return func(*args, **(kwargs or {}))
        views: list[torch.Tensor] = []

        def own(a: Any) -> Any:
            if isinstance(a, torch.Tensor) and a.requires_grad and a.is_floating_point():
                views.append(a.view_as(a))
                return views[-1]
            return a
        out = func(*(own(a) for a in args), **(kwargs or {}))
        if views and isinstance(out, torch.Tensor) and out.requires_grad:
            site, received = (name, self.site()), [True]
            out.register_hook(lambda g: received.__setitem__(0, bool(torch.isfinite(g).all())))
            for v in views:
                v.register_hook(lambda g: self._passed(g, site, received[0]))
        return out

    def _passed(self, grad: torch.Tensor, site: tuple[str, str | None], received_finite: bool) -> None:
        if self.found is None and received_finite and not bool(torch.isfinite(grad).all()):
            self.found = site


def first_nonfinite(run: GraphRun, device: str | None = None) -> tuple[str, str | None] | None:
    """(the operation, where the forward called it) that made the first NaN or Inf in seed 0's
    forward pass, as the simulation runs it; None when the forward stays finite. One plain forward
    with every torch function's output checked: run only when a non-finite value was found."""
    dev = pick_device(device or "auto")
    net = _copy_for_seed(run, 0, dev)
    xs = _seed_inputs(run, 0, dev)
    with _Sites(run, net) as site:
        mode = _FirstNonfinite(site=site)
        with torch.no_grad(), mode, _guarded(run):
            call(net, xs, run.keywords, run.nest)
    return mode.found


def first_nonfinite_backward(run: GraphRun, device: str | None = None) -> tuple[str, str | None] | None:
    """(the operation, where the forward called it) whose derivative made the first NaN or Inf in
    seed 0's backward pass; None when none of :data:`BACKWARD_MAKERS` did. One plain forward and
    backward: run only when the simulation found a non-finite gradient."""
    dev = pick_device(device or "auto")
    net = _copy_for_seed(run, 0, dev)
    xs = _seed_inputs(run, 0, dev)
    with _Sites(run, net) as site:
        mode = _FirstNonfiniteGrad(site=site)
        with mode, _guarded(run), head_logits(run, net) as logits:
            loss, _ = _loss(run, call(net, xs, run.keywords, run.nest), 0, logits)
    if loss.requires_grad:
        loss.backward()
    return mode.found


class _Sites:
    """Where a forward is when it calls a function: the user's line (:func:`caller`) for a live
    module; the node running, ``node <name>``, for an imported graph, whose calls are this
    package's own code (a leaf module per node, as :attr:`GraphRun.names` names them)."""

    def __init__(self, run: GraphRun, net: nn.Module) -> None:
        self.live = run.trace_functions
        self.running: list[str] = []
        self.handles: list[Any] = []
        if not self.live:
            names = run.names(net) if run.names else {m: (n, "") for n, m in net.named_modules()}
            for module, (name, _) in names.items():
                if next(module.children(), None) is None:
                    self.handles += [module.register_forward_pre_hook(functools.partial(self._enter, name)),
                                     module.register_forward_hook(self._leave)]

    def _enter(self, name: str, module: nn.Module, args: Any) -> None:
        self.running.append(name)

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self.running.pop()  # (a hook's return value would replace the output)

    def __call__(self) -> str | None:
        if self.live:
            return caller()
        return f"node {self.running[-1]}" if self.running else None

    def __enter__(self) -> _Sites:
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def _guarded(run: GraphRun) -> contextlib.AbstractContextManager[Any]:
    """The run's eps guards (a remedy's, :class:`DomainGuards`) while its forward runs."""
    return DomainGuards(run.guards) if run.guards else contextlib.nullcontext()


def own_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype ``model`` is built in (its first floating parameter's); None without one."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def in_own_dtype(run: GraphRun) -> GraphRun | None:
    """``run`` in the model's own floating dtype (float32, a half type) where that is not the
    run's (float64 by default); None where it is, or the model has no floating parameter."""
    native = own_dtype(run.model)
    if native is None or native == run.dtype:
        return None
    return dataclasses.replace(run, dtype=native)


class _FirstNarrow(torch.overrides.TorchFunctionMode):
    """Finds the first torch function whose output is a floating tensor narrower than ``dtype`` (a
    float32 tensor in a float64 pass) that carries a gradient: a part of the differentiated
    computation done in that precision (``log_det += ld`` into a ``torch.zeros(n)`` made without
    ``dtype=``), with where that narrow tensor was made. Narrow tensors without a gradient that
    only meet wider ones (noise drawn with ``torch.randn(shape)``) are promoted and change nothing."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.bits = torch.finfo(dtype).bits
        self.found: tuple[torch.dtype, str, str | None, tuple[str, str | None] | None] | None = None
        self.made: dict[int, tuple[str, str | None]] = {}
        self.kept: list[torch.Tensor] = []  # the tensors' ids stay theirs while the forward runs

    def _narrow(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.is_floating_point() and torch.finfo(t.dtype).bits < self.bits

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.found is not None:
            return out
        outs = [t for t in (out if isinstance(out, list | tuple) else (out,)) if self._narrow(t)]
        if not outs:
            return out
        read = [b for a in (*args, *(kwargs or {}).values()) for b in (a if isinstance(a, list | tuple) else (a,))]
        origin = next((self.made[id(t)] for t in read if self._narrow(t) and id(t) in self.made), None)
        if any(t.requires_grad for t in outs):
            self.found = (outs[0].dtype, op_name(func), caller(), origin)
            return out
        for t in outs:
            self.made.setdefault(id(t), origin or (op_name(func), caller()))
            self.kept.append(t)
        return out


def narrow_tensors(run: GraphRun, device: str | None = None
                   ) -> tuple[torch.dtype, str, str | None, tuple[str, str | None] | None] | None:
    """(the dtype, the operation, the user's line, where the narrow tensor it computed on was made:
    (operation, line) or None) of the first operation of seed 0's forward on the run's copy whose
    output carries a gradient in a dtype narrower than the run's (:class:`_FirstNarrow`): a forward
    that makes a float32 tensor itself runs that part in float32 on the float64 copy, with no error
    where nothing meets it but an in-place ``+=`` (which keeps the float32) or a promotion
    (modsweep46 seanie_realnvp: a flow's log-determinant summed into ``torch.zeros(batch)``). None
    where there is none, or the forward does not run."""
    if not run.dtype.is_floating_point:
        return None
    try:
        dev = pick_device(device or "auto")
        net, xs = _copy_for_seed(run, 0, dev), _seed_inputs(run, 0, dev)
        mode = _FirstNarrow(run.dtype)
        with torch.enable_grad(), mode:
            call(net, xs, run.keywords, run.nest)
    except Exception:  # noqa: BLE001 - the simulation ran this forward; a note is not worth a failure
        return None
    return mode.found


def native_nonfinite(run: GraphRun, device: str | None = None
                     ) -> tuple[torch.dtype, tuple[str, str | None]] | None:
    """(the model's own floating dtype, :func:`first_nonfinite` in it) when seed 0's forward
    makes a NaN or Inf in the dtype the model is built in (float32, a half type) though the
    simulation's float64 stays finite: an exp or a hand-written softmax overflows float32's
    3.4e38 long before float64's 1.8e308. None when it stays finite, or the model is float64."""
    own = in_own_dtype(run)
    if own is None:
        return None
    native = own.dtype
    dev = pick_device(device or "auto")
    net, xs = _copy_for_seed(own, 0, dev), _seed_inputs(own, 0, dev)
    with torch.no_grad():
        if bool(torch.isfinite(_output(call(net, xs, run.keywords, run.nest))).all()):
            return None  # a -inf written on purpose (a mask) and gone by the output: no overflow
        with _Sites(own, net) as site:
            mode = _FirstNonfinite(overflow_only=True, site=site)
            with mode:
                call(net, xs, run.keywords, run.nest)
    return native, mode.found or ("the forward", None)


#: Autograd nodes that only move or copy values: a branch's output may pass them on its way to
#: the residual sum (:func:`post_ln_units`).
_RESHAPES = ("View", "UnsafeView", "Reshape", "Permute", "Transpose", "Clone", "Expand", "Squeeze",
             "Unsqueeze", "Alias")


#: Activations whose output, multiplied into another tensor, is a gate (a factor in (0, 1) or
#: (-1, 1) that decides how much passes).
_GATING = frozenset({"sigmoid", "tanh", "hardtanh", "hardsigmoid"})


def unit_feeds(records: Sequence[Record], readers: Mapping[Any, set[Any]]) -> dict[str, list[str]]:
    """Each unit -> the units its output reaches first, through operations that belong to no
    unit's output (a sum, a concatenation, a product, a norm not folded in): the network's unit
    graph, read from the autograd graph the step built (``readers``: :func:`consumers` of its loss).
    A network of several towers (DeepONet's branch and trunk, a two-tower recommender) has one
    first unit per tower, each reaching the end by its own path. A unit whose output the loss does
    not depend on is left out."""
    made_by: dict[Any, str] = {}
    for rec in records:
        if rec.out.grad_fn is not None:
            made_by.setdefault(rec.out.grad_fn, rec.name)
    feeds: dict[str, set[str]] = {}
    for rec in records:
        start = rec.out.grad_fn
        if start is None or start not in readers:
            continue  # its output reaches no loss (a .detach() after it): no path to follow
        reached = feeds.setdefault(rec.name, set())
        stack, seen = [start], {start}
        while stack:
            for reader in readers.get(stack.pop(), ()):
                if reader in seen:
                    continue
                seen.add(reader)
                name = made_by.get(reader)
                if name is None:
                    stack.append(reader)
                elif name != rec.name:  # the next unit: the walk stops at its output (and at
                    reached.add(name)   # this unit's own next call, whose record walks on)
    return {name: sorted(to) for name, to in feeds.items()}


def loss_reads(records: Sequence[Record], readers: Mapping[Any, set[Any]], root: Any) -> list[str]:
    """The units whose output the loss reads with no other unit between (through operations that
    belong to no unit's output: a loss term, a sum of terms, a concatenation): the heads of the
    loss's terms. A plain chain has one, its last layer; a model returning its loss as the sum of a
    main term and a weighted auxiliary one (CapsNet's margin loss + 0.0005 x reconstruction) has
    one per term."""
    made_by: dict[Any, str] = {}
    for rec in records:
        if rec.out.grad_fn is not None:
            made_by.setdefault(rec.out.grad_fn, rec.name)
    heads: list[str] = []
    for rec in records:
        start = rec.out.grad_fn
        if start is None or rec.name in heads or (start not in readers and start is not root):
            continue
        stack, seen, found = [start], {start}, start is root
        while stack and not found:
            for reader in readers.get(stack.pop(), ()):
                if reader in seen:
                    continue
                seen.add(reader)
                if reader is root:
                    found = True
                    break
                if made_by.get(reader) is None:
                    stack.append(reader)
        if found:
            heads.append(rec.name)
    return heads


def gate_units(records: Sequence[Record], readers: Mapping[Any, set[Any]]) -> list[str]:
    """The units whose sigmoid or tanh output is read only by elementwise products (through
    reshapes): a squeeze-excitation or GLU gate, a Highway gate, an LSTM's gates written by hand.
    Swapping such an activation for a ReLU removes the gating, whatever it does to saturation.
    Read from the autograd graph the step built (``readers``: :func:`consumers` of its loss)."""
    out = []
    for rec in records:
        node = rec.out.grad_fn if rec.activation in _GATING else None
        if node is None:
            continue
        ends: list[Any] = []
        frontier = [node]
        for _ in range(4):  # through the view a broadcast needs (x * s.view(b, c, 1, 1))
            nxt: list[Any] = []
            for n in frontier:
                for r in readers.get(n, ()):
                    (nxt if type(r).__name__.startswith(_RESHAPES) else ends).append(r)
            frontier = nxt
        if ends and not frontier and all(type(r).__name__.startswith("MulBackward") for r in ends):
            out.append(rec.name)
    return out


#: What lies between a looped layer's output and the gate it drives in a cell written by hand: the
#: split of its gates (z and r of one product), the add of the input's own projection, reshapes
_TO_GATE = ("Split", "Unbind", "Chunk", "Slice", "Select", "Add", "Narrow", *_RESHAPES)


#: What lies between an attention's query or key projection and its softmax: the heads' reshapes,
#: the product q k^T, its scaling, a mask (masked_fill, an additive mask) and a bias added
_TO_SCORES = ("Mul", "Div", "MaskedFill", "Where", *_RESHAPES)
_PRODUCTS = ("Bmm", "Mm", "MatMul", "Baddbmm")


def _weight_operand(node: Any) -> bool:
    """Whether an autograd input is a parameter, directly or transposed (a linear layer's W^T)."""
    for _ in range(2):
        if node is None:
            return False
        if type(node).__name__ == "AccumulateGrad":
            return True
        if not type(node).__name__.startswith(("T", "Transpose", "Permute")):
            return False
        node = node.next_functions[0][0] if node.next_functions else None
    return False


def score_projections(records: Sequence[Record], readers: Mapping[Any, set[Any]]) -> list[str]:
    """The units whose output reaches a softmax through a product with another tensor, reshapes,
    a scaling and a mask only: an attention's query and key projections (softmax(q k^T / sqrt d)).
    Their gradient goes through the softmax's Jacobian, so it is small by design beside the value
    path's (a Post-LN Transformer's decoder queries get 1e-3 of the last layer's: modsweep33 h10),
    and no run of them is a starved middle."""
    out = []
    for rec in records:
        frontier = [rec.out.grad_fn] if isinstance(rec.out, torch.Tensor) and rec.out.grad_fn is not None else []
        product = found = False
        for _ in range(16):
            nxt: list[Any] = []
            for n in frontier:
                for r in readers.get(n, ()):
                    kind = type(r).__name__.removesuffix("Backward0").removesuffix("Backward1")
                    if kind.startswith(("Softmax", "LogSoftmax")):
                        found = found or product
                    elif kind in _PRODUCTS:
                        # q k^T multiplies two activations; a layer's own product has a weight
                        if any(_weight_operand(f) for f, _ in r.next_functions):
                            continue
                        product = True
                        nxt.append(r)
                    elif kind in ("Add", "Sub") or kind.startswith(_TO_SCORES):
                        nxt.append(r)
            frontier = nxt
            if found or not frontier:
                break
        if found:
            out.append(rec.name)
    return out


def gate_drivers(calls: Mapping[str, Sequence[Record]], readers: Mapping[Any, set[Any]]) -> list[str]:
    """The layers called in a loop (``calls``: :func:`loops`) whose output reaches a sigmoid, within
    a few splits, adds and reshapes, that only products read: the recurrent projection of a GRU or
    an LSTM written by hand (z = sigmoid(x W_z + h U_z); h = z * h + ...). Such a cell is gated."""
    out = []
    for name, recs in calls.items():
        frontier = [recs[-1].out.grad_fn] if recs and recs[-1].out.grad_fn is not None else []
        found = False
        for _ in range(4):
            nxt: list[Any] = []
            for n in frontier:
                for r in readers.get(n, ()):
                    kind = type(r).__name__
                    if kind.startswith("SigmoidBackward"):
                        after = readers.get(r, set())
                        found = found or (bool(after) and all(type(a).__name__.startswith("MulBackward")
                                                              for a in after))
                    elif kind.startswith(_TO_GATE):
                        nxt.append(r)
            frontier = nxt
        if found:
            out.append(name)
    # the other layers of the same cell (called as often: a GRU's candidate projection h2n beside
    # its gates' h2zr) belong to a gated cell too
    steps = {len(calls[name]) for name in out}
    return [name for name, recs in calls.items() if name in out or len(recs) in steps]


def _summed(node: Any, readers: Mapping[Any, set[Any]]) -> Any:
    """The sum a branch's output reaches through reshapes only it reads (an exported graph's
    View, Permute) or a scaling by a constant; None for the stream itself, which the next sublayer reads as well, and for
    a layer inside the branch (its path goes on through the next layer's product)."""
    for _ in range(4):
        after = readers.get(node, set())
        if len(after) != 1:
            return None
        prev, (node,) = node, after
        kind = type(node).__name__
        if kind.startswith("AddBackward"):
            # a sum with another path, not with a parameter itself: an Add of a bias or a learned
            # shift is the branch's own affine step, walked past (onnxsweep11 h07: a "+ shift" read
            # as a residual offered scaled_residual to a plain MLP; tf2onnx's folded inference
            # BatchNorm is imported as a norm now). An operand with no gradient at all may be data:
            # the first block's x + f(x) on the raw input, a frozen base layer's W0 x beside a
            # LoRA branch (msweep15), so it is a sum.
            operands = [f for f, _ in node.next_functions]
            if prev in operands:
                operands.remove(prev)
            if any(f is None or _op(f) != "AccumulateGrad" for f in operands):
                return node
            continue
        # (or a scaling by a constant: LoRA's B(A(x)) * alpha / r, x + 0.5 * f(x): msweep15's
        # zero-initialised B then read as no branch end, an error where it is the design)
        constant_scale = kind.startswith(("MulBackward", "DivBackward")) and sum(
            f is not None for f, _ in node.next_functions) == 1
        if not (kind.startswith(_RESHAPES) or constant_scale):
            return None
    return None


def branch_sums(records: Sequence[Record], readers: Mapping[Any, set[Any]],
                inplace: set[Any] | frozenset[Any] = frozenset()) -> dict[str, Any]:
    """The units (in forward order) whose output is added to another path, each with the sum it
    reaches (:func:`_summed`): the last layer of a residual branch (x + f(x)) or of one of several
    branches summed. None in a plain stack, which has no branch to scale (scaled_residual) and
    gains a skip only by adding one. ``inplace``: the in-place sums' nodes (:attr:`Tracer.inplace_sums`):
    a unit whose output was summed in place (``q += residual``, modsweep35 u04) has that sum."""
    out: dict[str, Any] = {}
    for rec in records:
        # the layer's own node, where an in-place residual add (``x += residual``) has since given
        # the tensor the Add's: the walk starts at the layer, and reaches the Add as its reader; on
        # a view the layer's node has left the graph (the add is a CopySlices of its base), and the
        # tensor's node now is the in-place sum's
        kept = getattr(rec, "node", None)  # a record built elsewhere (the ONNX door's, a test's) may keep none
        node = kept if kept is not None else rec.out.grad_fn if isinstance(rec.out, torch.Tensor) else None
        now = rec.out.grad_fn if isinstance(rec.out, torch.Tensor) else None
        if now is not None and now is not node and now in inplace and node not in readers:
            out.setdefault(rec.name, now)
            continue
        add = _summed(node, readers) if node is not None else None
        if add is not None:
            out.setdefault(rec.name, add)
    return out


def post_ln_units(sums: Mapping[str, Any], readers: Mapping[Any, set[Any]],
                  inplace: set[Any] | frozenset[Any] = frozenset()) -> list[str]:
    """The units (in forward order) whose output is summed into the residual stream, the sum
    layer-normalised and the norm's output summed on in turn: x = norm(x + f(x)), the Post-LN
    block written by hand (BERT's re-implementations, the annotated Transformer in its Post-LN
    form). The norm's output read by the next sum is what tells it from Pre-LN, x + f(norm(x)),
    where the norm feeds only the next sublayer. The norm is recognised by what it computes
    (:func:`normalised_outputs`), so a LayerNorm or RMSNorm written by hand counts as torch's own.
    Read from the autograd graph the step built (``sums``: :func:`branch_sums`; ``readers``:
    :func:`consumers` of its loss)."""
    def summed_on(norm: Any) -> bool:
        # read by a sum with another operand than parameters and constants (the next residual
        # sum; a norm's own "+ beta" is part of the norm, :func:`normalised_outputs`)
        # (or an in-place sum, ``x += residual``: ``inplace``, a CopySlices where x is a view)
        return any((_op(r) == "Add" or r in inplace)
                   and not all(f is norm or _constant(f, {norm}) for f, _ in r.next_functions)
                   for r in readers.get(norm, ()))

    # the branch summed into the stream, the sum normalised, the norm summed on in turn
    return [name for name, add in sums.items() if any(summed_on(n) for n in normalised_outputs(add, readers))]


def _op(node: Any) -> str:
    """An autograd node's operation: ``MeanBackward1`` -> ``Mean``, ``AccumulateGrad`` as is."""
    return re.sub(r"Backward\d*$", "", type(node).__name__)


#: Steps that only move, copy or cast values (a norm computed in float32: HF LLaMA's RMSNorm).
_KEEPS_VALUES = (*_RESHAPES, "ToCopy", "T", "Contiguous")

#: Reductions to a per-position second moment, by the power of the scale sigma they measure:
#: a variance is sigma^2; a standard deviation and an L2 norm sigma^1.
_SCALE_REDUCTIONS = {"Var": 2.0, "VarMean": 2.0, "Std": 1.0, "StdMean": 1.0,
                     "LinalgVectorNorm": 1.0, "Norm": 1.0}

#: Elementwise steps on a statistic that keep its power of sigma (an epsilon added, a clamp, a
#: constant factor), and those that change it (their factor on the power).
_KEEPS_POWER = ("Add", "Sub", "Mul", "Div", "Clamp", "ClampMin", "ClampMax", "Maximum", *_KEEPS_VALUES)
_POWER_OF = {"Sqrt": 0.5, "Rsqrt": -0.5, "Reciprocal": -1.0}


def _constant(node: Any, avoid: Mapping[Any, Any] | set[Any], budget: int = 8) -> bool:
    """``node`` (an operand) depends on parameters and constants only, within a few steps, and
    on none of ``avoid`` (the stream and what is computed from it): a norm's gain and bias
    (``self.gamma``, ``1 + self.weight``, ``self.g.to(dtype)``)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None or _op(n) == "AccumulateGrad":
            continue
        budget -= 1
        if budget < 0 or n in avoid:
            return False
        stack.extend(f for f, _ in n.next_functions)
    return True


def _exponent(node: Any) -> float | None:
    """A ``Pow`` node's constant exponent; None for a tensor exponent or where it is not recorded."""
    try:
        exponent = node._saved_exponent
    except (AttributeError, RuntimeError):
        return None
    return float(exponent) if isinstance(exponent, int | float) else None


def _shape(node: Any, index: int = 0) -> tuple[int, ...] | None:
    """The shape of an autograd node's output ``index`` as the graph recorded it; None if unknown."""
    try:
        return tuple(int(d) for d in node._input_metadata[index].shape)
    except (AttributeError, IndexError, TypeError, RuntimeError):
        return None


def _per_position(reduction: Any, source: Any, index: int) -> bool:
    """``reduction`` (of ``source``'s output ``index``) reduces over the trailing (feature)
    dimensions only, keeping at least the leading one: one statistic per position, as a
    LayerNorm's or an RMSNorm's (not a BatchNorm's over the batch, nor one over the whole tensor)."""
    out, inp = _shape(reduction), _shape(source, index)
    raw = getattr(reduction, "_saved_dim", None)
    dims = None if raw is None else {int(d) - (1 << 64) if int(d) >= 1 << 63 else int(d) for d in raw}
    if inp is None or out is None:  # shapes not recorded: the reduced dimensions must end at the last
        return dims is not None and -1 in dims and all(d < 0 for d in dims)
    n = len(inp)
    if dims is not None:
        dims = {d % n for d in dims} if n else set()
        if not dims or dims != set(range(n - len(dims), n)):
            return False
    if len(out) < n:  # keepdim=False: the leading dimensions kept as they were
        kept = len(out)
        return kept >= 1 and out == inp[:kept]
    kept = n - next((i for i, d in enumerate(reversed(out)) if d != 1), n)
    return len(out) == n and 1 <= kept < n and out[:kept] == inp[:kept] and any(d != 1 for d in inp[kept:])


def _norm_tag(node: Any, tags: Mapping[Any, tuple[str, float]]) -> tuple[str, float] | None:
    """What ``node`` computes from a residual stream x (``tags``: what its operands compute),
    per position over the feature dimension: ``full`` (x, cast, reshaped, scaled or centred),
    ``square`` (x^2), ``mean`` (its mean), ``scale`` sigma^p, ``both`` (a var_mean: a mean and
    sigma^2), ``normed`` (x / sigma, then any gain and bias); None for anything else."""
    op = _op(node)
    if "LayerNorm" in op or "RmsNorm" in op:  # torch's own norms (native_layer_norm, rms_norm)
        ins = [tags.get(f) for f, _ in node.next_functions if f is not None]
        return ("normed", 0.0) if ins and ins[0] is not None and ins[0][0] == "full" else None
    tagged: list[tuple[str, float]] = []
    for f, _ in node.next_functions:
        if f in tags:
            tagged.append(tags[f])
        elif not _constant(f, tags):
            return None  # reads something else too (the next sublayer's output: a residual sum)
    if not tagged:
        return None
    kinds = sorted(t[0] for t in tagged)
    if len(tagged) == 1:
        kind, power = tagged[0]
        if op in _KEEPS_VALUES or (kind in ("full", "normed", "mean") and op in ("Add", "Sub", "Mul", "Div")):
            return kind, power  # a cast, a reshape, a gain, a bias, a shift or a constant factor
        if kind == "full":
            source, index = next((f, i) for f, i in node.next_functions if f in tags)
            if op == "Pow" and _exponent(node) == 2.0:
                return "square", 0.0
            if op in _SCALE_REDUCTIONS and _per_position(node, source, index):
                return ("both" if op.endswith("Mean") else "scale"), _SCALE_REDUCTIONS[op]
            if op in ("Mean", "Sum") and _per_position(node, source, index):
                return "mean", 0.0
        elif kind == "square" and op in ("Mean", "Sum"):
            source, index = next((f, i) for f, i in node.next_functions if f in tags)
            return ("scale", 2.0) if _per_position(node, source, index) else None
        elif kind in ("scale", "both"):
            if op in _POWER_OF:
                return "scale", power * _POWER_OF[op]
            if op == "Pow":
                exponent = _exponent(node)
                return None if exponent is None else ("scale", power * exponent)
            if op in _KEEPS_POWER:
                return "scale", power
        return None
    if len(tagged) != 2:
        return None
    by_input = [tags.get(f) for f, _ in node.next_functions]
    if op == "Mul" and kinds == ["full", "full"]:
        return "square", 0.0  # x * x
    if op == "Sub" and by_input[0] is not None and by_input[0][0] == "full" \
            and by_input[1] is not None and by_input[1][0] in ("mean", "both"):
        return "full", 0.0  # centred: x - mean(x)
    scale = next((t for t in tagged if t[0] in ("scale", "both")), None)
    if scale is None or "full" not in kinds:
        return None
    # divided by sigma (x / sqrt(var + eps), x / (std + eps)) or multiplied by 1 / sigma
    # (x * rsqrt(mean(x^2) + eps)): the output has unit scale whatever x's
    if op == "Div" and by_input[0] is not None and by_input[0][0] == "full" and scale[1] == 1.0:
        return "normed", 0.0
    if op == "Mul" and scale[1] == -1.0:
        return "normed", 0.0
    return None


def normalised_outputs(stream: Any, readers: Mapping[Any, set[Any]], limit: int = 64) -> list[Any]:
    """The autograd nodes that normalise ``stream``'s output per position over its feature
    dimension - subtract its mean (or not) and divide by the root of its variance or mean square
    - with any gain and bias after: a LayerNorm or RMSNorm however written (torch's module, F.layer_norm,
    ``(x - mean) / sqrt(var + eps) * gamma + beta``, ``x * rsqrt(mean(x^2) + eps) * g``,
    ``(x - mean) / (std + eps)``), recognised by what it computes rather than by a class or node
    name. Read forward from ``stream`` through ``readers`` (:func:`consumers`), at most ``limit`` nodes."""
    tags: dict[Any, tuple[str, float]] = {stream: ("full", 0.0)}
    changed = True
    while changed and len(tags) < limit:  # to a fixed point: a division is reached from x before its sigma
        changed = False
        for node in [r for n in list(tags) for r in readers.get(n, ())]:
            tag = _norm_tag(node, tags) if node not in tags else None
            if tag is not None:
                tags[node] = tag
                changed = True
    return [n for n, (kind, _) in tags.items() if kind == "normed"]


def post_ln_layers(net: nn.Module) -> list[list[str]]:
    """torch's Post-LN Transformer layers (``nn.TransformerEncoderLayer`` / ``DecoderLayer`` with
    ``norm_first=False``, their default), per stack (the list that holds them), each named by its
    last linear (``<layer>.linear2``), the unit that stands for it."""
    stacks: dict[str, list[str]] = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) and not m.norm_first:
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            stacks.setdefault(parent, []).append(f"{name}.linear2")
    return list(stacks.values())


def post_ln_by_hand_layers(net: nn.Module, units: Sequence[str]) -> list[list[str]]:
    """Hand-written Post-LN blocks (:func:`post_ln_units`, in forward order) grouped into layers and
    stacks, as :func:`post_ln_layers` gives torch's: one unit per layer (its last Add & Norm
    sublayer), one list per stack. A layer is the module that owns its sums: the item of an
    ``nn.ModuleList``/``nn.Sequential`` above the units that holds two or more of them
    (``decoder.layer_stack.3`` for ``decoder.layer_stack.3.enc_attn.fc``), so a decoder layer's
    three Add & Norm (self-attention, cross-attention, feed-forward) are one layer as an encoder
    layer's two are, and its stack is the list that holds it (modsweep35 u04: 6 + 6 layers, not 15);
    a list whose items hold one sum each holds sublayers, not layers. Units in no such list: two
    Add & Norm per layer, one stack, the layer ending at its second (the last layer's second norm
    feeds the head, not a sum: an odd count ends with it)."""
    listed = {name for name, m in net.named_modules() if isinstance(m, nn.ModuleList | nn.Sequential)}

    def items(unit: str) -> list[tuple[str, str]]:
        # the list items strictly above the unit, innermost first (a feed-forward written as an
        # nn.Sequential holds its linear as an item: the unit itself is no layer)
        parts = unit.split(".")
        return [(".".join(parts[:i]), ".".join(parts[:i + 1])) for i in range(len(parts) - 2, 0, -1)
                if parts[i].isdigit() and ".".join(parts[:i]) in listed]

    held = collections.Counter(item for u in units for _, item in items(u))
    # a list is a stack of layers where one of its items holds two sums or more (the last layer of
    # a stack may hold one: its last norm feeds the head or the decoder, no sum)
    stacked = {container for u in units for container, item in items(u) if held[item] >= 2}
    stacks: dict[str, dict[str, str]] = {}
    loose: list[str] = []
    for unit in units:
        owner = next(((c, item) for c, item in items(unit) if c in stacked), None)
        if owner is None:
            loose.append(unit)
        else:
            stacks.setdefault(owner[0], {})[owner[1]] = unit  # the layer's last sublayer in forward order
    found = [list(layers.values()) for layers in stacks.values()]
    if loose:
        found.append(loose[1::2] + loose[-1:] if len(loose) % 2 else loose[1::2])
    return found


def _stack_layer(name: str, module: nn.Module) -> tuple[str, int] | None:
    """(the stacked module's name, k) for layer k >= 2 of a :class:`StackedRNN` (named ``name#k``)."""
    k = getattr(module, "stack_layer", None)
    return (name.rpartition("#")[0], int(k)) if isinstance(k, int) and k > 1 and "#" in name else None


def precision_name(dtype: torch.dtype) -> str:
    """``float64``, ``float32``, ``bfloat16``...: the name the document gives a simulation's dtype."""
    return str(dtype).removeprefix("torch.")


#: A ReLU unit's figure: the share of its units zero for every sample of EVERY seed's batch (the
#: seeds' batches together); ``dead_fraction`` is each seed's own share.
DEAD_IN_EVERY_SEED = "dead_in_every_seed"
#: ... and the samples that share is over, where a graph run at a small batch was run on further
#: draws (:data:`POOLED_DEAD_SAMPLES`); absent elsewhere, where it is the seeds' batches together.
DEAD_SAMPLES = "dead_samples"


#: The figure of a unit called more than once per forward: how many times (a shared or looped
#: module; one call's output gradient is measured, :func:`gradhealth.analysis.findings.starved_middle`).
CALLS = "calls_per_forward"

#: The figure of a unit in the seeds no sample reached it in (1.0), :func:`simulate_graph`'s.
NO_SAMPLES = "no_samples"


def own_parameters(module: nn.Module) -> list[torch.Tensor]:
    """The parameters a unit's optimizer step moves: an unrolled nn.RNN/GRU/LSTM's (it keeps the
    module it unrolls as a child), else the module's own, a parametrized weight's originals included
    (``torch.nn.utils.parametrizations.weight_norm`` keeps ``weight_g`` and ``weight_v`` as
    ``parametrizations.weight.original0/1``, where ``parameters(recurse=False)`` does not look: the
    old ``torch.nn.utils.weight_norm`` keeps the same two as the module's own, and the same network
    got another document with each API)."""
    if isinstance(module, UnrolledRNN):
        return list(module.rnn.parameters())
    if isinstance(module, AttentionInProjection):
        # the q/k/v projection nn.MultiheadAttention applies as a function: its weights are the
        # attention module's (in_proj_weight, in_proj_bias), which this unit only refers to
        owner = module._owner[0]
        return [p for p in (owner.in_proj_weight, owner.in_proj_bias) if isinstance(p, torch.Tensor)]
    params: list[torch.Tensor] = list(module.parameters(recurse=False))
    holder = getattr(module, "parametrizations", None)
    if isinstance(holder, nn.ModuleDict):
        for plist in holder.values():
            params += [p for name, p in plist.named_parameters(recurse=False) if name.startswith("original")]
    return params


def _batch_size(run: GraphRun, records: Sequence[Record], calls: Mapping[str, float] | None = None) -> int | None:
    """The batch the first input holds: its first dimension, or its second where the module's layout
    says the first is time. Declared: the first recurrent layer whose input leads with the input's own
    first two dimensions, ``[time, batch, ...]`` as given or after an embedding of ``[time, batch]``
    token ids, is sequence-first (``nn.LSTM`` with ``batch_first`` False: modsweep34 reported the
    sequence length as the batch). Written: a recurrence (``calls``: the layers called in a loop
    on their own last output, by their calls a forward) called once per step of the input's first
    dimension, each call on a batch of its second (a char-RNN looping ``for t in range(x.size(0))``
    over ``x[t]``: modsweep42 read "batch 8" for 16 names of 8 letters); a loop over the samples
    themselves, a layer on ``x[i]`` with no state carried, is none."""
    if not run.inputs or not run.inputs[0].shape:
        return None
    shape = tuple(run.inputs[0].shape)
    if len(shape) < 2 or shape[0] == shape[1]:
        return int(shape[0])
    for rec in records:
        rnn = rec.module.rnn if isinstance(rec.module, UnrolledRNN) else rec.module
        if (isinstance(rnn, nn.RNNBase) and rec.inp is not None and rec.inp.dim() == 3
                and tuple(rec.inp.shape[:2]) == shape[:2]):
            return int(shape[0] if rnn.batch_first else shape[1])
    for rec in records:
        n = (calls or {}).get(rec.name, 1.0)
        # (one call is no loop: a graph run on one sample has a batch of 1 put in front of it)
        if n > 1 and n == shape[0] and rec.inp is not None and rec.inp.dim() >= 1 and rec.inp.shape[0] == shape[1]:
            return int(shape[1])
    return int(shape[0])


def _shape_only(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t``'s shape and dtype on the meta device (no storage, no autograd history); None stays None."""
    return None if t is None else torch.empty(t.shape, dtype=t.dtype, device="meta")


def _release(records: Sequence[Record]) -> None:
    """Drop from a finished seed's ``records`` every tensor that holds its autograd graph (outputs,
    inputs, pre-activations, folds, the nodes the graph walks start from): :func:`simulate_graph`
    reads only their names, roles, modules and activations afterwards, and ``inp``'s shape
    (:func:`_batch_size`), which a storage-free meta tensor keeps (``out``'s too)."""
    for rec in records:
        rec.inp = _shape_only(rec.inp)
        rec.out = cast(torch.Tensor, _shape_only(rec.out))
        rec.pre = rec.raw = rec.weight = rec.act_in = rec.node = None
        rec.extra_outs, rec.state = [], []
        rec.steps, rec.cells = {}, {}
        rec.folds = []


def _merge_records(records: list[Record], more: Sequence[Record]) -> list[Record]:
    """``records`` with each unit of ``more`` (another seed's) it lacks put after the unit that ran
    before it there: the units of every seed, in the order they ran."""
    if not records:
        return list(more)
    out = list(records)
    names = {rec.name for rec in out}
    at = -1
    for rec in more:
        if rec.name in names:
            at = next(i for i, r in enumerate(out) if r.name == rec.name)
            continue
        at += 1
        out.insert(at, rec)
        names.add(rec.name)
    return out


def _add_active_units(ever_active: dict[str, torch.Tensor], records: Sequence[Record], figures: SeedFigures) -> None:
    """OR into ``ever_active`` (a unit's name -> which of its ReLU units were > 0 for some sample)
    one seed's units, read from their pre-activations as :meth:`Readout.add_unit` reads
    ``dead_fraction``. A layer switched off in that seed (its input all 0: dead_fraction 0) counts
    all its units active, as the figure does. A unit that fires for one input in ten is zero for a
    batch of 16 with probability 0.19: one seed's batch calls healthy trained units dead."""
    for rec in records:
        seed_dead = figures.units.get(rec.name, {}).get("dead_fraction")
        if seed_dead is None:
            continue  # (no sample reached it in this seed: neither dead nor alive there)
        alive = _alive_units(rec, switched_off=seed_dead == 0.0)
        if alive is None:
            continue
        held = ever_active.get(rec.name)
        if held is None:
            ever_active[rec.name] = alive
        elif held.shape == alive.shape:
            ever_active[rec.name] = held | alive


def _alive_units(rec: Record, switched_off: bool) -> torch.Tensor | None:
    """Which of a ReLU record's units are > 0 for some sample of its batch (all of them where the
    layer is ``switched_off``: its input all 0); None for a record that is no ReLU or kept none."""
    pre = rec.pre
    if pre is None or rec.activation != "relu" or pre.dim() < 1 or not pre.numel():
        return None
    with torch.no_grad():
        z = pre.detach()
        feature_dim = 1 if rec.role.channels_first and z.dim() > 1 else z.dim() - 1
        reduce = [d for d in range(z.dim()) if d != feature_dim]
        alive = z.amax(dim=reduce) > 0 if z.dim() > 1 and reduce else z > 0
        return torch.ones_like(alive) if switched_off else alive


#: The samples per seed over which a graph that runs at a batch under
#: :data:`.simulate.MIN_DEAD_BATCH` only (a file that fixes its batch at 1, as torch.onnx's single
#: dummy input and keras2onnx make it) has its units' "zero for every sample" counted: the batch a
#: file with a free batch is run at (:data:`.importers.onnx_static.DEFAULT_BATCH`), so both are
#: judged over the same samples (48 at 3 seeds). The seed's batch is run again on further draws,
#: forward only, until that many; a live unit firing on half the inputs is off for all of them with
#: probability 2^-16 a seed. Three samples (3 seeds x batch 1) left a 2 -> 1000 ReLU layer with
#: 970 units off on all of them unjudged, and the advice to give a batch of 8 was refused
#: by the file (onnxsweep27 mouse_path_range).
POOLED_DEAD_SAMPLES = 16

#: The generator seed offset of those further draws (:func:`_more_samples`), clear of the seeds'.
_MORE_SAMPLES_SEED = 50_000


def _more_draws_vary(run: GraphRun) -> bool:
    """Whether another draw of ``run``'s inputs is another sample: some input is drawn (a float of
    N(0, 1) or ``--input-range``, or token ids), none is a live module's example rows (resampled from
    the rows given: no more samples than those) and none of the floats is kept as given."""
    drawn = [s for s in run.inputs if s.value is None and (s.dtype.is_floating_point or s.high)]
    return bool(drawn) and not any(s.rows is not None for s in run.inputs)


def _more_samples(run: GraphRun, net: nn.Module, seed: int, passes: int, batch: int, device: torch.device,
                  ever_active: dict[str, torch.Tensor], counted: dict[str, int]) -> None:
    """Run ``net`` (seed ``seed``'s copy) forward ``passes`` more times, each on a fresh draw of the
    inputs (``batch`` samples), and OR into ``ever_active`` which ReLU units fired, adding ``batch``
    to ``counted`` (a unit's name -> the samples its share is over) for each pass that measured it.
    Forward only: the pooled share needs no gradient. Only a unit called once a forward is counted,
    as the seeds' steps measure it; a unit called more often keeps the seeds' samples alone."""
    for j in range(passes):
        xs = _seed_inputs(run, _MORE_SAMPLES_SEED + seed * 1_000 + j, device)
        tracer = Tracer(net, run.names(net) if run.names else None, functions=run.trace_functions)
        try:
            functional = FunctionalOps(tracer, net) if run.trace_functions else contextlib.nullcontext()
            with (torch.nn.utils.parametrize.cached(), functional, direct_checkpoints(), _guarded(run),
                  head_logits(run, net) as logits):
                value = call(net, xs, run.keywords, run.nest)
                tracer.drop_repeated()
                loss, _ = _loss(run, value, seed, logits)
            tracer.settle(loss)  # (a fold undone as the step undoes it: the same unit's pre-activation)
        finally:
            tracer.close()
        calls = collections.Counter(rec.name for rec in tracer.units)
        for rec in tracer.units:
            held = ever_active.get(rec.name)
            if held is None or calls[rec.name] > 1 or rec.name in tracer.repeated:
                continue
            off = isinstance(rec.inp, torch.Tensor) and rec.inp.is_floating_point() and not bool(rec.inp.detach().any())
            alive = _alive_units(rec, switched_off=off)
            if alive is None or alive.shape != held.shape:
                continue
            ever_active[rec.name] = held | alive
            counted[rec.name] = counted.get(rec.name, 0) + batch
        del tracer, value, loss, xs


def _recorded_bytes(inputs: Any, records: Sequence[Record]) -> int:
    """The bytes of the activations one seed's simulation recorded: its floating-point inputs and
    each unit's output, with the layer's own output before an activation or norm folded in where
    that is another tensor (each tensor once). A live module's ``simulation.activation_bytes``
    (newuser10 #15: it read 0 for every module check)."""
    seen: dict[int, int] = {}
    for t in all_tensors(inputs):
        if t.is_floating_point():
            seen[id(t)] = t.numel() * t.element_size()
    for rec in records:
        for kept in (rec.out, rec.raw, rec.pre):
            if isinstance(kept, torch.Tensor):
                seen[id(kept)] = kept.numel() * kept.element_size()
    return sum(seen.values())


def simulate_graph(run: GraphRun, *, device: str | None = None,
                   progress: ProgressFn | None = None, seeds: int | None = None) -> SimulationResult:
    """Simulate ``run`` for every seed and collect per-unit figures as :func:`simulate` does.

    The returned result has no spec ``plan`` (it is ``None``): the rules read units and time
    series only, except the post-LN transformer rule, which looks for spec transformer units.
    ``seeds``: only the run's first ``seeds`` seeds (a remedy's verdict on one seed)."""
    dev = pick_device(device or "auto")
    started = time.perf_counter()
    count = run.seeds if seeds is None else max(1, min(seeds, run.seeds))
    figures_of: list[SeedFigures] = []
    records: list[Record] = []
    ever_active: dict[str, torch.Tensor] = {}
    counted: dict[str, int] = {}  # a ReLU unit's name -> the samples its ever_active is over
    batch: int | None = None
    passes = 0
    reached: list[set[str]] = []  # per seed, the units some sample reached
    # the packed q/k/v projections' gradients slice by slice, from each seed's own backward (no pass of
    # their own: the one norm over in_proj_weight hides a slice with none, _zero_slices)
    packed: dict[str, PackedSlices] | None = {} if any(
        isinstance(m, nn.MultiheadAttention) and m._qkv_same_embed_dim for m in run.model.modules()) else None
    for seed in range(count):
        if progress:
            progress(seed / count, f"simulating seed {seed + 1} of {count}")
        net = _copy_for_seed(run, seed, dev)
        xs = _seed_inputs(run, seed, dev)
        attention = packed_attention(net) if packed is not None else {}
        if packed is not None and not attention:
            packed = None  # (every packed projection frozen: none is judged)
        with packed_slice_lengths(attention, packed if packed is not None else {}):
            figures, seed_records = instrumented_step(run, net, xs, seed)
        if packed is not None:
            add_packed_slice_grads(attention, packed)
        # a unit a seed does not reach (a branch its data does not take, an expert the router left
        # out) is still every other seed's: the units are those of every seed, in the order they ran
        records = _merge_records(records, seed_records)
        reached.append({rec.name for rec in seed_records
                        if not figures.units.get(rec.name, {}).get("no_samples")})
        figures_of.append(figures)
        _add_active_units(ever_active, seed_records, figures)
        if seed == 0:
            batch = _batch_size(run, seed_records, {n: u.get(CALLS, 1.0) for n, u in figures.units.items()
                                                    if n in figures.looped})
            # a graph that runs at a small batch only: its seeds' batches are too few samples to
            # tell a dead unit from one off by chance, so each seed runs further draws (forward only)
            pooled = (batch is not None and batch >= 1 and batch < MIN_DEAD_BATCH and bool(ever_active)
                      and _more_draws_vary(run))
            passes = -(-POOLED_DEAD_SAMPLES // batch) - 1 if pooled and batch else 0
        for name in ever_active:
            counted[name] = counted.get(name, 0) + (batch or 0)
        if passes:
            _more_samples(run, net, seed, passes, batch or 1, dev, ever_active, counted)
        if seed == 0:
            recorded = _recorded_bytes(xs, seed_records)
            post_ln = post_ln_layers(net)
            by_hand = not post_ln and figures.post_ln
            if by_hand:
                post_ln = post_ln_by_hand_layers(net, figures.post_ln)
        # the seed's readout and structure walks are done: its records keep what the units' table
        # reads (names, roles, modules, shapes), not the tensors whose grad_fn hold its autograd
        # graph (retained for the carried gradient), so one seed's graph is alive at a time
        _release(seed_records)
        del net, seed_records
    if progress:
        progress(1.0, "simulation done")
    stats: list[UnitStats] = []
    timed = {r.layer for r in run.recurrences if (r.layer, r.sublayer) in figures_of[0].steps} | set(figures_of[0].looped)
    nested = ({n for r in run.recurrences if r.layer in timed for n in (*r.steps, *r.nested)}
              | set(figures_of[0].beside_loops)) - timed
    for rec in records:
        if not any(rec.name in f.units for f in figures_of):
            continue
        metrics = list(dict.fromkeys(m for f in figures_of for m in f.units.get(rec.name, {})))
        values = {m: np.array([s.units.get(rec.name, {}).get(m, math.nan) for s in figures_of],
                              dtype=np.float64) for m in metrics}
        if any(rec.name not in seen for seen in reached):
            # the seeds in which no sample reached it: its figures are the other seeds' (all NaN where
            # none reached it), neither dead nor alive, and the layer table says how many (no_samples)
            values[NO_SAMPLES] = np.array([float(rec.name not in seen) for seen in reached], dtype=np.float64)
        else:
            values.pop(NO_SAMPLES, None)
        if rec.name in ever_active and "dead_fraction" in values:
            active = ever_active[rec.name]
            # the same for every seed: the share of units zero in every seed's batch
            values[DEAD_IN_EVERY_SEED] = np.full(len(figures_of), 1.0 - float(active.sum()) / max(active.numel(), 1))
            if passes:
                # over how many samples, the seeds' batches and the further draws together
                values[DEAD_SAMPLES] = np.full(len(figures_of), float(counted.get(rec.name, 0)))
        _, fan_in, fan_out = weight_of(rec.module) if rec.role.kind == "weight" else (None, None, None)
        kind = rec.role.type if rec.role.type in CELL_TYPES.values() else "rnn"  # a looped cell keeps its own
        stats.append(UnitStats(rec.name, rec.pointer, kind if rec.name in timed else rec.role.type,
                               rec.activation, int(rec.name in nested),
                               rec.role.kind == "weight", fan_in, fan_out, values,
                               normalised=rec.normalised, readout=rec.name in run.readouts,
                               activation_params=rec.activation_params if rec.activation is not None else {},
                               module_class=type(rec.module).__name__ if rec.pointer.startswith("module:") else None,
                               activation_at=rec.activation_at if rec.activation is not None
                               and rec.pointer.startswith("module:") else None,
                               output_range=rec.out_range if rec.activation is not None else None,
                               stack_layer=_stack_layer(rec.name, rec.module)))
    bidirectional = {rec.name for rec in records
                     if isinstance(rec.module, UnrolledRNN) and rec.module.directions == 2}
    round_off_gradients(stats, figures_of[0].feeds, precision_name(run.dtype))
    series = [TimeSeries.of(name, sub, figures_of, reverse=name in bidirectional and sub % 2 == 1)
              for (name, sub) in figures_of[0].steps]
    return SimulationResult(cast(Any, None), str(dev), precision_name(run.dtype), count, stats, series,
                            [s.loss for s in figures_of],
                            time.perf_counter() - started, run.optimizer, figures_of[0].layer_scales,
                            computed_kernels=figures_of[0].computed_kernels, step_ops=figures_of[0].step_ops,
                            batch_size=_batch_size(run, records, {n: u.get(CALLS, 1.0) for n, u in
                                                                  figures_of[0].units.items()
                                                                  if n in figures_of[0].looped}),
                            silent=[s.silent for s in figures_of], loss=run.loss if run.losses is None else None,
                            squashed=(run.squashed if run.losses is None else None)
                            or figures_of[0].forward_squash,
                            squashed_in_forward=figures_of[0].forward_squash is not None,
                            squash_before_softmax=figures_of[0].squash_before_softmax,
                            simplex_output=figures_of[0].simplex_output,
                            output_width=figures_of[0].output_width if run.losses is None else None,
                            output_values=figures_of[0].output_values if run.losses is None else None,
                            duplicates=duplicates_over_seeds(figures_of),
                            activation_bytes=recorded,
                            post_ln=post_ln, post_ln_by_hand=bool(by_hand), gates=figures_of[0].gates,
                            gate_drivers=figures_of[0].gate_drivers,
                            cell_gates=list(run.cell_gates),
                            shared_states=figures_of[0].shared_states,
                            score_projections=figures_of[0].score_projections,
                            selective_scans=figures_of[0].selective_scans,
                            summed=figures_of[0].summed, feeds=figures_of[0].feeds,
                            loss_reads=figures_of[0].loss_reads,
                            batch_statistics=figures_of[0].batch_statistics,
                            on_probabilities=run.losses is None and not run.from_logits
                            and run.loss in PROBABILITY_LOSSES and not run.inference_head,
                            bounded_regression=run.bounded_regression and run.losses is None,
                            target_range=run.target_range if run.losses is None else None,
                            target_values=run.target_values if run.losses is None else None,
                            reconstruction=figures_of[0].reconstruction,
                            checkpoint=run.checkpoint, loss_implied=run.loss_implied,
                            squash_implied=run.squash_implied and run.losses is None,
                            reconstruction_range_given=any(
                                i.uniform is not None or i.rows is not None
                                for i in run.inputs if i.dtype.is_floating_point),
                            input_range=next((i.uniform for i in run.inputs
                                              if i.dtype.is_floating_point and i.uniform is not None), None),
                            inputs_given=any(i.rows is not None for i in run.inputs if i.dtype.is_floating_point),
                            packed_slices=list(packed.values()) if packed is not None else [])


def rate_probe(run: GraphRun, optimizer: OptimizerSpec, device: str | None = None,
               steps: int = PROBE_STEPS) -> StepProbe | None:
    """``steps`` steps of ``optimizer`` (SGD: its rate, momentum, Nesterov, weight decay and
    clipping) on seed 0's copy of the network and seed 0's batch and targets, as the sharpness is
    taken (:func:`initial_sharpness`): the loss before each step and after the last
    (:class:`.sharpness.StepProbe`). What a rate past SGD's quadratic stability bound does to a loss
    that is not a quadratic is measured here rather than inferred. A loss that stops being finite,
    or a forward that fails on the grown weights, ends the probe with NaN; None where even the
    first forward or backward fails (not probed)."""
    if optimizer.type != "sgd" or not optimizer.lr > 0:
        return None
    dev = pick_device(device or "auto")
    losses: list[float] = []
    try:
        net = _copy_for_seed(run, 0, dev)
        params = [p for p in net.parameters() if p.requires_grad]
        if not params:
            return None
        xs = _seed_inputs(run, 0, dev)
        sgd = torch.optim.SGD(params, lr=optimizer.lr, momentum=optimizer.momentum,
                              nesterov=optimizer.nesterov and optimizer.momentum > 0,
                              weight_decay=optimizer.weight_decay)
        for k in range(steps + 1):
            sgd.zero_grad(set_to_none=True)
            try:
                with _guarded(run), head_logits(run, net) as logits:
                    value = call(net, xs, run.keywords, run.nest)
                    loss, _ = _loss(run, value, 0, logits)
                figure = float(loss.detach())
                losses.append(figure)
                if k == steps or not math.isfinite(figure):
                    break
                loss.backward()
            except (RuntimeError, ValueError, FloatingPointError):
                if k == 0:
                    raise  # the initial point's own forward or backward: not probed
                losses.append(math.nan)  # the grown weights broke the forward: blown up
                break
            clip = clipping({"": params}, optimizer)  # (the judged first step's clipping, in its order)
            for p in params:
                if p.grad is not None:
                    p.grad = clip(p.grad)
            sgd.step()
    except (RuntimeError, ValueError, FloatingPointError, NotImplementedError):
        return None
    if not losses or not math.isfinite(losses[0]):
        return None
    return StepProbe(optimizer.lr, tuple(losses))


def initial_sharpness(run: GraphRun, device: str | None = None,
                      invariant: Collection[str] = ()) -> Sharpness:
    """The loss Hessian's largest eigenvalue over every trainable parameter at the simulated initial
    point, less the scale-invariant ones named in ``invariant`` (names in ``run.model``: the weights
    a batch/layer/group norm reads directly, which stay in the forward as they are): seed 0's copy of
    the network (prepared as the simulation's) on seed 0's batch and loss
    (:func:`.sharpness.top_eigenvalue`), in the run's precision: float64, or the model's own where
    its forward casts to that (``x.float()``; :func:`in_own_dtype`), which ``note`` says. Not
    estimated (``value`` None, ``note`` says why) past :data:`.sharpness.MAX_PARAMETERS` trainable
    parameters, or where the forward or its double backward fails (an op with no second derivative).

    Why the scale-invariant weights are left out: the loss does not change along their radial
    direction (L(c w) = L(w)), so their gradient is orthogonal to them, their Hessian scales as
    1/|w|^2 and every step grows |w| by sqrt(1 + r^2) for a step of r |w|: their effective rate
    lr/|w|^2 tunes itself, and gradient descent converges at any rate on them provided the rate is
    under the stability bound of the Hessian over the other parameters (Arora, Li & Lyu 2019, auto
    rate-tuning; Li & Arora 2020). That block's top eigenvalue is the sharpness the bound judges;
    the tangential curvature of the invariant weights (a very sharp direction at initialisation,
    1/|w|^2) is the part that tunes itself, so projecting out only their radial direction would keep it."""
    count = sum(p.numel() for p in run.model.parameters() if p.requires_grad) or sum(
        p.numel() for p in run.model.parameters())
    if count > SHARPNESS_MAX_PARAMETERS:
        return Sharpness(None, parameters=count,
                         note=f"{count:,} trainable parameters, over the {SHARPNESS_MAX_PARAMETERS:,} "
                              "it is estimated for")
    dev = pick_device(device or "auto")
    try:
        net = _copy_for_seed(run, 0, dev)
        trained = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        if not trained:
            return Sharpness(None, note="no trainable parameter")
        params = [p for n, p in trained if n not in invariant]
        left_out = tuple(n for n, _ in trained if n in invariant)
        if not params:
            # every trainable weight is read by a norm: no curvature bounds the rate
            return Sharpness(0.0, parameters=0, scale_invariant=left_out,
                             note="every trainable parameter is scale-invariant (a norm reads its layer directly)")
        xs = _seed_inputs(run, 0, dev)
        with _guarded(run), head_logits(run, net) as logits:
            value = call(net, xs, run.keywords, run.nest)
            loss, _ = _loss(run, value, 0, logits)
        if not bool(torch.isfinite(loss)):
            return Sharpness(None, parameters=count, note="the loss is not finite at initialisation")
        top, used, settled = top_eigenvalue(loss, params)
    except (RuntimeError, FloatingPointError, NotImplementedError, ValueError) as exc:
        # (double backward is not implemented for every op; a custom autograd.Function may lack it)
        return Sharpness(None, parameters=count, note=f"not estimated: {type(exc).__name__}: {str(exc)[:160]}")
    note = None if settled else (f"the power iteration had not settled to {SHARPNESS_SETTLED:.0%} after "
                                 f"{used} Hessian-vector products: a lower bound")
    if run.dtype != torch.float64:
        # a forward that casts to its own precision (x.float()) runs in it (_simulate_first's fallback)
        own = f"in the model's own {precision_name(run.dtype)}, as its forward casts to it"
        note = f"{note}; {own}" if note else own
    return Sharpness(top, iterations=used, parameters=sum(p.numel() for p in params), note=note,
                     scale_invariant=left_out)


# --- packed parameters, slice by slice ---------------------------------------------------------

def packed_attention(net: nn.Module) -> dict[nn.MultiheadAttention, str]:
    """``net``'s trainable packed q/k/v projections: each ``nn.MultiheadAttention`` whose query, key
    and value projections are one ``in_proj_weight`` (``_qkv_same_embed_dim``), by its name."""
    return {m: n for n, m in net.named_modules()
            if isinstance(m, nn.MultiheadAttention) and m._qkv_same_embed_dim
            and isinstance(m.in_proj_weight, nn.Parameter) and m.in_proj_weight.requires_grad}


@contextlib.contextmanager
def packed_slice_lengths(named: Mapping[nn.MultiheadAttention, str], found: dict[str, PackedSlices]) -> Iterator[None]:
    """While open, note the attended key length of each call of the attention modules in ``named``
    (a forward pre-hook each, read-only) into their entries of ``found``, made where missing."""
    handles = []
    for m, name in named.items():
        entry = found.setdefault(name, PackedSlices(name, {s: [] for s in QKV}, bool(m.batch_first),
                                                     1 if m.batch_first else 0, []))

        def note(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                 _entry: PackedSlices = entry) -> None:
            key = args[1] if len(args) > 1 else kwargs.get("key")
            if isinstance(key, torch.Tensor) and key.dim() == 3:
                _entry.lengths.append(int(key.shape[_entry.axis]))
            elif isinstance(key, torch.Tensor) and key.dim() == 2:  # unbatched (L, E)
                _entry.lengths.append(int(key.shape[0]))
        handles.append(m.register_forward_pre_hook(note, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def add_packed_slice_grads(named: Mapping[nn.MultiheadAttention, str], found: dict[str, PackedSlices]) -> None:
    """Append each packed projection's gradient norm per slice (weight and bias rows together), as
    the backward just run left them in ``.grad``, to its entry of ``found``."""
    for m, name in named.items():
        w, b = m.in_proj_weight.grad, m.in_proj_bias.grad if m.in_proj_bias is not None else None
        parts = [w.chunk(3, 0) if w is not None else None, b.chunk(3, 0) if b is not None else None]
        for k, s in enumerate(QKV):
            sq = sum(float(p[k].detach().double().pow(2).sum()) for p in parts if p is not None)
            found[name].norms[s].append(math.sqrt(sq) if parts[0] is not None else 0.0)
