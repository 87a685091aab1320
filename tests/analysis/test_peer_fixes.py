"""Peer-sweep fixes: a NaN the loss makes from finite outputs (peersweep1 P2: Dense(3, relu) under
categorical cross-entropy on probabilities) names the output/loss pairing and its loss-side fixes;
a bounded output activation under a regression loss (peersweep2 so48221692: a sigmoid under mse)
is output_loss_mismatch, as a ReLU there is."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.remedies import Context
from gradhealth.analysis.rules import detect
from gradhealth.analysis.simulate import simulate
from gradhealth.analysis.spec import parse_spec
from gradhealth.analysis.thresholds import Thresholds
from gradhealth.core.rules import rule
from gradhealth.library import check_architecture
from tests.analysis.test_keras_import import _dense, _init, _layer, _seq


def _relu_classifier(**loss: Any) -> dict[str, Any]:
    # three ReLU outputs at a zero bias: a sample's row is all 0 with probability ~1/8, so a
    # batch of 256 holds one (Keras' sum-normalisation then gives 0/0) in every seed
    return {"name": "p2", "input": {"shape": [20]}, "batch_size": 256,
            "loss": {"type": "cross_entropy", "from_logits": False, **loss},
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal",
                        "repeat": 2},
                       {"type": "linear", "out_features": 3, "activation": "relu", "bias_init": "zeros"}]}


def test_a_nan_made_by_the_loss_keeps_the_output_loss_mismatch_and_names_the_pairing() -> None:
    doc = check_architecture(_relu_classifier())
    codes = {f.code: f for f in doc.findings}
    nonfinite, mismatch = codes["nonfinite"], codes.get("output_loss_mismatch")
    assert nonfinite.severity == "error"
    # the finding measured on the finite outputs ahead of the loss is not thrown away with the ratios
    assert mismatch is not None and mismatch.severity in ("warning", "error")
    extra = nonfinite.evidence.model_dump()
    assert extra["in_loss"] is True and extra["cause"] == "output_loss_pairing"
    assert extra["output_activation"] == "relu" and extra["related"] == ["output_loss_mismatch"]
    assert "relu outputs for probabilities" in nonfinite.summary and "from_logits=False" in nonfinite.summary
    # the loss-side fix, verified by re-simulation; no rate cut for a NaN made before any update
    ids = [r.id for r in nonfinite.remedies]
    assert "lower_learning_rate" not in ids
    # nor a clipping threshold: clipping bounds updates, and this NaN comes before the first one
    assert "gradient_clipping" not in ids
    [fix] = [r for r in nonfinite.remedies if r.id == "logits_loss"]
    assert fix.verified is not None and fix.verified.fixed and fix.recommended
    assert {"op": "replace", "path": "/loss/from_logits", "value": True} in fix.patch


def test_a_nan_made_inside_the_network_keeps_the_update_remedies() -> None:
    from gradhealth.analysis.rules import loss_made_nonfinite, nonfinite_in_loss

    raw = {"input": {"shape": [16]}, "seeds": 1, "loss": {"type": "cross_entropy", "from_logits": False},
           "layers": [{"type": "linear", "out_features": 16, "init": {"scheme": "normal", "std": 1.0}},
                      {"type": "linear", "out_features": 16, "init": {"scheme": "normal", "std": 100.0}},
                      {"type": "linear", "out_features": 3, "activation": "relu"}]}
    spec = parse_spec(raw)
    # past validation, as test_simulate's overflow: the first layer's output overflows
    spec.input = spec.input.model_copy(update={"scale": 1e306})
    plan = make_plan(spec)
    result = simulate(plan)
    assert not nonfinite_in_loss(result) and not loss_made_nonfinite(result)
    found = detect(result, Thresholds())
    assert {d.code for d in found} <= {"nonfinite", "exploding_gradient"}
    [det] = [d for d in found if d.code == "nonfinite"]
    assert "cause" not in det.evidence and det.evidence["pass"] == "forward"
    ids = [r.id for r in rule("nonfinite").architecture.propose(Context(raw, plan, result, det))]
    assert "lower_learning_rate" in ids and "logits_loss" not in ids


def _regression(activation: str, loss: str = "mse") -> dict[str, Any]:
    return {"name": "reg", "input": {"shape": [20]}, "batch_size": 64, "loss": {"type": loss},
            "layers": [{"type": "linear", "out_features": 64, "activation": "relu", "init": "kaiming_normal"},
                       {"type": "linear", "out_features": 1, "activation": activation}]}


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_a_sigmoid_regression_output_is_a_mismatch_and_a_linear_output_fixes_it(loss: str) -> None:
    doc = check_architecture(_regression("sigmoid", loss))
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.severity == "warning" and doc.status != "healthy"
    # the share of standard-normal targets outside (0, 1): Phi(0) + 1 - Phi(1)
    expected = 0.5 + 0.5 * math.erfc(1 / math.sqrt(2))
    assert f.evidence.metric == "unreachable_target_fraction" and f.evidence.value == pytest.approx(expected)
    assert f.evidence.model_dump()["output_range"] == [0.0, 1.0] and "sigmoid" in f.summary
    [r] = f.remedies
    assert r.id == "output_activation" and "sigmoid" in r.change and "ReLU" not in r.change
    assert r.patch == [{"op": "replace", "path": "/layers/1/activation", "value": "identity"}]
    assert r.verified is not None and r.verified.fixed and r.recommended


@pytest.mark.parametrize("activation", ["tanh", "hardtanh"])
def test_a_symmetric_bounded_regression_output_is_a_note(activation: str) -> None:
    doc = check_architecture(_regression(activation))
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.severity == "info" and doc.status == "healthy"
    assert f.evidence.value == pytest.approx(math.erfc(1 / math.sqrt(2)))  # |t| > 1: 31.7%


def test_a_keras_sigmoid_activation_layer_ending_a_regression_is_found(tmp_path: Path) -> None:
    # so48221692's shape: Dense(5, sigmoid) -> Dense(1) -> Activation('sigmoid') under mse
    cfg = _seq(_dense("d1", 5, "sigmoid", _init("GlorotUniform")), _dense("out", 1, "linear"),
               _layer("Activation", "act", activation="sigmoid"), shape=[1])
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**cfg, "compile_config": {"loss": "mean_squared_error"}}))
    doc = check_keras(path)
    [f] = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert f.severity == "warning" and f.evidence.metric == "unreachable_target_fraction"
    assert any(r.id == "output_activation" and r.verified is not None and r.verified.fixed for r in f.remedies)
