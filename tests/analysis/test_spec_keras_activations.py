"""Keras' ``hard_sigmoid`` (relu6(x + 3) / 6, Keras 3's and torch's), ``hard_sigmoid_keras2``
(clip(0.2x + 0.5, 0, 1), Keras 2's), ``softsign`` and ``mish`` as spec activations: the spec refused them,
though the Keras door and the recurrent gates know them. Each is checked against an independent
computation: torch's own functions for the simulation and the theory's maps, the derivative's bound for
the measured gradient ratio per layer, closed-form Gaussian tails for what counts as saturated."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gradhealth.analysis import theory
from gradhealth.analysis.model import activation_module
from gradhealth.cli import main
from gradhealth.errors import SpecError
from gradhealth.library import check_architecture, load_spec

#: torch's own functions, independent of the spec's modules
_TORCH = {
    "hard_sigmoid": F.hardsigmoid,
    "hard_sigmoid_keras2": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
    "softsign": F.softsign,
    "mish": F.mish,
}


@pytest.mark.parametrize("name", sorted(_TORCH))
def test_the_layer_and_the_theory_compute_torchs_function_and_derivative(name: str) -> None:
    # off the kinks (+-3, +-2.5), where every definition of the derivative agrees
    x = torch.linspace(-8.0, 8.0, 1601, dtype=torch.float64)
    x = x[(x.abs() - 3.0).abs().gt(1e-6) & (x.abs() - 2.5).abs().gt(1e-6)].requires_grad_(True)
    want = _TORCH[name](x)
    (grad,) = torch.autograd.grad(want.sum(), x)
    got = activation_module(name)(x)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    xs = x.detach().numpy()
    np.testing.assert_allclose(theory.phi(name, xs), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    # (torch's Hardsigmoid backward takes its slope 1/6 in float32: 3e-8 off)
    np.testing.assert_allclose(theory.dphi(name, xs), grad.numpy(), rtol=1e-7, atol=1e-12)
    assert name in theory.ACTIVATIONS


def _mlp(activation: str, init: Any, depth: int = 10, width: int = 256, **extra: Any) -> dict[str, Any]:
    return {"name": f"deep {activation}", "input": {"shape": [width]}, "batch_size": 128, "seeds": 2,
            "loss": "mse",
            "layers": [{"type": "linear", "out_features": width, "activation": activation, "init": init,
                        "bias_init": "zeros", "repeat": depth, **extra},
                       {"type": "linear", "out_features": 1}]}


def _per_layer(doc: Any) -> tuple[float, float]:
    """(the measured ratio ||dL/dh_first|| / ||dL/dh_last|| of the stack per layer step, sigma_w^2)."""
    [stretch] = doc.theory.stretches
    return stretch.measured_ratio ** (1 / (stretch.depth - 1)), stretch.sigma_w2


@pytest.mark.parametrize(("name", "slope"), [("hard_sigmoid", 1 / 6), ("hard_sigmoid_keras2", 0.2)])
def test_a_deep_hard_sigmoid_mlp_vanishes_by_its_slope(name: str, slope: float) -> None:
    doc = check_architecture(_mlp(name, "xavier_normal"))
    per_layer, sigma_w2 = _per_layer(doc)
    # each layer multiplies ||dL/dh||^2 by sigma_w^2 E[phi'^2] <= sigma_w^2 slope^2 (phi' is the slope
    # inside the clips, 0 outside): a gain of at most slope * sqrt(sigma_w^2) a layer, (1/6)^9 = 1e-7
    # over ten layers at Glorot's sigma_w^2 = 1
    assert per_layer <= slope * math.sqrt(sigma_w2) * 1.05
    assert per_layer >= 0.5 * slope * math.sqrt(sigma_w2)  # (most pre-activations inside the clips)
    vanishing = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert vanishing.severity == "error"
    # the theory's prediction (its Gaussian expectations) agrees with the measurement
    [stretch] = doc.theory.stretches
    assert stretch.phase == "ordered" and abs(stretch.log10_error) < 0.3
    swap = next(r for r in vanishing.remedies if r.id == "relu_family_activation")
    assert {"op": "add", "path": "/layers/0/activation", "value": "relu"} in swap.patch
    assert swap.verified is not None and swap.verified.fixed


def test_a_deep_softsign_mlp_under_its_critical_weights_vanishes() -> None:
    # N(0, 0.04^2) at width 256: sigma_w^2 = 0.41, and softsign' = 1 / (1 + |x|)^2 <= 1, so each layer
    # keeps at most sqrt(0.41) = 0.64 of ||dL/dh||: 0.64^19 = 2e-4 over twenty layers
    doc = check_architecture(_mlp("softsign", {"scheme": "normal", "std": 0.04}, depth=20))
    per_layer, sigma_w2 = _per_layer(doc)
    assert per_layer <= math.sqrt(sigma_w2) * 1.02
    vanishing = next(f for f in doc.findings if f.code == "vanishing_gradient")
    assert vanishing.severity in ("warning", "error")
    [stretch] = doc.theory.stretches
    assert abs(stretch.log10_error) < 0.3
    ids = {r.id for r in vanishing.remedies}
    assert "relu_family_activation" in ids and "xavier_init" in ids
    # softsign is tanh-like at 0 (softsign'(0) = 1, odd): the edge of chaos at sigma_b^2 = 0 is sigma_w^2 = 1
    [critical] = doc.theory.critical
    assert critical.critical_sigma_w2 == pytest.approx(1.0, abs=1e-3)


def test_a_mish_mlp_with_he_init_is_healthy() -> None:
    doc = check_architecture(_mlp("mish", "kaiming_normal"))
    codes = {f.code for f in doc.findings if f.severity in ("warning", "error")}
    assert not codes & {"vanishing_gradient", "exploding_gradient", "saturation"}, codes
    [stretch] = doc.theory.stretches
    # chi1 = sigma_w^2 E[mish'(sqrt(q) z)^2] computed independently by Monte Carlo at the measured q*
    rng = np.random.default_rng(0)
    z = rng.standard_normal(2_000_000)
    x = math.sqrt(stretch.q_star) * z
    t = np.tanh(np.logaddexp(0.0, x))
    slope = t + x * (1 - t * t) / (1 + np.exp(-x))
    assert stretch.chi1 == pytest.approx(stretch.sigma_w2 * float(np.mean(slope ** 2)), rel=0.01)
    assert abs(stretch.log10_error) < 0.3


def test_saturation_follows_each_derivative() -> None:
    # pre-activations of variance q = 256 * 0.5^2 = 64 (std 8): a hard sigmoid is at its clips (|x| >= 3,
    # derivative 0) for erfc(3 / (8 sqrt 2)) = 70.8% of units; a softsign is counted where its derivative
    # (1 - |h|)^2 falls under tanh's bar 1 - 0.98^2, |x| > 4.03: erfc(4.03 / (8 sqrt 2)) = 61.4%
    for name, edge in (("hard_sigmoid", 3.0), ("softsign", 1 / math.sqrt(1 - 0.98 ** 2) - 1)):
        doc = check_architecture(_mlp(name, {"scheme": "normal", "std": 0.5}, depth=1), verify=False)
        want = math.erfc(edge / (8 * math.sqrt(2)))
        assert doc.layers[0].saturated_fraction == pytest.approx(want, abs=0.02)
        sat = next(f for f in doc.findings if f.code == "saturation")
        assert sat.severity == "error"
    # at Glorot's init (std 1/16, q = 1) almost none: 0.27% and 5.6e-5
    for name in ("hard_sigmoid", "softsign"):
        doc = check_architecture(_mlp(name, "xavier_normal", depth=1), verify=False)
        assert doc.layers[0].saturated_fraction < 0.01


@pytest.mark.parametrize(("name", "low", "high"), [("softsign", -1.0, 1.0), ("hard_sigmoid", 0.0, 1.0)])
def test_a_bounded_output_under_cross_entropy_on_logits_is_found(name: str, low: float, high: float) -> None:
    # logits in [a, b] cap cross-entropy's floor at ln(1 + (k - 1) e^-(b - a)) (k = 10 classes)
    spec = {"input": {"shape": [32]}, "seeds": 1, "loss": "cross_entropy",
            "layers": [{"type": "linear", "out_features": 32, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 10, "activation": name}]}
    doc = check_architecture(spec, verify=False)
    f = next(f for f in doc.findings if (f.evidence.model_extra or {}).get("logit_range") is not None
             or f.evidence.metric == "unreachable_loss_fraction")
    floor = math.log(1 + 9 * math.exp(-(high - low)))
    assert f.evidence.value == pytest.approx(floor / math.log(10), rel=0.02)


def test_gradhealth_fix_swaps_a_hard_sigmoid_stack_and_the_result_is_healthy(tmp_path: Path, capsys: Any) -> None:
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({**_mlp("hard_sigmoid", "xavier_normal", width=64), "seeds": 1}))
    out = tmp_path / "fixed.json"
    assert main(["fix", str(spec), "--remedy", "relu_family_activation", "-o", str(out)]) == 0
    fixed = load_spec(str(out))
    assert fixed["layers"][0]["activation"] == "relu"
    assert fixed["layers"][0]["init"] == {"scheme": "kaiming_normal"}
    capsys.readouterr()
    assert main(["check", str(out), "--format", "json", "--no-verify"]) == 0
    assert "vanishing_gradient" not in {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]}


@pytest.mark.parametrize(("typo", "meant"), [("softsing", "softsign"), ("hard_sigmod", "hard_sigmoid"),
                                             ("mihs", "mish")])
def test_a_misspelt_keras_activation_gets_a_did_you_mean(typo: str, meant: str) -> None:
    with pytest.raises(SpecError) as err:
        check_architecture(_mlp(typo, "xavier_normal", depth=1), verify=False)
    assert f"did you mean {meant!r}" in str(err.value)
