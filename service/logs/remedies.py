"""Remedy parameters read from the run, handed to the one builder per remedy id in core.

The clipping threshold is a stated percentile of the run's healthy gradient norms, never above the
threshold the run already clips at (:func:`clip_in_force`); the learning rate a remedy names is the
one in effect where the trouble started. Wording and defaults come
from :mod:`gradhealth.core.remedies`, shared with the architecture check.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import numpy as np

from gradhealth.analysis.activations import ACTIVATIONS, SATURATING, canonical
from gradhealth.core import remedies as R
from gradhealth.core.document import Remedy
from gradhealth.logs.series import RunLog, name_words
from gradhealth.logs.stats import early_baseline, finite, median, rolling_median_mad
from gradhealth.logs.thresholds import LogThresholds

#: The threshold offered when a run logs no healthy norm to take one from.
DEFAULT_MAX_NORM = 1.0
#: The Hugging Face Trainer's ``max_grad_norm`` default: it clips every run at this unless told otherwise.
HF_TRAINER_MAX_NORM = 1.0
#: A data-derived threshold is worth suggesting over the one in force only at this fraction of it or
#: below: within 2x of it the run's clipping already bounds the same steps.
TIGHTER_CLIP = 0.5

CLIP_KEYS = ("max_grad_norm", "clip_grad_norm", "gradient_clip_val", "clipnorm", "opt_clipnorm", "clip", "grad_clip",
             "max_norm", "clip_norm", "grad_clip_norm", "gradient_clip_norm", "grad_norm_clip", "gradient_clipping")


def clip_threshold(run: RunLog) -> float | None:
    """The clipping max_norm the run's params record, under any of the names tools use, also nested
    (``optimizer/max_norm``, ``args.max_grad_norm``). Lightning's ``gradient_clip_val`` with
    ``gradient_clip_algorithm=value`` clips values, not the norm, and does not count."""
    found = _clip_param(run)
    return found[0] if found else None


def clip_threshold_source(run: RunLog) -> str:
    """Where :func:`clip_threshold` read the threshold, in words: "the run's params", or what the user
    gave it as where that was not a param (a live run's ``config.clip_threshold``: newuser19 #7)."""
    found = _clip_param(run)
    return (run.param_sources.get(found[1]) if found else None) or "the run's params"


def _clip_param(run: RunLog) -> tuple[float, str] | None:
    """:func:`clip_threshold`'s value and the param key it was read under."""
    leaves: dict[str, tuple[str, str]] = {}
    for key, given in run.params.items():
        leaves.setdefault(re.split(r"[/.]", key.lower())[-1], (key, given))
    algorithm = leaves.get("gradient_clip_algorithm", ("", ""))[1]
    value_clip = str(algorithm).strip().lower() == "value"
    for key in CLIP_KEYS:
        if key == "gradient_clip_val" and value_clip:
            continue
        name, raw = (key, run.params[key]) if key in run.params else leaves.get(key, (key, None))
        try:
            value = float(raw) if raw is not None else math.nan
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value, name
    return None


def clip_in_force(run: RunLog) -> tuple[float, str] | None:
    """The threshold the run already clips the total gradient norm at, and where that is known from:
    its params (:func:`clip_threshold`), or, for a Hugging Face ``trainer_state.json`` that records
    none, the Trainer's default ``max_grad_norm`` of 1.0 (the state file does not keep the Trainer's
    arguments, and a run has to pass ``max_grad_norm=0`` or ``None`` to turn clipping off). None when
    nothing says the run clips."""
    limit = clip_threshold(run)
    if limit is not None:
        return limit, clip_threshold_source(run)
    if run.format == "hf_trainer":
        return HF_TRAINER_MAX_NORM, ("the Hugging Face Trainer's default max_grad_norm, assumed: trainer_state.json "
                                     "records no max_grad_norm, and the grad_norm it logs is the norm before clipping")
    return None


#: The Hugging Face Trainer's default optimizer (``optim="adamw_torch"``): a ``trainer_state.json``
#: that records no ``optim`` was stepped by it unless the run changed it.
HF_TRAINER_OPTIMIZER = "AdamW"
#: Param names that name the optimizer (``optim`` is the Trainer's, ``optimizer`` Lightning's and most
#: configs'); nested, the leaf under an ``optimizer``/``optim`` group (``optimizer/name``, Hydra's
#: ``optimizer._target_``, Lightning CLI's ``optimizer.class_path``).
OPTIMIZER_KEYS = ("optim", "optimizer", "optimizer_name", "optimizer_type", "optimizer_class", "optim_name",
                  "opt_name")
_OPTIMIZER_LEAVES = ("name", "type", "_target_", "class_path", "cls", "class")
#: Optimizers that divide each coordinate's step by a running scale of its own gradients (Adam and its
#: kin, RMSprop, Adagrad, Adafactor, LAMB) or take its sign (Lion): a factor applied to every
#: gradient alike cancels out of the step.
_ADAPTIVE = re.compile(r"adam|adafactor|rmsprop|adagrad|adadelta|lamb|lion|sophia|adan|prodigy", re.IGNORECASE)
_PLAIN = re.compile(r"sgd|momentum|nesterov", re.IGNORECASE)


def optimizer_in_use(run: RunLog) -> tuple[str, bool | None, bool] | None:
    """The optimizer that stepped the run, as far as the log tells: (its name, whether it is
    adaptive (:data:`_ADAPTIVE`; False for SGD, None for one this does not know), whether it is
    assumed: the Hugging Face Trainer's default AdamW for a ``trainer_state.json`` whose params name
    none). None where nothing names it."""
    for key, raw in run.params.items():
        parts = re.split(r"[/.]", key.lower())
        if not (parts[-1] in OPTIMIZER_KEYS
                or (len(parts) >= 2 and parts[-2] in ("optimizer", "optim") and parts[-1] in _OPTIMIZER_LEAVES)):
            continue
        name = str(raw).strip().strip("'\"")
        if not name or name.lower() in ("none", "null"):
            continue
        # a class path names the class last (torch.optim.AdamW)
        name = name.rsplit(".", 1)[-1] if "." in name and not name[0].isdigit() else name
        adaptive = True if _ADAPTIVE.search(name) else False if _PLAIN.search(name) else None
        return name, adaptive, False
    if run.format == "hf_trainer":
        return HF_TRAINER_OPTIMIZER, True, True
    return None


#: The low end of an adaptive optimizer's usual learning rates: Adam's default is 1e-3, 3e-4 the common
#: choice, LoRA's 1e-4 to 3e-4. At such a rate each weight moves by about the rate on every step, whatever
#: its gradient's size, so a loss that does not move is not for want of a larger rate.
ADAPTIVE_USUAL_LR = 1e-4


def usual_adaptive_rate(run: RunLog) -> dict[str, Any] | None:
    """``{"optimizer", "learning_rate"}`` where the run was stepped by an adaptive optimizer
    (:func:`optimizer_in_use`; the Trainer's default AdamW, assumed, for its ``trainer_state.json``)
    and the highest learning rate it logged is :data:`ADAPTIVE_USUAL_LR` or more; None otherwise
    (no rate logged, plain SGD, an optimizer not named)."""
    used = optimizer_in_use(run)
    lr = run.first("learning_rate")
    if used is None or used[1] is not True or lr is None:
        return None
    _, v = finite(lr)
    v = v[v > 0]
    if not len(v) or float(np.max(v)) < ADAPTIVE_USUAL_LR:
        return None
    name = f"{used[0]} (the Trainer's default, assumed)" if used[2] else used[0]
    return {"optimizer": name, "learning_rate": float(np.max(v))}


def healthy_norms(run: RunLog, t: LogThresholds) -> np.ndarray:
    """Total gradient norms of the run without spikes and without its exploding tail."""
    s = run.first("grad_norm")
    if s is None:
        return np.array([])
    _, v = finite(s)
    if len(v) == 0:
        return v
    med, mad = rolling_median_mad(v, t.window)
    spike = (v > t.spike_factor * med) & (v > med + 6 * 1.4826 * mad)
    base = early_baseline(v, t.baseline_fraction)
    keep = ~spike & ~(v > t.explode_warning * base)
    v = v[keep] if keep.any() else v
    return v[v < t.explode_absolute]  # beyond any healthy network's, whatever the run's own baseline


def clipping(run: RunLog, t: LogThresholds, *, below: float | None = None) -> Remedy | None:
    """Clipping at the ``clip_percentile`` of the healthy norms (None with fewer than 3 of them).

    ``below``: the gradient norm the finding is about (a spike's peak); a threshold at or above it
    could not touch it, so no clipping remedy then (newuser15 #9: a noisy run's p98 of 0.24 offered
    for a spike of 0.213).

    A run that already clips (:func:`clip_in_force`) gets no looser threshold than its own: the
    percentile only when it is well below the one in force (:data:`TIGHTER_CLIP`), else no clipping
    remedy, since clipping is then not what would change the run (a Trainer log's pre-clip norms
    of 1e5 were already clipped to 1.0 at every step)."""
    in_force = clip_in_force(run)
    norms = healthy_norms(run, t)
    if len(norms) < 3:
        logged = run.first("grad_norm")
        if logged is not None and len(finite(logged)[1]) >= 3:
            # every norm logged is blown up: nothing of the run's own to take a threshold from
            return default_clipping(run, "none of the run's gradient norms is a healthy one")
        return None
    max_norm = float(f"{float(np.percentile(norms, t.clip_percentile)):.2g}")
    if below is not None and not max_norm < below:
        return None
    basis = f"p{t.clip_percentile:g} of the run's gradient norms without spikes or exploding stretches"
    if in_force is None:
        return R.gradient_clipping(max_norm, basis, percentile=t.clip_percentile, healthy_points=int(len(norms)))
    limit, source = in_force
    if not max_norm <= TIGHTER_CLIP * limit:
        return None
    return R.gradient_clipping(
        max_norm,
        f"the run already clips at {limit:g} ({source}); {basis} is {max_norm:g}: steps up to "
        f"{limit / max_norm:.3g}x that pass the current threshold unclipped",
        percentile=t.clip_percentile,
        healthy_points=int(len(norms)),
        current_max_norm=limit,
        current_max_norm_source=source,
    )


def default_clipping(run: RunLog, why: str) -> Remedy | None:
    """Clipping at the common default (:data:`DEFAULT_MAX_NORM`) where the run has no healthy norm
    to take a threshold from (``why`` says so); None where it clips already, since a tighter
    threshold is then not what would change it."""
    if clip_in_force(run) is not None:
        return None
    return R.gradient_clipping(DEFAULT_MAX_NORM, f"a common default (Hugging Face's max_grad_norm): {why}",
                               healthy_points=0)


def _where(run: RunLog, step: float | None) -> str | None:
    """``step`` in the words of the run's learning-rate axis ("epoch 3" on an epoch axis)."""
    lr = run.first("learning_rate")
    return None if step is None or lr is None else lr.where(step)


def _rate_where(run: RunLog, step: float | None, rate: float | None) -> str | None:
    """Where ``rate`` (:func:`learning_rate_at` ``step``) was logged, in the words of the run's
    learning-rate axis: ``step`` itself, or, where the rate logged there is a warm-up's 0 and
    ``rate`` the first one above 0 after it, that one's place said so (never "in effect at" a step
    whose logged rate is 0)."""
    lr = run.first("learning_rate")
    if step is None or lr is None:
        return None
    here = lr.values[lr.steps <= step]
    later = lr.steps[(lr.values == rate) & (lr.steps > step)]
    if rate is not None and len(here) and here[-1] != rate and len(later):
        return f"{lr.where(float(later[0]))}, the first rate above 0 logged"
    return lr.where(step)


def learning_rate_at(run: RunLog, step: float | None) -> float | None:
    """The learning rate the log records as in effect at ``step`` (None when it has none)."""
    lr = run.first("learning_rate")
    if lr is None or step is None or not len(lr):
        return None
    idx = max(int(np.searchsorted(lr.steps, step, side="right")) - 1, 0)
    # a warm-up starts at 0, which no factor turns into a rate: the first rate it reaches instead
    ahead = lr.values[idx:]
    positive = ahead[np.isfinite(ahead) & (ahead > 0)]
    return float(positive[0]) if len(positive) else None


#: A rise in the learning rate is advice-worthy (:func:`learning_rate_jump`) when ``factor`` x the rate
#: at the onset would still be this many times the highest rate the run trained at before it.
JUMP_MARGIN = 2.0


def _fmt_step(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def learning_rate_jump(run: RunLog, at_step: float | None, factor: float = R.LOWER_LR_FACTOR) -> dict | None:
    """The rise of the learning rate shortly before ``at_step`` to a rate the run had never trained at,
    when the run was stable at the lower one first: a scheduler that restarts high, a warm-up that
    overshoots in a few steps, a rate changed by hand (newuser6 P5: 0.1 for 150 steps, then 200).

    With ``r`` the rate in effect at ``at_step``: the last logged rate at or below ``factor * r`` before it,
    followed back over any fast rise (at least :data:`JUMP_MARGIN` x per logged interval) into it, is
    where the rise starts, ``stable`` the highest rate logged up to there. It counts when the default
    advice (``factor * r``) would still be :data:`JUMP_MARGIN` times ``stable`` or more, and the run
    held rates up to ``stable`` for at least as many steps as lie from the rise to ``at_step`` (so the
    blow-up followed the rise). A gradual ramp or a constant-growth schedule moves less than 2x per
    logged step and is left to the factor (or to :func:`gradhealth.logs.detectors.schedule.lr_growth`).
    None otherwise, or when the log has no learning rate."""
    lr = run.first("learning_rate")
    rate = learning_rate_at(run, at_step)
    if lr is None or at_step is None or rate is None or not 0 < factor < 1:
        return None
    keep = np.isfinite(lr.values) & (lr.values > 0) & (lr.steps <= at_step)
    steps, v = np.asarray(lr.steps[keep], dtype=np.float64), np.asarray(lr.values[keep], dtype=np.float64)
    low = np.nonzero(v <= factor * rate)[0]
    if len(low) == 0 or low[-1] + 1 >= len(v):
        return None
    j = int(low[-1])
    while j > 0 and JUMP_MARGIN * v[j - 1] <= v[j]:
        j -= 1  # back over a fast rise (at least 2x per logged interval) to where it started
    k = j + 1  # the first logged rate of the rise
    stable = float(np.max(v[: j + 1]))
    held, after = float(steps[k] - steps[0]), float(at_step - steps[k])
    if not (factor * rate >= JUMP_MARGIN * stable and held > 0 and held >= after):
        return None
    jumped = math.log(v[k] / v[j]) >= 0.5 * math.log(rate / v[j])  # one logged interval carries most of it
    reached = k + int(np.argmax(v[k:] >= rate))  # where the rise got to the rate at the onset
    return {"from": stable, "to": float(v[k]) if jumped else rate, "step": _fmt_step(steps[k]),
            "rise_steps": [_fmt_step(steps[j]), _fmt_step(steps[k] if jumped else steps[reached])],
            "stable_steps": [_fmt_step(steps[0]), _fmt_step(steps[j])], "sudden": bool(jumped)}


def jump_note(run: RunLog, jump: dict) -> str:
    """The jump of :func:`learning_rate_jump` in words."""
    lr = run.first("learning_rate")
    where = (lambda x: lr.where(x)) if lr is not None else (lambda x: f"step {x:g}")
    a, b = jump["stable_steps"]
    held = f"{where(a)} to {where(b)}" if a != b else where(a)
    if jump["sudden"]:
        moved = f"the learning rate jumped from {jump['from']:.3g} to {jump['to']:.3g} at {where(jump['step'])}"
    else:
        moved = (f"the learning rate rose from {jump['from']:.3g} ({where(jump['rise_steps'][0])}) to "
                 f"{jump['to']:.3g} ({where(jump['rise_steps'][1])})")
    return f"{moved}, after the run was stable at {jump['from']:.3g} or below ({held}): go back to {jump['from']:.3g} or below"


def lower_lr(
    run: RunLog,
    *,
    at_step: float | None = None,
    factor: float = R.LOWER_LR_FACTOR,
    warmup_steps: int = 0,
    why: str = "",
    network: R.GanNetwork | None = None,
    series: dict[str, str] | None = None,
) -> Remedy:
    """``factor`` x the learning rate in effect at ``at_step`` (when the log has one); when the rate
    rose to that shortly before from one the run was stable at (:func:`learning_rate_jump`), back to
    that stable rate instead: ``factor`` x a rate the run had never trained at can still be far too high.

    ``network``: for a GAN, the network whose optimizer the cut acts on (the discriminator's where it
    overpowers the generator: cutting the generator's rate too slows the side already losing), or
    ``both``; ``series`` the loss series the judgement rests on, by role
    (:func:`gradhealth.core.remedies.for_gan_network`)."""
    if network is None:
        return _lower_lr(run, at_step=at_step, factor=factor, warmup_steps=warmup_steps, why=why)
    fix = _lower_lr(_network_rates(run, network), at_step=at_step, factor=factor, warmup_steps=warmup_steps, why=why)
    return R.for_gan_network(fix, network, series=series)


#: The words of a learning-rate series' name that say which GAN network it is (``lr_D``, ``g_lr``)
_NETWORK_WORDS = {"discriminator": {"d", "dis", "disc", "discriminator", "critic"},
                  "generator": {"g", "gen", "generator"}}


def _network_rates(run: RunLog, network: R.GanNetwork) -> RunLog:
    """``run`` with the learning rate of ``network`` its only one, for a GAN that logs one rate per
    network (``lr_G``, ``lr_D``): the rate quoted must be the one the cut acts on, not the first
    logged. With several rates and none named for it (or ``both``, whose rates may differ), none:
    the factor alone is said rather than another network's rate."""
    rates = [s for s in run.series if s.role == "learning_rate"]
    if len(rates) <= 1:
        return run
    mine = [] if network == "both" else [s for s in rates if set(name_words(s.name)) & _NETWORK_WORDS[network]]
    return replace(run, series=[s for s in run.series if s.role != "learning_rate"] + mine[:1])


def _lower_lr(run: RunLog, *, at_step: float | None, factor: float, warmup_steps: int, why: str) -> Remedy:
    """:func:`lower_lr` for the one optimizer a run has."""
    rate = learning_rate_at(run, at_step)
    jump = learning_rate_jump(run, at_step, factor)
    if jump is not None and rate is not None:
        note = jump_note(run, jump)
        fix = R.lower_learning_rate(
            jump["from"] / rate,
            warmup_steps=warmup_steps,
            learning_rate=rate,
            at_step=_rate_where(run, at_step, rate),
            why=f"{why}; {note}" if why else note,
        )
        fix.params["suggested_learning_rate"] = jump["from"]
        fix.params["learning_rate_jump"] = jump
        return fix
    return R.lower_learning_rate(
        factor,
        warmup_steps=warmup_steps,
        learning_rate=rate,
        at_step=_rate_where(run, at_step, rate),
        why=why,
    )


#: :func:`sized_lower_lr`: a rate cut at least as deep as the fixed grid step, and at most this deep
#: (past a 100x cut a rerun tells more than the log does)
SIZED_LR_MIN_FACTOR = 0.01


def sized_lower_lr(
    run: RunLog,
    *,
    at_step: float | None,
    rise: float,
    dead: bool = False,
    warmup_steps: int = 0,
    why: str = "",
) -> Remedy:
    """:func:`lower_lr` sized from the blow-up the log shows rather than the fixed 0.3x grid step:
    the gradient norm rose ``rise``-fold over its level before, so the rate is cut by one grid step
    (0.3x, half a decade) per decade of that rise, ``rise ** -0.5``, one more 0.3x where the units
    then died for good (``dead``: the rate that killed the network lies beyond the edge by an unknown
    margin, and a norm logged every few steps understates its own peak), bounded to
    [:data:`SIZED_LR_MIN_FACTOR`, 0.3]. Newuser13: SGD lr 8 on a ReLU MLP, grad norm 0.38 -> 52,169
    (1.4e5x) and every weight tensor dead: 0.3x gave 2.4, which died again (and 0.72 after it), the
    rule gives 0.08 (the same network trains at 0.05-0.3); at lr 2.4, 0.38 -> 5.58 before the same
    death, 0.24 (the factor to two figures, 0.10). A jump of the logged rate itself
    (:func:`learning_rate_jump`) is still the better guide: back to the rate the run was stable at."""
    factor = max(SIZED_LR_MIN_FACTOR, min(R.LOWER_LR_FACTOR,
                                          (R.LOWER_LR_FACTOR if dead else 1.0) / math.sqrt(max(rise, 1.0))))
    factor = float(f"{factor:.2g}")  # a rate to type, not a measurement (0.10, not 0.103652499725)
    basis = (f"sized to the blow-up: the gradient norm rose {rise:.3g}x over its level before, one 0.3x step of "
             "the rate per decade of that rise" + (", one more as the units died" if dead else "")
             + f", a cut of {R.LOWER_LR_FACTOR:g}x to {SIZED_LR_MIN_FACTOR:g}x")
    fix = lower_lr(run, at_step=at_step, factor=factor, warmup_steps=warmup_steps,
                   why=f"{why}; {basis}" if why else basis)
    if "learning_rate_jump" not in fix.params:
        fix.params["factor"] = factor
        fix.params["basis"] = basis
        fix.params["gradient_rise"] = rise
    return fix


def raise_lr(
    run: RunLog, *, at_step: float | None = None, factor: float = R.RAISE_LR_FACTOR, why: str = ""
) -> Remedy:
    """``factor`` x the learning rate in effect at ``at_step`` (when the log has one)."""
    return R.raise_learning_rate(
        factor, learning_rate=(rate := learning_rate_at(run, at_step)), at_step=_rate_where(run, at_step, rate), why=why
    )


#: Params under which runs record their hidden activation (HF configs: hidden_act,
#: activation_function; others: activation, act, nonlinearity).
ACTIVATION_KEYS = ("activation", "act", "activation_fn", "activation_function", "hidden_act", "nonlinearity")


def run_activation(run: RunLog) -> str | None:
    """The hidden activation the run's params record (canonical name, e.g. ``sigmoid``), or None."""
    for key, raw in run.params.items():
        if key.lower().replace("-", "_").rsplit(".", 1)[-1].rsplit("/", 1)[-1] in ACTIVATION_KEYS:
            name = str(raw).strip().lower().removeprefix("nn.").replace("gelu_new", "gelu")
            name = {"leakyrelu": "leaky_relu", "swish": "silu"}.get(name, name)
            if name in ACTIVATIONS:
                return canonical(name)
    return None


def matching_init(run: RunLog, where: str) -> Remedy | None:
    """The init that fits the run's activation: He (Kaiming) for the ReLU family, Xavier/Glorot for
    sigmoid/tanh, LeCun for SELU. None when the log does not say the activation: He init offered
    to a sigmoid network would be wrong (switching to ReLU with He init is its own remedy)."""
    act = run_activation(run)
    if act is None:
        return None
    scheme = ("xavier_normal" if act in SATURATING or act == "identity" else
              "lecun_normal" if act == "selu" else "kaiming_normal")
    return R.init(scheme, f"{where} ({act})")


#: A training loss whose first points' median is at least this is a squared error of values in
#: the hundreds or more (sqrt(1e4) = 100): regression targets (or inputs) far from unit scale. A
#: cross-entropy starts near ln(classes), under 12 for a 100k vocabulary; a standardised
#: regression's MSE near 1.
UNSCALED_LOSS = 1e4

#: Loss names that say what the loss is when it is no mean squared error (a cross-entropy, a KL, a
#: VAE's summed ELBO, a negative log-likelihood): their level says nothing of a target scale
_NOT_SQUARED = re.compile(r"(?<![a-z])(ce|bce|nll|kl|kld|elbo|xent|ppl)(?![a-z])|cross|entrop|likelihood|perplex"
                          r"|recon|vae|reward|return|value|policy|critic|actor|disc|gen(?![a-z])|[gd]_loss",
                          re.IGNORECASE)


#: A log whose first point is past this share of its last one starts mid-run (an excerpt)
_EXCERPT_START = 0.1


def unscaled_targets(run: RunLog) -> Remedy | None:
    """``normalise_inputs`` for the targets and inputs (:func:`gradhealth.core.remedies.standardise_targets_and_inputs`)
    where the training loss, logged from the run's start, is :data:`UNSCALED_LOSS` or more at every
    finite point (the level quoted: its first 3 points' median):
    as a mean squared error that is an error of 100 or more per target from the start (newuser12: an
    MSE of 9.6e6 at step 0, targets about 3000 +- 800, NaN by step 5 at lr 1e-3 and at 3e-4 alike,
    fixed by standardising the targets). None for a loss named as something else (:data:`_NOT_SQUARED`)
    and for an RL run's losses."""
    from gradhealth.logs.detectors.rl import on_rollouts

    loss = run.first("loss")
    if loss is None or _NOT_SQUARED.search(loss.name) or on_rollouts(run):
        return None
    steps, v = finite(loss)
    # from the run's start (an excerpt's first point may be the blow-up itself: a diffusion VAE's
    # loss 5.2e7 at epoch 5 of a log from epoch 5), and never below the bar: a loss that came down to
    # ~1 reached its targets' scale (a PINN's 2.9e12 -> 1-9, a detector's 0.144 before a jump to 2.5e4)
    if len(v) == 0 or float(steps[0]) > max(1.0, _EXCERPT_START * float(loss.steps[-1])):
        return None
    early = float(median(v[:3]))
    if not float(np.min(v)) >= UNSCALED_LOSS:
        return None
    k = min(3, len(v))
    where = (f"at {loss.where(steps[0])}" if k == 1 else
             f"the median of its first {k} points, {loss.between(steps[0], steps[k - 1])}")
    return R.standardise_targets_and_inputs(loss.name, early, where)
