"""Plan -> measurements: instrumented forward and backward passes at initialisation.

For each seed the model is built on the CPU from that seed (so a GPU run sees the
very same weights and batch as a CPU run and reaches the same diagnoses), moved to
the device, run forward and backward once on a synthetic batch, and every unit's
figures are read. Norms are taken in float64, and the simulation itself runs in
float64 by default: float32 gradients underflow to exact zero over long chains
(a default-initialised tanh RNN loses ~30 orders of magnitude over 100 steps).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from gradhealth.analysis import spec as S
from gradhealth.analysis import theory
from gradhealth.analysis.figures import Readout, SeedFigures, duplicates_over_seeds, tensor_norm
from gradhealth.analysis.kinds import kind_of
from gradhealth.analysis.losses import BOUNDS, REGRESSION, loss_value
from gradhealth.analysis.model import Network, Probe, RecurrentUnit, SimpleUnit, Unit, build_network
from gradhealth.analysis.plan import (
    Plan,
    UnitPlan,
    batch_norm_values,
    read_by_norms,
    separate_activations,
)
from gradhealth.analysis.sharpness import Sharpness, StepProbe
from gradhealth.devices import check_device
from gradhealth.errors import TimeSeriesError

DTYPES = {"float64": torch.float64, "float32": torch.float32}

ProgressFn = Callable[[float, str], None]


def pick_device(requested: str | torch.device | None) -> torch.device:
    """``auto`` (or None) picks CUDA when present, else the CPU; ``cpu``, ``cuda`` and ``cuda:N``
    are taken as torch reads them. Anything else (``gpu``, ``mps``, a ``cuda:N`` this machine
    lacks, CUDA without CUDA) is the ``/device`` spec error of :func:`gradhealth.devices.check_device`
    (it used to run on the CPU without a word: newuser5 P5)."""
    name = check_device(requested)
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class UnitStats:
    """Per-seed figures of one unit; ``values[metric]`` has one entry per seed (nan: not applicable)."""

    name: str
    pointer: str
    type: str
    activation: str | None
    depth: int  # nesting level: 0 for top-level units
    has_weights: bool
    fan_in: int | None = None
    fan_out: int | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    #: a batch/layer/group/instance norm takes the unit's weighted output directly, so its output
    #: does not change with the scale of its weights (a layer scale does not count)
    normalised: bool = False
    #: normalised only as part of a Pre-LN residual stream (each reader takes the stream through
    #: its own norm, and adds to it): the stream's scale is divided out where it is read, but this
    #: unit's weights are not scale-invariant (they scale its share of the stream alone)
    stream: bool = False
    #: makes one of several outputs (its gradient is that loss's own, as the last unit's is)
    readout: bool = False
    #: the activation's own parameters where it has any (leaky_relu's ``negative_slope``, elu's
    #: ``alpha``), which the mean-field theory of a stretch needs
    activation_params: dict[str, float] = field(default_factory=dict)
    #: a live module's unit: its module's class ("Linear"), and the activation module folded into it
    #: by qualified name and class ("head.5 (Sigmoid)"), for findings that name the line to edit;
    #: None in a spec's units, and where the forward calls the activation as a function
    module_class: str | None = None
    activation_at: str | None = None
    #: the range of the unit's output, composed through a chain of activations that ends the unit
    #: (a ReLU then a Sigmoid: [0.5, 1]; :func:`.losses.activation_image`); None where only its own
    #: activation's range is known (:data:`.losses.OUTPUT_RANGES`)
    output_range: tuple[float, float] | None = None
    #: layer k (k >= 2) of a stacked recurrent module (``nn.LSTM(..., num_layers=2)``), named
    #: ``name#k`` as the ONNX door names its nodes: (the module's name, k), for the words
    stack_layer: tuple[str, int] | None = None
    #: a spec's weight layer without an activation of its own whose output a separate activation
    #: layer takes next (Keras' ``Dense(128)`` then ``Activation('relu')``): that activation, which
    #: the words about the layer name as its own (:func:`gradhealth.analysis.plan.separate_activations`)
    then_activation: str | None = None
    #: an average over disjoint windows of k input elements each (a spec's ``avgpool2d`` whose stride
    #: is its kernel or more, a ``pool`` with mode ``mean``): k. Its backward spreads each output's
    #: gradient over its k inputs at 1/k each, so ||dL/dx|| = ||dL/dy|| / sqrt(k) exactly, whatever
    #: the gradient: a structural factor the depth ratio takes out (:func:`.findings.pooling_factor`).
    #: None for every other unit (a max pool or a strided convolution routes, it does not spread)
    averaged: float | None = None
    #: a spec's ``residual`` or ``block`` entry: a container of layers, not a layer. Its figures are
    #: its layers' together (its gradient norm over all their weights, which the top-level stream's
    #: depth ratio reads), but it is neither counted nor judged as a layer with weights: its layers
    #: are, each with its own norm and init (a ResNet's block and its residual read as two more
    #: layers, with the same update ratio, outside the batch-norm exemption of the convs in them)
    container: bool = False
    #: a spec's recurrent layer with ``num_layers`` k > 1 (one unit, k stacked cells): k. Its backward
    #: from its output to its input is k layers' Jacobians, which the depth ratio counts as k steps
    #: (specsweep13 gnmt_lstm8_stacked: an 8-layer LSTM read "2 layers, one step"); 1 for every other
    #: unit (a live module's stacked ``nn.LSTM`` is one unit per layer already, :attr:`stack_layer`)
    stacked: int = 1

    # The per-seed arrays hold a handful of numbers: plain float arithmetic on them is ~20x
    # cheaper than numpy's nan-aware reductions, and the rules and reports ask ~50 times a check.

    def geo(self, metric: str) -> float:
        """Geometric mean over seeds (norms span orders of magnitude); 0 if any seed is 0.
        NaN seeds are left out (all NaN: NaN). (The depth ratios are taken over the seeds not born
        dead, :func:`select_seeds`: one dead draw is ``dead_units``'s, not a 0 for the network.)"""
        v = self.values.get(metric)
        if v is None:
            return math.nan
        logs = [_log(x) for x in v.tolist() if x == x]
        if not logs:
            return math.nan
        return math.exp(sum(logs) / len(logs))

    def log10_std(self, metric: str) -> float:
        """Population standard deviation over seeds of log10 of the figure; NaN unless there are
        two seeds or more, all finite and positive."""
        v = self.values.get(metric)
        if v is None or len(v) < 2:
            return math.nan
        xs = v.tolist()
        if not all(0 < x < math.inf for x in xs):
            return math.nan
        logs = [math.log10(x) for x in xs]
        mean = sum(logs) / len(logs)
        return math.sqrt(sum((x - mean) ** 2 for x in logs) / len(logs))

    def mean(self, metric: str) -> float:
        """Mean over seeds, NaN seeds left out (all NaN: NaN)."""
        v = self.values.get(metric)
        if v is None:
            return math.nan
        xs = [x for x in v.tolist() if x == x]
        return sum(xs) / len(xs) if xs else math.nan


def _log(x: float) -> float:
    """Natural log as numpy's: -inf at 0, NaN below it."""
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


@dataclass
class TimeSeries:
    """dL/dh_t for one recurrent (sub)layer: ``norms[seed, t]``."""

    layer: str
    sublayer: int
    norms: np.ndarray
    #: the backward direction of a bidirectional layer (steps in the order it runs them); its
    #: forward direction is ``sublayer - 1``
    reverse: bool = False
    #: ``[seed, t]``: the last step's gradient carried back through this (sub)layer's own
    #: recurrence alone (:meth:`.figures.Readout.add_carried`); what the through-time findings
    #: judge. None where a seed has none (no gradient at the last step)
    carried: np.ndarray | None = None

    def __post_init__(self) -> None:
        # every judgement compares dL/dh_t with the carried gradient step by step: one shape, or a
        # fault named with the layer (never a numpy broadcast error from inside the rules)
        if self.carried is not None and self.carried.shape != self.norms.shape:
            raise TimeSeriesError(
                f"recurrent layer '{self.layer}' (sublayer {self.sublayer}): its time steps (shape "
                f"{self.norms.shape}) and its gradient carried back (shape "
                f"{None if self.carried is None else self.carried.shape}) do not match; this is a fault of "
                "the analysis, please report it with the model")

    @staticmethod
    def of(layer: str, sublayer: int, seeds: Sequence[SeedFigures], reverse: bool = False) -> TimeSeries:
        """The series of ``(layer, sublayer)`` over the seeds' figures: one length in every seed (a
        :class:`~gradhealth.errors.TimeSeriesError` naming the layer where the seeds disagree)."""
        key = (layer, sublayer)
        lengths = {len(s.steps.get(key, ())) for s in seeds}
        if len(lengths) != 1 or not all(key in s.steps for s in seeds):
            raise TimeSeriesError(
                f"recurrent layer '{layer}' (sublayer {sublayer}) ran a different number of time steps in "
                f"different seeds ({sorted(lengths)}); its gradient over time cannot be compared across seeds. "
                "Give the forward inputs of one sequence length, or run with seeds=1")
        norms = np.array([s.steps[key] for s in seeds], dtype=np.float64)
        carried = (np.array([s.carried[key] for s in seeds], dtype=np.float64)
                   if all(key in s.carried for s in seeds) else None)
        return TimeSeries(layer, sublayer, norms, reverse=reverse, carried=carried)

    def geo(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.exp(np.mean(np.log(self.norms), axis=0))

    def log10_std(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.std(np.log10(self.norms), axis=0)


#: The slices of a packed q/k/v projection (``nn.MultiheadAttention``'s ``in_proj_weight`` and
#: ``in_proj_bias``, rows [q; k; v] when ``_qkv_same_embed_dim``), in order.
QKV = ("q", "k", "v")


@dataclass
class PackedSlices:
    """One packed q/k/v projection's gradient, slice by slice, over the seeds: the layer table's one
    norm over ``in_proj_weight`` hides a slice with none (modsweep48 ppmgcn_miltrans: Q and K exactly 0,
    V 0.11, one norm 0.087). ``norms``: per slice, its norm (weight and bias rows together) in each
    seed's backward; ``lengths``: the key sequence's length along ``axis`` (of the key tensor as the
    module received it) at each call, every seed."""

    module: str
    norms: dict[str, list[float]]
    batch_first: bool
    axis: int
    lengths: list[int]


@dataclass
class SimulationResult:
    plan: Plan
    device: str
    dtype: str
    seeds: int
    units: list[UnitStats]
    time_series: list[TimeSeries]
    losses: list[float]
    duration_s: float
    #: the optimizer whose first step was measured (``update_ratio``), where one was given
    optimizer: S.OptimizerSpec | None = None
    #: the layer scales the graph doors folded into units: vector name -> largest magnitude
    layer_scales: dict[str, float] = field(default_factory=dict)
    #: samples per batch (a graph exported with a fixed batch of 1 has 1)
    batch_size: int | None = None
    #: a live module's layer functions on kernels its forward computes (``SeedFigures.computed_kernels``):
    #: their kind -> how many, not measured as layers
    computed_kernels: dict[str, int] = field(default_factory=dict)
    #: a live module's step functions on tensors with a gradient (``SeedFigures.step_ops``)
    step_ops: list[str] = field(default_factory=list)
    #: per seed, the fraction of the batch the loss gave no gradient (nan: not measured)
    silent: list[float] = field(default_factory=list)
    #: the loss type where there is no spec plan to say it (the graph doors)
    loss: str | None = None
    #: the output activation a loss on logits applies a second time (``GraphRun.squashed``)
    squashed: str | None = None
    #: ``squashed`` is the forward's own (a live module ending in a softmax), not a file's output
    #: activation folded out for a loss compiled on logits
    squashed_in_forward: bool = False
    #: a live module's forward ends in its own (log_)softmax of this bounded activation's outputs
    #: (sigmoid, tanh): cross-entropy sees logits held in its range (``SeedFigures.squash_before_softmax``)
    squash_before_softmax: str | None = None
    #: the loss takes the output for probabilities (Keras' from_logits=False cross-entropies)
    on_probabilities: bool = False
    #: the output is one distribution per row (a softmax's, or a log_softmax's exp) under a regression
    #: loss: ("softmax" or "log_softmax", its width k), reachable only by targets in its simplex
    #: (``SeedFigures.simplex_output``; a spec's softmax output layer too); None otherwise
    simplex_output: tuple[str, int] | None = None
    #: a graph's (first) output's last dimension, the logits per sample cross-entropy takes
    #: (:func:`.graph.output_width`); None for a spec and a model of several outputs, whose output
    #: layer's fan_out is its width (:func:`.rules.output_width`)
    output_width: int | None = None
    #: a graph's (first) output's values per sample, the product of its dimensions past the batch's
    #: (:func:`.graph.values_per_sample`: a Conv2D(1)'s 28x28x1 map holds 784, its width is 1); None
    #: for a spec and a model of several outputs (:func:`.rules.values_per_sample`)
    output_values: int | None = None
    #: per weighted unit with copies, its groups of units (rows, filters) whose incoming weights and
    #: bias are exactly equal (:func:`.figures.duplicate_rows`), in the seed with the most
    duplicates: dict[str, list[list[int]]] = field(default_factory=dict)
    #: a live module's Post-LN Transformer stacks (``GraphRun.post_ln``): per stack, one unit per layer
    post_ln: list[list[str]] = field(default_factory=list)
    #: those stacks are blocks the forward writes by hand (no norm_first switch to try Pre-LN with)
    post_ln_by_hand: bool = False
    #: a live module's units whose sigmoid or tanh gates another tensor (``SeedFigures.gates``)
    gates: list[str] = field(default_factory=list)
    #: a live module's layers called in a loop that drive a sigmoid gate (a gated cell written by
    #: hand: ``SeedFigures.gate_drivers``), judged as the torch cells are
    gate_drivers: list[str] = field(default_factory=list)
    #: an imported graph's units that are the gates and candidates of a recurrent cell written out as
    #: primitive ops (``GraphRun.cell_gates``): not judged saturated, as a native cell's gates are not
    cell_gates: list[str] = field(default_factory=list)
    #: the loops that read one state, by the name its time series has (``SeedFigures.shared_states``):
    #: one recurrence, judged through time once
    shared_states: dict[str, list[str]] = field(default_factory=dict)
    #: a live module's attention query and key projections (``SeedFigures.score_projections``)
    score_projections: list[str] = field(default_factory=list)
    #: a live module's element-wise recurrences whose decay is computed per step from the input,
    #: exp(delta_t * A) (Mamba's selective scan), by their decay's parameter (``SeedFigures.selective_scans``)
    selective_scans: list[str] = field(default_factory=list)
    #: a live module's units whose output is added to another path, once per sum made (a block
    #: shared across depth is named once a call) (``SeedFigures.summed``): where
    #: none is, the network has no residual branch
    summed: list[str] = field(default_factory=list)
    #: a live module's training-mode batch norms -> the fewest values per channel each normalised
    #: over (``SeedFigures.batch_statistics``): the batch times the positions
    batch_statistics: dict[str, int] = field(default_factory=dict)
    #: a live module's (or imported graph's) units -> the units their outputs reach next
    #: (``SeedFigures.feeds``); empty for a spec, whose layers are one chain
    feeds: dict[str, list[str]] = field(default_factory=dict)
    #: the units the loss reads with no unit between (``SeedFigures.loss_reads``): one per term of
    #: the loss; empty for a spec
    loss_reads: list[str] = field(default_factory=list)
    #: a graph door's bounded regression output is judged as a spec's (``GraphRun.bounded_regression``:
    #: a Keras file's stored weights), on ``target_range`` where one is given
    bounded_regression: bool = False
    target_range: tuple[float, float] | None = None
    #: a graph door's run of a model file's stored weights (``GraphRun.checkpoint``): a trained checkpoint
    checkpoint: bool = False
    #: a graph door's loss is the check's own guess, no loss having been given (``GraphRun.loss_implied``)
    loss_implied: bool = False
    #: ... and so is its softmax: nothing in the graph makes the output probabilities (``GraphRun.squash_implied``)
    squash_implied: bool = False
    #: a graph door's: the bytes of the activations one seed's simulation recorded (its float inputs
    #: and each measured unit's output, before and after an activation folded in), the measured
    #: counterpart of a spec's ``Plan.activation_bytes``; 0 for a spec (the plan has it)
    activation_bytes: int = 0
    #: the example regression targets a live module's check was given (``check_module``'s ``targets``,
    #: flattened float64), judged in place of ``target_range`` where given
    target_values: np.ndarray | None = None
    #: a graph's reconstruction (a bounded output shaped as its float input): the input values it
    #: reconstructs, its targets (:attr:`.figures.SeedFigures.reconstruction`)
    reconstruction: np.ndarray | None = None
    #: the inputs a reconstruction is judged against were drawn in the data's range the user gave
    #: (``--input-range``, ``input_range=``), not the simulation's standard normal
    reconstruction_range_given: bool = False
    #: the float inputs as simulated, for words that depend on them: drawn uniform in this range (a
    #: spec's ``input.range``, ``--input-range``); None: zero-mean draws (standard normal, a spec's
    #: ``distribution`` at its ``scale``) or, where ``inputs_given``, the user's own values resampled
    input_range: tuple[float, float] | None = None
    #: the float inputs were a live module's example values (resampled rows), whose mean is theirs
    inputs_given: bool = False
    #: the zero-mean draw in words, where ``input_range`` is None and the inputs were not given
    input_draw: str = "standard normal"
    #: a small network's extra draws (:func:`born_dead_draws`), each initialised and stepped once as a
    #: seed is, for the share of draws born dead: per unit, its figures over those draws; empty where
    #: none were run (no layer could die, or the network too large or slow for them)
    draw_units: list[UnitStats] = field(default_factory=list)
    #: how many such draws ``draw_units`` holds
    draws: int = 0
    #: a graph door's packed q/k/v projections (``nn.MultiheadAttention``), each slice's gradient norm
    #: per seed, read from the simulation's own backward (:func:`.graph.simulate_graph`); empty where
    #: the network has none
    packed_slices: list[PackedSlices] = field(default_factory=list)
    #: the loss Hessian's largest eigenvalue at the initial point (a live module's or imported
    #: graph's check under SGD: :func:`.graph.initial_sharpness`); None where not estimated
    sharpness: Sharpness | None = None
    #: past SGD's quadratic stability bound: a few steps of the run's SGD at its rate, to see whether
    #: the loss blows up (:func:`.graph.rate_probe`); None where not taken (under the bound, not SGD)
    rate_probe: StepProbe | None = None

    def over_draws(self) -> SimulationResult | None:
        """The result as if its seeds were the extra draws (for the born-dead share), or None."""
        if not self.draws:
            return None
        return replace(self, seeds=self.draws, units=self.draw_units, time_series=[], losses=[],
                       silent=[], draw_units=[], draws=0)

    def unit(self, name: str) -> UnitStats:
        return next(u for u in self.units if u.name == name)


#: Layers whose backward to their input is one sum of fan_out products per input element (W^T g):
#: the round-off of that sum is bounded by the sizes of its terms (:func:`round_off_gradients`).
_SUM_BACKWARD_TYPES = frozenset({"linear", "conv1d", "conv2d", "conv3d"})

#: The machine epsilon of each simulation precision.
_EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}


def round_off_gradients(units: list[UnitStats], feeds: Mapping[str, Sequence[str]], dtype: str) -> list[str]:
    """Set to exactly 0 (``output_grad_norm`` and ``grad_norm``, per seed) the gradients that are
    float round-off of a sum that cancels in exact arithmetic, and mark them ``round_off_gradient``
    1; return the units so marked (in order).

    A layer's output gradient is what the layers it feeds pass back: through a Linear or a
    convolution b, ``W_b^T g_b``, each element a sum of fan_out(b) products. Summed in floating
    point with machine epsilon eps, such a sum carries an error of about eps * sqrt(n) times the
    size of its terms, which over every element comes to eps * sqrt(fan_out) * ||W_b||_F * ||g_b||.
    A gradient under that floor is what is left of terms that cancel: readout rows all equal pass
    back the sum of a softmax's gradient over its classes, which is 0 (modsweep41 udacity_init_ones:
    3.26e-14 and 1.80e-16 where exact arithmetic gives 0, read as 181x growth). A real gradient
    is about ||W_b||_F * ||g_b|| / sqrt(fan_out) times the activation's slope: it falls under the
    floor only where that slope is under eps * fan_out (float64: 1e-12 at a width of 4096).
    What a layer so marked passes back is its round-off, carried on: a layer every path of whose
    gradient runs through marked layers is marked too. The layers fed are ``feeds`` (a graph's),
    else the next top-level weighted unit (a spec's chain); a layer that feeds any other kind of
    layer is not judged."""
    eps = _EPS.get(dtype)
    if eps is None:
        return []
    top = [u for u in units if u.depth == 0 and u.has_weights and "output_grad_norm" in u.values]
    by_name = {u.name: u for u in units}
    marked: dict[str, np.ndarray] = {}  # name -> per-seed bool
    for i in range(len(top) - 1, -1, -1):
        unit = top[i]
        names = list(feeds.get(unit.name, ())) if feeds else [top[i + 1].name] if i + 1 < len(top) else []
        if not names or any(n not in by_name for n in names):
            continue
        nexts = [by_name[n] for n in names]
        g = unit.values["output_grad_norm"]
        # carried: every layer it feeds is marked in the seed
        carried = np.ones_like(g, dtype=bool)
        floor = np.zeros_like(g)
        judged = True
        for n in nexts:
            carried &= marked.get(n.name, np.zeros_like(g, dtype=bool))
            if (n.type not in _SUM_BACKWARD_TYPES or not n.fan_out or "weight_norm" not in n.values
                    or "output_grad_norm" not in n.values):
                judged = False
                continue
            floor = floor + eps * math.sqrt(n.fan_out) * n.values["weight_norm"] * n.values["output_grad_norm"]
        cancelled = (g > 0) & (g < floor) if judged else np.zeros_like(g, dtype=bool)
        hit = np.nan_to_num(carried | cancelled, nan=0.0).astype(bool) & (g > 0)
        if hit.any():
            marked[unit.name] = hit
    for name, hit in marked.items():
        unit = by_name[name]
        for metric in ("output_grad_norm", "grad_norm"):
            if metric in unit.values:
                unit.values[metric] = np.where(hit, 0.0, unit.values[metric])
        unit.values["round_off_gradient"] = hit.astype(np.float64)
    return [u.name for u in top if u.name in marked]


def _activation_of(unit: Unit) -> str | None:
    """The canonical activation the unit applies, as its layer kind says."""
    return kind_of(unit.plan.kind).activation(unit.plan.layer)


def _activation_params_of(unit: Unit) -> dict[str, float]:
    """The parameters of the unit's activation its layer states (a spec's ``negative_slope``)."""
    act = _activation_of(unit)
    layer = unit.plan.layer
    given = {k: getattr(layer, k) for k in ("negative_slope", "alpha") if isinstance(getattr(layer, k, None), float)}
    return theory.activation_parameters(act, given) if act else {}


def make_batch(plan: Plan, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The synthetic input batch and target for ``seed`` (drawn on the CPU, float64)."""
    spec = plan.spec
    gen = torch.Generator().manual_seed(10_000 + seed)
    n = spec.batch_size
    if spec.input.tokens is not None:
        x = torch.randint(spec.input.tokens.vocab_size, (n, spec.input.tokens.seq_len), generator=gen)
    elif spec.input.range is not None:  # the data's range (a model file's --input-range)
        low, high = spec.input.range
        x = low + (high - low) * torch.rand((n, *plan.input_shape), generator=gen, dtype=torch.float64)
    elif spec.input.distribution == "uniform":
        x = (torch.rand((n, *plan.input_shape), generator=gen, dtype=torch.float64) * 2 - 1) * spec.input.scale
    else:
        x = torch.randn((n, *plan.input_shape), generator=gen, dtype=torch.float64) * spec.input.scale
    if spec.loss.type == "cross_entropy":
        target = torch.randint(plan.classes or 2, (n, *plan.output_shape[:-1]), generator=gen)
    elif spec.loss.type in REGRESSION:
        target = torch.randn((n, *plan.output_shape), generator=gen, dtype=torch.float64)
    elif spec.loss.type == "binary_cross_entropy":
        target = torch.randint(2, (n, *plan.output_shape), generator=gen).to(torch.float64)
    else:
        target = None
    return x, target


#: The losses Keras can take on probabilities (from_logits=False).
PROBABILITY_LOSSES = frozenset({"cross_entropy", "binary_cross_entropy"})


def loss_fn(plan: Plan, out: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """The spec's loss (:func:`.losses.loss_value`)."""
    return loss_and_silence(plan, out, target)[0]


def loss_and_silence(plan: Plan, out: torch.Tensor, target: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's loss and the fraction of the batch it gives no gradient (:func:`.losses.loss_value`)."""
    loss = plan.spec.loss
    return loss_value(loss.type, out, target, from_logits=loss.from_logits)


def prepare(plan: Plan, seed: int, device: torch.device) -> tuple[Network, torch.Tensor, torch.Tensor | None]:
    """Build the model and batch for one seed on the CPU, then move both to ``device``."""
    dtype = DTYPES[plan.spec.precision]
    with torch.random.fork_rng(devices=[]):
        # The CPU generator only, which fork_rng restores: torch.manual_seed also seeds every
        # accelerator's generator, queued with a formatted stack trace each (0.12-0.18 ms per
        # seed on a CPU-only host) and left changed after the block.
        torch.default_generator.manual_seed(seed)
        net = build_network(plan)
    net = net.to(device=device, dtype=dtype).train()
    x, target = make_batch(plan, seed)
    x = x.to(device) if x.dtype == torch.long else x.to(device=device, dtype=dtype)
    if target is not None:
        target = target.to(device) if target.dtype == torch.long else target.to(device=device, dtype=dtype)
    return net, x, target


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """The random ops of a step (a spec's dropout masks) drawn from ``seed``: the same check gives
    the same figures every time, and a remedy's re-simulation draws the masks its baseline drew.
    The generators are restored after, as :func:`prepare` leaves them."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(30_000 + seed)
        if cuda:
            torch.cuda.manual_seed(30_000 + seed)  # dropout on the GPU draws from its generator
        yield


def bare_step(net: Network, x: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """One plain forward + backward (the baseline the benchmark compares against)."""
    net.set_probe(None)
    net.zero_grad(set_to_none=True)
    loss = loss_fn(net.plan, net(x), target)
    loss.backward()
    return loss


#: A long step reports its progress (and so meets the job's cancellation check) at most this often.
TICK_S = 0.5


class StepTicker:
    """The progress inside one seed's forward + backward, for :class:`.model.Probe`'s ticks: a
    recurrent layer over 800 steps spends a minute there, which the seed boundaries alone left
    silent (the job sat at one fraction and a cancellation waited for the next seed). Reports
    ``progress(lo + (hi - lo) * share, stage)`` at most every :data:`TICK_S`, the forward pass
    the first half of the share (ticks counted over ``expected``), the backward pass the second."""

    def __init__(self, progress: ProgressFn, lo: float, hi: float, stage: str, expected: int) -> None:
        self.progress, self.lo, self.hi, self.stage = progress, lo, hi, stage
        self.expected = max(1, expected)
        self.forward = self.backward = 0
        self.last = time.monotonic()

    def __call__(self, phase: str) -> None:
        if phase == "forward":
            self.forward += 1
        else:
            self.backward += 1
        now = time.monotonic()
        if now - self.last < TICK_S:
            return
        self.last = now
        if self.backward == 0:
            share = 0.5 * min(self.forward / max(self.expected, self.forward), 1.0)
            what = "forward pass"
        else:  # the readout's own gradients pass the recorded tensors again: held below the seed's end
            share = 0.5 + 0.5 * min(self.backward / max(self.forward, 1), 1.0)
            what = "backward pass"
        self.progress(self.lo + (self.hi - self.lo) * min(share, 0.99), f"{self.stage}: {what}")


def expected_ticks(net: Network) -> int:
    """The ticks one probed forward pass of ``net`` makes: one per unit, one per recurrent step."""
    units = net.units()
    return len(units) + sum(u.layer.num_layers * u.directions * u.seq_len
                            for u in units if isinstance(u, RecurrentUnit))


def instrumented_step(net: Network, x: torch.Tensor, target: torch.Tensor | None,
                      tick: Callable[[str], None] | None = None) -> SeedFigures:
    """One forward + backward with every unit probed, and all figures read back in one transfer.
    ``tick``: see :class:`.model.Probe` (:class:`StepTicker` reports a job's progress with it)."""
    probe = Probe(tick)
    net.set_probe(probe)
    net.zero_grad(set_to_none=True)
    try:
        loss, silent = loss_and_silence(net.plan, net(x), target)
        # kept for the gradient carried through time, where a layer is read at more than its last step
        carried = any(isinstance(u, RecurrentUnit) and not all(
            u.read_at_last_step_only(sub) for sub in range(u.layer.num_layers * u.directions)) for u in net.units())
        loss.backward(retain_graph=carried)
        readout = Readout()
        for unit in net.units():
            rec = probe.records.get(unit.name)
            if rec is None:
                continue
            w = unit.weight()
            if isinstance(unit, SimpleUnit) and w is not None:
                grads: list[torch.Tensor | None] = [w.grad]
            else:
                grads = [p.grad for p in unit.own_parameters() if p.grad is not None]
            bias = getattr(getattr(unit, "module", None), "bias", None)
            readout.add_unit(unit.name, out=rec["out"], grad=rec["out"].grad, activation=_activation_of(unit),
                             pre=rec["pre"], inp=rec.get("in"), weight=w,
                             bias=bias if isinstance(bias, torch.Tensor) else None, weight_grads=grads,
                             channels_first=kind_of(unit.plan.kind).channels_first)
            for sub, hs in rec.get("steps", {}).items():
                for h in hs:
                    readout.add_step((unit.name, sub), h.grad)
                if not (isinstance(unit, RecurrentUnit) and unit.read_at_last_step_only(sub)):
                    readout.add_carried((unit.name, sub), hs)
        figures = readout.read(loss, silent)
    finally:
        net.set_probe(None)
    optimizer = net.plan.spec.optimizer
    if optimizer is not None:
        add_step_ratios(figures.units, stepped_layers(net), optimizer)
    return figures


def add_step_ratios(figures: dict[str, dict[str, float]], units: Mapping[str, Sequence[torch.Tensor]],
                    spec: S.OptimizerSpec) -> None:
    """Each unit's ``update_ratio`` (the first step's, :func:`step_ratios`) into ``figures``; for
    Adagrad also ``usual_update_ratio``, its :data:`ADAGRAD_WARM_STEPS`-th step, which large_updates
    judges (kerassweep6: a fixed fifth of the first missed Keras' accumulator of 0.1, which keeps
    small gradients' steps the same size)."""
    for name, ratio in step_ratios(units, spec).items():
        figures.setdefault(name, {})["update_ratio"] = ratio
    # how many weights each ratio speaks for: small_updates weighs the layers by it
    for name, ps in units.items():
        count = sum(p.numel() for p in ps if p.dim() >= 2 and p.grad is not None)
        if count:
            figures.setdefault(name, {})["weight_count"] = float(count)
    # weights exactly zero (a zero-initialised layer): ||dW|| / ||W|| is infinite, so the step's
    # size per weight is kept for large_updates to judge against a usual init's scale
    warm = ADAGRAD_WARM_STEPS if spec.type == "adagrad" else 1
    for name, rms in zero_weight_steps(units, spec, warm).items():
        figures.setdefault(name, {})["zero_weight_step"] = rms
    if spec.type == "adagrad":
        for name, ratio in step_ratios(units, spec, ADAGRAD_WARM_STEPS).items():
            figures.setdefault(name, {})["usual_update_ratio"] = ratio


#: Adagrad's sum of squares only grows: it is judged at this step under a steady gradient
#: (:func:`first_step_norm`'s ``step``), a few dozen steps in, as RMSprop's is once warmed up.
ADAGRAD_WARM_STEPS = 25


def first_step_norm(spec: S.OptimizerSpec, w: torch.Tensor, g: torch.Tensor, step: int = 1) -> float:
    """||delta w|| of the first step of ``spec``'s optimizer on weight ``w`` with gradient ``g``:
    the optimizers' update rules with empty state, as torch.optim and Keras define them (a test
    runs torch.optim's own step against it).

    SGD: lr d, with d = g + wd w, times 1 + momentum with Nesterov (the buffer starts at d).
    Adam: the bias-corrected moments are d and d^2, so lr d / (|d| + eps): about lr per weight,
    whatever the gradient's size (the rate's size: a negative one steps the other way, by as much).
    AdamW: the same on g, plus the decoupled lr wd w. RMSprop: the
    square average starts at (1 - alpha) d^2, so lr d / (sqrt(1 - alpha) |d| + eps); momentum's
    buffer starts at that step itself. Adadelta and NAdam: see :func:`adadelta_rho`, :func:`nadam_factor`.
    Adagrad: the sum of squares starts at a + d^2 (a its initial accumulator), so lr d / (sqrt(a +
    d^2) + eps): lr per weight from a = 0 (torch's), less for gradients under sqrt(a) (Keras' 0.1);
    with ``step`` k, its k-th step under the same gradient, lr d / (sqrt(a + k d^2) + eps).
    Each parameter's step depends on its own gradient only, so
    a layer's is found without stepping the rest of the network; at most two temporaries of
    ``w``'s size are made."""
    wd = spec.weight_decay
    d = g.add(w, alpha=wd) if wd and spec.type != "adamw" else g
    if spec.type == "sgd":
        nesterov = 1 + spec.momentum if spec.nesterov and spec.momentum > 0 else 1
        return abs(spec.lr) * nesterov * tensor_norm(d)
    if spec.type == "adadelta":
        # the square average starts at (1 - rho) d^2 and the update average at 0: the step is
        # lr sqrt(eps) d / sqrt((1 - rho) d^2 + eps), about lr sqrt(eps / (1 - rho)) per weight
        eps = spec.eps if spec.eps is not None else 1e-6  # torch's default (Keras': 1e-7)
        t = d.square().mul_(1 - adadelta_rho(spec)).add_(eps).rsqrt_().mul_(d)
        return abs(spec.lr) * eps ** 0.5 * tensor_norm(t)
    if spec.type == "adagrad":
        eps = spec.eps if spec.eps is not None else 1e-10  # torch's default
        t = d.square().mul_(step).add_(spec.initial_accumulator).sqrt_().add_(eps)
        torch.div(d, t, out=t)
        return abs(spec.lr) * tensor_norm(t)
    eps = spec.eps if spec.eps is not None else 1e-8  # torch's default for Adam, AdamW, RMSprop, NAdam
    t = d.abs()
    if spec.type == "rmsprop":
        t.mul_((1 - spec.alpha) ** 0.5)
    torch.div(d, t.add_(eps), out=t)
    if spec.type == "adamw" and wd:
        t.add_(w, alpha=wd)
    return abs(spec.lr) * (nadam_factor() if spec.type == "nadam" else 1.0) * tensor_norm(t)


def adadelta_rho(spec: S.OptimizerSpec) -> float:
    """Adadelta's rho: the spec's ``alpha`` when given, else torch's default 0.9 (``alpha``'s own
    default, 0.99, is RMSprop's)."""
    return spec.alpha if "alpha" in spec.model_fields_set else 0.9


def nadam_factor(beta1: float = 0.9, psi: float = 0.004) -> float:
    """NAdam's first step over Adam's: with the momentum schedule mu_t = beta1 (1 - 0.5 0.96^(t psi))
    (torch's and Keras'), the first update is lr (1 + mu_2 (1 - beta1) / (1 - mu_1 mu_2)) d / (|d| + eps)."""
    mu1, mu2 = (beta1 * (1 - 0.5 * 0.96 ** (t * psi)) for t in (1, 2))
    return 1 + mu2 * (1 - beta1) / (1 - mu1 * mu2)


def saturated_step(spec: S.OptimizerSpec, step: int = 1) -> float | None:
    """The step per weight of ``spec``'s ``step``-th update under a steady gradient far above its
    epsilon (and Adagrad's initial accumulator): :func:`first_step_norm` of one weight at a gradient
    of 1e30, the limit its rule reaches once |g| dominates eps (Adam: lr; RMSprop: lr / sqrt(1 -
    alpha); Adagrad: lr / sqrt(step); Adadelta: lr sqrt(eps / (1 - rho))). An adaptive optimizer's
    step per weight under that figure is its gradient's, |g| at or below eps: Adam steps lr g /
    (|g| + eps), about lr g / eps there, linear in the gradient. None for SGD, whose step is the
    gradient's at every size."""
    if spec.type == "sgd" or not math.isfinite(spec.lr):
        return None
    flat = spec.model_copy(update={"weight_decay": 0.0})
    one = torch.zeros(1, dtype=torch.float64)
    return first_step_norm(flat, one, torch.full((1,), 1e30, dtype=torch.float64), step)


def at_rate(result: SimulationResult, optimizer: S.OptimizerSpec, plan: Plan | None = None
            ) -> SimulationResult | None:
    """``result`` as a simulation under ``optimizer`` would measure it, when ``optimizer`` is the
    one ``result`` measured with only another learning rate (a rate remedy), else None. The
    forward and backward do not depend on the optimizer, and every optimizer's first step is the
    rate's size times a step that does not depend on it (:func:`first_step_norm`), so the update
    ratios scale by ``|new lr| / |old lr|``: a re-simulation's figures, to rounding, without one.
    ``plan``: the new spec's plan, where there is one."""
    old = result.optimizer
    if (old is None or not math.isfinite(old.lr) or old.lr == 0
            or optimizer.model_fields_set - {"lr"} != old.model_fields_set - {"lr"}
            or optimizer.model_copy(update={"lr": old.lr}) != old):
        return None
    factor = abs(optimizer.lr) / abs(old.lr)
    units = [replace(u, values={m: v * factor if m in ("update_ratio", "usual_update_ratio") else v.copy()
                                for m, v in u.values.items()})
             for u in result.units]
    # (the rate probe belongs to the old rate: the verifier probes the new one where it is needed)
    return replace(result, plan=plan or result.plan, units=units, optimizer=optimizer, duration_s=0.0,
                   rate_probe=None)


def update_ratios(net: Network, spec: S.OptimizerSpec) -> dict[str, float]:
    """||W_1 - W_0|| / ||W_0|| per unit for the first step of ``spec``'s optimizer on the gradients
    just computed, over the unit's own weight matrices and kernels (a bias starts at 0 in most
    inits, so its ratio would be unbounded). The network is left as it is."""
    return step_ratios(stepped_layers(net), spec)


def stepped_layers(net: Network) -> dict[str, list[torch.Tensor]]:
    """Each layer's own parameters, which an optimizer's step is measured on: not a container's
    (``residual``, ``block``: :attr:`UnitStats.container`), whose parameters are its layers', each
    measured on its own."""
    return {u.name: list(u.own_parameters()) for u in net.units() if not u.plan.children}


def step_ratios(units: Mapping[str, Sequence[torch.Tensor]], spec: S.OptimizerSpec, step: int = 1) -> dict[str, float]:
    """:func:`update_ratios` for any network: ``units`` maps each unit's name to its own
    parameters, of which the matrices and kernels with a gradient count (``step``: see
    :func:`first_step_norm`). One tensor at a time: the only memory it takes is two temporaries of
    the largest weight."""
    out: dict[str, float] = {}
    clip = clipping(units, spec)
    with torch.no_grad():
        for name, ps in units.items():
            pairs = [(p.detach(), clip(p.grad)) for p in ps if p.dim() >= 2 and p.grad is not None]
            if not pairs:
                continue
            # hypot, not the root of summed squares: a step of 1e-170 (Adam at lr 1e-170) squares to 0
            # in float64, and a ratio of 0 reads as "no gradient" rather than a step too small
            num = math.hypot(*(first_step_norm(spec, w, g, step) for w, g in pairs))
            den = math.hypot(*(tensor_norm(w) for w, _ in pairs))
            out[name] = num / den if den > 0 else math.nan
    return out


def clipping(units: Mapping[str, Sequence[torch.Tensor]],
             spec: S.OptimizerSpec) -> Callable[[torch.Tensor], torch.Tensor]:
    """The gradient clipping ``spec`` states, as training applies it before the step, in torch's
    order (the rate probe, :func:`.graph.rate_probe`, applies it to its own steps too): each element to [-clip_value, clip_value]
    (``clip_grad_value_``), then each tensor's norm to at most ``clip_norm`` (Keras' ``clipnorm``),
    then the total norm of every parameter's gradient to at most ``global_clip_norm``
    (``clip_grad_norm_``, Keras' ``global_clipnorm``). Returns the function from a gradient to the
    one the step takes; the identity where nothing is clipped. A clipping that binds bounds the
    step: SGD at lr 0.01 under a total norm of 1 moves no weight by more than 0.01, whatever the
    gradient at init (peersweep18: a step read 5.4e13 of the weights' norm under such a clip)."""
    value, norm, total = spec.clip_value, spec.clip_norm, spec.global_clip_norm

    def each(g: torch.Tensor) -> torch.Tensor:
        if value is not None:
            g = g.clamp(-value, value)
        if norm is not None:
            n = tensor_norm(g.double())
            if n > norm:
                g = g * (norm / (n + 1e-6))
        return g

    if value is None and norm is None and total is None:
        return lambda g: g
    scale = 1.0
    if total is not None:
        seen: set[int] = set()
        norms: list[float] = []
        with torch.no_grad():
            for ps in units.values():
                for p in ps:
                    if p.grad is not None and id(p) not in seen:
                        seen.add(id(p))
                        norms.append(tensor_norm(each(p.grad).double()))
        whole = math.hypot(*norms) if norms else 0.0
        if whole > total:
            scale = total / (whole + 1e-6)   # clip_grad_norm_'s clip coefficient
    return (lambda g: each(g) * scale) if scale != 1.0 else each


def zero_weight_steps(units: Mapping[str, Sequence[torch.Tensor]], spec: S.OptimizerSpec,
                      step: int = 1) -> dict[str, float]:
    """The step's root mean square per weight, ||delta W|| / sqrt(n), of each unit whose weight
    matrices and kernels with a gradient are all exactly zero (where :func:`step_ratios` has NaN:
    a ratio to a zero norm is infinite, not unknown). A unit with some nonzero weights is left out."""
    out: dict[str, float] = {}
    clip = clipping(units, spec)
    with torch.no_grad():
        for name, ps in units.items():
            pairs = [(p.detach(), clip(p.grad)) for p in ps if p.dim() >= 2 and p.grad is not None]
            if not pairs or any(bool(torch.any(w != 0)) for w, _ in pairs):
                continue
            num = math.hypot(*(first_step_norm(spec, w, g, step) for w, g in pairs))
            out[name] = num / math.sqrt(sum(w.numel() for w, _ in pairs))
    return out


def squashed_output(plan: Plan) -> tuple[str | None, bool]:
    """(the output activation a loss on logits squashes again, whether the loss's own squash is a
    softmax over it): a spec whose last layer ends in a bounded activation (a sigmoid, tanh, hardtanh,
    hard sigmoid or softsign: ``losses.BOUNDS``; its own
    activation, or an activation layer after it) under a loss on logits (``from_logits: true``,
    the default). ``binary_cross_entropy`` runs a sigmoid over it; ``cross_entropy`` puts a
    softmax over bounded outputs, as a live module's forward ending in a sigmoid does."""
    loss = plan.spec.loss
    if not loss.from_logits or loss.type not in PROBABILITY_LOSSES:
        return None, False
    top = [u for u in plan.units if u.copy == 0]
    if not top:
        return None, False
    act = getattr(top[-1].layer, "activation", None)
    # every bounded activation a spec has (losses.BOUNDS: a softsign's [-1, 1], a hard sigmoid's [0, 1])
    if act is None or act == "softmax" or act not in BOUNDS:
        return None, False
    return act, loss.type == "cross_entropy"


def simulate(plan: Plan, *, progress: ProgressFn | None = None, device: str | None = None,
             seeds: int | None = None, start: int = 0,
             first_seed: Callable[[SimulationResult], None] | None = None) -> SimulationResult:
    """Run the instrumented simulation of ``plan`` for every seed and collect per-unit figures.

    ``seeds``: simulate only the spec's seeds ``start`` to ``seeds - 1`` (the same draws as a full
    run's); the result's ``seeds`` says how many were run, and :func:`combined` joins two runs. Such
    a part goes on to every seed where it shows a network that may be born dead
    (:func:`could_be_born_dead`): one draw that lives says nothing of the share that dies.

    ``first_seed``: called with the first seed's figures alone (a result of one seed) once that
    seed is simulated, where more seeds follow: a preview (the check plans its progress bar by the
    remedies it will verify); the simulation itself is the same with or without it."""
    spec = plan.spec
    dev = pick_device(device or spec.device)
    started = time.perf_counter()
    count = spec.seeds if seeds is None else max(1, min(seeds, spec.seeds))
    start = min(start, count - 1)
    figures: list[SeedFigures] = []
    units: list[Unit] = []
    seed = start
    while seed < count:
        stage = f"simulating seed {seed + 1} of {count}"
        if progress:
            progress((seed - start) / (count - start), stage)
        # the last seed's network and batch go before the next is built: kept, they held two
        # networks' recorded steps at once (an unrolled recurrence's 2x the planned memory)
        units = []
        net = x = target = ticker = None
        net, x, target = prepare(plan, seed, dev)
        if progress:
            ticker = StepTicker(progress, (seed - start) / (count - start), (seed + 1 - start) / (count - start),
                                stage, expected_ticks(net))
        with _seeded(seed, dev):
            figures.append(instrumented_step(net, x, target, ticker))
        units = net.units()
        del net
        seed += 1
        if first_seed is not None and seed == start + 1 and count > seed:
            first_seed(_result(plan, dev, figures, units, [], start, seed, started))
        if seed == count < spec.seeds and could_be_born_dead(figures, spec.batch_size):
            # whether a network is born dead is a share of its draws, which a part of its seeds
            # cannot tell: a remedy's verdict is the share over every seed, as its finding's was
            count = spec.seeds
    extra: list[dict[str, dict[str, float]]] = []
    if count == spec.seeds and could_be_born_dead(figures, spec.batch_size):
        if progress:
            progress(0.99, "drawing more initialisations for the born-dead share")
        extra = born_dead_draws(plan, dev)
    if progress:
        progress(1.0, "simulation done")
    return _result(plan, dev, figures, units, extra, start, count, started)


def _result(plan: Plan, dev: torch.device, figures: list[SeedFigures], units: list[Unit],
            extra: list[dict[str, dict[str, float]]], start: int, count: int, started: float) -> SimulationResult:
    """The simulation's result from its seeds' ``figures`` (seeds ``start`` to ``count - 1``)."""
    spec = plan.spec
    normed = read_by_norms(plan)
    stats = _collect(units, [s.units for s in figures], normed)
    round_off_gradients(stats, {}, spec.precision)
    bidirectional = {u.name for u in units if getattr(u.plan.layer, "bidirectional", False)}
    series = [TimeSeries.of(name, sub, figures, reverse=name in bidirectional and sub % 2 == 1)
              for (name, sub) in figures[0].steps]
    squashed, in_forward = squashed_output(plan)
    return SimulationResult(plan, str(dev), spec.precision, count - start, stats, series, [s.loss for s in figures],
                            time.perf_counter() - started, spec.optimizer, batch_size=spec.batch_size,
                            silent=[s.silent for s in figures], squashed=squashed,
                            squashed_in_forward=in_forward,
                            on_probabilities=not spec.loss.from_logits and spec.loss.type in PROBABILITY_LOSSES,
                            batch_statistics=batch_norm_values(plan),
                            duplicates=duplicates_over_seeds(figures),
                            input_range=spec.input.range, input_draw=_draw_words(spec.input),
                            draw_units=_collect(units, extra, normed) if extra else [], draws=len(extra))


def _draw_words(given: S.InputSpec) -> str:
    """A spec input's zero-mean draw in words (``distribution`` at ``scale``)."""
    scale = float(given.scale)
    if given.distribution == "uniform":
        return f"uniform in [{-scale:g}, {scale:g}]"
    return "standard normal" if scale == 1.0 else f"normal with std {scale:g}"


#: A batch of fewer samples than this cannot show a unit dead: a live unit is off for all of b
#: independent samples with probability 2^-b, 1/2 at b = 1 and under 0.4% from b = 8.
MIN_DEAD_BATCH = 8

#: A ReLU layer of w units, d of them off for the whole batch in a draw, is taken to die whole in
#: another draw with a chance of about d^w (its units as independent coins); from this chance on, a
#: part of the seeds does not settle whether the network can be born dead (5 units with 2 off: 1%).
BORN_DEAD_RISK = 1e-3


def could_be_born_dead(figures: Sequence[SeedFigures], batch_size: int | None) -> bool:
    """Whether the seeds' ``figures`` show a ReLU layer dead whole, or narrow and with enough units
    off for the whole batch that another draw may kill it whole (:data:`BORN_DEAD_RISK`): the
    network's born-dead share (the rules' ``born_dead``) needs every seed to be told."""
    if batch_size is not None and batch_size < MIN_DEAD_BATCH:
        return False
    return any(death_chance(values.get("dead_fraction", math.nan), values.get("relu_units", math.nan))
               >= BORN_DEAD_RISK for seed in figures for values in seed.units.values())


#: The extra draws a small network that may be born dead is initialised and stepped in, for the
#: share of draws born dead: 200 give that share within about +-4 points at 8% (Wilson 95%), where
#: the spec's 3 seeds make one dead draw read 33% (peersweep11 h07: a 2-unit relu layer dies whole in
#: 8% of Glorot draws, and 1 of 3 seeds read as "about 33%"); 1,000, for a network smaller still,
#: within +-1.7 points, so a share near the warning line (10%) is told from it.
BORN_DEAD_DRAWS = 200
BORN_DEAD_MANY_DRAWS = 1_000
#: The draws are made only for a network whose step costs little: its parameters times its batch
#: (about the multiply-adds of one forward pass) at most this for the 1,000 draws, ten times it for
#: the 200 (on a 2-core CPU a step of 1e6 multiply-adds takes a few milliseconds, mostly building the
#: network). The count follows from the network alone, never from the clock, so the same spec gives
#: the same share on any machine.
BORN_DEAD_DRAW_WORK = 1_000_000
#: ... and a network of at most this many parameters
BORN_DEAD_DRAW_PARAMETERS = 100_000
#: Building and stepping a network costs about a millisecond per layer whatever its width, so the
#: 1,000 draws are made only for a network of at most this many layers (the 2-2-1 net: 3, 1,000 draws
#: in about 1 s); a deeper one gets the 200 (a 16-layer, 5-wide stack: about 2 s)
BORN_DEAD_MANY_DRAWS_LAYERS = 6
#: A safety valve, not a measure: draws that take longer than this in all (a machine far slower or
#: busier than any the work bound was set on) are dropped, and the seeds' count is said
BORN_DEAD_DRAW_SECONDS = 60.0
#: the first extra draw's seed: far past any spec's seeds, so no draw repeats one of them
BORN_DEAD_FIRST_DRAW = 1_000_000


def born_dead_draw_count(plan: Plan) -> int:
    """How many extra draws :func:`born_dead_draws` makes for ``plan``: :data:`BORN_DEAD_MANY_DRAWS`
    where its parameters times its batch are at most :data:`BORN_DEAD_DRAW_WORK`,
    :data:`BORN_DEAD_DRAWS` up to ten times that or past :data:`BORN_DEAD_MANY_DRAWS_LAYERS` layers, else 0 (and 0 past
    :data:`BORN_DEAD_DRAW_PARAMETERS` parameters)."""
    if plan.parameters > BORN_DEAD_DRAW_PARAMETERS:
        return 0
    work = plan.parameters * max(1, plan.spec.batch_size)
    few_layers = sum(1 for u in plan.units for _ in u.walk()) <= BORN_DEAD_MANY_DRAWS_LAYERS
    return (BORN_DEAD_MANY_DRAWS if work <= BORN_DEAD_DRAW_WORK and few_layers
            else BORN_DEAD_DRAWS if work <= 10 * BORN_DEAD_DRAW_WORK else 0)


def born_dead_draws(plan: Plan, device: torch.device) -> list[dict[str, dict[str, float]]]:
    """Each of :func:`born_dead_draw_count` further draws' unit figures (seeds from
    :data:`BORN_DEAD_FIRST_DRAW`, drawn as the spec's seeds are: its init and input distribution);
    [] where the network is too large for them, or where they overrun :data:`BORN_DEAD_DRAW_SECONDS`."""
    out: list[dict[str, dict[str, float]]] = []
    started = time.perf_counter()
    for i in range(born_dead_draw_count(plan)):
        seed = BORN_DEAD_FIRST_DRAW + i
        net, x, target = prepare(plan, seed, device)
        with _seeded(seed, device):
            out.append(instrumented_step(net, x, target).units)
        if time.perf_counter() - started > BORN_DEAD_DRAW_SECONDS:
            return []
    return out


def death_chance(dead: float, width: float) -> float:
    """About how likely a ReLU layer of ``width`` units, a share ``dead`` of them off for the whole
    batch in one draw, is to die whole in another: ``dead ** width`` (0 where not measured)."""
    return dead ** width if dead > 0 and width >= 1 else 0.0


def select_seeds(result: SimulationResult, keep: Sequence[int]) -> SimulationResult:
    """``result`` over the seeds ``keep`` only (indices into its seeds, in order): the figures a
    simulation of those draws alone would give (the rules judge a depth ratio over the seeds not
    born dead)."""
    idx = list(keep)
    units = [replace(u, values={m: v[idx] for m, v in u.values.items()}) for u in result.units]
    series = [replace(ts, norms=ts.norms[idx], carried=None if ts.carried is None else ts.carried[idx])
              for ts in result.time_series]
    return replace(result, seeds=len(idx), units=units, time_series=series,
                   losses=[result.losses[i] for i in idx],
                   silent=[result.silent[i] for i in idx] if len(result.silent) == result.seeds else result.silent)


def combined(first: SimulationResult, rest: SimulationResult) -> SimulationResult:
    """One simulation of ``first``'s seeds and then ``rest``'s, of the same plan (a verdict on one
    seed extended to every seed without simulating the first again)."""
    def joined(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return np.concatenate([a, b if b is not None else np.full(rest.seeds, math.nan)])

    units = [replace(u, values={m: joined(v, r.values.get(m)) for m, v in u.values.items()})
             for u, r in zip(first.units, rest.units, strict=True)]
    series = [replace(a, norms=np.concatenate([a.norms, b.norms]),
                      carried=None if a.carried is None or b.carried is None
                      else np.concatenate([a.carried, b.carried]))
              for a, b in zip(first.time_series, rest.time_series, strict=True)]
    return replace(first, seeds=first.seeds + rest.seeds, units=units, time_series=series,
                   losses=first.losses + rest.losses, silent=first.silent + rest.silent,
                   duration_s=first.duration_s + rest.duration_s,
                   draw_units=first.draw_units or rest.draw_units, draws=first.draws or rest.draws)


def _read_by_norms(units: list[Unit]) -> set[str]:
    """Units whose output only layer norms read, up to residual sums: the copies of a Pre-LN
    transformer stack and the unit that feeds it (GPT-2's embedding at std 0.02). Each block reads
    the stream through its own LayerNorm and adds its branch to it, and the stack's final norm reads
    the end: the stream's scale is divided out wherever it is read, so ||dL/dh|| there grows as its
    scale shrinks (50x behind an embedding at 0.02) without changing what the network learns."""
    found: set[str] = set()
    for i, unit in enumerate(units):
        layer = unit.plan.layer
        if (isinstance(layer, S.TransformerEncoderLayer) and layer.norm_first
                and unit.plan.kind == "transformer_encoder"):
            found.add(unit.name)
            if unit.plan.copy == 0 and i > 0 and units[i - 1].name.count(".layers[") == unit.name.count(".layers["):
                found.add(units[i - 1].name)
    return found


def _collect(units: list[Unit], per_seed: list[dict[str, dict[str, float]]],
             read_by_layers: frozenset[str] | set[str] = frozenset()) -> list[UnitStats]:
    depth = {u.name: u.name.count(".layers[") for u in units}
    by_norms = _read_by_norms(units)
    separate = separate_activations([u.plan for u in units])
    out: list[UnitStats] = []
    for unit in units:
        if unit.name not in per_seed[0]:
            continue
        metrics = per_seed[0][unit.name].keys()
        values = {m: np.array([s[unit.name].get(m, math.nan) for s in per_seed], dtype=np.float64)
                  for m in metrics}
        w = unit.weight()
        fan_in = fan_out = None
        if w is not None:
            fan_in = int(w[0].numel())
            fan_out = int(w.shape[0] * (w[0][0].numel() if w.dim() > 2 else 1))
            if isinstance(unit, RecurrentUnit):
                fan_out = unit.layer.hidden_size
        out.append(UnitStats(unit.name, unit.plan.pointer, unit.plan.kind, _activation_of(unit),
                             depth[unit.name], bool(list(unit.own_parameters())), fan_in, fan_out, values,
                             # its own norm on the pre-activation, a Pre-LN stream's, or a norm layer
                             # reading its output (plan.read_by_norms)
                             normalised=getattr(unit, "norm", None) is not None or unit.name in by_norms
                             or unit.name in read_by_layers,
                             stream=getattr(unit, "norm", None) is None and unit.name in by_norms,
                             activation_params=_activation_params_of(unit), averaged=averaged_elements(unit.plan),
                             container=bool(unit.plan.children),
                             then_activation=separate.get(unit.plan.pointer) if unit.plan.copy == 0 else None,
                             stacked=unit.layer.num_layers if isinstance(unit, RecurrentUnit) else 1))
    return out


def averaged_elements(plan: UnitPlan) -> float | None:
    """k, the input elements a spec's averaging unit averages into each output element over disjoint
    windows (:attr:`UnitStats.averaged`); None where the unit averages nothing, or over overlapping
    windows (an input in several windows: no exact factor)."""
    layer = plan.layer
    if isinstance(layer, S.PoolLayer2d) and layer.type == "avgpool2d":
        if (layer.stride or layer.kernel_size) < layer.kernel_size:
            return None
        return float(layer.kernel_size ** 2)
    if isinstance(layer, S.SequencePoolLayer) and layer.mode == "mean":
        n_in, n_out = math.prod(plan.in_shape), math.prod(plan.out_shape)
        return n_in / n_out if n_out and n_in > n_out else None
    return None
