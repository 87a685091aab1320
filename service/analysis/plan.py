"""Spec -> plan: shapes, names, parameter count and memory, before anything is allocated.

The plan is pure data. It expands ``repeat`` and ``num_layers``, names every
measured unit by its path in the spec (``layers[3].linear``, a repeated copy
``layers[0].linear#7``, a nested one ``layers[2].residual#4.layers[0].linear``),
infers every shape, and estimates the parameter count and the activation memory
so that :func:`check_limits` can refuse a spec before a single tensor exists.
What each layer type contributes is its kind's ``plan`` (:mod:`gradhealth.analysis.kinds`);
this module walks the layers, expands the copies and checks the limits. No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from gradhealth.analysis import kinds as K
from gradhealth.analysis import spec as S
from gradhealth.analysis.limits import PARAMETERS_SETTING, Limits
from gradhealth.errors import LimitExceeded, Problem, SpecError

Layout = Literal["vector", "sequence", "channels", "image", "tokens"]


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
    overhead_bytes: int = 0  # per seed, whatever the batch and precision (Planned.overhead)
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
    #: Bytes of one seed's simulation that scale with neither the batch nor the precision: the
    #: recurrent layers' per-step autograd nodes and tensor headers (RecurrentKind.STEP_BYTES).
    overhead_bytes: int = 0

    @property
    def memory_bytes(self) -> int:
        """Estimated peak memory of one seed's simulation, what the limit is checked against.

        Activations are kept for backward and each gets a gradient of its size, with the probes'
        copies and convolution workspaces on top: ACTIVATION_FACTOR x the activation bytes. Weights,
        their gradients and the initialiser's temporaries: PARAMETER_FACTOR x the parameter bytes.
        Measured peak RSS growth against the factors' sum (tests/analysis/test_plan_memory.py): MLP
        0.82-1.03 over runs, CNN 0.93, LSTM 0.41 of it; the activation bytes alone were 1.05-6.5x too
        low. The sum is taken with :data:`ALLOCATOR_MARGIN` on top, for the run-to-run spread. An
        ``optimizer``'s first step is computed layer by layer in closed form
        (:func:`gradhealth.analysis.simulate.first_step_norm`): no state, no copy of the weights.

        The recurrent layers' per-step overhead (``overhead_bytes``, measured, not scaled) comes on
        top, once: the simulation lets one seed's network go before it builds the next (a 10 x 256
        lstm of hidden_size 1 peaked 54 MB above start-up with one seed and with three).
        """
        width = _BYTES[self.spec.precision]
        return int(ALLOCATOR_MARGIN * (ACTIVATION_FACTOR * self.activation_bytes
                                       + PARAMETER_FACTOR * width * self.parameters + self.overhead_bytes))

    def all_units(self) -> list[UnitPlan]:
        return [u for top in self.units for u in top.walk()]

    def activation_of(self, pointer: str) -> str:
        """The activation the weight layer at ``pointer`` feeds: its own, or where it has none, the
        one a separate activation layer after it applies (:func:`separate_activations`)."""
        unit = next(u for u in self.all_units() if u.pointer == pointer)
        own = getattr(unit.layer, "activation", "identity")
        return own if own != "identity" else separate_activations(self.all_units()).get(pointer, own)


#: The layers a separate activation may sit behind and still be the weight layer's own: Keras'
#: ``Dense(128)`` -> ``BatchNormalization()`` -> ``Dropout`` -> ``Activation('relu')`` feeds the
#: Dense's units into a ReLU as ``Dense(128, activation='relu')`` does (a norm only rescales them).
_BETWEEN = (S.DropoutLayer, S.NormLayer)


def separate_activations(units: list[UnitPlan]) -> dict[str, str]:
    """pointer -> activation for each weight layer without an activation of its own (``identity``)
    whose output a separate activation layer takes next in the same sequence, perhaps through a
    dropout or norm layer (Keras-1/2 style ``Dense(128)`` then ``Activation('relu')``): the
    activation its init and the words about it must match, as a live module's activation module
    is folded into the layer before it. ``units`` in forward order (:meth:`Plan.all_units`)."""
    found: dict[str, str] = {}
    by_pointer = {u.pointer: u for u in units}
    for unit in units:
        layer = unit.layer
        if (not isinstance(layer, S.WEIGHT_LAYERS) or layer.activation != "identity" or layer.repeat != 1
                or unit.copy):
            continue
        parent, _, index = unit.pointer.rpartition("/")
        if not index.isdigit():
            continue
        k = int(index) + 1
        while (nxt := by_pointer.get(f"{parent}/{k}")) is not None and nxt.layer.repeat == 1:
            if isinstance(nxt.layer, S.ActivationLayer) and nxt.layer.activation != "identity":
                found[unit.pointer] = nxt.layer.activation
                break
            if not isinstance(nxt.layer, (*_BETWEEN, S.ActivationLayer)):
                break
            k += 1
    return found


_BYTES = {"float64": 8, "float32": 4}
#: See Plan.memory_bytes: measured, not guessed (activations + their gradients + probe copies).
ACTIVATION_FACTOR = 2.5
#: Weights, weight gradients and the initialiser's temporary copy.
PARAMETER_FACTOR = 3
#: The same simulation's peak RSS growth varies from run to run with how the allocator reuses freed
#: blocks: the MLP of tests/analysis/test_plan_memory.py measured 0.82-1.03 of the factors' sum over
#: runs on one machine (a CI run exceeded it by 3%), so the limit is checked against the sum with a
#: quarter on top, an estimate that covers the peak rather than its typical value
ALLOCATOR_MARGIN = 1.25


class _Planner:
    """Walks the layers, asking each one's :class:`~gradhealth.analysis.kinds.LayerKind` for its plan."""

    def __init__(self, spec: S.Spec, limits: Limits) -> None:
        self.spec = spec
        self.limits = limits
        self.units = 0
        self.cells = 0  # recurrent cell steps of one seed so far
        self.expanding: list[str] = []  # the `repeat`/`num_layers` fields being expanded, outermost first

    def fail(self, pointer: str, message: str) -> SpecError:
        return SpecError.at(pointer, message)

    def layers(
        self, layers: list[S.Layer], shape: tuple[int, ...], layout: Layout, prefix: str, pointer: str
    ) -> tuple[list[UnitPlan], tuple[int, ...], Layout]:
        plans: list[UnitPlan] = []
        for i, layer in enumerate(layers):
            ptr = f"{pointer}/layers/{i}"
            kind = self.kind(layer, ptr)
            copies = kind.copies(layer)
            first_shape = shape
            # where a refusal past max_units points: the innermost `repeat`/`num_layers` expanding
            # this layer (its own, else a repeated block's), else the layer itself
            expands = self._expands(kind, layer, ptr)
            if expands is not None:
                self.expanding.append(expands)
            try:
                for k in range(copies):
                    name = f"{prefix}layers[{i}].{layer.type}" + (f"#{k}" if copies > 1 else "")
                    try:
                        unit = self.unit(kind, layer, shape, layout, name, ptr)
                    except SpecError as e:
                        if k == 0 or type(e) is not SpecError:
                            raise
                        raise self._repeat_error(e, layer, f"{prefix}layers[{i}]", k, copies, first_shape, shape,
                                                 ptr) from None
                    unit.copy = k
                    plans.append(unit)
                    shape, layout = unit.out_shape, unit.out_layout
            finally:
                if expands is not None:
                    self.expanding.pop()
            tail = kind.tail(layer)
            if tail is not None:
                # Once per stack, not a copy: it does not count against max_units.
                name = f"{prefix}layers[{i}].{layer.type}.{tail}"
                unit = self.planned(K.kind_of(tail), tail, layer, shape, layout, name, ptr)
                plans.append(unit)
                shape, layout = unit.out_shape, unit.out_layout
        return plans, shape, layout

    def _repeat_error(self, error: SpecError, layer: S.Layer, label: str, k: int, copies: int,
                      first: tuple[int, ...], shape: tuple[int, ...], ptr: str) -> SpecError:
        """A copy after the first of a repeated layer refused its input (newuser8 P10: an lstm with
        ``repeat: 4`` was told it "needs a sequence input", given one): say that it reads the copy
        before it, not the spec's input to the layer, and, for a recurrent layer whose ``output`` is
        ``last``, what to set."""
        why = "; ".join(p.message for p in error.problems) or str(error)
        said = (f"{label} repeat {k + 1} of {copies} reads repeat {k}'s output {list(shape)}, "
                f"not the layer's input {list(first)}")
        if layer.type in ("rnn", "lstm", "gru") and getattr(layer, "output", None) == "last":
            said += (f": `output` is `last` (the default), so each copy passes on its final state only. Set "
                     f"`output: sequence` on the repeated layer (the last copy then outputs the sequence too), "
                     f"or use `num_layers: {copies}` instead of `repeat` (one stack that passes the sequence "
                     f"between its layers and applies `output` to the top one)")
        else:
            said += f" ({why})"
        return self.fail(ptr, said)

    @staticmethod
    def _expands(kind: K.LayerKind[Any], layer: S.Layer, ptr: str) -> str | None:
        """The pointer of the field that makes ``layer`` several measured layers (``repeat``, or a
        transformer's ``num_layers``), None when it is one."""
        if kind.copies(layer) <= 1:
            return None
        return ptr + ("/repeat" if getattr(layer, "repeat", 1) > 1 else "/num_layers")

    def kind(self, layer: S.Layer, ptr: str) -> K.LayerKind[Any]:
        kind = K.KINDS.get(layer.type)
        if kind is None:  # pragma: no cover - the spec's union admits only registered types
            raise self.fail(ptr, f"unsupported layer type {layer.type!r}")
        return kind

    def count(self, layers: int, pointer: str) -> None:
        """Count ``layers`` more measured layers at ``pointer`` (the field that expands them, or the
        layer itself), refused past ``max_units`` there."""
        self.units += layers
        if self.units > self.limits.max_units:
            # Checked while expanding, so `repeat: 1000000000` costs nothing.
            listed = len(self.spec.layers)
            said = f"; the spec lists {listed:,} layers" if listed > self.limits.max_units else ""
            raise LimitExceeded.at(pointer, f"more than {self.limits.max_units} layers after expanding "
                                   f"`repeat`/`num_layers` ({self.units:,} counted up to here{said}); "
                                   "that is the limit")

    def cell_steps(self, steps: int, pointer: str, detail: str) -> None:
        self.cells += steps
        seeds = self.spec.seeds
        if self.cells * seeds > self.limits.max_cell_steps:
            # Checked while planning: the simulation runs each cell step on its own (about 21 KB
            # and 0.2-0.7 ms a step on a CPU), so these are its memory and its time.
            total = f", {self.cells * seeds:,} with the recurrent layers before it" if self.cells > steps else ""
            raise LimitExceeded.at(pointer, f"{detail} x {seeds} seed{'s' * (seeds > 1)} is "
                                   f"{steps * seeds:,} recurrent cell steps{total}, over the limit "
                                   f"of {self.limits.max_cell_steps:,} (GRADHEALTH_LIMITS__MAX_CELL_STEPS); "
                                   "use fewer layers, a shorter sequence or fewer seeds")

    def unit(self, kind: K.LayerKind[Any], layer: S.Layer, shape: tuple[int, ...], layout: Layout,
             name: str, ptr: str) -> UnitPlan:
        # at the field that expands the layer where one does, else at the layer: a spec of 5,000
        # plain layers was refused at `/layers/2000/repeat`, a field it does not have (newuser9 P11)
        self.count(1, self.expanding[-1] if self.expanding else ptr)
        if layout == "tokens" and not kind.takes_tokens:
            raise self.fail(ptr, f"a `{layer.type}` layer cannot take token ids; start with an `embedding` layer")
        return self.planned(kind, layer.type, layer, shape, layout, name, ptr)

    def planned(self, kind: K.LayerKind[Any], kind_name: str, layer: S.Layer, shape: tuple[int, ...],
                layout: Layout, name: str, ptr: str) -> UnitPlan:
        p = kind.plan(self, layer, shape, layout, name, ptr)
        # The output and its gradient are kept for every unit; `extra` is what the kind keeps inside.
        return UnitPlan(name, ptr, layer, kind_name, shape, p.out_shape, layout, p.out_layout, p.parameters,
                        2 * math.prod(p.out_shape) + p.extra, overhead_bytes=p.overhead, children=p.children)


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
        layout = {1: "vector", 2: "sequence", 3: "image"}[len(shape)]  # type: ignore[assignment]  # the values are Layout literals
    units, out, out_layout = planner.layers(spec.layers, shape, layout, "", "")
    if out_layout == "tokens":
        raise SpecError.at("/layers", "the network never embeds its token input")
    classes = None
    if spec.loss.type == "cross_entropy":
        classes = out[-1]
        if spec.loss.classes is not None and spec.loss.classes != classes:
            raise SpecError.at("/loss/classes", f"the network outputs {classes} features but the loss expects "
                               f"{spec.loss.classes} classes; make the last layer's width {spec.loss.classes}")
        # (one class: the loss is 0 whatever the output and passes no gradient at all, which the
        # check reports as output_loss_mismatch rather than refusing the spec)
    plan = Plan(spec, units, shape, layout, out, classes,
                parameters=sum(u.parameters for u in units),
                activation_bytes=_BYTES[spec.precision] * spec.batch_size * (
                    math.prod(shape) + sum(u.activation_elements for u in units)),
                overhead_bytes=sum(u.overhead_bytes for u in units),
                )
    check_limits(plan, limits, planner.units)
    if plan.parameters == 0:
        raise SpecError.at("/layers", "the network has no trainable parameters, so there is no gradient to "
                           "check: add a layer with weights (linear, conv1d, conv2d, an embedding, a recurrent "
                           "layer, ...)")
    _check_batch_norm(plan)
    return plan


#: Units whose weights are looked up, not multiplied: no multiply-adds (:func:`multiply_adds`).
_LOOKUPS = frozenset({"embedding"})
#: Units that step through time: their weights act once a time step.
_RECURRENT = frozenset({"rnn", "lstm", "gru"})


def multiply_adds(plan: Plan) -> int:
    """Multiply-adds of one sample's forward, what the simulation's time is estimated from
    (:func:`.timing.fit_time`): each innermost unit with weights uses each of them once at each
    position of its output (a linear layer's each row of a sequence, a convolution's each output
    pixel; a recurrent layer's each time step), so its parameters times those positions; an
    embedding looks its weights up (none). Biases and norms count too: a few per cent of an
    estimate."""
    total = 0
    for u in plan.all_units():
        if u.children or u.parameters == 0 or u.kind in _LOOKUPS:
            continue
        if u.kind in _RECURRENT:
            positions = u.in_shape[0] if len(u.in_shape) > 1 else 1
        elif u.out_layout in ("channels", "image"):
            positions = math.prod(u.out_shape[1:])
        else:
            positions = math.prod(u.out_shape[:-1])
        total += u.parameters * positions
    return total


def batch_norm_values(plan: Plan) -> dict[str, int]:
    """Each unit whose batch norm normalises over the batch, with the values per channel it sees in
    the check's forward (the batch times the positions), in forward order."""
    out: dict[str, int] = {}
    for u in plan.units:
        if "batchnorm" not in (getattr(u.layer, "norm", None), getattr(u.layer, "type", None)):
            continue
        shape = u.out_shape
        spatial = math.prod(shape[1:]) if u.out_layout in ("channels", "image") else math.prod(shape[:-1])
        out[u.name] = plan.spec.batch_size * spatial
    return out


def _check_batch_norm(plan: Plan) -> None:
    """Refuse a batch norm that would see one value per channel (batch_size 1 over a vector):
    training mode has no variance to normalise by there."""
    for name, values in batch_norm_values(plan).items():
        if values < 2:
            u = next(u for u in plan.units if u.name == name)
            raise SpecError.at("/batch_size", f"batch norm in {u.name} ({u.pointer}) sees one value per channel "
                               f"with batch_size {plan.spec.batch_size}: training mode needs at least 2 to "
                               "normalise, so set batch_size to 2 or more")


def _heaviest(plan: Plan) -> tuple[str, str]:
    """Where to point a refusal for size: the top-level layer holding most of the parameters (a
    1e6 x 1e6 linear in a spec of small ones) with a note naming it, else the layer list."""
    if not plan.units or plan.parameters <= 0:
        return "/layers", ""
    # by the spec's own entries: a transformer_encoder of 32 layers (or a `repeat`) is one entry,
    # planned as 32 units of 3% each (specsweep12 GPT-Neo 2.7B: 94% in /layers/1, refused at /layers)
    held: dict[str, int] = {}
    for u in plan.units:
        held[u.pointer] = held.get(u.pointer, 0) + u.parameters
    pointer = max(held, key=lambda p: held[p])
    if 2 * held[pointer] < plan.parameters:
        return "/layers", ""
    units = [u for u in plan.units if u.pointer == pointer]
    name = units[0].name if len(units) == 1 else units[0].name.split("#")[0]  # (the entry's name)
    return pointer, f", {held[pointer]:,} of them in {name}"


def check_limits(plan: Plan, limits: Limits, units: int) -> None:
    """Refuse a plan over the limits, naming both size figures and the limits."""
    spec = plan.spec
    problems: list[Problem] = []
    figures = (f"the spec needs about {plan.parameters:,} parameters and {plan.memory_bytes / 2**20:,.1f} MiB "
               f"of memory per seed (limits: {limits.max_parameters:,} parameters, "
               f"{limits.max_activation_bytes / 2**20:,.0f} MiB)")
    where, culprit = _heaviest(plan)
    if plan.parameters > limits.max_parameters:
        problems.append(Problem(where, f"too many parameters: {figures}{culprit}; make layers narrower "
                                f"or fewer, or raise the limit ({PARAMETERS_SETTING})"))
    if plan.memory_bytes > limits.max_activation_bytes:
        # float64 (the default) doubles every tensor: a BERT-Base at sequence 128 and batch 8 is 8.3
        # GiB per seed in float64, 4.2 in float32 (specsweep15 u06); the limit is the operator's
        halve = ("; or set precision: float32, which halves it" if spec.precision == "float64" and
                 plan.memory_bytes <= 2 * limits.max_activation_bytes else "")
        raise_it = " (the limit is GRADHEALTH_LIMITS__MAX_ACTIVATION_BYTES)"
        # each part as memory_bytes counts it (with the allocator's margin), so the parts add up to it
        weights = ALLOCATOR_MARGIN * PARAMETER_FACTOR * _BYTES[spec.precision] * plan.parameters
        steps = ALLOCATOR_MARGIN * plan.overhead_bytes
        if 2 * steps > plan.memory_bytes:  # mostly the recurrent steps' own: the batch is not it either
            top = max((u for u in plan.all_units() if u.kind in ("rnn", "lstm", "gru")),
                      key=lambda u: u.overhead_bytes)
            problems.append(Problem(top.pointer, f"too much memory, mostly the recurrent "
                                    f"layers' per-step autograd records: {figures}; use fewer layers or a "
                                    f"shorter sequence{halve}{raise_it}"))
        elif weights > plan.memory_bytes - weights:  # mostly weights: the batch is not what to change
            if plan.parameters <= limits.max_parameters:  # else already said, at the same place
                problems.append(Problem(where, f"too much memory, mostly weights: {figures}{culprit}; "
                                        f"make layers narrower or fewer{halve}{raise_it}"))
        else:
            # name only a change that brings it under the limit (newuser14 #9: a 1e9-wide layer was
            # told to lower batch_size, which no batch size fixes): the activations scale with the
            # batch, the weights and the recurrent records do not
            activations = ALLOCATOR_MARGIN * ACTIVATION_FACTOR * plan.activation_bytes
            per_sample = activations / spec.batch_size
            fixed = plan.memory_bytes - activations
            fits = int((limits.max_activation_bytes - fixed) // per_sample) if per_sample > 0 else 0
            if fits >= 1:
                problems.append(Problem("/batch_size", f"too much activation memory: {figures}; lower batch_size "
                                        f"to {fits:,}{' or less' if fits > 1 else ''} (now {spec.batch_size}) or the input size"
                                        f"{halve}{raise_it}"))
            elif plan.parameters <= limits.max_parameters:  # else already said, at the same place
                problems.append(Problem(where, f"too much activation memory, more than the limit even at "
                                        f"batch_size 1: {figures}{culprit}; make layers narrower or fewer, or "
                                        f"the input smaller{halve}{raise_it}"))
    if units > limits.max_units:
        problems.append(Problem("/layers", f"{units} layers after expanding `repeat` is over the limit of "
                                f"{limits.max_units}"))
    if spec.seeds > limits.max_seeds:
        problems.append(Problem("/seeds", f"{spec.seeds} seeds is over the limit of {limits.max_seeds}"))
    if problems:
        # the detail names each place once; each item's pointer says it (newuser13 #3: "/layers/0: /layers/0: ...")
        raise LimitExceeded("; ".join(str(p) for p in problems), problems)


#: Activations after which a layer's output keeps its weights' scale (f(c z) = c f(z) for c > 0),
#: so a norm reading that output makes the weights scale-invariant (the graph door's ``_PASSES_SCALE``).
_PASSES_SCALE = frozenset({"identity", "relu", "leaky_relu"})


def _passes_scale(layer: S.Layer) -> bool:
    """A layer without weights that is positively homogeneous in its input: pooling (max, mean,
    a sequence's last step), dropout's mask, a flatten, a ReLU or leaky ReLU of its own."""
    if isinstance(layer, S.ActivationLayer):
        return layer.activation in _PASSES_SCALE
    return isinstance(layer, (S.PoolLayer2d, S.DropoutLayer, S.FlattenLayer, S.SequencePoolLayer))


def _streams(units: list[UnitPlan]) -> list[list[UnitPlan]]:
    """The chains of units one after another: a sequential ``block`` is spread into its chain; a
    residual block is a unit of the chain (its output x + f(x) is no one layer's) whose branch is a
    chain of its own."""
    chain: list[UnitPlan] = []
    others: list[list[UnitPlan]] = []
    for u in units:
        if isinstance(u.layer, S.SequentialBlock):
            inner = _streams(u.children)
            chain.extend(inner[0])
            others.extend(inner[1:])
        else:
            chain.append(u)
            if u.children:
                others.extend(_streams(u.children))
    return [chain, *others]


def _homogeneous_layer(layer: S.Layer) -> bool:
    """A weight layer whose activation passes a scale on (a ReLU, a leaky ReLU or none)."""
    return isinstance(layer, S.WEIGHT_LAYERS) and layer.activation in _PASSES_SCALE


def read_by_norms(plan: Plan) -> set[str]:
    """The weight layers whose output a standalone ``batchnorm`` or ``layernorm`` layer reads through
    positively homogeneous steps only (the layer's own ReLU or none, pooling, dropout, a flatten):
    Keras' usual ``Conv2D(activation='relu')`` then ``BatchNormalization()``. The norm divides out
    the scale of their output, so their weights are scale-invariant, as a layer's with ``norm`` on
    its pre-activation are. As in a live module's graph, the chain before such a layer is too while
    each layer of it is bias-free with a ReLU or none: its input's scale reaches the norm unchanged."""
    found: set[str] = set()
    for chain in _streams(plan.units):
        for i, u in enumerate(chain):
            if not _homogeneous_layer(u.layer):
                continue
            j = i + 1
            while j < len(chain) and _passes_scale(chain[j].layer):
                j += 1
            if j == len(chain) or not isinstance(chain[j].layer, S.NormLayer):
                continue
            found.add(u.name)
            k = i
            while _homogeneous_layer(chain[k].layer) and not getattr(chain[k].layer, "bias", True):
                k -= 1
                while k >= 0 and _passes_scale(chain[k].layer):
                    k -= 1
                if k < 0 or not _homogeneous_layer(chain[k].layer):
                    break
                found.add(chain[k].name)
    return found
