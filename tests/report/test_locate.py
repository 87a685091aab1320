"""Spec nodes and log records found on the user's own lines.

The expected line is found independently of the parser: the test text marks each layer with a
unique value (``out_features: 31``...) and the test looks for the line that holds it.
"""

from __future__ import annotations

import json

import jsonpatch
import pytest
import yaml

from gradhealth.report.locate import locate, log_step_lines, parse_pointer, patch_replacement, span

from .helpers import DATA


def line_of(text: str, marker: str) -> int:
    """1-based line of the only line holding ``marker``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def column_of(text: str, marker: str) -> int:
    line = text.splitlines()[line_of(text, marker) - 1]
    return line.index(marker) + 1


BLOCK = """\
# a comment before anything
name: block style
input: {shape: [64]}
layers:
  - type: linear
    out_features: 31
    activation: tanh

  # a comment between layers
  - type: residual
    repeat: 4
    layers:
      - type: linear
        out_features: 32
        activation: relu
      - {type: linear, out_features: 33}
  - {type: linear, out_features: 34}
"""


def test_block_style_yaml_layers_on_their_own_lines():
    assert locate(BLOCK, "/layers/0") == (
        line_of(BLOCK, "out_features: 31") - 1,
        5,
        line_of(BLOCK, "activation: tanh"),
    )
    residual = locate(BLOCK, "/layers/1")
    assert residual == (line_of(BLOCK, "type: residual"), 5, line_of(BLOCK, "out_features: 33"))
    assert locate(BLOCK, "/layers/1/layers/0")[0] == line_of(BLOCK, "out_features: 32") - 1
    assert locate(BLOCK, "/layers/1/layers/1")[:2] == (
        line_of(BLOCK, "out_features: 33"),
        column_of(BLOCK, "{type: linear, out_features: 33}"),
    )
    assert locate(BLOCK, "/layers/2")[0] == line_of(BLOCK, "out_features: 34")
    assert locate(BLOCK, "/layers/0/activation")[:2] == (
        line_of(BLOCK, "tanh"),
        column_of(BLOCK, "tanh"),
    )


def test_a_block_node_ends_at_its_last_character_not_at_the_next_comment():
    s = span(BLOCK, "/layers/0")
    assert BLOCK[s.start : s.end].endswith("activation: tanh")
    assert (s.end_line, s.end_column) == (
        line_of(BLOCK, "activation: tanh"),
        len("    activation: tanh") + 1,
    )


FLOW = """\
name: flow style
layers: [{type: linear, out_features: 41}, {type: linear, out_features: 42},
  {type: linear,
   out_features: 43}]
"""


def test_flow_style_yaml():
    assert locate(FLOW, "/layers/0") == (2, column_of(FLOW, "{type: linear, out_features: 41}"), 2)
    assert locate(FLOW, "/layers/1") == (2, column_of(FLOW, "{type: linear, out_features: 42}"), 2)
    assert locate(FLOW, "/layers/2") == (3, 3, line_of(FLOW, "out_features: 43"))
    s = span(FLOW, "/layers/1")
    assert FLOW[s.start : s.end] == "{type: linear, out_features: 42}"


ANCHORS = """\
blocks:
  base: &base {type: linear, out_features: 51, activation: sigmoid}
  wide: &wide
    type: linear
    out_features: 52
layers:
  - *base
  - <<: *base
    out_features: 53
  - *wide
"""


def test_anchors_aliases_and_merge_keys():
    # An alias is where the alias is written; what it holds is where its anchor wrote it.
    assert locate(ANCHORS, "/layers/0") == (
        line_of(ANCHORS, "- *base"),
        5,
        line_of(ANCHORS, "- *base"),
    )
    assert locate(ANCHORS, "/layers/2")[0] == line_of(ANCHORS, "- *wide")
    assert locate(ANCHORS, "/layers/0/activation")[:2] == (
        line_of(ANCHORS, "sigmoid"),
        column_of(ANCHORS, "sigmoid"),
    )
    # A merge: the mapping's own key first, then the merged one.
    assert locate(ANCHORS, "/layers/1")[0] == line_of(ANCHORS, "<<: *base")
    assert locate(ANCHORS, "/layers/1/out_features")[0] == line_of(ANCHORS, "out_features: 53")
    assert locate(ANCHORS, "/layers/1/activation")[0] == line_of(ANCHORS, "sigmoid")
    assert locate(ANCHORS, "/layers/2/out_features")[0] == line_of(ANCHORS, "out_features: 52")


def spec_json(indent: int | None) -> str:
    return json.dumps(
        {
            "name": "json",
            "input": {"shape": [8]},
            "layers": [
                {"type": "linear", "out_features": 61},
                {"type": "linear", "out_features": 62, "activation": "relu"},
                {"type": "linear", "out_features": 63},
            ],
        },
        indent=indent,
    )


def test_json_indented():
    text = spec_json(2)
    for i, width in enumerate((61, 62, 63)):
        line, column, end_line = locate(text, f"/layers/{i}")
        assert line == line_of(text, f'"out_features": {width}') - 2  # the "{" two lines above
        assert column == 5 and end_line == line_of(text, f'"out_features": {width}') + (
            2 if width == 62 else 1
        )
    assert locate(text, "/layers/1/activation")[:2] == (
        line_of(text, '"relu"'),
        column_of(text, '"relu"'),
    )


def test_json_on_one_line_gives_columns():
    text = spec_json(None)
    for i, width in enumerate((61, 62, 63)):
        s = span(text, f"/layers/{i}")
        assert s.line == s.end_line == 1
        assert s.column == text.index(f'{{"type": "linear", "out_features": {width}') + 1
        assert json.loads(text[s.start : s.end])["out_features"] == width


def test_json_with_tabs_escapes_and_duplicate_keys():
    text = (
        '{\n\t"a/b": {"x~y": [1,\n\t\t2]},\n\t"layers": [{"k": 1}],\n'
        '\t"layers": [{"k": 2},\n\t\t{"k": "\\u00e9\\"}"}]\n}'
    )
    assert json.loads(text)["layers"][1]["k"] == 'é"}'
    assert locate(text, "/a~1b/x~0y/1") == (3, 3, 3)
    # The last duplicate wins, as in json.loads.
    assert locate(text, "/layers/0")[0] == 5 and locate(text, "/layers/1") == (6, 3, 6)
    s = span(text, "/layers/1/k")
    assert json.loads(text[s.start : s.end]) == 'é"}'


def test_a_missing_node_resolves_to_its_deepest_ancestor():
    s = span(BLOCK, "/layers/0/norm")
    assert s.pointer == "/layers/0" and not s.exact
    assert span(BLOCK, "/layers/9").pointer == "/layers"
    assert span(spec_json(2), "/layers/1/init/std").pointer == "/layers/1"
    assert span("layers: [\n", "/layers") is None  # does not parse


def test_pointer_tokens():
    assert parse_pointer("") == []
    assert parse_pointer("/a~1b/~0c/0") == ["a/b", "~c", "0"]
    with pytest.raises(ValueError):
        parse_pointer("layers/0")


def _applied(text: str, patch: list[dict]) -> object:
    """The replacement applied to the text and read back (independently of its own check)."""
    found = patch_replacement(text, patch)
    assert found is not None
    s, replacement = found
    new = text[: s.start] + replacement + text[s.end :]
    return json.loads(new) if text.lstrip().startswith("{") else yaml.safe_load(new)


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/layers/0/norm", "value": "layernorm"}],
        [{"op": "replace", "path": "/layers/1/repeat", "value": 8}],
        [{"op": "add", "path": "/layers/1/layers/1/activation", "value": "relu"}],
        [
            {"op": "replace", "path": "/layers/2", "value": {"type": "linear", "out_features": 34}},
            {"op": "add", "path": "/layers/3", "value": {"type": "linear", "out_features": 2}},
        ],
    ],
)
def test_a_spec_patch_becomes_the_replacement_text_of_one_region(patch):
    for text in (BLOCK, FLOW, spec_json(2), spec_json(None)):
        data = json.loads(text) if text.startswith("{") else yaml.safe_load(text)
        try:
            expected = jsonpatch.apply_patch(data, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            assert patch_replacement(text, patch) is None
            continue
        assert _applied(text, patch) == expected


def test_a_patch_keeps_the_rest_of_the_file_byte_for_byte():
    s, replacement = patch_replacement(
        BLOCK, [{"op": "add", "path": "/layers/2/activation", "value": "relu"}]
    )
    assert (
        s.pointer == "/layers/2"
        and replacement == "{type: linear, out_features: 34, activation: relu}"
    )
    assert BLOCK[: s.start] + replacement + BLOCK[s.end :] == BLOCK.replace(
        "{type: linear, out_features: 34}", replacement
    )


def test_infeasible_patches_give_no_replacement():
    assert (
        patch_replacement(BLOCK, [{"op": "move", "from": "/layers/0", "path": "/layers/1"}]) is None
    )
    assert patch_replacement(BLOCK, [{"op": "add", "path": "/nope/0/x", "value": 1}]) is None
    # Changing what an alias points at would change the anchor's other users too.
    assert (
        patch_replacement(ANCHORS, [{"op": "add", "path": "/layers/0/norm", "value": "layernorm"}])
        is None
    )


# --- logs ----------------------------------------------------------------------------------------


def test_native_jsonl_prefers_the_line_of_the_series(tmp_path):
    rows = [
        {"step": s, "metric": m, "value": 1.0} for s in (0, 10, 20) for m in ("loss", "grad_norm")
    ]
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert log_step_lines(path, [(10, "grad_norm"), (10, "loss"), (20, None), (30, "loss")]) == [
        4,
        3,
        5,
        None,
    ]


def test_csv_logs_by_step_column_and_sparse_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("train_loss,epoch,step,val_loss\n0.5,0,49,\n,0,49,0.7\n0.4,0,99,\n,1,99,0.6\n")
    assert log_step_lines(path, [(99, "val_loss"), (99, "train_loss"), (49, None)]) == [5, 4, 2]
    keras = tmp_path / "training.log"
    keras.write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.9,1.0\n2,0.8,0.9\n")
    assert log_step_lines(keras, [(2, "loss")]) == [4]


def test_text_log_of_llm_c_at_the_first_step_of_a_finding():
    text = (DATA / "llmc-gpt2-124m" / "main.log").read_text()
    lines = text.splitlines()
    expected = next(
        i for i, line in enumerate(lines, 1) if line.startswith("s:8715 ") and "norm:" in line
    )
    assert lines[expected - 1].split()[0] == "s:8715"
    assert log_step_lines(DATA / "llmc-gpt2-124m" / "main.log", [(8715, "norm")]) == [expected]


def test_pretty_json_trainer_state_finds_the_step_key():
    path = DATA / "hf-mistral-translator" / "trainer_state.json"
    lines = path.read_text().splitlines()
    expected = next(i for i, line in enumerate(lines, 1) if line.strip() == '"step": 20')
    assert log_step_lines(path, [(20, "loss")]) == [expected]


def test_binary_logs_and_folders_have_no_line(tmp_path):
    tb = DATA / "tb-lightning-lstm-textgen"
    event_file = next(tb.iterdir())
    assert log_step_lines(event_file, [(0, None)]) == [None]
    assert log_step_lines(tb, [(0, None)]) == [None]
