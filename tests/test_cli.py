"""The command line: reports, JSON, exit codes for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradhealth.cli import main
from gradhealth.core.document import Diagnosis

EXAMPLES = Path(__file__).resolve().parents[1] / "service" / "examples"


def test_json_output_is_the_diagnosis_document(capsys):
    code = main(["check", "example:relu_xavier_mlp", "--format", "json", "--seeds", "1"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # an error-severity finding with the default --fail-on error
    Diagnosis.model_validate(doc)
    assert {"status", "findings", "layers", "time_steps", "theory"} <= set(doc)
    finding = doc["findings"][0]
    assert {"code", "severity", "summary", "evidence", "remedies"} <= set(finding)
    assert {"before", "after", "fixed"} <= set(finding["remedies"][0]["verified"])
    assert {"name", "grad_norm", "output_grad_norm"} <= set(doc["layers"][0])


@pytest.mark.parametrize(("fail_on", "expected"), [("error", 0), ("warning", 1), ("never", 0)])
def test_fail_on_sets_the_exit_code(tmp_path, fail_on, expected, capsys):
    # 16 ReLU layers with Xavier init: chi1 = 1/2, so the ratio is 2^-7.5 ~ 5.5e-3: a warning, not an error.
    spec = tmp_path / "spec.yaml"
    spec.write_text("input: {shape: [128]}\nseeds: 2\nlayers:\n"
                    "  - {type: linear, out_features: 128, activation: relu, init: xavier_normal, repeat: 16}\n"
                    "  - {type: linear, out_features: 10}\n")
    assert main(["check", str(spec), "--fail-on", fail_on, "--no-verify"]) == expected
    out = capsys.readouterr().out
    assert "WARNING" in out and "vanishing_gradient" in out


def test_invalid_spec_exits_2_and_names_the_field(tmp_path, capsys):
    spec = tmp_path / "bad.json"
    spec.write_text('{"input": {"shape": [4]}, "layers": [{"type": "linear", "out_features": -3}]}')
    assert main(["check", str(spec)]) == 2
    assert "/layers/0/out_features" in capsys.readouterr().err


def test_invalid_spec_json_output_is_a_problem_document(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: {shape: [4]}\nlayers: [{type: conv2d, out_channels: 2, kernel_size: 3}]\n")
    assert main(["check", str(spec), "--format", "json"]) == 2
    problem = json.loads(capsys.readouterr().out)
    assert problem["status"] == 422 and problem["errors"][0]["pointer"] == "/layers/0"


def test_missing_file_and_unknown_example_exit_2(capsys):
    assert main(["check", "/no/such/spec.yaml"]) == 2
    assert main(["check", "example:nope"]) == 2
    assert "deep_sigmoid_mlp" in capsys.readouterr().err


def test_console_script_runs_a_check_from_stdin():
    spec = (EXAMPLES / "relu_he_mlp.yaml").read_text().replace("repeat: 30", "repeat: 10")
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", "-", "--seeds", "1"],
                          input=spec, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEALTHY" in done.stdout


def test_schema_and_catalog_commands(capsys):
    assert main(["schema"]) == 0
    assert "layers" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["catalog"]) == 0
    assert "vanishing_gradient" in json.loads(capsys.readouterr().out)["findings"]


DATA = Path(__file__).resolve().parent / "data" / "logs"


def test_log_file_check_in_process(capsys, tmp_path):
    assert main(["check", str(DATA / "llmc-gpt2-124m" / "main.log"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "logs" and doc["status"] == "healthy" and doc["log"]["format"] == "text"
    bad = tmp_path / "run.jsonl"
    bad.write_text("".join(json.dumps({"step": i, "metric": "loss", "value": 1.0 if i != 5 else float("nan")})
                           + "\n" for i in range(20)))
    assert main(["check", str(bad)]) == 1
    assert "nonfinite" in capsys.readouterr().out


def test_log_check_errors_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["check", str(empty)]) == 2
    assert main(["check", str(DATA / "llmc-gpt2-124m" / "main.log"), "--log-format", "tensorboard"]) == 2
    assert "tensorboard" in capsys.readouterr().err


def _no_cuda() -> None:
    from gradhealth.devices import torch_cuda_available

    if torch_cuda_available():
        pytest.skip("this host has CUDA")


def test_cuda_in_the_spec_without_cuda_exits_2_at_device(tmp_path, capsys):
    _no_cuda()
    spec = tmp_path / "cuda.yaml"
    spec.write_text("input: {shape: [4]}\ndevice: cuda\nlayers: [{type: linear, out_features: 2}]\n")
    assert main(["check", str(spec), "--format", "json"]) == 2
    captured = capsys.readouterr()
    problem = json.loads(captured.out)
    assert problem["status"] == 422 and [e["pointer"] for e in problem["errors"]] == ["/device"]
    assert "/device" in captured.err and "cuda" in captured.err


def test_device_flag_cuda_without_cuda_exits_2(tmp_path, capsys):
    _no_cuda()
    spec = tmp_path / "cpu.yaml"
    spec.write_text("input: {shape: [4]}\ndevice: cpu\nlayers: [{type: linear, out_features: 2}]\n")
    assert main(["check", str(spec), "--device", "cuda"]) == 2
    assert "/device" in capsys.readouterr().err
    assert main(["check", str(spec), "--device", "cpu", "--no-verify"]) == 0  # the flag, not the spec, was it


def test_serve_flags_override_the_environment_only_when_given():
    from gradhealth.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.workers) == (None, None, None)  # the settings decide, at run time


def test_a_spec_that_is_not_utf8_and_an_unreachable_server_exit_2(tmp_path, capsys):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("name: caf\xe9\ninput: {shape: [4]}\nlayers: [{type: linear, out_features: 2}]\n"
                     .encode("latin-1"))
    assert main(["check", "example:relu_he_mlp", "--server", "http://127.0.0.1:9"]) == 2  # port 9: discard
    assert "unreachable" in capsys.readouterr().err.lower()
    done = subprocess.run([sys.executable, "-m", "gradhealth.cli", "check", "-"], input=spec.read_bytes(),
                          capture_output=True, timeout=120)
    assert done.returncode == 2 and b"UTF-8" in done.stderr
