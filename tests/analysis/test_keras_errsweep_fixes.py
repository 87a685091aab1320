"""Errsweep E12: a Keras file whose translated spec is refused is refused with a pointer into the
user's file (``/config/layers/1/config/rate``) and the Keras layer's name, never with a pointer into
the spec the importer made of it (``/layers/0/p``) or its unit names (``layers[0].linear``). Also:
shape products in the Keras importer are exact Python integers (numpy's int64 wraps).

The files are written here without TensorFlow: a ``.keras`` zip whose ``config.json`` is the config,
and an ``.h5`` whose root attribute ``model_config`` is, as in tests/analysis/test_keras_import.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradhealth import check_keras
from gradhealth.analysis.importers import keras as keras_importer
from gradhealth.analysis.importers.keras import translate_or_graph
from gradhealth.analysis.importers.keras_pointers import relocated
from gradhealth.errors import LimitExceeded, Problem, SpecError, cuda_unavailable
from gradhealth.settings import Limits
from tests.analysis.test_keras_import import _dense, _layer, _seq


def _keras_zip(cfg: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
    return buf.getvalue()


def _h5(cfg: dict[str, Any]) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
    return buf.getvalue()


def _dropout_rate_5() -> dict[str, Any]:
    return _seq(_layer("Dropout", "dropout_1", rate=5), _dense("dense_1", 4), shape=[10])


def _no_spec_leak(exc: SpecError) -> None:
    text = exc.detail + " " + " ".join(str(p) for p in exc.problems)
    assert "/layers/0" not in text and "layers[0]" not in text, text


@pytest.mark.parametrize("write", [_keras_zip, _h5])
def test_a_dropout_rate_out_of_range_points_at_the_keras_rate(write: Any) -> None:
    with pytest.raises(SpecError) as refused:
        check_keras(write(_dropout_rate_5()), seeds=1, verify=False)
    [problem] = refused.value.problems
    assert problem.pointer == "/config/layers/1/config/rate"
    assert "dropout_1" in problem.message and "Dropout" in problem.message
    assert "less than 1" in problem.message  # what is wrong stays said
    assert refused.value.detail.startswith("/config/layers/1/config/rate: ")
    _no_spec_leak(refused.value)


def test_the_api_precheck_door_refuses_with_the_keras_pointer_too() -> None:
    # the model route's torch-free check before a job exists goes through translate_or_graph
    with pytest.raises(SpecError) as refused:
        translate_or_graph(_dropout_rate_5(), limits=Limits())
    assert [p.pointer for p in refused.value.problems] == ["/config/layers/1/config/rate"]
    _no_spec_leak(refused.value)


def test_a_huge_input_width_is_refused_at_the_keras_dense_layer_it_makes_too_big() -> None:
    cfg = _seq(_dense("dense_1", 4), shape=[10**12])
    with pytest.raises(LimitExceeded) as refused:
        check_keras(_h5(cfg), seeds=1, verify=False)
    pointers = [p.pointer for p in refused.value.problems]
    assert "/config/layers/1" in pointers
    message = next(p.message for p in refused.value.problems if p.pointer == "/config/layers/1")
    assert "Dense layer 'dense_1'" in message and "too many parameters" in message
    _no_spec_leak(refused.value)


def test_an_input_size_over_a_limit_points_at_the_keras_batch_shape() -> None:
    cfg = _seq(_layer("SimpleRNN", "rnn_1", units=2), _dense("out", 1), shape=[10**7, 8])
    with pytest.raises(LimitExceeded) as refused:
        check_keras(_keras_zip(cfg), seeds=1, verify=False)
    [problem] = refused.value.problems
    assert problem.pointer == "/config/layers/0/config/batch_shape/1"  # after the batch size
    assert "input_layer" in problem.message and "time steps" in problem.message
    assert "/input/shape" not in refused.value.detail


def test_an_image_input_maps_channels_first_sizes_back_to_channels_last() -> None:
    cfg = _seq(_layer("Conv2D", "conv", filters=2, kernel_size=3, activation="relu"), _layer("Flatten", "flat"),
               _dense("out", 1), shape=[6, 7, 3])
    spec, origins, _ = translate_or_graph(cfg)
    assert spec is not None and origins is not None and spec["input"]["shape"] == [3, 6, 7]
    assert [origins[f"/input/shape/{i}"].where for i in range(3)] == [
        "/config/layers/0/config/batch_shape/3", "/config/layers/0/config/batch_shape/1",
        "/config/layers/0/config/batch_shape/2"]


def test_a_legacy_sequential_and_a_functional_model_point_at_their_own_layer_lists() -> None:
    legacy = {"class_name": "Sequential", "config": _dropout_rate_5()["config"]["layers"]}  # Keras <= 2.2.2
    with pytest.raises(SpecError) as refused:
        check_keras(json.dumps(legacy).encode(), seeds=1, verify=False)
    assert [p.pointer for p in refused.value.problems] == ["/config/1/config/rate"]

    def node(cls: str, name: str, src: str | None, **cfg: Any) -> dict[str, Any]:
        history = [] if src is None else [{"args": [{"class_name": "__keras_tensor__",
                                                     "config": {"keras_history": [src, 0, 0]}}], "kwargs": {}}]
        return {**_layer(cls, name, **cfg), "name": name, "inbound_nodes": history}

    functional = {"class_name": "Functional", "config": {
        "name": "f", "input_layers": [["inp", 0, 0]], "output_layers": [["out", 0, 0]], "layers": [
            node("Dense", "out", "drop", units=1),  # listed out of order: the pointer is its place in the file
            node("InputLayer", "inp", None, batch_shape=[None, 8]),
            node("Dropout", "drop", "inp", rate=-0.5)]}}
    with pytest.raises(SpecError) as refused:
        check_keras(_keras_zip(functional), seeds=1, verify=False)
    assert [p.pointer for p in refused.value.problems] == ["/config/layers/2/config/rate"]
    assert "'drop'" in refused.value.problems[0].message


def test_a_spec_field_with_no_keras_key_names_the_layer_it_was_translated_from() -> None:
    _, origins, _ = translate_or_graph(_seq(_dense("dense_1", 4), shape=[8]))
    refusal = SpecError("/layers/0/somewhere: odd", [Problem("/layers/0/somewhere", "odd")])
    [problem] = relocated(refusal, origins).problems
    assert problem.pointer == "/config/layers/1"
    assert "translated layer of Keras layer 'dense_1' (Dense)" in problem.message and "odd" in problem.message
    # the spec's units (units -> out_features) are the Keras units; an initializer's field its initializer
    assert relocated(SpecError.at("/layers/0/out_features", "x"), origins).problems[0].pointer == \
        "/config/layers/1/config/units"
    assert relocated(SpecError.at("/layers/0/init/std", "x"), origins).problems[0].pointer == \
        "/config/layers/1/config/kernel_initializer"
    # what is no place in the file (an option, the device) is passed on as it was
    for kept in (cuda_unavailable(), SpecError.at("/seeds", "too many")):
        assert relocated(kept, origins) is kept


def test_the_flatten_permutation_counts_with_exact_integers(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    class Stop(Exception):
        pass

    def arange(n: int, *args: Any, **kwargs: Any) -> Any:
        asked.append(int(n))
        raise Stop

    monkeypatch.setattr(np, "arange", arange)
    with pytest.raises(Stop):
        keras_importer._flatten_permutation((1, 2**32, 2**32))  # int64: 2**64 wraps to 0
    assert asked == [2**64]


def test_cli_refuses_the_file_with_the_keras_pointer_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(_keras_zip(_dropout_rate_5()))
    run = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", str(path), "--seeds", "1",
                          "--no-verify", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "/config/layers/1/config/rate" in run.stderr and "dropout_1" in run.stderr
    assert "/layers/0/p" not in run.stderr and "Traceback" not in run.stderr
