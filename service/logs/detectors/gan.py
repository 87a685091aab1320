"""GAN runs: a generator and discriminator frozen at their start, or a discriminator that won outright.
"""

from __future__ import annotations

import math

import numpy as np

from gradhealth.core.document import Finding
from gradhealth.core.remedies import GanNetwork
from gradhealth.logs.detectors.common import finding
from gradhealth.logs.remedies import lower_lr
from gradhealth.logs.series import RunLog, Series, gan_part
from gradhealth.logs.stats import finite, median, smooth
from gradhealth.logs.stats import num as _num
from gradhealth.logs.thresholds import LogThresholds

#: A GAN's losses logged this many times, every one the same, are frozen, not a game going on.
_GAN_FROZEN_POINTS = 5


def frozen_gan(run: RunLog) -> Finding | None:
    """A GAN whose generator and discriminator losses are each exactly the same number at every
    logged step (StudioGAN's ``Gen_loss: -0.0 Dis_loss: 13.82`` from step 100 on): the game is
    not being played. A discriminator that wins outright gives the generator no gradient
    (Goodfellow et al. 2014; Arjovsky and Bottou 2017), and the losses of two networks that learn
    move, however they balance."""
    if run.first("loss") is not None:
        return None
    parts: dict[str, list[tuple[Series, np.ndarray, np.ndarray]]] = {"G": [], "D": []}
    for s in run.series:
        part = gan_part(s.name) if s.role == "metric" else None
        if part is not None:
            steps, v = finite(s)
            parts[part].append((s, steps, v))
    if not parts["G"] or not parts["D"]:
        return None
    every = [x for p in parts.values() for x in p]
    exact = all(len(v) >= _GAN_FROZEN_POINTS and np.ptp(v) == 0 for _, _, v in every)
    if not exact and not all(_pinned(v) for _, _, v in every):
        return None
    g, d = parts["G"][0], parts["D"][0]
    first = min(float(steps[0]) for _, steps, _ in every)
    last = max(float(steps[-1]) for _, steps, _ in every)
    points = min(len(v) for _, _, v in every)
    where = (f"{g[0].name} is {float(g[2][0]) + 0.0:g} and {d[0].name} {float(d[2][0]) + 0.0:g} at every one of "
             f"{points} logged points" if exact else
             f"{g[0].name} stays at {float(median(g[2])):.4g} and {d[0].name} at {float(median(d[2])):.4g}, "
             f"8 in 10 of the {points} logged points within {_GAN_PINNED:.0%} of that")
    return finding(
        "loss_plateau", "warning",
        f"the GAN's losses do not move: {where} ({g[0].between(first, last)})",
        "A generator and a discriminator that learn push each other's losses around; losses that stay the same "
        "at every step mean neither network's updates change anything: most often the discriminator has won "
        "outright and its saturated output gives the generator no gradient (a learning rate or a discriminator "
        "too strong, or a non-saturating loss needed), or it has stopped telling real from fake at all (an "
        "output of 0.5 everywhere: ln 2 per term of a cross-entropy, 2 ln 2 = 1.386 for the real and fake terms "
        "summed).",
        {"metric": g[0].name, "steps": [_num(first), _num(last)], "value": 0.0, "threshold": 0.0,
         "generator": [s.name for s, _, _ in parts["G"]][:20],
         "discriminator": [s.name for s, _, _ in parts["D"]][:20]},
        [lower_lr(run, at_step=first, why="the GAN's losses froze",
                  network=_frozen_network(float(median(g[2])), float(median(d[2]))),
                  series={"discriminator": d[0].name, "generator": g[0].name})])


def _frozen_network(g_level: float, d_level: float) -> GanNetwork:
    """Whose learning rate to cut for a GAN whose losses froze at ``g_level`` and ``d_level``: the
    discriminator's where its loss sits near 0 (at most :data:`_D_LOST_SHARE` x ln 2, D right about
    both sides with 0.84 or more) under its generator's: it won outright, and cutting the generator's
    rate too would slow the side that lost. Both otherwise: a discriminator pinned high (StudioGAN's
    ``Dis_loss: 13.82`` = -ln 1e-6 beside ``Gen_loss: -0.0``, its outputs saturated the wrong way) or at
    balance says neither network is the one ahead."""
    near_zero = 0 <= d_level <= _D_LOST_SHARE * _BALANCED_D
    return "discriminator" if near_zero and g_level > d_level else "both"


#: A GAN player's per-step loss whose middle 80 % spans at most this share of its level, over at least
#: :data:`_GAN_PINNED_POINTS` points, does not move (:func:`frozen_gan`): a learning player's loss
#: swings by tens of percent from batch to batch.
_GAN_PINNED = 0.02
_GAN_PINNED_POINTS = 20


def _pinned(v: np.ndarray) -> bool:
    """Whether a GAN player's losses ``v`` stay within :data:`_GAN_PINNED` of one level."""
    if len(v) < _GAN_PINNED_POINTS:
        return False
    level = float(median(v))
    lo, hi = np.percentile(v, [10, 90])
    return level != 0 and float(hi - lo) <= _GAN_PINNED * abs(level)


#: Share of a discriminator's logged losses at exactly 0 that says it has won (:func:`discriminator_won`).
_D_ZERO_SHARE = 0.75


def discriminator_won(run: RunLog) -> Finding | None:
    """A GAN whose discriminator loss is exactly 0 (as printed) at three quarters or more of its 5 or
    more points: it tells real from fake with certainty, its saturated output passes the generator no
    useful gradient, and the game has stopped (Goodfellow et al. 2014; Arjovsky and Bottou 2017). A
    cross-entropy or hinge loss reaches exactly 0 only there; a WGAN critic's loss crosses 0 now and
    then and is exactly 0 at no more than a point or two."""
    if run.first("loss") is not None:
        return None
    for s in run.series:
        if s.role != "metric" or gan_part(s.name) != "D":
            continue
        steps, v = finite(s)
        zeros = int(np.count_nonzero(v == 0))
        if len(v) < _GAN_FROZEN_POINTS or zeros < _D_ZERO_SHARE * len(v):
            continue
        return finding(
            "loss_plateau", "warning",
            f"the discriminator has won: {s.name} is exactly 0 at {zeros} of its {len(v)} logged points "
            f"({s.between(steps[0], steps[-1])})",
            "A discriminator loss of exactly 0 means it separates real from generated samples with certainty: its "
            "output has saturated, the generator receives almost no gradient and stops improving (a discriminator "
            "too strong or learning too fast, or a saturating generator loss). Balance the two: a lower "
            "discriminator learning rate, label smoothing or instance noise, or a non-saturating/Wasserstein loss.",
            {"metric": s.name, "steps": [_num(steps[0]), _num(steps[-1])], "value": 0.0, "threshold": 0.0,
             "points": zeros},
            [lower_lr(run, at_step=float(steps[0]), why="the discriminator overpowered the generator",
                      network="discriminator", series=_judged(s, players(run)))])
    return None


#: A discriminator's running median at or under this (and under :data:`_D_AHEAD_SHARE` of its early
#: level) has all but won: LSGAN's 0.5 (D(x) - 1)^2 at 0.01 is D within 0.14 of its targets on
#: both halves, a cross-entropy's 0.01 is D(real) = 0.99
_D_AHEAD_LEVEL = 0.01
_D_AHEAD_SHARE = 0.05
#: ... for this share of the run's points, while its generator's loss stood at this many times
#: its own early level: the generator was losing the game
_D_AHEAD_FRACTION = 0.2
_G_BEHIND = 2.0
_D_AHEAD_POINTS = 50
#: ... or, at any level, a running median at or under this share of its early level (a fall of 90 %
#: or more) with the same generator at :data:`_G_BEHIND` times its start: an LSGAN's D need not reach
#: 0.01 to have won (logsweep62 u03, AdvGAN: loss_D 0.405 -> 0.027, 6.7 % of its start, while
#: loss_G_fake tripled 0.30 -> 0.91, near LSGAN's ceiling of 1)
_D_FELL_SHARE = 0.1


def _partner(d: Series, generators: list[Series]) -> Series | None:
    """The generator loss logged with the discriminator loss ``d``: the one whose name differs from
    ``d``'s in one character (CycleGAN's ``D_B``/``G_B``, DCGAN's ``errD``/``errG``), else the only one."""
    same = [g for g in generators if len(g.name) == len(d.name)
            and sum(a != b for a, b in zip(g.name, d.name, strict=True)) == 1]
    if len(same) == 1:
        return same[0]
    return generators[0] if len(generators) == 1 else None


def players(run: RunLog) -> list[tuple[Series, Series]]:
    """Each discriminator loss with its generator's (:func:`_partner`), where it has one."""
    generators = [s for s in run.series if s.role == "metric" and gan_part(s.name) == "G"]
    pairs = [(d, _partner(d, generators)) for d in run.series if d.role == "metric" and gan_part(d.name) == "D"]
    return [(d, g) for d, g in pairs if g is not None]


def _judged(d: Series, pairs: list[tuple[Series, Series]]) -> dict[str, str]:
    """The loss series a finding on the discriminator loss ``d`` rests on, by role: ``d``, and its
    generator's where :func:`players` pairs one with it."""
    g = next((g for dd, g in pairs if dd is d), None)
    return {"discriminator": d.name, **({"generator": g.name} if g is not None else {})}


def _start(v: np.ndarray) -> float:
    """Where a GAN player's loss began: the median of its first 2 % of points (5 at least)."""
    return float(median(v[:max(5, len(v) // 50)]))


def discriminator_ahead(run: RunLog) -> Finding | None:
    """A GAN whose discriminator loss, not exactly 0 but printed near it, sat under
    :data:`_D_AHEAD_LEVEL` (and :data:`_D_AHEAD_SHARE` of where it began) for a fifth of the run or
    more while its generator's loss stood at :data:`_G_BEHIND` times its own start (a CycleGAN's
    D_B at 0.002-0.006 and G_B at 0.97, LSGAN's ceiling, for 60 of 200 epochs: logsweep57): the
    discriminator tells real from fake all but perfectly there and the generator learns little.
    So too a discriminator loss fallen to :data:`_D_FELL_SHARE` of where it began, at any level,
    with the generator's as far behind (AdvGAN's loss_D 0.405 -> 0.027, loss_G_fake 0.30 -> 0.91).
    A WGAN critic's loss goes below 0 and is not judged."""
    if run.first("loss") is not None:
        return None
    for d, g in players(run):
        steps, v = finite(d)
        if len(v) < _D_AHEAD_POINTS or float(np.min(v)) < 0:
            continue
        window = max(5, len(v) // 20)
        med = smooth(v, window)
        early = float(median(v[:max(5, len(v) // 10)]))
        g_steps, g_v = finite(g)
        if len(g_v) < _D_AHEAD_POINTS:
            continue
        g_med = smooth(g_v, max(5, len(g_v) // 20))
        g_early = float(median(g_v[:max(5, len(g_v) // 10)]))
        # near 0 (the first rule), else fallen 90 % from where it began, the generator behind either
        # way. Where it began is the median of its first 2 % of points: a game lost within the first
        # tenth of the run (u03's D at 0.185 by then) has no "early level" of its first tenth
        start, g_start = _start(v), _start(g_v)
        for level, base, g_base in ((min(_D_AHEAD_LEVEL, _D_AHEAD_SHARE * early), early, g_early),
                                    (_D_FELL_SHARE * start, start, g_start)):
            ahead = med <= level
            if base <= 0 or g_base <= 0 or np.count_nonzero(ahead) < _D_AHEAD_FRACTION * len(v):
                continue
            at = np.searchsorted(g_steps, steps[ahead]).clip(0, len(g_v) - 1)
            behind = float(median(g_med[at]))
            if behind >= _G_BEHIND * g_base:
                early, g_early = base, g_base
                break
        else:
            continue
        idx = np.nonzero(ahead)[0]
        first, last = float(steps[idx[0]]), float(steps[idx[-1]])
        low = float(median(v[idx]))
        end = float(median(v[-max(5, len(v) // 10):]))
        ended = ("and is still there at the end" if end <= level
                 else f"before it rose again to {end:.3g} at the end")
        return finding(
            "loss_plateau", "warning",
            f"the discriminator was winning: {d.name}'s running median stayed at or under "
            f"{level:.3g} (median {low:.3g}, from {early:.3g} early) on "
            f"{len(idx)} of its {len(v)} points ({d.between(first, last)}) while {g.name} stood at "
            f"{behind:.3g}, {behind / g_early:.3g}x its start, {ended}",
            "A discriminator loss near 0 means it tells real from generated samples almost perfectly; its output "
            "saturates and the generator's loss climbs to where it gets little useful gradient, so the generator "
            "stops improving for that stretch (Goodfellow et al. 2014; Arjovsky and Bottou 2017). Balance the "
            "two: a lower discriminator learning rate or fewer discriminator steps, label smoothing or instance "
            "noise, a replay buffer of generated images, or a non-saturating/Wasserstein loss.",
            {"metric": d.name, "steps": [_num(first), _num(last)], "value": low,
             "threshold": level, "points": int(len(idx)),
             "generator": g.name, "generator_ratio": behind / g_early, "early_level": early, "final": end},
            [lower_lr(run, at_step=first, why="the discriminator overpowered the generator",
                      network="discriminator", series={"discriminator": d.name, "generator": g.name})])
    return None


#: The loss of the standard GAN's discriminator where it cannot tell real from generated samples
#: (D = 1/2 everywhere, Goodfellow et al. 2014's equilibrium): ln 2 for the mean of the real and fake
#: cross-entropy terms, 2 ln 2 for their sum
_BALANCED_D = math.log(2)
#: A discriminator whose loss over the last tenth of the run has a median at or under this share of
#: its balance (ln 2 -> 0.173, the mean form: it gives the right side 0.84 or more on average; 2 ln 2
#: -> 0.347 for the real and fake terms summed, the same 0.84: :func:`_balance`) and of its
#: own start (:func:`_start`: a fall to a quarter, so that a least-squares GAN's 0.125 at balance is
#: no win) has all but won (:func:`generator_losing`)
_D_LOST_SHARE = 0.25


def _balance(start: float) -> float:
    """A standard GAN discriminator's loss at balance (D = 1/2 everywhere), in the form its series
    logs: 2 ln 2 (1.386) where it began nearer that than ln 2 (at or over their geometric mean
    sqrt(2) ln 2 = 0.98: a discriminator logging its real and fake cross-entropy terms summed, as
    DCGAN/WaveGAN scripts' ``d_loss_real + d_loss_fake`` do, starts there, D being near 1/2 at
    initialisation), else ln 2 (the mean of the two terms, or a least-squares GAN's smaller scale)."""
    return 2 * _BALANCED_D if start >= math.sqrt(2) * _BALANCED_D else _BALANCED_D


def generator_losing(run: RunLog, t: LogThresholds) -> Finding | None:
    """``loss_divergence`` for a GAN whose generator loses the game: its loss ends (the median of its
    last tenth) ``t.divergence_factor`` times or more over its lowest running median (loss_divergence's
    own test on a training loss, end over running minimum), while its discriminator's loss ends at or
    under :data:`_D_LOST_SHARE` of both its balance (ln 2, or 2 ln 2 for a discriminator whose real
    and fake terms are summed: :func:`_balance`) and its own start. A discriminator that wins saturates,
    and the generator's gradient carries ever less information, whichever of the saturating or
    non-saturating losses it uses (Goodfellow et al. 2014; Arjovsky and Bottou 2017): logsweep74's
    plain DCGANs, loss_dis 0.49 -> 0.087 and loss_gen 4.5 -> 12.4 over 100k iterations. A balanced
    game's discriminator stays near ln 2 however its generator's loss moves (an SN-GAN's loss_dis at
    0.74 while loss_gen rose 1.6x: logsweep74 h06). A WGAN critic's or generator's loss goes below 0
    and is not judged, nor a game the plateau's GAN checks already report (a discriminator at 0 or
    winning for a stretch, losses frozen)."""
    if run.first("loss") is not None or frozen_gan(run) or discriminator_won(run) or discriminator_ahead(run):
        return None
    for d, g in players(run):
        steps, v = finite(d)
        g_steps, g_v = finite(g)
        if len(v) < _D_AHEAD_POINTS or len(g_v) < _D_AHEAD_POINTS or float(np.min(v)) < 0 or float(np.min(g_v)) < 0:
            continue
        start = _start(v)
        end = float(median(v[-max(5, len(v) // 10):]))
        balance = _balance(start)
        level = _D_LOST_SHARE * min(balance, start)
        g_med = smooth(g_v, max(5, len(g_v) // 20))
        i_low = int(np.argmin(g_med))
        g_low = float(g_med[i_low])
        g_end = float(median(g_v[-max(5, len(g_v) // 10):]))
        if not (start > 0 and end <= level and g_low > 0 and g_end >= t.divergence_factor * g_low):
            continue
        first, last = float(g_steps[i_low]), float(g_steps[-1])
        return finding(
            "loss_divergence", "warning",
            f"the generator is losing the game: {g.name} rose {g_end / g_low:.3g}x from its lowest running median "
            f"{g_low:.3g} to {g_end:.3g} ({g.between(first, last)}) while {d.name} fell from {start:.3g} to "
            f"{end:.3g}, under {_D_LOST_SHARE:g} x {'2 ln 2' if balance > _BALANCED_D else 'ln 2'} = "
            f"{_D_LOST_SHARE * balance:.3g} (a balanced game's discriminator loss"
            + (", its real and fake terms summed, as its start says" if balance > _BALANCED_D else "")
            + ") and under a quarter of its start",
            "A discriminator whose loss falls toward 0 tells real from generated samples almost perfectly; its "
            "output saturates, and the gradient it passes the generator carries ever less information (with the "
            "saturating loss it vanishes, with the non-saturating one it grows noisy), so the generator's loss "
            "climbs and its samples stop improving (Goodfellow et al. 2014; Arjovsky and Bottou 2017). Balance "
            "the two: a lower discriminator learning rate or fewer discriminator steps, label smoothing or "
            "instance noise, spectral normalisation or a gradient penalty on the discriminator, or a "
            "Wasserstein loss.",
            {"metric": g.name, "steps": [_num(first), _num(last)], "value": g_end / g_low,
             "threshold": t.divergence_factor, "generator": g.name, "discriminator": d.name,
             "generator_low": g_low, "generator_final": g_end, "discriminator_start": start,
             "discriminator_final": end, "discriminator_threshold": level, "discriminator_balance": balance},
            [lower_lr(run, at_step=first, why="the discriminator overpowered the generator",
                      network="discriminator", series={"discriminator": d.name, "generator": g.name})])
    return None
