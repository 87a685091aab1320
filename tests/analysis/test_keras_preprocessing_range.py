"""``--input-range`` describes the RAW inputs a Keras model is fed, before its own preprocessing:
with it, the input's Rescaling and Normalization are applied to the range's inputs (without it they
are skipped and the standard-normal inputs stand for the normalised data). Before, the raw values
went past the skipped Rescaling into the first convolution: a healthy trained image model checked
with ``0,255`` looked exploding.

Each model is compared with the same model whose preprocessing is the identity (a Rescaling of
1, so that both take the graph door and draw the same inputs), fed the range the
preprocessing maps the raw one to (U(0, 255) / 255 is U(0, 1); (U(0, 255) - 127.5) / (255 / sqrt(12))
is U(-sqrt(3), sqrt(3))): the per-layer figures must agree, an independent run of the same network."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.cli import main
from tests.analysis.test_keras_import import _dense, _h5_keras2, _init, _layer, _seq
from tests.analysis.test_keras_sweep8_fixes import _keras3

FIGURES = ("grad_norm", "output_grad_norm", "activation_mean", "activation_std", "dead_fraction")


def _image(scale: float | None) -> dict[str, Any]:
    conv = {"kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "data_format": "channels_last",
            "dilation_rate": [1, 1], "groups": 1, "use_bias": True, "kernel_initializer": _init("HeNormal"),
            "bias_initializer": _init("Zeros")}
    layers = [_layer("Conv2D", "conv", filters=8, activation="relu", **conv),
              _layer("Conv2D", "conv_1", filters=8, activation="relu", **conv),
              _layer("Flatten", "flatten", data_format="channels_last"),
              _dense("dense", 10, "softmax")]
    if scale is not None:  # (scale 1: the identity, so that both models take the graph door)
        layers.insert(0, _layer("Rescaling", "rescaling", scale=scale, offset=0.0))
    return _seq(*layers, shape=[10, 10, 3])


def _image_weights() -> dict[str, list[np.ndarray]]:
    """He-scaled weights, as a trained ReLU network keeps them."""
    rng = np.random.default_rng(0)
    return {"conv": [rng.normal(0, math.sqrt(2 / 27), (3, 3, 3, 8)), np.zeros(8)],
            "conv_1": [rng.normal(0, math.sqrt(2 / 72), (3, 3, 8, 8)), np.zeros(8)],
            "dense": [rng.normal(0, math.sqrt(1 / 288), (288, 10)), np.zeros(10)]}


def _figures(doc: Any) -> dict[str, dict[str, float | None]]:
    return {layer.name: {k: getattr(layer, k) for k in FIGURES} for layer in doc.layers}


def _same(a: Any, b: Any) -> None:
    fa, fb = _figures(a), _figures(b)
    assert fa.keys() == fb.keys() and fa
    for name, figures in fa.items():
        for key, value in figures.items():
            other = fb[name][key]
            assert (value is None) == (other is None), (name, key)
            if value is not None and other is not None:
                assert value == pytest.approx(other, rel=1e-6, abs=1e-12), (name, key, value, other)
    assert a.status == b.status and {f.code for f in a.findings} == {f.code for f in b.findings}


def _check(data: Any, lo: float, hi: float) -> Any:
    return check_keras(data, loss="cross_entropy", seeds=2, batch_size=32, verify=False, input_range=(lo, hi))


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_a_rescaling_is_applied_to_the_raw_range(fmt: str, tmp_path: Path) -> None:
    stored = _image_weights()

    def written(cfg: dict[str, Any]) -> Any:
        if fmt == "h5":
            return _h5_keras2(cfg, {k: [(w, v) for w, v in zip(("kernel", "bias"), arrays, strict=True)]
                                    for k, arrays in stored.items()})
        folder = tmp_path / ("with" if cfg["config"]["layers"][1]["config"]["scale"] != 1 else "without")
        folder.mkdir()
        return _keras3(cfg, stored, folder)

    raw = _check(written(_image(1 / 255)), 0.0, 255.0)
    scaled = _check(written(_image(1.0)), 0.0, 1.0)
    assert scaled.status == "healthy", scaled.summary
    _same(raw, scaled)
    assert "input preprocessing applied to the raw inputs in [0, 255]: rescaling" in raw.summary
    assert "input preprocessing skipped" not in raw.summary
    # without a range the Rescaling is skipped as before: the N(0, 1) inputs are the normalised data
    plain = check_keras(written(_image(1 / 255)) if fmt == "h5" else tmp_path / "with" / "model.keras",
                        loss="cross_entropy", seeds=1, batch_size=32, verify=False)
    assert "input preprocessing skipped: rescaling" in plain.summary


def _tabular(norm: dict[str, Any] | None) -> dict[str, Any]:
    layers = [_dense("hidden", 16, "relu", _init("HeNormal")), _dense("out", 3, "softmax")]
    layers.insert(0, _layer("Normalization", "normalization", axis=[-1], invert=False, **norm) if norm is not None
                  else _layer("Rescaling", "rescaling", scale=1.0, offset=0.0))  # the identity
    return _seq(*layers, shape=[6])


def _tabular_weights() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    return {"hidden": [rng.normal(0, math.sqrt(2 / 6), (6, 16)), np.zeros(16)],
            "out": [rng.normal(0, math.sqrt(1 / 16), (16, 3)), np.zeros(3)]}


#: the statistics of U(0, 255): what adapt() finds on pixels spread over their range
PIXELS = (127.5, 255.0 ** 2 / 12)
ROOT3 = math.sqrt(3.0)


def test_a_normalization_with_its_statistics_is_applied(tmp_path: Path) -> None:
    dense = _tabular_weights()
    unit = _check(_h5_keras2(_tabular(None), {k: list(zip(("kernel", "bias"), v, strict=True))
                                              for k, v in dense.items()}), -ROOT3, ROOT3)
    # stored statistics (Keras 3's mean and variance variables), and the config's constants
    stored = {**dense, "normalization": [np.full(6, PIXELS[0]), np.full(6, PIXELS[1])]}
    from_file = _check(_keras3(_tabular({"mean": None, "variance": None}), stored, tmp_path), 0.0, 255.0)
    _same(from_file, unit)
    assert "applied to the raw inputs in [0, 255]: normalization" in from_file.summary
    cfg = _tabular({"mean": [PIXELS[0]] * 6, "variance": [PIXELS[1]] * 6})
    from_config = _check(_h5_keras2(cfg, {k: list(zip(("kernel", "bias"), v, strict=True))
                                          for k, v in dense.items()}), 0.0, 255.0)
    _same(from_config, unit)
    # the raw pixels past the Normalization would be 147 times too large: not what was checked
    assert unit.status == "healthy", unit.summary


def test_a_normalization_never_adapted_is_named_and_adapted_to_the_range(tmp_path: Path) -> None:
    dense = _tabular_weights()
    unit = _check(_h5_keras2(_tabular(None), {k: list(zip(("kernel", "bias"), v, strict=True))
                                              for k, v in dense.items()}), -ROOT3, ROOT3)
    # Keras 2's variables of a Normalization never adapted: mean 0, variance 1, count 0
    stored = {k: list(zip(("kernel", "bias"), v, strict=True)) for k, v in dense.items()}
    stored["normalization"] = [("mean", np.zeros(6)), ("variance", np.ones(6)), ("count", np.array(0, dtype=np.int64))]
    doc = _check(_h5_keras2(_tabular({"mean": None, "variance": None}), stored), 0.0, 255.0)
    _same(doc, unit)
    assert ("no statistics to apply, simulated as adapted to the range's inputs: normalization (a count of 0: "
            "never adapted; given mean 127.5, variance 5419)") in doc.summary
    # a config alone (Keras' initialisers): no statistics anywhere
    doc = check_keras(_tabular({"mean": None, "variance": None}), loss="cross_entropy", seeds=1,
                      verify=False, input_range=(0.0, 255.0))
    assert "normalization (no mean or variance in the config; given mean 127.5" in doc.summary


def test_the_cli_applies_a_rescaling_to_the_raw_range(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "model.h5"
    stored = _image_weights()
    path.write_bytes(_h5_keras2(_image(1 / 255), {k: list(zip(("kernel", "bias"), v, strict=True))
                                               for k, v in stored.items()}))
    code = main(["check", str(path), "--input-range", "0,255", "--seeds", "2", "--no-verify", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "healthy", out["summary"]
    assert "applied to the raw inputs in [0, 255]: rescaling" in out["summary"]
    assert copy.deepcopy(out["layers"])[0]["name"] == "conv"
