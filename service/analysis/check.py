"""The architecture check, end to end: spec -> plan -> simulation -> findings -> verified remedies.

:func:`run_architecture_check` is what the command line, the HTTP worker and the
tests call. Every remedy that changes the spec is applied as a JSON Patch and the
patched spec is simulated again with the same seeds; the finding's own metric is
reported before and after, remedies that fixed it come first, and a remedy the
re-simulation shows does not fix the case is kept but marked ``recommended: false``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonpatch
import numpy as np

from gradhealth.analysis import theory
from gradhealth.analysis.findings import Detection, fc_stretches
from gradhealth.analysis.limits import OverBudget, budget_note, over_budget
from gradhealth.analysis.plan import Limits, Plan, make_plan
from gradhealth.analysis.quiet import quiet_run_notes
from gradhealth.analysis.remedies import Context, clipping
from gradhealth.analysis.rules import (
    NOTE_REASONS,
    ArchitectureRule,
    curvature,
    curvature_decides,
    designed_zero_layers,
    detect,
    judged_update_ratios,
    problems,
)
from gradhealth.analysis.simulate import (
    ProgressFn,
    SimulationResult,
    UnitStats,
    at_rate,
    combined,
    select_seeds,
    simulate,
)
from gradhealth.analysis.spec import InitSpec, OptimizerSpec, parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.document import (
    SEVERITY_RANK,
    CriticalInit,
    Diagnosis,
    Finding,
    JudgedFigure,
    LayerReport,
    Remedy,
    SimulationInfo,
    Theory,
    TheoryStretch,
    TimeStep,
    Verified,
    finite_or_none,
    more_findings,
    pow10,
    status_of,
)
from gradhealth.core.remedies import INIT_REMEDY
from gradhealth.core.rules import rule
from gradhealth.errors import GradHealthError


@dataclass
class CheckOptions:
    thresholds: Thresholds
    limits: Limits
    verify: bool = True
    device: str | None = None  # overrides the spec's device (the CLI's --device)


@quiet_run_notes
def run_architecture_check(raw: dict[str, Any], options: CheckOptions | None = None,
                           progress: ProgressFn | None = None, *, plan: Plan | None = None) -> Diagnosis:
    """Check the architecture ``raw`` (a decoded JSON/YAML spec) and return the diagnosis document.

    Raises :class:`gradhealth.errors.SpecError` (with JSON pointers) for an invalid spec and
    :class:`gradhealth.errors.LimitExceeded` for one over the limits, before any allocation.
    ``plan``: the plan of ``raw`` under ``options.limits`` where the caller made it already.
    """
    options = options or CheckOptions(Thresholds(), Limits())
    if plan is None:
        plan = make_plan(parse_spec(raw), options.limits)
    spec = plan.spec
    report = progress or (lambda fraction, stage: None)
    bar = ProgressPlan(raw, plan, options)
    result = simulate(plan, device=options.device, progress=lambda f, stage: report(bar.simulation(f), stage),
                      first_seed=bar.preview if progress is not None and options.verify else None)
    detections = detect(result, options.thresholds)
    verifier = _Verifier(raw, plan, result, options, report, start=bar.simulation(1.0))
    findings: list[Finding] = []
    for det in detections:
        if det.severity == "info":
            remedies = []  # a note: its explanation says what would remove it, nothing needs fixing
        elif options.verify:
            remedies = verifier.remedies_for(det, detections)
        else:
            remedies = init_after_structural(proposals(det, detections, Context(raw, plan, result, det)),
                                             det, result, options.thresholds)
            for r in remedies:
                r.unverified = "skipped" if r.patch else "training_time"
        findings.append(det.finding(remedies))
    report(1.0, "done")
    status = status_of(findings)
    judged = judged_update_ratios(result)  # the layer table's judged_update_ratio
    rows = [_layer_report(u, judged) for u in result.units]
    return Diagnosis(
        name=spec.name,
        status=status,
        summary=summary_line(status, findings, layers_with_weights(rows)),
        findings=findings,
        layers=rows,
        time_steps=[TimeStep(layer=ts.layer, sublayer=ts.sublayer, t=t, output_grad_norm=finite_or_none(g),
                             log10_spread=finite_or_none(s))
                    for ts in result.time_series for t, (g, s) in enumerate(zip(ts.geo(), ts.log10_std(),
                                                                                strict=True))],
        theory=theory_report(result),
        simulation=SimulationInfo(seeds=spec.seeds, batch_size=spec.batch_size, device=result.device,
                                  precision=spec.precision, parameters=plan.parameters,
                                  activation_bytes=plan.activation_bytes,
                                  duration_s=round(result.duration_s + verifier.seconds, 4),
                                  remedies_simulated=verifier.simulated,
                                  remedies_rescaled=len(verifier.rescaled),
                                  loss=spec.loss.type + ("" if spec.loss.from_logits else " (on probabilities)"),
                                  optimizer=optimizer_shown(spec.optimizer),
                                  notes=[budget_note(verifier.over, verifier.simulated, verifier.per_seed,
                                                     options.limits.max_verify_seconds)] if verifier.over else []),
    )


def optimizer_shown(optimizer: OptimizerSpec | None) -> dict[str, str | float | bool] | None:
    """The document's ``simulation.optimizer``: the optimizer's type and rate, and its settings that
    differ from their defaults."""
    if optimizer is None:
        return None
    shown: dict[str, str | float | bool] = {"type": optimizer.type, "lr": optimizer.lr}
    shown.update({k: v for k, v in optimizer.model_dump(exclude_defaults=True).items()
                  if k not in shown and isinstance(v, (str, float, int, bool))})
    return shown


#: What a note's key figure is, by its evidence metric, in the healthy summary's "(note: ...)":
#: "large_updates 0.19 of the weights per step" (modsweep36: "(note: large_updates)" showed no
#: number, and a user training with Adam 0.02 saw no ratio without opening the evidence). A metric
#: not here is shown by its name ("min_softmax_gain 0.3").
NOTE_FIGURES: dict[str, str] = {
    "max_update_ratio": "{v} of the weights per step",
    "lr_times_sharpness": "lr x sharpness {v}",
    "output_grad_ratio_first_to_last": "first/last layer gradient {v}",
    "output_grad_ratio_first_to_readout": "first layer/readout gradient {v}",
    # the least-reached middle layer a skip path goes around, not a "least" layer beside the first
    # (modsweep46: "least/last layer gradient" beside another note's "first/last" read as a typo)
    "output_grad_ratio_least_to_last": "least-reached middle layer/last layer gradient {v}",
    "output_grad_ratio_first_to_last_step": "first/last step gradient {v}",
    "max(output_grad_ratio_first_to_last, activation_growth)": "growth {v}x",
    "max_saturated_fraction": "{v} of the units saturated",
    "max_dead_fraction": "{v} of the units dead",
    "born_dead_seeds": "{v} of the seeds born dead",
    "unreachable_target_fraction": "{v} of the targets out of reach",
    "unreachable_loss_fraction": "loss floor {v} of its value at chance",
    "clipped_output_fraction": "{v} of the outputs clipped",
    "silent_sample_fraction": "{v} of the samples pass no gradient",
    "softmax_units_under_binary_loss": "a softmax over {v} units under binary cross-entropy",
    "equal_weight_layers": "{v} layers of equal weights",
    "batch_values_per_channel": "{v} values per channel",
    "learning_rate": "lr {v}",
    "last_layer_grad_norm": "last layer gradient {v}",
    "min_softmax_gain": "softmax gain {v}",
    "input_scale": "input scale {v}",
}


#: The norms: their weights count with the layer they follow (a live module's folds into it), so a
#: spec's separate batchnorm row is not a layer of its own in the summary's count.
NORM_TYPES = frozenset({"batchnorm", "layernorm", "groupnorm", "instancenorm", "layerscale"})


def layers_with_weights(layers: Sequence[LayerReport]) -> int:
    """The layers the healthy summary counts: the rows of the layer table with weights of their own
    (Linear, conv, recurrent, embedding...; not a pool, a flatten, an activation or a norm), alike in
    a spec, a live module and a model file (newuser10 #15: a spec counted its pool and flatten, a
    module its weight layers only); not a spec's residual or block, a container of layers that
    are counted themselves (specsweep11: a ResNet-110 read 212 layers with weights for 108)."""
    return sum(1 for r in layers if r.type not in NORM_TYPES and not r.container
               and (r.weight_std is not None or r.grad_norm is not None or r.fan_in is not None))


def note_words(finding: Finding) -> str:
    """A note as the healthy summary names it: its code and key figure, what it is from its
    evidence metric (``large_updates 0.19 of the weights per step``); the code alone where its
    evidence has no number."""
    value, metric = finding.evidence.value, finding.evidence.metric
    extra = finding.evidence.model_extra or {}
    if isinstance(extra.get("summary_note"), str):
        # what the finding concludes, where its metric's figure alone would mislead: a share the
        # judging discounted to 1/2 read "dead_units 0.5 of the units dead" beside a finding saying
        # "not judged dead" (onnxsweep22 churn_keras)
        return f"{finding.code} {extra['summary_note']}"
    if value is None or not math.isfinite(value) or not metric:
        return finding.code
    shown = NOTE_FIGURES.get(metric, metric + " {v}").format(v=f"{value:.2g}")
    # why a figure past its warning bar is only a note (modsweep39: "growth 2.1e+02x" beside
    # "healthy" with the reason in the evidence alone), the finding's own reason: "absorbed by
    # normalisation" was said of every note, nets without a norm too (onnxsweep22 tictactoe_mla)
    reason = extra.get("note_reason")
    if isinstance(reason, str) and reason in NOTE_REASONS:
        shown += ", " + NOTE_REASONS[reason]
    elif reason is None and extra.get("absorbed_by_normalisation"):
        shown += ", " + NOTE_REASONS["normalisation"]
    return f"{finding.code} {shown}"


def summary_line(status: str, findings: list[Finding], layers: int) -> str:
    """The document's one-line summary: the worst finding, or healthy (with its notes, each with
    its key figure). ``layers``: the layers with weights the check measured, counted alike in a
    spec, a module and a model file."""
    if status == "healthy":
        notes = (f" (note: {', '.join(dict.fromkeys(note_words(f) for f in findings))})" if findings
                 else "")
        return f"healthy: no gradient problem found in {layers} layers with weights{notes}"
    worst = findings[0]
    return f"{status}: {worst.code}: {worst.summary}{more_findings(findings)}"


def with_note(summary: str, note: str) -> str:
    """``summary`` with ``note`` (a clause; a closing period is dropped) in its one parenthesised note:
    joined to the "(note: ...)" it ends in (a healthy summary's notes, :func:`summary_line`) by a
    semicolon, else in a "(note: ...)" of its own (onnxsweep25: "(note: dead_units ...) (Note: loss
    cross_entropy, implied ...)" side by side, in two casings). Empty ``note``: ``summary`` as it is."""
    note = note.strip().rstrip(".").rstrip()
    if not note:
        return summary
    head = summary.rfind(" (note: ")
    if head >= 0 and summary.endswith(")") and _closes_at_end(summary, head + 1):
        return f"{summary[:-1]}; {note})"
    return f"{summary} (note: {note})"


def _closes_at_end(text: str, start: int) -> bool:
    """Whether the parenthesis opened at ``text[start]`` is closed by the last character."""
    depth = 0
    for k in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[k], 0)
        if depth == 0:
            return k == len(text) - 1
    return False


def proposals(det: Detection, detections: Sequence[Detection], ctx: Context) -> list[Remedy]:
    """``det``'s rule's remedies (unverified), less a rate sized from steps a growth inflated
    (:func:`without_inflated_rate`)."""
    return without_inflated_rate(det, detections, _part(det).propose(ctx))


def without_inflated_rate(det: Detection, detections: Sequence[Detection], remedies: list[Remedy]) -> list[Remedy]:
    """``remedies`` less a ``lower_learning_rate`` sized from steps a growth inflated
    (:func:`inflating_growth`): ``det``'s explanation, evidence (``cause``, ``withheld_remedies``) and
    summary then name the growth as the steps' cause (modsweep47 ll_resnet56_nobn: a BN-free ResNet-56
    led with "large_updates ... changes fc's weights by 132 of their norm", an error, and said nothing
    of the 5.29e3x exploding_gradient warning behind it, so a reader lowered the rate). The severity
    order stands (an error leads a warning); the lead finding says where its steps come from. Every
    door's (a spec's, a live module's, a model file's) remedies pass here."""
    growth = inflating_growth(det, detections)
    if growth is None:
        return remedies
    kept = [r for r in remedies if r.id != "lower_learning_rate"]
    if len(kept) < len(remedies) and det.evidence.get("cause") != growth.code:
        det.explanation += (
            f" These steps were measured on a network that grows {growth.value:.3g}x through its depth "
            f"({growth.code}, {growth.severity}): each layer's gradient, and so its step, carries that growth, "
            "so the growth is the cause of the large steps, and a learning rate sized from them would be the "
            f"broken network's, far below any a network trains at. Fix the {growth.code} first (its remedies), "
            "then check the rate again.")
        det.summary += (f"; these steps follow from the {growth.code} {growth.severity} (a {growth.value:.3g}x "
                        "growth through depth), which a lower learning rate does not fix: fix that first")
        det.evidence.update(cause=growth.code, withheld_remedies=["lower_learning_rate"])
    return kept


#: Remedies that change the network's structure or activation, not its init: where mean-field theory
#: predicts that a proposed init leaves the finding over its threshold, they come before it.
_STRUCTURAL = frozenset({"batch_norm", "layer_norm", "pre_layer_norm", "residual_connections", "scaled_residual",
                         "relu_family_activation", "gated_recurrent_cell"})


def predicted_init_effect(remedy: Remedy, result: SimulationResult) -> float | None:
    """A spec's init remedy: :func:`predicted_reinit_effect` of the layers its patch re-initialises
    (``add .../init``); None where the patch is not an init."""
    ops = remedy.patch
    if not ops or not all(op.get("op") == "add" and str(op.get("path", "")).endswith("/init") for op in ops):
        return None
    target = {str(op["path"])[:-len("/init")]: op["value"] for op in ops}
    return predicted_reinit_effect(
        result, lambda u: InitSpec.model_validate(target[u.pointer]) if u.pointer in target else None)


def predicted_reinit_effect(result: SimulationResult, init_of: Callable[[UnitStats], InitSpec | None],
                            zero_bias: bool = False) -> float | None:
    """log10 of the factor by which mean-field theory predicts re-initialising layers (``init_of``: a
    unit's new init, None where it keeps its weights) changes the gradient ratio ||dL/dh_first|| /
    ||dL/dh_last|| of the stretches it re-initialises whole (:func:`fc_stretches`, the chains the
    theory report predicts); ``zero_bias``: their biases start at 0 too (a live module's init edit).
    Every door's init remedies are forecast here (a spec's patch, a module's or model file's edit of
    every Linear/Conv). None where it covers no whole stretch, or an init's variance depends on more
    than the fans (torch's default)."""
    from gradhealth.analysis.rules import init_variance

    change, covered = 0.0, False
    for run in fc_stretches(result):
        inits = [init_of(u) for u in run]
        if any(i is None for i in inits):
            continue
        act = run[0].activation or "identity"
        params = theory.activation_parameters(act, run[0].activation_params)
        slope = params.get("negative_slope", 0.01)
        sw2_new: list[float] = []
        for u, init in zip(run, inits, strict=True):
            assert init is not None  # (every unit's, above)
            var = init_variance(init, u.fan_in or 1, u.fan_out or 1, act, slope)
            if var is None:
                return None
            sw2_new.append(var * (u.fan_in or 1))
        sw2_now = [u.mean("weight_std") ** 2 * (u.fan_in or 1) for u in run]
        sigma_b2 = sum(u.mean("bias_mean_square") if "bias_mean_square" in u.values else 0.0 for u in run) / len(run)
        x2 = run[0].mean("input_mean_square")
        try:
            logs = [theory.predict_stretch(act, sum(sw2[1:]) / len(sw2[1:]), b2, len(run), sw2[0] * x2 + b2,
                                           **params).predicted_log10_ratio
                    for sw2, b2 in ((sw2_now, sigma_b2), (sw2_new, 0.0 if zero_bias else sigma_b2))]
        except (ValueError, OverflowError, ZeroDivisionError):
            return None
        if not all(math.isfinite(v) for v in logs):
            return None
        change += logs[1] - logs[0]
        covered = True
    blocks = residual_reinit_effect(result, init_of)
    if blocks is not None and not math.isfinite(blocks):
        return None  # a re-initialised branch theory has no forecast for
    return change + blocks if blocks is not None else (change if covered else None)


#: The second moment a homogeneous activation keeps of a zero-mean symmetric pre-activation's variance
#: (E[relu(h)^2] = Var(h) / 2): the branch gains a residual stack's forecast is exact for
_SECOND_MOMENT = {"relu": lambda p: 0.5, "leaky_relu": lambda p: (1 + p.get("negative_slope", 0.01) ** 2) / 2,
                  "identity": lambda p: 1.0, "linear": lambda p: 1.0}


def residual_reinit_effect(result: SimulationResult, init_of: Callable[[UnitStats], InitSpec | None]) -> float | None:
    """log10 of the factor by which mean-field theory predicts a re-initialisation (``init_of``) changes
    the gradient ratio through a spec's residual blocks without norms, x_{l+1} = x_l + s F_l(x_l): at init
    F_l is uncorrelated with x_l, so the stream's second moment grows additively, q_{l+1} = q_l (1 + s^2 c_l),
    with c_l the branch's gain, the product over its layers of sigma_w^2 times its activation's second-moment
    factor (1/2 for ReLU, 1 for a linear layer; the same whatever the stream's distribution, and the same
    backwards: the Jacobian I + J_F), so ||dL/dh|| grows by sqrt(1 + s^2 c_l) a block (Zhang et al. 2019,
    Fixup Sec. 2; a ReLU after the sum scales both inits' factor alike). Any fan-based init keeps c_l a
    constant, so the growth stays exponential in depth; only a branch scaled by depth removes it. The
    change summed over the blocks ``init_of`` re-initialises part of; None where it touches none; NaN
    where a touched branch is normalised or holds a layer the forecast is not exact for (no forecast)."""
    from gradhealth.analysis.rules import init_variance

    if result.plan is None:
        return None
    layer_of = {p.name: p.layer for p in result.plan.all_units()}
    change: float | None = None
    for block in (u for u in result.units if u.type == "residual" and u.container):
        branch = [u for u in result.units if u.name.startswith(block.name + ".") and u.depth == block.depth + 1]
        inits = [init_of(u) for u in branch]
        if not any(i is not None for i in inits):
            continue
        gains = [1.0, 1.0]  # (now, new)
        for u, init in zip(branch, inits, strict=True):
            act = u.activation or "identity"
            params = theory.activation_parameters(act, u.activation_params) if act in theory.ACTIVATIONS else {}
            if (u.type not in ("linear", "conv1d", "conv2d", "conv3d") or u.normalised or act not in _SECOND_MOMENT
                    or getattr(layer_of.get(u.name), "norm", None) is not None or not u.fan_in):
                return math.nan
            k = _SECOND_MOMENT[act](params)
            now = u.mean("weight_std") ** 2 * u.fan_in
            new = now if init is None else init_variance(init, u.fan_in, u.fan_out or u.fan_in, act,
                                                         params.get("negative_slope", 0.01))
            if new is None or not math.isfinite(now):
                return math.nan
            gains[0] *= now * k
            gains[1] *= (new * u.fan_in if init is not None else now) * k
        scale2 = float(getattr(layer_of.get(block.name), "scale", 1.0)) ** 2
        change = (change or 0.0) + 0.5 * (math.log10(1 + scale2 * gains[1]) - math.log10(1 + scale2 * gains[0]))
    return change


def init_after_structural(remedies: list[Remedy], det: Detection, result: SimulationResult,
                          t: Thresholds, predict: Callable[[Remedy], float | None] | None = None) -> list[Remedy]:
    """Unverified remedies (--no-verify) of a vanishing or exploding gradient with each init remedy
    that mean-field theory predicts leaves the finding over its threshold moved after the structural
    ones (a norm, skips, an activation change): the measured ratio times the predicted change of its
    stretches (``predict``: a remedy's log10 change, :func:`predicted_init_effect` for a spec's
    patches) is judged as the finding is. specsweep11 other problem 2:
    a 5-layer sigmoid stack's first remedy was xavier_init, which its own theory line puts at 0.24 a
    layer, still a vanishing gradient (verified: 3.98e-4 -> 3.08e-3). An init with no prediction (a
    conv net, torch's default init) keeps its place. The live-module and model-file doors pass their
    own ``predict`` (their init remedies re-draw every Linear/Conv: :func:`predicted_reinit_effect`)."""
    if det.code not in ("vanishing_gradient", "exploding_gradient") or not math.isfinite(det.value) or det.value <= 0:
        return remedies
    if not any(r.id in _STRUCTURAL for r in remedies):
        return remedies
    forecast = predict or (lambda r: predicted_init_effect(r, result))
    judge = t.vanishing if det.code == "vanishing_gradient" else t.exploding
    late = []
    for r in remedies:
        if r.id in INIT_REMEDY.values():
            effect = forecast(r)
            if effect is not None and judge(det.value * 10 ** effect) is not None:
                late.append(r)
    if not late:
        return remedies
    kept = [r for r in remedies if r not in late]
    last = max(i for i, r in enumerate(kept) if r.id in _STRUCTURAL)
    return kept[:last + 1] + late + kept[last + 1:]


def inflating_growth(det: Detection, detections: Sequence[Detection]) -> Detection | None:
    """For a ``large_updates`` judged on its layers' steps (not on the sharpness bound alone), the
    ``exploding_gradient`` of the same check at warning or error (a growth the norms do not absorb),
    which inflates every step measured at initialisation: a layer's gradient dL/dW = delta x^T carries
    the growth of its input x forwards and of delta backwards, so the rate sized from it is the
    broken network's (specsweep11 resnet110_nobn_he: 'lower the learning rate from 0.1 to 2.79e-11'
    beside an activation growth of 1.12e8 that scaled residual branches fix). None otherwise."""
    if det.code != "large_updates" or det.metric == "lr_times_sharpness":
        return None
    return next((d for d in detections if d.code == "exploding_gradient"
                 and SEVERITY_RANK.get(d.severity, 0) >= SEVERITY_RANK["warning"]), None)


def _part(det: Detection) -> ArchitectureRule:
    part: ArchitectureRule = rule(det.code).architecture
    return part


def _layer_report(u: UnitStats, judged: dict[str, float] | None = None) -> LayerReport:
    """``u``'s row of the layer table; ``judged``: the units' update ratios as large_updates judges
    them (:func:`.rules.judged_update_ratios`), shown beside the first step's."""
    spread = {m: finite_or_none(u.log10_std(m)) for m in ("grad_norm", "output_grad_norm") if m in u.values}
    report = LayerReport(
        name=u.name, pointer=u.pointer, type=u.type, activation=u.activation,
        grad_norm=u.geo("grad_norm") if "grad_norm" in u.values else None,
        # none where no gradient was computed (a frozen layer outside training), as grad_norm
        output_grad_norm=u.geo("output_grad_norm") if not np.isnan(u.values.get(
            "output_grad_norm", np.array([math.nan]))).all() else None,
        activation_mean=u.mean("activation_mean"), activation_std=u.mean("activation_std"),
        saturated_fraction=u.mean("saturated_fraction") if "saturated_fraction" in u.values else None,
        dead_fraction=u.mean("dead_fraction") if "dead_fraction" in u.values else None,
        # (graph.DEAD_IN_EVERY_SEED: the same for every seed)
        dead_fraction_all_samples=float(u.values["dead_in_every_seed"][0])
        if "dead_in_every_seed" in u.values else None,
        weight_std=u.mean("weight_std") if "weight_std" in u.values else None,
        fan_in=u.fan_in, fan_out=u.fan_out, normalised=u.normalised, container=u.container,
        nonfinite_forward=u.mean("nonfinite_forward") > 0,
        nonfinite_backward=u.mean("nonfinite_backward") > 0,
        spread=spread,
    )
    if "no_samples" in u.values:
        report.seeds_without_samples = int(np.nansum(u.values["no_samples"]))
    if "update_ratio" in u.values:
        report.update_ratio = u.geo("update_ratio")
        if judged is not None and u.name in judged:
            report.judged_update_ratio = judged[u.name]
    if u.fan_in:
        report.weight_std_he = math.sqrt(2 / u.fan_in)
        report.weight_std_lecun = math.sqrt(1 / u.fan_in)
        report.weight_std_xavier = math.sqrt(2 / (u.fan_in + (u.fan_out or u.fan_in)))
    return report


def patches_to_verify(raw: dict[str, Any], plan: Plan, result: SimulationResult,
                      detections: list[Detection]) -> int:
    """The remedies with a patch proposed over every finding that gets remedies (not a note's):
    the re-simulations verifying them would run (proposals are cheap: no simulation)."""
    return sum(1 for d in detections if d.severity != "info"
               for r in _part(d).propose(Context(raw, plan, result, d)) if r.patch)


class ProgressPlan:
    """The progress bar of an architecture check, shared between the simulation and the remedies'
    re-simulations by the work each will do, in seeds simulated (newuser15 #3: a fixed 40/60 split
    left a healthy spec's bar at 40% until it jumped to done).

    Without verification (or a spec with nothing to verify) the simulation is the whole bar. With
    it, the first seed is its share of the seeds; its figures alone (:meth:`preview`) tell which
    findings the check will have and so how many patches it will re-simulate, one seed each; the
    simulation's other seeds and those patches then share the rest of the bar in proportion. A
    spec of one seed has no preview: its simulation keeps 0.4, the remedies the rest."""

    def __init__(self, raw: dict[str, Any], plan: Plan, options: CheckOptions) -> None:
        self.raw, self.plan, self.options = raw, plan, options
        seeds = plan.spec.seeds
        self.first = 1.0 / seeds  # the bar at the end of the first seed
        #: the bar at the end of the simulation: None until the preview says
        self.end: float | None = 1.0 if not options.verify else (0.4 if seeds == 1 else None)

    def preview(self, first: SimulationResult) -> None:
        """Plan the rest of the bar from the first seed's figures."""
        seeds = self.plan.spec.seeds
        try:
            patches = patches_to_verify(self.raw, self.plan, first, detect(first, self.options.thresholds))
        except Exception:  # a preview only: a seed whose figures the rules cannot judge alone
            patches = seeds  # guessed
        rest = seeds - 1
        self.end = self.first + (1.0 - self.first) * (rest / (rest + patches) if rest + patches else 1.0)

    def simulation(self, f: float) -> float:
        """The bar at fraction ``f`` of the simulation."""
        if self.plan.spec.seeds == 1 or not self.options.verify:
            return f * (self.end or 1.0)  # (planned up front)
        if self.end is None or f <= self.first:
            return min(f, self.first)  # the first seed: its share of the seeds
        return self.first + (f - self.first) / (1.0 - self.first) * (self.end - self.first)


class _Verifier:
    """Applies remedy patches and re-simulates, caching by patched spec.

    Progress: the simulation took the bar to ``start`` (:class:`ProgressPlan`); the rest is shared
    out per remedy simulated, over all the patches of all the findings (counted up front), so it
    moves with every one.
    """

    def __init__(self, raw: dict[str, Any], plan: Plan, result: SimulationResult, options: CheckOptions,
                 report: ProgressFn | None = None, *, start: float = 0.4) -> None:
        self.raw, self.plan, self.result, self.options = raw, plan, result, options
        self.report = report or (lambda fraction, stage: None)
        self.done = 0
        self.patches: int | None = None  # patches to simulate over every finding, counted once
        self.plans: dict[str, Plan | SimulationResult | str] = {}  # patched spec -> plan, rescaled result or why not
        self.cache: dict[tuple[str, int], SimulationResult | str] = {}  # (patched spec, seeds) -> simulation
        self.margin = seed_margin(result)
        self.results: dict[int, SimulationResult] = {}  # id(remedy) -> its re-simulation
        self.simulated = 0
        self.rescaled: set[str] = set()  # rate-only patched specs whose verdict came from the first simulation
        self.seconds = 0.0
        self.start = start  # the bar when the simulation ended
        self.at = (start, "verifying remedies")  # the last fraction and stage reported
        self.per_seed = result.duration_s / max(result.seeds, 1)
        self.over = 0  # remedies left unverified for the budget

    def _within(self, fraction: float, stage: str) -> None:
        """A remedy's re-simulation's own progress, inside its step (its seeds' and passes' stages
        are where a cancelled job stops; the fraction stays at the step's)."""
        self.report(self.at[0], f"{self.at[1]}: {stage}")

    def _simulate(self, patch: list[dict[str, Any]], seeds: int | None = None) -> SimulationResult | str:
        """The patched spec's simulation over its first ``seeds`` seeds (all: None), or why there
        is none. A rate-only patch rescales the first simulation instead (every seed, no cost)."""
        try:
            patched = jsonpatch.apply_patch(copy.deepcopy(self.raw), patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            # a remedy whose patch does not fit this spec is left unverified; the check goes on
            return f"the remedy's patch does not apply to this spec ({exc})"
        key = json.dumps(patched, sort_keys=True)
        if key not in self.plans:
            try:
                plan = make_plan(parse_spec(patched), self.options.limits)
            except GradHealthError as exc:  # e.g. the patched spec is over the limits
                self.plans[key] = exc.detail
                return exc.detail
            rescaled = _new_rate_only(self.raw, patched, plan, self.result)
            self.plans[key] = rescaled if rescaled is not None else plan
        plan_or = self.plans[key]
        if not isinstance(plan_or, Plan):
            if not isinstance(plan_or, str):
                self.rescaled.add(key)
            return plan_or
        count = plan_or.spec.seeds if seeds is None else min(seeds, plan_or.spec.seeds)
        if (key, count) not in self.cache:
            # the seeds simulated already (one, for a verdict that was too close to call) are kept
            done = next((r for (k, n), r in self.cache.items() if k == key and n < count
                         and isinstance(r, SimulationResult)), None)
            start = done.seeds if done is not None else 0
            if over_budget(self.seconds, self.per_seed, count - start, self.options.limits.max_verify_seconds):
                raise OverBudget
            try:
                res = simulate(plan_or, device=self.options.device, seeds=count, start=start,
                               progress=self._within)
            except GradHealthError as exc:
                self.cache[key, count] = exc.detail
                return exc.detail
            self.simulated += 1
            self.seconds += res.duration_s
            self.cache[key, count] = combined(done, res) if done is not None else res
        return self.cache[key, count]

    def _total(self, all_detections: list[Detection]) -> int:
        """Patches to simulate over every finding (proposals are cheap: no simulation)."""
        if self.patches is None:
            self.patches = patches_to_verify(self.raw, self.plan, self.result, all_detections)
        return self.patches

    def _step(self, det: Detection, remedy: Remedy, total: int) -> None:
        self.at = (self.start + (1.0 - self.start) * min(self.done / max(total, 1), 1.0),
                   f"verifying {det.code}: {remedy.id} ({self.done + 1}/{total})")
        self.report(*self.at)
        self.done += 1

    def remedies_for(self, det: Detection, all_detections: list[Detection]) -> list[Remedy]:
        thresholds = self.options.thresholds
        part = _part(det)
        total = self._total(all_detections)
        remedies = proposals(det, all_detections, Context(self.raw, self.plan, self.result, det))
        for remedy in remedies:
            if not remedy.patch:
                remedy.unverified = "training_time"  # clipping, learning rate: nothing to simulate at init
                continue
            self._step(det, remedy, total)
            try:
                after = self._simulate(remedy.patch, seeds=1)
            except OverBudget:
                remedy.unverified = "over_budget"
                self.over += 1
                continue
            if (isinstance(after, SimulationResult) and after.seeds < self.plan.spec.seeds
                    and not self._decided(det, all_detections, after)):
                # near a threshold on one seed: every seed decides, as the finding's own simulation did
                # (past the budget, the one seed's verdict stands, its `seeds` saying so)
                with contextlib.suppress(OverBudget):
                    after = self._simulate(remedy.patch)
            if isinstance(after, str):
                remedy.verified = Verified(metric=det.metric, before=finite_or_none(det.value), after=None,
                                           fixed=False, note=f"could not simulate the patched spec: {after}")
                remedy.recommended = False
                continue
            self.results[id(remedy)] = after
            verdict = judge(det, all_detections, after, thresholds, self.result)
            value, fixed, new, unmeasured = verdict.value, verdict.fixed, verdict.side_effects, verdict.not_measured
            unjudged = not_judged(det.code, value, after)
            shown, other = same_metric_after(det, value, after, thresholds)
            judged = judged_figure(det, self.result, after, thresholds)
            note = unmeasured or verdict_note(value, fixed, det.code, after, thresholds, judged)
            remedy.verified = Verified(metric=det.metric, before=finite_or_none(det.value),
                                       after=finite_or_none(shown),
                                       fixed=None if unmeasured else fixed, side_effects=new,
                                       not_judged=unjudged, not_measured=unmeasured,
                                       judged=judged,
                                       side_effect_figures=side_effect_figures(new, all_detections, self.result,
                                                                               after, thresholds),
                                       seeds=after.seeds, note=f"{note}; {other}" if note and other else note or other)
            v = remedy.verified
            # (judged by the metric's own bar, where the verdict turned on it: not a `judged` figure's)
            v.improved = (not fixed and not new and unjudged is None and unmeasured is None and v.judged is None
                          and improved(v.before, v.after, det.evidence.get("threshold")))
            # (a verdict not judged, or with nothing to measure, measured nothing against it: left
            # recommended, as an unverified one; one that improved the figure a decade, as a partial one)
            remedy.recommended = (fixed or v.improved or unjudged is not None or unmeasured is not None) and not new
        best = clip_reference(det.code, remedies, self.results)
        if best is not None and part.clips(det):
            # A clipping threshold from a fixed network's norms, never the broken one's.
            for clip in clipping(Context(self.raw, self.plan, self.result, det, reference=best)):
                clip.unverified = "training_time"
                at = next((i for i, r in enumerate(remedies) if r.id in _AFTER_CLIPPING), len(remedies))
                remedies.insert(at, clip)
        return sorted(remedies, key=lambda r: _rank(det.code, r))

    def _decided(self, det: Detection, all_detections: list[Detection], after: SimulationResult) -> bool:
        """Whether one seed's ``after`` decides the remedy's verdict as every seed's would (:func:`decided`)."""
        if not_judged(det.code, _part(det).measure(after), after) is not None:
            return False  # (one seed's samples too few to judge: every seed's, as the finding's own)
        return decided(lambda t: acted_on(judge(det, all_detections, after, t, self.result)), self.options.thresholds,
                       self.margin)


def judged_figure(det: Detection, before: SimulationResult, after: SimulationResult,
                  thresholds: Thresholds) -> JudgedFigure | None:
    """The figure ``det``'s rule fires on where it is not its metric (``ArchitectureRule.decisive``),
    on the unchanged and the changed network: what a remedy's "fixed" was judged on. The same figure
    on both (``ArchitectureRule.decisive_as``), never another one the changed network fires on."""
    part = _part(det)
    was = part.decisive(before, thresholds)
    if was is None:
        return None
    now = part.decisive_as(was[0], after, thresholds)
    if now is None:
        return None
    return JudgedFigure(code=det.code, metric=was[0], before=finite_or_none(was[1]), after=finite_or_none(now))


def side_effect_figures(codes: list[str], all_detections: list[Detection], before: SimulationResult,
                        after: SimulationResult, thresholds: Thresholds) -> list[JudgedFigure]:
    """Each side effect's own metric on the unchanged network (its finding's, or measured there where
    it had none) and on the changed one: the figure a side effect was judged on, which the finding's
    own metric does not show (specsweep12 u10: Xavier on a chaotic tanh net, exploding's max of the
    gradient ratio and the activation growth 0.593, its gradient ratio 7.8e-4)."""
    if not codes:
        return []
    found = {d.code: d for d in problems(after, thresholds)}
    had = {d.code: d for d in all_detections}
    out = []
    for code in dict.fromkeys(codes):
        now = found.get(code)
        if now is None:
            continue
        part = rule(code).architecture
        judged_before, judged_after = part.side_effect_figure(before, thresholds), part.side_effect_figure(after, thresholds)
        if judged_before is not None and judged_after is not None and judged_before[0] == judged_after[0]:
            out.append(JudgedFigure(code=code, metric=judged_after[0], before=finite_or_none(judged_before[1]),
                                    after=finite_or_none(judged_after[1])))
            continue
        if code in had and had[code].metric == now.metric:
            was: float | None = had[code].value
        elif code in had or (part.measured_metric(before, thresholds) or now.metric) != now.metric:
            # the unchanged network's figure is another metric: this one measured there, or none
            was = part.measure_as(now.metric, before, thresholds)
        else:
            was = part.measure(before)
        out.append(JudgedFigure(code=code, metric=now.metric, before=finite_or_none(was),
                                after=finite_or_none(now.value)))
    return out


def acted_on(verdict: Verdict) -> tuple[bool, bool]:
    """(fixed, recommended) of a verdict: what a user acts on."""
    return verdict.fixed, verdict.fixed and not verdict.side_effects


def decided(verdict_at: Callable[[Thresholds], tuple[bool, bool]], thresholds: Thresholds,
            margin: tuple[float, float]) -> bool:
    """Whether the verdict ``verdict_at`` gives under ``thresholds`` stands with every threshold
    moved by ``margin`` (:func:`seed_margin`) towards firing and away from it: then one seed's
    figures decide it as every seed's would. (A side effect that comes and goes with the shift, on
    a remedy it does not make or unmake, is reported as the nominal thresholds find it.)"""
    decades, share = margin
    nominal = verdict_at(thresholds)
    return all(verdict_at(t) == nominal
               for t in (thresholds.shifted(decades, share), thresholds.shifted(-decades, -share)))


#: A verdict on one seed is left to every seed unless it holds with the thresholds this far off
#: either way: half a decade on a ratio and a tenth of the units on a fraction, or three times what
#: the finding's own simulation measured between its seeds where that is more (the median unit's
#: spread: a ratio of two units, sqrt 2 of it). The examples' seeds differ by 0.003-0.04 decades at
#: the median unit, and their fractions by at most 0.07 of the units.
MIN_MARGIN_DECADES = 0.5
MIN_MARGIN_SHARE = 0.1


def seed_margin(result: SimulationResult) -> tuple[float, float]:
    """(decades, share): how far a verdict on one seed must be from every threshold (above)."""
    spreads = [s for u in result.units if "output_grad_norm" in u.values
               for s in [u.log10_std("output_grad_norm")] if math.isfinite(s)]
    shares = [float(np.nanstd(u.values[m])) for u in result.units
              for m in ("saturated_fraction", "dead_fraction") if m in u.values and not np.isnan(u.values[m]).all()]
    return (max(MIN_MARGIN_DECADES, 3 * math.sqrt(2) * float(np.median(spreads))) if spreads else MIN_MARGIN_DECADES,
            max(MIN_MARGIN_SHARE, 3 * float(np.median(shares))) if shares else MIN_MARGIN_SHARE)


def inherited(before: SimulationResult | None, after: SimulationResult,
              thresholds: Thresholds) -> list[Detection] | None:
    """The findings the unchanged network ``before`` gives over the very seeds ``after`` simulated,
    where that is fewer than it had (a verdict on one seed first); None otherwise. A remedy is not to
    blame for what the original shows on the same draws, only for making it worse there
    (:func:`worsened`): a 1-unit ReLU born dead in seed 0 leaves no gradient there whatever the
    output's activation, and the linear output's one-seed re-simulation read "introduces
    vanishing_gradient (0.148 -> 0)" (peersweep20 dm56452176); a tanh swapped for a ReLU that
    multiplies an ODE loop's explosion by 1e7 on that seed is still blamed for it."""
    if before is None or after.seeds >= before.seeds:
        return None
    return problems(select_seeds(before, list(range(after.seeds))), thresholds)


@dataclass(frozen=True)
class Door:
    """How a door's verdicts genuinely differ; every other rule of :func:`judge` is shared.

    ``fixed_by_rule``: "fixed" where the finding's own rule, re-run on the changed network, is at
    most a note (the live-module and model-file doors: their rule figures are the network's own);
    otherwise where no finding of its code is left among :func:`~.rules.problems` (a spec's).
    ``overshoot_errors_only``: a remedy overshoots only where the opposite finding is new *and an
    error* (the live-module door: a mild vanishing left by orthogonal weights under tanh is a side
    effect, not an undoing of the fix of an RNN exploding 1e21x); otherwise any new opposite finding
    overshoots (a spec's: vanishing 4.5e-5 -> 301 is exploding). ``new_errors_unfix``: an error the
    original did not have makes the remedy not fixed (a spec's); otherwise it is a side effect only."""

    fixed_by_rule: bool
    overshoot_errors_only: bool
    new_errors_unfix: bool


#: The architecture-spec door's verdicts (:class:`_Verifier`).
SPEC_DOOR = Door(fixed_by_rule=False, overshoot_errors_only=False, new_errors_unfix=True)
#: The live-module and model-file door's (:class:`.module_check._Verifier`).
MODULE_DOOR = Door(fixed_by_rule=True, overshoot_errors_only=True, new_errors_unfix=False)


@dataclass(frozen=True)
class Verdict:
    """What a remedy's re-simulation says of a finding (:func:`judge`)."""

    value: float  # the finding's rule's measure on the changed network
    fixed: bool
    side_effects: list[str]
    not_measured: str | None  # :func:`nothing_to_measure`: why there was nothing to measure, or None


def judge(det: Detection, all_detections: list[Detection], after: SimulationResult,
          thresholds: Thresholds, before: SimulationResult | None = None, door: Door = SPEC_DOOR) -> Verdict:
    """What a remedy's simulation ``after`` says of the finding ``det`` among ``all_detections``
    (every door's verdict: ``door`` names where they differ); ``before``: the unchanged network's
    simulation, whose findings on ``after``'s seeds (:func:`inherited`) are no side effect of the
    remedy's, on every door."""
    before_codes = {d.code: d.severity for d in all_detections}
    value, severity = _part(det).severity(after, thresholds)
    found = problems(after, thresholds)
    same = inherited(before, after, thresholds)
    # not the original's on these seeds, or worse than it is there (a higher severity, 10x the growth)
    own = {d.code for d in found} if same is None else (
        {d.code for d in found} - {d.code for d in same}) | set(worsened(same, found, det.code))

    new = [d.code for d in found if d.code != det.code and d.code not in before_codes and d.code in own]
    new += [c for c in worsened(all_detections, found, det.code) if c in own]
    if before is not None:
        # a figure the original network had worse, left out of its rule there (layers that got no
        # gradient at all, whose step the changed network makes small): no side effect of this one
        matched = before if after.seeds >= before.seeds else select_seeds(before, list(range(after.seeds)))
        new = [c for c in new if not rule(c).architecture.worse_before(matched, after, thresholds)]
    # Fixed: none of this finding left, (a spec's) no error it did not have before, and the metric
    # not pushed past the opposite threshold (vanishing 4.5e-5 -> 301 is exploding).
    opposite = OPPOSITE.get(det.code)
    overshot = opposite in new and (not door.overshoot_errors_only
                                    or any(d.code == opposite and d.severity == "error" for d in found))
    new_errors = door.new_errors_unfix and any(
        d.severity == "error" and d.code != det.code and before_codes.get(d.code) != "error" and d.code in own
        for d in found)
    gone = severity in (None, "info") if door.fixed_by_rule else all(d.code != det.code for d in found)
    unmeasured = nothing_to_measure(det, value, after, thresholds)
    # a network still overflowing is fixed of nothing: its figures are NaN, not healthy
    fixed = (gone and not new_errors and not overshot
             and not still_nonfinite(found) and not unmeasured_with_errors(value, found)
             and not_judged(det.code, value, after) is None and unmeasured is None)
    return Verdict(value, fixed, new, unmeasured)


def nothing_to_measure(det: Detection, value: float, after: SimulationResult, thresholds: Thresholds) -> str | None:
    """Why a remedy's re-simulation ``after`` has nothing for ``det``'s metric to measure (``value``:
    the rule's measure on it), in words; None where it measured something. The change removed every
    unit of the kind the metric counts (a hidden softmax swapped for a ReLU leaves no softmax gain, a
    ReLU swapped for a leaky one no unit that can die), so the finding is gone by construction, not by
    measurement: such a verdict is not fixed (kerassweep26 boston_attention_json: "FIXED: min_softmax_gain
    0.0502 -> -", the metric gone with the layer it measured). A rule that judged the changed network
    by another of its figures measured it (:func:`same_metric_after`), as did one whose units of the
    kind remain under its bar (a hardtanh, the output layer)."""
    if not_judged(det.code, value, after) is not None:
        return None
    part = _part(det)
    if part.severity(after, thresholds)[1] is not None:
        return None  # it still fires: measured, and not fixed
    shown = value if math.isnan(value) else same_metric_after(det, value, after, thresholds)[0]
    if not math.isnan(shown) or part.remains(after, det.metric):
        return None
    return (f"the changed network has nothing {det.metric} measures (no unit of the kind it counts remains): the "
            "finding is gone with what it measured, which says nothing of whether the change helps the gradient "
            "there; the other findings judge the changed network")


def same_metric_after(det: Detection, value: float, after: SimulationResult,
                      thresholds: Thresholds) -> tuple[float, str | None]:
    """(``after``, note) for a verified remedy: ``det``'s own metric on the changed network, never
    another's. A rule measures each network by the figure that fits it (output_loss_mismatch: the
    share of samples a clip silences, or the loss floor a squashed output sets; vanishing_gradient:
    the ends' ratio, or a starved middle's), so the changed network's ``value`` can be another
    metric than the finding's (modsweep43: a loss floor shown as "silent_sample_fraction 1 -> 0.726",
    a starved middle's 1.6e-4 "-> 48.3", the ends' ratio). Where the rule still fires, its
    detection's own figure is taken where its metric is the finding's; otherwise the rule's
    :meth:`~ArchitectureRule.measured_metric` says what ``value`` is. Another metric: the finding's
    own measured on the changed network (:meth:`~ArchitectureRule.measure_as`) where the rule can;
    else ``after`` is nan (null) and the note names the figure measured instead."""
    if math.isnan(value):
        return value, None  # nothing measured: verdict_note says why
    part = _part(det)
    other: str | None = None
    severity = part.severity(after, thresholds)[1]
    if severity is not None:
        now = part.describe(severity, value, after, thresholds)
        if now.metric == det.metric:
            return now.value, None
        other, value = now.metric, now.value
    else:
        other = part.measured_metric(after, thresholds)
    if other is None or other == det.metric:
        return value, None
    same = part.measure_as(det.metric, after, thresholds)
    if same is not None and not math.isnan(same):
        return same, (f"after: the finding's {det.metric}, measured on the changed network ({same:.3g}); the "
                      f"rule now judges that network by another figure, {other}, which reads {value:.3g}")
    return math.nan, (f"after: not measured, the changed network has no {det.metric} to give; the rule measured "
                      f"it by {other} instead ({value:.3g})")


def not_judged(code: str, value: float, after: SimulationResult) -> str | None:
    """Why ``code``'s rule could not judge a remedy's re-simulation ``after`` (its metric ``value``
    nan while units of the kind it counts remain: :meth:`ArchitectureRule.unjudged`), or None. Such
    a verdict is not fixed: "fixed" never rests on nothing measured (onnxsweep17 u04: a file fixing
    its batch at 1, re-simulated on one seed, read "FIXED: max_dead_fraction 1 -> -")."""
    if not math.isnan(value):
        return None
    part: ArchitectureRule = rule(code).architecture
    return part.unjudged(after)


def unmeasured_note(value: float, code: str | None = None, after: SimulationResult | None = None) -> str | None:
    """What ``after: null`` means where the changed network has nothing the metric judges (a
    sigmoid swapped for a ReLU leaves no saturation to count, a ReLU for a leaky one no dead unit);
    or, given the finding's ``code`` and the changed network, where units of the kind remain that the
    rule does not judge (a hardtanh under its bar, the output layer: spec sweep 7's hardtanh MLP)."""
    if not math.isnan(value):
        return None
    key = getattr(rule(code).architecture, "key", None) if code is not None else None
    if key is not None and after is not None and any(key in u.values for u in after.units):
        return ("no unit of the changed network is past the share this metric judges it from (a hardtanh "
                "layer counts from 52% of its units past the kink, since a correct init already puts 31.7% "
                "there; the output layer is never judged)")
    return "the changed network has nothing this metric measures (no unit of the kind it counts remains)"


#: How much nearer its bar a remedy that does not fix its finding must bring the finding's metric to be
#: reported as improving it: a decade at least, past what seeds scatter by, and half the way or more
#: (in decades) from where it was to the bar (peersweep22 baseCNN_miss_norm: standardised 0..255 pixels
#: took the largest step from 60.5 to 0.535 of the weights, 2.05 of the 2.78 decades to the 0.1 bar, and
#: read "not recommended" beside a bare "not fixed"; Xavier on a deep sigmoid MLP, 2.5e-14 -> 1.2e-12,
#: 1.7 of 11.6 decades to its 1e-2 bar, is no partial fix).
IMPROVED_DECADES = 1.0
IMPROVED_SHARE = 0.5


def improved(before: float | None, after: float | None, threshold: float | None) -> bool:
    """Whether a remedy's re-simulation brought the finding's metric from ``before`` to ``after`` at
    least :data:`IMPROVED_DECADES` and :data:`IMPROVED_SHARE` of the way, in decades, to the bar
    ``threshold`` it fires past, staying on the same side of it (one that crossed it is fixed, or
    fires the other way: vanishing pushed into exploding); False where a figure is not measured or
    the bar is not a positive number."""
    if before is None or after is None or threshold is None:
        return False
    if not (before > 0 and after > 0 and threshold > 0) or not all(map(math.isfinite, (before, after, threshold))):
        return False
    was, now = math.log10(before / threshold), math.log10(after / threshold)
    if was == 0 or (was > 0) != (now > 0):
        return False
    gained = abs(was) - abs(now)
    return gained >= IMPROVED_DECADES and gained >= IMPROVED_SHARE * abs(was)


def verdict_note(value: float, fixed: bool, code: str, after: SimulationResult, thresholds: Thresholds,
                 judged: JudgedFigure | None = None) -> str | None:
    """What a verified remedy's ``after`` needs said beside it: :func:`unmeasured_note`; or, for a
    large_updates fix whose largest ratio left is over the warning level, that the figure is the
    output layer's fresh step, which the rule does not judge alone (spec sweep 7: "fixed" at 0.15); for
    vanishing_through_time whose changed network is still under the threshold, the bar its cell was
    judged by (a gated cell's horizon note, a plain cell's total: ``VanishingThroughTime.bar``)."""
    unjudged = not_judged(code, value, after)
    note = f"not judged: {unjudged}" if unjudged is not None else unmeasured_note(value, code, after)
    if unjudged is None and note is not None and judged is not None and judged.after is not None:
        # the metric has nothing to measure, but the verdict was judged by the figure the finding
        # fires on (a one-layer net's logit_std: no growth through depth to measure, on either
        # network), which a note saying "nothing this metric measures" contradicted
        was = f"{judged.before:.3g}" if judged.before is not None else "-"
        note = (f"the finding's own metric has nothing to measure on this network; the verdict was judged by the "
                f"figure the finding fires on, {judged.metric} ({was} -> {judged.after:.3g})")
    if note is None and code == "large_updates" and curvature_decides(after):
        found = curvature(after)
        bound = found[2] if found is not None else 2.0
        note = (f"lr x sharpness is {value:.3g} at the new rate, under SGD's stability bound {bound:g}"
                if fixed else None)
    elif note is None and code == "large_updates" and fixed and value > thresholds.large_update_warning:
        note = (f"the largest ratio left, {value:.3g}, is the output layer's first step, which large_updates does "
                f"not judge alone under {thresholds.large_update_error:g} (a freshly initialised head moves that much "
                "on a sound recipe); every other layer is under the warning level")
    elif note is None and code == "vanishing_gradient" and fixed and value == 0:
        # "fixed" beside "after 0" (specsweep13 P1): the change left a designed zero layer (a readout
        # whose own weights get a gradient), which the rule reads as a note, not as no gradient for good
        names = ", ".join(u.name for u in designed_zero_layers(after)) or "a zero layer"
        note = (f"after 0: {names} is still all zero, but as a designed zero init (its own weights get a "
                "gradient, so it learns at the first step and passes the gradient back from then on), which "
                "vanishing_gradient reads as a note; the layers before it were measured nothing at initialisation")
    elif note is None and code == "vanishing_through_time":
        # the same ratio is a note for a gated cell and an error for a plain one: say which bar the
        # verdict was judged by (newuser11 #3)
        part: Any = rule(code).architecture
        note = part.bar(after, thresholds)
    return note


def unmeasured_with_errors(value: float, found: list[Detection]) -> bool:
    """A change that leaves the finding's own measure undefined (a ReLU swapped for a leaky one has
    no dead units to count, a tanh swapped for a ReLU no saturation) while the network still has an
    error-severity finding about the gradient's passage: what the measure stood for is judged by
    those instead, and the change is not a fix (RetinaNet's -4.6 biases under leaky ReLU: no unit
    dead, the backbone's gradient 4e-14)."""
    return math.isnan(value) and any(d.severity == "error" and d.code in _FLOW for d in found)


#: Findings about the gradient passing the network (an optimizer's step size is not one)
_FLOW = frozenset({"vanishing_gradient", "exploding_gradient", "vanishing_through_time", "exploding_through_time",
                   "dead_units", "saturation", "nonfinite"})


#: Findings measured as a growth (worse when larger) and as a shrinking (worse when smaller): a
#: remedy that moves one of them 10x the wrong way made it worse.
_GROWTHS = frozenset({"exploding_gradient", "exploding_through_time", "large_updates"})
_SHRINKS = frozenset({"vanishing_gradient", "vanishing_through_time", "small_updates"})
WORSE_FACTOR = 10.0


def worsened(before: list[Detection], found: list[Detection], fixing: str) -> list[str]:
    """The codes of the findings (other than ``fixing``) that a remedy's simulation ``found``
    worse than ``before``: a higher severity, or a growth 10x larger, a shrinking 10x smaller (a
    tanh swapped for a ReLU in a stiff ODE loop "fixes" its saturation and multiplies its
    explosion by 1e7)."""
    was = {d.code: d for d in before}
    out = []
    for d in found:
        b = was.get(d.code)
        if d.code == fixing or b is None:
            continue
        if SEVERITY_RANK[d.severity] > SEVERITY_RANK[b.severity] or (
                d.code in _GROWTHS and d.value > WORSE_FACTOR * b.value) or (
                d.code in _SHRINKS and d.value * WORSE_FACTOR < b.value):
            out.append(d.code)
    return out


def still_nonfinite(found: list[Detection]) -> bool:
    """Whether a remedy's simulation still overflows (a nonfinite error among its ``found``)."""
    return any(d.code == "nonfinite" and d.severity == "error" for d in found)


def _new_rate_only(raw: dict[str, Any], patched: dict[str, Any], plan: Plan,
                   result: SimulationResult) -> SimulationResult | None:
    """:func:`gradhealth.analysis.simulate.at_rate` of ``result`` when ``patched`` is ``raw`` with
    only its optimizer's learning rate changed (a rate remedy), else None."""
    old, new = raw.get("optimizer"), patched.get("optimizer")
    if (not isinstance(old, dict) or not isinstance(new, dict) or plan.spec.optimizer is None
            or {**patched, "optimizer": {**new, "lr": old.get("lr")}} != raw):
        return None
    return at_rate(result, plan.spec.optimizer, plan)


def clip_reference(code: str, remedies: list[Remedy],
                   results: dict[int, SimulationResult]) -> SimulationResult | None:
    """The re-simulation a clipping threshold for a ``code`` finding is taken from: the best
    ranked remedy that removed the finding, even one that traded it for another (orthogonal
    recurrent weights under tanh: the explosion gone, a mild vanishing left), since it measures
    the network's scale without the explosion. None when no simulated remedy removed it (the
    broken network's own norms would give a threshold that clips nothing). ``results`` maps
    ``id(remedy)`` to its re-simulation."""
    return next((results[id(r)] for r in sorted(remedies, key=lambda r: _rank(code, r))
                 if r.verified is not None and r.verified.fixed and id(r) in results), None)


#: Codes that are one metric past its two thresholds: a remedy that moves a finding into its
#: opposite has fixed nothing.
OPPOSITE = {"vanishing_gradient": "exploding_gradient", "exploding_gradient": "vanishing_gradient",
            "vanishing_through_time": "exploding_through_time",
            "exploding_through_time": "vanishing_through_time"}

#: Training-time remedies a clipping threshold is listed before (the order the rules propose them).
_AFTER_CLIPPING = ("lower_learning_rate", "raise_learning_rate", "weight_decay")


#: Measured fixes whose badness differs by less than this (5% of units, 0.05 of a decade) rank as
#: equals, in the order their rule proposes them, since one seed's figures scatter by about as much.
RANK_RESOLUTION = 0.05

#: How much of the network a remedy changes: of the fixes that work, the smallest change comes first
#: (the inputs, an init, a bias, a rate; then an activation or the loss; then new structure), as an
#: engineer would try them; how close each leaves the metric to healthy orders fixes of one scope.
_SCOPE: dict[str, int] = {
    "normalise_inputs": 0, "normalise_targets": 0, "he_init": 0, "xavier_init": 0, "lecun_init": 0, "orthogonal_init": 0, "zero_bias": 0,
    "lower_learning_rate": 0, "raise_learning_rate": 0, "positive_learning_rate": 0, "weight_decay": 0,
    "gradient_clipping": 0, "early_stopping": 0,
    "relu_family_activation": 1, "logits_loss": 1, "output_activation": 1, "domain_guard": 1, "stable_decay": 1,
    "batch_norm": 2, "layer_norm": 2, "pre_layer_norm": 2, "residual_connections": 2, "scaled_residual": 2,
    "gated_recurrent_cell": 2,
}


def _rank(code: str, r: Remedy) -> tuple[int, int, float]:
    if r.verified is None or r.verified.not_measured is not None:
        # not simulable, or nothing left to measure: after every measured fix, before every measured failure
        return (1, 0, 0.0)
    badness = rule(code).badness.of(r.verified.after)
    badness = float(round(badness / RANK_RESOLUTION)) if math.isfinite(badness) else badness
    if r.verified.fixed and not r.verified.side_effects:
        return (0, _SCOPE.get(r.id, 1), badness)
    if r.verified.improved and r.recommended:
        return (1, -1, badness)  # a measured partial remedy: after the fixes, before what nothing measured
    if r.verified.fixed:
        return (1, 0, badness)
    return (2, 0, badness)


# --- theory -------------------------------------------------------------------------------------

def theory_report(result: SimulationResult) -> Theory:
    """Mean-field prediction next to the measurement for every stretch, and the critical inits."""
    out = Theory()
    seen: set[tuple[str, float, tuple[tuple[str, float], ...]]] = set()
    for run in fc_stretches(result):
        act = run[0].activation or "identity"
        # the activation's own parameters (a leaky_relu's slope 0.25: chi1 = sigma_w2 (1 + 0.25^2) / 2)
        params = theory.activation_parameters(act, run[0].activation_params)
        sw2 = [u.mean("weight_std") ** 2 * (u.fan_in or 1) for u in run]
        sigma_w2 = sum(sw2[1:]) / len(sw2[1:])
        sigma_b2 = sum(u.mean("bias_mean_square") if "bias_mean_square" in u.values else 0.0 for u in run) / len(run)
        q_in = sw2[0] * run[0].mean("input_mean_square") + sigma_b2
        try:
            pred = theory.predict_stretch(act, sigma_w2, sigma_b2, len(run), q_in, **params)
        except (ValueError, OverflowError, ZeroDivisionError):
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(run[0].values["output_grad_norm"]) - np.log10(run[-1].values["output_grad_norm"])
        measured_log = float(np.mean(logs)) if np.all(np.isfinite(logs)) else math.nan
        predicted = pow10(pred.predicted_log10_ratio) if math.isfinite(pred.predicted_log10_ratio) else math.nan
        out.stretches.append(TheoryStretch(
            layers=[run[0].name, run[-1].name], depth=len(run), activation=act,
            sigma_w2=round(sigma_w2, 6), sigma_b2=round(sigma_b2, 6),
            q_star=finite_or_none(pred.q_star), chi1=finite_or_none(_phase_chi(pred)), phase=_phase(pred),
            predicted_ratio=finite_or_none(predicted), measured_ratio=finite_or_none(pow10(measured_log)),
            log10_error=finite_or_none(measured_log - pred.predicted_log10_ratio),
        ))
        key = (act, round(sigma_b2, 4), tuple(sorted(params.items())))
        if key not in seen:
            seen.add(key)
            out.critical.append(critical_init(act, key[1], params))
    return out


#: chi1 within 1% of 1 counts as critical: sigma_w^2 is measured from a finite weight sample (a 256x256
#: matrix's variance scatters by ~0.6%), so a finer distinction would be noise.
CRITICAL_TOLERANCE = 0.01


def _phase_chi(pred: theory.StretchPrediction) -> float:
    """The chi1 the stretch's phase is named by: at q*, or with no finite fixed point (a ReLU's q
    growing or shrinking forever) its limit there, the stack's last layer's (q-independent for the
    ReLU family). The document's ``chi1`` is this one, so a phase is never named beside a chi1 left
    out (onnxsweep27 snn_policy: ``chi1=- (chaotic)`` for ReLU layers at sigma_w^2 5.34, chi1 2.67)."""
    if math.isfinite(pred.chi1_star):
        return pred.chi1_star
    return pred.chi_layers[-1] if pred.chi_layers else math.nan


def _phase(pred: theory.StretchPrediction) -> str:
    # (He init's sigma_w^2 = 2.00009 measured is critical, not "chaotic", as the README's
    # relu_he_mlp says)
    chi = _phase_chi(pred)
    if math.isfinite(chi) and abs(chi - 1.0) < CRITICAL_TOLERANCE:
        return "critical"
    return pred.phase


@functools.lru_cache(maxsize=256)
def _critical(activation: str, sigma_b2: float, params: tuple[tuple[str, float], ...] = ()) -> float | None:
    # a root search: ~0.1 s, so computed once
    return theory.critical_sigma_w2(activation, sigma_b2, **dict(params))


def critical_init(activation: str, sigma_b2: float = 0.0, params: dict[str, float] | None = None) -> CriticalInit:
    """The edge-of-chaos weight variance for ``activation`` (with its parameters ``params``, e.g. a
    leaky_relu's ``negative_slope``: 2 / (1 + slope^2)) as a concrete init suggestion."""
    given = theory.activation_parameters(activation, params)
    crit = _critical(activation, sigma_b2, tuple(sorted(given.items())))
    named = activation + (f" ({', '.join(f'{k} {v:g}' for k, v in given.items())})" if given else "")
    recommended = SELF_NORMALISING_SIGMA_W2.get(theory.canonical_activation(activation))
    if recommended is not None:
        # SELU self-normalises (Klambauer et al. 2017): its fixed point mean 0, variance 1 needs LeCun
        # normal, Var(W) = 1/fan_in; the chi1 = 1 root (0.4768/fan_in with sigma_b^2 = 0) is where q*
        # leaves 0, i.e. where the forward signal collapses, so it is no init to advise (specsweep11 #4)
        crit_text = (f"the gradient-critical Var(W) = {crit:.4g}/fan_in (chi1 = 1) is not the one to use: "
                     "it moves the forward variance off SELU's fixed point"
                     if crit is not None else "it has no gradient-critical weight variance here")
        text = (f"for {named}: LeCun normal, Var(W) = {recommended:g}/fan_in, i.e. "
                f"nn.init.normal_(w, std=({recommended:g} / fan_in) ** 0.5) (Klambauer et al. 2017): "
                f"SELU's self-normalising fixed point (mean 0, variance 1) needs it, and its mild chi1 > 1 "
                f"is expected; {crit_text}")
    elif crit is None:
        text = f"{named} has no critical weight variance with sigma_b^2 = {sigma_b2:g}"
    else:
        recommended = crit
        text = (f"for {named} with sigma_b^2 = {sigma_b2:g}: Var(W) = {crit:.4g}/fan_in, "
                f"i.e. nn.init.normal_(w, std=({crit:.4g} / fan_in) ** 0.5)")
    return CriticalInit(activation=activation, sigma_b2=sigma_b2, critical_sigma_w2=finite_or_none(crit),
                        recommended_sigma_w2=finite_or_none(recommended) if recommended is not None else None,
                        suggestion=text)


#: activations whose published init is not the chi1 = 1 one: SELU's self-normalising networks are
#: built for LeCun normal, Var(W) = 1/fan_in (Klambauer et al. 2017, Sec. 3: "the weights are
#: initialised such that sum w = 0 and sum w^2 = 1"), where q* = 1 and chi1* = 1.07
SELF_NORMALISING_SIGMA_W2: dict[str, float] = {"selu": 1.0}
