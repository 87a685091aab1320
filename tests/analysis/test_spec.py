"""The spec: contract field names, shorthands, and errors that point at the field."""

from __future__ import annotations

import pytest

from gradhealth.analysis.spec import load_spec_text, parse_spec, spec_json_schema
from gradhealth.errors import InputFormatError, SpecError

ISSUE_EXAMPLE = """
input: {shape: [784]}
batch_size: 64
seeds: 3
loss: {type: cross_entropy, classes: 10}
layers:
  - {type: linear, out_features: 256, activation: sigmoid, init: {scheme: normal, std: 0.05}, bias_init: {scheme: zeros}, repeat: 20}
  - {type: rnn, hidden_size: 128, nonlinearity: tanh, init: xavier_uniform, recurrent_init: {scheme: orthogonal, gain: 0.9}}
  - {type: transformer_encoder, d_model: 128, heads: 4, ff_width: 512, norm_first: true, num_layers: 12}
  - {type: residual, layers: [{type: linear, out_features: 256, activation: relu, init: kaiming_normal}], repeat: 50}
  - {type: linear, out_features: 10}
"""


def test_issue_example_parses_with_every_contract_field():
    spec = parse_spec(load_spec_text(ISSUE_EXAMPLE))
    first, rnn, tr, res, _ = spec.layers
    assert spec.input.shape == [784] and spec.batch_size == 64 and spec.seeds == 3
    assert spec.loss.type == "cross_entropy" and spec.loss.classes == 10
    assert first.init.scheme == "normal" and first.init.std == 0.05 and first.repeat == 20
    assert rnn.init.scheme == "xavier_uniform" and rnn.recurrent_init.gain == 0.9
    assert tr.norm_first is True and tr.num_layers == 12 and tr.ff_width == 512
    assert res.repeat == 50 and res.layers[0].init.scheme == "kaiming_normal"


def test_shorthands():
    spec = parse_spec({"input": {"vocab_size": 100, "seq_len": 8}, "loss": "sum",
                       "layers": [{"type": "embedding", "embedding_dim": 4}]})
    assert spec.input.tokens.vocab_size == 100 and spec.loss.type == "sum"


def test_json_and_yaml_give_the_same_spec():
    as_json = '{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}]}'
    as_yaml = "input: {shape: [4]}\nlayers:\n  - {type: linear, out_features: 2}\n"
    assert parse_spec(load_spec_text(as_json)) == parse_spec(load_spec_text(as_yaml))


@pytest.mark.parametrize(("patch", "pointer", "words"), [
    ({"layers": [{"type": "linear", "out_features": 4, "init": {"scheme": "normal", "std": -1}}]},
     "/layers/0/init/std", "greater than 0"),
    ({"layers": [{"type": "lineer", "out_features": 4}]}, "/layers/0", "unknown layer type 'lineer'"),
    ({"layers": [{"type": "linear", "out_features": 4, "activation": "swishy"}]}, "/layers/0/activation", "sigmoid"),
    ({"layers": [{"type": "linear"}]}, "/layers/0/out_features", "required"),
    ({"layers": [{"type": "linear", "out_features": 4, "init": "kaiming"}]}, "/layers/0/init", "kaiming_normal"),
    ({"layers": [{"type": "residual", "layers": [{"type": "linear", "out_features": 4, "repeat": 0}]}]},
     "/layers/0/layers/0/repeat", "greater than or equal to 1"),
    ({"layers": [{"type": "linear", "out_features": 4, "colour": 1}]}, "/layers/0/colour", "unknown field"),
    ({"layers": [{"type": "gru", "hidden_size": 4, "forget_bias": 1.0}]}, "/layers/0", "lstm only"),
    ({"batch_size": 0}, "/batch_size", "greater than or equal to 1"),
])
def test_errors_name_the_field_by_json_pointer(patch, pointer, words):
    raw = {"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}]} | patch
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    pointers = [p.pointer for p in info.value.problems]
    assert pointer in pointers, pointers
    assert words in info.value.detail


def test_input_needs_exactly_one_kind():
    with pytest.raises(SpecError, match="exactly one"):
        parse_spec({"input": {}, "layers": [{"type": "flatten"}]})


@pytest.mark.parametrize("text", ["{not json", "a: [1, 2", "- just\n- a list\n", "42"])
def test_unreadable_input_is_an_input_error(text):
    with pytest.raises(InputFormatError):
        load_spec_text(text)


def test_json_error_says_where():
    with pytest.raises(InputFormatError, match="line 2"):
        load_spec_text('{"input":\n  oops}')


def test_schema_is_generated_and_names_the_contract_fields():
    schema = spec_json_schema()
    assert set(schema["properties"]) >= {"input", "layers", "batch_size", "seeds", "loss", "device"}
    linear = schema["$defs"]["LinearLayer"]["properties"]
    assert {"out_features", "activation", "init", "bias_init", "repeat"} <= set(linear)
