"""The measurements findings are made of, and :class:`Detection`, a finding before its remedies.

Every finding code has one metric (its rule in :mod:`gradhealth.analysis.rules` says which),
computed the same way on the original simulation and on each remedy's re-simulation, so a
remedy's ``verified.before``/``after`` compare like with like.

Through depth, the metric is ``||dL/dh||`` at the first hidden layer over the
same at the last hidden layer (the readout is left out: its gradient is the
loss's own). Through time it is ``||dL/dh_0|| / ||dL/dh_{T-2}||``: the last
step is left out because dL/dh_{T-1} is the readout's direct gradient, not one
that went through the recurrence.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradhealth.analysis import spec as S
from gradhealth.analysis import theory
from gradhealth.analysis.simulate import SimulationResult, TimeSeries, UnitStats
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import Finding, Remedy
from gradhealth.core.rules import rule, worst_first


@dataclass
class Detection:
    """A finding before remedies are attached."""

    code: str
    severity: str
    metric: str
    value: float
    summary: str
    explanation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    units: list[UnitStats] = field(default_factory=list)  # the units the finding is about

    def finding(self, remedies: list[Remedy]) -> Finding:
        """The finding, made the way the log check makes its own (through the code's rule)."""
        return rule(self.code).finding(self.severity, self.summary, self.explanation, self.evidence, remedies)


def merge_same_code(detections: list[Detection]) -> list[Detection]:
    """``detections`` with one per code: where several checks found the same code on one model (a
    packed q/k/v slice with no gradient and a depth ratio, both ``vanishing_gradient``: modsweep48),
    the most severe (the first of :func:`worst_first`'s order) leads and carries the others: their
    summaries after its own ("; also: ..."), their explanations after its own, their units, and
    each one's severity, summary and evidence under ``merged``. Order otherwise unchanged."""
    by_code: dict[str, list[Detection]] = {}
    for d in detections:
        by_code.setdefault(d.code, []).append(d)
    out: list[Detection] = []
    for d in detections:
        group = by_code[d.code]
        if len(group) == 1:
            out.append(d)
            continue
        if d is not group[0]:
            continue  # (merged into the group's lead, placed where the code first came)
        lead, *rest = worst_first(group)
        units = list(lead.units)
        for other in rest:
            units += [u for u in other.units if all(u is not v for v in units)]
        out.append(Detection(
            lead.code, lead.severity, lead.metric, lead.value,
            "; also: ".join([lead.summary, *(o.summary for o in rest)]),
            " ".join([lead.explanation, *(o.explanation for o in rest)]),
            {**lead.evidence, "merged": [{"severity": o.severity, "summary": o.summary, **o.evidence} for o in rest]},
            units))
    return out


def _geo_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Geometric mean over seeds of a/b (0 when a is 0, nan when undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(a) - np.log(b)
    logs = logs[~np.isnan(logs)]
    return float(np.exp(np.mean(logs))) if len(logs) else math.nan


def cut_off(unit: UnitStats) -> bool:
    """Whether the loss does not depend on ``unit``'s output in any seed (a live module's
    ``.detach()``, or a head the loss does not read): no gradient by construction, not by shrinking."""
    marks = unit.values.get("cut_off")
    return marks is not None and bool(np.all(marks == 1.0))


def weighted_units(result: SimulationResult) -> list[UnitStats]:
    """The top-level units with weights whose gradient was measured, in order (the readout last)."""
    return [u for u in result.units if u.depth == 0 and u.has_weights and "grad_norm" in u.values]


def trunk(result: SimulationResult) -> list[UnitStats]:
    """Top-level units with weights, without the readout: the final unit, or every unit that
    makes one of a model's several outputs. Units at the end the loss does not read (a second
    head returned beside the logits) are not part of the path to the loss."""
    units = weighted_units(result)
    while units and cut_off(units[-1]):
        units.pop()
    if any(u.readout for u in units):
        return [u for u in units if not u.readout]
    return units[:-1]


def reached_from(result: SimulationResult, name: str) -> set[str]:
    """Every unit the output of unit ``name`` reaches, following :attr:`SimulationResult.feeds` to
    the end (empty where it feeds none, or the simulation recorded no feeds: a spec's chain)."""
    seen: set[str] = set()
    stack = list(result.feeds.get(name, ()))
    while stack:
        unit = stack.pop()
        if unit not in seen:
            seen.add(unit)
            stack.extend(result.feeds.get(unit, ()))
    return seen


def towers(result: SimulationResult, units: list[UnitStats]) -> list[list[UnitStats]]:
    """``units`` (the trunk, in the order they ran) split by the paths through the network: one
    list per first unit, which no other unit of the trunk feeds (:attr:`SimulationResult.feeds`),
    holding it and every unit of the trunk its output reaches. A chain is one such list; DeepONet
    (a branch net and a trunk net, joined by a product) is two, each judged from its own first
    layer, where the order they ran in would read the trunk's 16 layers against the branch's
    first. The first list is the tower of the first unit that ran."""
    if not result.feeds or len(units) < 2 or any(u.name not in result.feeds for u in units):
        return [units]  # (a unit the loss does not reach: no gradient there is the finding, on one chain)
    reach = {u.name: reached_from(result, u.name) for u in units}
    firsts = [u for u in units if not any(u.name in reach[o.name] for o in units if o is not u)]
    # a layer reading the same thing for every sample (a learned query: Perceiver IO's output query,
    # DETR's object queries) starts no path from the data; its gradient comes only through the
    # attention it drives (msweep14: a false 839x vanishing from such a path)
    data = [u for u in firsts if not bool(np.any(u.values.get("constant_input", np.zeros(1)) == 1))]  # (seed 0 reads it)
    chosen = bool(data) and len(data) < len(firsts)
    if chosen:
        firsts = data
    # an attention's query and key projections (:attr:`SimulationResult.score_projections`) start no
    # path of their own beside the value projection fed the same input: their gradient comes through
    # the softmax's Jacobian and the 1/sqrt(d_k) scale, small by construction, not by depth
    # (onnxsweep28 qs_attention: a Keras MHA's key projection read as the first of "8 layers")
    scores = set(result.score_projections)
    values = [u for u in firsts if u.name not in scores]
    if values and len(values) < len(firsts):
        firsts, chosen = values, True
    if not chosen and len(firsts) < 2:
        return [units]
    return [[u for u in units if u is f or u.name in reach[f.name]] for f in firsts]


def chain_depth(result: SimulationResult, units: list[UnitStats]) -> int:
    """The number of layers along the longest path from the first of ``units`` (one chain, in the
    order they ran) to its last, following :attr:`SimulationResult.feeds`: parallel branches of one
    block (an attention's query, key and value projections, fed the same tensor and read by the
    same product) are one step, not one each (onnxsweep28 qs_attention: two attention blocks counted
    as "8 layers, 7 steps"). A stack of k recurrent layers counts k (:attr:`UnitStats.stacked`).
    Where the feeds do not join the two ends (a spec's chain records none), every unit counts."""
    plain = 1 + sum(u.stacked for u in units[1:])
    if len(units) < 2 or not result.feeds:
        return plain
    names = {u.name for u in units}
    stacked = {u.name: u.stacked for u in units}
    # the path may pass units without weights that are not in the chain (an activation module
    # applied to a layer's input that another branch reads too: a KAN layer's SiLU base path beside
    # its B-spline path), counting none of them: without them the feeds never joined the two ends
    # and every unit counted, a KAN layer's two branches as two layers (modsweep49 #6: 9 read as 16)
    passing = {u.name for u in result.units if not u.has_weights and u.name not in names}
    order = [u for u in result.units if u.name in names or u.name in passing]
    if not any(u.name == units[0].name for u in order):
        order = list(units)
    longest: dict[str, int] = {units[0].name: 1}
    for u in order:  # the order they ran in: a unit's feeders ran before it
        if u.name not in longest:
            continue
        for nxt in result.feeds.get(u.name, ()):
            if (nxt in names or nxt in passing) and nxt != units[0].name:
                longest[nxt] = max(longest.get(nxt, 0), longest[u.name] + stacked.get(nxt, 0))
    return longest.get(units[-1].name, plain)


def between_activations(result: SimulationResult, units: list[UnitStats]) -> list[str]:
    """The activations of units without weights that lie between two of ``units`` along
    :attr:`SimulationResult.feeds` (a KAN layer's SiLU on its input, read by its base path): the
    chain's own activation where its layers have none of theirs (modsweep49 #6: "these layers (no
    activation of their own)" of a KAN whose base path is SiLU)."""
    names = {u.name for u in units}
    by_name = {u.name: u for u in result.units}
    acts: set[str] = set()
    for u in units:
        for nxt in result.feeds.get(u.name, ()):
            v = by_name.get(nxt)
            if (v is not None and nxt not in names and not v.has_weights and v.activation not in (None, "identity")
                    and any(n in names for n in result.feeds.get(nxt, ()))):
                acts.add(str(v.activation))
    return sorted(acts)


def depth_ratio(result: SimulationResult) -> tuple[float, list[UnitStats]]:
    """||dL/dh_first|| / ||dL/dh_last|| over the trunk, geometric mean over seeds; over a network
    of several towers (:func:`towers`), the tower whose ratio is farthest from 1. A tower other than
    the first one's that no gradient reaches at all is not judged: a zero-initialised layer it feeds
    holds it at 0 by design (DiT's adaLN-Zero over its time embedding).

    The last unit is the last one any gradient reaches: units after it whose output gradient is
    exactly zero in every seed are switched off at initialisation by design (a squeeze-excitation
    gate inside a residual branch whose last norm scale starts at zero, timm's and torchvision's
    ``zero_init_last``), not the end of the depth; read as the end, 0 there was an infinite
    "explosion". A first unit with no gradient stays: no gradient reaching it is the finding; and
    when none reaches any unit of a trunk initialised to zero, the ratio is 0 from the first unit
    to the first one after the trunk that gets any."""
    def distance(ratio: float) -> float:  # |ln ratio|; no ratio (nan) is nearest, 0 farthest
        return abs(math.log(ratio)) if ratio > 0 and math.isfinite(ratio) else math.inf if ratio == 0 else -1.0

    paths = [main_path(result, path) for path in towers(result, trunk(result))]
    best = _chain_ratio(result, paths[0])
    for path in paths[1:]:
        ratio, units = _chain_ratio(result, path)
        if ratio > 0 and math.isfinite(ratio) and distance(ratio) > distance(best[0]):
            best = (ratio, units)
    return best


def main_path(result: SimulationResult, units: list[UnitStats]) -> list[UnitStats]:
    """``units`` (one tower of the trunk, in order) cut to the path of the loss's main term, where
    the loss reads several units with no unit between (:attr:`SimulationResult.loss_reads`: a main
    head and an auxiliary one, a loss of several terms) and this tower's first unit reaches more
    than one of them. Each head's path is the tower's units that reach it (the head itself left
    out: its gradient is its term's own); the main one is the path whose last unit gets the largest
    gradient. A layer that feeds only a term weighted by w gets w times the gradient it would get
    alone, so measured against the first layer, whose gradient the main term sets, a small weight
    reads as growth through depth: CapsNet's reconstruction decoder, weighted 0.0005, read as
    "grows 4.78e3x" on a healthy trunk (modsweep43 gram_caps_dim0). ``units`` unchanged otherwise."""
    if len(result.loss_reads) < 2 or len(units) < 2:
        return units
    first = units[0]
    reach = {u.name: reached_from(result, u.name) for u in units}
    paths: list[list[UnitStats]] = []
    for head in result.loss_reads:
        path = [u for u in units if u.name != head and head in reach[u.name]]
        if len(path) >= 2 and path[0] is first and path not in paths:
            paths.append(path)
    if len(paths) < 2:
        return units

    def end_gradient(path: list[UnitStats]) -> float:
        g = np.nan_to_num(path[-1].values["output_grad_norm"])
        return float(np.exp(np.mean(np.log(g)))) if np.all(g > 0) else 0.0

    return max(paths, key=end_gradient)


def _chain_ratio(result: SimulationResult, units: list[UnitStats]) -> tuple[float, list[UnitStats]]:
    """:func:`depth_ratio` of one chain of units."""
    if units and not any(np.any(u.values["output_grad_norm"] != 0) for u in units):
        # (a trained layer the gradient reaches: a frozen one, requires_grad False, has no grad_norm and
        # is not judged; nor named as the path's end: modsweep35 h08's GloVe table read "no gradient
        # reaches lstm from word_embeddings")
        after = [u for u in result.units if u.depth == 0 and u.has_weights and u not in units
                 and "grad_norm" in u.values
                 and np.any(np.nan_to_num(u.values.get("output_grad_norm", np.zeros(1))) != 0)]
        # No gradient reaches any layer of the trunk: its own weights are zero (zeros for every
        # layer: no gradient passes, nothing breaks the units' symmetry), or the layer the loss
        # reads it through has weights and still passes none back (an activation that is 0
        # everywhere, torch.where(h > 5, h, 0) at unit variance; every unit dead). A readout alone
        # at zero (DiT's final layer) lets the gradient through from the second step: not this.
        # The layer after is judged by its weights' size, not their spread: a readout whose weights
        # are all one nonzero value (Keras' Constant(0.1): spread 0) passes back the sum of the
        # loss's gradient over its outputs, 0 under a softmax, and holds the trunk at 0 as surely
        # as a zero one does not (peersweep21 nl_mix_bugs_3: the ratio 0/0 was skipped, and "no
        # gradient reaches" lost)
        if any(u.geo("weight_std") == 0 for u in units) or (after and _nonzero_weights(after[0])):
            return 0.0, units + after[:1]
    end = len(units)
    while end > 1 and not np.any(units[end - 1].values["output_grad_norm"] != 0):
        end -= 1
    units = units[:end]
    if len(units) < 2:
        return math.nan, units
    raw = _geo_ratio(units[0].values["output_grad_norm"], units[-1].values["output_grad_norm"])
    return raw * pooling_factor(result, units), units


def _nonzero_weights(unit: UnitStats) -> bool:
    """Whether ``unit``'s weights are not all zero in every seed (their root mean square, where
    measured; else their spread)."""
    if "weight_rms" in unit.values:
        return bool(np.any(np.nan_to_num(unit.values["weight_rms"]) > 0))
    return unit.geo("weight_std") > 0


def pooling_factor(result: SimulationResult, units: list[UnitStats]) -> float:
    """The product of sqrt(k) over the averaging units (:attr:`UnitStats.averaged`) between the
    first and the last of ``units`` (top-level units of a chain, in order): what the averages alone
    take off ||dL/dh|| between them. An average over k elements gives each input 1/k of its output's
    gradient, so the norm over k times as many elements is 1/sqrt(k) of it, exactly, though no
    weight's gradient is any smaller for it: with identity layers between 2x2 average pools the
    layer before a pool gets the very weight gradient of the layer after it. :func:`depth_ratio`
    multiplies the raw ratio by this (a sigmoid LeNet's two 2x2 pools: 4x of its raw 318x). 1 where
    none is (a max pool or a strided convolution routes each gradient, it does not spread it; a
    nearest-neighbour repeat sums its copies' gradients, which keeps the norm or grows it up to
    sqrt(k) as the copies' gradients are alike: no exact factor)."""
    if len(units) < 2:
        return 1.0
    order = {id(u): i for i, u in enumerate(result.units)}
    first, last = order.get(id(units[0])), order.get(id(units[-1]))
    if first is None or last is None:
        return 1.0
    factor = 1.0
    for u in result.units[first + 1:last]:
        if u.depth == 0 and u.averaged is not None and u.averaged > 1:
            factor *= math.sqrt(u.averaged)
    return factor


def fc_stretches(result: SimulationResult, *, equal_width: bool = True) -> list[list[UnitStats]]:
    """Runs of consecutive top-level fully-connected layers of one width with one pointwise
    activation and no norm: the chains mean-field theory predicts (``check.theory_report``);
    ``equal_width=False``: of any widths (an autoencoder's 100-30-100)."""
    weighted = [u for u in result.units if u.depth == 0 and u.has_weights]
    # a spec says each layer's norm; a module's graph marks the layers a norm reads (its plan is None)
    layer_of = {p.name: p.layer for p in result.plan.all_units()} if result.plan is not None else {}
    runs: list[list[UnitStats]] = []
    current: list[UnitStats] = []
    for u in weighted[:-1]:  # the readout is not part of any stretch
        normed = getattr(layer_of[u.name], "norm", None) is not None if layer_of else u.normalised
        ok = u.type == "linear" and u.activation in theory.ACTIVATIONS and not normed
        # a module's layers are a chain only where each feeds the next alone (no skip around it)
        chained = bool(layer_of) or bool(current) and result.feeds.get(current[-1].name) == [u.name]
        if ok and current and chained and current[-1].activation == u.activation and (
                current[-1].activation_params == u.activation_params) and (
                not equal_width or current[-1].fan_out == u.fan_out):
            current.append(u)
            continue
        if len(current) >= 2:
            runs.append(current)
        current = [u] if ok else []
    if len(current) >= 2:
        runs.append(current)
    return runs


#: A measured per-layer gain of ||dL/dh|| this large along an equal-width fully-connected chain is
#: no initialisation's: He keeps it at 1, Xavier on ReLU at 0.7, torch's default at 0.41; 2 is a
#: weight variance four times He's (a U(-1, 1) or N(0, 1) init of wide layers).
STEEP_LAYER_GAIN = 2.0


def activation_rms(unit: UnitStats) -> float:
    """The root mean square of ``unit``'s outputs (their mean counted), geometric over seeds: the
    forward signal mean-field theory propagates, since the next layer's pre-activation variance is
    sigma_w2 * E[phi(h)^2] (+ sigma_b2), the second moment, not the variance. Equal to the std for
    an activation centred at 0 (tanh, a linear layer); for a sigmoid, whose outputs sit near 0.5,
    the std says little: at weights far under the critical scale a sigmoid stack's std climbs from
    a narrow first layer towards the fixed point its mean of 0.5 sets (U(+-0.05) at width 20:
    0.003 -> 0.013 -> 0.015), which is no gain, while its RMS stays at 0.5 (peersweep20 dm49583466)."""
    mean, std = unit.values.get("activation_mean"), unit.values.get("activation_std")
    if mean is None or std is None:
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.asarray(mean, dtype=float) ** 2 + np.asarray(std, dtype=float) ** 2)
        logs = np.log(rms[np.isfinite(rms)])
    return float(np.exp(np.mean(logs))) if len(logs) else math.nan


def steep_stretch(result: SimulationResult) -> tuple[list[UnitStats], float, str] | None:
    """The fully-connected chain whose measured gain per layer is largest, with that gain and what
    grew ("gradient" or "activation"), when it is at least :data:`STEEP_LAYER_GAIN`: a shallow
    net's total growth stays under the through-depth bar however wrong its init (4 layers of
    U(-1, 1) weights at width 256: 6.7x per layer, 46x in all), over two layers or more. The
    gradient's ||dL/dh|| is compared along equal-width chains (a norm over more units is larger);
    the activations' root mean square along chains of any widths (:func:`activation_rms`, the second
    moment mean-field theory carries forward; He init keeps it whatever the widths: an autoencoder's
    100-30-100 at N(0, 1) grew it 5x per layer)."""
    best: tuple[list[UnitStats], float, str] | None = None
    # two gains or more: one layer's alone is a trained layer's as often as a wrong init's (a stored
    # 512-wide MLP: 3.9x between its two hidden layers, onnxsweep10 h07, labelled healthy)
    candidates: list[tuple[list[UnitStats], str, str]] = [(run, "output_grad_norm", "gradient")
                                                          for run in fc_stretches(result) if len(run) >= 3]
    candidates += [(run, "activation_std", "activation") for run in fc_stretches(result, equal_width=False)
                   if len(run) >= 3]
    for run, metric, what in candidates:
        first, last = ((activation_rms(run[0]), activation_rms(run[-1])) if what == "activation"
                       else (run[0].geo(metric), run[-1].geo(metric)))
        if not (first > 0 and last > 0 and math.isfinite(first) and math.isfinite(last)):
            continue
        grown = first / last if what == "gradient" else last / first
        gain = grown ** (1.0 / (len(run) - 1))
        if gain >= STEEP_LAYER_GAIN and (best is None or gain > best[1]):
            best = (run, gain, what)
    return best


#: The per-layer factor under which a signal counts as collapsing, backwards (||dL/dh||) and
#: forwards (the signal's RMS) alike: 1/sqrt(8) = 0.354, the gain of weights with under 1/8 of the
#: critical variance (DOMAIN: gain per layer). No usual init is that small: torch's default
#: U(+-1/sqrt(fan_in)) on ReLU gives 1/sqrt(6) = 0.41, Xavier 0.7, He and LeCun 1; a trained net's
#: weights scaled by 0.05 give about 0.1, a 2-2-1 net at U(+-0.05) about 0.02.
COLLAPSE_LAYER_GAIN = 8 ** -0.5


@dataclass(frozen=True)
class Collapse:
    """The forward and backward signal falling together through ``units`` (the first weighted layer
    to the readout): ``backward`` is ||dL/dh_first|| / ||dL/dh_readout|| over ``len(units) - 1``
    layers, ``forward`` the readout's output std over the first layer's input RMS over
    ``len(units)`` layers, each with its factor per layer."""

    units: list[UnitStats]
    backward: float
    forward: float
    backward_per_layer: float
    forward_per_layer: float


def chain_signals(result: SimulationResult) -> tuple[list[UnitStats], float, float] | None:
    """(the chain, ||dL/dh_first|| / ||dL/dh_readout||, the readout's output std over the first
    layer's input RMS) of a plain chain of weighted layers: one tower of two layers or more, one
    readout after it, no norm (a norm restores the forward scale); None otherwise, or where a figure
    is not measured (no gradient at all: other findings'). Unlike :func:`depth_ratio` it counts the
    readout's layer and the input: the signals' whole way through a shallow net."""
    units = trunk(result)
    weighted = weighted_units(result)
    readouts = [u for u in weighted if u not in units]
    if len(units) < 2 or len(readouts) != 1 or weighted[-1] is not readouts[0] or len(towers(result, units)) != 1:
        return None
    chain = units + readouts
    if any(u.normalised for u in chain):
        return None
    first_in = math.sqrt(chain[0].geo("input_mean_square"))
    out_std = chain[-1].geo("activation_std")
    g_first, g_last = chain[0].geo("output_grad_norm"), chain[-1].geo("output_grad_norm")
    if not all(v > 0 and math.isfinite(v) for v in (first_in, out_std, g_first, g_last)):
        return None
    return chain, g_first / g_last, out_std / first_in


def signal_collapse(result: SimulationResult, total: float) -> Collapse | None:
    """The :class:`Collapse` of a plain chain of weighted layers (one tower, one readout, two gains
    or more back to the first layer) where both directions fall under ``total`` in all and under
    :data:`COLLAPSE_LAYER_GAIN` per layer; None otherwise. Weights uniformly too small shrink both
    directions alike, so the weight gradients (a_{l-1} x delta_l, about s^(L-1) in every layer) stay
    balanced across depth and the trunk's first/last ratio, which leaves the readout out, can stay
    over the bar (onnxsweep17 u03: a trained policy's weights x0.05, ||dL/dh|| 0.359 -> 0.000152
    over 4 layers; peersweep10 u06: a 2-2-1 ReLU net at U(+-0.05), output std 5.6e-6). A trained
    regressor whose readout alone is small (its output scale learned) has one such gain, not two."""
    signals = chain_signals(result)
    if signals is None:
        return None
    chain, backward, forward = signals
    units = chain[:-1]
    first_in = math.sqrt(chain[0].geo("input_mean_square"))
    per_back, per_fwd = backward ** (1 / (len(chain) - 1)), forward ** (1 / len(chain))
    # the trunk alone must collapse too: a policy head initialised at gain 0.01 (PPO's actor) makes
    # both totals small through one layer, over a trunk whose gains are 1
    trunk_std = units[-1].geo("activation_std")
    per_trunk = (trunk_std / first_in) ** (1 / len(units)) if trunk_std > 0 else 0.0
    if (backward < total and forward < total and per_back < COLLAPSE_LAYER_GAIN and per_fwd < COLLAPSE_LAYER_GAIN
            and per_trunk < COLLAPSE_LAYER_GAIN):
        return Collapse(chain, backward, forward, per_back, per_fwd)
    return None


def stretch_scale(run: list[UnitStats]) -> float:
    """The per-layer gain the stretch's weights give by their scale alone, were they drawn i.i.d.:
    the geometric mean over its layers of :func:`scale_gain`; nan where it cannot be told. Random
    weights multiply ||dL/dh|| per layer by about this (U(-1, 1) at width 256 under ReLU: 6.5,
    measured 6.7). A measured gain of 2 or more over weights at or below the critical scale is no
    scale's: it is structure the weights learned (a trained layer's top singular directions aligned
    with the next layer's), as a trained checkpoint's are (onnxsweep14 h06: 2.46x per layer at 0.52x
    He's scale, a 5-layer ReLU MLP at 93% on MNIST; onnxsweep17 h09: a trained ML-Agents policy's
    swish stack, 2.26x per layer at 0.89x the scale that keeps a swish's signal)."""
    gains = [scale_gain(u) for u in run]
    if not gains or not all(g > 0 and math.isfinite(g) for g in gains):
        return math.nan
    return math.exp(sum(math.log(g) for g in gains) / len(gains))


@functools.lru_cache(maxsize=64)
def _keeping_variance(name: str, params: tuple[tuple[str, float], ...]) -> float | None:
    """sigma_w2 that keeps the signal's scale through a layer of activation ``name``: the critical
    one of mean-field theory (:func:`theory.critical_sigma_w2`: He's 2 for ReLU, 1 for tanh and
    identity); for an unbounded activation that has none (swish/silu, gelu: their chi1 jumps past 1),
    the one keeping a unit-variance input's second moment, 1 / E[phi(z)^2] (2.81 for silu, 2.35
    for gelu; ReLU's 2 again). None where neither is defined."""
    kwargs = dict(params)
    critical = theory.critical_sigma_w2(name, **kwargs)
    if critical is None and name not in theory.SATURATING:
        moment = theory.q_map(name, 1.0, 1.0, 0.0, **kwargs)
        critical = 1.0 / moment if moment > 0 and math.isfinite(moment) else None
    return critical


def scale_gain(unit: UnitStats, *, rms: bool = False) -> float:
    """The gain one layer's weights give the signal by their scale alone, were they drawn i.i.d.:
    sqrt(fan_in * std(W)^2 / sigma_w2*), sigma_w2* the variance that keeps the signal's scale
    through its activation (:func:`_keeping_variance`; a layer without one, a linear output, at 1);
    nan where it cannot be told (no fan-in or weights measured, an activation outside the theory).
    Mean-field theory predicts both directions from it for random weights: the forward's per-element
    std and ||dL/dh|| change by about this per layer. A trained layer's growth beyond it is
    structure, not scale: a kernel whose weights have a positive mean (iDeepLC's convs, each summing
    to about +4.7) multiplies the positive mean of its ReLU inputs by that sum. ``rms``: the weights'
    root mean square in place of their std, the scale a layer's weights give with their mean counted
    (an all-positive U(0, 1) init: std 0.29, RMS 0.58; equal where the mean is 0)."""
    std = unit.geo("weight_rms") if rms and "weight_rms" in unit.values else unit.geo("weight_std")
    name = unit.activation or "identity"
    if not (unit.fan_in and std > 0 and math.isfinite(std)) or name not in theory.ACTIVATIONS:
        return math.nan
    params = theory.activation_parameters(name, unit.activation_params)
    critical = _keeping_variance(name, tuple(sorted(params.items())))
    if not critical:
        return math.nan
    return math.sqrt(unit.fan_in * std * std / critical)


def scale_growth(units: list[UnitStats], *, rms: bool = False) -> float:
    """The product of :func:`scale_gain` over ``units``: the growth random weights of their scales
    give the signal through them; nan where one layer's cannot be told, or a norm rescales the
    signal (a normalised layer's output ignores its weights' scale)."""
    total = 1.0
    for u in units:
        gain = scale_gain(u, rms=rms)
        if u.normalised or not (gain > 0 and math.isfinite(gain)):
            return math.nan
        total *= gain
    return total


#: The factor in std over the scale that keeps a layer's signal (:func:`scale_gain`: He's for the
#: ReLU family, LeCun's for tanh, sigmoid and a linear output) from which a layer's init counts as
#: too large: 9x the variance. Usual inits give 1 (He, LeCun), 0.41-0.7 (torch's default, Xavier
#: on ReLU); N(0, 1) weights give sqrt(fan_in / 2) under ReLU, 3.4 at fan-in 23 and 11 at 256.
OVERSIZED_LAYER_GAIN = 3.0


@dataclass(frozen=True)
class Blowup:
    """The forward and backward signal growing together through ``units`` (the first weighted layer
    to the readout) as the weights' scale makes them: ``backward`` and ``forward`` as
    :class:`Collapse`'s, ``gains`` each layer's :func:`scale_gain` and ``predicted`` their product,
    ``oversized`` the layers at :data:`OVERSIZED_LAYER_GAIN` or more."""

    units: list[UnitStats]
    backward: float
    forward: float
    gains: list[float]
    predicted: float
    oversized: list[UnitStats]

    @property
    def backward_per_layer(self) -> float:
        return self.backward ** (1 / (len(self.units) - 1))

    @property
    def forward_per_layer(self) -> float:
        return self.forward ** (1 / len(self.units))


def signal_blowup(result: SimulationResult, total: float) -> Blowup | None:
    """The :class:`Blowup` of a plain chain (:func:`chain_signals`) whose weights are too large for
    their activation on most of its layers (two or more at :data:`OVERSIZED_LAYER_GAIN` times the
    scale that keeps the signal), whose scales together predict a growth over ``total``, and where
    the measured growth confirms it: both directions grow over ``total`` from the input to the
    readout. None otherwise. The trunk's first/last ratio leaves the readout out, so over two
    hidden layers it is one layer's gain, and a shallow net stays under the through-depth bar however
    wrong its init (modsweep37 u02: SAC's 23-256-256-1 ReLU critic at N(0, 1), 11x over its hidden
    layers, 173x from the readout back to the first layer and 430x forward, its output std 391).
    Weights whose scale does not predict the growth (a trained net's learned structure) are not
    this: the scales must give it."""
    signals = chain_signals(result)
    if signals is None:
        return None
    chain, backward, forward = signals
    gains = [scale_gain(u) for u in chain]
    if not all(g > 0 and math.isfinite(g) for g in gains):
        return None
    predicted = math.prod(gains)
    oversized = [u for u, g in zip(chain, gains, strict=True) if g >= OVERSIZED_LAYER_GAIN]
    if len(oversized) < 2 or 2 * len(oversized) <= len(chain):
        return None
    if not (predicted > total and backward > total and forward > total):
        return None
    return Blowup(chain, backward, forward, gains, predicted, oversized)


def activation_span(result: SimulationResult) -> list[UnitStats]:
    """The layers :func:`activation_growth` compares, first to last (the trunk: whatever gradient
    reaches them, since the forward grows the same whether or not one does)."""
    return trunk(result)


def activation_growth(result: SimulationResult) -> float:
    """std of the last hidden layer's output over the first's (forward explosion), over
    :func:`activation_span`."""
    units = activation_span(result)
    if len(units) < 2:
        return math.nan
    # a first layer whose every output is 0 (all its units dead) has no scale to grow from: its
    # seeds give no ratio (not an infinite growth: dead_units says what is wrong there)
    first = units[0].values["activation_std"]
    return _geo_ratio(units[-1].values["activation_std"], np.where(first > 0, first, np.nan))


def forward_growth(result: SimulationResult) -> float:
    """:func:`activation_growth` as growth through depth: nan where every layer of the span has its
    output taken by a norm (``normalised``, not a Pre-LN stream's share). Each such layer's output
    scale is divided out before anything reads it, so the next layer reads unit-scale inputs and
    the ratio of the last layer's std to the first's is a ratio of two single layers' gains, not a
    signal compounding with depth: a constant 0.01 init behind BatchNorm gives pre-norm stds of
    0.021 at the first conv (27 inputs in [0, 1]) and about 0.01 x fan_in at each later one (its
    channels copies of one another), a "338x growth" that no layer ever sees."""
    units = activation_span(result)
    if units and all(u.normalised and not u.stream for u in units):
        return math.nan
    return activation_growth(result)


def grown_units(result: SimulationResult, factor: float) -> list[UnitStats]:
    """The trunk units whose ||dL/dh|| is over ``factor`` times the last trunk unit's: the layers a
    gradient growing backwards has reached by then (empty when it does not grow that much)."""
    units = trunk(result)
    if len(units) < 2:
        return []
    last = units[-1].geo("output_grad_norm")
    if not last > 0:
        return []
    return [u for u in units[:-1] if u.geo("output_grad_norm") > factor * last]


def absorbed_by_normalisation(result: SimulationResult, t: Thresholds) -> bool:
    """The through-depth gradient growth is past the warning threshold only at normalised layers.

    A layer whose output a batch/layer/group norm takes directly is scale-invariant: its output
    ignores the scale of its weights, its gradient is orthogonal to them and shrinks as 1/||W||.
    A large gradient there grows ||W|| and so shrinks its own effective step (Arora, Li & Lyu
    2019, auto rate-tuning by batch normalisation), which is why normalised nets train through the
    growth a batch norm itself causes at init (Yang et al. 2019: about sqrt(pi/(pi-1)) = 1.21 per
    plain BN-ReLU layer; ResNet-50 shows about 200x over its trunk). Past ``exploding_error`` the
    weights' norms grow so fast that the early layers' steps all but stop: still an error.

    A norm layer of its own (a spec's ``batchnorm`` or ``layernorm`` after a layer's activation, Keras'
    ``BatchNormalization()``) counts as the norm it is: its output is where a layer with the norm on
    its pre-activation is read, and the layer it reads is marked normalised
    (:func:`gradhealth.analysis.plan.read_by_norms`). A growth concentrated at a norm's input (its
    backward divides by its input's std over the batch: small where a ReLU of inputs in [0, 1] leaves
    a channel mostly off) is then that scale invariance, not growth through depth.
    """
    grown = grown_units(result, t.exploding_warning)
    return bool(grown) and all(u.normalised or u.type in NORM_LAYER_TYPES for u in grown) \
        and any(u.normalised for u in grown)


#: The types of a spec's norm layers of their own (``analysis.spec.NormLayer``).
NORM_LAYER_TYPES = frozenset({"batchnorm", "layernorm"})


def binomial_tail_half(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): exact up to n = 2000, then the normal approximation
    with continuity correction (off by under 1e-3 there)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if n <= 2000:
        return sum(math.comb(n, i) for i in range(k, n + 1)) / (1 << n)
    z = (k - 0.5 - n / 2) / math.sqrt(n / 4)
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Reach:
    """How far back a bidirectional layer's two directions together carry the gradient: each
    input position is reached by the direction that carries more to it; ``ratio`` is that at the
    worst-reached ``position`` (of ``length``), ``steps`` the path length there plus 2 (as
    :func:`time_ratios` counts T), ``forward`` whether the forward direction reaches it."""

    ratio: float
    steps: int
    position: int
    length: int
    forward: bool


def bidirectional_reach(result: SimulationResult) -> dict[tuple[str, int], Reach]:
    """:class:`Reach` per bidirectional layer (keyed by its forward sublayer) whose two directions
    are both read at their ends (Keras' Bidirectional without sequences, a pooled readout): the
    first input position is where the backward direction's path starts, so the forward
    direction's ratio from its last step back to step 0 is not how little reaches any input; the
    middle of the sequence, about T/2 from either end, is the worst reached."""
    out: dict[tuple[str, int], Reach] = {}
    by_key = {(ts.layer, ts.sublayer): ts for ts in result.time_series}
    for ts in result.time_series:
        back = by_key.get((ts.layer, ts.sublayer + 1))
        if ts.reverse or back is None or not back.reverse:
            continue
        fwd, bwd = judged_norms(ts), judged_norms(back)
        length = fwd.shape[1]
        if length < 4 or bwd.shape[1] != length or not (np.any(fwd[:, -2] != 0) and np.any(bwd[:, -2] != 0)):
            continue  # a direction with no path through the recurrence (read at the other end)
        # input position p: the forward direction carries it from step T-2, the backward one (which
        # runs T-1 .. 0) from its own step T-2, that is from position 1
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.mean(np.log(fwd[:, :-1]), axis=0) - np.mean(np.log(fwd[:, -2]))
            b = (np.mean(np.log(bwd[:, :-1]), axis=0) - np.mean(np.log(bwd[:, -2])))[::-1]
        reach = np.fmax(f[1:], b[:-1])  # positions 1 .. T-2, where both are defined
        if np.all(np.isnan(reach)):
            continue
        i = int(np.nanargmin(reach))
        position = i + 1
        forward = bool(f[position] >= b[i])
        path = (length - 2 - position) if forward else (position - 1)
        out[(ts.layer, ts.sublayer)] = Reach(float(np.exp(reach[i])), path + 2, position, length, forward)
    return out


def time_ratios(result: SimulationResult, reach: bool = False) -> list[tuple[str, int, float, int]]:
    """(layer, sublayer, ||dL/dh_0|| / ||dL/dh_{T-2}||, T) for every recurrent (sub)layer.

    Steps at the end that get exactly no gradient in any seed are not part of the path through
    time (a bidirectional layer read at its last position: the backward direction's steps after
    its first one feed nothing the loss reads); the ratio ends at the last step that gets some, and
    T is counted to it. A layer with fewer than three such steps has no path to judge. With
    ``reach``, a bidirectional layer whose directions are both read at their ends is one entry
    (its forward sublayer's), the worst-reached input position's (:func:`bidirectional_reach`):
    what a vanishing gradient denies the layer's inputs."""
    joined = bidirectional_reach(result) if reach else {}
    out = []
    for ts in result.time_series:
        if (r := joined.get((ts.layer, ts.sublayer))) is not None:
            out.append((ts.layer, ts.sublayer, r.ratio, r.steps))
            continue
        if ts.reverse and (ts.layer, ts.sublayer - 1) in joined:
            continue
        norms = judged_norms(ts)
        steps = norms.shape[1]
        end = steps - 2
        while end > 0 and not np.any(norms[:, end] != 0):
            end -= 1
        if end < 1:
            if steps >= 3 and np.any(norms[:, -1] != 0) and not np.any(norms[:, :-1] != 0):
                # the last step has a gradient and no step before it any: nothing passes back
                # through the recurrence (recurrent weights of 0: an LSTM's cell alone remembers)
                out.append((ts.layer, ts.sublayer, 0.0, steps))
            continue
        out.append((ts.layer, ts.sublayer, _geo_ratio(norms[:, 0], norms[:, end]), end + 2))
    return out


#: The smallest normal number of each precision a simulation runs in (bfloat16 has float32's range).
_SMALLEST_NORMAL = {"float64": float(np.finfo(np.float64).tiny), "float32": float(np.finfo(np.float32).tiny),
                    "bfloat16": float(np.finfo(np.float32).tiny), "float16": float(np.finfo(np.float16).tiny)}


def factor_before_underflow(ts: TimeSeries, steps: int, dtype: str) -> tuple[float, int, int] | None:
    """(per-step factor, first step, last step) of the judged gradient over the steps before it
    underflows: from step ``steps - 2`` back to the earliest step at which every seed's norm is
    still a normal number of ``dtype`` (a gradient that reaches no step 0 still shrank at a
    measurable rate until then); None where fewer than two such steps remain."""
    norms = judged_norms(ts)
    end = min(steps - 2, norms.shape[1] - 1)
    tiny = _SMALLEST_NORMAL.get(dtype, _SMALLEST_NORMAL["float64"])
    ok = np.all(norms >= tiny, axis=0) & np.all(np.isfinite(norms), axis=0)
    if end < 1 or not ok[end]:
        return None
    first = end
    while first > 0 and ok[first - 1]:
        first -= 1
    if first >= end:
        return None
    ratio = _geo_ratio(norms[:, first], norms[:, end])
    if not (ratio > 0 and math.isfinite(ratio)):
        return None
    return ratio ** (1 / (end - first)), first, end


def judged_norms(ts: TimeSeries) -> np.ndarray:
    """``[seed, t]`` norms the through-time findings judge: the last step's gradient carried back
    through the layer's own recurrence (``ts.carried``), where every seed's loss reads the last
    step; else dL/dh_t. The two agree where the loss reads only the last step."""
    if ts.carried is not None and bool(np.all(ts.carried[:, -1] > 0)):
        return ts.carried
    return ts.norms


def carried_apart(ts: TimeSeries) -> bool:
    """Whether the judged norms differ from dL/dh_t: the loss (or a layer above) reads the layer
    at more steps than its last, so dL/dh_t is not what its recurrence carries."""
    norms = judged_norms(ts)
    return norms is not ts.norms and not np.allclose(norms[:, :-1], ts.norms[:, :-1], rtol=1e-6, atol=0)


#: dL/dh_t at or above this share of its largest step counts as read by the loss directly: where
#: the loss reads a layer at some steps only, dL/dh_t is about flat over them (each gets its own
#: gradient) and falls by the recurrence's own factor before the first (onnxsweep11: a Keras
#: forecaster reads the last 30 of 120 steps, dL/dh_t steps up 3x at step 90 and falls 0.84 a step
#: before it)
READ_SHARE = 1 / math.e


def unread_stretch(ts: TimeSeries) -> tuple[int, float] | None:
    """(the earliest step the loss reads directly, dL/dh_0 over the largest dL/dh_t) for a layer
    the loss reads at more steps than its last (:func:`carried_apart`); None where its dL/dh_t has
    no positive, finite largest step. Steps before that one learn only from what the recurrence
    carries back to them, so over that stretch "read often" does not hold: the steps are not read."""
    with np.errstate(divide="ignore", invalid="ignore"):
        geo = ts.geo()
    if geo.size < 3 or not np.all(np.isfinite(geo)):
        return None
    peak = float(np.max(geo))
    if not peak > 0:
        return None
    first = int(np.argmax(geo >= peak * READ_SHARE))
    return first, float(geo[0] / peak)


def post_ln_stacks(result: SimulationResult, thresholds: Thresholds) -> list[UnitStats]:
    """The units of every Post-LN Transformer stack at least ``post_ln_depth`` layers deep: a spec's
    ``transformer_encoder`` layers, or a live module's ``nn.TransformerEncoderLayer`` /
    ``DecoderLayer`` with ``norm_first=False`` (one unit per layer, ``result.post_ln``)."""
    if result.plan is None:
        named = {u.name: u for u in result.units}
        return [named[n] for stack in result.post_ln if len(stack) >= thresholds.post_ln_depth
                for n in stack if n in named]
    layer_at = {p.pointer: p.layer for p in result.plan.all_units()}
    # consecutive Post-LN layers make one stack whatever the entries that list them: [enc x3, enc x3]
    # is the 6-layer stack {num_layers: 6} is (spec sweep 7); any other unit between them ends it
    deep: list[UnitStats] = []
    stack: list[UnitStats] = []
    for u in [*result.units, None]:
        layer = layer_at.get(u.pointer) if u is not None else None
        if u is not None and u.type == "transformer_encoder" and isinstance(layer, S.TransformerEncoderLayer) \
                and not layer.norm_first:
            stack.append(u)
            continue
        if len(stack) >= thresholds.post_ln_depth:
            deep.extend(stack)
        stack = []
    return deep


def fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def layer_words(unit: Any) -> str:
    """A unit's name as a finding's text says it: a live module's child named by its bare index
    in an ``nn.Sequential`` (``8``) with its class, ``8 (Linear)``, or ``layer 8`` where the class
    is not known, so a reader sees a layer and not a number; any other name (and anything that is
    not a unit, which has a ``name`` too) as it is. The document's ``name`` fields stay the name."""
    name = str(unit.name)
    if not isinstance(unit, UnitStats) or not name.isdigit():
        return name
    return f"{name} ({unit.module_class})" if unit.module_class else f"layer {name}"


def layer_activations(units: list[UnitStats]) -> str:
    # a separate activation layer after a layer without one (Keras' Dense(128) then
    # Activation('relu')) is named as the layer's own, as a live module's folded activation is
    acts = sorted({(u.activation if u.activation not in (None, "identity") else u.then_activation) or "identity"
                   for u in units})
    return "/".join(acts)


#: A starved middle (:func:`starved_middle`) is judged only where at least this many weighted layers
#: in a row along the paths (:attr:`SimulationResult.feeds`) are under the warning level: the
#: gradient shrinking layer after layer, as depth does it. One layer alone small is an operation's
#: (an attention's query and key behind its softmax), two a branch's under a small scale (a layer
#: scale's fc1 -> fc2), not depth's.
STARVED_STRETCH = 3


@dataclass(frozen=True)
class Starved:
    """The least-reached layer in the middle of a trunk whose ends a skip path joins
    (:func:`starved_middle`): ``ratio`` is its ||dL/dh|| over the last layer's, ``stretch`` the
    longest run of layers under the warning level through it, in forward order, ``first`` and
    ``last`` the trunk's ends (``first_ratio`` the first's share, which the skips keep healthy)."""

    ratio: float
    unit: UnitStats
    stretch: list[UnitStats]
    first: UnitStats
    last: UnitStats
    first_ratio: float


#: The share of the last layer's gradient under which a layer counts as starved for
#: :data:`STARVED_STRETCH`: the default ``vanishing_warning`` (the finding's severity follows the
#: thresholds in force)
STARVED_LEVEL = 1e-2


def starved_middle(result: SimulationResult, warning: float = STARVED_LEVEL) -> Starved | None:
    """The layer in the middle of the trunk that the gradient barely reaches, where skip paths
    around it keep both ends healthy: a U-Net's encoder and decoder meet at the bottleneck, and the
    first and last layers sit on the short skip between them (inc -> up4 -> outc), so the ratio of
    the ends (:func:`depth_ratio`) reads two healthy layers and misses the middle. Without batch
    norm, torch's default init gives each conv + ReLU a gain of about sqrt(1/6) = 0.41, and the
    bottleneck of milesial's U-Net gets 1.3e-6 of the last layer's gradient (modsweep31 u04) while
    its first gets 0.045.

    Judged over the trunk's tower that :func:`depth_ratio` judges, on a module's or graph's paths
    (a spec is one chain, whose first layer is its least reached); a layer counts where some path
    from the first layer to the last goes around it (on a chain, the first layer's ratio is the
    finding's), its gradient is nonzero in every seed (an exact 0 is a cut, a dead layer or a
    designed zero init, judged as such), it is no gate (its smallness is the gate's sigmoid) and no
    norm, and it lies in a run of :data:`STARVED_STRETCH` or more layers in a row under
    ``warning``. None where no layer is under ``warning``."""
    if not result.feeds:
        return None
    _, chain = depth_ratio(result)
    if len(chain) < STARVED_STRETCH + 2 or any(u.name not in result.feeds for u in chain):
        return None
    first, last = chain[0], chain[-1]
    end = last.geo("output_grad_norm")
    if not (end > 0 and math.isfinite(end)):
        return None
    # gates (small by their sigmoid) and attention's query and key projections (small by the
    # softmax's Jacobian: modsweep33 h10, a Post-LN Transformer's decoder queries) are no depth
    skip = set(result.gates) | set(result.gate_drivers) | set(result.score_projections)

    def share(u: UnitStats) -> float:
        return u.geo("output_grad_norm") / end

    # a layer called many times per forward (a neural ODE's function at every solver stage, its
    # output scaled by dt/6 in rk4) is measured at one call, whose gradient is a small share of what
    # its weights get over all calls (modsweep38 u06: 2e-4x one call, 0.3x the weights): no depth
    repeated = {u.name for u in result.units if np.any(u.values.get("calls_per_forward", np.zeros(1)) > 1)}
    starved = {u.name: u for u in chain[1:-1]
               if u.name not in skip and u.name not in repeated and "norm" not in u.type and not cut_off(u)
               and bool(np.all(u.values["output_grad_norm"] > 0)) and share(u) < warning}
    if not starved:
        return None
    # the longest run of starved layers through each, along the feeds (memoised both ways)
    after: dict[str, list[str]] = {}
    before: dict[str, list[str]] = {}

    def longest(name: str, edges: dict[str, list[str]], memo: dict[str, list[str]], seen: frozenset[str]) -> list[str]:
        if name in memo:
            return memo[name]
        best: list[str] = []
        for nxt in edges.get(name, ()):
            if nxt in starved and nxt not in seen:
                run = longest(nxt, edges, memo, seen | {nxt})
                if len(run) > len(best):
                    best = run
        memo[name] = [name, *best]
        return memo[name]

    forward = {n: [m for m in result.feeds.get(n, ()) if m in starved] for n in starved}
    backward: dict[str, list[str]] = {n: [] for n in starved}
    for n, nxts in forward.items():
        for m in nxts:
            backward[m].append(n)
    order = {u.name: i for i, u in enumerate(chain)}
    for name in sorted(starved, key=lambda n: share(starved[n])):
        down = longest(name, forward, after, frozenset({name}))
        up = longest(name, backward, before, frozenset({name}))
        run = [*reversed(up[1:]), *down]
        if len(run) < STARVED_STRETCH or not _bypassed(result, first.name, last.name, name):
            continue
        stretch = [starved[n] for n in sorted(set(run), key=order.__getitem__)]
        unit = starved[name]
        return Starved(share(unit), unit, stretch, first, last, share(first))
    return None


def _bypassed(result: SimulationResult, start: str, end: str, avoid: str) -> bool:
    """Whether some path along the feeds leads from ``start`` to ``end`` without ``avoid``."""
    seen = {start, avoid}
    stack = [start]
    while stack:
        for nxt in result.feeds.get(stack.pop(), ()):
            if nxt == end:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False
