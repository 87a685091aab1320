"""The public `gradhealth` API: its names, and that it returns the document the CLI prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gradhealth
from gradhealth import errors
from gradhealth.cli import main

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "tests" / "data" / "logs" / "lightning-csv-ml-aos" / "metrics.csv"
# Eight sigmoid layers with a small init: vanishing by theory ((0.25 * 0.05^2 * 32)^8 ~ 1e-13), so the
# check proposes remedies and re-simulates them.
VANISHING_YAML = ("input: {shape: [32]}\nseeds: 1\nbatch_size: 32\nname: vanishing\nlayers:\n"
                  "  - {type: linear, out_features: 32, activation: sigmoid, init: {scheme: normal, std: 0.05},"
                  " repeat: 8}\n  - {type: linear, out_features: 4}\n")
NAMES = {"check_architecture", "check_keras", "check_logs", "check_module", "check_onnx", "render", "Diagnosis", "GradientRecorder", "GradHealthError", "SpecError",
         "LimitExceeded", "InputFormatError", "LogError", "UnknownLogFormat", "UploadTooLarge",
         "IdempotencyConflict"}


def without_durations(value: Any) -> Any:
    """The document with its wall-clock fields removed (the only fields two runs may differ in)."""
    if isinstance(value, dict):
        return {k: without_durations(v) for k, v in value.items() if k != "duration_s"}
    if isinstance(value, list):
        return [without_durations(v) for v in value]
    return value


def test_all_lists_the_public_names_and_each_resolves():
    assert set(gradhealth.__all__) == NAMES | {"__version__"}
    assert set(gradhealth._PUBLIC) == NAMES
    for name in NAMES:
        assert getattr(gradhealth, name) is not None
    for name in NAMES - {"check_architecture", "check_keras", "check_logs", "check_module", "check_onnx", "render",
                         "Diagnosis",
                         "GradientRecorder"}:
        assert issubclass(getattr(gradhealth, name), gradhealth.GradHealthError)
    with pytest.raises(AttributeError):
        gradhealth.no_such_name  # noqa: B018 - the access is the test


def test_python_c_prints_all():
    out = subprocess.run([sys.executable, "-c", "import gradhealth; print(gradhealth.__all__)"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "check_architecture" in out and "GradientRecorder" in out


def test_check_architecture_equals_the_cli_json_for_an_example():
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", "example:relu_he_mlp",
                           "--format", "json", "--seeds", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cli = json.loads(done.stdout)
    doc = gradhealth.check_architecture("example:relu_he_mlp", seeds=1)
    assert isinstance(doc, gradhealth.Diagnosis)
    assert without_durations(doc.model_dump(mode="json")) == without_durations(cli)


def test_check_architecture_takes_a_dict_a_path_or_text_and_matches_the_cli(tmp_path, capsys):
    import yaml

    path = tmp_path / "vanishing.yaml"
    path.write_text(VANISHING_YAML)
    assert main(["check", str(path), "--format", "json"]) == 1  # an error-severity finding
    cli = without_durations(json.loads(capsys.readouterr().out))
    assert cli["findings"][0]["code"] == "vanishing_gradient" and cli["findings"][0]["remedies"]
    as_dict = yaml.safe_load(VANISHING_YAML)
    for source in (path, str(path), VANISHING_YAML, as_dict):
        assert without_durations(gradhealth.check_architecture(source).model_dump(mode="json")) == cli
    assert as_dict == yaml.safe_load(VANISHING_YAML)  # the caller's dict is not changed


def test_check_logs_equals_the_cli_json(capsys):
    assert main(["check", str(CSV), "--format", "json", "--fail-on", "never"]) == 0
    cli = json.loads(capsys.readouterr().out)
    doc = gradhealth.check_logs(CSV)
    assert without_durations(doc.model_dump(mode="json")) == without_durations(cli)
    assert doc.findings == gradhealth.check_logs(str(CSV), format="lightning").findings


def test_errors_are_the_public_classes(tmp_path):
    with pytest.raises(gradhealth.SpecError) as bad:
        gradhealth.check_architecture({"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": -3}]})
    assert bad.value.problems[0].pointer == "/layers/0/out_features"
    with pytest.raises(gradhealth.InputFormatError):
        gradhealth.check_architecture(tmp_path / "missing.yaml")
    with pytest.raises(gradhealth.InputFormatError):
        gradhealth.check_architecture("example:no_such_example")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"\x00\x01 not a log")
    with pytest.raises(gradhealth.LogError):
        gradhealth.check_logs(empty)


def test_cuda_without_cuda_is_a_spec_error_at_device():
    from gradhealth.devices import torch_cuda_available

    if torch_cuda_available():
        pytest.skip("this host has CUDA")
    tiny = {"input": {"shape": [4]}, "seeds": 1, "layers": [{"type": "linear", "out_features": 2}]}
    for kwargs in ({"spec": {**tiny, "device": "cuda"}}, {"spec": tiny, "device": "cuda"}):
        with pytest.raises(gradhealth.SpecError) as exc:
            gradhealth.check_architecture(**kwargs)
        assert [p.pointer for p in exc.value.problems] == ["/device"]
        assert exc.value.status == 422 and isinstance(exc.value, errors.GradHealthError)


KERAS_CONFIG = {"class_name": "Sequential", "config": {"name": "keras_sigmoid", "layers": [
    {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 16]}},
    *[{"class_name": "Dense", "config": {"name": f"d{i}", "units": 16, "activation": "sigmoid"}}
      for i in range(12)],
    {"class_name": "Dense", "config": {"name": "out", "units": 4, "activation": "softmax"}}]}}


def test_check_keras_equals_the_cli_json_and_takes_a_dict_a_path_or_bytes(tmp_path, capsys):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(KERAS_CONFIG))
    assert main(["check", str(path), "--format", "json", "--seeds", "1", "--no-verify"]) == 1
    cli = without_durations(json.loads(capsys.readouterr().out))
    assert "vanishing_gradient" in {f["code"] for f in cli["findings"]}
    for source in (path, str(path), path.read_bytes(), KERAS_CONFIG):
        doc = gradhealth.check_keras(source, seeds=1, verify=False)
        assert isinstance(doc, gradhealth.Diagnosis)
        assert without_durations(doc.model_dump(mode="json")) == cli
    with pytest.raises(gradhealth.InputFormatError):
        gradhealth.check_keras(tmp_path / "missing.h5")
