"""kerassweep26: tf.keras 2's ``TFOpLambda`` layers (``x + y``, ``x * 0.5``, ``tf.nn.relu``, ``tf.concat``:
the keras-io transformer's residual adds, geolife_transformer) were refused as custom layer code, with
a count that missed the layers reached only through an op's kwargs operand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from gradhealth.analysis.importers import ModelError
from gradhealth.analysis.importers.keras import translate_or_graph
from gradhealth.analysis.importers.keras_torch import KerasNet, load_stored


def _ref(layer: str, **kwargs: Any) -> list[Any]:
    """``[layer, node, tensor, kwargs]``: tf.keras 2 writes ``name: None`` among an op's kwargs."""
    return [layer, 0, 0, {**kwargs, "name": None}]


def _layer(cls: str, name: str, inbound: Any, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg}, "inbound_nodes": inbound}


def _op(function: str, name: str, node: Any) -> dict[str, Any]:
    """A TFOpLambda as tf.keras 2.4-2.15 writes it: the op's name, the first argument's tensor
    with the other arguments as its kwargs."""
    return _layer("TFOpLambda", name, [node], function=function, trainable=True, dtype="float32")


def _model(ops: list[dict[str, Any]], last: str) -> dict[str, Any]:
    layers = [
        _layer("InputLayer", "inp", [], batch_input_shape=[None, 6]),
        _layer("Dense", "d1", [[_ref("inp")]], units=8, activation="linear"),
        _layer("Dense", "d2", [[_ref("inp")]], units=8, activation="linear"),
        *ops,
        _layer("Dense", "out", [[_ref(last)]], units=3, activation="linear"),
    ]
    return {"class_name": "Functional", "keras_version": "2.11.0",
            "config": {"name": "m", "layers": layers, "input_layers": [["inp", 0, 0]],
                       "output_layers": [["out", 0, 0]]}}


def test_tf_ops_compute_what_tensorflow_computes() -> None:
    ops = [
        _op("__operators__.add", "tf.__operators__.add", _ref("d1", y=["d2", 0, 0])),
        _op("math.multiply", "tf.math.multiply", _ref("tf.__operators__.add", y=0.5)),
        _op("math.subtract", "tf.math.subtract", ["_CONSTANT_VALUE", -1, 2.0,
                                                  {"y": ["tf.math.multiply", 0, 0], "name": None}]),
        _op("nn.relu", "tf.nn.relu", _ref("tf.math.subtract")),
        _op("concat", "tf.concat", [_ref("tf.nn.relu", axis=-1), _ref("d2", axis=-1)]),
    ]
    _, _, graph = translate_or_graph(_model(ops, "tf.concat"))
    assert graph is not None
    rng = np.random.default_rng(26)
    w = {"d1": [rng.normal(size=(6, 8)), rng.normal(size=8)], "d2": [rng.normal(size=(6, 8)), rng.normal(size=8)],
         "out": [rng.normal(size=(16, 3)), rng.normal(size=3)]}
    net = KerasNet(graph, None).double()
    load_stored(net, w)
    x = rng.normal(size=(5, 6))
    d1, d2 = x @ w["d1"][0] + w["d1"][1], x @ w["d2"][0] + w["d2"][1]
    hidden = np.maximum(2.0 - (d1 + d2) * 0.5, 0.0)
    want = np.concatenate([hidden, d2], -1) @ w["out"][0] + w["out"][1]
    got = net(torch.tensor(x)).detach().numpy()
    assert np.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_a_residual_read_through_kwargs_reaches_every_layer() -> None:
    # x = d2 + d1 where only the kwargs operand leads back to d1's branch: d1 must be in the graph
    ops = [_op("__operators__.add", "tf.__operators__.add", _ref("d2", y=["d1", 0, 0]))]
    _, _, graph = translate_or_graph(_model(ops, "tf.__operators__.add"))
    assert graph is not None
    assert {"d1", "d2"} <= {n.name for n in graph.nodes}
    assert graph.parameters == 2 * (6 * 8 + 8) + 8 * 3 + 3


def test_an_op_with_no_layer_is_refused_naming_every_one_and_its_function() -> None:
    ops = [_op("__operators__.add", "tf.__operators__.add", _ref("d1", y=["d2", 0, 0]))]
    # four reductions, the first reached only through its kwargs operand's reader
    ops.append(_op("math.reduce_mean", "tf.math.reduce_mean", _ref("tf.__operators__.add", axis=-1)))
    for k in range(1, 4):
        ops.append(_op("math.reduce_mean", f"tf.math.reduce_mean_{k}",
                       _ref("d2", axis=-1, keepdims=True)))
    ops.append(_op("math.gather", "tf.math.gather", _ref("tf.math.reduce_mean_1", indices=[0])))
    ops.append(_op("__operators__.add", "tf.__operators__.add_1",
                   _ref("tf.math.reduce_mean_2", y=["tf.math.reduce_mean", 0, 0])))
    ops.append(_op("__operators__.add", "tf.__operators__.add_2",
                   _ref("tf.math.reduce_mean_3", y=["tf.__operators__.add_1", 0, 0])))
    ops.append(_op("__operators__.add", "tf.__operators__.add_3",
                   _ref("tf.__operators__.add_2", y=["tf.math.gather", 0, 0])))
    with pytest.raises(ModelError) as err:
        translate_or_graph(_model(ops, "tf.__operators__.add_3"))
    said = str(err.value)
    assert "TFOpLambda x5 (tf.math.reduce_mean, tf.math.reduce_mean_1, tf.math.reduce_mean_2 and 2 more)" in said
    assert "tf.math.reduce_mean x4" in said and "tf.math.gather" in said
    assert "custom layer" not in said



def _vae_sampling() -> dict[str, Any]:
    """A VAE encoder's reparameterisation as tf.keras 2 saves it: z = z_mean + z_log_var-scaled
    tf.random.normal(tf.shape(z_mean)[0], ...) (d1 as z_mean, d2 as z_log_var), the shape ops a
    TFOpLambda and a SlicingOpLambda."""
    return _model([
        _op("compat.v1.shape", "tf.compat.v1.shape", _ref("d1")),
        _layer("SlicingOpLambda", "tf.__operators__.getitem", [_ref("tf.compat.v1.shape", slice_spec={
            "start": None, "stop": None, "step": None})], function="__operators__.getitem", trainable=True,
            dtype="float32"),
        _op("random.normal", "tf.random.normal", _ref("tf.__operators__.getitem")),
        _op("math.multiply", "tf.math.multiply", _ref("tf.random.normal", y=["d2", 0, 0])),
        _op("__operators__.add", "tf.__operators__.add", _ref("d1", y=["tf.math.multiply", 0, 0])),
    ], "tf.__operators__.add")


def test_a_vae_sampling_refusal_explains_the_ops_once_and_says_what_to_check() -> None:
    """Refused ops of two classes (TFOpLambda, SlicingOpLambda) share one explanation: said once,
    with the advice for a random draw, a VAE's sampling: check the encoder up to z_mean and z_log_var."""
    from gradhealth.analysis.importers.keras_tfops import OPS_READ

    with pytest.raises(ModelError) as err:
        translate_or_graph(_vae_sampling())
    said = str(err.value)
    assert "TFOpLambda x2" in said and "SlicingOpLambda (tf.__operators__.getitem)" in said
    assert said.count(OPS_READ) == 1, said
    assert said.count("tf.random.normal is a random draw") == 1, said
    assert "up to z_mean and z_log_var" in said and "a model cut at those layers" in said


def test_a_refusal_without_a_random_op_gives_no_sampling_advice() -> None:
    ops = [_op("math.reduce_mean", "tf.math.reduce_mean", _ref("d1", axis=-1, keepdims=True))]
    with pytest.raises(ModelError) as err:
        translate_or_graph(_model(ops, "tf.math.reduce_mean"))
    assert "z_mean" not in str(err.value) and "random draw" not in str(err.value)

# --- vgg16_config: a 138M-parameter config ran for minutes with no output; remedy re-simulations --
# --- are now estimated from the check's own time per seed and skipped past a budget ---------------

def _sigmoid_keras(depth: int = 10) -> dict[str, Any]:
    layers = [_layer("InputLayer", "inp", [], batch_input_shape=[None, 32])]
    for k in range(depth):
        layers.append(_layer("Dense", f"h{k}", [[_ref(layers[-1]["name"])]], units=32, activation="sigmoid",
                             kernel_initializer={"class_name": "RandomNormal", "config": {"stddev": 0.05}}))
    layers.append(_layer("Dense", "out", [[_ref(layers[-1]["name"])]], units=4, activation="linear"))
    return {"class_name": "Functional", "keras_version": "2.11.0",
            "config": {"name": "m", "layers": layers, "input_layers": [["inp", 0, 0]],
                       "output_layers": [["out", 0, 0]]}}


def test_over_budget_is_the_estimate_of_the_next_seeds_against_the_budget() -> None:
    from gradhealth.analysis.limits import over_budget

    assert over_budget(50.0, 6.0, 1, 55.0)          # 50 + 6 > 55
    assert not over_budget(48.0, 6.0, 1, 55.0)      # 48 + 6 <= 55
    assert over_budget(40.0, 6.0, 3, 55.0)          # all three seeds: 40 + 18 > 55
    assert over_budget(0.0, 1e-6, 1, 0.0)           # a zero budget verifies nothing


def test_a_spec_past_the_budget_leaves_its_remedies_unverified_and_names_the_setting() -> None:
    from gradhealth.library import check_architecture
    from gradhealth.settings import Settings

    tight = Settings().model_copy(update={"limits": Settings().limits.model_copy(update={"max_verify_seconds": 0.0})})
    doc = check_architecture("example:deep_sigmoid_mlp", seeds=1, settings=tight)
    remedies = [r for f in doc.findings for r in f.remedies if r.patch]
    assert remedies and all(r.unverified == "over_budget" and r.verified is None for r in remedies)
    assert doc.simulation.remedies_simulated == 0
    assert any("GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS" in n for n in doc.simulation.notes)
    roomy = check_architecture("example:deep_sigmoid_mlp", seeds=1)
    assert roomy.simulation.remedies_simulated > 0 and not roomy.simulation.notes


def test_a_keras_graph_past_the_budget_leaves_its_remedies_unverified(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradhealth.analysis.importers.keras import check_keras

    monkeypatch.setenv("GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS", "0")
    # the graph door: `x * 0.5` (an op with a number) keeps it off the spec door
    cfg = _sigmoid_keras()
    layers = cfg["config"]["layers"]
    layers.insert(-1, _op("math.multiply", "tf.math.multiply", _ref(layers[-2]["name"], y=0.5)))
    layers[-1]["inbound_nodes"] = [[_ref("tf.math.multiply")]]
    assert translate_or_graph(cfg)[2] is not None
    doc = check_keras(cfg, seeds=1)
    simulated = [r for f in doc.findings for r in f.remedies if r.unverified != "training_time"
                 and r.unverified != "not_simulable"]
    assert doc.findings and simulated
    assert all(r.unverified == "over_budget" for r in simulated)
    assert doc.simulation.remedies_simulated == 0
    assert any("GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS" in n for n in doc.simulation.notes)


def test_a_quiet_cli_check_says_once_that_it_is_still_working(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from gradhealth import cli

    monkeypatch.setattr(cli, "QUIET_NOTICE_S", 0.0)
    show = cli._progress(False)
    show(0.3, "seed 1/3")
    show(0.5, "verifying vanishing_gradient: he_init (1/3)")
    err = capsys.readouterr().err
    assert err.count("still working") == 1 and "(seed 1/3)" in err
    assert "--progress" in err and "GRADHEALTH_LIMITS__MAX_VERIFY_SECONDS" in err


# --- boston_attention_json: a softmax gating the input (Keras' classic attention) was read as a ---
# --- misplaced hidden softmax, its remedy's code never touching a softmax --------------------------

def _attention(gated: bool) -> dict[str, Any]:
    """Input(26) -> Dense(26, softmax) -> Multiply([input, scores]) -> Dense(32, relu) -> Dense(1);
    ``gated`` False: the Dense(32) reads the softmax itself (a hidden softmax)."""
    att = _layer("Dense", "attention_vec", [[_ref("inp")]], units=26, activation="softmax")
    mul = _layer("Multiply", "attention_mul", [[_ref("inp"), _ref("attention_vec")]])
    hidden = _layer("Dense", "h", [[_ref("attention_mul" if gated else "attention_vec")]], units=32,
                    activation="relu")
    layers = [_layer("InputLayer", "inp", [], batch_input_shape=[None, 26]), att,
              *([mul] if gated else []), hidden, _layer("Dense", "out", [[_ref("h")]], units=1, activation="linear")]
    return {"class_name": "Functional", "keras_version": "2.11.0",
            "config": {"name": "m", "layers": layers, "input_layers": [["inp", 0, 0]],
                       "output_layers": [["out", 0, 0]]}}


def _hidden_softmax(doc: Any) -> list[Any]:
    return [f for f in doc.findings if f.evidence.model_dump().get("hidden_softmax")]


def test_a_softmax_gating_the_input_is_attention_not_a_hidden_activation() -> None:
    from gradhealth.analysis.importers.keras import check_keras

    gated = check_keras(_attention(True), loss="mse", seeds=1, verify=False)
    assert not _hidden_softmax(gated), [(f.code, f.summary) for f in gated.findings]
    # the same softmax read by the Dense itself is one: a flat softmax over 26 features, gain about 1/26
    plain = check_keras(_attention(False), loss="mse", seeds=1, verify=False)
    found = _hidden_softmax(plain)
    assert found and found[0].evidence.model_dump()["value"] < 0.25


def test_the_hidden_softmax_remedys_code_replaces_the_softmax() -> None:
    from torch import nn

    from gradhealth.analysis.importers.keras import check_keras
    from gradhealth.core import remedies as R

    doc = check_keras(_attention(False), loss="mse", seeds=1, verify=False)
    swap = next(r for f in _hidden_softmax(doc) for r in f.remedies if r.id == "relu_family_activation")
    # a Keras file's is Keras code naming the softmax it replaces; the module check's PyTorch one swaps nn.Softmax
    assert swap.snippet_framework == "keras" and 'instead of activation="softmax"' in swap.snippet
    assert "attention_vec" in swap.snippet
    torch_swap = R.relu_family_activation("attention_vec", "relu", swapped=("softmax",))
    model = nn.Sequential(nn.Linear(26, 26), nn.Softmax(dim=-1), nn.Linear(26, 32), nn.ReLU(), nn.Linear(32, 1))
    exec(torch_swap.snippet, {"nn": nn, "model": model})  # the snippet as a user pastes it
    assert not any(isinstance(m, nn.Softmax) for m in model.modules())
    assert isinstance(model[1], nn.ReLU)


# --- wide_mlp_config: the parameter-limit refusal named no setting to raise it --------------------

def test_a_parameter_limit_refusal_names_the_setting_that_raises_it() -> None:
    from gradhealth.analysis.plan import make_plan
    from gradhealth.analysis.spec import parse_spec
    from gradhealth.errors import LimitExceeded
    from gradhealth.settings import Limits

    small = Limits(max_parameters=1_000)
    spec = {"name": "wide", "input": {"shape": [64]}, "layers": [{"type": "linear", "out_features": 64}],
            "loss": {"type": "mse"}}
    with pytest.raises(LimitExceeded) as err:  # 64 * 64 + 64 = 4,160 parameters
        make_plan(parse_spec(spec), small)
    assert "GRADHEALTH_LIMITS__MAX_PARAMETERS" in str(err.value.detail) + str(err.value)
    cfg = _model([_op("math.multiply", "tf.math.multiply", _ref("d1", y=0.5))], "tf.math.multiply")
    with pytest.raises(LimitExceeded) as err:  # the graph door: d1 and out, (6 * 8 + 8) + (8 * 3 + 3) = 83
        translate_or_graph(cfg, limits=Limits(max_parameters=50))
    assert "83 parameters" in str(err.value) and "GRADHEALTH_LIMITS__MAX_PARAMETERS" in str(err.value)


# --- plain30_relu_cnn: remedy lines named all 30 layers (600+ characters) -------------------------

def test_remedies_over_many_layers_name_the_first_few_and_count_the_rest() -> None:
    from gradhealth.analysis.importers.keras import check_keras

    cfg = _sigmoid_keras(depth=12)  # h0 .. h11, vanishing
    layers = cfg["config"]["layers"]
    layers.insert(-1, _op("math.multiply", "tf.math.multiply", _ref(layers[-2]["name"], y=0.5)))
    layers[-1]["inbound_nodes"] = [[_ref("tf.math.multiply")]]
    doc = check_keras(cfg, seeds=1, verify=False)
    changes = {r.id: r.change for f in doc.findings for r in f.remedies}
    for rid in ("batch_norm", "residual_connections"):
        assert "h0, h1, h2, h3 and 8 more" in changes[rid], changes[rid]
        assert "h11" not in changes[rid]


# --- sunspot_conv_lstm: "zero for all 192 samples" beside "not judged dead" read as a contradiction -

def test_a_dead_units_note_says_the_units_are_off_and_what_the_count_is_compared_with() -> None:
    from tests.analysis.test_dead_unit_counts import _check

    [note] = [f for f in _check(8, 5).findings if f.code == "dead_units"]
    assert "off on these inputs, but not judged dead" in note.summary
    assert "5 of 8 units is within chance of half, the share of a layer's units that inputs alike switch off" \
        in note.summary
