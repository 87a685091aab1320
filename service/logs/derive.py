"""Series a log implies but does not write: :func:`add_component_losses`, :func:`add_loss_from_perplexity`,
:func:`add_named_loss`; and which component losses pair up across splits (:func:`component_pairs`).

Some trainers log only the parts of their loss. Ultralytics YOLO writes ``train/box_loss``,
``train/cls_loss``, ``train/dfl_loss`` (v5: ``box``, ``obj``, ``cls``) and the same under ``val/``,
and no total, although the loss it trains on is the sum of those parts. Without a series of role
``loss`` the check has nothing to judge. When a run has no training (resp. validation) loss but two
or more component losses of that split, named ``<split>/<part>_loss``, ``<split>_<part>_loss`` or
``<split>/loss_<part>`` (any separator of ``/ _ .``; the split spelled as
:func:`gradhealth.logs.series.classify` spells it: ``train``/``training`` for the training loss,
``val``/``valid``/``validation``/``eval``/``test`` for the validation loss), their sum is added as
a series of role ``loss`` (resp. ``val_loss``) and a ``derived_loss`` note says so. Parts named
with no split at all (``loss_smpl_pose``, ``box_loss``) are the training loss's, summed where three
or more share a form and none is a separate objective (an actor's, a critic's, a GAN player's). A group
of either kind holding an RL agent's objective (``actor``, ``critic``, ``policy``, ``value``, a Q
function's ``q``/``qf1``, ``pi``, ``vf``, SAC's ``alpha``: ``train/loss_actor`` beside
``train/loss_critic``) is never summed: a negated Q value and a TD error are no terms of one loss.

The sum is taken at the steps every component logged (exact step match), except steps where
every component is exactly 0 (not computed: Ultralytics' validation losses of epochs it did not
validate) while others are not; a NaN or Inf in any
component makes the sum NaN or Inf at that step, so the check still sees it. Nothing is derived when
the run already has a loss of that role (detectron2's ``total_loss`` next to ``loss_cls``), when a
part looks like a total or an aggregate (``val/total_loss``, ``train_loss_epoch``), for a single
component, when the components are in different step units, or when they share fewer than half of
their steps. The components keep their names and roles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gradhealth.logs.series import LogWarning, Role, RunLog, Series, classify, gan_part

#: ``<prefix><split><sep><part>_loss`` and ``<prefix><split><sep>loss_<part>``; the prefix is a
#: folder (``run1/``) a folder read put before every name.
# (the split spelled out: with any word there, train/box_om_loss read as split "box", part "om")
_SPLIT = r"(?P<split>train|training|val|valid|validation|eval|test)"
_PART_LOSS = re.compile(rf"^(?P<pre>(?:.*/)?){_SPLIT}(?P<sep>[/_.])(?P<part>[A-Za-z0-9]\w*?)_loss$", re.IGNORECASE)
_LOSS_PART = re.compile(rf"^(?P<pre>(?:.*/)?){_SPLIT}(?P<sep>[/_.])loss_(?P<part>[A-Za-z0-9]\w*)$", re.IGNORECASE)
#: YOLOv10's parts, named by head and with no ``_loss``: train/box_om, val/cls_oo (one-to-many and
#: one-to-one heads, both trained, summed into its loss)
_HEAD_PART = re.compile(rf"^(?P<pre>(?:.*/)?){_SPLIT}(?P<sep>/)(?P<part>(?:box|cls|dfl)_o[mo])$", re.IGNORECASE)
#: the same with no split: ``<part>_loss`` and ``loss_<part>``, the training loss's parts
_BARE_PART_LOSS = re.compile(r"^(?P<pre>(?:.*/)?)(?P<part>[A-Za-z0-9]\w*?)_loss$")
_BARE_LOSS_PART = re.compile(r"^(?P<pre>(?:.*/)?)loss_(?P<part>[A-Za-z0-9]\w*)$")

#: The splits, as series.py's ``_LOSS`` / ``_VAL_LOSS`` spell them; which total each one's
#: components add up to is what ``classify`` says of ``<split>_loss``.
_SPLITS = frozenset({"train", "training", "val", "valid", "validation", "eval", "test"})

#: Parts that name the whole loss or an aggregate of it, not a component: with one of these in a
#: group, the log has its total under a name ``classify`` does not know, and nothing is derived.
_AGGREGATE = frozenset({"total", "sum", "all", "overall", "combined", "full", "main", "avg", "mean",
                        "step", "epoch", "running", "smooth", "smoothed", "ema"})

#: The least share of the components' steps that all of them log for a sum to be added.
MIN_SHARED_FRACTION = 0.5
#: Components named in the derived series' name; more are counted.
NAMED_PARTS = 4


@dataclass
class _Group:
    role: Role
    head: str                 # ``<prefix><split><sep>``: what each component's name starts with
    members: list[Series]
    aggregate: bool = False
    parts: set[str] = field(default_factory=set)   # what the members name (``box`` of ``train/box_loss``)
    agent: bool = False     # a part is an RL agent's objective (:data:`_AGENT`): never summed


def _split_match(name: str) -> tuple[Role, re.Match[str], str] | None:
    """(the role its split's total would have, the match, form) where ``name`` names a component loss
    of a named split (``val/cls_loss``, ``train_loss_box``); the role in series.py's spelling of the
    splits, which may be neither loss (``test``)."""
    for form, pattern in (("part_loss", _PART_LOSS), ("loss_part", _LOSS_PART), ("part_loss", _HEAD_PART)):
        m = pattern.match(name)
        if m is not None:
            return classify(f"{m.group('split').lower()}_loss")[0], m, form
    return None


def _component(s: Series, bare: bool = False) -> tuple[Role, str, str, str] | None:
    """(role of the total, prefix + split + separator, form, part) when ``s`` names a component loss;
    with ``bare``, also one named with no split (:data:`_BARE_PART_LOSS`)."""
    if s.role != "metric":
        return None
    name = s.name.strip()
    found = _split_match(name)
    if found is not None:
        role, split, form = found
        if role not in ("loss", "val_loss"):
            return None
        return role, f"{split.group('pre')}{split.group('split')}{split.group('sep')}", form, split.group("part").lower()
    # no split named: a trainer that logs only its training loss's parts (Hand4Whole's loss_smpl_pose,
    # loss_joint_proj...; Ultralytics' console box_loss, cls_loss, dfl_loss)
    for form, pattern in (("part_loss", _BARE_PART_LOSS), ("loss_part", _BARE_LOSS_PART)) if bare else ():
        m = pattern.match(name)
        part = m.group("part").lower() if m is not None else ""
        # (a GAN's generator and discriminator losses are two players', an agent's actor and critic
        # two objectives: never one sum)
        if (m is not None and part.split("_")[0] not in _SPLITS and gan_part(name) is None
                and not set(re.split(r"[_.]", part)) & _PLAYERS):
            return "loss", m.group("pre"), f"bare_{form}", part
    return None


#: Parts that are separate objectives, not terms of one loss (an agent's, a GAN's)
_PLAYERS = frozenset({"actor", "critic", "policy", "value", "q", "q1", "q2", "qf", "qf1", "qf2", "pi", "v", "entropy",
                      "alpha", "kl", "gen", "disc", "g", "d", "generator", "discriminator"})
#: Parts that name the whole model the loss trains (``loss_vae``, ``model_loss``): its objective, of
#: which the other parts beside it are terms
_WHOLE_MODEL = frozenset({"vae", "wae", "ae", "autoencoder", "model", "net", "network"})
#: Parts that name an RL agent's separate objectives (its actor's or policy's, its critic's, value
#: function's or Q function's, SAC's temperature's): a group holding one is never summed, split or not
_AGENT = frozenset({"actor", "critic", "policy", "value", "q", "q1", "q2", "qf", "qf1", "qf2", "pi", "vf",
                    "alpha"})
#: Of those, the critic's: a regression onto TD targets (DDPG's, TD3's, SAC's critic; PPO's value function)
_CRITIC = frozenset({"critic", "value", "q", "q1", "q2", "qf", "qf1", "qf2", "vf"})
#: Parts named with no split make a sum only this many or more together (two could be any pair)
_BARE_PARTS = 3


def _groups(run: RunLog) -> list[_Group]:
    found: dict[tuple[str, str], _Group] = {}
    for s in run.series:
        c = _component(s, bare=True)
        if c is None:
            continue
        role, head, form, part = c
        g = found.setdefault((head.lower(), form), _Group(role, head, []))
        if part in _AGGREGATE:
            g.aggregate = True
        else:
            g.members.append(s)
            g.parts.add(part)
    for g in found.values():
        g.agent = any(set(re.split(r"[_.]", p)) & _AGENT for p in g.parts)
    return [g for (_, form), g in found.items() if not form.startswith("bare_") or len(g.members) >= _BARE_PARTS
            or g.agent]


def _agent_critic(run: RunLog, g: _Group) -> None:
    """An agent's actor (policy) and critic (value, Q) losses are two objectives, whatever the split is
    called: a negated Q value and a TD regression add up to no loss (logsweep97 rl_ddpg_baselines:
    train/loss_actor ~ -2000 and train/loss_critic ~ 5000 were read as one "train/loss"). Nothing is
    summed; in a run on its own rollouts (an episode return logged) the one critic's loss is read as
    the training loss, judged as an agent's loss is (for NaN/Inf and a blow-up, not for falling)."""
    from gradhealth.logs.detectors.rl import on_rollouts  # (detectors import this module's helpers)

    if g.role != "loss" or any(s.role == "loss" for s in run.series) or not on_rollouts(run):
        return
    critics = [m for m in g.members if set(re.split(r"[_./]", m.name.strip()[len(g.head):].lower())) & _CRITIC]
    if len(critics) != 1:
        return
    (critic,) = critics
    critic.role = "loss"
    others = ", ".join(m.name.strip() for m in g.members if m is not critic)
    run.warnings.append(LogWarning(
        "derived_loss", f"{run.source}: no training loss is logged; the check reads {critic.name.strip()}, the "
        f"agent's critic (value) loss, as it, judged as an agent's loss is (NaN/Inf and a blow-up, not a fall)"
        + (f"; {others}, a separate objective, is not added to it" if others else "")))


def _last_per_step(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """``s``'s distinct steps (ascending) with the value logged last at each (a resumed run's)."""
    steps, values = s.steps[::-1], s.values[::-1]
    uniq, first_in_reversed = np.unique(steps, return_index=True)
    return uniq, values[first_in_reversed]


def _sum(parts: list[Series]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(steps, summed values, steps left out) over the steps every part logged; None when they
    share too few steps for the sum to stand for the run."""
    per = [_last_per_step(s) for s in parts]
    shared = per[0][0]
    for steps, _ in per[1:]:
        shared = np.intersect1d(shared, steps)
    every = per[0][0]
    for steps, _ in per[1:]:
        every = np.union1d(every, steps)
    if len(shared) == 0 or len(shared) < MIN_SHARED_FRACTION * len(every):
        return None
    total = np.zeros(len(shared), dtype=np.float64)
    computed = np.zeros(len(shared), dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        for steps, values in per:
            at = values[np.searchsorted(steps, shared)]
            total = total + at
            computed |= at != 0
    # A step where every part is exactly 0 was not computed: Ultralytics writes 0 for the validation
    # losses of the epochs it did not validate (no real loss is 0.0 in every part at once).
    if computed.any() and not computed.all():
        left = int(np.sum(~computed))
        return shared[computed], total[computed], int(len(every) - len(shared)) + left
    return shared, total, int(len(every) - len(shared))


def add_component_losses(run: RunLog) -> RunLog:
    """Add to ``run`` (in place; also returned) the sum of its component losses as its training or
    validation loss where it logs no such loss (see the module's docstring)."""
    logged = {s.role for s in run.series}
    groups = _groups(run)
    for g in groups:
        if g.agent:
            _agent_critic(run, g)
            logged = {s.role for s in run.series}
            continue
        if g.aggregate or g.role in logged:
            continue
        if len(g.members) == 1:
            # a split that logs one loss only, under a name of its own (SimCLR's train/nt_xent_loss,
            # train/contrastive_loss): that is the split's loss, not a part of one; unless another
            # split logs it among its parts (train/box_loss beside val/box_loss, val/cls_loss)
            (lone,) = g.members
            shared = any(len(o.members) > 1 and g.parts <= o.parts for o in groups if o is not g)
            if named_loss(lone.name) and not shared:
                lone.role = g.role
                logged.add(g.role)
                what = "training" if g.role == "loss" else "validation"
                run.warnings.append(LogWarning(
                    "derived_loss", f"{run.source}: no {what} loss has a usual name; the check reads "
                    f"{lone.name.strip()}, the only loss logged for that split, as it"))
            continue
        whole = [m for m in g.members if _component(m, bare=True) is not None
                 and (_component(m, bare=True) or ("", "", "", ""))[3] in _WHOLE_MODEL]
        if len(whole) == 1:
            # a part named for the whole model (the peptide WAE's loss_vae beside its loss_recon and
            # loss_mmd, logsweep77 u01): the model's objective, which the others are terms of; summed
            # with them it counted the terms twice (a negative MMD made the sum negative, and no ratio
            # rule could read its rise)
            (lone,) = whole
            lone.role = g.role
            logged.add(g.role)
            what = "training" if g.role == "loss" else "validation"
            run.warnings.append(LogWarning(
                "derived_loss", f"{run.source}: no {what} loss has a usual name; the check reads "
                f"{lone.name.strip()}, named for the whole model, as it (its terms "
                f"{', '.join(m.name.strip() for m in g.members if m is not lone)} are parts of it)"))
            continue
        if len({s.step_unit for s in g.members}) != 1:
            continue
        summed = _sum(g.members)
        if summed is None:
            continue
        steps, values, left_out = summed
        parts = [s.name.strip()[len(g.head):] for s in g.members]
        shown = ", ".join(parts[:NAMED_PARTS]) + (f" +{len(parts) - NAMED_PARTS} more" if len(parts) > NAMED_PARTS else "")
        name = f"{g.head}loss (sum of {shown})"
        if any(s.name == name for s in run.series):
            continue
        derived = Series(name=name, role=g.role, steps=steps, values=values, step_unit=g.members[0].step_unit,
                         epoch_length=g.members[0].epoch_length, position_words=g.members[0].position_words)
        run.series.insert(run.series.index(g.members[0]), derived)
        what = "training" if g.role == "loss" else "validation"
        run.warnings.append(LogWarning(
            "derived_loss",
            f"{run.source}: no {what} loss is logged; the check reads {name}, the sum of those "
            f"{len(parts)} component losses at the {len(steps):,} step(s) all of them log"
            + (f" ({left_out:,} step(s) where some component has no value are left out)" if left_out else "")))
    return run


def component_pairs(run: RunLog) -> list[tuple[Series, Series]]:
    """Each validation component loss of ``run`` beside its own training counterpart:
    (``val/cls_loss``, ``train/cls_loss``), matched by folder prefix, separator, form and part, where
    the validation split logs two or more components (Ultralytics' box, cls and dfl; YOLOv5's box,
    obj and cls). A sum of the parts (:func:`add_component_losses`) can hide one part that rises
    under others that fall or stay flat, so the validation check judges each part as well."""
    train: dict[tuple[str, str, str, str], Series] = {}
    val: dict[tuple[str, str, str], list[tuple[str, Series]]] = {}
    for s in run.series:
        c = _split_component(s)
        if c is None:
            continue
        role, pre, sep, form, part = c
        if part in _AGGREGATE:
            continue
        if role == "loss":
            train.setdefault((pre, sep, form, part), s)
        elif role == "val_loss":
            val.setdefault((pre, sep, form), []).append((part, s))
    pairs = []
    for (pre, sep, form), members in val.items():
        if len(members) < 2:
            continue
        pairs += [(s, train[(pre, sep, form, part)]) for part, s in members if (pre, sep, form, part) in train]
    return pairs


def _split_component(s: Series) -> tuple[Role, str, str, str, str] | None:
    """(role of the total, folder prefix, separator, form, part) when ``s`` names a component loss of
    a named split (``val/cls_loss``, ``train_loss_box``), with prefix and part lower-cased."""
    found = _split_match(s.name.strip()) if s.role == "metric" else None
    if found is None or found[0] not in ("loss", "val_loss"):
        return None
    role, m, form = found
    return role, m.group("pre").lower(), m.group("sep"), form, m.group("part").lower()


#: A perplexity by split: ``ppl``, ``train_ppl``, ``eval_perplexity``, ``valid/ppl``, ``Validation_perplexity``.
_PERPLEXITY = re.compile(r"^(?:(?P<split>[A-Za-z]+)[/_. ])?(?:ppl|perplexity)$", re.IGNORECASE)


def add_loss_from_perplexity(run: RunLog) -> RunLog:
    """Add ``ln(<perplexity>)`` as the run's training (resp. validation) loss where it logs a
    perplexity of that split and no such loss (OpenNMT prints ``Validation perplexity: 25.4`` and
    no validation loss). Perplexity is exp(cross-entropy), so its log is the loss; in base 2
    (fairseq's ``ppl`` is 2^loss) it is the loss times ln 2, which leaves every relative change, and
    so every check of it, the same. Non-positive perplexities become NaN."""
    logged = {s.role for s in run.series}
    for s in list(run.series):
        m = _PERPLEXITY.match(s.name.strip())
        if m is None:
            continue
        split = (m["split"] or "train").lower()
        role = "loss" if split in ("train", "training") else classify(f"{split}_loss")[0]
        if role not in ("loss", "val_loss") or role in logged:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(s.values > 0, np.log(np.where(s.values > 0, s.values, 1.0)), np.nan)
        name = f"ln({s.name})"
        run.series.insert(run.series.index(s), Series(name=name, role=role, steps=s.steps, values=values,
                                                      step_unit=s.step_unit, epoch_length=s.epoch_length,
                                                      position_words=s.position_words))
        logged.add(role)
        what = "training" if role == "loss" else "validation"
        run.warnings.append(LogWarning(
            "derived_loss", f"{run.source}: no {what} loss is logged; the check reads {name}, the cross-entropy "
            f"its perplexity stands for"))
    return run


#: Words that make a series named with "loss" something else than a loss to minimise: a scaler's
#: scale, a loss's weight or coefficient, a best-so-far, a policy-gradient or entropy term (its
#: sign and trend are not a loss's), an evaluation split.
_NOT_A_LOSS = frozenset({"scale", "scaler", "weight", "weights", "coef", "coeff", "lambda", "ratio", "lr",
                         "min", "max", "best", "std", "var", "actor", "policy", "pg", "entropy", "ent",
                         "val", "valid", "validation", "eval", "test", "dev"})


def _last_part(name: str) -> str:
    """A series name's last part: ``Loss/total_loss`` -> ``total_loss``."""
    return name.strip().rsplit("/", 1)[-1]


def named_loss(name: str) -> bool:
    """Whether ``name`` is a training loss by its words though not by a name ``classify`` knows:
    ``mse_loss``, ``ctc_loss``, ``recon_loss``, ``MSE Loss``, ``episode/MSE Loss``, ``loss_net``.
    The word must be in the name's last part: ``Loss/pi``, ``loss/discrim`` and StyleGAN's
    ``Loss/scores/fake`` are series a tool files under a "loss" heading, not a loss."""
    words = {w.lower() for w in re.split(r"[_.\s-]+|(?<=[a-z])(?=[A-Z])", _last_part(name)) if w}
    return "loss" in words and not words & _NOT_A_LOSS and gan_part(name) is None


#: A bare total's name (``Total=0.78``, ``total: 1.2``) and the words of series beside it that make it a
#: count or a score, not a loss (``Correct: 950 Total: 1000``, ``acc=0.9 total=...``)
_TOTAL = frozenset({"total"})
_NOT_PARTS = frozenset({"acc", "accuracy", "correct", "precision", "recall", "f1", "auc", "score", "reward",
                        "return", "samples", "count", "num", "n", "lr"})


def _one_fractional(run: RunLog, named: Callable[[str], bool]) -> tuple[Series, set[int]] | None:
    """The one metric series whose name's last part ``named`` picks, with its steps, where it has a
    value that is no whole number (whole numbers are a count or a size, not a loss); else None."""
    picked = [s for s in run.series if s.role == "metric" and named(_last_part(s.name).strip())]
    if len(picked) != 1:
        return None
    v = picked[0].values[np.isfinite(picked[0].values)]
    if not len(v) or bool(np.all(v == np.round(v))):
        return None
    return picked[0], set(picked[0].steps.tolist())


def _bare_total(run: RunLog) -> list[Series]:
    """A series named ``total`` alone (any case) printed beside other values of no known role at its
    steps, which are the parts it adds up: a VAE's ``Rec=0.30, KL=48.4, Total=0.78``, a multi-objective
    script's parts with no "loss" in any name (logsweep87 vae3d_kl: "no training loss" for a log of
    nothing but losses). Not where its values are all whole numbers (a count: ``Total: 1000``) or a
    series beside it is an accuracy, a count or a score. ``[]`` or the one series."""
    found = _one_fractional(run, lambda name: name.lower() in _TOTAL)
    if found is None:
        return []
    total, steps = found
    beside = [s for s in run.series if s is not total and len(steps & set(s.steps.tolist())) * 2 >= len(steps)
              and _last_part(s.name).strip().lower() not in ("epoch", "epochs", "step", "steps", "iter", "iteration")]
    words = {w.lower() for s in beside for w in re.split(r"[_.\s/-]+|(?<=[a-z])(?=[A-Z])", s.name) if w}
    if not beside or any(s.role != "metric" for s in beside) or words & _NOT_PARTS:
        return []
    return [total]


#: Paper notation for a loss and its terms: ``L`` beside ``L_crf``, ``L_selection`` (``L_rec``, ``L_kl``).
_PAPER_PART = re.compile(r"L_[A-Za-z][\w.-]*")


def _paper_total(run: RunLog) -> list[Series]:
    """A series named ``L`` printed beside terms named ``L_<part>`` at its steps, with no other loss:
    the paper notation for a loss and its terms (OpenJERE's ``L: 7.94, L_crf: 7.07, L_selection:
    0.87``, L being their sum). Not a bare ``L`` alone (a length), nor one of whole numbers (a count
    or a size: ``L: 128, L_max: 512``), nor where ``L`` is neither the sum of its terms nor the only
    such family (a term beside it that is an accuracy, a count or a score). ``[]`` or the one series."""
    found = _one_fractional(run, lambda name: name == "L")
    if found is None:
        return []
    total, steps = found
    parts = [s for s in run.series if s is not total and s.role == "metric"
             and _PAPER_PART.fullmatch(_last_part(s.name).strip()) is not None
             and len(steps & set(s.steps.tolist())) * 2 >= len(steps)]
    words = {w.lower() for s in parts for w in re.split(r"[_.\s/-]+|(?<=[a-z])(?=[A-Z])", s.name)[1:] if w}
    if not parts or words & _NOT_PARTS:
        return []
    return [total]


#: A training split's error by its name (Train MSE, train_rmse, training_mae, Train NLL): the objective
#: a regression or density model minimises, printed under the split instead of the word loss
_TRAINING_ERROR = re.compile(r"^(?:train|training|trn)[/_.]?(?P<what>nll|mse|rmse|mae|l2|l1|mape|smape|huber)"
                             r"(?:[/_.]?loss)?$")
#: Of several, the one read: the likelihood, then the squared errors (the usual objectives), then the rest
_ERROR_ORDER = ("nll", "mse", "l2", "rmse", "huber", "mae", "l1", "mape", "smape")
#: A held-out split's error by its name (Val MSE, valid_rmse, test_mae, eval NLL): the validation loss
#: beside the training split's same error read as the training loss
_HELD_OUT_ERROR = re.compile(r"^(?:val|vali|valid|validation|eval|test|dev)[/_.]?"
                             r"(?P<what>nll|mse|rmse|mae|l2|l1|mape|smape|huber)(?:[/_.]?loss)?$")


def _training_error(run: RunLog) -> Series | None:
    """The series of a training split's error (:data:`_TRAINING_ERROR`), the first of them in
    :data:`_ERROR_ORDER`; None without one. A regression console prints its objective as "Train MSE"
    beside "Val MSE": that is its training loss, before any other value named a loss (an auxiliary
    regulariser's "Gate Loss", a "KL loss" term)."""
    found: dict[str, Series] = {}
    for s in run.series:
        m = _TRAINING_ERROR.match(re.sub(r"\s+", "_", s.name.strip().lower()))
        if s.role == "metric" and m is not None:
            found.setdefault(m["what"], s)
    return next((found[w] for w in _ERROR_ORDER if w in found), None)


def _held_out_error(run: RunLog, train: Series) -> Series | None:
    """The held-out split's series of the same error as ``train`` (a training split's error read as
    the training loss: Val MSE beside Train MSE), where the run has no validation loss by name; None
    without one or with several (a validation and a test split: which one is the validation's is not
    said). The error on another split is the same objective measured on data not trained on: the
    validation loss, in the same units (logsweep92 ant_transformer_gates)."""
    m = _TRAINING_ERROR.match(re.sub(r"\s+", "_", train.name.strip().lower()))
    if m is None or any(s.role == "val_loss" for s in run.series):
        return None
    found = [s for s in run.series if s.role == "metric"
             and (h := _HELD_OUT_ERROR.match(re.sub(r"\s+", "_", s.name.strip().lower()))) is not None
             and h["what"] == m["what"]]
    return found[0] if len(found) == 1 else None


def add_named_loss(run: RunLog) -> RunLog:
    """Where ``run`` still has no training loss and exactly one series is named as a loss in words
    (:func:`named_loss`), or one of several has a total's name in its last part
    (``Loss/total_loss``), read that series as the training loss. Other sets are left as they are:
    an actor's and a critic's, or two adversaries', do not add up to one loss. A log of several
    runs (:attr:`RunLog.runs`) is judged run by run: each run's one loss in words is its loss."""
    if run.runs:
        for part in run.split().values():
            part.source = run.source
            add_named_loss(part)
            run.warnings.extend(w for w in part.warnings if w not in run.warnings)
        return run
    if any(s.role == "loss" for s in run.series):
        return run
    error = _training_error(run)
    if error is not None:
        # (logsweep92 ant_transformer_gates: "Train MSE | Gate Loss | Val MSE", the auxiliary gate
        # loss read as the training loss; with Train MSE and Val MSE alone, no loss at all)
        error.role = "loss"
        held_out = _held_out_error(run, error)
        if held_out is not None:
            held_out.role = "val_loss"
        run.warnings.append(LogWarning(
            "derived_loss", f"{run.source}: no series has a training loss's usual name; the check reads "
            f"{error.name.strip()}, the training split's error, as the training loss"
            + (f" and {held_out.name.strip()}, the same error on held-out data, as the validation loss"
               if held_out is not None else "")))
        return run
    # a split's component (``train/box_loss``) is a part of a loss: add_component_losses' business
    found = [s for s in run.series if s.role == "metric" and named_loss(s.name) and _component(s) is None]
    # of several, the one whose last part is a total's name (TF's Object Detection API:
    # Loss/total_loss beside Loss/classification_loss and Loss/localization_loss)
    totals = [s for s in found if classify(_last_part(s.name))[0] == "loss"]
    if len(found) > 1 and len(totals) == 1:
        found = totals
    if not found:
        found = _bare_total(run) or _paper_total(run)
    if len(found) != 1:
        return run
    found[0].role = "loss"
    run.warnings.append(LogWarning(
        "derived_loss", f"{run.source}: no series has a training loss's usual name; the check reads "
        f"{found[0].name.strip()} as the training loss"))
    return run
