"""Per-layer gradient norms: the first layer's against the last (``vanishing_gradient``, and the
per-layer part of ``exploding_gradient``) and layers whose norm is exactly zero (``dead_layer``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from gradhealth.core import remedies as R
from gradhealth.core.document import Finding
from gradhealth.core.rules import detects
from gradhealth.logs.detectors.common import finding, times
from gradhealth.logs.remedies import clipping, lower_lr, matching_init, sized_lower_lr
from gradhealth.logs.series import RunLog, Series
from gradhealth.logs.stats import (
    early_baseline,
    finite,
    late_level,
    median,
    natural_key,
    resolution,
    smooth,
)
from gradhealth.logs.stats import num as _num
from gradhealth.logs.stats import span as _span
from gradhealth.logs.thresholds import LogThresholds

#: A non-negative training loss whose level is at most this fraction of its start has fallen to its
#: floor: gradients that shrink by decades, or become exactly 0, then say the run converged (an MLP's
#: loss 2.33 -> ~1e-8 with its grad norm 1.7 -> 4e-9; a CNN's loss exactly 0 from step 20 with every
#: layer's gradient exactly 0, newuser5), not that it stopped learning or that its units died.
CONVERGED_LOSS_FRACTION = 0.01


def converged_loss(run: RunLog, since: float | None = None) -> tuple[float, float] | None:
    """``(start, level)`` of the training loss when it fell to its floor: the median of its first 3
    points (a loss that converges fast is far down already by the end of the first 5 %), and the median of its points from step ``since`` on (the last
    quarter when None), that level (their 90th percentile: the loss stayed there, a few bumps aside) at most :data:`CONVERGED_LOSS_FRACTION` of the start. None when
    it did not, when no loss is logged, or when the loss goes negative (no floor at 0 to fall to).
    A loss that is stuck never gets there, so vanishing or dead gradients under it are kept."""
    loss = run.first("loss")
    if loss is None:
        return None
    ls, lv = finite(loss)
    if len(lv) < 3 or np.any(lv < 0):
        return None
    start = float(median(lv[:3]))
    tail = lv[ls >= since] if since is not None else lv[-max(3, len(lv) // 4):]
    if not start > 0 or not len(tail):
        return None
    level = float(np.percentile(tail, 90))
    if level > CONVERGED_LOSS_FRACTION * start:
        return None
    # (logsweep69 u08: a Whisper loss 0.851 then exactly 0.0 for 200 logs, grad_norm 16.2 then 0.0)
    # a loss that got to 0 in one step from far above its floor did not converge: it broke
    return None if zero_jump(lv) is not None else (start, level)


#: Rounding steps of the printed loss within which a point before an exact 0 is already at it
ZERO_WITHIN_STEPS = 10


def zero_jump(values: np.ndarray) -> int | None:
    """The index of a non-negative loss's first exact 0 when it got there in one logged step from
    far above its floor: the point before it above :data:`CONVERGED_LOSS_FRACTION` of the start (the
    median of the first 3 positive points) and above :data:`ZERO_WITHIN_STEPS` rounding steps of the
    printed values (0.0003, 0.0001, then 0.0 printed at 4 decimals is a loss that glided to 0). A
    loss that fell gradually to its floor (to 1% of its start or to the last printed digit) and
    then printed 0 converged; one that went 0.851 -> 0.0 stopped measuring anything (every label
    masked, an empty batch, a loss detached from the output). None when there is no such jump."""
    zeros = np.nonzero(values == 0)[0]
    return int(zeros[0]) if len(zeros) and jumped_to_zero(values, int(zeros[0])) else None


def jumped_to_zero(values: np.ndarray, at: int) -> bool:
    """Whether a non-negative loss's exact 0 at index ``at`` came in one logged step from far above
    its floor (:func:`zero_jump`'s test)."""
    positive = values[values > 0]
    if at <= 0 or values[at] != 0 or not len(positive) or not values[at - 1] > 0:
        return False
    start = float(median(positive[:3]))
    floor = max(CONVERGED_LOSS_FRACTION * start, ZERO_WITHIN_STEPS * resolution(values))
    return float(values[at - 1]) > floor


def converged_note(code: str, what: str, done: tuple[float, float], explanation: str,
                   evidence: dict[str, Any]) -> Finding:
    """The info note, without remedies, for gradients that shrank or stopped because the training
    loss reached its floor (:func:`converged_loss`'s ``done``): ``what`` says what happened and
    ends where the loss level follows ("... where the loss had fallen to")."""
    start, level = done
    return finding(code, "info", f"{what} {level:.3g} ({100 * level / start:.2g}% of its start {start:.3g}): "
                   "the run converged", explanation,
                   {**evidence, "converged": True, "loss_start": start, "loss_level": level}, [])


def _depth_order(layers: list[Series]) -> list[Series]:
    """Layers in depth order. A log that wrote them in plain alphabetical order (Lightning's CSVLogger
    sorts its columns: ``layers.10`` before ``layers.2``) kept no order of its own, so the numbers in
    the names decide; any other order is the log's, i.e. the model's, and is kept."""
    names = [s.layer or s.name for s in layers]
    if names == sorted(names) and sorted(names, key=natural_key) != names:
        return sorted(layers, key=lambda s: natural_key(s.layer or s.name))
    return layers


def _first_and_last_layer(run: RunLog) -> tuple[Series, Series, float, float] | None:
    """The first and the last layer in depth order (weights rather than biases, where the names say)
    with their median gradient norms over the run; None without two layers of 3 finite points."""
    layers = [s for s in run.by_role("layer_grad_norm") if np.sum(np.isfinite(s.values)) >= 3]
    weights = _depth_order([s for s in layers if "weight" in (s.layer or s.name)] or layers)
    if len(weights) < 2:
        return None
    first, last = weights[0], weights[-1]
    return first, last, float(median(finite(first)[1])), float(median(finite(last)[1]))


def exploding_layers(run: RunLog, t: LogThresholds) -> list[Finding]:
    """The first layer's gradient many decades above the last one's throughout the run: the growth
    with depth that exploding gradients are, read from per-layer norms (the mirror of
    :func:`vanishing`'s test, at the same number of decades)."""
    pair = _first_and_last_layer(run)
    if pair is None:
        return []
    first, last, a, b = pair
    if not (b > 0 and a > 0 and b / a < t.vanishing_layer_ratio):
        return []
    ratio = a / b
    steps = np.concatenate([first.steps, last.steps])
    return [finding(
        "exploding_gradient", "error" if b / a < t.vanishing_layer_ratio**2 else "warning",
        f"{first.layer or first.name} gets {ratio:.3g}x more gradient than {last.layer or last.name} "
        f"(median {a:.3g} vs {b:.3g})",
        "The gradient grows on its way back to the first layers (a per-layer gain above 1: weights too large "
        "for the activation, unnormalised residual sums), so the first layers take the largest steps and "
        "become unstable first.",
        {"metric": first.name, "steps": [_num(steps.min()), _num(steps.max())], "value": ratio,
         "threshold": 1 / t.vanishing_layer_ratio, "layers": [first.layer or first.name, last.layer or last.name],
         "first_layer_median": a, "last_layer_median": b},
        [clipping(run, t), matching_init(run, "the hidden layers"),
         R.normalisation("layernorm", "each hidden layer")])]


def _level_fall(v: np.ndarray) -> float:
    """The relative fall of a loss from its start level (the median of its first tenth, 3 points at
    least) to its late one (the median of its last quarter, as :func:`late_level`'s): a loss whose
    batches scatter +-7 % around a flat 9.5e6 "improved" 5.7 % over its last half by the smoothed
    ends, while its level never moved (newuser12: a sigmoid output saturated against targets of
    about 3000, the gradient norm 3.7e3 -> 1.8)."""
    k = max(3, len(v) // 10)
    start, end = float(median(v[:k])), float(median(v[-max(3, len(v) // 4):]))
    return (start - end) / max(abs(start), 1e-12)


@detects("vanishing_gradient")
def vanishing(run: RunLog, t: LogThresholds) -> list[Finding]:
    found: list[Finding] = []
    pair = _first_and_last_layer(run)
    if pair is not None:
        first, last, a, b = pair
        if b > 0 and a >= 0 and a / b < t.vanishing_layer_ratio and a > 0:
            ratio = a / b
            steps = np.concatenate([first.steps, last.steps])
            found.append(finding(
                "vanishing_gradient", "error" if ratio < t.vanishing_layer_ratio**2 else "warning",
                f"{first.layer or first.name} gets {1 / ratio:.3g}x less gradient than {last.layer or last.name} "
                f"(median {a:.3g} vs {b:.3g})",
                "The gradient shrinks on its way back to the first layers, so they barely learn (saturating "
                "activations, small init or depth without skips/normalisation).",
                {"metric": first.name, "steps": [_num(steps.min()), _num(steps.max())], "value": ratio,
                 "threshold": t.vanishing_layer_ratio, "layers": [first.layer or first.name, last.layer or last.name],
                 "first_layer_median": a, "last_layer_median": b},
                [R.relu_family_activation("the hidden layers"),
                 matching_init(run, "the hidden layers"),
                 R.normalisation("batchnorm", "each hidden layer"),
                 R.residual_connections("the deep part of the network")]))
    s = run.first("grad_norm")
    loss = run.first("loss")
    if s is not None and loss is not None and not found:
        steps, v = finite(s)
        _, lv = finite(loss)
        if len(v) >= t.min_points and len(lv) >= t.min_points:
            base = early_baseline(v, t.baseline_fraction)
            # over the last quarter of the logged points, its finite ones (stats.late_level)
            late, late_finite, late_nonfinite = late_level(s)
            if not late_finite:
                return found
            sl = smooth(lv, 9)
            stalled = ((sl[len(sl) // 2] - sl[-1]) / max(abs(sl[len(sl) // 2]), 1e-12) < t.plateau_improvement
                       or _level_fall(lv) < t.plateau_early_fraction)
            # (a late median of exactly 0 is steps without any gradient: zero_gradient's to report)
            if base > 0 and 0 < late / base < t.vanishing_decay and stalled:
                done = converged_loss(run)
                if done is not None:
                    # the loss stalled at its floor: the gradient shrank because there is nothing left to fit
                    return [converged_note(
                        "vanishing_gradient", f"{s.name} decayed {base / late:.3g}x (to {late:.3g}) as {loss.name} "
                        "fell to", done,
                        "A loss at its floor has (almost) no gradient left: the shrinking norm is the fit being "
                        "done, not a network that stopped learning.",
                        {"metric": s.name, "steps": _span(steps), "value": late / base,
                         "threshold": t.vanishing_decay, "baseline": base, "late_median": late,
                         "late_nonfinite": late_nonfinite})]
                found.append(finding(
                    "vanishing_gradient", "warning",
                    f"{s.name} decayed {base / late:.3g}x (to {late:.3g}) while the loss stalled",
                    "Gradients decaying towards zero while the loss no longer improves: the network stopped learning.",
                    {"metric": s.name, "steps": _span(steps), "value": late / base, "threshold": t.vanishing_decay,
                     "baseline": base, "late_median": late, "late_nonfinite": late_nonfinite},
                    [R.relu_family_activation("the hidden layers"),
                     R.normalisation("batchnorm", "each hidden layer")]))
    return found


@detects("dead_layer")
def dead_layers(run: RunLog, t: LogThresholds) -> list[Finding]:
    dead = []
    onsets = []  # the step each dead layer's zeros start at, for good
    shares = []  # each dead layer's share of exactly-zero points
    for s in run.by_role("layer_grad_norm"):
        fs, v = finite(s)
        if len(v) >= 3:
            zero = v == 0.0
            # dead from some point on, for at least half the run
            tail = len(zero) - int(np.argmax(~zero[::-1])) if not zero.all() else 0
            if zero.all() or (tail and zero[tail:].all() and len(zero) - tail >= len(zero) // 2):
                first_zero = int(np.argmax(zero)) if not zero.all() else 0
                dead.append((s, first_zero))
                onsets.append(float(fs[tail if not zero.all() else 0]))
                shares.append(float(zero.mean()))
            elif _mostly_dead(zero):
                # dead with flickers: a ReLU layer whose units all died still passes a gradient on the
                # odd batch that wakes one unit, so its zeros never run unbroken to the end (newuser8: a
                # 20-64-64-3 MLP at lr 8, five of six tensors at exactly 0 on 210 of 300 steps from step
                # 36 on, 4 to 12 non-zero steps in a row between)
                first_zero = int(np.argmax(zero))
                dead.append((s, first_zero))
                onsets.append(float(fs[first_zero]))
                shares.append(float(zero.mean()))
    if not dead:
        return []
    names = [s.layer or s.name for s, _ in dead]
    s0, i0 = dead[0]
    # the layers went to exactly zero when the loss had reached its floor (all from the same point on):
    # nothing died, the loss gives no gradient because there is nothing left to fit
    done = converged_loss(run, since=min(onsets))
    if done is not None:
        return [converged_note(
            "dead_layer", f"{len(dead)} layer(s) get exactly zero gradient from {s0.where(min(onsets))}, where the "
            "loss had fallen to", done,
            "A loss at its floor gives no gradient: the layers stopped getting one because the fit is done, "
            "not because their units died.",
            {"metric": _series_kind([s for s, _ in dead]), "steps": [_num(min(onsets)), _num(s0.steps[-1])],
             "layers": names, "value": 0.0, "dead_count": len(dead)})]
    # The remedies follow what can have zeroed them (newuser5 P11): a GRU's or LSTM's weights get no
    # ReLU, and a layer at zero from the first logged step did not die of the learning rate.
    recurrent = all(_RECURRENT.search(n) for n in names)
    blowup: dict | None = None
    from_start = all(first == 0 for _, first in dead)
    if recurrent:
        remedies = [clipping(run, t), lower_lr(run, at_step=float(s0.steps[i0]),
                                               why="the recurrent layers' gates saturated")]
        why = ("A recurrent layer whose gradient is exactly zero does not learn: its gates saturated (a step "
               "too large for the recurrence) or its weights are frozen or unused.")
    else:
        remedies = [R.relu_family_activation("the dead layers", "leaky_relu"),
                    R.init("kaiming_normal", "the dead layers")]
        if not from_start:
            # units that died after the gradient norm blew up were killed by the rate: it comes first,
            # cut by as much as the blow-up says (newuser13: lr 8, grad norm 0.38 -> 52,169, then every
            # weight tensor at 0: 0.3x gave 2.4, which died again; "use leaky_relu" came first)
            from gradhealth.logs.detectors.explosion import blowup_before

            blowup = blowup_before(run, t, until=float(min(s.steps[i] for s, i in dead)))
            if blowup is not None:
                remedies.insert(0, sized_lower_lr(
                    run, at_step=float(blowup["start"]), rise=blowup["rise"], dead=True,
                    why="units died after the gradient norm spiked"))
            else:
                remedies.append(lower_lr(run, at_step=float(s0.steps[i0]), why="units died"))
        why = ("A layer whose gradient is exactly zero does not learn: dead ReLUs, a detached branch, frozen "
               "or unused parameters." + (" It was at zero from the first logged step: its initialisation, "
                                          "or a branch the loss never reaches." if from_start else ""))
    # "All" is judged over the weight tensors: a bias alone learns nothing of the input, and a plain
    # network's output bias always gets the loss's gradient, so "every tensor dead" never happens
    # (newuser10: a 20-128-128-5 ReLU MLP at lr 1.5, all three weight matrices at 0, only 4.bias left)
    every = run.by_role("layer_grad_norm")
    weights = [s for s in every if not _BIAS.search(s.layer or s.name)]
    dead_ids = {id(s) for s, _ in dead}
    all_weights = bool(weights) and all(id(s) in dead_ids for s in weights)
    alive = [s.layer or s.name for s in every if id(s) not in dead_ids]
    summary = (f"{len(dead)} layer(s) get exactly zero gradient: {', '.join(names[:5])}"
               + (" ..." if len(names) > 5 else "")
               + (f" (on {min(shares):.0%} or more of their steps, from {s0.where(min(onsets))} on; the odd batch "
                  "still wakes a unit)"
                  if min(shares) < 1 and any(not _dead_to_end(s) for s, _ in dead) else ""))
    if all_weights and alive:
        summary += (f"; that is every weight tensor ({len(weights)} of {len(weights)}): only "
                    f"{', '.join(alive[:5])}{' ...' if len(alive) > 5 else ''} still get(s) a gradient, a bias "
                    "that learns nothing of the input, so the network predicts the same for every input")
    if blowup is not None:
        summary += (f"; they died after {s0.where(blowup['peak_step'])}'s gradient norm {blowup['peak']:.3g}, "
                    f"{times(blowup['rise'])} its level before ({blowup['level']:.3g}): a step too large for the "
                    "learning rate, not the activation, is the likely cause")
    return [finding(
        "dead_layer", "error" if all_weights or len(dead) == len(every) else "warning",
        summary,
        why,
        {"metric": _series_kind([s for s, _ in dead]), "steps": [_num(s0.steps[i0]), _num(s0.steps[-1])],
         "layers": names, "value": 0.0, "dead_count": len(dead), "tensors": len(every),
         "weight_tensors": len(weights), "dead_weight_tensors": sum(id(s) in dead_ids for s in weights),
         "all_weights_dead": all_weights, "from_start": from_start, "recurrent": recurrent,
         "zero_fraction": min(shares)} | ({"blowup": blowup} if blowup is not None else {}),
        [r for r in remedies if r is not None])]


#: A bias (or a norm's shift: TensorFlow's ``beta``) by its name's last word: it learns an offset,
#: nothing of the input (``4.bias``, ``fc1/bias``, ``LayerNorm/beta``, ``bias_hh_l0``)
_BIAS = re.compile(r"(?:^|[./_:-])(?:bias|beta)(?:_[a-z]{2}(?:_l\d+)?)?(?:[:]\d+)?$", re.IGNORECASE)


def _series_kind(dead: list[Series]) -> str:
    """The kind of series the dead layers' norms are, not one of them: their names with the layer
    replaced by ``*`` where they all share that pattern (``grad_norm/*``), else the role."""
    kinds = {s.name.replace(s.layer, "*") if s.layer and s.layer in s.name else None for s in dead}
    kind = kinds.pop() if len(kinds) == 1 else None
    return kind if kind is not None else "layer_grad_norm"


#: A layer's gradient exactly zero on at least this share of all its points, and of its points from its
#: first zero on, is dead, flickers and all (README: "exactly zero for at least half the run")
DEAD_SHARE = 0.5
DEAD_SINCE_SHARE = 0.6


def _mostly_dead(zero: np.ndarray) -> bool:
    """Whether a layer's exact zeros (``zero``, per point) make at least :data:`DEAD_SHARE` of the run
    and :data:`DEAD_SINCE_SHARE` of it from its first zero on, and still half of its last quarter (a
    layer that came back to life for good is not dead at the end)."""
    if len(zero) < 8 or not zero.any():
        return False
    first = int(np.argmax(zero))
    last_quarter = zero[-max(2, len(zero) // 4):]
    return bool(zero.mean() >= DEAD_SHARE and zero[first:].mean() >= DEAD_SINCE_SHARE
                and last_quarter.mean() >= 0.5)


def _dead_to_end(s: Series) -> bool:
    _, v = finite(s)
    return bool(len(v) and v[-1] == 0.0)


#: A recurrent layer's parameters (torch's ``weight_hh_l0``, ``gru``/``lstm``/``rnn`` modules).
_RECURRENT = re.compile(r"weight_(hh|ih)|bias_(hh|ih)|(?<![a-z])(gru|lstm|rnn)", re.IGNORECASE)
