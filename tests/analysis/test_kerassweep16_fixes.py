"""kerassweep16 u05: a Keras file whose output is a sigmoid under mse, checked with targets far out
of its reach (``--target-range 5,50``), got the output_loss_mismatch finding only with
``weights: reinitialise``; with the file's stored weights (which run through the graph simulation)
the bounded output was not judged at all. The output/loss pairing is the architecture's and the
targets', so both weight modes judge it, on the same targets: the unreachable share of targets
spread evenly over [a, b] is |[a, b] minus [0, 1]| / (b - a), whatever the weights."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradhealth.analysis.importers.keras import check_keras
from tests.keras_files import keras2_h5

GLOROT = {"class_name": "GlorotUniform", "config": {"seed": None}}
ZEROS = {"class_name": "Zeros", "config": {}}


def _dense(name: str, units: int, act: str, *reads: str) -> dict[str, Any]:
    """A Keras 2 Dense; with ``reads``, a functional layer called once on those layers."""
    layer: dict[str, Any] = {
        "class_name": "Dense", "name": name,
        "config": {"name": name, "trainable": True, "dtype": "float32", "units": units, "activation": act,
                   "use_bias": True, "kernel_initializer": GLOROT, "bias_initializer": ZEROS,
                   "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                   "kernel_constraint": None, "bias_constraint": None}}
    if reads:
        layer["inbound_nodes"] = [[[src, 0, 0, {}] for src in reads]]
    return layer


def _input(name: str, features: int) -> dict[str, Any]:
    return {"class_name": "InputLayer", "name": name, "inbound_nodes": [],
            "config": {"batch_input_shape": [None, features], "dtype": "float32", "sparse": False,
                       "ragged": False, "name": name}}


def _sequential(out_act: str) -> dict[str, Any]:
    """Keras 2.4's Sequential: 13 features -> Dense 16 relu -> Dense 1 ``out_act``."""
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        _input("dense_input", 13), _dense("dense", 16, "relu"), _dense("dense_1", 1, out_act)]}}


def _functional(out_act: str) -> dict[str, Any]:
    """Keras 2.4's functional model of two inputs (a graph, not one chain): each through a Dense 8
    relu, concatenated, then Dense 1 ``out_act``."""
    concat = {"class_name": "Concatenate", "name": "concatenate",
              "config": {"name": "concatenate", "trainable": True, "dtype": "float32", "axis": -1},
              "inbound_nodes": [[["a", 0, 0, {}], ["b", 0, 0, {}]]]}
    layers = [_input("in_a", 6), _input("in_b", 7), _dense("a", 8, "relu", "in_a"), _dense("b", 8, "relu", "in_b"),
              concat, _dense("out", 1, out_act, "concatenate")]
    return {"class_name": "Functional", "config": {
        "name": "model", "layers": layers, "input_layers": [["in_a", 0, 0], ["in_b", 0, 0]],
        "output_layers": [["out", 0, 0]]}}


def _stored(config: dict[str, Any], out_bias: float) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Weights for every Dense of ``config`` (fan_in from the config), the output's bias
    ``out_bias``: 6 puts a sigmoid output in its flat tail, as a net trained towards targets far
    above 1 leaves it."""
    rng = np.random.default_rng(3)
    fan = {"in_a": 6, "in_b": 7, "dense_input": 13}  # a Sequential's layers read the one before
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for lay in config["config"]["layers"]:
        name = lay["config"]["name"]
        if lay["class_name"] == "Concatenate":
            fan[name] = fan["a"] + fan["b"]
            continue
        if lay["class_name"] != "Dense":
            continue
        reads = lay.get("inbound_nodes")
        fan_in = fan[reads[0][0][0]] if reads else fan[list(fan)[-1]]
        units = lay["config"]["units"]
        kernel = (rng.standard_normal((fan_in, units)) * math.sqrt(2.0 / fan_in)).astype(np.float32)
        bias = np.full(units, out_bias if units == 1 else 0.0, np.float32)
        out[name] = [("kernel", kernel), ("bias", bias)]
        fan.pop(name, None)
        fan[name] = units  # (last in the dict: what the next Sequential layer reads)
    return out


def _h5(config: dict[str, Any], stored: dict[str, list[tuple[str, np.ndarray]]]) -> bytes:
    """A Keras 2.4 .h5 as model.save() writes it: the config, the compiled mse/Adam and the weights."""
    return keras2_h5(config, stored, attrs={
        "training_config": json.dumps({
            "loss": "mse", "metrics": None,
            "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001}}}),
        "keras_version": "2.4.0", "backend": "tensorflow"})


def _mismatch(doc: Any) -> Any:
    found = [f for f in doc.findings if f.code == "output_loss_mismatch"]
    assert found, f"no output_loss_mismatch in {[(f.code, f.severity) for f in doc.findings]}"
    return found[0]


# (target range, the share of it outside a sigmoid's [0, 1] for targets spread evenly over it, severity)
RANGES = [
    ((5.0, 50.0), 1.0, "error"),          # Boston prices: none in reach, it cannot fit (newuser10 #6)
    ((0.0, 1.0), 0.0, "info"),            # 0/1 labels, or targets scaled into [0, 1]
    ((0.0, 4.0), 0.75, "warning"),        # 3 of the 4 units of the range above 1
    ((-0.25, 1.0), 0.2, "info"),          # 0.25 of 1.25 below 0: under the 0.45 warning bar
]


@pytest.mark.parametrize("shape", ["sequential", "functional"])
@pytest.mark.parametrize(("targets", "unreachable", "severity"), RANGES)
@pytest.mark.parametrize("out_bias", [0.0, 6.0])
def test_a_sigmoid_regression_output_is_judged_alike_with_stored_and_drawn_weights(
        shape: str, targets: tuple[float, float], unreachable: float, severity: str, out_bias: float) -> None:
    config = (_sequential if shape == "sequential" else _functional)("sigmoid")
    data = _h5(config, _stored(config, out_bias))
    by_mode = {}
    for weights in ("as_given", "reinitialise"):
        doc = check_keras(data, weights=weights, target_range=targets, seeds=2, batch_size=32, verify=False)
        assert ("as stored in the file" in doc.summary) == (weights == "as_given")
        f = _mismatch(doc)
        assert f.evidence.metric == "unreachable_target_fraction"
        assert f.evidence.value == pytest.approx(unreachable, abs=1e-12)
        assert f.severity == severity
        assert f.evidence.model_extra["targets"] == f"in [{targets[0]:g}, {targets[1]:g}]"
        assert f.evidence.model_extra["output_range"] == [0.0, 1.0]
        by_mode[weights] = (f.severity, f.evidence.value, f.summary)
    assert by_mode["as_given"] == by_mode["reinitialise"]


def test_with_no_target_range_both_modes_take_standard_normal_targets() -> None:
    config = _sequential("sigmoid")
    data = _h5(config, _stored(config, 6.0))
    # P(t < 0) + P(t > 1) for t ~ N(0, 1): 1/2 + (1 - Phi(1)) = 0.6587
    expected = 0.5 + 0.5 * math.erfc(1 / math.sqrt(2))
    for weights in ("as_given", "reinitialise"):
        f = _mismatch(check_keras(data, weights=weights, seeds=2, batch_size=32, verify=False))
        assert f.severity == "warning" and f.evidence.value == pytest.approx(expected, rel=1e-12)


def test_a_linear_output_has_no_mismatch_in_either_mode() -> None:
    config = _sequential("linear")
    data = _h5(config, _stored(config, 0.0))
    for weights in ("as_given", "reinitialise"):
        doc = check_keras(data, weights=weights, target_range=(5.0, 50.0), seeds=2, batch_size=32, verify=False)
        assert all(f.code != "output_loss_mismatch" for f in doc.findings)


def test_the_stored_weights_remedy_drops_the_sigmoid_and_is_verified(tmp_path: Path) -> None:
    from gradhealth.cli import main

    config = _sequential("sigmoid")
    path = tmp_path / "boston.h5"
    path.write_bytes(_h5(config, _stored(config, 6.0)))
    out = tmp_path / "doc.json"
    assert main(["check", str(path), "--target-range", "5,50", "--seeds", "2", "--format", "json",
                 "--output", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert "as stored in the file" in doc["summary"]
    [f] = [f for f in doc["findings"] if f["code"] == "output_loss_mismatch"]
    assert f["severity"] == "error" and f["evidence"]["value"] == 1.0
    assert "100% of targets in [5, 50] are out of reach" in f["summary"]
    [fix] = [r for r in f["remedies"] if r["id"] == "output_activation"]
    assert "instead of the sigmoid" in fix["change"] and "ReLU" not in fix["change"]
    # a linear output reaches every target: none out of reach after the change
    assert fix["verified"]["fixed"] is True and fix["verified"]["after"] == 0.0


# --- the compiled optimizer's clipping (clipnorm, global_clipnorm, clipvalue) -------------------------


def _deep(std: float) -> dict[str, Any]:
    """Keras 2.4's Sequential of 8 Dense 64 relu (kernel N(0, std^2)) and a linear output."""
    layers = [_input("dense_input", 64)]
    for i in range(8):
        layer = _dense(f"d{i}", 64, "relu")
        layer["config"]["kernel_initializer"] = {"class_name": "RandomNormal",
                                                 "config": {"mean": 0.0, "stddev": std, "seed": None}}
        layers.append(layer)
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [*layers, _dense("out", 1, "linear")]}}


def _clip_remedy(doc: Any) -> Any:
    f = next(f for f in doc.findings if f.code == "exploding_gradient")
    return next(r for r in f.remedies if r.id == "gradient_clipping")


def test_a_keras2_h5_sgd_clipnorm_is_read_shown_and_named_by_the_clipping_remedy() -> None:
    import h5py

    from gradhealth.analysis.importers.keras import read_keras_training

    # N(0, 0.5^2) weights in 64-wide ReLU layers: each layer scales the signal by 0.5 sqrt(64 / 2) = 2.83
    # (He's is 1), 4e3x over 8: an exploding gradient whose He fix gives the clipping its threshold
    config = _deep(0.5)
    rng = np.random.default_rng(0)
    stored = {f"d{i}": [("kernel", (rng.standard_normal((64, 64)) * 0.5).astype(np.float32)),
                        ("bias", np.zeros(64, np.float32))] for i in range(8)}
    stored["out"] = [("kernel", (rng.standard_normal((64, 1)) * 0.125).astype(np.float32)),
                     ("bias", np.zeros(1, np.float32))]
    data = _h5(config, stored)
    buf = io.BytesIO(data)
    with h5py.File(buf, "a") as f:  # compile(SGD(learning_rate=0.01, momentum=0.9, clipnorm=1.0), "mse")
        f.attrs["training_config"] = json.dumps({"loss": "mse", "optimizer_config": {"class_name": "SGD", "config": {
            "name": "SGD", "learning_rate": 0.01, "decay": 0.0, "momentum": 0.9, "nesterov": False, "clipnorm": 1.0}}})
    data = buf.getvalue()
    assert read_keras_training(data).optimizer == {"type": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
                                                   "clip_norm": 1.0}
    for weights in ("as_given", "reinitialise"):  # the graph simulation and the spec's
        doc = check_keras(data, weights=weights, seeds=2, batch_size=32)
        assert doc.simulation.optimizer is not None and doc.simulation.optimizer["clip_norm"] == 1.0
        clip = _clip_remedy(doc)
        assert clip.params["already_clipping"] == "clipnorm 1: each weight's gradient norm at most 1"
        assert clip.change.startswith("training already clips the gradients (clipnorm 1: ")
        assert "no clipping to add" in clip.change


def test_a_keras3_archive_clipvalue_is_read_and_an_unclipped_optimizer_still_gets_clipping_proposed() -> None:
    import zipfile

    from gradhealth.analysis.importers.keras import read_keras_training

    def archive(optimizer_config: dict[str, Any]) -> bytes:
        cfg = {**_deep(0.5), "compile_config": {"loss": "mse", "optimizer": {
            "module": "keras.optimizers", "class_name": "SGD", "registered_name": None,
            "config": {"name": "SGD", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False,
                       "clipnorm": None, "global_clipnorm": None, "clipvalue": None, **optimizer_config}}}}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.9.0"}))
            zf.writestr("config.json", json.dumps(cfg))
        return buf.getvalue()

    clipped = archive({"clipvalue": 0.5, "global_clipnorm": 5.0})
    assert read_keras_training(clipped).optimizer == {"type": "sgd", "lr": 0.01, "global_clip_norm": 5.0,
                                                      "clip_value": 0.5}
    doc = check_keras(clipped, seeds=2, batch_size=32)
    assert doc.simulation.optimizer is not None
    assert (doc.simulation.optimizer["clip_value"], doc.simulation.optimizer["global_clip_norm"]) == (0.5, 5.0)
    assert _clip_remedy(doc).params["already_clipping"] == (
        "global_clipnorm 5: the total gradient norm at most 5; clipvalue 0.5: each gradient element in [-0.5, 0.5]")
    plain = _clip_remedy(check_keras(archive({}), seeds=2, batch_size=32))  # Keras' None: no clipping
    assert "already_clipping" not in plain.params and plain.change.startswith("clip the total gradient norm at ")
