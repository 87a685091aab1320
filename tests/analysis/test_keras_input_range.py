"""``--input-range LO,HI`` / ``input_range`` for Keras files (kerassweep15 u02: an LSTM fed one-hot
tiles was judged on standard-normal inputs): the float inputs the simulation feeds are drawn uniform
in [LO, HI] in both doors (the spec door, with the file's weights or Keras' initialisers, and the
graph door); an Embedding's token ids keep their draw below the vocabulary."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

import gradhealth.analysis.module_check as module_check
import gradhealth.analysis.simulate as simulate
from gradhealth.analysis.graph import make_inputs
from gradhealth.analysis.importers.keras import check_keras
from gradhealth.cli import main
from tests.analysis.test_keras_import import _dense, _h5_keras2, _init, _layer, _seq
from tests.analysis.test_kerassweep15_fixes import _autoencoder


def _mlp() -> dict[str, Any]:
    return _seq(_dense("hidden", 32, "tanh", _init("GlorotUniform")), _dense("out", 4, "softmax"), shape=[64])


def _uniform_01(x: torch.Tensor) -> None:
    """``x`` drawn from U(0, 1): inside [0, 1], mean 1/2 and variance 1/12 (N(0, 1): mean 0, variance 1)."""
    assert x.is_floating_point()
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert abs(float(x.mean()) - 0.5) < 0.02 and abs(float(x.var()) - 1 / 12) < 0.01


@pytest.fixture
def fed_graph(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The first seed's inputs of every graph simulation run (the model doors' GraphRun)."""
    fed: list[torch.Tensor] = []
    real = module_check.diagnose

    def spy(run: Any, **kw: Any) -> Any:
        fed.extend(make_inputs(run.inputs, 0))
        return real(run, **kw)

    monkeypatch.setattr(module_check, "diagnose", spy)
    return fed


@pytest.fixture
def fed_spec(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every batch the spec simulation draws."""
    fed: list[torch.Tensor] = []
    real = simulate.make_batch

    def spy(plan: Any, seed: int) -> Any:
        x, target = real(plan, seed)
        fed.append(x)
        return x, target

    monkeypatch.setattr(simulate, "make_batch", spy)
    return fed


def test_the_spec_door_draws_keras_initialised_inputs_in_the_range(fed_spec: list[torch.Tensor]) -> None:
    doc = check_keras(json.dumps(_mlp()).encode(), loss="cross_entropy", seeds=1, batch_size=64, verify=False,
                      input_range=(0.0, 1.0))
    assert doc.layers and fed_spec
    for x in fed_spec:
        _uniform_01(x)


def test_the_spec_door_with_stored_weights_draws_in_the_range(fed_graph: list[torch.Tensor]) -> None:
    rng = np.random.default_rng(0)
    stored = {"hidden": [("kernel", rng.normal(0, 0.1, (64, 32))), ("bias", np.zeros(32))],
              "out": [("kernel", rng.normal(0, 0.1, (32, 4))), ("bias", np.zeros(4))]}
    doc = check_keras(_h5_keras2(_mlp(), stored), loss="cross_entropy", seeds=1, batch_size=64,
                      verify=False, input_range=(0.0, 1.0))
    assert "as stored in the file" in doc.summary
    [x] = fed_graph
    _uniform_01(x)


def test_the_graph_door_draws_in_the_range(fed_graph: list[torch.Tensor]) -> None:
    doc = check_keras(json.dumps(_autoencoder()).encode(), loss="mse", seeds=1, batch_size=64, verify=False,
                      input_range=(0.0, 1.0))
    assert [layer.name for layer in doc.layers] == ["enc_1", "enc_2", "dec_1", "dec_2"]
    [x] = fed_graph
    assert tuple(x.shape) == (64, 12)
    _uniform_01(x)


def test_an_embeddings_token_ids_keep_their_draw(fed_spec: list[torch.Tensor]) -> None:
    cfg = _seq(_layer("Embedding", "emb", input_dim=50, output_dim=8,
                      embeddings_initializer=_init("RandomUniform", minval=-0.05, maxval=0.05)),
               _layer("GlobalAveragePooling1D", "pool"), _dense("out", 3, "softmax"), shape=[10])
    check_keras(json.dumps(cfg).encode(), loss="cross_entropy", seeds=1, batch_size=64, verify=False,
                input_range=(0.0, 1.0))
    [x] = fed_spec
    assert not x.is_floating_point() and int(x.max()) < 50 and int(x.max()) > 1  # ids below 50, not in [0, 1]


def test_the_cli_takes_input_range_for_a_keras_file(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "mlp.json"
    path.write_text(json.dumps(_mlp()))
    assert main(["check", str(path), "--input-range", "1,0"]) == 2
    assert "--input-range: expected LO,HI" in capsys.readouterr().err
    code = main(["check", str(path), "--input-range", "0,1", "--seeds", "1", "--no-verify", "--format", "json"])
    assert code in (0, 1), capsys.readouterr().err


def test_a_spec_input_range_is_validated_and_normalise_inputs_removes_it() -> None:
    from gradhealth.errors import SpecError
    from gradhealth.library import check_architecture

    layers = [{"type": "linear", "out_features": 32, "activation": "tanh"}, {"type": "linear", "out_features": 4}]
    for bad in ({"shape": [64], "range": [1.0, 0.0]}, {"vocab_size": 50, "seq_len": 8, "range": [0.0, 1.0]}):
        with pytest.raises(SpecError, match="range"):
            check_architecture({"input": bad, "layers": layers, "seeds": 1})
    # raw 0..255 pixels into a tanh layer: inputs of mean 127.5 give pre-activations far past tanh's bend
    doc = check_architecture({"input": {"shape": [64], "range": [0.0, 255.0]}, "layers": layers, "seeds": 1})
    [fix] = [r for f in doc.findings if f.code == "saturation" for r in f.remedies if r.id == "normalise_inputs"]
    assert fix.patch[0] == {"op": "remove", "path": "/input/range"} and fix.verified is not None and fix.verified.fixed
