"""A ReLU on the last layer under a loss on logits (peersweep6: the TensorFlow program bugs'
IPS-11, "accuracy stuck"): every logit clipped to 0 passes no gradient, and a class whose logit
is 0 for every input is never learned. output_loss_mismatch says so, measures the clipped share,
and the remedy (no activation on the logits) is verified to clip none."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gradhealth import check_module
from gradhealth.library import check_architecture


def _spec(activation: str, *, loss: str = "cross_entropy", bias_init: float | None = None, out: int = 10) -> dict[str, Any]:
    last: dict[str, Any] = {"type": "linear", "out_features": out, "activation": activation,
                            "bias_init": {"scheme": "zeros"}}
    if bias_init is not None:
        last["bias_init"] = {"scheme": "constant", "value": bias_init}
    return {"name": f"mlp-{activation}", "input": {"shape": [128, 64]}, "seeds": 3,
            "layers": [{"type": "linear", "out_features": 128, "activation": "relu", "init": "he_normal"}, last],
            "loss": {"type": loss}}


def _finding(doc: Any, code: str) -> Any:
    return next((f for f in doc.findings if f.code == code), None)


def test_a_relu_on_the_logits_is_a_mismatch_with_about_half_the_logits_clipped() -> None:
    doc = check_architecture(_spec("relu"))
    f = _finding(doc, "output_loss_mismatch")
    assert f is not None and f.severity in ("warning", "error")
    # a zero-bias layer over inputs of any sign-symmetric weights: its pre-activations are
    # symmetric around 0, so about half of them are clipped (binomial spread over 3 x 128 x 10)
    assert 0.35 < f.evidence.value < 0.65
    assert f.evidence.model_extra["from_logits"] is True
    fix = next(r for r in f.remedies if r.id == "output_activation")
    assert fix.patch == [{"op": "replace", "path": "/layers/1/activation", "value": "identity"}]
    assert fix.verified is not None and fix.verified.after == 0.0
    # (the snippet names the output layer's real widths, not the n_in / n_classes placeholders)
    assert "nn.Linear(128, 10)" in fix.snippet and "logits" in fix.change
    # the output layer is this finding's, not dead_units' as a hidden layer
    dead = _finding(doc, "dead_units")
    assert dead is None or "layers[1]" not in " ".join(dead.where)


def test_an_output_clipped_for_every_sample_is_an_error_naming_the_lost_classes() -> None:
    doc = check_architecture(_spec("relu", bias_init=-50.0))
    f = _finding(doc, "output_loss_mismatch")
    assert f is not None and f.severity == "error"
    assert max(f.evidence.model_extra["dead_output_units_by_seed"]) == 10
    assert "can never be learned" in f.summary


def test_binary_cross_entropy_on_logits_is_judged_the_same() -> None:
    doc = check_architecture(_spec("relu", loss="binary_cross_entropy", out=1))
    f = _finding(doc, "output_loss_mismatch")
    assert f is not None and "sigmoid" in f.explanation


def test_logits_with_no_activation_are_no_mismatch() -> None:
    doc = check_architecture(_spec("identity"))
    assert _finding(doc, "output_loss_mismatch") is None


def test_a_module_ending_in_nn_relu_under_cross_entropy_is_caught_and_its_relu_named() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10), nn.ReLU())
    doc = check_module(model, torch.randn(128, 64), loss="cross_entropy", seeds=2, verify=False)
    f = _finding(doc, "output_loss_mismatch")
    assert f is not None
    assert any(r.id == "output_activation" and "logits" in r.change for r in f.remedies)


@pytest.mark.parametrize("loss", ["mse"])
def test_a_regression_relu_output_keeps_its_own_wording(loss: str) -> None:
    doc = check_architecture(_spec("relu", loss=loss, out=1))
    f = _finding(doc, "output_loss_mismatch")
    assert f is not None and "no target below 0 can be reached" in f.summary


@pytest.mark.parametrize(("target_range", "words", "unreachable"), [
    ([0.0, 1.0], "the targets lie in [0, 1] (loss.target_range), all in reach", 0.0),
    ([-1.0, 3.0], "25% of that range below 0 out of reach", 0.25),  # (0 - -1) / (3 - -1)
])
def test_a_regression_relu_output_with_a_known_target_range_says_what_is_in_reach(
        target_range: list[float], words: str, unreachable: float) -> None:
    # kerassweep15 u03: with --target-range 0,1 the summary still said "no target below 0 can be
    # reached", true but beside the point; the clipped outputs' lost gradient is still the finding.
    spec = _spec("relu", loss="mse", out=1)
    spec["loss"]["target_range"] = target_range
    f = _finding(check_architecture(spec), "output_loss_mismatch")
    assert f is not None and f.severity in ("warning", "error")
    assert words in f.summary and "no target below 0" not in f.summary
    assert "every output clipped at 0 gets no gradient" in f.summary
    assert f.evidence.model_extra["unreachable_target_fraction"] == pytest.approx(unreachable)
    assert f.evidence.model_extra["targets"] == f"in [{target_range[0]:g}, {target_range[1]:g}]"
