"""One instrumented step's tensors -> every unit's figures, read back in one transfer.

Both simulations (the spec's units in :mod:`gradhealth.analysis.simulate` and the hooked
leaves of a live module or ONNX graph in :mod:`gradhealth.analysis.graph`) hand each unit's
output, its gradient, its weights and so on to a :class:`Readout`. The readout asks the device
only for raw reductions: one fused ``torch._foreach_norm`` over every tensor whose norm a figure
needs (outputs, gradients, weights, inputs, each time step's dL/dh_t), a sum per output and
weight, and a count per saturation or dead-unit test. Everything derived from them (means,
standard deviations, mean squares, fractions, non-finite flags) is scalar arithmetic in Python
floats after the single read-back. Before, each unit cost some forty tensor operations on
0-d tensors, and a recurrent layer one norm call per time step; the figures are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from gradhealth.analysis.activations import MEASURED_SATURATING
from gradhealth.errors import TimeSeriesError

#: Margin of the flat tails: a sigmoid output within 0.02 of 0 or 1 has derivative < 0.02
#: (at most 8% of its peak 0.25); a tanh output within 0.02 of +-1 has derivative < 0.04.
SATURATION_MARGIN = 0.02
#: A softsign output x / (1 + |x|) has derivative (1 - |h|)^2, which falls under a tanh's bar at its
#: margin, tanh'(x) = 1 - h^2 < 1 - (1 - 0.02)^2 = 0.0396 (of a peak of 1 for both), where |h| > 0.801
#: (|x| > 4.0): counted at its own output, the margin 0.02 would need |x| > 49, where the derivative is
#: already 4e-4. The hard sigmoids are counted at their clips, where the derivative is exactly 0.
SOFTSIGN_SATURATED = 1.0 - math.sqrt(1.0 - (1.0 - SATURATION_MARGIN) ** 2)



class _Values:
    """The read-back reductions: index i >= 0 is the i-th norm, -k the k-th scalar (from 1).
    ``beyond``: the norms whose elements are all finite though the norm itself is past float64's
    largest value (:func:`rescaled_norm`): Inf as a number, but no NaN/Inf in the tensor."""

    def __init__(self, flat: list[float], norms: int, beyond: frozenset[int] = frozenset()) -> None:
        self.flat, self.norms, self.beyond = flat, norms, beyond

    def __getitem__(self, i: int) -> float:
        return self.flat[i] if i >= 0 else self.flat[self.norms - 1 - i]

    def flag(self, i: int) -> float:
        """1.0 where the i-th norm's tensor holds a NaN or Inf element, else 0.0: a norm is finite
        exactly when every element is, but for one past float64's range (``beyond``)."""
        return 0.0 if i in self.beyond else _flag(self[i])


def rescaled_norm(t: torch.Tensor, first: float) -> tuple[float, bool]:
    """``t``'s Euclidean norm where ``first``, the norm as a fused reduction took it, came out Inf:
    a reduction that squares elements overflows at about 1.3e154 per element in float64 (1.8e19 in
    float32) although every element is finite (an MLP with std-1 weights 100 layers deep has weight
    gradients of 1e160 to 1e210). Where the elements are finite it is taken again scaled by the
    largest absolute element m, m ||t / m|| (in float64), which no element can overflow; where an
    element is Inf (or ``first`` is not Inf) ``first`` stands. Returns (the norm, whether every
    element is finite). Called only for a norm that is Inf, so a finite one costs nothing more."""
    if not math.isinf(first) or not t.numel():
        return first, math.isfinite(first)
    x = t.detach()
    m = float(abs_max(x).to(torch.float64))
    if not math.isfinite(m) or m == 0:
        return first, False
    return m * float(torch.linalg.vector_norm(x.to(torch.float64) / m)), True


def tensor_norm(t: torch.Tensor) -> float:
    """``t``'s Euclidean norm as a float, robust to elements whose squares overflow
    (:func:`rescaled_norm`): Inf only where an element is, or the norm is past float64's range."""
    first = float(torch.linalg.vector_norm(t))
    return rescaled_norm(t, first)[0] if math.isinf(first) else first


_Figures = Callable[[_Values], dict[str, float]]


@dataclass
class SeedFigures:
    """What one instrumented step measured: per-unit figures, dL/dh_t series, the loss."""

    units: dict[str, dict[str, float]]
    steps: dict[tuple[str, int], list[float]]
    loss: float
    #: the layer scales folded into units (graph doors): the vector's name -> its largest magnitude
    layer_scales: dict[str, float] = field(default_factory=dict)
    #: the fraction of the batch the loss gave no gradient (:func:`.losses.loss_value`); nan for a
    #: model of several outputs, whose losses are summed
    silent: float = math.nan
    #: the softmax or sigmoid a live module's forward ended in, which cross_entropy's own softmax
    #: comes after (:func:`.graph.forward_squash`); None: it returns logits
    forward_squash: str | None = None
    #: the bounded activation (sigmoid, tanh) right before the softmax or log_softmax a live module's
    #: forward ends in (:func:`.graph.squash_before_softmax`); None where there is none
    squash_before_softmax: str | None = None
    #: a graph's output is one distribution per row under a regression loss (``("softmax", k)``,
    #: ``("log_softmax", k)`` over its last dimension of k): :func:`.graph.simplex_output`
    simplex_output: tuple[str, int] | None = None
    #: the size of the (first) output's last dimension, the values cross-entropy takes for one
    #: sample's logits (:func:`.graph.output_width`); None where the output is not a tensor
    output_width: int | None = None
    #: the values the (first) output holds per sample, the product of its dimensions past the batch's
    #: (:func:`.graph.values_per_sample`); None where the output is not a tensor
    output_values: int | None = None
    #: the float input's values (seed 0, float64, flattened) where the output has its shape: a
    #: reconstruction, whose targets are its inputs (:func:`.graph.reconstructed_inputs`)
    reconstruction: np.ndarray | None = None
    #: a live module's layer functions (F.conv2d, F.linear) on a weight the forward computes from
    #: no parameter of the same shape (a hypernetwork's generated kernel): their kind -> how many
    #: distinct weights, none of them a unit (``FunctionalOps.computed_kernels``)
    computed_kernels: dict[str, int] = field(default_factory=dict)
    #: the step functions (a comparison, a Heaviside step, an argmax) a live module's forward applied
    #: to a tensor with a gradient: what carries none past them (``FunctionalOps.steps``)
    step_ops: list[str] = field(default_factory=list)
    #: layers a live module's forward calls in a loop, each call a time step (:func:`.graph.loops`)
    looped: list[str] = field(default_factory=list)
    #: layers called once per step of such a loop (its input projection): part of the loop's steps
    beside_loops: list[str] = field(default_factory=list)
    #: units whose output a LayerNorm takes and then feeds straight into a residual sum, in order:
    #: hand-written Post-LN blocks, x = norm(x + f(x)) (:func:`.graph.post_ln_units`)
    post_ln: list[str] = field(default_factory=list)
    #: units whose saturating activation's output only gates another tensor, multiplied into it
    #: (a squeeze-excitation or GLU gate, an LSTM's gates written by hand; :func:`.graph.gate_units`)
    gates: list[str] = field(default_factory=list)
    #: each unit -> the units its output reaches next, through operations that are no unit
    #: (:func:`.graph.unit_feeds`): the paths through a network of several towers
    feeds: dict[str, list[str]] = field(default_factory=dict)
    #: the units whose output the loss reads with no unit between, one per term of the loss
    #: (:func:`.graph.loss_reads`)
    loss_reads: list[str] = field(default_factory=list)
    #: layers called in a loop that drive a sigmoid gate: a gated cell written by hand
    #: (:func:`.graph.gate_drivers`)
    gate_drivers: list[str] = field(default_factory=list)
    #: loops that read one state (a cell written from raw parameters: :func:`.graph.shared_states`):
    #: the name its through-time series has -> every loop reading that state
    shared_states: dict[str, list[str]] = field(default_factory=dict)
    #: attention query and key projections, whose output reaches a softmax through q k^T
    #: (:func:`.graph.score_projections`)
    score_projections: list[str] = field(default_factory=list)
    #: the element-wise recurrences (by their decay's parameter) whose decay is computed per step from
    #: the input, exp(delta_t * A): selective scans, Mamba's form (:func:`.graph.elementwise_loops`)
    selective_scans: list[str] = field(default_factory=list)
    #: units whose output is added to another path (a residual branch's last layer;
    #: :func:`.graph.branch_sums`)
    summed: list[str] = field(default_factory=list)
    #: training-mode batch norms -> the fewest values per channel each normalised over in the
    #: forward (the batch times the positions): 2 make its output +-1 whatever its input
    batch_statistics: dict[str, int] = field(default_factory=dict)
    #: per recurrent (sub)layer, the loss's gradient at its last step carried back through its own
    #: recurrence alone (:meth:`Readout.add_carried`), one norm per step, the last step's own last
    carried: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: per weighted unit with copies: the groups of its units (output rows, a convolution's filters)
    #: whose incoming weights and bias are exactly equal and not all zero (:func:`duplicate_rows`)
    duplicates: dict[str, list[list[int]]] = field(default_factory=dict)


def _std(total: float, norm: float, n: int) -> float:
    """Unbiased standard deviation from the sum and the Euclidean norm of ``n`` values. Where the
    mean square overflows float64 (a norm past 1e154) it is taken over norm-scaled values, so
    values of 1e200 have a std near 1e200, not Inf - Inf = NaN."""
    if n < 2:
        return math.nan
    mean = total / n
    if math.isfinite(norm) and norm > 0 and math.isinf(norm * norm):
        r = mean / norm
        return norm * math.sqrt(max(1.0 / n - r * r, 0.0) * (n / (n - 1)))
    return math.sqrt(max(norm * norm / n - mean * mean, 0.0) * (n / (n - 1)))


def _mean_square(norm: float, n: int) -> float:
    """The mean square of ``n`` values from their norm: Inf, not OverflowError, past float64."""
    rms = norm / math.sqrt(n)
    return rms * rms


def _flag(value: float) -> float:
    """1.0 where a reduction came out non-finite (a norm or sum is finite exactly when every
    element is, so no separate isfinite pass is needed), else 0.0."""
    return 0.0 if math.isfinite(value) else 1.0


def row_keys(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(a key per unit, whether its incoming weights are not all zero): a unit is a row of ``weight``
    (a Linear's output, a convolution's filter over every input channel and kernel position), with
    its bias. The key is the row (and bias) projected on a fixed random direction in float64: equal
    rows give equal keys, and two different rows an equal one with probability 0 (the direction is
    drawn from a continuous distribution), so copies are found in one pass without sorting rows."""
    rows = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    gen = torch.Generator().manual_seed(0x5EED)
    direction = torch.randn(rows.shape[1], generator=gen, dtype=torch.float64).to(rows.device)
    # a matrix-vector product and a norm reduction: no temporary as large as the weight (a
    # 2,048x1,536 float64 layer's would be 25 MB at the simulation's memory peak)
    keys = rows @ direction
    if bias is not None and bias.numel() == rows.shape[0]:
        keys = keys + bias.detach().reshape(-1).to(torch.float64) * math.pi
    return keys, (torch.linalg.vector_norm(rows, dim=1) > 0).to(torch.float64)


def duplicate_rows(keys: Sequence[float], nonzero: Sequence[float]) -> list[list[int]]:
    """The groups (two units or more, by index) of units whose keys (:func:`row_keys`) are equal:
    copies, with the same incoming weights and bias. Rows of all-zero weights are left out (a unit
    that reads nothing is dead_units' business, not symmetry's), and so are non-finite keys."""
    by_key: dict[float, list[int]] = {}
    for i, (k, z) in enumerate(zip(keys, nonzero, strict=True)):
        if z and math.isfinite(k):
            by_key.setdefault(k, []).append(i)
    return [g for g in by_key.values() if len(g) >= 2]


def duplicates_over_seeds(seeds: Sequence[SeedFigures]) -> dict[str, list[list[int]]]:
    """Per unit, the groups of copies (:attr:`SeedFigures.duplicates`) of the seed with the most units
    in them."""
    out: dict[str, list[list[int]]] = {}
    for figures in seeds:
        for name, groups in figures.duplicates.items():
            if sum(map(len, groups)) > sum(map(len, out.get(name, []))):
                out[name] = groups
    return out


def abs_max(t: torch.Tensor) -> torch.Tensor:
    """The largest |element| of ``t`` (NaN where one is NaN), as a 0-d tensor, without the copy of ``t``
    that ``t.abs()`` makes (a layer's weights or activations again: 19 MB for a 1536 x 1536 float64
    weight's gradient, past the plan's memory estimate)."""
    return torch.maximum(t.amax(), -t.amin())


#: A unit's largest |value| of its output, of the gradient its output got, and of its weights'
#: gradients, in one seed: where a dtype narrower than the simulation's would overflow.
ACTIVATION_ABS_MAX = "activation_abs_max"
OUTPUT_GRAD_ABS_MAX = "output_grad_abs_max"
WEIGHT_GRAD_ABS_MAX = "weight_grad_abs_max"
#: A ReLU layer's pre-activations' spread about each unit's own mean, over the samples (and
#: positions) of the batch, against their root mean square: near 0 where every sample gives each
#: unit the same input (a squeeze-and-excitation layer's pooled vector), near 1 where they differ.
SAMPLE_SPREAD = "sample_spread"


class Readout:
    """Collects the reductions of one step's units and computes their figures after one transfer."""

    def __init__(self) -> None:
        self._norms: list[torch.Tensor] = []    # tensors whose Euclidean norm is wanted
        self._scalars: list[torch.Tensor] = []  # reductions already taken (0-d)
        self._units: list[tuple[str, _Figures]] = []
        self._steps: list[tuple[tuple[str, int], int | None]] = []
        self._carried: list[tuple[tuple[str, int], list[int | None]]] = []
        self._pending: list[tuple[tuple[str, int], list[torch.Tensor], torch.Tensor,
                                  list[tuple[torch.Tensor, torch.Tensor]]]] = []
        #: per weighted unit: its rows' keys and whether each row has a nonzero weight (duplicate_rows)
        self._rows: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        #: the (sub)layers whose series is complete (add_carried closes it): one reading each
        self._closed: set[tuple[str, int]] = set()

    def _norm(self, t: torch.Tensor) -> int:
        self._norms.append(t.detach())
        return len(self._norms) - 1

    def _scalar(self, t: torch.Tensor) -> int:
        self._scalars.append(t.reshape(()))
        return -len(self._scalars)  # negative: the k-th scalar (see _Values)

    def add_unit(self, name: str, *, out: torch.Tensor, grad: torch.Tensor | None,
                 activation: str | None, pre: torch.Tensor | None = None,
                 inp: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None, weight_grads: list[torch.Tensor | None] | None = None,
                 channels_first: bool = False, rows_are_units: bool = True) -> None:
        """Register one unit: its output ``out`` and the gradient ``grad`` that reached it, and
        where it has them its pre-activation, input, main weight, bias and the gradients whose
        joint norm is its ``grad_norm`` (left out when any is missing). ``rows_are_units``: each row of
        ``weight`` is one output unit's incoming weights over all of the same inputs, so equal rows are
        copies (:func:`duplicate_rows`); False for a grouped convolution (its filters read different
        channels) and a transposed one (its rows are inputs)."""
        h = out.detach()
        n_out = h.numel()
        if n_out == 0:
            # no sample reached the unit in this step (a sparse mixture of experts' expert that the
            # router gave none of a small batch runs on a [0, d] tensor, legal in torch): nothing of
            # its outputs, units or gradients was measured, so no figure but its weights' is taken
            # (its weight gradient is exactly 0 for want of samples, not vanishing; its ReLUs
            # neither dead nor alive). ``no_samples`` says so; the seed's other figures are NaN.
            self._empty_unit(name, weight)
            return
        i_sum, i_norm = self._scalar(h.sum()), self._norm(h)
        if (rows_are_units and weight is not None and weight.dim() >= 2 and weight.shape[0] >= 2
                and weight.is_floating_point()):
            self._rows.append((name, *row_keys(weight, bias)))
        i_grad = self._norm(grad) if grad is not None else None
        grads = [g for g in weight_grads or [] if g is not None]
        i_wgrads = [self._norm(g) for g in grads] if grads and len(grads) == len(weight_grads or []) else []
        # the largest magnitudes: where a narrower dtype than the simulation's (the model's own
        # float32 beside float64) would overflow (module_check's own-dtype location of a NaN/Inf)
        i_amax = self._scalar(abs_max(h)) if h.is_floating_point() else None
        i_gmax = (self._scalar(abs_max(grad.detach())) if grad is not None and grad.numel()
                  and grad.is_floating_point() else None)
        sized = [g for g in grads if g.numel() and g.is_floating_point()]
        i_wgmax = self._scalar(torch.stack([abs_max(g.detach()).to(torch.float64) for g in sized]).amax()) \
            if i_wgrads and sized else None
        i_w = (self._scalar(weight.detach().sum()), self._norm(weight), weight.numel()) if weight is not None else None
        i_bias = (self._norm(bias.detach().to(torch.float64)), bias.numel()) if (
            weight is not None and bias is not None and bias.numel()) else None
        i_in = (self._norm(inp), inp.numel()) if inp is not None and inp.is_floating_point() and inp.numel() else None
        i_sat = i_sat_high = i_dead = i_active = None
        i_spread: tuple[int, int] | None = None
        n_rows = 0
        # a recurrent cell (torch's RNN, LSTM or GRU, or an imported graph's) runs its tanh inside
        # and records no pre-activation: its sequence output h_t is read instead (a tanh RNN's h_t is
        # the tanh's; an LSTM's o * tanh(c) and a GRU's mix of tanh values are near +-1 only where
        # those are). A recurrent weight x4 puts 35% of a tanh RNN's h_t within 0.02 of +-1
        # (onnxsweep11 b08), which no figure showed. A unit outside training (no gradient) is left out
        cell = pre is None and activation == "tanh" and grad is not None and h.dim() >= 3
        if (pre is not None or cell) and activation in MEASURED_SATURATING:
            m = SATURATION_MARGIN
            z_pre = pre.detach() if pre is not None else h  # a cell's: only its tanh is read, from h
            if activation == "sigmoid":
                sat = (h < m) | (h > 1 - m)
                # rows whose every sigmoid is in the upper tail: sigmoids per class under Keras'
                # categorical cross-entropy stall only there, all near 1 together (the loss at ln k);
                # one near 1 is a confident prediction, one near 0 where a non-target belongs
                if h.dim() >= 2 and h.shape[-1] > 1:
                    i_sat_high = self._scalar((h > 1 - m).all(dim=-1).sum())
                    n_rows = h.numel() // h.shape[-1]
            elif activation == "tanh":
                sat = h.abs() > 1 - m
            elif activation in ("hardsigmoid", "hard_sigmoid", "hard_sigmoid_keras2"):
                sat = (h <= 0) | (h >= 1)  # its clip: derivative exactly 0, whatever its slope
            elif activation == "softsign":
                sat = h.abs() > SOFTSIGN_SATURATED
            elif activation == "glu":  # pre is the gate's half: a * sigmoid(b)'s b
                gate = torch.sigmoid(z_pre)
                sat = (gate < m) | (gate > 1 - m)
            else:
                sat = z_pre.abs() >= 1
            i_sat = self._scalar(sat.sum())
        n_features = n_elements = 0
        if pre is not None and activation == "relu" and pre.dim() >= 1:
            # A unit (feature or channel) is dead when it is <= 0 for every sample and position.
            z = pre.detach()
            feature_dim = 1 if channels_first and z.dim() > 1 else z.dim() - 1
            reduce = [d for d in range(z.dim()) if d != feature_dim]
            alive = z.amax(dim=reduce) > 0 if z.dim() > 1 and reduce else z > 0
            n_features = alive.numel()
            i_dead = self._scalar(alive.sum())
            if z.dim() > 1 and reduce and z.numel() > n_features:
                # how much the pre-activations vary over what "zero for every sample" reads (the
                # samples, and positions): the spread about each unit's mean against their size. A
                # layer fed by a pooled vector (a squeeze-and-excitation block) sees nearly the same
                # input for every sample, so each unit's sign is one coin toss for the whole batch:
                # the batch is one sample for it (dead_units, rules.ALIKE_SPREAD; modsweep46)
                dev = z - z.mean(dim=reduce, keepdim=True)
                i_spread = (self._scalar((dev * dev).sum()), self._scalar((z * z).sum()))
            # the share of outputs on the flat side, which pass no gradient (a ReLU output under a
            # regression loss: output_loss_mismatch)
            i_active, n_elements = self._scalar((z > 0).sum()), z.numel()

        def figures(v: _Values) -> dict[str, float]:
            total, norm = v[i_sum], v[i_norm]
            mean = total / n_out if n_out else math.nan
            out_figures = {
                "output_grad_norm": v[i_grad] if i_grad is not None else math.nan,
                "activation_mean": mean,
                "activation_std": _std(total, norm, n_out),
                # from the norms: finite exactly when every element is (:meth:`_Values.flag`); a sum
                # of finite elements can overflow where no element is Inf
                "nonfinite_forward": v.flag(i_norm),
                "nonfinite_backward": v.flag(i_grad) if i_grad is not None else math.nan,
            }
            if i_amax is not None:
                out_figures[ACTIVATION_ABS_MAX] = v[i_amax]
            if i_gmax is not None:
                out_figures[OUTPUT_GRAD_ABS_MAX] = v[i_gmax]
            if i_wgmax is not None:
                out_figures[WEIGHT_GRAD_ABS_MAX] = v[i_wgmax]
            if i_wgrads:
                # hypot: the joint norm of norms past 1e154 without squaring them to Inf
                grad_norm = math.hypot(*(v[i] for i in i_wgrads))
                out_figures["grad_norm"] = grad_norm
                bad = max(v.flag(i) for i in i_wgrads)
                before = out_figures["nonfinite_backward"]
                out_figures["nonfinite_backward"] = max(0.0 if math.isnan(before) else before, bad)
                out_figures["nonfinite_weight_grad"] = bad
            if i_w is not None:
                out_figures["weight_std"] = _std(v[i_w[0]], v[i_w[1]], i_w[2])
                out_figures["weight_rms"] = v[i_w[1]] / math.sqrt(i_w[2]) if i_w[2] else math.nan
                # ||W||_F: the size of the terms a backward sum through the layer adds up, which
                # sets its round-off (simulate.round_off_gradients)
                out_figures["weight_norm"] = v[i_w[1]]
            if i_bias is not None:
                # sigma_b^2 and E[x^2] feed the mean-field prediction (gradhealth.analysis.theory).
                out_figures["bias_mean_square"] = _mean_square(v[i_bias[0]], i_bias[1])
            if i_in is not None:
                out_figures["input_mean_square"] = _mean_square(v[i_in[0]], i_in[1])
            if i_sat is not None:
                out_figures["saturated_fraction"] = v[i_sat] / n_out
            if i_sat_high is not None:
                out_figures["saturated_together_fraction"] = v[i_sat_high] / n_rows
            if i_dead is not None:
                # A layer whose input is exactly 0 everywhere is switched off, not dead: a
                # zero-initialised layer before it (NF-Nets' last convolution, read by a
                # squeeze-excitation) gives it nothing yet, and it comes on as that layer learns.
                # (Read from the input: an in-place ReLU overwrites the pre-activations.)
                off = i_in is not None and v[i_in[0]] == 0
                out_figures["dead_fraction"] = 0.0 if off else 1.0 - v[i_dead] / n_features
                out_figures["relu_units"] = float(n_features)  # how many units the fraction is of
            if i_spread is not None:
                square = v[i_spread[1]]
                out_figures[SAMPLE_SPREAD] = math.sqrt(max(v[i_spread[0]], 0.0) / square) if square > 0 else math.nan
            if i_active is not None and n_elements:
                out_figures["active_fraction"] = v[i_active] / n_elements
            return out_figures

        self._units.append((name, figures))

    def _empty_unit(self, name: str, weight: torch.Tensor | None) -> None:
        """A unit that saw no sample this step (:meth:`add_unit`): ``no_samples`` 1, its weights'
        figures, and NaN for every figure of its outputs and gradients."""
        i_w = (self._scalar(weight.detach().sum()), self._norm(weight), weight.numel()) if (
            weight is not None and weight.numel()) else None

        def figures(v: _Values) -> dict[str, float]:
            out_figures = {"no_samples": 1.0, "output_grad_norm": math.nan, "activation_mean": math.nan,
                           "activation_std": math.nan, "nonfinite_forward": 0.0, "nonfinite_backward": math.nan}
            if i_w is not None:
                out_figures["weight_std"] = _std(v[i_w[0]], v[i_w[1]], i_w[2])
                out_figures["weight_rms"] = v[i_w[1]] / math.sqrt(i_w[2])
            return out_figures

        self._units.append((name, figures))

    def add_step(self, key: tuple[str, int], grad: torch.Tensor | None) -> None:
        """One time step's dL/dh_t of the recurrent (sub)layer ``key`` (0 where it got none)."""
        self._one_reading(key)
        self._steps.append((key, self._norm(grad) if grad is not None else None))

    def add_carried(self, key: tuple[str, int], steps: Sequence[torch.Tensor],
                    state: Sequence[torch.Tensor | None] = ()) -> None:
        """The recurrent (sub)layer ``key``'s last step's gradient g = dL/dh_{T-1} carried back
        through its own recurrence alone: ||(dh_{T-1}/dh_t)^T g|| for every step t, g's own norm
        last. Where the loss reads only the last step this is dL/dh_t itself; where it reads every
        step (a pooled or per-step readout, a layer under another) dL/dh_t also holds what the loss
        and the layers above inject at each step, which hides how the recurrence itself carries a
        gradient over time. ``state``: the last step's other carried state (an LSTM's cell
        c_{T-1}), whose gradient the loss gives where it reads the final state (a seq2seq encoder
        handing (h_n, c_n) to its decoder): carried back with g, it is part of what the recurrence
        carries, so a layer read only at its final state carries exactly its dL/dh_t (modsweep43:
        h alone, 0.0039 of it at step 0, read as "the loss reads more steps than the last").
        Taken in :meth:`read`, once every other figure's tensors are held (the
        pass replaces the ``.grad`` of the tensors it runs through); needs the graph kept by the
        backward (``retain_graph``). A last step the loss reads nothing from gives none. Closes
        ``key``'s series: another step or carried gradient for it is a second reading of one layer."""
        self._one_reading(key)
        self._closed.add(key)
        if len(steps) >= 3 and steps[-1].grad is not None and steps[-1].requires_grad:
            others = [(s, s.grad) for s in state
                      if s is not None and s.requires_grad and s.grad is not None]
            self._pending.append((key, list(steps), steps[-1].grad, others))

    def _one_reading(self, key: tuple[str, int]) -> None:
        # one layer's steps read by two paths (a recurrent module stepped in a loop, read both as a
        # loop and as a sequence) join two series into one, out of time order: refused by name
        if key in self._closed:
            raise TimeSeriesError(f"the gradient over time of recurrent layer '{key[0]}' (sublayer {key[1]}) "
                                  "was read twice; this is a fault of the analysis, please report it with the model")

    def _carry(self) -> None:
        for key, steps, g, others in self._pending:
            earlier = [(i, h) for i, h in enumerate(steps[:-1]) if h.requires_grad]
            try:
                grads = torch.autograd.grad([steps[-1], *(s for s, _ in others)], [h for _, h in earlier],
                                            grad_outputs=[g, *(gs for _, gs in others)],
                                            retain_graph=True, allow_unused=True) if earlier else ()
            except RuntimeError:
                continue  # a graph that cannot be run back twice: the findings judge dL/dh_t there
            at: list[int | None] = [None] * (len(steps) - 1)
            for (i, _), grad in zip(earlier, grads, strict=True):
                at[i] = self._norm(grad) if grad is not None else None
            self._carried.append((key, [*at, self._norm(g)]))
        self._pending.clear()

    def read(self, loss: torch.Tensor, silent: torch.Tensor | None = None) -> SeedFigures:
        """Take every reduction, read them back in one transfer and compute the figures.
        ``silent``: the fraction of the batch the loss gave no gradient (None: not measured)."""
        self._carry()
        loss_at = self._scalar(loss.detach())
        silent_at = self._scalar(silent.detach()) if silent is not None else None
        values = self._gather()
        units: dict[str, dict[str, float]] = {}
        for name, figures in self._units:
            units[name] = figures(values)
        duplicates = self._duplicates(units)
        steps: dict[tuple[str, int], list[float]] = {}
        for key, i in self._steps:
            steps.setdefault(key, []).append(values[i] if i is not None else 0.0)
        carried = {key: [values[i] if i is not None else 0.0 for i in at] for key, at in self._carried}
        for key, at in carried.items():
            if len(at) != len(steps.get(key, ())):
                raise TimeSeriesError(
                    f"recurrent layer '{key[0]}' (sublayer {key[1]}) has {len(steps.get(key, ()))} time steps but its "
                    f"gradient carried back covers {len(at)}; this is a fault of the analysis, please report it")
        return SeedFigures(units, steps, values[loss_at],
                           silent=values[silent_at] if silent_at is not None else math.nan, carried=carried,
                           duplicates=duplicates)

    def _duplicates(self, units: dict[str, dict[str, float]]) -> dict[str, list[list[int]]]:
        """Each weighted unit's groups of copies (:func:`duplicate_rows`), its ``duplicate_unit_fraction``
        (the share of its units that are a copy of another) written into ``units``; one transfer for all."""
        if not self._rows:
            return {}
        keys = torch.cat([k for _, k, _ in self._rows]).cpu().tolist()
        nonzero = torch.cat([z for _, _, z in self._rows]).cpu().tolist()
        out: dict[str, list[list[int]]] = {}
        start = 0
        for name, k, _ in self._rows:
            n = k.numel()
            groups = duplicate_rows(keys[start:start + n], nonzero[start:start + n])
            start += n
            if name not in units:
                continue
            units[name]["duplicate_unit_fraction"] = sum(len(g) for g in groups) / n
            units[name]["row_units"] = float(n)  # how many units (rows, filters) the fraction is of
            if groups:
                out[name] = groups
        self._rows.clear()
        return out

    def _gather(self) -> _Values:
        """Every norm and scalar as a Python float, after one transfer to the host."""
        parts: list[torch.Tensor] = []
        order: list[list[int]] = []
        # Fused norms need one dtype and device per call: group, keeping each tensor's position.
        groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
        for i, t in enumerate(self._norms):
            groups.setdefault((t.dtype, t.device), []).append(i)
        device = self._norms[0].device if self._norms else self._scalars[0].device
        for idx in groups.values():
            tensors = [self._norms[i] for i in idx]
            norms = torch._foreach_norm(tensors) if tensors[0].is_floating_point() else [
                torch.linalg.vector_norm(t.to(torch.float64)) for t in tensors]
            parts.append(torch.stack(list(norms)).to(device=device, dtype=torch.float64))
            order.append(idx)
        scalar_groups: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(self._scalars):
            scalar_groups.setdefault(t.dtype, []).append(i)
        for idx in scalar_groups.values():
            parts.append(torch.stack([self._scalars[i] for i in idx]).to(device=device, dtype=torch.float64))
            order.append([len(self._norms) + i for i in idx])
        flat = torch.cat(parts).cpu().tolist() if parts else []
        values = [math.nan] * (len(self._norms) + len(self._scalars))
        for idx, start in zip(order, _starts(order), strict=True):
            for k, i in enumerate(idx):
                values[i] = flat[start + k]
        # a norm that came out Inf is taken again, scaled (rescaled_norm), only there: a finite
        # tensor whose squares overflow is no NaN/Inf; the rest cost nothing more
        beyond: set[int] = set()
        for i in range(len(self._norms)):
            if math.isinf(values[i]):
                values[i], finite = rescaled_norm(self._norms[i], values[i])
                if finite and math.isinf(values[i]):
                    beyond.add(i)
        return _Values(values, len(self._norms), frozenset(beyond))


def _starts(order: list[list[int]]) -> list[int]:
    starts, at = [], 0
    for idx in order:
        starts.append(at)
        at += len(idx)
    return starts
