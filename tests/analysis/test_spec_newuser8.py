"""newuser8 #10: a repeated lstm whose `output` is `last` was told it "needs a sequence input" when
its input was one (the second copy reads the first's final state); the error now says so and what to
set. newuser8 #11: a typo in an enumerated value got only the list of allowed values; it now gets a
"did you mean", as a typo in a field name does."""

from __future__ import annotations

import pytest

from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import parse_spec
from gradhealth.errors import SpecError


def _lstm_spec(**lstm: object) -> dict:
    return {"input": {"shape": [400, 64]}, "batch_size": 4, "loss": {"type": "cross_entropy"},
            "layers": [{"type": "lstm", "hidden_size": 128, "repeat": 4, **lstm},
                       {"type": "linear", "out_features": 3}]}


def test_a_repeated_lstm_with_output_last_names_the_cause_and_the_fix():
    with pytest.raises(SpecError) as caught:
        make_plan(parse_spec(_lstm_spec()))
    [problem] = caught.value.problems
    assert problem.pointer == "/layers/0"
    assert "repeat 2 of 4 reads repeat 1's output [128]" in problem.message
    assert "not the layer's input [400, 64]" in problem.message
    assert "`output: sequence`" in problem.message and "`num_layers: 4`" in problem.message


@pytest.mark.parametrize("fix", [{"output": "sequence"}, {"repeat": 1, "num_layers": 4}])
def test_either_fix_the_error_names_plans(fix):
    spec = _lstm_spec(**fix)
    if "output" in fix:  # the last copy outputs the sequence too: an lstm reads it down to its state
        spec["layers"].insert(1, {"type": "lstm", "hidden_size": 8})
    make_plan(parse_spec(spec))


def test_a_repeated_lstm_inside_a_block_is_named_by_its_path():
    spec = {"input": {"shape": [8, 8]}, "batch_size": 4, "loss": {"type": "cross_entropy"},
            "layers": [{"type": "block", "layers": [{"type": "gru", "hidden_size": 5, "repeat": 2}]},
                       {"type": "linear", "out_features": 3}]}
    with pytest.raises(SpecError) as caught:
        make_plan(parse_spec(spec))
    [problem] = caught.value.problems
    assert problem.pointer == "/layers/0/layers/0"
    assert problem.message.startswith("layers[0].block.layers[0] repeat 2 of 2 reads repeat 1's output [5]")


BASE = {"input": {"shape": [8]}, "batch_size": 4, "loss": {"type": "mse"}}


@pytest.mark.parametrize("layer, top, pointer, hint", [
    # the closest first; hard_sigmoid is a spec activation too, and as near a spelling
    ({"activation": "sigmod"}, {}, "/layers/0/activation", "did you mean 'sigmoid' or 'hard_sigmoid'?"),
    ({"activation": "LeakyReLU"}, {}, "/layers/0/activation", "did you mean 'leaky_relu'?"),
    ({"activation": "logistic"}, {}, "/layers/0/activation", "did you mean 'sigmoid'?"),
    ({"init": {"scheme": "kaiming"}}, {}, "/layers/0/init/scheme",
     "did you mean 'kaiming_normal' or 'kaiming_uniform'?"),
    ({"init": "glorot_unifrom"}, {}, "/layers/0/init", "did you mean 'glorot_uniform' or 'glorot_normal'?"),
    ({}, {"loss": {"type": "crossentropy"}}, "/loss/type", "did you mean 'cross_entropy'?"),
    ({}, {"loss": {"type": "bce"}}, "/loss/type", "did you mean 'binary_cross_entropy'?"),
    ({}, {"optimizer": {"type": "sgdd", "lr": 0.1}}, "/optimizer/type", "did you mean 'sgd'?"),
    ({"type": "dense"}, {}, "/layers/0", "did you mean 'linear'?"),
])
def test_a_typo_in_an_enumerated_value_gets_a_did_you_mean_at_its_pointer(layer, top, pointer, hint):
    spec = {**BASE, **top, "layers": [{"type": "linear", "out_features": 2, **layer}]}
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    found = {p.pointer: p.message for p in caught.value.problems}
    assert pointer in found, found
    assert found[pointer].endswith(hint), found[pointer]
    assert "'" in found[pointer].split(hint)[0]  # the allowed values are still listed


def test_a_value_near_nothing_gets_no_guess():
    with pytest.raises(SpecError) as caught:
        parse_spec({**BASE, "layers": [{"type": "linear", "out_features": 2, "activation": "zzzz"}]})
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize("keras, ours", [("glorot_uniform", "xavier_uniform"), ("glorot_normal", "xavier_normal")])
def test_keras_glorot_names_are_the_xavier_inits(keras, ours):
    """newuser16 #4: he_normal was accepted and Keras' own default, glorot_uniform, refused; both
    Glorot names now read as the xavier_* scheme (the same variance, 2 / (fan_in + fan_out))."""
    for init in (keras, {"scheme": keras}):
        spec = parse_spec({**BASE, "layers": [{"type": "linear", "out_features": 2, "init": init}]})
        assert spec.layers[0].init.scheme == ours
