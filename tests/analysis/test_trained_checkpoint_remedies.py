"""kerassweep24 (disagreements 1-3, ranked 1-2) and onnxsweep22 (cartpole): a model file's stored
weights are a trained checkpoint.

1. Remedies that re-draw weights (he_init, xavier_init, orthogonal_init, ...) were offered first and
   marked FIXED on checkpoints (a trained char-RNN: orthogonal init "FIXED 1.91e+06 -> 6.03e-05"),
   though re-initialising throws the training away and the re-simulation measured an untrained
   network. With stored weights they are advice for retraining from scratch (``for_retraining``),
   listed after what applies to the checkpoint, their verification a fresh network's
   (``verified.fresh_weights``). A live module is the network about to be trained: unchanged.
2. Trained regressors on raw targets (stock prices: output std 3.6e4-6e4 at weights under He's
   scale) read as ``exploding_gradient`` errors "weights too large" with he_init first. The finding
   now names the output's learned scale and offers ``normalise_targets`` first; a ``--target-range``
   at that scale makes it a note. Weights too large stay an error, stored or reinitialised.
3. kerassweep30 W2: a regressor trained on raw salaries grows its weights too (5-12x the scale that
   keeps the signal), which excluded it from 2: "weights too large" with clipping, a lower rate and
   he_init. Its output is still ten times or more what i.i.d. weights of those scales give (aligned
   layers, which training builds and an init does not), so it is named as the targets' scale, with
   ``normalise_targets`` first; i.i.d. weights too large, a classifier and a reinitialised file keep
   their finding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gradhealth.analysis.importers.keras import check_keras
from gradhealth.analysis.module_check import check_module, check_onnx
from gradhealth.report.text import render_text
from tests.analysis.onnx_models import export
from tests.keras_files import keras2_h5

WIDTH, DEPTH, FEATURES = 32, 6, 16


def _init(stddev: float | None) -> dict[str, Any]:
    if stddev is None:
        return {"class_name": "GlorotUniform", "config": {"seed": None}}
    return {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": stddev, "seed": None}}


def _dense(name: str, units: int, act: str, stddev: float | None = None) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "units": units, "activation": act,
                                              "use_bias": True, "kernel_initializer": _init(stddev),
                                              "bias_initializer": {"class_name": "Zeros", "config": {}}}}


def _regressor(stddev: float | None = None) -> dict[str, Any]:
    layers = [{"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, FEATURES]}}]
    layers += [_dense(f"d{k}", WIDTH, "relu", stddev) for k in range(DEPTH)]
    layers.append(_dense("price", 1, "linear", stddev))
    return {"class_name": "Sequential", "config": {"name": "regressor", "layers": layers}}


def _file(kernels: list[np.ndarray], stddev: float | None = None) -> bytes:
    names = [f"d{k}" for k in range(DEPTH)] + ["price"]
    stored = {n: [("kernel", k), ("bias", np.zeros(k.shape[1]))] for n, k in zip(names, kernels, strict=True)}
    return keras2_h5(_regressor(stddev), stored, attrs={"keras_version": "2.13.1", "training_config": (
        '{"loss": "mse", "metrics": [], "optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 0.001}}}')})


def _learned_kernels(rng: np.random.Generator) -> list[np.ndarray]:
    """A trained regressor's kernels in kind: each hidden kernel |N(0, s^2)| at s = He's std, so its
    std is 0.6 of He's (sqrt(1 - 2/pi)) while its positive mean lines every layer up with the last,
    multiplying the positive ReLU signal by fan_in * 0.8 s = 5.1 per layer: the gain a network
    learns to output targets in the thousands, which no i.i.d. draw of that scale gives."""
    he = math.sqrt(2 / WIDTH)
    first = rng.normal(0, math.sqrt(2 / FEATURES), (FEATURES, WIDTH))
    return [first, *(np.abs(rng.normal(0, he, (WIDTH, WIDTH))) for _ in range(DEPTH - 1)),
            np.abs(rng.normal(0, he, (WIDTH, 1)))]


def _forward(kernels: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    for k in kernels[:-1]:
        x = np.maximum(x @ k, 0.0)
    return x @ kernels[-1]


def _finding(doc: Any, code: str = "exploding_gradient") -> Any:
    return next(f for f in doc.findings if f.code == code)


def test_a_trained_regressors_learned_output_scale_is_named_and_its_targets_scaled_first() -> None:
    kernels = _learned_kernels(np.random.default_rng(0))
    doc = check_keras(_file(kernels), seeds=2, batch_size=64)
    found = _finding(doc)
    assert found.severity in ("warning", "error")
    # the output's scale, against an independent numpy forward of the same weights on N(0, 1) inputs
    y = _forward(kernels, np.random.default_rng(1).standard_normal((20000, FEATURES)))
    rms = float(np.sqrt(np.mean(y ** 2)))
    ev = found.evidence.model_dump()
    assert ev["unscaled_targets"] is True and ev["output_layer"] == "price"
    assert 0.5 < ev["output_rms"] / rms < 2
    # the weights' own scale gives under 1x per layer: 0.6 of He's on every hidden layer
    assert ev["weight_scale_output_gain"] < 1
    assert "weights too large" not in found.explanation and "raw scale" in found.summary
    # the targets first, as a change to training; a new init last, for retraining only
    ids = [r.id for r in found.remedies]
    assert ids[0] == "normalise_targets" and found.remedies[0].unverified == "training_time"
    he = next(r for r in found.remedies if r.id == "he_init")
    assert he.for_retraining and ids.index("he_init") > ids.index("gradient_clipping")
    assert all(r.for_retraining for r in found.remedies[ids.index("he_init"):])


def test_a_target_range_at_the_outputs_scale_makes_the_learned_gain_a_note() -> None:
    kernels = _learned_kernels(np.random.default_rng(0))
    y = _forward(kernels, np.random.default_rng(1).standard_normal((20000, FEATURES)))
    # targets uniform with the outputs' own mean and std (independent of the check's figures)
    half = math.sqrt(3) * float(y.std())
    doc = check_keras(_file(kernels), seeds=2, batch_size=64,
                      target_range=(float(y.mean()) - half, float(y.mean()) + half))
    found = _finding(doc)
    assert found.severity == "info" and found.evidence.model_dump()["output_on_targets"] is True
    assert doc.status == "healthy"
    # targets of unit scale do not match: the growth stays what it was
    unit = check_keras(_file(kernels), seeds=2, batch_size=64, target_range=(-1.0, 1.0))
    assert _finding(unit).severity == found_at_default(kernels)


def found_at_default(kernels: list[np.ndarray]) -> str:
    return str(_finding(check_keras(_file(kernels), seeds=2, batch_size=64)).severity)


def test_weights_too_large_stay_an_error_stored_or_reinitialised() -> None:
    rng = np.random.default_rng(0)
    # N(0, 2^2) weights: 8x He's std at width 32, a gain of 8 per layer by their scale alone
    oversized = [rng.normal(0, 2.0, (FEATURES, WIDTH)), *(rng.normal(0, 2.0, (WIDTH, WIDTH)) for _ in range(DEPTH - 1)),
                 rng.normal(0, 2.0, (WIDTH, 1))]
    stored = _finding(check_keras(_file(oversized), seeds=2, batch_size=64))
    assert stored.severity == "error" and not stored.evidence.model_dump().get("unscaled_targets")
    he = next(r for r in stored.remedies if r.id == "he_init")
    assert he.for_retraining and he.verified is not None and he.verified.fresh_weights
    # the same architecture drawn by its initialiser (stddev 2) is an untrained network: he_init is its fix
    drawn = _finding(check_keras(_file(oversized, stddev=2.0), weights="reinitialise", seeds=2, batch_size=64))
    assert drawn.severity == "error" and not drawn.evidence.model_dump().get("unscaled_targets")
    assert drawn.remedies[0].id == "he_init" and not drawn.remedies[0].for_retraining
    assert drawn.remedies[0].verified is not None and drawn.remedies[0].verified.fixed
    assert not drawn.remedies[0].verified.fresh_weights


def _oversized_classifier() -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(6):
        layers += [nn.Linear(32, 32), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(32, 10))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                # std 1.3: a scale no init family draws at this fan-in, standing for trained weights
                # (an N(0, 1) draw is read as a fresh initialisation: onnxsweep24)
                m.weight.normal_(0, 1.3)
    return net


def test_an_onnx_checkpoints_init_remedies_are_for_retraining_and_never_read_as_fixed() -> None:
    net = _oversized_classifier()
    doc = check_onnx(export(net, torch.randn(4, 32)), seeds=2)
    found = _finding(doc)
    he = next(r for r in found.remedies if r.id == "he_init")
    assert he.for_retraining and he.change.startswith("when you train this architecture again from scratch")
    assert he.verified is not None and he.verified.fresh_weights and he.verified.fixed
    assert "a freshly initialised network of this architecture measures" in (he.verified.note or "")
    # not ahead of a remedy that applies to the checkpoint itself
    assert found.remedies.index(he) > next(i for i, r in enumerate(found.remedies) if not r.for_retraining)
    text = render_text(doc)
    line = next(s for s in text.splitlines() if "he_init" in s and "[" in s)
    assert "FIXED" not in line and "fixed on fresh weights" in line
    # reinitialised, the file is the architecture: nothing is for retraining
    again = check_onnx(export(net, torch.randn(4, 32)), seeds=2, weights="reinitialise")
    assert not any(r.for_retraining for f in again.findings for r in f.remedies)


def test_a_live_module_is_the_network_about_to_be_trained_its_init_remedy_a_fix() -> None:
    doc = check_module(_oversized_classifier(), torch.randn(8, 32), seeds=2)
    found = _finding(doc)
    assert found.remedies[0].id == "he_init" and not found.remedies[0].for_retraining
    assert found.remedies[0].verified is not None and not found.remedies[0].verified.fresh_weights


#: A small raw-target regressor (features, hidden widths, 1 output) and each layer's scale gain
#: sqrt(fan_in * std^2 / sigma_w2*), sigma_w2* 2 under ReLU and 1 for the linear output
_SALARY = {2: ((12, 64, 32, 1), (5.0, 10.0, 12.0)), 3: ((12, 64, 64, 32, 1), (5.0, 5.0, 5.0, 5.0))}


def _salary_kernels(hidden: int, *, aligned: bool, gains: tuple[float, ...] | None = None) -> list[np.ndarray]:
    """Kernels at several times the scale that keeps the signal. ``aligned``: every kernel after the
    first |N(0, s^2)|, of one sign, as a regression trained on raw targets in the tens of thousands
    grows them: each multiplies the positive mean of its ReLU inputs by about fan_in * 0.8 s, which no
    i.i.d. draw of that RMS does. Otherwise i.i.d. N(0, s^2): an init too large."""
    widths, default = _SALARY[hidden]
    rng = np.random.default_rng(0)
    out = []
    for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        crit = 1.0 if k == len(widths) - 2 else 2.0
        w = rng.normal(0, (gains or default)[k] * math.sqrt(crit / fan_in), (fan_in, fan_out))
        out.append(np.abs(w) if aligned and k > 0 else w)
    return out


def _salary_file(kernels: list[np.ndarray], loss: str = "mae") -> bytes:
    names = [f"h{k}" for k in range(len(kernels) - 1)] + ["salary"]
    layers = [{"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [None, kernels[0].shape[0]]}}]
    layers += [_dense(n, k.shape[1], "relu") for n, k in zip(names[:-1], kernels, strict=False)]
    layers.append(_dense("salary", 1, "linear"))
    stored = {n: [("kernel", k), ("bias", np.zeros(k.shape[1]))] for n, k in zip(names, kernels, strict=True)}
    return keras2_h5({"class_name": "Sequential", "config": {"name": "salary", "layers": layers}}, stored,
                     attrs={"keras_version": "2.13.1", "training_config": (
                         f'{{"loss": "{loss}", "metrics": [], "optimizer_config": {{"class_name": "Adam", '
                         '"config": {"learning_rate": 0.001}}}')})


def _iid_output_rms(kernels: list[np.ndarray]) -> float:
    """The output RMS i.i.d. weights of these kernels' RMS give unit-scale inputs (mean-field theory:
    each layer multiplies the signal's RMS by sqrt(fan_in * E[W^2] / sigma_w2*))."""
    crit = [2.0] * (len(kernels) - 1) + [1.0]
    return math.prod(math.sqrt(k.shape[0] * float(np.mean(k ** 2)) / c) for k, c in zip(kernels, crit, strict=True))


def _salary_forward(kernels: list[np.ndarray]) -> np.ndarray:
    return _forward(kernels, np.random.default_rng(1).standard_normal((20000, kernels[0].shape[0])))


@pytest.mark.parametrize("hidden", [2, 3])
def test_a_raw_target_regressors_grown_weights_are_named_as_its_output_scale(hidden: int) -> None:
    kernels = _salary_kernels(hidden, aligned=True)
    y = _salary_forward(kernels)
    rms, iid = float(np.sqrt(np.mean(y ** 2))), _iid_output_rms(kernels)
    assert rms > 10 * iid  # (the file's premise, independently: aligned, not only large)
    doc = check_keras(_salary_file(kernels), seeds=2, batch_size=64)
    found = _finding(doc)
    assert found.severity == "warning"
    ev = found.evidence.model_dump()
    # two hidden layers: the shallow chain's blow-up from the readout; three: the growth through depth
    assert ("readout_grad_ratio" in ev) == (hidden == 2)
    assert ev["unscaled_targets"] is True and ev["output_layer"] == "salary" and ev.get("oversized_init") is not True
    assert 0.5 < ev["output_rms"] / rms < 2
    assert ev["weight_scale_output_rms"] == pytest.approx(iid, rel=0.05)
    assert ev["output_scale_excess"] > 10 and ev["oversized_layers"]
    assert "raw scale" in found.summary and "too large for their activations" not in found.summary
    assert "{" not in found.summary and "--target-range" in found.explanation
    # the targets first, with how to have them judged; clipping, a lower rate and a new init after
    ids = [r.id for r in found.remedies]
    assert ids[0] == "normalise_targets" and "--target-range" in found.remedies[0].change
    assert ids.index("gradient_clipping") > 0 and ids.index("lower_learning_rate") > 0
    assert next(r for r in found.remedies if r.id == "he_init").for_retraining


def test_a_target_range_at_a_grown_regressors_output_scale_makes_it_a_note() -> None:
    kernels = _salary_kernels(2, aligned=True)
    y = _salary_forward(kernels)
    half = math.sqrt(3) * float(y.std())
    doc = check_keras(_salary_file(kernels), seeds=2, batch_size=64,
                      target_range=(float(y.mean()) - half, float(y.mean()) + half))
    found = _finding(doc)
    assert found.severity == "info" and found.evidence.model_dump()["output_on_targets"] is True
    assert doc.status == "healthy"


def test_iid_weights_too_large_a_classifier_and_a_reinitialised_file_keep_their_finding() -> None:
    # i.i.d. weights whose scale alone gives an output in the thousands: an init too large
    kernels = _salary_kernels(2, aligned=False, gains=(8.0, 16.0, 80.0))
    y = _salary_forward(kernels)
    assert float(np.sqrt(np.mean(y ** 2))) < 10 * _iid_output_rms(kernels)
    found = _finding(check_keras(_salary_file(kernels, "mse"), seeds=2, batch_size=64))
    ev = found.evidence.model_dump()
    assert found.severity in ("warning", "error") and ev["oversized_init"] is True
    assert not ev.get("unscaled_targets") and "normalise_targets" not in [r.id for r in found.remedies]
    assert "too large for their activations" in found.summary
    # the grown regressor's weights under a classification loss, or drawn afresh: no targets to name
    grown = _salary_file(_salary_kernels(2, aligned=True), "binary_crossentropy")
    assert not _finding(check_keras(grown, seeds=2, batch_size=64)).evidence.model_dump().get("unscaled_targets")
    drawn = check_keras(_salary_file(_salary_kernels(2, aligned=True)), weights="reinitialise", seeds=2, batch_size=64)
    assert not any(f.evidence.model_dump().get("unscaled_targets") for f in drawn.findings)
