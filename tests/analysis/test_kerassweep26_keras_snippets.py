"""kerassweep26 (other problems): every Keras item's remedies came with PyTorch code
(``nn.init.kaiming_normal_``, ``nn.BatchNorm1d``, ``nn.Sequential(nn.Linear(1536, 1), nn.Identity())``).
A Keras file's check renders each snippet as Keras code (``snippet_framework: keras``), naming the
file's own layers; a spec's stays PyTorch. And the ReLU swap's PyTorch snippet swaps the
activations the change replaces (a softplus too), not a fixed list."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from gradhealth.core import remedies as R
from gradhealth.core.keras_snippets import keras_snippet


def _sequential(*layers: dict[str, Any], width: int = 32) -> dict[str, Any]:
    first = {"class_name": "InputLayer", "config": {"name": "inp", "batch_shape": [None, width]}}
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [first, *layers]}}


def _dense(name: str, units: int, activation: str) -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "units": units, "activation": activation,
                                              "kernel_initializer": {"class_name": "RandomNormal",
                                                                     "config": {"stddev": 0.05}}}}


def _keras_file(tmp_path: Path, config: dict[str, Any]) -> Path:
    """A Keras 3 ``.keras`` zip of ``config`` without weights (Keras' initialisers are drawn)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
    path = tmp_path / "model.keras"
    path.write_bytes(buf.getvalue())
    return path


def _snippets(doc: Any) -> dict[str, Any]:
    return {r.id: r for f in doc.findings for r in f.remedies}


def test_a_keras_files_remedies_come_as_keras_code_naming_its_layers(tmp_path: Path) -> None:
    from gradhealth.analysis.importers.keras import check_keras

    deep = [_dense(f"hidden_{k}", 32, "sigmoid") for k in range(8)]
    path = _keras_file(tmp_path, _sequential(*deep, _dense("scores", 4, "linear")))
    doc = check_keras(path, loss="mse", seeds=1, verify=False)
    got = _snippets(doc)
    assert {"relu_family_activation", "batch_norm"} <= set(got), sorted(got)
    for r in got.values():
        assert r.snippet_framework == "keras", r.id
        assert "nn." not in r.snippet and "torch." not in r.snippet, (r.id, r.snippet)
    relu = got["relu_family_activation"].snippet
    assert 'activation="relu", kernel_initializer="he_normal"' in relu and 'instead of activation="sigmoid"' in relu
    assert "hidden_0" in relu  # the file's layer names, not the spec's layers[0]
    assert "layers[" not in got["relu_family_activation"].change
    assert "layers.BatchNormalization()" in got["batch_norm"].snippet and "hidden_0" in got["batch_norm"].snippet
    # a spec checked alike keeps its PyTorch code
    from gradhealth.library import check_architecture

    spec = check_architecture("example:deep_sigmoid_mlp", seeds=1, verify=False)
    assert all(r.snippet_framework == "pytorch" for f in spec.findings for r in f.remedies)
    assert "nn.BatchNorm1d" in _snippets(spec)["batch_norm"].snippet


def test_a_keras_sigmoid_regression_head_is_told_in_keras(tmp_path: Path) -> None:
    from gradhealth.analysis.importers.keras import check_keras

    path = tmp_path / "model.json"  # a Keras model.json (a config alone)
    path.write_text(json.dumps(_sequential(_dense("hidden", 16, "relu"), _dense("price", 1, "sigmoid"))))
    doc = check_keras(path, loss="mse", seeds=1, verify=False)
    out = _snippets(doc)["output_activation"]
    assert out.snippet_framework == "keras"
    assert out.snippet.startswith('layers.Dense(1, activation=None)  # price: not activation="sigmoid"'), out.snippet


def test_training_time_remedies_in_keras() -> None:
    clip = keras_snippet(R.gradient_clipping(2.5, "the healthy norms' 99th percentile"))
    assert clip is not None and "global_clipnorm=2.5" in clip
    lower = keras_snippet(R.lower_learning_rate(0.3, learning_rate=1e-3))
    assert lower is not None and "keras.optimizers.Adam(learning_rate=0.0003)" in lower
    stop = keras_snippet(R.early_stopping(12, 5))
    assert stop is not None and 'EarlyStopping(monitor="val_loss", mode="min", patience=5, restore_best_weights=True)' \
        in stop
    better = keras_snippet(R.early_stopping(12, 5, monitor="val_accuracy", lower_is_better=False))
    assert better is not None and 'monitor="val_accuracy", mode="max"' in better
    assert keras_snippet(R.weight_decay()) is not None
    assert "from_logits=True" in (keras_snippet(R.logits_loss("cross_entropy", "out")) or "")
    # an RLHF trainer's config is no framework's code: kept
    assert keras_snippet(R.raise_kl_coefficient("the KL grew")) is None


def test_the_keras_chrono_initialiser_draws_tallec_and_olliviers_gates() -> None:
    remedy = R.gated_recurrent_cell("simple_rnn", "chrono", 500)
    code = keras_snippet(remedy, "simple_rnn")
    assert code is not None and "T_max = 500" in code and "unit_forget_bias=False, bias_initializer=chrono" in code
    scope: dict[str, Any] = {"np": np, "layers": type("L", (), {"LSTM": staticmethod(lambda *a, **k: None)}),
                             "units": 8}
    exec(code, scope)  # the snippet as pasted, Keras' LSTM stubbed
    bias = scope["chrono"]((4 * 8,))
    i, f, c, o = np.split(bias, 4)  # Keras' LSTM bias: [input, forget, cell, output] gates
    assert np.all((f >= 0) & (f <= np.log(499))) and np.allclose(i, -f) and not c.any() and not o.any()
    one = keras_snippet(R.gated_recurrent_cell("lstm", 1.0, 100, already_lstm=True))
    assert one is not None and "unit_forget_bias=True" in one


def test_the_relu_swap_replaces_the_activations_the_change_names() -> None:
    # a softplus hidden layer: the default list left it in place (kerassweep26: it named only sigmoid/tanh/...)
    swap = R.relu_family_activation("layers[0]", "relu", swapped=["softplus"])
    model = nn.Sequential(nn.Linear(4, 8), nn.Softplus(), nn.Linear(8, 2))
    exec(swap.snippet, {"nn": nn, "model": model})
    assert isinstance(model[1], nn.ReLU)
    default = R.relu_family_activation("the hidden layers")
    assert "nn.Softplus" in default.snippet and "nn.Softmax" not in default.snippet
    soft = R.relu_family_activation("attention_vec", swapped=["softmax"])
    assert 'instead of activation="softmax"' in (keras_snippet(soft, "attention_vec") or "")
