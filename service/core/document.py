"""The diagnosis document: the JSON every check returns (pydantic models, so the
OpenAPI document and the JSON Schema are generated from them).

Contract fields (clients depend on them; add, never rename): ``status``,
``findings[].code|severity|summary|evidence|remedies``, ``remedies[].id`` and
``remedies[].verified.before|after|fixed``, ``layers[].name|grad_norm|output_grad_norm``,
``time_steps[].t|output_grad_norm``, ``theory``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

Severity = Literal["info", "warning", "error"]
Status = Literal["healthy", "warning", "unhealthy"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}


def _step_json(value: float) -> float | int:
    # a step is counted in whole numbers almost always (epochs may be fractional): JSON says 1200,
    # not 1200.0, as the log wrote it; beyond 2**53 a float is no exact integer any more
    return int(value) if math.isfinite(value) and value.is_integer() and abs(value) < 2**53 else value


#: A training step (or epoch) as a number: written without ``.0`` in JSON where it is whole.
Step = Annotated[float, PlainSerializer(_step_json, return_type=Any, when_used="json"),
                 WithJsonSchema({"type": "number"})]


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN/Inf: a figure that is not finite is reported as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def pow10(log10: float) -> float:
    """10 ** ``log10`` as a float: inf past the largest float (a predicted ratio of 1e400 over a deep
    net at std 100) rather than OverflowError; nan stays nan."""
    if not math.isfinite(log10):
        return log10 if math.isnan(log10) else (math.inf if log10 > 0 else 0.0)
    return math.inf if log10 > 308.25 else 10.0 ** log10


class JudgedFigure(BaseModel):
    """A figure a remedy's verdict was judged on besides the finding's own metric, before and after."""

    code: str = Field(description="the finding code whose figure this is")
    metric: str
    before: float | None
    after: float | None


class Verified(BaseModel):
    """The remedy applied to the spec and simulated again."""

    metric: str = Field(description="the finding's metric, measured the same way before and after")
    before: float | None
    after: float | None
    fixed: bool | None = Field(description="the re-simulated spec has no finding of this code above a note (info), "
                                           "no error-severity finding it did not have before, and the metric "
                                           "not pushed past the opposite threshold (vanishing -> exploding); null "
                                           "where `not_measured` says the change left nothing the metric measures: "
                                           "unknown, neither fixed nor not fixed")
    side_effects: list[str] = Field(default_factory=list, description="finding codes the change introduced, or made worse (a higher severity, or 10x further the wrong way)")
    improved: bool = Field(
        False, description="not fixed, but the metric (where the verdict turned on it: no `judged` figure) "
                           "came a decade or more nearer the finding's bar (its evidence's `threshold`), and half "
                           "the way there or more in decades, on the same side, and the change introduced nothing "
                           "(no side effects): a partial remedy, still recommended, ranked after the fixes and "
                           "before the remedies nothing measured ('improved, not fixed' in the reports: "
                           "standardised 0..255 pixels taking the largest step from 60.5 to 0.535 of the weights, "
                           "2.05 of the 2.78 decades to the 0.1 bar)")
    judged: JudgedFigure | None = Field(
        None, description="the figure the verdict turns on where the finding fires on something other than its "
                          "metric (post_ln_depth_risk: the Post-LN stack's depth, 6 -> 0 for Pre-LN)")
    side_effect_figures: list[JudgedFigure] = Field(
        default_factory=list, description="each side effect's own metric on the unchanged and on the changed "
                                          "network (xavier_init on a chaotic tanh net: vanishing_gradient's "
                                          "output_grad_ratio_first_to_last 1.3e3 -> 7.8e-4)")
    note: str | None = Field(None, description=(
        "what the verdict was judged by where the figure alone misleads: `after` null as nothing is left to "
        "measure (`not_measured` where no unit of its kind is left); vanishing_through_time still under the "
        "threshold, a gated cell's horizon note against a plain cell's total"))
    not_judged: str | None = Field(
        None, description="why the finding's rule could not judge the changed network though it has what the "
                          "metric counts (dead_units on a file fixing its batch at 1: 'too few samples'); the "
                          "remedy is then not fixed, and `after` is null")
    not_measured: str | None = Field(
        None, description="why the finding's metric has nothing to measure on the changed network: the change "
                          "removed every unit of the kind it counts (a hidden softmax swapped for a ReLU leaves "
                          "no softmax gain, a ReLU swapped for a leaky one no unit that can die); `fixed` is "
                          "then null (unknown: nothing measured that the problem is gone or not), `after` is null, and "
                          "it stays recommended unless it brought side effects, as an unverified remedy")
    seeds: int | None = Field(None, description="seeds the after figure and the verdict were measured on: one "
                                                "where its verdict held with every threshold half a decade "
                                                "(a tenth of the units) either way, else every seed of the spec")
    fresh_weights: bool = Field(
        False, description="the changed network was measured with freshly drawn weights while the check was of "
                           "weights as given (a model file's stored weights, a trained checkpoint): `after` and "
                           "`fixed` are a freshly initialised network of this architecture's, not this checkpoint's "
                           "(the remedy's `for_retraining` is true)")


def clean_nonfinite(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: clean_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_nonfinite(v) for v in value]
    return value


class Remedy(BaseModel):
    id: str
    title: str
    rationale: str
    change: str = Field(description="the change to make, in words")
    snippet: str = Field(description="code that makes the change, in the framework `snippet_framework` names")
    snippet_framework: Literal["pytorch", "keras", "boosting"] = Field(
        "pytorch", description="the framework the snippet is written for: keras for a check of a Keras model file "
                               "(its layers' initialisers, activations, a layers.BatchNormalization(), the "
                               "optimizer's global_clipnorm, named by the file's layer names), boosting for a "
                               "gradient-boosting library's evaluation log (XGBoost, LightGBM, CatBoost parameters: "
                               "learning_rate/eta, early stopping, the trees' regularisation), else pytorch "
                               "(a spec, a live module, an ONNX file; an RLHF trainer's config stays as it is)")
    patch: list[dict[str, Any]] = Field(default_factory=list, description="RFC 6902 JSON Patch to the spec")
    params: dict[str, Any] = Field(default_factory=dict, description="concrete values, e.g. max_norm")
    verified: Verified | None = None
    unverified: Literal["skipped", "training_time", "not_simulable", "over_budget"] | None = Field(
        None, description="why `verified` is null in an architecture check: 'skipped' (verification "
                          "was turned off, --no-verify), 'over_budget' (its re-simulation, estimated from the "
                          "check's own time per seed, would pass GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS: a "
                          "large network on a slow device), 'training_time' (a change to training, "
                          "nothing to re-simulate at init) or 'not_simulable' (a change to a live "
                          "module's or an imported model's code that the check cannot make on a copy, "
                          "such as moving a hand-written Post-LN block's norms: described, not measured)")
    recommended: bool = Field(True, description="false when the service measured that it does not fix this case")
    for_retraining: bool = Field(
        False, description="the change re-draws or resets the weights (an initialisation, an activation swap with "
                           "its re-initialisation, a gate's bias, zeroed biases) and the check was of weights as "
                           "given (a model file's stored weights): it is advice for training this architecture "
                           "again from scratch, since applied to the checkpoint it would discard the training; "
                           "listed after the remedies that apply to the checkpoint itself")

    # Params are figures from measurements, as evidence is, that may be NaN/Inf (a gradient rise past the
    # largest float): the document stays valid JSON, with null for them, as evidence has. Cleaned when
    # made and again when written, since builders add params to a made remedy (``fix.params[k] = v``).
    @field_validator("params", mode="before")
    @classmethod
    def _json_safe_params(cls, v: Any) -> Any:
        return clean_nonfinite(v) if isinstance(v, dict) else v

    @field_serializer("params")
    def _finite_params(self, v: dict[str, Any]) -> dict[str, Any]:
        return clean_nonfinite(v)


class Evidence(BaseModel):
    """Which layers / time steps / numbers support a finding. Extra keys allowed."""

    model_config = ConfigDict(extra="allow")

    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    layers: list[str] | None = None
    steps: list[int | float] | None = Field(
        None, description="the log's own steps: whole numbers, or fractional epochs where a log counts in epochs")
    time_steps: list[int] | None = None

    @model_validator(mode="before")
    @classmethod
    def _json_safe(cls, data: Any) -> Any:
        # Evidence is built from measurements that may be NaN/Inf; the document must stay valid JSON.
        return clean_nonfinite(data) if isinstance(data, dict) else data

    @model_serializer(mode="wrap")
    def _finite_when_written(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):
        # and when written: ``model_copy(update=...)`` (a detector adding figures to a finding's
        # evidence) and attribute assignment do not validate. No return type: with one, pydantic
        # would take it for the JSON schema of Evidence, which stays its fields'
        return clean_nonfinite(handler(self))


class Finding(BaseModel):
    code: str
    severity: Severity
    summary: str
    explanation: str
    evidence: Evidence
    remedies: list[Remedy] = Field(default_factory=list)


class LayerReport(BaseModel):
    name: str = Field(description="path in the spec, e.g. layers[3].linear#7")
    pointer: str = Field(description="JSON pointer of the spec entry that made this layer")
    type: str
    activation: str | None = None
    grad_norm: float | None = Field(None, description="||dL/dW|| (geometric mean over seeds); null for a layer with "
                                                       "no weights (a pool, a flatten, an activation), whose "
                                                       "gradient is its output's, output_grad_norm")
    output_grad_norm: float | None = Field(None, description="||dL/dh|| of the layer's output")
    activation_mean: float | None = None
    activation_std: float | None = None
    saturated_fraction: float | None = None
    dead_fraction: float | None = Field(
        None, description="each seed's share of ReLU units zero for every sample of its batch, averaged over seeds")
    dead_fraction_all_samples: float | None = Field(
        None, description="the share of ReLU units zero for every sample of every seed's batch together (ONNX, "
        "Keras graph and live-module checks): the figure dead_units judges there")
    weight_std: float | None = None
    weight_std_he: float | None = Field(None, description="sqrt(2/fan_in)")
    weight_std_xavier: float | None = Field(None, description="sqrt(2/(fan_in+fan_out))")
    weight_std_lecun: float | None = Field(None, description="sqrt(1/fan_in)")
    fan_in: int | None = None
    fan_out: int | None = None
    normalised: bool = Field(
        False, description="a batch, layer, group or instance norm takes this layer's output directly or "
        "through positively homogeneous steps only (relu, padding, pooling, reshapes), or jointly with "
        "the other layers writing to a residual stream that only norms read, so the loss does not "
        "depend on the scale of its weights")
    container: bool = Field(
        False, description="a spec's residual or block entry: a container of layers, whose figures are its "
        "layers' together (its grad_norm over all their weights); it is neither counted nor judged as a layer "
        "with weights (no update_ratio): the layers in it are, each on its own")
    nonfinite_forward: bool = False
    nonfinite_backward: bool = False
    spread: dict[str, float | None] = Field(
        default_factory=dict, description="std of log10 of each norm across seeds")
    seeds_without_samples: int | None = Field(
        None, description="live modules: the seeds in which no sample reached this layer (not called, or "
        "called on an empty batch: a sparse mixture of experts' expert the router gave none of the batch); "
        "its figures are the other seeds', and it is neither dead nor alive in those; None: every seed's")
    update_ratio: float | None = Field(
        None, description="with an optimizer: the first step's ||delta W|| / ||W|| of this layer (geometric mean "
        "over seeds; healthy about 1e-3), the figure large_updates and small_updates start from (they judge it "
        "after the optimizer's start-up factor, a warm-up and a small init's scale: see the finding's evidence); "
        "None without an optimizer or for a layer with no weights it steps")
    judged_update_ratio: float | None = Field(
        None, description="with an optimizer: the step's ||delta W|| / ||W|| as large_updates and small_updates "
        "judge it, the first step's times the optimizer's start-up factor (RMSprop's and Adadelta's "
        "sqrt(1 - rho), Adagrad's 25th step) and against at least a usual initialisation's scale; the same as "
        "update_ratio for SGD and Adam on a usually initialised layer. The finding's per-layer line (0.1) and, "
        "under an adaptive optimizer, its depth sum (1) are on this figure")

    @field_serializer("grad_norm", "output_grad_norm", "activation_mean", "activation_std", "saturated_fraction",
                      "dead_fraction", "dead_fraction_all_samples", "weight_std", "update_ratio",
                      "judged_update_ratio")
    def _finite(self, v: float | None) -> float | None:
        return finite_or_none(v)


class TimeStep(BaseModel):
    layer: str
    sublayer: int = 0
    t: int
    output_grad_norm: float | None = Field(description="||dL/dh_t||, geometric mean over seeds")
    log10_spread: float | None = None


class TheoryStretch(BaseModel):
    layers: list[str] = Field(description="first and last layer of the stretch")
    depth: int
    activation: str
    sigma_w2: float = Field(description="measured Var(W) * fan_in")
    sigma_b2: float
    q_star: float | None
    chi1: float | None = Field(description="per-layer factor of the squared gradient norm at q* (with no finite q*, a ReLU stack's q growing or shrinking without end: at the q its last layer reaches), the one phase is named by")
    phase: str
    predicted_ratio: float | None = Field(description="||dL/dh_first|| / ||dL/dh_last|| from mean-field theory")
    measured_ratio: float | None
    log10_error: float | None


class CriticalInit(BaseModel):
    activation: str
    sigma_b2: float
    critical_sigma_w2: float | None = Field(description="Var(W) * fan_in at which chi1 = 1 (edge of chaos)")
    recommended_sigma_w2: float | None = Field(
        default=None, description="Var(W) * fan_in the suggestion advises: the critical one, except for an "
        "activation with its own published init (selu: LeCun's 1, for self-normalisation)")
    suggestion: str


class Theory(BaseModel):
    stretches: list[TheoryStretch] = Field(default_factory=list)
    critical: list[CriticalInit] = Field(default_factory=list)


class SimulationInfo(BaseModel):
    seeds: int
    batch_size: int
    device: str
    precision: str
    parameters: int
    activation_bytes: int = Field(description=(
        "bytes of one seed's activations: a spec's estimated from its layers' output shapes, batch and "
        "precision; a live module's (check_module) measured, the float inputs and each measured layer's "
        "outputs (before and after its activation) that the simulation recorded"))
    duration_s: float
    remedies_simulated: int = Field(default=0, description=(
        "patched specs simulated again to verify remedies; a remedy that changes only the optimizer's "
        "learning rate is verified from the first simulation's gradients (its update ratios scale "
        "with the rate), exactly and without a simulation"))
    remedies_rescaled: int = Field(default=0, description=(
        "changed specs (or models) verified without a simulation of their own: a change of the optimizer's "
        "learning rate alone, verified by rescaling the first simulation's update ratios; not counted in "
        "remedies_simulated"))
    loss: str | None = Field(default=None, description=(
        "the loss backpropagated (cross_entropy, binary_cross_entropy, mse, mae, huber, sum), as the spec, "
        "the model file or the caller gave it or its default; \" (on probabilities)\" where the outputs are "
        "taken for probabilities (a Keras loss with from_logits=False)"))
    optimizer: dict[str, str | float | bool] | None = Field(default=None, description=(
        "the optimizer whose first step was judged (large_updates): its type, lr and the settings that differ "
        "from torch's defaults; null: none was given, so large_updates and small_updates were not checked"))
    optimizer_unknown: str | None = Field(default=None, description=(
        "where optimizer is null because the model file's compiled optimizer is not one the simulation "
        "knows (a Keras Ftrl or Lion, a registered class of the user's, a learning rate not read): its "
        "name in the file; large_updates and small_updates were not checked"))
    notes: list[str] = Field(default_factory=list, description=(
        "what the check read, assumed or left out that no finding states (a scheduler with no warm-up, "
        "an optimizer whose warm-up length is unknown, layers whose first step was not measured); kept out "
        "of the summary, which names the findings"))


class SeriesSummary(BaseModel):
    """One series read from a log (log checks), for dashboards."""

    name: str
    role: str
    layer: str | None = None
    points: int
    nonfinite: int
    first_step: Step | None = None
    last_step: Step | None = None
    min: float | None = None
    max: float | None = None
    median: float | None = None
    last: float | None = None


class SeriesPoints(BaseModel):
    """A series' values over steps, downsampled for charts (log checks): at most 500 points per
    series, 120 per per-layer norm series and 128 of those (gradhealth.logs.check's limits).

    Kept only for the series a finding names, the learning rate and the per-layer gradient norms,
    so a report or dashboard can draw them without the log. Each bucket of consecutive points keeps
    its lowest and highest value and its first non-finite one, so spikes and NaNs survive the
    downsampling; ``values[i]`` is null where the log has NaN or Inf.
    """

    name: str = Field(description="the series as the log names it (matches series[].name)")
    role: str
    layer: str | None = None
    steps: list[Step]
    values: list[float | None]
    downsampled: bool = Field(False, description="true when the log has more points than these")

    @field_serializer("values")
    def _finite_values(self, v: list[float | None]) -> list[float | None]:
        return [finite_or_none(x) for x in v]


class LogInfo(BaseModel):
    """What the log check read."""

    format: str
    source: str
    series: int
    points: int
    warnings: list[str] = Field(default_factory=list)
    params: dict[str, str] = Field(default_factory=dict)
    duration_s: float


class Diagnosis(BaseModel):
    schema_version: str = "1"
    kind: Literal["architecture", "logs"] = "architecture"
    name: str | None = None
    status: Status
    summary: str
    judged: bool = Field(
        True, description="false where a log check had too little to judge the run's trends (an excerpt of a few "
                          "lines, a fraction of one epoch, no training loss at all): an insufficient_data finding "
                          "says why (`not_judged`). A `healthy` status then means only that nothing was found, not "
                          "that the trends were checked; the text report's headline says NOT JUDGED, and "
                          "`gradhealth check --fail-on-unjudged` exits 1. Always true for an architecture check")
    not_judged: str | None = Field(
        None, description="where `judged` is false: why, in the insufficient_data finding's words")
    findings: list[Finding]
    layers: list[LayerReport] = Field(default_factory=list)
    time_steps: list[TimeStep] = Field(default_factory=list)
    theory: Theory = Field(default_factory=Theory)
    simulation: SimulationInfo | None = None
    series: list[SeriesSummary] = Field(default_factory=list, description="log checks: the series read")
    points: list[SeriesPoints] = Field(
        default_factory=list, description="log checks: downsampled values (<= 500 per series) of the "
        "series a finding names, the learning rate and the per-layer gradient norms, for charts")
    log: LogInfo | None = None
    baseline: BaselineComparison | None = Field(
        None, description="comparison with an earlier document (gradhealth check --baseline)")

    # A notebook shows a document by these (newuser17 #3: pydantic's repr of every field, ~16,000
    # characters for a 25-module MLP, was what `doc` and `print(doc)` showed). The fields, equality,
    # model_dump and pickling are pydantic's, untouched.
    def __repr__(self) -> str:
        """``<Diagnosis architecture 'Sequential' unhealthy: vanishing_gradient (error), ...>``: the
        kind, name, status and each finding's code and severity, on one line."""
        shown = ", ".join(f"{f.code} ({f.severity})" for f in self.findings[:NAMED_FINDINGS])
        more = len(self.findings) - NAMED_FINDINGS
        if more > 0:
            shown += f", +{more} more"
        name = f" {self.name!r}" if self.name else ""
        return f"<Diagnosis {self.kind}{name} {self.status}{': ' + shown if shown else ''}>"

    def __str__(self) -> str:
        """The text report (``gradhealth.render(doc)``, what ``gradhealth check`` prints)."""
        from gradhealth.library import render

        return render(self)

    def _repr_markdown_(self) -> str:
        """The Markdown report, which a notebook (Jupyter, VS Code) shows for a cell ending in ``doc``."""
        from gradhealth.library import render

        return render(self, "markdown")


#: How many findings a Diagnosis's one-line repr names before it counts the rest.
NAMED_FINDINGS = 4


def status_of(findings: list[Finding]) -> Status:
    """``unhealthy`` with any error, ``warning`` with any warning, else ``healthy``."""
    worst = max((SEVERITY_RANK[f.severity] for f in findings), default=0)
    return "unhealthy" if worst == 2 else "warning" if worst == 1 else "healthy"


def unjudged_by(findings: list[Finding]) -> Finding | None:
    """The ``insufficient_data`` finding that left the run's trends unjudged (evidence ``judged``
    false), if any: the document's ``judged`` and ``not_judged`` follow it."""
    return next((f for f in findings if f.code == "insufficient_data"
                 and (f.evidence.model_extra or {}).get("judged") is False), None)


def headline(doc: Diagnosis) -> str:
    """The status as a report's headline word: ``NOT JUDGED (too little data)`` for a healthy
    document whose trends were not judged (logsweep98: a 6-line excerpt read "HEALTHY" above a note
    saying it was not judged), else the status in capitals. The document's ``status`` is unchanged."""
    if doc.status == "healthy" and not doc.judged:
        return "NOT JUDGED (too little data)"
    return doc.status.upper()


def more_findings(findings: list[Finding]) -> str:
    """What a summary that names the worst finding adds for the others: `` (+3 more findings)``
    ("" for none). The noun is said: after a list of layers, "(+3 more)" read as three more layers
    (newuser9 P10)."""
    more = len(findings) - 1
    return f" (+{more} more finding{'s' if more > 1 else ''})" if more > 0 else ""


BaselineChangeKind = Literal["new", "gone", "worse", "unchanged"]


class BaselineFinding(BaseModel):
    """One finding compared with the baseline document (see gradhealth.core.baseline)."""

    change: BaselineChangeKind = Field(
        description="new: not in the baseline; gone: only in the baseline; worse: in both and "
        "more severe, or its figure or one of its layers moved past the tolerances; unchanged")
    code: str
    severity: Severity = Field(description="in the current document (the baseline's for `gone`)")
    baseline_severity: Severity | None = None
    where: str | None = Field(None, description="the layer or series that identifies the finding")
    summary: str
    reasons: list[str] = Field(default_factory=list, description="why a finding counts as worse")


class BaselineLayer(BaseModel):
    """A layer that moved past a tolerance between the baseline and now."""

    layer: str
    metric: Literal["log10_grad_ratio", "dead_fraction", "saturated_fraction"] = Field(
        description="log10_grad_ratio: log10 of ||dL/dh|| of the layer over the last layer's")
    before: float | None
    after: float | None


class BaselineComparison(BaseModel):
    """The document compared with an earlier one (``gradhealth check --baseline``)."""

    source: str | None = Field(None, description="the baseline document's file")
    decades: float = Field(description="tolerance for a gradient ratio, in decades (log10)")
    fraction_step: float = Field(description="tolerance for a dead/saturated fraction's rise")
    new: int
    gone: int
    worse: int
    unchanged: int
    regressions: int = Field(description="new or worse findings at warning or above")
    findings: list[BaselineFinding] = Field(default_factory=list)
    layers: list[BaselineLayer] = Field(default_factory=list)


Diagnosis.model_rebuild()  # `baseline` names a model defined after Diagnosis
