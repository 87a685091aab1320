"""Specs written by an attacker (issue 13) and the schema as a contract (issue 15): alias bombs,
deep nesting, huge numbers, non-JSON values and absurd floats are refused before validation or at
the field, with short messages; the generated JSON Schema says what the server enforces."""

from __future__ import annotations

import functools
import json
import tracemalloc
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gradhealth.analysis.spec import (
    MAX_DEPTH,
    MAX_INT,
    MAX_NODES,
    load_spec_text,
    parse_spec,
    spec_json_schema,
)
from gradhealth.errors import GradHealthError, InputFormatError, SpecError

EXAMPLES = Path(__file__).resolve().parents[2] / "service" / "examples"
LINEAR = '{"type": "linear", "out_features": %s}'


def alias_bomb(levels: int = 6, fan: int = 10) -> str:
    """The issue's 560-byte YAML: each `block` repeats the previous one ``fan`` times by alias."""
    lines = ["input: {shape: [4]}", "layers:", "  - &l0 {type: linear, out_features: 4}"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * fan)
        lines.append(f"  - &l{i} {{type: block, layers: [{refs}]}}")
    return "\n".join(lines) + "\n"


def scalar_bomb(levels: int = 6) -> str:
    """Aliases expanding under `name`, a string field: the error must not quote the expansion."""
    lines = ["input: {shape: [4]}", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines + [f"name: *a{levels}", "layers: [{type: linear, out_features: 4}]"]) + "\n"


def expanded_nodes(value: Any, memo: dict[int, int] | None = None) -> int:
    """Values in the document with every alias written out (mapping keys count as values); the
    plain loader shares an aliased object, so each is counted once and its size reused."""
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        size = 1 + sum(1 + expanded_nodes(v, memo) for v in value.values())
    elif isinstance(value, list):
        size = 1 + sum(expanded_nodes(v, memo) for v in value)
    else:
        return 1
    memo[id(value)] = size
    return size


def spec_with(**layer: Any) -> dict[str, Any]:
    return {"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2, **layer}]}


def refused_at(raw: Any) -> tuple[list[str], str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return [p.pointer for p in info.value.problems], info.value.detail


# --- 1. alias bombs -------------------------------------------------------------------------------


def test_the_issue_bomb_is_560_bytes_and_expands_to_a_million_layers():
    text = alias_bomb()
    assert len(text.encode()) == 560
    # PyYAML shares aliased objects, so the expansion is cheap to build but 10^6 layers to validate.
    assert expanded_nodes(yaml.safe_load(text)) > 5_000_000  # ~5 values a layer


def test_alias_bomb_is_refused_while_composing_with_little_memory(monkeypatch):
    from gradhealth.analysis import spec as spec_module

    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("validation must not see an alias bomb")

    monkeypatch.setattr(spec_module.Spec, "model_validate", never)
    tracemalloc.start()
    try:
        with pytest.raises(InputFormatError) as info:
            load_spec_text(alias_bomb())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "aliases" in info.value.detail and str(MAX_NODES) in info.value.detail
    assert peak < 20 * 2**20, peak


def test_the_budget_counts_exactly_the_expanded_values():
    text = alias_bomb(levels=2, fan=3)
    needed = expanded_nodes(yaml.safe_load(text))  # an independent count, from the plain loader
    assert load_spec_text(text, max_nodes=needed) == yaml.safe_load(text)
    with pytest.raises(InputFormatError, match="aliases"):
        load_spec_text(text, max_nodes=needed - 1)


def test_merge_keys_and_small_aliases_still_work():
    text = ("input: {shape: [4]}\nbase: &b {type: linear, out_features: 4, activation: relu}\n"
            "layers:\n  - *b\n  - {<<: *b, out_features: 2}\n")
    data = load_spec_text(text)
    assert data["layers"][1] == {"type": "linear", "out_features": 2, "activation": "relu"}


def test_a_recursive_alias_is_refused():
    with pytest.raises(InputFormatError, match="contains itself"):
        load_spec_text("input: {shape: [4]}\nlayers: &a [{type: block, layers: *a}]\n")


def test_aliases_in_a_string_field_make_no_huge_message():
    with pytest.raises(GradHealthError) as info:
        parse_spec(load_spec_text(scalar_bomb(levels=3)))  # 10^4 values: under the budget
    assert len(info.value.detail) < 600 and all(len(p.message) < 600 for p in info.value.problems)
    with pytest.raises(InputFormatError):
        load_spec_text(scalar_bomb())


@pytest.mark.parametrize("raw", [
    spec_with(type="x" * 100_000),
    spec_with(activation="x" * 100_000),
    spec_with(init={"scheme": "y" * 100_000}),
    {"input": {"shape": [4]}, "loss": "z" * 100_000, "layers": [{"type": "flatten"}]},
    {"input": {"shape": [4]}, "layers": [{"type": "flatten"}], "device": ["gpu"] * 10_000},
])
def test_messages_never_echo_unbounded_input(raw):
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert len(info.value.detail) < 600, info.value.detail[:300]
    assert all(len(p.message) < 600 for p in info.value.problems)


# --- 3. no 500s: nesting, numbers, non-JSON values ------------------------------------------------


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
    "a:\n" + "".join(" " * i + "- \n" for i in range(1, 600)),
    "a: " + "[" * 100_000 + "]" * 100_000,
    "a: " + "{b: " * 100_000 + "1" + "}" * 100_000,
])
def test_deep_nesting_is_an_input_error_not_a_recursion_error(text):
    with pytest.raises(InputFormatError, match="nested"):
        load_spec_text(text)


def test_nesting_within_the_depth_limit_is_read_and_deeper_is_refused():
    def nested(depth: int) -> str:  # `depth` levels of containers around a value
        return '{"a": ' * depth + "1" + "}" * depth

    assert load_spec_text(nested(MAX_DEPTH)) is not None
    with pytest.raises(InputFormatError, match="nested"):
        load_spec_text(nested(MAX_DEPTH + 1))
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(InputFormatError, match="nested"):  # a dict from Python is held to it too
        parse_spec({"input": {"shape": [4]}, "layers": [{"type": "flatten"}], "x": deep})
    # the refusal says where: the pointer of the container past the limit
    with pytest.raises(InputFormatError, match="at /x" + "/a" * (MAX_DEPTH - 1) + "$"):
        parse_spec({"input": {"shape": [4]}, "layers": [{"type": "flatten"}], "x": deep})


@pytest.mark.parametrize("digits", [400, 5_000])
@pytest.mark.parametrize("form", ["json", "yaml"])
def test_integers_of_hundreds_of_digits_are_refused_at_the_field(digits, form):
    big = "9" * digits
    text = ('{"input": {"shape": [4]}, "layers": [%s]}' % (LINEAR % big) if form == "json"
            else f"input: {{shape: [4]}}\nlayers:\n  - {{type: linear, out_features: {big}}}\n")
    pointers, detail = refused_at(load_spec_text(text))
    assert pointers == ["/layers/0/out_features"]
    assert "out of range" in detail and len(detail) < 300


def test_integer_bounds_are_inclusive():
    assert parse_spec(spec_with(out_features=MAX_INT)).layers[0].out_features == MAX_INT
    pointers, _ = refused_at(spec_with(out_features=MAX_INT + 1))
    assert pointers == ["/layers/0/out_features"]


def test_binary_values_are_refused():
    text = "name: !!binary aGVsbG8=\ninput: {shape: [4]}\nlayers: [{type: flatten}]\n"
    pointers, detail = refused_at(load_spec_text(text))
    assert pointers == ["/name"] and "text" in detail


@pytest.mark.parametrize("text", [
    '{"name": "a\\ud800b", "input": {"shape": [4]}, "layers": [{"type": "flatten"}]}',
    'name: "a\\ud800b"\ninput: {shape: [4]}\nlayers: [{type: flatten}]\n',
    '{"name": "a\\u0000b", "input": {"shape": [4]}, "layers": [{"type": "flatten"}]}',
])
def test_strings_that_cannot_be_stored_are_refused_at_the_field(text):
    pointers, detail = refused_at(load_spec_text(text))
    assert pointers == ["/name"]
    detail.encode("utf-8")  # the message itself must be printable and storable


def test_a_bad_key_is_refused_at_its_mapping():
    pointers, detail = refused_at(json.loads('{"input": {"shape": [4], "\\udc80": 1}, "layers": [{"type": "flatten"}]}'))
    assert pointers == ["/input"]
    detail.encode("utf-8")


@pytest.mark.parametrize("text", [
    '{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2, "negative_slope": NaN}]}',
    '{"input": {"shape": [4], "scale": Infinity}, "layers": [{"type": "linear", "out_features": 2}]}',
    '{"input": {"shape": [4], "scale": 1e400}, "layers": [{"type": "linear", "out_features": 2}]}',
    '{"input": {"shape": [4]}, "x": -Infinity, "layers": [{"type": "linear", "out_features": 2}]}',
    "input: {shape: [4], scale: .inf}\nlayers: [{type: linear, out_features: 2}]\n",
    "input: {shape: [4]}\nlayers: [{type: linear, out_features: 2, negative_slope: .nan}]\n",
])
def test_nan_and_infinity_are_refused_anywhere(text):
    with pytest.raises(SpecError, match="finite"):
        parse_spec(load_spec_text(text))


@pytest.mark.parametrize(("field", "layer"), [
    ("out_features", {"out_features": True}),
    ("repeat", {"repeat": True}),
    ("negative_slope", {"negative_slope": True}),
    ("bias", {"bias": 1}),
    ("out_features", {"out_features": "4"}),
])
def test_booleans_are_not_numbers_and_numbers_are_not_booleans(field, layer):
    pointers, _ = refused_at(spec_with(**layer))
    assert pointers == [f"/layers/0/{field}"]


@pytest.mark.parametrize(("layer", "pointer"), [
    ({"negative_slope": 1e308}, "/layers/0/negative_slope"),
    ({"negative_slope": 1.5}, "/layers/0/negative_slope"),
    ({"init": {"scheme": "normal", "std": 1e308}}, "/layers/0/init/std"),
    ({"init": {"scheme": "uniform", "bound": 1e300}}, "/layers/0/init/bound"),
    ({"init": {"scheme": "orthogonal", "gain": 1e200}}, "/layers/0/init/gain"),
    ({"bias_init": {"scheme": "constant", "value": -1e308}}, "/layers/0/bias_init/value"),
])
def test_absurd_floats_fail_at_validation(layer, pointer):
    pointers, detail = refused_at(spec_with(**layer))
    assert pointers == [pointer]
    assert "less than or equal" in detail or "greater than or equal" in detail


def test_the_documented_float_bounds_are_accepted():
    parse_spec(spec_with(negative_slope=1.0, init={"scheme": "normal", "std": 100},
                         bias_init={"scheme": "constant", "value": -100}))
    schema = spec_json_schema()["$defs"]
    assert schema["LinearLayer"]["properties"]["negative_slope"]["maximum"] == 1
    assert schema["InitSpec"]["properties"]["std"]["anyOf"][0]["maximum"] == 100


@pytest.mark.parametrize("text", ["", "   \n\t\n", "# only a comment\n", "---\n"])
def test_an_empty_spec_is_refused_with_a_clear_message(text):
    with pytest.raises(InputFormatError, match="empty"):
        load_spec_text(text)


@pytest.mark.parametrize("text", [
    "input: {shape: [4]}\nwhen: 2001-12-14\nlayers: [{type: flatten}]\n",
    "input: {shape: [4]}\nlayers: [{type: flatten}]\nname: !!set {a, b}\n",
])
def test_other_yaml_types_are_refused(text):
    with pytest.raises(SpecError, match="JSON"):
        parse_spec(load_spec_text(text))


def test_every_accepted_spec_is_plain_json():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        raw = load_spec_text(path.read_text())
        parse_spec(raw)
        assert json.loads(json.dumps(raw, allow_nan=False).encode("utf-8")) == raw


# --- 4, 5. the JSON Schema says what the server enforces ------------------------------------------


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates_against_the_schema(path):
    raw = load_spec_text(path.read_text())
    parse_spec(raw)
    validator().validate(raw)


SHAPES = {"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 2}]}


@pytest.mark.parametrize("raw", [
    SHAPES,
    {"input": {"tokens": {"vocab_size": 10, "seq_len": 3}}, "layers": [{"type": "embedding", "embedding_dim": 4}]},
    {"input": {"vocab_size": 10, "seq_len": 3}, "layers": [{"type": "embedding", "embedding_dim": 4}]},
    {"input": {"vocab_size": 10, "seq_len": 3, "tokens": None}, "layers": [{"type": "embedding", "embedding_dim": 4}]},
    {"input": {"shape": [4], "tokens": None}, "layers": [{"type": "flatten"}]},
    {"input": {"shape": [3, 4]}, "layers": [{"type": "lstm", "hidden_size": 4, "forget_bias": 1.0}]},
    {"input": {"shape": [3, 4]}, "layers": [{"type": "gru", "hidden_size": 4, "forget_bias": None}]},
    {"input": {"shape": [3, 4]}, "layers": [{"type": "rnn", "hidden_size": 4, "nonlinearity": "relu"}]},
])
def test_valid_specs_are_valid_for_both(raw):
    parse_spec(raw)
    validator().validate(raw)


@pytest.mark.parametrize("raw", [
    {"input": {"shape": [4], "tokens": {"vocab_size": 10, "seq_len": 3}}, "layers": [{"type": "flatten"}]},
    {"input": {}, "layers": [{"type": "flatten"}]},
    {"input": {"shape": None, "tokens": None}, "layers": [{"type": "flatten"}]},
    {"input": {"shape": [0]}, "layers": [{"type": "flatten"}]},
    {"input": {"shape": [4], "vocab_size": 10, "seq_len": 3}, "layers": [{"type": "flatten"}]},
    {"input": {"tokens": {"vocab_size": 10, "seq_len": 3}, "vocab_size": 10, "seq_len": 3},
     "layers": [{"type": "flatten"}]},
    {"input": {"vocab_size": 10}, "layers": [{"type": "flatten"}]},
    {"input": {"shape": [3, 4]}, "layers": [{"type": "gru", "hidden_size": 4, "forget_bias": 1.0}]},
    {"input": {"shape": [3, 4]}, "layers": [{"type": "rnn", "hidden_size": 4, "forget_bias": "chrono"}]},
    {"input": {"shape": [3, 4]}, "layers": [{"type": "lstm", "hidden_size": 4, "nonlinearity": "relu"}]},
    # Each scheme's parameter rule (schemathesis found truncated_normal's missing from the schema).
    {"input": {"shape": [3, 4]}, "layers": [{"type": "rnn", "hidden_size": 4,
                                             "recurrent_init": {"scheme": "truncated_normal"}}]},
    spec_with(init={"scheme": "normal"}),
    spec_with(init={"scheme": "uniform", "std": 1.0}),
    spec_with(bias_init={"scheme": "normal"}),
    {"input": {"shape": [1, 8, 8]}, "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3,
                                                "padding": "same", "stride": 2}]},
    spec_with(out_features=True),
    spec_with(out_features=MAX_INT + 1),
    spec_with(negative_slope=2.0),
    {"input": {"shape": [4]}, "layers": []},
])
def test_specs_the_server_refuses_the_schema_refuses(raw):
    with pytest.raises(GradHealthError):
        parse_spec(raw)
    assert not validator().is_valid(raw)


def test_divisibility_of_d_model_by_heads_is_documented_where_the_schema_cannot_say_it():
    d_model = spec_json_schema()["$defs"]["TransformerEncoderLayer"]["properties"]["d_model"]
    assert "divisible by `heads`" in d_model["description"]


def _models(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"Spec": schema, **schema.get("$defs", {})}


def test_properties_with_defaults_are_never_required():
    for name, model in _models(spec_json_schema()).items():
        defaulted = {k for k, v in model.get("properties", {}).items() if "default" in v}
        assert not defaulted & set(model.get("required", [])), name


def test_no_default_makes_an_invalid_spec():
    # A generator that fills in defaults must still get a valid input: no `shape: null, tokens: null`.
    schema = spec_json_schema()
    props = schema["$defs"]["InputSpec"]["properties"]
    assert all("default" not in props[k] for k in ("shape", "tokens", "vocab_size", "seq_len"))
    for name, model in _models(schema).items():
        for key, prop in model.get("properties", {}).items():
            if "default" in prop:  # each default is valid for its own property
                check = jsonschema.Draft202012Validator({"$defs": schema["$defs"], **prop})
                assert check.is_valid(prop["default"]), (name, key, prop["default"])


def test_shorthand_is_documented_in_the_schema():
    props = spec_json_schema()["$defs"]["InputSpec"]["properties"]
    assert props["vocab_size"]["type"] == "integer" and props["seq_len"]["type"] == "integer"
    assert props["vocab_size"]["description"] and props["seq_len"]["description"]


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text"), [
    ("bomb.yaml", alias_bomb()),
    ("deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000),
    ("deep.json", '{"a": ' * 100_000 + "1" + "}" * 100_000),
    ("digits.yaml", "input: {shape: [4]}\nlayers: [{type: linear, out_features: " + "9" * 5_000 + "}]\n"),
    ("digits.json", '{"input": {"shape": [4]}, "layers": [' + LINEAR % ("9" * 400) + "]}"),
    ("binary.yaml", "name: !!binary aGVsbG8=\ninput: {shape: [4]}\nlayers: [{type: flatten}]\n"),
    ("surrogate.json", '{"name": "a\\ud800b", "input": {"shape": [4]}, "layers": [{"type": "flatten"}]}'),
    ("nan.json", '{"input": {"shape": [4], "scale": NaN}, "layers": [{"type": "flatten"}]}'),
    ("bool.yaml", "input: {shape: [4]}\nlayers: [{type: linear, out_features: true}]\n"),
    ("slope.yaml", "input: {shape: [4]}\nlayers: [{type: linear, out_features: 2, negative_slope: 1e308}]\n"),
    ("empty.yaml", ""),
])
def test_the_cli_refuses_each_with_exit_2_and_one_line(tmp_path, capsys, name, text):
    from gradhealth.cli import EXIT_INVALID, main

    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path), "--no-verify"]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and len(err) < 600, err[:300]


def test_a_float_without_fraction_is_an_integer_as_json_schema_says():
    # Found by schemathesis: `repeat: 5966.0` is a valid JSON Schema integer but was refused.
    raw = {"input": {"shape": [4.0]}, "layers": [{"type": "linear", "out_features": 3.0, "repeat": 2.0}]}
    validator().validate(raw)
    spec = parse_spec(raw)
    assert spec.layers[0].out_features == 3 and type(spec.layers[0].out_features) is int
    with pytest.raises(SpecError, match="/layers/0/out_features"):
        parse_spec({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 3.5}]})


def test_a_field_in_the_wrong_place_is_named_with_where_it_belongs() -> None:
    # difflib would suggest the key's own spelling back ("did you mean 'name'?")
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4, 3]}, "layers": [{"type": "lstm", "hidden_size": 3, "name": "enc"}]})
    assert str(err.value).startswith(
        "/layers/0/name: unknown field; 'name' is a field of the spec's top level, not of this object (allowed: ")
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4, 3]}, "layers": [{"type": "lstm", "hidden_size": 3, "out_features": 2}]})
    assert "'out_features' is a field of layers of type linear, not of this object" in str(err.value)


@pytest.mark.parametrize("layer,name,field", [
    ({"type": "linear", "units": 10}, "units", "out_features"),  # Keras' Dense(units=...)
    ({"type": "conv2d", "filters": 8, "kernel_size": 3}, "filters", "out_channels"),
    ({"type": "transformer_encoder", "d_model": 16, "heads": 2, "ff_width": 32, "dim_feedforward": 32},
     "dim_feedforward", "ff_width"),  # PyTorch's nn.TransformerEncoderLayer
])
def test_a_frameworks_name_for_a_field_is_pointed_at_the_specs(layer: dict, name: str, field: str) -> None:
    # spelling distance alone suggested "init" for "units"
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4, 8, 8]}, "layers": [layer]})
    assert f"/layers/0/{name}: unknown field; did you mean {field!r}?" in str(err.value)


def test_every_framework_name_points_at_a_real_field_and_shadows_none() -> None:
    from gradhealth.analysis.spec import _FRAMEWORK_NAMES, _field_names, _Strict
    names = _field_names(_Strict)
    assert not set(_FRAMEWORK_NAMES) & names  # a real field is never renamed
    assert {v for v in _FRAMEWORK_NAMES.values() if not v.startswith("(")} <= names


def test_a_field_of_another_object_is_not_suggested_back() -> None:
    # "value" is a constant bias_init's field: "did you mean 'value'?" said nothing
    with pytest.raises(SpecError) as err:
        parse_spec({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 3,
                                                         "init": {"scheme": "normal", "value": 0.5}}]})
    assert "/layers/0/init/value: unknown field; 'value' is not a field of this object" in str(err.value)


@pytest.mark.parametrize("text,where", [
    ('{"input": {"shape": [4]}, "batch_size": 16, "batch_size": 32, "layers": [{"type": "flatten"}]}', ""),
    ("input: {shape: [4]}\nbatch_size: 16\nlayers: [{type: flatten}]\nbatch_size: 32\n", "(line 4, column 1)"),
])
def test_a_key_named_twice_is_refused_not_read_as_its_last_value(text: str, where: str) -> None:
    with pytest.raises(InputFormatError, match="'batch_size' appears twice") as caught:
        load_spec_text(text)
    assert where in str(caught.value)


def test_a_yaml_merge_key_may_still_be_overridden_by_name() -> None:
    text = ("base: &b {type: linear, out_features: 8, activation: relu}\n"
            "input: {shape: [4]}\nlayers:\n  - <<: *b\n    out_features: 16\n")
    assert load_spec_text(text)["layers"][0]["out_features"] == 16


def test_a_softmax_activation_is_refused_with_where_the_softmax_belongs() -> None:
    spec = {"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": 3, "activation": "softmax"}]}
    with pytest.raises(SpecError, match=r"/layers/0/activation.*softmax.*loss cross_entropy"):
        parse_spec(spec)


def test_undeclared_text_opening_with_a_brace_is_json_or_else_yaml() -> None:
    from gradhealth.analysis.spec import load_spec_text
    from gradhealth.errors import InputFormatError

    flow = "{input: {shape: [16]}, layers: [{type: linear, out_features: 4}]}"
    assert load_spec_text(flow)["layers"] == [{"type": "linear", "out_features": 4}]
    assert load_spec_text(flow, content_type="application/yaml")["input"] == {"shape": [16]}
    # text that looks like JSON (a quoted first key) keeps its JSON error, with line and column
    with pytest.raises(InputFormatError, match="invalid JSON at line 1, column 11"):
        load_spec_text('{"input": ')
    with pytest.raises(InputFormatError, match="invalid JSON at line 2"):
        load_spec_text('{"input":\n  oops}')  # YAML would read it as {"input": "oops"}
