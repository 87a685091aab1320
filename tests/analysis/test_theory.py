"""Mean-field theory (gradhealth.analysis.theory) pinned against independent truths.

* closed forms (relu, leaky_relu, identity, hardtanh, tanh at small q),
* brute-force Monte Carlo and a fine trapezoid rule for the expectations,
* torch's own activations and autograd for phi and phi',
* known edges of chaos (He et al. 2015; Poole et al. 2016),
* and, most importantly, simulated wide fully-connected nets in plain torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from gradhealth.analysis import theory
from gradhealth.analysis.theory import (
    ACTIVATIONS,
    SELU_ALPHA,
    SELU_SCALE,
    chi1,
    critical_sigma_w2,
    dphi,
    fixed_point,
    gaussian_expectation,
    kinks,
    phi,
    predict_stretch,
    q_map,
)

TORCH_ACTIVATION = {
    "identity": lambda x: x,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
    "hardtanh": F.hardtanh,
    "hard_sigmoid": F.hardsigmoid,
    "hard_sigmoid_keras2": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
    "softsign": F.softsign,
    "mish": F.mish,
}


def test_activation_table_is_complete() -> None:
    assert set(TORCH_ACTIVATION) == set(ACTIVATIONS)


# --------------------------------------------------------------------------- phi, phi'


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_phi_matches_torch(name: str) -> None:
    x = np.concatenate([np.linspace(-30.0, 30.0, 6001), [-1e6, -25.0, -1.0, 0.0, 1.0, 19.999, 20.0, 20.001, 1e6]])
    expected = TORCH_ACTIVATION[name](torch.from_numpy(x)).numpy()
    # gelu: torch's vectorised erf and scipy's differ by an ulp or two, which the
    # cancellation in 1 + erf(x/sqrt 2) for x < 0 magnifies to ~2e-16 absolute.
    rtol, atol = (1e-12, 1e-15) if name == "gelu" else (1e-14, 1e-300)
    np.testing.assert_allclose(phi(name, x), expected, rtol=rtol, atol=atol)


def test_leaky_relu_slope_is_passed_through() -> None:
    x = np.linspace(-5.0, 5.0, 101)
    expected = F.leaky_relu(torch.from_numpy(x), 0.2).numpy()
    np.testing.assert_array_equal(phi("leaky_relu", x, negative_slope=0.2), expected)
    assert chi1("leaky_relu", 1.0, 2.0, negative_slope=0.2) == pytest.approx(1.0 + 0.2**2, rel=1e-12)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dphi_matches_torch_autograd(name: str) -> None:
    # At the kinks (0, +-1) dphi takes the one-sided value torch's autograd takes.
    x = np.concatenate([np.linspace(-30.0, 30.0, 6000), [-1.0, 0.0, 1.0, 20.0]])
    xt = torch.from_numpy(x).requires_grad_(True)
    TORCH_ACTIVATION[name](xt).sum().backward()
    assert xt.grad is not None
    # (torch's Hardsigmoid backward takes its slope 1/6 in float32: 3e-8 off the float64 1/6)
    rtol = 1e-7 if name == "hard_sigmoid" else 1e-12
    np.testing.assert_allclose(dphi(name, x), xt.grad.numpy(), rtol=rtol, atol=1e-15)


def test_kinks() -> None:
    assert kinks("relu") == kinks("leaky_relu") == kinks("elu") == kinks("selu") == (0.0,)
    assert kinks("hardtanh") == (-1.0, 1.0)
    assert kinks("hard_sigmoid") == (-3.0, 3.0) and kinks("hard_sigmoid_keras2") == (-2.5, 2.5)
    for name in ("identity", "sigmoid", "tanh", "gelu", "silu", "softplus", "softsign", "mish"):
        assert kinks(name) == ()


def test_unknown_activation_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="tanh"):
        q_map("swishy", 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="relu"):
        phi("hard_swish", np.zeros(3))  # (mish is one of the spec's now)
    with pytest.raises(ValueError):
        predict_stretch("Relu", 2.0, 0.0, 5, 1.0)


def test_swish_is_an_alias_of_silu() -> None:
    # The architecture spec spells silu "swish" too.
    assert q_map("swish", 1.3, 1.5, 0.1) == q_map("silu", 1.3, 1.5, 0.1)


# ------------------------------------------------------------------ Gaussian integrals


def test_gaussian_expectation_moments_over_many_scales() -> None:
    for q in (1e-200, 1e-8, 0.3, 1.0, 7.0, 1e8, 1e200):
        assert gaussian_expectation(lambda x: x * x, q) == pytest.approx(q, rel=1e-12)
        assert gaussian_expectation(np.abs, q) == pytest.approx(math.sqrt(2 * q / math.pi), rel=1e-12)
    for q in (1e-100, 1.0, 1e100):
        assert gaussian_expectation(lambda x: x**4, q) == pytest.approx(3 * q * q, rel=1e-12)
    for q in (0.5, 1.0, 10.0):
        # E[cos(sqrt(q) z)] = exp(-q/2), the Gaussian characteristic function.
        assert gaussian_expectation(np.cos, q) == pytest.approx(math.exp(-q / 2), rel=1e-11)


def test_gaussian_expectation_of_a_step_uses_the_breakpoint() -> None:
    def step(x: np.ndarray) -> np.ndarray:
        return (x > 1.0).astype(np.float64)

    for q in (1e-2, 1.0, 1e4, 1e12):
        exact = 0.5 * special.erfc(1.0 / math.sqrt(2.0 * q))  # P(sqrt(q) z > 1)
        assert gaussian_expectation(step, q, breakpoints=(1.0,)) == pytest.approx(exact, rel=1e-10)


def test_gaussian_expectation_at_zero_variance_and_bad_input() -> None:
    assert gaussian_expectation(lambda x: np.cos(x) + 2.0, 0.0) == 3.0
    with pytest.raises(ValueError):
        gaussian_expectation(np.cos, -1.0)
    with pytest.raises(ValueError):
        gaussian_expectation(np.cos, math.nan)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_maps_agree_with_the_public_integral_of_phi(name: str) -> None:
    # q_map and chi1 use pure-Python copies of phi, phi' for speed: same numbers.
    for q in (1e-3, 1.0, 1e3):
        via_phi = gaussian_expectation(lambda x: phi(name, x) ** 2, q, kinks(name))
        via_dphi = gaussian_expectation(lambda x: dphi(name, x) ** 2, q, kinks(name))
        assert q_map(name, q, 1.0, 0.0) == pytest.approx(via_phi, rel=1e-11)
        assert chi1(name, q, 1.0) == pytest.approx(via_dphi, rel=1e-11)


# ------------------------------------------------------------------------ closed forms

QS = (1e-6, 1e-2, 0.5, 1.0, 3.0, 100.0, 1e4, 1e12)


@pytest.mark.parametrize("q", QS)
def test_relu_closed_form(q: float) -> None:
    # E[relu(sqrt(q) z)^2] = q/2, E[relu'^2] = P(z > 0) = 1/2 (He et al. 2015).
    assert q_map("relu", q, 1.7, 0.3) == pytest.approx(1.7 * q / 2 + 0.3, rel=1e-12)
    assert chi1("relu", q, 1.7) == pytest.approx(1.7 / 2, rel=1e-12)


@pytest.mark.parametrize("q", QS)
def test_identity_and_leaky_relu_closed_forms(q: float) -> None:
    a = 0.2
    assert q_map("identity", q, 0.9, 0.1) == pytest.approx(0.9 * q + 0.1, rel=1e-12)
    assert chi1("identity", q, 0.9) == pytest.approx(0.9, rel=1e-12)
    assert q_map("leaky_relu", q, 2.0, 0.0, a) == pytest.approx(q * (1 + a * a), rel=1e-12)
    assert chi1("leaky_relu", q, 2.0, a) == pytest.approx(1 + a * a, rel=1e-12)


@pytest.mark.parametrize("q", QS)
def test_hardtanh_closed_form(q: float) -> None:
    a = 1.0 / math.sqrt(q)  # the kinks at x = +-1 sit at z = +-a
    inside = special.erf(a / math.sqrt(2.0))  # P(|z| < a)
    # E[x^2; |x| < 1] = q (P(|z|<a) - 2 a pdf(a)); outside, phi^2 = 1.
    pdf_a = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    second = q * (inside - 2 * a * pdf_a) + (1.0 - inside)
    assert chi1("hardtanh", q, 1.0) == pytest.approx(inside, rel=1e-10)
    assert q_map("hardtanh", q, 1.0, 0.0) == pytest.approx(second, rel=1e-10)


def test_tanh_at_small_q_is_linear() -> None:
    # tanh(x)^2 = x^2 - 2x^4/3 + ..., (1 - tanh^2)^2 = 1 - 2x^2 + ...; E z^4 = 3.
    for q in (1e-4, 1e-6):
        assert chi1("tanh", q, 1.3) == pytest.approx(1.3 * (1 - 2 * q), rel=10 * q * q)
        assert q_map("tanh", q, 1.3, 0.0) == pytest.approx(1.3 * (q - 2 * q * q), rel=20 * q * q)
    assert chi1("tanh", 0.0, 1.3) == pytest.approx(1.3, rel=1e-12)


def test_chi1_at_zero_takes_the_one_sided_limit() -> None:
    # relu'(0) is 0 in torch, but chi1(q -> 0+) is sigma_w2 / 2.
    assert chi1("relu", 0.0, 2.0) == pytest.approx(1.0, rel=1e-12)
    assert chi1("selu", 0.0, 1.0) == pytest.approx(SELU_SCALE**2 * (1 + SELU_ALPHA**2) / 2, rel=1e-12)


@pytest.fixture(scope="module")
def gaussian_sample() -> np.ndarray:
    return np.random.default_rng(20240611).standard_normal(10_000_000)


@pytest.mark.parametrize(
    ("name", "q"), [("sigmoid", 4.0), ("tanh", 1.0), ("gelu", 2.0), ("silu", 0.5), ("softplus", 3.0)]
)
def test_smooth_activations_against_monte_carlo(name: str, q: float, gaussian_sample: np.ndarray) -> None:
    x = math.sqrt(q) * gaussian_sample
    n = x.size
    for values, theory_value in (
        (phi(name, x) ** 2, q_map(name, q, 1.0, 0.0)),
        (dphi(name, x) ** 2, chi1(name, q, 1.0)),
    ):
        # 5 standard errors of the mean: a deterministic seed, and still no luck needed.
        assert abs(values.mean() - theory_value) < 5 * values.std() / math.sqrt(n)


@pytest.mark.parametrize("name", ["relu", "elu", "selu"])
@pytest.mark.parametrize("q", [0.01, 1.0, 100.0, 1e4])
def test_kinked_activations_against_fine_trapezoid(name: str, q: float) -> None:
    # Independent rule: trapezoid with h = 1e-5 on |z| <= 12 (the rest weighs
    # < 1e-32), one half-line at a time so the kink at 0 sits on a node; z[0] is
    # nudged off 0 so each half sees its own one-sided phi'.
    z = np.linspace(0.0, 12.0, 1_200_001)
    z[0] = 1e-300
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    s = math.sqrt(q)
    second = np.trapezoid((phi(name, s * z) ** 2 + phi(name, -s * z) ** 2) * pdf, z)
    slope = np.trapezoid((dphi(name, s * z) ** 2 + dphi(name, -s * z) ** 2) * pdf, z)
    assert q_map(name, q, 1.0, 0.0) == pytest.approx(second, rel=1e-8)
    assert chi1(name, q, 1.0) == pytest.approx(slope, rel=1e-8)


# ------------------------------------------------------------------------ fixed points


def test_fixed_point_closed_forms() -> None:
    # relu: q = sigma_w2 q / 2 + sigma_b2  ->  q* = sigma_b2 / (1 - sigma_w2 / 2).
    assert fixed_point("relu", 1.0, 0.1) == pytest.approx(0.2, rel=1e-10)
    assert fixed_point("identity", 0.5, 1.0) == pytest.approx(2.0, rel=1e-10)
    # selu's self-normalising fixed point: E[selu(z)^2] = 1 (Klambauer et al. 2017).
    assert fixed_point("selu", 1.0, 0.0) == pytest.approx(1.0, rel=1e-9)


def test_fixed_point_divergence_and_collapse() -> None:
    assert fixed_point("relu", 3.0, 0.0) == math.inf
    assert fixed_point("relu", 2.0, 0.05) == math.inf  # drifts up by 0.05 a layer
    assert fixed_point("elu", 2.0, 0.0) == math.inf  # drifts up by ~1 a layer
    assert fixed_point("softplus", 2.0, 0.0) == math.inf  # drifts up by ~sqrt(q)
    assert fixed_point("tanh", 0.5, 0.0) == 0.0
    assert fixed_point("tanh", 1.0, 0.0) == 0.0  # q_l ~ 1/(2l): iteration alone never gets there
    assert fixed_point("relu", 1.0, 0.0) == 0.0


@pytest.mark.parametrize(
    ("name", "sigma_w2", "sigma_b2"),
    [("tanh", 2.0, 0.05), ("tanh", 1.0 + 1e-6, 0.0), ("sigmoid", 3.0, 0.0), ("gelu", 1.9, 0.5),
     ("hardtanh", 1.5, 0.05), ("softplus", 1.9, 0.0), ("elu", 1.2, 0.0)],
)
def test_fixed_point_is_a_fixed_point(name: str, sigma_w2: float, sigma_b2: float) -> None:
    q_star = fixed_point(name, sigma_w2, sigma_b2)
    assert 0.0 < q_star < math.inf
    assert q_map(name, q_star, sigma_w2, sigma_b2) == pytest.approx(q_star, rel=1e-9)
    # ...and it is where plain iteration from q0 = 1 is heading.
    q = 1.0
    for _ in range(50):
        q = q_map(name, q, sigma_w2, sigma_b2)
    assert abs(q - q_star) <= abs(1.0 - q_star) + 1e-12


# --------------------------------------------------------------------- edge of chaos


def test_critical_sigma_w2_known_values() -> None:
    assert critical_sigma_w2("relu") == pytest.approx(2.0, rel=1e-10)  # He et al. 2015
    assert critical_sigma_w2("relu", sigma_b2=0.1) == pytest.approx(2.0, rel=1e-10)
    assert critical_sigma_w2("identity") == pytest.approx(1.0, rel=1e-10)
    a = 0.2
    assert critical_sigma_w2("leaky_relu", negative_slope=a) == pytest.approx(2 / (1 + a * a), rel=1e-10)
    # tanh with sigma_b = 0 (Poole et al. 2016): chi1* - 1 grows only quadratically
    # above 1, so the root is pinned to ~1e-7, not to 1e-13.
    assert critical_sigma_w2("tanh") == pytest.approx(1.0, abs=1e-6)


def test_critical_sigma_w2_selu() -> None:
    # Mean field: q* leaves 0 where sigma_w2 E[selu'(0+-)^2] = 1, and selu is
    # (weakly) chaotic for every larger sigma_w2, so the edge is there ...
    edge = 2.0 / (SELU_SCALE**2 * (1.0 + SELU_ALPHA**2))
    assert critical_sigma_w2("selu") == pytest.approx(edge, rel=1e-6)
    # ... while LeCun's sigma_w2 = 1 (q* = 1) is only close to critical: chi1* = 1.0716.
    assert chi1("selu", fixed_point("selu", 1.0, 0.0), 1.0) == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize(
    ("name", "sigma_b2"),
    [("sigmoid", 0.0), ("gelu", 0.5), ("silu", 1.0), ("elu", 0.0), ("elu", 0.5),
     ("softplus", 0.0), ("tanh", 0.05), ("hardtanh", 0.05)],
)
def test_critical_sigma_w2_is_a_root(name: str, sigma_b2: float) -> None:
    sigma_w2 = critical_sigma_w2(name, sigma_b2)
    assert sigma_w2 is not None
    q_star = fixed_point(name, sigma_w2, sigma_b2)
    assert chi1(name, q_star, sigma_w2) == pytest.approx(1.0, abs=1e-6)


def test_critical_sigma_w2_none_when_q_star_jumps() -> None:
    # gelu with sigma_b2 = 0: from q0 = 1, q* is 0 (chi1 = sigma_w2/4 < 1) until the
    # unstable fixed point passes 1 at sigma_w2 = 1/E[gelu(z)^2] ~ 2.35, then inf
    # (chi1 = sigma_w2/2 > 1): a jump over 1, no edge of chaos.
    assert critical_sigma_w2("gelu") is None
    assert critical_sigma_w2("identity", sigma_b2=0.0) is not None


# ------------------------------------------------------------------------ predictions


def test_predict_stretch_relu_exact() -> None:
    p = predict_stretch("relu", 3.0, 0.0, depth=10, q_in=1.0)
    assert p.q_layers == pytest.approx([1.5**k for k in range(10)], rel=1e-12)
    assert p.chi_layers == pytest.approx([1.5] * 10, rel=1e-12)
    assert p.predicted_log10_ratio == pytest.approx(0.5 * 9 * math.log10(1.5), rel=1e-12)
    assert p.q_star == math.inf and math.isnan(p.chi1_star)
    assert p.phase == "chaotic"
    assert predict_stretch("relu", 2.0, 0.0, 10, 1.0).phase == "critical"
    assert predict_stretch("relu", 1.0, 0.0, 10, 1.0).phase == "ordered"


def test_predict_stretch_sums_per_layer_chi() -> None:
    p = predict_stretch("tanh", 2.0, 0.05, depth=6, q_in=3.0)
    assert p.depth == len(p.q_layers) == len(p.chi_layers) == 6
    assert p.q_layers[0] == 3.0
    for q_prev, q_next in zip(p.q_layers[:-1], p.q_layers[1:], strict=True):
        assert q_next == pytest.approx(q_map("tanh", q_prev, 2.0, 0.05), rel=1e-14)
    expected = 0.5 * sum(math.log10(c) for c in p.chi_layers[1:])
    assert p.predicted_log10_ratio == pytest.approx(expected, rel=1e-14)
    assert predict_stretch("tanh", 2.0, 0.05, depth=1, q_in=3.0).predicted_log10_ratio == 0.0


def test_predict_stretch_survives_overflow() -> None:
    # q grows by 500x a layer and passes 1e300 after ~110 layers.
    p = predict_stretch("relu", 1e3, 0.0, depth=200, q_in=1.0)
    assert p.predicted_log10_ratio == pytest.approx(0.5 * 199 * math.log10(500.0), rel=1e-12)
    assert max(p.q_layers) > 1e300
    p = predict_stretch("identity", 1e3, 1.0, depth=200, q_in=1.0)
    assert p.predicted_log10_ratio == pytest.approx(0.5 * 199 * 3.0, rel=1e-12)
    p = predict_stretch("tanh", 1e3, 1.0, depth=200, q_in=1e250)
    assert math.isfinite(p.predicted_log10_ratio)


def test_predict_stretch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        predict_stretch("relu", 2.0, 0.0, depth=0, q_in=1.0)
    with pytest.raises(ValueError):
        predict_stretch("relu", 2.0, 0.0, depth=3, q_in=-1.0)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(ACTIVATIONS),
    sigma_w2=st.floats(1e-3, 1e3),
    sigma_b2=st.floats(0.0, 10.0),
    depth=st.integers(1, 25),
    q_in=st.floats(1e-12, 1e12),
)
def test_predict_stretch_never_raises(
    name: str, sigma_w2: float, sigma_b2: float, depth: int, q_in: float
) -> None:
    p = predict_stretch(name, sigma_w2, sigma_b2, depth, q_in)
    assert not math.isnan(p.predicted_log10_ratio)
    assert p.phase in ("ordered", "critical", "chaotic")
    assert all(c >= 0.0 for c in p.chi_layers)


# ------------------------------------------------------- agreement with simulation

WIDTH = 1000
BATCH = 256
SEEDS = (0, 1, 2)

# (activation, sigma_w2, sigma_b2, depth): both phases, the relu edge, and
# stretches whose q_l is still far from q* (tanh chaotic starts at q_in ~ 2.05
# against q* = 0.72; selu at sigma_w2 = 2 climbs slowly towards q* = inf).
SIM_CASES = [
    ("tanh", 0.5, 0.05, 20),
    ("tanh", 2.0, 0.05, 20),
    ("tanh", 2.0, 0.05, 10),
    ("relu", 1.0, 0.0, 16),
    ("relu", 2.0, 0.0, 16),
    ("relu", 3.0, 0.0, 16),
    ("sigmoid", 1.0, 0.05, 12),
    ("selu", 1.0, 0.0, 20),
    ("selu", 2.0, 0.0, 16),
    ("gelu", 3.0, 0.05, 12),
    ("silu", 1.0, 0.05, 12),
    ("elu", 1.5, 0.1, 20),
]
MAX_DEPTH = max(case[3] for case in SIM_CASES)


def tolerance(depth: int, predicted: float) -> float:
    """How far the 3-seed mean may sit from the mean-field prediction.

    Finite width adds noise of order sqrt(depth/width) in log10 per net
    (DOMAIN.md); the mean of 3 seeds has sqrt(3) less, and we allow 2 of those.
    The relative part covers the O(1/width) bias each layer's chi and q carry,
    which adds up over the stretch in proportion to the ratio itself.
    """
    return 2.0 * math.sqrt(depth / WIDTH) / math.sqrt(len(SEEDS)) + 0.05 * abs(predicted)


def _simulate_all() -> dict[tuple[str, float, float, int], tuple[float, float]]:
    """Mean over seeds of (measured log10 ||dL/dh_1|| / ||dL/dh_L||, q_in) per case.

    Each seed draws one set of standard-normal weights and biases, shared by all
    cases after scaling (W = sqrt(sigma_w2/fan_in) * G, b = sqrt(sigma_b2) * g), so
    the 12 cases cost 3 weight draws, not 36.
    """
    sums: dict[tuple[str, float, float, int], list[float]] = {c: [0.0, 0.0] for c in SIM_CASES}
    for seed in SEEDS:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(BATCH, WIDTH, generator=gen, dtype=torch.float64)
        weights = [torch.randn(WIDTH, WIDTH, generator=gen, dtype=torch.float64) for _ in range(MAX_DEPTH)]
        biases = [torch.randn(WIDTH, generator=gen, dtype=torch.float64) for _ in range(MAX_DEPTH)]
        readout = torch.randn(10, WIDTH, generator=gen, dtype=torch.float64) / math.sqrt(WIDTH)
        labels = torch.randint(0, 10, (BATCH,), generator=gen)
        for case in SIM_CASES:
            name, sigma_w2, sigma_b2, depth = case
            act = TORCH_ACTIVATION[name]
            h, hidden = x, []
            for layer in range(depth):
                z = h @ weights[layer].T * math.sqrt(sigma_w2 / WIDTH) + biases[layer] * math.sqrt(sigma_b2)
                if layer == 0:
                    z.requires_grad_(True)  # grads flow from here on; x and W need none
                h = act(z)
                h.retain_grad()
                hidden.append(h)
            # Cross-entropy on random labels through a readout: a backward signal
            # independent of the forward one (a sum loss would not be; DOMAIN.md).
            F.cross_entropy(h @ readout.T, labels).backward()
            first, last = hidden[0].grad, hidden[-1].grad
            assert first is not None and last is not None
            sums[case][0] += math.log10(first.norm().item() / last.norm().item())
            sums[case][1] += sigma_w2 * x.pow(2).mean().item() + sigma_b2
        del weights, biases
    return {c: (s[0] / len(SEEDS), s[1] / len(SEEDS)) for c, s in sums.items()}


@pytest.fixture(scope="module")
def simulated() -> dict[tuple[str, float, float, int], tuple[float, float]]:
    return _simulate_all()


@pytest.mark.slow
@pytest.mark.parametrize("case", SIM_CASES, ids=lambda c: f"{c[0]}-w{c[1]}-b{c[2]}-L{c[3]}")
def test_prediction_matches_wide_net_simulation(
    case: tuple[str, float, float, int],
    simulated: dict[tuple[str, float, float, int], tuple[float, float]],
) -> None:
    name, sigma_w2, sigma_b2, depth = case
    measured, q_in = simulated[case]
    p = predict_stretch(name, sigma_w2, sigma_b2, depth, q_in)
    tol = tolerance(depth, p.predicted_log10_ratio)
    assert abs(measured - p.predicted_log10_ratio) <= tol, (measured, p.predicted_log10_ratio, tol)

    # The phase says which way the gradient goes.
    if p.phase == "ordered":
        assert measured < 0.0
    elif p.phase == "chaotic":
        assert measured > 0.0

    # The test has teeth: a wrong theory -- chi1 taken as the factor of the norm
    # rather than of the squared norm -- predicts twice the log-ratio, and lands
    # outside the tolerance wherever the ratio is not tiny.
    if abs(p.predicted_log10_ratio) > 0.5:
        wrong = 2.0 * p.predicted_log10_ratio
        assert abs(measured - wrong) > tol

    # Per-layer q_l matters: where chi1 at q* alone predicts visibly differently
    # (selu at sigma_w2 = 2: 0.32 against 1.06), the simulation sides with q_l.
    chi_star = p.chi1_star if math.isfinite(p.q_star) else chi1(name, math.inf, sigma_w2)
    q_star_only = 0.5 * (depth - 1) * math.log10(chi_star)
    if abs(q_star_only - p.predicted_log10_ratio) > 0.05:
        assert abs(measured - p.predicted_log10_ratio) < abs(measured - q_star_only)


def test_theory_module_imports_no_torch() -> None:
    source = Path(theory.__file__).read_text(encoding="utf-8")
    assert "import torch" not in source and "from torch" not in source


def test_he_init_measured_a_hair_above_two_is_critical_in_the_report() -> None:
    # the README's relu_he_mlp: sigma_w^2 measured 2.000089 (a finite sample of He's 2) has no finite
    # fixed point, so chi1* is undefined; its large-q chi1, 1.00004, is as critical as 0.99996
    from gradhealth.analysis.check import _phase

    for sigma_w2 in (2.000089, 1.999911):
        pred = theory.predict_stretch("relu", sigma_w2, 0.0, 20, 1.0)
        assert _phase(pred) == "critical", (sigma_w2, pred.phase, pred.chi1_star)
    assert _phase(theory.predict_stretch("relu", 2.1, 0.0, 20, 1.0)) == "chaotic"


def test_without_a_finite_fixed_point_the_phase_is_what_the_stacks_own_layers_do() -> None:
    # softplus under He init: q grows without bound and chi1 -> 1 only in the limit; at every depth
    # a network has, each layer's chi1 is below 1 (specsweep10 c07 read "chaotic" from q = 1e300)
    pred = theory.predict_stretch("softplus", 2.0, 0.0, 80, 1.0)
    assert math.isinf(pred.q_star)
    assert all(c < 1 for c in pred.chi_layers) and pred.phase == "ordered"
    # the ReLU family's chi1 does not depend on q: He init stays critical
    assert theory.predict_stretch("relu", 2.0, 0.0, 80, 1.0).phase == "critical"
