"""The architecture check's part of each finding rule: measure, assess, describe, remedies.

One :class:`ArchitectureRule` per finding code the simulation can show. Each is attached to its
code's :class:`gradhealth.core.rules.FindingRule` when this module is imported; the check reads
the registry, never a code string.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradhealth.analysis import spec as S
from gradhealth.analysis.activations import BOUNDED, MEASURED_SATURATING, canonical
from gradhealth.analysis.figures import SAMPLE_SPREAD
from gradhealth.analysis.findings import (
    COLLAPSE_LAYER_GAIN,
    OVERSIZED_LAYER_GAIN,
    STEEP_LAYER_GAIN,
    Blowup,
    Detection,
    Starved,
    absorbed_by_normalisation,
    activation_growth,
    activation_span,
    between_activations,
    bidirectional_reach,
    binomial_tail_half,
    carried_apart,
    chain_depth,
    chain_signals,
    cut_off,
    depth_ratio,
    factor_before_underflow,
    fmt,
    forward_growth,
    layer_activations,
    layer_words,
    pooling_factor,
    post_ln_stacks,
    reached_from,
    scale_gain,
    scale_growth,
    signal_blowup,
    signal_collapse,
    starved_middle,
    steep_stretch,
    stretch_scale,
    time_ratios,
    towers,
    trunk,
    unread_stretch,
    weighted_units,
)
from gradhealth.analysis.losses import (
    BOUNDS,
    OUTPUT_RANGES,
    REGRESSION,
    activation_image,
    output_range,
    unreachable_fraction,
    unreachable_target_fraction,
)
from gradhealth.analysis.remedies import (
    CHRONO_MIN_STEPS,
    FAR_INPUT_RMS,
    FAR_TARGET_SCALE,
    Builder,
    Context,
    batch_norms_named,
    binary_loss,
    bounded_cells,
    clipping,
    decay,
    exponential_swap,
    gated_cells,
    init_remedies,
    input_normalisation,
    larger_learning_rate,
    learning_rate,
    linear_output,
    logits_loss,
    names_of,
    normalisation,
    orthogonal,
    per_sample_norm,
    positive_rate,
    pre_layer_norm,
    relu_family,
    residual,
    scaled_residual,
    sigmoid_multilabel_output,
    smaller_learning_rate,
    smaller_weight_decay,
    xavier_for_saturating,
    zero_biases,
)
from gradhealth.analysis.sharpness import (
    StepProbe,
    clip_bound,
    lr_times_sharpness,
    stability_bound,
    stable_rate,
)
from gradhealth.analysis.simulate import (
    ADAGRAD_WARM_STEPS,
    BORN_DEAD_RISK,
    MIN_DEAD_BATCH,
    PROBABILITY_LOSSES,
    SimulationResult,
    UnitStats,
    adadelta_rho,
    death_chance,
    saturated_step,
    select_seeds,
)
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core import remedies as R
from gradhealth.core.document import SEVERITY_RANK, Remedy
from gradhealth.core.rules import implement_architecture, rule, rules, worst_first


def _batchnorm(c: Context) -> list[Remedy]:
    return normalisation(c, "batchnorm")


def _layernorm(c: Context) -> list[Remedy]:
    return normalisation(c, "layernorm")


def _leaky_relu(c: Context) -> list[Remedy]:
    return relu_family(c, "leaky_relu")


#: The warm-up a deep Post-LN stack is offered (Xiong et al. 2020's BERT recipe trains with 4,000 to
#: 10,000 steps), and the shortest declared one that counts: a warm-up of a few steps is over before
#: the stack's large last-layer gradients have settled.
POST_LN_WARMUP_STEPS = 4000
POST_LN_MIN_WARMUP = 1000


def _warmup(c: Context) -> list[Remedy]:
    # never a warm-up shorter than the one declared (specsweep13: 4,000 offered beside a declared 10,000)
    opt = c.result.optimizer
    declared = opt.warmup_steps if opt is not None else 0
    steps = 0 if declared >= POST_LN_WARMUP_STEPS else POST_LN_WARMUP_STEPS
    step = c.detection.evidence.get("max_update_ratio")
    if (opt is not None and c.detection.evidence.get("depth", 0) > POST_LN_WARMUP_DEPTH and step is not None
            and step * R.LOWER_LR_FACTOR > POST_LN_DEEP_WARM_STEP):
        # deeper than warm-up alone trains: a peak rate whose step is half BERT-large's bar (specsweep12 u11)
        factor = 0.5 * POST_LN_DEEP_WARM_STEP / step
        return [R.lower_learning_rate(factor, warmup_steps=steps, learning_rate=opt.lr,
                                      why=f"a peak step of {POST_LN_DEEP_WARM_STEP:g} of the weights or less, "
                                          f"as BERT-large's 24 Post-LN layers train at 1e-4")]
    if not steps:
        return []
    return learning_rate(c, warmup_steps=steps)


#: The std of N(0, 1) cut at +-2 (torch's trunc_normal_ at 2 std, as ``truncated_normal`` draws).
_TRUNCATED_STD = 0.87962566103423978


def init_variance(init: S.InitSpec, fan_in: int, fan_out: int, activation: str | None,
                  slope: float = 0.01) -> float | None:
    """Var(W) that ``init`` gives a weight of these fans (as ``model.init_weight`` draws it); None
    where it depends on more than that (PyTorch's own default, which differs by layer type)."""
    scheme, gain = init.scheme, init.gain
    if scheme == "zeros":
        return 0.0
    if scheme == "normal" and init.std is not None:
        return init.std ** 2
    if scheme == "truncated_normal" and init.std is not None:
        return (init.std * _TRUNCATED_STD) ** 2
    if scheme == "uniform" and init.bound is not None:
        return init.bound ** 2 / 3
    if scheme in ("xavier_normal", "xavier_uniform"):
        return (gain or 1.0) ** 2 * 2 / (fan_in + fan_out)
    if scheme in ("kaiming_normal", "he_normal", "kaiming_uniform", "he_uniform"):
        he = 2.0 / (1.0 + slope ** 2) if activation == "leaky_relu" else 2.0
        return (gain ** 2 if gain else he) / fan_in
    if scheme == "lecun_normal":
        return (gain or 1.0) ** 2 / fan_in
    if scheme == "variance_scaling":
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[init.mode]
        return init.scale / fan
    if scheme in ("orthogonal", "identity"):
        return (gain or 1.0) ** 2 / max(fan_in, fan_out)  # orthonormal rows (or columns) of unit norm
    return None


def _same_variance(ctx: Context, pointer: str, target: S.InitSpec) -> bool:
    """Whether re-initialising the weight layer at ``pointer`` with ``target`` leaves its weights'
    variance as it is (he_uniform for kaiming_normal: only the distribution's shape changes)."""
    layer = ctx.layer_at(pointer)
    current = getattr(layer, "init", None)
    unit = next((u for u in ctx.result.units if u.pointer == pointer and u.fan_in and u.fan_out), None)
    if not isinstance(current, S.InitSpec) or unit is None or unit.type in ("rnn", "lstm", "gru"):
        return False  # (a recurrent layer's fans are its stacked gates': not judged here)
    assert unit.fan_in is not None and unit.fan_out is not None  # (selected for both above)
    act = getattr(layer, "activation", None)
    slope = getattr(layer, "negative_slope", 0.01)
    now = init_variance(current, unit.fan_in, unit.fan_out, act, slope)
    new = init_variance(target, unit.fan_in, unit.fan_out, act, slope)
    return now is not None and new is not None and math.isclose(now, new, rel_tol=0.01)


def new_inits(ctx: Context) -> list[Remedy]:
    """:func:`.remedies.init_remedies` without the layers whose current init already has the
    variance the proposed scheme gives: such a "fix" redraws the same network (a re-simulation that
    happens to draw other weights is no evidence), so it is not offered."""
    out: list[Remedy] = []
    for remedy in init_remedies(ctx):
        ops = remedy.patch
        if not ops or not all(op.get("op") == "add" and str(op.get("path", "")).endswith("/init") for op in ops):
            out.append(remedy)
            continue
        keep = [op for op in ops if not _same_variance(ctx, str(op["path"])[:-len("/init")],
                                                       S.InitSpec.model_validate(op["value"]))]
        if len(keep) == len(ops):
            out.append(remedy)
        elif keep:
            scheme = str(keep[0]["value"]["scheme"])
            out.append(R.init(scheme, names_of([str(op["path"])[:-len("/init")] for op in keep]), keep))
    return out


class ArchitectureRule(ABC):
    """How one finding code is measured on a simulation, judged, described and remedied."""

    code: str
    #: The remedy builders tried for this finding, in order.
    remedies: tuple[Builder, ...] = ()

    @abstractmethod
    def measure(self, result: SimulationResult) -> float:
        """The metric on ``result`` (nan when it does not apply), alike on every re-simulation."""

    @abstractmethod
    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        """The severity at metric ``value`` (``value`` is never nan); None when healthy."""

    @abstractmethod
    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        """The detection, with its evidence and the units it is about."""

    def severity(self, result: SimulationResult, t: Thresholds) -> tuple[float, str | None]:
        """(metric, severity) on ``result``."""
        value = self.measure(result)
        return value, None if math.isnan(value) else self.assess(value, result, t)

    def measured_metric(self, result: SimulationResult, t: Thresholds) -> str | None:
        """The name of the figure :meth:`severity` gives on ``result``, for a rule that measures
        networks of different kinds by different figures; None where it is always the one its
        findings carry (a remedy's ``after`` is then that metric, :func:`.check.same_metric_after`)."""
        return None

    def measure_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        """``metric``, one of the figures the rule measures networks by, on ``result`` whatever
        figure :meth:`measure` takes there (a remedy's changed network, shown by its finding's
        metric); None where the rule cannot give it."""
        return None

    def decisive(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        """(name, value) of the figure the rule fires on where it is not :meth:`measure`'s metric
        (shown beside it in a remedy's verification); None where the metric is what is judged."""
        return None

    def decisive_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        """``metric``, a figure :meth:`decisive` named on the unchanged network, measured on a
        remedy's changed network ``result`` whatever figure decides there (it may fire on another,
        or on none): the same figure on both sides of a verification; None where it cannot be had."""
        now = self.decisive(result, t)
        return now[1] if now is not None and now[0] == metric else None

    def side_effect_figure(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        """(name, value) of the figure a side effect of this code is shown by on both networks where
        the metric takes in what the rule does not judge (large_updates: the largest of the judged
        steps, not a BN-fed layer's raw step); None where the metric is the figure."""
        return None

    def worse_before(self, before: SimulationResult, after: SimulationResult, t: Thresholds) -> bool:
        """Whether what this rule finds on a remedy's changed network ``after`` the unchanged network
        ``before`` had already, in a worse form the rule leaves out rather than measures (its layers
        got no gradient at all), so that the finding is no side effect of the remedy's although the
        rule did not fire on ``before``. False by default: a rule that fires on what it measures."""
        return False

    def remains(self, result: SimulationResult, metric: str) -> bool:
        """Whether ``result`` still has what ``metric`` (one of the rule's figures) measures, judged
        or not: units of the kind it counts. False where a remedy removed them all (a hidden softmax
        swapped for a ReLU: no softmax gain is left), and the remedy's verdict is then not measured,
        never fixed (kerassweep26 boston_attention_json: "FIXED: min_softmax_gain 0.0502 -> -")."""
        return not math.isnan(self.measure(result))

    def unjudged(self, result: SimulationResult) -> str | None:
        """Why the rule could not judge ``result`` though it has what the metric counts (a nan
        :meth:`measure` while units of the kind remain), in words; None where it judged, or where
        nothing of the kind is left. A remedy's re-simulation the rule could not judge is not fixed."""
        return None

    def propose(self, ctx: Context) -> list[Remedy]:
        """Every remedy worth trying (not yet verified)."""
        return [r for build in self.remedies for r in build(ctx)]

    def clips(self, detection: Detection) -> bool:
        """Whether a clipping threshold (taken from a fixed network's norms) belongs among
        ``detection``'s remedies."""
        return clipping in self.remedies


#: exploding_gradient's metric: the larger of the backward gradient ratio and the forward growth.
EXPLODING_METRIC = "max(output_grad_ratio_first_to_last, activation_growth)"

#: Why an exploding_gradient past its bar is only a note (its evidence's ``note_reason``), and how
#: the healthy summary's "(note: ...)" says it: growth of a normalised layer's gradient, which its
#: scale invariance absorbs (``absorbed_by_normalisation`` true for this reason alone); a backward
#: growth an adaptive optimizer's per-weight steps make no matter; growth that the trained weights'
#: structure gives, not their scale (``learned_structure``); logits whose size is judged only under a
#: softmax the check itself implied, no loss given and none in the graph (``loss_implied``).
NOTE_REASONS: dict[str, str] = {
    "normalisation": "absorbed by normalisation",
    "adaptive_optimizer": "the backward alone, evened out by the optimizer's per-weight steps",
    "learned_structure": "structure the weights learned, not their scale",
    "loss_implied": "logits judged under a softmax the check implied",
}


def _activation_explains_zero(units: list[UnitStats]) -> bool:
    """Whether an activation among ``units`` can pass back an exactly zero gradient: all of a
    layer's ReLU-family units dead (in some seed), or (nearly) all of its units saturated."""
    for u in units:
        for key in ("dead_fraction", "saturated_fraction"):
            v = u.values.get(key)
            if v is not None and np.any(np.nan_to_num(v) >= 0.99):
                return True
    return False


def _through_depth(
    code: str, severity: str, value: float, result: SimulationResult, t: Thresholds,
    left_out: list[int] | None = None, note_reason: str | None = None,
) -> Detection:
    """The through-depth finding on ``result``; ``left_out``: the born-dead seeds ``result`` was
    taken without (:func:`live_seeds`), said in the evidence; ``note_reason``: why an
    exploding_gradient past its bar is only a note (:data:`NOTE_REASONS`)."""
    ratio, units = depth_ratio(result)
    silenced = silenced_by_design(result) if code == "vanishing_gradient" and value == 0 and math.isnan(ratio) else []
    if silenced:  # no ratio at all: no layer of the trunk gets a gradient, behind a designed zero layer
        ratio, units = 0.0, trunk(result)
    growth = activation_growth(result)
    # which growth exploding_gradient reports: the activation's is over layers of its own
    # (activation_span), named as such. The gradient's chain ends at the last layer any gradient
    # reaches; where none reaches any (the forward overflowed the loss: weights x8, onnxsweep13) it
    # was the first layer alone, and "1.95e+04x across 1 layers (FC1 .. FC1)" named that span
    # (not the activations' where a norm takes every layer's output: findings.forward_growth)
    judged = forward_growth(result)
    which = "gradient" if ratio >= judged or math.isnan(judged) else "activation"
    no_gradient = not any(np.any(u.values["output_grad_norm"] != 0) for u in units)
    # the Jacobians between the first unit's output and the last's: one a unit after the first along
    # the longest path (parallel branches of one block once), k for a stack of k recurrent layers
    # (UnitStats.stacked)
    depth = chain_depth(result, units)
    per_layer = (
        ratio ** (1 / (depth - 1)) if depth > 1 and ratio > 0 and math.isfinite(ratio) else math.nan
    )
    growth_per_layer = math.nan
    if code != "vanishing_gradient" and which == "activation" and len(activation_span(result)) >= 2:
        units = activation_span(result)
        depth = len(units)
        if no_gradient:  # (0 over 0: no ratio, not a vanishing one)
            ratio, per_layer = math.nan, math.nan
        if growth > 0 and math.isfinite(growth):
            growth_per_layer = growth ** (1 / (depth - 1))
    evidence = {
        # The name says what ``value`` is: exploding_gradient measures the worse of the two growths
        # (ExplodingGradient.measure), so its value may be the activation growth.
        "metric": "output_grad_ratio_first_to_last" if code == "vanishing_gradient" else EXPLODING_METRIC,
        "value": value,
        "threshold": t.vanishing_warning if code == "vanishing_gradient" else t.exploding_warning,
        "layers": [units[0].name, units[-1].name],
        "grad_ratio": ratio,
        "log10_grad_ratio": math.log10(ratio) if ratio > 0 and math.isfinite(ratio) else None,
        "per_layer_factor": per_layer,
        "depth": depth,
        "activation_growth": growth,
        **({"activation_growth_per_layer": growth_per_layer} if math.isfinite(growth_per_layer) else {}),
        "first_output_grad_norm": units[0].geo("output_grad_norm"),
        "last_output_grad_norm": units[-1].geo("output_grad_norm"),
    }
    if left_out:
        # the ratio is over the draws that live; the dead ones are dead_units' (born dead)
        evidence["born_dead_seeds_left_out"] = list(left_out)
        evidence["seeds_judged"] = result.seeds
    these = _these_layers(layer_activations(units))
    between = between_activations(result, units)
    if between and layer_activations(units) == "identity":
        # the layers' activation is a unit of its own between them (a KAN's SiLU on each layer's input)
        these = f"these layers ({'/'.join(between)} between them)"
    stacks = [u for u in units[1:] if u.stacked > 1]
    if stacks:  # "through these tanh layers" named a stack as one layer
        evidence["stacked_layers"] = {u.name: u.stacked for u in stacks}
        said = ", ".join(f"{layer_words(u)} is a stack of {u.stacked} {u.type} layers" for u in stacks)
        these = f"{these[:-1]}; {said})" if these.endswith(")") else f"{these} ({said})"
    if code == "vanishing_gradient":
        # no gradient at all reaches the first layer (all-zero weights, dead units): say so
        summary = (
            f"gradient shrinks {fmt(1 / ratio)}x from {layer_words(units[-1])} back to {layer_words(units[0])} "
            f"({_steps(depth, per_layer)})"
            if ratio > 0
            else f"no gradient reaches {layer_words(units[0])} from {layer_words(units[-1])} ({depth} layers)"
        )
        explanation = (
            f"Backpropagation multiplies one Jacobian per layer; through {these} the "
            f"typical factor is {fmt(per_layer)} < 1, so the early layers barely learn."
            if math.isfinite(per_layer) else
            f"Backpropagation multiplies one Jacobian per layer; through {these} the product is exactly 0 "
            "(a layer passes no gradient back at all), so the early layers do not learn."
        )
        zero = [u for u in units if u.has_weights and (_zero_weights(u) if "weight_rms" in u.values
                                                        else u.geo("weight_std") == 0)]
        designed = designed_zero_layers(result) if ratio == 0 else []
        rounded = [u for u in units if bool(np.any(u.values.get("round_off_gradient", np.zeros(1)) == 1))]
        if ratio == 0 and rounded and not designed:
            # modsweep41 udacity_init_ones: 3.26e-14 over 1.80e-16, float round-off of a sum that is
            # 0 in exact arithmetic, read as 181x growth (simulate.round_off_gradients)
            after = units[units.index(rounded[-1]) + 1:]
            through = after[0].name if after else "the layers after them"
            evidence["round_off_gradient"] = [u.name for u in rounded]
            explanation = (
                f"In exact arithmetic no gradient reaches {_named(rounded)}: the gradient {through} passes back "
                "cancels (its terms add up to 0: rows whose weights are all equal pass back the sum of the "
                "loss's gradient over the outputs, which is 0 under a softmax, and units that are copies of "
                "one another cancel alike). What the simulation measured there is float round-off, under "
                "eps * sqrt(fan_out) * ||W|| * ||g||, the error of that sum, so it counts as none: these layers "
                "do not learn, and any growth or shrinking of that residue is noise. Initialise the weights "
                "randomly (He for ReLU-family activations, Xavier for tanh and sigmoid).")
        elif designed:
            evidence["zero_weights"] = [u.name for u in designed]
            evidence["zero_init"] = True
            # (the residual-branch-end case keeps its own mark, as documents before it had)
            if branch_ends(designed, result):
                evidence["zero_branch_ends"] = True
            explanation = _zero_init_note(designed, result, units[0])
        elif ratio == 0 and zero and not cut_off(units[0]):
            evidence["zero_weights"] = [u.name for u in zero]
            explanation = (
                f"{_named(zero)} {'has' if len(zero) == 1 else 'have'} weights that are all "
                "exactly zero, so no gradient passes back through them: every layer before passes none and "
                "gets none, and the units of a layer stay alike (nothing breaks their symmetry). "
                "Initialise the weights with small random values (Xavier or He).")
        if silenced:
            # specsweep12 h07/p3: a zero readout left every hidden layer's gradient exactly 0, and
            # "no gradient problem found" read as if the depth had been measured
            evidence["depth_unmeasured"] = True
            learners = [u for u in silenced if _all_seeds(u, "grad_norm", lambda g: g > 0)]
            summary += (f"; a note: {_named(learners)} {'starts' if len(learners) == 1 else 'start'} at zero on purpose, "
                        "so the depth checks measured no "
                        f"gradient {simulated_weights(result)}")
            explanation += (
                f" So every gradient figure of {layer_words(units[0])} .. {layer_words(units[-1])} {simulated_weights(result)} is exactly 0, "
                "and the checks through depth (vanishing and exploding gradients) had nothing to measure there: "
                "the verdict says nothing of how the gradient passes these layers once it reaches them. To have "
                f"it measured, check the model with {_named(learners)} initialised as usual (Xavier or He).")
        if (ratio == 0 and not silenced and not designed and not zero and not rounded and not cut_off(units[0])
                and not _activation_explains_zero(units)):
            # an exactly zero gradient that no dead or saturated activation, no zero weight and no cut
            # explains: the output does not depend on the layer (nn.MultiheadAttention fed (batch,
            # tokens, features) without batch_first attends over the batch, and a head reading token
            # 0 never sees the others), never "the Jacobians' product is 0" with normalisation or
            # init offered (modsweep45 ji_vit)
            silent = [u for u in units if not np.any(u.values["output_grad_norm"] != 0)]
            evidence["disconnected"] = True
            explanation = (
                f"The output does not depend on {_named(silent[-1:])}'s output (nor, through it, on the layers "
                f"before): its gradient is exactly 0 in every seed, yet no activation between it and "
                f"{layer_words(units[-1])} is dead or saturated, no weight is zero and the graph is not cut. The "
                "path from it to the output is wired away, not shrunk: check the data layout and what the head "
                "reads (nn.MultiheadAttention or nn.TransformerEncoderLayer without batch_first=True, fed "
                "(batch, tokens, features), attends over the batch, so a head reading x[:, 0] sees only its "
                "own token; a slice, index or mask that drops this layer's part). Normalisation or another "
                "init does not help: no factor along the path is small, the path is missing.")
        if cut_off(units[0]):
            evidence["cut_off"] = True
            explanation = (
                f"The loss does not depend on {layer_words(units[0])}'s output at all: the graph is cut between it "
                f"and {layer_words(units[-1])} (a .detach(), torch.no_grad(), or an output copied without its "
                "gradient), so its weights, and those of every layer before the cut, never change. Remove "
                "the cut; if those layers are meant to stay fixed, freeze them (requires_grad=False).")
            if result.step_ops:
                # modsweep49 #6 (SpyTorch's Heaviside spike, out[x > 0] = 1): a step built from a comparison
                # carries no gradient, and "remove the cut" cannot apply to it; a step function's
                # derivative is 0 almost everywhere, so spiking and binarised nets give it a surrogate
                evidence["step_ops"] = list(result.step_ops)
                ops = ", ".join(result.step_ops)
                explanation = (
                    f"The loss does not depend on {layer_words(units[0])}'s output at all: the graph is cut between "
                    f"it and {layer_words(units[-1])}, so its weights, and those of every layer before the cut, never "
                    f"change. The forward applies a step to a tensor with a gradient ({ops}): a tensor built from "
                    "it (out[x > 0] = 1, a spiking neuron's Heaviside threshold, a binarised or argmax choice) "
                    "carries no gradient, and a step's derivative is 0 almost everywhere, so computing it exactly "
                    "would not help. If the step is meant to be trained through, give it a surrogate gradient "
                    "(a torch.autograd.Function whose backward passes a smooth derivative, as SuperSpike's "
                    "1/(1 + k|x|)^2 in spiking nets) or a straight-through one (x + (step(x) - x).detach()). "
                    "Otherwise the cut is a .detach(), torch.no_grad() or an output copied without its gradient: "
                    "remove it, or freeze those layers (requires_grad=False) if they are meant to stay fixed.")
    else:
        shown = ratio if which == "gradient" else growth
        summary = (
            f"{which} norm grows {fmt(shown)}x from {layer_words(units[0])} to {layer_words(units[-1])} "
            f"({_steps(depth, growth_per_layer if which == 'activation' else per_layer)})"
        )
        finite = _finite_stretch(units) if which == "gradient" and not math.isfinite(ratio) else None
        if finite is not None:
            # modsweep42: "grows infx from layers.0 to layers.98" gave neither a factor nor where the
            # gradient left the float range: the growth over the stretch still finite, and where it ended
            first, k = finite
            stretch = units[k:]
            grown = first / stretch[-1].geo("output_grad_norm")
            step = grown ** (1 / (len(stretch) - 1)) if len(stretch) > 1 and grown > 0 else math.nan
            evidence.update(finite_grad_ratio=grown, finite_layers=[stretch[0].name, stretch[-1].name],
                            per_layer_factor=step, nonfinite_from=units[k - 1].name)
            summary = (
                f"gradient norm grows until it is no longer finite in {result.dtype}: {fmt(grown)}x from {stretch[-1].name} back to "
                f"{stretch[0].name} ({_steps(len(stretch), step)}), then non-finite "
                + (f"at {units[0].name}" if k == 1 else f"from {units[k - 1].name} back to {units[0].name}")
            )
        explanation = (
            f"The per-layer gain of {these} is above 1 (weights too large for the "
            "activation, or residual branches adding up), so signals grow exponentially with depth."
        )
        cells = unbounded_cell_growth(units, result, which)
        if severity != "info" and cells is not None:
            # kerassweep25 sign_lstm_dense: three LSTM(activation="relu") layers grew the signal
            # 1e4x and read "weights too large ... or residual branches", neither of which held
            evidence["unbounded_recurrent_activation"] = cells
            explanation = _unbounded_cell_words(cells, which)
        if which == "activation" and no_gradient:
            evidence["no_gradient"] = True
            explanation += (
                " No gradient at all reached these layers in the simulation (every output gradient is "
                "0): outputs this large leave the loss nothing to pass back (its probabilities round to "
                "exactly 0 and 1), so the forward growth is what is judged."
            )
        if severity != "info" and which == "gradient" and absorbed_by_normalisation(result, t):
            # the same growth as the note below, past the point training absorbs it: say where it
            # comes from (plain-56 with BN: 1.19 per layer, its activations flat), not "weights too large"
            evidence["normalisation_gain"] = True
            explanation = (
                "The gain comes from the normalisation itself: batch statistics add about 1.21x per plain "
                "BN-ReLU layer at init (Yang et al. 2019), and every layer it reaches past the warning "
                "threshold is normalised, so its weights' scale does not matter. Compounded over this many "
                "layers, though, the early layers' gradients are so large that their weights' norms grow "
                "and their effective steps all but stop: deep plain nets with batch norm train poorly "
                "(He et al. 2016's plain-56). Skip connections keep the growth from compounding."
            )
        if severity == "info":
            # the reason the growth is only a note, whatever it is; absorbed_by_normalisation only where
            # that is normalisation (onnxsweep22 tictactoe_mla, kerassweep24 sm_boston_conv_lstm_seq: Swish
            # MLPs and a conv/LSTM regressor without any norm read "absorbed by normalisation" where
            # the finding said "structure the weights learned")
            evidence["note_reason"] = note_reason
            evidence["absorbed_by_normalisation"] = note_reason == "normalisation"
        if severity == "info" and note_reason == "normalisation":
            explanation = (
                "The gain comes from the normalisation itself (batch statistics add about 1.21x "
                "per plain BN-ReLU layer at init; residual branches at full scale add up), and every "
                "layer it reaches past the warning threshold is normalised: such a layer's output "
                "ignores its weights' scale, so a large gradient grows that scale and shrinks its own "
                "effective step. Training absorbs growth of this size; zero-initialising the scale of "
                "each residual branch's last norm removes most of it."
            )
            jump = _norm_input_jump(units, t) if which == "gradient" else None
            if jump is not None:
                spikes, factor, rest = jump
                at = _named(spikes)
                evidence.update(norm_input_layers=[u.name for u in spikes], norm_input_jump=factor,
                                grad_ratio_elsewhere=rest)
                summary += (f"; past the bar only at {at}'s output, which a norm reads ({fmt(factor)}x the "
                            f"gradient after the norm): the norm's scale invariance, not growth through depth")
                explanation = (
                    f"The gradient passes the {fmt(t.exploding_warning)}x bar only at {at}'s output, "
                    f"{fmt(factor)}x the gradient just after the norm that reads it; elsewhere it is at most "
                    f"{fmt(rest)}x the last layer's, under the bar. A norm's backward divides by its input's "
                    "standard deviation over the batch, so the gradient before a norm is the larger the less "
                    f"its input spreads {_norm_input_cause(result)} The layer the norm reads is scale-invariant: "
                    "its output ignores its weights' scale, so a large gradient there grows that scale and "
                    "shrinks its own effective step, and no other layer's step is enlarged."
                    + _norm_input_advice(result)
                )
    pooled = pooling_factor(result, units) if code == "vanishing_gradient" or which == "gradient" else 1.0
    if pooled != 1.0 and ratio > 0 and math.isfinite(ratio):
        # specsweep10 #2/#3: each 2x2 average pool halved ||dL/dh|| by spreading it over 4x the
        # elements, 4x of a sigmoid LeNet's 318x; the ratio judged has that taken out (findings.pooling_factor)
        evidence.update(pooling_factor=pooled, raw_grad_ratio=ratio / pooled)
        explanation += (
            f" The ratio counts out the average pooling between these layers ({fmt(pooled)}x): an average over "
            "k elements spreads each gradient over k times as many at 1/k each, which divides its norm by "
            f"sqrt(k) though no layer's gradient is smaller for it (the norms alone differ "
            f"{fmt(max(ratio / pooled, pooled / ratio))}x).")
    return Detection(
        code, severity, str(evidence["metric"]), value, summary, explanation, evidence, units
    )


def simulated_weights(result: SimulationResult) -> str:
    """When the figures a finding quotes were measured, in the words of its sentences: "at
    initialisation" for weights drawn afresh (a spec, a live module, a reinitialised file), "with
    the weights as stored" for a model file's stored weights (``result.checkpoint``: a trained
    checkpoint, which "at initialisation" misdescribed: kerassweep25 amzn_rnn_keras, sign_lstm_dense)."""
    return "with the weights as stored" if result.checkpoint else "at initialisation"


#: The share of a through-depth growth (in log terms) that recurrent layers with an unbounded
#: activation must make for the finding to name them as its cause: most of it.
UNBOUNDED_CELL_SHARE = 0.5


def unbounded_cells(units: list[UnitStats]) -> list[UnitStats]:
    """The recurrent layers of ``units`` whose own activation (an LSTM's on its candidate and cell
    state, a GRU's candidate, a plain RNN's) is unbounded (not in :data:`BOUNDED`): relu, elu, linear..."""
    return [u for u in units if u.type in ("rnn", "lstm", "gru") and u.activation
            and canonical(u.activation) not in BOUNDED]


def unbounded_cell_growth(units: list[UnitStats], result: SimulationResult, which: str) -> dict[str, Any] | None:
    """Where most of a growth through ``units`` (the forward's, ``which`` "activation", or the
    gradient's) is made across recurrent layers with an unbounded activation (at least
    :data:`UNBOUNDED_CELL_SHARE` of its log): those layers, their activation, each one's gain
    (its output's std over the std of the layer before it; the gradient before it over its own),
    the share, and each one's sequence length; None otherwise."""
    cells = {u.name for u in unbounded_cells(units)}
    if not cells or len(units) < 2:
        return None
    metric = "activation_std" if which == "activation" else "output_grad_norm"
    values = [u.geo(metric) for u in units]
    if not all(v > 0 and math.isfinite(v) for v in values):
        return None
    total = math.log(values[-1] / values[0]) if which == "activation" else math.log(values[0] / values[-1])
    if not total > 0:
        return None
    gains: dict[str, float] = {}
    for k in range(1, len(units)):
        if units[k].name in cells:
            gains[units[k].name] = values[k] / values[k - 1] if which == "activation" else values[k - 1] / values[k]
    made = sum(math.log(g) for g in gains.values())
    if not gains or made < UNBOUNDED_CELL_SHARE * total:
        return None
    lengths = {ts.layer: int(ts.norms.shape[1]) for ts in result.time_series}
    named = [u for u in units if u.name in gains]
    return {"layers": list(gains), "activations": sorted({canonical(u.activation or "") for u in named}),
            "types": sorted({u.type for u in named}), "gains": gains, "share": min(made / total, 1.0),
            "measured": metric,
            "sequence_length": max((lengths[n] for n in gains if n in lengths), default=None)}


def _unbounded_cell_words(cells: dict[str, Any], which: str) -> str:
    """Why a growth made in recurrent layers with an unbounded activation (:func:`unbounded_cell_growth`)
    grows, in words: the state each carries builds up over the steps, and nothing bounds it."""
    names = ", ".join(cells["layers"])
    acts = "/".join(cells["activations"])
    steps = f"the sequence's {cells['sequence_length']} steps" if cells["sequence_length"] else "the sequence's steps"
    gains = ", ".join(f"{fmt(g)}x" for g in cells["gains"].values())
    what = "the scale of its output over its input's" if which == "activation" else "the gradient it passes back"
    lstm = "lstm" in cells["types"]
    state = ("an LSTM's cell state c_t = f * c_{t-1} + i * " + acts + "(g_t) adds up its input over " + steps
             + ", and its output h_t = o * " + acts + "(c_t) passes that sum on" if lstm else
             "its state is carried from step to step through " + acts + ", which does not bound it, over " + steps)
    return (
        f"The growth is made in {names}, recurrent layers whose own activation is {acts}, which has no bound: "
        f"{state}, so the state builds up over the steps, and each such layer multiplies {what} "
        f"({gains}; {cells['share']:.0%} of the growth, in log terms) instead of keeping it. How far it builds "
        "up follows the scale of what the layer reads (the synthetic inputs are standard normal unless an "
        "input range is given), and stacked layers compound it. The weights' scale is not what grows it: a "
        "bounded cell activation (tanh, the default of Keras' LSTM and GRU and PyTorch's) keeps each step's "
        "output within [-1, 1] whatever the sequence's length.")


def _off_zero(result: SimulationResult) -> bool | None:
    """Whether the simulated float inputs have a mean at least their spread (uniform in a one-signed
    range such as [0, 1]: mean 0.5, std 0.29); False for zero-mean draws; None for the user's own
    values (:attr:`.simulate.SimulationResult.inputs_given`), whose mean is not known here."""
    if result.input_range is not None:
        low, high = result.input_range
        return abs(low + high) / 2 >= (high - low) / math.sqrt(12)
    return None if result.inputs_given else False


def _norm_input_cause(result: SimulationResult) -> str:
    """Why a norm's input spreads little, in the words of the inputs the run simulated (kerassweep27:
    "inputs in [0, 1]" was said of MobileNet's standard-normal run)."""
    off = _off_zero(result)
    if off:
        low, high = result.input_range or (0.0, 1.0)
        return (f"(the inputs, drawn uniform in [{low:g}, {high:g}], have a mean as large as their spread, "
                "which leaves each channel after a ReLU mostly off or nearly constant; a channel off for the "
                "whole batch is divided by the norm's sqrt(eps) alone, and its ReLU passes none of that back).")
    if off is None:
        return ("(inputs with a large mean beside their spread, such as pixels in [0, 1], leave each channel "
                "after a ReLU mostly off or nearly constant; a channel off for the whole batch is divided by the "
                "norm's sqrt(eps) alone, and its ReLU passes none of that back).")
    drawn = (f"uniform in [{result.input_range[0]:g}, {result.input_range[1]:g}]" if result.input_range
             else result.input_draw)
    return (f"(the inputs simulated were zero-mean, {drawn}, so no mean of theirs is behind it: the small "
            "spread comes from the network, the scale of the weights before the norm, which the norm divides out).")


def _norm_input_advice(result: SimulationResult) -> str:
    """What removes a norm-input jump, as the inputs were simulated (:func:`_norm_input_cause`)."""
    off = _off_zero(result)
    if off:
        return " Inputs standardised to zero mean remove most of it."
    if off is None:
        return " Where the inputs have such a mean, standardising them to zero mean removes most of it."
    return " It needs no change: the norm already divides that scale out of the forward."


def _norm_input_jump(chain: list[UnitStats], t: Thresholds) -> tuple[list[UnitStats], float, float] | None:
    """Where the through-depth gradient passes ``exploding_warning`` only at norms' inputs: every
    unit of ``chain`` whose ||dL/dh|| is past the bar over the last unit's is normalised (a norm
    reads its output) and the unit after it (that norm's side) is under the bar. Returns those
    units, the largest factor from a unit's gradient to the next one's among them, and the largest
    ratio of any other unit's gradient to the last's (under the bar); None otherwise."""
    norms = [u.geo("output_grad_norm") for u in chain]
    if len(chain) < 3 or not all(n > 0 and math.isfinite(n) for n in norms):
        return None
    bar = t.exploding_warning * norms[-1]
    grown = [k for k in range(len(chain) - 1) if norms[k] > bar]
    if not grown or any(not chain[k].normalised or norms[k + 1] > bar for k in grown):
        return None
    rest = max(norms[k] for k in range(len(chain)) if k not in grown) / norms[-1]
    return [chain[k] for k in grown], max(norms[k] / norms[k + 1] for k in grown), rest


def _finite_stretch(units: list[UnitStats]) -> tuple[float, int] | None:
    """Where a gradient that grows backwards left the float range along ``units`` (first to last):
    (the output gradient norm at the earliest unit of the finite stretch that ends the chain, that
    unit's index k), the units before k being non-finite (Inf, or NaN after it) in some seed; None
    where every unit's is finite or the stretch is under two units."""
    def ok(u: UnitStats) -> bool:
        g = u.values.get("output_grad_norm")
        return g is not None and bool(np.all(np.isfinite(g))) and bool(np.all(g > 0))
    k = len(units)
    while k > 0 and ok(units[k - 1]):
        k -= 1
    if k == 0 or len(units) - k < 2:
        return None
    return units[k].geo("output_grad_norm"), k


def _steps(layers: int, per_step: float) -> str:
    """A span of ``layers`` layers in words: the ratios between them are one fewer (modsweep41: "169x
    across 2 layers (fc1 .. fc2, 169 per layer)" was one step, its total called a per-layer figure)."""
    steps = layers - 1
    if steps == 1:
        return "2 layers, one step"
    per = f", {fmt(per_step)} per step" if math.isfinite(per_step) else ""
    return f"{layers} layers, {steps} steps{per}" if steps > 1 else f"{layers} layer"


def _spoken(unit: UnitStats) -> str:
    """``unit``'s name for a sentence: a stacked recurrent module's layer k (named ``rnn#k`` in the
    layer table, as the ONNX door names the same nodes) is "layer k of rnn (rnn#k)", since ``#k``
    elsewhere is a layer's k-th call (modsweep41: "rnn#2: dL/dh_t shrinks" read as a second call)."""
    if unit.stack_layer is not None:
        base, k = unit.stack_layer
        return f"layer {k} of {base} ({unit.name})"
    return layer_words(unit)


def _named(units: list[UnitStats]) -> str:
    """``a, b`` or ``first .. last (n layers)``."""
    return (f"{layer_words(units[0])} .. {layer_words(units[-1])} ({len(units)} layers)" if len(units) > 3
            else ", ".join(layer_words(u) for u in units))


def detached_units(result: SimulationResult) -> list[UnitStats]:
    """Trainable layers whose output the forward detaches before the loss in every seed and whose
    weights get no gradient at all (not from another call either: a siamese branch detached once)."""
    return [u for u in result.units if u.has_weights and "detached" in u.values
            and bool(np.all(u.values["detached"] == 1.0))
            and bool(np.all(u.values.get("grad_norm", np.array([math.nan])) == 0))]


def silent_units(result: SimulationResult) -> list[UnitStats]:
    """Layers of the trunk whose gradient is exactly 0 in every seed, weights and output alike,
    while other layers get one, with nothing that explains it: no weight of the network is zero
    (a designed zero init holds such layers for a step), the layer is not cut or detached, its
    gradient is no float round-off and no activation after it is dead or saturated. The output
    does not depend on them: an attention-pooling score layer under a softmax over an axis of one
    element (whose output is 1 whatever the scores), a gate whose product a later step cancels.
    The depth ratio runs along one path and drops layers at its end with no gradient (those a
    designed zero holds), so a side branch's zero was never compared (onnxsweep28 loto_gru)."""
    units = trunk(result)
    if len(units) < 2 or zero_layers(result):
        return []
    if any(_all_seeds(u, "grad_norm", lambda g: g == 0) and np.any(np.nan_to_num(u.values.get("output_grad_norm", 0)) > 0)
           for u in weighted_units(result)):
        # a layer with a gradient at its output and none on its weights: a zero scale after its
        # product (a norm scale started at zero, timm's zero_init_last) holds it and the layers that
        # feed that branch at 0 by design, for one step (tests/analysis/test_zero_init.py)
        return []

    def zero(u: UnitStats, metric: str) -> bool:
        return metric in u.values and bool(np.all(u.values[metric] == 0))

    silent = [u for u in units if zero(u, "grad_norm") and zero(u, "output_grad_norm") and not cut_off(u)
              and "detached" not in u.values
              and not bool(np.any(u.values.get("round_off_gradient", np.zeros(1)) == 1))]
    reached = [u for u in weighted_units(result) if u not in silent
               and _all_seeds(u, "output_grad_norm", lambda g: np.nan_to_num(g) > 0)]
    if not silent or not reached:
        return []
    out = []
    for u in silent:
        reach = _reach(result, u.name)
        after = [o for o in result.units if reach is None or o.name in reach]
        if not _activation_explains_zero(after):
            out.append(u)
    return out


#: A depth ratio this far under the default vanishing error bar (1e-4) is a path that vanished: a layer
#: beside it whose gradient is exactly 0 is where a small factor on a vanished signal underflowed (an
#: attention's query and key behind a near-uniform softmax six blocks deep: 1e-24 by autograd on one
#: CPU, exactly 0 on another), not a missing path, and the depth finding names the cause.
VANISHED_PATH_RATIO = 1e-8


def _silent_side(result: SimulationResult, ratio: float) -> list[UnitStats]:
    """:func:`silent_units`, where the depth ratio (``ratio``) does not already read 0 or a vanished
    path (:data:`VANISHED_PATH_RATIO`) and no detach explains them (those are findings of their own)."""
    if ratio == 0 or ratio < VANISHED_PATH_RATIO or detached_units(result):
        return []
    return silent_units(result)


def _silent_detection(code: str, severity: str, silent: list[UnitStats], result: SimulationResult,
                      t: Thresholds) -> Detection:
    """vanishing_gradient for :func:`silent_units`: no gradient reaches them, though it reaches the
    rest; where a softmax over an axis of one element reads them, said as the cause."""
    names = _named(silent)
    one = len(silent) == 1
    singleton = [u for u in silent if bool(np.any(u.values.get("singleton_softmax", np.zeros(1)) == 1))]
    evidence: dict[str, Any] = {
        "metric": "output_grad_ratio_first_to_last", "value": 0.0, "threshold": t.vanishing_warning,
        "layers": [u.name for u in silent], "no_gradient_layers": [u.name for u in silent], "disconnected": True}
    if singleton:
        evidence["singleton_softmax"] = [u.name for u in singleton]
        cause = (
            f"A softmax over an axis of one element reads {_named(singleton)}'s output (attention pooling over a "
            "sequence of length 1, one token or one time step): a softmax over one element is 1 whatever its input, "
            "so the scores cannot change the output and get exactly no gradient. The layer is dead weight as the "
            "model is used: if the model is meant to pool over several steps, feed it sequences longer than one "
            "(check the reshape before it, (batch, 1, features) where (batch, steps, features) was meant); if one "
            "step is all it ever sees, remove the scoring layer and the softmax.")
    else:
        cause = (
            "The output does not depend on their output at all, though no weight is zero, no activation after them "
            "is dead or saturated and the graph is not cut: something after them removes their contribution (a "
            "softmax or normalisation over an axis of one element, a gate whose product a later step cancels, a "
            "slice or mask that drops their part). Check what reads their output.")
    return Detection(
        code, severity, "output_grad_ratio_first_to_last", 0.0,
        f"no gradient reaches {names}: {'its' if one else 'their'} gradient is exactly 0 in every seed while the "
        "other layers get one, so the weights never change",
        f"{cause} Normalisation or another init does not help: no factor along the path is small, the path is "
        "missing.",
        evidence, silent)


def _detached_on_path(result: SimulationResult) -> list[UnitStats]:
    """:func:`detached_units`, unless the path's first layer is cut itself (a detach after the
    backbone): the depth ratio's own reading, "no gradient reaches the first layer", says that."""
    detached = detached_units(result)
    if detached:
        units = depth_ratio(result)[1]
        if units and cut_off(units[0]):
            return []
    return detached


def _all_seeds(u: UnitStats, metric: str, test: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether ``u`` has ``metric`` and it passes ``test`` in every seed."""
    return metric in u.values and bool(np.all(test(u.values[metric])))


def _reach(result: SimulationResult, name: str) -> set[str] | None:
    """Every unit the output of unit ``name`` reaches (:func:`reached_from`); None where the
    simulation did not record it (a spec's single chain)."""
    return reached_from(result, name) if name in result.feeds else None


def _behind_zero(result: SimulationResult, zero: list[UnitStats]) -> list[UnitStats]:
    """The ``zero`` layers that the data reaches only through another zero layer (zero layers in
    series): their input is the same for every sample (0, or the constant a bias makes), as the
    graph simulation marks it (``input_same_for_every_sample``); a spec's layers, one chain, are
    so after its first zero layer."""
    if not result.feeds:  # a spec: one chain, in order
        return _behind_zero_in_spec(result, zero)
    # (the structure is read on the first seed only: the others' values are nan)
    return [u for u in zero if bool(np.any(u.values.get("input_same_for_every_sample", np.zeros(1)) == 1))]


def _behind_zero_in_spec(result: SimulationResult, zero: list[UnitStats]) -> list[UnitStats]:
    """:func:`_behind_zero` of a spec, one chain in order: the zero layers after a zero layer of the
    chain itself, or after one earlier in the same residual branch; a zero layer inside a residual
    branch blocks only the rest of that branch, since the skip goes around it (Fixup's zero branch
    ends, specsweep12 h07)."""
    residuals = [p.name for p in result.plan.all_units() if isinstance(p.layer, S.ResidualBlock)] \
        if result.plan is not None else []

    def branch(u: UnitStats) -> str | None:  # the innermost residual branch holding u
        inside = [r for r in residuals if u.name.startswith(r + ".")]
        return max(inside, key=len) if inside else None

    behind: list[UnitStats] = []
    seen: set[str | None] = set()
    for u in zero:
        b = branch(u)
        if None in seen or b in seen:
            behind.append(u)
        seen.add(b)
    return behind


def zero_layers(result: SimulationResult) -> list[UnitStats]:
    """The layers whose weights are all exactly zero in every seed (their RMS 0 where measured: a
    std of 0 is also every weight at one nonzero value, Udacity's all-ones init, modsweep41)."""
    return [u for u in result.units if u.has_weights and "weight_std" in u.values
            and (_zero_weights(u) if "weight_rms" in u.values else u.geo("weight_std") == 0)]


def silenced_by_design(result: SimulationResult) -> list[UnitStats]:
    """The designed zero layers (:func:`designed_zero_layers`) where no layer of the trunk gets any
    gradient at initialisation because of them (a zero readout: Fixup's, DiT's final layer; every
    output gradient before it is exactly 0, so :func:`depth_ratio` has no ratio); else empty."""
    units = trunk(result)
    if not units or any(np.any(u.values["output_grad_norm"] != 0) for u in units if "output_grad_norm" in u.values):
        return []
    return designed_zero_layers(result)


def designed_zero_layers(result: SimulationResult) -> list[UnitStats]:
    """The all-zero layers (:func:`zero_layers`) when they are a designed zero initialisation,
    which the first steps undo by themselves; empty when some zero layer can never learn.

    A zero layer W whose own weight gradient dL/dW = g h^T is nonzero in every seed learns at the
    first step, and from then on passes gradient back (a zero-initialised residual branch end:
    Fixup, ADM/DDPM U-Nets, ControlNet, LoRA's B; a zero readout: Fixup's and DiT's final layer).
    A zero layer that gets none waits for them only where its gradient is held back by zero layers
    after it that learn: its input h is nonzero, its own activation passes a gradient at 0 (a ReLU
    over a zero pre-activation is dead for good), and its output reaches one of those learners
    (Fixup's branch ends behind its zero fc get a gradient from the second step). A zero layer
    the data reaches only through another (zero layers in series: its input is 0, or the same
    constant for every sample), or zero layers none of which learns, is the error: no gradient
    passes them, and nothing breaks their units' symmetry."""
    zero = zero_layers(result)
    learners = [u for u in zero if _all_seeds(u, "grad_norm", lambda g: g > 0)]
    if not learners or _behind_zero(result, zero):
        return []
    if any(not _all_seeds(u, "dead_fraction", lambda d: ~(d > 0)) for u in zero if "dead_fraction" in u.values):
        # a zero layer under a ReLU-like activation: its pre-activation is its bias alone, the same
        # for every sample, so each unit whose bias is negative is dead for good (no gradient to
        # its weights or its bias) and the layer keeps only the rest (a DDPG actor's zeroed hidden
        # fc2: 33 of 64 units still dead after 200 steps, modsweep23). No design zeroes such a layer.
        return []
    names = {u.name for u in learners}
    for u in zero:
        if u in learners:
            continue
        reach = _reach(result, u.name)
        if not (_all_seeds(u, "input_mean_square", lambda h: h > 0)
                and not _all_seeds(u, "dead_fraction", lambda d: d >= 1)
                and (reach is None or reach & names)):
            return []
    return zero


def branch_ends(zero: list[UnitStats], result: SimulationResult) -> bool:
    """Whether every one of the ``zero`` layers ends a residual branch (its output is summed into
    another path) and gets a gradient of its own in every seed."""
    summed = set(result.summed)
    return all(u.name in summed and _all_seeds(u, "grad_norm", lambda g: g > 0) for u in zero)


def _zero_init_note(zero: list[UnitStats], result: SimulationResult, first: UnitStats) -> str:
    """The explanation of a designed zero initialisation (:func:`designed_zero_layers`)."""
    if branch_ends(zero, result):
        return (
            f"{_named(zero)} {'ends' if len(zero) == 1 else 'end'} a residual branch with weights that are all "
            "exactly zero, on purpose (Fixup, ADM/DDPM U-Nets, ControlNet's zero convolutions): each block starts "
            "as the identity. So at the first step no gradient reaches the layers that feed only those branches "
            f"(here {layer_words(first)}); the zero layers themselves get one, so after one step they are no longer "
            "zero and the gradient reaches everything. Nothing to change: re-initialising them would undo the "
            "design.")
    learners = [u for u in zero if _all_seeds(u, "grad_norm", lambda g: g > 0)]
    waiting = [u for u in zero if u not in learners]
    one = len(waiting) == 1
    later = (f" {_named(waiting)} {'gets' if one else 'get'} none yet, only because the zero "
             f"{'layers' if len(learners) > 1 else 'layer'} after {'it' if one else 'them'} "
             f"{'pass' if len(learners) > 1 else 'passes'} nothing back; with {'its' if one else 'their'} input "
             f"nonzero, {'it learns' if one else 'they learn'} from the second step.") if waiting else ""
    return (
        f"{_named(zero)} {'has' if len(zero) == 1 else 'have'} weights that are all exactly zero, on purpose "
        "(a zero-initialised readout or residual branch end: Fixup, ADM/DDPM U-Nets, DiT's final layer), so no "
        f"gradient reaches {layer_words(first)} at the first step. {_named(learners)} "
        f"{'gets' if len(learners) == 1 else 'get'} a gradient of {'its' if len(learners) == 1 else 'their'} own "
        f"(dL/dW = g h^T, nonzero), so after one step {'it is' if len(learners) == 1 else 'they are'} no longer "
        f"zero and pass{'es' if len(learners) == 1 else ''} the gradient back.{later} Nothing to change: "
        "re-initialising them would undo the design.")


def _these_layers(acts: str) -> str:
    """"these relu layers"; "identity" is no activation, not a kind of layer (a residual block, a plain
    linear layer), so it is named as such instead of "these identity layers"."""
    named = [a for a in acts.split("/") if a != "identity"]
    if not named:
        return "these layers (no activation of their own)"
    if len(named) < len(acts.split("/")):
        return f"these {'/'.join(named)} layers (and layers without an activation)"
    return f"these {'/'.join(named)} layers"


#: The smallest normal number of each precision a simulation runs in, as a gradient that
#: underflowed is said to be under it.
_SMALLEST_NORMAL = {"float64": "1e-308", "float32": "1e-38", "bfloat16": "1e-38", "float16": "6e-5"}


class VanishingGradient(ArchitectureRule):
    code = "vanishing_gradient"
    remedies = (new_inits, zero_biases, relu_family, _batchnorm, _layernorm, residual)

    def measure(self, result: SimulationResult) -> float:
        result, _ = live_seeds(result)  # a born-dead draw is dead_units' finding
        # a layer the forward detaches gets none at all, wherever it sits on the path
        if _detached_on_path(result):
            return 0.0
        ratio = depth_ratio(result)[0]
        # none reaches any layer behind a designed zero readout: 0, judged as a designed zero init (a note)
        if math.isnan(ratio) and silenced_by_design(result):
            return 0.0
        if _silent_side(result, ratio):
            return 0.0  # a layer the output does not depend on, off the path the ratio runs along
        # a starved middle that skip paths around it hide from the ends (a U-Net without batch norm)
        middle = _starved(result, ratio)
        return middle.ratio if middle is not None else ratio

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        result, _ = live_seeds(result)
        middle = _starved(result, depth_ratio(result)[0]) if not _detached_on_path(result) else None
        if middle is not None:
            severity = t.vanishing(middle.ratio)
            if severity == "warning" and adaptive_steps_even(result, middle.unit.name) is not None:
                return "info"
            return severity
        if _silent_side(result, depth_ratio(result)[0]):
            return "warning"  # (the rest of the network learns; these layers never do)
        if _detached_on_path(result):
            # a warning: a detach may be meant (a target network another rule updates, an EMA),
            # an error where the path's own ratio is one
            ratio = depth_ratio(result)[0]
            return "error" if not math.isnan(ratio) and t.vanishing(ratio) == "error" else "warning"
        if value == 0 and designed_zero_layers(result):
            return "info"  # a designed zero init (a branch end, a readout): learns from the first steps
        severity = t.vanishing(value)
        if severity is None and _steep_saturating(result, t) is not None:
            # a short saturating stack: its rate per layer, not its length, is the finding
            # (onnxsweep19 u01, kerassweep21 u08: 0.14 and 0.11 per layer over 2 steps were healthy)
            severity = "warning"
        if severity == "warning" and adaptive_steps_even(result) is not None:
            return "info"  # (never through saturating activations: adaptive_steps_even says None there)
        return severity

    def severity(self, result: SimulationResult, t: Thresholds) -> tuple[float, str | None]:
        value, severity = super().severity(result, t)
        if severity is None:
            # the forward and backward signal collapsing together (weights uniformly too small):
            # the trunk's ratio leaves the readout out and can stay over the bar (onnxsweep17 u03)
            collapse = signal_collapse(live_seeds(result)[0], t.vanishing_warning)
            if collapse is not None:
                both = collapse.backward < t.vanishing_error and collapse.forward < t.vanishing_error
                return (collapse.backward if math.isnan(value) else value), "error" if both else "warning"
        return value, severity

    def measured_metric(self, result: SimulationResult, t: Thresholds) -> str | None:
        value = self.measure(result)
        live = live_seeds(result)[0]
        if math.isnan(value) and signal_collapse(live, t.vanishing_warning) is not None:
            return "output_grad_ratio_first_to_readout"  # (severity's figure where the ends give none)
        if not _detached_on_path(live) and _starved(live, depth_ratio(live)[0]) is not None:
            return "output_grad_ratio_least_to_last"
        return "output_grad_ratio_first_to_last"

    def measure_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        live = live_seeds(result)[0]
        if metric == "output_grad_ratio_least_to_last":
            # the least reached of the middle layers a skip path goes around, starved or not
            middle = starved_middle(live, warning=math.inf)
            return middle.ratio if middle is not None else None
        if metric == "output_grad_ratio_first_to_last" and not _detached_on_path(live):
            ratio = depth_ratio(live)[0]
            return ratio if math.isfinite(ratio) else None
        if metric == "output_grad_ratio_first_to_readout":
            collapse = signal_collapse(live, t.vanishing_warning)
            return collapse.backward if collapse is not None else None
        return None

    def decisive(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        result = live_seeds(result)[0]
        collapse = signal_collapse(result, t.vanishing_warning)
        if collapse is not None:
            return "output_grad_ratio_first_to_readout", collapse.backward
        # a short saturating stack is judged on its factor per layer where its total is over the bar
        # (before a remedy, and after one that keeps the saturating activations: Xavier's 0.23)
        rate = saturating_rate(result) if not _detached_on_path(result) else None
        if rate is not None and t.vanishing(rate[1]) is None:
            return "per_layer_factor", rate[0]
        return None

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        result, dead = live_seeds(result)
        collapse = signal_collapse(result, t.vanishing_warning)
        if collapse is not None and (math.isnan(value) or t.vanishing(value) is None):
            return _collapse_detection(self.code, severity, value, collapse, t)
        detached = _detached_on_path(result)
        silent = _silent_side(result, depth_ratio(result)[0])
        if silent:
            return _silent_detection(self.code, severity, silent, result, t)
        middle = _starved(result, depth_ratio(result)[0]) if not detached else None
        if middle is not None:
            return _starved_middle(self.code, severity, value, middle, result, t, dead)
        if not detached:
            found = _through_depth(self.code, severity, value, result, t, dead)
            steep = _steep_saturating(result, t) if t.vanishing(value) is None else None
            if steep is not None:
                _short_saturating_stack(found, steep, result, t)
            even = adaptive_steps_even(result) if severity == "info" and t.vanishing(value) == "warning" else None
            if even is not None:
                opt, first, typical = even
                found.summary += (f"; a note under {opt}, which steps every layer by about its rate per weight: the "
                                  f"first layer's first step moves {first:.3g} of its weights, the layers' median "
                                  f"{typical:.3g}, so the early layers learn at the others' pace")
                found.evidence.update(optimizer=opt, first_layer_update_ratio=first, median_update_ratio=typical)
            return found
        ratio, _ = depth_ratio(result)
        names = _named(detached)
        evidence = {"metric": "output_grad_ratio_first_to_last", "value": 0.0, "threshold": t.vanishing_warning,
                    "layers": [u.name for u in detached], "cut_off": True, "detached": True,
                    "grad_ratio": ratio if math.isfinite(ratio) else None}
        return Detection(
            self.code, severity, "output_grad_ratio_first_to_last", 0.0,
            f"no gradient reaches {names}: the forward detaches {'its' if len(detached) == 1 else 'their'} output "
            "on the way to the loss (.detach()), so the weights never change",
            f"{names} {'computes' if len(detached) == 1 else 'compute'} something the loss uses (a gate, a router's "
            "weights, a code), but only through a .detach() or a step with no gradient (an argmin, a rounding, an "
            "index): the loss's gradient stops there, so these weights keep their initial values whatever the "
            "training (a mixture of experts whose router never learns, a gate fixed at random, a VQ-VAE's encoder "
            "without its straight-through estimator z + (q - z).detach()). Give the gradient a path (remove the "
            ".detach(), or pass it straight through); if the weights are meant to be updated otherwise (an "
            "exponential moving average of another network's), freeze them with requires_grad_(False).",
            evidence, detached)


def _short_saturating_stack(found: Detection, steep: tuple[float, float, list[UnitStats]],
                            result: SimulationResult, t: Thresholds) -> None:
    """Says in ``found`` (:func:`_through_depth`'s) why a total over the bar is a finding: a short stack
    whose saturating layers each shrink the gradient :data:`SATURATING_LAYER_FACTOR` or more."""
    factor, ratio, units = steep
    steps = len(units) - 1
    found.evidence.update(per_layer_threshold=SATURATING_LAYER_FACTOR, judged_per_layer_factor=factor,
                          short_saturating_stack=True)
    readout = weighted_units(result)[-1:]
    weight_ratio = (units[0].geo("grad_norm") / readout[0].geo("grad_norm")
                    if readout and readout[0] not in units and readout[0].geo("grad_norm") > 0 else math.nan)
    if math.isfinite(weight_ratio) and weight_ratio > 0:
        found.evidence["weight_grad_ratio_first_to_readout"] = weight_ratio
    found.summary += (f"; a short stack: {fmt(factor)} per layer through its saturating activations, at or under "
                      f"{fmt(SATURATING_LAYER_FACTOR)}, over {steps} steps")
    found.explanation += (
        f" The total, {fmt(ratio)}, stays over the {fmt(t.vanishing_warning)} bar only because the stack is short: "
        f"the rate is what is judged. A sigmoid's slope is at most 1/4 (a tanh's 1), so at LeCun's or Xavier's "
        f"weight variance a sigmoid layer passes back about 0.24 of the gradient; {fmt(factor)} is weights smaller "
        "than that "
        f"(torch's default U(+-1/sqrt(fan_in)) gives 0.14), and one more such layer would take the total to "
        f"{fmt(ratio * factor)}.")
    if "weight_grad_ratio_first_to_readout" in found.evidence:
        found.explanation += (f" Under SGD {layer_words(units[0])}'s weight gradient is {fmt(weight_ratio)} of "
                              f"{layer_words(readout[0])}'s, so it learns about {fmt(1 / weight_ratio)}x slower; an adaptive "
                              "optimizer's per-weight scaling evens the steps out, but not the signal, which "
                              "falls further as the units saturate in training.")


def _collapse_detection(code: str, severity: str, value: float, c: Any, t: Thresholds) -> Detection:
    """vanishing_gradient for :func:`findings.signal_collapse`: both directions' totals and per-layer
    factors in the evidence."""
    first, last = c.units[0].name, c.units[-1].name
    gains = len(c.units) - 1
    evidence = {
        "metric": "output_grad_ratio_first_to_readout", "value": c.backward, "threshold": t.vanishing_warning,
        "layers": [first, last], "depth": len(c.units),
        "grad_ratio": c.backward, "log10_grad_ratio": math.log10(c.backward),
        "per_layer_factor": c.backward_per_layer,
        "forward_ratio": c.forward, "forward_per_layer_factor": c.forward_per_layer,
        "per_layer_threshold": COLLAPSE_LAYER_GAIN,
        "first_output_grad_norm": c.units[0].geo("output_grad_norm"),
        "last_output_grad_norm": c.units[-1].geo("output_grad_norm"),
        "trunk_grad_ratio": value if math.isfinite(value) else None,
        "signal_collapse": True,
    }
    summary = (f"gradient shrinks {fmt(1 / c.backward)}x from {last} back to {first} "
               f"({_steps(gains + 1, c.backward_per_layer)}) and the forward signal {fmt(1 / c.forward)}x from the input "
               f"to {last}'s output ({len(c.units)} layers, {fmt(c.forward_per_layer)} per layer): both directions "
               "collapse, the weights too small throughout")
    explanation = (
        f"Each layer multiplies the backward signal by about {fmt(c.backward_per_layer)} and the forward one by "
        f"about {fmt(c.forward_per_layer)}, both under {fmt(COLLAPSE_LAYER_GAIN)} (weights with under 1/8 of the "
        "variance that keeps the gain at 1; torch's default gives 0.41, He and LeCun 1). Weights uniformly too "
        "small shrink the signal both ways, so the output barely depends on the input and the early layers get "
        "almost no gradient. The weight gradients (a layer's input times its output gradient) shrink alike in "
        "every layer, so their ratio across depth looks balanced: the collapse shows in the signals. "
        "Initialise (or rescale) the weights at the activation's critical variance (He for ReLU, LeCun or "
        "Xavier for tanh/SiLU).")
    return Detection(code, severity, "output_grad_ratio_first_to_readout", c.backward, summary, explanation,
                     evidence, c.units)


def _starved(result: SimulationResult, ratio: float) -> Starved | None:
    """The trunk's starved middle (:func:`starved_middle`) where it is reached less than the
    first layer is (the ends' ratio ``ratio`` is the finding otherwise)."""
    middle = starved_middle(result)
    if middle is None or ratio == 0 or (math.isfinite(ratio) and not middle.ratio < ratio):
        return None
    return middle


def _starved_middle(code: str, severity: str, value: float, middle: Starved, result: SimulationResult,
                    t: Thresholds, left_out: list[int] | None) -> Detection:
    """The vanishing finding on a starved middle: the ends healthy, the layers between starved."""
    unit, first, last, run = middle.unit, middle.first, middle.last, middle.stretch
    weight_ratio = _geo_share(unit, last, "grad_norm")
    act_ratio = _geo_share(unit, first, "activation_std")
    evidence: dict[str, Any] = {
        "metric": "output_grad_ratio_least_to_last", "value": value, "threshold": t.vanishing_warning,
        "layers": [first.name, last.name], "least_reached": unit.name, "starved_middle": True,
        "starved_layers": [u.name for u in run], "grad_ratio": middle.ratio,
        "log10_grad_ratio": math.log10(middle.ratio) if middle.ratio > 0 else None,
        "first_to_last_grad_ratio": middle.first_ratio,
        "least_output_grad_norm": unit.geo("output_grad_norm"),
        "last_output_grad_norm": last.geo("output_grad_norm"),
        "first_output_grad_norm": first.geo("output_grad_norm"),
        **({"weight_grad_ratio_least_to_last": weight_ratio} if math.isfinite(weight_ratio) else {}),
        **({"activation_ratio_least_to_first": act_ratio} if math.isfinite(act_ratio) else {}),
    }
    if left_out:
        evidence["born_dead_seeds_left_out"] = list(left_out)
        evidence["seeds_judged"] = result.seeds
    summary = (f"gradient reaches {layer_words(unit)} {fmt(1 / middle.ratio)}x weaker than {layer_words(last)}, in the middle of "
               f"the path {layer_words(first)} .. {layer_words(last)}: {len(run)} layers ({layer_words(run[0])} .. {layer_words(run[-1])}) get under "
               f"{fmt(t.vanishing_warning)} of it, while skip connections keep the ends healthy (the first layer "
               f"gets {fmt(middle.first_ratio)})")
    parts = [f"Skip connections join {layer_words(first)}'s end of the network to {layer_words(last)}'s by a short path, so "
             "both ends get a healthy gradient; the layers in the middle (a U-Net's bottleneck, an "
             "encoder-decoder's deepest stage) are reached only through the long path, one Jacobian per "
             f"layer, and through {_these_layers(layer_activations(run))} it shrinks there to "
             f"{fmt(middle.ratio)} of the last layer's."]
    if math.isfinite(act_ratio) and act_ratio < 1:
        parts.append(f"The signal shrinks the same way on the way in: {layer_words(unit)}'s activations are "
                     f"{fmt(act_ratio)} of {layer_words(first)}'s")
        if math.isfinite(weight_ratio):
            parts[-1] += f", so its weight gradient (input times output gradient) is {fmt(weight_ratio)} of {layer_words(last)}'s"
        parts[-1] += "."
    parts.append("Unnormalised layers at torch's default init (Var(W) = 1/(3 fan_in)) scale a ReLU layer's "
                 "signal by about sqrt(1/6) = 0.41, so ten of them shrink it about 1e-4. The middle layers "
                 "barely learn; batch norm after each conv (the original U-Net's) or He init keeps the "
                 "gain at 1.")
    return Detection(code, severity, "output_grad_ratio_least_to_last", value, summary, " ".join(parts),
                     evidence, run)


def _geo_share(a: UnitStats, b: UnitStats, metric: str) -> float:
    """a's figure over b's (geometric means over seeds; nan where undefined)."""
    x, y = a.geo(metric), b.geo(metric)
    return x / y if y > 0 and math.isfinite(x) and math.isfinite(y) else math.nan


#: Optimizers whose step divides each weight's gradient by its own running size (its first step is
#: about the rate per weight, whatever the gradient's scale)
ADAPTIVE = frozenset({"adam", "adamw", "nadam", "rmsprop", "adagrad", "adadelta"})
#: ... where the first layer's first step is at least this share of the layers' median, a
#: gradient shrinking through depth does not starve it
EVEN_STEPS = 0.1


def adaptive_steps_even(result: SimulationResult, layer: str | None = None) -> tuple[str, float, float] | None:
    """(optimizer, the first weighted layer's first-step update ratio, the median over the layers)
    where an adaptive optimizer (:data:`ADAPTIVE`) moves the first layer at least
    :data:`EVEN_STEPS` of the median layer's step, else None; ``layer``: that layer's step instead
    of the first's (a starved middle's). A gradient that shrinks through
    depth starves the early layers under SGD, whose step is the gradient; Adam's is the gradient
    over its own running size, so each layer moves about its rate per weight (NeRF's 8-layer ReLU
    MLP at torch's default init shrinks the gradient 559x, 0.41 per layer, and trains under Adam
    5e-4: modsweep26)."""
    opt = result.optimizer
    if opt is None or opt.type not in ADAPTIVE or _through_saturating(result):
        return None
    ratios = _first_step(result)[0]
    ordered = [ratios[u.name] for u in result.units if u.name in ratios and math.isfinite(ratios[u.name])]
    if len(ordered) < 2:
        return None
    typical = float(np.median(ordered))
    judged = ordered[0] if layer is None else ratios.get(layer, math.nan)
    if not typical > 0 or not judged >= EVEN_STEPS * typical:
        return None
    return opt.type, judged, typical


def _through_saturating(result: SimulationResult) -> bool:
    """Whether the gradient shrinks through saturating activations (:data:`MEASURED_SATURATING`:
    sigmoid, tanh, hard sigmoid...) at half or more of the weighted layers it is measured over.
    There the factor each layer takes is the activation's slope (a sigmoid's at most 1/4), which
    falls further as units saturate in training, and an adaptive optimizer's running scale of the
    gradient (Adam's beta2 = 0.999: about a thousand steps of memory) lags behind it: the textbook
    vanishing gradient, which three held-out sweeps' deep sigmoid stacks under Adam were labelled
    (kerassweep16 u06, peersweep8 u01, modsweep30 u02), unlike a ReLU stack whose shrink is its
    weights' fixed scale (NeRF's)."""
    units = [u for u in depth_ratio(result)[1] if u.has_weights]
    return bool(units) and 2 * sum(u.activation in MEASURED_SATURATING for u in units) >= len(units)


#: The factor per layer at or under which ||dL/dh|| shrinking through saturating activations
#: (:func:`_through_saturating`) is a warning over a stack too short for its total to pass
#: ``Thresholds.vanishing_warning``, over two layer-to-layer steps or more (the through-time rule's
#: per-step bar, through depth). A sigmoid's slope is at most 1/4, so at the weight variance that
#: keeps a unit-slope activation's signal (LeCun's 1/fan_in, Xavier's for equal widths) a sigmoid
#: layer passes back about 0.24 (measured 0.23-0.25 over 784-300-300-300 and 128-64-32 stacks), and
#: a tanh layer about 1; a factor of 0.2 or less is weights smaller than that: torch's default
#: U(+-1/sqrt(fan_in)) gives a sigmoid layer 0.14 (onnxsweep19 u01: 784-300-300-300-10, 51x over
#: its 2 steps, fc1's weight gradient 1/138 of the readout's), Keras' RandomNormal(0.05) at fan-ins
#: 21-128-64 0.11 (kerassweep21 u08: 81x). A third such layer would take either past 1e-2.
SATURATING_LAYER_FACTOR = 0.2
#: The most layer-to-layer steps a stack judged by its rate has: at 0.2 a layer, three steps take the
#: total to 8e-3, under the 1e-2 bar, so a longer stack is judged by its total alone, under the
#: thresholds the caller set (a worker given "never" judged 8 sigmoid layers by the rate anyway)
SATURATING_SHORT_STEPS = 3


def saturating_rate(result: SimulationResult) -> tuple[float, float, list[UnitStats]] | None:
    """(the judged factor per layer, the ends' ratio, the chain) of the trunk's gradient where it
    runs through saturating activations (:func:`_through_saturating`) over two to
    :data:`SATURATING_SHORT_STEPS` steps (three to four weighted layers); else None. The judged factor is the larger of ||dL/dh||'s per layer and the
    same per unit (its RMS, where both ends are fully-connected): a norm over more units is larger,
    so a stack that widens towards the output (32-64-128) reads a shrink its widths make, not its
    weights (0.19 per layer at Xavier, 0.27 per unit), and one that narrows reads less than it has."""
    ratio, units = depth_ratio(result)
    units = [u for u in units if u.has_weights]
    if len(units) < 3 or not (ratio > 0 and math.isfinite(ratio)) or not _through_saturating(result):
        return None
    if any(u.type in RECURRENT_OUTPUT_TYPES or u.type == "embedding" for u in units):
        # a feed-forward stack's rate: a recurrent layer's output gradient is spread over its steps
        # (a classifier reading the last one), which the through-time rules judge, and an embedding
        # is a lookup (a 2-layer bidirectional LSTM over 50 tokens read 0.18 a layer from emb)
        return None
    steps = len(units) - 1
    if steps > SATURATING_SHORT_STEPS:
        return None
    factor = ratio ** (1 / steps)
    first, last = units[0], units[-1]
    if first.type == last.type == "linear" and first.fan_out and last.fan_out:
        factor = max(factor, (ratio * math.sqrt(last.fan_out / first.fan_out)) ** (1 / steps))
    return factor, ratio, units


def _steep_saturating(result: SimulationResult, t: Thresholds) -> tuple[float, float, list[UnitStats]] | None:
    """:func:`saturating_rate` where it is :data:`SATURATING_LAYER_FACTOR` or less while the ends'
    ratio stays above ``t.vanishing_warning`` (a short stack); else None."""
    rate = saturating_rate(result)
    if rate is None or t.vanishing(rate[1]) is not None or rate[0] > SATURATING_LAYER_FACTOR:
        return None
    return rate


#: A forward whose activations grow at most this much from the first layer to the last is steady:
#: a gradient that grows backwards beside it is the backward's own (BatchNorm's, or gradients summed
#: over many skip paths), not weights too large for the signal.
FORWARD_STEADY = 1.5
#: Over a longer span the forward is steady too where it grows at most this much per layer step and
#: its total is at most the square root of the gradient's (half its growth or less in log terms, the
#: rest the backward's own): a 1.5x total is 1.004 a layer over 101 layers but 1.22 over two, so a
#: total alone judged depth wrongly (a trained CNN under Adam, activations 4x over 8 layers, 1.22 a
#: step, while its gradient grew 151x, was refused: kerassweep30 F1). Weights too large grow both
#: directions alike (x3 He: 3x a step each way) and stay a warning.
FORWARD_STEADY_STEP = 1.25


def forward_steady(result: SimulationResult, value: float) -> bool:
    """Whether the forward is steady beside a gradient that grows ``value``x backwards: the
    activations grow at most :data:`FORWARD_STEADY` in all, or at most :data:`FORWARD_STEADY_STEP`
    per layer step (:func:`activation_span`) and by at most the square root of ``value``."""
    growth = activation_growth(result)
    if growth <= FORWARD_STEADY:
        return True
    steps = len(activation_span(result)) - 1
    if not (steps >= 1 and growth > 0 and math.isfinite(growth) and value > 0):
        return False
    return growth ** (1 / steps) <= FORWARD_STEADY_STEP and growth * growth <= value


def _backward_only_under_adaptive(result: SimulationResult, value: float) -> tuple[str, float, float, float] | None:
    """(optimizer, first layer's first-step ratio, the layers' median, activation growth) where the
    gradient grows backwards through depth (``value`` is the ends' ratio) while the forward is steady
    (:func:`forward_steady`) and an adaptive optimizer steps the first layer within 10x of the layers'
    median: Adam divides each weight's gradient by its own running size, so a larger gradient at the
    first layers does not make their step larger (the official stacked hourglass, BatchNorm residual
    blocks with skips at every scale and intermediate supervision, under Adam 1e-3: 1.94e3x over 101
    layers at 1.08 a layer, activations 0.996x; modsweep33 h03). Under SGD the step is the gradient,
    and a warning."""
    growth = activation_growth(result)
    if depth_ratio(result)[0] != value or not forward_steady(result, value):
        return None
    even = adaptive_steps_even(result)
    if even is None or even[1] > 10 * even[2]:
        return None
    return (*even, growth)


#: An activation std from which a forward's growth matters by its size alone, whatever the weights
#: learned: a std of 1e4 puts the tail of a layer's outputs (6.5 std) at float16's largest value,
#: 65504, so mixed-precision training overflows, and a loss on such outputs is huge.
FORWARD_OVERFLOW_STD = 1e4


def learned_from_training(result: SimulationResult) -> bool:
    """Whether ``result``'s weights are known to be trained: a model file's stored weights (or a
    live module said to be trained, ``check_module(..., trained=True)``), ``result.checkpoint``.
    The "what the weights learned" notes (:func:`learned_forward_growth`, :func:`learned_stretch`,
    :func:`learned_logits`, :func:`learned_output_scale`) apply there only: a spec, a reinitialised
    file or a live module is at initialisation, where nothing was learned and a growth the weights'
    scale does not predict is the activations' own (peersweep18: a fresh 5x Linear + exp stack
    whose logits of std 1e20 read "confident outputs the weights learned")."""
    return result.checkpoint


def largest_activation_std(result: SimulationResult) -> float:
    """The largest per-element activation std any top-level layer with weights reaches in any seed
    (nan where none is measured): what :data:`FORWARD_OVERFLOW_STD` is judged against."""
    weighted = [u for u in result.units if u.depth == 0 and u.has_weights and "activation_std" in u.values]
    return max((float(np.nanmax(u.values["activation_std"])) for u in weighted
                if np.any(np.isfinite(u.values["activation_std"]))), default=math.nan)


def learned_forward_growth(result: SimulationResult, t: Thresholds) -> tuple[float, float, float] | None:
    """(the growth the weights' scale predicts over the activation span, the backward ratio, the
    largest activation std) where the forward alone crosses the through-depth bar as structure the
    weights learned: the per-element activation std grows past ``t.exploding_warning`` from the
    first layer to the last, while ||dL/dh|| over the same trunk stays under it (a gradient reaches
    it), no layer's std reaches :data:`FORWARD_OVERFLOW_STD`, and i.i.d. weights of the layers'
    scales (:func:`scale_growth`) would grow it less than the bar. None otherwise (at
    initialisation the scale predicts what is measured, so an init too large stays a warning).

    A forward growth is an exploding gradient's sign at initialisation, where random weights grow
    both directions alike; a trained net fed N(0, 1) inputs (their real scale unknown) can grow the
    forward through what it learned: iDeepLC's retention-time regressor, whose conv kernels sum to
    about +4.7 each and multiply the positive mean of their ReLU inputs, grows 172x over 5 layers at
    0.41-0.62x He's scale while its gradient grows 76x (onnxsweep18 h04)."""
    if not learned_from_training(result):
        return None  # only stored weights are known to be trained
    ratio = depth_ratio(result)[0]
    growth = activation_growth(result)
    if not (growth > t.exploding_warning and 0 < ratio <= t.exploding_warning):
        return None
    span = activation_span(result)
    largest = largest_activation_std(result)
    if not largest < FORWARD_OVERFLOW_STD:
        return None
    predicted = scale_growth(span[1:])
    if not predicted < t.exploding_warning:
        return None
    return predicted, ratio, largest


#: How many times what the weights' scale predicts a trained checkpoint's gradient growth must be
#: before the rest is read as structure the weights learned (:func:`learned_backward_growth`): a
#: decade, as for a regressor's output scale (:data:`OUTPUT_SCALE_GAIN`), so that weights a little
#: over their critical scale, whose own gain compounds to most of the growth, stay a warning.
LEARNED_EXCESS = 10.0


def learned_backward_growth(result: SimulationResult, t: Thresholds) -> tuple[float, float, float] | None:
    """(the growth i.i.d. weights of the layers' scales predict over the gradient's chain, the
    measured ratio, the largest activation std) where a trained checkpoint's gradient grows past the
    through-depth bar by structure its weights learned, not their scale: the ratio is in the warning
    band (``t.exploding``), the layers' scales (:func:`scale_growth` after the chain's first layer,
    the Jacobians the gradient passes back through) predict under the bar and at most
    1/:data:`LEARNED_EXCESS` of the measured growth, no layer's weights are at
    :data:`OVERSIZED_LAYER_GAIN` or more, and no activation std reaches :data:`FORWARD_OVERFLOW_STD`.
    None otherwise: at initialisation, or with weights too large, the scale predicts the growth.

    The gradient a trained head sends back is low-rank (a 2-class softmax's is one direction), and
    training lines each layer's strongest directions up with the next's, so it grows along them far
    more than random weights of the same scale would: a trained Keras CNN (5 linear convs, ReLU
    dense, Adam 1e-5), every kernel at 0.27-1.4x the scale that keeps the signal, grows its gradient
    151x where its scales give about 2x (kerassweep30 F1); x8 weights predict the growth and stay a
    warning. :func:`learned_forward_growth` is the same judgement of a forward that grows alone."""
    if not learned_from_training(result):
        return None  # only stored weights are known to be trained
    ratio, units = depth_ratio(result)
    if t.exploding(ratio) != "warning" or len(units) < 2:
        return None
    if any(u.type in RECURRENT_CELLS for u in units):
        # the scale model is a feed-forward layer's Jacobian; a recurrent layer's gain compounds over
        # its steps too (three relu LSTMs with open gates summing their inputs grew 831x where their
        # kernels' scale gave 0.02x: the cells' fault, not learned structure)
        return None
    if any(scale_gain(u) >= OVERSIZED_LAYER_GAIN for u in units):
        return None  # a layer too large for its activation: an init (or a blow-up) to fix, whatever the rest
    predicted = scale_growth(units[1:])
    if not (predicted < t.exploding_warning and ratio >= LEARNED_EXCESS * predicted):
        return None
    largest = largest_activation_std(result)
    if not largest < FORWARD_OVERFLOW_STD:
        return None
    return predicted, ratio, largest


def learned_stretch(result: SimulationResult, t: Thresholds) -> tuple[float, float] | None:
    """(the per-layer gain the weights' scale gives, the gradient's growth over the stretch) where
    :func:`steep_stretch`'s steep gain is structure the weights learned, not their scale: the
    weights are at or below the critical scale (:func:`stretch_scale` under 1: random weights of
    it would not grow the signal at all), or i.i.d. weights of the layers' scales would stay under
    the per-layer bar (:data:`STEEP_LAYER_GAIN`) while the gradient over the same stretch grows
    under the through-depth bar (``t.exploding_warning``), as :func:`learned_forward_growth` judges
    a whole trunk. None otherwise: a scale of 2 or more gives the gain itself (weights x8 on a
    trained MLP: 3.3x per layer, onnxsweep14 u09), an init to fix.

    A trained autoencoder's decoder 32-128 widens after its bottleneck: its activations grow 2.63x
    per layer over dense_4..dense_6 and its gradient 5.6x over them, where its weights' scale gives
    1.01x per layer (kerassweep20 h06, labelled healthy)."""
    if not learned_from_training(result):
        return None  # only stored weights are known to be trained
    steep = steep_stretch(result)
    if steep is None:
        return None
    run = steep[0]
    scale = stretch_scale(run)
    first, last = run[0].geo("output_grad_norm"), run[-1].geo("output_grad_norm")
    grown = first / last if first > 0 and last > 0 and math.isfinite(first / last) else math.nan
    if scale < 1 or (scale < STEEP_LAYER_GAIN and grown <= t.exploding_warning):
        return scale, grown
    return None


def learned_logits(result: SimulationResult) -> tuple[float, float] | None:
    """(the logit std the weights' scale predicts, the measured one) where :func:`logit_scale`'s
    logits are over :data:`LOGIT_STD_WARNING` but i.i.d. weights of every layer's scale, from the
    first layer's input RMS through the output layer (one chain, no norm), would keep them under it:
    a trained classifier's confident logits on N(0, 1) inputs, not weights too large (kerassweep19
    h07: a trained 4-layer accelerometer classifier, logits std 116 where its weights' scales give
    about 7). Weights x10 or an N(0, 1) init predict what they give (thousands); None there."""
    if not learned_from_training(result):
        return None  # only stored weights are known to be trained
    logits = logit_scale(result)
    if logits is None:
        return None
    out, std = logits
    chain = trunk(result)
    if out in chain or len(towers(result, chain)) != 1:
        return None
    chain = chain + [out]
    first_in = chain[0].geo("input_mean_square")
    # the weights' RMS, their mean counted: logits are sums of fan_in products, and weights of one
    # sign (an all-positive U(0, 1) init, modsweep41) add their mean up over inputs that are not
    # centred (ReLU outputs), which their std alone (0.29 of 0.58) leaves out: 6 predicted, 1e5 measured
    predicted = (math.sqrt(first_in) * scale_growth(chain, rms=True) if first_in > 0 and math.isfinite(first_in)
                 else math.nan)
    return (predicted, std) if predicted < LOGIT_STD_WARNING else None


@dataclass(frozen=True)
class OutputScale:
    """A trained regressor's output far from the unit scale, which its weights' scale does not give
    (:func:`learned_output_scale`): ``mean``, ``std`` and ``rms`` of the output layer's values on
    the simulated inputs, ``scale_gain`` the growth i.i.d. weights of the layers' scales would give
    from the first layer whose gain can be told to the output, ``target_rms`` the targets' RMS where
    their range is given, and ``on_targets`` whether the output is within a decade of it."""

    unit: UnitStats
    mean: float
    std: float
    rms: float
    scale_gain: float
    target_rms: float | None
    on_targets: bool
    #: where the layers' weights are too large themselves (a gain of :data:`OVERSIZED_LAYER_GAIN`
    #: or more, or :data:`OUTPUT_SCALE_GAIN` to the output): the output's RMS their scale predicts
    #: from the input's (:func:`_output_scale_excess`), under 1/:data:`LEARNED_EXCESS` of the
    #: measured one; None where the weights' scale is small
    predicted_rms: float | None = None
    #: each chain layer's :func:`scale_gain` where ``predicted_rms`` is given, else empty
    gains: tuple[tuple[str, float], ...] = ()


#: Under this growth from the weights' scale alone (the product of :func:`scale_gain` over the
#: layers to the output) a regression output far from the unit scale is what the weights learned:
#: the finding's growth is 1e2 or more, at least ten times what their scale gives. Usual inits
#: give about 1 per layer (He, LeCun) or less (torch's default, Xavier on ReLU), and an init too
#: large 3x or more per layer (:data:`OVERSIZED_LAYER_GAIN`), which is never read as learned; a
#: trained linear head sits above LeCun's scale (a stock-price LSTM's output layers, 1.6-2x).
OUTPUT_SCALE_GAIN = 10.0


def learned_output_scale(result: SimulationResult) -> OutputScale | None:
    """The output scale of a trained regressor where it is what the network learned, not its
    weights' scale: the check is of a model file's stored weights (``result.checkpoint``), under a
    regression loss, the output layer's values have a root mean square of :data:`FAR_TARGET_SCALE`
    or more (far from the unit scale of standardised targets), and i.i.d. weights of the layers'
    scales would grow the signal less than :data:`OUTPUT_SCALE_GAIN` from the first layer whose gain
    can be told to the output (on each of several towers), nor does any such layer reach
    :data:`OVERSIZED_LAYER_GAIN`; or, where they do, the output's RMS is still :data:`LEARNED_EXCESS`
    times or more what i.i.d. weights of the layers' scales give (:func:`_output_scale_excess`,
    ``predicted_rms``): weights a regression on raw targets grew large and lined up to reach them
    (kerassweep30 W2: a 12-64-32-1 salary regressor at 5-12x the scale that keeps the signal, its
    output RMS 70x what that scale gives). None otherwise: a reinitialised or live network, a
    classifier, or i.i.d. weights too large, which give that growth themselves.

    A regressor trained on raw targets (prices in the tens of thousands, a diabetes score of
    25-346) learns the gain that reaches them: its forward grows through its layers by as much, and
    in a ReLU or linear chain its gradient mirrors it, so depth ratios of 1e4-1e5 read as an
    exploding gradient "with the weights too large" where the weights sit under He's scale
    (kerassweep24: stock-price LSTMs whose output std is 3.6e4-6e4, 0.6-1.2x He's scale)."""
    if not result.checkpoint or _loss_kind(result) not in REGRESSION:
        return None
    out = output_layer(result)
    if not out.has_weights or "activation_std" not in out.values:
        return None
    mean, std = out.mean("activation_mean"), out.geo("activation_std")
    mean = mean if math.isfinite(mean) else 0.0
    rms = math.hypot(mean, std)
    if not (math.isfinite(rms) and rms >= FAR_TARGET_SCALE):
        return None
    chain = [u for u in trunk(result) if u is not out] + [out]
    grown, oversized = 0.0, False
    for tower in towers(result, chain):
        gains = [scale_gain(u) for u in tower]
        told = [g for g in gains if g > 0 and math.isfinite(g)]
        if not (gains[-1] > 0 and math.isfinite(gains[-1])):
            return None
        oversized = oversized or any(g >= OVERSIZED_LAYER_GAIN for g in told)
        # from the first layer's output, where the activations' growth is read from: its own gain
        # scales its input, not the growth (a first layer that cannot be told, an LSTM, is skipped)
        first_told = gains[0] > 0 and math.isfinite(gains[0])
        total = math.prod(told[1:] if first_told else told)
        grown = max(grown, total)
    predicted: float | None = None
    if oversized or not grown < OUTPUT_SCALE_GAIN:
        # weights too large for their fan-in give a large output by their scale alone (an init to
        # fix, stored or drawn); a raw-target regressor's weights also grow large, but aligned, so
        # the output is a decade or more past what that scale gives (kerassweep30 W2: a 12-64-32-1
        # salary regressor at 5-12x the keeping scale, output RMS 8.9e4 where its scale gives ~6e2)
        predicted = _output_scale_excess(result, chain, rms)
        if predicted is None:
            return None
    target_rms = None
    if result.target_range is not None:
        lo, hi = result.target_range
        target_rms = math.sqrt(((lo + hi) / 2) ** 2 + (hi - lo) ** 2 / 12)  # U(lo, hi)'s
    on_targets = target_rms is not None and target_rms > 0 and 0.1 <= rms / target_rms <= 10
    chain_gains = tuple((u.name, scale_gain(u)) for u in chain) if predicted is not None else ()
    return OutputScale(out, mean, std, rms, grown, target_rms, on_targets, predicted, chain_gains)


def _output_scale_excess(result: SimulationResult, chain: list[UnitStats], rms: float) -> float | None:
    """The output's root mean square that i.i.d. weights of the layers' scales give (the first
    layer's input RMS times :func:`scale_growth` over ``chain``, the weights' mean counted, as
    :func:`learned_logits` predicts logits), where the measured ``rms`` is :data:`LEARNED_EXCESS`
    times that or more: the output's scale is structure the weights learned, whatever their size.
    None otherwise (weights too large predict the output they give: N(0, 2^2) at width 32, stored
    or drawn), or where the prediction cannot be made: several towers, a norm, a layer outside
    the theory (an LSTM)."""
    if len(towers(result, chain)) != 1:
        return None
    first_in = chain[0].geo("input_mean_square")
    if not (first_in > 0 and math.isfinite(first_in)):
        return None
    predicted = math.sqrt(first_in) * scale_growth(chain, rms=True)
    if not (predicted > 0 and math.isfinite(predicted) and rms >= LEARNED_EXCESS * predicted):
        return None
    return predicted


def _residual_if_normalised(ctx: Context) -> list[Remedy]:
    """Skip connections, where the growth is the normalisation's own gain (a deep plain BN net):
    a new init or a norm does nothing there, and elsewhere residuals do not stop a gain above 1."""
    return residual(ctx) if ctx.detection.evidence.get("normalisation_gain") else []


def _backward_growth_causes(result: SimulationResult) -> str:
    """What can grow the gradient backwards with a steady forward, of what ``result``'s network holds:
    a batch norm (a normalised unit), gradients summed over skip paths (a live module's residual sums),
    else a loss term whose gradient is large where it reads the layers (a VAE's log-variance through
    log sigma^2, whose gradient grows as sigma nears 0; modsweep43 jrogul_vae_logsigma was put down to
    "a batch norm's, or gradients summed over many skip paths", neither of which it has). A spec's
    network (no graph read: no feeds) gets the general list."""
    if not result.feeds:
        return "a batch norm's, or gradients summed over many skip paths"
    causes = []
    if any(u.normalised for u in result.units):
        causes.append("a batch norm's")
    if result.summed:
        causes.append("gradients summed over many skip paths")
    if causes:
        return ", or ".join(causes)
    return ("this network has no batch norm and no skip path, so a term of the loss whose gradient is large where "
            "it reads the layers: a log-variance through log(sigma^2), or a division by a layer's output, whose "
            "gradient grows as that output nears 0")


def _implied_softmax_logits(result: SimulationResult, out: UnitStats, std: float) -> tuple[str, str]:
    """(summary clause, explanation) for logits over :data:`LOGIT_STD_WARNING` whose softmax (or
    sigmoid) is the check's own guess (``SimulationResult.squash_implied``): conditional, a note."""
    kind = _loss_kind(result)
    squash = "sigmoid" if kind == "binary_cross_entropy" else "softmax"
    summary = (f"the outputs of {layer_words(out)} have a std of {fmt(std)} (over {fmt(LOGIT_STD_WARNING)}), which "
               f"would saturate the {kind} loss's {squash} from the first step if they are class scores; a note: no "
               f"loss was given and nothing in the graph makes them probabilities, so that loss is the check's own "
               "guess (give --loss: mse if they are values, such as continuous actions or a regression)")
    explanation = (
        f"No loss was given, so the check guessed {kind} from the output's shape, and no {squash} in the graph "
        f"reads these outputs to confirm that they are class scores. Under that guess the outputs' std of "
        f"{fmt(std)} (a loss on logits expects about 1) would saturate the {squash}: a sample the net gets right "
        "would pass almost no gradient and one it gets wrong a loss and gradient the size of the logits. If "
        "they are values (continuous actions, a regression, a latent), their size is no fault: check the "
        "model with the loss it is trained with (--loss).")
    return summary, explanation


class ExplodingGradient(ArchitectureRule):
    code = "exploding_gradient"
    remedies = (
        bounded_cells,
        input_normalisation,
        new_inits,
        scaled_residual,
        _residual_if_normalised,
        _batchnorm,
        _layernorm,
        clipping,
        learning_rate,
        decay,
    )

    def measure(self, result: SimulationResult) -> float:
        result, _ = live_seeds(result)  # a born-dead draw is dead_units' finding
        # Gradients growing backwards or activations growing forwards: whichever is worse.
        values = [
            v for v in (depth_ratio(result)[0], forward_growth(result)) if not math.isnan(v)
        ]
        return max(values) if values else math.nan

    def severity(self, result: SimulationResult, t: Thresholds) -> tuple[float, str | None]:
        value, severity = super().severity(result, t)
        if math.isnan(value):
            # no depth to measure a growth over (one weight layer: a logistic or softmax regression),
            # but the logits' size is judged however shallow the net (peersweep22 ips13: raw features
            # into a 9 -> 2 regression, logits std 180, no finding)
            live, _ = live_seeds(result)
            if logit_scale(live) is not None and learned_logits(live) is None:
                # a note where the softmax they saturate is the check's own guess (no loss given,
                # none in the graph): as documented for an implied loss's pairings
                return value, "info" if live.squash_implied else "warning"
        return value, severity

    def remains(self, result: SimulationResult, metric: str) -> bool:
        # a net with no depth still has the logits its shallow finding judges (:meth:`severity`): a
        # remedy's changed network is judged by them (its `judged` figure), not "not measured"
        return super().remains(result, metric) or logit_std(live_seeds(result)[0]) is not None

    def _shallow_logits(self, severity: str, result: SimulationResult, t: Thresholds) -> Detection:
        """The finding on saturated logits of a net with no depth to grow over (:meth:`severity`)."""
        found = logit_scale(result)
        assert found is not None
        out, std = found
        kind = _loss_kind(result)
        squash = "sigmoid" if kind == "binary_cross_entropy" else "softmax"
        evidence: dict[str, Any] = {"metric": EXPLODING_METRIC, "value": None, "threshold": t.exploding_warning,
                                    "layers": [out.name], "logit_std": std, "logit_std_threshold": LOGIT_STD_WARNING,
                                    "output_layer": out.name, "depth": 1}
        summary = (f"the logits out of {layer_words(out)} have a std of {fmt(std)} (over {fmt(LOGIT_STD_WARNING)}): "
                   f"the {kind} loss's {squash} is saturated from the first step")
        if result.squash_implied:
            # that softmax is the check's own guess: said as one, a note (:meth:`severity`)
            summary, explanation = _implied_softmax_logits(result, out, std)
            evidence.update(loss_implied=True, note_reason="loss_implied")
            return Detection(self.code, severity, EXPLODING_METRIC, math.nan, summary, explanation, evidence, [out])
        raw = _raw_input_logits(result, std)
        if raw is not None:
            evidence.update(input_rms=raw, logit_growth=std / raw, inputs_far=True)
            summary += f" by the inputs' scale ({fmt(std / raw)}x the input's RMS of {fmt(raw)})"
            cause = (f"{layer_words(out)} reads inputs of root mean square {fmt(raw)}, where an initialisation "
                     "assumes about 1, and a linear layer scales its output with its input: standardise the inputs.")
        else:
            cause = "The weights are several times too large for their fan-in (an init like N(0, 1), or weights scaled up)."
        explanation = (f"The network has a single weight layer, so there is no growth through depth to measure, but "
                       f"its logits (std {fmt(std)}) are orders of magnitude larger than a loss on logits expects "
                       f"(about unit scale), so the {squash} is saturated: a sample the net gets right passes almost "
                       "no gradient and one it gets wrong a loss and gradient the size of the logits. " + cause)
        return Detection(self.code, severity, EXPLODING_METRIC, math.nan, summary, explanation, evidence, [out])

    @staticmethod
    def note_reason(value: float, result: SimulationResult, t: Thresholds) -> str | None:
        """Why growth of ``value`` on ``result`` (its live seeds) is a note, not a warning (a key of
        :data:`NOTE_REASONS`); None where it is not a note."""
        severity = t.exploding(value)
        # (a shallow chain's blow-up, under the through-depth bar, may be a regressor's output scale too)
        scaled = (learned_output_scale(result)
                  if severity is not None or signal_blowup(result, t.exploding_warning) is not None else None)
        if scaled is not None and scaled.on_targets:
            return "info"  # a trained regressor's gain to the targets given: what it must learn
        if severity == "warning" and depth_ratio(result)[0] == value and absorbed_by_normalisation(result, t):
            return "normalisation"  # scale-invariant layers absorb it (findings.absorbed_by_normalisation)
        if severity == "warning" and scaled is None and depth_ratio(result)[0] == value and (
                learned_backward_growth(result, t) is not None):
            # a checkpoint's gradient grown past what its weights' scale gives: learned, not an init
            # (a regressor's raw output scale, ``scaled``, is named as that instead)
            return "learned_structure"
        if severity == "warning" and _backward_only_under_adaptive(result, value) is not None:
            return "adaptive_optimizer"
        if severity is not None and learned_forward_growth(result, t) is not None:
            return "learned_structure"  # the forward alone, past what the weights' scale gives: not an init
        if severity is None and steep_stretch(result) is not None:
            # a shallow net under the through-depth bar whose every layer multiplies the gradient
            # as no init does: the depth, not the init, keeps the total small. Where the weights'
            # scale does not give that gain (at or below the critical one), it is learned structure,
            # a trained checkpoint's: a note stating it, not an init to fix (onnxsweep14 h06)
            return "learned_structure" if learned_stretch(result, t) is not None else None
        if severity is None and logit_scale(result) is not None:
            # a shallow net whose weights are all too large: the first/last ratio leaves the
            # readout out, but its logits saturate the loss's softmax or sigmoid (onnxsweep11 b10);
            # a note where the weights' scale would not make them that large (a trained classifier's)
            # and a note where the softmax they saturate is only the check's guess: no loss was given
            # and nothing in the graph makes the outputs probabilities (onnxsweep30 dogfight_ace:
            # clipped continuous actions beside a shoot logit, a warning under a cross-entropy nobody gave)
            if learned_logits(result) is not None:
                return "learned_structure"
            return "loss_implied" if result.squash_implied else None
        return None

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        result, _ = live_seeds(result)
        if self.note_reason(value, result, t) is not None:
            return "info"
        severity = t.exploding(value)
        if severity is None and (steep_stretch(result) is not None or logit_scale(result) is not None):
            return "warning"  # (the gain or the logits' size not learned: note_reason)
        blowup = signal_blowup(result, t.exploding_warning) if severity is None else None
        if blowup is not None:
            # a shallow chain whose every (or most) layer's weights are several times too large for
            # its activation: the trunk's ratio leaves the readout out, the signals' whole way grows
            # past the bar (modsweep37 u02)
            return t.exploding(min(blowup.backward, blowup.forward))
        return severity

    def decisive(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        # the growth from the readout back to the first layer, where that is what is judged (the
        # trunk's own ratio under the bar, no steep stretch nor saturated logits): on a remedy's
        # re-simulation too, whatever it gives
        result, _ = live_seeds(result)
        value = self.measure(result)
        under = math.isnan(value) or t.exploding(value) is None
        if under and steep_stretch(result) is None and (logits := logit_scale(result)) is not None:
            # the finding fires on the logits' size, not on the growth quoted as its metric: a remedy
            # is judged by them (peersweep22 baseCNN_miss_norm: "FIXED: ... 1.73 -> 2.35", the growth
            # risen, while standardised inputs took the logits' std from 225 to about 1)
            return "logit_std", logits[1]
        if under and steep_stretch(result) is None and logit_scale(result) is None:
            signals = chain_signals(result)
            if signals is not None:
                return "output_grad_ratio_first_to_readout", signals[1]
        return None

    def decisive_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        result, _ = live_seeds(result)
        if metric == "logit_std":
            found = logit_std(result)  # under the bar too: what the remedy brought them to
            return found[1] if found is not None else None
        return super().decisive_as(metric, result, t)

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        result, dead = live_seeds(result)
        if math.isnan(value):
            return self._shallow_logits(severity, result, t)
        reason = self.note_reason(value, result, t) if severity == "info" else None
        det = _through_depth(self.code, severity, value, result, t, dead, reason)
        even = _backward_only_under_adaptive(result, value) if reason == "adaptive_optimizer" else None
        if even is not None:
            opt, first, typical, growth = even
            det.explanation = (
                f"The gradient grows {fmt(value)}x backwards through depth while the forward stays steady (the "
                f"activations {fmt(growth)}x from the first layer to the last), so the growth is the backward's own "
                f"({_backward_growth_causes(result)}), not weights too large for the "
                f"signal. Under {opt} each weight's gradient is divided by its own running size, so a larger gradient "
                f"at the first layers does not make their steps larger: the first layer's first step moves "
                f"{fmt(first)} of its weights, the layers' median {fmt(typical)}. Under plain SGD the step is the "
                "gradient, and this growth would be a warning.")
            det.summary += (f"; a note under {opt}: the forward is steady (activations {fmt(growth)}x from the first "
                            f"layer to the last) and {opt} steps every layer by about its rate per weight, the first "
                            f"layer's first step {fmt(first)} of its weights against the layers' median {fmt(typical)}")
            det.evidence.update(optimizer=opt, first_layer_update_ratio=first, median_update_ratio=typical)
        learned_backward = learned_backward_growth(result, t) if reason == "learned_structure" else None
        if learned_backward is not None:
            predicted, backward, largest = learned_backward
            growth = activation_growth(result)
            det.evidence.update(learned_structure=True, weight_scale_growth=predicted,
                                largest_activation_std=largest, overflow_std=FORWARD_OVERFLOW_STD)
            det.summary += (f"; a note: the weights' scale gives {fmt(predicted)}x over these layers, the rest is "
                            "structure the weights learned, not their scale")
            det.explanation = (
                "Backpropagation multiplies one Jacobian per layer, and freshly drawn random weights multiply the "
                f"gradient by their scale: i.i.d. weights of these layers' scales would grow it {fmt(predicted)}x over "
                f"them, where it grows {fmt(backward)}x (the activations {fmt(growth)}x from the first layer to the "
                "last). No layer's weights are too large for its activation. The rest is what training built: the "
                "gradient a trained output layer sends back lies in few directions, and each trained layer's "
                "strongest directions line up with the next one's, so it grows along them far more than random "
                f"weights would. The largest activation std, {fmt(largest)}, is under {fmt(FORWARD_OVERFLOW_STD)}. "
                "That is a trained network's, not an initialisation to fix (a new init would discard the "
                "training); an adaptive optimizer such as Adam divides each weight's gradient by its own running "
                "size, and gradient clipping bounds a step if training on is unstable. Check the model with its "
                "weights reinitialised to judge its initialisation.")
        learned_forward = learned_forward_growth(result, t) if reason == "learned_structure" else None
        if learned_forward is not None:
            predicted, backward, largest = learned_forward
            det.evidence.update(learned_structure=True, weight_scale_growth=predicted,
                                largest_activation_std=largest, overflow_std=FORWARD_OVERFLOW_STD)
            det.summary += (f"; a note: only the forward grows past the {fmt(t.exploding_warning)}x bar (the gradient "
                            f"{fmt(backward)}x over the same layers), and the weights' scale gives {fmt(predicted)}x: "
                            "structure the weights learned, not their scale")
            det.explanation = (
                "Backpropagation multiplies one Jacobian per layer, and freshly drawn random weights grow the "
                "forward and the gradient alike, so a forward growing this much means weights too large. Here the "
                f"gradient grows {fmt(backward)}x, under the bar, and random weights of these layers' scales would "
                f"change the activations' per-element std by {fmt(predicted)}x over them: the rest is what the weights "
                "learned (a kernel whose weights have a positive mean multiplies the positive mean of its ReLU "
                "inputs by their sum), measured on standard-normal inputs whose scale the file does not give. The "
                f"largest activation std, {fmt(largest)}, is under {fmt(FORWARD_OVERFLOW_STD)} (float16's range is "
                "reached from there). Check the model on inputs of their real range, or with its weights "
                "reinitialised to judge its initialisation.")
        steep = steep_stretch(result)
        under = value < t.exploding_warning
        # saturated logits are said whether or not the trunk's own growth is past the bar: the trunk
        # leaves the readout out, where most of an oversized init's growth is (modsweep41
        # udacity_init_uniform01: U(0, 1) weights, 169x over fc1 .. fc2 quoted, logits std 1.03e5 unsaid)
        logits = logit_scale(result) if (steep is None or not under) else None
        if logits is not None:
            out, std = logits
            det.evidence.update(logit_std=std, logit_std_threshold=LOGIT_STD_WARNING, output_layer=out.name)
        if logits is not None and not under:
            out, std = logits
            first_in = math.sqrt(det.units[0].geo("input_mean_square")) if det.units else math.nan
            if learned_logits(result) is None:
                grown = ""
                if first_in > 0 and math.isfinite(first_in):
                    det.evidence.update(input_rms=first_in, logit_growth=std / first_in)
                    grown = f", {fmt(std / first_in)}x the input's RMS of {fmt(first_in)}"
                kind = _loss_kind(result)
                if result.squash_implied:
                    # the trunk's growth is the finding; the softmax is only the check's guess
                    det.evidence["loss_implied"] = True
                    det.summary += "; " + _implied_softmax_logits(result, out, std)[0]
                else:
                    det.summary += (f"; the logits out of {layer_words(out)} have a std of {fmt(std)} (over "
                                    f"{fmt(LOGIT_STD_WARNING)}{grown}): the {kind} loss's "
                                    f"{'sigmoid' if kind == 'binary_cross_entropy' else 'softmax'} is saturated "
                                    "from the first step")
                det.explanation += (
                    f" The growth quoted is over the hidden layers; {layer_words(out)}, the output layer, multiplies it "
                    f"again, to logits of std {fmt(std)} where a loss on logits expects about 1, so the softmax "
                    "or sigmoid is saturated: a sample the net gets right passes almost no gradient and one it "
                    "gets wrong a loss and gradient the size of the logits.")
        elif logits is not None and severity == "info" and (confident := learned_logits(result)) is not None:
            predicted = confident[0]
            det.evidence.update(learned_structure=True, weight_scale_logit_std=predicted)
            det.summary += (f"; a note: the logits out of {layer_words(out)} have a std of {fmt(std)} (over "
                            f"{fmt(LOGIT_STD_WARNING)}) where the weights' scale gives {fmt(predicted)}: confident "
                            "outputs the weights learned, not weights too large")
            det.explanation = (
                f"The logits' std is {fmt(std)} on standard-normal inputs, so the loss's softmax or sigmoid is "
                f"saturated there; but random weights of every layer's scale would give logits of std {fmt(predicted)}, "
                "under the bar: the size comes from how the trained layers line up with each other and with the "
                "inputs (a trained classifier's confident outputs), not from weights too large for their fan-in. "
                "Whether real inputs saturate it depends on their range, which the weights do not give: check "
                "the model on inputs of that range.")
        elif logits is not None and reason == "loss_implied":
            # logits under the bar of growth whose size is judged only under the check's own guess
            # of a loss: a note, conditional (:meth:`note_reason`)
            out, std = logits
            words, det.explanation = _implied_softmax_logits(result, out, std)
            det.evidence["loss_implied"] = True
            det.summary += "; " + words
        elif logits is not None and (raw := _raw_input_logits(result, std := logits[1])) is not None:
            # inputs far from unit scale, the logits under the bar once divided by their RMS: the
            # inputs' scale, not the weights' (peersweep22 baseCNN_miss_norm: He weights, 0..255
            # pixels of RMS 147, logits 225, "weights too large" said)
            out = logits[0]
            det.evidence.update(input_rms=raw, logit_growth=std / raw, inputs_far=True)
            det.summary += (f"; the logits out of {layer_words(out)} have a std of {fmt(std)} (over {fmt(LOGIT_STD_WARNING)}), "
                            f"{fmt(std / raw)}x the input's RMS of {fmt(raw)}: the {_loss_kind(result)} loss's "
                            f"{'sigmoid' if _loss_kind(result) == 'binary_cross_entropy' else 'softmax'} is saturated "
                            "from the first step by the inputs' scale")
            det.explanation = (
                f"The first layer reads inputs of root mean square {fmt(raw)}, where an initialisation (He, "
                "Xavier, LeCun) assumes about 1. ReLU and linear layers scale their output with their input, so "
                f"every activation, and the logits (std {fmt(std)}, only {fmt(std / raw)}x the input's RMS), is "
                f"about {fmt(raw)} times what the same weights give on unit-scale inputs: the weights are not what "
                "is too large. The loss on logits expects about 1, so its softmax or sigmoid is saturated: a sample "
                "the net gets right passes almost no gradient and one it gets wrong a loss and gradient the size "
                "of the logits. Standardise the inputs (raw pixels: divide by 255).")
        elif logits is not None:
            out, std = logits
            det.summary += (f"; the logits out of {layer_words(out)} have a std of {fmt(std)} (over {fmt(LOGIT_STD_WARNING)}): "
                            f"the {_loss_kind(result)} loss's {'sigmoid' if _loss_kind(result) == 'binary_cross_entropy' else 'softmax'} "
                            "is saturated from the first step")
            det.explanation += (" The gradient ratio through the hidden layers is small only because the network "
                                "is shallow; the logits are orders of magnitude larger than a loss on logits "
                                "expects (about unit scale), so the softmax or sigmoid is saturated: "
                                "a sample the net gets right passes almost no gradient and one it gets wrong a "
                                "loss and gradient the size of the logits. The weights are several times too "
                                "large for their fan-in (an init like N(0, 1), or weights scaled up).")
        blowup = (signal_blowup(result, t.exploding_warning)
                  if steep is None and logits is None and not value > t.exploding_warning else None)
        if blowup is not None:
            # weights too large that a raw-target regressor grew to reach its targets: named as
            # that scale (kerassweep30 W2), the blow-up's figures kept in the evidence
            scaled = learned_output_scale(result)
            if scaled is not None and (severity != "info" or scaled.on_targets):
                return _output_scale_detection(_blowup_detection(det, blowup, t, learned=True), scaled, t)
            return _blowup_detection(det, blowup, t)
        learned_run = learned_stretch(result, t) if value < t.exploding_warning else None
        learned = steep is not None and learned_run is not None
        # where the per-layer gain is what is judged, the summary leads with it and gives the
        # end-to-end figure as what it is, the total under the bar: "activation norm grows 0.961x
        # .. ; the activations grow 2.26x per layer" said shrink and grow at once (onnxsweep17 h09)
        total = re.sub(r"^(gradient|activation) norm grows ", r"end to end the \1 norm changes ", det.summary)
        if steep is not None and value < t.exploding_warning:
            det.summary = ""
        if learned and steep is not None and learned_run is not None:
            run, gain, what = steep
            scale, stretch_grad = learned_run
            det.evidence.update(stretch_gain=gain, per_layer_threshold=STEEP_LAYER_GAIN,
                                stretch=[run[0].name, run[-1].name], stretch_measure=what, weight_scale_gain=scale,
                                learned_structure=True, stretch_grad_ratio=stretch_grad)
            det.summary += (f"; {fmt(gain)}x per layer from {layer_words(run[-1])} back to {layer_words(run[0])}"
                            if what == "gradient" else
                            f"; the activations grow {fmt(gain)}x per layer from {layer_words(run[0])} to {layer_words(run[-1])}")
            det.summary += (f", though the weights' scale gives {fmt(scale)}x per layer: structure the weights "
                            "learned, not their scale")
            det.summary = det.summary.removeprefix("; ") + f" ({total}, under the {fmt(t.exploding_warning)}x bar)"
            # said in full: _through_depth's note is about normalisation, which this is not
            det.explanation = (
                f"Each layer of this stretch multiplies the {what} by about {fmt(gain)}x, past the "
                f"{fmt(STEEP_LAYER_GAIN)}x per layer judged on a shallow net. The weights are at {fmt(scale)} "
                "times the scale that keeps the gain at 1 (He's for ReLU, LeCun's for tanh), so random weights "
                "of this scale would "
                + ("not grow the gradient at all" if scale < 1 else
                   f"grow the signal {fmt(scale)}x per layer, under that bar, and the gradient grows "
                   f"{fmt(stretch_grad)}x over these layers, under the {fmt(t.exploding_warning)}x bar")
                + ": the growth comes from how the layers line up with each other, which training does (each "
                "layer's strongest directions align with the next's). That is a trained network's, and the "
                "total stays under the through-depth bar; a lower learning rate for the first layers or "
                "gradient clipping is the remedy if training is unstable.")
        elif steep is not None and value < t.exploding_warning:
            run, gain, what = steep
            det.evidence.update(stretch_gain=gain, per_layer_threshold=STEEP_LAYER_GAIN,
                                stretch=[run[0].name, run[-1].name], stretch_measure=what)
            det.summary += (f"; {fmt(gain)}x per layer from {layer_words(run[-1])} back to {layer_words(run[0])}, a gain no "
                            "initialisation gives (He keeps it at 1)" if what == "gradient" else
                            f"; the activations grow {fmt(gain)}x per layer from {layer_words(run[0])} to {layer_words(run[-1])}, "
                            "a gain no initialisation gives (He keeps their scale whatever the widths)")
            det.summary = (det.summary.removeprefix("; ") + f"; this per-layer gain is what is judged: {total}, "
                           f"under the {fmt(t.exploding_warning)}x bar for the whole depth")
            det.explanation += (" The total is small only because the network is shallow: each of these layers "
                                "multiplies the gradient (and its activations) by about the same factor, so the "
                                "weights are several times too large for the activation (a U(-1, 1) or N(0, 1) "
                                "init of wide layers); the activations and the loss start huge and the first "
                                "steps are far too large.")
        scaled = learned_output_scale(result) if value >= t.exploding_warning else None
        if scaled is not None and not det.evidence.get("learned_structure") and (
                severity != "info" or scaled.on_targets):
            return _output_scale_detection(det, scaled, t)
        return det


def _raw_input_logits(result: SimulationResult, std: float) -> float | None:
    """The RMS of the network's first weight layer's inputs where it is :data:`FAR_INPUT_RMS` or more and the logits'
    std ``std`` divided by it is under :data:`LOGIT_STD_WARNING`: on unit-scale inputs the same
    weights would give logits under the bar (a ReLU or linear net scales with its input), so the
    logits are the inputs' scale carried through; None otherwise."""
    unit = next((u for u in result.units if u.has_weights and "input_mean_square" in u.values), None)
    first = math.sqrt(max(unit.mean("input_mean_square"), 0.0)) if unit is not None else math.nan
    if not (math.isfinite(first) and first >= FAR_INPUT_RMS and std / first < LOGIT_STD_WARNING):
        return None
    return first


def _output_scale_detection(det: Detection, o: OutputScale, t: Thresholds) -> Detection:
    """exploding_gradient for :func:`learned_output_scale`: the growth named as the output's scale a
    trained regressor learned (most likely its targets' raw scale), not as weights too large."""
    name = o.unit.name
    det.evidence.update(unscaled_targets=True, output_layer=name, output_mean=o.mean, output_std=o.std,
                        output_rms=o.rms, output_scale_threshold=FAR_TARGET_SCALE,
                        weight_scale_output_gain=o.scale_gain, target_rms=o.target_rms,
                        output_on_targets=o.on_targets)
    if o.predicted_rms is not None:
        det.evidence.update(weight_scale_output_rms=o.predicted_rms, output_scale_excess=o.rms / o.predicted_rms,
                            weight_scale_gains=dict(o.gains),
                            oversized_layers=[n for n, g in o.gains if g >= OVERSIZED_LAYER_GAIN])
    values = f"values of mean {fmt(o.mean)} and std {fmt(o.std)}"
    if o.predicted_rms is not None:
        return _grown_output_scale(det, o, values)
    if o.on_targets:
        det.summary += (f"; a note: {name} outputs {values}, on the scale of the targets given (root mean square "
                        f"{fmt(o.target_rms or math.nan)}): the gain the trained weights learned to reach them, not weights too "
                        f"large (their scale gives {fmt(o.scale_gain)}x to the output)")
        det.explanation = (
            f"The trained network outputs {values} (root mean square {fmt(o.rms)}) on these inputs, the scale of "
            "the regression targets given. Reaching them takes an end-to-end gain of that size, which training "
            "built into how the layers line up, not into their scale: i.i.d. weights of these layers' scales "
            f"would change the signal {fmt(o.scale_gain)}x on the way to the output (He's and LeCun's keep it at "
            "1). The activations grow with that gain through the layers and, in a ReLU or linear chain, the "
            "gradient mirrors it, so the depth ratio is large without anything being too large for the data "
            "as given. Standardising the targets (fit on (y - mean) / std, invert at prediction) would let the "
            "network work at unit scale, with its gradients and updates no longer scaled by the targets' size.")
        return det
    against = ("standard-normal targets, as the check draws them without --target-range" if o.target_rms is None
               else f"the targets given, of root mean square {fmt(o.target_rms)}")
    det.summary += (f": {name} outputs {values} on these inputs, a scale far from 1 that the trained weights "
                    f"learned (their own scale gives {fmt(o.scale_gain)}x to the output): most likely regression "
                    "targets on their raw scale (prices, counts, physical units)")
    det.explanation = (
        f"The trained network outputs {values} (root mean square {fmt(o.rms)}) where standardised regression "
        f"targets have about 1; it is judged against {against}. The weights are not what makes this growth: "
        f"i.i.d. weights of these layers' scales would change the signal {fmt(o.scale_gain)}x on the way to the "
        "output (He's and LeCun's keep it at 1), so the gain is structure training built to produce outputs of "
        "that size, most likely because the targets were left on their raw scale (prices, counts, physical "
        "units) while the inputs were scaled. The activations grow with it through the layers and, in a ReLU or "
        f"linear chain, the gradient mirrors the forward gain ({fmt(det.value)}x over the depth), so every "
        "gradient and update is scaled by the targets' size. Standardise the targets (fit on (y - mean) / std, "
        "invert at prediction) and train again; re-initialising this checkpoint would only discard its "
        "training. If the targets really are at this scale, give their range (--target-range LO,HI, "
        "target_range=) and the output is judged against it.")
    return det


def _grown_output_scale(det: Detection, o: OutputScale, values: str) -> Detection:
    """:func:`_output_scale_detection` where the trained weights are too large themselves (their
    scale predicts ``o.predicted_rms``, a decade or more under the output's RMS): the weights grew
    with the targets' scale, so the targets, not a clip, a lower rate or a new init, are the fix."""
    assert o.predicted_rms is not None
    name = o.unit.name
    large = [(n, g) for n, g in o.gains if g >= OVERSIZED_LAYER_GAIN]
    shown = ", ".join(f"{n} {fmt(g)}x" for n, g in (large or o.gains))
    excess = o.rms / o.predicted_rms
    # the growth fired on: the readout's where a shallow chain's blow-up is judged, else the finding's
    growth = det.evidence.get("readout_grad_ratio") or det.value
    scale = (f"they are large ({shown} the scale that keeps the signal), but their scale alone gives an output of "
             f"root mean square {fmt(o.predicted_rms)}, {fmt(excess)}x under it")
    why = (f"Its weights are several times the scale that keeps the signal ({shown}), yet i.i.d. weights of these "
           f"scales (their mean counted) would give an output of root mean square about {fmt(o.predicted_rms)} from these "
           "inputs: the "
           f"measured one is {fmt(excess)}x that, so the layers are also lined up with each other to produce outputs "
           "of this size, which training does and an initialisation does not. ")
    mirror = ("The activations grow with that gain through the layers and, in a ReLU or linear chain, the gradient "
              f"mirrors it ({fmt(growth)}x over the depth). ")
    if o.on_targets:
        det.summary += (f"; a note: {name} outputs {values}, on the scale of the targets given (root mean square "
                        f"{fmt(o.target_rms or math.nan)}): the gain the trained weights learned to reach them; "
                        + scale)
        det.explanation = (
            f"The trained network outputs {values} (root mean square {fmt(o.rms)}) on these inputs, the scale of "
            "the regression targets given. " + why + "Reaching the targets takes an end-to-end gain of that size, "
            "which the weights grew to. " + mirror + "Nothing is too large for the data as given; standardising "
            "the targets (fit on (y - mean) / std, invert at prediction) would let the network work at unit scale, "
            "with smaller weights and its gradients no longer scaled by the targets' size.")
        return det
    det.summary += (f": {name} outputs {values} on these inputs, a scale far from 1 that the trained weights "
                    f"learned; {scale}: most likely regression targets on their raw scale (prices, counts, physical "
                    "units), which the weights grew to reach")
    against = ("standard-normal targets, as the check draws them without --target-range" if o.target_rms is None
               else f"the targets given, of root mean square {fmt(o.target_rms)}")
    det.explanation = (
        f"The trained network outputs {values} (root mean square {fmt(o.rms)}) where standardised regression "
        f"targets have about 1; it is judged against {against}. " + why + "Both the size and the alignment are "
        "what a regression learns when its targets were left on their raw scale (prices, counts, physical units) "
        "while the inputs were scaled: the weights grow until the output reaches the targets. " + mirror +
        "Gradient clipping, a lower learning rate or a new init treat that growth and leave its cause, the "
        "targets' scale, as it is: standardise the targets (fit on (y - mean) / std, invert at prediction) and "
        "train again. If the targets really are at this scale, give their range (--target-range LO,HI, "
        "target_range=) and the output is judged against it.")
    return det


def _blowup_detection(det: Detection, b: Blowup, t: Thresholds, *, learned: bool = False) -> Detection:
    """exploding_gradient for :func:`findings.signal_blowup`: both directions' totals and per-layer
    factors, and each layer's weight scale against the one that keeps its signal, in the evidence.
    ``learned``: the weights' size is a trained regressor's output scale (:func:`learned_output_scale`),
    which :func:`_output_scale_detection` goes on to name: the growth only, no init blamed."""
    first, last = b.units[0].name, b.units[-1].name
    gains = len(b.units) - 1
    # the metric and value stay the trunk's (EXPLODING_METRIC), the figure a remedy's re-simulation is
    # measured on too (verified.before/after alike); the growth fired on is readout_grad_ratio, a
    # remedy's judged figure (ExplodingGradient.decisive)
    trunk_ratio = det.evidence.get("grad_ratio")
    det.units = b.units
    det.evidence.update({
        "readout_grad_ratio": b.backward,
        "layers": [first, last], "depth": len(b.units),
        "grad_ratio": b.backward, "log10_grad_ratio": math.log10(b.backward),
        "per_layer_factor": b.backward_per_layer,
        "forward_ratio": b.forward, "forward_per_layer_factor": b.forward_per_layer,
        "first_output_grad_norm": b.units[0].geo("output_grad_norm"),
        "last_output_grad_norm": b.units[-1].geo("output_grad_norm"),
        "trunk_grad_ratio": trunk_ratio if isinstance(trunk_ratio, float) and math.isfinite(trunk_ratio) else None,
        "weight_scale_gains": {u.name: g for u, g in zip(b.units, b.gains, strict=True)},
        "weight_scale_growth": b.predicted, "oversized_layers": [u.name for u in b.oversized],
        "per_layer_threshold": OVERSIZED_LAYER_GAIN, "oversized_init": not learned,
    })
    det.evidence.pop("activation_growth_per_layer", None)
    shown = ", ".join(f"{layer_words(u)} {fmt(g)}x" for u, g in zip(b.units, b.gains, strict=True))
    det.summary = (
        f"gradient grows {fmt(b.backward)}x from {last} back to {first} ({_steps(gains + 1, b.backward_per_layer)})"
        f" and the forward signal {fmt(b.forward)}x from the input to {last}'s output ({len(b.units)} "
        f"layers, {fmt(b.forward_per_layer)} per layer)")
    if learned:
        return det
    det.summary += f": the weights are too large for their activations ({shown} the std that keeps the signal)"
    output_std = b.units[-1].geo("activation_std")
    det.explanation = (
        "Each layer multiplies the signal by about sqrt(fan_in * std(W)^2 / sigma_w^2*), sigma_w^2* the "
        "variance that keeps it (2 for ReLU: He; 1 for tanh, sigmoid and a linear output: LeCun/Xavier): "
        f"here {shown}, {fmt(b.predicted)}x in all, and the measured growth agrees ({fmt(b.backward)}x backward, "
        f"{fmt(b.forward)}x forward). The network is shallow, so the ratio over its hidden layers alone stays under "
        f"the {fmt(t.exploding_warning)}x bar for the whole depth, but the outputs start at a std of "
        f"{fmt(output_std)} where a loss expects about 1: the loss and the first gradients are that many times too "
        "large, and every step moves the early layers by far more than the later ones. Initialise the weights "
        "at the activation's critical variance (He for the ReLU family, Xavier or LeCun for tanh, sigmoid and "
        "a linear output), or rescale them to it.")
    return det


#: Recurrent cells whose gates learn how long to keep their memory (DOMAIN: "LSTM/GRU gates fix
#: vanishing in RNNs"). At initialisation their forget or update gates sit near sigmoid(b), a
#: memory horizon of a few steps, so dL/dh_t still shrinks geometrically through time at init; but
#: the gates open during training where the data asks for it, which a plain cell's fixed tanh
#: Jacobian cannot. Vanishing through time of a gated cell is a note on its horizon where its gates
#: do about as well as default ones (:data:`DEFAULT_GATE_PER_STEP`), a risk (a warning, with chrono
#: initialisation as its remedy) where they are shut, never a failure.
GATED_CELLS = frozenset({"lstm", "gru"})


def _gated_cell(result: SimulationResult, layer: str) -> bool:
    """Whether the recurrent ``layer`` is a gated cell: torch's LSTM or GRU, or one written by hand
    whose recurrent layer drives a sigmoid gate (``SimulationResult.gate_drivers``)."""
    return result.unit(layer).type in GATED_CELLS or layer in result.gate_drivers


def keep_gate(result: SimulationResult, layer: str) -> str:
    """Opening the gate of the recurrent ``layer`` that keeps its state from step to step, in words:
    an LSTM's forget gate; a GRU's update gate, biased towards keeping the state (a GRU has no forget
    gate: Tallec & Ollivier 2018's chrono initialisation sets its update gate's bias; specsweep14 P4);
    a hand-written cell's gate by what it does."""
    kind = result.unit(layer).type
    return {"lstm": "opening the forget gate",
            "gru": "biasing the update gate towards keeping the state"}.get(kind, "opening the gate that keeps the state")


def _memory_horizon(per_step: float) -> float | None:
    """Steps over which dL/dh_t falls by a factor e at ``per_step`` per step (None: not shrinking)."""
    if not (0 < per_step < 1):
        return None
    return -1 / math.log(per_step)


#: What a default-initialised gated cell gives: dL/dh_t's factor per step, read at the last step,
#: of PyTorch's default LSTM and GRU (every weight U(+-1/sqrt(H)), forget/update gate ~0.5),
#: measured 0.58-0.66 over hidden 16-256 and 1-64 input features of std 0.3-1 (a memory horizon of
#: ~2 steps). It is the lowest common default: Keras' (forget bias 1, orthogonal recurrent kernel)
#: gives 0.81-0.97 for an LSTM and 0.65-0.74 for a GRU. A gated cell near it or above keeps the
#: memory its gates start with, and they learn to keep it longer where the data asks for it: its
#: vanishing through time is a note stating its memory horizon, whatever the sequence's length
#: (kerassweep13 h04: a default Keras LSTM at 0.837 a step over 60 steps was a warning, and a
#: RandomNormal(1) one at 0.888, while the same model over 49 steps was a note).
DEFAULT_GATE_PER_STEP = 0.6

#: The per-step factor under which a gated cell does worse than default gates by a margin (a
#: horizon of 1.4 steps against default's 2): gates shut or pinned shut (a forget bias of -5,
#: sigmoid 0.007: 0.33 a step over 28 steps, onnxsweep10 b05; 0.135 read at every step,
#: onnxsweep11 b04). Such a cell stays a warning (never an error: gates can still learn to open)
#: where the gradient its last step sends back reaches its first under the vanishing threshold
#: (the floor: ``Thresholds.vanishing_warning``, 1e-2 by default; 7 steps at 0.5 a step).
SHUT_GATE_PER_STEP = 0.5


#: The stretch of steps, learnt through the recurrence alone (the loss reads the layer only at its
#: end, or only from a later step on), beyond which a gated cell's vanishing through time is a
#: warning however good its gates: past about a thousand steps gates that can learn memory in
#: principle do not in practice. A default-initialised LSTM stays at the memoryless baseline of the
#: copy task at 2000 steps, which only chrono initialisation solves (Tallec & Ollivier 2018, "Can
#: recurrent neural networks warp time?"); LSTMs trained with full backpropagation through time fail
#: the adding and copy tasks and long pixel-by-pixel sequences from roughly 1,000 steps on (Arjovsky,
#: Shah & Bengio 2016; Trinh, Dai, Luong & Le 2018, who add auxiliary losses to reach 1,000-16,000
#: steps); Hochreiter & Schmidhuber's 1,000-step bridges needed noise-free, purpose-built tasks. A
#: 50-500-step LSTM or GRU classifier stays a note (kerassweep8/12/13, labelled healthy); a 4001-step
#: LSTM read at its last step alone, 0.951 a step (1e-58 at step 0), was a note (onnxsweep13 u01).
GATED_PRACTICAL_STEPS = 1000


#: A recurrent cell's (RNN, LSTM, GRU) gradient through time growing by this factor or more per
#: step, over a sequence too short for the total to pass ``Thresholds.exploding_warning``, is a
#: warning too: the through-depth rule's "a gain no initialisation gives" (``STEEP_LAYER_GAIN``)
#: for the one weight matrix every step shares. Orthogonal or identity recurrent weights keep the
#: factor at 1 or under (the cell's tanh and gates only shrink it); trained healthy cells measured
#: 0.59-1.03 a step over 3-2709 steps (kerassweep14-20, onnxsweep13-18). Recurrent kernels scaled
#: x6 gave 1.46 (a tanh LSTM over 11 steps: 29.7x, kerassweep19 u09) and 1.91 (a relu LSTM over 9,
#: its hidden state growing 1.8x a step: 93x read by its 3 seeds, 138x by 8, kerassweep20 u05).
EXPANDING_STEP_GAIN = 1.25

#: ... and only where the growth over the measured steps is a decade or more, past the factor of
#: about 10 a healthy net keeps its gradient ratio within (``gradhealth.analysis.thresholds``).
EXPANDING_MIN_GROWTH = 10.0

#: The unit types whose steps are one recurrent cell each (no residual sum per step, which grows a
#: loop's gradient by its structure: ``scaled_residual``'s case).
RECURRENT_CELLS = frozenset({"rnn", "lstm", "gru"})


def _expanding(result: SimulationResult, layer: str, ratio: float, steps: int) -> bool:
    """Whether the recurrent cell ``layer``'s judged gradient grows :data:`EXPANDING_STEP_GAIN` or
    more per step and :data:`EXPANDING_MIN_GROWTH` or more in all over its ``steps``."""
    return (result.unit(layer).type in RECURRENT_CELLS and math.isfinite(ratio)
            and ratio >= EXPANDING_MIN_GROWTH and _per_step(ratio, steps) >= EXPANDING_STEP_GAIN)


def _shut(ratio: float, steps: int) -> bool:
    """Whether a gated cell whose dL/dh_t falls by ``ratio`` over ``steps`` does worse than
    default gates by the margin :data:`SHUT_GATE_PER_STEP` (a ratio of 0 counts as shut)."""
    return _per_step(ratio, steps) < SHUT_GATE_PER_STEP


def _per_step(ratio: float, steps: int) -> float:
    """dL/dh_t's factor per step over a recurrent layer's ``steps`` (its ratio first to last
    measured step, over ``steps - 2`` steps); nan where there is none to take."""
    if not (ratio > 0 and math.isfinite(ratio)) or steps < 3:
        return math.nan if ratio != 0 else 0.0
    return float(ratio ** (1 / (steps - 2)))


def _judged_factor(result: SimulationResult, layer: str, sub: int, ratio: float, steps: int) -> float:
    """The per-step factor a through-time finding states and judges a gated cell's gates by: over
    the whole stretch (:func:`_per_step`), or, where nothing reaches step 0 (a ratio of 0), over
    the steps before it underflowed (:func:`factor_before_underflow`), the figure its summary gives.
    One number for the summary, the "gates shut" verdict and the memory horizon (modsweep44: "1.45
    per step" beside "this one is under 0.5" and "about inf steps" in one finding)."""
    if ratio == 0:
        series = next((ts for ts in result.time_series if (ts.layer, ts.sublayer) == (layer, sub)), None)
        before = factor_before_underflow(series, steps, result.dtype) if series is not None else None
        if before is not None:
            return before[0]
    return _per_step(ratio, steps)


def _recurrence_words(result: SimulationResult, unit: UnitStats) -> str:
    """A recurrent unit's name for a through-time sentence; for loops that read one state (a cell
    written from raw parameters: ``SimulationResult.shared_states``) every matrix reading it."""
    members = result.shared_states.get(unit.name)
    if not members:
        return _spoken(unit)
    return f"the state {', '.join(members)} read (one recurrence)"


def _numbered(steps: int) -> str:
    """How a through-time summary's step numbers count: from 0, so a 50-step sequence's last step is
    49, where the gradient enters, and the ratio runs from the step before it (specsweep10: "from step
    48" for 50 steps read as an off-by-one)."""
    return f"of steps 0-{steps - 1}"


def _rank(severity: str | None) -> int:
    """A severity's rank, below every severity when there is none."""
    return SEVERITY_RANK[severity] if severity is not None else -1


class _ThroughTime(ArchitectureRule):
    verb: str

    def severities(self, result: SimulationResult, t: Thresholds) -> list[tuple[str | None, str, int, float, int]]:
        """(severity, layer, sublayer, ratio, steps) per recurrent (sub)layer. A gated cell's
        vanishing is at most a warning (:data:`GATED_CELLS`), and a note at any length where its
        per-step factor is not under default gates' by a margin (:data:`DEFAULT_GATE_PER_STEP`,
        :data:`SHUT_GATE_PER_STEP`). The backward direction of a
        bidirectional layer whose forward direction shrinks does not explode: under a layer
        above that vanishes through time, the gradient injected at each position is largest at
        the end of the sequence, where the backward direction starts, so its dL/dh_t falls in the
        order it runs by the injection's profile, not by its recurrence (its forward direction,
        with the same profile the other way round, reads as shrinking)."""
        out = []
        found = time_ratios(result, reach=self.code == "vanishing_through_time")
        ratios = {(layer, sub): ratio for layer, sub, ratio, _ in found}
        reverse = {(ts.layer, ts.sublayer) for ts in result.time_series if ts.reverse}
        read_often = {(ts.layer, ts.sublayer) for ts in result.time_series if carried_apart(ts)}
        for layer, sub, ratio, steps in found:
            severity = self.judge(ratio, t)
            if severity is None and self.code == "exploding_through_time" and _expanding(result, layer, ratio, steps):
                # a short sequence keeps the total under the bar, not the recurrence: a per-step gain
                # no initialisation gives (kerassweep20 u05: a relu LSTM's x6 recurrent kernel, 1.91 a
                # step over 9 steps, 93x, was healthy)
                severity = "warning"
            if (severity is not None and self.code == "exploding_through_time" and (layer, sub) in reverse
                    and ratios.get((layer, sub - 1), math.inf) < 1):
                severity = None
            gated = result.unit(layer).type in GATED_CELLS
            # a cell written by hand is gated where its recurrent layer drives a sigmoid gate: at most a
            # warning too (though not a note when "read often": a hand-written LSTM's cell path makes
            # its carried gradient differ from dL/dh_t even where the loss reads the last step alone)
            if severity == "error" and self.code == "vanishing_through_time" and _gated_cell(result, layer):
                severity = "warning"
            if (severity is not None and self.code == "vanishing_through_time"
                    and (gated or _gated_cell(result, layer))
                    and not _judged_factor(result, layer, sub, ratio, steps) < SHUT_GATE_PER_STEP):
                # a gated cell as good as default gates or better (DEFAULT_GATE_PER_STEP): a note with
                # its memory horizon, over any number of steps; the length alone says nothing of the
                # cell (kerassweep8/12/13: default LSTMs/GRUs over 60-542 steps, labelled healthy, were
                # warnings at 0.62-0.89 a step). Not for gates far under that: a forget gate shut (its
                # bias -5, sigmoid 0.007) wipes the memory each step, 0.33 a step, and stays a
                # warning (onnxsweep10 b05)
                severity = "info"
            if (severity is not None and self.code == "vanishing_through_time" and (layer, sub) in read_often
                    and not self.unread(result, layer, sub, t)):
                # the loss (or a layer above) reads every step, and no long stretch learns through the
                # recurrence alone (unread, above): each step learns from a gradient of its own, and
                # what vanishes is only the reach of longer dependencies, a note stating the memory
                # horizon, for every cell kind alike (specsweep10: a default tanh RNN pooled over 50
                # steps, 0.589 a step, was a warning while the default LSTM beside it, 0.611 a step,
                # was a note; Karpathy's min-char-rnn, read at every step, trains). A plain cell's
                # recurrent weights get each step's gradient at full size and grow where the data asks
                # for memory. Never raised by this (modsweep25: a hand-written ConvLSTM over 10 steps,
                # a note by the rule above, was raised back to a warning here). Not a note for gates
                # far from their default state: a forget gate shut (bias -5, sigmoid 0.007, 0.135 a
                # step) is pinned, its own gradient scaled by its saturated sigmoid, and keeps
                # nothing to learn from wherever the loss reads it (onnxsweep11 b04)
                shut_gates = (gated or _gated_cell(result, layer)) and not (
                    _judged_factor(result, layer, sub, ratio, steps) >= SHUT_GATE_PER_STEP)
                read = "warning" if shut_gates else "info"
                severity = min(severity, read, key=_rank)
            if severity == "info" and self.code == "vanishing_through_time" \
                    and self.beyond_gates(result, layer, sub, ratio, steps, t) is not None:
                severity = "warning"  # gates as good as default ones, over more steps than gates learn
            out.append((severity, layer, sub, ratio, steps))
        return out

    def beyond_gates(self, result: SimulationResult, layer: str, sub: int, ratio: float, steps: int,
                     t: Thresholds) -> int | None:
        """The steps a gated cell must learn through its recurrence alone where they are
        :data:`GATED_PRACTICAL_STEPS` or more and its gradient there is under the vanishing
        threshold: the whole measured stretch where the loss reads the layer only at its end, the
        steps before the first it reads otherwise (:meth:`unread`); else None."""
        if not _gated_cell(result, layer):
            return None
        series = next((ts for ts in result.time_series if (ts.layer, ts.sublayer) == (layer, sub)), None)
        if series is not None and carried_apart(series):
            unread = self.unread(result, layer, sub, t)
            return unread[0] if unread is not None and unread[0] >= GATED_PRACTICAL_STEPS else None
        stretch = steps - 2  # (the measured ratio's: step steps - 2 back to step 0)
        return stretch if stretch >= GATED_PRACTICAL_STEPS and t.vanishing(ratio) is not None else None

    @staticmethod
    def unread(result: SimulationResult, layer: str, sub: int, t: Thresholds) -> tuple[int, float] | None:
        """(earliest step read directly, dL/dh_0 over the largest dL/dh_t) of a layer the loss reads
        at more steps than its last, where the steps before the first it reads make a long stretch
        (:data:`CHRONO_MIN_STEPS` or more) that learns from the recurrence alone and gets under the
        vanishing threshold of the best-read step's gradient; else None. Such a layer is not "read
        often" where it matters: a Keras forecaster's Dense reads the last 30 of 120 LSTM steps, so
        steps 0-89 get 5.5e-8 of the gradient, 0.84 a step through the recurrence (onnxsweep11 h05)."""
        series = next((ts for ts in result.time_series if (ts.layer, ts.sublayer) == (layer, sub)), None)
        if series is None or not carried_apart(series):
            return None
        found = unread_stretch(series)
        if found is None:
            return None
        first, ratio = found
        return found if first >= CHRONO_MIN_STEPS and t.vanishing(ratio) is not None else None

    def judge(self, ratio: float, t: Thresholds) -> str | None:
        raise NotImplementedError

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        return max((r[0] for r in self.severities(result, t)), key=_rank, default=None)

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        vanishing = self.code == "vanishing_through_time"
        # the worst recurrent layer: the most severe, then the furthest from 1
        _, layer, sub, ratio, steps = max(
            self.severities(result, t), key=lambda r: (_rank(r[0]), -r[3] if vanishing else r[3]))
        value = ratio
        per_step = ratio ** (1 / (steps - 2)) if ratio > 0 and math.isfinite(ratio) else math.nan
        unit = result.unit(layer)
        gated = vanishing and _gated_cell(result, layer)
        # how far back a dependency still gets 1/e of the gradient: for any cell (kerassweep11: a
        # SimpleRNN at 0.661 a step learns nothing beyond ~2 steps back, which the evidence did not say)
        horizon = _memory_horizon(per_step) if vanishing else None
        evidence = {
            "metric": "output_grad_ratio_first_to_last_step",
            "value": value,
            "threshold": t.vanishing_warning if vanishing else t.exploding_warning,
            "layers": list(result.shared_states.get(layer, [layer])),
            "sublayer": sub,
            "time_steps": [0, steps - 2],
            "sequence_length": steps,
            "per_step_factor": per_step,
            "log10_ratio": math.log10(ratio) if ratio > 0 and math.isfinite(ratio) else None,
        }
        if horizon is not None:
            evidence["memory_horizon_steps"] = horizon
        shown = 1 / ratio if vanishing and ratio > 0 else ratio
        series = next(ts for ts in result.time_series if (ts.layer, ts.sublayer) == (layer, sub))
        # where the loss reads more steps than the last, dL/dh_t is not what the recurrence carries
        apart = carried_apart(series)
        what = "the gradient carried back through its own recurrence" if apart else "dL/dh_t"
        evidence["measured"] = "carried" if apart else "dL/dh_t"
        spoken = _recurrence_words(result, unit)
        summary = (
            f"{spoken}: {what} {self.verb} {fmt(shown)}x from step {steps - 2} back to step 0 "
            f"({fmt(per_step)} per step, {_numbered(steps)})"
        )
        unread = self.unread(result, layer, sub, t) if vanishing else None
        if unread is not None:
            first, reached = unread
            evidence |= {"first_read_step": first, "unread_steps": [0, first - 1], "unread_grad_ratio": reached}
            above = _layers_above(result, layer, sub)
            evidence["read_from"] = "layers above" if above else "loss"
            # a stacked layer's steps are read by the layer above it, whose own recurrence carries the
            # loss's gradient back only so far (specsweep14 u13: the bottom of 3 tanh layers, whose
            # loss reads the top one's last step, "read by the loss only from step 196" unexplained)
            reader = (f"the layer{'s' if above > 1 else ''} above pass{'' if above > 1 else 'es'} the loss's "
                      f"gradient down to it only from step {first} on, as far back as their own recurrence carries "
                      "it" if above else f"the loss reads it only from step {first} on")
            # two figures, each what it is (onnxsweep22 weather_lstm: "shrinks 1.48e+46x ... dL/dh_0 is
            # 6.86e-07 of the best-read step's" unexplained, 40 decades apart): the headline is this
            # layer's own recurrence carrying the last step's gradient back; dL/dh_0 is the whole
            # gradient step 0 gets, which under a stacked layer holds what that layer's recurrence
            # carries down too (torch autograd on the same 2-layer LSTM: 0.52 a step against 0.92)
            if above:
                summary += (f"; {reader}, so steps 0-{first - 1} get no gradient of their own: dL/dh_0, the whole "
                            f"gradient step 0 gets (what this layer's recurrence carries back and what the "
                            f"layer{'s' if above > 1 else ''} above carr{'y' if above > 1 else 'ies'} down), is "
                            f"{fmt(reached)} of the best-read step's"
                            + (f", where this layer's own recurrence alone carries {fmt(ratio)} of the last "
                               "step's back to step 0 (the figure judged)" if ratio > 0 else ""))
            else:
                summary += (f"; {reader}, so steps 0-{first - 1} learn through "
                            f"its recurrence alone: dL/dh_0 is {fmt(reached)} of the best-read step's")
        joined = bidirectional_reach(result).get((layer, sub)) if vanishing else None
        if joined is not None:
            # both directions read at their ends: the worst-reached input, through the nearer one
            first, last = ((joined.position, joined.length - 2) if joined.forward else (1, joined.position))
            evidence |= {"time_steps": [first, last], "sequence_length": joined.length,
                         "worst_reached_position": joined.position,
                         "reached_by": "forward" if joined.forward else "backward"}
            summary = (
                f"{spoken}: at input position {joined.position} of {joined.length}, the worst reached by "
                f"either direction, {what} is {fmt(shown)}x smaller than where it enters "
                f"({steps - 2} steps of the {'forward' if joined.forward else 'backward'} direction, "
                f"{fmt(per_step)} per step)"
            )
        if vanishing and ratio == 0:  # below the simulation's float range (or exactly none)
            floor = _SMALLEST_NORMAL.get(result.dtype, "its smallest number")
            # "no dL/dh_t reaches", but "none of the gradient carried back ... reaches" (modsweep44: "no
            # the gradient carried back" glued the template's article to the phrase's own)
            nothing = f"none of {what}" if what.startswith("the ") else f"no {what}"
            summary = (f"{spoken}: {nothing} reaches step 0 from step {steps - 2} (under {floor} of it: "
                       f"below what {result.dtype} holds; {_numbered(steps)})")
            # the rate it shrank at over the steps before it underflowed: the figure cells compare by
            before = factor_before_underflow(series, steps, result.dtype) if joined is None else None
            if before is not None:
                per_step, first, last = before
                horizon = _memory_horizon(per_step)
                evidence |= {"per_step_factor": per_step, "per_step_factor_steps": [first, last],
                             "per_step_factor_measured": "before_underflow"}
                if horizon is not None:
                    evidence["memory_horizon_steps"] = horizon
                summary += (f"; {fmt(per_step)} per step over steps {last} back to {first}, before it "
                            "underflowed")
        if vanishing and apart and joined is None:
            # the healthy summary's note says which gradient its figure is, and the whole one step 0
            # gets beside it: "first/last step gradient 6.8e-47" read as dL/dh_0 (onnxsweep22 weather_lstm);
            # an underflow to 0 says so, not "gradient 0" (a cell read at every step, whose steps each
            # get a gradient of their own, read as getting none)
            carried = (f"{ratio:.2g} of the last step's gradient carried back to step 0 by its own recurrence"
                       if ratio > 0 else "the last step's gradient, carried back to step 0 by its own "
                       "recurrence, falls under the float range")
            evidence["summary_note"] = (
                carried + (f", dL/dh_0 {unread[1]:.2g} of the best-read step's" if unread is not None else ""))
        if not vanishing and not t.exploding(ratio) and _expanding(result, layer, ratio, steps):
            evidence |= {"per_step_threshold": EXPANDING_STEP_GAIN, "expanding": True}
            summary += (f", a per-step gain no initialisation gives (orthogonal recurrent weights keep it at 1 or "
                        f"under); this per-step gain is what is judged: the sequence is short, so the total stays "
                        f"under the {fmt(t.exploding_warning)}x bar")
        explanation = (
            "An unrolled recurrent cell is a deep net of depth T with shared weights; its per-step "
            f"Jacobian factor {fmt(per_step)} compounds over {steps - 2} steps."
        )
        if evidence.get("expanding"):
            explanation += (
                f" At {fmt(per_step)} a step, {fmt(EXPANDING_STEP_GAIN)} or more, the recurrence stretches the "
                "gradient (and, for an unbounded activation, its state) at every step: its recurrent weights are "
                "far larger than an orthogonal or identity initialisation's. The total is small only because "
                "the sequence is short; a longer one, or training that grows the weights, compounds it.")
        if apart and unread is not None:
            explanation += (
                f" The loss reads this layer at more steps than its last, but not before step {unread[0]}: "
                f"those {unread[0]} steps get no gradient of their own, only what the "
                + ("recurrences carry back to them (this layer's own, and the layers' above through their "
                   "inputs)" if evidence.get("read_from") == "layers above" else "recurrence carries back to them")
                + ", so the inputs there barely train the layer."
            )
            if evidence.get("read_from") == "layers above" and value > 0:
                own = per_step ** unread[0] if math.isfinite(per_step) else math.nan
                explanation += (
                    f" Two figures say how much: {fmt(value)} (the finding's value, {fmt(per_step)} a step) is what "
                    "this layer's own recurrence carries of its last step's gradient back to step 0, its memory; "
                    f"{fmt(unread[1])} (unread_grad_ratio) is dL/dh_0, the whole gradient step 0 gets, over the "
                    "best-read step's. The layer above reads this one at every step and passes down, at each, "
                    "what its own recurrence has carried back so far, so dL/dh_0 holds that too"
                    + (f": here {fmt(unread[1] / own)} times what this layer's recurrence carries over the "
                       f"{unread[0]} unread steps ({fmt(own)}), so the gradient reaching step 0 is nearly all "
                       "the layer above's. dL/dh_0 is what trains the inputs at step 0; the finding's value is "
                       "how far this layer alone carries a dependency."
                       if own > 0 and unread[1] > 10 * own else
                       ". dL/dh_0 is what trains the inputs at step 0; the finding's value is how far this layer "
                       "alone carries a dependency."))
        elif apart:
            explanation += (
                " The loss reads this layer at every step (a pooled or per-step output, or a layer "
                "above it), so each step also gets a gradient of its own; measured here is how much of "
                "the last step's gradient the recurrence carries back, what learning a dependency "
                "that long needs."
                + (" Each step still learns from its own gradient, so training goes on; dependencies "
                   "longer than the recurrence carries are what it will not learn"
                   + (f" (it carries 1/e of the gradient about {fmt(horizon)} steps back)." if horizon else ".")
                   if vanishing else "")
            )
        if gated:
            explanation += (
                (f" Its gates learn how long to keep memory, but {simulated_weights(result)} they keep it for "
                 f"about {fmt(horizon)} steps, so dependencies longer than that " if horizon is not None else
                 f" Its gates learn how long to keep memory, but {simulated_weights(result)} dependencies that "
                 "reach back to the first steps ")
                + (f"get little gradient; training again, {keep_gate(result, layer)} (chrono initialisation), "
                   "lengthens it from the start." if result.checkpoint else
                   f"start with little gradient; {keep_gate(result, layer)} (chrono initialisation) "
                   "lengthens it from the start.")
            )
            # judged against default gates, not the sequence's length (kerassweep13 h04/h13), by the
            # factor the finding states (over the steps before an underflow where nothing reaches step 0)
            shut = not (per_step >= SHUT_GATE_PER_STEP) if ratio == 0 else _shut(ratio, steps)
            evidence |= {"default_per_step_factor": DEFAULT_GATE_PER_STEP, "gates_shut": shut}
            explanation += (
                f" A default-initialised gated cell gives about {fmt(DEFAULT_GATE_PER_STEP)} a step (a horizon of "
                f"{fmt(_memory_horizon(DEFAULT_GATE_PER_STEP) or math.inf)} steps); "
                + (f"this one is under {fmt(SHUT_GATE_PER_STEP)}, worse by a margin: its gates are shut or "
                   "pinned (a very negative forget or update gate bias, or saturated gates), so it keeps almost "
                   "nothing from step to step and learns little through time."
                   if shut else
                   "this one keeps about as much or more, which training builds on over the lengths gates "
                   "learn in practice.")
            )
            beyond = self.beyond_gates(result, layer, sub, ratio, steps, t) if vanishing else None
            if beyond is not None:
                evidence |= {"unread_stretch_steps": beyond, "gated_practical_steps": GATED_PRACTICAL_STEPS}
                explanation += (
                    f" But here {beyond} steps learn through the recurrence alone, past the roughly "
                    f"{GATED_PRACTICAL_STEPS} steps over which gated cells learn dependencies in practice: "
                    "default-initialised LSTMs fail the copy and adding tasks beyond about that (Tallec & "
                    "Ollivier 2018; Trinh et al. 2018), so good gates do not make up for the length. Besides "
                    "chrono initialisation (T_max the sequence's length), shorten what the recurrence must "
                    "carry: downsample the sequence (a strided convolution or pooling in front of the cell, "
                    "frames of several steps), read more than the last step (pool over the steps or attend "
                    "over them), or split it into shorter windows.")
            if horizon is not None and ratio > 0:
                summary += f"; memory horizon {fmt(horizon)} steps"
        return Detection(
            self.code,
            severity,
            str(evidence["metric"]),
            value,
            summary,
            explanation,
            evidence,
            [result.unit(n) for n in result.shared_states.get(layer, [layer])],
        )


class VanishingThroughTime(_ThroughTime):
    code = "vanishing_through_time"
    remedies = (gated_cells, orthogonal)
    verb = "shrinks"

    def measure(self, result: SimulationResult) -> float:
        return min((r for _, _, r, _ in time_ratios(result, reach=True)), default=math.nan)

    def judge(self, ratio: float, t: Thresholds) -> str | None:
        return t.vanishing(ratio)

    def bar(self, result: SimulationResult, t: Thresholds) -> str | None:
        """How the recurrent layer of ``result`` with the smallest first-to-last ratio is judged where
        that ratio is under the vanishing threshold: said beside a remedy's verdict, since the same
        figure is a note for a gated cell and an error for a plain one (newuser11 #3: tanh_rnn_long's
        forget-bias-1 LSTM "FIXED" at 5.47e-08 beside orthogonal init "not fixed" at 4.37e-08, both
        about 0.84 a step). None where no layer is under the threshold."""
        rows = [r for r in self.severities(result, t) if r[3] > 0 and math.isfinite(r[3])]
        if not rows:
            return None
        severity, layer, _, ratio, steps = min(rows, key=lambda r: r[3])
        if t.vanishing(ratio) is None or steps < 3:
            return None
        per_step = _per_step(ratio, steps)
        figures = f"{fmt(ratio)} over {steps - 2} steps ({fmt(per_step)} a step"
        horizon = _memory_horizon(per_step)
        figures += f", a memory horizon of {fmt(horizon)} steps)" if horizon is not None else ")"
        if _gated_cell(result, layer):
            if severity not in (None, "info"):
                return None  # a gated cell still a warning: its own finding says why
            return (f"{layer} is a gated cell: its dL/dh_t still falls to {figures}, under the "
                    f"{fmt(t.vanishing_warning)} a plain cell is judged by; gates at {SHUT_GATE_PER_STEP:g} a step "
                    f"or better (default ones give about {DEFAULT_GATE_PER_STEP:g}) learn to keep memory longer over "
                    f"fewer than {GATED_PRACTICAL_STEPS:,} steps, so it is a note on its horizon, not a failure "
                    "(chrono initialisation starts them with the sequence's horizon)")
        if severity is None:
            return None
        if severity == "info":
            # read at every step with no long stretch unread (severities): each step learns from its own
            return (f"{layer} is a plain cell the loss reads at every step: its carried gradient still falls to "
                    f"{figures}, under the {fmt(t.vanishing_warning)} it is judged by where read at its last step "
                    "alone, but each step learns from a gradient of its own, so it is a note on its horizon")
        limit = t.vanishing_error if severity == "error" else t.vanishing_warning
        return (f"{layer} is a plain cell, with no gate to learn a longer memory: it is judged by its total, "
                f"{figures}, under the {severity} threshold {fmt(limit)}")


class ExplodingThroughTime(_ThroughTime):
    code = "exploding_through_time"
    # (no learning-rate cut: the growth is the recurrence's at init, whatever the steps; clipping
    # is what bounds the steps it makes, Pascanu et al. 2013)
    remedies = (bounded_cells, orthogonal, gated_cells, clipping)
    verb = "grows"

    def measure(self, result: SimulationResult) -> float:
        return max((r for _, _, r, _ in time_ratios(result)), default=math.nan)

    def judge(self, ratio: float, t: Thresholds) -> str | None:
        return t.exploding(ratio)


class _Fraction(ArchitectureRule):
    """The largest fraction of units of one kind (saturated, dead) over the layers."""

    key: str

    def judged(self, result: SimulationResult) -> list[tuple[UnitStats, float]]:
        """Each unit that has the fraction, with the fraction the rule judges it by (its mean over
        seeds)."""
        return [(u, u.mean(self.key)) for u in result.units if self.key in u.values]

    def measure(self, result: SimulationResult) -> float:
        return max((f for _, f in self.judged(result)), default=math.nan)

    def remains(self, result: SimulationResult, metric: str) -> bool:
        # a unit with the fraction, judged or not (a hardtanh under its bar, the output layer): its
        # nan measure is a healthy reading, not an empty one
        return any(self.key in u.values for u in result.units)

    def limits(self, t: Thresholds) -> tuple[float, float]:
        raise NotImplementedError

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        return t.fraction(value, *self.limits(t))

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        warn = self.limits(t)[0]
        judged = [(u, f) for u, f in self.judged(result) if f >= warn]
        hit = [u for u, _ in judged]
        worst = max(judged, key=lambda pair: pair[1])[0]
        evidence = {
            "metric": f"max_{self.key}",
            "value": value,
            "threshold": warn,
            "layers": [u.name for u in hit],
            "fractions": {u.name: u.mean(self.key) for u in hit},
        }
        summary, explanation = self.words(value, worst, worst.activation, len(hit))
        return Detection(
            self.code, severity, str(evidence["metric"]), value, summary, explanation, evidence, hit
        )

    def words(
        self, value: float, worst: UnitStats, activation: str | None, layers: int
    ) -> tuple[str, str]:
        """The summary and explanation; ``worst`` is the layer with the largest fraction, named in
        the text by :func:`layer_words` (``20 (Linear)``, as vanishing_gradient names it)."""
        raise NotImplementedError


class Saturation(_Fraction):
    code = "saturation"
    key = "saturated_fraction"
    remedies = (input_normalisation, zero_biases, xavier_for_saturating, relu_family, _batchnorm)

    #: An output layer counts only with this share of its units or more in the tails, and as a
    #: warning at most (:meth:`output_share`)
    OUTPUT_SHARE = 0.9

    def _outputs(self, result: SimulationResult) -> set[str]:
        outputs = {u.name for u in result.units if u.readout}
        if result.units:
            outputs.add(result.units[-1].name)
        # and, in a live module, a unit whose output no other unit reads: it reaches the loss as it
        # is, joined to the others only by a concatenation or a reshape (a PPO agent's tanh-bounded
        # actions returned beside its critic's value: msweep18)
        outputs |= {u.name for u in result.units if u.name in result.feeds and not result.feeds[u.name]}
        return outputs

    def judged(self, result: SimulationResult) -> list[tuple[UnitStats, float]]:
        # The network's own outputs are judged apart (:meth:`output_share`): a trained generator's
        # tanh pushes its background pixels to -1 and a confident classifier's sigmoid sits near 0
        # or 1, which is what they learnt.
        outputs = self._outputs(result)
        # and an activation of its own that reaches the loss through no unit while the tensor it
        # squashes reaches it directly too: a forward computing its own loss squashes its logits
        # there beside a loss on the logits (RetinaNet's sigmoid at a -4.6 prior in a focal loss: msweep13)
        outputs |= self._bypassed(result)
        # and the gates and candidate of a recurrent cell written out as primitive ops (an LSTM
        # lowered to MatMul + Split + Sigmoid/Tanh by keras2onnx, OnnxMLTools, tf2onnx): a trained
        # cell's gates sit near 0 or 1, which is how it gates; judged as a native cell's gates are,
        # inside the cell and not as layers (onnxsweep29 dtln2_fp16)
        outputs |= set(result.cell_gates)
        return [(u, f) for u, f in super().judged(result) if u.name not in outputs
                and (u.activation != "hardtanh" or f >= self._hardtanh_warning)]

    @staticmethod
    def softmax_shares(result: SimulationResult) -> list[tuple[str, str, float, UnitStats]]:
        """Each softmax inside a live module's forward (an attention's, a router's; not the output's:
        ``graph.softmax_figures``) as (its name, its call site, its share of one-hot rows, the unit
        it is reported on), largest share first."""
        prefix = "softmax_saturated_fraction:"  # graph.SOFTMAX_KEY
        found = []
        for u in result.units:
            for key in u.values:
                if key.startswith(prefix):
                    name, _, site = key.removeprefix(prefix).partition("|")
                    found.append((name, site, u.mean(key), u))
        return sorted(found, key=lambda f: -f[2] if f[2] == f[2] else math.inf)

    def remains(self, result: SimulationResult, metric: str) -> bool:
        # a hidden softmax's gain is measured on the softmaxes that feed a weight layer; the shares
        # on units with a saturating activation or on a softmax inside the forward
        if metric == "min_softmax_gain":
            return any(key.startswith("hidden_softmax_gain:") for u in result.units for key in u.values)
        return super().remains(result, metric) or bool(self.softmax_shares(result))

    @staticmethod
    def _marked(result: SimulationResult, prefix: str) -> set[str]:
        """The softmaxes (``name|site``, as :meth:`softmax_shares` splits them) a mark of ``prefix`` names."""
        return {key.removeprefix(prefix + ":") for u in result.units for key in u.values
                if key.startswith(prefix + ":")}

    @classmethod
    def logged_softmaxes(cls, result: SimulationResult) -> list[tuple[str, str, float, UnitStats]]:
        """The softmaxes inside the forward whose output a log reads (``graph.SOFTMAX_LOGGED_KEY``):
        ``torch.log(torch.softmax(x))``, an unstable log_softmax; largest one-hot share first."""
        marked = cls._marked(result, "softmax_log_of")
        return [f for f in cls.softmax_shares(result) if f"{f[0]}|{f[1]}" in marked]

    @classmethod
    def softmax_share(cls, result: SimulationResult) -> float:
        """The largest share of one-hot rows of a softmax inside the forward (nan: none measured)."""
        found = cls.softmax_shares(result)
        return found[0][2] if found else math.nan

    @staticmethod
    def _bypassed(result: SimulationResult) -> set[str]:
        return {u.name for u in result.units if "bypassed" in u.values and bool(np.all(u.values["bypassed"] == 1))
                and u.name in result.feeds and not result.feeds[u.name]}

    def output_share(self, result: SimulationResult) -> tuple[UnitStats, float] | None:
        """The output layer with sigmoid or tanh units nearly all in their tails (:data:`OUTPUT_SHARE`):
        at initialisation every layer's gradient passes through those derivatives, near 0 (a bias of 8
        under a sigmoid, a policy head at gain 100: four module sweeps); a trained model's confident
        outputs sit there by design, so it is a warning at most, and a model's own output only."""
        worst = max(self._output_fractions(result), key=lambda pair: pair[1], default=None)
        return worst if worst is not None and worst[1] >= self.OUTPUT_SHARE else None

    def measure(self, result: SimulationResult) -> float:
        units = self._unit_measure(result)
        soft = self.softmax_share(result)
        return soft if not math.isnan(soft) and (math.isnan(units) or soft > units) else units

    def _unit_measure(self, result: SimulationResult) -> float:
        """The share judged over the units with a saturating activation (hidden, else the output's)."""
        hidden = super().measure(result)
        out = self.output_share(result)
        if out is not None and (math.isnan(hidden) or hidden < out[1]):
            return out[1]
        # with no hidden unit of the kind, the output's share (a fix's after: 0.96 -> 0.02, not null)
        return hidden if not math.isnan(hidden) else max((f for _, f in self._output_fractions(result)),
                                                         default=math.nan)

    def _output_fractions(self, result: SimulationResult) -> list[tuple[UnitStats, float]]:
        """Each sigmoid or tanh output layer (not one a loss on its logits bypasses) with its share."""
        outputs = self._outputs(result) - self._bypassed(result)
        return [(u, u.mean(self.key)) for u in result.units if u.name in outputs
                and self.key in u.values and u.activation in ("sigmoid", "tanh")]

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        hidden = super().measure(result)
        inner = t.fraction(hidden, *self.limits(t)) if not math.isnan(hidden) else None
        if self.output_share(result) is not None and inner != "error":
            return "warning"
        if inner is None and self.hidden_softmaxes(result):
            # a softmax as a layer's activation: a warning, as an attention's (peersweep7 base_wrong_act)
            return "warning"
        if inner is None and self._softmax_fires(result, t):
            # a warning at most: a trained attention may be sharp by design; at init it means scores
            # far too large (msweep27 linformer_lm_nosqrt: 80.5% one-hot against 5% scaled)
            return "warning"
        if inner is None and self.logged_softmaxes(result):
            # log(softmax(x)) with rows not yet one-hot: an unstable log_softmax, named (peersweep22)
            return "info"
        return inner

    def _softmax_fires(self, result: SimulationResult, t: Thresholds) -> bool:
        return self.softmax_share(result) >= t.saturation_warning

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        hidden = super().measure(result)
        out = self.output_share(result)
        if out is None and (math.isnan(hidden) or t.fraction(hidden, *self.limits(t)) is None) \
                and self.hidden_softmaxes(result):
            return self._describe_hidden_softmax(severity, result)
        if out is None and (math.isnan(hidden) or t.fraction(hidden, *self.limits(t)) is None) \
                and (self._softmax_fires(result, t) or self.logged_softmaxes(result)):
            return self._describe_softmax(severity, result, t)
        if out is None or (not math.isnan(hidden) and t.fraction(hidden, *self.limits(t)) is not None):
            return super().describe(severity, self._unit_measure(result), result, t)
        unit, share = out
        return Detection(
            self.code, severity, f"max_{self.key}", share,
            f"{share:.0%} of the output units of {layer_words(unit)} sit in the flat tails of {unit.activation}",
            f"The network's output {unit.activation} is in its flat tails for nearly every unit, so "
            f"{simulated_weights(result)} the loss's gradient reaches every layer through a derivative near zero "
            "(a bias or weights far too large on the last layer: a sigmoid output behind a bias of 8, a policy "
            "head at gain 100). A trained model's confident outputs sit there by design; for a freshly "
            "initialised model, "
            "re-initialise the last layer (Xavier, biases at 0), or let the loss take its logits.",
            {"metric": f"max_{self.key}", "value": share, "threshold": self.OUTPUT_SHARE, "layers": [unit.name],
             "fractions": {unit.name: share}, "output": True},
            [unit])

    #: A softmax used as a layer's activation is judged when its Jacobian passes less than this of a
    #: backward signal (:func:`graph.softmax_gain`): a sigmoid's steepest slope, the most any
    #: saturating activation passes. A flat softmax over k features gains about 1/k, below it from
    #: k = 4 (peersweep7 base_wrong_act: 32 channels, 0.048, the gradient 9x smaller across the layer).
    HIDDEN_SOFTMAX_GAIN = 0.25

    @classmethod
    def hidden_softmaxes(cls, result: SimulationResult) -> list[tuple[str, str, float, float, UnitStats]]:
        """Each softmax a live module applies to a weight layer's features before another weight layer
        reads them (``graph.softmax_figures``), whose gain is under :data:`HIDDEN_SOFTMAX_GAIN`: (its
        name, its call site, its gain, its features, its layer), smallest gain first."""
        prefix, width = "hidden_softmax_gain:", "hidden_softmax_features:"  # graph.HIDDEN_SOFTMAX_KEY/_WIDTH
        found = []
        for u in result.units:
            for key in u.values:
                if key.startswith(prefix):
                    rest = key.removeprefix(prefix)
                    name, _, site = rest.partition("|")
                    gain = u.mean(key)
                    if gain < cls.HIDDEN_SOFTMAX_GAIN:
                        found.append((name, site, gain, u.mean(width + rest), u))
        return sorted(found, key=lambda f: f[2])

    def _describe_hidden_softmax(self, severity: str, result: SimulationResult) -> Detection:
        """A softmax used as a hidden layer's activation: its outputs ~1/k, its Jacobian's gain ~1/k."""
        hit = self.hidden_softmaxes(result)
        name, site, gain, k, unit = hit[0]
        summary = (f"a softmax over {k:.0f} features is the activation of {layer_words(unit)} ({site}): its own "
                   f"Jacobian passes {fmt(gain)} of the backward signal (a flat softmax: about 1/{k:.0f})")
        effect = ("both the signal passed forward and the gradient passed back shrink by about k at this layer, "
                  "and the features compete instead of being independent.")
        extra: dict[str, Any] = {}
        # the gradient the layer gets against the next layer's: about the softmax's gain (1/k) where
        # the shrinking stands, about 1 where something after it gives it back: a norm reading its
        # outputs divides by their spread, about 1/k (peersweep22 deepCNN_wrong_act: 0.0373 at the
        # softmax, yet convs.0's dL/dh 4.67 against convs.1's 3.52 behind a BatchNorm). Judged at the
        # two hypotheses' geometric midpoint, sqrt(gain)
        units = trunk(result)
        at = units.index(unit) if unit in units else -1
        after = units[at + 1] if 0 <= at < len(units) - 1 else None
        ratio = (unit.geo("output_grad_norm") / after.geo("output_grad_norm")
                 if after is not None and after.geo("output_grad_norm") > 0 else math.nan)
        if after is not None and math.isfinite(ratio) and ratio >= math.sqrt(gain):
            summary += (f"; yet the gradient at {layer_words(unit)} is {fmt(ratio)}x {layer_words(after)}'s, not "
                        f"about {fmt(gain)}x: what follows the softmax (a norm dividing by its outputs' small "
                        "spread) gives that back, and what is lost is the features' independence")
            extra.update(grad_ratio_to_next=ratio, shrink_given_back=True)
            effect = ("here the gradient does not shrink: the layer's gradient is " + fmt(ratio) + "x the next "
                      "layer's, because what reads the softmax's outputs gives the 1/k back (a batch or layer "
                      "norm divides by their spread, about 1/k, in both directions). What remains is that its "
                      "features compete (they sum to 1: one degree of freedom lost, a feature rises only as "
                      "the others fall) instead of being independent.")
        return Detection(
            self.code, severity, "min_softmax_gain", gain, summary,
            f"The softmax at {site} is applied to {layer_words(unit)}'s features and its output feeds another weight "
            "layer, so it acts as a hidden activation. A softmax over k features normalises them to sum to 1, "
            "so each output is near 1/k and its Jacobian diag(p) - pp^T is near diag(1/k): " + effect +
            " A softmax belongs on the output (or on attention scores); use a ReLU-family activation here.",
            {"metric": "min_softmax_gain", "value": gain, "threshold": self.HIDDEN_SOFTMAX_GAIN, **extra,
             "layers": [f[4].name for f in hit], "gains": {f[4].name: f[2] for f in hit},
             "features": {f[4].name: int(f[3]) for f in hit},
             "operation": "softmax", "called_at": site, "hidden_softmax": True},
            [u for k, u in enumerate(f[4] for f in hit) if all(u is not g[4] for g in hit[:k])])

    def _describe_softmax(self, severity: str, result: SimulationResult, t: Thresholds) -> Detection:
        """A softmax inside the forward one-hot in most of its rows: its scores are far too large."""
        hit = [f for f in self.softmax_shares(result) if f[2] >= t.saturation_warning]
        logged = self.logged_softmaxes(result)
        if logged and (not hit or f"{hit[0][0]}|{hit[0][1]}" in {f"{f[0]}|{f[1]}" for f in logged}):
            return self._describe_logged_softmax(severity, result, t, logged)
        name, site, share, _ = hit[0]
        if f"{name}|{site}" not in self._marked(result, "softmax_attention_scores"):
            return self._describe_sharp_softmax(severity, result, t, hit)
        return self._softmax_detection(
            severity, share,
            f"{share:.0%} of the rows of the softmax in {name.rsplit('>', 1)[0]} ({site}) are one-hot "
            "(max probability > 0.99)",
            f"The softmax at {site} gives one entry nearly all the weight in most rows already "
            f"{simulated_weights(result)}: its scores are far too large, so its Jacobian diag(p) - pp^T is near "
            "zero and the "
            "layers that make the scores get almost no gradient (attention becomes a hard lookup). The likely "
            "cause is scores not scaled by 1/sqrt(d_head) (multiplied instead of divided, or not scaled at "
            "all), or a router or similarity (contrastive logits) without a temperature. Divide the scores "
            "by sqrt(d_head), or by a temperature, before the softmax. Rows with a single unmasked entry (a "
            "causal mask's first row) are not counted.",
            hit, site, t)

    def _describe_logged_softmax(self, severity: str, result: SimulationResult, t: Thresholds,
                                 logged: list[tuple[str, str, float, UnitStats]]) -> Detection:
        """A log applied to a softmax's output: log_softmax computed in two steps. Its gradient on the
        scores is e_y - p, as a log_softmax's (no vanishing Jacobian), but a probability that rounds to
        0 gives log 0 = -inf, and its backward 1/p times a Jacobian entry of 0 gives NaN."""
        name, site, share, _ = logged[0]
        one_hot = share >= t.saturation_warning
        return self._softmax_detection(
            severity, share,
            f"a log is taken of the softmax in {name.rsplit('>', 1)[0]} ({site}), an unstable log_softmax"
            + (f"; {share:.0%} of its rows are already one-hot (max probability > 0.99)" if one_hot else ""),
            f"The output of the softmax at {site} goes into a log: log(softmax(x)) is log_softmax(x) computed in "
            "two steps. Its gradient on x is the same (one-hot target minus p), so the layers before it are not "
            "starved, but once a score is about 100 below its row's largest (float32; about 745 in float64) its "
            "probability rounds to 0: the log gives -inf, the loss is inf, and the backward's 1/p times a zero "
            "Jacobian entry gives NaN, after which training cannot proceed. Large scores make it likely"
            + (f": {share:.0%} of the rows are one-hot {simulated_weights(result)}, so the rest of those rows "
               "are near 0 and training makes the gap grow" if one_hot else "")
            + ". Compute it in one step: torch.log_softmax(x, dim) (nn.LogSoftmax) under nn.NLLLoss, or return "
            "x and train with nn.CrossEntropyLoss, which applies log_softmax itself.",
            logged, site, t, log_of_softmax=True)

    def _describe_sharp_softmax(self, severity: str, result: SimulationResult, t: Thresholds,
                                hit: list[tuple[str, str, float, UnitStats]]) -> Detection:
        """A softmax inside the forward one-hot in most rows whose scores are no product of two
        activations (no attention's or router's): a layer's outputs, far too large."""
        name, site, share, _ = hit[0]
        return self._softmax_detection(
            severity, share,
            f"{share:.0%} of the rows of the softmax in {name.rsplit('>', 1)[0]} ({site}) are one-hot "
            "(max probability > 0.99)",
            f"The softmax at {site} gives one entry nearly all the weight in most rows already "
            f"{simulated_weights(result)}: its inputs are far too large, so its Jacobian diag(p) - pp^T is near "
            "zero and the layers that make them get almost no gradient through it. The likely cause is the "
            "scale of the layer before it (weights or inputs far from unit scale); bring its outputs to unit "
            "scale (its init, normalised inputs, a norm), or divide them by a temperature.",
            hit, site, t)

    def _softmax_detection(self, severity: str, share: float, summary: str, explanation: str,
                           rows: list[tuple[str, str, float, UnitStats]], site: str, t: Thresholds,
                           **extra: object) -> Detection:
        """One hidden softmax's finding, whichever reading words it: its one-hot share, the softmaxes'
        layers and shares, each softmax's unit once."""
        return Detection(
            self.code, severity, f"max_{self.key}", share, summary, explanation,
            {"metric": f"max_{self.key}", "value": share, "threshold": t.saturation_warning,
             "layers": [f[0] for f in rows], "fractions": {f[0]: f[2] for f in rows},
             "operation": "softmax", "called_at": site, "softmax": True, **extra},
            [u for k, u in enumerate(f[3] for f in rows) if all(u is not g[3] for g in rows[:k])])

    #: A hardtanh is flat from its kink at |x| = 1, where a unit-variance pre-activation (a correct
    #: init) already sits 31.7% of the time (erfc(1/sqrt 2)); sigmoid and tanh are counted only
    #: deep in their tails (|x| > 3.9, > 2.3), which such a pre-activation hardly reaches. So a
    #: hardtanh layer counts from the same share of its remaining units: 31.7% + 30% of 68.3%.
    _hardtanh_warning = 0.52

    def limits(self, t: Thresholds) -> tuple[float, float]:
        return t.saturation_warning, t.saturation_error

    def words(
        self, value: float, worst: UnitStats, activation: str | None, layers: int
    ) -> tuple[str, str]:
        return (
            f"{value:.0%} of units in {layer_words(worst)} sit in the flat tails of {activation}",
            "Pre-activations too large for a saturating activation push it into its flat tails, "
            "where its derivative is near zero and no gradient passes.",
        )


# (MIN_DEAD_BATCH, the smallest batch over which "zero for every sample" can mean dead, is the
# simulation's: it also decides when a part of the seeds is run on to every seed)

#: The share of seeds born dead from which ``dead_units`` is an error: most draws of the network
#: never train. Below it, a minority of draws dies (a narrow ReLU stack's few per cent): a warning
#: saying how often.
BORN_DEAD_ERROR_SHARE = 0.5
#: Where the share is measured over many draws (:func:`.simulate.born_dead_draws`), below this it is
#: a note: about one run in ten or fewer starts dead, which a restart with another seed fixes and
#: which tiny networks that train well show (peersweep11 h07, the benchmark's fixed 2-2-1 net: 8%);
#: from it a warning (one run in ten or more never learns), from BORN_DEAD_ERROR_SHARE an error.
BORN_DEAD_WARNING_SHARE = 0.1


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% at z 1.96) of a share of ``k`` in ``n``."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def born_dead_share(result: SimulationResult) -> tuple[int, int, bool]:
    """(draws born dead, draws, whether they are the many extra draws): over
    :attr:`.simulate.SimulationResult.over_draws` where a small network ran them, else over the seeds."""
    draws = result.over_draws()
    if draws is not None:
        return len(born_dead_seeds(draws)), draws.seeds, True
    return len(born_dead_seeds(result)), max(result.seeds, 1), False


def born_dead(result: SimulationResult) -> list[tuple[UnitStats, list[int]]]:
    """The ReLU layers entirely dead (every unit zero for the whole batch) in a seed where no
    gradient at all reaches the first weighted layer: (layer, those seeds). A small layer off by
    chance beside a live path (a squeeze-excitation gate) leaves gradient below it, so it is not
    counted. A batch under :data:`MIN_DEAD_BATCH` is judged from :data:`MIN_POOLED_SAMPLES`
    samples: a whole layer off for each of them in a seed where not one gradient reaches the first
    layer is not a sampling question (peersweep20 dm56452176: a Dense(1, relu) on positive inputs,
    off in one seed of three at batch 5, every layer's gradient 0 there, went unreported)."""
    if result.batch_size is not None and result.batch_size < MIN_POOLED_SAMPLES:
        return []
    weighted = [u for u in result.units if u.has_weights and not u.container and "grad_norm" in u.values]
    if not weighted:
        return []
    first = weighted[0].values["grad_norm"].tolist()
    output = clipped_output(result)  # output_loss_mismatch's: its cause is the ReLU itself
    out = []
    for u in result.units:
        f = u.values.get("dead_fraction")
        if f is None or u is output:
            continue
        seeds = [s for s, x in enumerate(f.tolist()) if x == 1.0 and s < len(first) and first[s] == 0.0]
        if seeds:
            out.append((u, seeds))
    return out


def may_die(result: SimulationResult) -> list[UnitStats]:
    """The ReLU layers that die whole in some seed, or may in another draw (narrow, with units
    off for the whole batch: :func:`.simulate.death_chance` at :data:`.simulate.BORN_DEAD_RISK` or
    more in some seed): a born-dead network's remedy is for all of them, not only the one that died
    in the seeds drawn."""
    output = clipped_output(result)
    out = []
    for u in result.units:
        dead, width = u.values.get("dead_fraction"), u.values.get("relu_units")
        if dead is None or width is None or u is output:
            continue
        if any(death_chance(d, w) >= BORN_DEAD_RISK for d, w in zip(dead.tolist(), width.tolist(), strict=True)):
            out.append(u)
    return out


def born_dead_seeds(result: SimulationResult) -> list[int]:
    """The seeds in which the network is born dead (:func:`born_dead`), in order."""
    return sorted({s for _, ss in born_dead(result) for s in ss})


def live_seeds(result: SimulationResult) -> tuple[SimulationResult, list[int]]:
    """(``result`` over the seeds not born dead, the born-dead seeds left out): the depth ratios are
    judged on the draws that live, since a dead draw's 0 is ``dead_units``'s finding (one dead
    seed of ten made the geometric mean 0: "no gradient reaches the first layer" for the network).
    Where every seed is born dead (or none), ``result`` as it is and no seed left out."""
    dead = born_dead_seeds(result)
    if not dead or len(dead) >= result.seeds:
        return result, []
    return select_seeds(result, [s for s in range(result.seeds) if s not in dead]), dead


#: The fewest samples, over every seed's batch together, over which a graph door's share of units
#: zero for every sample is judged where the batch itself is under :data:`MIN_DEAD_BATCH` (a file
#: that fixes its batch at 1, as torch.onnx's single dummy input does): a live unit firing on half
#: the inputs is zero for all of 3 independent samples with probability 1/8, so a layer whose every
#: unit is off on all of them is not a sampling question (a part of it off is: see DeadUnits.judged)
#: (onnxsweep17 u04: a conv whose weights are all negative on inputs in [0, 1], 100% off in 3 of 3).
MIN_POOLED_SAMPLES = 3


def _small_batch(result: SimulationResult) -> bool:
    return result.batch_size is not None and result.batch_size < MIN_DEAD_BATCH


def dead_samples(u: UnitStats, result: SimulationResult) -> int | None:
    """The samples a ReLU layer's "zero for every sample" share counts: where a graph run at a small
    batch was run on further draws (graph.DEAD_SAMPLES), those and the seeds' batches; else, for a
    graph door's share over every seed (graph.DEAD_IN_EVERY_SEED), the seeds' batches together; else
    (a spec's share, per seed) the batch. None where the batch is unknown. Whether a share can tell
    a dead unit from one off by chance is a question of this count, not of the batch: a live unit
    firing on half the inputs is off for all n samples with probability 2^-n."""
    counted = u.values.get("dead_samples")  # graph.DEAD_SAMPLES
    if counted is not None and counted[0] == counted[0]:
        return int(counted[0])
    if result.batch_size is None:
        return None
    every = u.values.get("dead_in_every_seed")  # graph.DEAD_IN_EVERY_SEED
    return result.batch_size * result.seeds if every is not None else result.batch_size


def _few_samples(u: UnitStats, result: SimulationResult) -> bool:
    """Whether ``u``'s share is over fewer than :data:`MIN_DEAD_BATCH` samples (:func:`dead_samples`)
    where the batch itself is that small; a spec's or a full batch's share keeps the batch's rule."""
    if not _small_batch(result):
        return False
    n = dead_samples(u, result)
    return n is not None and n < MIN_DEAD_BATCH


def _pooled_enough(result: SimulationResult) -> bool:
    """Whether the seeds' samples together are enough to judge a graph door's all-samples share
    where the batch alone is too small (:data:`MIN_POOLED_SAMPLES`)."""
    return result.batch_size is not None and result.batch_size * result.seeds >= MIN_POOLED_SAMPLES


#: A ReLU layer left with this many live units or fewer (its width times its live share) is a
#: bottleneck whatever made its units off: the layers after it see a signal of that rank at most.
BOTTLENECK_LIVE_UNITS = 1.0


def bottleneck(dead: float, width: int) -> bool:
    """Whether a ReLU layer of ``width`` units with share ``dead`` off for the whole batch passes its
    signal through :data:`BOTTLENECK_LIVE_UNITS` live unit or fewer: then its share is judged as
    measured, not discounted as a coin toss (:meth:`DeadUnits.judged`). The binomial test cannot
    tell a narrow layer's death from chance (4 of 5 units off in each of 3 seeds, 12 of 15, is
    p = 0.018 at 1/2, over the Bonferroni line of 20 layers), but whether by chance or not, one
    live unit is all the layers after it see (peersweep12 u13: 20 ReLU layers of width 5, three
    of them left with one)."""
    return dead > 0.5 and width * (1.0 - dead) <= BOTTLENECK_LIVE_UNITS + 1e-9


#: A ReLU layer whose pre-activations vary over the batch by less than this share of their size
#: (:data:`.figures.SAMPLE_SPREAD`) gives each unit the same sign for every sample: the batch is one
#: sample for it. At 0.1 a unit's mean is 10 of its spreads from 0, so no sample flips its sign.
ALIKE_SPREAD = 0.1
#: ... where the ReLU layer before it varies at least this many times more: the likeness is made at
#: this layer's input (a pooling over each sample: a squeeze-and-excitation block, a global-pool
#: head), not a signal that fades layer by layer (a deep stack at a too-small init shrinks it by
#: about 1.5x a layer, which vanishing_gradient's init remedies do fix).
ALIKE_DROP = 4.0


def alike_inputs(result: SimulationResult) -> dict[str, tuple[float, float]]:
    """The ReLU layers whose inputs are alike across the samples though the layer before them
    varies (:data:`ALIKE_SPREAD`, :data:`ALIKE_DROP`): name -> (its spread, the previous ReLU layer's),
    the largest over the seeds for it, the smallest for the one before. A unit of such a layer is
    on or off for the whole batch together, one coin toss at initialisation, so "zero for every
    sample" says no more than one sample would (modsweep46 ayesh_aunet_r16: squeeze-and-excitation
    bottlenecks, their pooled inputs varying 0.03 of their size, read as 100% dead)."""
    out: dict[str, tuple[float, float]] = {}
    before: float | None = None
    for u in result.units:
        v = getattr(u, "values", {}).get(SAMPLE_SPREAD)  # (a stand-in unit may carry no figures)
        if v is None:
            continue
        xs = [x for x in v.tolist() if x == x]
        if not xs:
            continue
        spread = max(xs)
        if before is not None and spread < ALIKE_SPREAD and before >= ALIKE_DROP * spread:
            out[u.name] = (spread, before)
        before = min(xs)
    return out


def _more_samples_words(result: SimulationResult, units: Sequence[UnitStats]) -> str:
    """How to give ``units`` (ReLU layers judged over too few samples) the
    :data:`MIN_DEAD_BATCH` samples that judge them, in words that never name what the model refuses:
    a model's share counts every seed's batch together, so more seeds are more samples whatever batch
    the file fixes (onnxsweep27 mouse_path_range: "give a batch of 8" beside a file refused at any batch
    but 1); a spec's is each seed's own batch."""
    batch = max(result.batch_size or 1, 1)
    if any(u.values.get("dead_in_every_seed") is not None for u in units):  # graph.DEAD_IN_EVERY_SEED
        seeds = -(-MIN_DEAD_BATCH // batch)
        return (f"{MIN_DEAD_BATCH} samples or more judge it: every seed's batch counts, so --seeds {seeds} or more "
                f"(seeds over HTTP) gives them at this batch of {batch}, or a larger batch where the model takes one")
    return f"a batch of {MIN_DEAD_BATCH} or more judges it"


class DeadUnits(_Fraction):
    code = "dead_units"
    key = "dead_fraction"
    remedies = (zero_biases, new_inits, _leaky_relu, _batchnorm)

    def judged(self, result: SimulationResult) -> list[tuple[UnitStats, float]]:
        # Up to half a layer's units off for the whole batch is what correlated inputs alone make
        # (thresholds.Thresholds.dead_warning); above that, a few units are a coin toss each: 5
        # of the 8 units of a squeeze-and-excitation layer, whose pooled inputs all look alike,
        # read as 62% dead. A fraction above 1/2 counts only where a count that large is unlikely
        # at 1/2 (one-sided binomial test over the seeds' units, Bonferroni over the layers).
        small = _small_batch(result)
        if small and not _pooled_enough(result) and not any(
                (dead_samples(u, result) or 0) >= MIN_POOLED_SAMPLES for u in result.units):
            return []  # "zero for the whole batch" of one or two samples is a coin toss, not death
        output = clipped_output(result)  # judged by output_loss_mismatch
        measured = [(u, f) for u, f in super().judged(result) if u is not output]
        level = 0.05 / max(len(measured), 1)
        # a layer born dead (whole, in a seed where no gradient reaches the first layer) is judged
        # at a small batch too: that is no sampling question (peersweep20 dm56452176)
        dead_born = {id(u) for u, _ in born_dead(result)} if small else set()
        # a layer whose inputs are alike across the samples (a squeeze-and-excitation bottleneck):
        # the batch is one sample for it, each unit one coin toss, so only the binomial test over its
        # units judges it; a narrow one left with one live unit by those tosses (1 or 2 units: 1/2,
        # 1/4) is not a bottleneck measured but a toss (modsweep46 ayesh_aunet_r16)
        alike = alike_inputs(result)
        out = []
        for u, value in measured:
            units = u.values.get("relu_units")
            every = u.values.get("dead_in_every_seed")  # graph.DEAD_IN_EVERY_SEED
            few = _few_samples(u, result)
            if few and (dead_samples(u, result) or 0) < MIN_POOLED_SAMPLES and id(u) not in dead_born:
                continue  # one or two samples: a coin toss, not death
            if few and (every is None or every[0] != 1.0) and id(u) not in dead_born:
                # under 8 samples, pooled over the seeds: only a layer off whole on every sample (no
                # unit ever fires) is judged; a part of it off on 3 samples is what correlated inputs
                # make (onnxsweep16 h08: a trained 2 -> 1000 ReLU layer, 62% off on 3 samples of 2-D inputs).
                # A graph that runs at batch 1 only is run on further draws to 16 samples a seed
                # (graph.POOLED_DEAD_SAMPLES), and judged as a full batch is (onnxsweep27 mouse_path_range)
                continue
            if every is not None and units is not None and units[0] >= 1 and not math.isnan(every[0]):
                # a graph door: dead is zero for every sample of every seed's batch (48 samples at 3
                # seeds); a unit of a trained net that fires on 10% of inputs is zero for one
                # batch of 16 with probability 0.19, and per-seed shares called it dead (onnxsweep10)
                value = min(value, float(every[0]))
                k, n = round(value * int(units[0])), int(units[0])
                narrow = bottleneck(value, n) and u.name not in alike
                value = value if value <= 0.5 or binomial_tail_half(k, n) < level or narrow else 0.5
            elif value > 0.5 and units is not None and units[0] >= 1:
                fractions = [f for f in u.values[self.key].tolist() if f == f]
                n = int(units[0]) * len(fractions)
                k = round(sum(fractions) * int(units[0]))
                narrow = bottleneck(value, int(units[0])) and u.name not in alike
                value = value if binomial_tail_half(k, n) < level or narrow else 0.5
            out.append((u, value))
        return out

    def limits(self, t: Thresholds) -> tuple[float, float]:
        return t.dead_warning, t.dead_error

    def unjudged(self, result: SimulationResult) -> str | None:
        # a batch under 8: judged over every seed's samples pooled, and then only a layer off whole
        # on all of them (:meth:`judged`); a ReLU layer left out is not judged, not healthy
        # (onnxsweep17 u04: a remedy re-simulated on one seed at the file's batch of 1, "FIXED 1 -> -")
        if not _small_batch(result):
            return None
        output = clipped_output(result)
        judged = {u.name for u, _ in self.judged(result)}
        left = [u for u in result.units if self.key in u.values and u is not output and u.name not in judged]
        if not left:
            return None
        samples = max((dead_samples(u, result) or 0) for u in left)
        more = _more_samples_words(result, left)
        if samples < MIN_POOLED_SAMPLES:
            return (f"too few samples: {samples} over {result.seeds} seed(s) at a batch of {result.batch_size}, "
                    f"under the {MIN_POOLED_SAMPLES} that a layer off whole is judged on; {more}")
        parts = []
        for u in left[:3]:
            every = u.values.get("dead_in_every_seed")  # graph.DEAD_IN_EVERY_SEED
            share = f"{float(every[0]):.0%} of its units" if every is not None and not math.isnan(every[0]) else "a part"
            parts.append(f"{layer_words(u)}: {share}")
        return (f"too few samples: {samples} over {result.seeds} seed(s) at a batch of {result.batch_size}, on which "
                f"only a ReLU layer off whole is judged, and {'; '.join(parts)}{' ...' if len(left) > 3 else ''} "
                f"zero on all of them; {more}")

    def discounted(self, result: SimulationResult, t: Thresholds
                   ) -> list[tuple[UnitStats, float, float | None, float | None]]:
        """The layers whose figure in the layer table (``dead_fraction``: each seed's batch, averaged)
        or over every seed's samples together (``dead_in_every_seed``) is at the warning or above while
        the share the finding judges (:meth:`judged`) is below it: (layer, per batch, all samples or
        None, judged or None where not judged). Each is a note saying why (onnxsweep13: a trained
        layer's table read 69% beside no finding at all)."""
        warn = self.limits(t)[0]
        judged = {u.name: f for u, f in self.judged(result)}
        output = clipped_output(result)
        out: list[tuple[UnitStats, float, float | None, float | None]] = []
        for u in result.units:
            if "dead_fraction" not in u.values or u is output:
                continue
            per_batch = u.mean("dead_fraction")
            every = u.values.get("dead_in_every_seed")  # graph.DEAD_IN_EVERY_SEED
            pooled = float(every[0]) if every is not None and not math.isnan(every[0]) else None
            shown = max(per_batch if per_batch == per_batch else 0.0, pooled or 0.0)
            mark = judged.get(u.name)
            if shown >= warn and (mark is None or mark < warn):
                out.append((u, per_batch, pooled, mark))
        return out

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        # born dead in most seeds: an error; in some: a warning saying how often (a narrow ReLU
        # stack dies in a few per cent of its draws, which a seed or two of ten shows by chance)
        units = super().assess(value, result, t)
        dead = self._born_dead(result)
        if units is None and dead == "none":
            # a figure at the warning that the judging discounts: a note saying why, never silence
            return "info" if self.discounted(result, t) else None
        if units is None or (dead != "none" and SEVERITY_RANK[dead] > SEVERITY_RANK[units]):
            return None if dead == "none" else dead
        return units

    def severity(self, result: SimulationResult, t: Thresholds) -> tuple[float, str | None]:
        value, severity = super().severity(result, t)
        if severity is None and math.isnan(value) and self.discounted(result, t):
            return value, "info"  # (a batch too small to judge: every judged share is missing)
        return value, severity

    def _describe_discounted(self, value: float, result: SimulationResult, t: Thresholds) -> Detection:
        """The note for :meth:`discounted`'s layers: what each figure counts, and why the finding's
        own share is below the warning."""
        warn = self.limits(t)[0]
        found = self.discounted(result, t)
        u, per_batch, pooled, mark = max(found, key=lambda x: max(x[1] if x[1] == x[1] else 0.0, x[2] or 0.0))
        batch = result.batch_size
        samples = dead_samples(u, result) if pooled is not None else (batch * result.seeds if batch else None)
        units = u.values.get("relu_units")
        width = int(units[0]) if units is not None and units[0] == units[0] and units[0] >= 1 else None
        if _few_samples(u, result) and mark is None:
            n = dead_samples(u, result) or batch or 0
            short = f"{n} sample{'s' if n != 1 else ''} {'is' if n == 1 else 'are'} too few to tell"
            why = (f"over {n} sample{'s' if n != 1 else ''}, a live unit is zero for all of them with probability "
                   f"2^-{n}, so a share off for them says nothing about death; {_more_samples_words(result, [u])}")
        elif pooled is not None and pooled < warn:
            short = f"under {warn:.0%} over all samples"
            why = (f"over all {samples} samples of the {result.seeds} seeds' batches together only {pooled:.0%} "
                   "are zero for every one: a unit off for one batch of "
                   f"{batch} fires in another's, so it is not dead (a trained unit firing on one input in "
                   f"ten is off for a batch of 16 with probability 0.19)")
        else:
            k = round((pooled if pooled is not None else per_batch) * (width or 0))
            # a count of units against the half of a layer that inputs alike switch off: said so, as a
            # unit zero for every sample IS off on these inputs (kerassweep26: "zero for all 192
            # samples ... not judged dead (6 of 10 units is within chance of half)" read as a contradiction)
            short = (f"{k} of {width} units is within chance of half, the share of a layer's units that inputs "
                     "alike switch off" if width else "within chance of half")
            # the test's own count: the graph door's all-samples share over the width, else each
            # seed's units together (:meth:`judged`)
            n_all = (width or 0) * (1 if pooled is not None else result.seeds)
            k_all = round((pooled if pooled is not None else per_batch) * n_all)
            output = clipped_output(result)
            layers = len([u for u, _ in super().judged(result) if u is not output]) or 1
            why = (f"{k_all} of {n_all} units off{'' if pooled is not None else f' over the {result.seeds} seeds'} "
                   f"is not more than half by more than chance (P = {binomial_tail_half(k_all, n_all):.2g} "
                   f"at 1/2, over the {0.05 / layers:.2g} line): inputs that look alike leave each unit off "
                   "with probability 1/2, and a share above 1/2 counts only where a one-sided binomial test "
                   f"at 1/2 rejects it (Bonferroni over the {layers} ReLU layer{'s' if layers > 1 else ''})"
                   + ("" if u.name in alike_inputs(result) else
                      f" or the layer is left with {BOTTLENECK_LIVE_UNITS:g} live unit or fewer")
                   + "; otherwise the judged share is 1/2"
                   if width else "the share is not beyond what correlated inputs alone make")
        alike = alike_inputs(result).get(u.name)
        if alike is not None:
            short += "; its inputs are nearly the same for every sample, so the batch is one sample for it"
            why += f". {_alike_words(*alike)}"
        all_samples = f", {pooled:.0%} for all {samples} samples of every seed" if pooled is not None else ""
        evidence = {
            "metric": f"max_{self.key}", "value": value if value == value else None, "threshold": warn,
            "layers": [x[0].name for x in found],
            "fractions": {x[0].name: x[1] for x in found},
            "all_samples_fractions": {x[0].name: x[2] for x in found if x[2] is not None},
            "judged_fractions": {x[0].name: x[3] for x in found if x[3] is not None},
            "batch_size": batch, "seeds": result.seeds,
        }
        figure = pooled if pooled is not None else per_batch
        if figure == figure:
            # the healthy summary quotes what this note concludes, not the judged share: "dead_units 0.5
            # of the units dead" beside "62% for all 48 samples ... not judged dead" (onnxsweep22 churn_keras)
            off = f"for all {samples} samples" if pooled is not None else f"for a batch of {batch}"
            evidence["summary_note"] = f"{figure:.0%} of a layer's units off {off}, not judged dead ({short})"
        if any(x[3] == 0.5 for x in found):
            # what "judged" did to the share (peersweep12 u13: fractions 0.8 beside judged 0.5, unexplained)
            evidence["judged_fraction_rule"] = (
                "a share above 1/2 is judged as measured only where a one-sided binomial test at 1/2 over "
                "the layer's units (those zero for every sample of every seed for a module or file, each "
                "seed's units together for a spec) rejects it, Bonferroni over the ReLU layers, or "
                f"where the layer is left with {BOTTLENECK_LIVE_UNITS:g} live unit or fewer; otherwise as 1/2, "
                "what inputs that look alike make by chance")
        return Detection(
            self.code, "info", f"max_{self.key}", value,
            f"{per_batch:.0%} of units in {layer_words(u)} are zero for a batch of {batch}{all_samples}: off on "
            f"these inputs, but not judged dead ({short})",
            "The layer table's dead_fraction is each seed's share of units zero for its whole batch, "
            "averaged over the seeds"
            + ("; dead_fraction_all_samples is the share zero for every sample of every seed, the figure "
               "dead_units judges here" if pooled is not None else "")
            + f". {layer_words(u)} is not reported as dead because {why}. "
            "A layer with this many units off on these inputs still wastes capacity: if it is trained, "
            "check it on real data.",
            evidence, [x[0] for x in found])

    @staticmethod
    def _born_dead(result: SimulationResult) -> str:
        """The severity of the network's born-dead share (``none`` where no draw is born dead): over
        many draws, a note under :data:`BORN_DEAD_WARNING_SHARE`; over the seeds alone, a warning for
        any (a count of 3 cannot tell 8% from 33%)."""
        k, n, many = born_dead_share(result)
        share = k / n
        if share == 0:
            return "none"
        if share >= BORN_DEAD_ERROR_SHARE:
            return "error"
        return "info" if many and share < BORN_DEAD_WARNING_SHARE else "warning"

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        found = _zero_weight_cause(self._describe(severity, value, result, t), result)
        return _alike_cause(_collapsed_weight_cause(found, result), result)

    def _describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        k, n, many = born_dead_share(result)
        if severity == "info" and not (k and self._born_dead(result) == "info"):
            return self._describe_discounted(value, result, t)
        draws = result.over_draws() if many else None
        dead = born_dead(draws if draws is not None else result)
        units = super().assess(value, result, t)
        if not dead or (units is not None and SEVERITY_RANK[units] > SEVERITY_RANK[self._born_dead(result)]):
            found = super().describe(severity, value, result, t)  # (the layers' own share is the worse)
            if _small_batch(result):
                # judged over the seeds' samples pooled: say so, not "the whole batch" of 1
                counts = [dead_samples(x, result) for x in found.units] if found.units else []
                samples = min((n for n in counts if n), default=(result.batch_size or 0) * result.seeds)
                drawn = samples > (result.batch_size or 0) * result.seeds
                found.summary = found.summary.replace(
                    "for the whole batch", f"for every one of {samples} samples ({result.seeds} seeds' "
                                           f"batches of {result.batch_size}{' and further draws' if drawn else ''})")
                found.explanation += (
                    f" The model runs at a batch of {result.batch_size}, so the share judged is of units zero for "
                    f"every one of {samples} independent samples together ("
                    + (f"each seed's batch run again, forward only, on further draws of the inputs to "
                       f"{samples // max(result.seeds, 1)} samples a seed" if drawn else "every seed's batch")
                    + f"): a live unit firing on half the inputs is off for all of them with probability 2^-{samples}.")
                found.evidence.update(batch_size=result.batch_size, seeds=result.seeds, pooled_samples=samples)
            return found
        layers = [u for u, _ in dead]
        share = k / n
        low, high = wilson_interval(k, n)
        # (the share of seeds born dead, above 0: the per-layer fractions average dead and live
        # draws, and read beside dead_warning they looked like a finding that does not fire)
        evidence = {
            "metric": "born_dead_seeds", "value": share, "threshold": 0.0,
            "error_share": BORN_DEAD_ERROR_SHARE,
            "layers": [u.name for u in layers],
            "fractions": {u.name: u.mean(self.key) for u in layers},
            "dead_seeds": {u.name: ss for u, ss in dead} if not many else
            {u.name: ss for u, ss in born_dead(result)}, "seeds": result.seeds,
            "born_dead_draws": k, "draws": n, "draws_beyond_seeds": many,
            "warning_share": BORN_DEAD_WARNING_SHARE if many else 0.0,
        }
        if many:
            evidence["share_interval_95"] = [low, high]
        most = share >= BORN_DEAD_ERROR_SHARE
        # the remedies are for every layer that may die, not only the one that did in these draws
        named = {u.name for u in layers}
        named |= {u.name for u in may_die(result)}
        at_risk = [u for u in result.units if u.name in named]
        # (the detection's metric stays the rule's measure, which a remedy's before and after are in)
        where = f"{layer_words(layers[0])}{' (or of another ReLU layer)' if len(layers) > 1 else ''}"
        if many:
            head = (f"born dead in {k} of {n} initialisations, {share:.0%} (95% interval {low:.0%}-{high:.0%}): "
                    f"every unit of {where} is zero for the whole batch in those draws, and no gradient reaches "
                    "the first layer")
            if severity == "info":
                head += "; a note: about one run in ten or fewer starts dead, and restarting with another seed fixes it"
        elif result.checkpoint:
            # stored (trained) weights are one network, not a draw at birth: dead in the seeds' batches
            # (onnxsweep29 ayan_ae_h5: "born dead in 3 of 3 seeds" for a collapsed trained decoder)
            head = (f"dead in {'every seed' if k == n else f'{k} of {n} seeds'}: every unit of {where} is zero "
                    "for the whole batch with the stored weights, and no gradient "
                    "reaches the first layer")
        else:
            head = (f"born dead in {k} of {n} seeds: every unit of {where} is zero for the whole batch in "
                    f"{'that seed' if k == 1 else 'each of them'}, and no gradient reaches the first layer")
        # a note carries no remedies (check.py, module_check.py), so it points at the changes it names
        # itself, not at "the changes below" (peersweep11 h07: a 6% born-dead share, a note)
        fixes = "one of the changes named next" if severity == "info" else "the changes below"
        return Detection(
            self.code, severity, f"max_{self.key}", value, head,
            "A ReLU layer whose every unit is off for every input passes no gradient, so nothing before it ever "
            "learns: that draw of the network is dead from its first step. Narrow deep ReLU stacks die at "
            "initialisation with a probability that grows with depth (Lu et al. 2019); a draw that lives trains, "
            "one that dies never does. "
            + ("Most draws here die, so training this network mostly fails. " if most else
               f"Here a minority of draws dies, {share:.0%} of {n} further initialisations of the spec's init and "
               f"input distribution (a note under {BORN_DEAD_WARNING_SHARE:.0%}, a warning from it, an error from "
               f"{BORN_DEAD_ERROR_SHARE:.0%}): a run that does not learn at all is likely this; restarting with "
               f"another seed, or {fixes}, avoids it. " if many else
               f"Here a minority of the {n} seeds died; so few seeds cannot measure the share (one dead seed of "
               f"{n} fits a true share from a few per cent to most draws): a run that does not learn at all is "
               f"likely this; restarting with another seed, or {fixes}, avoids it. ")
            + _KEEP_ALIVE,
            evidence, at_risk)

    def words(
        self, value: float, worst: UnitStats, activation: str | None, layers: int
    ) -> tuple[str, str]:
        return (
            f"{value:.0%} of the units after {layer_words(worst)}{_unit_count(value, worst)} are zero for the "
            f"whole batch ({layers} {'layer' if layers == 1 else 'layers'} affected)",
            "A ReLU unit whose pre-activation is negative for every input outputs 0 and gets "
            "0 gradient, so it never recovers (a too-negative bias or a badly scaled init).",
        )


#: What keeps a ReLU layer's units alive at initialisation, which dead_units' born-dead text ends with
#: (not said of a layer whose trained weights collapsed: no activation or bias revives it).
_KEEP_ALIVE = "Wider layers, a leaky ReLU, a small positive bias or normalisation keep units alive."


def _unit_count(fraction: float, unit: UnitStats) -> str:
    """`` (4 of 5)``: how many of ``unit``'s ReLU units ``fraction`` (its mean over seeds) is,
    which a narrow layer's percentage hides (80% of 5 is 4 units); to one decimal where the seeds
    differ, "" where the count of units was not measured."""
    if "relu_units" not in unit.values:
        return ""
    n = unit.mean("relu_units")
    if not (math.isfinite(n) and n >= 1 and math.isfinite(fraction)):
        return ""
    k = fraction * n
    count = f"{round(k)}" if abs(k - round(k)) < 1e-6 else f"{k:.1f} (mean over seeds)"
    return f" ({count} of {int(round(n))})"


def _alike_words(spread: float, before: float) -> str:
    """Why a layer whose inputs are alike across the samples (:func:`alike_inputs`) is judged as one sample."""
    return (f"Its pre-activations vary across the samples by only {spread:.2g} of their size, against {before:.2g} "
            "for the ReLU layer before it: it reads a vector pooled over each sample (a squeeze-and-excitation "
            "block's, a global-pool head's), nearly the same for every sample, so the batch is effectively one "
            "sample for it. Each unit is on or off for the whole batch together, one coin toss at initialisation "
            "(off with probability 1/2 whatever the batch size: the 2^-batch chance of a live unit being off for "
            "every sample holds only for samples that differ), so its count of units off is judged as that many "
            "coin tosses (a one-sided binomial test at 1/2 over its units), never as a narrow layer's death; a new "
            "draw of the init tosses the coins again, and fixes only units that its weights' construction turned "
            "off (the remedies' measured results say which), and units off by the toss come on where the pooled "
            "input changes as the layers before it learn")


def _alike_cause(found: Detection, result: SimulationResult) -> Detection:
    """``found`` (a dead_units detection) saying which of its layers read inputs alike across the
    samples (:func:`alike_inputs`), with their spread in the evidence (``sample_spread``, and
    ``sample_spread_before`` of the ReLU layer before each); unchanged where none does."""
    alike = alike_inputs(result)
    names = [n for n in found.evidence.get("layers") or [] if n in alike]
    if not names:
        return found
    found.evidence["sample_spread"] = {n: alike[n][0] for n in names}
    found.evidence["sample_spread_before"] = {n: alike[n][1] for n in names}
    if found.severity != "info":  # (the note on a discounted share says it in its own words)
        found.explanation += f" {names[0]}: {_alike_words(*alike[names[0]])}."
    return found


def _zero_weight_cause(found: Detection, result: SimulationResult) -> Detection:
    """``found`` (a dead_units detection) with the all-zero layers that make it: where every dead
    layer's weights are all exactly 0 (a ``zeros`` kernel: it outputs its bias, ReLU'd to 0), its
    evidence's ``zero_weights`` names every layer of the network whose weights are all 0, and the
    init remedy re-initialises them together (:func:`.remedies.init_remedies`), as vanishing_gradient's
    does. One at a time fixes nothing: the next zero layer then outputs 0 for every input, dead in
    turn, and passes no gradient back (peersweep21 nl_zeros_init: he_init, leaky_relu and batch_norm
    on the first zero conv alone, each "not fixed: max_dead_fraction 1 -> 1"). Unchanged otherwise."""
    names = found.evidence.get("layers") or []
    dead = [u for u in result.units if u.name in names and u.has_weights]
    if not dead or not all(_zero_weights(u) for u in dead):
        return found
    zero = [u for u in result.units if u.depth == 0 and u.has_weights and _zero_weights(u) and not cut_off(u)]
    found.evidence["zero_weights"] = [u.name for u in zero]
    found.explanation += (
        f" Here the weights of {_named(dead)} are all exactly 0, so {'it outputs' if len(dead) == 1 else 'they output'} "
        "only the bias, 0 after the ReLU, for every input: no activation or normalisation changes that. "
        + (f"{_named(zero)} all start at zero: re-initialised one at a time, the next one still outputs 0 and "
           "passes no gradient back (which is why no gradient reaches the layers before them: "
           "vanishing_gradient), so they are re-initialised together."
           if len(zero) > 1 else "Re-initialise its weights randomly."))
    return found


#: A layer's weights are functionally zero where their RMS is under this share of the scale its fan-in's
#: initialisers give (1/sqrt(fan_in): LeCun's, PyTorch's and Keras' defaults are within a few times
#: it): the layer then scales what it reads by a millionth or less of an initialised layer's gain.
NEGLIGIBLE_WEIGHT_SHARE = 1e-6
#: Under float32's smallest normal value a weight is a denormal, zero for any arithmetic that matters.
FLOAT32_TINY = 1.1754943508222875e-38


def negligible_weights(unit: UnitStats) -> bool:
    """Whether ``unit``'s weights are functionally zero in every seed without being exactly 0: their
    RMS under :data:`NEGLIGIBLE_WEIGHT_SHARE` of 1/sqrt(fan_in), or denormal in float32 (weight decay
    or an L1 penalty driving a path to zero, an fp16 underflow on save)."""
    rms = unit.values.get("weight_rms")
    if rms is None or not len(rms) or not unit.fan_in:
        return False
    bound = max(NEGLIGIBLE_WEIGHT_SHARE / math.sqrt(unit.fan_in), FLOAT32_TINY)
    values = [float(x) for x in rms]
    return all(math.isfinite(x) and x < bound for x in values) and any(x > 0 for x in values)


def _collapsed_weight_cause(found: Detection, result: SimulationResult) -> Detection:
    """``found`` (a dead_units detection on stored weights) with the layers whose stored weights
    collapsed to (near) zero in training, at or before its dead layers: evidence ``collapsed_weights``
    (name -> weight RMS) and a sentence naming them first (onnxsweep29 ayan_ae_h5: a decoder's kernels of
    RMS 5e-34 went unnamed, only generic init remedies followed). Unchanged otherwise."""
    names = found.evidence.get("layers") or []
    if not result.checkpoint or not names:
        return found
    order = [u.name for u in result.units]
    last = max(order.index(n) for n in names if n in order) if any(n in order for n in names) else -1
    collapsed = [u for u in result.units[:last + 1] if u.has_weights and not cut_off(u) and negligible_weights(u)]
    if not collapsed:
        return found
    found.evidence["collapsed_weights"] = {u.name: u.geo("weight_rms") for u in collapsed}
    sizes = [u.geo("weight_rms") for u in collapsed]
    scale = (f"~{fmt(sizes[0])}" if max(sizes) <= 10 * min(sizes) else f"{fmt(min(sizes))} to {fmt(max(sizes))}")
    found.explanation = (
        f"The stored weights of {_named(collapsed)} are {scale} (RMS): collapsed to zero in training, a millionth "
        "or less of the scale their fan-in's initialisation gives (weight decay or an L1 or activity penalty "
        "driving the path to zero, or an underflow when saved in fp16). Such a layer outputs its bias whatever "
        "its input and passes back no gradient, so no layer before it learns. What fixes it is re-initialising "
        f"{'that layer' if len(collapsed) == 1 else 'those layers together'} on this checkpoint, every other "
        "trained weight kept, and training on with a lower weight decay (or penalty) and learning rate than drove "
        f"{'it' if len(collapsed) == 1 else 'them'} there; an activation swap changes nothing, since a layer with "
        "zero weights outputs its bias whatever follows it. "
        + found.explanation.replace(" " + _KEEP_ALIVE, "").replace(_KEEP_ALIVE, ""))
    return found


def _masked_nonfinite(result: SimulationResult) -> bool:
    """NaN/Inf in the backward pass only, in no weight's gradient: the forward and the loss are
    finite, some weights' gradients were measured, and every one of them is finite (a NaN from
    sqrt's derivative at 0 that the ReLU before it zeroes)."""
    if not all(math.isfinite(x) for x in result.losses) or any(
            u.mean("nonfinite_forward") > 0 for u in result.units):
        return False
    weighted = [u for u in result.units if "nonfinite_weight_grad" in u.values]
    return bool(weighted) and all(u.mean("nonfinite_weight_grad") == 0 for u in weighted)


def nonfinite_in_loss(result: SimulationResult) -> bool:
    """Every layer's forward output finite and the loss not: the NaN/Inf is made after the last
    layer, by the loss, in the first forward pass (before any update)."""
    return not all(math.isfinite(x) for x in result.losses) and not any(
        u.mean("nonfinite_forward") > 0 for u in result.units)


def loss_made_nonfinite(result: SimulationResult) -> bool:
    """A NaN/Inf the loss makes from finite outputs because of the output/loss pairing: a loss on
    probabilities (``from_logits: false``) over outputs that are not (Keras divides them by their
    row sum: a row of ReLU zeros gives 0/0). No learning rate or clipping can change it: it is
    there before the first update. (An overflow of a regression loss on huge outputs is growth
    through depth, not this.)"""
    return nonfinite_in_loss(result) and result.on_probabilities


def _loss_side_remedies(ctx: Context) -> list[Remedy]:
    """The remedies of the output/loss pairing (output_loss_mismatch's), for a NaN the loss makes."""
    return [r for build in OutputLossMismatch.remedies for r in build(ctx)]


class Nonfinite(ArchitectureRule):
    code = "nonfinite"
    remedies = (exponential_swap, input_normalisation, new_inits, clipping, learning_rate)

    def propose(self, ctx: Context) -> list[Remedy]:
        if ctx.detection.evidence.get("cause") == "output_loss_pairing":
            # made by the loss in the first forward: the pairing's fixes, verified by re-simulation;
            # a rate cut, clipping or a new init act on updates and growth, which this NaN needs neither of
            return _loss_side_remedies(ctx)
        return super().propose(ctx)

    def clips(self, detection: Detection) -> bool:
        # a NaN the loss makes before any update is not one clipping bounds
        return super().clips(detection) and detection.evidence.get("cause") != "output_loss_pairing"

    def measure(self, result: SimulationResult) -> float:
        return float(
            any(
                u.mean("nonfinite_forward") > 0 or u.mean("nonfinite_backward") > 0
                for u in result.units
            )
            or not all(math.isfinite(x) for x in result.losses)
        )

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        if not value > 0:
            return None
        return "info" if _masked_nonfinite(result) else "error"

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        if severity == "info":
            bwd = [u for u in result.units if u.mean("nonfinite_backward") > 0]
            return Detection(
                self.code, severity, "nonfinite", value,
                f"NaN/Inf appears in the backward pass at {bwd[-1].name if bwd else 'a layer'}, but every "
                "weight's gradient is finite: the activation it passes back through (a ReLU, flat where its input "
                "was negative) replaces it with 0",
                "A gradient that is NaN or Inf on its way back (the derivative of sqrt or log at 0: a norm "
                "without an eps) is replaced by 0 where the activation before it is flat, so no weight "
                "receives it and training proceeds. It is one change away from reaching them (a leaky "
                "activation, another input): add an eps inside the sqrt or log (sqrt(x + 1e-8)).",
                {"metric": "nonfinite", "value": value, "layers": [bwd[-1].name] if bwd else [],
                 "pass": "backward", "masked": True, "losses": [fmt(x) for x in result.losses]},
                bwd[-1:])
        fwd = [u for u in result.units if u.mean("nonfinite_forward") > 0]
        bwd = [u for u in result.units if u.mean("nonfinite_backward") > 0]
        # every layer's output finite and the loss not: it is made after the last layer (a log of a
        # ReLU's zeros in the loss, msweep9), in the forward, and the backward only carries it
        in_loss = nonfinite_in_loss(result)
        if loss_made_nonfinite(result):
            return self._loss_made(severity, value, result, t)
        first = fwd[0] if fwd else (bwd[-1] if bwd and not in_loss else None)
        where = (f"{'forward' if fwd else 'backward'} pass at {layer_words(first)}" if first else
                 "loss, computed in the forward pass after the last layer" if in_loss else "loss")
        evidence = {
            "metric": "nonfinite",
            "value": value,
            "layers": [first.name] if first else [],
            "pass": "forward" if fwd or in_loss else "backward",
            "losses": [fmt(x) for x in result.losses],
        }
        explanation = ("Values overflowed (or an operation was undefined), so every later number is NaN/Inf "
                       "and training cannot proceed.")
        upto = result.units[:result.units.index(first) + 1] if first is not None and fwd else []
        exps = [u for u in upto if u.activation == "exponential"]
        if exps:
            # peersweep23 #3: a spec's exponential activations overflow whatever the init, as the module
            # door says of an exp call (module_check's _EXPONENTIAL)
            evidence["exponential_layers"] = [u.name for u in exps]
            explanation = (
                f"Values overflowed: {_named(exps)} {'applies' if len(exps) == 1 else 'apply'} an exponential "
                "activation, whose output scale is exponential in its input's (E[exp(x)^2] = exp(2q) for a "
                "zero-mean Gaussian x of variance q), so the variance grows as a tower of exponentials through "
                "the stack and overflows the float range (exp passes 1.8e308 from 709 in float64, 3.4e38 from 88 "
                "in float32) at any usual initialisation: the variance map q' = sigma_w^2 exp(2q) has a fixed point "
                "only for sigma_w^2 <= 1/(2e), and He's (2) and LeCun's (1) are far above it. Use a ReLU-family or bounded activation in hidden layers; every later "
                "number is then NaN/Inf and training cannot proceed.")
        return Detection(
            self.code,
            severity,
            "nonfinite",
            value,
            f"NaN/Inf first appears in the {where}",
            explanation,
            evidence,
            [first] if first else [],
        )

    def _loss_made(self, severity: str, value: float, result: SimulationResult, t: Thresholds) -> Detection:
        """The NaN/Inf a loss on probabilities makes from finite outputs: the output/loss pairing
        is named as its cause (output_loss_mismatch's finding, kept beside this one)."""
        last = output_layer(result)
        act = _output_activation(result).activation or "identity"
        loss = _loss_kind(result) or "the loss"
        _, mismatch = OutputLossMismatch().severity(result, t)
        nan_seeds = [s for s, x in enumerate(result.losses) if not math.isfinite(x)]
        evidence = {
            "metric": "nonfinite", "value": value, "layers": [last.name], "pass": "forward",
            "losses": [fmt(x) for x in result.losses], "in_loss": True, "cause": "output_loss_pairing",
            "loss": loss, "from_logits": False, "output_activation": act,
            "related": ["output_loss_mismatch"] if mismatch is not None else [],
        }
        return Detection(
            self.code, severity, "nonfinite", value,
            f"NaN/Inf first appears in the loss, in the first forward pass ({len(nan_seeds)} of {len(result.losses)} "
            f"seeds): every layer's output is finite, but {loss} takes {layer_words(last)}'s {act} outputs for "
            "probabilities (from_logits=False), which they are not",
            "The loss itself makes the NaN from finite outputs, before any update, so no learning rate, clipping "
            "or init change removes it. A loss on probabilities divides the outputs by their sum (Keras' "
            "categorical cross-entropy with from_logits=False): a row of outputs that are all 0 (ReLUs all off "
            "for a sample) gives 0/0, and one NaN in the batch makes the whole loss NaN. End the model with a "
            "softmax (or a sigmoid for binary cross-entropy), or keep it linear and compute the loss on logits "
            "(from_logits=True).",
            evidence, [last])


#: The largest first-step update-to-weight ratio in a Post-LN stack at which its depth is a note,
#: not a warning: what warm-up is for is small first steps while Adam's statistics settle and the
#: top layers' large gradients shrink (Xiong et al. 2020; Liu et al. 2020). The papers give no rate
#: at which Post-LN is safe without warm-up; the smallest they show failing (Adam 5e-4 on d = 512,
#: Xavier weights of rms 0.044) moves each weight by about 1e-2 of its norm. A step ten times under
#: that is where a warm-up itself starts; raised without one, the risk returns.
POST_LN_GENTLE_STEP = 1e-3

#: The deepest Post-LN stack a declared warm-up alone makes trainable: Xiong et al. 2020 train 6-layer
#: (Transformer-base) and 12-layer (BERT-base) Post-LN stacks with warm-up; Liu et al. 2020
#: ("Understanding the Difficulty of Training Transformers", Table 1 / Fig 1) find an 18-layer
#: Post-LN encoder diverging on WMT'14 En-De with the same warm-up and Adam's 1e-3, and Liu, Duh, Liu &
#: Gao 2020 ("Very Deep Transformers for NMT") describe Post-LN past about 12 layers as unstable at
#: the usual rates.
POST_LN_WARMUP_DEPTH = 12

#: Deeper than :data:`POST_LN_WARMUP_DEPTH`, a warm-up counts only where its peak step is small too:
#: the largest first-step update-to-weight ratio at the rate it warms up to. BERT-large (24 Post-LN
#: layers, 10,000 warm-up steps) trains at Adam's 1e-4 on weights of std 0.02: a step of 1e-4 / 0.02 =
#: 5e-3 of their norm; Liu et al.'s diverging 18-layer stack warms up to 1e-3 on Xavier weights of rms
#: about 0.044 (d 512): 2.3e-2 (the tool measures 0.042 on torch's default init). 1e-2 sits between
#: the two, about a factor 2 from each.
POST_LN_DEEP_WARM_STEP = 1e-2


def _stack_step(result: SimulationResult, stack: list[UnitStats]) -> float | None:
    """The largest first-step update-to-weight ratio in ``stack`` (None: no optimizer given, or
    none measured there)."""
    if result.optimizer is None:
        return None
    ratios = _first_step(result)[0]
    found = [ratios[u.name] for u in stack if u.name in ratios and math.isfinite(ratios[u.name])]
    return max(found) if found else None


def _post_ln_stack_depths(result: SimulationResult, stack: list[UnitStats]) -> list[int]:
    """The depth of each single Post-LN stack among ``stack``'s units, in order (a Transformer's
    encoder and decoder: [6, 6]; two stacks of 10 with a layer between: [10, 10]): a live module's
    stacks as it recorded them, a spec's the runs of consecutive units."""
    names = {u.name for u in stack}
    if result.plan is None:
        return [d for d in (sum(n in names for n in s) for s in result.post_ln) if d]
    index = {u.name: i for i, u in enumerate(result.units)}
    runs: list[int] = []
    last = -2
    for u in stack:
        i = index.get(u.name, -2)
        if runs and i == last + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        last = i
    return runs


def _post_ln_depth(result: SimulationResult, stack: list[UnitStats]) -> int:
    """The depth of the deepest single Post-LN stack among ``stack``'s units (two stacks of 10 with a
    layer between are 10 deep, not 20): :func:`_post_ln_stack_depths`' deepest."""
    return max(_post_ln_stack_depths(result, stack), default=0)


def _stacks_phrase(depths: list[int]) -> str:
    """"stack of 6 layers", "stacks of 6 and 6 layers" (an encoder's and a decoder's)."""
    if len(depths) <= 1:
        return f"stack of {depths[0] if depths else 0} layers"
    return f"stacks of {', '.join(map(str, depths[:-1]))} and {depths[-1]} layers"


def _warmup_in_place(result: SimulationResult, stack: list[UnitStats]) -> bool:
    """Whether the declared warm-up is what trains ``stack``: :data:`POST_LN_MIN_WARMUP` steps or more,
    and, past :data:`POST_LN_WARMUP_DEPTH` layers, a peak step of :data:`POST_LN_DEEP_WARM_STEP` or
    less (none measured: not shown to be small)."""
    warm = result.optimizer.warmup_steps if result.optimizer is not None else 0
    if warm < POST_LN_MIN_WARMUP:
        return False
    if _post_ln_depth(result, stack) <= POST_LN_WARMUP_DEPTH:
        return True
    step = _stack_step(result, stack)
    return step is not None and step <= POST_LN_DEEP_WARM_STEP


class PostLnDepthRisk(ArchitectureRule):
    code = "post_ln_depth_risk"
    remedies = (pre_layer_norm, _warmup)

    def measure(self, result: SimulationResult) -> float:
        # Measured on any stack, so a Pre-LN re-simulation reports its own figure.
        stack = [u for u in result.units if u.type == "transformer_encoder"]
        if result.plan is None:  # a live module's layers: their units by name
            named = {u.name: u for u in result.units}
            stack = [named[n] for s in result.post_ln for n in s if n in named]
        return stack[-1].geo("grad_norm") if stack else math.nan

    def decisive(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        # the finding fires on the depth of a Post-LN stack, not on the norm (specsweep12 u07: "FIXED"
        # beside a norm of 2.32 -> 2.28); a Pre-LN stack is no Post-LN stack: depth 0
        return "post_ln_depth", float(_post_ln_depth(result, post_ln_stacks(result, t)))

    def remains(self, result: SimulationResult, metric: str) -> bool:
        # the finding fires on the Post-LN depth (decisive), which every network has, 0 where its
        # stack is Pre-LN: a re-simulation is measured by it even where a live module's Pre-LN copy
        # has no Post-LN stack to take the norm of (not "not measured")
        return True

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        stack = post_ln_stacks(result, t)
        if not stack:
            return None
        step = _stack_step(result, stack)
        if step is not None and step <= POST_LN_GENTLE_STEP:
            return "info"
        # a declared warm-up of the length that trains Post-LN stacks (BERT-base: 10,000 steps) is
        # the remedy already in place (specsweep13 g27), up to 12 layers; deeper, only at a peak step
        # of BERT-large's size (specsweep12 u11: 18 layers warming up to Adam's 1e-3 diverge)
        return "info" if _warmup_in_place(result, stack) else "warning"

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        stack = post_ln_stacks(result, t)
        g_first, g_last = stack[0].geo("grad_norm"), stack[-1].geo("grad_norm")
        depths = _post_ln_stack_depths(result, stack)
        depth = max(depths, default=0)  # :func:`_post_ln_depth`
        evidence = {
            "metric": "last_layer_grad_norm",
            "value": value,
            # the rule fires on the stack's depth, not on the norm: no threshold in the norm's unit
            # (a depth of 6 beside a norm of 4.88 read as "under the bar", specsweep11)
            "threshold": None,
            "layers": [stack[0].name, stack[-1].name],
            # the deepest stack's layers; each stack's (an encoder's and a decoder's: [6, 6]) in
            # ``stacks``, where the two were counted as one stack of 12 (modsweep35 u04)
            "depth": depth,
            "stacks": depths,
            "depth_threshold": t.post_ln_depth,
            "first_layer_grad_norm": g_first,
            "last_layer_grad_norm": g_last,
        }
        # what was measured, as measured: the depth is the risk, and the two norms are shown as they
        # are (modsweep34 h06: "does not shrink with depth" beside a last layer at half the first's)
        summary = (
            f"Post-LN Transformer {_stacks_phrase(depths)} "
            f"({t.post_ln_depth} or more need warm-up): "
            f"gradient norm {fmt(g_first)} at its first layer, {fmt(g_last)} at its last"
        )
        explanation = (
            "In a freshly initialised Post-LN Transformer the expected gradient of the last layers does not "
            "fall as the stack deepens, where Pre-LN's falls as 1/sqrt(depth) (Xiong et al. 2020), so the "
            "first steps at the full rate are large for the layers near the output: deep Post-LN stacks need "
            "learning-rate warm-up or diverge; Pre-LN does not."
        )
        step = _stack_step(result, stack)
        if step is not None:
            evidence["max_update_ratio"] = step
            evidence["update_ratio_threshold"] = POST_LN_GENTLE_STEP
        warm = result.optimizer.warmup_steps if result.optimizer is not None else 0
        deep = depth > POST_LN_WARMUP_DEPTH
        if warm:
            evidence["warmup_steps"] = warm
            evidence["warmup_depth"] = POST_LN_WARMUP_DEPTH
            if deep:
                evidence["deep_warmup_update_ratio_threshold"] = POST_LN_DEEP_WARM_STEP
        if severity == "info" and (step is None or step > POST_LN_GENTLE_STEP) and warm >= POST_LN_MIN_WARMUP:
            if deep:
                summary += (f"; a note: the run warms up over {warm:,} steps to a peak step of {fmt(step or 0)} of "
                            "the weights, small enough for this depth")
                explanation += (
                    f" The optimizer warms up over {warm:,} steps, and its peak rate moves the stack by at most "
                    f"{fmt(step or 0)} of its weights ({POST_LN_DEEP_WARM_STEP:g} or less): the recipe BERT-large's "
                    "24 Post-LN layers train with (10,000 warm-up steps to Adam's 1e-4, a step of about 5e-3). "
                    "Keep both; raising the peak rate brings the risk back (Liu et al. 2020: 18 layers warmed up "
                    "to 1e-3 diverge).")
            else:
                summary += f"; a note: the run warms up over {warm:,} steps, which is what trains such a stack"
                explanation += (f" The optimizer warms up over {warm:,} steps ({POST_LN_MIN_WARMUP:,} or more), the "
                                "remedy Xiong et al. found Post-LN needs: keep it (Pre-LN would not need it).")
        elif severity != "info" and warm >= POST_LN_MIN_WARMUP and deep:
            shown = "is not measured (no first step)" if step is None else f"is {fmt(step)} of the weights"
            summary += (f"; the run warms up over {warm:,} steps, which trains Post-LN stacks of up to "
                        f"{POST_LN_WARMUP_DEPTH} layers, but its peak step {shown} (over {POST_LN_DEEP_WARM_STEP:g})")
            explanation += (
                f" Warm-up trains Post-LN stacks of 6 to {POST_LN_WARMUP_DEPTH} layers (Xiong et al. 2020), not deeper "
                "ones at the usual rates: Liu et al. 2020 report an 18-layer Post-LN encoder diverging on WMT'14 "
                "with warm-up to Adam's 1e-3, and Liu, Duh, Liu & Gao 2020 find Post-LN past about 12 layers "
                "unstable. Deep Post-LN stacks that train pair the warm-up with a small peak rate (BERT-large: 24 "
                f"layers, Adam 1e-4, a step of about 5e-3 of the weights; {POST_LN_DEEP_WARM_STEP:g} or less here), "
                "or change the initialisation (Admin, DeepNet) or use Pre-LN.")
        elif severity == "info" and step is not None:
            summary += (f"; a note: the optimizer's first step moves the stack by at most {fmt(step)} of its "
                        f"weights, as gently as a warm-up starts")
            explanation += (
                f" At this learning rate the first steps move the stack's weights by at most {fmt(step)} of their "
                f"norm ({POST_LN_GENTLE_STEP:g} or less), the small steps a warm-up gives; raising the rate "
                "without a warm-up brings the risk back.")
        return Detection(
            self.code,
            severity,
            "last_layer_grad_norm",
            value,
            summary,
            explanation,
            evidence,
            stack,
        )


def _layers_above(result: SimulationResult, layer: str, sub: int) -> int:
    """How many recurrent (sub)layers are stacked above ``layer``'s sublayer ``sub`` (its own higher
    sublayers, and the recurrent layers after it in the network), which read its steps and pass the
    loss's gradient down to them: 0 where the loss reads it itself."""
    series = [(ts.layer, ts.sublayer) for ts in result.time_series]
    order = {u.name: i for i, u in enumerate(result.units)}
    here = order.get(layer, -1)
    return sum(1 for name, s in series
               if (name == layer and s > sub) or (name != layer and order.get(name, -1) > here >= 0))


def warm_factor(result: SimulationResult) -> float:
    """What the first step's ratio is multiplied by to give the optimizer's usual step: RMSprop's
    square average starts at (1 - alpha) g^2, with no bias correction, so its first step is
    1/sqrt(1 - alpha) times (3.2x at Keras' rho 0.9) the step it takes once the average has warmed
    up, a few dozen steps in; Adadelta's likewise. Adagrad's usual step is measured itself
    (``usual_update_ratio``). The others' first step is their usual one."""
    opt = result.optimizer
    if opt is not None and opt.type == "adadelta":
        # its squared-gradient average warms up as RMSprop's does (and its update average from 0)
        return math.sqrt(1 - adadelta_rho(opt))
    if opt is not None and opt.type == "sgd":
        return momentum_build_up(opt.momentum, opt.nesterov)
    return math.sqrt(1 - opt.alpha) if opt is not None and opt.type == "rmsprop" else 1.0


def momentum_build_up(beta: float, nesterov: bool = False) -> float:
    """How much larger SGD's step with momentum ``beta`` is, on average over the steps it takes to
    build up, than its first step. The velocity v_t = beta v_(t-1) + g_t sums the gradients with
    weights beta^k: a gradient that stays the same builds the step up to 1/(1 - beta) times the first
    (10x at 0.9), the bound; a minibatch's gradient changes direction from step to step, and
    independent gradients of one size sum to sqrt((1 - beta^(2t)) / (1 - beta^2)) of it by step t,
    1/sqrt(1 - beta^2) in the end (2.29x at 0.9). The factor is that RMS step averaged over
    momentum's time constant, the first T = round(1/(1 - beta)) steps (1.78x at 0.9, 1.06x at 0.5,
    5.2x at 0.99): the stretch in which a large first step does its harm (ReLUs killed, the loss
    thrown off), while the gradients are still their initial scale. Nesterov's step is
    lr (g_t + beta v_t) = lr ((1 + beta) g_t + beta^2 v_(t-1)), its first (1 + beta) lr g, so its
    step at t is sqrt(1 + beta^4 (1 - beta^(2(t-1))) / ((1 + beta)^2 (1 - beta^2))) times that
    (1.23x at 0.9 averaged). The first step alone passed SGD at lr 1.0 momentum 0.9 (first steps
    0.054-0.083 of the weights, 0.096-0.148 with the factor) as healthy, though it killed 91% of an
    MLP's ReLUs (peersweep16 u05); the steady-gradient bound, or the noise limit 2.29x, made the
    usual BN-CNN recipe at SGD 0.1 momentum 0.9 (its plain hidden Linear moves 0.046 on its first
    step) a warning, the limits having been measured on recipes that train. 1 without momentum."""
    if not 0.0 < beta < 1.0:
        return 1.0
    steps = max(1, round(1.0 / (1.0 - beta)))
    total = 0.0
    for t in range(1, steps + 1):
        if nesterov:
            total += math.sqrt(1.0 + beta ** 4 * (1.0 - beta ** (2 * (t - 1))) / ((1.0 + beta) ** 2 * (1.0 - beta ** 2)))
        else:
            total += math.sqrt((1.0 - beta ** (2 * t)) / (1.0 - beta ** 2))
    return total / steps


def _usual_step(result: SimulationResult) -> str:
    """What "a usual step" of the spec's optimizer means, in words (specsweep10 min_char_rnn: "a
    usual adagrad step ... (its first is 5x that)" left "usual" unexplained)."""
    opt = result.optimizer
    kind = opt.type if opt is not None else ""
    if kind == "adagrad":
        return (f"its step {ADAGRAD_WARM_STEPS} under a steady gradient, once its sum of squared gradients "
                "has grown: its steps only shrink")
    if kind in ("rmsprop", "adadelta"):
        return "its step once its average of squared gradients has warmed up, a few dozen steps in"
    if kind == "sgd" and opt is not None and opt.momentum > 0:
        steps = max(1, round(1.0 / (1.0 - opt.momentum))) if opt.momentum < 1 else 1
        return f"its step averaged over the first {steps} while momentum builds up"
    return "its step once past its start-up"


def _first_over_usual(result: SimulationResult, name: str) -> float:
    """The first step's ratio over the usual step's judged (of unit ``name``, for Adagrad's)."""
    unit = next((u for u in result.units if u.name == name), None)
    if unit is not None and "usual_update_ratio" in unit.values and unit.geo("usual_update_ratio") > 0:
        return unit.geo("update_ratio") / unit.geo("usual_update_ratio")
    return 1 / warm_factor(result)


def _first_step(result: SimulationResult) -> tuple[dict[str, float], str, float]:
    """Each unit's update-to-weight ratio per usual step (the first step's, geometric mean over
    seeds, times :func:`warm_factor`), the optimizer's type and its learning rate."""
    warm = warm_factor(result)
    ratios = {u.name: u.geo("usual_update_ratio") if "usual_update_ratio" in u.values else u.geo("update_ratio") * warm
              for u in result.units if "update_ratio" in u.values}
    for u in result.units:
        zero = zero_weight_ratio(u)
        if u.name in ratios and math.isnan(ratios[u.name]) and zero is not None:
            # weights exactly zero: the step against a usual init's norm (:func:`zero_weight_ratio`);
            # Adagrad's figure is its 25th step already, the others' the first times warm_factor
            ratios[u.name] = zero * (1.0 if "usual_update_ratio" in u.values else warm)
    opt = result.optimizer
    return ratios, *((opt.type, opt.lr) if opt is not None else ("?", math.nan))


#: Weights this far below LeCun's scale 1/sqrt(fan_in) were set near zero on purpose.
NEAR_ZERO_INIT = 0.05


#: Under an adaptive optimizer (:data:`ADAPTIVE`), a first step up to this share of a layer's
#: weights is a note, not a warning: Adam's first step is its rate per weight whatever the gradient,
#: so the ratio is about lr / rms(W), and lr 1e-2, which small networks train at, moves a layer of
#: torch's default init at fan-in 100-1,433 by 0.17-0.27 (char-rnn.pytorch's GRU at its default Adam
#: 1e-2, pytorch-tutorial's MNIST-rows LSTM, Kipf's GAE at 1e-2: modsweep31 h06, modsweep32 h02,
#: h08, each labelled healthy); past 3x the warning line (a transformer's 0.02-std layers at 1e-2
#: move 0.5) it stays a warning. The same 3x the head's carve-out uses (:func:`_judged_steps`).
ADAPTIVE_STEP_NOTE = 0.3
#: ... and only where the layers' steps add up to at most the error line: Adam moves every layer by
#: its rate at once, so a deep network's function changes by about the sum of its layers' steps
#: (the reason deep Transformers and ConvNeXt warm Adam up, Liu et al. 2019 "On the Variance of the
#: Adaptive Learning Rate"): three recurrent layers at 0.17-0.2 sum to 0.6, sixteen at 0.2 to 3.2
ADAPTIVE_STEPS_SUM = 1.0


def _adaptive(result: SimulationResult) -> bool:
    """Whether the check's optimizer is adaptive (:data:`ADAPTIVE`: Adam, AdamW, NAdam, RMSprop,
    Adagrad, Adadelta), whose usual step is about its rate per weight whatever the gradient."""
    return result.optimizer is not None and result.optimizer.type in ADAPTIVE


def adaptive_depth_sum(result: SimulationResult, total: float) -> bool:
    """Whether the judged layers' usual steps, adding up to ``total``, are over
    :data:`ADAPTIVE_STEPS_SUM` under an adaptive optimizer: the one depth-summed judgement of
    large_updates, for every adaptive optimizer alike. It lifts a note (every layer within
    :data:`ADAPTIVE_STEP_NOTE`) back to a warning, and makes a warning of a deep stack none of whose
    layers is over the per-layer line: an adaptive optimizer moves every layer by about its rate at
    once, so the function changes by about the sum (peersweep11 u05: RMSprop 0.01 moves 17 relu
    layers by 0.04-0.08 each, 1.2 summed, and the run sat at ln 10 for 100 epochs)."""
    return _adaptive(result) and total > ADAPTIVE_STEPS_SUM


def _adaptive_small_step(result: SimulationResult, value: float, total: float = 0.0) -> bool:
    """Whether the judged step ``value`` is within :data:`ADAPTIVE_STEP_NOTE` under an adaptive
    optimizer, the judged layers' steps adding up to ``total`` within :data:`ADAPTIVE_STEPS_SUM`
    (:func:`adaptive_depth_sum`)."""
    return _adaptive(result) and value <= ADAPTIVE_STEP_NOTE and not adaptive_depth_sum(result, total)


def _warms_up(result: SimulationResult) -> bool:
    """Whether the check's optimizer warms up to its rate (``warmup_steps``, or a scheduler that
    started a torch optimizer below its initial rate)."""
    return result.optimizer is not None and result.optimizer.warms_up


def _near_zero_init(u: UnitStats) -> bool:
    std = u.mean("weight_std") if "weight_std" in u.values else math.nan
    return bool(u.fan_in) and std < NEAR_ZERO_INIT / math.sqrt(u.fan_in or 1)


#: A usual initialisation's weight std, times sqrt(fan_in), at its smallest: torch's default for
#: nn.Linear, nn.Conv and its recurrent layers, U(+-1/sqrt(fan_in)), has std 1/sqrt(3 fan_in) =
#: 0.577/sqrt(fan_in) (LeCun's 1/sqrt(fan_in), He's sqrt(2/fan_in)); 0.5 sits 13% under it, so a
#: default-initialised layer's sampled std (a few percent either side in a small layer) never falls
#: under it and its figure is unchanged. A layer's update is judged against the larger of its
#: weights' scale and this one (:func:`scale_floor`).
DEFAULT_INIT_GAIN = 0.5


def zero_weight_ratio(u: UnitStats) -> float | None:
    """The first step of a layer whose weights are all exactly zero, judged against a usually
    initialised layer's norm: its step's root mean square per weight (``zero_weight_step``) over
    :data:`DEFAULT_INIT_GAIN` / sqrt(fan_in), the limit :func:`scale_floor` gives any layer whose
    weights start below that scale as they shrink to 0 (||dW|| / ||W|| itself is infinite). None
    where the layer's weights are not all zero or its fan-in is unknown."""
    if not u.fan_in or "zero_weight_step" not in u.values:
        return None
    step = u.geo("zero_weight_step")
    return step / (DEFAULT_INIT_GAIN / math.sqrt(u.fan_in)) if math.isfinite(step) else None


def zero_weight_layers(result: SimulationResult) -> list[str]:
    """The layers whose weights are all exactly zero and whose first step large_updates judges
    against a usual init's norm (:func:`zero_weight_ratio`)."""
    return [u.name for u in result.units if zero_weight_ratio(u) is not None
            and "update_ratio" in u.values and math.isnan(u.geo("update_ratio"))]


def scale_floor(u: UnitStats) -> float:
    """The factor a unit's first-step ratio ||dW|| / ||W|| is multiplied by to judge the step against
    the larger of ||W|| and a usually initialised layer's norm (:data:`DEFAULT_INIT_GAIN` /
    sqrt(fan_in) per weight): min(1, std(W) / that). A layer's own gradient dL/dW = delta x^T does not
    depend on W's scale (delta comes from the layers after it, x from those before), and Adam's
    first step is its rate per weight whatever the gradient, so ||dW|| is the same whether W starts
    at torch's default or at N(0, 0.01) on purpose; dividing by the small ||W|| makes any sound step
    look large (the TCN's readout and 1x1 downsample convs at N(0, 0.01), Adam 4e-3: 0.48 and 0.39
    of their norm, judged 0.044 and 0.011, about the step of a default-initialised layer of their
    fan-in).
    Such weights grow to the step's scale; the step changes the layer's output by what it would
    change a usually initialised one's. 1 for a layer at or above the usual scale (the figure is
    unchanged), an embedding (its rows are vectors, not a fan-in's sum: torch's default is N(0, 1)
    and GPT's 0.02 is its signal's scale) and a layer whose weights are exactly zero (its ratio is
    infinite: the near-zero rule of :func:`_judged_steps` judges it)."""
    if not u.fan_in or "weight_std" not in u.values or "embedding" in u.type:
        return 1.0
    std = u.mean("weight_std")
    floor = DEFAULT_INIT_GAIN / math.sqrt(u.fan_in)
    return min(1.0, std / floor) if std > 0 and math.isfinite(std) else 1.0


def scale_invariant_layer(u: UnitStats) -> bool:
    """A layer a batch/layer/group norm takes directly (not a Pre-LN stream's: :func:`_judged_steps`)."""
    return u.normalised and not u.stream


def direction_change(ratio: float) -> float:
    """How far a step of ``ratio`` times a scale-invariant layer's weights' norm changes their
    direction, which is all its output sees: r / sqrt(1 + r^2) (the sine of the angle atan(r) it
    turns them by: its gradient is orthogonal to them), under 1 for every finite r; r where r is not
    finite."""
    return ratio / math.hypot(1.0, ratio) if math.isfinite(ratio) else ratio


def _usual_steps(result: SimulationResult) -> dict[str, float]:
    """:func:`_first_step`'s ratios as large_updates judges them: each unit's times its
    :func:`scale_floor` (against the larger of its weights' scale and a usual initialisation's).
    (SGD's momentum builds its step up to 1/(1 - beta) times the first under a steady gradient, and
    only about 1/sqrt(1 - beta^2) under a noisy one; judging the built-up step made common plain-net
    recipes warnings (an MNIST MLP at SGD 0.1 momentum 0.9) while the limits were measured on first
    steps, so the first step is judged: peersweep8.)"""
    units = {u.name: u for u in result.units}
    return {n: r * scale_floor(units[n]) for n, r in _first_step(result)[0].items()}


def judged_update_ratios(result: SimulationResult) -> dict[str, float]:
    """Each unit's update-to-weight ratio as large_updates and small_updates judge it (the layer
    table's ``judged_update_ratio``): its first step's times the optimizer's start-up factor
    (:func:`warm_factor`; Adagrad's 25th step) and :func:`scale_floor`. Which of them the finding
    then leaves out (a fresh head, a layer started near zero, a normalised one) is its evidence's."""
    return _usual_steps(result)


def _judged_steps(result: SimulationResult, t: Thresholds) -> dict[str, float]:
    """:func:`_first_step`'s ratios that large_updates judges: all of them, except the output
    layer's when it alone is over the warning level, under the error level and, under a
    non-adaptive optimizer (SGD) on a network without norms, by no more than
    :data:`FRESH_HEAD_MARGIN` times it. At initialisation
    the loss's gradient on the logits is of order one (softmax minus one-hot), so a freshly
    initialised head moves a tenth of its weights at SGD 0.1 on a recipe that trains well (a
    BN-CNN's head 0.15, its convolutions 0.007-0.04); a head rewritten entirely (past 1) is still
    a rate far too large. An adaptive optimizer's first step (Adam's) is about its rate per weight,
    and a wide head's weights are small: Adam at its usual 1e-3 moves a head of fan-in 4096 by about
    0.1 (spec sweep 4's healthy BN-CNN, 0.11), the same figure as a rate 4.5x that on a narrower one
    (spec sweep 6), so the head alone is not judged under either. The ratios are
    :func:`_usual_steps`' (the init-scale floor in)."""
    ratios = _usual_steps(result)
    # a layer started near zero on purpose (gMLP's spatial gate at N(0, 1e-3), a zero-init
    # readout) moves by its whole norm on any sound step: that is how it grows, not the rate
    near_zero = {u.name for u in result.units if u.name in ratios and _near_zero_init(u)}
    if near_zero and len(near_zero) < len(ratios):
        ratios = {n: r for n, r in ratios.items() if n not in near_zero}
    # a layer whose output a batch/layer/group norm takes directly is scale-invariant: a large step
    # there mostly grows its weights' norm, which shrinks its own next steps (Arora, Li & Lyu 2019),
    # so below the error level (the weights rewritten whole) it is not the rate's fault: ResNet-50 at
    # SGD 0.1 (Goyal et al.'s recipe, which trains) moves its BN-fed stem conv by 0.26-0.36 (msweep18)
    # (not a Pre-LN stream's units: a block's weights scale its own branch of the stream, not the
    # whole of what a norm reads; specsweep12: a Pre-LN encoder at Adam 1e-2 moving 0.3 was healthy)
    # Both carve-outs below judge the first step, not momentum's built-up one (:func:`momentum_build_up`):
    # a scale-invariant layer's growing norm shrinks its next steps as they build up, and a fresh head's
    # order-one gradient on the logits falls as the loss leaves chance (msweep18's BN-CNN at SGD 2
    # momentum 0.9 moves its head 0.7 on the first step, 1.24 built up, and trains)
    normalised = {u.name for u in result.units if u.name in ratios and scale_invariant_layer(u)}
    ratios = _outside_norms(result, ratios, t)
    head = output_layer(result).name if result.units else None
    others = {n: r for n, r in ratios.items() if n != head}
    # An adaptive optimizer's first step is its rate per weight whatever the gradient, so a small
    # head's step is its size, let off up to the error level (kerassweep12 h05: the poetry LSTM's
    # head at Adam 1e-2, 0.368, trains); so is the head of a normalised network, whose large-rate
    # SGD recipes move it far (msweep18: a BN-CNN at SGD 2 moves its head 0.7). SGD's step on a
    # plain network scales with the gradient: a head past the margin there is the rate's doing
    # (peersweep7 base_high_lr: no norm, SGD 0.5, 5x its recipe)
    line = _fresh_head_line(result, t, bool(normalised))
    if (head in ratios and (others or normalised) and ratios[head] <= line
            and max(others.values(), default=0.0) <= t.large_update_warning):
        return others  # the head alone over the warning, and not rewritten: the fresh head's step
    return ratios


def _fresh_head_line(result: SimulationResult, t: Thresholds, normalised: bool) -> float:
    """The judged (usual) step up to which :func:`_judged_steps` lets a fresh output layer alone past
    the warning line: its first step (the judged one over SGD's momentum build-up) up to the error
    level under an adaptive optimizer or in a network with norms (``normalised``: a layer a norm
    takes directly), up to :data:`FRESH_HEAD_MARGIN` times the warning line under SGD on a plain one."""
    opt = result.optimizer
    build = momentum_build_up(opt.momentum, opt.nesterov) if opt is not None and opt.type == "sgd" else 1.0
    adaptive = opt is not None and opt.type in ADAPTIVE
    fresh = t.large_update_error if adaptive or normalised else FRESH_HEAD_MARGIN * t.large_update_warning
    return build * min(t.large_update_error, fresh)


def update_ratio_limits(result: SimulationResult, t: Thresholds) -> dict[str, float]:
    """Each unit's line, in the judged (usual) step's ratio: the largest step at which large_updates
    leaves it healthy, the other layers within theirs. The warning line for a layer, except where
    :func:`_judged_steps` carves it out: a layer started near zero and a scale-invariant one (a norm
    takes it directly) have none (infinite) where some layer is outside them, and the output layer
    of a network with other judged layers has the fresh head's (:func:`_fresh_head_line`). One rule
    for the finding's judgement and for the rate its ``lower_learning_rate`` proposes (evidence
    ``update_ratio_limits``): the rate is sized against these lines, not the warning line alone
    (specsweep14: lr 3.2 cut to 0.00434 to bring a BN ResNet's fresh head to 1e-2, 23x under the 0.1
    He et al. train the same network at, whose head the finding carves out)."""
    ratios = _usual_steps(result)
    limits = {n: t.large_update_warning for n in ratios}
    near_zero = {u.name for u in result.units if u.name in ratios and _near_zero_init(u)}
    if near_zero and len(near_zero) < len(ratios):
        limits.update({n: math.inf for n in near_zero})
    kept = {n for n in ratios if n not in near_zero} if near_zero and len(near_zero) < len(ratios) else set(ratios)
    normalised = {u.name for u in result.units if u.name in kept and scale_invariant_layer(u)}
    if normalised and len(normalised) < len(kept):
        opt = result.optimizer
        build = momentum_build_up(opt.momentum, opt.nesterov) if opt is not None and opt.type == "sgd" else 1.0
        e = t.large_update_error
        # direction_change(r / build) = r' / sqrt(1 + r'^2) passes e only where e < 1
        line = build * e / math.sqrt(1.0 - e * e) if e < 1 else math.inf
        limits.update({n: line for n in normalised})
    head = output_layer(result).name if result.units else None
    judged = {n for n in kept if n not in normalised or not math.isinf(limits[n])}
    if head in judged and (judged - {head} or normalised):
        limits[head] = max(t.large_update_warning, _fresh_head_line(result, t, bool(normalised)))
    return limits


def _outside_norms(result: SimulationResult, ratios: dict[str, float], t: Thresholds) -> dict[str, float]:
    """``ratios`` less the layers a norm takes directly whose step's direction change is under the
    error level (:func:`_judged_steps`' carve-out, where some layer is outside the norms)."""
    opt = result.optimizer
    build = momentum_build_up(opt.momentum, opt.nesterov) if opt is not None and opt.type == "sgd" else 1.0
    # What such a layer's output sees of a step is its weights' direction alone: its gradient is
    # orthogonal to its weights, so a step of r times their norm turns them by atan(r) and grows their
    # norm by sqrt(1 + r^2), a change of direction of r / sqrt(1 + r^2) (:func:`direction_change`),
    # under 1 however large r is, and its next step is about r / (1 + r^2) of its norm, at most 1/2:
    # the rate tunes itself (Arora, Li & Lyu 2019). That figure is judged against the error level, so
    # a BN-fed layer's large first step is not the rate's fault however large: specsweep11's
    # PlainNet-56 + BN at He et al. 2016's SGD 0.1 moved its first conv by 102x its norm, from the
    # 1.18x-per-layer growth of the gradient through batch norms that exploding_gradient calls absorbed
    normalised = {u.name for u in result.units if u.name in ratios and scale_invariant_layer(u)}
    if normalised and len(normalised) < len(ratios):
        ratios = {n: r for n, r in ratios.items()
                  if n not in normalised or direction_change(r / build) > t.large_update_error}
    return ratios


#: How far over the warning line a lone output layer's first step is still a fresh head's (a
#: healthy BN-CNN's 0.15, Adam's wide head 0.11: :func:`_judged_steps`); past it the rate is too
#: large as for any layer (peersweep7 base_high_lr: SGD 0.5, 5x a recipe whose head moves 0.085,
#: moves the head by 0.548 with every other layer <= 0.0997 and read healthy)
FRESH_HEAD_MARGIN = 3.0


def _steps_sum(steps: dict[str, float]) -> float:
    """The judged layers' steps added up (finite ones): :func:`adaptive_depth_sum`'s ``total``."""
    return float(sum(r for r in steps.values() if math.isfinite(r)))



def curvature(result: SimulationResult) -> tuple[float, float, float] | None:
    """(sharpness, lr x sharpness, the stability bound) of an SGD run whose loss Hessian's largest
    eigenvalue was estimated at the initial point (:func:`.graph.initial_sharpness`); None under any
    other optimizer (an adaptive one's preconditioning changes the bound) or where not estimated.
    lr x sharpness counts SGD's weight decay (lr (lambda_max + wd)); the bound is 2 (1 + momentum),
    Nesterov's 2 (1 + momentum) / (1 + 2 momentum) (:func:`.sharpness.stability_bound`)."""
    sharp, opt = result.sharpness, result.optimizer
    if sharp is None or sharp.value is None or opt is None or opt.type != "sgd" or not opt.lr > 0:
        return None
    return sharp.value, lr_times_sharpness(opt, sharp.value), stability_bound(opt)


def curvature_decides(result: SimulationResult) -> bool:
    """Whether the sharpness bound alone judges large_updates: a model that is one affine layer
    holding every trainable parameter (linear or logistic regression, a convex problem, where lr x
    lambda_max < 2 (1 + momentum) is the whole story and the deep-net rule of about 1e-3 of a layer's
    norm per step is not: peersweep13's quadratic fit at SGD 0.001 moves its zero weights 0.418 of a
    usual init's norm and converges, lr x lambda_max 0.23), or one with no layer the check measures
    (scalar parameters used elementwise, ``x * W + B``)."""
    sharp = result.sharpness
    return curvature(result) is not None and sharp is not None and sharp.decides


def curvature_skipped(result: SimulationResult) -> str | None:
    """Why the sharpness bound, which alone would judge this SGD run's step (a one-affine-layer or
    layerless model: :func:`curvature_decides`), was not estimated (past
    :data:`.sharpness.MAX_PARAMETERS` trainable parameters, a forward or double backward that
    failed); None where it was estimated, or would not decide. Such a run is never handed back
    silently to the per-layer update ratios the bound replaced: their warning is kept as a note
    (``LargeUpdates.assess``), and the finding and the document's notes say why."""
    sharp, opt = result.sharpness, result.optimizer
    if sharp is None or sharp.value is not None or not sharp.decides:
        return None
    if opt is None or opt.type != "sgd" or not opt.lr > 0:
        return None
    return sharp.note or "not estimated"


def _skipped_words(result: SimulationResult) -> str:
    """The sentence on a skipped sharpness that would have judged the step alone ('' where none)."""
    why = curvature_skipped(result)
    if why is None:
        return ""
    return (f"the loss's sharpness, which alone judges the step of a model that is one affine layer (SGD's "
            f"stability bound lr x lambda_max < 2 (1 + momentum)), was not estimated ({why}): the per-layer "
            "ratio (about 1e-3 in a healthy deep net) does not judge a convex problem, so a step under "
            "a layer's whole usual norm is a note, not a warning")


def _curvature_severity(result: SimulationResult) -> str | None:
    """lr x sharpness over the stability bound: error where the run diverges (:func:`diverging`), a
    warning where it does not (the catapult or edge-of-stability regime); over half of it (lr x
    lambda_max over 1 without momentum: the sharpest direction overshoots and oscillates) a note
    where the bound decides; else None."""
    found = curvature(result)
    if found is None:
        return None
    _, x, bound = found
    if x > bound:
        if diverging(result):
            return "error"
        # clipped steps cannot run away: a note (modsweep44: a clip at 1 and lr 1, the update ratio
        # 0.0217, read as a warning whose remedy cut the rate to 3.19e-10)
        return "info" if _clipped(result) else "warning"
    return "info" if x > bound / 2 and curvature_decides(result) else None


def _clipped(result: SimulationResult) -> float | None:
    """lr x c, the most one step moves the weights, where the run clips the total gradient norm at
    c (:func:`.sharpness.clip_bound`): past SGD's stability bound the sharpest direction then
    oscillates within that instead of growing a factor lr x sharpness - 1 a step, so a run the rate
    probe (which clips as training does) does not see diverge is a note, not the catapult warning,
    and its rate is kept. None where it does not clip."""
    opt = result.optimizer
    return clip_bound(opt) if opt is not None else None


def _stable_rate_of(result: SimulationResult) -> float | None:
    """The rate SGD's stability bound asks for (:func:`.sharpness.stable_rate`), as the evidence,
    the sentence and the remedy give it."""
    found, opt = curvature(result), result.optimizer
    if found is None or opt is None:
        return None
    return stable_rate(opt, found[0], found[1] > found[2] and diverging(result))


def probe_of(result: SimulationResult) -> StepProbe | None:
    """The run's rate probe (:func:`.graph.rate_probe`) where it was taken at the run's own rate."""
    probe, opt = result.rate_probe, result.optimizer
    return probe if probe is not None and opt is not None and probe.lr == opt.lr else None


def exactly_quadratic(result: SimulationResult) -> bool:
    """Whether the loss is a quadratic in the trainable parameters: mse on a model that is one affine
    layer holding them all (linear regression), where SGD past 2 (1 + momentum) / lambda_max
    diverges exactly, whatever a few steps show."""
    sharp = result.sharpness
    return result.loss == "mse" and sharp is not None and sharp.decides and bool(result.units)


def diverging(result: SimulationResult) -> bool:
    """Whether an SGD run past the quadratic stability bound diverges: its loss is exactly quadratic
    (:func:`exactly_quadratic`), or the rate probe's loss blew up (:attr:`.sharpness.StepProbe.diverged`);
    without a probe, where the loss is mse (quadratic in the outputs: the bound is the theory's
    answer) and not where it saturates (a cross-entropy's curvature collapses as its logits grow)."""
    if exactly_quadratic(result):
        return True
    probe = probe_of(result)
    if probe is not None:
        return probe.diverged
    return result.loss == "mse"


def _curvature_evidence(result: SimulationResult) -> dict[str, Any]:
    found = curvature(result)
    sharp = result.sharpness
    if found is None or sharp is None:
        return {}
    value, x, bound = found
    out: dict[str, Any] = {
        "sharpness": value, "lr_times_sharpness": x, "stability_bound": bound,
        "sharpness_iterations": sharp.iterations, "stable_learning_rate": _stable_rate_of(result)}
    clipped = _clipped(result)
    if clipped is not None:
        out["clip_bounded_step"] = clipped
    probe = probe_of(result)
    if probe is not None:
        out.update(probe_evidence(probe))
    if x > bound:
        out["diverges"] = diverging(result)
    return out


def probe_evidence(probe: StepProbe) -> dict[str, Any]:
    """A rate probe's figures as evidence: its steps, the loss at its start, highest and last."""
    return {"probe_steps": probe.steps, "probe_learning_rate": probe.lr, "probe_initial_loss": probe.initial,
            "probe_peak_loss": probe.peak, "probe_peak_step": probe.peak_step, "probe_final_loss": probe.final,
            "probe_diverged": probe.diverged}


def probe_words(probe: StepProbe) -> str:
    """'the loss goes 2.69 -> 2.22 over 20 SGD steps (at most 2.93, step 4)'."""
    peak = "not finite" if not math.isfinite(probe.peak) else fmt(probe.peak)
    last = fmt(probe.final) if math.isfinite(probe.final) else "not finite"
    top = (f", at most {peak} (step {probe.peak_step})" if probe.peak_step not in (0, probe.steps) else "")
    return f"the loss goes {fmt(probe.initial)} -> {last} over {probe.steps} SGD steps on the check's batch{top}"


def _curvature_words(result: SimulationResult) -> str:
    """The sentence on lr x sharpness against its bound ('' where not estimated)."""
    found = curvature(result)
    opt = result.optimizer
    if found is None or opt is None:
        return ""
    value, x, bound = found
    over = x > bound
    cmp = "over" if over else ("over half of" if x > bound / 2 else "under")
    words = (f"lr x sharpness = {fmt(opt.lr)} x {fmt(value)} = {fmt(x)}, {cmp} SGD's stability bound {fmt(bound)}"
             f"{f' (2 (1 + momentum {opt.momentum:g}))' if opt.momentum and not opt.nesterov else ''}")
    probe = probe_of(result)
    if over and diverging(result):
        if exactly_quadratic(result) or probe is None:
            words += (f": the run diverges from the first step (the sharpest direction's error grows about "
                      f"{fmt(abs(1 - x))}x a step without momentum{'; the loss is a quadratic in the weights' if exactly_quadratic(result) else ''})")
            if probe is not None:
                words += f"; {probe_words(probe)}"
        else:
            words += f": the run diverges ({probe_words(probe)})"
        safe = _stable_rate_of(result)
        words += (f"; below lr {fmt(bound * safe)} it is stable, 1/sharpness = {fmt(safe)} is safe"
                  if safe is not None else "")
    elif over:
        done = f"{probe_words(probe)}, so it does not diverge" if probe is not None else "not simulated"
        clipped = _clipped(result)
        stable = _stable_rate_of(result)
        if clipped is not None and opt.global_clip_norm is not None:
            words += (f", past which a quadratic loss diverges; but training clips the total gradient norm at "
                      f"{fmt(opt.global_clip_norm)}, so a step moves the weights by at most lr x "
                      f"{fmt(opt.global_clip_norm)} = {fmt(clipped)} in all: past the bound the sharpest direction "
                      f"oscillates within that instead of growing, and {done} (with the clipping): the rate is kept"
                      + (f" (lr {fmt(stable)} would keep even the unclipped step under the bound)" if stable else ""))
            return words
        words += (f", past which a quadratic loss diverges; {result.loss or 'this loss'} is not a quadratic, and {done}: "
                  "the catapult or edge-of-stability regime, where the first steps overshoot along the "
                  "sharpest direction until the outputs' growth lowers the curvature there (Lewkowycz et al. "
                  "2020, Cohen et al. 2021); a rate many recipes train at, though the first steps may raise the "
                  f"loss: watch it" + (f"; below lr {fmt(stable)} the bound holds" if stable else ""))
    elif x > bound / 2:
        words += ": stable, though the sharpest direction overshoots and oscillates; watch the loss"
    return words


#: Why a curvature-decided large_updates finding says what it says (its explanation).
_CURVATURE_EXPLANATION = (
    "Gradient descent on a quadratic loss diverges exactly when lr x lambda_max(Hessian) > 2, with "
    "heavy-ball momentum beta when it passes 2 (1 + beta) (Nesterov's: 2 (1 + beta) / (1 + 2 beta)). A "
    "network's loss is not a quadratic: past the bound the sharpest direction overshoots, the outputs grow "
    "and the curvature there drops (a cross-entropy's softmax saturates), so the loss rises for a few steps "
    "and falls again (the catapult phase, Lewkowycz et al. 2020) or training hovers at the bound (the edge "
    "of stability, Cohen et al. 2021); far enough past it the loss blows up. So past the bound the check "
    "takes 20 steps of this SGD on its batch: where the loss is no longer finite, passes 100x its start, "
    "or is still over 2x its start after the last step (not come back), the run diverges (an error); otherwise it "
    "is the catapult or edge-of-stability regime (a warning). Mse on one affine layer is exactly a "
    "quadratic, so there the bound alone says it diverges. lambda_max, the loss's sharpness, is estimated "
    "at the initial point on the check's batch by power iteration with Hessian-vector products; SGD's "
    "weight decay adds to it. Where the model is one affine layer (linear or logistic regression, a convex "
    "problem) or has no layer to measure (scalar parameters used elementwise), this bound alone judges "
    "the step: the per-layer update-to-weight ratio (about 1e-3 in a healthy deep net) does not apply. "
    "An adaptive optimizer (Adam, RMSprop, ...) divides its step by its own gradient statistics, which "
    "changes the bound: it is judged under SGD only.")


class LargeUpdates(ArchitectureRule):
    """The first optimizer step's update-to-weight ratio, where the spec gives an optimizer."""

    code = "large_updates"
    remedies = (smaller_learning_rate, smaller_weight_decay)

    def measure(self, result: SimulationResult) -> float:
        if curvature_decides(result):
            # the sharpness bound alone judges a one-layer (convex) or layerless model: its metric
            # is lr x sharpness (a rate's re-simulation keeps the sharpness: simulate.at_rate)
            found = curvature(result)
            return found[1] if found is not None else math.nan
        return max(_first_step(result)[0].values(), default=math.nan)

    def measured_metric(self, result: SimulationResult, t: Thresholds) -> str | None:
        return "lr_times_sharpness" if curvature_decides(result) else "max_update_ratio"

    def measure_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        if metric == "lr_times_sharpness":
            found = curvature(result)
            return found[1] if found is not None else None
        if metric == "max_update_ratio":
            return max(_first_step(result)[0].values(), default=None)
        return None

    def decisive(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        found = curvature(result)
        if found is not None and not curvature_decides(result) and found[1] > found[2]:
            return "lr_times_sharpness", found[1]  # a deeper model over the bound: the sharpness fires
        # under an adaptive optimizer with no layer over the per-layer line, the finding fires on the
        # layers' steps summed over depth (:func:`adaptive_depth_sum`), not on the largest one
        steps = _judged_steps(result, t)
        if not _adaptive(result) or max(steps.values(), default=math.nan) > t.large_update_warning:
            return None
        return "adaptive_steps_sum", _steps_sum(steps)

    def side_effect_figure(self, result: SimulationResult, t: Thresholds) -> tuple[str, float] | None:
        # the metric is the largest step of all, a BN-fed (scale-invariant) layer's raw one included,
        # which the rule does not judge (:func:`_judged_steps`): a side effect is shown by the largest
        # step outside that carve-out on both networks (a fresh head's kept, to compare alike) (specsweep13 P3: "max_update_ratio 132480 -> 2.54", a BN-fed first
        # layer's step before beside the head's after, which had been 0.0076)
        if curvature_decides(result) or self.decisive(result, t) is not None:
            return None
        steps = _outside_norms(result, _usual_steps(result), t)
        return "max_judged_update_ratio", max(steps.values(), default=math.nan)

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        curved = _curvature_severity(result)
        if curvature_decides(result):
            return curved
        if curved == "error":
            return "error"  # beside the per-layer rules: past SGD's stability bound, and diverging
        severity = self._by_layers(result, t)
        # past the bound without diverging (the catapult regime) is a warning whatever the layers say
        if curved == "info" and severity is None:
            return "info"  # past the bound under clipping: a note (_clipped)
        return "warning" if curved == "warning" and severity in (None, "info") else severity

    def _by_layers(self, result: SimulationResult, t: Thresholds) -> str | None:
        # judged on :func:`_judged_steps` (a fresh head below the error level left out); the
        # metric stays the largest ratio of all, so a verification's before and after compare alike
        steps = _judged_steps(result, t)
        judged = max(steps.values(), default=math.nan)
        severity = t.updates(judged)
        total = _steps_sum(steps)
        if severity is None and adaptive_depth_sum(result, total):
            severity = "warning"  # every layer under the line, their sum over it: a deep stack's step
        if severity == "warning" and curvature_skipped(result) is not None:
            # the bound that judges a one-affine-layer model was not estimated: the deep-net ratio
            # it replaced false-alarms on a convex fit (peersweep13 h02: 0.418 of a usual init's norm
            # at lr x lambda_max 0.23), so only a step past a layer's whole usual norm stays an error
            return "info"
        if severity == "warning" and (_warms_up(result) or _adaptive_small_step(result, judged, total)):
            # the step at the full rate comes after a warm-up, which lets Adam's moment estimates and
            # the weights' scale settle first (ConvNeXt's AdamW 4e-3 moves its 0.02-std layers by 0.2 at
            # that rate, and trains with its 20-epoch warm-up: modsweep26); a layer rewritten whole
            # (past the error level) is too large a rate whatever comes before
            return "info"
        return severity

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        _, kind, lr = _first_step(result)
        ratios = _judged_steps(result, t)
        total = _steps_sum(ratios)
        hit = sorted((u for u in result.units if ratios.get(u.name, 0.0) > t.large_update_warning),
                     key=lambda u: -ratios[u.name])
        if curvature_decides(result) or (not hit and not adaptive_depth_sum(result, total)):
            return self._by_curvature(severity, value, result, t)
        summed = not hit  # fired on the depth sum alone (adaptive_depth_sum): every judged layer
        if summed:
            hit = sorted((u for u in result.units if u.name in ratios and math.isfinite(ratios[u.name])),
                         key=lambda u: -ratios[u.name])
        limits = update_ratio_limits(result, t)
        evidence = {
            "metric": "max_update_ratio",
            "value": value,
            "threshold": t.large_update_warning,
            "layers": [u.name for u in hit],
            # (the largest twenty where the sum decided: a deep network's evidence stays readable)
            "update_ratios": {u.name: ratios[u.name] for u in hit[:20]},
            # the line each is judged against (the warning line, a fresh head's higher one), which its
            # lower_learning_rate is sized by (:func:`update_ratio_limits`)
            "update_ratio_limits": {u.name: limits[u.name] for u in hit[:20]
                                    if math.isfinite(limits.get(u.name, math.inf))},
            "optimizer": kind,
            "learning_rate": lr,
            "first_step_factor": (factor := _first_over_usual(result, hit[0].name)),
        }
        # the weights' scale each hit layer is judged against, where a usual init's is larger
        floors = {u.name: f for u in hit if (f := scale_floor(u)) < 1}
        if floors:
            evidence["init_scale_factor"] = floors
        zeros = [u.name for u in hit if u.name in zero_weight_layers(result)]
        if zeros:
            # a ratio to a zero norm is infinite: the step is judged against a usual init's norm
            evidence["zero_weight_layers"] = zeros
            evidence["zero_weight_step_rms"] = {n: next(u for u in hit if u.name == n).geo("zero_weight_step")
                                                for n in zeros}
        # the figure judged is the optimizer's usual step: say so where its first step differs
        # (RMSprop's and Adadelta's start-up transient, Adagrad's shrinking steps)
        opt = result.optimizer
        built = (f" once momentum {opt.momentum:g}{' (Nesterov)' if opt.nesterov else ''} has built up"
                 if opt is not None and opt.type == "sgd" and opt.momentum > 0 else "")
        step = (f"one {kind} step at lr {lr:g}" if abs(factor - 1) < 0.05 else
                f"a usual {kind} step at lr {lr:g}{built} ({_usual_step(result)}; its first is {fmt(factor)}x that)")
        if summed:
            low = min(ratios[u.name] for u in hit)
            summary = (f"{step} changes each of {len(hit)} layers' weights by {fmt(low)} to "
                       f"{fmt(ratios[hit[0].name])} of their norm ({layer_words(hit[0])} most), {fmt(total)} summed over "
                       f"depth (over {ADAPTIVE_STEPS_SUM:g}; healthy: about 1e-3 a layer)")
        else:
            summary = (f"{step} changes {layer_words(hit[0])}'s weights by {fmt(ratios[hit[0].name])} of their "
                       f"norm (healthy: about 1e-3)" if hit[0].name not in zeros else
                       f"{step} moves {layer_words(hit[0])}'s weights, all zero {simulated_weights(result)}, by "
                       f"{fmt(next(u for u in hit if u.name == hit[0].name).geo('zero_weight_step'))} per weight "
                       f"(root mean square): {fmt(ratios[hit[0].name])} of a usually initialised layer's norm "
                       f"({DEFAULT_INIT_GAIN:g}/sqrt({hit[0].fan_in}) per weight; healthy: about 1e-3)")
            summary += (f"; {len(hit)} layers above {t.large_update_warning:g}" if len(hit) > 1 else "")
        if _adaptive(result):
            evidence["adaptive_steps_sum"] = total
            evidence["adaptive_steps_sum_threshold"] = ADAPTIVE_STEPS_SUM
        if summed and severity != "info":
            summary += ": an adaptive optimizer moves every layer by about its rate at once, so a deep stack's steps add up"
        skipped = _skipped_words(result)
        if skipped:
            summary += "; " + skipped if severity == "info" else "; " + skipped.rsplit(": the per-layer", 1)[0]
            evidence["sharpness_not_estimated"] = curvature_skipped(result)
        elif severity == "info" and not _warms_up(result):
            summary += (f"; a note under {kind}, whose first step is its rate per weight whatever the gradient: "
                        f"up to {ADAPTIVE_STEP_NOTE:g} of a layer's weights, {ADAPTIVE_STEPS_SUM:g} over all "
                        "layers, is a rate small networks train at (1e-2 on torch's default init), watch the "
                        "loss for oscillation")
            evidence["adaptive_step_note"] = ADAPTIVE_STEP_NOTE
        if severity == "info" and _warms_up(result) and not skipped:
            warm = result.optimizer.warmup_steps if result.optimizer is not None else 0
            summary += (f"; a note: the run warms up to that rate{f' over {warm:,} steps' if warm else ''}, "
                        "which lets the optimizer's statistics and the weights settle before it")
            if warm:  # (a torch optimizer warming up over a length it does not show: none made up)
                evidence["warmup_steps"] = warm
        elif _warms_up(result) and not skipped:
            # past the warning line under a declared warm-up: say it was read and which step is judged
            # (specsweep14 goyal2017 warmup: the evidence never named the warm-up it kept the error through)
            warm = result.optimizer.warmup_steps if result.optimizer is not None else 0
            summary += (f"; the run warms up to that rate{f' over {warm:,} steps' if warm else ''}, but the step "
                        "judged is the one at the full rate, on the initial weights: past "
                        f"{t.large_update_error:g} of a layer's norm (its weights rewritten whole) it stays an "
                        "error after a warm-up")
            evidence["judged_step"] = "full_rate_after_warmup"
            if warm:
                first = {u.name: ratios[u.name] * _first_over_usual(result, u.name) / warm for u in hit[:20]}
                evidence["warmup_steps"] = warm
                evidence["warmup_first_factor"] = 1.0 / warm
                evidence["warmup_first_update_ratios"] = first
                summary += (f" (its first warm-up step, at lr {fmt(lr / warm)} = lr/{warm:,}, moves "
                            f"{layer_words(hit[0])} by {fmt(first[hit[0].name])})")
        explanation = (
            "The update-to-weight ratio ||delta W|| / ||W|| of a healthy step is about 1e-3. Steps that move "
            "a layer by a tenth of its weights or more make training oscillate or diverge and can kill "
            "units; the first step is measured here, from the spec's optimizer and the initial gradients "
            "(Adam's and AdamW's first step is about lr per weight whatever the gradient's size; RMSprop's is "
            "1/sqrt(1 - alpha) times that, a start-up transient, so its ratio is judged divided by that). "
            "Under an adaptive optimizer (Adam, AdamW, NAdam, RMSprop, Adagrad, Adadelta) every layer moves by "
            f"about the rate at once, so the layers' steps are also judged summed over depth: over "
            f"{ADAPTIVE_STEPS_SUM:g} is a warning even where no layer alone passes {t.large_update_warning:g}. "
            "A layer whose weights start below a usual initialisation's "
            "scale (0.5/sqrt(fan_in), under torch's default 0.58/sqrt(fan_in)) is judged against that scale, since its step does not "
            "depend on its weights' size; one whose weights are all zero (a ratio to a zero norm is infinite) "
            "likewise, by its step's root mean square per weight over 0.5/sqrt(fan_in).")
        if _warms_up(result):
            explanation += (
                " Where the run warms up (warmup_steps), the step judged is still the one at the full rate, taken "
                "on the initial weights: a warning there is a note, since the warm-up lets the optimizer and the "
                f"weights settle first, while a step past {t.large_update_error:g} of a layer's norm stays an error; "
                "the evidence gives the warm-up's first step beside it (warmup_first_update_ratios: the first "
                "step's ratio times the linear warm-up's first factor 1/warmup_steps, the step being proportional "
                "to the rate).")
        if curvature(result) is not None:
            # the sharpness beside the per-layer figures (a deeper model's): over the bound it is an error
            evidence.update(_curvature_evidence(result))
            found = curvature(result)
            if found is not None and found[1] > found[2]:
                summary += "; " + _curvature_words(result)
                explanation += " " + _CURVATURE_EXPLANATION
        return Detection(self.code, severity, "max_update_ratio", value, summary, explanation, evidence, hit)

    def _by_curvature(self, severity: str, value: float, result: SimulationResult, t: Thresholds) -> Detection:
        """The finding the sharpness bound made: alone (:func:`curvature_decides`), or beside
        per-layer ratios that are all under the warning line (a deeper model's)."""
        opt = result.optimizer
        decides = curvature_decides(result)
        evidence: dict[str, Any] = {
            "metric": "lr_times_sharpness" if decides else "max_update_ratio",
            "value": value,
            "threshold": (curvature(result) or (0.0, 0.0, 2.0))[2] if decides else t.large_update_warning,
            "layers": [u.name for u in result.units if u.has_weights and not u.container],
            "optimizer": opt.type if opt is not None else "?",
            "learning_rate": opt.lr if opt is not None else math.nan,
            "momentum": opt.momentum if opt is not None else 0.0,
            **_curvature_evidence(result),
        }
        if not decides:
            evidence["update_ratios"] = dict(sorted(_judged_steps(result, t).items(), key=lambda kv: -kv[1])[:20])
        sharp = result.sharpness
        if sharp is not None and sharp.unmeasured:
            evidence["unmeasured_parameters"] = list(sharp.unmeasured)
        step = f"sgd at lr {fmt(opt.lr) if opt is not None else '?'}"
        summary = f"{step}: {_curvature_words(result)}"
        units = [u for u in result.units if u.has_weights]
        return Detection(self.code, severity, "lr_times_sharpness" if decides else "max_update_ratio", value,
                         summary, _CURVATURE_EXPLANATION, evidence, units)


class SmallUpdates(ArchitectureRule):
    """The first optimizer step moves even the fastest layer by almost nothing (spec optimizer)."""

    code = "small_updates"
    remedies = (larger_learning_rate,)

    def measure(self, result: SimulationResult) -> float:
        median = _weighted_median_step(result)
        return median[1] if median is not None else math.nan

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        return "warning" if value < t.small_update_warning else None

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        _, kind, lr = _first_step(result)
        ratios = _stepped(result)
        median = _weighted_median_step(result)
        assert median is not None
        middle = median[0]
        moving = {u.name: u for u in result.units if ratios.get(u.name, 0.0) > 0}
        fastest = max(moving.values(), key=lambda u: ratios[u.name])
        counts = _weight_counts(result)
        total = sum(counts.get(n, 0.0) for n in moving)
        under = sum(counts.get(n, 0.0) for n in moving if ratios[n] < t.small_update_warning)
        share = under / total if total > 0 else math.nan
        evidence = {
            "metric": "median_update_ratio",
            "value": value,
            "threshold": t.small_update_warning,
            "layers": [middle.name],
            # the fastest twenty: the evidence of a network of hundreds of layers stays readable
            "update_ratios": dict(sorted(ratios.items(), key=lambda kv: -kv[1])[:20]),
            "fastest_layer": fastest.name,
            "max_update_ratio": ratios[fastest.name],
            "weights_share_under_threshold": share,
            "optimizer": kind,
            "learning_rate": lr,
        }
        fastest_words = ("" if fastest is middle else
                         f"; the fastest layer, {layer_words(fastest)}, moves {fmt(ratios[fastest.name])}")
        summary = (f"one {kind} step at lr {lr:g} changes the layers holding {share:.1%} of the weights by less "
                   f"than {fmt(t.small_update_warning)} of their norm: the median weight's layer, "
                   f"{layer_words(middle)}, by {fmt(value)} (healthy: about 1e-3){fastest_words}")
        explanation = (
            "The update-to-weight ratio ||delta W|| / ||W|| of a healthy step is about 1e-3. When the layers "
            "that hold most of the network's weights change by a millionth of them per step, the learning "
            "rate is too small for this network and optimizer: training crawls, and a run looks like a "
            "plateau. Each layer counts by its number of weights, so a small layer (a one-unit output, whose "
            "few weights have the largest ratio) cannot speak for the rest. The first step is measured here, "
            "from the optimizer and the initial gradients.")
        floor = _under_eps(value, middle, result)
        if floor is not None:
            per_weight, saturated = floor
            evidence["step_per_weight"] = per_weight
            evidence["saturated_step_per_weight"] = saturated
            evidence["gradient_under_eps"] = per_weight < EPS_LIMITED_SHARE * saturated
            if evidence["gradient_under_eps"]:
                eps = result.optimizer.eps if result.optimizer is not None else None
                summary += (f"; its gradients are at or below {kind}'s eps{'' if eps is None else f' ({eps:g})'}: "
                            f"it steps {fmt(per_weight)} per weight where a gradient above eps steps "
                            f"{fmt(saturated)}")
                explanation = (
                    f"The update-to-weight ratio ||delta W|| / ||W|| of a healthy step is about 1e-3. Under {kind} "
                    "the step per weight is about the learning rate whatever the gradient's size, once |g| is "
                    f"well above the optimizer's eps: here the median weight's layer steps {fmt(per_weight)} per "
                    f"weight, {per_weight / saturated:.2g} of the {fmt(saturated)} a gradient above eps would "
                    "give, so its gradients are at or below eps and the step is lr x g / eps, the gradient's size, "
                    "not the rate's. The rate is not what is small: the gradient is (a vanishing gradient, found "
                    "beside this one where the network's depth or init shrinks it), and a rate raised until "
                    "these steps look healthy would move every weight by that rate per step as soon as the "
                    "gradients grow past eps. What shrinks the gradient is the fix (the vanishing_gradient or "
                    "init remedies), or a smaller eps. The first step is measured here, from the optimizer and "
                    "the initial gradients.")
        silent = [u for u in result.units if u.name in _first_step(result)[0] and _no_gradient(u)]
        if silent:
            evidence["no_gradient_layers"] = [u.name for u in silent]
            summary += f"; {_named(silent)} {'gets' if len(silent) == 1 else 'get'} no gradient at all, left out"
            explanation += (
                f" {_named(silent)} {'gets' if len(silent) == 1 else 'get'} no gradient (exactly 0, or float round-off "
                "of a sum that is 0): no rate moves such a layer, so it is left out here; why no gradient reaches "
                "it is its own finding (vanishing_gradient, symmetric_weights, dead_units).")
        return Detection(self.code, severity, "median_update_ratio", value, summary, explanation, evidence,
                         [middle])


    def worse_before(self, before: SimulationResult, after: SimulationResult, t: Thresholds) -> bool:
        """Every layer the changed network steps by less than the threshold got no gradient at all
        on the unchanged one (a step of 0, which this rule leaves to vanishing_gradient, dead_units
        or symmetric_weights): the remedy made those steps larger, not small (specsweep13
        lu2019_narrow_relu_w2_d30: batch_norm revived a born-dead ReLU stack, dead fraction 0.667
        -> 0, and was not recommended for "introducing" small_updates on layers that moved 0
        before)."""
        ratios = _stepped(after)
        under = [n for n, r in ratios.items() if r < t.small_update_warning]
        silent = {u.name for u in before.units if _no_gradient(u)}
        return bool(under) and all(n in silent for n in under)


#: An adaptive optimizer's step per weight under this share of the step a gradient far above its
#: eps gives (:func:`.simulate.saturated_step`) is set by the gradient, not the rate: Adam's
#: lr |g| / (|g| + eps) is half of lr at |g| = eps, so under half the typical |g| is below eps.
EPS_LIMITED_SHARE = 0.5


def _under_eps(ratio: float, unit: UnitStats, result: SimulationResult) -> tuple[float, float] | None:
    """(``unit``'s usual step per weight, the one a gradient far above eps would give) under an
    adaptive optimizer: ``ratio`` (its :func:`_first_step` ratio, ||delta W|| / ||W||) times the
    weights' RMS, and :func:`.simulate.saturated_step` on the same footing (RMSprop's and Adadelta's
    first step times :func:`warm_factor`, Adagrad's step :data:`.simulate.ADAGRAD_WARM_STEPS`).
    None under SGD, or where the weights' RMS was not measured."""
    opt = result.optimizer
    if opt is None or not _adaptive(result) or "weight_rms" not in unit.values:
        return None
    rms = unit.geo("weight_rms")
    adagrad = opt.type == "adagrad"
    saturated = saturated_step(opt, ADAGRAD_WARM_STEPS if adagrad else 1)
    if saturated is None or not (math.isfinite(rms) and rms > 0 and saturated > 0 and math.isfinite(ratio)):
        return None
    return ratio * rms, saturated * (1.0 if adagrad else warm_factor(result))


def _weight_counts(result: SimulationResult) -> dict[str, float]:
    """Each unit's number of weights (its matrices and kernels with a gradient, as the step ratio
    counts them); units without the figure (an older result) count by fan_in x fan_out, else 1."""
    out: dict[str, float] = {}
    for u in result.units:
        if "weight_count" in u.values and np.any(np.isfinite(u.values["weight_count"])):
            out[u.name] = float(np.nanmax(u.values["weight_count"]))
        else:
            out[u.name] = float((u.fan_in or 1) * (u.fan_out or 1))
    return out


def _no_gradient(unit: UnitStats) -> bool:
    """Whether ``unit``'s weights get no gradient in any seed: exactly 0, or float round-off of a
    sum that is 0 in exact arithmetic (set to 0 by :func:`.simulate.round_off_gradients`)."""
    g = unit.values.get("grad_norm")
    return g is not None and len(g) > 0 and bool(np.all(g == 0))


def _stepped(result: SimulationResult) -> dict[str, float]:
    """:func:`_first_step`'s ratios of the layers that get a gradient (:func:`_no_gradient`): a
    layer that gets none still moves by what the optimizer makes of its round-off (Adam: lr x
    g / (|g| + eps), 1e-15 of its norm at g = 1e-16), a figure of no rate (peersweep21
    nl_mix_bugs_3: raise Adam's rate to 5.45e+06 for a layer below a constant readout)."""
    silent = {u.name for u in result.units if _no_gradient(u)}
    return {n: r for n, r in _first_step(result)[0].items() if n not in silent}


def _weighted_median_step(result: SimulationResult) -> tuple[UnitStats, float] | None:
    """(the unit, its first-step ratio) at the median of the network's weights: the layers sorted
    by their ratio, the one where half of all the weights are reached. A layer with no gradient at
    all (ratio 0, or a gradient that is float round-off: :func:`_stepped`) is a dead, vanishing or
    symmetric layer's finding, not the rate's, and an embedding's step
    touches only the rows its batch holds: both are left out (where any other layer moves). None
    where no layer moves."""
    ratios = _stepped(result)
    units = [u for u in result.units if ratios.get(u.name, 0.0) > 0 and math.isfinite(ratios[u.name])]
    dense = [u for u in units if "embedding" not in u.type]
    units = dense or units
    if not units:
        return None
    counts = _weight_counts(result)
    units.sort(key=lambda u: ratios[u.name])
    half = sum(counts[u.name] for u in units) / 2
    acc = 0.0
    for u in units:
        acc += counts[u.name]
        if acc >= half:
            return u, ratios[u.name]
    return units[-1], ratios[units[-1].name]


class NegativeLearningRate(ArchitectureRule):
    """The optimizer's rate is at or below 0 (UMLAUT's planted ``Adam(learning_rate=-1e3)``): the
    gradients are the same either way, only the step goes up them, or nowhere."""

    code = "negative_learning_rate"
    remedies = (positive_rate,)

    def measure(self, result: SimulationResult) -> float:
        return result.optimizer.lr if result.optimizer is not None else math.nan

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        return "error" if value <= 0 else None

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        assert result.optimizer is not None
        what = ("climbs the loss: every step goes up the gradient" if value < 0 else
                "does not train: no step moves the weights")
        return Detection(
            self.code, severity, "learning_rate", value,
            f"the {result.optimizer.type} optimizer's learning rate is {value:g}: it {what}",
            "Gradient descent moves the weights against the gradient by the rate; a negative rate moves them "
            "along it, so the loss rises from the first step (it can look like an explosion), and zero moves "
            "nothing. The gradients simulated here are the same either way: only the step's direction is wrong.",
            {"metric": "learning_rate", "value": value, "threshold": 0.0, "optimizer": result.optimizer.type},
            [])


def output_layer(result: SimulationResult) -> UnitStats:
    """The last weighted layer (not a readout of a second output): the network's output layer."""
    weighted = [u for u in result.units if u.has_weights and not u.container and not u.readout and not cut_off(u)]
    return weighted[-1] if weighted else result.units[-1]


def _zero_weights(unit: UnitStats) -> bool:
    """Whether every weight of ``unit`` (not its bias) is exactly 0 in every seed (a zero init)."""
    rms = unit.values.get("weight_rms")
    return rms is not None and len(rms) > 0 and all(float(x) == 0.0 for x in rms)


def output_width(result: SimulationResult) -> int | None:
    """The output's width: the values per sample (per position of a sequence) the loss takes, a
    classifier's class count. A live module's or imported graph's is its (first) output's last
    dimension as measured (:attr:`SimulationResult.output_width`), a spec's its plan's. The output
    layer's fan_out is that width only for a Linear (or a recurrent layer's hidden size): a
    convolution's counts its kernel's positions too (peersweep16 u10: Conv2d(4, 11, 5) on 5x5
    inputs, then Flatten, makes 11 logits; its fan_out is 11 * 5 * 5 = 275)."""
    if result.output_width is not None:
        return result.output_width
    if result.plan is not None and result.plan.output_shape:
        return int(result.plan.output_shape[-1])
    last = output_layer(result)
    return last.fan_out if last.type == "linear" or last.type in RECURRENT_OUTPUT_TYPES else None


def values_per_sample(result: SimulationResult) -> int | None:
    """How many values the output holds per sample: the product of its dimensions past the batch's.
    Not :func:`output_width` (the last axis, a classifier's class count): a ``Conv2D(1, sigmoid)``
    over 28x28 images ends in one channel but holds 784 values a sample, no one-number regression
    (kerassweep30 F2). A graph's as measured (:attr:`SimulationResult.output_values`), a spec's
    from its plan's output shape, else the output's width."""
    if result.output_values is not None:
        return result.output_values
    if result.plan is not None and result.plan.output_shape:
        return math.prod(int(d) for d in result.plan.output_shape)
    return output_width(result)


def linear_fans(unit: UnitStats) -> tuple[int | None, int | None]:
    """(in_features, out_features) of ``unit`` where it is a Linear, for the ``nn.Linear(n_in,
    n_out)`` a remedy writes; (None, None) for any other layer, whose fan_in and fan_out are its
    init's fan formulas (a convolution's count its kernel's positions), no Linear's widths."""
    return (unit.fan_in, unit.fan_out) if unit.type == "linear" else (None, None)


def no_output_gradient(result: SimulationResult) -> bool:
    """Whether the output layer's output got exactly zero gradient in every seed."""
    grads = output_layer(result).values.get("output_grad_norm")
    return grads is not None and len(grads) > 0 and all(float(g) == 0.0 for g in grads)


#: The std of the logits (the output layer's linear output under a cross-entropy on logits) over
#: which the loss's softmax or sigmoid is saturated: He or LeCun init keeps them about 1 on unit
#: inputs. Trained nets in two ONNX sweeps reach up to 66 on N(0, 1) inputs (onnxsweep10 h15; 31,
#: 28, 21 and 19 for four more); weights x10 give 323 (onnxsweep11 b05) to 3e5 (1.3e4, 1.6e4, 2e4
#: for two- to five-layer MLPs whose first/last gradient ratio stays under the bar)
LOGIT_STD_WARNING = 100.0


def logit_std(result: SimulationResult) -> tuple[UnitStats, float] | None:
    """(the output layer, its outputs' std) where the loss is a cross-entropy on the output
    layer's linear output (logits), whatever their size; else None."""
    if _loss_kind(result) not in PROBABILITY_LOSSES or not result.units:
        return None
    out = output_layer(result)
    if out.activation not in (None, "identity") or "activation_std" not in out.values:
        return None
    std = out.mean("activation_std")
    return (out, std) if math.isfinite(std) else None


def logit_scale(result: SimulationResult) -> tuple[UnitStats, float] | None:
    """(the output layer, its outputs' std) where the loss is a cross-entropy on the output
    layer's linear output (logits) and their std is over :data:`LOGIT_STD_WARNING`, else None."""
    found = logit_std(result)
    return found if found is not None and found[1] > LOGIT_STD_WARNING else None


def _loss_kind(result: SimulationResult) -> str | None:
    """The loss the simulation took: the spec's, or a live module's or a file's."""
    return result.plan.spec.loss.type if result.plan is not None else result.loss


def _second_squash(result: SimulationResult) -> str:
    """The squash a loss on logits applies over an output already ``result.squashed``:
    cross-entropy's softmax (over a forward's own softmax or sigmoid, a spec's or a file's bounded
    output) or binary cross-entropy's sigmoid. A loss on probabilities applies none: the second is
    the output's own (a Keras softmax layer over a softmax), which the output unit records."""
    own = _output_activation(result).activation
    if result.on_probabilities and own in ("sigmoid", "softmax"):
        return own
    loss = _loss_kind(result)
    # (a live module's forward ending in a sigmoid under binary cross-entropy on logits, as
    # nn.BCEWithLogitsLoss: its sigmoid, as a spec's)
    return "sigmoid" if loss == "binary_cross_entropy" else "softmax"


def _output_activation(result: SimulationResult) -> UnitStats:
    """The unit holding the output's activation: a separate activation unit after the output
    layer (Keras' ``Activation``, a module's final ``nn.ReLU``), else the output layer itself."""
    last, tail = output_layer(result), result.units[-1]
    return tail if tail is not last and not tail.has_weights and tail.activation else last


def squash_range(result: SimulationResult) -> tuple[float, float]:
    """The range [a, b] of the logits a loss on logits gets from an output already
    ``result.squashed``: a forward's (or file's) bounded ending composed through the chain of
    activations before it where the trace knows it (a ReLU then a tanh: [0, 1]; a ReLU6, traced as
    a hardtanh: [0, 6]), else the squash's own range (``BOUNDS``: a tanh's [-1, 1])."""
    squashed = result.squashed or ""
    if result.squashed_in_forward and squashed != "softmax":
        unit = _output_activation(result)
        composed = unit.output_range if unit.output_range is not None else activation_image(unit.activation)
        if composed is not None and all(math.isfinite(v) for v in composed) and composed[1] > composed[0]:
            return float(composed[0]), float(composed[1])
    return BOUNDS.get(squashed, (0.0, 1.0))


def squashed_floor_fraction(result: SimulationResult) -> float:
    """:func:`.losses.unreachable_fraction` for ``result``'s squashed output (:func:`squash_range`)."""
    assert result.squashed is not None
    return unreachable_fraction(result.squashed, _second_squash(result), output_width(result) or 1,
                                squash_range(result))


#: A bounded regression output is a warning where it cannot reach this share of the simulated
#: standard-normal targets (about half: a ReLU's 50%, a sigmoid's 66%), a note below it (a tanh's
#: 32%: a symmetric range, right for targets scaled into it).
UNREACHABLE_TARGETS_WARNING = 0.45
#: ... and an error where it cannot reach this share of the targets (given with ``targets=`` or
#: ``target_range``): an output that reaches (nearly) none of them cannot fit at all (a sigmoid
#: under mse against house prices in [5, 50]: 100%; newuser10 #6). The simulated standard-normal
#: targets never come near it (a sigmoid's 66% is the most of any bounded output).
UNREACHABLE_TARGETS_ERROR = 0.95


def _outputs_through(last: UnitStats, act: UnitStats, activation: str) -> str:
    """"<the output layer>'s outputs go through <its activation>", naming a live module's lines to
    edit by qualified name and class where the measurement knows them ("4 (Linear 64→1)'s outputs
    go through 5 (Sigmoid)": "4's outputs" read oddly for a Sequential index, newuser10 #7); a
    spec's or a Keras file's layer by its name ("layers[3].linear's outputs go through a sigmoid")."""
    through = act.activation_at or (_layer_named(act) if act is not last and act.module_class is not None
                                     else 'a ' + activation)
    if act is not last and last.activation is not None:
        # a chain of activations ends the network (a ReLU then a Sigmoid): each, in order
        through = f"{last.activation_at or 'a ' + last.activation} then {through}"
    return f"{_layer_named(last)}'s outputs go through {through}"


def _layer_named(unit: UnitStats) -> str:
    """A layer as a finding names it: a live module's by qualified name and class, with a Linear's
    widths ("4 (Linear 64→1)"); a spec's or a Keras file's by its name."""
    if unit.module_class is None:
        # a bare Sequential index an exporter left as the name ("2's outputs", onnxsweep24 #7)
        return layer_words(unit)
    width = f" {unit.fan_in}\u2192{unit.fan_out}" if unit.type == "linear" and unit.fan_in and unit.fan_out else ""
    return f"{unit.name} ({unit.module_class}{width})"


def clipped_regression_output(result: SimulationResult) -> UnitStats | None:
    """The bounded activation (``OUTPUT_RANGES``: a ReLU, a sigmoid, a tanh...) ending a network
    trained on a regression loss (mse, mae, huber), where it has one: every target outside its range
    is out of reach (and a ReLU's outputs on its flat side get no gradient at all)."""
    unit = _output_activation(result)
    if _loss_kind(result) not in REGRESSION or unit.activation not in OUTPUT_RANGES:
        return None
    if unit.activation == "relu":
        return unit if "active_fraction" in unit.values else None
    # Another bounded output is judged on one scalar target, in a spec (a Keras file's too): many
    # bounded outputs are a reconstruction whose data has that range by design (an autoencoder's
    # sigmoid pixels, a generator's tanh images). A graph or module is judged so only where it is a
    # Keras file's (``bounded_regression``: its stored weights run through the graph simulation, and
    # the output/loss pairing is the architecture's and the targets', not the weights': kerassweep16 u05)
    # A recurrent layer's own hidden state ending the network is bounded by its cell, not chosen for a
    # data range: an LSTM's h = o * tanh(c), a GRU's blend of tanh candidates from h_0 = 0 and a tanh
    # RNN's h all lie in (-1, 1), judged at any width, in a spec, a module or a file (modsweep34 u04:
    # nn.LSTM(3, 4, 3) under mse against standard-normal targets, 32% out of reach)
    if unit.type in RECURRENT_OUTPUT_TYPES and unit is output_layer(result):
        return unit
    # A bounded output shaped as the graph's one float input is a reconstruction (an autoencoder):
    # its targets are its inputs, judged at any width on the inputs drawn (standard normal, or in
    # --input-range's range), so a sigmoid reconstructing standardised data is a warning where
    # nothing was said (kerassweep20 u02), and one reconstructing pixels in [0, 1] is nothing
    if result.plan is None and result.reconstruction is not None and len(result.reconstruction):
        return unit
    if result.plan is None and not result.bounded_regression:
        return None
    # A bounded output of several units is judged per element where its targets are given
    # (``targets=``, ``target_range``, ``loss.target_range``, ``--target-range``): those say what it
    # must reach (peersweep14: targets passed to a multi-unit head were dropped silently); without
    # them it stays unjudged, as many such outputs are a reconstruction in range by design
    # (values per sample, not the last axis: a one-channel image output is no one-number target)
    if (values_per_sample(result) or 0) != 1 and not targets_given(result):
        return None
    return unit


def targets_given(result: SimulationResult) -> bool:
    """Whether the regression targets were described: example values (``targets=``) or a range
    (``target_range``, the spec's ``loss.target_range``, ``--target-range``)."""
    return (result.target_values is not None and len(result.target_values) > 0) or target_range(result) is not None


#: Each element's range of an output that is one distribution per row (:func:`simplex_regression_output`),
#: and the words for what a row must satisfy: a softmax's probabilities, a log_softmax's log-probabilities.
SIMPLEX_RANGES: dict[str, tuple[float, float]] = {"softmax": (0.0, 1.0), "log_softmax": (-math.inf, 0.0)}
SIMPLEX_CONSTRAINTS = {"softmax": "each row sums to 1", "log_softmax": "each row's exp sums to 1"}
#: A target row sums to 1 within this (labels smoothed by hand, stored in float32)
SIMPLEX_SUM_TOLERANCE = 1e-3


def simplex_regression_output(result: SimulationResult) -> tuple[str, int] | None:
    """(``"softmax"`` or ``"log_softmax"``, its width k) where the output is one distribution per
    row (:func:`.graph.simplex_output`) under a regression loss (mse, mae, huber): every prediction
    lies in the simplex, so only targets in [0, 1] whose rows sum to 1 (a log_softmax's: at or below
    0, their exps summing to 1) can be reached (peersweep14: make_regression targets through a 4-way
    softmax, Q-values of at least 1 through a softmax Q head); None otherwise."""
    if _loss_kind(result) not in REGRESSION:
        return None
    return result.simplex_output


def simplex_reach(result: SimulationResult, activation: str, k: int) -> dict[str, Any]:
    """How the targets given meet the simplex of :func:`simplex_regression_output`: ``value``, the
    share of them out of reach (of the rows passed, where ``targets=`` holds whole rows of k: a row
    is out of reach where an element is out of range or the row does not sum to 1; else of the
    elements passed; else of ``target_range``'s span, spread evenly), ``out_of_range`` (the share of
    elements outside the range), ``rows`` (the rows judged, or None), ``given`` (False: nothing was
    given, the targets are taken for probability rows, a classifier's one-hot labels, in reach)."""
    low, high = SIMPLEX_RANGES[activation]
    values = result.target_values
    if values is not None and len(values):
        outside = (values < low) | (values > high)
        out_of_range = float(np.mean(outside))
        if values.size % k == 0:
            rows = values.reshape(-1, k)
            sums = np.exp(rows).sum(axis=-1) if activation == "log_softmax" else rows.sum(axis=-1)
            off = outside.reshape(-1, k).any(axis=-1) | (np.abs(sums - 1.0) > SIMPLEX_SUM_TOLERANCE)
            return {"value": float(np.mean(off)), "out_of_range": out_of_range, "rows": int(rows.shape[0]),
                    "given": True}
        return {"value": out_of_range, "out_of_range": out_of_range, "rows": None, "given": True}
    given = target_range(result)
    if given is not None:
        a, b = given
        inside = max(0.0, min(b, high) - max(a, low))
        share = 1.0 - inside / (b - a)
        return {"value": share, "out_of_range": share, "rows": None, "given": True}
    return {"value": 0.0, "out_of_range": 0.0, "rows": None, "given": False}


#: The recurrent layers whose output is their hidden state, bounded as their activation says (the unit's
#: ``activation``: tanh for LSTM and GRU cells, an RNN's nonlinearity).
RECURRENT_OUTPUT_TYPES = frozenset({"lstm", "gru", "rnn"})


def bounded_range(unit: UnitStats) -> tuple[float, float]:
    """The range a bounded output unit holds its predictions to: composed through the chain of
    activations that ends the network where the trace knows it (``UnitStats.output_range``: a ReLU
    then a Sigmoid holds them to [0.5, 1], not the Sigmoid's [0, 1]), else its own activation's."""
    assert unit.activation is not None
    return output_range(unit.activation, unit.output_range)


def unreachable_targets(result: SimulationResult, unit: UnitStats | str) -> float:
    """:func:`.losses.unreachable_target_fraction` of ``unit``'s range (:func:`bounded_range`; an
    activation's name: its own range) for ``result``'s
    targets: the share of the example targets a live module's check was given (``target_values``)
    outside the range where there are some, else of the spec's or file's ``target_range``, else of
    standard-normal ones."""
    activation = unit if isinstance(unit, str) else unit.activation
    assert activation is not None
    bounds = None if isinstance(unit, str) else unit.output_range
    values = result.target_values
    if (values is None or not len(values)) and target_range(result) is None:
        values = reconstructed(result)
    if values is not None and len(values):
        low, high = output_range(activation, bounds)
        return float(np.mean((values < low) | (values > high)))
    return unreachable_target_fraction(activation, target_range(result), bounds)


def judged_as_reconstruction(result: SimulationResult) -> bool:
    """Whether :func:`clipped_regression_output` judges ``result``'s bounded output only as a
    reconstruction (shaped as its input, more than one value per sample), not as a one-number
    regression or a recurrent layer's state. Values per sample, not the last axis: a grayscale image
    autoencoder's ``Conv2D(1, sigmoid)`` ends in one channel of 784 values (kerassweep30 F2)."""
    unit = _output_activation(result)
    return (result.plan is None and result.reconstruction is not None and len(result.reconstruction) > 0
            and unit.type not in RECURRENT_OUTPUT_TYPES and (values_per_sample(result) or 0) > 1)


def reconstructed(result: SimulationResult) -> np.ndarray | None:
    """The inputs a reconstruction's output is judged against (:attr:`SimulationResult.reconstruction`),
    where no targets were given (``target_values``, ``target_range``), else None."""
    values = result.reconstruction if result.plan is None else None
    return values if values is not None and len(values) and not targets_given(result) else None


def _targets_words(result: SimulationResult) -> tuple[str, str]:
    """(evidence's ``targets``, the summary's words for them) for :func:`unreachable_targets`."""
    values = result.target_values
    inputs = reconstructed(result)
    if inputs is not None:
        span = f"[{float(inputs.min()):.3g}, {float(inputs.max()):.3g}]"
        return (f"its inputs (a reconstruction), the {len(inputs)} simulated in {span}",
                f"the inputs it reconstructs (the simulation's {len(inputs)}, in {span})")
    if values is not None and len(values):
        span = f"[{float(values.min()):.3g}, {float(values.max()):.3g}]"
        n = len(values)
        return (f"the {n} passed (targets=), in {span}",
                f"the {n} target{'s' if n > 1 else ''} passed (in {span})")
    given = target_range(result)
    if given is None:
        return "standard normal", "standard-normal targets"
    return f"in [{given[0]:g}, {given[1]:g}]", f"targets in [{given[0]:g}, {given[1]:g}]"


def target_range(result: SimulationResult) -> tuple[float, float] | None:
    """The range a spec says its regression targets lie in (``loss.target_range``), or a graph
    door's Keras file's (``SimulationResult.target_range``), else None."""
    return result.plan.spec.loss.target_range if result.plan is not None else result.target_range


def relu_logits_output(result: SimulationResult) -> UnitStats | None:
    """The ReLU ending a network whose loss takes logits (cross-entropy, binary cross-entropy on
    logits), where it has one: every logit it clips to 0 passes no gradient, and a class whose
    logit is clipped for every input is never learned (its score stays 0 while the others' can
    only rise). Peer benchmarks' "ReLU on the last layer" bug (peersweep6)."""
    if result.on_probabilities or result.squashed is not None or _loss_kind(result) not in PROBABILITY_LOSSES:
        return None
    unit = _output_activation(result)
    return unit if unit.activation == "relu" and "active_fraction" in unit.values else None


def bounded_softmax_input(result: SimulationResult) -> str | None:
    """The bounded activation (sigmoid, tanh) a live module's forward applies right before its own
    softmax or log_softmax (``SimulationResult.squash_before_softmax``), under a cross-entropy with
    no squash of its own already judged: the logits that softmax sees lie in its range, so the
    loss has the floor a forward ending in the sigmoid has (modsweep35 u08:
    ``F.log_softmax(F.sigmoid(self.fc2(x)))`` under nll_loss, 1.46 for 10 classes)."""
    if result.squashed is not None or result.on_probabilities or _loss_kind(result) != "cross_entropy":
        return None
    return result.squash_before_softmax


def clipped_output(result: SimulationResult) -> UnitStats | None:
    """The output activation ``output_loss_mismatch`` judges for its clip or range (a bounded
    regression output, a ReLU under a loss on logits): the dead-unit rules leave it to that."""
    return clipped_regression_output(result) or relu_logits_output(result)


def _relu_output(result: SimulationResult) -> UnitStats | None:
    """A ReLU output whose clipped outputs are measured: :func:`clipped_regression_output`'s, or
    :func:`relu_logits_output`."""
    unit = clipped_regression_output(result)
    return unit if unit is not None and unit.activation == "relu" else relu_logits_output(result)


#: Weights whose spread is below this share of their size are all equal (a constant initialiser).
#: The spread comes from sums (sqrt(mean square - mean^2)), where the cancellation turns a relative
#: rounding d of the sums into sqrt(2d) of spread: ~1e-8 from float64 sums, ~5e-4 from float32
#: ones (msweep7's constant 128x96 layer read 1.4e-7). Units 1e-3 apart are copies in all but name.
EQUAL_WEIGHTS = 1e-3


def equal_weight_layers(result: SimulationResult) -> list[UnitStats]:
    """The layers of more than one unit whose weights all have one nonzero value."""
    out = []
    for u in result.units:
        if not u.has_weights or "weight_std" not in u.values or "weight_rms" not in u.values or (u.fan_out or 0) < 2:
            continue
        rms = u.mean("weight_rms")
        if rms > 0 and math.isfinite(rms) and u.mean("weight_std") <= EQUAL_WEIGHTS * rms:
            out.append(u)
    return out


#: The layer kinds whose weight rows are their units, each over all of the same inputs (a Linear's
#: outputs, a convolution's filters): equal rows (and biases) are copies of one unit.
ROW_UNIT_TYPES = frozenset({"linear", "conv1d", "conv2d", "conv3d"})

#: The share of a layer's units that are redundant copies (units beyond the first of each group of
#: equal ones) from which symmetric_weights warns: the layer then does the work of at most half its
#: units, for good (:class:`SymmetricWeights`); fewer copies are a note.
DUPLICATE_UNITS_WARNING = 0.5


def duplicate_unit_layers(result: SimulationResult) -> list[tuple[UnitStats, list[list[int]], float]]:
    """(layer, its groups of copies, the share of its units that are redundant copies) for each
    Linear or convolution with units whose incoming weights (two or more) and bias are exactly equal
    and not all zero (:attr:`SimulationResult.duplicates`), most redundant first."""
    out = []
    for u in result.units:
        groups = result.duplicates.get(u.name)
        if not groups or u.type not in ROW_UNIT_TYPES or not u.has_weights or u.readout:
            continue
        units = u.values.get("row_units")
        if units is None or not np.any(np.isfinite(units)) or (u.fan_in or 0) < 2:
            continue  # (one weight per unit: two equal by chance is possible in a trained float model)
        redundant = sum(len(g) - 1 for g in groups) / max(int(np.nanmax(units)), 1)
        out.append((u, groups, redundant))
    return sorted(out, key=lambda x: -x[2])


class SymmetricWeights(ArchitectureRule):
    """A layer whose weights all start at one nonzero value (Keras' ``Ones`` or ``Constant``
    initialiser, a DeepCrime mutant): its units are copies of one another and stay so, as each
    gets the same gradient. (All zero is vanishing_gradient's: no gradient passes such a layer.)

    More generally, units of a Linear or convolution that are exact copies of one another (equal
    incoming weight rows, or filters, and equal bias) compute the same output for every input. Row
    i's gradient is delta_i x^T, so copies get the same gradient, and the same update under any
    gradient method (SGD, momentum, Adam, whose per-weight moments are then equal too), wherever
    what reads them weighs them alike (equal outgoing weights, a constant next layer): then they
    stay copies forever and the layer does the work of its distinct units only. Where it does not
    (random outgoing weights, or logits of different classes under cross-entropy, whose gradients
    p_i - y_i differ), they start as copies and separate only along what their deltas differ by:
    a degenerate start, not a random one (peersweep16 u11: Dense(11) with all-ones weights but two
    zero rows, 9 copies of one unit). Exact equality of rows of two or more floats is no chance of a
    random init or of training (a constant initialiser with a few rows overwritten, or rows copied,
    made it), so any group is reported: a note, and a warning where the copies beyond the first of
    each group are :data:`DUPLICATE_UNITS_WARNING` (half) of the layer's units or more, so that at
    the start the layer does the work of at most half its width. Rows of all-zero weights are left
    out (a unit that reads nothing is dead_units' business), and layers whose every weight is one
    value keep the error above."""

    code = "symmetric_weights"
    remedies = (new_inits,)

    def measure(self, result: SimulationResult) -> float:
        equal = equal_weight_layers(result)
        if equal:
            return float(len(equal))
        copies = duplicate_unit_layers(result)
        return copies[0][2] if copies else 0.0

    def measured_metric(self, result: SimulationResult, t: Thresholds) -> str | None:
        return "equal_weight_layers" if equal_weight_layers(result) else "duplicate_unit_fraction"

    def measure_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        if metric == "equal_weight_layers":
            return float(len(equal_weight_layers(result)))  # (none: 0 layers of one value)
        if metric == "duplicate_unit_fraction":
            copies = duplicate_unit_layers(result)
            return copies[0][2] if copies else 0.0
        return None

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        if equal_weight_layers(result):
            return "error" if value >= 1 else None
        if value <= 0:
            return None
        return "warning" if value >= DUPLICATE_UNITS_WARNING else "info"

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        layers = equal_weight_layers(result)
        if not layers:
            return self._copies(severity, value, result)
        first = layers[0]
        # each layer's own value and unit count: one layer's were read as every layer's (peersweep21
        # nl_mix_bugs_3: "(0.1 and so on): its 512 units" of dense_7 (512 units) and dense_9 (10))
        sizes = [f"{u.mean('weight_rms'):.3g}" for u in layers]
        value_words = (sizes[0] if len(layers) == 1 else f"{sizes[0]} in each" if len(set(sizes)) == 1
                       else ", ".join(f"{layer_words(u)} {v}" for u, v in zip(layers, sizes, strict=True)))
        # (a convolution's fan_out counts its kernel's positions too: its units are its channels)
        if len(layers) == 1:
            units = ("its " + (f"{first.fan_out} units" if first.type == "linear" else "units (output channels)")
                     + " compute the same and stay copies of one another")
        else:
            counts = ", ".join(f"{layer_words(u)}'s {u.fan_out}" if u.type == "linear" else
                               f"{layer_words(u)}'s output channels" for u in layers)
            units = (f"each layer's units ({counts if len(layers) <= 3 else 'a convolution: its output channels'}) "
                     "compute the same and stay copies of one another")
        return Detection(
            self.code, severity, "equal_weight_layers", value,
            f"every weight of {_named(layers)} is the same value ({value_words}): {units}",
            "A layer whose weights all start equal gives each of its units the same input weights, so every unit "
            "computes the same output and receives the same gradient: no step can make them differ (the symmetry "
            "random initialisation exists to break), and the layer is as good as one unit wide. A large constant also "
            "scales the signal by about fan_in times it. Initialise the weights randomly (He for ReLU-family "
            "activations, Xavier for tanh and sigmoid).",
            {"metric": "equal_weight_layers", "value": value, "threshold": 1.0,
             "layers": [u.name for u in layers], "values": {u.name: u.mean("weight_rms") for u in layers}},
            layers)

    def _copies(self, severity: str, value: float, result: SimulationResult) -> Detection:
        """The finding for units that are exact copies in layers whose weights are not all one value."""
        found = duplicate_unit_layers(result)
        first, groups, redundant = found[0]
        copies = sum(len(g) for g in groups)
        units = int(np.nanmax(first.values["row_units"]))
        what = "units" if first.type == "linear" else "filters (output channels)"
        distinct = units - copies + len(groups)
        shown = "; ".join("[" + ", ".join(map(str, g[:12])) + (", ..." if len(g) > 12 else "") + "]"
                          for g in groups[:5]) + ("; ..." if len(groups) > 5 else "")
        others = f" (and {len(found) - 1} more layer(s))" if len(found) > 1 else ""
        state = ("" if severity != "info" else
                 "; a note: the rest of the layer is distinct")
        return Detection(
            self.code, severity, "duplicate_unit_fraction", value,
            f"{copies} of the {units} {what} of {_layer_named(first)} are exact copies of one another "
            f"({len(groups)} group(s) of equal weights and bias: {shown}){others}: they compute the same, so "
            f"the layer starts as {distinct} {what}{state}",
            "Units with equal incoming weights and equal bias compute the same output for every input. A row's "
            "gradient is its unit's delta times the input, so copies get the same gradient, and every optimizer "
            "(SGD, momentum, Adam, whose per-weight moments are then equal too) the same update, wherever what "
            "reads them weighs them alike (equal outgoing weights): then no step can make them differ, the "
            "symmetry random initialisation exists to break, and the copies add parameters and no width. Where "
            "the next layer's weights (or the loss's classes) differ for them, they separate only along what "
            "their gradients differ by, from a degenerate start. Exactly equal rows of floats do not arise by "
            "chance from a random init or from training: a constant initialiser with a few rows overwritten, or "
            "rows copied from one another, made them. Initialise the weights randomly (He for ReLU-family "
            "activations, Xavier for tanh and sigmoid).",
            {"metric": "duplicate_unit_fraction", "value": value, "threshold": DUPLICATE_UNITS_WARNING,
             "layers": [u.name for u, _, _ in found],
             "duplicate_units": {u.name: round(float(np.nanmax(u.values["duplicate_unit_fraction"])), 6)
                                 for u, _, _ in found},
             "redundant_fraction": {u.name: round(r, 6) for u, _, r in found},
             "groups": {u.name: [g[:50] for g in gs[:20]] for u, gs, _ in found},
             "units": units, "distinct_units": distinct},
            [u for u, _, _ in found])


#: A batch norm over this few values a channel or fewer outputs +-1 whatever its input (error);
#: under :data:`FEW_BATCH_VALUES` its statistics are mostly noise (warning).
DEGENERATE_BATCH_VALUES = 2
FEW_BATCH_VALUES = 8


class SmallBatchStatistics(ArchitectureRule):
    """A live module's training-mode batch norm that normalises over a handful of values per
    channel (the example batch times the positions): 2 make it a sign function, a few make its
    statistics noise, and the rest of the check then describes that network, not the one trained."""

    code = "small_batch_statistics"
    remedies = (per_sample_norm,)

    def measure(self, result: SimulationResult) -> float:
        return float(min(result.batch_statistics.values())) if result.batch_statistics else math.nan

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        return "error" if value <= DEGENERATE_BATCH_VALUES else "warning" if value < FEW_BATCH_VALUES else None

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        few = [(name, n) for name, n in result.batch_statistics.items() if n < FEW_BATCH_VALUES]  # forward order
        names = [name for name, _ in few]
        n = int(value)
        its = "its" if len(names) == 1 else "their"
        what = (f"{its} output is +-1 whatever {its} input (a sign function)" if n <= DEGENERATE_BATCH_VALUES
                else f"{its} mean and variance are mostly noise")
        return Detection(
            self.code, severity, "batch_values_per_channel", value,
            f"{batch_norms_named(names)} normalise{'s' if len(names) == 1 else ''} over only {n} value(s) per channel "
            f"at this batch ({result.batch_size} sample(s)): {what}",
            f"A batch norm in training mode normalises each channel over the batch times the positions; over "
            f"{n} value(s) {what.replace('their', 'its')}, so what it passes on says little about its input and its gradient is dominated "
            "by near-ties. The other findings describe the network at this batch. If the training batch is this "
            "small, use a norm that works per sample (GroupNorm, LayerNorm); if it is larger, check with a batch "
            "of the size you train with (16 or more).",
            {"metric": "batch_values_per_channel", "value": value, "threshold": float(FEW_BATCH_VALUES),
             "layers": names, "values_per_channel": dict(few[:20]),
             "batch_size": result.batch_size},
            [])


def sigmoids_under_cross_entropy(result: SimulationResult) -> bool:
    """Sigmoid outputs, two or more, under a categorical cross-entropy on probabilities (Keras
    normalises them by their sum): the classic forgotten softmax with the wrong activation."""
    unit = _output_activation(result)
    return (result.on_probabilities and result.squashed is None and _loss_kind(result) == "cross_entropy"
            and unit.activation == "sigmoid" and (output_width(result) or 0) >= 2)


def softmax_under_binary_loss(result: SimulationResult) -> int | None:
    """k, where the output is a softmax over k > 2 units under binary cross-entropy on probabilities
    (Keras' classic ``Dense(k, "softmax")`` compiled with ``binary_crossentropy``; torch's nn.BCELoss
    on a softmax): the loss scores each unit as an independent probability while the softmax ties
    them to sum 1. Over 2 units, on one-hot targets, the two terms are one sigmoid's (p_2 = 1 - p_1):
    no mismatch."""
    k = output_layer(result).fan_out or 0
    if (result.on_probabilities and result.squashed is None and _loss_kind(result) == "binary_cross_entropy"
            and _output_activation(result).activation == "softmax" and k > 2 and not no_output_gradient(result)):
        return k
    return None


def output_saturation(result: SimulationResult, together: bool = False) -> float:
    """The largest share, over seeds, of the output activation's units in their flat tails (with
    ``together``, of its rows whose every sigmoid is near 1) (0 when the simulation did not measure it)."""
    values = _output_activation(result).values.get("saturated_together_fraction" if together
                                                   else "saturated_fraction")
    if values is None or not np.any(np.isfinite(values)):
        return 0.0
    return float(np.nanmax(values))


def _silent_share(result: SimulationResult) -> float:
    """The share of the batch the loss's clip gives no gradient, over the seeds that measured one."""
    seeds = [s for s in result.silent if not math.isnan(s)]
    return sum(seeds) / len(seeds) if seeds else math.nan


def _weak_on_confident_errors(activation: str, loss: str, evidence: dict[str, Any]) -> tuple[str, str] | None:
    """(a clause for the summary, sentences for the explanation) on a softmax under mse fitted to
    probability targets: the loss's gradient on a sample's logits fades as the sample is confidently
    wrong, where cross-entropy's does not; None for another activation or loss (mae's and huber's
    are bounded otherwise; a log_softmax's values are not probabilities). Marks ``evidence``."""
    if activation != "softmax" or loss != "mse":
        return None
    evidence["weak_gradient_when_confidently_wrong"] = True
    return ("; and mse on a softmax passes almost no gradient for a sample it gets confidently wrong: "
            "cross-entropy is the usual pairing for a classifier",
            " Mse on a softmax also learns least from the samples it gets most wrong: its gradient on the "
            "logits passes through the softmax's Jacobian p_i(δ_ij − p_j), which vanishes as the output "
            "nears one-hot, so a sample that gives its class probability p near 0 (another class near 1) "
            "gets about 4p on that class's logit, where cross-entropy's, p − 1, is about −1. Cross-entropy "
            "(on the logits, or on the softmax's probabilities with from_logits=False) is the usual pairing "
            "for a softmax classifier.")


def _raw_probabilities_explanation(loss: str) -> str:
    """Why a loss on probabilities (from_logits=False) over raw outputs (no softmax or sigmoid)
    silences part of the batch, for the loss in use: binary cross-entropy clips each output on its
    own, categorical cross-entropy divides a row by its sum first (peersweep20 dm57407973: a
    one-unit binary model was told of the sum, which only the categorical loss takes)."""
    if loss == "binary_cross_entropy":
        return (
            "With from_logits=False the loss expects probabilities, but this output has no sigmoid. Keras' "
            "binary cross-entropy clips each raw output to [1e-7, 1 - 1e-7] and takes the logs of it and of one "
            "minus it: an output at or below 0 or at or above 1 is clipped, and the clip passes no gradient, so "
            "those outputs teach nothing, and a unit that stays out of (0, 1) for every sample stops learning. "
            "The loss stalls or jumps; the model learns slowly if at all. End the model with a sigmoid, or keep "
            "the output linear and compute the loss on logits (from_logits=True; torch's BCEWithLogitsLoss).")
    return (
        "With from_logits=False the loss expects probabilities, but this output has no softmax or sigmoid. "
        "Keras' categorical cross-entropy divides the raw outputs by their sum and clips them to "
        "[1e-7, 1 - 1e-7]: a sample whose output for its class is negative, zero or over its row's sum is "
        "clipped, and the clip passes no gradient, so those samples teach nothing and the rest get gradients "
        "scaled by 1 / their sum. The loss stalls or jumps; the model learns slowly if at all. End the model "
        "with a softmax, or keep the output linear and compute the loss on logits (from_logits=True; torch's "
        "CrossEntropyLoss).")


class OutputLossMismatch(ArchitectureRule):
    """A loss on probabilities (``from_logits: false``) whose clip gives part of the batch no
    gradient: the last layer does not output probabilities."""

    code = "output_loss_mismatch"
    remedies = (logits_loss, linear_output, binary_loss, sigmoid_multilabel_output)

    def measure(self, result: SimulationResult) -> float:
        if no_output_gradient(result):
            return 1.0
        if result.squashed is not None:
            # a forward's own softmax or sigmoid under cross-entropy: either way the loss's softmax
            # sees logits in [0, 1], one per class
            return squashed_floor_fraction(result)
        before = bounded_softmax_input(result)
        if before is not None:
            return unreachable_fraction(before, "softmax", output_width(result) or 1)
        simplex = simplex_regression_output(result)
        if simplex is not None:
            return float(simplex_reach(result, *simplex)["value"])
        relu = _relu_output(result)
        if relu is not None:
            return 1.0 - float(np.nanmean(relu.values["active_fraction"]))
        bounded = clipped_regression_output(result)
        if bounded is not None and bounded.activation is not None:
            return unreachable_targets(result, bounded)
        k = softmax_under_binary_loss(result)
        if k is not None:
            return float(k)  # the softmax's units, all tied to one sum (the evidence keeps the clip's share)
        return _silent_share(result)

    def measured_metric(self, result: SimulationResult, t: Thresholds) -> str | None:
        """:meth:`measure`'s figure on ``result``, branch by branch, as :meth:`describe` names it."""
        if no_output_gradient(result):
            return "silent_sample_fraction"
        if result.squashed is not None or bounded_softmax_input(result) is not None:
            return "unreachable_loss_fraction"
        if simplex_regression_output(result) is not None:
            return "unreachable_target_fraction"
        if _relu_output(result) is not None:
            return "clipped_output_fraction"
        bounded = clipped_regression_output(result)
        if bounded is not None and bounded.activation is not None:
            return "unreachable_target_fraction"
        if softmax_under_binary_loss(result) is not None:
            return "softmax_units_under_binary_loss"
        return "silent_sample_fraction"

    def measure_as(self, metric: str, result: SimulationResult, t: Thresholds) -> float | None:
        """Each figure on a network that may lack what it is about: none of it there is 0 (no
        output squashed before a loss on logits sets no floor, a linear output clips nothing and
        reaches every target)."""
        silent = no_output_gradient(result)
        if metric == "silent_sample_fraction":
            return 1.0 if silent else _silent_share(result)
        if silent:
            return None  # no gradient reaches the output: a floor or a reach is no figure of it
        if metric == "unreachable_loss_fraction":
            if result.squashed is not None:
                return squashed_floor_fraction(result)
            before = bounded_softmax_input(result)
            return unreachable_fraction(before, "softmax", output_width(result) or 1) if before is not None else 0.0
        if metric == "clipped_output_fraction":
            relu = _relu_output(result)
            return 1.0 - float(np.nanmean(relu.values["active_fraction"])) if relu is not None else 0.0
        if metric == "unreachable_target_fraction":
            simplex = simplex_regression_output(result)
            if simplex is not None:
                return float(simplex_reach(result, *simplex)["value"])
            bounded = clipped_regression_output(result)
            if bounded is not None and bounded.activation is not None:
                return unreachable_targets(result, bounded)
            return 0.0 if _relu_output(result) is None else None
        return None

    def assess(self, value: float, result: SimulationResult, t: Thresholds) -> str | None:
        if simplex_regression_output(result) is not None and not no_output_gradient(result):
            # a distribution under a regression loss: an error where (nearly) no target given lies in
            # its simplex, as for a bounded output; a note where none were given (a softmax under mse
            # fits one-hot labels: a classifier trained so) or where they are in reach
            if value >= UNREACHABLE_TARGETS_ERROR:
                return "error"
            return "warning" if value >= UNREACHABLE_TARGETS_WARNING else "info"
        relu = _relu_output(result)
        if relu is not None and relu is relu_logits_output(result):
            # a ReLU under a loss on logits is never right (a logit is a log-odds, negative as
            # often as not): a risk whatever it clips at init, an error where a class's logit is
            # off for the whole batch in some seed and that class can never be learned
            dead = relu.values.get("dead_fraction")
            if result.loss_implied:
                # ... but the cross-entropy is the check's own guess for a file that states no loss
                # (onnxsweep24: a 100-layer He ReLU stack, a feature extractor, an autoencoder ending
                # in a ReLU): a question to the user, graded as a sigmoid head's guessed loss is (a note)
                return "info"
            return "error" if dead is not None and float(np.nanmax(dead)) > 0.0 else "warning"
        if relu is not None:
            # a ReLU output is a choice some make for targets >= 0 (counts, prices): an error where
            # the whole output is off in some seed and nothing learns; a warning where it clips a
            # share of the outputs (the evidence's value, against the silent-loss line) or leaves
            # targets out of reach (those below 0: half the standard-normal ones simulated when the
            # targets' range is not given); a note where the targets are known to lie at or above 0
            # and it clips under that line: its risk (the unit pushed off for every input) is one
            # training may never take (kerassweep19 h06: a trained LSTM regressor's ReLU, targets in
            # [0, 1], clips 0% and was a warning beside a metric of 0.0 against 0.05)
            if float(np.nanmax(1.0 - relu.values["active_fraction"])) >= 1.0:
                return "error"
            out_of_reach = unreachable_target_fraction("relu", target_range(result))
            if out_of_reach >= UNREACHABLE_TARGETS_ERROR:
                return "error"  # every target below 0: none can be reached
            return "warning" if value >= t.silent_loss_warning or out_of_reach > 0.0 else "info"
        if clipped_regression_output(result) is not None:
            # a bounded output (a sigmoid's (0, 1)): a risk where it cannot reach about half of
            # zero-centred targets, a note for a symmetric range (a tanh's), right for scaled targets;
            # an error where it reaches (nearly) none of them: it cannot fit at all
            if value >= UNREACHABLE_TARGETS_ERROR:
                return "error"
            if value <= 0.0 and judged_as_reconstruction(result):
                # a reconstruction whose targets (its inputs, or those given) all lie in its range:
                # the output is right for them, as it was when left unjudged (kerassweep20 h05)
                return None
            if (judged_as_reconstruction(result) and not result.reconstruction_range_given
                    and target_range(result) is None and result.target_values is None):
                # its inputs are the simulation's standard normal, not the data: a sigmoid
                # autoencoder's data is most often in [0, 1] by design (an MNIST VAE), so what the
                # draw leaves out of reach is a note that asks for --input-range, not a warning
                return "info"
            return "warning" if value >= UNREACHABLE_TARGETS_WARNING else "info"
        if softmax_under_binary_loss(result) is not None:
            # multi-hot targets out of reach, one-hot ones scored k times: a warning, an error where
            # Keras' clip also silences that share of the batch
            silent = t.fraction(_silent_share(result), t.silent_loss_warning, t.silent_loss_error)
            return "error" if silent == "error" else "warning"
        severity = t.fraction(value, t.silent_loss_warning, t.silent_loss_error)
        if severity is None and sigmoids_under_cross_entropy(result):
            # Keras divides the sigmoids by their sum: each logit's gradient is (s_j/S - [j=t])(1 - s_j),
            # the softmax's scaled by 1 - s_j, about half at initialisation (peersweep4 measured 0.44-0.51);
            # the trap is the sigmoids saturating towards 1 together, where the loss stalls at ln k
            return "warning" if output_saturation(result, together=True) >= t.saturation_warning else "info"
        if (severity is None and result.on_probabilities and result.squashed is None
                and _output_activation(result).activation not in ("sigmoid", "softmax")):
            # an output with no softmax or sigmoid under a loss on probabilities is the mismatch
            # whatever share of this draw's batch the clip happens to hold (3% on one file's stored
            # weights, 29% re-initialised)
            return "warning"
        return severity

    def describe(
        self, severity: str, value: float, result: SimulationResult, t: Thresholds
    ) -> Detection:
        last = output_layer(result)
        loss = _loss_kind(result) or "the loss"
        # the output's own activation, or a separate activation layer after it (Keras' Activation)
        tail = result.units[-1]
        act = (tail.activation if tail is not last and not tail.has_weights and tail.activation
               else last.activation) or "identity"
        evidence = {
            "metric": "silent_sample_fraction",
            "value": value,
            "threshold": t.silent_loss_warning,
            "layers": [last.name],
            "loss": loss,
            "from_logits": False,
            "output_activation": act,
            "silent_by_seed": [fmt(x) for x in result.silent],
        }
        what = "samples" if loss == "cross_entropy" else "outputs"
        before = bounded_softmax_input(result)
        if before is not None and not no_output_gradient(result):
            classes = output_width(result) or 1
            floor = value * math.log(max(classes, 2))
            low, high = BOUNDS.get(before, (0.0, 1.0))
            evidence.update(metric="unreachable_loss_fraction", from_logits=True, output_activation=before,
                            loss_floor=floor, classes=classes, silent_by_seed=[], in_forward=True,
                            before_softmax=True, logit_range=[low, high])
            return Detection(
                self.code, severity, "unreachable_loss_fraction", value,
                f"the forward's softmax reads {layer_words(last)}'s outputs through a {before}: its logits lie in "
                f"[{low:g}, {high:g}], so {loss} can never fall below {floor:.3g} ({value:.0%} of its value at chance)",
                f"A softmax (or log_softmax) turns logits into probabilities, and only logits far apart make a "
                f"confident one. A {before} before it holds every logit in [{low:g}, {high:g}], at most "
                f"{high - low:g} apart, so even the best output gives the right one of {classes} classes "
                f"e^{high - low:g} / (e^{high - low:g} + {classes - 1}) of the probability, the loss stalls "
                f"at {floor:.3g}, and the gradient reaching the network is scaled down by the {before}'s slope. "
                f"Drop the {before}: the softmax makes the probabilities from raw logits.",
                evidence, [last])
        if result.squashed is not None and not no_output_gradient(result):
            classes = output_width(result) or 1
            own = _second_squash(result)
            floor = value * (math.log(2) if own == "sigmoid" else math.log(max(classes, 2)))
            low, high = squash_range(result)
            span = f"values in [{low:g}, {high:g}]"
            evidence.update(metric="unreachable_loss_fraction", from_logits=True, output_activation=result.squashed,
                            loss_floor=floor, classes=classes, silent_by_seed=[])
            if result.plan is not None:  # a spec: its last layer's activation under a loss on logits
                return Detection(
                    self.code, severity, "unreachable_loss_fraction", value,
                    f"{layer_words(last)} ends in {result.squashed} and {loss} takes logits (from_logits: true, the "
                    f"default), applying its own {own}: the loss can never fall below {floor:.3g} ({value:.0%} "
                    "of its value at chance)",
                    f"A loss on logits applies its own {own}; given outputs that went through a "
                    f"{result.squashed} already ({span}), it sees logits at most {high - low:g} apart, so the "
                    "model can never be confident and the gradient reaching the network is scaled down by the "
                    f"{result.squashed}'s slope. The model trains slowly and stalls high.",
                    evidence, [last])
            if result.squashed_in_forward:
                evidence.update(in_forward=True, logit_range=[low, high])
                return Detection(
                    self.code, severity, "unreachable_loss_fraction", value,
                    f"the forward returns a {result.squashed} (after {layer_words(last)}) and {loss} applies its own "
                    f"{own} to it: "
                    f"the loss can never fall below {floor:.3g} ({value:.0%} of its value at chance)",
                    ("torch's binary cross-entropy on logits (nn.BCEWithLogitsLoss, "
                     "F.binary_cross_entropy_with_logits) applies a sigmoid itself; given probabilities (values "
                     "in [0, 1]) it sees logits in [0, 1], so the model can never be confident (at best "
                     "sigmoid(1) = 0.73 for a positive, and never below 0.5 for a negative) and the gradient "
                     "reaching the network is scaled down by the first sigmoid's slope (at most 1/4). The model "
                     "trains slowly and stalls high."
                     + (" check_module's loss=\"binary_cross_entropy\" is this loss on logits; a model that trains "
                        "its sigmoid with nn.BCELoss (F.binary_cross_entropy, on probabilities) already is checked "
                        "with loss=\"binary_cross_entropy_probs\"." if last.pointer.startswith("module:") else "")
                     if own == "sigmoid" and result.squashed == "sigmoid" else
                     "torch's binary cross-entropy on logits (nn.BCEWithLogitsLoss, "
                     f"F.binary_cross_entropy_with_logits) applies a sigmoid itself; given the {result.squashed}'s "
                     f"outputs ({span}) it sees logits in that range, so the model can never be confident (at best "
                     f"sigmoid({high:g}) = {1 / (1 + math.exp(-high)):.3g} for a positive and sigmoid({low:g}) = "
                     f"{1 / (1 + math.exp(-low)):.3g} for a negative) and the gradient reaching the network is scaled "
                     f"down by the {result.squashed}'s slope. The model trains slowly and stalls high: return the raw "
                     f"scores (drop the {result.squashed})."
                     if own == "sigmoid" else
                     "torch's cross-entropy (nn.CrossEntropyLoss, F.cross_entropy) takes logits and applies "
                     "log_softmax itself; given probabilities (values in [0, 1]) it sees logits at most 1 apart, "
                     "so the model can never be confident (at best e / (e + k - 1) for the right one of k "
                     "classes) and the gradient reaching the network is scaled down by the first softmax's "
                     "slope. The model trains slowly and stalls high."
                     if result.squashed in ("softmax", "sigmoid") and (low, high) == (0.0, 1.0) else
                     "torch's cross-entropy (nn.CrossEntropyLoss, F.cross_entropy) takes logits and applies "
                     f"log_softmax itself; given the {result.squashed}'s outputs ({span}) it sees logits at most "
                     f"{high - low:g} apart, so the model can never be confident (at best e^{high - low:g} / "
                     f"(e^{high - low:g} + k - 1) of the probability for the right one of k classes, a loss floor of "
                     f"{floor:.3g} for these {classes}) and the gradient reaching the network is scaled down by the "
                     f"{result.squashed}'s slope. The model trains slowly and stalls high: return the raw "
                     f"scores (drop the {result.squashed})."),
                    evidence, [last])
            if own != result.squashed:
                # a bounded head under the other loss on logits (a sigmoid or tanh under a softmax
                # cross-entropy, a tanh under binary cross-entropy): not the same squash twice, but
                # logits held in the activation's range (kerassweep29 cad_sigmoid_from_logits)
                evidence.update(logit_range=[low, high])
                best = (f"at best e^{high - low:g} / (e^{high - low:g} + {classes - 1}) of the probability for the "
                        f"right one of {classes} classes" if own == "softmax" else
                        f"at best sigmoid({high:g}) = {1 / (1 + math.exp(-high)):.3g} for a positive and "
                        f"sigmoid({low:g}) = {1 / (1 + math.exp(-low)):.3g} for a negative")
                return Detection(
                    self.code, severity, "unreachable_loss_fraction", value,
                    f"{loss} is compiled on logits (from_logits=True) and applies its own {own}, but "
                    f"{layer_words(last)} ends in {result.squashed}: its logits lie in [{low:g}, {high:g}], so the "
                    f"loss can never fall below {floor:.3g} ({value:.0%} of its value at chance)",
                    f"A loss on logits applies its own {own} to the raw scores; given the {result.squashed}'s "
                    f"outputs ({span}) it sees logits at most {high - low:g} apart, so the model can never be "
                    f"confident ({best}), the loss stalls at {floor:.3g} or above, and the gradient reaching the "
                    f"network is scaled down by the {result.squashed}'s slope. Drop the {result.squashed} "
                    "(activation linear): the loss makes the probabilities from the raw logits.",
                    evidence, [last])
            return Detection(
                self.code, severity, "unreachable_loss_fraction", value,
                f"{loss} is compiled on logits (from_logits=True) but {layer_words(last)} ends in {result.squashed}: "
                f"the {result.squashed} runs twice and the loss can never fall below {floor:.3g} "
                f"({value:.0%} of its value at chance)",
                f"A loss on logits applies its own {result.squashed}; given outputs that went through one already "
                f"(values in [0, 1]), it sees logits at most 1 apart, so the model can never be confident "
                f"(at best e / (e + k - 1) for the right one of k classes) and the gradient reaching the "
                f"network is scaled down by the first {result.squashed}'s slope. Keras warns about this "
                f"(\"received from_logits=True, but the output argument was produced by a Softmax\"); the "
                f"model trains slowly and stalls high.",
                evidence, [last])
        simplex = simplex_regression_output(result)
        if simplex is not None and not no_output_gradient(result):
            return self._simplex(severity, value, result, evidence, *simplex)
        bounded = clipped_regression_output(result)
        if bounded is not None and bounded.activation != "relu" and bounded.activation is not None:
            low, high = bounded_range(bounded)
            # a chain of activations ends the network (a ReLU then a Sigmoid): named together, as
            # its range is theirs composed, not the last one's alone
            chained = (bounded is not last and last.activation is not None
                       and bounded.output_range is not None and bounded.output_range != OUTPUT_RANGES[bounded.activation])
            act_words = f"{last.activation} then {bounded.activation}" if chained else bounded.activation
            given = target_range(result)
            values = result.target_values
            passed = values is not None and len(values) > 0
            described, targets = _targets_words(result)
            evidence.update(metric="unreachable_target_fraction", threshold=UNREACHABLE_TARGETS_WARNING,
                            error_threshold=UNREACHABLE_TARGETS_ERROR,
                            from_logits=None, output_activation=bounded.activation, output_range=[low, high],
                            targets=described, silent_by_seed=[])
            if values is not None and passed:
                evidence["targets_passed"] = len(values)
            if passed and value <= 0.0:
                return Detection(
                    self.code, severity, "unreachable_target_fraction", value,
                    f"{_outputs_through(last, bounded, bounded.activation)} under {loss}; {targets} all lie "
                    f"within its range [{low:g}, {high:g}]: every target is in reach",
                    f"A {act_words} output holds the predictions to [{low:g}, {high:g}], which covers the "
                    f"targets given, so the regression can fit them. Each gradient still goes through the "
                    f"{bounded.activation}'s slope, which fades as outputs near a bound: for 0/1 labels, binary "
                    "cross-entropy on the same output cancels that slope and trains faster.",
                    evidence, [bounded])
            if given is not None and not passed and value <= 0.0:
                return Detection(
                    self.code, severity, "unreachable_target_fraction", value,
                    f"{_outputs_through(last, bounded, bounded.activation)} under {loss}; the targets lie in "
                    f"[{given[0]:g}, {given[1]:g}] (loss.target_range), within its range [{low:g}, {high:g}]: "
                    "every target is in reach",
                    f"A {act_words} output holds the predictions to [{low:g}, {high:g}], which covers the "
                    f"targets, so the regression can fit them. Each gradient still goes through the "
                    f"{bounded.activation}'s slope, which fades as outputs near a bound: for 0/1 labels, binary "
                    "cross-entropy on the same output cancels that slope and trains faster.",
                    evidence, [bounded])
            if severity == "info":
                return Detection(
                    self.code, severity, "unreachable_target_fraction", value,
                    f"{_outputs_through(last, bounded, bounded.activation)} under {loss}: every prediction "
                    f"stays in [{low:g}, {high:g}], out of reach of {value:.0%} of {targets}; "
                    "right for targets scaled into that range",
                    f"A {act_words} output bounds a regression's predictions to [{low:g}, {high:g}]. "
                    "Targets scaled into that range are fitted, and the range is symmetric, so zero-centred "
                    "targets are not cut off on one side; targets beyond it cannot be reached, and as outputs "
                    f"near the bounds the {bounded.activation}'s slope, and with it the gradient, fades. End "
                    "with no activation for unscaled targets.",
                    evidence, [bounded])
            return Detection(
                self.code, severity, "unreachable_target_fraction", value,
                f"{_outputs_through(last, bounded, bounded.activation)} under {loss}: every prediction stays "
                f"in [{low:g}, {high:g}], so {value:.0%} of {targets} are out of reach",
                f"A regression loss needs outputs free to reach the targets. A {act_words} on the "
                f"output holds every prediction in [{low:g}, {high:g}]: targets outside it (any that are not "
                "scaled into it: unscaled prices, standardised values below 0) cannot be reached, the loss "
                f"stalls high, and as outputs near a bound the {bounded.activation}'s slope, and with it every "
                "gradient, fades. End a regression with no activation, or scale the targets into the range."
                + (f" Here the {last.activation} before the {bounded.activation} narrows its range to "
                   f"[{low:g}, {high:g}] (the {bounded.activation} of the {last.activation}'s outputs): drop "
                   f"the {last.activation} and the {bounded.activation} reaches its whole range."
                   if chained else "")
                + (" The targets of a reconstruction are its inputs: inputs already in the range (pixels in "
                   "[0, 1]) are in reach: say so with --input-range 0,1 for a file (input_range over HTTP) or "
                   "check_module's input_range=(0, 1)." if reconstructed(result) is not None else
                   "" if given is not None or passed else
                   " Targets already in the range (0/1 labels) are in reach: say so with the spec's "
                   "loss.target_range, --target-range 0,1 for a Keras file (with --loss mse where the file compiled "
                   "no loss: the range is refused beside a loss the check implied; target_range over HTTP), "
                   "check_module's targets= (example targets) or target_range=, or "
                   "compile the Keras model with an accuracy metric, which implies 0/1 labels."),
                evidence, [bounded])
        relu = _relu_output(result)
        if relu is not None and relu is relu_logits_output(result):
            dead = relu.values.get("dead_fraction")
            # the output's width, not the layer's fan_out (a convolution's counts its kernel too); a
            # unit dead for every sample and position is that share of the outputs
            classes = output_width(result) or 0
            dead_units = [round(float(x) * classes) for x in dead] if dead is not None and classes else []
            evidence.update(metric="clipped_output_fraction", from_logits=True, output_activation="relu",
                            clipped_by_seed=[round(1.0 - float(x), 6) for x in relu.values["active_fraction"]],
                            classes=classes, dead_output_units_by_seed=dead_units, silent_by_seed=[])
            never = (f"; {max(dead_units)} of the {classes} outputs are 0 for every sample in some seed, so "
                     "their classes can never be learned" if dead_units and max(dead_units) > 0 else "")
            # an all-zero weight (a zero init, peersweep16 u10's Conv2d) makes every logit its bias: at a
            # zero bias each sits on the ReLU's kink, whose slope is 0, and the layer gets exactly no
            # gradient, so it never leaves zero (the hidden case is dead_units', born dead)
            if last is relu and _zero_weights(last):
                grads = last.values.get("grad_norm")
                never += (f"; {_layer_named(last)}'s weights are all 0 (a zero initialisation), so every logit is "
                          "its bias" + (" and the layer's weight gradient is exactly 0: it never leaves zero"
                                        if grads is not None and len(grads) and not np.any(grads) else ""))
                evidence.update(zero_weights=True, grad_norm_by_seed=[] if grads is None else
                                [float(g) for g in grads])
            if result.loss_implied:
                evidence["loss_implied"] = True
                dead_words = (f"; {max(dead_units)} of the {classes} outputs are 0 for every sample in some seed"
                              if dead_units and max(dead_units) > 0 else "")
                return Detection(
                    self.code, severity, "clipped_output_fraction", value,
                    f"{_outputs_through(last, relu, 'ReLU')}; no loss was given and the check took them for "
                    f"class scores under {loss} (its own guess): if they are logits, {value:.0%} of them are "
                    f"clipped to 0 and pass no gradient{dead_words}; if they are values (features, a "
                    "reconstruction, a non-negative regression), give --loss mse",
                    "The file states no loss, so the check guessed one from the output's shape: cross-entropy "
                    "over its outputs as classes. A ReLU output is a sound end for values that are never "
                    "negative (an exported feature extractor or backbone, an autoencoder's reconstruction, "
                    "counts or prices), and then nothing here is wrong. Only if the model is trained as a "
                    f"classifier on these outputs is it a mismatch: {loss} applies its own softmax to raw "
                    "scores (logits), which must be free to go negative; the ReLU clips every negative score to "
                    "0 and passes no gradient for it, and a class whose score is 0 for every input is never "
                    "learned. Give --loss (loss over HTTP) to say how it is trained.",
                    evidence, [relu])
            return Detection(
                self.code, severity, "clipped_output_fraction", value,
                f"{_outputs_through(last, relu, 'ReLU')} and {loss} takes them for logits: {value:.0%} of the "
                f"logits are clipped to 0 and pass no gradient{never}",
                f"{loss} applies its own {'sigmoid' if loss == 'binary_cross_entropy' else 'softmax'} to raw "
                "scores (logits), which must be free to go negative. A ReLU on the last layer clips every "
                "negative score to 0 and passes no gradient for it: a class is pushed down only until its score "
                "reaches 0, and a class whose score is 0 for every input gets no gradient at all and is never "
                "learned. Accuracy stalls below what the network can reach. End the network with no "
                "activation: the loss's own softmax or sigmoid makes the probabilities.",
                evidence, [relu])
        if relu is not None:
            given = target_range(result)
            evidence.update(metric="clipped_output_fraction", from_logits=None, output_activation="relu",
                            clipped_by_seed=[round(1.0 - float(x), 6) for x in relu.values["active_fraction"]],
                            unreachable_target_fraction=unreachable_targets(result, "relu"),
                            silent_by_seed=[])
            if given is not None or result.target_values is not None:
                evidence["targets"] = _targets_words(result)[0]
            # With the targets' range known, what is out of reach is that range's part below 0, if any
            # (kerassweep15 u03: "no target below 0" read wrong beside --target-range 0,1).
            reach = ("no target below 0 can be reached" if given is None else
                     f"the targets lie in [{given[0]:g}, {given[1]:g}] (loss.target_range), "
                     + ("all in reach" if given[0] >= 0.0 else
                        f"{unreachable_target_fraction('relu', given):.0%} of that range below 0 out of reach"))
            clipped = f"every output clipped at 0 gets no gradient ({value:.0%} of them {simulated_weights(result)})"
            if severity == "info" and given is not None and given[0] >= 0.0:
                clipped += ("; a note: for targets at or above 0 a ReLU output is a sound choice, whose risk is an "
                            "output unit going off for every input, which then learns nothing")
            elif severity == "info":
                clipped += ("; a note: it clips too few to matter now, but should the output unit go off for "
                            "every input, nothing learns")
            return Detection(
                self.code, severity, "clipped_output_fraction", value,
                f"{_outputs_through(last, relu, 'ReLU')} under {loss}: {reach}, and {clipped}",
                "A regression loss needs outputs free to move both ways. A ReLU on the output passes no "
                "gradient for every output it clips to 0, so those samples teach nothing; if the output "
                "unit goes off for every input (a large step, a bias pushed negative) the whole network stops "
                "learning and predicts 0 for everything. End a regression with no activation; for targets "
                "that must stay positive, softplus keeps a gradient everywhere."
                + ("" if given is not None else
                   " The targets simulated are standard normal, half of them below 0; targets known to lie at "
                   "or above 0 (scaled into [0, 1]) are in reach: say so with the spec's loss.target_range, "
                   "--target-range 0,1 for a Keras file (with --loss mse where the file compiled no loss; "
                   "target_range over HTTP)."),
                evidence, [relu])
        if no_output_gradient(result):
            # the value is the share of samples that get no gradient: all of them (the evidence's
            # metric named the gradient, whose value is 0, beside a value of 1)
            evidence.update(metric="silent_sample_fraction", from_logits=None, output_grad_norm=0.0)
            width = output_width(result)
            if width not in (None, 1):
                # several outputs: no one-unit softmax, no single class; the wording follows that
                # (modsweep49 spytorch_silent: 2 classes, no output activation, told of a softmax
                # over a single unit)
                evidence["output_width"] = width
                return Detection(
                    self.code, severity, "silent_sample_fraction", value,
                    f"no gradient reaches {layer_words(last)}: the loss's gradient stops between its {width} "
                    "outputs and the loss, so nothing in the network learns",
                    f"The gradient at the output layer is exactly zero for every sample and seed, with {width} "
                    "outputs, so neither a softmax over a single unit nor a single class is the cause: what "
                    "reads the layer's output passes back none of the loss's gradient. A max or an argmax that "
                    "picks a value no weight made (a state that stays at its initial value: a spiking or "
                    "gated network whose units never fire), a step function, a rounding or an index does so, "
                    "as does an output that is the same constant for every input. Check what the forward does "
                    "after this layer: make its units active on typical inputs, and give a step a surrogate "
                    "or straight-through gradient.",
                    evidence, [last])
            return Detection(
                self.code, severity, "silent_sample_fraction", value,
                f"no gradient reaches {layer_words(last)}: {loss} and the output's activation pass exactly none, "
                "so nothing in the network learns",
                "The gradient at the output layer is exactly zero for every sample and seed: whatever the loss, "
                "the output does not depend on the weights. A softmax over a single unit is the constant 1 "
                "(its gradient is 0), and cross-entropy over a single class is 0 whatever the output (that "
                "class always has probability 1); one probability is a sigmoid under binary cross-entropy, a "
                "regression has no activation.",
                evidence, [last])
        k = softmax_under_binary_loss(result)
        if k is not None:
            evidence.update(metric="softmax_units_under_binary_loss", threshold=2.0, output_activation="softmax",
                            units=k, classes=k, silent_fraction=_silent_share(result))
            return Detection(
                self.code, severity, "softmax_units_under_binary_loss", value,
                f"softmax under binary cross-entropy: {loss} scores each of {layer_words(last)}'s {k} softmax outputs as "
                f"an independent probability, but the softmax ties them to sum 1, so multi-label (multi-hot) "
                f"targets cannot be reached and for one-of-{k} targets the binary accuracy is inflated",
                f"Binary cross-entropy on probabilities is a sum of {k} independent yes/no losses, one per unit: "
                "it wants each output free in [0, 1], as sigmoids are. A softmax makes the outputs one "
                "distribution: they sum to 1, so a row with two or more 1s (multi-label targets) can never be "
                "fitted (with m 1s the best each can get is 1/m) and the loss stalls above 0; with one 1 a row "
                f"the {k - 1} zeros are scored as {k - 1} extra easy terms, so the loss is small and Keras' "
                f"binary_accuracy (each unit thresholded at 0.5, averaged over the {k}) reads near "
                f"{(k - 1) / k:.0%} for a model that predicts nothing. Use a sigmoid output for multi-label targets; "
                "for one class a sample, keep the softmax and train with categorical cross-entropy.",
                evidence, [last])
        if sigmoids_under_cross_entropy(result) and value < t.silent_loss_warning:
            k = output_width(result) or 0
            saturated = output_saturation(result, together=True)
            state = (f"in {saturated:.0%} of the samples every one is already saturated towards 1 together"
                     if severity != "info" else
                     "a note: while they sit near 0.5 they pass about half the softmax's gradient")
            # the healthy summary's note says what this finding says: its value is the clip's silent
            # share, 0 for sigmoid outputs, which read "0 of the samples pass no gradient" (peersweep19
            # d4ml099/100)
            note = (f"{k} sigmoids, one per class, divided by their sum for {loss}: "
                    + (f"all saturated towards 1 together in {saturated:.0%} of the samples" if severity != "info"
                       else "about half the softmax's gradient while near 0.5"))
            return Detection(
                self.code, severity, "silent_sample_fraction", value,
                f"{loss} takes {layer_words(last)}'s {k} sigmoid outputs for one distribution over {k} classes "
                f"(from_logits=False): each class gets its own sigmoid, and Keras divides them by their sum; {state}",
                "Categorical cross-entropy wants one probability distribution per sample (a softmax). Independent "
                "sigmoids s_j divided by their sum S make one, and each logit's gradient is (s_j/S - [j = target])"
                "(1 - s_j): the softmax's, times 1 - s_j (about a half while the sigmoids sit near 0.5), and none "
                "once they saturate towards 1 together, where the loss stalls at ln k. It trains, more slowly; a "
                "sigmoid per class is for multi-label targets under binary cross-entropy.",
                {**evidence, "output_activation": "sigmoid", "classes": k,
                 "saturated_output_fraction": saturated, "summary_note": note}, [last])
        summary = (f"{loss} takes {layer_words(last)}'s {act} outputs for probabilities (from_logits=False): "
                   f"{value:.0%} of the {what} are clipped and get no gradient")
        explanation = _raw_probabilities_explanation(loss)
        return Detection(self.code, severity, "silent_sample_fraction", value, summary, explanation, evidence,
                         [last])

    def _simplex(self, severity: str, value: float, result: SimulationResult, evidence: dict[str, Any],
                 activation: str, k: int) -> Detection:
        """The finding of :func:`simplex_regression_output`: a distribution under a regression loss."""
        last = output_layer(result)
        loss = _loss_kind(result) or "the loss"
        low, high = SIMPLEX_RANGES[activation]
        constraint = SIMPLEX_CONSTRAINTS[activation]
        reach = simplex_reach(result, activation, k)
        values = result.target_values
        given = target_range(result)
        span = (f"[{low:g}, {high:g}]" if math.isfinite(low) else f"(-inf, {high:g}]")
        where = f"{_layer_named(last)}'s {k} outputs go through a {activation} (over the last dimension)"
        evidence.update(metric="unreachable_target_fraction", threshold=UNREACHABLE_TARGETS_WARNING,
                        error_threshold=UNREACHABLE_TARGETS_ERROR, from_logits=None,
                        output_activation=activation, output_range=[low, high], output_constraint=constraint,
                        classes=k, out_of_range_fraction=reach["out_of_range"], silent_by_seed=[])
        if values is not None and len(values):
            targets = (f"the {reach['rows']} target rows passed" if reach["rows"] is not None
                       else f"the {len(values)} targets passed")
            evidence.update(targets=f"the {len(values)} passed (targets=), in "
                                    f"[{float(values.min()):.3g}, {float(values.max()):.3g}]",
                            targets_passed=len(values), target_range=[float(values.min()), float(values.max())])
            if reach["rows"] is not None:
                evidence["target_rows"] = reach["rows"]
        elif given is not None:
            targets = f"the targets (in [{given[0]:g}, {given[1]:g}])"
            evidence.update(targets=f"in [{given[0]:g}, {given[1]:g}]", target_range=[given[0], given[1]])
        else:
            evidence.update(targets="not given: taken for probability rows (one-hot labels or distributions)",
                            targets_assumed="probability rows",
                            # the note's figure, 0 out of reach, read as a contradiction in the summary
                            # ("output_loss_mismatch 0 of the targets out of reach"): what it concludes
                            summary_note=f"a {activation} output under {loss}: fits probability targets "
                                         "(taken for these; not given)")
            weak = _weak_on_confident_errors(activation, loss, evidence)
            return Detection(
                self.code, severity, "unreachable_target_fraction", value,
                f"{where} under {loss}: every prediction row is a distribution ({span}, {constraint}), so only "
                "probability targets (one-hot labels, distributions) can be reached; the targets were not given "
                "and are taken for those" + (weak[0] if weak else ""),
                f"A {activation} output makes each row one probability distribution. A regression loss on it fits "
                "probability targets (a classifier's one-hot labels: it trains, though cross-entropy on the "
                "logits trains faster); any other targets (values, returns, Q-values, anything outside "
                f"{span} or in rows that do not sum to 1) cannot be reached, and the loss pushes the "
                f"{activation} into saturation. Give the targets (check_module's targets= or target_range=, "
                "--target-range for a Keras file, with --loss mse where it compiled no loss) to have them judged; for regression targets end with no "
                "activation (a linear output)." + (weak[1] if weak else ""),
                evidence, [last])
        if value <= 0.0:
            weak = _weak_on_confident_errors(activation, loss, evidence)
            evidence["summary_note"] = (f"a {activation} output under {loss}: "
                                        + ("every target given is in reach" if reach["rows"] is not None
                                           else f"the targets given lie in {span}"))
            return Detection(
                self.code, severity, "unreachable_target_fraction", value,
                f"{where} under {loss}; {targets} lie in {span}"
                + (f" and {constraint.replace('each', 'every')}: every target is in reach" if reach["rows"] is not None
                   else f": in reach only where {constraint}") + (weak[0] if weak else ""),
                f"A {activation} output makes each row one probability distribution, which fits probability "
                "targets such as these; cross-entropy on the logits trains a classifier faster than a "
                "regression loss on the probabilities." + (weak[1] if weak else ""),
                evidence, [last])
        return Detection(
            self.code, severity, "unreachable_target_fraction", value,
            f"{where} under {loss}: every prediction row lies in {span} and {constraint}, so {value:.0%} of "
            f"{targets} are out of reach"
            + (f" ({reach['out_of_range']:.0%} of the values outside {span})" if reach["rows"] is not None else ""),
            f"A regression loss needs outputs free to reach the targets. A {activation} on the output makes each "
            f"row one probability distribution ({span}, {constraint}): targets outside that simplex (unscaled "
            "values, returns or Q-values, rows that do not sum to 1) can never be reached, the loss stalls high, "
            f"and it pushes the {activation} into saturation, where its gradient fades. End the regression with "
            "no activation (a linear output; for Q-values a linear head, one unbounded value per action), or "
            "train on probability targets with cross-entropy on the logits.",
            evidence, [last])


for _part in (
    Nonfinite(),
    ExplodingGradient(),
    VanishingGradient(),
    ExplodingThroughTime(),
    VanishingThroughTime(),
    Saturation(),
    DeadUnits(),
    PostLnDepthRisk(),
    LargeUpdates(),
    SmallUpdates(),
    NegativeLearningRate(),
    OutputLossMismatch(),
    SymmetricWeights(),
    SmallBatchStatistics(),
):
    implement_architecture(_part.code, _part)


def architecture_rules() -> list[ArchitectureRule]:
    """The architecture rules, in registry order."""
    return [r.architecture for r in rules() if r.architecture is not None]


#: Findings measured on the forward's outputs ahead of the loss: true where the loss alone turns NaN.
_BEFORE_LOSS = frozenset({"output_loss_mismatch"})

#: Findings whose network makes every gradient small (SGD's step small with it: not the rate's fault).
_SHRINKS_GRADIENTS = frozenset({"vanishing_gradient", "dead_units", "saturation", "vanishing_through_time"})


#: The rules that judge a model with no layer the check measures (``x * W + B``): on the loss's own
#: figures (non-finite), the optimizer's rate and, under SGD, the loss's sharpness.
_LAYERLESS = frozenset({"nonfinite", "large_updates", "negative_learning_rate"})


def detect(result: SimulationResult, thresholds: Thresholds) -> list[Detection]:
    """All findings on ``result``, most severe first (then in registry order)."""
    found: list[Detection] = []
    for part in architecture_rules():
        if not result.units and part.code not in _LAYERLESS:
            continue  # no layer to measure (scalar parameters used elementwise): per-layer rules need one
        value, severity = part.severity(result, thresholds)
        if severity is not None:
            found.append(part.describe(severity, value, result, thresholds))
    if any(d.code == "small_updates" for d in found) and result.optimizer is not None and result.optimizer.type == "sgd" and any(
            d.code in _SHRINKS_GRADIENTS and d.severity != "info" for d in found):
        # SGD's step is lr x the gradient: a gradient the network itself shrinks (vanishing, dead or
        # saturated units) makes the step small, and raising the rate would not fix the network
        found = [d for d in found if d.code != "small_updates"]
    depth = next((d for d in found if d.code == "exploding_gradient"), None)
    if depth is not None and _grown_through_time(depth, found, thresholds):
        found = [d for d in found if d is not depth]
    if any(d.code == "nonfinite" and d.severity != "info" for d in found):
        # Once values are NaN/Inf every ratio is meaningless; keep the one finding that is true, and
        # where the loss made it from finite outputs, the findings measured on those outputs ahead of
        # the loss (the pairing that made it)
        keep = {"nonfinite", "exploding_gradient"} | (_BEFORE_LOSS if loss_made_nonfinite(result) else set())
        found = [d for d in found if d.code in keep]
    return worst_first(found)


def _grown_through_time(depth: Detection, found: Sequence[Detection], t: Thresholds) -> bool:
    """Whether exploding_gradient's growth is a recurrence's through time, already found: its
    gradient ratio through depth is under the bar, and its activations' growth over the layers is
    no more than an exploding_through_time's growth over the steps times that bar. A scan's state
    that grows by |a| a step (a selective scan with exp(delta * A) > 1) carries its growth to every
    layer after it, which the layers' stds read as growth through depth; its remedy is the decay's
    (stable_decay), not an init, an activation or a norm (modsweep49 mamba_positive_A)."""
    ratio = depth.evidence.get("grad_ratio")
    growth = depth.evidence.get("activation_growth")
    if not isinstance(growth, int | float) or not math.isfinite(growth) or (
            isinstance(ratio, int | float) and math.isfinite(ratio) and ratio >= t.exploding_warning):
        return False
    timed = [d.evidence.get("value") for d in found if d.code == "exploding_through_time" and d.severity != "info"]
    return any(isinstance(v, int | float) and growth <= v * t.exploding_warning for v in timed)


def problems(result: SimulationResult, thresholds: Thresholds) -> list[Detection]:
    """The findings on ``result`` that need fixing: :func:`detect`'s without its notes (info),
    which is what a remedy's re-simulation is judged by."""
    return [d for d in detect(result, thresholds) if d.severity != "info"]


def badness(code: str, value: float | None) -> float:
    """How far ``value`` of ``code``'s metric is from healthy (for ranking); larger is worse."""
    return rule(code).badness.of(value)
