"""kerassweep19: three defects of the Keras door and one rule.

u01/h03/u04: TF 2.11-2.15 save their optimizers as ``Custom>Adam`` (the registration package
before ``>``): the compiled optimizer was ignored and the report said "no optimizer given", so
u01's Adam at lr 1.0 read healthy. An optimizer the file names but the simulation does not know is
now named as such instead.

h06: a ReLU regression output with ``--target-range 0,1`` (every target in reach) clipping 0% of
its outputs, a threshold of 0.05, was still a warning: the severity now follows that evidence.

h04: a Keras 3 Sequential Embedding -> LSTM -> Dense saved unbuilt states no input shape at all;
it was refused and ``--input-shape`` could not give one. Token ids get README's 32 steps, a first
Dense its stored kernel's width, and ``--input-shape`` sets either; where nothing says, the refusal
names the flag with an example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import check_keras, keras_optimizer, read_keras_training
from gradhealth.library import check_architecture
from gradhealth.report.text import render_text
from tests.keras_files import keras2_h5

GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
          "registered_name": None}
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def _dense(name: str, units: int, act: str, **extra: Any) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "units": units, "activation": act,
                                              "use_bias": True, "kernel_initializer": GLOROT,
                                              "bias_initializer": ZEROS, **extra}}


def _training(optimizer: Any, loss: str = "mse") -> str:
    return json.dumps({"loss": loss, "metrics": [], "optimizer_config": optimizer})


# --- u01: Custom>Adam ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    # TF 2.11-2.15's Keras 2 (h5 training_config): the registration package before ">"
    ({"class_name": "Custom>Adam", "config": {"learning_rate": 1.0, "epsilon": 1e-7}},
     {"type": "adam", "lr": 1.0, "eps": 1e-7}),
    ({"class_name": "Custom>SGD", "config": {"learning_rate": 0.1, "momentum": 0.9}},
     {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False}),
    ({"class_name": "Custom>RMSprop", "config": {"learning_rate": 0.001, "rho": 0.9}},
     {"type": "rmsprop", "lr": 0.001, "alpha": 0.9, "eps": 1e-7}),
    # Keras 3's module/registered_name form: the name is read from registered_name where class_name is none
    ({"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.01}, "registered_name": None},
     {"type": "adam", "lr": 0.01, "eps": 1e-7}),
    ({"module": "keras.src.optimizers.adam", "class_name": "AdamOptimizer", "config": {"learning_rate": 0.01},
      "registered_name": "Custom>Adam"}, {"type": "adam", "lr": 0.01, "eps": 1e-7}),
])
def test_registered_optimizer_names_are_read(value: Any, expected: dict[str, Any]) -> None:
    assert keras_optimizer(value) == expected


def _mlp(shape: int = 64) -> dict[str, Any]:
    return {"class_name": "Sequential", "config": {"name": "mlp", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, shape]}},
        _dense("d0", 64, "relu"), _dense("d1", 64, "relu"), _dense("out", 10, "softmax")]}}


def test_a_file_compiled_with_custom_adam_at_rate_1_gets_large_updates() -> None:
    data = keras2_h5(_mlp(), {}, attrs={"keras_version": "2.13.1", "training_config": _training(
        {"class_name": "Custom>Adam", "config": {"name": "Adam", "learning_rate": 1.0, "epsilon": 1e-7,
                                                 "is_legacy_optimizer": False}}, "categorical_crossentropy")})
    assert read_keras_training(data).optimizer == {"type": "adam", "lr": 1.0, "eps": 1e-7}
    doc = check_keras(data, weights="reinitialise", seeds=2, batch_size=32, verify=False)
    assert doc.simulation is not None and doc.simulation.optimizer is not None
    assert doc.simulation.optimizer["lr"] == 1.0 and doc.simulation.optimizer_unknown is None
    # Adam's first step is lr per weight: a 64x64 Glorot kernel (norm about sqrt(64*64*2/128) = 5.7)
    # moves by about 1.0 * 64 = 64, far past the error line of 1
    f = next(f for f in doc.findings if f.code == "large_updates")
    assert f.severity == "error"


def test_an_optimizer_the_simulation_does_not_know_is_named_not_called_absent() -> None:
    ftrl = keras2_h5(_mlp(), {}, attrs={"keras_version": "2.13.1", "training_config": _training(
        {"class_name": "Custom>Ftrl", "config": {"learning_rate": 0.1}}, "categorical_crossentropy")})
    doc = check_keras(ftrl, weights="reinitialise", seeds=1, batch_size=16, verify=False)
    assert doc.simulation is not None and doc.simulation.optimizer is None
    assert doc.simulation.optimizer_unknown == "Custom>Ftrl"
    text = render_text(doc)
    assert "optimizer Custom>Ftrl in the file is not one the simulation knows: update sizes not checked" in text
    assert "no optimizer given" not in text
    # none compiled: still "no optimizer given"
    bare = keras2_h5(_mlp(), {}, attrs={"keras_version": "2.13.1",
                                        "training_config": json.dumps({"loss": "categorical_crossentropy"})})
    doc = check_keras(bare, weights="reinitialise", seeds=1, batch_size=16, verify=False)
    assert doc.simulation is not None and doc.simulation.optimizer_unknown is None
    assert "no optimizer given: update sizes not checked" in render_text(doc)
    # one given replaces the file's: nothing unknown is said
    doc = check_keras(ftrl, weights="reinitialise", seeds=1, batch_size=16, verify=False,
                      optimizer={"type": "sgd", "lr": 0.01})
    assert doc.simulation is not None and doc.simulation.optimizer_unknown is None


# --- h06: a ReLU regression output's severity follows its evidence ----------------------------

def _relu_regression(bias: float, target_range: list[float] | None) -> dict[str, Any]:
    loss: dict[str, Any] = {"type": "mse"}
    if target_range is not None:
        loss["target_range"] = target_range
    return {"name": "relu-regression", "input": {"shape": [128, 64]}, "seeds": 3,
            "layers": [{"type": "linear", "out_features": 128, "activation": "relu", "init": "he_normal"},
                       {"type": "linear", "out_features": 1, "activation": "relu",
                        "bias_init": {"scheme": "constant", "value": bias}}],
            "loss": loss}


def _mismatch(spec: dict[str, Any]) -> Any:
    return next(f for f in check_architecture(spec, verify=False).findings if f.code == "output_loss_mismatch")


def test_a_relu_regression_output_clipping_none_with_targets_in_reach_is_a_note() -> None:
    # a bias of 50 against pre-activations of std about 1.4: no output is clipped in any seed
    f = _mismatch(_relu_regression(50.0, [0.0, 1.0]))
    assert f.evidence.value == 0.0 and f.evidence.threshold == pytest.approx(0.05)
    assert f.evidence.model_extra["unreachable_target_fraction"] == 0.0
    assert f.severity == "info"
    assert "all in reach" in f.summary and "a note" in f.summary


def test_a_relu_regression_output_stays_a_warning_where_its_evidence_says_so() -> None:
    # targets not given: the standard-normal ones simulated are half below 0, out of reach
    f = _mismatch(_relu_regression(50.0, None))
    assert f.evidence.model_extra["unreachable_target_fraction"] == pytest.approx(0.5)
    assert f.severity == "warning" and "--target-range 0,1" in f.explanation
    # targets in reach, but a zero bias clips about half the outputs at initialisation (over 0.05)
    f = _mismatch(_relu_regression(0.0, [0.0, 1.0]))
    assert 0.2 < f.evidence.value < 0.8 and f.severity == "warning"


# --- h04: a Sequential saved unbuilt ------------------------------------------------------------

def _unbuilt_lm() -> dict[str, Any]:
    """Keras 3.13's Sequential([Embedding(100, 8), LSTM(16), Dense(100, softmax)]) saved before it
    was built: no InputLayer, no shape anywhere."""
    return {"class_name": "Sequential", "config": {"name": "sequential_3", "trainable": True, "layers": [
        {"class_name": "Embedding", "config": {"name": "embedding_3", "input_dim": 100, "output_dim": 8,
                                               "embeddings_initializer": {
                                                   "module": "keras.initializers", "class_name": "RandomUniform",
                                                   "config": {"seed": None, "minval": -0.05, "maxval": 0.05},
                                                   "registered_name": None}, "mask_zero": False}},
        {"class_name": "LSTM", "config": {"name": "lstm_1", "units": 16, "return_sequences": False,
                                          "activation": "tanh", "recurrent_activation": "sigmoid",
                                          "use_bias": True, "unit_forget_bias": True}},
        _dense("dense_3", 100, "softmax")]}}


def test_an_unbuilt_embedding_model_reads_token_ids_of_the_default_length(tmp_path: Path) -> None:
    from gradhealth.cli import main

    data = keras2_h5(_unbuilt_lm(), {}, attrs={"keras_version": "3.13.0", "training_config": _training(
        {"class_name": "Adam", "config": {"learning_rate": 0.001}}, "categorical_crossentropy")})
    doc = check_keras(data, seeds=1, batch_size=8, verify=False)
    assert "the file states no input shape" in doc.summary
    assert "embedding_3 [32] (32 tokens; --input-shape input=<tokens> to choose)" in doc.summary
    # Embedding 100*8, LSTM 4*16*(8+16) and torch's two biases (Keras' one, and one of zeros), Dense 16*100+100
    assert doc.simulation is not None and doc.simulation.parameters == 800 + 4 * 16 * (8 + 16 + 2) + 1700
    # the flag sets the length, through the CLI too
    path = tmp_path / "lm.h5"
    path.write_bytes(data)
    out = tmp_path / "doc.json"
    assert main(["check", str(path), "--input-shape", "input=20", "--seeds", "1", "--no-verify",
                 "--format", "json", "--output", str(out)]) == 0
    assert "no input shape" not in json.loads(out.read_text())["summary"]


def _unbuilt_mlp() -> dict[str, Any]:
    return {"class_name": "Sequential", "config": {"name": "mlp", "layers": [
        _dense("dense", 8, "relu"), _dense("dense_1", 1, "linear")]}}


def test_an_unbuilt_dense_model_reads_its_input_width_from_the_stored_kernel() -> None:
    rng = np.random.default_rng(0)
    stored = {"dense": [("kernel", rng.normal(0, 0.3, (12, 8))), ("bias", np.zeros(8))],
              "dense_1": [("kernel", rng.normal(0, 0.3, (8, 1))), ("bias", np.zeros(1))]}
    data = keras2_h5(_unbuilt_mlp(), stored, attrs={"keras_version": "2.13.1", "training_config": _training("sgd")})
    for weights in ("as_given", "reinitialise"):
        doc = check_keras(data, weights=weights, seeds=1, batch_size=8, verify=False)
        assert doc.simulation is not None and doc.simulation.parameters == 12 * 8 + 8 + 8 + 1
        assert "dense [12] (12 features, from its stored kernel; --input-shape input=12 to choose)" in doc.summary


def test_an_unbuilt_dense_model_without_weights_names_the_flag_to_pass(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth.cli import main

    data = keras2_h5(_unbuilt_mlp(), {}, attrs={"keras_version": "2.13.1", "training_config": _training("sgd")})
    with pytest.raises(ModelError) as refused:
        check_keras(data, seeds=1, batch_size=8, verify=False)
    assert "--input-shape input=<features> (e.g. --input-shape input=784" in refused.value.detail
    assert "dense (Dense)" in refused.value.detail
    path = tmp_path / "mlp.h5"
    path.write_bytes(data)
    assert main(["check", str(path), "--seeds", "1", "--no-verify"]) == 2
    assert "--input-shape input=<features>" in capsys.readouterr().err
    doc = check_keras(data, seeds=1, batch_size=8, verify=False, input_shapes={"input": [12]})
    assert doc.simulation is not None and doc.simulation.parameters == 12 * 8 + 8 + 8 + 1
