"""errsweep E13-E15 (input handling, without HTTP): the JSON depth guard's pointer, the archive's
own message per unsafe entry name, an over-long integer in a JSON-lines log, and YAML 1.2 numbers
in a spec. The HTTP ones are in tests/api/test_errsweep_inputs.py."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from gradhealth.analysis.spec import MAX_DEPTH, load_spec_text, parse_spec
from gradhealth.errors import InputFormatError, LogError, SpecError
from gradhealth.logs import archive
from gradhealth.logs.readers.native import NativeReader
from gradhealth.logs.readers.registry import ReadLimits

# --- E13: a JSON spec too deep for the parser still gets the pointer of its 65th level -------------

HEAD = '{"input": {"shape": [8]}, "seeds": 1, "layers": ['
LINEAR = '{"type": "linear", "out_features": 4}'


@pytest.mark.parametrize("levels", [40, 900, 5000])
def test_deeply_nested_json_blocks_name_the_pointer_of_the_first_level_too_deep(levels):
    text = HEAD + '{"type": "block", "layers": [' * levels + LINEAR + "]}" * levels + "]}"
    if levels * 2 + 2 <= MAX_DEPTH:
        assert load_spec_text(text)
        return
    # the top-level object is level 1, `layers` level 2, each block adds two (its object, its list):
    # the 32nd block's object is level 65
    expected = "/layers/0" * ((MAX_DEPTH - 1) // 2 + 1)
    with pytest.raises(InputFormatError) as info:
        load_spec_text(text)
    assert str(info.value) == f"the spec is nested more than {MAX_DEPTH} levels deep, at {expected}"


def test_deep_json_arrays_name_indices_and_keys_in_the_pointer():
    # the index counts the items before it, keys with "/" and "~" are escaped as in RFC 6901
    text = '{"input": {"shape": [8]}, "a/b~c": [1, {"k": 2}, ' + "[" * 100_000 + "]" * 100_000 + "]}"
    with pytest.raises(InputFormatError) as info:
        load_spec_text(text)
    assert str(info.value).endswith(", at /a~1b~0c/2" + "/0" * (MAX_DEPTH - 2))


# --- E14c: each unsafe archive entry name has its own message ----------------------------------------


def _zip(tmp_path: Path, name: str) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, b"step,loss\n0,1\n")
    path = tmp_path / "run.zip"
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("name, message", [
    ("run\n::error x/metrics.csv", r"'run\\n::error x/metrics.csv' holds a control character \('\\n'\)"),
    ("logs/\x1b[31mred.csv", r"holds a control character \('\\x1b'\)"),
    ("/tmp/evil.csv", "is an absolute path"),
    ("C:/evil.csv", "is an absolute path"),
    ("../../evil.csv", "'..'"),
    ("a/../../evil.csv", "'..'"),
])
def test_each_unsafe_archive_entry_name_is_refused_with_its_own_reason(tmp_path, name, message):
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(LogError, match=message) as info:
        archive.extract(_zip(tmp_path, name), "zip", dest, ReadLimits())
    if ".." not in name:
        assert "'..'" not in str(info.value)
    if "\\" not in repr(name):
        assert "control character" not in str(info.value)
    assert list(dest.iterdir()) == []


def test_a_plain_entry_name_is_still_extracted(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    archive.extract(_zip(tmp_path, "run 1/metrics.csv"), "zip", dest, ReadLimits())
    assert (dest / "run 1" / "metrics.csv").read_bytes().startswith(b"step,loss")


# --- E14d: an integer too long for Python in a JSON-lines log ------------------------------------------


def test_a_jsonl_step_of_fifty_thousand_digits_names_its_digits_and_line(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [f'{{"step": {i}, "loss": 1.0}}' for i in range(3)] + ['{"step": ' + "9" * 50_000 + ', "loss": 1.0}']
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LogError) as info:
        NativeReader().read(path, ReadLimits())
    message = str(info.value)
    assert "log.jsonl line 4:" in message
    assert "an integer of 50000 digits" in message
    assert "sys.set_int_max_str_digits" not in message


def test_a_json_array_log_with_a_huge_integer_names_its_digits(tmp_path):
    path = tmp_path / "log.json"
    path.write_text('[{"step": 0, "loss": 1.0}, {"step": 1, "loss": -' + "7" * 6_000 + "}]")
    with pytest.raises(LogError) as info:
        NativeReader().read(path, ReadLimits())
    assert "an integer of 6000 digits" in str(info.value)
    assert "set_int_max_str_digits" not in str(info.value)


# --- E15a: YAML numbers as YAML 1.2's core schema reads them ------------------------------------------

YAML = "input: {{shape: [8]}}\nseeds: 1\nlayers:\n  - {{type: linear, out_features: {}}}\n"


@pytest.mark.parametrize("literal, value", [("010", 10), ("0o17", 15), ("0x1F", 31), ("16", 16), ("+16", 16)])
def test_yaml_integers_are_read_as_yaml_1_2_core(literal, value):
    assert load_spec_text(YAML.format(literal))["layers"][0]["out_features"] == value


@pytest.mark.parametrize("literal", ["1:30", "0b101", "1_000", "0o8", "0xG"])
def test_yaml_1_1_only_integers_stay_text_and_are_refused_at_their_pointer(literal):
    data = load_spec_text(YAML.format(literal))
    assert data["layers"][0]["out_features"] == literal
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert [p.pointer for p in info.value.problems] == ["/layers/0/out_features"]


@pytest.mark.parametrize("literal, value", [("1e-3", 0.001), ("0.5", 0.5), (".5", 0.5), ("1.", 1.0),
                                            ("-2.5E+2", -250.0)])
def test_yaml_floats_are_read_as_yaml_1_2_core(literal, value):
    data = load_spec_text(f"input: {{shape: [8]}}\nlayers: []\nx: {literal}\n")
    assert data["x"] == value and isinstance(data["x"], float)


@pytest.mark.parametrize("literal", ["1:30.5", "1_000.5"])
def test_yaml_1_1_only_floats_stay_text(literal):
    assert load_spec_text(f"input: {{shape: [8]}}\nlayers: []\nx: {literal}\n")["x"] == literal


def test_yaml_non_finite_floats_are_still_read_and_refused_as_before():
    data = load_spec_text("input: {shape: [8]}\nlayers: []\nx: .inf\ny: -.Inf\nz: .NaN\n")
    assert data["x"] == float("inf") and data["y"] == float("-inf") and data["z"] != data["z"]


def test_explicit_yaml_int_tag_on_a_yaml_1_1_form_is_an_input_error():
    with pytest.raises(InputFormatError, match="invalid YAML at line 4"):
        load_spec_text(YAML.format("!!int 1:30"))


def test_yaml_python_tags_are_still_refused():
    with pytest.raises(InputFormatError, match="invalid YAML"):
        load_spec_text("input: {shape: [8]}\nlayers: !!python/object/apply:os.system ['true']\n")


def test_an_overlong_yaml_integer_is_still_refused_at_its_field():
    with pytest.raises(SpecError, match="an integer of 5000 digits"):
        parse_spec(load_spec_text(YAML.format("9" * 5000)))
