"""specsweep11 other problem 5: refusals that say what to change. A 4-d input shape (the batch
dimension included, often channels-last) names the batch and the layout; a list kernel size says
non-square kernels are not supported; a .json spec file with a trailing comma is told where its JSON
is broken, not to set a Content-Type (the HTTP API's wording)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gradhealth.analysis.spec import load_spec_text, parse_spec
from gradhealth.cli import main
from gradhealth.errors import InputFormatError, SpecError


def _problems(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return {p.pointer: p.message for p in info.value.problems}


def _conv_net(shape: list[int], **conv: Any) -> dict[str, Any]:
    return {"input": {"shape": shape}, "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, **conv}, {"type": "flatten"},
        {"type": "linear", "out_features": 2}]}


@pytest.mark.parametrize("shape, layout, fixed", [
    ([32, 224, 224, 3], "[batch, H, W, C]", "[3, 224, 224]"),   # TensorFlow's NHWC
    ([1, 28, 28, 1], "[batch, H, W, C]", "[1, 28, 28]"),
    ([32, 3, 224, 224], "[batch, C, H, W]", "[3, 224, 224]"),   # PyTorch's NCHW
])
def test_batch_dimension_in_shape_is_named(shape: list[int], layout: str, fixed: str) -> None:
    message = _problems(_conv_net(shape))["/input/shape"]
    assert "without the batch dimension" in message and "channels-first" in message
    assert layout in message and message.endswith(fixed)


def test_list_kernel_size_says_non_square_unsupported() -> None:
    message = _problems(_conv_net([3, 16, 16], kernel_size=[3, 5]))["/layers/0/kernel_size"]
    assert "non-square kernels are not supported" in message and "[3, 5]" in message
    square = _problems(_conv_net([3, 16, 16], kernel_size=[3, 3], stride=[2, 2]))
    assert square["/layers/0/kernel_size"].endswith("write `kernel_size: 3`")
    assert square["/layers/0/stride"].endswith("write `stride: 2`")


def test_trailing_comma_is_located_and_no_content_type_advice(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    text = '{"input": {"shape": [784]},\n "layers": [{"type": "linear", "out_features": 10},]\n}\n'
    comma = text.index(",]")
    line, column = text.count("\n", 0, comma) + 1, comma - text.rfind("\n", 0, comma)
    with pytest.raises(InputFormatError) as info:
        load_spec_text(text, content_type="application/json")
    assert f"trailing comma at line {line}, column {column}" in str(info.value)
    assert "Content-Type" not in str(info.value) and "YAML" not in str(info.value)
    spec = tmp_path / "spec.json"
    spec.write_text(text)
    assert main(["check", str(spec), "--no-progress", "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert f"trailing comma at line {line}, column {column}" in err and "Content-Type" not in err
    # YAML text in a .json file: the CLI says to rename the file, not to set a header
    yaml_in_json = tmp_path / "yaml.json"
    yaml_in_json.write_text("input: {shape: [784]}\nlayers: [{type: linear, out_features: 10}]\n")
    assert main(["check", str(yaml_in_json), "--no-progress", "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "rename the file to .yaml" in err and "Content-Type" not in err
