"""Keras files as real projects saved them, found refused or misread by a sweep of public models:
a Keras <= 2.2.2 Sequential config (its layers a bare list), Keras 2.13-3.x initializer class
names with an ``Initializer`` suffix, and a ``.keras`` saved on Windows (weight groups named with
backslashes). Each is compared with the form the importer already read correctly."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import pytest

from gradhealth.analysis.importers.keras import (
    check_keras,
    is_keras_config,
    keras_to_spec,
    read_keras,
)
from gradhealth.errors import InputFormatError
from tests.analysis.test_keras_import import _dense, _init, _layer, _seq

DATA = Path(__file__).resolve().parents[1] / "data" / "keras"


def test_a_keras_2_2_sequential_whose_config_is_the_list_of_layers() -> None:
    modern = _seq(_dense("d0", 32, "relu"), _dense("d1", 10, "softmax"), shape=[16])
    old = {"class_name": "Sequential", "config": modern["config"]["layers"], "keras_version": "2.2.2"}
    assert is_keras_config(old)
    assert keras_to_spec(old) == keras_to_spec(modern)


def test_an_initializer_class_name_with_the_initializer_suffix() -> None:
    def lstm(recurrent: dict) -> dict:
        return _seq(_layer("LSTM", "lstm", units=8, activation="tanh", recurrent_activation="sigmoid",
                           use_bias=True, kernel_initializer=_init("GlorotUniform"),
                           recurrent_initializer=recurrent, bias_initializer=_init("Zeros"),
                           unit_forget_bias=True, return_sequences=False),
                    _dense("out", 3), shape=[12, 4])
    suffixed = lstm(_init("OrthogonalInitializer", gain=1.0, seed=None))
    assert keras_to_spec(suffixed) == keras_to_spec(lstm(_init("Orthogonal", gain=1.0, seed=None)))


def _rewrite_weights(src: bytes, rename) -> bytes:  # noqa: ANN001
    """The .keras archive ``src`` with its model.weights.h5 regrouped: each top-level path
    ``layers/<name>/...`` becomes ``rename(<name>)/...``."""
    zin = zipfile.ZipFile(io.BytesIO(src))
    old = h5py.File(io.BytesIO(zin.read("model.weights.h5")), "r")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as new:
        def copy(name: str, obj) -> None:  # noqa: ANN001
            if isinstance(obj, h5py.Dataset) and name.startswith("layers/"):
                _, layer, rest = name.split("/", 2)
                new.create_dataset(f"{rename(layer)}/{rest}", data=obj[()])
        old.visititems(copy)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, buf.getvalue() if item.filename == "model.weights.h5" else zin.read(item))
    return out.getvalue()


def test_weights_saved_on_windows_are_read_and_unmatched_ones_are_refused() -> None:
    src = (DATA / "preact_resnet.keras").read_bytes()
    expected = [(lay.name, lay.weight_std) for lay in check_keras(src, seeds=1, verify=False).layers]
    windows = _rewrite_weights(src, lambda layer: f"layers\\{layer}")
    with h5py.File(io.BytesIO(zipfile.ZipFile(io.BytesIO(windows)).read("model.weights.h5")), "r") as f:
        assert "layers" not in f and any(k.startswith("layers\\") for k in f)  # the test's own file
    doc = check_keras(windows, seeds=1, verify=False)
    assert [(lay.name, lay.weight_std) for lay in doc.layers] == expected
    # arrays under names that match no layer: said, not silently replaced by an initialised network
    stray = _rewrite_weights(src, lambda layer: f"weights_of_{layer}")
    with pytest.raises(InputFormatError, match="match no layer"):
        check_keras(stray, seeds=1, verify=False)
    json.loads(json.dumps(read_keras(src)))  # (the config itself reads either way)


def _variable_length_lstm() -> dict:
    return {"class_name": "Functional", "config": {"name": "melody", "layers": [
        {"class_name": "InputLayer", "name": "notes", "inbound_nodes": [],
         "config": {"name": "notes", "batch_shape": [None, None, 6], "dtype": "float32"}},
        {"class_name": "LSTM", "name": "lstm", "inbound_nodes": [[["notes", 0, 0, {}]]],
         "config": {"name": "lstm", "units": 8, "activation": "tanh", "recurrent_activation": "sigmoid",
                    "use_bias": True, "kernel_initializer": _init("GlorotUniform"),
                    "recurrent_initializer": _init("Orthogonal"), "bias_initializer": _init("Zeros"),
                    "unit_forget_bias": True, "return_sequences": False}},
        {"class_name": "Dense", "name": "out", "inbound_nodes": [[["lstm", 0, 0, {}]]],
         "config": {"name": "out", "units": 6, "activation": "softmax", "use_bias": True,
                    "kernel_initializer": _init("GlorotUniform"), "bias_initializer": _init("Zeros")}}],
        "input_layers": [["notes", 0, 0]], "output_layers": [["out", 0, 0]]}}


def test_a_variable_length_sequence_is_checked_at_the_length_given() -> None:
    model = _variable_length_lstm()
    # left dynamic, the time axis takes the default length, and the summary says so (kerassweep12)
    doc = check_keras(model, seeds=1, verify=False)
    assert sorted({s.t for s in doc.time_steps}) == list(range(32)) and "--input-shape" in doc.summary
    for shapes in ({"notes": [20, 6]}, {"input": [1, 20, 6]}):  # by name or `input`, batch or not
        doc = check_keras(model, seeds=1, verify=False, input_shapes=shapes)
        assert sorted({s.t for s in doc.time_steps}) == list(range(20))
    with pytest.raises(InputFormatError, match="dimension 2 is 6 in the model, not 5"):
        check_keras(model, input_shapes={"notes": [20, 5]})
    with pytest.raises(InputFormatError, match="the model's inputs are notes"):
        check_keras(model, input_shapes={"tokens": [20, 6]})


def test_the_cli_passes_input_shapes_to_a_keras_file(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from gradhealth.cli import main

    path = tmp_path / "melody.json"
    path.write_text(json.dumps(_variable_length_lstm()))
    assert main(["check", str(path), "--no-verify", "--seeds", "1", "--format", "json",
                 "--input-shape", "notes=12x6"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert max(s["t"] for s in doc["time_steps"]) == 11


def _conv(name: str, filters: int) -> dict:
    return _layer("Conv2D", name, filters=filters, kernel_size=[3, 3], strides=[1, 1], padding="same",
                  activation="relu", use_bias=True, kernel_initializer=_init("HeNormal"),
                  bias_initializer=_init("Zeros"))


def test_the_default_batch_keeps_a_large_models_activations_within_budget() -> None:
    from gradhealth.analysis.importers.keras import ACTIVATION_BUDGET, DEFAULT_BATCH
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec

    big = _seq(*[_conv(f"c{i}", 32) for i in range(4)], _layer("Flatten", "f"), _dense("out", 4),
               shape=[96, 96, 3])
    at_64 = make_plan(parse_spec(keras_to_spec(big, batch_size=DEFAULT_BATCH))).activation_bytes
    assert at_64 > ACTIVATION_BUDGET  # the test's own model is over the budget at 64
    doc = check_keras(big, seeds=1, verify=False)
    chosen = doc.simulation.batch_size
    assert chosen < DEFAULT_BATCH and at_64 * chosen / DEFAULT_BATCH <= ACTIVATION_BUDGET
    assert f"[batch {chosen}, chosen for this model" in doc.summary
    # a batch the user gives is the batch used, without a note
    given = check_keras(big, seeds=1, verify=False, batch_size=4)
    assert given.simulation.batch_size == 4 and "by default" not in given.summary
    small = check_keras(_seq(_dense("d", 8, "relu"), _dense("o", 2), shape=[4]), seeds=1, verify=False)
    assert small.simulation.batch_size == DEFAULT_BATCH and "by default" not in small.summary
