"""Mean-field signal propagation for wide fully-connected networks.

For a stretch of fully-connected layers ``z_l = W_l h_{l-1} + b_l``, ``h_l = phi(z_l)``
with ``W_l ~ N(0, sigma_w2 / fan_in)`` and ``b_l ~ N(0, sigma_b2)``, in the limit of
infinite width every pre-activation ``z_l`` is Gaussian with variance ``q_l``, and

* the variance map (Poole et al. 2016, eq. 3)::

      q_{l+1} = sigma_w2 * E[phi(sqrt(q_l) z)^2] + sigma_b2,      z ~ N(0, 1)

  has a fixed point ``q*`` that the layer-wise variance approaches;

* the backward signal (Schoenholz et al. 2017, eq. 8; Poole et al. 2016, eq. 7)
  changes its squared norm by::

      chi1(q_l) = sigma_w2 * E[phi'(sqrt(q_l) z)^2]

  per layer, going from ``dL/dh_l`` to ``dL/dh_{l-1}``.  ``chi1(q*) < 1`` is the
  ordered phase (gradients vanish with depth), ``> 1`` the chaotic phase (they
  explode), ``= 1`` the edge of chaos (He et al. 2015 for ReLU: sigma_w2 = 2).

Everything is plain numpy/scipy in float64; no torch is imported here, but the
activations match ``torch.nn.functional`` exactly (checked in the tests), so the
predictions can be held against PyTorch simulations.

Sources: Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz, Gilmer,
Ganguli, Sohl-Dickstein 2017, "Deep Information Propagation"; He, Zhang, Ren, Sun
2015, "Delving Deep into Rectifiers"; Klambauer et al. 2017, "Self-Normalizing
Neural Networks" (SELU constants).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from gradhealth.analysis.activations import ALIASES as _ALIASES
from gradhealth.analysis.activations import CANONICAL_ACTIVATIONS, NO_THEORY, SATURATING

__all__ = [
    "ACTIVATIONS",
    "StretchPrediction",
    "activation_parameters",
    "chi1",
    "critical_sigma_w2",
    "dphi",
    "fixed_point",
    "gaussian_expectation",
    "kinks",
    "phi",
    "predict_stretch",
    "q_map",
]

# One name per function; the other spellings the spec accepts ("swish") are in _ALIASES. The spec's
# activations without a map here (NO_THEORY: the exponential) are left out: a stretch of them gets no
# prediction, only the simulation's measurement.
ACTIVATIONS: tuple[str, ...] = tuple(a for a in CANONICAL_ACTIVATIONS if a not in NO_THEORY)

# Activations whose |phi| stays bounded (the saturating ones); the others grow linearly as
# |x| -> inf, which decides how the variance map behaves once q overflows (see _Q_MAX).
_BOUNDED: frozenset[str] = SATURATING

# torch.nn.functional.selu constants (Klambauer et al. 2017, eq. 14).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# The hard sigmoids clip(slope * x + 1/2, 0, 1), by slope: torch's Hardsigmoid (Keras 3's hard_sigmoid,
# relu6(x + 3) / 6) and Keras 2's 0.2 x + 0.5.
_HARD_SIGMOIDS: dict[str, float] = {"hard_sigmoid": 1.0 / 6.0, "hard_sigmoid_keras2": 0.2}
# torch.nn.functional.softplus(beta=1, threshold=20) returns x itself above 20.
SOFTPLUS_THRESHOLD = 20.0

# Numerical settings, each with its reason.
#: Gaussian integrals are cut at |z| <= Z_CUTOFF: the mass beyond 40 standard
#: deviations is ~1e-350, below float64, while every piece stays finite.
Z_CUTOFF = 40.0
#: Gauss-Legendre nodes per piece of the Gaussian integrals. Every piece is smooth (the
#: edges sit on each kink and on a ladder of scales around it, see _edges) and narrow for
#: its features, so 48 nodes reach float64 rounding (~1e-15, against the adaptive quad it
#: replaced at ~1e-12, which missed by up to 3e-4 where a sigmoid is a near-step at q ~ 1e20).
GL_NODES = 48
#: Largest variance handled directly: 40 * sqrt(1e300) squared is ~1.6e303, still a
#: finite float64.  Beyond it the maps are extrapolated exactly (see q_map).
_Q_MAX = 1e300
#: Smallest positive variance used for the q -> 0+ limit of chi1 (a kinked
#: phi' needs the one-sided average, not phi'(0)^2).
_Q_MIN = 1e-300
#: A fixed point below this is reported as a collapse to 0.
_Q_COLLAPSE = 1e-290
#: chi1* this close to 1 counts as critical in StretchPrediction.phase.
PHASE_TOLERANCE = 1e-6
#: Bracket searched by critical_sigma_w2, in sigma_w2.
CRITICAL_BRACKET = (1e-2, 1e3)
#: Grid density of the sign-change scan in critical_sigma_w2; roots closer than
#: a factor 10**(1/6) apart could hide from it.
CRITICAL_GRID_PER_DECADE = 6
#: |chi1* - 1| a refined root must reach to count as the edge of chaos rather than
#: a jump of q* between fixed points.
CRITICAL_TOLERANCE = 1e-7
#: Plain iterations tried by fixed_point before switching to a bracketing solver.
_PLAIN_ITERATIONS = 4
#: Outside [1/_Q_ASYMPTOTIC, _Q_ASYMPTOTIC] E[phi(sqrt(q) z)^2] / q is at its
#: q -> 0 or q -> inf limit (activations have unit x-scale), so q_map(q) - q changes
#: sign at most once there and fixed_point may bracket with big steps.
_Q_ASYMPTOTIC = 1e6
_Q_INV_ASYMPTOTIC = 1.0 / _Q_ASYMPTOTIC
#: Relative size of q_map(q) - q below which its sign is quadrature noise (the
#: quadrature's ~1e-15, with a wide margin).
_G_NOISE = 1e-11
#: Bracketing steps of fixed_point: a factor 2 where the map may still bend,
#: 1e10 in the asymptotic ranges (~30 steps from 1e6 to 1e300).
_SMALL_STEP = 2.0
_BIG_STEP = 1e10
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
#: brentq refuses rtol below 4 * machine epsilon.
_BRENTQ_RTOL = 4.0 * float(np.finfo(np.float64).eps)


def _canonical(name: str) -> str:
    """The canonical activation name, or ValueError naming the allowed ones."""
    key = _ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}"
            f" (alias: {', '.join(_ALIASES)})"
        )
    return key


def canonical_activation(name: str) -> str:
    """The canonical name of an activation or its alias, ``name`` itself when it is neither."""
    return _ALIASES.get(name, name)


#: The activation parameters the maps take, by activation (torch's names and defaults): a layer's
#: ``nn.LeakyReLU(0.25)`` or ``nn.ELU(alpha=0.5)`` changes chi1 and the critical variance.
PARAMETERS: dict[str, dict[str, float]] = {"leaky_relu": {"negative_slope": 0.01}, "elu": {"alpha": 1.0}}


def activation_parameters(name: str, given: dict[str, float] | None = None) -> dict[str, float]:
    """The keyword arguments of the maps (:func:`predict_stretch`, :func:`critical_sigma_w2`, ...) for
    ``name`` with the parameters ``given`` (others ignored, missing ones at torch's default)."""
    defaults = PARAMETERS.get(_ALIASES.get(name, name), {})
    return {k: float((given or {}).get(k, v)) for k, v in defaults.items()}


def kinks(name: str, negative_slope: float = 0.01) -> tuple[float, ...]:
    """The x-locations where ``phi'`` is discontinuous.

    ``relu``/``leaky_relu``/``elu``/``selu`` kink at 0 (elu's derivative is in fact
    continuous at 0 for alpha = 1, but listing it costs nothing), ``hardtanh`` at
    -1 and 1, the hard sigmoids at their clips (+-3 for ``hard_sigmoid``, +-2.5 for
    ``hard_sigmoid_keras2``); the smooth activations have none.  ``leaky_relu`` with slope 1 is
    the identity and has none.  Gaussian integrals split the real line here so
    the adaptive rule never straddles a kink.
    """
    key = _canonical(name)
    if key == "leaky_relu" and negative_slope == 1.0:
        return ()
    if key in ("relu", "leaky_relu", "elu", "selu"):
        return (0.0,)
    if key == "hardtanh":
        return (-1.0, 1.0)
    if key in _HARD_SIGMOIDS:
        edge = 0.5 / _HARD_SIGMOIDS[key]  # where slope * x + 1/2 reaches 0 and 1
        return (-edge, edge)
    return ()


def phi(name: str, x: np.ndarray, negative_slope: float = 0.01, alpha: float = 1.0) -> np.ndarray:
    """The activation ``phi(x)`` in float64, exactly as ``torch.nn.functional`` defines it.

    gelu is the exact form ``x * Phi(x)`` (``approximate='none'``); selu uses torch's
    alpha and scale; elu has ``alpha`` (torch's default 1); softplus has beta = 1 and returns ``x``
    above the threshold 20; hardtanh clips to [-1, 1]; leaky_relu is ``x`` for
    ``x > 0`` and ``negative_slope * x`` otherwise; ``hard_sigmoid`` is torch's Hardsigmoid
    (Keras 3's, clip(x / 6 + 1/2, 0, 1)), ``hard_sigmoid_keras2`` clip(0.2 x + 1/2, 0, 1);
    softsign is x / (1 + |x|), mish x tanh(softplus(x)).
    """
    key = _canonical(name)
    x = np.asarray(x, dtype=np.float64)
    if key == "identity":
        return x.copy()
    if key == "sigmoid":
        return special.expit(x)
    if key == "tanh":
        return np.tanh(x)
    if key == "relu":
        return np.maximum(x, 0.0)
    if key == "leaky_relu":
        return np.where(x > 0, x, negative_slope * x)
    if key == "elu":
        # expm1 only of the non-positive part, so huge x never overflows.
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if key == "selu":
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    if key == "gelu":
        return 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0)))
    if key == "silu":
        return x * special.expit(x)
    if key == "softplus":
        small = np.log1p(np.exp(np.minimum(x, SOFTPLUS_THRESHOLD)))
        return np.where(x > SOFTPLUS_THRESHOLD, x, small)
    if key == "hard_sigmoid":
        return np.clip(x + 3.0, 0.0, 6.0) / 6.0  # torch's relu6(x + 3) / 6, to the last bit
    if key in _HARD_SIGMOIDS:
        return np.clip(_HARD_SIGMOIDS[key] * x + 0.5, 0.0, 1.0)
    if key == "softsign":
        return x / (1.0 + np.abs(x))
    if key == "mish":
        # x tanh(softplus(x)); logaddexp(0, x) is softplus without overflow
        return x * np.tanh(np.logaddexp(0.0, x))
    # hardtanh
    return np.clip(x, -1.0, 1.0)


def dphi(name: str, x: np.ndarray, negative_slope: float = 0.01, alpha: float = 1.0) -> np.ndarray:
    """The derivative ``phi'(x)`` in float64.

    At a kink it takes the one-sided value torch's autograd takes (relu'(0) = 0,
    leaky_relu'(0) = slope, elu'(0) = alpha, selu'(0) = scale * alpha,
    hardtanh'(+-1) = 0).
    """
    key = _canonical(name)
    x = np.asarray(x, dtype=np.float64)
    if key == "identity":
        return np.ones_like(x)
    if key == "sigmoid":
        s = special.expit(x)
        return s * (1.0 - s)
    if key == "tanh":
        return 1.0 - np.tanh(x) ** 2
    if key == "relu":
        return np.where(x > 0, 1.0, 0.0)
    if key == "leaky_relu":
        return np.where(x > 0, 1.0, negative_slope)
    if key == "elu":
        return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))
    if key == "selu":
        return SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0.0)))
    if key == "gelu":
        # d/dx [x Phi(x)] = Phi(x) + x pdf(x); pdf(x) is 0 in float64 beyond |x| ~ 39,
        # and clipping keeps x^2 from overflowing.
        xc = np.clip(x, -50.0, 50.0)
        pdf = np.exp(-0.5 * xc * xc) / math.sqrt(2.0 * math.pi)
        return 0.5 * (1.0 + special.erf(x / math.sqrt(2.0))) + xc * pdf
    if key == "silu":
        s = special.expit(x)
        return s * (1.0 + x * (1.0 - s))
    if key == "softplus":
        return np.where(x > SOFTPLUS_THRESHOLD, 1.0, special.expit(x))
    if key == "hard_sigmoid":
        # the slope strictly inside the clips, 0 outside (torch's Hardsigmoid gradient)
        return np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)
    if key in _HARD_SIGMOIDS:
        # torch.clamp's gradient: the slope up to and including the clips
        y = _HARD_SIGMOIDS[key] * x + 0.5
        return np.where((y >= 0.0) & (y <= 1.0), _HARD_SIGMOIDS[key], 0.0)
    if key == "softsign":
        return 1.0 / (1.0 + np.abs(x)) ** 2
    if key == "mish":
        t = np.tanh(np.logaddexp(0.0, x))
        return t + x * (1.0 - t * t) * special.expit(x)
    # hardtanh: torch's gradient is 1 strictly inside (-1, 1), 0 outside.
    return np.where((x > -1.0) & (x < 1.0), 1.0, 0.0)


def gaussian_expectation(
    f: Callable[[np.ndarray], np.ndarray],
    q: float,
    breakpoints: Sequence[float] = (),
) -> float:
    """``E[f(sqrt(q) z)]`` for ``z ~ N(0, 1)``, accurate for kinked ``f`` and any ``q >= 0``.

    ``f`` takes and returns float64 arrays.  Computed as
    ``(2 pi)^(-1/2) * integral f(sqrt(q) z) exp(-z^2/2) dz`` over ``|z| <= Z_CUTOFF``
    (the tails beyond carry less than float64 can hold), split at ``z = 0``, at a
    ladder of fixed z (so each piece sees a bounded part of the Gaussian), at the z
    of every breakpoint ``b`` of ``f``, ``b / sqrt(q)``, and at a ladder of x-offsets
    around each breakpoint and 0 -- so no Gauss-Legendre piece straddles a kink or,
    for large q, spans the narrow region where a smooth activation turns.
    ``q == 0`` returns ``f(0)``.

    Raises ValueError for negative or non-finite ``q``.
    """
    if not (math.isfinite(q) and q >= 0.0):
        raise ValueError(f"q must be a finite variance >= 0 (got {q})")
    if q == 0.0:
        return float(np.asarray(f(np.zeros(1)), dtype=np.float64).reshape(-1)[0])
    return _expectation(f, q, breakpoints)


#: Edges in z every Gaussian integral is split at (besides 0 and the cut-off): pieces of
#: width <= ~6, narrower near the centre where the weight bends most.
_Z_EDGES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 17.0, 22.0, 28.0, 34.0)
#: Offsets in x = sqrt(q) z around each kink (and around 0) where edges go too: an
#: activation's own features have unit x-scale, so at large q they fit in a sliver of z,
#: and this ladder keeps every piece within a small factor of its distance from them.
_X_LADDER = (0.125, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 40.0, 60.0, 100.0)


@functools.cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return nodes, weights


def _edges(s: float, breakpoints: Sequence[float]) -> np.ndarray:
    cut = Z_CUTOFF
    points = {-cut, cut, 0.0, *_Z_EDGES, *(-z for z in _Z_EDGES)}
    for b in (*breakpoints, 0.0):
        for offset in (0.0, *_X_LADDER, *(-x for x in _X_LADDER)):
            zb = (float(b) + offset) / s
            if -cut < zb < cut:
                points.add(zb)
    return np.array(sorted(points))


def _expectation(g: Callable[[np.ndarray], np.ndarray], q: float, breakpoints: Sequence[float]) -> float:
    """``E[g(sqrt(q) z)]`` for a vectorised ``g`` and ``q > 0`` (see gaussian_expectation).

    Gauss-Legendre on every piece between the edges of :func:`_edges`, all pieces in one
    numpy evaluation (about 2,000 points): no piece straddles a kink, so each integrand
    piece is analytic and the rule converges geometrically."""
    s = math.sqrt(q)
    edges = _edges(s, breakpoints)
    a, b = edges[:-1, None], edges[1:, None]
    nodes, weights = _legendre(GL_NODES)
    half = (b - a) / 2
    z = half * nodes + (a + b) / 2
    # huge q: g(s z)^2 may reach ~1e303 where exp(-z^2/2) has underflowed to 0 (a 0 product)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        values = np.asarray(g(s * z), dtype=np.float64) * np.exp(-0.5 * z * z)
    return float(np.sum(half * weights * values)) / _SQRT_2PI


def _homogeneous(key: str, negative_slope: float) -> float | None:
    """For phi(x) = x (x > 0), a x (x < 0): ``E[phi(sqrt(q) z)^2] = c q`` and
    ``E[phi'(sqrt(q) z)^2] = c`` exactly, with c = (1 + a^2) / 2 (half of z on each side);
    None for the other activations, which need the quadrature."""
    slope = {"identity": 1.0, "relu": 0.0, "leaky_relu": negative_slope}.get(key)
    return None if slope is None else (1.0 + slope * slope) / 2.0


def _second_moment(key: str, q: float, negative_slope: float, alpha: float = 1.0) -> float:
    """``E[phi(sqrt(q) z)^2]`` for any ``q >= 0``, including q beyond _Q_MAX or inf."""
    c = _homogeneous(key, negative_slope)
    if c is not None:  # the common case (ReLU networks), in closed form
        return c * q
    if q == 0.0:
        return float(phi(key, np.zeros(1), negative_slope, alpha)[0]) ** 2
    if q <= _Q_MAX:
        return _expectation(lambda x: phi(key, x, negative_slope, alpha) ** 2, q, kinks(key, negative_slope))
    if key in _BOUNDED:
        # A bounded phi is a step function at this scale: E has reached its limit.
        return _second_moment(key, _Q_MAX, negative_slope, alpha)
    # The unbounded ones are asymptotically piecewise linear, phi(x) ~ a x for x > 0
    # and ~ c x (or a constant) for x < 0, so E[phi^2]/q has reached its limit too
    # (relative corrections ~ 1/sqrt(q) < 1e-150).  Python floats overflow to inf quietly.
    return q * (_second_moment(key, _Q_MAX, negative_slope, alpha) / _Q_MAX)


def q_map(name: str, q: float, sigma_w2: float, sigma_b2: float, negative_slope: float = 0.01,
          alpha: float = 1.0) -> float:
    """One layer of the variance map (Poole et al. 2016, eq. 3)::

        q_{l+1} = sigma_w2 * E[phi(sqrt(q_l) z)^2] + sigma_b2,   z ~ N(0, 1)

    ``q`` may be ``math.inf`` (returns inf for unbounded activations).  Above 1e300
    the expectation is extrapolated from q = 1e300, which is exact to float64 (a
    bounded phi has reached its limit, an unbounded one its linear asymptote).
    """
    key = _canonical(name)
    if not q >= 0.0:
        raise ValueError(f"q must be a variance >= 0 (got {q})")
    return float(sigma_w2) * _second_moment(key, float(q), negative_slope, alpha) + float(sigma_b2)


def chi1(name: str, q: float, sigma_w2: float, negative_slope: float = 0.01, alpha: float = 1.0) -> float:
    """The per-layer factor of the backward squared norm (Schoenholz et al. 2017, eq. 8)::

        chi1(q) = sigma_w2 * E[phi'(sqrt(q) z)^2],   z ~ N(0, 1)

    ``q`` is clamped to [1e-300, 1e300]: at 0 a kinked phi' needs the q -> 0+ limit
    (the average of its one-sided values, e.g. 1/2 for relu, not relu'(0)^2), and
    above 1e300 chi1 has reached its limit in float64 (q-independent for the relu
    family, ~ 1/sqrt(q) -> 0 for the saturating ones).
    """
    key = _canonical(name)
    if not q >= 0.0:
        raise ValueError(f"q must be a variance >= 0 (got {q})")
    c = _homogeneous(key, negative_slope)
    if c is not None:
        return float(sigma_w2) * c
    q_eff = min(max(float(q), _Q_MIN), _Q_MAX)
    second = _expectation(lambda x: dphi(key, x, negative_slope, alpha) ** 2, q_eff, kinks(key, negative_slope))
    return float(sigma_w2) * second


def fixed_point(
    name: str,
    sigma_w2: float,
    sigma_b2: float,
    q0: float = 1.0,
    negative_slope: float = 0.01,
    max_iter: int = 10_000,
    tol: float = 1e-12,
    alpha: float = 1.0,
) -> float:
    """``q* = lim q_l`` of the variance map iterated from ``q_1 = q0`` (Poole et al. 2016).

    Returns ``math.inf`` when the iteration diverges (e.g. relu with sigma_w2 > 2,
    or sigma_w2 = 2 with sigma_b2 > 0) and ``0.0`` when it collapses (e.g. tanh
    with sigma_w2 <= 1 and sigma_b2 = 0).

    Method: up to ``_PLAIN_ITERATIONS`` plain iterations with relative tolerance
    ``tol``.  Near criticality the iteration converges only like 1/l (tanh at
    sigma_w2 = 1) or drifts linearly (relu at sigma_w2 = 2, sigma_b2 > 0), so it
    then finds the limit directly: q_map is increasing in q for these activations,
    hence the iterates move monotonically towards the first root of
    ``g(q) = q_map(q) - q`` in their direction of travel.  That root is bracketed
    by stepping geometrically (a factor of 2 per step, or the iterate itself when
    it jumps further) until g changes sign, and refined with
    ``scipy.optimize.brentq``; reaching 1e300 (upwards) means divergence,
    reaching ``_Q_COLLAPSE`` (downwards) means collapse.  ``max_iter`` bounds the
    total number of q_map evaluations of the search.
    """
    key = _canonical(name)
    if not (math.isfinite(q0) and q0 >= 0.0):
        raise ValueError(f"q0 must be a finite variance >= 0 (got {q0})")

    def step(q: float) -> float:
        return q_map(key, q, sigma_w2, sigma_b2, negative_slope, alpha)

    q = float(q0)
    evaluations = 0
    q_next = step(q)
    evaluations += 1
    for _ in range(_PLAIN_ITERATIONS):
        if abs(q_next - q) <= tol * max(abs(q), _Q_MIN):
            return _clean_fixed_point(q_next)
        if q_next > _Q_MAX:
            return math.inf
        if q_next < _Q_COLLAPSE:
            return 0.0
        q, q_next = q_next, step(q_next)
        evaluations += 1
        if evaluations >= max_iter:
            return _clean_fixed_point(q_next)

    # Slow convergence: bracket the root of g(q) = q_map(q) - q in the direction of
    # travel.  Jumping to the iterate q_map(lo) never overshoots that root; the
    # geometric step may, which the sign test below catches.  `anchor` is the
    # last point where g had the travel sign beyond noise, so [anchor, candidate]
    # always brackets a sign change.
    upward = q_next > q
    lo, g_lo = q, q_next - q
    anchor = lo
    while evaluations < max_iter:
        if upward:
            factor = _BIG_STEP if lo > _Q_ASYMPTOTIC else _SMALL_STEP
            candidate = max(factor * lo, lo + g_lo)
            if candidate > _Q_MAX:
                return math.inf
        else:
            factor = _BIG_STEP if lo < _Q_INV_ASYMPTOTIC else _SMALL_STEP
            candidate = min(lo / factor, lo + g_lo)
            if candidate < _Q_COLLAPSE:
                return 0.0
        g_c = step(candidate) - candidate
        evaluations += 1
        # g is a difference of two nearly equal numbers: a value within quadrature
        # noise of 0 proves nothing (softplus or elu at sigma_w2 = 2 drift upwards
        # by O(sqrt(q)) or O(1) a layer, which at q ~ 1e16 is below 1e-12 * q).
        noise = _G_NOISE * candidate
        travel = g_c if upward else -g_c
        if travel <= -noise:
            a, b = (anchor, candidate) if upward else (candidate, anchor)
            root = optimize.brentq(
                lambda x: step(x) - x, a, b, xtol=_Q_MIN, rtol=max(tol, _BRENTQ_RTOL), maxiter=500
            )
            return _clean_fixed_point(float(root))
        if travel > noise:
            anchor = candidate
        lo, g_lo = candidate, g_c
    return _clean_fixed_point(lo)


def _clean_fixed_point(q: float) -> float:
    if q > _Q_MAX:
        return math.inf
    if q < _Q_COLLAPSE:
        return 0.0
    return q


def critical_sigma_w2(name: str, sigma_b2: float = 0.0, negative_slope: float = 0.01,
                      alpha: float = 1.0) -> float | None:
    """The weight variance at the edge of chaos: ``chi1(q*(sigma_w2)) = 1``.

    ``q*`` is the fixed point reached from q0 = 1 (:func:`fixed_point`); chi1 at
    ``q* = inf`` is its large-q limit, at ``q* = 0`` its q -> 0+ limit.  The
    excess ``chi1* - 1`` is tabulated on a log grid over ``CRITICAL_BRACKET`` =
    [1e-2, 1e3] (``CRITICAL_GRID_PER_DECADE`` points a decade) and every sign
    change is refined with ``scipy.optimize.brentq`` in ``log(sigma_w2)``.  A sign
    change can also be a jump -- e.g. gelu with sigma_b2 = 0, whose q* leaps from
    0 to inf where the unstable fixed point passes q0 -- so a refined point
    counts only if ``|chi1* - 1| <= CRITICAL_TOLERANCE`` there.  Returns the
    smallest genuine root, or None when there is none on the bracket.

    Known values: relu 2 (He et al. 2015), leaky_relu 2/(1 + slope^2), identity 1,
    tanh with sigma_b2 = 0 exactly 1 (Poole et al. 2016).  Where q* leaves 0 at
    the root (tanh, elu, selu with sigma_b2 = 0), ``chi1* - 1`` grows only
    quadratically above it, so the root is found to ~1e-7 rather than 1e-13.
    selu with sigma_b2 = 0 gives 2 / (scale^2 (1 + alpha^2)) ~ 0.4768, where q*
    leaves 0; for every larger sigma_w2 selu is (weakly) chaotic, e.g.
    chi1* = 1.0716 at LeCun's sigma_w2 = 1, where q* = 1 (Klambauer et al. 2017).
    """
    key = _canonical(name)

    def excess(log_s: float) -> float:
        s = math.exp(log_s)
        q_star = fixed_point(key, s, sigma_b2, negative_slope=negative_slope, alpha=alpha)
        return chi1(key, q_star, s, negative_slope, alpha) - 1.0

    lo, hi = (math.log10(v) for v in CRITICAL_BRACKET)
    n = int(round((hi - lo) * CRITICAL_GRID_PER_DECADE)) + 1
    grid = [math.log(10.0) * v for v in np.linspace(lo, hi, n)]
    values = [excess(v) for v in grid]
    for i in range(n - 1):
        (a, fa), (b, fb) = (grid[i], values[i]), (grid[i + 1], values[i + 1])
        if fa == 0.0:
            return math.exp(a)
        if (fa > 0.0) == (fb > 0.0):
            continue
        root = float(optimize.brentq(excess, a, b, xtol=1e-13, rtol=_BRENTQ_RTOL, maxiter=200))
        if abs(excess(root)) <= CRITICAL_TOLERANCE:
            return math.exp(root)
    if values[-1] == 0.0:
        return math.exp(grid[-1])
    return None


@dataclass(frozen=True)
class StretchPrediction:
    """The mean-field prediction for a stretch of ``depth`` identical fully-connected layers.

    ``predicted_log10_ratio = log10(||dL/dh_1|| / ||dL/dh_L||)
    = 0.5 * sum_{l=2..L} log10(chi1(q_l))``: positive means the gradient grows
    towards the input (exploding), negative that it vanishes.
    """

    activation: str
    depth: int  # number of layers L in the stretch
    sigma_w2: float
    sigma_b2: float
    q_in: float  # pre-activation variance of the stretch's first layer
    q_layers: tuple[float, ...]  # q_1..q_L (q_1 = q_in, q_{l+1} = q_map(q_l))
    chi_layers: tuple[float, ...]  # chi1(q_l) for l = 1..L
    q_star: float  # fixed point (may be inf / 0)
    chi1_star: float  # chi1 at q_star (nan when q_star is inf)
    predicted_log10_ratio: float
    phase: str  # "ordered" (vanishing), "chaotic" (exploding) or "critical"


def predict_stretch(
    name: str,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    q_in: float,
    negative_slope: float = 0.01,
    alpha: float = 1.0,
) -> StretchPrediction:
    """Predict how the gradient norm changes across ``depth`` fully-connected layers.

    The squared norm of ``dL/dh`` changes by ``chi1(q_l)`` from ``h_l`` to
    ``h_{l-1}`` (Schoenholz et al. 2017, eq. 8), so::

        ||dL/dh_1|| / ||dL/dh_L|| = sqrt(prod_{l=2..L} chi1(q_l))

    with ``q_l`` the layer-wise variances from ``q_1 = q_in`` -- not only ``q*``,
    so shallow stretches whose variance has not converged are still predicted
    well.  Summed in the log domain in float64.  Once ``q_l`` exceeds 1e300 the
    iteration stops and the remaining layers reuse that q (chi1 there is at its
    limit; q-independent for the relu family).  ``phase`` follows ``chi1(q*)``
    with tolerance ``PHASE_TOLERANCE``; when ``q* = inf``, ``chi1_star`` is nan
    and the phase follows chi1 at the q the stack's last layer reaches (the limit only where
    q passes 1e300 within the stack).
    """
    key = _canonical(name)
    if depth < 1:
        raise ValueError(f"depth must be >= 1 (got {depth})")
    if not (math.isfinite(q_in) and q_in >= 0.0):
        raise ValueError(f"q_in must be a finite variance >= 0 (got {q_in})")

    q_layers: list[float] = [float(q_in)]
    for _ in range(depth - 1):
        q = q_layers[-1]
        # Past 1e300 the next q would overflow: freeze it there.
        q_layers.append(q if q > _Q_MAX else q_map(key, q, sigma_w2, sigma_b2, negative_slope, alpha))
    chi_layers = tuple(chi1(key, q, sigma_w2, negative_slope, alpha) for q in q_layers)

    # log10(0) = -inf is a faithful answer (e.g. hardtanh saturating everywhere).
    with np.errstate(divide="ignore"):
        log_chis = np.log10(np.asarray(chi_layers[1:], dtype=np.float64))
    ratio = float(0.5 * np.sum(log_chis)) if depth > 1 else 0.0

    # From q_in, so that where the map has several stable fixed points (e.g. gelu
    # with a small bias) q* is the one this stretch actually approaches.
    q_star = fixed_point(key, sigma_w2, sigma_b2, q0=float(q_in), negative_slope=negative_slope, alpha=alpha)
    if math.isinf(q_star):
        # no finite fixed point: the phase is what the stack's own layers do at the q they reach
        # (softplus under He init: chi1 -> 1 only as q -> inf, below 1 at every depth a net has)
        chi1_star = math.nan
        chi_phase = chi_layers[-1]
    else:
        chi1_star = chi1(key, q_star, sigma_w2, negative_slope, alpha)
        chi_phase = chi1_star
    if chi_phase < 1.0 - PHASE_TOLERANCE:
        phase = "ordered"
    elif chi_phase > 1.0 + PHASE_TOLERANCE:
        phase = "chaotic"
    else:
        phase = "critical"

    return StretchPrediction(
        activation=key,
        depth=int(depth),
        sigma_w2=float(sigma_w2),
        sigma_b2=float(sigma_b2),
        q_in=float(q_in),
        q_layers=tuple(q_layers),
        chi_layers=chi_layers,
        q_star=q_star,
        chi1_star=chi1_star,
        predicted_log10_ratio=ratio,
        phase=phase,
    )
