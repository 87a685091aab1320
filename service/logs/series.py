"""The common shape every log reader produces: named series of (step, value) over one run.

A series keeps the name the log gave it (``grad_2.0_norm/encoder.0.weight``, ``train/loss``) so
findings can point back at it, and a ``role`` that says what it measures, so detectors do not
depend on any one tool's naming.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gradhealth.core.words import first_few

Role = Literal[
    "loss",            # training loss
    "val_loss",        # validation / evaluation loss
    "grad_norm",       # total gradient norm (before clipping when the tool says so)
    "layer_grad_norm", # gradient norm of one layer / parameter (``layer`` says which)
    "clipped_grad_norm",  # total gradient norm after clipping (sits at max_norm while clipping acts)
    "learning_rate",
    "weight_norm",     # total or per-layer (``layer``) weight norm
    "update_ratio",    # ||update|| / ||weight|| per step, total or per layer
    "metric",          # anything else (accuracy, eval_*)
]


@dataclass
class Series:
    """One metric over a run. ``steps`` ascending; ``values`` may hold NaN/Inf as logged."""

    name: str
    role: Role
    steps: np.ndarray           # int64 (or float64 for fractional epochs)
    values: np.ndarray          # float64
    layer: str | None = None
    wall_time: np.ndarray | None = None
    step_unit: Literal["step", "epoch"] = "step"
    #: iterations per epoch where the log placed its points as "epoch e, iteration i of N" (an
    #: mmdet "Epoch [12][700/3953]"), read back as e + i / N: findings name the log's own position
    epoch_length: int | None = None
    #: the log's own words for a position, where its lines named one by an epoch and a counter within
    #: it (``ep: 0, batch: 160`` -> ``epoch 0, batch 160``), by the position on this axis
    position_words: dict[float, str] | None = field(default=None, repr=False, compare=False)
    #: what was done about a step that counted down on most points (:meth:`_order`); the run
    #: gathers it into its warnings as ``step_order``
    order_note: str | None = field(default=None, repr=False, compare=False)
    #: what was done about points at a negative step among steps from 0 (:meth:`_drop_negative`); the
    #: run gathers it into its warnings as ``step_order``. A reader that knows where such a point was
    #: written (a TensorBoard record) may word it so
    negative_note: str | None = field(default=None, repr=False, compare=False)
    #: the steps are the log's running count of its lines or rows with values, counted from 0, as the
    #: log names no step (its ``running_index`` note): a position is worded ``point 3`` (the third such
    #: line), never ``step 2``, which the log never said
    counted_points: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A name decoded from a JSON escape like "\\ud800" may hold a lone surrogate, which no
        # UTF-8 encoder accepts: every later read of the result would fail.
        self.name = clean_name(self.name)
        self.layer = clean_name(self.layer) if self.layer is not None else None
        self.steps = np.asarray(self.steps)
        self.values = np.asarray(self.values, dtype=np.float64)
        if len(self.steps) != len(self.values):
            raise ValueError(f"series {self.name}: {len(self.steps)} steps but {len(self.values)} values")
        if len(self.steps) > 1:
            self._drop_negative()
        if len(self.steps) > 1:
            back = np.diff(self.steps) < 0
            if back.any():
                self._order(back)

    def _drop_negative(self) -> None:
        """Leave out the points at a negative step (or epoch) of a series whose other points sit at
        steps from 0 on, noting it in :attr:`negative_note`: every reader with explicit steps does so
        here, by one rule. A counter that starts at 0 never goes below it: a negative step among
        such steps is a sentinel (``-1`` for "no step") or an unsigned ``2^64 - 1`` read back as a
        signed ``-1`` (TensorBoard's ``Event.step`` and W&B's ``HistoryStep.num`` are int64), and
        where it was written says nothing of when it was. Read at -1, it would come before step 0 and
        make the run's first point look like a spike or a jump (errsweep9 #3). A series all of whose
        steps are negative counts on its own axis and is kept (its order is :meth:`_order`'s)."""
        steps = self.steps
        if steps.dtype.kind not in "iuf":
            return
        neg = steps < 0
        count = int(np.count_nonzero(neg))
        if not count or count == len(steps):
            return
        first = steps[int(np.argmax(neg))]
        keep = ~neg
        rest = len(steps) - count
        self.steps, self.values = steps[keep], self.values[keep]
        if self.wall_time is not None and len(self.wall_time) == len(keep):
            self.wall_time = np.asarray(self.wall_time)[keep]
        if self.negative_note is None:
            v = float(first)
            unsigned = (f" (an int64's reading of the unsigned {int(v) + (1 << 64):,} a writer counting "
                        f"without a sign wrote, or {int(v)} written for no {self.unit})"
                        if v.is_integer() and -(1 << 63) <= v < 0 else "")
            self.negative_note = (
                f"{self.name}: {count:,} point(s) at a negative {self.unit} among {rest:,} at {self.unit}s from "
                f"0, the first at {self.unit} {self._position(v)}{unsigned}: left out, as no {self.unit} counted "
                f"from 0 is below it (read there, they would come before {self.unit} 0)")

    def _order(self, back: np.ndarray) -> None:
        """Put the points, given in the log's order with ``back`` marking each step lower than the
        one before, in time order.

        A step that goes back now and then (a resume, a restart, joined files) is sorted by the
        step, as the readers' own notes say. A step that goes back on most points counts down
        (Keras' ``Epoch 100/100`` ... ``1/100`` printed in reverse, a CSV's step column counting
        down): the log's lines are in the order they were written, so a step that only ever counts
        down is read in the log's order, with the step taken as the distance from the first point
        (sorting it would read the run backwards: a rising loss as a falling one). Only a wall time
        that falls with it says the lines were written newest first (an export sorted so): then the
        step's order is the time order. Either way the ``step_order`` note says what was done."""
        falls, pairs = int(back.sum()), len(back)
        first = int(np.argmax(back)) + 1  # the first point lower than the one before it
        order: np.ndarray | None = np.argsort(self.steps, kind="stable")
        if falls >= 2 and 2 * falls > pairs:
            where = (f"the {self.unit} goes down on {falls:,} of {pairs:,} points ({100 * falls / pairs:.0f} %), "
                     f"first at the series' point {first + 1:,} ({self._position(self.steps[first - 1])} then "
                     f"{self._position(self.steps[first])})")
            wall = None if self.wall_time is None else np.asarray(self.wall_time, dtype=np.float64)
            newest_first = False
            if wall is not None and len(wall) == len(self.steps):
                dw = np.diff(wall)
                dw = dw[np.isfinite(dw)]
                newest_first = bool(len(dw)) and 2 * int(np.sum(dw < 0)) > len(dw)
            if newest_first:
                how = (f"read in the {self.unit}'s order, which its wall time follows (the lines were written "
                       "newest first)")
            elif not np.any(np.diff(self.steps) > 0):
                # a countdown: the log's order is the time order; the distance from the first point
                # keeps the step's spacing and is the same for the series logged on the same lines
                order = None
                self.steps = self.steps[0] - self.steps
                how = (f"read in the log's order, the order its lines were written, each point at its distance "
                       f"in {self.unit}s from the first ({self.unit} 0)")
            else:
                how = f"read in the {self.unit}'s order"
            self.order_note = f"{self.name}: {where}: {how}"
        if order is not None:
            self.steps, self.values = self.steps[order], self.values[order]
            if self.wall_time is not None:
                self.wall_time = np.asarray(self.wall_time)[order]

    @property
    def unit(self) -> str:
        """``epoch`` or ``step``: what a position on this series' axis is called."""
        return "epoch" if self.step_unit == "epoch" else "step"

    def where(self, x: float) -> str:
        """Where ``x`` is on this axis in words: ``step 120``, ``epoch 3``, or ``epoch 1.327`` for a
        fractional epoch (a position within it, 1 + 240/735), ``epoch 12, iteration 700/3953`` where
        the log counted its positions so (mmdet's ``Epoch [12][700/3953]``), ``epoch 0, batch 160``
        where its lines named the epoch and a counter within it (:attr:`position_words`)."""
        if self.position_words:
            words = self.position_words.get(float(x))
            if words is not None:
                return words
        if self._points(x):
            return f"point {int(x) + 1}"
        n = self.epoch_length
        if self.step_unit == "epoch" and n and not float(x).is_integer():
            e = math.floor(x)
            i = (x - e) * n
            if abs(i - round(i)) < 0.05:
                return f"epoch {e}, iteration {round(i)}/{n}"
        return f"{self.unit} {self._position(x)}"

    def between(self, first: float, last: float) -> str:
        """A span of this axis in words: ``steps 120-300`` or ``epochs 3-9``; ``points 2-3`` for a
        log that names no step (:attr:`counted_points`: its second and third lines with values)."""
        if self._points(first) and self._points(last):
            return f"points {int(first) + 1}-{int(last) + 1}"
        return f"{self.unit}s {self._position(first)}-{self._position(last)}"

    def _points(self, x: float) -> bool:
        """Whether ``x`` is worded as a point's place in the log (:attr:`counted_points`)."""
        return self.counted_points and self.step_unit == "step" and float(x).is_integer()

    def _position(self, x: float) -> str:
        v = float(x)
        if self.step_unit == "epoch" and not v.is_integer():
            return f"{v:.4g}"
        if v.is_integer():
            return str(int(v))
        # a fractional count (StyleGAN's kimg, a float32 step): three decimals, not the float's
        # 17 digits ("step 272.0320129394531", logsweep81)
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) >= 1 else f"{v:.4g}"

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class LogWarning:
    """Something the reader noticed but read past (a truncated record, a skipped line)."""

    code: str         # e.g. "truncated_log", "corrupt_record", "skipped_line"
    message: str      # says where: a line number, a record index and byte offset
    where: str | None = None


def several_runs(label: str, what: str, names: list[str], *, tail: str = "") -> LogWarning:
    """The ``several_runs`` note of a log holding several runs that are judged each on its own (a
    folder's, a W&B export's, a console's trials): ``label: what, each judged on its own: names``."""
    shown = first_few(names, 10)
    return LogWarning("several_runs", f"{label}: {what}, each judged on its own: {shown}{tail}")


#: Points in rising order a run has before a step that goes back starts a new one (:func:`starts_again`)
RUN_RECORDS = 3


def starts_again(step: float, first: float, last: float, rising: int) -> bool:
    """Whether a point at ``step`` starts a new run after one that began at ``first`` and last
    stood at ``last``: it goes back to or below the run's first step after :data:`RUN_RECORDS`
    points in rising order (a resume from a checkpoint after the start goes back less: the same
    run; a few points out of order are not a run). The one rule for runs appended to a JSON Lines
    file, a TensorBoard CSV download's restarts and the launches of a TensorBoard folder. A negative
    step after a run from 0 or later starts none (:func:`off_axis`): the series leaves it out."""
    return step < last and step <= first and rising >= RUN_RECORDS and not off_axis(step, first)


def off_axis(step: float, first: float) -> bool:
    """Whether a point at ``step`` in a run whose first step is ``first`` is a negative step among
    steps from 0, which every series leaves out (:meth:`Series._drop_negative`): no run's start, and
    no run's last step either."""
    return step < 0 <= first


@dataclass
class RunLog:
    """Everything read from one run."""

    format: str
    source: str
    series: list[Series] = field(default_factory=list)
    warnings: list[LogWarning] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)   # e.g. max_grad_norm / clipnorm when the log has it
    #: where a param came from when the user gave it under another name than the log's params: a live
    #: run's ``config.clip_threshold`` is its ``max_grad_norm`` (newuser19 #7: a finding sent the user to
    #: look for "the run's params" the run had none of); a param not listed is the log's own
    param_sources: dict[str, str] = field(default_factory=dict)
    traceback: str | None = None                           # a text log that ends in a Python traceback
    #: where that traceback came after training had ended, why the log says so (its epoch counter at its
    #: total, a later stage's line before it); None where it cut training short or there is none
    after_training: str | None = None
    #: a folder of several runs (Lightning's version_N, MLflow's experiments): each one's folder, the
    #: prefix of its series' names; the checks judge each on its own (empty: one run)
    runs: list[str] = field(default_factory=list)
    #: the run's planned length in steps where its log states it (a Trainer's ``max_steps``): a loss flat
    #: over the first part of it is "flat so far" (logsweep98 mlx557); None where it does not. Not carried
    #: into the runs of a folder (:meth:`split`), whose lengths are each their own
    planned_steps: float | None = None
    #: the unit :attr:`planned_steps` counts in: ``step``, or ``epoch`` where the log states its epochs
    #: (a text console's "Epoch 3/50"); a loss on another axis has no planned length
    planned_unit: str = "step"

    def __post_init__(self) -> None:
        self.note_step_order()

    def note_step_order(self) -> None:
        """Add a ``step_order`` warning for each series whose step counted down (its
        :attr:`Series.order_note`) or that had points at a negative step left out (its
        :attr:`Series.negative_note`), once."""
        seen = {w.message for w in self.warnings if w.code == "step_order"}
        for s in self.series:
            for note in (s.negative_note, s.order_note):
                if note is not None and note not in seen:
                    seen.add(note)
                    self.warnings.append(LogWarning("step_order", note))

    def split(self) -> dict[str, RunLog]:
        """Each run of a folder of runs (:attr:`runs`) by its prefix: its own series, and those under
        no run's folder that sit nearest it (a validation folder beside it).

        Each series is placed once: its run is the first of :attr:`runs` (in their order) whose
        folder holds it, found by looking its name's folders up (a zip of 1,000 run folders took
        236 s when each run scanned every series against every run); a series under no run's folder
        goes to every run sharing the most folder names with it."""
        order = {r: i for i, r in enumerate(self.runs)}
        folders = [r.split("/") for r in self.runs]
        placed: dict[str, list[Series]] = {r: [] for r in self.runs}
        for s in self.series:
            parts = s.name.split("/")[:-1]
            owners = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            own = min((o for o in owners if o in order), key=order.__getitem__, default=None)
            if own is not None:
                placed[own].append(s)
                continue
            shared = [sum(1 for a, b in zip(parts, f, strict=False) if a == b) for f in folders]
            best = max(shared, default=0)
            for r, n in zip(self.runs, shared, strict=True):
                if n == best:
                    placed[r].append(s)
        # (a NaN/Inf in a run of the file not read, one cut short and superseded by the next: the text
        # reader's ``skipped_nonfinite`` notes, which the ``nonfinite`` check reports once, with the last run)
        skipped = [w for w in self.warnings if w.code == "skipped_nonfinite"]
        return {r: RunLog(format=self.format, source=self.source, params=dict(self.params),
                          param_sources=dict(self.param_sources), traceback=self.traceback,
                          after_training=self.after_training, series=placed[r],
                          warnings=list(skipped) if r == self.runs[-1] else []) for r in self.runs}

    def by_role(self, role: Role) -> list[Series]:
        return [s for s in self.series if s.role == role]

    def ranked(self, role: Role) -> list[Series]:
        """:meth:`by_role`, the series counted by epoch first (Keras' TensorBoard ``validation/epoch_loss``
        before ``validation/evaluation_loss_vs_iterations``, the same evaluations placed at the optimizer's
        iteration), each kind in the log's order: where a run logs one measure on both axes, the
        findings name the epochs, whichever the log wrote first."""
        return sorted(self.by_role(role), key=lambda s: not epoch_level(s))

    def first(self, role: Role) -> Series | None:
        """The role's longest series; of equally long ones, the epoch-level one (:meth:`ranked`)."""
        found = self.ranked(role)
        return max(found, key=len) if found else None

    def merge(self, other: RunLog) -> None:
        self.series.extend(other.series)
        self.warnings.extend(other.warnings)
        self.params.update(other.params)
        if not self.traceback:
            self.traceback, self.after_training = other.traceback, other.after_training
        if self.planned_steps is None:
            self.planned_steps, self.planned_unit = other.planned_steps, other.planned_unit


_EPOCH_WORD = re.compile(r"(?:^|[/_.])epoch(?:[/_.]|$)", re.IGNORECASE)


def epoch_level(s: Series) -> bool:
    """Whether ``s`` is counted by epoch: its axis is epochs, or its name says so (``epoch_loss``,
    ``val_loss_epoch``)."""
    return s.step_unit == "epoch" or _EPOCH_WORD.search(s.name.rsplit("/", 1)[-1]) is not None


# --- naming ----------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_name(name: str) -> str:
    """``name`` with lone surrogates replaced by U+FFFD, so it can always be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", name)


_LAYER_PATTERNS = (
    re.compile(r"^grad_(?:[\d.]+|inf)_norm[/_](?P<layer>.+)$"),  # Lightning: grad_2.0_norm/layer.weight
    re.compile(r"^(?:gradients?|grads?|grad_norm)[/.](?P<layer>.+)$"),  # wandb gradients/<name>, grad_norm/<layer>
    re.compile(r"^(?P<layer>.+)[/.](?:grad_norm|gradient_norm|grad)$"),
)
_TOTAL_GRAD = re.compile(r"^(?:train[/_]|optim(?:izer)?[/_])?(?:grad_norm|gradient_norm|grad_(?:[\d.]+|inf)_norm_total|"
                         r"total_grad_norm|global_grad_norm|grad_norm_total|norm|gnorm|grad)$")
_CLIPPED_GRAD = re.compile(r"^(?:train[/_])?(?:clipped[/_]grad(?:ient)?_norm|"
                           r"grad(?:ient)?_norm[/_](?:clipped|post[/_]?clip|after[/_]clip(?:ping)?))$")
_LOSS = re.compile(r"^(?:train[/_.]?|main/)?(?:loss|train_loss|training_loss|epoch_loss|batch_loss|loss_step|"
                   r"train_loss_step|train_loss_epoch|loss_epoch|tot(?:al)?_?loss|loss_?tot(?:al)?|"
                   # the split after the name (NICE-EEG's "loss val", TensorBoard's "loss/train")
                   r"loss[/_.]train(?:ing)?|"
                   # a run that averages its per-part losses (a PINN's boundary and PDE terms)
                   r"mean_loss|avg_loss|average_loss|loss_mean|loss_avg|running_loss|"
                   # NeMo/Megatron's loss averaged over the data-parallel ranks
                   r"reduced_(?:train_)?loss|"
                   # a language model's loss by its name (OLMo's train/CrossEntropyLoss, lm_loss)
                   r"cross_?entropy(?:_?loss)?|ce_loss|lm_loss|nll_loss|"
                   # Neural Monkey's and fairseq's short names: cross-entropy, negative log-likelihood
                   r"xent|nll|"
                   # one letter glued before it: LLaMA2-Accessory's and SPHINX's closs (the causal LM
                   # loss), a tloss; not g or d (a GAN player's: gloss, dloss) nor v (vloss, validation's)
                   r"[a-ce-fh-uw-z]loss)$")
# (Chainer's LogReport names the model "main": main/loss, validation/main/loss)
#: A name marked as a best-so-far record: ``best_loss``, ``eval_best_loss``, ``val/best_acc``.
_BEST = re.compile(r"(?:^|[/_.])best(?:[/_.]|$)")
#: VSE++'s printed loss ("Eit 12400  lr 0.0002  Le 25.6"), kept by the image-text matchers built on
#: its train.py (SCAN, VSRN, SGRAF, GSMN); exact case, as it prints it
_VSE_LOSS = "Le"
_VAL_LOSS = re.compile(r"^(?:val|vali|valid|validation|eval|test|dev)[/_.]?(?:main/)?(?:loss|epoch_loss|loss_epoch|loss_step|xent|nll)$|^(?:val_loss|eval_loss)(?:_epoch)?$|"
                       r"^vloss$|"
                       r"^loss[/_.](?:val|valid|validation|eval|test|dev)$|"
                       r"^epoch_val_loss$|"
                       # Keras' TF2 TensorBoard callback: the validation loss at the optimizer's iteration
                       # too, written beside epoch_loss in its validation/ folder
                       r"^(?:(?:val|valid|validation)[/_.])?evaluation_loss_vs_iterations$|"
                       # one per evaluation set: the Trainer's eval_<set>_loss (eval_dataset a dict),
                       # Lightning's val_loss/dataloader_idx_<k>
                       r"^eval_[\w.-]+_loss$|^(?:val|valid|validation|eval|test)[/_.]?loss[/_.]dataloader_idx_\d+$")
_LR = re.compile(r"^(?:train[/_]|x/)?(?:lr|learning_rate|learning-rate|lr-\w+(?:/pg\d+)?|lr_\w+|lr/\w+|lr\d+)$")
# config values named after the rate (lr_decay_iters, lr_warmup_steps, lr_scheduler): not a rate
_LR_CONFIG = re.compile(r"^(?:train[/_])?lr[_/-]\w*(?:decay|warmup|sched|step|iter|epoch|patience|factor|gamma|"
                        r"milestone|cycle|min|max|mult|ratio|policy|type|name)", re.IGNORECASE)
#: A name in a norm's bars, ``|param|`` or ``||grad||``, and what is inside them: the gradient (of
#: the parameters) or the parameters themselves
_NORM_BARS = re.compile(r"(?P<bars>\|\|?)(?P<inner>[^|]+)(?P=bars)")
_NORM_OF_GRAD = re.compile(r"(?:g|grad|grads|gradient|gradients|dw|d_?theta)(?:[_.]?(?:param|params|parameters|"
                           r"weight|weights|w|theta))?")
_NORM_OF_WEIGHTS = re.compile(r"param|params|parameters|weight|weights|w|theta")
_WEIGHT = re.compile(r"^(?:weight_norm|param_norm|weights?_norm)(?:[/.](?P<layer>.+))?$")
_UPDATE = re.compile(r"^(?:update_ratio|update_to_weight|update_to_weight_ratio)(?:[/.](?P<layer>.+))?$")


_GAN_G = frozenset({"g", "gen", "generator", "netg", "errg", "lossg"})
_GAN_D = frozenset({"d", "dis", "disc", "discriminator", "netd", "errd", "lossd", "critic"})
# words that make a G/D-named series something else than a loss: D's outputs (D(x), D(G(z))), an
# accuracy, a rate, a gradient penalty's norm
_GAN_NOT_LOSS = frozenset({"x", "gz", "dx", "acc", "accuracy", "lr", "prob", "score", "norm"})
#: D's output on real or generated samples (pix2pix's D_real, a D_fake mean) -- unless the name says it
#: is a loss: AdvGAN's loss_G_fake, DCGAN's errD_real and errG_fake are the players' loss terms
#: (logsweep62 u03: loss_G_fake 0.30 -> 0.91 went unread)
_GAN_SIDE = frozenset({"real", "fake"})
#: words that say a G/D-named series is a loss
_GAN_LOSS_WORDS = frozenset({"loss", "losses", "err", "errg", "errd", "lossg", "lossd"})


#: Where a series name splits into words: separators, spaces and a lower-to-upper case change
_NAME_WORDS = re.compile(r"[/_.\s:-]+|(?<=[a-z])(?=[A-Z])")


#: A series named for a loss or a norm (YOLO's train/box_loss, detectron2's loss_cls) is part of
#: what training computes, whatever its role; accuracy, AP or a learning rate is not. A perplexity
#: is exp of a loss: Inf only where the loss per token passed 709 nats (OpenNMT-tf at a rate of
#: 1.2: "perplexity = inf"). A NaN/Inf in such a series means training broke.
TRAINED_NAME = re.compile(r"loss|norm|grad|perplexity|(?<![a-z])ppl", re.IGNORECASE)


def name_words(name: str) -> list[str]:
    """The lower-cased words of a series name, split at separators, spaces and a case change
    (``BestAvg`` -> best, avg; ``val/KL_loss`` -> val, kl, loss)."""
    return [w.lower() for w in _NAME_WORDS.split(name.strip()) if w]


#: The words that mark a record kept over the run rather than a value of its step: the best so far
#: or the lowest/highest so far (``best_loss``, ``min_val_loss``, ``lowest_loss``, ``BestAvg``). A
#: trainer starts such a record at +-inf (``best = float('inf')``) and prints it before there is one.
_RECORD_WORDS = frozenset({"best", "min", "minimum", "lowest", "highest"})


def record_name(name: str) -> bool:
    """Whether ``name`` is a best-so-far or min-so-far record (one of its words is ``best``,
    ``min``, ``minimum``, ``lowest`` or ``highest``): its +-inf before the first finite value is
    the trainer's placeholder (``best_loss=inf``), never a value that overflowed."""
    return not _RECORD_WORDS.isdisjoint(name_words(name))


def gan_part(name: str) -> str | None:
    """``"G"`` or ``"D"`` for a GAN's generator or discriminator loss as tools name them
    (``loss_G``, ``g_loss``, ``Loss/D/loss``, ``errD``, ``gen_loss``, CycleGAN's ``G_A`` and ``D_B``,
    a CSV's ``Generator`` column), else None. A name with ``real`` or ``fake`` is D's output on those
    samples unless it says it is a loss (``loss_G_fake``, ``errD_real``) or is D's with both (``D_real+fake``)."""
    # ("+" joins a sum's terms: DeblurGAN's D_real+fake)
    words = [w.lower() for w in re.split(r"[/_.\s+-]+|(?<=[a-z])(?=[A-Z])", name.strip()) if w]
    # the run a file's appended runs are told apart by (run2/...) and the split it was measured on
    # (a CSV's train_G and train_D) are not part of the name
    if len(words) > 1 and re.fullmatch(r"run\d+", words[0]):
        words = words[1:]
    if len(words) > 1 and words[0] in ("train", "training"):
        words = words[1:]
    if not words or set(words) & _GAN_NOT_LOSS:
        return None
    named_loss = bool(set(words) & _GAN_LOSS_WORDS)
    g, d = bool(set(words) & _GAN_G), bool(set(words) & _GAN_D)
    if g == d:
        return None
    side = set(words) & _GAN_SIDE
    if d and side == _GAN_SIDE and set(words) - _GAN_SIDE - _GAN_LOSS_WORDS <= _GAN_D:
        # D's terms on real and on generated samples summed, or both named (DeblurGAN's D_real+fake, a
        # WGAN-GP critic's D_fake_real): D's loss, not one of its outputs (logsweep62 h06)
        return "D"
    if side and not named_loss:
        return None
    # a loss by name, or the part's name alone or with a short suffix (CycleGAN's G_A, pix2pix's
    # G_L1, a CSV's Generator column; not d_model)
    if not (named_loss
            or len(words) == 1 or (len(words) == 2 and min(len(w) for w in words) == 1 and max(map(len, words)) <= 3)):
        return None
    return "G" if g else "D"


#: An evaluation named ``<set>-<metric>``: a gradient-boosting library's, as the text reader names it
#: (xgboost's ``train-rmse``, ``validation_0-logloss``; LightGBM's ``valid_1's l2``), or MXNet's
#: Speedometer (``Train-CrossEntropy``, ``Train-SmoothL1``), whose metric is a loss: the loss of its
#: set (the training set's, or a held-out one's)
_BOOSTING = re.compile(r"^(?P<set>train|training|learn|valid|validate|validation|eval|test|dev)(?:_\d+)?-"
                       r"(?P<metric>rmse|mse|mae|l1|l2|rmsle|mape|huber|logloss|mlogloss|binary_logloss|"
                       r"multi_logloss|cross_entropy|error|merror|binary_error|multi_error|poisson|gamma|"
                       r"tweedie|mphe|quantile|cross-entropy|crossentropy|smoothl1|smooth_l1|loss|nll|ce)$")


def boosting_log(run: RunLog) -> bool:
    """Whether ``run`` is a gradient-boosting library's evaluation log: every loss it holds (the
    training and the held-out sets') is named ``<set>-<metric>`` as XGBoost and LightGBM print them
    (``train-rmse``, ``valid-binary_logloss``, ``validation_0-logloss``; CatBoost's ``learn-loss`` and
    ``test-loss`` as the text reader names them), in their lower case (MXNet's
    Speedometer writes ``Train-CrossEntropy``: a network's). Its remedies are a boosting run's
    parameters, not a network optimizer's (:mod:`gradhealth.core.boosting_snippets`)."""
    losses = [s.name.rsplit("/", 1)[-1] for s in run.series if s.role in ("loss", "val_loss")]
    return bool(losses) and all(_BOOSTING.match(name) is not None for name in losses)


def classify(name: str) -> tuple[Role, str | None]:
    """The role (and layer) a metric name most likely has, from the names common tools write."""
    key = name.strip()
    low = re.sub(r"\s+", "_", key.lower())  # a CSV header's "total loss", "val loss"
    if (run_scope := _RUN_SCOPE.match(low)) is not None:
        # the training split or the optimizer named first, whatever the separator (Sacred's
        # train.update_ratio, training.grad_norm; W&B's train/update_ratio): the name after it
        # says what the series is, and the scope word is never a layer
        role, layer = classify(key[run_scope.end():])
        if role != "metric":
            return role, layer
    if (boost := _BOOSTING.match(low)) is not None:
        return ("loss" if boost["set"] in ("train", "training", "learn") else "val_loss"), None
    if (bars := _NORM_BARS.fullmatch(low)) is not None:
        # a norm written as one (simple-nmt's "|param|=6.93e+02 |g_param|=8.87e+07"): the gradient's
        # total norm, or the weights'
        if _NORM_OF_GRAD.fullmatch(bars["inner"]):
            return "grad_norm", None
        if _NORM_OF_WEIGHTS.fullmatch(bars["inner"]):
            return "weight_norm", None
    if _BEST.search(low):
        return "metric", None  # a best-so-far record (fairseq's best_loss), not the loss of its step
    if _VAL_LOSS.match(low):
        return "val_loss", None
    if _LOSS.match(low) or key == _VSE_LOSS:
        return "loss", None
    if _TOTAL_GRAD.match(low):
        return "grad_norm", None
    if _CLIPPED_GRAD.match(low):
        return "clipped_grad_norm", None
    for pattern in _LAYER_PATTERNS:
        m = pattern.match(key)
        if m and m.group("layer") not in ("total", "norm_total"):
            return "layer_grad_norm", m.group("layer")
    if _LR.match(low) and not _LR_CONFIG.match(low):
        return "learning_rate", None
    m = _WEIGHT.match(low)
    if m:
        return "weight_norm", m.group("layer")
    m = _UPDATE.match(low)
    if m:
        return "update_ratio", m.group("layer")
    scope, _, rest = low.partition("/")
    if rest and scope not in _SCOPE_ROLES and gan_part(key) is None:
        # a model's or a decoder's scope before the name: Neural Monkey's "target/train_xent". A
        # GAN player's scope (Chainer DCGAN's gen/loss, dis/loss: logsweep59) names one of two
        # players, never the run's training loss: as loss_gen, it is a metric that the GAN
        # checks judge
        role = classify(rest)[0]
        if role in ("loss", "val_loss"):
            return role, None
    return "metric", None


#: A leading split or optimizer scope: ``train.``, ``training/``, ``optim_`` (not a part of a word).
_RUN_SCOPE = re.compile(r"^(?:train|training|optim|optimizer)[/_.](?=[a-z])")

#: first path parts that say what a metric is, not whose (train/loss, grad_norm/layer1)
_SCOPE_ROLES = frozenset({"train", "training", "val", "valid", "validation", "eval", "test", "dev", "grad",
                          "grads", "gradients", "grad_norm", "lr", "weights", "params", "update", "x"})


def final_series(run: RunLog) -> list[Series]:
    """The final value of each key of a run summary (W&B's ``wandb-summary.json``, which a reader
    keeps in ``params`` as ``summary/<key>``) as a one-point series at the summary's ``_step``: the
    only numbers a file of final values has, for the checks that need no history (NaN/Inf, a norm
    beyond any healthy one). Bookkeeping keys (``_step``, ``_runtime``) are left out."""
    finals: dict[str, float] = {}
    for key, raw in run.params.items():
        if key.startswith("summary/"):
            try:
                finals[key.removeprefix("summary/")] = parse_number(raw)
            except ValueError:
                continue
    at = finals.get("_step", 0.0)
    at = at if math.isfinite(at) else 0.0
    return [make_series(k, [at], [v]) for k, v in finals.items() if not k.startswith("_")]


def make_series(name: str, steps: list[float] | np.ndarray, values: list[float] | np.ndarray,
                wall_time: list[float] | np.ndarray | None = None, *, step_unit: str = "step",
                role: Role | None = None, layer: str | None = None) -> Series:
    """A series named as the log names it, with its role inferred unless given."""
    inferred, inferred_layer = classify(name)
    steps_arr = np.asarray(steps, dtype=np.float64)
    if len(steps_arr) and np.all(np.isfinite(steps_arr)) and np.all(steps_arr == np.round(steps_arr)):
        steps_arr = steps_arr.astype(np.int64)
    return Series(name=name, role=role or inferred, steps=steps_arr, values=np.asarray(values, dtype=np.float64),
                  layer=layer if layer is not None else inferred_layer,
                  wall_time=None if wall_time is None else np.asarray(wall_time, dtype=np.float64),
                  step_unit=step_unit)  # type: ignore[arg-type]  # readers pass 'step' or 'epoch'; Series validates


def parse_number(text: str) -> float:
    """A logged number, including the non-finite spellings tools write (nan, NaN, inf, -Infinity)."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        low = t.lower()
        if low in ("nan", "+nan", "-nan"):
            return math.nan
        if low in ("infinity", "+infinity"):
            return math.inf
        if low == "-infinity":
            return -math.inf
        raise
