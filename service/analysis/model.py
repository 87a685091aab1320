"""Plan -> PyTorch model, with every unit able to report what it saw.

Each measured unit is a :class:`Unit` module. With ``probe`` unset a unit runs
exactly as the plain PyTorch layer would (fused recurrent kernels included); with
a :class:`Probe` set it records its pre-activation and output (retaining the
output's gradient, dL/dh) and, for recurrent cells, the hidden state of every
time step, so dL/dh_t through time can be read after one backward pass.
Which unit a spec layer becomes is its kind's ``build`` (:mod:`gradhealth.analysis.kinds`).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gradhealth.analysis import spec as S
from gradhealth.analysis.activations import GATES, canonical
from gradhealth.analysis.cells import mark, runs_itself, step
from gradhealth.analysis.kinds import kind_of
from gradhealth.analysis.plan import Plan, UnitPlan
from gradhealth.errors import SpecError

# Keyed by canonical name: aliases (swish) are resolved by activations.canonical.
_ACTIVATIONS: dict[str, Any] = {
    "identity": lambda slope: nn.Identity(),
    "sigmoid": lambda slope: nn.Sigmoid(),
    "tanh": lambda slope: nn.Tanh(),
    "relu": lambda slope: nn.ReLU(),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope),
    "elu": lambda slope: nn.ELU(),
    "selu": lambda slope: nn.SELU(),
    "gelu": lambda slope: nn.GELU(),
    "silu": lambda slope: nn.SiLU(),
    "softplus": lambda slope: nn.Softplus(),
    "hardtanh": lambda slope: nn.Hardtanh(),
    "exponential": lambda slope: Exponential(),
    # Keras 3's hard_sigmoid, relu6(x + 3) / 6, is torch's; Keras 2's 0.2x + 0.5 is its own module
    "hard_sigmoid": lambda slope: nn.Hardsigmoid(),
    "hard_sigmoid_keras2": lambda slope: HardSigmoidKeras2(),
    "softsign": lambda slope: nn.Softsign(),
    "mish": lambda slope: nn.Mish(),
}


class Exponential(nn.Module):
    """Keras' ``exponential`` activation, ``exp(x)`` (torch has no module of it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class HardSigmoidKeras2(nn.Module):
    """Keras 2's ``hard_sigmoid``, clip(0.2 x + 0.5, 0, 1) (torch's ``Hardsigmoid`` is Keras 3's, x / 6 + 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def activation_module(name: str, negative_slope: float = 0.01) -> nn.Module:
    """The torch module of an activation name from the spec."""
    return _ACTIVATIONS[canonical(name)](negative_slope)


class Probe:
    """Collects tensors during one instrumented forward pass."""

    def __init__(self, tick: Callable[[str], None] | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        #: Called with "forward" at each unit and recurrent step the forward pass records, and with
        #: "backward" as the backward pass reaches each of them: a long step's progress and the
        #: point where a job learns it was cancelled (what it raises ends the pass).
        self.tick = tick

    def record(self, unit: Unit, pre: torch.Tensor | None, out: torch.Tensor,
               inp: torch.Tensor | None = None) -> None:
        if out.requires_grad:
            out.retain_grad()
        self.ticked(out)
        self.records[unit.name] = {"pre": pre, "out": out, "in": inp}

    def ticked(self, out: torch.Tensor) -> None:
        """One more tensor recorded: tick, and tick again when the backward pass reaches it."""
        tick = self.tick
        if tick is None:
            return
        tick("forward")
        if out.requires_grad:
            # the tick alone, not the probe: a hook holding the probe (which holds the tensor) is a
            # cycle through autograd's nodes that the garbage collector may not see
            out.register_hook(lambda grad: tick("backward"))


# --- initialisation --------------------------------------------------------------------------

def _he_gain(activation: str, slope: float) -> float:
    # He et al. 2015: Var(W) = 2 / ((1 + a^2) fan_in) for (leaky) rectifiers.
    return math.sqrt(2.0 / (1.0 + slope**2)) if activation == "leaky_relu" else math.sqrt(2.0)


def _usable_std(std: float, init: S.InitSpec, what: str = "std") -> float:
    """``std`` (a std, bound or gain derived from ``init``) where it is a positive normal float,
    else a :class:`SpecError` naming the scheme: the spec refuses scales below ``MIN_SCALE``, and
    this keeps any number that still underflows (or overflows) from reaching torch's init, whose
    ``trunc_normal_`` divides by the std (errsweep6: a ZeroDivisionError, a failed job with a 500)."""
    if not (math.isfinite(std) and std >= sys.float_info.min):
        raise SpecError(f"init {init.scheme}: its parameters give a {what} of {std:.3g} for this layer, not a "
                        f"positive normal number; give scales from {S.MIN_SCALE:g} to {S.MAX_SCALE:g}")
    return std


def init_weight(w: torch.Tensor, init: S.InitSpec, activation: str = "identity", slope: float = 0.01) -> None:
    """Initialise ``w`` in place as ``init`` says (see :class:`gradhealth.analysis.spec.InitSpec`)."""
    scheme, gain = init.scheme, init.gain
    if gain is not None:
        _usable_std(gain, init, "gain")
    with torch.no_grad():
        if scheme == "default":
            return
        if scheme == "normal":
            assert init.std is not None  # InitSpec refuses `normal` without std
            nn.init.normal_(w, 0.0, _usable_std(init.std, init))
        elif scheme == "uniform":
            assert init.bound is not None  # InitSpec refuses `uniform` without bound
            bound = _usable_std(init.bound, init, "bound")
            nn.init.uniform_(w, -bound, bound)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(w, gain=gain or 1.0)
        elif scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=gain or 1.0)
        elif scheme in ("kaiming_normal", "he_normal", "kaiming_uniform", "he_uniform", "lecun_normal"):
            fan_in = w[0].numel()
            std = (gain or (1.0 if scheme == "lecun_normal" else _he_gain(activation, slope))) / math.sqrt(fan_in)
            if scheme.endswith("uniform"):
                nn.init.uniform_(w, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)
            else:
                nn.init.normal_(w, 0.0, std)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=gain or 1.0)
        elif scheme == "identity":
            # a matrix's ones on its diagonal (a non-square one's leading square), a kernel's Dirac delta
            if w.dim() == 2:
                nn.init.eye_(w)
            else:
                nn.init.dirac_(w)
            w.mul_(gain or 1.0)
        elif scheme == "truncated_normal":
            assert init.std is not None  # InitSpec refuses `truncated_normal` without std
            std = _usable_std(init.std, init)
            nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
        elif scheme == "variance_scaling":
            _variance_scaling(w, init)
        elif scheme == "zeros":
            nn.init.zeros_(w)


#: The std of N(0, 1) cut at +-2: Keras divides by it so a truncated normal keeps Var = scale / fan.
_TRUNCATED_STD = 0.87962566103423978


def _variance_scaling(w: torch.Tensor, init: S.InitSpec) -> None:
    """Keras' VarianceScaling: Var = scale / fan, with Keras' fans (those of PyTorch's layout)."""
    receptive = w[0][0].numel() if w.dim() > 2 else 1
    fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[init.mode]
    std = _usable_std(math.sqrt(init.scale / fan), init)
    if init.distribution == "uniform":
        nn.init.uniform_(w, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)
    elif init.distribution == "untruncated_normal":
        nn.init.normal_(w, 0.0, std)
    else:
        std /= _TRUNCATED_STD
        nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


def init_bias(b: torch.Tensor | None, init: S.BiasInit) -> None:
    """Initialise a bias in place (``default`` keeps PyTorch's)."""
    if b is None or init.scheme == "default":
        return
    with torch.no_grad():
        if init.scheme == "zeros":
            b.zero_()
        elif init.scheme == "constant":
            b.fill_(init.value)
        elif init.scheme == "normal":
            assert init.std is not None  # BiasInit refuses `normal` without std
            nn.init.normal_(b, init.value, init.std)


@functools.cache
def without_default_init(cls: type[nn.Module]) -> type[nn.Module]:
    """``cls`` whose constructor leaves its parameters uninitialised (``torch.empty``), for a
    layer whose spec initialises them itself. A subclass keeps the name, the forward and
    ``isinstance`` of ``cls``; only ``reset_parameters`` is a no-op."""

    def reset_parameters(self: nn.Module) -> None:
        """Nothing: the caller initialises every parameter."""

    return type(cls.__name__, (cls,), {"reset_parameters": reset_parameters, "__module__": cls.__module__})


# --- units ------------------------------------------------------------------------------------

class Unit(nn.Module):
    """A measured unit: the base records its output when a probe is set."""

    def __init__(self, plan: UnitPlan) -> None:
        super().__init__()
        self.name = plan.name
        self.plan = plan
        self.probe: Probe | None = None

    def weight(self) -> torch.Tensor | None:
        """The unit's main weight matrix, if it has one."""
        return None

    def own_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


class SimpleUnit(Unit):
    """Any layer that is one module, optionally followed by a norm and an activation."""

    def __init__(self, plan: UnitPlan, module: nn.Module, norm: nn.Module | None = None,
                 act: nn.Module | None = None, channels_last: bool = False) -> None:
        super().__init__(plan)
        self.module = module
        self.norm = norm
        self.act = act
        # BatchNorm over a [N, seq, F] tensor normalises F: move F to dim 1 and back.
        self.channels_last = channels_last
        # a norm of the channels at each position: BatchNorm1d over a sequence's features, a
        # LayerNorm over a convolution's channels
        self.norm_channels_last = ((isinstance(norm, nn.BatchNorm1d) and isinstance(module, nn.Linear)
                                    and len(plan.out_shape) == 2)
                                   or (isinstance(norm, nn.LayerNorm) and isinstance(module, nn.Conv1d | nn.Conv2d)))

    def weight(self) -> torch.Tensor | None:
        w = getattr(self.module, "weight", None)
        return w if isinstance(w, torch.Tensor) and w.dim() >= 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            z = self.module(x.transpose(1, -1)).transpose(1, -1)
        else:
            z = self.module(x)
        if self.norm is not None:
            z = self.norm(z.transpose(1, -1)).transpose(1, -1) if self.norm_channels_last else self.norm(z)
        h = self.act(z) if self.act is not None else z
        if self.probe is not None:
            self.probe.record(self, z if self.act is not None else None, h, x)
        return h


class SequencePool(nn.Module):
    """The mean, max or last step over ``dims`` (a sequence's time, a feature map's space)."""

    def __init__(self, mode: str, dims: tuple[int, ...] = (1,)) -> None:
        super().__init__()
        self.mode, self.dims = mode, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            return x.mean(dim=self.dims)
        if self.mode == "max":
            return x.amax(dim=self.dims)
        return x[:, -1]


class RecurrentUnit(Unit):
    """rnn/lstm/gru. Bare: torch's fused module. Probed: unrolled with the same weights."""

    def __init__(self, plan: UnitPlan, layer: S.RecurrentLayer, input_size: int, seq_len: int,
                 activation: str) -> None:
        super().__init__(plan)
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[layer.type]
        kwargs: dict[str, Any] = {"nonlinearity": layer.nonlinearity} if layer.type == "rnn" else {}
        self.rnn = cls(input_size, layer.hidden_size, num_layers=layer.num_layers, batch_first=True,
                       bidirectional=layer.bidirectional, **kwargs)
        if layer.type != "rnn":
            mark(self.rnn, layer.recurrent_activation, layer.reset_after)
        self.directions = 2 if layer.bidirectional else 1
        self.seq_len = seq_len  # its steps: what one probed forward pass unrolls
        self.layer = layer
        self.gates = GATES[layer.type]
        self._initialise(seq_len, activation)

    def weight(self) -> torch.Tensor | None:
        return self.rnn.weight_hh_l0

    def _initialise(self, seq_len: int, act: str) -> None:
        layer, h = self.layer, self.layer.hidden_size
        # a bidirectional layer's reverse direction (torch's `_reverse` weights) is initialised alike
        for layer_index, sfx in ((i, d) for i in range(layer.num_layers) for d in ("", "_reverse")[:self.directions]):
            # Initialise each gate's block on its own: fan-in/fan-out and orthogonality are per gate.
            for name, init in ((f"weight_ih_l{layer_index}{sfx}", layer.init), (f"weight_hh_l{layer_index}{sfx}", layer.recurrent_init)):
                w = getattr(self.rnn, name)
                # stacked (Keras): the gates' weights are one matrix, so fans and orthogonality span it
                for block in [w.data] if init.stacked else w.data.chunk(self.gates, 0):
                    init_weight(block, init, act)
            b_ih, b_hh = getattr(self.rnn, f"bias_ih_l{layer_index}{sfx}"), getattr(self.rnn, f"bias_hh_l{layer_index}{sfx}")
            if layer.bias_init.scheme != "default":
                init_bias(b_ih, layer.bias_init)
                init_bias(b_hh, S.BiasInit(scheme="zeros"))
            if layer.forget_bias is not None:
                with torch.no_grad():
                    b_hh[h:2 * h] = 0.0
                    if layer.forget_bias == "chrono":
                        # Tallec & Ollivier 2018: b_f ~ log U(1, T - 1), b_i = -b_f.
                        t_max = max(seq_len - 1, 2)
                        b_f = torch.log(torch.empty(h).uniform_(1.0, float(t_max)))
                        b_ih[h:2 * h] = b_f
                        b_ih[:h] = -b_f
                        b_hh[:h] = 0.0
                    else:
                        b_ih[h:2 * h] = float(layer.forget_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.probe is None and runs_itself(self.rnn):
            seq, _ = self.rnn(x)  # torch's fused module, or the graph door's UnrolledRNN in its place
        else:
            seq = self._unrolled(x)
        if self.layer.output == "sequence":
            out = seq
        elif self.directions == 2:  # each direction's final state: the reverse one's is at t = 0
            h = self.layer.hidden_size
            out = torch.cat([seq[:, -1, :h], seq[:, 0, h:]], dim=-1)
        else:
            out = seq[:, -1]
        if self.probe is not None:
            self.probe.record(self, None, out)
            # record() replaced the entry; re-attach the time steps kept in _unrolled
            self.probe.records[self.name]["steps"] = self._steps
        return out

    def read_at_last_step_only(self, sub: int) -> bool:
        """Whether the loss reads time series ``sub`` at its last running step alone: the top layer
        of one whose output is each direction's final state. Its dL/dh_t is then exactly the
        gradient its recurrence carries back (:meth:`.figures.Readout.add_carried` need not run)."""
        return self.layer.output == "last" and sub // self.directions == self.layer.num_layers - 1

    def _unrolled(self, x: torch.Tensor) -> torch.Tensor:
        kind, hsize = self.layer.type, self.layer.hidden_size
        self._steps: dict[int, list[torch.Tensor]] = {}
        inp = x
        length = x.shape[1]
        for layer_index in range(self.layer.num_layers):
            outs: list[torch.Tensor] = []
            xs = inp.unbind(1)  # one node, not a slice per step (see graph.UnrolledRNN.forward)
            # the reverse direction reads from the end; its steps are kept in the order it runs them
            # (time series sublayer 2 * layer + 1)
            for direction in range(self.directions):
                sfx = f"_l{layer_index}" + ("_reverse" if direction else "")
                weights = [getattr(self.rnn, f"{n}{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                h = x.new_zeros(x.shape[0], hsize)
                c = x.new_zeros(x.shape[0], hsize)
                steps: list[torch.Tensor] = []
                for t in (range(length - 1, -1, -1) if direction else range(length)):
                    # one autograd node per step: torch's own cell kernels where the cell is torch's
                    h, c = step(self.rnn, kind, xs[t], h, c, weights)
                    if h.requires_grad:
                        h.retain_grad()
                    if self.probe is not None:
                        self.probe.ticked(h)
                    steps.append(h)
                self._steps[layer_index * self.directions + direction] = steps
                outs.append(torch.stack(steps[::-1] if direction else steps, 1))
            inp = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
        return inp


class TransformerUnit(Unit):
    def __init__(self, plan: UnitPlan, layer: S.TransformerEncoderLayer) -> None:
        super().__init__(plan)
        self.block = nn.TransformerEncoderLayer(
            layer.d_model, layer.heads, layer.ff_width, dropout=layer.dropout, activation=layer.activation,
            batch_first=True, norm_first=layer.norm_first)
        self._initialise(layer)

    def _initialise(self, layer: S.TransformerEncoderLayer) -> None:
        """The spec's ``init``, ``bias_init`` and ``residual_init_scale`` over PyTorch's own draw
        (each left as PyTorch draws it where the spec keeps the default)."""
        attn, blk = self.block.self_attn, self.block
        if layer.init.scheme != "default":
            w = attn.in_proj_weight.data
            # query, key and value are three [d, d] matrices (separate projections' fans and
            # orthogonality) unless `stacked` asks for torch's one packed [3d, d] matrix
            for part in [w] if layer.init.stacked else w.chunk(3, 0):
                init_weight(part, layer.init)
            init_weight(attn.out_proj.weight, layer.init)
            init_weight(blk.linear1.weight, layer.init, layer.activation)
            init_weight(blk.linear2.weight, layer.init)
        for bias in (attn.in_proj_bias, attn.out_proj.bias, blk.linear1.bias, blk.linear2.bias):
            init_bias(bias, layer.bias_init)
        if layer.residual_init_scale != 1.0:
            with torch.no_grad():
                attn.out_proj.weight.mul_(layer.residual_init_scale)
                blk.linear2.weight.mul_(layer.residual_init_scale)

    def weight(self) -> torch.Tensor | None:
        return self.block.linear1.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(x)
        if self.probe is not None:
            self.probe.record(self, None, h)
        return h


class BlockUnit(Unit):
    """``residual``: x + scale * f(x); ``block``: f(x)."""

    def __init__(self, plan: UnitPlan, children: list[Unit], residual: bool, scale: float) -> None:
        super().__init__(plan)
        self.body = nn.Sequential(*children)
        self.residual = residual
        self.scale = scale

    def own_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        h = x + self.scale * y if self.residual else y
        if self.probe is not None:
            self.probe.record(self, None, h)
        return h


# --- building ---------------------------------------------------------------------------------

def make_norm(kind: str, features: int, rank: int) -> nn.Module:
    """``layernorm`` over ``features`` (the last dimension; a convolution's unit moves its channels
    there), or ``batchnorm`` of the input's rank (1d or 2d)."""
    if kind == "layernorm":
        return nn.LayerNorm(features)
    return nn.BatchNorm2d(features) if rank == 3 else nn.BatchNorm1d(features)


def build_unit(plan: UnitPlan, spec: S.Spec) -> Unit:
    """Build the torch module of one planned unit (and its children), as its layer kind says."""
    return kind_of(plan.kind).build(plan, spec)


class Network(nn.Module):
    """The whole model: a sequence of units."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.body = nn.Sequential(*(build_unit(u, plan.spec) for u in plan.units))

    def units(self) -> list[Unit]:
        return [m for m in self.modules() if isinstance(m, Unit)]

    def set_probe(self, probe: Probe | None) -> None:
        for unit in self.units():
            unit.probe = probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_network(plan: Plan) -> Network:
    """Build the model for ``plan`` with the global RNG (seed it first for reproducibility)."""
    return Network(plan)
