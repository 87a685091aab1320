"""newuser9: the spec, CLI and summary messages of a first-time user's sweep.

#5 ``--seeds 0`` is a usage error said before the input is read (it was a spec error at ``/seeds``,
after a missing file's). #6 a Keras file's document ``name`` is the model's own in-process as from
the service (the file's only for a model without one). #7 spec errors on stderr carry each
problem's line and column. #9 text that is not UTF-8 names the offset and the byte apart. #10 a
summary counts the other findings as findings. #11 the layer limit points at a place the spec has.
#12 an unclosed YAML flow mapping is named where it opens.
"""

from __future__ import annotations

import json

import pytest

from gradhealth import check_logs
from gradhealth.analysis.check import summary_line
from gradhealth.analysis.plan import make_plan
from gradhealth.analysis.spec import load_spec_text, parse_spec
from gradhealth.cli import main
from gradhealth.core.document import Finding
from gradhealth.errors import InputFormatError, LimitExceeded
from tests.helpers import small_keras_config

pytestmark = pytest.mark.usefixtures("off_runner")

SPEC = "input: {shape: [8]}\nseeds: 3\nlayers:\n  - {type: linear, out_features: 2}\n"


# --- #5 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1"])
def test_seeds_below_one_is_a_usage_error_not_the_specs(tmp_path, capsys, value):
    spec = tmp_path / "my_net.yaml"
    spec.write_text(SPEC)  # the file's own seeds: 3 is fine
    assert main(["check", str(spec), "--seeds", value]) == 2
    err = capsys.readouterr().err
    assert f"usage error: --seeds must be at least 1, not {value}" in err
    assert "/seeds" not in err and "invalid architecture spec" not in err


def test_the_flag_is_refused_before_the_input_is_read(tmp_path, capsys):
    missing = tmp_path / "nonexist.yaml"
    assert main(["check", str(missing), "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "usage error: --seeds must be at least 1, not 0" in err
    assert "no such file" not in err


def test_batch_size_below_one_is_refused_before_a_model_file_is_read(tmp_path, capsys):
    assert main(["check", str(tmp_path / "absent.onnx"), "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "usage error: --batch-size must be at least 1, not 0" in err and "no such file" not in err


# --- #6 ---------------------------------------------------------------------------------------



@pytest.mark.parametrize(("model_name", "expected"), [("seq", "seq"), (None, "keras_model.json")])
def test_a_keras_files_document_is_named_by_the_model_else_by_the_file(tmp_path, capsys, model_name, expected):
    path = tmp_path / "keras_model.json"
    path.write_text(json.dumps(small_keras_config(model_name)))
    assert main(["check", str(path), "--no-verify", "--seeds", "1", "--format", "json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["name"] == expected


# --- #7 ---------------------------------------------------------------------------------------

def test_spec_errors_on_stderr_carry_each_problems_line_and_column(tmp_path, capsys):
    bad2 = tmp_path / "bad2.yaml"
    bad2.write_text("input: {shape: [784]}\nlayers:\n  - {type: linear, out_features: 256, activation: sigmod}\n"
                    "  - {type: lineer, out_features: 10}\n")
    assert main(["check", str(bad2)]) == 2
    err = capsys.readouterr().err
    # `sigmod` starts at column 51 of line 3; the second item's `{` at column 5 of line 4
    assert "/layers/0/activation (line 3, column 51): Input should be" in err
    assert "/layers/1 (line 4, column 5): unknown layer type 'lineer'" in err
    bad3 = tmp_path / "bad3.yaml"
    bad3.write_text("input: {shape: [784]}\nlayer:\n  - {type: linear, out_features: 10}\n")
    assert main(["check", str(bad3)]) == 2
    assert "/layer (line 2, column 1): unknown field; did you mean 'layers'?" in capsys.readouterr().err


def test_a_json_specs_error_is_placed_too(tmp_path, capsys):
    spec = tmp_path / "j.json"
    spec.write_text('{"input": {"shape": [8]},\n "layers": [{"type": "linear", "out_features": 0}]}\n')
    assert main(["check", str(spec)]) == 2
    # the 0 is the 48th character of line 2
    assert "/layers/0/out_features (line 2, column 48): Input should be greater than or equal to 1" in \
        capsys.readouterr().err


# --- #9 ---------------------------------------------------------------------------------------

def test_non_utf8_spec_says_the_offset_and_the_byte(tmp_path, capsys):
    spec = tmp_path / "bin.yaml"
    spec.write_bytes(b"\xc0\xbd" + b"input: x\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8 text at byte offset 0 (byte 0xc0)" in err and "(byte 0)" not in err


# --- #10 --------------------------------------------------------------------------------------

def _finding(code: str, severity: str, summary: str) -> Finding:
    return Finding(code=code, severity=severity, summary=summary, explanation="", evidence={})  # type: ignore[arg-type]


def test_the_summary_counts_the_other_findings_as_findings():
    dead = _finding("dead_layer", "error", "3 layer(s) get exactly zero gradient: 0.weight, 2.weight, 4.weight")
    others = [_finding("exploding_gradient", "warning", "x"), _finding("saturation", "warning", "y"),
              _finding("dead_units", "info", "z")]
    assert summary_line("unhealthy", [dead, *others], 6).endswith("4.weight (+3 more findings)")
    assert summary_line("unhealthy", [dead, others[0]], 6).endswith("4.weight (+1 more finding)")
    assert summary_line("unhealthy", [dead], 6).endswith("4.weight")


def test_a_log_checks_summary_says_findings_too(tmp_path):
    from tests.ci.helpers import exploding_csv

    path = tmp_path / "run.csv"
    path.write_text(exploding_csv())
    doc = check_logs(path)
    assert len(doc.findings) > 1
    assert doc.summary.endswith(f"(+{len(doc.findings) - 1} more findings)")


# --- #11 --------------------------------------------------------------------------------------

def _limit_pointer(raw: dict) -> tuple[str, str]:
    with pytest.raises(LimitExceeded) as e:
        make_plan(parse_spec(raw))
    return e.value.problems[0].pointer, e.value.problems[0].message


def test_plain_layers_past_the_limit_point_at_the_first_one_past_it_not_a_missing_repeat():
    raw = {"input": {"shape": [8]}, "layers": [{"type": "linear", "out_features": 8} for _ in range(5000)]}
    pointer, message = _limit_pointer(raw)
    assert pointer == "/layers/2000"  # the 2,001st layer: the default limit is 2,000
    assert "2,001 counted up to here; the spec lists 5,000 layers" in message


def test_a_repeat_past_the_limit_points_at_the_repeat_that_expands_it():
    one = {"input": {"shape": [8]}, "layers": [{"type": "linear", "out_features": 8, "repeat": 5000}]}
    assert _limit_pointer(one)[0] == "/layers/0/repeat"
    # a repeated block: its children have no `repeat`; the block's is what expands them
    block = {"input": {"shape": [8]}, "layers": [
        {"type": "linear", "out_features": 8},
        {"type": "block", "repeat": 1000, "layers": [{"type": "linear", "out_features": 8},
                                                     {"type": "linear", "out_features": 8}]}]}
    assert _limit_pointer(block)[0] == "/layers/1/repeat"


# --- #12 --------------------------------------------------------------------------------------

def test_an_unclosed_flow_mapping_is_named_where_it_opens():
    with pytest.raises(InputFormatError) as e:
        load_spec_text("input: {shape: [784]\nlayers:\n  - {type: linear, out_features: 10}\n")
    # `{` is the 8th character of line 1; the reader stopped at `layers` (line 2, column 1)
    assert str(e.value.detail).startswith(
        "invalid YAML at line 1, column 8: a flow mapping opened there is not closed; "
        "at line 2, column 1: expected ',' or '}'")


def test_an_unclosed_quote_and_other_contexts_keep_both_places():
    with pytest.raises(InputFormatError) as e:
        load_spec_text('input: {shape: [8]}\nname: "abc\nlayers: []\n')
    assert "invalid YAML at line 2, column 7: a quoted scalar opened there is not closed; at line" in e.value.detail
    with pytest.raises(InputFormatError) as e:  # a bad indent: the block mapping's start is added
        load_spec_text("a:\n  - x\n - y\n")
    assert e.value.detail.startswith("invalid YAML at line 3, column 2: expected <block end>")
    assert "(while parsing a block mapping at line 1, column 1)" in e.value.detail


def test_the_cli_says_the_opening_place_of_a_broken_yaml_file(tmp_path, capsys):
    spec = tmp_path / "bad1.yaml"
    spec.write_text("input: {shape: [784]\nlayers:\n  - {type: linear, out_features: 10}\n")
    assert main(["check", str(spec)]) == 2
    assert "invalid YAML at line 1, column 8: a flow mapping opened there is not closed" in capsys.readouterr().err
